"""The Hopfield network (1982): memories as the valleys of an energy, recalled from part of themselves.

J. J. Hopfield, "Neural networks and physical systems with emergent collective computational
abilities", Proceedings of the National Academy of Sciences 79(8), 2554-2558 (1982).

N threshold units, every one connected to every other by a symmetric weight, no self-connection.
A state is a vector of N bits, written here in the ``+-1`` form ``s_i in {-1, +1}`` (the paper
writes ``V_i in {0, 1}``, and ``s = 2V - 1``; the ``+-1`` form is the one used since Amit,
Gutfreund and Sompolinsky, 1985).

*Storage* is Hebb's rule, the paper's eq. 2 in its ``+-1`` form, scaled by ``1/N`` so that a
unit's input stays of order one whatever the size of the network::

    W_ij = (1/N) sum_mu xi_i^mu xi_j^mu      (i != j),      W_ii = 0

for the P patterns ``xi^1 .. xi^P``. It is one pass over the patterns, no error and no gradient;
the patterns can come in any order and in any number of batches, since the sum does not care.

*Recall* is asynchronous (the paper's eq. 1, thresholds ``U_i = 0``): starting from a cue, one
unit at a time, in a random order, takes the sign of its input::

    h_i = sum_j W_ij s_j                      (the unit's local field)
    s_i <- +1 if h_i > 0,  -1 if h_i < 0,  unchanged if h_i = 0

until a full sweep over the N units changes nothing: the state is then a *fixed point*, and it is
what the network remembers of the cue.

*The energy* (the paper's eq. 7) is why recall ends::

    E(s) = -1/2 sum_ij W_ij s_i s_j = -1/2 s^T W s

When unit i flips from ``s_i`` to ``-s_i`` (which it does only when ``s_i h_i < 0``), the energy
changes by ``Delta E = 2 s_i h_i = -2 |h_i| < 0`` (W symmetric, ``W_ii = 0``). Every flip lowers E,
E is bounded below and the states are finite, so recall stops at a local minimum of E. Hebb's
rule digs those minima at the stored patterns: ``-dE(xi)/dW_ij = xi_i xi_j / 2``, so storage is a
step down the energy of each pattern with respect to the weights.

*Strength*: content-addressable memory. With few patterns a cue with a tenth of its bits wrong
falls back into its pattern. *Weakness*: capacity. Each pattern's field at a unit carries
crosstalk from the others, noise of variance about ``P/N``; past ``P/N ~ 0.138`` (Amit, Gutfreund
and Sompolinsky, 1985; Hopfield measured "about 0.15 N") the stored patterns stop being minima
and recall collapses. The network also has minima nobody stored, *spurious states*: the reversed
patterns ``-xi`` and mixtures such as ``sign(xi^1 + xi^2 + xi^3)``.

The rule is written in NumPy (:class:`HopfieldLearner`) and runs under Lightning through the thin
adapter (:class:`Hopfield`): storage is the one training epoch, recall of corrupted cues is the
validation. The figures (:class:`HopfieldRecall`, :class:`HopfieldEnergy`,
:class:`HopfieldCapacity`, :class:`HopfieldSpuriousState`) are added by the CLI.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection

from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyLearner, NumPyModel, _as_array
from callbacks import plots
from callbacks.figures import FigureCallback
from datamodules.patterns import corrupted_cues, grid_shape, random_patterns

#: A cue counts as recalled when its final state overlaps the stored pattern at least this much.
#: For N = 100 that is an exact recall (one wrong bit gives 0.98); for larger N it allows 0.5% of
#: the bits wrong, below the 1.5% that the theory predicts just under capacity (m = 0.967).
RECALL_THRESHOLD = 0.99

#: The storage capacity of random patterns for large N (Amit, Gutfreund and Sompolinsky, 1985).
CAPACITY = 0.138


# ----------------------------------------------------------------------------------------------
# The rule, in NumPy
# ----------------------------------------------------------------------------------------------


def overlap(states: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """``m = (1/N) xi . s`` row by row: 1 for the pattern itself, -1 for its reverse, ~0 unrelated."""
    states, patterns = np.asarray(states, dtype=np.float64), np.asarray(patterns, dtype=np.float64)
    return np.einsum("bn,bn->b", states, patterns) / states.shape[-1]


@dataclass
class Recall:
    """What asynchronous recall did to a batch of cues.

    Attributes:
        states: ``(B, N)`` the final states.
        sweeps: ``(B,)`` full sweeps made, the last (unchanging) one included.
        converged: ``(B,)`` whether the cue ended at a fixed point (a sweep changed nothing)
            rather than at ``max_sweeps``.
        energies: with ``record=True``, ``(B, 1 + updates)``: the energy of the cue, then after
            each single-unit update (a cue that has converged stays flat); else ``None``.
        snapshots: with ``record=True``, ``(1 + K, B, N)``: the cues, then the states after every
            ``snapshot_every`` updates; else ``None``.
        snapshot_every: updates between two snapshots.
    """

    states: np.ndarray
    sweeps: np.ndarray
    converged: np.ndarray
    energies: np.ndarray | None = None
    snapshots: np.ndarray | None = None
    snapshot_every: int = 0


class HopfieldLearner(NumPyLearner):
    """Hebbian storage, asynchronous recall and the energy, in NumPy.

    Args:
        n_units: N, the number of units (bits of a pattern).
        max_sweeps: recall gives up after this many sweeps without reaching a fixed point (with
            symmetric weights it always reaches one; the cap is a guard).
        seed: seed of the generator that draws the order of the asynchronous updates.

    The learned array is ``weight``, W (float32, ``N x N``, symmetric, zero diagonal).
    ``patterns_stored`` counts the patterns added to it. ``learning_rate`` is the ``1/N`` of the
    Hebbian increment: a fixed normalisation, not a step size anyone tunes (recall depends only on
    the sign of ``W s``, so any positive factor gives the same network).

    Example::

        >>> rng = np.random.default_rng(0)
        >>> patterns = rng.choice([-1.0, 1.0], size=(5, 100))
        >>> learner = HopfieldLearner(100)
        >>> _ = learner.train_batch(patterns)
        >>> cue = patterns[:1].copy(); cue[0, :10] *= -1          # 10% of the bits wrong
        >>> float(overlap(learner.recall(cue).states, patterns[:1])[0])
        1.0
    """

    def __init__(self, n_units: int = 100, max_sweeps: int = 50, seed: int = 0) -> None:
        if n_units < 2:
            raise ValueError(f"n_units must be at least 2, got {n_units}")
        if max_sweeps < 1:
            raise ValueError(f"max_sweeps must be at least 1, got {max_sweeps}")
        self.n_units = int(n_units)
        self.max_sweeps = int(max_sweeps)
        self.learning_rate = 1.0 / n_units
        self.rng = np.random.default_rng(seed)
        self.weight = np.zeros((n_units, n_units), dtype=np.float32)
        self.patterns_stored = 0

    # ------------------------------------------------------------------ the adapter's interface
    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight}

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """The local fields ``h = W s`` of a batch of states ``(B, N)``: what each unit would become
        (its sign) if it were updated now."""
        return self._states(inputs) @ self.weight.T.astype(np.float64)

    def train_batch(self, inputs: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        """Store the batch's patterns (Hebb's rule); return their fields just before storage.

        ``targets`` are ignored: the memory is auto-associative, a pattern is its own target.
        """
        patterns = self._states(inputs)
        fields = self.scores(patterns)
        # W += (1/N) sum_mu xi^mu xi^mu^T, then W_ii = 0: no unit excites itself
        self.weight += (patterns.T @ patterns / self.n_units).astype(np.float32)
        np.fill_diagonal(self.weight, 0.0)
        self.patterns_stored += len(patterns)
        return fields

    def loss(self, scores: np.ndarray, targets: np.ndarray) -> float:
        """The mean energy ``-1/2 s . h`` of the states ``targets`` whose fields are ``scores``.

        Hebb's rule does not minimise a loss over the data; what it lowers is this energy at the
        stored patterns, and recall lowers it at the cues.
        """
        return float(np.mean(-0.5 * np.einsum("bn,bn->b", self._states(targets), np.asarray(scores, dtype=np.float64))))

    # ------------------------------------------------------------------ Hopfield's quantities
    def energy(self, states: np.ndarray) -> np.ndarray:
        """``E(s) = -1/2 s^T W s`` of each state of a batch ``(B, N)`` (thresholds are zero)."""
        states = self._states(states)
        return -0.5 * np.einsum("bn,bn->b", states, states @ self.weight.T.astype(np.float64))

    def is_fixed_point(self, states: np.ndarray) -> np.ndarray:
        """``(B,)``: whether no unit of the state would change if updated (each agrees with the sign
        of its field, or its field is zero)."""
        states = self._states(states)
        fields = self.scores(states)
        return np.all((fields * states > 0) | (np.abs(fields) <= self._tie()), axis=1)

    def recall(
        self,
        cues: np.ndarray,
        max_sweeps: int | None = None,
        rng: np.random.Generator | None = None,
        record: bool = False,
        snapshot_every: int | None = None,
    ) -> Recall:
        """Asynchronous recall from a batch of cues ``(B, N)``.

        Each sweep updates the N units once each, one at a time, in a fresh random order: unit i
        takes the sign of ``h_i = sum_j W_ij s_j`` computed from the *current* state, so a flip is
        seen at once by the units that come after it (that is what asynchronous means; a
        synchronous update of all units from the same old state can oscillate between two states).
        A cue stops when a whole sweep changes none of its units.

        The cues of a batch share the order of each sweep, so that the update of unit i is one
        matrix-vector product for the whole batch; each cue still sees a random order, and no
        cue's update depends on another cue.

        Args:
            cues: ``(B, N)`` states of ``+-1``.
            max_sweeps: at most this many sweeps (default: the learner's ``max_sweeps``).
            rng: generator of the update order; by default the learner's own ``rng`` (which a
                checkpoint saves). Pass another one for a side computation such as a figure.
            record: also return the energy after every update and snapshots of the states.
            snapshot_every: updates between snapshots (default N: one per sweep).
        """
        states = self._states(cues).copy()
        rng = self.rng if rng is None else rng
        max_sweeps = self.max_sweeps if max_sweeps is None else max_sweeps
        weight = self.weight.astype(np.float64)
        tie = self._tie(weight)
        count, n = states.shape
        snapshot_every = n if snapshot_every is None else int(snapshot_every)
        if record and snapshot_every < 1:
            raise ValueError(f"snapshot_every must be at least 1, got {snapshot_every}")
        sweeps = np.zeros(count, dtype=np.int64)
        converged = np.zeros(count, dtype=bool)
        energy = self.energy(states) if record else None
        energies, snapshots = ([energy.copy()], [states.copy()]) if record else (None, None)
        updates = 0
        for _ in range(max_sweeps):
            active = np.flatnonzero(~converged)
            if active.size == 0:
                break
            current = states[active]
            changed = np.zeros(active.size, dtype=bool)
            for i in rng.permutation(n):
                field = current @ weight[i]  # h_i = sum_j W_ij s_j, for every active cue at once
                old = current[:, i].copy()
                new = np.where(field > tie, 1.0, np.where(field < -tie, -1.0, old))  # a tie keeps the state
                flipped = new != old
                current[:, i] = new
                changed |= flipped
                updates += 1
                if record:
                    energy[active] += np.where(flipped, 2.0 * old * field, 0.0)  # Delta E = 2 s_i h_i < 0
                    energies.append(energy.copy())
                    if updates % snapshot_every == 0:
                        states[active] = current
                        snapshots.append(states.copy())
            states[active] = current
            sweeps[active] += 1
            converged[active[~changed]] = True
        return Recall(
            states=states,
            sweeps=sweeps,
            converged=converged,
            energies=np.stack(energies, axis=1) if record else None,
            snapshots=np.stack(snapshots) if record else None,
            snapshot_every=snapshot_every,
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "patterns_stored": int(self.patterns_stored)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.patterns_stored = int(state.get("patterns_stored", 0))

    # ------------------------------------------------------------------ helpers
    def _states(self, states: np.ndarray) -> np.ndarray:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim == 1:
            states = states[None]
        if states.ndim != 2 or states.shape[1] != self.n_units:
            raise ValueError(f"expected states of shape (B, {self.n_units}), got {states.shape}")
        if not np.all(np.abs(states) == 1.0):
            raise ValueError("a Hopfield state is made of -1 and +1 only")
        return states

    def _tie(self, weight: np.ndarray | None = None) -> float:
        # W holds multiples of 1/N stored in float32, which are not exact: a field that is truly
        # zero comes out as +-1e-9 or so. Anything below a millionth of the largest possible field
        # is a tie (a true non-zero field of a Hebbian W is at least 1/N).
        weight = self.weight if weight is None else weight
        return 1e-6 * max(float(np.abs(weight).sum(axis=1).max()), 1e-30)


def capacity_sweep(
    loads: np.ndarray | list[float],
    n_units: int = 100,
    seeds: int = 3,
    flip_fraction: float = 0.1,
    cues_per_pattern: int = 2,
    threshold: float = RECALL_THRESHOLD,
) -> dict[str, np.ndarray]:
    """Store ``P = round(load * N)`` random patterns, recall corrupted cues, for each load and seed.

    Returns ``loads`` and, per load and seed (``(len(loads), seeds)``): ``recall_accuracy`` (the
    fraction of cues whose final overlap is at least ``threshold``) and ``overlap`` (the mean
    final overlap).
    """
    loads = np.asarray(loads, dtype=float)
    accuracy = np.zeros((len(loads), seeds))
    mean_overlap = np.zeros((len(loads), seeds))
    for a, load in enumerate(loads):
        count = max(1, int(round(load * n_units)))
        for seed in range(seeds):
            rng = np.random.default_rng([seed, a, n_units])
            patterns = random_patterns(count, n_units, rng)
            learner = HopfieldLearner(n_units, seed=seed)
            learner.train_batch(patterns)
            cues, targets = corrupted_cues(patterns, cues_per_pattern, flip_fraction, rng)
            m = overlap(learner.recall(cues).states, targets)
            accuracy[a, seed] = np.mean(m >= threshold)
            mean_overlap[a, seed] = np.mean(m)
    return {"loads": loads, "recall_accuracy": accuracy, "overlap": mean_overlap}


def mixture_state(patterns: np.ndarray) -> np.ndarray:
    """``sign(xi^1 + xi^2 + xi^3)``: the symmetric mixture of an odd number of patterns."""
    patterns = np.asarray(patterns, dtype=np.float64)
    if len(patterns) % 2 == 0:
        raise ValueError(f"a mixture needs an odd number of patterns (no ties), got {len(patterns)}")
    return np.sign(patterns.sum(axis=0))


# ----------------------------------------------------------------------------------------------
# The Lightning module
# ----------------------------------------------------------------------------------------------


class Hopfield(NumPyModel):
    """The Hopfield network as a LightningModule: Hebbian storage is the fit, recall the validation.

    Args:
        n_units: N, the number of units; must match the patterns' length.
        max_sweeps: recall gives up after this many sweeps (see :class:`HopfieldLearner`).
        recall_threshold: a cue counts as recalled when the final overlap with its pattern is at
            least this (0.99: for N = 100, exactly).
        seed: seed of the learner's update order.

    A batch is ``(states, patterns)``: for training the patterns to store (twice: a pattern is its
    own target), for validation and test corrupted cues and the patterns they came from.

    * ``training_step`` stores its batch by Hebb's rule: one pass, one epoch. Logged per epoch:
      ``train_patterns_stored`` (P), ``train_load`` (P/N) and ``train_energy``, the mean energy
      of the batch's patterns just after storing them (about ``-N/2`` for patterns that are
      minima). No ``learning_rate`` is logged: Hebb's rule has no step size to show.
    * ``validation_step`` / ``test_step`` recall every cue and log ``{stage}_overlap`` (mean final
      overlap ``m = (1/N) xi . s``), ``{stage}_recall_accuracy`` (the fraction of cues with
      ``m >= recall_threshold``), ``{stage}_energy`` (mean final energy), ``{stage}_cue_overlap``
      (mean overlap of the cues, 0.8 for 10% flipped bits) and ``{stage}_sweeps``. Means are
      torchmetrics ``MeanMetric``, exact under DDP.
    * ``forward(cues)`` is recall: it returns the final states.

    Under DDP each process stores its shard of the patterns; the increments of Hebb's rule are
    then *summed* across processes, so every process holds the W of all the patterns. (The
    adapter's generic mixing averages, which would hold ``W / world_size``: the same recall, since
    only the sign of ``W s`` matters, but energies off by that factor.)
    """

    learner: HopfieldLearner

    INFO = ModelInfo(
        name="hopfield",
        full_name="Hopfield network",
        module=1,
        pattern="numpy",
        year_introduced=1982,
        authors=("John J. Hopfield",),
        paper_title="Neural networks and physical systems with emergent collective computational abilities",
        key_innovations=(
            "content-addressable memory: a whole memory recalled from a part of it",
            "an energy function that asynchronous updates never increase",
            "memories stored by Hebb's rule as fixed points (attractors) of the dynamics",
            "a measured capacity: about 0.15 N memories before recall fails",
        ),
        architecture_type="recurrent, fully connected, symmetric weights",
        learning_algorithm="hebbian",
        loss_function="energy",
        optimizer="none (one-pass Hebbian storage)",
        framework="numpy",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "memories as minima of an energy, recall as descent to the nearest one",
            "why asynchronous updates always stop: every flip lowers the energy",
            "Hebb's rule: storage in one pass, without errors or gradients",
            "capacity: about 0.14 N random patterns, and spurious mixture states",
        ),
        estimated_training_time="seconds",
        device_support=("cpu",),
    )

    def __init__(self, n_units: int = 100, max_sweeps: int = 50, recall_threshold: float = RECALL_THRESHOLD, seed: int = 0) -> None:
        if not 0.0 < recall_threshold <= 1.0:
            raise ValueError(f"recall_threshold must lie in (0, 1], got {recall_threshold}")
        super().__init__(HopfieldLearner(n_units, max_sweeps, seed), num_classes=None)
        self.save_hyperparameters()
        self.recall_threshold = recall_threshold
        self.input_size = (n_units,)
        self.output_size = (n_units,)
        recall = MetricCollection(
            {name: MeanMetric() for name in ("overlap", "recall_accuracy", "energy", "cue_overlap", "sweeps")}
        )
        self.train_metrics = MetricCollection({"energy": MeanMetric()}, prefix="train_")
        self.val_metrics = recall.clone(prefix="val_")
        self.test_metrics = recall.clone(prefix="test_")

    # ------------------------------------------------------------------ storage
    def current_learning_rate(self) -> float | None:
        return None  # Hebb's rule has no step size: nothing to log as a learning rate

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        patterns = _as_array(batch[0])
        before = (self.learner.weight.copy(), self.learner.patterns_stored)
        self.learner.train_batch(patterns)
        if self.trainer.world_size > 1:
            self._sum_increments(*before)
        self._learner_to_mirror()
        self.optimizers().step()  # counts the storage as one update: global_step advances
        energies = torch.from_numpy(self.learner.energy(patterns).astype(np.float32)).to(self.device)
        self.train_metrics["train_energy"].update(energies)

    @torch.no_grad()
    def _sum_increments(self, weight_before: np.ndarray, stored_before: int) -> None:
        """Under DDP: every process adds the other processes' Hebbian increments to its own.

        A collective call, made by every process at the same step.
        """
        increment = np.concatenate([(self.learner.weight - weight_before).ravel(), [self.learner.patterns_stored - stored_before]])
        total = self.trainer.strategy.reduce(torch.from_numpy(increment.astype(np.float64)).to(self.device), reduce_op="sum")
        total = total.cpu().numpy()
        self.learner.weight[:] = weight_before + total[:-1].reshape(weight_before.shape).astype(np.float32)
        self.learner.patterns_stored = stored_before + int(round(total[-1]))

    def on_train_epoch_end(self) -> None:
        stored = float(self.learner.patterns_stored)
        values = {"train_patterns_stored": stored, "train_load": stored / self.learner.n_units}
        if self.train_metrics["train_energy"].update_called:
            values["train_energy"] = float(self.train_metrics["train_energy"].compute())
            self.train_metrics.reset()
        # equal on every process already; sync_dist keeps Lightning's reduction in step
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------ recall
    def forward(self, cues: Tensor) -> Tensor:
        """Recall: the fixed point each cue falls into."""
        states = self.learner.recall(_as_array(cues)).states
        return torch.from_numpy(states.astype(np.float32)).to(cues.device)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        cues, patterns = (_as_array(t) for t in batch)
        result = self.learner.recall(cues)
        final = overlap(result.states, patterns)
        values = {
            "overlap": final,
            "recall_accuracy": (final >= self.recall_threshold).astype(np.float64),
            "energy": self.learner.energy(result.states),
            "cue_overlap": overlap(cues, patterns),
            "sweeps": result.sweeps.astype(np.float64),
        }
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        for name, value in values.items():
            metrics[f"{stage}_{name}"].update(torch.from_numpy(value.astype(np.float32)).to(self.device))

    def _log_epoch(self, stage: str) -> None:
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        if not any(metric.update_called for metric in metrics.values()):
            return
        values = metrics.compute()  # collective under DDP: every process gets the global means
        self.log_dict(values, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        cues = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(cues)

    # ------------------------------------------------------------------ figures
    # one epoch of storage, no classes, no gradients, no convolutions: Hopfield's own figures say it
    skip_generic_figures = ("learning_curves", "confusion_matrix", "decision_boundary", "gradient_flow", "conv_filters")

    def figure_callbacks(self) -> list[Callback]:
        return [HopfieldRecall(), HopfieldEnergy(), HopfieldCapacity(), HopfieldSpuriousState()]


# ----------------------------------------------------------------------------------------------
# Figures: drawing functions (NumPy in, matplotlib Figure out) and the callbacks that call them
# ----------------------------------------------------------------------------------------------

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
    """A figure of tiles laid out in one axes (a single ``imshow``: far faster than an axes per
    tile), with ``left``, ``top`` and ``below`` pixels of room for row labels, column heads and a
    line under each tile; a suptitle above and a grey note below.

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
    head_in, note_in = 0.45, 0.15 + 0.16 * (note.count("\n") + 1)
    fig_h = height * inch + head_in + note_in
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes(((fig_w - width * inch) / 2 / fig_w, note_in / fig_h, width * inch / fig_w, height * inch / fig_h))
    ax.imshow(canvas, interpolation="nearest", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    frames = [Rectangle((corner(r, c)[0] - 0.5, corner(r, c)[1] - 0.5), w, h) for r, row in enumerate(tiles) for c in range(len(row))]
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor="0.45", linewidth=0.7))
    ax.set_axis_off()
    fig.suptitle(title, fontsize=plots.SUPTITLE_SIZE, y=1 - 0.12 / fig_h, va="top")
    fig.text(0.5, 0.08 / fig_h, note, ha="center", va="bottom", fontsize=plots.NOTE_SIZE, color=plots.NOTE_COLOR)
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


