"""``ai-scratch dashboard``: a static HTML site of the local runs, to open in a browser with no network.

::

    ai-scratch dashboard                          # runs/ -> runs/dashboard/index.html
    ai-scratch dashboard --runs_dir runs --out site --models perceptron adaline

What ``ai-scratch fit`` leaves under ``runs/<model>/<experiment>/version_N/`` (Lightning's
``metrics.csv``, with the claim checked at the end of fit in the columns ``claim/expected``,
``claim/observed`` and ``claim/reproduced``; LightningCLI's ``config.yaml``; the figures; the
checkpoints), what the comparisons write under ``runs/comparisons/`` and the report of
``ai-scratch reproduce``, laid out as pages:

* ``index.html``: the capability matrix of the whole history (``ai-scratch compare history``) when it
  has been drawn, the report of the last ``ai-scratch reproduce``, every model's claims with the
  outcome of their last local fit (from the model cards, :mod:`ai_scratch.cards`), the modules and
  every run;
* ``module-<n>.html``: the cards of the module's models (paper, innovations, learning objectives met,
  size), the module's comparison (its figures and tables) and links to its runs;
* ``run-<model>.<experiment>.<version>.html``: one run: its experiment and claim with the verdict,
  each family of metrics (loss, accuracy, ...) as an interactive chart against the epoch, its
  figures and its config.

The site is self-contained: every page sits in one folder and links to the others by relative
paths, the figures are copied into it, and the charts are drawn by plotly.js, written once into
``assets/`` (no CDN, nothing fetched), so that it works from ``file://`` and offline. The layout
fits a phone's screen: a table wider than the screen scrolls inside its own box, not the page.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

#: The file that marks a folder as a dashboard this command wrote, and so one it may replace.
MARKER = ".ai-scratch-dashboard"

#: The stage a metric belongs to, as a prefix of its name; the rest of the name is its family.
STAGES = ("train", "val", "test")

#: Families drawn first, in this order; the others follow in alphabetical order.
FIRST_FAMILIES = ("loss", "accuracy", "error")

#: A colour per stage, the same on every chart (and the colour-blind-safe Okabe-Ito palette).
STAGE_COLOURS = {"train": "#0072B2", "val": "#D55E00", "test": "#009E73", "": "#CC79A7"}

CLAIM_COLUMNS = ("claim/expected", "claim/observed", "claim/reproduced")


# ---------------------------------------------------------------------- reading the runs
@dataclass
class Run:
    """One local fit: a ``version_N`` folder with its ``metrics.csv``."""

    folder: Path
    relative: str  # to the runs folder: perceptron/xor_weakness/version_0
    model: str
    experiment: str
    version: str
    rows: list[dict[str, str]] = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    config_text: str = field(repr=False)
    figures: list[Path] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    module: int | None = None

    @property
    def name(self) -> str:
        """``perceptron/xor_weakness``: the experiment's name, as ``ai-scratch fit --config`` takes it."""
        return f"{self.model}/{self.experiment}"

    @property
    def page(self) -> str:
        """The run's page in the site (one folder, so a dotted name): ``run-perceptron.xor_weakness.version_0.html``."""
        return "run-" + self.relative.replace("/", ".") + ".html"

    @property
    def when(self) -> datetime:
        """When the run last wrote its metrics (UTC)."""
        return datetime.fromtimestamp((self.folder / "metrics.csv").stat().st_mtime, tz=timezone.utc)

    @property
    def section(self) -> dict[str, Any]:
        """The ``experiment:`` section of its config (kind, description, claim, objectives)."""
        return self.config.get("experiment") or {}

    @property
    def claim(self) -> str | None:
        """``val_accuracy <= 0.75``, as the config states it; ``None`` for an experiment without one."""
        claim = self.section.get("claim")
        return f"{claim['metric']} {claim['comparison']} {claim['value']:g}" if isinstance(claim, dict) else None

    @property
    def outcome(self) -> dict[str, Any] | None:
        """What the end of fit recorded about the claim: ``{"expected", "observed", "reproduced"}``
        (``observed`` ``None`` when the metric was not logged); ``None`` when nothing was recorded
        (no claim, or a fit stopped before its end)."""
        recorded = [row for row in self.rows if row.get("claim/reproduced")]
        if not recorded:
            return None
        last = recorded[-1]
        return {
            "expected": _number(last.get("claim/expected")),
            "observed": _number(last.get("claim/observed")),
            "reproduced": _number(last["claim/reproduced"]) == 1.0,
        }

    @property
    def epochs(self) -> int | None:
        """How many epochs the run trained: those with a training or validation row (the test after
        the fit is logged at the epoch after the last)."""
        epochs = [int(float(row["epoch"])) for row in self.rows if row.get("epoch")
                  and any(value not in (None, "") for key, value in row.items() if key.startswith(("train", "val")))]  # fmt: skip
        return max(epochs) + 1 if epochs else None


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def find_runs(runs_dir: Path, skip: Path | None = None) -> list[Run]:
    """Every ``version_N`` folder with a ``metrics.csv`` under ``runs_dir`` (the comparisons' own fits
    under ``runs/comparisons/`` included), except those under ``skip`` (the dashboard itself), the
    most recent first. The model and experiment are the two folders above the version."""
    found = []
    skip = skip.resolve() if skip is not None else None
    for metrics in sorted(runs_dir.rglob("version_*/metrics.csv")):
        folder = metrics.parent
        if skip is not None and folder.resolve().is_relative_to(skip):
            continue
        relative = folder.relative_to(runs_dir).as_posix()
        parts = relative.split("/")
        if len(parts) < 3:
            continue
        with metrics.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        config_path = folder / "config.yaml"
        config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
        config = yaml.safe_load(config_text) if config_text else {}
        found.append(Run(
            folder=folder, relative=relative, model=parts[-3], experiment=parts[-2], version=parts[-1], rows=rows,
            config=config if isinstance(config, dict) else {}, config_text=config_text,
            figures=sorted((folder / "figures").glob("*.png")),
            checkpoints=sorted(path.name for path in (folder / "checkpoints").glob("*.ckpt")),
        ))  # fmt: skip
    return sorted(found, key=lambda run: run.when, reverse=True)


