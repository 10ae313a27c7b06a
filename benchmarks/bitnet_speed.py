"""What BitNet b1.58's BitLinear costs when its quantisation is simulated, against nn.Linear of the same shape.

    python benchmarks/bitnet_speed.py                               # CPU, a 1024 x 1024 layer, 512 tokens
    python benchmarks/bitnet_speed.py --features 4096 --tokens 2048 --device cuda --rounds 20

No speed claim: this measures the *simulation*. ``BitLinear.forward`` normalises the input, quantises
it per token to 8-bit integers, quantises the weights to {-1, 0, +1} (absmean), and then runs an
ordinary floating-point matrix product on the dequantised values, so that autograd can train it.
That is more work than ``nn.Linear``, never less: the paper's gains in latency, memory traffic and
energy need kernels that add and subtract ternary weights (or integer units), which PyTorch does
not have. The sides timed, on the same input:

* **nn.Linear**: ``F.linear(x, W)``, no bias (the reference of every ratio);
* **BitLinear forward**: the quantised layer, inference (no gradient);
* **BitLinear full precision**: ``BitLinear(quantize=False)``, the same layer's normalisation and
  product without the quantisers (what the simulation adds over the norm);
* **train step**: forward and backward through each (the STE), on the same batch.

After a warm-up call of each, the sides alternate in rounds (each round in the reverse order of the
last). Printed per side: the median time and the median over rounds of the paired ratio over
nn.Linear's time in the same round, with a bootstrap 90% interval.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import paired_rounds, versions  # noqa: E402

REFERENCE = "nn.Linear forward"


def sides(features: int, tokens: int, device: torch.device) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one timed call, the tokens it processes)."""
    from ai_scratch.modern_paradigm.bitnet import BitLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(features, features, bias=False).to(device)
    ternary = BitLinear(features, features).to(device)
    full = BitLinear(features, features, quantize=False).to(device)
    ternary.weight.data.copy_(linear.weight.data)
    full.weight.data.copy_(linear.weight.data)
    x = torch.randn(tokens, features, device=device)
    x_grad = x.clone().requires_grad_(True)

    def forward(module: torch.nn.Module) -> Callable[[], None]:
        def call() -> None:
            with torch.no_grad():
                module(x)

        return call

    def train_step(module: torch.nn.Module) -> Callable[[], None]:
        def call() -> None:
            module(x_grad).square().mean().backward()
            module.zero_grad(set_to_none=True)
            x_grad.grad = None

        return call

    return {
        REFERENCE: (forward(linear), tokens),
        "BitLinear forward (simulated ternary)": (forward(ternary), tokens),
        "BitLinear full precision forward": (forward(full), tokens),
        "nn.Linear train step": (train_step(linear), tokens),
        "BitLinear train step (STE)": (train_step(ternary), tokens),
    }


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1024, help="in and out features of the square layer")
    parser.add_argument("--tokens", type=int, default=512, help="rows of the input batch")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args(args)
    device = torch.device(options.device)
    calls = sides(options.features, options.tokens, device)
    results = paired_rounds(calls, REFERENCE, options.rounds, device)
    print(f"BitLinear (simulated) against nn.Linear, {options.features} x {options.features}, {options.tokens} tokens, "
          f"{options.device}; {versions()}")  # fmt: skip
    for name, result in results.items():
        print(f"  {name:40s} {result['seconds'] * 1e3:9.3f} ms   ratio {result['ratio']:6.2f} [{result['low']:.2f}, {result['high']:.2f}]")


if __name__ == "__main__":
    main()
