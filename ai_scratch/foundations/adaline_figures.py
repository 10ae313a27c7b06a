"""The figures of ADALINE (:mod:`ai_scratch.foundations.adaline`): the road to least squares, and
ADALINE beside the Perceptron.

* :class:`LeastSquaresConvergence` (``least_squares.png``): the mean squared error that LMS descends,
  with the least-squares floor J(w*) it descends to, and the distance of the weights to w*;
* :class:`AdalineVsPerceptron` (``adaline_vs_perceptron.png``): ADALINE's mean squared error beside
  the mistakes of each rule, on the same batches (``Adaline(compare_perceptron=True)``).

Both record the epoch metrics as :class:`~callbacks.figures.LearningCurves` does, so a resumed fit
draws its whole history. :meth:`Adaline.figures <ai_scratch.foundations.adaline.Adaline.figures>`
names them.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ai_scratch.foundations.adaline import DIVERGENCE_ERROR, AdalineLearner
from callbacks import plots
from callbacks.figures import LearningCurves

EPOCHS = "epoch (one pass over the training split)"

def _points(history: dict[str, list[tuple[int, float]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and values of one recorded metric, in epoch order; inf and NaN as NaN."""
    points = sorted(history.get(key, []))
    epochs = np.array([e for e, _ in points], dtype=float)
    values = np.array([v for _, v in points], dtype=float)
    values[~np.isfinite(values)] = np.nan
    return epochs, values


def _mse_panel(ax: Any, history: dict[str, list[tuple[int, float]]], title: str) -> None:
    """ADALINE's MSE per epoch with the least-squares floor J(w*) it descends to."""
    epochs, mse = _points(history, "train_loss")
    _, floor = _points(history, "train_lstsq_loss")
    ax.plot(epochs, mse, color="C0", linewidth=1.8, marker="o", markersize=3, markevery=max(1, len(mse) // 25),
            label="ADALINE: MSE of the linear output during the pass (train_loss)")
    if np.isfinite(floor).any():
        level = float(floor[np.isfinite(floor)][-1])
        ax.axhline(level, color="0.3", linestyle="--", linewidth=1.3,
                   label=f"least-squares minimum J(w*) = {level:.3g} (numpy.linalg.lstsq's weights)")
    finite = mse[np.isfinite(mse)]
    ylabel = "mean squared error"
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        values = np.concatenate([finite, floor[np.isfinite(floor) & (floor > 0)]])
        plots.log_y(ax, float(values.min()), float(values.max()))
        ylabel += " (log scale)"
    elif finite.size:
        ax.set_ylim(0, max(1.05, float(finite.max()) * 1.05))
    plots.style_axes(ax, title, None, ylabel)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="best", framealpha=0.9)


