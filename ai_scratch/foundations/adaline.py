"""ADALINE (Widrow and Hoff, 1960): the adaptive linear neuron and the LMS rule.

B. Widrow and M. E. Hoff, "Adaptive switching circuits", IRE WESCON Convention Record, part 4,
96-104 (1960).

ADALINE ("adaptive linear neuron") has the Perceptron's unit, a weighted sum and a threshold::

    s = w . x + b                      (the linear output)
    y = 1 if s >= 0 else 0             (the quantizer; Widrow and Hoff wrote it as +1 / -1)

What is new is *where the error is measured*. Rosenblatt's rule looks at the thresholded output
and moves only after a mistake. Widrow and Hoff measure the error on the linear output, before the
threshold: a continuous quantity, non-zero even when the answer is right. With the target written
as t in {-1, +1}, after each sample::

    e = t - s                          (the error of the linear output)
    w <- w + eta * e * x               (LMS: the Widrow-Hoff, or delta, rule)
    b <- b + eta * e

A correct answer with s = 0.3 still pulls s towards 1; an overshoot s = 3 pushes it back. This is
a step down the gradient of the instantaneous squared error e^2 / 2, so on average the rule
descends the *mean squared error* of the linear output, the loss logged here::

    J(w) = mean (t - s)^2              (exactly 1 at w = 0, since t^2 = 1)

(Widrow and Lehr, "30 years of adaptive neural networks", 1990, call the 1960 form alpha-LMS:
each adaptation removes the fraction alpha of the current error, dw = alpha * e * x / |x|^2. The
1960 machine's inputs were +-1 switches, so |x|^2 = n + 1 was a constant and that is this rule
with eta = alpha / (n + 1).)

**Regression.** Nothing in the rule needs the target to be +-1: Widrow and Hoff adapt the linear
output towards any *desired output* d, w <- w + 2 mu eps x with eps = d - y (the same line, with
eta = 2 mu and y = s). Given real-valued targets, LMS fits the line d ~ w . x + b by least squares,
the adaptive filter of signal processing. Here float targets are the desired outputs themselves
(a regression: the loss is their mean squared error and there is no accuracy), and integer class
labels 0 and 1 become d = -1 and +1 (a classifier, as above); one unit cannot tell more than two
classes apart, so any other label is an error.

**Least squares.** Write the bias as a weight on a constant input 1: x~ = (x, 1), w~ = (w, b).
Then J is a quadratic bowl::

    J(w~) = E[t^2] - 2 p . w~ + w~' R w~,      R = E[x~ x~'],  p = E[t x~]

whose bottom solves the normal equations R w~* = p: the least-squares weights, those that
``numpy.linalg.lstsq`` fits to the +-1 targets. On noisy linear data LMS settles there, which for
two Gaussian classes with a shared covariance is Fisher's discriminant direction: a boundary with
room on both sides, where the Perceptron stops at the first line that happens to separate.

**The step size.** Steepest descent on J over a batch (``mode="batch"``),
w~ <- w~ + eta (p - R w~), moves the error v = w~ - w~* by::

    v <- (I - eta R) v

Each eigen-direction of R shrinks by the factor |1 - eta lambda| per step, so the rule converges
for 0 < eta < 2 / lambda_max and diverges above: the direction of lambda_max then grows
geometrically. (Widrow writes the rule w <- w + 2 mu e x and the bound 0 < mu < 1 / lambda_max:
the same line.) The online rule follows the same mean path for a small eta, jittering around w~*
with an amplitude that grows with eta (the *misadjustment*); its own safe range is narrower. The
step-size experiments therefore use ``mode="batch"`` on the whole training split, where the line
2 / lambda_max is exact; ``relative_learning_rate`` places eta relative to it.

**The weakness.** The bottom of the bowl is the best *linear fit* to +-1 targets, not the best
classifier, and no line classifies XOR: with its four clusters balanced around the origin, p = 0,
so w~* = 0 and the unit's output hovers around 0, its sign decided by noise.

**Divergence** (eta too large) must not crash a run or fill it with inf: the rule stops before any
update whose error on the linear output exceeds ``DIVERGENCE_ERROR`` (a converging LMS keeps its
errors near the +-1 targets) and before any update that would leave a non-finite weight; the
learner then says ``diverged`` and keeps its last finite weights, and the model stops training.

The rule is written in NumPy (:class:`AdalineLearner`) and trained through the thin adapter
(:class:`~ai_scratch.numpy_adapter.NumPyModel`), one whole batch per Lightning step.
:class:`Adaline` can also train Rosenblatt's :class:`~ai_scratch.foundations.perceptron.PerceptronLearner`
on the same batches (``compare_perceptron``), for the figure
:class:`~ai_scratch.foundations.adaline_figures.AdalineVsPerceptron`. The figures live in
``adaline_figures.py``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassAccuracy

from ai_scratch.foundations.perceptron import LinearUnit, PerceptronLearner, linear_unit_flops, signs
from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import (
    NumPyModel,
    as_array,
    as_tensor,
    reduce_arrays,
    state_to_arrays,
    state_to_tensors,
    targets_array,
)
from callbacks.figures import default_figures

DIVERGENCE_ERROR = 1e10
"""An error |t - s| above this on the linear output stops the rule: the learner has diverged.

