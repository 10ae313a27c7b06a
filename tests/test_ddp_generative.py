"""Module 5 under real DDP on the CPU (two gloo processes): DDPM on two moons, its copies and their
moving averages in step, one wandb run whose sample quality is logged once per epoch, with the
sample grid as an image.

Slow (each fit starts two processes): run with ``pytest -m slow``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import fit_on_two_processes
from wandb_log import find_runs, read_run

pytestmark = pytest.mark.slow


def test_ddpm_on_two_moons_on_two_processes(tmp_path: Path) -> None:
    rank0, rank1, _ = fit_on_two_processes(
        "ddpm/moons_strength", tmp_path, "--wandb", "--trainer.max_epochs", "2", "--model.timesteps", "20",
        "--model.quality_every_n_epochs", "1", "--model.quality_samples", "200",
        "--data.train_size", "1024", "--data.val_size", "200", "--data.test_size", "200", "--experiment.claim", "null",
        timeout=300,
    )  # fmt: skip
    networks = {key for key in rank0 if key.startswith("network.")}
    averages = {key for key in rank0 if key.startswith("ema.module.")}
    assert networks and averages and rank0.keys() == rank1.keys()
    for key in networks | averages:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)  # DDP averaged the gradients
    (run_file,) = find_runs(tmp_path / "wandb_root")  # one run for two processes
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-ddpm" and log.exit_code == 0
    assert {"train_loss", "val_loss", "val_mmd"} <= log.history_keys
    quality = [row for row in log.history if "val_mmd" in row]
    assert [row["epoch"] for row in quality] == [0, 1]  # one row per epoch, not per process
    assert all(math.isfinite(row["val_mmd"]) for row in quality)
    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert {"sample_grid", "denoising_trajectory"} <= images, images
    assert "generative" in log.tags and "module-5" in log.tags
