"""The Transformer's weakness, measured: attention's memory grows as the square of the sequence length.

Self-attention compares every position with every other: for ``L`` positions and ``h`` heads, eq. 1
forms ``h`` score matrices ``Q K^T / sqrt(d_k)`` of ``L x L`` entries, their softmax, and (to
backpropagate) keeps both. Table 1 of the paper says it: a self-attention layer costs
``O(n^2 d)`` against a recurrent layer's ``O(n d^2)``, which the paper accepts because its
sentences are shorter than the model is wide (``n < d``). For long sequences (documents, images as
pixels, audio) the ``n^2`` dominates, and it is what later work attacks (sparse and linear
attention; FlashAttention, which never stores the ``L x L`` matrix but still computes it).

:func:`attention_memory_table` measures it: the bytes of the tensors that one forward of a
:class:`~ai_scratch.sequence_models.attention.MultiHeadAttention` saves for its backward, caught with
``torch.autograd.graph.saved_tensors_hooks`` (each storage counted once), for the written-out
attention (eq. 1 as it stands) and for the fused path (``scaled_dot_product_attention``, which on a
CPU or GPU with a flash kernel saves only ``O(L)`` statistics). :func:`fitted_slope` fits the
exponent on a log-log scale; :func:`attention_memory_figure` draws it with the ``L^2`` slope beside.

Example::

    table = attention_memory_table((64, 128, 256, 512, 1024, 2048))
    fitted_slope(table, "hand_bytes", smallest=512)      # about 2
    attention_memory_figure(table).savefig("attention_memory.png")

or from a shell: ``python -m ai_scratch.sequence_models.transformer_figures attention_memory.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ai_scratch.sequence_models.attention import MultiHeadAttention
from callbacks import plots

DEFAULT_LENGTHS = (64, 128, 256, 512, 1024, 2048)


def saved_tensor_bytes(function: Any, *inputs: torch.Tensor) -> int:
    """Bytes of the distinct storages that ``function(*inputs)`` saves for its backward pass."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()  # a tensor saved twice (or a view) counts once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(*inputs)
    return sum(storages.values())


def attention_memory_table(
    lengths: Sequence[int] = DEFAULT_LENGTHS, d_model: int = 64, num_heads: int = 4, batch_size: int = 1, seed: int = 0
) -> list[dict[str, float]]:
    """One row per length ``L``: what one self-attention forward over ``(batch_size, L, d_model)``
    keeps for backward.

    Row keys: ``length``; ``hand_bytes`` (the written-out eq. 1) and ``fused_bytes``
    (``scaled_dot_product_attention``), both measured; ``weights_bytes``, the size of the ``h`` weight
    matrices, ``batch * h * L^2 * 4`` bytes (float32), for reference.
    """
    torch.manual_seed(seed)
    hand = MultiHeadAttention(d_model, num_heads, fused=False)
    fused = MultiHeadAttention(d_model, num_heads, fused=True)
    fused.load_state_dict(hand.state_dict())
    rows = []
    for length in lengths:
        x = torch.randn(batch_size, length, d_model, requires_grad=True)
        rows.append({
            "length": float(length),
            "hand_bytes": float(saved_tensor_bytes(lambda t: hand(t, t, t), x)),
            "fused_bytes": float(saved_tensor_bytes(lambda t: fused(t, t, t), x)),
            "weights_bytes": float(batch_size * num_heads * length * length * 4),
        })  # fmt: skip
        hand.attention_weights = None  # the stored map is the largest tensor: free it before the next length
    return rows


def fitted_slope(table: Sequence[dict[str, float]], key: str = "hand_bytes", smallest: int = 0) -> float:
    """The exponent ``k`` of ``memory ~ L^k``: a least-squares line through ``(log L, log memory)``
    over the rows with ``length >= smallest``."""
    rows = [row for row in table if row["length"] >= smallest]
    if len(rows) < 2:
        raise ValueError(f"fitting a slope needs two lengths >= {smallest}, got {len(rows)}")
    slope, _ = np.polyfit(np.log([r["length"] for r in rows]), np.log([r[key] for r in rows]), 1)
    return float(slope)


def attention_memory_figure(table: Sequence[dict[str, float]], smallest_for_fit: int = 512) -> Figure:
    """Log-log plot of the saved bytes against ``L``, written-out and fused, with an ``L^2`` guide."""
    lengths = np.array([r["length"] for r in table])
    fig = plots.new_figure(7.5, 5.2)
    ax = fig.add_subplot()
    hand_slope = fitted_slope(table, "hand_bytes", smallest_for_fit)
    fused_slope = fitted_slope(table, "fused_bytes", smallest_for_fit)
    ax.loglog(lengths, [r["hand_bytes"] for r in table], "o-", color="C3",
              label=f"written-out attention, eq. 1 (fitted slope {hand_slope:.2f})")  # fmt: skip
    ax.loglog(lengths, [r["fused_bytes"] for r in table], "s-", color="C0",
              label=f"fused scaled_dot_product_attention (fitted slope {fused_slope:.2f})")  # fmt: skip
    ax.loglog(lengths, [r["weights_bytes"] for r in table], ":", color="0.4", label="the h weight matrices alone, h L^2 x 4 bytes")
    # the L^2 guide through the last written-out point
    anchor_length, anchor_bytes = lengths[-1], table[-1]["hand_bytes"]
    ax.loglog(lengths, anchor_bytes * (lengths / anchor_length) ** 2, "--", color="0.6", label="slope 2: memory ~ L^2")
    plots.style_axes(ax, "What one self-attention layer keeps for backward", "sequence length L (log scale)",
                     "bytes saved for backward (log scale)")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)
    plots.add_note(fig, [
        "Slopes fitted over L >= %d. Doubling L quadruples the written-out attention's memory: the L x L"
        " scores and their softmax, per head." % smallest_for_fit,
        "The fused kernel does not keep the L x L matrix (it recomputes it in backward), but it still computes it: time stays O(L^2).",
    ])  # fmt: skip
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ai_scratch.sequence_models.transformer_figures [PNG]``: print the table, save the figure."""
    import argparse

    parser = argparse.ArgumentParser(description="Measure self-attention's memory against the sequence length L.")
    parser.add_argument("output", nargs="?", default="attention_memory.png", help="where to save the figure")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    options = parser.parse_args(argv)
    if len(options.lengths) < 2 or min(options.lengths) < 1:
        parser.error("--lengths needs at least two positive lengths")
    table = attention_memory_table(sorted(options.lengths))
    print(f"{'L':>6} {'written-out':>14} {'fused':>12} {'h L^2 x 4':>12}  (bytes saved for backward)")
    for row in table:
        print(f"{int(row['length']):>6} {int(row['hand_bytes']):>14,} {int(row['fused_bytes']):>12,} {int(row['weights_bytes']):>12,}")
    smallest = sorted(options.lengths)[len(options.lengths) // 2]
    print(f"fitted slope over L >= {smallest}: written-out {fitted_slope(table, 'hand_bytes', smallest):.2f}, "
          f"fused {fitted_slope(table, 'fused_bytes', smallest):.2f}")  # fmt: skip
    attention_memory_figure(table, smallest_for_fit=smallest).savefig(options.output, dpi=100)
    print(f"saved {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
