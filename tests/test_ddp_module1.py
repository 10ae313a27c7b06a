"""The Module 1 NumPy rules under real DDP on the CPU (two gloo processes).

Slow (each fit starts two processes): run with ``pytest -m slow``, which also runs the Perceptron's
DDP test (tests/test_ddp.py) for the adapter's parameter mixing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ai_scratch.foundations.hopfield import HopfieldLearner
from conftest import fit_on_two_processes as fit_under_ddp
from datamodules import PatternsDataModule

pytestmark = pytest.mark.slow


def fit_on_two_processes(name: str, workdir: Path, *extra: str) -> tuple[dict, dict, str]:
    return fit_under_ddp(name, workdir, "--figures", "false", *extra)


def test_hopfield_sums_the_hebbian_increments_of_both_processes(tmp_path: Path) -> None:
    rank0, rank1, stdout = fit_on_two_processes("hopfield/recall_strength", tmp_path)
    assert torch.equal(rank0["learned.weight"], rank1["learned.weight"])
    # the W of all the patterns, as one process storing them all would hold it
    data = PatternsDataModule(n_units=100, load=0.05, flip_fraction=0.1, cues_per_pattern=10)
    data.setup("fit")
    patterns, _ = data.arrays("train")
    learner = HopfieldLearner(100)
    learner.train_batch(patterns)
    np.testing.assert_allclose(rank0["learned.weight"].numpy(), learner.weight, atol=1e-6)
    assert stdout.count("[claim] recall_strength") == 1 and "REPRODUCED" in stdout


def test_adaline_and_mlp_copies_stay_in_step(tmp_path: Path) -> None:
    for name in ("adaline/least_squares_strength", "mlp/xor_breakthrough"):
        workdir = tmp_path / name.replace("/", "_")
        workdir.mkdir()
        rank0, rank1, stdout = fit_on_two_processes(name, workdir, "--trainer.max_epochs", "30")
        assert rank0.keys() == rank1.keys()
        for key in rank0:
            if key.startswith("learned."):
                assert torch.equal(rank0[key], rank1[key]), (name, key)
        assert "[claim]" in stdout
