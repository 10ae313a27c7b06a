"""The figures of the Hopfield network (:mod:`ai_scratch.foundations.hopfield`): recall, energy,
capacity and spurious states.

Drawing functions take NumPy arrays and return a matplotlib ``Figure`` (usable without a Trainer):
:func:`recall_figure`, :func:`energy_figure`, :func:`capacity_figure`, :func:`spurious_figure`.
The callbacks draw them from a trained :class:`~ai_scratch.foundations.hopfield.Hopfield` and its
validation cues at the end of training: :class:`HopfieldRecall` (``hopfield_recall.png``),
:class:`HopfieldEnergy` (``hopfield_energy.png``), :class:`HopfieldCapacity`
(``hopfield_capacity.png``) and :class:`HopfieldSpuriousState` (``hopfield_spurious_state.png``).
:meth:`Hopfield.figures <ai_scratch.foundations.hopfield.Hopfield.figures>` names them.
"""

from __future__ import annotations

import textwrap
from abc import abstractmethod
from typing import Any

import lightning as L
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ai_scratch.foundations.hopfield import (
    CAPACITY,
    RECALL_THRESHOLD,
    HopfieldLearner,
    capacity_sweep,
    mixture_state,
    overlap,
)
from ai_scratch.numpy_adapter import as_array
from callbacks import plots
from callbacks.batches import validation_batches
from callbacks.figures import FigureCallback
from datamodules.patterns import grid_shape

_INK, _PAPER, _WRONG = np.array([0.12, 0.12, 0.12]), np.array([1.0, 1.0, 1.0]), np.array([0.86, 0.16, 0.16])
_GOOD, _BAD = "#1a7f37", "#c62828"


def _tile(state: np.ndarray, shape: tuple[int, int], reference: np.ndarray | None = None) -> np.ndarray:
    """A state as an RGB image: +1 dark, -1 white, and red where it differs from ``reference``."""
    state = np.asarray(state).reshape(shape)
    rgb = np.where(state[..., None] > 0, _INK, _PAPER)
    if reference is not None:
        rgb[np.asarray(reference).reshape(shape) != state] = _WRONG
    return rgb


def _mosaic_figure(
    tiles: list[list[np.ndarray]], title: str, note: str, left: int = 14, top: int = 9, below: int = 5, gap: int = 3
):
    """A figure of tiles laid out in one axes (a single ``imshow``, not an axes per tile), with
    ``left``, ``top`` and ``below`` pixels of room for row labels, column heads and a line under
    each tile; a suptitle above and a grey note below (constrained layout makes room for both).

    Returns ``(fig, ax, corner)``, ``corner(row, col) -> (x0, y0)``: a tile's top-left corner in
    data (pixel) units, y pointing down.
    """
    rows, cols = len(tiles), max(len(r) for r in tiles)
    h, w = tiles[0][0].shape[:2]
    height = top + rows * (h + below) + (rows - 1) * gap
    width = left + cols * w + (cols - 1) * gap + 1  # + 1: room for the last frame

    def corner(r: int, c: int) -> tuple[int, int]:
        return left + c * (w + gap), top + r * (h + below + gap)

    canvas = np.ones((height, width, 3))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            x0, y0 = corner(r, c)
            canvas[y0 : y0 + h, x0 : x0 + w] = tile
    inch = 0.085 * 10 / max(h, w, 10)  # inches per pixel: a 10x10 tile is 0.85 inch across
    fig_w = max(width * inch + 0.3, 6.0)
    note = _wrap(note, fig_w)
    # the mosaic's own height, and room for the title above and the note's lines below
    fig_h = height * inch + 0.6 + 0.16 * (note.count("\n") + 1)
    fig = plots.new_figure(fig_w, fig_h)
    ax = fig.add_subplot()
    ax.imshow(canvas, interpolation="nearest", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    frames = [Rectangle((corner(r, c)[0] - 0.5, corner(r, c)[1] - 0.5), w, h) for r, row in enumerate(tiles) for c in range(len(row))]
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor="0.45", linewidth=0.7))
    ax.set_axis_off()
    fig.suptitle(title, fontsize=plots.SUPTITLE_SIZE)
    plots.add_note(fig, [note])
    return fig, ax, corner


