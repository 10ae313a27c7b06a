"""VGG, very deep networks of 3x3 convolutions (Simonyan and Zisserman, 2014).

Paper: K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", arXiv:1409.1556 (2014), ICLR 2015. Section 2 gives the architecture (Table 1) and the
parameter counts (Table 2), Section 3 the training and the testing.

The question is depth, with everything else fixed: stacks of 3x3 convolutions (stride 1, padding 1,
so a stack keeps the size of its maps) between five 2x2 max-poolings with stride 2; the number of
maps starts at 64 and doubles after each pooling up to 512; then the fully connected layers of
AlexNet (4096, 4096, 1000, softmax) with dropout 0.5 on the first two. Every hidden layer is
rectified (ReLU). From 11 weight layers (A) to 19 (E), Table 1 (``convK-N``: N maps of KxK kernels;
each row of a column is one layer; each stage ends in a max-pool)::

    A (11)       A-LRN (11)   B (13)       C (16)       D (16)       E (19)
    conv3-64     conv3-64     conv3-64     conv3-64     conv3-64     conv3-64
                 LRN          conv3-64     conv3-64     conv3-64     conv3-64
    maxpool
    conv3-128    conv3-128    conv3-128    conv3-128    conv3-128    conv3-128
                              conv3-128    conv3-128    conv3-128    conv3-128
    maxpool
    conv3-256    conv3-256    conv3-256    conv3-256    conv3-256    conv3-256
    conv3-256    conv3-256    conv3-256    conv3-256    conv3-256    conv3-256
                                           conv1-256    conv3-256    conv3-256
                                                                     conv3-256
    maxpool
    conv3-512 x2 (A, A-LRN, B); conv3-512 x2 + conv1-512 (C); x3 (D); x4 (E)
    maxpool
    the same for the fifth stage
    maxpool, FC-4096, FC-4096, FC-1000, soft-max

Why 3x3 (Section 2.3): two stacked 3x3 layers see a 5x5 field, three see 7x7, with two or three
rectifications instead of one and fewer weights. With ``C`` maps in and out, three 3x3 layers have
``3 (3^2 C^2) = 27 C^2`` weights and one 7x7 layer ``7^2 C^2 = 49 C^2``, 81% more. The 1x1
convolutions of C add non-linearity without changing the receptive field.

Parameters (Table 2, millions, at 224x224 and 1000 classes): A, A-LRN and B 133, C 134, D 138,
E 144. Most are in fc6, which reads 512 maps of 7x7: 25088 x 4096 + 4096 = 102,764,544. The
exact counts: A 132,863,336, A-LRN the same (LRN has no parameters), B 133,047,848,
C 133,638,952, D 138,357,544, E 143,667,240.

Training (Section 3.1): as AlexNet, mini-batch gradient descent with momentum: batch 256, momentum
0.9, weight decay 5e-4, dropout 0.5 on fc6 and fc7, learning rate 0.01 "decreased by a factor of 10
when the validation set accuracy stopped improving", three times in 370K iterations (74 epochs).
Initialisation: A from random weights, the deeper nets with A's first four convolutions and its
three fully connected layers, the rest random. The paper writes the random weights as "normal
distribution with the zero mean and 10^-2 variance"; taken literally (standard deviation 0.1) the
activations of A would grow about fivefold per 512-map layer, so ``init="paper"`` reads it as the
standard deviation 0.01 of AlexNet. It adds: "it is possible to initialise the weights without
pre-training by using the random initialisation procedure of Glorot & Bengio (2010)", the default
here (``init="glorot"``).

Where this file differs from the paper, or can:

* no pre-training from A for the deeper configurations: ``init`` chooses one random scheme;
* ``batch_norm=True`` puts a BatchNorm2d between each convolution and its ReLU (Ioffe and Szegedy
  came a year later; this is torchvision's ``vgg*_bn``). The convolutions keep their biases, as
  torchvision's do, though the normalisation's shift makes them redundant;
* ``adaptive_pool=7`` adds torchvision's adaptive average pool before fc6 (an identity at 224x224);
  0, the paper, has fc6 read the maps of the last pooling at whatever size they are. With
  ``adaptive_pool=7`` and ``init="kaiming"``, configurations A, B, D and E are torchvision's
  ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19`` (``_bn`` with ``batch_norm=True``), parameter for
  parameter in the same order; torchvision has no A-LRN or C;
* the paper's testing (Section 3.2) turns fc6 into a 7x7 convolution and fc7, fc8 into 1x1 ones to
  classify a whole uncropped image densely; not done here, nor the scale jittering of training;
* small images: each pooling halves the side (rounding down), so the five poolings take 224 to 7,
  32 to 1, and 28 to 0: ``pooling_stages`` keeps only the first poolings (4 for 28x28: 28, 14, 7, 3,
  1), the convolutions of the later stages then run at the last size; fc6 reads 512 x 1 x 1 at 32x32;
* ``width`` multiplies every layer's maps and hidden units (0.25: 16 to 128 maps, 1024 units).

Example::

    model = VGG("D")                              # VGG-16: 138,357,544 parameters
    small = VGG("A", num_classes=10, input_size=32, width=0.25, batch_norm=True)   # for CIFAR-10

Every constructor argument is a command-line flag, e.g. ``--model.config E``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ai_scratch.base import Classifier, check_choice
from ai_scratch.cnn_revolution.alexnet import LocalResponseNorm, check_options, initialise, scaled
from ai_scratch.cnn_revolution.optim import LRSchedule, divided_by_ten_on_plateau, sgd_with_schedule
from ai_scratch.info import ModelInfo

Config = Literal["A", "A-LRN", "B", "C", "D", "E"]
Init = Literal["paper", "glorot", "kaiming", "default"]

#: Table 1, one tuple per stage (each followed by a 2x2 max-pool): ``convK-N`` is a KxK convolution to N maps.
TABLE_1: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (("conv3-64",), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "A-LRN": (("conv3-64", "LRN"), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "B": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 2, ("conv3-512",) * 2, ("conv3-512",) * 2),
    "C": (
        ("conv3-64",) * 2,
        ("conv3-128",) * 2,
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 3, ("conv3-512",) * 3, ("conv3-512",) * 3),
    "E": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 4, ("conv3-512",) * 4, ("conv3-512",) * 4),
}

#: Weight layers of each configuration: its common name is VGG-<depth>.
DEPTH = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}

#: Table 2: parameters in millions at 224x224 and 1000 classes.
PAPER_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}

HIDDEN_UNITS = 4096  # fc6 and fc7, as AlexNet


def _parse(layer: str) -> tuple[int, int]:
    """``"conv3-256"`` -> (kernel 3, maps 256)."""
    kernel, maps = layer.removeprefix("conv").split("-")
    return int(kernel), int(maps)


class VGG(Classifier):
    """VGG (Simonyan and Zisserman, 2014): a configuration of Table 1, then three fully connected layers.

    ``forward`` maps images (batch, in_channels, input_size, input_size) to class scores (batch,
    num_classes) for softmax cross-entropy.

    The layers are ``features`` (``conv1_1``, ``relu1_1``, ... ``pool5``, the names of the released
    Caffe models; ``bn1_1`` ... with batch norm, ``norm1`` for A-LRN's LRN), ``avgpool`` and
    ``classifier`` (fc6, fc7, fc8).

    Args:
        config: a column of Table 1: ``"A"`` (VGG-11), ``"A-LRN"``, ``"B"`` (VGG-13), ``"C"``
            (VGG-16 with 1x1 convolutions), ``"D"`` (VGG-16) or ``"E"`` (VGG-19).
        num_classes: classes of the last layer (1000 for ImageNet).
        in_channels: channels of the input images (3).
        input_size: side of the square inputs (224). fc6's inputs are computed from it.
        width: multiplier of every layer's maps and hidden units (1 is the paper's).
        batch_norm: a BatchNorm2d after every convolution, before its ReLU (torchvision's ``_bn``).
        pooling_stages: how many of the five max-poolings to keep, from the first (5, the paper's).
        adaptive_pool: side of an adaptive average pool before fc6 (torchvision: 7); 0 for none.
        dropout: probability of dropping a unit of fc6 and fc7; 0 turns dropout off.
        init: ``"glorot"`` (the paper's note for training without pre-training), ``"paper"``
            (N(0, 0.01^2), biases 0), ``"kaiming"`` (torchvision's) or ``"default"`` (PyTorch's);
            see :func:`ai_scratch.cnn_revolution.alexnet.initialise`.
        learning_rate, momentum, weight_decay: of the SGD (Section 3.1: 0.01, 0.9, 5e-4).
        lr_schedule: ``"paper"`` (divided by 10 when ``val_accuracy`` stops improving, at most three
            times), ``"cosine"`` (to zero over ``max_epochs``) or ``"constant"``.
        lr_patience: epochs without improvement before the paper's division (ours, as AlexNet's).

    Raises:
        ValueError: for an unknown configuration or choice, a width, dropout, adaptive pool or
            number of pooling stages out of range, or an input too small for the poolings kept.
    """

    INFO = ModelInfo(
        name="vgg",
        full_name="VGGNet",
        module=2,
        pattern="engine-based",
        year_introduced=2014,
        authors=("Karen Simonyan", "Andrew Zisserman"),
        paper_title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
        key_innovations=(
            "depth as the one variable: 11 to 19 weight layers with everything else fixed",
            "only 3x3 convolutions, stride 1: stacks see 5x5 or 7x7 fields with fewer weights and more ReLUs",
            "a uniform design: the number of maps doubles after each 2x2 max-pooling, from 64 to 512",
            "1x1 convolutions (configuration C) as extra non-linearity",
            "scale jittering in training and dense, fully convolutional evaluation at test time",
            "local response normalisation found not to help (A-LRN against A)",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="softmax cross-entropy (multinomial logistic regression)",
        optimizer="SGD, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 when validation accuracy plateaus",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "see why a stack of 3x3 convolutions replaces a larger filter with fewer parameters",
            "count the parameters of configurations A to E and find most of them in fc6",
            "train networks of increasing depth and see where plain depth stops helping without batch norm",
            "compare initialisations (N(0, 0.01^2), Glorot, He) and batch normalisation on a deep plain network",
        ),
        estimated_training_time="minutes (32x32, width 0.25); weeks at full size on ImageNet",
    )

    def __init__(
        self,
        config: Config = "D",
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int = 224,
        width: float = 1.0,
        batch_norm: bool = False,
        pooling_stages: int = 5,
        adaptive_pool: int = 0,
        dropout: float = 0.5,
        init: Init = "glorot",
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: LRSchedule = "paper",
        lr_patience: int = 3,
    ) -> None:
        check_choice("config", config, Config)
        check_choice("init", init, Init)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        stages = TABLE_1[config]
        check_options(width, dropout, adaptive_pool, in_channels, lr_patience)
        if not 0 <= pooling_stages <= len(stages):
            raise ValueError(f"pooling_stages must be between 0 and {len(stages)}, got {pooling_stages}")
        side = input_size
        for stage in range(1, pooling_stages + 1):
            if side < 2:
                raise ValueError(
                    f"input_size {input_size} is too small for {pooling_stages} poolings: pool{stage} gets "
                    f"{side}x{side} maps; use pooling_stages={stage - 1} or larger inputs"
                )
            side //= 2
        feature_side = adaptive_pool or side

        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()

        layers: list[tuple[str, nn.Module]] = []
        channels = in_channels
        for stage, stage_layers in enumerate(stages, start=1):
            for index, layer in enumerate((name for name in stage_layers if name != "LRN"), start=1):
                kernel, maps = _parse(layer)
                maps = scaled(maps, width)
                layers.append((f"conv{stage}_{index}", nn.Conv2d(channels, maps, kernel, padding=kernel // 2)))
                if batch_norm:
                    layers.append((f"bn{stage}_{index}", nn.BatchNorm2d(maps)))
                layers.append((f"relu{stage}_{index}", nn.ReLU(inplace=True)))
                channels = maps
            if "LRN" in stage_layers:  # A-LRN: after conv1_1's ReLU, with AlexNet's constants
                layers.append((f"norm{stage}", LocalResponseNorm()))
            if stage <= pooling_stages:
                layers.append((f"pool{stage}", nn.MaxPool2d(2, stride=2)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool: nn.Module = nn.AdaptiveAvgPool2d(adaptive_pool) if adaptive_pool else nn.Identity()

        hidden = scaled(HIDDEN_UNITS, width)
        drop = (lambda name: [(name, nn.Dropout(dropout))]) if dropout > 0 else (lambda name: [])
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(channels * feature_side * feature_side, hidden)),
                    ("relu6", nn.ReLU(inplace=True)),
                    *drop("drop6"),
                    ("fc7", nn.Linear(hidden, hidden)),
                    ("relu7", nn.ReLU(inplace=True)),
                    *drop("drop7"),
                    ("fc8", nn.Linear(hidden, num_classes)),
                ]
            )
        )

        #: the rectified output of the last convolution of each stage, shown by the feature-map figure
        self.feature_map_layers = tuple(
            f"features.relu{stage}_{sum(name != 'LRN' for name in stage_layers)}"
            for stage, stage_layers in enumerate(stages, start=1)
        )
        self.set_sizes((in_channels, input_size, input_size), (num_classes,))
        initialise(self, init, std=0.01)

    @classmethod
    def paper_sized(cls, config: Config = "D") -> VGG:
        """VGG-16, configuration D of Table 1: 13 convolutions of 3x3 and 3 fully connected layers,
        224x224 ImageNet images, 1000 classes; 138,357,544 parameters, Table 2's 138 million
        (``config`` picks another column, "A" to "E"). The paper gives no operation count; He et al.
        (2015) put VGG-16 at 15.3 billion multiply-adds, its convolutions' share: with the
        fully connected layers one image costs 15.47 billion.
        """
        return cls(config)

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images)  # (batch, 512, 7, 7) at 224x224
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))  # fc6, fc7, fc8: class scores before the softmax

    def configure_optimizers(self) -> Any:
        """Section 3.1: SGD, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 on a plateau."""
        paper = divided_by_ten_on_plateau(self.hparams.learning_rate, self.hparams.lr_patience)
        return sgd_with_schedule(self, paper=paper)
