"""Fill a wandb run's tags, notes and config from the model's info and the experiment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from callbacks.wandb_helpers import module_info, run_is_disabled, wandb_run, warn_once


def tags_from_model_info(info: Mapping[str, Any]) -> list[str]:
    """Tags a model's info implies: its name, ``module-N``, category, pattern and framework.

    Keys that are missing are skipped, so any module's info works.
    """
    tags = [info.get("name")]
    if info.get("module") is not None:
        tags.append(f"module-{info['module']}")
    tags += [info.get("category"), info.get("pattern"), info.get("framework")]
    return [str(tag) for tag in tags if tag]


class WandbRunMetadata(Callback):
    """Tag and describe the wandb run of a fit.

    At ``setup`` the run gets the union of its own tags, ``tags`` and the tags implied by the
    module's ``model_info()`` (name, ``module-N``, category, pattern, framework); ``notes``
    replace the run's notes; ``config`` and the module's info (under ``model_info``) are added to
    the run's config.

    wandb fixes a run's group and job type when the run starts, so this callback cannot change
    them: pass :meth:`init_kwargs` to the ``WandbLogger`` that starts the run. If the run's group
    or job type differs from the one asked for, the callback warns once.

    Args:
        tags: extra tags.
        group: the wandb group, e.g. ``perceptron-weaknesses`` or ``module-1-foundations``.
        job_type: the wandb job type, e.g. ``fit``.
        notes: a description of the experiment.
        config: extra configuration (nested dicts are fine).
        model_tags: add the tags implied by ``model_info()``.

    Example::

        metadata = WandbRunMetadata(tags=["xor"], group="perceptron-weaknesses", notes="...")
        trainer = Trainer(logger=WandbLogger(project="demo", **metadata.init_kwargs()), callbacks=[metadata])
    """

    def __init__(
        self,
        tags: Iterable[str] = (),
        group: str | None = None,
        job_type: str | None = None,
        notes: str | None = None,
        config: Mapping[str, Any] | None = None,
        model_tags: bool = True,
    ) -> None:
        self.tags = [str(tag) for tag in tags]
        for tag in self.tags:
            if not tag or len(tag) > 64:
                raise ValueError(f"WandbRunMetadata: a wandb tag must hold 1 to 64 characters, got {tag!r}")
        self.group = group
        self.job_type = job_type
        self.notes = notes
        self.config = dict(config or {})
        self.model_tags = model_tags

    def init_kwargs(self, pl_module: L.LightningModule | None = None) -> dict[str, Any]:
        """Keyword arguments for ``WandbLogger``/``wandb.init``: tags, group, job type, notes, config."""
        tags = list(self.tags)
        config = dict(self.config)
        if pl_module is not None:
            info = module_info(pl_module)
            if self.model_tags:
                tags += tags_from_model_info(info)
            config["model_info"] = info
        kwargs: dict[str, Any] = {"tags": list(dict.fromkeys(tags)), "config": config}
        kwargs.update({k: v for k, v in (("group", self.group), ("job_type", self.job_type), ("notes", self.notes)) if v})
        return kwargs

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        run = wandb_run(trainer, "WandbRunMetadata")
        if run is None or run_is_disabled(run):
            return
        info = module_info(pl_module)
        tags = list(run.tags or ()) + self.tags + (tags_from_model_info(info) if self.model_tags else [])
        run.tags = tuple(dict.fromkeys(tags))
        if self.notes:
            run.notes = self.notes
        run.config.update({"model_info": info, **self.config}, allow_val_change=True)
        for field in ("group", "job_type"):
            wanted = getattr(self, field)
            if wanted and getattr(run, field, None) != wanted:
                warn_once(
                    f"WandbRunMetadata: the run's {field} is fixed when it starts and is "
                    f"{getattr(run, field, None)!r}, not {wanted!r}; pass WandbRunMetadata.init_kwargs() to WandbLogger."
                )
