"""Denoising diffusion probabilistic models (Ho, Jain and Abbeel, 2020): learn to undo noise, one step at a time.

Paper: J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
(arXiv:2006.11239). Section 2 gives the two processes, Section 3 the parameterisation and the
simplified loss, Section 4 and Appendix B the schedule and the network. The cosine schedule is
from A. Nichol and P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021
(arXiv:2102.09672), Section 3.2.

A *forward process* destroys the data by adding a little Gaussian noise at each of T steps, on a
fixed variance schedule ``beta_1 < ... < beta_T``; a network learns the *reverse process*, one
small denoising step at a time, and sampling runs it from pure noise ``x_T`` down to ``x_0``::

    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)                       (eq. 2)
    alpha_t = 1 - beta_t,    alpha-bar_t = prod_{s=1..t} alpha_s
    q(x_t | x_0) = N(x_t; sqrt(alpha-bar_t) x_0, (1 - alpha-bar_t) I)                   (eq. 4)
      so  x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps,  eps ~ N(0, I)        (q_sample)

Any x_t is one Gaussian draw away from x_0 (eq. 4, the closed form): training needs no chain. The
reverse step is a Gaussian ``p_theta(x_{t-1} | x_t) = N(x_{t-1}; mu_theta(x_t, t), sigma_t^2 I)``
whose mean is written through a network ``eps_theta`` that predicts the noise in x_t::

    mu_theta(x_t, t) = 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha-bar_t) eps_theta(x_t, t))   (eq. 11)
    sigma_t^2 = beta_t                                                                   (Section 3.2)

With that parameterisation the variational bound reduces, up to weights that the paper drops, to
a regression on the noise, the *simplified loss*::

    L_simple(theta) = E_{t, x_0, eps} || eps - eps_theta(sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps, t) ||^2   (eq. 14)

    Algorithm 1 (training)                     Algorithm 2 (sampling)
    repeat                                     x_T ~ N(0, I)
      x_0 ~ q(x_0)                             for t = T, ..., 1:
      t ~ Uniform({1, ..., T})                   z ~ N(0, I) if t > 1, else z = 0
      eps ~ N(0, I)                              x_{t-1} = 1 / sqrt(alpha_t) (x_t - (1 - alpha_t) / sqrt(1 - alpha-bar_t)
      gradient step on                                     eps_theta(x_t, t)) + sigma_t z
        || eps - eps_theta(x_t, t) ||^2        return x_0
    until converged

Here the squared norm is averaged over the elements (mean squared error), as the authors' code does.

Schedules (``schedule``). ``"linear"``, the paper's (Section 4): ``T = 1000`` and beta rising
linearly from ``beta_1 = 1e-4`` to ``beta_T = 0.02``, small enough that each reverse step is close
to a Gaussian, large enough that ``alpha-bar_T`` is about 4e-5 (x_T is noise). ``"cosine"``,
Nichol and Dhariwal's (eq. 17): ``alpha-bar_t = f(t) / f(0)``, ``f(t) = cos((t/T + s) / (1 + s) * pi/2)^2``,
``s = 0.008``, ``beta_t = 1 - alpha-bar_t / alpha-bar_{t-1}`` clipped at 0.999; it destroys
information more slowly in the middle of the chain and reaches noise at any T, so it is the schedule
for a short chain. ``ddpm_figures.py`` draws both.

The price (the weakness). Sampling runs the network T times, once per step of Algorithm 2, where a
GAN's generator runs once: ``benchmarks/generative_speed.py`` measures it, and a short chain is no
way out, because the reverse step is Gaussian only when beta_t is small (``few_steps_weakness``).

Networks (``denoiser``). ``eps_theta`` sees the noisy x_t and the step t, given as the Transformer's
sinusoidal embedding (:func:`timestep_embedding`, Section 4: "parameters are shared across time,
which is specified to the network using the Transformer sinusoidal position embedding").

* ``"mlp"``, for points in the plane: :class:`MLPDenoiser`, the U-Net's residual blocks (below) with
  linear layers in place of convolutions, the embedding of t added in each.
* ``"unet"``, for images: :class:`UNet`, the paper's network (Appendix B), "a U-Net based on a Wide
  ResNet", PixelCNN++'s backbone with group normalisation: residual blocks into which the embedding
  of t is added, self-attention at the 16x16 resolution, dropout. :data:`PAPER_CONFIGS` holds the
  CIFAR-10 model (channel multipliers (1, 2, 2, 2) on 128 base channels, two residual blocks per
  resolution, attention at 16x16, dropout 0.1), which the paper counts at 35.7 million parameters;
  this class builds it with 35,746,307 (0.13% more; ``tests/test_ddpm.py`` checks it within 1%).
  :meth:`DDPM.paper_sized` is the whole model around it; one call of eps_theta on one 32x32 image
  costs 12,443,713,536 FLOPs, and a sample runs it T = 1,000 times.
  The miniature for 8x8 digits is the same class, two resolutions, 32 base channels.

Experiments (``configs/ddpm/``): ``moons_strength``, the MLP with the paper's T and schedule on two
moons, test MMD at most 0.05, half that of a Gaussian fitted to the data; ``digits_strength``, the
small U-Net on 8x8 digits with T = 250 and the paper's schedule rescaled to it (beta 4e-4 to 0.08,
the same alpha-bar_T), FID in our classifier's features at most 25 where noise scores about 300;
``few_steps_weakness``, the moons model with T = 3 on the cosine schedule, MMD at least 0.05.

EMA. The paper samples with an exponential moving average of the weights, decay 0.9999 (Appendix B);
short runs need a shorter memory (0.995 averages over about 200 steps). The average is a
``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` held inside the module, so that
checkpoints carry it, and it is what :meth:`DDPM.sample` and every evaluation (validation and test
loss, sample quality) use; the raw weights are what the optimiser moves. (Lightning's
``EMAWeightAveraging`` callback swaps the averaged weights in only between its own validation hooks:
the base class's sample quality, drawn in the module's ``on_validation_epoch_end``, runs after the
swap back, and a test from the best checkpoint reloads the raw weights.)

Training (Appendix B, and the authors' released code): Adam at 2e-4, batch 128, gradient norms
clipped at 1 (``trainer.gradient_clip_val``), the rate warmed up linearly over 5,000 steps
(``warmup_steps``), dropout 0.1 on CIFAR-10.

Example::

    model = DDPM(denoiser="mlp", data_shape=(2,), timesteps=100, ema_decay=0.99)
    loss = model.loss_terms(torch.randn(64, 2))["loss"]      # L_simple of one batch
    points = model.sample(500)                               # (500, 2): 100 network calls
    path = model.sample_trajectory(8, times=(100, 50, 0))    # {100: x_100, 50: x_50, 0: x_0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ai_scratch.base import check_choice
from ai_scratch.generative_era.base import GenerativeModel
from ai_scratch.info import ModelInfo

Schedule = Literal["linear", "cosine"]
Denoiser = Literal["mlp", "unet"]

#: Nichol and Dhariwal's offset s (eq. 17) and their cap on beta_t.
COSINE_OFFSET, MAX_BETA = 0.008, 0.999


# ---------------------------------------------------------------------- the forward process's schedule
def linear_betas(timesteps: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:  # noqa: N803  (the paper's beta_T)
    """beta_1 ... beta_T rising linearly (Ho et al., Section 4), float64 ``(T,)``."""
    return torch.linspace(beta_1, beta_T, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = COSINE_OFFSET, max_beta: float = MAX_BETA) -> Tensor:
    """beta_1 ... beta_T of Nichol and Dhariwal's cosine schedule (eq. 17), float64 ``(T,)``:
    ``alpha-bar_t = f(t) / f(0)``, ``f(t) = cos((t/T + s) / (1 + s) * pi/2)^2``,
    ``beta_t = 1 - alpha-bar_t / alpha-bar_{t-1}``, at most ``max_beta`` (near t = T, where
    alpha-bar falls to 0, beta_t would reach 1)."""
    t = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """The Transformer's sinusoidal embedding of integer steps ``t`` ``(B,)``, ``(B, dim)``: sines
    then cosines of ``t / 10000^(i / (dim/2 - 1))``, as in the authors' code."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


