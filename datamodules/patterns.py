"""Patterns to store and corrupted cues to recall them from: the data of an associative memory.

A Hopfield network (1982) is not shown examples and labels; it is given P patterns of N bits to
store, and later a *cue*, a pattern with some bits wrong, from which to recall the whole. So the
splits here are:

* ``train``: the P patterns themselves, ``(pattern, pattern)``: a pattern is its own target (the
  memory is auto-associative). One pass over them is the whole of Hebbian storage; by default
  they come as one batch.
* ``val`` and ``test``: ``cues_per_pattern`` cues for each pattern, ``(cue, pattern)``, each cue
  the pattern with exactly ``round(flip_fraction * N)`` bits flipped (10% by default: a start at
  overlap 0.8). The two splits draw different cues.

Bits are ``+1`` / ``-1`` (float32). Two sources of patterns:

* ``"random"``: every bit +1 or -1 with probability 1/2, independently: the patterns of the
  capacity theory (about 0.138 N of them can be stored; Amit, Gutfreund and Sompolinsky, 1985).
* ``"letters"``: 10x10 capital letters drawn below (N = 100), black = +1. Real images are
  correlated (the letters share background and strokes), and correlation eats capacity; the
  first five in :data:`LETTER_ORDER` overlap each other by at most 0.2 and store well.

Example::

    >>> dm = PatternsDataModule(n_units=100, load=0.05, seed=0)
    >>> dm.n_patterns, dm.image_shape
    (5, (10, 10))
    >>> cues, patterns = dm.arrays("val")
    >>> cues.shape, float((cues * patterns).mean(axis=1).max())   # overlap of each cue: 0.8
    ((50, 100), 0.8)
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from datamodules.base import SplitDataModule
from datamodules.sampling import TensorPairs, derive_seed

PatternSource = Literal["random", "letters"]

# 10x10 glyphs, "#" = +1 (ink), "." = -1 (paper). Strokes are two pixels wide so that a flipped
# pixel never cuts a letter in two.
LETTERS: dict[str, tuple[str, ...]] = {
    "A": ("....##....", "...####...", "..##..##..", ".##....##.", ".##....##.",
          ".########.", ".########.", ".##....##.", ".##....##.", ".##....##."),
    "L": (".##.......", ".##.......", ".##.......", ".##.......", ".##.......",
          ".##.......", ".##.......", ".##.......", ".########.", ".########."),
    "X": ("##......##", ".##....##.", "..##..##..", "...####...", "....##....",
          "....##....", "...####...", "..##..##..", ".##....##.", "##......##"),
    "J": ("..########", "..########", "......##..", "......##..", "......##..",
          "......##..", "##....##..", "##....##..", "########..", ".######..."),
    "V": ("##......##", "##......##", ".##....##.", ".##....##.", "..##..##..",
          "..##..##..", "...####...", "...####...", "....##....", "....##...."),
    "H": (".##....##.", ".##....##.", ".##....##.", ".##....##.", ".########.",
          ".########.", ".##....##.", ".##....##.", ".##....##.", ".##....##."),
    "T": ("##########", "##########", "....##....", "....##....", "....##....",
          "....##....", "....##....", "....##....", "....##....", "....##...."),
    "C": ("..######..", ".########.", "###....##.", "##........", "##........",
          "##........", "##........", "###....##.", ".########.", "..######.."),
    "Z": ("##########", "##########", ".......##.", "......##..", ".....##...",
          "....##....", "...##.....", "..##......", "##########", "##########"),
    "E": (".########.", ".########.", ".##.......", ".##.......", ".#######..",
          ".#######..", ".##.......", ".##.......", ".########.", ".########."),
    "O": ("..######..", ".########.", ".##....##.", ".##....##.", ".##....##.",
          ".##....##.", ".##....##.", ".##....##.", ".########.", "..######.."),
    "U": (".##....##.", ".##....##.", ".##....##.", ".##....##.", ".##....##.",
          ".##....##.", ".##....##.", ".##....##.", ".########.", "..######.."),
}

#: The order in which ``source="letters"`` takes the letters. The first five (A L X J V) overlap
#: each other by at most 0.2 in absolute value; later ones (H and U: 0.64; O and U: 0.8) much more.
LETTER_ORDER: tuple[str, ...] = ("A", "L", "X", "J", "V", "H", "T", "C", "Z", "E", "O", "U")

LETTER_SHAPE = (10, 10)


def letter_patterns(count: int) -> np.ndarray:
    """The first ``count`` letters of :data:`LETTER_ORDER` as ``(count, 100)`` patterns of +-1."""
    if not 1 <= count <= len(LETTER_ORDER):
        raise ValueError(f"there are {len(LETTER_ORDER)} letters, asked for {count}")
    rows = [[1.0 if pixel == "#" else -1.0 for pixel in "".join(LETTERS[name])] for name in LETTER_ORDER[:count]]
    return np.array(rows, dtype=np.float32)


def random_patterns(count: int, n_units: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, n_units)`` patterns whose bits are +1 or -1 with probability 1/2, independently."""
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(count, n_units))


