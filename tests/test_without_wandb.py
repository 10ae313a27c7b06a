"""With wandb not importable, `--wandb` fits still succeed: PNGs and checkpoints on disk, one warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import config, subprocess_env

# sys.modules["wandb"] = None makes `import wandb` raise ImportError, as on a machine without it.
SCRIPT = """
import sys
sys.modules["wandb"] = None
from ai_scratch.cli import main
quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
main(["fit", "--config", {xor!r}, "--wandb", *quiet])
main(["fit", "--config", {lenet!r}, "--wandb", *quiet, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5",
      "--trainer.limit_val_batches", "2", "--data.init_args.distortions", "false", "--experiment.claim", "null"])
print("BOTH FITS DONE")
"""


@pytest.mark.slow  # a fresh environment in a subprocess: CI runs it with the slow tests
def test_fits_without_wandb_installed(tmp_path: Path) -> None:
    script = SCRIPT.format(xor=config("perceptron/xor_weakness"), lenet=config("lenet5/mnist"))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BOTH FITS DONE" in result.stdout
    assert "[claim] xor_weakness" in result.stdout
    assert result.stderr.count("wandb is not installed") == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    for model, experiment, figures in (
        ("perceptron", "xor_weakness", {"learning_curves", "confusion_matrix", "decision_boundary"}),
        ("lenet5", "mnist", {"learning_curves", "confusion_matrix", "gradient_flow", "conv_filters", "feature_maps"}),
    ):
        run_dir = tmp_path / "runs" / model / experiment / "version_0"
        assert figures <= {p.stem for p in (run_dir / "figures").glob("*.png")}
        assert list((run_dir / "checkpoints").glob("*.ckpt"))
        assert (run_dir / "metrics.csv").is_file()
    assert not (tmp_path / "wandb_root" / "wandb").exists()
