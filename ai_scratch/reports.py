"""W&B Reports: one per module of the history, built from the model cards, for users who track online.

``ai-scratch dashboard --wandb`` writes the local site and then saves, with the user's wandb
credentials, one report per module in the project ``ai-from-scratch-comparison``. A report tells the
module's story from the runs that ``ai-scratch fit --wandb`` and ``ai-scratch compare module-N
--wandb`` tracked, in the projects and groups of the naming conventions:

* for each model, in the order of the history: its paper, what it brought, the learning objectives
  (checked where a local fit reproduced an experiment that shows them), and a panel grid over its
  own project ``ai-from-scratch-<model>``: the losses and the per-epoch metrics of its claims against
  the epoch, the final value of every claim as bars, one line or bar per run (an experiment);
* the module's comparison: the runs of group ``module-<n>-<name>`` in ``ai-from-scratch-comparison``,
  with their figures.

The reports are built with the ``wandb-workspaces`` package (the optional extra
``pip install 'ai-scratch[reports]'``); building one needs no network, saving it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai_scratch.analysis import COMPARISON_PROJECT
from ai_scratch.info import MODULES

#: What a report plots for every model besides its claims' metrics.
LOSSES = ("train_loss", "val_loss")


class ReportsUnavailable(RuntimeError):
    """The reports cannot be built or saved here; the message says what to do."""


def _reports_api() -> Any:
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as error:
        raise ReportsUnavailable("W&B Reports need the wandb-workspaces package: pip install 'ai-scratch[reports]'") from error
    return wr


def claim_metrics(card: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The metrics of a model's claims: those logged every epoch (``train_``, ``val_``), drawn as
    curves, and those logged once at the end (``test_`` and the rest), drawn as bars."""
    metrics = list(dict.fromkeys(entry["claim"].split()[0] for entry in card["experiments"] if entry["claim"]))
    per_epoch = [metric for metric in metrics if metric.startswith(("train_", "val_"))]
    return per_epoch, [metric for metric in metrics if metric not in per_epoch]


def model_blocks(card: dict[str, Any], entity: str) -> list[Any]:
    """A model's section of its module's report."""
    wr = _reports_api()
    per_epoch, final = claim_metrics(card)
    panels = [wr.LinePlot(title="losses", x="epoch", y=list(LOSSES), title_x="epoch")]
    if per_epoch:
        panels.append(wr.LinePlot(title="the claims' metrics", x="epoch", y=per_epoch, title_x="epoch"))
    panels.append(wr.BarPlot(title="each claim: what the run observed", metrics=[wr.SummaryMetric("claim/observed")]))
    if final:
        panels.append(wr.BarPlot(title="final values", metrics=[wr.SummaryMetric(metric) for metric in final]))
    runs = wr.Runset(entity=entity, project=f"ai-from-scratch-{card['name']}", name=f"{card['full_name']} runs")
    claims = [f"{entry['name']}: {entry['kind']}, claim {entry['claim']}" for entry in card["experiments"] if entry["claim"]]
    return [
        wr.H2(f"{card['full_name']} ({card['year_introduced']})"),
        wr.P(f"{', '.join(card['authors'])}, \"{card['paper_title']}\". {card['architecture_type']}, "
             f"learning by {card['learning_algorithm']}."),  # fmt: skip
        wr.H3("What it brought"),
        wr.UnorderedList(items=list(card["key_innovations"])),
        wr.H3("What you will learn (checked: shown by a reproduced claim in a local fit)"),
        wr.CheckedList(items=[wr.CheckedListItem(text=row["objective"], checked=row["met"]) for row in card["objectives"]]),
        wr.H3("Its experiments and their claims"),
        wr.UnorderedList(items=claims or ["(no claim yet)"]),
        wr.PanelGrid(runsets=[runs], panels=panels),
    ]


def module_report(module: int, cards: Sequence[dict[str, Any]], entity: str) -> Any:
    """The report of module ``module`` from the cards of its models (:func:`ai_scratch.cards.all_cards`)."""
    wr = _reports_api()
    if module not in MODULES:
        raise ValueError(f"module must be one of {sorted(MODULES)}, got {module}")
    own = sorted((card for card in cards if card["module"] == module), key=lambda card: card["year_introduced"])
    if not own:
        raise ValueError(f"no model of module {module} among the cards")
    name = MODULES[module]
    years = f"{own[0]['year_introduced']}-{own[-1]['year_introduced']}"
    group = f"module-{module}-{name}"
    comparison = wr.Runset(entity=entity, project=COMPARISON_PROJECT, name=f"compare module-{module}", filters=f"Group == '{group}'")
    blocks: list[Any] = [
        wr.H1(f"Module {module}: {name.replace('-', ' ')} ({years})"),
        wr.P(f"{len(own)} models, each written from its paper: " + ", ".join(f"{card['full_name']} ({card['year_introduced']})" for card in own)
             + ". Every run below was trained by ai-scratch fit --wandb; each claim is checked at the end of its fit."),  # fmt: skip
        wr.TableOfContents(),
    ]
    for card in own:
        blocks += model_blocks(card, entity)
    blocks += [
        wr.H2("Side by side"),
        wr.P(f"ai-scratch compare module-{module} --wandb puts the models of this module on one figure (group {group})."),
        wr.PanelGrid(runsets=[comparison], panels=[wr.MediaBrowser(title="comparison figures", media_keys=["figures"])]),
    ]
    return wr.Report(
        project=COMPARISON_PROJECT, entity=entity, title=f"ai-scratch, module {module}: {name}",
        description=f"The {name.replace('-', ' ')} of the history of neural networks, reproduced: papers, claims, runs.",
        blocks=blocks, width="fluid",
    )  # fmt: skip


def save_reports(cards: Sequence[dict[str, Any]], entity: str | None = None) -> list[str]:
    """Save one report per module that has models, with the user's credentials; their URLs.

    Raises:
        ReportsUnavailable: wandb-workspaces missing, or no credentials (the message says what to do).
    """
    _reports_api()
    import wandb

    try:
        entity = entity or wandb.Api().default_entity
    except Exception as error:  # wandb's own errors for missing keys and unreachable servers vary
        raise ReportsUnavailable(f"saving W&B Reports needs a wandb login and the network ({type(error).__name__}: {error})") from error
    if not entity:
        raise ReportsUnavailable("saving W&B Reports needs a wandb entity: wandb login, or --wandb_entity")
    urls = []
    for module in sorted({card["module"] for card in cards}):
        report = module_report(module, cards, entity)
        report.save()
        urls.append(report.url)
    return urls
