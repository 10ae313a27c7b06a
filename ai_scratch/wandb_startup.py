"""Two fixed costs of starting a wandb run, avoided without changing what the run records.

Measured on these machines (Python 3.11, wandb 0.31, 2 CPU cores), in an ``ai-scratch fit``
process that has torch, Lightning and torchvision loaded:

1. **Launch job inputs, 0.4 s.** ``wandb.init`` ends with ``Run._detect_and_apply_job_inputs``,
   which imports ``wandb.sdk.launch.inputs.internal`` to apply the inputs that a script staged for
   W&B Launch (``wandb.launch.manage_wandb_config``, ``manage_config_file``, called before
   ``wandb.init``). That import loads the whole Launch agent and wandb's public API: 0.4 s even
   when it is made first thing in the process (see :mod:`ai_scratch.entry`), 2.1 s after torch.
   Inputs can only be staged through that module, so while it is not loaded there is nothing to
   apply. :func:`install` wraps the method: it returns at once when the module is not loaded and
   calls wandb's own method when it is, so a run launched by W&B Launch is handled as before.
2. **The service's port file, 0.16 s.** wandb starts its service (``wandb-core``) and waits for
   the file in which the service writes its address, reading it and sleeping 0.2 s between reads.
   The service writes it about 40 ms after it starts, so the first read is too early and the
   process sleeps the rest of the 0.2 s. :func:`install` shortens that sleep to 10 ms (one small
   file read per wait); the timeout is wandb's as before. wandb keeps this sleep as a module
   attribute so that its own tests can replace it (``service_port_file._SLEEP``).

Both are applied by :func:`install`: from the console entry once wandb is imported, before
torch, and from the CLI before its logger starts the run. It acts in the process of global rank
zero only (the one that starts the run; a DDP process with ``RANK`` or ``LOCAL_RANK`` other than
0 starts none) and only where wandb is installed. A wandb release without these functions is left
alone; :func:`install` returns which of the two it applied. benchmarks/tracking_overhead.py
measures what they save (``--against`` a checkout from before).
"""

from __future__ import annotations

import functools
import os
import sys
import time

#: the module that ``Run._detect_and_apply_job_inputs`` imports, and through which inputs are staged
WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"
#: how long to sleep between reads of wandb's port file (wandb's own: 0.2 s)
PORT_FILE_POLL_SECONDS = 0.01


def first_process() -> bool:
    """Whether this process is global rank zero, or not started by a distributed launcher."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK"))


def _apply_staged_launch_inputs_only(method):
    @functools.wraps(method)
    def apply_job_inputs(run) -> None:
        if WANDB_LAUNCH_INPUTS in sys.modules:  # something may have been staged: wandb applies it
            method(run)

    apply_job_inputs.skips_unstaged_launch_inputs = True
    return apply_job_inputs


def _short_sleep(seconds: float) -> None:
    time.sleep(min(seconds, PORT_FILE_POLL_SECONDS))


def install() -> list[str]:
    """Apply both (see the module docstring) once per process; returns the names of those in
    effect: ``"launch inputs"``, ``"port file poll"``. Empty where wandb is not installed, in a
    process other than global rank zero, or in a wandb release that no longer has them."""
    if not first_process():
        return []
    try:
        from wandb.sdk.lib.service import service_port_file
        from wandb.sdk.wandb_run import Run
    except ImportError:
        return []
    applied = []
    method = getattr(Run, "_detect_and_apply_job_inputs", None)
    if method is not None:
        if not getattr(method, "skips_unstaged_launch_inputs", False):
            Run._detect_and_apply_job_inputs = _apply_staged_launch_inputs_only(method)
        applied.append("launch inputs")
    if callable(getattr(service_port_file, "_SLEEP", None)):
        service_port_file._SLEEP = _short_sleep
        applied.append("port file poll")
    return applied
