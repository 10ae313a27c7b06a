"""The ai-scratch command: subcommands, listing, and one clear line for every wrong input."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import yaml

from ai_scratch.cli import main, one_line
from conftest import config, subprocess_env
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
    line = error_line(capsys, ["fit", "--config", "perceptron/xor_weakness.yaml"])
    assert "config file not found" in line and "did you mean configs/perceptron/xor_weakness.yaml" in line


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
    for experiment in ("perceptron/xor_weakness.yaml", "perceptron/iris_strength.yaml", "lenet5/mnist.yaml"):
        assert experiment in out
    assert "val_accuracy <= 0.75" in out


def test_fit_then_validate_test_predict_from_the_checkpoint(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = main(["fit", "--config", XOR, *QUIET])
    assert gc.get_freeze_count() == 0  # a call from Python freezes nothing (see the console test below)
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


def test_only_the_console_command_freezes_the_set_up_out_of_garbage_collection(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console command's process ends with its run, so the objects alive when the run starts
    are frozen (no full collection walks them mid-fit); a call from Python freezes nothing, or the
    garbage of its later runs would never be collected."""
    assert gc.get_freeze_count() == 0  # and test_fit_then_validate_test_predict_from_the_checkpoint: still 0 after main([...])
    monkeypatch.setattr(sys, "argv", ["ai-scratch", "fit", "--config", XOR, *QUIET, "--trainer.max_epochs", "2"])
    try:
        cli = main()
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert cli.claim_result is not None and cli.claim_result.reproduced
    assert frozen > 10_000  # torch, Lightning, the parser ... (hundreds of thousands of objects)


def test_the_console_script_exits_with_status_zero_after_a_fit(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's wrapper runs ``sys.exit(<entry point>())``: a returned object would be printed and
    turned into exit status 1 after every successful fit. The installed entry point, as pip has it."""
    (script,) = [entry for entry in entry_points(group="console_scripts") if entry.name == "ai-scratch"]
    monkeypatch.setattr(sys, "argv", ["ai-scratch", "fit", "--config", XOR, *QUIET, "--trainer.max_epochs", "2"])
    try:
        with pytest.raises(SystemExit) as exit_:
            sys.exit(script.load()())
    finally:
        gc.unfreeze()
    assert exit_.value.code == 0


# A console script as pip writes it, around a stand-in command: the command registers an exit
# handler as wandb does (after the console has started), and a global's __del__ marks the
# interpreter's teardown. argv: the folder for the marks, then what the command does.
CONSOLE_PROBE = """
import atexit, sys, types
from pathlib import Path
marks = Path(sys.argv.pop(1))

class Teardown:
    def __init__(self):
        self.mark = marks.joinpath("torn down").touch  # bound now: the globals are cleared by then

    def __del__(self):
        self.mark()

teardown = Teardown()

def command():
    atexit.register(marks.joinpath("exit handler ran").touch)
    global left_open  # a file the command never closes: its buffer is written at the exit
    left_open = open(marks / "left open.txt", "w")
    left_open.write("kept")
    print("the command's output", flush=False)
    outcome = sys.argv[1]
    if outcome == "crash":
        raise RuntimeError("an uncaught error")
    if outcome.isdigit():
        sys.exit(int(outcome))
    if outcome == "message":
        sys.exit("one clear line")
    return 0

sys.modules["ai_scratch.cli"] = types.SimpleNamespace(console=command)  # torch is not needed here
from ai_scratch.entry import console
if sys.argv[2:] == ["from a function"]:
    def run():
        return console()
    sys.exit(run())
sys.exit(console())
"""


@pytest.mark.parametrize(
    ("outcome", "status", "torn_down"),
    [
        ("returns", 0, False),
        ("2", 2, False),  # sys.exit(2), as the CLI's one-line errors
        ("message", 1, False),  # sys.exit("..."): the message on stderr, status 1
        ("crash", 1, True),  # an uncaught exception: the interpreter ends as usual
    ],
)
def test_the_console_leaves_without_the_interpreters_teardown(tmp_path: Path, outcome: str, status: int, torn_down: bool) -> None:
    """A finished command's process runs every exit handler (wandb's ends its run), keeps its
    output, its status and what it left in an unclosed file's buffer, and skips the teardown of
    the interpreter's modules (a quarter of a second of every command here)."""
    result = subprocess.run([sys.executable, "-c", CONSOLE_PROBE, str(tmp_path), outcome], capture_output=True, text=True)
    assert result.returncode == status, result.stderr
    assert result.stdout == "the command's output\n"  # flushed before the process left
    assert (tmp_path / "exit handler ran").exists()
    assert (tmp_path / "torn down").exists() == torn_down
    assert (tmp_path / "left open.txt").read_text() == "kept"
    if outcome == "message":
        assert result.stderr.strip() == "one clear line"
    if outcome == "crash":
        assert "RuntimeError: an uncaught error" in result.stderr


def test_the_console_called_as_a_function_leaves_the_process_alone(tmp_path: Path) -> None:
    """Called from anywhere but the top of ``__main__`` (a test, a user's code), the console does
    not decide how the process ends: the interpreter tears down as usual, with its own status."""
    result = subprocess.run([sys.executable, "-c", CONSOLE_PROBE, str(tmp_path), "returns", "from a function"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "exit handler ran").exists()
    assert (tmp_path / "torn down").exists()


TRACK = ["fit", "--config", "x.yaml", "--wandb"]


@pytest.mark.parametrize(
    ("args", "environment", "preloaded"),
    [
        (TRACK, {"WANDB_MODE": "offline"}, True),
        ([*TRACK, "--wandb_mode", "disabled"], {"WANDB_MODE": "offline"}, False),
        ([*TRACK, "--wandb_mode=disabled"], {"WANDB_MODE": "online"}, False),
        (TRACK, {"WANDB_MODE": "disabled"}, False),
        ([*TRACK, "--wandb_mode", "sideways"], {"WANDB_MODE": "offline"}, False),  # the CLI says why
        (["fit", "--config", "x.yaml"], {"WANDB_MODE": "offline"}, False),
        (TRACK, {"WANDB_MODE": "offline", "LOCAL_RANK": "1"}, False),  # DDP's second process starts no run
    ],
)
def test_the_console_imports_wandb_before_torch_when_it_will_track(
    workdir: Path, args: list[str], environment: dict[str, str], preloaded: bool
) -> None:
    """The console imports wandb first, and makes its run start cheaper (ai_scratch.wandb_startup),
    when the command will track, and nothing of wandb when it will not (a fresh interpreter, as
    the console script starts). wandb's Launch package is not imported either way."""
    probe = (
        "import sys; from ai_scratch.entry import preload_tracking; "
        "from ai_scratch.wandb_startup import WANDB_LAUNCH_INPUTS; done = preload_tracking(sys.argv[1:]); "
        "loaded = 'wandb' in sys.modules; from wandb.sdk.wandb_run import Run; skips = hasattr(Run._detect_and_apply_job_inputs, 'skips_unstaged_launch_inputs'); "
        "print(done, loaded, skips, WANDB_LAUNCH_INPUTS in sys.modules, 'torch' in sys.modules)"
    )
    env = subprocess_env(workdir, **environment)
    result = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(preloaded), str(preloaded), str(preloaded), "False", "False"]
