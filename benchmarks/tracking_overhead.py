"""Cost of tracking: LeNet-5 `fit` with `--wandb` (offline, every callback at its default) against
the same fit with no logger and no callbacks, alternating, and the ratio.

    python benchmarks/tracking_overhead.py --repeats 5 --variants baseline tracked   # fresh processes
    python benchmarks/tracking_overhead.py --in-process --repeats 5 --variants baseline tracked
    git worktree add /tmp/before <commit>
    python benchmarks/tracking_overhead.py --repeats 4 --variants baseline tracked --against /tmp/before

Both runs train the same network on the same data (configs/lenet5/mnist.yaml, seeded) through the
same `ai-scratch fit` code path. The tracked run adds: the CSV logger and the WandbLogger, the
gradient histograms (callbacks.WandbWatch), checkpoints (best and latest) and their artifacts, the
run metadata, and the figures (learning curves, confusion matrix, gradient flow, filters and
feature maps). Neither run draws a progress bar or checks the claim (the claim's test pass is not
tracking). A third variant, tracked without figures, separates wandb's own cost from matplotlib's.
The planning document's bar is an overhead under 5%.

Two ways to run them:

* Fresh processes (the default): every fit is a new `ai-scratch fit` process, as a user runs it,
  and its time is the whole process, from the interpreter's start to its exit. So the tracked run
  also pays what it pays once per process: importing wandb, starting wandb's service, and the
  imports wandb makes inside `wandb.init`. The variant "tracked, wandb imported late" is the
  tracked run without the console's early import of wandb (ai_scratch/entry.py); the CLI still
  makes wandb's run start cheaper there (ai_scratch/wandb_startup.py), before its logger starts it.
* In one process (`--in-process`): every fit is a call of the CLI in this process, after a
  warm-up fit; what a process pays once is paid in the warm-up, so this isolates what tracking
  costs per fit in steady state.

`--against DIR` (fresh processes) adds the tracked fit of another checkout of this project (say, a
`git worktree` of an older commit) to every repeat, so that a change is measured against what was
there before in the same run: the script prints the paired ratio of their tracking times.

On a shared machine one repeat of the same fit varies by several seconds (10-20% here, with no
steal time: the same work simply runs slower for a while), more than the effect. Two estimates:

* End to end. Each repeat runs every variant back to back, so the ratio of a repeat's tracked time
  to the same repeat's baseline (a paired ratio) cancels the slow drifts of the machine; the script
  prints the median of the paired ratios and a bootstrap 90% interval for it (2,000 resamples,
  seeded). Drifts faster than one fit still widen it.
* Direct accounting. Inside each tracked run, the time spent in the tracking code, by component:
  the hooks of the tracking callbacks (figures, checkpoints, checkpoint artifacts, gradient
  histograms, run metadata, model summary), the loggers, wandb.init and the run's finish, and (in
  fresh processes) the import of wandb: of the modules it loads, those that the untracked fit does
  not import as well (NumPy, asyncio, email ... it does; the child imports them before the clock
  starts, so that the run's rest pays for them, as it does untracked). Its ratio to the rest of
  the same run is the overhead, and a slow spell slows both alike. In fresh processes it also
  charges the process's exit, outside every hook: the seconds from the fit's return to the
  process's end (wandb's atexit handlers and its service stopping), beyond those of the untracked
  process of the same repeat. Each process ends as the console script ends it, after its exit
  handlers and without the interpreter's teardown (ai_scratch.entry; a checkout from before that
  tears down as it did): about 0.1 s untracked and 0.15 s tracked, where the teardown made it
  0.25 and 0.5 s, a difference of two noisy times. It leaves out what the clock cannot
  be put around: Lightning calling the extra callbacks (under 10 µs per batch once their unused
  batch hooks are skipped, see callbacks/dispatch.py) and any effect on the training itself
  (caches, memory, wandb's service using some 0.3 s of CPU over a 20-epoch fit). With py-spy, the
  sampled difference between the two variants matched the accounted time within a few tenths of
  a second (in one process).

Each fit stands for one `ai-scratch fit` process: as the console command does, the objects alive
when the run starts are frozen out of the garbage collector (in one process, after the clock
stops they are thawed and collected, as that process's exit would).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _stats import bootstrap_interval  # noqa: E402  (benchmarks/, the script's own folder)


VARIANTS = {
    "baseline": ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--figures", "false",
                 "--trainer.enable_model_summary", "false"],
    "tracked": ["--wandb"],
    # the same as tracked but without the PNG figures, which are drawn with or without wandb
    "wandb, no figures": ["--wandb", "--figures", "false"],
    # fresh processes only: tracked, with wandb imported where Lightning's logger first needs it
    "tracked, wandb imported late": ["--wandb"],
}  # fmt: skip


class Accounting:
    """Time spent inside the tracking code of a tracked run, by component (see the module docstring).

    Wraps, once per process, the hooks that each tracking callback class defines, the loggers'
    methods, ``wandb.init``, the run's finish and the config copy into the run. Nested calls (a
    checkpoint save that triggers the artifact callback, a figure that logs an image) count once,
    in the outermost component.
    """

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self._depth = 0

    def timed(self, component: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[component] += time.perf_counter() - start
                self._depth -= 1

        return wrapper

    def install(self) -> None:
        import wandb
        from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ModelSummary
        from lightning.pytorch.loggers import CSVLogger, WandbLogger

        from ai_scratch.cli import AIScratchCLI, SaveConfigToRun
        from callbacks import WandbCheckpointArtifacts, WandbRunMetadata, WandbWatch
        from callbacks.figures import FigureCallback

        def subclasses(cls: type) -> list[type]:
            return [cls] + [sub for child in cls.__subclasses__() for sub in subclasses(child)]

        hooks = [name for name in dir(Callback) if name.startswith("on_") or name in ("setup", "teardown")]
        components = {ModelCheckpoint: "checkpoints", WandbCheckpointArtifacts: "checkpoint artifacts",
                      WandbWatch: "watch histograms", WandbRunMetadata: "run metadata", ModelSummary: "model summary",
                      **{cls: "figures" for cls in subclasses(FigureCallback)}}  # fmt: skip
        for cls, component in components.items():
            for name in hooks:
                if name in vars(cls):  # the hooks this class itself defines
                    setattr(cls, name, self.timed(component, vars(cls)[name]))
        for cls in (CSVLogger, WandbLogger):
            for name in ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize", "after_save_checkpoint"):
                if name in vars(cls):
                    setattr(cls, name, self.timed("loggers", vars(cls)[name]))
        wandb.init = self.timed("wandb.init and finish", wandb.init)
        AIScratchCLI._finish_wandb = self.timed("wandb.init and finish", AIScratchCLI._finish_wandb)
        SaveConfigToRun.save_config = self.timed("run metadata", SaveConfigToRun.save_config)


ACCOUNTING = Accounting()
#: the component of a fresh tracked process's exit beyond the untracked process's
EXIT = "process exit (beyond untracked)"


def fit_args(variant: str, epochs: int) -> list[str]:
    return [
        "fit", "--config", str(ROOT / "configs/lenet5/mnist.yaml"), "--trainer.max_epochs", str(epochs),
        "--trainer.enable_progress_bar", "false", "--experiment.claim", "null", *VARIANTS[variant],
    ]  # fmt: skip


def run(variant: str, epochs: int, workdir: Path) -> float:
    """One fit in this process (``--in-process``): seconds."""
    from ai_scratch.cli import main

    os.chdir(workdir)
    # one console process per repeat (see the module docstring): frozen as it freezes, thawed after
    start = time.perf_counter()
    main(fit_args(variant, epochs), freeze_gc=True)
    seconds = time.perf_counter() - start
    gc.unfreeze()
    gc.collect()
    return seconds


def run_fresh(variant: str, epochs: int, workdir: Path, root: Path | None = None) -> tuple[float, Counter[str], float]:
    """One fit as a new process (the default), of this checkout or of the one at ``root``: seconds
    from its start to its exit, its accounting, and the seconds from the fit's return to the
    process's end (atexit handlers, wandb's service stopping; the interpreter's teardown in a
    checkout from before the console's exit)."""
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", variant, "--epochs", str(epochs), "--report", str(report)]
    command += ["--root", str(root)] if root is not None else []
    shared = workdir / f"shared-{'other' if root is not None else 'this'}.json"
    command += ["--shared", str(shared)] if shared.is_file() else []
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds, ended = time.perf_counter() - start, time.time()
    written = json.loads(report.read_text())
    return seconds, Counter(written["accounting"]), ended - written["returned_at"]


