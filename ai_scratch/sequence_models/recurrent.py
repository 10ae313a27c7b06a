"""What the hand-written recurrent layers share: a cell run over time, stacked, in both directions.

A recurrent *cell* computes one time step, ``state_t = cell(x_t, state_{t-1})``; a recurrent
*layer* runs cells over a whole sequence. The layers here take and give tensors the way
``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` do with ``batch_first=True``:

* inputs ``(batch, time, input_size)``;
* outputs ``(batch, time, directions * hidden_size)``: the top layer's hidden state at every step
  (both directions side by side, forward first, when ``bidirectional=True``);
* states ``(num_layers * directions, batch, hidden_size)``, row ``layer * directions + direction``
  (an LSTM's state is the pair ``(h, c)``); the initial state is optional (zeros).

A stacked layer (``num_layers > 1``) feeds each layer's outputs to the next. A bidirectional layer
(Schuster and Paliwal, 1997) runs a second cell from the last step to the first, so that the output
at step t has seen the whole sequence; Bahdanau's attention encoder is one.

Parameters are stored in the layout of PyTorch's fused kernels (cuDNN's): each cell holds
``weight_ih`` ``(gates * hidden, input)`` (the papers' W, applied to the input), ``weight_hh``
``(gates * hidden, hidden)`` (the papers' U, applied to the previous state) and two biases
``bias_ih`` and ``bias_hh``, the gates stacked in PyTorch's order. The papers have one bias per
unit; the fused kernels add two, so the papers' ``b`` is ``bias_ih + bias_hh`` here. With that
layout ``fused=True`` can run ``nn.RNN``/``nn.LSTM``/``nn.GRU`` on the very same Parameter
objects (:meth:`RecurrentLayer.torch_equivalent`), and the two paths give the same numbers.

The hand path shows what the fused one hides:

* ``bptt_truncation=k``: truncated backpropagation through time (Williams and Peng, 1990); the state
  is detached every k steps, so no gradient flows back more than k steps (the fused path runs the
  sequence in chunks of k steps to do the same);
* ``retain_hidden_grads=True``: every step's state is kept with ``retain_grad``, so that after
  ``backward`` :meth:`RecurrentLayer.state_gradient_norms` gives ``||d loss / d h_t||`` for each t,
  the picture of vanishing gradients;
* ``record_gates=True``: the gates and states of the last forward, detached, in
  :attr:`RecurrentLayer.recorded`, for figures.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: A cell's state: ``(h,)`` for the Elman RNN and the GRU, ``(h, c)`` for the LSTM.
State = tuple[Tensor, ...]

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def check_positive(name: str, value: int) -> None:
    """A one-line ``ValueError`` unless ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def affine(inputs: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``inputs @ weight^T + bias``: the papers' ``W x + b`` for a batch of row vectors."""
    return F.linear(inputs, weight, bias)


class RecurrentCell(nn.Module):
    """One time step of a recurrent network, its parameters in PyTorch's packed layout.

    Subclasses set :attr:`gate_count` (how many ``hidden_size`` blocks ``weight_ih`` stacks),
    :attr:`state_names` and write :meth:`step`.
    """

    gate_count: ClassVar[int] = 1
    state_names: ClassVar[tuple[str, ...]] = ("hidden",)

    def __init__(self, input_size: int, hidden_size: int, gate_count: int | None = None) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        check_positive("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = (gate_count or self.gate_count) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))  # W: input -> every gate
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))  # U: h_{t-1} -> every gate
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``[-1/sqrt(hidden), 1/sqrt(hidden)]``, PyTorch's initialisation of its RNNs."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zeros, the state before the first step."""
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return tuple(zeros for _ in self.state_names)

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """The new state after reading ``x`` ``(batch, input_size)``, and the gate activations."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: Tensor | State | None = None) -> Tensor | State:
        """One step, as ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` take it: from ``x_t``
        ``(batch, input_size)`` and the previous state (zeros if None), the next one: ``h_t``, or
        ``(h_t, c_t)`` for a cell with a memory, each ``(batch, hidden_size)``."""
        if state is None:
            state = self.initial_state(x.shape[0], x)
        new_state = self.step(x, (state,) if isinstance(state, Tensor) else tuple(state))[0]
        return new_state[0] if len(new_state) == 1 else new_state


class RecurrentLayer(nn.Module):
    """Runs :class:`RecurrentCell` s over time, stacked ``num_layers`` deep, in one or two directions.

    Subclasses set :attr:`torch_class` (the fused module with the same layout) and write
    :meth:`make_cell`; they may add keyword arguments of the fused module in :meth:`torch_options`.
    """

    torch_class: ClassVar[type[nn.RNNBase]]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bptt_truncation: int | None = None,
        fused: bool = False,
        retain_hidden_grads: bool = False,
        record_gates: bool = False,
    ) -> None:
        super().__init__()
        check_positive("input_size", input_size)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        if bptt_truncation is not None:
            check_positive("bptt_truncation", bptt_truncation)
            if bidirectional:
                # The backward direction starts at the last step: chunks of k steps would cut it off
                # from the future it exists to see.
                raise ValueError("bptt_truncation cannot be combined with bidirectional=True")
        if fused:
            self.check_fusable()  # a cell without a PyTorch twin is refused now, not at the first forward
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.directions = 2 if bidirectional else 1
        self.bptt_truncation = bptt_truncation
        self.fused = fused
        self.retain_hidden_grads = retain_hidden_grads
        self.record_gates = record_gates
        #: row ``layer * directions + direction``: a layer above the first reads both directions
        self.cells = nn.ModuleList(
            self.make_cell(input_size if layer == 0 else self.directions * hidden_size, hidden_size)
            for layer in range(num_layers)
            for _direction in range(self.directions)
        )
        #: after a forward with ``retain_hidden_grads``: ``step_states[cell][t]``, the state at step t
        self.step_states: list[list[State]] = []
        #: after a forward with ``record_gates``: per cell, each gate and state as ``(batch, time, hidden)``
        self.recorded: list[dict[str, Tensor]] = []

    # ------------------------------------------------------------------ what subclasses provide

    def make_cell(self, input_size: int, hidden_size: int) -> RecurrentCell:
        raise NotImplementedError

    def torch_options(self) -> dict:
        """Keyword arguments of :attr:`torch_class` beyond the sizes (e.g. the nonlinearity)."""
        return {}

    def check_fusable(self) -> None:
        """Raise a ``ValueError`` when the cell has no fused equivalent in PyTorch."""

    # ------------------------------------------------------------------ states in and out

    def pack_state(self, state: State) -> Tensor | State:
        """The public form of a layer state: ``h`` alone, or ``(h, c)`` for the LSTM."""
        return state[0] if len(state) == 1 else state

    def unpack_state(self, state: Tensor | State | None) -> State | None:
        if state is None:
            return None
        return (state,) if isinstance(state, Tensor) else tuple(state)

    # ------------------------------------------------------------------ the fused path

    def torch_equivalent(self) -> nn.RNNBase:
        """An ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``batch_first=True``) whose parameters *are* this layer's.

        PyTorch names them ``weight_ih_l{layer}`` (``_reverse`` for the backward direction); each is
        set to the Parameter object of the matching cell, so gradients reach this layer's
        parameters. The module is built on the meta device: it never holds weights of its own.
        """
        self.check_fusable()
        module = self.torch_class(
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
            device="meta",
            **self.torch_options(),
        )
        for index, cell in enumerate(self.cells):
            layer, direction = divmod(index, self.directions)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name in PARAMETER_NAMES:
                setattr(module, name + suffix, getattr(cell, name))
        return module

    def fused_module(self) -> nn.RNNBase:
        """:meth:`torch_equivalent`, built once and kept while the layer's parameters are the same
        objects (``.to()`` and ``load_state_dict`` keep them; replacing one builds it anew). It is
        kept in a tuple, not as a submodule, so that the parameters are not listed twice."""
        key = tuple(id(parameter) for parameter in self.parameters())
        if getattr(self, "_fused_cache", (None,))[0] != key:
            self._fused_cache = (key, self.torch_equivalent())
        return self._fused_cache[1]

    def forward_fused(self, inputs: Tensor, initial: State | None) -> tuple[Tensor, State]:
        module = self.fused_module()
        state = None if initial is None else self.pack_state(initial)
        k = self.bptt_truncation or inputs.shape[1]
        chunks = []
        for start in range(0, inputs.shape[1], k):
            if start > 0:  # the cut of truncated BPTT: no gradient flows into the previous chunk
                state = self.pack_state(tuple(s.detach() for s in self.unpack_state(state)))
            outputs, state = module(inputs[:, start : start + k], state)
            chunks.append(outputs)
        return (chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)), self.unpack_state(state)

    # ------------------------------------------------------------------ the hand path

    def run_cell(self, index: int, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        """One cell over the whole sequence; returns its hidden state at every step and its last state."""
        cell = self.cells[index]
        time = inputs.shape[1]
        backward = index % self.directions == 1
        order = range(time - 1, -1, -1) if backward else range(time)
        k = self.bptt_truncation
        hidden: list[Tensor | None] = [None] * time
        states: list[State | None] = [None] * time
        gates_over_time: list[dict[str, Tensor]] = [{} for _ in range(time)]
        for count, t in enumerate(order):
            if k is not None and count > 0 and count % k == 0:
                state = tuple(s.detach() for s in state)  # truncated BPTT: cut the path back in time
            state, gates = cell.step(inputs[:, t], state)
            if self.retain_hidden_grads:
                for s in state:
                    if s.requires_grad:
                        s.retain_grad()
            hidden[t], states[t], gates_over_time[t] = state[0], state, gates
        if self.retain_hidden_grads:
            self.step_states.append(states)
        if self.record_gates:
            record = {name: torch.stack([g[name] for g in gates_over_time], 1).detach() for name in gates_over_time[0]}
            for position, name in enumerate(cell.state_names):
                record[name] = torch.stack([s[position] for s in states], 1).detach()
            self.recorded.append(record)
        return torch.stack(hidden, dim=1), state

    def forward_by_hand(self, inputs: Tensor, initial: State | None) -> tuple[Tensor, State]:
        self.step_states, self.recorded = [], []
        batch = inputs.shape[0]
        layer_inputs = inputs
        final: list[State] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                if initial is None:
                    state = self.cells[index].initial_state(batch, inputs)
                else:
                    state = tuple(s[index] for s in initial)
                hidden, state = self.run_cell(index, layer_inputs, state)
                outputs.append(hidden)
                final.append(state)
            layer_inputs = torch.cat(outputs, dim=-1)  # the next layer reads both directions
        return layer_inputs, tuple(torch.stack(parts) for parts in zip(*final))

    # ------------------------------------------------------------------ forward

    def forward(self, inputs: Tensor, initial_state: Tensor | State | None = None) -> tuple[Tensor, Tensor | State]:
        """Run the sequence ``inputs`` ``(batch, time, input_size)``.

        Returns the outputs ``(batch, time, directions * hidden_size)`` and the final state in the
        shape of ``initial_state``: ``(num_layers * directions, batch, hidden_size)`` (a pair for the LSTM).
        """
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"inputs must be (batch, time, {self.input_size}), got {tuple(inputs.shape)}"
            )
        initial = self.unpack_state(initial_state)
        if self.fused:
            if self.retain_hidden_grads or self.record_gates:
                raise ValueError("retain_hidden_grads and record_gates need the hand path (fused=False)")
            outputs, final = self.forward_fused(inputs, initial)
        else:
            outputs, final = self.forward_by_hand(inputs, initial)
        return outputs, self.pack_state(final)

    def state_gradient_norms(self, state_index: int = 0) -> Tensor:
        """``||d loss / d state_t||`` for every cell and step, ``(num_layers * directions, time)``.

        Call after ``backward`` of a forward with ``retain_hidden_grads=True``. ``state_index`` 0
        is the hidden state h; 1 is the LSTM's memory cell c. A step the loss does not reach
        (e.g. beyond a truncation) counts as 0.
        """
        if not self.step_states:
            raise ValueError("no states kept: run forward with retain_hidden_grads=True, then backward")
        norms = [
            [0.0 if s[state_index].grad is None else s[state_index].grad.norm().item() for s in states]
            for states in self.step_states
        ]
        return torch.tensor(norms)

    def extra_repr(self) -> str:
        options = [f"{self.input_size}, {self.hidden_size}", f"num_layers={self.num_layers}"]
        if self.bidirectional:
            options.append("bidirectional=True")
        if self.bptt_truncation is not None:
            options.append(f"bptt_truncation={self.bptt_truncation}")
        if self.fused:
            options.append("fused=True")
        return ", ".join(options)
