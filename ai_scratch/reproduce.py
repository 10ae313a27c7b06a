"""``ai-scratch reproduce``: run the experiments, check every historical claim, write one report.

Each experiment config (``configs/<model>/<experiment>.yaml``) states a claim of the history, a
strength or a weakness of its model, and ``ai-scratch fit`` says at its end whether the run
reproduced it. ``reproduce`` runs the fits one after the other and collects the verdicts::

    ai-scratch reproduce --all                          # every experiment of every model
    ai-scratch reproduce perceptron mlp                 # the experiments of two models
    ai-scratch reproduce module-2                       # those of the CNN Revolution
    ai-scratch reproduce perceptron/xor_weakness        # one experiment (or the path of a YAML file)
    ai-scratch reproduce --all --quick                  # smoke sizes: does everything still run?
    ai-scratch reproduce module-1 --wandb               # each fit tracked, the report in wandb too

As each experiment ends, its row of the table is printed: the claim, the value observed, the
verdict and the seconds it took. At the end ``runs/reproduce/report.md`` (for a reader) and
``report.json`` (for a program) hold the whole table; each fit's own output (Lightning's notices,
warnings, a traceback) goes to ``runs/reproduce/logs/<model>.<experiment>.log``, and its figures and
checkpoints to its usual ``runs/<model>/<experiment>/version_N/``.

The exit status is 0 when every claim was reproduced, 1 when one was not or an experiment crashed
(its reason in one line; the others still run) and 2 for bad input (an unknown target, said before
anything trains). An experiment without a claim is reported as ``no claim``, not as a failure.
With ``--quick`` every fit runs at smoke sizes (one epoch of two batches): the claims are shown,
but such short runs cannot reproduce them, so only a crash fails the command.

With ``--wandb`` each fit is tracked as ``ai-scratch fit --wandb`` tracks it (its own project,
``ai-from-scratch-{model}``), and the table goes to the project ``ai-from-scratch-comparison``: a
run named ``reproduce-<targets>`` (job type ``reproduce``) with the table and the report files as an
``analysis`` artifact (:func:`ai_scratch.analysis.log_analysis`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import yaml

from ai_scratch.analysis import COMPARISON_PROJECT, log_analysis
from ai_scratch.cli import OneLineArgumentParser
from ai_scratch.registry import experiments, models
from ai_scratch.tracking import TrackingError, requested_mode

#: Lightning's progress bars and model summary would drown the table; figures stay (``--figures``).
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

#: ``--quick``: the smoke sizes of the tests, the same for every model. One epoch of two batches,
#: validated (some configs validate only every 25 epochs) and tested on two batches.
QUICK = [
    "--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2",
]  # fmt: skip

#: The verdicts of a row, and which of them fail the command.
REPRODUCED, NOT_REPRODUCED, NO_CLAIM, CRASHED, INTERRUPTED = "reproduced", "not reproduced", "no claim", "crashed", "interrupted"

#: What ``lightning.seed_everything`` leaves in the environment (for the data loaders' workers).
SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")

#: Loggers whose console handlers a fit's output goes through (Lightning's notices, torchmetrics').
CAPTURED_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics")

QUICK_NOTE = (
    "Quick mode: every experiment ran at smoke sizes (1 epoch, 2 batches of training, validation and "
    "test data), to check that everything still runs. The claims are shown, but such short runs are not "
    "expected to reproduce them: only a crash fails a quick run."
)


class UnknownTarget(ValueError):
    """A target that names no model, module, experiment or YAML file."""


# ---------------------------------------------------------------------- which experiments
def model_of(entry: dict[str, Any]) -> str:
    """The model an experiment belongs to: the folder of its config (``perceptron``)."""
    return entry["name"].split("/", 1)[0]


def yaml_experiment(path: Path) -> dict[str, Any]:
    """A YAML file of the user's own as an entry like :func:`ai_scratch.registry.experiments`'."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UnknownTarget(f"{path}: not a readable YAML file ({str(error).splitlines()[0]})") from error
    experiment = (config.get("experiment") if isinstance(config, dict) else None) or {}
    claim = experiment.get("claim")
    return {
        "name": str(path),
        "path": str(path.resolve()),
        "kind": experiment.get("kind", "strength"),
        "claim": f"{claim['metric']} {claim['comparison']} {claim['value']}" if isinstance(claim, dict) and {"metric", "comparison", "value"} <= set(claim) else None,
    }


