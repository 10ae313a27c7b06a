"""SGD with momentum and weight decay, and the learning-rate schedules of the CNN papers.

Every network of the CNN revolution learns by the same rule, stochastic gradient descent with
momentum ``mu`` and weight decay ``lambda`` (``torch.optim.SGD``)::

    v <- mu v + dL/dw + lambda w
    w <- w - eta v

and the papers differ only in how the learning rate ``eta`` falls during training. Each model states
its paper's recipe in its own docstring and builds it with :func:`sgd_with_schedule`, whose
``lr_schedule`` (the model's hyperparameter of that name) chooses:

* ``"paper"``: the paper's own schedule, which the model hands over (:func:`per_epoch`,
  :func:`per_step`, :func:`divided_by_ten_on_plateau`);
* ``"cosine"``: the rate annealed to zero along half a cosine, over the run's epochs unless the
  model says otherwise;
* ``"constant"``: no schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, ReduceLROnPlateau

LRSchedule = Literal["paper", "cosine", "constant"]

#: Lightning's ``lr_scheduler`` configuration: the scheduler, its interval and what else it needs.
SchedulerConfig = dict[str, Any]
#: Builds a schedule for the optimizer it is given.
Schedule = Callable[[torch.optim.SGD], SchedulerConfig]


def sgd_with_schedule(
    model: L.LightningModule, paper: Schedule, cosine: Schedule | None = None
) -> torch.optim.SGD | dict[str, Any]:
    """``configure_optimizers`` of a CNN: SGD over all of ``model``'s parameters, and a schedule.

    The rate, momentum, weight decay and schedule are ``model.hparams``' ``learning_rate``,
    ``momentum``, ``weight_decay`` and ``lr_schedule``. A schedule is built only when chosen, so the
    Trainer is asked for the run's length only by the schedules that need it.

    Args:
        model: the module whose parameters are trained.
        paper: the schedule of ``lr_schedule="paper"``.
        cosine: the schedule of ``lr_schedule="cosine"``; ``None``: over the Trainer's ``max_epochs``,
            stepped once an epoch.
    """
    hp = model.hparams
    optimizer = torch.optim.SGD(model.parameters(), lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if hp.lr_schedule == "constant":
        return optimizer
    if hp.lr_schedule == "paper":
        schedule = paper(optimizer)
    elif cosine is not None:
        schedule = cosine(optimizer)
    else:
        epochs = max(1, model.trainer.max_epochs or 1)  # max_epochs -1 (no limit) or 0: one period
        schedule = {"scheduler": CosineAnnealingLR(optimizer, T_max=epochs), "interval": "epoch"}
    return {"optimizer": optimizer, "lr_scheduler": schedule}


def per_epoch(factor: Callable[[int], float]) -> Schedule:
    """The first rate times ``factor(epoch)``, set at the start of every epoch (a pass over the data)."""
    return lambda optimizer: {"scheduler": LambdaLR(optimizer, factor), "interval": "epoch"}


def per_step(model: L.LightningModule, factor: Callable[[float], float]) -> Schedule:
    """The first rate times ``factor(step / total)``, set at every optimizer step, for the papers that
    count iterations; ``total`` is the run's optimizer steps, the Trainer's ``estimated_stepping_batches``
    (from ``max_epochs`` or ``max_steps``).

    Raises:
        ValueError: from the schedule, when the run has no known length.
    """

    def build(optimizer: torch.optim.SGD) -> SchedulerConfig:
        total = model.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"lr_schedule={model.hparams.lr_schedule!r} needs a run of known length: set max_epochs or max_steps")
        return {"scheduler": LambdaLR(optimizer, lambda step: factor(step / total)), "interval": "step"}

    return build


def divided_by_ten_on_plateau(learning_rate: float, patience: int, monitor: str = "val_accuracy") -> Schedule:
    """The rate divided by 10 when ``monitor`` (an accuracy: higher is better) has not improved for
    ``patience`` epochs, at most three times (``min_lr`` is a thousandth of ``learning_rate``).

    Without a validation loop the rate stays constant and Lightning warns (``strict=False``).
    """

    def build(optimizer: torch.optim.SGD) -> SchedulerConfig:
        scheduler = ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=patience, min_lr=learning_rate * 1e-3)
        return {"scheduler": scheduler, "monitor": monitor, "interval": "epoch", "strict": False}

    return build
