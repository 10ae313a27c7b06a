"""Figures that show what a network is doing, drawn from plain NumPy data.

The figure callbacks call these functions at the end of training (or every few epochs), save the
result as a PNG next to the run and log it to Weights & Biases. Each function takes NumPy arrays
(never tensors) and returns a :class:`matplotlib.figure.Figure`, so you can also call them from a
notebook. What each figure tells you:

``learning_curves``
    Loss, accuracy, learning rate and any other metric against the epoch. Training curves are
    dashed, validation curves solid. A training loss that keeps falling while the validation loss
    turns upward is over-fitting; two flat, high curves are under-fitting; a jagged or exploding
    curve often means the learning rate is too high. The best validation value is starred.

``confusion_matrix``
    Row ``i`` is the true class, column ``j`` the predicted class, each cell shows how many test
    examples of class ``i`` were predicted as ``j``. Colour is the fraction of the row, so a small
    class is as readable as a big one: a perfect model has a dark diagonal, and a dark
    off-diagonal cell names the pair of classes the model confuses.

``make_grid`` + ``decision_boundary``
    For 2-D inputs (XOR, moons, spirals): the plane is coloured by the class the model predicts
    there, the black lines are the decision boundaries, and the dots are the data. A Perceptron
    can only draw one straight line, an MLP can bend it; that is the whole story of XOR.

``gradient_flow``
    The size (L2 norm) of each layer's gradient. If layers near the input get gradients many
    orders of magnitude smaller than layers near the output, they barely learn: the vanishing
    gradient problem that sigmoid networks had and that ReLU, careful initialisation, batch norm
    and residual connections (ResNet) fixed.

``conv_filters``
    The weights of the first convolution layer, one small image per filter. Trained filters look
    like edge, colour and texture detectors; untrained ones look like noise.

``feature_maps``
    What each layer "sees" for one input image: one small image per channel. Early layers keep
    the picture (edges), deeper layers are smaller and more abstract.

``save_figure``
    Writes a figure to a PNG file: ``render`` (matplotlib draws it, in the calling thread) and
    ``write_png`` (Pillow encodes it, in any thread).

Conventions: every figure is built and saved with :data:`RC` in effect (text without font
hinting: as readable at 100 dpi, a tenth faster to draw). Every figure's main title is its
suptitle (``fig.get_suptitle()``); panels have their own axes titles. Nothing here uses
``matplotlib.pyplot``: there is no global figure registry and no GUI backend, each call builds its
own figure (usable from a worker thread or process), and a figure is freed as soon as the caller
drops it; there is nothing to close.
Bad input shapes raise ``ValueError``; empty input gives a figure that says so. A figure is laid
out once, when it is built (by hand, which costs a fraction of matplotlib's constrained layout:
see "Hand layout" below), so it is ready to save; change it afterwards (new limits, labels) and
the layout does not follow.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PatchCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from matplotlib.transforms import Bbox, offset_copy
from PIL import Image as PILImage

__all__ = [
    "learning_curves",
    "confusion_matrix",
    "make_grid",
    "decision_boundary",
    "gradient_flow",
    "conv_filters",
    "feature_maps",
    "save_figure",
    "render",
    "write_png",
]

# Text is drawn without font hinting. Hinting fits each glyph's outline to the pixel grid, FreeType
# work for every glyph of every label; at 100 dpi the difference is hard to see, and the five
# figures of a LeNet-5 fit render about a tenth faster (1.52 s -> 1.35 s, median of ten). Set
# while a figure is built and while it is saved (text is measured then drawn), and nowhere else:
# the caller's own figures keep the caller's settings.
RC = {"text.hinting": "none"}


def house_style(function: Callable) -> Callable:
    """Run ``function`` with :data:`RC` in effect (a figure builder, or a save)."""

    @functools.wraps(function)
    def styled(*args, **kwargs):
        with rc_context(RC):
            return function(*args, **kwargs)

    return styled


# One set of font sizes for every figure, so that they read as one family at 100 dpi.
SUPTITLE_SIZE = 13
TITLE_SIZE = 11
LABEL_SIZE = 10
TICK_SIZE = 9
LEGEND_SIZE = 8.5
NOTE_SIZE = 8.5
NOTE_COLOR = "0.35"

_TEXT_TO_PATH = TextToPath()  # measures text widths for hand-made layouts


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    # Constrained layout makes room for titles, labels, legends outside axes and colour bars,
    # so that nothing is cut off or overlaps whatever the data. (The figures of this module are
    # laid out by hand, which is faster: see "Hand layout" below. This is for the models' own
    # figures, which are freer in form.)
    return Figure(figsize=(width, height), layout="constrained")


def style_axes(ax, title: str | None = None, xlabel: str | None = None,
                ylabel: str | None = None, grid: bool = True) -> None:
    if title is not None:
        # y=1.0 is where matplotlib puts it anyway when the x ticks are at the bottom; given
        # explicitly, drawing does not measure the tick labels again to check.
        ax.set_title(title, fontsize=TITLE_SIZE, y=1.0)
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    if grid:
        ax.grid(True, which="major", alpha=0.3, linewidth=0.8)
        ax.set_axisbelow(True)


def add_note(fig: Figure, lines: Sequence[str]) -> None:
    """A small grey note under the figure (the layout, by hand or constrained, makes room)."""
    lines = [line for line in lines if line]
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=NOTE_SIZE, color=NOTE_COLOR)


def empty_figure(title: str, message: str, xlabel: str | None = None) -> Figure:
    """A figure that says there is nothing to draw, instead of raising at the end of training."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=LABEL_SIZE,
            color=NOTE_COLOR, transform=ax.transAxes, in_layout=False)
    style_axes(ax, xlabel=xlabel, grid=False)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(title, fontsize=SUPTITLE_SIZE)
    _fit_grid(fig, [ax])
    return fig


def _class_names(names: Sequence[str] | None, k: int) -> list[str]:
    if names is None:
        return [f"class {i}" for i in range(k)]
    names = [str(n) for n in names]
    if len(names) < k:
        # Labels beyond the names given still get a readable name rather than an IndexError.
        names += [f"class {i}" for i in range(len(names), k)]
    return names


def qualitative_colors(k: int) -> np.ndarray:
    """k distinct RGB colours: tab10, then tab20, then evenly spaced hues."""
    if k <= 10:
        return np.array(colormaps["tab10"].colors[:max(k, 1)])
    if k <= 20:
        return np.array(colormaps["tab20"].colors[:k])
    return colormaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3]


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


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float, position: int | None = None) -> str:
    """A log axis's tick label, "10⁻³", in plain text with Unicode superscripts.

    matplotlib's own labels are mathtext ($10^{-3}$): its parser costs ~75 ms to build in each
    process and ~5 ms for each new label, where plain text costs what any tick label costs.
    A value that is not a power of ten is written as it is ("0.5").
    """
    if not (value > 0 and math.isfinite(value)):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return f"{value:g}"
    return "10" + str(round(exponent)).translate(_SUPERSCRIPTS)


def log_y(ax, lo: float, hi: float) -> None:
    """Log y-scale from ``lo`` to ``hi`` (padded) with at least two labelled powers of ten.

    A narrow range is widened to the powers of ten around it; otherwise matplotlib would label
    no tick at all, or fall back to cluttered minor labels such as 1.175×10⁻². Minor ticks are
    left out: the decades are what a reader compares, and each tick costs render time. The
    labels are plain text (:func:`power_of_ten`).
    """
    ax.set_yscale("log")
    llo, lhi = math.log10(lo) - 0.1, math.log10(hi) + 0.1
    if math.floor(lhi) - math.ceil(llo) < 1:  # fewer than two powers of ten inside
        llo, lhi = math.floor(llo), math.ceil(lhi)
    ax.set_ylim(10 ** llo, 10 ** lhi)
    ax.yaxis.set_minor_locator(NullLocator())
    if lhi - llo > 9:  # many decades: label every other one so the labels do not crowd
        ax.yaxis.set_major_locator(LogLocator(numticks=6))
    ax.yaxis.set_major_formatter(FuncFormatter(power_of_ten))


