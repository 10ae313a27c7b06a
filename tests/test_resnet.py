"""ResNet against He et al. (2015): Table 1, Section 3.3, Section 4.2 and Table 6, and torchvision.

Full-size networks are built and run on the meta device: shapes and counts, no memory, no arithmetic.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cnn_revolution.resnet import (
    PAPER_CIFAR_PARAMETERS_M,
    PAPER_FLOPS,
    TORCHVISION_OPTIONS,
    TORCHVISION_PARAMETERS,
    BasicBlock,
    Bottleneck,
    ResNet,
    ZeroPadShortcut,
    cifar_resnet,
    paper_lr_factor,
    resnet34,
)
from cnn_tools import assert_channels_last_gives_the_same_outputs, count, multiply_adds, output_shapes, quiet_trainer
from cnn_tools import one_thread  # noqa: F401 (a module fixture, used below)

IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
#: Table 1, the blocks of conv2_x to conv5_x, transcribed a second time.
TABLE_1_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
#: This file's exact counts of the CIFAR-10 networks (option A, 10 classes); Table 6 rounds them.
CIFAR_PARAMETERS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
SMALL_CIFAR = {"depth": 20, "family": "cifar", "width": 0.5}  # 8, 16, 32 filters

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def imagenet() -> dict[int, ResNet]:
    """The paper's ImageNet networks (option B, stride on the 1x1), on the meta device."""
    with torch.device("meta"):
        return {depth: ResNet.paper_sized(depth).eval() for depth in IMAGENET_DEPTHS}


@pytest.fixture(scope="module")
def small() -> ResNet:
    torch.manual_seed(0)
    return ResNet(**SMALL_CIFAR)


# ------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("depth", IMAGENET_DEPTHS)
def test_imagenet_counts_equal_torchvisions_for_both_stride_placements(depth: int, imagenet: dict[int, ResNet]) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        reference = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        v1_5 = ResNet(depth=depth, **TORCHVISION_OPTIONS)
    assert count(imagenet[depth]) == count(v1_5) == count(reference) == TORCHVISION_PARAMETERS[depth]


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMETERS))
def test_cifar_counts_are_table_6s(depth: int) -> None:
    with torch.device("meta"):
        model = cifar_resnet(depth)
        plain = cifar_resnet(depth, residual=False)
    assert count(model) == CIFAR_PARAMETERS[depth]
    assert round(count(model) / 1e6, 2 if depth < 100 else 1) == PAPER_CIFAR_PARAMETERS_M[depth]
    assert count(plain) == count(model)  # option A: "exactly the same ... number of parameters"


def test_shortcut_options_a_b_c_on_resnet34() -> None:
    """Section 3.3: A adds no parameters, B projects the 3 increases, C all 16 shortcuts ("thirteen" more)."""
    with torch.device("meta"):
        models = {option: resnet34(shortcut=option) for option in "ABC"}
        plain = resnet34(residual=False)

    def projections(model: ResNet) -> int:
        return sum(isinstance(block.shortcut, nn.Sequential) for block in model.blocks())

    assert [projections(models[o]) for o in "ABC"] == [0, 3, 16]
    assert count(models["A"]) == count(plain) < count(models["B"]) < count(models["C"])
    assert count(models["B"]) == TORCHVISION_PARAMETERS[34]
    assert all(not isinstance(b.shortcut, ZeroPadShortcut) for b in models["B"].blocks())
    assert sum(isinstance(b.shortcut, ZeroPadShortcut) for b in models["A"].blocks()) == 3


def test_model_info_and_resolved_defaults(small: ResNet) -> None:
    info = small.model_info()
    assert info["parameter_count"] == count(small) and info["input_size"] == [3, 32, 32] and info["output_size"] == [10]
    assert (small.hparams["shortcut"], small.hparams["stem"], small.hparams["num_classes"]) == ("A", "cifar", 10)
    assert tuple(small.hparams["lr_milestones"]) == (0.5, 0.75)
    with torch.device("meta"):
        imagenet = ResNet()
    assert (imagenet.hparams["shortcut"], imagenet.num_classes, imagenet.input_size) == ("B", 1000, (3, 224, 224))


