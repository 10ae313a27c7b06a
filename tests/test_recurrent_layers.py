"""The hand-written recurrent layers (Elman RNN, LSTM, GRU) against PyTorch's fused ones, and what
the hand path shows: truncated BPTT, the forget gate, the 1997 carousel, vanishing gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ai_scratch.sequence_models.gru import GRU, GRUCell
from ai_scratch.sequence_models.lstm import LSTM, LSTMCell
from ai_scratch.sequence_models.rnn import ElmanCell, ElmanRNN

BATCH, TIME, INPUT, HIDDEN = 3, 6, 4, 5

#: name -> (hand layer, the nn module it must match, keyword arguments that make a fused path exist)
LAYERS = {
    "rnn": (ElmanRNN, nn.RNN, {}),
    "lstm": (LSTM, nn.LSTM, {}),
    "gru": (GRU, nn.GRU, {"reset_after": True}),
}


def as_tuple(state: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def run_and_differentiate(layer: nn.Module, inputs: torch.Tensor, initial: tuple[torch.Tensor, ...]):
    """Outputs, final state, and the gradients of a loss that reads both w.r.t. inputs, initial state, parameters."""
    inputs = inputs.clone().requires_grad_(True)
    initial = tuple(s.clone().requires_grad_(True) for s in initial)
    outputs, final = layer(inputs, initial[0] if len(initial) == 1 else initial)
    final = as_tuple(final)
    # a loss whose weights differ per element, so that a permuted gate or direction would show
    weights = torch.linspace(-1, 1, outputs.numel(), dtype=outputs.dtype).reshape(outputs.shape)
    loss = (weights * outputs).sum() + sum((s**2).sum() for s in final)
    loss.backward()
    gradients = [inputs.grad, *(s.grad for s in initial)] + [p.grad.clone() for p in layer.parameters()]
    for parameter in layer.parameters():
        parameter.grad = None
    return outputs.detach(), [s.detach() for s in final], gradients


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_hand_and_fused_paths_agree_on_values_and_every_gradient(name, num_layers, bidirectional):
    layer_class, _, options = LAYERS[name]
    torch.manual_seed(0)
    layer = layer_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional, **options).double()
    rows = num_layers * (2 if bidirectional else 1)
    inputs = torch.randn(BATCH, TIME, INPUT, dtype=torch.double)
    state_count = 2 if name == "lstm" else 1
    initial = tuple(torch.randn(rows, BATCH, HIDDEN, dtype=torch.double) for _ in range(state_count))

    by_hand = run_and_differentiate(layer, inputs, initial)
    layer.fused = True
    fused = run_and_differentiate(layer, inputs, initial)

    assert by_hand[0].shape == (BATCH, TIME, rows // num_layers * HIDDEN)
    assert_close(by_hand[0], fused[0])
    assert_close(by_hand[1], fused[1])
    assert len(by_hand[2]) == 1 + state_count + len(list(layer.parameters()))
    for hand_gradient, fused_gradient in zip(by_hand[2], fused[2], strict=True):
        assert hand_gradient.abs().sum() > 0  # every gradient is reached, so the comparison means something
        assert_close(hand_gradient, fused_gradient)


@pytest.mark.parametrize("name", LAYERS)
def test_truncated_bptt_agrees_between_paths(name):
    layer_class, _, options = LAYERS[name]
    torch.manual_seed(1)
    layer = layer_class(INPUT, HIDDEN, num_layers=2, bptt_truncation=4, **options).double()
    inputs = torch.randn(BATCH, 10, INPUT, dtype=torch.double)
    initial = tuple(torch.zeros(2, BATCH, HIDDEN, dtype=torch.double) for _ in range(2 if name == "lstm" else 1))
    by_hand = run_and_differentiate(layer, inputs, initial)
    layer.fused = True
    fused = run_and_differentiate(layer, inputs, initial)
    for a, b in zip([by_hand[0], *by_hand[1], *by_hand[2]], [fused[0], *fused[1], *fused[2]], strict=True):
        assert_close(a, b)


@pytest.mark.parametrize("fused", [False, True])
def test_truncated_bptt_cuts_the_gradient_back_to_the_first_input(fused):
    def gradient_at_first_input(bptt_truncation):
        torch.manual_seed(2)
        layer = ElmanRNN(INPUT, HIDDEN, bptt_truncation=bptt_truncation, fused=fused).double()
        inputs = torch.randn(BATCH, 8, INPUT, dtype=torch.double, requires_grad=True)
        outputs, _ = layer(inputs)
        outputs[:, -1].sum().backward()  # the loss at the last step
        return inputs.grad[:, 0]

    assert gradient_at_first_input(None).abs().max() > 1e-6
    assert torch.equal(gradient_at_first_input(3), torch.zeros(BATCH, INPUT, dtype=torch.double))


def test_elman_network_trained_as_in_1990_sees_one_step_back():
    """``bptt_truncation=1``: the context units as a fixed input, Elman's own training."""
    torch.manual_seed(3)
    layer = ElmanRNN(INPUT, HIDDEN, bptt_truncation=1).double()
    inputs = torch.randn(BATCH, 5, INPUT, dtype=torch.double, requires_grad=True)
    outputs, _ = layer(inputs)
    outputs[:, -1].sum().backward()
    reached = inputs.grad.abs().sum(dim=(0, 2))
    assert reached[-1] > 0
    assert torch.equal(reached[:-1], torch.zeros(4, dtype=torch.double))


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
def test_forget_bias_sets_the_forget_gate_bias(forget_bias):
    layer = LSTM(INPUT, HIDDEN, num_layers=2, forget_bias=forget_bias)
    for cell in layer.cells:
        forget_rows = slice(HIDDEN, 2 * HIDDEN)  # (i, f, g, o)
        total = cell.bias_ih[forget_rows] + cell.bias_hh[forget_rows]  # the equations' b_f
        assert_close(total, torch.full((HIDDEN,), forget_bias))
        # the other gates keep PyTorch's uniform initialisation
        assert cell.bias_ih[:HIDDEN].abs().max() <= HIDDEN**-0.5
        assert cell.bias_ih[:HIDDEN].std() > 0
    # and the forget gate starts near sigmoid(forget_bias) for a small input
    layer.record_gates = True
    layer(torch.zeros(1, 1, INPUT))
    expected = torch.sigmoid(torch.tensor(forget_bias)).item()
    assert_close(layer.recorded[0]["forget"], torch.full((1, 1, HIDDEN), expected))


