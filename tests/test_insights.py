"""Insight reports: each module's claims beside the papers' results, with margins and seconds.

The rows from real fits are checked in tests/test_cards.py, beside the cards they are read from."""

from __future__ import annotations

import pytest

from ai_scratch.insights import insights_markdown, margin, module_rows


def test_the_margin_is_positive_on_the_claimed_side_of_the_bar() -> None:
    assert margin("val_accuracy >= 0.9", 0.95) == pytest.approx(0.05)
    assert margin("val_accuracy >= 0.9", 0.85) == pytest.approx(-0.05)
    assert margin("val_accuracy <= 0.75", 0.5) == pytest.approx(0.25)
    assert margin("test_loss < 0.6", 0.7) == pytest.approx(-0.1)
    assert margin("train_accuracy == 1", 1.0) is None


def test_a_module_never_fitted_says_how_to_fit_it() -> None:
    card = {
        "module": 2, "full_name": "LeNet-5", "year_introduced": 1998,
        "experiments": [{"name": "lenet5/mnist", "kind": "strength", "claim": "test_accuracy >= 0.95", "paper_result": "",
                         "description": "LeNet-5 reads digits.", "last_run": None}],
    }  # fmt: skip
    (row,) = module_rows(2, [card])
    assert row["verdict"] == "not fitted" and row["paper"] == "LeNet-5 reads digits." and row["margin"] is None
    text = insights_markdown(2, [card])
    assert "ai-scratch reproduce module-2" in text and "| LeNet-5 | lenet5/mnist |" in text
