"""LeNet-5, the convolutional network that read cheques (LeCun, Bottou, Bengio and Haffner, 1998).

Paper: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proceedings of the IEEE 86(11), 2278-2324, 1998. Section II.A gives the ideas,
Section II.B the network layer by layer, Appendix A the squashing function and the initialisation.

Three architectural ideas give some invariance to shift, scale and distortion (Section II.A):
*local receptive fields* (a unit sees a 5x5 patch), *shared weights* (every unit of a feature map
uses the same 5x5 kernel, so a feature map is one convolution of the previous layer) and
*sub-sampling* (halving the resolution makes the exact position of a feature matter less). The
network alternates them: C for convolution, S for sub-sampling, F for fully connected.

    layer   maps  size   each unit sees      trainable parameters                 connections
    input      1  32x32  (a digit of at most 20x20, centred in a 28x28 field, padded to 32x32)
    C1         6  28x28  5x5 of the input    6 x (25 + 1)                  =    156    122,304
    S2         6  14x14  2x2 of its C1 map   6 x (coefficient + bias)      =     12      5,880
    C3        16  10x10  5x5 of 3, 4 or 6    6x(3x25+1) + 9x(4x25+1)
                         S2 maps (Table I)     + 1x(6x25+1)                =  1,516    151,600
    S4        16   5x5   2x2 of its C3 map   16 x 2                        =     32      2,000
    C5       120   1x1   5x5 of all S4 maps  120 x (16 x 25 + 1)           = 48,120     48,120
    F6        84 units   all of C5           84 x (120 + 1)                = 10,164     10,164
    output    10 units   all of F6           Euclidean RBF: fixed 7x12 bitmaps, not trained
                                                                   total   = 60,000

C3 does not combine every S2 map (Table I). Maps 0-5 take contiguous triples of S2 maps, maps 6-11
contiguous quadruples, maps 12-14 discontinuous quadruples and map 15 all six ("X": connected):

    S2 \\ C3   0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
       0      X           X  X  X        X  X  X  X     X  X
       1      X  X           X  X  X        X  X  X  X     X
       2      X  X  X           X  X  X        X     X  X  X
       3         X  X  X        X  X  X  X        X     X  X
       4            X  X  X        X  X  X  X     X  X     X
       5               X  X  X        X  X  X  X     X  X  X

"keeps the number of connections within reasonable bounds" and, more importantly, "forces a break
of symmetry": different C3 maps see different inputs, so they are pushed to extract different,
complementary features. A dense C3 would have 16 x (6 x 25 + 1) = 2,416 parameters.

The equations, in the paper's symbols:

* a unit's state (eq. 5 and 6): ``a_i = sum_j w_ij x_j + b_i``, ``x_i = f(a_i)``, with the scaled
  hyperbolic tangent ``f(a) = A tanh(S a)``, ``A = 1.7159``, ``S = 2/3``, so that ``f(+-1) = +-1``;
* a sub-sampling unit (Section II.B): ``a = w_k * (sum of a 2x2 neighbourhood of map k) + b_k``;
* an output unit, a Euclidean radial basis function (eq. 7): ``y_i = sum_j (x_j - w_ij)^2``, where
  the ``w_i`` are fixed +-1 vectors drawn as 7x12 bitmaps of the digits (Fig. 3): ``y_i`` is a
  *penalty*, small when the F6 state looks like digit ``i``;
* the loss, the maximum a posteriori (MAP) criterion (eq. 9), over the ``P`` training patterns
  ``Z_p`` of classes ``D_p``:
  ``E(W) = 1/P sum_p ( y_{D_p}(Z_p, W) + log( e^{-j} + sum_i e^{-y_i(Z_p, W)} ) )``.
  The first term pulls the correct class's penalty down; the second pushes the others up
  ("competitive"), except those already far above the constant ``j`` of a "rubbish" class.

The paper's inputs (Section II.B) are 32x32 images, larger than the digits so that stroke ends and
corners can reach the centre of the top feature detectors' receptive fields; pixel values are
normalised so that the white background is -0.1 and the black ink 1.175 (mean about 0, variance
about 1). That is the datamodule's work, not the model's.

Where this file differs from the paper, and the switches that make the modern LeNet:

* optimiser: the paper used a stochastic diagonal Levenberg-Marquardt method (Appendix C), a
  per-parameter step size from a running estimate of the Hessian's diagonal. Here: SGD with
  momentum, a stand-in (``ai-scratch fit --optimizer ...`` can choose another);
* ``j`` is not given a value in the paper; here ``rbf_rubbish_j = 10`` (see :func:`map_criterion`);
* the RBF bitmaps of Fig. 3 are drawn for the whole printable ASCII set; the ten digit bitmaps below
  are this project's own drawings in the same 7x12, +-1 format;
* ``output_layer="linear"`` (a plain 84 -> classes layer with softmax cross-entropy),
  ``c3_table="full"`` (dense C3), ``activation="relu"`` and ``subsampling="max"`` (max pooling,
  no parameters) turn the 1998 network, one piece at a time, into the LeNet of today's tutorials.

Example::

    model = LeNet5()                          # the paper's network: 60,000 trainable parameters
    scores = model(torch.zeros(8, 1, 32, 32)) # (8, 10) class scores -y_i: the argmax is the digit
    loss = model.criterion(scores, torch.randint(0, 10, (8,)))   # eq. 9

Every constructor argument is a command-line flag, e.g. ``--model.c3_table full``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ai_scratch.base import Classifier, check_choice
from ai_scratch.cnn_revolution.optim import LRSchedule, per_epoch, sgd_with_schedule
from ai_scratch.info import ModelInfo

OutputLayer = Literal["rbf", "linear"]
C3Table = Literal["paper", "full"]
Activation = Literal["scaled_tanh", "relu"]
Subsampling = Literal["trainable", "max"]

#: Table I: the S2 maps that each of the 16 C3 maps combines (C3 map k reads ``C3_CONNECTIONS[k]``).
C3_CONNECTIONS: tuple[tuple[int, ...], ...] = (
    # maps 0-5: every contiguous (cyclic) subset of three S2 maps
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    # maps 6-11: every contiguous (cyclic) subset of four
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    # maps 12-14: some discontinuous subsets of four
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    # map 15: all six
    (0, 1, 2, 3, 4, 5),
)

#: The fixed parameter vectors of the output RBF units (Fig. 3): a 7-wide, 12-high bitmap per digit,
#: "#" = +1 and "." = -1, read row by row into the 84 components w_i1 .. w_i84. Drawn for this
#: project in the paper's format; digits 0-4 on top, 5-9 below.
DIGIT_BITMAPS = """
.......  .......  .......  .......  .......
..###..  ...#...  ..###..  .#####.  ....##.
.#...#.  ..##...  .#...#.  #.....#  ...#.#.
#.....#  .#.#...  #.....#  ......#  ..#..#.
#.....#  ...#...  ......#  ......#  .#...#.
#.....#  ...#...  .....#.  ..####.  #....#.
#.....#  ...#...  ....#..  ......#  #######
#.....#  ...#...  ...#...  ......#  .....#.
#.....#  ...#...  ..#....  ......#  .....#.
.#...#.  ...#...  .#.....  #.....#  .....#.
..###..  .#####.  #######  .#####.  .....#.
.......  .......  .......  .......  .......

