"""Object detection data: generated shapes offline, Pascal VOC and COCO with a download.

Every example is an image and a *target*, a dict with

* ``boxes``: ``(K, 4)`` float32, ``(x_min, y_min, x_max, y_max)`` in pixels, measured on pixel edges
  (a one-pixel object at column 3 spans ``x_min = 3`` to ``x_max = 4``);
* ``labels``: ``(K,)`` int64 class indices ``0 .. num_classes - 1`` (no background class: a model
  that needs one, like Faster R-CNN's, adds it itself); ``class_names`` names them;
* ``masks``: ``(K, H, W)`` bool instance masks, where the source has them (the shapes, COCO);
* ``iscrowd``: ``(K,)`` int64, 1 for an object the evaluation should not count (COCO's crowds,
  VOC's "difficult" objects), where the source has them.

``K`` varies from image to image, so a batch is ``(images, targets)``: the images stacked into one
``(N, 3, H, W)`` float32 tensor in [0, 1] (every source is brought to one square ``image_size``) and
the targets kept as a list of ``N`` dicts (:func:`detection_collate`).

Sources:

* ``"shapes"`` (default, offline): :func:`render_shapes` draws ``min_objects`` to ``max_objects``
  shapes (circle, square, triangle, cross) of random sizes and colours on a textured background,
  without overlaps, from a seeded ``numpy`` generator. ``test_set="crowded"`` replaces the test
  split by images in which ``crowded_objects`` small shapes have their centres in one cell of a
  ``crowded_grid x crowded_grid`` grid, the case a detector that predicts a fixed number of boxes
  per cell (YOLO v1) cannot answer; ``test_set="spread"`` puts the same small shapes each in a cell
  of its own, the control.
* ``"voc"``: torchvision's ``VOCDetection`` (20 classes; the year's ``train`` set for training, its
  ``val`` set cut in two halves for validation and test).
* ``"coco"``: torchvision's ``CocoDetection`` (80 classes; ``train2017`` for training, ``val2017``
  cut in two halves), with the official archives downloaded when asked.

Real images are resized to ``image_size x image_size`` (aspect ratio not kept, as YOLO does) and
their boxes scaled with them.

Example::

    >>> dm = ShapesDataModule(image_size=64, batch_size=8)
    >>> images, targets = next(iter(dm.train_dataloader()))
    >>> images.shape, sorted(targets[0])
    (torch.Size([8, 3, 64, 64]), ['boxes', 'labels', 'masks'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import DatasetDataModule

Source = Literal["shapes", "voc", "coco"]
TestSet = Literal["random", "crowded", "spread"]
Target = dict[str, Tensor]

SHAPE_NAMES = ("circle", "square", "triangle", "cross")
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
COCO_URLS = {
    "train2017": "http://images.cocodataset.org/zips/train2017.zip",
    "val2017": "http://images.cocodataset.org/zips/val2017.zip",
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# ----------------------------------------------------------------------------------------------
# Drawing shapes
# ----------------------------------------------------------------------------------------------


def shape_mask(kind: int, cx: float, cy: float, size: float, image_size: int) -> np.ndarray:
    """The pixels of one shape of class ``kind`` (index into :data:`SHAPE_NAMES`) centred at
    ``(cx, cy)`` with side (or diameter) ``size``, tested at pixel centres: ``(H, W)`` bool."""
    coords = np.arange(image_size, dtype=np.float32) + 0.5
    x, y = coords[None, :] - cx, coords[:, None] - cy
    half = size / 2
    name = SHAPE_NAMES[kind]
    if name == "circle":
        return x**2 + y**2 <= half**2
    if name == "square":
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if name == "triangle":  # apex up, base at the bottom: |x| <= half * (y + half) / size
        return (y >= -half) & (y <= half) & (np.abs(x) <= (y + half) / 2)
    arm = size / 6  # a plus sign whose arms are a third of its width
    return ((np.abs(x) <= half) & (np.abs(y) <= arm)) | ((np.abs(x) <= arm) & (np.abs(y) <= half))


def textured_background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """A dark base colour, smooth blotches (bilinearly upsampled 4x4 noise) and a little pixel noise: ``(3, H, W)``."""
    base = rng.uniform(0.05, 0.45, size=(3, 1, 1))
    coarse = torch.from_numpy(rng.uniform(-0.12, 0.12, size=(1, 3, 4, 4)).astype(np.float32))
    blotches = torch.nn.functional.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)[0].numpy()
    fine = rng.normal(0.0, 0.03, size=(3, image_size, image_size))
    return np.clip(base + blotches + fine, 0.0, 1.0).astype(np.float32)


def bright_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour that stands out from the background's mean by at least 0.45 (sum over channels)."""
    mean = background.reshape(3, -1).mean(axis=1)
    while True:
        colour = rng.uniform(0.0, 1.0, size=3)
        if colour.max() > 0.55 and np.abs(colour - mean).sum() > 0.45:
            return colour.astype(np.float32)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """``(K, 4)`` xyxy boxes on pixel edges around each non-empty mask of ``(K, H, W)``."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for index, mask in enumerate(masks):
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        boxes[index] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def _overlaps(box: np.ndarray, others: list[np.ndarray], gap: float) -> bool:
    return any(
        box[0] < other[2] + gap and other[0] < box[2] + gap and box[1] < other[3] + gap and other[1] < box[3] + gap
        for other in others
    )


def render_shapes(
    rng: np.random.Generator,
    image_size: int,
    placements: Sequence[tuple[int, float, float, float]] | None = None,
    objects: tuple[int, int] = (1, 4),
    size_range: tuple[float, float] = (0.15, 0.4),
    num_classes: int = len(SHAPE_NAMES),
) -> tuple[np.ndarray, Target]:
    """One image of shapes and its target.

    Args:
        rng: the generator every draw comes from.
        image_size: side of the square image in pixels.
        placements: ``(class, cx, cy, size)`` of each shape in pixels, or ``None`` to draw
            ``objects[0]`` to ``objects[1]`` shapes at random places, sizes (``size_range``,
            fractions of the side) and classes, their boxes at least a pixel apart.
        num_classes: classes drawn from (the first ``num_classes`` of :data:`SHAPE_NAMES`).

    Returns:
        the image ``(3, H, W)`` float32 in [0, 1] and its target dict (boxes, labels, masks).
    """
    image = textured_background(rng, image_size)
    if placements is None:
        count = int(rng.integers(objects[0], objects[1] + 1))
        chosen: list[tuple[int, float, float, float]] = []
        boxes: list[np.ndarray] = []
        for _ in range(100 * count):  # rejection sampling of non-overlapping places
            if len(chosen) == count:
                break
            size = float(rng.uniform(*size_range)) * image_size
            cx, cy = rng.uniform(size / 2, image_size - size / 2, size=2)
            box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])
            if not _overlaps(box, boxes, gap=1.0):
                chosen.append((int(rng.integers(num_classes)), float(cx), float(cy), size))
                boxes.append(box)
        placements = chosen
    masks = np.stack([shape_mask(kind, cx, cy, size, image_size) for kind, cx, cy, size in placements]) if placements else (
        np.zeros((0, image_size, image_size), dtype=bool)
    )
    for mask in masks:
        image[:, mask] = bright_colour(rng, image)[:, None]
    target = {
        "boxes": torch.from_numpy(boxes_from_masks(masks)),
        "labels": torch.tensor([kind for kind, *_ in placements], dtype=torch.int64),
        "masks": torch.from_numpy(masks),
    }
    return image, target


def crowded_placements(
    rng: np.random.Generator, image_size: int, grid: int, count: int, size: float, num_classes: int, spread: bool
) -> list[tuple[int, float, float, float]]:
    """``count`` shapes of side ``size`` (pixels) whose centres all lie in one cell of a ``grid x
    grid`` grid (``spread=False``), on a lattice that spans 0.1 to 0.9 of the cell, the cell drawn
    among those off the border (so that no shape leaves the image); or each at the centre of a
    different random cell (``spread=True``), the control."""
    cell = image_size / grid
    if spread:
        cells = rng.choice(grid * grid, size=count, replace=False)
        offsets = [(0.5, 0.5)] * count
    else:
        per_row = math.ceil(math.sqrt(count))
        steps = [0.5] if per_row == 1 else list(np.linspace(0.1, 0.9, per_row))
        offsets = [(steps[i % per_row], steps[i // per_row]) for i in range(count)]
        inner = [r * grid + c for r in range(grid) for c in range(grid) if grid < 3 or (0 < r < grid - 1 and 0 < c < grid - 1)]
        cells = np.full(count, rng.choice(inner))
    placements = []
    for (u, v), index in zip(offsets, cells, strict=True):
        row, col = divmod(int(index), grid)
        cx = min(max((col + u) * cell, size / 2), image_size - size / 2)
        cy = min(max((row + v) * cell, size / 2), image_size - size / 2)
        placements.append((int(rng.integers(num_classes)), float(cx), float(cy), size))
    return placements


# ----------------------------------------------------------------------------------------------
# Data sets and batches
# ----------------------------------------------------------------------------------------------


def detection_collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    """``[(image, target), ...]`` to ``(images stacked, [target, ...])``: the targets stay a list, one
    dict per image, since each image has its own number of objects."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(list(images)), list(targets)


