"""The figure of the MLP (:mod:`ai_scratch.foundations.mlp`): what its hidden units learned.

:class:`HiddenUnits` (``hidden_units.png``) draws, for a network with two inputs, each first-layer
hidden unit's line in the input plane and, when the last hidden layer has two units, the points as
that layer sees them: the paper's "internal representations". :func:`hidden_units_figure` draws the
same from a learner and labelled points, without a Trainer. :meth:`MLP.figures
<ai_scratch.foundations.mlp.MLP.figures>` adds the callback for the toy planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
from matplotlib.figure import Figure

from ai_scratch.foundations.mlp import MLPLearner, sigmoid
from callbacks import plots
from callbacks.figures import FigureCallback


class HiddenUnits(FigureCallback):
    """What the hidden units learned, for a network with two inputs.

    Two panels. (a) The input plane with the validation points and, for each unit of the first
    hidden layer, its line ``w_1j x1 + w_2j x2 + b_j = 0`` (where its total input, eq. 1, is
    zero), with a tick on the side where the unit is on. The output unit can only combine these
    half-planes. (b) When the last hidden layer has two units, the same points as that layer
    sees them (its outputs y_1, y_2): the paper's "internal representation", where a solved
    XOR has become linearly separable and the output unit's line separates it. When the points
    fall on a few places only (the four XOR corners), each place is labelled with the output y
    there, and a place where points of both classes land gets a red ring: a net stuck in a local
    minimum sends two points of different classes to the same place, and gives both y = 1/2.

    Args:
        max_lines: draw at most this many hidden-unit lines.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "hidden_units"

    def __init__(self, max_lines: int = 12, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if max_lines < 1:
            raise ValueError(f"HiddenUnits: max_lines must be at least 1, got {max_lines}")
        self.max_lines = max_lines

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        learner = getattr(pl_module, "learner", None)
        if not isinstance(learner, MLPLearner) or learner.sizes[0] != 2 or learner.num_layers < 2:
            return None
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "arrays"):
            return None
        points, labels = datamodule.arrays("val")
        names = list(getattr(datamodule, "class_names", None) or ["class 0", "class 1"])
        return hidden_units_figure(learner, points, labels, names, title=f"Hidden units: {type(pl_module).__name__}", max_lines=self.max_lines)