def modules_imported_by(code: str, root: Path | None = None) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (beyond its own start)."""
    probe = f"import sys; before = set(sys.modules); {code}; print(*sorted(set(sys.modules) - before))"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, filter(None, [root, ROOT]))))
    result = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def shared_with_the_untracked_fit(root: Path | None = None) -> list[str]:
    """The modules that ``import wandb`` loads and that an untracked fit imports as well (NumPy,
    asyncio, email ...: some 260 of wandb's 630). The early import of wandb pays for them, and the
    untracked fit pays for them too, through torch and Lightning; in the accounting they belong to
    the rest of the run, not to tracking (about 0.3 s of the import here)."""
    untracked = modules_imported_by("import ai_scratch.cli", root)
    return sorted(modules_imported_by("import wandb", root) & untracked)


def child(variant: str, epochs: int, report: Path, root: Path | None, shared: Path | None = None) -> None:
    """The process of :func:`run_fresh`: ``ai-scratch fit`` as the console script runs it (the
    early import of wandb included, except in the "imported late" variant and in a checkout from
    before it), with the accounting of a tracked run installed. ``shared`` lists the modules to
    import before the clock starts on wandb's import (see :func:`shared_with_the_untracked_fit`)."""
    warnings.filterwarnings("ignore")
    if root is not None:
        sys.path.insert(0, str(root))  # its packages before this checkout's
    # the process ends as that checkout's console script ends it (without the interpreter's
    # teardown since ai_scratch.entry._ExitWithoutTeardown), its exit handler registered first
    try:
        from ai_scratch.entry import _ExitWithoutTeardown
    except ImportError:  # an older checkout: the interpreter tears down as it did then
        leave = None
    else:
        leave = _ExitWithoutTeardown()
        atexit.register(leave)
    args = fit_args(variant, epochs)
    tracked = "--wandb" in args
    late = variant == "tracked, wandb imported late" or not ((root or ROOT) / "ai_scratch" / "entry.py").is_file()
    if late:
        import ai_scratch.cli  # noqa: F401  (torch, Lightning ... first, as before the early import)
    if tracked:
        for name in json.loads(shared.read_text()) if shared is not None else []:
            try:
                importlib.import_module(name)  # imported anyway: the rest of the run's, not the clock's below
            except Exception:  # noqa: BLE001  (a module that only imports as part of its package)
                pass
        start = time.perf_counter()
        if late:
            import wandb  # noqa: F401  (as Lightning's WandbLogger would import it)
        else:
            from ai_scratch.entry import preload_tracking

            assert preload_tracking(args), "the console's early import of wandb did not happen"
        imported = time.perf_counter() - start
    from ai_scratch.cli import main

    if tracked:
        ACCOUNTING.install()
        ACCOUNTING.seconds["import wandb"] = imported
    main(args, freeze_gc=True)
    report.write_text(json.dumps({"accounting": ACCOUNTING.seconds, "returned_at": time.time()}))
    if leave is not None:
        leave.finished(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=["baseline", "tracked", "wandb, no figures"], choices=list(VARIANTS),
                        help="which to time (baseline is always one)")
    parser.add_argument("--in-process", action="store_true", help="every fit in this process, after a warm-up fit")
    parser.add_argument("--against", type=Path, help="also the tracked fit of the checkout in this folder")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one fresh process's fit
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shared", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.epochs, options.report, options.root, options.shared)
        return
    if "baseline" not in options.variants:
        parser.error("--variants must include baseline, the denominator of every ratio")
    if options.in_process and ("tracked, wandb imported late" in options.variants or options.against):
        parser.error("'tracked, wandb imported late' and --against need fresh processes: wandb is imported once per process")
    against = options.against.resolve() if options.against else None
    if against is not None and not (against / "ai_scratch" / "cli.py").is_file():
        parser.error(f"--against {options.against}: not a checkout of this project (no ai_scratch/cli.py)")
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(workdir), WANDB_SILENT="true")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            os.environ[name] = str(workdir / name.lower())
        if options.in_process:
            run("tracked", 1, workdir)  # warm-up: imports, wandb's service, data caches, allocator
            ACCOUNTING.install()  # after the warm-up: every figure callback class is imported by now
        else:
            (workdir / "shared-this.json").write_text(json.dumps(shared_with_the_untracked_fit()))
            if against is not None:
                (workdir / "shared-other.json").write_text(json.dumps(shared_with_the_untracked_fit(against)))
            run_fresh("tracked", 1, workdir)  # warm-up: the files of every import in the page cache
        names = ["baseline"] + [name for name in options.variants if name != "baseline"]
        other = f"tracked @ {against}" if against else None
        names += [other] if other else []
        times: dict[str, list[float]] = {name: [] for name in names}
        accounts: dict[str, list[Counter[str]]] = {name: [] for name in names}
        exits: dict[str, list[float]] = {name: [] for name in names}  # fresh processes: after the fit returned
        for repeat in range(options.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]  # rotate who goes first
            for name in order:
                exit_seconds = None
                if options.in_process:
                    ACCOUNTING.seconds.clear()
                    seconds, account = run(name, options.epochs, workdir), Counter(ACCOUNTING.seconds)
                elif name == other:
                    seconds, account, exit_seconds = run_fresh("tracked", options.epochs, workdir, root=against)
                else:
                    seconds, account, exit_seconds = run_fresh(name, options.epochs, workdir)
                times[name].append(seconds)
                accounts[name].append(account)
                inside = sum(account.values())
                note = f"   (tracking code {inside:.2f} s, figures {account['figures']:.2f} s)" if name != "baseline" else ""
                if exit_seconds is not None:
                    exits[name].append(exit_seconds)
                    note += f"   exit {exit_seconds:.2f} s"
                print(f"repeat {repeat + 1}: {name:<28} {seconds:7.2f} s{note}", flush=True)
    if not options.in_process:
        charge_exits(accounts, exits)
    # Noise on a shared machine only ever adds time: the minimum is the steadiest estimate,
    # the median is shown beside it.
    print(f"\n{'in one process' if options.in_process else 'fresh processes'}, {options.epochs} epochs")
    for name in names:
        exit_note = f"   exit median {statistics.median(exits[name]):.2f} s" if exits[name] else ""
        print(f"{name:<28} min {min(times[name]):7.2f} s   median {statistics.median(times[name]):7.2f} s{exit_note}")
    for name in names[1:]:
        ratio = min(times[name]) / min(times["baseline"])
        median_ratio = statistics.median(times[name]) / statistics.median(times["baseline"])
        paired = [t / b for t, b in zip(times[name], times["baseline"], strict=True)]
        low, high = bootstrap_interval(paired)
        print(f"ratio {name} / baseline = {ratio:.3f} by min, {median_ratio:.3f} by median; paired: median"
              f" {statistics.median(paired):.3f}, 90% interval [{low:.3f}, {high:.3f}] over {len(paired)} repeats")
    for name in names[1:]:
        print_accounting(name, times[name], accounts[name])
    if other and "tracked" in names:
        inside = {name: [sum(a.values()) for a in accounts[name]] for name in ("tracked", other)}
        paired = [ours / theirs for ours, theirs in zip(inside["tracked"], inside[other], strict=True)]
        low, high = bootstrap_interval(paired)
        print(f"\ntracking code, this checkout / {against}: paired median {statistics.median(paired):.3f}, "
              f"90% interval [{low:.3f}, {high:.3f}] ({statistics.median(inside['tracked']):.2f} s against "
              f"{statistics.median(inside[other]):.2f} s)")


