"""Timing shared by the speed benchmarks: wall-clock seconds per step, the device drained first;
paired rounds of several sides; models built from experiment configs."""

from __future__ import annotations

import datetime
import importlib
import os
import statistics
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from _stats import bootstrap_interval

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


def paired_rounds(calls: dict[str, tuple[Callable[[], None], int]], reference: str, rounds: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Time the sides ``{name: (call, items it produces)}`` after a warm-up call of each, in
    ``rounds`` alternating rounds (each in the reverse order of the last). Per side: median seconds,
    items per second, and the median paired ratio over ``reference``'s time in the same round, with
    its bootstrap 90% interval."""
    for call, _ in calls.values():
        timed(call, 1, device)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        for name in order:
            seconds[name].append(timed(calls[name][0], 1, device))
        order.reverse()
    result = {}
    for name, (_, produced) in calls.items():
        paired = [s / r for s, r in zip(seconds[name], seconds[reference], strict=True)]
        low, high = bootstrap_interval(paired)
        median = statistics.median(seconds[name])
        result[name] = {"seconds": median, "per_second": produced / median if produced else 0.0,
                        "ratio": statistics.median(paired), "low": low, "high": high}  # fmt: skip
    return result


def instantiate(section: dict):
    """``{class_path, init_args}`` of a config, built (the arguments are plain numbers and lists)."""
    module_name, _, class_name = section["class_path"].rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**section.get("init_args", {}))


def from_config_sections(name: str) -> dict:
    """The YAML of the experiment ``name`` (``yolo/shapes_strength``) as a dict."""
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())


def single_optimizer(model) -> torch.optim.Optimizer:
    """The optimiser of a module with one, whatever form ``configure_optimizers`` returns it in."""
    configured = model.configure_optimizers()
    if isinstance(configured, (list, tuple)):
        configured = configured[0]
    return configured["optimizer"] if isinstance(configured, dict) else configured
