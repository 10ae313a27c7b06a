"""Curves over training: the logged metrics per epoch, and each layer's gradient norm per step."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from callbacks.plots.style import (
    LABEL_SIZE,
    LEGEND_SIZE,
    NOTE_COLOR,
    NOTE_SIZE,
    TICK_SIZE,
    add_note,
    add_title,
    empty_figure,
    log_y,
    new_figure,
    style_axes,
)

# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------

_SPLITS = ("train", "val", "test")
_SPLIT_LINESTYLE = {"train": "--", "val": "-", "test": ":", None: "-"}
_SPLIT_MARKER = {"train": "o", "val": "s", "test": "^", None: "D"}
_SPLIT_COLOR = {"train": "C0", "val": "C1", "test": "C2", None: "C4"}
_PANEL_TITLES = {"loss": "Loss", "accuracy": "Accuracy", "lr": "Learning rate",
                 "other": "Other metrics"}
_PANEL_YLABELS = {"loss": "loss", "accuracy": "accuracy", "lr": "learning rate",
                  "other": "value"}

# Panels by count: 1 alone, 2 side by side, 3 as two above one wide, 4 as 2x2, 5-6 as 2x3.
_MOSAICS = {1: [["A"]], 2: [["A", "B"]], 3: [["A", "B"], ["C", "C"]],
            4: [["A", "B"], ["C", "D"]], 5: [["A", "B", "C"], ["D", "E", "."]],
            6: [["A", "B", "C"], ["D", "E", "F"]]}
_SIZES = {1: (7.5, 4.8), 2: (12, 4.8), 3: (12, 8.5), 4: (12, 8.5), 5: (12, 8), 6: (12, 8)}


def _normalised_key(name: str) -> str:
    key = name.lower().replace("/", "_").replace("-", "_")
    # Lightning logs "train_loss_epoch" / "train_loss_step" when on_step and on_epoch are both on.
    for suffix in ("_epoch", "_step"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


def _panel_of(name: str) -> str:
    key = _normalised_key(name)
    if key == "loss" or key.endswith("_loss"):
        return "loss"
    if key in ("accuracy", "acc") or key.endswith(("_accuracy", "_acc")):
        return "accuracy"
    # "learning_rate", "lr", and LearningRateMonitor's "lr-Adam" / "lr-SGD-momentum".
    if key in ("learning_rate", "lr") or key.endswith("learning_rate") or key.startswith("lr_"):
        return "lr"
    return "other"


def _split_of(name: str) -> tuple[str | None, str]:
    """("val", "loss") for "val_loss"; (None, name) when there is no split prefix."""
    key = _normalised_key(name)
    for split in _SPLITS:
        if key.startswith(split + "_"):
            return split, key[len(split) + 1:]
    return None, key


def _series(points: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    rows = [(float(e), np.nan if v is None else float(v)) for e, v in points]
    if not rows:
        return np.empty(0), np.empty(0)
    arr = np.asarray(rows, dtype=float)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]  # epochs may arrive out of order on resume
    epochs, values = arr[:, 0], arr[:, 1]
    values[~np.isfinite(values)] = np.nan  # inf (a diverged loss) would wreck the axis limits
    return epochs, values


def _draw_series(ax, epochs, values, label, color, split, steps: bool = False) -> None:
    n = len(values)
    dense = n > 40
    # A learning rate is constant between scheduler steps: drawn as a staircase.
    ax.plot(epochs, values, color=color, linestyle=_SPLIT_LINESTYLE[split], linewidth=1.7,
            marker=_SPLIT_MARKER[split], markersize=3 if dense else 4.5 if n > 3 else 7,
            markevery=max(1, n // 20) if dense else None, label=label,
            drawstyle="steps-post" if steps else "default")
    if dense:
        # A finite value between two NaNs has no line through it: it gets its own marker.
        finite = np.isfinite(values)
        lone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]
        if lone.any():
            ax.plot(epochs[lone], values[lone], linestyle="none", color=color,
                    marker=_SPLIT_MARKER[split], markersize=4.5)


def _other_panels(series: list, room: int) -> list:
    """Panels for metrics that are neither loss, accuracy nor learning rate.

    One "Other metrics" panel when they share a scale (val_map and val_iou, both 0..1); one
    panel per metric when they do not, so that val_iou is not a flat line beside val_elbo at
    -100. ``room`` is how many panels are left.
    """
    if not series:
        return []
    by_base: dict[str, list] = {}
    for item in series:
        by_base.setdefault(_split_of(item[0])[1], []).append(item)
    scales = []
    for group in by_base.values():
        values = np.abs(np.concatenate([v for _, _, v in group]))
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            scales.append(float(np.median(values)))
    if (len(by_base) == 1 or len(by_base) > room or len(scales) < 2
            or max(scales) / min(scales) <= 10):
        return [("other", _PANEL_TITLES["other"], series)]
    return [("other", base, group) for base, group in by_base.items()]


def _y_scale(ax, panel: str, values: np.ndarray, log_loss: bool | None) -> str:
    """Scale and limits of a panel's y axis; returns what its label adds (" (log scale)")."""
    values = values[np.isfinite(values)]
    if not values.size:
        return ""
    lo, hi = values.min(), values.max()
    if panel == "loss":
        use_log = lo > 0 and (hi / lo > 100 if log_loss is None else bool(log_loss))
        if use_log:
            log_y(ax, lo, hi)
            return " (log scale)"
    elif panel == "lr":
        if lo > 0 and hi / lo > 10:
            log_y(ax, lo, hi)
            return " (log scale)"
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    elif panel == "accuracy" and lo >= 0 and hi <= 1:
        # 0..1 when accuracy is poor; zoomed in (never cutting a value off) when it is high, so
        # that 0.97 and 0.98 can be told apart.
        bottom = 0.0 if lo < 0.5 else math.floor((lo - 0.01) * 10) / 10
        ax.set_ylim(bottom, 1 + 0.03 * (1 - bottom))
    return ""


