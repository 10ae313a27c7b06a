"""AlexNet against the numbers of Krizhevsky, Sutskever and Hinton (2012) and against torchvision's alexnet.

The 224x224 networks are built on the meta device: their parameters and shapes exist, their
60 million numbers are never allocated.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cnn_revolution.alexnet import AlexNet, LocalResponseNorm
from cnn_tools import assert_channels_last_gives_the_same_outputs, count, quiet_trainer

#: Figure 2 with the two GPUs (groups 2 in conv2, conv4, conv5): weights + biases of each layer.
PAPER_PARAMETERS = {
    "conv1": 96 * (11 * 11 * 3) + 96,  # 34,944: every conv1 kernel sees the 3 colour channels
    "conv2": 256 * (5 * 5 * 48) + 256,  # 307,456: 48 = the 96 conv1 maps / 2 GPUs
    "conv3": 384 * (3 * 3 * 256) + 384,  # 885,120: conv3 reads both GPUs' 256 maps
    "conv4": 384 * (3 * 3 * 192) + 384,  # 663,936: 192 = 384 / 2
    "conv5": 256 * (3 * 3 * 192) + 256,  # 442,624
    "fc6": 4096 * (256 * 6 * 6) + 4096,  # 37,752,832: pool5 gives 256 maps of 6x6
    "fc7": 4096 * 4096 + 4096,  # 16,781,312
    "fc8": 1000 * 4096 + 1000,  # 4,097,000
}
PAPER_TOTAL = 60_965_224  # "60 million parameters"
ONE_GPU_TOTAL = 62_378_344  # groups 1: conv2, conv4, conv5 read every map (+307,200 +663,552 +442,368)
TORCHVISION_TOTAL = 61_100_840  # torchvision.models.alexnet(weights=None)

SMALL = {"num_classes": 10, "input_size": 32, "stem": "small", "width": 0.25}


def meta_alexnet(**options) -> AlexNet:
    with torch.device("meta"):
        return AlexNet(**options)


def shapes(model: AlexNet, size: int = 224) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch) of every layer, by a forward pass on the model's device."""
    x = torch.empty(1, 3, size, size, device=model.device)
    found = {}
    for name, layer in model.features.named_children():
        x = layer(x)
        found[name] = tuple(x.shape[1:])
    x = torch.flatten(model.avgpool(x), 1)
    for name, layer in model.classifier.named_children():
        x = layer(x)
        found[name] = tuple(x.shape[1:])
    return found


@pytest.fixture(scope="module")
def paper() -> AlexNet:
    with torch.device("meta"):
        return AlexNet.paper_sized()


@pytest.fixture(scope="module")
def small() -> AlexNet:
    torch.manual_seed(0)
    return AlexNet(**SMALL)


# ------------------------------------------------------------------------------ parameter counts
def test_paper_network_has_60_965_224_parameters(paper: AlexNet) -> None:
    layers = {
        name: count(module) for name, module in [*paper.features.named_children(), *paper.classifier.named_children()]
    }
    assert {name: n for name, n in layers.items() if n} == PAPER_PARAMETERS
    assert sum(PAPER_PARAMETERS.values()) == PAPER_TOTAL == count(paper)
    assert round(PAPER_TOTAL / 1e6) == 61  # the paper rounds to "60 million"


def test_one_gpu_network_has_dense_conv2_conv4_conv5() -> None:
    model = meta_alexnet(groups=1)
    assert count(model) == ONE_GPU_TOTAL
    assert count(model.features.conv2) == 256 * 5 * 5 * 96 + 256


def test_torchvision_variant_is_torchvision_alexnet_parameter_for_parameter() -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        reference = torchvision.models.alexnet(weights=None)
    ours = meta_alexnet(variant="torchvision")
    assert count(reference) == count(ours) == TORCHVISION_TOTAL
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [type(m) for m in ours.classifier] == [type(m) for m in reference.classifier]  # dropout before fc6, fc7
    assert isinstance(ours.avgpool, nn.AdaptiveAvgPool2d) and ours.avgpool.output_size == 6


# ------------------------------------------------------------------------------ shapes at 224x224
def test_shapes_through_every_layer_at_224(paper: AlexNet) -> None:
    found = shapes(paper)
    expected = {
        "conv1": (96, 55, 55), "norm1": (96, 55, 55), "pool1": (96, 27, 27),
        "conv2": (256, 27, 27), "norm2": (256, 27, 27), "pool2": (256, 13, 13),
        "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
        "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
    }  # fmt: skip
    assert {name: found[name] for name in expected} == expected
    assert paper(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)


