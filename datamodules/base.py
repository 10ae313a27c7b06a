"""What every in-memory datamodule here shares: three splits, seeded loaders, arrays for figures,
and, for images, the seeded augmentation of training batches on the device."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.sampling import EpochSeededSampler, ExactShardSampler, TensorPairs, derive_seed, training_counters

Split = Literal["train", "val", "test"]


def stratified_split_indices(labels: np.ndarray, sizes: list[int | float], train_size: int | None, seed: int) -> list[np.ndarray]:
    """Seeded stratified cuts of ``range(len(labels))``: one sorted index array per held-out size
    (a count or a fraction, taken in order from what is left), then the training indices (the
    rest, or ``train_size`` of it). Every class keeps its share in every split."""
    rest, parts = np.arange(len(labels)), []
    for size in sizes:
        rest, part = train_test_split(rest, test_size=size, stratify=labels[rest], random_state=seed)
        parts.append(np.sort(part))
    if train_size is not None and train_size < len(rest):
        rest, _ = train_test_split(rest, train_size=train_size, stratify=labels[rest], random_state=seed)
    return [*parts, np.sort(rest)]


def check_split_sizes(
    source: str, pool: int, train_size: int | None, val_size: int, test_size: int | None, own_test_set: bool
) -> None:
    """One-line ``ValueError``s for split sizes that stratified cuts of a ``pool`` of images of ten
    classes cannot give: fewer than one image per class, or more images than the pool holds.

    ``own_test_set``: the source has an official test set, which is the test split, so only the
    training and validation splits come out of the pool (``test_size`` is ignored there).
    """
    for name, size in (("val_size", val_size), ("test_size", test_size), ("train_size", train_size)):
        if size is not None and size < 10:
            raise ValueError(f"{name} must be >= 10 (one image per class at least), got {size}")
    held_out = val_size + (0 if own_test_set else test_size or 0)
    if held_out + (train_size or 10) > pool:
        raise ValueError(
            f"source {source!r} has {pool} images to split, too few for train_size={train_size}, val_size={val_size}"
            + ("" if own_test_set else f", test_size={test_size}")
        )


def split_images(
    pool: tuple[Tensor, Tensor],
    test_set: tuple[Tensor, Tensor] | None,
    train_size: int | None,
    val_size: int,
    test_size: int | None,
    seed: int,
) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, np.ndarray]]:
    """Cut a pool of ``(images, labels)`` into train / val / test with :func:`stratified_split_indices`.

    Without a ``test_set``, ``test_size`` then ``val_size`` images are set aside from the pool; with
    one (a source's official test set), it is the test split and only ``val_size`` is set aside. The
    training split is the rest, or ``train_size`` of it.

    Returns:
        ``{split: (images, labels)}`` and ``{split: sorted indices}``, into the pool for train and
        val, and into the test set, or the pool, for test.
    """
    images, labels = pool
    if test_set is None:
        test, val, train = stratified_split_indices(labels.numpy(), [test_size, val_size], train_size, seed)
    else:
        val, train = stratified_split_indices(labels.numpy(), [val_size], train_size, seed)
        test = np.arange(len(test_set[1]))
    splits = {"train": (images[train], labels[train]), "val": (images[val], labels[val])}
    splits["test"] = test_set if test_set is not None else (images[test], labels[test])
    return splits, {"train": train, "val": val, "test": test}


class SplitDataModule(L.LightningDataModule):
    """A LightningDataModule whose ``setup`` fills ``train_dataset``, ``val_dataset`` and
    ``test_dataset`` with :class:`TensorPairs`.

    Subclasses pass the loaders' arguments to ``__init__`` and implement ``setup``. The training
    loader is shuffled anew each epoch in an order fixed by ``(seed, epoch)``; the others keep the
    stored order.

    Args:
        batch_size: the batch size of every loader; ``None``: a whole split per batch.
        seed: the seed of the shuffles (and of the subclass's splits and draws), ``>= 0``.
        num_workers: DataLoader worker processes.

    Raises:
        ValueError: for a batch size below 1, or a negative seed or number of workers.
    """
    #: Under DDP, shard every split without repeating a sample (:class:`ExactShardSampler`), for
    #: rules that sum over the data exactly once; ``False`` lets Lightning pad the shards as usual.
    exact_shards: bool = False
    train_dataset: TensorPairs | None
    val_dataset: TensorPairs | None
    test_dataset: TensorPairs | None

    def __init__(self, batch_size: int | None, seed: int, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None (whole split), got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.train_dataset = self.val_dataset = self.test_dataset = None
        #: after ``setup``, ``{"train", "val", "test"}`` -> sorted indices of each split's samples in
        #: its source (empty where the splits are not cut from one)
        self.split_indices: dict[str, np.ndarray] = {}

    def arrays(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """The (prepared) inputs and targets of a split as float32 / int64 arrays.

        Sets the data up first if needed. Used by figures and by the NumPy learners' tests.
        """
        data = self._split(split)
        return data.inputs.numpy().copy(), data.targets.numpy().copy()

    def _split(self, split: str) -> TensorPairs:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.setup()
        return getattr(self, f"{split}_dataset")

    def _loader(self, data: TensorPairs, shuffle: bool) -> DataLoader:
        sampler: Sampler[int] = EpochSeededSampler(len(data), seed=self.seed, shuffle=shuffle)
        batch_size = self.batch_size or len(data)
        world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if self.exact_shards and world_size > 1:
            if len(data) < world_size:
                raise ValueError(f"{type(self).__name__}: {len(data)} samples cannot be shared by {world_size} processes")
            sampler = ExactShardSampler(data, world_size, dist.get_rank(), seed=self.seed, shuffle=shuffle)
            shards = [len(range(rank, len(data), world_size)) for rank in range(world_size)]
            batch_size = self.batch_size or shards[0]
            if len({math.ceil(shard / batch_size) for shard in shards}) > 1:
                raise ValueError(
                    f"{type(self).__name__}: shards of {min(shards)} and {max(shards)} samples make a different number of "
                    f"batches of {batch_size} on different processes; use batch_size None (one batch per process)"
                )
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=TensorPairs.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled anew each epoch, in an order fixed by ``(seed, epoch)``."""
        return self._loader(self._split("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._split("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._split("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, in order (predictions line up with ``arrays("test")``)."""
        return self._loader(self._split("test"), shuffle=False)


class AugmentedDataModule(SplitDataModule):
    """A :class:`SplitDataModule` whose training batches are changed at random on the device.

    The random part happens in :meth:`on_after_batch_transfer`, on training batches only, with a
    ``torch.Generator`` seeded from the fit's counters (:meth:`batch_generator`): every batch of
    every epoch on every rank gets its own draws, and a fit resumed from a checkpoint draws them
    again, since Lightning restores these counters. Evaluation batches are never changed, and the
    global random state is left alone.

    Subclasses set ``augment`` (whether to change training batches) and implement :meth:`augment_batch`.
    """

    #: change training batches (:meth:`augment_batch`)
    augment: bool = False

    def augment_batch(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The changed images of a training batch, with every random draw from ``generator``."""
        raise NotImplementedError

    def batch_generator(self, trainer: Any) -> torch.Generator:
        """The generator of the current training batch: seeded from ``(seed, epoch, global_step,
        global_rank, batch)``, ``batch`` being the fit loop's running batch count (0 without a fit
        loop), which matters where ``global_step`` stands still (gradient accumulation)."""
        return torch.Generator().manual_seed(derive_seed(self.seed, *training_counters(trainer)))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment the images of training batches (when ``augment``), already on the device; others pass untouched.

        Note: Lightning uses the datamodule's hook instead of the model's when both define it.
        """
        trainer = self.trainer
        if not (self.augment and trainer is not None and trainer.training):
            return batch
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            return batch  # not a training pair (e.g. the model summary's example input)
        images, labels = batch
        return self.augment_batch(images, self.batch_generator(trainer)), labels


class DatasetDataModule(L.LightningDataModule):
    """The loaders of a datamodule whose splits are map-style datasets (images with targets of
    their own shape, or lists of boxes): a subclass sets ``batch_size``, ``seed`` and
    ``num_workers``, and its ``setup`` fills ``datasets`` (``{"train": ..., "val": ..., "test": ...}``);
    ``collate_fn`` batches examples (``None``: PyTorch's default). The training order is shuffled
    anew each epoch, fixed by ``(seed, epoch)``; the held-out splits keep their order.
    """

    collate_fn: Any = None
    batch_size: int
    seed: int
    num_workers: int
    datasets: dict[str, Dataset]

    def dataset(self, split: str) -> Dataset:
        """The data set of ``split`` (``train``, ``val`` or ``test``), set up if needed."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.setup()
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(data), seed=self.seed, shuffle=shuffle),  # type: ignore[arg-type]
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled anew each epoch, in an order fixed by ``(seed, epoch)``."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
