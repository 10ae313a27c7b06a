"""AlexNet, the network that won ImageNet 2012 (Krizhevsky, Sutskever and Hinton, 2012).

Paper: A. Krizhevsky, I. Sutskever and G. E. Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", Advances in Neural Information Processing Systems 25 (NIPS 2012),
1097-1105. Section 3 gives the architecture (Figure 2), Section 4 dropout and data augmentation,
Section 5 the training recipe.

Five convolutional and three fully connected layers, trained on 1.2 million ImageNet images on two
GTX 580 GPUs of 3 GB each. The ideas that made it work, in the paper's order of importance:

* **ReLU** (Section 3.1): ``f(x) = max(0, x)`` instead of the saturating ``tanh(x)`` or
  ``(1 + e^{-x})^{-1}``. A four-layer network on CIFAR-10 reached 25% training error six times
  faster with ReLUs (Figure 1). ``activation`` chooses among the three.
* **Two GPUs** (Section 3.2): half of each layer's kernels on each GPU, and "the GPUs communicate
  only in certain layers": conv2, conv4 and conv5 read only the maps on their own GPU, conv3 and the
  fully connected layers read all. That is a grouped convolution with ``groups=2`` in conv2, conv4
  and conv5. It cut top-1 / top-5 error by 1.7% / 1.2% against a one-GPU net with half the kernels.
* **Local response normalisation** (Section 3.3), after the ReLU of conv1 and conv2. With ``a^i_{x,y}``
  the rectified output of kernel ``i`` at ``(x, y)`` and ``N`` kernels in the layer::

      b^i_{x,y} = a^i_{x,y} / ( k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} (a^j_{x,y})^2 )^beta

  with ``k = 2``, ``n = 5``, ``alpha = 1e-4``, ``beta = 0.75``: "lateral inhibition" between
  adjacent maps. -1.4% / -1.2% top-1 / top-5 error. ``torch.nn.LocalResponseNorm`` divides its
  ``alpha`` by ``n``, so :class:`LocalResponseNorm` below passes it ``n * alpha``.
* **Overlapping pooling** (Section 3.4): 3x3 windows every 2 pixels (``z = 3 > s = 2``) after the
  normalised conv1 and conv2 and after conv5; -0.4% / -0.3% against ``z = s = 2``, and "slightly
  more difficult to overfit". ``pooling="non_overlapping"`` gives the 2x2 windows.
* **Dropout** (Section 4.2) with probability 0.5 on the outputs of the two hidden fully connected
  layers; without it the network overfits badly, with it it needs about twice as many iterations.
  The paper multiplies the outputs by 0.5 at test time; ``nn.Dropout`` instead divides by 0.5
  during training (the same expected values).

The layers at the paper's 224x224 input (``groups=2``; ``N`` maps of side ``S``)::

    layer   N x S x S       kernels                  parameters
    conv1   96 x 55 x 55    11x11x3, stride 4        96 x (11*11*3) + 96     =     34,944
    pool1   96 x 27 x 27    3x3, stride 2
    conv2  256 x 27 x 27    5x5x48, 2 groups         256 x (5*5*48) + 256    =    307,456
    pool2  256 x 13 x 13    3x3, stride 2
    conv3  384 x 13 x 13    3x3x256                  384 x (3*3*256) + 384   =    885,120
    conv4  384 x 13 x 13    3x3x192, 2 groups        384 x (3*3*192) + 384   =    663,936
    conv5  256 x 13 x 13    3x3x192, 2 groups        256 x (3*3*192) + 256   =    442,624
    pool5  256 x  6 x  6    3x3, stride 2
    fc6   4096              9216 = 256*6*6 inputs    4096 x 9216 + 4096      = 37,752,832
    fc7   4096                                       4096 x 4096 + 4096      = 16,781,312
    fc8   1000, softmax                              1000 x 4096 + 1000      =  4,097,000
                                                                    total    = 60,965,224

"60 million parameters", as the paper says. Without the groups (``groups=1``) conv2, conv4 and
conv5 read twice as many maps: 62,378,344. Two notes on the arithmetic:

* an 11x11 kernel at stride 4 gives 55 positions on 227 pixels, not on the 224 the paper names;
  conv1 here pads 2 pixels on each side, as torchvision does: ``(224 + 2*2 - 11) // 4 + 1 = 55``;
* the paper's neuron counts (Section 3.5) are 253,440-186,624-64,896-64,896-43,264-4096-4096-1000.
  All but the first are the maps above (186,624 = 256 x 27 x 27, ...); conv1's 96 x 55 x 55 is 290,400.

Training (Section 5): SGD, batch 128, momentum 0.9, weight decay 0.0005::

    v_{i+1} = 0.9 v_i - 0.0005 eps w_i - eps <dL/dw |_{w_i}>_{D_i}
    w_{i+1} = w_i + v_{i+1}

learning rate ``eps = 0.01``, "divided by 10 when the validation error rate stopped improving with
the current learning rate", three times over about 90 epochs. ``torch.optim.SGD`` is the same update
while ``eps`` is constant (its velocity is ``-v / eps``). Initialisation: weights N(0, 0.01^2);
biases 1 in conv2, conv4, conv5 and fc6, fc7 ("accelerates the early stages of learning by
providing the ReLUs with positive inputs"), 0 elsewhere.

Where this file differs from the paper, or can:

* the two GPUs become grouped convolutions on one device (``groups``); with ``groups=2`` the LRN
  sums run within each half of the maps, as they do when each GPU holds its own half;
* ``variant="torchvision"`` is torchvision's ``alexnet`` (after Krizhevsky's 2014 "One weird trick
  for parallelizing convolutional neural networks"): 64-192-384-256-256 maps, no LRN, no groups,
  an adaptive average pool to 6x6 before the classifier, dropout on the *inputs* of fc6 and fc7,
  PyTorch's default initialisation. Each of these is its own option (``lrn``, ``groups``,
  ``adaptive_pool``, ``dropout_position``, ``init``), which the variant only sets by default;
* small images: an 11x11 stride-4 conv1 leaves a 7x7 map of a 32x32 image, too small for three
  3x3 poolings (the paper's stem needs at least 63x63). ``stem="small"`` makes conv1 a 5x5 stride-1
  convolution (padding 2), and nothing else changes: 32x32 gives maps of 32, 15, 7 and 3 pixels;
* ``width`` multiplies every layer's maps and hidden units (0.25: 24-64-96-96-64 maps, 1024 units),
  rounded to a multiple of ``groups``;
* no data augmentation or PCA colour noise here: that is the datamodule's work.

Example::

    model = AlexNet()                             # the paper's network: 60,965,224 parameters
    scores = model(torch.zeros(2, 3, 224, 224))   # (2, 1000)
    small = AlexNet(num_classes=10, input_size=32, stem="small", width=0.25)   # for CIFAR-10

Every constructor argument is a command-line flag, e.g. ``--model.activation tanh``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ai_scratch.base import Classifier, check_choice
from ai_scratch.cnn_revolution.optim import LRSchedule, divided_by_ten_on_plateau, sgd_with_schedule
from ai_scratch.info import ModelInfo

Variant = Literal["paper", "torchvision"]
Activation = Literal["relu", "tanh", "sigmoid"]
Pooling = Literal["overlapping", "non_overlapping"]
Stem = Literal["paper", "small"]
DropoutPosition = Literal["hidden", "inputs"]
Init = Literal["paper", "default", "kaiming", "glorot"]

#: Maps of conv1 to conv5, and hidden units of fc6 and fc7, of each variant at width 1.
WIDTHS: dict[str, tuple[tuple[int, ...], int]] = {
    "paper": ((96, 256, 384, 384, 256), 4096),  # Figure 2: 48 + 48, 128 + 128, 192 + 192, 192 + 192, 128 + 128
    "torchvision": ((64, 192, 384, 256, 256), 4096),
}

#: What each variant chooses for the options left at ``None``.
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {"groups": 2, "lrn": True, "adaptive_pool": 0, "dropout_position": "hidden", "init": "paper"},
    "torchvision": {"groups": 1, "lrn": False, "adaptive_pool": 6, "dropout_position": "inputs", "init": "default"},
}

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


# --------------------------------------------------------------------------------- helpers
def scaled(units: int, width: float, multiple: int = 1) -> int:
    """``units * width`` rounded to a multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, round(units * width / multiple) * multiple)


