"""U-Net, convolutional networks for biomedical image segmentation (Ronneberger, Fischer and Brox, 2015).

Paper: O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (arXiv:1505.04597). Section 2 and Figure 1 give the network, Section 3
the training and the weight map, Figure 2 the overlap-tile strategy, Figure 3 the weight map on
touching cells.

The problem: a class for *every pixel*, from few annotated images, where the objects (cells) touch.
A sliding-window classifier (Ciresan et al., 2012) is slow and trades context for localisation. A
"fully convolutional network" gives both: a *contracting path* that captures context and a
symmetric *expanding path* that localises, joined by skip connections, hence the U.

Architecture (Section 2, Figure 1), for depth ``d = 4`` and ``base_channels = 64``:

* contracting path: "the repeated application of two 3x3 convolutions (unpadded convolutions), each
  followed by a rectified linear unit (ReLU) and a 2x2 max pooling operation with stride 2 for
  downsampling. At each downsampling step we double the number of feature channels": 64, 128, 256,
  512 channels, and 1024 at the bottom;
* expanding path: "an upsampling of the feature map followed by a 2x2 convolution ('up-convolution')
  that halves the number of feature channels, a concatenation with the correspondingly cropped
  feature map from the contracting path, and two 3x3 convolutions, each followed by a ReLU. The
  cropping is necessary due to the loss of border pixels in every convolution";
* "At the final layer a 1x1 convolution is used to map each 64-component feature vector to the
  desired number of classes. In total the network has 23 convolutional layers."

Every unpadded 3x3 convolution loses a pixel on each side, so a 572 x 572 input gives a 388 x 388
output. With ``b`` the side at the bottom (after its two convolutions):

    output side = 2^d * b - 4 (2^d - 1)          input side = 2^d * (b + 4) + 4 (2^d - 1)

(``b = 28``: 388 and 572). Only these input sides keep every pooled map even
(:func:`valid_input_sides`). "To allow a seamless tiling of the output segmentation map it is
important to select the input tile size such that all 2x2 max-pooling operations are applied to a
layer with an even x- and y-size." The *overlap-tile strategy* (Figure 2): the output covers the
centre of the input; the missing context at the image's border is extrapolated by mirroring
(``datamodules.membranes``, ``mirror_padding`` = (input side - output side) / 2, 92 pixels for the
paper's tiles: :func:`mirror_padding_for`).

Training (Section 3): the soft-max ``p_k(x) = exp(a_k(x)) / sum_k' exp(a_k'(x))`` over the final
feature map, and the cross-entropy that "penalizes at each position the deviation of p_l(x)(x) from 1":

    E = sum_x w(x) log(p_l(x)(x))                                                  (eq. 1)
    w(x) = w_c(x) + w_0 * exp( -(d_1(x) + d_2(x))^2 / (2 sigma^2) )              (eq. 2)

``w_c`` balances the class frequencies, ``d_1`` and ``d_2`` are the distances to the border of the
nearest and the second nearest cell, ``w_0 = 10``, ``sigma ~ 5`` pixels: "to force the network to
learn the small separation borders that we introduce between touching cells". The weight map is
computed once per ground-truth image, in the data (:func:`datamodules.membranes.unet_weight_map`);
``use_weight_map=False`` trains on the plain cross-entropy. SGD with "a high momentum (0.99)",
"large input tiles over a large batch size and hence reduce the batch to a single image". Weights
from a Gaussian with standard deviation ``sqrt(2 / N)``, ``N`` the incoming nodes of a neuron
(``9 * 64 = 576`` for a 3x3 convolution of 64 channels): He et al.'s initialisation. "Drop-out
layers at the end of the contracting path" (``dropout``); elastic deformations as augmentation
(not done here).

Options not in the paper: ``padding="same"`` (padded 3x3 convolutions: the output has the input's
size, the common modern variant), ``skip_connections=False`` (the expanding path sees only the
upsampled maps: the ablation that shows what the skips bring), ``batch_norm`` (after every 3x3
convolution), ``optimizer="adam"`` (the small configs' default).

Example::

    model = UNet()                                             # Figure 1: 31,030,658 parameters (2 classes)
    model(torch.zeros(1, 1, 572, 572)).shape                   # (1, 2, 388, 388)
    small = UNet(base_channels=16, depth=2, padding="same")    # for CPU; any side divisible by 4
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ai_scratch.applying_cnns.segmentation import Optimizer, SegmentationModel, center_crop
from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo

Padding = Literal["valid", "same"]

#: Figure 1: input and output sides of the paper's tile.
PAPER_INPUT_SIDE, PAPER_OUTPUT_SIDE = 572, 388


def valid_output_side(input_side: int, depth: int, padding: Padding = "valid") -> int | None:
    """The output side of a U-Net of ``depth`` poolings for an ``input_side`` input, or ``None`` when
    some 2x2 max pooling would meet an odd side (or the map vanishes)."""
    loss = 4 if padding == "valid" else 0  # two unpadded 3x3 convolutions lose 2 pixels a side
    side = input_side
    for _ in range(depth):
        side -= loss
        if side < 2 or side % 2:
            return None
        side //= 2
    side -= loss
    if side < 1:
        return None
    for _ in range(depth):
        side = 2 * side - loss
    return side if side >= 1 else None


def valid_input_sides(depth: int, padding: Padding = "valid", up_to: int = 1024) -> list[int]:
    """The input sides up to ``up_to`` that a U-Net of ``depth`` poolings takes (all pooled maps even)."""
    return [side for side in range(1, up_to + 1) if valid_output_side(side, depth, padding) is not None]


def mirror_padding_for(output_side: int, depth: int) -> int:
    """The mirrored context on each side that makes a valid-convolution U-Net's output ``output_side``:
    ``(input side - output side) / 2``. Raises ``ValueError`` when no input gives that output."""
    for input_side in range(output_side, output_side + 16 * 2**depth + 8):
        if valid_output_side(input_side, depth) == output_side:
            return (input_side - output_side) // 2
    raise ValueError(f"no input side gives an output of {output_side} with depth {depth}: pick an output side 2^d * b - 4 (2^d - 1)")


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (and, as an option, batch norm before it)."""

    def __init__(self, in_channels: int, out_channels: int, padding: Padding, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for index, channels_in in enumerate((in_channels, out_channels)):
            layers.append(nn.Conv2d(channels_in, out_channels, 3, padding=1 if padding == "same" else 0, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UpStep(nn.Module):
    """One step of the expanding path: the 2x2 up-convolution that halves the channels, the
    concatenation with the cropped map of the contracting path (when ``skip``), two 3x3 convolutions."""

    def __init__(self, in_channels: int, padding: Padding, batch_norm: bool, skip: bool) -> None:
        super().__init__()
        out_channels = in_channels // 2
        self.skip = skip
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)  # "up-convolution"
        self.conv = DoubleConv(2 * out_channels if skip else out_channels, out_channels, padding, batch_norm)

    def forward(self, x: Tensor, skipped: Tensor) -> Tensor:
        x = self.up(x)
        if self.skip:
            # "concatenation with the correspondingly cropped feature map from the contracting path"
            x = torch.cat([center_crop(skipped, x.shape[-2], x.shape[-1]), x], dim=1)
        return self.conv(x)


class UNet(SegmentationModel):
    """U-Net (Ronneberger et al., 2015): a contracting and an expanding path, a class for every pixel.

    Args:
        in_channels: channels of the input images (1 for the paper's grey microscopy).
        num_classes: classes of every pixel (2 in the paper: cell and membrane).
        base_channels: channels of the first level (64 in the paper), doubled at every pooling.
        depth: the number of 2x2 max poolings (4 in the paper: 5 levels).
        padding: ``"valid"`` (the paper's unpadded convolutions: the output is smaller than the
            input) or ``"same"`` (padded: the output has the input's size).
        skip_connections: concatenate the contracting path's maps into the expanding path (the
            paper); ``False`` for the ablation.
        batch_norm: batch normalisation after every 3x3 convolution (not in the paper).
        dropout: drop-out rate at the end of the contracting path (the paper has drop-out there).
        input_size: side of the example input (``None``: 572 for valid convolutions, 256 padded).
        use_weight_map, ignore_index, background_class, optimizer, learning_rate, momentum,
            weight_decay: see :class:`~ai_scratch.applying_cnns.segmentation.SegmentationModel`;
            the paper's optimizer is ``"sgd"`` with momentum 0.99.

    Raises:
        ValueError: for an unknown option, sizes out of range, or an input side whose pooled maps
            would be odd (with the sides that work).
    """

    INFO = ModelInfo(
        name="unet",
        full_name="U-Net",
        module=3,
        pattern="engine-based",
        year_introduced=2015,
        authors=("Olaf Ronneberger", "Philipp Fischer", "Thomas Brox"),
        paper_title="U-Net: Convolutional Networks for Biomedical Image Segmentation",
        key_innovations=(
            "a contracting path for context and a symmetric expanding path for localisation: the U",
            "skip connections that concatenate the contracting path's high-resolution maps into the expanding path",
            "a fully convolutional network of valid convolutions: any image, tiled seamlessly (overlap-tile strategy, mirrored borders)",
            "a weight map that makes the thin borders between touching cells count in the loss",
            "training from very few annotated images with elastic deformations",
        ),
        architecture_type="encoder-decoder cnn",
        learning_algorithm="backpropagation",
        loss_function="pixel-wise softmax cross-entropy weighted by the border weight map",
        optimizer="SGD with momentum 0.99, one image per batch",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "build the contracting and expanding paths and see why valid convolutions shrink 572 to 388",
            "crop and concatenate the skip connections, and measure what removing them costs in IoU",
            "compute the weight map of eq. 2 from instance masks and see it separate touching cells",
            "score a segmentation per pixel (accuracy, IoU) and per object (recall, merged pairs)",
        ),
        estimated_training_time="minutes",
    )

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = 4,
        padding: Padding = "valid",
        skip_connections: bool = True,
        batch_norm: bool = False,
        dropout: float = 0.0,
        input_size: int | None = None,
        use_weight_map: bool = True,
        ignore_index: int = 255,
        background_class: int = 0,
        optimizer: Optimizer = "sgd",
        learning_rate: float = 0.01,
        momentum: float = 0.99,
        weight_decay: float = 0.0,
    ) -> None:
        check_choice("padding", padding, Padding)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be an integer >= 1, got {in_channels!r}")
        if not isinstance(base_channels, int) or base_channels < 2 or base_channels % 2:
            raise ValueError(f"base_channels must be an even integer >= 2, got {base_channels!r}")
        if not isinstance(depth, int) or not 1 <= depth <= 6:
            raise ValueError(f"depth must be an integer between 1 and 6 (the number of poolings), got {depth!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(num_classes, use_weight_map, ignore_index, background_class, optimizer, learning_rate, momentum, weight_decay)
        self.save_hyperparameters()
        self.depth, self.padding, self.skip_connections = depth, padding, skip_connections
        widths = [base_channels * 2**level for level in range(depth + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, padding, batch_norm) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(UpStep(width, padding, batch_norm, skip_connections) for width in reversed(widths[1:]))
        self.head = nn.Conv2d(base_channels, num_classes, kernel_size=1)  # "map each 64-component feature vector" to the classes
        self.reset_parameters()
        side = input_size if input_size is not None else (PAPER_INPUT_SIDE if padding == "valid" else 256)
        output_side = self.output_side(side)
        self.set_sizes((in_channels, side, side), (num_classes, output_side, output_side))

    @classmethod
    def paper_sized(cls, **overrides: Any) -> UNet:
        """Figure 1's network: one grey channel in, two classes (cell, membrane), 64 channels at the
        first level doubled at each of four poolings, unpadded 3x3 convolutions: a 572 x 572 tile in,
        388 x 388 scores out; 23 convolutional layers, 31,030,658 parameters (the paper gives no
        total). ``overrides`` change any argument (``skip_connections=False``: the ablation)."""
        settings: dict[str, Any] = dict(in_channels=1, num_classes=2, base_channels=64, depth=4, padding="valid")
        return cls(**(settings | overrides))

    def reset_parameters(self) -> None:
        """Section 3: weights from a Gaussian of standard deviation sqrt(2 / N), N = k * k * incoming
        channels (He et al.'s initialisation); biases 0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                # ConvTranspose2d keeps its weight as (in, out, k, k): its fan_in is the first dimension's
                mode = "fan_out" if isinstance(module, nn.ConvTranspose2d) else "fan_in"
                nn.init.kaiming_normal_(module.weight, mode=mode, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def output_side(self, input_side: int) -> int:
        """The side of the output for a square input of ``input_side``; ``ValueError`` with the nearest
        sides that work when a pooled map would be odd."""
        side = valid_output_side(input_side, self.depth, self.padding)
        if side is None:
            nearby = [s for s in valid_input_sides(self.depth, self.padding, up_to=input_side + 2**self.depth * 2) if abs(s - input_side) <= 2**self.depth * 2]
            raise ValueError(
                f"input side {input_side} does not fit a U-Net with depth {self.depth} and {self.padding} convolutions "
                f"(every 2x2 pooling needs an even side): use one of {nearby}"
            )
        return side

    def forward(self, x: Tensor) -> Tensor:
        """Class scores ``(N, num_classes, h, w)`` of an image batch ``(N, in_channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.hparams.in_channels:
            raise ValueError(f"UNet expects images (N, {self.hparams.in_channels}, H, W), got shape {tuple(x.shape)}")
        for side in x.shape[-2:]:
            self.output_side(int(side))
        contracting: list[Tensor] = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = self.pool(x)  # 2x2 max pooling, stride 2
            x = block(x)
            contracting.append(x)
        x = self.dropout(contracting.pop())  # the bottom, 1024 channels in the paper
        for step in self.up:
            x = step(x, contracting.pop())
        return self.head(x)

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, gradient flow, the first filters, the feature maps of the first level, the
        bottom and the last expanding step (fine detail, context, and the two joined), and input /
        truth / prediction / weight map of validation images (:mod:`ai_scratch.applying_cnns.unet_figures`)."""
        from ai_scratch.applying_cnns.unet_figures import unet_figures

        return unet_figures(every_n_epochs, feature_map_layers=("down.0", f"down.{self.depth}", f"up.{self.depth - 1}"))


def channels_of(model: UNet) -> Sequence[int]:
    """The output channels of each level of the contracting path."""
    return [block[0].out_channels for block in model.down]