def _text_width_in(text: str, size: float) -> float:
    """Width in inches of ``text`` (widest line) in the default font, without drawing it."""
    prop = FontProperties(size=size)
    return max(_TEXT_TO_PATH.get_text_width_height_descent(line, prop, ismath=False)[0]
               for line in text.split("\n")) / 72


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _upsample(tiles: np.ndarray, min_px: int) -> tuple[np.ndarray, int]:
    """Repeat pixels (nearest neighbour) so a tile is at least ``min_px`` pixels on its long side.

    Tiny tiles (1×1, 3×3 kernels) then get gaps and frames that are thin compared with the tile.
    """
    h, w = tiles.shape[1:3]
    factor = max(1, math.ceil(min_px / max(h, w)))
    if factor > 1:
        tiles = np.repeat(np.repeat(tiles, factor, axis=1), factor, axis=2)
    return tiles, factor


def _mosaic(tiles: np.ndarray, cols: int, gap_x: int, gap_top: int) -> tuple[np.ndarray, list]:
    """Pack ``tiles`` (n, h, w[, 3]) into one image, each tile preceded by a gap of NaN.

    Drawing one image with ``imshow`` is an order of magnitude faster than one axes per tile,
    and looks the same. Returns the mosaic and each tile's top-left (x, y) in pixel units.
    """
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / cols)
    shape = (rows * (h + gap_top), cols * (w + gap_x) - gap_x) + tiles.shape[3:]
    canvas = np.full(shape, np.nan)
    corners = []
    for i in range(n):  # one slice assignment per tile, not per pixel
        r, c = divmod(i, cols)
        y0, x0 = r * (h + gap_top) + gap_top, c * (w + gap_x)
        canvas[y0:y0 + h, x0:x0 + w] = tiles[i]
        corners.append((x0, y0))
    return canvas, corners


def _frames(ax, corners: list, h: int, w: int, color: str = "0.35", lw: float = 0.6) -> None:
    """Thin frames around mosaic tiles (all in one collection: one draw call)."""
    rects = [Rectangle((x0 - 0.5, y0 - 0.5), w, h) for x0, y0 in corners]
    ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=color, linewidth=lw))


def _hide_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------------------------
# Hand layout
# --------------------------------------------------------------------------------------------
# matplotlib's constrained layout measures every tick label of every axes a dozen times or so
# (two iterations; each spine, title and sibling axis measures the ticks again), and drawing
# then measures them again to place each axis label and title: on a small CPU that was half of
# a figure's time. The figures here are simple grids, so they are laid out by hand from one
# measurement of each axes, which also leaves the tick objects and text extents ready for the
# drawing, and their axis labels and titles are pinned where that measurement put them. The
# rules are those of constrained layout: everything that belongs to a panel (tick labels, axis
# labels, title, legend, colour bar) stays clear of the other panels, the suptitle on top, the
# note below, nothing cut off at the edges.

_PAD = 0.08   # inches between the figure's edge and the outermost text
_GAP = 0.15   # inches between the texts of neighbouring panels


def _renderer(fig: Figure):
    """The Agg renderer that will draw ``fig`` at its dpi, so the text measured is the text drawn."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def _reach(ax, renderer, labels: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How far, in inches, what belongs to ``ax`` reaches beyond its box: (left, bottom, right, top).

    Tick and axis labels (with any offset text such as "1e-3"), the title, the legend, child
    axes (a secondary axis) and texts that take part in the layout. Each axis is measured once,
    unlike ``Axes.get_tightbbox``, which measures the ticks again for every spine. Returns the
    reach with and without the title. ``labels`` collects where the axis labels went (see
    :func:`_pin_labels`).
    """
    box = ax.get_window_extent(renderer)
    boxes = [box]
    for child in ax.child_axes:  # a secondary axis follows its parent only when drawn
        locator = child.get_axes_locator()
        child.apply_aspect(locator(child, renderer) if locator else None)
    for owner in (ax, *ax.child_axes):
        for axis in (owner.xaxis, owner.yaxis):
            boxes.append(axis.get_tightbbox(renderer))  # also puts the axis label in place
            # (A child's box may be a line, as a secondary axis's is: left as matplotlib has it.)
            if labels is not None and owner is ax and axis.label.get_text():
                labels[axis] = _label_offset(axis, ax.bbox)
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    boxes += [t.get_window_extent(renderer) for t in ax.texts
              if t.get_in_layout() and t.get_visible() and t.get_text()]
    boxes = [b for b in boxes if b is not None and np.isfinite(b.extents).all()]
    without = Bbox.union(boxes)
    if ax.title.get_text():
        boxes.append(ax.title.get_window_extent(renderer))
    dpi = ax.get_figure(root=True).dpi
    return tuple(np.array([box.x0 - full.x0, box.y0 - full.y0,
                           full.x1 - box.x1, full.y1 - box.y1]) / dpi
                 for full in (Bbox.union(boxes), without))


def _label_offset(axis, box) -> tuple[str, float, float]:
    """Where matplotlib placed ``axis``'s label: (side, pixels from that side of ``box``, the
    other coordinate in axes units). The label's transform mixes pixels and axes units."""
    x, y = axis.label.get_position()
    side = axis.get_label_position()
    edge = {"bottom": box.y0, "top": box.y1, "left": box.x0, "right": box.x1}[side]
    return (side, (y if side in ("bottom", "top") else x) - edge,
            x if side in ("bottom", "top") else y)


def _pin_labels(labels: dict) -> None:
    """Fix each axis label where matplotlib placed it, in the axes' final place.

    Otherwise every draw measures all the tick labels again to place the axis label (and a
    sibling axis's too), though the layout has just done so and nothing has changed since.
    """
    for axis, (side, offset, other) in labels.items():
        box = axis.axes.get_position()  # as drawn (with its aspect), in figure units
        fig = axis.get_figure(root=True)
        if side in ("bottom", "top"):
            size = box.height * fig.bbox.height
            axis.set_label_coords(other, (0.0 if side == "bottom" else 1.0) + offset / size)
        else:
            size = box.width * fig.bbox.width
            axis.set_label_coords((0.0 if side == "left" else 1.0) + offset / size, other)


def _place_figure_texts(fig: Figure, renderer) -> tuple[float, float]:
    """Pin the suptitle to the top and the note (supxlabel) to the bottom of the figure.

    Returns the inches they take at the top and at the bottom, edge padding included.
    """
    height = fig.get_size_inches()[1]
    top = bottom = _PAD
    title, note = fig._suptitle, fig._supxlabel
    if title is not None and title.get_text():
        title.set_y(1 - _PAD / height)
        title.set_verticalalignment("top")
        top += title.get_window_extent(renderer).height / fig.dpi + _GAP / 2
    if note is not None and note.get_text():
        note.set_y(_PAD / height)
        note.set_verticalalignment("bottom")
        bottom += note.get_window_extent(renderer).height / fig.dpi + _GAP / 2
    return top, bottom


def _place(ax, fig: Figure, x0: float, y0: float, w: float, h: float) -> None:
    """Put ``ax`` at (x0, y0) with size (w, h), in inches from the figure's lower left corner."""
    width, height = fig.get_size_inches()
    ax.set_position((x0 / width, y0 / height, w / width, h / height))
    ax.set_in_layout(True)  # set_position takes it out, which would crop it in bbox_inches="tight"


