"""Speed of a training step: our ResNet-18, VGG-11, AlexNet and GoogLeNet against torchvision's.

    python benchmarks/cnn_speed.py                               # CPU, batch 8 at 224x224, float32
    python benchmarks/cnn_speed.py --channels-last --precision bf16-mixed
    python benchmarks/cnn_speed.py --device cuda --batch-size 64 --precision 16-mixed --channels-last

Each pair is the same network: ours is built with the named options that make it torchvision's
variant (``AlexNet(variant="torchvision")``, ``VGG(config="A", adaptive_pool=7, init="kaiming")``,
``ResNet(depth=18, stride_on="3x3")``, ``GoogLeNet.torchvision_variant()``), torchvision's with
``weights=None``. Before timing, torchvision's weights and buffers are copied into ours and the two
outputs are compared, so a ratio is never the cost of two different networks.

A step is what a Trainer does for one batch: forward in training mode (GoogLeNet with its two
auxiliary heads, their losses weighted 0.3 on both sides), cross-entropy, backward, an SGD step with
momentum, gradients set to None. Mixed precision is ``torch.autocast`` with the dtype that the
Trainer's ``precision`` setting would use (``bf16-mixed``: bfloat16; ``16-mixed``: float16 with a
gradient scaler on CUDA). After warm-up steps, the two sides alternate, the order flipping every
round, and each round times ``--steps`` steps of each. The ratio printed is ours / torchvision's, by
the median over rounds of each side's time and by the median of the rounds' paired ratios (the
steadier figure on a shared machine). Parity means at most 1.05.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import timed  # noqa: E402  (benchmarks/, the script's own folder)

MODELS = ("resnet18", "vgg11", "alexnet", "googlenet")
PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
AUX_WEIGHT = 0.3  # GoogLeNet's auxiliary losses, Section 5 of the paper; the same on both sides


def build_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) for one architecture, 1000 classes at 224x224 inputs."""
    import torchvision

    from ai_scratch.cnn_revolution.alexnet import AlexNet
    from ai_scratch.cnn_revolution.googlenet import GoogLeNet
    from ai_scratch.cnn_revolution.resnet import TORCHVISION_OPTIONS, ResNet
    from ai_scratch.cnn_revolution.vgg import VGG

    ours: nn.Module
    if name == "resnet18":
        ours = ResNet(depth=18, **TORCHVISION_OPTIONS)
    elif name == "vgg11":
        ours = VGG(config="A", adaptive_pool=7, init="kaiming")
    elif name == "alexnet":
        ours = AlexNet(variant="torchvision")
    elif name == "googlenet":
        ours = GoogLeNet.torchvision_variant()
    else:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    options = {"aux_logits": True, "init_weights": True} if name == "googlenet" else {}
    theirs = getattr(torchvision.models, name)(weights=None, **options)
    copy_tensors(theirs, ours)
    return ours, theirs


def in_torchvision_order(model: nn.Module) -> list[Tensor]:
    """Parameters, then buffers, in the order torchvision declares them: the same as ours except
    that torchvision's GoogLeNet declares its auxiliary classifiers before the last linear layer."""

    def ordered(named: list[tuple[str, Tensor]]) -> list[Tensor]:
        aux = [t for n, t in named if n.startswith("aux")]
        rest = [(n, t) for n, t in named if not n.startswith("aux")]
        at_fc = next((i for i, (n, _) in enumerate(rest) if n.startswith("fc.")), len(rest))
        return [t for _, t in rest[:at_fc]] + aux + [t for _, t in rest[at_fc:]]

    return ordered(list(model.named_parameters())) + ordered(list(model.named_buffers()))


