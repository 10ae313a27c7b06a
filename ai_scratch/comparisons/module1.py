"""Module 1 side by side: linear and non-linear learners on the same two data sets.

The story of the first thirty years in one figure. Three learning rules, each trained with the
recipe of its own experiment config, on the *same* data:

* linearly separable points (the data of ``perceptron/linear_strength``), and
* XOR, four noisy clusters (the data of ``perceptron/xor_weakness``).

==============  ===================================  =========================================
model           recipe (config)                      what it can draw
==============  ===================================  =========================================
Perceptron      ``perceptron/xor_weakness``          one line, learned from mistakes (1957)
ADALINE         ``adaline/xor_weakness``             one line, the least-squares fit (1960)
MLP             ``mlp/xor_breakthrough``             curved regions, from hidden units (1986)
==============  ===================================  =========================================

On the linear data all three draw a line between the classes (ADALINE's least-squares line, which
every point pulls on, not only the mistakes, may leave a point that lies close to the other class
on the wrong side: accuracy 0.99 rather than 1). On XOR no line does (Minsky and Papert,
1969): the Perceptron keeps cycling, ADALINE's least-squares weights are near zero, so its line
falls by chance and cuts off one cluster, two or three, and only the MLP, whose hidden units each draw a line
that the output unit combines, gets all four clusters.

The learners are the same NumPy rules that ``ai-scratch fit`` trains through the adapter; here
they are driven directly by the datamodule's own loaders (same splits, same order, same epochs as
the configs). Run it with::

    ai-scratch compare module-1                 # runs/comparisons/module-1/linear_vs_nonlinear.png
    ai-scratch compare module-1 --seed 3 --wandb
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure

from ai_scratch.comparisons.runs import comparison_parser, log_comparison
from ai_scratch.numpy_adapter import NumPyLearner
from ai_scratch.registry import configs_dir
from callbacks import plots
from datamodules import ToyDataModule

#: The rows of the figure: a name and the config whose data every model is trained on.
DATASETS = (("linearly separable", "perceptron/linear_strength"), ("XOR", "perceptron/xor_weakness"))
#: The columns: a name, the config whose model and epochs are used, and what the model is.
MODELS = (
    ("Perceptron", "perceptron/xor_weakness", "Rosenblatt 1957: one threshold unit, error correction"),
    ("ADALINE", "adaline/xor_weakness", "Widrow & Hoff 1960: one linear unit, least mean squares"),
    ("MLP", "mlp/xor_breakthrough", "Rumelhart, Hinton & Williams 1986: hidden units, backprop"),
)
NAME = "linear-vs-nonlinear"


@dataclass
class Panel:
    """One trained model on one data set: what the figure shows in one panel."""

    model: str
    dataset: str
    learner: NumPyLearner
    points: np.ndarray  # validation inputs (N, 2)
    labels: np.ndarray  # validation classes (N,)
    class_names: list[str] = field(default_factory=list)

    def predicted(self, inputs: np.ndarray) -> np.ndarray:
        return self.learner.classes(np.asarray(inputs, dtype=np.float32))

    @property
    def accuracy(self) -> float:
        return float((self.predicted(self.points) == self.labels).mean())


def _load(name: str) -> dict[str, Any]:
    path = configs_dir() / f"{name}.yaml"
    return yaml.safe_load(path.read_text())


def _learner(config: dict[str, Any], seed: int) -> NumPyLearner:
    """The NumPy learner of a config's model, with its weight seed set to ``seed``."""
    module_name, class_name = config["model"]["class_path"].rsplit(".", 1)
    model_class = getattr(importlib.import_module(module_name), class_name)
    model = model_class(**{**config["model"].get("init_args", {}), "seed": seed})
    return model.learner


def _datamodule(config: dict[str, Any], seed: int) -> ToyDataModule:
    data = ToyDataModule(**{**config["data"].get("init_args", {}), "seed": seed})
    data.setup("fit")
    return data


def train(learner: NumPyLearner, data: ToyDataModule, epochs: int) -> None:
    """What ``ai-scratch fit`` does to a NumPy learner, without Lightning around it: each epoch the
    training loader in its ``(seed, epoch)`` order, one rule step per batch."""
    loader = data.train_dataloader()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for inputs, targets in loader:
            learner.train_batch(inputs.numpy().astype(np.float32).reshape(len(inputs), -1), targets.numpy())


