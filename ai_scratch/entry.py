"""The ``ai-scratch`` console script."""

from __future__ import annotations

import sys


def console() -> int:
    """``ai-scratch`` on the command line (:func:`ai_scratch.cli.console`)."""
    if "--wandb" in sys.argv[1:]:
        try:
            import wandb  # noqa: F401  (first: its import is quicker while few modules are loaded)
        except ImportError:
            pass  # the CLI says that wandb is missing
    from ai_scratch.cli import console as run_command

    return run_command()
