"""Real DDP on the CPU, two processes (gloo): one wandb run, metrics present, copies in step.

Slow (``pytest -m slow``): two fresh processes each spend about 10 s importing torch and Lightning
on these machines, and the default suite has to stay under 5 minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import fit_on_two_processes
from wandb_log import find_runs, read_run


@pytest.mark.slow
def test_perceptron_ddp_two_processes_one_wandb_run(tmp_path: Path) -> None:
    rank0, rank1, stdout = fit_on_two_processes("perceptron/xor_weakness", tmp_path, "--wandb", "--trainer.max_epochs", "10")
    assert stdout.count("[claim] xor_weakness") == 1  # said once, by rank zero

    (run_file,) = find_runs(tmp_path / "wandb_root")  # exactly one run for two processes
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-perceptron" and log.exit_code == 0
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"} <= log.history_keys
    assert len({row["epoch"] for row in log.history if "val_accuracy" in row}) == 10
    assert log.summary["claim/reproduced"] is True

    # iterative parameter mixing: both processes end with the same weights, and they moved
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert rank0["learned.weight"].abs().sum() > 0
