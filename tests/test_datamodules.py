"""Tests of the datamodules: data, splits, seeds, batches, and the LeNet-5 input pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from sklearn.linear_model import LogisticRegression, Perceptron
from sklearn.svm import SVC, LinearSVC
from torch.utils.data import DataLoader

from cnn_tools import augmented, fake_trainer, fit_recorder, write_miniature_mnist
from datamodules import DigitsDataModule, EpochSeededSampler, TensorPairs, ToyDataModule, VisionDataModule

TOY_SETS = ["linear", "xor", "circles", "moons", "spirals", "iris_binary", "breast_cancer"]


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(distortions=True)
    dm.setup("fit")
    return dm


# ----------------------------------------------------------------------------------------------
# EpochSeededSampler and TensorPairs
# ----------------------------------------------------------------------------------------------


def test_sampler_order_is_a_function_of_seed_and_epoch():
    a, b = EpochSeededSampler(100, seed=7), EpochSeededSampler(100, seed=7)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        orders.append(list(a))
        assert list(a) == orders[-1]  # iterating again does not advance a stream
    b.set_epoch(2)  # a fresh sampler (a resumed run) jumps straight to epoch 2
    assert list(b) == orders[2]
    assert orders[0] != orders[1] != orders[2]
    assert sorted(orders[0]) == list(range(100))
    other = EpochSeededSampler(100, seed=8)
    other.set_epoch(2)
    assert list(other) != orders[2]
    assert list(EpochSeededSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]
    assert len(a) == 100


def test_sampler_inside_distributed_sampler_wrapper():
    """Under DDP Lightning wraps a custom sampler in DistributedSamplerWrapper: every rank lists
    the same (seed, epoch) order and takes a disjoint shard; set_epoch reaches our sampler."""
    shards = {}
    for epoch in (0, 1):
        for rank in (0, 1):
            wrapper = DistributedSamplerWrapper(EpochSeededSampler(10, seed=3), num_replicas=2, rank=rank)
            wrapper.set_epoch(epoch)
            assert wrapper.dataset._sampler.epoch == epoch
            shards[epoch, rank] = list(wrapper)
        assert not set(shards[epoch, 0]) & set(shards[epoch, 1])
        assert sorted(shards[epoch, 0] + shards[epoch, 1]) == list(range(10))
    assert shards[0, 0] != shards[1, 0]


def test_tensor_pairs_fetch_whole_batches():
    calls = []

    class Counting(TensorPairs):
        def __getitem__(self, index):
            calls.append(index)
            return super().__getitem__(index)

    inputs, targets = torch.randn(10, 3), torch.arange(10)
    data = Counting(inputs, targets)
    loader = DataLoader(data, batch_size=4, sampler=EpochSeededSampler(10, seed=1), collate_fn=TensorPairs.collate)
    batches = list(loader)
    assert calls == []  # __getitems__ served every batch
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert isinstance(x, torch.Tensor) and x.shape == (4, 3) and y.dtype == torch.int64
    torch.testing.assert_close(x, inputs[y])
    # A plain DataLoader without our collate_fn still returns [inputs, targets] (default_collate).
    plain = next(iter(DataLoader(TensorPairs(inputs, targets), batch_size=4, sampler=EpochSeededSampler(10, seed=1))))
    torch.testing.assert_close(plain[0], x)
    torch.testing.assert_close(plain[1], y)
    with pytest.raises(ValueError, match="differ in length"):
        TensorPairs(torch.zeros(3, 1), torch.zeros(4))


# ----------------------------------------------------------------------------------------------
# ToyDataModule
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_shapes_splits_and_stratification(name):
    dm = ToyDataModule(name, batch_size=16)
    dim = dm.input_dim  # known before setup
    assert dm.num_classes == 2 and len(dm.class_names) == 2
    dm.setup("fit")
    sizes = {}
    for split in ("train", "val", "test"):
        x, y = dm.arrays(split)
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 2 and x.shape[1] == dim and set(np.unique(y)) == {0, 1}
        sizes[split] = len(y)
    idx = dm.split_indices
    everything = np.concatenate([idx["train"], idx["val"], idx["test"]])
    assert len(np.unique(everything)) == len(everything) == sum(sizes.values())  # disjoint, complete
    assert sizes["val"] == pytest.approx(0.2 * len(everything), abs=1)
    assert sizes["test"] == pytest.approx(0.2 * len(everything), abs=1)
    overall = np.concatenate([dm.arrays(s)[1] for s in ("train", "val", "test")]).mean()
    for split in ("train", "val", "test"):
        y = dm.arrays(split)[1]
        assert abs(y.mean() - overall) <= 1.0 / len(y) + 1e-9  # stratified
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, dim) and x.dtype == torch.float32 and y.dtype == torch.int64


@pytest.mark.parametrize("name", ["linear", "xor", "spirals", "moons", "breast_cancer"])
def test_toy_is_deterministic_per_seed(name):
    first, again, other = ToyDataModule(name, seed=1), ToyDataModule(name, seed=1), ToyDataModule(name, seed=2)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.arrays(split)[0], again.arrays(split)[0])
        assert not np.array_equal(first.arrays(split)[0], other.arrays(split)[0])


def test_toy_standardisation_uses_training_statistics():
    raw, std = ToyDataModule("breast_cancer", standardize=False), ToyDataModule("breast_cancer")
    std.setup()
    raw_train, raw_val = raw.arrays("train")[0].astype(np.float64), raw.arrays("val")[0].astype(np.float64)
    mean, scale = raw_train.mean(axis=0), raw_train.std(axis=0)
    np.testing.assert_allclose(std.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(std.arrays("train")[0], (raw_train - mean) / scale, atol=1e-4)
    np.testing.assert_allclose(std.arrays("val")[0], (raw_val - mean) / scale, atol=1e-4)
    train = std.arrays("train")[0]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(std.arrays("val")[0].mean(axis=0)).max() > 1e-3  # val is not re-centred on itself


@pytest.mark.parametrize("seed", range(5))
def test_linear_is_separable_and_xor_is_not(seed):
    linear = ToyDataModule("linear", seed=seed)
    x, y = linear.arrays("train")
    assert Perceptron(max_iter=10_000, tol=None, random_state=0).fit(x, y).score(x, y) == 1.0
    svm = LinearSVC(C=1e4, max_iter=100_000).fit(x, y)
    assert all(svm.score(*linear.arrays(split)) == 1.0 for split in ("train", "val", "test"))

    xor = ToyDataModule("xor", seed=seed)
    x, y = xor.arrays("train")
    for model in (LogisticRegression(), LinearSVC(C=1.0, max_iter=100_000)):
        model.fit(x, y)
        for split in ("val", "test"):
            assert model.score(*xor.arrays(split)) <= 0.76
    # Every split holds the four clusters in equal numbers, so no line beats 3 of 4.
    raw = ToyDataModule("xor", seed=seed, standardize=False)
    for split in ("train", "val", "test"):
        quadrant = (raw.arrays(split)[0] > 0) @ np.array([1, 2])
        counts = np.bincount(quadrant, minlength=4)
        assert counts.min() == counts.max()
    assert SVC(C=10.0).fit(x, y).score(*xor.arrays("test")) == 1.0  # yet a non-linear model solves it


def test_iris_pairs_and_breast_cancer():
    setosa = ToyDataModule("iris_binary", iris_pair="setosa-vs-rest")
    assert setosa.input_dim == 4 and setosa.class_names == ["versicolor or virginica", "setosa"]
    x = np.concatenate([setosa.arrays(s)[0] for s in ("train", "val", "test")])
    y = np.concatenate([setosa.arrays(s)[1] for s in ("train", "val", "test")])
    assert len(y) == 150 and y.sum() == 50  # setosa is the positive class
    assert LinearSVC(C=1e4, max_iter=100_000).fit(x, y).score(x, y) == 1.0
    for pair in ("setosa-vs-versicolor", "versicolor-vs-virginica"):
        dm = ToyDataModule("iris_binary", iris_pair=pair)
        assert sum(len(dm.arrays(s)[1]) for s in ("train", "val", "test")) == 100
    cancer = ToyDataModule("breast_cancer")
    assert cancer.input_dim == 30 and cancer.class_names == ["malignant", "benign"]


def test_toy_loaders():
    dm = ToyDataModule("moons", n_samples=100)  # batch_size=None: the whole training split at once
    dm.setup()
    dm.setup()  # idempotent
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and len(batches[0][1]) == len(dm.train_dataset)
    val_x, _ = next(iter(dm.val_dataloader()))
    np.testing.assert_array_equal(val_x.numpy(), dm.arrays("val")[0])  # evaluation in order
    loader = ToyDataModule("moons", n_samples=100, batch_size=8).train_dataloader()
    orders = []
    for epoch in (0, 1):  # what Lightning does before each epoch
        loader.sampler.set_epoch(epoch)
        orders.append(torch.cat([x for x, _ in loader]))
    assert len(loader) == 8  # 60 training points in batches of 8
    assert not torch.equal(orders[0], orders[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "squares"}, "dataset must be one of"),
        ({"dataset": "xor", "n_samples": 402}, "divisible by 4"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "sum below 1"),
        ({"batch_size": 0}, "batch_size"),
        ({"noise": -1.0}, "noise"),
        ({"iris_pair": "setosa-vs-virginica"}, "iris_pair"),
        ({"seed": -1}, "seed"),
    ],
)
def test_toy_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ToyDataModule(**kwargs)


IMAGE_FAMILIES = ["digits with distortions", "vision with augmentation"]


def small_data(family: str):
    """Batches of 16 from 48 training samples: toy moons, or scikit-learn's 8x8 digits with the
    random training changes of their datamodule (LeNet-5's distortions; crops and colour shifts)."""
    if family == "toy":
        return ToyDataModule("moons", n_samples=80, batch_size=16, seed=4)
    sizes = dict(train_size=48, val_size=20, test_size=20, batch_size=16, seed=4)
    if family == "digits with distortions":
        return DigitsDataModule("sklearn", image_size=8, distortions=True, **sizes)
    return VisionDataModule("sklearn", channels=3, augment=True, lighting_std=0.1, **sizes)


@pytest.mark.parametrize("family", ["toy", *IMAGE_FAMILIES])
def test_resumed_fit_sees_the_batches_of_an_uninterrupted_fit(tmp_path, family):
    """Epoch 2 of a fit resumed from an epoch-2 checkpoint gets the batches (order, and for images
    the random distortions, crops and colour shifts too) of epoch 2 of an uninterrupted fit."""
    full, _ = fit_recorder(small_data(family), tmp_path, 3)
    _, trainer = fit_recorder(small_data(family), tmp_path, 2)
    trainer.save_checkpoint(tmp_path / "epoch2.ckpt")
    resumed, _ = fit_recorder(small_data(family), tmp_path, 3, ckpt_path=tmp_path / "epoch2.ckpt")

    def targets(model, epoch):
        return torch.cat([y for e, _, y in model.train_batches if e == epoch])

    assert not torch.equal(targets(full, 0), targets(full, 1))  # reshuffled each epoch
    assert not torch.allclose(full.train_batches[0][1], full.train_batches[3][1])
    assert [e for e, _, _ in resumed.train_batches] == [2] * 3
    torch.testing.assert_close(targets(resumed, 2), targets(full, 2))
    for (_, x_full, _), (_, x_resumed, _) in zip([b for b in full.train_batches if b[0] == 2], resumed.train_batches):
        torch.testing.assert_close(x_full, x_resumed)


# ----------------------------------------------------------------------------------------------
# DigitsDataModule
# ----------------------------------------------------------------------------------------------


def test_digits_shapes_splits_and_lecun_values(digits):
    assert digits.input_shape == (1, 32, 32) and digits.num_classes == 10
    assert digits.class_names == [str(d) for d in range(10)]
    sizes = {}
    for split in ("train", "val", "test"):
        x, y = digits.arrays(split)
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (1, 32, 32)
        assert np.bincount(y, minlength=10).min() == np.bincount(y).max()  # stratified: equal classes
        sizes[split] = len(y)
    assert sizes == {"train": 4000, "val": 500, "test": 500}
    idx = np.concatenate(list(digits.split_indices.values()))
    assert len(np.unique(idx)) == 5000
    x = digits.arrays("train")[0]
    # LeCun et al. 1998: background (white) -0.1, full ink 1.175; the 28x28 field padded by 2.
    assert digits.background_value == -0.1
    assert x.min() == np.float32(-0.1) and x.max() == np.float32(1.175)
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, 0, border] == np.float32(-0.1))
    images, labels = next(iter(digits.train_dataloader()))
    assert images.shape == (64, 1, 32, 32) and labels.dtype == torch.int64