def select(targets: list[str], everything: bool = False) -> list[dict[str, Any]]:
    """The experiments that ``targets`` name, in the order of the registry, each once.

    A target is a model (``perceptron``: its experiments), ``module-N`` (the experiments of the
    models of module N), an experiment (``perceptron/xor_weakness``, as ``ai-scratch list`` names
    it) or the path of a YAML file. ``everything`` selects every experiment.

    Raises:
        UnknownTarget: a target that names nothing, with what exists, in one line.
    """
    known = experiments()
    if everything:
        return known
    by_name = {entry["name"]: entry for entry in known}
    model_names = list(dict.fromkeys(model_of(entry) for entry in known))
    modules = {}
    for info in models():
        modules.setdefault(info.module, []).append(info.name)
    chosen: dict[str, dict[str, Any]] = {}
    for target in targets:
        name = target.removeprefix("configs/").removesuffix(".yaml")
        if name in by_name:
            found = [by_name[name]]
        elif name in model_names:
            found = [entry for entry in known if model_of(entry) == name]
        elif target.startswith("module-"):
            number = target.removeprefix("module-")
            members = modules.get(int(number), []) if number.isdigit() else []
            found = [entry for entry in known if model_of(entry) in members]
            if not found:
                raise UnknownTarget(
                    f"{target} has no experiments: the modules with experiments are "
                    + ", ".join(f"module-{n} ({', '.join(names)})" for n, names in sorted(modules.items()))
                )
        elif target.endswith((".yaml", ".yml")) and Path(target).is_file():
            found = [yaml_experiment(Path(target))]
        else:
            raise UnknownTarget(
                f"unknown target {target!r}: give --all, a model ({', '.join(model_names)}), "
                f"a module ({', '.join(f'module-{n}' for n in sorted(modules))}), an experiment such as "
                f"{known[0]['name'] if known else 'perceptron/xor_weakness'} (ai-scratch list names them all) or a YAML file"
            )
        for entry in found:
            chosen.setdefault(entry["name"], entry)
    return list(chosen.values())


# ---------------------------------------------------------------------- running one experiment
@dataclass
class Row:
    """One experiment's line of the report."""

    experiment: str
    model: str
    kind: str
    claim: str | None
    status: str
    observed: float | None = None
    seconds: float = 0.0
    log_dir: str | None = None
    log_file: str | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        """Whether this row fails a full run (a quick run fails on crashes only)."""
        return self.status in (NOT_REPRODUCED, CRASHED)


@contextlib.contextmanager
def output_to(stream: TextIO) -> Iterator[None]:
    """Send everything a fit prints or logs to ``stream``: ``print`` and warnings through
    ``sys.stdout``/``sys.stderr``, Lightning's notices through its loggers' console handlers (which
    hold the stream they were given when Lightning was imported)."""
    handlers = [
        handler
        for name in CAPTURED_LOGGERS
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]
    previous = [handler.setStream(stream) for handler in handlers]
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        for handler, old in zip(handlers, previous):
            if old is not None:
                handler.setStream(old)


@contextlib.contextmanager
def fresh_state() -> Iterator[None]:
    """Leave the process as the fit found it: the seed that Lightning keeps in the environment for
    its data workers, torch's global flags; what the fit left behind is collected. Every config sets
    its own seed."""
    import torch

    environment = {key: os.environ.get(key) for key in SEED_VARIABLES}
    deterministic, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    try:
        yield
    finally:
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)
        gc.collect()


