"""The DCGAN of Radford et al. (2015): the architecture guidelines (batch norm placement, activations,
tanh output, N(0, 0.02) initialisation), the paper-sized generator of Figure 1, bad arguments, real
fits through the CLI with their figures, and (slow) its claims on digits."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ai_scratch.cli import main
from ai_scratch.generative_era import dcgan
from ai_scratch.generative_era.dcgan import DCGAN
from ai_scratch.generative_era.gan import GAN, AdversarialModel
from conftest import config

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SMOKE = ["--trainer.max_epochs=2", "--trainer.check_val_every_n_epoch=1", "--trainer.limit_train_batches=3",
         "--model.feature_maps=[16, 8]", "--model.quality_samples=100"]  # fmt: skip


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layers_of(network: nn.Module, kinds: tuple[type, ...]) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, kinds)]


CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


# ---------------------------------------------------------------------- the guidelines
def test_weights_start_from_a_zero_centred_normal_with_std_002() -> None:
    torch.manual_seed(0)
    model = DCGAN(image_size=32, feature_maps=(128, 64, 32))
    weights = torch.cat([m.weight.detach().flatten() for m in layers_of(model, CONVOLUTIONS)])
    assert len(weights) > 100_000
    assert abs(float(weights.mean())) < 1e-3 and float(weights.std()) == pytest.approx(0.02, rel=0.02)
    for layer in layers_of(model, CONVOLUTIONS):  # each layer on its own, not only the pooled weights
        assert float(layer.weight.detach().std()) == pytest.approx(0.02, rel=0.25)
        assert layer.bias is None or not layer.bias.any()
    scales = torch.cat([m.weight.detach() for m in layers_of(model, (nn.BatchNorm2d,))])
    assert float(scales.mean()) == pytest.approx(1.0, abs=0.005) and float(scales.std()) == pytest.approx(0.02, rel=0.2)
    assert not torch.cat([m.bias.detach() for m in layers_of(model, (nn.BatchNorm2d,))]).any()


def test_batch_norm_everywhere_but_the_generators_output_and_the_discriminators_input() -> None:
    model = DCGAN(image_size=16, feature_maps=(64, 32, 16))
    generator, discriminator = list(model.generator), list(model.discriminator)
    # G: projection -> BN -> ReLU, then (ConvT -> BN -> ReLU) x 2, then ConvT -> tanh with no BN
    assert isinstance(generator[-1], nn.Tanh) and isinstance(generator[-2], nn.ConvTranspose2d)
    assert [type(m) for m in generator if isinstance(m, (nn.BatchNorm2d, nn.ConvTranspose2d, nn.Linear))] == [
        nn.Linear, nn.BatchNorm2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ConvTranspose2d,
    ]  # fmt: skip
    assert all(isinstance(m, (nn.ReLU, nn.Tanh)) for m in generator if not isinstance(m, (nn.BatchNorm2d, nn.ConvTranspose2d, nn.Linear, nn.Unflatten)))
    # D: Conv -> LeakyReLU(0.2) with no BN, then (Conv -> BN -> LeakyReLU) x 2, then flatten -> one logit
    assert isinstance(discriminator[0], nn.Conv2d) and isinstance(discriminator[1], nn.LeakyReLU)
    assert [type(m) for m in discriminator if isinstance(m, (nn.BatchNorm2d, nn.Conv2d))] == [
        nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d,
    ]  # fmt: skip
    assert {m.negative_slope for m in layers_of(model.discriminator, (nn.LeakyReLU,))} == {0.2}
    assert not layers_of(model.discriminator, (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)) and not layers_of(model.generator, (nn.Upsample,))
    assert isinstance(discriminator[-1], nn.Linear) and discriminator[-1].out_features == 1
    # strided convolutions halve and double the side: no pooling
    assert {m.stride for m in layers_of(model, (nn.Conv2d, nn.ConvTranspose2d))} == {(2, 2)}
    # a layer followed by batch norm has no bias; the others do
    assert [m.bias is not None for m in layers_of(model.generator, CONVOLUTIONS)] == [False, False, False, True]
    assert [m.bias is not None for m in layers_of(model.discriminator, CONVOLUTIONS)] == [True, False, False, True]


def test_without_batch_norm_there_is_none_and_every_layer_has_its_bias() -> None:
    model = DCGAN(image_size=16, feature_maps=(64, 32, 16), batch_norm=False)
    assert not layers_of(model, (nn.BatchNorm2d,))
    assert all(m.bias is not None for m in layers_of(model, CONVOLUTIONS))
    with_norm = DCGAN(image_size=16, feature_maps=(64, 32, 16))
    assert model.sample(3).shape == with_norm.sample(3).shape == (3, 1, 16, 16)


def test_the_generators_output_is_in_the_range_of_tanh() -> None:
    torch.manual_seed(0)
    model = DCGAN(image_size=8, feature_maps=(32, 16))
    with torch.no_grad():
        model.generator[-2].weight.mul_(1000)  # drive the output layer far into saturation
    images = model.eval().sample(64)
    assert images.shape == (64, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < -0.999 and images.max() > 0.999  # it reaches both ends, and stays inside


def test_the_paper_sized_generator_of_figure_1() -> None:
    """100-d z projected to 4x4x1024, then 8x8x512, 16x16x256, 32x32x128 and 64x64x3 (5x5 kernels)."""
    options = dcgan.PAPER_CONFIGS["radford_lsun"]
    with torch.device("meta"):  # counting needs no memory
        model = DCGAN.paper_sized()
        generator_reference = [nn.Linear(100, 4 * 4 * 1024, bias=False),
                               *(nn.ConvTranspose2d(a, b, 5, bias=False) for a, b in ((1024, 512), (512, 256), (256, 128))),
                               nn.ConvTranspose2d(128, 3, 5), *(nn.BatchNorm2d(c) for c in (1024, 512, 256, 128))]  # fmt: skip
        discriminator_reference = [nn.Conv2d(3, 128, 5), *(nn.Conv2d(a, b, 5, bias=False) for a, b in ((128, 256), (256, 512), (512, 1024))),
                                   *(nn.BatchNorm2d(c) for c in (256, 512, 1024)), nn.Linear(4 * 4 * 1024, 1)]  # fmt: skip
        assert count(model.generator) == sum(count(m) for m in generator_reference) == 18_855_043
        assert count(model.discriminator) == sum(count(m) for m in discriminator_reference) == 17_232_897
        shapes = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
                 for m in model.generator if isinstance(m, (nn.Unflatten, nn.ConvTranspose2d))]  # fmt: skip
        images = model.decode(torch.empty(2, 100))
        for hook in hooks:
            hook.remove()
        assert shapes == [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)]
        assert model.discriminate(images).shape == (2,)
    assert options["latent_dim"] == 100 and model.noise_kind == "uniform"


def test_the_paper_sized_forward_draws_one_64x64_image() -> None:
    with torch.device("meta"):
        model = DCGAN.paper_sized()
    assert tuple(model.example_input_array.shape) == (1, 100)
    # the projection, then each fractionally-strided 5x5 convolution scatters every input pixel through
    # its kernel: 2 C_in C_out 25 H_in W_in (the counter's convention for a transposed convolution)
    projection = 2 * 100 * 4 * 4 * 1024
    convolutions = [(1024, 512, 4), (512, 256, 8), (256, 128, 16), (128, 3, 32)]  # C_in, C_out, input side
    expected = projection + sum(2 * c_in * c_out * 25 * side * side for c_in, c_out, side in convolutions)
    assert model.forward_flops() == expected == 1_281_228_800


def test_the_paper_training_settings_are_the_defaults() -> None:
    model = DCGAN()
    discriminator_optimizer, generator_optimizer = model.configure_optimizers()
    for optimizer in (discriminator_optimizer, generator_optimizer):
        assert isinstance(optimizer, torch.optim.Adam)
        assert optimizer.defaults["lr"] == 2e-4 and optimizer.defaults["betas"] == (0.5, 0.999)
    assert model.generator_loss_kind == "non_saturating" and model.discriminator_steps == 1


def test_dcgan_plays_the_same_game_as_the_gan() -> None:
    """One training step for both: the DCGAN inherits the adversarial step, it does not repeat it."""
    for method in ("training_step", "loss_terms", "configure_optimizers", "sample", "decode", "sample_quality"):
        assert getattr(DCGAN, method) is getattr(GAN, method) is getattr(AdversarialModel, method), method
    assert issubclass(DCGAN, AdversarialModel) and not issubclass(DCGAN, GAN)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_size": 12, "feature_maps": [32, 16, 8]}, r"image_size must be a multiple of 2 \*\* len\(feature_maps\) = 8"),
        ({"feature_maps": []}, "feature_maps must be a non-empty list of positive integers"),
        ({"feature_maps": [16, 0]}, "feature_maps must be a non-empty list of positive integers"),
        ({"image_channels": 0}, "image_channels must be a positive integer"),
        ({"latent_dim": -1}, "latent_dim must be a positive integer"),
        ({"generator_loss": "hinge"}, "generator_loss must be one of"),
        ({"discriminator_learning_rate": -1.0}, "discriminator_learning_rate must be positive"),
    ],
)
def test_bad_arguments_are_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        DCGAN(**options)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------- real fits
def test_a_digits_fit_logs_the_game_and_the_digit_measures(workdir: Path) -> None:
    cli = main(["fit", "--config", config("dcgan/digits_strength"), *QUIET, *SMOKE])
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        columns = set(csv.DictReader(file).fieldnames or ())
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "train_generator_grad_norm", "val_d_loss", "val_g_loss",
            "val_fid", "val_classifier_score", "test_classifier_score"} <= columns  # fmt: skip
    score = float(cli.trainer.callback_metrics["test_classifier_score"])
    assert 1 <= score <= 10 and cli.claim_result is not None and cli.claim_result.observed == pytest.approx(score)
    assert cli.datamodule.normalization == "symmetric" and cli.model.data_shape == (1, 8, 8)
    figures = {p.stem for p in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"learning_curves", "adversarial_curves", "sample_grid", "latent_interpolation"} <= figures and "discriminator_surface" not in figures


def test_images_of_another_size_are_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"data_shape is \[1, 16, 16\] but the data's examples are \[1, 8, 8\]: set"):
        main(["fit", "--config", config("dcgan/digits_strength"), *QUIET, *SMOKE, "--figures=false", "--model.image_size=16"])


# ---------------------------------------------------------------------- the claims (slow)
@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_the_dcgan_draws_digits_a_classifier_reads(workdir: Path, seed: int) -> None:
    """The strength, on every seed: a classifier score of at least 7 (real digits 9.8, noise 4.1)
    and an FID in our classifier's features of at most 50 (real digits 10.4, noise 362)."""
    cli = main(["fit", "--config", config("dcgan/digits_strength"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    assert float(cli.trainer.callback_metrics["test_fid"]) <= 50


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [2])
def test_without_batch_norm_the_generator_collapses(workdir: Path, seed: int) -> None:
    """The weakness, the paper's second guideline: without batch norm the samples collapse to what
    the classifier reads as one digit (calibrated 1.05, 1.58, 1.03 on seeds 0, 1, 2; noise 4.1)."""
    cli = main(["fit", "--config", config("dcgan/without_batch_norm_weakness"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    assert float(cli.trainer.callback_metrics["test_fid"]) > 300


def test_latent_interpolation_walks_between_points_of_the_uniform_prior() -> None:
    """DCGAN's p_z is U[-1, 1]^100: the interpolation's endpoints come from the model's own noise,
    not from N(0, I), and are the same at every call (seeded)."""
    from callbacks.samples import LatentInterpolation

    torch.manual_seed(0)
    model, walk = DCGAN(image_channels=1, image_size=8, feature_maps=(16, 8)), LatentInterpolation(rows=3)
    endpoints, prior = walk.latent_endpoints(model, (model.latent_dim,))
    again, _ = walk.latent_endpoints(model, (model.latent_dim,))
    assert endpoints.shape == (3, 2, 100) and prior.startswith("p_z")
    assert endpoints.abs().max() <= 1.0 and endpoints.std() > 0.5  # uniform on [-1, 1] has std 0.58
    torch.testing.assert_close(endpoints, again)
