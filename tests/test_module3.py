"""Module 3 side by side: R-CNN, Faster R-CNN and YOLO, accuracy against speed and crowded cells;
Mask R-CNN with RoIAlign against RoIPool; U-Net with and without skips, and with and without its weight map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons import module3
from wandb_log import find_runs, read_run


def test_compare_command_draws_the_weight_map_contrast_and_logs_it_to_wandb(wandb_offline: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the cheapest contrast (two small U-Nets) at smoke sizes: the plumbing, not the claim
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-3", "--out", "cmp", "--quick", "--contrast", "weight_map", "--wandb"])
    assert exit_info.value.code == 0
    png = workdir / "cmp" / "applying_cnns.png"
    assert png.is_file() and png.stat().st_size > 20_000
    saved = json.loads((workdir / "cmp" / "applying_cnns.json").read_text())
    assert saved["seed"] == 0 and saved["quick"] is True
    runs = saved["runs"]
    assert set(runs) == {"weight-map", "no-weight-map"}  # no other contrast was fitted
    assert {summary["experiment"] for summary in runs.values()} == {"unet/touching_weight_map", "unet/touching_no_weight_map_weakness"}
    for key, summary in runs.items():
        assert [epoch for epoch, _ in summary["val_iou"]] == [1], key  # one epoch, one point
        assert 0.0 <= summary["test_merged_pairs"] <= 1.0 and 0.0 < summary["test_iou"] <= 1.0, key
        assert summary["claim"].startswith("test_merged_pairs"), key
        assert isinstance(summary["reproduced"], bool), key
        assert Path(summary["log_dir"], "metrics.csv").is_file(), key
    difference = saved["contrasts"]["weight_map"]["weight_map_minus_plain_test_iou"]
    assert difference == pytest.approx(runs["weight-map"]["test_iou"] - runs["no-weight-map"]["test_iou"])
    assert "no-weight-map" in capsys.readouterr().out

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison"
    assert log.group == "module-3-applying-cnns" and log.name == "detection-masks-and-skips"
    assert {"module-3", "comparison", "unet"} <= set(log.tags) and not {"yolo", "mask_rcnn"} & set(log.tags)
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/applying_cnns/_type"}, images
    assert any(key.startswith("comparison") for key in log.history_keys)  # the table
    assert log.summary["weight-map/test_merged_pairs"] == pytest.approx(runs["weight-map"]["test_merged_pairs"])
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert analysis["metadata"]["no-weight-map/test_iou"] == pytest.approx(runs["no-weight-map"]["test_iou"])
    assert {"applying_cnns.png", "applying_cnns.json"} <= set(analysis["files"])
    assert log.exit_code == 0


def test_an_unknown_contrast_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-3", "--contrast", "yolo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:") and "--contrast" in err[0], err


@pytest.mark.slow
@pytest.mark.comparisons  # each config fitted again, as reproduce --all fits it: outside CI, like the seeds
def test_speed_masks_and_skips_at_full_size(workdir: Path) -> None:
    """The configs at their own sizes and seed: the orderings the papers report, with margin."""
    assert module3.main(["--out", "cmp"]) == 0
    runs = json.loads((workdir / "cmp" / "applying_cnns.json").read_text())["runs"]
    rcnn, faster, yolo = runs["rcnn"], runs["faster-rcnn"], runs["yolo"]
    # (a) YOLO's Table 1 order of speed: R-CNN slowest, YOLO fastest, each step a large factor;
    # and the two-stage detectors at least as accurate as the one-look YOLO
    assert yolo["images_per_second"] >= 1.5 * faster["images_per_second"]
    assert faster["images_per_second"] >= 3 * rcnn["images_per_second"]
    assert min(rcnn["test_map_50"], faster["test_map_50"]) >= 0.9 > yolo["test_map_50"] >= 0.7
    # (b) in a crowded cell YOLO finds at most B / k = 1/3 of the shapes, the proposal-based detectors far more;
    # spread out, YOLO finds them
    assert yolo["crowded_recall_50"] <= 1 / 3 and yolo["spread_recall_50"] >= 0.6
    assert min(rcnn["crowded_recall_50"], faster["crowded_recall_50"]) >= yolo["crowded_recall_50"] + 0.3
    # (c) RoIAlign's masks beat RoIPool's, most at the strict IoU (He et al. 2017, Table 2c)
    align, pool = runs["roi-align"], runs["roi-pool"]
    assert align["test_mask_iou"] >= pool["test_mask_iou"] + 0.05
    assert align["test_mask_map_75"] - pool["test_mask_map_75"] >= max(0.1, align["test_mask_map_50"] - pool["test_mask_map_50"])
    # (d) without its skips U-Net loses at least 0.08 of IoU, the gap its configs establish
    assert runs["unet"]["test_iou"] >= runs["unet-no-skips"]["test_iou"] + 0.08
    # (e) the weight map merges far fewer touching pairs, at a lower pixel IoU
    weighted, plain = runs["weight-map"], runs["no-weight-map"]
    assert weighted["test_merged_pairs"] <= 0.25 < 0.5 <= plain["test_merged_pairs"]
    assert weighted["test_iou"] < plain["test_iou"]
    # every config keeps its own claim
    assert all(summary["reproduced"] for summary in runs.values()), {key: s["reproduced"] for key, s in runs.items()}
