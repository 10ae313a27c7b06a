"""Module 5 side by side: what each generative model draws, next to real digits.

The generative era in one figure. Three ways to model ``p(x)`` learn the same 8x8 handwritten
digits (scikit-learn's 1,797, split into the same 1,197 training, 300 validation and 300 test
digits by every config), each with the recipe of its own experiment config, and each then draws
new digits with its own ``sample(n)``:

=========  ==================================  ===================================================
model      recipe (config)                     how it draws a digit
=========  ==================================  ===================================================
VAE        ``vae/digits_elbo_strength``        z ~ N(0, I), then the decoder's mean E[x | z]
           (Kingma & Welling, 2013)            (the pixel probabilities of a Bernoulli decoder)
DCGAN      ``dcgan/digits_strength``           z ~ U[-1, 1]^100, then one pass of the generator
           (Radford, Metz & Chintala, 2015)    G(z), trained against a discriminator
DDPM       ``ddpm/digits_strength``            x_T ~ N(0, I), then T = 250 small denoising steps
           (Ho, Jain & Abbeel, 2020)           of a U-Net (ancestral sampling, Algorithm 2)
=========  ==================================  ===================================================

The top row of the figure is four grids of 64 digits: real held-out test digits, then the
samples of each model. What to look for: the VAE draws smooth, blurred averages (its decoder's
mean, a compromise over every digit that its posterior could have come from); the DCGAN and DDPM
draw sharp strokes like the real ones. Under each grid, the sample-quality numbers that the run
itself logged at test (300 test digits against 300 samples, ``ai_scratch/generative_era/evaluation.py``):

* FID on the features of our own digit classifier (Heusel et al., 2017): lower is closer to
  real digits. Two sets of 300 real digits are not at 0 (FID is biased upward at small sizes):
  the floor, the real validation digits against the real test digits, is drawn beside the models,
  and so is uniform noise (the ceiling);
* the classifier score (the Inception Score of Salimans et al., 2016, with the same classifier):
  10 for confident digits spread evenly over the ten classes, 1 for one digit only.

These FIDs compare with each other only, not with FIDs published on Inception features.

The plain GAN (Goodfellow et al., 2014) has no digits config: its experiment is the eight
Gaussians on a ring, where the question is whether the samples reach every mode. The bottom row
shows it as its own panel, beside DDPM on its own two-dimensional data (two moons, ``ddpm/moons_strength``):
two different data sets, each with its held-out points and its model's samples, and the numbers
of its own run (modes covered and high-quality fraction for the GAN; MMD for both, which is not
comparable across the two panels).

Each run is ``ai-scratch fit --config <config>`` in this process (:func:`~ai_scratch.comparisons.runs.fit_experiment`);
the samples come from the checkpoint that the run tested (the best by the config's monitor), loaded
with ``load_from_checkpoint`` and asked for ``sample(n)`` under the comparison's seed. Run it with::

    ai-scratch compare module-5                   # runs/comparisons/module-5/generative_samples.png
    ai-scratch compare module-5 --seed 1 --wandb
    ai-scratch compare module-5 --quick           # smoke sizes: draws everything, shows nothing
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure

from ai_scratch.comparisons.runs import FittedRun, as_rows, comparison_parser, fit_experiment, log_comparison
from ai_scratch.generative_era.evaluation import classifier_score, fid
from ai_scratch.registry import find_config
from callbacks import plots
from callbacks.samples import frame_plane, image_grid, ink_range, outside_note, seeded_random_state, show_image

NAME = "generative-samples"
FIGURE = "generative_samples.png"
TABLE = "generative_samples.json"


@dataclass(frozen=True)
class Entry:
    """One run of the comparison: who drew it, from which config, and what it is."""

    key: str  # short name: the table's row and the wandb keys
    model: str
    config: str
    what: str


#: The models that learn the same digits: the top row of the figure, after the real digits.
DIGIT_MODELS = (
    Entry("vae", "VAE", "vae/digits_elbo_strength", "Kingma & Welling 2013: decoder mean of z ~ N(0, I)"),
    Entry("dcgan", "DCGAN", "dcgan/digits_strength", "Radford et al. 2015: convolutional generator G(z), trained against D"),
    Entry("ddpm", "DDPM", "ddpm/digits_strength", "Ho et al. 2020: 250 denoising steps of a U-Net from noise"),
)
#: The two-dimensional runs, each on its own data: the bottom row.
PLANE_MODELS = (
    Entry("gan", "GAN", "gan/eight_gaussians_strength", "Goodfellow et al. 2014: MLP generator G(z) on eight Gaussians"),
    Entry("ddpm-moons", "DDPM", "ddpm/moons_strength", "Ho et al. 2020: 1,000 denoising steps of an MLP on two moons"),
)
#: Every run by its key (``--models``).
MODELS = {entry.key: entry for entry in (*DIGIT_MODELS, *PLANE_MODELS)}
PLANE_DATA = {"gan": "eight Gaussians", "ddpm-moons": "two moons"}
#: What each run logged at test about its samples.
DIGIT_METRICS = ("test_fid", "test_classifier_score")
PLANE_METRICS = ("test_mmd", "test_modes_covered", "test_high_quality_fraction")
#: At ``--quick``, far fewer denoising steps: sampling at test is what makes a DDPM fit slow, and
#: the smoke sizes show nothing about the numbers anyway.
QUICK_OVERRIDES = {"ddpm/digits_strength": ["--model.timesteps=10"], "ddpm/moons_strength": ["--model.timesteps=10"]}
#: Samples drawn for the figure: an 8x8 grid of digits; enough points to show every mode.
DIGIT_SAMPLES, PLANE_SAMPLES = 64, 1000


@dataclass
class Drawn:
    """A fitted run and the samples its tested checkpoint drew for the figure."""

    entry: Entry
    run: FittedRun
    samples: np.ndarray  # (n, 1, 8, 8) images, or (n, 2) points, as the model gives them
    held_out: np.ndarray  # the test split the run was measured on (images or points)
    checkpoint: Path


def _config(name: str) -> dict[str, Any]:
    path = find_config(name)
    if path is None:
        raise FileNotFoundError(f"no experiment config {name!r}")
    return yaml.safe_load(Path(path).read_text())


def _instance(spec: dict[str, Any], **changes: Any) -> Any:
    """``class_path`` + ``init_args`` of a config section, built (with ``changes`` applied)."""
    module_name, class_name = spec["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)(**{**spec.get("init_args", {}), **changes})


def draw_samples(entry: Entry, run: FittedRun, n: int, seed: int) -> tuple[np.ndarray, Path]:
    """Load the run's tested checkpoint as the config's model class and call its own ``sample(n)``,
    with the global random numbers seeded by ``seed`` (the caller's random state is kept)."""
    model_class_path = _config(entry.config)["model"]["class_path"]
    module_name, class_name = model_class_path.rsplit(".", 1)
    model_class = getattr(importlib.import_module(module_name), class_name)
    checkpoint = run.tested_checkpoint()
    model = model_class.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    with torch.no_grad(), seeded_random_state(torch.device("cpu"), seed):
        samples = model.sample(n)
    return samples.detach().float().cpu().numpy(), checkpoint


def held_out(config: str, split: str = "test") -> np.ndarray:
    """The inputs of a split of the config's own datamodule (its data seed, its normalisation)."""
    data = _instance(_config(config)["data"])
    data.setup("fit")
    return np.asarray(data.arrays(split)[0], dtype=np.float32)


def real_digit_references(seed: int) -> dict[str, dict[str, float]]:
    """FID and classifier score of real digits and of noise, measured as the runs measure their
    samples (the 300 test digits as the held-out set): the real validation digits (the floor of
    FID at this size) and uniform noise of the same shape (far from any digit)."""
    test = torch.from_numpy(held_out(DIGIT_MODELS[0].config, "test"))
    val = torch.from_numpy(held_out(DIGIT_MODELS[0].config, "val"))
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(seed))
    return {
        "real-digits": {"test_fid": float(fid(val, test)), "test_classifier_score": float(classifier_score(val))},
        "uniform-noise": {"test_fid": float(fid(noise, test)), "test_classifier_score": float(classifier_score(noise))},
    }