def crash_reason(error: BaseException, output: str) -> str:
    """One line: the CLI's own error line when it wrote one, else the exception itself."""
    said = [line.removeprefix("ai-scratch: error: ") for line in output.splitlines() if line.startswith("ai-scratch: error: ")]
    if said:
        return said[-1]
    if isinstance(error, SystemExit):
        return f"exit status {error.code}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def fit_args(entry: dict[str, Any], options: argparse.Namespace) -> list[str]:
    """The ``ai-scratch fit`` command line of one experiment."""
    args = ["fit", "--config", entry["path"], *QUIET, "--figures", "true" if options.figures else "false"]
    if options.quick:
        args += QUICK
    if options.wandb:
        args += ["--wandb", f"--wandb_tags=[reproduce{', quick' if options.quick else ''}]"]
        if options.wandb_mode:
            args += ["--wandb_mode", options.wandb_mode]
    return args


def run_experiment(entry: dict[str, Any], options: argparse.Namespace, log_file: Path) -> Row:
    """``ai-scratch fit`` of one experiment, in this process, its output in ``log_file``."""
    from ai_scratch.cli import main as ai_scratch

    row = Row(entry["name"], model_of(entry), entry["kind"], entry["claim"], NO_CLAIM, log_file=str(log_file))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as stream, fresh_state():
        args = fit_args(entry, options)
        print("$ ai-scratch " + " ".join(args), file=stream, flush=True)
        try:
            with output_to(stream):
                cli = ai_scratch(args)
        except (Exception, SystemExit) as error:
            traceback.print_exception(error, file=stream)
            stream.flush()
            row.status, row.reason = CRASHED, crash_reason(error, log_file.read_text(encoding="utf-8"))
        else:
            row.log_dir = cli.log_dir if cli is not None else None
            result = cli.claim_result if cli is not None else None
            if result is not None:
                row.claim, row.observed = str(result.claim), result.observed
                row.status = REPRODUCED if result.reproduced else NOT_REPRODUCED
                if result.observed is None:
                    row.reason = f"{result.claim.metric} was not logged"
            elif entry["claim"]:
                row.status, row.reason = NOT_REPRODUCED, "the fit ended without checking its claim"
    row.seconds = time.perf_counter() - start
    return row


# ---------------------------------------------------------------------- the table and the report
COLUMNS = (("experiment", 0), ("kind", 9), ("claim", 32), ("observed", 10), ("result", 15), ("seconds", 8))


def table_header(width: int) -> str:
    return "  ".join(f"{name:<{width if name == 'experiment' else size}}" for name, size in COLUMNS).rstrip()


def table_line(row: Row, width: int) -> str:
    observed = "-" if row.observed is None else f"{row.observed:.4f}"
    cells = (row.experiment, row.kind, row.claim or "-", observed, row.status, f"{row.seconds:.1f}")
    line = "  ".join(f"{cell:<{width if name == 'experiment' else size}}" for (name, size), cell in zip(COLUMNS, cells)).rstrip()
    return line + (f"\n    {row.reason}" if row.reason else "")


def counts(rows: list[Row]) -> dict[str, int]:
    """How many rows have each verdict, by key (``not_reproduced`` for ``not reproduced``)."""
    statuses = (REPRODUCED, NOT_REPRODUCED, NO_CLAIM, CRASHED, INTERRUPTED)
    return {status.replace(" ", "_"): sum(row.status == status for row in rows) for status in statuses}


def passed(rows: list[Row], quick: bool) -> bool:
    """A full run passes when nothing crashed and every claim was reproduced; a quick one when
    nothing crashed."""
    return not any(row.status in (CRASHED, INTERRUPTED) or (not quick and row.failed) for row in rows)


def environment() -> dict[str, str]:
    """What the numbers were measured with."""
    import lightning
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def report(rows: list[Row], options: argparse.Namespace, started: datetime, seconds: float, complete: bool) -> dict[str, Any]:
    """Everything ``report.json`` holds."""
    return {
        "command": "ai-scratch reproduce " + " ".join(options.argv),
        "targets": options.names,
        "quick": options.quick,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "complete": complete,
        "passed": passed(rows, options.quick),
        "counts": counts(rows),
        "environment": environment(),
        "rows": [as_record(row) for row in rows],
    }


