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

import _io
import atexit
import gc
import os
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


class _ExitWithoutTeardown:
    """The end of an ``ai-scratch`` process once the command has finished: the exit handlers run
    (wandb's among them, which end its run and its service), then the process leaves at once,
    without the interpreter tearing down the modules and objects of torch, Lightning and wandb one
    by one. Nothing is written in that teardown but the buffers of files left open, flushed here
    (every file the fit itself writes is closed by then; the logging handlers are closed here), and
    it took 0.22-0.24 s of every untracked command here and 0.29-0.32 s of a tracked one.

    Registered before anything else registers an exit handler, so it runs last (they run in reverse
    order), and only when :func:`console` is the program: called from the top level of the
    ``__main__`` module (pip's console script, ``python -m ai_scratch``), whose next step is
    ``sys.exit`` with the status it returns. Called from anywhere else (a test, a user's own code)
    the process is not ours to end. Only a command that has finished, normally or through
    ``sys.exit``, leaves this way, with the status it gave; after an uncaught exception the
    interpreter ends as usual."""

    def __init__(self) -> None:
        self.status: int | None = None

    def finished(self, code: object) -> None:
        """The command ended with ``sys.exit(code)`` (or returned ``code``)."""
        # sys.exit's own meaning: None is success, a number the status, anything else (a message,
        # already printed by then) status 1
        self.status = 0 if code is None else code if isinstance(code, int) else 1

    def __call__(self) -> None:
        if self.status is None:
            return
        if "logging" in sys.modules:  # its handlers flushed and closed, as its own exit handler would
            sys.modules["logging"].shutdown()
        # A file that the run opened and never closed (a callback's own log, say) would be flushed
        # in the teardown: flush it here. The collector's view holds what was made since the run
        # started (the CLI freezes what was alive then out of it): 24,000 objects, 12 ms, after a
        # LeNet-5 fit. A file opened before, while the command was parsed, and never closed is not
        # looked for: searching the frozen half million objects costs as much as the teardown.
        # (_io._IOBase, the C base of every file object: io.IOBase's ABC check took 3x longer.)
        for stream in [sys.stdout, sys.stderr, *(found for found in gc.get_objects() if isinstance(found, _io._IOBase))]:
            try:
                if not stream.closed:
                    stream.flush()
            except (AttributeError, OSError, ValueError):  # detached, broken, or not a stream at all
                pass
        os._exit(self.status)


def console() -> int:
    """``ai-scratch`` on the command line (see :func:`ai_scratch.cli.console`), ending its process
    without the interpreter's teardown (:class:`_ExitWithoutTeardown`)."""
    leave = _ExitWithoutTeardown()
    caller = sys._getframe(1)
    if caller.f_code.co_name == "<module>" and caller.f_globals.get("__name__") == "__main__":
        atexit.register(leave)
    try:
        preload_tracking(sys.argv[1:])
        from ai_scratch.cli import console as run_command

        status = run_command()
    except SystemExit as exit_:
        leave.finished(exit_.code)
        raise
    leave.finished(status)
    return status
