"""Every exported callback on Lightning's own demo modules: none of them fails a fit.

``BoringModel`` trains on plain tensors (no labels), ``ManualOptimBoringModel`` steps its optimizer
itself, and ``LightningTransformer`` takes inputs *and* targets in ``forward``: a figure that does
not apply to one of them says so once and draws nothing; the wandb callbacks record the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos import BoringModel, LightningTransformer
from lightning.pytorch.demos.boring_classes import ManualOptimBoringModel
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import DataLoader, TensorDataset

import callbacks
from callbacks import wandb_helpers
from conftest import quiet_trainer
from wandb_log import find_runs, read_run

VOCABULARY, SEQUENCE = 50, 12


class OfflineTransformer(LightningTransformer):
    """Lightning's demo transformer on random tokens (its WikiText2 download cannot run offline),
    with a validation step so that the figures have validation batches to look at."""

    def __init__(self) -> None:
        super().__init__(vocab_size=VOCABULARY)

    def prepare_data(self) -> None:
        pass

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, target = batch
        self.log("val_loss", torch.nn.functional.nll_loss(self(inputs, target), target.view(-1)))


def random_tokens() -> DataLoader:
    tokens = torch.randint(0, VOCABULARY, (16, SEQUENCE + 1), generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=4)


def every_exported_callback() -> list[L.Callback]:
    return [
        callbacks.WandbWatch(log="all", log_freq=2),
        callbacks.WandbCheckpointArtifacts(),
        callbacks.WandbRunMetadata(tags=["demo"]),
        callbacks.GeneralizationGap(),
        callbacks.ChannelsLast(),
        callbacks.StopOnNonFiniteLoss(),
        *callbacks.default_figures(every_n_epochs=1, gradient_flow_every_n_steps=2),
    ]


@pytest.mark.parametrize(
    ("module", "loaders", "not_drawn"),
    [
        (BoringModel, lambda: {}, {"ConfusionMatrix", "DecisionBoundary", "ConvFilters", "LearningCurves"}),
        (ManualOptimBoringModel, lambda: {}, {"ConfusionMatrix", "DecisionBoundary", "ConvFilters", "LearningCurves"}),
        (
            OfflineTransformer,
            lambda: {"train_dataloaders": random_tokens(), "val_dataloaders": random_tokens()},
            {"ConfusionMatrix", "DecisionBoundary", "ConvFilters"},
        ),
    ],
)
def test_every_exported_callback_on_a_lightning_demo_module(
    wandb_offline: Path, caplog: pytest.LogCaptureFixture, module: type, loaders: Any, not_drawn: set[str]
) -> None:
    assert set(callbacks.__all__) >= {type(c).__name__ for c in every_exported_callback()}
    wandb_helpers._said.clear()
    figures = [c for c in every_exported_callback()]
    trainer = quiet_trainer(
        default_root_dir=wandb_offline.parent,
        logger=WandbLogger(project="demos", save_dir=str(wandb_offline)),
        callbacks=[*figures, ModelCheckpoint(monitor=None)],
        enable_checkpointing=True,
        max_epochs=2,
        limit_train_batches=4,
        limit_val_batches=2,
    )
    with caplog.at_level(logging.INFO):
        trainer.fit(module(), **loaders())
    trainer.logger.experiment.finish()
    assert trainer.state.finished and trainer.current_epoch == 2

    said = [record.getMessage() for record in caplog.records if "no figure, because" in record.getMessage()]
    assert {message.split(":")[0] for message in said} == not_drawn
    assert len(said) == len(set(said))  # each once, though asked at every epoch
    drawn = {c.name for c in figures if isinstance(c, callbacks.FigureCallback) and c.saved}
    assert "gradient_flow" in drawn and not {c.name for c in figures if type(c).__name__ in not_drawn} & drawn

    log = read_run(find_runs(wandb_offline)[0])
    assert log.exit_code == 0 and "demo" in log.tags
    assert any(key.startswith("gradients/") for key in log.history_keys)
    assert any("final" in artifact["aliases"] for artifact in log.artifacts)
    assert {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")} == drawn