def test_neuron_counts_of_section_3_5(paper: AlexNet) -> None:
    """253,440-186,624-64,896-64,896-43,264-4096-4096-1000: all but conv1's, whose maps hold 290,400."""
    found = shapes(paper)
    neurons = [math.prod(found[name]) for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert neurons[1:] == [186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert neurons[0] == 96 * 55 * 55 == 290_400


def test_torchvision_variant_shapes_and_any_input_of_at_least_63() -> None:
    model = meta_alexnet(variant="torchvision")
    assert shapes(model)["conv1"] == (64, 55, 55) and shapes(model)["pool5"] == (256, 6, 6)
    small_input = meta_alexnet(variant="torchvision", input_size=63)
    assert small_input(torch.empty(1, 3, 63, 63, device="meta")).shape == (1, 1000)
    with pytest.raises(ValueError, match="stem='small'"):
        AlexNet(variant="torchvision", input_size=62)


def test_non_overlapping_pooling_gives_the_same_sizes_at_224() -> None:
    model = meta_alexnet(pooling="non_overlapping")
    assert {m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool2d)} == {2}
    assert {m.kernel_size for m in meta_alexnet().modules() if isinstance(m, nn.MaxPool2d)} == {3}
    assert shapes(model)["pool5"] == (256, 6, 6)
    assert count(model) == PAPER_TOTAL


# ------------------------------------------------------------------------------ scaled down
def test_scaled_down_forward_and_backward(small: AlexNet) -> None:
    assert [small.features.get_submodule(f"conv{i}").out_channels for i in range(1, 6)] == [24, 64, 96, 96, 64]
    assert small.classifier.fc6.in_features == 64 * 3 * 3  # 32 -> conv1 32 -> pool 15 -> pool 7 -> pool 3
    assert small.classifier.fc7.in_features == 1024
    scores = small(torch.randn(2, 3, 32, 32))
    assert scores.shape == (2, 10) and torch.isfinite(scores).all()
    small.criterion(scores, torch.tensor([3, 7])).backward()
    gradient = small.features.conv1.weight.grad
    assert gradient is not None and torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    small.zero_grad()


def test_mnist_sized_grey_images() -> None:
    model = AlexNet(num_classes=10, in_channels=1, input_size=28, stem="small", width=0.125)
    assert model.classifier.fc6.in_features == 32 * 2 * 2  # 28 -> 13 -> 6 -> 2
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.model_info()["input_size"] == [1, 28, 28]


def test_width_rounds_maps_to_a_multiple_of_the_groups() -> None:
    model = meta_alexnet(width=0.3)
    maps = [model.features.get_submodule(f"conv{i}").out_channels for i in range(1, 6)]
    assert maps == [2 * round(m * 0.3 / 2) for m in (96, 256, 384, 384, 256)]
    assert all(m % 2 == 0 for m in maps)
    assert model.classifier.fc6.out_features == round(4096 * 0.3)


def test_paper_stem_on_32x32_images_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"input_size 32 is too small.*pool5.*stem='small'"):
        AlexNet(input_size=32)


# ------------------------------------------------------------------------------ LRN, groups, options
def test_local_response_norm_is_the_papers_formula() -> None:
    lrn = LocalResponseNorm()  # the paper's k = 2, n = 5, alpha = 1e-4, beta = 0.75 (torch's alpha: n alpha)
    a = torch.rand(2, 7, 3, 3) * 20
    expected = torch.empty_like(a)
    for i in range(7):
        neighbours = range(max(0, i - 2), min(6, i + 2) + 1)
        expected[:, i] = a[:, i] / (2 + 1e-4 * sum(a[:, j] ** 2 for j in neighbours)) ** 0.75
    assert torch.allclose(lrn(a), expected, rtol=1e-5)


def test_grouped_lrn_normalises_within_each_half() -> None:
    a = torch.rand(1, 8, 2, 2) * 50
    perturbed = a.clone()
    perturbed[:, 3] *= 3  # the last map of the first half
    grouped, dense = LocalResponseNorm(groups=2), LocalResponseNorm()
    assert torch.equal(grouped(a)[:, 4:], grouped(perturbed)[:, 4:])
    assert not torch.allclose(dense(a)[:, 4], dense(perturbed)[:, 4])
    assert torch.allclose(grouped(a)[:, :4], dense(a[:, :4]))


