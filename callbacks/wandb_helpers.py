"""What the callbacks share: find the wandb run, warn or tell once, ask a module for its info.

Nothing here imports wandb at module import time: the callbacks must load, and do their local
work, on a machine where wandb is not installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

_said: set[str] = set()


def warn_once(message: str) -> None:
    """Warn on global rank zero, once per process for the same message."""
    if message not in _said:
        _said.add(message)
        rank_zero_warn(message, category=UserWarning)


def say_once(message: str) -> None:
    """Tell the user on global rank zero (Lightning's console log, as its own notices), once per
    process for the same message: for what is expected, such as a figure that does not apply."""
    if message not in _said:
        _said.add(message)
        rank_zero_info(message)


def wandb_installed() -> bool:
    """Whether ``import wandb`` can succeed (without importing it)."""
    try:
        return importlib.util.find_spec("wandb") is not None
    except (ImportError, ValueError):  # a blocked or broken import machinery counts as absent
        return False


def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    """The first WandbLogger among the trainer's loggers, or ``None``."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger
    return None


def wandb_run(trainer: L.Trainer, owner: str) -> Any | None:
    """The live wandb run of the trainer's WandbLogger, for rank-zero code; ``None`` with one warning.

    ``owner`` names the callback in the warning. Call only on global rank zero: on other ranks
    Lightning hands out a dummy experiment.
    """
    if not wandb_installed():
        warn_once(f"{owner}: wandb is not installed, so it does nothing (pip install wandb to track runs).")
        return None
    logger = wandb_logger(trainer)
    if logger is None:
        warn_once(f"{owner}: the Trainer has no WandbLogger, so it does nothing.")
        return None
    return logger.experiment


def run_is_disabled(run: Any) -> bool:
    """True for the stand-in run that ``wandb.init(mode="disabled")`` returns."""
    return getattr(getattr(run, "settings", None), "mode", None) == "disabled"


def live_wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    """The trainer's WandbLogger where wandb is installed and its run is a real one (not the stand-in
    of ``mode="disabled"``), or ``None``: where a callback's images and tables may go."""
    if not wandb_installed():
        return None
    logger = wandb_logger(trainer)
    return None if logger is None or run_is_disabled(logger.experiment) else logger


def module_info(pl_module: L.LightningModule) -> dict[str, Any]:
    """``pl_module.model_info()`` when the module offers it (any module may), else its class name."""
    info_method = getattr(pl_module, "model_info", None)
    if callable(info_method):
        info = info_method()
        if isinstance(info, Mapping):
            return dict(info)
    return {"name": type(pl_module).__name__.lower(), "class_name": type(pl_module).__qualname__}