def as_record(row: Row) -> dict[str, Any]:
    """A row as plain JSON: a metric that is not a finite number becomes its text (``"nan"``)."""
    observed = row.observed if row.observed is None or math.isfinite(row.observed) else str(row.observed)
    return {**asdict(row), "observed": observed, "seconds": round(row.seconds, 2)}


def markdown(data: dict[str, Any]) -> str:
    """``report.md``: the same as ``report.json``, for a reader."""
    verdict = "PASSED" if data["passed"] else "FAILED"
    count = data["counts"]
    lines = [
        f"# ai-scratch reproduce: {', '.join(data['targets'])}{' (quick)' if data['quick'] else ''}",
        "",
        f"`{data['command']}`, started {data['started']}, {data['seconds']:.0f} s"
        + ("" if data["complete"] else " (stopped before the end)")
        + f": **{verdict}**: {count['reproduced']} reproduced, {count['not_reproduced']} not reproduced, "
        f"{count['no_claim']} without a claim, {count['crashed']} crashed"
        + (f", {count['interrupted']} interrupted" if count["interrupted"] else "")
        + ".",
        "",
    ]
    if data["quick"]:
        lines += [f"> {QUICK_NOTE}", ""]
    lines += [
        "| experiment | kind | claim | observed | result | seconds | run |",
        "|---|---|---|---|---|---:|---|",
    ]
    for row in data["rows"]:
        observed = "-" if row["observed"] is None else row["observed"] if isinstance(row["observed"], str) else f"{row['observed']:.4f}"
        result = row["status"] + (f": {row['reason']}" if row["reason"] else "")
        where = f"`{row['log_dir']}`" if row["log_dir"] else f"`{row['log_file']}`"
        claim = f"`{row['claim']}`" if row["claim"] else "-"
        lines.append(f"| {row['experiment']} | {row['kind']} | {claim} | {observed} | {result.replace('|', '/')} | {row['seconds']:.1f} | {where} |")
    env = data["environment"]
    lines += [
        "",
        "Each run's metrics, checkpoints and figures are in its folder (the last column); the output of each "
        "fit is in `logs/` beside this report.",
        "",
        "Environment: " + ", ".join(f"{key} {value}" for key, value in env.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(out: Path, data: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(data), encoding="utf-8")
    return [out / "report.md", out / "report.json"]


# ---------------------------------------------------------------------- the command
def parser() -> argparse.ArgumentParser:
    def boolean(text: str) -> bool:
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")

    command = OneLineArgumentParser(
        prog="ai-scratch reproduce",
        description="Run experiments one after the other, check the historical claim of each and write "
        "a report (report.md, report.json). Exit status 0 when every claim was reproduced, 1 when one was "
        "not or an experiment crashed, 2 for bad input.",
        epilog="Examples: ai-scratch reproduce --all; ai-scratch reproduce module-1 lenet5; "
        "ai-scratch reproduce perceptron/xor_weakness --wandb. ai-scratch list names the models and experiments.",
    )
    command.add_argument("targets", nargs="*", metavar="TARGET",
                         help="a model (perceptron), module-N, an experiment (perceptron/xor_weakness) or a YAML file; several allowed")  # fmt: skip
    command.add_argument("--all", action="store_true", help="every experiment of every model")
    command.add_argument("--quick", action="store_true",
                         help="smoke sizes (1 epoch, 2 batches), to check that everything still runs: the claims are "
                         "shown, but a claim that is not reproduced does not fail the command, only a crash does")  # fmt: skip
    command.add_argument("--output", default=os.path.join("runs", "reproduce"), metavar="DIR",
                         help="folder of report.md, report.json and logs/ (default: runs/reproduce)")
    command.add_argument("--figures", type=boolean, default=True, metavar="{true,false}", help="draw each run's figures (default: true)")
    command.add_argument("--wandb", action="store_true",
                         help=f"track each fit in its model's wandb project, and the report in {COMPARISON_PROJECT}")  # fmt: skip
    command.add_argument("--wandb_mode", default=None, metavar="MODE", help="online, offline or disabled (default: WANDB_MODE, else online)")
    return command


def run_name(options: argparse.Namespace) -> str:
    """The comparison run's name: ``reproduce-all``, ``reproduce-module-1+lenet5`` (``-quick`` added)."""
    return "reproduce-" + "+".join(options.names) + ("-quick" if options.quick else "")


class _Interrupted:
    """Remembers a Ctrl-C: Lightning ends an interrupted fit with ``SystemExit(1)``, which would look
    like a crash of that one experiment; a Ctrl-C means the whole command should stop."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.seen = True
        signal.default_int_handler(signum, frame)


def main(args: list[str] | None = None) -> int:
    """``ai-scratch reproduce [TARGET ...] [--all] [--quick] [--output DIR] [--wandb]``; the exit status."""
    from tqdm import tqdm

    argv = list(sys.argv[1:] if args is None else args)
    command = parser()
    options = command.parse_args(argv)
    options.argv = argv
    if not options.targets and not options.all:
        command.error("give what to reproduce: --all, a model, module-N, an experiment or a YAML file (ai-scratch list names them)")
    try:
        chosen = select(options.targets, options.all)
        if options.wandb:
            requested_mode(options.wandb_mode)
    except (UnknownTarget, TrackingError) as error:
        command.error(str(error))
    options.names = ["all"] if options.all else options.targets
    out = Path(options.output)
    width = max(len(entry["name"]) for entry in chosen)
    started, start = datetime.now(timezone.utc).astimezone(), time.perf_counter()
    rows: list[Row] = []

    interrupted = _Interrupted()
    previous_handler = signal.signal(signal.SIGINT, interrupted) if _main_thread() else None
    if options.quick:
        tqdm.write(f"[reproduce] {QUICK_NOTE}")
    tqdm.write(table_header(width))
    bar = tqdm(total=len(chosen), desc="reproduce", unit="experiment", disable=None, file=sys.stderr)
    try:
        for entry in chosen:
            bar.set_postfix_str(entry["name"])
            log_file = out / "logs" / (entry["name"].replace("/", ".").replace(os.sep, ".").lstrip(".") + ".log")
            try:
                row = run_experiment(entry, options, log_file)
            except KeyboardInterrupt:
                interrupted.seen = True
                row = Row(entry["name"], model_of(entry), entry["kind"], entry["claim"], INTERRUPTED, log_file=str(log_file))
            if interrupted.seen:
                row.status, row.reason = INTERRUPTED, "stopped by Ctrl-C"
            rows.append(row)
            bar.update(1)
            tqdm.write(table_line(row, width))
            write_report(out, report(rows, options, started, time.perf_counter() - start, complete=False))
            if interrupted.seen:
                break
    finally:
        bar.close()
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    data = report(rows, options, started, time.perf_counter() - start, complete=not interrupted.seen)
    files = write_report(out, data)
    count = data["counts"]
    print(
        f"[reproduce] {count['reproduced']} reproduced, {count['not_reproduced']} not reproduced, {count['no_claim']} without a claim, "
        f"{count['crashed']} crashed in {data['seconds']:.0f} s{' (quick)' if options.quick else ''}: {'PASSED' if data['passed'] else 'FAILED'}; "
        f"report: {files[0]}, {files[1]}",
        flush=True,
    )
    if options.wandb and not interrupted.seen:
        where = log_analysis(
            COMPARISON_PROJECT, run_name(options), files,
            table=data["rows"],
            metadata={key: value for key, value in data.items() if key != "rows"},
            mode=options.wandb_mode, job_type="reproduce", table_key="claims", tags=["reproduce", *(["quick"] if options.quick else [])],
            config={"targets": options.names, "quick": options.quick, "experiments": [entry["name"] for entry in chosen]},
        )  # fmt: skip
        if where:
            print(f"[reproduce] the table and the report in wandb ({COMPARISON_PROJECT}): {where}", flush=True)
    if interrupted.seen:
        return 130
    return 0 if data["passed"] else 1


def _main_thread() -> bool:
    """Signal handlers can be set from the main thread only (a notebook's worker thread cannot)."""
    return threading.current_thread() is threading.main_thread()
