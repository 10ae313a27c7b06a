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
on the same batches (``compare_perceptron``), for the figure :class:`AdalineVsPerceptron`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassAccuracy

from ai_scratch.foundations.perceptron import PerceptronLearner
from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyLearner, NumPyModel, _as_array, mix_arrays
from callbacks import plots
from callbacks.figures import LearningCurves

DIVERGENCE_ERROR = 1e10
"""An error |t - s| above this on the linear output stops the rule: the learner has diverged.

The targets are +-1, the least-squares fit's outputs have a mean square below 1 (it is a projection
of the targets), and a converging LMS never strays far from it; an error ten billion times the
targets is past any doubt, and its square (1e20) is still far from float32's limit (3e38), so every
number logged stays finite."""

Mode = Literal["online", "batch"]


def _signs(targets: np.ndarray) -> np.ndarray:
    """Class labels {0, 1} as the targets t in {-1, +1} of the linear output."""
    return np.where(np.asarray(targets) == 1, 1.0, -1.0).astype(np.float32)


def _augment(inputs: np.ndarray) -> np.ndarray:
    """x~ = (x, 1): the bias as the weight of a constant input, in float64 for the statistics."""
    inputs = np.asarray(inputs, dtype=np.float64)
    return np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)


class AdalineLearner(NumPyLearner):
    """Widrow and Hoff's LMS rule on the linear output, in NumPy.

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
    x~ x~', t x~ and t^2), from which it reports the least-squares weights, their mean squared
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
        if input_dim < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if mode not in ("online", "batch"):
            raise ValueError(f"mode must be 'online' or 'batch', got {mode!r}")
        if relative_learning_rate is not None and relative_learning_rate <= 0:
            raise ValueError(f"relative_learning_rate must be positive or None, got {relative_learning_rate}")
        if init not in ("zeros", "random"):
            raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")
        self.input_dim = input_dim
        self.learning_rate = float(learning_rate)
        self.mode = mode
        self.relative_learning_rate = relative_learning_rate
        self.rng = np.random.default_rng(seed)
        self.weight = np.zeros(input_dim, dtype=np.float32)
        self.bias = np.zeros(1, dtype=np.float32)  # an array, so that it is updated in place
        if init == "random":
            self.weight[:] = self.rng.normal(0.0, 0.01, size=input_dim)
        self.updates = 0  # batches learned from
        self.diverged = False
        self.diverged_at: int | None = None  # the batch (counted from 1) in which the rule stopped
        self.last_scores: np.ndarray | None = None  # what the last train_batch returned
        self._gradient: dict[str, np.ndarray] | None = None
        self.reset_statistics()

    # ------------------------------------------------------------------ the rule
    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.weight + self.bias[0]  # s = w . x + b

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
            before = self.weight.copy(), self.bias.copy()
            self.updates += 1
            t = _signs(targets)
            seen = self._online(inputs, t) if self.mode == "online" else self._steepest_descent(inputs, t)
            if not (np.isfinite(self.weight).all() and np.isfinite(self.bias).all()):
                self.weight[:], self.bias[:] = before  # keep the last finite weights
                self._stop()
        self.last_scores = seen
        return seen

    def _online(self, inputs: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Widrow-Hoff, sample by sample: w~ <- w~ + eta (t - s) x~, with x~ = (x, 1), w~ = (w, b)."""
        rows = np.concatenate([inputs, np.ones((len(inputs), 1), dtype=inputs.dtype)], axis=1).astype(np.float32)
        w = np.concatenate([self.weight, self.bias])  # the bias as the weight of the constant input
        seen = np.empty(len(inputs), dtype=np.float32)
        eta = self.learning_rate
        stop = len(inputs)
        for i, (x, target) in enumerate(zip(rows, t.tolist())):
            s = float(x @ w)
            seen[i] = s  # the output the unit gave before learning from this sample
            error = target - s  # on the linear output, not on the thresholded one
            if abs(error) > DIVERGENCE_ERROR:
                stop = i
                break
            w += np.float32(eta * error) * x
        self.weight[:], self.bias[:] = w[:-1], w[-1:]
        if stop < len(inputs):
            self._stop()
            seen[stop:] = self.scores(inputs[stop:])
        # the mean of the per-sample gradients d(e^2)/dw~ = -2 e x~ that the rule followed
        gradient = -2.0 * (rows[:stop].T @ (t[:stop] - seen[:stop])) / max(stop, 1)
        self._gradient = {"weight": gradient[:-1], "bias": gradient[-1:]}
        return seen

    def _steepest_descent(self, inputs: np.ndarray, t: np.ndarray) -> np.ndarray:
        """One step on the batch's MSE: w~ <- w~ + eta * mean(e x~), i.e. v <- (I - eta R) v."""
        seen = self.scores(inputs).astype(np.float32)
        error = t - seen
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
        error = _signs(targets).astype(np.float64) - np.asarray(scores, dtype=np.float64)
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
        x, t = _augment(inputs), _signs(targets).astype(np.float64)
        self.load_statistics({"xx": self._xx + x.T @ x, "xt": self._xt + x.T @ t, "tt": self._tt + t @ t, "count": self._count + len(t)})

    def statistics(self) -> dict[str, Any]:
        """The sums behind R and p: ``xx`` = sum x~ x~', ``xt`` = sum t x~, ``tt`` = sum t^2, ``count``."""
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
        """R = mean x~ x~' and p = mean t x~ of the observed data (x~ = (x, 1))."""
        self._require_statistics()
        return self._xx / self._count, self._xt / self._count

    def least_squares(self) -> np.ndarray:
        """w~* = (w*, b*), the bottom of the bowl: R w~* = p (minimum norm if R is singular)."""
        R, p = self.correlation()
        return np.linalg.lstsq(R, p, rcond=None)[0]

    def least_squares_loss(self) -> float:
        """J(w~*) = E[t^2] - p . w~*, the lowest MSE any weights reach on the observed data."""
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
            (ADALINE's count floored at 1); adds the figure :class:`AdalineVsPerceptron`.
        perceptron_learning_rate: eta of the Perceptron (with zero initial weights it changes no
            decision).

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

    def figure_callbacks(self) -> list[Callback]:
        figures: list[Callback] = [LeastSquaresConvergence()]
        if self.perceptron is not None:
            figures.append(AdalineVsPerceptron())
        return figures

    # ------------------------------------------------------------------ the training data's R and p
    def on_train_start(self) -> None:
        learner = self.learner
        learner.reset_statistics()
        for batch in self.trainer.train_dataloader:
            learner.observe(_as_array(batch[0]), batch[1].detach().cpu().numpy())
        if self.trainer.world_size > 1:
            stats = learner.statistics()
            flat = np.concatenate([stats["xx"].ravel(), stats["xt"], [stats["tt"], stats["count"]]])
            flat = self.trainer.strategy.reduce(torch.from_numpy(flat).to(self.device), reduce_op="sum").cpu().numpy()
            d = self.learner.input_dim + 1
            learner.load_statistics({"xx": flat[: d * d], "xt": flat[d * d : d * d + d], "tt": flat[-2], "count": round(flat[-1])})
        for optimizer in self.trainer.optimizers:  # eta may have been set relative to 2 / lambda_max
            for group in optimizer.param_groups:
                group["lr"] = learner.learning_rate

    # ------------------------------------------------------------------ the Perceptron alongside
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().training_step(batch, batch_idx)  # LMS on the batch, through the adapter
        if self.perceptron is None:
            return
        inputs, target = batch
        x, y = _as_array(inputs), target.detach().cpu().numpy()
        seen = self.perceptron.train_batch(x, y)  # the same batch, in the same order
        if self.trainer.world_size > 1:
            mix_arrays(self.perceptron.parameters(), self.trainer.strategy, self.device)  # as the adapter mixes the learner
        positive = y == 1
        self.perceptron_errors.update(torch.tensor(float(((seen >= 0) != positive).sum()), device=target.device))
        self.adaline_errors.update(torch.tensor(float(((self.learner.last_scores >= 0) != positive).sum()), device=target.device))


    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self.perceptron is not None:
            inputs, target = batch
            scores = torch.from_numpy(np.ascontiguousarray(self.perceptron.scores(_as_array(inputs)))).to(target.device)
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
            state = self.perceptron.state_dict()
            state["parameters"] = {k: torch.from_numpy(np.array(v)) for k, v in state["parameters"].items()}
            checkpoint["perceptron_learner"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.perceptron is not None:
            if "perceptron_learner" not in checkpoint:
                raise KeyError("checkpoint has no 'perceptron_learner' state: it was written without compare_perceptron")
            state = dict(checkpoint["perceptron_learner"])
            state["parameters"] = {k: v.numpy() if isinstance(v, Tensor) else v for k, v in state["parameters"].items()}
            self.perceptron.load_state_dict(state)


# ---------------------------------------------------------------------- figures
def _points(history: dict[str, list[tuple[int, float]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and values of one recorded metric, in epoch order; inf and NaN as NaN."""
    points = sorted(history.get(key, []))
    epochs = np.array([e for e, _ in points], dtype=float)
    values = np.array([v for _, v in points], dtype=float)
    values[~np.isfinite(values)] = np.nan
    return epochs, values


def _mse_panel(ax: Any, history: dict[str, list[tuple[int, float]]], title: str) -> None:
    """ADALINE's MSE per epoch with the least-squares floor J(w*) it descends to."""
    epochs, mse = _points(history, "train_loss")
    lstsq_epochs, floor = _points(history, "train_lstsq_loss")
    ax.plot(epochs, mse, color="C0", linewidth=1.8, marker="o", markersize=3, markevery=max(1, len(mse) // 25),
            label="ADALINE: MSE of the linear output during the pass (train_loss)")
    if np.isfinite(floor).any():
        level = float(floor[np.isfinite(floor)][-1])
        ax.axhline(level, color="0.3", linestyle="--", linewidth=1.3,
                   label=f"least-squares minimum J(w*) = {level:.3g} (numpy.linalg.lstsq's weights)")
    finite = mse[np.isfinite(mse)]
    ylabel = "mean squared error"
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        values = np.concatenate([finite, floor[np.isfinite(floor) & (floor > 0)]])
        plots.log_y(ax, float(values.min()), float(values.max()))
        ylabel += " (log scale)"
    elif finite.size:
        ax.set_ylim(0, max(1.05, float(finite.max()) * 1.05))
    plots.style_axes(ax, title, None, ylabel)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="best", framealpha=0.9)


def _epoch_axis(ax: Any, epochs: np.ndarray) -> None:
    ax.set_xlabel("epoch (one pass over the training split)", fontsize=plots.LABEL_SIZE)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs.size:
        lo, hi = float(epochs.min()), float(epochs.max())
        pad = 0.5 if hi == lo else 0.02 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)


class LeastSquaresConvergence(LearningCurves):
    """Does LMS reach the least-squares weights? MSE against its floor, and the distance to w*.

    (a) ``train_loss`` with the least-squares MSE J(w*) as a dashed line; (b) the relative distance
    ``||w~ - w~*|| / ||w~*||`` on a log scale: it starts at 1 from zero weights and falls towards 0
    when eta is below 2 / lambda_max, or climbs when it is above. Saved as ``least_squares.png``.

    It records the metrics as :class:`~callbacks.figures.LearningCurves` does (on every process,
    kept in the callback's state so that a resumed fit draws the whole history).
    """

    name = "least_squares"

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(("train_loss", "train_lstsq_loss", "train_lstsq_distance"), every_n_epochs, log_to_wandb)

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if "train_loss" not in self.history:
            return None
        fig = plots.new_figure(9.5, 7.5)
        top, bottom = fig.subplots(2, 1, sharex=True)
        _mse_panel(top, self.history, "(a) What LMS descends: the mean squared error")
        epochs, distance = _points(self.history, "train_lstsq_distance")
        if np.isfinite(distance).any():
            bottom.plot(epochs, distance, color="C3", linewidth=1.8, marker="o", markersize=3,
                        markevery=max(1, len(distance) // 25), label="||w - w*|| / ||w*||")
            bottom.axhline(1.0, color="0.45", linestyle=":", linewidth=1.2, label="1: where zero weights start")
            positive = distance[np.isfinite(distance) & (distance > 0)]
            plots.log_y(bottom, float(min(positive.min(), 1.0)), float(max(positive.max(), 1.0)))
            bottom.legend(fontsize=plots.LEGEND_SIZE, loc="best", framealpha=0.9)
        plots.style_axes(bottom, "(b) Distance to the least-squares weights w*", None, "relative distance (log scale)")
        _epoch_axis(bottom, epochs)
        learner = getattr(pl_module, "learner", None)
        notes = []
        if isinstance(learner, AdalineLearner) and learner.statistics()["count"] > 0:
            limit = learner.stability_limit()
            notes.append(
                f"{learner.mode} LMS, eta = {learner.learning_rate:.4g} = {learner.learning_rate / limit:.3g} × 2/λmax "
                f"(λmax = {learner.lambda_max():.4g} of the inputs' correlation matrix R)"
            )
            if learner.diverged:
                notes.append(f"diverged: the rule stopped in update {learner.diverged_at}, its error on the linear output past {DIVERGENCE_ERROR:.0e}")
        plots.add_note(fig, notes)
        fig.suptitle(f"Least squares: {type(pl_module).__name__}", fontsize=plots.SUPTITLE_SIZE)
        return fig


class AdalineVsPerceptron(LearningCurves):
    """ADALINE's mean squared error against the Perceptron's mistakes, on the same batches.

    (a) ADALINE's ``train_loss``, the smooth quantity LMS descends, with its least-squares floor;
    (b) the mistakes of each training pass: the Perceptron's (``train_perceptron_errors``), the
    only signal its rule has, and ADALINE's in the same pass (``train_errors``). On overlapping
    classes the MSE settles while the Perceptron's count keeps jumping: its rule never stops
    correcting. Saved as ``adaline_vs_perceptron.png``; needs ``Adaline(compare_perceptron=True)``.
    """

    name = "adaline_vs_perceptron"

    def __init__(self, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        patterns = ("train_loss", "train_lstsq_loss", "train_errors", "train_perceptron_errors", "val_accuracy", "val_perceptron_accuracy")
        super().__init__(patterns, every_n_epochs, log_to_wandb)

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if "train_perceptron_errors" not in self.history:
            return None
        fig = plots.new_figure(9.5, 7.5)
        top, bottom = fig.subplots(2, 1, sharex=True)
        _mse_panel(top, self.history, "(a) ADALINE learns from the linear output: its mean squared error")
        epochs, perceptron = _points(self.history, "train_perceptron_errors")
        _, adaline = _points(self.history, "train_errors")
        bottom.plot(epochs, perceptron, color="C1", linewidth=1.6, marker="s", markersize=3.5,
                    markevery=max(1, len(perceptron) // 25), drawstyle="steps-mid", label="Perceptron (what its rule learns from)")
        if adaline.size:
            bottom.plot(epochs[: adaline.size], adaline, color="C0", linewidth=1.6, marker="o", markersize=3,
                        markevery=max(1, len(adaline) // 25), drawstyle="steps-mid", label="ADALINE (sign of its output, same pass)")
        bottom.set_ylim(bottom=0)
        plots.style_axes(bottom, "(b) Mistakes during each training pass, on the same samples in the same order", None, "mistakes per pass")
        bottom.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)
        _epoch_axis(bottom, epochs)
        notes = []
        tail = perceptron[-10:][np.isfinite(perceptron[-10:])]
        if tail.size:
            notes.append(f"last {tail.size} passes: the Perceptron made {int(tail.min())} to {int(tail.max())} mistakes per pass"
                         + (f", ADALINE {int(np.nanmin(adaline[-10:]))} to {int(np.nanmax(adaline[-10:]))}" if adaline.size else ""))
        _, val_adaline = _points(self.history, "val_accuracy")
        _, val_perceptron = _points(self.history, "val_perceptron_accuracy")
        if val_adaline.size and val_perceptron.size:
            notes.append(f"validation accuracy after the last epoch: ADALINE {val_adaline[-1]:.3f}, Perceptron {val_perceptron[-1]:.3f}")
        plots.add_note(fig, notes)
        fig.suptitle("ADALINE vs Perceptron on the same batches", fontsize=plots.SUPTITLE_SIZE)
        return fig
