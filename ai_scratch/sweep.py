"""``ai-scratch sweep``: one sweep YAML, two engines, wandb's agent or Optuna here.

A sweep file (``configs/sweeps/<model>.yaml``) is a Weights & Biases sweep configuration::

    program: ai-scratch
    command: ["${env}", "ai-scratch", "fit", "--config", "configs/lenet5/mnist.yaml", "--wandb", "${args}"]
    method: bayes                                    # bayes, random or grid
    metric: {name: val_accuracy, goal: maximize}     # logged once per validation epoch
    parameters:                                      # flat dotted keys: LightningCLI's own flags
      model.learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
      data.batch_size: {values: [16, 32, 64, 128]}
      trainer.max_epochs: {distribution: int_uniform, min: 4, max: 20}
    early_terminate: {type: hyperband, min_iter: 3}

Either way the file is first checked as wandb checks it, with the schema of wandb's own sweep
engine (the ``sweeps`` package of ``wandb[sweeps]``): a file wandb would reject is one line and
exit status 2 before anything trains.

**With wandb** (many machines, a server that chooses)::

    wandb sweep configs/sweeps/lenet5.yaml          # registers the sweep, prints its id
    wandb agent <entity>/<project>/<sweep id>       # on every machine that should train

The server picks each run's values; the agent runs ``command`` with ``${args}`` replaced by
``--model.learning_rate=0.0031 --data.batch_size=64 ...``. ``${args}`` comes after ``--config``
because jsonargparse applies the arguments in order: the sweep's values override the config's.
The run's summary value of the metric (its last logged value) is what the search optimises, and
hyperband stops a run by the number of history rows that hold the metric, so each model logs it
once per validation epoch under exactly that name.

**With Optuna** (``--local``, one machine or several sharing a database, no server)::

    ai-scratch sweep configs/sweeps/lenet5.yaml --local --trials 20

reads the same file and maps it onto an Optuna study:

========================================  ==================================================
sweep YAML                                Optuna
========================================  ==================================================
``method: bayes / random / grid``         ``TPESampler`` / ``RandomSampler`` / ``GridSampler``
``metric: {name, goal}``                  the objective, ``direction`` = goal (default minimize)
``value: v``                              not sampled: ``--key=v`` in every trial
``values: [...]``                         ``suggest_categorical``
``uniform`` / ``int_uniform``             ``suggest_float`` / ``suggest_int``
``log_uniform_values``                    ``suggest_float(log=True)``
``log_uniform`` (exponents)               ``suggest_float(e**min, e**max, log=True)``
``inv_log_uniform(_values)``              ``suggest_float(log=True)`` (1/X log-uniform is log-uniform)
``q_uniform``                             ``suggest_float`` / ``suggest_int`` with ``step=q``
``early_terminate: hyperband``            ``HyperbandPruner``: ``min_iter`` -> ``min_resource``,
                                          ``eta`` -> ``reduction_factor``, ``max_iter`` (else the
                                          largest ``trainer.max_epochs``) -> ``max_resource``
``metric.target``                         the sweep stops once a trial reaches it
========================================  ==================================================

Distributions Optuna cannot sample (``normal``, ``beta``, ``q_log_uniform``, weighted
categoricals, nested parameters) are refused in one line before anything trains; they still work
with ``wandb agent``. A grid, as in wandb, takes ``values``, ``int_uniform`` (every integer) and
``q_uniform`` (``numpy.arange(min, max, q)``).

Each trial is a real ``ai-scratch fit`` in this process (:func:`ai_scratch.cli.main`) with the
command of the file, ``${args}`` filled as wandb's agent fills it, and, when the command tracks
the run (``--wandb``), ``--wandb_group <sweep name> --wandb_name <sweep name>-trial-<n>
--wandb_mode offline`` (``--wandb_mode`` to change). Optuna's ``PyTorchLightningPruningCallback``
reports the metric at every validation epoch and stops the trial when the pruner says so; its step
is Lightning's epoch number, where wandb counts validation epochs (the same when the model
validates every epoch, as the shipped sweeps do). The trial's value is the metric's last logged
value, as wandb's summary holds it. A trial whose fit fails (a sampled value the model refuses, a
diverging loss, an exception) is recorded as ``FAIL`` with its reason, and the sweep goes on;
Ctrl+C ends the sweep, the study kept.

The study lives in ``runs/sweeps/<sweep name>.db`` (SQLite; study name = sweep name), or in any
database that ``--storage`` names. ``--trials N`` runs trials until the study holds ``N`` finished
trials (completed, pruned or failed on their own; a trial stopped by Ctrl+C or a killed process is
not counted and its turn is run again), so the same command resumes an interrupted sweep, and
several processes given the same ``--storage`` share one study. At the end the best trial is printed
with the command that reproduces it, and the trials are written to
``runs/sweeps/<sweep name>-trials.csv`` and ``-trials.md``.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import signal
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from ai_scratch.cli import DEFAULT_ROOT, OneLineArgumentParser, fail, main as cli_main
from ai_scratch.registry import find_config

#: What ``--local`` puts in front of a trial's arguments in place of the command's first words.
PROGRAM = "ai-scratch"

#: wandb's command macros that ``--local`` understands; ``${args}`` is where the sampled flags go.
ENVIRONMENT_MACROS = ("${env}", "${interpreter}")
ARGS_MACRO = "${args}"


class SweepError(ValueError):
    """A sweep file or option that cannot be run, said in one line."""


# ---------------------------------------------------------------------- the sweep file
def sweep_violations(spec: Any) -> list[str]:
    """What wandb would reject in a sweep configuration, in its own words: the schema of wandb's
    sweep engine (the ``sweeps`` package, ``wandb[sweeps]``), and the rules that its engine applies
    when it starts (a bayes search, and hyperband, need a metric)."""
    if not isinstance(spec, dict):
        return ["a sweep is a mapping of keys (method, metric, parameters, ...)"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package's pydantic settings warn under pydantic 2
            from sweeps import schema_violations_from_proposed_config
    except ImportError as error:
        raise SweepError("checking a sweep file needs wandb's sweep engine: pip install 'wandb[sweeps]'") from error

    violations = list(dict.fromkeys(labelled(message, spec) for message in schema_violations_from_proposed_config(spec)))
    # "invalid hyperparameter configuration: a" only repeats "parameters.a: ..."
    named = {v.split(": ", 1)[0].removeprefix("parameters.") for v in violations if v.startswith("parameters.")}
    violations = [v for v in violations if v not in {f"invalid hyperparameter configuration: {name}" for name in named}]
    needs_metric = (["method bayes"] if spec.get("method") == "bayes" else []) + (["early_terminate"] if spec.get("early_terminate") else [])
    if needs_metric and not (isinstance(spec.get("metric"), dict) and spec["metric"].get("name")):
        verb = "needs" if len(needs_metric) == 1 else "need"
        violations.append(f"{' and '.join(needs_metric)} {verb} a metric: add metric: {{name: val_accuracy, goal: maximize}}")
    return violations


#: What wandb accepts where its schema says only "not valid".
HINTS = {
    "early_terminate": "wandb knows type hyperband, with min_iter, or with max_iter and s",
    "parameters": "a parameter is a value, values, or a distribution with its arguments: min and max for "
    "uniform, int_uniform, log_uniform_values; q too for q_uniform; ...",
}


def places(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every key of a nested mapping with its value, outer keys first (``metric``, ``metric.goal``)."""
    found = [(key, node)] if key else []
    if isinstance(node, dict):
        for name, value in node.items():
            found += places(value, f"{key}.{name}" if key else str(name))
    return found


