"""Sweeps: every model's sweep file is one wandb accepts, whose values `ai-scratch fit` takes and
whose metric is logged as hyperband counts it; and the same file runs here with Optuna
(`ai-scratch sweep FILE --local`): trials, pruning, failures, resuming, bad input."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from lightning.pytorch.callbacks import Callback

from ai_scratch.cli import AIScratchCLI, main
from ai_scratch.registry import models
from ai_scratch.sweep import LocalSweep, load_sweep
from conftest import CONFIGS, ROOT
from wandb_log import find_runs, read_run

SWEEPS = {path.stem: path for path in sorted((CONFIGS / "sweeps").glob("*.yaml"))}
MODELS = [info.name for info in models()]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--figures=false"]


def spec_of(model: str) -> dict[str, Any]:
    return yaml.safe_load(SWEEPS[model].read_text())


def sampled_values(spec: dict[str, Any], position: int) -> dict[str, Any]:
    """Each parameter's value at ``position``: its constant, its ``position``-th categorical value
    (cycling), its minimum for even positions and its maximum for odd ones."""
    values = {}
    for name, parameter in spec["parameters"].items():
        if "value" in parameter:
            values[name] = parameter["value"]
        elif "values" in parameter:
            values[name] = parameter["values"][position % len(parameter["values"])]
        else:
            values[name] = parameter["max" if position % 2 else "min"]
    return values


def positions(spec: dict[str, Any]) -> range:
    """Enough positions that every minimum, maximum and categorical value is tried."""
    return range(max([2, *(len(p["values"]) for p in spec["parameters"].values() if "values" in p)]))


def base_arguments(spec: dict[str, Any]) -> list[str]:
    """The sweep's command as `ai-scratch` arguments, ``${env}``, the program and ``${args}`` left out."""
    command = spec["command"]
    return [word for word in command[command.index("ai-scratch") + 1 :] if word != "${args}"]