def _tracks(size: float, before: np.ndarray, after: np.ndarray, ratios: Sequence[float],
            gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each grid column (or row) along ``size`` inches.

    Each track keeps ``before`` and ``after`` inches for its panels' texts, ``gap`` between
    tracks; the rest is shared in proportion to ``ratios``.
    """
    ratios = np.asarray(ratios, dtype=float)
    free = size - before.sum() - after.sum() - gap * (len(ratios) - 1)
    lengths = np.maximum(free, 0.1 * size) * ratios / ratios.sum()
    starts = np.cumsum(np.r_[0.0, (before + lengths + after)[:-1] + gap]) + before
    return starts, lengths


def _fit_grid(fig: Figure, axes: Sequence, bars: Mapping | None = None,
              bar_width: float = 0.12) -> None:
    """Lay out ``axes``, which share one GridSpec, so that their texts just fit.

    As constrained layout does: each column keeps room on its left and right for the widest
    texts of the panels on that side (each row, above and below), and the panels share the
    rest in the grid's proportions. ``bars`` maps a panel to the axes of its colour bar, which
    stands on the panel's right, as high as the panel and ``bar_width`` inches wide. Measured
    again after placing if the new sizes changed the ticks.
    """
    renderer = _renderer(fig)
    width, height = fig.get_size_inches()
    top_in, bottom_in = _place_figure_texts(fig, renderer)
    grid = axes[0].get_subplotspec().get_gridspec()
    rows, cols = grid.get_geometry()
    bars = dict(bars or {})
    owned = list(axes) + list(bars.values())
    ticks = _tick_values(owned)
    for _ in range(2):
        left_m, right_m = np.zeros(cols), np.zeros(cols)
        top_m, bottom_m = np.zeros(rows), np.zeros(rows)
        bar_x = {}  # panel -> inches from the panel's right edge to its colour bar
        labels = {}
        for ax in axes:
            l, b, r, t = _reach(ax, renderer, labels)[0]
            if ax in bars:
                bar_l, bar_b, bar_r, bar_t = _reach(bars[ax], renderer, labels)[0]
                bar_x[ax] = r + _GAP + bar_l
                r = bar_x[ax] + bar_width + bar_r
                b, t = max(b, bar_b), max(t, bar_t)
            spec = ax.get_subplotspec()
            left_m[spec.colspan.start] = max(left_m[spec.colspan.start], l)
            right_m[spec.colspan.stop - 1] = max(right_m[spec.colspan.stop - 1], r)
            top_m[spec.rowspan.start] = max(top_m[spec.rowspan.start], t)
            bottom_m[spec.rowspan.stop - 1] = max(bottom_m[spec.rowspan.stop - 1], b)
        x, w = _tracks(width - 2 * _PAD, left_m, right_m, grid.get_width_ratios(), _GAP)
        y, h = _tracks(height - top_in - bottom_in, top_m, bottom_m, grid.get_height_ratios(),
                       _GAP)  # rows run top down
        for ax in axes:
            spec = ax.get_subplotspec()
            c0, c1 = spec.colspan.start, spec.colspan.stop - 1
            r0, r1 = spec.rowspan.start, spec.rowspan.stop - 1
            x0, x1 = _PAD + x[c0], _PAD + x[c1] + w[c1]
            y1, y0 = height - top_in - y[r0], height - top_in - y[r1] - h[r1]
            _place(ax, fig, x0, y0, x1 - x0, y1 - y0)
            if ax in bar_x:
                _place(bars[ax], fig, x1 + bar_x[ax], y0, bar_width, y1 - y0)
        # A panel that changed size may get other ticks (the locators fit as many as there is
        # room for): then it is measured again. Usually the ticks stay, and this is the end.
        before, ticks = ticks, _tick_values(owned)
        if all(np.array_equal(a, b) for a, b in zip(before, ticks)):
            _pin_labels(labels)
            break


def _fit_plot(fig: Figure, ax, aspect: float, cax=None, *, plot_width: float | None = None,
              shrink: float = 0.85, min_size: tuple[float, float] = (0.0, 0.0)) -> None:
    """Lay out one axes whose box has a fixed ``aspect`` (width / height), and its colour bar.

    With ``plot_width`` (inches) the figure is sized to the plot and its texts (at least
    ``min_size``); without, the plot takes the largest size the figure allows. The colour bar
    ``cax`` stands on the right, ``shrink`` times the plot's height, centred on it, 1/20 as
    wide as high. Plot, texts and colour bar are centred in the figure together.
    """
    renderer = _renderer(fig)
    owned = [ax] + ([cax] if cax is not None else [])
    ticks = _tick_values(owned)
    for _ in range(2):
        labels = {}
        (left, bottom, right, top), without_title = _reach(ax, renderer, labels)
        beside = without_title[2]  # the colour bar stands below the title, beside the plot
        bar_left, bar_bottom, bar_right, bar_top = (_reach(cax, renderer, labels)[0]
                                                    if cax is not None else (0.0,) * 4)
        bar_ratio = shrink / 20 if cax is not None else 0.0  # bar width per inch of plot height
        width, height = fig.get_size_inches()
        top_in, bottom_in = _place_figure_texts(fig, renderer)
        titles = max([t.get_window_extent(renderer).width / fig.dpi + 2 * _PAD
                      for t in (fig._suptitle, fig._supxlabel) if t is not None and t.get_text()],
                     default=0.0)

        # Right of the plot: its own texts, or the colour bar beside them with its texts.
        bar_side = beside + _GAP + bar_left + bar_right if cax is not None else 0.0
        if plot_width is not None:  # the figure fits the plot
            plot_h = plot_width / aspect
            # the bar's ends (and their tick labels) may reach above or below the plot's texts
            top = max(top, bar_top - (1 - shrink) / 2 * plot_h)
            bottom = max(bottom, bar_bottom - (1 - shrink) / 2 * plot_h)
            right = max(right, bar_side + bar_ratio * plot_h)
            width = max(2 * _PAD + left + plot_width + right, titles, min_size[0])
            height = max(top_in + top + plot_h + bottom + bottom_in, min_size[1])
            fig.set_size_inches(width, height)
            renderer = _renderer(fig)  # a new size is a new canvas
            top_in, bottom_in = _place_figure_texts(fig, renderer)
        else:  # the plot fits the figure: the largest height whose width fits too
            top = max(top, bar_top)
            bottom = max(bottom, bar_bottom)
            plot_h = min(height - top_in - bottom_in - top - bottom,
                         (width - 2 * _PAD - left - bar_side) / (aspect + bar_ratio),
                         (width - 2 * _PAD - left - right) / aspect)  # a title wider than both
            right = max(right, bar_side + bar_ratio * plot_h)
        plot_w = plot_h * aspect
        x0 = (width - left - plot_w - right) / 2 + left
        y0 = bottom_in + bottom + (height - top_in - bottom_in - top - bottom - plot_h) / 2
        _place(ax, fig, x0, y0, plot_w, plot_h)
        if cax is not None:
            bar_h = shrink * plot_h
            _place(cax, fig, x0 + plot_w + beside + _GAP + bar_left, y0 + (plot_h - bar_h) / 2,
                   bar_h / 20, bar_h)
        before, ticks = ticks, _tick_values(owned)  # as in _fit_grid
        if all(np.array_equal(a, b) for a, b in zip(before, ticks)):
            _pin_labels(labels)
            break


def _tick_values(axes: Sequence) -> list[np.ndarray]:
    """The major tick locations of every axis of ``axes`` (cheap: no tick is drawn)."""
    return [axis.get_majorticklocs() for ax in axes for owner in (ax, *ax.child_axes)
            for axis in (owner.xaxis, owner.yaxis)]


# --------------------------------------------------------------------------------------------
# 1. Learning curves
# --------------------------------------------------------------------------------------------

_SPLITS = ("train", "val", "test")
_SPLIT_LINESTYLE = {"train": "--", "val": "-", "test": ":", None: "-"}
_SPLIT_MARKER = {"train": "o", "val": "s", "test": "^", None: "D"}
_SPLIT_COLOR = {"train": "C0", "val": "C1", "test": "C2", None: "C4"}
_PANEL_TITLES = {"loss": "Loss", "accuracy": "Accuracy", "lr": "Learning rate",
                 "other": "Other metrics"}
_PANEL_YLABELS = {"loss": "loss", "accuracy": "accuracy", "lr": "learning rate",
                  "other": "value"}


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


def _draw_series(ax, epochs, values, label, color, split, many_points: int = 40,
                 steps: bool = False) -> None:
    n = len(values)
    dense = n > many_points
    # A learning rate is constant between scheduler steps: draw it as a staircase.
    ax.plot(epochs, values, color=color, linestyle=_SPLIT_LINESTYLE[split], linewidth=1.7,
            marker=_SPLIT_MARKER[split], markersize=3 if dense else 4.5 if n > 3 else 7,
            markevery=max(1, n // 20) if dense else None, label=label,
            drawstyle="steps-post" if steps else "default")
    if dense:
        # A finite value between two NaNs has no line through it: give it its own marker.
        finite = np.isfinite(values)
        before = np.r_[False, finite[:-1]]
        after = np.r_[finite[1:], False]
        lone = finite & ~before & ~after
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
    if len(by_base) == 1 or len(by_base) > room or len(scales) < 2 \
            or max(scales) / min(scales) <= 10:
        return [("other", _PANEL_TITLES["other"], series)]
    return [("other", base, group) for base, group in by_base.items()]


@house_style
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
        The figure; panels (at most 6) in the order loss, accuracy, learning rate, other.
    """
    groups: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {p: [] for p in _PANEL_TITLES}
    all_epochs = []
    for name, points in history.items():
        epochs, values = _series(points)
        if len(epochs) == 0:
            continue
        groups[_panel_of(name)].append((name, epochs, values))
        all_epochs.append(epochs)
    # (kind, panel title, series) in the order loss, accuracy, learning rate, other.
    panels = [(kind, _PANEL_TITLES[kind], groups[kind]) for kind in ("loss", "accuracy", "lr")
              if groups[kind]]
    panels += _other_panels(groups["other"], room=6 - len(panels))
    if not panels:
        return empty_figure(title, "no metrics recorded yet", xlabel=xlabel)

    # Layout: 1 panel, 2 side by side, 3 as two above one wide, 4 as 2×2, 5-6 as 2×3.
    n_panels = len(panels)
    fig = Figure(figsize={1: (7.5, 4.8), 2: (12, 4.8), 3: (12, 8.5), 4: (12, 8.5),
                          5: (12, 8), 6: (12, 8)}[n_panels])
    layouts = {1: [["A"]], 2: [["A", "B"]], 3: [["A", "B"], ["C", "C"]],
               4: [["A", "B"], ["C", "D"]], 5: [["A", "B", "C"], ["D", "E", "."]],
               6: [["A", "B", "C"], ["D", "E", "F"]]}
    # Three panels: the third (learning rate or other) spans the bottom, a little lower.
    axes_by_letter = fig.subplot_mosaic(
        layouts[n_panels], height_ratios=[1.35, 1] if n_panels == 3 else None)
    axes = [axes_by_letter[letter] for letter in "ABCDEF"[:n_panels]]

    epochs_all = np.concatenate(all_epochs)
    lo, hi = float(epochs_all.min()), float(epochs_all.max())
    pad = 0.5 if hi == lo else 0.03 * (hi - lo)  # a single epoch still gets a visible axis

    for ax, (panel, panel_title, series) in zip(axes, panels):
        # The panel's own metric first ("loss" in the loss panel), then the others by name: the
        # standard train/val pair keeps the first colour in every panel, so that a companion such
        # as train_eval_loss and train_eval_accuracy shares one colour across panels too.
        series = sorted(series, key=lambda s: (_split_of(s[0])[1] != panel,
                                               _split_of(s[0])[1],
                                               _SPLITS.index(_split_of(s[0])[0])
                                               if _split_of(s[0])[0] else 9))
        bases = list(dict.fromkeys(_split_of(name)[1] for name, _, _ in series))
        for name, epochs, values in series:
            split, base = _split_of(name)
            # One metric per panel: colour by split (train blue, val orange). Several metrics:
            # colour by metric, and the line style still tells train from val.
            color = (_SPLIT_COLOR[split] if len(bases) == 1
                     else f"C{bases.index(base) % 10}")
            label = name
            finite = np.isfinite(values)
            if split == "val" and panel in ("loss", "accuracy") and finite.any():
                best = (np.nanargmin if panel == "loss" else np.nanargmax)(values)
                label += f"  (best {_fmt(values[best])} @ {xlabel} {epochs[best]:g})"
                ax.plot(epochs[best], values[best], marker="*", markersize=13, color=color,
                        markeredgecolor="black", markeredgewidth=0.8, linestyle="none",
                        zorder=5)
            skipped = int((~finite).sum())
            if skipped:
                label += f"  [{skipped} NaN/inf skipped]"
            _draw_series(ax, epochs, values, label, color, split, steps=panel == "lr")

        values_all = np.concatenate([v for _, _, v in series])
        finite_values = values_all[np.isfinite(values_all)]
        ylabel = _PANEL_YLABELS[panel] if panel_title == _PANEL_TITLES[panel] else panel_title
        if panel == "loss" and finite_values.size:
            positive = finite_values.min() > 0
            use_log = (positive and finite_values.max() / finite_values.min() > 100
                       if log_loss is None else bool(log_loss) and positive)
            if use_log:
                log_y(ax, finite_values.min(), finite_values.max())
                ylabel += " (log scale)"
        elif panel == "lr" and finite_values.size:
            if finite_values.min() > 0 and finite_values.max() / finite_values.min() > 10:
                log_y(ax, finite_values.min(), finite_values.max())
                ylabel += " (log scale)"
            else:
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        elif panel == "accuracy" and finite_values.size:
            amin, amax = finite_values.min(), finite_values.max()
            if amin >= 0 and amax <= 1:
                # 0..1 when accuracy is poor; zoomed in (but never cutting a value off) when
                # it is high, so 0.97 and 0.98 can be told apart.
                bottom = 0.0 if amin < 0.5 else math.floor((amin - 0.01) * 10) / 10
                ax.set_ylim(bottom, 1 + 0.03 * (1 - bottom))

        style_axes(ax, panel_title, xlabel, ylabel)
        ax.set_xlim(lo - pad, hi + pad)
        # min_n_ticks=1: a single epoch gets the tick "0", not "-0.4 ... 0.4".
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if len(series) <= 3:
            ax.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.85)
        else:  # a long legend would cover the curves: put it beside the panel
            ax.legend(fontsize=LEGEND_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      borderaxespad=0, frameon=False)

    fig.suptitle(title, fontsize=SUPTITLE_SIZE)
    _fit_grid(fig, axes)
    return fig


