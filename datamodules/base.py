"""What every in-memory datamodule here shares: three splits, seeded loaders, arrays for figures."""

from __future__ import annotations

from typing import Literal

import math

import lightning as L
import numpy as np
import torch.distributed as dist
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Sampler

from datamodules.sampling import EpochSeededSampler, ExactShardSampler, TensorPairs

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


class SplitDataModule(L.LightningDataModule):
    """A LightningDataModule whose ``setup`` fills ``train_dataset``, ``val_dataset`` and
    ``test_dataset`` with :class:`TensorPairs`.

    Subclasses set ``batch_size`` (``None``: a whole split per batch), ``seed`` and optionally
    ``num_workers``, and implement ``setup``. The training loader is shuffled anew each epoch in an
    order fixed by ``(seed, epoch)``; the others keep the stored order.
    """

    batch_size: int | None
    seed: int
    num_workers: int = 0
    #: Under DDP, shard every split without repeating a sample (:class:`ExactShardSampler`), for
    #: rules that sum over the data exactly once; ``False`` lets Lightning pad the shards as usual.
    exact_shards: bool = False
    train_dataset: TensorPairs | None
    val_dataset: TensorPairs | None
    test_dataset: TensorPairs | None

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
