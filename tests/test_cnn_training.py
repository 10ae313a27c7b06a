"""Training the CNNs the way a practitioner would: mixed precision through the Trainer's
``precision``, ``channels_last`` (callbacks.ChannelsLast), nothing an Apple GPU cannot run (no
float64 in a training step, no CUDA-only call), and the generalisation gap callback.

Real Trainer fits of tiny versions of each network, on the CPU with ``bf16-mixed``, the mixed
precision a CPU offers (``16-mixed`` is a GPU setting).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cnn_revolution.alexnet import AlexNet
from ai_scratch.cnn_revolution.googlenet import GoogLeNet
from ai_scratch.cnn_revolution.lenet5 import LeNet5
from ai_scratch.cnn_revolution.resnet import ResNet
from ai_scratch.cnn_revolution.vgg import VGG
from callbacks import ChannelsLast, GeneralizationGap
from cnn_tools import one_thread, quiet_trainer  # noqa: F401 (one_thread: a module fixture, used below)
from datamodules import VisionDataModule

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

#: Tiny versions of each CNN on 3-channel images (one channel would make every layout the same).
TINY: dict[str, Callable[[], nn.Module]] = {
    "lenet5": lambda: LeNet5(input_channels=3),
    "alexnet": lambda: AlexNet(num_classes=10, input_size=20, stem="small", width=0.125),
    "vgg": lambda: VGG(config="A", num_classes=10, input_size=12, width=0.125, batch_norm=True, pooling_stages=3),
    "googlenet": lambda: GoogLeNet(num_classes=10, input_size=12, stem="cifar", width=0.125),  # with aux heads
    "resnet": lambda: ResNet(depth=20, family="cifar", num_classes=10, input_size=8, width=0.5, grad_norm_every_n_steps=1),
}


def random_images(model: nn.Module, batches: int = 2, batch_size: int = 8) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    n = batches * batch_size
    images = torch.randn(n, *model.input_size, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


@pytest.mark.parametrize("name", sorted(TINY))
def test_bf16_mixed_precision_and_channels_last_through_the_trainer(name: str) -> None:
    torch.manual_seed(0)
    model = TINY[name]()
    loader = random_images(model)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    seen: dict[str, object] = {}

    def probe(_module: nn.Module, args: tuple, output: Tensor) -> None:
        if model.training:  # a training step, not the sanity check or validation
            seen.update(input_channels_last=args[0].is_contiguous(memory_format=torch.channels_last), dtype=output.dtype)

    first_conv.register_forward_hook(probe)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = quiet_trainer(precision="bf16-mixed", callbacks=[ChannelsLast()], max_epochs=1, limit_val_batches=1)
    trainer.fit(model, loader, loader)

    assert seen == {"input_channels_last": True, "dtype": torch.bfloat16}  # autocast, NHWC inputs
    weights = [p for p in model.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # mixed: the weights stay float32
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it learned
    assert torch.isfinite(trainer.callback_metrics["train_loss"]) and torch.isfinite(trainer.callback_metrics["val_loss"])
    assert model.model_info()["precision"] == "bf16-mixed"
    if name == "googlenet":  # the auxiliary losses are computed and logged under autocast too
        assert torch.isfinite(trainer.callback_metrics["train_aux2_loss"])
    if name == "resnet":
        assert set(model.last_block_gradient_norms) == {f"grad_norm/block_{i}" for i in range(1, 10)}
    assert not any(m._forward_pre_hooks for m in model.modules())  # ChannelsLast removed its hooks at teardown


def test_channels_last_gives_the_same_training_step() -> None:
    """The layout changes strides, not values: one SGD step in each layout, the same weights."""
    results = []
    for callbacks in ([], [ChannelsLast()]):
        torch.manual_seed(0)
        model = TINY["vgg"]()
        quiet_trainer(callbacks=callbacks, max_steps=1, limit_val_batches=0).fit(model, random_images(model, batches=1))
        results.append({k: v.contiguous() for k, v in model.state_dict().items()})
    for key in results[0]:
        torch.testing.assert_close(results[1][key], results[0][key], rtol=1e-4, atol=1e-5, msg=key)


class FloatTable(L.LightningModule):
    """A model without images: ChannelsLast must leave it alone."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_channels_last_leaves_a_model_without_images_alone() -> None:
    model = FloatTable()
    data = DataLoader(TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,))), batch_size=4)
    quiet_trainer(callbacks=[ChannelsLast()], max_epochs=1).fit(model, data)
    assert model.layer.weight.is_contiguous() and not any(m._forward_pre_hooks for m in model.modules())


