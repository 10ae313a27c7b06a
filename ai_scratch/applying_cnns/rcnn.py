"""R-CNN: regions with CNN features (Girshick, Donahue, Darrell and Malik, 2014).

Paper: R. Girshick, J. Donahue, T. Darrell and J. Malik, "Rich feature hierarchies for accurate
object detection and semantic segmentation", CVPR 2014 (arXiv:1311.2524, v5). Section 2 gives the
detector (2.1 module design, 2.2 test-time detection, 2.3 training), Appendix A the warping of
regions, Appendix B the choice of positives and negatives and why SVMs, Appendix C the
bounding-box regression.

Detection as classification of regions, in three modules (Figure 1):

1. **Region proposals**: about 2000 class-independent candidate boxes per image from selective
   search (Uijlings, van de Sande, Gevers and Smeulders, 2013, "fast mode").
2. **A CNN** that turns each region into a fixed-length feature vector: the region is *warped*
   (stretched, whatever its aspect ratio) to the network's 227 x 227 input, after its box was
   dilated so that "at the warped size there are exactly p pixels of warped image context around
   the original box" (p = 16, Appendix A); the features are AlexNet's ``fc7`` (4096 numbers).
   Every region goes through the whole network on its own: the cost R-CNN is known for (13 s per
   image on a GPU, 53 s on a CPU, Section 2.2).
3. **Class-specific linear SVMs** on the features, then greedy non-maximum suppression per class
   (a region is dropped when it overlaps a higher-scoring one of its class with IoU above 0.3), and
   a class-specific **bounding-box regression** (Appendix C) that moves each detection.

Training (Section 2.3) comes in stages:

* *Fine-tuning*: the CNN (pre-trained on ImageNet) gets a new ``(N + 1)``-way classification layer
  (``N`` classes and background) and is trained by SGD on warped proposals only: a proposal with
  IoU >= 0.5 with a ground-truth box is a positive of that box's class, every other one is
  background; each mini-batch of 128 regions holds 32 positives and 96 background regions,
  "sampled uniformly" (here with replacement from the regions of the batch's images, as the
  original Caffe window layer does), learning rate 0.001.
* *SVMs* (Appendix B): one linear SVM per class on ``fc7``, with other positives and negatives than
  fine-tuning: the positives of class ``c`` are its ground-truth boxes only, the negatives every
  region with IoU < 0.3 with all instances of ``c``, the regions in between ignored. For class
  ``c``, with ``y_i = +1`` for a positive and ``-1`` for a negative and ``s_c(x) = w_c^T phi_7(x) + b_c``,

      min_{w_c, b_c}   lambda / 2 ||w_c||^2 + 1/R sum_i  rho_i max(0, 1 - y_i s_c(x_i))

  with ``rho_i = 2`` for positives (the original code's positive weight), 1 for negatives. There
  are too many negatives to hold in memory, so the paper mines "hard negatives" (Felzenszwalb et
  al.): it keeps re-training on the negatives that violate the margin.
* *Bounding-box regression* (Appendix C): for each class ``c`` four linear functions of the
  ``pool5`` features, ``d_*(P) = w_*^T phi_5(P)``, that move a proposal ``P`` towards its
  ground truth ``G``. The targets are scale-invariant translations and log-space scalings
  (:func:`~ai_scratch.applying_cnns.detection.encode_boxes`),

      t_x = (G_x - P_x) / P_w,   t_y = (G_y - P_y) / P_h,   t_w = log(G_w / P_w),   t_h = log(G_h / P_h),

  fitted by ridge regression ``w_* = argmin sum_i (t_*^i - w_*^T phi_5(P^i))^2 + lambda ||w_*||^2``
  on the pairs whose IoU is at least 0.6 (a proposal "far from all ground-truth boxes" has nothing
  to learn from), each proposal paired with the ground truth it overlaps most. At test time the
  detection is ``G^ = decode(P, d(P))`` (:func:`~ai_scratch.applying_cnns.detection.decode_boxes`).
  Table 2: +3 to 4 mAP points (54.2 -> 58.5 with fine-tuned fc7 on VOC 2007); the remaining
  errors are mostly poor localisation (Figure 5's analysis).

Inference (Section 2.2): proposals, warp, CNN, per-class SVM scores, box regression, per-class NMS
at IoU 0.3. Reported: 53.3% mAP on VOC 2012 test, 58.5% on VOC 2007 test (with box regression).

Region proposals here: a simplified selective search (:func:`selective_search`). What it keeps of
Uijlings et al. (2013):

* initial regions from Felzenszwalb and Huttenlocher's (2004) graph-based segmentation
  (:func:`graph_segmentation`): a graph of 8-connected pixels weighted by the colour distance of
  the (Gaussian-smoothed, sigma = 0.8) pixels, edges taken by increasing weight and two
  components merged when the edge is no heavier than ``MInt(C1, C2) = min(Int(C1) + k / |C1|,
  Int(C2) + k / |C2|)``, ``Int`` the heaviest edge of a component's minimum spanning tree;
* greedy hierarchical grouping (:func:`hierarchical_grouping`): the two most similar *neighbouring*
  regions merged until one region is left, every region of the hierarchy a proposal (its bounding
  box), with the similarities ``s_colour`` (intersection of L1-normalised 25-bin colour histograms
  per channel, the merged histogram the size-weighted mean), ``s_size = 1 - (size(r_i) +
  size(r_j)) / size(im)`` (small regions merge first) and ``s_fill = 1 - (size(BB_ij) - size(r_i) -
  size(r_j)) / size(im)`` (regions that fill each other's gaps merge first);
* diversification by running several strategies (colour spaces x thresholds ``k`` x similarity
  sums) and ranking their regions by ``v = RND x position in the hierarchy`` (1 = the top region),
  lower-ranked duplicate boxes dropped.

What it changes:

* no texture similarity (Uijlings' SIFT-like 8-orientation Gaussian-derivative histograms): the
  similarity is a sum of colour, size and fill terms only;
* two strategies by default, colour spaces RGB and HSV with ``k = 100`` (0-255 colour scale) and
  the similarity ``s_colour + s_size + s_fill``, where the fast mode runs eight (HSV and Lab,
  ``k`` = 50 and 100, with and without colour); a minimum region size of 20 pixels instead of
  ``k`` pixels (for 64-pixel images, where a shape can cover under 100 pixels);
* the random numbers of the ranking come from a generator with a fixed seed, so that the same
  image always gets the same proposals in the same order;
* at most ``max_proposals`` per image (2000 in the paper; 100 for 64-pixel images, where a
  strategy gives a few dozen regions).

``proposal_method="sliding_windows"`` replaces them by the exhaustive baseline that selective
search was made to avoid: square windows of a few sizes every half window (:func:`sliding_windows`).

Where else this file differs from the paper, and why:

* no ImageNet pre-training (Section 2.3's "supervised pre-training"): the CNN is trained from
  scratch by the fine-tuning stage;
* the stages are epochs of one Lightning fit, so that checkpoints, validation by mAP after each
  epoch and DDP work for all of them, and no features are cached on disk. Every training step
  computes three terms (``loss = finetune + svm + bbox``). In the first ``max_epochs -
  svm_epochs`` epochs (fine-tuning) the cross-entropy on the sampled 128 regions trains the CNN,
  and the SVMs and regressors already learn from the same regions' features, detached, so that
  there is a detector to validate from the first epoch. In the last ``svm_epochs`` epochs the
  CNN's learning rate is 0 and its features are frozen: it runs without gradient and without
  dropout over *all* the regions of the batch's images, and only the SVMs and regressors learn,
  their rate decaying to zero: the paper's second and third stages. Heads that have only learnt
  alongside a moving CNN score its final features far worse than heads fitted to those features
  (``svm_epochs=0`` shows it), which is why the paper fits them last;
* the SVMs and regressors are trained by gradient steps on those objectives rather than by
  liblinear and a closed-form ridge solution. The hinge is zero for a negative already scored
  below -1, so each step learns only from the negatives inside the margin: the "hard negatives"
  that the paper's mining collects, here among all negatives of the batch's images;
* mean subtraction: each image's own mean colour (the paper subtracts the training set's mean
  image); context outside the image is that mean, as in the paper (Appendix A);
* warping by bilinear sampling (``torchvision.ops.roi_align``), not an image library's resize.

The CNN is the project's :class:`~ai_scratch.cnn_revolution.alexnet.AlexNet` (R-CNN used the Caffe
AlexNet, two GPU groups and local response normalisation included) with its 1000-way ``fc8``
replaced by the ``(N + 1)``-way layer: ``backbone="paper"`` is it at 227 x 227 (``pool5`` 6 x 6 x 256
= 9216 features, ``fc7`` 4096; 56,954,261 parameters for VOC's 21-way layer, 57,773,561 with the 20
SVMs and the 20 x 4 regressors); ``backbone="small"`` is the same class for 32 x 32 warps on a
CPU: the 5 x 5 stride-1 stem, an eighth of the maps (12-32-48-48-32), 512 hidden units, no LRN or
groups, no dropout (``pool5`` 3 x 3 x 32 = 288 features).

Example::

    model = RCNN(backbone="paper", num_classes=20)                 # VOC: 227 x 227 warps, 2000 proposals
    small = RCNN(backbone="small", num_classes=4)                  # 32 x 32 warps, 100 proposals
    boxes = small.proposals(torch.rand(2, 3, 64, 64))              # [(P, 4), (P, 4)], best first
    detections = small.predict(torch.rand(2, 3, 64, 64))           # [{"boxes", "scores", "labels"}, ...]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.colors import rgb_to_hsv
from scipy import ndimage
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import LambdaLR
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, roi_align

from ai_scratch.applying_cnns.detection import DetectionModel, Detections, Target, decode_boxes, encode_boxes
from ai_scratch.base import check_choice
from ai_scratch.cnn_revolution.alexnet import AlexNet
from ai_scratch.info import ModelInfo

Backbone = Literal["paper", "small"]
ProposalMethod = Literal["selective_search", "sliding_windows"]
ColourSpace = Literal["rgb", "hsv"]
Similarity = Literal["colour", "size", "fill"]
Classifier = Literal["svm", "softmax"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["cosine", "constant"]

#: What each backbone builds, and the defaults it brings: the AlexNet options, the warp size and its
#: context padding ``p`` (Appendix A: 16 of 227 pixels; 3 of 32 keeps about the same fraction) and
#: the proposals kept per image.
BACKBONES: dict[str, dict[str, Any]] = {
    "paper": {"alexnet": {"stem": "paper", "width": 1.0}, "warp_size": 227, "context_padding": 16, "max_proposals": 2000, "dropout": 0.5},
    "small": {
        "alexnet": {"stem": "small", "width": 0.125, "lrn": False, "groups": 1, "init": "kaiming"},
        "warp_size": 32,
        "context_padding": 3,
        "max_proposals": 100,
        "dropout": 0.0,
    },
}
#: Parameters of the paper's network with VOC's 21-way layer (AlexNet's 60,965,224 with its
#: 1000-way fc8 replaced), and with the 20 SVMs on fc7 and the 20 x 4 box regressors on pool5.
PAPER_CNN_PARAMETERS = 60_965_224 - (4096 + 1) * 1000 + (4096 + 1) * 21
PAPER_PARAMETERS = PAPER_CNN_PARAMETERS + 20 * (4096 + 1) + 20 * 4 * (9216 + 1)


# ================================================================================ region proposals
def graph_segmentation(image: np.ndarray, k: float, sigma: float = 0.8, min_size: int = 20) -> np.ndarray:
    """Felzenszwalb and Huttenlocher's (2004) graph-based segmentation of ``image`` ``(C, H, W)``
    (values in [0, 1]): the initial regions of selective search. Returns ``(H, W)`` region labels
    ``0 .. R - 1``.

    The pixels are the vertices, each joined to its 8 neighbours by an edge weighted by the
    Euclidean distance of their colours (0-255 scale, after Gaussian smoothing with ``sigma``).
    Every pixel starts as its own component; the edges are taken by increasing weight, and an edge
    joins two components when it is no heavier than ``MInt(C1, C2) = min(Int(C1) + k / |C1|,
    Int(C2) + k / |C2|)``, ``Int(C)`` the heaviest edge inside ``C`` (Kruskal's order makes it the
    last one that joined it). ``k`` sets the scale: larger ``k``, larger regions. A last pass joins
    components smaller than ``min_size`` pixels along the remaining edges, again by weight.
    """
    smoothed = ndimage.gaussian_filter(image.astype(np.float64), (0, sigma, sigma)) * 255.0
    _, height, width = smoothed.shape
    index = np.arange(height * width).reshape(height, width)
    neighbours = [
        (index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :]),
        (index[:-1, :-1], index[1:, 1:]), (index[:-1, 1:], index[1:, :-1]),
    ]  # fmt: skip
    first = np.concatenate([a.ravel() for a, _ in neighbours])
    second = np.concatenate([b.ravel() for _, b in neighbours])
    colours = smoothed.reshape(len(smoothed), -1)
    weights = np.sqrt(((colours[:, first] - colours[:, second]) ** 2).sum(axis=0))
    order = np.argsort(weights, kind="stable")
    first, second, weights = first[order], second[order], weights[order]

    parent = list(range(height * width))  # a union-find forest: each component's root is its name
    size = [1] * (height * width)
    threshold = [float(k)] * (height * width)  # Int(C) + k / |C|, Int of a single pixel = 0

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving
            node = parent[node]
        return node

    for u, v, weight in zip(first.tolist(), second.tolist(), weights.tolist(), strict=True):
        u, v = root(u), root(v)
        if u != v and weight <= threshold[u] and weight <= threshold[v]:  # w <= MInt(C1, C2)
            if size[u] < size[v]:
                u, v = v, u
            parent[v] = u
            size[u] += size[v]
            threshold[u] = weight + k / size[u]  # the edge is the new Int(C): the heaviest of its tree

    def roots() -> np.ndarray:
        labels = np.asarray(parent)
        while not np.array_equal(labels[labels], labels):
            labels = labels[labels]
        return labels

    crossing = roots()
    crossing = crossing[first] != crossing[second]  # only edges between components can join small ones
    for u, v in zip(first[crossing].tolist(), second[crossing].tolist(), strict=True):
        u, v = root(u), root(v)
        if u != v and (size[u] < min_size or size[v] < min_size):
            if size[u] < size[v]:
                u, v = v, u
            parent[v] = u
            size[u] += size[v]
    _, labels = np.unique(roots(), return_inverse=True)
    return labels.reshape(height, width)


def hierarchical_grouping(image: np.ndarray, labels: np.ndarray, similarities: Sequence[str] = ("colour", "size", "fill"), bins: int = 25) -> np.ndarray:
    """Selective search's greedy grouping (Uijlings et al., 2013, Algorithm 1) of the regions
    ``labels`` ``(H, W)`` of ``image`` ``(C, H, W)``: the two most similar neighbouring regions are
    merged, the similarities of the new region to its neighbours computed, until one region is
    left (or no two regions touch). Returns the bounding boxes ``(x_min, y_min, x_max, y_max)``, on
    pixel edges, of every region of the hierarchy in the order they were made: the initial regions
    first, the last merge last. The similarity is the sum of those named:

    * ``"colour"``: ``sum_k min(c_i^k, c_j^k)`` over L1-normalised histograms of ``bins`` bins per
      channel, divided by the channels (so that it lies in [0, 1]);
    * ``"size"``: ``1 - (size(r_i) + size(r_j)) / size(im)``;
    * ``"fill"``: ``1 - (size(BB_ij) - size(r_i) - size(r_j)) / size(im)``, ``BB_ij`` the box around both.
    """
    channels, height, width = image.shape
    count = int(labels.max()) + 1
    image_area = float(height * width)
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count).astype(np.float64).tolist()
    boxes = [np.array([s[1].start, s[0].start, s[1].stop, s[0].stop], dtype=np.float64) for s in ndimage.find_objects(labels + 1)]
    quantised = np.clip((image * bins).astype(np.int64), 0, bins - 1).reshape(channels, -1) + (np.arange(channels) * bins)[:, None]
    counts = np.bincount((flat[None, :] * channels * bins + quantised).ravel(), minlength=count * channels * bins)
    histograms = list(counts.reshape(count, channels * bins).astype(np.float64) / (np.asarray(sizes)[:, None] * channels))

    right = np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()])
    below = np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()])
    touching = np.concatenate([right, below], axis=1)
    touching = np.unique(np.sort(touching[:, touching[0] != touching[1]], axis=0), axis=1)
    neighbours: dict[int, set[int]] = {i: set() for i in range(count)}
    for a, b in touching.T.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)

    def similarity(i: int, j: int) -> float:
        total = 0.0
        if "colour" in similarities:
            total += float(np.minimum(histograms[i], histograms[j]).sum())  # s_colour, histograms sum to 1
        if "size" in similarities:
            total += 1.0 - (sizes[i] + sizes[j]) / image_area  # s_size
        if "fill" in similarities:
            bb = (max(boxes[i][2], boxes[j][2]) - min(boxes[i][0], boxes[j][0])) * (max(boxes[i][3], boxes[j][3]) - min(boxes[i][1], boxes[j][1]))
            total += 1.0 - (bb - sizes[i] - sizes[j]) / image_area  # s_fill
        return total

    pending = {(a, b): similarity(a, b) for a in neighbours for b in neighbours[a] if a < b}
    while pending:
        i, j = max(pending, key=lambda pair: (pending[pair], -pair[0], -pair[1]))  # ties: the older regions
        new = len(sizes)
        sizes.append(sizes[i] + sizes[j])
        histograms.append((histograms[i] * sizes[i] + histograms[j] * sizes[j]) / sizes[new])  # propagated by size
        boxes.append(np.concatenate([np.minimum(boxes[i][:2], boxes[j][:2]), np.maximum(boxes[i][2:], boxes[j][2:])]))
        around = (neighbours.pop(i) | neighbours.pop(j)) - {i, j}
        pending = {pair: value for pair, value in pending.items() if i not in pair and j not in pair}
        neighbours[new] = around
        for other in around:
            neighbours[other] -= {i, j}
            neighbours[other].add(new)
            pending[(other, new)] = similarity(other, new)
    return np.stack(boxes)


def in_colour_space(image: np.ndarray, colour_space: str) -> np.ndarray:
    """``image`` ``(3, H, W)`` RGB in [0, 1] in another colour space, channels first, values in [0, 1]."""
    if colour_space == "rgb":
        return image
    return rgb_to_hsv(np.clip(image, 0.0, 1.0).transpose(1, 2, 0)).transpose(2, 0, 1)


def selective_search(
    image: Tensor,
    colour_spaces: Sequence[str] = ("rgb", "hsv"),
    thresholds: Sequence[float] = (100.0,),
    similarity_sets: Sequence[Sequence[str]] = (("colour", "size", "fill"),),
    min_size: int = 20,
    sigma: float = 0.8,
    max_proposals: int = 2000,
    seed: int = 0,
) -> Tensor:
    """Class-independent region proposals of one ``image`` ``(3, H, W)`` in [0, 1] (grey images:
    one channel) by the simplified selective search of the module docstring: a hierarchy for every
    strategy (colour space x threshold ``k`` x similarity set), every region's box a proposal, the
    boxes of all hierarchies ranked by ``v = RND x position`` (position 1: the top of a hierarchy,
    the whole image), ``RND`` uniform in [0, 1) from a generator seeded by ``seed``, lower-ranked
    duplicates removed, the first ``max_proposals`` kept. Returns ``(P, 4)`` float32 xyxy pixel boxes,
    best first."""
    pixels = image.detach().float().cpu().numpy()
    if pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    rng = np.random.default_rng(seed)
    boxes, ranks = [], []
    for colour_space in colour_spaces:
        converted = in_colour_space(pixels, colour_space)
        for k in thresholds:
            regions = graph_segmentation(converted, k, sigma, min_size)
            for similarities in similarity_sets:
                hierarchy = hierarchical_grouping(converted, regions, similarities)
                position = np.arange(len(hierarchy), 0, -1)  # the last merge is position 1
                boxes.append(hierarchy)
                ranks.append(rng.random(len(hierarchy)) * position)
    all_boxes = np.concatenate(boxes)[np.argsort(np.concatenate(ranks), kind="stable")]
    _, first_seen = np.unique(all_boxes, axis=0, return_index=True)
    kept = all_boxes[np.sort(first_seen)][:max_proposals]
    return torch.from_numpy(kept.astype(np.float32))


def sliding_windows(height: int, width: int, sizes: Sequence[float] = (0.15, 0.25, 0.4, 0.6), max_proposals: int = 2000) -> Tensor:
    """The exhaustive baseline: square windows of each side in ``sizes`` (fractions of the shorter
    image side), every half window across the image, the smallest first. Returns ``(P, 4)`` xyxy."""
    windows = []
    for fraction in sizes:
        side = max(1.0, fraction * min(height, width))
        step = side / 2
        xs = np.arange(0.0, width - side + 1e-6, step)
        ys = np.arange(0.0, height - side + 1e-6, step)
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        corners = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        windows.append(np.concatenate([corners, corners + side], axis=1))
    return torch.from_numpy(np.concatenate(windows)[:max_proposals].astype(np.float32))


def proposal_recall(proposals: Sequence[Tensor], targets: Sequence[Target], iou_threshold: float = 0.5, top: int | None = None) -> float:
    """The fraction of ground-truth objects that one of the first ``top`` proposals of their image
    (all, with ``None``) covers with IoU >= ``iou_threshold``: the recall that proposals allow a
    detector at best."""
    found = total = 0
    for boxes, target in zip(proposals, targets, strict=True):
        truth = target["boxes"].float()
        total += len(truth)
        boxes = boxes[:top] if top is not None else boxes
        if len(truth) and len(boxes):
            found += int((box_iou(truth, boxes.float().to(truth.device)).max(dim=1).values >= iou_threshold).sum())
    return found / max(total, 1)


# ================================================================================ warping (Appendix A)
def dilate_for_context(boxes: Tensor, warp_size: int, padding: int) -> Tensor:
    """The boxes ``(R, 4)`` grown so that, once each is warped to ``warp_size x warp_size``, the
    original box fills the centre ``(warp_size - 2 p)`` pixels and ``p = padding`` warped pixels of
    context surround it on every side (Appendix A, "warp with context padding, p = 16")."""
    boxes = boxes.float()
    inner = warp_size - 2 * padding
    margin_x = padding * (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0) / inner
    margin_y = padding * (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0) / inner
    return torch.stack([boxes[:, 0] - margin_x, boxes[:, 1] - margin_y, boxes[:, 2] + margin_x, boxes[:, 3] + margin_y], dim=1)


def warp_regions(images: Tensor, boxes: Sequence[Tensor] | Tensor, warp_size: int, padding: int, image_index: Tensor | None = None) -> Tensor:
    """Every box cut out of its image with its context and stretched to ``warp_size x warp_size``
    ("regardless of the size or aspect ratio of the candidate region, we warp all pixels in a tight
    bounding box around it to the required size"), after each image's mean colour is subtracted, so
    that context beyond the image reads as the image mean, as in the paper. ``boxes``: one ``(R_i,
    4)`` tensor per image, or one ``(R, 4)`` tensor with the ``image_index`` ``(R,)`` of each box.
    Returns ``(R, C, warp_size, warp_size)`` in the order of the boxes."""
    if image_index is None:
        sizes = [len(b) for b in boxes]
        image_index = torch.repeat_interleave(torch.arange(len(sizes), device=images.device), torch.tensor(sizes, device=images.device))
        boxes = torch.cat([b.to(images.device).float() for b in boxes]) if sizes else images.new_zeros(0, 4)
    centred = images.float() - images.float().mean(dim=(2, 3), keepdim=True)
    rois = torch.cat([image_index.to(images.device, torch.float32)[:, None], dilate_for_context(boxes.to(images.device), warp_size, padding)], dim=1)
    # bilinear samples, averaged over a grid per output pixel where a large box is shrunk;
    # aligned=True: box corners are pixel edges, as the targets' boxes are
    return roi_align(centred, rois, output_size=warp_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


# ================================================================================ labelling regions
class RegionSet(NamedTuple):
    """The regions of a batch, image after image, and what each is for (Section 2.3, Appendix B)."""

    boxes: list[Tensor]  # per image: its ground-truth boxes, then its proposals
    finetune_labels: Tensor  # (R,) 0 background, c + 1 class c: IoU >= 0.5 with a box of class c
    svm_targets: Tensor  # (R, C) +1 positive (a ground-truth box of c), -1 negative (IoU < 0.3 with all of c), 0 ignored
    regression_targets: Tensor  # (R, 4) t_x, t_y, t_w, t_h towards the best-overlapping ground truth
    regression_classes: Tensor  # (R,) that ground truth's class where the pair trains a regressor (IoU >= 0.6), else -1


def label_regions(
    proposals: Sequence[Tensor],
    targets: Sequence[Target],
    num_classes: int,
    positive_iou: float = 0.5,
    svm_negative_iou: float = 0.3,
    regression_iou: float = 0.6,
) -> RegionSet:
    """Label the ground-truth boxes and proposals of each image for the three training stages.

    * fine-tuning: a region's class is that of the ground truth it overlaps most if that IoU is at
      least ``positive_iou`` (the ground-truth boxes themselves included, IoU 1), else background;
    * SVMs: for class ``c``, +1 for the ground-truth boxes of ``c`` only, -1 for a region whose IoU
      with every box of ``c`` is below ``svm_negative_iou`` (ground-truth boxes of other classes
      included), 0 (not used) in between;
    * regression: the proposals (not the ground-truth boxes) whose best IoU is at least
      ``regression_iou``, with the targets of :func:`encode_boxes` towards that ground truth.
    """
    boxes, finetune, svm, deltas, regression_classes = [], [], [], [], []
    for image_proposals, target in zip(proposals, targets, strict=True):
        truth, labels = target["boxes"].float(), target["labels"].long()
        image_proposals = image_proposals.float().to(truth.device)
        regions = torch.cat([truth, image_proposals])
        is_truth = torch.zeros(len(regions), dtype=torch.bool, device=truth.device)
        is_truth[: len(truth)] = True
        boxes.append(regions)
        if len(truth):
            overlaps = box_iou(regions, truth)  # (R, K)
            best_iou, best = overlaps.max(dim=1)
            best_label = labels[best]
            per_class = torch.zeros(len(regions), num_classes, device=truth.device)
            per_class = per_class.scatter_reduce(1, labels.expand(len(regions), -1), overlaps, reduce="amax")
            deltas.append(encode_boxes(regions, truth[best]))
        else:
            best_iou = torch.zeros(len(regions), device=truth.device)
            best_label = torch.zeros(len(regions), dtype=torch.long, device=truth.device)
            per_class = torch.zeros(len(regions), num_classes, device=truth.device)
            deltas.append(torch.zeros(len(regions), 4, device=truth.device))
        finetune.append(torch.where(best_iou >= positive_iou, best_label + 1, torch.zeros_like(best_label)))
        image_svm = torch.where(per_class < svm_negative_iou, -1.0, 0.0)
        if len(truth):
            image_svm[torch.arange(len(truth), device=truth.device), labels] = 1.0
        svm.append(image_svm)
        trains_regressor = (best_iou >= regression_iou) & ~is_truth
        regression_classes.append(torch.where(trains_regressor, best_label, torch.full_like(best_label, -1)))
    return RegionSet(boxes, torch.cat(finetune), torch.cat(svm), torch.cat(deltas), torch.cat(regression_classes))


def sample_finetuning_batch(labels: Tensor, positives: int = 32, total: int = 128) -> Tensor:
    """Indices of a fine-tuning mini-batch: ``positives`` regions drawn uniformly, with replacement,
    among the positives (label > 0) and ``total - positives`` among the background (label 0), as
    Caffe's window layer does for R-CNN; all of one kind when the other is missing. Uses torch's
    global generator (``seed_everything``)."""
    positive, background = (labels > 0).nonzero().flatten(), (labels == 0).nonzero().flatten()
    if not len(positive) or not len(background):
        pool = positive if len(positive) else background
        return pool[torch.randint(len(pool), (total,), device=labels.device)]
    chosen_positive = positive[torch.randint(len(positive), (positives,), device=labels.device)]
    chosen_background = background[torch.randint(len(background), (total - positives,), device=labels.device)]
    return torch.cat([chosen_positive, chosen_background])


def svm_objective(scores: Tensor, targets: Tensor, weight: Tensor, regularisation: float, positive_weight: float = 2.0) -> Tensor:
    """The class-wise SVM objective ``lambda / 2 sum_c ||w_c||^2 + 1/R sum_c sum_i rho_i max(0, 1 -
    y_ic s_c(x_i))`` over ``R`` regions: ``scores`` and ``targets`` ``(R, C)`` (``y`` = +1, -1, or 0
    for a region not used by that class), ``rho`` = ``positive_weight`` for a positive, 1 for a
    negative; ``weight`` ``(C, D)`` the SVMs' ``w``. Negatives scored below -1 add nothing."""
    hinge = F.relu(1.0 - targets * scores.float()) * (targets != 0)
    rho = torch.where(targets > 0, positive_weight, 1.0)
    return (rho * hinge).sum() / max(len(scores), 1) + 0.5 * regularisation * weight.float().pow(2).sum()


def ridge_objective(predicted: Tensor, targets: Tensor, classes: Tensor, weight: Tensor, regularisation: float) -> Tensor:
    """Appendix C's ridge objective as a mean over the training pairs: ``1/M sum_i ||t^i - d(P^i)||^2
    + lambda ||w||^2``, ``d`` the regressor of the pair's class. ``predicted`` ``(R, 4 C)``,
    ``targets`` ``(R, 4)``, ``classes`` ``(R,)`` (-1: not a training pair)."""
    used = classes >= 0
    penalty = regularisation * weight.float().pow(2).sum()
    if not used.any():
        return penalty + 0.0 * predicted.sum()  # keeps every parameter in the graph (DDP)
    per_class = predicted[used].float().view(int(used.sum()), -1, 4)
    chosen = per_class[torch.arange(len(per_class), device=predicted.device), classes[used]]
    return (chosen - targets[used]).pow(2).sum(dim=1).mean() + penalty


# ================================================================================ detections
def detections_from_regions(
    proposals: Tensor,
    scores: Tensor,
    deltas: Tensor | None,
    image_size: tuple[int, int],
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> Detections:
    """One image's detections (Section 2.2): each proposal ``(P, 4)`` scored for every class
    (``scores`` ``(P, C)``), moved by its class's regressor (``deltas`` ``(P, 4 C)``, or ``None``
    for the proposals as they are), the boxes clipped to the image, those scored above
    ``score_threshold`` kept, then greedy non-maximum suppression for each class independently at
    IoU ``nms_threshold`` and the ``max_detections`` best."""
    count, classes = scores.shape
    if deltas is not None:
        boxes = decode_boxes(proposals, deltas.float())  # (P, C, 4): G^ = decode(P, d(P))
    else:
        boxes = proposals.float()[:, None, :].expand(count, classes, 4)
    boxes = clip_boxes_to_image(boxes.reshape(-1, 4), image_size)
    scores = scores.float().reshape(-1)
    labels = torch.arange(classes, device=scores.device).repeat(count)
    keep = scores > score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    kept = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]  # per class
    return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}


