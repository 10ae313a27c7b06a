"""Model cards (``ai-scratch info``): built for every registered model from its INFO, its source and its configs."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from ai_scratch.cards import all_cards, lines_of_code, model_card, render_card, render_table
from ai_scratch.cli import main
from ai_scratch.insights import insights_markdown, module_rows
from ai_scratch.registry import experiments, find_config, models
from conftest import config

#: Claims that demonstrate none of their model's key learning objectives: a text model trained for its
#: samples, and GoogLeNet without the batch normalisation that its objectives are not about.
WITHOUT_OBJECTIVES = {"googlenet/without_batch_norm_weakness", "lstm/char_lm_pydoc", "transformer/char_lm_pydoc"}

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
        # at the paper's size, counted on the meta device; every model says how large its paper's was
        assert card["paper_parameters"] > 0 and card["paper_flops"] > 0, card["name"]
        assert card["default_flops"] is None or card["default_flops"] > 0, card["name"]
        # every objective a config names is one of the objectives of the model it builds (the card's own,
        # but for gru's encoder-decoder, which builds lstm_attention's network of GRUs)
        assert [row["objective"] for row in card["objectives"]] == card["key_learning_objectives"], card["name"]
        for entry in card["experiments"]:
            class_path = yaml.safe_load(find_config(entry["name"]).read_text())["model"]["class_path"]
            module_name, class_name = class_path.rsplit(".", 1)
            built = getattr(getattr(importlib.import_module(module_name), class_name), "INFO", None)  # a language-model head has none
            allowed = built.key_learning_objectives if built is not None else card["key_learning_objectives"]
            assert set(entry["objectives"]) <= set(allowed), entry["name"]
            assert entry["objectives"] or not entry["claim"] or entry["name"] in WITHOUT_OBJECTIVES, entry["name"]


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
    assert "here         576 parameters" in text and "in gcn/karate_strength" in text
    # the paper's Cora model: 1,433 features, 16 hidden units, 7 classes, no biases (C H + H F)
    assert card["paper_parameters"] == 1433 * 16 + 16 * 7


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
    assert last["perceptron/linear_strength"]["seconds"] > 0  # how long the fit took to reproduce it
    main(["info", "perceptron", "--runs_dir", str(workdir / "runs")])
    text = capsys.readouterr().out
    assert "last local fit: reproduced" in text
    row = next(line for line in render_table([card]).splitlines() if line.startswith("perceptron "))
    outcome = last["perceptron/circles_weakness"]["reproduced"]
    assert row.split()[-2] == f"{1 + outcome}/2"

    # the reproduced strength marks its objectives met, on the card and in the table
    shown = next(entry for entry in card["experiments"] if entry["name"] == "perceptron/linear_strength")["objectives"]
    assert shown and all(row["met"] for row in card["objectives"] if row["objective"] in shown)
    assert all(not row["met"] for row in card["objectives"] if not ({*row["experiments"]} & {"perceptron/linear_strength", "perceptron/circles_weakness"}))
    assert f"[x] {shown[0]}" in text
    met = sum(row["met"] for row in card["objectives"])
    assert row.split()[-1] == f"{met}/{len(card['objectives'])}"

    # the module's insight report: the fitted claim with its margin and seconds, the others not fitted
    rows = {entry["experiment"]: entry for entry in module_rows(1, [card])}
    linear = rows["perceptron/linear_strength"]
    assert linear["verdict"] == "reproduced" and linear["margin"] >= 0 and linear["seconds"] == last["perceptron/linear_strength"]["seconds"]
    assert rows["perceptron/iris_strength"]["verdict"] == "not fitted"
    assert "| Perceptron | perceptron/linear_strength |" in insights_markdown(1, [card])