# --------------------------------------------------------------------------------------------
# 2. Confusion matrix
# --------------------------------------------------------------------------------------------


@house_style
def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str] | None = None,
                     title: str = "Confusion matrix", *, max_annotated: int = 30,
                     cmap: str = "Blues") -> Figure:
    """Draw a confusion matrix, coloured by the fraction of each true class.

    Args:
        matrix: ``(K, K)`` counts; ``matrix[i, j]`` is how many examples of true class ``i``
            were predicted as class ``j``.
        class_names: ``K`` names (default ``0 .. K-1``).
        title: the suptitle, followed by the overall accuracy and the number of examples.
        max_annotated: cells are annotated with their count only up to this many classes.
        cmap: a sequential colormap name.

    A true class with no examples is drawn grey. The right-hand axis gives each row's count.
    With more than 12 classes, cells with a count of 0 are left blank so the errors stand out.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {m.shape}")
    m = np.nan_to_num(m)
    k = m.shape[0]
    if k == 0:
        return empty_figure(f"{title} (no examples)", "no classes to show")
    names = [str(i) for i in range(k)] if class_names is None else _class_names(class_names, k)
    support = m.sum(axis=1)
    total = m.sum()
    # Row-normalise: the colour of cell (i, j) is the share of class i predicted as j.
    frac = np.divide(m, support[:, None], out=np.zeros_like(m), where=support[:, None] > 0)
    empty_rows = np.broadcast_to((support == 0)[:, None], m.shape)
    colors = colormaps[cmap].with_extremes(bad="0.85")

    side = float(np.clip(2.6 + 0.4 * k, 5.0, 10.5))
    fig = Figure(figsize=(side + 1.8, side))
    ax = fig.add_axes((0.1, 0.1, 0.6, 0.8))  # placed by _fit_plot at the end
    image = ax.imshow(np.ma.masked_array(frac, mask=empty_rows), cmap=colors, vmin=0, vmax=1,
                      interpolation="nearest")

    integer_counts = np.allclose(m, np.round(m))
    if k <= max_annotated:
        size = 10 if k <= 8 else 9 if k <= 12 else 8 if k <= 18 else 7 if k <= 24 else 6
        rgba = colors(frac)
        # Perceived brightness of each cell decides black or white text.
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        for i in range(k):  # at most 30×30 text objects
            for j in range(k):
                count = m[i, j]
                if count == 0 and k > 12:
                    continue  # many classes: empty cells stay blank, so the errors stand out
                text = f"{int(round(count))}" if integer_counts else f"{count:.3g}"
                color = "white" if luminance[i, j] < 0.5 and support[i] > 0 else "black"
                # in_layout=False: the text is inside its cell, so the layout need not
                # measure hundreds of strings.
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color,
                        alpha=0.45 if count == 0 else 1.0, in_layout=False)

    if k <= max_annotated:
        slanted = max(map(len, names)) > 3 or k > 12  # long names would overlap side by side
        ax.set_xticks(range(k), names, rotation=45 if slanted else 0,
                      ha="right" if slanted else "center", rotation_mode="anchor")
        ax.set_yticks(range(k), names)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    style_axes(ax, xlabel="predicted class", ylabel="true class", grid=False)

    if k <= max_annotated:
        # Row totals on the right: how many examples each row's fractions are made of. Plain
        # texts beside the rows (a secondary axis draws the same at a fifth of the figure's time).
        beside = offset_copy(ax.get_yaxis_transform(), fig=fig, x=3.5, units="points")
        totals = [ax.text(1.0, i, f"{int(s)}" if integer_counts else f"{s:.3g}",
                          transform=beside, ha="left", va="center_baseline",
                          fontsize=TICK_SIZE - 1, color=NOTE_COLOR, clip_on=False)
                  for i, s in enumerate(support)]
        widest = max(totals, key=lambda t: len(t.get_text()))  # digits are equally wide
        ax.annotate("examples", xy=(1.0, 0.5), xycoords=(widest, ax.transAxes),
                    xytext=(4, 0), textcoords="offset points", rotation=90, ha="left",
                    va="center", fontsize=LABEL_SIZE - 1, color=NOTE_COLOR)

    bar = fig.colorbar(image, cax=fig.add_axes((0.8, 0.1, 0.03, 0.8)))
    bar.set_label("fraction of true class", fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)

    if total > 0:
        accuracy = np.trace(m) / total
        n_text = f"{int(total)}" if integer_counts else f"{total:.4g}"
        fig.suptitle(f"{title} (accuracy {accuracy:.3f}, n={n_text})", fontsize=SUPTITLE_SIZE)
    else:
        fig.suptitle(f"{title} (no examples)", fontsize=SUPTITLE_SIZE)
    _fit_plot(fig, ax, 1.0, bar.ax)
    return fig


# --------------------------------------------------------------------------------------------
# 3. Decision boundary
# --------------------------------------------------------------------------------------------


def make_grid(points: np.ndarray, resolution: int = 200,
              margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A ``(resolution, resolution)`` meshgrid over the points' bounding box plus a margin.

    Args:
        points: ``(N, 2)`` inputs.
        resolution: grid points per axis.
        margin: each side is extended by ``margin`` times the span of that coordinate.

    Returns:
        ``(xx, yy)``, both of shape ``(resolution, resolution)``, ``xx`` varying along columns
        (``np.meshgrid`` ``"xy"`` indexing). Evaluate the model on
        ``np.c_[xx.ravel(), yy.ravel()]`` and reshape its labels to ``xx.shape``.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must have shape (N, 2) with N > 0, got {pts.shape}")
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    pts = pts[np.isfinite(pts).all(axis=1)]
    low, high = pts.min(axis=0), pts.max(axis=0)
    span = high - low
    # All points on one line (or one point): use a unit span so the grid is not degenerate.
    span = np.where(span > 0, span, np.maximum(np.abs(high), 1.0))
    low, high = low - margin * span, high + margin * span
    xs = np.linspace(low[0], high[0], resolution)
    ys = np.linspace(low[1], high[1], resolution)
    return np.meshgrid(xs, ys)


def _blur(a: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both axes (edges repeated), vectorised."""
    p = np.pad(a, ((1, 1), (0, 0)), mode="edge")
    a = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    p = np.pad(a, ((0, 0), (1, 1)), mode="edge")
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4


