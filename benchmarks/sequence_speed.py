"""Speed of a training step: our recurrent and Transformer layers, fused and by hand, against PyTorch's.

    python benchmarks/sequence_speed.py                          # CPU, batch 64 x 100 steps x 2 inputs, hidden 64
    python benchmarks/sequence_speed.py --models lstm --rounds 30
    python benchmarks/sequence_speed.py --models transformer --hidden-size 128 --num-heads 8
    python benchmarks/sequence_speed.py --device cuda --batch-size 256 --time-steps 200 --hidden-size 256

For each model, three networks that compute the same function, one training step each:

* **torch**: PyTorch's layer (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) with ``batch_first=True``;
* **fused**: our layer with ``fused=True``, which runs that same PyTorch layer on its own
  Parameter objects (``RecurrentLayer.torch_equivalent``);
* **hand**: our layer with ``fused=False``, the cell written from the paper, run one time step at
  a time in Python.

Our Elman network is ``ElmanRNN(nonlinearity="tanh")``, the LSTM ``LSTM()`` (forget gate,
PyTorch's initialisation), the GRU ``GRU(reset_after=True)``, the variant that ``nn.GRU``
computes (the published ``reset_after=False`` has no fused twin). PyTorch's weights are copied
into ours and the three outputs compared first, so a ratio is never the cost of two different
networks.

A step is what a Trainer does for one batch of the adding problem's shape: the layer over a
``(batch, time, input)`` sequence, a linear head on the last step's hidden state, the mean squared
error, backward, an Adam step (or SGD with ``--optimizer sgd``), gradients set to None. After
warm-up steps the three sides alternate, each round in the next of the six orders of the three
(so that the drifts of a shared machine reach every side alike), and each round times ``--steps``
steps of each. Printed per side: the median milliseconds per step, and the median over rounds of
the paired ratio, the side's time over ``torch``'s time in the same round, with a bootstrap 90%
interval. The fused path must be at parity (at most 1.05); the hand cells' ratio is reported as it
is, the price of seeing every step in Python.

``--models transformer``: the Transformer's encoder layer (``transformer.EncoderLayer``, post-norm,
``d_model = --hidden-size``, ``--num-heads`` heads, ``d_ff = 4 d_model``, no dropout so that the
sides compute the same numbers) against ``nn.TransformerEncoderLayer(batch_first=True)`` configured
the same. **fused** is our layer with ``fused=True`` (attention by
``scaled_dot_product_attention``), held to parity; **hand** writes eq. 1 out (``softmax(Q K^T /
sqrt(d_k)) V``), reported as it is. All three sides read the inputs through one shared linear map
from ``--input-size`` to ``d_model``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _stats import bootstrap_interval  # noqa: E402  (benchmarks/, the script's own folder)
from _timing import timed, versions  # noqa: E402

REFERENCE = "torch"  # every ratio is a side's time over this side's time in the same round


@dataclass
class Side:
    """One contender: a network mapping ``(batch, time, input)`` to the layer's outputs."""

    name: str
    layer: nn.Module
    parity: bool  # held to the parity bar (the fused path), or reported as it is (the hand cell)


class Regressor(nn.Module):
    """A sequence layer and a linear head on its last step: the adding problem's network."""

    def __init__(self, layer: nn.Module, width: int) -> None:
        super().__init__()
        self.layer = layer
        self.head = nn.Linear(width, 1)

    def forward(self, inputs: Tensor) -> Tensor:
        outputs = self.layer(inputs)
        if isinstance(outputs, tuple):  # the recurrent layers return (outputs, final state)
            outputs = outputs[0]
        return self.head(outputs[:, -1]).squeeze(-1)