# ------------------------------------------------------------------------------ Table 1, structure
@pytest.mark.parametrize("depth", IMAGENET_DEPTHS)
def test_block_layout_is_table_1s(depth: int, imagenet: dict[int, ResNet]) -> None:
    model = imagenet[depth]
    assert tuple(len(getattr(model, name)) for name in model.stage_names) == TABLE_1_BLOCKS[depth]
    kind = BasicBlock if depth < 50 else Bottleneck
    assert all(type(block) is kind for block in model.blocks())
    weighted = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for name, m in model.named_modules() if "shortcut" not in name)
    assert weighted == depth  # the depth counts the stem, the blocks' convolutions and the fc layer


@pytest.mark.parametrize(("depth", "channels"), [(34, (64, 128, 256, 512)), (50, (256, 512, 1024, 2048))])
def test_output_sizes_are_table_1s(depth: int, channels: tuple[int, ...], imagenet: dict[int, ResNet]) -> None:
    model = imagenet[depth]
    with torch.device("meta"):
        scores, shapes = output_shapes(model, torch.zeros(1, 3, 224, 224), ("stem.conv", "stem", *model.stage_names))
    assert scores.shape == (1, 1000)
    sides = {"layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7}
    expected = {"stem.conv": (64, 112, 112), "stem": (64, 56, 56)}
    expected |= {name: (c, sides[name], sides[name]) for name, c in zip(model.stage_names, channels, strict=True)}
    assert shapes == expected


def test_multiply_adds_are_table_1s_flops(imagenet: dict[int, ResNet]) -> None:
    with torch.device("meta"):
        image = torch.zeros(1, 3, 224, 224)
        v1_5 = ResNet(depth=50, stride_on="3x3").eval()
    for depth, model in imagenet.items():
        assert multiply_adds(model, image) == pytest.approx(PAPER_FLOPS[depth], rel=0.03), depth
    # torchvision's stride on the 3x3: same parameters, more work (its documented 4.09 GFLOPS)
    assert multiply_adds(v1_5, image) == pytest.approx(4.09e9, rel=0.001)
    assert multiply_adds(v1_5, image) > multiply_adds(imagenet[50], image)


def test_stride_placement_of_a_downsampling_bottleneck() -> None:
    with torch.device("meta"):
        paper, torchvision_like = ResNet(depth=50), ResNet(depth=50, stride_on="3x3")
    for model, strides in ((paper, ((2, 2), (1, 1))), (torchvision_like, ((1, 1), (2, 2)))):
        first = model.layer2[0]
        assert (first.conv1.stride, first.conv2.stride) == strides
        assert first.shortcut.conv.stride == (2, 2)


def test_cifar_family_is_section_4_2s() -> None:
    with torch.device("meta"):
        model = cifar_resnet(56)
        _, shapes = output_shapes(model, torch.zeros(1, 3, 32, 32), model.stage_names)
    assert shapes == {"layer1": (16, 32, 32), "layer2": (32, 16, 16), "layer3": (64, 8, 8)}
    assert [len(getattr(model, n)) for n in model.stage_names] == [9, 9, 9]  # n = 9, 6n + 2 = 56
    assert model.stem.conv.kernel_size == (3, 3) and not hasattr(model.stem, "maxpool")
    assert model.fc.in_features == 64 and model.fc.out_features == 10


# ------------------------------------------------------------------------------ shortcuts
def test_option_a_shortcut_has_no_parameters_and_pads_with_zeros() -> None:
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert count(shortcut) == 0 and not list(shortcut.buffers())
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])  # identity, taken with a stride of 2
    assert torch.equal(y[:, 16:], torch.zeros(2, 16, 4, 4))
    with pytest.raises(ValueError, match="cannot reduce"):
        ZeroPadShortcut(32, 16)


