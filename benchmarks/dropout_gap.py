"""Does dropout narrow AlexNet's train/validation gap? The two configs of configs/alexnet/, paired by seed.

    python benchmarks/dropout_gap.py                        # seeds 0 to 11
    python benchmarks/dropout_gap.py --seeds 0 1 2
    python benchmarks/dropout_gap.py --set data.init_args.train_size=500 --set data.init_args.val_size=500 \
        --set trainer.max_epochs=40     # another regime: the same overrides for both twins

Krizhevsky et al. (2012), Section 4.2: "Without dropout, our network exhibits substantial
overfitting." configs/alexnet/dropout_strength.yaml and overfitting_without_dropout_weakness.yaml
are the same small AlexNet on the same 2,000 training digits (1,000 for validation), with and
without dropout 0.5 on fc6 and fc7; callbacks.GeneralizationGap measures the final gap
(training-set accuracy in eval mode minus validation accuracy, and the same in loss). One seed
cannot tell the two apart: the difference is smaller than the noise of the validation set. So
each seed trains both, and the script reports the paired differences (without minus with:
positive when dropout narrows the gap), on how many seeds dropout narrowed it, and a bootstrap 90%
interval for the mean difference.

Results so far, on this regime and on smaller ones: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _stats import bootstrap_interval  # noqa: E402  (benchmarks/, the script's own folder)

CONFIGS = {"with dropout": "alexnet/dropout_strength", "without": "alexnet/overfitting_without_dropout_weakness"}
QUIET = ["--figures", "false", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--experiment.claim", "null"]  # fmt: skip


def final_gaps(config: str, seed: int, overrides: Sequence[str] = ()) -> tuple[float, float]:
    """(accuracy gap, loss gap) at the end of one fit of ``configs/<config>.yaml``; ``overrides``
    are ``KEY=VALUE`` settings, given to ai-scratch as ``--KEY=VALUE``."""
    from ai_scratch.cli import main

    settings = [f"--{setting}" for setting in overrides]
    cli = main(["fit", "--config", str(ROOT / "configs" / f"{config}.yaml"), "--seed_everything", str(seed), *QUIET, *settings])
    metrics = cli.trainer.callback_metrics
    return float(metrics["generalization_gap"]), float(metrics["generalization_loss_gap"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for both twins, as ai-scratch takes it (repeatable)")
    options = parser.parse_args(argv)
    if malformed := [setting for setting in options.overrides if "=" not in setting or setting.startswith("-")]:
        parser.error(f"--set takes KEY=VALUE (e.g. model.init_args.width=0.25), got {malformed[0]!r}")
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    differences: dict[str, list[float]] = {"accuracy": [], "loss": []}
    print(f"{'seed':>4}  {'accuracy gap: with / without':>30}  {'loss gap: with / without':>26}")
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        for seed in options.seeds:
            with_dropout, without = (final_gaps(CONFIGS[name], seed, options.overrides) for name in ("with dropout", "without"))
            differences["accuracy"].append(without[0] - with_dropout[0])
            differences["loss"].append(without[1] - with_dropout[1])
            print(f"{seed:>4}  {with_dropout[0]:>14.3f} / {without[0]:<13.3f}  {with_dropout[1]:>12.3f} / {without[1]:<11.3f}", flush=True)
    for kind, values in differences.items():
        narrower = sum(v > 0 for v in values)
        low, high = bootstrap_interval(values, "mean") if len(values) > 1 else (values[0], values[0])
        print(
            f"{kind} gap, without minus with dropout: mean {statistics.fmean(values):+.4f}, 90% interval"
            f" [{low:+.4f}, {high:+.4f}]; dropout narrower on {narrower} of {len(values)} seeds"
        )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
