"""Faster R-CNN: region proposals from the detector's own features (Ren, He, Girshick and Sun, 2015).

Paper: S. Ren, K. He, R. Girshick and J. Sun, "Faster R-CNN: Towards Real-Time Object Detection with
Region Proposal Networks", NIPS 2015 (arXiv:1506.01497). Section 3.1 gives the Region Proposal
Network (RPN), 3.1.1 its anchors, 3.1.2 its loss (eq. 1) and box parameterisation (eq. 2), 3.1.3
its training, 3.2 the sharing of features with the detector, 3.3 the implementation details. The
detector is Fast R-CNN: R. Girshick, "Fast R-CNN", ICCV 2015 (arXiv:1504.08083), Section 2.

R-CNN and Fast R-CNN detect objects in regions that a separate algorithm proposes (selective search,
about 2 s an image on a CPU). Faster R-CNN proposes the regions with a small network on the same
convolutional features the detector uses, so that proposals cost almost nothing. One network:

1. **Backbone.** The shareable convolutional layers: VGG-16's 13 (``backbone="paper"``; the
   ``conv5_3`` map, stride 16, 512 channels). An image of any size gives a feature map of
   ``H x W`` positions.
2. **Anchors** (Section 3.1.1). At each position ``k`` reference boxes are centred: "by default we
   use 3 scales and 3 aspect ratios, yielding k = 9 anchors at each sliding position", box areas
   128^2, 256^2 and 512^2 pixels and ratios 1:1, 1:2, 2:1 (:func:`base_anchors`,
   :func:`grid_anchors`). An anchor of scale ``s`` and ratio ``r = h / w`` has ``w = s / sqrt r``,
   ``h = s sqrt r``, so its area is ``s^2`` whatever the ratio.
3. **RPN** (Section 3.1, Figure 3). A 3 x 3 convolution slides over the feature map (the
   "intermediate layer", 512-d for VGG, ReLU), then two sibling 1 x 1 convolutions: the *cls*
   layer, ``2k`` scores "that estimate probability of object or not object for each proposal", and
   the *reg* layer, ``4k`` numbers, the box of each anchor (:class:`RegionProposalNetwork`).
   The paper implements cls as a two-class softmax; "alternatively, one may use logistic regression
   to produce k scores" (``rpn_objectness="logistic"``, torchvision's choice). Both give one
   object probability per anchor: ``softmax(s_bg, s_obj)_obj = sigmoid(s_obj - s_bg)``.
4. **Proposals** (Section 3.3). The reg outputs move the anchors (eq. 2 inverted:
   :func:`~ai_scratch.applying_cnns.detection.decode_boxes`); the boxes are clipped to the image,
   tiny ones dropped, the best ``pre_nms_top_n`` by object score kept, non-maximum suppression at
   IoU 0.7 applied ("this leaves about 2000 proposal regions per image") and the top
   ``post_nms_top_n`` kept: 2000 to train the detector, 300 at test time (:func:`select_proposals`).
5. **RoI pooling** (Fast R-CNN, Section 2.1). Each proposal's window on the feature map is divided
   into a 7 x 7 grid of sub-windows, each max-pooled: a fixed-size feature for a box of any size
   (``torchvision.ops.roi_pool``; ``roi_operation="align"`` uses RoIAlign, Mask R-CNN's bilinear
   sampling without rounding).
6. **Detection head** (Fast R-CNN, Section 2). Two fully connected layers (VGG's fc6 and fc7, 4096
   units, ReLU and dropout), then two siblings: a softmax over ``C + 1`` classes (background is
   class 0) and, for each class, a box regression ``t^u`` (:class:`FastRCNNHead`).

**Anchor labels** (Section 3.1.2, :func:`label_anchors`). "We assign a positive label to two kinds
of anchors: (i) the anchor/anchors with the highest Intersection-over-Union (IoU) overlap with a
ground-truth box, or (ii) an anchor that has an IoU overlap higher than 0.7 with any ground-truth
box. [...] We assign a negative label to a non-positive anchor if its IoU ratio is lower than 0.3
for all ground-truth boxes. Anchors that are neither positive nor negative do not contribute";
"during training, we ignore all cross-boundary anchors" (Section 3.3). Of the labelled anchors of an
image, 256 are sampled, positives and negatives "up to 1:1" (fewer positives: the rest negatives).

**The RPN loss** (eq. 1), for the sampled anchors ``i`` of an image:

    L({p_i}, {t_i}) = 1 / N_cls sum_i L_cls(p_i, p*_i) + lambda 1 / N_reg sum_i p*_i L_reg(t_i, t*_i)

``p_i`` the predicted object probability, ``p*_i`` 1 for a positive anchor and 0 for a negative
one, ``L_cls`` the log loss, ``L_reg(t, t*) = R(t - t*)`` with ``R`` the smooth L1 of Fast R-CNN,
``smooth_L1(x) = 0.5 x^2 if |x| < 1 else |x| - 0.5``, summed over the 4 coordinates. ``N_cls`` is
the mini-batch size (256), ``N_reg`` the number of anchor locations (about 2400, ``H * W``), and
``lambda = 10``, "thus both cls and reg terms are roughly equally weighted". The regression targets
(eq. 2) of an anchor ``(x_a, y_a, w_a, h_a)`` (centre and size) and its box ``(x*, y*, w*, h*)``:

    t*_x = (x* - x_a) / w_a,   t*_y = (y* - y_a) / h_a,   t*_w = log(w* / w_a),   t*_h = log(h* / h_a)

**The detector's loss** (Fast R-CNN, eq. 1), for sampled regions ("RoIs") ``u`` their class:

    L(p, u, t^u, v) = L_cls(p, u) + lambda [u >= 1] L_loc(t^u, v),   L_loc = sum_i smooth_L1(t^u_i - v_i)

with ``lambda = 1``, ``[u >= 1]`` 1 for an object and 0 for background. Each image gives 128 RoIs
(:func:`sample_rois`): "25% of the RoIs from object proposals that have IoU overlap with a
ground-truth bounding box of at least 0.5", labelled with that box's class; the rest background,
"the maximum IoU with ground truth in the interval [0.1, 0.5)" (``background_iou_low=0`` admits
every region). The ground-truth boxes join the proposals as candidates, as the reference
implementation (py-faster-rcnn) does. The targets ``v`` are eq. 2's, "normalized to have zero mean
and unit variance": multiplied by ``box_target_weights``, ``(10, 10, 5, 5)`` (the inverse standard
deviations py-faster-rcnn uses).

**Training** (Section 3.2). The paper's main results alternate RPN and Fast R-CNN training in four
steps; here is its "approximate joint training": one network, one SGD step on the sum of the four
terms (``rpn_objectness + lambda rpn_box + classifier + box``), the proposals of the forward pass
"treated just like fixed, pre-computed proposals" (no gradient through their coordinates), while
the shared layers receive the gradients of both losses. The paper's schedule on VOC: SGD, rate
0.001 for 60k mini-batches, 0.0001 for 20k more, momentum 0.9, weight decay 0.0005
(``lr_schedule="paper"``: the rate divided by 10 at 3/4 of the run); new layers drawn from a
Gaussian of standard deviation 0.01.

**Detection** (:func:`detections_from_head`). For each RoI, softmax class probabilities and, for
each class, the box decoded from its ``t^u``; boxes clipped to the image, scores at or below
``score_threshold`` dropped, non-maximum suppression per class (IoU ``nms_threshold``, 0.3 as in
R-CNN's and Fast R-CNN's test code) and the ``max_detections`` best kept.

Sizes. ``backbone="paper"``: VGG-16's 13 convolutions, 3 x 3 RPN of 512 channels, RoI 7 x 7, fc6 and
fc7 of 4096: 137,078,239 parameters for Pascal VOC's 20 classes (137,073,622 with logistic
objectness, as torchvision builds it). ``backbone="small"`` is the same class for 64 x 64 images on a
CPU: four 3 x 3 convolutions (16, 32, 64, 64 channels) with two 2 x 2 max poolings, so stride 4 (a
16 x 16 map): a stride of 8 would put anchor centres 8 pixels apart, and a 10-pixel object between
two of them overlaps its best anchor with IoU below 0.5. Its anchors have scales 12, 17 and 24
pixels (areas 12^2, 17^2, 24^2, a factor sqrt 2 apart where the paper's are a factor 2 apart), so
that every shape of side 9 to 26 pixels has an anchor with IoU >= 0.5. Nothing is pre-trained
here (the paper starts from ImageNet VGG-16); ``batch_norm`` (not in the paper) helps the small
network learn from scratch in a few epochs.

Example::

    model = FasterRCNN(backbone="paper")                       # VGG-16, 21 classes with background
    small = FasterRCNN(backbone="small", num_classes=4, image_size=64)
    detections = small.predict(torch.rand(2, 3, 64, 64))       # [{"boxes", "scores", "labels"}, ...]
    proposals = small.proposals(torch.rand(2, 3, 64, 64))      # [(P, 4) boxes, best first, ...]

A subclass (Mask R-CNN) adds a branch through three hooks: :meth:`FasterRCNN.head_loss_terms`
(given the features and the :class:`RoISample`, whose foreground RoIs carry their matched
ground-truth index), :meth:`FasterRCNN.complete_detections` (given the features and the
detections) and :meth:`FasterRCNN.pool` (RoIPool or RoIAlign at any output size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import LambdaLR
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, nms, remove_small_boxes, roi_align, roi_pool

from ai_scratch.applying_cnns.detection import DetectionModel, Detections, ProposalRecall, Target, decode_boxes, encode_boxes
from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo

Backbone = Literal["paper", "small"]
RoIOperation = Literal["pool", "align"]
Objectness = Literal["softmax", "logistic"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["paper", "cosine", "constant"]

#: A backbone layer: the output channels of a 3 x 3 convolution (padding 1, ReLU), or ``"M"`` for
#: 2 x 2 max pooling of stride 2.
Layer = int | str

#: VGG-16's 13 convolutions (configuration D) up to conv5_3, without pool5: stride 16, 512 channels.
VGG16_LAYERS: tuple[Layer, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: The CPU backbone: four convolutions, two poolings: stride 4, 64 channels.
SMALL_LAYERS: tuple[Layer, ...] = (16, "M", 32, "M", 64, 64)


@dataclass(frozen=True)
class BackboneDefaults:
    """What a backbone brings: its layers and the sizes that go with them."""

    layers: tuple[Layer, ...]
    anchor_scales: tuple[float, ...]  # sides of the square anchors, pixels (the sqrt of the areas)
    roi_output_size: int  # RoI pooling's H = W
    hidden_size: int  # fc6 and fc7
    min_proposal_size: float  # proposals with a side below it are dropped, pixels


BACKBONES: dict[str, BackboneDefaults] = {
    "paper": BackboneDefaults(VGG16_LAYERS, (128.0, 256.0, 512.0), 7, 4096, 16.0),
    "small": BackboneDefaults(SMALL_LAYERS, (12.0, 17.0, 24.0), 7, 256, 2.0),
}
#: Section 3.1.1: ratios h / w of 1:2, 1:1 and 2:1.
PAPER_ASPECT_RATIOS = (0.5, 1.0, 2.0)


def build_backbone(layers: Sequence[Layer], in_channels: int, batch_norm: bool = False) -> tuple[nn.Sequential, int, int]:
    """The 3 x 3 convolutions (ReLU) and max poolings of ``layers``; returns them, the channels they
    end with and their total stride."""
    modules: list[nn.Module] = []
    channels, stride = in_channels, 1
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2, 2))
            stride *= 2
            continue
        modules.append(nn.Conv2d(channels, int(layer), 3, padding=1, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm2d(int(layer)))
        modules.append(nn.ReLU(inplace=True))
        channels = int(layer)
    return nn.Sequential(*modules), channels, stride


# --------------------------------------------------------------------------------------- anchors
def base_anchors(scales: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """The ``k = len(scales) * len(ratios)`` anchors of one position, centred at ``(0, 0)``: ``(k, 4)``
    xyxy, scale-major. Scale ``s`` and ratio ``r = h / w`` give ``w = s / sqrt(r)``, ``h = s sqrt(r)``:
    area ``s^2`` at every ratio."""
    anchors = []
    for scale in scales:
        for ratio in ratios:
            width, height = scale / math.sqrt(ratio), scale * math.sqrt(ratio)
            anchors.append([-width / 2, -height / 2, width / 2, height / 2])
    return torch.tensor(anchors, dtype=torch.float32)


def grid_anchors(base: Tensor, height: int, width: int, stride: int) -> Tensor:
    """``base`` anchors ``(k, 4)`` centred on every position of an ``height x width`` feature map of
    the given ``stride``: position ``(i, j)`` covers the pixels ``[j * stride, (j + 1) * stride)``, so
    its anchors are centred at ``((j + 0.5) stride, (i + 0.5) stride)``. Returns ``(H * W * k, 4)``
    in the order rows, columns, anchors: the order of the RPN's outputs."""
    ys = (torch.arange(height, dtype=torch.float32, device=base.device) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32, device=base.device) + 0.5) * stride
    centre_y, centre_x = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([centre_x, centre_y, centre_x, centre_y], dim=-1).reshape(-1, 1, 4)
    return (centres + base.reshape(1, -1, 4)).reshape(-1, 4)


