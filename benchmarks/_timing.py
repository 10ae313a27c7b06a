"""Timing shared by the speed benchmarks: wall-clock seconds per step, the device drained first."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


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


def versions() -> str:
    """Where a result was measured: date, commit, Python, torch and the machine's CPUs."""
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (f"measured {datetime.date.today().isoformat()}, commit {commit or 'unknown'}, Python {platform.python_version()}, "
            f"torch {torch.__version__}; {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()})")  # fmt: skip