def check_options(width: float, dropout: float, adaptive_pool: int, in_channels: int, lr_patience: int) -> None:
    """A one-line ``ValueError`` for an option out of range; VGG keeps AlexNet's, and checks them alike."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
    if adaptive_pool < 0:
        raise ValueError(f"adaptive_pool must be 0 (none) or a positive side, got {adaptive_pool}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    if lr_patience < 0:
        raise ValueError(f"lr_patience must be at least 0, got {lr_patience}")


def pooled_side(side: int, kernel: int, stride: int, name: str) -> int:
    """Side of a max-pooled map (no padding); a ValueError if the window does not fit."""
    if side < kernel:
        raise ValueError(f"{name} has a {kernel}x{kernel} window but its input maps are only {side}x{side}")
    return (side - kernel) // stride + 1


class LocalResponseNorm(nn.LocalResponseNorm):
    """Local response normalisation with the paper's constants and the paper's ``alpha`` (Section 3.3).

        b^i = a^i / (k + alpha * sum_{j = i - n/2}^{i + n/2} (a^j)^2)^beta

    ``torch.nn.LocalResponseNorm`` computes ``a^i / (k + alpha' / n * sum (a^j)^2)^beta``, so it is
    given ``alpha' = n * alpha``: 5e-4 for the paper's ``alpha = 1e-4``, ``n = 5``. The sum runs over
    ``n`` adjacent maps (two on each side), cut at the first and last map.

    Args:
        size: ``n``, the number of adjacent maps summed.
        paper_alpha: ``alpha`` as the paper writes it.
        beta, k: the paper's ``beta`` and ``k``.
        groups: with 2, the maps are normalised within each half, as on the paper's two GPUs.
    """

    def __init__(
        self, size: int = 5, paper_alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, groups: int = 1
    ) -> None:
        super().__init__(size=size, alpha=paper_alpha * size, beta=beta, k=k)
        self.paper_alpha = paper_alpha
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            return super().forward(x)
        return torch.cat([super(LocalResponseNorm, self).forward(half) for half in x.chunk(self.groups, dim=1)], dim=1)

    def extra_repr(self) -> str:
        torch_alpha = f"torch alpha {self.alpha:g}"
        return f"n={self.size}, alpha={self.paper_alpha} ({torch_alpha}), beta={self.beta}, k={self.k}, groups={self.groups}"


def initialise(model: nn.Module, scheme: str, std: float = 0.01, bias_one: tuple[str, ...] = ()) -> None:
    """Draw the weights of every convolution and linear layer of ``model`` by ``scheme``.

    * ``"paper"``: weights N(0, std^2), biases 1 in the modules named in ``bias_one``, 0 elsewhere;
    * ``"glorot"``: Glorot & Bengio (2010)'s uniform weights, variance 2 / (fan_in + fan_out); biases 0;
    * ``"kaiming"``: as torchvision's VGG and ResNet: He et al. (2015)'s normal weights of variance
      2 / fan_out in convolutions, N(0, 0.01^2) in linear layers; biases 0;
    * ``"default"``: PyTorch's own (uniform within 1 / sqrt(fan_in)), left as built.

    Batch-norm layers keep scale 1 and shift 0 in every scheme.
    """
    if scheme == "default":
        return
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        with torch.no_grad():
            if scheme == "paper":
                nn.init.normal_(module.weight, 0.0, std)
            elif scheme == "glorot":
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, nn.Conv2d):  # kaiming
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                module.bias.fill_(1.0 if scheme == "paper" and name.rsplit(".", 1)[-1] in bias_one else 0.0)


# ----------------------------------------------------------------------------------------- model
class AlexNet(Classifier):
    """AlexNet (Krizhevsky, Sutskever and Hinton, 2012): five convolutions and three fully connected layers.

    ``forward`` maps images (batch, in_channels, input_size, input_size) to class scores (batch,
    num_classes); softmax cross-entropy is the paper's "multinomial logistic regression objective".

    The layers are ``features`` (conv1 ... pool5, by those names), ``avgpool`` (an identity unless
    ``adaptive_pool``) and ``classifier`` (fc6, fc7, fc8).

    Args:
        num_classes: classes of the last layer (1000 for ImageNet).
        in_channels: channels of the input images (3).
        input_size: side of the square inputs (224). The classifier's inputs are computed from it.
        width: multiplier of every layer's maps and hidden units (1 is the paper's).
        variant: ``"paper"`` (96-256-384-384-256 maps) or ``"torchvision"`` (64-192-384-256-256 maps);
            it also chooses the options below that are left at ``None``.
        groups: 2, the paper's two-GPU connectivity in conv2, conv4 and conv5; 1, dense. Paper: 2,
            torchvision: 1.
        lrn: local response normalisation after conv1 and conv2. Paper: True, torchvision: False.
        adaptive_pool: side of an adaptive average pool between pool5 and fc6; 0 for none, fc6 then
            reads pool5's maps at whatever size they are. Paper: 0, torchvision: 6.
        dropout_position: ``"hidden"``, dropout on the outputs of fc6 and fc7 (paper), or
            ``"inputs"``, on the inputs of fc6 and fc7 (torchvision).
        init: ``"paper"`` (N(0, 0.01^2), biases 1 in conv2, conv4, conv5, fc6, fc7), ``"default"``
            (PyTorch's; torchvision's AlexNet), ``"kaiming"`` or ``"glorot"`` (see :func:`initialise`).
        activation: ``"relu"`` (the paper), or the saturating ``"tanh"`` or ``"sigmoid"`` of Section 3.1.
        pooling: ``"overlapping"``, 3x3 windows with stride 2 (the paper), or ``"non_overlapping"``, 2x2.
        stem: ``"paper"``, conv1 11x11 with stride 4 (inputs of at least 63x63), or ``"small"``,
            5x5 with stride 1, for 32x32 or 28x28 images.
        dropout: probability of dropping a unit; 0 turns dropout off.
        learning_rate, momentum, weight_decay: of the SGD (Section 5: 0.01, 0.9, 5e-4).
        lr_schedule: ``"paper"`` (divided by 10 when ``val_accuracy`` stops improving, at most three
            times), ``"cosine"`` (to zero over ``max_epochs``) or ``"constant"``.
        lr_patience: epochs without improvement before the paper's division; the paper judged the
            plateau by eye, the number is ours.

    Raises:
        ValueError: for an unknown choice, a width, dropout or adaptive pool out of range, or an input
            too small for the stem and the three poolings.
    """

    INFO = ModelInfo(
        name="alexnet",
        full_name="AlexNet",
        module=2,
        pattern="engine-based",
        year_introduced=2012,
        authors=("Alex Krizhevsky", "Ilya Sutskever", "Geoffrey E. Hinton"),
        paper_title="ImageNet Classification with Deep Convolutional Neural Networks",
        key_innovations=(
            "rectified linear units, max(0, x), which train several times faster than saturating tanh units",
            "a large CNN (60 million parameters) trained on 1.2 million ImageNet images with GPU convolutions",
            "the network split across two GPUs that communicate only in certain layers (grouped convolutions)",
            "local response normalisation: lateral inhibition between adjacent feature maps",
            "overlapping max pooling (3x3 windows, stride 2)",
            "dropout (p = 0.5) in the first two fully connected layers against overfitting",
            "data augmentation: random 224x224 crops, horizontal flips and PCA colour noise",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="softmax cross-entropy (multinomial logistic regression)",
        optimizer="SGD, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 when validation accuracy plateaus",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "compare ReLU with saturating tanh and sigmoid units on the speed of training",
            "count a large network's parameters layer by layer and see that the FC layers hold most of them",
            "see the effect of local response normalisation, overlapping pooling and dropout one at a time",
            "understand the two-GPU split as grouped convolutions",
            "scale a 224x224 ImageNet architecture down to 32x32 images without changing its structure",
        ),
        estimated_training_time="minutes (32x32, width 0.25); days at full size on ImageNet",
    )

    #: the rectified outputs of conv1 to conv5, shown by the feature-map figure
    feature_map_layers = ("features.act1", "features.act2", "features.act3", "features.act4", "features.act5")

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int = 224,
        width: float = 1.0,
        variant: Variant = "paper",
        groups: int | None = None,
        lrn: bool | None = None,
        adaptive_pool: int | None = None,
        dropout_position: DropoutPosition | None = None,
        init: Init | None = None,
        activation: Activation = "relu",
        pooling: Pooling = "overlapping",
        stem: Stem = "paper",
        dropout: float = 0.5,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: LRSchedule = "paper",
        lr_patience: int = 3,
    ) -> None:
        check_choice("variant", variant, Variant)
        chosen = {
            "groups": groups,
            "lrn": lrn,
            "adaptive_pool": adaptive_pool,
            "dropout_position": dropout_position,
            "init": init,
        }
        resolved = {key: VARIANT_DEFAULTS[variant][key] if value is None else value for key, value in chosen.items()}
        groups, lrn, adaptive_pool = resolved["groups"], resolved["lrn"], resolved["adaptive_pool"]
        check_choice("activation", activation, Activation)
        check_choice("pooling", pooling, Pooling)
        check_choice("stem", stem, Stem)
        check_choice("dropout_position", resolved["dropout_position"], DropoutPosition)
        check_choice("init", resolved["init"], Init)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive integer (2 for the paper's two GPUs), got {groups!r}")
        check_options(width, dropout, adaptive_pool, in_channels, lr_patience)

        conv_maps, hidden_units = WIDTHS[variant]
        maps = [scaled(m, width, groups) for m in conv_maps]
        hidden = scaled(hidden_units, width)
        conv1_kernel, conv1_stride, conv1_padding = (11, 4, 2) if stem == "paper" else (5, 1, 2)
        pool_kernel = 3 if pooling == "overlapping" else 2
        side = (input_size + 2 * conv1_padding - conv1_kernel) // conv1_stride + 1
        if side < 1:
            raise ValueError(f"input_size {input_size} is smaller than conv1's {conv1_kernel}x{conv1_kernel} kernel")
        try:
            for pool in ("pool1", "pool2", "pool5"):  # conv2 to conv5 keep the side (padding 2, 1, 1, 1)
                side = pooled_side(side, pool_kernel, 2, pool)
        except ValueError as error:
            raise ValueError(
                f"input_size {input_size} is too small for AlexNet with stem={stem!r}: {error}; "
                "use stem='small' for images under 63x63, or larger inputs"
            ) from None
        feature_side = adaptive_pool or side

        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()
        self.hparams.update(resolved)  # record what was built, not None

        def act() -> nn.Module:  # one module per layer, so that each can be hooked by name
            # in place, as torchvision's: no second copy of every map to allocate and free
            return nn.ReLU(inplace=True) if activation == "relu" else ACTIVATIONS[activation]()

        features: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(in_channels, maps[0], conv1_kernel, stride=conv1_stride, padding=conv1_padding)),
            ("act1", act()),
            *([("norm1", LocalResponseNorm(groups=groups))] if lrn else []),
            ("pool1", nn.MaxPool2d(pool_kernel, stride=2)),
            ("conv2", nn.Conv2d(maps[0], maps[1], 5, padding=2, groups=groups)),  # same-GPU maps only
            ("act2", act()),
            *([("norm2", LocalResponseNorm(groups=groups))] if lrn else []),
            ("pool2", nn.MaxPool2d(pool_kernel, stride=2)),
            ("conv3", nn.Conv2d(maps[1], maps[2], 3, padding=1)),  # reads both GPUs' maps
            ("act3", act()),
            ("conv4", nn.Conv2d(maps[2], maps[3], 3, padding=1, groups=groups)),
            ("act4", act()),
            ("conv5", nn.Conv2d(maps[3], maps[4], 3, padding=1, groups=groups)),
            ("act5", act()),
            ("pool5", nn.MaxPool2d(pool_kernel, stride=2)),
        ]
        self.features = nn.Sequential(OrderedDict(features))
        self.avgpool: nn.Module = nn.AdaptiveAvgPool2d(adaptive_pool) if adaptive_pool else nn.Identity()

        def drop(name: str) -> list[tuple[str, nn.Module]]:
            return [(name, nn.Dropout(dropout))] if dropout > 0 else []

        fc6 = [("fc6", nn.Linear(maps[4] * feature_side * feature_side, hidden)), ("act6", act())]
        fc7 = [("fc7", nn.Linear(hidden, hidden)), ("act7", act())]
        if resolved["dropout_position"] == "hidden":
            layers = [*fc6, *drop("drop6"), *fc7, *drop("drop7")]
        else:
            layers = [*drop("drop6"), *fc6, *drop("drop7"), *fc7]
        self.classifier = nn.Sequential(OrderedDict([*layers, ("fc8", nn.Linear(hidden, num_classes))]))

        self.set_sizes((in_channels, input_size, input_size), (num_classes,))
        initialise(self, resolved["init"], std=0.01, bias_one=("conv2", "conv4", "conv5", "fc6", "fc7"))

    @classmethod
    def paper_sized(cls) -> AlexNet:
        """The network of Figure 2: two GPUs' halves (groups of 2 in conv2, conv4 and conv5), LRN,
        overlapping pooling, 224x224x3 ImageNet images, 1000 classes; 60,965,224 parameters, the
        paper's "60 million". The paper gives no operation count; one image costs 724 million
        multiply-adds, 92% of them in the five convolutions.
        """
        return cls()

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images)  # conv1 ... pool5: (batch, 256, 6, 6) at 224x224
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))  # fc6, fc7, fc8: class scores before the softmax

    def configure_optimizers(self) -> Any:
        """Section 5: SGD, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 on a plateau."""
        paper = divided_by_ten_on_plateau(self.hparams.learning_rate, self.hparams.lr_patience)
        return sgd_with_schedule(self, paper=paper)
