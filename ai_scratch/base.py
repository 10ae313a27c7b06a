"""The shared base of every model: metadata, standard metric names, and the classification steps.

Every model in the history is a :class:`BaseModel`. It carries

* ``INFO``, a frozen :class:`~ai_scratch.info.ModelInfo` with the paper's facts (class attribute);
* :meth:`BaseModel.model_info`, which adds what is known only once the model is built: parameter
  count, input and output size, precision and device. The callbacks in ``callbacks/`` look for this
  method by name, so any LightningModule can offer it;
* :meth:`BaseModel.paper_sized`, the model at the size of its paper's main experiment, and
  :meth:`BaseModel.forward_flops`, what one forward pass on one example costs. The model cards
  (``ai-scratch info``) show both, at the paper's size and at the experiment's;
* the standard metric names ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
  ``test_loss``, ``test_accuracy`` and ``learning_rate``. Accuracy comes from torchmetrics, so the
  value is synchronised across processes under DDP rather than averaged per process.

:class:`Classifier` adds the training, validation, test and predict steps of an engine-based
classifier: a model that maps a batch ``(inputs, targets)`` to class scores and learns by
gradient descent on :meth:`Classifier.criterion`.
"""

from __future__ import annotations

from typing import Any, ClassVar, get_args

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from ai_scratch.info import ModelInfo
from callbacks.figures import default_figures

STAGES = ("train", "val", "test")


def check_choice(name: str, value: Any, choices: Any) -> None:
    """A ``ValueError`` naming the allowed values when ``value`` is not one of the ``Literal`` ``choices``.

    Models check their string options with it, so that a wrong one fails with one clear line.
    """
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


