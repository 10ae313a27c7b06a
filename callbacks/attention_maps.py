"""Attention maps: where each output position of a model looks in its input, for a few validation examples.

:class:`AttentionMaps` works with any LightningModule that lets its attention weights be seen, in
either of two ways:

* a submodule with a tensor attribute ``attention_weights`` of shape ``(batch, heads, queries, keys)``
  or ``(batch, queries, keys)``, set by its forward (the project's Transformer attention and
  Bahdanau's additive attention do this, and any model can);
* ``torch.nn.MultiheadAttention`` (alone, or inside ``nn.Transformer``, ``nn.TransformerEncoderLayer``
  and ``nn.TransformerDecoderLayer``): a forward hook reads the weights it returns. Those layers call
  it with ``need_weights=False``, so while the callback listens a forward pre-hook asks for the
  weights, per head (``need_weights=True, average_attn_weights=False``), and PyTorch's fused
  inference path, which skips the module's ``forward``, is switched off
  (``torch.backends.mha.set_fastpath_enabled``). The outputs are the same numbers either way.

How the weights are read: the callback listens during the first batch of every validation run of
the fit (not the sanity check), on global rank zero, and keeps what each attention module computed
in its *last* forward on that batch, for the first ``num_examples`` examples. It draws the last
such capture at the end of training (and every ``every_n_epochs``). So it shows what the model's own
``validation_step`` did: for an encoder-decoder that decodes greedily in validation, the last
forward is the last step of that decoding. Nothing runs that the model would not run anyway.

Each row of a map is one query (an output or target position), each column one key (an input or
source position); a row's weights sum to 1. Axes are labelled with tokens when the batches hold
token indices and the datamodule has a vocabulary (``itos``, and ``source_itos`` for a source
vocabulary of its own, as :mod:`datamodules.sequences` has), and with positions otherwise; trailing
padding (the datamodule's ``pad_index``, or the token ``"<pad>"``) is cut off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from callbacks import plots
from callbacks.batches import inputs_and_targets
from callbacks.figures import FigureCallback
from callbacks.plots.style import LABEL_SIZE, TICK_SIZE

#: printable stand-ins for characters that would be invisible or break a tick label
VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"}
#: the arguments of ``nn.MultiheadAttention.forward``, in order
MULTIHEAD_ARGUMENTS = (
    "query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights", "is_causal",
)  # fmt: skip
#: how an axis names what labels it: the targets are what was expected, not what a decoder wrote
ROLE_LABELS = {
    "source": "source",
    "output": "target (expected token)",
    "decoder input": "decoder input (expected)",
    "position": "position",
}
#: a token axis longer than this is labelled with positions
MAX_TOKEN_TICKS = 48


def token_text(token: str) -> str:
    """A token as a tick label: whitespace made visible."""
    return "".join(VISIBLE.get(c, c) for c in token) if len(token) <= 2 else token


def as_batched_heads(weights: Tensor) -> Tensor | None:
    """``weights`` as ``(batch, heads, queries, keys)``; ``None`` for a shape that is not attention."""
    if weights.ndim == 3:
        return weights[:, None]
    return weights if weights.ndim == 4 else None


class AttentionMaps(FigureCallback):
    """Attention weights of a few validation examples, one heatmap per example and attention module.

    Args:
        num_examples: how many validation examples (rows of the figure).
        modules: names (as in ``named_modules()``) of the attention modules to draw; by default the
            last layer of each kind: module names are grouped with their layer numbers removed
            (``encoder.layers.0.self_attn`` and ``encoder.layers.5.self_attn`` are one kind), and
            the last of each group is drawn, at most ``max_modules`` of them.
        max_modules: how many modules to draw when ``modules`` is not given.
        max_heads: how many heads :file:`attention_heads.png` shows per module.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Writes ``attention_maps.png`` (rows: examples; columns: modules; the heads averaged) and, when a
    drawn module has several heads, ``attention_heads.png`` (the first example, one panel per head).
    What was drawn stays in :attr:`maps` (``{module name: (examples, heads, queries, keys)}``, before
    padding is cut). A module without attention weights gets one notice and no figure.

    Raises:
        ValueError: for ``num_examples``, ``max_modules`` or ``max_heads`` below 1; at setup, for a
            name in ``modules`` that is not a submodule.

    Example::

        trainer = Trainer(callbacks=[AttentionMaps(num_examples=3)])
    """

    name = "attention_maps"

    def __init__(
        self,
        num_examples: int = 4,
        modules: Sequence[str] | None = None,
        max_modules: int = 3,
        max_heads: int = 8,
        every_n_epochs: int | None = None,
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        for argument, value in (("num_examples", num_examples), ("max_modules", max_modules), ("max_heads", max_heads)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AttentionMaps: {argument} must be an integer of at least 1, got {value!r}")
        self.num_examples = num_examples
        self.modules = list(modules) if modules is not None else None
        self.max_modules = max_modules
        self.max_heads = max_heads
        #: what was drawn last: ``{module name: (examples, heads, queries, keys)}`` as NumPy arrays
        self.maps: dict[str, np.ndarray] = {}
        self._hooks: list[Any] = []
        self._fastpath: bool | None = None
        self._heard: dict[str, Tensor] = {}
        self._before: dict[str, int] = {}
        self._capture: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        missing = [name for name in self.modules or () if name not in dict(pl_module.named_modules())]
        if missing:
            raise ValueError(f"AttentionMaps: {type(pl_module).__name__} has no submodule named {missing}")

    # ------------------------------------------------------------------ listening
    def _listening(self, trainer: L.Trainer, batch_idx: int, dataloader_idx: int) -> bool:
        return trainer.is_global_zero and not trainer.sanity_checking and batch_idx == 0 and dataloader_idx == 0

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._listening(trainer, batch_idx, dataloader_idx):
            return
        self._heard = {}
        # a module's attention_weights left over from an earlier forward is not this batch's
        self._before = {
            name: id(module.attention_weights)
            for name, module in pl_module.named_modules()
            if isinstance(getattr(module, "attention_weights", None), Tensor)
        }
        torch_attention = [(n, m) for n, m in pl_module.named_modules() if isinstance(m, nn.MultiheadAttention)]
        if not torch_attention:
            return
        self._fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused inference kernels bypass forward and its hooks
        for name, module in torch_attention:
            self._hooks.append(module.register_forward_pre_hook(self._ask_for_weights, with_kwargs=True))
            self._hooks.append(module.register_forward_hook(self._keep_weights(name)))

    @staticmethod
    def _ask_for_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Make ``nn.MultiheadAttention.forward`` return its weights, per head, when its caller did
        not ask for them; a caller that asked gets them as it asked."""
        kwargs = {**kwargs, **dict(zip(MULTIHEAD_ARGUMENTS[3:], args[3:]))}
        if kwargs.get("need_weights", True):
            return None
        kwargs.update(need_weights=True, average_attn_weights=False)
        return args[:3], kwargs

    def _keep_weights(self, name: str) -> Any:
        def keep(module: nn.Module, args: tuple, output: Any) -> None:
            if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], Tensor):
                self._heard[name] = output[1][: self.num_examples].detach()  # the last forward wins

        return keep

    def _stop_listening(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self._fastpath)
            self._fastpath = None

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._listening(trainer, batch_idx, dataloader_idx):
            return
        self._stop_listening()
        heard = dict(self._heard)
        for name, module in pl_module.named_modules():
            weights = getattr(module, "attention_weights", None)
            if isinstance(weights, Tensor) and self._before.get(name) != id(weights):
                heard[name] = weights[: self.num_examples].detach()
        maps = {name: as_batched_heads(w.float().cpu()) for name, w in heard.items()}
        inputs, targets = inputs_and_targets(batch)
        self._capture = {
            "epoch": trainer.current_epoch,
            "maps": {name: w for name, w in maps.items() if w is not None},
            "inputs": inputs[: self.num_examples].detach().cpu() if isinstance(inputs, Tensor) else None,
            "targets": targets[: self.num_examples].detach().cpu() if isinstance(targets, Tensor) else None,
        }
        self._heard = {}

    # a validation step that raised must not leave the hooks in, nor the fast path off
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_listening()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop_listening()

    # ------------------------------------------------------------------ drawing
    def chosen(self, names: Sequence[str]) -> list[str]:
        """The modules to draw among those that gave weights (see ``modules`` and ``max_modules``)."""
        if self.modules is not None:
            return [name for name in self.modules if name in names]
        last_of_kind: dict[str, str] = {}
        for name in names:  # named_modules() order: the last of a kind is its deepest layer
            last_of_kind[re.sub(r"\d+", "#", name)] = name
        return list(last_of_kind.values())[: self.max_modules]

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Figure] | None:
        model = type(pl_module).__name__
        if self._capture is None:
            self.does_not_apply(f"no validation batch of {model} has run since the fit started")
            return None
        captured = self._capture["maps"]
        if not captured:
            self.does_not_apply(
                f"{model} exposes no attention weights (no submodule sets a tensor attribute attention_weights "
                "and no nn.MultiheadAttention returned weights)"
            )
            return None
        names = self.chosen(list(captured))
        if not names:
            self.does_not_apply(f"none of the modules {self.modules} gave attention weights")
            return None
        self.maps = {name: captured[name].numpy() for name in names}
        labels = AxisLabels(trainer.datamodule, self._capture["inputs"], self._capture["targets"])
        epoch = self._capture["epoch"]
        figures = {self.name: self._draw_examples(model, epoch, labels)}
        several = [name for name in names if self.maps[name].shape[1] > 1]
        if several:
            figures["attention_heads"] = self._draw_heads(model, epoch, several, labels)
        return figures

    def _draw_examples(self, model: str, epoch: int, labels: AxisLabels) -> Figure:
        names = list(self.maps)
        examples = min(len(m) for m in self.maps.values())
        panels = [[labels.panel(name, self.maps[name][i].mean(axis=0), i) for name in names] for i in range(examples)]
        fig = _panel_figure(panels, len(names))
        axes = fig.subplots(examples, len(names), squeeze=False)
        # one colour scale for every panel, up to the largest weight drawn: a faint map is faint
        top = max(float(p.weights.max()) for row in panels for p in row)
        for column, name in enumerate(names):
            heads = self.maps[name].shape[1]
            for row in range(examples):
                ax = axes[row][column]
                image = _heatmap(ax, panels[row][column], vmax=top)
                if row == 0:
                    ax.set_title(name + (f"\n(mean of {heads} heads)" if heads > 1 else ""), fontsize=plots.TITLE_SIZE)
                if column == 0:
                    ax.set_ylabel(f"example {row}\n{ax.get_ylabel()}", fontsize=LABEL_SIZE)
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5, pad=0.02)
        bar.set_label("attention weight", fontsize=LABEL_SIZE)
        bar.ax.tick_params(labelsize=TICK_SIZE)
        plots.add_title(fig, f"Attention of {model} on {examples} validation examples (after epoch {epoch})")
        plots.add_note(fig, [
            "Each row is one query (an output position); its colours show how much that position reads each key (an "
            "input position), and sum to 1. A bright diagonal means output i reads input i (copying); an anti-diagonal, "
            "that it reads the input backwards (reversal).",
        ])  # fmt: skip
        return fig

    def _draw_heads(self, model: str, epoch: int, names: list[str], labels: AxisLabels) -> Figure:
        heads = min(self.max_heads, max(self.maps[name].shape[1] for name in names))
        panels = [[labels.panel(name, self.maps[name][0, h], 0) if h < self.maps[name].shape[1] else None for h in range(heads)]
                  for name in names]  # fmt: skip
        fig = _panel_figure(panels, heads)
        axes = fig.subplots(len(names), heads, squeeze=False)
        top = max(float(p.weights.max()) for row in panels for p in row if p is not None)
        for row, name in enumerate(names):
            for h in range(heads):
                ax = axes[row][h]
                if panels[row][h] is None:
                    ax.set_axis_off()
                    continue
                image = _heatmap(ax, panels[row][h], vmax=top)
                ax.set_title(f"{name}\nhead {h}" if h == 0 else f"head {h}", fontsize=plots.TITLE_SIZE)
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5, pad=0.02)
        bar.set_label("attention weight", fontsize=LABEL_SIZE)
        bar.ax.tick_params(labelsize=TICK_SIZE)
        plots.add_title(fig, f"Attention of each head of {model}, validation example 0 (after epoch {epoch})")
        plots.add_note(fig, ["Heads of one layer attend in parallel and may each learn a different pattern (Vaswani et al., 2017)."])
        return fig


