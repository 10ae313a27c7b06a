"""What the figure and measurement callbacks need to know about a module's batches and scores.

They work with any LightningModule that classifies: batches ``(inputs, targets)`` with integer
class targets, and a ``forward(inputs)`` that returns class scores (``(N, C)``, or ``(N,)`` for one
binary unit whose score >= 0 means class 1). A module may offer ``predict_labels(scores)``.
:func:`not_a_classifier` says, in words, why a module or a batch is not of that kind, so that a
callback can say so once and step aside instead of failing the user's fit.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn


def inputs_and_targets(batch: Any) -> tuple[Any, Any | None]:
    """``(inputs, targets)`` of a batch; ``targets`` is ``None`` when the batch has none."""
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def predicted_labels(pl_module: nn.Module, scores: Tensor) -> Tensor:
    """Class indices: the module's own ``predict_labels``, else argmax, or the sign of one score."""
    predict = getattr(pl_module, "predict_labels", None)
    if callable(predict):
        return predict(scores)
    return scores.argmax(dim=-1) if scores.ndim > 1 else (scores >= 0).long()


def forward_takes_inputs_only(pl_module: nn.Module) -> bool:
    """Whether ``pl_module(inputs)`` is a valid call: ``forward`` needs no second argument (Lightning's
    demo ``LightningTransformer`` takes inputs and targets)."""
    try:
        parameters = inspect.signature(pl_module.forward).parameters.values()
    except (TypeError, ValueError):  # a forward that inspect cannot read: assume the common case
        return True
    required = [
        p for p in parameters
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) <= 1


def not_a_classifier(pl_module: nn.Module, batch: Any) -> str | None:
    """Why ``batch`` and ``pl_module`` are not an ``(inputs, class labels)`` classifier, else ``None``."""
    inputs, targets = inputs_and_targets(batch)
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        return "its batches are not (inputs, targets) tensors"
    if targets.is_floating_point() or targets.ndim != 1:
        return "its targets are not one class label per example"
    if not forward_takes_inputs_only(pl_module):
        return f"{type(pl_module).__name__}.forward needs more than the inputs"
    return None


def scores_fit_targets(scores: Any, targets: Tensor) -> bool:
    """Whether ``scores`` are class scores for ``targets``: one row (or one score) per example."""
    return isinstance(scores, Tensor) and scores.ndim in (1, 2) and scores.shape[0] == targets.shape[0]


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for a side pass; the module's own mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def validation_loaders(trainer: L.Trainer) -> list[Any]:
    """The trainer's validation loaders as a list (empty when it has none)."""
    loaders = trainer.val_dataloaders
    if loaders is None:
        return []
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def validation_batches(trainer: L.Trainer) -> Iterator[Any]:
    for loader in validation_loaders(trainer):
        yield from loader