def hidden_units_figure(
    learner: MLPLearner, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str, max_lines: int = 12
) -> Figure:
    """The figure of :class:`HiddenUnits`, from a learner and labelled 2-D points."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    two_panels = learner.sizes[-2] == 2  # the last hidden layer is a plane too
    fig = plots.new_figure(12.5 if two_panels else 7.5, 6.5)
    axes = fig.subplots(1, 2 if two_panels else 1, squeeze=False)[0]
    colors = plots.qualitative_colors(max(2, len(class_names)))  # the decision boundary's colours

    # (a) input plane: the decision boundary's regions and points, and each hidden unit's line
    ax = axes[0]
    xx, yy = plots.make_grid(points, resolution=150, margin=0.15)
    regions = learner.classes(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
    accuracy = plots.decision_boundary_axes(ax, xx, yy, regions, points, labels, class_names, learner.classes(points), marker_size=28)
    weight, bias = learner.weights[0].astype(np.float64), learner.biases[0].astype(np.float64)
    units = min(weight.shape[1], max_lines)
    (x_lo, x_hi), (y_lo, y_hi) = (xx.min(), xx.max()), (yy.min(), yy.max())
    line_colors = plots.qualitative_colors(len(colors) + units)[len(colors):]  # not the classes' colours
    outside = []
    for j in range(units):
        segment = _line_in_box(weight[:, j], bias[j], (x_lo, x_hi, y_lo, y_hi))
        if segment is None:
            outside.append(f"h{j + 1}")
            continue
        (xa, ya), (xb, yb) = segment
        ax.plot([xa, xb], [ya, yb], color=line_colors[j], linewidth=2.0, zorder=4, label=f"unit h{j + 1}: x_j = 0")
        # a short tick from the middle of the line towards the side where the unit is on
        middle = np.array([(xa + xb) / 2, (ya + yb) / 2])
        normal = weight[:, j] / (np.linalg.norm(weight[:, j]) or 1.0)
        tip = middle + 0.08 * max(x_hi - x_lo, y_hi - y_lo) * normal
        ax.annotate("", xy=tuple(tip), xytext=tuple(middle), arrowprops={"arrowstyle": "->", "color": line_colors[j], "lw": 1.5}, zorder=4)
    ax.set_aspect("equal", adjustable="box")
    plots.style_axes(ax, "(a) Input plane: each first-layer hidden unit's line\n(arrow: the side where the unit is on)", "x1", "x2", grid=False)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(0.0, -0.1), ncols=3, frameon=False)

    notes = []
    if weight.shape[1] > units:
        notes.append(f"{units} of {weight.shape[1]} first-layer units drawn")
    if outside:
        notes.append(f"the line of {', '.join(outside)} lies outside the view: that unit is on (or off) for every point")

    # (b) the last hidden layer's outputs, and the output unit's line there
    if two_panels:
        ax = axes[1]
        hidden = learner.hidden_outputs(points)[-1].astype(np.float64)
        activation = learner.activations[-1]
        jitter = np.random.default_rng(0).normal(0.0, 0.01, size=hidden.shape)  # coincident points stay visible
        for c, name in enumerate(class_names):
            chosen = labels == c
            ax.scatter(hidden[chosen, 0] + jitter[chosen, 0], hidden[chosen, 1] + jitter[chosen, 1], s=28, color=colors[c], edgecolors="0.1", linewidths=0.5, zorder=3, label=name)
        low, high = (0.0, 1.0) if activation == "sigmoid" else (-1.0, 1.0) if activation == "tanh" else (0.0, max(1.0, float(hidden.max())))
        pad = 0.08 * (high - low)
        box = (low - pad, high + pad, low - pad, high + pad)
        if learner.num_classes == 2:
            segment = _line_in_box(learner.weights[-1][:, 0].astype(np.float64), float(learner.biases[-1][0]), box)
            if segment is not None:
                (xa, ya), (xb, yb) = segment
                ax.plot([xa, xb], [ya, yb], color="black", linewidth=2.0, label="output unit: x = 0")
            else:
                notes.append("the output unit's line lies outside the hidden units' range: it gives one class to every point")
            # Few distinct places (the four XOR corners): write the output y beside each, and ring a
            # place where points of both classes land: no output line can separate them there.
            groups = _places(hidden, tolerance=0.04 * (high - low))
            if len(groups) <= 8:
                outputs = sigmoid(learner.scores(points).astype(np.float64))
                mixed = False
                for members in groups:
                    centre = hidden[members].mean(axis=0)
                    both = len(np.unique(labels[members])) > 1
                    mixed |= both
                    if both:
                        ax.scatter([centre[0]], [centre[1]], s=700, facecolors="none", edgecolors="crimson", linewidths=2.0, zorder=4)
                    text = f"y = {outputs[members].mean():.2f}" + (f"\n({len(members)} points, both classes)" if both else "")
                    right, top = centre > (low + high) / 2  # write towards the middle, inside the box
                    ax.annotate(text, tuple(centre), xytext=(-18 if right else 18, -18 if top else 18), textcoords="offset points",
                                fontsize=plots.LEGEND_SIZE, color="crimson" if both else "0.15", va="top" if top else "bottom",
                                ha="right" if right else "left", zorder=5,
                                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
                if mixed:
                    notes.append("(b) red ring: points of both classes sent to the same place by the hidden layer, so the output "
                                 "unit gives them the same y: gradient descent is stuck in a local minimum")
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
        ax.set_aspect("equal", adjustable="box")
        plots.style_axes(ax, f"(b) What the output unit sees:\nthe last hidden layer's outputs ({activation})",
                         "y of hidden unit 1", "y of hidden unit 2")
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(0.0, -0.1), ncols=3, frameon=False)

    plots.add_note(fig, notes)
    accuracy_text = f"validation accuracy {accuracy:.3f}" if accuracy is not None else "no validation points"
    fig.suptitle(f"{title} ({accuracy_text}, n={len(labels)})", fontsize=plots.SUPTITLE_SIZE)
    return fig


def _places(points: np.ndarray, tolerance: float) -> list[np.ndarray]:
    """Group points that lie within ``tolerance`` of a group's first point: the distinct places."""
    groups: list[list[int]] = []
    for i, point in enumerate(points):
        for members in groups:
            if np.abs(points[members[0]] - point).max() <= tolerance:
                members.append(i)
                break
        else:
            groups.append([i])
        if len(groups) > 64:  # many places: the caller only labels a handful
            break
    return [np.array(members) for members in groups]


def _line_in_box(w: np.ndarray, b: float, box: tuple[float, float, float, float]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The segment of the line ``w . p + b = 0`` inside ``box = (x_lo, x_hi, y_lo, y_hi)``, or None."""
    x_lo, x_hi, y_lo, y_hi = box
    hits = []
    if abs(w[1]) > 1e-12:
        for x in (x_lo, x_hi):
            y = -(b + w[0] * x) / w[1]
            if y_lo <= y <= y_hi:
                hits.append((x, y))
    if abs(w[0]) > 1e-12:
        for y in (y_lo, y_hi):
            x = -(b + w[1] * y) / w[0]
            if x_lo <= x <= x_hi:
                hits.append((x, y))
    hits = list(dict.fromkeys((round(x, 12), round(y, 12)) for x, y in hits))
    return (hits[0], hits[1]) if len(hits) >= 2 else None


