"""Figures and samples of sequence models: gradients through time, gates over a sequence, generated text.

* :class:`TimeStepGradients`: ``||d loss / d h_t||`` against the time step t, the picture of the
  vanishing gradient (Hochreiter, 1991; Bengio, Simard and Frasconi, 1994) and of its cure, the
  LSTM's memory cell.
* :class:`GateActivations`: the gates of an LSTM or GRU over one validation sequence.
* :class:`TextSamples`: text sampled from a language model, or a seq2seq model's greedy
  translations of a few validation examples, as a file and a ``wandb.Table``.

The two figures need a recurrent layer that can show its inner workings, found by what it offers
(the project's :class:`~ai_scratch.sequence_models.recurrent.RecurrentLayer` has it all; this
package does not import it): attributes ``fused``, ``retain_hidden_grads`` and ``record_gates``,
and after a forward ``step_states``, ``state_gradient_norms(state_index)`` and ``recorded``. While
the callback draws it sets ``fused=False`` (the hand-written cells: the fused kernels keep no step
states) and the flag it needs, runs the module on the first validation batch, and puts every flag
back; the parameters are the same objects, so the numbers are those of the trained model.

How a module is run on a batch ``(inputs, targets)``: ``forward(inputs)`` when it takes the inputs
alone; otherwise, as an encoder-decoder trained by teacher forcing, ``forward(source,
target[:, :-1])`` scores ``target[:, 1:]``. The loss is the module's own ``criterion(outputs,
targets)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import move_data_to_device
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn

from callbacks import plots
from callbacks.attention_maps import token_text
from callbacks.batches import forward_takes_inputs_only, inputs_and_targets, validation_batches
from callbacks.figures import FigureCallback
from callbacks.plots.style import LABEL_SIZE, TICK_SIZE
from callbacks.wandb_helpers import live_wandb_logger, say_once, warn_once

# ---------------------------------------------------------------------- what the figures share


def recurrent_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The submodules that run a recurrent cell by hand and can keep their step states: those
    with ``fused``, ``retain_hidden_grads`` and ``state_gradient_norms`` (a ``RecurrentLayer``)."""
    return [
        (name, m)
        for name, m in module.named_modules()
        if hasattr(m, "fused") and hasattr(m, "retain_hidden_grads") and callable(getattr(m, "state_gradient_norms", None))
    ]


@contextmanager
def hand_path(layers: Sequence[nn.Module], **flags: bool) -> Iterator[None]:
    """The layers on their hand-written cells (``fused=False``) with ``flags`` set, for one pass;
    every flag is put back afterwards, and the states the pass kept are let go."""
    saved = [{name: getattr(layer, name) for name in ("fused", *flags)} for layer in layers]
    try:
        for layer in layers:
            layer.fused = False
            for name, value in flags.items():
                setattr(layer, name, value)
        yield
    finally:
        for layer, values in zip(layers, saved):
            for name, value in values.items():
                setattr(layer, name, value)
            layer.step_states, layer.recorded = [], []  # the pass's states, and the graph they hold


@contextmanager
def evaluating_with_gradients(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) with gradients on, even if the caller is in no-grad or inference mode;
    the module's own mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        module.train(was_training)


def first_validation_batch(trainer: L.Trainer, pl_module: L.LightningModule, max_examples: int | None) -> Any | None:
    """The first validation batch (its first ``max_examples`` examples), on the module's device."""
    batch = next(iter(validation_batches(trainer)), None)
    if batch is None:
        return None
    if max_examples is not None:
        inputs, targets = inputs_and_targets(batch)
        batch = (inputs[:max_examples], targets[:max_examples]) if targets is not None else inputs[:max_examples]
    return move_data_to_device(batch, pl_module.device)


