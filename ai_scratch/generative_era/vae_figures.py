"""The figures of the VAE (:mod:`ai_scratch.generative_era.vae`): reconstructions, the learned manifold
of a 2-D latent space, and where the validation digits land in it.

Drawing functions take NumPy arrays and return a matplotlib ``Figure`` (usable without a Trainer):

* :func:`image_rows_figure`: rows of images with a label before each row; the reconstructions,
  originals above and the decoder's means at ``z = mu`` below, so that the VAE's blur shows;
* :func:`manifold_figure`: the decoder's mean over a grid of ``z``, Kingma and Welling's Figure 4
  ("linearly spaced coordinates on the unit square were transformed through the inverse CDF of the
  Gaussian to produce values of the latent variables z");
* :func:`latent_codes_figure`: the encoder's means ``mu`` of labelled examples in a 2-D latent
  space, one colour per class, over the prior's circles.

The callbacks draw them at the end of training from the model and its validation data:
:class:`Reconstructions` (``reconstructions.png``), :class:`LatentManifold` (``latent_manifold.png``)
and :class:`LatentCodes` (``latent_codes.png``); the last two only for a 2-D latent space.
:func:`vae_figures` is the list :meth:`VAE.figures <ai_scratch.generative_era.vae.VAE.figures>` returns,
with the generic sample grid and latent interpolation of :mod:`callbacks.samples`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from callbacks import plots
from callbacks.batches import evaluating, inputs_and_targets, validation_batches
from callbacks.figures import FigureCallback, GradientFlow, LearningCurves
from callbacks.plots.convolutions import mosaic
from callbacks.samples import LatentInterpolation, SampleGrid

_GAP_COLOR = "white"  # the lines between tiles
_CMAP = "gray"  # ink white on black, as callbacks.samples shows images

#: The learning curves of a VAE fit: the loss (= -ELBO, so the ELBO itself is left out), its two
#: terms, and what validation measures.
CURVES = ("*_loss", "*_reconstruction", "*_kl", "val_reconstruction_mse", "val_fid", "val_classifier_score", "val_mmd")


def _image_range(images: np.ndarray) -> tuple[float, float]:
    """Grey levels: [0, 1] for ink intensities, widened to the data's range when it leaves it."""
    return min(0.0, float(np.nanmin(images))), max(1.0, float(np.nanmax(images)))


def _tiles(images: np.ndarray) -> np.ndarray:
    """``(n, h, w)`` tiles from ``(n, h, w)`` or single-channel ``(n, 1, h, w)`` images."""
    images = np.asarray(images, dtype=float)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images must be (n, h, w) or (n, 1, h, w), got shape {images.shape}")
    return images


def image_rows_figure(rows: Sequence[tuple[str, np.ndarray]], title: str, note: str = "") -> Figure:
    """Rows of images of one size, each with its label on the left.

    Args:
        rows: ``(label, images)`` pairs, images ``(n, h, w)`` or ``(n, 1, h, w)`` with the same ``n``.
        title: the figure's title.
        note: a line under the figure.
    """
    if not rows:
        raise ValueError("image_rows_figure needs at least one row")
    tiles = [(label, _tiles(images)) for label, images in rows]
    n, h, w = tiles[0][1].shape
    if any(t.shape != (n, h, w) for _, t in tiles):
        raise ValueError(f"every row needs {n} images of {h}x{w}, got {[t.shape for _, t in tiles]}")
    low, high = _image_range(np.concatenate([t for _, t in tiles]))
    width = max(6.0, 0.55 * n + 2.2)
    # the images' own height at the width they get (about 1.8 inches go to the row labels), room for
    # the labels' two lines, the title and the note
    row_height = max((width - 1.8) * h / (n * (w + 1)), 0.35)
    fig = plots.new_image_figure(width, len(tiles) * (row_height + 0.15) + 1.2)
    axes = fig.subplots(len(tiles), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, tiles):
        image, _ = mosaic(images, cols=n, gap=1)
        ax.set_facecolor(_GAP_COLOR)
        ax.imshow(image, cmap=_CMAP, vmin=low, vmax=high, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=plots.LABEL_SIZE)
    plots.add_title(fig, title)
    plots.add_note(fig, [note])
    return fig


