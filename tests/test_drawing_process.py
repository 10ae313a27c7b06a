"""The drawing process (callbacks/_drawing.py): figures drawn in a forked child are the figures the
callbacks' process would draw, a failure or death of the child loses none, and no child outlives
the fit. Real forks, real matplotlib, real Lightning fits."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import plots
from callbacks._drawing import Scheduler, use_drawing_process
from callbacks.figures import ConfusionMatrix, GradientFlow, LearningCurves

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the drawing process forks: Linux only")


def confusion_recipe(seed: int = 0) -> functools.partial:
    rng = np.random.default_rng(seed)
    matrix = np.diag(rng.integers(30, 50, 4)) + rng.integers(0, 4, (4, 4))
    return functools.partial(plots.confusion_matrix, matrix, ["a", "b", "c", "d"], title=f"Confusion {seed}")


def fails_in_a_child() -> plots.Figure:
    """A recipe that cannot be drawn in a forked child, only in the process that queued it."""
    if multiprocessing.parent_process() is not None:
        raise RuntimeError("not in this process")
    return confusion_recipe(1)()


def sleeps_then_draws(seconds: float) -> plots.Figure:
    """A recipe that keeps the child busy for ``seconds`` (drawn here, it does not wait)."""
    if multiprocessing.parent_process() is not None:
        time.sleep(seconds)
    return confusion_recipe(2)()


def taken(scheduler: Scheduler, count: int) -> None:
    """Wait until the child has taken ``count`` figures from the queue (its feeder is a thread)."""
    deadline = time.monotonic() + 30
    while scheduler.taken < count:
        assert time.monotonic() < deadline, "the child took no figure"
        time.sleep(0.005)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.fixture
def scheduler():
    scheduler = Scheduler()
    scheduler.start()
    assert scheduler.running
    yield scheduler
    scheduler.stop()
    assert not scheduler.running


def test_a_figure_drawn_by_the_child_is_the_figure_drawn_here(scheduler: Scheduler, tmp_path: Path) -> None:
    # the first job goes to the child at once; the second, queued behind it, is the one drawn here
    in_child = scheduler.submit(confusion_recipe(), tmp_path / "child.png")
    taken(scheduler, 1)
    here = scheduler.submit(confusion_recipe(), tmp_path / "here.png")
    scheduler.drain()
    assert scheduler.drawn == {"child": 1, "here": 1}
    assert in_child.result() == tmp_path / "child.png" and here.result() == tmp_path / "here.png"
    assert np.array_equal(pixels(tmp_path / "child.png"), pixels(tmp_path / "here.png"))


def test_then_reads_the_png_in_the_writer_thread(scheduler: Scheduler, tmp_path: Path) -> None:
    """``then`` (how a callback opens its wandb.Image) runs on the written PNG in the writer
    thread, whoever drew it, not in the one that drains; an error there is the future's."""
    import threading

    def read(path: Path) -> tuple[str, tuple[int, int], str]:
        return path.name, Image.open(path).size, threading.current_thread().name

    def broken(path: Path) -> None:
        raise OSError(f"cannot read {path.name}")

    in_child = scheduler.submit(confusion_recipe(), tmp_path / "child.png", then=read)
    taken(scheduler, 1)
    here = scheduler.submit(confusion_recipe(), tmp_path / "here.png", then=read)
    failing = scheduler.submit(confusion_recipe(1), tmp_path / "failing.png", then=broken)
    scheduler.drain()
    (child_name, child_size, child_thread), (here_name, here_size, here_thread) = in_child.result(), here.result()
    assert (child_name, here_name) == ("child.png", "here.png") and child_size == here_size
    assert child_thread.startswith("figure-writer") and here_thread.startswith("figure-writer")
    with pytest.raises(OSError, match="cannot read failing.png"):
        failing.result()
    assert (tmp_path / "failing.png").is_file()  # the figure was written; only reading it back failed


def waits_for(paths: list[Path]) -> plots.Figure:
    """A recipe that draws only once the figures at ``paths`` are on disk."""
    deadline = time.monotonic() + 60
    while not all(path.is_file() for path in paths) and time.monotonic() < deadline:
        time.sleep(0.01)
    return confusion_recipe(3)()


