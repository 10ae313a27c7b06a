"""The segmentation datamodule: generated touching cells (seeded, split, mirrored), U-Net's weight map of
eq. 2 on crafted examples, the real loaders' one-line errors, and bad arguments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.membranes import (
    IGNORE_INDEX,
    MembranesDataModule,
    border_distances,
    class_balance_weights,
    mirror,
    render_membranes,
    unet_weight_map,
)

SMALL = dict(image_size=32, cells=6, train_size=6, val_size=3, test_size=3, batch_size=4)


def two_cells(gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two 16 x 12 cells side by side, ``gap`` background columns between them, 2 background pixels around."""
    instances = np.zeros((20, 30 + gap - 1), dtype=np.int64)
    instances[2:18, 2:14] = 1
    instances[2:18, 14 + gap : 26 + gap] = 2
    return (instances > 0).astype(np.int64), instances


# ---------------------------------------------------------------------- the weight map (eq. 2)
def test_border_distances_are_to_the_nearest_and_second_nearest_cell() -> None:
    _, instances = two_cells()
    d1, d2 = border_distances(instances)
    assert (d1[instances > 0] == 0).all()
    assert d1[10, 14] == d2[10, 14] == 1  # the one-pixel gap: each cell one pixel away
    assert d1[10, 0] == 2 and d2[10, 0] == 15  # the left margin: cell 1 at column 2, cell 2 at column 15
    one_cell = np.where(instances == 1, 1, 0)
    assert np.isinf(border_distances(one_cell)[1]).all()


def test_the_weight_map_is_eq_2_on_two_touching_cells() -> None:
    mask, instances = two_cells()
    w0, sigma = 10.0, 5.0
    weights = unet_weight_map(mask, instances, num_classes=2, w0=w0, sigma=sigma, class_balance=True)
    pixels, cells = mask.size, int(mask.sum())
    w_background, w_cell = pixels / (2 * (pixels - cells)), pixels / (2 * cells)  # w_c: each class half of the total
    assert weights[10, 5] == pytest.approx(w_cell)  # inside a cell: w_c only
    assert weights[10, 14] == pytest.approx(w_background + w0 * math.exp(-((1 + 1) ** 2) / (2 * sigma**2)))
    assert weights[10, 0] == pytest.approx(w_background + w0 * math.exp(-((2 + 15) ** 2) / (2 * sigma**2)))
    # the gap between the cells weighs most, far more than the background that is not between cells
    assert weights.max() == pytest.approx(weights[10, 14]) and weights[10, 14] > 3 * weights[10, 0]
    # without w_c: 1 + the separation term
    plain = unet_weight_map(mask, instances, num_classes=2, w0=w0, sigma=sigma, class_balance=False)
    assert plain[10, 5] == 1 and plain[10, 14] == pytest.approx(1 + w0 * math.exp(-4 / 50))


def test_a_wider_gap_weighs_less_and_sigma_scales_the_reach() -> None:
    narrow, wide = (unet_weight_map(*two_cells(gap), num_classes=2, class_balance=False, sigma=3.0) for gap in (1, 5))
    assert wide[10, 16] < narrow[10, 14]
    assert wide[10, 16] == pytest.approx(1 + 10 * math.exp(-(3 + 3) ** 2 / (2 * 9)))
    mask, instances = two_cells()
    small_sigma = unet_weight_map(mask, instances, 2, sigma=1.0, class_balance=False)
    assert small_sigma[10, 0] == pytest.approx(1.0, abs=1e-6) and small_sigma[10, 14] == pytest.approx(1 + 10 * math.exp(-2))


def test_class_balance_weights_average_one_and_ignore_unscored_pixels() -> None:
    mask = np.array([[0, 1, 1, 1], [1, 1, 1, IGNORE_INDEX]])
    weights = class_balance_weights(mask, num_classes=2)
    scored = mask != IGNORE_INDEX
    assert weights[scored].mean() == pytest.approx(1.0) and weights[~scored].sum() == 0
    assert weights[0, 0] == pytest.approx(6 * weights[0, 1])  # inverse frequencies: 1 and 6 pixels


def test_weight_map_bad_input() -> None:
    mask, instances = two_cells()
    with pytest.raises(ValueError, match="one shape"):
        unet_weight_map(mask, instances[:, :-1], 2)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        unet_weight_map(mask, instances, 2, sigma=0)