# ---------------------------------------------------------------------- eps_theta for points
class MLPBlock(nn.Module):
    """The U-Net's residual block with linear layers for convolutions: ``h + Linear(SiLU(h + Linear(SiLU(temb))))``."""

    def __init__(self, width: int, embedding_size: int) -> None:
        super().__init__()
        self.step_projection = nn.Linear(embedding_size, width)
        self.linear = nn.Linear(width, width)

    def forward(self, h: Tensor, step: Tensor) -> Tensor:
        return h + self.linear(F.silu(h + self.step_projection(F.silu(step))))


class MLPDenoiser(nn.Module):
    """eps_theta for vectors: x_t to ``hidden_size`` units, ``num_layers`` residual blocks into which
    the step's embedding is added (as in the U-Net), then back to the data's size.

    Args:
        data_dim: the size of a data vector (2 for points in the plane).
        hidden_size: the width of the blocks and of t's embedding.
        num_layers: residual blocks.
    """

    def __init__(self, data_dim: int = 2, hidden_size: int = 128, num_layers: int = 3) -> None:
        super().__init__()
        self.embedding_size = hidden_size
        self.step_mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.input = nn.Linear(data_dim, hidden_size)
        self.blocks = nn.ModuleList(MLPBlock(hidden_size, hidden_size) for _ in range(num_layers))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, data_dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        step = self.step_mlp(timestep_embedding(t, self.embedding_size))
        h = self.input(x)
        for block in self.blocks:
            h = block(h, step)
        return self.output(h)


