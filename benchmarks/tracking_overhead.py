"""Cost of tracking: LeNet-5 `fit` with `--wandb` (offline, every callback at its default) against
the same fit with no logger and no callbacks, alternating in one process, and the ratio.

    python benchmarks/tracking_overhead.py                  # 3 repeats of each variant, 20 epochs
    python benchmarks/tracking_overhead.py --repeats 5 --epochs 10   # ratios by min and by median
    python benchmarks/tracking_overhead.py --repeats 8 --variants baseline tracked   # paired, tighter

Both runs train the same network on the same data (configs/lenet5/mnist.yaml, seeded) through the
same `ai-scratch fit` code path. The tracked run adds: the CSV logger and the WandbLogger, wandb.watch
on gradients, checkpoints (best and latest) and their artifacts, the run metadata, and the figures
(learning curves, confusion matrix, gradient flow, filters and feature maps). Neither run draws a
progress bar or checks the claim (the claim's test pass is not tracking). A third variant, tracked
without figures, separates wandb's own cost from matplotlib's, and the time spent in the figure
callbacks of each tracked run is printed beside it. The planning document's bar is an overhead
under 5%.

On a shared machine one repeat of the same fit varies by several seconds, more than the effect.
Each repeat runs every variant back to back, so the ratio of a repeat's tracked time to the same
repeat's baseline (a paired ratio) cancels the slow drifts of the machine; the script prints the
median of the paired ratios and a bootstrap 90% interval for it (2,000 resamples, seeded).

Each repeat of a variant stands for one `ai-scratch fit` process: as the console command does, the
objects alive when the run starts are frozen out of the garbage collector, and after the clock
stops they are thawed and collected, as that process's exit would.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _stats import bootstrap_interval  # noqa: E402  (benchmarks/, the script's own folder)


VARIANTS = {
    "baseline": ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--figures", "false",
                 "--trainer.enable_model_summary", "false"],
    "tracked": ["--wandb"],
    # the same as tracked but without the PNG figures, which are drawn with or without wandb
    "wandb, no figures": ["--wandb", "--figures", "false"],
}  # fmt: skip


FIGURE_SECONDS: list[float] = []  # time in the figure callbacks (collect, draw, save, log) of the current run


def time_figures() -> None:
    """Count the time the figure callbacks take, to tell it from the rest of the tracking."""
    from callbacks.figures import FigureCallback

    emit = FigureCallback.emit

    def timed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return emit(self, *args, **kwargs)
        finally:
            FIGURE_SECONDS.append(time.perf_counter() - start)

    FigureCallback.emit = timed  # type: ignore[method-assign]


def run(variant: str, epochs: int, workdir: Path) -> float:
    from ai_scratch.cli import main

    args = [
        "fit", "--config", str(ROOT / "configs/lenet5/mnist.yaml"), "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false", "--experiment.claim", "null",
    ]  # fmt: skip
    args += VARIANTS[variant]
    os.chdir(workdir)
    # one console process per repeat (see the module docstring): frozen as it freezes, thawed after
    start = time.perf_counter()
    main(args, freeze_gc=True)
    seconds = time.perf_counter() - start
    gc.unfreeze()
    gc.collect()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="which to time (baseline is always one)")
    options = parser.parse_args()
    if "baseline" not in options.variants:
        parser.error("--variants must include baseline, the denominator of every ratio")
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(workdir), WANDB_SILENT="true")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            os.environ[name] = str(workdir / name.lower())
        time_figures()
        run("tracked", 1, workdir)  # warm-up: imports, wandb's service, data caches, allocator
        names = ["baseline"] + [name for name in options.variants if name != "baseline"]
        times: dict[str, list[float]] = {name: [] for name in names}
        figure_times: list[float] = []
        for repeat in range(options.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]  # rotate who goes first
            for name in order:
                FIGURE_SECONDS.clear()
                seconds = run(name, options.epochs, workdir)
                times[name].append(seconds)
                figures = f"   (figures {sum(FIGURE_SECONDS):.2f} s)" if FIGURE_SECONDS else ""
                if FIGURE_SECONDS:
                    figure_times.append(sum(FIGURE_SECONDS))
                print(f"repeat {repeat + 1}: {name:<18} {seconds:7.2f} s{figures}", flush=True)
    # Noise on a shared machine only ever adds time: the minimum is the steadiest estimate,
    # the median is shown beside it.
    print()
    for name in names:
        print(f"{name:<18} min {min(times[name]):7.2f} s   median {statistics.median(times[name]):7.2f} s")
    if figure_times:
        print(f"{'figures':<18} min {min(figure_times):7.2f} s   median {statistics.median(figure_times):7.2f} s"
              "   (of each tracked run: the figure callbacks' collect, draw, save and log)")
    for name in names[1:]:
        ratio = min(times[name]) / min(times["baseline"])
        median_ratio = statistics.median(times[name]) / statistics.median(times["baseline"])
        paired = [t / b for t, b in zip(times[name], times["baseline"], strict=True)]
        low, high = bootstrap_interval(paired)
        print(f"ratio {name} / baseline = {ratio:.3f} by min, {median_ratio:.3f} by median; paired: median"
              f" {statistics.median(paired):.3f}, 90% interval [{low:.3f}, {high:.3f}] over {len(paired)} repeats")


if __name__ == "__main__":
    main()
