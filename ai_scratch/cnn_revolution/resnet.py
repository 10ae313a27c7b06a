"""ResNet, deep residual learning (He, Zhang, Ren and Sun, 2015).

Paper: K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385, 2015). Section 3 gives residual learning and the shortcut options, Table 1 the
ImageNet networks, Section 4.2 the CIFAR-10 networks, Table 6 their sizes.

The problem (Section 1, Figure 1): a deeper *plain* network has a *higher training* error than a
shallower one. It is not overfitting but an optimisation difficulty ("degradation"): the deeper net
could copy the shallower one and set its extra layers to identity mappings, yet solvers do not find
that solution. So let a few stacked layers fit a *residual* ``F(x) = H(x) - x`` instead of the
desired mapping ``H(x)``, and add ``x`` back through a *shortcut connection*: if the identity is
optimal, pushing ``F`` to zero is easier than fitting an identity with nonlinear layers.

    y = F(x, {W_i}) + x              (eq. 1; F = W_2 relu(W_1 x) for two layers, biases omitted)
    y = F(x, {W_i}) + W_s x          (eq. 2; W_s a projection, only to match dimensions)

followed by a ReLU. The shortcut adds neither parameters nor computation. Batch normalisation
follows every convolution, before the activation (Section 3.4).

Building blocks (Figure 5): the *basic* block, two 3x3 convolutions (ResNet-18/34); the
*bottleneck*, a 1x1 that reduces the channels, a 3x3, and a 1x1 that restores them to 4 times
(``expansion = 4``), for the deeper ResNet-50/101/152, with about the cost of the basic block.

Table 1 (ImageNet, 224x224; the blocks of each stage, ``[kernel, channels] x blocks``):

    stage    output   18-layer     34-layer     50-layer        101-layer       152-layer
    conv1    112x112  7x7, 64, stride 2
             56x56    3x3 max pool, stride 2
    conv2_x  56x56    [3x3,64]x2   [3x3,64]x2   [1x1,64           ... x3         ... x3
                      x2           x3            3x3,64
                                                 1x1,256] x3
    conv3_x  28x28    [..128] x2   x4           [.. 512] x4      x4              x8
    conv4_x  14x14    [..256] x2   x6           [..1024] x6      x23             x36
    conv5_x   7x7     [..512] x2   x3           [..2048] x3      x3              x3
             1x1      average pool, 1000-d fc, softmax
    FLOPs             1.8e9        3.6e9        3.8e9           7.6e9           11.3e9

Downsampling is done by conv3_1, conv4_1 and conv5_1 with a stride of 2. When the dimensions
increase, the shortcut has three options (Section 3.3):

* (A) zero-padding: identity on the first channels (taken with stride 2 across a size change),
  extra channels filled with zeros; parameter-free;
* (B) projection shortcuts (1x1 convolution and BN) where the dimensions increase, identity elsewhere;
* (C) projections for all shortcuts.

CIFAR-10 (Section 4.2): a 3x3 convolution with 16 filters, then three stages of 2n 3x3 layers on
32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters (basic blocks, n per stage; subsampling by a
stride-2 convolution), global average pooling and a 10-way fully connected layer: 6n + 2 weighted
layers, ResNet-20/32/44/56/110 (n = 3, 5, 7, 9, 18) and ResNet-1202. Identity shortcuts (option A)
in all cases, "so our residual models have exactly the same depth, width, and number of parameters
as the plain counterparts". Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M and 19.4M parameters.

The *plain* networks the paper compares with (Figures 1, 4 and 6, Table 2) are the same stacks
without shortcuts: ``residual=False``.

Training. ImageNet (Section 3.4): SGD, mini-batch 256, momentum 0.9, weight decay 1e-4, learning
rate 0.1 "divided by 10 when the error plateaus", up to 600k iterations; no dropout; He et al.'s
initialisation. CIFAR-10 (Section 4.2): mini-batch 128, the same momentum and weight decay, rate 0.1
divided by 10 at 32k and 48k iterations, stopped at 64k: the ``lr_schedule="paper"`` milestones are
those fractions of the run, 1/2 and 3/4 (for ImageNet, where the paper divides on plateaus, 1/3 and
2/3, torchvision's 30 and 60 of 90 epochs). ResNet-110 starts with 0.01 until the training error is
below 80% (about 400 iterations), then goes back to 0.1: left to the experiment's config.

Where torchvision's ``resnet18`` to ``resnet152`` differ, named options (:data:`TORCHVISION_OPTIONS`):

* ``stride_on="3x3"``: a downsampling bottleneck puts its stride on the 3x3 convolution ("ResNet
  v1.5"), the paper on the first 1x1. Same parameters (strides have none), more multiply-adds:
  ResNet-50 costs 3.86e9 with the paper's placement and 4.09e9 with torchvision's.
  Basic blocks have their stride on the first 3x3 either way;
* ``shortcut="B"``, the default for the ImageNet family here too.

With those, the parameter counts equal torchvision's to the integer (11,689,512 for ResNet-18 to
60,192,808 for ResNet-152, :data:`TORCHVISION_PARAMETERS`).

Not in the paper: ``zero_init_last_bn`` (start each residual branch at zero by zeroing its last BN's
scale, Goyal et al. 2017); ``stem="cifar"`` for the ImageNet family (a 3x3 stride-1 convolution and
no max pooling, for 32x32 images); ``width`` (multiplies every stage's channels).

Per-block gradient norms: :meth:`ResNet.block_gradient_norms` gives the gradient norm of each
block's parameters, and every ``grad_norm_every_n_steps`` optimizer steps ``on_before_optimizer_step``
logs them as ``grad_norm/block_N`` (N from 1 at the input) at that very step: the signal with which
the paper's plain and residual networks part ways.

Example::

    model = ResNet(depth=50)                                  # Table 1, option B, stride on the 1x1
    cifar = ResNet(depth=56, family="cifar")                  # Section 4.2: 0.85M parameters, option A
    plain = ResNet(depth=56, family="cifar", residual=False)  # its plain counterpart, same parameters
    scores = cifar(torch.zeros(8, 3, 32, 32))                 # (8, 10)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ai_scratch.base import Classifier, check_choice
from ai_scratch.cnn_revolution.alexnet import scaled
from ai_scratch.cnn_revolution.optim import LRSchedule, per_step, sgd_with_schedule
from ai_scratch.info import ModelInfo

Family = Literal["imagenet", "cifar"]
Stem = Literal["imagenet", "cifar"]
Shortcut = Literal["A", "B", "C"]
StrideOn = Literal["1x1", "3x3"]

#: Table 1: the block and the number of blocks of each stage (conv2_x to conv5_x), by depth.
IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)  # the 3x3 convolutions' channels in conv2_x to conv5_x
CIFAR_WIDTHS = (16, 32, 64)  # Section 4.2: the filters on the 32x32, 16x16 and 8x8 maps

#: Table 1's last row: FLOPs (multiply-adds) of one 224x224 image.
PAPER_FLOPS: dict[int, float] = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}
#: Table 6: parameters of the CIFAR-10 ResNets, in millions, by depth.
PAPER_CIFAR_PARAMETERS_M: dict[int, float] = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
#: ``torchvision.models.resnet{depth}(weights=None)``, 1000 classes.
TORCHVISION_PARAMETERS: dict[int, int] = {
    18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808,
}  # fmt: skip
#: The options that make the ImageNet family torchvision's (``shortcut="B"`` is the default anyway).
TORCHVISION_OPTIONS: dict[str, Any] = {"stride_on": "3x3", "shortcut": "B"}


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1; no bias: the BN that follows has its own shift."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


# --------------------------------------------------------------------------------- shortcuts
class ZeroPadShortcut(nn.Module):
    """Option A: identity on the input's channels, zeros for the new ones; no parameters.

    Across a change of map size the identity is "performed with a stride of 2": every other
    position of every other row, the same positions a stride-2 convolution centres on.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"zero padding cannot reduce channels: {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))  # pad the channel axis at its end

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def projection(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Options B and C: ``W_s x`` of eq. 2, a 1x1 convolution (strided across a size change) and BN."""
    return nn.Sequential(OrderedDict(conv=conv1x1(in_channels, out_channels, stride), bn=nn.BatchNorm2d(out_channels)))


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of a block under option A, B or C (Section 3.3)."""
    changes = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes):
        return projection(in_channels, out_channels, stride)
    if changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()


