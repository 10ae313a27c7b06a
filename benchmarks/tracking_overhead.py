"""The cost of tracking, as a user meets it: LeNet-5's `ai-scratch fit` with and without `--wandb`.

    python benchmarks/tracking_overhead.py                    # 3 repeats, 20 and 2 epochs
    python benchmarks/tracking_overhead.py --repeats 5 --epochs 20 --short-epochs 2

Three fits of configs/lenet5/mnist.yaml, each a fresh process timed from its launch to its exit:

* untracked: ``ai-scratch fit --config configs/lenet5/mnist.yaml`` (CSV logger, checkpoints, figures);
* tracked: the same with ``--wandb`` (offline), which adds the WandbLogger, the gradient
  histograms, the checkpoint artifacts, the run's metadata and the figures as wandb images;
* bare: a plain Lightning ``Trainer`` fit of the same model and datamodule with the config's
  arguments and seed, and no logger, no checkpoints, no callbacks.

All three run with the progress bar and the model summary off, and the two ``ai-scratch`` fits
without the claim's test pass, so that only tracking (or only ai-scratch) differs. Each repeat runs
every variant once, in an order flipped every other repeat, so that a paired ratio (a repeat's
tracked time over the same repeat's untracked time) cancels the slow drifts of a shared machine.
The script prints:

1. the overhead from wandb (the planning document's bar: under 5%): the median paired ratio
   tracked / untracked at the full length, with a bootstrap 90% interval; and the same in CPU
   seconds (user and system, of the fit's process and the children it waited for, wandb's service
   among them), which a busy shared machine disturbs less than the wall clock;
2. what a longer fit pays: the tracked and untracked fits also run at a short length, and with
   overhead(E) = t_tracked(E) - t_untracked(E) at the two lengths, the fixed cost of a tracked run
   (its start and finish) is the intercept in seconds, and the per-epoch cost is the ratio of the
   per-epoch slopes, tracked over untracked;
3. what ``ai-scratch fit`` costs over a bare Lightning fit: the median paired ratio untracked /
   bare at the full length, with its interval.

then the versions and the date, ready to paste into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
CONFIG = ROOT / "configs" / "lenet5" / "mnist.yaml"
sys.path.insert(0, str(ROOT))

from _stats import bootstrap_interval  # noqa: E402  (benchmarks/, the script's own folder)

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--experiment.claim", "null"]
BAR = 0.05  # the planning document's bar for the overhead from wandb


def command(variant: str, epochs: int) -> list[str]:
    """The process that one fit of ``variant`` ("untracked", "tracked" or "bare") runs."""
    if variant == "bare":
        return [sys.executable, str(SCRIPT), "--bare-fit", str(epochs)]
    fit = [sys.executable, "-m", "ai_scratch", "fit", "--config", str(CONFIG), "--trainer.max_epochs", str(epochs), *QUIET]
    return fit + (["--wandb"] if variant == "tracked" else [])


def bare_fit(epochs: int) -> None:
    """A plain Lightning fit of the config's model and data, seeded as LightningCLI seeds it."""
    import lightning as L

    config = yaml.safe_load(CONFIG.read_text())

    def build(section: dict) -> object:
        module, _, name = section["class_path"].rpartition(".")
        return getattr(importlib.import_module(module), name)(**section.get("init_args", {}))

    L.seed_everything(config["seed_everything"], workers=True)
    model, data = build(config["model"]), build(config["data"])
    options = {**config.get("trainer", {}), "max_epochs": epochs}  # deterministic etc. as in the config
    trainer = L.Trainer(
        **options, logger=False, enable_checkpointing=False, callbacks=[], enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=data)


