"""``ai-scratch``: one command to train, test and track every model of the history.

::

    ai-scratch list                                     # the models and experiments
    ai-scratch info lenet5                              # a model's card
    ai-scratch compare module-1                         # Perceptron, ADALINE, MLP side by side
    ai-scratch compare history                          # the capability matrix and the progression
    ai-scratch dashboard                                # a static site of runs/, opened offline
    ai-scratch fit --config perceptron/xor_weakness     # train: figures, checkpoints, metrics.csv
    ai-scratch fit --config lenet5/mnist --wandb        # ... tracked in wandb
    ai-scratch fit --config lenet5/mnist --print_config
    ai-scratch test --config lenet5/mnist --ckpt_path runs/lenet5/mnist/version_0/checkpoints/last.ckpt

This is Lightning's :class:`~lightning.pytorch.cli.LightningCLI` (``fit``, ``validate``, ``test``,
``predict``; ``--print_config``; any model or datamodule class by import path or class name) with
what the project adds:

* ``--config`` also takes an experiment's name (``perceptron/xor_weakness``): the experiment
  configs ship with the package, so a name works from any directory;
* an ``experiment:`` section (:class:`~ai_scratch.experiment.Experiment`): name, strength or
  weakness, and the claim that the end of ``fit`` checks and reports in one line;
* ``--wandb``: a :class:`~lightning.pytorch.loggers.WandbLogger` in project
  ``ai-from-scratch-{model}``, the run named after the experiment, the tags and group of the
  planning document, and the callbacks of ``callbacks/`` (watching, checkpoint artifacts,
  metadata). The mode comes from ``--wandb_mode`` or ``WANDB_MODE``; online without credentials
  or network falls back to offline with one warning;
* every wandb field of the planning document's ``TrainingConfig`` as a flag (``--wandb_name``,
  ``--wandb_tags``, ``--wandb_group``, ... ``--wandb_log_datasets``); the run's URL, or its offline
  folder and the ``wandb sync`` command, as the last line of a tracked run;
* ``fit --ckpt_path`` continues: the same local folder and the same wandb run (:mod:`ai_scratch.resume`);
* always: a CSV logger under ``runs/<model>/<experiment>/version_N``, checkpoints there (the best
  by the experiment's monitor, and ``last.ckpt``), the model's figures as PNG files there, and a
  stop at the first training loss that is not a finite number.

Bad input (a wrong value, an unknown class, a missing file, a checkpoint that cannot be read) ends
in one line on stderr and exit status 2; a training loss that diverges, in one line and status 1.
A model's own ``TypeError`` or a bug ends in its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
import sys
import time
import warnings
import zipfile
from typing import Any, Literal

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

import datamodules  # noqa: F401  (registers the datamodules for class names on the command line)
from ai_scratch.experiment import ClaimResult, Experiment
from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyModel
from ai_scratch.registry import COMPARISONS, experiments, find_config, models
from ai_scratch.resume import ContinueWandbSteps, RecordRun, RunRecord, continuing_csv_logger, read_record
from ai_scratch.tracking import TrackingError, resolve_mode
from ai_scratch.wandb_log import last_step, run_logs
from callbacks import (
    FigureCallback,
    WandbCheckpointArtifacts,
    WandbDatasetArtifact,
    WandbFigureArtifact,
    WandbRunMetadata,
    WandbWatch,
    default_figures,
)
from callbacks.wandb_helpers import module_info, wandb_installed, wandb_logger, warn_once
from callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss

DEFAULT_ROOT = "runs"


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


# Lightning advertises its hosted logger at every start; not what a student came for.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropLitLoggerTip())

# Noise for the small, in-memory data sets of this project; the CLI hands LightningCLI the command
# line itself (with experiment names resolved), and tests the best checkpoint of the first of its
# two ModelCheckpoints, on purpose; and Lightning's own use of a name that torch has deprecated.
for _message in (
    r".*does not have many workers.*",
    r"The number of training batches .* is smaller than the logging interval.*",
    r"LightningCLI's args parameter is intended to run from within Python",
    r".*is called with Trainer configured with multiple `ModelCheckpoint` callbacks.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
):
    warnings.filterwarnings("ignore", message=_message)


class ConfigurationError(ValueError):
    """A wrong configuration, reported in one line."""


def one_line(message: str) -> str:
    """Condense a jsonargparse error (a summary line and nested causes) into one readable line."""
    lines = [line.strip().lstrip("- ").strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    head = lines[0].rstrip(":").strip()
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), None)
    boilerplate = ("Given value", "Subtypes", "Errors", "Does not validate", "Expected a <class 'NoneType'>", "ValueError: Does not validate")
    causes = [line for line in lines[1:] if not line.startswith(boilerplate)]
    parsed = re.fullmatch(r'Parser key "([^"]+)":?\s*(.*)', head)
    key, cause_in_head = (parsed.group(1), parsed.group(2)) if parsed else (None, "")
    if key == "config" and cause_in_head.startswith("File does not exist"):
        return f"config file not found: {cause_in_head.split(':', 1)[1].strip()} (ai-scratch list names the experiments: --config perceptron/xor_weakness)"
    if key is not None and cause_in_head and not causes:
        return f"{key}: {cause_in_head}"
    if key in ("model", "data") and given and not given.startswith("Namespace("):
        kind = "model" if key == "model" else "datamodule"
        return f"unknown {kind} class {given!r}: give an import path or a class name (ai-scratch list shows the models)"
    if key is not None:
        if causes:
            cause = causes[-1]
            simple = re.fullmatch(r"Expected a <class '(?:[\w.]+\.)?(\w+)'>", cause)
            return f"{key}: expected {simple.group(1)}, got {given!r}" if simple and given else f"{key}: {cause}"
        subtypes = next((line for line in lines if line.startswith("Subtypes:")), "")
        expected = ", ".join(re.findall(r"<class '(?:[\w.]+\.)?(\w+)'>", subtypes)) or "another type"
        return f"{key}: expected {expected.replace('NoneType', 'null')}, got {given!r}"
    return causes[0] if head.startswith(("ValueError: Does not validate", "Does not validate")) and causes else head


class OneLineParser(LightningArgumentParser):
    """Report a parsing error in one line and exit with status 2, without the usage block.

    Set ``AI_SCRATCH_DEBUG=1`` for jsonargparse's full report.
    """

    def error(self, message: str, ex: Exception | None = None) -> None:  # type: ignore[override]
        if os.environ.get("AI_SCRATCH_DEBUG"):
            super().error(message, ex)
        fail(one_line(message))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description and epilog kept as written."""


