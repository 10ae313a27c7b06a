"""VGG against Tables 1 and 2 of Simonyan and Zisserman (2014) and against torchvision's vgg11 to vgg19.

The 224x224 networks are built on the meta device: parameters and shapes without the memory.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ai_scratch.cnn_revolution.vgg import DEPTH, PAPER_MILLIONS, TABLE_1, VGG
from cnn_tools import assert_channels_last_gives_the_same_outputs, count

#: Exact parameters at 224x224 and 1000 classes: (without, with batch norm).
EXACT = {
    "A": (132_863_336, 132_868_840),
    "A-LRN": (132_863_336, 132_868_840),
    "B": (133_047_848, 133_053_736),
    "C": (133_638_952, 133_647_400),
    "D": (138_357_544, 138_365_992),
    "E": (143_667_240, 143_678_248),
}
TORCHVISION = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}

#: Output channels and kernel of every convolution, per configuration (Table 1, read column by column).
CONVOLUTIONS = {
    "A": [(64, 3), (128, 3), (256, 3), (256, 3), (512, 3), (512, 3), (512, 3), (512, 3)],
    "C": [(64, 3), (64, 3), (128, 3), (128, 3), (256, 3), (256, 3), (256, 1),
          (512, 3), (512, 3), (512, 1), (512, 3), (512, 3), (512, 1)],
}  # fmt: skip

SMALL = {"num_classes": 10, "input_size": 32, "width": 0.25}


def meta_vgg(config: str = "D", **options) -> VGG:
    with torch.device("meta"):
        return VGG(config, **options)


# ------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("config", list(TABLE_1))
def test_parameters_are_table_2(config: str) -> None:
    model = meta_vgg(config)
    assert count(model) == EXACT[config][0]
    assert round(count(model) / 1e6) == PAPER_MILLIONS[config]
    fc6 = model.classifier.fc6
    assert (fc6.in_features, count(fc6)) == (512 * 7 * 7, 102_764_544)  # most of the parameters


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("config", list(TORCHVISION))
def test_counts_equal_torchvision_parameter_for_parameter(config: str, batch_norm: bool) -> None:
    torchvision = pytest.importorskip("torchvision")
    name = TORCHVISION[config] + ("_bn" if batch_norm else "")
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
    ours = meta_vgg(config, batch_norm=batch_norm, adaptive_pool=7, init="kaiming")
    assert count(reference) == count(ours) == EXACT[config][batch_norm]
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [type(m) for m in ours.features] == [type(m) for m in reference.features]
    assert [type(m) for m in ours.classifier] == [type(m) for m in reference.classifier]
    assert count(meta_vgg(config, batch_norm=batch_norm)) == count(reference)  # the paper's: no adaptive pool


# ------------------------------------------------------------------------------ Table 1, shapes
@pytest.mark.parametrize("config", list(TABLE_1))
def test_depth_is_the_number_of_weight_layers(config: str) -> None:
    model = meta_vgg(config)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == DEPTH[config]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5


@pytest.mark.parametrize("config", list(CONVOLUTIONS))
def test_convolutions_are_table_1(config: str) -> None:
    convolutions = [(m.out_channels, m.kernel_size[0]) for m in meta_vgg(config).modules() if isinstance(m, nn.Conv2d)]
    assert convolutions == CONVOLUTIONS[config]
    assert all(
        m.stride == (1, 1) and m.padding == (m.kernel_size[0] // 2,) * 2
        for m in meta_vgg(config).modules()
        if isinstance(m, nn.Conv2d)
    )


def test_shapes_through_every_stage_at_224() -> None:
    model = meta_vgg("E")
    x = torch.empty(1, 3, 224, 224, device="meta")
    found = {}
    for name, layer in model.features.named_children():
        x = layer(x)
        found[name] = tuple(x.shape[1:])
    assert [found[f"pool{s}"] for s in range(1, 6)] == [
        (64, 112, 112),
        (128, 56, 56),
        (256, 28, 28),
        (512, 14, 14),
        (512, 7, 7),
    ]
    assert found["conv3_4"] == (256, 56, 56)  # a stack keeps the size of its maps
    assert model(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)


def test_a_stack_of_three_3x3_convolutions_has_27_c_squared_weights() -> None:
    model = meta_vgg("D")
    stack = [model.features.get_submodule(f"conv5_{i}").weight.numel() for i in (1, 2, 3)]
    assert sum(stack) == 27 * 512**2  # one 7x7 layer with the same field: 49 * 512^2


# ------------------------------------------------------------------------------ options
def test_batch_norm_sits_between_each_convolution_and_its_relu() -> None:
    model = meta_vgg("B", batch_norm=True)
    names = list(dict(model.features.named_children()))
    assert names[:7] == ["conv1_1", "bn1_1", "relu1_1", "conv1_2", "bn1_2", "relu1_2", "pool1"]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert not any(isinstance(m, nn.BatchNorm2d) for m in meta_vgg("B").modules())


def test_lrn_only_in_a_lrn_after_the_first_relu() -> None:
    model = meta_vgg("A-LRN")
    assert list(dict(model.features.named_children()))[:4] == ["conv1_1", "relu1_1", "norm1", "pool1"]
    (lrn,) = [m for m in model.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert (lrn.size, lrn.paper_alpha, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, pytest.approx(5e-4), 0.75, 2.0)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in meta_vgg("A").modules())


def test_scaled_down_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = VGG("A", **SMALL)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert (model.classifier.fc6.in_features, model.classifier.fc6.out_features) == (128, 1024)  # 32 / 2^5 = 1
    scores = model(torch.randn(2, 3, 32, 32))
    assert scores.shape == (2, 10) and torch.isfinite(scores).all()
    model.criterion(scores, torch.tensor([1, 9])).backward()
    gradient = model.features.conv1_1.weight.grad
    assert gradient is not None and torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_deepest_configuration_with_batch_norm_trains_a_step() -> None:
    torch.manual_seed(0)
    model = VGG("E", **{**SMALL, "width": 0.125}, batch_norm=True)
    scores = model(torch.randn(2, 3, 32, 32))
    assert scores.shape == (2, 10) and torch.isfinite(scores).all()
    model.criterion(scores, torch.tensor([0, 5])).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_mnist_needs_four_pooling_stages() -> None:
    with pytest.raises(ValueError, match="pool5 gets 1x1 maps; use pooling_stages=4"):
        VGG("A", num_classes=10, in_channels=1, input_size=28)
    model = VGG("A", num_classes=10, in_channels=1, input_size=28, width=0.125, pooling_stages=4)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4 and "pool5" not in dict(
        model.features.named_children()
    )
    assert model.classifier.fc6.in_features == 64 * 1 * 1  # 28 -> 14 -> 7 -> 3 -> 1
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_adaptive_pool_fixes_the_classifier_inputs() -> None:
    model = meta_vgg("A", **SMALL, adaptive_pool=7)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.classifier.fc6.in_features == 128 * 7 * 7
    assert isinstance(meta_vgg("A", **SMALL).avgpool, nn.Identity)
    assert model(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_dropout_on_fc6_and_fc7_and_its_switch() -> None:
    model = meta_vgg("A")
    assert list(dict(model.classifier.named_children())) == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert not any(isinstance(m, nn.Dropout) for m in meta_vgg("A", dropout=0.0).modules())


def test_initialisations() -> None:
    torch.manual_seed(0)
    glorot = VGG("A", **SMALL, batch_norm=True)  # the default
    conv = glorot.features.conv3_2  # 64 -> 64 maps: bound sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max().item() <= math.sqrt(6 / (2 * 64 * 9))
    assert conv.weight.abs().max().item() > 0.95 * math.sqrt(6 / (2 * 64 * 9))
    biases = [m.bias for m in glorot.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    assert all(
        torch.equal(m.weight, torch.ones_like(m.weight)) for m in glorot.modules() if isinstance(m, nn.BatchNorm2d)
    )
    paper = VGG("A", **SMALL, init="paper")
    weights = torch.cat([m.weight.detach().flatten() for m in paper.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert weights.std().item() == pytest.approx(0.01, rel=0.02)
    kaiming = VGG("A", **SMALL, init="kaiming")
    assert kaiming.features.conv4_2.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.05)
    assert kaiming.classifier.fc7.weight.std().item() == pytest.approx(0.01, rel=0.02)


@pytest.mark.parametrize("options", [{"config": "A-LRN"}, {"config": "C", "batch_norm": True}])
def test_channels_last_gives_the_same_outputs(options: dict) -> None:
    torch.manual_seed(0)
    assert_channels_last_gives_the_same_outputs(VGG(**options, **SMALL), torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize(
    "options",
    [
        {"config": "F"},
        {"config": "vgg16"},
        {"init": "xavier"},
        {"lr_schedule": "step"},
        {"width": -1.0},
        {"dropout": 1.5},
        {"pooling_stages": 6},
        {"adaptive_pool": -7},
        {"num_classes": 1},
        {"input_size": 16},
    ],
)
def test_bad_options_raise_value_error(options: dict) -> None:
    with pytest.raises(ValueError):
        VGG(**options)


# ------------------------------------------------------------------------------ metadata, recipe
def test_model_info_of_the_built_network() -> None:
    built = meta_vgg("D").model_info()
    assert built["parameter_count"] == EXACT["D"][0]
    assert built["input_size"] == [3, 224, 224] and built["output_size"] == [1000]
    assert meta_vgg("A", **SMALL).hparams["config"] == "A"


def test_feature_map_layers_are_the_last_relu_of_each_stage() -> None:
    model = meta_vgg("C")
    assert model.feature_map_layers == tuple(f"features.relu{s}_{n}" for s, n in zip(range(1, 6), (2, 2, 3, 3, 3)))
    modules = dict(model.named_modules())
    assert all(isinstance(modules[name], nn.ReLU) for name in model.feature_map_layers)
    assert meta_vgg("A-LRN").feature_map_layers[0] == "features.relu1_1"


def test_optimizer_is_the_papers_sgd_with_a_plateau_schedule() -> None:
    configured = meta_vgg("A", **SMALL).configure_optimizers()
    group = configured["optimizer"].param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.9, 5e-4)
    schedule = configured["lr_scheduler"]
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (schedule["monitor"], schedule["scheduler"].mode, schedule["scheduler"].factor) == (
        "val_accuracy",
        "max",
        0.1,
    )


def test_paper_sized_is_vgg16_and_its_convolutions_cost_he_et_als_15_3_billion() -> None:
    """He et al. (2015, Section 4.1) put VGG-16 at 15.3 billion multiply-adds, and Redmon and Farhadi
    (YOLO9000, 2017, Section 3) at "30.69 billion floating point operations" at 224 x 224: both are
    its 13 convolutions (15.35 billion multiply-adds by hand); the fully connected layers add 0.12."""
    with torch.device("meta"):
        model = VGG.paper_sized()
    assert count(model) == EXACT["D"][0] and round(count(model) / 1e6) == PAPER_MILLIONS["D"] == 138
    # each stage of D: (side, channels in -> out of its convolutions), 3x3 kernels
    stages = [(224, [(3, 64), (64, 64)]), (112, [(64, 128), (128, 128)]), (56, [(128, 256), (256, 256), (256, 256)]),
              (28, [(256, 512), (512, 512), (512, 512)]), (14, [(512, 512)] * 3)]  # fmt: skip
    convolutions = sum(side * side * 9 * c_in * c_out for side, pairs in stages for c_in, c_out in pairs)
    fully_connected = 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert convolutions == pytest.approx(15.3e9, rel=0.005)
    assert 2 * convolutions == pytest.approx(30.69e9, rel=0.0005)
    assert model.forward_flops() == 2 * (convolutions + fully_connected)