def copy_tensors(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of torchvision's network into ours, position by position."""
    with torch.no_grad():
        for a, b in zip(in_torchvision_order(source), in_torchvision_order(target), strict=True):
            if a.shape != b.shape:
                raise RuntimeError(f"the two networks differ: {tuple(a.shape)} against {tuple(b.shape)}")
            b.copy_(a)


def forward_scores(model: nn.Module, images: Tensor) -> tuple[Tensor, ...]:
    """Main scores, then any auxiliary scores (training mode), for either side."""
    if hasattr(model, "forward_with_aux"):  # ours: GoogLeNet
        return tuple(s for s in model.forward_with_aux(images) if s is not None)
    out = model(images)
    if hasattr(out, "logits"):  # torchvision's GoogLeNetOutputs in training mode
        return tuple(s for s in (out.logits, out.aux_logits1, out.aux_logits2) if s is not None)
    return (out,)


def check_same_network(ours: nn.Module, theirs: nn.Module, images: Tensor) -> float:
    """Largest difference between the two networks' scores in eval mode, after the copy."""
    ours.eval(), theirs.eval()
    with torch.no_grad():
        difference = (ours(images[:2]) - forward_scores(theirs, images[:2])[0]).abs().max().item()
    ours.train(), theirs.train()
    return difference


def make_step(
    model: nn.Module, images: Tensor, target: Tensor, dtype: torch.dtype | None, device: torch.device
) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # small: stays finite
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16 and device.type == "cuda")

    def autocast() -> contextlib.AbstractContextManager:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def step() -> None:
        with autocast():
            scores = forward_scores(model, images)
            loss = nn.functional.cross_entropy(scores[0], target)
            for aux in scores[1:]:
                loss = loss + AUX_WEIGHT * nn.functional.cross_entropy(aux, target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def rounds(count: int) -> Iterator[tuple[str, str]]:
    """The order of the two sides in each round: ours first, then torchvision first, and so on."""
    for index in range(count):
        yield ("ours", "torchvision") if index % 2 == 0 else ("torchvision", "ours")


def compare(name: str, options: argparse.Namespace, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    ours, theirs = build_pair(name)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    images = torch.randn(options.batch_size, 3, options.image_size, options.image_size)
    target = torch.randint(0, 1000, (options.batch_size,))
    images, target = images.to(device).contiguous(memory_format=memory_format), target.to(device)
    models = {"ours": ours.to(device, memory_format=memory_format), "torchvision": theirs.to(device, memory_format=memory_format)}
    difference = check_same_network(models["ours"], models["torchvision"], images)
    if difference > 1e-3:
        raise RuntimeError(f"{name}: the two networks disagree by {difference:.2e} after copying the weights")
    dtype = PRECISIONS[options.precision]
    steps = {side: make_step(model, images, target, dtype, device) for side, model in models.items()}
    for side in steps:
        timed(steps[side], options.warmup, device)
    seconds: dict[str, list[float]] = {"ours": [], "torchvision": []}
    for order in rounds(options.rounds):
        for side in order:
            seconds[side].append(timed(steps[side], options.steps, device))
    paired = [o / t for o, t in zip(seconds["ours"], seconds["torchvision"], strict=True)]
    return {
        "ours_ms": 1000 * statistics.median(seconds["ours"]),
        "torchvision_ms": 1000 * statistics.median(seconds["torchvision"]),
        "ratio_of_medians": statistics.median(seconds["ours"]) / statistics.median(seconds["torchvision"]),
        "median_paired_ratio": statistics.median(paired),
        "max_difference": difference,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--precision", default="32", choices=list(PRECISIONS), help="as the Trainer's precision")
    parser.add_argument("--channels-last", action="store_true", help="weights and inputs in torch.channels_last")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each side first")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per side per round")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds")
    parser.add_argument("--parity", type=float, default=1.05, help="the ratio counted as parity")
    options = parser.parse_args(argv)
    device = torch.device(options.device)
    if options.precision == "16-mixed" and device.type == "cpu":
        parser.error("16-mixed is a GPU setting; use bf16-mixed on the CPU")

    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {options.batch_size} x 3 x {options.image_size}"
        f" x {options.image_size}, precision {options.precision}, channels_last {options.channels_last},"
        f" {options.rounds} rounds x {options.steps} steps"
    )
    print(f"{'model':<10} {'ours ms':>9} {'torchvision ms':>15} {'ratio':>7} {'paired':>7}  parity")
    worst = 0.0
    for name in options.models:
        result = compare(name, options, device)
        worst = max(worst, result["median_paired_ratio"])
        verdict = "yes" if result["median_paired_ratio"] <= options.parity else "NO"
        print(
            f"{name:<10} {result['ours_ms']:>9.1f} {result['torchvision_ms']:>15.1f} {result['ratio_of_medians']:>7.3f}"
            f" {result['median_paired_ratio']:>7.3f}  {verdict}",
            flush=True,
        )
    print(f"worst paired ratio {worst:.3f} (parity: at most {options.parity})")
    return 0 if worst <= options.parity else 1


if __name__ == "__main__":
    sys.exit(main())
