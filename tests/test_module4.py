"""Module 4 side by side: RNN, LSTM and GRU on the adding problem; encoder-decoders without and with
attention, and the Transformer, reversing 32 symbols."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons import module4
from wandb_log import find_runs, read_run


def test_compare_command_draws_the_adding_problem_and_logs_it_to_wandb(wandb_offline: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the cheaper contrast (three recurrent nets) at smoke sizes: the plumbing, not the claim
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-4", "--out", "cmp", "--quick", "--contrast", "adding", "--wandb"])
    assert exit_info.value.code == 0
    png = workdir / "cmp" / "sequence_memory.png"
    assert png.is_file() and png.stat().st_size > 20_000
    saved = json.loads((workdir / "cmp" / "sequence_memory.json").read_text())
    assert saved["seed"] == 0 and saved["quick"] is True and "attention" not in saved
    adding = saved["adding"]
    assert set(adding) == {"Elman RNN", "LSTM", "GRU"}
    # each run is its own config: T = 100 for the RNN and the LSTM, 50 for the GRU; one epoch, one point
    assert [adding[label]["seq_len"] for label in ("Elman RNN", "LSTM", "GRU")] == [100, 100, 50]
    for label, summary in adding.items():
        assert [epoch for epoch, _ in summary["val_mse"]] == [0], label
        assert summary["test_mse"] > 0 and summary["claim"].startswith("test_mse"), label
        assert Path(summary["log_dir"], "metrics.csv").is_file(), label
    assert "Elman RNN" in capsys.readouterr().out

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-comparison"
    assert log.group == "module-4-sequence-models" and log.name == "sequence-memory"
    assert {"module-4", "sequence", "comparison", "rnn", "lstm", "gru"} <= set(log.tags) and "transformer" not in log.tags
    images = {key for row in log.history for key, value in row.items() if key.endswith("/_type") and "image" in str(value)}
    assert images == {"figures/sequence_memory/_type"}, images
    assert any(key.startswith("comparison") for key in log.history_keys)  # the table
    assert log.summary["LSTM/test_mse"] == pytest.approx(adding["LSTM"]["test_mse"])
    (analysis,) = [a for a in log.artifacts if a["type"] == "analysis"]
    assert analysis["metadata"]["GRU/test_mse"] == pytest.approx(adding["GRU"]["test_mse"])
    assert {"sequence_memory.png", "sequence_memory.json"} <= set(analysis["files"])
    assert log.exit_code == 0


def test_an_unknown_contrast_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "module-4", "--contrast", "lstm"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ai-scratch: error:") and "--contrast" in err[0], err


@pytest.mark.slow
@pytest.mark.comparisons  # each config fitted again, as reproduce --all fits it: outside CI, like the seeds
def test_gates_and_attention_at_full_size(workdir: Path) -> None:
    """The configs at their own sizes and seed: the orderings the papers report, with margin."""
    assert module4.main(["--out", "cmp"]) == 0
    saved = json.loads((workdir / "cmp" / "sequence_memory.json").read_text())
    adding, attention = saved["adding"], saved["attention"]
    # (a) the Elman RNN never gets clearly below the mean predictor's 1/6; the gated units go far below it
    rnn_curve = [value for _, value in adding["Elman RNN"]["val_mse"]]
    assert min(rnn_curve) >= 0.6 * module4.MEAN_PREDICTOR_MSE and adding["Elman RNN"]["test_mse"] >= 0.1
    for gated in ("LSTM", "GRU"):
        assert adding[gated]["test_mse"] <= 0.01 <= 0.1 * adding["Elman RNN"]["test_mse"], gated
    # (b) one fixed vector gets at most half the tokens; attention (with recurrence or without) nearly all
    for fixed in ("GRU encoder-decoder, no attention", "LSTM encoder-decoder, no attention"):
        assert attention[fixed]["test_token_accuracy"] <= 0.5, fixed
    for attends in ("LSTM encoder-decoder + attention", "Transformer (attention only)"):
        assert attention[attends]["test_token_accuracy"] >= 0.9, attends
    gap = attention["LSTM encoder-decoder + attention"]["test_token_accuracy"] - attention["LSTM encoder-decoder, no attention"]["test_token_accuracy"]
    assert gap >= 0.4
    # every config whose task was not changed keeps its own claim
    assert all(summary["claim_reproduced"] for panel in (adding, attention) for summary in panel.values() if not summary["overrides"])