DESCRIPTION = """\
ai-scratch: the history of neural networks, each model written from its paper and trained by
Lightning (LightningCLI), each experiment tracked in Weights & Biases.

  ai-scratch list                                  the models and experiments, with their claims
  ai-scratch info lenet5                           a model's card: paper, objectives, code, experiments
  ai-scratch compare module-1                      several models side by side
  ai-scratch compare history                       every model against shared tasks, by year
  ai-scratch dashboard                             a static site of the local runs (offline)
  ai-scratch fit --config perceptron/xor_weakness  train one experiment (figures, checkpoints)
  ai-scratch fit --config lenet5/mnist --wandb     ... tracked in wandb (--wandb_mode offline)
  ai-scratch fit --help                            every option: trainer, model, data, tracking
  ai-scratch reproduce --all                       every experiment's claim, one report
  ai-scratch sweep lenet5 --local --trials 20      a hyperparameter sweep (Optuna here, or wandb agent)"""

EPILOG = """\
list, info, compare, dashboard, reproduce and sweep are ai-scratch's own: `ai-scratch reproduce --help`, ...
fit, validate, test and predict are Lightning's, with --config taking an experiment's name,
--wandb and its options, --figures, and a claim checked at the end of fit."""


class SaveConfigToRun(SaveConfigCallback):
    """Lightning's config.yaml in the log dir, and the same config in the wandb run's config."""

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        logger = wandb_logger(trainer)
        if logger is not None:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            logger.experiment.config.update({"cli": config}, allow_val_change=True)


