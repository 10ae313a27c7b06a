"""BitNet b1.58 (Ma et al., 2024): linear layers whose weights are -1, 0 or +1 and whose inputs are 8-bit integers.

Papers:

* S. Ma, H. Wang, L. Ma, L. Wang, W. Wang, S. Huang, L. Dong, R. Wang, J. Xue and F. Wei, "The Era
  of 1-bit LLMs: All Large Language Models are in 1.58 Bits", 2024 (arXiv:2402.17764): the ternary
  weights, the LLaMA-alike architecture, Table 1's sizes.
* H. Wang, S. Ma, L. Dong, S. Huang, H. Wang, L. Ma, F. Yang, R. Wang, Y. Wu and F. Wei, "BitNet:
  Scaling 1-bit Transformers for Large Language Models", 2023 (arXiv:2310.11453), Section 2:
  ``BitLinear``, its activation quantisation, the normalisation before it and the dequantisation.

Why: a matrix product ``W x`` with ``W`` in {-1, 0, +1} needs no multiplication, only additions and
subtractions of the entries of ``x`` (and skips the zeros). Each weight holds log2(3) = 1.58 bits of
information, and is stored in 2 here (:func:`pack_ternary`), against 16 for float16: memory and
energy fall by large factors, which is the paper's case for "1-bit LLMs".

**BitLinear** replaces ``nn.Linear``. Its forward pass, the papers' equations with their symbols::

    x^ = RMSNorm(x)                                      normalise before quantising (BitNet, eq. 9-10)
    gamma = ||W||_1 / (n m) = mean |W_ij|                the absmean scale           (b1.58, eq. 3)
    W~ = RoundClip(W / (gamma + eps), -1, 1)             ternary weights             (b1.58, eq. 1)
         RoundClip(x, a, b) = max(a, min(b, round(x)))                               (b1.58, eq. 2)
    eta = ||x^||_inf = max_j |x^_j|                      per token                   (BitNet, eq. 5)
    x~ = Clip(x^ Q_b / eta, -Q_b + eps, Q_b - eps)       b-bit activations, Q_b = 2^(b-1) (BitNet, eq. 4)
    y = W~ x~ * gamma eta / Q_b                          dequantise                  (BitNet, eq. 11)

* **Weights** (absmean): divide by the mean absolute weight and round to the nearest of -1, 0, +1.
  A latent weight with ``|W| < gamma / 2`` becomes 0, the rest its sign: the rounding thresholds
  are at ``W / gamma = +-0.5`` (``bitnet_figures.TernaryWeights`` draws them). One scale per matrix.
* **Activations** (absmax, 8 bits, b = 8): each token (each row of ``x``, the last dimension) is
  scaled by its own largest magnitude, so no token's outlier squeezes the others. b1.58 scales the
  activations to ``[-Q_b, Q_b]`` per token with no zero-point (BitNet 1.0 shifted the inputs of
  non-linear functions to ``[0, Q_b]``; b1.58 drops that). The paper's ``Clip(..., -Q_b + eps,
  Q_b - eps)`` keeps ``x~`` strictly inside (-128, 128); rounded to integers it would reach +-128,
  one past int8. Here, as in the authors' released code, the scale is ``Q_b - 1 = 127``: integers
  in [-127, 127], each token's largest entry exactly +-127, the per-token step ``eta / 127``.
* **Normalisation** before quantisation (BitNet's SubLN idea, Wang et al. 2022): ``x^`` has unit
  root mean square, so the quantised product has the variance the weight scale assumes, whatever
  the layer before it did. It is a parameter-free RMSNorm inside ``BitLinear`` (``normalize=True``),
  so a ``BitLinear`` has exactly the parameters of a bias-free ``nn.Linear``.
* **Dequantisation**: ``W~ x~`` is a sum of integers; one multiplication per output by
  ``gamma eta / Q_b`` brings it back to the scale of ``W x``. :meth:`BitLinear.integer_forward`
  computes it that way; :meth:`BitLinear.forward` computes the same numbers as
  ``F.linear(x~ eta / Q_b, W~ gamma)``, which autograd can differentiate.

**Training**: the rounding has zero gradient almost everywhere, so the quantisers are passed by the
straight-through estimator (Bengio et al., 2013): ``q(x)`` in the forward pass, the identity in
the backward pass, written ``x + (q(x) - x).detach()``. Gradients therefore reach full-precision
*latent* weights ``W``, which the optimiser updates; the ternary ``W~`` are recomputed from them at
every step. After training only ``W~`` and ``gamma`` are needed: :func:`save_packed` stores each
``BitLinear`` as 2-bit codes (4 weights a byte) and one float scale, everything else in float16;
:func:`load_packed` gives back a model that predicts as the quantised model did.
:func:`packed_sizes` measures both files.

**Architecture** (b1.58, Section 2): "LLaMA-alike": RMSNorm, SwiGLU, rotary position embeddings,
no biases; every linear layer of attention and feed-forward is a ``BitLinear``, while the token
embedding and the output head stay in full precision (as BitNet keeps them: they are a small share
of a large model and sampling is sensitive to them). :class:`BitNetTransformer` is that decoder;
:data:`PAPER_CONFIGS` holds the sizes that the authors' 700M and 3B models use (hidden 1536 / 3200,
SwiGLU width 4096 / 8640, 24 / 26 layers, LLaMA's vocabulary of 32,000 tokens plus 2, the input
embedding tied to the output head as in the reproduction of Table 1's models): 728,707,584 and
3,324,080,000 parameters (Table 1 says "700M" and "3B"; the published reproduction "3.32B").
:meth:`BitNetLanguageModel.paper_sized` builds the 3B as a language model, its example one window
of 2,048 tokens.

**The same class gives the baseline**: ``BitLinear(quantize=False)`` is the identical layer with
full-precision weights and activations (normalisation included), so a full-precision twin differs
from the ternary network in the quantisation alone. ``BitNetMLP(compare_full_precision=True)``
trains one on the same batches in the same fit and logs ``{stage}_full_precision_accuracy`` and
``{stage}_accuracy_gap`` (full precision minus ternary).

Two LightningModules:

* :class:`BitNetLanguageModel`: the LLaMA-alike decoder on characters (``CharLMDataModule``'s pydoc
  text), the paper's setting in miniature. It carries ``INFO``.
* :class:`BitNetMLP`: a classifier of digits whose hidden layers are ``BitLinear`` (the output layer
  in full precision unless ``quantize_head``), where ternary weights are measured against the same
  network in full precision (``configs/bitnet/``: at width 256 and at width 8). Its runs are tracked
  under BitNet's ``INFO`` with ``variant: "mlp"``.

**No speed claim on the CPU**: here the quantisation is *simulated* in floating point (quantise,
dequantise, then an ordinary float matrix product), which is slower than ``nn.Linear``, not faster.
The paper's latency and energy gains need kernels that add and subtract ternary weights, or
integer units (``benchmarks/bitnet_speed.py`` measures the cost of the simulation, nothing more).

Example::

    layer = BitLinear(64, 32)
    y = layer(torch.randn(8, 64))                       # (8, 32), ternary weights, 8-bit inputs
    levels, gamma = ternary_weights(layer.weight)       # levels in {-1, 0, 1}
    save_packed(model, "model.bitnet.pt"); load_packed(fresh_model, "model.bitnet.pt")
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from ai_scratch.base import Classifier, check_choice
from ai_scratch.info import ModelInfo
from ai_scratch.sequence_models.attention import causal_mask, scaled_dot_product_attention
from ai_scratch.sequence_models.tasks import SequenceTaskModel, stacked_flops

LRSchedule = Literal["cosine", "constant"]
#: eps of the quantisers: keeps the divisions finite for an all-zero matrix or token
EPS = 1e-5
#: b of the activations: 8-bit integers
ACTIVATION_BITS = 8
#: the packed format's name, stored in the file
PACKED_FORMAT = "bitnet-b1.58-packed-v1"
#: weights per byte of :func:`pack_ternary`: 2 bits each
WEIGHTS_PER_BYTE = 4

#: The authors' LLaMA-alike sizes (arXiv:2402.17764, Table 1: "700M" and "3B"), as
#: :class:`BitNetTransformer` arguments; hidden sizes, SwiGLU widths, heads and layers as the
#: reproduction of those models publishes them (vocabulary 32,002, input embedding tied to the head).
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "700M": {"vocab_size": 32_002, "d_model": 1536, "d_ff": 4096, "num_heads": 16, "num_layers": 24, "context_size": 2048,
             "tie_embeddings": True},
    "3B": {"vocab_size": 32_002, "d_model": 3200, "d_ff": 8640, "num_heads": 32, "num_layers": 26, "context_size": 2048,
           "tie_embeddings": True},
}  # fmt: skip
#: :class:`BitNetTransformer`'s parameter count for each of :data:`PAPER_CONFIGS`.
PAPER_PARAMETERS = {"700M": 728_707_584, "3B": 3_324_080_000}


# ----------------------------------------------------------------------------------------- quantisers
def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"activation_bits must be an integer in [2, 16], got {bits!r}")


def ternary_weights(weight: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Absmean quantisation (b1.58, eq. 1-3): ``(W~, gamma)``, ``W~ = RoundClip(W / (gamma + eps), -1, 1)``.

    Returns the levels (float32, values exactly -1, 0 or +1, the shape of ``weight``) and the scale
    ``gamma = mean |W|`` (a float32 scalar); ``gamma * W~`` approximates ``W``.
    """
    latent = weight.detach().float()
    gamma = latent.abs().mean()  # gamma = 1/(nm) sum_ij |W_ij|
    levels = (latent / (gamma + eps)).round().clamp(-1, 1)  # RoundClip(W / (gamma + eps), -1, 1)
    return levels, gamma


