"""GoogLeNet, the first Inception network (Szegedy et al., 2014).

Paper: C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke and
A. Rabinovich, "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842, 2014). Section 4 gives
the Inception module, Section 5 the network (Table 1) and its auxiliary classifiers, Section 6 the
training recipe.

The idea (Sections 3 and 4): approximate the optimal *sparse* structure of a vision network with
*dense* building blocks. An Inception module looks at its input at several scales at once, 1x1,
3x3 and 5x5 convolutions and a 3x3 max pooling side by side, and concatenates the four outputs
along the channel axis ("filter concatenation"). Done naively the 5x5 branch and the pooling branch
make every module wider and more expensive than the last; so 1x1 convolutions *reduce dimensions*
before the 3x3 and 5x5 convolutions and *project* the pooled maps ("pool proj"), each followed by a
ReLU. With them GoogLeNet is 22 layers deep yet costs about 1.5 billion multiply-adds at inference.

    y = concat( relu(W_1x1 * x),
                relu(W_3x3 * relu(W_3x3red * x)),
                relu(W_5x5 * relu(W_5x5red * x)),
                relu(W_proj * maxpool_3x3(x)) )                     (Figure 2b)

Table 1 (input 224x224, "#3x3 reduce" and "#5x5 reduce" the 1x1 filters before the 3x3 and 5x5):

    type              patch/stride  output     #1x1 #3x3red #3x3 #5x5red #5x5 pool proj  params
    convolution       7x7/2         112x112x64                                          2.7K
    max pool          3x3/2          56x56x64
    convolution       3x3/1          56x56x192        64     192                         112K
    max pool          3x3/2          28x28x192
    inception (3a)                   28x28x256    64    96   128     16     32     32    159K
    inception (3b)                   28x28x480   128   128   192     32     96     64    380K
    max pool          3x3/2          14x14x480
    inception (4a)                   14x14x512   192    96   208     16     48     64    364K
    inception (4b)                   14x14x512   160   112   224     24     64     64    437K
    inception (4c)                   14x14x512   128   128   256     24     64     64    463K
    inception (4d)                   14x14x528   112   144   288     32     64     64    580K
    inception (4e)                   14x14x832   256   160   320     32    128    128    840K
    max pool          3x3/2           7x7x832
    inception (5a)                    7x7x832    256   160   320     32    128    128   1072K
    inception (5b)                    7x7x1024   384   192   384     48    128    128   1388K
    avg pool          7x7/1           1x1x1024
    dropout (40%)                     1x1x1024
    linear                            1x1x1000                                         1000K
    softmax                           1x1x1000

The params column sums to 6,797.7K, the "about 6.8M" usually quoted. It counts weights without
biases, with K = 1024 (the second convolution's 64 x 64 + 9 x 64 x 192 = 114,688 weights = 112K):
this file's main network has 6,990,272 weights (6,826.4K), within 0.5% of the column's sum, and
6,998,552 parameters with biases (:data:`PAPER_MAIN_PARAMETERS`); a few rows of the column are
rough (the 7x7 convolution has 7 x 7 x 3 x 64 = 9,408 weights, not 2.7K). The two auxiliary
classifiers add 6,379,728 parameters, used in training only: 13,378,280 in all
(:data:`PAPER_PARAMETERS_WITH_AUX`). One 224x224 image costs 1.58 billion multiply-adds here, the
paper's "1.5 billion" (Table 1's ops column, 1,502M, also counts the first convolution at 34M
where its 9,408 weights over 112x112 positions make 118M).

The stem is the table's first six rows with the local response normalisations (LRN) that Figure 3
draws after the first max pooling and after the second convolution. Every convolution, including
those inside the Inception modules, uses a rectified linear activation (Section 5).

Auxiliary classifiers (Section 5): the middle layers' features should be discriminative, and the
gradient should reach them undiminished; so two small classifiers sit on the outputs of (4a) and
(4d), and their losses are added to the total loss with weight 0.3 during training; at inference
they are discarded. Each is, exactly as the paper lists it:

* average pooling 5x5, stride 3: 4x4x512 for (4a), 4x4x528 for (4d);
* 1x1 convolution with 128 filters and ReLU;
* fully connected layer with 1024 units and ReLU;
* dropout with 70% of the outputs dropped;
* linear layer with softmax loss, over the same classes as the main classifier.

    L = L_main + 0.3 (L_aux1 + L_aux2)

Training (Section 6): asynchronous SGD with momentum 0.9 and a fixed schedule that decreases the
learning rate by 4% every 8 epochs; Polyak averaging for the final model. The paper gives neither
the first learning rate nor a weight decay nor an initialisation: here 0.01 and 2e-4, those of the
BVLC Caffe reproduction (``bvlc_googlenet``), and He et al.'s normal initialisation for the
convolutions (the paper's network had no batch normalisation, and a 22-layer ReLU stack needs
variance-preserving weights to start).

Where torchvision's ``googlenet`` differs (each a named option here; :data:`TORCHVISION_OPTIONS`
sets them all, :meth:`GoogLeNet.torchvision_variant` builds that network):

* ``batch_norm=True``: BatchNorm (eps 0.001) after every convolution, whose bias is then dropped;
* ``lrn=False``: no local response normalisation in the stem;
* ``branch3_kernel=3``: a 3x3 kernel in the branch the paper calls 5x5 (a slip in the original
  port, kept for the pretrained weights);
* ``aux_pool="adaptive"``: adaptive average pooling to 4x4 in the auxiliary classifiers (the same
  as 5x5/3 on 14x14 maps), and dropout 0.7 there as in the paper;
* ``dropout=0.2`` before the last linear layer, not 0.4;
* ``maxpool4_kernel=2``: a 2x2/2 max pooling before (5a), not 3x3/2 (same 7x7 output, no parameters).

At 224x224 and 1000 classes the torchvision variant has exactly as many parameters as
``torchvision.models.googlenet(aux_logits=True)`` (13,004,888) and, with ``aux_logits=False``, as
the network without auxiliary classifiers (6,624,904).

Small inputs: ``stem="cifar"`` replaces the table's stem (which divides the side by 8) by a single
3x3 convolution to the 192 channels that (3a) expects, keeping all nine Inception modules and the
two max poolings between them; on 32x32 images (4a) and (4d) then see 16x16 maps and the paper's
5x5/3 auxiliary pooling still gives 4x4. ``width`` scales every channel count.

Example::

    model = GoogLeNet()                                   # Table 1, with the two auxiliary heads
    scores = model(torch.zeros(2, 3, 224, 224))           # (2, 1000): the main classifier only
    small = GoogLeNet(num_classes=10, input_size=32, stem="cifar", width=0.25)
    main, aux1, aux2 = small.train().forward_with_aux(torch.zeros(2, 3, 32, 32))
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ai_scratch.base import Classifier, check_choice
from ai_scratch.cnn_revolution.alexnet import scaled
from ai_scratch.cnn_revolution.optim import LRSchedule, per_epoch, sgd_with_schedule
from ai_scratch.info import ModelInfo

Stem = Literal["imagenet", "cifar"]
AuxPool = Literal["paper", "adaptive"]

#: Table 1, the nine Inception modules: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

#: Table 1's params column, in its own units (K = 1024 weights, biases not counted).
PAPER_PARAMS_COLUMN_K: dict[str, float] = {
    "conv1": 2.7, "conv2+conv3": 112, "3a": 159, "3b": 380, "4a": 364, "4b": 437, "4c": 463,
    "4d": 580, "4e": 840, "5a": 1072, "5b": 1388, "linear": 1000,
}  # fmt: skip

#: Parameters of this file's paper-faithful network at 224x224 and 1000 classes: without the
#: auxiliary classifiers (the network used at inference) and with them (the one trained).
PAPER_MAIN_PARAMETERS = 6_998_552
PAPER_PARAMETERS_WITH_AUX = 13_378_280

#: The options that turn the paper's network into torchvision's ``googlenet``.
TORCHVISION_OPTIONS: dict[str, Any] = {
    "batch_norm": True,
    "lrn": False,
    "branch3_kernel": 3,
    "aux_pool": "adaptive",
    "dropout": 0.2,
    "maxpool4_kernel": 2,
}

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 1.0  # bvlc_googlenet's; the paper gives none
STEM_WIDTHS = (64, 64, 192)  # conv1 (7x7/2), conv2 (1x1 reduce), conv3 (3x3)
AUX_CONV_CHANNELS, AUX_HIDDEN_UNITS, AUX_POOLED_SIDE = 128, 1024, 4


def _pool_side(side: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = True) -> int:
    """Output side of a pooling layer, as PyTorch computes it (a ceil-mode window must start inside)."""
    out = (side + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= side + padding:
        out -= 1
    return out


# --------------------------------------------------------------------------------- building blocks
class ConvUnit(nn.Sequential):
    """A convolution followed by a ReLU ("all the convolutions ... use rectified linear activation").

    With ``batch_norm`` (torchvision's variant, not the paper), a BatchNorm with eps 0.001 sits
    between them and the convolution has no bias, which the BatchNorm's shift would make redundant.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, batch_norm: bool = False
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batch_norm)
        )
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(out_channels, eps=0.001)
        layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class Inception(nn.Module):
    """The Inception module with dimension reductions (Figure 2b): four branches, concatenated.

    Args:
        in_channels: channels of the previous layer.
        ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj: Table 1's filter counts.
        batch_norm: see :class:`ConvUnit`.
        branch3_kernel: kernel of the "5x5" branch (5 in the paper, 3 in torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        batch_norm: bool = False,
        branch3_kernel: int = 5,
    ) -> None:
        super().__init__()
        self.branch1 = ConvUnit(in_channels, ch1x1, 1, batch_norm=batch_norm)
        self.branch2 = nn.Sequential(
            ConvUnit(in_channels, ch3x3_reduce, 1, batch_norm=batch_norm),  # 1x1 reduction before the costly 3x3
            ConvUnit(ch3x3_reduce, ch3x3, 3, padding=1, batch_norm=batch_norm),
        )
        self.branch3 = nn.Sequential(
            ConvUnit(in_channels, ch5x5_reduce, 1, batch_norm=batch_norm),  # and before the 5x5
            ConvUnit(ch5x5_reduce, ch5x5, branch3_kernel, padding=branch3_kernel // 2, batch_norm=batch_norm),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            ConvUnit(in_channels, pool_proj, 1, batch_norm=batch_norm),  # "pool proj": keeps the width in check
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        # filter concatenation: the same positions seen at several scales, stacked as channels
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class AuxiliaryClassifier(nn.Module):
    """An auxiliary classifier of Section 5, on the output of (4a) or (4d); used only in training.

    Args:
        in_channels: channels of the module it reads (512 for 4a, 528 for 4d).
        num_classes: the same classes as the main classifier.
        in_side: side of the maps it reads (14 at 224x224), which fixes the first linear layer's inputs.
        pool: ``"paper"``: 5x5 average pooling with stride 3; ``"adaptive"``: adaptive to 4x4 (torchvision).
        conv_channels, hidden_units: 128 and 1024 in the paper (scaled by ``width``).
        dropout: the fraction of the hidden units dropped, 0.7 in the paper.
        batch_norm: see :class:`ConvUnit`.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        in_side: int,
        pool: AuxPool = "paper",
        conv_channels: int = AUX_CONV_CHANNELS,
        hidden_units: int = AUX_HIDDEN_UNITS,
        dropout: float = 0.7,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if pool == "paper":
            self.pool: nn.Module = nn.AvgPool2d(5, stride=3)
            side = _pool_side(in_side, 5, 3, ceil_mode=False)
        else:
            self.pool = nn.AdaptiveAvgPool2d(AUX_POOLED_SIDE)
            side = AUX_POOLED_SIDE
        self.conv = ConvUnit(in_channels, conv_channels, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(conv_channels * side * side, hidden_units)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_units, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.pool(x))
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))