def run_on_batch(pl_module: nn.Module, batch: Any) -> tuple[Any, Any] | str:
    """``(outputs, the targets they score)`` of the module on ``batch``, or why it cannot be run.

    ``forward(inputs)`` when the module takes the inputs alone; otherwise, for token targets, the
    teacher-forced call of an encoder-decoder: ``forward(source, target[:, :-1])`` scores
    ``target[:, 1:]``.
    """
    inputs, targets = inputs_and_targets(batch)
    if not isinstance(inputs, Tensor):
        return "its validation batches do not start with an input tensor"
    if forward_takes_inputs_only(pl_module):
        return pl_module(inputs), targets
    if isinstance(targets, Tensor) and targets.ndim == 2 and not targets.is_floating_point():
        return pl_module(inputs, targets[:, :-1]), targets[:, 1:]
    return f"{type(pl_module).__name__}.forward needs more than the inputs, and its targets are not token sequences"


def scores_every_step(outputs: Any, targets: Any) -> bool:
    """Whether ``outputs`` answer every step of ``targets``: ``(B, T, ...)`` for ``(B, T)``."""
    return (
        isinstance(outputs, Tensor) and isinstance(targets, Tensor) and targets.ndim == 2 and outputs.ndim >= 2
        and tuple(outputs.shape[:2]) == tuple(targets.shape) and targets.shape[1] > 1
    )  # fmt: skip


def cell_label(layer: nn.Module, index: int) -> str:
    """``"layer 2, backward"`` for cell ``index`` of a stacked or bidirectional layer, else ``""``."""
    directions = getattr(layer, "directions", 1)
    depth, direction = divmod(index, directions)
    parts = [f"layer {depth + 1}"] if getattr(layer, "num_layers", 1) > 1 else []
    if directions > 1:
        parts.append("backward" if direction else "forward")
    return ", ".join(parts)


def state_names(layer: nn.Module, index: int, count: int) -> tuple[str, ...]:
    """The names of a cell's states (``("hidden", "cell")`` for an LSTM)."""
    cells = getattr(layer, "cells", None)
    names = getattr(cells[index], "state_names", None) if cells is not None and index < len(cells) else None
    if names is not None and len(names) == count:
        return tuple(names)
    return ("hidden", "cell", *(f"state {k}" for k in range(2, count)))[:count]


#: what :meth:`TextSamples.make` gives: (table name, columns, rows), or why there is nothing
Made = tuple[str, Sequence[str], list[list[Any]]] | str

#: how the figures write the states and gates they know (others keep their own names)
SYMBOLS = {
    "hidden": "hidden state h_t",
    "cell": "memory cell c_t",
    "input": "input gate i_t",
    "forget": "forget gate f_t",
    "cell_candidate": "cell candidate g_t",
    "output": "output gate o_t",
    "reset": "reset gate r_t",
    "update": "update gate z_t",
    "candidate": "candidate h~_t",
}


