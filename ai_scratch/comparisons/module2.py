"""Module 2 side by side: the three contrasts the CNN revolution turns on, each drawn as its paper drew it.

Every run is a shipped experiment config, fitted as ``ai-scratch fit`` fits it (same data, same
recipe, the ``--seed`` given), and the runs of one contrast are drawn on one plot:

(a) **Depth without and with shortcuts** (He et al., 2015, Figures 1 and 6). Plain nets of 20 and
    32 layers and a residual net of 32 layers, identical but for depth and the identity shortcuts
    (``resnet/degradation_plain20``, ``degradation_plain32``, ``degradation_resnet32``), on
    scikit-learn's 8x8 digits. As in the paper, training error is dashed and held-out (validation)
    error solid. Look for the *degradation problem*: plain-32 ends with a higher *training* error
    than plain-20, so the deeper net is not over-fitting, it is harder to optimise; with shortcuts
    the same 32 layers fit the training set at least as well as the 20.

(b) **ReLU against sigmoid units** (Krizhevsky et al., 2012, Section 3.1 and Figure 1). The same
    scaled-down AlexNet, data, initialisation and optimiser, with rectified linear units
    (``alexnet/relu_strength``) or logistic sigmoids (``alexnet/sigmoid_weakness``). The paper's
    Figure 1 marks 25% training error; the ReLU net passes it within a few epochs, the sigmoid net,
    whose gradient shrinks by a factor of at least 4 through every layer (the sigmoid's slope is at
    most 1/4), stays at chance (90% error on ten digits).

(c) **Accuracy per parameter** (Simonyan and Zisserman, 2014; Szegedy et al., 2014). VGG-16
    (``vgg/depth_strength``) and GoogLeNet (``googlenet/fewer_parameters_strength``) at the same
    width on the same 2,000 MNIST digits at 12x12, each with its own config's epochs, placed by test
    accuracy and parameter count (log scale). Look for the horizontal gap: GoogLeNet's 1x1
    reductions and global average pooling reach VGG's accuracy with several times fewer weights
    (at paper size 7.0 million against 138.4 million).

    LeNet-5 (``lenet5/mnist``) is not on this plot, because no run of it stands on the same footing.
    Its fixed 32x32 input can be fed the same 2,000 training digits (``--data.train_size=2000``,
    its distorted copies off), but its recipe, set for 4,000 distorted digits, then sits at chance
    for the first 8 of its 20 epochs and ends at 88% test accuracy (seed 0): a point that would
    measure the recipe, not the design. Its own config reaches 97.8% on the same 500 test digits
    with twice the training digits: a point that would measure the data.

Each run's own claim (its config's metric and threshold) is checked by its fit and listed in the
printed table. The figure is ``cnn_revolution.png``, every curve and number ``cnn_revolution.json``,
both under ``--out``; the runs themselves under ``<out>/<model>/<experiment>/version_N``. Run it with::

    ai-scratch compare module-2                 # runs/comparisons/module-2/cnn_revolution.png
    ai-scratch compare module-2 --quick         # smoke sizes: draws everything, shows nothing
    ai-scratch compare module-2 --seed 1 --wandb
    ai-scratch compare module-2 --contrast degradation   # panel (a) only: the three ResNets
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure

from ai_scratch.comparisons.runs import ContrastRun, FittedRun, as_rows, chosen_contrasts, comparison_parser, fit_experiment, log_comparison
from ai_scratch.registry import configs_dir
from callbacks import plots

NAME = "depth-shortcuts-and-efficiency"
FIGURE = "cnn_revolution.png"
NUMBERS = "cnn_revolution.json"


#: The three contrasts, in the order of the figure's panels.
CONTRASTS = {
    "degradation": "depth without and with shortcuts (He et al. 2015, Figures 1 and 6)",
    "relu_vs_sigmoid": "ReLU against sigmoid units (Krizhevsky et al. 2012, Figure 1)",
    "accuracy_per_parameter": "test accuracy against parameter count (VGG-16 against GoogLeNet, 2014)",
}
RUNS = (
    ContrastRun("plain-20", "plain-20", "resnet/degradation_plain20", "degradation", "#1f77b4"),
    ContrastRun("plain-32", "plain-32", "resnet/degradation_plain32", "degradation", "#d62728"),
    ContrastRun("resnet-32", "ResNet-32", "resnet/degradation_resnet32", "degradation", "#2ca02c"),
    ContrastRun("alexnet-relu", "AlexNet, ReLU units", "alexnet/relu_strength", "relu_vs_sigmoid", "#1f77b4"),
    ContrastRun("alexnet-sigmoid", "AlexNet, sigmoid units", "alexnet/sigmoid_weakness", "relu_vs_sigmoid", "#d62728"),
    ContrastRun("vgg-16", "VGG-16", "vgg/depth_strength", "accuracy_per_parameter", "#d62728"),
    ContrastRun("googlenet", "GoogLeNet", "googlenet/fewer_parameters_strength", "accuracy_per_parameter", "#2ca02c"),
)
#: AlexNet's Figure 1 measures the epochs to reach this training error.
ALEXNET_MARK = 0.25
#: The paper-sized twins of panel (c)'s models (ImageNet, 224x224 RGB, 1000 classes, main classifier only).
PAPER_SIZED = {"vgg-16": ("ai_scratch.cnn_revolution.vgg.VGG", {"config": "D"}),
               "googlenet": ("ai_scratch.cnn_revolution.googlenet.GoogLeNet", {"aux_logits": False})}  # fmt: skip


# ---------------------------------------------------------------------------------------------- runs
def _model_class(class_path: str) -> type:
    module_name, class_name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def parameter_count(class_path: str, init_args: dict[str, Any]) -> int:
    """The parameters of a model built on the meta device: counted, never allocated."""
    with torch.device("meta"):
        model = _model_class(class_path)(**init_args)
    return sum(p.numel() for p in model.parameters())


def config_parameter_count(config: str) -> int:
    """The parameters of a shipped config's model."""
    model = yaml.safe_load((configs_dir() / f"{config}.yaml").read_text())["model"]
    return parameter_count(model["class_path"], model.get("init_args", {}))