def run(seed: int = 0, epochs: int | None = None) -> list[Panel]:
    """Train the three models on the two data sets; data and weights seeded by ``seed``; each for its
    config's epochs unless ``epochs`` says otherwise."""
    panels = []
    for dataset_name, data_config in DATASETS:
        data = _datamodule(_load(data_config), seed)
        points, labels = data.arrays("val")
        for model_name, model_config, _ in MODELS:
            config = _load(model_config)
            learner = _learner(config, seed)
            train(learner, data, epochs or int(config["trainer"]["max_epochs"]))
            panels.append(Panel(model_name, dataset_name, learner, points, labels, list(getattr(data, "class_names", []) or [])))
    return panels


def figure(panels: list[Panel], seed: int = 0) -> Figure:
    """Rows: the data sets; columns: the models; each panel the model's regions on the val split."""
    rows = [name for name, _ in DATASETS]
    columns = [name for name, _, _ in MODELS]
    fig = plots.new_figure(4.3 * len(columns) + 1.6, 4.3 * len(rows) + 1.4)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for panel in panels:
        r, c = rows.index(panel.dataset), columns.index(panel.model)
        ax = axes[r, c]
        xx, yy = plots.make_grid(panel.points, resolution=160, margin=0.15)
        grid = panel.predicted(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
        accuracy = plots.decision_boundary_axes(
            ax, xx, yy, grid, panel.points, panel.labels, panel.class_names or None, panel.predicted(panel.points),
            xlabel="x1" if r == len(rows) - 1 else None, ylabel="x2" if c == 0 else None, marker_size=14,
        )
        good = accuracy is not None and accuracy >= 0.95
        ax.set_title(f"{panel.model} on {panel.dataset}: val accuracy {accuracy:.3f}", fontsize=plots.TITLE_SIZE,
                     color="#1a7f37" if good else "#c62828")
    # one legend per row (the classes differ), right of its last panel, where it hides no data
    for r in range(len(rows)):
        entries: dict[str, Any] = {}
        for ax in axes[r]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                entries.setdefault("misclassified" if label.startswith("misclassified") else label, handle)
        axes[r, -1].legend(list(entries.values()), list(entries.keys()), loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0, fontsize=plots.LEGEND_SIZE,
                           title=rows[r], title_fontsize=plots.LEGEND_SIZE, frameon=False)
    notes = [f"{name}: {what} (recipe of configs/{config}.yaml)" for name, config, what in MODELS]
    notes.append(f"Every model sees the same data (seed {seed}): trained on the training split, drawn on the validation split.")
    plots.add_note(fig, notes)
    fig.suptitle("Module 1: a line separates the linear data, only hidden units separate XOR", fontsize=plots.SUPTITLE_SIZE)
    return fig


def accuracies(panels: list[Panel]) -> dict[str, float]:
    """``{"<model>/<dataset>": val accuracy}`` with short dataset names (linear, xor)."""
    short = {"linearly separable": "linear", "XOR": "xor"}
    return {f"{p.model.lower()}/{short.get(p.dataset, p.dataset)}": p.accuracy for p in panels}


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(1, __doc__.split("\n\n")[0])
    options = parser.parse_args(args)
    panels = run(options.seed, epochs=1 if options.quick else None)
    results = accuracies(panels)
    out = Path(options.out)
    path = plots.save_figure(figure(panels, options.seed), out / "linear_vs_nonlinear.png")
    (out / "accuracies.json").write_text(json.dumps({"seed": options.seed, "val_accuracy": results}, indent=2) + "\n")
    for key, value in results.items():
        print(f"  {key:<18} val accuracy {value:.3f}")
    print(f"[compare] figure: {path}")
    if options.wandb:
        rows = [{"run": key, "model": key.split("/")[0], "dataset": key.split("/")[1], "val_accuracy": value} for key, value in results.items()]
        log_comparison(
            1, NAME, files=[path, out / "accuracies.json"], rows=rows, images={"figures/linear_vs_nonlinear": path},
            config={"seed": options.seed, "quick": options.quick, "datasets": dict(DATASETS), "models": {name: config for name, config, _ in MODELS}},
            models=["perceptron", "adaline", "mlp"], mode=options.wandb_mode,
        )  # fmt: skip
    return 0