# ---------------------------------------------------------------------- the sweep files
def test_every_model_has_a_sweep() -> None:
    assert sorted(SWEEPS) == sorted(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_sweep_file_is_valid_and_follows_the_template(model: str) -> None:
    spec = load_sweep(str(SWEEPS[model]))  # wandb's own schema, and the project's rules
    assert spec["project"] == f"ai-from-scratch-{model}" and spec["program"] == "ai-scratch"
    assert spec["metric"]["goal"] in ("maximize", "minimize")
    command = spec["command"]
    assert command[:3] == ["${env}", "ai-scratch", "fit"] and "--wandb" in command
    assert command.index("${args}") > command.index("--config"), "the sweep's values must come after the config"
    assert all("init_args" not in name for name in spec["parameters"]), "flat dotted keys, as wandb's agent passes them"
    base = yaml.safe_load((ROOT / command[command.index("--config") + 1]).read_text())
    epochs = spec["parameters"].get("trainer.max_epochs", {"value": base["trainer"]["max_epochs"]})
    if epochs.get("value") == 1:  # one epoch (Hopfield's one pass of storage): nothing to stop early
        assert "early_terminate" not in spec
    else:
        assert spec["method"] == "bayes" and spec["early_terminate"]["type"] == "hyperband"
    sweep = LocalSweep.from_spec(spec, SWEEPS[model])  # and Optuna can run it
    assert sweep.metric == spec["metric"]["name"]


@pytest.mark.parametrize("model", MODELS)
def test_sampled_values_are_accepted(model: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every minimum, maximum and categorical value, as wandb's agent writes it (``--name=value``),
    lands where it should in the parsed config, and the model and data classes accept it."""
    spec = spec_of(model)
    base = base_arguments(spec)
    monkeypatch.chdir(ROOT)  # the command names configs/ relative to the checkout
    untracked = [word for word in base[1:] if word != "--wandb"]
    for position in positions(spec):
        values = sampled_values(spec, position)
        flags = [f"--{name}={value}" for name, value in values.items()]
        # parsed and built, not trained (no subcommand with run=False): the classes' own checks of their arguments
        cli = AIScratchCLI(args=[*untracked, *flags, f"--trainer.default_root_dir={workdir}"], run=False)
        assert cli.model is not None and cli.datamodule is not None
        parsed = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))  # the config as --print_config shows it
        for name, value in values.items():
            node = parsed
            for part in name.split("."):
                node = node["init_args"][part] if "init_args" in node and part not in node else node[part]
            assert node == value, name


class CountValidations(Callback):
    def __init__(self) -> None:
        self.count = 0

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self.count += 0 if trainer.sanity_checking else 1


#: Cheap enough for the default suite; the others run with -m slow.
QUICK_HYPERBAND = {"perceptron", "hopfield", "lenet5"}


@pytest.mark.parametrize("model", [m if m in QUICK_HYPERBAND else pytest.param(m, marks=pytest.mark.slow) for m in MODELS])
def test_metric_is_logged_once_per_validation_epoch(model: str, wandb_offline: Path) -> None:
    """Hyperband counts the rows of history that hold the sweep's metric: one per validation
    epoch, under exactly the sweep's name. Read back from the offline transaction log."""
    spec = spec_of(model)
    constants = [f"--{name}={p['value']}" for name, p in spec["parameters"].items() if "value" in p]
    tiny = ["--trainer.max_epochs=2", "--trainer.check_val_every_n_epoch=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--watch=none", "--wandb_log_checkpoints=false"]
    counter = CountValidations()
    main([*base_arguments(spec), *constants, *tiny, *QUIET, "--wandb_mode=offline"], extra_callbacks=[counter])
    (log,) = find_runs(wandb_offline)
    run = read_run(log)
    metric = spec["metric"]["name"]
    rows = [row for row in run.history if metric in row]
    assert counter.count == 2
    assert len(rows) == counter.count, f"{len(rows)} rows hold {metric}, for {counter.count} validation epochs"
    assert run.summary[metric] == rows[-1][metric]  # wandb's sweep value: the last one logged


# ---------------------------------------------------------------------- --local with Optuna
@pytest.mark.parametrize(
    ("spec", "low", "high", "kind"),
    [
        ({"distribution": "uniform", "min": 0.5, "max": 2.0}, 0.5, 2.0, float),
        ({"min": 0.5, "max": 2.0}, 0.5, 2.0, float),  # wandb infers uniform
        ({"distribution": "int_uniform", "min": 3, "max": 9}, 3, 9, int),
        ({"min": 3, "max": 9}, 3, 9, int),  # wandb infers int_uniform
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, 1e-4, 1e-1, float),
        ({"distribution": "log_uniform", "min": -9.2, "max": -2.3}, 1.0e-4, 0.1003, float),  # exponents of e
        ({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1}, 1e-4, 1e-1, float),
        ({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25}, 0.0, 1.0, float),
        ({"distribution": "q_uniform", "min": 8, "max": 64, "q": 8}, 8, 64, int),
    ],
)
def test_each_range_maps_onto_an_optuna_distribution(spec: dict[str, Any], low: float, high: float, kind: type) -> None:
    from ai_scratch.sweep import parameter

    mapped = parameter("model.x", spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [mapped.sample(study.ask()) for _ in range(200)]
    assert all(isinstance(v, kind) and low <= v <= high for v in values), (min(values), max(values))
    assert max(values) - min(values) > 0.5 * (high - low)  # the whole range, not one corner
    if "q" in spec:
        assert all(abs(v / spec["q"] - round(v / spec["q"])) < 1e-9 for v in values)
    if "log" in spec.get("distribution", ""):  # log-uniform: as many values in each decade
        below = sum(v < (low * high) ** 0.5 for v in values)
        assert 70 < below < 130, below


def write_sweep(directory: Path, name: str = "tiny", **changes: Any) -> Path:
    """A small sweep of the Perceptron: a few tiny epochs, one sampled learning rate."""
    spec: dict[str, Any] = {
        "program": "ai-scratch",
        "command": ["${env}", "ai-scratch", "fit", "--config", "configs/perceptron/linear_strength.yaml", "${args}",
                    "--data.n_samples=60", *QUIET],  # fmt: skip
        "method": "bayes",
        "name": name,
        "metric": {"name": "val_accuracy", "goal": "maximize"},
        "parameters": {
            "model.learning_rate": {"distribution": "log_uniform_values", "min": 0.001, "max": 1.0},
            "model.init": {"value": "random"},
            "trainer.max_epochs": {"value": 2},
        },
    }
    spec.update(changes)
    spec = {key: value for key, value in spec.items() if value is not None}  # None: leave the key out
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep(args: list[str]) -> int:
    """``ai-scratch sweep <args>`` in this process: its exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *args])
    code = exit_info.value.code
    return 0 if code is None else int(code)


def study_of(workdir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'runs' / 'sweeps' / name}.db")


def test_local_sweep_runs_tracks_and_resumes(wandb_offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two trials, then the same command with --trials 3 adds one: the first two are not run
    again. Each trial is a tracked fit in the sweep's wandb group."""
    workdir = wandb_offline.parent
    command = write_sweep(workdir, command=[*yaml.safe_load(write_sweep(workdir).read_text())["command"], "--wandb"])
    assert sweep([str(command), "--local", "--trials", "2", "--seed", "0"]) == 0
    first = study_of(workdir, "tiny").trials
    assert [t.state for t in first] == [optuna.trial.TrialState.COMPLETE] * 2
    capsys.readouterr()

    assert sweep([str(command), "--local", "--trials", "3", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    trials = study_of(workdir, "tiny").trials
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for before, after in zip(first, trials):
        assert (before.params, before.value, before.datetime_start) == (after.params, after.value, after.datetime_start)
    assert "2 of 3 trials already finished" in out and "running 1 more" in out

    best = max(trials, key=lambda t: t.value)
    assert f"best: trial {best.number}, val_accuracy = {best.value:.6g}" in out
    assert f"--model.learning_rate={best.params['model.learning_rate']}" in out.split("reproduce it:")[1].splitlines()[0]
    table = (workdir / "runs" / "sweeps" / "tiny-trials.csv").read_text().splitlines()
    assert len(table) == 1 + 3 and "params_model.learning_rate" in table[0]
    assert (workdir / "runs" / "sweeps" / "tiny-trials.md").read_text().count("| COMPLETE |") == 3

    runs = [read_run(log) for log in find_runs(wandb_offline)]
    assert len(runs) == 3 and {run.group for run in runs} == {"tiny"}
    assert sorted(run.name for run in runs) == ["tiny-trial-0", "tiny-trial-1", "tiny-trial-2"]
    assert sorted(run.summary["val_accuracy"] for run in runs) == sorted(t.value for t in trials)

    assert sweep([str(command), "--local", "--trials", "3"]) == 0  # nothing left to run
    assert "already holds 3 finished trials" in capsys.readouterr().out
    assert len(study_of(workdir, "tiny").trials) == 3


def test_hyperband_prunes_a_hopeless_trial(workdir: Path) -> None:
    """Hyperband with one bracket (min_iter = max_iter = 1) is successive halving: at epoch 1 a
    trial goes on only if it is the best of those that reached that epoch. The same seeded MLP
    with a useful learning rate, then with a hopeless one: the second is pruned there."""
    def mlp_sweep(learning_rate: float) -> Path:
        return write_sweep(
            workdir,
            command=["${env}", "ai-scratch", "fit", "--config", "configs/mlp/xor_breakthrough.yaml", "${args}", "--data.n_samples=40", *QUIET],
            metric={"name": "val_loss", "goal": "minimize"},
            parameters={"model.learning_rate": {"value": learning_rate}, "trainer.max_epochs": {"value": 4},
                        "trainer.check_val_every_n_epoch": {"value": 1}},  # fmt: skip
            early_terminate={"type": "hyperband", "min_iter": 1, "max_iter": 1, "s": 0},
        )

    assert sweep([str(mlp_sweep(1.0)), "--local", "--trials", "1"]) == 0
    assert sweep([str(mlp_sweep(1e-7)), "--local", "--trials", "2"]) == 0
    useful, hopeless = study_of(workdir, "tiny").trials
    assert useful.state == optuna.trial.TrialState.COMPLETE and len(useful.intermediate_values) == 4
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert sorted(hopeless.intermediate_values) == [0, 1], "stopped at the first rung, epoch 1"
    assert hopeless.intermediate_values[1] > useful.intermediate_values[1]


def test_grid_sweep_records_a_crashing_trial_and_goes_on(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value the model refuses ends its trial as FAIL, with the reason; the next trial runs."""
    path = write_sweep(
        workdir,
        method="grid",
        command=["${env}", "ai-scratch", "fit", "--config", "configs/mlp/xor_breakthrough.yaml", "${args}", "--data.n_samples=40", *QUIET],
        parameters={"model.learning_rate": {"values": [-1.0, 0.5]}, "trainer.max_epochs": {"value": 2},
                    "trainer.check_val_every_n_epoch": {"value": 1}},  # fmt: skip
    )
    assert sweep([str(path), "--local", "--trials", "5"]) == 0  # the grid holds two points
    captured = capsys.readouterr()
    trials = {t.params["model.learning_rate"]: t for t in study_of(workdir, "tiny").trials}
    assert set(trials) == {-1.0, 0.5}
    assert trials[-1.0].state == optuna.trial.TrialState.FAIL
    assert trials[-1.0].user_attrs["error"] == "ai-scratch fit exited with status 2"
    assert "learning_rate must be positive" in captured.err
    assert trials[0.5].state == optuna.trial.TrialState.COMPLETE
    assert "| FAIL |" in (workdir / "runs" / "sweeps" / "tiny-trials.md").read_text()


class PressCtrlC(Callback):
    """Ctrl+C in the middle of a fit (``--trainer.callbacks+=test_sweeps.PressCtrlC``)."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        raise KeyboardInterrupt


@pytest.fixture
def ctrl_c_enabled() -> Iterator[None]:
    """Python's own Ctrl+C handler for the test, whatever pytest started with: a pytest that a shell
    started in the background inherits SIGINT ignored, and Python then keeps it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_enabled")
def test_ctrl_c_ends_the_sweep_and_the_same_command_resumes_it(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl+C during a trial ends the sweep (status 130) with the finished trials kept; the
    interrupted trial is not counted, so the next run of the command runs its turn again."""
    path = write_sweep(workdir)
    assert sweep([str(path), "--local", "--trials", "1", "--seed", "0"]) == 0
    interrupted = write_sweep(workdir, command=[*yaml.safe_load(path.read_text())["command"], "--trainer.callbacks+=test_sweeps.PressCtrlC"])
    assert sweep([str(interrupted), "--local", "--trials", "3"]) == 130
    assert "interrupted; 1 finished trial kept" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Ctrl+C works again after the sweep"
    states = [t.state for t in study_of(workdir, "tiny").trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]

    assert sweep([str(write_sweep(workdir)), "--local", "--trials", "2"]) == 0
    trials = study_of(workdir, "tiny").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert "error" not in trials[1].user_attrs


# ---------------------------------------------------------------------- bad input
def error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """``ai-scratch sweep <args>`` expecting bad input: status 2, one line on stderr, nothing trained."""
    runs_before = set(Path().glob("runs/*/*/version_*"))
    assert sweep(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ai-scratch: error: "), captured.err
    assert set(Path().glob("runs/*/*/version_*")) == runs_before, "nothing trained"
    return lines[0]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"method": "simulated_annealing"}, "'simulated_annealing' is not one of ['bayes', 'random', 'grid', 'custom']"),
        ({"parameters": {"model.learning_rate": {"distribution": "gaussian", "min": 0.1, "max": 1.0}}}, "parameters.model.learning_rate: {'distribution': 'gaussian'"),
        ({"parameters": {"model.learning_rate": {"distribution": "uniform", "min": 0.1}}}, "parameters.model.learning_rate: {'distribution': 'uniform', 'min': 0.1} is not valid"),
        ({"parameters": {"model.learning_rate": {"min": 1.0, "max": 0.1}}}, "min 1.0 is not less than max 0.1"),
        ({"metric": None}, "method bayes needs a metric"),
        ({"metric": {"name": "val_accuracy", "goal": "up"}}, "metric.goal: 'up' is not one of ['minimize', 'maximize']"),
        ({"early_terminate": {"type": "median", "min_iter": 3}}, "early_terminate: {'type': 'median', 'min_iter': 3} is not valid"),
        ({"early_terminate": {"type": "hyperband"}}, "early_terminate: {'type': 'hyperband'} is not valid"),
        ({"command": ["${env}", "ai-scratch", "fit", "${args}", "--config", "configs/perceptron/linear_strength.yaml"]}, "put ${args} after --config"),
    ],
)
def test_a_sweep_wandb_would_reject_is_one_line_before_anything_trains(
    workdir: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], expected: str
) -> None:
    path = write_sweep(workdir, **changes)
    for local in ([], ["--local"]):
        line = error_line(capsys, [str(path), *local])
        assert "wandb would reject" in line or "command" in line
        assert expected in line, line


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"parameters": {"model.learning_rate": {"distribution": "normal", "mu": 0.1, "sigma": 0.01}}}, "Optuna cannot sample distribution 'normal'"),
        ({"method": "grid"}, "a grid search takes values, int_uniform or q_uniform"),
        ({"command": ["python", "train.py", "${args}"]}, "--local runs `ai-scratch fit`"),
    ],
)
def test_what_optuna_cannot_run_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], expected: str) -> None:
    path = write_sweep(workdir, **changes)
    assert sweep([str(path)]) == 0  # wandb takes it
    capsys.readouterr()
    assert expected in error_line(capsys, [str(path), "--local"])


