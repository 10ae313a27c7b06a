"""DDPM (Ho, Jain and Abbeel, 2020): the forward process in closed form, the two schedules, L_simple,
ancestral sampling, the moving average of the weights, the paper's U-Net size, real fits through
the CLI and (slow) the claims of configs/ddpm/."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor, nn

from ai_scratch.cli import main
from ai_scratch.generative_era.ddpm import DDPM, PAPER_CONFIGS, PAPER_PARAMETER_COUNTS, UNet
from ai_scratch.generative_era.ddpm_figures import schedule_figure, trajectory_figure
from ai_scratch.generative_era.evaluation import mmd
from conftest import config
from datamodules.points import PointsDataModule

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SMOKE = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2"]
SMALL = {"timesteps": 50, "hidden_size": 16, "num_layers": 1}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def paper_linear_alpha_bar(t: int, timesteps: int = 1000) -> float:
    """alpha-bar_t of the paper's schedule, computed apart from the model (float64 NumPy)."""
    return float(np.prod(1 - np.linspace(1e-4, 0.02, timesteps)[:t]))


# ---------------------------------------------------------------------- the forward process
@pytest.mark.parametrize("t", [1, 100, 500, 1000])
def test_q_sample_has_the_closed_form_mean_and_variance(t: int) -> None:
    """eq. 4 by Monte Carlo: x_t given x_0 has mean sqrt(alpha-bar_t) x_0 and variance 1 - alpha-bar_t."""
    model = DDPM(timesteps=1000)
    draws = 200_000
    x_0 = torch.tensor([1.5, -0.5]).expand(draws, 2)
    noise = torch.randn(draws, 2, generator=torch.Generator().manual_seed(t))
    x_t = model.q_sample(x_0, torch.full((draws,), t), noise).double()
    alpha_bar = paper_linear_alpha_bar(t)
    variance = 1 - alpha_bar
    expected_mean = math.sqrt(alpha_bar) * torch.tensor([1.5, -0.5], dtype=torch.float64)
    standard_error = math.sqrt(variance / draws)
    assert torch.all((x_t.mean(0) - expected_mean).abs() < 5 * standard_error + 1e-6)
    # the variance estimate's relative standard error is sqrt(2 / draws), about 0.3%
    assert torch.allclose(x_t.var(0), torch.full((2,), variance, dtype=torch.float64), rtol=0.015, atol=1e-7)


def test_the_linear_schedule_runs_from_the_papers_beta_1_to_beta_T_and_ends_in_noise() -> None:
    model = DDPM(timesteps=1000)
    assert model.betas.shape == (1001,) and float(model.betas[0]) == 0.0 and float(model.alpha_bars[0]) == 1.0
    assert float(model.betas[1]) == pytest.approx(1e-4) and float(model.betas[1000]) == pytest.approx(0.02)
    steps = torch.diff(model.betas[1:].double())
    assert torch.allclose(steps, torch.full_like(steps, (0.02 - 1e-4) / 999), atol=1e-8)  # linear
    assert float(model.alpha_bars[1000]) == pytest.approx(paper_linear_alpha_bar(1000), rel=1e-3)
    assert float(model.alpha_bars[1000]) < 1e-4  # x_T is (almost exactly) N(0, I)
    torch.testing.assert_close(model.alphas, 1 - model.betas)