# ---------------------------------------------------------------------- generated membranes
def test_rendered_cells_touch_across_thin_membranes() -> None:
    image, mask, instances = render_membranes(np.random.default_rng(0), 64, cells=12, membrane_width=1)
    assert image.shape == mask.shape == instances.shape == (64, 64) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    assert set(np.unique(mask)) == {0, 1} and 0.02 < (mask == 0).mean() < 0.2  # thin membranes
    assert ((instances == 0) == (mask == 0)).all()
    ids = np.unique(instances[instances > 0])
    assert (ids == np.arange(1, len(ids) + 1)).all() and 6 <= len(ids) <= 14
    assert image[mask == 0].mean() < image[mask == 1].mean() - 0.1  # membranes are darker
    wider = render_membranes(np.random.default_rng(0), 64, cells=12, membrane_width=3)[1]
    assert (wider == 0).mean() > 2 * (mask == 0).mean()


def test_splits_are_deterministic_by_seed_and_differ_between_seeds_and_splits() -> None:
    first, again, other = (MembranesDataModule(**SMALL, seed=s) for s in (0, 0, 1))
    for split in ("train", "val", "test"):
        a, b = first.dataset(split), again.dataset(split)
        assert torch.equal(a.images, b.images) and all(torch.equal(a.targets[k], b.targets[k]) for k in a.targets)
    assert not torch.equal(first.dataset("train").images, other.dataset("train").images)
    assert not torch.equal(first.dataset("train").images[:3], first.dataset("val").images)


def test_batches_hold_mirrored_images_and_per_pixel_targets() -> None:
    dm = MembranesDataModule(**SMALL, mirror_padding=5)
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 1, 42, 42) and images.dtype == torch.float32
    assert set(targets) == {"mask", "weight_map", "instances"}
    assert targets["mask"].shape == targets["weight_map"].shape == targets["instances"].shape == (4, 32, 32)
    assert targets["mask"].dtype == targets["instances"].dtype == torch.int64
    # the centre is the image itself, the border its mirror image about the edge pixels
    plain = MembranesDataModule(**SMALL).dataset("train").images[0, 0]
    padded = dm.dataset("train").images[0, 0]
    assert torch.equal(padded[5:-5, 5:-5], plain)
    assert torch.equal(padded[5:-5, 4], plain[:, 1]) and torch.equal(padded[0, 5:-5], plain[5])
    assert (targets["weight_map"] > 0).all()
    assert (dm.num_classes, dm.in_channels, dm.class_names) == (2, 1, ["membrane", "cell"])


def test_mirroring_beyond_the_image_size_repeats_the_reflection() -> None:
    image = torch.arange(12.0).reshape(1, 3, 4)
    padded = mirror(image, 7)
    assert padded.shape == (1, 17, 18)
    assert torch.equal(padded[:, 7:10, 7:11], image)


def test_training_order_is_shuffled_per_epoch_and_seeded() -> None:
    dm = MembranesDataModule(**SMALL)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    epoch0 = torch.cat([b[0] for b in loader])
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([b[0] for b in loader])
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(epoch0.sum(0), epoch1.sum(0)) or torch.allclose(epoch0.sum(0), epoch1.sum(0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "isbi"}, "source must be one of"),
        ({"image_size": 4}, "image_size must be an integer >= 8"),
        ({"mirror_padding": -1}, "mirror_padding must be an integer >= 0"),
        ({"cells": 1}, "cells must be an integer between 2"),
        ({"membrane_width": 0}, "membrane_width must be an integer between 1"),
        ({"contrast_range": (0.5, 0.2)}, "contrast_range must be"),
        ({"train_size": 0}, "train_size, val_size and test_size must be >= 1"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"w0": -1.0}, "w0 must be >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_arguments_get_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        MembranesDataModule(**kwargs)
    assert "\n" not in str(error.value)


def test_a_bad_split_name_gets_one_line() -> None:
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test'"):
        MembranesDataModule(**SMALL).dataset("validation")


# ---------------------------------------------------------------------- real data
@pytest.mark.parametrize(("source", "what"), [("pets", "Oxford-IIIT Pet"), ("voc", "Pascal VOC 2012 segmentation")])
def test_missing_real_data_gets_one_line_that_says_how_to_download(tmp_path: Path, source: str, what: str) -> None:
    dm = MembranesDataModule(source=source, data_dir=str(tmp_path))
    assert dm.in_channels == 3 and dm.num_classes == (2 if source == "pets" else 21)
    with pytest.raises(FileNotFoundError) as error:
        dm.setup()
    line = str(error.value)
    assert what in line and "--data.download true" in line and "\n" not in line and str(tmp_path) in line
