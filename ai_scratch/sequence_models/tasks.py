"""What the sequence models share as LightningModules: the tasks they are trained on and measured by.

Two bases, one per shape of task:

* :class:`SequenceTaskModel`: one input sequence, and either one answer for the whole sequence or
  one per step. ``task`` says which:

  - ``"regression"``: batches ``(inputs (B, T, F) float, targets (B,) float)``; ``forward`` gives
    ``(B,)``; loss and metric: mean squared error (``{stage}_loss``, ``{stage}_mse``). The adding
    problem.
  - ``"classification"``: batches ``(inputs (B, T, F) float, classes (B,) int)``; ``forward`` gives
    class scores ``(B, C)``; cross-entropy, ``{stage}_accuracy``. The temporal order problem.
  - ``"language_model"``: batches ``(tokens (B, T) int, next tokens (B, T) int)``; ``forward`` gives
    scores over the vocabulary at every step ``(B, T, V)``; cross-entropy per token,
    ``{stage}_perplexity`` (torchmetrics' ``Perplexity``, ``exp`` of the mean cross-entropy in nats)
    and ``{stage}_accuracy`` (the next token right). :meth:`SequenceTaskModel.generate` samples text.

* :class:`Seq2SeqModel`: a source sequence in, a target sequence out (copy, reversal, dates), the
  token conventions of :mod:`datamodules.sequences` (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2). Training
  is teacher-forced: ``forward(source, target[:, :-1])`` gives the scores of ``target[:, 1:]``. The
  validation and test metrics come from *greedy decoding*, the model fed its own outputs, since that
  is how a translation is used: ``{stage}_token_accuracy`` (target positions up to and including
  ``<eos>`` right), ``{stage}_sequence_accuracy`` (every position right) and ``{stage}_bleu``
  (torchmetrics' ``BLEUScore`` of the decoded token strings, Papineni et al., 2002).
  ``{stage}_loss`` is the teacher-forced cross-entropy.

Every metric is a torchmetrics object, so it is the global value under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from lightning.pytorch.callbacks import Callback

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, MeanSquaredError
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import BLEUScore, Perplexity

from ai_scratch.base import BaseModel, check_choice
from ai_scratch.sequence_models.recurrent import RecurrentLayer, check_positive
from callbacks import AttentionMaps
from callbacks.figures import GradientFlow, LearningCurves
from callbacks.sequence_figures import GateActivations, TextSamples, TimeStepGradients

Task = Literal["regression", "classification", "language_model"]
PAD_INDEX, BOS_INDEX, EOS_INDEX = 0, 1, 2


def stacked_flops(model: BaseModel, stacks: Sequence[tuple[nn.Module, str]]) -> int:
    """:meth:`BaseModel.forward_flops` of ``model`` whose ``nn.ModuleList`` s ``getattr(owner, name)``
    (one per entry of ``stacks``) each hold identical layers, without running every layer.

    The count is ``outside + sum_k N_k x layer_k``: one forward with every stack emptied gives
    ``outside``, one with a single layer of stack k (the others empty) adds ``layer_k``. On the meta
    device each operation's shape is worked out in Python, so a deep model's full forward is slow;
    the models' tests compare this count with the full one at a small size.
    """
    kept = [getattr(owner, name) for owner, name in stacks]
    try:
        for (owner, name), layers in zip(stacks, kept):
            setattr(owner, name, layers[:0])
        outside = BaseModel.forward_flops(model)
        total = outside
        for (owner, name), layers in zip(stacks, kept):
            setattr(owner, name, layers[:1])
            total += len(layers) * (BaseModel.forward_flops(model) - outside)
            setattr(owner, name, layers[:0])
    finally:
        for (owner, name), layers in zip(stacks, kept):
            setattr(owner, name, layers)
    return total


#: The datamodule attributes that a task's ``input_size`` and ``output_size`` must equal.
DATA_SIZES: dict[str, tuple[str, str]] = {
    "regression": ("input_size", "output_size"),
    "classification": ("input_size", "num_classes"),
    "language_model": ("vocab_size", "vocab_size"),
}


class SequenceTaskModel(BaseModel):
    """A model of one sequence in, trained for :data:`Task` ``task``; subclasses write ``forward``.

    Args:
        task: ``"regression"``, ``"classification"`` or ``"language_model"`` (module docstring).
        output_size: 1 for regression, the number of classes, or the vocabulary size.
    """

    def __init__(self, task: Task, output_size: int) -> None:
        check_choice("task", task, Task)
        if not isinstance(output_size, int) or output_size < 1:
            raise ValueError(f"output_size must be a positive integer, got {output_size!r}")
        if task == "regression" and output_size != 1:
            raise ValueError(f"a regression predicts one number: output_size must be 1, got {output_size}")
        if task != "regression" and output_size < 2:
            raise ValueError(f"task={task!r} needs output_size >= 2 (classes or vocabulary), got {output_size}")
        # classification and language modelling share the base's accuracy and loss metrics
        super().__init__(num_classes=None if task == "regression" else output_size)
        self.task = task
        if task == "regression":
            for stage in ("train", "val", "test"):
                setattr(self, f"{stage}_regression", MeanSquaredError())
        if task == "language_model":
            for stage in ("train", "val", "test"):
                setattr(self, f"{stage}_perplexity", Perplexity())

    def setup(self, stage: str) -> None:
        """Refuse, in one line, a datamodule whose sizes do not fit the model's (a vocabulary of 103
        characters and an embedding of 100 would otherwise fail deep inside a batch)."""
        datamodule = self.trainer.datamodule  # setup is the Trainer's call: it is attached
        for side, attribute in zip(("input_size", "output_size"), DATA_SIZES[self.task]):
            have, want = getattr(datamodule, attribute, None), self.hparams.get(side)
            if isinstance(have, int) and isinstance(want, int) and have != want:
                raise ValueError(f"the model's {side} is {want} but the data's {attribute} is {have}: set --model.{side}={have}")

    def criterion(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.task == "regression":
            return F.mse_loss(outputs, targets)
        if self.task == "classification":
            return F.cross_entropy(outputs, targets)
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self.criterion(outputs, targets)
        if self.task == "regression":
            metric: MeanSquaredError = getattr(self, f"{stage}_regression")
            metric.update(outputs.detach(), targets)
            self.log(f"{stage}_mse", metric, on_step=False, on_epoch=True, prog_bar=stage != "train")
            # the same number as the loss; weighted by batch size so a short last batch counts for what it holds
            self.log(f"{stage}_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=len(targets), sync_dist=True)
        elif self.task == "classification":
            self.log_classification(stage, loss.detach(), outputs.detach(), targets)
        else:
            self.log_classification(stage, loss.detach(), outputs.detach().flatten(0, 1), targets.flatten())
            perplexity: Perplexity = getattr(self, f"{stage}_perplexity")
            perplexity.update(outputs.detach().float(), targets)
            self.log(f"{stage}_perplexity", perplexity, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves and gradient flow; a language model's text samples (a ``wandb.Table``)."""
        drawn: list[Callback] = [LearningCurves(every_n_epochs=every_n_epochs), GradientFlow(every_n_epochs=every_n_epochs)]
        if self.task == "language_model":
            drawn.append(TextSamples(temperature=0.8, every_n_epochs=every_n_epochs))
        return drawn

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        outputs = self(inputs)
        return outputs if self.task == "regression" else outputs.argmax(dim=-1)

    #: the longest context :meth:`generate` feeds back (``None``: all of it); a model trained on
    #: windows of ``block_size`` tokens sets it to that.
    context_size: int | None = None

    @torch.no_grad()
    def generate(self, prompt: Tensor, length: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``length`` tokens after ``prompt`` (int64 ``(T,)`` or ``(B, T)``), one at a time.

        Each step feeds the last :attr:`context_size` tokens and samples the next from
        ``softmax(scores / temperature)``; ``temperature=0`` takes the most likely token.
        """
        if self.task != "language_model":
            raise ValueError(f"generate needs task='language_model', this model has task={self.task!r}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        was_training = self.training
        self.eval()
        tokens = prompt.to(self.device).long()
        tokens = tokens[None] if tokens.ndim == 1 else tokens
        for _ in range(length):
            context = tokens if self.context_size is None else tokens[:, -self.context_size :]
            scores = self(context)[:, -1].float()
            if temperature == 0:
                following = scores.argmax(dim=-1, keepdim=True)
            else:
                probabilities = torch.softmax(scores / temperature, dim=-1)
                following = torch.multinomial(probabilities.cpu(), 1, generator=generator).to(tokens.device)
            tokens = torch.cat([tokens, following], dim=1)
        self.train(was_training)
        return tokens[0] if prompt.ndim == 1 else tokens


class Seq2SeqModel(BaseModel):
    """An encoder-decoder for a token sequence in and a token sequence out; subclasses write
    ``forward(source, decoder_input) -> scores (B, T, target_vocab_size)`` and may write a faster
    :meth:`greedy_decode`.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (with the three special tokens).
        target_length: the padded width of a target (``<bos>`` and ``<eos>`` included): greedy
            decoding writes at most ``target_length - 1`` tokens.
        label_smoothing: the training loss's label smoothing (Szegedy et al., 2016), 0 for none.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, target_length: int, label_smoothing: float = 0.0) -> None:
        for name, value, least in (
            ("source_vocab_size", source_vocab_size, 4),
            ("target_vocab_size", target_vocab_size, 4),
            ("target_length", target_length, 3),
        ):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least} (three special tokens and a symbol), got {value!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        super().__init__(num_classes=None)
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        self.target_length, self.label_smoothing = target_length, label_smoothing
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_loss_metric", MeanMetric())
        for stage in ("val", "test"):
            setattr(self, f"{stage}_token_accuracy", MulticlassAccuracy(target_vocab_size, average="micro", ignore_index=PAD_INDEX))
            setattr(self, f"{stage}_sequence_accuracy", MeanMetric())
            setattr(self, f"{stage}_bleu", BLEUScore(n_gram=4, smooth=True))

    def criterion(self, scores: Tensor, targets: Tensor, smoothing: float | None = None) -> Tensor:
        """Cross-entropy over the non-pad target tokens (label-smoothed when training)."""
        return F.cross_entropy(
            scores.flatten(0, 1).float(),
            targets.flatten(),
            ignore_index=PAD_INDEX,
            label_smoothing=self.label_smoothing if smoothing is None else smoothing,
        )

    @torch.no_grad()
    def greedy_decode(self, source: Tensor, max_new_tokens: int | None = None) -> Tensor:
        """The most likely next token, fed back, from ``<bos>``: ``(B, max_new_tokens)`` tokens
        (``<eos>`` and, after it, ``<pad>`` where a sequence ended). This general version runs the
        whole prefix again at every step; a model that can carry a state overrides it."""
        steps = max_new_tokens or self.target_length - 1
        decoded = source.new_full((len(source), 1), BOS_INDEX)
        finished = torch.zeros(len(source), dtype=torch.bool, device=source.device)
        for _ in range(steps):
            following = self(source, decoded)[:, -1].argmax(dim=-1)
            following = following.masked_fill(finished, PAD_INDEX)
            finished |= following == EOS_INDEX
            decoded = torch.cat([decoded, following[:, None]], dim=1)
            if finished.all():
                break
        out = decoded[:, 1:]
        return F.pad(out, (0, steps - out.shape[1]), value=PAD_INDEX)

    def _tokens_text(self, tokens: Tensor) -> list[str]:
        """Each row's tokens up to ``<eos>`` as space-separated indices (what BLEU compares)."""
        texts = []
        for row in tokens.tolist():
            words = []
            for token in row:
                if token in (EOS_INDEX, PAD_INDEX):
                    break
                words.append(str(token))
            texts.append(" ".join(words))
        return texts

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        source, target = batch
        expected = target[:, 1:]
        loss = self.criterion(self(source, target[:, :-1]), expected, smoothing=0.0)
        getattr(self, f"{stage}_loss_metric").update(loss.detach(), weight=len(source))
        self.log(f"{stage}_loss", getattr(self, f"{stage}_loss_metric"), on_step=False, on_epoch=True, prog_bar=True)
        decoded = self.greedy_decode(source, expected.shape[1])
        token_accuracy: MulticlassAccuracy = getattr(self, f"{stage}_token_accuracy")
        token_accuracy.update(decoded, expected)
        every_token_right = ((decoded == expected) | (expected == PAD_INDEX)).all(dim=1).float()
        getattr(self, f"{stage}_sequence_accuracy").update(every_token_right)
        getattr(self, f"{stage}_bleu").update(self._tokens_text(decoded), [[text] for text in self._tokens_text(expected)])
        for name in ("token_accuracy", "sequence_accuracy", "bleu"):
            self.log(f"{stage}_{name}", getattr(self, f"{stage}_{name}"), on_step=False, on_epoch=True, prog_bar=name != "bleu")
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        source, target = batch
        loss = self.criterion(self(source, target[:, :-1]), target[:, 1:])
        self.train_loss_metric.update(loss.detach(), weight=len(source))
        self.log("train_loss", self.train_loss_metric, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "test")

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, gradient flow, the attention maps of any module that exposes its weights,
        and a table of validation sources with their expected and greedy-decoded targets."""
        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            AttentionMaps(every_n_epochs=every_n_epochs),
            TextSamples(every_n_epochs=every_n_epochs),
        ]

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        source = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.greedy_decode(source)


class RecurrentNetwork(SequenceTaskModel):
    """A recurrent layer with what a task needs around it: the shared LightningModule of the Elman
    RNN, the LSTM and the GRU (subclasses set :attr:`layer_class` and :meth:`layer_options`).

        tokens --embedding--> x_t --recurrent layer--> h_t --linear head--> answer

    The embedding is there for a language model only (``input_size`` is then the vocabulary);
    real-valued inputs (the adding problem's (value, marker) pairs, one-hot symbols) go to the layer
    as they are. The head reads the last step's ``h_T`` for a regression or a classification, and
    every ``h_t`` for a language model.

    Args:
        task: see :class:`SequenceTaskModel`.
        input_size: features per step, or the vocabulary size of a language model.
        output_size: 1 (regression), the number of classes, or the vocabulary size.
        hidden_size, num_layers: the recurrent layer's size.
        embedding_size: width of a language model's token embedding (``None``: ``hidden_size``).
        fused: run the layer on PyTorch's fused kernel with the same parameters (same numbers, faster).
        bptt_truncation: truncated backpropagation through time, every k steps (``None``: full BPTT).
        learning_rate: Adam's step size (Kingma and Ba, 2015), today's default for recurrent networks.
        context_size: the most tokens :meth:`generate` feeds back (the training windows' length).
    """

    #: the recurrent layer class (``ElmanRNN``, ``LSTM``, ``GRU``)
    layer_class: type[RecurrentLayer]

    def __init__(
        self,
        task: Task = "regression",
        input_size: int = 2,
        output_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        embedding_size: int | None = None,
        fused: bool = False,
        bptt_truncation: int | None = None,
        learning_rate: float = 1e-3,
        context_size: int | None = None,
    ) -> None:
        super().__init__(task, output_size)
        check_positive("input_size", input_size)
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        self.learning_rate = learning_rate
        self.context_size = context_size
        if task == "language_model":
            self.embedding: nn.Module = nn.Embedding(input_size, embedding_size or hidden_size)
            layer_input = embedding_size or hidden_size
        else:
            self.embedding = nn.Identity()
            layer_input = input_size
        self.recurrent = self.layer_class(
            layer_input, hidden_size, num_layers=num_layers, fused=fused, bptt_truncation=bptt_truncation, **self.layer_options()
        )
        self.head = nn.Linear(hidden_size, output_size)
        self.set_example_steps((context_size or 8) if task == "language_model" else 8)  # a language model's training window

    def set_example_steps(self, steps: int) -> None:
        """Make ``example_input_array`` one sequence of ``steps`` time steps (zeros: features, or token 0
        of a language model), and ``input_size`` and ``output_size`` those of one such sequence."""
        check_positive("steps", steps)
        output_size = self.head.out_features
        if self.task == "language_model":
            self.example_input_array = torch.zeros(1, steps, dtype=torch.long)
            self.input_size, self.output_size = (steps,), (steps, output_size)
        else:
            self.set_sizes((steps, self.recurrent.input_size), (output_size,) if self.task == "classification" else ())

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The task's figures, and the recurrent ones: the gradient reaching each time step (why the
        Elman network forgets) and the gates of an LSTM or GRU over one validation sequence."""
        return [
            *super().figures(every_n_epochs),
            TimeStepGradients(last_step_loss=True, every_n_epochs=every_n_epochs),
            GateActivations(every_n_epochs=every_n_epochs),
        ]

    def layer_options(self) -> dict[str, Any]:
        """The layer's own options (nonlinearity, forget gate, reset placement)."""
        return {}

    def forward_flops(self) -> int:
        """The FLOPs of :meth:`forward` on ``example_input_array`` as :meth:`BaseModel.forward_flops`
        counts them, from the first two time steps: every step runs the same cells (and a language
        model's readout), so the count is ``first step + (T - 1) x each further step``. (The full
        count gives the same number, as the tests check; on the meta device, where every operation's
        shape is worked out in Python, running all T steps of a paper-sized network is slow.)"""
        example = self.example_input_array
        steps = example.shape[1]
        if steps <= 2:
            return super().forward_flops()
        try:
            self.example_input_array = example[:, :1]
            first = super().forward_flops()
            self.example_input_array = example[:, :2]
            each_further = super().forward_flops() - first
        finally:
            self.example_input_array = example
        return first + (steps - 1) * each_further

    def forward(self, inputs: Tensor) -> Tensor:
        states, _ = self.recurrent(self.embedding(inputs))  # h_t for every t: (B, T, hidden)
        if self.task == "language_model":
            return self.head(states)  # scores of the next token at every step
        answer = self.head(states[:, -1])  # the whole sequence read: h_T
        return answer.squeeze(-1) if self.task == "regression" else answer

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)
