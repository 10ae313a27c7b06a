"""Tests for callbacks/plots/: each figure says what it shows, fits in its frame, and saves as PNG.

Inputs are realistic synthetic data (what a short training run would log). Checks on titles,
labels and legends read the figure objects, which is what a student reads on the image; the
layout is checked once per figure on a real Agg drawing.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from callbacks.plots import (
    confusion_matrix,
    conv_filters,
    decision_boundary,
    decision_boundary_axes,
    feature_maps,
    gradient_flow,
    learning_curves,
    log_y,
    make_grid,
    new_figure,
    save_figure,
)
from callbacks.plots.convolutions import mosaic

PACKAGE = Path(__file__).resolve().parents[1] / "callbacks" / "plots"


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def panel_titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


# --------------------------------------------------------------------------------------------
# Realistic inputs
# --------------------------------------------------------------------------------------------


def history_of_a_run(epochs: int = 20) -> dict[str, list[tuple[int, float]]]:
    rng = np.random.default_rng(0)
    ep = np.arange(epochs)
    train_loss = 2.3 * np.exp(-ep / 5) + 0.05 + 0.02 * rng.random(epochs)
    val_loss = 2.3 * np.exp(-ep / 5) + 0.2 + 0.003 * np.clip(ep - 8, 0, None) ** 2
    train_acc = 1 - 0.9 * np.exp(-ep / 4)
    val_acc = train_acc - 0.04
    lr = 0.1 * 0.1 ** (ep // 8)  # step decay: spans 100x, so a log scale
    return {
        "train_loss": list(zip(ep, train_loss)),
        "val_loss": list(zip(ep, val_loss)),
        "train_accuracy": list(zip(ep, train_acc)),
        "val_accuracy": list(zip(ep, val_acc)),
        "learning_rate": list(zip(ep, lr)),
        "val_elbo": list(zip(ep, -120 + 40 * np.exp(-ep / 5))),
    }


CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_confusion() -> np.ndarray:
    rng = np.random.default_rng(2)
    matrix = np.diag(rng.integers(80, 120, 10)) + rng.integers(0, 6, (10, 10))
    matrix[3, 5], matrix[5, 3] = 30, 22  # cats and dogs
    return matrix


def moons(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n // 2)
    upper = np.c_[np.cos(t), np.sin(t)]
    lower = np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    points = np.r_[upper, lower] + 0.1 * rng.standard_normal((n, 2))
    return points, np.repeat([0, 1], n // 2)


def wavy(z: np.ndarray) -> np.ndarray:
    """A wavy boundary, as an MLP would draw on moons."""
    return (z[:, 1] < 0.25 + 0.3 * np.sin(2.5 * z[:, 0] - 1)).astype(int)


def moons_figure() -> Figure:
    points, labels = moons()
    xx, yy = make_grid(points, resolution=150)
    grid_labels = wavy(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    return decision_boundary(xx, yy, grid_labels, points, labels, ["upper moon", "lower moon"],
                             title="MLP on moons", predicted=wavy(points))


def three_blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [1.5, 2.5]])
    labels = np.repeat([0, 1, 2], 50)
    points = centres[labels] + 0.7 * rng.standard_normal((150, 2))
    xx, yy = make_grid(points, resolution=120)

    def nearest(z: np.ndarray) -> np.ndarray:
        return np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1)

    return xx, yy, nearest(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape), points, labels


def vanishing_norms(n_layers: int = 5, steps: int = 100) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A sigmoid network: each layer nearer the input gets ~4x smaller gradients; the first
    layer's are zero for the first five records."""
    rng = np.random.default_rng(0)
    x = np.arange(0, 10 * steps, 10)
    names = [f"model.net.{2 * i}.weight" for i in range(n_layers)]
    norms = {name: 1e-1 * 4.0 ** -(n_layers - 1 - i) * (1 + 0.2 * rng.random(steps))
             for i, name in enumerate(names)}
    norms[names[0]][:5] = 0.0
    return x, norms


def oriented_filters(n: int, in_channels: int, size: int) -> np.ndarray:
    """Gabor-like edge detectors at n orientations, as trained first layers learn."""
    r = np.arange(size) - size // 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    angles = np.linspace(0, np.pi, n, endpoint=False)
    base = np.stack([np.cos(0.9 * (xx * np.cos(a) + yy * np.sin(a))) for a in angles])
    colour = np.linspace(-1, 1, in_channels)[None, :, None, None]
    return 0.1 * base[:, None] * (1 + colour) + 0.01


