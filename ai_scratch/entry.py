"""The ``ai-scratch`` console script: when the command asks for tracking, wandb is imported first.

``wandb.init`` imports wandb's Launch package (to apply any staged job inputs, whether or not the
run was launched), and that package's pydantic models read the docstrings of their fields by
walking the import frames with ``inspect.getmodule``. On Python before 3.13 each such lookup scans
every loaded module, so the import costs in proportion to what is loaded already: measured here,
0.4 s before torch, 2.1 s after torch, Lightning and torchvision (some 4,000 modules), on every
tracked run. This module loads nothing heavy itself; it imports wandb and that package while the
process is still small, then hands over to :func:`ai_scratch.cli.console`. A run without
``--wandb``, or with wandb disabled, imports nothing extra.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ai_scratch.tracking import TrackingError, requested_mode

#: what ``wandb.init`` imports for Launch (wandb/sdk/wandb_run.py, ``_detect_and_apply_job_inputs``)
WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of ``name`` on the command line (``--name value`` or ``--name=value``), else None."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def preload_tracking(args: Sequence[str]) -> bool:
    """Import wandb and its Launch package now if ``args`` turn tracking on in a mode other than
    disabled, in the process of global rank zero. Returns whether it did. Anything unusual (wandb
    not installed, a wrong mode) is left for the CLI to report, as it would be without this."""
    if "--wandb" not in args:
        return False
    if any(os.environ.get(name, "0") != "0" for name in ("RANK", "LOCAL_RANK")):
        return False  # a DDP process other than the first: its logger never starts a run
    try:
        if requested_mode(_option(args, "--wandb_mode")) == "disabled":
            return False
    except TrackingError:
        return False
    try:
        import wandb  # noqa: F401
        __import__(WANDB_LAUNCH_INPUTS)
    except ImportError:  # no wandb (the CLI warns), or a release that moved the package
        return False
    return True


def console() -> int:
    """``ai-scratch`` on the command line (see :func:`ai_scratch.cli.console`)."""
    preload_tracking(sys.argv[1:])
    from ai_scratch.cli import console as run_command

    return run_command()
