"""Bahdanau et al.'s Figure 2 in miniature: the quality of a translation against the sentence length.

The paper's Figure 2 plots BLEU against the length of the source sentence for RNNencdec (one fixed
context vector) and RNNsearch (attention): the encoder-decoder's score falls steeply as sentences
grow, RNNsearch-50's holds up to 50 words and beyond. The reason given (Section 2): a fixed-length
vector cannot hold a long sentence; attention needs to hold none of it.

Here the "translation" is the reversal of a sequence of random symbols, and the quality is the
token accuracy of greedy decoding (:func:`accuracy_by_length`), measured on fresh sequences of each
length; :func:`plot_accuracy_by_length` draws one curve per model, the trained lengths shaded.
:func:`length_report` does both for a model with attention and one without.

What the miniature shows (reversal_attention.yaml and reversal_no_attention_weakness.yaml, both
trained on lengths 1 to 32 instead of 32 only, ``--data.init_args.min_length 1``, seeds 0 and 1;
:data:`MEASURED`, 256 sequences per length):

* inside the trained lengths, the paper's picture: without attention the accuracy is near 1 for 2
  to 4 symbols and falls steadily as the length grows (about 0.9 at 8, 0.5 at 16, 0.28 at 32), the
  fixed vector running out of room; with attention it stays above 0.95 up to 28 symbols and near
  0.9-0.96 at 32;
* beyond the trained lengths the paper's flat RNNsearch-50 curve does *not* reproduce: attention
  falls too (about 0.8 at 36, 0.67 at 40 symbols). The paper tested sentences of lengths it had
  trained on (up to 50 words for RNNsearch-50); here the decoder has never had to find position 36.

``tests/test_bahdanau.py`` asserts only what holds with margin: the no-attention curve falls from
at least 0.9 at length 4 to at most 0.45 at 32; the attention curve stays at least 0.9 up to 24 and
at least 0.4 above the other there; past the trained lengths (40) it is below 0.9.

To draw it for trained checkpoints::

    python -m ai_scratch.sequence_models.bahdanau_figures ATTENTION.ckpt NO_ATTENTION.ckpt --out length.png

Example::

    curves = length_report({"attention": model, "no attention": baseline}, lengths=range(2, 41, 2),
                           num_symbols=8, trained=(1, 32), path="runs/length_curve.png")
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ai_scratch.sequence_models.tasks import PAD_INDEX, Seq2SeqModel
from callbacks import plots
from datamodules.sampling import derive_seed
from datamodules.sequences import CopyReverseDataModule

#: Token accuracy by length, measured as the module docstring says: {model: {length: (seed 0, seed 1)}}.
MEASURED: dict[str, dict[int, tuple[float, float]]] = {
    "attention": {2: (1.0, 1.0), 4: (0.998, 1.0), 8: (1.0, 0.998), 12: (0.991, 0.999), 16: (0.986, 0.991),
                  20: (0.98, 0.983), 24: (0.953, 0.985), 28: (0.954, 0.975), 32: (0.899, 0.955),
                  36: (0.806, 0.788), 40: (0.69, 0.665)},
    "no attention": {2: (1.0, 1.0), 4: (0.996, 0.995), 8: (0.895, 0.908), 12: (0.672, 0.726), 16: (0.525, 0.555),
                     20: (0.414, 0.424), 24: (0.351, 0.372), 28: (0.321, 0.33), 32: (0.286, 0.278),
                     36: (0.266, 0.244), 40: (0.227, 0.235)},
}  # fmt: skip
#: The lengths of :data:`MEASURED` and of the command line's report.
LENGTHS = (2, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40)


@torch.no_grad()
def accuracy_by_length(
    model: Seq2SeqModel,
    lengths: Iterable[int],
    num_symbols: int,
    task: str = "reverse",
    samples: int = 256,
    seed: int = 0,
) -> dict[int, float]:
    """Greedy-decoding token accuracy of ``model`` on ``samples`` fresh sequences of each length.

    The sequences are drawn as :class:`~datamodules.sequences.CopyReverseDataModule` draws them
    (``min_length = max_length = L``), each length from its own seed; the accuracy counts every
    target position up to and including ``<eos>``, as ``test_token_accuracy`` does.
    """
    was_training = model.training
    model.eval()
    accuracy = {}
    for length in lengths:
        data = CopyReverseDataModule(task, num_symbols=num_symbols, min_length=length, max_length=length)
        source, target = data.generate(samples, np.random.default_rng(derive_seed(seed, length)))
        expected = target[:, 1:].to(model.device)
        decoded = model.greedy_decode(source.to(model.device), expected.shape[1])
        real = expected != PAD_INDEX
        accuracy[length] = float(((decoded == expected) & real).sum() / real.sum())
    model.train(was_training)
    return accuracy


def plot_accuracy_by_length(
    curves: Mapping[str, Mapping[int, float]], trained: tuple[int, int] | None = None, title: str | None = None
) -> Figure:
    """Token accuracy against sequence length, one line per model; ``trained`` lengths shaded."""
    fig = plots.new_figure(7, 4.2)
    ax = fig.add_subplot()
    for color, (label, curve) in zip(plots.qualitative_colors(len(curves)), curves.items()):
        lengths = sorted(curve)
        ax.plot(lengths, [curve[n] for n in lengths], color=color, marker="o", markersize=4, linewidth=1.8, label=label)
    if trained is not None:
        ax.axvspan(trained[0], trained[1], color="0.9", zorder=0, label=f"trained lengths {trained[0]}-{trained[1]}")
    ax.set_ylim(0, 1.02)
    plots.style_axes(ax, None, "sequence length (symbols)", "token accuracy (greedy decoding)")
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)
    plots.add_title(fig, title or "Quality against length (Bahdanau et al., 2014, Figure 2, in miniature)")
    plots.add_note(fig, ["fresh sequences of each length; accuracy over every target token up to <eos>"])
    return fig


def length_report(
    models: Mapping[str, Seq2SeqModel],
    lengths: Iterable[int],
    num_symbols: int,
    trained: tuple[int, int] | None = None,
    path: str | os.PathLike | None = None,
    samples: int = 256,
    seed: int = 0,
) -> dict[str, dict[int, float]]:
    """:func:`accuracy_by_length` of each model, drawn by :func:`plot_accuracy_by_length` and saved
    as a PNG at ``path`` when given; returns the curves ``{label: {length: accuracy}}``."""
    lengths = list(lengths)
    curves = {label: accuracy_by_length(model, lengths, num_symbols, samples=samples, seed=seed) for label, model in models.items()}
    if path is not None:
        plots.save_figure(plot_accuracy_by_length(curves, trained), Path(path))
    return curves


def main(args: list[str] | None = None) -> int:
    """``python -m ai_scratch.sequence_models.bahdanau_figures ATTENTION.ckpt NO_ATTENTION.ckpt``:
    the curves of two trained checkpoints, printed and saved as a PNG."""
    from ai_scratch.sequence_models.bahdanau import BahdanauSeq2Seq

    parser = argparse.ArgumentParser(description="Token accuracy against length for a model with attention and one without.")
    parser.add_argument("attention", help="checkpoint of BahdanauSeq2Seq with attention")
    parser.add_argument("no_attention", help="checkpoint of the same model without attention")
    parser.add_argument("--num_symbols", type=int, default=8, help="symbols of the reversal task they were trained on")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--trained", type=int, nargs=2, default=None, metavar=("MIN", "MAX"), help="trained lengths, shaded")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--out", default="length_curve.png")
    options = parser.parse_args(args)
    models = {}
    for label, path in (("attention", options.attention), ("no attention", options.no_attention)):
        if not os.path.isfile(path):
            parser.error(f"checkpoint not found: {path}")
        models[label] = BahdanauSeq2Seq.load_from_checkpoint(path, map_location="cpu")
    curves = length_report(models, options.lengths, options.num_symbols, tuple(options.trained) if options.trained else None,
                           options.out, options.samples)  # fmt: skip
    for label, curve in curves.items():
        print(f"{label:>12}: " + "  ".join(f"{length}: {value:.3f}" for length, value in curve.items()))
    print(f"saved {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
