"""The RNN encoder-decoder with additive attention (Bahdanau, Cho and Bengio, 2014): "RNNsearch".

Paper: D. Bahdanau, K. Cho and Y. Bengio, "Neural Machine Translation by Jointly Learning to Align
and Translate", ICLR 2015 (arXiv:1409.0473, 2014). Section 3 gives the model, Appendix A its
details (A.1.2 the alignment model, A.2 the encoder and decoder), Appendix B the training; Figure 2
the BLEU score against sentence length, Figure 3 the alignments.

The problem (Section 2): the RNN encoder-decoder of Cho et al. (2014) and Sutskever et al. (2014)
reads the whole source sentence into *one fixed-length vector* c and translates from it alone. A
long sentence does not fit: its quality falls quickly as sentences grow (Cho et al., 2014b). The
cure: keep one *annotation* h_j per source word and let the decoder, at every target word, look
back at all of them and take a weighted average, the weights computed afresh from where it is.

Encoder (Section 3.2): a bidirectional RNN (Schuster and Paliwal, 1997). The forward RNN reads
x_1 .. x_Tx into h->_1 .. h->_Tx, the backward one reads x_Tx .. x_1 into h<-_1 .. h<-_Tx, and the
annotation of word j, ``h_j = [h->_j ; h<-_j]``, summarises the whole sentence with a focus around
word j.

Decoder (Section 3.1), for target word i::

    e_ij  = a(s_{i-1}, h_j) = v_a^T tanh(W_a s_{i-1} + U_a h_j)      alignment model (A.1.2)
    a_ij  = exp(e_ij) / sum_k exp(e_ik)                               (eq. 6)
    c_i   = sum_j a_ij h_j                                            context vector (eq. 5)
    s_i   = f(s_{i-1}, y_{i-1}, c_i)                                  decoder state (eq. 4)
    p(y_i | y_1 .. y_{i-1}, x) = g(y_{i-1}, s_i, c_i)

a_ij is the probability that target word i is *aligned* to source word j: the attention map that
Figure 3 draws. U_a h_j does not depend on i, so it is computed once per sentence (A.1.2).

The gated decoder state (A.2.2; E is the target embedding, the biases are left out as in the paper)::

    z_i  = sigmoid(W_z E y_{i-1} + U_z s_{i-1} + C_z c_i)               update gate
    r_i  = sigmoid(W_r E y_{i-1} + U_r s_{i-1} + C_r c_i)               reset gate
    s~_i = tanh(W E y_{i-1} + U [r_i * s_{i-1}] + C c_i)
    s_i  = (1 - z_i) * s_{i-1} + z_i * s~_i
    s_0  = tanh(W_s h<-_1)                                               initial state

That is a GRU cell (Cho et al., 2014) whose input is ``[E y_{i-1} ; c_i]``, and so it is here:
``cell="gru"`` runs :class:`~ai_scratch.sequence_models.gru.GRUCell` on that input (its ``z`` is the
paper's ``1 - z``: the same unit). ``cell="lstm"`` (the default, the "LSTM + attention" of this
course) runs :class:`~ai_scratch.sequence_models.lstm.LSTMCell` instead, in the encoder and the
decoder alike, with ``s_i`` its hidden state h and its memory cell starting at 0.

Deep output with maxout (A.2.2; Pascanu et al., 2014; Goodfellow et al., 2013)::

    t~_i = U_o s_i + V_o E y_{i-1} + C_o c_i            (2l units)
    t_i  = [max(t~_{i,2k-1}, t~_{i,2k})]_{k=1..l}        maxout over pairs (l units)
    p(y_i | ...) = softmax(W_o t_i)

Section 3.1 writes g(y_{i-1}, s_i, c_i) and the appendix U_o s_{i-1}; the state after the update,
s_i, is used here (Section 3.1's equation, and Luong et al.'s reading).

Without attention (``attention=False``): the RNN encoder-decoder the paper compares with (RNNencdec,
Cho et al., 2014a): every c_i is one fixed vector, the summary of the sentence. Here that summary
is the encoder's last states in both directions, ``c = [h->_Tx ; h<-_1]``, so the two models share
the encoder, the decoder and the output layer and differ only in the attention (the paper's
RNNencdec had a unidirectional encoder; its c was ``tanh(V h_Tx)``).

Sizes (Section 4.2, A.2): RNNsearch-50 has n = 1000 hidden units in each encoder direction and in
the decoder, m = 620-dim word embeddings, n' = 1000 units in the alignment model, l = 500 maxout
units, and vocabularies of the 30,000 most frequent words of English and French. The paper does
not state its parameter count; :func:`parameter_count` gives this implementation's, about 80.4
million for :data:`PAPER_CONFIGS` ``"rnnsearch50"`` (tested against the built model).
:meth:`BahdanauSeq2Seq.paper_sized` builds it, its example a pair of 50-word sentences, the longest
RNNsearch-50 was trained on.

Training (Appendix B): Adadelta (epsilon 1e-6, rho 0.95), minibatches of 80 sentences, the
gradient's L2 norm rescaled to at most 1, about five days on one GPU; decoding by beam search.
Here: Adam by default (``optimizer="adadelta"`` for the paper's), gradient clipping through the
trainer (``trainer.gradient_clip_val: 1.0`` in the configs), greedy decoding.

Differences from the paper and options:

* ``cell``: ``"lstm"`` (default) or ``"gru"`` (the paper's gated unit, with the reset gate before U,
  ``reset_after=False``; ``reset_after=True`` is ``nn.GRU``'s variant, which has a fused encoder);
* biases: the paper leaves them out of its equations "to make the equations less cluttered"; here
  every sum of affine terms has one bias (``W_s``, ``U_a``, ``U_o``, ``W_o``), and the cells have
  two per gate, the layout of PyTorch's fused kernels;
* padded batches: the backward encoder starts at each sentence's last real word, as a packed
  sequence does in ``nn.LSTM``; the alignment gives padded source positions weight exactly 0;
* ``fused=True`` runs the encoder on ``nn.LSTM``/``nn.GRU`` with the same parameters; the decoder
  always runs the hand cell, one step at a time, since c_i depends on s_{i-1}.

After every forward and every greedy decoding the alignment weights a_ij of the whole target are in
``model.attention.attention_weights``, detached, ``(batch, target steps, source steps)``: what an
attention-map figure draws (Figure 3). Figure 2, quality against sentence length, is redrawn in
miniature by ``bahdanau_figures.py`` (what it shows and what it does not is written there).

Experiments (``configs/lstm_attention/``): ``reversal_attention`` (strength: sequences of 32 symbols
reversed, test token accuracy >= 0.9) and ``reversal_no_attention_weakness`` (the same network
with a fixed context vector: <= 0.5).

Example::

    model = BahdanauSeq2Seq(source_vocab_size=13, target_vocab_size=13, target_length=34)
    source = torch.randint(3, 13, (4, 33)); source[:, -1] = 2            # symbols + <eos>
    scores = model(source, torch.ones(4, 1, dtype=torch.long))          # (4, 1, 13): from <bos>
    tokens = model.greedy_decode(source)                                # (4, 33)
    model.attention.attention_weights.shape                             # (4, steps decoded, 33)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.gru import GRU, GRUCell
from ai_scratch.sequence_models.lstm import LSTM, LSTMCell
from ai_scratch.sequence_models.recurrent import RecurrentCell, RecurrentLayer, State, check_positive
from ai_scratch.sequence_models.tasks import BOS_INDEX, EOS_INDEX, PAD_INDEX, Seq2SeqModel

Cell = Literal["lstm", "gru"]
Optimizer = Literal["adam", "adadelta"]

#: Sizes of the paper's models (Section 4.2, Appendix A.2), as :class:`BahdanauSeq2Seq` arguments.
#: RNNencdec-50 is the same network without attention (the paper's had a one-way encoder).
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "rnnsearch50": {
        "source_vocab_size": 30_000, "target_vocab_size": 30_000, "target_length": 52,
        "embedding_size": 620, "hidden_size": 1000, "attention_size": 1000, "maxout_size": 500,
        "cell": "gru", "attention": True,
    },
    "rnnencdec50": {
        "source_vocab_size": 30_000, "target_vocab_size": 30_000, "target_length": 52,
        "embedding_size": 620, "hidden_size": 1000, "attention_size": 1000, "maxout_size": 500,
        "cell": "gru", "attention": False,
    },
}  # fmt: skip

#: Gate blocks per cell: (i, f, g, o) for the LSTM, (r, z, n) for the GRU.
GATES: dict[str, int] = {"lstm": 4, "gru": 3}


def parameter_count(
    source_vocab_size: int,
    target_vocab_size: int,
    embedding_size: int,
    hidden_size: int,
    attention_size: int,
    maxout_size: int,
    cell: Cell = "lstm",
    attention: bool = True,
) -> int:
    """The parameters of :class:`BahdanauSeq2Seq`, from the equations of the module docstring.

    With V_x, V_y the vocabularies, m the embedding, n the hidden size, n' the alignment model's
    size, l the maxout units and G the gate blocks of a cell (4 LSTM, 3 GRU)::

        embeddings            E_x, E_y         V_x m + V_y m
        encoder, 2 directions W, U, 2 biases   2 G n (m + n + 2)
        initial state         W_s, b_s         n n + n
        alignment model       W_a, U_a, b, v_a n' n + n' 2n + n' + n'      (attention only)
        decoder cell          input [E y; c]   G n ((m + 2n) + n + 2)
        deep output           U_o, b, V_o, C_o 2l n + 2l + 2l m + 2l 2n
        softmax layer         W_o, b_o         V_y l + V_y
    """
    m, n, gates, double = embedding_size, hidden_size, GATES[cell], 2 * maxout_size
    count = (source_vocab_size + target_vocab_size) * m
    count += 2 * gates * n * (m + n + 2)
    count += n * n + n
    if attention:
        count += attention_size * n + attention_size * 2 * n + attention_size + attention_size
    count += gates * n * ((m + 2 * n) + n + 2)
    count += double * n + double + double * m + double * 2 * n
    count += target_vocab_size * maxout_size + target_vocab_size
    return count


def reverse_padded(sequences: Tensor, lengths: Tensor) -> Tensor:
    """Each row's first ``lengths[b]`` steps in reverse order, the padding after them left in place.

    ``sequences`` is ``(batch, time, ...)``. Applied twice it gives the input back. A one-way RNN
    run on the result and reversed back is the backward RNN of a bidirectional encoder that starts
    at every sentence's own last word (what a packed sequence gives ``nn.LSTM``).
    """
    time = sequences.shape[1]
    steps = torch.arange(time, device=sequences.device)[None, :]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (batch, time)
    index = index.reshape(*index.shape, *(1,) * (sequences.dim() - 2)).expand_as(sequences)
    return sequences.gather(1, index)


class AdditiveAttention(nn.Module):
    """Bahdanau's alignment model: ``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)``, ``a_ij = softmax_j(e_ij)``,
    ``c_i = sum_j a_ij h_j``.

    Args:
        query_size: n, the size of the decoder state ``s_{i-1}`` (the query).
        key_size: 2n, the size of an annotation ``h_j`` (the keys, also the values averaged).
        attention_size: n', the alignment model's hidden units.

    After every call, :attr:`attention_weights` holds the weights ``a_ij``, detached, ``(batch,
    queries, keys)``; :class:`BahdanauSeq2Seq` replaces them by those of its whole target.

    Example::

        attention = AdditiveAttention(query_size=8, key_size=16, attention_size=10)
        context, weights = attention(torch.randn(2, 8), torch.randn(2, 5, 16))   # (2, 16), (2, 5)
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        for name, size in (("query_size", query_size), ("key_size", key_size), ("attention_size", attention_size)):
            check_positive(name, size)
        self.query_projection = nn.Linear(query_size, attention_size, bias=False)  # W_a
        self.key_projection = nn.Linear(key_size, attention_size)  # U_a (and the one bias of the sum)
        self.score = nn.Linear(attention_size, 1, bias=False)  # v_a
        #: the last alignment weights a_ij, ``(batch, queries, keys)``, detached
        self.attention_weights: Tensor | None = None

    def project_keys(self, keys: Tensor) -> Tensor:
        """``U_a h_j`` for every j, ``(batch, keys, attention_size)``: it does not depend on i, so a
        decoder computes it once per sentence and passes it to every step."""
        return self.key_projection(keys)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None, projected_keys: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The context vectors and the alignment weights.

        Args:
            query: ``s_{i-1}``, ``(batch, query_size)`` for one step or ``(batch, queries, query_size)``.
            keys: the annotations ``h_j``, ``(batch, keys, key_size)``.
            mask: ``(batch, keys)``, True at real positions; padded ones get weight exactly 0.
            projected_keys: :meth:`project_keys` of ``keys``, if already computed.

        Returns:
            ``c_i`` ``(batch, [queries,] key_size)`` and ``a_ij`` ``(batch, [queries,] keys)``.
        """
        one_step = query.dim() == 2
        queries = query[:, None] if one_step else query
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        # e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j): broadcast queries (B, Q, 1, n') against keys (B, 1, S, n')
        energies = self.score(torch.tanh(self.query_projection(queries)[:, :, None] + projected[:, None])).squeeze(-1)
        if mask is not None:
            energies = energies.masked_fill(~mask[:, None], float("-inf"))
        weights = torch.softmax(energies, dim=-1)  # a_ij = exp(e_ij) / sum_k exp(e_ik)
        context = weights @ keys  # c_i = sum_j a_ij h_j
        self.attention_weights = weights.detach()
        return (context[:, 0], weights[:, 0]) if one_step else (context, weights)


@dataclass
class EncodedSource:
    """What the decoder reads of a source batch: the annotations and what is computed once from them."""

    annotations: Tensor  #: h_j = [h->_j ; h<-_j], (batch, source steps, 2n)
    mask: Tensor  #: True at real (non-pad) source positions, (batch, source steps)
    summary: Tensor  #: [h->_Tx ; h<-_1], (batch, 2n): the fixed context without attention
    projected_keys: Tensor | None  #: U_a h_j, (batch, source steps, n'), with attention only


class BahdanauSeq2Seq(Seq2SeqModel):
    """The RNN encoder-decoder with Bahdanau's additive attention (RNNsearch), or without it (RNNencdec).

    Args:
        source_vocab_size, target_vocab_size: vocabularies, the three special tokens included.
        target_length: the padded target width (``<bos>`` and ``<eos>`` included).
        embedding_size: m, the word embeddings (620 in the paper).
        hidden_size: n, the units of each encoder direction and of the decoder (1000).
        attention_size: n', the alignment model's units (1000); ``None``: ``hidden_size``.
        maxout_size: l, the deep output's maxout units (500); ``None``: ``hidden_size // 2``, at least 1.
        cell: ``"lstm"`` (default) or ``"gru"`` (the paper's gated unit), in encoder and decoder.
        attention: ``False`` builds the encoder-decoder with one fixed context vector (RNNencdec).
        fused: run the encoder on PyTorch's fused kernel with the same parameters.
        reset_after: for ``cell="gru"``: ``nn.GRU``'s variant of the candidate (needed by ``fused``).
        learning_rate: the optimizer's step size (Adam's; Adadelta's rate multiplier).
        optimizer: ``"adam"`` (default) or ``"adadelta"`` (the paper's: rho 0.95, epsilon 1e-6).
        label_smoothing: of the training loss, 0 for none (the paper's).

    Raises:
        ValueError: for a size that is not a positive integer or an unknown option.
    """

    INFO = ModelInfo(
        name="lstm_attention",
        full_name="LSTM + attention (Bahdanau)",
        module=4,
        pattern="engine-based",
        year_introduced=2014,
        authors=("Dzmitry Bahdanau", "Kyunghyun Cho", "Yoshua Bengio"),
        paper_title="Neural Machine Translation by Jointly Learning to Align and Translate",
        key_innovations=(
            "attention: the decoder takes a new weighted average of all source annotations for every target word",
            "an alignment model e_ij = v^T tanh(W s_{i-1} + U h_j), learned jointly with the translation",
            "a bidirectional encoder: one annotation per source word that has seen the whole sentence",
            "no fixed-length bottleneck: translation quality that holds up on long sentences",
            "soft alignments between source and target words that can be drawn and read",
        ),
        architecture_type="rnn encoder-decoder with attention",
        learning_algorithm="backpropagation through time, teacher forcing",
        loss_function="cross-entropy of the next target token",
        optimizer="Adam (the paper: Adadelta, gradient norm clipped to 1)",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "write the additive alignment model and the context vector from the paper's equations",
            "see a fixed context vector fail to reverse long sequences where attention succeeds",
            "read the attention map: the anti-diagonal of a reversal, the alignment of a translation",
            "carry a decoder's state through greedy decoding instead of rerunning the prefix",
            "count the parameters of RNNsearch-50 and see where they are (embeddings and softmax)",
        ),
        estimated_training_time="minutes",
    )

    def __init__(
        self,
        source_vocab_size: int = 13,
        target_vocab_size: int = 13,
        target_length: int = 34,
        embedding_size: int = 32,
        hidden_size: int = 64,
        attention_size: int | None = None,
        maxout_size: int | None = None,
        cell: Cell = "lstm",
        attention: bool = True,
        fused: bool = False,
        reset_after: bool = False,
        learning_rate: float = 1e-3,
        optimizer: Optimizer = "adam",
        label_smoothing: float = 0.0,
    ) -> None:
        check_choice("cell", cell, Cell)
        check_choice("optimizer", optimizer, Optimizer)
        attention_size = hidden_size if attention_size is None else attention_size
        maxout_size = max(1, hidden_size // 2) if maxout_size is None else maxout_size
        for name, size in (("embedding_size", embedding_size), ("hidden_size", hidden_size),
                           ("attention_size", attention_size), ("maxout_size", maxout_size)):  # fmt: skip
            check_positive(name, size)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if reset_after and cell != "gru":
            raise ValueError("reset_after applies to cell='gru' only")
        super().__init__(source_vocab_size, target_vocab_size, target_length, label_smoothing)
        self.save_hyperparameters()
        self.hparams.update(attention_size=attention_size, maxout_size=maxout_size)  # the resolved defaults
        self.cell, self.use_attention, self.hidden_size = cell, attention, hidden_size
        self.learning_rate, self.optimizer_name = learning_rate, optimizer
        m, n, l = embedding_size, hidden_size, maxout_size

        self.source_embedding = nn.Embedding(source_vocab_size, m, padding_idx=PAD_INDEX)  # E_x
        self.target_embedding = nn.Embedding(target_vocab_size, m, padding_idx=PAD_INDEX)  # E_y
        # the two directions of the encoder, each a one-way layer (see reverse_padded)
        self.encoder_forward = self._layer(m, n, fused, reset_after)  # h->_j
        self.encoder_backward = self._layer(m, n, fused, reset_after)  # h<-_j
        self.initial_state = nn.Linear(n, n)  # W_s: s_0 = tanh(W_s h<-_1)
        self.attention: AdditiveAttention | None = AdditiveAttention(n, 2 * n, attention_size) if attention else None
        # the decoder's gated unit reads [E y_{i-1} ; c_i]
        self.decoder_cell: RecurrentCell = (
            LSTMCell(m + 2 * n, n) if cell == "lstm" else GRUCell(m + 2 * n, n, reset_after=reset_after)
        )
        self.output_state = nn.Linear(n, 2 * l)  # U_o (and the one bias of t~_i)
        self.output_embedding = nn.Linear(m, 2 * l, bias=False)  # V_o
        self.output_context = nn.Linear(2 * n, 2 * l, bias=False)  # C_o
        self.readout = nn.Linear(l, target_vocab_size)  # W_o
        self.output_size = (target_length - 1, target_vocab_size)

    @classmethod
    def paper_sized(cls, name: str = "rnnsearch50") -> BahdanauSeq2Seq:
        """RNNsearch-50 (Section 4.2, Appendix A.2): GRU encoder and decoder of 1,000 units, 620-dim
        embeddings, an alignment model of 1,000 units, 500 maxout units, 30,000 words on each side;
        80,452,000 parameters here (the paper states no count). ``name="rnnencdec50"`` is the same
        network without attention, 77,450,000.

        One example is a sentence pair at the length the model is named for (RNNsearch-50 was
        trained on sentences of up to 50 words, Section 4.2): 50 source words and ``<eos>``, and the
        50 words of the translation after ``<bos>``, teacher-forced.
        """
        if name not in PAPER_CONFIGS:
            raise ValueError(f"name must be one of {sorted(PAPER_CONFIGS)}, got {name!r}")
        model = cls(**PAPER_CONFIGS[name])
        words = model.target_length - 2  # the target's width holds <bos>, the words and <eos>
        word = EOS_INDEX + 1  # the first word after the special tokens
        source = torch.full((1, words + 1), word, dtype=torch.long)
        source[:, -1] = EOS_INDEX
        decoder_input = torch.full((1, words + 1), word, dtype=torch.long)
        decoder_input[:, 0] = BOS_INDEX
        model.example_input_array = (source, decoder_input)
        model.input_size = (words + 1,)
        return model

    def forward_flops(self) -> int:
        """The FLOPs of :meth:`forward` on ``example_input_array`` as :meth:`BaseModel.forward_flops`
        counts them, from four short forwards instead of one long one.

        The encoder runs its cells once per source word (S), and each of the T decoder steps runs the
        same layers plus an alignment over the S annotations: the count is ``a + b S + c T + d S T``,
        exactly. The forwards on the last one or two source tokens and the first one or two decoder
        inputs give a, b, c and d. (Counting all 2 S + T steps at once gives the same number, as the
        tests check, but on the meta device every operation's shape is worked out in Python: slow at
        the paper's 51 and 51.)
        """
        example = getattr(self, "example_input_array", None)
        if example is None:
            raise ValueError(f"{type(self).__name__} has no example_input_array to count a forward pass on")
        source, decoder_input = example
        counts: dict[tuple[int, int], int] = {}
        try:
            for s in (1, 2):
                for t in (1, 2):
                    self.example_input_array = (source[:, -s:], decoder_input[:, :t])  # <eos> stays last
                    counts[s, t] = super().forward_flops()
        finally:
            self.example_input_array = example
        per_source_word = counts[2, 1] - counts[1, 1]
        per_target_word = counts[1, 2] - counts[1, 1]
        per_alignment = counts[2, 2] - counts[2, 1] - counts[1, 2] + counts[1, 1]  # one target word against one source word
        extra_source, extra_target = source.shape[1] - 1, decoder_input.shape[1] - 1
        return counts[1, 1] + extra_source * per_source_word + extra_target * per_target_word + extra_source * extra_target * per_alignment

    def _layer(self, input_size: int, hidden_size: int, fused: bool, reset_after: bool) -> RecurrentLayer:
        if self.cell == "lstm":
            return LSTM(input_size, hidden_size, fused=fused)
        return GRU(input_size, hidden_size, fused=fused, reset_after=reset_after)

    # ------------------------------------------------------------------ encoder

    def encode(self, source: Tensor) -> EncodedSource:
        """The annotations ``h_j = [h->_j ; h<-_j]`` of a padded source batch ``(batch, source steps)``."""
        mask = source != PAD_INDEX
        lengths = mask.sum(dim=1).clamp(min=1)
        embedded = self.source_embedding(source)  # E x_j
        forward, _ = self.encoder_forward(embedded)  # reads x_1 .. x_Tx
        # reads x_Tx .. x_1 of each sentence, starting at its own last word
        backward = reverse_padded(self.encoder_backward(reverse_padded(embedded, lengths))[0], lengths)
        annotations = torch.cat([forward, backward], dim=-1)
        rows = torch.arange(len(source), device=source.device)
        summary = torch.cat([forward[rows, lengths - 1], backward[:, 0]], dim=-1)  # [h->_Tx ; h<-_1]
        projected = self.attention.project_keys(annotations) if self.attention is not None else None
        return EncodedSource(annotations, mask, summary, projected)

    def start_state(self, encoded: EncodedSource) -> State:
        """``s_0 = tanh(W_s h<-_1)`` (an LSTM's memory cell starts at 0)."""
        backward_first = encoded.annotations[:, 0, self.hidden_size :]  # h<-_1
        s_0 = torch.tanh(self.initial_state(backward_first))
        return (s_0,) if self.cell == "gru" else (s_0, torch.zeros_like(s_0))

    # ------------------------------------------------------------------ decoder

    def decode_step(self, previous: Tensor, state: State, encoded: EncodedSource) -> tuple[Tensor, State, Tensor, Tensor | None]:
        """One target word: from ``y_{i-1}`` ``(batch,)`` and ``s_{i-1}``, the scores of ``y_i``.

        Returns the scores ``(batch, target_vocab_size)``, the new state, ``c_i`` ``(batch, 2n)`` and
        ``a_ij`` ``(batch, source steps)`` (``None`` without attention).
        """
        embedded = self.target_embedding(previous)  # E y_{i-1}
        if self.attention is not None:
            context, weights = self.attention(state[0], encoded.annotations, encoded.mask, encoded.projected_keys)
        else:
            context, weights = encoded.summary, None  # RNNencdec: the same c at every step
        state, _ = self.decoder_cell.step(torch.cat([embedded, context], dim=-1), state)  # s_i = f(s_{i-1}, y_{i-1}, c_i)
        t_tilde = self.output_state(state[0]) + self.output_embedding(embedded) + self.output_context(context)
        t = t_tilde.unflatten(-1, (-1, 2)).amax(dim=-1)  # maxout: t_i,k = max(t~_i,2k-1, t~_i,2k)
        return self.readout(t), state, context, weights  # W_o t_i: scores of p(y_i | ...)

    def _keep_weights(self, weights: list[Tensor | None]) -> None:
        """Leave a_ij of the whole target on the attention module, ``(batch, target steps, source steps)``."""
        if self.attention is not None and weights:
            self.attention.attention_weights = torch.stack(weights, dim=1).detach()  # type: ignore[arg-type]

    def forward(self, source: Tensor, decoder_input: Tensor) -> Tensor:
        """Teacher-forced scores: ``decoder_input`` ``(batch, T)`` is ``<bos> y_1 .. y_{T-1}``; the
        result ``(batch, T, target_vocab_size)`` scores ``y_1 .. y_T``."""
        encoded = self.encode(source)
        state = self.start_state(encoded)
        scores, weights = [], []
        for i in range(decoder_input.shape[1]):
            step_scores, state, _, step_weights = self.decode_step(decoder_input[:, i], state, encoded)
            scores.append(step_scores)
            weights.append(step_weights)
        self._keep_weights(weights)
        return torch.stack(scores, dim=1)

    @torch.no_grad()
    def greedy_decode(self, source: Tensor, max_new_tokens: int | None = None) -> Tensor:
        """Greedy decoding that carries the decoder state: one step per token, the encoder run once.

        The same tokens as :meth:`Seq2SeqModel.greedy_decode`, which reruns the whole prefix at
        every step.
        """
        steps = max_new_tokens or self.target_length - 1
        encoded = self.encode(source)
        state = self.start_state(encoded)
        previous = source.new_full((len(source),), BOS_INDEX)
        finished = torch.zeros(len(source), dtype=torch.bool, device=source.device)
        tokens, weights = [], []
        for _ in range(steps):
            scores, state, _, step_weights = self.decode_step(previous, state, encoded)
            previous = scores.argmax(dim=-1).masked_fill(finished, PAD_INDEX)
            finished |= previous == EOS_INDEX
            tokens.append(previous)
            weights.append(step_weights)
            if finished.all():
                break
        self._keep_weights(weights)
        out = torch.stack(tokens, dim=1)
        return F.pad(out, (0, steps - out.shape[1]), value=PAD_INDEX)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "adadelta":  # Appendix B
            return torch.optim.Adadelta(self.parameters(), lr=self.learning_rate, rho=0.95, eps=1e-6)
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)