def recurrent_sides(name: str, options: argparse.Namespace) -> list[Side]:
    """torch, fused and hand sides of one recurrent layer, ours holding the torch layer's weights."""
    from ai_scratch.sequence_models import gru, lstm, rnn

    sizes = {"input_size": options.input_size, "hidden_size": options.hidden_size, "num_layers": options.num_layers}
    torch_class, ours_class, extra = {
        "rnn": (nn.RNN, rnn.ElmanRNN, {"nonlinearity": "tanh"}),
        "lstm": (nn.LSTM, lstm.LSTM, {}),
        "gru": (nn.GRU, gru.GRU, {"reset_after": True}),  # nn.GRU's variant: the reset gate after U
    }[name]
    torch_extra = {"nonlinearity": "tanh"} if name == "rnn" else {}
    reference = torch_class(**sizes, batch_first=True, **torch_extra)
    fused = ours_class(**sizes, fused=True, **extra)
    hand = ours_class(**sizes, fused=False, **extra)
    for ours in (fused, hand):
        # torch_equivalent() names our Parameter objects as PyTorch does (weight_ih_l0, ...)
        targets = dict(ours.torch_equivalent().named_parameters())
        with torch.no_grad():
            for parameter_name, value in reference.named_parameters():
                targets[parameter_name].copy_(value)
    return [Side(REFERENCE, reference, parity=False), Side("fused", fused, parity=True), Side("hand", hand, parity=False)]


def transformer_sides(name: str, options: argparse.Namespace) -> list[Side]:
    """torch, fused and hand sides of one Transformer encoder layer, ours holding the torch layer's
    weights, each behind the same input projection (``--input-size`` -> ``d_model``)."""
    from ai_scratch.sequence_models.transformer import EncoderLayer

    d_model, heads = options.hidden_size, options.num_heads
    if d_model % heads:
        raise SystemExit(f"--hidden-size ({d_model}) must be a multiple of --num-heads ({heads}) for the Transformer")
    reference = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True)
    projection = nn.Linear(options.input_size, d_model)
    sides = [Side(REFERENCE, nn.Sequential(projection, reference), parity=False)]
    for side_name, fused in (("fused", True), ("hand", False)):
        ours = EncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, fused=fused)
        w_q, w_k, w_v = reference.self_attn.in_proj_weight.detach().chunk(3)
        b_q, b_k, b_v = reference.self_attn.in_proj_bias.detach().chunk(3)
        copies = {
            "self_attention.w_q.weight": w_q, "self_attention.w_q.bias": b_q,
            "self_attention.w_k.weight": w_k, "self_attention.w_k.bias": b_k,
            "self_attention.w_v.weight": w_v, "self_attention.w_v.bias": b_v,
            "self_attention.w_o.weight": reference.self_attn.out_proj.weight, "self_attention.w_o.bias": reference.self_attn.out_proj.bias,
            "feed_forward.linear1.weight": reference.linear1.weight, "feed_forward.linear1.bias": reference.linear1.bias,
            "feed_forward.linear2.weight": reference.linear2.weight, "feed_forward.linear2.bias": reference.linear2.bias,
            "norm1.weight": reference.norm1.weight, "norm1.bias": reference.norm1.bias,
            "norm2.weight": reference.norm2.weight, "norm2.bias": reference.norm2.bias,
        }  # fmt: skip
        ours.load_state_dict({key: value.detach().clone() for key, value in copies.items()})
        own_projection = nn.Linear(options.input_size, d_model)
        own_projection.load_state_dict(projection.state_dict())
        sides.append(Side(side_name, nn.Sequential(own_projection, ours), parity=fused))
    return sides


#: model name -> builder of its sides, the reference first.
BUILDERS: dict[str, Callable[[str, argparse.Namespace], list[Side]]] = {
    "rnn": recurrent_sides,
    "lstm": recurrent_sides,
    "gru": recurrent_sides,
    "transformer": transformer_sides,
}


