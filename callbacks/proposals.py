"""Region proposals drawn on validation images: the best-ranked class-agnostic boxes of a two-stage
detector beside the ground truth, with the recall of the objects among its top proposals.

:class:`RegionProposals` works with any LightningModule whose validation batches are ``(images,
targets)`` (images ``(N, C, H, W)`` in [0, 1], targets a list of dicts with ``boxes`` ``(K, 4)`` xyxy
pixels and ``labels``, as :class:`callbacks.detections.DetectionPredictions` takes them) and that
has a method ``proposals(images) -> list[Tensor]``: per image the proposal boxes ``(P, 4)`` (xyxy
pixels), best first (an RPN's objectness order, selective search's order). For any other module it
says so once and draws nothing.

It writes

* a PNG (``proposals.png``): a few validation images, the ``top_k`` best proposals on top (coloured
  by rank), the true boxes below, and a caption with the recall at IoU ``iou_threshold`` of the
  objects of the first ``recall_images`` validation images among the ``recall_top_n`` best proposals
  of each (an object counts as found when some proposal overlaps it enough, as proposal recall is
  measured by Hosang et al. and in Faster R-CNN's Figure 4), and among the ``top_k`` drawn;
* with a wandb run, ``proposals/val``: the same images as ``wandb.Image`` with two box overlays,
  ``proposals`` (the ``top_k`` best, each with its rank under ``scores``, so that the wandb UI can
  show the best few) and ``ground_truth`` (with the class names).

Example::

    trainer = Trainer(callbacks=[RegionProposals(num_images=4, top_k=20, recall_top_n=300)])
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.ops import box_iou
from torchvision.utils import draw_bounding_boxes

from callbacks import plots
from callbacks.batches import evaluating, validation_batches
from callbacks.detections import DRAWN_SIDE, draw_detections, enlarged, is_target_list, names_of_classes, to_uint8, wandb_boxes
from callbacks.figures import FigureCallback
from callbacks.plots.style import LABEL_SIZE
from callbacks.wandb_helpers import live_wandb_logger

#: the colour map of the proposals' ranks: the best in yellow, the last drawn in dark purple
RANK_COLOURS = "viridis_r"


def rank_colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` RGB colours from the best rank (yellow) to the last (purple)."""
    colours = colormaps[RANK_COLOURS](np.linspace(1.0, 0.0, max(count, 1)) if count > 1 else [0.0])
    return [tuple(int(255 * c) for c in colour[:3]) for colour in colours][:count]


def covered(proposals: Tensor, boxes: Tensor, iou_threshold: float) -> Tensor:
    """Which of ``boxes`` ``(K, 4)`` some proposal of ``proposals`` ``(P, 4)`` overlaps with IoU >= ``iou_threshold``."""
    if not len(boxes) or not len(proposals):
        return torch.zeros(len(boxes), dtype=torch.bool)
    return box_iou(boxes.float(), proposals.float()).amax(dim=1) >= iou_threshold


