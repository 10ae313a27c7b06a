"""What every semantic segmentation model shares: a class for every pixel, a per-pixel loss with an
optional weight map, and the metrics of a segmentation.

A classifier's steps (one label per image) do not fit a model that labels every pixel, so the
segmentation models (U-Net here; Mask R-CNN's masks can be scored the same way) have this small base
of their own. A batch is ``(images, targets)``: images ``(N, C, H', W')`` and a dict of per-pixel
``(N, H, W)`` tensors, ``mask`` (class indices, ``ignore_index`` for pixels not scored) and
optionally ``weight_map`` (each pixel's weight in the loss) and ``instances`` (object numbers, 0 for
background) (:mod:`datamodules.membranes`). ``forward`` gives class scores ``(N, K, h, w)``. A
network of valid convolutions has a smaller output than its input (``h < H'``), and its datamodule
may have mirrored the images so that ``h = H``; where the two still differ, the larger of scores and
targets is cropped to the smaller, about the centre (:func:`center_crop`), so that each score meets
the target of its own pixel.

The loss is the pixel-wise cross-entropy of U-Net's eq. 1, each pixel weighted by ``w(x)``:

    E = sum_x w(x) * (-log p_l(x)(x)) / (number of scored pixels)

with ``w(x)`` the batch's ``weight_map`` when ``use_weight_map`` and 1 otherwise.

Metrics (torchmetrics, so that DDP processes contribute to one value), ``{stage}_`` before each:

* ``loss``; ``accuracy``: the fraction of scored pixels whose class is right;
* ``iou``: torchmetrics' ``JaccardIndex``, intersection over union of each class's predicted and
  true pixels, averaged over the classes (macro), on validation and test data;
* with ``instances`` in the targets, on validation and test data, :class:`InstanceSeparation`:
  ``instance_recall`` (the fraction of true objects that one connected component of the predicted
  foreground covers with IoU >= 0.5) and ``merged_pairs`` (the fraction of touching pairs of true
  objects that the prediction joins into one component: the error U-Net's weight map is for).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from ai_scratch.base import BaseModel, check_choice

Targets = dict[str, Tensor]
Optimizer = Literal["adam", "sgd"]


def center_crop(tensor: Tensor, height: int, width: int) -> Tensor:
    """The central ``height x width`` of the last two dimensions of ``tensor``."""
    top, left = (tensor.shape[-2] - height) // 2, (tensor.shape[-1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot crop {tuple(tensor.shape[-2:])} to a larger {(height, width)}")
    return tensor[..., top : top + height, left : left + width]


def match_sizes(scores: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
    """Scores and targets cropped about their centres to the smaller of their two sizes."""
    height = min(scores.shape[-2], targets["mask"].shape[-2])
    width = min(scores.shape[-1], targets["mask"].shape[-1])
    return center_crop(scores, height, width), {name: center_crop(value, height, width) for name, value in targets.items()}


def touching_pairs(instances: np.ndarray, distance: int) -> set[tuple[int, int]]:
    """The pairs of objects of ``instances`` ``(H, W)`` that come within ``distance`` pixels (along a
    row, a column or a diagonal) of each other: the cells that share a membrane."""
    pairs: set[tuple[int, int]] = set()
    height, width = instances.shape
    for dy in range(0, distance + 1):
        for dx in range(-distance, distance + 1):
            if (dy, dx) <= (0, 0) or max(abs(dy), abs(dx)) > distance:
                continue
            a = instances[0 : height - dy, max(0, -dx) : width - max(0, dx)]
            b = instances[dy:height, max(0, dx) : width - max(0, -dx)]
            differ = (a > 0) & (b > 0) & (a != b)
            for first, second in zip(a[differ].tolist(), b[differ].tolist()):
                pairs.add((min(first, second), max(first, second)))
    return pairs


class InstanceSeparation(Metric):
    """Are touching objects told apart? Compares the connected components of the predicted
    foreground (4-connected) with the true objects.

    * ``instance_recall``: true objects matched by a predicted component with IoU >= 0.5, over all
      true objects (two objects merged into one component match it with IoU below 0.5 each, as a
      rule, so merging lowers it, and so does splitting or missing an object);
    * ``merged_pairs``: pairs of touching true objects (within ``touching_distance`` pixels) whose
      pixels fall for the most part into one and the same predicted component, over all touching pairs.

    Args:
        background_class: the class that is not foreground (the membranes).
        touching_distance: how close two objects must come to count as touching.

    The counts are summed over images and processes; the computations run on the CPU in SciPy.
    """

    full_state_update = False

    def __init__(self, background_class: int = 0, touching_distance: int = 3) -> None:
        super().__init__()
        self.background_class, self.touching_distance = background_class, touching_distance
        for name in ("matched", "objects", "merged", "pairs"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float32), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, instances: Tensor) -> None:
        """``predicted``: ``(N, H, W)`` classes; ``instances``: ``(N, H, W)`` true object numbers."""
        counts = np.zeros(4)
        for labels, truth in zip(predicted.cpu().numpy(), instances.cpu().numpy()):
            counts += self._count(labels != self.background_class, truth)
        for name, value in zip(("matched", "objects", "merged", "pairs"), counts):
            setattr(self, name, getattr(self, name) + float(value))

    def _count(self, foreground: np.ndarray, truth: np.ndarray) -> np.ndarray:
        components, _ = ndimage.label(foreground)
        ids = np.unique(truth[truth > 0])
        matched, owner = 0, {}
        for k in ids:
            inside = truth == k
            hits = components[inside]
            hits = hits[hits > 0]
            if len(hits) == 0:
                continue
            component = int(np.bincount(hits).argmax())
            owner[int(k)] = component
            # IoU of the object with the predicted component that covers most of it
            predicted_pixels = components == component
            union = np.logical_or(inside, predicted_pixels).sum()
            matched += np.logical_and(inside, predicted_pixels).sum() / union >= 0.5
        pairs = touching_pairs(truth, self.touching_distance)
        merged = sum(a in owner and b in owner and owner[a] == owner[b] for a, b in pairs)
        return np.array([matched, len(ids), merged, len(pairs)], dtype=float)

    def compute(self) -> dict[str, Tensor]:
        return {
            "instance_recall": self.matched / self.objects.clamp(min=1),
            "merged_pairs": self.merged / self.pairs.clamp(min=1),
        }


class SegmentationModel(BaseModel):
    """Base LightningModule of the semantic segmentation models: per-pixel cross-entropy with an
    optional weight map, pixel accuracy, IoU and the separation of touching objects.

    Args:
        num_classes: classes of every pixel (at least 2).
        use_weight_map: weight each pixel's loss by the batch's ``weight_map`` (U-Net's eq. 1); a
            batch without one is weighted 1 everywhere.
        ignore_index: mask value of pixels that are not scored (neither loss nor metrics).
        background_class: the class between objects, for :class:`InstanceSeparation`.
        optimizer: ``"sgd"`` with ``momentum`` (U-Net's) or ``"adam"``.
        learning_rate, momentum, weight_decay: the optimizer's.
    """

    def __init__(
        self,
        num_classes: int = 2,
        use_weight_map: bool = True,
        ignore_index: int = 255,
        background_class: int = 0,
        optimizer: Optimizer = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.99,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(num_classes=None)  # no per-image accuracy: the pixel metrics are below
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        check_choice("optimizer", optimizer, Optimizer)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not 0 <= background_class < num_classes:
            raise ValueError(f"background_class must be a class in [0, {num_classes}), got {background_class}")
        self.num_classes = num_classes
        self.use_weight_map, self.ignore_index, self.background_class = use_weight_map, ignore_index, background_class
        self.optimizer_name, self.learning_rate, self.momentum, self.weight_decay = optimizer, learning_rate, momentum, weight_decay
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_pixel_accuracy", MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index))
        for stage in ("val", "test"):
            setattr(self, f"{stage}_jaccard", MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore_index))
            setattr(self, f"{stage}_separation", InstanceSeparation(background_class))

    # ------------------------------------------------------------------ loss
    def pixel_weights(self, targets: Targets) -> Tensor:
        """``w(x)``: the weight map when used and given, else 1; 0 at ignored pixels."""
        scored = (targets["mask"] != self.ignore_index).to(torch.float32)
        if self.use_weight_map and "weight_map" in targets:
            return targets["weight_map"].to(torch.float32) * scored
        return scored

    def criterion(self, scores: Tensor, targets: Targets) -> Tensor:
        """Eq. 1: the weighted pixel-wise cross-entropy, averaged over the scored pixels."""
        mask = targets["mask"]
        losses = F.cross_entropy(scores.float(), mask, ignore_index=self.ignore_index, reduction="none")  # -log p_l(x)(x)
        scored = (mask != self.ignore_index).sum().clamp(min=1)
        return (self.pixel_weights(targets) * losses).sum() / scored

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch: tuple[Tensor, Targets], stage: str) -> Tensor:
        images, targets = batch
        if not isinstance(targets, dict) or "mask" not in targets:
            raise ValueError(f"{type(self).__name__} needs batches (images, targets) with targets a dict holding 'mask', got {type(targets).__name__}")
        scores, targets = match_sizes(self(images), targets)
        loss = self.criterion(scores, targets)
        predicted = scores.detach().argmax(dim=1)
        self.log(f"{stage}_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=len(images), sync_dist=True, prog_bar=stage != "train")
        accuracy = getattr(self, f"{stage}_pixel_accuracy")
        accuracy.update(predicted, targets["mask"])
        self.log(f"{stage}_accuracy", accuracy, on_step=False, on_epoch=True)
        if stage != "train":
            jaccard = getattr(self, f"{stage}_jaccard")
            jaccard.update(predicted, targets["mask"])
            self.log(f"{stage}_iou", jaccard, on_step=False, on_epoch=True, prog_bar=True)
            if "instances" in targets:
                getattr(self, f"{stage}_separation").update(predicted, targets["instances"])
        return loss

    def _log_separation(self, stage: str) -> None:
        separation: InstanceSeparation = getattr(self, f"{stage}_separation")
        if separation.update_called:
            values = {f"{stage}_{name}": value for name, value in separation.compute().items()}
            self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)
        separation.reset()

    def training_step(self, batch: tuple[Tensor, Targets], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Targets], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Targets], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_separation("val")

    def on_test_epoch_end(self) -> None:
        self._log_separation("test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """The class of every output pixel, ``(N, h, w)``."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).argmax(dim=1)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay)
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
