"""The Perceptron (Rosenblatt, 1957-1958): the first machine that learned from its mistakes.

F. Rosenblatt, "The Perceptron: a perceiving and recognizing automaton", Cornell Aeronautical
Laboratory report 85-460-1 (1957), and "The perceptron: a probabilistic model for information
storage and organization in the brain", Psychological Review 65(6), 386-408 (1958).

A single threshold unit computes a weighted sum of its inputs and fires when it reaches zero::

    s = w . x + b                      (the unit's net input)
    y = 1 if s >= 0 else 0             (the threshold: Heaviside step)

Learning is *error correction*: with the target written as t in {-1, +1}, after each sample the
weights move only when the unit was wrong::

    w <- w + eta * t * x               (only if y != target)
    b <- b + eta * t

Novikoff (1962) proved the *convergence theorem*: if a hyperplane separates the two classes with
margin gamma and every input lies within radius R, the rule makes at most (R / gamma)^2 mistakes,
whatever eta and the order of the samples. If no hyperplane separates them, the rule never settles:
the weights keep cycling. Minsky and Papert ("Perceptrons", 1969) made that limit famous with XOR,
which no single threshold unit can compute; the experiments here show both sides.

The loss logged is the *perceptron criterion* (Duda and Hart, 1973), the quantity the rule descends:
``J(w) = mean(max(0, -t * s))``; it is zero exactly when every sample is on its correct side.

The rule is written in NumPy (:class:`PerceptronLearner`) and trained through the thin adapter
(:class:`~ai_scratch.numpy_adapter.NumPyModel`), one whole batch per Lightning step.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from lightning.pytorch.callbacks import Callback

from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyLearner, NumPyModel
from callbacks.figures import ConfusionMatrix, DecisionBoundary, LearningCurves


def signs(targets: np.ndarray) -> np.ndarray:
    """Class labels {0, 1} as the targets t in {-1, +1} that the rules of a linear unit use."""
    return np.where(np.asarray(targets) == 1, 1.0, -1.0).astype(np.float32)


class LinearUnit(NumPyLearner):
    """The unit that Rosenblatt's rule and Widrow and Hoff's both train: ``s = w . x + b``.

    Args:
        input_dim: number of input features.
        learning_rate: the rule's step size (eta).
        init: ``"zeros"`` (the classic start) or ``"random"`` (small Gaussian weights).
        seed: seed of the generator used by ``init="random"``.

    Subclasses add the rule (:meth:`train_batch`) and the criterion it descends (:meth:`loss`).
    """

    def __init__(self, input_dim: int, learning_rate: float, init: Literal["zeros", "random"] = "zeros", seed: int = 0) -> None:
        if input_dim < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if init not in ("zeros", "random"):
            raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")
        self.input_dim = input_dim
        self.learning_rate = float(learning_rate)
        self.rng = np.random.default_rng(seed)
        self.weight = np.zeros(input_dim, dtype=np.float32)
        self.bias = np.zeros(1, dtype=np.float32)  # an array, so that it is updated in place
        if init == "random":
            self.weight[:] = self.rng.normal(0.0, 0.01, size=input_dim)

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.weight + self.bias[0]  # s = w . x + b


def linear_unit_flops(unit: LinearUnit) -> int:
    """FLOPs of ``s = w . x + b`` on one example: a multiply and an add per input (the bias add, as in
    torch's counter, is left out)."""
    return 2 * unit.input_dim


class PerceptronLearner(LinearUnit):
    """Rosenblatt's error-correction rule, in NumPy.

    Args:
        input_dim: number of input features.
        learning_rate: eta, the size of each correction. With zero initial weights it only scales
            the weights and changes no decision (the classic result); with random ones it matters.
        init: ``"zeros"`` (the classic start) or ``"random"`` (small Gaussian weights).
        seed: seed of the generator used by ``init="random"``.
    """

    def __init__(self, input_dim: int, learning_rate: float = 1.0, init: Literal["zeros", "random"] = "zeros", seed: int = 0) -> None:
        super().__init__(input_dim, learning_rate, init, seed)

    def train_batch(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One pass of the rule over the batch, sample by sample, in order."""
        targets_t = signs(targets)  # t in {-1, +1}
        seen = np.empty(len(inputs), dtype=np.float32)
        weight, bias, eta = self.weight, self.bias, np.float32(self.learning_rate)
        for i in range(len(inputs)):
            x, t = inputs[i], targets_t[i]
            s = float(x @ weight) + float(bias[0])
            seen[i] = s  # the score the unit gave before learning from this sample
            if (s >= 0.0) != (t > 0.0):  # a mistake: only mistakes teach the perceptron
                weight += eta * t * x
                bias += eta * t
        return seen

    def loss(self, scores: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean(np.maximum(0.0, -signs(targets).astype(np.float64) * scores)))  # perceptron criterion


class Perceptron(NumPyModel):
    """The Perceptron as a LightningModule: the NumPy rule behind the thin adapter.

    Args:
        input_dim: number of input features (2 for the toy planes, 4 for iris, 30 for breast cancer).
        learning_rate: eta of the rule.
        init: ``"zeros"`` or ``"random"`` initial weights.
        seed: seed of the learner's own generator.
    """

    INFO = ModelInfo(
        name="perceptron",
        full_name="Perceptron",
        module=1,
        pattern="numpy",
        year_introduced=1957,
        authors=("Frank Rosenblatt",),
        paper_title="The Perceptron: a perceiving and recognizing automaton",
        key_innovations=(
            "a neuron model whose weights are learned from examples",
            "error-correction learning rule",
            "convergence theorem for linearly separable data (Novikoff, 1962)",
        ),
        architecture_type="single-layer",
        learning_algorithm="perceptron-rule",
        loss_function="perceptron-criterion",
        optimizer="custom",
        framework="numpy",
        difficulty_level="beginner",
        key_learning_objectives=(
            "a linear threshold unit and its decision boundary, a line in the plane",
            "learning by correcting mistakes",
            "why linearly separable data is learned exactly and XOR never is",
        ),
        estimated_training_time="seconds",
        device_support=("cpu",),
    )

    def __init__(self, input_dim: int, learning_rate: float = 1.0, init: Literal["zeros", "random"] = "zeros", seed: int = 0) -> None:
        super().__init__(PerceptronLearner(input_dim, learning_rate, init, seed), num_classes=2)
        self.save_hyperparameters()
        self.input_size = (input_dim,)
        self.output_size = (1,)

    #: The Mark I Perceptron's association units: the inputs of each of its learning response units.
    MARK_I_ASSOCIATION_UNITS = 512

    @classmethod
    def paper_sized(cls, input_dim: int = MARK_I_ASSOCIATION_UNITS) -> Perceptron:
        """One response unit of Rosenblatt's Mark I Perceptron: 512 inputs, 513 weights with the bias.

        The Mark I, the machine built from the 1957 report, had a retina of 400 photocells (20 x 20
        sensory units) wired at random, and for good, to 512 association units, which fed 8
        response units. Only the association-to-response weights learned (motor-driven
        potentiometers), by the error-correction rule. This class is one such learning unit, so its
        input is what a response unit saw: the 512 association units (not the 400 photocells,
        whose fixed random wiring learned nothing). Its forward pass is one weighted sum,
        512 multiply-adds (:meth:`forward_flops`).
        """
        model = cls(input_dim)
        model.set_sizes((input_dim,), (1,))
        return model

    def forward_flops(self) -> int:
        """Two per weight of the unit (``w . x``: a multiply and an add per input).

        The adapter's count takes the learner's matrices, and this unit's weights are a vector."""
        return linear_unit_flops(self.learner)

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The generic figures that apply to a threshold unit: learning curves, confusion matrix and,
        for two inputs, its line. (Its rule has no gradient and it has no convolution: the gradient
        flow and the filters never apply.)"""
        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            ConfusionMatrix(every_n_epochs=every_n_epochs),
            DecisionBoundary(every_n_epochs=every_n_epochs),
        ]
