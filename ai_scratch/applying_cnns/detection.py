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

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from ai_scratch.base import BaseModel

Target = dict[str, Tensor]
Detections = dict[str, Tensor]

#: The largest log-scale change of a box's side that decoding applies, ``log(1000 / 16)``: an
#: untrained regressor cannot blow a box up past any image (the bound torchvision and Detectron use).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def encode_boxes(reference: Tensor, boxes: Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """The bounding-box regression targets of ``boxes`` relative to ``reference`` boxes, both
    ``(K, 4)`` xyxy, as R-CNN (Girshick et al., 2014, Appendix C) and Faster R-CNN (eq. 2) write them:

        t_x = (G_x - P_x) / P_w,   t_y = (G_y - P_y) / P_h,   t_w = log(G_w / P_w),   t_h = log(G_h / P_h)

    with ``(P_x, P_y)`` the reference's centre, ``P_w, P_h`` its size and ``G`` the box to reach; the
    targets are scale-invariant translations and log-space scalings. Each is multiplied by its
    ``weights`` entry (Fast R-CNN normalises the targets to unit variance; ``(10, 10, 5, 5)`` is the
    usual fixed form of it)."""
    reference, boxes = reference.float(), boxes.float()
    p_w, p_h = (reference[:, 2] - reference[:, 0]).clamp(min=1e-6), (reference[:, 3] - reference[:, 1]).clamp(min=1e-6)
    p_x, p_y = reference[:, 0] + 0.5 * p_w, reference[:, 1] + 0.5 * p_h
    g_w, g_h = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6), (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6)
    g_x, g_y = boxes[:, 0] + 0.5 * g_w, boxes[:, 1] + 0.5 * g_h
    w_x, w_y, w_w, w_h = weights
    return torch.stack([w_x * (g_x - p_x) / p_w, w_y * (g_y - p_y) / p_h, w_w * torch.log(g_w / p_w), w_h * torch.log(g_h / p_h)], dim=1)


def decode_boxes(reference: Tensor, deltas: Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """The inverse of :func:`encode_boxes`: the boxes (xyxy) that ``deltas`` ``(K, 4)`` (or
    ``(K, 4 * C)``, one set per class) make of the ``(K, 4)`` ``reference`` boxes,

        G^_x = P_w d_x + P_x,   G^_y = P_h d_y + P_y,   G^_w = P_w exp(d_w),   G^_h = P_h exp(d_h),

    the scalings clamped at :data:`MAX_LOG_SCALE`. Returns ``(K, 4)`` (or ``(K, C, 4)``)."""
    reference = reference.float()
    per_class = deltas.float().reshape(len(deltas), -1, 4)
    w_x, w_y, w_w, w_h = weights
    p_w, p_h = (reference[:, 2] - reference[:, 0]).unsqueeze(1), (reference[:, 3] - reference[:, 1]).unsqueeze(1)
    p_x, p_y = reference[:, 0].unsqueeze(1) + 0.5 * p_w, reference[:, 1].unsqueeze(1) + 0.5 * p_h
    d_x, d_y = per_class[..., 0] / w_x, per_class[..., 1] / w_y
    d_w, d_h = (per_class[..., 2] / w_w).clamp(max=MAX_LOG_SCALE), (per_class[..., 3] / w_h).clamp(max=MAX_LOG_SCALE)
    centre_x, centre_y, width, height = p_w * d_x + p_x, p_h * d_y + p_y, p_w * torch.exp(d_w), p_h * torch.exp(d_h)
    decoded = torch.stack([centre_x - 0.5 * width, centre_y - 0.5 * height, centre_x + 0.5 * width, centre_y + 0.5 * height], dim=-1)
    return decoded if deltas.shape[-1] != 4 or deltas.ndim != 2 else decoded.squeeze(1)


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


def proposal_recall(proposals: Tensor, boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Which of the ground-truth ``boxes`` ``(K, 4)`` some class-agnostic proposal of ``proposals``
    ``(P, 4)`` covers with IoU >= ``iou_threshold``: ``(K,)`` bool. The recall of region proposals as
    Hosang et al. (2015) and Faster R-CNN (Figure 4) measure it: the best overlap of each object,
    proposals not matched one to one."""
    if not len(boxes) or not len(proposals):
        return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    return box_iou(boxes.float(), proposals.float()).amax(dim=1) >= iou_threshold


class ProposalRecall(Metric):
    """Recall of the ground-truth objects among the top ``top_n`` class-agnostic proposals of each
    image (:func:`proposal_recall`, crowd / difficult objects left out); the sums are synchronised
    across processes. ``update(proposals, targets)`` takes, per image, the ``(P, 4)`` proposals best
    first."""

    full_state_update = False

    def __init__(self, top_n: int = 300, iou_threshold: float = 0.5) -> None:
        super().__init__()
        self.top_n, self.iou_threshold = top_n, iou_threshold
        self.add_state("found", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, proposals: list[Tensor], targets: list[Target]) -> None:
        for boxes, target in zip(proposals, targets, strict=True):
            keep = target["iscrowd"] == 0 if "iscrowd" in target else torch.ones_like(target["labels"], dtype=torch.bool)
            covered = proposal_recall(boxes[: self.top_n], target["boxes"][keep], self.iou_threshold)
            self.found += covered.sum()
            self.total += len(covered)

    def compute(self) -> Tensor:
        return self.found / self.total.clamp(min=1.0)


def scalar_results(average_precision: MeanAveragePrecision, prefix: str) -> dict[str, Tensor]:
    """``average_precision.compute()``'s scalar entries as loggable values named ``prefix + name``:
    ``classes`` is a list, and the per-class entries are -1 placeholders without class_metrics."""
    results = average_precision.compute()
    return {f"{prefix}{name}": value.float() for name, value in results.items() if name != "classes" and not name.endswith("_per_class")}


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
        self.update_metrics(stage, images, targets, self.predict(images))

    def update_metrics(self, stage: str, images: Tensor, targets: list[Target], found: list[Detections]) -> None:
        """Feed one batch's detections ``found`` (of :meth:`predict`) to the ``stage``'s metrics: box
        mAP and recall here; a subclass adds its own metrics and calls this."""
        detections = [{key: value.float() if key != "labels" else value for key, value in d.items() if key != "masks"} for d in found]
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
        values = scalar_results(average_precision, f"{stage}_")  # collective under DDP: every process gets the same values
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