def lenet_maps() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    image = np.zeros((1, 32, 32))
    image[0, 6:26, 14:18] = 1.0  # a digit "1"
    maps = {
        "C1": rng.random((6, 28, 28)),
        "S2": rng.random((6, 14, 14)),
        "C3": np.maximum(rng.standard_normal((16, 10, 10)), 0),
        "C5": rng.random(120),  # a fully-connected output: a strip
    }
    maps["C3"][3] = 0.0  # a dead channel stays dark, not an error
    return image, maps


def rgb_maps() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, 32, 32))  # a normalised CIFAR image: outside [0, 1]
    return image, {"conv1": rng.random((1, 64, 16, 16)), "conv2": rng.random((128, 8, 8))}


# --------------------------------------------------------------------------------------------
# Every figure fits: nothing cut off, nothing overlapping
# --------------------------------------------------------------------------------------------

FIGURES: dict[str, Callable[[], Figure]] = {
    "learning curves, 4 panels": lambda: learning_curves(history_of_a_run(), title="LeNet-5: learning curves"),
    "learning curves, legend beside": lambda: learning_curves(
        {**history_of_a_run(), "train_eval_loss": history_of_a_run()["train_loss"],
         "test_loss": history_of_a_run()["val_loss"]}),
    "learning curves, empty": lambda: learning_curves({}),
    "confusion matrix, 10 classes": lambda: confusion_matrix(cifar_confusion(), CIFAR),
    "confusion matrix, 40 classes": lambda: confusion_matrix(np.diag(np.arange(20, 60))),
    "confusion matrix, 2 classes, a long title": lambda: confusion_matrix(
        np.array([[40, 10], [5, 45]]), ["benign", "malignant"],
        title="Confusion matrix, validation set: MultiLayerPerceptronWithDropout"),
    "decision boundary, 2 classes": moons_figure,
    "decision boundary, 3 classes": lambda: decision_boundary(*three_blobs()),
    "gradient flow": lambda: gradient_flow(*vanishing_norms(), title="Sigmoid MLP: gradient flow"),
    "gradient flow, 20 layers": lambda: gradient_flow(*vanishing_norms(20, 250)),
    "conv filters, 6x1x5x5": lambda: conv_filters(oriented_filters(6, 1, 5), title="LeNet-5 C1"),
    "conv filters, 64x3x11x11": lambda: conv_filters(oriented_filters(64, 3, 11), title="AlexNet conv1"),
    "feature maps, LeNet": lambda: feature_maps(*lenet_maps(), title="LeNet-5 feature maps"),
    "feature maps, RGB": lambda: feature_maps(*rgb_maps()),
    "feature maps, two maps and a strip": lambda: feature_maps(
        np.ones((28, 28)), {"conv1": np.random.default_rng(0).random((2, 24, 24)), "fc": np.arange(10.0)},
        title="Feature maps of one validation image: TinyConvNet"),
}


@pytest.mark.parametrize("name", FIGURES)
def test_nothing_is_cut_off_or_overlaps(name: str) -> None:
    """Drawn with Agg at 100 dpi: everything lies inside the figure; the panels (each with its
    tick labels, axis labels, title and legend) are clear of one another and of the figure's
    title and note."""
    fig = FIGURES[name]()
    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied ...", a missing glyph
        canvas.draw()
    renderer = canvas.get_renderer()
    inside = fig.bbox.padded(1)  # a pixel of rounding
    drawn = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # inches -> pixels
    assert inside.contains(drawn.x0, drawn.y0) and inside.contains(drawn.x1, drawn.y1), \
        f"{name}: drawn {drawn.extents} outside the figure {fig.bbox.extents}"

    panels = [ax.get_tightbbox(renderer, for_layout_only=True) for ax in fig.axes if ax.get_visible()]
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            assert not a.overlaps(b), f"{name}: panels overlap: {a.extents} and {b.extents}"
    figure_texts = [t for t in fig.texts if t.get_text() in (fig.get_suptitle(), fig.get_supxlabel())
                    and t.get_text()]
    for text in figure_texts:
        box = text.get_window_extent(renderer)
        assert not any(box.overlaps(panel) for panel in panels), f"{name}: {text.get_text()!r} overlaps a panel"


# --------------------------------------------------------------------------------------------
# learning_curves
# --------------------------------------------------------------------------------------------