class DetectionData(Dataset):
    """Images ``(N, 3, H, W)`` and their targets, in memory."""

    def __init__(self, images: Tensor, targets: list[Target]) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        return self.images[index], self.targets[index]


class TorchvisionDetection(Dataset):
    """A torchvision ``VOCDetection`` or ``CocoDetection`` in the target format above, each image
    resized to ``image_size x image_size`` with its boxes."""

    def __init__(self, data: Any, kind: Literal["voc", "coco"], image_size: int, indices: Sequence[int] | None = None) -> None:
        self.data, self.kind, self.image_size = data, kind, image_size
        self.indices = [int(i) for i in indices] if indices is not None else list(range(len(data)))  # CocoDetection takes Python ints only
        if kind == "coco":
            category_ids = sorted(data.coco.cats)
            self.category_index = {cat: i for i, cat in enumerate(category_ids)}
            self.class_names = [data.coco.cats[cat]["name"] for cat in category_ids]
        else:
            self.class_names = list(VOC_CLASSES)

    def __len__(self) -> int:
        return len(self.indices)

    def _objects(self, annotation: Any) -> tuple[list[list[float]], list[int], list[int]]:
        boxes, labels, crowd = [], [], []
        if self.kind == "voc":
            objects = annotation["annotation"].get("object", [])
            for obj in objects if isinstance(objects, list) else [objects]:
                b = obj["bndbox"]  # 1-based pixel indices, inclusive: edges are (min - 1, max)
                boxes.append([float(b["xmin"]) - 1, float(b["ymin"]) - 1, float(b["xmax"]), float(b["ymax"])])
                labels.append(VOC_CLASSES.index(obj["name"]))
                crowd.append(int(obj.get("difficult", "0")))
        else:
            for obj in annotation:
                x, y, w, h = obj["bbox"]
                if w > 0 and h > 0:
                    boxes.append([x, y, x + w, y + h])
                    labels.append(self.category_index[obj["category_id"]])
                    crowd.append(int(obj.get("iscrowd", 0)))
        return boxes, labels, crowd

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        import torchvision.transforms.v2.functional as TF

        picture, annotation = self.data[self.indices[index]]
        image = TF.to_dtype(TF.to_image(picture), torch.float32, scale=True)
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        height, width = image.shape[-2:]
        image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        boxes, labels, crowd = self._objects(annotation)
        scale = torch.tensor([self.image_size / width, self.image_size / height] * 2)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) * scale,
            "labels": torch.tensor(labels, dtype=torch.int64),
            "iscrowd": torch.tensor(crowd, dtype=torch.int64),
        }
        if self.kind == "coco":  # COCO's instance masks (polygons or RLE), resized as the image is
            kept = [obj for obj in annotation if obj["bbox"][2] > 0 and obj["bbox"][3] > 0]
            masks = torch.zeros((len(kept), height, width), dtype=torch.uint8)
            for row, obj in enumerate(kept):
                masks[row] = torch.from_numpy(self.data.coco.annToMask(obj))
            size = [self.image_size, self.image_size]
            target["masks"] = TF.resize(masks, size, interpolation=TF.InterpolationMode.NEAREST).bool() if len(kept) else torch.zeros((0, *size), dtype=torch.bool)
        return image.contiguous(), target