def label_anchors(anchors: Tensor, boxes: Tensor, positive_iou: float = 0.7, negative_iou: float = 0.3, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Section 3.1.2's labels of ``anchors`` ``(A, 4)`` against the ground-truth ``boxes`` ``(K, 4)``:
    ``(A,)`` with 1 (object), 0 (background) and -1 (ignored), and the index of each anchor's
    best-overlapping box.

    Negative: IoU < ``negative_iou`` with every box. Positive: IoU >= ``positive_iou`` with some
    box, or the anchor(s) of highest IoU with a box (all ties; boxes no anchor overlaps are left
    out), which may overrule a negative label. Anchors outside ``valid`` (the cross-boundary ones)
    are ignored."""
    labels = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
    matched = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
    if len(boxes):
        overlaps = box_iou(anchors, boxes.float())  # (A, K)
        if valid is not None:
            overlaps[~valid] = -1.0  # never the best anchor of a box
        best_iou, matched = overlaps.max(dim=1)
        labels[(best_iou >= 0) & (best_iou < negative_iou)] = 0
        labels[best_iou >= positive_iou] = 1  # (ii)
        best_for_box = overlaps.max(dim=0).values  # (K,)
        is_best = (overlaps == best_for_box[None, :]) & (best_for_box[None, :] > 0)
        labels[is_best.any(dim=1)] = 1  # (i), ties included
    else:
        labels[:] = 0  # an image without objects: every anchor is background
    if valid is not None:
        labels[~valid] = -1
    return labels, matched


def sample_positives_and_negatives(positive: Tensor, negative: Tensor, batch_size: int, positive_fraction: float) -> tuple[Tensor, Tensor]:
    """Indices of a random mini-batch of ``batch_size`` examples, at most ``positive_fraction`` of
    them from ``positive`` (a bool mask), the rest from ``negative``: "if there are fewer than 128
    positive samples in an image, we pad the mini-batch with negative ones"."""
    positives, negatives = positive.nonzero().squeeze(1), negative.nonzero().squeeze(1)
    num_positive = min(len(positives), int(round(batch_size * positive_fraction)))
    num_negative = min(len(negatives), batch_size - num_positive)
    positives = positives[torch.randperm(len(positives), device=positives.device)[:num_positive]]
    negatives = negatives[torch.randperm(len(negatives), device=negatives.device)[:num_negative]]
    return positives, negatives


def rpn_loss(
    objectness: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    targets: list[Target],
    image_size: tuple[int, int],
    locations: int,
    batch_size: int = 256,
    positive_fraction: float = 0.5,
    positive_iou: float = 0.7,
    negative_iou: float = 0.3,
    ignore_cross_boundary: bool = True,
) -> dict[str, Tensor]:
    """The two terms of eq. 1 for a batch, each averaged over the images: ``rpn_objectness``,
    ``1 / N_cls sum_i L_cls(p_i, p*_i)`` (log loss over the sampled anchors), and ``rpn_box``,
    ``1 / N_reg sum_i p*_i L_reg(t_i, t*_i)`` (smooth L1 over the positive ones, ``N_reg`` the
    ``locations`` of the feature map), unweighted by lambda.

    ``objectness`` ``(N, A)`` are the logits of ``p_i``, ``deltas`` ``(N, A, 4)`` the ``t_i``,
    ``anchors`` ``(A, 4)``."""
    height, width = image_size
    valid = None
    if ignore_cross_boundary:
        valid = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= width) & (anchors[:, 3] <= height)
    sampled_logits, sampled_labels, box_losses = [], [], []
    for logits, image_deltas, target in zip(objectness.float(), deltas.float(), targets, strict=True):
        labels, matched = label_anchors(anchors, target["boxes"], positive_iou, negative_iou, valid)
        positives, negatives = sample_positives_and_negatives(labels == 1, labels == 0, batch_size, positive_fraction)
        chosen = torch.cat([positives, negatives])
        sampled_logits.append(logits[chosen])
        sampled_labels.append((labels[chosen] == 1).float())  # p*_i
        t_star = encode_boxes(anchors[positives], target["boxes"][matched[positives]].float())  # eq. 2
        box_losses.append(F.smooth_l1_loss(image_deltas[positives], t_star, reduction="sum", beta=1.0) / locations)
    logits, labels = torch.cat(sampled_logits), torch.cat(sampled_labels)
    # 1 / N_cls sum_i over every image's mini-batch: the mean log loss of the sampled anchors
    classification = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / max(len(labels), 1)
    return {"rpn_objectness": classification, "rpn_box": torch.stack(box_losses).mean()}