def _axes(fig: Figure, title: str | None, xlabel: str, ylabel: str):
    ax = fig.add_subplot()
    if title:
        ax.set_title(title, fontsize=plots.TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=plots.LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=plots.LABEL_SIZE)
    ax.tick_params(labelsize=plots.TICK_SIZE)
    ax.grid(True, alpha=0.3, linewidth=0.8)
    ax.set_axisbelow(True)
    return ax


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
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = _axes(fig, None, f"single-unit updates (one sweep = N = {n_units} updates)", "energy  E = -½ sᵀ W s")
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
    fig.supxlabel(_wrap(note, 8.5), fontsize=plots.NOTE_SIZE, color=plots.NOTE_COLOR)
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
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = _axes(fig, None, "load  α = P / N  (patterns stored per unit)", f"after recall from cues with {flip_fraction:.0%} of bits flipped")
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
    fig.supxlabel(_wrap(note, 8.5), fontsize=plots.NOTE_SIZE, color=plots.NOTE_COLOR)
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


# ---------------------------------------------------------------------- figure callbacks
def _val_pairs(trainer: L.Trainer, limit: int = 10_000) -> tuple[np.ndarray, np.ndarray] | None:
    """``(cues, patterns)`` of this process's validation batches, at most ``limit`` of them."""
    loaders = trainer.val_dataloaders
    if loaders is None:
        return None
    cues, patterns = [], []
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                return None
            cues.append(_as_array(batch[0]))
            patterns.append(_as_array(batch[1]))
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

    def draw_hopfield(self, learner: HopfieldLearner, cues: np.ndarray, patterns: np.ndarray, shape: tuple[int, int],
                      trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        raise NotImplementedError


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
    measured on the validation cues; about half a second for N = 100.
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
