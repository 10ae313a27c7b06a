"""Detections drawn on validation images: boxes (and masks) of the model beside the ground truth.

:class:`DetectionPredictions` works with any LightningModule whose validation batches are
``(images, targets)``, images ``(N, 3, H, W)`` (or 1 channel) in [0, 1] and targets a list of dicts
with ``boxes`` ``(K, 4)`` (xyxy, pixels), ``labels`` ``(K,)`` and optionally ``masks`` ``(K, H, W)``,
and whose ``predict(images)`` (or, without one, ``forward(images)``) gives one dict per image with
``boxes``, ``scores``, ``labels`` and optionally ``masks`` (the format of torchvision's detection
models). For any other module it says so once and draws nothing.

It writes two things:

* a PNG (``detections.png``): a few validation images, the predictions above ``score_threshold``
  on top (class name and score by each box), the ground truth below, drawn with torchvision's
  ``draw_bounding_boxes`` and ``draw_segmentation_masks``;
* with a wandb run, ``detections/val``: the same images as ``wandb.Image`` with wandb's own box
  overlays (``boxes={"predictions": ..., "ground_truth": ...}``, every prediction with a score of
  at least ``wandb_min_score``, its score under ``scores``) and, where there are masks, mask overlays
  (a class index per pixel; the true masks only for a model that predicts masks), with the class names as labels, so that a user can switch classes on
  and off and move the score threshold in the wandb UI.

Class names come from the datamodule's ``class_names``, else the module's, else the indices.

Example::

    trainer = Trainer(callbacks=[DetectionPredictions(num_images=6, score_threshold=0.3)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.nn import functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from callbacks import plots
from callbacks.batches import evaluating, validation_batches
from callbacks.figures import FigureCallback
from callbacks.plots.style import LABEL_SIZE
from callbacks.wandb_helpers import live_wandb_logger

#: the side, in pixels, to which small images are enlarged (nearest neighbour) before drawing
DRAWN_SIDE = 256


def is_target_list(value: Any, keys: Sequence[str]) -> bool:
    """A list of dicts that each hold tensors under ``keys``."""
    return isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) and all(isinstance(v.get(k), Tensor) for k in keys) for v in value)


def names_of_classes(trainer: L.Trainer, pl_module: L.LightningModule, labels: Sequence[int]) -> list[str]:
    """One name per class index up to the largest in ``labels``: the datamodule's ``class_names``,
    else the module's, else the indices."""
    count = max([int(label) + 1 for label in labels], default=0)
    for owner in (trainer.datamodule, pl_module):
        names = getattr(owner, "class_names", None) if owner is not None else None
        if isinstance(names, (list, tuple)) and len(names) >= count and names:
            return [str(name) for name in names]
    return [str(i) for i in range(count)]


def to_uint8(image: Tensor) -> Tensor:
    """An image in [0, 1] (values outside clipped) as uint8 RGB ``(3, H, W)``."""
    image = image.detach().float().cpu().clamp(0, 1)
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    return (image * 255).round().to(torch.uint8)


def enlarged(image: Tensor, factor: int) -> Tensor:
    return F.interpolate(image[None].float(), scale_factor=factor, mode="nearest")[0].to(torch.uint8) if factor > 1 else image


def class_colours(count: int) -> list[tuple[int, int, int]]:
    return [tuple(int(255 * c) for c in colour[:3]) for colour in plots.qualitative_colors(max(count, 1))]


