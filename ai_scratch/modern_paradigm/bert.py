"""BERT (Devlin et al., 2018): a bidirectional Transformer encoder, pre-trained on unlabelled text, fine-tuned with few labels.

Paper: J. Devlin, M.-W. Chang, K. Lee and K. Toutanova, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", NAACL 2019 (arXiv:1810.04805). Section 3 gives the
model and its two steps, Figure 2 the input, Section 3.1 and Appendix A.1 the pre-training tasks,
Section 3.2 and Section 4 the fine-tuning.

The idea (Section 3): "pre-training and fine-tuning". One network is first *pre-trained* on
unlabelled text, where the labels come for free, then *fine-tuned*: the same parameters, plus one
small output layer, trained on the labelled task. A language model that reads left to right (GPT)
sees one side of each word; BERT's masked language model sees both: "the MLM objective enables the
representation to fuse the left and the right context".

Input (Section 3, Figure 2). A sequence is ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` of
WordPiece tokens (30,000 of them; ``datamodules/text.py`` learns a few thousand). Each position's
input is the sum of three learnt embeddings, then LayerNorm and dropout::

    x_i = LayerNorm(E_token[w_i] + E_segment[s_i] + E_position[i])       (Figure 2)

with ``s_i`` = 0 in sentence A and 1 in sentence B, and positions *learnt* (up to 512), not the
sinusoids of Vaswani et al.

Encoder (Section 3, "Model Architecture"): the Transformer encoder of Vaswani et al. (2017),
``L`` layers of width ``H`` with ``A`` heads and a feed-forward size of ``4H``, each layer post-norm
as the original::

    x = LayerNorm(x + Dropout(MultiHead(x, x, x)))                      (attention.py)
    x = LayerNorm(x + Dropout(GELU(x W_1 + b_1) W_2 + b_2))               (d_ff = 4H)

GELU (Hendrycks and Gimpel, 2016) in place of ReLU, as the paper's code (Section 3.1 of GPT, which
BERT follows). Dropout 0.1 everywhere, on the attention weights too. Sizes (Section 3):
BERT-base ``L = 12, H = 768, A = 12`` (110M parameters), BERT-large ``L = 24, H = 1024, A = 16``
(340M). The final hidden vector of ``[CLS]`` through a dense layer and tanh is the *pooled*
output ``C``, the representation of the whole sequence.

Pre-training (Section 3.1; Appendix A.1):

* Task #1, masked LM: 15% of the WordPiece positions are chosen; a chosen token is replaced by
  ``[MASK]`` 80% of the time, by a random token 10% of the time, kept 10% of the time (so that the
  model cannot rely on ``[MASK]`` being there, which fine-tuning never shows), and the model
  predicts the original token from ``T_i`` with cross-entropy. The output layer (the paper's code)
  is a dense layer with GELU and LayerNorm, then the token embedding itself, transposed, plus a
  bias per token: ``p(w | T_i) = softmax(LN(GELU(T_i W_t + b_t)) E_token^T + b)``.
* Task #2, next-sentence prediction (``next_sentence``): B follows A in the corpus half of the
  time (IsNext) and is a random span the other half (NotNext); ``C`` predicts which. The loss is
  the sum of the mean MLM likelihood and the mean NSP likelihood (Appendix A.2).

Adam with ``beta_1 = 0.9``, ``beta_2 = 0.999``, L2 weight decay 0.01, rate 1e-4 with warm-up over
the first 10,000 steps then linear decay (Appendix A.2); here AdamW (decoupled decay, the paper
code's form), LayerNorm and biases not decayed, and warm-up over ``warmup_fraction`` of each phase.

Fine-tuning (Section 3.2, Section 4.1): a classification layer ``W in R^{K x H}`` on ``C``, the
loss ``log(softmax(C W^T))``; all parameters are fine-tuned, with batch 32, 3 epochs and the best
of the rates 5e-5, 4e-5, 3e-5 and 2e-5 on the development set (Section 4.1; Appendix A.3 adds 2e-5
for BERT-base), and warm-up over the first 10% of the steps (the paper's code). "For BERT-large we
found that fine-tuning was sometimes unstable on small datasets, so we ran several random restarts
and selected the best model on the Dev set": the spread of fine-tuning over seeds, which
``tests/test_bert.py`` measures.

One fit, two phases. :class:`Bert` pre-trains for its first ``pretraining_epochs`` epochs
(masked LM, and NSP with ``next_sentence``; the datamodule serves the unlabelled sequences then, see
``datamodules/text.py``), then fine-tunes on the labelled task for the rest of ``max_epochs``, with
a fresh Adam and its own warm-up and decay: so that one config states one claim. ``pretrained``
starts instead from the weights of a separate pre-training run's checkpoint (pre-train once,
fine-tune many times). With neither, the network learns the task from scratch: the comparison of
``configs/bert/``.

In miniature the comparison did not come out as the paper's. A two-layer BERT pre-trained on the
pydoc topics learns to guess frequent pieces behind ``[MASK]`` well above the best constant guess,
but fine-tuned on 128 labelled sentences of held-out documents it stays at chance, as the same
network from scratch does: it has too little language for so few labels to use.
``configs/bert/not_reproduced/`` keeps that experiment and its measurements, outside ``ai-scratch
reproduce``; what it would need is a network that knows more language, larger and pre-trained for
longer than a CPU experiment allows.

Not in the paper, as options: ``fused`` (attention by ``scaled_dot_product_attention``, same weights,
no attention maps). The paper's GELU was the tanh approximation; ``nn.GELU()`` here is the exact one.

Parameter counts. :meth:`Bert.paper_sized` (BERT-base: vocabulary 30,522, 512 positions, 2 segments) has
**109,482,240** parameters in the encoder and its pooler (the paper's "110M"): 23,837,184 in the
embeddings, 12 x 7,087,872 in the layers (each as many as ``nn.TransformerEncoderLayer(768, 12,
3072)``), 590,592 in the pooler; the masked-LM output adds 622,650 (its dense layer, LayerNorm and
the bias of 30,522 tokens: the weight is the embedding's), next-sentence prediction 1,538 and a
two-class head 1,538. :func:`parameter_count` is the closed form.

Example::

    model = Bert(vocab_size=3000, hidden_size=128, num_layers=2, num_heads=2, max_positions=64)
    scores = model(tokens)                      # (B, 2): the class scores of the pooled [CLS]
    hidden, pooled = model.encode(tokens)       # (B, L, H), (B, H)
    predictions = model.masked_lm_scores(hidden)  # (B, L, V)
    Bert.paper_sized().parameter_count()        # 110,106,428: with the masked-LM head and a two-class classifier
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric

from ai_scratch.base import Classifier
from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.attention import MultiHeadAttention, padding_mask
from ai_scratch.sequence_models.tasks import stacked_flops
from callbacks import AttentionMaps
from callbacks.figures import ConfusionMatrix, GradientFlow, LearningCurves
from datamodules.text import IGNORE_INDEX, PAD_INDEX, segment_ids

#: Section 3: BERT-base, with the 30,522 WordPiece tokens of the released uncased model.
BASE_CONFIG: dict[str, Any] = {
    "vocab_size": 30_522, "hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072,
    "max_positions": 512, "type_vocab_size": 2,
}  # fmt: skip
#: Section 3: BERT-large.
LARGE_CONFIG: dict[str, Any] = {**BASE_CONFIG, "hidden_size": 1024, "num_layers": 24, "num_heads": 16, "intermediate_size": 4096}
#: the encoder and pooler of :meth:`Bert.base` (the paper's "110M").
BASE_ENCODER_PARAMETERS = 109_482_240
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-6  # Appendix A.2; epsilon of the paper's code
INIT_STD = 0.02  # the paper code's initializer_range


def parameter_count(
    vocab_size: int, hidden_size: int, num_layers: int, intermediate_size: int, max_positions: int, type_vocab_size: int = 2,
    masked_lm: bool = True, next_sentence: bool = False, num_classes: int | None = None,
) -> int:  # fmt: skip
    """The closed form of BERT's parameters: embeddings, ``L`` layers, pooler, and the heads asked for."""
    h, f = hidden_size, intermediate_size
    embeddings = (vocab_size + max_positions + type_vocab_size) * h + 2 * h  # three tables and a LayerNorm
    layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * (2 * h)  # W^Q, W^K, W^V, W^O; W_1, W_2; two LayerNorms
    pooler = h * h + h
    total = embeddings + num_layers * layer + pooler
    if masked_lm:
        total += (h * h + h) + 2 * h + vocab_size  # transform, LayerNorm, output bias (the weight is E_token)
    if next_sentence:
        total += 2 * h + 2
    if num_classes is not None:
        total += num_classes * h + num_classes
    return total


