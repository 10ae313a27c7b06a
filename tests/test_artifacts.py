"""Artifacts beyond checkpoints: the data of a fit (``dataset``) and its figures (``visualization``).

Real fits on real datamodules of this project, real wandb in offline mode, read back from the run's
transaction log: the records hold what ``wandb sync`` uploads, the manifest's entries and the
artifact's digest, by which wandb keeps the same content as one version.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from callbacks import (
    ConfusionMatrix,
    ConvFilters,
    GradientFlow,
    LearningCurves,
    WandbDatasetArtifact,
    WandbFigureArtifact,
    wandb_helpers,
)
from conftest import quiet_trainer
from datamodules import ImageFolderDataModule, ToyDataModule, VisionDataModule
from wandb_log import finished_records, read_run


class Classifier(L.LightningModule):
    """Any small classifier: a convolution for images, a linear layer for tabular rows."""

    def __init__(self, inputs: int, classes: int, image: bool = False) -> None:
        super().__init__()
        head = [nn.Conv2d(inputs, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes)]
        self.net = nn.Sequential(*head) if image else nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    wandb_helpers._said.clear()


def fit(root: Path, datamodule: L.LightningDataModule, model: L.LightningModule, callbacks: list[Any],
        max_epochs: int = 1, **settings: Any) -> tuple[L.Trainer, str]:
    """A short tracked fit: the trainer and the id of its (finished) offline wandb run."""
    logger = WandbLogger(project="artifacts-test", save_dir=str(root / "wandb_root"))
    trainer = quiet_trainer(default_root_dir=root, logger=logger, callbacks=callbacks, max_epochs=max_epochs,
                            num_sanity_val_steps=0, **settings)  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    run_id = logger.experiment.id
    logger.experiment.finish()
    return trainer, run_id


def run_log(root: Path, run_id: str) -> Path:
    (path,) = (root / "wandb_root" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    return path


def artifact_records(root: Path, run_id: str, kind: str) -> list[Any]:
    """The run's ``ArtifactRecord``s of one type, as wandb will upload them (digest, manifest entries)."""
    records = finished_records(run_log(root, run_id))
    return [r.artifact for r in records if r.WhichOneof("record_type") == "artifact" and r.artifact.type == kind]


def toy(seed: int = 0) -> ToyDataModule:
    return ToyDataModule("xor", n_samples=80, batch_size=16, seed=seed)


# ---------------------------------------------------------------------- dataset artifacts
def test_the_dataset_artifact_holds_the_splits_and_their_metadata(wandb_offline: Path) -> None:
    root = wandb_offline.parent
    data, callback = toy(), WandbDatasetArtifact()
    _, run_id = fit(root, data, Classifier(2, 2), [callback])

    (artifact,) = [a for a in read_run(run_log(root, run_id)).artifacts if a["type"] == "dataset"]
    assert artifact["name"] == "dataset-toy-xor" and artifact["files"] == ["splits.npz"]
    meta = artifact["metadata"]
    assert meta["datamodule"] == "ToyDataModule" and meta["source"] == "xor" and meta["seed"] == 0
    assert meta["hparams"]["n_samples"] == 80 and meta["hparams"]["noise"] == pytest.approx(0.1)
    assert meta["split_sizes"] == {"train": 48, "val": 16, "test": 16}
    assert meta["class_balance"] == {"train": {"0": 24, "1": 24}, "val": {"0": 8, "1": 8}, "test": {"0": 8, "1": 8}}
    assert meta["class_names"] == ["same sign", "different sign"] and len(meta["digest"]) == 64
    assert meta["fields"]["train.inputs"] == {"shape": [48, 2], "dtype": "<f4"}
    assert meta["file"] == "splits.npz" and meta["references"] == {}

    # the file is every split as the datamodule holds it
    with np.load(callback.logged["path"], allow_pickle=False) as stored:
        assert sorted(stored.files) == [f"{s}.{f}" for s in ("test", "train", "val") for f in ("inputs", "targets")]
        for split in ("train", "val", "test"):
            dataset = getattr(data, f"{split}_dataset")
            np.testing.assert_array_equal(stored[f"{split}.inputs"], dataset.inputs.numpy())
            np.testing.assert_array_equal(stored[f"{split}.targets"], dataset.targets.numpy())