def _is_regular_grid(xx: np.ndarray, yy: np.ndarray) -> bool:
    """True for an evenly spaced "xy" meshgrid, which ``imshow`` can draw much faster."""
    if xx.ndim != 2 or xx.shape[0] < 2 or xx.shape[1] < 2:
        return False
    x, y = xx[0], yy[:, 0]
    return (np.allclose(xx, x[None, :]) and np.allclose(yy, y[:, None])
            and np.allclose(np.diff(x), x[1] - x[0]) and np.allclose(np.diff(y), y[1] - y[0])
            and x[1] != x[0] and y[1] != y[0])


@house_style
def decision_boundary(xx: np.ndarray, yy: np.ndarray, grid_labels: np.ndarray,
                      points: np.ndarray, labels: np.ndarray,
                      class_names: Sequence[str] | None = None,
                      title: str = "Decision boundary", predicted: np.ndarray | None = None,
                      *, xlabel: str = "x1", ylabel: str = "x2") -> Figure:
    """Colour the plane by predicted class, draw the boundaries and the data.

    Args:
        xx, yy: the grid, e.g. from :func:`make_grid`.
        grid_labels: predicted class (integer) at each grid point, same shape as ``xx``.
        points: ``(N, 2)`` data points.
        labels: ``(N,)`` true class of each point. Classes are ``0 .. K-1``; labels with
            negative values (a Perceptron's -1/+1) are taken in sorted order instead.
        class_names: a name per class, in that order (default "class 0", "class 1", ...).
        title: the suptitle; the accuracy is appended when ``predicted`` is given.
        predicted: ``(N,)`` the model's class for each point; wrong ones get a red ×.
        xlabel, ylabel: axis labels.
    """
    xx, yy = np.asarray(xx, dtype=float), np.asarray(yy, dtype=float)
    x_lo, x_hi, y_lo, y_hi = xx.min(), xx.max(), yy.min(), yy.max()
    ratio = (x_hi - x_lo) / (y_hi - y_lo) if y_hi > y_lo else np.inf
    equal = 1 / 2.5 <= ratio <= 2.5  # similar ranges: equal aspect, distances look right
    # Size the figure to the plot's shape, so an equal-aspect plot has no empty band.
    plot_height = float(np.clip(6.0 / ratio, 3.2, 6.5)) if equal else 5.2
    fig = Figure(figsize=(8.5, plot_height + 1.1))
    ax = fig.add_subplot()
    accuracy = decision_boundary_axes(ax, xx, yy, grid_labels, points, labels, class_names, predicted,
                                      xlabel=xlabel, ylabel=ylabel)
    # Outside the axes, so the legend never hides the data.
    handles = ax.get_legend_handles_labels()[0]
    k = len(handles)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0, fontsize=LEGEND_SIZE, title="true class",
              title_fontsize=LEGEND_SIZE, ncols=2 if k > 16 else 1, frameon=False)
    title_text = title if accuracy is None else f"{title} (accuracy {accuracy:.3f}, n={len(np.asarray(labels).reshape(-1))})"
    fig.suptitle(title_text, fontsize=SUPTITLE_SIZE)
    if equal:  # the plot keeps its shape; the figure was sized for it
        _fit_plot(fig, ax, ratio)
    else:
        _fit_grid(fig, [ax])
    return fig