class Panel:
    """One heatmap: the weights ``(queries, keys)`` with padding cut, and its tick labels."""

    def __init__(self, weights: np.ndarray, query_ticks: list[str] | None, key_ticks: list[str] | None,
                 query_label: str, key_label: str) -> None:  # fmt: skip
        self.weights, self.query_ticks, self.key_ticks = weights, query_ticks, key_ticks
        self.query_label, self.key_label = query_label, key_label


class AxisLabels:
    """Which tokens label the queries and the keys of an attention map, from the batch it came from.

    Candidates are the source tokens (the batch's inputs), the decoder's inputs (``targets[:, :-1]``)
    and the positions they predict (``targets[:, 1:]``, teacher forcing's shift); an axis takes the
    first candidate whose length is the axis's. The target tokens are those expected: where a model
    decodes on its own in validation, its own tokens may differ (the axis says "expected"). Where two
    candidates have the same length the module's name decides: an ``encoder``'s or a ``self`` attention
    outside a decoder reads the source on its queries, any other attention (a decoder's, a cross
    attention such as Bahdanau's) reads outputs on its queries, and a decoder's ``self`` attention
    reads the decoder's inputs on its keys.
    """

    def __init__(self, datamodule: Any, inputs: Tensor | None, targets: Tensor | None) -> None:
        def vocabulary(*names: str) -> list[str] | None:
            for name in names:
                value = getattr(datamodule, name, None)
                if isinstance(value, (list, tuple)) and value:
                    return [str(v) for v in value]
            return None

        def tokens(rows: Tensor | None) -> Tensor | None:
            return rows if isinstance(rows, Tensor) and rows.ndim == 2 and not rows.is_floating_point() else None

        self.source = tokens(inputs)
        self.target = tokens(targets)
        self.source_itos = vocabulary("source_itos", "itos")
        self.target_itos = vocabulary("itos")
        pad = getattr(datamodule, "pad_index", None)
        self.pad = pad if isinstance(pad, int) else None

    def _candidates(self, i: int) -> dict[str, tuple[Tensor, list[str] | None]]:
        found: dict[str, tuple[Tensor, list[str] | None]] = {}
        if self.source is not None and i < len(self.source):
            found["source"] = (self.source[i], self.source_itos)
        if self.target is not None and i < len(self.target) and self.target.shape[1] > 1:
            found["output"] = (self.target[i, 1:], self.target_itos)
            found["decoder input"] = (self.target[i, :-1], self.target_itos)
        return found

    def _axis(self, length: int, order: Sequence[str], i: int) -> tuple[str, list[str] | None, int]:
        """(what the axis shows, its tick labels or None for positions, how many positions to keep)."""
        candidates = self._candidates(i)
        for role in order:
            if role not in candidates:
                continue
            row, itos = candidates[role]
            if len(row) != length or itos is None or row.max() >= len(itos):
                continue
            words = [itos[int(t)] for t in row]
            keep = length
            while keep > 1 and self._is_pad(int(row[keep - 1]), words[keep - 1]):
                keep -= 1
            return role, [token_text(w) for w in words[:keep]], keep
        return "position", None, length

    def _is_pad(self, index: int, word: str) -> bool:
        return index == self.pad if self.pad is not None else word == "<pad>"

    def panel(self, name: str, weights: np.ndarray, i: int) -> Panel:
        parts = set(re.split(r"[._]", name.lower()))
        decoder = bool(parts & {"decoder", "dec"})
        # a self-attention (an encoder's, a "self" module's) reads one sequence on both axes; any other
        # attention (a decoder's, Bahdanau's) asks from the outputs: its queries prefer the targets
        self_attention = bool(parts & {"encoder", "enc", "self"}) and not decoder
        queries = ("source", "output", "decoder input") if self_attention else ("output", "source", "decoder input")
        keys = ("decoder input", "source", "output") if decoder and "self" in parts else ("source", "decoder input", "output")
        query_role, query_ticks, q = self._axis(weights.shape[0], queries, i)
        key_role, key_ticks, k = self._axis(weights.shape[1], keys, i)
        return Panel(weights[:q, :k], query_ticks, key_ticks, f"query: {ROLE_LABELS[query_role]}", f"key: {ROLE_LABELS[key_role]}")