def charge_exits(accounts: dict[str, list[Counter[str]]], exits: dict[str, list[float]]) -> None:
    """Charge each tracked process, in its accounting, with what it paid at its exit beyond the
    untracked (baseline) process of the same repeat (wandb's atexit handlers and service; in a
    checkout from before the console's exit, more modules to tear down): tracking's cost, outside
    any hook. Paired by repeat, as they ran."""
    for name, runs in accounts.items():
        if name == "baseline":
            continue
        for account, ours, untracked in zip(runs, exits[name], exits["baseline"], strict=True):
            account[EXIT] = ours - untracked


def print_accounting(name: str, times: list[float], accounts: list[Counter[str]]) -> None:
    """The direct overhead of each repeat: time inside the tracking code over the rest of the run."""
    inside = [sum(account.values()) for account in accounts]
    overhead = [i / (t - i) for i, t in zip(inside, times, strict=True)]
    low, high = bootstrap_interval(overhead)
    print(f"\ntracking code in {name} (median over repeats; share of the rest of the run):")
    for component in sorted({c for account in accounts for c in account}, key=lambda c: -statistics.median(a[c] for a in accounts)):
        seconds = statistics.median(account[component] for account in accounts)
        share = statistics.median(account[component] / (t - i) for account, t, i in zip(accounts, times, inside, strict=True))
        print(f"  {component:<24} {seconds:6.2f} s  {100 * share:5.2f}%")
    print(f"  {'all':<24} {statistics.median(inside):6.2f} s  {100 * statistics.median(overhead):5.2f}%"
          f"   direct overhead ratio {1 + statistics.median(overhead):.3f}, 90% interval [{1 + low:.3f}, {1 + high:.3f}]")


if __name__ == "__main__":
    main()
