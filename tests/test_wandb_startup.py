"""ai_scratch.wandb_startup: a wandb run starts without wandb's Launch imports and without the
0.2 s sleeps of its port-file poll, and records what it recorded before. Each case runs a fresh
interpreter: the changes are made once per process, and the suite's own process stays as wandb
made it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

from ai_scratch import wandb_startup

# One offline run, then (optionally) inputs staged for W&B Launch and a second run, in one process.
# _publish_job_input is wandb's function that applies one staged input to a run; the offline
# transaction log does not record job inputs, so a recorder around it is how the test sees them.
PROBE = r"""
import json, sys
from ai_scratch import wandb_startup
applied = wandb_startup.install() if sys.argv[1] == "install" else []
again = wandb_startup.install() if applied else []
import wandb
from wandb.sdk.wandb_run import Run
report = {"applied": applied, "again": again,
          "wrapped_once": getattr(Run._detect_and_apply_job_inputs, "__wrapped__", None) is not None
                          and not hasattr(Run._detect_and_apply_job_inputs.__wrapped__, "__wrapped__")}
run = wandb.init(project="startup", config={"lr": 0.1})
run.log({"loss": 1.0})
run.finish()
report["launch_loaded_by_init"] = "wandb.sdk.launch" in sys.modules
if sys.argv[2] == "stage":
    from wandb.sdk.launch import manage_wandb_config
    from wandb.sdk.launch.inputs import internal
    published = []
    original = internal._publish_job_input
    internal._publish_job_input = lambda staged, run: (published.append(staged.include), original(staged, run))
    manage_wandb_config(include=["lr"])  # no run yet: staged until wandb.init
    run = wandb.init(project="startup", config={"lr": 0.1})
    run.finish()
    report["published"] = published
