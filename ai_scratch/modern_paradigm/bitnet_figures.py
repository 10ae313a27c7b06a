"""The figures of BitNet b1.58 (:mod:`ai_scratch.modern_paradigm.bitnet`): what ternary weights look
like, and how much accuracy three levels cost as the layers narrow.

* :class:`TernaryWeights` (``ternary_weights.png``), a figure callback: for a few ``BitLinear``
  layers, the histogram of the latent weights in units of their absmean scale, ``W / gamma``, with
  the rounding thresholds at +-0.5 that send each weight to -1, 0 or +1, and the fractions of the
  three levels. :meth:`BitNetMLP.figures <ai_scratch.modern_paradigm.bitnet.BitNetMLP.figures>` and
  the language model's name it.
* :func:`accuracy_against_width` and :func:`width_figure` (``accuracy_against_width.png``): the
  ternary MLP and its full-precision twin trained at several widths on digits, test accuracy
  against width. One fit per width and seed (a real Trainer, in this process), so it is a
  function, not a callback of one fit: ``python -m ai_scratch.modern_paradigm.bitnet_figures``
  draws it (``--widths``, ``--seeds``, ``--epochs``, ``--out``), and a slow test calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure

from callbacks import plots
from callbacks.figures import FigureCallback

#: the bins of the latent-weight histogram, in units of gamma
HISTOGRAM_RANGE = (-3.0, 3.0)
LEVEL_COLOURS = {-1: "C3", 0: "0.55", 1: "C0"}


def weight_summary(weight: torch.Tensor) -> dict[str, Any]:
    """``W / gamma`` of a latent weight matrix (float32 NumPy, flattened), gamma, and the fraction of each level."""
    from ai_scratch.modern_paradigm.bitnet import EPS, ternary_weights

    levels, gamma = ternary_weights(weight)
    scaled = (weight.detach().float() / (gamma + EPS)).flatten().cpu().numpy()
    counts = {level: float((levels == level).float().mean()) for level in (-1, 0, 1)}
    return {"scaled": scaled, "gamma": float(gamma), "fractions": counts, "shape": tuple(weight.shape)}


def ternary_weights_figure(layers: Sequence[tuple[str, dict[str, Any]]], title: str) -> Figure:
    """One row per layer: (a) the histogram of ``W / gamma`` coloured by the level each weight rounds
    to, thresholds dashed; (b) the fractions of -1, 0, +1 after quantisation."""
    if not layers:
        raise ValueError("ternary_weights_figure needs at least one layer")
    fig = plots.new_figure(12, 2.9 * len(layers) + 1.1)
    axes = fig.subplots(len(layers), 2, squeeze=False, width_ratios=[2.6, 1])
    low, high = HISTOGRAM_RANGE
    bins = np.linspace(low, high, 121)
    for row, (name, summary) in enumerate(layers):
        left, right = axes[row]
        scaled = np.clip(summary["scaled"], low, high)
        for level, (lo, hi) in {-1: (low, -0.5), 0: (-0.5, 0.5), 1: (0.5, high)}.items():
            part = scaled[(scaled >= lo) & (scaled < hi)] if level < 1 else scaled[scaled >= lo]
            left.hist(part, bins=bins, color=LEVEL_COLOURS[level], alpha=0.85, label=f"rounds to {level:+d}" if level else "rounds to 0")
        for threshold in (-0.5, 0.5):
            left.axvline(threshold, color="black", linestyle="--", linewidth=1.2)
        left.text(0.5, 0.98, "thresholds W/γ = ±0.5", transform=left.get_xaxis_transform(), ha="left", va="top", fontsize=plots.LEGEND_SIZE)
        rows, cols = summary["shape"]
        plots.style_axes(left, f"{name} ({rows}×{cols}), γ = mean|W| = {summary['gamma']:.4f}: latent weights",
                         "latent weight in units of its scale, W / γ (clipped to ±3)", "weights")  # fmt: skip
        left.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)
        fractions = summary["fractions"]
        bars = right.bar(["−1", "0", "+1"], [fractions[-1], fractions[0], fractions[1]], color=[LEVEL_COLOURS[k] for k in (-1, 0, 1)])
        for bar, level in zip(bars, (-1, 0, 1)):
            right.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{fractions[level]:.1%}", ha="center", va="bottom", fontsize=plots.LEGEND_SIZE)
        right.set_ylim(0, max(0.7, max(fractions.values()) * 1.18))
        plots.style_axes(right, "W~ = RoundClip(W/γ, −1, 1)", "ternary level", "fraction of weights")
    plots.add_title(fig, title)
    plots.add_note(fig, ["Each weight of a BitLinear layer is stored as −1, 0 or +1 times one scale γ per matrix:",
                         "|W| < γ/2 becomes 0 (no addition at all), the rest keep their sign.",
                         "Training moves the latent W; the straight-through estimator passes the gradient through the rounding."])  # fmt: skip
    return fig


class TernaryWeights(FigureCallback):
    """The latent weights of (up to ``max_layers``) quantised ``BitLinear`` layers against their ternary levels.

    Saved as ``ternary_weights.png``; says once and draws nothing for a model without a quantised
    ``BitLinear`` (a full-precision run).

    Args:
        max_layers: how many layers to show, evenly picked from first to last.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "ternary_weights"

    def __init__(self, max_layers: int = 3, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if max_layers < 1:
            raise ValueError(f"TernaryWeights: max_layers must be at least 1, got {max_layers}")
        self.max_layers = max_layers

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        from ai_scratch.modern_paradigm.bitnet import bit_linear_layers

        layers = bit_linear_layers(pl_module)  # a full-precision twin has none: its layers are not quantised
        if not layers:
            self.does_not_apply("the model has no quantised BitLinear layer (a full-precision run)")
            return None
        picks = sorted({round(i) for i in np.linspace(0, len(layers) - 1, min(self.max_layers, len(layers)))})
        chosen = [(layers[i][0], weight_summary(layers[i][1].weight)) for i in picks]
        return ternary_weights_figure(chosen, f"BitNet b1.58: latent weights and their ternary levels, epoch {trainer.current_epoch}")


# ----------------------------------------------------------------------------------------- accuracy against width
def accuracy_against_width(
    widths: Sequence[int] = (8, 16, 32, 64, 128, 256),
    seeds: Sequence[int] = (0,),
    max_epochs: int = 30,
    source: str = "sklearn",
    learning_rate: float = 3e-3,
    batch_size: int = 64,
) -> list[dict[str, float]]:
    """Train ``BitNetMLP(compare_full_precision=True)`` at each width and seed on digits; one row per fit:
    ``{"width", "seed", "ternary", "full_precision"}`` test accuracies (of the last epoch's weights).

    Each fit is a real Lightning Trainer on the CPU, no logger nor checkpoint.
    """
    from ai_scratch.modern_paradigm.bitnet import BitNetMLP
    from datamodules.vision import VisionDataModule

    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must be positive integers, got {list(widths)}")
    rows = []
    for seed in seeds:
        for width in widths:
            L.seed_everything(seed, verbose=False)
            data = VisionDataModule(source=source, batch_size=batch_size, seed=seed)
            model = BitNetMLP(input_dim=int(np.prod(data.input_shape)), width=width, compare_full_precision=True, learning_rate=learning_rate)
            trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
            trainer.fit(model, datamodule=data)
            (results,) = trainer.test(model, datamodule=data, verbose=False)
            rows.append({"width": width, "seed": seed, "ternary": results["test_accuracy"], "full_precision": results["test_full_precision_accuracy"]})
    return rows


def width_figure(rows: Sequence[dict[str, float]], title: str = "BitNet b1.58 on digits: test accuracy against width") -> Figure:
    """Test accuracy against the hidden width (log scale), ternary and full precision, mean over seeds
    with each seed's point; the gap (full precision minus ternary) in a lower panel."""
    if not rows:
        raise ValueError("width_figure needs at least one row of results")
    widths = sorted({int(r["width"]) for r in rows})
    fig = plots.new_figure(9, 7.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    means = {}
    for key, colour, label in (("full_precision", "C1", "full precision (the same network, quantize=False)"), ("ternary", "C0", "BitNet b1.58 (ternary weights, 8-bit activations)")):
        per_width = [[r[key] for r in rows if r["width"] == w] for w in widths]
        means[key] = np.array([np.mean(v) for v in per_width])
        top.plot(widths, means[key], color=colour, marker="o", linewidth=1.8, label=label)
        for w, values in zip(widths, per_width):
            top.scatter([w] * len(values), values, color=colour, s=12, alpha=0.5)
    top.set_xscale("log", base=2)
    top.legend(fontsize=plots.LEGEND_SIZE, loc="lower right", framealpha=0.9)
    plots.style_axes(top, "Test accuracy (line: mean over seeds, dots: each seed)", None, "test accuracy")
    gap = means["full_precision"] - means["ternary"]
    bottom.bar(widths, gap, width=np.array(widths) * 0.35, color="C3")
    bottom.axhline(0.01, color="0.3", linestyle="--", linewidth=1.1, label="one point")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    for w, g in zip(widths, gap):
        bottom.text(w, g, f"{g:+.3f}", ha="center", va="bottom" if g >= 0 else "top", fontsize=plots.LEGEND_SIZE)
    bottom.set_xticks(widths, [str(w) for w in widths])
    bottom.legend(fontsize=plots.LEGEND_SIZE, loc="upper right", framealpha=0.9)
    plots.style_axes(bottom, "The cost of three levels: full precision minus ternary", "hidden width (units, log scale)", "accuracy gap")
    plots.add_title(fig, title)
    seeds = sorted({int(r["seed"]) for r in rows})
    plots.add_note(fig, [f"One hidden layer, the same initial weights and batches for both networks; seeds {seeds}.",
                         "A bar above the dashed line: three levels a weight cost more than a point of test accuracy at that width."])  # fmt: skip
    return fig


def main(args: list[str] | None = None) -> Path:
    """``python -m ai_scratch.modern_paradigm.bitnet_figures``: train the widths and save the figure."""
    parser = argparse.ArgumentParser(description="BitNet b1.58: test accuracy against width, ternary and full precision, on digits.")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="runs/bitnet/accuracy_against_width.png")
    options = parser.parse_args(args)
    rows = accuracy_against_width(options.widths, options.seeds, options.epochs)
    for row in rows:
        print(f"width {row['width']:4d} seed {row['seed']}: ternary {row['ternary']:.3f}, full precision {row['full_precision']:.3f}")
    return plots.save_figure(width_figure(rows), options.out)


if __name__ == "__main__":
    print(main())