def runs_of(contrasts: list[str]) -> list[ContrastRun]:
    """The runs of the chosen contrasts, in the order of :data:`RUNS`."""
    return [run for run in RUNS if run.contrast in contrasts]


def fit_all(seed: int, quick: bool, root: str | Path, contrasts: list[str]) -> dict[str, FittedRun]:
    """Fit every run of the chosen contrasts with ``seed``, printing a line as each fit starts."""
    fitted = {}
    for run in runs_of(contrasts):
        print(f"[compare] fitting {run.config} ({run.label}) ...", flush=True)
        fitted[run.key] = fit_experiment(run.config, seed=seed, quick=quick, root=root)
    return fitted


def error_curve(fitted: FittedRun, split: str) -> list[tuple[int, float]]:
    """``(epochs completed, error)`` for ``<split>_accuracy``, one point per epoch. The training
    accuracy is the running mean over the epoch's batches, as the papers' training curves are."""
    return [(epoch + 1, 1.0 - accuracy) for epoch, accuracy in fitted.curve(f"{split}_accuracy")]


def epochs_to(curve: list[tuple[int, float]], error: float) -> int | None:
    """The first epoch whose error is at or under ``error``; ``None`` if none is."""
    return next((epoch for epoch, value in curve if value <= error), None)


def _number_or_none(value: float) -> float | None:
    """JSON has no NaN: a metric a run never logged is ``None`` (null)."""
    return None if math.isnan(value) else value


