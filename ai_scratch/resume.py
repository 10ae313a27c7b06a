"""Resuming is continuing: a fit resumed from a checkpoint goes on in the same records.

Lightning restores the weights, the optimizer, the loops and the callbacks from a checkpoint, so
that a fit killed partway and resumed with ``--ckpt_path`` trains on exactly. What it does not
restore is where the run was recorded: by default a resumed fit opens ``version_N+1/`` and a new
wandb run, and one training is split in two records. This module keeps it in one:

* every checkpoint names its run (:class:`RecordRun`): the local run folder, and the wandb run's
  id and project;
* the resumed fit writes into that folder (:func:`continuing_csv_logger`): the rows of
  ``metrics.csv`` up to the checkpoint are kept, those the killed process logged after it are
  dropped, since the resumed fit logs them again;
* and into that wandb run (``WandbLogger(id=..., resume="allow")``), its history steps going on
  after the last step any earlier process of the run wrote (:class:`ContinueWandbSteps`), so that
  no step is logged twice even when the earlier process was killed after its last checkpoint.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from callbacks.wandb_helpers import wandb_logger

#: The checkpoint's key for :class:`RunRecord`.
CHECKPOINT_KEY = "ai_scratch_run"


@dataclass
class RunRecord:
    """Where a fit was recorded, as its checkpoints remember it.

    Args:
        log_dir: the local run folder (``runs/<model>/<experiment>/version_N``).
        epoch: the epoch of the checkpoint (the last one it completed).
        global_step: the optimizer steps taken when the checkpoint was written.
        wandb_id: the wandb run's id, when the fit was tracked.
        wandb_project: the wandb run's project.
    """

    log_dir: str | None
    epoch: int = 0
    global_step: int = 0
    wandb_id: str | None = None
    wandb_project: str | None = None


class RecordRun(Callback):
    """Write a :class:`RunRecord` into every checkpoint, under ``checkpoint["ai_scratch_run"]``, and
    flush the loggers' files with it."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.log_dir = trainer.log_dir  # collective: every process asks, here where every process is

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        logger = wandb_logger(trainer)
        record = RunRecord(
            log_dir=self.log_dir,
            epoch=int(checkpoint.get("epoch", trainer.current_epoch)),
            global_step=int(checkpoint.get("global_step", trainer.global_step)),
            wandb_id=logger.version if logger is not None else None,
            wandb_project=logger.name if logger is not None else None,
        )
        checkpoint[CHECKPOINT_KEY] = asdict(record)
        # the local records reach the disk with every checkpoint: a resumed fit finds them complete
        for each in trainer.loggers:
            each.save()


def read_record(ckpt_path: str) -> RunRecord | None:
    """The :class:`RunRecord` of a checkpoint file. A checkpoint written without one (by an earlier
    version, or by plain Lightning) in ``<run>/checkpoints/`` names its run by where it lies."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    stored = checkpoint.get(CHECKPOINT_KEY)
    if stored:
        return RunRecord(**stored)
    folder = Path(ckpt_path).resolve().parent
    if folder.name != "checkpoints":
        return None
    return RunRecord(log_dir=str(folder.parent), epoch=int(checkpoint.get("epoch", 0)), global_step=int(checkpoint.get("global_step", 0)))


def continuing_csv_logger(record: RunRecord) -> CSVLogger:
    """A CSVLogger that writes on into ``record.log_dir/metrics.csv``.

    The rows logged up to the checkpoint are kept: those of its epoch and before, and rows without
    an epoch logged before its step. The killed process may have logged more (the rest of an epoch,
    the next one): those are dropped, because the resumed fit trains and logs that part again.
    Lightning's CSV writer starts a fresh file in a folder that holds one, so the kept rows are
    moved aside first and logged again through the new writer, then the copy is removed.
    """
    log_dir = Path(record.log_dir)
    if rank_zero_only.rank != 0:  # the files are rank zero's; the other processes write none
        return CSVLogger(save_dir=str(log_dir.parent), name="", version=log_dir.name)
    metrics_file = log_dir / "metrics.csv"
    kept: list[dict[str, str]] = []
    if metrics_file.is_file():
        with metrics_file.open(newline="") as file:
            kept = [row for row in csv.DictReader(file) if _before_checkpoint(row, record)]
        metrics_file.replace(log_dir / "metrics.before-resume.csv")
    logger = CSVLogger(save_dir=str(log_dir.parent), name="", version=log_dir.name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # it is: this run's own folder
        for row in kept:
            values = {key: _number(value) for key, value in row.items() if key != "step" and value not in ("", None)}
            logger.log_metrics(values, step=int(float(row["step"])))
        logger.save()
    (log_dir / "metrics.before-resume.csv").unlink(missing_ok=True)
    return logger


def _number(text: str) -> int | float:
    """A CSV cell as it was logged: ``3`` an int (an epoch), ``0.25`` a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _before_checkpoint(row: dict[str, str], record: RunRecord) -> bool:
    epoch, step = row.get("epoch"), row.get("step")
    if epoch not in ("", None):
        return float(epoch) <= record.epoch
    return step not in ("", None) and float(step) < record.global_step


class ContinueWandbSteps(Callback):
    """Start a resumed wandb run's history after ``last_step``, the last step an earlier process wrote.

    Online, wandb resumes a run at the step its server has seen; offline it starts again at 0, and
    a process killed after its last checkpoint may have written steps that the server has not seen
    yet. wandb moves a run's step forward when a row names a later one: the first row of the
    resumed fit does, and records the epoch it resumed from.
    """

    def __init__(self, last_step: int | None, resumed_from_epoch: int) -> None:
        self.last_step = last_step
        self.resumed_from_epoch = resumed_from_epoch

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        run = logger.experiment
        start = max(run.step, -1 if self.last_step is None else self.last_step + 1)
        # commit=False: the marker joins the fit's first row instead of making a row of its own
        run.log({"trainer/resumed_from_epoch": self.resumed_from_epoch}, step=start, commit=False)
