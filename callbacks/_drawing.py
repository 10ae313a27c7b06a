"""A second process that draws figures beside the callbacks' own, so that the end of a fit uses both
cores of a small machine instead of one.

matplotlib holds the GIL while it builds and draws a figure, so a thread cannot share the work; a
fresh interpreter would need a second or more to import NumPy, matplotlib and Pillow. So the
process is forked from the fit's own when the figure callbacks are set up, before training: it
starts with everything imported, draws one small figure to load its fonts, and then waits (no CPU)
until figures come. Fork costs the fit some 25 ms, and the pages the fit writes while the child
lives are copied once (about 45 MB, 0.1 s of system time, over a LeNet-5 fit).

Figures travel as *recipes*: a picklable call that returns a :class:`~matplotlib.figure.Figure`
(``functools.partial(plots.learning_curves, history, title=...)``). Queued recipes are shared out:
the child takes them from the front of the queue, one at a time, as soon as it is free; the
callbacks' process, when it waits for its figures, draws from the back. The child writes the PNG
itself and answers with its path. If it fails, or dies, the figure is drawn in the callbacks'
process instead (with one warning), so nothing is lost.

Only on Linux (fork is the platform's own way to start a worker, as torch's DataLoader does; on
macOS a forked child may crash in system libraries, Windows has none) and in the process of global
rank zero, the only one that draws. The child touches neither torch nor wandb, never prints, and
leaves with ``os._exit`` (no atexit handlers: it must not finish the parent's wandb run). It draws
with the matplotlib settings of the moment it was forked. ``use_drawing_process(False)`` turns it
off: every figure is then drawn in the callbacks' own process.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from callbacks import plots
from callbacks._wandb import warn_once

Recipe = Callable[[], Figure]
_enabled = True


def use_drawing_process(enabled: bool = True) -> None:
    """Whether figure callbacks may hand figures to a second process (default: yes, on Linux)."""
    global _enabled
    _enabled = enabled
    if not enabled:
        SCHEDULER.stop()


def available() -> bool:
    return _enabled and sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def draw_and_write(recipe: Recipe, path: Path) -> Path:
    """Build the figure, draw it and write its PNG (in the child, in matplotlib's house style)."""
    with rc_context(plots.RC):
        figure = recipe()
    return plots.write_png(plots.render(figure), path)


def _serve(connection: Connection) -> None:
    """The child: draw each recipe that comes, answer ("ok", path) or ("error", text); stop at None."""
    logging.disable(logging.CRITICAL)  # the parent's handlers (and wandb's console capture) are not ours
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the fit's handlers (Lightning's among them)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the fit, which then closes the pipe
    try:
        warm_up = Figure(figsize=(1, 1))  # load the fonts (a fork clears matplotlib's cache of them)
        warm_up.text(0.5, 0.5, "0.123456789", fontsize=plots.TICK_SIZE)
        plots.render(warm_up, dpi=10)
        while True:
            job = connection.recv()
            if job is None:
                break
            recipe, path = job
            try:
                answer = ("ok", str(draw_and_write(recipe, Path(path))))
            except BaseException:  # noqa: BLE001  (told to the parent, which draws it itself)
                answer = ("error", traceback.format_exc(limit=4))
            connection.send(answer)
    except (EOFError, OSError, KeyboardInterrupt):  # the parent has gone
        pass
    finally:
        connection.close()
        os._exit(0)  # no atexit handlers: they are the parent's (wandb's among them)


class _Job:
    def __init__(self, recipe: Recipe, path: Path, then: Callable[[Path], Any] | None) -> None:
        self.recipe, self.path, self.then = recipe, path, then
        self.done: Future = Future()  # resolves to then(PNG's path), or to the error of drawing it here

    def written(self, path: Path) -> None:
        """The PNG is at ``path``: resolve with ``then(path)`` (in the writer thread)."""
        try:
            self.done.set_result(self.then(path) if self.then is not None else path)
        except Exception as error:  # noqa: BLE001  (raised where the callback waits for it)
            self.done.set_exception(error)


