"""Mask R-CNN: a mask for every detected object (He, Gkioxari, Dollar and Girshick, 2017).

Paper: K. He, G. Gkioxari, P. Dollar and R. Girshick, "Mask R-CNN", ICCV 2017 (arXiv:1703.06870).
Section 3 gives the mask branch, its loss and RoIAlign, 3.1 the implementation (network heads,
training and inference), 4.2 the ablations of Table 2.

Faster R-CNN (:mod:`ai_scratch.applying_cnns.faster_rcnn`) gives each candidate object "a class
label and a bounding-box offset"; Mask R-CNN adds "a third branch that outputs the object mask", in
parallel with the other two, on the same RoI features. Everything of Faster R-CNN stays: the
backbone, the RPN and its loss, the RoI sampling, the classifier and box regression.

**The multi-task loss** (Section 3). On each sampled RoI

    L = L_cls + L_box + L_mask

``L_cls`` and ``L_box`` are Fast R-CNN's (softmax log loss over ``C + 1`` classes, smooth L1 on the
box of the true class); the RPN's two terms are added as in Faster R-CNN's joint training.

**The mask branch** (Section 3, Figure 4 right, :class:`MaskHead`). "The mask branch has a
``K m^2``-dimensional output for each RoI, which encodes ``K`` binary masks of resolution ``m x m``,
one for each of the ``K`` classes": a small fully convolutional network on the RoI's features, which
keeps the ``m x m`` spatial layout instead of collapsing it into a vector (Table 2e, ResNet-50-FPN:
33.6 mask AP for the FCN head against 31.5 for fully connected layers). The paper's head for its FPN backbone:
RoIAlign to ``14 x 14``, four ``3 x 3`` convolutions of 256 channels (ReLU), a ``2 x 2``
deconvolution of stride 2 (ReLU) to ``28 x 28``, a ``1 x 1`` convolution to ``K`` masks
(``m = 28``).

**L_mask, decoupled from classification** (Section 3). "We apply a per-pixel sigmoid, and define
``L_mask`` as the average binary cross-entropy loss. For an RoI associated with ground-truth class
``k``, ``L_mask`` is only defined on the ``k``-th mask (other mask outputs do not contribute to the
loss)":

    L_mask = -1 / m^2 sum_{i,j} [ y_ij log sigmoid(x^k_ij) + (1 - y_ij) log (1 - sigmoid(x^k_ij)) ]

averaged over the positive RoIs (:func:`mask_loss`). The masks of different classes do not compete
(no softmax across classes): the classifier decides the class, the mask branch only its shape.
Table 2b: a per-pixel softmax over the classes (multinomial masks) gives 24.8 mask AP, the
independent sigmoids 30.3. "The mask target of an RoI is the intersection between an RoI and its
associated ground-truth mask", on positive RoIs only (IoU >= 0.5 with a ground-truth box): the
object's mask cropped by the RoI's box and resampled to ``m x m`` (:func:`mask_targets`, with
RoIAlign on the float mask, then binarised at 0.5).

**RoIAlign against RoIPool** (Section 3, Figure 3; :meth:`FasterRCNN.pool`). RoIPool (Fast R-CNN)
"first quantizes a floating-number RoI to the discrete granularity of the feature map, this
quantized RoI is then subdivided into spatial bins which are themselves quantized, and finally
feature values covered by each bin are aggregated (usually by max pooling)": with a stride of 16, a
box edge at ``x`` is moved to ``16 [x / 16]``, up to 8 pixels. "These quantizations introduce
misalignments between the RoI and the extracted features. While this may not impact classification
[...] it has a large negative effect on predicting pixel-accurate masks." RoIAlign "avoid[s] any
quantization of the RoI boundaries or bins (i.e., we use ``x / 16`` instead of ``[x / 16]``). We use
bilinear interpolation to compute the exact values of the input features at four regularly sampled
locations in each RoI bin, and aggregate the result": a sample at ``(x, y)`` between the four
feature cells ``(x_0, y_0) .. (x_1, y_1)`` reads

    f(x, y) = sum_{i,j in {0,1}} f(x_i, y_j) (1 - |x - x_i|) (1 - |y - y_j|)

(``roi_operation="align"``, the default here: ``torchvision.ops.roi_align`` with 2 x 2 samples a
bin, ``aligned=True``; ``roi_operation="pool"``: ``torchvision.ops.roi_pool``, the option the
paper compares with). Table 2c (ResNet-50-C4, stride 16, COCO minival, mask AP / AP50 / AP75):

    RoIPool                     26.9 / 48.8 / 26.4
    RoIWarp (bilinear, max)     27.2 / 49.2 / 27.1
    RoIAlign (bilinear, max)    30.2 / 51.0 / 31.8
    RoIAlign (bilinear, avg)    30.3 / 51.2 / 31.5

about 3 points of AP, 5 of AP75: the gain is largest at the strict IoU, where pixel accuracy counts.
With a stride of 32 (Table 2d, ResNet-50-C5) RoIPool's 23.6 mask AP (AP75 21.6) becomes 30.9 (32.1)
with RoIAlign: +7.3 AP, +10.5 AP75, the larger the stride the larger the misalignment.

**Training** (Section 3.1). Image-centric, RoIs positive at IoU >= 0.5 with a ground-truth box,
positives to negatives 1:3, ``L_mask`` on the positive ones only; SGD with momentum 0.9, weight
decay 0.0001, rate 0.02 for 120k iterations and 0.002 to 160k on COCO (8 GPUs, 2 images each).

**Inference** (Section 3.1). The box branch runs on the proposals, then non-maximum suppression;
"the mask branch is then applied to the highest scoring 100 detection boxes" (the masks follow
the refined boxes, not the proposals). "The mask branch can predict ``K`` masks per RoI, but we
only use the ``k``-th mask, where ``k`` is the predicted class by the classification branch. The
``m x m`` floating-number mask output is then resized to the RoI size, and binarized at a
threshold of 0.5" (:func:`paste_masks`).

**Metrics** (beside Faster R-CNN's box mAP, recall and proposal recall). ``{stage}_mask_map``,
``{stage}_mask_map_50``, ``{stage}_mask_map_75`` (and the other COCO entries, ``mask_map_small``,
``mask_mar_100``...): COCO's mask AP, with the masks' IoU in place of the boxes', torchmetrics'
``MeanAveragePrecision(iou_type="segm")``. ``{stage}_mask_iou``: for each true object, the IoU of
its mask with the mask of the detection of its class whose box overlaps its box most (box IoU >=
0.5), averaged over the objects so matched (:class:`MatchedMaskIoU`): the mask quality alone, the
detection misses left out (``{stage}_recall_50`` counts those).

Sizes. ``backbone="paper"``: Mask R-CNN's own backbones (ResNet-50/101-C4 or FPN, ResNeXt) are not
in this project; the paper-sized configuration here is Faster R-CNN's VGG-16 (conv5_3, stride 16,
512 channels; RPN; RoI 7 x 7 box head with fc6 and fc7 of 4096) with the paper's FCN mask head
(RoIAlign 14 x 14 from conv5_3, four 3 x 3 convolutions of 256, a 2 x 2 deconvolution of 256, 80
masks of 28 x 28) for COCO's 80 classes: 141,540,443 parameters, of which the mask head has 3,233,104.
``backbone="small"``: Faster R-CNN's CPU backbone (stride 4, 64 channels) and a mask head of two
3 x 3 convolutions of 64 channels on 7 x 7 RoIs, masks of 14 x 14 (``mask_roi_size``,
``mask_channels``, ``mask_convs`` choose other sizes).

Example::

    model = MaskRCNN(backbone="paper")                                  # VGG-16, 80 COCO classes
    small = MaskRCNN(backbone="small", num_classes=4, image_size=64)    # RoIAlign
    pooled = MaskRCNN(backbone="small", num_classes=4, image_size=64, roi_operation="pool")
    found = small.predict(torch.rand(2, 3, 64, 64))  # [{"boxes", "scores", "labels", "masks" (D, 64, 64) bool}, ...]
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou, roi_align

from ai_scratch.applying_cnns.detection import Detections, Target, scalar_results
from ai_scratch.applying_cnns.faster_rcnn import Backbone, FasterRCNN, RoIOperation, RoISample
from ai_scratch.info import ModelInfo

#: The mask head of each backbone: RoI side, channels, 3 x 3 convolutions (the mask side is twice the RoI's).
MASK_HEADS: dict[str, tuple[int, int, int]] = {
    "paper": (14, 256, 4),  # Figure 4 right (FPN head): 14 x 14 -> four 3x3 convs of 256 -> deconv -> 28 x 28
    "small": (7, 64, 2),  # 7 x 7 -> two 3x3 convs of 64 -> deconv -> 14 x 14
}


# ------------------------------------------------------------------------------- the mask branch
class MaskHead(nn.Module):
    """The FCN mask branch (Figure 4): ``convs`` 3 x 3 convolutions of ``channels`` (ReLU) on the
    ``s x s`` RoI features, a 2 x 2 deconvolution of stride 2 (ReLU) to ``2s x 2s``, and a 1 x 1
    convolution to one mask logit map per class: ``(R, C, 2s, 2s)``, ``m = 2s``."""

    def __init__(self, in_channels: int, channels: int, convs: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(convs):
            layers += [nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(channels if convs else in_channels, channels, 2, stride=2)
        self.mask_logits = nn.Conv2d(channels, num_classes, 1)  # K masks, no background mask
        for module in self.modules():  # the reference implementations' He (MSRA) initialisation
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.mask_logits(F.relu(self.deconv(self.convs(pooled))))


def mask_targets(masks: Tensor, boxes: Tensor, size: int) -> Tensor:
    """The ``(R, size, size)`` binary targets of ``R`` RoIs: each RoI's ground-truth object mask
    ``masks`` ``(R, H, W)`` (its image's, one per RoI) cropped by its ``boxes`` ``(R, 4)`` (xyxy
    pixels on pixel edges) and resampled to ``size x size`` with RoIAlign (bilinear, pixel centres at
    ``i + 0.5``), then binarised at 0.5: "the intersection between an RoI and its associated
    ground-truth mask"."""
    if not len(boxes):
        return torch.zeros(0, size, size, device=boxes.device)
    rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=torch.float32)[:, None], boxes.float()], dim=1)
    resampled = roi_align(masks.float()[:, None], rois, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)[:, 0]
    return (resampled >= 0.5).float()