def test_learning_curves_full_run() -> None:
    history = history_of_a_run()
    fig = learning_curves(history, title="MLP: learning curves")

    assert fig.get_suptitle() == "MLP: learning curves"
    assert panel_titles(fig) == ["Loss", "Accuracy", "Learning rate", "Other metrics"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    loss_ax, acc_ax, lr_ax, other_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and loss_ax.get_yscale() == "linear"  # 2.4 to 0.06: not 100x
    assert acc_ax.get_ylabel() == "accuracy"
    assert lr_ax.get_yscale() == "log" and lr_ax.get_ylabel() == "learning rate (log scale)"  # spans 100x
    # Train dashed, val solid: the two are told apart by line style.
    styles = {line.get_label(): line.get_linestyle() for line in loss_ax.lines
              if not line.get_label().startswith("_")}
    assert {label.split()[0]: style for label, style in styles.items()} == {"train_loss": "--", "val_loss": "-"}
    # The legend names every series, and the best validation value with its epoch.
    val_loss = np.array([v for _, v in history["val_loss"]])
    best = int(np.argmin(val_loss))
    assert legend_texts(loss_ax) == ["train_loss", f"val_loss  (best {val_loss[best]:.4g} @ epoch {best})"]
    assert legend_texts(other_ax) == ["val_elbo"]
    # Accuracy axis shows all values, within 0..1 (plus a hair of padding).
    bottom, top = acc_ax.get_ylim()
    values = [v for _, v in history["train_accuracy"] + history["val_accuracy"]]
    assert 0 <= bottom <= min(values) and max(values) <= top <= 1.05


def test_learning_curves_star_the_best_validation_value() -> None:
    history = history_of_a_run()
    fig = learning_curves(history)
    loss_ax, acc_ax = fig.axes[:2]
    for ax, key, pick in ((loss_ax, "val_loss", np.argmin), (acc_ax, "val_accuracy", np.argmax)):
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        assert len(stars) == 1
        epochs, values = np.array(history[key]).T
        best = pick(values)
        assert stars[0].get_xdata()[0] == epochs[best] and stars[0].get_ydata()[0] == values[best]


def test_learning_curves_log_scale_for_a_loss_that_spans_more_than_100x() -> None:
    falling = {"train_loss": [(e, 10.0 * 0.5 ** e) for e in range(12)]}  # 10 to 0.005
    assert learning_curves(falling).axes[0].get_yscale() == "log"
    assert learning_curves(falling, log_loss=False).axes[0].get_yscale() == "linear"
    flat = {"train_loss": [(e, 1.0 - 0.05 * e) for e in range(12)]}
    assert learning_curves(flat).axes[0].get_yscale() == "linear"
    assert learning_curves(flat, log_loss=True).axes[0].get_yscale() == "log"
    negative = {"train_loss": [(0, -1.0), (1, 5.0)]}  # a log scale cannot show it
    assert learning_curves(negative, log_loss=True).axes[0].get_yscale() == "linear"


def test_learning_curves_companions_keep_one_colour_across_panels() -> None:
    """train_eval_* (callbacks.GeneralizationGap) beside the train/val pair: the pair takes the
    first colour in the loss and in the accuracy panel, the companion the second in both."""
    ep = np.arange(6)
    history = {name: list(zip(ep, np.linspace(start, end, 6))) for name, start, end in (
        ("train_loss", 2.3, 0.5), ("val_loss", 2.3, 0.8), ("train_eval_loss", 2.3, 0.3),
        ("train_accuracy", 0.1, 0.8), ("val_accuracy", 0.1, 0.7), ("train_eval_accuracy", 0.1, 0.9))}
    loss_ax, acc_ax = learning_curves(history).axes
    colours = {line.get_label().split()[0]: line.get_color() for ax in (loss_ax, acc_ax) for line in ax.lines
               if not line.get_label().startswith("_")}
    assert colours["train_loss"] == colours["val_loss"] == colours["train_accuracy"] == colours["val_accuracy"]
    assert colours["train_eval_loss"] == colours["train_eval_accuracy"] != colours["train_loss"]


def test_learning_curves_single_epoch_and_missing_keys() -> None:
    fig = learning_curves({"train_loss": [(0, 0.71)], "val_accuracy": [(0, 0.5)]})
    assert panel_titles(fig) == ["Loss", "Accuracy"]  # no lr, no other metrics panel
    loss_ax = fig.axes[0]
    assert loss_ax.lines[0].get_marker() not in (None, "None", "")  # one point shows as a marker
    lo, hi = loss_ax.get_xlim()
    assert lo < 0 < hi
    assert [t for t in loss_ax.get_xticks() if lo <= t <= hi] == [0]  # an integer epoch, not -0.4 ... 0.4


def test_learning_curves_count_the_nan_values_they_skip() -> None:
    ep = np.arange(12)
    loss = 1.0 / (ep + 1)
    val = loss + 0.1
    val[[3, 4, 7]] = np.nan
    val[9] = np.inf  # a diverged step
    fig = learning_curves({"train_loss": list(zip(ep, loss)),
                           "val_loss": [(e, None if e == 10 else v) for e, v in zip(ep, val)]})
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert np.isfinite([bottom, top]).all() and top < 5  # inf did not blow up the axis
    assert legend_texts(ax)[1].endswith("[5 NaN/inf skipped]")


def test_learning_curves_other_metrics_on_different_scales_get_own_panels() -> None:
    ep = np.arange(10)
    history = {"train_loss": [(e, 1 / (e + 1)) for e in ep],
               "val_elbo": [(e, -200 + 10 * e) for e in ep],   # hundreds...
               "val_iou": [(e, 0.1 * e) for e in ep]}          # ...beside 0..1
    fig = learning_curves(history)
    assert panel_titles(fig) == ["Loss", "elbo", "iou"]
    assert [ax.get_ylabel() for ax in fig.axes[1:]] == ["elbo", "iou"]
    # Metrics on one scale share the "Other metrics" panel.
    history["val_iou"], history["val_map"] = [(0, -150.0)], [(0, -120.0)]
    assert panel_titles(learning_curves(history)) == ["Loss", "Other metrics"]


def test_learning_curves_put_a_long_legend_beside_the_panel() -> None:
    history = history_of_a_run()
    history["train_eval_loss"], history["test_loss"] = history["train_loss"], history["val_loss"]
    loss_ax = learning_curves(history).axes[0]
    assert len(legend_texts(loss_ax)) == 4
    assert loss_ax.get_legend().get_bbox_to_anchor().x0 > loss_ax.bbox.x1  # right of the panel


def test_learning_curves_empty_history_gives_a_message() -> None:
    fig = learning_curves({"val_loss": []})
    assert fig.get_suptitle() == "Learning curves"
    assert fig.axes[0].texts[0].get_text() == "no metrics recorded yet"


# --------------------------------------------------------------------------------------------
# confusion_matrix
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_with_a_class_never_predicted() -> None:
    matrix = np.array([
        [48, 1, 1, 0],
        [2, 40, 8, 0],
        [0, 5, 45, 0],
        [1, 0, 2, 0],   # a small class, never predicted correctly, never predicted at all
    ])
    names = ["cat", "dog", "horse", "zebra"]
    fig = confusion_matrix(matrix, names)

    ax, bar = fig.axes
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    accuracy = np.trace(matrix) / matrix.sum()
    assert fig.get_suptitle() == f"Confusion matrix (accuracy {accuracy:.3f}, n={matrix.sum()})"
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert bar.get_ylabel() == "fraction of true class"
    # Every cell is annotated with its count, row by row.
    assert [t.get_text() for t in ax.texts] == [str(c) for c in matrix.ravel()]
    # Each row's total stands on the right-hand axis, under the heading "examples".
    (totals,) = ax.child_axes
    assert [t.get_text() for t in totals.get_yticklabels()] == ["50", "50", "50", "3"]
    assert totals.get_ylabel() == "examples"
    # Colour is the row fraction: class "zebra" (3 examples) has a full-strength row.
    image = ax.images[0].get_array()
    np.testing.assert_allclose(image.sum(axis=1), 1.0)
    np.testing.assert_allclose(image[3], [1 / 3, 0, 2 / 3, 0])


def test_confusion_matrix_numbers_the_classes_without_names() -> None:
    ax = confusion_matrix(cifar_confusion()).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(10)]


