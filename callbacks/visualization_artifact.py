"""All the figures of a fit as one wandb ``visualization`` Artifact, logged when the fit ends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from callbacks.figures import FigureCallback
from callbacks.wandb_helpers import module_info, run_is_disabled, say_once, wandb_run


class WandbFigureArtifact(Callback):
    """Log every file under the figures folder of a run as one ``visualization`` Artifact.

    The figure callbacks (:class:`~callbacks.figures.FigureCallback`) draw their final figures at
    the end of training and save them under ``<trainer.log_dir>/figures/``. This callback acts at
    the end of the fit, which Lightning calls after every callback's end of training, so it finds
    them all wherever it stands in the callback list. The artifact holds every file of that folder
    (per-epoch figures too) and every file a figure callback of the trainer saved elsewhere, under
    its path relative to the folder (else its file name).

    Args:
        name: artifact name; default ``figures-<run id>``.
        directory: the folder of the figures; default ``<trainer.log_dir>/figures``, where the
            figure callbacks write.
        metadata: extra metadata of the artifact.

    Raises:
        ValueError: for a name with other characters than letters, digits, ``-``, ``_`` and ``.``.

    Metadata: ``epoch`` (epochs completed, Lightning's ``current_epoch`` at the end of the fit, as
    in the final checkpoint), ``global_step``, ``figures`` (the files' names in the artifact) and
    ``model_info``; aliases ``latest`` and ``epoch-N``. Acts on global rank zero only; without wandb
    or without a WandbLogger it warns once and does nothing (the PNG files stay on disk). What was
    logged is kept in :attr:`logged`.

    Example::

        trainer = Trainer(logger=WandbLogger(project="demo"),
                          callbacks=[WandbFigureArtifact(), LearningCurves(), ConfusionMatrix()])
    """

    def __init__(
        self, name: str | None = None, directory: str | Path | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"WandbFigureArtifact: artifact name may hold letters, digits, '-', '_' and '.', got {name!r}")
        self.name = name
        self.directory = Path(directory) if directory is not None else None
        self.metadata = dict(metadata or {})
        self._folder: Path | None = None
        #: after the fit: ``{name in the artifact: file}`` of the last artifact logged
        self.logged: dict[str, Path] = {}

    # trainer.log_dir broadcasts from rank zero (a collective call): resolved here, on every rank
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._folder = self.directory or Path(trainer.log_dir or trainer.default_root_dir) / "figures"

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        files = self.figure_files(trainer)
        if not files:
            say_once("WandbFigureArtifact: no visualization artifact, because no figure was written.")
            return
        run = wandb_run(trainer, "WandbFigureArtifact")
        if run is None or run_is_disabled(run):
            return
        import wandb

        epoch = trainer.current_epoch
        metadata = {
            "epoch": epoch,
            "global_step": trainer.global_step,
            "figures": list(files),
            "model_info": module_info(pl_module),
            **self.metadata,
        }
        artifact = wandb.Artifact(self.name or f"figures-{run.id}", type="visualization", metadata=metadata)
        for name, path in files.items():
            artifact.add_file(str(path), name=name)
        run.log_artifact(artifact, aliases=["latest", f"epoch-{epoch}"])
        self.logged = files

    def figure_files(self, trainer: L.Trainer) -> dict[str, Path]:
        """``{name in the artifact: file}``: the figures folder's files, and those the trainer's
        figure callbacks saved outside it, in name order."""
        folder = self._folder or Path(trainer.default_root_dir) / "figures"
        found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
        for callback in trainer.callbacks:
            if isinstance(callback, FigureCallback):
                for path in callback.saved:
                    path = Path(path)
                    if path.is_file() and not path.resolve().is_relative_to(folder.resolve()):
                        found.setdefault(path.name, path)
        return dict(sorted(found.items()))