def decision_boundary_axes(ax, xx: np.ndarray, yy: np.ndarray, grid_labels: np.ndarray,
                           points: np.ndarray, labels: np.ndarray,
                           class_names: Sequence[str] | None = None,
                           predicted: np.ndarray | None = None,
                           *, xlabel: str | None = "x1", ylabel: str | None = "x2",
                           marker_size: float | None = None) -> float | None:
    """The drawing of :func:`decision_boundary` on a given axes, for figures with several panels.

    Regions, boundary, the data and a red × on each misclassified point; every element carries a
    legend label (no legend is drawn). Returns the accuracy when ``predicted`` is given.
    """
    xx, yy = np.asarray(xx, dtype=float), np.asarray(yy, dtype=float)
    grid = np.rint(np.asarray(grid_labels, dtype=float)).astype(int)
    if grid.shape != xx.shape or yy.shape != xx.shape:
        raise ValueError(f"xx {xx.shape}, yy {yy.shape} and grid_labels {grid.shape} must match")
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    y_true = np.asarray(labels).astype(int).reshape(-1)
    if len(y_true) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(y_true)} labels")
    y_pred = None if predicted is None else np.asarray(predicted).astype(int).reshape(-1)
    if y_pred is not None and len(y_pred) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(y_pred)} predictions")

    values = np.unique(np.concatenate([grid.ravel(), y_true,
                                       y_pred if y_pred is not None else []]).astype(int))
    if values.size and values.min() < 0:
        # -1/+1 labels: number the classes in sorted order, and name them by their value.
        grid, y_true = np.searchsorted(values, grid), np.searchsorted(values, y_true)
        y_pred = None if y_pred is None else np.searchsorted(values, y_pred)
        k = max(len(values), len(class_names or ()))
        names = _class_names(class_names or [f"class {v:+d}" for v in values], k)
    else:
        k = int(values.max(initial=0)) + 1
        k = max(k, len(class_names or ()))
        names = _class_names(class_names, k)
    strong = qualitative_colors(k)
    light = 0.35 * strong + 0.65  # the same hue, washed out, so the points stand out on it

    x_lo, x_hi, y_lo, y_hi = xx.min(), xx.max(), yy.min(), yy.max()
    ratio = (x_hi - x_lo) / (y_hi - y_lo) if y_hi > y_lo else np.inf
    region_cmap = ListedColormap(light)
    region_norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)
    if _is_regular_grid(xx, yy):
        dx, dy = xx[0, 1] - xx[0, 0], yy[1, 0] - yy[0, 0]
        ax.imshow(grid, cmap=region_cmap, norm=region_norm, origin="lower", aspect="auto",
                  interpolation="nearest",
                  extent=(xx[0, 0] - dx / 2, xx[0, -1] + dx / 2,
                          yy[0, 0] - dy / 2, yy[-1, 0] + dy / 2))
    else:
        ax.pcolormesh(xx, yy, grid, cmap=region_cmap, norm=region_norm, shading="auto")

    n = len(pts)
    size = marker_size if marker_size is not None else float(np.clip(5000 / max(n, 1), 12, 80))  # big dots for XOR's four points
    present = np.unique(grid)
    for c in range(k):
        sel = y_true == c
        if sel.any() or c in present:
            ax.scatter(pts[sel, 0], pts[sel, 1], s=size, color=strong[c], edgecolors="0.1",
                       linewidths=0.6, zorder=3, label=names[c])
    accuracy = None
    if y_pred is not None and n:
        wrong = y_pred != y_true
        if wrong.any():
            ax.scatter(pts[wrong, 0], pts[wrong, 1], s=size * 2.2, marker="x", color="red",
                       linewidths=1.8, zorder=4, label=f"misclassified ({int(wrong.sum())})")
        accuracy = float(1 - wrong.mean())

    # Boundaries: the 0.5 contour of "is class c" for each class but one. Contouring the label
    # values themselves would draw a false double line where class 0 meets class 2.
    if len(present) > 1:
        for c in present[:-1]:
            # A light blur turns the grid's pixel staircase into a smooth line.
            ax.contour(xx, yy, _blur((grid == c).astype(float)), levels=[0.5],
                       colors="black", linewidths=1.6)
        ax.plot([], [], color="black", linewidth=1.6, label="decision boundary")  # legend entry only

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    if 1 / 2.5 <= ratio <= 2.5:
        ax.set_aspect("equal", adjustable="box")
    style_axes(ax, xlabel=xlabel, ylabel=ylabel, grid=False)
    return accuracy


# --------------------------------------------------------------------------------------------
# 4. Gradient flow
# --------------------------------------------------------------------------------------------