def section(config: Any) -> Any:
    """The part of a parsed (or instantiated) config that belongs to the subcommand being run."""
    subcommand = config.get("subcommand")
    return config[subcommand] if subcommand else config


#: What Lightning accepts as ``ckpt_path`` besides a file.
CHECKPOINT_KEYWORDS = ("best", "last", "hpc", "registry")


def check_checkpoint(path: str) -> None:
    """A ``ConfigurationError`` naming ``path`` when it is not a checkpoint that ``torch.load`` can
    read: missing, a folder, or not the zip archive that ``torch.save`` writes. Keywords and remote
    URLs are left to Lightning."""
    if path in CHECKPOINT_KEYWORDS or path.startswith("registry:") or "://" in path:
        return
    if not os.path.exists(path):
        raise ConfigurationError(f"--ckpt_path {path}: no such file")
    if not os.path.isfile(path):
        raise ConfigurationError(f"--ckpt_path {path}: a folder, not a checkpoint file")
    try:
        with zipfile.ZipFile(path) as archive:
            holds_pickle = any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigurationError(f"--ckpt_path {path}: not a checkpoint (torch.save writes a zip archive; this file is not one: {error})") from error
    if not holds_pickle:
        raise ConfigurationError(f"--ckpt_path {path}: a zip archive, but not one that torch.save wrote (no data.pkl inside)")


