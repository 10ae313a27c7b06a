"""ResNet's degradation problem in miniature (He et al., 2015, Figures 1 and 6), through the real CLI.

Fits the three experiment configs ``configs/resnet/degradation_{plain20,plain32,resnet32}.yaml`` for
a few training seeds and prints each fit's final training error (1 - the last epoch's
``train_accuracy``), its time, and whether the paper's ordering holds on every seed:

    error(plain-32) > error(plain-20) + margin   (degradation: the deeper plain net trains worse)
    error(resnet-32) <= 0.01                     (the residual net of the same depth fits the set)

Usage::

    python benchmarks/resnet_degradation.py                # seeds 0 1 2
    python benchmarks/resnet_degradation.py --seeds 0 1 2 3 --margin 0.05

Each fit runs in a temporary directory; the printout is the result.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ai_scratch.cli import main

CONFIGS = ("plain20", "plain32", "resnet32")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--figures", "false"]


def fit(name: str, seed: int, extra: list[str]) -> tuple[float, float, bool]:
    """One fit of ``degradation_<name>``: (final train error, seconds, claim reproduced)."""
    config = ROOT / "configs" / "resnet" / f"degradation_{name}.yaml"
    start = time.perf_counter()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        os.chdir(tmp)  # the run's folders go to the temporary directory
        try:
            cli = main(["fit", "--config", str(config), *QUIET, "--seed_everything", str(seed), *extra])
        finally:
            os.chdir(here)
    seconds = time.perf_counter() - start
    error = 1.0 - float(cli.trainer.callback_metrics["train_accuracy"])
    return error, seconds, bool(cli.claim_result and cli.claim_result.reproduced)


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--margin", type=float, default=0.05, help="plain-32 must exceed plain-20's error by this")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="CLI overrides for every fit")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    total = time.perf_counter()
    holds_all = True
    print(f"{'seed':>4} {'config':>9} {'train error':>11} {'seconds':>8} claim")
    for seed in args.seeds:
        errors = {}
        for name in CONFIGS:
            error, seconds, reproduced = fit(name, seed, args.extra)
            errors[name] = error
            print(f"{seed:>4} {name:>9} {error:>11.4f} {seconds:>8.1f} {'REPRODUCED' if reproduced else 'NOT REPRODUCED'}", flush=True)
        holds = errors["plain32"] > errors["plain20"] + args.margin and errors["resnet32"] <= 0.01
        holds_all &= holds
        print(f"seed {seed}: plain32 {errors['plain32']:.4f} > plain20 {errors['plain20']:.4f} + {args.margin} "
              f"and resnet32 {errors['resnet32']:.4f} <= 0.01: {'HOLDS' if holds else 'DOES NOT HOLD'}", flush=True)
    print(f"ordering holds on all seeds {args.seeds}: {holds_all}; total {time.perf_counter() - total:.0f} s")
    return 0 if holds_all else 1


if __name__ == "__main__":
    sys.exit(main_())
