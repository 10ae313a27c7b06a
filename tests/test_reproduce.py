"""``ai-scratch reproduce``: which experiments a target names, the table, the report, the exit status.

Real fits at smoke sizes (``--quick``) in this process, real wandb offline read back from its
transaction log; the whole of ``--quick --all`` is a slow test.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import yaml
from lightning.pytorch.callbacks import Callback

from ai_scratch import reproduce
from ai_scratch.analysis import log_analysis
from ai_scratch.cli import main as ai_scratch
from ai_scratch.registry import experiments, models
from conftest import config
from wandb_log import find_runs, read_run

XOR = "perceptron/xor_weakness"
REPORT_FIELDS = {"experiment", "model", "kind", "claim", "status", "observed", "seconds", "log_dir", "log_file", "reason"}


def report_of(workdir: Path, output: str = "runs/reproduce") -> dict[str, Any]:
    return json.loads((workdir / output / "report.json").read_text())


def own_config(directory: Path, name: str, **changes: Any) -> str:
    """A copy of perceptron/xor_weakness under ``directory/<name>.yaml`` with ``changes`` to its
    ``experiment``, ``model`` and ``trainer`` sections (a change of ``None`` removes the key)."""
    data = yaml.safe_load(Path(config(XOR)).read_text())
    data["experiment"]["name"] = name
    for section, values in changes.items():
        target = data[section]["init_args"] if section == "model" else data[section]
        for key, value in values.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


# ---------------------------------------------------------------------- targets
def test_targets_name_models_modules_experiments_and_files(tmp_path: Path) -> None:
    every = experiments()
    names = lambda entries: [entry["name"] for entry in entries]  # noqa: E731
    assert names(reproduce.select([], everything=True)) == names(every)
    assert names(reproduce.select(["hopfield"])) == [e["name"] for e in every if e["name"].startswith("hopfield/")]
    module_1 = {info.name for info in models() if info.module == 1}
    assert {name.split("/")[0] for name in names(reproduce.select(["module-1"]))} == module_1
    assert names(reproduce.select(["module-1"])) == [e["name"] for e in every if e["name"].split("/")[0] in module_1]
    # an experiment by name, as a config path, and again inside its model: each once, in the order given
    assert names(reproduce.select([XOR, "configs/perceptron/xor_weakness.yaml", "perceptron"]))[0] == XOR
    assert len(reproduce.select([XOR, "perceptron"])) == len(reproduce.select(["perceptron"]))
    own = own_config(tmp_path, "mine", experiment={"claim": {"metric": "val_accuracy", "comparison": ">=", "value": 0.9}})
    assert reproduce.select([own]) == [{"name": own, "path": str(Path(own).resolve()), "kind": "weakness", "claim": "val_accuracy >= 0.9"}]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nosuchmodel"], "unknown target 'nosuchmodel'"),
        (["module-9"], "module-9 has no experiments"),
        (["perceptron/no_such_experiment"], "unknown target 'perceptron/no_such_experiment'"),
        ([XOR, "--wandb", "--wandb_mode", "sometimes"], "unknown wandb mode 'sometimes'"),
        ([], "give what to reproduce"),
        ([XOR, "--figures", "maybe"], "--figures"),
    ],
)
def test_bad_input_is_one_line_before_anything_trains(workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ai_scratch(["reproduce", *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ai-scratch: error: ") and expected in lines[0], lines
    assert captured.out == ""
    assert not (workdir / "runs").exists()  # nothing trained, no report


def test_an_unknown_target_lists_what_exists(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        reproduce.main(["nosuchmodel"])
    line = capsys.readouterr().err
    for info in models():
        assert info.name in line
    assert "module-1" in line and "ai-scratch list" in line


# ---------------------------------------------------------------------- the report
def test_quick_run_prints_the_table_and_writes_the_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = reproduce.main([XOR, "hopfield/recall_strength", "--quick"])
    assert status == 0
    out = capsys.readouterr().out
    header, *lines = [line for line in out.splitlines() if not line.startswith("[")]
    assert header.split() == ["experiment", "kind", "claim", "observed", "result", "seconds"]
    assert [line.split()[0] for line in lines] == [XOR, "hopfield/recall_strength"]
    assert "Quick mode" in out and "PASSED" in out

    data = report_of(workdir)
    assert data["quick"] is True and data["passed"] is True and data["complete"] is True
    assert data["targets"] == [XOR, "hopfield/recall_strength"]
    assert data["counts"] == {"reproduced": 2, "not_reproduced": 0, "no_claim": 0, "crashed": 0, "interrupted": 0}
    rows = data["rows"]
    assert [row["experiment"] for row in rows] == [XOR, "hopfield/recall_strength"]
    for row in rows:
        assert set(row) == REPORT_FIELDS
        assert row["status"] == "reproduced" and row["reason"] is None and row["seconds"] > 0
        # the fit's own run: its metrics and (figures are on unless --figures false) its figures
        run_dir = workdir / row["log_dir"]
        assert (run_dir / "metrics.csv").is_file() and list((run_dir / "figures").glob("*.png"))
        log = Path(row["log_file"]).read_text()
        assert "--trainer.limit_train_batches 2" in log and "[claim]" in log
    assert rows[0]["claim"] == "val_accuracy <= 0.75" and rows[0]["observed"] <= 0.75
    assert rows[1]["claim"] == "val_recall_accuracy >= 0.95" and rows[1]["observed"] >= 0.95

    markdown = (workdir / "runs/reproduce/report.md").read_text()
    assert "(quick)" in markdown.splitlines()[0] and "only a crash fails a quick run" in markdown
    assert f"| {XOR} | weakness | `val_accuracy <= 0.75` | {rows[0]['observed']:.4f} | reproduced |" in markdown


@pytest.mark.parametrize(("quick", "status"), [(False, 1), (True, 0)])
def test_a_claim_not_reproduced_fails_a_full_run_only(workdir: Path, quick: bool, status: int) -> None:
    # XOR is not linearly separable: no Perceptron reaches 0.99 on it
    impossible = own_config(
        workdir, "xor_impossible",
        experiment={"kind": "strength", "claim": {"metric": "val_accuracy", "comparison": ">=", "value": 0.99}},
        trainer={"max_epochs": 3},
    )  # fmt: skip
    assert reproduce.main([impossible, "--output", "out", "--figures", "false", *(["--quick"] if quick else [])]) == status
    data = report_of(workdir, "out")
    (row,) = data["rows"]
    assert row["status"] == "not reproduced" and row["observed"] < 0.99 and row["experiment"] == impossible
    assert data["passed"] is quick
    assert not list(workdir.glob(f"{row['log_dir']}/figures/*.png"))
    assert ("PASSED" if quick else "FAILED") in (workdir / "out/report.md").read_text()


def test_a_crash_is_recorded_in_one_line_and_the_others_still_run(workdir: Path) -> None:
    broken = own_config(workdir, "broken", model={"learning_rate": -1.0})
    no_claim = own_config(workdir, "no_claim", experiment={"claim": None})
    assert reproduce.main([broken, no_claim, XOR, "--quick", "--figures", "false"]) == 1  # a crash fails even a quick run
    rows = report_of(workdir)["rows"]
    assert [row["status"] for row in rows] == ["crashed", "no claim", "reproduced"]
    crashed = rows[0]
    assert "learning_rate must be positive" in crashed["reason"] and "\n" not in crashed["reason"]
    assert "learning_rate must be positive" in Path(crashed["log_file"]).read_text()
    assert rows[1]["claim"] is None and rows[1]["observed"] is None and rows[1]["log_dir"]
    assert report_of(workdir)["counts"]["crashed"] == 1


def test_experiments_without_claims_pass(workdir: Path) -> None:
    no_claim = own_config(workdir, "no_claim", experiment={"claim": None})
    assert reproduce.main([no_claim, "--figures", "false", "--quick"]) == 0
    assert [row["status"] for row in report_of(workdir)["rows"]] == ["no claim"]


class CtrlC(Callback):
    """Press Ctrl-C at the start of training (a signal to this process, as a terminal sends it)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_the_whole_command(workdir: Path) -> None:
    interrupted = own_config(workdir, "interrupted", trainer={"callbacks": [{"class_path": f"{__name__}.CtrlC"}]})
    handler = signal.getsignal(signal.SIGINT)
    assert reproduce.main([interrupted, XOR, "--quick", "--figures", "false"]) == 130
    data = report_of(workdir)
    assert [row["status"] for row in data["rows"]] == ["interrupted"]  # XOR never started
    assert data["complete"] is False and data["passed"] is False
    assert signal.getsignal(signal.SIGINT) is handler


