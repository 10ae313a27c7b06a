"""What a convolutional network has learned: its first filters, and the maps its layers compute."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from callbacks.plots.style import (
    LABEL_SIZE,
    TICK_SIZE,
    add_note,
    add_title,
    new_image_figure,
)


def _scale_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max scale every tile (first axis) to [0, 1] on its own; a constant tile becomes 0."""
    axes = tuple(range(1, tiles.ndim))
    lo = tiles.min(axis=axes, keepdims=True)
    hi = tiles.max(axis=axes, keepdims=True)
    return np.divide(tiles - lo, hi - lo, out=np.zeros_like(tiles), where=hi > lo)


def _bare(ax) -> None:
    """An image panel: no ticks; thin grey spines frame the image."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.35")
        spine.set_linewidth(0.6)


# --------------------------------------------------------------------------------------------
# Convolution filters
# --------------------------------------------------------------------------------------------


def conv_filters(weight: np.ndarray, title: str = "First-layer filters",
                 max_filters: int = 64) -> Figure:
    """Show convolution kernels as a grid of small images, one per output channel.

    Args:
        weight: ``(out_channels, in_channels, kh, kw)``, as in ``conv.weight``
            (``(out_channels, kh, kw)`` for one input channel).
        title: the suptitle.
        max_filters: show at most this many filters (the first ones).

    Raises:
        ValueError: ``weight`` is not 4-D (or 3-D), or has no filter.

    With 3 input channels each filter is an RGB image, min-max scaled on its own (so that the
    colour a filter responds to is visible). Otherwise the filter (averaged over input channels
    when there are several) is drawn blue (negative) to red (positive), with one colour scale
    symmetric around 0 shared by all filters. The note under the figure says which.
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
        tiles = _scale_each(w).transpose(0, 2, 3, 1)  # (n, kh, kw, 3)
        shade = {}
        how = "RGB, each filter min–max scaled on its own"
    else:
        tiles = w.mean(axis=1)
        vmax = float(np.abs(tiles).max()) or 1.0
        shade = {"cmap": "RdBu_r", "norm": Normalize(-vmax, vmax)}  # white is 0
        how = "blue < 0 < red, one colour scale for all filters"
        if in_ch > 1:
            how += f"; each the mean over its {in_ch} input channels"

    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tile_in = float(np.clip(7.5 / cols, 0.55, 1.3))  # inches per filter
    # Each filter with its "#i" above it, a colour bar on the right, the title and the note.
    fig = new_image_figure(max(cols * (tile_in + 0.1) + (0.3 if rgb else 1.3), 5.5),
                           rows * (tile_in + 0.3) + 0.8)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.remove()  # the grid's unused places
            continue
        image = ax.imshow(tiles[i], interpolation="nearest", **shade)
        ax.set_title(f"#{i}", fontsize=TICK_SIZE - (1 if tile_in < 0.8 else 0), pad=2)
        _bare(ax)
    if not rgb:
        bar = fig.colorbar(image, ax=axes[:n].tolist(), shrink=0.8)
        bar.set_label("weight", fontsize=LABEL_SIZE)
        bar.ax.tick_params(labelsize=TICK_SIZE)

    shown = f"the first {n} of {total} filters" if n < total else f"{n} filter{'s' if n > 1 else ''}"
    add_note(fig, [f"{shown}, {kh}×{kw}; {how}"])
    add_title(fig, title)
    return fig


# --------------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------------


def _display_input(img: np.ndarray) -> tuple[np.ndarray, dict]:
    """The input image as imshow draws it: (H, W, 3) in [0, 1], or (H, W) grey."""
    if img.shape[0] == 3:
        rgb = img.transpose(1, 2, 0)
        if rgb.min() < 0 or rgb.max() > 1:  # a normalised input: rescaled for display only
            rgb = (rgb - rgb.min()) / ((rgb.max() - rgb.min()) or 1.0)
        return rgb, {}
    return img[0], {"cmap": "gray"}


def _shape(a: np.ndarray) -> str:
    return "×".join(map(str, a.shape))


def _row_label(ax, text: str) -> None:
    """The name of the layer a row of maps belongs to, horizontal, left of the row."""
    ax.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=LABEL_SIZE, labelpad=10)


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

    Raises:
        ValueError: ``image`` is not ``(C, H, W)`` with ``C`` 1 or 3, or a map is empty or
            has more than 3 dimensions.

    One row of panels per layer (more when it wraps), labelled on the left with the layer's
    name and shape. Each map is min-max scaled on its own (bright = strongest activation in
    that channel); an all-dark map is a channel that did not fire for this image. Every map is
    drawn at the same size, so a layer's lower resolution shows as bigger pixels.
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

    # One grid for the whole figure, so that the maps of every layer line up in columns. Each
    # layer takes a block of rows: ceil(maps / per_row) rows of maps, or one row for a strip
    # (1-D) or a heat map (2-D) across all columns. Thin empty rows separate the layers.
    per_row = max(1, per_row)
    # As many columns as the widest row of maps (a full row when there are none to go by).
    cols = max([min(a.shape[0], max_maps, per_row) for _, a in layers if a.ndim == 3],
               default=per_row)
    heights = [float(np.clip(img.shape[1] / img.shape[2], 0.25, 4.0))]  # the input, as a map
    blocks = []  # (first grid row, row label, activations)
    for name, a in layers:
        heights.append(0.3)  # the gap above the layer
        label = f"{name}  {_shape(a)}"
        if a.ndim == 3:
            n = min(a.shape[0], max_maps)
            if n < a.shape[0]:
                label += f"\n(first {n} of {a.shape[0]})"
            rows = [float(np.clip(a.shape[1] / a.shape[2], 0.25, 4.0))] * math.ceil(n / per_row)
        elif a.ndim == 2:  # as wide as the grid, as high as its shape asks (within reason)
            rows = [float(np.clip(cols * a.shape[0] / a.shape[1], 0.5, 3.0))]
        else:
            rows = [0.4]
        blocks.append((len(heights), label, a))
        heights += rows

    # Inches per map: about 7 inches of maps across, shrunk for a deep network so that the
    # figure stays under about 14 inches high; wide enough for the title.
    cell = float(min(np.clip(7.0 / cols, 0.45, 1.1), 12.0 / sum(heights)))
    fig = new_image_figure(max(cols * cell + 2.2, 6.5), sum(heights) * cell + 1.3)
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)

    rgb, kwargs = _display_input(img)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(rgb, interpolation="nearest", **kwargs)
    _row_label(ax, f"input  {_shape(img)}")
    _bare(ax)

    shade = {"cmap": cmap, "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
    for first, label, a in blocks:
        if a.ndim < 3:  # one strip or heat map across the row
            ax = fig.add_subplot(grid[first, :])
            ax.imshow(_scale_each(np.atleast_2d(a)[None])[0], aspect="auto", **shade)
            _row_label(ax, label)
            _bare(ax)
            continue
        for i, channel in enumerate(_scale_each(a[:max_maps])):
            ax = fig.add_subplot(grid[first + i // per_row, i % per_row])
            ax.imshow(channel, **shade)
            if i == 0:
                _row_label(ax, label)
            _bare(ax)

    add_note(fig, ["each map is scaled to its own min–max: bright = the strongest activation of "
                   "that channel,", "all dark = a channel silent for this image"])
    add_title(fig, title)
    return fig