def manifold_figure(images: np.ndarray, z1: np.ndarray, z2: np.ndarray, title: str, note: str = "") -> Figure:
    """The decoder's means over a grid of 2-D codes.

    Args:
        images: ``(rows, cols, h, w)``: the image decoded at ``(z1[col], z2[row])``.
        z1, z2: the grid's coordinates, ``(cols,)`` and ``(rows,)``; ``z2`` grows upwards (row 0 is
            drawn at the bottom).
        title, note: the figure's title and the line under it.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim != 4 or images.shape[:2] != (len(z2), len(z1)):
        raise ValueError(f"images must be (len(z2), len(z1), h, w) = ({len(z2)}, {len(z1)}, h, w), got {images.shape}")
    rows, cols, h, w = images.shape
    # the top row of the picture is the largest z2
    image, corners = mosaic(images[::-1].reshape(rows * cols, h, w), cols=cols, gap=1)
    low, high = _image_range(images)
    fig = plots.new_image_figure(7.2, 7.6)
    ax = fig.add_subplot()
    ax.set_facecolor(_GAP_COLOR)
    ax.imshow(image, cmap=_CMAP, vmin=low, vmax=high, interpolation="nearest")
    centres_x = corners[:cols, 1] + (w - 1) / 2
    centres_y = corners[::cols, 0] + (h - 1) / 2
    every = max(1, cols // 8)
    ax.set_xticks(centres_x[::every], [f"{v:.2g}" for v in z1[::every]])
    ax.set_yticks(centres_y[::every], [f"{v:.2g}" for v in z2[::-1][::every]])
    plots.style_axes(ax, xlabel="latent z1", ylabel="latent z2", grid=False)
    plots.add_title(fig, title)
    plots.add_note(fig, [note])
    return fig


def latent_codes_figure(codes: np.ndarray, labels: np.ndarray | None, title: str, note: str = "", class_names: Sequence[str] | None = None) -> Figure:
    """Codes ``(n, 2)`` as points coloured by their class, over the prior's 1, 2 and 3 sigma circles."""
    codes = np.asarray(codes, dtype=float)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"codes must be (n, 2), got shape {codes.shape}")
    fig = plots.new_image_figure(7.0, 6.4)
    ax = fig.add_subplot()
    for radius in (1, 2, 3):
        ax.add_patch(Circle((0, 0), radius, fill=False, linestyle=":", edgecolor="0.5", linewidth=1))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=10, color="C0", alpha=0.8)
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        colors = plots.qualitative_colors(len(classes))
        for color, value in zip(colors, classes):
            chosen = labels == value
            name = class_names[int(value)] if class_names is not None and 0 <= int(value) < len(class_names) else str(value)
            ax.scatter(codes[chosen, 0], codes[chosen, 1], s=12, color=color, alpha=0.85, label=name)
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), title="class", title_fontsize=plots.LEGEND_SIZE)
    reach = max(3.2, float(np.abs(codes).max()) * 1.05) if len(codes) else 3.2
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    plots.style_axes(ax, xlabel="latent z1 (encoder mean)", ylabel="latent z2 (encoder mean)")
    plots.add_title(fig, title)
    plots.add_note(fig, [note])
    return fig