def _wrap(note: str, width_in: float) -> str:
    """Wrap each paragraph of a note to the figure's width (about 0.56 em per character)."""
    chars = max(40, int(width_in * 72 / (0.56 * plots.NOTE_SIZE)))
    return "\n".join(textwrap.fill(line, chars) for line in note.split("\n"))


def recall_figure(
    patterns: np.ndarray,
    snapshots: np.ndarray,
    snapshot_every: int,
    shape: tuple[int, int],
    threshold: float = RECALL_THRESHOLD,
    title: str = "Recall from corrupted cues",
    max_steps: int = 6,
) -> Figure:
    """Stored pattern, corrupted cue, and the state every ``snapshot_every`` updates, row by row.

    Args:
        patterns: ``(R, N)`` the stored pattern of each row.
        snapshots: ``(1 + K, R, N)`` the cue, then the states after every ``snapshot_every``
            updates (as :meth:`HopfieldLearner.recall` records them).
        snapshot_every: updates between two snapshots.
        shape: how to fold N units into an image.
        threshold: the overlap at which a cue counts as recalled (its label turns green).
        title: the suptitle.
        max_steps: at most this many columns after the cue (the last is always the end).

    Columns stop at the first snapshot where every row has reached its final state. Red marks
    every bit that differs from the stored pattern.
    """
    patterns = np.asarray(patterns)
    rows, n = patterns.shape
    final = snapshots[-1]
    done = [next(k for k in range(len(snapshots)) if np.array_equal(snapshots[k, r], final[r])) for r in range(rows)]
    last = min(max(max(done), 1), len(snapshots) - 1)
    steps = list(range(1, last + 1))
    if len(steps) > max_steps:  # keep the first ones and the end
        steps = steps[: max_steps - 1] + [last]
    heads = ["stored\npattern", "corrupted\ncue"]
    for step in steps:
        updates = step * snapshot_every
        heads.append(f"after {updates}\nupdates" if updates < n else f"after {updates / n:g}\nsweep{'s' if updates > n else ''}")
    heads[-1] += " (end)"
    tiles, overlaps = [], []
    for r in range(rows):
        tiles.append([_tile(patterns[r], shape)] + [_tile(snapshots[k, r], shape, patterns[r]) for k in [0, *steps]])
        overlaps.append(overlap(snapshots[[0, *steps], r], np.repeat(patterns[r][None], len(steps) + 1, axis=0)))
    note = (
        "black = +1, white = -1, red = a bit that differs from the stored pattern; m = overlap with the stored pattern "
        f"(recalled when m >= {threshold:g}).\nAsynchronous recall: one unit at a time, in a random order, takes the sign "
        "of its input; one sweep = N updates; it ends when a sweep changes nothing."
    )
    fig, ax, corner = _mosaic_figure(tiles, title, note, left=16, top=7)
    h, w = shape
    for c, head in enumerate(heads):
        x0, y0 = corner(0, c)
        ax.text(x0 + w / 2, y0 - 1.0, head, ha="center", va="bottom", fontsize=plots.TICK_SIZE)
    for r in range(rows):
        x0, y0 = corner(r, 0)
        ax.text(x0 - 1.5, y0 + h / 2, f"memory {r + 1}", ha="right", va="center", fontsize=plots.LABEL_SIZE)
        for c, m in enumerate(overlaps[r]):
            x, y = corner(r, c + 1)
            end = c == len(overlaps[r]) - 1
            color = _GOOD if m >= threshold else (_BAD if end else "0.25")
            ax.text(x + w / 2, y + h + 0.5, f"m = {m:.2f}", ha="center", va="top", fontsize=plots.TICK_SIZE, color=color,
                    fontweight="bold" if end else "normal")
    return fig


