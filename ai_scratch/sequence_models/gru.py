"""The gated recurrent unit (Cho et al., 2014): an LSTM-like memory with two gates and no separate cell.

Paper: K. Cho, B. van Merrienboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk and
Y. Bengio, "Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
Translation", EMNLP 2014 (arXiv:1406.1078), Section 2.3, "Hidden Unit that Adaptively Remembers
and Forgets".

The unit was proposed for the encoder and decoder of a translation model. A *reset gate* r lets
the unit drop the past when it computes a new candidate state; an *update gate* z chooses, unit by
unit, between keeping the old state and taking the candidate (the paper's equations; the paper
leaves the biases out, they are put back here)::

    r_t = sigmoid(W_r x_t + U_r h_{t-1} + b_r)             reset gate
    z_t = sigmoid(W_z x_t + U_z h_{t-1} + b_z)             update gate
    h~_t = tanh(W x_t + U (r_t * h_{t-1}) + b)             candidate: the reset applies to h_{t-1}
    h_t = z_t * h_{t-1} + (1 - z_t) * h~_t                 keep (z near 1) or overwrite (z near 0)

When z is near 1 the state is copied forward, ``d h_t / d h_{t-1}`` near the identity: the LSTM's
carousel without a separate memory cell. Units that learn short-term dependencies tend to have
active reset gates, those that capture long-term ones active update gates (the paper's reading).

Two variants of the candidate, and which is which:

* ``reset_after=False`` (the default): the published equation above (arXiv:1406.1078 v3, the
  EMNLP paper): the reset gate multiplies ``h_{t-1}`` *before* the matrix U.
* ``reset_after=True``: ``h~_t = tanh(W x_t + b_in + r_t * (U h_{t-1} + b_hn))``, the reset
  applied *after* U (and to U's own bias). This is the form of the first arXiv version (v1), as
  Keras's and Burn's documentation record it, and the one cuDNN and ``torch.nn.GRU`` compute
  (``nn.GRU``'s ``n_t``; Keras's ``reset_after=True``). Only this variant has a fused path:
  ``fused=True`` with ``reset_after=False`` is refused. The two variants have the same parameters
  and agree exactly when r = 1.

The gates are stacked in ``nn.GRU``'s order (r, z, n) and each bias is split in two,
``b = bias_ih + bias_hh`` (``recurrent.py``); with ``reset_after=False`` the two candidate biases
simply add. ``nn.GRU``'s ``(1 - z) * n + z * h`` is the paper's last equation.

Experiments (``configs/gru/``): ``adding_problem_strength`` (50 steps, test MSE <= 0.01 with three
quarters of the LSTM's parameters) and ``encoder_decoder_without_attention_weakness``: the paper's
own RNN Encoder-Decoder, built from GRUs by ``bahdanau.BahdanauSeq2Seq(cell="gru",
attention=False)``, must pass a whole sequence through one fixed vector; on reversing 32 symbols it
gets at most half the tokens right (Cho et al., 2014b, found its translations worsening with
sentence length; attention, Bahdanau et al., 2014, is the remedy).

With three blocks of weights where the LSTM has four, a GRU layer has three quarters of an LSTM
layer's parameters at the same width: ``3 (h (x + h) + 2 h)`` against ``4 (h (x + h) + 2 h)``.

Paper-sized (Section 4.1): the encoder and the decoder each have 1,000 gated hidden units, and the
input matrices are factored through rank-100 matrices, "equivalent to learning an embedding of
dimension 100 for each word", over vocabularies of 15,000 words. :data:`PAPER_CONFIGS` holds the
encoder as a :class:`GRUNetwork` (embedding and GRU layer; the paper's decoder and maxout readout are
not part of it): 15,000 x 100 + 3 (1,000 (100 + 1,000) + 2 x 1,000) = 4,806,000 parameters before
the readout, tested against ``nn.Embedding`` and ``nn.GRU``. :meth:`GRUNetwork.paper_sized` builds
it with its readout over the 15,000 words; the paper states no phrase length, so its example is one
word, the unit in which the encoder's cost grows: ``2 x 3 x 1,000 (100 + 1,000)`` FLOPs for the
gates and the candidate, ``2 x 1,000 x 15,000`` for the readout.

Example::

    layer = GRU(input_size=8, hidden_size=32)
    outputs, h_last = layer(torch.randn(4, 20, 8))   # (4, 20, 32), (1, 4, 32)

    model = GRUNetwork(task="regression", input_size=2, output_size=1, hidden_size=64)
    model(torch.rand(8, 50, 2)).shape                # (8,): the adding problem's answer
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.recurrent import RecurrentCell, RecurrentLayer, State, affine
from ai_scratch.sequence_models.tasks import RecurrentNetwork, Task


class GRUCell(RecurrentCell):
    """One step of the GRU: reset gate, update gate, candidate, interpolation."""

    gate_count: ClassVar[int] = 3  # (r, z, n), nn.GRU's order; n is the candidate h~

    def __init__(self, input_size: int, hidden_size: int, reset_after: bool = False) -> None:
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size)

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        (h_previous,) = state
        candidate_rows = slice(2 * self.hidden_size, 3 * self.hidden_size)
        from_input = affine(x, self.weight_ih, self.bias_ih)
        a_r_input, a_z_input, a_n_input = from_input.chunk(3, dim=-1)
        # the gates read h_{t-1} through U_r and U_z; the candidate's U is applied below
        from_state = affine(h_previous, self.weight_hh[: 2 * self.hidden_size], self.bias_hh[: 2 * self.hidden_size])
        a_r_state, a_z_state = from_state.chunk(2, dim=-1)
        r = torch.sigmoid(a_r_input + a_r_state)  # reset gate r_t
        z = torch.sigmoid(a_z_input + a_z_state)  # update gate z_t
        weight_n, bias_n = self.weight_hh[candidate_rows], self.bias_hh[candidate_rows]
        if self.reset_after:
            candidate = torch.tanh(a_n_input + r * affine(h_previous, weight_n, bias_n))  # r_t * (U h_{t-1} + b_hn)
        else:
            candidate = torch.tanh(a_n_input + affine(r * h_previous, weight_n, bias_n))  # U (r_t * h_{t-1})
        h = z * h_previous + (1 - z) * candidate  # h_t = z_t * h_{t-1} + (1 - z_t) * h~_t
        return (h,), {"reset": r, "update": z, "candidate": candidate}


class GRU(RecurrentLayer):
    """The GRU over a whole sequence; with ``reset_after=True``, ``fused=True`` runs ``nn.GRU`` on the same parameters.

    ``forward(inputs, initial_state=None)`` takes ``(batch, time, input_size)`` and returns the
    hidden state at every step ``(batch, time, directions * hidden_size)`` and the last one
    ``(num_layers * directions, batch, hidden_size)``, as ``nn.GRU(batch_first=True)`` does.
    """

    torch_class: ClassVar[type[nn.RNNBase]] = nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        reset_after: bool = False,
        bidirectional: bool = False,
        bptt_truncation: int | None = None,
        fused: bool = False,
        retain_hidden_grads: bool = False,
        record_gates: bool = False,
    ) -> None:
        self.reset_after = reset_after  # make_cell and check_fusable read it while the base class builds the layer
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            bptt_truncation=bptt_truncation,
            fused=fused,
            retain_hidden_grads=retain_hidden_grads,
            record_gates=record_gates,
        )

    def make_cell(self, input_size: int, hidden_size: int) -> GRUCell:
        return GRUCell(input_size, hidden_size, self.reset_after)

    def check_fusable(self) -> None:
        if not self.reset_after:
            raise ValueError("fused=True needs reset_after=True: nn.GRU applies the reset gate after U")


#: Cho et al.'s (2014) encoder, as :class:`GRUNetwork` arguments (a language model over its vocabulary).
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "cho_encoder": {"task": "language_model", "input_size": 15_000, "output_size": 15_000, "hidden_size": 1000, "embedding_size": 100},
}


class GRUNetwork(RecurrentNetwork):
    """The GRU as a LightningModule: :class:`GRU` and a linear readout.

    Args:
        reset_after: ``False`` the published candidate (reset before U), hand path only; ``True``
            the reset after U, as ``nn.GRU`` and cuDNN compute it (needed for ``fused=True``).
        The others: see :class:`~ai_scratch.sequence_models.tasks.RecurrentNetwork`.
    """

    INFO = ModelInfo(
        name="gru",
        full_name="GRU",
        module=4,
        pattern="engine-based",
        year_introduced=2014,
        authors=(
            "Kyunghyun Cho", "Bart van Merrienboer", "Caglar Gulcehre", "Dzmitry Bahdanau",
            "Fethi Bougares", "Holger Schwenk", "Yoshua Bengio",
        ),  # fmt: skip
        paper_title="Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
        key_innovations=(
            "a reset gate that lets the unit drop the past when it proposes a new state",
            "an update gate that interpolates between the old state and the proposal, unit by unit",
            "the LSTM's long memory without a separate cell or output gate: fewer parameters",
        ),
        architecture_type="rnn",
        learning_algorithm="backpropagation through time",
        loss_function="mean squared error (regression) or cross-entropy (classes, next token)",
        optimizer="Adam",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "write the reset and update gates and match nn.GRU (reset after U) exactly",
            "see why z_t near 1 copies the state forward like the LSTM's carousel",
            "solve the adding problem with three quarters of the LSTM's parameters",
        ),
        estimated_training_time="minutes",
    )

    layer_class = GRU

    def __init__(
        self,
        task: Task = "regression",
        input_size: int = 2,
        output_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        reset_after: bool = False,
        embedding_size: int | None = None,
        fused: bool = False,
        bptt_truncation: int | None = None,
        learning_rate: float = 1e-3,
        context_size: int | None = None,
    ) -> None:
        self.reset_after = reset_after  # layer_options reads it while the base class builds the layer
        super().__init__(
            task, input_size, output_size, hidden_size, num_layers, embedding_size, fused, bptt_truncation, learning_rate, context_size
        )
        self.save_hyperparameters()

    @classmethod
    def paper_sized(cls) -> GRUNetwork:
        """Cho et al.'s (2014) encoder (Section 4.1): 15,000 words embedded in 100 dimensions (the
        paper's rank-100 factorisation of the input matrices), 1,000 gated units, and a readout over
        the same 15,000 words: 4,806,000 parameters before the readout, 19,821,000 with it.

        The paper gives no phrase length, so one example is one word: a phrase of T words costs T
        times its ``2 x 3H (E + H) + 2 H V`` FLOPs.
        """
        model = cls(**PAPER_CONFIGS["cho_encoder"])
        model.set_example_steps(1)
        return model

    def layer_options(self) -> dict[str, Any]:
        return {"reset_after": self.reset_after}