def numbers(fitted: dict[str, FittedRun], seed: int, quick: bool) -> dict[str, Any]:
    """Everything the figure shows, as plain JSON: per run its curves, final errors, test accuracy
    and parameters; per contrast the numbers it turns on."""
    runs: dict[str, Any] = {}
    for run in (run for run in RUNS if run.key in fitted):
        result = fitted[run.key]
        train, val = error_curve(result, "train"), error_curve(result, "val")
        runs[run.key] = {
            "label": run.label, "experiment": result.experiment, "contrast": run.contrast,
            "parameters": config_parameter_count(run.config),
            "train_error": train[-1][1] if train else None, "val_error": val[-1][1] if val else None,
            "test_accuracy": _number_or_none(result.last("test_accuracy")), "epochs": len(train),
            "train_error_curve": train, "val_error_curve": val,
            "claim": str(result.claim_result.claim) if result.claim_result else None,
            "reproduced": result.reproduced, "seconds": round(result.seconds, 1),
        }  # fmt: skip
    contrasts: dict[str, Any] = {}
    if "plain-20" in runs:
        contrasts["degradation"] = {
            "plain32_minus_plain20_train_error": runs["plain-32"]["train_error"] - runs["plain-20"]["train_error"],
            "plain32_minus_resnet32_train_error": runs["plain-32"]["train_error"] - runs["resnet-32"]["train_error"],
        }
    if "alexnet-relu" in runs:
        contrasts["relu_vs_sigmoid"] = {
            f"{key}_epochs_to_{ALEXNET_MARK:.0%}_train_error": epochs_to(runs[key]["train_error_curve"], ALEXNET_MARK)
            for key in ("alexnet-relu", "alexnet-sigmoid")
        }
    if "vgg-16" in runs:
        paper = {key: parameter_count(path, args) for key, (path, args) in PAPER_SIZED.items()}
        contrasts["accuracy_per_parameter"] = {
            "vgg_over_googlenet_parameters": runs["vgg-16"]["parameters"] / runs["googlenet"]["parameters"],
            "vgg_minus_googlenet_test_accuracy": runs["vgg-16"]["test_accuracy"] - runs["googlenet"]["test_accuracy"],
            "paper_sized_parameters": paper,
            "paper_sized_vgg_over_googlenet": paper["vgg-16"] / paper["googlenet"],
        }
    return {"seed": seed, "quick": quick, "contrasts": contrasts, "runs": runs}


# -------------------------------------------------------------------------------------------- figure
def _percent(ax) -> None:
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")


def _epoch_axis(ax, results: dict[str, Any], keys: list[str]) -> None:
    """Whole epochs from the first to the last any of ``keys`` ran."""
    epochs = max(results["runs"][key]["epochs"] for key in keys)
    ax.set_xticks(range(1, epochs + 1))
    ax.set_xlim(0.5, epochs + 0.5)


def _degradation_panel(ax, results: dict[str, Any]) -> None:
    """He et al.'s Figure 1/6: each net's training error dashed, its held-out error solid."""
    for run in (r for r in RUNS if r.contrast == "degradation"):
        numbers_of = results["runs"][run.key]
        for split, style, width in (("train", "--", 1.6), ("val", "-", 2.4)):
            curve = np.array(numbers_of[f"{split}_error_curve"], dtype=float).reshape(-1, 2)
            name = "training" if split == "train" else "validation"
            ax.plot(curve[:, 0], curve[:, 1], style, color=run.color, linewidth=width, marker="o", markersize=3.5,
                    label=f"{run.label} {name} error (final {numbers_of[f'{split}_error']:.1%})")  # fmt: skip
    plots.style_axes(ax, title="(a) Depth: plain-32 trains WORSE than plain-20 (degradation); ResNet-32 fits\n"
                     "He et al. 2015, Figures 1 and 6: dashed = training error, solid = validation error",
                     xlabel="epochs completed", ylabel="error (1 - accuracy)")  # fmt: skip
    _percent(ax)
    _epoch_axis(ax, results, [run.key for run in RUNS if run.contrast == "degradation"])
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper right", ncol=1, frameon=False)


def _activation_panel(ax, results: dict[str, Any]) -> None:
    """AlexNet's Figure 1: training error against epochs, with its 25% mark."""
    for run in (r for r in RUNS if r.contrast == "relu_vs_sigmoid"):
        numbers_of = results["runs"][run.key]
        curve = np.array(numbers_of["train_error_curve"], dtype=float).reshape(-1, 2)
        reached = epochs_to(numbers_of["train_error_curve"], ALEXNET_MARK)
        when = f"{ALEXNET_MARK:.0%} reached in epoch {reached}" if reached else f"never under {ALEXNET_MARK:.0%}"
        ax.plot(curve[:, 0], curve[:, 1], "--", color=run.color, linewidth=2, marker="o", markersize=4,
                label=f"{run.label}: {when} (final {numbers_of['train_error']:.1%})")  # fmt: skip
    ax.axhline(ALEXNET_MARK, color="0.3", linestyle=":", linewidth=1.2, label=f"the paper's mark: {ALEXNET_MARK:.0%} training error")
    ax.axhline(0.9, color="0.6", linestyle="-.", linewidth=1, label="chance: 90% error on ten digits")
    plots.style_axes(ax, title="(b) ReLU units train, sigmoid units stall at chance\n"
                     "Krizhevsky et al. 2012, Figure 1: training error of the same net, two unit types",
                     xlabel="epochs completed", ylabel="training error (1 - accuracy)")  # fmt: skip
    _percent(ax)
    _epoch_axis(ax, results, [run.key for run in RUNS if run.contrast == "relu_vs_sigmoid"])
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", frameon=False)  # under the mark, where the curves end right


