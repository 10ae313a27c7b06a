"""The ai-scratch command: subcommands, listing, and one clear line for every wrong input."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import yaml

from ai_scratch.cli import main, one_line
from conftest import config, run_cli, subprocess_env
from wandb_log import find_runs, read_run

XOR = config("perceptron/xor_weakness")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run the CLI expecting a usage error: exit status 2 and exactly one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1, stderr
    assert stderr[0].startswith("ai-scratch: error: ")
    assert "Traceback" not in stderr[0]
    return stderr[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "NoSuchModel"], "unknown model class 'NoSuchModel'"),
        (["--data", "NoSuchData"], "unknown datamodule class 'NoSuchData'"),
        (["--trainer.max_epochs", "abc"], "trainer.max_epochs: expected int, got 'abc'"),
        (["--data.init_args.dataset", "nope"], "nope"),
        (["--model.init_args.learning_rate", "-1"], "learning_rate must be positive"),
        (["--experiment.kind", "maybe"], "experiment.kind"),
        (["--watch", "sometimes"], "watch"),
        (["--no_such_flag", "3"], "unrecognized arguments"),
    ],
)
def test_wrong_input_is_one_clear_line(workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    assert expected in error_line(capsys, ["fit", "--config", XOR, *args])


def test_missing_config_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, ["fit", "--config", "perceptron/no_such_experiment.yaml"])
    assert "config file not found" in line and "no_such_experiment.yaml" in line and "ai-scratch list" in line


@pytest.mark.parametrize("name", ["perceptron/xor_weakness", "perceptron/xor_weakness.yaml", "configs/perceptron/xor_weakness.yaml"])
def test_an_experiment_is_found_by_name_from_any_directory(workdir: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert not (workdir / "configs").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", name, "--print_config"])
    assert exit_info.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["experiment"]["name"] == "xor_weakness"


def test_a_config_file_here_comes_before_the_shipped_experiment_of_the_same_name(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = workdir / "configs" / "perceptron" / "xor_weakness.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(Path(XOR).read_text().replace("name: xor_weakness", "name: my_own_xor"))
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/perceptron/xor_weakness.yaml", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["experiment"]["name"] == "my_own_xor"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("missing.ckpt", "missing.ckpt: no such file"), ("folder", "a folder, not a checkpoint file"), ("random.ckpt", "random.ckpt: not a checkpoint")],
)
def test_a_checkpoint_that_cannot_be_read_is_one_line_and_leaves_no_run_folder(
    workdir: Path, capsys: pytest.CaptureFixture[str], given: str, expected: str
) -> None:
    (workdir / "folder").mkdir()
    (workdir / "random.ckpt").write_bytes(bytes(range(256)) * 8)  # a corrupt file: torch would advise weights_only=False
    line = error_line(capsys, ["test", "--config", XOR, "--ckpt_path", given])
    assert expected in line and "weights_only" not in line
    assert not (workdir / "runs").exists()


def test_unknown_wandb_mode_from_flag_and_environment(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = error_line(capsys, ["fit", "--config", XOR, "--wandb", "--wandb_mode", "sideways"])
    assert "unknown wandb mode 'sideways' from --wandb_mode" in line
    monkeypatch.setenv("WANDB_MODE", "bogus")
    line = error_line(capsys, ["fit", "--config", XOR, "--wandb"])
    assert "unknown wandb mode 'bogus' from WANDB_MODE" in line


def test_one_line_condenses_nested_jsonargparse_errors() -> None:
    nested = (
        'Parser key "trainer.max_epochs":\n  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc"
    )
    assert one_line(nested) == "trainer.max_epochs: expected int, got 'abc'"


def test_print_config_shows_the_whole_experiment(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", XOR, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["experiment"]["name"] == "xor_weakness"
    assert printed["experiment"]["claim"] == {"metric": "val_accuracy", "comparison": "<=", "value": 0.75}
    assert printed["model"]["class_path"] == "ai_scratch.foundations.perceptron.Perceptron"
    assert printed["data"]["init_args"]["dataset"] == "xor"
    assert printed["wandb"] is False


def test_list_shows_models_and_experiments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) is None
    out = capsys.readouterr().out
    for expected in ("perceptron", "Perceptron", "1957", "lenet5", "LeNet-5", "1998"):
        assert expected in out
    for experiment in ("perceptron/xor_weakness ", "perceptron/iris_strength ", "lenet5/mnist "):
        assert experiment in out  # names that --config takes from any directory
    assert "val_accuracy <= 0.75" in out


def test_fit_then_validate_test_predict_from_the_checkpoint(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = main(["fit", "--config", XOR, *QUIET])
    assert cli.claim_result is not None and cli.claim_result.reproduced
    assert "[claim] xor_weakness: val_accuracy <= 0.75 expected" in capsys.readouterr().out
    run_dir = Path(cli.log_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file() and (run_dir / "metrics.csv").is_file() and (run_dir / "config.yaml").is_file()
    for png in ("learning_curves", "confusion_matrix", "decision_boundary"):
        assert (run_dir / "figures" / f"{png}.png").stat().st_size > 10_000

    common = ["--config", XOR, *QUIET, "--ckpt_path", str(checkpoint)]
    validated = main(["validate", *common])
    tested = main(["test", *common])
    assert 0.0 <= float(validated.trainer.callback_metrics["val_accuracy"]) <= 1.0
    assert 0.0 <= float(tested.trainer.callback_metrics["test_accuracy"]) <= 1.0
    predicted = main(["predict", *common])
    predictions = torch.cat(predicted.trainer.predict_loop.predictions)
    assert set(predictions.unique().tolist()) <= {0, 1}
    assert len(predictions) == len(predicted.datamodule.test_dataset)


def test_wandb_disabled_runs_and_writes_no_wandb_files(wandb_offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cli = main(["fit", "--config", XOR, "--wandb", *QUIET])
    assert cli.claim_result.reproduced
    assert find_runs(wandb_offline) == []
    assert (Path(cli.log_dir) / "figures" / "learning_curves.png").is_file()


def test_online_without_credentials_falls_back_to_offline_with_one_warning(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("NETRC", str(wandb_offline / "no-netrc"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main(["fit", "--config", XOR, "--wandb", *QUIET])
    fallbacks = [w for w in caught if "logged offline" in str(w.message)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    assert cli.wandb_mode == "offline"
    (run,) = find_runs(wandb_offline)
    log = read_run(run)
    assert log.project == "ai-from-scratch-perceptron" and log.exit_code == 0


def test_the_console_script_exits_with_status_zero_after_a_fit(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's wrapper runs ``sys.exit(<entry point>())``: a returned object would be printed and
    turned into exit status 1 after every successful fit. The installed entry point, as pip has it."""
    (script,) = [entry for entry in entry_points(group="console_scripts") if entry.name == "ai-scratch"]
    monkeypatch.setattr(sys, "argv", ["ai-scratch", "fit", "--config", XOR, *QUIET, "--trainer.max_epochs", "2"])
    with pytest.raises(SystemExit) as exit_:
        sys.exit(script.load()())
    assert exit_.value.code == 0



