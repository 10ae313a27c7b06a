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
validation. The figures (recall, energy, capacity, spurious states) live in ``hopfield_figures.py``;
:meth:`Hopfield.figures` names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection

from ai_scratch.info import ModelInfo
from ai_scratch.numpy_adapter import NumPyLearner, NumPyModel, as_array, as_tensor, reduce_arrays
from datamodules.patterns import corrupted_cues, random_patterns

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
      torchmetrics ``MeanMetric``, exact under DDP, logged by the base's epoch metrics.
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

    @classmethod
    def paper_sized(cls, n_units: int = 100) -> Hopfield:
        """Hopfield's network of N = 100 units, the larger of the two sizes he simulated (N = 30 and
        N = 100), the one whose recall measured his capacity of "about 0.15 N" memories.

        W is stored as the full N x N matrix (10,000 numbers, the diagonal held at zero), of which
        N (N - 1) / 2 = 4,950 are free, since W is symmetric. The forward pass is the local fields
        ``h = W s`` of every unit, one update of each: N^2 multiply-adds.
        """
        model = cls(n_units)
        model.set_sizes((n_units,), (n_units,))
        return model

    # ------------------------------------------------------------------ storage
    def current_learning_rate(self) -> float | None:
        return None  # Hebb's rule has no step size: nothing to log as a learning rate

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        patterns = as_array(batch[0])
        weight_before, stored_before = self.learner.weight.copy(), self.learner.patterns_stored
        self.learner.train_batch(patterns)
        if self.trainer.world_size > 1:
            # every process adds the other processes' Hebbian increments to its own: the W of all patterns
            increments = {
                "weight": (self.learner.weight - weight_before).astype(np.float64),
                "patterns": np.array([self.learner.patterns_stored - stored_before], dtype=np.float64),
            }
            reduce_arrays(increments, self.trainer.strategy, self.device, "sum")
            self.learner.weight[:] = weight_before + increments["weight"].astype(np.float32)
            self.learner.patterns_stored = stored_before + int(round(increments["patterns"][0]))
        self.learner_to_mirror()
        self.optimizers().step()  # counts the storage as one update: global_step advances
        self.train_metrics["train_energy"].update(as_tensor(self.learner.energy(patterns), self.device))

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()  # train_energy
        stored = float(self.learner.patterns_stored)
        # equal on every process already; sync_dist keeps Lightning's reduction in step
        self.log_dict(
            {"train_patterns_stored": stored, "train_load": stored / self.learner.n_units}, on_step=False, on_epoch=True, sync_dist=True
        )

    # ------------------------------------------------------------------ recall
    def forward(self, cues: Tensor) -> Tensor:
        """Recall: the fixed point each cue falls into."""
        return as_tensor(self.learner.recall(as_array(cues)).states, cues.device)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        cues, patterns = (as_array(t) for t in batch)
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
            metrics[f"{stage}_{name}"].update(as_tensor(value, self.device))

    def prediction(self, outputs: Tensor) -> Tensor:
        """``predict`` returns the recalled states themselves."""
        return outputs

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Hopfield's own four figures only: one epoch of storage, no classes, no gradients and no
        convolutions leave the generic ones nothing to say."""
        from ai_scratch.foundations.hopfield_figures import HopfieldCapacity, HopfieldEnergy, HopfieldRecall, HopfieldSpuriousState

        return [
            HopfieldRecall(every_n_epochs=every_n_epochs),
            HopfieldEnergy(every_n_epochs=every_n_epochs),
            HopfieldCapacity(every_n_epochs=every_n_epochs),
            HopfieldSpuriousState(every_n_epochs=every_n_epochs),
        ]
