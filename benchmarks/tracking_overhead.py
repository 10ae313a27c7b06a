"""Cost of tracking: LeNet-5 `fit` with `--wandb` (offline, every callback at its default) against
the same fit with no logger and no callbacks, alternating in one process, and the ratio.

    python benchmarks/tracking_overhead.py                  # 3 repeats of each, 20 epochs
    python benchmarks/tracking_overhead.py --repeats 5 --epochs 10

Both runs train the same network on the same data (configs/lenet5/mnist.yaml, seeded) through the
same `ai-scratch fit` code path. The tracked run adds: the CSV logger and the WandbLogger, wandb.watch
on gradients, checkpoints (best and latest) and their artifacts, the run metadata, and the figures
(learning curves, confusion matrix, gradient flow, filters and feature maps). Neither run draws a
progress bar or checks the claim (the claim's test pass is not tracking). The planning document's
bar is an overhead under 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(tracked: bool, epochs: int, workdir: Path) -> float:
    from ai_scratch.cli import main

    args = [
        "fit", "--config", str(ROOT / "configs/lenet5/mnist.yaml"), "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false", "--experiment.claim", "null",
    ]  # fmt: skip
    if tracked:
        args += ["--wandb"]
    else:
        args += ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--figures", "false",
                 "--trainer.enable_model_summary", "false"]  # fmt: skip
    os.chdir(workdir)
    start = time.perf_counter()
    main(args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(workdir), WANDB_SILENT="true")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            os.environ[name] = str(workdir / name.lower())
        run(False, 1, workdir)  # warm-up: imports, data loading caches, allocator
        times: dict[str, list[float]] = {"baseline": [], "tracked": []}
        for repeat in range(options.repeats):
            for tracked in (repeat % 2 == 1, repeat % 2 == 0):  # alternate which goes first
                seconds = run(tracked, options.epochs, workdir)
                times["tracked" if tracked else "baseline"].append(seconds)
                print(f"repeat {repeat + 1}: {'tracked ' if tracked else 'baseline'} {seconds:7.2f} s", flush=True)
    baseline, tracked = statistics.median(times["baseline"]), statistics.median(times["tracked"])
    print(f"\nmedian baseline {baseline:.2f} s, median tracked {tracked:.2f} s")
    print(f"ratio tracked / baseline = {tracked / baseline:.3f} (overhead {100 * (tracked / baseline - 1):+.1f}%)")


if __name__ == "__main__":
    main()
