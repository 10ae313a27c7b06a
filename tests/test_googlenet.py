"""GoogLeNet against Szegedy et al. (2014), Table 1 and Section 5, and against torchvision's variant.

Full-size networks are built and run on the meta device: shapes and counts, no memory, no arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cnn_revolution.googlenet import (
    INCEPTION_TABLE,
    PAPER_MAIN_PARAMETERS,
    PAPER_PARAMETERS_WITH_AUX,
    PAPER_PARAMS_COLUMN_K,
    TORCHVISION_OPTIONS,
    AuxiliaryClassifier,
    GoogLeNet,
    Inception,
    paper_lr_factor,
)
from cnn_tools import assert_channels_last_gives_the_same_outputs, count, multiply_adds, output_shapes, quiet_trainer
from cnn_tools import one_thread  # noqa: F401 (a module fixture, used below)

#: Table 1 transcribed a second time, as printed: output size, then
#: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE_1 = """
3a 28x28x256   64  96 128 16  32  32
3b 28x28x480  128 128 192 32  96  64
4a 14x14x512  192  96 208 16  48  64
4b 14x14x512  160 112 224 24  64  64
4c 14x14x512  128 128 256 24  64  64
4d 14x14x528  112 144 288 32  64  64
4e 14x14x832  256 160 320 32 128 128
5a 7x7x832    256 160 320 32 128 128
5b 7x7x1024   384 192 384 48 128 128
"""
ROWS = [line.split() for line in TABLE_1.strip().splitlines()]
SMALL = {"num_classes": 10, "input_size": 32, "stem": "cifar", "width": 1 / 16}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def meta_models() -> dict[str, nn.Module]:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        return {
            "paper": GoogLeNet.paper_sized(),
            "paper_no_aux": GoogLeNet(aux_logits=False),
            "ours_tv": GoogLeNet.torchvision_variant(),
            "ours_tv_no_aux": GoogLeNet.torchvision_variant(aux_logits=False),
            "torchvision": torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False),
            "torchvision_no_aux": torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False),
        }


@pytest.fixture(scope="module")
def small() -> GoogLeNet:
    torch.manual_seed(0)
    return GoogLeNet(**SMALL)


# ------------------------------------------------------------------------------ parameter counts
def test_paper_faithful_parameter_count(meta_models: dict[str, nn.Module]) -> None:
    assert count(meta_models["paper"]) == PAPER_PARAMETERS_WITH_AUX == 13_378_280
    assert count(meta_models["paper_no_aux"]) == PAPER_MAIN_PARAMETERS == 6_998_552
    aux = meta_models["paper"].aux1, meta_models["paper"].aux2
    assert sum(count(head) for head in aux) == 13_378_280 - 6_998_552


def test_weights_match_the_sum_of_table_1s_params_column(meta_models: dict[str, nn.Module]) -> None:
    """Table 1 counts weights without biases in units of 1024; its column sums to 6,797.7K ("6.8M")."""
    weights = sum(p.numel() for p in meta_models["paper_no_aux"].parameters() if p.ndim > 1)
    assert weights == 6_990_272
    assert weights / 1024 == pytest.approx(sum(PAPER_PARAMS_COLUMN_K.values()), rel=0.005)
    stem = meta_models["paper_no_aux"].stem
    assert stem.conv2.conv.weight.numel() + stem.conv3.conv.weight.numel() == 112 * 1024  # "112K", exact


def test_torchvision_variant_counts_equal_torchvisions(meta_models: dict[str, nn.Module]) -> None:
    assert count(meta_models["ours_tv"]) == count(meta_models["torchvision"]) == 13_004_888
    assert count(meta_models["ours_tv_no_aux"]) == count(meta_models["torchvision_no_aux"]) == 6_624_904


def test_multiply_adds_are_the_papers_one_and_a_half_billion(meta_models: dict[str, nn.Module]) -> None:
    with torch.device("meta"):
        image = torch.zeros(1, 3, 224, 224)
    ours = multiply_adds(meta_models["paper"].eval(), image)
    assert ours == pytest.approx(1.5e9, rel=0.06)
    assert multiply_adds(meta_models["ours_tv"].eval(), image) == pytest.approx(1.498e9, rel=0.001)  # torchvision's _ops


def test_model_info_and_hyperparameters(small: GoogLeNet) -> None:
    info = small.model_info()
    assert info["parameter_count"] == count(small) and info["input_size"] == [3, 32, 32] and info["output_size"] == [10]
    assert small.hparams["stem"] == "cifar" and small.hparams["aux_weight"] == 0.3


# ------------------------------------------------------------------------------ Table 1, structure
def test_inception_filter_counts_are_table_1(meta_models: dict[str, nn.Module]) -> None:
    model = meta_models["paper"]
    for name, output, *filters in ROWS:
        assert INCEPTION_TABLE[name] == tuple(int(f) for f in filters)
        module: Inception = getattr(model, f"inception{name}")
        convs = [
            module.branch1.conv,
            module.branch2[0].conv,
            module.branch2[1].conv,
            module.branch3[0].conv,
            module.branch3[1].conv,
            module.branch4[1].conv,
        ]
        assert [c.out_channels for c in convs] == [int(f) for f in filters], name
        assert [c.kernel_size[0] for c in convs] == [1, 1, 3, 1, 5, 1], name
        assert module.out_channels == int(output.split("x")[2]), name
        assert isinstance(module.branch4[0], nn.MaxPool2d) and module.branch4[0].kernel_size == 3


def test_output_sizes_are_table_1s(meta_models: dict[str, nn.Module]) -> None:
    names = ["stem.conv1", "stem.pool1", "stem.conv3", "stem.pool2", "maxpool3", "maxpool4", "avgpool"]
    names += [f"inception{row[0]}" for row in ROWS]
    with torch.device("meta"):
        scores, shapes = output_shapes(meta_models["paper"].eval(), torch.zeros(1, 3, 224, 224), names)
    assert scores.shape == (1, 1000)
    expected = {
        "stem.conv1": (64, 112, 112), "stem.pool1": (64, 56, 56), "stem.conv3": (192, 56, 56),
        "stem.pool2": (192, 28, 28), "maxpool3": (480, 14, 14), "maxpool4": (832, 7, 7), "avgpool": (1024, 1, 1),
    }  # fmt: skip
    for name, output, *_ in ROWS:
        side, _, depth = output.rpartition("x")
        expected[f"inception{name}"] = (int(depth), *(int(s) for s in side.split("x")))
    assert shapes == expected


def test_stem_has_the_papers_lrn_and_no_batch_norm(meta_models: dict[str, nn.Module]) -> None:
    paper = meta_models["paper"]
    assert list(dict(paper.stem.named_children())) == ["conv1", "pool1", "norm1", "conv2", "conv3", "norm2", "pool2"]
    assert isinstance(paper.stem.norm1, nn.LocalResponseNorm) and paper.stem.norm1.size == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in paper.modules())
    assert all(m.bias is not None for m in paper.modules() if isinstance(m, nn.Conv2d))
    assert paper.dropout.p == 0.4 and paper.maxpool4.kernel_size == 3


def test_torchvision_variant_options(meta_models: dict[str, nn.Module]) -> None:
    ours = meta_models["ours_tv"]
    assert ours.hparams["batch_norm"] and not ours.hparams["lrn"]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in ours.modules())
    batch_norms = [m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    assert len(batch_norms) == len(convs) and {bn.eps for bn in batch_norms} == {0.001}
    assert all(c.bias is None for c in convs)
    assert ours.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert isinstance(ours.aux1.pool, nn.AdaptiveAvgPool2d) and ours.aux1.dropout.p == 0.7
    assert ours.dropout.p == 0.2 and ours.maxpool4.kernel_size == 2
    assert GoogLeNet.torchvision_variant(**SMALL).hparams["lrn"] is False  # options on top of the variant
    assert set(TORCHVISION_OPTIONS) <= set(ours.hparams)


def test_auxiliary_classifiers_are_section_5s(meta_models: dict[str, nn.Module]) -> None:
    model = meta_models["paper"]
    for head, in_channels in ((model.aux1, 512), (model.aux2, 528)):
        assert isinstance(head, AuxiliaryClassifier)
        assert isinstance(head.pool, nn.AvgPool2d) and (head.pool.kernel_size, head.pool.stride) == (5, 3)
        assert (head.conv.conv.in_channels, head.conv.conv.out_channels, head.conv.conv.kernel_size) == (in_channels, 128, (1, 1))
        assert isinstance(head.conv.relu, nn.ReLU)
        assert (head.fc1.in_features, head.fc1.out_features) == (4 * 4 * 128, 1024)
        assert head.dropout.p == 0.7 and head.fc2.out_features == 1000
    model.train()
    with torch.device("meta"):
        main, aux1, aux2 = model.forward_with_aux(torch.zeros(2, 3, 224, 224))
    model.eval()
    assert main.shape == aux1.shape == aux2.shape == (2, 1000)


# ------------------------------------------------------------------------------ small inputs, training
def test_small_forward_backward_at_32x32(small: GoogLeNet) -> None:
    small.train()
    images, target = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    main, aux1, aux2 = small.forward_with_aux(images)
    assert main.shape == aux1.shape == aux2.shape == (2, 10)
    assert small.aux1.fc1.in_features == small.aux1.conv.conv.out_channels * 4 * 4  # 16x16 at (4a): 4x4 after 5x5/3
    loss = F.cross_entropy(main, target) + 0.3 * (F.cross_entropy(aux1, target) + F.cross_entropy(aux2, target))
    small.zero_grad()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in small.parameters())
    small.eval()


def test_training_loss_is_main_plus_three_tenths_of_the_auxiliary_losses() -> None:
    torch.manual_seed(1)
    model = GoogLeNet(**SMALL, dropout=0.0, aux_dropout=0.0).train()  # no dropout: deterministic in training
    images, target = torch.randn(2, 3, 32, 32), torch.tensor([4, 9])
    logged: dict[str, Tensor] = {}
    model.log_dict = lambda values, **_: logged.update(values)  # type: ignore[method-assign]
    loss = model.training_step((images, target), 0)

    with torch.no_grad():  # the network again, layer by layer, outside forward_with_aux
        x = model.inception3b(model.inception3a(model.stem(images)))
        x = model.inception4a(model.maxpool3(x))
        aux1 = model.aux1.fc2(F.relu(model.aux1.fc1(torch.flatten(model.aux1.conv(F.avg_pool2d(x, 5, 3)), 1))))
        x = model.inception4d(model.inception4c(model.inception4b(x)))
        aux2 = model.aux2.fc2(F.relu(model.aux2.fc1(torch.flatten(model.aux2.conv(F.avg_pool2d(x, 5, 3)), 1))))
        x = model.inception5b(model.inception5a(model.maxpool4(model.inception4e(x))))
        main = model.fc(x.mean(dim=(2, 3)))
    main_loss, aux1_loss, aux2_loss = (F.cross_entropy(s, target) for s in (main, aux1, aux2))
    torch.testing.assert_close(loss.detach(), main_loss + 0.3 * (aux1_loss + aux2_loss))
    torch.testing.assert_close(logged["train_main_loss"], main_loss)
    torch.testing.assert_close(logged["train_aux1_loss"], aux1_loss)
    torch.testing.assert_close(logged["train_aux2_loss"], aux2_loss)
    assert loss.requires_grad


def test_auxiliary_heads_run_only_in_training(small: GoogLeNet) -> None:
    calls: list[str] = []
    handles = [head.register_forward_hook(lambda m, i, o, n=n: calls.append(n)) for n, head in (("aux1", small.aux1), ("aux2", small.aux2))]
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        small.eval()
        assert small.forward_with_aux(images)[1:] == (None, None)
        small(images)
        small.train()
        small(images)  # forward is the main head only, even in training
        assert calls == []
        small.forward_with_aux(images)
        small.eval()
    for handle in handles:
        handle.remove()
    assert calls == ["aux1", "aux2"]
    without = GoogLeNet(**SMALL, aux_logits=False).train()
    assert without.aux1 is None and without.aux2 is None
    assert without.forward_with_aux(images)[1:] == (None, None)


def test_channels_last_gives_the_same_outputs(small: GoogLeNet) -> None:
    assert_channels_last_gives_the_same_outputs(small, torch.randn(2, 3, 32, 32))


def test_feature_map_layers_exist_for_both_stems(small: GoogLeNet, meta_models: dict[str, nn.Module]) -> None:
    for model in (small, meta_models["paper"]):
        assert set(model.feature_map_layers) <= set(dict(model.named_modules()))


def test_imagenet_stem_on_64x64_needs_the_adaptive_auxiliary_pooling() -> None:
    with pytest.raises(ValueError, match="aux_pool='adaptive'"):
        GoogLeNet(num_classes=10, input_size=64, width=1 / 16)
    with torch.device("meta"):
        model = GoogLeNet(num_classes=10, input_size=64, width=1 / 16, aux_pool="adaptive").train()
        outputs = model.forward_with_aux(torch.zeros(2, 3, 64, 64))
    assert [o.shape for o in outputs] == [(2, 10)] * 3
    assert model.aux1.fc1.in_features == model.aux1.conv.conv.out_channels * 4 * 4  # adaptive: 4x4 from 4x4 maps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stem": "tiny"}, "stem must be one of"),
        ({"aux_pool": "max"}, "aux_pool must be one of"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"width": 0}, "width must be positive"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"aux_dropout": -0.1}, "aux_dropout must be in"),
        ({"branch3_kernel": 4}, "branch3_kernel must be odd"),
        ({"maxpool4_kernel": 5}, "maxpool4_kernel must be 3"),
        ({"aux_weight": -1}, "aux_weight"),
        ({"in_channels": 0}, "in_channels"),
        ({"input_size": 4, "aux_logits": False}, "too small"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_options_raise_a_clear_error(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GoogLeNet(**options)


# ------------------------------------------------------------------------------ optimiser, a real fit
def test_paper_schedule_is_four_percent_less_every_eight_epochs() -> None:
    assert [paper_lr_factor(e) for e in (0, 7, 8, 15, 16, 24)] == pytest.approx([1, 1, 0.96, 0.96, 0.96**2, 0.96**3])


def test_tiny_fit_logs_the_main_and_auxiliary_losses() -> None:
    torch.manual_seed(0)
    model = GoogLeNet(**SMALL, learning_rate=0.05)
    data = DataLoader(TensorDataset(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))), batch_size=2)
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    for name in ("train_loss", "train_main_loss", "train_aux1_loss", "train_aux2_loss"):
        assert math.isfinite(metrics[name].item()), name
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "epoch" and scheduler.scheduler.lr_lambdas[0] is paper_lr_factor


def test_paper_sized_forward_flops_are_the_inference_network_s(meta_models: dict[str, nn.Module]) -> None:
    """The counted forward is the inference one, without the auxiliary heads: 1.58 billion
    multiply-adds, 5% over the paper's "1.5 billion" (Table 1's ops column undercounts the first
    convolution, see the module's docstring); the same as the layer-by-layer count of cnn_tools."""
    with torch.device("meta"):
        model = GoogLeNet.paper_sized()
    assert count(model) == PAPER_PARAMETERS_WITH_AUX and tuple(model.example_input_array.shape) == (1, 3, 224, 224)
    flops = model.forward_flops()
    assert flops / 2 == pytest.approx(1.5e9, rel=0.06)
    assert flops == 2 * multiply_adds(meta_models["paper_no_aux"].eval(), model.example_input_array)
