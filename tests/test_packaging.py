"""A non-editable install carries the experiment configs: ``--config <name>`` works from anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, subprocess_env


@pytest.mark.slow  # a fresh environment in a subprocess: CI runs it with the slow tests
def test_an_installed_wheel_finds_an_experiment_by_name_from_another_directory(workdir: Path) -> None:
    wheels, site = workdir / "wheels", workdir / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("ai_scratch-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)

    env = subprocess_env(workdir, PYTHONPATH=str(site))  # the installed copy, not the checkout
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    probe = "import ai_scratch, configs; print(ai_scratch.__file__); print(configs.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert all(line.startswith(str(site)) for line in where.stdout.split())

    printed = subprocess.run(
        [sys.executable, "-m", "ai_scratch", "fit", "--config", "perceptron/xor_weakness", "--print_config"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert yaml.safe_load(printed.stdout)["experiment"]["name"] == "xor_weakness"
