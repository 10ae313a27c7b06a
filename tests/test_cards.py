"""Model cards (``ai-scratch info``): built for every registered model from its INFO, its source and its configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_scratch.cards import all_cards, lines_of_code, model_card, render_card, render_table
from ai_scratch.cli import main
from ai_scratch.registry import experiments, models
from conftest import config

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]

SOURCE = '''"""A module's docstring,
over two lines."""
import math  # a comment after code


# a comment alone
def area(radius):
    """A function's docstring."""
    label = "a string assigned is code"
    "a string standing alone is not"
    return (math.pi *
            radius ** 2)
x = 1; "after a semicolon, a statement of its own"
'''


def test_lines_of_code_count_code_not_docstrings_comments_or_blank_lines() -> None:
    # import, def, label =, return over two lines, x = 1
    assert lines_of_code(SOURCE) == 6
    assert lines_of_code('"""only a docstring"""\n') == 0
    assert lines_of_code("") == 0


def test_every_registered_model_has_a_card_with_its_experiments() -> None:
    cards, known = all_cards(), experiments()
    assert [card["name"] for card in cards] == [info.name for info in models()]
    for card in cards:
        own = sorted(entry["name"] for entry in known if entry["name"].split("/")[0] == card["name"])
        assert sorted(entry["name"] for entry in card["experiments"]) == own, card["name"]
        assert 0 < card["lines_of_code"] < card["lines"], card["name"]  # a model file holds its paper's text too
        assert card["source_file"].startswith("ai_scratch/") and card["source_file"].endswith(".py")
        assert card["key_learning_objectives"] and card["key_innovations"], card["name"]
        assert card["default_experiment"] in own and card["default_parameters"] > 0, card["name"]


def test_a_card_names_the_paper_the_objectives_and_each_claim() -> None:
    card = model_card("gcn")
    assert card["class"] == "ai_scratch.modern_paradigm.gcn.GCN"
    assert card["source_file"] == "ai_scratch/modern_paradigm/gcn.py"
    text = render_card(card)
    assert "Kipf" in text and "(2017)" in text and card["paper_title"] in text
    for objective in card["key_learning_objectives"]:
        assert objective in text
    assert "gcn/karate_strength" in text and "claim: test_accuracy >= 0.9" in text
    # the strength's model as fit builds it: 34 featureless nodes (X = I), 16 hidden units, 2 factions
    assert card["default_experiment"] == "gcn/karate_strength"
    assert card["default_parameters"] == 34 * 16 + 16 * 2
    assert "parameters   576 in gcn/karate_strength" in text


def test_info_prints_a_card_or_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "bitnet"]) is None
    card = capsys.readouterr().out
    assert card.startswith("BitNet b1.58 (bitnet), module 6") and "bitnet/digits_width256_strength" in card
    main(["info"])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["model", "name"]
    assert [line.split()[0] for line in table[1 : 1 + len(models())]] == [info.name for info in models()]


def test_info_of_an_unknown_model_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["info", "alexnett"])
    assert ended.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no model named 'alexnett'" in error and "alexnet" in error


def test_a_card_says_whether_each_claims_last_local_fit_reproduced(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real fits write their claim into runs/<model>/<experiment>/version_N/metrics.csv; the card
    reads the latest: a full fit of the linear strength reproduces, a one-epoch fit of the XOR
    weakness is recorded too, and an experiment never fitted says nothing."""
    main(["fit", "--config", config("perceptron/linear_strength"), *QUIET, "--figures=false"])
    main(["fit", "--config", config("perceptron/circles_weakness"), *QUIET, "--figures=false", "--trainer.max_epochs=1"])
    capsys.readouterr()
    card = model_card("perceptron", runs_dir=workdir / "runs")
    last = {entry["name"]: entry["last_run"] for entry in card["experiments"]}
    assert last["perceptron/linear_strength"]["reproduced"] is True
    assert last["perceptron/linear_strength"]["run"].endswith("runs/perceptron/linear_strength/version_0")
    assert last["perceptron/circles_weakness"] is not None and last["perceptron/iris_strength"] is None
    main(["info", "perceptron", "--runs_dir", str(workdir / "runs")])
    text = capsys.readouterr().out
    assert "last local fit: reproduced" in text
    row = next(line for line in render_table([card]).splitlines() if line.startswith("perceptron "))
    outcome = last["perceptron/circles_weakness"]["reproduced"]
    assert row.split()[-1] == f"{1 + outcome}/2"
