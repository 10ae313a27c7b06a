"""The Module 2 CNNs under real DDP on the CPU (two gloo processes): one wandb run, the copies of the
network in step, GoogLeNet's auxiliary losses and ResNet's block gradient norms in the record.

Slow (each fit starts two processes): run with ``pytest -m slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import fit_on_two_processes as fit_under_ddp
from wandb_log import find_runs, read_run

pytestmark = pytest.mark.slow


def fit_on_two_processes(name: str, workdir: Path, *extra: str) -> tuple[dict, dict, str]:
    return fit_under_ddp(name, workdir, "--wandb", *extra, timeout=300)


def assert_in_step(rank0: dict, rank1: dict, parameter_names: set[str]) -> None:
    """DDP averages the gradients, so every parameter is the same on both processes, and moved."""
    assert parameter_names and parameter_names <= rank0.keys() == rank1.keys()
    for key in parameter_names:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)


def test_googlenet_with_auxiliary_heads_on_two_processes(tmp_path: Path) -> None:
    rank0, rank1, stdout = fit_on_two_processes(
        "googlenet/fewer_parameters_strength", tmp_path,
        "--model.aux_logits", "true", "--trainer.max_epochs", "2", "--data.train_size", "512", "--experiment.claim", "null",
    )  # fmt: skip
    assert_in_step(rank0, rank1, {k for k in rank0 if k.endswith(".weight") and ("conv" in k or "fc" in k)})
    assert any(k.startswith("aux1.") for k in rank0)
    (run_file,) = find_runs(tmp_path / "wandb_root")  # one run for two processes
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-googlenet" and log.exit_code == 0
    for key in ("train_loss", "train_main_loss", "train_aux1_loss", "train_aux2_loss", "val_accuracy"):
        assert key in log.history_keys, key
    epochs = [row["epoch"] for row in log.history if "val_accuracy" in row]
    assert epochs == [0, 1]  # one row per epoch, not one per process
    last = next(row for row in reversed(log.history) if "train_loss" in row)
    assert last["train_loss"] > last["train_main_loss"]  # the auxiliary losses are added


def test_resnet_with_batch_norm_on_two_processes(tmp_path: Path) -> None:
    """Each process normalises with its own half-batch (``--trainer.sync_batchnorm`` needs GPUs:
    PyTorch's SyncBatchNorm refuses CPU modules), while DDP keeps the weights the same."""
    rank0, rank1, stdout = fit_on_two_processes(
        "resnet/degradation_plain20", tmp_path, "--trainer.max_epochs", "2", "--model.grad_norm_every_n_steps", "1"
    )
    assert_in_step(rank0, rank1, {k for k in rank0 if k.endswith("weight")})
    (run_file,) = find_runs(tmp_path / "wandb_root")
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-resnet" and log.exit_code == 0
    assert {f"grad_norm/block_{i}" for i in range(1, 10)} <= log.history_keys
    assert stdout.count("[claim] degradation_plain20") == 1


def test_accelerator_check_script_on_two_cpu_processes() -> None:
    """The script meant for a GPU machine, run here on the CPU: DDP, bf16-mixed and ChannelsLast
    through `ai-scratch fit`, one config, exit status 0 and the claim line reported."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "accelerator_check.py"
    result = subprocess.run(
        [sys.executable, str(script), "--accelerator", "cpu", "--devices", "2", "--configs", "resnet/degradation_plain20"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "cpu x 2, strategy ddp, precision bf16-mixed, channels_last" in result.stdout
    assert "ok  resnet/degradation_plain20" in result.stdout and "[claim] degradation_plain20" in result.stdout
    assert result.stdout.rstrip().endswith("all passed")
