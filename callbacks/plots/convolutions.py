"""What a convolutional network has learned: its first filters, and the maps its layers compute.

Each figure draws many small images as one mosaic per panel (:func:`mosaic`): one image with
blank pixels between the tiles, rather than one panel per tile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from callbacks.plots.style import (
    LABEL_SIZE,
    TICK_SIZE,
    add_note,
    add_title,
    new_image_figure,
)


def mosaic(tiles: np.ndarray, cols: int, gap: int = 1, label_gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lay out ``tiles`` as one image, ``cols`` to a row, with blank pixels between them.

    Args:
        tiles: ``(n, h, w)`` values, or ``(n, h, w, 3)`` RGB colours.
        cols: tiles per row; the image is always ``cols`` tiles wide (a short last row, or
            fewer than ``cols`` tiles, leaves blanks on the right).
        gap: blank pixels between neighbouring tiles.
        label_gap: blank pixels above every row of tiles (the first included), room for labels.

    Returns:
        The image, and the (row, column) of each tile's top-left pixel. Blank pixels are NaN,
        which ``imshow`` leaves transparent; an RGB mosaic gets an alpha channel instead
        (RGBA, 0 in the blanks).
    """
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / cols)
    step_y, step_x = h + max(gap, label_gap), w + gap
    out = np.full((label_gap + rows * step_y - (step_y - h), cols * step_x - gap, *tiles.shape[3:]), np.nan)
    corners = np.array([(label_gap + (i // cols) * step_y, (i % cols) * step_x) for i in range(n)])
    for (y, x), tile in zip(corners, tiles):
        out[y:y + h, x:x + w] = tile
    if out.ndim == 3:  # colours: the blanks transparent through an alpha channel
        blank = np.isnan(out[..., :1])
        out = np.concatenate([np.nan_to_num(out), (~blank).astype(float)], axis=-1)
    return out, corners


def _blocks(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Tiles ``(n, h, w)`` (or ``(n, h, w, 3)``) enlarged to ``(n, height, width)``, each value
    a block of pixels (nearest neighbour)."""
    rows = np.arange(height) * maps.shape[1] // height
    cols = np.arange(width) * maps.shape[2] // width
    return maps[:, rows[:, None], cols]


def _scale_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max scale every tile (first axis) to [0, 1] on its own; a constant tile becomes 0."""
    axes = tuple(range(1, tiles.ndim))
    lo = tiles.min(axis=axes, keepdims=True)
    hi = tiles.max(axis=axes, keepdims=True)
    return np.divide(tiles - lo, hi - lo, out=np.zeros_like(tiles), where=hi > lo)


def _frame(ax, corners: np.ndarray, h: float, w: float) -> None:
    """Thin grey frames round the ``h`` x ``w`` pixel tiles at ``corners`` (row, column), one artist."""
    ax.add_collection(PatchCollection([Rectangle((x - 0.5, y - 0.5), w, h) for y, x in corners],
                                      facecolor="none", edgecolor="0.35", linewidth=0.6,
                                      clip_on=False))  # a frame on the image's edge is drawn whole


def _bare(ax) -> None:
    """An image panel: no ticks, no frame (its label, if any, stays)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


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
    symmetric around 0 shared by all filters. The note under the figure says which. The filters
    form one image, each framed in grey and numbered ``#i`` above.
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
    tile_in = float(np.clip(7.5 / cols, 0.55, 1.3))  # inches per filter
    font = TICK_SIZE - (1 if tile_in < 0.8 else 0)
    # Each weight a block of pixels, so that the blanks can be a tenth of a filter between
    # filters (and above each row, room for "#i") even for a 3x3 kernel.
    block = math.ceil(20 / max(kh, kw))
    th, tw = kh * block, kw * block  # a tile's pixels
    inch = tile_in / max(th, tw)  # inches per pixel of the mosaic
    image, corners = mosaic(_blocks(tiles, th, tw), cols, gap=max(1, round(max(th, tw) / 10)),
                            label_gap=math.ceil((font + 8) / 72 / inch))
    height, width = image.shape[:2]
    fig = new_image_figure(max(width * inch + (0.3 if rgb else 1.3), 5.5), height * inch + 0.9)
    ax = fig.add_subplot()
    drawn = ax.imshow(image, interpolation="nearest", **shade)
    # A grey frame round each filter: a filter of near-zero weights is as white as the blanks.
    _frame(ax, corners, th, tw)
    for i, (y, x) in enumerate(corners):
        ax.annotate(f"#{i}", (x + (tw - 1) / 2, y - 0.5), xytext=(0, 1.5), textcoords="offset points",
                    ha="center", va="bottom", fontsize=font)
    _bare(ax)
    if not rgb:
        bar = fig.colorbar(drawn, ax=ax, shrink=0.8, pad=0.03)
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
    grey = {"cmap": "gray"}
    if img.min() >= 0 and img.max() <= 1:  # intensities: 0 black, 1 white, whatever the image
        grey.update(vmin=0.0, vmax=1.0)
    return img[0], grey


def _shape(a: np.ndarray) -> str:
    return "×".join(map(str, a.shape))


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

    One panel per layer, labelled on the left with the layer's name and shape: its maps side by
    side, ``per_row`` to a row, as one image. Each map is min-max scaled on its own (bright =
    strongest activation in that channel); an all-dark map is a channel that did not fire for
    this image. Every map is drawn at the same size and the maps of all layers line up in
    columns, so a layer's lower resolution shows as bigger pixels.
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

    per_row, max_maps = max(1, per_row), max(1, max_maps)
    # As many columns as the widest row of maps (a full row when there are none to go by).
    cols = max([min(a.shape[0], max_maps, per_row) for _, a in layers if a.ndim == 3],
               default=per_row)
    # Every map becomes a tile of the same width in pixels: a whole number of pixels per value
    # of the largest maps, and a few times more per value of the smaller ones.
    side = max([max(a.shape[1:]) for _, a in layers if a.ndim == 3], default=1)
    tile = side * math.ceil(96 / side)
    gap = tile // 10

    # Each panel's height in tiles (the input's: one tile), then the panels.
    heights = [float(np.clip(img.shape[1] / img.shape[2], 0.25, 4.0))]
    panels = []  # (row label, image, imshow's keywords)
    shade = {"cmap": cmap, "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
    for name, a in layers:
        label = f"{name}  {_shape(a)}"
        if a.ndim == 3:
            n = min(a.shape[0], max_maps)
            if n < a.shape[0]:
                label += f"\n(first {n} of {a.shape[0]})"
            tile_h = round(tile * float(np.clip(a.shape[1] / a.shape[2], 0.25, 4.0)))
            shown, _ = mosaic(_blocks(_scale_each(a[:n]), tile_h, tile), cols, gap)
            heights.append(shown.shape[0] / tile)
            panels.append((label, shown, shade))
        else:  # one strip or heat map across the panel, as high as its shape asks (within reason)
            shown = _scale_each(np.atleast_2d(a)[None])[0]
            heights.append(float(np.clip(cols * a.shape[0] / a.shape[1], 0.5, 3.0)) if a.ndim == 2 else 0.4)
            panels.append((label, shown, {**shade, "aspect": "auto"}))

    # Inches per map: about 7 inches of maps across, shrunk for a deep network so that the
    # figure stays under about 14 inches high; wide enough for the title.
    cell = float(min(np.clip(7.0 / cols, 0.45, 1.1), 12.0 / sum(heights)))
    fig = new_image_figure(max((cols + (cols - 1) * gap / tile) * cell + 2.2, 6.5),
                           sum(heights) * cell + 0.2 * len(panels) + 1.3)
    axes = fig.subplots(len(heights), 1, squeeze=False, height_ratios=heights)[:, 0]
    fig.get_layout_engine().set(h_pad=0.1)  # between layers: more space than between rows of maps

    def row(ax, label: str) -> None:  # a panel: its label on the left, no ticks, no frame
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=LABEL_SIZE, labelpad=10)
        _bare(ax)

    # The input drawn as one more map, at the left of a panel as wide as the others.
    rgb, kwargs = _display_input(img)
    axes[0].imshow(rgb, interpolation="nearest", extent=(-0.5, tile - 0.5, heights[0] * tile - 0.5, -0.5),
                   **kwargs)
    axes[0].set_xlim(-0.5, cols * tile + (cols - 1) * gap - 0.5)
    _frame(axes[0], [(0, 0)], heights[0] * tile, tile)  # a blank input stays visible
    row(axes[0], f"input  {_shape(img)}")
    for ax, (label, shown, kwargs) in zip(axes[1:], panels):
        ax.imshow(shown, **kwargs)
        row(ax, label)

    add_note(fig, ["each map is scaled to its own min–max: bright = the strongest activation of "
                   "that channel,", "all dark = a channel silent for this image"])
    add_title(fig, title)
    return fig