class AIScratchCLI(LightningCLI):
    """LightningCLI with experiments, claims, wandb tracking and figures. See the module docstring."""

    def __init__(self, args: list[str] | None = None, run: bool = True, extra_callbacks: list[Callback] | None = None) -> None:
        self.extra_callbacks = list(extra_callbacks or [])  # from Python: a sweep's pruning callback
        self.claim_result: ClaimResult | None = None
        self.log_dir: str | None = None
        self.wandb_mode: str | None = None
        super().__init__(
            model_class=None,
            datamodule_class=None,
            save_config_callback=SaveConfigToRun,
            parser_class=OneLineParser,
            parser_kwargs={"prog": "ai-scratch", "description": DESCRIPTION, "epilog": EPILOG, "formatter_class": HelpFormatter},
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"default_root_dir": DEFAULT_ROOT},
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------ parser
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(Experiment, "experiment", fail_untyped=True)
        tracking = parser.add_argument_group("Tracking in Weights & Biases (ai-scratch)")
        tracking.add_argument("--wandb", action="store_true", help="Track the run in Weights & Biases.")
        tracking.add_argument("--wandb_mode", type=str | None, default=None, help="online, offline or disabled (default: WANDB_MODE, else online; online without credentials or network falls back to offline).")
        tracking.add_argument("--wandb_project", type=str | None, default=None, help="wandb project (default: ai-from-scratch-{model}).")
        tracking.add_argument("--wandb_name", type=str | None, default=None, help="Run name (default: the experiment's name).")
        tracking.add_argument("--wandb_tags", type=list[str], default=[], help="Tags added to the automatic ones (model, module, experiment, ...).")
        tracking.add_argument("--wandb_notes", type=str | None, default=None, help="Run notes (default: the experiment's description).")
        tracking.add_argument("--wandb_group", type=str | None, default=None, help="Run group (default: {model}-strengths, {model}-weaknesses or the experiment's group).")
        tracking.add_argument("--wandb_job_type", type=str | None, default=None, help="Job type (default: the subcommand, fit or test ...).")
        tracking.add_argument("--wandb_resume", type=Literal["allow", "must", "never"], default="allow", help="fit --ckpt_path: continue the wandb run the checkpoint names (allow: when it names one; must: fail when it does not), or start a new run (never).")
        tracking.add_argument("--watch", type=Literal["gradients", "parameters", "all", "none"], default="gradients", help="What WandbWatch logs as histograms in the wandb history.")
        tracking.add_argument("--watch_freq", type=int, default=100, help="WandbWatch logs histograms every this many optimizer steps.")
        tracking.add_argument("--wandb_log_checkpoints", type=bool, default=True, help="Log every checkpoint and the final weights as versions of a model artifact.")
        tracking.add_argument("--wandb_log_visualizations", type=bool, default=True, help="Log the figures as images in the history and, at the end of fit, as one visualization artifact.")
        tracking.add_argument("--wandb_log_datasets", type=bool, default=False, help="Log the data the run trained on as a versioned dataset artifact.")
        figures = parser.add_argument_group("Figures (ai-scratch)")
        figures.add_argument("--figures", type=bool, default=True, help="Draw the model's figures (PNG in the log dir, images in wandb).")
        figures.add_argument("--figures_every_n_epochs", type=int | None, default=None, help="Also draw the figures every this many epochs.")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # before LightningCLI reads the checkpoint's hyperparameters, and before any run folder exists
        ckpt_path = section(self.config).get("ckpt_path")
        if ckpt_path:
            check_checkpoint(str(ckpt_path))

    # ------------------------------------------------------------------ instantiation

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as error:
            # jsonargparse wraps what a class raises: a model's or datamodule's check of its arguments
            # or a missing data file is bad input, said in one line; anything else is a bug, shown as itself
            cause = error
            while cause.__cause__ is not None:
                cause = cause.__cause__
            if not isinstance(cause, (ValueError, FileNotFoundError)):
                raise cause from None
            raise ConfigurationError(str(error) if isinstance(error, ConfigurationError) else one_line(str(error))) from error
        experiment: Experiment = section(self.config_init)["experiment"]
        info = getattr(self.model, "INFO", None)
        unknown = experiment.unknown_objectives(info.key_learning_objectives) if info is not None else []
        if unknown:
            raise ConfigurationError(
                f"experiment.objectives: {unknown[0]!r} is not a learning objective of {info.name}; its objectives are: "
                + "; ".join(info.key_learning_objectives)
            )
        if isinstance(self.model, NumPyModel) and section(self.config_init).get("optimizer"):
            raise ConfigurationError(f"{type(self.model).__name__} learns by its own NumPy rule; --optimizer does not apply to it")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = section(self.config)
        experiment: Experiment = section(self.config_init)["experiment"]
        trainer_config = section(self.config_init)["trainer"]
        info = module_info(self.model)
        model_name = str(info.get("name", type(self.model).__name__.lower()))
        root = trainer_config.get("default_root_dir") or DEFAULT_ROOT

        ckpt_path = config.get("ckpt_path")
        resumed = read_record(str(ckpt_path)) if self.subcommand == "fit" and ckpt_path and os.path.isfile(str(ckpt_path)) else None
        if resumed is not None:  # a resumed fit writes on into its own checkpoint folder, on purpose
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        loggers = self._local_loggers(trainer_config.get("logger"), root, model_name, experiment, resumed)
        callbacks: list[Callback] = [StopOnNonFiniteLoss(hint="try a smaller --model.learning_rate"), RecordRun()]
        if config.wandb:
            tracking = self._wandb_tracking(config, experiment, model_name, root, resumed)
            if tracking is not None:
                logger, tracking_callbacks = tracking
                loggers.append(logger)
                callbacks += tracking_callbacks
        if config.figures:
            figures = getattr(self.model, "figures", None)
            drawn = figures(config.figures_every_n_epochs) if callable(figures) else default_figures(config.figures_every_n_epochs)
            for figure in drawn:
                if isinstance(figure, FigureCallback):
                    figure.log_to_wandb = config.wandb_log_visualizations
            callbacks += drawn
        callbacks += self.extra_callbacks
        configured = list(trainer_config.get("callbacks") or [])
        if trainer_config.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in configured):
            callbacks += self._default_checkpoints(experiment, trainer_config.get("max_epochs"))
        kwargs.update(logger=loggers or False, callbacks=configured + callbacks)
        return super().instantiate_trainer(**kwargs)

    def _card(self) -> dict[str, Any]:
        """``{"card": ...}``: the model's card (:func:`ai_scratch.cards.static_card`, the part that
        needs no runs), for the run's config; nothing for a model without ``INFO``."""
        from ai_scratch.cards import static_card

        return {"card": static_card(type(self.model))} if isinstance(getattr(type(self.model), "INFO", None), ModelInfo) else {}

    def _local_loggers(self, configured: Any, root: str, model_name: str, experiment: Experiment, resumed: RunRecord | None) -> list[Logger]:
        """The CSV logger of ``runs/<model>/<experiment>/version_N``; a resumed fit's own folder."""
        if configured is False:
            return []
        if configured is None or configured is True:
            if resumed is not None and resumed.log_dir and os.path.isdir(resumed.log_dir):
                return [continuing_csv_logger(resumed)]
            return [CSVLogger(save_dir=root, name=f"{model_name}/{experiment.name}")]
        return list(configured) if isinstance(configured, (list, tuple)) else [configured]

    def _wandb_tracking(
        self, config: Any, experiment: Experiment, model_name: str, root: str, resumed: RunRecord | None
    ) -> tuple[Logger, list[Callback]] | None:
        if not wandb_installed():
            warn_once("--wandb: wandb is not installed, so this run is logged locally only (pip install wandb).")
            return None
        try:
            mode, reason = resolve_mode(config.wandb_mode)
        except TrackingError as error:
            raise ConfigurationError(str(error)) from error
        if reason:
            warn_once(reason)
        self.wandb_mode = mode
        from lightning.pytorch.loggers import WandbLogger

        metadata = WandbRunMetadata(
            tags=[*experiment.run_tags(), *config.wandb_tags],
            group=config.wandb_group or experiment.run_group(model_name),
            job_type=config.wandb_job_type or self.subcommand or "fit",
            notes=config.wandb_notes or experiment.description or None,
            config={"experiment": experiment.to_dict(), **self._card()},
        )
        save_dir = os.environ.get("WANDB_DIR") or root
        continued = resumed.wandb_id if resumed is not None and config.wandb_resume != "never" else None
        if config.wandb_resume == "must" and continued is None:
            raise ConfigurationError("--wandb_resume must: --ckpt_path names no wandb run to continue (give a checkpoint of a tracked fit)")
        logger = WandbLogger(
            project=config.wandb_project or (continued and resumed.wandb_project) or f"ai-from-scratch-{model_name}",
            name=config.wandb_name or experiment.name,
            save_dir=save_dir,
            mode=mode,
            **({"id": continued, "resume": "allow"} if continued else {}),
            **metadata.init_kwargs(self.model),
        )
        callbacks: list[Callback] = [metadata]
        if continued:
            callbacks.append(ContinueWandbSteps(last_step(run_logs(save_dir, continued)), resumed.epoch))
        if config.wandb_log_checkpoints:
            callbacks.append(WandbCheckpointArtifacts())
        if config.wandb_log_datasets:
            callbacks.append(WandbDatasetArtifact())
        if config.wandb_log_visualizations and config.figures:
            callbacks.append(WandbFigureArtifact())
        if config.watch != "none":
            callbacks.append(WandbWatch(log=config.watch, log_freq=config.watch_freq))
        return logger, callbacks

    @staticmethod
    def _default_checkpoints(experiment: Experiment, max_epochs: int | None) -> list[ModelCheckpoint]:
        """The best checkpoint by the experiment's monitor, and ``last.ckpt`` to resume from.

        The latest is written about ten times per fit: enough to resume, not a flood of artifact
        versions. The best comes first: ``trainer.checkpoint_callback`` and ``ckpt_path="best"`` use it.
        """
        every = max(1, math.ceil(max_epochs / 10)) if max_epochs and max_epochs > 0 else 1
        best = ModelCheckpoint(
            monitor=experiment.monitor,
            mode=experiment.monitor_mode,
            save_top_k=1,
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
        )
        latest = ModelCheckpoint(monitor=None, save_top_k=1, every_n_epochs=every, filename="last", enable_version_counter=False)
        return [best, latest]

    # ------------------------------------------------------------------ running
    def _announce(self) -> None:
        """Say where the run's local logs go (``trainer.log_dir`` is collective: every process asks)."""
        self.log_dir = self.trainer.log_dir
        if self.trainer.is_global_zero:
            where = f"local logs in {self.log_dir}" + (f"; wandb {self.wandb_mode}" if self.wandb_mode else "")
            print(f"[ai-scratch] {self.subcommand}: {where}", flush=True)

    before_validate = before_test = before_predict = _announce

    def before_fit(self) -> None:
        self._announce()
        self._fit_started = time.perf_counter()  # the claim records how long reproducing it took

    def after_fit(self) -> None:
        experiment: Experiment = section(self.config_init)["experiment"]
        if experiment.claim is None or self.trainer.interrupted:
            return
        metrics = dict(self.trainer.callback_metrics)
        if experiment.claim.metric.startswith("test_") and self.datamodule is not None:
            best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
            results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None, verbose=False)
            metrics.update(results[0] if results else {})
        self.claim_result = experiment.check(metrics)
        if self.claim_result is not None:
            self.claim_result.seconds = round(time.perf_counter() - self._fit_started, 2)
        if self.trainer.is_global_zero and self.claim_result is not None:
            print(self.claim_result.line(), flush=True)
            self._log_claim(self.claim_result)

    def _log_claim(self, result: ClaimResult) -> None:
        summary = result.summary()
        numeric = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float, bool))}
        for logger in self.trainer.loggers:
            if logger is wandb_logger(self.trainer):
                logger.experiment.summary.update(summary)
            else:
                logger.log_metrics(numeric, step=self.trainer.global_step)
                logger.save()


