"""The thin adapter between a NumPy-era learning rule and Lightning.

The early models (Perceptron, ADALINE, the hand-written MLP, Hopfield) learn by rules that were
written long before automatic differentiation. Their rules stay in NumPy, in a
:class:`NumPyLearner` that knows nothing of Lightning or torch and can be used on its own::

    learner = PerceptronLearner(input_dim=2)
    for epoch in range(10):
        learner.train_batch(x, y)            # x: float32 (N, D), y: int (N,)

:class:`NumPyModel` wraps such a learner so that the same ``ai-scratch fit`` command, the same
metrics and the same callbacks serve it as they serve the PyTorch models:

* manual optimisation: Lightning's loop hands each batch to ``learner.train_batch``; there is no
  backward pass. The only "optimiser" is :class:`RuleStep`, which changes nothing and counts the
  rule's updates as optimiser steps, so that ``global_step`` (checkpoints, logging steps) advances;
* tensors become float32 arrays on the way in and scores come back as tensors;
* the learned arrays are mirrored in ``nn.Parameter`` s (``model.learned``), so that the state
  dict, the parameter count and the watch's histograms see them;
* the learner's full state (arrays and random generator) is stored in the Lightning checkpoint
  under ``"numpy_learner"`` and restored from it, so ``--ckpt_path`` resumes exactly;
* under DDP every process applies the rule to its own shard of the batch and then the learned
  arrays are averaged across processes after every step: *iterative parameter mixing*
  (McDonald, Hall and Mann, 2010, "Distributed Training Strategies for the Structured
  Perceptron"). The copies never diverge.

Hand the learner whole batches (the per-sample rule loops inside NumPy): with one Lightning step
per sample the fit would be mostly framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ai_scratch.base import BaseModel


class NumPyLearner(ABC):
    """A learning rule written in NumPy. It knows nothing of Lightning or torch.

    Subclasses keep their learned arrays in :meth:`parameters` (float32, updated in place) and
    draw any randomness from ``self.rng``, a seeded :class:`numpy.random.Generator`.
    """

    learning_rate: float
    rng: np.random.Generator

    @abstractmethod
    def parameters(self) -> dict[str, np.ndarray]:
        """The learned arrays by name. They are updated in place by :meth:`train_batch`."""

    @abstractmethod
    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Forward pass: ``(N,)`` scores for a binary unit (class 1 where score >= 0), or ``(N, C)``."""

    def classes(self, inputs: np.ndarray) -> np.ndarray:
        """The class of each input: 1 where a single score is >= 0, else the highest of the scores."""
        scores = self.scores(inputs)
        return (scores >= 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)

    @abstractmethod
    def train_batch(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Apply the learning rule to a batch; return the scores it saw while learning.

        For an online rule these are the scores of each sample just before its own update.
        """

    @abstractmethod
    def loss(self, scores: np.ndarray, targets: np.ndarray) -> float:
        """The criterion the rule minimises, evaluated on ``scores``."""

    def gradients(self) -> dict[str, np.ndarray] | None:
        """Gradients of the last :meth:`train_batch`, for rules that have them; ``None`` otherwise."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: learned arrays and the random generator."""
        return {
            "parameters": {name: array.copy() for name, array in self.parameters().items()},
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        own = self.parameters()
        missing = set(own) ^ set(state["parameters"])
        if missing:
            raise KeyError(f"learner state does not match: {sorted(missing)}")
        for name, array in state["parameters"].items():
            np.copyto(own[name], np.asarray(array, dtype=own[name].dtype))
        self.rng.bit_generator.state = state["rng"]


class RuleStep(torch.optim.Optimizer):
    """The optimiser slot of a NumPy-era model: the rule has already updated the weights.

    ``step()`` changes nothing. Calling it through Lightning counts one optimiser step, so the
    trainer's ``global_step`` counts the rule's updates as it counts gradient steps elsewhere.
    """

    def __init__(self, params: Any, learning_rate: float) -> None:
        super().__init__(params, {"lr": learning_rate})

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        if closure is not None:
            closure()  # Lightning passes a closure that does nothing under manual optimisation


class NumPyModel(BaseModel):
    """LightningModule around a :class:`NumPyLearner` (manual optimisation, no backward pass).

    Args:
        learner: the NumPy learning rule.
        num_classes: number of classes, for the accuracy metrics; ``None`` for a learner that is
            not a classifier (override :meth:`training_step` and friends to log its metrics).
    """

    def __init__(self, learner: NumPyLearner, num_classes: int | None = 2) -> None:
        super().__init__(num_classes=num_classes)
        self.automatic_optimization = False
        self.learner = learner
        # The mirror. requires_grad=True because DDP refuses to wrap a module without trainable
        # parameters; no gradient ever flows through these tensors, the rule updates them.
        # An OrderedDict keeps the learner's order (layer by layer, input first): from a plain dict
        # nn.ParameterDict would sort the names, and weight10 would come before weight2.
        self.learned = nn.ParameterDict(
            OrderedDict((name, nn.Parameter(torch.from_numpy(array.copy()))) for name, array in learner.parameters().items())
        )

    # ------------------------------------------------------------------ mirror
    @torch.no_grad()
    def learner_to_mirror(self) -> None:
        """Copy the learner's arrays (and its gradients, where it has them) into ``learned``."""
        for name, array in self.learner.parameters().items():
            self.learned[name].copy_(torch.from_numpy(array))
        gradients = self.learner.gradients()
        if gradients is not None:
            for name, gradient in gradients.items():
                self.learned[name].grad = as_tensor(gradient, self.device)

    @torch.no_grad()
    def _mirror_to_learner(self) -> None:
        for name, array in self.learner.parameters().items():
            np.copyto(array, self.learned[name].detach().cpu().numpy())

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self) -> RuleStep:
        return RuleStep(self.learned.parameters(), self.learner.learning_rate)

    def on_fit_start(self) -> None:
        if not all(isinstance(o, RuleStep) for o in self.trainer.optimizers):
            raise ValueError(
                f"{type(self).__name__} learns by its own NumPy rule; a torch optimizer "
                "(--optimizer) does not apply to it"
            )
        # DDP broadcast rank 0's mirror when it wrapped the model: start every learner from it.
        self._mirror_to_learner()

    def current_learning_rate(self) -> float | None:
        return float(self.learner.learning_rate)

    def forward(self, inputs: Tensor) -> Tensor:
        return as_tensor(self.learner.scores(as_array(inputs)), inputs.device)

    def forward_flops(self) -> int:
        """A NumPy forward pass is out of torch's sight, so it is counted from the learned arrays: a
        multiply and an add for every weight of every matrix (a matrix-vector product per layer,
        Hopfield's one update of every unit), as the torch models' counter counts them."""
        return 2 * sum(array.size for array in self.learner.parameters().values() if array.ndim >= 2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, target = batch
        target_array = targets_array(target)
        scores = self.learner.train_batch(as_array(inputs), target_array)
        loss = self.learner.loss(scores, target_array)
        if self.trainer.world_size > 1:
            # iterative parameter mixing: every process continues from the mean of the learned arrays
            reduce_arrays(self.learner.parameters(), self.trainer.strategy, self.device, "mean")
        self.learner_to_mirror()
        self.optimizers().step()  # counts the update: global_step advances
        self.log_step("train", torch.tensor(loss, device=target.device), as_tensor(scores, target.device), target)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        inputs, target = batch
        scores = self(inputs)
        loss = self.learner.loss(scores.cpu().numpy(), targets_array(target))
        self.log_step(stage, torch.tensor(loss, device=target.device), scores, target)

    def log_step(self, stage: str, loss: Tensor, scores: Tensor, target: Tensor) -> None:
        """Accumulate a batch's ``{stage}_loss`` and ``{stage}_accuracy`` (logged per epoch)."""
        self.log_classification(stage, loss, scores, target)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.prediction(self(inputs))

    def prediction(self, outputs: Tensor) -> Tensor:
        """What ``predict`` returns for the forward's outputs: the class labels of the scores."""
        return self.predict_labels(outputs)

    # ------------------------------------------------------------------ checkpoints
    # The learner's state travels as tensors: checkpoints then load with torch.load(weights_only=True),
    # which Lightning's resume uses and which refuses NumPy arrays.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["numpy_learner"] = state_to_tensors(self.learner.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "numpy_learner" not in checkpoint:
            raise KeyError("checkpoint has no 'numpy_learner' state: it was not written by a NumPyModel")
        self.learner.load_state_dict(state_to_arrays(checkpoint["numpy_learner"]))
        self.learner_to_mirror()


@torch.no_grad()
def reduce_arrays(arrays: dict[str, np.ndarray], strategy: Any, device: torch.device, reduce_op: str) -> None:
    """Replace each array, in place, by its ``"sum"`` or ``"mean"`` over all processes (one collective
    call for all of them, in the widest of their float types)."""
    flat = torch.from_numpy(np.concatenate([a.ravel() for a in arrays.values()])).to(device)
    flat = strategy.reduce(flat, reduce_op=reduce_op).cpu().numpy()
    offset = 0
    for array in arrays.values():
        array[...] = flat[offset : offset + array.size].reshape(array.shape)
        offset += array.size


def state_to_tensors(state: Any) -> Any:
    """A learner's state with every NumPy array turned into a tensor (dicts and lists walked)."""
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.array(state))
    if isinstance(state, dict):
        return {key: state_to_tensors(value) for key, value in state.items()}
    if isinstance(state, list):
        return [state_to_tensors(value) for value in state]
    return state


def state_to_arrays(state: Any) -> Any:
    """The inverse of :func:`state_to_tensors`: every tensor back to a NumPy array."""
    if isinstance(state, Tensor):
        return state.detach().cpu().numpy()
    if isinstance(state, dict):
        return {key: state_to_arrays(value) for key, value in state.items()}
    if isinstance(state, list):
        return [state_to_arrays(value) for value in state]
    return state


def as_array(inputs: Tensor) -> np.ndarray:
    """A tensor as a contiguous float32 array on the host, flattened to (N, features)."""
    array = inputs.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(array.reshape(len(array), -1))


def targets_array(target: Tensor) -> np.ndarray:
    """A batch's targets on the host: class labels as they are, real values as float32."""
    target = target.detach().cpu()
    return (target.float() if target.is_floating_point() else target).numpy()


def as_tensor(array: np.ndarray, device: torch.device | str) -> Tensor:
    """A learner's output (scores, states, gradients) as a float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
