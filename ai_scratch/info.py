"""Model metadata: what every model in the history carries about itself.

The fields are those of the planning document's ``get_model_info``. The static part lives on the
class (``Model.INFO``, a frozen :class:`ModelInfo`); the part that is known only once a model is
built (parameter count, input and output size, precision, device) is added by
:meth:`ai_scratch.base.BaseModel.model_info`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: The six modules of the course, by number: the names used in wandb groups (``module-1-foundations``).
MODULES: dict[int, str] = {
    1: "foundations",
    2: "cnn-revolution",
    3: "applying-cnns",
    4: "sequence-models",
    5: "generative-era",
    6: "modern-paradigm",
}

#: The category of each module, used as a wandb tag.
CATEGORIES: dict[int, str] = {
    1: "foundation",
    2: "cnn",
    3: "applied-cnn",
    4: "sequence",
    5: "generative",
    6: "modern",
}

Pattern = Literal["engine-based", "numpy"]
Difficulty = Literal["beginner", "intermediate", "advanced"]


@dataclass(frozen=True)
class ModelInfo:
    """Static, historical facts about one model.

    Args:
        name: short lower-case key, used in the wandb project (``ai-from-scratch-{name}``) and tags.
        full_name: the name a reader knows, e.g. ``"LeNet-5"``.
        module: the course module, 1 to 6; it fixes ``category`` and ``module_name``.
        pattern: ``"numpy"`` for NumPy-era learners behind the adapter, ``"engine-based"`` for PyTorch.
        year_introduced, authors, paper_title: the paper the implementation follows.
        key_innovations: what the paper brought that was new.
        architecture_type, learning_algorithm, loss_function, optimizer, framework: how it learns.
        difficulty_level, estimated_training_time, key_learning_objectives: for the student.
        device_support: where the implementation runs.
    """

    name: str
    full_name: str
    module: int
    pattern: Pattern
    year_introduced: int
    authors: tuple[str, ...]
    paper_title: str
    key_innovations: tuple[str, ...]
    architecture_type: str
    learning_algorithm: str
    loss_function: str
    optimizer: str
    framework: str
    difficulty_level: Difficulty
    key_learning_objectives: tuple[str, ...]
    estimated_training_time: str = "seconds"
    device_support: tuple[str, ...] = ("cpu", "gpu", "mps")
    category: str = field(init=False)
    module_name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.module not in MODULES:
            raise ValueError(f"module must be one of {sorted(MODULES)}, got {self.module}")
        if self.pattern not in ("engine-based", "numpy"):
            raise ValueError(f"pattern must be 'engine-based' or 'numpy', got {self.pattern!r}")
        if not self.name or self.name != self.name.lower() or " " in self.name:
            raise ValueError(f"name must be a lower-case key without spaces, got {self.name!r}")
        object.__setattr__(self, "category", CATEGORIES[self.module])
        object.__setattr__(self, "module_name", MODULES[self.module])

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dictionary (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