def test_a_missing_sweep_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, ["no_such_sweep.yaml", "--local"])
    assert line == "ai-scratch: error: sweep file not found: no_such_sweep.yaml (the shipped sweeps are configs/sweeps/<model>.yaml)"


def test_without_local_it_says_how_to_run_with_wandb(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sweep(["lenet5"]) == 0  # a shipped sweep, by name
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert "wandb sweep" in out and "wandb agent <entity>/ai-from-scratch-lenet5/<sweep id>" in out and "--local" in out


def test_a_corrupt_database_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = workdir / "runs" / "sweeps" / "tiny.db"
    database.parent.mkdir(parents=True)
    database.write_text("these are not the bytes of an SQLite database\n" * 100)
    line = error_line(capsys, [str(write_sweep(workdir)), "--local", "--trials", "1"])
    assert "cannot open the sweep's database" in line and "file is not a database" in line
    assert database.read_text().startswith("these are not"), "the file is left as it was"


def test_a_locked_database_is_one_line_and_keeps_the_finished_trials(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(workdir)
    database = workdir / "shared.db"
    storage = f"sqlite:///{database}?timeout=0.2"
    assert sweep([str(path), "--local", "--trials", "1", "--storage", storage]) == 0
    capsys.readouterr()
    lock = sqlite3.connect(database)
    lock.execute("BEGIN EXCLUSIVE")  # another process writing
    try:
        line = error_line(capsys, [str(path), "--local", "--trials", "2", "--storage", storage])
    finally:
        lock.rollback()
        lock.close()
    assert "database is locked" in line
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{database}").trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
