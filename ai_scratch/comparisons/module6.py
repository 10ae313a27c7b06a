"""Module 6 side by side: the graph in the network, pre-training on unlabelled text, and ternary weights.

The modern paradigm turns on three ideas, and this comparison draws each as one row of two panels,
every curve a run of the module's own experiment configs (fitted as ``ai-scratch fit`` fits them,
all with the same ``--seed``):

**(a) The graph in the network** (Kipf and Welling, 2017). Zachary's karate club: 34 members, their
friendships, no features (X = I, the paper's Appendix A), and the faction of only two of them
(Mr. Hi and the Officer) in the loss; 8 members validate, 24 test.

=============================  ============================================  =====================================
network                        config                                        expected
=============================  ============================================  =====================================
GCN, 2 layers                  ``gcn/karate_strength``                       nearly every member right: each layer
                                                                             averages a node with its friends (eq. 2)
the same, Â replaced by I      ``gcn/karate_mlp_weakness``                   a coin: with no edges and no features,
(an MLP)                                                                     an unlabelled member is a one-hot input
                                                                             that no gradient reached (loss ~ ln 2)
GCN, 32 layers                 ``gcn/karate_oversmoothing_weakness``         chance: 32 averagings make every member
                                                                             alike (over-smoothing)
=============================  ============================================  =====================================

The left panel is the loss over the epochs (training loss on the two labelled members dashed,
validation loss solid), with the loss of answering one half for everybody, ln 2. The right panel
places each network's test accuracy by its number of graph-convolution layers, as the paper's
Appendix B, Figure 5 does (its best depth 2 or 3, training growing difficult beyond about 7 layers
without residual connections), with the paper's own numbers on Cora beside ours for reference:
GCN 81.5% (Table 2) against an MLP's 55.1% (Table 3).

**(b) Pre-training on unlabelled text** (Devlin et al., 2018). The left panel: BERT's masked language
model (Section 3.1: 15% of the word pieces chosen, 80% of them replaced by ``[MASK]``, 10% by a random
piece, 10% kept) learning on the pydoc pre-training documents (``bert/masked_lm_pretraining``): the
share of masked pieces of the held-out validation documents it names right, against the best any
constant guess could do there (the most frequent masked piece, chosen with the answers in hand:
:func:`best_constant_guess`). The right panel: the same network trained from scratch on the 128
labelled sentences of the fine-tuning task, telling real sentences from shuffled ones
(``bert/from_scratch_weakness``): in 40 epochs it only begins to fit its 128 training sentences, and
stays at chance on the others. Pre-training is the paper's answer to that; in this miniature,
fine-tuning the pre-trained network did not beat chance either (``configs/bert/not_reproduced/``,
and the note under the figure).

**(c) Ternary weights** (Ma et al., 2024, BitNet b1.58). An MLP of one ``BitLinear`` hidden layer
(weights in {-1, 0, +1} times one scale, 8-bit activations) on scikit-learn's 8x8 digits, trained
beside its full-precision twin (the same network and initial weights, the same batches, the same
fit). At width 256 (``bitnet/digits_width256_strength``) the two match; at width 8
(``bitnet/narrow_width_weakness``) three levels a weight cost capacity, and the ternary network fits
its training digits less well. The left panel puts both networks' accuracies of both widths side by
side, on the training digits (the last epoch) and the 300 validation digits (the last epoch's
weights); the right panel is what the paper trades for that: the bits a weight takes (32 in float32
as these networks train, 16 in the paper's FP16 LLaMA baseline, 2 in the packed codes of
:func:`~ai_scratch.modern_paradigm.bitnet.save_packed`, log2(3) = 1.58 of information), with the
paper's headline (Table 1, 3B: LLaMA 7.89 GB at perplexity 10.04, BitNet b1.58 2.22 GB at 9.91).

Each run is ``ai-scratch fit`` of its config (:func:`ai_scratch.comparisons.runs.fit_experiment`),
the runs under ``<out>/<model>/<experiment>/version_N``; the figure is ``modern_paradigm.png``, every
curve and number ``modern_paradigm.json``, both under ``--out``. Run it with::

    ai-scratch compare module-6                   # runs/comparisons/module-6/modern_paradigm.png
    ai-scratch compare module-6 --seed 1 --wandb
    ai-scratch compare module-6 --contrast graphs # row (a) only: the three GCN runs
    ai-scratch compare module-6 --quick           # smoke sizes: draws everything, shows nothing
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ai_scratch.comparisons.runs import FittedRun, chosen_contrasts, comparison_parser, fit_experiment, log_comparison
from callbacks import plots

NAME = "modern-paradigm"
FIGURE = "modern_paradigm.png"
NUMBERS = "modern_paradigm.json"


@dataclass(frozen=True)
class Run:
    """One run of the comparison: its label (in the figure, the table and wandb), its config, what it
    stands for, and its colour."""

    label: str
    experiment: str
    note: str
    color: str


#: Row (a): the graph in the network.
GRAPHS = (
    Run("GCN, 2 layers", "gcn/karate_strength", "the paper's two-layer model and recipe", "#2ca02c"),
    Run("MLP (GCN with Â = I)", "gcn/karate_mlp_weakness", "the same network without the edges", "#7f7f7f"),
    Run("GCN, 32 layers", "gcn/karate_oversmoothing_weakness", "the same network, 32 graph convolutions", "#d62728"),
)
#: Row (b): pre-training on unlabelled text, and its absence.
PRETRAINING = (
    Run("BERT, masked-LM pre-training", "bert/masked_lm_pretraining", "25 epochs of masked LM on the pydoc documents", "#1f77b4"),
    Run("BERT from scratch, 128 labels", "bert/from_scratch_weakness", "40 epochs on 128 labelled sentences, no pre-training", "#d62728"),
)
#: Row (c): ternary weights against full precision, wide and narrow.
TERNARY = (
    Run("BitNet b1.58 MLP, width 256", "bitnet/digits_width256_strength", "one BitLinear hidden layer of 256 units", "#1f77b4"),
    Run("BitNet b1.58 MLP, width 8", "bitnet/narrow_width_weakness", "one BitLinear hidden layer of 8 units", "#d62728"),
)
#: What each row reads from the runs' ``metrics.csv``: the curves, then the final numbers.
CURVES = {
    "graphs": ("train_loss", "val_loss"),
    "pretraining": ("train_mlm_accuracy", "val_mlm_accuracy", "train_accuracy", "val_accuracy"),
    "ternary": ("train_accuracy", "train_full_precision_accuracy"),
}
FINALS = {
    "graphs": ("test_accuracy", "test_loss"),
    "pretraining": ("val_mlm_accuracy", "train_accuracy", "test_accuracy"),
    "ternary": ("train_accuracy", "train_full_precision_accuracy", "train_accuracy_gap",
                "val_accuracy", "val_full_precision_accuracy", "val_accuracy_gap", "test_accuracy_gap"),
}  # fmt: skip
#: The three contrasts, in the order of the figure's rows, and what ``--contrast`` says of each.
CONTRASTS = {"graphs": GRAPHS, "pretraining": PRETRAINING, "ternary": TERNARY}
CONTRAST_HELP = {
    "graphs": "GCN against an MLP that ignores the edges, and a 32-layer GCN, on the karate club",
    "pretraining": "BERT's masked-LM pre-training, and the same BERT trained from scratch on 128 labels",
    "ternary": "BitNet b1.58 against its full-precision twin at widths 256 and 8, and the bits of a weight",
}
#: The model names of each contrast's runs (the wandb tags).
MODELS = {"graphs": ("gcn",), "pretraining": ("bert",), "ternary": ("bitnet",)}

#: Kipf and Welling (2017) on Cora: the GCN (Table 2) and an MLP on the node features alone (Table 3).
PAPER_CORA = {"GCN (Table 2)": 0.815, "MLP (Table 3)": 0.551}
#: Where the Cora references stand on the depth axis: inside the band of the paper's best depths,
#: beside (not on) our own 2-layer points.
PAPER_MARK_AT = 2.5
#: Kipf and Welling (2017), Appendix B, Figure 5: the best depth, and where training grows difficult.
PAPER_BEST_DEPTHS, PAPER_DIFFICULT_DEPTH = (2, 3), 7
#: Ma et al. (2024), Table 1, the 3B models: memory at inference (GB) and perplexity.
PAPER_3B = {"LLaMA FP16": {"memory_gb": 7.89, "perplexity": 10.04}, "BitNet b1.58": {"memory_gb": 2.22, "perplexity": 9.91}}
#: The bits one weight takes, from how these networks train to the information a ternary weight holds.
BITS_PER_WEIGHT = {
    "float32 (how the latent weights train)": 32.0,
    "FP16 (the paper's LLaMA baseline)": 16.0,
    "2-bit codes (save_packed: 4 weights a byte)": 2.0,
    "ternary: log2(3) bits of information": math.log2(3),
}


# ---------------------------------------------------------------------------------------------- runs
def _saved_config(fitted: FittedRun) -> dict[str, Any]:
    """The run's configuration as the fit resolved it (its saved ``config.yaml``)."""
    return yaml.safe_load((fitted.log_dir / "config.yaml").read_text())


