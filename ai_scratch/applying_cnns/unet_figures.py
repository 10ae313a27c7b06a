"""The figures of U-Net (:mod:`ai_scratch.applying_cnns.unet`): what it sees, what it should say, what
it says, and where the loss looks hardest.

:func:`segmentation_figure` takes NumPy arrays and returns a matplotlib ``Figure`` (usable without
a Trainer): one row per image, four panels:

* the input, with the mirrored border of the overlap-tile strategy outside a dashed square (the
  output covers only the square);
* the true classes;
* the predicted classes, the wrong pixels in red;
* the weight map ``w(x)`` of eq. 2, large on the thin membranes between touching cells.

:class:`SegmentationPredictions` draws it at the end of training from the model and the first
validation images (``segmentation.png``); with a wandb run it also logs the images with wandb's
native mask overlays (truth and prediction, toggled per class in the UI) under
``figures/segmentation_masks``. :func:`unet_figures` is the list that :meth:`UNet.figures
<ai_scratch.applying_cnns.unet.UNet.figures>` returns, with the generic learning curves, gradient
flow and feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from callbacks import plots
from callbacks.batches import evaluating, inputs_and_targets, validation_batches
from callbacks.figures import ConvFilters, FigureCallback, GradientFlow, LearningCurves
from callbacks.wandb_helpers import run_is_disabled, wandb_installed, wandb_logger

#: The learning curves of a segmentation fit.
CURVES = ("*_loss", "*_accuracy", "val_iou", "val_instance_recall", "val_merged_pairs", "learning_rate")
_ERROR_COLOUR = (0.85, 0.1, 0.1)


def _class_colours(num_classes: int) -> ListedColormap:
    """Black and white for two classes (membrane, cell), a qualitative palette for more."""
    if num_classes == 2:
        return ListedColormap([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
    return ListedColormap(plots.qualitative_colors(num_classes)[:, :3])


def _greys(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(H, W)`` with a grey colour map for one channel, ``(H, W, 3)`` for three."""
    return (image[0], "gray") if image.shape[0] == 1 else (np.clip(image[:3].transpose(1, 2, 0), 0, 1), None)


