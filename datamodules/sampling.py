"""Reproducible sampling and whole-batch tensor datasets shared by the datamodules.

Two small pieces that every datamodule in this package uses:

* :class:`EpochSeededSampler` shuffles the training set with an order that depends only on
  ``(seed, epoch)``. Lightning calls ``set_epoch(epoch)`` on the train sampler at the start of
  every epoch, so a fit resumed from a checkpoint written at the end of epoch ``k`` draws, for
  epoch ``k + 1``, exactly the order an uninterrupted run would have drawn. A ``RandomSampler(generator=...)`` cannot promise that: its
  generator is a stream that restarts from its seed in the resumed process.
* :class:`TensorPairs` holds ``(inputs, targets)`` as two tensors and answers a whole batch of
  indices with one indexing operation (``__getitems__``) instead of one Python call per sample.

Example::

    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> data = TensorPairs(torch.randn(10, 2), torch.arange(10) % 2)
    >>> loader = DataLoader(data, batch_size=4, sampler=EpochSeededSampler(10, seed=0),
    ...                     collate_fn=TensorPairs.collate)
    >>> inputs, targets = next(iter(loader))
    >>> inputs.shape, targets.shape
    (torch.Size([4, 2]), torch.Size([4]))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler, default_collate


def derive_seed(*values: int) -> int:
    """Mix non-negative integers into one 63-bit seed for a ``torch.Generator``.

    ``numpy.random.SeedSequence`` hashes its entropy well, so neighbouring inputs such as
    ``(0, 1)`` and ``(0, 2)`` (seed, epoch) give unrelated streams, and the result is the same on
    every machine and in every process (unlike Python's salted ``hash`` of strings).

    Args:
        values: the integers to mix, e.g. ``(seed, epoch)`` or ``(seed, step, rank)``.

    Returns:
        An integer in ``[0, 2**63)``, a valid argument of ``torch.Generator.manual_seed``.

    Raises:
        ValueError: if a value is negative.
    """
    if any(int(v) < 0 for v in values):
        raise ValueError(f"derive_seed takes non-negative integers, got {values}")
    low, high = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return ((int(high) << 32) | int(low)) & (2**63 - 1)


def training_counters(trainer: Any) -> tuple[int, int, int, int]:
    """``(epoch, global_step, global_rank, batch)`` of the batch being trained, for seeding what is
    drawn for it (augmentations, distortions).

    ``batch`` is the fit loop's running batch count (0 without a fit loop). Lightning restores
    these counters from a checkpoint, so a resumed fit draws the same again; the batch count
    matters where ``global_step`` stands still (gradient accumulation, manual optimisation).
    """
    fit_loop = getattr(trainer, "fit_loop", None)
    batch = max(int(getattr(fit_loop, "total_batch_idx", -1)) + 1, 0)  # -1 until the first batch is counted
    return int(getattr(trainer, "current_epoch", 0)), int(trainer.global_step), int(trainer.global_rank), batch


class EpochSeededSampler(Sampler[int]):
    """Shuffle ``range(num_samples)`` with an order that is a pure function of ``(seed, epoch)``.

    Each ``__iter__`` draws ``torch.randperm`` from a fresh ``torch.Generator`` seeded with
    ``derive_seed(seed, epoch)``: the same ``(seed, epoch)`` gives the same order in any process,
    and every epoch gives a new order once ``set_epoch`` is called, which Lightning does before
    each training epoch.

    Under DDP Lightning wraps a custom sampler in ``DistributedSamplerWrapper``: the wrapper lists
    this sampler's indices (identical on every rank, since they depend on seed and epoch only),
    forwards ``set_epoch`` to it, and gives each rank a disjoint shard of that list.

    Args:
        num_samples: size of the dataset to sample from.
        seed: base seed, a non-negative integer.
        shuffle: ``False`` yields ``0, 1, ..., num_samples - 1`` (for evaluation loaders).

    Raises:
        ValueError: if ``num_samples`` or ``seed`` is negative.

    Example::

        >>> sampler = EpochSeededSampler(5, seed=3)
        >>> sampler.set_epoch(2)
        >>> first = list(sampler)
        >>> sampler.set_epoch(0); sampler.set_epoch(2)
        >>> list(sampler) == first
        True
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True) -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next ``__iter__`` yields (called by Lightning)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ExactShardSampler(DistributedSampler):
    """This process's share of an :class:`EpochSeededSampler` order, with no sample repeated.

    Lightning's own distributed sampler pads the shards to equal length by repeating samples, which
    is harmless for gradient descent but wrong for a rule that sums over the data exactly once
    (Hebbian storage: a repeated pattern is stored twice). Process ``rank`` of ``num_replicas``
    takes positions ``rank, rank + num_replicas, ...`` of the ``(seed, epoch)`` order; together the
    shards hold every sample once. Being a ``DistributedSampler``, Lightning leaves it in place.

    Args:
        dataset: the dataset to sample from (only its length is used).
        num_replicas, rank: the number of processes and this one's rank.
        seed, shuffle: as for :class:`EpochSeededSampler`.
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int, seed: int = 0, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.order = EpochSeededSampler(len(dataset), seed=seed, shuffle=shuffle)
        self.num_samples = len(range(rank, len(dataset), num_replicas))  # no padding
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        self.order.set_epoch(self.epoch)
        return iter(list(self.order)[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class PairBatch(Sequence):
    """A batch already gathered by :meth:`TensorPairs.__getitems__`.

    ``inputs`` and ``targets`` are the batched tensors; :meth:`TensorPairs.collate` hands them on
    untouched. The class is also a sequence of ``(input, target)`` samples, so a ``DataLoader``
    built without ``collate_fn`` still works: torch's ``default_collate`` (torch 2.x) receives
    whatever ``__getitems__`` returns, iterates it sample by sample and stacks the samples again
    into ``[inputs, targets]`` (correct, only slower).
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.inputs[index], self.targets[index]


class TensorPairs(Dataset):
    """``(inputs, targets)`` held as two tensors, fetched a whole batch at a time.

    PyTorch's ``DataLoader`` calls ``dataset.__getitems__(indices)`` when the dataset has one,
    and passes its result to the loader's ``collate_fn``. Here ``__getitems__`` gathers the batch with one tensor index per
    field and :meth:`collate` passes it through, so a batch of 4,000 costs two indexing ops
    rather than 4,000 ``__getitem__`` calls and a stack.

    Args:
        inputs: tensor of shape ``(N, ...)``.
        targets: tensor of shape ``(N, ...)``, the same ``N``.

    Raises:
        ValueError: if the two tensors disagree on ``N``.

    Example::

        >>> data = TensorPairs(torch.zeros(6, 3), torch.arange(6))
        >>> batch = TensorPairs.collate(data.__getitems__([4, 0]))
        >>> batch[1].tolist()
        [4, 0]
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> PairBatch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return PairBatch(self.inputs[index], self.targets[index])

    @staticmethod
    def collate(batch: Any) -> Any:
        """``collate_fn`` for loaders over :class:`TensorPairs`: pass a gathered batch through.

        Returns ``(inputs, targets)`` for a :class:`PairBatch`; anything else (a list of samples
        from another dataset) goes to torch's ``default_collate``.
        """
        if isinstance(batch, PairBatch):
            return batch.inputs, batch.targets
        return default_collate(batch)