# ------------------------------------------------------------------------------------ the network
class BertEmbeddings(nn.Module):
    """``LayerNorm(E_token[w] + E_segment[s] + E_position[i])``, then dropout (Figure 2)."""

    def __init__(self, vocab_size: int, hidden_size: int, max_positions: int, type_vocab_size: int, dropout: float) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, hidden_size)
        self.segment = nn.Embedding(type_vocab_size, hidden_size)
        self.position = nn.Embedding(max_positions, hidden_size)  # learnt, not sinusoidal
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, segments: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        summed = self.token(tokens) + self.segment(segments) + self.position(positions)[None]
        return self.dropout(self.norm(summed))


class BertLayer(nn.Module):
    """One encoder layer, post-norm: self-attention then a GELU feed-forward of width ``4H``, each
    ``LayerNorm(x + Dropout(sublayer(x)))``."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float, attention_dropout: float,
                 fused: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.self_attention = MultiHeadAttention(hidden_size, num_heads, dropout=attention_dropout, fused=fused)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size), nn.GELU(), nn.Linear(intermediate_size, hidden_size)
        )
        self.output_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.attention_norm(x + self.dropout(self.self_attention(x, x, x, mask)))
        return self.output_norm(x + self.dropout(self.feed_forward(x)))


class BertEncoder(nn.Module):
    """Embeddings, ``L`` layers and the pooler: ``(hidden states T, pooled C)``."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                 max_positions: int, type_vocab_size: int, dropout: float, attention_dropout: float, fused: bool) -> None:  # fmt: skip
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, hidden_size, max_positions, type_vocab_size, dropout)
        self.layers = nn.ModuleList(
            BertLayer(hidden_size, num_heads, intermediate_size, dropout, attention_dropout, fused) for _ in range(num_layers)
        )
        self.pooler = nn.Linear(hidden_size, hidden_size)

    def forward(self, tokens: Tensor, segments: Tensor) -> tuple[Tensor, Tensor]:
        mask = padding_mask(tokens, PAD_INDEX)  # (B, 1, 1, L): no position attends to a [PAD]
        x = self.embeddings(tokens, segments)
        for layer in self.layers:
            x = layer(x, mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # C: the final hidden vector of [CLS], through a dense layer
        return x, pooled


class MaskedLMHead(nn.Module):
    """``LN(GELU(T W_t + b_t)) E_token^T + b``: the output weight is the token embedding (tied)."""

    def __init__(self, hidden_size: int, token_embedding: nn.Embedding) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size, eps=1e-12))
        self.token_embedding = token_embedding  # shared, not a copy
        self.bias = nn.Parameter(torch.zeros(token_embedding.num_embeddings))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.transform(hidden) @ self.token_embedding.weight.T + self.bias