# ---------------------------------------------------------------------- list and compare
class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for ``list`` and ``compare``: an error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(message)


def list_command(args: list[str]) -> None:
    """``ai-scratch list``: the models, and the experiments with their claims."""
    OneLineArgumentParser(
        prog="ai-scratch list",
        description="List the models of the history and the experiment configs, with the claim each one checks. "
        "An experiment's name is what `ai-scratch fit --config` takes.",
    ).parse_args(args)
    print("Models")
    for info in models():
        print(f"  {info.name:<12} {info.full_name:<24} {info.year_introduced}  module {info.module} ({info.module_name}), {info.pattern}")
    print("\nExperiments (ai-scratch fit --config <name>)")
    entries = experiments()
    width = max((len(entry["name"]) for entry in entries), default=0)  # one column, however long the names
    for entry in entries:
        claim = f"  claim: {entry['claim']}" if entry["claim"] else ""
        print(f"  {entry['name']:<{width}} {entry['kind']:<9}{claim}")


def info_command(args: list[str]) -> None:
    """``ai-scratch info [MODEL]``: one model's card, or every model in a table."""
    parser = OneLineArgumentParser(
        prog="ai-scratch info",
        description="A model's card: its paper, what it brought, how it learns, what you will learn from it, the lines "
        "of code it took and its experiments with their claims. Without MODEL, every model in a table.",
    )
    parser.add_argument("model", nargs="?", help="a model's short name, as ai-scratch list shows it (perceptron, lenet5, bert)")
    parser.add_argument("--runs_dir", default=DEFAULT_ROOT, help="where local fits wrote their records, for each claim's last outcome (default: %(default)s)")
    parsed = parser.parse_args(args)
    from ai_scratch.cards import all_cards, model_card, render_card, render_table

    if parsed.model is None:
        print(render_table(all_cards(parsed.runs_dir)))
        return
    try:
        card = model_card(parsed.model, runs_dir=parsed.runs_dir)
    except KeyError as error:
        fail(error.args[0])
    print(render_card(card))


