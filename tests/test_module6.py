"""Module 6 side by side: GCN against an MLP and a 32-layer GCN on the karate club; BERT's masked-LM
pre-training and BERT from scratch; BitNet b1.58 against its full-precision twin, wide and narrow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons import module6
from wandb_log import find_runs, read_run

GCN_LABELS = ("GCN, 2 layers", "MLP (GCN with Â = I)", "GCN, 32 layers")


def test_compare_command_draws_the_graph_contrast_and_logs_it_to_wandb(wandb_offline: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the cheapest contrast (three full-batch fits on a 34-node graph) at smoke sizes: the plumbing, not the claim
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-6", "--out", "cmp", "--quick", "--contrast", "graphs", "--wandb"])
    assert exit_info.value.code == 0
    png = workdir / "cmp" / "modern_paradigm.png"
    assert png.is_file() and png.stat().st_size > 20_000
    saved = json.loads((workdir / "cmp" / "modern_paradigm.json").read_text())
    assert saved["seed"] == 0 and saved["quick"] is True and "pretraining" not in saved and "ternary" not in saved
    graphs = saved["graphs"]
    assert tuple(graphs) == GCN_LABELS
    # each run is its own config: 2 layers with the graph, 2 without it, 32 with it
    assert [(graphs[label]["num_layers"], graphs[label]["propagation"]) for label in GCN_LABELS] == [
        (2, "renormalized"), (2, "none"), (32, "renormalized")]  # fmt: skip
    claims = {"GCN, 2 layers": "test_accuracy >= 0.9", "MLP (GCN with Â = I)": "test_loss >= 0.6", "GCN, 32 layers": "test_accuracy <= 0.6"}
    for label, summary in graphs.items():
        assert [epoch for epoch, _ in summary["curves"]["val_loss"]] == [0], label  # one epoch, one point
        assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["test_loss"] > 0, label
        assert summary["claim"] == claims[label] and isinstance(summary["claim_reproduced"], bool), label
        assert Path(summary["log_dir"], "metrics.csv").is_file(), label
    assert "GCN, 32 layers" in capsys.readouterr().out

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison"
    assert log.group == "module-6-modern-paradigm" and log.name == "modern-paradigm"
    assert {"module-6", "modern", "comparison", "modern-paradigm", "gcn"} <= set(log.tags)
    assert not {"bert", "bitnet"} & set(log.tags)
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/modern_paradigm/_type"}, images
    assert any(key.startswith("comparison") for key in log.history_keys)  # the table
    assert log.summary["GCN, 2 layers/test_accuracy"] == pytest.approx(graphs["GCN, 2 layers"]["test_accuracy"])
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert analysis["metadata"]["MLP (GCN with Â = I)/test_loss"] == pytest.approx(graphs["MLP (GCN with Â = I)"]["test_loss"])
    assert {"modern_paradigm.png", "modern_paradigm.json"} <= set(analysis["files"])
    assert log.exit_code == 0


def _curve(values: list[float]) -> list[list[float]]:
    return [[epoch, value] for epoch, value in enumerate(values)]


def test_the_figure_draws_the_reference_lines_and_the_gaps_it_is_given() -> None:
    """Rows (b) and (c) from numbers (no fit): the best-constant-guess and chance lines where the
    results put them, each width's gap as full precision minus ternary, the bits of a weight."""
    guess = {"piece": "_", "share": 0.076, "masked_positions": 1163}
    results = {
        "seed": 3, "quick": False,
        "pretraining": {
            "BERT, masked-LM pre-training": {
                "experiment": "bert/masked_lm_pretraining", "pretraining_epochs": 25, "best_constant_guess": guess,
                "curves": {"train_mlm_accuracy": _curve([0.05, 0.15, 0.22]), "val_mlm_accuracy": _curve([0.06, 0.17, 0.25])},
                "val_mlm_accuracy": 0.25, "train_accuracy": None, "test_accuracy": None,
            },
            "BERT from scratch, 128 labels": {
                "experiment": "bert/from_scratch_weakness", "pretraining_epochs": 0,
                "curves": {"train_accuracy": _curve([0.5, 0.8, 1.0]), "val_accuracy": _curve([0.5, 0.48, 0.5])},
                "val_mlm_accuracy": None, "train_accuracy": 1.0, "test_accuracy": 0.49,
            },
        },
        "ternary": {
            label: {"experiment": experiment, "width": width, "curves": {},
                    "ternary_storage": {"weights": 64 * width, "packed_bytes": 16 * width + 4, "float16_bytes": 128 * width},
                    "train_accuracy": ternary, "train_full_precision_accuracy": full, "val_accuracy": ternary - 0.01,
                    "val_full_precision_accuracy": full - 0.01, "train_accuracy_gap": full - ternary,
                    "val_accuracy_gap": full - ternary, "test_accuracy_gap": None}
            for label, experiment, width, ternary, full in (
                ("BitNet b1.58 MLP, width 256", "bitnet/digits_width256_strength", 256, 1.0, 1.0),
                ("BitNet b1.58 MLP, width 8", "bitnet/narrow_width_weakness", 8, 0.93, 0.965))
        },
    }  # fmt: skip
    fig = module6.figure(results)
    masked_lm, from_scratch, gaps, memory = fig.axes
    assert [ax.get_title()[:4] for ax in fig.axes] == ["(b) ", "(b')", "(c) ", "(c')"]
    assert guess["share"] in [line.get_ydata()[0] for line in masked_lm.lines]  # the floor, where the data put it
    assert 0.5 in [line.get_ydata()[0] for line in from_scratch.lines]  # chance on a balanced task
    assert "3.3x the best constant guess" in " ".join(text.get_text() for text in masked_lm.texts)
    annotations = [text.get_text() for text in gaps.texts]
    assert annotations == ["gap +3.5 pts", "gap +3.5 pts", "gap +0.0 pts", "gap +0.0 pts"]  # width 8 first
    assert [patch.get_width() for patch in memory.patches] == pytest.approx([32, 16, 2, math.log2(3)])
    assert "16,384 hidden-layer" in memory.get_title()  # the widest run's 64 x 256 ternary weights
    note = fig.get_supxlabel()
    assert "seed 3" in note and "QUICK" not in note and "not_reproduced" in note  # (b) says what did not reproduce


