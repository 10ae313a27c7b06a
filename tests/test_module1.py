"""Module 1 side by side: Perceptron, ADALINE and MLP on the same linear data and the same XOR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons import module1
from wandb_log import find_runs, read_run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lines_separate_the_linear_data_and_only_the_mlp_separates_xor(seed: int) -> None:
    accuracy = module1.accuracies(module1.run(seed))
    assert set(accuracy) == {f"{m}/{d}" for m in ("perceptron", "adaline", "mlp") for d in ("linear", "xor")}
    # linear data: every rule draws a good line (the Perceptron's rule stops only at a separating one)
    assert accuracy["perceptron/linear"] == 1.0
    assert accuracy["adaline/linear"] >= 0.95
    assert accuracy["mlp/linear"] >= 0.95
    # XOR: one line gets at most three clusters of four; the hidden layer gets all four
    assert accuracy["perceptron/xor"] <= 0.75
    assert accuracy["adaline/xor"] <= 0.75
    assert accuracy["mlp/xor"] == 1.0


def test_the_panels_use_the_same_data_for_every_model() -> None:
    panels = module1.run(0)
    by_dataset: dict[str, list[module1.Panel]] = {}
    for panel in panels:
        by_dataset.setdefault(panel.dataset, []).append(panel)
    assert len(by_dataset) == 2 and all(len(group) == 3 for group in by_dataset.values())
    for group in by_dataset.values():
        for panel in group[1:]:
            assert (panel.points == group[0].points).all() and (panel.labels == group[0].labels).all()


def test_compare_command_writes_the_figure_and_logs_it_to_wandb(wandb_offline: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-1", "--out", "cmp", "--wandb"])
    assert exit_info.value.code == 0
    png = workdir / "cmp" / "linear_vs_nonlinear.png"
    assert png.is_file() and png.stat().st_size > 50_000  # six panels of regions and points
    saved = json.loads((workdir / "cmp" / "accuracies.json").read_text())
    assert saved["seed"] == 0 and saved["val_accuracy"]["mlp/xor"] == 1.0
    assert "mlp/xor" in capsys.readouterr().out

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison"
    assert log.group == "module-1-foundations" and log.name == "linear-vs-nonlinear"
    assert {"module-1", "comparison", "perceptron", "adaline", "mlp"} <= set(log.tags)
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/linear_vs_nonlinear/_type"}, images
    assert log.summary["mlp/xor/val_accuracy"] == 1.0
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert analysis["type"] == "analysis" and analysis["metadata"]["mlp/xor/val_accuracy"] == 1.0
    assert {"linear_vs_nonlinear.png", "accuracies.json"} <= set(analysis["files"])
    assert log.exit_code == 0


@pytest.mark.parametrize("args", [["compare"], ["compare", "module-9"], ["compare", "module-1", "--seed", "-1"]])
def test_bad_comparison_is_one_line_and_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:"), err
