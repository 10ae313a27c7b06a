"""Tools shared by the CNN and datamodule tests: a quiet Trainer and a model that records its batches,
parameters, multiply-adds and output shapes, the layout check, stand-ins for the trainer that the
augmentation hooks read, miniature MNIST files, and one torch thread."""

from __future__ import annotations

import struct
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch import Tensor, nn


from conftest import quiet_trainer  # noqa: F401  (shared by the CNN tests through this module)


class Recorder(L.LightningModule):
    """A linear classifier of the flattened inputs that records what its steps receive:
    ``train_batches`` holds ``(epoch, inputs, targets)``, ``val_batches`` the inputs."""

    def __init__(self, in_features: int, classes: int = 2) -> None:
        super().__init__()
        self.layer = nn.Linear(in_features, classes)
        self.train_batches: list[tuple[int, Tensor, Tensor]] = []
        self.val_batches: list[Tensor] = []

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        self.train_batches.append((self.current_epoch, x.clone(), y.clone()))
        return nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.val_batches.append(batch[0].clone())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_recorder(data: L.LightningDataModule, root: Path, max_epochs: int, ckpt_path: Path | None = None, **kwargs: Any) -> tuple[Recorder, L.Trainer]:
    """A :class:`Recorder` fitted on ``data`` (no sanity check), and its trainer."""
    data.setup()
    inputs, _ = data.train_dataset[0]
    model = Recorder(inputs.numel(), data.num_classes)
    trainer = quiet_trainer(max_epochs=max_epochs, devices=1, num_sanity_val_steps=0, default_root_dir=root, **kwargs)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model, trainer


def fake_trainer(training: bool = True, epoch: int = 0, step: int = 0, rank: int = 0, batch: int = -1) -> types.SimpleNamespace:
    """The trainer attributes that the datamodules' augmentation hooks read (``LightningDataModule.trainer``
    is a plain attribute, so a stand-in can be assigned to it); ``batch`` is the fit loop's ``total_batch_idx``."""
    return types.SimpleNamespace(
        training=training, current_epoch=epoch, global_step=step, global_rank=rank,
        fit_loop=types.SimpleNamespace(total_batch_idx=batch),
    )


def augmented(dm: L.LightningDataModule, pair: tuple[Tensor, Tensor], **trainer: Any) -> Tensor:
    """The images of ``pair`` after ``dm``'s batch hook, under :func:`fake_trainer` with ``trainer``'s values."""
    dm.trainer = fake_trainer(**trainer)
    try:
        return dm.on_after_batch_transfer(pair, 0)[0]
    finally:
        dm.trainer = None


def write_miniature_mnist(raw: Path, train: int = 200, test: int = 30) -> None:
    """MNIST's four idx files in ``raw`` (torchvision's layout), ``train`` and ``test`` random images
    with labels 0, 1, ..., 9, 0, ...: the real loading path, offline."""
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train), ("t10k", test)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", np.arange(n) % 10)):
            # big-endian header: two zero bytes, 0x08 (unsigned bytes), the number of dimensions, each dimension
            header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())


def count(module: nn.Module) -> int:
    """Number of parameters (works on the meta device: nothing is allocated)."""
    return sum(p.numel() for p in module.parameters())


def multiply_adds(model: nn.Module, image: Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers for one image (the papers' "ops", "FLOPs")."""
    total = 0

    def hook(module: nn.Module, _inputs: object, output: Tensor) -> None:
        nonlocal total
        fan_in = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        total += output[0].numel() * fan_in

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return total


def output_shapes(model: nn.Module, image: Tensor, names: Iterable[str]) -> tuple[Tensor, dict[str, tuple[int, ...]]]:
    """The model's output for ``image`` and the output shape (without the batch) of each named submodule."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:]))) for n in names]
    with torch.no_grad():
        scores = model(image)
    for handle in handles:
        handle.remove()
    return scores, shapes


def assert_channels_last_gives_the_same_outputs(model: nn.Module, images: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """The NHWC layout changes strides, not values: the same outputs in eval mode; the model is left NCHW."""
    model.eval()
    with torch.no_grad():
        expected = model(images)
        model.to(memory_format=torch.channels_last)
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
        found = model(images.contiguous(memory_format=torch.channels_last))
        model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(found, expected, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for the small convolutions of these files (two threads on a shared machine
    wait for each other); the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