def test_the_same_data_is_one_version_and_another_seed_another(wandb_offline: Path) -> None:
    root = wandb_offline.parent
    runs = {}
    for label, seed in (("first", 0), ("again", 0), ("seed 1", 1)):
        callback = WandbDatasetArtifact()
        _, run_id = fit(root / label, toy(seed), Classifier(2, 2), [callback])
        (record,) = artifact_records(root / label, run_id, "dataset")
        runs[label] = (record, callback.logged["path"].read_bytes())

    (first, first_bytes), (again, again_bytes), (other, _) = runs.values()
    assert first_bytes == again_bytes  # written anew, byte for byte
    with zipfile.ZipFile(io.BytesIO(first_bytes)) as archive:  # no time of writing in it (numpy's savez has one)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert first.digest and first.digest == again.digest  # wandb's version digest: one version
    assert [e.digest for e in first.manifest.contents] == [e.digest for e in again.manifest.contents]
    assert other.digest != first.digest
    digests = [json_metadata(r)["digest"] for r in (first, again, other)]
    assert digests[0] == digests[1] != digests[2]


def json_metadata(record: Any) -> dict[str, Any]:
    return json.loads(record.metadata)


def image_folder(where: Path, per_class: dict[str, int]) -> Path:
    """An ImageNet-style folder of tiny PNGs: ``train/`` and ``val/``, one sub-folder per class."""
    rng = np.random.default_rng(0)
    for part, scale in (("train", 1), ("val", 2)):
        for label, count in per_class.items():
            folder = where / part / label
            folder.mkdir(parents=True)
            for i in range(count // scale):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return where


def folder_data(data_dir: Path) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(data_dir), image_size=8, resize_size=8, val_size=2, normalization="unit", batch_size=4)


def test_data_on_disk_is_referenced_not_copied(wandb_offline: Path) -> None:
    root = wandb_offline.parent
    data_dir = image_folder(root / "pictures", {"cat": 6, "dog": 6})
    callback = WandbDatasetArtifact()
    _, run_id = fit(root / "first", folder_data(data_dir), Classifier(3, 2, image=True), [callback])

    (record,) = artifact_records(root / "first", run_id, "dataset")
    assert record.name == "dataset-imagefolder"
    entries = {e.path: e for e in record.manifest.contents}
    images = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.png"))
    assert sorted(entries) == sorted([*images, "splits.npz"])
    for name in images:  # each image a reference to the file where it lies, checksummed, not copied
        assert entries[name].ref == f"file://{data_dir / name}" and entries[name].size == (data_dir / name).stat().st_size
    assert not entries["splits.npz"].ref

    meta = json_metadata(record)
    assert meta["split_sizes"] == {"train": 10, "val": 2, "test": 6}
    assert meta["class_balance"]["train"] == {"0": 5, "1": 5} and meta["class_names"] == ["cat", "dog"]
    assert meta["references"] == {"train": f"file://{data_dir / 'train'}", "val": f"file://{data_dir / 'val'}"}
    assert meta["source"] == str(data_dir) and meta["digest_of"] == "every split's arrays and files"
    with np.load(callback.logged["path"], allow_pickle=False) as stored:  # which file is in which split
        assert sorted(stored["test.samples.path"].astype(str)) == sorted(i for i in images if i.startswith("val/"))

    # the same pictures elsewhere are the same data: one version
    moved = shutil.copytree(data_dir, root / "moved")
    _, moved_id = fit(root / "second", folder_data(moved), Classifier(3, 2, image=True), [WandbDatasetArtifact()])
    (again,) = artifact_records(root / "second", moved_id, "dataset")
    assert again.digest == record.digest and json_metadata(again)["digest"] == meta["digest"]