def _missing(what: str, where: Path) -> str:
    return f"{what} not found under {str(where)!r} and download is false: pass --data.download true (download=True), or --data.source shapes for data that needs no download"


def load_voc(data_dir: str, year: str, image_set: str, download: bool) -> Any:
    """torchvision's ``VOCDetection``; one-line errors for missing files or a failed download."""
    from torchvision.datasets import VOCDetection

    try:
        return VOCDetection(data_dir, year=year, image_set=image_set, download=download)
    except (RuntimeError, OSError) as error:
        if download:
            raise RuntimeError(f"could not download Pascal VOC {year} into {data_dir!r}: {error}") from error
        raise FileNotFoundError(_missing(f"Pascal VOC {year} ({image_set})", Path(data_dir) / "VOCdevkit")) from None


def load_coco(data_dir: str, split: str, download: bool) -> Any:
    """torchvision's ``CocoDetection`` on ``data_dir/coco/{split}`` and its ``instances_{split}.json``;
    with ``download``, the official archives are fetched first where missing."""
    from torchvision.datasets import CocoDetection

    root = Path(data_dir) / "coco"
    images, annotations = root / split, root / "annotations" / f"instances_{split}.json"
    if download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            if not images.is_dir():
                download_and_extract_archive(COCO_URLS[split], str(root))
            if not annotations.is_file():
                download_and_extract_archive(COCO_URLS["annotations"], str(root))
        except (RuntimeError, OSError) as error:
            raise RuntimeError(f"could not download COCO {split} into {str(root)!r}: {error}") from error
    if not images.is_dir() or not annotations.is_file():
        raise FileNotFoundError(_missing(f"COCO {split} (images and annotations/instances_{split}.json)", root))
    return CocoDetection(str(images), str(annotations))


