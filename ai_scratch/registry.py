"""What exists: the models of the history and the experiment configs."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from ai_scratch.info import ModelInfo

#: The repository root (where ``configs/`` lives in a checkout or an editable install).
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Every model module, in the order of the history.
MODEL_MODULES = (
    "ai_scratch.foundations.perceptron",
    "ai_scratch.foundations.adaline",
    "ai_scratch.foundations.mlp",
    "ai_scratch.foundations.hopfield",
    "ai_scratch.cnn_revolution.lenet5",
    "ai_scratch.cnn_revolution.alexnet",
    "ai_scratch.cnn_revolution.vgg",
    "ai_scratch.cnn_revolution.googlenet",
    "ai_scratch.cnn_revolution.resnet",
)


def model_classes() -> list[type]:
    """The model classes (each with ``INFO``), importing their modules."""
    from ai_scratch.base import BaseModel

    classes = []
    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and isinstance(value.__dict__.get("INFO"), ModelInfo):
                classes.append(value)
    return classes


def models() -> list[ModelInfo]:
    """The models' static info, by module and year."""
    return sorted((cls.INFO for cls in model_classes()), key=lambda info: (info.module, info.year_introduced))


def configs_dir() -> Path:
    local = Path.cwd() / "configs"
    return local if local.is_dir() else PROJECT_ROOT / "configs"


def experiments(directory: Path | None = None) -> list[dict[str, Any]]:
    """Each experiment config: its path, name, kind and claim."""
    directory = directory or configs_dir()
    found = []
    for path in sorted(directory.glob("*/*.yaml")):
        if path.parent.name == "sweeps":
            continue
        experiment = (yaml.safe_load(path.read_text()) or {}).get("experiment") or {}
        claim = experiment.get("claim")
        found.append(
            {
                "path": str(path.relative_to(directory.parent)) if directory.parent in path.parents else str(path),
                "name": experiment.get("name", path.stem),
                "kind": experiment.get("kind", "strength"),
                "claim": f"{claim['metric']} {claim['comparison']} {claim['value']}" if claim else None,
            }
        )
    return found