def quantize_activations(x: Tensor, bits: int = ACTIVATION_BITS, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-token absmax quantisation (BitNet, eq. 4-5): ``(integers, step)`` with ``x ~ integers * step``.

    Each token (each vector along the last dimension) is scaled by its own ``eta = max |x|``: the
    integers lie in ``[-(Q_b - 1), Q_b - 1]`` (``[-127, 127]`` for 8 bits, no zero-point), the largest
    entry of each token at exactly +-(Q_b - 1), and ``step = eta / (Q_b - 1)`` has shape ``(..., 1)``.
    Computed in float32 whatever the input's dtype.
    """
    _check_bits(bits)
    q_max = 2 ** (bits - 1) - 1  # Q_b - 1: 127, symmetric signed 8-bit integers
    x32 = x.detach().float()
    eta = x32.abs().amax(dim=-1, keepdim=True).clamp(min=eps)  # eta = ||x||_inf, per token
    step = eta / q_max
    integers = (x32 / step).round().clamp(-q_max, q_max)  # Clip(x Q_b / eta, ...), rounded
    return integers, step


def straight_through(value: Tensor, quantized: Tensor) -> Tensor:
    """The straight-through estimator: ``quantized`` forward, the identity backward,
    ``value + (quantized - value).detach()``. Without a gradient to pass (inference), ``quantized``
    itself, so that the numbers are exactly the quantised ones."""
    quantized = quantized.to(value.dtype)
    if torch.is_grad_enabled() and value.requires_grad:
        return value + (quantized - value).detach()
    return quantized


def rms_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along the last dimension, computed in float32, in ``x``'s dtype."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square layer normalisation (Zhang and Sennrich, 2019) with a learnt gain, LLaMA's norm."""

    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))  # the gain g

    def forward(self, x: Tensor) -> Tensor:
        return rms_normalise(x, self.eps) * self.weight.to(x.dtype)