def select_proposals(
    anchors: Tensor,
    objectness: Tensor,
    deltas: Tensor,
    image_size: tuple[int, int],
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_threshold: float = 0.7,
    min_size: float = 0.0,
) -> tuple[list[Tensor], list[Tensor]]:
    """The RPN's proposals of each image (Section 3.3): anchors moved by their ``deltas``
    ``(N, A, 4)``, clipped to the image, those with a side below ``min_size`` dropped, the
    ``pre_nms_top_n`` of highest ``objectness`` ``(N, A)`` (logits) kept, NMS at ``nms_threshold``,
    and the ``post_nms_top_n`` best kept. Returns the boxes ``(P, 4)`` of each image and their
    object probabilities, best first, without gradient (approximate joint training)."""
    with torch.no_grad():
        n, count = objectness.shape
        boxes = decode_boxes(anchors.repeat(n, 1), deltas.reshape(-1, 4).float()).reshape(n, count, 4)
        scores = torch.sigmoid(objectness.float())
        top_scores, top = scores.topk(min(pre_nms_top_n, count), dim=1)
        top_boxes = boxes.gather(1, top.unsqueeze(-1).expand(-1, -1, 4))
        proposals, proposal_scores = [], []
        for image_boxes, image_scores in zip(top_boxes, top_scores, strict=True):
            image_boxes = clip_boxes_to_image(image_boxes, image_size)
            keep = remove_small_boxes(image_boxes, min_size) if min_size > 0 else torch.arange(len(image_boxes), device=image_boxes.device)
            image_boxes, image_scores = image_boxes[keep], image_scores[keep]
            keep = nms(image_boxes, image_scores, nms_threshold)[:post_nms_top_n]  # sorted by score
            proposals.append(image_boxes[keep])
            proposal_scores.append(image_scores[keep])
    return proposals, proposal_scores


