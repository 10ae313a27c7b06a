"""Stop a fit at the first training loss that is not a finite number.

A loss that becomes NaN or infinite (a learning rate far too high, an unstable activation) never
comes back: every later step trains on NaN weights, and the checkpoints written after it hold
nothing worth keeping. This callback stops the fit at the first such loss by raising
:class:`NonFiniteLossError`, which says where it happened. The checkpoints written before it,
the last finite weights, are left as they are (``ModelCheckpoint`` saves nothing on an exception
unless asked to with ``save_on_exception``).

It reads the loss that ``training_step`` returns, so it applies to automatic optimization; a
module that optimizes manually (and returns nothing) is left alone.

Example::

    trainer = Trainer(callbacks=[StopOnNonFiniteLoss(hint="try a smaller learning rate")])
"""

from __future__ import annotations

from typing import Any

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

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss.detach()).all()):
            return
        message = (
            f"the training loss became {loss.detach().float().mean().item()} at epoch {trainer.current_epoch}, "
            f"batch {batch_idx} (global step {trainer.global_step}); the fit stopped there, and the checkpoints "
            "written before it hold the last finite weights"
        )
        raise NonFiniteLossError(f"{message}; {self.hint}" if self.hint else message)
