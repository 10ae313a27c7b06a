"""What every comparison does first: fit some experiment configs, as ``ai-scratch fit`` fits them, and
read back what each run logged.

A comparison that turns on a contrast between runs (plain-20 against ResNet-32, ReLU against
sigmoid) fits each run's own config, in this process, exactly as the command line does, then draws
them on one plot from their ``metrics.csv``::

    from ai_scratch.comparisons.runs import fit_experiment

    plain = fit_experiment("resnet/degradation_plain20", seed=0, root="runs/comparisons/module-2")
    plain.curve("train_error")         # [(epoch, value), ...], one point per epoch
    plain.last("test_accuracy")        # the last value logged
    plain.claim_result                 # the config's claim, checked by the fit

``quick=True`` runs the fit at the smoke sizes of ``ai-scratch reproduce --quick`` (one epoch of two
batches): the figure and the table are drawn, but nothing is expected of the numbers. Each fit's
output (Lightning's notices) goes to ``<root>/logs/<model>.<experiment>.log``, not the terminal.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_scratch.analysis import COMPARISON_PROJECT
from ai_scratch.experiment import ClaimResult
from ai_scratch.registry import find_config

#: The smoke sizes of ``ai-scratch reproduce --quick``, the same for every comparison.
QUICK = [
    "--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=1", "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2",
]  # fmt: skip
#: Progress bars and model summaries would interleave with the comparison's own lines.
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@dataclass
class FittedRun:
    """One finished fit: its experiment, where it wrote its logs, its claim's verdict, and its metrics."""

    experiment: str
    log_dir: Path
    claim_result: ClaimResult | None
    seconds: float
    rows: list[dict[str, str]] = field(default_factory=list, repr=False)

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` for every row of ``metrics.csv`` that logged ``metric`` (per-epoch
        metrics appear once per epoch)."""
        return [(int(row["epoch"]), float(row[metric])) for row in self.rows if row.get(metric) not in (None, "")]

    def last(self, metric: str) -> float:
        """The last value of ``metric`` the run logged; NaN when it never logged it."""
        values = self.curve(metric)
        return values[-1][1] if values else math.nan

    def tested_checkpoint(self) -> Path:
        """The checkpoint the run's test used: the best by the config's monitor (``last.ckpt`` when
        the fit kept no best)."""
        folder = self.log_dir / "checkpoints"
        best = sorted(folder.glob("best*.ckpt"))
        if best:
            return best[-1]
        if (folder / "last.ckpt").is_file():
            return folder / "last.ckpt"
        raise FileNotFoundError(f"the run {self.experiment} left no checkpoint in {folder}")

    @property
    def reproduced(self) -> bool | None:
        return None if self.claim_result is None else self.claim_result.reproduced


@dataclass(frozen=True)
class ContrastRun:
    """One run of a comparison with several contrasts: its key (in the table and in wandb), how the
    figure names it, its config, the contrast it belongs to, and its colour."""

    key: str
    label: str
    config: str
    contrast: str
    color: str


def read_metrics(log_dir: str | Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (Lightning's CSV logger), as strings."""
    with Path(log_dir, "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def fit_experiment(
    experiment: str,
    *,
    seed: int | None = None,
    quick: bool = False,
    root: str | Path = "runs/comparisons",
    overrides: Sequence[str] = (),
    figures: bool = False,
) -> FittedRun:
    """``ai-scratch fit --config <experiment>`` in this process; its logs under ``root``.

    Args:
        experiment: a shipped config's name (``resnet/degradation_plain20``) or a YAML path.
        seed: ``--seed_everything``; ``None`` keeps the config's own seed.
        quick: smoke sizes (:data:`QUICK`).
        root: the runs' ``default_root_dir``; the run lands in ``<root>/<model>/<experiment>/version_N``.
        overrides: more command-line options, as ``ai-scratch fit`` takes them (``--model.activation=sigmoid``).
        figures: also draw the run's own figures.

    Raises:
        FileNotFoundError: no such config.
        RuntimeError: the fit failed (the last lines of its output say why).
    """
    from ai_scratch.cli import main as ai_scratch
    from ai_scratch.reproduce import fresh_state, output_to

    path = find_config(experiment) or Path(experiment)
    if not path.is_file():
        raise FileNotFoundError(f"no experiment config {experiment!r} (ai-scratch list shows them)")
    name = f"{path.parent.name}/{path.stem}"
    args = ["fit", "--config", str(path), *QUIET, f"--trainer.default_root_dir={root}", f"--figures={str(figures).lower()}"]
    if seed is not None:
        args.append(f"--seed_everything={seed}")
    if quick:
        args += QUICK
    args += list(overrides)
    log_file = Path(root, "logs", f"{name.replace('/', '.')}.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as stream, fresh_state():
        print("$ ai-scratch " + " ".join(args), file=stream, flush=True)
        try:
            with output_to(stream):
                cli = ai_scratch(args)
        except (Exception, SystemExit) as error:
            stream.flush()
            tail = " | ".join(log_file.read_text(encoding="utf-8").strip().splitlines()[-3:])
            raise RuntimeError(f"the fit of {name} failed ({type(error).__name__}): {tail} (whole log: {log_file})") from error
    log_dir = Path(cli.log_dir)
    return FittedRun(name, log_dir, cli.claim_result, time.perf_counter() - start, read_metrics(log_dir))


def as_rows(runs: dict[str, FittedRun], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One table row per run: its label, experiment, last value of each metric, claim verdict, seconds."""
    rows = []
    for label, run in runs.items():
        row: dict[str, Any] = {"run": label, "experiment": run.experiment}
        row.update({metric: run.last(metric) for metric in metrics})
        row["claim"] = str(run.claim_result.claim) if run.claim_result else None
        row["reproduced"] = run.reproduced
        row["seconds"] = round(run.seconds, 1)
        rows.append(row)
    return rows


def comparison_parser(module: int | str, description: str, contrasts: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The options every ``ai-scratch compare module-<n>`` (``module`` a number) or ``ai-scratch
    compare <name>`` (``module`` a name: ``history``) takes: ``--seed``, ``--out``, ``--quick``,
    ``--wandb`` and ``--wandb_mode``; with ``contrasts`` (name: what it shows, in the order of the
    figure), ``--contrast NAME``, repeatable, to draw only some (:func:`chosen_contrasts`). A
    comparison adds its own."""
    from ai_scratch.cli import OneLineArgumentParser

    name = f"module-{module}" if isinstance(module, int) else module
    parser = OneLineArgumentParser(prog=f"ai-scratch compare {name}", description=description)
    if contrasts:
        parser.add_argument("--contrast", action="append", choices=list(contrasts), dest="contrasts",
                            help="draw only this contrast (repeatable; default: all): " +
                            "; ".join(f"{name}: {what}" for name, what in contrasts.items()))  # fmt: skip
    parser.add_argument("--seed", type=_non_negative, default=0, help="seed of the data and of every model's weights (default: %(default)s)")
    parser.add_argument("--out", default=f"runs/comparisons/{name}", help="folder for the figures, the tables and the runs (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (one epoch of two batches per run): draws everything, shows nothing")
    parser.add_argument("--wandb", action="store_true", help=f"also log the figure and the table to the wandb project {COMPARISON_PROJECT}")
    parser.add_argument("--wandb_mode", default=None, help="online, offline or disabled (default: WANDB_MODE, else online)")
    return parser


def chosen_contrasts(options: argparse.Namespace, contrasts: Sequence[str]) -> tuple[str, ...]:
    """The contrasts ``--contrast`` chose (all of them when it was not given), in the figure's order."""
    return tuple(name for name in contrasts if name in (options.contrasts or contrasts))


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def log_comparison(
    module: int,
    name: str,
    *,
    files: Sequence[str | Path],
    rows: list[dict[str, Any]],
    images: dict[str, str | Path],
    config: dict[str, Any],
    models: Sequence[str],
    mode: str | None = None,
) -> str | None:
    """A comparison's figure, table and files as one run of the project ``ai-from-scratch-comparison``
    (group ``module-<n>-<module name>``, job type ``comparison``), its files an ``analysis``
    artifact (:func:`ai_scratch.analysis.log_analysis`). Prints and returns where the run is.
    An unknown mode ends the command with one line."""
    from ai_scratch.analysis import log_analysis
    from ai_scratch.info import CATEGORIES, MODULES
    from ai_scratch.tracking import TrackingError

    numbers = {f"{row['run']}/{key}": value for row in rows for key, value in row.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    try:
        where = log_analysis(
            COMPARISON_PROJECT, name, files=files, table=rows, mode=mode, metadata=numbers,
            job_type="comparison", group=f"module-{module}-{MODULES[module]}", table_key="comparison",
            tags=[f"module-{module}", CATEGORIES[module], "comparison", name, *models], config=config, images=images,
        )  # fmt: skip
    except TrackingError as error:
        raise SystemExit(f"ai-scratch: error: {error}") from None
    if where:
        print(f"[compare] wandb: {where}", flush=True)
    return where