The class targets are +-1, the least-squares fit's outputs have a mean square below 1 (it is a projection
of the targets), and a converging LMS never strays far from it; an error ten billion times the
targets is past any doubt, and its square (1e20) is still far from float32's limit (3e38), so every
number logged stays finite. Real-valued targets are held to the same bound, in their own units: it
assumes targets far below 1e10."""

Mode = Literal["online", "batch"]


def is_real_valued(targets: np.ndarray) -> bool:
    """Whether targets are desired outputs (floats: a regression) rather than class labels."""
    return bool(np.issubdtype(np.asarray(targets).dtype, np.floating))


def desired_output(targets: np.ndarray) -> np.ndarray:
    """The desired output d of the linear unit for each example, in float32.

    Real-valued (float) targets are the desired outputs themselves; class labels 0 and 1 (integers
    or booleans) become d = -1 and +1. Any other label raises a ``ValueError``: one unit separates
    two classes, not more.
    """
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.ndim != 1:
        raise ValueError(f"ADALINE has one output: expected one target per example, got targets of shape {targets.shape}")
    if is_real_valued(targets):
        return targets.astype(np.float32)
    labels = np.unique(targets)
    if not np.isin(labels, (0, 1)).all():
        shown = ", ".join(str(label) for label in labels[:10]) + (", ..." if len(labels) > 10 else "")
        raise ValueError(
            f"ADALINE's one unit separates two classes, labelled 0 and 1; got {len(labels)} class labels ({shown}): "
            "for a regression give real-valued (float) targets"
        )
    return signs(targets)


def augment(inputs: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """x~ = (x, 1): the bias as the weight of a constant input (float64 for the statistics)."""
    inputs = np.asarray(inputs, dtype=dtype)
    return np.concatenate([inputs, np.ones((len(inputs), 1), dtype=dtype)], axis=1)


class AdalineLearner(LinearUnit):
    """Widrow and Hoff's LMS rule on the linear output, in NumPy.

    The targets handed to :meth:`train_batch`, :meth:`observe` and :meth:`loss` are class labels
    0 and 1 (integers: the desired outputs are -1 and +1) or real values (floats: the desired
    outputs themselves, a regression); see :func:`desired_output`.

    Args:
        input_dim: number of input features.
        learning_rate: eta. Ignored when ``relative_learning_rate`` is given.
        mode: ``"online"``, the Widrow-Hoff rule sample by sample, in the batch's order; or
            ``"batch"``, one step of steepest descent on the batch's mean squared error,
            ``w~ <- w~ + eta * mean(e x~)`` (the setting of the 2 / lambda_max analysis).
        relative_learning_rate: if given, eta = relative_learning_rate * 2 / lambda_max, with
            lambda_max the largest eigenvalue of the correlation matrix R of the observed inputs
            (:meth:`observe`): below 1 converges in batch mode, above 1 diverges.
        init: ``"zeros"`` (the classic start; the distance to the least-squares weights is then
            exactly 1) or ``"random"`` (small Gaussian weights).
        seed: seed of the generator used by ``init="random"``.

    The learner also keeps the sufficient statistics of the data given to :meth:`observe` (sums of
    x~ x~', d x~ and d^2), from which it reports the least-squares weights, their mean squared
    error, lambda_max and the distance of its own weights to them.

    Example::

        >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
        >>> y = np.array([1, 1, 1, 0])
        >>> learner = AdalineLearner(input_dim=2, mode="batch", relative_learning_rate=0.9)
        >>> learner.observe(x, y)
        >>> for _ in range(300):
        ...     _ = learner.train_batch(x, y)
        >>> bool(learner.lstsq_distance() < 1e-4)
        True
    """

    def __init__(
        self,
        input_dim: int,
        learning_rate: float = 0.01,
        mode: Mode = "online",
        relative_learning_rate: float | None = None,
        init: Literal["zeros", "random"] = "zeros",
        seed: int = 0,
    ) -> None:
        if mode not in ("online", "batch"):
            raise ValueError(f"mode must be 'online' or 'batch', got {mode!r}")
        if relative_learning_rate is not None and relative_learning_rate <= 0:
            raise ValueError(f"relative_learning_rate must be positive or None, got {relative_learning_rate}")
        super().__init__(input_dim, learning_rate, init, seed)
        self.mode = mode
        self.relative_learning_rate = relative_learning_rate
        self.regression = False  # whether the last targets learned from were real values
        self.updates = 0  # batches learned from
        self.diverged = False
        self.diverged_at: int | None = None  # the batch (counted from 1) in which the rule stopped
        self.last_scores: np.ndarray | None = None  # what the last train_batch returned
        self._gradient: dict[str, np.ndarray] | None = None
        self.reset_statistics()

    # ------------------------------------------------------------------ the rule
    def train_batch(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One pass of LMS over the batch (online) or one steepest-descent step on it (batch).

        Returns the linear outputs s the rule saw: in online mode each sample's before its own
        update, in batch mode all of them before the step. Once diverged, it only scores.
        """
        if self.relative_learning_rate is not None and self._count == 0:
            raise RuntimeError("relative_learning_rate needs the data's lambda_max: call observe(inputs, targets) first")
        if self.diverged:
            seen = self.scores(inputs)
        else:
            d = desired_output(targets)
            self.regression = is_real_valued(targets)
            before = self.weight.copy(), self.bias.copy()
            self.updates += 1
            seen = self._online(inputs, d) if self.mode == "online" else self._steepest_descent(inputs, d)
            if not (np.isfinite(self.weight).all() and np.isfinite(self.bias).all()):
                self.weight[:], self.bias[:] = before  # keep the last finite weights
                self._stop()
        self.last_scores = seen
        return seen

    def _online(self, inputs: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Widrow-Hoff, sample by sample: w~ <- w~ + eta (d - s) x~, with x~ = (x, 1), w~ = (w, b)."""
        rows = augment(inputs, np.float32)
        w = np.concatenate([self.weight, self.bias])  # the bias as the weight of the constant input
        seen = np.empty(len(inputs), dtype=np.float32)
        eta = self.learning_rate
        stop = len(inputs)
        for i, (x, desired) in enumerate(zip(rows, d.tolist())):
            s = float(x @ w)
            seen[i] = s  # the output the unit gave before learning from this sample
            error = desired - s  # eps = d - y, on the linear output, not on the thresholded one
            if abs(error) > DIVERGENCE_ERROR:
                stop = i
                break
            w += np.float32(eta * error) * x
        self.weight[:], self.bias[:] = w[:-1], w[-1:]
        if stop < len(inputs):
            self._stop()
            seen[stop:] = self.scores(inputs[stop:])
        # the mean of the per-sample gradients d(e^2)/dw~ = -2 e x~ that the rule followed
        gradient = -2.0 * (rows[:stop].T @ (d[:stop] - seen[:stop])) / max(stop, 1)
        self._gradient = {"weight": gradient[:-1], "bias": gradient[-1:]}
        return seen

    def _steepest_descent(self, inputs: np.ndarray, d: np.ndarray) -> np.ndarray:
        """One step on the batch's MSE: w~ <- w~ + eta * mean(e x~), i.e. v <- (I - eta R) v."""
        seen = self.scores(inputs).astype(np.float32)
        error = d - seen
        self._gradient = {
            "weight": -2.0 * (inputs.T @ error) / len(inputs),  # grad of J = mean e^2
            "bias": np.array([-2.0 * error.mean()]),
        }
        if np.abs(error).max(initial=0.0) > DIVERGENCE_ERROR:
            self._stop()
            return seen
        eta = np.float32(self.learning_rate)
        self.weight += eta * (inputs.T @ error) / np.float32(len(inputs))
        self.bias += eta * error.mean(dtype=np.float32)
        return seen

    def _stop(self) -> None:
        if not self.diverged:
            self.diverged, self.diverged_at = True, self.updates

    def loss(self, scores: np.ndarray, targets: np.ndarray) -> float:
        """Mean squared error of the linear output, the quantity LMS descends (in float64)."""
        error = desired_output(targets).astype(np.float64) - np.asarray(scores, dtype=np.float64)
        return float(np.mean(error**2))

    def gradients(self) -> dict[str, np.ndarray] | None:
        """Gradient of the MSE for the last batch: exact in batch mode (at the weights before the
        step); in online mode the mean of the per-sample gradients -2 e x the rule followed."""
        return self._gradient

    # ------------------------------------------------------------------ least squares
    def reset_statistics(self) -> None:
        """Forget the observed data."""
        d = self.input_dim + 1
        self._xx, self._xt, self._tt, self._count = np.zeros((d, d)), np.zeros(d), 0.0, 0

    def observe(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Add a batch to the statistics of the training data (not a learning step).

        With ``relative_learning_rate`` set, eta is recomputed from the updated lambda_max.
        """
        x, d = augment(inputs), desired_output(targets).astype(np.float64)
        self.regression = is_real_valued(targets)
        self.load_statistics({"xx": self._xx + x.T @ x, "xt": self._xt + x.T @ d, "tt": self._tt + d @ d, "count": self._count + len(d)})

    def statistics(self) -> dict[str, Any]:
        """The sums behind R and p: ``xx`` = sum x~ x~', ``xt`` = sum d x~, ``tt`` = sum d^2, ``count``."""
        return {"xx": self._xx.copy(), "xt": self._xt.copy(), "tt": self._tt, "count": self._count}

    def load_statistics(self, statistics: dict[str, Any]) -> None:
        """Replace the statistics (e.g. by sums over all processes); updates a relative eta."""
        self._xx = np.asarray(statistics["xx"], dtype=np.float64).reshape(self.input_dim + 1, self.input_dim + 1)
        self._xt = np.asarray(statistics["xt"], dtype=np.float64).reshape(self.input_dim + 1)
        self._tt, self._count = float(statistics["tt"]), int(statistics["count"])
        if self.relative_learning_rate is not None and self._count > 0:
            self.learning_rate = float(self.relative_learning_rate * self.stability_limit())

    def _require_statistics(self) -> None:
        if self._count == 0:
            raise RuntimeError("no data observed: call observe(inputs, targets) with the training data first")

    def correlation(self) -> tuple[np.ndarray, np.ndarray]:
        """R = mean x~ x~' and p = mean d x~ of the observed data (x~ = (x, 1))."""
        self._require_statistics()
        return self._xx / self._count, self._xt / self._count

    def least_squares(self) -> np.ndarray:
        """w~* = (w*, b*), the bottom of the bowl: R w~* = p (minimum norm if R is singular)."""
        R, p = self.correlation()
        return np.linalg.lstsq(R, p, rcond=None)[0]

    def least_squares_loss(self) -> float:
        """J(w~*) = E[d^2] - p . w~*, the lowest MSE any weights reach on the observed data."""
        _, p = self.correlation()
        return float(self._tt / self._count - p @ self.least_squares())

    def lambda_max(self) -> float:
        """The largest eigenvalue of R: the curvature of the bowl's steepest direction."""
        return float(np.linalg.eigvalsh(self.correlation()[0])[-1])

    def stability_limit(self) -> float:
        """2 / lambda_max: batch LMS converges for eta below it and diverges above it."""
        return 2.0 / self.lambda_max()

    def lstsq_distance(self) -> float:
        """||w~ - w~*|| / ||w~*||: 1 at zero weights, 0 at the least-squares weights."""
        target = self.least_squares()
        own = np.concatenate([self.weight, self.bias]).astype(np.float64)
        norm = float(np.linalg.norm(target))
        gap = float(np.linalg.norm(own - target))
        return gap / norm if norm > 0 else (0.0 if gap == 0 else math.inf)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Weights, generator, eta, the divergence flag and the statistics (plain Python values)."""
        state = super().state_dict()
        statistics = self.statistics()
        state.update(
            regression=self.regression,
            learning_rate=self.learning_rate,
            updates=self.updates,
            diverged=self.diverged,
            diverged_at=self.diverged_at,
            statistics={"xx": statistics["xx"].tolist(), "xt": statistics["xt"].tolist(), "tt": statistics["tt"], "count": statistics["count"]},
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.learning_rate = float(state["learning_rate"])
        self.regression = bool(state.get("regression", False))
        self.updates, self.diverged, self.diverged_at = int(state["updates"]), bool(state["diverged"]), state["diverged_at"]
        self.load_statistics(state["statistics"])


class Adaline(NumPyModel):
    """ADALINE as a LightningModule: the NumPy LMS rule behind the thin adapter.

    Args:
        input_dim: number of input features (2 for the toy planes and iris petals, 4 for all iris).
        learning_rate: eta of the rule (ignored when ``relative_learning_rate`` is given).
        mode: ``"online"`` (Widrow-Hoff, sample by sample) or ``"batch"`` (steepest descent on
            each batch's MSE; with the whole training split as one batch, the exact setting of
            the 2 / lambda_max analysis).
        relative_learning_rate: eta as a multiple of 2 / lambda_max of the training data,
            measured when training starts (0.9: just below the line, 1.1: just above).
        init: ``"zeros"`` or ``"random"`` initial weights.
        seed: seed of the learner's own generator.
        compare_perceptron: also train Rosenblatt's rule on the same batches, in the same order,
            and log its mistakes per pass (``train_perceptron_errors``), ADALINE's mistakes in the
            same pass (``train_errors``), its validation accuracy (``val_perceptron_accuracy``) and
            ``train_error_ratio``, the Perceptron's mistakes over ADALINE's in the same pass
            (ADALINE's count floored at 1); adds the figure
            :class:`~ai_scratch.foundations.adaline_figures.AdalineVsPerceptron`. Class labels only.
        perceptron_learning_rate: eta of the Perceptron (with zero initial weights it changes no
            decision).

    Targets are class labels 0 and 1 (integers), or real values (floats): then ADALINE is a linear
    regression by LMS, ``predict`` returns its linear output and no accuracy is logged.

    Besides the standard metrics (``train_loss`` and ``val_loss`` are the MSE of the linear
    output), every epoch logs ``lambda_max`` (of the training data's R), ``train_lstsq_loss`` (the
    least-squares MSE, the floor of ``train_loss``), ``train_lstsq_distance`` (relative distance of
    the weights to the least-squares weights) and ``diverged`` (1 once the rule has stopped on a
    runaway error; training then stops).

    When training starts the model reads the training split once (``observe``): the statistics
    R and p behind these metrics, and eta when it is relative. Under DDP the sums are added over
    the processes, so every process gets the same R (the distributed sampler may repeat a few
    samples to even out the shards).
    """

    INFO = ModelInfo(
        name="adaline",
        full_name="ADALINE",
        module=1,
        pattern="numpy",
        year_introduced=1960,
        authors=("Bernard Widrow", "Marcian E. Hoff"),
        paper_title="Adaptive switching circuits",
        key_innovations=(
            "the error measured on the linear output, before the threshold: a continuous signal",
            "the LMS (Widrow-Hoff, delta) rule: stochastic gradient descent on the mean squared error",
            "convergence to the least-squares weights, for a step size below 2 / lambda_max",
        ),
        architecture_type="single-layer",
        learning_algorithm="lms-delta-rule",
        loss_function="mean-squared-error",
        optimizer="custom",
        framework="numpy",
        difficulty_level="beginner",
        key_learning_objectives=(
            "the difference between learning from the linear output (LMS) and from mistakes (Perceptron)",
            "the mean squared error as a quadratic bowl whose bottom is the least-squares solution",
            "the step-size limit 2 / lambda_max of the input correlation matrix",
            "why a least-squares line still cannot compute XOR",
        ),
        estimated_training_time="seconds",
        device_support=("cpu",),
    )

    learner: AdalineLearner

    def __init__(
        self,
        input_dim: int,
        learning_rate: float = 0.01,
        mode: Mode = "online",
        relative_learning_rate: float | None = None,
        init: Literal["zeros", "random"] = "zeros",
        seed: int = 0,
        compare_perceptron: bool = False,
        perceptron_learning_rate: float = 1.0,
    ) -> None:
        super().__init__(AdalineLearner(input_dim, learning_rate, mode, relative_learning_rate, init, seed), num_classes=2)
        self.save_hyperparameters()
        self.input_size = (input_dim,)
        self.output_size = (1,)
        self.perceptron: PerceptronLearner | None = None
        if compare_perceptron:
            self.perceptron = PerceptronLearner(input_dim, perceptron_learning_rate, init="zeros", seed=seed)
            # torchmetrics, so the counts add up over DDP processes
            self.perceptron_errors = SumMetric()
            self.adaline_errors = SumMetric()
            self.perceptron_val_accuracy = MulticlassAccuracy(2, average="micro")
        self._announced_divergence = False

    #: The 1960 machine's input: a 4 x 4 array of switches, each set to +1 or -1.
    SWITCH_ARRAY_INPUTS = 16

    @classmethod
    def paper_sized(cls, input_dim: int = SWITCH_ARRAY_INPUTS) -> Adaline:
        """Widrow and Hoff's ADALINE of 1960: 16 inputs (the 4 x 4 array of switches on which the
        patterns to classify were set, each switch +1 or -1) and the level (bias) weight, 17 in all.

        One weighted sum per example: 16 multiply-adds (:meth:`forward_flops`).
        """
        model = cls(input_dim)
        model.set_sizes((input_dim,), (1,))
        return model

    def forward_flops(self) -> int:
        """Two per input weight (``w . x``); the adapter's count takes matrices, and these weights are a vector."""
        return linear_unit_flops(self.learner)

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The generic figures, the road to the least-squares weights and, with the Perceptron
        alongside, the two rules side by side."""
        from ai_scratch.foundations.adaline_figures import AdalineVsPerceptron, LeastSquaresConvergence

        figures = [*default_figures(every_n_epochs, feature_map_layers=self.feature_map_layers), LeastSquaresConvergence(every_n_epochs=every_n_epochs)]
        if self.perceptron is not None:
            figures.append(AdalineVsPerceptron(every_n_epochs=every_n_epochs))
        return figures

    # ------------------------------------------------------------------ the training data's R and p
    def on_train_start(self) -> None:
        learner = self.learner
        learner.reset_statistics()
        for batch in self.trainer.train_dataloader:
            learner.observe(as_array(batch[0]), targets_array(batch[1]))
        if self.trainer.world_size > 1:  # R and p of the whole training split: the sums over all processes
            stats = learner.statistics()
            sums = {"xx": stats["xx"], "xt": stats["xt"], "tt_count": np.array([stats["tt"], stats["count"]], dtype=np.float64)}
            reduce_arrays(sums, self.trainer.strategy, self.device, "sum")
            learner.load_statistics({"xx": sums["xx"], "xt": sums["xt"], "tt": sums["tt_count"][0], "count": round(sums["tt_count"][1])})
        for optimizer in self.trainer.optimizers:  # eta may have been set relative to 2 / lambda_max
            for group in optimizer.param_groups:
                group["lr"] = learner.learning_rate

    # ------------------------------------------------------------------ the Perceptron alongside
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().training_step(batch, batch_idx)  # LMS on the batch, through the adapter
        if self.perceptron is None:
            return
        inputs, target = batch
        x, y = as_array(inputs), targets_array(target)
        seen = self.perceptron.train_batch(x, y)  # the same batch, in the same order
        if self.trainer.world_size > 1:  # as the adapter mixes the learner
            reduce_arrays(self.perceptron.parameters(), self.trainer.strategy, self.device, "mean")
        positive = y == 1
        self.perceptron_errors.update(torch.tensor(float(((seen >= 0) != positive).sum()), device=target.device))
        self.adaline_errors.update(torch.tensor(float(((self.learner.last_scores >= 0) != positive).sum()), device=target.device))

    def log_step(self, stage: str, loss: Tensor, scores: Tensor, target: Tensor) -> None:
        """Class labels: loss and accuracy. Real-valued targets: a regression, the loss alone."""
        if not target.is_floating_point():
            self.log_classification(stage, loss, scores, target)
            return
        if self.perceptron is not None:
            raise ValueError("compare_perceptron needs class labels 0 and 1: the Perceptron has no real-valued targets to learn")
        getattr(self, f"{stage}_metrics")[f"{stage}_loss"].update(loss, weight=len(target))

    def prediction(self, outputs: Tensor) -> Tensor:
        """The class labels, or for a regression the linear output itself."""
        return outputs if self.learner.regression else self.predict_labels(outputs)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self.perceptron is not None:
            inputs, target = batch
            scores = as_tensor(self.perceptron.scores(as_array(inputs)), target.device)
            self.perceptron_val_accuracy.update((scores >= 0).long(), target)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.perceptron is not None and self.perceptron_val_accuracy.update_called:
            accuracy = self.perceptron_val_accuracy.compute()  # collective under DDP
            self.log("val_perceptron_accuracy", accuracy, on_step=False, on_epoch=True, sync_dist=True)
            self.perceptron_val_accuracy.reset()

    # ------------------------------------------------------------------ epoch metrics
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()  # train_loss, train_accuracy
        learner = self.learner
        diverged = learner.diverged
        if self.trainer.world_size > 1:  # every process must agree to stop
            flag = torch.tensor(float(diverged), device=self.device)
            diverged = bool(self.trainer.strategy.reduce(flag, reduce_op="sum").item() > 0)
        values: dict[str, Any] = {"diverged": float(diverged)}
        if learner.statistics()["count"] > 0:
            values.update(
                lambda_max=learner.lambda_max(),
                train_lstsq_loss=learner.least_squares_loss(),
                train_lstsq_distance=learner.lstsq_distance(),
            )
        if self.perceptron is not None and self.perceptron_errors.update_called:
            perceptron, adaline = self.perceptron_errors.compute(), self.adaline_errors.compute()
            values.update(
                train_perceptron_errors=perceptron,
                train_errors=adaline,
                train_error_ratio=perceptron / adaline.clamp(min=1.0),
            )
            self.perceptron_errors.reset()
            self.adaline_errors.reset()
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)
        if diverged:
            self.trainer.should_stop = True
            if not self._announced_divergence and self.trainer.is_global_zero:
                self._announced_divergence = True
                print(
                    f"[adaline] LMS diverged in update {learner.diverged_at} (eta = {learner.learning_rate:.4g}, "
                    f"2 / lambda_max = {learner.stability_limit():.4g}): the rule stopped with its last finite "
                    "weights, training stops",
                    flush=True,
                )

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.perceptron is not None:
            checkpoint["perceptron_learner"] = state_to_tensors(self.perceptron.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.perceptron is not None:
            if "perceptron_learner" not in checkpoint:
                raise KeyError("checkpoint has no 'perceptron_learner' state: it was written without compare_perceptron")
            self.perceptron.load_state_dict(state_to_arrays(checkpoint["perceptron_learner"]))