@functools.cache
def writer() -> ThreadPoolExecutor:
    """One thread, shared by every figure callback, that encodes and writes the PNGs of the figures
    drawn in the callbacks' process (and opens them as ``wandb.Image`` s) while that process draws
    the next: Pillow and zlib release the GIL while they work, so the two overlap. Figures of a
    LeNet-5 fit: a tenth less time."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="figure-writer")


class Scheduler:
    """The queue of recipes, shared by the child (front) and the callbacks' process (back).

    A feeder thread hands the child the front of the queue as soon as it is free, and waits for its
    answer (the wait releases the GIL), so that the child never idles while this process draws.
    The PNGs of the figures drawn in this process are encoded by the :func:`writer` thread."""

    #: seconds to wait for the child's figure before it is given up for stuck
    timeout = 120.0

    def __init__(self) -> None:
        self._process: Any = None
        self._connection: Connection | None = None
        self._feeder: threading.Thread | None = None
        self._queue: deque[_Job] = deque()
        self._returned: list[_Job] = []  # what the child gave back: for this process only
        self._in_child: _Job | None = None
        self._stopping = False
        self._changed = threading.Condition()  # guards the queue, _in_child and _stopping
        self.drawn = {"child": 0, "here": 0}  # figures written by each process
        self.taken = 0  # figures the child has taken from the queue (drawn or not)

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        """Fork the child, if it may and none runs (idempotent)."""
        if self.running or not available():
            return
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        try:
            process = context.Process(target=_serve, args=(theirs,), name="figure-drawing", daemon=True)
            process.start()
        except OSError as error:  # no memory for the fork, too many processes: draw here
            warn_once(f"figures: no drawing process ({error}); every figure is drawn in this one")
            ours.close()
            return
        finally:
            theirs.close()
        self._process, self._connection, self._stopping = process, ours, False
        self._feeder = threading.Thread(target=self._feed, args=(process, ours), name="figure-feeder", daemon=True)
        self._feeder.start()

    def submit(self, recipe: Recipe, path: Path, then: Callable[[Path], Any] | None = None) -> Future:
        """Queue a figure; the future resolves to the PNG's path once someone has drawn it, or to
        ``then(path)``, called in the :func:`writer` thread, so that reading the PNG back (a
        ``wandb.Image``) overlaps with the drawing of the rest."""
        job = _Job(recipe, path, then)
        with self._changed:
            self._queue.append(job)
            self._changed.notify_all()
        return job.done

    def drain(self) -> None:
        """Draw until every queued figure is written: the child from the front, this process from
        the back, until the queue is empty; then wait for the child's last one."""
        while True:
            with self._changed:
                while not self._queue and not self._returned and self._in_child is not None:
                    self._changed.wait()
                if not self._queue and not self._returned:
                    return
                job = self._returned.pop() if self._returned else self._queue.pop()
            self._draw_here(job)

    def stop(self) -> None:
        """Draw what is queued, then end the child and its feeder."""
        if not self.running:
            return
        self.drain()
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._feeder is not None:
            self._feeder.join()
        process, connection = self._process, self._connection
        self._process = self._connection = self._feeder = None
        try:
            connection.send(None)  # the child's signal to leave
        except OSError:
            pass
        connection.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()

    # ------------------------------------------------------------------ internals
    def _feed(self, process: Any, connection: Connection) -> None:
        """The feeder thread: front of the queue to the child, its answer back, until stopped."""
        while True:
            with self._changed:
                while not self._queue and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                job = self._in_child = self._queue.popleft()
                self.taken += 1
            try:
                connection.send((job.recipe, str(job.path)))
                if not connection.poll(self.timeout):
                    raise TimeoutError(f"no answer in {self.timeout:.0f} s")
                status, detail = connection.recv()
            except Exception as error:  # noqa: BLE001  (a recipe that does not pickle, a dead or stuck child)
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                self._give_back(job, f"the drawing process is gone ({reason}); the rest are drawn in this one")
                process.kill()
                return
            if status == "ok":
                self.drawn["child"] += 1
                writer().submit(job.written, Path(detail))  # not here: the child's next figure first
                with self._changed:
                    self._in_child = None
                    self._changed.notify_all()
            else:
                warn_once(f"figures: the drawing process failed on {job.path.name}; drawn here instead:\n{detail}")
                self._give_back(job)

    def _give_back(self, job: _Job, stopped: str | None = None) -> None:
        """Hand the child's job to this process, which draws it when it drains; ``stopped``
        says why the child will take no more (then every queued figure is drawn here)."""
        if stopped is not None:
            warn_once(f"figures: {stopped}")
        with self._changed:
            self._returned.append(job)
            self._in_child = None
            if stopped is not None:
                self._stopping = True
            self._changed.notify_all()

    def _draw_here(self, job: _Job) -> None:
        """matplotlib here; the PNG's encoding (and ``then``) in the writer thread."""
        try:
            with rc_context(plots.RC):
                pixels = plots.render(job.recipe())
            writer().submit(_write, job, pixels)
        except Exception as error:  # noqa: BLE001  (raised where the callback waits for it)
            job.done.set_exception(error)
            return
        self.drawn["here"] += 1


def _write(job: _Job, pixels: Any) -> None:
    """In the writer thread: the PNG of a figure drawn in the callbacks' process."""
    try:
        path = plots.write_png(pixels, job.path)
    except Exception as error:  # noqa: BLE001  (a full disk: raised where the callback waits for it)
        job.done.set_exception(error)
        return
    job.written(path)


SCHEDULER = Scheduler()