def _number_or_none(value: float) -> float | None:
    """JSON has no NaN: a metric a run never logged is ``None`` (null)."""
    return None if math.isnan(value) else value


def best_constant_guess(fitted: FittedRun) -> dict[str, Any]:
    """The best any constant guess can do on the masked validation pieces of a BERT run's data.

    Rebuilds the run's ``TextDataModule`` from its saved config (the same documents, vocabulary and
    the validation masks, drawn once at setup) and finds the word piece most often behind a mask
    there: guessing it at every masked position is right ``share`` of the time. It is chosen with
    the answers in hand, so no constant guess does better: the honest floor for ``val_mlm_accuracy``.
    """
    from datamodules.text import IGNORE_INDEX, TextDataModule

    data = TextDataModule(**_saved_config(fitted)["data"]["init_args"])
    data.setup()
    labels = data.pretraining["val"].tensors["mlm_labels"]
    answers = labels[labels != IGNORE_INDEX]
    counts = torch.bincount(answers, minlength=len(data.itos))
    best = int(counts.argmax())
    return {"piece": data.itos[best], "share": float(counts[best]) / len(answers), "masked_positions": len(answers)}


def ternary_storage(fitted: FittedRun) -> dict[str, int]:
    """The quantised weights of a BitNet MLP run (its hidden ``BitLinear`` layers; the output layer
    stays in full precision, as the paper keeps it) and their bytes packed and in FP16."""
    from ai_scratch.modern_paradigm.bitnet import BitNetMLP, ternary_weight_bytes

    return ternary_weight_bytes(BitNetMLP(**_saved_config(fitted)["model"]["init_args"]).network)