@pytest.mark.parametrize("timesteps", [3, 10, 1000])
def test_the_cosine_schedule_is_nichol_and_dhariwals_formula(timesteps: int) -> None:
    """eq. 17: alpha-bar_t = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) pi/2)^2, s = 0.008;
    beta_t = 1 - alpha-bar_t / alpha-bar_{t-1}, at most 0.999."""
    model = DDPM(timesteps=timesteps, schedule="cosine")
    t = np.arange(timesteps + 1)
    f = np.cos((t / timesteps + 0.008) / 1.008 * np.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    np.testing.assert_allclose(model.betas[1:].numpy(), betas, rtol=1e-5, atol=1e-7)
    assert float(model.betas[timesteps]) == pytest.approx(0.999)  # f(T) = 0: beta_T is clipped
    # before the clip, the product of the alphas is the formula's alpha-bar
    np.testing.assert_allclose(model.alpha_bars[1:timesteps].numpy(), alpha_bar[1:timesteps], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- L_simple
def test_the_loss_is_the_mean_squared_error_of_the_predicted_noise() -> None:
    torch.manual_seed(0)
    model = DDPM(**SMALL)
    x_0, noise, t = torch.randn(16, 2), torch.randn(16, 2), torch.randint(1, 51, (16,))
    alpha_bar = model.alpha_bars[t][:, None]
    x_t = alpha_bar.sqrt() * x_0 + (1 - alpha_bar).sqrt() * noise
    expected = ((noise - model.network(x_t, t)) ** 2).mean()
    torch.testing.assert_close(model.simple_loss(x_0, t, noise), expected)
    terms = model.loss_terms(x_0)
    assert set(terms) == {"loss"} and terms["loss"].requires_grad and terms["loss"].ndim == 0


def test_training_draws_every_step_from_1_to_T_uniformly() -> None:
    """Algorithm 1's t ~ Uniform({1, ..., T}), read from the steps the network is given."""
    model = DDPM(timesteps=5, hidden_size=16, num_layers=1)
    seen: list[Tensor] = []
    model.network.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    torch.manual_seed(0)
    for _ in range(10):
        model.loss_terms(torch.randn(500, 2))
    counts = torch.bincount(torch.cat(seen), minlength=7)
    assert counts[0] == 0 and counts[6] == 0 and counts.sum() == 5000
    assert torch.all((counts[1:6] - 1000).abs() < 5 * math.sqrt(1000 * 0.8))  # binomial(5000, 1/5)


# ---------------------------------------------------------------------- the reverse process
class PointMassNoise(nn.Module):
    """The true eps of data that is one point c: x_t = sqrt(alpha-bar_t) c + sqrt(1 - alpha-bar_t) eps."""

    def __init__(self, alpha_bars: Tensor, point: Tensor) -> None:
        super().__init__()
        self.alpha_bars, self.point = alpha_bars, point

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        alpha_bar = self.alpha_bars[t].view(-1, *([1] * (x.ndim - 1)))
        return (x - alpha_bar.sqrt() * self.point) / (1 - alpha_bar).sqrt()


@pytest.mark.parametrize(("schedule", "shape"), [("linear", (2,)), ("cosine", (1, 8, 8))])
def test_ancestral_sampling_with_the_true_noise_of_a_point_mass_recovers_the_point(schedule: str, shape: tuple) -> None:
    """Algorithm 2 is exact at its last step: with eps_theta the true noise of a point mass c,
    x_0 = (x_1 - beta_1 / sqrt(1 - alpha-bar_1) eps) / sqrt(alpha_1) = c from any x_1."""
    denoiser = "mlp" if len(shape) == 1 else "unet"
    model = DDPM(denoiser=denoiser, data_shape=shape, timesteps=1000, schedule=schedule, hidden_size=8, num_layers=1, base_channels=8)
    point = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    model.ema.module = PointMassNoise(model.alpha_bars, point)
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (64, *shape)
    torch.testing.assert_close(samples, point.expand_as(samples), atol=1e-3, rtol=0)
    # on the way, x_t is spread as q(x_t | x_0 = c): noise at t = T
    path = model.sample_trajectory(2000, times=(1000,), generator=torch.Generator().manual_seed(1))
    assert abs(float(path[1000].std()) - 1) < 0.05


def test_a_sample_calls_the_averaged_network_exactly_T_times_and_never_the_raw_one() -> None:
    model = DDPM(**SMALL)
    averaged_steps: list[Tensor] = []
    raw_calls: list[int] = []
    model.ema.module.register_forward_hook(lambda module, args, output: averaged_steps.append(args[1]))
    model.network.register_forward_hook(lambda module, args, output: raw_calls.append(1))
    samples = model.sample(7)
    assert samples.shape == (7, 2) and len(averaged_steps) == 50 and not raw_calls
    assert [int(t[0]) for t in averaged_steps] == list(range(50, 0, -1)) and all(len(t) == 7 for t in averaged_steps)
    averaged_steps.clear()
    path = model.sample_trajectory(3)
    assert len(averaged_steps) == 50 and list(path) == [50, 37, 25, 12, 5, 0]


def test_the_moving_average_follows_its_decay_and_is_what_sampling_and_evaluation_use() -> None:
    model = DDPM(**SMALL, ema_decay=0.9)
    before = [p.detach().clone() for p in model.network.parameters()]
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(1.0)
    model.ema.update_parameters(model.network)  # AveragedModel's first update copies the weights
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(1.0)
    model.ema.update_parameters(model.network)  # then 0.9 average + 0.1 weights
    for w, raw, averaged in zip(before, model.network.parameters(), model.ema.module.parameters()):
        torch.testing.assert_close(raw, w + 2.0)
        torch.testing.assert_close(averaged, w + 1.1)
    x, t = torch.randn(5, 2), torch.full((5,), 10)
    torch.testing.assert_close(model.train()(x, t), model.network(x, t))  # training: the raw weights
    torch.testing.assert_close(model.eval()(x, t), model.ema.module(x, t))  # evaluation: their average
    drawn = model.sample(20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        next(model.network.parameters()).add_(5.0)
    torch.testing.assert_close(model.sample(20, generator=torch.Generator().manual_seed(0)), drawn)
    with torch.no_grad():
        next(model.ema.module.parameters()).add_(5.0)
    assert not torch.allclose(model.sample(20, generator=torch.Generator().manual_seed(0)), drawn)


# ---------------------------------------------------------------------- the networks
def test_the_papers_cifar10_unet_has_35_7_million_parameters() -> None:
    """Appendix B: "Our CIFAR10 model has 35.7 million parameters"; this U-Net: 35,746,307 (0.13% more)."""
    with torch.device("meta"):
        network = UNet(**PAPER_CONFIGS["cifar10"])
    stated = PAPER_PARAMETER_COUNTS["cifar10"]
    assert abs(count(network) - stated) / stated < 0.01
    # the same class at 8x8: one input, one output of the image's shape
    small = UNet(image_channels=1, image_size=8, base_channels=16, channel_multipliers=(1, 2), attention_resolutions=(4,))
    assert small(torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])).shape == (3, 1, 8, 8)
    # every block's last layer starts at zero, as in the authors' code: the untrained network predicts 0
    assert torch.count_nonzero(small(torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3]))) == 0


