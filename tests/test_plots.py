"""Tests for callbacks/plots.py: every figure renders, saves a non-blank PNG, and says what it shows.

Each test builds realistic synthetic inputs (what a short training run would log), renders the
figure, saves it under ``tmp_path`` and reads the PNG back. Checks on titles and labels use the
figure objects, which is what a student reads on the image.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from callbacks.plots import (
    confusion_matrix,
    conv_filters,
    decision_boundary,
    feature_maps,
    gradient_flow,
    learning_curves,
    make_grid,
    save_figure,
)

PLOTS_SOURCE = Path(__file__).resolve().parents[1] / "callbacks" / "plots.py"


def render(fig: Figure, tmp_path: Path, name: str) -> np.ndarray:
    """Save ``fig`` as PNG, read it back and check it is a real, non-blank image."""
    assert isinstance(fig, Figure)
    path = save_figure(fig, tmp_path / f"{name}.png")
    assert path == tmp_path / f"{name}.png" and path.is_file()
    image = imread(path)
    width, height = fig.get_size_inches() * 100  # default dpi
    assert abs(image.shape[0] - height) <= 1 and abs(image.shape[1] - width) <= 1
    assert image[..., :3].std() > 0.05, "the PNG is (almost) blank"
    assert_laid_out(fig)
    return image


def assert_laid_out(fig: Figure) -> None:
    """Nothing is cut off or overlaps: each panel with its texts (tick labels, axis labels,
    title, legend) lies inside the figure, clear of the other panels and of the figure's title
    and note."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    inside = fig.bbox.padded(1)  # a pixel of rounding
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax in axes:
        box = ax.get_tightbbox(renderer)
        assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1), \
            f"{ax.get_title() or ax.get_label()!r} is cut off: {box} outside {fig.bbox}"
    # A title may stand above a neighbour's colour bar, so titles are checked on their own.
    panels = [ax.get_tightbbox(renderer, for_layout_only=True) for ax in axes]
    titles = [ax.title.get_window_extent(renderer) if ax.get_title() else None for ax in axes]
    for i, a in enumerate(panels):
        for j, b in enumerate(panels):
            if j > i:
                assert not a.overlaps(b), f"panels overlap: {a} and {b}"
            if j != i and titles[i] is not None:
                assert not titles[i].overlaps(b), f"title {axes[i].get_title()!r} overlaps {b}"
    for text in (fig._suptitle, fig._supxlabel):
        if text is not None and text.get_text():
            box = text.get_window_extent(renderer)
            assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            assert not any(box.overlaps(b) for b in panels + [t for t in titles if t]), \
                f"{text.get_text()!r} overlaps a panel"


def panel_titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


# --------------------------------------------------------------------------------------------
# learning_curves
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