def summarise(panel: str, run: Run, fitted: FittedRun) -> dict[str, Any]:
    """What the figure and the table need of one fitted run, as plain JSON-ready data."""
    summary: dict[str, Any] = {
        "experiment": run.experiment, "log_dir": str(fitted.log_dir),
        "curves": {metric: [[epoch, value] for epoch, value in fitted.curve(metric)] for metric in CURVES[panel]},
        **{metric: _number_or_none(fitted.last(metric)) for metric in FINALS[panel]},
        "claim": str(fitted.claim_result.claim) if fitted.claim_result else None,
        "claim_reproduced": fitted.reproduced, "seconds": round(fitted.seconds, 1),
    }  # fmt: skip
    model = _saved_config(fitted)["model"]["init_args"]
    if panel == "graphs":
        summary.update(num_layers=model["num_layers"], propagation=model["propagation"])
    elif panel == "pretraining":
        summary["pretraining_epochs"] = model["pretraining_epochs"]
        if model["pretraining_epochs"]:
            summary["best_constant_guess"] = best_constant_guess(fitted)
    else:
        summary.update(width=model["width"], ternary_storage=ternary_storage(fitted))
    return summary


def run(seed: int = 0, quick: bool = False, root: str | Path = "runs/comparisons/module-6",
        contrasts: tuple[str, ...] = tuple(CONTRASTS)) -> dict[str, Any]:  # fmt: skip
    """Fit every run of the chosen contrasts with ``seed``; returns ``{"seed", "quick", "graphs":
    {label: summary}, "pretraining": {...}, "ternary": {...}}`` (:func:`summarise`), a contrast not
    chosen absent."""
    results: dict[str, Any] = {"seed": seed, "quick": quick}
    for panel in (name for name in CONTRASTS if name in contrasts):
        results[panel] = {}
        for one in CONTRASTS[panel]:
            print(f"[compare] fitting {one.experiment} ({one.label}) ...", flush=True)
            fitted = fit_experiment(one.experiment, seed=seed, quick=quick, root=root)
            results[panel][one.label] = summarise(panel, one, fitted)
    return results