def test_large_in_memory_data_is_described_without_a_file(wandb_offline: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = wandb_offline.parent
    callback = WandbDatasetArtifact(max_bytes=100)
    with caplog.at_level("INFO"):
        _, run_id = fit(root, toy(), Classifier(2, 2), [callback])
    (record,) = artifact_records(root, run_id, "dataset")
    assert not record.manifest.contents and json_metadata(record)["file"] is None
    assert json_metadata(record)["split_sizes"]["train"] == 48 and len(json_metadata(record)["digest"]) == 64
    assert "larger than max_bytes=100" in caplog.text and "metadata only" in caplog.text


def test_without_a_datamodule_the_loaders_datasets_are_read(wandb_offline: Path) -> None:
    """Torch's own TensorDataset, and a Subset of it, from the loaders given to fit."""
    generator = torch.Generator().manual_seed(0)
    points, labels = torch.randn(40, 2, generator=generator), torch.arange(40) % 2
    pool = TensorDataset(points, labels)
    train = Subset(pool, list(range(0, 40, 2)) + [1, 3])
    callback = WandbDatasetArtifact()
    logger = WandbLogger(project="artifacts-test", save_dir=str(wandb_offline))
    trainer = quiet_trainer(default_root_dir=wandb_offline.parent, logger=logger, callbacks=[callback], max_epochs=1)
    trainer.fit(Classifier(2, 2), DataLoader(train, batch_size=8), DataLoader(pool, batch_size=20))
    run_id = logger.experiment.id
    logger.experiment.finish()

    (record,) = artifact_records(wandb_offline.parent, run_id, "dataset")
    meta = json_metadata(record)
    assert record.name == "dataset-data" and meta["datamodule"] is None and meta["hparams"] == {}
    assert meta["split_sizes"] == {"train": 22, "val": 40}
    assert meta["class_balance"] == {"train": {"0": 20, "1": 2}, "val": {"0": 20, "1": 20}}
    with np.load(callback.logged["path"], allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["train.tensors.0"], points[train.indices].numpy())
        np.testing.assert_array_equal(stored["val.tensors.1"], labels.numpy())


# ---------------------------------------------------------------------- visualization artifacts
def test_every_figure_is_in_one_visualization_artifact_and_the_images_dataset_in_a_dataset_one(wandb_offline: Path) -> None:
    root = wandb_offline.parent
    data = VisionDataModule("sklearn", train_size=60, val_size=20, test_size=20, batch_size=20)
    figures = [LearningCurves(every_n_epochs=1), ConfusionMatrix(), GradientFlow(every_n_steps=1), ConvFilters()]
    artifact = WandbFigureArtifact()  # before the figures in the list: it acts at the end of the fit
    datasets = WandbDatasetArtifact()
    trainer, run_id = fit(root, data, Classifier(1, 10, image=True), [artifact, datasets, *figures], max_epochs=2)

    folder = Path(trainer.log_dir) / "figures"
    written = sorted(p.name for p in folder.glob("*.png"))
    assert {"learning_curves.png", "learning_curves_epoch000.png", "learning_curves_epoch001.png", "confusion_matrix.png",
            "gradient_flow.png", "conv_filters.png", "feature_maps.png"} == set(written)  # fmt: skip
    assert sorted(p.name for f in figures for p in f.saved) == written

    log = read_run(run_log(root, run_id))
    (visual,) = [a for a in log.artifacts if a["type"] == "visualization"]
    assert visual["name"] == f"figures-{run_id}" and sorted(visual["files"]) == written
    assert visual["metadata"]["figures"] == written and {"latest", "epoch-2"} <= set(visual["aliases"])
    assert visual["metadata"]["epoch"] == 2 and visual["metadata"]["global_step"] == trainer.global_step == 6
    (record,) = artifact_records(root, run_id, "visualization")
    for entry in record.manifest.contents:  # copies of the files, not references
        assert not entry.ref and entry.size == (folder / entry.path).stat().st_size

    # an image datamodule that keeps stored images and labels (not torch's TensorDataset)
    (dataset,) = [a for a in log.artifacts if a["type"] == "dataset"]
    assert dataset["name"] == "dataset-vision-sklearn" and dataset["files"] == ["splits.npz"]
    assert dataset["metadata"]["split_sizes"] == {"train": 60, "val": 20, "test": 20}
    assert dataset["metadata"]["class_balance"]["train"] == {str(d): 6 for d in range(10)}
    assert dataset["metadata"]["fields"]["train.stored"] == {"shape": [60, 1, 8, 8], "dtype": "<f4"}


# ---------------------------------------------------------------------- without wandb
def test_without_a_wandb_logger_each_warns_once_and_writes_nothing(tmp_path: Path) -> None:
    callbacks = [WandbDatasetArtifact(), WandbFigureArtifact(), LearningCurves()]
    trainer = quiet_trainer(default_root_dir=tmp_path, logger=CSVLogger(tmp_path), callbacks=callbacks, max_epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Classifier(2, 2), datamodule=toy())
    messages = sorted(str(w.message).split(":")[0] for w in caught if "WandbLogger" in str(w.message))
    assert messages == ["WandbDatasetArtifact", "WandbFigureArtifact"]
    assert callbacks[0].logged is None and callbacks[1].logged == {} and callbacks[2].saved
    assert not list(tmp_path.rglob("splits.npz"))


@pytest.mark.parametrize("factory", [lambda: WandbDatasetArtifact(name="bad name!"), lambda: WandbFigureArtifact(name="a/b"),
                                     lambda: WandbDatasetArtifact(max_bytes=-1)])  # fmt: skip
def test_arguments_are_validated(factory: Any) -> None:
    with pytest.raises(ValueError, match="WandbDatasetArtifact|WandbFigureArtifact"):
        factory()
