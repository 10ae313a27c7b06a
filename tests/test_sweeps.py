"""The sweep templates: every parameter wandb would pass is an override `ai-scratch fit` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ai_scratch.cli import main
from conftest import CONFIGS, ROOT

SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))


def extremes(spec: dict) -> list:
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    kind = int if spec["distribution"].startswith("int") else float
    return [kind(spec["min"]), kind(spec["max"])]


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.stem)
def test_sweep_arguments_parse(sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = yaml.safe_load(sweep.read_text())
    assert spec["metric"] == {"name": "val_accuracy", "goal": "maximize"}
    assert spec["project"].startswith("ai-from-scratch-") and spec["method"] == "bayes"
    assert spec["early_terminate"]["type"] == "hyperband"
    command = spec["command"]
    assert command[:3] == ["${env}", "ai-scratch", "fit"] and command[-1] == "${args}" and "--wandb" in command
    base = command[2:-1]
    monkeypatch.chdir(ROOT)  # the command names configs/ relative to the checkout
    for position in (0, -1):
        # wandb's ${args}: --<name>=<value>
        args = [f"--{name}={extremes(values)[position]}" for name, values in spec["parameters"].items()]
        with pytest.raises(SystemExit) as exit_info:
            main([*base, *args, "--print_config"])
        assert exit_info.value.code == 0, capsys.readouterr().err
        printed = yaml.safe_load(capsys.readouterr().out)
        for name, values in spec["parameters"].items():
            node = printed
            for part in name.split("."):
                node = node[part]
            assert node == extremes(values)[position], name
