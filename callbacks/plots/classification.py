"""What a classifier gets right and wrong: the confusion matrix, and its regions in a 2-D plane."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from callbacks.plots.style import (
    LABEL_SIZE,
    LEGEND_SIZE,
    NOTE_COLOR,
    TICK_SIZE,
    add_title,
    empty_figure,
    new_image_figure,
    qualitative_colors,
    style_axes,
)


def _class_names(names: Sequence[str] | None, k: int) -> list[str]:
    """``k`` class names: those given, then "class i" for labels beyond them (no IndexError)."""
    names = [] if names is None else [str(n) for n in names]
    return names + [f"class {i}" for i in range(len(names), k)]


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


def _count(value: float, integers: bool) -> str:
    return f"{int(round(value))}" if integers else f"{value:.3g}"


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str] | None = None,
                     title: str = "Confusion matrix", *, max_annotated: int = 30,
                     cmap: str = "Blues") -> Figure:
    """Draw a confusion matrix, coloured by the fraction of each true class.

    Args:
        matrix: ``(K, K)`` counts; ``matrix[i, j]`` is how many examples of true class ``i``
            were predicted as class ``j``.
        class_names: ``K`` names (default ``0 .. K-1``).
        title: the suptitle, followed by the overall accuracy and the number of examples.
        max_annotated: cells are annotated with their count, and rows with their total, only up
            to this many classes.
        cmap: a sequential colormap name.

    Raises:
        ValueError: ``matrix`` is not square.

    Colour is the row fraction, so a small class reads as well as a big one. A true class with
    no examples is drawn grey. The right-hand axis gives each row's count ("examples"). With
    more than 12 classes, cells with a count of 0 are left blank so that the errors stand out.
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
    integers = np.allclose(m, np.round(m))
    # Row-normalise: the colour of cell (i, j) is the share of class i predicted as j.
    frac = np.divide(m, support[:, None], out=np.zeros_like(m), where=support[:, None] > 0)
    empty_rows = np.broadcast_to((support == 0)[:, None], m.shape)
    colors = colormaps[cmap].with_extremes(bad="0.85")

    side = float(np.clip(2.6 + 0.4 * k, 5.0, 10.5))
    fig = new_image_figure(side + 2.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_array(frac, mask=empty_rows), cmap=colors, vmin=0, vmax=1,
                      interpolation="nearest")
    style_axes(ax, xlabel="predicted class", ylabel="true class", grid=False)

    if k <= max_annotated:
        size = 10 if k <= 8 else 9 if k <= 12 else 8 if k <= 18 else 7 if k <= 24 else 6
        # Perceived brightness of each cell decides black or white text.
        luminance = colors(frac)[..., :3] @ np.array([0.299, 0.587, 0.114])
        for i in range(k):
            for j in range(k):
                if m[i, j] == 0 and k > 12:
                    continue  # many classes: empty cells stay blank, so that the errors stand out
                color = "white" if luminance[i, j] < 0.5 and support[i] > 0 else "black"
                ax.text(j, i, _count(m[i, j], integers), ha="center", va="center", fontsize=size,
                        color=color, alpha=0.45 if m[i, j] == 0 else 1.0)
        slanted = max(map(len, names)) > 3 or k > 12  # long names would overlap side by side
        ax.set_xticks(range(k), names, rotation=45 if slanted else 0,
                      ha="right" if slanted else "center", rotation_mode="anchor")
        ax.set_yticks(range(k), names)
        # Row totals on the right: how many examples each row's fractions are made of.
        totals = ax.secondary_yaxis("right")
        totals.set_yticks(range(k), [_count(s, integers) for s in support])
        totals.tick_params(length=0, labelsize=TICK_SIZE - 1, labelcolor=NOTE_COLOR)
        totals.set_ylabel("examples", fontsize=LABEL_SIZE - 1, color=NOTE_COLOR)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))

    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.03)
    bar.set_label("fraction of true class", fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)

    if total > 0:
        accuracy = np.trace(m) / total
        n_text = f"{int(total)}" if integers else f"{total:.4g}"
        add_title(fig, f"{title} (accuracy {accuracy:.3f}, n={n_text})")
    else:
        add_title(fig, f"{title} (no examples)")
    return fig


