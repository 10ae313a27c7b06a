"""Module 4 side by side: memory across a long sequence, with gates and with attention.

The history of sequence models turns on two contrasts, and this comparison draws each as one plot of
runs trained by their own experiment configs:

**(a) Gates against vanishing gradients: the adding problem** (Hochreiter and Schmidhuber, 1997,
experiment 4; the modern form of Le et al., 2015). Each sequence is T pairs (value, marker); the
target is the sum of the two marked values, one in each half. Always answering 1, the mean of the
target, scores an MSE of Var(u1 + u2) = 2/12 = 1/6 = 0.167: the dashed line that the papers draw.
The validation MSE against the epoch of

==============  =====================================  ================================================
network         config                                 expected
==============  =====================================  ================================================
Elman RNN       ``rnn/adding_problem_weakness``        stays on the 0.167 line: the error sent back
                                                       100 steps is a product of 100 Jacobians and
                                                       vanishes (Bengio et al., 1994)
LSTM            ``lstm/adding_problem_strength``       falls far below it: the cell c_t = f_t c_{t-1}
                                                       + i_t g_t carries the value across (1997)
GRU             ``gru/adding_problem_strength``        falls far below it with three quarters of the
                                                       LSTM's weights (Cho et al., 2014)
==============  =====================================  ================================================

The RNN and the LSTM see sequences of T = 100 steps, the GRU's config T = 50 (its own
calibration); the legend says which.

**(b) Attention against one fixed vector: reversing 32 symbols** (Bahdanau, Cho and Bengio, 2014;
their Figure 2 shows the RNN encoder-decoder's translations falling apart as sentences grow, and
attention holding up). The validation token accuracy (greedy decoding) against the epoch of

===============================================  ===================================================
network                                          config
===============================================  ===================================================
RNN encoder-decoder of GRUs, one fixed vector    ``gru/encoder_decoder_without_attention_weakness``
RNN encoder-decoder of LSTMs, one fixed vector   ``lstm_attention/reversal_no_attention_weakness``
the same LSTMs with additive attention           ``lstm_attention/reversal_attention``
Transformer: attention only (Vaswani, 2017)      ``transformer/reversal_strength`` on this task
===============================================  ===================================================

The first three are the same task as configured (32 symbols drawn from 8). The Transformer's config
reverses 8 symbols drawn from 10; here it is trained on the task of the others instead
(:data:`SAME_REVERSAL`: its vocabulary, output length and data overridden, nothing else), so that
all four curves answer the same question. Without attention, the encoder's summary of 128 numbers
cannot hold 32 symbols, and the accuracy stays low; with attention, every output step looks back
at the source and the accuracy climbs to nearly 1.

Each run is ``ai-scratch fit`` of its config (:func:`ai_scratch.comparisons.runs.fit_experiment`),
every one with the same ``--seed``; the runs land under ``<out>/<model>/<experiment>/version_N``.
Run it with::

    ai-scratch compare module-4                 # runs/comparisons/module-4/sequence_memory.png
    ai-scratch compare module-4 --seed 1 --wandb
    ai-scratch compare module-4 --contrast adding   # panel (a) only: RNN, LSTM and GRU
    ai-scratch compare module-4 --quick         # smoke sizes: draws everything, shows nothing
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ai_scratch.comparisons.runs import FittedRun, chosen_contrasts, comparison_parser, fit_experiment, log_comparison
from callbacks import plots

NAME = "sequence-memory"
#: The error of always answering the target's mean, 1: Var(u1 + u2) for u1, u2 uniform on [0, 1].
MEAN_PREDICTOR_MSE = 1 / 6
#: The Transformer's reversal config retargeted to the task of the encoder-decoders: 32 symbols
#: drawn from 8 (8 symbols + <pad>, <bos>, <eos> = 11 tokens; 32 + <bos> + <eos> = 34 positions).
SAME_REVERSAL = (
    "--model.init_args.source_vocab_size=11", "--model.init_args.target_vocab_size=11",
    "--model.init_args.target_length=34", "--data.init_args.num_symbols=8",
    "--data.init_args.min_length=32", "--data.init_args.max_length=32",
)  # fmt: skip
#: Smaller data sets for ``--quick`` (on top of the smoke sizes of two batches): nothing is expected
#: of the numbers, so nothing is gained from generating and evaluating the full sets.
QUICK_DATA = (
    "--data.init_args.train_size=128", "--data.init_args.val_size=64", "--data.init_args.test_size=64",
    "--data.init_args.batch_size=32",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One curve of the figure: its label, its config, what it stands for, and any overrides."""

    label: str
    experiment: str
    note: str
    overrides: tuple[str, ...] = ()