# ----------------------------------------------------------------------------------------- BitLinear
class BitLinear(nn.Module):
    """``nn.Linear`` with ternary weights and 8-bit per-token activations, trained through the STE.

    Args:
        in_features, out_features: the sizes, as ``nn.Linear``'s.
        quantize: ``True``: ternary weights and b-bit activations (BitNet b1.58); ``False``: the same
            layer in full precision (the baseline), normalisation included.
        normalize: the parameter-free RMSNorm of the input before quantisation (BitNet's LN in
            BitLinear); off, the input is quantised as it comes.
        activation_bits: b, the activations' bits (8 in the paper).
        bias: a full-precision bias (the paper's layers have none).

    Attributes:
        weight: the latent full-precision weights ``W`` ``(out_features, in_features)``, which the
            optimiser updates; after :meth:`load_ternary` the levels ``W~`` themselves.
        packed_scale: ``None`` while training; after :meth:`load_ternary`, the stored ``gamma``.

    Raises:
        ValueError: for sizes below 1 or bits outside [2, 16].
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        quantize: bool = True,
        normalize: bool = True,
        activation_bits: int = ACTIVATION_BITS,
        bias: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _check_bits(activation_bits)
        self.in_features, self.out_features = in_features, out_features
        self.quantize, self.normalize, self.activation_bits = quantize, normalize, activation_bits
        reference = nn.Linear(in_features, out_features, bias=bias)  # nn.Linear's initialisation
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone()) if bias else None
        self.register_buffer("packed_scale", None)

    def ternary(self) -> tuple[Tensor, Tensor]:
        """``(W~, gamma)`` of the current latent weights, or the loaded levels and their stored scale."""
        if self.packed_scale is not None:
            return self.weight.detach().float(), self.packed_scale.float()
        return ternary_weights(self.weight)

    def load_ternary(self, levels: Tensor, gamma: Tensor) -> None:
        """Hold the levels ``W~`` as the weight and ``gamma`` as a fixed scale (inference from a packed file)."""
        if tuple(levels.shape) != tuple(self.weight.shape):
            raise ValueError(f"levels of shape {tuple(levels.shape)} do not fit a weight of shape {tuple(self.weight.shape)}")
        with torch.no_grad():
            self.weight.copy_(levels.to(self.weight.dtype))
        self.packed_scale = gamma.detach().float().reshape(()).to(self.weight.device)

    def prepare_input(self, x: Tensor) -> Tensor:
        """``x^``: the input normalised (when ``normalize``), before any quantisation."""
        return rms_normalise(x) if self.normalize else x

    def forward(self, x: Tensor) -> Tensor:
        x = self.prepare_input(x)
        if not self.quantize:
            return F.linear(x, self.weight, self.bias)
        integers, step = quantize_activations(x, self.activation_bits)
        x_quantized = straight_through(x, integers * step)  # x~ eta / Q_b forward, identity backward
        levels, gamma = self.ternary()
        weight_quantized = straight_through(self.weight, levels * gamma)  # gamma W~ forward, to the latent W backward
        return F.linear(x_quantized, weight_quantized, self.bias)

    @torch.no_grad()
    def integer_forward(self, x: Tensor) -> Tensor:
        """The quantised layer as integer hardware computes it: ``(W~ x~) * gamma * eta / Q_b`` (BitNet eq. 11).

        ``W~ x~`` adds and subtracts integers (exactly, in float32, for fewer than 2^24 / 127 inputs);
        one multiplication per output rescales it. Equal to :meth:`forward` up to float rounding.
        """
        if not self.quantize:
            raise ValueError("integer_forward needs quantize=True: a full-precision layer has no integers")
        integers, step = quantize_activations(self.prepare_input(x), self.activation_bits)
        levels, gamma = self.ternary()
        accumulated = integers @ levels.T  # sum_j W~_ij x~_j: additions and subtractions only
        out = accumulated * (gamma * step)  # * gamma eta / Q_b
        return out + self.bias.float() if self.bias is not None else out

    def extra_repr(self) -> str:
        mode = f"ternary weights, {self.activation_bits}-bit activations" if self.quantize else "full precision"
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}, normalize={self.normalize}, bias={self.bias is not None}"


def bit_linear_layers(model: nn.Module, quantized_only: bool = True) -> list[tuple[str, BitLinear]]:
    """The ``BitLinear`` submodules of ``model`` by name (the quantised ones only, by default)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BitLinear) and (m.quantize or not quantized_only)]