def make_step(model: nn.Module, inputs: Tensor, target: Tensor, optimizer_name: str) -> Callable[[], None]:
    if optimizer_name == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)

    def step() -> None:
        loss = nn.functional.mse_loss(model(inputs), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def orders(names: list[str], count: int) -> Iterator[tuple[str, ...]]:
    """The order of the sides in each round: every permutation in turn, so each side runs first,
    middle and last equally often."""
    permutations = list(itertools.permutations(names))
    for index in range(count):
        yield permutations[index % len(permutations)]


def largest_difference(models: dict[str, nn.Module], inputs: Tensor) -> float:
    """Largest difference of any side's predictions from the reference's, before any step."""
    with torch.no_grad():
        predictions = {name: model(inputs) for name, model in models.items()}
    return max((p - predictions[REFERENCE]).abs().max().item() for p in predictions.values())


def compare(name: str, options: argparse.Namespace, device: torch.device) -> dict[str, dict[str, float]]:
    """Per side: median ms per step, and the median paired ratio over the reference with its interval."""
    torch.manual_seed(0)
    sides = BUILDERS[name](name, options)
    head = nn.Linear(options.hidden_size, 1)
    models: dict[str, nn.Module] = {}
    for side in sides:
        model = Regressor(side.layer, options.hidden_size)
        model.head.load_state_dict(head.state_dict())  # the same head everywhere
        models[side.name] = model.to(device)
    inputs = torch.rand(options.batch_size, options.time_steps, options.input_size, device=device)
    target = torch.rand(options.batch_size, device=device)
    difference = largest_difference(models, inputs)
    if difference > 1e-4:
        raise RuntimeError(f"{name}: the sides disagree by {difference:.2e} after copying the weights")
    steps = {side: make_step(model, inputs, target, options.optimizer) for side, model in models.items()}
    for side in steps:
        timed(steps[side], options.warmup, device)
    seconds: dict[str, list[float]] = {side: [] for side in steps}
    for order in orders(list(steps), options.rounds):
        for side in order:
            seconds[side].append(timed(steps[side], options.steps, device))
    result: dict[str, dict[str, float]] = {}
    for side in sides:
        paired = [s / r for s, r in zip(seconds[side.name], seconds[REFERENCE], strict=True)]
        low, high = bootstrap_interval(paired)
        result[side.name] = {
            "ms": 1000 * statistics.median(seconds[side.name]),
            "ratio": statistics.median(paired),
            "low": low,
            "high": high,
            "parity": float(side.parity),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--time-steps", type=int, default=100, help="sequence length")
    parser.add_argument("--input-size", type=int, default=2, help="features per step (the adding problem has 2)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--num-heads", type=int, default=4, help="attention heads of the Transformer layer")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each side first")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side per round")
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds (the 6 orders of 3 sides in turn)")
    parser.add_argument("--parity", type=float, default=1.05, help="the ratio counted as parity")
    options = parser.parse_args(argv)
    for flag in ("batch_size", "time_steps", "input_size", "hidden_size", "num_layers", "num_heads", "steps", "rounds"):
        if getattr(options, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if options.warmup < 0:
        parser.error("--warmup must be at least 0")
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")

    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {options.batch_size} x {options.time_steps} steps"
        f" x {options.input_size} inputs, hidden {options.hidden_size}, {options.num_layers} layer(s),"
        f" {options.optimizer}, {options.rounds} rounds x {options.steps} steps"
    )
    print(f"{'model':<11} {'side':<6} {'ms/step':>9} {'/ torch':>8} {'90% interval':>17}  parity")
    worst = 0.0
    for name in options.models:
        rows = compare(name, options, device)
        for side, row in rows.items():
            if side == REFERENCE:
                print(f"{name:<11} {side:<6} {row['ms']:>9.2f}", flush=True)
                continue
            verdict = ("yes" if row["ratio"] <= options.parity else "NO") if row["parity"] else "-"
            if row["parity"]:
                worst = max(worst, row["ratio"])
            interval = f"[{row['low']:.3f}, {row['high']:.3f}]"
            print(f"{name:<11} {side:<6} {row['ms']:>9.2f} {row['ratio']:>8.3f} {interval:>17}  {verdict}", flush=True)
    print(f"worst fused ratio {worst:.3f} (parity: at most {options.parity})")
    print(versions())
    return 0 if worst <= options.parity else 1


if __name__ == "__main__":
    sys.exit(main())
