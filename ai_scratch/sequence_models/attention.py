"""Scaled dot-product attention and multi-head attention (Vaswani et al., 2017, Section 3.2).

Paper: A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, L. Kaiser and
I. Polosukhin, "Attention Is All You Need", NeurIPS 2017 (arXiv:1706.03762).

An attention function maps a query and a set of key-value pairs to an output: a weighted sum of the
values, each weight the compatibility of the query with the value's key. The paper's is the dot
product, scaled (Section 3.2.1, eq. 1)::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Why the scale: for queries and keys of independent components of mean 0 and variance 1, ``q . k``
has variance ``d_k``; large dot products push the softmax into regions of tiny gradients, and
dividing by ``sqrt(d_k)`` brings the variance back to 1.

Multi-head attention (Section 3.2.2) runs ``h`` attentions side by side, each on its own learnt
projections to ``d_k = d_v = d_model / h`` dimensions, so that the model attends "to information from
different representation subspaces at different positions"::

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

with ``W_i^Q, W_i^K in R^{d_model x d_k}``, ``W_i^V in R^{d_model x d_v}``, ``W^O in R^{h d_v x d_model}``.
The ``h`` matrices ``W_i^Q`` are stored side by side as one ``d_model x h d_k`` linear layer (``w_q``),
and likewise ``w_k``, ``w_v``; ``w_o`` is ``W^O``. The total cost is that of one head of full width.

Masks. A mask says which keys a query may look at: a boolean tensor, ``True`` where attention is
allowed, broadcastable to ``(batch, heads, queries, keys)`` (the convention of
``torch.nn.functional.scaled_dot_product_attention``), or a float tensor added to the scores. A
disallowed score is set to ``-inf`` before the softmax, so its weight is exactly 0 (Section 3.2.3:
"masking out (setting to -inf) all values in the input of the softmax which correspond to illegal
connections"). :func:`padding_mask` hides ``<pad>`` keys; :func:`causal_mask` hides the future.

``fused=True`` computes the same function with ``torch.nn.functional.scaled_dot_product_attention``
(flash or memory-efficient kernels where the device has them) on the same weights; it does not form
the weight matrix, so it stores no ``attention_weights``.

Example::

    attention = MultiHeadAttention(d_model=64, num_heads=4)
    x = torch.randn(2, 10, 64)
    out = attention(x, x, x, mask=causal_mask(10))    # (2, 10, 64)
    attention.attention_weights.shape                  # (2, 4, 10, 10): every head's softmax
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def padding_mask(tokens: Tensor, pad_index: int = 0) -> Tensor:
    """``(B, 1, 1, L)`` booleans, ``True`` at the tokens that are not ``<pad>``: every query of every
    head may look at the real tokens only."""
    return (tokens != pad_index)[:, None, None, :]


def causal_mask(length: int, device: torch.device | str | None = None) -> Tensor:
    """``(L, L)`` booleans, ``True`` on and below the diagonal: position ``i`` sees positions ``<= i``
    only, so that "predictions for position i can depend only on the known outputs at positions less
    than i" (Section 3.1; with the outputs shifted right by one)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """``softmax(Q K^T / sqrt(d_k) + mask) V`` (eq. 1), written out; returns ``(output, weights)``.

    Args:
        query: ``(..., L_q, d_k)``; key: ``(..., L_k, d_k)``; value: ``(..., L_k, d_v)``.
        mask: booleans (``True``: may attend) or floats added to the scores, broadcastable to
            ``(..., L_q, L_k)``; ``None``: every key.
        dropout_p: dropout on the weights (not in the paper; ``nn.MultiheadAttention`` has it).

    Returns:
        The output ``(..., L_q, d_v)`` and the weights ``(..., L_q, L_k)`` (before dropout), each row
        summing to 1.
    """
    d_k = query.shape[-1]
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # Q K^T / sqrt(d_k): (..., L_q, L_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))  # illegal connections get weight exactly 0
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    attended = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return attended @ value, weights


class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1..head_h) W^O`` with ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)``.

    Args:
        d_model: width of the queries, keys, values and output (512 in the base model).
        num_heads: ``h`` (8 in the base model); ``d_k = d_v = d_model / h``.
        bias: biases on the four projections (the equations have none; ``nn.MultiheadAttention``
            and the paper's code have them).
        dropout: dropout on the attention weights (0 in the paper, which drops sub-layer outputs).
        fused: compute the attention with ``torch.nn.functional.scaled_dot_product_attention`` on
            the same weights (same function, faster; no ``attention_weights`` stored).

    Attributes:
        attention_weights: after every forward of the written-out path, the weights of every head,
            detached, ``(batch, heads, queries, keys)``; ``None`` before one, or after a fused forward.
            The attention-map figure finds modules by this attribute.

    Raises:
        ValueError: if ``d_model`` is not a multiple of ``num_heads``, or the dropout is outside [0, 1).
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True, dropout: float = 0.0, fused: bool = False) -> None:
        super().__init__()
        if d_model < 1 or num_heads < 1 or d_model % num_heads:
            raise ValueError(f"d_model must be a positive multiple of num_heads, got d_model={d_model}, num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.dropout, self.fused = dropout, fused
        self.w_q = nn.Linear(d_model, d_model, bias=bias)  # W_1^Q .. W_h^Q side by side
        self.w_k = nn.Linear(d_model, d_model, bias=bias)  # W_i^K
        self.w_v = nn.Linear(d_model, d_model, bias=bias)  # W_i^V
        self.w_o = nn.Linear(d_model, d_model, bias=bias)  # W^O
        self.attention_weights: Tensor | None = None

    def split_heads(self, x: Tensor) -> Tensor:
        """``(B, L, h * d_k)`` -> ``(B, h, L, d_k)``: head ``i`` sees its own slice of the projection."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None) -> Tensor:
        """Queries ``(B, L_q, d_model)``, keys and values ``(B, L_k, d_model)`` -> ``(B, L_q, d_model)``.

        ``mask``: see the module docstring (:func:`padding_mask`, :func:`causal_mask`, or both with ``&``).
        """
        q = self.split_heads(self.w_q(query))  # Q W_i^Q for every i: (B, h, L_q, d_k)
        k = self.split_heads(self.w_k(key))
        v = self.split_heads(self.w_v(value))
        dropout_p = self.dropout if self.training else 0.0
        if self.fused:
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            self.attention_weights = None
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
            self.attention_weights = weights.detach()
        batch, _, length, _ = heads.shape
        concatenated = heads.transpose(1, 2).reshape(batch, length, self.d_model)  # Concat(head_1, ..., head_h)
        return self.w_o(concatenated)  # ... W^O

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, d_k={self.d_k}, fused={self.fused}"
