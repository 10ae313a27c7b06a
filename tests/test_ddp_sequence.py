"""Module 4 under real DDP on the CPU (two gloo processes): the LSTM on the adding problem, its copies
in step, one wandb run whose MSE is the global one, once per epoch.

Slow (each fit starts two processes): run with ``pytest -m slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import fit_on_two_processes
from wandb_log import find_runs, read_run

pytestmark = pytest.mark.slow


def test_lstm_on_the_adding_problem_on_two_processes(tmp_path: Path) -> None:
    rank0, rank1, stdout = fit_on_two_processes(
        "lstm/adding_problem_strength", tmp_path, "--wandb", "--trainer.max_epochs", "2",
        "--data.train_size", "512", "--data.val_size", "128", "--data.test_size", "128", "--experiment.claim", "null",
        timeout=300,
    )  # fmt: skip
    names = {key for key in rank0 if key.startswith("recurrent.")}
    assert names and rank0.keys() == rank1.keys()
    for key in names | {"head.weight", "head.bias"}:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)  # DDP averaged the gradients
    (run_file,) = find_runs(tmp_path / "wandb_root")  # one run for two processes
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-lstm" and log.exit_code == 0
    assert {"train_mse", "train_loss", "val_mse", "val_loss"} <= log.history_keys
    assert [row["epoch"] for row in log.history if "val_mse" in row] == [0, 1]  # one row per epoch, not per process
    assert "sequence" in log.tags and "module-4" in log.tags