# ------------------------------------------------------------------------------------------- RoIs
@dataclass
class RoISample:
    """The regions a detector head trains on, all images together (Fast R-CNN's mini-batch).

    Attributes:
        rois: ``(R, 5)``: image index, then the box (xyxy pixels), torchvision's RoI format.
        labels: ``(R,)`` class ``u``: 0 background, ``c + 1`` the object class ``c``.
        matched: ``(R,)`` index, within its image's target, of the ground-truth box a RoI overlaps
            most (meaningful for the foreground RoIs: a mask branch crops that object's mask).
        box_targets: ``(R, 4)`` eq. 2's ``v`` (weighted) from the RoI to that box.
    """

    rois: Tensor
    labels: Tensor
    matched: Tensor
    box_targets: Tensor

    @property
    def foreground(self) -> Tensor:
        """``(R,)`` bool: the RoIs of an object (``u >= 1``)."""
        return self.labels > 0

    @property
    def image_index(self) -> Tensor:
        return self.rois[:, 0].long()


def sample_rois(
    proposals: list[Tensor],
    targets: list[Target],
    rois_per_image: int = 128,
    foreground_fraction: float = 0.25,
    foreground_iou: float = 0.5,
    background_iou_low: float = 0.1,
    box_target_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
    add_ground_truth: bool = True,
) -> RoISample:
    """Fast R-CNN's mini-batch of RoIs (Section 2.3): per image at most ``foreground_fraction`` of
    ``rois_per_image`` regions with IoU >= ``foreground_iou`` with a ground-truth box (labelled with
    its class), the rest background with maximum IoU in ``[background_iou_low, foreground_iou)``.
    With ``add_ground_truth`` the true boxes are candidates too."""
    rois, labels, matched, box_targets = [], [], [], []
    for index, (candidates, target) in enumerate(zip(proposals, targets, strict=True)):
        boxes = target["boxes"].float().to(candidates.device)
        if add_ground_truth:
            candidates = torch.cat([candidates, boxes])
        if len(boxes):
            best_iou, best = box_iou(candidates, boxes).max(dim=1)
        else:
            best_iou = torch.zeros(len(candidates), device=candidates.device)
            best = torch.zeros(len(candidates), dtype=torch.long, device=candidates.device)
        foreground = best_iou >= foreground_iou
        background = (best_iou < foreground_iou) & (best_iou >= background_iou_low)
        chosen_fg, chosen_bg = sample_positives_and_negatives(foreground, background, rois_per_image, foreground_fraction)
        chosen = torch.cat([chosen_fg, chosen_bg])
        image_labels = torch.zeros(len(chosen), dtype=torch.long, device=candidates.device)
        if len(boxes):
            image_labels[: len(chosen_fg)] = target["labels"].to(candidates.device)[best[chosen_fg]] + 1  # u = c + 1
        chosen_boxes = candidates[chosen]
        targets_v = torch.zeros(len(chosen), 4, device=candidates.device)
        if len(boxes) and len(chosen):
            targets_v = encode_boxes(chosen_boxes, boxes[best[chosen]], box_target_weights)
        rois.append(torch.cat([torch.full((len(chosen), 1), float(index), device=candidates.device), chosen_boxes], dim=1))
        labels.append(image_labels)
        matched.append(best[chosen])
        box_targets.append(targets_v)
    return RoISample(torch.cat(rois), torch.cat(labels), torch.cat(matched), torch.cat(box_targets))


def detection_loss(class_logits: Tensor, box_deltas: Tensor, sample: RoISample) -> dict[str, Tensor]:
    """Fast R-CNN's eq. 1 over the sampled RoIs: ``classifier``, the mean log loss of the true class
    ``u``, and ``box``, ``sum [u >= 1] smooth_L1(t^u - v)`` over the foreground RoIs divided by all
    sampled RoIs (each RoI's loss averaged, background ones counting 0)."""
    class_logits, box_deltas = class_logits.float(), box_deltas.float()
    if not len(sample.labels):  # no region at all: zero, with a gradient path
        zero = class_logits.sum() * 0.0 + box_deltas.sum() * 0.0
        return {"classifier": zero, "box": zero}
    classifier = F.cross_entropy(class_logits, sample.labels)
    foreground = sample.foreground
    per_class = box_deltas.reshape(len(box_deltas), -1, 4)
    t_u = per_class[foreground, sample.labels[foreground]]  # the regression of the true class only
    box = F.smooth_l1_loss(t_u, sample.box_targets[foreground], reduction="sum", beta=1.0) / len(sample.labels)
    return {"classifier": classifier, "box": box}


