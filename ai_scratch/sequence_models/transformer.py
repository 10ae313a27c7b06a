"""The Transformer (Vaswani et al., 2017): attention alone, no recurrence, no convolution.

Paper: A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, L. Kaiser and
I. Polosukhin, "Attention Is All You Need", NeurIPS 2017 (arXiv:1706.03762). Section 3 gives the
architecture (Figure 1), Section 5 the training, Table 3 the sizes of its variants.

A recurrent network reads a sequence one step at a time: ``h_t`` waits for ``h_{t-1}``, so training
cannot run in parallel within a sequence, and a signal from position ``j`` reaches position ``i``
through ``|i - j|`` steps. Self-attention connects every position with every other in one step and
computes all positions at once; what it pays is a cost in ``n^2`` for a sequence of ``n`` (Table 1:
``O(n^2 d)`` per layer against the recurrent layer's ``O(n d^2)``), measured in
``transformer_figures.py``.

Architecture (Section 3.1, Figure 1). The *encoder* is N = 6 identical layers, each two sub-layers,
multi-head self-attention and a position-wise feed-forward network, each wrapped in a residual
connection and layer normalisation (post-norm, as the paper)::

    x = LayerNorm(x + Dropout(Sublayer(x)))                          (Section 3.1, 5.4)

The *decoder* is N = 6 layers with a third sub-layer between the two, multi-head attention over the
encoder's output (queries from the decoder, keys and values from the encoder: "encoder-decoder
attention"), and its self-attention masked so that position ``i`` sees positions ``<= i`` only.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                (eq. 1; attention.py)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O             (Section 3.2.2; attention.py)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2                           (eq. 2; d_ff = 2048)
    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))                  (Section 3.5)
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

Embeddings (Section 3.4): "we share the same weight matrix between the two embedding layers and the
pre-softmax linear transformation ... In the embedding layers, we multiply those weights by
sqrt(d_model)". Here the weight ``E`` (``V x d_model``, initialised ``N(0, 1/d_model)`` so that
``sqrt(d_model) E`` has unit entries) embeds source and target tokens and gives the scores
``h E^T`` of the next token; when the source and target vocabularies differ
(``share_embeddings=False``) the source has an embedding of its own and the target's is still tied to
the output. The positional encodings are *added* to the embeddings, so the model can attend by
relative position: ``PE(pos + k)`` is a linear function of ``PE(pos)``. Without them
(``positional_encoding="none"``) the encoder is permutation-equivariant: it sees a bag of tokens,
and reversal is out of its reach (``configs/transformer/without_positions_weakness.yaml``).

Training (Section 5). Adam with ``beta_1 = 0.9``, ``beta_2 = 0.98``, ``epsilon = 1e-9`` and the rate::

    lrate = d_model^-0.5 * min(step_num^-0.5, step_num * warmup_steps^-1.5)      (eq. 3)

linear warm-up for the first ``warmup_steps = 4000`` steps, then decay as the inverse square root
of the step (``lr_schedule="paper"``, stepped at every optimizer step; ``lr_scale`` multiplies it, as
tensor2tensor's ``learning_rate`` does). Residual dropout ``P_drop = 0.1`` on every sub-layer's output
and on the sums of embeddings and positional encodings. Label smoothing ``epsilon_ls = 0.1``: "this
hurts perplexity, as the model learns to be more unsure, but improves accuracy and BLEU score".

Sizes (Table 3). The base model: ``N = 6, d_model = 512, d_ff = 2048, h = 8, d_k = d_v = 64,
P_drop = 0.1``, "65M" parameters with the shared source-target vocabulary of about 37,000 byte-pair
tokens of WMT 2014 English-German. :meth:`Transformer.paper_sized` builds it: exactly **63,082,496**
parameters, of which 18,944,000 the shared embedding (37,000 x 512), 18,914,304 the encoder
(6 x 3,152,384) and 25,224,192 the decoder (6 x 4,204,032). The projections carry biases, as in
the paper's code and ``nn.MultiheadAttention``; the output projection is the embedding, without a
bias. ``nn.Transformer(512, 8, 6, 6, 2048)`` has 44,140,544 parameters: ours less its embedding,
plus a final LayerNorm after each stack (2 x 1,024) that a post-norm stack does not need (its last
layer ends in a LayerNorm already).

Not in the paper, as options: ``attention_dropout`` (dropout on the attention weights, which
``nn.MultiheadAttention`` has; 0 here as in the paper), ``fused`` (attention by
``torch.nn.functional.scaled_dot_product_attention`` on the same weights), ``lr_schedule="constant"``.

Decoding. Validation and test decode greedily (the paper uses a beam of 4 and a length penalty):
:meth:`Transformer.greedy_decode` encodes the source once and runs the decoder over the growing
prefix, one token a step.

Two LightningModules share the layers:

* :class:`Transformer`: the encoder-decoder, a :class:`Seq2SeqModel` (copy, reversal, dates);
* :class:`TransformerLanguageModel`: the decoder alone, masked self-attention and no encoder-decoder
  attention (the layer is then an encoder layer under a causal mask, as in Liu et al. 2018 and GPT),
  a :class:`SequenceTaskModel` with ``task="language_model"``.

Example::

    model = Transformer(source_vocab_size=13, target_vocab_size=13, target_length=10)
    scores = model(source, target[:, :-1])          # (B, 9, 13): teacher-forced
    decoded = model.greedy_decode(source)           # (B, 9) tokens
    Transformer.paper_sized().parameter_count()     # 63,082,496
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.attention import MultiHeadAttention, causal_mask, padding_mask
from ai_scratch.sequence_models.tasks import BOS_INDEX, EOS_INDEX, PAD_INDEX, Seq2SeqModel, SequenceTaskModel, stacked_flops
from callbacks import AttentionMaps

PositionalEncodingKind = Literal["sinusoidal", "none"]
LRSchedule = Literal["paper", "constant"]

#: Table 3, the base model, with the shared WMT 2014 English-German vocabulary of Section 5.1.
BASE_CONFIG: dict[str, Any] = {
    "source_vocab_size": 37_000, "target_vocab_size": 37_000, "d_model": 512, "num_heads": 8, "d_ff": 2048,
    "num_encoder_layers": 6, "num_decoder_layers": 6, "dropout": 0.1, "label_smoothing": 0.1, "warmup_steps": 4000,
}  # fmt: skip
#: :meth:`Transformer.paper_sized`'s parameter count (Table 3 says "65M").
BASE_PARAMETERS = 63_082_496
ADAM_BETAS, ADAM_EPS = (0.9, 0.98), 1e-9  # Section 5.3


# ----------------------------------------------------------------------------------------- pieces
def sinusoidal_positional_encoding(length: int, d_model: int) -> Tensor:
    """``(length, d_model)``: ``PE(pos, 2i) = sin(pos / 10000^(2i/d_model))``, ``PE(pos, 2i+1) = cos(...)``.

    Wavelengths form a geometric progression from ``2 pi`` to ``10000 * 2 pi`` (Section 3.5).
    """
    position = torch.arange(length, dtype=torch.float32)[:, None]  # pos
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # 2i
    angle = position / torch.pow(10000.0, two_i / d_model)  # pos / 10000^(2i / d_model)
    encoding = torch.zeros(length, d_model)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # an odd d_model has one sine more than cosines
    return encoding


class PositionalEncoding(nn.Module):
    """``Dropout(x + PE[:L])`` (Section 3.5 and 5.4), or ``Dropout(x)`` with ``kind="none"``.

    Args:
        d_model: the embeddings' width.
        kind: ``"sinusoidal"`` (the paper's) or ``"none"``.
        max_length: the longest sequence (the table is computed once, up to it).
        dropout: ``P_drop``, applied to the sums of embeddings and positional encodings.
    """

    def __init__(self, d_model: int, kind: PositionalEncodingKind = "sinusoidal", max_length: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        check_choice("positional_encoding", kind, PositionalEncodingKind)
        self.kind, self.max_length = kind, max_length
        self.dropout = nn.Dropout(dropout)
        # not a parameter and not saved: a function of the sizes
        self.register_buffer("encoding", sinusoidal_positional_encoding(max_length, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        if length > self.max_length:
            raise ValueError(f"a sequence of {length} positions is longer than max_length={self.max_length}")
        if self.kind == "sinusoidal":
            x = x + self.encoding[:length].to(x.dtype)
        return self.dropout(x)


class ScaledEmbedding(nn.Embedding):
    """Token embedding multiplied by ``sqrt(d_model)`` (Section 3.4); :meth:`scores` is the tied
    pre-softmax projection ``h E^T``."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__(vocab_size, d_model)
        nn.init.normal_(self.weight, mean=0.0, std=d_model**-0.5)  # sqrt(d_model) E then has unit entries

    def forward(self, tokens: Tensor) -> Tensor:
        return super().forward(tokens) * math.sqrt(self.embedding_dim)

    def scores(self, hidden: Tensor) -> Tensor:
        """The scores of every token, ``hidden E^T``, with the embedding's own weights."""
        return F.linear(hidden, self.weight)


class PositionwiseFeedForward(nn.Module):
    """``FFN(x) = max(0, x W_1 + b_1) W_2 + b_2`` (eq. 2): two linear maps with a ReLU, the same at
    every position ("two convolutions with kernel size 1")."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)  # W_1, b_1
        self.linear2 = nn.Linear(d_ff, d_model)  # W_2, b_2

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(F.relu(self.linear1(x)))


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward, each as ``LayerNorm(x + Dropout(Sublayer(x)))`` (Section 3.1).

    Under a causal mask it is also the decoder-only language model's layer.

    Args:
        d_model, num_heads, d_ff: the sizes (512, 8, 2048 in the base model).
        dropout: ``P_drop`` on each sub-layer's output.
        attention_dropout: dropout on the attention weights (not in the paper).
        fused: the attention by ``scaled_dot_product_attention`` (same weights).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, attention_dropout: float = 0.0, fused: bool = False) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, fused=fused)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.dropout(self.self_attention(x, x, x, mask)))  # LayerNorm(x + MultiHead(x, x, x))
        return self.norm2(x + self.dropout(self.feed_forward(x)))  # LayerNorm(x + FFN(x))


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder attention, feed-forward; each post-norm residual.

    Args: as :class:`EncoderLayer`.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, attention_dropout: float = 0.0, fused: bool = False) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, fused=fused)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=attention_dropout, fused=fused)
        self.norm2 = nn.LayerNorm(d_model)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None = None, memory_mask: Tensor | None = None) -> Tensor:
        y = self.norm1(y + self.dropout(self.self_attention(y, y, y, self_mask)))  # the prefix only
        # queries from the decoder, keys and values from the encoder's output ("memory")
        y = self.norm2(y + self.dropout(self.cross_attention(y, memory, memory, memory_mask)))
        return self.norm3(y + self.dropout(self.feed_forward(y)))


def initialise_linear_layers(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every linear layer (the paper's code; as
    ``nn.Transformer``); the embeddings keep their own initialisation."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def warmup_factor(step: int, d_model: int, warmup_steps: int) -> float:
    """``d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`` (eq. 3), steps counted from 1."""
    step = max(step, 1)
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def check_sizes(d_model: int, num_heads: int, d_ff: int, dropout: float, attention_dropout: float) -> None:
    for name, value in (("d_model", d_model), ("num_heads", num_heads), ("d_ff", d_ff)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if d_model % num_heads:
        raise ValueError(f"d_model must be a multiple of num_heads (d_k = d_model / h), got {d_model} and {num_heads}")
    for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}")


class WarmupAdam:
    """What both Transformer modules share: Adam(0.9, 0.98, 1e-9) with the rate of eq. 3 or a constant,
    and their figures.

    Uses the module's ``hparams``: ``d_model``, ``lr_schedule``, ``warmup_steps``, ``lr_scale``,
    ``learning_rate``.
    """

    hparams: Any

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The task's figures (learning curves, gradient flow, samples or translations) and the
        attention maps of the deepest layer of each kind (encoder self-attention, decoder
        self-attention, encoder-decoder attention: on reversal the last shows the anti-diagonal).
        The hand-written attention only: a ``fused`` model keeps no weights to draw."""
        drawn = super().figures(every_n_epochs)  # type: ignore[misc]
        if not any(isinstance(callback, AttentionMaps) for callback in drawn):
            drawn.append(AttentionMaps(every_n_epochs=every_n_epochs))
        return drawn

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.lr_schedule == "constant":
            return torch.optim.Adam(self.parameters(), lr=hp.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)  # type: ignore[attr-defined]
        optimizer = torch.optim.Adam(self.parameters(), lr=1.0, betas=ADAM_BETAS, eps=ADAM_EPS)  # type: ignore[attr-defined]
        d_model, warmup, scale = hp.d_model, hp.warmup_steps, hp.lr_scale
        # LambdaLR counts from 0 before the first step; the paper's step_num from 1
        schedule = LambdaLR(optimizer, lambda step: scale * warmup_factor(step + 1, d_model, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def check_training(lr_schedule: str, warmup_steps: int, lr_scale: float, learning_rate: float) -> None:
    check_choice("lr_schedule", lr_schedule, LRSchedule)
    if not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
    if not lr_scale > 0 or not learning_rate > 0:
        raise ValueError(f"lr_scale and learning_rate must be positive, got {lr_scale} and {learning_rate}")


INFO = ModelInfo(
    name="transformer",
    full_name="Transformer",
    module=4,
    pattern="engine-based",
    year_introduced=2017,
    authors=("Ashish Vaswani", "Noam Shazeer", "Niki Parmar", "Jakob Uszkoreit", "Llion Jones", "Aidan N. Gomez",
             "Lukasz Kaiser", "Illia Polosukhin"),  # fmt: skip
    paper_title="Attention Is All You Need",
    key_innovations=(
        "an encoder-decoder built on attention alone, with no recurrence and no convolution",
        "scaled dot-product attention, softmax(Q K^T / sqrt(d_k)) V",
        "multi-head attention: h attentions on learnt projections to subspaces, side by side",
        "sinusoidal positional encodings added to the embeddings",
        "residual connections with layer normalisation around every sub-layer",
        "the warm-up learning-rate schedule and label smoothing",
        "training parallel over the positions of a sequence",
    ),
    architecture_type="transformer (encoder-decoder)",
    learning_algorithm="backpropagation",
    loss_function="cross-entropy with label smoothing 0.1",
    optimizer="Adam (0.9, 0.98, 1e-9), rate d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)",
    framework="pytorch",
    difficulty_level="advanced",
    key_learning_objectives=(
        "write scaled dot-product and multi-head attention and check them against PyTorch's",
        "build the padding and causal masks and see that a masked position changes nothing",
        "see why positions must be encoded: without them reversal fails",
        "count the base model's parameters (Table 3) and match nn.Transformer's",
        "measure the L^2 memory of attention against sequence length",
    ),
    estimated_training_time="minutes",
)


# ------------------------------------------------------------------------------------ encoder-decoder
class Transformer(WarmupAdam, Seq2SeqModel):
    """The Transformer encoder-decoder (Figure 1), trained teacher-forced, decoded greedily.

    The defaults are a small model for a CPU (2 + 2 layers of width 64); :meth:`paper_sized` is the paper's.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (the three special tokens included).
        target_length: padded width of a target (``<bos>`` and ``<eos>`` included).
        d_model, num_heads, d_ff: widths (Table 3: 512, 8, 2048).
        num_encoder_layers, num_decoder_layers: ``N`` (6 and 6).
        dropout: ``P_drop`` (0.1) on sub-layer outputs and on embeddings plus positions.
        attention_dropout: dropout on the attention weights (not in the paper).
        positional_encoding: ``"sinusoidal"`` or ``"none"``.
        max_positions: the longest source or target the positional table covers.
        share_embeddings: one embedding for source and target tokens and the output (Section 3.4);
            ``None``: when the two vocabularies have the same size. The target embedding is always
            tied to the output projection.
        label_smoothing: ``epsilon_ls`` (0.1).
        lr_schedule: ``"paper"`` (eq. 3, times ``lr_scale``) or ``"constant"`` (``learning_rate``).
        warmup_steps: eq. 3's ``warmup_steps`` (4000).
        lr_scale: multiplies eq. 3's rate.
        learning_rate: the rate of ``lr_schedule="constant"``.
        fused: attention by ``scaled_dot_product_attention`` (same weights; no attention maps).

    Raises:
        ValueError: for sizes that do not fit (``d_model`` not a multiple of ``num_heads``, a shared
            embedding over vocabularies of different sizes), or an option out of range.
    """

    INFO = INFO

    def __init__(
        self,
        source_vocab_size: int = 13,
        target_vocab_size: int = 13,
        target_length: int = 12,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 256,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        positional_encoding: PositionalEncodingKind = "sinusoidal",
        max_positions: int = 512,
        share_embeddings: bool | None = None,
        label_smoothing: float = 0.1,
        lr_schedule: LRSchedule = "paper",
        warmup_steps: int = 4000,
        lr_scale: float = 1.0,
        learning_rate: float = 1e-3,
        fused: bool = False,
    ) -> None:
        super().__init__(source_vocab_size, target_vocab_size, target_length, label_smoothing)
        check_sizes(d_model, num_heads, d_ff, dropout, attention_dropout)
        check_training(lr_schedule, warmup_steps, lr_scale, learning_rate)
        check_choice("positional_encoding", positional_encoding, PositionalEncodingKind)
        for name, value in (("num_encoder_layers", num_encoder_layers), ("num_decoder_layers", num_decoder_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if share_embeddings is None:
            share_embeddings = source_vocab_size == target_vocab_size
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(
                f"share_embeddings=True needs one vocabulary, got source_vocab_size={source_vocab_size} and "
                f"target_vocab_size={target_vocab_size}"
            )
        if max_positions < target_length:
            raise ValueError(f"max_positions must cover the target ({target_length} positions), got {max_positions}")
        self.save_hyperparameters()
        self.hparams.update(share_embeddings=share_embeddings)

        self.target_embedding = ScaledEmbedding(target_vocab_size, d_model)  # tied to the output projection
        self.source_embedding = self.target_embedding if share_embeddings else ScaledEmbedding(source_vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, positional_encoding, max_positions, dropout)
        layer_options = dict(d_model=d_model, num_heads=num_heads, d_ff=d_ff, dropout=dropout, attention_dropout=attention_dropout, fused=fused)
        self.encoder_layers = nn.ModuleList(EncoderLayer(**layer_options) for _ in range(num_encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(**layer_options) for _ in range(num_decoder_layers))
        initialise_linear_layers(self)

        self.example_input_array = (torch.full((1, 8), 3, dtype=torch.long), torch.full((1, target_length - 1), 3, dtype=torch.long))
        self.input_size, self.output_size = (8,), (target_length - 1, target_vocab_size)

    @classmethod
    def paper_sized(cls, **overrides: Any) -> Transformer:
        """The base model of Table 3 (N = 6, d_model = 512, d_ff = 2048, h = 8) with the shared
        37,000-token vocabulary of WMT 2014 English-German: 63,082,496 parameters (the paper's "65M").

        One example is a sentence pair at this model's length limit, ``target_length = 256`` (the
        paper states no sentence length; its batches hold about 25,000 source and 25,000 target
        tokens): 256 source tokens and the 255 decoder inputs, teacher-forced. FLOPs grow linearly
        with the length in the projections and quadratically in the attention. Per layer the projections cost ``8 L d^2`` FLOPs, the two
        products of the attention ``4 L L' d`` and the feed-forward ``4 L d d_ff``; the output
        projection ``2 T d V``.
        """
        model = cls(**{"target_length": 256, **BASE_CONFIG, **overrides})
        source = torch.full((1, model.target_length), EOS_INDEX + 1, dtype=torch.long)  # a word: no <pad>
        model.example_input_array = (source, model.example_input_array[1])
        model.input_size = (model.target_length,)
        return model

    def parameter_count(self) -> int:
        """Distinct parameters (a shared embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward_flops(self) -> int:
        """The FLOPs of :meth:`forward` on ``example_input_array`` as :meth:`BaseModel.forward_flops`
        counts them, with one encoder and one decoder layer run instead of all: the layers of each
        stack are identical (:func:`~ai_scratch.sequence_models.tasks.stacked_flops`)."""
        return stacked_flops(self, [(self, "encoder_layers"), (self, "decoder_layers")])

    # ------------------------------------------------------------------ forward
    def encode(self, source: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's output ``(B, S, d_model)`` ("memory") and the source's padding mask."""
        source_mask = padding_mask(source, PAD_INDEX)  # (B, 1, 1, S): no query looks at a <pad>
        x = self.positions(self.source_embedding(source))  # sqrt(d_model) E x + PE
        for layer in self.encoder_layers:
            x = layer(x, source_mask)
        return x, source_mask

    def decode(self, decoder_input: Tensor, memory: Tensor, source_mask: Tensor) -> Tensor:
        """Scores ``(B, T, V)`` of the token after each position of ``decoder_input`` (shifted right)."""
        length = decoder_input.shape[1]
        # position i sees positions <= i of the target, and none of its <pad>s
        self_mask = causal_mask(length, decoder_input.device) & padding_mask(decoder_input, PAD_INDEX)
        y = self.positions(self.target_embedding(decoder_input))
        for layer in self.decoder_layers:
            y = layer(y, memory, self_mask, source_mask)
        return self.target_embedding.scores(y)  # the pre-softmax projection: y E^T

    def forward(self, source: Tensor, decoder_input: Tensor) -> Tensor:
        """Teacher-forced scores: ``source (B, S)`` and ``decoder_input (B, T)`` tokens -> ``(B, T, V)``."""
        memory, source_mask = self.encode(source)
        return self.decode(decoder_input, memory, source_mask)

    @torch.no_grad()
    def greedy_decode(self, source: Tensor, max_new_tokens: int | None = None) -> Tensor:
        """As :meth:`Seq2SeqModel.greedy_decode`, with the source encoded once: each step runs the
        decoder alone over the prefix decoded so far."""
        steps = max_new_tokens or self.target_length - 1
        memory, source_mask = self.encode(source)
        decoded = source.new_full((len(source), 1), BOS_INDEX)
        finished = torch.zeros(len(source), dtype=torch.bool, device=source.device)
        for _ in range(steps):
            following = self.decode(decoded, memory, source_mask)[:, -1].argmax(dim=-1)
            following = following.masked_fill(finished, PAD_INDEX)
            finished |= following == EOS_INDEX
            decoded = torch.cat([decoded, following[:, None]], dim=1)
            if finished.all():
                break
        out = decoded[:, 1:]
        return F.pad(out, (0, steps - out.shape[1]), value=PAD_INDEX)


# ------------------------------------------------------------------------------------ language model
class TransformerLanguageModel(WarmupAdam, SequenceTaskModel):
    """The decoder alone as a language model: embedding, positions, N layers of masked self-attention
    and feed-forward (no encoder-decoder attention), the tied output projection.

    It carries no ``INFO`` of its own: :meth:`model_info` reports the Transformer's, with
    ``variant: "language_model"``, so that its runs are tracked under the Transformer.

    Args:
        vocab_size: tokens (characters for ``CharLMDataModule``).
        context_size: the training windows' length: the positional table's size and the most
            tokens :meth:`generate` feeds back.
        d_model, num_heads, d_ff, num_layers, dropout, attention_dropout, positional_encoding,
        lr_schedule, warmup_steps, lr_scale, learning_rate, fused: as :class:`Transformer`.
    """

    def __init__(
        self,
        vocab_size: int = 100,
        context_size: int = 64,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 256,
        num_layers: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        positional_encoding: PositionalEncodingKind = "sinusoidal",
        lr_schedule: LRSchedule = "paper",
        warmup_steps: int = 4000,
        lr_scale: float = 1.0,
        learning_rate: float = 1e-3,
        fused: bool = False,
    ) -> None:
        super().__init__("language_model", vocab_size)
        check_sizes(d_model, num_heads, d_ff, dropout, attention_dropout)
        check_training(lr_schedule, warmup_steps, lr_scale, learning_rate)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if not isinstance(context_size, int) or context_size < 1:
            raise ValueError(f"context_size must be a positive integer, got {context_size!r}")
        self.save_hyperparameters()
        self.context_size = context_size
        self.embedding = ScaledEmbedding(vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, positional_encoding, context_size, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, attention_dropout, fused) for _ in range(num_layers)
        )
        initialise_linear_layers(self)
        self.example_input_array = torch.zeros(1, context_size, dtype=torch.long)
        self.input_size, self.output_size = (context_size,), (context_size, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """Scores ``(B, T, V)`` of the next token at every position of ``tokens (B, T)``."""
        x = self.positions(self.embedding(tokens))
        mask = causal_mask(tokens.shape[1], tokens.device)  # position t sees tokens <= t only
        for layer in self.layers:
            x = layer(x, mask)
        return self.embedding.scores(x)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info.update(INFO.to_dict(), variant="language_model", architecture_type="transformer (decoder only)")
        return info