def learning_curves(history: Mapping[str, Sequence[tuple[int, float]]],
                    title: str = "Learning curves", *, xlabel: str = "epoch",
                    log_loss: bool | None = None) -> Figure:
    """Plot every logged metric against the epoch, grouped into panels.

    Args:
        history: metric name -> list of ``(epoch, value)``. Names ending in ``_loss`` go to the
            loss panel, ``_accuracy`` to the accuracy panel, ``learning_rate`` (or ``lr-*``) to
            the learning-rate panel, the rest to an "Other metrics" panel (or, when their scales
            differ more than tenfold, one panel per metric, titled by its name without the
            split prefix, e.g. "elbo"). A ``train_`` prefix is drawn dashed, ``val_`` solid,
            ``test_`` dotted. ``None``, NaN and inf values are skipped (and counted in the
            legend).
        title: the figure's suptitle.
        xlabel: label of every x axis.
        log_loss: log y-scale for the loss panel; ``None`` chooses it when the (positive) losses
            span more than two orders of magnitude.

    Returns:
        The figure; panels (at most 6) in the order loss, accuracy, learning rate, other. The
        best validation loss (lowest) and accuracy (highest) are starred and named in the legend.
    """
    groups: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {p: [] for p in _PANEL_TITLES}
    for name, points in history.items():
        epochs, values = _series(points)
        if len(epochs):
            groups[_panel_of(name)].append((name, epochs, values))
    # (kind, panel title, series) in the order loss, accuracy, learning rate, other.
    panels = [(kind, _PANEL_TITLES[kind], groups[kind]) for kind in ("loss", "accuracy", "lr")
              if groups[kind]]
    panels += _other_panels(groups["other"], room=6 - len(panels))
    if not panels:
        return empty_figure(title, "no metrics recorded yet", xlabel=xlabel)

    n_panels = len(panels)
    fig = new_figure(*_SIZES[n_panels])
    # Three panels: the third (learning rate or other) spans the bottom, a little lower.
    by_letter = fig.subplot_mosaic(_MOSAICS[n_panels],
                                   height_ratios=[1.35, 1] if n_panels == 3 else None)
    axes = [by_letter[letter] for letter in "ABCDEF"[:n_panels]]

    every_epoch = np.concatenate([e for kind in groups.values() for _, e, _ in kind])
    lo, hi = float(every_epoch.min()), float(every_epoch.max())
    pad = 0.5 if hi == lo else 0.03 * (hi - lo)  # a single epoch still gets a visible axis

    for ax, (panel, panel_title, series) in zip(axes, panels):
        # The panel's own metric first ("loss" in the loss panel), then the others by name: the
        # train/val pair keeps the first colour in every panel, and a companion such as
        # train_eval_loss and train_eval_accuracy shares one colour across panels too.
        def order(item):
            split, base = _split_of(item[0])
            return base != panel, base, _SPLITS.index(split) if split else 9

        series = sorted(series, key=order)
        bases = list(dict.fromkeys(_split_of(name)[1] for name, _, _ in series))
        for name, epochs, values in series:
            split, base = _split_of(name)
            # One metric in the panel: colour by split (train blue, val orange). Several:
            # colour by metric, and the line style still tells train from val.
            color = _SPLIT_COLOR[split] if len(bases) == 1 else f"C{bases.index(base) % 10}"
            label = name
            finite = np.isfinite(values)
            if split == "val" and panel in ("loss", "accuracy") and finite.any():
                best = (np.nanargmin if panel == "loss" else np.nanargmax)(values)
                label += f"  (best {values[best]:.4g} @ {xlabel} {epochs[best]:g})"
                ax.plot(epochs[best], values[best], marker="*", markersize=13, color=color,
                        markeredgecolor="black", markeredgewidth=0.8, linestyle="none",
                        zorder=5)
            skipped = int((~finite).sum())
            if skipped:
                label += f"  [{skipped} NaN/inf skipped]"
            _draw_series(ax, epochs, values, label, color, split, steps=panel == "lr")

        ylabel = _PANEL_YLABELS[panel] if panel_title == _PANEL_TITLES[panel] else panel_title
        ylabel += _y_scale(ax, panel, np.concatenate([v for _, _, v in series]), log_loss)
        style_axes(ax, panel_title, xlabel, ylabel)
        ax.set_xlim(lo - pad, hi + pad)
        # min_n_ticks=1: a single epoch gets the tick "0", not "-0.4 ... 0.4".
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if len(series) <= 3:
            ax.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.85)
        else:  # a long legend would cover the curves: it stands beside the panel
            ax.legend(fontsize=LEGEND_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0, frameon=False)

    add_title(fig, title)
    return fig