def test_the_child_takes_the_front_of_the_queue_and_this_process_the_back(scheduler: Scheduler, tmp_path: Path) -> None:
    others = [tmp_path / f"{i}.png" for i in range(3)]
    # the child's figure waits for the other three: only this process can draw them
    futures = [scheduler.submit(functools.partial(waits_for, others), tmp_path / "first.png")]
    taken(scheduler, 1)
    futures += [scheduler.submit(confusion_recipe(i), path) for i, path in enumerate(others)]
    scheduler.drain()
    assert [future.result() for future in futures] == [tmp_path / "first.png", *others]
    assert scheduler.drawn == {"child": 1, "here": 3}


def test_a_figure_the_child_cannot_draw_is_drawn_here_with_one_warning(scheduler: Scheduler, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="the drawing process failed on odd.png; drawn here instead"):
        future = scheduler.submit(fails_in_a_child, tmp_path / "odd.png")
        taken(scheduler, 1)
        scheduler.drain()
    assert future.result() == tmp_path / "odd.png" and (tmp_path / "odd.png").stat().st_size > 5_000
    assert scheduler.drawn == {"child": 0, "here": 1}
    # the child is still there for the next one
    later = scheduler.submit(confusion_recipe(), tmp_path / "later.png")
    taken(scheduler, 2)
    scheduler.drain()
    assert later.result().is_file() and scheduler.drawn["child"] == 1


def test_when_the_child_dies_every_figure_is_drawn_here(scheduler: Scheduler, tmp_path: Path) -> None:
    first = scheduler.submit(functools.partial(sleeps_then_draws, 5.0), tmp_path / "interrupted.png")
    taken(scheduler, 1)
    rest = [scheduler.submit(confusion_recipe(i), tmp_path / f"{i}.png") for i in range(2)]
    os.kill(scheduler._process.pid, signal.SIGKILL)  # while it draws the first
    with pytest.warns(UserWarning, match="the drawing process is gone"):
        scheduler.drain()
    assert first.result().is_file() and all(future.result().is_file() for future in rest)
    assert scheduler.drawn == {"child": 0, "here": 3}


def test_a_figure_that_fails_everywhere_raises_where_it_is_waited_for(scheduler: Scheduler, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the child's failure, told once
        future = scheduler.submit(functools.partial(plots.confusion_matrix, np.zeros((2, 3))), tmp_path / "bad.png")
        taken(scheduler, 1)
        scheduler.drain()
    with pytest.raises(ValueError, match="must be square"):
        future.result()


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_with_figures(root: Path) -> list[Path]:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=generator), torch.randint(0, 3, (64,), generator=generator)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    figures = [LearningCurves(), ConfusionMatrix(), GradientFlow(every_n_steps=1)]
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root, callbacks=figures)
    trainer.fit(Tiny(), loader, loader)
    return [path for figure in figures for path in figure.saved]


def test_a_fit_shares_its_figures_with_a_child_that_ends_with_the_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callbacks import _drawing

    scheduler = Scheduler()
    monkeypatch.setattr(_drawing, "SCHEDULER", scheduler)
    monkeypatch.setattr("callbacks.figures.SCHEDULER", scheduler)
    paths = fit_with_figures(tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png", "confusion_matrix.png", "gradient_flow.png"]
    assert all(p.stat().st_size > 5_000 for p in paths)
    assert scheduler.drawn["child"] >= 1 and sum(scheduler.drawn.values()) == 3
    assert not scheduler.running and multiprocessing.active_children() == []


def test_without_the_drawing_process_a_fit_draws_every_figure_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callbacks import _drawing

    scheduler = Scheduler()
    monkeypatch.setattr(_drawing, "SCHEDULER", scheduler)
    monkeypatch.setattr("callbacks.figures.SCHEDULER", scheduler)
    use_drawing_process(False)
    try:
        paths = fit_with_figures(tmp_path)
    finally:
        use_drawing_process(True)
    assert all(p.stat().st_size > 5_000 for p in paths)
    assert scheduler.drawn == {"child": 0, "here": 3}