def mask_loss(mask_logits: Tensor, classes: Tensor, targets: Tensor) -> Tensor:
    """``L_mask``: the average per-pixel binary cross-entropy of the sigmoid of each RoI's mask of its
    ground-truth class only. ``mask_logits`` ``(R, K, m, m)``, ``classes`` ``(R,)`` in ``0 .. K - 1``,
    ``targets`` ``(R, m, m)`` in {0, 1}; the other ``K - 1`` masks get no gradient."""
    if not len(classes):  # no positive RoI: zero, with a gradient path
        return mask_logits.float().sum() * 0.0
    of_true_class = mask_logits.float()[torch.arange(len(classes), device=classes.device), classes]  # x^k
    return F.binary_cross_entropy_with_logits(of_true_class, targets.float())


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """The ``m x m`` mask probabilities ``masks`` ``(D, m, m)`` "resized to the RoI size" and placed
    in the image: ``(D, H, W)``, each pixel inside its box ``(D, 4)`` the bilinear sample of the mask
    at the pixel's centre (the mask spans the box edge to edge), 0 outside the box."""
    height, width = image_size
    if not len(masks):
        return masks.new_zeros(0, height, width)
    boxes = boxes.float()
    x1, y1, x2, y2 = (boxes[:, i, None] for i in range(4))
    centres_x = torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5
    centres_y = torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5
    # the pixel centres in the mask's coordinates: -1 at the box's left (top) edge, +1 at its right (bottom)
    u = 2 * (centres_x[None, :] - x1) / (x2 - x1).clamp(min=1e-6) - 1  # (D, W)
    v = 2 * (centres_y[None, :] - y1) / (y2 - y1).clamp(min=1e-6) - 1  # (D, H)
    grid = torch.stack([u[:, None, :].expand(-1, height, -1), v[:, :, None].expand(-1, -1, width)], dim=-1)
    sampled = F.grid_sample(masks.float()[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]
    inside = (u.abs() <= 1)[:, None, :] & (v.abs() <= 1)[:, :, None]
    return sampled * inside


# ------------------------------------------------------------------------------------- metric
class MatchedMaskIoU(Metric):
    """The mean IoU between the mask of each true object and the mask of its matched detection: the
    detection of the object's class whose box overlaps the object's box most, if that box IoU is at
    least ``box_iou_threshold``; unmatched objects (and crowd ones) are left out. The sums are
    synchronised across processes."""

    full_state_update = False

    def __init__(self, box_iou_threshold: float = 0.5) -> None:
        super().__init__()
        self.box_iou_threshold = box_iou_threshold
        self.add_state("iou_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("matched", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, predictions: list[Detections], targets: list[Target]) -> None:
        for detected, target in zip(predictions, targets, strict=True):
            keep = target["iscrowd"] == 0 if "iscrowd" in target else torch.ones_like(target["labels"], dtype=torch.bool)
            boxes, labels, masks = target["boxes"][keep].float(), target["labels"][keep], target["masks"][keep].bool()
            if not len(labels) or not len(detected["boxes"]):
                continue
            overlaps = box_iou(boxes, detected["boxes"].float())  # (K, D)
            overlaps[labels[:, None] != detected["labels"][None, :]] = 0.0
            best_iou, best = overlaps.max(dim=1)
            found = best_iou >= self.box_iou_threshold
            if not found.any():
                continue
            truth, predicted = masks[found].flatten(1), detected["masks"][best[found]].bool().flatten(1)
            intersection = (truth & predicted).sum(dim=1).float()
            union = (truth | predicted).sum(dim=1).float().clamp(min=1.0)
            self.iou_sum += (intersection / union).sum()
            self.matched += found.sum()

    def compute(self) -> Tensor:
        return self.iou_sum / self.matched.clamp(min=1.0)


# ----------------------------------------------------------------------------------------- model
class MaskRCNN(FasterRCNN):
    """Mask R-CNN (He et al., 2017): Faster R-CNN with RoIAlign and an FCN mask branch, one binary
    mask per class, trained with ``L = L_cls + L_box + L_mask`` (plus the RPN's terms).

    Args:
        backbone: ``"paper"`` (VGG-16 conv5_3, this project's paper-sized backbone; the paper's own
            are ResNets) or ``"small"`` (Faster R-CNN's CPU backbone, stride 4).
        num_classes: object classes ``K`` (80 for COCO): ``K`` masks per RoI.
        image_size: side of the example input (800, the paper's shorter side).
        roi_operation: ``"align"`` (RoIAlign, the paper's) or ``"pool"`` (RoIPool, Table 2c's
            comparison), for the box head and the mask branch alike.
        mask_roi_size: the RoI features of the mask branch, ``s x s`` (``None``: 14 paper, 7 small);
            the masks are ``m = 2s`` on a side.
        mask_channels: channels of the mask branch's convolutions and deconvolution (256, 64).
        mask_convs: its 3 x 3 convolutions (4, 2).
        **kwargs: the rest of :class:`~ai_scratch.applying_cnns.faster_rcnn.FasterRCNN`'s arguments.

    Raises:
        ValueError: for an unknown option or a size out of range (and Faster R-CNN's).
    """

    INFO = ModelInfo(
        name="mask_rcnn",
        full_name="Mask R-CNN",
        module=3,
        pattern="engine-based",
        year_introduced=2017,
        authors=("Kaiming He", "Georgia Gkioxari", "Piotr Dollar", "Ross Girshick"),
        paper_title="Mask R-CNN",
        key_innovations=(
            "a mask branch in parallel with Faster R-CNN's classifier and box regression: instance segmentation",
            "RoIAlign: bilinear sampling of the RoI features without rounding boxes or bins to the feature grid",
            "masks decoupled from classification: a binary sigmoid mask per class, the loss on the true class's only",
            "a small fully convolutional head that keeps the m x m spatial layout of the mask",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="L = L_cls + L_box + L_mask (average per-pixel binary cross-entropy on the true class's mask) + the RPN's",
        optimizer="SGD with momentum 0.9, weight decay 1e-4, rate 0.02 then 0.002",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "add a branch to a two-stage detector through its RoI features",
            "build mask targets: the ground-truth mask cropped by the RoI's box and resampled to m x m",
            "write a per-class sigmoid mask loss that uses only the ground-truth class's channel",
            "see why RoIPool's quantisation misaligns features and how RoIAlign's bilinear samples avoid it",
            "paste an m x m mask back into its detection box and threshold it",
            "measure mask AP and the mask IoU of matched detections",
        ),
        estimated_training_time="minutes (small, CPU); days (paper, GPU)",
    )

    def __init__(
        self,
        backbone: Backbone = "paper",
        num_classes: int = 80,
        image_size: int = 800,
        roi_operation: RoIOperation = "align",
        mask_roi_size: int | None = None,
        mask_channels: int | None = None,
        mask_convs: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, image_size=image_size, roi_operation=roi_operation, **kwargs)
        default_size, default_channels, default_convs = MASK_HEADS[backbone]
        mask_roi_size = mask_roi_size if mask_roi_size is not None else default_size
        mask_channels = mask_channels if mask_channels is not None else default_channels
        mask_convs = mask_convs if mask_convs is not None else default_convs
        for name, value, low in (("mask_roi_size", mask_roi_size, 1), ("mask_channels", mask_channels, 1), ("mask_convs", mask_convs, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.hparams.update(mask_roi_size=mask_roi_size, mask_channels=mask_channels, mask_convs=mask_convs)
        self.mask_head = MaskHead(self.features_channels, mask_channels, mask_convs, num_classes)
        with torch.device("cpu"):  # beside the base's metrics (a meta-device build leaves them on the CPU)
            self.val_mask_map = MeanAveragePrecision(iou_type="segm", backend="pycocotools")
            self.test_mask_map = MeanAveragePrecision(iou_type="segm", backend="pycocotools")
            self.val_mask_iou = MatchedMaskIoU(0.5)
            self.test_mask_iou = MatchedMaskIoU(0.5)

    @classmethod
    def paper_sized(cls) -> MaskRCNN:
        """Mask R-CNN for COCO (80 classes) on this project's paper-sized detector, Faster R-CNN with
        VGG-16 (the paper's backbones are ResNets and ResNeXts, with C4 or FPN heads), with the
        paper's FPN mask branch: RoIAlign to 14 x 14, four 3 x 3 convolutions of 256, a 2 x 2
        deconvolution, 80 masks of 28 x 28; 141,540,443 parameters, 3,233,104 of them in the mask
        branch. The example is 800 x 800: the paper re-scales the shorter side to 800 pixels."""
        return cls(backbone="paper", num_classes=80, image_size=800)

    def counted_pass(self, images: Tensor) -> Tensor:
        """Faster R-CNN's pass (300 RoIs an image), then the mask branch on ``max_detections`` boxes an
        image (Section 3.1, inference: "the mask branch is then applied to the highest scoring 100
        detection boxes"), their RoIAlign features stood in by zeros of the pooled shape."""
        features = super().counted_pass(images)
        size = self.hparams.mask_roi_size
        self.mask_head(features.new_zeros(self.hparams.max_detections * len(images), features.shape[1], size, size))
        return features

    @property
    def features_channels(self) -> int:
        """The channels of the shared feature map (the input of the RPN and of both RoI heads)."""
        return self.rpn.conv.in_channels

    @property
    def mask_size(self) -> int:
        """``m``: the side of the predicted masks, twice the mask branch's RoI side."""
        return 2 * self.hparams.mask_roi_size

    def mask_logits(self, features: Tensor, rois: Tensor) -> Tensor:
        """The mask branch on ``rois`` ``(R, 5)``: ``(R, K, m, m)`` logits, float32."""
        return self.mask_head(self.pool(features, rois, self.hparams.mask_roi_size)).float()

    # ------------------------------------------------------------------ training: L_mask
    def head_loss_terms(self, features: Tensor, sample: RoISample, targets: list[Target]) -> dict[str, Tensor]:
        """Fast R-CNN's ``classifier`` and ``box`` and the mask branch's ``mask`` (``L_mask``) on the
        positive RoIs of the sample: ``L = L_cls + L_box + L_mask``."""
        if any("masks" not in target for target in targets):
            raise ValueError("MaskRCNN needs instance masks in the targets (a 'masks' entry, (K, H, W)): use a source with masks, such as the shapes")
        terms = super().head_loss_terms(features, sample, targets)
        positive = sample.foreground
        rois = sample.rois[positive]
        # each positive RoI's matched object among all the batch's objects: its image's offset + its index there
        all_masks = torch.cat([target["masks"] for target in targets]).to(rois.device)
        offsets = torch.tensor([0] + [len(target["masks"]) for target in targets[:-1]], device=rois.device).cumsum(0)
        object_masks = all_masks[offsets[sample.image_index[positive]] + sample.matched[positive]]
        target_masks = mask_targets(object_masks, rois[:, 1:], self.mask_size)
        terms["mask"] = mask_loss(self.mask_logits(features, rois), sample.labels[positive] - 1, target_masks)  # u = k + 1
        return terms

    # ------------------------------------------------------------------ inference: masks of the detections
    def complete_detections(self, features: Tensor, detections: list[Detections], image_size: tuple[int, int]) -> list[Detections]:
        """The mask branch on the final detection boxes: the mask of each detection's predicted class,
        its sigmoid pasted into the box and binarised at 0.5: ``masks`` ``(D, H, W)`` bool."""
        counts = [len(found["boxes"]) for found in detections]
        if not sum(counts):
            return [{**found, "masks": torch.zeros(0, *image_size, dtype=torch.bool, device=features.device)} for found in detections]
        boxes = torch.cat([found["boxes"] for found in detections]).float()
        labels = torch.cat([found["labels"] for found in detections])
        index = torch.cat([torch.full((n,), float(i), device=boxes.device) for i, n in enumerate(counts)])
        logits = self.mask_logits(features, torch.cat([index[:, None], boxes], dim=1))
        probabilities = torch.sigmoid(logits[torch.arange(len(labels), device=labels.device), labels])  # the k-th mask, k predicted
        masks = paste_masks(probabilities, boxes, image_size) >= 0.5
        return [{**found, "masks": part} for found, part in zip(detections, masks.split(counts), strict=True)]

    # ------------------------------------------------------------------ metrics: boxes and masks
    def update_metrics(self, stage: str, images: Tensor, targets: list[Target], found: list[Detections]) -> None:
        """Faster R-CNN's metrics (box mAP and recall, proposal recall), then mask AP and the
        matched mask IoU, from the same detections."""
        super().update_metrics(stage, images, targets, found)
        masks = [{"masks": d["masks"], "scores": d["scores"].float(), "labels": d["labels"]} for d in found]
        true_masks = [{key: target[key] for key in ("masks", "labels", "iscrowd") if key in target} for target in targets]
        getattr(self, f"{stage}_mask_map").update(masks, [{**t, "masks": t["masks"].bool()} for t in true_masks])
        getattr(self, f"{stage}_mask_iou").update(found, targets)

    def _log_detection_metrics(self, stage: str) -> None:
        average_precision: MeanAveragePrecision = getattr(self, f"{stage}_mask_map")
        iou: MatchedMaskIoU = getattr(self, f"{stage}_mask_iou")
        if average_precision.update_called:
            values = scalar_results(average_precision, f"{stage}_mask_")  # collective under DDP
            values[f"{stage}_mask_iou"] = iou.compute()
            self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)
            average_precision.reset()
            iou.reset()
        super()._log_detection_metrics(stage)

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Faster R-CNN's figures, the learning curves with the mask loss, mask AP and mask IoU; the
        detections figure draws the predicted masks over the images."""
        from callbacks.figures import LearningCurves

        curves = ("train_loss", "train_mask", "val_loss", "val_mask", "val_map_50", "val_mask_map", "val_mask_map_50", "val_mask_iou",
                  "val_proposal_recall", "learning_rate")  # fmt: skip
        return [LearningCurves(patterns=curves, every_n_epochs=every_n_epochs)] + [
            callback for callback in super().figures(every_n_epochs) if not isinstance(callback, LearningCurves)
        ]

