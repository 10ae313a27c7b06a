"""Timing shared by the speed benchmarks: wall-clock seconds per step, the device drained first."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work: CUDA and MPS run asynchronously, the CPU does not."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per call of ``step``, over ``steps`` calls."""
    synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    return (time.perf_counter() - start) / steps