def detections_from_head(
    class_logits: Tensor,
    box_deltas: Tensor,
    rois: list[Tensor],
    image_size: tuple[int, int],
    box_target_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
    score_threshold: float = 0.05,
    nms_threshold: float = 0.3,
    max_detections: int = 100,
) -> list[Detections]:
    """The detections of each image from the head's outputs for its ``rois`` (boxes ``(R_i, 4)``, the
    outputs of all images concatenated in that order): softmax scores, each class's box decoded from
    its ``t^u``, clipped; (RoI, class) pairs scored above ``score_threshold`` kept, per-class NMS, the
    ``max_detections`` best. Labels are the object classes ``0 .. C - 1`` (background never returned)."""
    probabilities = F.softmax(class_logits.float(), dim=1)[:, 1:]  # (R, C): background dropped
    per_class_boxes = decode_boxes(torch.cat(rois), box_deltas.float(), box_target_weights)[:, 1:]  # (R, C, 4)
    detections = []
    for scores, boxes in zip(probabilities.split([len(r) for r in rois]), per_class_boxes.split([len(r) for r in rois]), strict=True):
        roi_index, labels = (scores > score_threshold).nonzero(as_tuple=True)
        kept_boxes = clip_boxes_to_image(boxes[roi_index, labels], image_size)
        kept_scores = scores[roi_index, labels]
        keep = batched_nms(kept_boxes, kept_scores, labels, nms_threshold)[:max_detections]
        detections.append({"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": labels[keep]})
    return detections


# ------------------------------------------------------------------------------------- the networks
class RegionProposalNetwork(nn.Module):
    """Section 3.1, Figure 3: an ``n x n = 3 x 3`` convolution over the shared feature map (the
    intermediate layer, ReLU), then the 1 x 1 *cls* layer (``2k`` scores, or ``k`` with
    ``objectness="logistic"``) and the 1 x 1 *reg* layer (``4k`` box coordinates).

    ``forward`` returns per anchor (order: rows, columns, anchors, as :func:`grid_anchors`) the
    logit of the object probability ``(N, A)`` and the deltas ``t_i`` ``(N, A, 4)``."""

    def __init__(self, in_channels: int, channels: int, anchors_per_position: int, objectness: Objectness = "softmax") -> None:
        super().__init__()
        self.k, self.two_class = anchors_per_position, objectness == "softmax"
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)  # the sliding window
        self.objectness = nn.Conv2d(channels, anchors_per_position * (2 if self.two_class else 1), 1)  # cls
        self.box_deltas = nn.Conv2d(channels, anchors_per_position * 4, 1)  # reg
        for layer in (self.conv, self.objectness, self.box_deltas):  # Section 3.3: N(0, 0.01^2)
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        n, _, height, width = features.shape
        hidden = F.relu(self.conv(features))
        scores = self.objectness(hidden)
        if self.two_class:  # (background, object) per anchor: softmax(...)_object = sigmoid(s_object - s_background)
            scores = scores.view(n, 2, self.k, height, width)
            scores = scores[:, 1] - scores[:, 0]
        logits = scores.permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.box_deltas(hidden).view(n, self.k, 4, height, width).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        return logits, deltas


