"""An experiment: one historical claim, stated in its config and checked at the end of ``fit``.

Each config under ``configs/<model>/<experiment>.yaml`` carries an ``experiment:`` section::

    experiment:
      name: xor_weakness
      kind: weakness                 # does the run show a strength or a weakness?
      description: A single threshold unit cannot compute XOR (Minsky and Papert, 1969).
      dataset_type: synthetic
      claim: {metric: val_accuracy, comparison: "<=", value: 0.75}
      objectives:                    # which of the model's learning objectives the run demonstrates
        - why linearly separable data is learned exactly and XOR never is

The claim says what the history leads us to expect; at the end of ``fit`` the CLI compares the
run's metric with it and says, in one line, whether the run reproduced it. A run that reproduces
its claim marks its objectives met (``claim/objectives_met`` in its wandb summary; the model card
of ``ai-scratch info`` reads them from the local runs). The experiment also
gives the wandb naming of the planning document: run name, tags and group.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Comparison = Literal[">=", "<=", ">", "<", "=="]
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass
class Claim:
    """``metric comparison value``, e.g. ``val_accuracy >= 0.97``.

    Args:
        metric: a logged metric: ``val_*`` and ``train_*`` are read at the end of fit, ``test_*``
            after a test run on the held-out split that the CLI starts for the purpose.
        comparison: one of ``>=``, ``<=``, ``>``, ``<``, ``==``.
        value: the historical expectation.
    """

    metric: str
    comparison: Comparison
    value: float

    def __post_init__(self) -> None:
        if self.comparison not in _OPERATORS:
            raise ValueError(f"claim comparison must be one of {list(_OPERATORS)}, got {self.comparison!r}")

    def holds(self, observed: float) -> bool:
        return not math.isnan(observed) and bool(_OPERATORS[self.comparison](observed, self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.comparison} {self.value:g}"


@dataclass
class ClaimResult:
    """The outcome of checking a claim: what was expected, what was observed."""

    experiment: str
    claim: Claim
    observed: float | None
    objectives: list[str] = field(default_factory=list)
    seconds: float | None = None  # of the fit (and the test) that checked it

    @property
    def reproduced(self) -> bool:
        return self.observed is not None and self.claim.holds(self.observed)

    def line(self) -> str:
        """The one line a run prints about its claim."""
        if self.observed is None:
            return f"[claim] {self.experiment}: {self.claim} expected, but {self.claim.metric} was not logged: NOT CHECKED"
        verdict = "REPRODUCED" if self.reproduced else "NOT REPRODUCED"
        return f"[claim] {self.experiment}: {self.claim} expected, observed {self.claim.metric} = {self.observed:.4f}: {verdict}"

    def summary(self) -> dict[str, Any]:
        """Flat keys for a wandb summary or a logger."""
        return {
            "claim/metric": self.claim.metric,
            "claim/comparison": self.claim.comparison,
            "claim/expected": self.claim.value,
            "claim/observed": self.observed,
            "claim/reproduced": self.reproduced,
            "claim/objectives_met": list(self.objectives) if self.reproduced else [],
            **({"claim/seconds": self.seconds} if self.seconds is not None else {}),
        }


@dataclass
class Experiment:
    """What an experiment config says about itself.

    Args:
        name: the experiment's name, as the planning document names it (``xor_weakness``); the
            wandb run name and a tag.
        kind: ``strength`` or ``weakness``: which side of the model's history the run shows.
        description: one or two sentences for the student; the wandb run's notes.
        claim: the expected result, checked at the end of fit; ``None`` for an exploratory run.
        dataset_type: ``synthetic``, ``real``, ``vision``, ``nlp`` or ``graph`` (a tag).
        scale: ``small``, ``medium`` or ``large`` (a tag).
        domain: ``tabular``, ``vision``, ``nlp``, ``sequence`` (generated sequences such as the adding
            problem), ``graph``, ``multimodal``, ``audio`` (a tag).
        group: the wandb group; by default ``{model}-strengths`` or ``{model}-weaknesses``.
            Comparisons use ``{model}-vs-{previous}``, module overviews ``module-{n}-{name}``.
        tags: extra wandb tags.
        monitor: the metric the default checkpoint callback ranks checkpoints by.
        monitor_mode: ``min`` or ``max`` for ``monitor``.
        objectives: the learning objectives of the model (its ``INFO.key_learning_objectives``, word
            for word) that the run demonstrates; a reproduced claim marks them met.
        paper_result: the paper's own result that the claim reproduces in miniature, with where the
            paper shows it ("Figure 1: a four-layer CNN with ReLUs reaches 25% training error on
            CIFAR-10 six times faster than with tanh"); the insight reports set the two side by side.
    """

    name: str = "default"
    kind: Literal["strength", "weakness"] = "strength"
    description: str = ""
    claim: Claim | None = None
    dataset_type: Literal["synthetic", "real", "vision", "nlp", "graph"] = "synthetic"
    scale: Literal["small", "medium", "large"] = "small"
    domain: Literal["tabular", "vision", "nlp", "sequence", "graph", "multimodal", "audio"] = "tabular"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    monitor: str = "val_loss"
    monitor_mode: Literal["min", "max"] = "min"
    objectives: list[str] = field(default_factory=list)
    paper_result: str = ""

    def run_group(self, model_name: str) -> str:
        return self.group or f"{model_name}-{'strengths' if self.kind == 'strength' else 'weaknesses'}"

    def run_tags(self) -> list[str]:
        """The experiment's tags: name, strength/weakness, dataset type, scale, domain, extras."""
        return list(dict.fromkeys([self.name, self.kind, self.dataset_type, self.scale, self.domain, *self.tags]))

    def check(self, metrics: dict[str, Any]) -> ClaimResult | None:
        """Compare the claim with logged ``metrics``; ``None`` when there is no claim."""
        if self.claim is None:
            return None
        value = metrics.get(self.claim.metric)
        observed = float(value.item() if hasattr(value, "item") else value) if value is not None else None
        return ClaimResult(self.name, self.claim, observed, list(self.objectives))

    def unknown_objectives(self, known: tuple[str, ...] | list[str]) -> list[str]:
        """The objectives this experiment names that are not among ``known`` (the model's own)."""
        return [objective for objective in self.objectives if objective not in known]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