#: Panel (a): the adding problem.
ADDING = (
    Run("Elman RNN", "rnn/adding_problem_weakness", "one tanh layer (Elman, 1990)"),
    Run("LSTM", "lstm/adding_problem_strength", "input, forget and output gates around a cell (1997)"),
    Run("GRU", "gru/adding_problem_strength", "update and reset gates, no cell (Cho et al., 2014)"),
)
#: Panel (b): reversing 32 symbols, without and with attention.
ATTENTION = (
    Run("GRU encoder-decoder, no attention", "gru/encoder_decoder_without_attention_weakness", "Cho et al. (2014)"),
    Run("LSTM encoder-decoder, no attention", "lstm_attention/reversal_no_attention_weakness", "Sutskever et al. (2014)"),
    Run("LSTM encoder-decoder + attention", "lstm_attention/reversal_attention", "Bahdanau et al. (2014)"),
    Run("Transformer (attention only)", "transformer/reversal_strength", "Vaswani et al. (2017), retargeted to this task",
        SAME_REVERSAL),
)  # fmt: skip
#: What each panel reads from the runs' ``metrics.csv``: the curve, then the final numbers.
ADDING_METRICS = ("val_mse", "test_mse")
ATTENTION_METRICS = ("val_token_accuracy", "test_token_accuracy", "test_sequence_accuracy")
#: The two contrasts, in the order of the figure's panels: their runs and metrics.
CONTRASTS = {"adding": (ADDING, ADDING_METRICS), "attention": (ATTENTION, ATTENTION_METRICS)}
#: The model names of each contrast's runs (the wandb tags).
MODELS = {"adding": ("rnn", "lstm", "gru"), "attention": ("gru", "lstm_attention", "transformer")}
#: What ``--contrast`` says of each.
CONTRAST_HELP = {"adding": "RNN, LSTM and GRU on the adding problem", "attention": "encoder-decoders without and with attention, and the Transformer, reversing 32 symbols"}


def fit(run: Run, seed: int, quick: bool, root: str | Path) -> FittedRun:
    """``ai-scratch fit`` of one run's config with ``seed``; at ``quick`` the smoke sizes and small data."""
    overrides = [*run.overrides, *(QUICK_DATA if quick else ())]
    return fit_experiment(run.experiment, seed=seed, quick=quick, root=root, overrides=overrides)


def _data_setting(fitted: FittedRun, key: str) -> Any:
    """A value of the run's data settings as the fit resolved them (its saved ``config.yaml``)."""
    import yaml

    config = yaml.safe_load((fitted.log_dir / "config.yaml").read_text())
    return config["data"]["init_args"][key]


def summarise(run: Run, fitted: FittedRun, metrics: tuple[str, ...]) -> dict[str, Any]:
    """What the figure and the table need of one fitted run, as plain JSON-ready data."""
    curve, *finals = metrics
    summary: dict[str, Any] = {
        "experiment": run.experiment, "overrides": list(run.overrides), "log_dir": str(fitted.log_dir),
        curve: [[epoch, value] for epoch, value in fitted.curve(curve)],
        **{metric: fitted.last(metric) for metric in finals},
        "claim": str(fitted.claim_result.claim) if fitted.claim_result else None,
        "claim_reproduced": fitted.reproduced, "seconds": round(fitted.seconds, 1),
    }  # fmt: skip
    summary["steps_per_epoch"] = math.ceil(_data_setting(fitted, "train_size") / _data_setting(fitted, "batch_size"))
    if "val_mse" in metrics:
        summary["seq_len"] = int(_data_setting(fitted, "seq_len"))
    return summary


def run(seed: int = 0, quick: bool = False, root: str | Path = "runs/comparisons/module-4",
        contrasts: tuple[str, ...] = tuple(CONTRASTS)) -> dict[str, Any]:
    """Fit every run of the chosen contrasts with ``seed``; returns ``{"seed", "quick", "adding":
    {label: summary}, "attention": {label: summary}}`` (:func:`summarise`), a contrast not chosen absent."""
    results: dict[str, Any] = {"seed": seed, "quick": quick}
    for panel in (name for name in CONTRASTS if name in contrasts):
        runs, metrics = CONTRASTS[panel]
        results[panel] = {}
        for one in runs:
            print(f"[compare] fitting {one.experiment}{' (retargeted)' if one.overrides else ''} ...", flush=True)
            results[panel][one.label] = summarise(one, fit(one, seed, quick, root), metrics)
    return results


def _final(summary: dict[str, Any], metric: str) -> float:
    value = summary.get(metric)
    return math.nan if value is None else float(value)


def _epoch_label(panel: dict[str, Any]) -> str:
    """The x label of a panel: the epoch, and how many optimiser steps one is when every run agrees."""
    steps = {summary.get("steps_per_epoch") for summary in panel.values()}
    return f"epoch (one epoch = {steps.pop()} optimiser steps)" if len(steps) == 1 and None not in steps else "epoch"


