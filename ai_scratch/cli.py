"""``ai-scratch``: one command to train, test and track every model of the history.

::

    ai-scratch list                                              # the models and experiments
    ai-scratch compare module-1                                  # Perceptron, ADALINE, MLP side by side
    ai-scratch fit --config configs/perceptron/xor_weakness.yaml # train, figures, checkpoints
    ai-scratch fit --config configs/lenet5/mnist.yaml --wandb    # ... tracked in wandb
    ai-scratch fit --config configs/lenet5/mnist.yaml --print_config
    ai-scratch test --config configs/lenet5/mnist.yaml --ckpt_path runs/.../checkpoints/last.ckpt

This is Lightning's :class:`~lightning.pytorch.cli.LightningCLI` (``fit``, ``validate``, ``test``,
``predict``; ``--print_config``; any model or datamodule class by import path or class name) with
what the project adds:

* an ``experiment:`` section (:class:`~ai_scratch.experiment.Experiment`): name, strength or
  weakness, and the claim that the end of ``fit`` checks and reports in one line;
* ``--wandb``: a :class:`~lightning.pytorch.loggers.WandbLogger` in project
  ``ai-from-scratch-{model}``, the run named after the experiment, the tags and group of the
  planning document, and the callbacks of ``callbacks/`` (watching, checkpoint artifacts,
  metadata). The mode comes from ``--wandb_mode`` or ``WANDB_MODE``; online without credentials
  or network falls back to offline with one warning;
* always: a local CSV logger under ``runs/<model>/<experiment>/version_N``, checkpoints there,
  and the figures as PNG files there.
"""

from __future__ import annotations

import gc
import importlib
import logging
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

import datamodules  # noqa: F401  (registers the datamodules for class names on the command line)
from ai_scratch import wandb_startup
from ai_scratch.experiment import ClaimResult, Experiment
from ai_scratch.numpy_adapter import NumPyModel
from ai_scratch.registry import PROJECT_ROOT, experiments, models
from ai_scratch.tracking import TrackingError, resolve_mode
from callbacks import WandbCheckpointArtifacts, WandbRunMetadata, WandbWatch, default_figures
from callbacks._wandb import module_info, wandb_installed, wandb_logger, warn_once
from callbacks.dispatch import skip_unused_batch_hooks
from callbacks.figures import ConvFilters, GradientFlow

DEFAULT_ROOT = "runs"


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


# Lightning advertises its hosted logger at every start; not what a student came for.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropLitLoggerTip())