# -------------------------------------------------------------------------------------------- figure
def _series(summary: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs completed, values)`` of one logged curve (a metric logged after epoch 0 is at 1)."""
    points = np.asarray(summary["curves"].get(metric, []), dtype=float).reshape(-1, 2)
    return points[:, 0] + 1, points[:, 1]


def _text(value: float | None, form: str = ".3f") -> str:
    return "n/a" if value is None else format(value, form)


def _percent(ax) -> None:
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))  # as many decimals as the axis' range needs


def _epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=0)


def _graph_loss_panel(ax, graphs: dict[str, Any]) -> None:
    """The three networks' loss over the epochs: training (two labelled members) dashed, validation solid."""
    colors = {run.label: run.color for run in GRAPHS}
    for label, summary in graphs.items():
        epochs, values = _series(summary, "train_loss")
        ax.plot(epochs, values, "--", color=colors[label], linewidth=1.0, alpha=0.55, marker="o", markersize=1.5,
                label=f"{label}: training (2 labelled members, dropout on)")  # fmt: skip
    for label, summary in graphs.items():  # on top of every training curve; the MLP's wide, so that a curve on it shows
        epochs, values = _series(summary, "val_loss")
        ax.plot(epochs, values, "-", color=colors[label], linewidth=4.0 if summary["propagation"] == "none" else 2.0,
                marker="o", markersize=2, label=f"{label}: validation (8 members)")  # fmt: skip
    ax.axhline(math.log(2), color="0.25", linestyle=":", linewidth=1.3, label="answering 1/2 for everybody: ln 2 = 0.693")
    ax.set_ylim(0, 1.2)
    plots.style_axes(ax, "(a) Karate club, 2 labelled members: the graph carries their labels\n"
                     "to the others; without edges, or through 32 layers, the rest stay a coin toss",
                     "epochs (one full-batch step each)", "cross-entropy")  # fmt: skip
    _epochs(ax)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper right", framealpha=0.9, ncol=1)


def _depth_panel(ax, graphs: dict[str, Any]) -> None:
    """Test accuracy by the number of graph-convolution layers, as the paper's Figure 5, with its
    best depths, where its training grows difficult, and its Cora numbers for reference."""
    colors = {run.label: run.color for run in GRAPHS}
    gcn = sorted((s["num_layers"], s["test_accuracy"], label) for label, s in graphs.items() if s["propagation"] != "none")
    if len(gcn) > 1:
        ax.plot([d for d, *_ in gcn], [a if a is not None else math.nan for _, a, _ in gcn], "-", color="0.6", linewidth=1.2, zorder=1)
    for label, summary in graphs.items():
        mlp = summary["propagation"] == "none"
        ax.scatter([summary["num_layers"]], [summary["test_accuracy"] if summary["test_accuracy"] is not None else math.nan],
                   s=130, marker="s" if mlp else "o", color=colors[label], edgecolor="black", linewidth=0.6, zorder=3,
                   label=f"{label}: test accuracy {_text(summary['test_accuracy'])} (24 members)")  # fmt: skip
    ax.axvspan(*PAPER_BEST_DEPTHS, color="#2ca02c", alpha=0.12, label="paper, Figure 5: best depth 2-3")
    ax.axvline(PAPER_DIFFICULT_DEPTH, color="0.4", linestyle="-.", linewidth=1.1,
               label=f"paper, Figure 5: training grows difficult beyond ~{PAPER_DIFFICULT_DEPTH} layers (no residuals)")  # fmt: skip
    for name, accuracy in PAPER_CORA.items():
        ax.scatter([PAPER_MARK_AT], [accuracy], s=90, marker="D", facecolors="none", edgecolors="0.3", linewidth=1.3, zorder=2)
        ax.annotate(f"paper, Cora: {name} {accuracy:.1%}", (PAPER_MARK_AT, accuracy), textcoords="offset points", xytext=(8, -3),
                    fontsize=plots.LEGEND_SIZE, color="0.3")  # fmt: skip
    ax.axhline(0.5, color="0.25", linestyle=":", linewidth=1.3, label="chance: two balanced factions, 50%")
    ax.set_xscale("log", base=2)
    depths = [1, 2, 4, 8, 16, 32]
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlim(0.8, 45)
    ax.set_ylim(0, 1.05)
    _percent(ax)
    plots.style_axes(ax, "(a') Depth: 2 graph convolutions classify the club, 32 over-smooth it\n"
                     "to chance, as in Kipf & Welling 2017, Appendix B, Figure 5",
                     "graph-convolution layers (log scale); the MLP has 2 layers and no propagation", "test accuracy")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)


