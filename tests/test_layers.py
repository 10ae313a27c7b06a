"""The comparison code lives above the models: it runs their experiments, and no model file imports it."""

from __future__ import annotations

import ast
from pathlib import Path

from ai_scratch.registry import MODEL_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "ai_scratch"
#: What runs, compares or reports on experiments; the models know none of it.
ABOVE_THE_MODELS = ("ai_scratch.comparisons", "ai_scratch.reproduce", "ai_scratch.cards", "ai_scratch.dashboard",
                    "ai_scratch.insights", "ai_scratch.reports", "ai_scratch.sweep")  # fmt: skip


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_model_file_imports_the_code_that_compares_the_models() -> None:
    folders = {module.split(".")[1] for module in MODEL_MODULES}
    model_files = [path for folder in sorted(folders) for path in (PACKAGE / folder).glob("*.py")]
    assert len(model_files) >= 26
    for path in model_files:
        above = sorted(name for name in imported(path) if name.startswith(ABOVE_THE_MODELS))
        assert above == [], f"{path.relative_to(PACKAGE)} imports {above}"