.......  .......  .......  .......  .......
#######  ..###..  #######  ..###..  ..###..
#......  .#.....  ......#  .#...#.  .#...#.
#......  #......  .....#.  #.....#  #.....#
#####..  #......  ....#..  .#...#.  #.....#
.....#.  #.###..  ....#..  ..###..  .#...##
......#  ##...#.  ...#...  .#...#.  ..###.#
......#  #.....#  ...#...  #.....#  ......#
......#  #.....#  ..#....  #.....#  ......#
#....#.  .#...#.  ..#....  .#...#.  .....#.
.####..  ..###..  ..#....  ..###..  ..###..
.......  .......  .......  .......  .......
"""

BITMAP_HEIGHT, BITMAP_WIDTH = 12, 7  # F6 has 84 = 12 x 7 units so that its state can be a bitmap


def digit_bitmaps() -> Tensor:
    """The ten RBF parameter vectors as a float tensor of shape (10, 84), entries +1 or -1."""
    bitmaps = []
    for block in DIGIT_BITMAPS.strip().split("\n\n"):
        rows = [line.split() for line in block.splitlines()]  # rows[r][d]: row r of the block's digit d
        for digit in range(len(rows[0])):
            pixels = "".join(row[digit] for row in rows)
            bitmaps.append([1.0 if pixel == "#" else -1.0 for pixel in pixels])
    return torch.tensor(bitmaps)


# --------------------------------------------------------------------------------- building blocks
class ScaledTanh(nn.Module):
    """The squashing function f(a) = A tanh(S a) of eq. 6, with A = 1.7159 and S = 2/3.

    Appendix A: with these constants f(1) = 1 and f(-1) = -1, the gain near the origin is close to
    one, and the second derivative is largest at +-1, the values that the network is trained to
    reach; being odd (symmetric), f keeps the states centred on zero, which speeds learning.
    """

    amplitude = 1.7159  # A
    slope = 2.0 / 3.0  # S

    def forward(self, a: Tensor) -> Tensor:
        return self.amplitude * torch.tanh(self.slope * a)

    def extra_repr(self) -> str:
        return f"A={self.amplitude}, S={self.slope:.4f}"


class TrainableSubsampling(nn.Module):
    """Layers S2 and S4: a 2x2 sum, times a trainable coefficient, plus a trainable bias, per map.

    Section II.B: "The four inputs to a unit in S2 are added, then multiplied by a trainable
    coefficient, and added to a trainable bias." Neighbourhoods do not overlap, so each side halves:

        a_k(u, v) = weight_k * sum_{r, c in {0, 1}} x_k(2u + r, 2v + c) + bias_k

    ``weight`` holds the coefficient of each map. A small coefficient makes the unit quasi-linear
    (the layer merely blurs); a large one makes it a "noisy OR" or "noisy AND" of its four inputs,
    depending on the bias. Two parameters per map.
    """

    def __init__(self, maps: int, window: int = 2) -> None:
        super().__init__()
        self.window = window
        self.weight = nn.Parameter(torch.ones(maps))  # the coefficients; drawn by LeNet5's initialisation
        self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: Tensor) -> Tensor:
        neighbourhood_sum = F.avg_pool2d(x, self.window, divisor_override=1)  # divisor 1: a sum
        return self.weight[:, None, None] * neighbourhood_sum + self.bias[:, None, None]

    def extra_repr(self) -> str:
        return f"maps={self.weight.numel()}, window={self.window}"


class PartiallyConnectedConv2d(nn.Module):
    """A convolution in which output map k combines only the input maps ``connections[k]`` (Table I).

    It holds one kernel per connection (60 for C3) and one bias per output map: for C3,
    60 x 5 x 5 + 16 = 1,516 parameters, the paper's count. To run, the kernels are laid into the
    (output maps x input maps) grid of kernels of an ordinary dense convolution; the cells of
    missing connections hold constant zeros, which are not parameters and get no gradient, so an
    unconnected input map has no influence on the output map.

    Args:
        connections: for each output map, the indices of the input maps it reads.
        kernel_size: side of the square kernels.
    """

    def __init__(self, connections: tuple[tuple[int, ...], ...], kernel_size: int) -> None:
        super().__init__()
        self.connections = tuple(tuple(inputs) for inputs in connections)
        self.in_maps = 1 + max(max(inputs) for inputs in self.connections)
        self.out_maps = len(self.connections)
        self.kernel_size = kernel_size
        pairs = [(output_map, input_map) for output_map, inputs in enumerate(self.connections) for input_map in inputs]
        # Where each connection's kernel sits in the flattened (out_maps x in_maps) grid of kernels.
        self.register_buffer("grid_cell", torch.tensor([o * self.in_maps + i for o, i in pairs]), persistent=False)
        # The output map that each kernel feeds, and the fan-in of each output map's units (for initialisation).
        self.register_buffer("kernel_map", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer(
            "map_fan_in", torch.tensor([len(inputs) * kernel_size**2 for inputs in self.connections]), persistent=False
        )
        self.weight = nn.Parameter(torch.zeros(len(pairs), kernel_size, kernel_size))  # drawn by LeNet5 (Appendix A)
        self.bias = nn.Parameter(torch.zeros(self.out_maps))

    def dense_weight(self) -> Tensor:
        """The kernel grid (out_maps, in_maps, k, k): a learned kernel where Table I says X, zeros elsewhere."""
        k = self.kernel_size
        grid = self.weight.new_zeros(self.out_maps * self.in_maps, k, k).index_copy(0, self.grid_cell, self.weight)
        return grid.view(self.out_maps, self.in_maps, k, k)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_maps={self.in_maps}, out_maps={self.out_maps}, "
            f"connections={len(self.grid_cell)}, kernel_size={self.kernel_size}"
        )


class EuclideanRBF(nn.Module):
    """The output layer: one Euclidean radial basis function unit per class (eq. 7).

        y_i = sum_j (x_j - w_ij)^2

    ``y_i`` is the squared distance between the F6 state ``x`` and the unit's parameter vector
    ``w_i``, a fixed +-1 bitmap of digit ``i`` (a buffer: saved with the model, never trained).
    It is a penalty: the closer the F6 state to the bitmap, the smaller.
    """

    def __init__(self, prototypes: Tensor) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes)  # (classes, features): the w_i

    def forward(self, x: Tensor) -> Tensor:
        return (x[:, None, :] - self.prototypes[None, :, :]).pow(2).sum(dim=-1)  # (batch, classes)

    def extra_repr(self) -> str:
        classes, features = self.prototypes.shape
        return f"in_features={features}, classes={classes}, fixed prototypes"


def map_criterion(scores: Tensor, target: Tensor, rubbish_j: float) -> Tensor:
    """The MAP criterion of eq. 9, from class scores ``-y_i`` (as :class:`LeNet5` returns them).

        E = mean_p [ y_{D_p}(Z_p) + log( e^{-j} + sum_i e^{-y_i(Z_p)} ) ]

    With scores ``s_i = -y_i`` the log term is a log-sum-exp over the class scores and one extra
    constant score ``-j``, a "rubbish" class that is never the target. So eq. 9 is the softmax
    cross-entropy over eleven classes, and ``e^{-j}`` is the rubbish class's share of the posterior.

    ``j`` decides which penalties count as "already very large": a wrong class is pushed up in
    proportion to ``e^{-y_i} / (e^{-j} + sum_k e^{-y_k})``, so classes with ``y_i`` well above ``j``
    are left alone. The paper gives no value. ``LeNet5`` uses ``j = 10``: well below 84, the penalty
    of an undecided F6 state (all zeros) against any bitmap, so that early in training the loss is
    the plain squared-error pull of eq. 8 on the correct class; and large enough that ``e^{-j}``
    (4.5e-5) is negligible once the correct class is matched (``y_D`` near 0), so that a perfect fit
    has a loss near 0 rather than ``log(1 + e^{-j})`` (0.64 for ``j = 0.1``).

    Args:
        scores: (batch, classes) class scores, minus the RBF penalties.
        target: (batch,) class indices ``D_p``.
        rubbish_j: the positive constant ``j``.
    """
    penalty_of_target = -scores.gather(1, target[:, None]).squeeze(1)  # y_{D_p}
    rubbish_score = scores.new_full((scores.shape[0], 1), -rubbish_j)  # the constant term e^{-j}
    competition = torch.logsumexp(torch.cat([scores, rubbish_score], dim=1), dim=1)  # log(e^{-j} + sum_i e^{-y_i})
    return (penalty_of_target + competition).mean()


def _layer(**parts: nn.Module) -> nn.Sequential:
    """A named layer: its weighted sums a_i, then (usually) the squashing x_i = f(a_i) of eq. 5."""
    return nn.Sequential(OrderedDict(parts))


def _c5_side(input_size: int) -> int:
    """Side of C5's maps for a square input: 1 for the paper's 32x32."""
    side = input_size - 4  # C1: 5x5 kernels, no padding
    side //= 2  # S2
    side -= 4  # C3
    side //= 2  # S4
    return side - 4  # C5


# ----------------------------------------------------------------------------------------- model
def paper_lr_factor(epoch: int) -> float:
    """The paper's global learning-rate schedule, relative to its first value (Section III.C).

    LeCun et al. used 0.0005 for the first two passes over the data, 0.0002 for the next three,
    0.0001 for the next three, 0.00005 for the next four and 0.00001 after that: factors 1, 0.4,
    0.2, 0.1 and 0.02 of the first rate.
    """
    for last_epoch, factor in ((2, 1.0), (5, 0.4), (8, 0.2), (12, 0.1)):
        if epoch < last_epoch:
            return factor
    return 0.02


class LeNet5(Classifier):
    """LeNet-5 (LeCun et al., 1998): C1, S2, C3, S4, C5, F6 and an RBF output layer.

    ``forward`` maps images (batch, channels, 32, 32) to class scores (batch, classes): minus the
    RBF penalties of eq. 7, or the logits of the linear output layer; the argmax is the prediction.

    Args:
        num_classes: number of classes. The RBF bitmaps exist for the ten digits only, so other
            values need ``output_layer="linear"``.
        output_layer: ``"rbf"``, the paper's Euclidean RBF units trained with the MAP criterion
            (eq. 9), or ``"linear"``, an 84 -> ``num_classes`` layer with softmax cross-entropy.
        c3_table: ``"paper"``, the partial connections of Table I (1,516 parameters), or
            ``"full"``, every C3 map reading all six S2 maps (2,416 parameters).
        activation: ``"scaled_tanh"``, the paper's f(a) = 1.7159 tanh(2a/3), or ``"relu"``. With
            ReLU and the RBF output, F6 states cannot go below 0, so they never reach the -1 pixels.
        subsampling: ``"trainable"``, the paper's S2 and S4 (sum, coefficient, bias, squashing), or
            ``"max"``, 2x2 max pooling without parameters or squashing.
        rbf_rubbish_j: the constant ``j`` of eq. 9 (positive); see :func:`map_criterion`.
        learning_rate, momentum, weight_decay: of the SGD that stands in for the paper's stochastic
            diagonal Levenberg-Marquardt method. The MAP loss sums 84 squared errors per pattern, so
            its gradients are large and want a small rate (0.002 with momentum 0.9); the linear
            output with cross-entropy wants a larger one (about 0.1).
        lr_schedule: ``"paper"``, ``"cosine"`` or ``"constant"`` (see :meth:`configure_optimizers`).
        input_channels: channels of the input images (1 for the paper's grey levels).
        input_size: side of the square input, at least 32. Larger inputs give C5 maps larger than
            1x1 (the reason the paper calls C5 convolutional) and a wider F6.

    Raises:
        ValueError: for an unknown option, an RBF output with ``num_classes != 10``, a ``j`` that is
            not positive, or inputs smaller than 32x32.
    """

    INFO = ModelInfo(
        name="lenet5",
        full_name="LeNet-5",
        module=2,
        pattern="engine-based",
        year_introduced=1998,
        authors=("Yann LeCun", "Léon Bottou", "Yoshua Bengio", "Patrick Haffner"),
        paper_title="Gradient-Based Learning Applied to Document Recognition",
        key_innovations=(
            "convolutional layers: local receptive fields with weights shared across the image",
            "trainable sub-sampling layers for invariance to small shifts and distortions",
            "a partial C3 connection table (Table I) that breaks symmetry between feature maps",
            "one network trained end to end by backpropagation from pixels to classes",
            "Euclidean RBF output units with fixed bitmap targets and a MAP training criterion",
        ),
        architecture_type="cnn",
        learning_algorithm="backpropagation",
        loss_function="MAP criterion on Euclidean RBF penalties (eq. 9); cross-entropy for the linear output",
        optimizer="SGD with momentum (stand-in for the paper's stochastic diagonal Levenberg-Marquardt)",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "see how weight sharing turns a fully connected layer into a convolution with few parameters",
            "count a network's parameters and connections layer by layer and match the paper's numbers",
            "understand how sub-sampling trades spatial resolution for invariance",
            "implement a partially connected layer (Table I) whose missing connections are constant zeros",
            "compare the RBF output and MAP criterion with today's linear layer and cross-entropy",
        ),
        estimated_training_time="minutes",
    )

    #: the layers whose outputs the feature-map figure shows: each convolution and sub-sampling,
    #: after its squashing function
    feature_map_layers = ("c1", "s2", "c3", "s4")

    def __init__(
        self,
        num_classes: int = 10,
        output_layer: OutputLayer = "rbf",
        c3_table: C3Table = "paper",
        activation: Activation = "scaled_tanh",
        subsampling: Subsampling = "trainable",
        rbf_rubbish_j: float = 10.0,
        learning_rate: float = 0.002,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "paper",
        input_channels: int = 1,
        input_size: int = 32,
    ) -> None:
        check_choice("output_layer", output_layer, OutputLayer)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        check_choice("c3_table", c3_table, C3Table)
        check_choice("activation", activation, Activation)
        check_choice("subsampling", subsampling, Subsampling)
        if output_layer == "rbf" and num_classes != 10:
            raise ValueError(
                f"output_layer='rbf' has fixed bitmaps for the 10 digits only, got num_classes={num_classes}; "
                "use output_layer='linear' for another number of classes"
            )
        if rbf_rubbish_j <= 0:
            raise ValueError(f"rbf_rubbish_j must be positive (eq. 9), got {rbf_rubbish_j}")
        c5_side = _c5_side(input_size)
        if c5_side < 1:
            raise ValueError(
                f"LeNet-5 needs inputs of at least 32x32 so that C5's 5x5 kernels fit on S4, got {input_size}; "
                "pad 28x28 digits to 32x32 as the paper does"
            )
        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()
        self.output_layer = output_layer
        self.rbf_rubbish_j = rbf_rubbish_j

        squashing = ScaledTanh if activation == "scaled_tanh" else nn.ReLU  # a class: one module per layer

        def subsampling_layer(maps: int) -> nn.Sequential:
            if subsampling == "trainable":
                return _layer(subsample=TrainableSubsampling(maps), squash=squashing())
            return _layer(subsample=nn.MaxPool2d(2))

        if c3_table == "paper":
            c3_convolution: nn.Module = PartiallyConnectedConv2d(C3_CONNECTIONS, kernel_size=5)
        else:
            c3_convolution = nn.Conv2d(6, 16, kernel_size=5)

        self.c1 = _layer(conv=nn.Conv2d(input_channels, 6, kernel_size=5), squash=squashing())
        self.s2 = subsampling_layer(6)
        self.c3 = _layer(conv=c3_convolution, squash=squashing())
        self.s4 = subsampling_layer(16)
        self.c5 = _layer(conv=nn.Conv2d(16, 120, kernel_size=5), squash=squashing())
        self.f6 = _layer(linear=nn.Linear(120 * c5_side * c5_side, BITMAP_HEIGHT * BITMAP_WIDTH), squash=squashing())
        if output_layer == "rbf":
            self.output: nn.Module = EuclideanRBF(digit_bitmaps())
        else:
            self.output = nn.Linear(BITMAP_HEIGHT * BITMAP_WIDTH, num_classes)

        self.set_sizes((input_channels, input_size, input_size), (num_classes,))
        self.initialise_weights()

    @classmethod
    def paper_sized(cls) -> LeNet5:
        """LeNet-5 of Section II.B: one 32x32 grey image in, ten digits out through the RBF units;
        60,000 trainable parameters and 340,908 connections, the paper's figures.

        Of the connections, 325,680 are multiply-adds with a weight (C1 117,600, C3 150,000,
        C5 48,000, F6 10,080); the rest are biases, sub-sampling sums and the RBF distances, which
        the FLOP counter leaves out. C3 runs as a dense 16 x 6 grid of kernels whose 36 missing
        connections of Table I are constant zeros: the counter sees what is computed, 240,000
        multiply-adds for C3 instead of the 150,000 of the paper's sparse layer.
        """
        return cls()

    def initialise_weights(self) -> None:
        """Appendix A: every weight uniform in [-2.4 / F_i, 2.4 / F_i], F_i the fan-in of its unit.

        The bound shrinks like 1/F_i rather than 1/sqrt(F_i) because some units receive highly
        correlated inputs, whose weighted sum grows linearly with their number; the aim is to start
        the weighted sums in the operating range of the sigmoid. Biases are drawn the same way: the
        paper counts them among the trainable parameters, as weights from an always-on input.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                weight_fan_in = bias_fan_in = module.weight[0].numel()  # in_channels x kernel area, or in_features
            elif isinstance(module, TrainableSubsampling):
                weight_fan_in = bias_fan_in = module.window**2  # the four inputs that are summed
            elif isinstance(module, PartiallyConnectedConv2d):
                bias_fan_in = module.map_fan_in  # C3: 75, 100 or 150 inputs, by map
                weight_fan_in = module.map_fan_in[module.kernel_map, None, None]  # of the map each kernel feeds
            else:
                continue
            with torch.no_grad():
                module.weight.uniform_(-1.0, 1.0).mul_(2.4 / weight_fan_in)
                module.bias.uniform_(-1.0, 1.0).mul_(2.4 / bias_fan_in)

    def forward(self, image: Tensor) -> Tensor:
        x = self.c1(image)  # C1: 6 maps, 28x28
        x = self.s2(x)  # S2: 6 maps, 14x14
        x = self.c3(x)  # C3: 16 maps, 10x10, Table I
        x = self.s4(x)  # S4: 16 maps, 5x5
        x = self.c5(x)  # C5: 120 maps, 1x1
        x = self.f6(torch.flatten(x, 1))  # F6: 84 units, a 7x12 "bitmap"
        if self.output_layer == "rbf":
            return -self.output(x)  # eq. 7 gives penalties y_i (small is good); the scores are -y_i
        return self.output(x)

    def criterion(self, scores: Tensor, target: Tensor) -> Tensor:
        """The MAP criterion of eq. 9 for the RBF output; softmax cross-entropy for the linear one."""
        if self.output_layer == "rbf":
            return map_criterion(scores, target, self.rbf_rubbish_j)
        return F.cross_entropy(scores, target)

    def configure_optimizers(self) -> Any:
        """SGD with momentum, standing in for the paper's stochastic diagonal Levenberg-Marquardt.

        ``lr_schedule``: ``"paper"`` decreases the rate per pass as the paper did (:func:`paper_lr_factor`,
        meant for passes over 60,000 digits); ``"cosine"`` anneals it to zero over ``max_epochs``
        (better suited to passes over a few thousand); ``"constant"`` keeps it.
        """
        return sgd_with_schedule(self, paper=per_epoch(paper_lr_factor))