def test_an_unknown_contrast_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-6", "--contrast", "bert"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:") and "--contrast" in err[0], err


@pytest.mark.slow
@pytest.mark.comparisons  # each config fitted again, as reproduce --all fits it: outside CI, like the seeds
def test_graphs_pretraining_and_ternary_weights_at_full_size(workdir: Path) -> None:
    """The configs at their own sizes and seed: the orderings the papers report, with margin."""
    assert module6.main(["--out", "cmp"]) == 0
    saved = json.loads((workdir / "cmp" / "modern_paradigm.json").read_text())
    graphs, pretraining, ternary = saved["graphs"], saved["pretraining"], saved["ternary"]
    # (a) Kipf & Welling: the graph makes the classifier; without it, or over-smoothed, a coin
    gcn, mlp, deep = (graphs[label] for label in GCN_LABELS)
    assert gcn["test_accuracy"] >= 0.9
    assert gcn["test_accuracy"] - mlp["test_accuracy"] >= 0.2 and gcn["test_accuracy"] - deep["test_accuracy"] >= 0.3
    assert mlp["test_loss"] >= 0.6 >= 0.3 >= gcn["test_loss"]
    # (b) masked LM: well above the best any constant guess can do on the same masked pieces, and rising
    pretrained = pretraining["BERT, masked-LM pre-training"]
    floor = pretrained["best_constant_guess"]["share"]
    assert 0.05 <= floor <= 0.1 and pretrained["val_mlm_accuracy"] >= 2 * floor
    val_mlm = [value for _, value in pretrained["curves"]["val_mlm_accuracy"]]
    assert len(val_mlm) == 25 and val_mlm[-1] - val_mlm[0] >= 0.05
    scratch = pretraining["BERT from scratch, 128 labels"]
    assert scratch["test_accuracy"] <= 0.6
    # (c) b1.58: no gap at width 256, a gap in fitting the training digits at width 8
    wide, narrow = ternary["BitNet b1.58 MLP, width 256"], ternary["BitNet b1.58 MLP, width 8"]
    assert abs(wide["train_accuracy_gap"]) <= 0.01 and abs(wide["test_accuracy_gap"]) <= 0.02
    assert narrow["train_accuracy_gap"] >= 0.01 + wide["train_accuracy_gap"]
    assert wide["ternary_storage"] == {"weights": 64 * 256, "packed_bytes": 64 * 256 // 4 + 4, "float16_bytes": 2 * 64 * 256}
    # every config keeps its own claim
    assert all(summary["claim_reproduced"] for panel in (graphs, pretraining, ternary) for summary in panel.values())