# --------------------------------------------------------------------------------------------
# Gradient flow
# --------------------------------------------------------------------------------------------


def _shorten(names: Sequence[str], max_len: int = 24) -> list[str]:
    """Shorter parameter names for tick labels: drop the shared dotted prefix, then the middle."""
    parts = [str(n).split(".") for n in names]
    common = 0
    if len(parts) > 1:
        # "model.encoder.0.weight", "model.encoder.2.weight" -> "0.weight", "2.weight"
        while (all(len(p) > common + 1 for p in parts)
               and len({p[common] for p in parts}) == 1):
            common += 1
    out = []
    for p in parts:
        s = ".".join(p[common:])
        if len(s) > max_len:
            head = max_len // 2 - 3  # the end ("conv1.weight") says more than the start
            s = s[:head] + "…" + s[-(max_len - head - 1):]
        out.append(s)
    return out


def _verdict(ratio: float) -> str:
    """What the first layer's mean norm over the last layer's says about the gradient's flow."""
    if ratio < 1e-2:
        return "much smaller near the input: vanishing gradients"
    if ratio > 1e2:
        return "much larger near the input: exploding gradients"
    if ratio < 0.1:
        return "smaller near the input, within 100x: not vanishing"
    if ratio > 10:
        return "larger near the input, within 100x: not exploding"
    return "similar sizes across depth"


