"""Kill a fit partway, resume it with --ckpt_path: the same final weights as an uninterrupted run,
recorded in the same local folder and the same wandb run."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ai_scratch.cli import main
from conftest import config, run_cli, subprocess_env
from wandb_log import find_runs, read_run

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--figures", "false"]


class KillableFit:
    """A fit in a subprocess that waits at its start (probes.StartWhenTold) until told to train.

    Both fits of this file start when the first test asks for them: the second one's imports
    (about 10 s of a fresh process here) then overlap the first test instead of following it.
    """

    def __init__(self, args: list[str], workdir: Path, checkpoint: str, **env: str) -> None:
        self.workdir, self.checkpoint, self.go = workdir, workdir / checkpoint, workdir / "go"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ai_scratch", *args,
             "--trainer.callbacks+=probes.StartWhenTold", f"--trainer.callbacks.go={self.go}"],
            cwd=workdir, env=subprocess_env(workdir, **env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
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
TRACKED = [*PERCEPTRON, "--wandb", "--wandb_mode", "offline", "--watch", "none"]
PERCEPTRON_CHECKPOINT = "runs/perceptron/xor_weakness/version_0/checkpoints/last.ckpt"
LENET5 = [
    "fit", "--config", config("lenet5/mnist"), "--trainer.max_epochs", "5", "--experiment.claim", "null",
    "--data.init_args.train_size", "320", "--data.init_args.batch_size", "64", *QUIET,
]  # fmt: skip


@pytest.fixture(scope="module")
def killable_fits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KillableFit]]:
    slow = {"perceptron": "0.15", "lenet5": "0.6", "tracked": "0.15"}  # seconds of sleep per epoch: time to kill partway
    fits = {}
    for name, args, checkpoint in (
        ("perceptron", PERCEPTRON, PERCEPTRON_CHECKPOINT),
        ("lenet5", LENET5, "runs/lenet5/mnist/version_0/checkpoints/last.ckpt"),
        ("tracked", TRACKED, PERCEPTRON_CHECKPOINT),
    ):
        workdir = tmp_path_factory.mktemp(name)
        # wandb writes its transaction log to disk every 15 s by default: a fit killed sooner would
        # leave an empty log, and nothing for the resumed fit to go on after
        fits[name] = KillableFit([*args, "--trainer.callbacks+=probes.SlowEpochs", f"--trainer.callbacks.seconds={slow[name]}"],
                                 workdir, checkpoint, WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL="0.2")  # fmt: skip
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
    resumed = main([*PERCEPTRON, "--ckpt_path", PERCEPTRON_CHECKPOINT])
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


def test_a_resumed_fit_continues_its_records(killable_fits: dict[str, KillableFit]) -> None:
    """One training, one record: the resumed fit writes on into the killed fit's folder and wandb
    run, every epoch once in metrics.csv, the wandb history's steps going on after the last one
    the killed process wrote."""
    fit = killable_fits["tracked"]
    killed_at = fit.kill_partway(min_epoch=8)
    resumed = run_cli([*TRACKED, "--ckpt_path", PERCEPTRON_CHECKPOINT], fit.workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert [p.name for p in (fit.workdir / "runs/perceptron/xor_weakness").iterdir()] == ["version_0"]
    with (fit.workdir / "runs/perceptron/xor_weakness/version_0/metrics.csv").open() as file:
        validated = [int(row["epoch"]) for row in csv.DictReader(file) if row.get("val_accuracy")]
    assert validated == list(range(30))  # each epoch once: none lost, none twice

    logs = find_runs(fit.workdir / "wandb_root")
    assert len(logs) == 2  # one log per process
    killed, continued = (read_run(path) for path in logs)
    assert killed.run_id == continued.run_id and continued.exit_code == 0
    steps = [row["_step"] for run in (killed, continued) for row in run.history]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), "history steps must strictly increase"
    assert continued.history[0]["trainer/resumed_from_epoch"] == killed_at
    assert continued.summary["claim/reproduced"] is True


def test_wandb_resume_never_starts_a_new_run(killable_fits: dict[str, KillableFit]) -> None:
    fit = killable_fits["tracked"]
    if not (fit.workdir / PERCEPTRON_CHECKPOINT).is_file():
        fit.kill_partway(min_epoch=3)
    before = {read_run(path).run_id for path in find_runs(fit.workdir / "wandb_root")}
    again = run_cli([*TRACKED, "--trainer.max_epochs", "31", "--ckpt_path", PERCEPTRON_CHECKPOINT, "--wandb_resume", "never"], fit.workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {read_run(path).run_id for path in find_runs(fit.workdir / "wandb_root")}
    assert len(after - before) == 1


def test_wandb_resume_must_refuses_a_checkpoint_of_an_untracked_fit(wandb_offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["fit", "--config", config("perceptron/xor_weakness"), "--trainer.max_epochs", "2", *QUIET])
    with pytest.raises(SystemExit) as exit_info:
        main([*PERCEPTRON, "--ckpt_path", PERCEPTRON_CHECKPOINT, "--wandb", "--wandb_resume", "must"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "ai-scratch: error: --wandb_resume must: --ckpt_path names no wandb run to continue (give a checkpoint of a tracked fit)"
    assert not find_runs(wandb_offline)  # refused before a run was opened
