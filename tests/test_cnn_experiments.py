"""The CNN revolution's experiment configs: each builds and trains through the real CLI; the claims.

Fast tests: every config parses, builds its model and datamodule and runs one training and one
validation batch (``--trainer.fast_dev_run``); the GoogLeNet and VGG configs differ in parameters
as the comparison says. Slow tests (``-m slow``) fit the configs and check their claims:
ResNet's degradation ordering and AlexNet's ReLU against sigmoid units.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ai_scratch.cli import main
from conftest import CONFIGS, config

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--figures", "false"]

EXPERIMENTS = {
    "resnet/degradation_plain20": ("ai_scratch.cnn_revolution.resnet.ResNet", "strength"),
    "resnet/degradation_plain32": ("ai_scratch.cnn_revolution.resnet.ResNet", "weakness"),
    "resnet/degradation_resnet32": ("ai_scratch.cnn_revolution.resnet.ResNet", "strength"),
    "alexnet/relu_strength": ("ai_scratch.cnn_revolution.alexnet.AlexNet", "strength"),
    "alexnet/sigmoid_weakness": ("ai_scratch.cnn_revolution.alexnet.AlexNet", "weakness"),
    "alexnet/dropout_strength": ("ai_scratch.cnn_revolution.alexnet.AlexNet", "strength"),
    "alexnet/overfitting_without_dropout_weakness": ("ai_scratch.cnn_revolution.alexnet.AlexNet", "weakness"),
    "vgg/depth_strength": ("ai_scratch.cnn_revolution.vgg.VGG", "strength"),
    "vgg/random_init_weakness": ("ai_scratch.cnn_revolution.vgg.VGG", "weakness"),
    "googlenet/fewer_parameters_strength": ("ai_scratch.cnn_revolution.googlenet.GoogLeNet", "strength"),
    "googlenet/without_batch_norm_weakness": ("ai_scratch.cnn_revolution.googlenet.GoogLeNet", "weakness"),
}


def test_every_cnn_config_is_listed() -> None:
    found = {f"{p.parent.name}/{p.stem}" for m in ("resnet", "alexnet", "vgg", "googlenet") for p in (CONFIGS / m).glob("*.yaml")}
    assert found == set(EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_config_builds_and_runs_a_batch(workdir: Path, name: str) -> None:
    cli = main(["fit", "--config", config(name), *QUIET, "--trainer.fast_dev_run", "true", "--data.init_args.batch_size", "4"])
    class_path, kind = EXPERIMENTS[name]
    assert f"{type(cli.model).__module__}.{type(cli.model).__name__}" == class_path
    assert type(cli.datamodule).__name__ == "VisionDataModule"
    experiment = cli.config_init["fit"]["experiment"]
    assert experiment.kind == kind and experiment.claim is not None and experiment.description
    # the model reads what the datamodule gives
    channels, side, _ = cli.datamodule.input_shape
    assert cli.model.hparams.in_channels == channels and cli.model.hparams.input_size == side
    assert cli.trainer.global_step == 1


def parameters(name: str) -> int:
    """Parameters of the model a config builds (without data or a trainer)."""
    import importlib

    model = yaml.safe_load(Path(config(name)).read_text())["model"]
    module, cls = model["class_path"].rsplit(".", 1)
    return sum(p.numel() for p in getattr(importlib.import_module(module), cls)(**model["init_args"]).parameters())


def test_googlenet_has_far_fewer_parameters_than_vgg() -> None:
    vgg, googlenet = parameters("vgg/depth_strength"), parameters("googlenet/fewer_parameters_strength")
    assert (vgg, googlenet) == (532_546, 94_578)
    assert vgg / googlenet > 5


def fit(name: str, seed: int = 0):
    return main(["fit", "--config", config(name), *QUIET, "--seed_everything", str(seed)])


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_resnet_degradation_ordering(workdir: Path, seed: int) -> None:
    """He et al. (2015), Figures 1 and 6: plain-32 trains worse than plain-20; resnet-32 fits."""
    runs = {n: fit(f"resnet/degradation_{n}", seed) for n in ("plain20", "plain32", "resnet32")}
    for cli in runs.values():
        assert cli.claim_result.reproduced, cli.claim_result.line()
    error = {n: 1.0 - float(cli.trainer.callback_metrics["train_accuracy"]) for n, cli in runs.items()}
    assert error["plain32"] > error["plain20"] + 0.05
    assert error["resnet32"] < error["plain20"] + 0.005


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_alexnet_relu_trains_where_sigmoid_stalls(workdir: Path, seed: int) -> None:
    relu, sigmoid = fit("alexnet/relu_strength", seed), fit("alexnet/sigmoid_weakness", seed)
    assert relu.claim_result.reproduced, relu.claim_result.line()
    assert sigmoid.claim_result.reproduced, sigmoid.claim_result.line()


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_googlenet_without_batch_norm_learns_far_less(workdir: Path, seed: int) -> None:
    """Szegedy et al. (2014) trained GoogLeNet without batch normalisation; Ioffe and Szegedy (2015)
    reached its accuracy in 14 times fewer steps with it. The same small net, data and budget."""
    with_bn, without = fit("googlenet/fewer_parameters_strength", seed), fit("googlenet/without_batch_norm_weakness", seed)
    assert with_bn.claim_result.reproduced, with_bn.claim_result.line()
    assert without.claim_result.reproduced, without.claim_result.line()
    accuracy = {name: float(cli.trainer.callback_metrics["test_accuracy"]) for name, cli in (("bn", with_bn), ("plain", without))}
    assert accuracy["bn"] > accuracy["plain"] + 0.3, accuracy


def test_dropout_twins_differ_in_dropout_only() -> None:
    with_dropout, without = (yaml.safe_load(Path(config(f"alexnet/{n}")).read_text()) for n in ("dropout_strength", "overfitting_without_dropout_weakness"))
    assert (with_dropout["model"]["init_args"].pop("dropout"), without["model"]["init_args"].pop("dropout")) == (0.5, 0.0)
    for key in ("model", "data", "trainer", "seed_everything"):
        assert with_dropout[key] == without[key], key
    assert with_dropout["trainer"]["callbacks"] == [{"class_path": "callbacks.GeneralizationGap"}]


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_alexnet_without_dropout_overfits(workdir: Path, seed: int) -> None:
    """Krizhevsky et al. (2012), Section 4.2: without dropout the network overfits. (That dropout
    narrows the gap needs twins paired by seed: benchmarks/dropout_gap.py, twelve seeds.)"""
    cli = fit("alexnet/overfitting_without_dropout_weakness", seed)
    assert cli.claim_result.reproduced, cli.claim_result.line()
    metrics = cli.trainer.callback_metrics
    # it (almost) memorised its training digits: seed 1 reads 0.9745, seeds 0 and 2 above 0.98
    assert float(metrics["train_eval_accuracy"]) >= 0.96
