"""The detection data of datamodules/shapes.py: seeded shapes whose boxes, labels and masks agree,
batches that keep each image's own number of objects, the crowded and spread test sets, and the
one-line errors for bad arguments and for real data sets that are not on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou, masks_to_boxes

from datamodules.shapes import SHAPE_NAMES, ShapesDataModule, detection_collate

SMALL = dict(train_size=24, val_size=8, test_size=8, batch_size=8)


def test_the_same_seed_gives_the_same_images_and_another_seed_others() -> None:
    first, again, other = (ShapesDataModule(seed=s, **SMALL) for s in (3, 3, 4))
    for split in ("train", "val", "test"):
        a, b, c = (dm.dataset(split) for dm in (first, again, other))
        assert torch.equal(a.images, b.images)
        assert all(torch.equal(x["boxes"], y["boxes"]) and torch.equal(x["labels"], y["labels"]) for x, y in zip(a.targets, b.targets))
        assert not torch.equal(a.images, c.images)
    # the splits are different images
    assert not torch.equal(first.dataset("val").images, first.dataset("test").images)


def test_boxes_labels_and_masks_describe_the_same_shapes() -> None:
    dm = ShapesDataModule(min_objects=2, max_objects=5, size_range=(0.2, 0.3), **SMALL)
    data = dm.dataset("train")
    assert data.images.shape == (24, 3, 64, 64) and data.images.dtype == torch.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    counts = set()
    for target in data.targets:
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        counts.add(len(labels))
        assert 2 <= len(labels) <= 5 and boxes.shape == (len(labels), 4) and masks.shape == (len(labels), 64, 64)
        assert labels.dtype == torch.int64 and set(labels.tolist()) <= set(range(len(SHAPE_NAMES)))
        # boxes on pixel edges around the masks: masks_to_boxes gives the last pixel's index
        torch.testing.assert_close(boxes, masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0]))
        sides = boxes[:, 2:] - boxes[:, :2]
        assert float(sides.max()) <= 0.3 * 64 + 1 and float(sides.max(dim=1).values.min()) >= 0.2 * 64 - 2
        off_diagonal = box_iou(boxes, boxes) - torch.eye(len(boxes))
        assert float(off_diagonal.max()) == 0.0  # shapes do not overlap
    assert len(counts) > 1  # the number of objects varies from image to image


def test_batches_keep_a_list_of_targets_with_their_own_object_counts() -> None:
    dm = ShapesDataModule(min_objects=0, max_objects=3, **SMALL)
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (8, 3, 64, 64) and isinstance(targets, list) and len(targets) == 8
    assert [len(t["labels"]) for t in targets] == [len(t["labels"]) for t in dm.dataset("val").targets]
    assert len({len(t["labels"]) for t in targets}) > 1
    assert any(len(t["labels"]) == 0 and t["boxes"].shape == (0, 4) for t in dm.dataset("train").targets)
    images, targets = detection_collate([dm.dataset("val")[0], dm.dataset("val")[1]])
    assert images.shape == (2, 3, 64, 64) and len(targets) == 2


def test_the_training_order_changes_with_the_epoch_and_repeats_with_the_seed() -> None:
    orders = []
    for _ in range(2):
        dm = ShapesDataModule(**SMALL)
        sampler = dm.train_dataloader().sampler
        epochs = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            epochs.append(list(sampler))
        orders.append(epochs)
    assert orders[0] == orders[1] and orders[0][0] != orders[0][1]


@pytest.mark.parametrize("objects", [2, 4])
def test_crowded_test_images_have_every_centre_in_one_cell_and_spread_ones_in_different_cells(objects: int) -> None:
    for test_set in ("crowded", "spread"):
        dm = ShapesDataModule(test_set=test_set, crowded_objects=objects, crowded_grid=4, **SMALL)
        for target in dm.dataset("test").targets:
            boxes = target["boxes"]
            assert len(boxes) == objects
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            cells = {tuple(c) for c in (centres // 16).long().tolist()}
            assert len(cells) == (1 if test_set == "crowded" else objects)
            sides = boxes[:, 2:] - boxes[:, :2]
            assert float(sides.max()) <= 0.15 * 64 + 1  # the smallest shapes of the training range
            assert float((box_iou(boxes, boxes) - torch.eye(objects)).max()) == 0.0
        # the training and validation images stay random
        assert len({len(t["labels"]) for t in dm.dataset("train").targets}) > 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"source": "imagenet"}, "source must be one of"),
        ({"test_set": "dense"}, "test_set must be one of"),
        ({"image_size": 8}, "image_size must be >= 16"),
        ({"num_classes": 7}, "num_classes must be between 2 and 4"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects and max_objects"),
        ({"size_range": (0.5, 0.2)}, "size_range must be two fractions"),
        ({"train_size": 0}, "train_size, val_size and test_size must be >= 1"),
        ({"crowded_objects": 17}, "crowded_objects must be between 1 and crowded_grid"),
        ({"test_set": "crowded", "size_range": (0.3, 0.4)}, "do not fit side by side in one cell"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        ShapesDataModule(**arguments)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize(("source", "what"), [("voc", "Pascal VOC 2012"), ("coco", "COCO train2017")])
def test_missing_real_data_is_one_line_that_says_how_to_get_it(tmp_path: Path, source: str, what: str) -> None:
    dm = ShapesDataModule(source=source, data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        dm.setup()
    message = str(error.value)
    assert len(message.splitlines()) == 1 and what in message and "--data.download true" in message and str(tmp_path) in message


def write_tiny_coco(root: Path, split: str) -> None:
    """Two 40 x 60 images in COCO's layout: a polygon square (class 'box') and a polygon triangle
    (class 'wedge'), as ``CocoDetection`` and pycocotools read them."""
    from PIL import Image

    (root / "coco" / split).mkdir(parents=True)
    (root / "coco" / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for image_id in (1, 2):
        name = f"{image_id:012d}.png"
        Image.new("RGB", (60, 40), (90, 120, 30 * image_id)).save(root / "coco" / split / name)
        images.append({"id": image_id, "file_name": name, "width": 60, "height": 40})
    annotations.append({"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": 400.0, "bbox": [10, 10, 20, 20],
                        "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]})  # fmt: skip
    annotations.append({"id": 2, "image_id": 2, "category_id": 9, "iscrowd": 0, "area": 300.0, "bbox": [0, 0, 30, 20],
                        "segmentation": [[0, 0, 30, 0, 0, 20]]})  # fmt: skip
    categories = [{"id": 7, "name": "box"}, {"id": 9, "name": "wedge"}]
    (root / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def test_coco_targets_carry_instance_masks_resized_with_the_image(tmp_path: Path) -> None:
    """Mask R-CNN trains on COCO's masks: each object's polygon becomes a bool mask of the resized
    image, inside its (resized) box, the square's filling its box and the triangle half of its."""
    for split in ("train2017", "val2017"):
        write_tiny_coco(tmp_path, split)
    dm = ShapesDataModule(source="coco", data_dir=str(tmp_path), image_size=32, batch_size=2)
    dm.setup()
    fill = {}  # by class: 0 the square, 1 the triangle; val2017 is split into validation and test
    for dataset in (dm.dataset("val"), dm.dataset("test")):
        for index in range(len(dataset)):
            image, target = dataset[index]
            assert image.shape == (3, 32, 32) and target["masks"].shape == (1, 32, 32) and target["masks"].dtype == torch.bool
            x0, y0, x1, y1 = target["boxes"][0].tolist()
            rows, cols = target["masks"][0].nonzero(as_tuple=True)
            assert cols.min() >= x0 - 1 and cols.max() <= x1 and rows.min() >= y0 - 1 and rows.max() <= y1  # inside its box
            fill[int(target["labels"][0])] = target["masks"][0].sum().item() / ((x1 - x0) * (y1 - y0))
    assert sorted(fill) == [0, 1] and fill[0] > 0.85 and 0.35 < fill[1] < 0.65, fill
