"""The figures of the GAN and the DCGAN (:mod:`ai_scratch.generative_era.gan`, :mod:`~ai_scratch.generative_era.dcgan`).

* :class:`AdversarialCurves` (``adversarial_curves.png``): the two players' losses on one plot, with
  the values they take at the game's equilibrium, and the discriminator's mean outputs on real
  examples and on samples, which meet at 1/2 when D can no longer tell them apart.
* :class:`DiscriminatorSurface` (``discriminator_surface.png``): for points in the plane, samples
  over the held-out data, on a background coloured by D(x): where D believes the data is.
* Sample grids and latent walks: ``callbacks.samples.SampleGrid`` and ``LatentInterpolation``,
  which any model with ``sample(n)``, ``latent_dim`` and ``decode(z)`` gets.

:func:`adversarial_figures` is what :meth:`AdversarialModel.figures
<ai_scratch.generative_era.gan.AdversarialModel.figures>` returns. :func:`adversarial_curves_figure`
and :func:`discriminator_surface_figure` draw the same from arrays, without a Trainer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure

from callbacks import plots
from callbacks.batches import evaluating, validation_batches
from callbacks.figures import FigureCallback, LearningCurves
from callbacks.samples import LatentInterpolation, SampleGrid

#: The equilibrium of Theorem 1 (D = 1/2 everywhere): D's loss -V = log 4, and G's loss for each kind.
EQUILIBRIUM = {"d_loss": math.log(4.0), "non_saturating": math.log(2.0), "saturating": -math.log(2.0)}


# ---------------------------------------------------------------------- losses and D's outputs
class AdversarialCurves(LearningCurves):
    """Both players' losses on one panel and D's mean outputs on another, per epoch.

    (a) D's loss ``-V(D, G)`` and G's loss, training (dashed) and validation (solid), with their
    values at the equilibrium as dotted lines: ``log 4`` for D; ``log 2`` for the non-saturating
    ``-log D(G(z))``, ``-log 2`` for the saturating ``log(1 - D(G(z)))``. A GAN's losses do not fall
    to zero as a classifier's do: they circle the equilibrium, and a D loss that falls far below
    ``log 4`` means D wins. (b) The mean of D(x) over real examples and of D(G(z)) over samples;
    both move to 1/2 as the samples become indistinguishable from the data.

    Args:
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "adversarial_curves"

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(("train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "val_d_loss", "val_g_loss", "val_d_real", "val_d_fake"),
                         every_n_epochs, log_to_wandb)  # fmt: skip

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if not self.history:
            self.does_not_apply("no d_loss / g_loss was logged (it draws the losses of an adversarial model)")
            return None
        kind = str(getattr(pl_module, "generator_loss_kind", "non_saturating"))
        batch_norm = any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in pl_module.modules())
        return adversarial_curves_figure(self.history, kind, title=f"The adversarial game: {type(pl_module).__name__}", batch_norm=batch_norm)


def adversarial_curves_figure(history: Mapping[str, Sequence[tuple[int, float]]], generator_loss: str, title: str, batch_norm: bool = False) -> Figure:
    """The figure of :class:`AdversarialCurves` from ``{metric: [(epoch, value), ...]}``; with
    ``batch_norm`` the caption says why the validation points of a network with batch norm swing."""
    fig = plots.new_figure(12.5, 4.8)
    losses, outputs = fig.subplots(1, 2)
    styles = {"train": ("--", "o"), "val": ("-", "s")}
    colors = {"d_loss": "C3", "g_loss": "C0", "d_real": "C2", "d_fake": "C1"}
    labels = {"d_loss": "D's loss  -V(D, G)", "g_loss": f"G's loss  {'log(1 - D(G(z)))' if generator_loss == 'saturating' else '-log D(G(z))'}",
              "d_real": "mean D(x), real examples", "d_fake": "mean D(G(z)), samples"}  # fmt: skip
    for name, points in sorted(history.items()):
        split, _, term = name.partition("_")
        if term not in colors or split not in styles or not points:
            continue
        epochs, values = zip(*sorted(points))
        linestyle, marker = styles[split]
        ax = losses if term.endswith("loss") else outputs
        ax.plot(epochs, values, linestyle=linestyle, marker=marker, markersize=3, color=colors[term], label=f"{labels[term]} ({split})")
    losses.axhline(EQUILIBRIUM["d_loss"], color=colors["d_loss"], linestyle=":", linewidth=1.2, label="D's loss at the equilibrium, log 4")
    g_equilibrium = EQUILIBRIUM.get(generator_loss, EQUILIBRIUM["non_saturating"])
    losses.axhline(g_equilibrium, color=colors["g_loss"], linestyle=":", linewidth=1.2,
                   label=f"G's loss at the equilibrium, {'-log 2' if g_equilibrium < 0 else 'log 2'}")  # fmt: skip
    outputs.axhline(0.5, color="0.3", linestyle=":", linewidth=1.2, label="1/2: D cannot tell real from fake")
    outputs.set_ylim(-0.03, 1.03)
    plots.style_axes(losses, "(a) Both players' losses", "epoch", "loss")
    plots.style_axes(outputs, "(b) What D says: the probability of 'real'", "epoch", "mean D output")
    for ax in (losses, outputs):
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(0.0, -0.15), ncols=2, frameon=False)
    plots.add_title(fig, title)
    plots.add_note(fig, ["Dashed: training (epoch means), solid: validation. A GAN's losses circle the equilibrium of Theorem 1 "
                         "(D = 1/2 everywhere) instead of falling to 0; D's loss far below log 4 means D is winning.",
                         *(["Validation runs D on batch-norm statistics pooled over real and fake batches (training normalises each batch by its own), "
                            "so its points swing: read the game in the dashed lines."]
                           if batch_norm else [])])  # fmt: skip
    return fig


