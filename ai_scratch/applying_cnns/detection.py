"""What every object detector shares: batches of images and target dicts, ``predict``, the loss in
named terms, and mean average precision.

A classifier's steps (one label per image, accuracy) do not fit a detector, which finds a varying
number of objects in each image, so the detectors (YOLO, R-CNN, Faster R-CNN, Mask R-CNN) have this
small base of their own. A batch is ``(images, targets)``: images ``(N, 3, H, W)`` and a list of
``N`` dicts with ``boxes`` ``(K, 4)`` (``x_min, y_min, x_max, y_max`` in pixels), ``labels`` ``(K,)``
(class indices from 0) and, optionally, ``masks`` ``(K, H, W)`` and ``iscrowd`` ``(K,)``
(:mod:`datamodules.shapes`). A subclass writes

* :meth:`DetectionModel.loss_terms`: the training objective of one batch as named terms, the one
  to minimise under ``"loss"`` (YOLO returns ``loss``, ``coord``, ``size``, ``object``, ``noobject``
  and ``class``);
* :meth:`DetectionModel.predict`: for each image a dict of ``boxes`` ``(D, 4)``, ``scores``
  ``(D,)`` and ``labels`` ``(D,)`` (and ``masks`` for instance segmentation), the detections after
  the model's own thresholding and non-maximum suppression.

Every term is logged as ``{stage}_{name}`` (epoch means over all processes). On validation and test
data the detections are scored with torchmetrics' ``MeanAveragePrecision`` (COCO's protocol through
pycocotools, default thresholds): ``{stage}_map`` (mean over IoU 0.50:0.95), ``{stage}_map_50``
(Pascal VOC's IoU 0.5), ``map_75``, ``map_small``, ``map_medium``, ``map_large`` and the
``mar_*`` recalls; the per-class entries (placeholders without ``class_metrics``) and the list of
``classes`` are left out. COCO's sizes
are absolute (small below 32 x 32 pixels), so every object of a 64-pixel synthetic image is
"small", and ``map_medium`` and ``map_large`` read -1 (no such objects). Beside them
``{stage}_recall_50``: the fraction of ground-truth objects that some detection of the same class
covers with IoU >= 0.5, each detection matched at most once (:class:`RecallAtIoU`), the number
behind a detector's "missed objects". The checkpoint criterion of a detection experiment is
``val_map_50`` (mode ``max``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from ai_scratch.base import BaseModel

Target = dict[str, Tensor]
Detections = dict[str, Tensor]


class RecallAtIoU(Metric):
    """Recall of ground-truth objects at an IoU threshold: objects covered by a detection of their
    class with IoU >= ``iou_threshold``, over all objects (crowd / difficult ones left out).

    Detections are taken by decreasing score and each matches the unmatched object of its class with
    the highest IoU, as in Pascal VOC's evaluation; the sums are synchronised across processes.
    """

    full_state_update = False

    def __init__(self, iou_threshold: float = 0.5) -> None:
        super().__init__()
        self.iou_threshold = iou_threshold
        self.add_state("found", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, predictions: list[Detections], targets: list[Target]) -> None:
        for detected, target in zip(predictions, targets, strict=True):
            keep = target["iscrowd"] == 0 if "iscrowd" in target else torch.ones_like(target["labels"], dtype=torch.bool)
            boxes, labels = target["boxes"][keep].float(), target["labels"][keep]
            self.total += len(labels)
            if not len(labels) or not len(detected["boxes"]):
                continue
            overlaps = box_iou(detected["boxes"].float(), boxes)  # (D, K)
            overlaps[detected["labels"][:, None] != labels[None, :]] = 0.0
            matched = torch.zeros(len(labels), dtype=torch.bool, device=boxes.device)
            for row in overlaps[detected["scores"].argsort(descending=True)]:
                row = row.masked_fill(matched, 0.0)
                best = row.argmax()
                if row[best] >= self.iou_threshold:
                    matched[best] = True
            self.found += matched.sum()

    def compute(self) -> Tensor:
        return self.found / self.total.clamp(min=1.0)


class DetectionModel(BaseModel):
    """Base LightningModule of the object detectors: see the module docstring.

    Args:
        num_classes: object classes (no background class counted).
        class_names: their names, for figures (``None``: the datamodule's, else the indices).
    """

    def __init__(self, num_classes: int, class_names: list[str] | None = None) -> None:
        super().__init__(num_classes=None)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names must name the {num_classes} classes, got {len(class_names)} names")
        self.num_object_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        # class_metrics off: the per-class lists are not scalars to log, and cost a second pass. Built
        # on the CPU even under torch.device("meta"), so that a paper-sized network can be built
        # without memory to count its parameters (the Trainer moves them with the module).
        with torch.device("cpu"):
            self.val_map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
            self.test_map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
            self.val_recall = RecallAtIoU(0.5)
            self.test_recall = RecallAtIoU(0.5)

    # ------------------------------------------------------------------ what a detector writes
    def loss_terms(self, images: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        """The objective of one batch as named scalar terms; ``"loss"`` is the one minimised."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Detections]:
        """The detections of each image: ``boxes`` ``(D, 4)`` xyxy pixels, ``scores`` ``(D,)``, ``labels`` ``(D,)``."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Refuse, in one line, data with another number of classes than the model's."""
        datamodule = self.attached_trainer().datamodule if self.attached_trainer() is not None else None
        have = getattr(datamodule, "num_classes", None)
        if isinstance(have, int) and have != self.num_object_classes:
            raise ValueError(f"the model has num_classes={self.num_object_classes} but the data has {have} classes: set --model.num_classes={have}")

    # ------------------------------------------------------------------ steps
    def log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        """Log each term as ``{stage}_{name}``: its epoch mean, weighted by batch size, over all processes."""
        values = {f"{stage}_{name}": value.detach().float() for name, value in terms.items()}
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def training_step(self, batch: tuple[Tensor, list[Target]], batch_idx: int) -> Tensor:
        images, targets = batch
        terms = self.loss_terms(images, targets)
        self.log_terms("train", terms, len(images))
        return terms["loss"]

    def _evaluation_step(self, batch: tuple[Tensor, list[Target]], stage: str) -> None:
        images, targets = batch
        self.log_terms(stage, self.loss_terms(images, targets), len(images))
        detections = [{key: value.float() if key != "labels" else value for key, value in d.items() if key != "masks"} for d in self.predict(images)]
        truth = [{key: target[key] for key in ("boxes", "labels", "iscrowd") if key in target} for target in targets]
        getattr(self, f"{stage}_map").update(detections, truth)
        getattr(self, f"{stage}_recall").update(detections, truth)

    def validation_step(self, batch: tuple[Tensor, list[Target]], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, list[Target]], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[Detections]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict(images)

    # ------------------------------------------------------------------ mean average precision
    def _log_detection_metrics(self, stage: str) -> None:
        average_precision: MeanAveragePrecision = getattr(self, f"{stage}_map")
        recall: RecallAtIoU = getattr(self, f"{stage}_recall")
        if not average_precision.update_called:
            return
        results = average_precision.compute()  # collective under DDP: every process gets the same values
        # "classes" is a list, and the per-class entries are -1 placeholders without class_metrics
        values = {f"{stage}_{name}": value.float() for name, value in results.items() if name != "classes" and not name.endswith("_per_class")}
        values[f"{stage}_recall_50"] = recall.compute()
        headline = {f"{stage}_map_50": values.pop(f"{stage}_map_50")}
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)
        self.log_dict(headline, on_step=False, on_epoch=True, sync_dist=True, prog_bar=True)
        average_precision.reset()
        recall.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_detection_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_detection_metrics("test")