# ---------------------------------------------------------------------- charts
def metric_family(metric: str) -> tuple[str, str]:
    """``(family, stage)`` of a logged metric: ``val_accuracy`` -> ``("accuracy", "val")``,
    ``train_loss_epoch`` -> ``("loss", "train")``, ``learning_rate`` -> ``("learning_rate", "")``."""
    stage = ""
    for prefix in STAGES:
        for separator in ("_", "/"):
            if metric.startswith(prefix + separator):
                stage, metric = prefix, metric[len(prefix) + 1 :]
                break
        if stage:
            break
    return re.sub(r"_(epoch|step)$", "", metric), stage


def metric_families(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """The metrics of ``metrics.csv`` that hold at least one number, by family, the families in
    reading order (loss, accuracy, error, then the others)."""
    columns = list(rows[0]) if rows else []
    families: dict[str, list[str]] = {}
    for column in columns:
        if column in ("epoch", "step") or column.startswith("claim/"):
            continue
        if any(_finite(row.get(column)) is not None for row in rows):
            families.setdefault(metric_family(column)[0], []).append(column)
    order = {name: index for index, name in enumerate(FIRST_FAMILIES)}
    return dict(sorted(families.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _finite(text: str | None) -> float | None:
    value = _number(text)
    return value if value is not None and math.isfinite(value) else None


def family_chart(family: str, metrics: list[str], rows: list[dict[str, str]], claim: dict[str, Any] | None) -> str:
    """One plotly figure, as JSON: the ``metrics`` of one family against the epoch (against the step
    where a metric was logged more than once per epoch), with the claim's threshold as a dashed line
    when the claim's metric is one of them."""
    import plotly.graph_objects as go
    import plotly.io as pio

    points = {metric: [(row, value) for row in rows if (value := _finite(row.get(metric))) is not None] for metric in metrics}
    per_step = any(len({row.get("epoch") for row, _ in series}) < len(series) for series in points.values())
    axis = "step" if per_step else "epoch"
    figure = go.Figure()
    for metric, series in points.items():
        stage = metric_family(metric)[1]
        figure.add_trace(go.Scatter(
            x=[int(float(row[axis])) for row, _ in series], y=[value for _, value in series],
            name=metric, mode="lines+markers" if len(series) <= 60 else "lines",
            line={"color": STAGE_COLOURS.get(stage, STAGE_COLOURS[""]), "width": 2, **({} if stage != "test" else {"dash": "dot"})},
            marker={"size": 5},
        ))  # fmt: skip
    if claim and claim.get("metric") in metrics and isinstance(claim.get("value"), (int, float)):
        figure.add_hline(
            y=claim["value"], line={"dash": "dash", "color": "#555", "width": 1.5},
            annotation={"text": f"claim: {claim['metric']} {claim['comparison']} {claim['value']:g}", "font": {"size": 11}},
            annotation_position="top left",
        )  # fmt: skip
    figure.update_layout(
        title={"text": family.replace("_", " "), "x": 0.01, "font": {"size": 15}},
        xaxis_title="epoch" if axis == "epoch" else "optimizer step",
        height=320, margin={"l": 50, "r": 12, "t": 40, "b": 45}, template="plotly_white",
        legend={"orientation": "h", "y": -0.22, "x": 0},
        font={"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        hovermode="x unified", showlegend=True,  # the metric's name, even alone on its chart
    )  # fmt: skip
    last = max((float(row[axis]) for series in points.values() for row, _ in series), default=0.0)
    figure.update_xaxes(dtick=1 if last <= 12 else None)  # whole epochs, not 0.5
    return pio.to_json(figure, validate=True)


def script_json(text: str) -> str:
    """JSON that can sit inside a ``<script>`` element (no ``</script>`` can end it early)."""
    return text.replace("</", "<\\/")


# ---------------------------------------------------------------------- comparisons and the matrix
def json_table(data: Any) -> dict[str, Any] | None:
    """A comparison's JSON file as a table ``{"columns", "rows"}``: a list of records as rows; a
    mapping as ``key | value`` rows, nested keys joined by ``/``; ``None`` for anything else."""
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        columns = list(dict.fromkeys(key for item in data for key in item))
        return {"columns": columns, "rows": [[_cell(item.get(key)) for key in columns] for item in data]}
    if isinstance(data, dict):
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}/{key}" if prefix else str(key), inner)
            else:
                flat[prefix] = value

        walk("", data)
        return {"columns": ["key", "value"], "rows": [[key, _cell(value)] for key, value in flat.items()]}
    return None


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def read_matrix(path: Path) -> dict[str, Any] | None:
    """The capability matrix (``matrix.csv``: ``model``, then one column per task; an empty cell is a
    task that does not apply to the model) as ``{"columns", "rows"}``, numbers to 3 significant digits."""
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if not header:
            return None
        rows = []
        for row in reader:
            cells = []
            for cell in row[1:]:
                value = _number(cell)
                cells.append({"text": "–" if cell.strip() == "" else (f"{value:.3g}" if value is not None else cell), "empty": cell.strip() == ""})
            rows.append({"model": row[0], "cells": cells})
    return {"columns": header[1:], "rows": rows}


# ---------------------------------------------------------------------- the site
def model_cards(runs_dir: Path, models: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The cards of ``models`` (default: every registered model) with their last local runs, in
    the order of the history.

    Raises:
        KeyError: a name in ``models`` is not a registered model.
    """
    from ai_scratch.cards import all_cards, model_card
    from ai_scratch.registry import experiments

    if not models:
        return all_cards(runs_dir)
    known = experiments()
    return sorted((model_card(name, known, runs_dir) for name in models), key=lambda card: (card["module"], card["year_introduced"]))


def build(runs_dir: str | Path, out_dir: str | Path, models: Sequence[str] | None = None) -> Path:
    """Write the dashboard of ``runs_dir`` into ``out_dir`` and return its ``index.html``.

    ``models``: only these models' cards and runs (default: every registered model, every run).
    ``out_dir`` is replaced when a dashboard was written there before; a folder holding anything
    else is refused (``FileExistsError``), so that nothing else is ever deleted.

    Raises:
        FileNotFoundError: ``runs_dir`` is not a folder.
        KeyError: a name in ``models`` is not a registered model.
    """
    from ai_scratch.cards import human
    from ai_scratch.info import MODULES
    from ai_scratch.insights import module_rows, write_insights
    from ai_scratch.registry import COMPARISONS

    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no runs folder {str(runs_dir)!r}: `ai-scratch fit --config perceptron/xor_weakness` writes one (runs/), or give --runs_dir")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise FileExistsError(f"--out {out_dir} is a folder that holds other files; give an empty or new folder")
        shutil.rmtree(out_dir)
    assets = out_dir / "assets"
    assets.mkdir(parents=True)
    (out_dir / MARKER).write_text("written by ai-scratch dashboard; the whole folder is replaced at the next build\n")

    cards = model_cards(runs_dir, models)
    by_name = {card["name"]: card for card in cards}
    runs = [run for run in find_runs(runs_dir, skip=out_dir) if not models or run.model in by_name]
    for run in runs:
        run.module = by_name[run.model]["module"] if run.model in by_name else None
    page_of_folder = {run.folder.resolve(): run.page for run in runs}

    _write_assets(assets)
    env = _environment()
    common = {"modules": MODULES, "human": human, "cell": _cell}

    def last_run_page(last: dict[str, Any] | None) -> str | None:
        return page_of_folder.get(Path(last["run"]).resolve()) if last else None

    for card in cards:
        for entry in card["experiments"]:
            entry["page"] = last_run_page(entry["last_run"])

    # the comparisons of each module: figures copied, JSON as tables
    comparisons: dict[int, dict[str, Any]] = {}
    for number in MODULES:
        folder = runs_dir / "comparisons" / f"module-{number}"
        name = f"module-{number}"
        if not folder.is_dir():
            comparisons[number] = {"exists": False, "command": f"ai-scratch compare {name}" if name in COMPARISONS else None,
                                   "about": COMPARISONS.get(name, (None, None))[1]}  # fmt: skip
            continue
        figures = [_copy(path, out_dir, f"comparisons/{name}") for path in sorted(folder.glob("*.png"))]
        tables = []
        for path in sorted(folder.glob("*.json")):
            try:
                table = json_table(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError:
                table = None
            if table is not None:
                tables.append({"name": path.name, **table})
        comparisons[number] = {"exists": True, "folder": str(folder), "figures": figures, "tables": tables,
                               "command": f"ai-scratch compare {name}", "about": COMPARISONS.get(name, (None, None))[1]}  # fmt: skip

    history = runs_dir / "comparisons" / "history"
    matrix = read_matrix(history / "matrix.csv")
    history_figure = _copy(history / "history.png", out_dir, "comparisons/history") if (history / "history.png").is_file() else None
    reproduce_report = _read_report(runs_dir / "reproduce" / "report.json", runs_dir, page_of_folder)

    modules = [
        {"number": number, "name": name, "models": [card for card in cards if card["module"] == number],
         "runs": [run for run in runs if run.module == number]}
        for number, name in MODULES.items()
    ]  # fmt: skip
    shown_modules = [module for module in modules if module["models"] or module["runs"]]
    # each module's insight report: markdown beside the site, and a page of it
    write_insights(cards, out_dir / "insights")
    for module in shown_modules:
        module["insights"] = module_rows(module["number"], cards)
    pages = [
        ("index.html", "index.html.j2", {
            "title": "ai-scratch dashboard", "cards": cards, "runs": runs, "module_list": shown_modules, "matrix": matrix,
            "history_figure": history_figure, "history_folder": str(history), "report": reproduce_report,
            "runs_dir": str(runs_dir), "other_runs": [run for run in runs if run.module is None],
            "experiment_count": sum(len(card["experiments"]) for card in cards),
            "fitted_count": sum(entry["last_run"] is not None for card in cards for entry in card["experiments"]),
            "reproduced_count": sum(bool(entry["last_run"] and entry["last_run"]["reproduced"]) for card in cards for entry in card["experiments"]),
        }),
    ]  # fmt: skip
    for module in shown_modules:
        pages.append((f"module-{module['number']}.html", "module.html.j2", {
            "title": f"Module {module['number']}: {module['name']}", "module": module, "module_list": shown_modules,
            "comparison": comparisons[module["number"]], "runs_dir": str(runs_dir),
        }))  # fmt: skip
    for module in shown_modules:
        if module["models"]:
            pages.append((f"insights-{module['number']}.html", "insights.html.j2", {
                "title": f"Module {module['number']}: what the papers showed, what reproduced here", "module": module,
                "module_list": shown_modules, "markdown": f"insights/module-{module['number']}.md",
            }))  # fmt: skip
    for run in runs:
        claim = run.section.get("claim") if isinstance(run.section.get("claim"), dict) else None
        charts = [{"family": family, "json": script_json(family_chart(family, metrics, run.rows, claim))}
                  for family, metrics in metric_families(run.rows).items()]  # fmt: skip
        figures = [_copy(path, out_dir, "figures/" + run.relative.replace("/", ".")) for path in run.figures]
        pages.append((run.page, "run.html.j2", {
            "title": f"{run.name} {run.version}", "run": run, "card": by_name.get(run.model), "charts": charts,
            "figures": figures, "module_list": shown_modules, "model_summary": _class_summary(run.config.get("model")),
            "data_summary": _class_summary(run.config.get("data")), "max_epochs": (run.config.get("trainer") or {}).get("max_epochs"),
        }))  # fmt: skip
    for filename, template, context in pages:
        text = env.get_template(template).render(**common, **context, page=filename)
        (out_dir / filename).write_text(text, encoding="utf-8")
    return out_dir / "index.html"


def _copy(source: Path, out_dir: Path, folder: str) -> dict[str, str]:
    """Copy a figure into the site; ``{"src", "caption"}`` with ``src`` relative to the site's pages."""
    target = out_dir / folder / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return {"src": f"{folder}/{source.name}", "caption": source.stem.replace("_", " ")}


def _class_summary(section: Any) -> str | None:
    """``Perceptron(input_dim=2, learning_rate=1.0)`` from a config's ``class_path``/``init_args``."""
    if not isinstance(section, dict) or "class_path" not in section:
        return None
    arguments = ", ".join(f"{key}={value!r}" for key, value in (section.get("init_args") or {}).items())
    return f"{section['class_path'].rsplit('.', 1)[-1]}({arguments})"


def _read_report(path: Path, runs_dir: Path, page_of_folder: dict[Path, str]) -> dict[str, Any] | None:
    """The last ``ai-scratch reproduce`` report, each row with the page of its run where the site has one."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    for row in data.get("rows", []):
        folder = row.get("log_dir")
        row["page"] = page_of_folder.get(Path(folder).resolve()) if folder else None
        if row.get("page") is None and folder and not Path(folder).is_absolute():  # written relative to where reproduce ran
            row["page"] = page_of_folder.get((runs_dir.parent / folder).resolve())
    return data


def _environment() -> Environment:
    env = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["number"] = lambda value: "–" if value is None else f"{value:.4g}"
    env.filters["breakable"] = lambda text: escape(text).replace("/", Markup("/<wbr>"))
    env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC")
    return env


def _write_assets(assets: Path) -> None:
    """plotly.js (the offline bundle that ships with the plotly package) and the style sheet, once for every page."""
    from plotly.offline import get_plotlyjs

    (assets / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    (assets / "dashboard.css").write_text(CSS, encoding="utf-8")


# ---------------------------------------------------------------------- templates
CSS = """\
:root { --ink: #1d2430; --muted: #5b6675; --line: #dfe3ea; --panel: #f6f7f9; --accent: #0b5cad;
        --good: #116b2f; --good-bg: #e3f4e8; --bad: #a1261b; --bad-bg: #fbe7e5; --warn: #7a4d00; --warn-bg: #fdf0d5; --none-bg: #eceef2; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
       color: var(--ink); background: #fff; overflow-wrap: break-word; }
header.site { background: #17202c; color: #fff; }
header.site .bar { max-width: 1100px; margin: 0 auto; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .3rem 1rem; align-items: baseline; }
header.site a { color: #fff; text-decoration: none; }
header.site .brand { font-weight: 700; margin-right: .5rem; }
header.site nav { display: flex; flex-wrap: wrap; gap: .2rem .9rem; font-size: .92rem; }
header.site nav a { opacity: .85; }
header.site nav a[aria-current] { opacity: 1; text-decoration: underline; text-underline-offset: 4px; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1rem 3rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: .6rem 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
a { color: var(--accent); }
p.lead { color: var(--muted); margin-top: 0; }
.muted { color: var(--muted); }
.small { font-size: .88rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .86em; }
code { background: var(--panel); padding: .05em .3em; border-radius: 3px; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; overflow-x: auto; max-width: 100%; }
img { max-width: 100%; height: auto; }
.table-wrap { overflow-x: auto; max-width: 100%; border: 1px solid var(--line); border-radius: 6px; margin: .5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.na { color: #9aa3af; text-align: right; }
table.matrix th:first-child, table.matrix td:first-child { position: sticky; left: 0; background: #fff; border-right: 1px solid var(--line); }
table.matrix th:first-child { background: var(--panel); }
table.claims tr.group th { background: #fff; font-weight: 600; padding-top: .8rem; border-bottom: 1px solid var(--line); white-space: normal; }
td .badge.kind { margin-left: .2rem; }
.nowrap { white-space: nowrap; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; white-space: nowrap; }
.badge.good { background: var(--good-bg); color: var(--good); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.none { background: var(--none-bg); color: var(--muted); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.observed { font-variant-numeric: tabular-nums; margin-left: .25rem; }
.badge.kind { background: #e8eefb; color: #1f4a8a; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .8rem; margin: .6rem 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; background: #fff; }
.card h3 { margin: 0 0 .2rem; }
.card p { margin: .2rem 0; }
.model { border: 1px solid var(--line); border-radius: 8px; padding: .2rem 1.1rem 1rem; margin: 1.2rem 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .4rem 0 .8rem; font-size: .94rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
ul.objectives { list-style: none; padding-left: 0; }
ul.objectives li { margin: .25rem 0; padding-left: 1.6rem; text-indent: -1.6rem; }
.mark { display: inline-block; width: 1.6rem; text-indent: 0; font-weight: 700; }
.mark.good { color: var(--good); }
.mark.none { color: #9aa3af; }
.verdict { border-radius: 8px; padding: .8rem 1rem; margin: .8rem 0; border: 1px solid var(--line); }
.verdict.good { background: var(--good-bg); border-color: #b9e0c4; }
.verdict.bad { background: var(--bad-bg); border-color: #f2c3bd; }
.verdict.none { background: var(--none-bg); }
.verdict.warn { background: var(--warn-bg); border-color: #f1deb0; }
.verdict p { margin: .2rem 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); gap: .8rem; }
.chart { border: 1px solid var(--line); border-radius: 8px; min-height: 320px; width: 100%; overflow: hidden; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); gap: 1rem; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: .5rem; background: #fff; }
figure img { display: block; margin: 0 auto; }
figcaption { font-size: .88rem; color: var(--muted); text-align: center; margin-top: .3rem; }
td.paper { min-width: 18rem; }
.note { background: #fff8e1; border: 1px solid #f1deb0; border-radius: 8px; padding: .7rem 1rem; }
details summary { cursor: pointer; font-weight: 600; margin: .4rem 0; }
footer { max-width: 1100px; margin: 0 auto; padding: 1rem; color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line); }
@media (max-width: 600px) {
  body { font-size: 15px; }
  h1 { font-size: 1.35rem; }
  main { padding: .7rem .75rem 2rem; }
  td.paper { min-width: 0; }
  .facts { grid-template-columns: 1fr; gap: 0; }
  .facts dd { margin-bottom: .35rem; }
  th, td { padding: .35rem .45rem; }
  .wide-only { display: none; }
  .model { padding: .1rem .75rem .8rem; }
  table.stack thead { display: none; }
  table.stack tr { display: block; padding: .45rem .7rem; border-bottom: 1px solid var(--line); }
  table.stack tbody:last-child tr:last-child { border-bottom: 0; }
  table.stack td, table.stack tr.group th { display: block; border: 0; padding: .1rem 0; }
  table.stack td.wide-only { display: none; }
}
"""

BASE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<link rel="stylesheet" href="assets/dashboard.css">
{% block head %}{% endblock %}
</head>
<body>
<header class="site"><div class="bar">
  <a class="brand" href="index.html">ai-scratch</a>
  <nav aria-label="modules">
    <a href="index.html"{% if page == "index.html" %} aria-current="page"{% endif %}>overview</a>
    {% for module in module_list %}
    <a href="module-{{ module.number }}.html"{% if page == "module-%d.html" % module.number %} aria-current="page"{% endif %}>{{ module.number }}. {{ module.name }}</a>
    {% endfor %}
  </nav>
</div></header>
<main>
{% block main %}{% endblock %}
</main>
<footer>Written by <code>ai-scratch dashboard</code> from the local runs; every page works offline.</footer>
</body>
</html>
"""

MACROS = """\
{% macro verdict(result, missing="not fitted") -%}
{% if result is none %}<span class="badge none">{{ missing }}</span>
{%- elif result.observed is none %}<span class="badge warn" title="the claim's metric was not logged">not checked</span>
{%- elif result.reproduced %}<span class="badge good">reproduced</span>
{%- else %}<span class="badge bad">not reproduced</span>{% endif %}
{%- if result is not none and result.observed is not none %} <span class="observed">{{ result.observed | number }}</span>{% endif %}
{%- endmacro %}
{% macro runs_table(runs) %}
<div class="table-wrap"><table class="stack">
  <thead><tr><th>run</th><th>claim</th><th>outcome, observed</th><th class="num wide-only">epochs</th><th class="wide-only">written</th></tr></thead>
  <tbody>
  {% for run in runs %}
    <tr>
      <td><a href="{{ run.page }}">{{ run.relative | breakable }}</a></td>
      <td>{% if run.claim %}<code>{{ run.claim }}</code>{% else %}<span class="muted">–</span>{% endif %}</td>
      <td>{{ verdict(run.outcome, "no claim recorded") }}</td>
      <td class="num wide-only">{{ run.epochs if run.epochs is not none else "–" }}</td>
      <td class="nowrap small wide-only">{{ run.when | when }}</td>
    </tr>
  {% endfor %}
  </tbody>
</table></div>
{% endmacro %}
{% macro experiment_rows(experiments, short=false) %}
{% for entry in experiments %}
<tr>
  {% set name = entry.name.split("/", 1)[1] if short else entry.name | breakable %}
  <td>{% if entry.page %}<a href="{{ entry.page }}">{{ name }}</a>{% else %}{{ name }}{% endif %}
    <span class="badge kind">{{ entry.kind }}</span></td>
  <td>{% if entry.claim %}<code>{{ entry.claim }}</code>{% else %}<span class="muted">–</span>{% endif %}</td>
  <td>{{ verdict(entry.last_run) }}</td>
</tr>
{% else %}
<tr><td colspan="3" class="muted">no experiment yet</td></tr>
{% endfor %}
{% endmacro %}
{% macro table(columns, rows) %}
<div class="table-wrap"><table>
  <thead><tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr></thead>
  <tbody>{% for row in rows %}<tr>{% for value in row %}<td>{{ value }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
{% endmacro %}
"""

INDEX = """\
{% extends "base.html.j2" %}
{% from "macros.html.j2" import verdict, runs_table, experiment_rows %}
{% block main %}
<h1>The history of neural networks, run locally</h1>
<p class="lead">{{ cards | length }} models, {{ experiment_count }} experiments with their historical claims:
{{ fitted_count }} fitted here, {{ reproduced_count }} of them reproduced in their last fit.
{{ runs | length }} runs read from <code>{{ runs_dir }}</code>.</p>

<h2 id="matrix">Capability matrix</h2>
{% if matrix %}
<p class="small muted">Each model on each task of the history (<code>{{ history_folder }}/matrix.csv</code>);
– : the task does not apply to the model.</p>
<div class="table-wrap"><table class="matrix">
  <thead><tr><th>model</th>{% for column in matrix.columns %}<th class="num">{{ column }}</th>{% endfor %}</tr></thead>
  <tbody>
  {% for row in matrix.rows %}
    <tr><td>{{ row.model }}</td>{% for value in row.cells %}<td class="{{ "na" if value.empty else "num" }}"{% if value.empty %} title="not applicable"{% endif %}>{{ value.text }}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>
</table></div>
{% endif %}
{% if history_figure %}
<figure><img src="{{ history_figure.src }}" alt="the capability matrix of the history, drawn"><figcaption>{{ history_figure.caption }}</figcaption></figure>
{% endif %}
{% if not matrix and not history_figure %}
<p class="note">No capability matrix yet. <code>ai-scratch compare history</code> fits every model on the tasks of the
history and writes <code>{{ history_folder }}/matrix.csv</code> and <code>history.png</code>; build this dashboard again to see them here.</p>
{% endif %}

<h2 id="modules">Modules</h2>
<div class="cards">
{% for module in module_list %}
  <div class="card">
    <h3><a href="module-{{ module.number }}.html">Module {{ module.number }}: {{ module.name }}</a></h3>
    <p class="small">{% for card in module.models %}{{ card.full_name }} ({{ card.year_introduced }}){{ ", " if not loop.last }}{% endfor %}</p>
    <p class="small muted">{{ module.runs | length }} run{{ "" if module.runs | length == 1 else "s" }}{% if module.models %};
      <a href="insights-{{ module.number }}.html">insight report</a>{% endif %}</p>
  </div>
{% endfor %}
</div>

<h2 id="reproduce">Last reproduction</h2>
{% if report %}
<p>{{ "PASSED" if report.get("passed") else "FAILED" }}: <code>{{ report.get("command", "ai-scratch reproduce") }}</code>{% if report.get("quick") %} (quick: smoke sizes, nothing is expected of the numbers){% endif %},
started {{ report.get("started", "?") }}, {{ cell(report.get("seconds")) }} s.
{% for key, count in report.get("counts", {}).items() %}{{ count }} {{ key | replace("_", " ") }}{{ ", " if not loop.last else "." }}{% endfor %}</p>
<div class="table-wrap"><table>
  <thead><tr><th>experiment</th><th>claim</th><th class="num">observed</th><th>result</th><th class="num">seconds</th></tr></thead>
  <tbody>
  {% for row in report.get("rows", []) %}
    <tr>
      <td>{% if row.get("page") %}<a href="{{ row.page }}">{{ row.experiment }}</a>{% else %}{{ row.experiment }}{% endif %}</td>
      <td>{% if row.get("claim") %}<code>{{ row.claim }}</code>{% else %}–{% endif %}</td>
      <td class="num">{{ cell(row.get("observed")) }}</td>
      <td><span class="badge {{ 'good' if row.get('status') == 'reproduced' else ('none' if row.get('status') == 'no claim' else 'bad') }}">{{ row.get("status", "?") }}</span>{% if row.get("reason") %} <span class="small muted">{{ row.reason }}</span>{% endif %}</td>
      <td class="num">{{ cell(row.get("seconds")) }}</td>
    </tr>
  {% endfor %}
  </tbody>
</table></div>
{% else %}
<p class="note">No reproduction report yet: <code>ai-scratch reproduce --all</code> fits every experiment and checks its claim
(<code>--quick</code> for a smoke run).</p>
{% endif %}

<h2 id="claims">Every model's claims</h2>
<p class="small muted">Each experiment states what its paper claims; the outcome is that of its last local fit.
Fit one with <code>ai-scratch fit --config &lt;experiment&gt;</code>.</p>
<div class="table-wrap"><table class="claims stack">
  <thead><tr><th>experiment</th><th>claim</th><th>last local fit</th></tr></thead>
  {% for card in cards %}
  <tbody>
    <tr class="group"><th colspan="3" scope="rowgroup"><a href="module-{{ card.module }}.html#{{ card.name }}">{{ card.full_name }}</a>
      <span class="muted small">{{ card.year_introduced }}, module {{ card.module }}</span></th></tr>
    {{ experiment_rows(card.experiments, short=true) }}
  </tbody>
  {% endfor %}
</table></div>

<h2 id="runs">Every run</h2>
{% if runs %}
{{ runs_table(runs) }}
{% else %}
<p class="note">No run in <code>{{ runs_dir }}</code> yet: <code>ai-scratch fit --config perceptron/xor_weakness</code> writes one.</p>
{% endif %}
{% endblock %}
"""

MODULE = """\
{% extends "base.html.j2" %}
{% from "macros.html.j2" import verdict, runs_table, table, experiment_rows %}
{% block main %}
<h1>{{ title }}</h1>
<p class="lead">{% for card in module.models %}<a href="#{{ card.name }}">{{ card.full_name }}</a> ({{ card.year_introduced }}){{ ", " if not loop.last }}{% endfor %}</p>

{% if module.models %}<p><a href="insights-{{ module.number }}.html">Insight report</a>: this module's claims beside the papers' headline results, with their margins.</p>{% endif %}

<h2 id="comparison">Side by side</h2>
{% if comparison.exists %}
<p class="small muted">{% if comparison.about %}{{ comparison.about }}. {% endif %}From <code>{{ comparison.folder }}</code> (<code>{{ comparison.command }}</code>).</p>
<div class="figures">
{% for figure in comparison.figures %}
  <figure><img src="{{ figure.src }}" alt="{{ figure.caption }}"><figcaption>{{ figure.caption }}</figcaption></figure>
{% endfor %}
</div>
{% for data in comparison.tables %}
<h3>{{ data.name }}</h3>
{{ table(data.columns, data.rows) }}
{% endfor %}
{% elif comparison.command %}
<p class="note">Not drawn yet: <code>{{ comparison.command }}</code> ({{ comparison.about }}) writes its figure and table under
<code>{{ runs_dir }}/comparisons/module-{{ module.number }}/</code>.</p>
{% else %}
<p class="muted">This module has no comparison.</p>
{% endif %}

{% for card in module.models %}
<section class="model" id="{{ card.name }}">
  <h2>{{ card.full_name }} <span class="muted small">({{ card.year_introduced }}, <code>{{ card.name }}</code>)</span></h2>
  <p>{{ card.authors | join(", ") }}, “{{ card.paper_title }}”.</p>
  <dl class="facts">
    <dt>architecture</dt><dd>{{ card.architecture_type }}</dd>
    <dt>learns by</dt><dd>{{ card.learning_algorithm }}; loss {{ card.loss_function }}; optimizer {{ card.optimizer }}</dd>
    <dt>at the paper's size</dt><dd>{{ human(card.paper_parameters) }} parameters, {{ human(card.paper_flops) }} FLOPs per example</dd>
    <dt>here</dt><dd>{% if card.default_experiment %}{% if card.default_parameters is not none %}{{ "{:,}".format(card.default_parameters) }} parameters in {% endif %}<code>{{ card.default_experiment }}</code>{% else %}no experiment yet{% endif %}</dd>
    <dt>code</dt><dd><code>{{ card.source_file }}</code>: {{ card.lines_of_code }} lines of code ({{ card.lines }} with the paper's text)</dd>
    <dt>difficulty</dt><dd>{{ card.difficulty_level }}; training takes {{ card.estimated_training_time }}</dd>
  </dl>
  <h3>Key innovations</h3>
  <ul>{% for item in card.key_innovations %}<li>{{ item }}</li>{% endfor %}</ul>
  <h3>What you will learn ({{ card.objectives | selectattr("met") | list | length }} of {{ card.objectives | length }} shown here)</h3>
  <ul class="objectives">
  {% for row in card.objectives %}
    <li><span class="mark {{ 'good' if row.met else 'none' }}" aria-label="{{ 'met' if row.met else 'not met yet' }}">{{ "✓" if row.met else "○" }}</span>{{ row.objective }}
      <span class="small muted">{% if row.experiments %}({{ row.experiments | join(", ") }}){% else %}(no experiment shows it yet){% endif %}</span></li>
  {% endfor %}
  </ul>
  <p class="small muted">✓: an experiment that shows it reproduced its claim in its last local fit.</p>
  <h3>Experiments</h3>
  <div class="table-wrap"><table class="stack">
    <thead><tr><th>experiment</th><th>claim</th><th>last local fit</th></tr></thead>
    <tbody>
    {{ experiment_rows(card.experiments) }}
    </tbody>
  </table></div>
  {% set own = module.runs | selectattr("model", "equalto", card.name) | list %}
  <h3>Runs ({{ own | length }})</h3>
  {% if own %}{{ runs_table(own) }}{% else %}<p class="muted small">None yet: <code>ai-scratch fit --config {{ card.default_experiment or card.name }}</code>.</p>{% endif %}
</section>
{% endfor %}
{% endblock %}
"""

INSIGHTS = """\
{% extends "base.html.j2" %}
{% block main %}
<h1>{{ title }}</h1>
{% set fitted = module.insights | rejectattr("verdict", "equalto", "not fitted") | list %}
{% set held = fitted | selectattr("verdict", "equalto", "reproduced") | list %}
<p class="lead">{% if fitted %}{{ held | length }} of {{ fitted | length }} claims fitted here reproduced
({{ module.insights | length }} claims in all), in {{ "%.0f" | format(fitted | map(attribute="seconds") | map("default", 0, true) | sum) }} s of fitting.
{% else %}None of the {{ module.insights | length }} claims has been fitted here yet: <code>ai-scratch reproduce module-{{ module.number }}</code> fits them all.{% endif %}
The same report as markdown: <a href="{{ markdown }}">{{ markdown }}</a>.</p>
<p class="small muted">Margin: how far the observed value lies on the claimed side of the bar (negative: the claim failed).</p>
<div class="table-wrap"><table class="stack">
  <thead><tr><th>experiment</th><th>what the paper showed</th><th>claimed here</th><th class="num">observed</th><th class="num">margin</th><th class="num wide-only">seconds</th><th>verdict</th></tr></thead>
  <tbody>
  {% for row in module.insights %}
    <tr>
      <td>{{ row.experiment | breakable }} <span class="badge kind">{{ row.kind }}</span><br><span class="small muted">{{ row.model }}</span></td>
      <td class="small paper">{{ row.paper }}</td>
      <td><code>{{ row.claim }}</code></td>
      <td class="num">{{ cell(row.observed) }}</td>
      <td class="num">{{ "–" if row.margin is none else "%+.3g" | format(row.margin) }}</td>
      <td class="num wide-only">{{ cell(row.seconds) }}</td>
      <td><span class="badge {{ 'good' if row.verdict == 'reproduced' else ('none' if row.verdict == 'not fitted' else 'bad') }}">{{ row.verdict }}</span></td>
    </tr>
  {% endfor %}
  </tbody>
</table></div>
{% endblock %}
"""

RUN = """\
{% extends "base.html.j2" %}
{% from "macros.html.j2" import verdict %}
{% block head %}<script src="assets/plotly.min.js"></script>{% endblock %}
{% block main %}
<p class="small"><a href="index.html">overview</a>{% if run.module %} › <a href="module-{{ run.module }}.html#{{ run.model }}">module {{ run.module }}: {{ card.full_name }}</a>{% endif %} › {{ run.relative }}</p>
<h1>{{ run.name }} <span class="muted">{{ run.version }}</span></h1>
<p class="lead">{% if run.section.get("kind") %}<span class="badge kind">{{ run.section.kind }}</span> {% endif %}{{ run.section.get("description") or "" }}</p>

{% set outcome = run.outcome %}
<div class="verdict {{ 'none' if outcome is none else ('warn' if outcome.observed is none else ('good' if outcome.reproduced else 'bad')) }}">
  <p><strong>Claim:</strong> {% if run.claim %}<code>{{ run.claim }}</code>{% else %}none{% endif %} &nbsp; {{ verdict(outcome, "no claim recorded") }}</p>
  {% if outcome %}
  {% if outcome.observed is not none %}
  <p>Observed <strong>{{ outcome.observed | number }}</strong> at the end of fit; the paper's claim: {{ run.claim or (outcome.expected | number) }}.</p>
  {% else %}
  <p>Not checked: the fit never logged the claim's metric (a fit shorter than the interval between its validations, for one).</p>
  {% endif %}
  {% elif run.claim %}
  <p class="small">The fit recorded no verdict (it stopped before its end, or was not checked).</p>
  {% endif %}
</div>

<dl class="facts">
  {% if model_summary %}<dt>model</dt><dd><code>{{ model_summary }}</code></dd>{% endif %}
  {% if data_summary %}<dt>data</dt><dd><code>{{ data_summary }}</code></dd>{% endif %}
  <dt>epochs</dt><dd>{{ run.epochs if run.epochs is not none else "–" }}{% if max_epochs %} of {{ max_epochs }}{% endif %}</dd>
  <dt>written</dt><dd>{{ run.when | when }}</dd>
  <dt>folder</dt><dd><code>{{ run.folder }}</code></dd>
  {% if run.checkpoints %}<dt>checkpoints</dt><dd>{% for name in run.checkpoints %}<code>{{ name }}</code>{{ ", " if not loop.last }}{% endfor %}</dd>{% endif %}
</dl>

<h2 id="metrics">Metrics</h2>
{% if charts %}
<p class="small muted">Hover (or tap) a point for its value; drag to zoom, double-click to reset.</p>
<div class="charts">
{% for chart in charts %}
  <div class="chart" id="chart-{{ loop.index }}" data-family="{{ chart.family }}"></div>
{% endfor %}
</div>
<script>
(function () {
  var figures = [{% for chart in charts %}{{ chart.json | safe }}{{ "," if not loop.last }}{% endfor %}];
  figures.forEach(function (figure, index) {
    Plotly.newPlot("chart-" + (index + 1), figure.data, figure.layout, {responsive: true, displaylogo: false});
  });
})();
</script>
{% else %}
<p class="muted">The run logged no metric.</p>
{% endif %}

<h2 id="figures">Figures</h2>
{% if figures %}
<div class="figures">
{% for figure in figures %}
  <figure><img src="{{ figure.src }}" alt="{{ figure.caption }}"><figcaption>{{ figure.caption }}</figcaption></figure>
{% endfor %}
</div>
{% else %}
<p class="muted">No figures (the fit ran with <code>--figures=false</code>, or the model draws none).</p>
{% endif %}

<h2 id="config">Config</h2>
{% if run.config_text %}
<details><summary>config.yaml, as LightningCLI saved it ({{ run.config_text.splitlines() | length }} lines)</summary>
<pre>{{ run.config_text }}</pre>
</details>
<p class="small muted">Fit it again: <code>ai-scratch fit --config {{ run.folder }}/config.yaml</code></p>
{% else %}
<p class="muted">No config.yaml in the run's folder.</p>
{% endif %}
{% endblock %}
"""

TEMPLATES = {"base.html.j2": BASE, "macros.html.j2": MACROS, "index.html.j2": INDEX, "module.html.j2": MODULE, "insights.html.j2": INSIGHTS, "run.html.j2": RUN}


# ---------------------------------------------------------------------- command line
def main(args: list[str] | None = None) -> int:
    """``ai-scratch dashboard [--runs_dir runs] [--out runs/dashboard] [--models NAME ...]``."""
    from ai_scratch.cli import OneLineArgumentParser, fail

    parser = OneLineArgumentParser(
        prog="ai-scratch dashboard",
        description="Build a static HTML site of the local runs: the capability matrix and every model's claims, a page "
        "per module (its models' cards and its comparison) and a page per run (its config, its claim, its metrics as "
        "interactive charts, its figures). It needs no network: open its index.html in a browser.",
    )
    parser.add_argument("--runs_dir", default="runs", help="where ai-scratch fit wrote its runs (default: %(default)s)")
    parser.add_argument("--out", default=None, help="folder of the site, replaced at each build (default: RUNS_DIR/dashboard)")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME", help="only these models (default: every model)")
    parser.add_argument("--wandb", action="store_true", help="also save one W&B Report per module (needs a wandb login, the network "
                        "and the reports extra: pip install 'ai-scratch[reports]')")
    parser.add_argument("--wandb_entity", default=None, help="the reports' entity (default: your wandb default entity)")
    options = parser.parse_args(sys.argv[1:] if args is None else args)
    out = Path(options.out) if options.out else Path(options.runs_dir) / "dashboard"
    try:
        index = build(options.runs_dir, out, options.models)
    except (FileNotFoundError, FileExistsError) as error:
        fail(str(error))
    except KeyError as error:
        fail(error.args[0])
    pages = len(list(index.parent.glob("*.html")))
    print(f"[dashboard] {pages} pages in {index.parent}; open {index.resolve().as_uri()}")
    if options.wandb:  # after the site: a failure here loses nothing that was built
        from ai_scratch.reports import ReportsUnavailable, save_reports

        try:
            urls = save_reports(model_cards(Path(options.runs_dir), options.models), options.wandb_entity)
        except ReportsUnavailable as error:
            fail(f"the site is built, the W&B Reports are not: {error}", status=1)
        for url in urls:
            print(f"[dashboard] W&B Report: {url}")
    return 0


__all__ = ["build", "main", "find_runs", "metric_family", "metric_families", "json_table", "read_matrix"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