def label_font() -> str | None:
    """A TrueType font for the box labels (matplotlib's DejaVu Sans), so that they can be made
    legible; ``None``: torchvision's small default."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # noqa: BLE001  (a missing font costs legibility, not the figure)
        return None


def draw_detections(
    image: Tensor, found: Mapping[str, Tensor], names: Sequence[str], factor: int, with_scores: bool, with_masks: bool = True
) -> np.ndarray:
    """``image`` (uint8) enlarged ``factor`` times with ``found``'s boxes (and masks, when
    ``with_masks``), each box labelled with its class (and score); ``(H, W, 3)`` uint8."""
    picture = enlarged(image, factor)
    colours = class_colours(len(names))
    labels = [int(label) for label in found["labels"]]
    masks = found.get("masks") if with_masks else None
    if isinstance(masks, Tensor) and len(masks):
        masks = masks.float().reshape(len(masks), *masks.shape[-2:])
        masks = F.interpolate(masks[:, None], scale_factor=factor, mode="nearest")[:, 0] > 0.5
        picture = draw_segmentation_masks(picture, masks, alpha=0.45, colors=[colours[label] for label in labels])
    if labels:
        captions = [names[label] + (f" {float(score):.2f}" if with_scores else "") for label, score in
                    zip(labels, found["scores"] if with_scores else [None] * len(labels), strict=True)]  # fmt: skip
        font = label_font()
        picture = draw_bounding_boxes(
            picture, found["boxes"].float() * factor, labels=captions, colors=[colours[label] for label in labels], width=2,
            font=font, font_size=max(10, picture.shape[-1] // 16) if font else None,
        )
    return picture.permute(1, 2, 0).numpy()


def wandb_boxes(found: Mapping[str, Tensor], names: Sequence[str], with_scores: bool) -> dict[str, Any]:
    """wandb's box overlay of ``found`` (pixel positions, class ids and captions, scores)."""
    data = []
    for index, (box, label) in enumerate(zip(found["boxes"].tolist(), found["labels"].tolist(), strict=True)):
        entry: dict[str, Any] = {
            "position": {"minX": box[0], "minY": box[1], "maxX": box[2], "maxY": box[3]},
            "domain": "pixel",
            "class_id": int(label),
            "box_caption": names[int(label)],
        }
        if with_scores:
            score = float(found["scores"][index])
            entry["scores"] = {"score": score}
            entry["box_caption"] = f"{names[int(label)]} {score:.2f}"
        data.append(entry)
    return {"box_data": data, "class_labels": dict(enumerate(names))}


def class_map(found: Mapping[str, Tensor], size: tuple[int, int]) -> np.ndarray:
    """Instance masks as one map of class indices shifted by one (0: background), higher scores
    painted last; for wandb's mask overlay."""
    picture = np.zeros(size, dtype=np.int64)
    masks = found["masks"].float().reshape(-1, *size) > 0.5
    order = found["scores"].argsort().tolist() if "scores" in found else range(len(masks))
    for index in order:
        picture[masks[index].cpu().numpy()] = int(found["labels"][index]) + 1
    return picture