def segmentation_figure(
    images: np.ndarray,
    truths: np.ndarray,
    predictions: np.ndarray,
    weight_maps: np.ndarray | None,
    class_names: Sequence[str],
    title: str,
    note: str = "",
    ignore_index: int = 255,
) -> Figure:
    """Input, truth, prediction and weight map of a few images, one row each.

    Args:
        images: ``(n, C, H', W')`` inputs (``H' >= H``: the mirrored border around the output).
        truths, predictions: ``(n, H, W)`` classes (``ignore_index`` for unscored pixels in ``truths``).
        weight_maps: ``(n, H, W)`` weights, or ``None`` (the column is left out).
        class_names: one name per class, for the legend.
        title, note: the figure's title and the line under it.
    """
    images, truths, predictions = np.asarray(images, dtype=float), np.asarray(truths), np.asarray(predictions)
    if images.ndim != 4 or truths.shape != predictions.shape or truths.ndim != 3 or len(images) != len(truths):
        raise ValueError(f"images must be (n, C, H', W') and truths, predictions (n, H, W), got {images.shape}, {truths.shape}, {predictions.shape}")
    n, (height, width) = len(truths), truths.shape[1:]
    columns = 4 if weight_maps is not None else 3
    fig = plots.new_image_figure(2.6 * columns + 0.8, 2.5 * n + 1.3)
    axes = fig.subplots(n, columns, squeeze=False)
    colours = _class_colours(len(class_names))
    top, left = (images.shape[2] - height) // 2, (images.shape[3] - width) // 2
    high = float(np.max(weight_maps)) if weight_maps is not None else 1.0
    for row in range(n):
        truth = np.ma.masked_equal(truths[row], ignore_index)
        wrong = (predictions[row] != truths[row]) & (truths[row] != ignore_index)
        errors = np.zeros((height, width, 4))
        errors[wrong] = (*_ERROR_COLOUR, 1.0)
        image, cmap = _greys(images[row])
        titles = ["input" + (" (mirrored border outside the square)" if (top, left) != (0, 0) else ""), "truth",
                  f"prediction: {int(wrong.sum())} wrong pixels (red)", "weight map w(x)"][:columns]  # fmt: skip
        for ax, label in zip(axes[row], titles):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label if row == 0 or label.startswith("prediction") else "", fontsize=plots.LABEL_SIZE)
        axes[row, 0].imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if (top, left) != (0, 0):
            axes[row, 0].add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor="tab:orange", linestyle="--", linewidth=1.2))
        axes[row, 0].set_ylabel(f"image {row + 1}", fontsize=plots.LABEL_SIZE)
        axes[row, 1].imshow(truth, cmap=colours, vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
        axes[row, 2].imshow(predictions[row], cmap=colours, vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
        axes[row, 2].imshow(errors, interpolation="nearest")
        if weight_maps is not None:
            shown = axes[row, 3].imshow(weight_maps[row], cmap="viridis", vmin=0, vmax=high, interpolation="nearest")
            if row == n - 1:
                fig.colorbar(shown, ax=axes[:, 3], shrink=0.6, label="w(x)")
    legend = ", ".join(f"{name}: {'black' if i == 0 else 'white'}" for i, name in enumerate(class_names)) if len(class_names) == 2 else ""
    plots.add_title(fig, title)
    plots.add_note(fig, [note, f"Classes: {legend}." if legend else ""])
    return fig


def _first_validation_examples(trainer: L.Trainer, limit: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
    images, targets, count = [], [], 0
    for batch in validation_batches(trainer):
        inputs, target = inputs_and_targets(batch)
        if not isinstance(inputs, torch.Tensor) or not isinstance(target, dict) or "mask" not in target:
            return None
        images.append(inputs)
        targets.append(target)
        count += len(inputs)
        if count >= limit:
            break
    if not images:
        return None
    return torch.cat(images)[:limit], {key: torch.cat([t[key] for t in targets])[:limit] for key in targets[0]}


class SegmentationPredictions(FigureCallback):
    """Input, truth, prediction and weight map of the first ``n`` validation images.

    Args:
        n: how many images (rows).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Applies to a module whose validation batches are ``(images, {"mask": ..., ...})`` and whose
    ``forward(images)`` gives class scores ``(N, K, h, w)``; otherwise it says so once.
    """

    name = "segmentation"

    def __init__(self, n: int = 4, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if n < 1:
            raise ValueError(f"SegmentationPredictions: n must be at least 1, got {n}")
        self.n = n
        self._last: dict[str, np.ndarray] | None = None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        from ai_scratch.applying_cnns.segmentation import center_crop

        examples = _first_validation_examples(trainer, self.n)
        if examples is None:
            self.does_not_apply("its validation batches are not (images, {'mask': ...}) pairs")
            return None
        images, targets = examples
        with evaluating(pl_module):
            scores = pl_module(images.to(pl_module.device)).float().cpu()
        height, width = min(scores.shape[-2], targets["mask"].shape[-2]), min(scores.shape[-1], targets["mask"].shape[-1])
        predictions = center_crop(scores.argmax(dim=1), height, width).numpy()
        truths = center_crop(targets["mask"], height, width).numpy()
        weights = center_crop(targets["weight_map"], height, width).numpy() if "weight_map" in targets else None
        names = list(getattr(trainer.datamodule, "class_names", None) or [str(k) for k in range(scores.shape[1])])
        ignore = int(getattr(pl_module, "ignore_index", 255))
        self._last = {"images": center_crop(images, height, width).numpy(), "truths": truths, "predictions": predictions}
        hp = getattr(trainer.datamodule, "hparams", {})
        weight_note = f"w_0 = {hp.get('w0')}, sigma = {hp.get('sigma')} px" if "w0" in hp else ""
        used = "used in the loss" if getattr(pl_module, "use_weight_map", True) else "not used in the loss (plain cross-entropy)"
        note = f"Validation images. Weight map of eq. 2 ({weight_note}), {used}." if weights is not None else "Validation images."
        return segmentation_figure(
            images.float().numpy(), truths, predictions, weights, names,
            title=f"Segmentation of validation images: {type(pl_module).__name__}", note=note, ignore_index=ignore,
        )  # fmt: skip

    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> list[Path]:
        written = super().emit(trainer, pl_module, suffix)
        logger = wandb_logger(trainer) if self.log_to_wandb and written and self._last is not None and wandb_installed() else None
        if logger is not None and not run_is_disabled(logger.experiment):
            import wandb

            names = list(getattr(trainer.datamodule, "class_names", None) or [])
            labels = {k: name for k, name in enumerate(names)} | {int(getattr(pl_module, "ignore_index", 255)): "not scored"}
            overlays = [
                wandb.Image(
                    np.clip(image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0], 0, 1),
                    masks={"prediction": {"mask_data": prediction, "class_labels": labels}, "truth": {"mask_data": truth, "class_labels": labels}},
                )
                for image, truth, prediction in zip(self._last["images"], self._last["truths"], self._last["predictions"])
            ]
            logger.log_metrics({"figures/segmentation_masks": overlays})
        return written


def unet_figures(every_n_epochs: int | None = None, feature_map_layers: Sequence[str] | None = None) -> list[Callback]:
    """The figures of a U-Net fit: learning curves, gradient flow, the first filters and the feature
    maps of ``feature_map_layers`` (the U's top, bottom and last level), and the segmentation of
    validation images."""
    return [
        LearningCurves(CURVES, every_n_epochs=every_n_epochs),
        GradientFlow(every_n_epochs=every_n_epochs),
        ConvFilters(layers=feature_map_layers, every_n_epochs=every_n_epochs),
        SegmentationPredictions(every_n_epochs=every_n_epochs),
    ]
