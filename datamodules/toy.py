"""Two-class tabular toy data: the data sets on which the early models won and lost.

The Perceptron and ADALINE separate ``linear`` data and fail on ``xor`` (Minsky and Papert, 1969);
``blobs`` (two overlapping Gaussian clusters) is noisy linear data, where ADALINE's least squares
settle and the Perceptron's rule never does; the MLP trained by backpropagation solves ``xor``, ``circles`` and ``moons``, and ``spirals`` is the
classic hard case that needs depth or width. ``iris_binary`` and ``breast_cancer`` are small real
data sets that scikit-learn ships, so every experiment runs offline.

Example::

    >>> dm = ToyDataModule("xor", n_samples=200, batch_size=32)
    >>> dm.input_dim, dm.num_classes, dm.class_names
    (2, 2, ['same sign', 'different sign'])
    >>> dm.setup("fit")
    >>> inputs, targets = next(iter(dm.train_dataloader()))
    >>> inputs.shape, inputs.dtype, targets.dtype
    (torch.Size([32, 2]), torch.float32, torch.int64)
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from datamodules.base import SplitDataModule
from datamodules.sampling import TensorPairs

IrisFeatures = Literal["all", "petal", "sepal"]
# columns of sklearn's iris: sepal length, sepal width, petal length, petal width (cm)
_IRIS_FEATURES = {"all": (0, 1, 2, 3), "sepal": (0, 1), "petal": (2, 3)}
ToyDataset = Literal["linear", "xor", "circles", "moons", "spirals", "iris_binary", "breast_cancer", "blobs"]
IrisPair = Literal["setosa-vs-rest", "setosa-vs-versicolor", "versicolor-vs-virginica"]

_SYNTHETIC = ("linear", "xor", "circles", "moons", "spirals", "blobs")
_INPUT_DIM = {"iris_binary": 4, "breast_cancer": 30, **{name: 2 for name in _SYNTHETIC}}

# Iris targets are 0 = setosa, 1 = versicolor, 2 = virginica. In each pair "A-vs-B" the class
# named first is the positive class 1. Values: (iris labels of class 1, of class 0, class names).
_IRIS_PAIRS: dict[str, tuple[tuple[int, ...], tuple[int, ...], list[str]]] = {
    "setosa-vs-rest": ((0,), (1, 2), ["versicolor or virginica", "setosa"]),
    "setosa-vs-versicolor": ((0,), (1,), ["versicolor", "setosa"]),
    "versicolor-vs-virginica": ((1,), (2,), ["virginica", "versicolor"]),
}

LINEAR_MARGIN = 0.1
"""Half-width of the empty band around the separating line of ``linear`` (the square is [-1, 1]^2)."""

SPIRAL_TURNS = 1.75
"""Turns of each arm of ``spirals``: enough that no small MLP draws the boundary by accident."""


# ----------------------------------------------------------------------------------------------
# Generators. Each returns (inputs float64 (N, 2), targets int64 (N,), strata int64 (N,)): the
# strata are what the splits are stratified on (the label, or the XOR cluster).
# ----------------------------------------------------------------------------------------------


def make_linear(n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points uniform in ``[-1, 1]^2``, labelled by a random line, with a gap around the line.

    The line has a random direction ``w = (cos a, sin a)`` and offset ``b`` in ``[-0.3, 0.3]``;
    ``y = [w.x + b > 0]``. Points with ``|w.x + b| < LINEAR_MARGIN`` are rejected and redrawn, so
    the two classes are strictly linearly separable with margin ``LINEAR_MARGIN``: the
    Perceptron convergence theorem (Novikoff, 1962) applies.
    """
    angle = rng.uniform(0.0, 2.0 * math.pi)
    w = np.array([math.cos(angle), math.sin(angle)])
    b = rng.uniform(-0.3, 0.3)
    kept: list[np.ndarray] = []
    count = 0
    while count < n_samples:  # rejection sampling; the band removes at most ~15% of the square
        points = rng.uniform(-1.0, 1.0, size=(2 * n_samples, 2))
        points = points[np.abs(points @ w + b) >= LINEAR_MARGIN]
        kept.append(points)
        count += len(points)
    inputs = np.concatenate(kept)[:n_samples]
    targets = (inputs @ w + b > 0).astype(np.int64)
    return inputs, targets, targets


