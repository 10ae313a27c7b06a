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
import functools
import inspect
import io
import logging
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ai_scratch.base import BaseModel
from ai_scratch.numpy_adapter import NumPyModel
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
    checked it: ``{"run", "observed", "reproduced", "seconds"}`` read from ``<runs_dir>/<model>/<experiment>/
    version_N/metrics.csv`` (where every fit records its claim), or ``None`` when no fit did."""
    latest: tuple[float, dict[str, Any]] | None = None
    for metrics in Path(runs_dir, experiment).glob("version_*/metrics.csv"):
        with metrics.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("claim/reproduced")]
        if not rows:
            continue
        when = metrics.stat().st_mtime
        if latest is None or when > latest[0]:
            observed, seconds = rows[-1].get("claim/observed"), rows[-1].get("claim/seconds")
            latest = (when, {
                "run": str(metrics.parent),
                "observed": float(observed) if observed else None,
                "reproduced": float(rows[-1]["claim/reproduced"]) == 1.0,
                "seconds": float(seconds) if seconds else None,
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


def experiment_size(config_path: str | Path) -> tuple[int, int | None]:
    """The parameters of the model that an experiment config builds, as ``ai-scratch fit`` builds it
    (the whole LightningModule: a GAN's two networks, BitNet's full-precision twin where it has one),
    and the FLOPs of its forward pass on one example (``None`` for a model without an example input).
    Built once per version of the config file in a process (the dashboard and ``info`` both ask)."""
    path = Path(config_path).resolve()
    return _experiment_size(path, path.stat().st_mtime_ns)


@functools.cache
def _experiment_size(path: Path, modified: int) -> tuple[int, int | None]:
    from ai_scratch.cli import AIScratchCLI  # the CLI imports the registry, as this module does

    with _quiet_lightning(), contextlib.redirect_stdout(io.StringIO()):
        cli = AIScratchCLI(["--config", str(path), "--trainer.logger=false", "--figures=false"], run=False)
    model = cli.model
    flops = model.forward_flops() if getattr(model, "example_input_array", None) is not None or isinstance(model, NumPyModel) else None
    return sum(parameter.numel() for parameter in model.parameters()), flops


@functools.cache
def paper_size(cls: type[BaseModel]) -> dict[str, int]:
    """``{"parameters", "flops"}`` of the model at its paper's size (:meth:`BaseModel.paper_sized`),
    built on the meta device: counted, never allocated (BitNet b1.58 3B included)."""
    with torch.device("meta"):
        model = cls.paper_sized()
    return {"parameters": sum(parameter.numel() for parameter in model.parameters()), "flops": model.forward_flops()}


def _source(cls: type) -> tuple[Path, str]:
    path = Path(inspect.getsourcefile(cls) or "")
    return path, path.read_text(encoding="utf-8")


def static_card(cls: type[BaseModel]) -> dict[str, Any]:
    """What a model's card says without looking at experiments or runs: its ``INFO``, its class and
    source file, the lines of code that file took, and its size and FLOPs at the paper's scale.
    This part goes into the config of every tracked run (``card`` in its wandb config)."""
    source_path, source = _source(cls)
    card = cls.INFO.to_dict()
    card["class"] = f"{cls.__module__}.{cls.__qualname__}"
    card["source_file"] = str(source_path.relative_to(Path(__file__).resolve().parents[1]))
    card["lines_of_code"] = lines_of_code(source)
    card["lines"] = len(source.splitlines())
    try:
        size = paper_size(cls)
    except NotImplementedError:  # a model outside the history need not say how large its paper's was
        size = {"parameters": None, "flops": None}
    card["paper_parameters"], card["paper_flops"] = size["parameters"], size["flops"]
    return card


def objectives_met(card_experiments: list[dict[str, Any]], objectives: list[str]) -> list[dict[str, Any]]:
    """Each learning objective, the experiments that demonstrate it, and whether it is met: one of
    them reproduced its claim in its last local fit."""
    rows = []
    for objective in objectives:
        shown_by = [entry for entry in card_experiments if objective in entry["objectives"]]
        met = any(entry["last_run"] is not None and entry["last_run"]["reproduced"] for entry in shown_by)
        rows.append({"objective": objective, "experiments": [entry["name"] for entry in shown_by], "met": met})
    return rows


def model_card(name: str, known: list[dict[str, Any]] | None = None, runs_dir: str | Path = "runs", sizes: bool = True) -> dict[str, Any]:
    """The card of the registered model called ``name`` (``ai-scratch list`` names them).
    ``known``: the experiments (:func:`ai_scratch.registry.experiments`), when the caller has read them;
    ``runs_dir``: where local fits wrote their records (``ai-scratch fit``'s default, ``runs``);
    ``sizes``: also build the default experiment's model, for its parameters and FLOPs (``None`` without).

    Raises:
        KeyError: no registered model has that name (the message lists those that exist).
    """
    classes = {cls.INFO.name: cls for cls in model_classes()}
    if name not in classes:
        raise KeyError(f"no model named {name!r}; the models are: {', '.join(sorted(classes))}")
    card = static_card(classes[name])
    known = experiments() if known is None else known
    own = [entry for entry in known if entry["name"].split("/", 1)[0] == name]
    default = next((entry for entry in own if entry["kind"] == "strength"), own[0] if own else None)
    card["default_experiment"] = default["name"] if default else None
    card["default_parameters"], card["default_flops"] = experiment_size(default["path"]) if default and sizes else (None, None)
    card["experiments"] = [
        {"name": entry["name"], "kind": entry["kind"], "claim": entry["claim"], "objectives": entry["objectives"],
         "description": entry["description"], "paper_result": entry["paper_result"], "last_run": last_claim(runs_dir, entry["name"])}
        for entry in own
    ]  # fmt: skip
    card["objectives"] = objectives_met(card["experiments"], card["key_learning_objectives"])
    return card


def all_cards(runs_dir: str | Path = "runs", sizes: bool = True) -> list[dict[str, Any]]:
    """Every registered model's card, in the order of the history (module, then year); ``sizes``:
    as :func:`model_card`."""
    names = [cls.INFO.name for cls in model_classes()]
    known = experiments()
    cards = [model_card(name, known, runs_dir, sizes) for name in names]
    return sorted(cards, key=lambda card: (card["module"], card["year_introduced"]))


def human(count: int | None) -> str:
    """``61.0M``, ``1.4G``: a count as a student reads it (``-`` for none)."""
    if count is None:
        return "-"
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)


def render_card(card: dict[str, Any]) -> str:
    """A card as text for the terminal."""
    authors = ", ".join(card["authors"])
    default = (f"{card['default_parameters']:,} parameters, {human(card['default_flops'])} FLOPs per example in {card['default_experiment']}"
               if card["default_experiment"] else "(no experiment yet)")  # fmt: skip
    lines = [
        f"{card['full_name']} ({card['name']}), module {card['module']}: {card['module_name']}",
        f"  paper        {authors} ({card['year_introduced']}), \"{card['paper_title']}\"",
        f"  model        {card['class']} in {card['source_file']}: {card['lines_of_code']} lines of code ({card['lines']} with the paper's text)",
        f"  paper size   {human(card['paper_parameters'])} parameters, {human(card['paper_flops'])} FLOPs per example (forward pass)",
        f"  here         {default}",
        f"  architecture {card['architecture_type']}; learns by {card['learning_algorithm']}",
        f"  loss         {card['loss_function']}; optimizer {card['optimizer']}",
        f"  difficulty   {card['difficulty_level']}; training takes {card['estimated_training_time']}; pattern {card['pattern']}",
        "  key innovations",
        *(f"    - {item}" for item in card["key_innovations"]),
        "  what you will learn ([x]: an experiment that shows it reproduced its claim in its last local fit)",
        *(f"    [{'x' if row['met'] else ' '}] {row['objective']}" + (f"  ({', '.join(row['experiments'])})" if row["experiments"] else "  (no experiment shows it yet)")
          for row in card["objectives"]),
        "  experiments (ai-scratch fit --config <name>)",
    ]  # fmt: skip
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
    """Every model in one table: name, year, module, difficulty, lines of code, size at the paper's
    scale and here, experiments, how many of those experiments' last local fits reproduced their
    claims (of those fitted), and how many learning objectives are met."""
    columns = ["model", "name", "year", "module", "difficulty", "code lines", "paper params", "paper FLOPs",
               "params here", "experiments", "reproduced", "objectives met"]  # fmt: skip

    def reproduced(card: dict[str, Any]) -> str:
        fitted = [entry["last_run"] for entry in card["experiments"] if entry["last_run"] is not None]
        return f"{sum(last['reproduced'] for last in fitted)}/{len(fitted)}" if fitted else "-"

    rows = [
        [card["name"], card["full_name"], str(card["year_introduced"]), str(card["module"]), card["difficulty_level"],
         str(card["lines_of_code"]), human(card["paper_parameters"]), human(card["paper_flops"]), human(card["default_parameters"]),
         str(len(card["experiments"])), reproduced(card), f"{sum(row['met'] for row in card['objectives'])}/{len(card['objectives'])}"]
        for card in cards
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    left = {"model", "name", "difficulty"}  # numbers line up on the right

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if column in left else cell.rjust(w) for cell, w, column in zip(row, widths, columns)).rstrip()

    return "\n".join([
        line(columns), *(line(row) for row in rows), "",
        "paper params, paper FLOPs: the model at its paper's size; FLOPs of one forward pass on one example (a multiply-add counts two).",
        "params here: of the model that the first strength experiment builds (ai-scratch info MODEL names it).",
        "reproduced: of the experiments fitted here (runs/), how many reproduced their claim in their last fit.",
        "objectives met: learning objectives shown by an experiment whose last local fit reproduced its claim.",
        "ai-scratch info MODEL shows one model's card.",
    ])  # fmt: skip
