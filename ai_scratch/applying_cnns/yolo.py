"""YOLO v1: detection as one regression over a grid (Redmon, Divvala, Girshick and Farhadi, 2016).

Paper: J. Redmon, S. Divvala, R. Girshick and A. Farhadi, "You Only Look Once: Unified, Real-Time
Object Detection", CVPR 2016 (arXiv:1506.02640). Section 2 gives the model, Figure 3 the network,
Section 2.2 the training and the loss (eq. 3), Section 2.4 the limitations.

One network looks at the whole image once. It divides the image into an ``S x S`` grid; "if the
center of an object falls into a grid cell, that grid cell is responsible for detecting that
object" (Section 2). Each cell predicts

* ``B`` boxes, each as five numbers ``(x, y, w, h, confidence)``: ``(x, y)`` the box's centre
  relative to the bounds of the cell (0 to 1 across the cell), ``w`` and ``h`` relative to the whole
  image, and the confidence ``Pr(Object) * IOU^truth_pred``, which is 0 where there is no object
  and the IoU between the predicted box and the truth where there is one. As the loss compares
  square roots of the sizes, the network outputs ``sqrt(w)`` and ``sqrt(h)``, as the original
  implementation does;
* ``C`` conditional class probabilities ``Pr(Class_i | Object)``, one set per cell whatever ``B``.

So the output is an ``S x S x (B * 5 + C)`` tensor: ``7 x 7 x 30`` for Pascal VOC (``S = 7``,
``B = 2``, ``C = 20``). At test time the class-specific confidence of each box is

    Pr(Class_i | Object) * Pr(Object) * IOU^truth_pred = Pr(Class_i) * IOU^truth_pred     (eq. 1)

which is thresholded; non-maximal suppression then removes the duplicates that large objects near
cell borders get from neighbouring cells (Section 2.3), here per class (``torchvision.ops.batched_nms``).

The loss (eq. 3), sum-squared error over the grid, ``1^obj_i`` "an object appears in cell i",
``1^obj_ij`` "the j-th box predictor in cell i is responsible for that prediction" (the one whose
current prediction has the highest IoU with the ground truth), ``1^noobj_ij`` every other predictor:

    lambda_coord sum_i sum_j 1^obj_ij [ (x_i - x^_i)^2 + (y_i - y^_i)^2 ]                      (coord)
  + lambda_coord sum_i sum_j 1^obj_ij [ (sqrt w_i - sqrt w^_i)^2 + (sqrt h_i - sqrt h^_i)^2 ]  (size)
  +              sum_i sum_j 1^obj_ij (C_i - C^_i)^2                                           (object)
  + lambda_noobj sum_i sum_j 1^noobj_ij (C_i - C^_i)^2                                         (noobject)
  +              sum_i 1^obj_i sum_c (p_i(c) - p^_i(c))^2                                      (class)

with ``lambda_coord = 5`` (localisation errors count more than classification ones) and
``lambda_noobj = 0.5`` (the many cells without objects would otherwise overpower the gradient of
the few with one). The square roots make "small deviations in large boxes matter less than in small
boxes". The target confidence ``C^`` of a responsible predictor is the IoU of its box with the
truth (``confidence_target="iou"``, the paper's definition; ``"one"`` is the common simplification);
elsewhere it is 0. The class error counts only in cells with an object. The loss here is the sum
over the grid averaged over the images of a batch.

The network (Figure 3): 24 convolutional layers, then 2 fully connected layers, leaky ReLU
``phi(x) = x if x > 0 else 0.1 x`` everywhere but the last layer, which is linear; 1x1 reduction
layers followed by 3x3 convolutions (after GoogLeNet); dropout 0.5 after the first fully connected
layer; input 448 x 448. :data:`PAPER_LAYERS` lists it; ``backbone="small"`` is the same class with
four 3x3 convolutions (16 to 128 channels, each followed by 2x2 max pooling) and a 256-unit hidden
layer, for 64 x 64 images on a CPU. The paper pre-trains the first 20 layers on ImageNet at
224 x 224; nothing is pre-trained here.

Training (Section 2.2): 135 epochs on VOC 2007 + 2012, batch 64, SGD with momentum 0.9 and weight
decay 0.0005; the rate rises from 1e-3 to 1e-2 over the first epochs, stays at 1e-2 for 75 epochs,
1e-3 for 30 and 1e-4 for the last 30 (``lr_schedule="paper"``: a linear warm-up over the first
``warmup_fraction`` of the steps from a tenth of the rate, then divided by 10 at 75/135 and
105/135 of the run). Augmentation (random scaling and translations of up to 20%, exposure and
saturation in HSV) is not done here. Not in the paper: ``optimizer="adam"``, ``lr_schedule``
``"cosine"`` / ``"constant"``, and ``batch_norm`` after every convolution (YOLOv2's addition), for
short runs on a CPU.

Limitations (Section 2.4), which the weakness experiment shows: "each grid cell only predicts two
boxes and can only have one class", so the model "struggles with small objects that appear in
groups, such as flocks of birds". As in the original implementation, a cell that holds the centres
of several objects is trained on one of them (here the largest); its one box then tends to land
between the objects of a crowded cell and match none of them.

Example::

    model = YOLO(backbone="paper")                        # Figure 3: 448 x 448 -> 7 x 7 x 30
    small = YOLO(backbone="small", grid_size=4, boxes_per_cell=1, num_classes=4, image_size=64)
    detections = small.predict(torch.rand(2, 3, 64, 64))  # [{"boxes", "scores", "labels"}, ...]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image

from ai_scratch.applying_cnns.detection import DetectionModel, Detections, Target
from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo

Backbone = Literal["paper", "small"]
Optimizer = Literal["sgd", "adam"]
YoloSchedule = Literal["paper", "cosine", "constant"]
ConfidenceTarget = Literal["iou", "one"]

#: A layer: ``(kernel, filters, stride)`` for a convolution, ``"M"`` for 2x2 max pooling, stride 2.
Layer = tuple[int, int, int] | str

#: Figure 3, left to right: 24 convolutions and 4 max-pooling layers; 448 x 448 in, 7 x 7 x 1024 out.
PAPER_LAYERS: tuple[Layer, ...] = (
    (7, 64, 2), "M",
    (3, 192, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)  # fmt: skip
#: The CPU backbone: four 3x3 convolutions, each halving the map by max pooling (64 x 64 -> 4 x 4).
SMALL_LAYERS: tuple[Layer, ...] = ((3, 16, 1), "M", (3, 32, 1), "M", (3, 64, 1), "M", (3, 128, 1), "M")
BACKBONES: dict[str, tuple[tuple[Layer, ...], int]] = {"paper": (PAPER_LAYERS, 4096), "small": (SMALL_LAYERS, 256)}
#: Figure 3's output, ``S x S x (B * 5 + C)`` for Pascal VOC.
PAPER_OUTPUT = (7, 7, 30)


def build_backbone(layers: Sequence[Layer], in_channels: int, batch_norm: bool = False) -> tuple[nn.Sequential, int, int]:
    """The convolutional layers (``padding = kernel // 2``, leaky ReLU 0.1) and max pooling of
    ``layers``; returns them, the channels they end with and their total stride."""
    modules: list[nn.Module] = []
    channels, stride = in_channels, 1
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2, 2))
            stride *= 2
            continue
        kernel, filters, step = layer  # type: ignore[misc]
        modules.append(nn.Conv2d(channels, filters, kernel, stride=step, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm2d(filters))
        modules.append(nn.LeakyReLU(0.1, inplace=True))
        channels, stride = filters, stride * step
    return nn.Sequential(*modules), channels, stride


def feature_side(layers: Sequence[Layer], image_size: int) -> int:
    """The side of the backbone's output map for a square input of side ``image_size``."""
    side = image_size
    for layer in layers:
        if layer == "M":
            side //= 2
        else:
            kernel, _, step = layer  # type: ignore[misc]
            side = (side + 2 * (kernel // 2) - kernel) // step + 1
    return side


# --------------------------------------------------------------------------------- boxes on the grid
def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of boxes ``a[..., 4]`` and ``b[..., 4]`` (xyxy) position by position, broadcast."""
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return intersection / (area_a + area_b - intersection).clamp(min=1e-9)


def cell_boxes_to_image(cell_boxes: Tensor) -> Tensor:
    """``(..., S, S, B, 4)`` boxes as ``(x, y, sqrt w, sqrt h)`` (centre relative to the cell, sizes
    to the image) to xyxy in fractions of the image; negative square roots count as size 0."""
    side = cell_boxes.shape[-3]
    rows = torch.arange(side, device=cell_boxes.device, dtype=cell_boxes.dtype).view(side, 1, 1)
    cols = torch.arange(side, device=cell_boxes.device, dtype=cell_boxes.dtype).view(1, side, 1)
    centre_x = (cols + cell_boxes[..., 0]) / side
    centre_y = (rows + cell_boxes[..., 1]) / side
    width, height = cell_boxes[..., 2].clamp(min=0) ** 2, cell_boxes[..., 3].clamp(min=0) ** 2
    return box_convert(torch.stack([centre_x, centre_y, width, height], dim=-1), "cxcywh", "xyxy")


def encode_targets(targets: list[Target], grid_size: int, num_classes: int, image_size: int) -> dict[str, Tensor]:
    """The ground truth on the grid, for a batch of target dicts (boxes in pixels).

    Returns, for ``N`` images and ``S = grid_size``:

    * ``object`` ``(N, S, S)`` bool: ``1^obj_i``, a cell holds an object's centre;
    * ``cell_box`` ``(N, S, S, 4)``: ``(x, y, sqrt w, sqrt h)`` of that object, the network's units;
    * ``box`` ``(N, S, S, 4)``: the same box as xyxy fractions of the image (for the IoU);
    * ``classes`` ``(N, S, S, C)``: one-hot ``p_i(c)``.

    A cell that holds several centres keeps the largest object, as the original target holds one
    object per cell.
    """
    n, side = len(targets), grid_size
    device = targets[0]["boxes"].device if targets else torch.device("cpu")
    encoded = {
        "object": torch.zeros(n, side, side, dtype=torch.bool, device=device),
        "cell_box": torch.zeros(n, side, side, 4, device=device),
        "box": torch.zeros(n, side, side, 4, device=device),
        "classes": torch.zeros(n, side, side, num_classes, device=device),
    }
    for index, target in enumerate(targets):
        boxes = target["boxes"].float() / image_size
        if not len(boxes):
            continue
        cxcywh = box_convert(boxes, "xyxy", "cxcywh")
        cols = (cxcywh[:, 0] * side).floor().long().clamp(0, side - 1)
        rows = (cxcywh[:, 1] * side).floor().long().clamp(0, side - 1)
        cell_box = torch.stack(
            [cxcywh[:, 0] * side - cols, cxcywh[:, 1] * side - rows, cxcywh[:, 2].clamp(min=0).sqrt(), cxcywh[:, 3].clamp(min=0).sqrt()], dim=1
        )
        # smallest first: where several centres share a cell, the largest object is written last and stays
        for k in (cxcywh[:, 2] * cxcywh[:, 3]).argsort().tolist():
            row, col = rows[k], cols[k]
            encoded["object"][index, row, col] = True
            encoded["cell_box"][index, row, col] = cell_box[k]
            encoded["box"][index, row, col] = boxes[k]
            encoded["classes"][index, row, col] = 0.0
            encoded["classes"][index, row, col, target["labels"][k]] = 1.0
    return encoded


def yolo_loss(
    output: Tensor,
    encoded: dict[str, Tensor],
    boxes_per_cell: int,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
    confidence_target: ConfidenceTarget = "iou",
) -> dict[str, Tensor]:
    """Eq. 3 for a batch: the network's ``output`` ``(N, S, S, B * 5 + C)`` against the
    :func:`encode_targets` of its targets. Each term is summed over the grid and averaged over the
    ``N`` images; ``loss`` is their weighted sum, the others are unweighted."""
    n, side = output.shape[0], output.shape[1]
    output = output.float()
    predicted = output[..., : 5 * boxes_per_cell].reshape(n, side, side, boxes_per_cell, 5)
    class_probabilities = output[..., 5 * boxes_per_cell :]  # p^_i(c)
    cell_box, confidence = predicted[..., :4], predicted[..., 4]  # (x^, y^, sqrt w^, sqrt h^), C^ ... (model's)
    has_object = encoded["object"]  # 1^obj_i
    # the responsible predictor: highest IoU of its current box with the truth (no gradient through the choice)
    iou = paired_iou(cell_boxes_to_image(cell_box.detach()), encoded["box"].unsqueeze(-2))  # (N, S, S, B)
    best = iou.argmax(dim=-1, keepdim=True)
    responsible = torch.zeros_like(iou, dtype=torch.bool).scatter_(-1, best, True) & has_object.unsqueeze(-1)  # 1^obj_ij
    obj = responsible.float()
    truth = encoded["cell_box"].unsqueeze(-2)  # (x_i, y_i, sqrt w_i, sqrt h_i)
    squared = (cell_box - truth) ** 2
    coord = (obj * (squared[..., 0] + squared[..., 1])).sum() / n
    size = (obj * (squared[..., 2] + squared[..., 3])).sum() / n
    target_confidence = iou if confidence_target == "iou" else torch.ones_like(iou)  # C_i = Pr(Object) * IOU
    object_term = (obj * (confidence - target_confidence) ** 2).sum() / n
    noobject = ((1.0 - obj) * confidence**2).sum() / n  # 1^noobj_ij: every predictor not responsible, target 0
    class_term = (has_object.unsqueeze(-1).float() * (class_probabilities - encoded["classes"]) ** 2).sum() / n
    loss = lambda_coord * (coord + size) + object_term + lambda_noobj * noobject + class_term
    return {"loss": loss, "coord": coord, "size": size, "object": object_term, "noobject": noobject, "class": class_term}


def decode_output(output: Tensor, boxes_per_cell: int, image_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """The network's ``output`` ``(N, S, S, B * 5 + C)`` as ``S * S * B`` boxes per image:
    xyxy in pixels ``(N, S*S*B, 4)``, their confidences ``(N, S*S*B)`` and their cells' class
    probabilities ``(N, S*S*B, C)``."""
    n, side = output.shape[0], output.shape[1]
    output = output.float()
    predicted = output[..., : 5 * boxes_per_cell].reshape(n, side, side, boxes_per_cell, 5)
    boxes = cell_boxes_to_image(predicted[..., :4]) * image_size
    classes = output[..., 5 * boxes_per_cell :].unsqueeze(-2).expand(-1, -1, -1, boxes_per_cell, -1)
    return boxes.reshape(n, -1, 4), predicted[..., 4].reshape(n, -1), classes.reshape(n, side * side * boxes_per_cell, -1)


def detections_from_output(
    output: Tensor, boxes_per_cell: int, image_size: int, score_threshold: float, nms_threshold: float, max_detections: int
) -> list[Detections]:
    """Eq. 1's class-specific confidences ``Pr(Class_i | Object) * confidence`` for every box and
    class, those above ``score_threshold`` kept, then per-class non-maximum suppression at IoU
    ``nms_threshold`` and the ``max_detections`` best."""
    boxes, confidence, classes = decode_output(output, boxes_per_cell, image_size)
    scores = (classes * confidence.unsqueeze(-1)).clamp(0.0, 1.0)  # (N, M, C); linear outputs can leave [0, 1]
    detections = []
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        box_index, labels = (image_scores > score_threshold).nonzero(as_tuple=True)
        kept_boxes = clip_boxes_to_image(image_boxes[box_index], (image_size, image_size))
        kept_scores = image_scores[box_index, labels]
        keep = batched_nms(kept_boxes, kept_scores, labels, nms_threshold)[:max_detections]
        detections.append({"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": labels[keep]})
    return detections


# ----------------------------------------------------------------------------------------- model
class YOLO(DetectionModel):
    """YOLO v1 (Redmon et al., 2016): a CNN from the image to an ``S x S x (B * 5 + C)`` grid of boxes,
    confidences and class probabilities, trained by eq. 3.

    Args:
        backbone: ``"paper"`` (Figure 3's 24 convolutions, 4096 hidden units) or ``"small"`` (four
            convolutions, 256 hidden units).
        grid_size: ``S``, cells per side (7 in the paper).
        boxes_per_cell: ``B`` (2 in the paper).
        num_classes: ``C`` (20 for Pascal VOC).
        image_size: side of the square input (448 in the paper).
        in_channels: channels of the input images.
        hidden_size: units of the first fully connected layer; ``None``: the backbone's (4096, 256).
        dropout: after the first fully connected layer (0.5 in the paper).
        batch_norm: batch normalisation after every convolution (not in the paper; YOLOv2).
        lambda_coord, lambda_noobj: eq. 3's weights (5 and 0.5).
        confidence_target: ``"iou"`` (the paper's ``Pr(Object) * IOU``) or ``"one"``.
        score_threshold: class-specific confidences at or below it are dropped at inference.
        nms_threshold: IoU above which a lower-scored box of the same class is suppressed.
        max_detections: detections kept per image.
        optimizer: ``"sgd"`` (the paper's, with ``momentum`` and ``weight_decay``) or ``"adam"``.
        learning_rate, momentum, weight_decay: the optimizer's (1e-2, 0.9, 5e-4 in the paper).
        lr_schedule: ``"paper"`` (warm-up, then divided by 10 at 75/135 and 105/135 of the run),
            ``"cosine"`` (to zero over the run, after the warm-up) or ``"constant"``; per step.
        warmup_fraction: the fraction of the run over which the rate rises from a tenth of itself.
        class_names: the classes' names, for figures.

    Raises:
        ValueError: for an unknown option, sizes that do not give a feature map, or values out of range.
    """

    INFO = ModelInfo(
        name="yolo",
        full_name="YOLO v1",
        module=3,
        pattern="engine-based",
        year_introduced=2016,
        authors=("Joseph Redmon", "Santosh Divvala", "Ross Girshick", "Ali Farhadi"),
        paper_title="You Only Look Once: Unified, Real-Time Object Detection",
        key_innovations=(
            "detection as a single regression from image pixels to boxes and class probabilities",
            "an S x S grid: the cell holding an object's centre predicts B boxes and one set of class probabilities",
            "confidence = Pr(Object) * IoU, so that class-specific scores rank boxes by class and fit",
            "one network, one look at the whole image: real time (45 frames per second) and few background errors",
            "a sum-squared loss with square-rooted sizes and weights lambda_coord = 5, lambda_noobj = 0.5",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="sum-squared error over the grid (eq. 3)",
        optimizer="SGD with momentum 0.9, weight decay 5e-4, rate 1e-2 after a warm-up, divided by 10 twice",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "encode boxes on a grid (centre relative to the cell, square-rooted sizes) and decode them back",
            "implement eq. 3 term by term and see which predictor is made responsible for an object",
            "turn confidences into class-specific scores and remove duplicates with per-class NMS",
            "measure detection with mean average precision at IoU 0.5 and over 0.50:0.95",
            "see the limit of B boxes per cell: groups of small objects in one cell are missed",
        ),
        estimated_training_time="minutes (small, CPU); days (paper, GPU)",
    )

    def __init__(
        self,
        backbone: Backbone = "paper",
        grid_size: int = 7,
        boxes_per_cell: int = 2,
        num_classes: int = 20,
        image_size: int = 448,
        in_channels: int = 3,
        hidden_size: int | None = None,
        dropout: float = 0.5,
        batch_norm: bool = False,
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        confidence_target: ConfidenceTarget = "iou",
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
        optimizer: Optimizer = "sgd",
        learning_rate: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: YoloSchedule = "paper",
        warmup_fraction: float = 0.05,
        class_names: list[str] | None = None,
    ) -> None:
        check_choice("backbone", backbone, Backbone)
        check_choice("optimizer", optimizer, Optimizer)
        check_choice("lr_schedule", lr_schedule, YoloSchedule)
        check_choice("confidence_target", confidence_target, ConfidenceTarget)
        for name, value in (("grid_size", grid_size), ("boxes_per_cell", boxes_per_cell), ("in_channels", in_channels), ("max_detections", max_detections)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 <= score_threshold < 1 or not 0 < nms_threshold <= 1:
            raise ValueError(f"score_threshold must be in [0, 1) and nms_threshold in (0, 1], got {score_threshold}, {nms_threshold}")
        if lambda_coord < 0 or lambda_noobj < 0:
            raise ValueError(f"lambda_coord and lambda_noobj must be >= 0, got {lambda_coord}, {lambda_noobj}")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        layers, default_hidden = BACKBONES[backbone]
        side = feature_side(layers, image_size) if image_size >= 1 else 0
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for backbone {backbone!r}: its feature map would be empty")
        hidden_size = hidden_size if hidden_size is not None else default_hidden
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        super().__init__(num_classes=num_classes, class_names=class_names)
        self.save_hyperparameters()
        self.hparams.update(hidden_size=hidden_size)
        self.grid_size, self.boxes_per_cell, self.image_size = grid_size, boxes_per_cell, image_size
        self.cell_outputs = boxes_per_cell * 5 + num_classes  # B * 5 + C

        self.features, channels, _ = build_backbone(layers, in_channels, batch_norm)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, hidden_size),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, grid_size * grid_size * self.cell_outputs),  # linear activation
        )
        self.set_sizes((in_channels, image_size, image_size), (grid_size, grid_size, self.cell_outputs))

    @property
    def feature_map_layers(self) -> tuple[str, ...]:
        """The first two convolutions, for the feature-map figure."""
        convolutions = [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        return tuple(convolutions[:2])

    @classmethod
    def paper_sized(cls) -> YOLO:
        """YOLO of Figure 3 for Pascal VOC: 24 convolutional layers and 2 fully connected ones on a
        448 x 448 image, a 7 x 7 grid of 2 boxes and 20 classes, the 7 x 7 x 30 output tensor;
        271,703,550 parameters (the paper gives no total)."""
        return cls(backbone="paper", grid_size=7, boxes_per_cell=2, num_classes=20, image_size=448)

    def forward(self, images: Tensor) -> Tensor:
        """``(N, S, S, B * 5 + C)``: per cell, ``B`` times ``(x, y, sqrt w, sqrt h, confidence)``, then ``C`` class probabilities."""
        return self.head(self.features(images)).view(-1, self.grid_size, self.grid_size, self.cell_outputs)

    def _check_images(self, images: Tensor) -> None:
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_size or ()):
            raise ValueError(f"YOLO expects images of shape (N, {', '.join(map(str, self.input_size or ()))}), got {tuple(images.shape)}")

    def loss_terms(self, images: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        self._check_images(images)
        encoded = encode_targets(targets, self.grid_size, self.num_object_classes, self.image_size)
        hp = self.hparams
        return yolo_loss(self(images), encoded, self.boxes_per_cell, hp.lambda_coord, hp.lambda_noobj, hp.confidence_target)

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Detections]:
        """Boxes (xyxy pixels), class-specific scores and labels of each image, after thresholding and NMS."""
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        self._check_images(images)
        hp = self.hparams
        return detections_from_output(self(images), self.boxes_per_cell, self.image_size, hp.score_threshold, hp.nms_threshold, hp.max_detections)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"lr_schedule={hp.lr_schedule!r} needs a run of known length: set max_epochs or max_steps")
        warmup = hp.warmup_fraction

        def factor(step: int) -> float:
            progress = step / total
            if progress < warmup:
                return 0.1 + 0.9 * progress / warmup  # Section 2.2: "slowly raise the learning rate from 1e-3 to 1e-2"
            if hp.lr_schedule == "paper":
                return 0.1 ** sum(progress >= m for m in (75 / 135, 105 / 135))
            return 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))

        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The learning curves (loss, mAP, mAP@0.5, recall@0.5, learning rate), the gradient flow, the first filters and feature maps, and the
        detections drawn on validation and on test images (:class:`callbacks.detections.DetectionPredictions`)."""
        from callbacks.detections import DetectionPredictions
        from callbacks.figures import ConvFilters, GradientFlow, LearningCurves

        curves = ("train_loss", "val_loss", "val_map", "val_map_50", "val_recall_50", "learning_rate")
        return [
            LearningCurves(patterns=curves, every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            ConvFilters(layers=self.feature_map_layers, every_n_epochs=every_n_epochs),
            DetectionPredictions(every_n_epochs=every_n_epochs),
            DetectionPredictions(split="test", every_n_epochs=every_n_epochs),
        ]