class DetectionPredictions(FigureCallback):
    """Predicted and true boxes (and masks) on a few validation images; see the module docstring.

    Args:
        num_images: images drawn (the first of the loader).
        split: ``"val"`` (the trainer's validation loader) or ``"test"`` (the datamodule's
            ``test_dataloader``: a crafted test set, for instance); the PNG of the test images is
            ``detections_test.png``, their wandb images ``detections/test``.
        score_threshold: the PNG shows predictions scored at least this.
        wandb_min_score: wandb receives every prediction scored at least this (its UI filters further).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Raises:
        ValueError: for ``num_images`` below 1, another ``split`` or thresholds outside [0, 1].
    """

    name = "detections"

    def __init__(
        self,
        num_images: int = 6,
        split: str = "val",
        score_threshold: float = 0.3,
        wandb_min_score: float = 0.05,
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"DetectionPredictions: num_images must be an integer >= 1, got {num_images!r}")
        if split not in ("val", "test"):
            raise ValueError(f"DetectionPredictions: split must be 'val' or 'test', got {split!r}")
        self.split = split
        self.name = "detections" if split == "val" else "detections_test"  # type: ignore[misc]
        for argument, value in (("score_threshold", score_threshold), ("wandb_min_score", wandb_min_score)):
            if not 0 <= value <= 1:
                raise ValueError(f"DetectionPredictions: {argument} must be in [0, 1], got {value}")
        self.num_images, self.score_threshold, self.wandb_min_score = num_images, score_threshold, wandb_min_score
        #: what was drawn last: ``(images, predictions, targets, class names)``, on the CPU
        self.examples: tuple[Tensor, list[dict[str, Tensor]], list[dict[str, Tensor]], list[str]] | None = None
        self._epochs_done: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epochs_done = trainer.current_epoch + 1
        super().on_train_epoch_end(trainer, pl_module)

    def _batches(self, trainer: L.Trainer) -> Any:
        if self.split == "val":
            return validation_batches(trainer)
        loader = getattr(trainer.datamodule, "test_dataloader", None) if trainer.datamodule is not None else None
        return loader() if callable(loader) else []

    def _examples(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """Run the module on the first validation images; the reason when it does not apply."""
        images: list[Tensor] = []
        targets: list[dict[str, Tensor]] = []
        for batch in self._batches(trainer):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], Tensor) and batch[0].ndim == 4):
                return f"its {self.split} batches are not (images, targets)"
            if not is_target_list(batch[1], ("boxes", "labels")):
                return "its targets are not a list of dicts with boxes and labels"
            images.append(batch[0][: self.num_images - len(targets)])
            targets.extend(batch[1][: self.num_images - len(targets)])
            if len(targets) >= self.num_images:
                break
        if not targets:
            return f"there is no {'validation' if self.split == 'val' else 'test'} data"
        stacked = torch.cat(images)
        predict = getattr(pl_module, "predict", None)
        with evaluating(pl_module):
            found = (predict if callable(predict) else pl_module)(stacked.to(pl_module.device))
        if not is_target_list(found, ("boxes", "scores", "labels")) or len(found) != len(targets):
            return f"{type(pl_module).__name__}'s predictions are not one dict of boxes, scores and labels per image"
        cpu = [{key: value.detach().cpu() for key, value in d.items() if isinstance(value, Tensor)} for d in found]
        truth = [{key: value.detach().cpu() for key, value in d.items() if isinstance(value, Tensor)} for d in targets]
        labels = [int(x) for d in cpu + truth for x in d["labels"]]
        self.examples = (stacked.detach().cpu(), cpu, truth, names_of_classes(trainer, pl_module, labels))
        return None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        reason = self._examples(trainer, pl_module)
        if reason is not None:
            self.examples = None
            self.does_not_apply(reason)
            return None
        images, found, truth, names = self.examples  # type: ignore[misc]
        factor = max(1, DRAWN_SIDE // max(images.shape[-2:]))
        count = len(images)
        # the true masks only where the model predicts masks too: a box detector is judged by its boxes
        with_masks = any(isinstance(d.get("masks"), Tensor) for d in found)
        fig = plots.new_image_figure(2.6 * count, 5.8)
        for column, (image, predicted, target) in enumerate(zip(images, found, truth, strict=True)):
            shown = {key: value[predicted["scores"] >= self.score_threshold] for key, value in predicted.items()}
            rows = ((shown, True, f"predicted: {len(shown['labels'])}"), (target, False, f"true: {len(target['labels'])}"))
            for row, (boxes, with_scores, title) in enumerate(rows):
                ax = fig.add_subplot(2, count, row * count + column + 1)
                ax.imshow(draw_detections(to_uint8(image), boxes, names, factor, with_scores, with_masks))
                plots.style_axes(ax, title=f"image {column + 1}, {title}", grid=False)
                ax.set_xticks([])
                ax.set_yticks([])
                if column == 0:
                    ax.set_ylabel("predictions" if row == 0 else "ground truth", fontsize=LABEL_SIZE)
        epochs = self._epochs_done if self._epochs_done is not None else trainer.current_epoch
        where = "validation" if self.split == "val" else "test"
        plots.add_title(fig, f"Detections on {where} images: {type(pl_module).__name__}, after {epochs} epoch{'s' if epochs != 1 else ''}")
        plots.add_note(fig, [
            f"Top: the model's boxes with a score >= {self.score_threshold:g} (class name and score)"
            + ("" if not with_masks else " and masks") + "; bottom: the true boxes" + ("" if not with_masks else " and masks") + ".",
            "Colours by class: " + ", ".join(names) + ".",
        ])  # fmt: skip
        return fig

    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> list:
        """The PNG (see :class:`FigureCallback`), then the images with wandb's box and mask overlays."""
        written = super().emit(trainer, pl_module, suffix)
        logger = live_wandb_logger(trainer) if trainer.is_global_zero and self.log_to_wandb and self.examples is not None else None
        if logger is None:
            return written
        import wandb

        images, found, truth, names = self.examples
        with_masks = any(isinstance(d.get("masks"), Tensor) for d in found)
        logged = []
        for image, predicted, target in zip(images, found, truth, strict=True):
            kept = {key: value[predicted["scores"] >= self.wandb_min_score] for key, value in predicted.items()}
            overlays: dict[str, Any] = {
                "boxes": {"predictions": wandb_boxes(kept, names, True), "ground_truth": wandb_boxes(target, names, False)}
            }
            size = tuple(image.shape[-2:])
            masks = {}
            mask_labels = {0: "background", **{i + 1: name for i, name in enumerate(names)}}
            if with_masks and isinstance(kept.get("masks"), Tensor):
                masks["predictions"] = {"mask_data": class_map(kept, size), "class_labels": mask_labels}
            if with_masks and isinstance(target.get("masks"), Tensor):
                masks["ground_truth"] = {"mask_data": class_map(target, size), "class_labels": mask_labels}
            if masks:
                overlays["masks"] = masks
            logged.append(wandb.Image(to_uint8(image).permute(1, 2, 0).numpy(), **overlays))
        logger.log_metrics({f"detections/{self.split}": logged})
        return written