class FastRCNNHead(nn.Module):
    """Fast R-CNN's head on pooled RoI features (Figure 1): fc6 and fc7 (ReLU, dropout), then the
    class scores (``C + 1``, background first) and a box regression per class (``4 (C + 1)``)."""

    def __init__(self, in_features: int, hidden_size: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden_size)
        self.fc7 = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.class_scores = nn.Linear(hidden_size, num_classes + 1)
        self.box_deltas = nn.Linear(hidden_size, 4 * (num_classes + 1))
        nn.init.normal_(self.class_scores.weight, std=0.01)  # py-faster-rcnn's initialisation
        nn.init.normal_(self.box_deltas.weight, std=0.001)
        nn.init.zeros_(self.class_scores.bias)
        nn.init.zeros_(self.box_deltas.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.dropout(F.relu(self.fc6(pooled.flatten(1))))
        hidden = self.dropout(F.relu(self.fc7(hidden)))
        return self.class_scores(hidden), self.box_deltas(hidden)


# ----------------------------------------------------------------------------------------- model
class FasterRCNN(DetectionModel):
    """Faster R-CNN (Ren et al., 2015): shared convolutional features, a Region Proposal Network with
    anchors, RoI pooling and Fast R-CNN's head, trained end to end (approximate joint training).

    Args:
        backbone: ``"paper"`` (VGG-16's 13 convolutions, stride 16) or ``"small"`` (four
            convolutions, stride 4, for 64 x 64 images).
        num_classes: object classes ``C`` (20 for Pascal VOC); the head adds the background.
        image_size: side of the example input (model summary); the network takes any size.
        in_channels: channels of the input images.
        batch_norm: batch normalisation after every backbone convolution (not in the paper).
        anchor_scales: anchor sides in pixels (``None``: the backbone's, 128, 256, 512 or 12, 17, 24).
        anchor_ratios: anchor ratios ``h / w`` (1:2, 1:1, 2:1).
        rpn_channels: the RPN's intermediate layer (``None``: the backbone's channels, 512 for VGG).
        rpn_objectness: ``"softmax"`` (the paper's ``2k`` scores) or ``"logistic"`` (``k``).
        rpn_batch_size, rpn_positive_fraction: anchors sampled per image (256) and the largest
            fraction of positives (0.5).
        rpn_positive_iou, rpn_negative_iou: the anchor labels' thresholds (0.7, 0.3).
        rpn_lambda: eq. 1's ``lambda`` (10).
        ignore_cross_boundary_anchors: leave anchors that cross the image border out of the RPN loss.
        pre_nms_top_n_train, post_nms_top_n_train, pre_nms_top_n_test, post_nms_top_n_test:
            proposals kept before and after the RPN's NMS, training (12000, 2000) and test (6000, 300).
        rpn_nms_threshold: the RPN's NMS (0.7).
        min_proposal_size: proposals with a side below it (pixels) are dropped (``None``: the backbone's).
        roi_operation: ``"pool"`` (RoI max pooling, the paper's) or ``"align"`` (RoIAlign).
        roi_output_size: the pooled grid ``H = W`` (``None``: the backbone's, 7).
        hidden_size: fc6 and fc7 (``None``: the backbone's, 4096 or 256).
        dropout: after fc6 and fc7 (0.5, VGG's).
        rois_per_image, foreground_fraction, foreground_iou, background_iou_low: Fast R-CNN's
            mini-batch (128 RoIs, 25% with IoU >= 0.5, the rest in [0.1, 0.5)).
        box_target_weights: the weights of eq. 2's targets in the head (10, 10, 5, 5).
        score_threshold, nms_threshold, max_detections: detection (0.05, per-class NMS at 0.3, 100).
        proposal_recall_top_n: ``{stage}_proposal_recall`` counts the objects that one of the top this
            many proposals of their image covers with IoU >= 0.5 (300, the paper's test-time N).
        optimizer: ``"sgd"`` (with ``momentum`` and ``weight_decay``) or ``"adam"``.
        learning_rate, momentum, weight_decay: the optimizer's (0.001, 0.9, 0.0005 in the paper).
        lr_schedule: ``"paper"`` (divided by 10 at 3/4 of the run, 60k of 80k mini-batches),
            ``"cosine"`` (to zero) or ``"constant"``; per step.
        warmup_fraction: the fraction of the run over which the rate rises from a tenth of itself.
        class_names: the classes' names, for figures.

    Raises:
        ValueError: for an unknown option, or a size, count, fraction or threshold out of range.
    """

    INFO = ModelInfo(
        name="faster_rcnn",
        full_name="Faster R-CNN",
        module=3,
        pattern="engine-based",
        year_introduced=2015,
        authors=("Shaoqing Ren", "Kaiming He", "Ross Girshick", "Jian Sun"),
        paper_title="Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
        key_innovations=(
            "a Region Proposal Network that shares the detector's convolutional features: proposals almost for free",
            "anchors: k = 9 reference boxes (3 scales x 3 aspect ratios) at every position of the feature map",
            "translation-invariant proposals regressed from anchors with the scale-invariant parameterisation of eq. 2",
            "one network trained end to end: RPN loss (eq. 1) and Fast R-CNN loss summed",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="RPN: log loss + lambda smooth L1 (eq. 1); Fast R-CNN: softmax log loss + smooth L1",
        optimizer="SGD with momentum 0.9, weight decay 5e-4, rate 1e-3 then 1e-4",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "generate anchors of several scales and aspect ratios at every feature-map position",
            "label anchors by IoU (positive >= 0.7 or best, negative < 0.3) and sample a balanced mini-batch",
            "write the RPN loss of eq. 1 and the box regression targets of eq. 2",
            "turn RPN outputs into proposals: decode, clip, top-N, non-maximum suppression",
            "pool a fixed-size feature from a box of any size (RoI pooling) and classify it with C + 1 classes",
            "measure the recall of the proposals and the mean average precision of the detections",
        ),
        estimated_training_time="minutes (small, CPU); hours to days (paper, GPU)",
    )

    def __init__(
        self,
        backbone: Backbone = "paper",
        num_classes: int = 20,
        image_size: int = 600,
        in_channels: int = 3,
        batch_norm: bool = False,
        anchor_scales: Sequence[float] | None = None,
        anchor_ratios: Sequence[float] = PAPER_ASPECT_RATIOS,
        rpn_channels: int | None = None,
        rpn_objectness: Objectness = "softmax",
        rpn_batch_size: int = 256,
        rpn_positive_fraction: float = 0.5,
        rpn_positive_iou: float = 0.7,
        rpn_negative_iou: float = 0.3,
        rpn_lambda: float = 10.0,
        ignore_cross_boundary_anchors: bool = True,
        pre_nms_top_n_train: int = 12000,
        post_nms_top_n_train: int = 2000,
        pre_nms_top_n_test: int = 6000,
        post_nms_top_n_test: int = 300,
        rpn_nms_threshold: float = 0.7,
        min_proposal_size: float | None = None,
        roi_operation: RoIOperation = "pool",
        roi_output_size: int | None = None,
        hidden_size: int | None = None,
        dropout: float = 0.5,
        rois_per_image: int = 128,
        foreground_fraction: float = 0.25,
        foreground_iou: float = 0.5,
        background_iou_low: float = 0.1,
        box_target_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        score_threshold: float = 0.05,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
        proposal_recall_top_n: int = 300,
        optimizer: Optimizer = "sgd",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: Schedule = "paper",
        warmup_fraction: float = 0.0,
        class_names: list[str] | None = None,
    ) -> None:
        check_choice("backbone", backbone, Backbone)
        check_choice("rpn_objectness", rpn_objectness, Objectness)
        check_choice("roi_operation", roi_operation, RoIOperation)
        check_choice("optimizer", optimizer, Optimizer)
        check_choice("lr_schedule", lr_schedule, Schedule)
        defaults = BACKBONES[backbone]
        anchor_scales = tuple(float(s) for s in (anchor_scales if anchor_scales is not None else defaults.anchor_scales))
        anchor_ratios = tuple(float(r) for r in anchor_ratios)
        roi_output_size = roi_output_size if roi_output_size is not None else defaults.roi_output_size
        hidden_size = hidden_size if hidden_size is not None else defaults.hidden_size
        min_proposal_size = float(min_proposal_size if min_proposal_size is not None else defaults.min_proposal_size)
        counts = (
            ("image_size", image_size), ("in_channels", in_channels), ("rpn_batch_size", rpn_batch_size),
            ("pre_nms_top_n_train", pre_nms_top_n_train), ("post_nms_top_n_train", post_nms_top_n_train),
            ("pre_nms_top_n_test", pre_nms_top_n_test), ("post_nms_top_n_test", post_nms_top_n_test),
            ("roi_output_size", roi_output_size), ("hidden_size", hidden_size), ("rois_per_image", rois_per_image),
            ("max_detections", max_detections), ("proposal_recall_top_n", proposal_recall_top_n),
        )  # fmt: skip
        if rpn_channels is not None:
            counts += (("rpn_channels", rpn_channels),)
        for name, value in counts:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not anchor_scales or not anchor_ratios or min(anchor_scales + anchor_ratios) <= 0:
            raise ValueError(f"anchor_scales and anchor_ratios must be non-empty and positive, got {list(anchor_scales)}, {list(anchor_ratios)}")
        for name, value in (("rpn_positive_fraction", rpn_positive_fraction), ("foreground_fraction", foreground_fraction)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0 <= rpn_negative_iou <= rpn_positive_iou <= 1:
            raise ValueError(f"rpn_negative_iou and rpn_positive_iou must satisfy 0 <= negative <= positive <= 1, got {rpn_negative_iou}, {rpn_positive_iou}")
        if not 0 <= background_iou_low < foreground_iou <= 1:
            raise ValueError(f"background_iou_low and foreground_iou must satisfy 0 <= low < foreground <= 1, got {background_iou_low}, {foreground_iou}")
        for name, value in (("rpn_nms_threshold", rpn_nms_threshold), ("nms_threshold", nms_threshold)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0 <= score_threshold < 1:
            raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if rpn_lambda < 0 or min_proposal_size < 0:
            raise ValueError(f"rpn_lambda and min_proposal_size must be >= 0, got {rpn_lambda}, {min_proposal_size}")
        if len(box_target_weights) != 4 or min(box_target_weights) <= 0:
            raise ValueError(f"box_target_weights must be 4 positive numbers, got {list(box_target_weights)}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        super().__init__(num_classes=num_classes, class_names=class_names)
        self.save_hyperparameters()
        self.hparams.update(anchor_scales=list(anchor_scales), anchor_ratios=list(anchor_ratios), roi_output_size=roi_output_size,
                            hidden_size=hidden_size, min_proposal_size=min_proposal_size, box_target_weights=list(box_target_weights))  # fmt: skip
        self.box_target_weights = tuple(float(w) for w in box_target_weights)

        self.features, channels, self.stride = build_backbone(defaults.layers, in_channels, batch_norm)
        if image_size < self.stride:
            raise ValueError(f"image_size {image_size} is too small for backbone {backbone!r}: its feature map would be empty (stride {self.stride})")
        self.register_buffer("cell_anchors", base_anchors(anchor_scales, anchor_ratios), persistent=False)
        self.rpn = RegionProposalNetwork(channels, rpn_channels or channels, len(self.cell_anchors), rpn_objectness)
        self.head = FastRCNNHead(channels * roi_output_size**2, hidden_size, num_classes, dropout)
        with torch.device("cpu"):  # beside the base's metrics, which a meta-device build leaves on the CPU
            self.val_proposal_recall = ProposalRecall(proposal_recall_top_n)
            self.test_proposal_recall = ProposalRecall(proposal_recall_top_n)
        # per RoI: for each of C + 1 classes a probability and a box
        self.set_sizes((in_channels, image_size, image_size), (num_classes + 1, 5))

    @property
    def feature_map_layers(self) -> tuple[str, ...]:
        """The first two convolutions, for the feature-map figure."""
        convolutions = [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        return tuple(convolutions[:2])

    #: Section 3.1.3: "for a typical 1000 x 600 image" (the shorter side re-scaled to 600 pixels).
    PAPER_IMAGE_SIZE = (600, 1000)

    @classmethod
    def paper_sized(cls) -> FasterRCNN:
        """Faster R-CNN with VGG-16 on Pascal VOC (Sections 3 and 4.1): VGG-16's 13 shared
        convolutions (stride 16), the RPN's 3 x 3 layer of 512 and its 9 anchors (3 scales, 3 ratios)
        with 2k scores and 4k box deltas, RoI pooling to 7 x 7 and Fast R-CNN's fc6 and fc7 of 4096
        with 21 classes; 137,078,239 parameters. The example is one "typical 1000 x 600 image"
        (height 600, width 1000), the size at which the paper counts its "roughly 20000
        (60 x 40 x 9)" anchors."""
        model = cls(backbone="paper", num_classes=20)
        model.set_sizes((model.hparams.in_channels, *cls.PAPER_IMAGE_SIZE), model.output_size)
        return model

    def forward_flops(self) -> int:
        """FLOPs of detecting one image at test time, with a fixed set of RoIs: the shared
        convolutions on ``example_input_array``, the RPN on their map, and Fast R-CNN's head on
        ``post_nms_top_n_test`` RoIs (300, the paper's test-time number of proposals), counted by
        :class:`~torch.utils.flop_counter.FlopCounterMode` (:meth:`counted_pass`). How many proposals
        survive the RPN's NMS depends on the image, so the full quota is counted; the proposal
        selection, the RoI pooling and the NMS are not matrix products and are left out."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            self.counted_pass(self.example_input_array.to(self.device))
        return int(counter.get_total_flops())

    def counted_pass(self, images: Tensor) -> Tensor:
        """The network's layers on ``images`` as :meth:`predict` runs them, with ``post_nms_top_n_test``
        RoIs an image whose pooled features are zeros of the pooled shape (the RoI pooling is data
        dependent and computes no products); returns the shared feature map."""
        hp = self.hparams
        features = self.features(images)
        self.rpn(features)
        pooled = features.new_zeros(hp.post_nms_top_n_test * len(images), features.shape[1], hp.roi_output_size, hp.roi_output_size)
        self.head(pooled)
        return features

    # ------------------------------------------------------------------ the stages
    def _check_images(self, images: Tensor | Sequence[Tensor]) -> Tensor:
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        channels = self.hparams.in_channels
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != channels or min(images.shape[-2:]) < self.stride:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"FasterRCNN expects images of shape (N, {channels}, H, W) with H, W >= {self.stride}, got {shape}")
        return images

    def anchors(self, features: Tensor) -> Tensor:
        """The anchors ``(H * W * k, 4)`` of a feature map, in pixels of the input image."""
        return grid_anchors(self.cell_anchors, features.shape[-2], features.shape[-1], self.stride)

    def region_proposals(self, features: Tensor, image_size: tuple[int, int]) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor]:
        """Run the RPN on ``features``: the proposals and their scores of each image (training or
        test top-N, by the module's mode), and the RPN's raw ``objectness`` and ``deltas`` with the
        ``anchors`` they refer to (for the loss)."""
        hp = self.hparams
        objectness, deltas = self.rpn(features)
        anchors = self.anchors(features)
        pre, post = (hp.pre_nms_top_n_train, hp.post_nms_top_n_train) if self.training else (hp.pre_nms_top_n_test, hp.post_nms_top_n_test)
        proposals, scores = select_proposals(anchors, objectness, deltas, image_size, pre, post, hp.rpn_nms_threshold, hp.min_proposal_size)
        return proposals, scores, objectness, deltas, anchors

    def pool(self, features: Tensor, rois: Tensor, output_size: int) -> Tensor:
        """``(R, C, output_size, output_size)`` features of the ``rois`` ``(R, 5)`` (image index, xyxy
        pixels), pooled in float32: RoI max pooling (Fast R-CNN; it rounds each box to whole cells of
        the feature map, ``stride`` pixels, the misalignment RoIAlign removes) or RoIAlign (Mask
        R-CNN: bilinear samples, 2 x 2 a bin, no rounding, the half-pixel offset of pixel-edge boxes)."""
        scale = 1.0 / self.stride
        if self.hparams.roi_operation == "align":
            return roi_align(features.float(), rois.float(), output_size, scale, sampling_ratio=2, aligned=True)
        return roi_pool(features.float(), rois.float(), output_size, scale)

    def sample_training_rois(self, proposals: list[Tensor], targets: list[Target]) -> RoISample:
        """Fast R-CNN's RoI mini-batch from ``proposals`` and the ground truth (:func:`sample_rois`)."""
        hp = self.hparams
        return sample_rois(proposals, targets, hp.rois_per_image, hp.foreground_fraction, hp.foreground_iou, hp.background_iou_low, self.box_target_weights)

    def head_loss_terms(self, features: Tensor, sample: RoISample, targets: list[Target]) -> dict[str, Tensor]:
        """The detector's terms on the sampled RoIs: ``classifier`` and ``box``. A subclass adds its
        branch's terms here (each weighted 1 in ``loss``)."""
        class_logits, box_deltas = self.head(self.pool(features, sample.rois, self.hparams.roi_output_size))
        return detection_loss(class_logits, box_deltas, sample)

    def complete_detections(self, features: Tensor, detections: list[Detections], image_size: tuple[int, int]) -> list[Detections]:
        """Add to the final detections what a subclass predicts from them (Mask R-CNN: masks)."""
        return detections

    # ------------------------------------------------------------------ what a detector writes
    def loss_terms(self, images: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        """Eq. 1's two RPN terms and Fast R-CNN's two (unweighted), and ``loss``, their sum with
        ``rpn_box`` weighted by lambda: approximate joint training."""
        images = self._check_images(images)
        hp = self.hparams
        image_size = (images.shape[-2], images.shape[-1])
        features = self.features(images)
        proposals, _, objectness, deltas, anchors = self.region_proposals(features, image_size)
        terms = rpn_loss(
            objectness, deltas, anchors, targets, image_size, locations=features.shape[-2] * features.shape[-1],
            batch_size=hp.rpn_batch_size, positive_fraction=hp.rpn_positive_fraction, positive_iou=hp.rpn_positive_iou,
            negative_iou=hp.rpn_negative_iou, ignore_cross_boundary=hp.ignore_cross_boundary_anchors,
        )  # fmt: skip
        sample = self.sample_training_rois(proposals, targets)  # proposals fixed: no gradient through their coordinates
        terms.update(self.head_loss_terms(features, sample, targets))
        terms["loss"] = sum(hp.rpn_lambda * value if name == "rpn_box" else value for name, value in terms.items())
        return {"loss": terms.pop("loss"), **terms}

    @torch.no_grad()
    def proposals(self, images: Tensor) -> list[Tensor]:
        """The RPN's class-agnostic proposals of each image at test time: ``(P, 4)`` xyxy pixels, best
        object score first, at most ``post_nms_top_n_test``."""
        images = self._check_images(images)
        training = self.training
        self.train(False)
        try:
            return self.region_proposals(self.features(images), (images.shape[-2], images.shape[-1]))[0]
        finally:
            self.train(training)

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Detections]:
        """Boxes (xyxy pixels), scores and labels of each image, after thresholding and per-class NMS."""
        images = self._check_images(images)
        hp = self.hparams
        image_size = (images.shape[-2], images.shape[-1])
        features = self.features(images)
        proposals = self.region_proposals(features, image_size)[0]
        rois = torch.cat([torch.cat([torch.full((len(p), 1), float(i), device=p.device), p], dim=1) for i, p in enumerate(proposals)])
        class_logits, box_deltas = self.head(self.pool(features, rois, hp.roi_output_size))
        detections = detections_from_head(
            class_logits, box_deltas, proposals, image_size, self.box_target_weights, hp.score_threshold, hp.nms_threshold, hp.max_detections
        )
        return self.complete_detections(features, detections, image_size)

    def forward(self, images: Tensor) -> list[Detections]:
        """The detections of each image (:meth:`predict`)."""
        return self.predict(images)

    # ------------------------------------------------------------------ proposal recall
    def update_metrics(self, stage: str, images: Tensor, targets: list[Target], found: list[Detections]) -> None:
        super().update_metrics(stage, images, targets, found)
        getattr(self, f"{stage}_proposal_recall").update(self.proposals(images), targets)

    def _log_detection_metrics(self, stage: str) -> None:
        recall: ProposalRecall = getattr(self, f"{stage}_proposal_recall")
        if recall.update_called:
            self.log(f"{stage}_proposal_recall", recall.compute(), on_step=False, on_epoch=True, sync_dist=True)
            recall.reset()
        super()._log_detection_metrics(stage)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant" and hp.warmup_fraction == 0:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"lr_schedule={hp.lr_schedule!r} needs a run of known length: set max_epochs or max_steps")
        warmup = hp.warmup_fraction

        def factor(step: int) -> float:
            progress = step / total
            if progress < warmup:
                return 0.1 + 0.9 * progress / warmup
            if hp.lr_schedule == "paper":
                return 0.1 if progress >= 0.75 else 1.0  # Section 3.3: 60k mini-batches at 1e-3, 20k at 1e-4
            if hp.lr_schedule == "cosine":
                return 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))
            return 1.0

        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The learning curves (loss, mAP, mAP@0.5, recall@0.5, proposal recall, learning rate), the
        gradient flow, the first filters and feature maps, the RPN's top proposals on validation images
        (:class:`callbacks.proposals.RegionProposals`) and the detections on validation and test images."""
        from callbacks.detections import DetectionPredictions
        from callbacks.figures import ConvFilters, GradientFlow, LearningCurves
        from callbacks.proposals import RegionProposals

        curves = ("train_loss", "val_loss", "val_map", "val_map_50", "val_recall_50", "val_proposal_recall", "learning_rate")
        return [
            LearningCurves(patterns=curves, every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            ConvFilters(layers=self.feature_map_layers, every_n_epochs=every_n_epochs),
            RegionProposals(recall_top_n=self.hparams.proposal_recall_top_n, every_n_epochs=every_n_epochs),
            DetectionPredictions(every_n_epochs=every_n_epochs),
            DetectionPredictions(split="test", every_n_epochs=every_n_epochs),
        ]