def test_lrn_follows_the_rectified_conv1_and_conv2(paper: AlexNet) -> None:
    names = list(dict(paper.features.named_children()))
    assert names[:4] == ["conv1", "act1", "norm1", "pool1"] and names[4:8] == ["conv2", "act2", "norm2", "pool2"]
    assert [m.groups for m in paper.modules() if isinstance(m, nn.LocalResponseNorm)] == [2, 2]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in meta_alexnet(lrn=False).modules())
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in meta_alexnet(variant="torchvision").modules())
    assert (
        sum(isinstance(m, nn.LocalResponseNorm) for m in meta_alexnet(variant="torchvision", lrn=True).modules()) == 2
    )


def test_groups_are_in_conv2_conv4_conv5_only(paper: AlexNet) -> None:
    groups = {name: paper.features.get_submodule(name).groups for name in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert {m.groups for m in meta_alexnet(groups=1).modules() if isinstance(m, nn.Conv2d)} == {1}


def test_conv2_maps_of_one_gpu_ignore_the_other_gpus_conv1_maps(small: AlexNet) -> None:
    conv2 = small.features.conv2  # 24 -> 64 maps in two groups
    x = torch.randn(1, 24, 5, 5)
    perturbed = x.clone()
    perturbed[:, :12] += 1.0  # the first GPU's conv1 maps
    with torch.no_grad():
        before, after = conv2(x), conv2(perturbed)
    assert torch.equal(before[:, 32:], after[:, 32:])  # the second GPU's conv2 maps
    assert not torch.allclose(before[:, :32], after[:, :32])


def test_dropout_position_and_switch(paper: AlexNet) -> None:
    assert list(dict(paper.classifier.named_children())) == ["fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]
    assert [m.p for m in paper.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    inputs = meta_alexnet(dropout_position="inputs", dropout=0.3)
    assert list(dict(inputs.classifier.named_children())) == ["drop6", "fc6", "act6", "drop7", "fc7", "act7", "fc8"]
    assert [m.p for m in inputs.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert not any(isinstance(m, nn.Dropout) for m in meta_alexnet(dropout=0.0).modules())


@pytest.mark.parametrize(("activation", "kind"), [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)])
def test_activation_is_used_in_every_hidden_layer(activation: str, kind: type[nn.Module]) -> None:
    model = meta_alexnet(activation=activation)
    assert sum(isinstance(m, kind) for m in model.modules()) == 7  # conv1-5, fc6, fc7
    assert all(isinstance(model.get_submodule(name), kind) for name in model.feature_map_layers)


def test_paper_initialisation(small: AlexNet) -> None:
    for name in ("conv1", "conv3", "fc8"):
        assert torch.equal(
            small.get_submodule(_path(name)).bias, torch.zeros_like(small.get_submodule(_path(name)).bias)
        )
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert torch.equal(
            small.get_submodule(_path(name)).bias, torch.ones_like(small.get_submodule(_path(name)).bias)
        )
    weights = torch.cat([m.weight.detach().flatten() for m in small.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert weights.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert weights.std().item() == pytest.approx(0.01, rel=0.02)


def test_other_initialisations() -> None:
    torch.manual_seed(0)
    kaiming = AlexNet(**SMALL, init="kaiming")
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in kaiming.modules() if isinstance(m, nn.Conv2d))
    conv3 = kaiming.features.conv3  # He et al.: variance 2 / fan_out, fan_out = 96 maps x 3 x 3
    assert conv3.weight.std().item() == pytest.approx(math.sqrt(2 / (96 * 9)), rel=0.05)
    default = AlexNet(**SMALL, init="default")  # PyTorch's: biases uniform within 1 / sqrt(fan_in)
    bias = default.features.conv2.bias
    assert 0 < bias.abs().max().item() <= 1 / math.sqrt(12 * 25) and bias.unique().numel() > 1


def _path(name: str) -> str:
    return f"{'classifier' if name.startswith('fc') else 'features'}.{name}"


# ------------------------------------------------------------------------------ devices, layouts
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_channels_last_gives_the_same_outputs(variant: str) -> None:
    torch.manual_seed(0)
    assert_channels_last_gives_the_same_outputs(AlexNet(**SMALL, variant=variant), torch.randn(2, 3, 32, 32))


def test_parameters_are_float32(small: AlexNet) -> None:
    assert {p.dtype for p in small.parameters()} == {torch.float32}


# ------------------------------------------------------------------------------ options, metadata
@pytest.mark.parametrize(
    "options",
    [
        {"variant": "caffenet"},
        {"activation": "elu"},
        {"pooling": "average"},
        {"stem": "tiny"},
        {"init": "xavier"},
        {"dropout_position": "everywhere"},
        {"lr_schedule": "step"},
        {"groups": 0},
        {"width": 0},
        {"dropout": 1.0},
        {"adaptive_pool": -1},
        {"num_classes": 1},
        {"input_size": 8, "stem": "small"},
    ],
)
def test_bad_options_raise_value_error(options: dict) -> None:
    with pytest.raises(ValueError):
        AlexNet(**options)


def test_model_info_of_the_built_networks(paper: AlexNet, small: AlexNet) -> None:
    built = paper.model_info()
    assert built["parameter_count"] == built["trainable_parameter_count"] == PAPER_TOTAL
    assert built["input_size"] == [3, 224, 224] and built["output_size"] == [1000]
    assert small.model_info()["output_size"] == [10] and small.model_info()["precision"] == "float32"


def test_hyperparameters_record_what_the_variant_chose() -> None:
    paper, torchvision = meta_alexnet(), meta_alexnet(variant="torchvision", lrn=True)
    assert (paper.hparams.groups, paper.hparams.lrn, paper.hparams.adaptive_pool, paper.hparams.init) == (
        2,
        True,
        0,
        "paper",
    )
    assert (torchvision.hparams.groups, torchvision.hparams.lrn, torchvision.hparams.dropout_position) == (
        1,
        True,
        "inputs",
    )


def test_feature_map_layers_and_first_convolution(paper: AlexNet) -> None:
    modules = dict(paper.named_modules())
    assert all(name in modules for name in paper.feature_map_layers) and len(paper.feature_map_layers) == 5
    assert next(m for m in paper.modules() if isinstance(m, nn.Conv2d)) is paper.features.conv1


# ------------------------------------------------------------------------------ the training recipe
def test_optimizer_is_the_papers_sgd_with_a_plateau_schedule(small: AlexNet) -> None:
    configured = small.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.9, 5e-4)
    scheduler = schedule["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (schedule["monitor"], schedule["interval"], scheduler.mode, scheduler.factor) == (
        "val_accuracy",
        "epoch",
        "max",
        0.1,
    )
    constant = AlexNet(**SMALL, lr_schedule="constant", learning_rate=0.05).configure_optimizers()
    assert isinstance(constant, torch.optim.SGD) and constant.param_groups[0]["lr"] == 0.05


def test_plateau_divides_the_rate_by_ten_three_times_at_most() -> None:
    configured = AlexNet(**SMALL, lr_patience=0).configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    rates = []
    for accuracy in (0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6):  # improves once, then never again
        scheduler.step(accuracy)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([0.01, 0.01, 0.001, 0.0001, 0.00001, 0.00001, 0.00001])


def test_tiny_fit_reduces_the_rate_when_validation_accuracy_stalls() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,)))
    model = AlexNet(num_classes=4, input_size=16, stem="small", width=1 / 16, learning_rate=1e-5, lr_patience=0)
    trainer = quiet_trainer(max_epochs=2, num_sanity_val_steps=0)
    loader = DataLoader(data, batch_size=8)
    trainer.fit(model, loader, loader)
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())
    assert 0.0 <= trainer.callback_metrics["val_accuracy"].item() <= 1.0
    # lr 1e-5 changes no prediction, so the second epoch's val_accuracy is no better: divided by 10
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-6)


def test_paper_sized_forward_flops_are_its_neurons_times_their_inputs(paper: AlexNet) -> None:
    """The paper gives no operation count. Each neuron of a convolution or linear layer does one
    multiply-add per weight it reads: Section 3.5's neurons times the kernel volume of Figure 2."""
    neurons_and_inputs = {
        "conv1": (96 * 55 * 55, 11 * 11 * 3), "conv2": (186_624, 5 * 5 * 48), "conv3": (64_896, 3 * 3 * 256),
        "conv4": (64_896, 3 * 3 * 192), "conv5": (43_264, 3 * 3 * 192),
        "fc6": (4096, 256 * 6 * 6), "fc7": (4096, 4096), "fc8": (1000, 4096),
    }  # fmt: skip
    by_hand = sum(neurons * inputs for neurons, inputs in neurons_and_inputs.values())
    assert count(paper) == PAPER_TOTAL and tuple(paper.example_input_array.shape) == (1, 3, 224, 224)
    assert paper.forward_flops() == 2 * by_hand == 2 * 724_406_816
