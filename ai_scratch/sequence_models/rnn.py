"""The simple recurrent network (Elman, 1990): a hidden layer that reads its own last state.

Paper: J. L. Elman, "Finding Structure in Time", Cognitive Science 14(2), 179-211, 1990.

A feed-forward network has no memory: the same input gives the same output whatever came before.
Elman added *context units* that hold a copy of the hidden units from the previous time step and
feed it back as extra input, so that the hidden state becomes a summary of the sequence so far.
In today's notation, with ``W`` the input weights, ``U`` the recurrent (context) weights::

    h_t = tanh(W x_t + U h_{t-1} + b)          h_0 = 0

The same ``W``, ``U`` and ``b`` serve every step: the network is one layer unrolled in time, and a
sequence of any length is processed with a fixed number of parameters. Elman showed that such a
network trained to predict the next letter or word discovers word boundaries and lexical classes.

Training unrolls the recurrence and backpropagates through it, "backpropagation through time"
(Rumelhart, Hinton and Williams, 1986; Werbos, 1990). The gradient reaching step t from step T is a
product of T - t Jacobians ``diag(1 - h_s^2) U``; when their norms are below one it shrinks
exponentially with the distance, the vanishing gradient (Hochreiter, 1991; Bengio, Simard and
Frasconi, 1994) that the LSTM was built to cure. ``retain_hidden_grads=True`` keeps every ``h_t`` so
that ``||d loss / d h_t||`` can be plotted against t.

Differences from the paper and options:

* Elman's units were logistic; ``nonlinearity="tanh"`` (the default, centred on zero) and
  ``"relu"`` are those of ``nn.RNN``, so that ``fused=True`` runs the same network;
* Elman trained with ordinary backpropagation, the context units treated as a fixed input: a
  gradient that never goes back more than one step, which is ``bptt_truncation=1`` here. A
  truncation k > 1 is truncated BPTT (Williams and Peng, 1990): the state is detached every k steps;
* the bias is split in two, ``b = bias_ih + bias_hh``, the layout of ``nn.RNN`` (see ``recurrent.py``).

Paper-sized (:meth:`ElmanNetwork.paper_sized`): Elman's letter-sequence network ("Structure in
letter sequences"): 6 input units (a letter as 6 binary phonetic features), 20 hidden units with
their 20 context units, 6 output units (the next letter's features): 6x20 + 20x20 + 20 + 20x6 + 6
= 666 weights and biases, 686 here with the split bias (:data:`PAPER_CONFIGS`, tested against
``nn.RNN``). The network reads one letter per time step; one step costs 2 (6x20 + 20x20 + 20x6) =
1,280 floating-point operations.

Example::

    layer = ElmanRNN(input_size=8, hidden_size=32)
    outputs, h_last = layer(torch.randn(4, 20, 8))   # (4, 20, 32), (1, 4, 32)

    model = ElmanNetwork(task="regression", input_size=2, output_size=1, hidden_size=64)
    model(torch.rand(8, 100, 2)).shape               # (8,): the adding problem's answer
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ai_scratch.base import check_choice
from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.recurrent import RecurrentCell, RecurrentLayer, State, affine
from ai_scratch.sequence_models.tasks import RecurrentNetwork, Task

Nonlinearity = Literal["tanh", "relu"]


class ElmanCell(RecurrentCell):
    """One step of Elman's network: ``h_t = tanh(W x_t + U h_{t-1} + b)``."""

    gate_count: ClassVar[int] = 1  # no gates: one block of hidden_size rows

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: Nonlinearity = "tanh") -> None:
        check_choice("nonlinearity", nonlinearity, Nonlinearity)
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity
        self.squash = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        (h_previous,) = state
        pre_activation = affine(x, self.weight_ih, self.bias_ih) + affine(h_previous, self.weight_hh, self.bias_hh)
        h = self.squash(pre_activation)  # h_t = tanh(W x_t + U h_{t-1} + b)
        return (h,), {}