def run(seed: int = 0, quick: bool = False, root: str | Path = "runs/comparisons/module-5", models: Sequence[str] | None = None) -> list[Drawn]:
    """Fit every config (seed ``seed``), or those of ``models`` (keys of :data:`MODELS`), then draw
    each run's samples from its tested checkpoint."""
    drawn = []
    for entry in (*DIGIT_MODELS, *PLANE_MODELS):
        if models is not None and entry.key not in models:
            continue
        overrides = QUICK_OVERRIDES.get(entry.config, []) if quick else []
        print(f"[compare] fitting {entry.config} (seed {seed}{', quick' if quick else ''})", flush=True)
        fitted = fit_experiment(entry.config, seed=seed, quick=quick, root=root, overrides=overrides)
        count = DIGIT_SAMPLES if entry in DIGIT_MODELS else PLANE_SAMPLES
        samples, checkpoint = draw_samples(entry, fitted, count, seed)
        drawn.append(Drawn(entry, fitted, samples, held_out(entry.config, "test"), checkpoint))
    return drawn


# ---------------------------------------------------------------------- the table
def rows(drawn: list[Drawn], references: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per run (its test numbers, claim, seconds), then the two reference rows; metrics
    that a run does not log are left out of its row."""
    runs = {d.entry.key: d.run for d in drawn}
    table = []
    for d, row in zip(drawn, as_rows(runs, (*DIGIT_METRICS, *PLANE_METRICS))):
        data = "8x8 digits" if d.entry in DIGIT_MODELS else PLANE_DATA[d.entry.key]
        clean = {key: value for key, value in row.items() if not (isinstance(value, float) and math.isnan(value))}
        table.append({"run": clean.pop("run"), "model": d.entry.model, "data": data, **clean})
    for key, values in references.items():
        table.append({"run": key, "model": "reference", "data": "8x8 digits", "experiment": "evaluation.py on the test split", **values})
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)

    print(f"  {'run':<21} {'data':<16} {'FID':>7} {'score':>6} {'MMD':>8} {'modes':>6} {'hq':>6}  claim")
    for row in table:
        verdict = {True: "reproduced", False: "NOT reproduced"}.get(row.get("reproduced"), "")
        print(
            f"  {row['run']:<21} {row['data']:<16} {show(row.get('test_fid')):>7} {show(row.get('test_classifier_score')):>6} "
            f"{show(row.get('test_mmd')):>8} {show(row.get('test_modes_covered')):>6} {show(row.get('test_high_quality_fraction')):>6}  {verdict}"
        )


# ---------------------------------------------------------------------- the figure
def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def figure(drawn: list[Drawn], references: dict[str, dict[str, float]], seed: int = 0, quick: bool = False) -> Figure:
    """Top: real digits and each model's samples, with their FID and classifier score. Bottom: the
    two 2-D runs on their own data, and the digit models' numbers as bars beside the real floor and noise."""
    digits = [d for d in drawn if d.entry in DIGIT_MODELS]
    planes = [d for d in drawn if d.entry in PLANE_MODELS]
    top_count, bottom_count = 1 + len(digits), len(planes) + 2
    fig = plots.new_figure(4.5 * max(top_count, bottom_count), 10.6)
    grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 0.95])
    top, bottom = grid[0].subgridspec(1, top_count), grid[1].subgridspec(1, bottom_count)
    colors = plots.qualitative_colors(len(DIGIT_MODELS) + 1)
    color_of = {"real": colors[0], **{e.model: colors[i] for i, e in enumerate(DIGIT_MODELS, start=1)}}

    # top row: 64 real test digits, then 64 samples of each digit model, all shown with ink in [0, 1]
    real_images = digits[0].held_out if digits else held_out(DIGIT_MODELS[0].config)
    spaced = np.unique(np.linspace(0, len(real_images) - 1, DIGIT_SAMPLES).round().astype(int))
    real = references["real-digits"]
    show_image(fig.add_subplot(top[0, 0]), image_grid(ink_range(real_images[spaced], real_images)[0], 8),
               f"Real held-out digits (test split)\nFID {_number(real['test_fid'])} (val vs test: the floor), "
               f"score {_number(real['test_classifier_score'])}")  # fmt: skip
    for column, d in enumerate(digits, start=1):
        ax = fig.add_subplot(top[0, column])
        shown = ink_range(d.samples, d.held_out)[0]
        show_image(ax, image_grid(shown, 8), f"{d.entry.model} samples ({d.entry.what.split(':')[0]})\n"
                   f"FID {_number(d.run.last('test_fid'))}, score {_number(d.run.last('test_classifier_score'))}")  # fmt: skip
        for spine in ax.spines.values():
            spine.set_edgecolor(color_of[d.entry.model])
            spine.set_linewidth(3)

    # bottom left: each 2-D run on its own data
    for column, d in enumerate(planes):
        ax = fig.add_subplot(bottom[0, column])
        data_name = PLANE_DATA[d.entry.key]
        ax.scatter(d.held_out[:, 0], d.held_out[:, 1], s=5, alpha=0.35, color="0.45", label=f"held-out test points ({len(d.held_out)})")
        ax.scatter(d.samples[:, 0], d.samples[:, 1], s=5, alpha=0.5, color="#c62828", label=f"{d.entry.model} samples ({len(d.samples)})")
        outside = frame_plane(ax, d.held_out, d.samples)
        numbers = f"MMD {_number(d.run.last('test_mmd'), 4)}"
        if math.isfinite(d.run.last("test_modes_covered")):  # a mixture with known modes: the GAN's ring
            numbers = (f"modes covered {_number(d.run.last('test_modes_covered'), 0)} of 8, "
                       f"high quality {_number(d.run.last('test_high_quality_fraction'), 2)}, {numbers}")  # fmt: skip
        plots.style_axes(ax, title=f"{d.entry.model} on its own data: {data_name}\n{numbers}", xlabel="x", ylabel="y" if column == 0 else None)
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, markerscale=3, frameon=False)
        if outside:
            ax.text(0.02, 0.02, outside_note(outside, "sample"), transform=ax.transAxes, fontsize=plots.NOTE_SIZE, color=plots.NOTE_COLOR)

    # bottom right: the digit models' numbers as bars, real digits and noise as reference lines
    names = ["real", *(d.entry.model for d in digits)]
    noise = references["uniform-noise"]
    for column, (metric, label, better) in enumerate(
        (("test_fid", "FID (digit-classifier features)", "lower is better"), ("test_classifier_score", "classifier score", "higher is better")),
        start=len(planes),
    ):
        ax = fig.add_subplot(bottom[0, column])
        values = [real[metric], *(d.run.last(metric) for d in digits)]
        bars = ax.bar(names, [v if math.isfinite(v) else 0.0 for v in values], color=[color_of[name] for name in names], edgecolor="0.2")
        ax.bar_label(bars, labels=[_number(v) for v in values], fontsize=plots.TICK_SIZE, padding=2)
        ax.axhline(noise[metric], color="0.3", linestyle="--", linewidth=1.2, label=f"uniform noise: {_number(noise[metric])}")
        if metric == "test_fid":
            finite = [v for v in (*values, noise[metric]) if math.isfinite(v) and v > 0]
            plots.log_y(ax, min(finite), max(finite) * 1.6)
        else:
            ax.set_ylim(0, 11)
            ax.axhline(10, color="0.6", linestyle=":", linewidth=1, label="10: confident, all ten digits")
        plots.style_axes(ax, title=f"{label}: {better}", ylabel=label)
        ax.grid(False, axis="x")
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)

    # one line that fits the figure's width: a wrapped suptitle is not measured by the layout
    fig.suptitle(
        "Module 5: the VAE draws blurred averages of digits, the DCGAN and DDPM draw sharp strokes"
        + (" (smoke sizes: nothing to read)" if quick else ""),
        fontsize=plots.SUPTITLE_SIZE,
    )
    notes = [f"{d.entry.model}: {d.entry.what} (configs/{d.entry.config}.yaml)" for d in drawn]
    if quick:
        notes.append("Smoke sizes (--quick): one epoch of two batches per fit, and 10 denoising steps for each DDPM, not the configs' own.")
    notes += [
        f"Seed {seed} for every fit and for the samples; each model's sample(n) from the checkpoint its run tested. "
        "FID and score are the runs' own test numbers: 300 test digits against 300 samples, features of our digit classifier "
        "(evaluation.py), comparable with each other, not with published FIDs.",
    ]
    if len(planes) > 1:
        notes.append("The bottom-left panels are two different data sets (the GAN's config is the eight Gaussians): their MMDs do not compare.")
    plots.add_note(fig, notes)
    return fig