@house_style
def gradient_flow(steps: Sequence[int], norms: Mapping[str, Sequence[float]],
                  title: str = "Gradient flow", *, cmap: str = "viridis") -> Figure:
    """Show how large each layer's gradient is, input layer first.

    Args:
        steps: the training steps at which norms were recorded, length ``T``.
        norms: layer/parameter name -> ``T`` gradient L2 norms; insertion order must run from
            the input layer to the output layer.
        title: the suptitle.
        cmap: sequential colormap; the input layer gets its light end, the output its dark end.

    Log scales cannot show 0: zero norms are drawn at a floor (a tenth of the smallest non-zero
    norm) and a note under the figure says so. NaN/inf norms are skipped.
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

    # Mean over the recorded steps of the raw norms (zeros count as zero), ignoring NaN.
    counts = finite.sum(axis=1)
    sums = np.where(finite, g, 0).sum(axis=1)
    means = np.divide(sums, counts, out=np.full(n_layers, np.nan), where=counts > 0)
    means_shown = np.where(np.isfinite(means), np.maximum(means, floor), np.nan)
    low = np.where(counts > 0, np.nanmin(np.where(finite, shown, np.inf), axis=1), np.nan)
    high = np.where(counts > 0, np.nanmax(np.where(finite, shown, -np.inf), axis=1), np.nan)

    # Input layer light, output layer dark; stay off the palest end so lines show on white.
    positions = np.linspace(0.88, 0.0, n_layers) if n_layers > 1 else np.array([0.45])
    layer_colors = colormaps[cmap](positions)
    short = _shorten(names)

    fig = Figure(figsize=(10.5, 8.5))
    ax_bar, ax_line = fig.subplots(2, 1, height_ratios=[1, 1.15])

    # (a) mean norm per layer, with the min..max over training as a whisker.
    idx = np.arange(n_layers)
    ax_bar.bar(idx, means_shown, width=0.8, color=layer_colors, edgecolor="0.2", linewidth=0.5,
               label="mean over training")
    ax_bar.vlines(idx, low, high, color="0.15", linewidth=1.2, label="min–max over training")
    # Both panels share one log range, so a bar and its line sit at the same height.
    y_lo, y_hi = (np.nanmin(shown), np.nanmax(shown)) if finite.any() else (floor, 1.0)
    log_y(ax_bar, y_lo, y_hi)
    every = max(1, math.ceil(n_layers / 40))  # at most ~40 tick labels fit
    flat = n_layers * max(map(len, short)) <= 80  # short names fit side by side, unrotated
    ax_bar.set_xticks(idx[::every], short[::every], rotation=0 if flat else 40,
                      ha="center" if flat else "right", rotation_mode="anchor",
                      fontsize=TICK_SIZE - (1 if n_layers > 16 else 0))
    ax_bar.set_xlim(-0.6, n_layers - 0.4)
    style_axes(ax_bar, "(a) Mean gradient norm per layer", "layer (input → output)",
                "mean gradient L2 norm")
    ax_bar.tick_params(axis="x", labelsize=TICK_SIZE - (1 if n_layers > 16 else 0))
    ax_bar.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.85)

    # (b) every layer's norm over training.
    many = x.size > 30
    for i in range(n_layers):
        ax_line.plot(x, shown[i], color=layer_colors[i], linewidth=1.4,
                     marker="o" if not many else None, markersize=3.5 if x.size > 3 else 7)
    log_y(ax_line, y_lo, y_hi)
    if zeros.any():  # where the zeros are drawn, so nobody reads them as tiny gradients
        ax_line.axhline(floor, color="0.45", linestyle=":", linewidth=1.2)
        ax_line.annotate("zero (drawn at the floor)", (0.005, floor), xycoords=("axes fraction",
                         "data"), xytext=(2, 3), textcoords="offset points", va="bottom",
                         fontsize=NOTE_SIZE, color=NOTE_COLOR)
    style_axes(ax_line, "(b) Gradient norm during training", "training step",
                "gradient L2 norm")
    if x.size == 1:  # one recorded step: a visible axis with just that step as its tick
        ax_line.set_xlim(x[0] - 1, x[0] + 1)
        ax_line.set_xticks([x[0]])
    else:
        ax_line.xaxis.set_major_locator(MaxNLocator(integer=True))

    # A discrete colour bar is the legend: which colour is which layer, input at the bottom.
    bar = fig.colorbar(ScalarMappable(norm=BoundaryNorm(np.arange(n_layers + 1) - 0.5,
                                                        n_layers),
                                      cmap=ListedColormap(layer_colors)),
                       cax=fig.add_axes((0.9, 0.1, 0.02, 0.4)))  # placed by _fit_grid
    if n_layers <= 12:
        bar.set_ticks(idx, labels=short)
    else:
        bar.set_ticks([0, n_layers - 1], labels=[f"{short[0]}", f"{short[-1]}"])
    bar.ax.tick_params(labelsize=TICK_SIZE - 1, length=0)
    bar.set_label("layer: input (bottom) → output (top)", fontsize=LABEL_SIZE - 1)

    notes = []
    if n_layers > 1 and np.isfinite(means[0]) and np.isfinite(means[-1]) and means[-1] > 0:
        ratio = means[0] / means[-1]
        verdict = ("much smaller near the input: vanishing gradients" if ratio < 1e-2 else
                   "much larger near the input: exploding gradients" if ratio > 1e2 else
                   "smaller near the input, within 100x: not vanishing" if ratio < 0.1 else
                   "larger near the input, within 100x: not exploding" if ratio > 10 else
                   "similar sizes across depth")
        notes.append(f"mean norm of first layer / last layer = {ratio:.2g} ({verdict})")
    if zeros.any():
        notes.append(f"{int(zeros.sum())} zero norms drawn at the floor {floor:.0e} "
                     "(a log scale cannot show 0)")
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} NaN/inf norms skipped")
    add_note(fig, notes)
    fig.suptitle(title, fontsize=SUPTITLE_SIZE)
    _fit_grid(fig, [ax_bar, ax_line], bars={ax_line: bar.ax})
    return fig


# --------------------------------------------------------------------------------------------
# 5. Convolution filters
# --------------------------------------------------------------------------------------------


@house_style
def conv_filters(weight: np.ndarray, title: str = "First-layer filters",
                 max_filters: int = 64) -> Figure:
    """Show convolution kernels as a grid of small images, one per output channel.

    Args:
        weight: ``(out_channels, in_channels, kh, kw)``, as in ``conv.weight``.
        title: the suptitle.
        max_filters: show at most this many filters (the first ones).

    With 3 input channels each filter is an RGB image, min-max scaled on its own (so the
    colour a filter responds to is visible). Otherwise the filter (averaged over input channels
    when there are several) is drawn blue (negative) to red (positive), with one colour scale
    symmetric around 0 shared by all filters.
    """
    w = np.asarray(weight, dtype=float)
    if w.ndim == 3:  # (out, kh, kw): a single input channel
        w = w[:, None]
    if w.ndim != 4 or w.shape[0] == 0:
        raise ValueError(f"weight must have shape (out, in, kh, kw), got {w.shape}")
    total, in_ch, kh, kw = w.shape
    n = int(min(total, max(1, max_filters)))
    w = np.nan_to_num(w[:n])
    rgb = in_ch == 3

    if rgb:
        tiles = w.transpose(0, 2, 3, 1)  # (n, kh, kw, 3)
        lo = tiles.min(axis=(1, 2, 3), keepdims=True)
        hi = tiles.max(axis=(1, 2, 3), keepdims=True)
        tiles = np.divide(tiles - lo, hi - lo, out=np.full_like(tiles, 0.5), where=hi > lo)
        subtitle = "RGB, each filter min–max scaled on its own"
    else:
        tiles = w.mean(axis=1) if in_ch > 1 else w[:, 0]
        subtitle = ("blue < 0 < red, one scale for all"
                    + (f"; mean over {in_ch} input channels" if in_ch > 1 else ""))

    tiles, _ = _upsample(tiles, min_px=24)
    h, wd = tiles.shape[1:3]
    cols = math.ceil(math.sqrt(n))
    # Each tile about 0.5-1.3 inches; the gaps are sized in pixels of that scale so that the
    # "#i" label above a tile always has about 0.2 inches of room.
    tile_in = float(np.clip(7.5 / cols, 0.55, 1.3))
    px_in = tile_in / max(h, wd)
    gap_top = max(1, math.ceil(0.2 / px_in))
    gap_x = max(1, math.ceil(0.08 / px_in))
    mosaic, corners = _mosaic(tiles, cols, gap_x, gap_top)

    fig = Figure(figsize=(6, 4))  # sized to the mosaic by _fit_plot at the end
    ax = fig.add_axes((0.1, 0.1, 0.6, 0.7))
    bar = None
    if rgb:
        alpha = np.isfinite(mosaic[..., :1]).astype(float)  # gaps transparent
        ax.imshow(np.concatenate([np.nan_to_num(mosaic), alpha], axis=-1),
                  interpolation="nearest")
    else:
        vmax = float(np.abs(tiles).max()) or 1.0
        image = ax.imshow(np.ma.masked_invalid(mosaic),
                          cmap=colormaps["RdBu_r"].with_extremes(bad=(1, 1, 1, 0)),
                          norm=Normalize(-vmax, vmax), interpolation="nearest")
        bar = fig.colorbar(image, cax=fig.add_axes((0.8, 0.1, 0.03, 0.7)))
        bar.set_label("weight", fontsize=LABEL_SIZE)
        bar.ax.tick_params(labelsize=TICK_SIZE)
    # Frames matter for the diverging map, whose zero is almost white like the background.
    _frames(ax, corners, h, wd)
    label_size = 7.5 if tile_in < 0.8 else 8.5
    for i, (x0, y0) in enumerate(corners):
        # in_layout=False: the label is inside the axes, in the gap above its tile.
        ax.text(x0 + (wd - 1) / 2, y0 - 0.5 - 0.15 * gap_top, f"#{i}", ha="center",
                va="bottom", fontsize=label_size, color="0.2", in_layout=False)
    _hide_ticks(ax)
    # A margin of half a gap, so the outer frames are not clipped at the axes' edge.
    margin = gap_x / 2
    ax.set_xlim(-0.5 - margin, mosaic.shape[1] - 0.5 + margin)
    ax.set_ylim(mosaic.shape[0] - 0.5 + margin, -0.5)
    shown = f"{n} of {total}" if n < total else f"{n}"
    ax.set_title(f"{shown} filter{'s' if total > 1 else ''}, {kh}×{kw}; {subtitle}",
                 fontsize=TITLE_SIZE - 1, color=NOTE_COLOR, y=1.0)
    fig.suptitle(title, fontsize=SUPTITLE_SIZE)
    plot_w, plot_h = mosaic.shape[1] + 2 * margin, mosaic.shape[0] + margin  # in pixels
    _fit_plot(fig, ax, plot_w / plot_h, None if bar is None else bar.ax,
              plot_width=plot_w * px_in, shrink=min(0.9, max(0.5, 4.0 / (plot_h * px_in + 1.0))),
              min_size=(4.5, 2.8))
    return fig


# --------------------------------------------------------------------------------------------
# 6. Feature maps
# --------------------------------------------------------------------------------------------


def _prepare_input(img: np.ndarray) -> tuple[np.ndarray, dict]:
    """The input image as something imshow draws: (H, W, 3) in [0, 1], or (H, W) grey."""
    if img.shape[0] == 3:
        rgb = img.transpose(1, 2, 0)
        if rgb.min() < 0 or rgb.max() > 1:  # a normalised input: rescale for display only
            rgb = (rgb - rgb.min()) / ((rgb.max() - rgb.min()) or 1.0)
        return rgb, {}
    return img[0], {"cmap": "gray"}


def _scale_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max scale every tile (first axis) to [0, 1] on its own; a constant tile becomes 0."""
    axes = tuple(range(1, tiles.ndim))
    lo = tiles.min(axis=axes, keepdims=True)
    hi = tiles.max(axis=axes, keepdims=True)
    return np.divide(tiles - lo, hi - lo, out=np.zeros_like(tiles), where=hi > lo)