class RegionFeatures(NamedTuple):
    """What the CNN gives for a batch of warped regions."""

    pool5: Tensor  # (R, D5) the last pooled maps, flattened: the regressors' input
    fc7: Tensor  # (R, D7) the second hidden layer after its ReLU: the SVMs' input
    logits: Tensor  # (R, C + 1) the fine-tuning layer's class scores, background first


# ================================================================================ the model
class RCNN(DetectionModel):
    """R-CNN (Girshick et al., 2014): region proposals, each warped through a CNN, class-specific
    linear SVMs on its ``fc7`` features, bounding-box regression on its ``pool5`` features, and
    per-class non-maximum suppression. See the module docstring.

    Args:
        backbone: ``"paper"`` (AlexNet at 227 x 227, fc7 of 4096) or ``"small"`` (the same class
            for 32 x 32 warps: 12-32-48-48-32 maps, 512 hidden units).
        num_classes: ``N``, object classes (20 for Pascal VOC); the fine-tuning layer has ``N + 1``.
        in_channels: channels of the images.
        warp_size: side of the warped regions (``None``: the backbone's, 227 or 32).
        context_padding: ``p``, pixels of context around a region at the warped size (``None``:
            the backbone's, 16 or 3).
        proposal_method: ``"selective_search"`` (the simplified one of the module docstring) or
            ``"sliding_windows"`` (square windows of ``window_sizes`` every half window).
        max_proposals: proposals kept per image (``None``: the backbone's, 2000 or 100).
        colour_spaces, thresholds, similarity_sets, min_region_size: selective search's
            strategies, its ``k`` values (0-255 colour scale), the similarity sums and the smallest
            initial region in pixels.
        window_sizes: the sliding windows' sides, as fractions of the image's shorter side (the
            default sizes give 213 windows on a 64-pixel image, smallest first: raise
            ``max_proposals`` to keep them all).
        cache_proposals: keep each image's proposals (keyed by a digest of its pixels), so that
            selective search runs once per image over the whole fit.
        dropout: after fc6 and fc7 (``None``: the backbone's; 0.5 in the paper).
        positive_iou: fine-tuning positives' IoU (0.5).
        positives_per_batch, regions_per_batch: the fine-tuning mini-batch (32 of 128).
        svm_negative_iou: SVM negatives' IoU below which (0.3).
        svm_positive_weight: ``rho`` of a positive in the hinge sum (2, the original code's).
        svm_regularisation: ``lambda`` of the SVMs.
        bbox_regression: train and apply the box regressors (Appendix C); ``False`` detects with
            the proposals' own boxes.
        regression_iou: the regressors' training pairs' IoU (0.6).
        regression_regularisation: ``lambda`` of the ridge objective (a mean over pairs here).
        svm_epochs: the last epochs, in which the CNN's learning rate is 0 and only the SVMs and
            regressors learn, on its frozen features (the paper's later stages); 0: none. A run of
            at most ``svm_epochs`` epochs (a smoke run, a short trial) keeps its first epoch for
            fine-tuning, with a warning (:meth:`frozen_epochs`).
        classifier: ``"svm"`` (the paper's detector) or ``"softmax"`` (the fine-tuned network's own
            ``N + 1``-way probabilities, Appendix B's comparison) for the scores at test time.
        score_threshold: detections scored at or below it are dropped (SVM margins; for
            ``"softmax"``, probabilities).
        nms_threshold: the per-class non-maximum suppression IoU (0.3).
        max_detections: detections kept per image.
        optimizer: ``"sgd"`` (the paper's fine-tuning, with ``momentum`` and ``weight_decay``) or ``"adam"``.
        learning_rate, momentum, weight_decay: the optimizer's (0.001, 0.9, 5e-4 in the paper);
            the weight decay is for the CNN only (the SVMs and regressors have their ``lambda``).
        lr_schedule: the CNN's: ``"constant"`` (the paper) or ``"cosine"`` (to zero over the
            fine-tuning epochs, per step); 0 during the last ``svm_epochs`` either way.
        head_learning_rate: the SVMs' and regressors' rate (``None``: ``learning_rate``), constant while
            fine-tuning, then to zero over the last ``svm_epochs`` (a cosine), so that they settle.
        class_names: the classes' names, for figures.

    Raises:
        ValueError: for an unknown option, sizes or thresholds out of range, or a warp too small
            for its context padding.
    """

    INFO = ModelInfo(
        name="rcnn",
        full_name="R-CNN",
        module=3,
        pattern="engine-based",
        year_introduced=2014,
        authors=("Ross Girshick", "Jeff Donahue", "Trevor Darrell", "Jitendra Malik"),
        paper_title="Rich feature hierarchies for accurate object detection and semantic segmentation",
        key_innovations=(
            "detection as classification of class-independent region proposals (selective search)",
            "CNN features for every region: each proposal warped to the network's fixed input with context padding",
            "supervised pre-training on a large auxiliary task (ImageNet), then domain-specific fine-tuning on warped regions",
            "class-specific linear SVMs on fc7 features with hard-negative mining",
            "class-specific bounding-box regression on pool5 features, which fixes many mislocalised detections",
            "30% relative improvement over the best previous result on Pascal VOC 2012 (53.3% mAP)",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation (fine-tuning), then linear SVMs and ridge regression on the features",
        loss_function="(N+1)-way softmax cross-entropy; per-class hinge loss; ridge regression of box offsets",
        optimizer="SGD with momentum 0.9, learning rate 0.001 for fine-tuning; liblinear for the SVMs; closed-form ridge",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "generate class-independent region proposals by graph segmentation and hierarchical grouping",
            "warp a region with context padding to a CNN's fixed input size",
            "label regions as positives and negatives by IoU, differently for fine-tuning and for the SVMs",
            "train per-class SVMs on CNN features, learning only from the negatives inside the margin",
            "regress box offsets (t_x, t_y, t_w, t_h) and see localisation improve",
            "see why running a CNN on every region of every image is slow, the problem Fast and Faster R-CNN solve",
        ),
        estimated_training_time="minutes (small, CPU); days (paper: selective search and a CNN pass per region)",
    )

    def __init__(
        self,
        backbone: Backbone = "paper",
        num_classes: int = 20,
        in_channels: int = 3,
        warp_size: int | None = None,
        context_padding: int | None = None,
        proposal_method: ProposalMethod = "selective_search",
        max_proposals: int | None = None,
        colour_spaces: list[ColourSpace] | None = None,
        thresholds: list[float] | None = None,
        similarity_sets: list[list[Similarity]] | None = None,
        min_region_size: int = 20,
        window_sizes: list[float] | None = None,
        cache_proposals: bool = True,
        dropout: float | None = None,
        positive_iou: float = 0.5,
        positives_per_batch: int = 32,
        regions_per_batch: int = 128,
        svm_negative_iou: float = 0.3,
        svm_positive_weight: float = 2.0,
        svm_regularisation: float = 1e-3,
        bbox_regression: bool = True,
        regression_iou: float = 0.6,
        regression_regularisation: float = 1e-3,
        svm_epochs: int = 1,
        classifier: Classifier = "svm",
        score_threshold: float = -1.0,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
        optimizer: Optimizer = "sgd",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: Schedule = "constant",
        head_learning_rate: float | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        check_choice("backbone", backbone, Backbone)
        check_choice("proposal_method", proposal_method, ProposalMethod)
        check_choice("classifier", classifier, Classifier)
        check_choice("optimizer", optimizer, Optimizer)
        check_choice("lr_schedule", lr_schedule, Schedule)
        defaults = BACKBONES[backbone]
        warp_size = defaults["warp_size"] if warp_size is None else warp_size
        context_padding = defaults["context_padding"] if context_padding is None else context_padding
        max_proposals = defaults["max_proposals"] if max_proposals is None else max_proposals
        dropout = defaults["dropout"] if dropout is None else dropout
        colour_spaces = list(colour_spaces) if colour_spaces is not None else ["rgb", "hsv"]
        thresholds = [float(k) for k in thresholds] if thresholds is not None else [100.0]
        similarity_sets = [list(s) for s in similarity_sets] if similarity_sets is not None else [["colour", "size", "fill"]]
        window_sizes = [float(s) for s in window_sizes] if window_sizes is not None else [0.15, 0.25, 0.4, 0.6]
        for name, value in (("in_channels", in_channels), ("max_proposals", max_proposals), ("max_detections", max_detections),
                            ("min_region_size", min_region_size), ("regions_per_batch", regions_per_batch)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(context_padding, int) or context_padding < 0 or not isinstance(warp_size, int) or warp_size - 2 * context_padding < 1:
            raise ValueError(f"warp_size must leave room inside its context padding (warp_size - 2 * context_padding >= 1), got {warp_size!r} and {context_padding!r}")
        if not 0 <= positives_per_batch <= regions_per_batch:
            raise ValueError(f"positives_per_batch must be in [0, regions_per_batch = {regions_per_batch}], got {positives_per_batch}")
        if not colour_spaces or any(c not in ("rgb", "hsv") for c in colour_spaces):
            raise ValueError(f"colour_spaces must be a non-empty list of 'rgb' and 'hsv', got {colour_spaces!r}")
        if not thresholds or any(not k > 0 for k in thresholds):
            raise ValueError(f"thresholds must be a non-empty list of positive k values, got {thresholds!r}")
        if not similarity_sets or any(not s or any(x not in ("colour", "size", "fill") for x in s) for s in similarity_sets):
            raise ValueError(f"similarity_sets must be non-empty lists of 'colour', 'size' and 'fill', got {similarity_sets!r}")
        if not window_sizes or any(not 0 < s <= 1 for s in window_sizes):
            raise ValueError(f"window_sizes must be fractions of the image in (0, 1], got {window_sizes!r}")
        for name, value in (("positive_iou", positive_iou), ("regression_iou", regression_iou), ("nms_threshold", nms_threshold)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0 <= svm_negative_iou < positive_iou:
            raise ValueError(f"svm_negative_iou must be in [0, positive_iou = {positive_iou}), got {svm_negative_iou}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for name, value in (("svm_regularisation", svm_regularisation), ("regression_regularisation", regression_regularisation),
                            ("weight_decay", weight_decay), ("momentum", momentum)):  # fmt: skip
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if svm_positive_weight <= 0 or learning_rate <= 0 or (head_learning_rate is not None and head_learning_rate <= 0):
            raise ValueError(f"svm_positive_weight, learning_rate and head_learning_rate must be positive, got {svm_positive_weight}, {learning_rate}, {head_learning_rate}")
        if not isinstance(svm_epochs, int) or svm_epochs < 0:
            raise ValueError(f"svm_epochs must be an integer >= 0, got {svm_epochs!r}")
        super().__init__(num_classes=num_classes, class_names=class_names)
        self.save_hyperparameters()
        self.hparams.update(warp_size=warp_size, context_padding=context_padding, max_proposals=max_proposals, dropout=dropout,
                            colour_spaces=colour_spaces, thresholds=thresholds, similarity_sets=similarity_sets,
                            window_sizes=window_sizes, head_learning_rate=head_learning_rate or learning_rate)  # fmt: skip
        self.warp_size, self.context_padding = warp_size, context_padding

        try:
            network = AlexNet(num_classes=num_classes + 1, in_channels=in_channels, input_size=warp_size, dropout=dropout, **defaults["alexnet"])
        except ValueError as error:
            raise ValueError(f"warp_size {warp_size} does not fit backbone {backbone!r}: {error}") from None
        self.features = network.features  # conv1 ... pool5
        self.hidden = nn.Sequential(*list(network.classifier.children())[:-1])  # fc6, fc7 (with their ReLUs and dropout)
        fc8 = network.classifier[-1]
        self.finetune_layer = nn.Linear(fc8.in_features, num_classes + 1)  # the new (N + 1)-way layer, background first
        nn.init.normal_(self.finetune_layer.weight, std=0.01)
        nn.init.zeros_(self.finetune_layer.bias)
        pool5_size = self.features(torch.zeros(1, in_channels, warp_size, warp_size, device=fc8.weight.device)).numel()
        self.svms = nn.Linear(fc8.in_features, num_classes)  # w_c, b_c of the C linear SVMs on fc7
        self.regressors = nn.Linear(pool5_size, 4 * num_classes)  # d_x, d_y, d_w, d_h of each class on pool5
        for head in (self.svms, self.regressors):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.set_sizes((in_channels, warp_size, warp_size), (num_classes + 1,))
        self._proposal_cache: dict[bytes, Tensor] = {}

    @classmethod
    def paper_sized(cls) -> RCNN:
        """R-CNN for Pascal VOC (Sections 2 and 3): AlexNet (the Caffe network of Krizhevsky et al.,
        two GPUs' groups) on 227 x 227 warped regions with 16 pixels of context, fine-tuned with a
        21-way layer (20 classes and background); 20 linear SVMs on fc7 and 20 box regressors on
        pool5; 2000 selective-search proposals per image. 57,773,561 parameters, of which the CNN
        has 56,954,261 (AlexNet's 60,965,224 with fc8 cut from 1000 to 21 outputs).
        ``example_input_array`` is one warped region, the input of :meth:`forward`; what
        :meth:`forward_flops` counts is the detection of one image.
        """
        return cls(backbone="paper", num_classes=20)

    def forward_flops(self) -> int:
        """FLOPs of detecting one image (Section 2.2): its ``max_proposals`` warped regions (2000 in
        the paper) through the CNN to fc7, the class-wise scores on fc7 (the SVMs, or the softmax
        layer) and the box regressors on pool5, counted by
        :class:`~torch.utils.flop_counter.FlopCounterMode` on ``max_proposals`` copies of
        ``example_input_array``. The full quota of proposals is counted (selective search may find
        fewer on a plain image); selective search itself, the warping and the non-maximum
        suppression are not matrix products and are left out, as element-wise work is everywhere.
        The CNN's share, a full pass per region, is the cost that Fast and Faster R-CNN removed."""
        from torch.utils.flop_counter import FlopCounterMode

        regions = self.example_input_array.to(self.device).expand(self.hparams.max_proposals, -1, -1, -1)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            pool5 = torch.flatten(self.features(regions), 1)
            fc7 = self.hidden(pool5)
            (self.svms if self.hparams.classifier == "svm" else self.finetune_layer)(fc7)
            if self.hparams.bbox_regression:
                self.regressors(pool5)
        return int(counter.get_total_flops())

    # ------------------------------------------------------------------ the CNN on warped regions
    def region_features(self, regions: Tensor) -> RegionFeatures:
        """The CNN on warped regions ``(R, C, S, S)``: ``pool5`` (flattened), ``fc7`` and the fine-tuning scores."""
        pool5 = torch.flatten(self.features(regions), 1)
        fc7 = self.hidden(pool5)
        return RegionFeatures(pool5, fc7, self.finetune_layer(fc7))

    def forward(self, regions: Tensor) -> Tensor:
        """The fine-tuned network's ``(R, N + 1)`` class scores (background first) for warped regions ``(R, C, S, S)``."""
        return self.region_features(regions).logits

    def frozen_features(self, images: Tensor, boxes: Sequence[Tensor], chunk: int = 512) -> RegionFeatures:
        """:meth:`region_features` of the regions ``boxes`` (one ``(R_i, 4)`` tensor per image),
        warped and passed through the CNN ``chunk`` regions at a time, without gradient and in
        evaluation mode (no dropout): the features the SVMs and regressors are trained and applied on."""
        image_index = torch.repeat_interleave(torch.arange(len(boxes), device=images.device), torch.tensor([len(b) for b in boxes], device=images.device))
        all_boxes = torch.cat([b.to(images.device).float() for b in boxes])
        was_training = self.training
        self.features.eval()
        self.hidden.eval()
        try:
            with torch.no_grad():
                parts = [
                    self.region_features(warp_regions(images, all_boxes[i : i + chunk], self.warp_size, self.context_padding, image_index[i : i + chunk]))
                    for i in range(0, len(all_boxes), chunk)
                ]
        finally:
            self.features.train(was_training)
            self.hidden.train(was_training)
        if not parts:
            empty = images.new_zeros(0)
            return RegionFeatures(empty.view(0, self.regressors.in_features), empty.view(0, self.svms.in_features), empty.view(0, self.num_object_classes + 1))
        return RegionFeatures(*(torch.cat([getattr(p, name) for p in parts]).float() for name in RegionFeatures._fields))

    # ------------------------------------------------------------------ proposals
    def _check_images(self, images: Tensor) -> Tensor:
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        channels = self.input_size[0] if self.input_size else 3
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(f"R-CNN expects images of shape (N, {channels}, H, W), got {tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
        return images

    def _image_proposals(self, image: Tensor) -> Tensor:
        hp = self.hparams
        if hp.proposal_method == "sliding_windows":
            return sliding_windows(image.shape[-2], image.shape[-1], hp.window_sizes, hp.max_proposals)
        return selective_search(image, hp.colour_spaces, hp.thresholds, hp.similarity_sets, hp.min_region_size, 0.8, hp.max_proposals)

    def proposals(self, images: Tensor) -> list[Tensor]:
        """The class-independent region proposals of each image ``(N, C, H, W)``: ``(P, 4)`` xyxy
        pixel boxes, best first (selective search's ranking; the sliding windows in scan order).
        Computed once per image when ``cache_proposals`` (by a digest of its pixels)."""
        images = self._check_images(images)
        found = []
        for image in images:
            pixels = image.detach().float().cpu().contiguous()
            key = hashlib.blake2b(str(tuple(pixels.shape)).encode() + pixels.numpy().tobytes(), digest_size=16).digest() if self.hparams.cache_proposals else b""
            boxes = self._proposal_cache.get(key) if key else None
            if boxes is None:
                boxes = self._image_proposals(pixels)
                if key:
                    self._proposal_cache[key] = boxes
            found.append(boxes.to(images.device))
        return found

    # ------------------------------------------------------------------ training: the three stages' objectives
    def frozen_epochs(self, max_epochs: int) -> int:
        """The epochs of the SVM stage in a run of ``max_epochs``: ``svm_epochs``, but at most all
        the epochs after the first, which the CNN needs to fine-tune."""
        return max(0, min(self.hparams.svm_epochs, max_epochs - 1))

    @property
    def in_svm_stage(self) -> bool:
        """Whether training is in its last ``svm_epochs`` epochs: the CNN frozen, the SVMs and regressors learning."""
        trainer = self.attached_trainer()
        if trainer is None or not self.hparams.svm_epochs or trainer.max_epochs is None or trainer.max_epochs < 1:
            return False
        return trainer.current_epoch >= trainer.max_epochs - self.frozen_epochs(trainer.max_epochs)

    def head_objectives(self, features: RegionFeatures, regions: RegionSet, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The SVM hinge objective on ``fc7`` and the ridge objective of the regressors on ``pool5``,
        for the regions ``rows`` of ``regions`` (all with ``None``) whose ``features`` are given."""
        hp = self.hparams
        pick = (lambda values: values) if rows is None else (lambda values: values[rows])  # noqa: E731
        svm = svm_objective(self.svms(features.fc7), pick(regions.svm_targets), self.svms.weight, hp.svm_regularisation, hp.svm_positive_weight)
        if not hp.bbox_regression:
            return svm, 0.0 * self.regressors(features.pool5[:1]).sum()  # unused, but in the graph for DDP
        bbox = ridge_objective(self.regressors(features.pool5), pick(regions.regression_targets), pick(regions.regression_classes),
                               self.regressors.weight, hp.regression_regularisation)  # fmt: skip
        return svm, bbox

    def loss_terms(self, images: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        """The three stages' objectives on a batch: ``finetune``, the ``(N + 1)``-way cross-entropy
        on a mini-batch of 32 positive and 96 background warped regions; ``svm``, the hinge
        objective of the class-wise SVMs on ``fc7``; ``bbox``, the ridge objective of the regressors
        on ``pool5`` (pairs with IoU >= 0.6); ``loss``, their sum.

        While fine-tuning, the CNN learns from ``finetune`` alone, and the SVMs and regressors from
        the same sampled regions' features, detached. In the last ``svm_epochs`` epochs (and on
        validation and test data) the CNN runs without gradient and in evaluation mode over *all*
        the batch's regions, every negative included, and only the SVMs and regressors learn; the
        ``finetune`` term is then measured on the sampled regions' scores but trains nothing."""
        images = self._check_images(images)
        hp = self.hparams
        regions = label_regions(self.proposals(images), targets, self.num_object_classes, hp.positive_iou, hp.svm_negative_iou, hp.regression_iou)
        chosen = sample_finetuning_batch(regions.finetune_labels, hp.positives_per_batch, hp.regions_per_batch)
        if self.training and not self.in_svm_stage:
            image_index = torch.repeat_interleave(torch.arange(len(images), device=images.device),
                                                  torch.tensor([len(b) for b in regions.boxes], device=images.device))  # fmt: skip
            warped = warp_regions(images, torch.cat(regions.boxes)[chosen], self.warp_size, self.context_padding, image_index[chosen])
            features = self.region_features(warped)
            finetune = F.cross_entropy(features.logits.float(), regions.finetune_labels[chosen])
            detached = RegionFeatures(*(f.detach().float() for f in features))
            svm, bbox = self.head_objectives(detached, regions, chosen)
            return {"loss": finetune + svm + bbox, "finetune": finetune, "svm": svm, "bbox": bbox}

        frozen = self.frozen_features(images, regions.boxes)
        finetune = F.cross_entropy(frozen.logits[chosen], regions.finetune_labels[chosen])
        svm, bbox = self.head_objectives(frozen, regions)
        # the CNN gets zero gradients (its learning rate is 0 now): every parameter stays in the graph for DDP
        cnn = [p for name, p in self.named_parameters() if not name.startswith(("svms.", "regressors."))]
        unused = 0.0 * sum(p.sum() for p in cnn) if self.training else 0.0
        return {"loss": finetune + svm + bbox + unused, "finetune": finetune, "svm": svm, "bbox": bbox}

    # ------------------------------------------------------------------ inference (Section 2.2)
    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Detections]:
        """Proposals, warped regions, CNN features, per-class scores (SVM margins, or softmax
        probabilities), box regression, per-class NMS: boxes (xyxy pixels), scores and labels per image."""
        images = self._check_images(images)
        hp = self.hparams
        proposals = self.proposals(images)
        frozen = self.frozen_features(images, proposals)
        if hp.classifier == "svm":
            scores = self.svms(frozen.fc7).float()
        else:
            scores = frozen.logits.float().softmax(dim=1)[:, 1:]
        deltas = self.regressors(frozen.pool5).float() if hp.bbox_regression else None
        size = (images.shape[-2], images.shape[-1])
        detections, start = [], 0
        for boxes in proposals:
            end = start + len(boxes)
            detections.append(
                detections_from_regions(boxes, scores[start:end], None if deltas is None else deltas[start:end], size,
                                        hp.score_threshold, hp.nms_threshold, hp.max_detections)  # fmt: skip
            )
            start = end
        return detections

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """Two groups: the CNN (and its fine-tuning layer), with the weight decay and the schedule,
        its rate 0 in the last ``svm_epochs`` epochs; the SVMs and regressors at ``head_learning_rate``,
        decaying over those epochs, without weight decay (their ``lambda`` is in their objectives)."""
        hp = self.hparams
        heads = [*self.svms.parameters(), *self.regressors.parameters()]
        head_ids = {id(p) for p in heads}
        groups = [
            {"params": [p for p in self.parameters() if id(p) not in head_ids], "weight_decay": hp.weight_decay, "lr": hp.learning_rate},
            {"params": heads, "weight_decay": 0.0, "lr": hp.head_learning_rate},
        ]
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.learning_rate, momentum=hp.momentum)
        else:
            optimizer = torch.optim.Adam(groups, lr=hp.learning_rate)
        if hp.lr_schedule == "constant" and hp.svm_epochs == 0:
            return optimizer  # the paper's fine-tuning: one constant rate
        total, epochs = self.trainer.estimated_stepping_batches, self.trainer.max_epochs
        if not math.isfinite(total) or total < 1 or epochs is None or epochs < 1:
            raise ValueError("lr_schedule='cosine' and svm_epochs > 0 need a run of known length: set max_epochs")
        frozen = self.frozen_epochs(epochs)
        if frozen < hp.svm_epochs:
            rank_zero_warn(f"svm_epochs={hp.svm_epochs} in a run of max_epochs={epochs}: the first epoch fine-tunes the CNN, "
                           f"the SVM stage has the last {frozen}")  # fmt: skip
        finetuning = total * (epochs - frozen) / epochs  # steps of the fine-tuning stage

        def cnn_factor(step: int) -> float:
            if step >= finetuning:
                return 0.0  # the SVM and regression stages: the features are frozen
            return 1.0 if hp.lr_schedule == "constant" else 0.5 * (1.0 + math.cos(math.pi * step / finetuning))

        def head_factor(step: int) -> float:  # constant while fine-tuning, then to zero over the frozen stage
            if step < finetuning or frozen == 0:
                return 1.0
            return 0.5 * (1.0 + math.cos(math.pi * min((step - finetuning) / max(total - finetuning, 1.0), 1.0)))

        schedule = LambdaLR(optimizer, [cnn_factor, head_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The learning curves (the three stages' objectives, mAP, mAP@0.5, recall@0.5, the CNN's
        learning rate), the gradient flow, the best selective-search proposals with their recall of
        the objects (:class:`callbacks.proposals.RegionProposals`), and the detections drawn on
        validation and test images (:class:`callbacks.detections.DetectionPredictions`)."""
        from callbacks.detections import DetectionPredictions
        from callbacks.figures import GradientFlow, LearningCurves
        from callbacks.proposals import RegionProposals

        curves = ("train_loss", "train_finetune", "train_svm", "train_bbox", "val_loss", "val_map", "val_map_50", "val_recall_50", "learning_rate")
        return [
            LearningCurves(patterns=curves, every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            RegionProposals(top_k=20, recall_top_n=self.hparams.max_proposals, every_n_epochs=every_n_epochs),
            DetectionPredictions(every_n_epochs=every_n_epochs),
            DetectionPredictions(split="test", every_n_epochs=every_n_epochs),
        ]
