"""The look shared by every figure: font sizes, a constrained-layout figure, axes style, notes, saving.

The model files' own figures use these too (``plots.new_figure``, ``plots.style_axes``, ...), so
that a run's figures read as one family.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

# One set of font sizes for every figure, readable at 100 dpi.
SUPTITLE_SIZE = 13
TITLE_SIZE = 11
LABEL_SIZE = 10
TICK_SIZE = 9
LEGEND_SIZE = 8.5
NOTE_SIZE = 8.5
NOTE_COLOR = "0.35"


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches laid out by matplotlib's constrained layout.

    Constrained layout makes room for titles, axis labels, legends outside axes and colour bars
    each time the figure is drawn, so nothing is cut off or overlaps whatever the data. No pyplot:
    the figure is registered nowhere and freed when the caller drops it.
    """
    return Figure(figsize=(width, height), layout="constrained")


def new_image_figure(width: float, height: float) -> Figure:
    """A figure for panels of fixed aspect (images, a plane with equal scales), ``width`` x
    ``height`` inches.

    Constrained layout in its "compressed" form: it measures each panel where its aspect puts
    it, so that labels and legends beside a shrunken panel are neither cut off nor far away, and
    it closes the gaps that the fixed aspects leave between panels.
    """
    return Figure(figsize=(width, height), layout="compressed")


def style_axes(ax, title: str | None = None, xlabel: str | None = None,
               ylabel: str | None = None, grid: bool = True) -> None:
    """The house sizes for a panel's title, axis labels and ticks, and a light grid."""
    if title is not None:
        ax.set_title(title, fontsize=TITLE_SIZE)
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    if grid:
        ax.grid(True, which="major", alpha=0.3, linewidth=0.8)
        ax.set_axisbelow(True)


def add_title(fig: Figure, title: str) -> None:
    """The figure's main title (its suptitle); a title wider than the figure wraps."""
    fig.suptitle(title, fontsize=SUPTITLE_SIZE, wrap=True)


def add_note(fig: Figure, lines: Sequence[str]) -> None:
    """A small grey note under the figure (its supxlabel), one line per entry, empty entries
    dropped; a line wider than the figure wraps."""
    lines = [line for line in lines if line]
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=NOTE_SIZE, color=NOTE_COLOR, wrap=True)


def log_y(ax, lo: float, hi: float) -> None:
    """Log y-scale from ``lo`` to ``hi`` (both > 0), padded, with at least two labelled decades.

    A range narrower than that is widened to the powers of ten around it: otherwise matplotlib
    labels no decade at all and falls back to labels on the minor ticks, hard to compare.
    """
    ax.set_yscale("log")
    low, high = math.log10(lo) - 0.1, math.log10(hi) + 0.1
    if math.floor(high) - math.ceil(low) < 1:  # fewer than two powers of ten inside
        low, high = math.floor(low), math.ceil(high)
    ax.set_ylim(10 ** low, 10 ** high)


def empty_figure(title: str, message: str, xlabel: str | None = None) -> Figure:
    """A figure that says there is nothing to draw, instead of raising at the end of training."""
    fig = new_figure(6, 3.5)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=LABEL_SIZE, color=NOTE_COLOR,
            transform=ax.transAxes)
    style_axes(ax, xlabel=xlabel, grid=False)
    ax.set_xticks([])
    ax.set_yticks([])
    add_title(fig, title)
    return fig


def qualitative_colors(k: int) -> np.ndarray:
    """``k`` distinct RGB colours: tab10, then tab20, then evenly spaced hues."""
    if k <= 10:
        return np.array(colormaps["tab10"].colors[:max(k, 1)])
    if k <= 20:
        return np.array(colormaps["tab20"].colors[:k])
    return colormaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save ``fig`` as a PNG at ``path`` and return the path written.

    Parent folders are created and a path without a suffix gets ``.png``. The background is white
    (readable on wandb's dark theme too).
    """
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi, facecolor="white")
    return out