def cpu_seconds_of_children() -> float:
    """User and system CPU seconds of every child process that has ended (wandb's service included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(variant: str, epochs: int, workdir: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from the launch of one fresh fit process to its exit, and the CPU seconds it used."""
    cpu, start = cpu_seconds_of_children(), time.perf_counter()
    result = subprocess.run(command(variant, epochs), cwd=workdir, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds_of_children() - cpu
    if result.returncode != 0:
        sys.exit(f"{variant} fit ({epochs} epochs) failed with status {result.returncode}:\n{result.stderr[-3000:]}")
    return seconds, cpu


def n_epochs(count: int) -> str:
    return f"{count} epoch" + ("s" if count != 1 else "")


def interval(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the median and its bootstrap 90% interval."""
    low, high = bootstrap_interval(values)
    return statistics.median(values), low, high


def report(times: dict[tuple[str, int], list[float]], cpu: dict[tuple[str, int], list[float]], epochs: int, short: int | None) -> list[str]:
    """The three results as a Markdown table, from each (variant, epochs)'s wall-clock and CPU
    seconds in repeat order."""
    tracked, untracked, bare = (times[name, epochs] for name in ("tracked", "untracked", "bare"))
    cpu_overhead = interval([t / u - 1 for t, u in zip(cpu["tracked", epochs], cpu["untracked", epochs], strict=True)])
    overhead = interval([t / u - 1 for t, u in zip(tracked, untracked, strict=True)])
    over_bare = interval([u / b for u, b in zip(untracked, bare, strict=True)])
    under = "yes" if overhead[2] < BAR else ("no" if overhead[1] >= BAR else "not clear (the interval spans it)")
    rows = [
        f"| (1) overhead from wandb: tracked / untracked, {n_epochs(epochs)} | {100 * overhead[0]:+.1f}% "
        f"| [{100 * overhead[1]:+.1f}%, {100 * overhead[2]:+.1f}%] |",
        f"| (1) the same in CPU seconds (the fit's process and its children, wandb's service among them) "
        f"| {100 * cpu_overhead[0]:+.1f}% | [{100 * cpu_overhead[1]:+.1f}%, {100 * cpu_overhead[2]:+.1f}%] |",
    ]
    if short is not None:
        # overhead(E) = fixed + slope * E, through the two lengths of each repeat
        tracked_short, untracked_short = times["tracked", short], times["untracked", short]
        fixed, per_epoch = [], []
        for t, u, ts, us in zip(tracked, untracked, tracked_short, untracked_short, strict=True):
            slope = ((t - u) - (ts - us)) / (epochs - short)
            fixed.append((ts - us) - slope * short)
            per_epoch.append((t - ts) / (u - us))  # tracked's seconds per epoch over untracked's
        fixed_cost, per_epoch_cost = interval(fixed), interval(per_epoch)
        rows += [
            f"| (2) fixed cost of a tracked run (start and finish) | {fixed_cost[0]:.2f} s "
            f"| [{fixed_cost[1]:.2f} s, {fixed_cost[2]:.2f} s] |",
            f"| (2) per-epoch cost: a tracked epoch / an untracked one | {per_epoch_cost[0]:.3f} "
            f"| [{per_epoch_cost[1]:.3f}, {per_epoch_cost[2]:.3f}] |",
        ]
    rows.append(f"| (3) untracked `ai-scratch fit` / bare Lightning fit, {n_epochs(epochs)} | {over_bare[0]:.3f} "
                f"| [{over_bare[1]:.3f}, {over_bare[2]:.3f}] |")  # fmt: skip
    lines = ["| measure | median | 90% interval |", "|---|---|---|", *rows, ""]
    lines.append(f"overhead from wandb: {100 * overhead[0]:.1f}% [{100 * overhead[1]:.1f}, {100 * overhead[2]:.1f}]; "
                 f"under the {BAR:.0%} bar: {under}")  # fmt: skip
    lengths = [epochs] + ([short] if short is not None else [])
    lines += ["", "| fit (median seconds) | " + " | ".join(n_epochs(e) for e in lengths) + " |",
              "|---|" + "---|" * len(lengths)]  # fmt: skip
    for name in ("bare", "untracked", "tracked"):
        cells = [f"{statistics.median(times[name, e]):.1f} s" if (name, e) in times else "-" for e in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def versions() -> str:
    packages = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("torch", "lightning", "wandb"))
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (f"measured {datetime.date.today().isoformat()}, commit {commit or 'unknown'}, Python {platform.python_version()}, "
            f"{packages}; {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="the full length (default: the config's max_epochs)")
    parser.add_argument("--short-epochs", type=int, default=2, help="the short length, for the fixed and per-epoch costs")
    parser.add_argument("--bare-fit", type=int, metavar="EPOCHS", help=argparse.SUPPRESS)  # the bare variant's process
    options = parser.parse_args(argv)
    if options.bare_fit is not None:
        bare_fit(options.bare_fit)
        return
    epochs = options.epochs or yaml.safe_load(CONFIG.read_text())["trainer"]["max_epochs"]
    if options.repeats < 1 or options.short_epochs < 1 or epochs < 1:
        parser.error("--repeats, --epochs and --short-epochs must be at least 1")
    short = options.short_epochs if options.short_epochs < epochs else None  # (2) needs two lengths
    runs = [("untracked", epochs), ("tracked", epochs), ("bare", epochs)]
    runs += [("untracked", short), ("tracked", short)] if short is not None else []

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))
        for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            env[name] = str(workdir / name.lower())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        print("warm-up: one tracked 1-epoch fit (not timed)", flush=True)
        timed("tracked", 1, workdir, env)
        times: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
        cpu: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
        for repeat in range(options.repeats):
            for variant, length in runs if repeat % 2 == 0 else runs[::-1]:
                seconds, cpu_seconds = timed(variant, length, workdir, env)
                times[variant, length].append(seconds)
                cpu[variant, length].append(cpu_seconds)
                print(f"repeat {repeat + 1}: {variant:<9} {n_epochs(length):>10} {seconds:7.2f} s, CPU {cpu_seconds:7.2f} s", flush=True)

    print(f"\n`python benchmarks/tracking_overhead.py --repeats {options.repeats} --epochs {epochs} --short-epochs {options.short_epochs}`")
    print("(LeNet-5, configs/lenet5/mnist.yaml; every fit a fresh process)\n")
    print("\n".join(report(times, cpu, epochs, short)))
    if short is None:
        print(f"(2) needs --short-epochs below --epochs ({epochs}); not measured")
    print(f"\n{versions()}")


if __name__ == "__main__":
    main()