print(json.dumps(report))
"""


def probe(workdir: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=workdir, env=subprocess_env(workdir),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_run_starts_without_the_launch_imports_and_still_applies_staged_launch_inputs(workdir: Path) -> None:
    report = probe(workdir, "install", "stage")
    # both apply to the wandb this project installs; if a release drops one, this says which
    assert report["applied"] == ["launch inputs", "port file poll", "installed packages"]
    assert report["again"] == report["applied"] and report["wrapped_once"]  # once per process
    assert report["launch_loaded_by_init"] is False
    # inputs staged for Launch before wandb.init are applied to the run, as wandb itself does
    assert report["published"] == [["lr"]]
    runs = sorted((workdir / "wandb_root" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2 and all(path.stat().st_size > 0 for path in runs)


def test_without_it_wandb_init_imports_launch(workdir: Path) -> None:
    """The control: what install() avoids does happen in this wandb without it (if this fails, a
    wandb release no longer imports Launch in wandb.init, and the wrapper can go)."""
    report = probe(workdir, "plain", "no-stage")
    assert report["applied"] == [] and report["launch_loaded_by_init"] is True


def test_a_run_records_the_same_installed_packages_with_it(tmp_path: Path) -> None:
    """The run's requirements.txt (every installed distribution's name and version) is the same
    file with install() as without."""
    recorded = []
    for how in ("install", "plain"):
        workdir = tmp_path / how
        workdir.mkdir()
        assert probe(workdir, how, "no-stage")["applied"] == ([] if how == "plain" else ["launch inputs", "port file poll", "installed packages"])
        (requirements,) = (workdir / "wandb_root" / "wandb").glob("offline-run-*/files/requirements.txt")
        recorded.append(requirements.read_text())
    assert recorded[0] == recorded[1]
    assert "wandb==" in recorded[0] and "torch==" in recorded[0] and len(recorded[0].splitlines()) > 50


def test_installed_distributions_names_and_versions_as_importlib_metadata_does(tmp_path: Path) -> None:
    """Every installed distribution, in order, as wandb.util.working_set reads it (Name, then
    Version, each from importlib.metadata's full parse); and the unusual files: CRLF lines, a
    folded header, a long description, PKG-INFO only, no version, no metadata at all."""
    from importlib.metadata import PathDistribution, distributions

    def as_wandb_reads(dists) -> list[tuple[str, str]]:
        read = []
        for distribution in dists:
            try:
                read.append((distribution.metadata["Name"], distribution.version))
            except (KeyError, UnicodeDecodeError, TypeError):
                pass
        return read

    def ours(dists) -> list[tuple[str, str]]:
        return [(d.key, d.version) for d in wandb_startup.installed_distributions(dists)]

    assert ours(None) == as_wandb_reads(distributions()) and len(ours(None)) > 50
    files = {
        "plain": ("METADATA", "Metadata-Version: 2.1\nName: Plain_Pkg\nVersion: 1.2.3\n\nName: not this\n\nA long text.\n" * 1),
        "crlf": ("METADATA", "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 0.1\r\n\r\nVersion: 9\r\n"),
        "folded": ("METADATA", "Metadata-Version: 2.1\nName: folded\n        name\nVersion: 2.0\n\nbody\n"),
        "pkg-info": ("PKG-INFO", "Metadata-Version: 1.0\nName: old\nVersion: 0.0.1\n"),
        "no-version": ("METADATA", "Metadata-Version: 2.1\nName: unversioned\n\nVersion: 1\n"),
        "nothing": (None, ""),
    }
    dists = []
    for folder, (filename, text) in files.items():
        path = tmp_path / f"{folder}.dist-info"
        path.mkdir()
        if filename:
            (path / filename).write_bytes(text.encode())
        dists.append(PathDistribution(path))
    expected = as_wandb_reads(dists)
    assert ours(dists) == expected
    assert [name for name, _ in expected][:4] == ["Plain_Pkg", "crlf", "folded\nname", "old"]  # what each case is
    # (then, in Python 3.11, ("unversioned", None) and (None, None); from 3.12, KeyError leaves them out)


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK"])
def test_a_process_other_than_rank_zero_is_left_alone(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    assert wandb_startup.first_process() is False
    assert wandb_startup.install() == []



# Every pydantic model of wandb, and the description of each of its fields, after ``import wandb``
# plainly or through wandb_startup.import_wandb(); and how often pydantic's own search of the call
# stack for a class's source ran.
DESCRIPTIONS = r"""
import json, sys
import pydantic
from pydantic._internal import _docs_extraction
searched = []  # None: this pydantic searches no other way (then only the descriptions are compared)
original = getattr(_docs_extraction, "_extract_source_from_frame", None)
if original is None or sys.version_info >= (3, 13):  # 3.13+: pydantic reads the class's own first line
    searched = None
else:
    _docs_extraction._extract_source_from_frame = lambda cls: (searched.append(cls.__name__), original(cls))[1]
if sys.argv[1] == "read once":
    from ai_scratch import wandb_startup
    wandb_startup.import_wandb()
else:
    import wandb
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
models = {f"{c.__module__}.{c.__qualname__}": {name: field.description for name, field in c.model_fields.items()}
          for c in set(subclasses(pydantic.BaseModel)) if c.__module__.startswith("wandb")}
print(json.dumps({"models": models, "searched": searched}))
"""


def descriptions(workdir: Path, how: str) -> dict:
    result = subprocess.run([sys.executable, "-c", DESCRIPTIONS, how], cwd=workdir, env=subprocess_env(workdir),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_wandb_imported_with_docstrings_read_once_has_the_same_field_descriptions(workdir: Path) -> None:
    plain, read_once = descriptions(workdir, "plain"), descriptions(workdir, "read once")
    assert read_once["models"] == plain["models"]
    described = sum(text is not None for fields in plain["models"].values() for text in fields.values())
    assert described >= 150, described  # wandb.Settings alone documents some 150 fields
    assert plain["models"]["wandb.sdk.wandb_settings.Settings"]["mode"]  # a description, read from source
    if plain["searched"] is not None:  # pydantic searched the stack for every model without it, for at most one with it
        assert len(plain["searched"]) >= 20 and len(read_once["searched"]) <= 1, read_once["searched"]


MODELS = '''
import functools
from pydantic import BaseModel, ConfigDict


class Documented(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


@functools.total_ordering
class Decorated(Documented):
    """A class docstring."""

    first: int = 0
    """The first field."""

    def __lt__(self, other):
        return self.first < other.first


class Plain(Documented):
    x: float = 1.0  # a comment, not a docstring
    y: float = 2.0
    """Only y has one."""


class ColumnZero(Documented):
    text: str = ""
    """A docstring of two lines
that go back to the first column."""


class Brackets(Documented):
    z: list[int] = [
1, 2]
    """After brackets that reach the first column."""


def factory():
    class Nested(Documented):
        inner: int = 0
        """Inside a function."""

    return Nested


Nested = factory()
'''
CLASSES = ("Decorated", "Plain", "ColumnZero", "Brackets", "Nested")


def test_attribute_docstrings_read_once_reads_what_pydantic_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decorated class and a plain one, read from their statements; a docstring and a list that
    reach the first column (the statement's cut does not parse) and a class made in a function,
    read by pydantic's own function: the same descriptions as pydantic's own reading, and
    pydantic's function back in place afterwards."""
    import importlib

    from pydantic._internal import _docs_extraction, _fields

    original = _fields.extract_docstrings_from_cls
    searched = []
    search = getattr(_docs_extraction, "_extract_source_from_frame", None)
    counted = search is not None and sys.version_info < (3, 13)  # 3.13+: pydantic reads the class's first line
    if counted:
        monkeypatch.setattr(_docs_extraction, "_extract_source_from_frame", lambda cls: (searched.append(cls.__name__), search(cls))[1])
    for name in ("models_plain", "models_read_once"):
        (tmp_path / f"{name}.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = importlib.import_module("models_plain")
    assert searched == (["Documented", *CLASSES] if counted else [])  # pydantic searches the stack for every class
    searched.clear()
    with wandb_startup.attribute_docstrings_read_once() as applies:
        assert applies and _fields.extract_docstrings_from_cls is not original
        read_once = importlib.import_module("models_read_once")
    assert _fields.extract_docstrings_from_cls is original
    assert searched == (["ColumnZero", "Brackets", "Nested"] if counted else [])

    def described(module) -> dict:
        return {cls: {name: field.description for name, field in getattr(module, cls).model_fields.items()}
                for cls in CLASSES}

    assert described(read_once) == described(plain)
    assert described(plain) == {
        "Decorated": {"first": "The first field."},
        "Plain": {"x": None, "y": "Only y has one."},
        "ColumnZero": {"text": "A docstring of two lines\nthat go back to the first column."},
        "Brackets": {"z": "After brackets that reach the first column."},
        "Nested": {"inner": "Inside a function."},
    }


def test_a_statement_cut_inside_a_string_does_not_parse() -> None:
    lines = ['class A:\n', '    """Two lines,\n', 'the second in column 0."""\n', 'B = 1\n']
    assert wandb_startup._top_level_statement(lines, 1) is None
    assert isinstance(wandb_startup._top_level_statement(lines, 4), ast.Assign)
    decorated = ["@decorator\n", "@other(\n", ")\n", "class C:\n", "    x: int = 0\n", "\n", "# note\n", "D = 2\n"]
    statement = wandb_startup._top_level_statement(decorated, 1)
    assert isinstance(statement, ast.ClassDef) and statement.name == "C" and len(statement.decorator_list) == 2
    assert wandb_startup._top_level_statement(decorated, 5) is None  # not the start of a top-level statement
