"""The generic detection figure (callbacks/detections.py) in real Lightning fits of a tiny module
written here, which is not one of the project's models: its ``predict`` puts the same boxes (and
masks) on every image. The PNG is drawn, and with wandb offline the transaction log holds the
images with their box (and mask) overlays, class labels and scores."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import Tensor, nn

from callbacks import wandb_helpers
from callbacks.detections import DetectionPredictions
from conftest import quiet_trainer
from datamodules.shapes import ShapesDataModule
from wandb_log import find_runs, read_run


@pytest.fixture(autouse=True)
def fresh_notices() -> None:
    wandb_helpers._said.clear()


class FixedBoxes(L.LightningModule):
    """Predicts two boxes on every image: a confident square of class 0 and a doubtful one of class 2
    (with masks when ``masks``); learns one number so that the Trainer has something to fit."""

    def __init__(self, masks: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.masks = masks

    def predict(self, images: Tensor) -> list[dict[str, Tensor]]:
        found = []
        for _ in images:
            detection = {
                "boxes": torch.tensor([[4.0, 4.0, 20.0, 20.0], [30.0, 30.0, 50.0, 60.0]]),
                "scores": torch.tensor([0.9, 0.2]),
                "labels": torch.tensor([0, 2]),
            }
            if self.masks:
                masks = torch.zeros(2, *images.shape[-2:])
                masks[0, 4:20, 4:20], masks[1, 30:60, 30:50] = 1.0, 0.7
                detection["masks"] = masks
            found.append(detection)
        return found

    def training_step(self, batch: tuple[Tensor, list], batch_idx: int) -> Tensor:
        return (self.weight - 1.0) ** 2

    def validation_step(self, batch: tuple[Tensor, list], batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def shapes() -> ShapesDataModule:
    return ShapesDataModule(train_size=8, val_size=8, test_size=8, batch_size=4)


def fit(root: Path, module: L.LightningModule, callback: DetectionPredictions, **kwargs: object) -> L.Trainer:
    trainer = quiet_trainer(default_root_dir=root, callbacks=[callback], max_epochs=1, **kwargs)
    trainer.fit(module, shapes())
    return trainer


def test_the_png_shows_predictions_above_the_threshold_and_the_truth(tmp_path: Path) -> None:
    callback = DetectionPredictions(num_images=5, score_threshold=0.5)
    fit(tmp_path, FixedBoxes(), callback)
    (path,) = callback.saved
    assert path.name == "detections.png"
    with Image.open(path) as image:
        assert image.width > 1000 and image.height > 400
    images, found, truth, names = callback.examples
    assert images.shape == (5, 3, 64, 64) and len(found) == len(truth) == 5
    assert names == ["circle", "square", "triangle", "cross"]  # the datamodule's
    torch.testing.assert_close(truth[0]["boxes"], shapes().dataset("val").targets[0]["boxes"])


def test_the_test_split_draws_the_datamodules_test_images(tmp_path: Path) -> None:
    callback = DetectionPredictions(num_images=2, split="test")
    fit(tmp_path, FixedBoxes(), callback)
    assert [path.name for path in callback.saved] == ["detections_test.png"]
    torch.testing.assert_close(callback.examples[0], shapes().dataset("test").images[:2])


def test_a_module_without_detections_is_told_once_and_nothing_is_drawn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Scores(FixedBoxes):
        def predict(self, images: Tensor) -> Tensor:
            return torch.zeros(len(images), 4)

    callback = DetectionPredictions()
    with caplog.at_level(logging.INFO):
        fit(tmp_path, Scores(), callback)
    assert callback.saved == [] and callback.examples is None
    assert sum("predictions are not one dict of boxes, scores and labels per image" in r.getMessage() for r in caplog.records) == 1


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="num_images must be an integer >= 1"):
        DetectionPredictions(num_images=0)
    with pytest.raises(ValueError, match=r"score_threshold must be in \[0, 1\]"):
        DetectionPredictions(score_threshold=2.0)
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        DetectionPredictions(split="train")
    with pytest.raises(ValueError, match="every_n_epochs"):
        DetectionPredictions(every_n_epochs=0)


@pytest.mark.parametrize("masks", [False, True])
def test_wandb_gets_the_images_with_box_overlays_class_labels_and_scores(wandb_offline: Path, masks: bool) -> None:
    logger = WandbLogger(project="detections-test", save_dir=str(wandb_offline))
    callback = DetectionPredictions(num_images=3, wandb_min_score=0.1)
    fit(wandb_offline.parent, FixedBoxes(masks=masks), callback, logger=logger)
    logger.experiment.finish()
    log = read_run(find_runs(wandb_offline)[0])
    rows = [row for row in log.history if "detections/val" in row or "detections/val/_type" in row]
    assert len(rows) == 1
    logged = {key.removeprefix("detections/val/"): value for key, value in rows[0].items() if key.startswith("detections/val")}
    assert logged["_type"] == "images/separated" and logged["count"] == 3
    boxes = logged["all_boxes"]
    assert len(boxes) == 3 and set(boxes[0]) == {"predictions", "ground_truth"}
    assert boxes[0]["predictions"]["_type"] == "boxes2D"
    # the overlays themselves are files beside the log, named in the history
    files = next(wandb_offline.glob("wandb/offline-run-*/files"))
    predicted = [json.loads((files / entry["predictions"]["path"]).read_text()) for entry in boxes]
    truth = [json.loads((files / entry["ground_truth"]["path"]).read_text()) for entry in boxes]
    first = predicted[0]["box_data"]
    assert [b["class_id"] for b in first] == [0, 2] and [b["scores"]["score"] for b in first] == pytest.approx([0.9, 0.2])
    assert first[0]["position"] == {"minX": 4.0, "minY": 4.0, "maxX": 20.0, "maxY": 20.0} and first[0]["domain"] == "pixel"
    assert predicted[0]["class_labels"] == {"0": "circle", "1": "square", "2": "triangle", "3": "cross"}
    expected = shapes().dataset("val").targets[:3]
    assert [[b["class_id"] for b in t["box_data"]] for t in truth] == [t["labels"].tolist() for t in expected]
    assert not any("scores" in b for t in truth for b in t["box_data"])
    if masks:
        overlays = logged["all_masks"]
        assert len(overlays) == 3 and set(overlays[0]) == {"predictions", "ground_truth"}
        with Image.open(files / overlays[0]["predictions"]["path"]) as picture:
            classes = set(np.unique(np.asarray(picture)).tolist())
        assert classes == {0, 1, 3}  # background, circle (0 + 1) and triangle (2 + 1)
    else:
        assert "all_masks" not in logged  # a box detector's overlays are its boxes
    assert "figures/detections/_type" in log.history_keys  # the PNG as well