def test_lstm_without_forget_gate_sums_into_its_cell():
    torch.manual_seed(4)
    layer = LSTM(INPUT, HIDDEN, forget_gate=False, record_gates=True).double()
    layer(torch.randn(BATCH, TIME, INPUT, dtype=torch.double))
    record = layer.recorded[0]
    assert "forget" not in record
    c = torch.cat([torch.zeros(BATCH, 1, HIDDEN, dtype=torch.double), record["cell"]], dim=1)  # c_0 = 0
    assert_close(c[:, 1:] - c[:, :-1], record["input"] * record["cell_candidate"])  # c_t - c_{t-1} = i_t * g_t
    assert_close(record["hidden"], record["output"] * torch.tanh(record["cell"]))
    # the 1997 cell has no forget-gate weights: three blocks (i, g, o)
    assert layer.cells[0].weight_ih.shape == (3 * HIDDEN, INPUT)


def test_the_1997_carousel_carries_the_error_back_unchanged():
    """With i_t = 0 (input gate shut) ``c_T = c_0`` and ``d c_T / d c_0`` is the identity."""
    cell = LSTMCell(INPUT, HIDDEN, forget_gate=False).double()
    with torch.no_grad():
        cell.bias_ih[:HIDDEN] = -1e9  # shut the input gate
    c_0 = torch.randn(BATCH, HIDDEN, dtype=torch.double, requires_grad=True)
    state = (torch.zeros(BATCH, HIDDEN, dtype=torch.double), c_0)
    for _ in range(50):
        state = cell(torch.randn(BATCH, INPUT, dtype=torch.double), state)
    state[1].sum().backward()
    assert_close(state[1], c_0.detach())
    assert_close(c_0.grad, torch.ones(BATCH, HIDDEN, dtype=torch.double))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(
    "hand, reference",
    [
        (lambda **kw: ElmanRNN(7, 11, **kw), lambda **kw: nn.RNN(7, 11, **kw)),
        (lambda **kw: LSTM(7, 11, **kw), lambda **kw: nn.LSTM(7, 11, **kw)),
        (lambda **kw: GRU(7, 11, **kw), lambda **kw: nn.GRU(7, 11, **kw)),
        (lambda **kw: GRU(7, 11, reset_after=True, **kw), lambda **kw: nn.GRU(7, 11, **kw)),
    ],
)
def test_parameter_counts_equal_pytorch(hand, reference, bidirectional):
    def count(module):
        return sum(p.numel() for p in module.parameters())

    for num_layers in (1, 3):
        assert count(hand(num_layers=num_layers, bidirectional=bidirectional)) == count(
            reference(num_layers=num_layers, bidirectional=bidirectional)
        )