# ----------------------------------------------------------------------------------------- packed storage
def pack_ternary(levels: Tensor) -> Tensor:
    """Four ternary weights a byte: ``code = W~ + 1`` in {0, 1, 2}, two bits each, the first weight in the lowest bits.

    Returns uint8 ``(ceil(n / 4),)`` for ``n`` weights (the last byte padded with code 0).

    Raises:
        ValueError: if a value is not -1, 0 or +1.
    """
    flat = levels.detach().flatten().cpu()
    if not torch.isin(flat, torch.tensor([-1, 0, 1], dtype=flat.dtype)).all():
        raise ValueError("pack_ternary needs values in {-1, 0, 1}; quantise the weights first (ternary_weights)")
    codes = (flat.round().to(torch.int16) + 1).to(torch.uint8)
    codes = F.pad(codes, (0, (-len(codes)) % WEIGHTS_PER_BYTE)).view(-1, WEIGHTS_PER_BYTE)
    packed = codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)
    return packed.contiguous()


def unpack_ternary(packed: Tensor, shape: tuple[int, ...] | torch.Size) -> Tensor:
    """The inverse of :func:`pack_ternary`: int8 levels of ``shape``.

    Raises:
        ValueError: for a tensor that is not uint8, of the wrong length for ``shape``, or holding code 3.
    """
    numel = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.ndim != 1:
        raise ValueError(f"packed must be a 1-D uint8 tensor, got {packed.dtype} of shape {tuple(packed.shape)}")
    if len(packed) != math.ceil(numel / WEIGHTS_PER_BYTE):
        raise ValueError(f"{len(packed)} bytes cannot hold {numel} weights of shape {tuple(shape)} (4 a byte)")
    codes = torch.stack([(packed >> shift) & 3 for shift in (0, 2, 4, 6)], dim=1).flatten()[:numel]
    if (codes == 3).any():
        raise ValueError("packed holds code 3, which is no ternary weight: not written by pack_ternary")
    return (codes.to(torch.int8) - 1).reshape(tuple(shape))


