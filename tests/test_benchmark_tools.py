"""The measuring tools of benchmarks/ (their timings are not tested; what they count is)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> types.ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


class Clock:
    """A perf_counter that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def accounting_and_clock(monkeypatch: pytest.MonkeyPatch) -> tuple[object, Clock]:
    module = load("tracking_overhead")
    clock = Clock()
    monkeypatch.setattr(module, "time", clock)
    return module.Accounting(), clock


def test_accounting_counts_nested_tracking_calls_once_in_the_outermost_component(accounting_and_clock) -> None:  # type: ignore[no-untyped-def]
    accounting, clock = accounting_and_clock

    def log_artifact() -> str:
        clock.now += 2.0
        return "logged"

    timed_artifact = accounting.timed("checkpoint artifacts", log_artifact)

    def save_checkpoint() -> str:
        clock.now += 3.0
        return timed_artifact()  # a checkpoint save triggers the artifact callback

    assert accounting.timed("checkpoints", save_checkpoint)() == "logged"
    assert timed_artifact() == "logged"
    # the save's 5 s all count as checkpoints; the artifact logged on its own adds its 2 s
    assert accounting.seconds == {"checkpoints": 5.0, "checkpoint artifacts": 2.0}


def test_accounting_counts_a_call_that_raises_and_recovers(accounting_and_clock) -> None:  # type: ignore[no-untyped-def]
    accounting, clock = accounting_and_clock

    def network_down() -> None:
        clock.now += 1.5
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError):
        accounting.timed("loggers", network_down)()
    accounting.timed("figures", lambda: setattr(clock, "now", clock.now + 0.5))()
    assert accounting.seconds == {"loggers": 1.5, "figures": 0.5}


def test_a_tracked_process_is_charged_its_exit_beyond_the_untracked_one_of_the_same_repeat() -> None:
    from collections import Counter

    module = load("tracking_overhead")
    accounts = {"baseline": [Counter(), Counter()], "tracked": [Counter(figures=1.0), Counter(figures=1.2)]}
    exits = {"baseline": [0.5, 0.6], "tracked": [0.8, 0.5]}
    module.charge_exits(accounts, exits)
    assert [account[module.EXIT] for account in accounts["tracked"]] == pytest.approx([0.3, -0.1])  # paired, noise and all
    assert accounts["tracked"][0]["figures"] == 1.0 and accounts["baseline"] == [Counter(), Counter()]


def test_modules_imported_by_lists_what_a_fresh_interpreter_loads_for_the_code() -> None:
    module = load("tracking_overhead")
    loaded = module.modules_imported_by("import json")
    assert {"json", "json.decoder"} <= loaded
    assert "numpy" not in loaded and "sys" not in loaded  # nothing it did not import, nothing from the start


def test_the_import_of_wandb_is_charged_only_for_what_the_untracked_fit_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("tracking_overhead")
    imports = {"import ai_scratch.cli": {"torch", "numpy", "asyncio"}, "import wandb": {"wandb", "pydantic", "numpy", "asyncio"}}
    monkeypatch.setattr(module, "modules_imported_by", lambda code, root=None: imports[code])
    # imported before the clock starts on wandb's import: the untracked fit pays for them too
    assert module.shared_with_the_untracked_fit() == ["asyncio", "numpy"]
