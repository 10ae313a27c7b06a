"""Stop a fit at the first training loss that is not a finite number.

A loss that becomes NaN or infinite (a learning rate far too high, an unstable activation) never
comes back: every later step trains on NaN weights, and the checkpoints written after it hold
nothing worth keeping. This callback stops the fit at the first such loss by raising
:class:`NonFiniteLossError`, which says where it happened. The checkpoints written before it,
the last finite weights, are left as they are (``ModelCheckpoint`` saves nothing on an exception
unless asked to with ``save_on_exception``).

It looks at the loss just before backward (Lightning's ``on_before_backward``, in automatic and in
manual optimization), so the optimizer never takes a step from its NaN gradients. A module that
learns without backward (the NumPy-era rules of this project) is left alone.

Example::

    trainer = Trainer(callbacks=[StopOnNonFiniteLoss(hint="try a smaller learning rate")])
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message says where."""


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`NonFiniteLossError` at the first training step whose loss is not finite.

    Args:
        hint: what to try, appended to the error's message.
    """

    def __init__(self, hint: str | None = None) -> None:
        self.hint = hint

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        message = (
            f"the training loss became {loss.detach().float().mean().item()} at epoch {trainer.current_epoch}, "
            f"global step {trainer.global_step}; the fit stopped there, before that step's update, and the "
            "checkpoints written before it hold the last finite weights"
        )
        raise NonFiniteLossError(f"{message}; {self.hint}" if self.hint else message)
