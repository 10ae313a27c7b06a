"""Speed of BERT's encoder layer against ``nn.TransformerEncoderLayer`` of the same sizes, forward and backward.

    python benchmarks/bert_speed.py                              # CPU, BERT-mini sizes: H 256, 4 heads, batch 32 x 128
    python benchmarks/bert_speed.py --hidden-size 768 --num-heads 12 --batch-size 8    # one BERT-base layer
    python benchmarks/bert_speed.py --device cuda --batch-size 32 --hidden-size 768 --num-heads 12

Three layers that compute the same function (post-norm, GELU, ``d_ff = 4H``), each a training
step: forward over ``(batch, length, H)`` with a padding mask (the last quarter of every other
sequence is ``[PAD]``), the mean of the outputs at the real positions as the loss, backward, an
Adam step, gradients set to None:

* **torch**: ``nn.TransformerEncoderLayer(H, A, 4H, activation="gelu", batch_first=True)``;
* **fused**: ``bert.BertLayer(fused=True)``, attention by ``scaled_dot_product_attention`` on our
  own projections, held to parity (at most 1.05);
* **hand**: ``bert.BertLayer(fused=False)``, eq. 1 written out (it keeps the attention weights for
  the attention maps), reported as it is.

The torch layer's weights are copied into ours and the outputs compared before timing, so that a
ratio is never the cost of two different networks. Dropout is ``--dropout`` (0.1, BERT's) in all
three; ``nn.TransformerEncoderLayer`` drops also after the feed-forward's activation, which BERT
does not, one dropout more on its side. With dropout the sides draw different masks, so the
outputs are compared with dropout off. Printed: the median milliseconds per step and the median
paired ratio over torch's time in the same round, with its bootstrap 90% interval
(``_timing.paired_rounds``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import paired_rounds, timed, versions  # noqa: E402  (benchmarks/, the script's own folder)

REFERENCE = "torch"


def sides(hidden: int, heads: int, dropout: float) -> dict[str, tuple[nn.Module, bool]]:
    """``{name: (layer, takes a keep-mask)}``: the torch layer and ours holding its weights."""
    from ai_scratch.modern_paradigm.bert import BertLayer

    reference = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=dropout, activation="gelu", layer_norm_eps=1e-12,
                                           batch_first=True)  # fmt: skip
    built: dict[str, tuple[nn.Module, bool]] = {REFERENCE: (reference, False)}
    w_q, w_k, w_v = reference.self_attn.in_proj_weight.detach().chunk(3)
    b_q, b_k, b_v = reference.self_attn.in_proj_bias.detach().chunk(3)
    for name, fused in (("fused", True), ("hand", False)):
        ours = BertLayer(hidden, heads, 4 * hidden, dropout=dropout, attention_dropout=dropout, fused=fused)
        copies = {
            "self_attention.w_q.weight": w_q, "self_attention.w_q.bias": b_q,
            "self_attention.w_k.weight": w_k, "self_attention.w_k.bias": b_k,
            "self_attention.w_v.weight": w_v, "self_attention.w_v.bias": b_v,
            "self_attention.w_o.weight": reference.self_attn.out_proj.weight, "self_attention.w_o.bias": reference.self_attn.out_proj.bias,
            "feed_forward.0.weight": reference.linear1.weight, "feed_forward.0.bias": reference.linear1.bias,
            "feed_forward.2.weight": reference.linear2.weight, "feed_forward.2.bias": reference.linear2.bias,
            "attention_norm.weight": reference.norm1.weight, "attention_norm.bias": reference.norm1.bias,
            "output_norm.weight": reference.norm2.weight, "output_norm.bias": reference.norm2.bias,
        }  # fmt: skip
        ours.load_state_dict({key: value.detach().clone() for key, value in copies.items()})
        built[name] = (ours, True)
    return built


def run(layer: nn.Module, ours: bool, x: Tensor, pads: Tensor) -> Tensor:
    if ours:
        return layer(x, (~pads)[:, None, None, :])
    return layer(x, src_key_padding_mask=pads)


def make_step(layer: nn.Module, ours: bool, x: Tensor, pads: Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-4)
    real = ~pads

    def step() -> None:
        loss = run(layer, ours, x, pads)[real].mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence (BERT pre-trains at 128, then 512)")
    parser.add_argument("--hidden-size", type=int, default=256, help="H (768 in BERT-base)")
    parser.add_argument("--num-heads", type=int, default=4, help="A (12 in BERT-base)")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parity", type=float, default=1.05)
    options = parser.parse_args(argv)
    if options.hidden_size % options.num_heads:
        parser.error(f"--hidden-size ({options.hidden_size}) must be a multiple of --num-heads ({options.num_heads})")
    for flag in ("batch_size", "length", "hidden_size", "num_heads", "rounds"):
        if getattr(options, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")

    torch.manual_seed(0)
    layers = {name: (layer.to(device), ours) for name, (layer, ours) in sides(options.hidden_size, options.num_heads, options.dropout).items()}
    x = torch.randn(options.batch_size, options.length, options.hidden_size, device=device)
    pads = torch.zeros(options.batch_size, options.length, dtype=torch.bool, device=device)
    pads[::2, options.length * 3 // 4 :] = True
    with torch.no_grad():  # the same function: compare with dropout off
        outputs = {}
        for name, (layer, ours) in layers.items():
            layer.eval()
            outputs[name] = run(layer, ours, x, pads)[~pads]
            layer.train()
    difference = max((out - outputs[REFERENCE]).abs().max().item() for out in outputs.values())
    if difference > 1e-3:
        raise RuntimeError(f"the layers disagree by {difference:.2e} after copying the weights")
    calls = {name: (make_step(layer, ours, x, pads), options.batch_size) for name, (layer, ours) in layers.items()}
    timed(calls[REFERENCE][0], 2, device)
    rows = paired_rounds(calls, REFERENCE, options.rounds, device)

    print(versions())
    print(f"device {device}, {torch.get_num_threads()} threads, batch {options.batch_size} x {options.length} tokens, "
          f"H {options.hidden_size}, A {options.num_heads}, d_ff {4 * options.hidden_size}, dropout {options.dropout}, "
          f"{options.rounds} rounds; outputs agree within {difference:.1e}")  # fmt: skip
    print(f"{'side':<6} {'ms/step':>9} {'/ torch':>8} {'90% interval':>17}  parity")
    for name, row in rows.items():
        if name == REFERENCE:
            print(f"{name:<6} {1000 * row['seconds']:>9.2f}")
            continue
        verdict = ("yes" if row["ratio"] <= options.parity else "NO") if name == "fused" else "-"
        interval = f"[{row['low']:.3f}, {row['high']:.3f}]"
        print(f"{name:<6} {1000 * row['seconds']:>9.2f} {row['ratio']:>8.3f} {interval:>17}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