def test_lstm_without_forget_gate_has_three_quarters_of_the_parameters():
    assert sum(p.numel() for p in LSTM(7, 11, forget_gate=False).parameters()) * 4 == sum(
        p.numel() for p in nn.LSTM(7, 11).parameters()
    ) * 3


def test_gru_variants_differ_only_through_the_reset_gate():
    torch.manual_seed(5)
    paper, cudnn = GRUCell(INPUT, HIDDEN).double(), GRUCell(INPUT, HIDDEN, reset_after=True).double()
    cudnn.load_state_dict(paper.state_dict())
    x, h = torch.randn(BATCH, INPUT, dtype=torch.double), torch.randn(BATCH, HIDDEN, dtype=torch.double)
    assert (paper(x, h) - cudnn(x, h)).abs().max() > 1e-4  # U (r * h) is not r * (U h + b_hn)
    with torch.no_grad():  # a reset gate held open (r = 1) makes them one
        for cell in (paper, cudnn):
            cell.bias_ih[:HIDDEN] = 1e9
    assert_close(paper(x, h), cudnn(x, h))


def test_cells_match_pytorchs_single_step_cells():
    torch.manual_seed(6)
    x = torch.randn(BATCH, INPUT, dtype=torch.double)
    h, c = torch.randn(BATCH, HIDDEN, dtype=torch.double), torch.randn(BATCH, HIDDEN, dtype=torch.double)
    for hand, reference, state in [
        (ElmanCell(INPUT, HIDDEN), nn.RNNCell(INPUT, HIDDEN), h),
        (GRUCell(INPUT, HIDDEN, reset_after=True), nn.GRUCell(INPUT, HIDDEN), h),
        (LSTMCell(INPUT, HIDDEN), nn.LSTMCell(INPUT, HIDDEN), (h, c)),
    ]:
        hand.double()
        reference.double().load_state_dict(hand.state_dict())  # same names, same layout
        assert_close(hand(x, state), reference(x, state))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ElmanRNN(INPUT, 0), "hidden_size must be a positive integer"),
        (lambda: LSTM(0, HIDDEN), "input_size must be a positive integer"),
        (lambda: GRU(INPUT, HIDDEN, num_layers=0), "num_layers must be a positive integer"),
        (lambda: ElmanRNN(INPUT, HIDDEN, bptt_truncation=0), "bptt_truncation must be a positive integer"),
        (lambda: ElmanRNN(INPUT, HIDDEN, nonlinearity="sigmoid"), "nonlinearity must be one of"),
        (lambda: LSTM(INPUT, HIDDEN, forget_gate=False, fused=True), "fused=True needs forget_gate=True"),
        (lambda: LSTM(INPUT, HIDDEN, forget_gate=False, forget_bias=1.0), "forget_bias needs forget_gate=True"),
        (lambda: GRU(INPUT, HIDDEN, fused=True), "fused=True needs reset_after=True"),
        (lambda: LSTM(INPUT, HIDDEN, bidirectional=True, bptt_truncation=2), "cannot be combined"),
        (lambda: ElmanRNN(INPUT, HIDDEN)(torch.zeros(2, 3, INPUT + 1)), "inputs must be (batch, time, 4)"),
        (lambda: ElmanRNN(INPUT, HIDDEN, fused=True, record_gates=True)(torch.zeros(2, 3, INPUT)), "hand path"),
        (lambda: ElmanRNN(INPUT, HIDDEN).state_gradient_norms(), "retain_hidden_grads=True"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_lstm_1997_cell_is_refused_the_fused_path_even_when_switched_on_later():
    layer = LSTM(INPUT, HIDDEN, forget_gate=False)
    layer.fused = True
    with pytest.raises(ValueError, match="fused=True needs forget_gate=True"):
        layer(torch.zeros(1, 2, INPUT))


def test_gradients_vanish_in_the_elman_network_and_survive_in_the_lstm():
    """``||d loss / d h_t||`` for a loss at the last step, 40 steps, PyTorch's initialisation.

    The Elman network multiplies the error by ``diag(1 - h^2) U`` at every step back; with small
    weights it shrinks by orders of magnitude. The LSTM with forget bias 1 loses far less on the
    way (its carousel scales by f ~ 0.73 a step), and the 1997 cell (f = 1) keeps it of the same order.
    """
    torch.manual_seed(0)
    time = 40
    inputs = torch.randn(8, time, INPUT, dtype=torch.double)

    def first_over_last(layer):
        layer.double()
        outputs, _ = layer(inputs)
        outputs[:, -1].sum().backward()
        norms = layer.state_gradient_norms()[0]
        assert norms.shape == (time,)
        assert (norms > 0).all()
        return (norms[0] / norms[-1]).item()

    elman = first_over_last(ElmanRNN(INPUT, 16, retain_hidden_grads=True))
    lstm = first_over_last(LSTM(INPUT, 16, forget_bias=1.0, retain_hidden_grads=True))
    lstm_1997 = first_over_last(LSTM(INPUT, 16, forget_gate=False, retain_hidden_grads=True))
    assert elman < 1e-6
    assert lstm > 100 * elman
    assert lstm_1997 > 1e-2


def test_lstm_memory_cell_gradients_can_be_measured_too():
    torch.manual_seed(0)
    layer = LSTM(INPUT, HIDDEN, num_layers=2, forget_bias=1.0, retain_hidden_grads=True).double()
    outputs, (h_n, c_n) = layer(torch.randn(2, TIME, INPUT, dtype=torch.double))
    outputs[:, -1].sum().backward()
    cell_norms = layer.state_gradient_norms(state_index=1)
    assert cell_norms.shape == (2, TIME)  # one row per layer
    assert (cell_norms > 0).all()
    # the loss reads the top layer only through h_T: the memory cell's last gradient is o_T * (1 - tanh^2 c_T)
    assert cell_norms[1, -1] < layer.state_gradient_norms()[1, -1]


def test_record_gates_keeps_every_gate_of_every_cell():
    torch.manual_seed(7)
    layer = GRU(INPUT, HIDDEN, num_layers=2, bidirectional=True, record_gates=True)
    outputs, _ = layer(torch.randn(BATCH, TIME, INPUT))
    assert len(layer.recorded) == 4  # (layer, direction)
    for record in layer.recorded:
        assert set(record) == {"reset", "update", "candidate", "hidden"}
        for value in record.values():
            assert value.shape == (BATCH, TIME, HIDDEN)
            assert not value.requires_grad
    assert_close(layer.recorded[2]["hidden"], outputs[..., :HIDDEN])  # top layer, forward direction
    assert_close(layer.recorded[3]["hidden"], outputs[..., HIDDEN:])  # top layer, backward direction
    gates = layer.recorded[0]
    assert ((gates["reset"] > 0) & (gates["reset"] < 1)).all()


def test_torch_equivalent_shares_the_parameters():
    layer = LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True)
    module = layer.torch_equivalent()
    assert module.weight_hh_l1_reverse is layer.cells[3].weight_hh
    assert {id(p) for p in module.parameters()} == {id(p) for p in layer.parameters()}


def test_the_fused_module_is_built_once_and_anew_when_a_parameter_is_replaced():
    layer = LSTM(3, 5, fused=True)
    inputs = torch.randn(2, 4, 3)
    first, _ = layer(inputs)
    module = layer.fused_module()
    assert layer.fused_module() is module  # kept between calls
    assert not any(isinstance(child, nn.RNNBase) for child in layer.modules())  # not a submodule: no parameter twice
    layer.load_state_dict(LSTM(3, 5).state_dict())  # copies into the same Parameter objects
    assert layer.fused_module() is module
    assert_close(layer(inputs)[0], layer.torch_equivalent()(inputs)[0])  # the loaded weights, not the first ones
    assert not torch.equal(layer(inputs)[0], first)
    layer.cells[0].weight_hh = nn.Parameter(torch.zeros_like(layer.cells[0].weight_hh))
    assert layer.fused_module() is not module
    layer(inputs)[0].sum().backward()
    assert layer.cells[0].weight_hh.grad is not None  # gradients reach the new parameter