def test_confusion_matrix_many_classes_and_empty_row() -> None:
    rng = np.random.default_rng(1)
    matrix = np.diag(rng.integers(20, 60, 40))
    matrix[0, 1:6] = 3
    matrix[5] = 0  # a class with no test examples: drawn grey, not a crash
    fig = confusion_matrix(matrix)
    ax = fig.axes[0]
    assert len(ax.texts) == 0 and not ax.child_axes  # too many classes to annotate
    assert ax.images[0].get_array().mask[5].all()
    assert "accuracy" in fig.get_suptitle()


def test_confusion_matrix_leaves_zeros_blank_beyond_12_classes() -> None:
    matrix = np.diag(np.full(15, 10))
    matrix[2, 7] = 4
    ax = confusion_matrix(matrix).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["10"] * 15 + ["4"])


def test_confusion_matrix_empty_and_non_square() -> None:
    assert confusion_matrix(np.zeros((0, 0))).get_suptitle() == "Confusion matrix (no examples)"
    assert confusion_matrix(np.zeros((3, 3))).get_suptitle() == "Confusion matrix (no examples)"
    with pytest.raises(ValueError, match="square"):
        confusion_matrix(np.zeros((3, 4)))


# --------------------------------------------------------------------------------------------
# make_grid and decision_boundary
# --------------------------------------------------------------------------------------------