def _masked_lm_panel(ax, pretraining: dict[str, Any]) -> None:
    """Masked-LM accuracy over the pre-training epochs, against the best constant guess."""
    highest = 0.0
    for label, summary in pretraining.items():
        if not summary["pretraining_epochs"]:
            continue
        color = next(run.color for run in PRETRAINING if run.label == label)
        for metric, style, width, where in (("train_mlm_accuracy", "--", 1.4, "training documents, masks drawn anew each epoch"),
                                            ("val_mlm_accuracy", "-", 2.2, "held-out documents")):  # fmt: skip
            epochs, values = _series(summary, metric)
            ax.plot(epochs, values, style, color=color, linewidth=width, marker="o", markersize=3, label=f"{where}")
            highest = max(highest, *values, 0.0)
        guess = summary["best_constant_guess"]
        highest = max(highest, guess["share"])
        ax.axhline(guess["share"], color="0.25", linestyle=":", linewidth=1.4,
                   label=f"the best constant guess ('{guess['piece']}' everywhere): {guess['share']:.1%}")  # fmt: skip
        ax.text(0.98, 0.04, f"final held-out accuracy {_text(summary['val_mlm_accuracy'], '.1%')}, "
                f"{summary['val_mlm_accuracy'] / guess['share']:.1f}x the best constant guess" if summary["val_mlm_accuracy"] else "",
                transform=ax.transAxes, ha="right", fontsize=plots.LEGEND_SIZE, color="0.2")  # fmt: skip
    ax.set_ylim(0, 1.3 * highest or 1.0)
    _percent(ax)
    plots.style_axes(ax, "(b) Masked-LM pre-training: from unlabelled text alone, BERT learns\n"
                     "to name a hidden word piece from both sides (Devlin et al. 2018, Section 3.1)",
                     "pre-training epochs", "masked word pieces named right")  # fmt: skip
    _epochs(ax)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)


def _from_scratch_panel(ax, pretraining: dict[str, Any]) -> None:
    """Training from scratch on 128 labels: training accuracy dashed, validation solid, chance dotted."""
    for label, summary in pretraining.items():
        if summary["pretraining_epochs"]:
            continue
        color = next(run.color for run in PRETRAINING if run.label == label)
        for metric, style, width, where in (("train_accuracy", "--", 1.4, "the 128 labelled training sentences"),
                                            ("val_accuracy", "-", 2.2, "64 held-out sentences")):  # fmt: skip
            epochs, values = _series(summary, metric)
            ax.plot(epochs, values, style, color=color, linewidth=width, marker="o", markersize=3, label=where)
        ax.text(0.98, 0.04, f"test accuracy on 200 other sentences: {_text(summary['test_accuracy'], '.1%')}",
                transform=ax.transAxes, ha="right", fontsize=plots.LEGEND_SIZE, color="0.2")  # fmt: skip
    ax.axhline(0.5, color="0.25", linestyle=":", linewidth=1.4, label="chance: half the sentences are real, 50%")
    ax.set_ylim(0, 1.05)
    _percent(ax)
    plots.style_axes(ax, "(b') Without pre-training, 128 labels are not enough: BERT from scratch,\n"
                     "telling real sentences from shuffled ones, stays at chance on new ones",
                     "epochs of training on the labelled task", "accuracy")  # fmt: skip
    _epochs(ax)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)