def corrupted_cues(patterns: np.ndarray, cues_per_pattern: int, flip_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``cues_per_pattern`` cues per pattern, each with exactly ``round(flip_fraction * N)`` distinct
    bits flipped; returns ``(cues, patterns)`` row by row, pattern by pattern."""
    targets = np.repeat(np.asarray(patterns, dtype=np.float32), cues_per_pattern, axis=0)
    cues = targets.copy()
    n_units = targets.shape[1]
    flips = int(round(flip_fraction * n_units))
    for cue in cues:
        cue[rng.choice(n_units, size=flips, replace=False)] *= -1.0
    return cues, targets


class PatternsDataModule(SplitDataModule):
    """Patterns to store (``train``) and corrupted cues to recall them from (``val``, ``test``).

    Args:
        n_units: N, the bits of a pattern (100 for ``letters``).
        n_patterns: P, how many patterns to store. Give this or ``load``, not both.
        load: P/N, the patterns per unit; P = ``round(load * N)``. Neither given: ``load=0.05``.
        source: ``"random"`` or ``"letters"`` (see the module docstring).
        flip_fraction: the share of a cue's bits that are flipped, in [0, 0.5].
        cues_per_pattern: cues per pattern in each of ``val`` and ``test``.
        batch_size: ``None`` (default) hands each split over as one batch: storage is one pass.
        seed: seed of the random patterns and of the cues (>= 0); ``val`` and ``test`` draw from
            their own streams, so more cues in one never change the other.

    Attributes:
        n_patterns, load: P and the actual P/N.
        input_dim: N.
        image_shape: ``(rows, cols)`` to draw a pattern as an image: 10x10 for the letters and for
            N = 100; the squarest grid that holds N otherwise.
        patterns: ``(P, N)`` float32, after :meth:`setup`.

    Under DDP each process gets a shard of each split with no sample repeated (``exact_shards``;
    Lightning's own sampler would pad the shards by repeating samples, and a repeated pattern
    would be stored twice): the shards together store every pattern once, whatever P.

    Raises:
        ValueError: on an argument out of range (a message says which and why).
    """

    exact_shards = True  # storage sums over the patterns exactly once, under DDP too

    def __init__(
        self,
        n_units: int = 100,
        n_patterns: int | None = None,
        load: float | None = None,
        source: PatternSource = "random",
        flip_fraction: float = 0.1,
        cues_per_pattern: int = 10,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        if source not in ("random", "letters"):
            raise ValueError(f"source must be 'random' or 'letters', got {source!r}")
        if source == "letters" and n_units != LETTER_SHAPE[0] * LETTER_SHAPE[1]:
            raise ValueError(f"the letters are 10x10: n_units must be 100, got {n_units}")
        if n_units < 2:
            raise ValueError(f"n_units must be at least 2, got {n_units}")
        if n_patterns is not None and load is not None:
            raise ValueError(f"give n_patterns or load, not both (got {n_patterns} and {load})")
        if load is not None and load <= 0:
            raise ValueError(f"load must be positive, got {load}")
        count = n_patterns if n_patterns is not None else max(1, round((0.05 if load is None else load) * n_units))
        if count < 1:
            raise ValueError(f"n_patterns must be at least 1, got {count}")
        if source == "letters" and count > len(LETTER_ORDER):
            raise ValueError(f"there are {len(LETTER_ORDER)} letters, asked for {count} patterns")
        if not 0.0 <= flip_fraction <= 0.5:
            raise ValueError(f"flip_fraction must lie in [0, 0.5] (beyond half a cue is closer to the reversed pattern), got {flip_fraction}")
        if cues_per_pattern < 1:
            raise ValueError(f"cues_per_pattern must be at least 1, got {cues_per_pattern}")
        self.save_hyperparameters()
        self.n_units = n_units
        self.n_patterns = int(count)
        self.load = self.n_patterns / n_units
        self.source = source
        self.flip_fraction = flip_fraction
        self.cues_per_pattern = cues_per_pattern
        self.input_dim = n_units
        self.image_shape: tuple[int, int] = LETTER_SHAPE if source == "letters" else grid_shape(n_units)
        self.patterns: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        if self.source == "letters":
            patterns = letter_patterns(self.n_patterns)
        else:
            patterns = random_patterns(self.n_patterns, self.n_units, np.random.default_rng(derive_seed(self.seed, 0)))
        self.patterns = patterns
        self.train_dataset = _pairs(patterns, patterns)
        for index, split in enumerate(("val", "test"), start=1):
            rng = np.random.default_rng(derive_seed(self.seed, index))
            setattr(self, f"{split}_dataset", _pairs(*corrupted_cues(patterns, self.cues_per_pattern, self.flip_fraction, rng)))


def _pairs(inputs: np.ndarray, targets: np.ndarray) -> TensorPairs:
    return TensorPairs(torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(np.ascontiguousarray(targets)))


def grid_shape(n_units: int) -> tuple[int, int]:
    """The squarest ``(rows, cols)`` with ``rows * cols == n_units`` (a row of N for a prime)."""
    rows = max(r for r in range(1, math.isqrt(n_units) + 1) if n_units % r == 0)
    return rows, n_units // rows