def initialise(module: nn.Module) -> None:
    """The paper code's initialisation: weights from a normal of standard deviation 0.02 truncated at
    two deviations, biases 0, LayerNorm 1 and 0."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(sub.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
            if isinstance(sub, nn.Linear) and sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


def warmup_linear_decay(step: int, total: int, warmup: int) -> float:
    """The factor of the peak rate at ``step`` of ``total``: linear from 0 over ``warmup`` steps, then linear to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


INFO = ModelInfo(
    name="bert",
    full_name="BERT",
    module=6,
    pattern="engine-based",
    year_introduced=2018,
    authors=("Jacob Devlin", "Ming-Wei Chang", "Kenton Lee", "Kristina Toutanova"),
    paper_title="BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    key_innovations=(
        "pre-training a deep bidirectional Transformer encoder on unlabelled text, then fine-tuning all of it",
        "the masked language model: predict 15% of the tokens from both sides (80% [MASK], 10% random, 10% kept)",
        "next-sentence prediction from the [CLS] representation",
        "one input for single sentences and pairs: token, segment and learnt position embeddings summed",
        "one architecture for many tasks: a single output layer added for each",
    ),
    architecture_type="transformer (encoder only)",
    learning_algorithm="backpropagation; self-supervised pre-training, then supervised fine-tuning",
    loss_function="masked-LM (and NSP) cross-entropy in pre-training; cross-entropy of the task in fine-tuning",
    optimizer="Adam (0.9, 0.999), weight decay 0.01, warm-up then linear decay; 1e-4 pre-training, 5e-5 to 2e-5 fine-tuning",
    framework="pytorch",
    difficulty_level="advanced",
    key_learning_objectives=(
        "sum token, segment and position embeddings, and build a post-norm GELU encoder from attention",
        "mask 15% of the word pieces with the 80/10/10 rule and predict them with the tied output layer",
        "see pre-training on unlabelled text beat training from scratch when labels are few",
        "count BERT-base's 110M parameters in closed form and against nn.TransformerEncoderLayer",
        "measure how much fine-tuning on few labels varies from one seed to another",
    ),
    estimated_training_time="minutes",
)