def test_learning_curves_full_run(tmp_path):
    history = history_of_a_run()
    fig = learning_curves(history, title="MLP: learning curves")
    render(fig, tmp_path, "learning_curves")

    assert fig.get_suptitle() == "MLP: learning curves"
    assert panel_titles(fig) == ["Loss", "Accuracy", "Learning rate", "Other metrics"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    loss_ax, acc_ax, lr_ax, other_ax = fig.axes
    assert loss_ax.get_ylabel().startswith("loss")
    assert acc_ax.get_ylabel() == "accuracy"
    assert lr_ax.get_yscale() == "log"  # the learning rate spans 100x
    # Train dashed, val solid: the two are told apart by line style.
    styles = {line.get_label().split()[0]: line.get_linestyle() for line in loss_ax.lines
              if not line.get_label().startswith("_")}
    assert styles == {"train_loss": "--", "val_loss": "-"}
    # The legend names every series, and the best validation value.
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels[0] == "train_loss" and labels[1].startswith("val_loss  (best ")
    assert [t.get_text() for t in other_ax.get_legend().get_texts()] == ["val_elbo"]
    # Accuracy axis shows all values, within 0..1 (plus a hair of padding).
    bottom, top = acc_ax.get_ylim()
    values = [v for _, v in history["train_accuracy"] + history["val_accuracy"]]
    assert 0 <= bottom <= min(values) and max(values) <= top <= 1.05


def test_learning_curves_companions_keep_one_colour_across_panels(tmp_path):
    """train_eval_* (callbacks.GeneralizationGap) beside the train/val pair: the pair takes the
    first colour in the loss and in the accuracy panel, the companion the second in both."""
    ep = np.arange(6)
    history = {name: list(zip(ep, np.linspace(start, end, 6))) for name, start, end in (
        ("train_loss", 2.3, 0.5), ("val_loss", 2.3, 0.8), ("train_eval_loss", 2.3, 0.3),
        ("train_accuracy", 0.1, 0.8), ("val_accuracy", 0.1, 0.7), ("train_eval_accuracy", 0.1, 0.9))}
    fig = learning_curves(history)
    render(fig, tmp_path, "learning_curves_companions")
    loss_ax, acc_ax = fig.axes
    colours = {line.get_label().split()[0]: line.get_color() for ax in (loss_ax, acc_ax) for line in ax.lines
               if not line.get_label().startswith("_") and line.get_linestyle() != "None"}
    assert colours["train_loss"] == colours["val_loss"] == colours["train_accuracy"] == colours["val_accuracy"]
    assert colours["train_eval_loss"] == colours["train_eval_accuracy"] != colours["train_loss"]


def test_learning_curves_single_epoch_and_missing_keys(tmp_path):
    fig = learning_curves({"train_loss": [(0, 0.71)], "val_accuracy": [(0, 0.5)]})
    render(fig, tmp_path, "single_epoch")
    assert panel_titles(fig) == ["Loss", "Accuracy"]  # no lr, no other metrics panel
    loss_ax = fig.axes[0]
    line = loss_ax.lines[0]
    assert line.get_marker() not in (None, "None", "")  # one point is visible as a marker
    lo, hi = loss_ax.get_xlim()
    assert lo < 0 < hi
    visible = [t for t in loss_ax.get_xticks() if lo <= t <= hi]
    assert visible == [0]  # an integer epoch tick, not -0.4 ... 0.4


def test_learning_curves_nan_values(tmp_path):
    ep = np.arange(12)
    loss = 1.0 / (ep + 1)
    val = loss + 0.1
    val[[3, 4, 7]] = np.nan
    val[9] = np.inf  # a diverged step
    fig = learning_curves({"train_loss": list(zip(ep, loss)),
                           "val_loss": [(e, None if e == 10 else v) for e, v in zip(ep, val)]})
    render(fig, tmp_path, "nan_values")
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert np.isfinite([bottom, top]).all() and top < 5  # inf did not blow up the axis
    assert any("5 NaN/inf skipped" in t.get_text() for t in ax.get_legend().get_texts())


def test_learning_curves_other_metrics_on_different_scales_get_own_panels():
    ep = np.arange(10)
    history = {"train_loss": [(e, 1 / (e + 1)) for e in ep],
               "val_elbo": [(e, -200 + 10 * e) for e in ep],   # hundreds...
               "val_iou": [(e, 0.1 * e) for e in ep]}          # ...beside 0..1
    fig = learning_curves(history)
    assert panel_titles(fig) == ["Loss", "elbo", "iou"]
    # Metrics on one scale share the "Other metrics" panel.
    history["val_iou"], history["val_map"] = [(0, -150.0)], [(0, -120.0)]
    assert panel_titles(learning_curves(history)) == ["Loss", "Other metrics"]


def test_learning_curves_empty_history_gives_a_message():
    fig = learning_curves({"val_loss": []})
    assert fig.get_suptitle() == "Learning curves"
    assert "no metrics" in fig.axes[0].texts[0].get_text()


# --------------------------------------------------------------------------------------------
# confusion_matrix
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_with_a_class_never_predicted(tmp_path):
    matrix = np.array([
        [48, 1, 1, 0],
        [2, 40, 8, 0],
        [0, 5, 45, 0],
        [1, 0, 2, 0],   # a small class, never predicted correctly...
    ])
    matrix[:, 3] = 0    # ...and never predicted at all
    names = ["cat", "dog", "horse", "zebra"]
    fig = confusion_matrix(matrix, names)
    render(fig, tmp_path, "confusion")

    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    accuracy = np.trace(matrix) / matrix.sum()
    assert fig.get_suptitle() == f"Confusion matrix (accuracy {accuracy:.3f}, n={matrix.sum()})"
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    colorbar_labels = [a.get_ylabel() for a in fig.axes]
    assert "fraction of true class" in colorbar_labels
    # Every cell is annotated with its count (texts placed in data coordinates, on the cells)...
    counts = [t.get_text() for t in ax.texts if t.get_transform() is ax.transData]
    assert len(counts) == 16 and counts[:4] == ["48", "1", "1", "0"]
    # ...and each row's total stands beside it, under the heading "examples".
    beside = [t.get_text() for t in ax.texts if t.get_transform() is not ax.transData]
    assert beside == ["50", "50", "50", "3", "examples"]
    # Colour is the row fraction: class "zebra" (3 examples) has a full-strength row.
    image = ax.images[0].get_array()
    np.testing.assert_allclose(image.sum(axis=1), 1.0)


def test_confusion_matrix_many_classes_and_empty_row(tmp_path):
    rng = np.random.default_rng(1)
    k = 40
    matrix = np.diag(rng.integers(20, 60, k))
    matrix[0, 1:6] = 3
    matrix[5] = 0  # a class with no test examples: drawn grey, not a crash
    fig = confusion_matrix(matrix)
    render(fig, tmp_path, "confusion_40")
    ax = fig.axes[0]
    assert len(ax.texts) == 0  # too many classes to annotate
    assert ax.images[0].get_array().mask[5].all()
    assert "accuracy" in fig.get_suptitle()


def test_confusion_matrix_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        confusion_matrix(np.zeros((3, 4)))


# --------------------------------------------------------------------------------------------
# make_grid and decision_boundary
# --------------------------------------------------------------------------------------------


def test_make_grid_covers_points_with_margin():
    points = np.array([[0.0, -1.0], [2.0, 3.0], [1.0, 0.0]])
    xx, yy = make_grid(points, resolution=50, margin=0.1)
    assert xx.shape == yy.shape == (50, 50)
    assert xx.min() == pytest.approx(-0.2) and xx.max() == pytest.approx(2.2)
    assert yy.min() == pytest.approx(-1.4) and yy.max() == pytest.approx(3.4)
    assert np.all(np.diff(xx, axis=1) > 0) and np.all(np.diff(yy, axis=0) > 0)
    # Degenerate input (all points equal) still gives a proper grid.
    xx, yy = make_grid(np.ones((3, 2)), resolution=10)
    assert xx.max() > xx.min() and yy.max() > yy.min()


def moons(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n // 2)
    upper = np.c_[np.cos(t), np.sin(t)]
    lower = np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    points = np.r_[upper, lower] + 0.1 * rng.standard_normal((n, 2))
    return points, np.repeat([0, 1], n // 2)


def test_decision_boundary_with_predictions(tmp_path):
    points, labels = moons()
    xx, yy = make_grid(points, resolution=150)

    def model(z):  # a wavy boundary, as an MLP would draw
        return (z[:, 1] < 0.25 + 0.3 * np.sin(2.5 * z[:, 0] - 1)).astype(int)

    grid_labels = model(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    predicted = model(points)
    fig = decision_boundary(xx, yy, grid_labels, points, labels, ["upper moon", "lower moon"],
                            title="MLP on moons", predicted=predicted)
    render(fig, tmp_path, "decision_boundary")

    ax = fig.axes[0]
    accuracy = (predicted == labels).mean()
    assert fig.get_suptitle() == f"MLP on moons (accuracy {accuracy:.3f}, n={len(points)})"
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "x2"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    wrong = int((predicted != labels).sum())
    assert legend == ["upper moon", "lower moon", f"misclassified ({wrong})", "decision boundary"]
    assert ax.get_aspect() == 1.0  # similar x and y ranges: equal aspect


def test_decision_boundary_plus_minus_one_labels_irregular_grid(tmp_path):
    # The Perceptron on XOR: labels -1/+1, one straight line, one point always wrong.
    points = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    labels = np.array([-1, 1, 1, -1])
    xs = np.r_[np.linspace(-0.5, 0.5, 30), np.linspace(0.52, 1.5, 60)]  # uneven spacing
    xx, yy = np.meshgrid(xs, np.linspace(-0.5, 1.5, 40))
    grid_labels = np.where(xx + yy > 0.5, 1, -1)
    predicted = np.where(points.sum(axis=1) > 0.5, 1, -1)
    fig = decision_boundary(xx, yy, grid_labels, points, labels, predicted=predicted,
                            xlabel="input A", ylabel="input B")
    render(fig, tmp_path, "decision_boundary_xor")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "input A" and ax.get_ylabel() == "input B"
    assert "(accuracy 0.750, n=4)" in fig.get_suptitle()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["class -1", "class +1"]


# --------------------------------------------------------------------------------------------
# gradient_flow
# --------------------------------------------------------------------------------------------


def test_gradient_flow_vanishing(tmp_path):
    steps = np.arange(0, 1000, 10)
    rng = np.random.default_rng(0)
    names = [f"model.net.{i}.weight" for i in range(6)]
    # A sigmoid network: each layer nearer the input gets ~4x smaller gradients.
    norms = {name: 1e-1 * 4.0 ** -(5 - i) * (1 + 0.2 * rng.random(steps.size))
             for i, name in enumerate(names)}
    norms[names[0]][:5] = 0.0  # dead at the start
    fig = gradient_flow(steps, norms, title="Sigmoid MLP: gradient flow")
    render(fig, tmp_path, "gradient_flow")

    bar_ax, line_ax = fig.axes[:2]
    assert fig.get_suptitle() == "Sigmoid MLP: gradient flow"
    assert bar_ax.get_ylabel() == "mean gradient L2 norm"
    assert line_ax.get_xlabel() == "training step"
    assert bar_ax.get_yscale() == line_ax.get_yscale() == "log"
    # Layers in order, the shared "model.net." prefix dropped.
    assert [t.get_text() for t in bar_ax.get_xticklabels()] == [f"{i}.weight" for i in range(6)]
    # Bar heights are the means, in order from input to output.
    heights = [p.get_height() for p in bar_ax.patches]
    assert heights == sorted(heights)
    # Zeros are clipped to a floor and the note says so.
    note = fig._supxlabel.get_text()
    assert "5 zero norms drawn at the floor" in note and "vanishing" in note
    assert np.all(np.concatenate([line.get_ydata() for line in line_ax.lines]) > 0)


def test_log_axes_label_powers_of_ten_in_plain_text(tmp_path):
    """No mathtext ($10^{-3}$): its parser takes ~75 ms to build in each process. The Unicode
    superscripts must be in the figure's font, or matplotlib would draw empty boxes (and warn)."""
    import warnings

    from callbacks.plots import power_of_ten

    assert [power_of_ten(v) for v in (1e-3, 1.0, 100.0, 1e-12, 0.5, 0.0)] == ["10⁻³", "10⁰", "10²", "10⁻¹²", "0.5", ""]
    steps = np.arange(0, 200, 10)
    fig = gradient_flow(steps, {"c1.weight": np.full(steps.size, 3e-4), "f6.weight": np.full(steps.size, 2.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" fails the test
        render(fig, tmp_path, "log_labels")
    for ax in fig.axes[:2]:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) >= 2 and all(label.startswith("10") and "$" not in label for label in labels), labels
        assert "10⁻³" in labels and "10⁰" in labels


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
def test_gradient_flow_note_names_the_ratio_honestly(first_over_last, verdict):
    fig = gradient_flow([0, 1], {"first.weight": [first_over_last] * 2, "last.weight": [1.0, 1.0]})
    assert f"= {first_over_last:.2g} ({verdict})" in fig._supxlabel.get_text()


def test_gradient_flow_single_step_and_all_zero_layer(tmp_path):
    fig = gradient_flow([0], {"fc1.weight": [0.0], "fc2.weight": [0.3]})
    render(fig, tmp_path, "gradient_flow_single")
    line_ax = fig.axes[1]
    assert list(line_ax.get_xticks()) == [0]
    assert all(line.get_marker() == "o" for line in line_ax.lines[:2])


def test_gradient_flow_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="3 steps"):
        gradient_flow([0, 1, 2], {"a": [1.0, 2.0]})


# --------------------------------------------------------------------------------------------
# conv_filters
# --------------------------------------------------------------------------------------------


def oriented_filters(n: int, in_channels: int, size: int) -> np.ndarray:
    """Gabor-like edge detectors at n orientations, as trained first layers learn."""
    r = np.arange(size) - size // 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    angles = np.linspace(0, np.pi, n, endpoint=False)
    base = np.stack([np.cos(0.9 * (xx * np.cos(a) + yy * np.sin(a))) for a in angles])
    colour = np.linspace(-1, 1, in_channels)[None, :, None, None]
    return 0.1 * base[:, None] * (1 + colour) + 0.01


def test_conv_filters_rgb(tmp_path):
    weight = oriented_filters(96, 3, 11)  # AlexNet's first layer: 96 filters of 3x11x11
    fig = conv_filters(weight, title="AlexNet conv1")
    render(fig, tmp_path, "filters_rgb")
    ax = fig.axes[0]
    assert len(fig.axes) == 1  # RGB: no colour bar
    assert fig.get_suptitle() == "AlexNet conv1"
    assert "64 of 96 filters" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert labels[0] == "#0" and labels[-1] == "#63" and len(labels) == 64
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.images[0].get_array().shape[-1] == 4  # RGBA, transparent gaps


@pytest.mark.parametrize("in_channels", [1, 6])
def test_conv_filters_single_and_many_channels(tmp_path, in_channels):
    weight = oriented_filters(6, in_channels, 5)  # LeNet C1 is 6 filters of 1x5x5
    fig = conv_filters(weight)
    render(fig, tmp_path, f"filters_{in_channels}")
    ax, bar = fig.axes
    assert bar.get_ylabel() == "weight"
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == pytest.approx(-vmax)  # symmetric around 0
    assert ax.images[0].get_cmap().name.startswith("RdBu_r")
    assert ("mean over 6 input channels" in ax.get_title()) == (in_channels == 6)


# --------------------------------------------------------------------------------------------
# feature_maps
# --------------------------------------------------------------------------------------------


def test_feature_maps_lenet(tmp_path):
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
    fig = feature_maps(image, maps, title="LeNet-5 feature maps", max_maps=8)
    render(fig, tmp_path, "feature_maps")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["input  1×32×32", "C1  6×28×28", "S2  6×14×14",
                      "C3  16×10×10\n(first 8 of 16)", "C5  120"]
    assert fig.get_suptitle() == "LeNet-5 feature maps"
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert len(ax.images) == 5


def test_feature_maps_rgb_input(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, 32, 32))  # a normalised CIFAR image: outside [0, 1]
    maps = {"conv1": rng.random((1, 64, 16, 16)), "conv2": rng.random((128, 8, 8))}
    fig = feature_maps(image, maps)
    render(fig, tmp_path, "feature_maps_rgb")
    ax = fig.axes[0]
    rgb = ax.images[0].get_array()
    assert rgb.shape == (32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert ax.texts[1].get_text() == "conv1  64×16×16\n(first 16 of 64)"


def test_feature_maps_rejects_bad_image():
    with pytest.raises(ValueError, match="C in"):
        feature_maps(np.zeros((2, 8, 8)), {})


# --------------------------------------------------------------------------------------------
# save_figure and the module's promises
# --------------------------------------------------------------------------------------------


def test_save_figure_creates_folders_and_adds_png(tmp_path):
    fig = learning_curves({"train_loss": [(0, 1.0), (1, 0.5)]})
    path = save_figure(fig, tmp_path / "a" / "b" / "curves", dpi=50)
    assert path == tmp_path / "a" / "b" / "curves.png" and path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[1] == round(fig.get_size_inches()[0] * 50)


def test_render_draws_with_the_renderer_that_laid_the_figure_out(tmp_path) -> None:
    """The layout measured every text with the figure's Agg renderer; drawing reuses it (and
    matplotlib's cache of those measurements), for the same pixels as a fresh canvas gives."""
    from matplotlib.backend_bases import FigureCanvasBase

    from callbacks.plots import render

    history = {"train_loss": [(e, 2.0 / (e + 1)) for e in range(8)], "val_loss": [(e, 2.2 / (e + 1)) for e in range(8)],
               "train_accuracy": [(e, 1 - 0.5 / (e + 1)) for e in range(8)]}
    fig = learning_curves(history, title="Learning curves: reuse")
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # the layout's
    layout_renderer = canvas.get_renderer()
    reused = np.asarray(render(fig))
    assert fig.canvas is canvas and canvas.renderer is layout_renderer
    fresh_fig = learning_curves(history, title="Learning curves: reuse")
    FigureCanvasBase(fresh_fig)  # forget the layout's canvas: render makes a new one
    fresh = np.asarray(render(fresh_fig))
    assert fresh_fig.canvas is not canvas and np.array_equal(reused, fresh)
    assert np.asarray(render(fig, dpi=50)).shape[0] == round(fig.get_size_inches()[1] * 50)  # another dpi: a new renderer


def test_module_imports_no_pyplot_torch_or_wandb():
    tree = ast.parse(PLOTS_SOURCE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    banned = ("matplotlib.pyplot", "torch", "lightning", "wandb", "pylab")
    assert not [m for m in imported if m.startswith(banned)]


def test_save_figure_lays_out_once_with_the_same_pixels(tmp_path) -> None:
    """save_figure gives the pixels matplotlib's own savefig gives (in the house style, plots.RC):
    for a figure laid out by hand when it was built, and for a figure with a layout engine (a
    model's own figure), which save_figure lays out once itself."""
    import numpy as np
    from matplotlib import rc_context
    from matplotlib.image import imread

    from callbacks.plots import RC, new_figure, confusion_matrix, save_figure

    def engine_figure() -> Figure:
        fig = new_figure(6, 4)
        ax = fig.add_subplot()
        image = ax.imshow(np.arange(12.0).reshape(3, 4))
        ax.set(title="a panel", xlabel="x", ylabel="y")
        fig.colorbar(image, ax=ax, label="value")
        fig.suptitle("A model's own figure")
        return fig

    matrix = np.random.default_rng(0).integers(0, 50, size=(6, 6))
    for name, make in (("by_hand", lambda: confusion_matrix(matrix)), ("engine", engine_figure)):
        ours = save_figure(make(), tmp_path / f"{name}_ours.png")
        reference = tmp_path / f"{name}_reference.png"
        with rc_context(RC):
            make().savefig(reference, format="png", dpi=100, facecolor="white")
        assert np.array_equal(imread(ours), imread(reference)), name


def test_the_house_style_holds_while_a_figure_is_built_and_saved_and_leaves_the_callers_settings(tmp_path) -> None:
    import matplotlib
    import numpy as np

    from callbacks import plots

    seen = []
    original = plots._renderer

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(matplotlib.rcParams["text.hinting"])
        return original(*args, **kwargs)

    with matplotlib.rc_context({"text.hinting": "force_autohint"}):
        plots._renderer = spy
        try:
            fig = plots.confusion_matrix(np.eye(3, dtype=int) * 5)
        finally:
            plots._renderer = original
        plots.save_figure(fig, tmp_path / "matrix.png")
        assert matplotlib.rcParams["text.hinting"] == "force_autohint"  # the caller's, untouched
    assert seen and set(seen) == {plots.RC["text.hinting"]}  # the layout measured its text in the house style
