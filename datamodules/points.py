"""Points in the plane for the generative models: distributions a student can see whole.

* ``eight_gaussians``: eight Gaussians on a ring of radius 2, standard deviation 0.02 (Metz et al.,
  2016, "Unrolled GANs"): the test of whether a GAN covers every mode or collapses to a few. The
  target of a point is the index of its Gaussian, so mode coverage can be counted.
* ``moons``: scikit-learn's two interleaving half circles (noise 0.05), centred and scaled to a
  standard deviation of about 1; the target is the moon.
* ``swiss_roll``: scikit-learn's Swiss roll seen from its axis (the x and z coordinates, noise
  0.25), scaled by 1/5; the target is 0.

Every split is its own seeded draw (``derive_seed(seed, split)``), so held-out points are new
points of the same distribution, which is what a sample-quality measure compares with.

Example::

    >>> dm = PointsDataModule("eight_gaussians", train_size=800, seed=0)
    >>> points, modes = dm.arrays("train")
    >>> points.shape, modes.max(), dm.modes.shape
    ((800, 2), 7, (8, 2))
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from sklearn import datasets as sk_datasets

from datamodules.base import SplitDataModule
from datamodules.sampling import TensorPairs, derive_seed

PointsDataset = Literal["eight_gaussians", "moons", "swiss_roll"]
SPLITS = ("train", "val", "test")

#: Radius of the ring and standard deviation of each Gaussian of ``eight_gaussians``.
RING_RADIUS, RING_STD = 2.0, 0.02


def ring_modes(count: int = 8, radius: float = RING_RADIUS) -> np.ndarray:
    """The centres of ``count`` Gaussians evenly spaced on a circle, ``(count, 2)``."""
    angles = 2 * math.pi * np.arange(count) / count
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def make_points(dataset: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``size`` points of ``dataset``: float32 ``(size, 2)`` and their int64 targets ``(size,)``."""
    if dataset == "eight_gaussians":
        modes = rng.integers(0, 8, size=size)
        points = ring_modes()[modes] + RING_STD * rng.standard_normal((size, 2))
        return points.astype(np.float32), modes.astype(np.int64)
    seed = int(rng.integers(0, 2**31 - 1))  # scikit-learn's generators take an integer seed
    if dataset == "moons":
        points, moons = sk_datasets.make_moons(size, noise=0.05, random_state=seed)
        points = (points - np.array([0.5, 0.25])) / np.array([0.87, 0.5])  # about zero mean, unit spread
        return points.astype(np.float32), moons.astype(np.int64)
    if dataset == "swiss_roll":
        roll, _ = sk_datasets.make_swiss_roll(size, noise=0.25, random_state=seed)
        return (roll[:, [0, 2]] / 5.0).astype(np.float32), np.zeros(size, dtype=np.int64)
    raise ValueError(f"dataset must be one of ('eight_gaussians', 'moons', 'swiss_roll'), got {dataset!r}")


class PointsDataModule(SplitDataModule):
    """Two-dimensional points of a named distribution, each split a seeded draw of its own.

    Args:
        dataset: ``eight_gaussians``, ``moons`` or ``swiss_roll`` (see the module's docstring).
        train_size, val_size, test_size: points per split.
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        input_size: 2; ``data_shape``: ``(2,)``.
        modes: ``eight_gaussians`` only, the eight centres ``(8, 2)``; ``None`` otherwise.

    Raises:
        ValueError: on an unknown dataset or a size below 1 (one line that says which).
    """

    def __init__(
        self,
        dataset: PointsDataset = "eight_gaussians",
        train_size: int = 10_000,
        val_size: int = 1_000,
        test_size: int = 1_000,
        batch_size: int | None = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        if dataset not in ("eight_gaussians", "moons", "swiss_roll"):
            raise ValueError(f"dataset must be one of ('eight_gaussians', 'moons', 'swiss_roll'), got {dataset!r}")
        for name, size in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        self.save_hyperparameters()
        self.dataset = dataset
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.input_size, self.data_shape = 2, (2,)
        self.feature_names: list[str] = ["x", "y"]
        self.modes: np.ndarray | None = ring_modes() if dataset == "eight_gaussians" else None

    def setup(self, stage: str | None = None) -> None:
        """Draw the three splits (once; later calls do nothing)."""
        if self.train_dataset is not None:
            return
        for index, split in enumerate(SPLITS):
            points, targets = make_points(self.dataset, self.sizes[split], np.random.default_rng(derive_seed(self.seed, index)))
            setattr(self, f"{split}_dataset", TensorPairs(torch.from_numpy(points), torch.from_numpy(targets)))
            self.split_indices[split] = np.arange(self.sizes[split])