def test_the_paper_sized_model_is_the_cifar10_unet_and_its_moving_average() -> None:
    with torch.device("meta"):
        model = DDPM.paper_sized()
    network = count(model.network)
    assert abs(network - PAPER_PARAMETER_COUNTS["cifar10"]) / PAPER_PARAMETER_COUNTS["cifar10"] < 0.01
    assert count(model) == 2 * network and model.model_info()["parameter_count"] == network  # the EMA copy apart
    x_t, t = model.example_input_array
    assert tuple(x_t.shape) == (1, 3, 32, 32) and tuple(t.shape) == (1,) and model.timesteps == 1000
    assert model.forward_flops() > 0


def test_forward_flops_of_a_tiny_unet_are_its_closed_form() -> None:
    """One resolution of 4x4, 8 channels, one residual block: every product written out."""
    model = DDPM(denoiser="unet", data_shape=(1, 4, 4), base_channels=8, channel_multipliers=(1,), num_res_blocks=1, norm_groups=8)
    pixels, width, embedding = 16, 8, 32  # 4x4 positions, base channels, the step's embedding (4 x 8)

    def conv3(c_in: int, c_out: int) -> int:
        return 2 * c_in * c_out * 9 * pixels

    def block(c_in: int) -> int:  # conv1, the step's projection, conv2, and a 1x1 shortcut when widths differ
        shortcut = 2 * c_in * width * pixels if c_in != width else 0
        return conv3(c_in, width) + 2 * embedding * width + conv3(width, width) + shortcut

    step_mlp = 2 * width * embedding + 2 * embedding * embedding
    attention = 2 * width * 3 * width * pixels + 2 * (2 * pixels * pixels * width) + 2 * width * width * pixels  # qkv, QK^T and AV, projection
    expected = (step_mlp + conv3(1, width) + block(width)  # input convolution, the down block
                + block(width) + attention + block(width)  # the middle
                + 2 * block(2 * width)  # the up blocks read the skips concatenated
                + conv3(width, 1))  # fmt: skip
    assert model.forward_flops() == expected


