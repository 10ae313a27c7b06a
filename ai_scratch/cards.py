"""Model cards: what a student should know about a model before training it, from what the project holds.

``ai-scratch info MODEL`` prints one card; ``ai-scratch info`` a table of every model. A card is
built from the model's frozen :class:`~ai_scratch.info.ModelInfo` (the paper, its innovations,
how the model learns, the learning objectives), its source file (where the paper is written
down, and how many lines of code that took), the experiment configs that ship with the package
(each one's kind and claim, and the parameters of the model its first strength builds) and the
local runs (whether each claim's last fit under ``runs/`` reproduced it: every fit records its
claim in its ``metrics.csv``). Every registered model has a card without code of its own: a
model added to :data:`ai_scratch.registry.MODEL_MODULES` appears here by itself.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import logging
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ai_scratch.registry import experiments, model_classes

_LAYOUT = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER, *_LAYOUT}


def lines_of_code(source: str) -> int:
    """The lines of ``source`` that hold code: not blank, not only a comment, not a docstring.

    A docstring is a string that stands alone as a statement (the module's, a class's, a
    function's); the paper's equations live there, and they are not code.
    """
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in (tokenize.COMMENT, tokenize.NL)]
    code_lines: set[int] = set()
    at_statement_start = True
    for index, token in enumerate(tokens):
        if token.type in _LAYOUT:
            at_statement_start = True
            continue
        if token.type in _NOT_CODE:
            continue
        alone = index + 1 < len(tokens) and tokens[index + 1].type in (tokenize.NEWLINE, tokenize.ENDMARKER)
        if not (token.type == tokenize.STRING and at_statement_start and alone):  # a docstring is not code
            code_lines.update(range(token.start[0], token.end[0] + 1))
        at_statement_start = token.type == tokenize.OP and token.string == ";"
    return len(code_lines)


def last_claim(runs_dir: str | Path, experiment: str) -> dict[str, Any] | None:
    """The claim's outcome in the latest local fit of ``experiment`` (``gcn/karate_strength``) that
    checked it: ``{"run", "observed", "reproduced"}`` read from ``<runs_dir>/<model>/<experiment>/
    version_N/metrics.csv`` (where every fit records its claim), or ``None`` when no fit did."""
    latest: tuple[float, dict[str, Any]] | None = None
    for metrics in Path(runs_dir, experiment).glob("version_*/metrics.csv"):
        with metrics.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("claim/reproduced")]
        if not rows:
            continue
        when = metrics.stat().st_mtime
        if latest is None or when > latest[0]:
            observed = rows[-1].get("claim/observed")
            latest = (when, {
                "run": str(metrics.parent),
                "observed": float(observed) if observed else None,
                "reproduced": float(rows[-1]["claim/reproduced"]) == 1.0,
            })  # fmt: skip
    return None if latest is None else latest[1]


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up lines (seed, accelerators) are noise in a card."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels):
            each.setLevel(level)


def experiment_parameters(config_path: str | Path) -> int:
    """The parameters of the model that an experiment config builds, as ``ai-scratch fit`` builds it
    (the whole LightningModule: a GAN's two networks, BitNet's full-precision twin where it has one)."""
    from ai_scratch.cli import AIScratchCLI  # the CLI imports the registry, as this module does

    with _quiet_lightning(), contextlib.redirect_stdout(io.StringIO()):
        cli = AIScratchCLI(["--config", str(config_path), "--trainer.logger=false", "--figures=false"], run=False)
    return sum(parameter.numel() for parameter in cli.model.parameters())


def model_card(name: str, known: list[dict[str, Any]] | None = None, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """The card of the registered model called ``name`` (``ai-scratch list`` names them).
    ``known``: the experiments (:func:`ai_scratch.registry.experiments`), when the caller has read them;
    ``runs_dir``: where local fits wrote their records (``ai-scratch fit``'s default, ``runs``).

    Raises:
        KeyError: no registered model has that name (the message lists those that exist).
    """
    classes = {cls.INFO.name: cls for cls in model_classes()}
    if name not in classes:
        raise KeyError(f"no model named {name!r}; the models are: {', '.join(sorted(classes))}")
    cls = classes[name]
    known = experiments() if known is None else known
    source_path = Path(inspect.getsourcefile(cls) or "")
    source = source_path.read_text(encoding="utf-8")
    card = cls.INFO.to_dict()
    card["class"] = f"{cls.__module__}.{cls.__qualname__}"
    card["source_file"] = str(source_path.relative_to(Path(__file__).resolve().parents[1]))
    card["lines_of_code"] = lines_of_code(source)
    card["lines"] = len(source.splitlines())
    own = [entry for entry in known if entry["name"].split("/", 1)[0] == name]
    default = next((entry for entry in own if entry["kind"] == "strength"), own[0] if own else None)
    card["default_experiment"] = default["name"] if default else None
    card["default_parameters"] = experiment_parameters(default["path"]) if default else None
    card["experiments"] = [
        {"name": entry["name"], "kind": entry["kind"], "claim": entry["claim"], "last_run": last_claim(runs_dir, entry["name"])}
        for entry in own
    ]
    return card


def all_cards(runs_dir: str | Path = "runs") -> list[dict[str, Any]]:
    """Every registered model's card, in the order of the history (module, then year)."""
    names = [cls.INFO.name for cls in model_classes()]
    known = experiments()
    cards = [model_card(name, known, runs_dir) for name in names]
    return sorted(cards, key=lambda card: (card["module"], card["year_introduced"]))


def render_card(card: dict[str, Any]) -> str:
    """A card as text for the terminal."""
    authors = ", ".join(card["authors"])
    lines = [
        f"{card['full_name']} ({card['name']}), module {card['module']}: {card['module_name']}",
        f"  paper        {authors} ({card['year_introduced']}), \"{card['paper_title']}\"",
        f"  model        {card['class']} in {card['source_file']}: {card['lines_of_code']} lines of code ({card['lines']} with the paper's text)",
        f"  parameters   {card['default_parameters']:,} in {card['default_experiment']}" if card["default_experiment"] else "  parameters   (no experiment yet)",
        f"  architecture {card['architecture_type']}; learns by {card['learning_algorithm']}",
        f"  loss         {card['loss_function']}; optimizer {card['optimizer']}",
        f"  difficulty   {card['difficulty_level']}; training takes {card['estimated_training_time']}; pattern {card['pattern']}",
        "  key innovations",
        *(f"    - {item}" for item in card["key_innovations"]),
        "  what you will learn",
        *(f"    - {item}" for item in card["key_learning_objectives"]),
        "  experiments (ai-scratch fit --config <name>)",
    ]
    width = max((len(entry["name"]) for entry in card["experiments"]), default=0)
    for entry in card["experiments"]:
        claim = f"  claim: {entry['claim']}" if entry["claim"] else ""
        last = entry["last_run"]
        if last is not None:
            verdict = "reproduced" if last["reproduced"] else "NOT reproduced"
            observed = "" if last["observed"] is None else f", observed {last['observed']:.4g}"
            claim += f"  (last local fit: {verdict}{observed}, {last['run']})"
        lines.append(f"    {entry['name']:<{width}} {entry['kind']:<9}{claim}")
    if not card["experiments"]:
        lines.append("    (none yet)")
    return "\n".join(lines)


def render_table(cards: list[dict[str, Any]]) -> str:
    """Every model in one table: name, year, module, difficulty, lines of code, experiments, and how
    many of those experiments' last local fits reproduced their claims (of those fitted)."""
    columns = ["model", "name", "year", "module", "difficulty", "code lines", "parameters", "experiments", "reproduced"]

    def reproduced(card: dict[str, Any]) -> str:
        fitted = [entry["last_run"] for entry in card["experiments"] if entry["last_run"] is not None]
        return f"{sum(last['reproduced'] for last in fitted)}/{len(fitted)}" if fitted else "-"

    rows = [
        [card["name"], card["full_name"], str(card["year_introduced"]), str(card["module"]), card["difficulty_level"],
         str(card["lines_of_code"]), f"{card['default_parameters']:,}" if card["default_parameters"] is not None else "-",
         str(len(card["experiments"])), reproduced(card)]
        for card in cards
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    right = {"code lines", "parameters", "experiments", "reproduced"}  # numbers line up on the right

    def line(row: list[str]) -> str:
        return "  ".join(cell.rjust(w) if column in right else cell.ljust(w) for cell, w, column in zip(row, widths, columns)).rstrip()

    return "\n".join([line(columns), *(line(row) for row in rows), "", "parameters: of the model that the first strength experiment builds (ai-scratch info MODEL names it).",
                      "reproduced: of the experiments fitted here (runs/), how many reproduced their claim in their last fit.",
                      "ai-scratch info MODEL shows one model's card."])
