"""The generalisation gap: accuracy on the training set, measured as on the validation set, minus
the validation accuracy.

``train_accuracy`` as logged during training is measured with dropout switched on and on augmented
batches, while the weights are still moving: it understates how well the network fits its training
data, and more so the more regularised it is. Comparing it with ``val_accuracy`` would make dropout
look as if it closed the gap by construction. This callback measures the training set the way the
validation set is measured, in eval mode, once the epoch's updates are done, and logs

* ``train_eval_accuracy``: the fraction of training examples the network now classifies right;
* ``generalization_gap``: ``train_eval_accuracy - val_accuracy`` (0 when the two agree, up to 1);
* ``train_eval_loss`` and ``generalization_loss_gap`` = ``val_loss - train_eval_loss``: the same in
  loss, which keeps growing after both accuracies have settled, as an overfitting network grows
  more confident on its training examples than on new ones. The loss is the module's
  ``criterion(scores, targets)`` when it has one (as ``val_loss`` is), else cross-entropy.

Accuracy comes from torchmetrics, so under DDP each process measures its shard and the value is
the global one. Works with any LightningModule whose training batches are ``(inputs, targets)``
with class targets and whose ``forward`` gives class scores (or offers ``predict_labels``).
Batches are taken from the Trainer's training loader as they come, before the
``on_after_batch_transfer`` hooks, which is where this project augments: so un-augmented.

Example::

    trainer = Trainer(callbacks=[GeneralizationGap()])   # or --trainer.callbacks+=GeneralizationGap
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from callbacks.wandb_helpers import say_once
from callbacks.batches import evaluating, not_a_classifier, predicted_labels


class GeneralizationGap(Callback):
    """Log the training set's eval-mode accuracy and loss, and their gaps to validation, after each
    epoch that was validated.

    Args:
        max_batches: measure at most this many training batches (``None``: the whole set), to cap
            the cost of the extra pass (a forward pass only, about a third of a training epoch).
        num_classes: by default the module's ``num_classes``, else the width of its scores.
    """

    def __init__(self, max_batches: int | None = None, num_classes: int | None = None) -> None:
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"GeneralizationGap: max_batches must be at least 1, got {max_batches}")
        self.max_batches = max_batches
        self.num_classes = num_classes
        self._validated_epoch: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation has run by now (it closes the training epoch), and val_accuracy is logged
        val_accuracy = trainer.callback_metrics.get("val_accuracy")
        if self._validated_epoch != trainer.current_epoch or val_accuracy is None:
            return
        measured = self._measure_training_set(trainer, pl_module)
        if measured is None:
            return
        accuracy, loss = measured
        values = {
            "train_eval_accuracy": accuracy,
            "generalization_gap": accuracy - val_accuracy.to(accuracy.device),
            "train_eval_loss": loss,
        }
        val_loss = trainer.callback_metrics.get("val_loss")
        if val_loss is not None:
            values["generalization_loss_gap"] = val_loss.to(loss.device) - loss
        # every process holds the same global values: no reduction needed, and none is collective
        pl_module.log_dict(values, on_step=False, on_epoch=True)

    def _measure_training_set(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.Tensor, torch.Tensor] | None:
        loaders: Any = trainer.train_dataloader
        if loaders is None:
            return None
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        criterion = getattr(pl_module, "criterion", None)
        criterion = criterion if callable(criterion) else torch.nn.functional.cross_entropy
        accuracy: MulticlassAccuracy | None = None
        loss = MeanMetric()
        with evaluating(pl_module), trainer.precision_plugin.forward_context():  # the fit's precision
            for index, batch in enumerate(loader):
                if self.max_batches is not None and index >= self.max_batches:
                    break
                reason = not_a_classifier(pl_module, batch)
                if reason is not None:
                    say_once(f"GeneralizationGap: no gap measured, because {reason}.")
                    return None
                inputs, target = move_data_to_device(tuple(batch[:2]), pl_module.device)
                scores = pl_module(inputs)
                if accuracy is None:
                    classes = self.num_classes or getattr(pl_module, "num_classes", None) or scores.shape[-1]
                    accuracy = MulticlassAccuracy(int(classes), average="micro").to(pl_module.device)
                    loss = loss.to(pl_module.device)
                accuracy.update(predicted_labels(pl_module, scores), target)
                loss.update(criterion(scores.float(), target), weight=len(target))
        if accuracy is None:
            return None
        return accuracy.compute(), loss.compute()  # both synchronised across processes