def labelled(message: str, spec: dict[str, Any]) -> str:
    """A message of wandb's schema with the key it is about (the schema names the value only)."""
    matches = [key for key, value in places(spec) if message.startswith(repr(value) + " ")]
    if not matches:
        return message
    key = matches[-1]  # the innermost: ``metric.goal`` rather than ``metric``
    hint = HINTS.get(key.split(".")[0]) if "not valid" in message else None
    return f"{key}: {message}" + (f" ({hint})" if hint else "")


def sweep_path(name: str) -> Path:
    """The sweep file that ``name`` refers to: a path, or a shipped sweep (``lenet5``,
    ``sweeps/lenet5``, ``configs/sweeps/lenet5.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    stem = name.removeprefix("configs/").removeprefix("sweeps/")
    found = find_config(f"sweeps/{stem}")
    if found is None:
        raise SweepError(f"sweep file not found: {name} (the shipped sweeps are configs/sweeps/<model>.yaml)")
    return found


def load_sweep(name: str) -> dict[str, Any]:
    """The sweep configuration in file ``name``, checked as wandb would check it.

    Raises:
        SweepError: the file is missing, is not YAML, or is a sweep that wandb would reject.
    """
    path = sweep_path(name)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SweepError(f"{path}: not a YAML file: {' '.join(str(error).split())}") from error
    violations = sweep_violations(spec)
    if violations:
        raise SweepError(f"{path}: wandb would reject this sweep: {'; '.join(violations)}")
    check_command(spec, path)
    return spec


def check_command(spec: dict[str, Any], path: Path) -> None:
    """``${args}`` must come after ``--config``, so that the sweep's values override the config's."""
    command = [str(word) for word in spec.get("command") or []]
    if ARGS_MACRO in command and any(word in ("--config", "-c") or word.startswith("--config=") for word in command[command.index(ARGS_MACRO):]):
        raise SweepError(f"{path}: command: put {ARGS_MACRO} after --config (the arguments apply in order, so the config would override the sweep's values)")


# ---------------------------------------------------------------------- wandb -> Optuna
@dataclass(frozen=True)
class Parameter:
    """One sweep parameter as Optuna samples it: a constant, a categorical, or a number range."""

    name: str
    kind: str  # "constant", "categorical", "float" or "int"
    value: Any = None  # constant
    choices: tuple[Any, ...] = ()  # categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def sample(self, trial: Any, grid: bool = False) -> Any:
        """The value of this parameter in ``trial`` (an ``optuna.Trial``); in a grid search, one
        of the values of :meth:`grid`."""
        if self.kind == "constant":
            return self.value
        if grid:
            return trial.suggest_categorical(self.name, self.grid())
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """The values a grid search visits, as wandb's grid does."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and self.step is None and not self.log:  # int_uniform: every integer
            return list(range(int(self.low), int(self.high) + 1))
        if self.step is not None:  # q_uniform: numpy.arange(min, max, q), max excluded
            return [value.item() for value in numpy.arange(self.low, self.high, self.step)]
        raise SweepError(f"parameter {self.name}: a grid search takes values, int_uniform or q_uniform")


