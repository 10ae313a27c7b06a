"""Long short-term memory (Hochreiter and Schmidhuber, 1997), with the forget gate of Gers et al. (2000).

Papers: S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8),
1735-1780, 1997. F. A. Gers, J. Schmidhuber and F. Cummins, "Learning to Forget: Continual
Prediction with LSTM", Neural Computation 12(10), 2451-2471, 2000. R. Jozefowicz, W. Zaremba and
I. Sutskever, "An Empirical Exploration of Recurrent Network Architectures", ICML 2015.

In an Elman network the error sent back one step is multiplied by ``diag(f'(a)) U``; over many
steps it vanishes or explodes (Hochreiter's 1991 analysis, Section 3 of the paper). The cure is a
unit whose error flows back unchanged: a linear *memory cell* c connected to itself with weight 1,
the **constant error carousel** (CEC). ``c_t = c_{t-1} + ...`` gives ``d c_t / d c_{t-1} = 1``, so
an error can travel back hundreds of steps. Multiplicative *gates* decide what enters the cell and
what leaves it, so that the carousel is not disturbed by every input::

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + b_i)     input gate: what to write
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)     forget gate (Gers et al., 2000): what to keep
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)        cell candidate: the value to write
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + b_o)     output gate: what to show
    c_t = f_t * c_{t-1} + i_t * g_t                the carousel, now leaky
    h_t = o_t * tanh(c_t)

The 1997 cell has no forget gate: ``c_t = c_{t-1} + i_t * g_t``, a pure sum. It cannot let go of
what it stored, so on a continual stream the cell state grows without bound (Gers et al., 2000);
the forget gate lets the cell reset itself, ``f_t = 1`` gives back the carousel. Here
``forget_gate=True`` (the default) is the modern cell and ``forget_gate=False`` the 1997 one.

Experiments (``configs/lstm/``): ``adding_problem_strength`` (the carousel carries two values across
100 steps: test MSE <= 0.01), ``continual_stream_without_forget_gate_weakness`` (the 1997 cell on a
stream of segments, ``datamodules.ContinualAddingDataModule``: still near the mean, MSE >= 0.05,
after the 942 steps in which the forget gate gets below 0.001; its cell state climbs with every
segment, as the gate figure shows) and ``char_lm_pydoc`` (a character-level language model).

A forget gate that starts near 0.5 halves the memory every step, and the CEC's advantage is gone
until the gate learns to open. Jozefowicz et al. (2015) found that starting its bias at 1 closes
most of the gap between the LSTM and the best architectures they searched: ``forget_bias=1.0``
makes ``f_t`` about ``sigmoid(1) = 0.73`` at the start. ``forget_bias=None`` (the default) keeps
PyTorch's uniform initialisation, as ``nn.LSTM`` does.

Differences from the papers and options:

* the 1997 squashing functions were ``g = 4 sigmoid - 2`` on the cell input and ``h = 2 sigmoid - 1``
  on its output; here both are tanh, as in every LSTM since (and in ``nn.LSTM``);
* the 1997 paper truncated the gradient at the gates (only the carousel carried it back in time);
  here the full gradient is backpropagated through time (Graves and Schmidhuber, 2005);
* no peephole connections (Gers and Schmidhuber, 2000): ``nn.LSTM`` has none;
* the gates are stacked in ``nn.LSTM``'s order (i, f, g, o) and each bias is split in two,
  ``b = bias_ih + bias_hh``; ``forget_bias`` sets ``bias_ih``'s forget block to the value and
  ``bias_hh``'s to 0, so that their sum, the ``b_f`` of the equations, is ``forget_bias``. The
  1997 cell stores (i, g, o) only, and has no fused path.

``record_gates=True`` keeps the gates (``"input"``, ``"forget"``, ``"cell_candidate"``, ``"output"``)
and the states (``"hidden"``, ``"cell"``) of the last forward in ``recorded``, one dict per cell.

Paper-sized: the 1997 paper's networks had a handful of memory cells; the configurations that made
the LSTM the language model of the 2010s are Zaremba, Sutskever and Vinyals's (2014, "Recurrent
Neural Network Regularization") on the Penn Treebank: two layers over a 10,000-word vocabulary,
"medium" with 650 units per layer (about 20M parameters) and "large" with 1,500 (about 66M), as the
paper states. :data:`PAPER_CONFIGS` holds both; the counts are tested against ``nn.LSTM``.
:meth:`LSTMNetwork.paper_sized` builds the large one, its example the paper's unrolled window of 35
words.

Example::

    layer = LSTM(input_size=8, hidden_size=32, forget_bias=1.0)
    outputs, (h_last, c_last) = layer(torch.randn(4, 20, 8))   # (4, 20, 32), (1, 4, 32) twice

    model = LSTMNetwork(task="regression", input_size=2, output_size=1, hidden_size=64, forget_bias=1.0)
    model(torch.rand(8, 100, 2)).shape                           # (8,): the adding problem's answer
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.recurrent import RecurrentCell, RecurrentLayer, State, affine
from ai_scratch.sequence_models.tasks import RecurrentNetwork, Task


class LSTMCell(RecurrentCell):
    """One step of the LSTM: gates, the constant error carousel, the output ``h_t = o_t * tanh(c_t)``."""

    gate_count: ClassVar[int] = 4  # (i, f, g, o), nn.LSTM's order
    state_names: ClassVar[tuple[str, ...]] = ("hidden", "cell")

    def __init__(
        self, input_size: int, hidden_size: int, forget_gate: bool = True, forget_bias: float | None = None
    ) -> None:
        if not forget_gate and forget_bias is not None:
            raise ValueError("forget_bias needs forget_gate=True: the 1997 cell has no forget gate")
        self.forget_gate = forget_gate
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, gate_count=4 if forget_gate else 3)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.forget_bias is not None:
            forget_block = slice(self.hidden_size, 2 * self.hidden_size)  # rows of f in (i, f, g, o)
            with torch.no_grad():
                self.bias_ih[forget_block] = self.forget_bias
                self.bias_hh[forget_block] = 0.0  # so that b_f = bias_ih + bias_hh = forget_bias

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        h_previous, c_previous = state
        pre_activations = affine(x, self.weight_ih, self.bias_ih) + affine(h_previous, self.weight_hh, self.bias_hh)
        if self.forget_gate:
            a_i, a_f, a_g, a_o = pre_activations.chunk(4, dim=-1)
        else:
            a_i, a_g, a_o = pre_activations.chunk(3, dim=-1)
        i = torch.sigmoid(a_i)  # input gate i_t
        g = torch.tanh(a_g)  # cell candidate g_t
        o = torch.sigmoid(a_o)  # output gate o_t
        gates = {"input": i, "cell_candidate": g, "output": o}
        if self.forget_gate:
            f = torch.sigmoid(a_f)  # forget gate f_t
            c = f * c_previous + i * g  # c_t = f_t * c_{t-1} + i_t * g_t
            gates["forget"] = f
        else:
            c = c_previous + i * g  # c_t = c_{t-1} + i_t * g_t: the 1997 carousel, d c_t / d c_{t-1} = 1
        h = o * torch.tanh(c)  # h_t = o_t * tanh(c_t)
        return (h, c), gates


class LSTM(RecurrentLayer):
    """The LSTM over a whole sequence; ``fused=True`` runs ``nn.LSTM`` on the same parameters.

    ``forward(inputs, initial_state=None)`` takes ``(batch, time, input_size)`` and an optional
    ``(h_0, c_0)``; it returns the hidden state at every step ``(batch, time, directions *
    hidden_size)`` and the last ``(h_n, c_n)``, each ``(num_layers * directions, batch,
    hidden_size)``, as ``nn.LSTM(batch_first=True)`` does.
    """

    torch_class: ClassVar[type[nn.RNNBase]] = nn.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        forget_gate: bool = True,
        forget_bias: float | None = None,
        bidirectional: bool = False,
        bptt_truncation: int | None = None,
        fused: bool = False,
        retain_hidden_grads: bool = False,
        record_gates: bool = False,
    ) -> None:
        self.forget_gate = forget_gate  # make_cell and check_fusable read them while the base class builds the layer
        self.forget_bias = forget_bias
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

    def make_cell(self, input_size: int, hidden_size: int) -> LSTMCell:
        return LSTMCell(input_size, hidden_size, self.forget_gate, self.forget_bias)

    def check_fusable(self) -> None:
        if not self.forget_gate:
            raise ValueError("fused=True needs forget_gate=True: nn.LSTM has no cell without a forget gate")


#: Zaremba et al.'s (2014) Penn Treebank language models, as :class:`LSTMNetwork` arguments: the
#: paper gives "20M" parameters for medium and "66M" for large (embedding, two LSTM layers, softmax).
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "zaremba_medium": {"task": "language_model", "input_size": 10_000, "output_size": 10_000, "hidden_size": 650, "num_layers": 2},
    "zaremba_large": {"task": "language_model", "input_size": 10_000, "output_size": 10_000, "hidden_size": 1500, "num_layers": 2},
}


class LSTMNetwork(RecurrentNetwork):
    """The LSTM as a LightningModule: :class:`LSTM` and a linear readout.

    Args:
        forget_gate: ``True`` the modern cell (Gers et al., 2000); ``False`` the 1997 cell, hand path only.
        forget_bias: the forget gate's starting bias (``1.0``: Jozefowicz et al., 2015); ``None``:
            PyTorch's uniform initialisation.
        The others: see :class:`~ai_scratch.sequence_models.tasks.RecurrentNetwork`.
    """

    INFO = ModelInfo(
        name="lstm",
        full_name="LSTM",
        module=4,
        pattern="engine-based",
        year_introduced=1997,
        authors=("Sepp Hochreiter", "Jürgen Schmidhuber"),
        paper_title="Long Short-Term Memory",
        key_innovations=(
            "the constant error carousel: a linear memory cell whose error flows back unchanged",
            "multiplicative input and output gates that protect the cell from irrelevant inputs",
            "time lags of hundreds of steps bridged where backpropagation through time failed",
            "the forget gate (Gers et al., 2000), which lets a cell reset its memory",
        ),
        architecture_type="rnn",
        learning_algorithm="backpropagation through time",
        loss_function="mean squared error (regression) or cross-entropy (classes, next token)",
        optimizer="Adam",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "write the gates and the cell update from the equations and match nn.LSTM exactly",
            "see why d c_t / d c_{t-1} = f_t keeps gradients alive over 100 steps",
            "solve the adding problem at T = 100, where the Elman network stays at the mean",
            "read the gates' activations over a sequence: when the cell writes, keeps and shows",
        ),
        estimated_training_time="minutes",
    )

    layer_class = LSTM

    def __init__(
        self,
        task: Task = "regression",
        input_size: int = 2,
        output_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        forget_gate: bool = True,
        forget_bias: float | None = 1.0,
        embedding_size: int | None = None,
        fused: bool = False,
        bptt_truncation: int | None = None,
        learning_rate: float = 1e-3,
        context_size: int | None = None,
    ) -> None:
        self.forget_gate, self.forget_bias = forget_gate, forget_bias  # layer_options reads them
        super().__init__(
            task, input_size, output_size, hidden_size, num_layers, embedding_size, fused, bptt_truncation, learning_rate, context_size
        )
        self.save_hyperparameters()

    @classmethod
    def paper_sized(cls, size: str = "large") -> LSTMNetwork:
        """Zaremba, Sutskever and Vinyals's (2014) Penn Treebank language model, ``size`` ``"large"``
        (the default: 1,500 units in each of two layers, 66,034,000 parameters, the paper's "66M")
        or ``"medium"`` (650 units, 19,780,400, the paper's "20M"), over 10,000 words.

        One example is the paper's training window: "we unroll it for 35 steps", 35 words in and the
        scores of the next word at each of them. Per word, each layer's gates cost
        ``2 x 4H (H + H)`` FLOPs and the softmax layer ``2 H V``: 35 (32 H^2 + 2 H V) in all.
        """
        name = f"zaremba_{size}"
        if name not in PAPER_CONFIGS:
            raise ValueError(f"size must be 'medium' or 'large', got {size!r}")
        model = cls(**PAPER_CONFIGS[name])
        model.set_example_steps(35)
        return model

    def layer_options(self) -> dict[str, Any]:
        return {"forget_gate": self.forget_gate, "forget_bias": self.forget_bias}
