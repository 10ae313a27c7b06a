"""Figures of a fit, saved as PNG under the run's log dir and logged to wandb when a run exists.

Each figure is a callback, drawn at the end of training and, with ``every_n_epochs``, every few
epochs too (saved as ``<name>_epoch<N>.png``). They work with any LightningModule; where a figure
does not apply to a module (no class labels, no 2-D inputs, no convolution, no gradients), the
callback says so once and draws nothing. A figure callback never fails the fit: an error while
drawing is reported as a warning and the fit goes on.

* :class:`LearningCurves`: the epoch metrics (``train_*``, ``val_*``, ``learning_rate``).
* :class:`ConfusionMatrix`: on the validation set at the end of training (torchmetrics, so every
  DDP process contributes).
* :class:`DecisionBoundary`: for 2-D inputs, the regions the model assigns to each class.
* :class:`GradientFlow`: per-layer gradient L2 norms during training (vanishing gradients show).
* :class:`ConvFilters`: the first convolution's filters and the feature maps of the first
  convolutions (or of the layers you name) for one validation image.

Write your own by subclassing :class:`FigureCallback`: ``collect`` runs on every process (it may
use collective calls), ``draw`` on global rank zero only and returns matplotlib figures.

Example::

    trainer = Trainer(callbacks=[LearningCurves(), ConfusionMatrix(every_n_epochs=5)])
"""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import move_data_to_device
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from callbacks import plots
from callbacks.wandb_helpers import live_wandb_logger, say_once, warn_once
from callbacks.batches import (
    evaluating,
    forward_takes_inputs_only,
    inputs_and_targets,
    not_a_classifier,
    predicted_labels,
    scores_fit_targets,
    validation_batches,
)

Drawn = Figure | dict[str, Figure] | None


class FigureCallback(Callback, ABC):
    """Base of the figure callbacks: when to draw, where to save, how to log.

    Args:
        every_n_epochs: also draw every this many epochs; ``None`` draws only at the end of training.
        log_to_wandb: log the PNG as an image under ``figures/<name>`` when the trainer has a
            WandbLogger with a live run.

    Raises:
        ValueError: for ``every_n_epochs`` below 1.

    Subclasses set :attr:`name` and implement :meth:`draw` (and :meth:`collect` when the figure
    needs collective work).
    """

    #: file stem and wandb key of the figure
    name: ClassVar[str]

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        if every_n_epochs is not None and every_n_epochs < 1:
            raise ValueError(f"{type(self).__name__}: every_n_epochs must be at least 1 or None, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.log_to_wandb = log_to_wandb
        self.directory: Path | None = None
        self.saved: list[Path] = []

    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Any:
        """Gather what the figure needs. Runs on every process; may use collective calls."""
        return None

    @abstractmethod
    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Drawn:
        """Draw from ``data`` (what :meth:`collect` returned): one figure (saved as ``<name>.png``),
        several by file stem, or ``None`` when there is nothing to show. Global rank zero only."""

    def does_not_apply(self, reason: str) -> None:
        """Say once that this figure is not drawn, and why (``reason`` completes "... because ...")."""
        say_once(f"{type(self).__name__}: no figure, because {reason}.")

    # ------------------------------------------------------------------ when
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts from rank zero (a collective call): resolved here, on every rank
        self.directory = Path(trainer.log_dir or trainer.default_root_dir) / "figures"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.emit(trainer, pl_module, suffix=f"_epoch{trainer.current_epoch:03d}")

    # At the end of training, not of the fit: by then the strategy has moved the module back to the
    # CPU, and under DDP on GPUs collect()'s collective calls would hand CPU tensors to NCCL.
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.emit(trainer, pl_module)

    # ------------------------------------------------------------------ how
    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> list[Path]:
        """Collect on every process, then draw, save and log on global rank zero. Returns the PNGs."""
        data = self.collect(trainer, pl_module)
        if not trainer.is_global_zero:
            return []
        try:
            drawn = self.draw(data, trainer, pl_module)
            figures = drawn if isinstance(drawn, dict) else {self.name: drawn} if drawn is not None else {}
            directory = self.directory or Path(trainer.default_root_dir) / "figures"
            written = {name: plots.save_figure(figure, directory / f"{name}{suffix}.png") for name, figure in figures.items()}
        except Exception as error:  # noqa: BLE001  (a figure is a by-product: the fit goes on)
            warn_once(f"{type(self).__name__}: the figure could not be drawn: {type(error).__name__}: {error}")
            return []
        self.saved.extend(written.values())
        logger = live_wandb_logger(trainer) if self.log_to_wandb and written else None
        if logger is not None:
            import wandb

            for name, path in written.items():
                logger.log_metrics({f"figures/{name}": wandb.Image(str(path), caption=path.stem)})
        return list(written.values())


def class_names(trainer: L.Trainer, num_classes: int) -> list[str]:
    """The datamodule's ``class_names`` when it has one per class, else ``"0"``, ``"1"``, ..."""
    names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


# ---------------------------------------------------------------------- learning curves
class LearningCurves(FigureCallback):
    """Loss, accuracy, learning rate and other epoch metrics over epochs.

    Args:
        patterns: which logged metrics to draw (shell-style patterns on the metric name).
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    The history is part of the callback's state, so a fit resumed from a checkpoint draws the
    whole curve, not just the part after the restart.
    """

    name = "learning_curves"

    def __init__(
        self,
        patterns: Sequence[str] = ("train_*", "val_*", "learning_rate"),
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.patterns = tuple(patterns)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._recorded: dict[str, tuple[int, Any]] = {}  # key -> (epoch, the value object recorded)

    def _record(self, trainer: L.Trainer, prefixes: tuple[str, ...], epoch: int) -> None:
        for key, value in trainer.callback_metrics.items():
            if not key.startswith(prefixes) or not any(fnmatch.fnmatchcase(key, p) for p in self.patterns):
                continue
            if isinstance(value, Tensor) and value.numel() != 1:
                continue
            # callback_metrics keeps a metric's last value after the model stops logging it (a
            # phase of training that has ended): the same object seen for another epoch is stale
            previous = self._recorded.get(key)
            if previous is not None and previous[1] is value and previous[0] != epoch:
                continue
            self._recorded[key] = (epoch, value)
            series = self.history.setdefault(key, [])
            series[:] = [(e, v) for e, v in series if e != epoch]  # a re-run epoch replaces its point
            series.append((epoch, float(value)))

    # Every process records: reading trainer.callback_metrics may synchronise metrics logged with
    # sync_dist (a collective call), so it must not happen on rank zero alone.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._record(trainer, ("val_",), trainer.current_epoch)

    # A module may log its training metrics in its own on_train_epoch_end, which Lightning calls
    # after this callback's: read them when the next epoch starts, and when training ends.
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self._record(trainer, ("train_", "learning_rate"), trainer.current_epoch - 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, ("train_", "learning_rate"), trainer.current_epoch)
        super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, ("train_", "learning_rate"), trainer.current_epoch - 1)
        super().on_train_end(trainer, pl_module)  # then the final figure

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if not self.history:
            self.does_not_apply(f"no epoch metric matching {list(self.patterns)} was logged")
            return None
        return plots.learning_curves(self.history, title=f"Learning curves: {type(pl_module).__name__}")

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(p) for p in v] for k, v in state_dict.get("history", {}).items()}