# ----------------------------------------------------------------------------------------- model
def paper_lr_factor(epoch: int) -> float:
    """Section 6: "decreasing the learning rate by 4% every 8 epochs", relative to the first rate."""
    return 0.96 ** (epoch // 8)


class GoogLeNet(Classifier):
    """GoogLeNet (Szegedy et al., 2014): Table 1's stem, nine Inception modules, two auxiliary heads.

    ``forward`` gives the main classifier's scores (batch, classes), in training as at inference.
    :meth:`forward_with_aux` gives ``(main, aux1, aux2)``, the auxiliary scores in training mode and
    ``None`` otherwise; :meth:`training_step` adds their losses with weight ``aux_weight``.

    Args:
        num_classes: number of classes (1000 in the paper).
        in_channels: channels of the input images.
        input_size: side of the square input (224 in the paper).
        stem: ``"imagenet"``, Table 1's stem (7x7/2 convolution, max pool, LRN, 1x1 and 3x3
            convolutions, LRN, max pool), or ``"cifar"``, one 3x3 convolution to (3a)'s 192 input
            channels without pooling, for small images; the Inception modules are the same.
        width: multiplies every channel count (convolutions, auxiliary 128 and 1024), at least 1 each.
        aux_logits: build the two auxiliary classifiers on (4a) and (4d) (used in training only).
        aux_weight: weight of each auxiliary loss in the training loss (0.3 in the paper).
        aux_pool: ``"paper"`` (5x5/3 average pooling) or ``"adaptive"`` (to 4x4, torchvision).
        dropout: dropout before the last linear layer (0.4 in the paper, 0.2 in torchvision).
        aux_dropout: dropout in the auxiliary classifiers (0.7 in the paper and in torchvision).
        batch_norm: BatchNorm (eps 0.001) after each convolution, without conv biases (torchvision).
        lrn: the two local response normalisations of the stem (paper: yes; torchvision: no).
        branch3_kernel: kernel of the "5x5" branch (5 in the paper, 3 in torchvision); odd.
        maxpool4_kernel: kernel of the max pooling before (5a) (3 in the paper, 2 in torchvision).
        learning_rate, momentum, weight_decay: SGD (the paper: momentum 0.9; 0.01 and 2e-4 from
            the BVLC Caffe reproduction, as the paper gives neither).
        lr_schedule: ``"paper"`` (4% less every 8 epochs), ``"cosine"`` (to zero over
            ``max_epochs``) or ``"constant"``.

    Raises:
        ValueError: for an unknown option, a width, dropout, kernel or weight out of range, or an
            input too small for the stem and the auxiliary pooling.
    """

    INFO = ModelInfo(
        name="googlenet",
        full_name="GoogLeNet (Inception v1)",
        module=2,
        pattern="engine-based",
        year_introduced=2014,
        authors=(
            "Christian Szegedy", "Wei Liu", "Yangqing Jia", "Pierre Sermanet", "Scott Reed",
            "Dragomir Anguelov", "Dumitru Erhan", "Vincent Vanhoucke", "Andrew Rabinovich",
        ),
        paper_title="Going Deeper with Convolutions",
        key_innovations=(
            "the Inception module: 1x1, 3x3 and 5x5 convolutions and max pooling side by side, concatenated",
            "1x1 convolutions that reduce dimensions before expensive convolutions (network in network)",
            "a 22-layer network with about 12 times fewer parameters than AlexNet and 1.5G multiply-adds",
            "auxiliary classifiers on intermediate layers, their losses added with weight 0.3 in training",
            "global average pooling before a single linear classifier instead of large fully connected layers",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="softmax cross-entropy of the main classifier plus 0.3 times that of each auxiliary classifier",
        optimizer="SGD with momentum 0.9, learning rate decreased by 4% every 8 epochs",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "build a multi-branch module whose outputs are concatenated along the channel axis",
            "see how 1x1 reductions cut the parameters and multiply-adds of 3x3 and 5x5 convolutions",
            "train with auxiliary losses and drop the auxiliary heads at inference",
            "match Table 1 layer by layer and count the parameters of the paper's and torchvision's variants",
        ),
        estimated_training_time="hours",
    )

    #: the layers whose outputs the feature-map figure shows (names exist for both stems)
    feature_map_layers = ("stem.conv1", "inception3a", "inception4a", "inception5b")

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int = 224,
        stem: Stem = "imagenet",
        width: float = 1.0,
        aux_logits: bool = True,
        aux_weight: float = 0.3,
        aux_pool: AuxPool = "paper",
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        batch_norm: bool = False,
        lrn: bool = True,
        branch3_kernel: int = 5,
        maxpool4_kernel: int = 3,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 2e-4,
        lr_schedule: LRSchedule = "paper",
    ) -> None:
        check_choice("stem", stem, Stem)
        check_choice("aux_pool", aux_pool, AuxPool)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        for name, p in (("dropout", dropout), ("aux_dropout", aux_dropout)):
            if not 0 <= p < 1:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must not be negative, got {aux_weight}")
        if branch3_kernel < 1 or branch3_kernel % 2 == 0:
            raise ValueError(f"branch3_kernel must be odd and positive (5 in the paper, 3 in torchvision), got {branch3_kernel}")
        if maxpool4_kernel not in (2, 3):
            raise ValueError(f"maxpool4_kernel must be 3 (paper) or 2 (torchvision), got {maxpool4_kernel}")
        side_4a = self._side_at_4a(stem, input_size)
        if side_4a < 1 or _pool_side(side_4a, maxpool4_kernel, 2) < 1:
            raise ValueError(f"input_size {input_size} is too small for stem={stem!r}; use stem='cifar' for small images")
        if aux_logits and aux_pool == "paper" and side_4a < 5:
            raise ValueError(
                f"the paper's 5x5/3 auxiliary pooling needs maps of at least 5x5 at (4a); input_size {input_size} "
                f"with stem={stem!r} gives {side_4a}x{side_4a}: use stem='cifar', aux_pool='adaptive' or aux_logits=False"
            )
        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()
        self.aux_weight = aux_weight

        c1, c2, c3 = (scaled(c, width) for c in STEM_WIDTHS)
        if stem == "imagenet":
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv1=ConvUnit(in_channels, c1, 7, stride=2, padding=3, batch_norm=batch_norm),
                pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
            if lrn:
                layers["norm1"] = nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)
            layers["conv2"] = ConvUnit(c1, c2, 1, batch_norm=batch_norm)  # "3x3 reduce" of Table 1's second row
            layers["conv3"] = ConvUnit(c2, c3, 3, padding=1, batch_norm=batch_norm)
            if lrn:
                layers["norm2"] = nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)
            layers["pool2"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            layers = OrderedDict(conv1=ConvUnit(in_channels, c3, 3, padding=1, batch_norm=batch_norm))
        self.stem = nn.Sequential(layers)

        def inception(name: str, in_ch: int) -> Inception:
            counts = (scaled(c, width) for c in INCEPTION_TABLE[name])
            return Inception(in_ch, *counts, batch_norm=batch_norm, branch3_kernel=branch3_kernel)

        self.inception3a = inception("3a", c3)
        self.inception3b = inception("3b", self.inception3a.out_channels)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception("4a", self.inception3b.out_channels)
        self.inception4b = inception("4b", self.inception4a.out_channels)
        self.inception4c = inception("4c", self.inception4b.out_channels)
        self.inception4d = inception("4d", self.inception4c.out_channels)
        self.inception4e = inception("4e", self.inception4d.out_channels)
        self.maxpool4 = nn.MaxPool2d(maxpool4_kernel, stride=2, ceil_mode=True)
        self.inception5a = inception("5a", self.inception4e.out_channels)
        self.inception5b = inception("5b", self.inception5a.out_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # 7x7/1 average pooling at 224x224: global average pooling
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.inception5b.out_channels, num_classes)

        self.aux1: AuxiliaryClassifier | None = None
        self.aux2: AuxiliaryClassifier | None = None
        if aux_logits:

            def auxiliary(in_ch: int) -> AuxiliaryClassifier:
                return AuxiliaryClassifier(
                    in_ch, num_classes, side_4a, aux_pool, scaled(AUX_CONV_CHANNELS, width), scaled(AUX_HIDDEN_UNITS, width), aux_dropout, batch_norm
                )

            self.aux1 = auxiliary(self.inception4a.out_channels)
            self.aux2 = auxiliary(self.inception4d.out_channels)

        self.set_sizes((in_channels, input_size, input_size), (num_classes,))
        self.initialise_weights()

    @staticmethod
    def _side_at_4a(stem: str, input_size: int) -> int:
        """Side of the maps that (4a) to (4e) and the auxiliary classifiers see (14 at 224x224)."""
        side = input_size
        if stem == "imagenet":
            side = (side + 2 * 3 - 7) // 2 + 1  # conv1 7x7/2, padding 3
            side = _pool_side(side, 3, 2) if side >= 1 else 0  # pool1
            side = _pool_side(side, 3, 2) if side >= 1 else 0  # pool2
        return _pool_side(side, 3, 2) if side >= 1 else 0  # maxpool3

    def initialise_weights(self) -> None:
        """The paper gives no initialisation. He et al.'s normal for the convolutions (variance kept
        through the ReLUs of a network without batch normalisation), N(0, 0.01) for linear layers,
        zero biases, BatchNorm at identity."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
            else:
                continue
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ forward
    def _forward(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        x = self.stem(x)  # 28x28x192 at 224x224
        x = self.inception3a(x)  # 28x28x256
        x = self.inception3b(x)  # 28x28x480
        x = self.maxpool3(x)  # 14x14x480
        x = self.inception4a(x)  # 14x14x512
        aux1 = self.aux1(x) if with_aux and self.aux1 is not None else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)  # 14x14x528
        aux2 = self.aux2(x) if with_aux and self.aux2 is not None else None
        x = self.inception4e(x)  # 14x14x832
        x = self.maxpool4(x)  # 7x7x832
        x = self.inception5a(x)
        x = self.inception5b(x)  # 7x7x1024
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x)), aux1, aux2

    @classmethod
    def paper_sized(cls) -> GoogLeNet:
        """GoogLeNet of Table 1, as trained: 224x224 ImageNet images, 1000 classes, nine Inception
        modules and the two auxiliary classifiers; 13,378,280 parameters, of which the network
        kept at inference has 6,998,552 (Table 1's column: "about 6.8M" weights). The forward pass
        that is counted is the inference one, without the auxiliary heads: 1.58 billion
        multiply-adds, the paper's "1.5 billion".
        """
        return cls()

    def forward(self, image: Tensor) -> Tensor:
        """The main classifier's scores; the auxiliary heads are not run."""
        return self._forward(image, with_aux=False)[0]

    def forward_with_aux(self, image: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(main, aux1, aux2)`` scores; the auxiliary ones only in training mode, else ``None``."""
        return self._forward(image, with_aux=self.training)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """``L = L_main + aux_weight * (L_aux1 + L_aux2)`` (Section 5); ``train_loss`` is this total,
        ``train_main_loss`` the part comparable with ``val_loss``; the accuracy is the main head's."""
        inputs, target = batch
        scores, aux1, aux2 = self.forward_with_aux(inputs)
        main_loss = self.criterion(scores, target)
        parts = {"train_main_loss": main_loss.detach()}
        loss = main_loss
        if aux1 is not None and aux2 is not None:
            aux1_loss, aux2_loss = self.criterion(aux1, target), self.criterion(aux2, target)
            loss = main_loss + self.aux_weight * (aux1_loss + aux2_loss)
            parts.update(train_aux1_loss=aux1_loss.detach(), train_aux2_loss=aux2_loss.detach())
        self.log_dict(parts, on_step=False, on_epoch=True, batch_size=len(target), sync_dist=True)
        self.log_classification("train", loss.detach(), scores.detach(), target)
        return loss

    def configure_optimizers(self) -> Any:
        """SGD with momentum 0.9; ``lr_schedule="paper"``: 4% less every 8 epochs (Section 6)."""
        return sgd_with_schedule(self, paper=per_epoch(paper_lr_factor))

    @classmethod
    def torchvision_variant(cls, **options: Any) -> GoogLeNet:
        """torchvision's ``googlenet``: :data:`TORCHVISION_OPTIONS`, then ``options`` on top."""
        return cls(**{**TORCHVISION_OPTIONS, **options})