class BaseModel(L.LightningModule):
    """Base LightningModule of the project.

    Args:
        num_classes: number of classes for a classification model; it turns on the accuracy
            metrics. ``None`` for models that are not classifiers (they log their own metrics).

    Subclasses set the class attribute ``INFO`` and, once their layers exist, the attributes
    ``input_size`` and ``output_size`` (tuples without the batch dimension).
    """

    INFO: ClassVar[ModelInfo]

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.input_size: tuple[int, ...] | None = None
        self.output_size: tuple[int, ...] | None = None
        if num_classes is not None:
            # "micro" averaging is the plain fraction of correct answers, the accuracy of the papers;
            # the loss is a mean weighted by batch size, so a short last batch counts for what it holds.
            metrics = MetricCollection({"accuracy": MulticlassAccuracy(num_classes, average="micro"), "loss": MeanMetric()})
            self.train_metrics = metrics.clone(prefix="train_")
            self.val_metrics = metrics.clone(prefix="val_")
            self.test_metrics = metrics.clone(prefix="test_")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        info = cls.__dict__.get("INFO")
        if info is not None and not isinstance(info, ModelInfo):
            raise TypeError(f"{cls.__name__}.INFO must be a ModelInfo, got {type(info).__name__}")

    # ------------------------------------------------------------------ metadata
    def set_sizes(self, input_size: tuple[int, ...], output_size: tuple[int, ...]) -> None:
        """Record one example's input and output sizes (without the batch dimension), and a zero input
        of that size as ``example_input_array``, which Lightning's model summary and loggers run."""
        self.input_size, self.output_size = tuple(input_size), tuple(output_size)
        self.example_input_array = torch.zeros(1, *self.input_size)

    def model_info(self) -> dict[str, Any]:
        """The static ``INFO`` plus what the built model knows: size, precision, device."""
        info = self.INFO.to_dict() if hasattr(self, "INFO") else {"name": type(self).__name__.lower()}
        parameters = list(self.parameters())
        trainer = self.attached_trainer()
        precision = str(trainer.precision) if trainer is not None else _dtype_name(parameters)
        info.update(
            parameter_count=sum(p.numel() for p in parameters),
            trainable_parameter_count=sum(p.numel() for p in parameters if p.requires_grad),
            input_size=list(self.input_size) if self.input_size is not None else None,
            output_size=list(self.output_size) if self.output_size is not None else None,
            precision=precision,
            device=str(self.device),
            class_name=f"{type(self).__module__}.{type(self).__qualname__}",
        )
        return info

    @classmethod
    def paper_sized(cls) -> BaseModel:
        """The model at the size of its paper's main experiment (AlexNet's 1000 ImageNet classes at
        224x224, BERT-base, BitNet b1.58 3B), with ``example_input_array`` set to one example of the
        paper's input. Build it under ``torch.device("meta")`` to count without memory. Every model
        of the history overrides it; its docstring says which of the paper's models it is."""
        raise NotImplementedError(f"{cls.__name__} does not say how large its paper's model was (paper_sized)")

    def forward_flops(self) -> int:
        """Floating-point operations of one forward pass on ``example_input_array`` (one example),
        in eval mode, counted by :class:`torch.utils.flop_counter.FlopCounterMode`: a multiply and an add count
        two, as in the papers' "FLOPs" that are twice their multiply-adds. Only matrix products and
        convolutions are counted (element-wise work is small beside them). Runs on the model's
        device, the meta device included, where nothing is computed."""
        from torch.utils.flop_counter import FlopCounterMode

        example = getattr(self, "example_input_array", None)
        if example is None:
            raise ValueError(f"{type(self).__name__} has no example_input_array to count a forward pass on")
        inputs = example if isinstance(example, tuple) else (example,)
        inputs = tuple(each.to(self.device) if isinstance(each, Tensor) else each for each in inputs)
        counter = FlopCounterMode(display=False)
        training = self.training
        self.eval()  # inference, as the papers count it: batch norm on one example, no dropout
        try:
            with counter, torch.no_grad():
                self(*inputs)
        finally:
            self.train(training)
        return int(counter.get_total_flops())

    #: Names of the submodules whose outputs the feature-map figure shows (``callbacks.ConvFilters``);
    #: ``None``: the first convolutions.
    feature_map_layers: tuple[str, ...] | None = None

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The figure callbacks that a run of this model draws (``ai-scratch fit`` adds them unless
        ``--figures false``): by default the generic ones of :func:`callbacks.default_figures`, each of
        which says once when it does not apply. A model overrides this to leave out the generic figures
        that say nothing about it and to add its own (Hopfield's recall, the MLP's hidden units)."""
        return default_figures(every_n_epochs, feature_map_layers=self.feature_map_layers)

    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer this module is attached to, or ``None`` before one is (a model built on its own)."""
        try:
            return self.trainer
        except RuntimeError:  # Lightning's answer for a module that no Trainer holds
            return None

    # ------------------------------------------------------------------ learning rate
    def current_learning_rate(self) -> float | None:
        """Learning rate of the first parameter group of the first optimizer, if any."""
        trainer = self.attached_trainer()
        if trainer is None or not trainer.optimizers:
            return None
        return float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_start(self) -> None:
        learning_rate = self.current_learning_rate()
        if learning_rate is not None:
            self.log("learning_rate", learning_rate, on_step=False, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------ classification
    def predict_labels(self, scores: Tensor) -> Tensor:
        """Class indices from scores: argmax over classes, or the sign of a single binary score."""
        if scores.ndim > 1:
            return scores.argmax(dim=-1)
        return (scores >= 0).long()

    def log_classification(self, stage: str, loss: Tensor, scores: Tensor, target: Tensor) -> None:
        """Accumulate ``{stage}_loss`` and ``{stage}_accuracy``; they are logged at the end of the epoch.

        The torchmetrics objects are updated here and computed once per epoch (in
        :meth:`_log_epoch_metrics`), synchronised across DDP processes.
        """
        if self.num_classes is None:
            raise RuntimeError(f"{type(self).__name__} was built without num_classes; it has no accuracy to log")
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics[f"{stage}_accuracy"].update(self.predict_labels(scores), target)
        metrics[f"{stage}_loss"].update(loss, weight=len(target))

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics: MetricCollection | None = getattr(self, f"{stage}_metrics", None)
        if metrics is None:
            return
        # the metrics updated this epoch (a regression has a loss but no accuracy); collective under
        # DDP: every process gets the global values
        values = {name: metric.compute() for name, metric in metrics.items() if metric.update_called}
        if not values:
            return
        # sync_dist: the values are equal everywhere already; it keeps Lightning's reduction in step
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=stage != "train", sync_dist=True)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")


class Classifier(BaseModel):
    """An engine-based classifier: ``forward`` gives class scores, gradient descent on ``criterion``.

    Batches are ``(inputs, targets)`` with integer class targets.
    """

    def criterion(self, scores: Tensor, target: Tensor) -> Tensor:
        """The training loss; cross-entropy unless the paper says otherwise."""
        return torch.nn.functional.cross_entropy(scores, target)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        inputs, target = batch
        scores = self(inputs)
        loss = self.criterion(scores, target)
        self.log_classification(stage, loss.detach(), scores.detach(), target)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_labels(self(inputs))


def _dtype_name(parameters: list[torch.nn.Parameter]) -> str:
    if not parameters:
        return "float32"
    return str(parameters[0].dtype).removeprefix("torch.")