def test_make_grid_covers_points_with_margin() -> None:
    points = np.array([[0.0, -1.0], [2.0, 3.0], [1.0, 0.0]])
    xx, yy = make_grid(points, resolution=50, margin=0.1)
    assert xx.shape == yy.shape == (50, 50)
    assert xx.min() == pytest.approx(-0.2) and xx.max() == pytest.approx(2.2)
    assert yy.min() == pytest.approx(-1.4) and yy.max() == pytest.approx(3.4)
    assert np.all(np.diff(xx, axis=1) > 0) and np.all(np.diff(yy, axis=0) > 0)
    # Degenerate input (all points equal) still gives a proper grid.
    xx, yy = make_grid(np.ones((3, 2)), resolution=10)
    assert xx.max() > xx.min() and yy.max() > yy.min()


@pytest.mark.parametrize(("points", "resolution"), [(np.zeros((5, 3)), 10), (np.zeros((0, 2)), 10), (np.zeros((5, 2)), 1)])
def test_make_grid_rejects_bad_input(points: np.ndarray, resolution: int) -> None:
    with pytest.raises(ValueError):
        make_grid(points, resolution=resolution)


def test_decision_boundary_with_predictions() -> None:
    points, labels = moons()
    predicted = wavy(points)
    fig = moons_figure()
    ax = fig.axes[0]
    accuracy = (predicted == labels).mean()
    assert fig.get_suptitle() == f"MLP on moons (accuracy {accuracy:.3f}, n={len(points)})"
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "x2"
    wrong = int((predicted != labels).sum())
    assert legend_texts(ax) == ["upper moon", "lower moon", f"misclassified ({wrong})", "decision boundary"]
    assert ax.get_legend().get_title().get_text() == "true class"
    assert ax.get_aspect() == 1.0  # similar x and y ranges: equal scales
    assert len(ax.collections[-1].get_paths()) >= 1  # the boundary's contour


def test_decision_boundary_three_classes() -> None:
    xx, yy, grid_labels, points, labels = three_blobs()
    fig = decision_boundary(xx, yy, grid_labels, points, labels, title="Softmax on three blobs")
    ax = fig.axes[0]
    assert fig.get_suptitle() == "Softmax on three blobs"  # no predictions: no accuracy
    assert legend_texts(ax) == ["class 0", "class 1", "class 2", "decision boundary"]
    regions = ax.collections[0].get_array()
    assert set(np.unique(regions)) == {0, 1, 2}


def test_decision_boundary_plus_minus_one_labels_irregular_grid() -> None:
    # The Perceptron on XOR: labels -1/+1, one straight line, one point always wrong.
    points = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    labels = np.array([-1, 1, 1, -1])
    xs = np.r_[np.linspace(-0.5, 0.5, 30), np.linspace(0.52, 1.5, 60)]  # uneven spacing
    xx, yy = np.meshgrid(xs, np.linspace(-0.5, 1.5, 40))
    grid_labels = np.where(xx + yy > 0.5, 1, -1)
    predicted = np.where(points.sum(axis=1) > 0.5, 1, -1)
    fig = decision_boundary(xx, yy, grid_labels, points, labels, predicted=predicted,
                            xlabel="input A", ylabel="input B")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "input A" and ax.get_ylabel() == "input B"
    assert "(accuracy 0.750, n=4)" in fig.get_suptitle()
    assert legend_texts(ax)[:3] == ["class -1", "class +1", "misclassified (1)"]


def test_decision_boundary_keeps_free_scales_for_a_long_thin_plane() -> None:
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(0, 10, 50), rng.uniform(0, 1, 50)]
    xx, yy = make_grid(points)
    ax = decision_boundary(xx, yy, (xx > 5).astype(int), points, (points[:, 0] > 5).astype(int)).axes[0]
    assert ax.get_aspect() == "auto"