def make_xor(n_samples: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four Gaussian clusters at ``(+-1, +-1)`` with std ``noise``; label = XOR of the two signs.

    Every cluster holds exactly ``n_samples / 4`` points and the splits are stratified by cluster,
    so in every split a line can classify at most three clusters of four: accuracy 0.75 at best
    (for ``noise`` well below 1, where the clusters stay apart; keep it under ~0.3).
    """
    per_cluster = n_samples // 4
    centres = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    cluster = np.repeat(np.arange(4), per_cluster)
    inputs = centres[cluster] + noise * rng.standard_normal((n_samples, 2))
    # XOR of "x > 0" and "y > 0", taken from the cluster centre, not from the noisy point.
    targets = ((centres[cluster, 0] > 0) != (centres[cluster, 1] > 0)).astype(np.int64)
    order = rng.permutation(n_samples)
    return inputs[order], targets[order], cluster[order]


def make_blobs(n_samples: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two Gaussian clusters with centres ``-mu`` (class 0) and ``+mu`` (class 1), std ``noise``.

    ``mu = (cos a, sin a)`` has a random direction ``a``, so the centres are 2 apart and, for a
    direction off the axes, the two features are correlated. Half the points in each class. The
    best possible boundary is the perpendicular bisector of the centres, with error
    ``Phi(-1 / noise)``: 0.6% at ``noise=0.4``, 16% at ``noise=1``; for any ``noise > 0`` the
    classes overlap a little, so this is *noisy* linear data, separable only with some luck.
    """
    angle = rng.uniform(0.0, 2.0 * math.pi)
    mu = np.array([math.cos(angle), math.sin(angle)])
    targets = np.repeat(np.array([0, 1], dtype=np.int64), (n_samples // 2, n_samples - n_samples // 2))
    inputs = np.where(targets[:, None] == 1, mu, -mu) + noise * rng.standard_normal((n_samples, 2))
    order = rng.permutation(n_samples)
    return inputs[order], targets[order], targets[order]


def make_spirals(n_samples: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two interleaved Archimedean spirals ``r = theta / theta_max`` (Lang and Witbrock, 1988).

    Class 1 is class 0 turned by 180 degrees. Each arm makes ``SPIRAL_TURNS`` turns; points are
    spread evenly along the arc (``theta ~ sqrt(uniform)``, since arc length grows as theta^2).
    The noise is Gaussian with std ``noise`` times the radial gap between neighbouring arms of
    the two classes, so ``noise=0.1`` leaves clean arms and ``noise=0.5`` lets them touch.
    """
    theta_max = 2.0 * math.pi * SPIRAL_TURNS
    theta_min = 0.5  # radians: skip the tangle at the centre, where the arms meet
    arm_gap = math.pi / theta_max  # radial distance between the two arms: half a turn of r
    counts = (n_samples // 2, n_samples - n_samples // 2)
    inputs, targets = [], []
    for label, count in enumerate(counts):
        u = rng.uniform((theta_min / theta_max) ** 2, 1.0, size=count)
        theta = theta_max * np.sqrt(u)
        radius = theta / theta_max
        phase = math.pi * label
        arm = np.stack([radius * np.cos(theta + phase), radius * np.sin(theta + phase)], axis=1)
        inputs.append(arm + noise * arm_gap * rng.standard_normal((count, 2)))
        targets.append(np.full(count, label, dtype=np.int64))
    order = rng.permutation(n_samples)
    inputs_, targets_ = np.concatenate(inputs)[order], np.concatenate(targets)[order]
    return inputs_, targets_, targets_


class ToyDataModule(SplitDataModule):
    """Two-class tabular data, split train / val / test (stratified, seeded) and standardised.

    Data sets (``dataset``):

    * ``"linear"``: uniform points in a square, labelled by a random line, with an empty band of
      half-width ``LINEAR_MARGIN`` around it (strictly separable; ``noise`` unused).
    * ``"xor"``: four Gaussian clusters at ``(+-1, +-1)``, std ``noise``, label = XOR of the signs;
      equal clusters, splits stratified by cluster, so a linear model scores at most 0.75.
      ``n_samples`` must be a multiple of 4.
    * ``"circles"``: ``sklearn.datasets.make_circles(n_samples, noise=noise, factor=0.5)``.
    * ``"moons"``: ``sklearn.datasets.make_moons(n_samples, noise=noise)``.
    * ``"spirals"``: two interleaved Archimedean spirals (see :func:`make_spirals`).
    * ``"blobs"``: two Gaussian clusters 2 apart, std ``noise``, overlapping more as ``noise``
      grows: noisy linear data (see :func:`make_blobs`).
    * ``"iris_binary"``: Fisher's iris, 4 features, two groups chosen by ``iris_pair``; the class
      named first is class 1. ``setosa-vs-rest`` (150 samples) and ``setosa-vs-versicolor`` (100)
      are linearly separable, ``versicolor-vs-virginica`` (100) is not.
    * ``"breast_cancer"``: Wisconsin diagnostic breast cancer, 569 samples, 30 features, with
      scikit-learn's coding: 0 = malignant, 1 = benign.

    ``n_samples`` and ``noise`` apply to the synthetic sets only. The splits are stratified (by
    label; by cluster for ``xor``) and drawn with ``seed``, which also seeds the generators and
    the training-set shuffle: the same seed gives the same data, batches and order.

    Args:
        dataset: which data set (above).
        n_samples: number of points of a synthetic set, all splits together.
        noise: noise level of a synthetic set (its meaning per set above).
        iris_pair: the two groups of ``iris_binary``.
        iris_features: the measurements of ``iris_binary``: all four, or the two petal (length,
            width) or the two sepal ones, which can be drawn in the plane.
        val_fraction: share of all samples in the validation split.
        test_fraction: share of all samples in the test split.
        batch_size: training batch size; ``None`` gives the whole training split as one batch (the
            NumPy-era learners take whole batches). Evaluation loaders use the same size.
        standardize: subtract the mean and divide by the std of each feature, both measured on
            the training split only (nothing about val or test leaks into training).
        seed: seed of data generation, splits and shuffling (>= 0).

    Attributes:
        input_dim: number of features, known before any data is loaded.
        num_classes: always 2.
        class_names: names of class 0 and class 1.
        train_dataset, val_dataset, test_dataset: :class:`TensorPairs` after :meth:`setup`.
        split_indices: after :meth:`setup`, ``{"train", "val", "test"}`` -> sorted indices of each
            split's samples in the full generated or loaded set.
        mean, std: the standardisation statistics (``None`` before setup or without it).

    Raises:
        ValueError: on an argument out of range (a message says which and why).
    """

    def __init__(
        self,
        dataset: ToyDataset = "linear",
        n_samples: int = 400,
        noise: float = 0.1,
        iris_pair: IrisPair = "setosa-vs-rest",
        iris_features: IrisFeatures = "all",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        batch_size: int | None = None,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        if dataset not in _INPUT_DIM:
            raise ValueError(f"dataset must be one of {sorted(_INPUT_DIM)}, got {dataset!r}")
        if iris_pair not in _IRIS_PAIRS:
            raise ValueError(f"iris_pair must be one of {list(_IRIS_PAIRS)}, got {iris_pair!r}")
        if iris_features not in _IRIS_FEATURES:
            raise ValueError(f"iris_features must be one of {list(_IRIS_FEATURES)}, got {iris_features!r}")
        if n_samples < 20:
            raise ValueError(f"n_samples must be >= 20 so every split holds both classes, got {n_samples}")
        if dataset == "xor" and n_samples % 4:
            raise ValueError(f"xor needs n_samples divisible by 4 (four equal clusters), got {n_samples}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                "val_fraction and test_fraction must lie in (0, 1) with a sum below 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        self.save_hyperparameters()
        self.dataset = dataset
        self.n_samples = n_samples
        self.noise = noise
        self.iris_pair = iris_pair
        self.iris_features = iris_features
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize

        # Known before any data is loaded: models are configured from these.
        self.input_dim: int = len(_IRIS_FEATURES[iris_features]) if dataset == "iris_binary" else _INPUT_DIM[dataset]
        self.num_classes: int = 2
        self.class_names: list[str] = self._class_names()
        self.feature_names: list[str] = self._feature_names()
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def _feature_names(self) -> list[str]:
        if self.dataset == "iris_binary":
            names = ["sepal length", "sepal width", "petal length", "petal width"]
            chosen = [names[i] for i in _IRIS_FEATURES[self.iris_features]]
        elif self.dataset == "breast_cancer":
            chosen = [str(name) for name in sk_datasets.load_breast_cancer().feature_names]
        else:
            return [f"x{i + 1}" for i in range(self.input_dim)]
        return [f"{name} (standardised)" if self.standardize else name for name in chosen]

    def _class_names(self) -> list[str]:
        if self.dataset == "xor":
            return ["same sign", "different sign"]
        if self.dataset == "iris_binary":
            return list(_IRIS_PAIRS[self.iris_pair][2])
        if self.dataset == "breast_cancer":
            return ["malignant", "benign"]  # sklearn: target 0 = malignant, 1 = benign
        return ["class 0", "class 1"]

    # ------------------------------------------------------------------------------------------
    # Data
    # ------------------------------------------------------------------------------------------

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All samples of the chosen set: (inputs, targets in {0, 1}, strata for the splits)."""
        rng = np.random.default_rng(self.seed)
        if self.dataset == "linear":
            return make_linear(self.n_samples, rng)
        if self.dataset == "xor":
            return make_xor(self.n_samples, self.noise, rng)
        if self.dataset == "spirals":
            return make_spirals(self.n_samples, self.noise, rng)
        if self.dataset == "blobs":
            return make_blobs(self.n_samples, self.noise, rng)
        if self.dataset == "circles":
            inputs, targets = sk_datasets.make_circles(
                self.n_samples, noise=self.noise, factor=0.5, random_state=self.seed
            )
        elif self.dataset == "moons":
            inputs, targets = sk_datasets.make_moons(self.n_samples, noise=self.noise, random_state=self.seed)
        elif self.dataset == "iris_binary":
            iris = sk_datasets.load_iris()
            positive, negative, _ = _IRIS_PAIRS[self.iris_pair]
            keep = np.isin(iris.target, positive + negative)
            columns = list(_IRIS_FEATURES[self.iris_features])
            inputs, targets = iris.data[keep][:, columns], np.isin(iris.target[keep], positive)
        else:  # breast_cancer
            inputs, targets = sk_datasets.load_breast_cancer(return_X_y=True)
        targets = np.asarray(targets, dtype=np.int64)
        return np.asarray(inputs, dtype=np.float64), targets, targets

    def setup(self, stage: str | None = None) -> None:
        """Generate or load the data, split it and standardise it (once; later calls do nothing)."""
        if self.train_dataset is not None:
            return
        inputs, targets, strata = self._load()
        index = np.arange(len(targets))
        # Two stratified cuts: test first, then val out of the rest, both as shares of the whole.
        rest, test = train_test_split(
            index, test_size=self.test_fraction, stratify=strata, random_state=self.seed
        )
        train, val = train_test_split(
            rest,
            test_size=self.val_fraction / (1.0 - self.test_fraction),
            stratify=strata[rest],
            random_state=self.seed,
        )
        if self.standardize:
            self.mean = inputs[train].mean(axis=0)
            std = inputs[train].std(axis=0)
            self.std = np.where(std > 0, std, 1.0)  # a constant feature stays as it is
            inputs = (inputs - self.mean) / self.std
        # Sorted indices within each split: the stored order does not matter, the sampler shuffles.
        self.split_indices = {name: np.sort(part) for name, part in (("train", train), ("val", val), ("test", test))}
        self.train_dataset, self.val_dataset, self.test_dataset = (
            TensorPairs(
                torch.as_tensor(inputs[self.split_indices[name]], dtype=torch.float32),
                torch.as_tensor(targets[self.split_indices[name]], dtype=torch.int64),
            )
            for name in ("train", "val", "test")
        )