def test_digits_seed_sources_sizes_and_normalisations():
    a = DigitsDataModule(seed=1, train_size=1000)
    b = DigitsDataModule(seed=1, train_size=1000)
    c = DigitsDataModule(seed=2, train_size=1000)
    np.testing.assert_array_equal(a.arrays("train")[0], b.arrays("train")[0])
    assert not np.array_equal(a.arrays("train")[0], c.arrays("train")[0])
    assert np.bincount(a.arrays("train")[1]).tolist() == [100] * 10

    standard = DigitsDataModule(normalization="standard", image_size=28)
    x = standard.arrays("train")[0]
    assert x.shape[1:] == (1, 28, 28)
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1.0) < 1e-3
    assert x[:, 0, 0, 0] == pytest.approx(standard.background_value)
    unit = DigitsDataModule(normalization="unit", image_size=16)
    x = unit.arrays("val")[0]
    assert x.shape[1:] == (1, 16, 16) and x.min() == 0.0 and x.max() <= 1.0

    small = DigitsDataModule("sklearn", val_size=300, test_size=300)
    x, y = small.arrays("train")
    assert x.shape == (1797 - 600, 1, 32, 32) and x.min() == np.float32(-0.1)


def test_distortions_are_seeded_by_step_and_touch_only_training(digits):
    images, labels = next(iter(digits.train_dataloader()))
    batch = (images, labels)
    rng_state = torch.get_rng_state()
    first = augmented(digits, batch, step=5)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is left alone
    torch.testing.assert_close(augmented(digits, batch, step=5), first)  # same step, same distortions (a resumed fit)
    torch.testing.assert_close(augmented(digits, batch, step=5, epoch=3), first)  # the epoch plays no part
    assert first.shape == images.shape and not torch.allclose(first, images)
    assert not torch.allclose(augmented(digits, batch, step=6), first)
    assert not torch.allclose(augmented(digits, batch, step=5, rank=1), first)
    # The border fills with background, not with 0.
    assert first[:, :, 0, :].min() >= -0.1 - 1e-6 and first.min() >= -0.1 - 1e-6
    assert augmented(digits, batch, training=False, step=5) is images  # validation
    assert digits.on_after_batch_transfer(batch, 0)[0] is images  # no trainer: no distortion
    digits.trainer = fake_trainer(step=5)
    try:
        assert digits.on_after_batch_transfer(batch, 0)[1] is labels
    finally:
        digits.trainer = None


