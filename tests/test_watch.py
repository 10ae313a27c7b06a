"""WandbWatch: gradient and parameter histograms in the run's history, read back from real offline wandb.

The histograms are binned as ``wandb.watch`` bins them (checked against wandb's own code), taken
once per optimizer step every ``log_freq`` steps, and after Lightning has unscaled mixed-precision
gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import WandbWatch
from callbacks import wandb_helpers
from callbacks.watch import histograms
from conftest import quiet_trainer
from wandb_log import find_runs, read_run


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    wandb_helpers._said.clear()


class StepLogger(L.LightningModule):
    """A small classifier that logs its loss at every step, so that every step ends a history row."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(batches: int) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(8 * batches, 4, generator=generator), torch.randint(0, 3, (8 * batches,), generator=generator))
    return DataLoader(data, batch_size=8)


def fit(root: Path, watch: WandbWatch, batches: int, module: type[L.LightningModule] | None = None, **settings: Any) -> Any:
    """One epoch of ``module`` (StepLogger by default) with ``watch``, in an offline run; returns the
    run's log read back."""
    torch.manual_seed(0)
    logger = WandbLogger(project="watch-test", save_dir=str(root))
    trainer = quiet_trainer(default_root_dir=root, logger=logger, callbacks=[watch], max_epochs=1, **settings)
    trainer.fit((module or StepLogger)(), loader(batches))
    logger.experiment.finish()
    (run_file,) = find_runs(root)
    return read_run(run_file)


def histogram_rows(log: Any, key: str) -> list[dict[str, Any]]:
    return [row for row in log.history if f"{key}/_type" in row]


def test_histograms_are_binned_as_wandb_watch_bins_them(wandb_offline: Path) -> None:
    """wandb's own TorchHistory.log_tensor_stats and ours, on the same tensors, in one offline run."""
    import wandb
    from wandb.integration.torch.wandb_torch import TorchHistory

    generator = torch.Generator().manual_seed(0)
    tensors = {
        "spread": torch.randn(1000, generator=generator),
        "constant": torch.full((5,), 3.0),
        "zeros": torch.zeros(4),
        "with_nan_and_inf": torch.tensor([1.0, float("nan"), 2.0, float("inf"), -0.5]),
        "half": torch.randn(300, generator=generator).half(),
    }
    ours = histograms(tensors)
    assert set(ours) == set(tensors)
    assert histograms({"all_nan": torch.tensor([float("nan"), float("inf")]), "empty": torch.empty(0)}) == {}
    run = wandb.init(project="watch-test", dir=str(wandb_offline))
    reference = TorchHistory()
    for key, tensor in tensors.items():
        reference.log_tensor_stats(tensor, f"wandb/{key}")
    run.log({f"ours/{key}": histogram for key, histogram in ours.items()})
    run.finish()
    (row,) = read_run(find_runs(wandb_offline)[0]).history
    for key in tensors:
        assert row[f"ours/{key}/_type"] == "histogram"
        assert row[f"ours/{key}/values"] == row[f"wandb/{key}/values"], key
        assert row[f"ours/{key}/bins"] == pytest.approx(row[f"wandb/{key}/bins"], rel=1e-6), key
    assert sum(row["ours/with_nan_and_inf/values"]) == 3  # the finite values only


def test_every_log_freq_optimizer_steps_gradients_parameters_and_the_graph(wandb_offline: Path) -> None:
    watch = WandbWatch(log="all", log_freq=2, log_graph=True)
    log = fit(wandb_offline, watch, batches=6)
    assert "graph_0" in log.summary and watch._graph_watched is None  # the graph through wandb.watch, unwatched
    names = [name for name, _ in StepLogger().named_parameters()]
    for name in names:
        # steps 0, 2 and 4 of six, each in its own row
        assert len(histogram_rows(log, f"gradients/{name}")) == 3, name
        assert len(histogram_rows(log, f"parameters/{name}")) == 3, name


class EpochLogger(StepLogger):
    """Logs its loss once per epoch only, as most of the models here do: no row ends mid-epoch."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss


def test_each_step_s_histograms_are_kept_at_their_step_when_the_module_logs_once_per_epoch(wandb_offline: Path) -> None:
    """Added to the open row (wandb.watch's way), the histograms of steps 0, 2 and 4 would overwrite
    each other until the epoch's metrics close the row: only step 4's would be left."""
    rows = histogram_rows(fit(wandb_offline, WandbWatch(log_freq=2), batches=6, module=EpochLogger), "gradients/net.0.weight")
    assert [row["trainer/global_step"] for row in rows] == [0, 2, 4]


def test_gradient_histograms_are_unscaled_under_16_bit_mixed_precision(wandb_offline: Path) -> None:
    """A GradScaler multiplies the loss by 65,536 before backward (wandb.watch's hooks see that);
    the histogram of the first step's gradient must span what it spans in float32."""
    spans = {}
    for name, plugins in {"32": None, "16-mixed": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]}.items():
        root = wandb_offline / name
        root.mkdir()
        log = fit(root, WandbWatch(log="gradients", log_freq=1), batches=1, plugins=plugins)
        (row,) = histogram_rows(log, "gradients/net.0.weight")
        bins = row["gradients/net.0.weight/bins"]
        spans[name] = (bins[0], bins[-1])
    assert spans["16-mixed"] == pytest.approx(spans["32"], rel=0.05)  # scaled, they would be 65,536x


def test_no_wandb_logger_warns_once_and_logs_nothing(tmp_path: Path) -> None:
    watch = WandbWatch()
    trainer = quiet_trainer(default_root_dir=tmp_path, callbacks=[watch], max_epochs=1)
    with pytest.warns(UserWarning, match="WandbWatch: the Trainer has no WandbLogger"):
        trainer.fit(StepLogger(), loader(2))
    assert watch._run is None