# ----------------------------------------------------------------------------------------------
# The datamodule
# ----------------------------------------------------------------------------------------------


class ShapesDataModule(DatasetDataModule):
    """Detection data: generated shapes (offline, seeded), Pascal VOC or COCO.

    Args:
        source: ``"shapes"``, ``"voc"`` or ``"coco"``.
        image_size: side of the square images (real images are resized to it).
        num_classes: shape classes, the first of circle, square, triangle, cross (shapes only).
        min_objects, max_objects: shapes per image, drawn uniformly (shapes only).
        size_range: smallest and largest side of a shape, as fractions of ``image_size``.
        train_size, val_size, test_size: images generated per split (shapes only).
        test_set: ``"random"`` (like the other splits), ``"crowded"`` (``crowded_objects`` shapes
            of side ``size_range[0]`` with their centres in one cell of a ``crowded_grid`` grid) or
            ``"spread"`` (the same shapes, each in a cell of its own).
        crowded_objects, crowded_grid: the crowded (and spread) test images.
        data_dir, download, voc_year: where the real data sets live, whether to fetch them, and
            which Pascal VOC.
        batch_size, num_workers: the loaders'.
        seed: the seed of the generated images and of the training shuffle.

    Raises:
        ValueError: for an unknown source or test set, sizes or counts out of range.
        FileNotFoundError: for real data that is missing while ``download`` is false (on ``setup``).
    """

    collate_fn = staticmethod(detection_collate)  # images stacked, targets kept as a list

    def __init__(
        self,
        source: Source = "shapes",
        image_size: int = 64,
        num_classes: int = 4,
        min_objects: int = 1,
        max_objects: int = 4,
        size_range: tuple[float, float] = (0.15, 0.4),
        train_size: int = 2000,
        val_size: int = 200,
        test_size: int = 200,
        test_set: TestSet = "random",
        crowded_objects: int = 4,
        crowded_grid: int = 4,
        data_dir: str = "data",
        download: bool = False,
        voc_year: str = "2012",
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check(source in ("shapes", "voc", "coco"), f"source must be one of ('shapes', 'voc', 'coco'), got {source!r}")
        _check(test_set in ("random", "crowded", "spread"), f"test_set must be one of ('random', 'crowded', 'spread'), got {test_set!r}")
        _check(image_size >= 16, f"image_size must be >= 16, got {image_size}")
        _check(2 <= num_classes <= len(SHAPE_NAMES), f"num_classes must be between 2 and {len(SHAPE_NAMES)}, got {num_classes}")
        _check(0 <= min_objects <= max_objects, f"min_objects and max_objects must satisfy 0 <= min <= max, got {min_objects}, {max_objects}")
        _check(len(size_range) == 2 and 0 < size_range[0] <= size_range[1] < 1,
               f"size_range must be two fractions of the image with 0 < low <= high < 1, got {list(size_range)}")  # fmt: skip
        _check(min(train_size, val_size, test_size) >= 1, f"train_size, val_size and test_size must be >= 1, got {train_size}, {val_size}, {test_size}")
        _check(crowded_grid >= 1 and 1 <= crowded_objects <= crowded_grid**2,
               f"crowded_objects must be between 1 and crowded_grid**2 = {crowded_grid**2}, got {crowded_objects}")  # fmt: skip
        _check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        _check(num_workers >= 0, f"num_workers must be >= 0, got {num_workers}")
        _check(seed >= 0, f"seed must be >= 0, got {seed}")
        cell, per_row = image_size / crowded_grid, math.ceil(math.sqrt(crowded_objects))
        spacing = 0.8 * cell / (per_row - 1) if per_row > 1 else cell
        _check(test_set == "random" or size_range[0] * image_size + 1 <= min(spacing, cell),
               f"{crowded_objects} shapes of side {size_range[0] * image_size:g} px do not fit side by side in one cell of {cell:g} px: "
               "lower size_range[0] or crowded_objects, or raise image_size")  # fmt: skip
        self.save_hyperparameters()
        self.source, self.image_size, self.batch_size, self.num_workers, self.seed = source, image_size, batch_size, num_workers, seed
        self.datasets: dict[str, Dataset] = {}
        self.class_names: list[str] = list(SHAPE_NAMES[:num_classes]) if source == "shapes" else (
            list(VOC_CLASSES) if source == "voc" else []
        )

    @property
    def num_classes(self) -> int:
        """Classes of the source (COCO's are read from its annotations, so it sets up first)."""
        if not self.class_names:
            self.setup()
        return len(self.class_names)

    # ------------------------------------------------------------------ generation
    def generate(self, split: str) -> DetectionData:
        """The images of one split of shapes, from a generator seeded by ``(seed, split)``."""
        hp = self.hparams
        rng = np.random.default_rng([hp.seed, ("train", "val", "test").index(split)])
        count = {"train": hp.train_size, "val": hp.val_size, "test": hp.test_size}[split]
        images, targets = [], []
        for _ in range(count):
            placements = None
            if split == "test" and hp.test_set != "random":
                size = hp.size_range[0] * hp.image_size
                placements = crowded_placements(
                    rng, hp.image_size, hp.crowded_grid, hp.crowded_objects, size, hp.num_classes, spread=hp.test_set == "spread"
                )
            image, target = render_shapes(rng, hp.image_size, placements, (hp.min_objects, hp.max_objects), tuple(hp.size_range), hp.num_classes)
            images.append(torch.from_numpy(image))
            targets.append(target)
        return DetectionData(torch.stack(images), targets)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        if self.source == "shapes":
            self.datasets = {split: self.generate(split) for split in ("train", "val", "test")}
            return
        if self.source == "voc":
            train, held_out = (load_voc(hp.data_dir, hp.voc_year, s, hp.download) for s in ("train", "val"))
        else:
            train, held_out = (load_coco(hp.data_dir, s, hp.download) for s in ("train2017", "val2017"))
        order = np.random.default_rng(hp.seed).permutation(len(held_out))
        half = len(order) // 2
        self.datasets = {
            "train": TorchvisionDetection(train, self.source, hp.image_size),
            "val": TorchvisionDetection(held_out, self.source, hp.image_size, np.sort(order[:half])),
            "test": TorchvisionDetection(held_out, self.source, hp.image_size, np.sort(order[half:])),
        }
        self.class_names = self.datasets["train"].class_names
