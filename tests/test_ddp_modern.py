"""Module 6 under real DDP on the CPU (two gloo processes): BitNet b1.58's ternary MLP and its
full-precision twin, the copies of both in step after training (so the latent weights, and hence the
ternary levels, agree), one wandb run whose accuracies and gap are logged once per epoch.

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


def test_bitnet_mlp_on_digits_on_two_processes(tmp_path: Path) -> None:
    rank0, rank1, _ = fit_on_two_processes(
        "bitnet/digits_width256_strength", tmp_path, "--wandb", "--trainer.max_epochs", "2", "--model.width", "32",
        "--experiment.claim", "null",
        timeout=300,
    )  # fmt: skip
    ternary = {key for key in rank0 if key.startswith("network.")}
    twin = {key for key in rank0 if key.startswith("full_precision.")}
    assert ternary and twin and rank0.keys() == rank1.keys()
    for key in ternary | twin:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)  # DDP averaged the gradients
    (run_file,) = find_runs(tmp_path / "wandb_root")  # one run for two processes
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-bitnet" and log.exit_code == 0
    assert {"train_accuracy", "train_full_precision_accuracy", "val_accuracy", "val_full_precision_accuracy", "val_accuracy_gap"} <= log.history_keys
    gaps = [row for row in log.history if "val_accuracy_gap" in row]
    assert [row["epoch"] for row in gaps] == [0, 1]  # one row per epoch, not per process
    for row in gaps:
        assert math.isclose(row["val_accuracy_gap"], row["val_full_precision_accuracy"] - row["val_accuracy"], abs_tol=1e-6)
    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert "ternary_weights" in images, images
    assert {"modern", "module-6", "bitnet", "digits_width256_strength"} <= set(log.tags)