# ---------------------------------------------------------------------- callbacks
def _images_and_labels(trainer: L.Trainer, limit: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Up to ``limit`` validation examples and their labels (``None`` when the batches have none)."""
    inputs, labels = [], []
    kept = 0
    for batch in validation_batches(trainer):
        x, y = inputs_and_targets(batch)
        inputs.append(x[: limit - kept])
        if isinstance(y, torch.Tensor):
            labels.append(y[: limit - kept])
        kept += len(inputs[-1])
        if kept >= limit:
            break
    if not inputs:
        return None, None
    return torch.cat(inputs), torch.cat(labels) if len(labels) == len(inputs) else None


def _is_image(shape: Sequence[int] | None) -> bool:
    return shape is not None and len(shape) == 3 and shape[0] == 1


def _model_name(pl_module: L.LightningModule) -> str:
    return "plain autoencoder" if getattr(pl_module, "variational", True) is False else "VAE"


#: :class:`Reconstructions` picks its images evenly from the first this many validation examples.
POOL = 1000


class Reconstructions(FigureCallback):
    """Validation images (top row) and the model's reconstructions, the decoder's mean at
    ``z = mu`` (bottom row), with the mean squared error per pixel.

    Args:
        n: how many images.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "reconstructions"

    def __init__(self, n: int = 12, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if n < 1:
            raise ValueError(f"Reconstructions: n must be at least 1, got {n}")
        self.n = n

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if not _is_image(getattr(pl_module, "input_size", None)):
            self.does_not_apply("the examples are not single-channel images")
            return None
        images, _ = _images_and_labels(trainer, POOL)
        if images is None:
            self.does_not_apply("there is no validation data")
            return None
        # evenly spread over the validation set, which may be ordered by class
        images = images[torch.linspace(0, len(images) - 1, min(self.n, len(images))).long()]
        with evaluating(pl_module):
            reconstructions = pl_module(images.to(pl_module.device)).float().cpu()
        error = float((reconstructions - images.float()).square().mean())
        name = _model_name(pl_module)
        latent = getattr(pl_module, "latent_dim", "?")
        return image_rows_figure(
            [("original", images.float().numpy()), (f"{name}\nreconstruction", reconstructions.numpy())],
            title=f"Reconstructions of validation images: {name}, {latent}-D latent (MSE {error:.4f} per pixel)",
            note="Top: the image x. Bottom: the decoder's mean E[x | z] at z = mu(x), the encoder's mean (no sampling). "
            + (
                "The plain autoencoder has no KL term: its code keeps whatever the decoder needs, so it reconstructs "
                "more sharply than a VAE of the same size."
                if name == "plain autoencoder"
                else "The VAE's KL term pulls codes towards the prior, so similar images share codes and come back "
                "averaged: blurrier than a plain autoencoder's."
            ),
        )


def standard_normal_quantiles(points: int, edge: float = 0.05) -> np.ndarray:
    """``points`` values of ``z`` through the inverse CDF of N(0, 1) at evenly spaced probabilities
    from ``edge`` to ``1 - edge`` (the paper's Figure 4 grid)."""
    probabilities = torch.linspace(edge, 1.0 - edge, points, dtype=torch.float64)
    return torch.special.ndtri(probabilities).numpy()


class LatentManifold(FigureCallback):
    """The decoder's mean over a grid of 2-D codes, spaced by the prior's inverse CDF (the paper's
    Figure 4). Only for a model with ``latent_dim == 2`` and image examples.

    Args:
        points: grid points per axis.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "latent_manifold"

    def __init__(self, points: int = 15, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if points < 2:
            raise ValueError(f"LatentManifold: points must be at least 2, got {points}")
        self.points = points

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if getattr(pl_module, "latent_dim", None) != 2 or not callable(getattr(pl_module, "decode", None)):
            self.does_not_apply("the model has no 2-D latent space to decode")
            return None
        if not _is_image(getattr(pl_module, "input_size", None)):
            self.does_not_apply("the examples are not single-channel images")
            return None
        values = standard_normal_quantiles(self.points)
        z2, z1 = np.meshgrid(values, values, indexing="ij")  # row: z2, column: z1
        codes = torch.tensor(np.stack([z1.ravel(), z2.ravel()], axis=1), dtype=torch.float32, device=pl_module.device)
        with evaluating(pl_module):
            images = pl_module.decode(codes).float().cpu().numpy()
        images = images.reshape(self.points, self.points, *images.shape[-2:])
        return manifold_figure(
            images,
            values,
            values,
            title=f"Learned manifold: the {_model_name(pl_module)}'s decoder over its 2-D latent space",
            note=(
                "Each tile is the decoder's mean E[x | z] at one z. The grid spaces probabilities 0.05 to 0.95 "
                "evenly and maps them through the inverse CDF of N(0, 1), so each tile covers an equal share of "
                "the prior (Kingma and Welling, 2013, Figure 4). Neighbouring codes give similar digits."
            ),
        )


class LatentCodes(FigureCallback):
    """Where the encoder puts the validation examples (``mu``), coloured by class. Only for a model
    with ``latent_dim == 2``.

    Args:
        n: at most this many validation examples.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "latent_codes"

    def __init__(self, n: int = 1000, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if n < 1:
            raise ValueError(f"LatentCodes: n must be at least 1, got {n}")
        self.n = n

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if getattr(pl_module, "latent_dim", None) != 2 or not callable(getattr(pl_module, "encode", None)):
            self.does_not_apply("the model has no 2-D latent space to show")
            return None
        inputs, labels = _images_and_labels(trainer, self.n)
        if inputs is None:
            self.does_not_apply("there is no validation data")
            return None
        with evaluating(pl_module):
            mu, _ = pl_module.encode(inputs.to(pl_module.device))
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        return latent_codes_figure(
            mu.float().cpu().numpy(),
            labels.numpy() if labels is not None else None,
            title=f"Validation examples in the {_model_name(pl_module)}'s 2-D latent space",
            note=(
                f"Each point is the encoder's mean mu(x) of one of {len(inputs)} validation examples. Dotted: the "
                "prior N(0, I)'s 1, 2 and 3 sigma circles, where the KL term pulls the codes."
            ),
            class_names=names,
        )


def vae_figures(pl_module: L.LightningModule, every_n_epochs: int | None = None) -> list[Callback]:
    """The figures of a VAE fit: learning curves, gradient flow, reconstructions, samples and latent
    interpolations (:mod:`callbacks.samples`), and for a 2-D latent space the manifold and the codes."""
    figures: list[Callback] = [
        LearningCurves(CURVES, every_n_epochs=every_n_epochs),
        GradientFlow(every_n_epochs=every_n_epochs),
        Reconstructions(every_n_epochs=every_n_epochs),
    ]
    figures += [SampleGrid(every_n_epochs=every_n_epochs), LatentInterpolation(every_n_epochs=every_n_epochs)]
    if getattr(pl_module, "latent_dim", None) == 2:
        figures += [LatentManifold(every_n_epochs=every_n_epochs), LatentCodes(every_n_epochs=every_n_epochs)]
    return figures