class Bert(Classifier):
    """BERT: the encoder, the pre-training heads and a classifier on the pooled ``[CLS]``; pre-training
    then fine-tuning in one fit (see the module docstring).

    The defaults are a small BERT for a CPU (2 layers of width 128); :meth:`paper_sized` is the paper's
    BERT-base, :meth:`large` its BERT-large.

    Under DDP, each phase leaves some parameters without a gradient (pre-training the classifier,
    fine-tuning the masked-LM head), so a fit needs ``--trainer.strategy=ddp_find_unused_parameters_true``.

    Args:
        vocab_size: WordPiece tokens (the datamodule's ``vocab_size``; 30,522 in BERT-base).
        hidden_size, num_layers, num_heads: ``H``, ``L``, ``A`` (768, 12, 12 in BERT-base).
        intermediate_size: the feed-forward width; ``None``: ``4H``.
        max_positions: the learnt position table (512); sequences may not be longer.
        type_vocab_size: segments (2: sentences A and B).
        num_classes: classes of the fine-tuning task.
        dropout, attention_dropout: 0.1 and 0.1.
        next_sentence: pre-train next-sentence prediction as well (the data must hold pairs).
        pretraining_epochs: epochs of pre-training at the start of the fit (0: none).
        pretrained: a checkpoint of a pre-training run to start from (its encoder and masked-LM head).
        pretraining_learning_rate: peak rate of pre-training (1e-4 in the paper).
        learning_rate: peak rate of fine-tuning (5e-5, 3e-5 or 2e-5 for BERT-base).
        warmup_fraction: the share of each phase's steps spent warming up (0.1).
        weight_decay: 0.01.
        fused: attention by ``scaled_dot_product_attention`` (no attention maps).

    Raises:
        ValueError: for sizes that do not fit, a rate or fraction out of range, a ``pretrained``
            file that is missing or does not fit, or (when the fit starts) a pre-training fit that
            does not reload its loaders every epoch.
    """

    INFO = INFO

    def __init__(
        self,
        vocab_size: int = 3000,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_heads: int = 2,
        intermediate_size: int | None = None,
        max_positions: int = 64,
        type_vocab_size: int = 2,
        num_classes: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        next_sentence: bool = False,
        pretraining_epochs: int = 0,
        pretrained: str | None = None,
        pretraining_learning_rate: float = 1e-3,
        learning_rate: float = 1e-4,
        warmup_fraction: float = 0.1,
        weight_decay: float = 0.01,
        fused: bool = False,
    ) -> None:
        super().__init__(num_classes)
        intermediate_size = intermediate_size or 4 * hidden_size
        for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("num_heads", num_heads), ("intermediate_size", intermediate_size),
                            ("max_positions", max_positions), ("type_vocab_size", type_vocab_size)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size must be a multiple of num_heads, got hidden_size={hidden_size}, num_heads={num_heads}")
        for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout), ("warmup_fraction", warmup_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")
        if not isinstance(pretraining_epochs, int) or pretraining_epochs < 0:
            raise ValueError(f"pretraining_epochs must be an integer >= 0, got {pretraining_epochs!r}")
        if pretraining_epochs and pretrained:
            raise ValueError("pretrained and pretraining_epochs exclude each other: start from a checkpoint, or pre-train in this fit")
        if not pretraining_learning_rate > 0 or not learning_rate > 0 or weight_decay < 0:
            raise ValueError(
                f"pretraining_learning_rate and learning_rate must be positive and weight_decay >= 0, got "
                f"{pretraining_learning_rate}, {learning_rate} and {weight_decay}"
            )
        self.save_hyperparameters()
        self.hparams.update(intermediate_size=intermediate_size)
        self.pretraining_epochs = pretraining_epochs
        self.encoder = BertEncoder(vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions,
                                   type_vocab_size, dropout, attention_dropout, fused)  # fmt: skip
        self.masked_lm = MaskedLMHead(hidden_size, self.encoder.embeddings.token)
        self.next_sentence = nn.Linear(hidden_size, 2) if next_sentence else None
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, num_classes))  # W in R^{K x H} on C
        initialise(self)
        self.pretraining_metrics = nn.ModuleDict({
            f"{stage}_{name}": MeanMetric()
            for stage in ("train", "val") for name in ("mlm_loss", "mlm_accuracy", "nsp_accuracy")
        })  # fmt: skip
        self._phase: tuple[int, int, float, int] | None = None  # (first step, steps, peak rate, warm-up steps)
        self.example_input_array = torch.full((1, max_positions), 5, dtype=torch.long)
        self.input_size, self.output_size = (max_positions,), (num_classes,)

    @classmethod
    def paper_sized(cls, **overrides: Any) -> Bert:
        """BERT-base (Section 3): ``L = 12, H = 768, A = 12``, 30,522 tokens, 512 positions; the
        encoder and pooler hold 109,482,240 parameters (the paper's "110M"), 110,106,428 with the
        masked-LM head and a two-class classifier.

        One example is a sequence of 512 tokens, the longest BERT reads (the last 10% of
        pre-training used it), through the encoder, the pooler and the classifier (the masked-LM
        head is not part of :meth:`forward`). Per layer the projections cost ``8 L H^2`` FLOPs, the
        two products of the attention ``4 L^2 H`` and the feed-forward ``16 L H^2``.
        """
        return cls(**{**BASE_CONFIG, "pretraining_learning_rate": 1e-4, "learning_rate": 5e-5, **overrides})

    @classmethod
    def large(cls, **overrides: Any) -> Bert:
        """BERT-large (Section 3): ``L = 24, H = 1024, A = 16`` (the paper's 340M)."""
        return cls(**{**LARGE_CONFIG, "pretraining_learning_rate": 1e-4, "learning_rate": 5e-5, **overrides})

    def parameter_count(self) -> int:
        """Distinct parameters (the tied token embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward_flops(self) -> int:
        """The FLOPs of :meth:`forward` on ``example_input_array`` as :meth:`BaseModel.forward_flops`
        counts them, with one encoder layer run instead of all L: the layers are identical
        (:func:`~ai_scratch.sequence_models.tasks.stacked_flops`)."""
        return stacked_flops(self, [(self.encoder, "layers")])

    # ------------------------------------------------------------------ forward
    def encode(self, tokens: Tensor, segments: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Hidden states ``T (B, L, H)`` and pooled ``C (B, H)``; segments from the ``[SEP]``s when not given."""
        if tokens.shape[1] > self.hparams.max_positions:
            raise ValueError(f"sequences of {tokens.shape[1]} tokens are longer than max_positions={self.hparams.max_positions}")
        return self.encoder(tokens, segment_ids(tokens) if segments is None else segments)

    def masked_lm_scores(self, hidden: Tensor) -> Tensor:
        """Scores ``(..., V)`` of the original token at each position of ``hidden``."""
        return self.masked_lm(hidden)

    def forward(self, tokens: Tensor, segments: Tensor | None = None) -> Tensor:
        """Class scores ``(B, K)`` of the fine-tuning task, from the pooled ``[CLS]``."""
        _, pooled = self.encode(tokens, segments)
        return self.classifier(pooled)

    # ------------------------------------------------------------------ pre-training
    def pretraining_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """Masked LM (and NSP): the mean cross-entropy over the chosen positions (plus NSP's)."""
        hidden, pooled = self.encode(batch["tokens"])
        labels = batch["mlm_labels"]
        chosen = labels != IGNORE_INDEX
        scores = self.masked_lm_scores(hidden[chosen])  # only the chosen positions: (N, V)
        loss = F.cross_entropy(scores, labels[chosen])
        count = int(chosen.sum())
        self.pretraining_metrics[f"{stage}_mlm_loss"].update(loss.detach(), weight=count)
        self.pretraining_metrics[f"{stage}_mlm_accuracy"].update((scores.argmax(-1) == labels[chosen]).float().mean(), weight=count)
        if self.next_sentence is not None:
            if "is_next" not in batch:
                raise ValueError("next_sentence=True needs sentence pairs: set the datamodule's next_sentence to true")
            nsp_scores = self.next_sentence(pooled)
            loss = loss + F.cross_entropy(nsp_scores, batch["is_next"])
            self.pretraining_metrics[f"{stage}_nsp_accuracy"].update(
                (nsp_scores.argmax(-1) == batch["is_next"]).float().mean(), weight=len(pooled)
            )
        return loss

    def _log_pretraining(self, stage: str) -> None:
        values = {name: metric.compute() for name, metric in self.pretraining_metrics.items()
                  if name.startswith(stage) and metric.update_called}  # fmt: skip
        if values:
            self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True, add_dataloader_idx=False)
        for name, metric in self.pretraining_metrics.items():
            if name.startswith(stage):
                metric.reset()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        if isinstance(batch, dict):
            return self.pretraining_step(batch, "train")
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        if isinstance(batch, dict):
            return self.pretraining_step(batch, "val")
        return self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._shared_step(batch, "test")  # the labelled task's test split

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._log_pretraining("train")

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_pretraining("val")

    # ------------------------------------------------------------------ starting points and phases
    def setup(self, stage: str) -> None:
        """Load ``pretrained`` before a fit starts (a resumed fit's checkpoint then overrides it)."""
        if stage == "fit" and self.hparams.pretrained:
            self.load_pretrained(self.hparams.pretrained)

    def load_pretrained(self, path: str) -> None:
        """The encoder and masked-LM (and NSP) weights of a Lightning checkpoint of another BERT run."""
        import os

        if not os.path.isfile(path):
            raise ValueError(f"pretrained: no checkpoint file at {path!r}")
        state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
        wanted = {k: v for k, v in state.items() if k.startswith(("encoder.", "masked_lm.", "next_sentence."))}
        own = self.state_dict()
        missing = [k for k in own if k.startswith("encoder.") and k not in wanted]
        unfit = [k for k, v in wanted.items() if k in own and own[k].shape != v.shape]
        if missing or unfit:
            raise ValueError(
                f"pretrained: {path!r} is not a checkpoint of a BERT of these sizes "
                f"({len(missing)} encoder weights missing, {len(unfit)} of other shapes, e.g. {(missing or unfit)[0]})"
            )
        self.load_state_dict({k: v for k, v in wanted.items() if k in own}, strict=False)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        data_vocabulary = getattr(trainer.datamodule, "vocab_size", None)
        if isinstance(data_vocabulary, int) and data_vocabulary != self.hparams.vocab_size:
            raise ValueError(
                f"vocab_size is {self.hparams.vocab_size} but the data's vocabulary has {data_vocabulary} word pieces: "
                f"set --model.vocab_size={data_vocabulary}"
            )
        if self.pretraining_epochs and trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError(
                "pretraining_epochs needs the loaders reloaded at every epoch (the data of the phase): "
                "set --trainer.reload_dataloaders_every_n_epochs=1"
            )

    def in_pretraining(self) -> bool:
        """Whether the current epoch pre-trains."""
        return self.current_epoch < self.pretraining_epochs

    def on_train_epoch_start(self) -> None:
        """At the start of each phase: its schedule, and for fine-tuning a fresh Adam (as a separate
        fine-tuning run would start with)."""
        trainer = self.trainer
        pretraining = self.in_pretraining()
        if self.current_epoch in (0, self.pretraining_epochs) or self._phase is None:
            first_epoch = 0 if pretraining else self.pretraining_epochs
            last_epoch = self.pretraining_epochs if pretraining else (trainer.max_epochs or self.current_epoch + 1)
            per_epoch = max(1, int(trainer.num_training_batches) // max(1, trainer.accumulate_grad_batches))
            steps = max(1, per_epoch * (last_epoch - first_epoch))
            peak = self.hparams.pretraining_learning_rate if pretraining else self.hparams.learning_rate
            first_step = trainer.global_step - per_epoch * (self.current_epoch - first_epoch)
            self._phase = (first_step, steps, peak, max(1, round(self.hparams.warmup_fraction * steps)))
            optimizer = trainer.optimizers[0] if trainer.optimizers else None
            if optimizer is not None:
                if self.current_epoch == self.pretraining_epochs and self.pretraining_epochs:
                    optimizer.state.clear()  # fine-tuning's Adam starts without the moments of pre-training
                for group in optimizer.param_groups:
                    group["lr"] = self.learning_rate_at(trainer.global_step)
        super().on_train_epoch_start()

    def learning_rate_at(self, step: int) -> float:
        """The rate at optimizer step ``step``: the current phase's warm-up and linear decay."""
        if self._phase is None:
            return 0.0
        first, steps, peak, warmup = self._phase
        return peak * warmup_linear_decay(step - first, steps, warmup)

    def configure_optimizers(self) -> Any:
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            # LayerNorm and biases are not decayed (the paper's code)
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=1.0, betas=ADAM_BETAS, eps=ADAM_EPS,
        )  # fmt: skip
        schedule = LambdaLR(optimizer, lambda step: self.learning_rate_at(step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, the confusion matrix, gradient flow, the attention maps of the last layer
        on labelled validation sentences, and the masked-token predictions of a held-out sentence."""
        from ai_scratch.modern_paradigm.bert_figures import MaskedTokenPredictions

        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            ConfusionMatrix(every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            AttentionMaps(num_examples=2, every_n_epochs=every_n_epochs),
            MaskedTokenPredictions(every_n_epochs=every_n_epochs),
        ]
