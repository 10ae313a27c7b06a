"""The ``ai-scratch`` console script: when the command asks for tracking, wandb is imported first.

Importing wandb costs about 0.1 s less while the process is still small (and 0.3 s less again with
its pydantic models' docstrings read by Python's own parser), and wandb's run start is made cheaper
before anything else can start one (:mod:`ai_scratch.wandb_startup`: 0.4 s of Launch imports, 0.16
s of sleep and 0.1 s of reading package metadata skipped). Before that change, the early import
mattered more: ``wandb.init`` imports wandb's Launch package, whose pydantic models read the
docstrings of their fields by walking the import frames with ``inspect.getmodule``; on Python
before 3.13 each such lookup scans every loaded module, so that import took 0.4 s before torch and
2.1 s after torch, Lightning and torchvision (some 4,000 modules). This module loads nothing heavy
itself; it imports wandb while the process is small, then hands over to
:func:`ai_scratch.cli.console`. A run without ``--wandb``, or with wandb disabled, imports nothing
extra.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ai_scratch import wandb_startup
from ai_scratch.tracking import TrackingError, requested_mode


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of ``name`` on the command line (``--name value`` or ``--name=value``), else None."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def preload_tracking(args: Sequence[str]) -> bool:
    """Import wandb now, and make its run start cheaper (:func:`ai_scratch.wandb_startup.install`),
    if ``args`` turn tracking on in a mode other than disabled, in the process of global rank zero.
    Returns whether it did. Anything unusual (wandb not installed, a wrong mode) is left for the
    CLI to report, as it would be without this."""
    if "--wandb" not in args:
        return False
    if not wandb_startup.first_process():
        return False  # a DDP process other than the first: its logger never starts a run
    try:
        if requested_mode(_option(args, "--wandb_mode")) == "disabled":
            return False
    except TrackingError:
        return False
    try:
        wandb_startup.import_wandb()  # its pydantic models' docstrings read faster, the same
    except ImportError:  # no wandb: the CLI warns
        return False
    wandb_startup.install()
    return True


def console() -> int:
    """``ai-scratch`` on the command line (see :func:`ai_scratch.cli.console`)."""
    preload_tracking(sys.argv[1:])
    from ai_scratch.cli import console as run_command

    return run_command()