#: The wandb distributions of a range that Optuna samples (see the module docstring).
SAMPLED = ("uniform", "int_uniform", "log_uniform_values", "log_uniform", "inv_log_uniform_values", "inv_log_uniform", "q_uniform")


def choice(value: Any) -> Any:
    """A categorical value as Optuna can store it: numbers, strings, booleans as they are; a list or
    mapping as the text wandb's agent would put on the command line (``[16, 16]``)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def parameter(name: str, spec: dict[str, Any]) -> Parameter:
    """The Optuna counterpart of one (valid) wandb parameter ``spec``.

    Raises:
        SweepError: a distribution that Optuna cannot sample.
    """
    if "parameters" in spec:
        raise SweepError(f"parameter {name}: nested parameters have no command-line form; use flat dotted keys ({name}.<key>)")
    distribution = spec.get("distribution")
    if distribution == "constant" or "value" in spec:
        return Parameter(name, "constant", value=spec["value"])
    if "probabilities" in spec:
        raise SweepError(f"parameter {name}: Optuna has no weighted categorical; drop probabilities for --local")
    if distribution == "categorical" or "values" in spec:
        return Parameter(name, "categorical", choices=tuple(choice(value) for value in spec["values"]))
    if distribution not in (None, *SAMPLED):
        raise SweepError(f"parameter {name}: Optuna cannot sample distribution {distribution!r}; run this sweep with wandb sweep/agent, "
                         f"or use values or one of {', '.join(SAMPLED)}")  # fmt: skip
    low, high = spec["min"], spec["max"]
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    distribution = distribution or ("int_uniform" if integers else "uniform")  # as wandb infers it
    if distribution == "uniform":
        return Parameter(name, "float", low=float(low), high=float(high))
    if distribution == "int_uniform":
        return Parameter(name, "int", low=low, high=high)
    if distribution in ("log_uniform_values", "inv_log_uniform_values"):
        return Parameter(name, "float", low=float(low), high=float(high), log=True)
    if distribution == "log_uniform":  # min and max are exponents of e
        return Parameter(name, "float", low=math.exp(low), high=math.exp(high), log=True)
    if distribution == "inv_log_uniform":  # X = exp(-U(min, max))
        return Parameter(name, "float", low=math.exp(-high), high=math.exp(-low), log=True)
    q = spec.get("q", 1)  # q_uniform
    if integers and isinstance(q, int):
        return Parameter(name, "int", low=low, high=high, step=q)
    return Parameter(name, "float", low=float(low), high=float(high), step=float(q))


@dataclass
class LocalSweep:
    """A sweep file made ready for Optuna: its parameters, metric, sampler, pruner and command."""

    name: str
    metric: str
    direction: str
    parameters: list[Parameter]
    command: list[str]  # ai-scratch's arguments, ``${args}`` still in place
    method: str = "bayes"
    target: float | None = None
    hyperband: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], path: Path) -> LocalSweep:
        """Raises:
            SweepError: what ``--local`` cannot run (see the module docstring)."""
        method = spec.get("method")
        if method not in ("bayes", "random", "grid"):
            raise SweepError(f"{path}: --local runs method bayes, random or grid, not {method!r}")
        metric = spec.get("metric") or {}
        if not metric.get("name"):
            raise SweepError(f"{path}: --local needs a metric to optimise: metric: {{name: val_accuracy, goal: maximize}}")
        parameters = [parameter(name, value) for name, value in spec["parameters"].items()]
        sweep = cls(
            name=str(spec.get("name") or path.stem),
            metric=metric["name"],
            direction=metric.get("goal", "minimize"),
            parameters=parameters,
            command=local_command(spec, path),
            method=method,
            target=metric.get("target"),
            hyperband=dict(spec.get("early_terminate") or {}),
        )
        if method == "grid":
            sweep.search_space()  # a grid of what it can enumerate, said before anything trains
        return sweep

    def search_space(self) -> dict[str, list[Any]]:
        """The grid: every sampled parameter and the values it takes."""
        return {p.name: p.grid() for p in self.parameters if p.kind != "constant"}

    def sampler(self, seed: int | None) -> Any:
        import optuna

        if self.method == "grid":
            return optuna.samplers.GridSampler(self.search_space(), seed=seed)
        if self.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def pruner(self) -> Any:
        """Hyperband as wandb's ``early_terminate`` describes it; no pruning without it."""
        import optuna

        if not self.hyperband:
            return optuna.pruners.NopPruner()
        eta = self.hyperband.get("eta", 3)
        max_resource: Any = self.hyperband.get("max_iter") or self.largest_max_epochs() or "auto"
        if "min_iter" in self.hyperband:
            min_resource = int(self.hyperband["min_iter"])
        else:  # max_iter and s: wandb's brackets end s reductions below max_iter
            min_resource = max(1, int(self.hyperband["max_iter"] / eta ** self.hyperband["s"]))
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource, reduction_factor=eta)

    def largest_max_epochs(self) -> int | None:
        """The most epochs a trial may train, when the sweep sets ``trainer.max_epochs``."""
        for p in self.parameters:
            if p.name == "trainer.max_epochs":
                values = [p.value] if p.kind == "constant" else list(p.choices) if p.kind == "categorical" else [p.high]
                numbers = [int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
                return max(numbers) if numbers else None
        return None

    def arguments(self, values: dict[str, Any]) -> list[str]:
        """The trial's ``ai-scratch`` arguments: the command with ``${args}`` as wandb's agent
        writes it, ``--<name>=<value>``."""
        flags = [f"--{name}={value}" for name, value in values.items()]
        arguments: list[str] = []
        for word in self.command:
            arguments += flags if word == ARGS_MACRO else [word]
        return arguments


def local_command(spec: dict[str, Any], path: Path) -> list[str]:
    """The ``ai-scratch`` arguments of the sweep's ``command`` (``${env}`` and the program dropped).

    Raises:
        SweepError: no command, another program, another subcommand than fit, or macros that
        only wandb's agent fills.
    """
    command = [str(word) for word in spec.get("command") or []]
    example = f'command: ["${{env}}", "{PROGRAM}", "fit", "--config", "configs/<model>/<experiment>.yaml", "--wandb", "{ARGS_MACRO}"]'
    if not command:
        raise SweepError(f"{path}: --local needs the sweep's command, e.g. {example}")
    words = [word for word in command if word not in ENVIRONMENT_MACROS]
    program = str(spec.get("program") or "")
    if words and words[0] == "${program}":
        words[0] = program
    if not words or Path(words[0]).name != PROGRAM or words[1:2] != ["fit"]:
        raise SweepError(f"{path}: --local runs `{PROGRAM} fit`; the command is {shlex.join(command)} (expected {example})")
    unknown = sorted({word for word in words if word.startswith("${") and word != ARGS_MACRO})
    if unknown:
        raise SweepError(f"{path}: --local fills only {ARGS_MACRO} (and drops ${{env}}, ${{interpreter}}); not {', '.join(unknown)}")
    if ARGS_MACRO not in words:
        raise SweepError(f"{path}: the command has no {ARGS_MACRO}: the sweep's values would never reach the run")
    return words[1:]


# ---------------------------------------------------------------------- one trial
class TrialCrashed(RuntimeError):
    """A trial's fit ended in an error; the sweep records it and goes on."""


class SweepMetric(Callback):
    """Records the sweep's metric at the end of every validation (not the sanity check), and
    whether the fit ended by Ctrl+C (Lightning turns that into ``SystemExit(1)``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.values: list[float] = []
        self.interrupted = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.name)
        if value is not None:
            self.values.append(float(value))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.interrupted = self.interrupted or isinstance(exception, KeyboardInterrupt)


def reproduce_command(arguments: list[str]) -> str:
    """The shell command that runs a trial again."""
    return shlex.join([PROGRAM, *arguments])


def objective(sweep: LocalSweep, trial: Any, wandb_mode: str) -> float:
    """Run one trial: sample, fit in this process, return the metric's last logged value.

    Raises:
        optuna.TrialPruned: the pruner stopped the trial.
        TrialCrashed: the fit failed (its reason is the trial's ``error`` attribute).
        KeyboardInterrupt: Ctrl+C; the study keeps every finished trial.
    """
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    values = {p.name: p.sample(trial, grid=sweep.method == "grid") for p in sweep.parameters}
    arguments = sweep.arguments(values)
    trial.set_user_attr("command", reproduce_command(arguments))
    if "--wandb" in arguments:  # tracked: one run per trial, grouped under the sweep
        arguments += [f"--wandb_group={sweep.name}", f"--wandb_name={sweep.name}-trial-{trial.number}", f"--wandb_mode={wandb_mode}"]
    print(f"[ai-scratch] sweep {sweep.name}: trial {trial.number}: {reproduce_command(arguments)}", flush=True)

    recorder = SweepMetric(sweep.metric)
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores Ctrl+C after it caught one
    try:
        cli = cli_main(arguments, extra_callbacks=[recorder, PyTorchLightningPruningCallback(trial, monitor=sweep.metric)])
    except optuna.TrialPruned:
        raise
    except SystemExit as exit_:
        if recorder.interrupted:
            raise KeyboardInterrupt from None
        raise crashed(trial, f"ai-scratch fit exited with status {exit_.code}") from None
    except Exception as error:
        traceback.print_exc()  # a bug shows as itself
        raise crashed(trial, f"{type(error).__name__}: {error}") from error
    finally:
        signal.signal(signal.SIGINT, sigint)
    if cli is not None and cli.log_dir:
        trial.set_user_attr("log_dir", cli.log_dir)
    if not recorder.values:
        raise crashed(trial, f"the run logged no {sweep.metric} (is it the name the model logs at validation?)")
    if not math.isfinite(recorder.values[-1]):
        raise crashed(trial, f"the run's last {sweep.metric} is {recorder.values[-1]}")
    return recorder.values[-1]


def crashed(trial: Any, reason: str) -> TrialCrashed:
    """The error that ends a failed trial, its reason kept with the trial (``error``)."""
    reason = " ".join(reason.split())
    trial.set_user_attr("error", reason)
    return TrialCrashed(reason)


# ---------------------------------------------------------------------- the study
def finished(trials: list[Any]) -> list[Any]:
    """The trials that ended on their own: completed, pruned, or failed with a recorded reason."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)]


def open_study(sweep: LocalSweep, storage: str, seed: int | None) -> Any:
    """The sweep's study in ``storage``, created or loaded.

    Raises:
        SweepError: the database cannot be opened (not a database, locked, unreachable), or holds
        the study with the other direction.
    """
    import optuna
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        study = optuna.create_study(
            study_name=sweep.name,
            storage=storage,
            sampler=sweep.sampler(seed),
            pruner=sweep.pruner(),
            direction=sweep.direction,
            load_if_exists=True,
        )
    except (SQLAlchemyError, ValueError, RuntimeError, ImportError) as error:
        reason = error.orig if isinstance(error, DBAPIError) else error
        raise SweepError(f"cannot open the sweep's database {storage}: {' '.join(str(reason).split())}") from error
    if study.direction.name.lower() != sweep.direction:
        raise SweepError(f"{storage} holds study {sweep.name!r} with direction {study.direction.name.lower()}, the sweep asks {sweep.direction}; give another --storage")
    return study


def file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "sweep"


def trials_table(study: Any, sweep: LocalSweep) -> str:
    """The trials as a Markdown table: number, state, value, the sampled parameters, the reason of a failure."""
    sampled = [p.name for p in sweep.parameters if p.kind != "constant"]
    header = ["trial", "state", sweep.metric, *sampled, "error"]
    rows = [
        [str(t.number), t.state.name, "" if t.value is None else f"{t.value:.6g}",
         *(str(t.params.get(name, "")) for name in sampled), t.user_attrs.get("error", "")]
        for t in study.trials
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report(study: Any, sweep: LocalSweep, directory: Path) -> int:
    """Print the best trial and write the table of trials; 0, or 1 when no trial completed."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(sweep.name)
    csv_path, markdown_path = directory / f"{stem}-trials.csv", directory / f"{stem}-trials.md"
    study.trials_dataframe().to_csv(csv_path, index=False)
    markdown_path.write_text(f"# Sweep {sweep.name}: {sweep.metric} ({sweep.direction})\n\n{trials_table(study, sweep)}")
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    print(f"[ai-scratch] sweep {sweep.name}: {len(study.trials)} trials ({', '.join(f'{n} {s}' for s, n in counts.items())}); table in {csv_path} and {markdown_path}")
    completed = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not completed:
        print(f"[ai-scratch] sweep {sweep.name}: no trial completed, so there is no best one (see the table for why)")
        return 1
    best = study.best_trial
    params = ", ".join(f"{name}={value}" for name, value in best.params.items())
    print(f"[ai-scratch] best: trial {best.number}, {sweep.metric} = {best.value:.6g} ({params})")
    print(f"[ai-scratch] reproduce it: {best.user_attrs.get('command', '')}")
    return 0


def run_local(sweep: LocalSweep, trials: int, storage: str, seed: int | None, wandb_mode: str, directory: Path) -> int:
    """Run trials until the study holds ``trials`` finished ones; report. Returns the exit status."""
    import optuna
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    study = open_study(sweep, storage, seed)

    def after_trial(study: Any, trial: Any) -> None:
        done = len(finished(study.trials))
        value = "" if trial.value is None else f", {sweep.metric} = {trial.value:.6g}"
        why = f" ({trial.user_attrs['error']})" if "error" in trial.user_attrs else ""
        print(f"[ai-scratch] sweep {sweep.name}: trial {trial.number} {trial.state.name.lower()}{value}{why}; {done} of {trials} finished", flush=True)
        reached = sweep.target is not None and trial.value is not None and (
            trial.value >= sweep.target if sweep.direction == "maximize" else trial.value <= sweep.target)  # fmt: skip
        if done >= trials or reached:
            study.stop()

    remaining = trials - len(finished(study.trials))
    if remaining > 0:
        print(f"[ai-scratch] sweep {sweep.name}: {trials - remaining} of {trials} trials already finished in {storage}; running {remaining} more", flush=True)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the lines above say what each trial did
        try:
            study.optimize(lambda trial: objective(sweep, trial, wandb_mode), n_trials=remaining, catch=(Exception,), callbacks=[after_trial])
        except KeyboardInterrupt:
            kept = len(finished(study.trials))
            print(f"\n[ai-scratch] sweep {sweep.name}: interrupted; {kept} finished trial{'' if kept == 1 else 's'} kept in {storage}. "
                  "The same command resumes it.", flush=True)  # fmt: skip
            report(study, sweep, directory)
            return 130
        except SQLAlchemyError as error:
            reason = error.orig if isinstance(error, DBAPIError) else error
            fail(f"the sweep's database {storage} failed: {' '.join(str(reason).split())} (finished trials are kept; run the same command to resume)", status=1)
        finally:
            optuna.logging.set_verbosity(verbosity)
    else:
        print(f"[ai-scratch] sweep {sweep.name}: the study already holds {trials - remaining} finished trials (--trials {trials}; ask for more to go on)")
    return report(study, sweep, directory)


# ---------------------------------------------------------------------- the command
HELP_EPILOG = """\
--trials N runs trials until the study holds N finished trials (completed, pruned, or failed on
their own); run the same command again after an interruption and it continues where it stopped,
without repeating a finished trial. Several processes given the same --storage share the study.

Without --local the file is checked as wandb would check it, and the command says how to run it
with wandb: `wandb sweep FILE`, then `wandb agent <entity>/<project>/<sweep id>` on each machine."""


def main(args: list[str]) -> int:
    """``ai-scratch sweep FILE [--local --trials N ...]``: returns the exit status."""
    parser = OneLineArgumentParser(
        prog="ai-scratch sweep",
        description="Run a wandb sweep file (configs/sweeps/<model>.yaml) with wandb's agent, or here with Optuna (--local).",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="the sweep file, or a shipped sweep's name (lenet5)")
    parser.add_argument("--local", action="store_true", help="run the sweep here with Optuna, no wandb server")
    parser.add_argument("--trials", type=int, default=10, help="run until the study holds this many finished trials (default 10)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite:///runs/sweeps/<sweep name>.db)")
    parser.add_argument("--wandb_mode", default="offline", choices=["online", "offline", "disabled"],
                        help="mode of each trial's wandb run when the command has --wandb (default offline: sync later with wandb sync)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed of the sampler (default: none, each process samples anew)")
    options = parser.parse_args(args)
    if options.trials < 1:
        fail(f"--trials must be at least 1, got {options.trials}")
    try:
        spec = load_sweep(options.sweep)
        path = sweep_path(options.sweep)
        if not options.local:
            project = spec.get("project", "<project>")
            print(f"{path} is a valid wandb sweep. Run it with wandb: `wandb sweep {path}`, then `wandb agent <entity>/{project}/<sweep id>` "
                  f"on each machine; or here, without a server: `ai-scratch sweep {path} --local --trials 20`.")  # fmt: skip
            return 0
        sweep = LocalSweep.from_spec(spec, path)
        directory = Path(DEFAULT_ROOT) / "sweeps"
        storage = options.storage
        if storage is None:
            directory.mkdir(parents=True, exist_ok=True)
            storage = f"sqlite:///{directory / file_stem(sweep.name)}.db"
        return run_local(sweep, options.trials, storage, options.seed, options.wandb_mode, directory)
    except SweepError as error:
        fail(str(error))
    return 2  # not reached: fail exits