def test_test_shift_moves_only_the_test_images():
    plain, shifted = DigitsDataModule(), DigitsDataModule(test_shift=3)

    def centre_of_mass(x: np.ndarray) -> np.ndarray:
        ink = x[:, 0] + 0.1  # background 0
        rows, cols = np.indices(ink.shape[1:])
        total = ink.sum(axis=(1, 2))
        return np.stack([(ink * rows).sum(axis=(1, 2)) / total, (ink * cols).sum(axis=(1, 2)) / total], 1).mean(0)

    np.testing.assert_allclose(
        centre_of_mass(shifted.arrays("test")[0]) - centre_of_mass(plain.arrays("test")[0]), [3.0, 3.0], atol=0.05
    )
    np.testing.assert_array_equal(shifted.arrays("val")[0], plain.arrays("val")[0])
    assert shifted.arrays("test")[0].min() == np.float32(-0.1)


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_a_real_fit_changes_every_training_image_and_no_validation_image(tmp_path, family):
    dm = small_data(family)
    model, _ = fit_recorder(dm, tmp_path, 1, limit_val_batches=1)
    clean = dm.train_dataset.inputs.flatten(1)
    for _, x, _ in model.train_batches:
        assert torch.cdist(x.flatten(1), clean).min(dim=1).values.min() > 1e-3  # every image changed
    torch.testing.assert_close(model.val_batches[0], dm.val_dataset.inputs[:16])