def _panel_figure(panels: list[list[Panel | None]], columns: int) -> Figure:
    """A figure sized so that each cell of the largest panel is readable."""
    shown = [p for row in panels for p in row if p is not None]
    rows_needed = max(p.weights.shape[0] for p in shown)
    cols_needed = max(p.weights.shape[1] for p in shown)
    cell = float(np.clip(3.2 / max(rows_needed, cols_needed), 0.07, 0.22))
    width = columns * max(2.6, cols_needed * cell + 1.2) + 1.6
    height = len(panels) * max(2.4, rows_needed * cell + 1.2) + 1.6
    return plots.new_image_figure(width, height)


def _ticks(axis: Any, ticks: list[str] | None, vertical: bool) -> None:
    if ticks is not None and len(ticks) <= MAX_TOKEN_TICKS:
        axis.set_ticks(range(len(ticks)), ticks, fontsize=max(5, TICK_SIZE - len(ticks) // 12),
                       rotation=90 if vertical and max(map(len, ticks)) > 1 else 0)  # fmt: skip
    else:
        from matplotlib.ticker import MaxNLocator

        axis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def _heatmap(ax: Any, panel: Panel, vmax: float) -> Any:
    image = ax.imshow(panel.weights, cmap="viridis", vmin=0.0, vmax=max(vmax, 1e-6), interpolation="nearest")
    plots.style_axes(ax, xlabel=panel.key_label, ylabel=panel.query_label, grid=False)
    _ticks(ax.xaxis, panel.key_ticks, vertical=True)
    _ticks(ax.yaxis, panel.query_ticks, vertical=False)
    ax.tick_params(length=0)
    return image
