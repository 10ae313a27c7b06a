"""The tutorials (``docs/tutorials/module-<n>-<name>.md``) stay true: every command they show runs.

A tutorial's commands are the lines ``$ ai-scratch ...`` of its ``console`` blocks. Each runs here
in its quick form: a fit at the smoke sizes of ``ai-scratch reproduce --quick`` (one epoch of two
batches), a comparison or a reproduction with ``--quick``, a sweep checked as wandb would check it.
The figures and claims they show need the full runs, which ``reproduce`` checks; here, that the
commands and their options still exist, that the figures a tutorial names are among those its
commands draw, and that the images it embeds are committed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ai_scratch.cli import main
from ai_scratch.comparisons.runs import QUICK
from ai_scratch.info import MODULES
from ai_scratch.registry import COMPARISONS, find_config
from ai_scratch.sweep import load_sweep

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
COMMAND = re.compile(r"^\$ (ai-scratch .+)$", re.MULTILINE)
CONSOLE_BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def tutorials() -> list[Path]:
    return sorted(DOCS.glob("module-*.md"))


def commands(tutorial: Path) -> list[list[str]]:
    """The ``ai-scratch`` commands of a tutorial's console blocks, as argument lists (without the program)."""
    blocks = CONSOLE_BLOCK.findall(tutorial.read_text(encoding="utf-8"))
    return [shlex.split(line)[1:] for block in blocks for line in COMMAND.findall(block)]


def quick(args: list[str]) -> list[str] | None:
    """The quick form of a tutorial's command; ``None`` for a sweep (checked, not run)."""
    name = args[0]
    if name == "fit":
        return [*args, "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *QUICK]
    if name in ("compare", "reproduce"):
        return [*args, "--quick"]
    if name == "sweep":
        return None
    return args


def test_every_module_has_a_tutorial_whose_commands_exist() -> None:
    assert [path.name.split("-")[1] for path in tutorials()] == [str(n) for n in MODULES], [p.name for p in tutorials()]
    for tutorial in tutorials():
        number = int(tutorial.name.split("-")[1])
        assert tutorial.name == f"module-{number}-{MODULES[number]}.md"
        found = commands(tutorial)
        assert len(found) >= 4, f"{tutorial.name}: a tutorial is told through at least four commands"
        for args in found:
            assert args[0] in {"fit", "compare", "reproduce", "info", "list", "sweep"}, (tutorial.name, args)
            if args[0] == "fit":
                config = args[args.index("--config") + 1]
                assert find_config(config) is not None, (tutorial.name, config)
            if args[0] == "compare":
                assert args[1] in COMPARISONS, (tutorial.name, args)
            if args[0] == "sweep":
                load_sweep(args[1])  # a sweep wandb would reject is an error here


def test_the_figures_a_tutorial_shows_are_files_of_the_project() -> None:
    """An image a tutorial embeds lives in docs/ (committed), so the page shows it offline."""
    for tutorial in tutorials():
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", tutorial.read_text(encoding="utf-8")):
            assert (tutorial.parent / image).resolve().is_file(), (tutorial.name, image)


def figures_named(tutorial: Path) -> set[str]:
    """The figure files a tutorial's text names (`` `learning_curves.png` ``, `` `runs/comparisons/module-1/x.png` ``)."""
    return set(re.findall(r"`([A-Za-z0-9_./-]+\.png)`", tutorial.read_text(encoding="utf-8")))


@pytest.mark.slow
@pytest.mark.parametrize("tutorial", tutorials(), ids=lambda path: path.stem)
def test_every_command_of_a_tutorial_runs_in_its_quick_form(tutorial: Path, workdir: Path, wandb_offline: Path) -> None:
    for args in commands(tutorial):
        form = quick(args)
        if form is None:
            continue
        try:
            main(form)
        except SystemExit as ended:
            assert ended.code in (0, None), (tutorial.name, form, ended.code)
    # every figure the text tells the reader to open is one that its commands drew
    drawn = {path.name for path in workdir.rglob("*.png")}
    for name in figures_named(tutorial):
        assert (workdir / name).is_file() if "/" in name else name in drawn, (tutorial.name, name, sorted(drawn))
