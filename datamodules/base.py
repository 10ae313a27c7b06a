"""What every in-memory datamodule here shares: three splits, seeded loaders, arrays for figures."""

from __future__ import annotations

from typing import Literal

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from datamodules.sampling import EpochSeededSampler, TensorPairs

Split = Literal["train", "val", "test"]


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
        return DataLoader(
            data,
            batch_size=self.batch_size or len(data),
            sampler=EpochSeededSampler(len(data), seed=self.seed, shuffle=shuffle),
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
