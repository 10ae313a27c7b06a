"""Kill a fit partway, resume it with --ckpt_path: the same final weights as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from ai_scratch.cli import main
from conftest import config, subprocess_env

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--figures", "false"]


def kill_partway(args: list[str], workdir: Path, checkpoint: Path, min_epoch: int, timeout: float = 180) -> int:
    """Start the fit in a subprocess and SIGKILL it once ``checkpoint`` holds epoch >= min_epoch."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ai_scratch", *args], cwd=workdir, env=subprocess_env(workdir),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the fit ended before it could be killed: {process.stderr.read()[-2000:]}"
            if checkpoint.is_file():
                try:
                    epoch = torch.load(checkpoint, weights_only=False)["epoch"]
                except (RuntimeError, EOFError, OSError, KeyError):
                    epoch = -1  # caught mid-write: look again
                if epoch >= min_epoch:
                    process.kill()
                    process.wait()
                    return epoch
            time.sleep(0.05)
        raise AssertionError("no checkpoint in time")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_same_weights(resumed, uninterrupted) -> None:
    final, reference = resumed.model.state_dict(), uninterrupted.model.state_dict()
    assert final.keys() == reference.keys()
    for key in final:
        assert torch.equal(final[key], reference[key]), key


def test_perceptron_resumes_exactly(workdir: Path) -> None:
    args = ["fit", "--config", config("perceptron/xor_weakness"), "--trainer.max_epochs", "30", *QUIET]
    killed_at = kill_partway(
        [*args, "--trainer.callbacks+=probes.SlowEpochs", "--trainer.callbacks.seconds=0.15"],
        workdir, workdir / "runs/perceptron/xor_weakness/version_0/checkpoints/last.ckpt", min_epoch=8,
    )  # fmt: skip
    assert 8 <= killed_at < 29
    resumed = main([*args, "--ckpt_path", "runs/perceptron/xor_weakness/version_0/checkpoints/last.ckpt"])
    uninterrupted = main(args)
    assert resumed.trainer.current_epoch == uninterrupted.trainer.current_epoch == 30
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 30
    assert_same_weights(resumed, uninterrupted)
    # the learner itself, not only its mirror
    assert (resumed.model.learner.weight == uninterrupted.model.learner.weight).all()


def test_lenet5_resumes_exactly(workdir: Path) -> None:
    args = [
        "fit", "--config", config("lenet5/mnist"), "--trainer.max_epochs", "5", "--experiment.claim", "null",
        "--data.init_args.train_size", "320", "--data.init_args.batch_size", "64", *QUIET,
    ]  # fmt: skip
    killed_at = kill_partway(
        [*args, "--trainer.callbacks+=probes.SlowEpochs", "--trainer.callbacks.seconds=0.6"],
        workdir, workdir / "runs/lenet5/mnist/version_0/checkpoints/last.ckpt", min_epoch=1,
    )  # fmt: skip
    assert 1 <= killed_at < 4
    resumed = main([*args, "--ckpt_path", "runs/lenet5/mnist/version_0/checkpoints/last.ckpt"])
    uninterrupted = main(args)
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 5 * 5
    assert_same_weights(resumed, uninterrupted)
