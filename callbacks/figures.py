"""Figures of a fit, saved as PNG under the run's log dir and logged to wandb when a run exists.

Each figure is a callback. They work with any LightningModule whose batches are
``(inputs, targets)`` and whose forward returns class scores (``(N, C)``, or ``(N,)`` for a single
binary unit where a score >= 0 means class 1); a module may instead offer ``predict_labels(scores)``.

* :class:`LearningCurves`: the epoch metrics (``train_*``, ``val_*``, ``learning_rate``).
* :class:`ConfusionMatrix`: on the validation set at the end of the fit (torchmetrics, so all
  DDP processes contribute), from the module's own last validation when that came after the last
  optimizer step.
* :class:`DecisionBoundary`: for 2-D inputs, the regions the model assigns to each class.
* :class:`GradientFlow`: per-layer gradient L2 norms during training (vanishing gradients show).
* :class:`ConvFilters`: the first convolution's filters and the feature maps of the first
  convolutions (or of the layers you name) for one validation image.

Write your own by subclassing :class:`FigureCallback`: ``collect`` runs on every process (it may
use collective calls), ``draw`` on global rank zero only.

Every figure is drawn at the end of the fit, and also every ``every_n_epochs`` epochs if given
(saved as ``<name>_epoch<N>.png``). Without a logger the figures go under the Trainer's
``default_root_dir``. The end-of-fit figures are complete on disk and logged to wandb when
``on_fit_end`` has run (an error in writing one fails the fit there).

Where they are drawn: the figures above hand ``draw`` 's result over as a *recipe* (a picklable
call that builds the figure), and on Linux a second process, forked from the fit's when the
callbacks are set up, draws recipes from the front of a shared queue while the callbacks' own
process draws from the back (:mod:`callbacks._drawing`; the end of a LeNet-5 fit then takes about
0.5 s less on two cores). A figure the child cannot draw is drawn here, so none is lost.
``callbacks.use_drawing_process(False)`` keeps every figure in the callbacks' process. There,
matplotlib draws in the callbacks' own thread and one writer thread encodes the PNGs meanwhile.
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import move_data_to_device
from matplotlib import rc_context
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from callbacks import plots
from callbacks._drawing import SCHEDULER, Recipe, writer as _writer
from callbacks._wandb import run_is_disabled, wandb_installed, wandb_logger, warn_once
from callbacks.dispatch import EveryNSteps


class FigureCallback(Callback):
    """Base of the figure callbacks: when to draw, where to save, how to log.

    Args:
        every_n_epochs: also draw every this many epochs; ``None`` draws only at the end of the fit.
        log_to_wandb: log the PNG as a ``wandb.Image`` under ``figures/<name>`` when the trainer
            has a WandbLogger.
    """

    #: file stem and wandb key of the figure
    name: str = "figure"
    #: whether :meth:`draw` returns recipes: then the fit's figures are shared with a drawing
    #: process, forked when the callback is set up (see :mod:`callbacks._drawing`)
    draws_recipes: bool = False

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        if every_n_epochs is not None and every_n_epochs < 1:
            raise ValueError(f"{type(self).__name__}: every_n_epochs must be at least 1 or None, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.log_to_wandb = log_to_wandb
        self.directory: Path | None = None
        self.saved: list[Path] = []
        # (name, future, from a recipe, log it): the future resolves to the wandb.Image to log (when logged)
        self._pending: list[tuple[str, Future, bool, bool]] = []

    # ------------------------------------------------------------------ to override
    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Any:
        """Gather what the figure needs. Runs on every process; may use collective calls."""
        return None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | Recipe | dict[str, Figure | Recipe] | None:
        """Draw from ``data``: one figure (saved as ``<name>.png``), several by file stem, or ``None``
        when there is nothing to show. Rank zero only.

        Instead of a figure it may return a *recipe*: a picklable call that builds the figure, such
        as ``functools.partial(plots.learning_curves, history, title=...)`` (set
        :attr:`draws_recipes`). A recipe may be drawn in a second process while this one goes on."""
        raise NotImplementedError

    # ------------------------------------------------------------------ machinery
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts from rank zero (a collective call): resolve it here, on every rank.
        self.directory = Path(trainer.log_dir or trainer.default_root_dir) / "figures"
        if self.draws_recipes and stage == "fit" and trainer.is_global_zero:
            SCHEDULER.start()  # before training, so that the fork is cheap and the child warm by the end

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        SCHEDULER.stop()  # every figure is written by now (on_fit_end waited); the child ends

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.emit(trainer, pl_module, suffix=f"_epoch{trainer.current_epoch:03d}")

    # The end of training, not on_fit_end: by then the strategy has torn down and moved the module
    # to the CPU, so collect() would run the model there and, under DDP on GPUs, its collective calls
    # would hand CPU tensors to NCCL, which refuses them.
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.emit(trainer, pl_module, wait=False)  # written and logged by on_fit_end

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Whatever was drawn before the failure is kept; a failure of its own only warns here,
        # so that it does not hide the exception being handled.
        try:
            self.finish(trainer)
        except Exception as error:  # noqa: BLE001
            warn_once(f"{type(self).__name__}: a figure could not be written: {type(error).__name__}: {error}")

    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "", wait: bool = True) -> list[Path]:
        """Collect on every rank, then draw on rank zero and hand each figure's pixels to the
        writer thread, which encodes the PNG while this thread draws the next figure; a recipe
        joins the queue that the drawing process shares with this one. With ``wait`` the PNGs are
        written and logged before it returns; otherwise :meth:`finish` does that. Returns the PNG
        paths on rank zero."""
        data = self.collect(trainer, pl_module)
        if not trainer.is_global_zero:
            return []
        log = self.log_to_wandb and self._has_wandb_run(trainer)
        with rc_context(plots.RC):  # built and drawn in one style, whoever draws the figure
            drawn = self.draw(data, trainer, pl_module)
            figures = dict(drawn) if isinstance(drawn, dict) else {self.name: drawn} if drawn is not None else {}
            directory = self.directory or Path(trainer.default_root_dir) / "figures"
            paths = []
            for name, figure in figures.items():
                path = directory / f"{name}{suffix}.png"
                if isinstance(figure, Figure):
                    pixels = plots.render(figure)  # matplotlib: this thread only
                    self._pending.append((name, _writer().submit(_write, pixels, path, log), False, log))
                else:
                    written = SCHEDULER.submit(figure, path, then=_open_image if log else None)
                    self._pending.append((name, written, True, log))
                paths.append(path)
        self.saved.extend(paths)
        if wait:
            self.finish(trainer)
        return paths

    def finish(self, trainer: L.Trainer) -> None:
        """Wait for the figures handed to the writer thread (drawing the queued recipes that the
        drawing process has not taken) and log them to wandb, in the order they were drawn.
        Raises the first error of the writer (a full disk, say)."""
        pending, self._pending = self._pending, []
        if any(from_recipe for _, _, from_recipe, _ in pending):
            SCHEDULER.drain()
        errors = []
        for name, written, _, log in pending:
            try:
                image = written.result()
            except Exception as error:  # noqa: BLE001  (the rest is still waited for and logged)
                errors.append(error)
                continue
            if log:
                # One image, not Lightning's log_image list of one: wandb decodes every PNG of a
                # list again to compare their sizes (~10 ms a figure).
                wandb_logger(trainer).log_metrics({f"figures/{name}": image})
        if errors:
            raise errors[0]

    @staticmethod
    def _has_wandb_run(trainer: L.Trainer) -> bool:
        """Whether there is a wandb run to log to (without one, the PNG on disk is the record)."""
        logger = wandb_logger(trainer)
        return logger is not None and wandb_installed() and not run_is_disabled(logger.experiment)


def _write(pixels: Any, path: Path, log: bool) -> Any | None:
    """In the writer thread: the PNG, and the ``wandb.Image`` to log when ``log`` (wandb reads the
    file back for its size and checksum, which is done here too)."""
    plots.write_png(pixels, path)
    return _open_image(path) if log else None


def _open_image(path: Path) -> Any:
    import wandb

    return wandb.Image(str(path), caption=path.stem)


# ---------------------------------------------------------------------- helpers
def _inputs_targets(batch: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _labels(pl_module: L.LightningModule, scores: Tensor) -> Tensor:
    predict_labels = getattr(pl_module, "predict_labels", None)
    if callable(predict_labels):
        return predict_labels(scores)
    return scores.argmax(dim=-1) if scores.ndim > 1 else (scores >= 0).long()


def _val_loaders(trainer: L.Trainer) -> list[Any]:
    """The trainer's validation loaders as a list (empty when it has none)."""
    loaders = trainer.val_dataloaders
    if loaders is None:
        return []
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def _val_batch_count(trainer: L.Trainer) -> int | None:
    """How many batches one pass over the validation loaders has (None when a loader cannot say)."""
    try:
        return sum(len(loader) for loader in _val_loaders(trainer))
    except TypeError:  # an iterable loader without a length
        return None