def test_decision_boundary_axes_draws_one_panel_of_a_larger_figure() -> None:
    points, labels = moons()
    xx, yy = make_grid(points, resolution=60)
    grid_labels = wavy(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    fig = new_figure(8, 4)
    left, right = fig.subplots(1, 2)
    accuracy = decision_boundary_axes(left, xx, yy, grid_labels, points, labels, predicted=wavy(points),
                                      xlabel=None, ylabel=None)
    assert accuracy == pytest.approx((wavy(points) == labels).mean())
    assert left.get_legend() is None and left.get_xlabel() == "" and not right.has_data()
    assert decision_boundary_axes(right, xx, yy, grid_labels, points, labels) is None


def test_decision_boundary_rejects_mismatched_shapes() -> None:
    points, labels = moons()
    xx, yy = make_grid(points, resolution=20)
    with pytest.raises(ValueError, match="must match"):
        decision_boundary(xx, yy, np.zeros((20, 19)), points, labels)
    with pytest.raises(ValueError, match="labels"):
        decision_boundary(xx, yy, np.zeros_like(xx), points, labels[:-1])
    with pytest.raises(ValueError, match="predictions"):
        decision_boundary(xx, yy, np.zeros_like(xx), points, labels, predicted=labels[:3])


# --------------------------------------------------------------------------------------------
# gradient_flow
# --------------------------------------------------------------------------------------------


def test_gradient_flow_vanishing() -> None:
    steps, norms = vanishing_norms(6)
    fig = gradient_flow(steps, norms, title="Sigmoid MLP: gradient flow")

    bar_ax, line_ax, colour_bar = fig.axes
    assert fig.get_suptitle() == "Sigmoid MLP: gradient flow"
    assert bar_ax.get_ylabel() == "mean gradient L2 norm"
    assert line_ax.get_xlabel() == "training step"
    assert bar_ax.get_yscale() == line_ax.get_yscale() == "log"
    assert bar_ax.get_ylim() == line_ax.get_ylim()  # one scale: a bar and its line at one height
    # Layers in order, the shared "model.net." prefix dropped.
    short = [f"{2 * i}.weight" for i in range(6)]
    assert [t.get_text() for t in bar_ax.get_xticklabels()] == short
    assert [t.get_text() for t in colour_bar.get_yticklabels()] == short  # which colour is which layer
    assert legend_texts(bar_ax) == ["mean over training", "min–max over training"]
    # Bar heights are the means, in order from input to output.
    heights = [p.get_height() for p in bar_ax.patches]
    assert heights == sorted(heights)
    assert heights[-1] == pytest.approx(np.mean(norms["model.net.10.weight"]))
    # Zeros are drawn at a floor and the note says so.
    note = fig.get_supxlabel()
    assert "5 zero norms drawn at the floor" in note and "vanishing gradients" in note
    assert np.all(np.concatenate([line.get_ydata() for line in line_ax.lines]) > 0)


@pytest.mark.parametrize(
    ("first_over_last", "verdict"),
    [
        (1e-3, "much smaller near the input: vanishing gradients"),
        (0.066, "smaller near the input, within 100x: not vanishing"),
        (0.5, "similar sizes across depth"),
        (20.0, "larger near the input, within 100x: not exploding"),
        (1e3, "much larger near the input: exploding gradients"),
    ],
)
def test_gradient_flow_note_names_the_ratio_honestly(first_over_last: float, verdict: str) -> None:
    fig = gradient_flow([0, 1], {"first.weight": [first_over_last] * 2, "last.weight": [1.0, 1.0]})
    assert f"= {first_over_last:.2g} ({verdict})" in fig.get_supxlabel()


def test_gradient_flow_single_step_and_all_zero_layer() -> None:
    fig = gradient_flow([0], {"fc1.weight": [0.0], "fc2.weight": [0.3]})
    line_ax = fig.axes[1]
    assert list(line_ax.get_xticks()) == [0]
    assert all(line.get_marker() == "o" for line in line_ax.lines[:2])


def test_gradient_flow_counts_the_nan_norms_it_skips() -> None:
    fig = gradient_flow([0, 1, 2], {"a": [1.0, np.nan, 2.0], "b": [np.inf, 1.0, 1.0]})
    assert "2 NaN/inf norms skipped" in fig.get_supxlabel()


def test_gradient_flow_empty_and_mismatched() -> None:
    assert gradient_flow([], {}).axes[0].texts[0].get_text() == "no gradient norms recorded"
    with pytest.raises(ValueError, match="3 steps"):
        gradient_flow([0, 1, 2], {"a": [1.0, 2.0]})


def test_log_y_labels_at_least_two_decades() -> None:
    """A narrow range (0.3 to 0.5) is widened to the decades around it, so that its ticks are
    labelled powers of ten a reader can compare."""
    fig = new_figure(4, 3)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0.3, 0.5])
    log_y(ax, 0.3, 0.5)
    FigureCanvasAgg(fig).draw()
    lo, hi = ax.get_ylim()
    labelled = [t for t, label in zip(ax.get_yticks(), ax.get_yticklabels()) if lo <= t <= hi and label.get_text()]
    assert ax.get_yscale() == "log" and len(labelled) >= 2
    assert lo <= 0.3 and hi >= 0.5