# ---------------------------------------------------------------------- eps_theta for images: the U-Net
def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """Group normalisation (Wu and He, 2018), which the paper puts where PixelCNN++ had weight normalisation."""
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """A Wide ResNet block with the step's embedding added between its two convolutions::

        h = conv1(SiLU(GroupNorm(x))) + Linear(SiLU(temb))       the step, one number per channel
        h = conv2(Dropout(SiLU(GroupNorm(h))))
        out = shortcut(x) + h                                   a 1x1 convolution when the width changes
    """

    def __init__(self, in_channels: int, out_channels: int, embedding_size: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.step_projection = nn.Linear(embedding_size, out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # as the authors' code: each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, step: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.step_projection(F.silu(step))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the positions of a feature map (one head), with a residual connection::

        out = x + proj(softmax(q k^T / sqrt(C)) v),   q, k, v = 1x1 convolutions of GroupNorm(x)
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)  # q, k and v: three 1x1 convolutions side by side
        self.projection = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)  # (B, HW, C) each
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        return x + self.projection(h.transpose(1, 2).reshape(batch, channels, height, width))


class UNet(nn.Module):
    """The paper's eps_theta for images (Appendix B): a U-Net of residual blocks, the step embedded in each.

    Down: a 3x3 convolution to ``base_channels``, then at each resolution ``num_res_blocks`` residual
    blocks (width ``base_channels * multiplier``, self-attention after each at the resolutions in
    ``attention_resolutions``) and a stride-2 convolution, except at the last. Middle: block,
    attention, block. Up: at each resolution, deepest first, ``num_res_blocks + 1`` blocks, each fed
    the concatenation of the running features and the matching down-path output (the U's skips),
    then nearest-neighbour upsampling and a 3x3 convolution. Out: GroupNorm, SiLU, a 3x3 convolution
    to the image's channels (zero at initialisation). The step: its sinusoidal embedding of size
    ``base_channels`` through two linear layers to ``4 * base_channels``.

    Args:
        image_channels, image_size: the images' channels and side (a multiple of 2^(levels - 1)).
        base_channels: the width of the first resolution (the paper's ``ch``, 128 on CIFAR-10).
        channel_multipliers: one per resolution, the width over ``base_channels``.
        num_res_blocks: residual blocks per resolution on the way down.
        attention_resolutions: the sides at which self-attention follows each block.
        dropout: dropout in every residual block (0.1 on CIFAR-10).
        norm_groups: groups of every GroupNorm (the paper's 32; it must divide every width).
    """

    def __init__(
        self,
        image_channels: int = 1,
        image_size: int = 8,
        base_channels: int = 32,
        channel_multipliers: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (),
        dropout: float = 0.0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        levels = len(channel_multipliers)
        if image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {image_size} cannot be halved {levels - 1} times (one per extra channel multiplier)")
        widths = [base_channels * m for m in channel_multipliers]
        if any(width % norm_groups for width in [base_channels, *widths]):
            raise ValueError(f"norm_groups={norm_groups} must divide every width {sorted({base_channels, *widths})}")
        self.base_channels = base_channels
        embedding_size = 4 * base_channels
        self.step_mlp = nn.Sequential(nn.Linear(base_channels, embedding_size), nn.SiLU(), nn.Linear(embedding_size, embedding_size))
        self.input_conv = nn.Conv2d(image_channels, base_channels, 3, padding=1)

        def block(cin: int, cout: int) -> ResidualBlock:
            return ResidualBlock(cin, cout, embedding_size, dropout, norm_groups)

        # the down path: the widths of its outputs are the skips the up path will concatenate
        self.down = nn.ModuleList()
        skips, width, side = [base_channels], base_channels, image_size
        for level, out_width in enumerate(widths):
            for _ in range(num_res_blocks):
                stage = nn.ModuleList([block(width, out_width)])
                if side in attention_resolutions:
                    stage.append(AttentionBlock(out_width, norm_groups))
                self.down.append(stage)
                width = out_width
                skips.append(width)
            if level != levels - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(width, width, 3, stride=2, padding=1)]))  # downsample
                skips.append(width)
                side //= 2
        self.middle = nn.ModuleList([block(width, width), AttentionBlock(width, norm_groups), block(width, width)])
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            for _ in range(num_res_blocks + 1):
                stage = nn.ModuleList([block(width + skips.pop(), widths[level])])
                width = widths[level]
                if side in attention_resolutions:
                    stage.append(AttentionBlock(width, norm_groups))
                self.up.append(stage)
            if level != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1)]))
                side *= 2
        self.output = nn.Sequential(group_norm(width, norm_groups), nn.SiLU(), nn.Conv2d(width, image_channels, 3, padding=1))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    @staticmethod
    def _run(stage: nn.ModuleList, h: Tensor, step: Tensor) -> Tensor:
        for layer in stage:
            h = layer(h, step) if isinstance(layer, ResidualBlock) else layer(h)
        return h

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        step = self.step_mlp(timestep_embedding(t, self.base_channels))
        outputs = [self.input_conv(x)]
        for stage in self.down:
            outputs.append(self._run(stage, outputs[-1], step))
        h = self._run(self.middle, outputs[-1], step)
        for stage in self.up:
            if isinstance(stage[0], ResidualBlock):
                h = torch.cat([h, outputs.pop()], dim=1)
            h = self._run(stage, h, step)
        return self.output(h)


