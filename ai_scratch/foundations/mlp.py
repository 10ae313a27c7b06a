"""The multi-layer perceptron trained by backpropagation (Rumelhart, Hinton and Williams, 1986).

D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning representations by back-propagating
errors", Nature 323, 533-536 (1986); and their longer chapter "Learning internal representations
by error propagation", in Parallel Distributed Processing, vol. 1, ch. 8 (MIT Press, 1986), which
holds the XOR experiments and the discussion of local minima.

A layered network of units. Each unit j sums its inputs (the bias is a weight from a unit that is
always on) and passes the sum through a smooth non-linearity, so that the error can be
differentiated with respect to every weight (the paper's equations, with its symbols)::

    x_j = sum_i y_i w_ji                 (1)  total input of unit j
    y_j = 1 / (1 + exp(-x_j))            (2)  its output (the logistic; tanh and ReLU are options)
    E   = 1/2 sum_c sum_j (y_jc - d_jc)^2 (3)  squared error over cases c and output units j

The backward pass runs the chain rule from the output layer down, one layer at a time::

    dE/dy_j  = y_j - d_j                 (4)  at an output unit
    dE/dx_j  = dE/dy_j * y_j (1 - y_j)   (5)  through the logistic
    dE/dw_ji = dE/dx_j * y_i             (6)  the gradient of a weight
    dE/dy_i  = sum_j dE/dx_j * w_ji      (7)  the error sent back to the layer below

and the weights move down the gradient, plainly or with "momentum" alpha smoothing the steps::

    Delta w    = -epsilon dE/dw                            (8)
    Delta w(t) = -epsilon dE/dw(t) + alpha Delta w(t-1)    (9)

The hidden units are free to find their own features: in XOR two hidden units each draw a line,
and the output unit combines the two half-planes. This is what the Perceptron (1957) could not
do and why the paper is called the breakthrough of the 1980s.

Its two weaknesses are shown here too. *Local minima*: gradient descent can stop where the
error is not the lowest; the paper says it happened "only in networks that have just enough
connections to perform the task", and the minimal 2-2-1 net on XOR is exactly that.
*Vanishing gradients*: eq. (5) multiplies the error by y (1 - y) <= 1/4 at every logistic layer
(and eq. (7) by the small initial weights), so a deep sigmoid stack sends back to its first
layers an error many orders of magnitude smaller than at the top, and they barely learn. ReLU
(Nair and Hinton, 2010; Glorot, Bordes and Bengio, 2011), He initialisation (He et al., 2015),
batch normalisation and residual connections (ResNet, 2015) were the answers.

Conventions of this implementation:

* The error is the *mean* over the cases of a batch (the paper sums), so that the learning rate
  does not depend on the batch size. ``loss="mse"`` is the paper's eq. (3) with logistic output
  units; ``loss="cross_entropy"`` (the default) is the log-likelihood that later work preferred:
  its gradient at the output, ``y - d``, has no y (1 - y) factor to stall a saturated output unit.
* Two classes: one output unit, whose total input x is the score (class 1 when x >= 0, i.e.
  y >= 1/2). C > 2 classes: C output units; softmax for cross-entropy, C logistic units with
  one-hot targets for ``mse`` (the paper's coding); the class is the largest score.
* Weights are stored as ``(fan_in, fan_out)`` matrices, ``weight1`` next to the input: a layer
  is ``y @ W + b``.

The rule is written in NumPy (:class:`MLPLearner`) and trained through the thin adapter
(:class:`MLP`), one whole batch (or mini-batch) per Lightning step. Its figure of the hidden units
lives in ``mlp_figures.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from lightning.pytorch.callbacks import Callback

from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyLearner, NumPyModel
from callbacks.figures import default_figures

Activation = Literal["sigmoid", "tanh", "relu"]
LossName = Literal["cross_entropy", "mse"]
Init = Literal["uniform", "xavier", "he"]

ACTIVATIONS = ("sigmoid", "tanh", "relu")
LOSSES = ("cross_entropy", "mse")
INITS = ("uniform", "xavier", "he")


# ---------------------------------------------------------------------- activations
def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic 1 / (1 + e^-x), eq. (2), written with tanh so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def activate(name: str, x: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    return np.maximum(x, 0.0)  # relu


def derivative(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy/dx of the activation, from its input x and output y (eq. 5 uses y (1 - y))."""
    if name == "sigmoid":
        return y * (1.0 - y)  # at most 1/4: the root of the vanishing gradient
    if name == "tanh":
        return 1.0 - y * y  # at most 1
    return (x > 0).astype(x.dtype)  # relu: 1 where the unit is on, 0 elsewhere (also at x = 0)