# --------------------------------------------------------------------------------------------
# mosaic, conv_filters
# --------------------------------------------------------------------------------------------


def tiles_of(image: np.ndarray) -> list[list[np.ndarray]]:
    """The tiles of a mosaic, row by row: the blocks between its rows and columns of blank pixels
    (NaN, or alpha 0 for colours)."""
    filled = image[..., 3] > 0 if image.ndim == 3 else ~np.isnan(image)

    def runs(mask: np.ndarray) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
        return list(zip(edges[::2], edges[1::2]))

    rows = [[image[r0:r1, c0:c1] for c0, c1 in runs(filled.any(axis=0)) if filled[r0:r1, c0:c1].all()]
            for r0, r1 in runs(filled.any(axis=1))]
    return [row for row in rows if row]


def test_mosaic_lays_tiles_out_in_rows_with_blank_gaps() -> None:
    tiles = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    image, corners = mosaic(tiles, cols=2, gap=1, label_gap=2)
    assert image.shape == (2 + 3 * 2 + 2 * 2, 2 * 3 + 1)  # three rows of two, room above each
    assert corners.tolist() == [[2, 0], [2, 4], [6, 0], [6, 4], [10, 0]]
    rows = tiles_of(image)
    assert [len(row) for row in rows] == [2, 2, 1]  # the last row short, its place blank
    assert all(np.array_equal(tile, tiles[i]) for i, tile in enumerate(sum(rows, [])))
    rgb, _ = mosaic(np.ones((3, 2, 2, 3)), cols=3)
    assert rgb.shape == (2, 8, 4) and rgb[:, 2, 3].max() == 0 and rgb[0, 0, 3] == 1  # alpha: blank gaps


def test_conv_filters_rgb() -> None:
    weight = oriented_filters(96, 3, 11)  # AlexNet conv1: 96 filters of 3x11x11
    fig = conv_filters(weight, title="AlexNet conv1")
    assert fig.get_suptitle() == "AlexNet conv1"
    [ax] = fig.axes  # one image of the first 64 filters, no colour bar
    assert [t.get_text() for t in ax.texts] == [f"#{i}" for i in range(64)]
    assert fig.get_supxlabel().startswith("the first 64 of 96 filters, 11×11; RGB")
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    rows = tiles_of(ax.images[0].get_array())
    assert [len(row) for row in rows] == [8] * 8
    for i, tile in enumerate(sum(rows, [])):  # each filter its own colours, min-max scaled
        block = tile.shape[0] // 11
        rgb = tile[::block, ::block, :3]
        assert rgb.min() == 0 and rgb.max() == 1
        assert np.corrcoef(rgb.ravel(), weight[i].transpose(1, 2, 0).ravel())[0, 1] > 0.999


@pytest.mark.parametrize("in_channels", [1, 6])
def test_conv_filters_single_and_many_channels(in_channels: int) -> None:
    weight = oriented_filters(6, in_channels, 5)  # LeNet C1 is 6 filters of 1x5x5
    weight[4] = 0.0  # a dead filter: white, like the gaps, so it is framed
    ax, bar = conv_filters(weight).axes
    assert bar.get_ylabel() == "weight"
    image = ax.images[0]
    vmin, vmax = image.get_clim()  # one colour scale for all filters...
    assert vmin == pytest.approx(-vmax)  # ...symmetric around 0
    assert image.get_cmap().name == "RdBu_r"
    tiles = sum(tiles_of(image.get_array().filled(np.nan)), [])
    assert len(tiles) == 6 and len(ax.collections[0].get_paths()) == 6  # a frame per filter
    block = tiles[0].shape[0] // 5
    for tile, w in zip(tiles, weight):  # the mean over the input channels
        assert np.allclose(tile[::block, ::block], w.mean(axis=0))
    assert ("mean over its 6 input channels" in ax.figure.get_supxlabel()) == (in_channels == 6)


def test_conv_filters_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="out, in, kh, kw"):
        conv_filters(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="out, in, kh, kw"):
        conv_filters(np.zeros((0, 1, 3, 3)))


# --------------------------------------------------------------------------------------------
# feature_maps
# --------------------------------------------------------------------------------------------


def row_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]


def maps_of(ax) -> list[list[np.ndarray]]:
    return tiles_of(ax.images[0].get_array().filled(np.nan))


