"""The generative figures (callbacks/samples.py) and the sample-quality logging of GenerativeModel,
in real Lightning fits of tiny generative models written here on PointsDataModule and DigitsDataModule.

* ``TinyGaussian``: ``x = mu + sigma * z`` with learnable ``mu`` and ``sigma``; its latent space is ``z``.
* ``TinyDecoder``: images ``decode(z) = sigmoid(W z + b)`` (or ``tanh``), fitted to the data with
  random ``z``: it learns the mean digit, which is all a figure test needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import Tensor, nn

from ai_scratch.generative_era.base import GenerativeModel
from ai_scratch.generative_era.evaluation import mmd
from callbacks import wandb_helpers
from callbacks.samples import LatentInterpolation, SampleGrid
from conftest import quiet_trainer
from datamodules.digits import DigitsDataModule
from datamodules.points import PointsDataModule
from wandb_log import find_runs, read_run


@pytest.fixture(autouse=True)
def fresh_notices() -> None:
    wandb_helpers._said.clear()


class TinyGaussian(GenerativeModel):
    """A Gaussian with learnable mean and scale, fitted by maximum likelihood."""

    latent_dim = 2

    def __init__(self, mean: tuple[float, float] = (0.0, 0.0), quality_every_n_epochs: int = 1, quality_samples: int = 1000) -> None:
        super().__init__(quality_every_n_epochs, quality_samples)
        self.mean = nn.Parameter(torch.tensor(mean))
        self.log_scale = nn.Parameter(torch.zeros(2))

    def decode(self, z: Tensor) -> Tensor:
        return self.mean + self.log_scale.exp() * z

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.decode(torch.randn(n, 2, device=self.device))

    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        nll = -torch.distributions.Normal(self.mean, self.log_scale.exp()).log_prob(inputs).sum(dim=1).mean()
        return {"loss": nll}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.05)


class TinyDecoder(GenerativeModel):
    """One linear layer from a 4-dimensional latent to ``side`` x ``side`` images."""

    latent_dim = 4

    def __init__(self, side: int = 8, symmetric: bool = False) -> None:
        super().__init__(quality_every_n_epochs=1, quality_samples=100)
        self.side, self.symmetric = side, symmetric
        self.net = nn.Linear(4, side * side)

    def decode(self, z: Tensor) -> Tensor:
        x = self.net(z).view(-1, 1, self.side, self.side)
        return torch.tanh(x) if self.symmetric else torch.sigmoid(x)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.decode(torch.randn(n, 4, device=self.device))

    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        return {"loss": nn.functional.mse_loss(self.decode(torch.randn(len(inputs), 4, device=self.device)), inputs)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


class Vectors(TinyGaussian):
    """Samples and decoded points of five numbers: neither images nor points in the plane."""

    latent_dim = 5

    def decode(self, z: Tensor) -> Tensor:
        return torch.cat([super().decode(z[:, :2]), z[:, 2:]], dim=1)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.decode(torch.randn(n, 5, device=self.device))


class NoSampler(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.layer(batch[0]).square().mean()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val_loss", self.layer(batch[0]).square().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def eight_gaussians() -> PointsDataModule:
    return PointsDataModule("eight_gaussians", train_size=512, val_size=256, test_size=256, batch_size=128)


def small_digits(normalization: str = "unit") -> DigitsDataModule:
    return DigitsDataModule(source="sklearn", image_size=8, normalization=normalization, val_size=100, test_size=100, batch_size=64)


def assert_picture(path: Path) -> None:
    """A complete PNG of a real figure: large, and not one flat colour."""
    assert path.is_file()
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) > 300 and pixels.std() > 10


def fit(root: Path, model: L.LightningModule, datamodule: L.LightningDataModule, callbacks: list, **settings: object) -> L.Trainer:
    torch.manual_seed(0)
    trainer = quiet_trainer(default_root_dir=root, callbacks=callbacks, **{"max_epochs": 2, **settings})
    trainer.fit(model, datamodule)
    return trainer


# ---------------------------------------------------------------------- points in the plane
def test_points_are_scattered_over_the_data_and_latent_lines_decode_to_lines(tmp_path: Path) -> None:
    grid = SampleGrid(num_points=300, every_n_epochs=1)
    lines = LatentInterpolation(steps=6, rows=3, seed=4, every_n_epochs=1)
    model = TinyGaussian()
    trainer = fit(tmp_path, model, eight_gaussians(), [grid, lines])
    assert [p.name for p in grid.saved] == ["sample_grid_epoch000.png", "sample_grid_epoch001.png", "sample_grid.png"]
    assert [p.name for p in lines.saved] == ["latent_interpolation_epoch000.png", "latent_interpolation_epoch001.png",
                                             "latent_interpolation.png"]  # fmt: skip
    for path in grid.saved + lines.saved:
        assert_picture(path)
    # the samples are what the model draws from the seeded generator
    torch.manual_seed(0)
    np.testing.assert_allclose(grid.samples, model.sample(300).numpy(), atol=1e-6)
    # the lines run between the same seeded latent points at every epoch...
    expected = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(lines.endpoints, expected)
    # ... and the decoder is affine, so each decoded line is straight and evenly stepped from decode(z_a) to decode(z_b)
    with torch.no_grad():
        start, end = model.decode(expected[:, 0]).numpy(), model.decode(expected[:, 1]).numpy()
    t = np.linspace(0, 1, 6)[None, :, None]
    np.testing.assert_allclose(lines.decoded, (1 - t) * start[:, None] + t * end[:, None], atol=1e-5)
    assert grid.draw(None, trainer, model).get_suptitle() == "Samples: TinyGaussian, after 2 epochs"


def test_drawing_leaves_the_random_state_of_the_fit_alone(tmp_path: Path) -> None:
    model, grid, lines = TinyGaussian(), SampleGrid(num_points=50), LatentInterpolation(rows=2)
    trainer = fit(tmp_path, model, eight_gaussians(), [grid, lines], max_epochs=1)
    state = torch.get_rng_state()
    assert grid.emit(trainer, model, suffix="_again") and lines.emit(trainer, model, suffix="_again")
    assert torch.equal(state, torch.get_rng_state())


# ---------------------------------------------------------------------- images
@pytest.mark.parametrize("normalization", ["unit", "symmetric"])
def test_image_samples_and_interpolations_are_grids(tmp_path: Path, normalization: str) -> None:
    datamodule = small_digits(normalization)
    model = TinyDecoder(symmetric=normalization == "symmetric")
    grid, lines = SampleGrid(n=36), LatentInterpolation(steps=8, rows=3)
    trainer = fit(tmp_path, model, datamodule, [grid, lines], max_epochs=1, limit_train_batches=3)
    assert [p.name for p in grid.saved + lines.saved] == ["sample_grid.png", "latent_interpolation.png"]
    for path in grid.saved + lines.saved:
        assert_picture(path)
    assert grid.samples.shape == (36, 1, 8, 8) and lines.decoded.shape == (3, 8, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(lines.decoded[:, -1], model.decode(lines.endpoints[:, 1]).numpy(), atol=1e-6)
    # the digit measures ran at the end of validation, through the real classifier
    assert {"val_fid", "val_classifier_score"} <= set(trainer.callback_metrics)
    assert float(trainer.callback_metrics["val_fid"]) > 0
    assert 1.0 <= float(trainer.callback_metrics["val_classifier_score"]) <= 10.0


# ---------------------------------------------------------------------- where they do not apply
def test_figures_that_do_not_apply_say_so_once_and_draw_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cases = [
        (NoSampler(), "has no sample(n) method", "has no latent_dim and decode(z)"),
        (Vectors(quality_every_n_epochs=0), "are neither images (N, C, H, W) nor points (N, 2)", "decode gives neither images"),
    ]
    for index, (model, grid_reason, lines_reason) in enumerate(cases):
        grid, lines = SampleGrid(num_points=20), LatentInterpolation()
        with caplog.at_level(logging.INFO):
            fit(tmp_path / str(index), model, eight_gaussians(), [grid, lines], max_epochs=1, limit_train_batches=2)
        assert grid.saved == [] and lines.saved == []
        messages = [r.getMessage() for r in caplog.records]
        assert any(grid_reason in m for m in messages) and any(lines_reason in m for m in messages)


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="SampleGrid: n must be an integer >= 1, got 0"):
        SampleGrid(n=0)
    with pytest.raises(ValueError, match="SampleGrid: num_points must be"):
        SampleGrid(num_points=-5)
    with pytest.raises(ValueError, match="LatentInterpolation: steps must be an integer >= 2, got 1"):
        LatentInterpolation(steps=1)
    with pytest.raises(ValueError, match="LatentInterpolation: rows must be"):
        LatentInterpolation(rows=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        LatentInterpolation(seed=-1)
    with pytest.raises(ValueError, match="every_n_epochs"):
        SampleGrid(every_n_epochs=0)


# ---------------------------------------------------------------------- wandb
def test_the_figures_are_logged_to_wandb_as_images(wandb_offline: Path) -> None:
    logger = WandbLogger(project="samples-test", save_dir=str(wandb_offline))
    figures = [SampleGrid(num_points=100), LatentInterpolation()]
    trainer = quiet_trainer(default_root_dir=wandb_offline.parent, logger=logger, callbacks=figures, max_epochs=1, limit_train_batches=2)
    trainer.fit(TinyGaussian(), eight_gaussians())
    logger.experiment.finish()
    log = read_run(find_runs(wandb_offline)[0])
    logged = [key.split("/")[1] for row in log.history for key in row if key.startswith("figures/") and key.endswith("/_type")]
    assert logged == ["sample_grid", "latent_interpolation"]
    assert {row["figures/sample_grid/_type"] for row in log.history if "figures/sample_grid/_type" in row} == {"image-file"}


# ---------------------------------------------------------------------- GenerativeModel's quality logging
def test_sample_quality_is_logged_after_validation_and_test(tmp_path: Path) -> None:
    datamodule = eight_gaussians()
    fitted = TinyGaussian()
    trainer = fit(tmp_path, fitted, datamodule, [], max_epochs=3)
    assert "val_mmd" in trainer.callback_metrics and "val_loss" in trainer.callback_metrics
    trainer.test(fitted, datamodule, verbose=False)
    fitted_mmd = float(trainer.callback_metrics["test_mmd"])
    far_away = TinyGaussian(mean=(4.0, 4.0))
    trainer.test(far_away, datamodule, verbose=False)
    far_mmd = float(trainer.callback_metrics["test_mmd"])
    # the logged value is the MMD between its samples and the test points: a distribution far from
    # the data scores what a far sample scores against them
    test_points = torch.from_numpy(datamodule.arrays("test")[0])
    with torch.no_grad():
        far_sample = far_away.sample(len(test_points))
    assert far_mmd == pytest.approx(float(mmd(far_sample, test_points)), rel=0.05)
    assert fitted_mmd < far_mmd / 2


def test_quality_every_n_epochs_zero_measures_only_at_test(tmp_path: Path) -> None:
    model = TinyGaussian(quality_every_n_epochs=0, quality_samples=64)
    trainer = fit(tmp_path, model, eight_gaussians(), [], max_epochs=1)
    assert "val_mmd" not in trainer.callback_metrics and "val_loss" in trainer.callback_metrics
    trainer.test(model, eight_gaussians(), verbose=False)
    assert "test_mmd" in trainer.callback_metrics