class ElmanRNN(RecurrentLayer):
    """Elman's network over a whole sequence; ``fused=True`` runs ``nn.RNN`` on the same parameters.

    ``forward(inputs, initial_state=None)`` takes ``(batch, time, input_size)`` and returns the
    hidden state at every step ``(batch, time, directions * hidden_size)`` and the last one
    ``(num_layers * directions, batch, hidden_size)``, as ``nn.RNN(batch_first=True)`` does.
    """

    torch_class: ClassVar[type[nn.RNNBase]] = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: Nonlinearity = "tanh",
        bidirectional: bool = False,
        bptt_truncation: int | None = None,
        fused: bool = False,
        retain_hidden_grads: bool = False,
        record_gates: bool = False,
    ) -> None:
        check_choice("nonlinearity", nonlinearity, Nonlinearity)
        self.nonlinearity = nonlinearity  # make_cell reads it while the base class builds the cells
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

    def make_cell(self, input_size: int, hidden_size: int) -> ElmanCell:
        return ElmanCell(input_size, hidden_size, self.nonlinearity)

    def torch_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}


#: Elman's (1990) letter-prediction network, as :class:`ElmanNetwork` arguments (a 6-way answer at
#: every step: the next letter's bits, read here as a 6-class prediction).
PAPER_CONFIGS: dict[str, dict] = {
    "elman_letters": {"task": "classification", "input_size": 6, "output_size": 6, "hidden_size": 20},
}


class ElmanNetwork(RecurrentNetwork):
    """Elman's simple recurrent network as a LightningModule: :class:`ElmanRNN` and a linear readout.

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        The others: see :class:`~ai_scratch.sequence_models.tasks.RecurrentNetwork`.
    """

    INFO = ModelInfo(
        name="rnn",
        full_name="Elman RNN",
        module=4,
        pattern="engine-based",
        year_introduced=1990,
        authors=("Jeffrey L. Elman",),
        paper_title="Finding Structure in Time",
        key_innovations=(
            "context units: the hidden layer reads a copy of its own previous state",
            "one set of weights shared by every time step: sequences of any length, fixed parameters",
            "prediction of the next element as the training signal, no labels needed",
            "hidden states that discover structure in time (word boundaries, lexical classes)",
        ),
        architecture_type="rnn",
        learning_algorithm="backpropagation through time (truncation as an option)",
        loss_function="mean squared error (regression) or cross-entropy (classes, next token)",
        optimizer="Adam",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "unroll a recurrence in time and backpropagate through it",
            "see the gradient reaching early steps vanish as the distance grows",
            "watch an Elman network fail the adding problem at T = 100 where the LSTM succeeds",
            "compare truncated and full backpropagation through time",
        ),
        estimated_training_time="minutes",
    )

    layer_class = ElmanRNN

    def __init__(
        self,
        task: Task = "regression",
        input_size: int = 2,
        output_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        nonlinearity: Nonlinearity = "tanh",
        embedding_size: int | None = None,
        fused: bool = False,
        bptt_truncation: int | None = None,
        learning_rate: float = 1e-3,
        context_size: int | None = None,
    ) -> None:
        check_choice("nonlinearity", nonlinearity, Nonlinearity)
        self.nonlinearity = nonlinearity  # layer_options reads it while the base class builds the layer
        super().__init__(
            task, input_size, output_size, hidden_size, num_layers, embedding_size, fused, bptt_truncation, learning_rate, context_size
        )
        self.save_hyperparameters()

    @classmethod
    def paper_sized(cls) -> ElmanNetwork:
        """Elman's (1990) letter-sequence network: 6 inputs, 20 hidden units (and their 20 context
        units), 6 outputs; 686 parameters, the paper's 666 weights and biases plus the second bias of
        ``nn.RNN``'s layout.

        One example is one letter: Elman presented the letters one at a time, the context units
        holding the hidden state of the step before, so one forward of one time step is what the
        network computes per letter: ``2 (6 x 20 + 20 x 20 + 20 x 6) = 1,280`` FLOPs (the product
        with the context runs on ``h_0 = 0`` here, as it runs on the copied state in the stream).
        """
        model = cls(**PAPER_CONFIGS["elman_letters"])
        model.set_example_steps(1)
        return model

    def layer_options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}