def _val_batches(trainer: L.Trainer) -> Iterator[Any]:
    for loader in _val_loaders(trainer):
        yield from loader


class _evaluating:
    """Eval mode and no grad for a side pass, restoring the module's mode afterwards."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> None:
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        self.module.train(self.was_training)
        self.no_grad.__exit__(*exc)


def _class_names(trainer: L.Trainer, num_classes: int) -> list[str]:
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
    draws_recipes = True

    def __init__(
        self,
        patterns: Sequence[str] = ("train_*", "val_*", "learning_rate"),
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.patterns = tuple(patterns)
        self.history: dict[str, list[tuple[int, float]]] = {}

    def _record(self, trainer: L.Trainer, prefixes: tuple[str, ...], epoch: int) -> None:
        for key, value in trainer.callback_metrics.items():
            if not key.startswith(prefixes) or not any(fnmatch.fnmatchcase(key, p) for p in self.patterns):
                continue
            if isinstance(value, Tensor) and value.numel() != 1:
                continue
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

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Recipe | None:
        if not self.history:
            return None
        history = {key: list(points) for key, points in self.history.items()}  # as it is now
        return functools.partial(plots.learning_curves, history, title=f"Learning curves: {type(pl_module).__name__}")

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

    The matrix is built from the module's own validation: a forward hook keeps what the module
    returns for each validation batch (the module calling itself once per batch, as
    ``validation_step`` usually does). When the last validation ran after the last optimizer step
    and saw every batch, the final figure is that epoch's matrix, the predictions behind the
    logged ``val_*`` metrics; otherwise (no validation at the end, a ``validation_step`` that
    calls its network another way) the callback runs its own pass over the validation set.
    """

    name = "confusion_matrix"
    draws_recipes = True

    def __init__(self, num_classes: int | None = None, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.num_classes = num_classes
        self.matrix: np.ndarray | None = None
        self._hook: Any = None  # the forward hook, during a validation epoch of the fit
        self._scores: list[Any] = []  # what the module returned during the current batch
        self._epoch: dict[str, Any] | None = None  # the validation epoch in progress
        # the last complete validation of the fit: (global step, class count, predicted labels, targets)
        self._validated: tuple[int, int, list[Tensor], list[Tensor]] | None = None

    def _num_classes(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
        for source in (self.num_classes, getattr(pl_module, "num_classes", None), getattr(trainer.datamodule, "num_classes", None)):
            if isinstance(source, int) and source >= 2:
                return source
        return None

    def _new_metric(self, trainer: L.Trainer, pl_module: L.LightningModule, scores: Tensor) -> MulticlassConfusionMatrix:
        return MulticlassConfusionMatrix(self._class_count(trainer, pl_module, scores)).to(pl_module.device)

    def _class_count(self, trainer: L.Trainer, pl_module: L.LightningModule, scores: Tensor) -> int:
        # unknown class count: the width of the scores says it (one score: binary)
        return self._num_classes(trainer, pl_module) or (scores.shape[-1] if scores.ndim > 1 else 2)

    # ------------------------------------------------------------------ the module's own validation
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._remove_hook()
        self._epoch = {"predicted": [], "targets": [], "batches": 0, "usable": True}
        self._hook = pl_module.register_forward_hook(lambda _module, _inputs, output: self._scores.append(output))

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._scores.clear()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        epoch, scores = self._epoch, self._scores
        if epoch is None or not epoch["usable"]:
            return
        target = _inputs_targets(batch)[1]
        if (len(scores) != 1 or not isinstance(scores[0], Tensor) or target is None or target.is_floating_point()
                or scores[0].shape[:1] != target.shape[:1]):
            epoch["usable"] = False  # not one call with one score row per example: the side pass will do
            return
        # Kept, not counted yet: only the last validation's matrix is drawn, and one update of the
        # metric at the end costs what one batch's does (torchmetrics checks its inputs per call).
        if not epoch["predicted"]:
            epoch["num_classes"] = self._class_count(trainer, pl_module, scores[0])
        epoch["predicted"].append(_labels(pl_module, scores[0].detach()))
        epoch["targets"].append(target.detach())
        epoch["batches"] += 1

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, self._epoch = self._epoch, None
        self._remove_hook()
        if epoch is None:
            return
        complete = epoch["usable"] and epoch["batches"] > 0 and epoch["batches"] == _val_batch_count(trainer)
        self._validated = (trainer.global_step, epoch["num_classes"], epoch["predicted"], epoch["targets"]) if complete else None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._remove_hook()
        super().on_exception(trainer, pl_module, exception)

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._scores.clear()

    # ------------------------------------------------------------------ the figure's data
    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> np.ndarray | None:
        if trainer.val_dataloaders is None:
            return None
        validated = self._validated is not None and self._validated[0] == trainer.global_step
        # compute() below is collective: every process takes the same branch
        if trainer.strategy.reduce_boolean_decision(validated, all=True):
            _, num_classes, predicted, targets = self._validated
            last_validation = MulticlassConfusionMatrix(num_classes).to(pl_module.device)
            last_validation.update(torch.cat(predicted), torch.cat(targets))
            return last_validation.compute().cpu().numpy()  # compute() synchronises across processes
        metric: MulticlassConfusionMatrix | None = None
        with _evaluating(pl_module):
            for batch in _val_batches(trainer):
                inputs, target = _inputs_targets(move_data_to_device(batch, pl_module.device))
                if target is None or target.is_floating_point():
                    return None  # no class labels (e.g. an associative memory's target patterns)
                scores = pl_module(inputs)
                if metric is None:
                    metric = self._new_metric(trainer, pl_module, scores)
                metric.update(_labels(pl_module, scores), target)
        if metric is None:
            return None
        return metric.compute().cpu().numpy()  # compute() synchronises across processes

    def draw(self, data: np.ndarray | None, trainer: L.Trainer, pl_module: L.LightningModule) -> Recipe | None:
        if data is None:
            warn_once("ConfusionMatrix: no number of classes or no labelled validation data; no confusion matrix drawn.")
            return None
        self.matrix = data
        names = _class_names(trainer, len(data))
        return functools.partial(plots.confusion_matrix, data, names,
                                 title=f"Confusion matrix, validation set: {type(pl_module).__name__}")


# ---------------------------------------------------------------------- decision boundary
class DecisionBoundary(FigureCallback):
    """The class regions of a model with 2-D inputs, with the validation points on top.

    Args:
        resolution: grid points per axis.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    Drawn on rank zero from its share of the validation data. Inputs that are not 2-D are
    skipped silently (the figure has no meaning there). The axes are named after the
    datamodule's ``feature_names`` when it has two.
    """

    name = "decision_boundary"
    draws_recipes = True

    def __init__(self, resolution: int = 200, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if resolution < 10:
            raise ValueError(f"DecisionBoundary: resolution must be at least 10, got {resolution}")
        self.resolution = resolution

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Recipe | None:
        inputs, targets = [], []
        for batch in _val_batches(trainer):
            x, y = _inputs_targets(batch)
            if x.ndim != 2 or x.shape[1] != 2 or y is None:
                return None
            inputs.append(x.detach().cpu())
            targets.append(y.detach().cpu())
        if not inputs:
            return None
        points = torch.cat(inputs).float().numpy()
        labels = torch.cat(targets).numpy()
        xx, yy = plots.make_grid(points, resolution=self.resolution)
        grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)).to(pl_module.device)
        with _evaluating(pl_module):
            grid_labels = _labels(pl_module, pl_module(grid)).cpu().numpy().reshape(xx.shape)
            predicted = _labels(pl_module, pl_module(torch.from_numpy(points).to(pl_module.device))).cpu().numpy()
        names = _class_names(trainer, int(max(grid_labels.max(), labels.max())) + 1)
        axes = getattr(trainer.datamodule, "feature_names", None) if trainer.datamodule is not None else None
        xlabel, ylabel = (str(axes[0]), str(axes[1])) if axes is not None and len(axes) == 2 else ("x1", "x2")
        return functools.partial(
            plots.decision_boundary, xx, yy, grid_labels, points, labels, names,
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
    Lightning has unscaled them. A NumPy-era learner may put its gradients there too. A module that
    learns without gradients gets no figure.
    """

    name = "gradient_flow"
    draws_recipes = True

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
        self._watched: list[tuple[str, nn.Parameter]] = []
        self._due = EveryNSteps()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # named_parameters() walks every submodule (metrics included): once per fit, not per record;
        # only rank zero records
        self._watched = [(n, p) for n, p in pl_module.named_parameters() if p.ndim >= 2 or not self.weights_only] if trainer.is_global_zero else []
        self._due.start(trainer, self.every_n_steps)  # as set now (the CLI may set it after construction)

    # Before the optimizer step, not at the end of the batch: with gradient accumulation a batch
    # may end without a step (its gradients a partial sum), and by the step's count, not the batch's
    # index within the epoch, the records are evenly spaced across epochs.
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if not self._watched:
            return
        step = self._due.due(trainer, self.every_n_steps)
        if step is None:
            return
        named = [(n, p.grad) for n, p in self._watched if p.grad is not None]
        if not named:
            return
        norms = torch.stack([g.detach().float().norm(2) for _, g in named]).tolist()  # one device sync
        values = dict(zip((n for n, _ in named), norms))
        self.steps.append(step)
        for name in list(self.norms) + [n for n in values if n not in self.norms]:
            self.norms.setdefault(name, [math.nan] * (len(self.steps) - 1)).append(values.get(name, math.nan))

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Recipe | None:
        if not self.steps:
            return None
        norms = {name: list(values) for name, values in self.norms.items()}  # as they are now
        return functools.partial(plots.gradient_flow, list(self.steps), norms,
                                 title=f"Gradient flow: {type(pl_module).__name__}")

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
            outputs are still images (larger than 1x1). A model may name its own in a
            ``feature_map_layers`` attribute, which the ``ai-scratch`` CLI passes here.
        max_layers: how many convolutions to show when ``layers`` is not given.
        every_n_epochs, log_to_wandb: see :class:`FigureCallback`.

    Writes two files: ``conv_filters.png`` and ``feature_maps.png``. A module without a 2-D
    convolution gets no figure.
    """

    name = "conv_filters"
    draws_recipes = True

    def __init__(
        self, layers: Sequence[str] | None = None, max_layers: int = 2, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.layers = list(layers) if layers is not None else None
        self.max_layers = max_layers

    def _feature_layers(self, pl_module: nn.Module) -> list[tuple[str, nn.Module]]:
        modules = dict(pl_module.named_modules())
        if self.layers is not None:
            missing = [name for name in self.layers if name not in modules]
            if missing:
                raise ValueError(f"ConvFilters: {type(pl_module).__name__} has no submodule named {missing}")
            return [(name, modules[name]) for name in self.layers]
        return [(name, m) for name, m in pl_module.named_modules() if isinstance(m, nn.Conv2d)]

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Recipe] | None:
        first_conv = next((m for m in pl_module.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            return None
        model_name = type(pl_module).__name__
        weight = first_conv.weight.detach().float().cpu().numpy()
        figures = {"conv_filters": functools.partial(plots.conv_filters, weight, title=f"First-layer filters: {model_name}")}
        image = next((_inputs_targets(b)[0][:1] for b in _val_batches(trainer)), None)
        if image is None or image.ndim != 4:
            return figures
        maps: dict[str, np.ndarray] = {}

        def keep(name: str) -> Any:
            # a copy now: an in-place ReLU after the layer would otherwise rewrite the stored map
            return lambda _module, _inputs, output: maps.__setitem__(name, output[0].detach().float().cpu().numpy().copy())

        hooks = [module.register_forward_hook(keep(name)) for name, module in self._feature_layers(pl_module)]
        try:
            with _evaluating(pl_module):
                pl_module(image.to(pl_module.device))
        finally:
            for hook in hooks:
                hook.remove()
        maps = {name: m for name, m in maps.items() if m.ndim == 3}
        if self.layers is None:  # the first convolutions whose maps are still images (not 1x1)
            maps = dict([(name, m) for name, m in maps.items() if m.shape[1] * m.shape[2] > 1][: self.max_layers])
        if maps:
            figures["feature_maps"] = functools.partial(
                plots.feature_maps, image[0].float().cpu().numpy(), maps, title=f"Feature maps of one validation image: {model_name}"
            )
        return figures


def default_figures(every_n_epochs: int | None = None) -> list[FigureCallback]:
    """The generic figures, each of which draws only when it applies to the model and data."""
    return [
        LearningCurves(every_n_epochs=every_n_epochs),
        ConfusionMatrix(every_n_epochs=every_n_epochs),
        DecisionBoundary(every_n_epochs=every_n_epochs),
        GradientFlow(every_n_epochs=every_n_epochs),
        ConvFilters(every_n_epochs=every_n_epochs),
    ]
