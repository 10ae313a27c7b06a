"""LeNet-5 against the numbers of LeCun, Bottou, Bengio and Haffner (1998), Section II.B."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cnn_revolution.lenet5 import (
    C3_CONNECTIONS,
    EuclideanRBF,
    LeNet5,
    ScaledTanh,
    TrainableSubsampling,
    digit_bitmaps,
    map_criterion,
    paper_lr_factor,
)
from cnn_tools import quiet_trainer

LAYERS = ("c1", "s2", "c3", "s4", "c5", "f6", "output")

#: Section II.B: the trainable parameters of each layer.
PAPER_PARAMETERS = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0}

#: Table I transcribed a second time, as printed: rows are S2 maps, columns C3 maps 0-15.
TABLE_I = (
    "X   XXX  XXXX XX",
    "XX   XXX  XXXX X",
    "XXX   XXX  X XXX",
    " XXX  XXXX  X XX",
    "  XXX  XXXX XX X",
    "   XXX  XXXX XXX",
)


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def model() -> LeNet5:
    torch.manual_seed(0)
    return LeNet5()


# ------------------------------------------------------------------------------ parameter counts
def test_parameters_per_layer_are_the_papers(model: LeNet5) -> None:
    assert {name: trainable(getattr(model, name)) for name in LAYERS} == PAPER_PARAMETERS
    assert trainable(model) == 60_000


def test_dense_c3_has_2416_parameters() -> None:
    model = LeNet5(c3_table="full")
    assert trainable(model.c3) == 2_416
    assert trainable(model) == 60_000 - 1_516 + 2_416


def test_max_pooling_removes_the_subsampling_parameters() -> None:
    model = LeNet5(subsampling="max", activation="relu")
    assert trainable(model.s2) == trainable(model.s4) == 0
    assert trainable(model) == 60_000 - 12 - 32


def test_model_info_counts_60000_trainable_parameters(model: LeNet5) -> None:
    info = model.model_info()
    assert info["trainable_parameter_count"] == 60_000
    assert info["parameter_count"] == 60_000  # the RBF bitmaps are a buffer, not parameters
    assert info["input_size"] == [1, 32, 32] and info["output_size"] == [10]


def test_hyperparameters_are_saved(model: LeNet5) -> None:
    assert model.hparams["c3_table"] == "paper" and model.hparams["output_layer"] == "rbf"
    assert model.hparams["rbf_rubbish_j"] > 0


# ------------------------------------------------------------------------------ structure, shapes
def test_layers_are_named_in_order_and_c1_is_the_first_convolution(model: LeNet5) -> None:
    names = [name for name, _ in model.named_children() if name in LAYERS]
    assert names == list(LAYERS)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv is model.c1.conv and first_conv.out_channels == 6


@pytest.mark.parametrize(
    "options",
    [{}, {"c3_table": "full"}, {"subsampling": "max", "activation": "relu", "output_layer": "linear"}],
)
def test_shapes_through_every_layer(options: dict) -> None:
    model = LeNet5(**options)
    x = torch.randn(3, 1, 32, 32)
    expected = {"c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5), "c5": (120, 1, 1)}
    for name, shape in expected.items():
        x = getattr(model, name)(x)
        assert x.shape == (3, *shape), name
    x = model.f6(torch.flatten(x, 1))
    assert x.shape == (3, 84)
    assert model.output(x).shape == (3, 10)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)
    assert model(model.example_input_array).shape == (1, 10)


def test_larger_inputs_give_larger_c5_maps() -> None:
    model = LeNet5(input_size=36)
    assert model.c5(model.s4(model.c3(model.s2(model.c1(torch.randn(2, 1, 36, 36)))))).shape == (2, 120, 2, 2)
    assert model(torch.randn(2, 1, 36, 36)).shape == (2, 10)


# ------------------------------------------------------------------------------ C3, Table I
def test_c3_connections_are_table_one() -> None:
    from_table = tuple(tuple(row for row in range(6) if TABLE_I[row][column] == "X") for column in range(16))
    assert tuple(tuple(sorted(inputs)) for inputs in C3_CONNECTIONS) == from_table
    assert [len(inputs) for inputs in C3_CONNECTIONS] == [3] * 6 + [4] * 9 + [6]


def test_c3_kernel_grid_is_zero_exactly_where_table_one_has_no_connection(model: LeNet5) -> None:
    connected = model.c3.conv.dense_weight().abs().sum(dim=(2, 3)) > 0  # (16 C3 maps, 6 S2 maps)
    expected = torch.tensor([[TABLE_I[row][column] == "X" for row in range(6)] for column in range(16)])
    assert torch.equal(connected, expected)


def test_perturbing_an_unconnected_s2_map_leaves_c3_map_0_unchanged(model: LeNet5) -> None:
    s2 = torch.randn(2, 6, 14, 14)
    perturbed = s2.clone()
    perturbed[:, 3] += torch.randn(2, 14, 14)  # C3 map 0 reads S2 maps 0, 1, 2 only
    with torch.no_grad():
        before, after = model.c3(s2), model.c3(perturbed)
    assert torch.equal(before[:, 0], after[:, 0])
    assert not torch.allclose(before[:, 1], after[:, 1])  # map 1 reads S2 maps 1, 2, 3


def test_each_c3_map_has_gradient_only_towards_its_table_inputs(model: LeNet5) -> None:
    s2 = torch.randn(2, 6, 14, 14, requires_grad=True)
    c3 = model.c3(s2)
    for c3_map, inputs in enumerate(C3_CONNECTIONS):
        (gradient,) = torch.autograd.grad(c3[:, c3_map].sum(), s2, retain_graph=True)
        influenced = {s2_map for s2_map in range(6) if gradient[:, s2_map].abs().sum() > 0}
        assert influenced == set(inputs), c3_map


# ------------------------------------------------------------------------------ squashing, S layers, init
def test_scaled_tanh_maps_plus_minus_one_to_itself() -> None:
    f = ScaledTanh()
    assert f(torch.tensor([1.0, -1.0, 0.0])).tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-4)


def test_trainable_subsampling_is_coefficient_times_sum_plus_bias() -> None:
    layer = TrainableSubsampling(maps=2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -2.0]))
        layer.bias.copy_(torch.tensor([1.0, 0.25]))
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    expected_map_0 = 0.5 * (x[0, 0, 0, 0] + x[0, 0, 0, 1] + x[0, 0, 1, 0] + x[0, 0, 1, 1]) + 1.0
    expected_map_1 = -2.0 * (x[0, 1, 2, 2] + x[0, 1, 2, 3] + x[0, 1, 3, 2] + x[0, 1, 3, 3]) + 0.25
    out = layer(x)
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 0, 0, 0].item() == pytest.approx(expected_map_0.item())
    assert out[0, 1, 1, 1].item() == pytest.approx(expected_map_1.item())


def test_initialisation_is_uniform_within_2_4_over_fan_in(model: LeNet5) -> None:
    fan_ins = {"c1.conv": 25, "s2.subsample": 4, "s4.subsample": 4, "c5.conv": 400, "f6.linear": 120}
    for name, fan_in in fan_ins.items():
        module = model.get_submodule(name)
        for parameter in (module.weight, module.bias):
            largest = parameter.detach().abs().max().item()
            assert largest <= 2.4 / fan_in, name
        if module.weight.numel() >= 100:  # enough draws to come close to the bound
            assert module.weight.detach().abs().max().item() > 0.9 * 2.4 / fan_in, name
    c3 = model.c3.conv
    for kernel, c3_map in zip(c3.weight.detach(), c3.kernel_map.tolist()):
        assert kernel.abs().max().item() <= 2.4 / (25 * len(C3_CONNECTIONS[c3_map]))


# ------------------------------------------------------------------------------ RBF output, MAP loss
def test_rbf_bitmaps_are_ten_distinct_plus_minus_one_vectors(model: LeNet5) -> None:
    bitmaps = digit_bitmaps()
    assert bitmaps.shape == (10, 84)
    assert set(bitmaps.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(row.tolist()) for row in bitmaps}) == 10
    assert torch.equal(model.output.prototypes, bitmaps)
    assert "output.prototypes" in model.state_dict()
    assert all(p is not model.output.prototypes for p in model.parameters())


def test_rbf_penalty_is_squared_distance_and_the_matching_bitmap_wins() -> None:
    rbf = EuclideanRBF(digit_bitmaps())
    x = torch.randn(4, 84)
    expected = torch.stack([((x - w) ** 2).sum(dim=1) for w in digit_bitmaps()], dim=1)
    assert torch.allclose(rbf(x), expected)
    penalties = rbf(digit_bitmaps())  # an F6 state equal to bitmap i has penalty 0 for class i
    assert torch.equal(penalties.diagonal(), torch.zeros(10))
    assert torch.equal((-penalties).argmax(dim=1), torch.arange(10))


def test_map_loss_is_equation_9() -> None:
    generator = torch.Generator().manual_seed(1)
    penalties = 20 * torch.rand(7, 10, generator=generator, dtype=torch.float64)  # y_i(Z_p)
    target = torch.randint(0, 10, (7,), generator=generator)
    j = 3.5
    direct = sum(
        penalties[p, target[p]].item() + math.log(math.exp(-j) + sum(math.exp(-y) for y in penalties[p].tolist()))
        for p in range(7)
    ) / 7
    assert map_criterion(-penalties, target, j).item() == pytest.approx(direct, rel=1e-12)
    model = LeNet5(rbf_rubbish_j=j)
    assert model.criterion(-penalties, target).item() == pytest.approx(direct, rel=1e-12)


def test_map_loss_is_stable_for_large_penalties() -> None:
    penalties = torch.full((2, 10), 500.0)
    loss = map_criterion(-penalties, torch.tensor([0, 1]), rubbish_j=10.0)
    assert loss.item() == pytest.approx(500.0 - 10.0, abs=1e-3)  # every e^{-y_i} is negligible next to e^{-j}


# ------------------------------------------------------------------------------ options
def test_linear_output_layer_with_five_classes() -> None:
    model = LeNet5(num_classes=5, output_layer="linear")
    scores = model(torch.randn(4, 1, 32, 32))
    assert scores.shape == (4, 5)
    target = torch.tensor([0, 1, 2, 4])
    assert model.criterion(scores, target).item() == pytest.approx(
        nn.functional.cross_entropy(scores, target).item()
    )
    assert trainable(model) == 60_000 + 84 * 5 + 5
    assert model.model_info()["output_size"] == [5]


def test_rbf_output_needs_ten_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        LeNet5(num_classes=5)


@pytest.mark.parametrize(
    "options",
    [{"c3_table": "sparse"}, {"activation": "sigmoid"}, {"rbf_rubbish_j": 0.0}, {"input_size": 28}],
)
def test_bad_options_raise_value_error(options: dict) -> None:
    with pytest.raises(ValueError):
        LeNet5(**options)


def test_optimizer_is_sgd_with_the_given_settings() -> None:
    model = LeNet5(learning_rate=0.05, momentum=0.5, weight_decay=1e-4, lr_schedule="constant")
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.5, 1e-4)
    assert sum(p.numel() for p in group["params"]) == 60_000


# ------------------------------------------------------------------------------ a real, tiny fit
def test_smoke_fit_on_random_images() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(48, 1, 32, 32), torch.randint(0, 10, (48,)))
    model = LeNet5()
    before = model.c1.conv.weight.detach().clone()
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3)
    trainer.fit(model, DataLoader(data, batch_size=16))
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())
    assert 0.0 <= trainer.callback_metrics["train_accuracy"].item() <= 1.0
    assert not torch.equal(model.c1.conv.weight.detach(), before)


def test_paper_learning_rate_schedule() -> None:
    """Section III.C: 0.0005, 0.0002, 0.0001, 0.00005, then 0.00001, per pass."""
    rates = [0.0005 * paper_lr_factor(epoch) for epoch in range(15)]
    expected = [0.0005] * 2 + [0.0002] * 3 + [0.0001] * 3 + [0.00005] * 4 + [0.00001] * 3
    assert rates == pytest.approx(expected)
    configured = LeNet5(learning_rate=0.0005).configure_optimizers()
    assert isinstance(configured["optimizer"], torch.optim.SGD)
    schedule = configured["lr_scheduler"]
    assert schedule["interval"] == "epoch" and schedule["scheduler"].lr_lambdas == [paper_lr_factor]


def test_cosine_schedule_anneals_the_rate_to_zero_over_max_epochs() -> None:
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))), batch_size=8)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(LeNet5(lr_schedule="cosine"), data)
    (schedule,) = trainer.lr_scheduler_configs
    assert schedule.interval == "epoch" and schedule.scheduler.T_max == 2
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # after 2 of 2 epochs


# ------------------------------------------------------------------------------ paper size, FLOPs
#: Section II.B: the connections of each layer, 340,908 in all; each layer's biases are one
#: connection per unit (C1's 28 x 28 x 6 units ... F6's 84).
PAPER_CONNECTIONS = {"c1": 122_304, "s2": 5_880, "c3": 151_600, "s4": 2_000, "c5": 48_120, "f6": 10_164, "output": 840}
BIAS_CONNECTIONS = {"c1": 28 * 28 * 6, "c3": 10 * 10 * 16, "c5": 120, "f6": 84}


def test_paper_sized_has_the_papers_parameters_and_counts_its_weighted_connections() -> None:
    with torch.device("meta"):
        model = LeNet5.paper_sized()
    assert {name: trainable(getattr(model, name)) for name in LAYERS} == PAPER_PARAMETERS
    assert tuple(model.example_input_array.shape) == (1, 1, 32, 32)
    assert sum(PAPER_CONNECTIONS.values()) == 340_908
    # the counter counts the multiply-adds of the convolutions and F6: the connections with a weight
    weighted = {name: PAPER_CONNECTIONS[name] - BIAS_CONNECTIONS[name] for name in BIAS_CONNECTIONS}
    assert weighted == {"c1": 117_600, "c3": 150_000, "c5": 48_000, "f6": 10_080}
    # C3 runs as a dense 16 x 6 grid of 5 x 5 kernels over 10 x 10 positions: Table I's 36 missing
    # connections are zero kernels, multiplied all the same
    zero_kernels = (16 * 6 - len(model.c3.conv.grid_cell)) * 5 * 5 * 10 * 10
    assert zero_kernels == 36 * 2_500
    assert model.forward_flops() == 2 * (sum(weighted.values()) + zero_kernels) == 831_360