# --------------------------------------------------------------------------------------------
# Decision boundary
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

    Raises:
        ValueError: ``points`` is not ``(N, 2)`` with ``N > 0``, or ``resolution`` is below 2.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must have shape (N, 2) with N > 0, got {pts.shape}")
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    pts = pts[np.isfinite(pts).all(axis=1)]
    low, high = pts.min(axis=0), pts.max(axis=0)
    span = high - low
    # All points on one line (or one point): a unit span, so that the grid is not degenerate.
    span = np.where(span > 0, span, np.maximum(np.abs(high), 1.0))
    low, high = low - margin * span, high + margin * span
    xs = np.linspace(low[0], high[0], resolution)
    ys = np.linspace(low[1], high[1], resolution)
    return np.meshgrid(xs, ys)


def _blur(a: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both axes (edges repeated)."""
    p = np.pad(a, ((1, 1), (0, 0)), mode="edge")
    a = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    p = np.pad(a, ((0, 0), (1, 1)), mode="edge")
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4


def _aspect_ratio(xx: np.ndarray, yy: np.ndarray) -> float:
    """Width over height of the plane the grid covers."""
    width, height = xx.max() - xx.min(), yy.max() - yy.min()
    return width / height if height > 0 else np.inf


def _equal_aspect(ratio: float) -> bool:
    """Similar x and y ranges get equal scales, so that distances look right."""
    return 1 / 2.5 <= ratio <= 2.5


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

    Raises:
        ValueError: the grids' shapes differ, or points, labels and predictions differ in number.
    """
    xx, yy = np.asarray(xx, dtype=float), np.asarray(yy, dtype=float)
    ratio = _aspect_ratio(xx, yy)
    # Sized to the plot's shape, so that an equal-aspect plot leaves no wide empty band.
    plot_height = float(np.clip(6.0 / ratio, 3.2, 6.5)) if _equal_aspect(ratio) else 5.2
    fig = new_image_figure(8.5, plot_height + 1.1)
    ax = fig.add_subplot()
    accuracy = decision_boundary_axes(ax, xx, yy, grid_labels, points, labels, class_names,
                                      predicted, xlabel=xlabel, ylabel=ylabel)
    # Outside the axes, so that the legend never hides the data.
    handles = ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
              fontsize=LEGEND_SIZE, title="true class", title_fontsize=LEGEND_SIZE,
              ncols=2 if len(handles) > 16 else 1, frameon=False)
    if accuracy is not None:
        title = f"{title} (accuracy {accuracy:.3f}, n={np.asarray(labels).size})"
    add_title(fig, title)
    return fig


def decision_boundary_axes(ax, xx: np.ndarray, yy: np.ndarray, grid_labels: np.ndarray,
                           points: np.ndarray, labels: np.ndarray,
                           class_names: Sequence[str] | None = None,
                           predicted: np.ndarray | None = None,
                           *, xlabel: str | None = "x1", ylabel: str | None = "x2",
                           marker_size: float | None = None) -> float | None:
    """The drawing of :func:`decision_boundary` on a given axes, for figures with several panels.

    Regions, boundaries, the data and a red × on each misclassified point; every element carries
    a legend label (no legend is drawn). Returns the accuracy when ``predicted`` is given.
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
        k = max(int(values.max(initial=0)) + 1, len(class_names or ()))
        names = _class_names(class_names, k)
    strong = qualitative_colors(k)
    light = 0.35 * strong + 0.65  # the same hue, washed out, so that the points stand out on it

    # The regions: each grid cell coloured by its predicted class.
    ax.pcolormesh(xx, yy, grid, cmap=ListedColormap(light),
                  norm=BoundaryNorm(np.arange(k + 1) - 0.5, k), shading="auto")

    n = len(pts)
    # Big dots for XOR's four points, small ones for a thousand.
    size = marker_size if marker_size is not None else float(np.clip(5000 / max(n, 1), 12, 80))
    present = np.unique(grid)
    for c in range(k):
        chosen = y_true == c
        if chosen.any() or c in present:
            ax.scatter(pts[chosen, 0], pts[chosen, 1], s=size, color=strong[c],
                       edgecolors="0.1", linewidths=0.6, zorder=3, label=names[c])
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
            ax.contour(xx, yy, _blur((grid == c).astype(float)), levels=[0.5], colors="black",
                       linewidths=1.6)
        ax.plot([], [], color="black", linewidth=1.6, label="decision boundary")  # legend entry

    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    if _equal_aspect(_aspect_ratio(xx, yy)):
        ax.set_aspect("equal", adjustable="box")
    style_axes(ax, xlabel=xlabel, ylabel=ylabel, grid=False)
    return accuracy