# ---------------------------------------------------------------------- D's decision surface
class DiscriminatorSurface(FigureCallback):
    """For points in the plane: samples and held-out data over the discriminator's output D(x).

    The background is D(x) on a grid (red: D says "real", blue: "fake"), the grey dots are held-out
    data, the orange dots samples of G, and crosses the modes when the data has them. Proposition 1:
    the best D is ``p_data / (p_data + p_g)``, high where data outnumbers samples; when the samples
    match the data D is 1/2 everywhere. For a model whose examples are not points in the plane it
    says so once and draws nothing.

    Args:
        samples: how many samples to draw.
        resolution: grid points per axis.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "discriminator_surface"

    def __init__(self, samples: int = 1000, resolution: int = 150, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if samples < 1 or resolution < 10:
            raise ValueError(f"DiscriminatorSurface: samples must be >= 1 and resolution >= 10, got {samples} and {resolution}")
        self.samples, self.resolution = samples, resolution

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if tuple(getattr(pl_module, "data_shape", ())) != (2,) or not hasattr(pl_module, "discriminate"):
            self.does_not_apply(f"{type(pl_module).__name__} does not play the adversarial game on points in the plane")
            return None
        held_out = [batch[0] if isinstance(batch, (tuple, list)) else batch for batch in validation_batches(trainer)]
        if not held_out:
            self.does_not_apply("there is no validation data")
            return None
        points = torch.cat(held_out).float().cpu().numpy()
        with evaluating(pl_module):
            samples = pl_module.sample(self.samples).float().cpu().numpy()
            xx, yy = plots.make_grid(np.concatenate([points, samples]), resolution=self.resolution, margin=0.08)
            grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)).to(pl_module.device)
            surface = torch.sigmoid(pl_module.discriminate(grid)).float().cpu().numpy().reshape(xx.shape)
        modes = getattr(trainer.datamodule, "modes", None) if trainer.datamodule is not None else None
        coverage = None
        if modes is not None:
            from ai_scratch.generative_era.evaluation import mode_coverage
            from datamodules.points import RING_STD

            values = mode_coverage(torch.from_numpy(samples), modes, getattr(trainer.datamodule, "mode_std", RING_STD))
            coverage = (int(values["modes_covered"]), len(modes), float(values["high_quality_fraction"]))
        return discriminator_surface_figure(xx, yy, surface, points, samples, modes, coverage,
                                            title=f"Samples over the discriminator's surface: {type(pl_module).__name__}, epoch {trainer.current_epoch}")  # fmt: skip


def discriminator_surface_figure(
    xx: np.ndarray,
    yy: np.ndarray,
    surface: np.ndarray,
    points: np.ndarray,
    samples: np.ndarray,
    modes: np.ndarray | None,
    coverage: tuple[int, int, float] | None,
    title: str,
) -> Figure:
    """The figure of :class:`DiscriminatorSurface` from a grid, D(x) on it, held-out points and samples."""
    fig = plots.new_image_figure(7.6, 7.2)
    ax = fig.subplots()
    filled = ax.contourf(xx, yy, surface, levels=np.linspace(0.0, 1.0, 21), cmap="RdBu_r", alpha=0.75)
    ax.contour(xx, yy, surface, levels=[0.5], colors="0.15", linewidths=1.0)
    colorbar = fig.colorbar(filled, ax=ax, shrink=0.8, ticks=[0, 0.25, 0.5, 0.75, 1])
    colorbar.set_label("D(x): the probability D gives to 'real'", fontsize=plots.LABEL_SIZE)
    ax.scatter(points[:, 0], points[:, 1], s=6, color="0.25", alpha=0.5, label=f"held-out data (n={len(points)})")
    ax.scatter(samples[:, 0], samples[:, 1], s=6, color="darkorange", alpha=0.7, label=f"samples G(z) (n={len(samples)})")
    if modes is not None:
        modes = np.asarray(modes)
        ax.scatter(modes[:, 0], modes[:, 1], s=90, marker="x", color="black", linewidths=2, label="the modes")
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_aspect("equal", adjustable="box")
    plots.style_axes(ax, "black line: D(x) = 1/2", "x", "y", grid=False)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(0.0, -0.1), ncols=3, frameon=False, markerscale=2)
    plots.add_title(fig, title)
    notes = ["Red: D says 'real', blue: 'fake'. The best D is p_data / (p_data + p_g) (Proposition 1): red where data outnumbers "
             "samples, blue where samples land without data, 1/2 everywhere once they match."]  # fmt: skip
    if coverage is not None:
        covered, total, fraction = coverage
        notes.append(f"{covered} of {total} modes covered; {fraction:.0%} of the samples within 3 standard deviations of a mode.")
    plots.add_note(fig, notes)
    return fig


# ---------------------------------------------------------------------- what a run draws
def adversarial_figures(pl_module: L.LightningModule, every_n_epochs: int | None = None) -> list[Callback]:
    """The figures of an adversarial model: learning curves (every metric but ``val_loss``, which
    repeats ``val_d_loss``), :class:`AdversarialCurves`, :class:`DiscriminatorSurface` for points in
    the plane, and the generic sample grid and latent walk of ``callbacks.samples``."""
    figures: list[Callback] = [
        LearningCurves(("train_*", "val_[!l]*", "learning_rate"), every_n_epochs=every_n_epochs),
        AdversarialCurves(every_n_epochs=every_n_epochs),
    ]
    if tuple(getattr(pl_module, "data_shape", ())) == (2,):
        figures.append(DiscriminatorSurface(every_n_epochs=every_n_epochs))
    figures += [SampleGrid(every_n_epochs=every_n_epochs), LatentInterpolation(every_n_epochs=every_n_epochs)]
    return figures