class MLPLearner(NumPyLearner):
    """A layered network trained by hand-written backpropagation with momentum, in NumPy.

    Args:
        input_dim: number of input units.
        hidden: the number of units of each hidden layer, input side first; ``[]`` is logistic
            (or softmax) regression.
        activation: the non-linearity of the hidden units: one name for every hidden layer, or
            one per hidden layer (``"sigmoid"``, ``"tanh"``, ``"relu"``).
        num_classes: 2 gives one output unit; more give one output unit per class.
        learning_rate: epsilon of eq. (8)-(9).
        momentum: alpha of eq. (9); 0 is plain gradient descent.
        loss: ``"cross_entropy"`` or ``"mse"`` (the paper's eq. 3; see the module docstring).
        init: ``"uniform"``: the paper's "small random weights", every weight and bias drawn from
            U(-init_range, init_range), which breaks the symmetry between hidden units (equal
            weights would stay equal forever); ``"xavier"``: Glorot and Bengio (2010), uniform with
            variance 2 / (fan_in + fan_out), zero biases; ``"he"``: He et al. (2015), normal with
            variance 2 / fan_in, zero biases, for ReLU.
        init_range: half-width of ``"uniform"``.
        seed: seed of the generator that draws the initial weights.
        dtype: float type of the weights and of the arithmetic (float32 by default, as the adapter
            mirrors them; float64 for exact gradient checks).

    The last step's gradients (:meth:`gradients`) and the momentum buffers (in
    :meth:`state_dict`) are kept, so the gradient-flow figure can read them and a resumed fit
    continues exactly.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: Sequence[int] = (8,),
        activation: Activation | Sequence[Activation] = "sigmoid",
        num_classes: int = 2,
        learning_rate: float = 0.5,
        momentum: float = 0.9,
        loss: LossName = "cross_entropy",
        init: Init = "uniform",
        init_range: float = 0.5,
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        hidden = [int(h) for h in hidden]
        activations = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
        if input_dim < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"every hidden layer needs at least 1 unit, got {hidden}")
        if len(activations) != len(hidden):
            raise ValueError(f"one activation per hidden layer: {len(hidden)} layers, got {activations}")
        if any(a not in ACTIVATIONS for a in activations):
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activations}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if init_range <= 0:
            raise ValueError(f"init_range must be positive, got {init_range}")
        self.sizes = [input_dim, *hidden, 1 if num_classes == 2 else num_classes]
        self.activations = activations
        self.num_classes = num_classes
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.loss_name = loss
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)

        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            if init == "uniform":
                weight = self.rng.uniform(-init_range, init_range, size=(fan_in, fan_out))
                bias = self.rng.uniform(-init_range, init_range, size=fan_out)
            elif init == "xavier":
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                weight, bias = self.rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)
            else:  # he
                weight, bias = self.rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out)), np.zeros(fan_out)
            self.weights.append(weight.astype(self.dtype))
            self.biases.append(bias.astype(self.dtype))
        # Delta w(t-1) of eq. (9), one buffer per learned array
        self.velocity = {name: np.zeros_like(array) for name, array in self.parameters().items()}
        self._gradients: dict[str, np.ndarray] | None = None
        # sum over all steps so far of ||dE/dW_l||, one entry per layer of weights
        self.gradient_norm_sums = np.zeros(self.num_layers, dtype=np.float64)

    @property
    def num_layers(self) -> int:
        """Layers of weights: hidden layers plus the output layer."""
        return len(self.weights)

    def parameters(self) -> dict[str, np.ndarray]:
        named = {}
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases), start=1):
            named[f"weight{layer}"], named[f"bias{layer}"] = weight, bias
        return named

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Total inputs x (eq. 1) and outputs y (eq. 2) of every layer.

        Returns ``(totals, outputs)``: ``outputs[0]`` is the input, ``outputs[l]`` the output of
        hidden layer l, and ``totals[-1]`` the output layer's total inputs, the scores.
        """
        y = np.asarray(inputs, dtype=self.dtype)
        totals, outputs = [], [y]
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = y @ weight + bias  # eq. (1)
            totals.append(x)
            if layer < len(self.activations):
                y = activate(self.activations[layer], x)  # eq. (2)
                outputs.append(y)
        return totals, outputs

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        totals, _ = self.forward(inputs)
        return totals[-1][:, 0] if self.num_classes == 2 else totals[-1]

    def hidden_outputs(self, inputs: np.ndarray) -> list[np.ndarray]:
        """What each hidden layer computes for ``inputs``: the "internal representations"."""
        return self.forward(inputs)[1][1:]

    # ------------------------------------------------------------------ loss
    def _targets(self, targets: np.ndarray) -> np.ndarray:
        """Desired outputs d: (N, 1) in {0, 1} for one output unit, one-hot (N, C) otherwise."""
        targets = np.asarray(targets).astype(np.int64)
        if self.num_classes == 2:
            return targets.astype(self.dtype)[:, None]
        return np.eye(self.num_classes, dtype=self.dtype)[targets]

    def loss(self, scores: np.ndarray, targets: np.ndarray) -> float:
        x = np.asarray(scores, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        d = self._targets(targets).astype(np.float64)
        if self.loss_name == "mse":  # eq. (3), per case: 1/2 sum_j (y_j - d_j)^2
            return float(0.5 * np.mean(np.sum((sigmoid(x) - d) ** 2, axis=1)))
        if self.num_classes == 2:  # -[d log y + (1 - d) log(1 - y)], from the score, stably
            return float(np.mean(np.logaddexp(0.0, x) - d * x))
        log_partition = np.logaddexp.reduce(x, axis=1)  # softmax cross-entropy
        return float(np.mean(log_partition - np.sum(d * x, axis=1)))

    # ------------------------------------------------------------------ backward
    def backward(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Forward and backward pass: the scores, and dE/dw for every learned array by name.

        E is the mean over the batch of the per-case error, so every gradient carries a 1 / N.
        """
        totals, outputs = self.forward(inputs)
        n = len(outputs[0])
        x_out = totals[-1]
        d = self._targets(targets)
        y_out = sigmoid(x_out) if self.num_classes == 2 or self.loss_name == "mse" else _softmax(x_out)
        if self.loss_name == "mse":
            delta = (y_out - d) * y_out * (1.0 - y_out)  # eq. (4) then eq. (5)
        else:
            delta = y_out - d  # cross-entropy through the logistic or the softmax: dE/dx = y - d
        delta = delta / n  # the mean over cases
        gradients: dict[str, np.ndarray] = {}
        for layer in range(self.num_layers - 1, -1, -1):
            gradients[f"weight{layer + 1}"] = outputs[layer].T @ delta  # eq. (6): dE/dx_j * y_i
            gradients[f"bias{layer + 1}"] = delta.sum(axis=0)  # the bias unit's y_i is 1
            if layer > 0:
                error = delta @ self.weights[layer].T  # eq. (7): dE/dy_i = sum_j dE/dx_j w_ji
                name = self.activations[layer - 1]
                delta = error * derivative(name, totals[layer - 1], outputs[layer])  # eq. (5)
        scores = x_out[:, 0] if self.num_classes == 2 else x_out
        return scores, {name: gradients[name] for name in self.parameters()}

    def train_batch(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One step of eq. (9) on the whole batch; returns the scores before the step."""
        scores, gradients = self.backward(inputs, targets)
        epsilon, alpha = self.dtype.type(self.learning_rate), self.dtype.type(self.momentum)
        for name, array in self.parameters().items():
            step = self.velocity[name]
            step *= alpha
            step -= epsilon * gradients[name]  # Delta w(t) = -eps dE/dw(t) + alpha Delta w(t-1)
            array += step
        self._gradients = gradients
        for layer in range(self.num_layers):
            self.gradient_norm_sums[layer] += float(np.linalg.norm(gradients[f"weight{layer + 1}"]))
        return scores

    def gradients(self) -> dict[str, np.ndarray] | None:
        return self._gradients

    def gradient_norm_ratio(self) -> float | None:
        """Mean over all steps so far of ||dE/dW_1||, over the same mean for the last layer W_L.

        The first layer of weights against the output layer, over the whole of training: the
        number the gradient-flow figure prints as "mean norm of first layer / last layer" (when it
        records every step). Far below 1 (1e-2 and less) the first layers barely learn: the
        vanishing gradient. A mean over training, not the last step's value, because a deep
        sigmoid net soon reaches a plateau where the output layer's gradient vanishes too.
        ``None`` before the first step.
        """
        first, last = self.gradient_norm_sums[0], self.gradient_norm_sums[-1]
        if last == 0:
            return None if first == 0 else math.inf
        return float(first / last)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["velocity"] = {name: array.copy() for name, array in self.velocity.items()}
        state["gradient_norm_sums"] = self.gradient_norm_sums.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        velocity = state.get("velocity")
        if velocity is None:
            raise KeyError("learner state has no 'velocity': the momentum buffers are needed to resume exactly")
        for name, array in velocity.items():
            np.copyto(self.velocity[name], np.asarray(array, dtype=self.dtype))
        self.gradient_norm_sums[:] = np.asarray(state.get("gradient_norm_sums", 0.0), dtype=np.float64)
        self._gradients = None


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- the Lightning model
class MLP(NumPyModel):
    """The multi-layer perceptron as a LightningModule: hand-written backprop behind the adapter.

    Args:
        input_dim: number of input features (2 for the toy planes).
        hidden: units per hidden layer, input side first (``[2]`` is the minimal XOR net).
        activation: hidden non-linearity, one for all hidden layers or one per layer.
        num_classes: number of classes (2: one output unit).
        learning_rate: epsilon, the step size.
        momentum: alpha of the paper's eq. (9).
        loss: ``"cross_entropy"`` or the paper's ``"mse"``.
        init: ``"uniform"`` (the paper's small random weights), ``"xavier"`` or ``"he"``.
        init_range: half-width of the ``"uniform"`` initialisation.
        seed: seed of the initial weights.

    Besides the standard metrics it logs ``grad_norm_ratio`` every epoch: the mean gradient norm
    of the first layer of weights over that of the output layer, over all steps so far (see
    :meth:`MLPLearner.gradient_norm_ratio`).
    """

    INFO = ModelInfo(
        name="mlp",
        full_name="Multi-Layer Perceptron",
        module=1,
        pattern="numpy",
        year_introduced=1986,
        authors=("David E. Rumelhart", "Geoffrey E. Hinton", "Ronald J. Williams"),
        paper_title="Learning representations by back-propagating errors",
        key_innovations=(
            "backpropagation: the chain rule sends the output error back through every layer",
            "hidden units that learn their own features (internal representations)",
            "smooth (logistic) units, so that the error is differentiable in every weight",
            "momentum to speed up gradient descent",
        ),
        architecture_type="multi-layer",
        learning_algorithm="backprop",
        loss_function="cross-entropy|mse",
        optimizer="sgd-momentum",
        framework="numpy",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "forward and backward pass through a layered network, by hand",
            "why a hidden layer solves XOR, which no single unit can",
            "local minima: a minimal network can get stuck",
            "vanishing gradients: why deep sigmoid networks barely train",
        ),
        estimated_training_time="seconds",
        device_support=("cpu",),
    )

    def __init__(
        self,
        input_dim: int,
        hidden: list[int] | None = None,
        activation: Activation | list[Activation] = "sigmoid",
        num_classes: int = 2,
        learning_rate: float = 0.5,
        momentum: float = 0.9,
        loss: LossName = "cross_entropy",
        init: Init = "uniform",
        init_range: float = 0.5,
        seed: int = 0,
    ) -> None:
        hidden = [8] if hidden is None else list(hidden)
        learner = MLPLearner(input_dim, hidden, activation, num_classes, learning_rate, momentum, loss, init, init_range, seed)
        super().__init__(learner, num_classes=num_classes)
        self.save_hyperparameters()
        self.input_size = (input_dim,)
        self.output_size = (1 if num_classes == 2 else num_classes,)

    @classmethod
    def paper_sized(cls) -> MLP:
        """The symmetry detector of the Nature paper's Figure 1: 6 inputs, 2 hidden units, 1 output
        unit, all logistic, trained on the squared error of eq. (3); 17 weights and biases.

        It is the paper's first example and the only one that is a plain layered network: the
        family-trees network of Figures 2-4 gives each of its two inputs (person, relationship) its
        own group of 6 units, a block-structured first layer that a fully connected MLP does not
        express. The paper drew the initial weights uniformly from [-0.3, 0.3]; its step sizes
        (epsilon 0.1 and alpha 0.9 on a summed error) are not copied, since this implementation
        averages the error over the cases. One forward pass: 6 x 2 + 2 x 1 = 14 multiply-adds.
        """
        model = cls(input_dim=6, hidden=[2], activation="sigmoid", num_classes=2, loss="mse", init="uniform", init_range=0.3)
        model.set_sizes((6,), (1,))
        return model

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        ratio = self.learner.gradient_norm_ratio()
        if ratio is not None:
            self.log("grad_norm_ratio", ratio, on_step=False, on_epoch=True, sync_dist=True)

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The generic figures, the gradient flow recorded at every step and, for two inputs (the toy
        planes), the hidden units' lines and representation
        (:class:`~ai_scratch.foundations.mlp_figures.HiddenUnits`)."""
        from ai_scratch.foundations.mlp_figures import HiddenUnits

        # Full-batch by default (one step per epoch, a few hundred in all): recording every step makes
        # the gradient-flow figure's first/last ratio the grad_norm_ratio that the claims check.
        figures = default_figures(every_n_epochs, feature_map_layers=self.feature_map_layers, gradient_flow_every_n_steps=1)
        if self.learner.sizes[0] == 2:
            figures.append(HiddenUnits(every_n_epochs=every_n_epochs))
        return figures