def test_a_diverging_loss_ends_the_fit_in_one_line_with_status_1(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The user's report: LeNet-5 at learning rate 1e6 with ReLU, a linear output and max pooling
    trained on NaN and kept a NaN epoch as its best checkpoint, exit status 0. (That the checkpoints
    written before the divergence are kept: tests/test_callbacks.py.)"""
    args = ["fit", "--config", config("lenet5/mnist"), *QUIET, "--figures", "false", "--trainer.max_epochs", "3",
            "--model.learning_rate", "1e6", "--model.activation", "relu", "--model.output_layer", "linear",
            "--model.subsampling", "max", "--data.train_size", "500"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"ai-scratch: error: the training loss became (nan|inf|-inf) at epoch \d+, global step \d+;", line), line
    assert "--model.learning_rate" in line


def help_text(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_shows_what_ai_scratch_adds(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    top = help_text(capsys, ["--help"])
    assert all(words in top for words in ("ai-scratch list", "ai-scratch compare", "--wandb", "perceptron/xor_weakness"))
    fit = help_text(capsys, ["fit", "--help"])
    assert "Tracking in Weights & Biases (ai-scratch)" in fit and "--wandb_mode" in fit and "Figures (ai-scratch)" in fit
    listing = help_text(capsys, ["list", "--help"])
    assert "usage: ai-scratch list" in listing and "LeNet-5" not in listing  # the help, not the list
    assert "module-1" in help_text(capsys, ["compare", "--help"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["list", "--no-such-option"], "ai-scratch: error: unrecognized arguments: --no-such-option"),
        (["compare", "module-9"], "ai-scratch: error: argument comparison: invalid choice: 'module-9'"),
    ],
)
def test_list_and_compare_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    assert error_line(capsys, args).startswith(expected)


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [(["fit", "--model", "NoSuchModel"], 2, "ai-scratch: error: unknown model class 'NoSuchModel'")],
)
def test_an_early_exit_ends_in_exactly_its_one_line(workdir: Path, args: list[str], status: int, expected: str) -> None:
    """In a fresh process, as a user runs it: nothing after the message (no warning at exit)."""
    result = run_cli(args, workdir)
    assert result.returncode == status
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Seed set to")]
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr


def test_the_console_imports_wandb_first_only_when_the_command_tracks(workdir: Path) -> None:
    probe = "import sys; import ai_scratch.entry as e; sys.modules['ai_scratch.cli'] = type(sys)('stub'); sys.modules['ai_scratch.cli'].console = lambda: print('wandb' in sys.modules, 'torch' in sys.modules) or 0; sys.exit(e.console())"
    tracked = subprocess.run([sys.executable, "-c", probe, "fit", "--wandb"], env=subprocess_env(workdir), capture_output=True, text=True)
    untracked = subprocess.run([sys.executable, "-c", probe, "fit"], env=subprocess_env(workdir), capture_output=True, text=True)
    assert tracked.stdout.split() == ["True", "False"] and untracked.stdout.split() == ["False", "False"]


def test_a_bug_in_a_model_is_its_own_traceback_not_a_one_line_usage_error(workdir: Path) -> None:
    """Bad input is one line; a model's own TypeError is a bug, shown with its traceback."""
    result = run_cli(["fit", "--config", XOR, "--model", "probes.BuggyModel", *QUIET], workdir)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "TypeError: unsupported operand type(s) for +: 'int' and 'str'" in result.stderr
    assert "ai-scratch: error" not in result.stderr


def test_an_objective_the_model_does_not_teach_is_one_line_naming_its_objectives(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """experiment.objectives are the model's INFO.key_learning_objectives word for word; a typo is caught before training."""
    line = error_line(capsys, ["fit", "--config", XOR, *QUIET, "--experiment.objectives", "[how backpropagation works]"])
    assert "experiment.objectives: 'how backpropagation works' is not a learning objective of perceptron" in line
    assert "why linearly separable data is learned exactly and XOR never is" in line  # what it could have said
    assert not (workdir / "runs").exists()
