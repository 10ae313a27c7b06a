"""Watch a model's gradients and parameters in Weights & Biases."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

from callbacks._wandb import run_is_disabled, wandb_run, warn_once

WatchLog = Literal["gradients", "parameters", "all"]


class WandbWatch(Callback):
    """Call ``wandb.watch`` on the module when fitting starts and ``unwatch`` when it ends.

    wandb then logs histograms of the gradients (``gradients/<parameter>``), of the parameters
    (``parameters/<parameter>``) or both, every ``log_freq`` batches, into the run's history.

    Args:
        log: what to watch: ``"gradients"``, ``"parameters"`` or ``"all"``.
        log_freq: log histograms every this many training batches (wandb counts the calls).
        log_graph: also log the module's graph.

    Raises:
        ValueError: for an unknown ``log`` value or a ``log_freq`` below 1.

    Works on global rank zero only; with no WandbLogger or without wandb installed it warns once
    and does nothing. A module without trainable torch parameters (a NumPy-era learner) has no
    gradients for wandb to hook, so only its parameters can be watched. wandb's gradient hooks fire
    during backward, before Lightning unscales: under ``precision="16-mixed"`` the gradient
    histograms are multiplied by the GradScaler's loss scale (the parameters are not).

    Example::

        trainer = Trainer(logger=WandbLogger(project="demo"), callbacks=[WandbWatch(log="all", log_freq=50)])
    """

    def __init__(self, log: WatchLog = "gradients", log_freq: int = 100, log_graph: bool = False) -> None:
        if log not in ("gradients", "parameters", "all"):
            raise ValueError(f"WandbWatch: log must be 'gradients', 'parameters' or 'all', got {log!r}")
        if log_freq < 1:
            raise ValueError(f"WandbWatch: log_freq must be at least 1, got {log_freq}")
        # not ``self.log``: Lightning attaches its module's ``log`` method to every callback
        self.log_kind = log
        self.log_freq = log_freq
        self.log_graph = log_graph
        self._watched: tuple[Any, L.LightningModule] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run = wandb_run(trainer, "WandbWatch")
        if run is None or run_is_disabled(run):
            return
        if self.log_kind in ("gradients", "all") and not any(p.requires_grad for p in pl_module.parameters()):
            warn_once(f"WandbWatch: {type(pl_module).__name__} has no trainable parameters; no gradients to watch.")
        # idx=0: one module per run, so its keys carry no "graph_N" prefix even when an earlier run
        # in the same process watched another module (wandb numbers watches per process).
        run.watch(pl_module, log=self.log_kind, log_freq=self.log_freq, idx=0, log_graph=self.log_graph)
        self._watched = (run, pl_module)

    def _unwatch(self) -> None:
        if self._watched is not None:
            run, module = self._watched
            self._watched = None
            run.unwatch(module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._unwatch()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._unwatch()
