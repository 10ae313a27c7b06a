"""Kill a fit partway, resume it with --ckpt_path: the same final weights as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ai_scratch.cli import main
from conftest import config, subprocess_env

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--figures", "false"]


class KillableFit:
    """A fit in a subprocess that waits at its start (probes.StartWhenTold) until told to train.

    Both fits of this file start when the first test asks for them: the second one's imports
    (about 10 s of a fresh process here) then overlap the first test instead of following it.
    """

    def __init__(self, args: list[str], workdir: Path, checkpoint: str) -> None:
        self.workdir, self.checkpoint, self.go = workdir, workdir / checkpoint, workdir / "go"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ai_scratch", *args,
             "--trainer.callbacks+=probes.StartWhenTold", f"--trainer.callbacks.go={self.go}"],
            cwd=workdir, env=subprocess_env(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def kill_partway(self, min_epoch: int, timeout: float = 180) -> int:
        """Let the fit train, and SIGKILL it once its checkpoint holds epoch >= min_epoch."""
        self.go.touch()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"the fit ended before it could be killed: {self.process.stderr.read()[-2000:]}"
                if self.checkpoint.is_file():
                    try:
                        epoch = torch.load(self.checkpoint, weights_only=False)["epoch"]
                    except (RuntimeError, EOFError, OSError, KeyError):
                        epoch = -1  # caught mid-write: look again
                    if epoch >= min_epoch:
                        return epoch
                time.sleep(0.05)
            raise AssertionError("no checkpoint in time")
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stderr.close()


PERCEPTRON = ["fit", "--config", config("perceptron/xor_weakness"), "--trainer.max_epochs", "30", *QUIET]
LENET5 = [
    "fit", "--config", config("lenet5/mnist"), "--trainer.max_epochs", "5", "--experiment.claim", "null",
    "--data.init_args.train_size", "320", "--data.init_args.batch_size", "64", *QUIET,
]  # fmt: skip


@pytest.fixture(scope="module")
def killable_fits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KillableFit]]:
    slow = {"perceptron": "0.15", "lenet5": "0.6"}  # seconds of sleep per epoch: time to kill partway
    fits = {}
    for name, args, checkpoint in (
        ("perceptron", PERCEPTRON, "runs/perceptron/xor_weakness/version_0/checkpoints/last.ckpt"),
        ("lenet5", LENET5, "runs/lenet5/mnist/version_0/checkpoints/last.ckpt"),
    ):
        workdir = tmp_path_factory.mktemp(name)
        fits[name] = KillableFit([*args, "--trainer.callbacks+=probes.SlowEpochs", f"--trainer.callbacks.seconds={slow[name]}"],
                                 workdir, checkpoint)  # fmt: skip
    yield fits
    for fit in fits.values():
        fit.stop()


def assert_same_weights(resumed, uninterrupted) -> None:
    final, reference = resumed.model.state_dict(), uninterrupted.model.state_dict()
    assert final.keys() == reference.keys()
    for key in final:
        assert torch.equal(final[key], reference[key]), key


def test_perceptron_resumes_exactly(killable_fits: dict[str, KillableFit], monkeypatch: pytest.MonkeyPatch) -> None:
    fit = killable_fits["perceptron"]
    monkeypatch.chdir(fit.workdir)
    killed_at = fit.kill_partway(min_epoch=8)
    assert 8 <= killed_at < 29
    resumed = main([*PERCEPTRON, "--ckpt_path", "runs/perceptron/xor_weakness/version_0/checkpoints/last.ckpt"])
    uninterrupted = main(PERCEPTRON)
    assert resumed.trainer.current_epoch == uninterrupted.trainer.current_epoch == 30
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 30
    assert_same_weights(resumed, uninterrupted)
    # the learner itself, not only its mirror
    assert (resumed.model.learner.weight == uninterrupted.model.learner.weight).all()


def test_lenet5_resumes_exactly(killable_fits: dict[str, KillableFit], monkeypatch: pytest.MonkeyPatch) -> None:
    fit = killable_fits["lenet5"]
    monkeypatch.chdir(fit.workdir)
    killed_at = fit.kill_partway(min_epoch=1)
    assert 1 <= killed_at < 4
    resumed = main([*LENET5, "--ckpt_path", "runs/lenet5/mnist/version_0/checkpoints/last.ckpt"])
    uninterrupted = main(LENET5)
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 5 * 5
    assert_same_weights(resumed, uninterrupted)