# ---------------------------------------------------------------------- what an MPS device needs
class Float64Finder(TorchFunctionMode):
    """Records every torch function that returns a float64 tensor while the mode is on."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, Tensor) and t.dtype == torch.float64 for t in tree_leaves(out)):
            self.found.add(getattr(func, "__qualname__", repr(func)))
        return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_training_step_makes_no_float64_tensor(name: str) -> None:
    """Apple's MPS has no float64: the forward pass, the loss, the backward pass, the optimiser, the
    metrics, the logging and the on-device augmentation of a real fit must all stay in float32."""
    torch.manual_seed(0)
    model = TINY[name]()
    channels, side, _ = model.input_size
    data = VisionDataModule(source="sklearn", channels=channels, image_size=side, train_size=32, batch_size=16, augment=True)
    data.prepare_data()
    data.setup("fit")  # the data statistics (float64 sums, on the CPU, once) before the check
    finder = Float64Finder()
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1, num_sanity_val_steps=0)
    with finder:
        trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    assert not finder.found, sorted(finder.found)


def test_no_cuda_only_calls_in_the_models_datamodules_and_callbacks() -> None:
    """Devices come from the Trainer: nothing moves a tensor to CUDA by name or asks CUDA directly."""
    pattern = re.compile(r"\.cuda\(|torch\.cuda\.|device=['\"]cuda|\.double\(\)|torch\.float64")
    offending = []
    for folder in ("ai_scratch/cnn_revolution", "callbacks"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if pattern.search(line.split("#")[0]):
                    offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offending, offending


# ---------------------------------------------------------------------- generalisation gap
class DropoutTable(L.LightningModule):
    """A linear classifier behind heavy dropout: its training-mode accuracy understates its fit."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(0.6), nn.Linear(6, 3))
        self.logged_train_accuracy: list[float] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        scores = self(batch[0])
        return nn.functional.cross_entropy(scores, batch[1])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        scores = self(batch[0])
        accuracy = (scores.argmax(-1) == batch[1]).float().mean()
        loss = nn.functional.cross_entropy(scores, batch[1])
        self.log_dict({"val_accuracy": accuracy, "val_loss": loss}, on_epoch=True, batch_size=len(batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def table_data(seed: int, n: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(3, 6, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return TensorDataset(centres[labels] + 1.5 * torch.randn(n, 6, generator=generator), labels)


def test_generalization_gap_measures_the_training_set_in_eval_mode(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DropoutTable()
    train, val = table_data(0, 96), table_data(0, 200)  # the same centres, other points
    gap = GeneralizationGap()
    logger = L.pytorch.loggers.CSVLogger(tmp_path, name="gap")
    trainer = quiet_trainer(callbacks=[gap], max_epochs=4, check_val_every_n_epoch=2, logger=logger, log_every_n_steps=1)
    trainer.fit(model, DataLoader(train, batch_size=32), DataLoader(val, batch_size=50))

    model.eval()
    with torch.no_grad():
        train_scores, val_scores = model(train.tensors[0]), model(val.tensors[0])
    expected_train = (train_scores.argmax(-1) == train.tensors[1]).float().mean()
    expected_val = (val_scores.argmax(-1) == val.tensors[1]).float().mean()
    train_loss = nn.functional.cross_entropy(train_scores, train.tensors[1])
    val_loss = nn.functional.cross_entropy(val_scores, val.tensors[1])
    metrics = trainer.callback_metrics
    torch.testing.assert_close(metrics["train_eval_accuracy"], expected_train)
    torch.testing.assert_close(metrics["val_accuracy"], expected_val)
    torch.testing.assert_close(metrics["generalization_gap"], expected_train - expected_val)
    torch.testing.assert_close(metrics["train_eval_loss"], train_loss)
    torch.testing.assert_close(metrics["generalization_loss_gap"], val_loss - train_loss)
    assert metrics["train_eval_accuracy"] > 0.6  # it learned: the check is not of a constant

    # logged only after the epochs that were validated (epochs 1 and 3 of 0..3)
    rows = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    gap_epochs = [row.split(",")[header.index("epoch")] for row in rows[1:] if row.split(",")[header.index("generalization_gap")]]
    assert gap_epochs == ["1", "3"]


def test_generalization_gap_rejects_a_bad_batch_limit() -> None:
    with pytest.raises(ValueError, match="max_batches"):
        GeneralizationGap(max_batches=0)