def save_packed(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` for inference: each quantised ``BitLinear`` as 2-bit codes and its ``gamma``,
    every other floating-point tensor of the state dict in float16 (others as they are)."""
    ternary = {}
    for name, layer in bit_linear_layers(model):
        levels, gamma = layer.ternary()
        ternary[f"{name}.weight" if name else "weight"] = {"codes": pack_ternary(levels), "shape": tuple(levels.shape), "gamma": gamma.float().cpu()}
    skipped = set(ternary) | {key.removesuffix("weight") + "packed_scale" for key in ternary}
    others = {key: value.detach().cpu().half() if value.is_floating_point() else value.detach().cpu()
              for key, value in model.state_dict().items() if key not in skipped}  # fmt: skip
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": PACKED_FORMAT, "ternary": ternary, "others": others}, out)
    return out


def load_packed(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a :func:`save_packed` file into ``model`` (built with the same sizes); returns ``model``.

    Each quantised ``BitLinear`` then holds its levels and stored ``gamma`` (:meth:`BitLinear.load_ternary`),
    and the other tensors are cast back to the model's dtypes.

    Raises:
        ValueError: for a file of another format, or one whose layers do not match ``model``'s.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != PACKED_FORMAT:
        raise ValueError(f"{path} is not a packed BitNet file (format {PACKED_FORMAT!r}); write one with save_packed")
    layers = dict(bit_linear_layers(model))
    expected = {f"{name}.weight" if name else "weight" for name in layers}
    if set(state["ternary"]) != expected:
        raise ValueError(f"{path} holds the ternary layers {sorted(state['ternary'])}, the model has {sorted(expected)}")
    for key, entry in state["ternary"].items():
        layer = layers[key.removesuffix("weight").removesuffix(".")]
        layer.load_ternary(unpack_ternary(entry["codes"], entry["shape"]).float(), entry["gamma"])
    current = model.state_dict()
    others = {key: value.to(current[key].dtype) if key in current else value for key, value in state["others"].items()}
    missing, unexpected = model.load_state_dict({**current, **others}, strict=False)
    if unexpected:
        raise ValueError(f"{path} holds tensors the model does not have: {unexpected[:5]}")
    return model


def ternary_weight_bytes(model: nn.Module) -> dict[str, int]:
    """The quantised ``BitLinear`` weights' storage: ``{"weights", "packed_bytes", "float16_bytes"}``
    (2 bits against 16 a weight, plus 4 bytes of ``gamma`` per layer in the packed form)."""
    counts = [layer.weight.numel() for _, layer in bit_linear_layers(model)]
    return {
        "weights": sum(counts),
        "packed_bytes": sum(math.ceil(n / WEIGHTS_PER_BYTE) + 4 for n in counts),
        "float16_bytes": sum(2 * n for n in counts),
    }


def packed_sizes(model: nn.Module, directory: str | os.PathLike | None = None) -> dict[str, int | float]:
    """Measured file sizes: :func:`save_packed`'s against ``torch.save`` of the state dict in float16.

    Returns ``{"packed_bytes", "float16_bytes", "ratio"}`` (ratio = float16 / packed). The files are
    written to ``directory`` (a temporary one when ``None``, removed afterwards).
    """
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(directory) if directory is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        packed = save_packed(model, folder / "model.packed.pt")
        half = {key: value.detach().cpu().half() if value.is_floating_point() else value.detach().cpu() for key, value in model.state_dict().items()}
        float16 = folder / "model.float16.pt"
        torch.save(half, float16)
        sizes = {"packed_bytes": packed.stat().st_size, "float16_bytes": float16.stat().st_size}
    return {**sizes, "ratio": sizes["float16_bytes"] / sizes["packed_bytes"]}


# ----------------------------------------------------------------------------------------- the decoder
def rotary_embedding(x: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding (Su et al., 2021), LLaMA's: rotate pairs ``(x_i, x_{i + d/2})`` of each
    head's ``(..., T, d)`` by the angle ``t * base^(-2i / d)`` at position ``t``, so that ``q . k``
    depends on the positions only through ``t_q - t_k``."""
    length, dim = x.shape[-2], x.shape[-1]
    half = dim // 2
    frequencies = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) * 2 / dim)  # theta_i
    angles = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * frequencies  # t theta_i
    cos, sin = angles.cos(), angles.sin()
    x32 = x.float()
    first, second = x32[..., :half], x32[..., half : 2 * half]
    rotated = torch.cat([first * cos - second * sin, first * sin + second * cos, x32[..., 2 * half :]], dim=-1)
    return rotated.to(x.dtype)


class BitAttention(nn.Module):
    """Causal multi-head self-attention whose four projections are ``BitLinear``; rotary positions.

    ``softmax(Q K^T / sqrt(d_k) + mask) V`` is :func:`~ai_scratch.sequence_models.attention.scaled_dot_product_attention`
    (written out, so that ``attention_weights`` can be drawn by ``callbacks.AttentionMaps``).
    """

    def __init__(self, d_model: int, num_heads: int, quantize: bool = True, activation_bits: int = ACTIVATION_BITS) -> None:
        super().__init__()
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        options = {"quantize": quantize, "activation_bits": activation_bits}
        self.w_q = BitLinear(d_model, d_model, **options)  # W^Q
        self.w_k = BitLinear(d_model, d_model, **options)  # W^K
        self.w_v = BitLinear(d_model, d_model, **options)  # W^V
        self.w_o = BitLinear(d_model, d_model, **options)  # W^O: its own norm is SubLN's, before the output projection
        self.attention_weights: Tensor | None = None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        batch, length, d_model = x.shape

        def heads(projected: Tensor) -> Tensor:
            return projected.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

        q, k, v = rotary_embedding(heads(self.w_q(x))), rotary_embedding(heads(self.w_k(x))), heads(self.w_v(x))
        attended, weights = scaled_dot_product_attention(q, k, v, mask)
        self.attention_weights = weights.detach()
        return self.w_o(attended.transpose(1, 2).reshape(batch, length, d_model))


class SwiGLU(nn.Module):
    """LLaMA's feed-forward block (Shazeer, 2020): ``W_down (SiLU(W_gate x) * W_up x)``, three ``BitLinear``."""

    def __init__(self, d_model: int, d_ff: int, quantize: bool = True, activation_bits: int = ACTIVATION_BITS) -> None:
        super().__init__()
        options = {"quantize": quantize, "activation_bits": activation_bits}
        self.w_gate = BitLinear(d_model, d_ff, **options)
        self.w_up = BitLinear(d_model, d_ff, **options)
        self.w_down = BitLinear(d_ff, d_model, **options)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class BitNetBlock(nn.Module):
    """Pre-norm decoder layer: ``x + Attention(RMSNorm(x))``, then ``x + SwiGLU(RMSNorm(x))``."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, quantize: bool = True, activation_bits: int = ACTIVATION_BITS, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(d_model)
        self.attention = BitAttention(d_model, num_heads, quantize, activation_bits)
        self.feed_forward_norm = RMSNorm(d_model)
        self.feed_forward = SwiGLU(d_model, d_ff, quantize, activation_bits)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


def _check_transformer_sizes(vocab_size: int, d_model: int, num_heads: int, d_ff: int, num_layers: int, context_size: int, dropout: float) -> None:
    for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("num_heads", num_heads), ("d_ff", d_ff),
                        ("num_layers", num_layers), ("context_size", context_size)):  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if d_model % num_heads:
        raise ValueError(f"d_model must be a multiple of num_heads, got d_model={d_model}, num_heads={num_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")


class BitNetTransformer(nn.Module):
    """The LLaMA-alike decoder of BitNet b1.58: full-precision embedding, N :class:`BitNetBlock`, RMSNorm,
    full-precision output head (tied to the embedding with ``tie_embeddings``).

    Args:
        vocab_size, d_model, num_heads, d_ff, num_layers: the sizes (:data:`PAPER_CONFIGS`).
        context_size: the longest sequence (rotary positions need no table; it bounds :meth:`forward`).
        quantize: ternary ``BitLinear`` layers, or the same network in full precision.
        activation_bits: b of the activations.
        tie_embeddings: the output head is the embedding matrix (``h E^T``).
        dropout: on each block's residual branches (0 in the paper's pre-training).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_layers: int,
        context_size: int = 2048,
        quantize: bool = True,
        activation_bits: int = ACTIVATION_BITS,
        tie_embeddings: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_transformer_sizes(vocab_size, d_model, num_heads, d_ff, num_layers, context_size, dropout)
        _check_bits(activation_bits)
        self.context_size, self.tie_embeddings = context_size, tie_embeddings
        self.embedding = nn.Embedding(vocab_size, d_model)  # full precision, as the paper keeps it
        self.layers = nn.ModuleList(BitNetBlock(d_model, num_heads, d_ff, quantize, activation_bits, dropout) for _ in range(num_layers))
        self.norm = RMSNorm(d_model)
        self.head = None if tie_embeddings else nn.Linear(d_model, vocab_size, bias=False)  # full precision

    def forward(self, tokens: Tensor) -> Tensor:
        """Scores ``(B, T, V)`` of the next token at every position of ``tokens (B, T)``."""
        length = tokens.shape[1]
        if length > self.context_size:
            raise ValueError(f"a sequence of {length} tokens is longer than context_size={self.context_size}")
        x = self.embedding(tokens)
        mask = causal_mask(length, tokens.device)  # position t sees tokens <= t only
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        return F.linear(x, self.embedding.weight) if self.head is None else self.head(x)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------------------- Lightning
BITNET_INFO = ModelInfo(
    name="bitnet",
    full_name="BitNet b1.58",
    module=6,
    pattern="engine-based",
    year_introduced=2024,
    authors=("Shuming Ma", "Hongyu Wang", "Lingxiao Ma", "Lei Wang", "Wenhui Wang", "Shaohan Huang", "Li Dong",
             "Ruiping Wang", "Jilong Xue", "Furu Wei"),  # fmt: skip
    paper_title="The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits",
    key_innovations=(
        "ternary weights {-1, 0, +1} by absmean quantisation: 1.58 bits a weight, matrix products without multiplications",
        "8-bit per-token absmax activations after a normalisation inside BitLinear (BitNet, 2023)",
        "trained from scratch with the straight-through estimator on full-precision latent weights",
        "matches a full-precision LLaMA-alike of the same size from about 3B parameters, with far less memory",
    ),
    architecture_type="transformer (decoder only, LLaMA-alike) with BitLinear layers",
    learning_algorithm="backpropagation with the straight-through estimator (quantisation-aware training)",
    loss_function="cross-entropy (next token, or classes)",
    optimizer="AdamW",
    framework="pytorch",
    difficulty_level="advanced",
    key_learning_objectives=(
        "quantise weights to three levels with the absmean scale and activations to int8 per token",
        "train through rounding with the straight-through estimator and see the latent weights move",
        "pack four ternary weights a byte and measure the model's size against float16",
        "see where ternary weights suffice (wide layers) and where they cost accuracy (narrow ones)",
    ),
    estimated_training_time="minutes",
)


class BitNetLanguageModel(SequenceTaskModel):
    """BitNet b1.58's LLaMA-alike decoder as a character-level language model (``task="language_model"``).

    Args:
        vocab_size: tokens (characters for ``CharLMDataModule``; it must equal the data's).
        context_size: the training windows' length, and the most tokens :meth:`generate` feeds back.
        d_model, num_heads, d_ff, num_layers: the decoder's sizes (:class:`BitNetTransformer`).
        quantize: ``False`` trains the same network in full precision (the baseline).
        activation_bits: b of the activations (8).
        tie_embeddings: the output head is the embedding matrix.
        dropout: on the residual branches.
        learning_rate, weight_decay: AdamW's (the paper: a larger rate than full precision needs).
        warmup_steps: linear warm-up of the rate over the first steps, then constant.

    Logs the language-model metrics of ``SequenceTaskModel`` (``{stage}_loss`` in nats,
    ``{stage}_perplexity``, ``{stage}_accuracy``) and ``{stage}_bits_per_character`` = loss / ln 2.
    """

    INFO = BITNET_INFO

    def __init__(
        self,
        vocab_size: int = 100,
        context_size: int = 64,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 172,
        num_layers: int = 2,
        quantize: bool = True,
        activation_bits: int = ACTIVATION_BITS,
        tie_embeddings: bool = False,
        dropout: float = 0.0,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        _check_transformer_sizes(vocab_size, d_model, num_heads, d_ff, num_layers, context_size, dropout)
        super().__init__("language_model", vocab_size)
        _check_training(learning_rate, weight_decay)
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.save_hyperparameters()
        self.context_size = context_size
        self.network = BitNetTransformer(vocab_size, d_model, num_heads, d_ff, num_layers, context_size, quantize, activation_bits,
                                         tie_embeddings, dropout)  # fmt: skip
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_nats", MeanMetric())
        self.example_input_array = torch.zeros(1, context_size, dtype=torch.long)
        self.input_size, self.output_size = (context_size,), (context_size, vocab_size)

    @classmethod
    def paper_sized(cls, size: str = "3B") -> BitNetLanguageModel:
        """BitNet b1.58 at one of Table 1's sizes, ``"3B"`` (the default: 3,324,080,000 parameters,
        the size at which it matches the full-precision LLaMA) or ``"700M"`` (728,707,584): the
        LLaMA-alike decoder of :data:`PAPER_CONFIGS`, its linear layers ternary.

        One example is one window of 2,048 tokens (``context_size``) and the next token's scores at
        each of them. The count is what a float simulation computes: each ternary product counted
        as multiply-adds, ``2 T (4 d^2 + 3 d d_ff)`` per layer (on BitNet's kernels, additions
        only), the attention ``4 T^2 d`` per layer and the full-precision head ``2 T d V``.
        """
        if size not in PAPER_CONFIGS:
            raise ValueError(f"size must be one of {sorted(PAPER_CONFIGS)}, got {size!r}")
        return cls(**PAPER_CONFIGS[size])

    def forward_flops(self) -> int:
        """The FLOPs of :meth:`forward` on ``example_input_array`` as :meth:`BaseModel.forward_flops`
        counts them, with one decoder block run instead of all N: the blocks are identical
        (:func:`~ai_scratch.sequence_models.tasks.stacked_flops`)."""
        return stacked_flops(self, [(self.network, "layers")])

    def setup(self, stage: str) -> None:
        """Refuse, in one line, data whose vocabulary is not the model's."""
        datamodule = self.trainer.datamodule
        have = getattr(datamodule, "vocab_size", None)
        if isinstance(have, int) and have != self.hparams.vocab_size:
            raise ValueError(f"the model's vocab_size is {self.hparams.vocab_size} but the data's vocab_size is {have}: set --model.vocab_size={have}")

    def forward(self, tokens: Tensor) -> Tensor:
        return self.network(tokens)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        loss = super()._shared_step(batch, stage)
        nats: MeanMetric = getattr(self, f"{stage}_nats")
        nats.update(loss.detach().float() / math.log(2), weight=batch[1].numel())
        self.log(f"{stage}_bits_per_character", nats, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
        warmup = self.hparams.warmup_steps
        if not warmup:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, gradient flow and text samples (``SequenceTaskModel``), the attention maps,
        and the latent weights against the ternary levels (:class:`~ai_scratch.modern_paradigm.bitnet_figures.TernaryWeights`)."""
        from ai_scratch.modern_paradigm.bitnet_figures import TernaryWeights
        from callbacks import AttentionMaps

        return [*super().figures(every_n_epochs), AttentionMaps(every_n_epochs=every_n_epochs), TernaryWeights(every_n_epochs=every_n_epochs)]

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info.update(ternary_weights=ternary_weight_bytes(self.network)["weights"], quantize=self.hparams.quantize)
        return info


def _check_training(learning_rate: float, weight_decay: float) -> None:
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")


def bitnet_mlp(input_dim: int, width: int, num_hidden_layers: int, num_classes: int, quantize: bool = True, quantize_head: bool = False,
               activation_bits: int = ACTIVATION_BITS) -> nn.Sequential:  # fmt: skip
    """Flatten, ``num_hidden_layers`` x (``BitLinear`` then ReLU), and a ``BitLinear`` head with a bias,
    quantised only with ``quantize_head`` (the paper keeps the output layer in full precision)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = input_dim
    for _ in range(num_hidden_layers):
        layers += [BitLinear(fan_in, width, quantize=quantize, activation_bits=activation_bits), nn.ReLU()]
        fan_in = width
    layers.append(BitLinear(fan_in, num_classes, quantize=quantize and quantize_head, activation_bits=activation_bits, bias=True))
    return nn.Sequential(*layers)


class BitNetMLP(Classifier):
    """A digit classifier whose hidden layers are ``BitLinear``: where ternary weights are measured against full precision.

    It carries no ``INFO`` of its own: :meth:`model_info` reports BitNet b1.58's (on
    :class:`BitNetLanguageModel`) with ``variant: "mlp"``, so that its runs are tracked under ``bitnet``.

    Args:
        input_dim: inputs per example (the pixels: 64 for 8x8 digits); images are flattened.
        num_classes: classes (10 digits).
        width: units of each hidden layer.
        num_hidden_layers: hidden ``BitLinear`` layers.
        quantize: ternary weights and 8-bit activations; ``False``: the same network in full precision.
        quantize_head: also make the output layer ternary (the paper keeps it in full precision).
        activation_bits: b of the activations.
        compare_full_precision: also train a full-precision twin (``quantize=False``, the same
            initial weights) on the same batches in the same fit; it logs
            ``{stage}_full_precision_accuracy`` / ``_loss``, ``{stage}_accuracy_gap`` (full precision
            minus ternary) and ``{stage}_loss_gap`` (ternary minus full precision). The twin's loss is added to the training loss: its
            parameters are its own, so each network gets exactly the gradient it would alone.
        learning_rate, weight_decay: AdamW's.
        lr_schedule: ``"cosine"``: the rate decays to 0 over ``max_epochs`` (Loshchilov and Hutter,
            2017), so that both networks end training settled and the last epoch compares them
            fairly (the paper also decays its rate); ``"constant"``.
    """

    def __init__(
        self,
        input_dim: int = 64,
        num_classes: int = 10,
        width: int = 256,
        num_hidden_layers: int = 1,
        quantize: bool = True,
        quantize_head: bool = False,
        activation_bits: int = ACTIVATION_BITS,
        compare_full_precision: bool = False,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "cosine",
    ) -> None:
        super().__init__(num_classes)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        for name, value, least in (("input_dim", input_dim, 1), ("width", width, 1), ("num_hidden_layers", num_hidden_layers, 1)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        _check_bits(activation_bits)
        _check_training(learning_rate, weight_decay)
        if compare_full_precision and not quantize:
            raise ValueError("compare_full_precision needs quantize=True: the network would be its own twin")
        self.save_hyperparameters()
        self.network = bitnet_mlp(input_dim, width, num_hidden_layers, num_classes, quantize, quantize_head, activation_bits)
        self.full_precision: nn.Sequential | None = None
        if compare_full_precision:
            self.full_precision = bitnet_mlp(input_dim, width, num_hidden_layers, num_classes, False, False, activation_bits)
            self.full_precision.load_state_dict(self.network.state_dict())  # the same start: only quantisation differs
            twin = MetricCollection({"accuracy": MulticlassAccuracy(num_classes, average="micro"), "loss": MeanMetric()})
            for stage in ("train", "val", "test"):
                setattr(self, f"{stage}_full_precision_metrics", twin.clone(prefix=f"{stage}_full_precision_"))
        self.set_sizes((input_dim,), (num_classes,))

    def setup(self, stage: str) -> None:
        """Refuse, in one line, images whose pixels are not ``input_dim``."""
        shape = getattr(self.trainer.datamodule, "input_shape", None)
        if shape is not None and math.prod(shape) != self.hparams.input_dim:
            raise ValueError(f"input_dim is {self.hparams.input_dim} but the data's images {tuple(shape)} have {math.prod(shape)} pixels: "
                             f"set --model.input_dim={math.prod(shape)}")  # fmt: skip

    def forward(self, inputs: Tensor) -> Tensor:
        return self.network(inputs)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        loss = super()._shared_step(batch, stage)
        if self.full_precision is None:
            return loss
        inputs, target = batch
        scores = self.full_precision(inputs)
        twin_loss = self.criterion(scores, target)
        metrics: MetricCollection = getattr(self, f"{stage}_full_precision_metrics")
        metrics[f"{stage}_full_precision_accuracy"].update(scores.detach().argmax(dim=-1), target)
        metrics[f"{stage}_full_precision_loss"].update(twin_loss.detach(), weight=len(target))
        return loss + twin_loss

    def _log_epoch_metrics(self, stage: str) -> None:
        twin: MetricCollection | None = getattr(self, f"{stage}_full_precision_metrics", None)
        if twin is None or not twin[f"{stage}_full_precision_accuracy"].update_called:
            super()._log_epoch_metrics(stage)
            return
        values = {name: metric.compute() for name, metric in twin.items()}  # collective under DDP
        ternary = getattr(self, f"{stage}_metrics")
        ternary_accuracy, ternary_loss = ternary[f"{stage}_accuracy"].compute(), ternary[f"{stage}_loss"].compute()
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=stage != "train", sync_dist=True)
        twin.reset()
        super()._log_epoch_metrics(stage)
        gaps = {
            f"{stage}_accuracy_gap": values[f"{stage}_full_precision_accuracy"] - ternary_accuracy,  # full precision - ternary
            f"{stage}_loss_gap": ternary_loss - values[f"{stage}_full_precision_loss"],  # ternary - full precision
        }
        self.log_dict(gaps, on_step=False, on_epoch=True, prog_bar=stage != "train", sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
        epochs = self.trainer.max_epochs if self.attached_trainer() is not None else None
        if self.hparams.lr_schedule == "constant" or not epochs or epochs < 1:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)}

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves (the twin's beside the ternary network's), the confusion matrix, gradient
        flow, and the latent weights against the ternary levels."""
        from ai_scratch.modern_paradigm.bitnet_figures import TernaryWeights
        from callbacks.figures import ConfusionMatrix, GradientFlow, LearningCurves

        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            ConfusionMatrix(every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            TernaryWeights(every_n_epochs=every_n_epochs),
        ]

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info.update(BITNET_INFO.to_dict(), variant="mlp", architecture_type="multi-layer perceptron with BitLinear layers",
                    ternary_weights=ternary_weight_bytes(self.network)["weights"])  # fmt: skip
        return info
