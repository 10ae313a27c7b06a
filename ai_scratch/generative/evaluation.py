"""How good are the samples? Measures that need no download.

* :func:`mmd`: the maximum mean discrepancy (Gretton et al., 2012) between samples and held-out
  data, with a sum of Gaussian kernels of several widths: 0 when the two distributions are equal.
  For points in the plane.
* :func:`sample_quality`: what :class:`~ai_scratch.generative.base.GenerativeModel` logs after
  validation and test: ``mmd`` for vectors.

Example::

    >>> real, fake = torch.randn(500, 2), torch.randn(500, 2) + 1.0
    >>> float(mmd(real, real[torch.randperm(500)])) < 1e-6 < float(mmd(real, fake))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Kernel widths (standard deviations) of the MMD's Gaussian kernels, for data of unit scale.
MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def mmd(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> Tensor:
    """The unbiased estimate of the squared MMD between samples ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)`` with ``k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))``
    over the widths ``s``; the diagonal terms are left out of the first two means (the unbiased
    U-statistic), so the estimate can fall slightly below 0 when the distributions are equal.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd needs two batches of vectors of one size, at least 2 each, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        distances = torch.cdist(a, b).square()
        return sum(torch.exp(-distances / (2 * s * s)) for s in bandwidths)

    n, m = len(x), len(y)
    within_x = (kernel(x, x).sum() - n * len(bandwidths)) / (n * (n - 1))
    within_y = (kernel(y, y).sum() - m * len(bandwidths)) / (m * (m - 1))
    return (within_x + within_y - 2 * kernel(x, y).mean()).float()


def sample_quality(samples: Tensor, held_out: Tensor) -> dict[str, Tensor]:
    """The measures of sample quality that fit the data's shape: ``mmd`` for vectors ``(N, d)``."""
    if samples.shape[1:] != held_out.shape[1:]:
        raise ValueError(f"samples of shape {tuple(samples.shape[1:])} cannot be compared with data of shape {tuple(held_out.shape[1:])}")
    if held_out.ndim == 2:
        return {"mmd": mmd(samples, held_out)}
    return {}
