"""BERT's own figure: what the masked language model predicts for a held-out sentence.

Pre-training asks BERT to name the word piece behind every ``[MASK]`` from both sides of it
(Section 3.1, "Task #1: Masked LM"). :class:`MaskedTokenPredictions` shows it on a sentence that
pre-training never read (a real sentence of the labelled task's test split, whose documents are
held out): a few of its word pieces are replaced by ``[MASK]``, and for each the model's ``top_k``
guesses are drawn with their probabilities, the original piece in another colour. A model that
has not pre-trained guesses frequent pieces (``the``, ``,``, ``.``) everywhere; one that has,
guesses pieces that fit both sides.

The attention maps of the same model are :class:`callbacks.AttentionMaps`' (``bert.py``'s
``figures()`` adds it), labelled with the word pieces of labelled validation sentences.

Example::

    trainer = Trainer(callbacks=[MaskedTokenPredictions(num_masked=3)])
"""

from __future__ import annotations

import textwrap
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure

from callbacks import plots
from callbacks.batches import evaluating
from callbacks.figures import FigureCallback
from datamodules.text import MASK_INDEX, SPECIAL_TOKENS


def masked_positions(pieces: list[str], count: int, seed: int = 0) -> list[int]:
    """``count`` positions to mask, chosen (seeded) among the pieces that start a word of letters
    (not ``##`` continuations, punctuation or special tokens), in order."""
    candidates = [i for i, piece in enumerate(pieces) if piece.isalpha() and len(piece) > 2 and piece not in SPECIAL_TOKENS]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False) if candidates else []
    return sorted(int(i) for i in chosen)


@torch.no_grad()
def predict_masked(model: Any, tokens: list[int], positions: list[int], top_k: int) -> list[tuple[list[int], list[float]]]:
    """The ``top_k`` pieces (ids and probabilities) the model puts behind each ``[MASK]`` of ``tokens``."""
    masked = torch.as_tensor(tokens, dtype=torch.long, device=model.device)[None].clone()
    masked[0, positions] = MASK_INDEX
    with evaluating(model):
        hidden, _ = model.encode(masked)
        probabilities = torch.softmax(model.masked_lm_scores(hidden[0, positions]).float(), dim=-1)
    top = probabilities.topk(top_k, dim=-1)
    return [(ids.tolist(), values.tolist()) for ids, values in zip(top.indices.cpu(), top.values.cpu())]


class MaskedTokenPredictions(FigureCallback):
    """The masked-LM's top guesses for masked word pieces of a held-out sentence.

    Args:
        num_masked: how many pieces to mask (at most; fewer if the sentence has fewer words).
        top_k: guesses drawn for each.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Needs a model with ``encode`` and ``masked_lm_scores`` (:class:`~ai_scratch.modern_paradigm.bert.Bert`)
    and a datamodule with ``sentences`` and a tokenizer (:class:`~datamodules.text.TextDataModule`);
    says once and draws nothing otherwise. What was drawn stays in :attr:`predictions`.

    Raises:
        ValueError: for ``num_masked`` or ``top_k`` below 1.
    """

    name = "masked_token_predictions"

    def __init__(self, num_masked: int = 3, top_k: int = 5, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        for argument, value in (("num_masked", num_masked), ("top_k", top_k)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MaskedTokenPredictions: {argument} must be an integer of at least 1, got {value!r}")
        self.num_masked, self.top_k = num_masked, top_k
        #: what was drawn last: ``[(original piece, [(guess, probability), ...]), ...]``
        self.predictions: list[tuple[str, list[tuple[str, float]]]] = []

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        datamodule = trainer.datamodule
        if not (hasattr(pl_module, "masked_lm_scores") and hasattr(pl_module, "encode")):
            self.does_not_apply(f"{type(pl_module).__name__} has no masked language model")
            return None
        if not hasattr(datamodule, "sentences") or not getattr(datamodule, "itos", None):
            self.does_not_apply("the datamodule has no held-out sentences and vocabulary (TextDataModule has)")
            return None
        real = [parts[0] for parts, label in datamodule.sentences.get("test", []) if label == 1]
        if not real:
            self.does_not_apply("the test split holds no real sentence")
            return None
        text = real[0]
        tokens = datamodule.sequence(datamodule.encode(text))
        pieces = [datamodule.itos[i] for i in tokens]
        positions = masked_positions(pieces, self.num_masked)
        if not positions:
            self.does_not_apply("the held-out sentence has no word to mask")
            return None
        guesses = predict_masked(pl_module, tokens, positions, min(self.top_k, len(datamodule.itos)))
        self.predictions = [
            (pieces[p], [(datamodule.itos[i], float(v)) for i, v in zip(ids, values)]) for p, (ids, values) in zip(positions, guesses)
        ]
        shown = " ".join("[MASK]" if i in positions else piece for i, piece in enumerate(pieces))
        hparams = getattr(pl_module, "hparams", {})
        pretrained = bool(getattr(pl_module, "pretraining_epochs", 0)) or bool(hparams.get("pretrained"))
        return masked_predictions_figure(shown, self.predictions, type(pl_module).__name__, trainer.current_epoch, pretrained)


def masked_predictions_figure(
    masked_text: str, predictions: list[tuple[str, list[tuple[str, float]]]], model: str, epoch: int, pretrained: bool
) -> Figure:
    """One panel per masked piece: its top guesses as bars of probability, the original in orange."""
    columns = len(predictions)
    top_k = max(len(guesses) for _, guesses in predictions)
    fig = plots.new_figure(max(7.0, 3.4 * columns), 2.6 + 0.32 * top_k)
    axes = fig.subplots(1, columns, squeeze=False)[0]
    for ax, (original, guesses) in zip(axes, predictions):
        labels = [piece for piece, _ in guesses][::-1]
        values = [p for _, p in guesses][::-1]
        colours = ["C1" if piece == original else "C0" for piece in labels]
        ax.barh(range(len(values)), values, color=colours)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlim(0, 1)
        hit = "in the top guesses" if original in labels else "not in the top guesses"
        plots.style_axes(ax, title=f"original: {original!r} ({hit})", xlabel="probability")
    plots.add_title(fig, f"What {model}'s masked language model guesses behind [MASK] (after epoch {epoch})")
    wrapped = textwrap.fill(masked_text, width=int(26 * max(7.0, 3.4 * columns) / 3.4))
    plots.add_note(fig, [
        f"Held-out sentence (pre-training never read it): {wrapped}",
        "Bars: the model's most probable word pieces for each [MASK], left to right; orange: the original piece. "
        + ("The model was pre-trained by masked language modelling." if pretrained else
           "This model never pre-trained: its masked-LM output layer is untrained."),
    ])  # fmt: skip
    return fig