def test_mnist_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data.download true"):
        DigitsDataModule("mnist", data_dir=str(tmp_path)).setup()
    # A miniature MNIST in torchvision's layout exercises the real loading path offline.
    write_miniature_mnist(tmp_path / "MNIST" / "raw")
    dm = DigitsDataModule("mnist", data_dir=str(tmp_path), val_size=50)
    assert [len(dm.arrays(s)[1]) for s in ("train", "val", "test")] == [150, 50, 30]  # test: all of it
    assert dm.arrays("test")[0].shape == (30, 1, 32, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": "emnist"}, "source must be one of"),
        ({"val_size": 3000, "test_size": 2500}, "too few"),
        ({"test_shift": 32}, "test_shift"),
        ({"image_size": 4}, "image_size"),
        ({"normalization": "minmax"}, "normalization"),
        ({"train_size": 5}, "train_size"),
    ],
)
def test_digits_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DigitsDataModule(**kwargs)


def test_exact_shards_hold_every_sample_once_in_the_epoch_order() -> None:
    from datamodules.sampling import EpochSeededSampler, ExactShardSampler

    data = list(range(5))
    for epoch in (0, 3):
        order = EpochSeededSampler(5, seed=7)
        order.set_epoch(epoch)
        shards = []
        for rank in range(2):
            sampler = ExactShardSampler(data, num_replicas=2, rank=rank, seed=7)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(sampler) == len(shards[-1])
        assert [len(s) for s in shards] == [3, 2]  # no padding: 5 samples, not 6
        assert sorted(shards[0] + shards[1]) == data
        assert shards[0] == list(order)[0::2] and shards[1] == list(order)[1::2]