def _accuracy_gap_panel(ax, ternary: dict[str, Any]) -> None:
    """Each width's full-precision and ternary accuracies side by side, on the training and test digits."""
    places, names = [], []
    for i, (label, summary) in enumerate(sorted(ternary.items(), key=lambda item: item[1]["width"])):
        color = next(run.color for run in TERNARY if run.label == label)
        for j, (split, name) in enumerate((("train", "training digits\n(1,197)"), ("val", "validation digits\n(300)"))):
            x = 3 * i + j
            places.append(x)
            names.append(f"width {summary['width']}\n{name}")
            full, ternary_accuracy = summary[f"{split}_full_precision_accuracy"], summary[f"{split}_accuracy"]
            if full is None or ternary_accuracy is None:
                continue
            ax.plot([x, x], [full, ternary_accuracy], color="0.5", linewidth=1.2, zorder=1)
            ax.scatter([x], [full], s=110, marker="o", facecolors="white", edgecolors="black", linewidth=1.5, zorder=3,
                       label="full-precision twin" if (i, j) == (0, 0) else None)  # fmt: skip
            ax.scatter([x], [ternary_accuracy], s=110, marker="o", color=color, edgecolor="black", linewidth=0.6, zorder=3,
                       label=f"ternary, width {summary['width']}" if j == 0 else None)  # fmt: skip
            gap = full - ternary_accuracy
            ax.annotate(f"gap {100 * gap:+.1f} pts", (x, min(full, ternary_accuracy)), textcoords="offset points",
                        xytext=(0, -18), ha="center", fontsize=plots.LEGEND_SIZE, color="0.2")  # fmt: skip
    ax.set_xticks(places, names)
    ax.set_xlim(-0.7, max(places, default=0) + 0.7)
    values = [summary[key] for summary in ternary.values() for key in FINALS["ternary"] if "gap" not in key and summary[key] is not None]
    ax.set_ylim(max(0.0, min(values, default=0.0) - 0.06), 1.02)
    _percent(ax)
    plots.style_axes(ax, "(c) Ternary weights (-1, 0, +1) match full precision in a wide layer,\n"
                     "and cost capacity in a narrow one (gap = full precision - ternary)",
                     None, "accuracy (same network, same batches, weights only differ)")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower right", framealpha=0.9)


def _memory_panel(ax, ternary: dict[str, Any]) -> None:
    """Bits a weight takes, with the widest run's hidden layer in bytes, and the paper's 3B headline."""
    widest = max(ternary.values(), key=lambda summary: summary["width"])
    weights = widest["ternary_storage"]["weights"]
    names, bits = list(BITS_PER_WEIGHT), list(BITS_PER_WEIGHT.values())
    colors = ["0.55", "0.35", "#6baed6", "#1f77b4"]
    bars = ax.barh(range(len(bits)), bits, color=colors, edgecolor="black", linewidth=0.6)
    for bar, value in zip(bars, bits):
        ax.annotate(f"{value:.2f} bits: {weights * value / 8 / 1024:.1f} KiB", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    textcoords="offset points", xytext=(5, -3), fontsize=plots.LEGEND_SIZE)  # fmt: skip
    ax.set_yticks(range(len(bits)), names, fontsize=plots.TICK_SIZE)
    ax.invert_yaxis()
    ax.set_xlim(0, 46)
    llama, bitnet = PAPER_3B["LLaMA FP16"], PAPER_3B["BitNet b1.58"]
    ax.text(0.97, 0.05,
            "Ma et al. 2024, Table 1, at 3B parameters:\n"
            f"LLaMA FP16       {llama['memory_gb']:.2f} GB, perplexity {llama['perplexity']:.2f}\n"
            f"BitNet b1.58     {bitnet['memory_gb']:.2f} GB ({llama['memory_gb'] / bitnet['memory_gb']:.2f}x less), "
            f"perplexity {bitnet['perplexity']:.2f}\n"
            "(not 16/1.58 = 10x less: embeddings, activations\nand the KV cache are not ternary)",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=plots.LEGEND_SIZE, family="monospace",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})  # fmt: skip
    plots.style_axes(ax, f"(c') What three levels buy: bits per weight, and the {weights:,} hidden-layer\n"
                     f"weights of the width-{widest['width']} MLP in each form (Ma et al. 2024)",
                     "bits per weight", None)  # fmt: skip
    ax.grid(False, axis="y")