class RegionProposals(FigureCallback):
    """The best proposals of a module with ``proposals(images)`` on validation images; see the module docstring.

    Args:
        num_images: images drawn (the first of the validation loader).
        top_k: proposals drawn per image (the best ``top_k``).
        recall_top_n: the caption's recall counts the objects found among this many best proposals.
        recall_images: the validation images the recall is measured on (the first ones).
        iou_threshold: the IoU at which a proposal finds an object.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Raises:
        ValueError: for counts below 1 or an IoU threshold outside (0, 1].
    """

    name = "proposals"

    def __init__(
        self,
        num_images: int = 4,
        top_k: int = 20,
        recall_top_n: int = 300,
        recall_images: int = 64,
        iou_threshold: float = 0.5,
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        for argument, value in (("num_images", num_images), ("top_k", top_k), ("recall_top_n", recall_top_n), ("recall_images", recall_images)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RegionProposals: {argument} must be an integer >= 1, got {value!r}")
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"RegionProposals: iou_threshold must be in (0, 1], got {iou_threshold}")
        self.num_images, self.top_k, self.recall_top_n, self.recall_images = num_images, top_k, recall_top_n, recall_images
        self.iou_threshold = iou_threshold
        #: what was drawn last: ``(images, proposals, targets, class names)``, on the CPU
        self.examples: tuple[Tensor, list[Tensor], list[dict[str, Tensor]], list[str]] | None = None
        #: the recall of the last figure: ``{"top_n": ..., "top_k": ..., "objects": ..., "images": ...}``
        self.recall: dict[str, float] | None = None
        self._epochs_done: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epochs_done = trainer.current_epoch + 1
        super().on_train_epoch_end(trainer, pl_module)

    def _examples(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """Run the module's ``proposals`` on the first validation images; the reason when it does not apply."""
        propose = getattr(pl_module, "proposals", None)
        if not callable(propose):
            return f"{type(pl_module).__name__} has no proposals(images) method"
        wanted = max(self.num_images, self.recall_images)
        images: list[Tensor] = []
        proposals: list[Tensor] = []
        targets: list[dict[str, Tensor]] = []
        with evaluating(pl_module):
            for batch in validation_batches(trainer):
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], Tensor) and batch[0].ndim == 4):
                    return "its validation batches are not (images, targets)"
                if not is_target_list(batch[1], ("boxes", "labels")):
                    return "its targets are not a list of dicts with boxes and labels"
                room = wanted - len(targets)
                batch_images, batch_targets = batch[0][:room], list(batch[1][:room])
                found = propose(batch_images.to(pl_module.device))
                if not (isinstance(found, (list, tuple)) and len(found) == len(batch_targets)
                        and all(isinstance(p, Tensor) and p.ndim == 2 and p.shape[-1] == 4 for p in found)):  # fmt: skip
                    return f"{type(pl_module).__name__}.proposals(images) does not give one (P, 4) tensor of boxes per image"
                images.append(batch_images[: max(self.num_images - sum(len(i) for i in images), 0)].detach().cpu())
                proposals.extend(p.detach().float().cpu() for p in found)
                targets.extend({key: value.detach().cpu() for key, value in t.items() if isinstance(value, Tensor)} for t in batch_targets)
                if len(targets) >= wanted:
                    break
        if not targets:
            return "there is no validation data"
        counted = min(len(targets), self.recall_images)
        objects = sum(len(t["boxes"]) for t in targets[:counted])
        found_n = sum(int(covered(p[: self.recall_top_n], t["boxes"], self.iou_threshold).sum()) for p, t in zip(proposals[:counted], targets[:counted]))
        found_k = sum(int(covered(p[: self.top_k], t["boxes"], self.iou_threshold).sum()) for p, t in zip(proposals[:counted], targets[:counted]))
        self.recall = {
            "top_n": found_n / max(objects, 1), "top_k": found_k / max(objects, 1), "objects": float(objects), "images": float(counted),
        }  # fmt: skip
        shown = torch.cat(images)
        labels = [int(x) for t in targets[: len(shown)] for x in t["labels"]]
        self.examples = (shown, proposals[: len(shown)], targets[: len(shown)], names_of_classes(trainer, pl_module, labels))
        return None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        reason = self._examples(trainer, pl_module)
        if reason is not None:
            self.examples, self.recall = None, None
            self.does_not_apply(reason)
            return None
        images, proposals, truth, names = self.examples  # type: ignore[misc]
        recall = self.recall or {}
        factor = max(1, DRAWN_SIDE // max(images.shape[-2:]))
        count = len(images)
        fig = plots.new_image_figure(2.6 * count, 5.9)
        for column, (image, boxes, target) in enumerate(zip(images, proposals, truth, strict=True)):
            best = boxes[: self.top_k]
            picture = enlarged(to_uint8(image), factor)
            if len(best):  # the worst first, so that the best are drawn on top
                order = list(range(len(best)))[::-1]
                colours = rank_colours(len(best))
                picture = draw_bounding_boxes(picture, best[order] * factor, colors=[colours[i] for i in order], width=2)
            hits = int(covered(best, target["boxes"], self.iou_threshold).sum())
            panels = (
                (picture.permute(1, 2, 0).numpy(), f"image {column + 1}: top {len(best)} proposals"),
                (draw_detections(to_uint8(image), target, names, factor, with_scores=False, with_masks=False),
                 f"{len(target['boxes'])} true, {hits} found"),
            )  # fmt: skip
            for row, (shown, title) in enumerate(panels):
                ax = fig.add_subplot(2, count, row * count + column + 1)
                ax.imshow(shown)
                plots.style_axes(ax, title=title, grid=False)
                ax.set_xticks([])
                ax.set_yticks([])
                if column == 0:
                    ax.set_ylabel(f"top {self.top_k} proposals" if row == 0 else "ground truth", fontsize=LABEL_SIZE)
        epochs = self._epochs_done if self._epochs_done is not None else trainer.current_epoch
        model = type(pl_module).__name__
        plots.add_title(fig, f"Region proposals on validation images: {model}, after {epochs} epoch{'s' if epochs != 1 else ''}")
        plots.add_note(fig, [
            f"Top: the {self.top_k} best-ranked class-agnostic proposals of each image, yellow the best, purple the {self.top_k}th; "
            "bottom: the true boxes and classes. \"found\": true boxes that one of the drawn proposals overlaps with "
            f"IoU >= {self.iou_threshold:g}.",
            f"Recall of the {int(recall.get('objects', 0))} objects of the first {int(recall.get('images', 0))} validation images at IoU "
            f">= {self.iou_threshold:g}: {recall.get('top_n', 0.0):.2f} among the top {self.recall_top_n} proposals of each image, "
            f"{recall.get('top_k', 0.0):.2f} among the top {self.top_k}.",
        ])  # fmt: skip
        return fig

    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> list:
        """The PNG (see :class:`FigureCallback`), then the images with wandb's box overlays."""
        written = super().emit(trainer, pl_module, suffix)
        logger = live_wandb_logger(trainer) if trainer.is_global_zero and self.log_to_wandb and self.examples is not None else None
        if logger is None:
            return written
        import wandb

        images, proposals, truth, names = self.examples
        logged = []
        for image, boxes, target in zip(images, proposals, truth, strict=True):
            best = boxes[: self.top_k]
            ranked = {
                "box_data": [
                    {"position": {"minX": x0, "minY": y0, "maxX": x1, "maxY": y1}, "domain": "pixel", "class_id": 0,
                     "box_caption": f"#{rank + 1}", "scores": {"rank": rank + 1}}
                    for rank, (x0, y0, x1, y1) in enumerate(best.tolist())
                ],
                "class_labels": {0: "proposal"},
            }  # fmt: skip
            overlays = {"proposals": ranked, "ground_truth": wandb_boxes(target, names, False)}
            logged.append(wandb.Image(to_uint8(image).permute(1, 2, 0).numpy(), boxes=overlays))
        logger.log_metrics({"proposals/val": logged})
        return written
