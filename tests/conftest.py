"""Shared fixtures: real wandb in offline mode in a temp dir, and ways to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
sys.path.insert(0, str(Path(__file__).parent))  # tests/wandb_log.py


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``, on by default in pyproject.toml) the workers share the cores:
    each gets one torch thread, and so do the CLI processes it starts, so that threads do not wait
    on each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def quiet_trainer(**kwargs: object) -> Any:
    """A real Trainer on the CPU for tiny fits: no logger, checkpoints, progress bar or model summary
    unless asked for, a log row at every step."""
    import lightning as L

    settings = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    accelerator="cpu", log_every_n_steps=1)  # fmt: skip
    return L.Trainer(**{**settings, **kwargs})


def config(name: str) -> str:
    """Absolute path of ``configs/<name>.yaml``."""
    path = CONFIGS / f"{name}.yaml"
    assert path.is_file(), path
    return str(path)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory: runs/ and wandb/ land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def wandb_offline(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Real wandb, offline, everything it writes under the temp dir; returns WANDB_DIR."""
    wandb_dir = workdir / "wandb_root"
    wandb_dir.mkdir()
    for variable, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(wandb_dir),
        "WANDB_DATA_DIR": str(workdir / "wandb_data"),
        "WANDB_CACHE_DIR": str(workdir / "wandb_cache"),
        "WANDB_CONFIG_DIR": str(workdir / "wandb_config"),
        "WANDB_SILENT": "true",
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # wandb reads the environment into process-wide settings once: free them, so that this test's
    # offline mode and folders apply and not those of an earlier test in the same worker
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
    yield wandb_dir


def subprocess_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: offline wandb under ``workdir``, the repo importable."""
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_DIR=str(workdir / "wandb_root"),
        WANDB_DATA_DIR=str(workdir / "wandb_data"),
        WANDB_CACHE_DIR=str(workdir / "wandb_cache"),
        WANDB_CONFIG_DIR=str(workdir / "wandb_config"),
        WANDB_SILENT="true",
        # the project, and tests/ for the probe callbacks (probes.py)
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]),
    )
    env.pop("WANDB_API_KEY", None)
    # A process that starts wandb's service names it in WANDB_SERVICE for its children to share.
    # A CLI subprocess is a user's process of its own: with the worker's service, a fit killed
    # partway would leave its run open there, and its resumed fit be told "run ID is in use".
    env.pop("WANDB_SERVICE", None)
    env.update(extra)
    (workdir / "wandb_root").mkdir(exist_ok=True)
    return env


def run_cli(args: list[str], workdir: Path, timeout: float = 150, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ai_scratch <args>`` in ``workdir`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ai_scratch", *args],
        cwd=workdir,
        env=subprocess_env(workdir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: Two CPU processes under DDP, without a progress bar.
DDP_ON_TWO_CPU_PROCESSES = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def fit_on_two_processes(name: str, workdir: Path, *extra: str, timeout: float = 150) -> tuple[dict, dict, str]:
    """``ai-scratch fit`` of ``configs/<name>.yaml`` under DDP on two CPU processes, each of which
    saves its own copy of the weights at the end (probes.SaveRankWeights): (rank 0's, rank 1's, stdout)."""
    import torch

    weights = workdir / "weights"
    args = ["fit", "--config", config(name), *DDP_ON_TWO_CPU_PROCESSES, "--trainer.callbacks+=probes.SaveRankWeights",
            f"--trainer.callbacks.directory={weights}", *extra]  # fmt: skip
    result = run_cli(args, workdir, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(weights / f"rank{r}.pt") for r in (0, 1))
    return rank0, rank1, result.stdout