def test_the_model_counts_its_network_once_and_its_average_apart() -> None:
    model = DDPM(**SMALL)
    info = model.model_info()
    assert info["parameter_count"] == count(model.network) == info["averaged_copy_parameter_count"]
    assert info["name"] == "ddpm" and info["module"] == 5 and info["year_introduced"] == 2020
    assert not any(p.requires_grad for p in model.ema.parameters())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"denoiser": "vit"}, "denoiser must be one of"),
        ({"schedule": "quadratic"}, "schedule must be one of"),
        ({"timesteps": 0}, "timesteps must be a positive integer"),
        ({"beta_1": 0.05, "beta_T": 0.02}, "0 < beta_1 <= beta_T < 1"),
        ({"beta_T": 1.5}, "0 < beta_1 <= beta_T < 1"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"learning_rate": 0}, "learning_rate must be positive"),
        ({"warmup_steps": -1}, "warmup_steps must be >= 0"),
        ({"data_shape": (1, 8, 8)}, "denoiser 'mlp' takes vectors"),
        ({"denoiser": "unet", "data_shape": (2,)}, "denoiser 'unet' takes square images"),
        ({"denoiser": "unet", "data_shape": (1, 6, 6), "channel_multipliers": (1, 2, 2)}, "cannot be halved 2 times"),
        ({"denoiser": "unet", "data_shape": (1, 8, 8), "norm_groups": 5}, "norm_groups=5 must divide every width"),
        ({"quality_samples": 1}, "quality_samples must be an integer >= 2"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        DDPM(**options)
    assert "\n" not in str(error.value)


def test_sampling_refuses_bad_counts_and_times() -> None:
    model = DDPM(**SMALL)
    with pytest.raises(ValueError, match="positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="times must lie in 0..T=50"):
        model.sample_trajectory(2, times=(60, 0))


# ---------------------------------------------------------------------- the figures
def test_the_figures_draw_schedules_and_trajectories_of_points_and_images(tmp_path: Path) -> None:
    figure = schedule_figure(100, used="cosine")
    assert "T = 100" in figure.get_suptitle() and len(figure.axes) == 2
    points = {10: np.random.randn(50, 2), 0: np.random.randn(50, 2)}
    assert len(trajectory_figure(points, held_out=np.random.randn(30, 2)).axes) == 2
    images = {5: np.random.randn(4, 1, 8, 8), 2: np.random.randn(4, 1, 8, 8), 0: np.random.randn(4, 1, 8, 8)}
    assert len(trajectory_figure(images).axes) == 4 * 3
    with pytest.raises(ValueError, match="points \\(n, 2\\) or images"):
        trajectory_figure({0: np.zeros((3, 5))})


# ---------------------------------------------------------------------- real fits
def test_a_moons_fit_logs_its_terms_and_sample_quality_draws_its_figures_and_keeps_the_average(workdir: Path) -> None:
    cli = main(["fit", "--config", config("ddpm/moons_strength"), *QUIET, *SMOKE, "--trainer.max_epochs=2", "--model.timesteps=20",
                "--model.quality_every_n_epochs=1", "--model.ema_decay=0.5", "--data.train_size=512", "--data.val_size=64",
                "--data.test_size=64"])  # fmt: skip
    model = cli.model
    assert cli.claim_result is not None and cli.claim_result.observed == pytest.approx(float(cli.trainer.callback_metrics["test_mmd"]))
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        columns = set(csv.DictReader(file).fieldnames or [])
    assert {"train_loss", "val_loss", "val_mmd", "test_loss", "test_mmd"} <= columns
    figures = {path.name for path in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"denoising_trajectory.png", "noise_schedule.png", "sample_grid.png", "learning_curves.png"} <= figures
    # the checkpoints carry the average: at the end, one update per optimizer step (two epochs of two
    # batches), and the average has moved with the weights but is not them
    last = DDPM.load_from_checkpoint(Path(cli.log_dir) / "checkpoints" / "last.ckpt", map_location="cpu")
    assert int(last.ema.n_averaged) == cli.trainer.global_step == 4
    assert any(not torch.equal(a, b) for a, b in zip(last.network.parameters(), last.ema.module.parameters()))
    # the test ran on the best checkpoint's weights: a model loaded from it samples as the tested one
    best = DDPM.load_from_checkpoint(cli.trainer.checkpoint_callback.best_model_path, map_location="cpu")
    torch.testing.assert_close(best.sample(10, generator=torch.Generator().manual_seed(0)),
                               model.cpu().sample(10, generator=torch.Generator().manual_seed(0)))  # fmt: skip


@pytest.mark.parametrize("name", ["ddpm/digits_strength", "ddpm/few_steps_weakness"])
def test_the_other_configs_fit_and_check_their_claims(workdir: Path, name: str) -> None:
    extra = ["--model.timesteps=10", "--data.val_size=100", "--data.test_size=100"] if "digits" in name else ["--data.train_size=512"]
    cli = main(["fit", "--config", config(name), *QUIET, *SMOKE, "--figures=false", *extra])
    assert cli.claim_result is not None and cli.claim_result.observed is not None
    metrics = cli.trainer.callback_metrics
    if "digits" in name:
        assert cli.model.denoiser == "unet" and {"test_fid", "test_classifier_score"} <= metrics.keys()
        assert cli.model.sample(3).shape == (3, 1, 8, 8)


def test_bf16_mixed_precision_fits(workdir: Path) -> None:
    cli = main(["fit", "--config", config("ddpm/moons_strength"), *QUIET, *SMOKE, "--figures=false", "--trainer.precision=bf16-mixed",
                "--model.timesteps=20", "--data.train_size=512", "--data.val_size=64", "--data.test_size=64"])  # fmt: skip
    assert cli.trainer.precision == "bf16-mixed"
    assert all(torch.isfinite(value).all() for value in cli.trainer.callback_metrics.values())


def test_data_of_another_shape_is_refused_in_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"data_shape is \(3,\) but the data's examples are \(2,\): set --model.data_shape=\[2\]"):
        main(["fit", "--config", config("ddpm/moons_strength"), *QUIET, *SMOKE, "--figures=false", "--model.data_shape=[3]"])


# ---------------------------------------------------------------------- the claims
def test_the_moons_claim_is_at_most_half_the_mmd_of_a_fitted_gaussian() -> None:
    """The strength's bar, recomputed: a Gaussian with the training points' mean and covariance,
    1,000 draws, against the config's held-out test points (0.1007 on seed 0)."""
    settings = yaml.safe_load(Path(config("ddpm/moons_strength")).read_text())
    data = PointsDataModule(**settings["data"]["init_args"])
    data.setup()
    train, test = (torch.from_numpy(data.arrays(split)[0]).double() for split in ("train", "test"))
    factor = torch.linalg.cholesky(torch.cov(train.T))
    gaussian = train.mean(0) + torch.randn(len(test), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ factor.T
    gaussian_mmd = float(mmd(gaussian.float(), test.float()))
    assert 0.08 < gaussian_mmd < 0.12
    assert settings["experiment"]["claim"]["value"] <= gaussian_mmd / 2


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("name", ["ddpm/moons_strength", "ddpm/few_steps_weakness", "ddpm/digits_strength"])
def test_the_claims_hold_on_another_seed(workdir: Path, name: str) -> None:
    """The configs run seed 0 in ``ai-scratch reproduce``; here the same claims on seed 1."""
    cli = main(["fit", "--config", config(name), *QUIET, "--figures=false", "--seed_everything=1"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_a_long_chain_removes_the_few_steps_weakness(workdir: Path, seed: int) -> None:
    """The same config with T = 1000 instead of 3 is near 0 (calibrated 0.0017, -0.0011, 0.0014 on
    seeds 0, 1 and 2), so the weakness's claim fails: it is the length of the chain that matters."""
    cli = main(["fit", "--config", config("ddpm/few_steps_weakness"), *QUIET, "--figures=false", f"--seed_everything={seed}",
                "--model.timesteps=1000"])  # fmt: skip
    assert cli.claim_result is not None and not cli.claim_result.reproduced
    assert cli.claim_result.observed <= 0.02, cli.claim_result.line()