# Noise for the small, in-memory data sets of this project.
for _message in (
    r".*does not have many workers.*",
    r"The number of training batches .* is smaller than the logging interval.*",
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
    key = head.removeprefix("Parser key ").strip('"') if head.startswith("Parser key") else None
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
        print(f"ai-scratch: error: {one_line(message)}", file=sys.stderr)
        sys.exit(2)


class SaveConfigToRun(SaveConfigCallback):
    """Lightning's config.yaml in the log dir, and the same config in the wandb run's config."""

    config_path: Path | None = None

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if not self.already_saved and self.save_to_log_dir and not self.multifile:
            # trainer.log_dir is a collective call under DDP: on every rank, here, not in save_config
            self.config_path = Path(trainer.log_dir or trainer.default_root_dir) / self.config_filename
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        logger = wandb_logger(trainer)
        if logger is None:
            return
        if self.config_path is not None and self.config_path.is_file():
            # the file Lightning has just written, read back with libyaml: ~2 ms, where dumping the
            # config again through the parser takes ~40 ms
            config = yaml.load(self.config_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        else:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        logger.experiment.config.update({"cli": config}, allow_val_change=True)


class AIScratchCLI(LightningCLI):
    """LightningCLI with experiments, claims, wandb tracking and figures. See the module docstring."""

    def __init__(self, args: list[str] | None = None, run: bool = True, freeze_gc: bool = False) -> None:
        """``freeze_gc``: exempt the objects alive when the subcommand starts from garbage
        collection for the rest of the process (the console command, which ends with the run).
        Not for a process that goes on: Python would not collect a later run's garbage."""
        self.freeze_gc = freeze_gc
        self.claim_result: ClaimResult | None = None
        self.log_dir: str | None = None
        self.wandb_mode: str | None = None
        super().__init__(
            model_class=None,
            datamodule_class=None,
            save_config_callback=SaveConfigToRun,
            parser_class=OneLineParser,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"default_root_dir": DEFAULT_ROOT},
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------ parser
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(Experiment, "experiment", fail_untyped=True)
        parser.add_argument("--wandb", action="store_true", help="Track the run in Weights & Biases.")
        parser.add_argument("--wandb_mode", type=str | None, default=None, help="online, offline or disabled (default: WANDB_MODE, else online).")
        parser.add_argument("--wandb_project", type=str | None, default=None, help="wandb project (default: ai-from-scratch-{model}).")
        parser.add_argument("--watch", type=Literal["gradients", "parameters", "all", "none"], default="gradients", help="What WandbWatch logs as histograms in the wandb history.")
        parser.add_argument("--watch_freq", type=int, default=100, help="WandbWatch logs histograms every this many optimizer steps.")
        parser.add_argument("--figures", type=bool, default=True, help="Draw the figures (PNG in the log dir, images in wandb).")
        parser.add_argument("--figures_every_n_epochs", type=int | None, default=None, help="Also draw figures every this many epochs.")

    # ------------------------------------------------------------------ instantiation
    def _subcommand_config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
            if isinstance(self.model, NumPyModel) and self._get(self.config_init, "optimizer"):
                raise ConfigurationError(f"{type(self.model).__name__} learns by its own NumPy rule; --optimizer does not apply to it")
        except TrackingError as error:
            raise ConfigurationError(str(error)) from error
        except (ValueError, TypeError, KeyError, FileNotFoundError) as error:
            if isinstance(error, ConfigurationError):
                raise
            raise ConfigurationError(one_line(str(error))) from error

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._subcommand_config()
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        experiment: Experiment = init["experiment"]
        trainer_config = init["trainer"]
        info = module_info(self.model)
        model_name = str(info.get("name", type(self.model).__name__.lower()))
        root = trainer_config.get("default_root_dir") or DEFAULT_ROOT

        loggers = self._local_loggers(trainer_config.get("logger"), root, model_name, experiment)
        callbacks: list[Callback] = list(trainer_config.get("callbacks") or [])

        if config.wandb:
            tracking = self._wandb_tracking(config, experiment, model_name, root)
            if tracking is not None:
                logger, tracking_callbacks = tracking
                loggers.append(logger)
                callbacks += tracking_callbacks
        if config.figures:
            skipped = set(getattr(self.model, "skip_generic_figures", ()))
            for figure in default_figures(config.figures_every_n_epochs):
                if figure.name in skipped:
                    continue
                if isinstance(figure, ConvFilters):
                    layers = getattr(self.model, "feature_map_layers", None)
                    figure.layers = list(layers) if layers else None
                if isinstance(figure, GradientFlow) and getattr(self.model, "gradient_flow_every_n_steps", None):
                    figure.every_n_steps = int(self.model.gradient_flow_every_n_steps)
                callbacks.append(figure)
            callbacks += list(self.model.figure_callbacks()) if hasattr(self.model, "figure_callbacks") else []
        if trainer_config.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks += self._default_checkpoints(experiment, trainer_config.get("max_epochs"))
        kwargs.update(logger=loggers or False, callbacks=callbacks)
        trainer = super().instantiate_trainer(**kwargs)
        skip_unused_batch_hooks(trainer.callbacks)  # a dozen callbacks would cost ~0.2 ms per batch
        return trainer

    def _local_loggers(self, configured: Any, root: str, model_name: str, experiment: Experiment) -> list[Logger]:
        if configured is False:
            return []
        if configured is None or configured is True:
            return [CSVLogger(save_dir=root, name=f"{model_name}/{experiment.name}")]
        return list(configured) if isinstance(configured, (list, tuple)) else [configured]

    def _wandb_tracking(
        self, config: Any, experiment: Experiment, model_name: str, root: str
    ) -> tuple[Logger, list[Callback]] | None:
        if not wandb_installed():
            warn_once("--wandb: wandb is not installed, so this run is logged locally only (pip install wandb).")
            return None
        mode, reason = resolve_mode(config.wandb_mode)
        if reason:
            warn_once(reason)
        self.wandb_mode = mode
        if mode != "disabled":
            wandb_startup.install()  # the run starts cheaper, records the same (no-op if done already)
        from lightning.pytorch.loggers import WandbLogger

        metadata = WandbRunMetadata(
            tags=experiment.run_tags(),
            group=experiment.run_group(model_name),
            job_type=self.subcommand or "fit",
            notes=experiment.description or None,
            config={"experiment": experiment.to_dict()},
        )
        logger = WandbLogger(
            project=config.wandb_project or f"ai-from-scratch-{model_name}",
            name=experiment.name,
            save_dir=os.environ.get("WANDB_DIR") or root,
            mode=mode,
            **metadata.init_kwargs(self.model),
        )
        # Lightning passes anonymous=None, which current wandb answers with a deprecation warning.
        logger._wandb_init.pop("anonymous", None)
        callbacks: list[Callback] = [metadata, WandbCheckpointArtifacts()]
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
    def _run_subcommand(self, subcommand: str) -> None:
        self.log_dir = self.trainer.log_dir
        if self.trainer.is_global_zero:
            where = f"local logs in {self.log_dir}"
            if self.wandb_mode:
                where += f"; wandb {self.wandb_mode}"
            print(f"[ai-scratch] {subcommand}: {where}", flush=True)
        if self.freeze_gc:
            # Everything alive now (torch, Lightning, wandb, matplotlib, the parser: some 600,000
            # objects) lives until the process ends. Python's full garbage collection walks them
            # all whenever the run has made enough new objects, about 0.7 s each time on a small
            # CPU, and a tracked fit (wandb, the figures) makes enough for one every other run.
            # Frozen, they are skipped; what the run itself creates is still collected.
            gc.freeze()
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            self._finish_wandb(exit_code=1)
            raise
        self._finish_wandb(exit_code=0)

    def after_fit(self) -> None:
        experiment: Experiment = self.config_init[self.subcommand]["experiment"]
        if experiment.claim is None or self.trainer.interrupted:
            return
        metrics = dict(self.trainer.callback_metrics)
        if experiment.claim.metric.startswith("test_") and self.datamodule is not None:
            best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
            results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None, verbose=False)
            metrics.update(results[0] if results else {})
        self.claim_result = experiment.check(metrics)
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

    def _finish_wandb(self, exit_code: int) -> None:
        logger = wandb_logger(self.trainer)
        if logger is None or not self.trainer.is_global_zero or logger._experiment is None:
            return
        logger.experiment.finish(exit_code=exit_code)


# ---------------------------------------------------------------------- entry point
def _config_paths(args: list[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            paths.append(args[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def list_command() -> int:
    """Print the models and the experiment configs that exist."""
    print("Models")
    for info in models():
        print(f"  {info.name:<12} {info.full_name:<24} {info.year_introduced}  module {info.module} ({info.module_name}), {info.pattern}")
    print("\nExperiments (ai-scratch fit --config <path>)")
    entries = experiments()
    width = max((len(entry["path"]) for entry in entries), default=0)  # one column, however long the names
    for entry in entries:
        claim = f"  claim: {entry['claim']}" if entry["claim"] else ""
        print(f"  {entry['path']:<{width}} {entry['kind']:<9}{claim}")
    return 0


#: Figures that put several models side by side: ``ai-scratch compare <name>``.
COMPARISONS = {"module-1": "ai_scratch.foundations.module1"}


def compare_command(args: list[str]) -> int:
    """Run a comparison across models (its own options follow its name)."""
    if not args or args[0] not in COMPARISONS:
        given = f"unknown comparison {args[0]!r}" if args else "no comparison given"
        print(f"ai-scratch: error: {given}: choose from {', '.join(COMPARISONS)}", file=sys.stderr)
        return 2
    return importlib.import_module(COMPARISONS[args[0]]).main(args[1:])


def main(args: list[str] | None = None, freeze_gc: bool | None = None) -> AIScratchCLI | None:
    """Run ``ai-scratch`` with ``args`` (default: the command line); returns the CLI object (for
    tests and notebooks). The console script is :func:`ai_scratch.entry.console`, which imports
    wandb early when the command will track and then calls :func:`console`.

    ``freeze_gc`` (default: only for the console command, whose process ends with the run): see
    :class:`AIScratchCLI`.
    """
    from_command_line = args is None
    freeze_gc = from_command_line if freeze_gc is None else freeze_gc
    args = list(sys.argv[1:] if args is None else args)
    if args[:1] == ["list"]:
        list_command()
        return None
    if args[:1] == ["compare"]:
        sys.exit(compare_command(args[1:]))
    for path in _config_paths(args):
        if not os.path.isfile(path):
            hint = f" (did you mean configs/{path}?)" if (PROJECT_ROOT / "configs" / path).is_file() else " (ai-scratch list shows the configs)"
            print(f"ai-scratch: error: config file not found: {path}{hint}", file=sys.stderr)
            sys.exit(2)
    try:
        return AIScratchCLI(args=None if from_command_line else args, freeze_gc=freeze_gc)
    except ConfigurationError as error:
        print(f"ai-scratch: error: {error}", file=sys.stderr)
        sys.exit(2)


def console() -> int:
    """:func:`main` on the command line, exit status 0 (the console script, after
    :func:`ai_scratch.entry.console` has made its early imports).

    pip's wrapper calls ``sys.exit(console())``; given the CLI object that :func:`main` returns,
    sys.exit would print it and exit with status 1 after every successful run. Errors still exit
    with status 2 from inside :func:`main`.
    """
    main()
    return 0


if __name__ == "__main__":
    sys.exit(console())