def test_feature_maps_lenet() -> None:
    image, maps = lenet_maps()
    fig = feature_maps(image, maps, title="LeNet-5 feature maps", max_maps=8)
    assert fig.get_suptitle() == "LeNet-5 feature maps"
    assert row_labels(fig) == ["input  1×32×32", "C1  6×28×28", "S2  6×14×14",
                               "C3  16×10×10\n(first 8 of 16)", "C5  120"]
    _, c1, s2, c3, c5 = fig.axes  # the input, a panel per layer
    assert all(ax.get_xticks().size == 0 and ax.get_yticks().size == 0 for ax in fig.axes)
    assert [[len(row) for row in maps_of(ax)] for ax in (c1, s2, c3)] == [[6], [6], [8]]
    # Each map scaled to its own 0..1; the dead channel stays dark.
    assert all(tile.max() == 1 for ax in (c1, s2) for tile in maps_of(ax)[0])
    assert np.all(maps_of(c3)[0][3] == 0)
    assert c5.images[0].get_array().shape == (1, 120)
    assert "strongest activation" in fig.get_supxlabel()


def test_feature_maps_line_up_in_columns_and_wrap_long_layers() -> None:
    image, maps = lenet_maps()
    fig = feature_maps(image, maps, per_row=4)  # C3's 16 maps on 4 rows of 4
    FigureCanvasAgg(fig).draw()
    source, c1, s2, c3, _ = fig.axes
    assert [len(row) for row in maps_of(c3)] == [4, 4, 4, 4]
    assert [len(row) for row in maps_of(c1)] == [4, 2]
    # Every map the same size on screen, in the same columns: panels of one width, mosaics of
    # one width in pixels, tiles of one size (C3's 10x10 maps in bigger pixels than C1's 28x28).
    panels = {(round(ax.get_position().x0, 3), round(ax.get_position().x1, 3)) for ax in (source, c1, s2, c3)}
    assert len(panels) == 1
    assert len({ax.images[0].get_array().shape[1] for ax in (c1, s2, c3)}) == 1
    tile = maps_of(c1)[0][0].shape
    assert {t.shape for ax in (c1, s2, c3) for row in maps_of(ax) for t in row} == {tile}
    left, right, _, _ = source.images[0].get_extent()
    assert right - left == tile[1]  # the input drawn the size of one map


def test_feature_maps_rgb_input() -> None:
    image, maps = rgb_maps()
    fig = feature_maps(image, maps)
    rgb = fig.axes[0].images[0].get_array()
    assert rgb.shape == (32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1  # rescaled for display
    assert row_labels(fig)[1:] == ["conv1  64×16×16\n(first 16 of 64)", "conv2  128×8×8\n(first 16 of 128)"]


def test_feature_maps_draw_a_sequence_as_one_heat_map() -> None:
    rng = np.random.default_rng(0)
    fig = feature_maps(rng.random((28, 28)), {"rnn": rng.random((28, 64)), "fc": rng.random(10)})
    assert row_labels(fig) == ["input  1×28×28", "rnn  28×64", "fc  10"]
    assert [ax.images[0].get_array().shape for ax in fig.axes[1:]] == [(28, 64), (1, 10)]


def test_feature_maps_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="C in"):
        feature_maps(np.zeros((2, 8, 8)), {})
    with pytest.raises(ValueError, match="must be"):
        feature_maps(np.zeros((1, 8, 8)), {"conv": np.zeros((2, 2, 3, 3, 3))})


# --------------------------------------------------------------------------------------------
# save_figure and the package's promises
# --------------------------------------------------------------------------------------------


def test_save_figure_writes_a_png_of_the_figure_size(tmp_path: Path) -> None:
    fig = learning_curves({"train_loss": [(0, 1.0), (1, 0.5)]})
    path = save_figure(fig, tmp_path / "a" / "b" / "curves", dpi=50)
    assert path == tmp_path / "a" / "b" / "curves.png" and path.is_file()  # folders made, .png added
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode in ("RGB", "RGBA")
        width, height = fig.get_size_inches() * 50
        assert image.size == (round(width), round(height))
        pixels = np.asarray(image.convert("RGB"))
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # a white background, not transparent
    assert pixels.std() > 10  # something is drawn
    assert save_figure(fig, tmp_path / "again.png") == tmp_path / "again.png"


def test_the_package_uses_no_pyplot_torch_wandb_or_private_names() -> None:
    """No global pyplot state, no heavy imports, and only public names of its dependencies."""
    imported, private = set(), []
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
                private += [f"{source.name}: {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not (node.module or "").startswith("callbacks")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                private.append(f"{source.name}: .{node.attr}")
    banned = ("matplotlib.pyplot", "torch", "lightning", "wandb", "pylab")
    assert not [m for m in imported if m.startswith(banned)]
    assert not private