@house_style
def feature_maps(image: np.ndarray, maps: Mapping[str, np.ndarray],
                 title: str = "Feature maps", max_maps: int = 16, *,
                 cmap: str = "viridis", per_row: int = 8) -> Figure:
    """Show the input image and, per layer, the first activation maps it produces.

    Args:
        image: ``(C, H, W)`` with ``C`` 1 or 3 (``(H, W)`` is accepted too).
        maps: layer name -> activations ``(C_l, H_l, W_l)`` for this one image, in order from
            input to output. A leading batch axis of 1 is dropped; a 2-D activation (such as
            a sequence, ``(T, D)``) is drawn as one heat map, a 1-D one (a fully-connected
            layer) as one strip.
        title: the suptitle.
        max_maps: at most this many channels per layer (the first ones).
        cmap: colormap of the maps.
        per_row: maps per row; a layer with more wraps onto further rows.

    Each map is min-max scaled on its own (bright = strongest activation in that channel); an
    all-dark map is a channel that did not fire for this image. Every map is drawn at the same
    size, so a layer's lower resolution shows as bigger pixels.
    """
    img = np.nan_to_num(np.asarray(image, dtype=float))
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (C, H, W) with C in (1, 3), got {img.shape}")
    layers = []
    for name, act in maps.items():
        a = np.nan_to_num(np.asarray(act, dtype=float))
        if a.ndim == 4 and a.shape[0] == 1:  # a batch of one
            a = a[0]
        if a.ndim not in (1, 2, 3) or a.size == 0:
            raise ValueError(f"maps[{name!r}] must be (C, H, W), got shape {a.shape}")
        layers.append((str(name), a))

    # Everything is laid out in one axes, in "tile units": each map is 1 unit wide. One axes
    # and one image per layer draw far faster than an axes per map.
    per_row = max(1, per_row)
    gap, layer_gap = 0.1, 0.45
    widest = max([min(a.shape[0], max_maps, per_row) for _, a in layers if a.ndim == 3],
                 default=per_row)
    full = max(widest * (1 + gap) - gap, 4.0)  # the width of a full row of maps
    blocks = []  # (label, array, imshow kwargs, width, height)

    rgb, kwargs = _prepare_input(img)
    in_w = min(2.0, full)
    blocks.append(("input  " + "×".join(map(str, img.shape)), rgb, kwargs, in_w,
                   in_w * img.shape[1] / img.shape[2]))

    colors = colormaps[cmap].with_extremes(bad=(1, 1, 1, 0))  # NaN gaps are transparent
    map_kwargs = {"cmap": colors, "vmin": 0.0, "vmax": 1.0}
    for name, a in layers:
        shape_text = "×".join(map(str, a.shape))
        if a.ndim == 1:  # one vector: a strip across the row
            blocks.append((f"{name}  {shape_text}", _scale_each(a[None, None])[0], map_kwargs,
                           full, 0.35))
            continue
        if a.ndim == 2:  # one 2-D map (e.g. time × features), as wide as a row
            h = float(np.clip(full * a.shape[0] / a.shape[1], 0.4, 3.0))
            blocks.append((f"{name}  {shape_text}", _scale_each(a[None])[0], map_kwargs,
                           full, h))
            continue
        c = a.shape[0]
        n = min(c, max_maps)
        tiles, _ = _upsample(_scale_each(a[:n]), min_px=20)  # gaps need a few pixels
        th, tw = tiles.shape[1:3]
        gap_px = max(1, round(gap * tw))
        cols = min(n, per_row)
        mosaic, _ = _mosaic(tiles, cols, gap_px, gap_px)
        mosaic = mosaic[gap_px:]  # _mosaic leaves a gap above the first row too
        label = f"{name}  {shape_text}" + (f"\n(first {n} of {c})" if n < c else "")
        # Nominal size in units (the whole-pixel gaps are a hair off 0.1; the extent evens
        # that out, so every full row ends at the same place).
        rows = math.ceil(n / cols)
        blocks.append((label, mosaic, map_kwargs, cols * (1 + gap) - gap,
                       rows * (th / tw + gap) - gap))

    total_h = sum(b[4] for b in blocks) + layer_gap * (len(blocks) - 1)
    unit_in = float(np.clip(7.0 / full, 0.45, 1.3))  # inches per tile unit
    unit_in = min(unit_in, 13.5 / total_h)  # a very deep network shrinks rather than grows

    # Placed by hand, in inches: the axes gets exactly the shape of its content, so maps stay
    # square, and the row labels get exactly their measured width. (Constrained layout
    # misplaces text beside an equal-aspect axes.)
    note = ("each map scaled to its own min–max: bright = strongest activation of that "
            "channel, all dark = a channel silent for this image")
    label_in = max(_text_width_in(b[0], LABEL_SIZE) for b in blocks) + 0.25
    plot_w, plot_h = full * unit_in, total_h * unit_in
    top_in, bottom_in, right_in = 0.55, 0.45, 0.25
    width = max(label_in + plot_w + right_in, _text_width_in(title, SUPTITLE_SIZE) + 0.5,
                _text_width_in(note, NOTE_SIZE) + 0.4)
    height = top_in + plot_h + bottom_in
    fig = Figure(figsize=(width, height))
    # Centre the plot and its labels together in the figure.
    left_in = label_in + (width - label_in - plot_w - right_in) / 2
    ax = fig.add_axes((left_in / width, bottom_in / height, plot_w / width, plot_h / height))
    y = 0.0
    for label, array, kw, block_w, block_h in blocks:
        # extent = (left, right, bottom, top) with the y axis pointing down.
        ax.imshow(array, extent=(0, block_w, y + block_h, y), interpolation="nearest",
                  aspect="auto", **kw)
        ax.text(-0.15, y + block_h / 2, label, ha="right", va="center", fontsize=LABEL_SIZE)
        y += block_h + layer_gap
    ax.set_xlim(0, full)
    ax.set_ylim(total_h, 0)
    _hide_ticks(ax)
    fig.text(0.5, 0.12 / height, note, ha="center", va="bottom", fontsize=NOTE_SIZE,
             color=NOTE_COLOR)
    fig.suptitle(title, fontsize=SUPTITLE_SIZE, y=1 - 0.12 / height, va="top")
    return fig


# --------------------------------------------------------------------------------------------
# 7. Saving
# --------------------------------------------------------------------------------------------


@house_style
def render(fig: Figure, dpi: int = 100) -> PILImage.Image:
    """Draw ``fig`` with Agg at ``dpi`` on a white background and return the pixels (RGBA),
    ready for :func:`write_png`. A figure with a layout engine keeps the layout it was drawn with
    (the engine is detached after laying it out once).

    Draws in the calling thread (matplotlib is not thread-safe); the image is a copy, so
    :func:`write_png` may encode it in another thread while this one goes on with matplotlib.
    """
    # An explicit white face keeps the PNG readable on wandb's dark theme.
    fig.patch.set_facecolor("white")
    fig.set_dpi(dpi)
    # The canvas that laid the figure out (see _renderer), if any: its renderer, at this dpi and
    # size, is reused, and with it matplotlib's cache of the text extents measured for the layout
    # (keyed by renderer). A new canvas would measure every text again, for the same pixels: the
    # five figures of a LeNet-5 fit took 2-20% longer so in probes here.
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    if engine is not None:
        # Lay the figure out once, then draw it once. With a layout engine attached, savefig would
        # first draw the whole figure without rendering, to lay it out, and then draw it again: the
        # same pixels for about a quarter more time.
        engine.execute(fig)
        fig.set_layout_engine("none")
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    image = PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).copy()
    image.info["dpi"] = (dpi, dpi)
    return image


def write_png(image: PILImage.Image, path: str | os.PathLike) -> Path:
    """Write ``image`` (from :func:`render`) as a PNG at ``path``, parent folders created; a path
    without a suffix gets ``.png``. Pure Pillow (it releases the GIL while it encodes): safe in a
    worker thread."""
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    # zlib's fastest level: a tenth bigger than its default, in half the time (a figure is mostly
    # flat colour).
    image.save(out, format="png", compress_level=1, dpi=image.info.get("dpi", (100, 100)))
    return out


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save ``fig`` as a PNG at ``path`` (parent folders created) and return the path:
    :func:`render`, then :func:`write_png`.

    A path without a suffix gets ``.png``. The figure is not registered anywhere, so it is
    freed when the caller drops it; there is no ``close`` to call. A figure with a layout engine
    keeps the layout it was saved with.
    """
    return write_png(render(fig, dpi), path)
