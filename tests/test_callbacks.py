"""The callbacks on their own, with small modules defined here (not from ai_scratch).

Each callback must work with any LightningModule, with a WandbLogger (real wandb, offline), with
another logger, or with none, warning once when wandb or its logger is missing.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import nn
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from callbacks import (
    ConfusionMatrix,
    ConvFilters,
    DecisionBoundary,
    GradientFlow,
    LearningCurves,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
    WandbCheckpointArtifacts,
    WandbRunMetadata,
    WandbWatch,
    default_figures,
)
from callbacks import wandb_helpers
from conftest import quiet_trainer
from wandb_log import find_runs, read_run


class TinyClassifier(L.LightningModule):
    """Three classes in the plane; knows nothing of ai_scratch. Offers model_info() like any module may."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        scores = self(x)
        loss = nn.functional.cross_entropy(scores, y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True)
        self.log(f"{stage}_accuracy", (scores.argmax(-1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.05)

    def model_info(self) -> dict[str, Any]:
        return {"name": "tiny", "module": 9, "category": "test", "pattern": "engine-based", "framework": "pytorch"}


class TinyConvNet(L.LightningModule):
    """A two-convolution image classifier without model_info()."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU())
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def plane_loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    labels = torch.arange(3).repeat_interleave(40)
    points = centres[labels] + 0.6 * torch.randn(120, 2, generator=generator)
    data = TensorDataset(points, labels)
    return DataLoader(data, batch_size=30, shuffle=True, generator=generator), DataLoader(data, batch_size=60)


def image_loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 12, 12, generator=generator), torch.randint(0, 4, (64,), generator=generator))
    return DataLoader(data, batch_size=16), DataLoader(data, batch_size=32)


def trainer(root: Path, logger: Any, callbacks: list[Any], max_epochs: int = 4, **settings: Any) -> L.Trainer:
    return quiet_trainer(default_root_dir=root, logger=logger, callbacks=callbacks, max_epochs=max_epochs,
                         **{"enable_checkpointing": True, **settings})  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    wandb_helpers._said.clear()


def test_all_callbacks_with_a_wandb_logger_offline(wandb_offline: Path) -> None:
    metadata = WandbRunMetadata(tags=["demo"], group="tiny-strengths", job_type="fit", notes="three blobs", config={"purpose": "test"})
    checkpoints = ModelCheckpoint(monitor="val_loss", save_top_k=2, save_last=True)
    artifacts = WandbCheckpointArtifacts(metadata={"dataset": "blobs"})
    figures = default_figures()
    logger = WandbLogger(project="callbacks-demo", save_dir=str(wandb_offline), **metadata.init_kwargs())
    fit = trainer(wandb_offline.parent, logger, [metadata, WandbWatch(log="all", log_freq=2), artifacts, checkpoints, *figures])
    train, val = plane_loaders()
    fit.fit(TinyClassifier(), train, val)
    logger.experiment.finish()

    log = read_run(find_runs(wandb_offline)[0])
    assert log.project == "callbacks-demo" and log.group == "tiny-strengths" and log.notes == "three blobs"
    assert {"demo", "tiny", "module-9", "test", "engine-based", "pytorch"} <= set(log.tags)
    assert log.config["model_info"]["name"] == "tiny" and log.config["purpose"] == "test"
    assert any(k.startswith("gradients/net.0.weight") for k in log.history_keys)
    assert any(k.startswith("parameters/net.0.weight") for k in log.history_keys)

    # every file the ModelCheckpoint wrote is a version; the last one is the final model
    written = {Path(p).name for p in checkpoints.best_k_models} | {"last.ckpt"}
    logged = {a["metadata"]["original_filename"] for a in log.artifacts}
    assert written | {"final.ckpt"} <= logged
    assert all(a["metadata"]["dataset"] == "blobs" and a["metadata"]["model_info"]["name"] == "tiny" for a in log.artifacts)
    best = [a for a in log.artifacts if "best" in a["aliases"]]
    assert best and best[-1]["metadata"]["score"] == pytest.approx(float(checkpoints.best_model_score))
    assert all(f"epoch-{a['metadata']['epoch']}" in a["aliases"] and "latest" in a["aliases"] for a in log.artifacts)
    assert "final" in log.artifacts[-1]["aliases"] and log.artifacts[-1]["metadata"]["global_step"] == fit.global_step

    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert {"learning_curves", "confusion_matrix", "decision_boundary", "gradient_flow"} <= images
    assert log.exit_code == 0


def test_figures_without_any_logger_go_under_the_root_dir(tmp_path: Path) -> None:
    figures = default_figures()
    fit = trainer(tmp_path, False, figures, max_epochs=3)
    train, val = plane_loaders()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(TinyClassifier(), train, val)
    assert not [w for w in caught if "wandb" in str(w.message).lower()]  # no run is a normal state
    drawn = {path.stem for path in (tmp_path / "figures").glob("*.png")}
    assert drawn == {"learning_curves", "confusion_matrix", "decision_boundary", "gradient_flow"}
    curves = figures[0]
    assert [epoch for epoch, _ in curves.history["val_loss"]] == [0, 1, 2]
    assert curves.history["train_loss"][-1][1] < curves.history["train_loss"][0][1]
    matrix = figures[1].matrix
    assert matrix.shape == (3, 3) and matrix.sum() == 120
    gradient_flow = figures[3]
    assert set(gradient_flow.norms) == {"net.0.weight", "net.2.weight"}
    assert all(len(series) == len(gradient_flow.steps) for series in gradient_flow.norms.values())


def test_wandb_callbacks_with_another_logger_warn_once_each_and_carry_on(tmp_path: Path) -> None:
    callbacks = [WandbWatch(), WandbCheckpointArtifacts(), WandbRunMetadata(tags=["x"]), LearningCurves()]
    fit = trainer(tmp_path, CSVLogger(tmp_path), callbacks, max_epochs=2)
    train, val = plane_loaders()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(TinyClassifier(), train, val)
        fit.fit(TinyClassifier(), train, val)  # a second fit in the same process: no new warnings
    messages = [str(w.message) for w in caught if "WandbLogger" in str(w.message)]
    assert sorted(m.split(":")[0] for m in messages) == ["WandbCheckpointArtifacts", "WandbRunMetadata", "WandbWatch"]
    assert (Path(fit.log_dir) / "figures" / "learning_curves.png").is_file()
    assert (Path(fit.log_dir) / "checkpoints").is_dir()


def test_conv_filters_find_the_convolutions_of_any_module(tmp_path: Path) -> None:
    figure = ConvFilters()
    fit = trainer(tmp_path, False, [figure], max_epochs=1)
    train, val = image_loaders()
    fit.fit(TinyConvNet(), train, val)
    assert {p.name for p in figure.saved} == {"conv_filters.png", "feature_maps.png"}
    assert all(p.stat().st_size > 5_000 for p in figure.saved)

    named = ConvFilters(layers=["features.1", "features.3"])
    trainer(tmp_path / "named", False, [named], max_epochs=1).fit(TinyConvNet(), train, val)
    assert len(named.saved) == 2
    misnamed = trainer(tmp_path / "bad", False, [ConvFilters(layers=["nope"])], max_epochs=1)
    with pytest.raises(ValueError, match="no submodule named"):
        misnamed.fit(TinyConvNet(), train, val)
    assert misnamed.global_step == 0  # said at setup, before any training


def test_figures_that_do_not_apply_say_so_once_and_draw_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 12x12 images: no decision boundary; a linear model: no convolution filters
    boundary, matrix, filters = DecisionBoundary(every_n_epochs=1), ConfusionMatrix(num_classes=4), ConvFilters()
    train, val = image_loaders()
    with caplog.at_level(logging.INFO):
        trainer(tmp_path, False, [boundary, matrix, filters], max_epochs=2).fit(TinyConvNet(), train, val)
        linear_filters = ConvFilters()
        plane_train, plane_val = plane_loaders()
        trainer(tmp_path / "linear", False, [linear_filters], max_epochs=1).fit(TinyClassifier(), plane_train, plane_val)
    assert boundary.saved == [] and len(matrix.saved) == 1 and linear_filters.saved == []
    said = [record.getMessage() for record in caplog.records if "no figure, because" in record.getMessage()]
    assert said == [
        "DecisionBoundary: no figure, because its inputs are not two numbers per example.",  # once, not at each of 3 draws
        "ConvFilters: no figure, because TinyClassifier has no 2-D convolution.",
    ]


def test_a_figure_callback_is_an_abstract_base() -> None:
    from callbacks import FigureCallback

    with pytest.raises(TypeError, match="abstract"):
        FigureCallback()  # the mistake shows at construction, not in the middle of a user's fit


class NoticesTeardown(TinyClassifier):
    """Records when Lightning's strategy tears down: Strategy.teardown moves the module to the CPU."""

    torn_down = False

    def cpu(self) -> NoticesTeardown:
        self.torn_down = True
        return super().cpu()


class RecordsWhenCollected(LearningCurves):
    def collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Any:
        self.collected_after_teardown = pl_module.torn_down
        return super().collect(trainer, pl_module)


def test_the_final_figures_are_collected_before_the_strategy_tears_down(tmp_path: Path) -> None:
    # After teardown the module sits on the CPU: a confusion matrix computed then would run a GPU
    # model's side pass on the CPU, and its DDP gather would hand CPU tensors to NCCL, which
    # refuses them (seen on an H200 with strategy ddp).
    figure, module = RecordsWhenCollected(), NoticesTeardown()
    train, val = plane_loaders()
    trainer(tmp_path, False, [figure], max_epochs=2).fit(module, train, val)
    assert module.torn_down, "the probe must see the teardown, or this test proves nothing"
    assert figure.collected_after_teardown is False
    assert [epoch for epoch, _ in figure.history["train_loss"]] == [0, 1]  # the last epoch is drawn too
    assert [p.name for p in figure.saved] == ["learning_curves.png"]


class TwoPhaseClassifier(TinyClassifier):
    """Logs a warm-up metric in its first two epochs only, as a model with a pre-training phase does."""

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        loss = super()._step(batch, stage)
        if self.current_epoch < 2:
            self.log(f"{stage}_warmup_loss", 2 * loss, on_step=False, on_epoch=True)
        return loss


def test_a_metric_no_longer_logged_ends_its_curve(tmp_path: Path) -> None:
    # trainer.callback_metrics keeps the last value of a metric the model has stopped logging:
    # the curve must end where the logging did, not run on flat
    curves = LearningCurves()
    train, val = plane_loaders()
    trainer(tmp_path, False, [curves], max_epochs=4).fit(TwoPhaseClassifier(), train, val)
    assert [epoch for epoch, _ in curves.history["train_warmup_loss"]] == [0, 1]
    assert [epoch for epoch, _ in curves.history["val_warmup_loss"]] == [0, 1]
    assert [epoch for epoch, _ in curves.history["train_loss"]] == [0, 1, 2, 3]
    assert [epoch for epoch, _ in curves.history["val_loss"]] == [0, 1, 2, 3]


def test_every_n_epochs_writes_numbered_figures(tmp_path: Path) -> None:
    curves = LearningCurves(every_n_epochs=2)
    train, val = plane_loaders()
    trainer(tmp_path, False, [curves], max_epochs=4).fit(TinyClassifier(), train, val)
    assert sorted(p.name for p in curves.saved) == ["learning_curves.png", "learning_curves_epoch001.png", "learning_curves_epoch003.png"]


def test_the_final_figures_are_written_and_logged_by_the_end_of_the_fit(wandb_offline: Path) -> None:
    """By the time fit returns every file is complete and every image is in the run, in the order drawn."""
    figures = [LearningCurves(), ConfusionMatrix(), GradientFlow(every_n_steps=1)]
    logger = WandbLogger(project="writer-test", save_dir=str(wandb_offline))
    train, val = plane_loaders()
    trainer(wandb_offline.parent, logger, list(figures), max_epochs=2).fit(TinyClassifier(), train, val)
    logger.experiment.finish()
    paths = [path for figure in figures for path in figure.saved]
    assert [p.name for p in paths] == ["learning_curves.png", "confusion_matrix.png", "gradient_flow.png"]
    for path in paths:
        with Image.open(path) as image:
            image.load()  # a truncated file would fail here
            assert image.size[0] > 300 and image.info["dpi"] == pytest.approx((100, 100), abs=0.01)
    log = read_run(find_runs(wandb_offline)[0])
    logged = [key.split("/")[1] for row in log.history for key in row if key.startswith("figures/") and key.endswith("/_type")]
    assert logged == ["learning_curves", "confusion_matrix", "gradient_flow"]


def test_a_figure_that_cannot_be_written_warns_and_the_fit_goes_on(tmp_path: Path) -> None:
    (tmp_path / "figures").write_text("a file where the figures folder should be")
    train, val = plane_loaders()
    curves = LearningCurves()
    fit = trainer(tmp_path, False, [curves], max_epochs=2)
    with pytest.warns(UserWarning, match="LearningCurves: the figure could not be drawn: FileExistsError"):
        fit.fit(TinyClassifier(), train, val)
    assert fit.state.finished and fit.current_epoch == 2 and curves.saved == []


def matrix_of(module: nn.Module, loader: DataLoader) -> np.ndarray:
    """The confusion matrix of ``module`` on ``loader``, counted by hand."""
    module.eval()
    with torch.no_grad():
        x, y = next(iter(DataLoader(loader.dataset, batch_size=len(loader.dataset))))
        predicted = module(x).argmax(-1)
    matrix = np.zeros((3, 3), dtype=np.int64)
    np.add.at(matrix, (y.numpy(), predicted.numpy()), 1)
    return matrix


@pytest.mark.parametrize("settings", [{}, {"check_val_every_n_epoch": 2}, {"limit_val_batches": 1}])
def test_the_confusion_matrix_is_the_trained_model_on_the_whole_validation_set(tmp_path: Path, settings: dict[str, Any]) -> None:
    figure, module = ConfusionMatrix(), TinyClassifier()
    train, _ = plane_loaders()
    val = DataLoader(train.dataset, batch_size=70)  # two batches: 70 and 50
    trainer(tmp_path, False, [figure], max_epochs=3, enable_checkpointing=False, **settings).fit(module, train, val)
    assert np.array_equal(figure.matrix, matrix_of(module, val)) and figure.matrix.sum() == 120


def test_gradient_flow_records_once_per_optimizer_step_with_accumulated_batches(tmp_path: Path) -> None:
    flow = GradientFlow(every_n_steps=2)
    train, val = plane_loaders()  # 4 batches per epoch: 2 optimizer steps per epoch when 2 are accumulated
    fit = trainer(tmp_path, False, [flow], max_epochs=3, accumulate_grad_batches=2, enable_checkpointing=False)
    fit.fit(TinyClassifier(), train, val)
    assert fit.global_step == 6 and flow.steps == [0, 2, 4]  # evenly spaced across epochs, whole sums only


def test_gradient_flow_keeps_its_step_phase_when_a_fit_resumes(tmp_path: Path) -> None:
    # 4 steps per epoch; stopped after 2 epochs (step 8) and resumed to 5, against one fit of 5
    train, val = plane_loaders()
    whole = GradientFlow(every_n_steps=3)
    trainer(tmp_path / "whole", False, [whole], max_epochs=5, enable_checkpointing=False).fit(TinyClassifier(), train, val)
    first = GradientFlow(every_n_steps=3)
    stopped = trainer(tmp_path / "stopped", False, [first], max_epochs=2, enable_checkpointing=False)
    stopped.fit(TinyClassifier(), train, val)
    stopped.save_checkpoint(tmp_path / "two_epochs.ckpt")
    resumed = GradientFlow(every_n_steps=3)
    trainer(tmp_path / "resumed", False, [resumed], max_epochs=5, enable_checkpointing=False).fit(
        TinyClassifier(), train, val, ckpt_path=tmp_path / "two_epochs.ckpt")
    assert whole.steps == [0, 3, 6, 9, 12, 15, 18]
    assert first.steps == [0, 3, 6] and resumed.steps == whole.steps  # its history restored, then 9, 12 ...


def test_learning_curves_and_gradient_flow_keep_their_history_in_checkpoints() -> None:
    curves = LearningCurves()
    curves.history = {"val_loss": [(0, 1.0), (1, 0.5)]}
    restored = LearningCurves()
    restored.load_state_dict(curves.state_dict())
    assert restored.history == curves.history
    flow = GradientFlow()
    flow.steps, flow.norms = [0, 10], {"a.weight": [1.0, 0.5]}
    copy = GradientFlow()
    copy.load_state_dict(flow.state_dict())
    assert copy.steps == [0, 10] and copy.norms == {"a.weight": [1.0, 0.5]}


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: WandbWatch(log="weights"), "log must be"),
        (lambda: WandbWatch(log_freq=0), "log_freq"),
        (lambda: WandbCheckpointArtifacts(name="bad name!"), "artifact name"),
        (lambda: WandbRunMetadata(tags=["x" * 65]), "tag"),
        (lambda: LearningCurves(every_n_epochs=0), "every_n_epochs"),
        (lambda: GradientFlow(every_n_steps=0), "every_n_steps"),
        (lambda: DecisionBoundary(resolution=2), "resolution"),
    ],
)
def test_arguments_are_validated(factory: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_metadata_init_kwargs_carry_what_wandb_fixes_at_start() -> None:
    metadata = WandbRunMetadata(tags=["a"], group="g", job_type="fit", notes="n", config={"k": 1})
    kwargs = metadata.init_kwargs(TinyClassifier())
    assert kwargs["group"] == "g" and kwargs["job_type"] == "fit" and kwargs["notes"] == "n"
    assert kwargs["tags"] == ["a", "tiny", "module-9", "test", "engine-based", "pytorch"]
    assert kwargs["config"] == {"k": 1, "model_info": TinyClassifier().model_info()}


class DivergesAtStep(TinyClassifier):
    """Its loss turns NaN from optimizer step ``step`` on, as a learning rate far too high makes it."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step >= self.step else loss


def test_a_non_finite_loss_stops_the_fit_where_it_happened_and_keeps_the_finite_checkpoints(tmp_path: Path) -> None:
    train, val = plane_loaders()  # 4 steps per epoch: the loss turns NaN in epoch 1, after epoch 0's checkpoint
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val_loss", save_last=True)
    fit = trainer(tmp_path, False, [StopOnNonFiniteLoss(hint="try a smaller learning rate"), checkpoints], max_epochs=5)
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 1, global step 6; .*try a smaller learning rate"):
        fit.fit(DivergesAtStep(step=6), train, val)
    assert fit.global_step == 6  # stopped before the NaN step's update
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert saved == ["epoch=0-step=4.ckpt", "last.ckpt"]
    for name in saved:
        weights = torch.load(tmp_path / "checkpoints" / name, weights_only=False)["state_dict"]
        assert all(torch.isfinite(value).all() for value in weights.values())