def energy_figure(
    energies: np.ndarray,
    n_units: int,
    stored_energy: float | None = None,
    recalled: np.ndarray | None = None,
    title: str = "Energy during asynchronous recall",
) -> Figure:
    """The energy ``E = -1/2 s^T W s`` after every single-unit update, one line per cue.

    Args:
        energies: ``(B, 1 + updates)`` as :meth:`HopfieldLearner.recall` records them.
        n_units: N, to mark the sweeps (every N updates).
        stored_energy: the mean energy of the stored patterns, drawn as a dashed line.
        recalled: ``(B,)`` bool, whether each cue ended at its pattern (green) or not (red).
        title: the suptitle.
    """
    energies = np.asarray(energies, dtype=float)
    # stop one sweep after the last change: that sweep is what shows the state is a fixed point
    changes = np.flatnonzero(np.any(np.diff(energies, axis=1) != 0, axis=0))
    last_change = int(changes[-1]) + 1 if changes.size else 0
    end = min(energies.shape[1] - 1, (last_change // n_units + 1) * n_units)
    steps = np.arange(end + 1)
    rise = float(np.max(np.diff(energies[:, : end + 1], axis=1), initial=0.0))
    fig = plots.new_figure(8.5, 5.2)
    ax = fig.add_subplot()
    plots.style_axes(ax, None, f"single-unit updates (one sweep = N = {n_units} updates)", "energy  E = -½ sᵀ W s")
    for sweep in range(n_units, end + 1, n_units):
        ax.axvline(sweep, color="0.6", linestyle=":", linewidth=1.0)
        ax.text(sweep, 1.0, f" sweep {sweep // n_units} ", transform=ax.get_xaxis_transform(), ha="right", va="bottom",
                fontsize=plots.TICK_SIZE, color="0.4")
    for b, line in enumerate(energies[:, : end + 1]):
        color = "C0" if recalled is None else (_GOOD if recalled[b] else _BAD)
        ax.plot(steps, line, color=color, linewidth=1.4, alpha=0.85, drawstyle="steps-post")
    handles = []
    if recalled is not None:
        recalled = np.asarray(recalled, dtype=bool)
        if recalled.any():
            handles.append(Line2D([], [], color=_GOOD, label="cue that ends at its stored pattern"))
        if not recalled.all():
            handles.append(Line2D([], [], color=_BAD, label="cue that ends elsewhere (a spurious minimum)"))
    if stored_energy is not None:
        ax.axhline(stored_energy, color="0.25", linestyle="--", linewidth=1.2, label="mean energy of the stored patterns")
    ax.set_xlim(0, max(end, 1))
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=plots.LEGEND_SIZE, loc="upper right")
    fig.suptitle(title, fontsize=plots.SUPTITLE_SIZE)
    verdict = "no rise in these runs" if rise <= 1e-9 else f"largest rise here {rise:.3g}"
    note = (
        f"{len(energies)} validation cues. A unit flips only when its state disagrees with the sign of its input h_i, "
        f"and the flip changes E by -2|h_i| < 0: E never rises ({verdict}), so recall must stop, at a minimum of E."
    )
    plots.add_note(fig, [_wrap(note, 8.5)])
    return fig


def capacity_figure(
    sweep: dict[str, np.ndarray],
    n_units: int,
    flip_fraction: float,
    run: tuple[float, float] | None = None,
    threshold: float = RECALL_THRESHOLD,
    title: str = "Capacity: recall against the number of stored patterns",
) -> Figure:
    """Recall against the load ``P/N``, from :func:`capacity_sweep`, with the theory's 0.138 marked.

    Args:
        sweep: what :func:`capacity_sweep` returns.
        n_units: N of the sweep.
        flip_fraction: the cues' share of flipped bits.
        run: ``(load, recall accuracy)`` of the run itself, drawn as a star.
        threshold: the recall criterion, for the legend.
        title: the suptitle.
    """
    loads = sweep["loads"]
    seeds = sweep["recall_accuracy"].shape[1]
    fig = plots.new_figure(8.5, 5.2)
    ax = fig.add_subplot()
    plots.style_axes(ax, None, "load  α = P / N  (patterns stored per unit)", f"after recall from cues with {flip_fraction:.0%} of bits flipped")
    for key, color, label in (
        ("recall_accuracy", "C0", f"fraction of cues recalled (overlap ≥ {threshold:g})"),
        ("overlap", "C1", "mean overlap m with the stored pattern"),
    ):
        values = sweep[key]
        ax.fill_between(loads, values.min(axis=1), values.max(axis=1), color=color, alpha=0.18, linewidth=0)
        ax.plot(loads, values.mean(axis=1), color=color, marker="o", markersize=4, linewidth=1.8, label=label)
    ax.axvline(CAPACITY, color="0.2", linestyle="--", linewidth=1.2,
               label="α = 0.138: the capacity for large N\n(Amit, Gutfreund and Sompolinsky, 1985)")
    if run is not None:
        ax.plot([run[0]], [run[1]], marker="*", markersize=16, color="C3", linestyle="none", markeredgecolor="k",
                label=f"this run: P/N = {run[0]:.2f}, recalled {run[1]:.2f}")
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlim(0, max(loads.max(), run[0] if run else 0) + 0.01)
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left")
    fig.suptitle(title, fontsize=plots.SUPTITLE_SIZE)
    note = (
        f"N = {n_units} units, fresh random patterns; each point is the mean of {seeds} pattern sets (band: lowest to "
        "highest). Each pattern's input at a unit carries crosstalk from the others, noise that grows with P/N; in a "
        "network this small the collapse is spread around 0.14 to 0.2, and it sharpens towards 0.138 as N grows."
    )
    plots.add_note(fig, [_wrap(note, 8.5)])
    return fig


def spurious_figure(learner: HopfieldLearner, patterns: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                    title: str = "Spurious states: minima nobody stored") -> Figure:
    """Three stored patterns, their mixture ``sign(xi1 + xi2 + xi3)``, where recall from it ends,
    and the reversed first pattern ``-xi1``; under each its energy, overlaps and whether it is a
    fixed point."""
    patterns = np.asarray(patterns[:3], dtype=np.float64)
    mixture = mixture_state(patterns)
    after = learner.recall(mixture[None], rng=rng).states[0]
    states = [*patterns, mixture, after, -patterns[0]]
    heads = ["stored ξ1", "stored ξ2", "stored ξ3", "mixture\nsign(ξ1+ξ2+ξ3)", "recall from\nthe mixture", "reversed\n-ξ1"]
    fixed = learner.is_fixed_point(np.stack(states))
    energy = learner.energy(np.stack(states))
    overlaps = np.stack(states) @ patterns.T / patterns.shape[1]
    tiles = [[_tile(s, shape) for s in states]]
    note = (
        "A fixed point is a state that no single update changes: a minimum of the energy, i.e. a memory. Hebb's rule "
        "also makes minima nobody stored: each reversed pattern -ξ, and mixtures of an odd number of patterns, which "
        "overlap each of them by about 1/2 and lie higher in energy than the stored patterns (for large N the three-pattern "
        "mixtures are stable below about 0.03 N patterns; Amit, Gutfreund and Sompolinsky, 1985)."
    )
    fig, ax, corner = _mosaic_figure(tiles, title, note, left=17, top=7, below=15, gap=4)
    h, w = shape
    x0, y0 = corner(0, 0)
    rows = ["energy E", "overlap with ξ1", "overlap with ξ2", "overlap with ξ3", "stable?"]
    line = 2.4  # pixels between two lines of text
    for k, label in enumerate(rows):
        ax.text(x0 - 1.5, y0 + h + 0.8 + k * line, label, ha="right", va="top", fontsize=plots.TICK_SIZE, color="0.2")
    for c, head in enumerate(heads):
        x0, y0 = corner(0, c)
        ax.text(x0 + w / 2, y0 - 1.0, head, ha="center", va="bottom", fontsize=plots.TICK_SIZE)
        cells = [f"{energy[c]:.1f}", *(f"{m:+.2f}" for m in overlaps[c])]
        for k, cell in enumerate(cells):
            ax.text(x0 + w / 2, y0 + h + 0.8 + k * line, cell, ha="center", va="top", fontsize=plots.TICK_SIZE, color="0.2")
        ax.text(x0 + w / 2, y0 + h + 0.8 + len(cells) * line, "fixed point" if fixed[c] else "not fixed", ha="center", va="top",
                fontsize=plots.TICK_SIZE, color=_GOOD if fixed[c] else _BAD, fontweight="bold")
    return fig


# ---------------------------------------------------------------------- the callbacks
def _val_pairs(trainer: L.Trainer, limit: int = 10_000) -> tuple[np.ndarray, np.ndarray] | None:
    """``(cues, patterns)`` of this process's validation batches, at most ``limit`` of them."""
    cues, patterns = [], []
    for batch in validation_batches(trainer):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            return None
        cues.append(as_array(batch[0]))
        patterns.append(as_array(batch[1]))
        if sum(map(len, cues)) >= limit:
            break
    if not cues:
        return None
    return np.concatenate(cues)[:limit], np.concatenate(patterns)[:limit]


def _one_cue_per_pattern(cues: np.ndarray, patterns: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    _, first = np.unique(patterns, axis=0, return_index=True)
    chosen = np.sort(first)[:count]
    return cues[chosen], patterns[chosen]


def _image_shape(trainer: L.Trainer, n_units: int) -> tuple[int, int]:
    shape = getattr(trainer.datamodule, "image_shape", None) if trainer.datamodule is not None else None
    if shape is not None and int(np.prod(shape)) == n_units:
        return tuple(shape)
    return grid_shape(n_units)


class _HopfieldFigure(FigureCallback):
    """A figure of a trained :class:`Hopfield` and its validation cues; anything else is skipped.

    The side recalls draw their update order from their own seeded generator, never from the
    learner's: a figure must not change what a resumed run would do next.
    """

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        learner = getattr(pl_module, "learner", None)
        if not isinstance(learner, HopfieldLearner) or learner.patterns_stored == 0:
            return None
        pairs = _val_pairs(trainer)
        if pairs is None:
            return None
        return self.draw_hopfield(learner, *pairs, _image_shape(trainer, learner.n_units), trainer, pl_module)

    @abstractmethod
    def draw_hopfield(self, learner: HopfieldLearner, cues: np.ndarray, patterns: np.ndarray, shape: tuple[int, int],
                      trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        """The figure, from the learner, the validation cues and their patterns, and the image shape."""


class HopfieldRecall(_HopfieldFigure):
    """Stored pattern, corrupted cue and the recall, a quarter sweep at a time, for a few memories.

    Args:
        memories: how many stored patterns to show (one cue each).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "hopfield_recall"

    def __init__(self, memories: int = 4, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if memories < 1:
            raise ValueError(f"HopfieldRecall: memories must be at least 1, got {memories}")
        self.memories = memories

    def draw_hopfield(self, learner, cues, patterns, shape, trainer, pl_module):
        cues, patterns = _one_cue_per_pattern(cues, patterns, self.memories)
        every = max(1, learner.n_units // 4)
        result = learner.recall(cues, rng=np.random.default_rng(0), record=True, snapshot_every=every)
        if len(result.snapshots) - 1 > 6 * 4:  # a long recall: show it sweep by sweep instead
            every = learner.n_units
            result = learner.recall(cues, rng=np.random.default_rng(0), record=True, snapshot_every=every)
        p = learner.patterns_stored
        threshold = getattr(pl_module, "recall_threshold", RECALL_THRESHOLD)
        return recall_figure(patterns, result.snapshots, every, shape, threshold,
                             title=f"Hopfield network: recall from corrupted cues ({p} patterns stored in {learner.n_units} units)")


class HopfieldEnergy(_HopfieldFigure):
    """The energy after every single-unit update while recalling a few cues: it never rises.

    Args:
        cues: how many validation cues to follow.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "hopfield_energy"

    def __init__(self, cues: int = 12, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if cues < 1:
            raise ValueError(f"HopfieldEnergy: cues must be at least 1, got {cues}")
        self.cues = cues

    def draw_hopfield(self, learner, cues, patterns, shape, trainer, pl_module):
        spread = np.linspace(0, len(cues) - 1, min(self.cues, len(cues))).round().astype(int)
        cues, patterns = cues[spread], patterns[spread]
        result = learner.recall(cues, rng=np.random.default_rng(1), record=True)
        threshold = getattr(pl_module, "recall_threshold", RECALL_THRESHOLD)
        stored = float(learner.energy(np.unique(patterns, axis=0)).mean())
        return energy_figure(result.energies, learner.n_units, stored, overlap(result.states, patterns) >= threshold,
                             title=f"Hopfield network: the energy never rises during recall ({learner.patterns_stored} patterns, N = {learner.n_units})")


class HopfieldCapacity(_HopfieldFigure):
    """Recall against the load P/N from a quick sweep of fresh networks, this run marked by a star.

    Args:
        loads: the loads P/N of the sweep.
        seeds: pattern sets per load.
        cues_per_pattern: cues per stored pattern.
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    The sweep stores random patterns in networks of the run's N, with the cues' flip fraction
    measured on the validation cues.
    """

    name = "hopfield_capacity"

    def __init__(self, loads: tuple[float, ...] = tuple(np.round(np.arange(0.02, 0.305, 0.02), 2)), seeds: int = 3,
                 cues_per_pattern: int = 2, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if not loads or min(loads) <= 0:
            raise ValueError(f"HopfieldCapacity: loads must be positive, got {loads}")
        self.loads = tuple(float(x) for x in loads)
        self.seeds = seeds
        self.cues_per_pattern = cues_per_pattern

    def draw_hopfield(self, learner, cues, patterns, shape, trainer, pl_module):
        flip = float(np.mean(cues != patterns))
        threshold = getattr(pl_module, "recall_threshold", RECALL_THRESHOLD)
        sweep = capacity_sweep(self.loads, learner.n_units, self.seeds, flip, self.cues_per_pattern, threshold)
        measured = trainer.callback_metrics.get("val_recall_accuracy")
        run = (learner.patterns_stored / learner.n_units, float(measured)) if measured is not None else None
        return capacity_figure(sweep, learner.n_units, flip, run, threshold,
                               title="Hopfield network: capacity, recall collapses past about 0.14 N random patterns")


class HopfieldSpuriousState(_HopfieldFigure):
    """The mixture of the first three stored patterns and the reversed first one: stable states
    that were never stored. Skipped with fewer than three patterns."""

    name = "hopfield_spurious_state"

    def draw_hopfield(self, learner, cues, patterns, shape, trainer, pl_module):
        _, first = np.unique(patterns, axis=0, return_index=True)
        if len(first) < 3:
            return None
        stored = patterns[np.sort(first)[:3]]
        return spurious_figure(learner, stored, shape, np.random.default_rng(2),
                               title=f"Hopfield network: spurious states, minima nobody stored ({learner.patterns_stored} patterns, N = {learner.n_units})")