def test_plain_and_residual_differ_only_by_the_shortcuts(small: ResNet) -> None:
    torch.manual_seed(0)
    plain = ResNet(**SMALL_CIFAR, residual=False)
    assert plain.state_dict().keys() == small.state_dict().keys()  # option A: nothing else differs
    with torch.device("meta"):
        residual_b, plain_b = ResNet(depth=18), ResNet(depth=18, residual=False)
    extra = set(residual_b.state_dict()) - set(plain_b.state_dict())
    assert extra and all(".shortcut." in key for key in extra) and set(plain_b.state_dict()) <= set(residual_b.state_dict())

    plain.load_state_dict(small.state_dict())
    small.eval()
    plain.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h_plain = h_res = plain.stem(x)
        torch.testing.assert_close(h_plain, small.stem(x))
        for block_plain, block_res in zip(plain.blocks(), small.blocks(), strict=True):
            assert block_plain.shortcut is None and block_res.shortcut is not None
            torch.testing.assert_close(block_plain(h_plain), F.relu(block_res.residual_function(h_plain)))
            torch.testing.assert_close(block_res(h_res), F.relu(block_res.residual_function(h_res) + block_res.shortcut(h_res)))
            h_plain, h_res = block_plain(h_plain), block_res(h_res)
        assert not torch.allclose(plain(x), small(x))


def test_zero_init_last_bn_starts_every_block_as_its_shortcut() -> None:
    torch.manual_seed(0)
    model = ResNet(**SMALL_CIFAR, zero_init_last_bn=True).eval()
    assert all(torch.equal(b.last_bn.weight, torch.zeros_like(b.last_bn.weight)) for b in model.blocks())
    assert not any(torch.equal(b.last_bn.weight, torch.zeros_like(b.last_bn.weight)) for b in ResNet(**SMALL_CIFAR).blocks())
    x = torch.relu(torch.randn(2, 8, 32, 32))
    with torch.no_grad():
        for block in model.layer1:
            torch.testing.assert_close(block(x), F.relu(block.shortcut(x)))
    with pytest.raises(ValueError, match="zero_init_last_bn needs residual=True"):
        ResNet(**SMALL_CIFAR, residual=False, zero_init_last_bn=True)


# ------------------------------------------------------------------------------ small inputs
@pytest.mark.parametrize(
    "options",
    [SMALL_CIFAR, {"depth": 18, "stem": "cifar", "width": 1 / 16, "num_classes": 10}, {"depth": 50, "stem": "cifar", "width": 1 / 16, "num_classes": 10}],
    ids=["resnet20", "resnet18-cifar-stem", "resnet50-cifar-stem"],
)
def test_small_forward_backward_at_32x32(options: dict) -> None:
    torch.manual_seed(0)
    model = ResNet(**options).train()
    scores = model(torch.randn(2, 3, 32, 32))
    assert scores.shape == (2, 10)
    F.cross_entropy(scores, torch.tensor([3, 5])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("options", [SMALL_CIFAR, {"depth": 50, "stem": "cifar", "width": 1 / 16, "num_classes": 10}], ids=["basic", "bottleneck"])
def test_channels_last_gives_the_same_outputs(options: dict) -> None:
    torch.manual_seed(0)
    assert_channels_last_gives_the_same_outputs(ResNet(**options), torch.randn(2, 3, 32, 32), atol=1e-4)


def test_block_gradient_norms(small: ResNet) -> None:
    small.zero_grad(set_to_none=True)
    assert small.block_gradient_norms() == {}
    small.train()
    F.cross_entropy(small(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
    norms = small.block_gradient_norms()
    assert list(norms) == [f"block_{i}" for i in range(1, 10)]  # ResNet-20: 3 x 3 blocks
    block = small.layer2[0]
    manual = torch.sqrt(sum(p.grad.pow(2).sum() for p in block.parameters()))
    torch.testing.assert_close(norms["block_4"], manual)
    small.zero_grad(set_to_none=True)
    small.eval()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": 19}, "family='imagenet' has depths"),
        ({"depth": 18, "family": "cifar"}, "6n \\+ 2"),
        ({"family": "mnist"}, "family must be one of"),
        ({"shortcut": "D"}, "shortcut must be one of"),
        ({"stride_on": "2x2"}, "stride_on must be one of"),
        ({"stem": "big"}, "stem must be one of"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"width": -1}, "width must be positive"),
        ({"lr_milestones": (0.8, 0.5)}, "lr_milestones"),
        ({"lr_milestones": (1.5,)}, "lr_milestones"),
        ({"grad_norm_every_n_steps": -1}, "grad_norm_every_n_steps"),
        ({"in_channels": 0}, "in_channels"),
        ({"input_size": 0}, "input_size"),
    ],
)
def test_bad_options_raise_a_clear_error(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        ResNet(**options)


# ------------------------------------------------------------------------------ optimiser, a real fit
def test_paper_schedule_divides_by_ten_at_the_milestones() -> None:
    milestones = (0.5, 0.75)  # CIFAR: 32k and 48k of 64k iterations
    factors = [paper_lr_factor(i / 64_000, milestones) for i in (0, 31_999, 32_000, 47_999, 48_000, 63_999)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_tiny_fit_steps_the_schedule_and_logs_block_gradient_norms() -> None:
    torch.manual_seed(0)
    model = ResNet(**SMALL_CIFAR, grad_norm_every_n_steps=2)
    rates: list[float] = []

    class RecordRate(L.Callback):
        def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    class RecordingLogger(Logger):
        """Keeps what the loggers are handed, with the step they are told."""

        name, version = "recording", 0
        rows: list[tuple[int | None, dict]] = []

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            self.rows.append((step, dict(metrics)))

        def log_hyperparams(self, *args: object, **kwargs: object) -> None:
            pass

    data = DataLoader(TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))), batch_size=2)
    # log_every_n_steps=3: Lightning's own throttle must not shift or repeat the norms
    trainer = quiet_trainer(max_epochs=1, callbacks=[RecordRate()], logger=RecordingLogger(), log_every_n_steps=3)
    trainer.fit(model, data)
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])  # 4 steps: milestones at steps 2 and 3
    grad_rows = [(step, row) for step, row in RecordingLogger.rows if any(k.startswith("grad_norm/") for k in row)]
    assert [step for step, _ in grad_rows] == [0, 2]  # at the steps they were computed, once each
    assert set(grad_rows[0][1]) == {f"grad_norm/block_{i}" for i in range(1, 10)}
    assert grad_rows[1][1] == model.last_block_gradient_norms
    assert all(math.isfinite(v) and v > 0 for _, row in grad_rows for v in row.values())
    assert grad_rows[0][1] != grad_rows[1][1]
    assert trainer.optimizers[0].param_groups[0]["weight_decay"] == 1e-4


