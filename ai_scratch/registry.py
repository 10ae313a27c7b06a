"""What exists: the models of the history, the experiment configs and the comparisons."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

import configs
from ai_scratch.info import ModelInfo

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
    "ai_scratch.applying_cnns.rcnn",
    "ai_scratch.applying_cnns.unet",
    "ai_scratch.applying_cnns.faster_rcnn",
    "ai_scratch.applying_cnns.yolo",
    "ai_scratch.applying_cnns.mask_rcnn",
    "ai_scratch.sequence_models.rnn",
    "ai_scratch.sequence_models.lstm",
    "ai_scratch.sequence_models.gru",
    "ai_scratch.sequence_models.bahdanau",
    "ai_scratch.sequence_models.transformer",
    "ai_scratch.generative_era.vae",
    "ai_scratch.generative_era.gan",
    "ai_scratch.generative_era.dcgan",
    "ai_scratch.generative_era.ddpm",
    "ai_scratch.modern_paradigm.gcn",
    "ai_scratch.modern_paradigm.bert",
    "ai_scratch.modern_paradigm.bitnet",
)

#: ``ai-scratch compare <name>``: the module whose ``main(args)`` runs it, and what it shows.
COMPARISONS = {
    "module-1": ("ai_scratch.comparisons.module1", "Perceptron, ADALINE and MLP on linear data and on XOR"),
    "module-2": ("ai_scratch.comparisons.module2", "depth without and with shortcuts, ReLU against sigmoid, accuracy per parameter"),
    "module-3": ("ai_scratch.comparisons.module3", "R-CNN, Faster R-CNN and YOLO by test mAP against images per second and by recall on crowded cells; RoIAlign against RoIPool; U-Net with and without skips and weight map"),
    "module-4": ("ai_scratch.comparisons.module4", "RNN, LSTM and GRU on the adding problem; attention against none"),
    "module-5": ("ai_scratch.comparisons.module5", "samples of VAE, GAN, DCGAN and DDPM side by side"),
    "module-6": ("ai_scratch.comparisons.module6", "GCN against an MLP and a deep, over-smoothed GCN; BERT's masked-LM pre-training against the best constant guess; BitNet b1.58 against its full-precision twin"),
    "history": ("ai_scratch.comparisons.history", "the capability matrix: every model on shared tasks, by year"),
}


def model_classes() -> list[type]:
    """The model classes (each with ``INFO``) defined in the listed modules, importing them. A model
    that another imports (R-CNN's AlexNet) is counted once, in its own module."""
    from ai_scratch.base import BaseModel

    classes = []
    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module_name
                and issubclass(value, BaseModel)
                and isinstance(value.__dict__.get("INFO"), ModelInfo)
            ):
                classes.append(value)
    return classes


def models() -> list[ModelInfo]:
    """The models' static info, by module and year."""
    return sorted((cls.INFO for cls in model_classes()), key=lambda info: (info.module, info.year_introduced))


def configs_dir() -> Path:
    """The experiment configs that ship with the package: ``<model>/<experiment>.yaml``."""
    return Path(configs.__file__).parent


def find_config(name: str) -> Path | None:
    """The shipped experiment config that ``name`` refers to (``perceptron/xor_weakness``, with or
    without ``.yaml``, with or without a leading ``configs/``), or ``None``."""
    stem = name.removeprefix("configs/")
    for candidate in (stem, f"{stem}.yaml"):
        path = configs_dir() / candidate
        if path.is_file():
            return path
    return None


def experiments(directory: Path | None = None) -> list[dict[str, Any]]:
    """Each experiment config: its name (``perceptron/xor_weakness``), path, kind, claim and the
    learning objectives it demonstrates."""
    directory = directory or configs_dir()
    found = []
    for path in sorted(directory.glob("*/*.yaml")):
        if path.parent.name == "sweeps":
            continue
        experiment = (yaml.safe_load(path.read_text()) or {}).get("experiment") or {}
        claim = experiment.get("claim")
        found.append(
            {
                "name": f"{path.parent.name}/{path.stem}",
                "path": str(path),
                "kind": experiment.get("kind", "strength"),
                "claim": f"{claim['metric']} {claim['comparison']} {claim['value']}" if claim else None,
                "objectives": list(experiment.get("objectives") or []),
                "paper_result": experiment.get("paper_result") or "",
                "description": " ".join(str(experiment.get("description") or "").split()),
            }
        )
    return found
