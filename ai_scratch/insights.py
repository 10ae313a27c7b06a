"""Insight reports: each module's reproduced claims side by side with the papers' headline results.

For every experiment of a module's models the report sets what the paper showed (the config's
``experiment.paper_result``) beside what the project claims in miniature, what the last local fit
observed, by what margin the claim held or failed, and how many seconds the fit took (every fit
records its claim, and the seconds it took, in its ``metrics.csv``)::

    from ai_scratch.cards import all_cards
    from ai_scratch.insights import write_insights

    write_insights(all_cards("runs", sizes=False), "runs/dashboard/insights")   # module-1.md ... module-6.md

``ai-scratch dashboard`` writes them, and shows each as a page of the site.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ai_scratch.info import MODULES

#: A claim's direction: by how much the observed value is on the right side of the bar.
_SIGN = {">=": 1.0, ">": 1.0, "<=": -1.0, "<": -1.0}


def margin(claim: str, observed: float) -> float | None:
    """How far ``observed`` is on the claimed side of the bar of ``claim`` (``"val_accuracy >= 0.9"``):
    positive when the claim holds, negative when it fails; ``None`` for an equality claim."""
    _, comparison, value = claim.split()
    sign = _SIGN.get(comparison)
    return None if sign is None else sign * (observed - float(value))


def module_rows(module: int, cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per experiment with a claim, of the module's models in the order of the history."""
    rows = []
    for card in sorted((card for card in cards if card["module"] == module), key=lambda card: card["year_introduced"]):
        for entry in card["experiments"]:
            if not entry["claim"]:
                continue
            last = entry["last_run"]
            observed = last["observed"] if last else None
            rows.append({
                "model": card["full_name"], "experiment": entry["name"], "kind": entry["kind"],
                "paper": entry["paper_result"] or entry["description"], "claim": entry["claim"],
                "observed": observed, "margin": margin(entry["claim"], observed) if observed is not None else None,
                "seconds": last["seconds"] if last else None,
                "verdict": "not fitted" if last is None else "reproduced" if last["reproduced"] else "NOT reproduced",
            })  # fmt: skip
    return rows


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3g}" if signed else f"{value:.4g}"


def insights_markdown(module: int, cards: Sequence[dict[str, Any]]) -> str:
    """The module's insight report, as markdown."""
    rows = module_rows(module, cards)
    fitted = [row for row in rows if row["verdict"] != "not fitted"]
    reproduced = [row for row in fitted if row["verdict"] == "reproduced"]
    seconds = sum(row["seconds"] or 0.0 for row in fitted)
    lines = [
        f"# Module {module}: {MODULES[module].replace('-', ' ')}: what the papers showed, what reproduced here",
        "",
        f"{len(reproduced)} of {len(fitted)} claims fitted here reproduced ({len(rows)} claims in all), "
        f"in {seconds:.0f} s of fitting." if fitted else
        f"None of the {len(rows)} claims has been fitted here yet: `ai-scratch reproduce module-{module}` fits them all.",
        "",
        "Margin: how far the observed value lies on the claimed side of the bar (negative: the claim failed).",
        "",
        "| model | experiment | the paper | claimed here | observed | margin | seconds | verdict |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]  # fmt: skip
    for row in rows:
        paper = row["paper"].replace("|", "/") or "-"
        lines.append(
            f"| {row['model']} | {row['experiment']} | {paper} | `{row['claim']}` | {_number(row['observed'])} | "
            f"{_number(row['margin'], signed=True)} | {_number(row['seconds'])} | {row['verdict']} |"
        )
    failed = [row for row in fitted if row["verdict"] != "reproduced"]
    if failed:
        lines += ["", "Not reproduced in the last local fit:", ""]
        lines += [f"- {row['experiment']}: `{row['claim']}`, observed {_number(row['observed'])}" for row in failed]
    return "\n".join(lines) + "\n"


def write_insights(cards: Sequence[dict[str, Any]], out: str | Path) -> list[Path]:
    """``<out>/module-<n>.md`` for every module that has models; the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for module in sorted({card["module"] for card in cards}):
        path = out / f"module-{module}.md"
        path.write_text(insights_markdown(module, cards), encoding="utf-8")
        written.append(path)
    return written