def compare_command(args: list[str]) -> int:
    """``ai-scratch compare NAME [its options]``: a figure that puts several models side by side."""
    parser = OneLineArgumentParser(
        prog="ai-scratch compare",
        description="Train several models on the same data and draw them side by side.",
        epilog="comparisons: " + "; ".join(f"{name} ({description})" for name, (_, description) in COMPARISONS.items())
        + ". Each has its own options: ai-scratch compare NAME --help.",
    )
    parser.add_argument("comparison", choices=list(COMPARISONS), help="which comparison")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the comparison's own options")
    parsed = parser.parse_args(args)
    module_name, _ = COMPARISONS[parsed.comparison]
    return importlib.import_module(module_name).main(parsed.options)


# ---------------------------------------------------------------------- entry point
def fail(message: str, status: int = 2) -> None:
    """End the command with one line on stderr."""
    print(f"ai-scratch: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def resolve_config_names(args: list[str]) -> list[str]:
    """``--config NAME`` (``perceptron/xor_weakness``, ``configs/perceptron/xor_weakness.yaml``) to
    the path of the experiment config that ships with the package, where ``NAME`` is no file here."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg.startswith("--config="):
            index, prefix, value = i, "--config=", arg.split("=", 1)[1]
        elif arg in ("--config", "-c") and i + 1 < len(resolved):
            index, prefix, value = i + 1, "", resolved[i + 1]
        else:
            continue
        found = None if os.path.isfile(value) else find_config(value)
        if found is not None:
            resolved[index] = f"{prefix}{found}"
    return resolved


def run_location(run: Any) -> str | None:
    """Where a wandb run can be found, in one line: its URL, or its offline folder and the command
    that uploads it; ``None`` for a disabled run."""
    if run.disabled:
        return None
    if run.offline:
        return f"[ai-scratch] wandb run {run.id} saved offline in {run.settings.sync_dir}; upload it with: wandb sync {run.settings.sync_dir}"
    return f"[ai-scratch] wandb run {run.id}: {run.url}"


def _finish_wandb(exit_code: int) -> None:
    """End the wandb run that the command started, if any, with its exit code (wandb's own exit
    handler would end it only when the process ends; a caller may run several commands), and say
    where it is."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        where = run_location(wandb.run)
        wandb.run.finish(exit_code=exit_code)
        if where:
            print(where, flush=True)


#: ai-scratch's own commands beside Lightning's: the module whose ``main(args) -> int`` runs each.
COMMANDS = {"sweep": "ai_scratch.sweep", "reproduce": "ai_scratch.reproduce", "dashboard": "ai_scratch.dashboard"}


def main(args: list[str] | None = None, extra_callbacks: list[Callback] | None = None) -> AIScratchCLI | None:
    """Run ``ai-scratch`` with ``args`` (default: the command line); returns the CLI object (for
    tests, notebooks, sweeps and ``reproduce``), or ``None`` for ``list``. ``extra_callbacks`` join
    the trainer's (a sweep's pruning callback)."""
    args = list(sys.argv[1:] if args is None else args)
    if args[:1] == ["list"]:
        list_command(args[1:])
        return None
    if args[:1] == ["info"]:
        info_command(args[1:])
        return None
    if args[:1] == ["compare"]:
        sys.exit(compare_command(args[1:]))
    if args[:1] and args[0] in COMMANDS:
        sys.exit(importlib.import_module(COMMANDS[args[0]]).main(args[1:]))
    try:
        cli = AIScratchCLI(args=resolve_config_names(args), extra_callbacks=extra_callbacks)
    except ConfigurationError as error:
        _finish_wandb(exit_code=2)
        fail(str(error))
    except NonFiniteLossError as error:
        _finish_wandb(exit_code=1)
        fail(str(error), status=1)
    except BaseException:
        _finish_wandb(exit_code=1)
        raise
    _finish_wandb(exit_code=0)
    return cli


def console() -> int:
    """:func:`main` on the command line, exit status 0 (the console script).

    pip's wrapper calls ``sys.exit(console())``; given the CLI object that :func:`main` returns,
    sys.exit would print it and exit with status 1 after every successful run. Errors exit with
    their own status from inside :func:`main`.
    """
    main()
    return 0


if __name__ == "__main__":
    sys.exit(console())