# ---------------------------------------------------------------------- wandb
def test_wandb_gets_each_fit_and_the_table_as_an_analysis_artifact(wandb_offline: Path, workdir: Path) -> None:
    assert reproduce.main([XOR, "--quick", "--figures", "false", "--wandb"]) == 0
    runs = {log.project: log for log in map(read_run, find_runs(wandb_offline))}
    assert set(runs) == {"ai-from-scratch-perceptron", "ai-from-scratch-comparison"}

    fit = runs["ai-from-scratch-perceptron"]
    assert fit.name == "xor_weakness" and {"reproduce", "quick", "perceptron"} <= set(fit.tags)
    assert fit.summary["claim/reproduced"] is True

    summary = runs["ai-from-scratch-comparison"]
    assert summary.name == f"reproduce-{XOR}-quick" and summary.job_type == "reproduce" and summary.exit_code == 0
    assert any(key.startswith("claims/") for key in summary.history_keys)
    (analysis,) = [artifact for artifact in summary.artifacts if artifact["type"] == "analysis"]
    assert analysis["name"] == "reproduce-perceptron_xor_weakness-quick"
    assert {"report.md", "report.json", "claims.table.json"} <= set(analysis["files"])
    assert analysis["metadata"]["counts"]["reproduced"] == 1 and analysis["metadata"]["quick"] is True
    assert summary.summary["passed"] is True

    # the table itself, as the run saved it for upload: one row, the report's columns
    (table_file,) = wandb_offline.glob(f"wandb/offline-run-*-{summary.run_id}/files/media/table/claims_*.table.json")
    table = json.loads(table_file.read_text())
    row = dict(zip(table["columns"], table["data"][0]))
    assert len(table["data"]) == 1 and set(table["columns"]) == REPORT_FIELDS
    assert row["experiment"] == XOR and row["status"] == "reproduced" and row["observed"] == report_of(workdir)["rows"][0]["observed"]


def test_log_analysis_checks_its_files_before_opening_a_run(wandb_offline: Path, workdir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.md"):
        log_analysis("ai-from-scratch-comparison", "nothing", [workdir / "missing.md"], mode="offline")
    assert find_runs(wandb_offline) == []


# ---------------------------------------------------------------------- everything
@pytest.mark.slow
def test_every_experiment_runs_at_smoke_sizes(workdir: Path) -> None:
    assert reproduce.main(["--all", "--quick", "--figures", "false"]) == 0
    data = report_of(workdir)
    assert [row["experiment"] for row in data["rows"]] == [entry["name"] for entry in experiments()]
    assert data["counts"]["crashed"] == 0 and all(row["observed"] is not None for row in data["rows"] if row["claim"])
