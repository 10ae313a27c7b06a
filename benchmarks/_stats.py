"""Statistics shared by the benchmarks."""

from __future__ import annotations

from typing import Literal

import numpy as np


def bootstrap_interval(
    values: list[float], statistic: Literal["median", "mean"] = "median", level: float = 0.9, resamples: int = 2000
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (or mean) of ``values``; seeded, so the same
    input gives the same answer."""
    rng = np.random.default_rng(0)
    samples = rng.choice(np.asarray(values), size=(resamples, len(values)), replace=True)
    estimates = np.median(samples, axis=1) if statistic == "median" else samples.mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(estimates, tail)), float(np.quantile(estimates, 1 - tail))
