"""Measuring tools shared by the CNN architecture tests: parameters, multiply-adds, one thread."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import pytest
import torch
from torch import Tensor, nn


def quiet_trainer(**kwargs: object) -> L.Trainer:
    """A real Trainer on the CPU for tiny fits: no logger, checkpoints, progress bar or summary."""
    settings = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    return L.Trainer(**{**settings, **kwargs})


def count(module: nn.Module) -> int:
    """Number of parameters (works on the meta device: nothing is allocated)."""
    return sum(p.numel() for p in module.parameters())


def multiply_adds(model: nn.Module, image: Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers for one image (the papers' "ops", "FLOPs")."""
    total = 0

    def hook(module: nn.Module, _inputs: object, output: Tensor) -> None:
        nonlocal total
        fan_in = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        total += output[0].numel() * fan_in

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return total


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small convolutions run fastest on one thread; on a shared 2-core machine two threads that
    wait for each other made these files two to three times slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
