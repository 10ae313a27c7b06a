"""ai_scratch.wandb_startup: a wandb run starts without wandb's Launch imports and without the
0.2 s sleeps of its port-file poll, and records what it recorded before. Each case runs a fresh
interpreter: the changes are made once per process, and the suite's own process stays as wandb
made it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

from ai_scratch import wandb_startup

# One offline run, then (optionally) inputs staged for W&B Launch and a second run, in one process.
# _publish_job_input is wandb's function that applies one staged input to a run; the offline
# transaction log does not record job inputs, so a recorder around it is how the test sees them.
PROBE = r"""
import json, sys
from ai_scratch import wandb_startup
applied = wandb_startup.install() if sys.argv[1] == "install" else []
again = wandb_startup.install() if applied else []
import wandb
from wandb.sdk.wandb_run import Run
report = {"applied": applied, "again": again,
          "wrapped_once": getattr(Run._detect_and_apply_job_inputs, "__wrapped__", None) is not None
                          and not hasattr(Run._detect_and_apply_job_inputs.__wrapped__, "__wrapped__")}
run = wandb.init(project="startup", config={"lr": 0.1})
run.log({"loss": 1.0})
run.finish()
report["launch_loaded_by_init"] = "wandb.sdk.launch" in sys.modules
if sys.argv[2] == "stage":
    from wandb.sdk.launch import manage_wandb_config
    from wandb.sdk.launch.inputs import internal
    published = []
    original = internal._publish_job_input
    internal._publish_job_input = lambda staged, run: (published.append(staged.include), original(staged, run))
    manage_wandb_config(include=["lr"])  # no run yet: staged until wandb.init
    run = wandb.init(project="startup", config={"lr": 0.1})
    run.finish()
    report["published"] = published
print(json.dumps(report))
"""


def probe(workdir: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=workdir, env=subprocess_env(workdir),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_run_starts_without_the_launch_imports_and_still_applies_staged_launch_inputs(workdir: Path) -> None:
    report = probe(workdir, "install", "stage")
    # both apply to the wandb this project installs; if a release drops one, this says which
    assert report["applied"] == ["launch inputs", "port file poll"]
    assert report["again"] == report["applied"] and report["wrapped_once"]  # once per process
    assert report["launch_loaded_by_init"] is False
    # inputs staged for Launch before wandb.init are applied to the run, as wandb itself does
    assert report["published"] == [["lr"]]
    runs = sorted((workdir / "wandb_root" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2 and all(path.stat().st_size > 0 for path in runs)


def test_without_it_wandb_init_imports_launch(workdir: Path) -> None:
    """The control: what install() avoids does happen in this wandb without it (if this fails, a
    wandb release no longer imports Launch in wandb.init, and the wrapper can go)."""
    report = probe(workdir, "plain", "no-stage")
    assert report["applied"] == [] and report["launch_loaded_by_init"] is True


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK"])
def test_a_process_other_than_rank_zero_is_left_alone(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    assert wandb_startup.first_process() is False
    assert wandb_startup.install() == []