def _adding_panel(ax, adding: dict[str, Any]) -> None:
    """The adding problem's validation MSE against the epoch, with the mean predictor's line."""
    values_seen = [MEAN_PREDICTOR_MSE]
    for color, (label, summary) in zip(plots.qualitative_colors(len(adding)), adding.items()):
        epochs = [epoch + 1 for epoch, _ in summary["val_mse"]]  # measured after epoch 1, 2, ...
        values = [value for _, value in summary["val_mse"]]
        values_seen += [value for value in values if value > 0]
        ax.plot(epochs, values, color=color, marker="o", markersize=3.5, linewidth=1.8,
                label=f"{label} (T = {summary['seq_len']} steps): test MSE {_final(summary, 'test_mse'):.4f}")  # fmt: skip
    ax.axhline(MEAN_PREDICTOR_MSE, color="0.25", linestyle="--", linewidth=1.3,
               label=f"always answering the mean, 1: MSE 1/6 = {MEAN_PREDICTOR_MSE:.3f}")  # fmt: skip
    plots.log_y(ax, min(values_seen), max(values_seen))
    plots.style_axes(ax, "(a) Adding problem: the gated units go far below the line, the Elman RNN stays on it",
                     _epoch_label(adding), "validation MSE (log scale)")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)


def _attention_panel(ax, attention: dict[str, Any]) -> None:
    """The reversal's validation token accuracy against the epoch: dashed without attention."""
    for color, (label, summary) in zip(plots.qualitative_colors(len(attention)), attention.items()):
        epochs = [epoch + 1 for epoch, _ in summary["val_token_accuracy"]]
        values = [value for _, value in summary["val_token_accuracy"]]
        ax.plot(epochs, values, color=color, marker="o", markersize=3.5, linewidth=1.8,
                linestyle="--" if "no attention" in label else "-",
                label=f"{label}: test tokens {_final(summary, 'test_token_accuracy'):.3f}, "
                      f"whole sequences {_final(summary, 'test_sequence_accuracy'):.3f}")  # fmt: skip
    ax.axhline(1 / 8, color="0.25", linestyle=":", linewidth=1.3, label="guessing one of the 8 symbols: 0.125")
    ax.set_ylim(0, 1.03)
    plots.style_axes(ax, "(b) Reversing 32 symbols: one fixed vector is not enough, attention is",
                     _epoch_label(attention), "validation token accuracy (greedy decoding)")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="center right", framealpha=0.9)


def figure(results: dict[str, Any]) -> Figure:
    """One panel per contrast in ``results``: (a) the adding problem, (b) attention against none."""
    panels = [name for name in CONTRASTS if name in results]
    fig = plots.new_figure(7.8 * len(panels) + 0.4, 6.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    draw = {"adding": _adding_panel, "attention": _attention_panel}
    for ax, panel in zip(axes, panels):
        draw[panel](ax, results[panel])
    notes = [f"(a) {r.label}: configs/{r.experiment}.yaml, {r.note}" for r in ADDING if r.label in results.get("adding", {})]
    notes += [f"(b) {r.label}: configs/{r.experiment}.yaml{' with its task set to this one' if r.overrides else ''}, {r.note}"
              for r in ATTENTION if r.label in results.get("attention", {})]  # fmt: skip
    notes.append(f"Every run is `ai-scratch fit` of its config with seed {results['seed']}"
                 + (" at smoke sizes (--quick): the curves show nothing." if results.get("quick") else "."))  # fmt: skip
    plots.add_note(fig, notes)
    titles = {"adding": "gates carry a value across 100 steps", "attention": "attention frees the decoder from one fixed vector"}
    plots.add_title(fig, "Module 4: " + "; ".join(titles[panel] for panel in panels))
    return fig


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: the panel, label, config, final numbers, the config's claim and its verdict."""
    rows = []
    for panel, (_, metrics) in CONTRASTS.items():
        for label, summary in results.get(panel, {}).items():
            row = {"run": label, "panel": panel, "experiment": summary["experiment"]}
            row.update({metric: _final(summary, metric) for metric in metrics[1:]})
            row.update(claim=summary["claim"], reproduced=summary["claim_reproduced"], seconds=summary["seconds"])
            rows.append(row)
    return rows


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(4, __doc__.split("\n\n")[0], CONTRAST_HELP)
    options = parser.parse_args(args)
    contrasts = chosen_contrasts(options, list(CONTRASTS))
    out = Path(options.out)
    results = run(options.seed, options.quick, root=out, contrasts=contrasts)
    path = plots.save_figure(figure(results), out / "sequence_memory.png")
    json_path = out / "sequence_memory.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    rows = table(results)
    for row in rows:
        numbers = "  ".join(f"{key} {row[key]:.4f}" for key in ("test_mse", "test_token_accuracy", "test_sequence_accuracy") if key in row)
        print(f"  {row['run']:<36} {numbers}  claim {row['claim']}: {'reproduced' if row['reproduced'] else 'not reproduced'}")
    print(f"[compare] figure: {path}")
    if options.wandb:
        log_comparison(
            4, NAME, files=[path, json_path], rows=rows, images={"figures/sequence_memory": path},
            config={"seed": options.seed, "quick": options.quick,
                    **{panel: {r.label: r.experiment for r in CONTRASTS[panel][0]} for panel in contrasts},
                    **({"transformer_overrides": list(SAME_REVERSAL)} if "attention" in contrasts else {})},
            models=list(dict.fromkeys(model for panel in contrasts for model in MODELS[panel])), mode=options.wandb_mode,
        )  # fmt: skip
    return 0
