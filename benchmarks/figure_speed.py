"""Time the five end-of-fit figures of a LeNet-5 fit, and compare two matplotlib installs in one run.

    python benchmarks/figure_speed.py                       # this environment's matplotlib
    pip install --target /tmp/mpl311 --no-deps "matplotlib==3.11.2"
    python benchmarks/figure_speed.py --against /tmp/mpl311 # alternating, prints the ratio

The figures are those `ai-scratch fit --config configs/lenet5/mnist.yaml` draws at its end (learning
curves of 20 epochs, the 10-class confusion matrix, gradient flow of 250 records of 4 layers,
C1's six filters, feature maps of C1 and C3 for one digit), from seeded data of the same shapes,
each built, drawn and encoded as a PNG (callbacks.plots.save_figure). One round draws all five.

With ``--against DIR`` each repeat runs this script twice more as fresh processes, once as it is and
once with DIR first on the path (a ``pip install --target`` of another matplotlib), in alternating
order; each process draws ``--rounds`` rounds after a warm-up round and reports its median. The
script prints the median of the paired ratios (the other matplotlib's time over this one's) and a
bootstrap 90% interval.

Measured (2026-11-27, 2 CPU cores, 5 repeats of 8 rounds): matplotlib 3.10.9 1.21 to 1.28 s per
round, 3.11.2 1.14 to 1.39 s; ratio 3.11.2 / 3.10.9 = 1.05, 90% interval [0.89, 1.09]. matplotlib
3.11 draws text glyph by glyph in Python (its Agg backend's ``_draw_text_glyphs_and_boxes``) where
3.10 hands the whole string to C++, and these figures hold about 470 texts; but the difference is
a few hundredths of a second per fit, within the noise, so pyproject.toml does not hold matplotlib
back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def lenet5_figures() -> list:
    """Builders of the five figures, from seeded data shaped as a LeNet-5 fit's."""
    import numpy as np

    from callbacks import plots

    rng = np.random.default_rng(0)
    epochs = range(20)
    decay = np.exp(-np.arange(20) / 5)
    history = {
        "train_loss": [(e, 40 * d + 2 + rng.random()) for e, d in zip(epochs, decay)],
        "val_loss": [(e, 38 * d + 3 + rng.random()) for e, d in zip(epochs, decay)],
        "train_accuracy": [(e, 0.99 - 0.6 * d) for e, d in zip(epochs, decay)],
        "val_accuracy": [(e, 0.98 - 0.6 * d) for e, d in zip(epochs, decay)],
        "learning_rate": [(e, 0.001 * (1 + np.cos(np.pi * e / 20))) for e in epochs],
    }
    matrix = np.diag(rng.integers(40, 52, 10)) + rng.integers(0, 3, (10, 10))
    steps = list(range(0, 2500, 10))
    norms = {f"{layer}.weight": list(scale * rng.lognormal(0, 0.3, len(steps)))
             for layer, scale in (("c1.conv", 0.3), ("c3.conv", 1.7), ("c5.conv", 17.0), ("f6.linear", 35.0))}
    filters = rng.normal(size=(6, 1, 5, 5))
    digit = rng.random((1, 32, 32))
    maps = {"c1.conv": rng.random((6, 28, 28)), "c3.conv": rng.random((16, 10, 10))}
    names = [str(i) for i in range(10)]
    return [
        lambda: plots.learning_curves(history, title="Learning curves: LeNet5"),
        lambda: plots.confusion_matrix(matrix, names, title="Confusion matrix: LeNet5"),
        lambda: plots.gradient_flow(steps, norms, title="Gradient flow: LeNet5"),
        lambda: plots.conv_filters(filters, title="First-layer filters: LeNet5 (c1.conv)"),
        lambda: plots.feature_maps(digit, maps, title="Feature maps: LeNet5"),
    ]


def time_rounds(rounds: int) -> float:
    """Median seconds to build, draw and save the five figures (after one warm-up round)."""
    from callbacks import plots

    builders = lenet5_figures()
    times = []
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(rounds + 1):
            start = time.perf_counter()
            for index, build in enumerate(builders):
                plots.save_figure(build(), Path(directory) / f"figure{index}.png")
            if round_:  # the first round loads fonts and fills caches
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_in_process(rounds: int, path: str | None) -> tuple[str, float]:
    """Run this script as a fresh process (``path`` first on its path) and read its result."""
    environment = dict(os.environ, MPLBACKEND="Agg")
    if path:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [path, environment.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--rounds", str(rounds), "--json"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["matplotlib"], report["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", help="a folder holding another matplotlib (pip install --target DIR ...)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one process's report
    options = parser.parse_args()
    if options.json:
        import matplotlib

        print(json.dumps({"matplotlib": matplotlib.__version__, "seconds": time_rounds(options.rounds)}))
        return
    if not options.against:
        import matplotlib

        print(f"matplotlib {matplotlib.__version__}: {time_rounds(options.rounds):.3f} s per round of five figures")
        return
    if not Path(options.against, "matplotlib").is_dir():
        parser.error(f"--against {options.against}: no matplotlib package in that folder")
    from _stats import bootstrap_interval

    ratios, versions, seconds = [], {}, {"this": [], "other": []}
    for repeat in range(options.repeats):
        order = ("this", "other") if repeat % 2 == 0 else ("other", "this")
        for side in order:
            version, value = measure_in_process(options.rounds, options.against if side == "other" else None)
            versions[side] = version
            seconds[side].append(value)
        ratios.append(seconds["other"][-1] / seconds["this"][-1])
        print(f"repeat {repeat + 1}: {versions['this']} {seconds['this'][-1]:.3f} s, {versions['other']} {seconds['other'][-1]:.3f} s", flush=True)
    low, high = bootstrap_interval(ratios)
    print(f"ratio matplotlib {versions['other']} / {versions['this']} = {statistics.median(ratios):.3f} (median of "
          f"{len(ratios)} paired repeats), 90% interval [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