#: The paper's CIFAR-10 network (Appendix B), as :class:`UNet` arguments: 35.7M parameters in the paper.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "cifar10": {"image_channels": 3, "image_size": 32, "base_channels": 128, "channel_multipliers": (1, 2, 2, 2),
                "num_res_blocks": 2, "attention_resolutions": (16,), "dropout": 0.1, "norm_groups": 32},
}  # fmt: skip
#: The parameter count the paper gives for it (Appendix B: "Our CIFAR10 model has 35.7 million parameters").
PAPER_PARAMETER_COUNTS: dict[str, float] = {"cifar10": 35.7e6}


# ---------------------------------------------------------------------- the model
class DDPM(GenerativeModel):
    """The denoising diffusion probabilistic model: Algorithm 1 to train, Algorithm 2 to sample.

    Args:
        denoiser: ``"mlp"`` (:class:`MLPDenoiser`, vectors) or ``"unet"`` (:class:`UNet`, images).
        data_shape: the shape of one example: ``(d,)`` for the MLP, ``(channels, side, side)`` for
            the U-Net; the data module's must match.
        timesteps: T, the length of the chain (the paper's 1,000).
        schedule: ``"linear"`` (the paper's, from ``beta_1`` to ``beta_T``) or ``"cosine"``
            (Nichol and Dhariwal's; ``beta_1`` and ``beta_T`` are then unused).
        beta_1, beta_T: the linear schedule's ends (1e-4 and 0.02).
        hidden_size, num_layers: the MLP's width and depth.
        base_channels, channel_multipliers, num_res_blocks, attention_resolutions, dropout,
            norm_groups: the U-Net's (see :class:`UNet`).
        ema_decay: decay of the exponential moving average of the weights that samples and
            evaluations use (the paper's 0.9999; 0 keeps the latest weights).
        learning_rate: Adam's rate (the paper's 2e-4).
        warmup_steps: optimizer steps over which the rate rises linearly from 0 (0: none).
        quality_every_n_epochs, quality_samples: see :class:`~ai_scratch.generative_era.base.GenerativeModel`.
    """

    INFO = ModelInfo(
        name="ddpm",
        full_name="DDPM",
        module=5,
        pattern="engine-based",
        year_introduced=2020,
        authors=("Jonathan Ho", "Ajay Jain", "Pieter Abbeel"),
        paper_title="Denoising Diffusion Probabilistic Models",
        key_innovations=(
            "a fixed forward process that turns data into noise in T small Gaussian steps, with a closed form for any step",
            "a learnt reverse process whose mean is written through a network that predicts the added noise",
            "the simplified loss: a plain regression of the noise, an unweighted variational bound",
            "ancestral sampling from pure noise, one network call per step",
            "a U-Net with sinusoidal step embeddings shared across all steps, and EMA weights",
        ),
        architecture_type="diffusion model (U-Net or MLP noise predictor)",
        learning_algorithm="backpropagation on the simplified variational bound",
        loss_function="mean squared error between the added noise and the predicted noise (L_simple)",
        optimizer="Adam",
        framework="pytorch",
        difficulty_level="advanced",
        key_learning_objectives=(
            "derive q(x_t | x_0) in closed form and check its mean and variance by sampling",
            "train eps_theta with L_simple: pick a step, add noise, predict it",
            "sample with Algorithm 2 and watch noise turn into data along the trajectory",
            "compare the linear and cosine schedules, and see what a short chain costs",
            "count the network calls of a sample: T, against a GAN's one",
        ),
        estimated_training_time="minutes",
    )

    def __init__(
        self,
        denoiser: Denoiser = "mlp",
        data_shape: tuple[int, ...] = (2,),
        timesteps: int = 1000,
        schedule: Schedule = "linear",
        beta_1: float = 1e-4,
        beta_T: float = 0.02,  # noqa: N803  (the paper's beta_T)
        hidden_size: int = 128,
        num_layers: int = 3,
        base_channels: int = 32,
        channel_multipliers: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] = (),
        dropout: float = 0.0,
        norm_groups: int = 8,
        ema_decay: float = 0.9999,
        learning_rate: float = 2e-4,
        warmup_steps: int = 0,
        quality_every_n_epochs: int = 1,
        quality_samples: int = 1000,
    ) -> None:
        super().__init__(quality_every_n_epochs, quality_samples)
        check_choice("denoiser", denoiser, Denoiser)
        check_choice("schedule", schedule, Schedule)
        data_shape = tuple(data_shape)
        if not isinstance(timesteps, int) or timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
        if schedule == "linear" and not 0 < beta_1 <= beta_T < 1:
            raise ValueError(f"the linear schedule needs 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if any(not isinstance(size, int) or size < 1 for size in data_shape):
            raise ValueError(f"data_shape must be positive integers, got {data_shape}")
        if denoiser == "mlp":
            if len(data_shape) != 1:
                raise ValueError(f"denoiser 'mlp' takes vectors: data_shape must be (d,), got {data_shape}")
            if hidden_size < 2 or hidden_size % 2 or num_layers < 1:
                raise ValueError(f"the MLP needs an even hidden_size >= 2 and num_layers >= 1, got {hidden_size} and {num_layers}")
            self.network: nn.Module = MLPDenoiser(data_shape[0], hidden_size, num_layers)
        else:
            if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
                raise ValueError(f"denoiser 'unet' takes square images: data_shape must be (channels, side, side), got {data_shape}")
            if base_channels < 2 or base_channels % 2 or not channel_multipliers or num_res_blocks < 1:
                raise ValueError("the U-Net needs an even base_channels, at least one channel multiplier and num_res_blocks >= 1")
            self.network = UNet(data_shape[0], data_shape[1], base_channels, channel_multipliers, num_res_blocks,
                                attention_resolutions, dropout, norm_groups)  # fmt: skip
        self.save_hyperparameters()
        self.denoiser, self.data_shape, self.timesteps, self.schedule = denoiser, data_shape, timesteps, schedule

        # The schedule, indexed by the paper's t = 1..T; entry 0 is t = 0 (beta_0 = 0, alpha-bar_0 = 1),
        # so that alpha_bars[t - 1] is alpha-bar_{t-1} in eq. 7 and the code reads as the paper.
        betas = linear_betas(timesteps, beta_1, beta_T) if schedule == "linear" else cosine_betas(timesteps)
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        alphas = 1 - betas  # alpha_t
        alpha_bars = torch.cumprod(alphas, dim=0)  # alpha-bar_t
        for name, value in (("betas", betas), ("alphas", alphas), ("alpha_bars", alpha_bars)):
            self.register_buffer(name, value.float(), persistent=False)  # rebuilt from the hyperparameters

        # eps_theta's moving average: a copy that the optimiser never sees (no gradients, so DDP skips it)
        self.ema = AveragedModel(self.network, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        self._ema_step = 0  # the optimizer step of the last update

        self.set_sizes(data_shape, data_shape)
        self.example_input_array = (torch.zeros(1, *data_shape), torch.ones(1, dtype=torch.long))

    @classmethod
    def paper_sized(cls) -> DDPM:
        """The CIFAR-10 model (Section 4, Appendix B): the U-Net of :data:`PAPER_CONFIGS` (35,746,307
        parameters; the paper: "35.7 million"), T = 1,000 steps of the linear schedule, EMA decay
        0.9999. The moving average is a second copy of the U-Net, so ``parameters()`` lists
        71,492,614; :meth:`model_info` counts the network once.

        One example is one noisy 32x32 image and its step t: the forward is one call of
        eps_theta, which Algorithm 2 repeats T times to draw one sample.
        """
        unet = dict(PAPER_CONFIGS["cifar10"])
        data_shape = (unet.pop("image_channels"), unet["image_size"], unet.pop("image_size"))
        return cls(denoiser="unet", data_shape=data_shape, timesteps=1000, schedule="linear", ema_decay=0.9999, **unet)

    # ------------------------------------------------------------------ eps_theta
    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t): the noise in ``x_t`` at steps ``t`` ``(B,)`` (integers 1..T). In
        training mode the weights being trained; in evaluation mode their moving average."""
        network = self.network if self.training else self.ema.module
        return network(x_t, t)

    # ------------------------------------------------------------------ the forward process
    def _at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t]`` shaped to broadcast over examples like ``like``."""
        return values[t].view(-1, *([1] * (like.ndim - 1))).to(like.dtype)

    def q_sample(self, x_0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """A draw of ``q(x_t | x_0)`` in closed form (eq. 4): ``sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps``."""
        alpha_bar = self._at(self.alpha_bars, t, x_0)
        return alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * noise

    def simple_loss(self, x_0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """L_simple (eq. 14) for given steps and noise: the mean squared error of eps_theta's guess of ``noise``."""
        return F.mse_loss(self(self.q_sample(x_0, t, noise), t), noise)

    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        """Algorithm 1 on a batch x_0: ``t ~ Uniform({1..T})`` and ``eps ~ N(0, I)`` per example, then L_simple."""
        t = torch.randint(1, self.timesteps + 1, (len(inputs),), device=inputs.device)
        noise = torch.randn_like(inputs)
        return {"loss": self.simple_loss(inputs, t, noise)}

    # ------------------------------------------------------------------ the reverse process
    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        device = generator.device if generator is not None else self.device
        return torch.randn((n, *self.data_shape), generator=generator, device=device).to(self.device)

    @torch.no_grad()
    def _ancestral(self, n: int, keep: Iterable[int] = (), generator: torch.Generator | None = None) -> dict[int, Tensor]:
        """Algorithm 2 with the averaged eps_theta; returns x_t at the steps in ``keep`` (x_0 always)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
        keep = set(keep) | {0}
        network = self.ema.module
        was_training = network.training
        network.eval()  # no dropout while sampling
        x = self._noise(n, generator)  # x_T ~ N(0, I)
        kept = {self.timesteps: x} if self.timesteps in keep else {}
        for t in range(self.timesteps, 0, -1):
            steps = torch.full((n,), t, device=self.device, dtype=torch.long)
            epsilon = network(x, steps)  # eps_theta(x_t, t)
            alpha, alpha_bar, beta = self.alphas[t], self.alpha_bars[t], self.betas[t]
            mean = (x - (1 - alpha) / (1 - alpha_bar).sqrt() * epsilon) / alpha.sqrt()  # mu_theta(x_t, t), eq. 11
            x = mean + beta.sqrt() * self._noise(n, generator) if t > 1 else mean  # + sigma_t z, sigma_t^2 = beta_t
            if t - 1 in keep:
                kept[t - 1] = x
        network.train(was_training)
        return kept

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples x_0 by ancestral sampling (Algorithm 2): T calls of the averaged eps_theta."""
        return self._ancestral(n, (), generator)[0]

    @torch.no_grad()
    def sample_trajectory(self, n: int, times: Sequence[int] | None = None, generator: torch.Generator | None = None) -> dict[int, Tensor]:
        """The reverse process of ``n`` samples seen at ``times`` (default: T, 3T/4, T/2, T/4, T/10
        and 0), ``{t: x_t}`` with the largest t first; the same T network calls as :meth:`sample`."""
        T = self.timesteps  # noqa: N806  (the paper's T)
        times = sorted({T, (3 * T) // 4, T // 2, T // 4, T // 10, 0} if times is None else set(times), reverse=True)
        if any(not 0 <= t <= T for t in times):
            raise ValueError(f"times must lie in 0..T={T}, got {times}")
        kept = self._ancestral(n, times, generator)
        return {t: kept[t] for t in times}

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        """Refuse, in one line, data whose examples are not ``data_shape``."""
        trainer = self.attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        shape = getattr(datamodule, "data_shape", None) or getattr(datamodule, "input_shape", None)
        if shape is not None and tuple(shape) != self.data_shape:
            flag = ",".join(str(size) for size in shape)
            raise ValueError(f"the model's data_shape is {self.data_shape} but the data's examples are {tuple(shape)}: set --model.data_shape=[{flag}]")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """One update of the moving average per optimizer step (not per accumulated batch)."""
        step = self.trainer.global_step
        if step > self._ema_step:
            self.ema.update_parameters(self.network)
            self._ema_step = step

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.hparams.learning_rate)
        warmup = self.hparams.warmup_steps
        if warmup == 0:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ reporting
    def model_info(self) -> dict[str, Any]:
        """The base's info, counting eps_theta once: the moving-average copy is reported on its own."""
        info = super().model_info()
        count = sum(p.numel() for p in self.network.parameters())
        info.update(parameter_count=count, trainable_parameter_count=count, averaged_copy_parameter_count=count)
        return info

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, gradient flow, the samples, the denoising trajectory and the noise schedule."""
        from ai_scratch.generative_era.ddpm_figures import DenoisingTrajectory, NoiseSchedule
        from callbacks.figures import GradientFlow, LearningCurves
        from callbacks.samples import SampleGrid

        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            GradientFlow(every_n_epochs=every_n_epochs),
            SampleGrid(every_n_epochs=every_n_epochs),
            DenoisingTrajectory(every_n_epochs=every_n_epochs),
            NoiseSchedule(),
        ]