def _efficiency_panel(ax, results: dict[str, Any]) -> None:
    """Test accuracy against parameters (log x): further left at the same height is more efficient."""
    runs = [r for r in RUNS if r.contrast == "accuracy_per_parameter"]
    for run in runs:
        numbers_of = results["runs"][run.key]
        ax.scatter(numbers_of["parameters"], numbers_of["test_accuracy"], s=110, color=run.color, zorder=3,
                   edgecolor="black", linewidth=0.6,
                   label=f"{run.label}: {numbers_of['parameters']:,} parameters, test accuracy "
                         f"{numbers_of['test_accuracy']:.1%} ({numbers_of['epochs']} epochs)")  # fmt: skip
        ax.annotate(run.label, (numbers_of["parameters"], numbers_of["test_accuracy"]), textcoords="offset points",
                    xytext=(0, 10), ha="center", fontsize=plots.LABEL_SIZE, color=run.color)  # fmt: skip
    vgg, googlenet = results["runs"]["vgg-16"], results["runs"]["googlenet"]
    ratio = results["contrasts"]["accuracy_per_parameter"]["vgg_over_googlenet_parameters"]
    ax.annotate("", xy=(googlenet["parameters"], vgg["test_accuracy"]), xytext=(vgg["parameters"], vgg["test_accuracy"]),
                arrowprops={"arrowstyle": "->", "color": "0.35", "linewidth": 1.2})  # fmt: skip
    middle = math.sqrt(googlenet["parameters"] * vgg["parameters"])
    ax.annotate(f"{ratio:.1f}x fewer parameters", (middle, vgg["test_accuracy"]), textcoords="offset points", xytext=(0, -14),
                ha="center", fontsize=plots.LEGEND_SIZE, color="0.3")  # fmt: skip
    ax.set_xscale("log")
    counts = [results["runs"][r.key]["parameters"] for r in runs]
    ax.set_xlim(min(counts) / 2, max(counts) * 2)
    accuracies = [results["runs"][r.key]["test_accuracy"] for r in runs]
    finite = [a for a in accuracies if a is not None] or [0.5]
    ax.set_ylim(max(0.0, min(finite) - 0.08), min(1.0, max(finite) + 0.06))
    plots.style_axes(ax, title=f"(c) GoogLeNet: test accuracy {googlenet['test_accuracy']:.1%} to VGG-16's "
                     f"{vgg['test_accuracy']:.1%}, with {ratio:.1f}x fewer parameters\n"
                     "further left at the same height = more accuracy per parameter",
                     xlabel="parameters (log scale)", ylabel="test accuracy (500 held-out digits)")  # fmt: skip
    _percent(ax)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower right", frameon=False)


#: Each contrast's panel and the lines of the note that name its configs.
PANELS = {"degradation": _degradation_panel, "relu_vs_sigmoid": _activation_panel, "accuracy_per_parameter": _efficiency_panel}
#: The panels' places: (a) across the top when all three are drawn, else side by side.
LAYOUTS = {1: ([["0"]], (9, 6.5)), 2: ([["0", "1"]], (16, 6.8)), 3: ([["0", "0"], ["1", "2"]], (15, 11.5))}