# ---------------------------------------------------------------------- confusion matrix
class ConfusionMatrix(FigureCallback):
    """Confusion matrix of the validation set, computed with torchmetrics across all processes.

    Args:
        num_classes: number of classes; by default the module's or the datamodule's ``num_classes``,
            else the width of the module's scores.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    One pass over the validation set in eval mode, after the epoch's training, counts the predicted
    labels against the true ones. It applies to a module whose validation batches are
    ``(inputs, class labels)`` and whose ``forward(inputs)`` gives class scores; otherwise it says so
    once and draws nothing. The last matrix is kept in :attr:`matrix`.
    """

    name = "confusion_matrix"

    def __init__(self, num_classes: int | None = None, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.num_classes = num_classes
        self.matrix: np.ndarray | None = None

    def _class_count(self, trainer: L.Trainer, pl_module: L.LightningModule, scores: Tensor) -> int:
        for source in (self.num_classes, getattr(pl_module, "num_classes", None), getattr(trainer.datamodule, "num_classes", None)):
            if isinstance(source, int) and source >= 2:
                return source
        return scores.shape[-1] if scores.ndim > 1 else 2  # one score: two classes

    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> np.ndarray | str:
        """The matrix, or the reason there is none (every process takes the same branches, so that
        the collective ``compute()`` is called by all or by none)."""
        metric: MulticlassConfusionMatrix | None = None
        with evaluating(pl_module):
            for batch in validation_batches(trainer):
                reason = not_a_classifier(pl_module, batch)
                if reason is not None:
                    return reason
                inputs, targets = inputs_and_targets(move_data_to_device(batch, pl_module.device))
                scores = pl_module(inputs)
                if not scores_fit_targets(scores, targets):
                    return "its forward does not give one row of class scores per example"
                if metric is None:
                    metric = MulticlassConfusionMatrix(self._class_count(trainer, pl_module, scores)).to(pl_module.device)
                metric.update(predicted_labels(pl_module, scores), targets)
        if metric is None:
            return "there is no validation data"
        return metric.compute().cpu().numpy()  # synchronised across processes

    def draw(self, data: np.ndarray | str, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if isinstance(data, str):
            self.does_not_apply(data)
            return None
        self.matrix = data
        return plots.confusion_matrix(
            data, class_names(trainer, len(data)), title=f"Confusion matrix, validation set: {type(pl_module).__name__}"
        )


# ---------------------------------------------------------------------- decision boundary
class DecisionBoundary(FigureCallback):
    """The class regions of a model with 2-D inputs, with the validation points on top.

    Args:
        resolution: grid points per axis.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    Drawn on rank zero from its share of the validation data. For a module whose inputs are not
    two numbers per example it says so once and draws nothing. The axes are named after the
    datamodule's ``feature_names`` when it has two.
    """

    name = "decision_boundary"

    def __init__(self, resolution: int = 200, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if resolution < 10:
            raise ValueError(f"DecisionBoundary: resolution must be at least 10, got {resolution}")
        self.resolution = resolution

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        inputs, targets = [], []
        for batch in validation_batches(trainer):
            reason = not_a_classifier(pl_module, batch)
            x, y = inputs_and_targets(batch)
            if reason is None and (x.ndim != 2 or x.shape[1] != 2):
                reason = "its inputs are not two numbers per example"
            if reason is not None:
                self.does_not_apply(reason)
                return None
            inputs.append(x.detach().cpu())
            targets.append(y.detach().cpu())
        if not inputs:
            self.does_not_apply("there is no validation data")
            return None
        points = torch.cat(inputs).float().numpy()
        labels = torch.cat(targets).numpy()
        xx, yy = plots.make_grid(points, resolution=self.resolution)
        grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)).to(pl_module.device)
        with evaluating(pl_module):
            grid_labels = predicted_labels(pl_module, pl_module(grid)).cpu().numpy().reshape(xx.shape)
            predicted = predicted_labels(pl_module, pl_module(torch.from_numpy(points).to(pl_module.device))).cpu().numpy()
        names = class_names(trainer, int(max(grid_labels.max(), labels.max())) + 1)
        axes = getattr(trainer.datamodule, "feature_names", None) if trainer.datamodule is not None else None
        xlabel, ylabel = (str(axes[0]), str(axes[1])) if axes is not None and len(axes) == 2 else ("x1", "x2")
        return plots.decision_boundary(
            xx, yy, grid_labels, points, labels, names,
            title=f"Decision boundary, validation set: {type(pl_module).__name__}", predicted=predicted,
            xlabel=xlabel, ylabel=ylabel,
        )


# ---------------------------------------------------------------------- gradient flow
class GradientFlow(FigureCallback):
    """Per-layer gradient L2 norms over training: do the early layers still learn?

    Args:
        every_n_steps: record the norms at every this many optimizer steps (0, n, 2n, ...).
        weights_only: record tensors with two or more dimensions (weights, filters) and skip
            biases and scales, one line per layer.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    Reads the ``.grad`` of the module's parameters just before the optimizer steps (rank zero):
    DDP has averaged them by then, accumulated batches are summed, and under 16-bit mixed precision
    Lightning has unscaled them. A NumPy-era learner may put its gradients there too. For a module
    that learns without gradients it says so once and draws nothing.
    """

    name = "gradient_flow"

    def __init__(
        self, every_n_steps: int = 10, weights_only: bool = True, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if every_n_steps < 1:
            raise ValueError(f"GradientFlow: every_n_steps must be at least 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.weights_only = weights_only
        self.steps: list[int] = []
        self.norms: dict[str, list[float]] = {}

    # Before the optimizer step, not at the end of the batch: with gradient accumulation a batch
    # may end without a step (its gradients a partial sum), and by the step's count, not the batch's
    # index within the epoch, the records are evenly spaced across epochs.
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step % self.every_n_steps or (self.steps and self.steps[-1] == step):
            return
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None and (p.ndim >= 2 or not self.weights_only)]
        if not named:
            return
        norms = torch.stack([g.detach().float().norm(2) for _, g in named]).tolist()  # one device sync
        values = dict(zip((n for n, _ in named), norms))
        self.steps.append(step)
        for name in list(self.norms) + [n for n in values if n not in self.norms]:
            self.norms.setdefault(name, [math.nan] * (len(self.steps) - 1)).append(values.get(name, math.nan))

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if not self.steps:
            self.does_not_apply(f"{type(pl_module).__name__} had no parameter gradients at the optimizer steps")
            return None
        return plots.gradient_flow(self.steps, self.norms, title=f"Gradient flow: {type(pl_module).__name__}")

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "norms": {k: list(v) for k, v in self.norms.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = list(state_dict.get("steps", []))
        self.norms = {k: list(v) for k, v in state_dict.get("norms", {}).items()}


# ---------------------------------------------------------------------- filters and feature maps
class ConvFilters(FigureCallback):
    """The first convolution's filters, and feature maps of the first convolutions for one image.

    Args:
        layers: names of the submodules whose outputs to show as feature maps (as in
            ``named_modules()``); by default the first ``max_layers`` ``nn.Conv2d`` modules whose
            outputs are still images (larger than 1x1).
        max_layers: how many convolutions to show when ``layers`` is not given.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    Writes two files: ``conv_filters.png`` and ``feature_maps.png``. For a module without a 2-D
    convolution it says so once and draws nothing.

    Raises:
        ValueError: at setup, when a name in ``layers`` is not a submodule of the module.
    """

    name = "conv_filters"

    def __init__(
        self, layers: Sequence[str] | None = None, max_layers: int = 2, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.layers = list(layers) if layers is not None else None
        self.max_layers = max_layers

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # a layer that is not there is the user's mistake: said before training, not after it
        missing = [name for name in self.layers or () if name not in dict(pl_module.named_modules())]
        if missing:
            raise ValueError(f"ConvFilters: {type(pl_module).__name__} has no submodule named {missing}")

    def _feature_layers(self, pl_module: nn.Module) -> list[tuple[str, nn.Module]]:
        if self.layers is not None:
            modules = dict(pl_module.named_modules())
            return [(name, modules[name]) for name in self.layers]
        return [(name, m) for name, m in pl_module.named_modules() if isinstance(m, nn.Conv2d)]

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Figure] | None:
        first_conv = next((m for m in pl_module.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            self.does_not_apply(f"{type(pl_module).__name__} has no 2-D convolution")
            return None
        model_name = type(pl_module).__name__
        weight = first_conv.weight.detach().float().cpu().numpy()
        figures = {"conv_filters": plots.conv_filters(weight, title=f"First-layer filters: {model_name}")}
        image = next((inputs_and_targets(b)[0][:1] for b in validation_batches(trainer)), None)
        if not isinstance(image, Tensor) or image.ndim != 4 or not forward_takes_inputs_only(pl_module):
            return figures  # the filters alone: no image to run through the layers
        maps: dict[str, np.ndarray] = {}

        def keep(name: str) -> Any:
            # a copy now: an in-place ReLU after the layer would otherwise rewrite the stored map
            return lambda _module, _inputs, output: maps.__setitem__(name, output[0].detach().float().cpu().numpy().copy())

        hooks = [module.register_forward_hook(keep(name)) for name, module in self._feature_layers(pl_module)]
        try:
            with evaluating(pl_module):
                pl_module(image.to(pl_module.device))
        finally:
            for hook in hooks:
                hook.remove()
        maps = {name: m for name, m in maps.items() if m.ndim == 3}
        if self.layers is None:  # the first convolutions whose maps are still images (not 1x1)
            maps = dict([(name, m) for name, m in maps.items() if m.shape[1] * m.shape[2] > 1][: self.max_layers])
        if maps:
            figures["feature_maps"] = plots.feature_maps(
                image[0].float().cpu().numpy(), maps, title=f"Feature maps of one validation image: {model_name}"
            )
        return figures


def default_figures(
    every_n_epochs: int | None = None,
    *,
    feature_map_layers: Sequence[str] | None = None,
    gradient_flow_every_n_steps: int = 10,
) -> list[FigureCallback]:
    """The generic figures, each of which draws only when it applies to the model and data.

    Args:
        every_n_epochs: also draw every this many epochs (``None``: at the end of training only).
        feature_map_layers: the layers :class:`ConvFilters` shows (``None``: the first convolutions).
        gradient_flow_every_n_steps: how often :class:`GradientFlow` records the norms.
    """
    return [
        LearningCurves(every_n_epochs=every_n_epochs),
        ConfusionMatrix(every_n_epochs=every_n_epochs),
        DecisionBoundary(every_n_epochs=every_n_epochs),
        GradientFlow(every_n_steps=gradient_flow_every_n_steps, every_n_epochs=every_n_epochs),
        ConvFilters(layers=feature_map_layers, every_n_epochs=every_n_epochs),
    ]
