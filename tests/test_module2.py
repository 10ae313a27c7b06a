"""Module 2 side by side: plain-20, plain-32 and ResNet-32; ReLU against sigmoid; VGG against GoogLeNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons import module2
from wandb_log import find_runs, read_run


def test_compare_command_draws_relu_against_sigmoid_and_logs_it_to_wandb(wandb_offline: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the cheapest contrast (two small AlexNets) at smoke sizes: the plumbing, not the claim
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-2", "--out", "cmp", "--quick", "--contrast", "relu_vs_sigmoid", "--wandb"])
    assert exit_info.value.code == 0
    png = workdir / "cmp" / module2.FIGURE
    assert png.is_file() and png.stat().st_size > 20_000
    saved = json.loads((workdir / "cmp" / module2.NUMBERS).read_text())
    assert saved["seed"] == 0 and saved["quick"] is True
    assert set(saved["runs"]) == {"alexnet-relu", "alexnet-sigmoid"} and set(saved["contrasts"]) == {"relu_vs_sigmoid"}
    for key, run in saved["runs"].items():
        # one epoch of two batches of 32: the error is a fraction of 64 digits, the curves one point each
        assert 0.0 <= run["train_error"] <= 1.0 and run["train_error"] * 64 == pytest.approx(round(run["train_error"] * 64)), key
        assert len(run["train_error_curve"]) == 1 and len(run["val_error_curve"]) == 1, key
    # the twins differ only by their units, which have no parameters
    assert saved["runs"]["alexnet-relu"]["parameters"] == saved["runs"]["alexnet-sigmoid"]["parameters"] > 100_000
    assert "alexnet-sigmoid" in capsys.readouterr().out

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison"
    assert log.group == "module-2-cnn-revolution" and log.name == "depth-shortcuts-and-efficiency"
    assert {"module-2", "cnn", "comparison", "alexnet"} <= set(log.tags) and "resnet" not in log.tags
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/cnn_revolution/_type"}, images
    assert any(key.startswith("comparison") for key in log.history_keys)  # the table
    assert log.summary["alexnet-sigmoid/train_error"] == saved["runs"]["alexnet-sigmoid"]["train_error"]
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert analysis["metadata"]["alexnet-relu/parameters"] == saved["runs"]["alexnet-relu"]["parameters"]
    assert {module2.FIGURE, module2.NUMBERS} <= set(analysis["files"])
    assert log.exit_code == 0


def test_an_unknown_contrast_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-2", "--contrast", "vgg"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:") and "--contrast" in err[0], err


@pytest.mark.slow
@pytest.mark.comparisons  # each config fitted again, as reproduce --all fits it: outside CI, like the seeds
def test_the_three_contrasts_at_full_size(workdir: Path) -> None:
    """The configs at their own sizes and seed: the orderings each paper reports, with margin."""
    assert module2.main(["--out", "cmp"]) == 0
    saved = json.loads((workdir / "cmp" / module2.NUMBERS).read_text())
    runs = saved["runs"]
    # (a) degradation: plain-32 ends with clearly more training error than plain-20 (not over-fitting:
    # its held-out error is higher too), and the same 32 layers with shortcuts fit
    assert runs["plain-32"]["train_error"] >= runs["plain-20"]["train_error"] + 0.05
    assert runs["plain-32"]["val_error"] >= runs["plain-20"]["val_error"] + 0.05
    assert runs["plain-32"]["train_error"] >= runs["resnet-32"]["train_error"] + 0.05
    assert runs["resnet-32"]["train_error"] <= runs["plain-20"]["train_error"] + 0.01
    # (b) the ReLU net passes AlexNet's 25% training error; the sigmoid twin stays near chance
    relu_vs_sigmoid = saved["contrasts"]["relu_vs_sigmoid"]
    assert relu_vs_sigmoid["alexnet-relu_epochs_to_25%_train_error"] is not None
    assert relu_vs_sigmoid["alexnet-sigmoid_epochs_to_25%_train_error"] is None
    assert runs["alexnet-sigmoid"]["train_error"] >= 0.75 >= runs["alexnet-relu"]["train_error"] + 0.5
    # (c) GoogLeNet: VGG-16's test accuracy (within 3 points) with over 5 times fewer parameters
    efficiency = saved["contrasts"]["accuracy_per_parameter"]
    assert efficiency["vgg_over_googlenet_parameters"] > 5 and efficiency["paper_sized_vgg_over_googlenet"] > 19
    assert runs["googlenet"]["test_accuracy"] >= runs["vgg-16"]["test_accuracy"] - 0.03
    assert min(runs[key]["test_accuracy"] for key in ("vgg-16", "googlenet")) >= 0.88
    # and every config keeps its own claim
    assert all(run["reproduced"] for run in runs.values())