# ---------------------------------------------------------------------- gradient per time step
class TimeStepGradients(FigureCallback):
    """How much gradient reaches each time step: ``||d loss / d h_t||`` against t, on a log scale.

    Args:
        max_examples: how many examples of the first validation batch the loss is taken over.
        last_step_loss: for a model that answers at every step (outputs ``(B, T, ...)`` for targets
            ``(B, T)``, a language model), take the loss of the last step alone, so that the figure
            shows how far back one loss's gradient reaches; the loss of every step would give each
            step a gradient of its own. ``False``: the module's whole loss.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    On global rank zero, each recurrent layer (see the module docstring) runs on its hand-written
    cells with ``retain_hidden_grads=True``; the module's ``criterion`` on the first validation
    batch is backpropagated to the layers' states only (``backward(inputs=states)``: the
    parameters' gradients are not touched, and no DDP hook fires), and ``state_gradient_norms``
    gives one line per cell, plus one for the memory cell ``c_t`` of an LSTM. The flags are put
    back afterwards. The lines drawn stay in :attr:`norms` (``{label: (time,) array}``).

    A module without such a layer gets one notice and no figure.
    """

    name = "time_step_gradients"

    def __init__(
        self, max_examples: int | None = 64, last_step_loss: bool = True, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        self.last_step_loss = last_step_loss
        if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
            raise ValueError(f"TimeStepGradients: max_examples must be a positive integer or None, got {max_examples!r}")
        self.max_examples = max_examples
        #: the lines drawn last: ``{label: ||d loss / d state_t|| for t = 1..T}``
        self.norms: dict[str, np.ndarray] = {}

    def measure(self, pl_module: L.LightningModule, batch: Any) -> dict[str, np.ndarray] | str:
        """The gradient norms per layer, cell and state, or why there are none."""
        layers = recurrent_layers(pl_module)
        with hand_path([layer for _, layer in layers], retain_hidden_grads=True), evaluating_with_gradients(pl_module):
            ran = run_on_batch(pl_module, batch)
            if isinstance(ran, str):
                return ran
            outputs, targets = ran
            if self.last_step_loss and forward_takes_inputs_only(pl_module) and scores_every_step(outputs, targets):
                outputs, targets = outputs[:, -1:], targets[:, -1:]  # the loss at t = T alone
            criterion = getattr(pl_module, "criterion", None)
            if not callable(criterion):
                return f"{type(pl_module).__name__} has no criterion(outputs, targets) to take the loss with"
            loss = criterion(outputs, targets)
            states = [s for _, layer in layers for cell in layer.step_states for step in cell for s in step if s.requires_grad]
            if not states:
                return f"the states of {type(pl_module).__name__}'s recurrent layers do not require gradients"
            loss.backward(inputs=states)  # into the states alone: the parameters' .grad stay as they were
            norms: dict[str, np.ndarray] = {}
            for name, layer in layers:
                if not layer.step_states:
                    continue  # a layer this forward did not run
                count = len(layer.step_states[0][0])
                for state_index in range(count):
                    by_cell = layer.state_gradient_norms(state_index).numpy()
                    for index, line in enumerate(by_cell):
                        where = ", ".join(p for p in (name, cell_label(layer, index)) if p)
                        norms[f"{where}: {SYMBOLS.get(state_names(layer, index, count)[state_index], str(state_index))}"] = line
        return norms

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        model = type(pl_module).__name__
        if not recurrent_layers(pl_module):
            self.does_not_apply(f"{model} has no recurrent layer that keeps its states' gradients (retain_hidden_grads)")
            return None
        batch = first_validation_batch(trainer, pl_module, self.max_examples)
        if batch is None:
            self.does_not_apply("there is no validation data")
            return None
        measured = self.measure(pl_module, batch)
        if isinstance(measured, str):
            self.does_not_apply(measured)
            return None
        self.norms = measured
        first = next(iter(measured.values()))
        reached = first[first > 0]
        summary = f": the first step gets {reached[0] / reached[-1]:.2g} of the last" if len(reached) > 1 and first[0] > 0 else ""
        return time_step_gradients(measured, title=f"Gradient reaching each time step, {model}{summary}")


def time_step_gradients(norms: dict[str, np.ndarray], title: str) -> Figure:
    """``||d loss / d state_t||`` against t = 1..T, one line per state, log y."""
    fig = plots.new_figure(9, 5)
    ax = fig.add_subplot()
    positive = np.concatenate([line[line > 0] for line in norms.values()] or [np.zeros(0)])
    colors = plots.qualitative_colors(len(norms))
    for (label, line), color in zip(norms.items(), colors):
        steps = np.arange(1, len(line) + 1)
        shown = np.where(line > 0, line, np.nan)  # a step the gradient does not reach has no log
        reached = line[line > 0]
        ratio = f"  (t=1 gets {reached[0] / reached[-1]:.2g} of t=T)" if len(reached) > 1 and line[0] > 0 else ""
        ax.plot(steps, shown, color=color, linewidth=1.8, label=label + ratio,
                linestyle="--" if "memory cell" in label else "-")  # fmt: skip
    if len(positive):
        plots.log_y(ax, float(positive.min()), float(positive.max()))
    plots.style_axes(ax, xlabel="time step t (the input read at t)", ylabel="||d loss / d state_t||  (log scale)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="best")
    plots.add_title(fig, title)
    plots.add_note(fig, [
        "How much the loss on one validation batch (of a model that answers at every step: the loss at the last step) can "
        "still change through the state at step t: the learning signal that reaches the input read at t. Read it from "
        "right (the end, where the loss is) to left.",
        "An Elman RNN multiplies it by about the same factor at every step back, so it shrinks exponentially and the first "
        "inputs barely learn (vanishing gradients). The LSTM's memory cell c_t passes it back multiplied only by its forget "
        "gate f_t (the constant error carousel): a trained LSTM that holds f_t near 1 keeps the line flat where it must "
        "remember.",
    ])  # fmt: skip
    return fig


# ---------------------------------------------------------------------- gates over a sequence
#: the order in which the gates are drawn (others follow in the order the layer recorded them)
GATE_ORDER = ("input", "forget", "cell_candidate", "output", "reset", "update", "candidate")


class GateActivations(FigureCallback):
    """The gates of an LSTM or GRU at every step of one validation sequence, for a few units.

    Args:
        max_units: how many units each heatmap shows: those whose hidden state changes most over
            the sequence (their numbers on the y axis).
        example: which example of the first validation batch to run.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    On global rank zero, each recurrent layer (see the module docstring) runs on its hand-written
    cells with ``record_gates=True`` on one sequence; one figure per layer with gates (its first
    cell: the first layer, forward direction), ``gate_activations.png`` for the first and
    ``gate_activations_<layer>.png`` for the others. A row per gate and state, time along x; above
    them the input sequence when it has at most four features per step (the adding problem's value
    and marker), and the tokens under the last row when the batches hold tokens and the datamodule
    can name them (``itos``, or ``decode`` of one-hot steps). Drawn values stay in
    :attr:`activations` (``{layer: {gate: (time, units)}}``) and :attr:`units`.

    A module whose recurrent layers have no gates (an Elman RNN) gets one notice and no figure.
    """

    name = "gate_activations"

    def __init__(self, max_units: int = 16, example: int = 0, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if not isinstance(max_units, int) or max_units < 1:
            raise ValueError(f"GateActivations: max_units must be a positive integer, got {max_units!r}")
        if not isinstance(example, int) or example < 0:
            raise ValueError(f"GateActivations: example must be an integer >= 0, got {example!r}")
        self.max_units = max_units
        self.example = example
        self.activations: dict[str, dict[str, np.ndarray]] = {}
        self.units: dict[str, np.ndarray] = {}

    def record(self, pl_module: L.LightningModule, batch: Any) -> dict[str, dict[str, np.ndarray]] | str:
        """``{layer: {gate or state: (time, hidden)}}`` of the first cell of each layer with gates."""
        layers = [(name, layer) for name, layer in recurrent_layers(pl_module) if hasattr(layer, "record_gates")]
        if not layers:
            return f"{type(pl_module).__name__} has no recurrent layer that can record its gates (record_gates)"
        recorded: dict[str, dict[str, np.ndarray]] = {}
        with hand_path([layer for _, layer in layers], record_gates=True), torch.no_grad():
            was_training = pl_module.training
            pl_module.eval()
            try:
                ran = run_on_batch(pl_module, batch)
            finally:
                pl_module.train(was_training)
            if isinstance(ran, str):
                return ran
            for name, layer in layers:
                if layer.recorded:
                    recorded[name] = {key: value[0].float().cpu().numpy() for key, value in layer.recorded[0].items()}
        gated = {}
        for name, values in recorded.items():
            cells = getattr(dict(layers)[name], "cells", None)
            states = tuple(getattr(cells[0], "state_names", ())) if cells is not None else ()
            states = tuple(k for k in states or ("hidden", "cell") if k in values)
            gates = [k for k in GATE_ORDER if k in values] + [k for k in values if k not in GATE_ORDER and k not in states]
            if gates:
                gated[name] = {k: values[k] for k in (*gates, *states)}
        if not gated:
            return f"the recurrent layers of {type(pl_module).__name__} have no gates (an Elman RNN has only its state)"
        return gated

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Figure] | None:
        model = type(pl_module).__name__
        batch = first_validation_batch(trainer, pl_module, None)
        if batch is None:
            self.does_not_apply("there is no validation data")
            return None
        inputs, targets = inputs_and_targets(batch)
        i = min(self.example, len(inputs) - 1)
        one = (inputs[i : i + 1], targets[i : i + 1]) if targets is not None else inputs[i : i + 1]
        recorded = self.record(pl_module, one)
        if isinstance(recorded, str):
            self.does_not_apply(recorded)
            return None
        self.activations, self.units, figures = {}, {}, {}
        sequence = inputs[i].detach().cpu()
        for k, (layer, values) in enumerate(recorded.items()):
            change = np.abs(np.diff(values.get("hidden", next(iter(values.values()))), axis=0)).sum(axis=0)
            units = np.sort(np.argsort(-change, kind="stable")[: self.max_units])
            self.units[layer] = units
            self.activations[layer] = {gate: value[:, units] for gate, value in values.items()}
            name = self.name if k == 0 else f"{self.name}_{layer.replace('.', '_')}"
            figures[name] = gate_activations(
                self.activations[layer], units, input_panel(sequence, trainer.datamodule), tokens(sequence, trainer.datamodule),
                title=f"Gates of {model} (layer {layer!r}) over validation example {i}",
            )  # fmt: skip
        return figures


def input_panel(sequence: Tensor, datamodule: Any) -> tuple[np.ndarray, list[str]] | None:
    """A real-valued input of at most four features per step as ``((time, features), names)``."""
    if not sequence.is_floating_point() or sequence.ndim != 2 or sequence.shape[1] > 4:
        return None
    names = getattr(datamodule, "feature_names", None)
    if names is None or len(names) != sequence.shape[1]:
        names = [f"input feature {j}" for j in range(sequence.shape[1])]
    return sequence.float().numpy(), [str(n) for n in names]


def tokens(sequence: Tensor, datamodule: Any) -> list[str] | None:
    """One label per step: the tokens of an index sequence (``itos``), or of one-hot steps
    (``decode`` giving one character per step); ``None`` when the datamodule cannot name them."""
    itos = getattr(datamodule, "itos", None)
    if sequence.ndim == 1 and not sequence.is_floating_point() and isinstance(itos, (list, tuple)):
        if int(sequence.max()) < len(itos):
            return [token_text(str(itos[int(t)])) for t in sequence]
    decode = getattr(datamodule, "decode", None)
    if sequence.ndim == 2 and sequence.shape[1] > 4 and callable(decode):
        try:
            text = decode(sequence)
        except Exception:  # noqa: BLE001  (a decode for other rows: no labels, not a failed figure)
            return None
        if isinstance(text, str) and len(text) == len(sequence):
            return [token_text(c) for c in text]
    return None


def gate_activations(
    values: dict[str, np.ndarray], units: np.ndarray, inputs: tuple[np.ndarray, list[str]] | None,
    labels: list[str] | None, title: str,
) -> Figure:  # fmt: skip
    """One heatmap per gate or state (units x time), under a line plot of the inputs."""
    time = len(next(iter(values.values())))
    rows = len(values) + (inputs is not None)
    fig = plots.new_figure(10, 1.25 * len(values) + (1.4 if inputs is not None else 0) + 1.6)
    axes = fig.subplots(rows, 1, sharex=True, height_ratios=[1.1] * (inputs is not None) + [1.0] * len(values), squeeze=False)[:, 0]
    if inputs is not None:
        series, names = inputs
        for j, name in enumerate(names):
            axes[0].step(np.arange(time), series[:, j], where="mid", linewidth=1.2, label=name)
        plots.style_axes(axes[0], ylabel="value")
        axes[0].set_title("input sequence", fontsize=plots.TITLE_SIZE, loc="left")
        # above the panel, on the right: a legend beside it would push the heatmaps' colour bars away
        axes[0].legend(fontsize=plots.LEGEND_SIZE, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(names),
                       frameon=False, borderaxespad=0.2)  # fmt: skip
    for ax, (gate, value) in zip(axes[rows - len(values) :], values.items()):
        low, high = float(value.min()), float(value.max())
        if low >= 0.0 and high <= 1.0:  # a sigmoid gate: 0 closed, 1 open
            image = ax.imshow(value.T, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                              extent=(-0.5, time - 0.5, len(units) - 0.5, -0.5))  # fmt: skip
        else:  # a tanh value or an unbounded cell state: signed, white at 0
            bound = max(abs(low), abs(high), 1e-6)
            image = ax.imshow(value.T, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest",
                              extent=(-0.5, time - 0.5, len(units) - 0.5, -0.5))  # fmt: skip
        plots.style_axes(ax, ylabel="unit", grid=False)
        ax.set_title(SYMBOLS.get(gate, gate), fontsize=plots.TITLE_SIZE, loc="left")
        ticks = np.linspace(0, len(units) - 1, min(len(units), 4)).round().astype(int)
        ax.set_yticks(ticks, [str(units[t]) for t in ticks])
        bar = fig.colorbar(image, ax=ax, pad=0.01, aspect=8)
        bar.ax.tick_params(labelsize=TICK_SIZE - 1)
    last = axes[-1]
    if labels is not None and len(labels) <= 100:
        last.set_xticks(range(time), labels, fontsize=max(5, TICK_SIZE - len(labels) // 20))
        last.set_xlabel("time step (the token read)", fontsize=LABEL_SIZE)
    else:
        last.set_xlabel("time step t", fontsize=LABEL_SIZE)
    plots.add_title(fig, title)
    plots.add_note(fig, [
        f"Each row of a heatmap is one of {len(units)} hidden units (those whose state changes most over this sequence), "
        "time runs left to right. Gates are between 0 (closed) and 1 (open): an input gate opens where the cell should "
        "write, a forget (or GRU update) gate near 1 keeps the memory. Signed values (candidates, states) are red above 0, "
        "blue below.",
    ])  # fmt: skip
    return fig


# ---------------------------------------------------------------------- generated text
class TextSamples(Callback):
    """Samples of what a sequence model writes, saved under the run's log dir and logged as a
    ``wandb.Table`` when a run exists.

    Args:
        num_samples: how many texts a language model writes (each from a prompt of its own).
        length: how many tokens each sample adds to its prompt.
        prompt_length: how many tokens of a validation example make a prompt.
        prompts: prompts as text, instead of validation examples (the datamodule must ``encode``).
        temperature: the sampling temperature (0: the most likely token each time).
        seed: the seed of the ``torch.Generator`` the samples are drawn with.
        num_translations: how many validation examples a seq2seq model translates.
        every_n_epochs: also write every this many epochs; ``None``: at the end of training only.
        log_to_wandb: log the table when the trainer has a WandbLogger with a live run.

    Two kinds of module, found by what they offer:

    * a language model, with ``generate(prompt, length, temperature=..., generator=...)`` (token
      indices in, the prompt followed by the new tokens out, as ``SequenceTaskModel.generate``) and
      a datamodule with ``decode`` (``CharLMDataModule``): ``text_samples.md`` and the table
      ``text_samples`` (columns epoch, prompt, sample, temperature);
    * a seq2seq model, with ``greedy_decode(source)``, and a datamodule with ``decode`` (and
      ``decode_source`` when the source has a vocabulary of its own): ``translations.md`` and the
      table ``translations`` (epoch, source, expected, decoded, correct), for the first validation
      examples.

    Files go to ``<log dir>/samples/`` (``_epochNNN`` added for the epochs of ``every_n_epochs``);
    the table holds the rows of every epoch so far. Global rank zero only; an error is a warning,
    never a failed fit. Rows written stay in :attr:`rows`.

    Raises:
        ValueError: for a count or length below 1, a negative temperature, or ``every_n_epochs`` below 1.

    Example::

        trainer = Trainer(callbacks=[TextSamples(num_samples=3, length=200, temperature=0.8)])
    """

    def __init__(
        self,
        num_samples: int = 3,
        length: int = 200,
        prompt_length: int = 32,
        prompts: Sequence[str] | None = None,
        temperature: float = 1.0,
        seed: int = 0,
        num_translations: int = 8,
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        for argument, value in (("num_samples", num_samples), ("length", length), ("prompt_length", prompt_length),
                                ("num_translations", num_translations)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TextSamples: {argument} must be a positive integer, got {value!r}")
        if temperature < 0:
            raise ValueError(f"TextSamples: temperature must be >= 0, got {temperature}")
        if every_n_epochs is not None and every_n_epochs < 1:
            raise ValueError(f"TextSamples: every_n_epochs must be at least 1 or None, got {every_n_epochs}")
        self.num_samples, self.length, self.prompt_length = num_samples, length, prompt_length
        self.prompts = list(prompts) if prompts is not None else None
        self.temperature, self.seed, self.num_translations = temperature, seed, num_translations
        self.every_n_epochs, self.log_to_wandb = every_n_epochs, log_to_wandb
        self.directory: Path | None = None
        self.saved: list[Path] = []
        #: the last epoch whose end was seen (0-based), the ``epoch`` of the rows
        self.epoch: int | None = None
        #: every row written so far, by table (``"text_samples"`` or ``"translations"``)
        self.rows: dict[str, list[list[Any]]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts from rank zero (a collective call): resolved here, on every rank
        self.directory = Path(trainer.log_dir or trainer.default_root_dir) / "samples"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch = trainer.current_epoch
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.emit(trainer, pl_module, suffix=f"_epoch{trainer.current_epoch:03d}")

    # by the end of training the trainer counts the epochs done: the rows name the last one trained
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.emit(trainer, pl_module)

    # ------------------------------------------------------------------ what to write
    def emit(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> Path | None:
        """Write the samples (rank zero), log the table; returns the file written."""
        if not trainer.is_global_zero:
            return None
        try:
            made = self.make(trainer, pl_module)
            if isinstance(made, str):
                say_once(f"TextSamples: no samples, because {made}.")
                return None
            key, columns, rows = made
            table = self.rows.setdefault(key, [])
            if not any(row[0] == rows[0][0] for row in table):  # the final rows of an epoch already written are not repeated
                table.extend(rows)
            directory = self.directory or Path(trainer.default_root_dir) / "samples"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{key}{suffix}.md"
            path.write_text(markdown(key, columns, rows), encoding="utf-8")
        except Exception as error:  # noqa: BLE001  (samples are a by-product: the fit goes on)
            warn_once(f"TextSamples: the samples could not be written: {type(error).__name__}: {error}")
            return None
        self.saved.append(path)
        logger = live_wandb_logger(trainer) if self.log_to_wandb else None
        if logger is not None:
            logger.log_table(key=key, columns=list(columns), data=[list(row) for row in self.rows[key]])
        return path

    def make(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Made:
        """(table name, columns, this epoch's rows), or why there are none."""
        datamodule = trainer.datamodule
        decode = getattr(datamodule, "decode", None)
        model = type(pl_module).__name__
        if not callable(decode):
            return "the datamodule has no decode(tokens) to turn tokens into text"
        if callable(getattr(pl_module, "greedy_decode", None)):
            return self.translations(trainer, pl_module, decode)
        if callable(getattr(pl_module, "generate", None)):
            return self.text_samples(trainer, pl_module, decode)
        return f"{model} has neither generate (a language model) nor greedy_decode (a seq2seq model)"

    def _epoch(self, trainer: L.Trainer) -> int:
        return self.epoch if self.epoch is not None else trainer.current_epoch

    def _prompts(self, trainer: L.Trainer) -> list[Tensor] | str:
        if self.prompts is not None:
            encode = getattr(trainer.datamodule, "encode", None)
            if not callable(encode):
                return "prompts were given as text and the datamodule has no encode(text)"
            return [torch.as_tensor(encode(text), dtype=torch.long) for text in self.prompts]
        batch = next(iter(validation_batches(trainer)), None)
        inputs = inputs_and_targets(batch)[0] if batch is not None else None
        if not isinstance(inputs, Tensor) or inputs.ndim != 2 or inputs.is_floating_point():
            return "its validation batches are not rows of token indices to take prompts from"
        return [row[: self.prompt_length].cpu() for row in inputs[: self.num_samples]]

    def text_samples(self, trainer: L.Trainer, pl_module: L.LightningModule, decode: Any) -> Made:
        prompts = self._prompts(trainer)
        if isinstance(prompts, str):
            return prompts
        accepted = inspect.signature(pl_module.generate).parameters
        generator = torch.Generator().manual_seed(self.seed)
        options = {k: v for k, v in (("temperature", self.temperature), ("generator", generator)) if k in accepted}
        rows = []
        for k in range(self.num_samples):
            prompt = prompts[k % len(prompts)]
            written = pl_module.generate(prompt.to(pl_module.device), self.length, **options).detach().cpu().reshape(-1)
            new = written[len(prompt) :] if len(written) == len(prompt) + self.length else written
            rows.append([self._epoch(trainer), decode(prompt), decode(new), self.temperature])
        return "text_samples", ("epoch", "prompt", "sample", "temperature"), rows

    def translations(self, trainer: L.Trainer, pl_module: L.LightningModule, decode: Any) -> Made:
        batch = next(iter(validation_batches(trainer)), None)
        source, target = inputs_and_targets(batch) if batch is not None else (None, None)
        if not isinstance(source, Tensor) or not isinstance(target, Tensor):
            return "its validation batches are not (source, target) token tensors"
        source, target = source[: self.num_translations], target[: self.num_translations]
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                decoded = pl_module.greedy_decode(source.to(pl_module.device)).cpu()
        finally:
            pl_module.train(was_training)
        decode_source = getattr(trainer.datamodule, "decode_source", decode)
        rows = []
        for k in range(len(source)):
            expected, output = decode(target[k]), decode(decoded[k])
            rows.append([self._epoch(trainer), decode_source(source[k]), expected, output, expected == output])
        return "translations", ("epoch", "source", "expected", "decoded", "correct"), rows

    def state_dict(self) -> dict[str, Any]:
        return {"rows": {k: [list(r) for r in v] for k, v in self.rows.items()}, "epoch": self.epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = {k: [list(r) for r in v] for k, v in state_dict.get("rows", {}).items()}
        self.epoch = state_dict.get("epoch")


def markdown(key: str, columns: Sequence[str], rows: list[list[Any]]) -> str:
    """The rows as Markdown: each text in a fenced block, so that its spaces and newlines show."""
    lines = [f"# {key.replace('_', ' ').capitalize()}", ""]
    for n, row in enumerate(rows):
        values = dict(zip(columns, row))
        texts = {c: v for c, v in values.items() if isinstance(v, str)}
        others = ", ".join(f"{c} {v}" for c, v in values.items() if c not in texts)
        lines += [f"## {n + 1} ({others})", ""]
        for column, text in texts.items():
            lines += [f"{column}:", "", "```text", text, "```", ""]
    return "\n".join(lines)