# --------------------------------------------------------------------------------- blocks
class ResidualBlock(nn.Module):
    """What the two blocks share: ``y = relu(F(x, {W_i}) + shortcut(x))``, or ``y = relu(F(x))`` in a
    plain network (no ``shortcut``). Subclasses build the layers of ``F`` (:meth:`residual_function`),
    a ``relu`` and the ``shortcut``, and name their ``last_bn``."""

    relu: nn.ReLU
    shortcut: nn.Module | None

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends ``F``: at scale 0, the block starts as its shortcut."""
        raise NotImplementedError

    def residual_function(self, x: Tensor) -> Tensor:
        """``F(x, {W_i})``: what the stacked layers compute, before the addition."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual_function(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # eq. 1 (identity, option A) or eq. 2 (projection)
        return self.relu(out)  # "the second nonlinearity after the addition"


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (Figure 5 left): ``y = relu(F(x) + shortcut(x))``, ``F = BN W_2 relu(BN W_1 x)``.

    Args:
        in_channels: channels of the input.
        channels: channels of the two convolutions (and of the output: ``expansion = 1``).
        stride: 2 for the first block of a stage that halves the map size (on the first 3x3).
        shortcut: the shortcut module, or ``None`` for a plain network's block (``y = relu(F(x))``).
        stride_on: ignored (a basic block has its stride on its first 3x3 in any variant).
    """

    expansion = 1

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, shortcut: nn.Module | None = None, stride_on: StrideOn = "1x1"
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def residual_function(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(ResidualBlock):
    """1x1, 3x3, 1x1 (Figure 5 right): reduce to ``channels``, convolve, restore to ``4 * channels``.

    Args:
        in_channels, stride, shortcut: as for :class:`BasicBlock`.
        channels: channels of the 1x1 reduction and the 3x3; the output has ``4 * channels``.
        stride_on: ``"1x1"``, the paper's (the first 1x1 has stride 2 in conv3_1, conv4_1, conv5_1),
            or ``"3x3"``, torchvision's "ResNet v1.5" (the 3x3 then sees the full-size maps: more
            multiply-adds, same parameters).
    """

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, shortcut: nn.Module | None = None, stride_on: StrideOn = "1x1"
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, channels, stride if stride_on == "1x1" else 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride if stride_on == "3x3" else 1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def residual_function(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


BLOCKS: dict[str, type[BasicBlock | Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


# ----------------------------------------------------------------------------------------- model
def paper_lr_factor(progress: float, milestones: Sequence[float]) -> float:
    """The rate relative to the first: divided by 10 at each milestone (fractions of the run) passed."""
    return 0.1 ** sum(progress >= milestone for milestone in milestones)


def cosine_lr_factor(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


class ResNet(Classifier):
    """ResNet (He et al., 2015): a stem, stages of residual blocks, global average pooling, a linear layer.

    Args:
        depth: weighted layers: 18, 34, 50, 101 or 152 for ``family="imagenet"`` (Table 1); 6n + 2
            for ``family="cifar"`` (20, 32, 44, 56, 110, 1202 in the paper).
        family: ``"imagenet"`` (four stages of 64 to 512 channels, Table 1) or ``"cifar"`` (three
            stages of 16, 32 and 64 channels, basic blocks, Section 4.2).
        num_classes: number of classes; ``None``: 1000 for imagenet, 10 for cifar.
        in_channels: channels of the input images.
        input_size: side of the square input; ``None``: 224 for imagenet, 32 for cifar. The network
            ends in global average pooling, so it runs on any size; this one is the example input.
        stem: ``"imagenet"`` (7x7/2 convolution, BN, ReLU, 3x3/2 max pooling) or ``"cifar"`` (3x3/1
            convolution, BN, ReLU); ``None``: the family's own.
        width: multiplies the channels of every stage (and the stem).
        residual: ``False`` builds the plain counterpart: the same layers, no shortcuts.
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (Section 3.3); ``None``: B for imagenet, A for cifar.
        stride_on: where a downsampling bottleneck has its stride: ``"1x1"`` (paper) or ``"3x3"``
            (torchvision); the same parameters either way.
        zero_init_last_bn: start every block's last BN scale at 0, so that each block begins as its
            shortcut (not in the paper; needs ``residual=True``).
        learning_rate, momentum, weight_decay: SGD (0.1, 0.9, 1e-4 in the paper, for both families).
        lr_schedule: ``"paper"`` (divided by 10 at each of ``lr_milestones``), ``"cosine"`` (to
            zero over the run) or ``"constant"``; stepped every optimizer step.
        lr_milestones: fractions of the run's optimizer steps; ``None``: (0.5, 0.75) for cifar
            (32k and 48k of 64k iterations), (1/3, 2/3) for imagenet.
        grad_norm_every_n_steps: log ``grad_norm/block_N`` every this many steps; 0 turns it off.

    Raises:
        ValueError: for an unknown option or depth, a width or milestone out of range, or zero
            initialisation of a plain network.
    """

    INFO = ModelInfo(
        name="resnet",
        full_name="ResNet",
        module=2,
        pattern="engine-based",
        year_introduced=2015,
        authors=("Kaiming He", "Xiangyu Zhang", "Shaoqing Ren", "Jian Sun"),
        paper_title="Deep Residual Learning for Image Recognition",
        key_innovations=(
            "residual learning: stacked layers fit F(x) = H(x) - x and a shortcut adds x back",
            "identity shortcuts that add neither parameters nor computation",
            "bottleneck blocks (1x1, 3x3, 1x1) that make 50 to 152 layers affordable",
            "networks of 152 layers on ImageNet and 1202 on CIFAR-10 that still optimise well",
            "batch normalisation after every convolution, global average pooling, no dropout",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="softmax cross-entropy",
        optimizer="SGD with momentum 0.9, weight decay 1e-4, learning rate 0.1 divided by 10 at set points",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "see the degradation problem: a deeper plain network trains worse than a shallower one",
            "implement identity, zero-padding and projection shortcuts and count what each costs",
            "compare gradient norms through the blocks of plain and residual networks",
            "build the basic and bottleneck blocks and match Table 1, Table 6 and torchvision's counts",
        ),
        estimated_training_time="hours",
    )

    def __init__(
        self,
        depth: int = 18,
        family: Family = "imagenet",
        num_classes: int | None = None,
        in_channels: int = 3,
        input_size: int | None = None,
        stem: Stem | None = None,
        width: float = 1.0,
        residual: bool = True,
        shortcut: Shortcut | None = None,
        stride_on: StrideOn = "1x1",
        zero_init_last_bn: bool = False,
        learning_rate: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_schedule: LRSchedule = "paper",
        lr_milestones: Sequence[float] | None = None,
        grad_norm_every_n_steps: int = 50,
    ) -> None:
        check_choice("family", family, Family)
        stem = stem if stem is not None else family
        shortcut = shortcut if shortcut is not None else ("B" if family == "imagenet" else "A")
        check_choice("stem", stem, Stem)
        check_choice("shortcut", shortcut, Shortcut)
        check_choice("stride_on", stride_on, StrideOn)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        if family == "imagenet":
            if depth not in IMAGENET_LAYOUTS:
                raise ValueError(f"family='imagenet' has depths {tuple(IMAGENET_LAYOUTS)} (Table 1), got {depth}")
            block_name, blocks_per_stage = IMAGENET_LAYOUTS[depth]
            base_widths = IMAGENET_WIDTHS
        else:
            if depth < 8 or (depth - 2) % 6:
                raise ValueError(f"family='cifar' has depths 6n + 2 (20, 32, 44, 56, 110, 1202 in the paper), got {depth}")
            block_name, blocks_per_stage = "basic", ((depth - 2) // 6,) * 3
            base_widths = CIFAR_WIDTHS
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        if zero_init_last_bn and not residual:
            raise ValueError("zero_init_last_bn needs residual=True: a plain network's blocks would all output zero")
        if grad_norm_every_n_steps < 0:
            raise ValueError(f"grad_norm_every_n_steps must be 0 (off) or positive, got {grad_norm_every_n_steps}")
        if lr_milestones is None:
            lr_milestones = (0.5, 0.75) if family == "cifar" else (1 / 3, 2 / 3)
        lr_milestones = tuple(float(m) for m in lr_milestones)
        if any(not 0 < m < 1 for m in lr_milestones) or list(lr_milestones) != sorted(lr_milestones):
            raise ValueError(f"lr_milestones must be increasing fractions of the run in (0, 1), got {lr_milestones}")
        num_classes = num_classes if num_classes is not None else (1000 if family == "imagenet" else 10)
        input_size = input_size if input_size is not None else (224 if family == "imagenet" else 32)
        if input_size < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")

        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()
        # the resolved defaults, so that a checkpoint rebuilds the same network
        self.hparams.update(
            num_classes=num_classes, input_size=input_size, stem=stem, shortcut=shortcut, lr_milestones=list(lr_milestones)
        )
        self.depth, self.family = depth, family

        widths = [scaled(w, width) for w in base_widths]
        stem_layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stem == "imagenet":
            stem_layers["conv"] = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        else:
            stem_layers["conv"] = conv3x3(in_channels, widths[0])
        stem_layers["bn"] = nn.BatchNorm2d(widths[0])
        stem_layers["relu"] = nn.ReLU(inplace=True)
        if stem == "imagenet":
            stem_layers["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
        self.stem = nn.Sequential(stem_layers)

        block = BLOCKS[block_name]
        channels_in = widths[0]
        self.stage_names: tuple[str, ...] = tuple(f"layer{i + 1}" for i in range(len(widths)))
        for index, (name, channels, count) in enumerate(zip(self.stage_names, widths, blocks_per_stage, strict=True)):
            stride = 1 if index == 0 else 2  # conv3_1, conv4_1, conv5_1 downsample
            stage = []
            for b in range(count):
                out_channels = channels * block.expansion
                block_stride = stride if b == 0 else 1
                link = make_shortcut(shortcut, channels_in, out_channels, block_stride) if residual else None
                stage.append(block(channels_in, channels, block_stride, link, stride_on))
                channels_in = out_channels
            self.add_module(name, nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels_in, num_classes)

        self.set_sizes((in_channels, input_size, input_size), (num_classes,))
        self.last_block_gradient_norms: dict[str, float] = {}  # the latest norms handed to the loggers
        self.initialise_weights(zero_init_last_bn)

    @property
    def feature_map_layers(self) -> tuple[str, ...]:
        """The stem and every stage, for the feature-map figure."""
        return ("stem", *self.stage_names)

    def initialise_weights(self, zero_init_last_bn: bool = False) -> None:
        """He et al.'s normal initialisation ([13] of the paper) for the convolutions, BN at identity,
        PyTorch's default for the linear layer; optionally each block's last BN scale at zero."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_last_bn:
            for block in self.blocks():
                nn.init.zeros_(block.last_bn.weight)

    @classmethod
    def paper_sized(cls, depth: int = 34) -> ResNet:
        """ResNet-34 of Table 1, the residual network that Section 4.1 sets against its plain twin:
        224x224 ImageNet images, 1000 classes, option B shortcuts (projections where the shape
        changes); 21,797,672 parameters. Table 1 gives its cost as 3.6 billion "FLOPs", which are
        multiply-adds. ``depth`` picks another column of Table 1 (18, 50, 101, 152).
        """
        return cls(depth=depth)

    def blocks(self) -> list[ResidualBlock]:
        """Every residual (or plain) block, from the input to the output: block_1, block_2, ..."""
        return [block for name in self.stage_names for block in getattr(self, name)]

    def forward(self, image: Tensor) -> Tensor:
        x = self.stem(image)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    # ------------------------------------------------------------------ gradient norms
    def block_gradient_norms(self) -> dict[str, Tensor]:
        """The L2 norm of the gradient of each block's parameters, ``{"block_1": norm, ...}``.

        Blocks whose parameters have no gradient yet are left out. Called by hand after a
        ``backward()`` under a ``GradScaler``, it measures the scaled gradients; the Trainer's
        ``on_before_optimizer_step`` (below) sees them unscaled.
        """
        norms = {}
        for index, block in enumerate(self.blocks(), start=1):
            grads = [p.grad for p in block.parameters() if p.grad is not None]
            if grads:
                norms[f"block_{index}"] = torch.nn.utils.get_total_norm(grads).detach()
        return norms

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Every ``grad_norm_every_n_steps`` steps, hand ``grad_norm/block_N`` to the loggers at this step.

        Here, not in ``on_after_backward``: under ``precision="16-mixed"`` the gradients after
        backward are multiplied by the GradScaler's loss scale (65,536 at first), and Lightning
        unscales them just before this hook; with gradient accumulation it also runs once per
        optimizer step rather than once per micro-batch.

        Straight to the loggers, not through ``self.log``: Lightning passes step values on only every
        ``log_every_n_steps`` steps, and then the latest one logged, so a value computed at step 0
        would be recorded as step 49, and again at 99 if nothing newer came. Under DDP the gradients
        are already averaged here, so every process has the same norms; the loggers write on rank 0.
        """
        every = self.hparams.grad_norm_every_n_steps
        if every and self.global_step % every == 0:
            norms = {f"grad_norm/{name}": float(value) for name, value in self.block_gradient_norms().items()}
            self.last_block_gradient_norms = norms
            if norms:
                for logger in self.loggers:
                    logger.log_metrics(norms, step=self.global_step)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """SGD, momentum 0.9, weight decay 1e-4; the rate divided by 10 at ``lr_milestones`` of the run.

        The schedule steps with the optimizer, as the paper counts iterations; the run's length is
        the trainer's ``estimated_stepping_batches`` (from ``max_epochs`` or ``max_steps``).
        """
        milestones = tuple(self.hparams.lr_milestones)
        return sgd_with_schedule(
            self,
            paper=per_step(self, lambda progress: paper_lr_factor(progress, milestones)),
            cosine=per_step(self, cosine_lr_factor),
        )


# --------------------------------------------------------------------------------- builders
def resnet18(**options: Any) -> ResNet:
    return ResNet(depth=18, **options)


def resnet34(**options: Any) -> ResNet:
    return ResNet(depth=34, **options)


def resnet50(**options: Any) -> ResNet:
    return ResNet(depth=50, **options)


def resnet101(**options: Any) -> ResNet:
    return ResNet(depth=101, **options)


def resnet152(**options: Any) -> ResNet:
    return ResNet(depth=152, **options)


def cifar_resnet(depth: int, **options: Any) -> ResNet:
    """ResNet-20/32/44/56/110/1202 of Section 4.2 (any 6n + 2)."""
    return ResNet(depth=depth, family="cifar", **options)