def gradient_flow(steps: Sequence[int], norms: Mapping[str, Sequence[float]],
                  title: str = "Gradient flow", *, cmap: str = "viridis") -> Figure:
    """Show how large each layer's gradient is, input layer first.

    Args:
        steps: the training steps at which norms were recorded, length ``T``.
        norms: layer/parameter name -> ``T`` gradient L2 norms; insertion order must run from
            the input layer to the output layer.
        title: the suptitle.
        cmap: sequential colormap; the input layer gets its light end, the output its dark end.

    Raises:
        ValueError: a layer has not ``T`` norms.

    (a) each layer's mean norm as a bar, with its min..max over training; (b) every layer's norm
    over training, coloured by depth. Both on one log scale. Log scales cannot show 0: zero
    norms are drawn at a floor (a decade below the smallest non-zero norm) and the note under
    the figure says so, and names the ratio of the first layer's mean norm to the last one's.
    NaN/inf norms are skipped and counted.
    """
    names = list(norms.keys())
    x = np.asarray(steps, dtype=float).reshape(-1)
    if not names or x.size == 0:
        return empty_figure(title, "no gradient norms recorded", xlabel="training step")
    g = np.full((len(names), x.size), np.nan)
    for i, name in enumerate(names):
        row = np.asarray(norms[name], dtype=float).reshape(-1)
        if row.size != x.size:
            raise ValueError(f"norms[{name!r}] has {row.size} values for {x.size} steps")
        g[i] = row
    n_layers = len(names)

    finite = np.isfinite(g)
    positive = finite & (g > 0)
    zeros = finite & (g <= 0)
    # A round floor one decade below the smallest real norm keeps zeros visibly at the bottom.
    floor = (10.0 ** (math.floor(math.log10(g[positive].min())) - 1) if positive.any()
             else 1e-12)
    shown = np.where(finite, np.maximum(g, floor), np.nan)

    # Mean over the recorded steps of the raw norms (zeros count as zero), NaN left out.
    counts = finite.sum(axis=1)
    means = np.divide(np.where(finite, g, 0).sum(axis=1), counts,
                      out=np.full(n_layers, np.nan), where=counts > 0)
    means_shown = np.where(np.isfinite(means), np.maximum(means, floor), np.nan)
    low = np.where(counts > 0, np.min(np.where(finite, shown, np.inf), axis=1), np.nan)
    high = np.where(counts > 0, np.max(np.where(finite, shown, -np.inf), axis=1), np.nan)

    # Input layer light, output layer dark; off the palest end so that lines show on white.
    positions = np.linspace(0.88, 0.0, n_layers) if n_layers > 1 else np.array([0.45])
    layer_colors = colormaps[cmap](positions)
    short = _shorten(names)
    # Both panels share one log range, so that a bar and its line sit at the same height.
    y_lo, y_hi = (np.nanmin(shown), np.nanmax(shown)) if finite.any() else (floor, 1.0)

    fig = new_figure(10.5, 8.5)
    ax_bar, ax_line = fig.subplots(2, 1, height_ratios=[1, 1.15])

    # (a) mean norm per layer, with the min..max over training as a whisker.
    idx = np.arange(n_layers)
    bars = ax_bar.bar(idx, means_shown, width=0.8, color=layer_colors, edgecolor="0.2",
                      linewidth=0.5, label="mean over training")
    whiskers = ax_bar.vlines(idx, low, high, color="0.15", linewidth=1.2,
                             label="min–max over training")
    log_y(ax_bar, y_lo, y_hi)
    every = max(1, math.ceil(n_layers / 40))  # at most ~40 tick labels fit
    flat = n_layers * max(map(len, short)) <= 80  # short names fit side by side, unrotated
    ax_bar.set_xticks(idx[::every], short[::every], rotation=0 if flat else 40,
                      ha="center" if flat else "right", rotation_mode="anchor")
    ax_bar.set_xlim(-0.6, n_layers - 0.4)
    style_axes(ax_bar, "(a) Mean gradient norm per layer", "layer (input → output)",
               "mean gradient L2 norm")
    ax_bar.tick_params(axis="x", labelsize=TICK_SIZE - (1 if n_layers > 16 else 0))
    ax_bar.legend(handles=[bars, whiskers], fontsize=LEGEND_SIZE, loc="best", framealpha=0.85)

    # (b) every layer's norm over training.
    for i in range(n_layers):
        ax_line.plot(x, shown[i], color=layer_colors[i], linewidth=1.4,
                     marker="o" if x.size <= 30 else None, markersize=3.5 if x.size > 3 else 7)
    log_y(ax_line, y_lo, y_hi)
    if zeros.any():  # where the zeros are drawn, so that nobody reads them as tiny gradients
        ax_line.axhline(floor, color="0.45", linestyle=":", linewidth=1.2)
        ax_line.annotate("zero (drawn at the floor)", (0.005, floor),
                         xycoords=("axes fraction", "data"), xytext=(2, 3),
                         textcoords="offset points", va="bottom", fontsize=NOTE_SIZE,
                         color=NOTE_COLOR)
    style_axes(ax_line, "(b) Gradient norm during training", "training step", "gradient L2 norm")
    if x.size == 1:  # one recorded step: a visible axis with just that step as its tick
        ax_line.set_xlim(x[0] - 1, x[0] + 1)
        ax_line.set_xticks([x[0]])
    else:
        ax_line.xaxis.set_major_locator(MaxNLocator(integer=True))

    # A discrete colour bar is the legend of (b): which colour is which layer, input at the bottom.
    depth = ScalarMappable(norm=BoundaryNorm(np.arange(n_layers + 1) - 0.5, n_layers),
                           cmap=ListedColormap(layer_colors))
    bar = fig.colorbar(depth, ax=ax_line, fraction=0.04, pad=0.02)
    if n_layers <= 12:
        bar.set_ticks(idx, labels=short)
    else:
        bar.set_ticks([0, n_layers - 1], labels=[short[0], short[-1]])
    bar.ax.tick_params(labelsize=TICK_SIZE - 1, length=0)
    bar.set_label("layer: input (bottom) → output (top)", fontsize=LABEL_SIZE - 1)

    notes = []
    if n_layers > 1 and np.isfinite(means[0]) and np.isfinite(means[-1]) and means[-1] > 0:
        ratio = means[0] / means[-1]
        notes.append(f"mean norm of first layer / last layer = {ratio:.2g} ({_verdict(ratio)})")
    if zeros.any():
        notes.append(f"{int(zeros.sum())} zero norms drawn at the floor {floor:.0e} "
                     "(a log scale cannot show 0)")
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} NaN/inf norms skipped")
    add_note(fig, notes)
    add_title(fig, title)
    return fig
