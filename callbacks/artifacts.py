"""Every checkpoint that Lightning's ModelCheckpoint writes, as a versioned wandb Artifact."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from callbacks.wandb_helpers import module_info, run_is_disabled, wandb_run


class WandbCheckpointArtifacts(Callback):
    """Log checkpoints as versions of one wandb model Artifact, with aliases and metadata.

    After each checkpoint any :class:`~lightning.pytorch.callbacks.ModelCheckpoint` of the
    trainer writes (top-k files and ``last.ckpt``), a new version of the artifact is logged with
    the aliases ``latest``, ``epoch-N`` and, for the monitored best, ``best``; its metadata holds
    the epoch, the global step, the monitored metric and score, the file's original name, and the
    module's ``model_info()`` when the module has one. When training ends, the final weights are
    saved to ``final.ckpt`` and logged too, with the alias ``final``.

    Unlike ``WandbLogger(log_model=...)`` this works in wandb offline mode: the artifact is
    recorded in the run's offline log and uploaded by ``wandb sync``.

    Lightning moves ModelCheckpoint to the end of the callback list, so a file written in one hook
    is picked up at the next hook this callback sees (the end of the epoch, the start of the next
    one, or the end of training): every file is logged, none is missed.

    Args:
        name: artifact name; default ``model-<run id>``, as Lightning's WandbLogger names it.
        log_final: save and log the final weights when training ends.
        metadata: extra metadata added to every version.

    Acts on global rank zero only (the final save is a collective call made on every rank, outside
    rank-zero code). Without wandb or without a WandbLogger it warns once; checkpoints stay on disk.

    Example::

        trainer = Trainer(logger=WandbLogger(project="demo"),
                          callbacks=[ModelCheckpoint(monitor="val_loss"), WandbCheckpointArtifacts()])
    """

    def __init__(self, name: str | None = None, log_final: bool = True, metadata: dict[str, Any] | None = None) -> None:
        if name is not None and not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"WandbCheckpointArtifacts: artifact name may hold letters, digits, '-', '_' and '.', got {name!r}")
        self.name = name
        self.log_final = log_final
        self.metadata = dict(metadata or {})
        self._logged: dict[str, tuple[int, int]] = {}  # path -> (mtime_ns, size) of the logged file
        self._saved_at: dict[str, int] = {"epoch": 0, "global_step": 0}
        self.logged_versions: list[dict[str, Any]] = []  # what was logged, for the user to inspect

    # The checkpoint dict holds the epoch and step of the save; remember them for the file.
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._saved_at = {"epoch": int(checkpoint.get("epoch", 0)), "global_step": int(checkpoint.get("global_step", 0))}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_new_checkpoints(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_new_checkpoints(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_new_checkpoints(trainer, pl_module)
        if not self.log_final:
            return
        final_path = self._final_path(trainer)
        trainer.save_checkpoint(final_path, weights_only=False)  # collective: every rank calls it, rank zero writes
        if trainer.is_global_zero:
            self._log_file(trainer, pl_module, final_path, aliases=["final"], checkpoint_callback=None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Whatever was written before the failure is kept.
        self._log_new_checkpoints(trainer, pl_module)

    # ------------------------------------------------------------------ internals
    def _final_path(self, trainer: L.Trainer) -> str:
        callback = trainer.checkpoint_callback
        directory = getattr(callback, "dirpath", None) or os.path.join(trainer.default_root_dir, "checkpoints")
        return os.path.join(directory, "final.ckpt")

    def _log_new_checkpoints(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint):
                continue
            # best first, so that when best and last are written together "latest" ends on last
            paths = sorted(callback.best_k_models, key=lambda p: p != callback.best_model_path)
            paths += [callback.best_model_path, callback.last_model_path]  # monitor-less callbacks keep only these
            for path in dict.fromkeys(p for p in paths if p):
                if self._is_new(path):
                    is_best = bool(callback.monitor) and path == callback.best_model_path
                    self._log_file(trainer, pl_module, path, aliases=["best"] if is_best else [], checkpoint_callback=callback)

    def _is_new(self, path: str) -> bool:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return False
        return self._logged.get(path) != (stat.st_mtime_ns, stat.st_size)

    def _log_file(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        path: str,
        aliases: list[str],
        checkpoint_callback: ModelCheckpoint | None,
    ) -> None:
        stat = os.stat(path)
        self._logged[path] = (stat.st_mtime_ns, stat.st_size)
        run = wandb_run(trainer, "WandbCheckpointArtifacts")
        if run is None or run_is_disabled(run):
            return
        import wandb

        epoch, step = self._saved_at["epoch"], self._saved_at["global_step"]
        metadata: dict[str, Any] = {
            "epoch": epoch,
            "global_step": step,
            "original_filename": Path(path).name,
            "model_info": module_info(pl_module),
            **self.metadata,
        }
        if checkpoint_callback is not None and checkpoint_callback.monitor:
            score = checkpoint_callback.best_k_models.get(path, checkpoint_callback.current_score)
            best = checkpoint_callback.best_model_score
            metadata.update(
                monitor=checkpoint_callback.monitor,
                mode=checkpoint_callback.mode,
                score=_as_float(score),
                best_score=_as_float(best),
            )
        all_aliases = list(dict.fromkeys(["latest", f"epoch-{epoch}", *aliases]))
        artifact = wandb.Artifact(self.name or f"model-{run.id}", type="model", metadata=metadata)
        artifact.add_file(path, name="model.ckpt")
        run.log_artifact(artifact, aliases=all_aliases)
        self.logged_versions.append({"path": path, "aliases": all_aliases, **{k: metadata[k] for k in ("epoch", "global_step")}})


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value.item() if hasattr(value, "item") else value)
    return None if math.isnan(number) else number
