"""Watch a model's gradients and parameters in Weights & Biases: histograms in the run's history."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from callbacks.wandb_helpers import run_is_disabled, wandb_run, warn_once

WatchLog = Literal["gradients", "parameters", "all"]

#: bins per histogram, as ``wandb.watch`` uses
BINS = 64


class WandbWatch(Callback):
    """Histograms of the gradients (``gradients/<parameter>``), of the parameters
    (``parameters/<parameter>``) or both, every ``log_freq`` optimizer steps, in the wandb run's history.

    The keys and the binning (64 equal bins between the tensor's smallest and largest finite value)
    are those of ``wandb.watch``; what differs is when the histograms are taken and where they go.
    ``wandb.watch`` hooks every parameter's backward, logs each histogram as it comes, and adds it
    to the history row that the module's next metrics complete, so every histogram logged before
    then overwrites the previous one (a module that logs once per epoch keeps only the last of
    each epoch). Here they are taken together just before the optimizer step (Lightning's
    ``on_before_optimizer_step``) and logged as a row of their own with ``trainer/global_step``,
    the x axis that Lightning's WandbLogger gives every metric, which makes them:

    * all kept, each at its step;
    * the gradients the optimizer applies: under ``precision="16-mixed"`` Lightning has unscaled
      them by then (in ``wandb.watch``'s backward hooks they are multiplied by the GradScaler's
      loss scale, 65,536 at first), and under gradient accumulation they are the summed gradient
      of the step, not each batch's partial sum;
    * one history update per step for all tensors, not one per tensor.

    Args:
        log: what to watch: ``"gradients"``, ``"parameters"`` or ``"all"``.
        log_freq: log the histograms at optimizer steps 0, ``log_freq``, 2 x ``log_freq``, ...
        log_graph: also log the module's graph (through ``wandb.watch``, which hooks the forward pass).

    Raises:
        ValueError: for an unknown ``log`` value or a ``log_freq`` below 1.

    Works on global rank zero only (under DDP every rank holds the same averaged gradients); with no
    WandbLogger or without wandb installed it warns once and does nothing. Parameters without a
    gradient at a step (frozen, or unused by that batch) are left out of that step's gradients.

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
        self._run: Any | None = None
        self._parameters: list[tuple[str, Tensor]] = []
        self._graph_watched: L.LightningModule | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run = wandb_run(trainer, "WandbWatch")
        if run is None or run_is_disabled(run):
            return
        self._parameters = list(pl_module.named_parameters())
        if self.log_kind in ("gradients", "all") and not any(p.requires_grad for _, p in self._parameters):
            warn_once(f"WandbWatch: {type(pl_module).__name__} has no trainable parameters; no gradients to watch.")
        self._run = run
        if self.log_graph:
            # idx=0: one module per run, so its keys carry no "graph_N" prefix even when an earlier
            # run in the same process watched another module (wandb numbers watches per process).
            run.watch(pl_module, log=None, log_graph=True, idx=0)
            self._graph_watched = pl_module

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        step = trainer.global_step
        if self._run is None or step % self.log_freq:
            return
        tensors: dict[str, Tensor] = {}
        for name, parameter in self._parameters:
            if self.log_kind in ("gradients", "all") and parameter.grad is not None:
                tensors[f"gradients/{name}"] = parameter.grad
            if self.log_kind in ("parameters", "all"):
                tensors[f"parameters/{name}"] = parameter
        if tensors:
            # A row of its own, at this step: added to the open row instead (commit=False, as
            # wandb.watch does), the histograms of every step until the module next logged would
            # overwrite each other there, and a module that logs once per epoch would keep only
            # the last of each epoch. The step key is the x axis WandbLogger gives every metric.
            self._run.log({**histograms(tensors), "trainer/global_step": step})

    def _stop(self) -> None:
        run, self._run, self._parameters = self._run, None, []
        if self._graph_watched is not None and run is not None:
            module, self._graph_watched = self._graph_watched, None
            run.unwatch(module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop()


def histograms(tensors: dict[str, Tensor], bins: int = BINS) -> dict[str, Any]:
    """``wandb.Histogram`` s of the finite values of each tensor, by key, binned as ``wandb.watch``
    bins them; empty or all non-finite tensors are left out. Two transfers to the host in all,
    however many tensors (on a GPU each ``.item()`` would wait for the device)."""
    import wandb

    flats = {key: tensor.detach().reshape(-1).float() for key, tensor in tensors.items() if tensor.numel()}
    if not flats:
        return {}
    ranges = torch.stack([torch.stack(torch.aminmax(flat)) for flat in flats.values()]).tolist()
    binned: dict[str, tuple[Tensor, float, float]] = {}  # key -> (counts on the device, low, high)
    ready: dict[str, tuple[list[float], list[float]]] = {}  # key -> (counts, bin edges)
    for (key, flat), (low, high) in zip(flats.items(), ranges, strict=True):
        if not (math.isfinite(low) and math.isfinite(high)):  # NaN or inf: histogram the finite rest
            flat = flat[torch.isfinite(flat)]
            if not flat.numel():
                continue
            low, high = torch.stack(torch.aminmax(flat)).tolist()
        if low == high:  # one value: a single bin holding every element, as wandb.watch logs it
            ready[key] = ([float(flat.numel())], [low, high])
        else:
            binned[key] = (torch.histc(flat, bins=bins, min=low, max=high), low, high)
    counts = torch.stack([c for c, _, _ in binned.values()]).tolist() if binned else []
    for (key, (_, low, high)), row in zip(binned.items(), counts, strict=True):
        ready[key] = (row, torch.linspace(low, high, bins + 1).tolist())
    return {key: wandb.Histogram(np_histogram=ready[key]) for key in flats if key in ready}