def _epoch_ticks(ax: Any, epochs: np.ndarray) -> None:
    """Whole epochs on the x axis, which spans the recorded ones (a single epoch too)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs.size:
        lo, hi = float(epochs.min()), float(epochs.max())
        pad = 0.5 if hi == lo else 0.02 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)


class LeastSquaresConvergence(LearningCurves):
    """Does LMS reach the least-squares weights? MSE against its floor, and the distance to w*.

    (a) ``train_loss`` with the least-squares MSE J(w*) as a dashed line; (b) the relative distance
    ``||w~ - w~*|| / ||w~*||`` on a log scale: it starts at 1 from zero weights and falls towards 0
    when eta is below 2 / lambda_max, or climbs when it is above. Saved as ``least_squares.png``.

    It records the metrics as :class:`~callbacks.figures.LearningCurves` does (on every process,
    kept in the callback's state so that a resumed fit draws the whole history).
    """

    name = "least_squares"

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(("train_loss", "train_lstsq_loss", "train_lstsq_distance"), every_n_epochs, log_to_wandb)

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if "train_loss" not in self.history:
            return None
        fig = plots.new_figure(9.5, 7.5)
        top, bottom = fig.subplots(2, 1, sharex=True)
        _mse_panel(top, self.history, "(a) What LMS descends: the mean squared error")
        epochs, distance = _points(self.history, "train_lstsq_distance")
        if np.isfinite(distance).any():
            bottom.plot(epochs, distance, color="C3", linewidth=1.8, marker="o", markersize=3,
                        markevery=max(1, len(distance) // 25), label="||w - w*|| / ||w*||")
            bottom.axhline(1.0, color="0.45", linestyle=":", linewidth=1.2, label="1: where zero weights start")
            positive = distance[np.isfinite(distance) & (distance > 0)]
            plots.log_y(bottom, float(min(positive.min(), 1.0)), float(max(positive.max(), 1.0)))
            bottom.legend(fontsize=plots.LEGEND_SIZE, loc="best", framealpha=0.9)
        plots.style_axes(bottom, "(b) Distance to the least-squares weights w*", EPOCHS, "relative distance (log scale)")
        _epoch_ticks(bottom, epochs)
        learner = getattr(pl_module, "learner", None)
        notes = []
        if isinstance(learner, AdalineLearner) and learner.statistics()["count"] > 0:
            limit = learner.stability_limit()
            notes.append(
                f"{learner.mode} LMS, eta = {learner.learning_rate:.4g} = {learner.learning_rate / limit:.3g} × 2/λmax "
                f"(λmax = {learner.lambda_max():.4g} of the inputs' correlation matrix R)"
            )
            if learner.diverged:
                notes.append(f"diverged: the rule stopped in update {learner.diverged_at}, its error on the linear output past {DIVERGENCE_ERROR:.0e}")
        plots.add_note(fig, notes)
        fig.suptitle(f"Least squares: {type(pl_module).__name__}", fontsize=plots.SUPTITLE_SIZE)
        return fig


class AdalineVsPerceptron(LearningCurves):
    """ADALINE's mean squared error against the Perceptron's mistakes, on the same batches.

    (a) ADALINE's ``train_loss``, the smooth quantity LMS descends, with its least-squares floor;
    (b) the mistakes of each training pass: the Perceptron's (``train_perceptron_errors``), the
    only signal its rule has, and ADALINE's in the same pass (``train_errors``). On overlapping
    classes the MSE settles while the Perceptron's count keeps jumping: its rule never stops
    correcting. Saved as ``adaline_vs_perceptron.png``; needs ``Adaline(compare_perceptron=True)``.
    """

    name = "adaline_vs_perceptron"

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        patterns = ("train_loss", "train_lstsq_loss", "train_errors", "train_perceptron_errors", "val_accuracy", "val_perceptron_accuracy")
        super().__init__(patterns, every_n_epochs, log_to_wandb)

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if "train_perceptron_errors" not in self.history:
            return None
        fig = plots.new_figure(9.5, 7.5)
        top, bottom = fig.subplots(2, 1, sharex=True)
        _mse_panel(top, self.history, "(a) ADALINE learns from the linear output: its mean squared error")
        epochs, perceptron = _points(self.history, "train_perceptron_errors")
        _, adaline = _points(self.history, "train_errors")
        bottom.plot(epochs, perceptron, color="C1", linewidth=1.6, marker="s", markersize=3.5,
                    markevery=max(1, len(perceptron) // 25), drawstyle="steps-mid", label="Perceptron (what its rule learns from)")
        if adaline.size:
            bottom.plot(epochs[: adaline.size], adaline, color="C0", linewidth=1.6, marker="o", markersize=3,
                        markevery=max(1, len(adaline) // 25), drawstyle="steps-mid", label="ADALINE (sign of its output, same pass)")
        bottom.set_ylim(bottom=0)
        plots.style_axes(bottom, "(b) Mistakes during each training pass, on the same samples in the same order", EPOCHS, "mistakes per pass")
        bottom.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)
        _epoch_ticks(bottom, epochs)
        notes = []
        tail = perceptron[-10:][np.isfinite(perceptron[-10:])]
        if tail.size:
            notes.append(f"last {tail.size} passes: the Perceptron made {int(tail.min())} to {int(tail.max())} mistakes per pass"
                         + (f", ADALINE {int(np.nanmin(adaline[-10:]))} to {int(np.nanmax(adaline[-10:]))}" if adaline.size else ""))
        _, val_adaline = _points(self.history, "val_accuracy")
        _, val_perceptron = _points(self.history, "val_perceptron_accuracy")
        if val_adaline.size and val_perceptron.size:
            notes.append(f"validation accuracy after the last epoch: ADALINE {val_adaline[-1]:.3f}, Perceptron {val_perceptron[-1]:.3f}")
        plots.add_note(fig, notes)
        fig.suptitle("ADALINE vs Perceptron on the same batches", fontsize=plots.SUPTITLE_SIZE)
        return fig