def _notes(results: dict[str, Any]) -> list[str]:
    notes = []
    if "degradation" in results["contrasts"]:
        notes.append("(a) configs/resnet/degradation_plain20, degradation_plain32, degradation_resnet32: widths 8-16-32, "
                     "batch norm, SGD lr 0.1 cosine, 8 epochs, on scikit-learn's 8x8 digits (1,197 train, 300 validation).")  # fmt: skip
    if "relu_vs_sigmoid" in results["contrasts"]:
        notes.append("(b) configs/alexnet/relu_strength and sigmoid_weakness: AlexNet at width 0.125, Glorot init, SGD lr 0.02, "
                     "7 epochs, 2,000 MNIST digits at 20x20. Training error is the mean over each epoch's batches.")  # fmt: skip
    if "accuracy_per_parameter" in results["contrasts"]:
        paper = results["contrasts"]["accuracy_per_parameter"]["paper_sized_parameters"]
        notes.append("(c) configs/vgg/depth_strength and googlenet/fewer_parameters_strength: both at width 0.125 with batch norm, "
                     "SGD lr 0.05 cosine, on the same 2,000 training and 500 test MNIST digits at 12x12. "
                     f"At paper size VGG-16 has {paper['vgg-16']:,} parameters, GoogLeNet {paper['googlenet']:,}.")  # fmt: skip
    quick = " QUICK: one epoch of two batches per run, the numbers mean nothing." if results["quick"] else ""
    notes.append(f"Seed {results['seed']} for every run (weights, data order and splits).{quick}")
    return notes


def figure(results: dict[str, Any]) -> Figure:
    """One panel per contrast in ``results`` ((a) across the top when all three are drawn); a note
    names the configs and the seed."""
    contrasts = [name for name in PANELS if name in results["contrasts"]]
    mosaic, size = LAYOUTS[len(contrasts)]
    fig = plots.new_figure(*size)
    axes = fig.subplot_mosaic(mosaic)
    for place, name in enumerate(contrasts):
        PANELS[name](axes[str(place)], results)
    plots.add_note(fig, _notes(results))
    plots.add_title(fig, "Module 2, the CNN revolution: shortcuts make depth trainable, ReLUs make it fast, "
                    "1x1 reductions make it cheap")  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------------------- main
TABLE_METRICS = ("train_error", "val_error", "test_accuracy")


def table(fitted: dict[str, FittedRun], results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: :func:`as_rows`'s columns with errors instead of accuracies, and parameters."""
    rows = as_rows(fitted, ())
    for row in rows:
        numbers_of = results["runs"][row["run"]]
        row.update({"contrast": numbers_of["contrast"], "parameters": numbers_of["parameters"], "epochs": numbers_of["epochs"]})
        row.update({metric: numbers_of[metric] for metric in TABLE_METRICS})
        row["claim"], row["reproduced"] = numbers_of["claim"], numbers_of["reproduced"]
    return rows


def _cell(value: Any, column: str) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "NO")
    if isinstance(value, float):
        return f"{value:.0f}" if column == "seconds" else f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table on the terminal, one line per run."""
    columns = ("run", "parameters", "epochs", *TABLE_METRICS, "reproduced", "seconds")
    widths = [max(len(c), *(len(_cell(row[c], c)) for row in rows)) for c in columns]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  " + "  ".join(_cell(row[c], c).ljust(w) for c, w in zip(columns, widths)))


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(2, __doc__.split("\n\n")[0], CONTRASTS)
    options = parser.parse_args(args)
    contrasts = list(chosen_contrasts(options, list(CONTRASTS)))
    out = Path(options.out)
    fitted = fit_all(options.seed, options.quick, out, contrasts)
    results = numbers(fitted, options.seed, options.quick)
    path = plots.save_figure(figure(results), out / FIGURE)
    (out / NUMBERS).write_text(json.dumps(results, indent=2) + "\n")
    rows = table(fitted, results)
    print_table(rows)
    print(f"[compare] figure: {path}")
    if options.wandb:
        log_comparison(
            2, NAME, files=[path, out / NUMBERS], rows=rows, images={"figures/cnn_revolution": path},
            config={"seed": options.seed, "quick": options.quick, "contrasts": {name: CONTRASTS[name] for name in contrasts},
                    "runs": {run.key: run.config for run in runs_of(contrasts)}},
            models=sorted({run.config.split("/")[0] for run in runs_of(contrasts)}), mode=options.wandb_mode,
        )  # fmt: skip
    return 0