# ---------------------------------------------------------------------- the command
def _model_keys(text: str) -> list[str]:
    keys = [key.strip() for key in text.split(",")]
    unknown = [key for key in keys if key not in MODELS]  # an empty name ("vae,,gan") is unknown too
    if unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODELS)}, got {text!r}")
    return keys


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(5, __doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", type=_model_keys, default=list(MODELS),
        help=f"comma-separated runs to fit and draw, of {', '.join(MODELS)} (default: all)",
    )  # fmt: skip
    options = parser.parse_args(args)
    out = Path(options.out)
    drawn = run(options.seed, options.quick, out, options.models)
    references = real_digit_references(options.seed)
    table = rows(drawn, references)
    path = plots.save_figure(figure(drawn, references, options.seed, options.quick), out / FIGURE)
    record = {
        "seed": options.seed,
        "quick": options.quick,
        "runs": table,
        "checkpoints": {d.entry.key: str(d.checkpoint) for d in drawn},
    }
    (out / TABLE).write_text(json.dumps(record, indent=2) + "\n")
    print_table(table)
    print(f"[compare] figure: {path}")
    if options.wandb:
        log_comparison(
            5, NAME, files=[path, out / TABLE], rows=table, images={"figures/generative_samples": path},
            config={"seed": options.seed, "quick": options.quick, "configs": {d.entry.key: d.entry.config for d in drawn}},
            models=sorted({d.entry.config.split("/")[0] for d in drawn}), mode=options.wandb_mode,
        )  # fmt: skip
    return 0