def test_a_schedule_over_the_run_needs_a_run_of_known_length() -> None:
    data = DataLoader(TensorDataset(torch.randn(2, 3, 8, 8), torch.tensor([0, 1])), batch_size=2)
    with pytest.raises(ValueError, match="lr_schedule='paper' needs a run of known length"):
        quiet_trainer(max_epochs=-1).fit(ResNet(**SMALL_CIFAR), data)


def test_block_gradient_norms_are_unscaled_under_16_bit_mixed_precision() -> None:
    """A GradScaler multiplies the loss by 65,536 before backward; the logged norms must be those of
    the true gradients, as in a float32 fit of the same weights on the same batch (first step)."""
    from lightning.pytorch.plugins import MixedPrecision

    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(images, torch.tensor([0, 1, 2, 3])), batch_size=4)
    norms = {}
    # float16 autocast with a loss scaler on the CPU: what precision="16-mixed" does on a GPU
    for name, plugins in {"32": None, "16-mixed": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]}.items():
        torch.manual_seed(0)
        model = ResNet(**SMALL_CIFAR, grad_norm_every_n_steps=1)
        quiet_trainer(max_steps=1, plugins=plugins).fit(model, data)
        norms[name] = model.last_block_gradient_norms
    assert set(norms["16-mixed"]) == {f"grad_norm/block_{i}" for i in range(1, 10)}
    for key, full in norms["32"].items():
        assert norms["16-mixed"][key] == pytest.approx(full, rel=0.05), key  # scaled, they would be 65,536x


def test_paper_sized_is_resnet34_at_table_1s_3_6_billion_flops() -> None:
    """Table 1's "FLOPs" are multiply-adds, rounded to 3.6 billion: ours is 3.66 billion, of which
    3.64 in the stem and the blocks' 3x3 convolutions and 0.02 in the three projection shortcuts
    and the fc layer."""
    with torch.device("meta"):
        model = ResNet.paper_sized()
    assert count(model) == TORCHVISION_PARAMETERS[34] and len(model.blocks()) == sum(TABLE_1_BLOCKS[34])
    flops = model.forward_flops()
    assert flops / 2 == pytest.approx(PAPER_FLOPS[34], rel=0.03)
    assert flops == 2 * multiply_adds(model, model.example_input_array)
