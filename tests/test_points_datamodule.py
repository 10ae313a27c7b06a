"""PointsDataModule (datamodules/points.py): the 2-D distributions of the generative models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.points import RING_RADIUS, RING_STD, PointsDataModule, ring_modes

DATASETS = ["eight_gaussians", "moons", "swiss_roll"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_splits_have_the_asked_sizes_shapes_and_types(dataset: str) -> None:
    data = PointsDataModule(dataset, train_size=300, val_size=120, test_size=80, batch_size=64, seed=3)
    for split, size in (("train", 300), ("val", 120), ("test", 80)):
        points, targets = data.arrays(split)
        assert points.shape == (size, 2) and points.dtype == np.float32
        assert targets.shape == (size,) and targets.dtype == np.int64
        assert np.isfinite(points).all()
    inputs, targets = next(iter(data.train_dataloader()))
    assert inputs.shape == (64, 2) and inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert sum(len(batch[0]) for batch in data.val_dataloader()) == 120
    assert data.input_size == 2 and data.data_shape == (2,) and data.feature_names == ["x", "y"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_one_seed_gives_the_same_points_and_each_split_is_a_draw_of_its_own(dataset: str) -> None:
    first, again = (PointsDataModule(dataset, train_size=200, val_size=200, test_size=200, seed=5) for _ in range(2))
    other_seed = PointsDataModule(dataset, train_size=200, val_size=200, test_size=200, seed=6)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.arrays(split)[0], again.arrays(split)[0])
        assert not np.array_equal(first.arrays(split)[0], other_seed.arrays(split)[0])
    train, val, test = (first.arrays(split)[0] for split in ("train", "val", "test"))
    assert not np.array_equal(train, val) and not np.array_equal(val, test) and not np.array_equal(train, test)


def test_eight_gaussians_lie_on_the_ring_around_the_modes_their_targets_name() -> None:
    data = PointsDataModule("eight_gaussians", train_size=4000, seed=0)
    points, modes = data.arrays("train")
    assert data.modes is not None and data.modes.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(data.modes, axis=1), RING_RADIUS)
    np.testing.assert_allclose(data.modes, ring_modes())
    offsets = points - data.modes[modes]
    assert offsets.std() == pytest.approx(RING_STD, rel=0.05)
    nearest = np.linalg.norm(points[:, None] - data.modes[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(nearest, modes)
    counts = np.bincount(modes, minlength=8)
    assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500  # every mode about an eighth


def test_moons_and_swiss_roll_have_their_spread_and_no_modes() -> None:
    moons = PointsDataModule("moons", train_size=2000)
    points, targets = moons.arrays("train")
    assert set(np.unique(targets)) == {0, 1} and moons.modes is None
    assert np.abs(points.mean(axis=0)).max() < 0.2 and 0.6 < points.std(axis=0).min() < 1.3
    roll = PointsDataModule("swiss_roll", train_size=2000)
    points, targets = roll.arrays("train")
    assert (targets == 0).all() and roll.modes is None
    assert 1.0 < np.linalg.norm(points, axis=1).max() < 4.0


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"dataset must be one of \('eight_gaussians', 'moons', 'swiss_roll'\), got 'rings'"):
        PointsDataModule("rings")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="train_size must be a positive integer, got 0"):
        PointsDataModule(train_size=0)
    with pytest.raises(ValueError, match="val_size must be a positive integer, got 2.5"):
        PointsDataModule(val_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None"):
        PointsDataModule(batch_size=0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        PointsDataModule(seed=-1)
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test', got 'dev'"):
        PointsDataModule(train_size=10).arrays("dev")  # type: ignore[arg-type]