#: Each row's two panels.
PANELS = {"graphs": (_graph_loss_panel, _depth_panel), "pretraining": (_masked_lm_panel, _from_scratch_panel),
          "ternary": (_accuracy_gap_panel, _memory_panel)}  # fmt: skip
#: The figure's title, a clause per row drawn.
TITLES = {"graphs": "the graph is the input", "pretraining": "unlabelled text is the teacher", "ternary": "1.58 bits a weight are enough"}


def _notes(results: dict[str, Any]) -> list[str]:
    notes = []
    for panel, tag in (("graphs", "(a)"), ("pretraining", "(b)"), ("ternary", "(c)")):
        drawn = [run for run in CONTRASTS[panel] if run.label in results.get(panel, {})]
        if drawn:
            notes.append(f"{tag} " + "; ".join(f"{run.label}: configs/{run.experiment}.yaml, {run.note}" for run in drawn) + ".")
    if "pretraining" in results:
        notes.append("(b) In this miniature the paper's full contrast did not reproduce: fine-tuned from this pre-training, "
                     "the same BERT also stays at chance on 128 labels (configs/bert/not_reproduced/pretraining_strength.yaml); "
                     "it would need a network that knows more language than a CPU pre-training gives it.")  # fmt: skip
    quick = ". QUICK: one epoch of two batches per run, the numbers mean nothing." if results.get("quick") else "."
    notes.append(f"Every run is `ai-scratch fit` of its config with seed {results['seed']}{quick}")
    return notes


def figure(results: dict[str, Any]) -> Figure:
    """One row of two panels per contrast in ``results``; a note names the configs and the seed."""
    rows = [name for name in CONTRASTS if name in results]
    fig = plots.new_figure(16, 5.6 * len(rows) + 1.0)
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (left, right), name in zip(axes, rows):
        draw_left, draw_right = PANELS[name]
        draw_left(left, results[name])
        draw_right(right, results[name])
    plots.add_note(fig, _notes(results))
    plots.add_title(fig, "Module 6, the modern paradigm: " + "; ".join(TITLES[name] for name in rows))
    return fig


# ---------------------------------------------------------------------------------------------- main
def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: the panel, label, config, final numbers, the config's claim and its verdict."""
    rows = []
    for panel in CONTRASTS:
        for label, summary in results.get(panel, {}).items():
            row = {"run": label, "panel": panel, "experiment": summary["experiment"]}
            row.update({metric: summary[metric] for metric in FINALS[panel]})
            if "best_constant_guess" in summary:
                row["best_constant_guess"] = summary["best_constant_guess"]["share"]
            row.update(claim=summary["claim"], reproduced=summary["claim_reproduced"], seconds=summary["seconds"])
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table on the terminal: one line per run, its numbers and its claim's verdict."""
    for row in rows:
        numbers = "  ".join(f"{key} {value:.3f}" for key, value in row.items()
                            if isinstance(value, float) and key != "seconds")  # fmt: skip
        verdict = "reproduced" if row["reproduced"] else "NOT reproduced"
        print(f"  {row['run']:<32} {numbers}  claim {row['claim']}: {verdict}")


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(6, __doc__.split("\n\n")[0], CONTRAST_HELP)
    options = parser.parse_args(args)
    contrasts = chosen_contrasts(options, list(CONTRASTS))
    out = Path(options.out)
    results = run(options.seed, options.quick, root=out, contrasts=contrasts)
    path = plots.save_figure(figure(results), out / FIGURE)
    json_path = out / NUMBERS
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    rows = table(results)
    print_table(rows)
    print(f"[compare] figure: {path}")
    if options.wandb:
        log_comparison(
            6, NAME, files=[path, json_path], rows=rows, images={"figures/modern_paradigm": path},
            config={"seed": options.seed, "quick": options.quick,
                    **{panel: {one.label: one.experiment for one in CONTRASTS[panel]} for panel in contrasts}},
            models=[model for panel in contrasts for model in MODELS[panel]], mode=options.wandb_mode,
        )  # fmt: skip
    return 0
