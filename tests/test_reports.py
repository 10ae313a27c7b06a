"""W&B Reports, one per module: built offline from the real model cards, never saved here (saving needs an account)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("wandb_workspaces", reason="the reports extra (pip install 'ai-scratch[reports]')")
import wandb_workspaces.reports.v2 as wr  # noqa: E402

from ai_scratch.cards import model_card  # noqa: E402
from ai_scratch.reports import ReportsUnavailable, claim_metrics, module_report, save_reports  # noqa: E402

MODULE_1 = ("perceptron", "adaline", "mlp", "hopfield")


@pytest.fixture(scope="module")
def cards() -> list[dict]:
    return [model_card(name, sizes=False) for name in (*MODULE_1, "lenet5")]


def test_a_module_report_tells_each_model_in_the_order_of_the_history(cards: list[dict]) -> None:
    report = module_report(1, cards, entity="a-student")
    assert report.project == "ai-from-scratch-comparison" and report.entity == "a-student"
    assert report.title == "ai-scratch, module 1: foundations"
    headings = [block.text for block in report.blocks if isinstance(block, wr.H2)]
    # the four models of module 1 by year, LeNet-5 (module 2) left out, then the comparison
    assert headings == ["Perceptron (1957)", "ADALINE (1960)", "Hopfield network (1982)", "Multi-Layer Perceptron (1986)", "Side by side"], headings
    grids = [block for block in report.blocks if isinstance(block, wr.PanelGrid)]
    projects = [grid.runsets[0].project for grid in grids]
    assert projects == [f"ai-from-scratch-{name}" for name in ("perceptron", "adaline", "hopfield", "mlp")] + ["ai-from-scratch-comparison"]
    assert grids[-1].runsets[0].filters == "Group == 'module-1-foundations'"


def test_a_model_section_plots_its_claims_and_checks_its_objectives(cards: list[dict]) -> None:
    perceptron = cards[0]
    per_epoch, final = claim_metrics(perceptron)
    assert "val_accuracy" in per_epoch and all(not metric.startswith(("train_", "val_")) for metric in final)
    report = module_report(1, [perceptron], entity="a-student")
    (grid,) = [block for block in report.blocks if isinstance(block, wr.PanelGrid)][:1]
    lines = [panel for panel in grid.panels if isinstance(panel, wr.LinePlot)]
    assert lines[0].y == ["train_loss", "val_loss"] and set(per_epoch) <= set(lines[1].y)
    bars = [panel for panel in grid.panels if isinstance(panel, wr.BarPlot)]
    assert bars[0].metrics[0].name == "claim/observed"
    (objectives,) = [block for block in report.blocks if isinstance(block, wr.CheckedList)]
    assert [item.text for item in objectives.items] == perceptron["key_learning_objectives"]
    assert [item.checked for item in objectives.items] == [row["met"] for row in perceptron["objectives"]]


def test_a_module_without_models_or_out_of_range_is_refused(cards: list[dict]) -> None:
    with pytest.raises(ValueError, match="module must be one of"):
        module_report(7, cards, entity="a-student")
    with pytest.raises(ValueError, match="no model of module 3"):
        module_report(3, cards, entity="a-student")


def test_saving_without_credentials_says_what_to_do(cards: list[dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no wandb settings
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    with pytest.raises(ReportsUnavailable, match="wandb login"):
        save_reports(cards)
