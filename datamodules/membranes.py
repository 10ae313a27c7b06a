"""Semantic segmentation data: generated cell membranes offline, Oxford-IIIT Pet and Pascal VOC with a download.

Every example is an image and a *target*, a dict of per-pixel tensors of the image's size ``(H, W)``:

* ``mask``: int64 class of each pixel, ``0 .. num_classes - 1``, or :data:`IGNORE_INDEX` (255) for
  pixels that no class is asked of (the trimap borders of the pets, the object outlines of VOC);
* ``weight_map``: float32, U-Net's weight of each pixel in the loss (:func:`unet_weight_map`);
* ``instances``: int64 object number of each pixel, 0 for background, 1, 2, ... for the objects
  (the cells), from which the weight map and the instance metrics are computed.

The image itself is ``(C, H + 2m, W + 2m)`` float32 in [0, 1], ``m = mirror_padding``: U-Net's
"overlap-tile strategy" (Ronneberger et al., 2015, Section 2 and Figure 2). A network of valid
(unpadded) convolutions gives a smaller output than its input; "to predict the pixels in the border
region of the image, the missing context is extrapolated by mirroring the input image". With the
``mirror_padding`` that a network loses on each side, its output has exactly the targets' size.

A batch is ``(images, targets)``, images ``(N, C, H + 2m, W + 2m)`` and targets a dict of ``(N, H, W)``
tensors (torch's default collate stacks the dicts).

Sources:

* ``"membranes"`` (default, offline): :func:`render_membranes` draws a tissue of cells that touch,
  the look of the electron-microscopy stacks of the ISBI 2012 challenge the paper won: a
  Voronoi-like tessellation of the image (seed points at least a cell's radius apart, the distances
  measured in coordinates warped by a smooth random field, so that the borders bend), each border
  a dark membrane ``membrane_width`` pixels wide of a contrast drawn per pair of cells from
  ``contrast_range`` (some are faint), textured cell interiors with dark vesicles, a little blur and
  noise. Two classes: 0 membrane, 1 cell interior; every cell is an instance.
* ``"pets"``: torchvision's ``OxfordIIITPet`` with ``target_types="segmentation"``: trimaps of pet
  (class 1), background (class 0) and the uncertain border (ignored). ``trainval`` is cut into
  train and ``val_size`` validation images, ``test`` is the test split.
* ``"voc"``: torchvision's ``VOCSegmentation``: 21 classes (background and the 20 objects), object
  outlines ignored; the year's ``train`` set for training, its ``val`` set cut in two halves for
  validation and test.

Real images are resized to ``image_size x image_size`` (bilinear; the masks nearest-neighbour) and
their instances are the connected components of the non-background classes.

The weight map of the paper's eq. 2, computed for every image from its instances:

    w(x) = w_c(x) + w_0 * exp( -(d_1(x) + d_2(x))^2 / (2 sigma^2) )

``w_c`` balances the class frequencies, ``d_1`` and ``d_2`` are the distances to the border of the
nearest and the second nearest cell; "w_0 = 10 and sigma ~ 5 pixels" in the paper, for 512 x 512
images. ``sigma`` is a named option so that small generated images can scale it with their cells.

This module imports neither ``ai_scratch`` nor ``callbacks``.

Example::

    >>> dm = MembranesDataModule(image_size=64, train_size=8, val_size=4, test_size=4, mirror_padding=20)
    >>> images, targets = next(iter(dm.train_dataloader()))
    >>> images.shape, targets["mask"].shape
    (torch.Size([8, 1, 104, 104]), torch.Size([8, 64, 64]))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import DatasetDataModule

Source = Literal["membranes", "pets", "voc"]
Target = dict[str, Tensor]

#: The mask value of pixels that are not scored (torch's ``ignore_index``, VOC's outline value).
IGNORE_INDEX = 255
MEMBRANE_CLASSES = ("membrane", "cell")
PET_CLASSES = ("background", "pet")
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# ----------------------------------------------------------------------------------------------
# The weight map (eq. 2)
# ----------------------------------------------------------------------------------------------


def class_balance_weights(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``w_c(x)``: each pixel weighted by the inverse frequency of its class in the image, scaled so
    that the scored pixels' weights average 1 (the classes present contribute equally to the loss);
    0 at ignored pixels."""
    weights = np.zeros(mask.shape, dtype=np.float32)
    scored = mask != IGNORE_INDEX
    counts = np.bincount(mask[scored].ravel(), minlength=num_classes)[:num_classes]
    present = counts > 0
    if not present.any():
        return weights
    per_class = np.zeros(num_classes, dtype=np.float64)
    per_class[present] = scored.sum() / (present.sum() * counts[present])
    weights[scored] = per_class[mask[scored]]
    return weights


def border_distances(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``d_1(x)`` and ``d_2(x)``: the Euclidean distances from each pixel to the nearest and the
    second nearest object of ``instances`` (0 inside the object itself). ``inf`` where the image has
    fewer than one, or two, objects."""
    ids = np.unique(instances[instances > 0])
    if len(ids) == 0:
        return np.full(instances.shape, np.inf), np.full(instances.shape, np.inf)
    # one distance transform per object: the distance of every pixel to that object's pixels
    distances = np.stack([ndimage.distance_transform_edt(instances != k) for k in ids])
    distances.sort(axis=0)
    second = distances[1] if len(ids) > 1 else np.full(instances.shape, np.inf)
    return distances[0], second


def unet_weight_map(
    mask: np.ndarray,
    instances: np.ndarray,
    num_classes: int,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: bool = True,
    background_class: int = 0,
) -> np.ndarray:
    """The weight map of eq. 2: ``w(x) = w_c(x) + w_0 exp(-(d_1(x) + d_2(x))^2 / (2 sigma^2))``.

    The separation term is added on the background pixels (``mask == background_class``; the
    membranes), where it is large in the narrow gaps between touching objects ("the separation
    border ... gets a large weight in the loss function", Figure 3d). Ignored pixels weigh 0.

    Args:
        mask: ``(H, W)`` class of each pixel (or :data:`IGNORE_INDEX`).
        instances: ``(H, W)`` object numbers, 0 for background.
        num_classes: classes of ``mask``.
        w0, sigma: eq. 2's ``w_0`` and ``sigma`` (pixels); the paper's are 10 and 5. ``w0 = 0``
            leaves ``w_c`` alone.
        class_balance: ``w_c`` balances the class frequencies (:func:`class_balance_weights`); ``False``: 1.
        background_class: the class between the objects.
    """
    _check(mask.shape == instances.shape and mask.ndim == 2, f"mask and instances must be two arrays (H, W) of one shape, got {mask.shape} and {instances.shape}")
    _check(sigma > 0, f"sigma must be > 0, got {sigma}")
    _check(w0 >= 0, f"w0 must be >= 0, got {w0}")
    scored = mask != IGNORE_INDEX
    weights = class_balance_weights(mask, num_classes) if class_balance else scored.astype(np.float32)
    if w0 > 0:
        d1, d2 = border_distances(instances)
        separation = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))  # eq. 2; 0 where d_2 is inf
        between = scored & (mask == background_class)
        weights[between] += separation[between].astype(np.float32)
    return weights


# ----------------------------------------------------------------------------------------------
# Drawing membranes
# ----------------------------------------------------------------------------------------------


def _smooth_field(rng: np.random.Generator, size: int, cells: int, amplitude: float) -> np.ndarray:
    """A smooth random field ``(size, size)``: coarse noise on a ``cells x cells`` grid, bilinearly upsampled."""
    coarse = torch.from_numpy(rng.normal(0.0, amplitude, size=(1, 1, cells, cells)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0, 0].numpy()


def _seed_points(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """``count`` points in the square, each at least about a cell's radius from the others (dart throwing)."""
    min_distance = 0.6 * size / np.sqrt(count)
    points: list[np.ndarray] = []
    for _ in range(50 * count):
        if len(points) == count:
            break
        candidate = rng.uniform(-0.05 * size, 1.05 * size, size=2)
        if all(np.hypot(*(candidate - p)) >= min_distance for p in points):
            points.append(candidate)
    return np.array(points)


def render_membranes(
    rng: np.random.Generator,
    image_size: int,
    cells: int = 12,
    membrane_width: int = 2,
    contrast_range: tuple[float, float] = (0.25, 0.6),
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image of touching cells: ``(image (H, W) float32 in [0, 1], mask (H, W) int64, instances (H, W) int64)``.

    Args:
        rng: the generator of every draw.
        image_size: side ``H = W``.
        cells: the number of seed points (cells cut by the image's edge count too).
        membrane_width: the membranes' width in pixels (1 or more).
        contrast_range: how much darker than its two cells a membrane is, drawn per pair of cells.
        noise: standard deviation of the Gaussian pixel noise.
    """
    seeds = _seed_points(rng, image_size, cells)
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype(np.float64)
    # warped coordinates: the tessellation's straight borders become gently curved ones
    warp = max(1.0, image_size / 16)
    y = rows + _smooth_field(rng, image_size, 4, warp)
    x = cols + _smooth_field(rng, image_size, 4, warp)
    distances = (y[None] - seeds[:, 0, None, None]) ** 2 + (x[None] - seeds[:, 1, None, None]) ** 2
    region = distances.argmin(axis=0)
    # the border: pixels whose right or lower neighbour belongs to another cell, widened to the width
    border = np.zeros_like(region, dtype=bool)
    border[:, :-1] |= region[:, :-1] != region[:, 1:]
    border[:-1, :] |= region[:-1, :] != region[1:, :]
    if membrane_width > 1:
        border = ndimage.binary_dilation(border, iterations=membrane_width - 1)
    # each membrane pixel takes the contrast of the pair of cells it separates (its cell and the
    # other cell nearest to it)
    nearest_two = np.argsort(distances, axis=0)[:2]
    pair_low, pair_high = nearest_two.min(axis=0), nearest_two.max(axis=0)
    contrast_table = rng.uniform(*contrast_range, size=(len(seeds), len(seeds)))
    contrast = contrast_table[pair_low, pair_high]
    # cell interiors: a brightness per cell, smooth texture, dark vesicles
    brightness = rng.uniform(0.55, 0.85, size=len(seeds))
    image = brightness[region] + _smooth_field(rng, image_size, max(4, image_size // 6), 0.04)
    for _ in range(rng.poisson(cells * 0.8)):
        cy, cx, radius = rng.uniform(0, image_size), rng.uniform(0, image_size), rng.uniform(0.8, 1.8)
        vesicle = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        image[vesicle & ~border] -= rng.uniform(0.15, 0.3)
    image[border] -= contrast[border]
    image = ndimage.gaussian_filter(image, sigma=0.6)
    image = np.clip(image + rng.normal(0.0, noise, size=image.shape), 0.0, 1.0).astype(np.float32)
    mask = (~border).astype(np.int64)  # 0 membrane, 1 cell
    # the cells numbered 1..K (a seed whose cell the membranes swallowed, or that lies outside, leaves no gap)
    renumber = np.zeros(len(seeds) + 1, dtype=np.int64)
    kept = np.unique(region[~border]) + 1
    renumber[kept] = np.arange(1, len(kept) + 1)
    instances = renumber[np.where(border, 0, region + 1)]
    return image, mask, instances


# ----------------------------------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------------------------------


def mirror(image: Tensor, padding: int) -> Tensor:
    """The overlap-tile strategy's input: ``image`` ``(C, H, W)`` extended by ``padding`` pixels on
    each side by mirroring (reflection about the edge pixels; repeated for paddings beyond the size)."""
    while padding > 0:
        step = min(padding, image.shape[-1] - 1, image.shape[-2] - 1)
        image = torch.nn.functional.pad(image[None], (step,) * 4, mode="reflect")[0]
        padding -= step
    return image


class SegmentationData(Dataset):
    """Images ``(N, C, H', W')`` and their per-pixel targets ``{name: (N, H, W)}``, in memory."""

    def __init__(self, images: Tensor, targets: Target) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        return self.images[index], {name: values[index] for name, values in self.targets.items()}


class TorchvisionSegmentation(Dataset):
    """An ``OxfordIIITPet`` (segmentation) or ``VOCSegmentation`` data set in the target format above,
    each image resized to ``image_size``, its mirror padding and weight map made on access."""

    def __init__(self, data: Any, kind: Literal["pets", "voc"], image_size: int, mirror_padding: int,
                 weight_options: dict[str, Any], indices: Sequence[int] | None = None) -> None:  # fmt: skip
        self.data, self.kind, self.image_size, self.mirror_padding = data, kind, image_size, mirror_padding
        self.weight_options = weight_options
        self.indices = list(indices) if indices is not None else list(range(len(data)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        from torchvision.transforms.functional import InterpolationMode, pil_to_tensor, resize

        image, target = self.data[self.indices[index]]
        size = [self.image_size, self.image_size]
        image = resize(pil_to_tensor(image.convert("RGB")).float() / 255.0, size, antialias=True)
        mask = resize(pil_to_tensor(target), size, interpolation=InterpolationMode.NEAREST)[0].long().numpy()
        if self.kind == "pets":  # trimap: 1 pet, 2 background, 3 border (not scored)
            mask = np.select([mask == 1, mask == 2], [1, 0], default=IGNORE_INDEX)
        instances, _ = ndimage.label((mask > 0) & (mask != IGNORE_INDEX))
        return mirror(image.clamp(0, 1), self.mirror_padding), segmentation_target(mask, instances, **self.weight_options)


def segmentation_target(mask: np.ndarray, instances: np.ndarray, num_classes: int, **weight_options: Any) -> Target:
    """The target dict of one image: mask, U-Net's weight map and instances as tensors."""
    weights = unet_weight_map(mask, instances, num_classes, **weight_options)
    return {
        "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64)),
        "weight_map": torch.from_numpy(weights),
        "instances": torch.from_numpy(np.ascontiguousarray(instances, dtype=np.int64)),
    }


def _missing(what: str, where: Path) -> str:
    return (
        f"{what} not found under {str(where)!r} and download is false: pass --data.download true (download=True), "
        "or --data.source membranes for data that needs no download"
    )


def load_pets(data_dir: str, split: str, download: bool) -> Any:
    """torchvision's ``OxfordIIITPet`` with trimaps; one-line errors for missing files or a failed download."""
    from torchvision.datasets import OxfordIIITPet

    try:
        return OxfordIIITPet(data_dir, split=split, target_types="segmentation", download=download)
    except (RuntimeError, OSError) as error:
        if download:
            raise RuntimeError(f"could not download Oxford-IIIT Pet into {data_dir!r}: {error}") from error
        raise FileNotFoundError(_missing(f"Oxford-IIIT Pet ({split})", Path(data_dir) / "oxford-iiit-pet")) from None


def load_voc_segmentation(data_dir: str, year: str, image_set: str, download: bool) -> Any:
    """torchvision's ``VOCSegmentation``; one-line errors for missing files or a failed download."""
    from torchvision.datasets import VOCSegmentation

    try:
        return VOCSegmentation(data_dir, year=year, image_set=image_set, download=download)
    except (RuntimeError, OSError) as error:
        if download:
            raise RuntimeError(f"could not download Pascal VOC {year} into {data_dir!r}: {error}") from error
        raise FileNotFoundError(_missing(f"Pascal VOC {year} segmentation ({image_set})", Path(data_dir) / "VOCdevkit")) from None


# ----------------------------------------------------------------------------------------------
# The datamodule
# ----------------------------------------------------------------------------------------------


class MembranesDataModule(DatasetDataModule):
    """Segmentation data: generated touching cells (offline, seeded), Oxford-IIIT Pet or Pascal VOC.

    Args:
        source: ``"membranes"``, ``"pets"`` or ``"voc"``.
        image_size: side of the square targets (real images are resized to it).
        mirror_padding: pixels of mirrored context added on each side of every image (the
            overlap-tile input of a network of valid convolutions; 0 for padded ones).
        cells: seed points per generated image (membranes only).
        membrane_width: width of the membranes in pixels (membranes only).
        contrast_range: how much darker than its cells a membrane is, ``(low, high)`` (membranes only).
        noise: pixel noise of the generated images (membranes only).
        train_size, val_size, test_size: images generated per split (membranes), or the validation
            images cut from Oxford-IIIT Pet's ``trainval`` (``val_size``).
        w0, sigma, class_balance: the weight map of eq. 2 (:func:`unet_weight_map`); the paper's
            ``w_0 = 10``, ``sigma = 5`` pixels.
        data_dir, download, voc_year: where the real data sets live, whether to fetch them, which VOC.
        batch_size, num_workers: the loaders'.
        seed: the seed of the generated images, of the real splits and of the training shuffle.

    Raises:
        ValueError: for an unknown source, sizes or options out of range.
        FileNotFoundError: for real data that is missing while ``download`` is false (on ``setup``).
    """

    def __init__(
        self,
        source: Source = "membranes",
        image_size: int = 64,
        mirror_padding: int = 0,
        cells: int = 12,
        membrane_width: int = 2,
        contrast_range: tuple[float, float] = (0.25, 0.6),
        noise: float = 0.05,
        train_size: int = 200,
        val_size: int = 50,
        test_size: int = 50,
        w0: float = 10.0,
        sigma: float = 5.0,
        class_balance: bool = True,
        data_dir: str = "data",
        download: bool = False,
        voc_year: str = "2012",
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check(source in ("membranes", "pets", "voc"), f"source must be one of ('membranes', 'pets', 'voc'), got {source!r}")
        _check(isinstance(image_size, int) and image_size >= 8, f"image_size must be an integer >= 8, got {image_size!r}")
        _check(isinstance(mirror_padding, int) and mirror_padding >= 0, f"mirror_padding must be an integer >= 0, got {mirror_padding!r}")
        _check(isinstance(cells, int) and 2 <= cells <= image_size**2 // 16, f"cells must be an integer between 2 and image_size**2 // 16 = {image_size**2 // 16}, got {cells!r}")
        _check(isinstance(membrane_width, int) and 1 <= membrane_width <= image_size // 8, f"membrane_width must be an integer between 1 and image_size // 8 = {image_size // 8}, got {membrane_width!r}")
        _check(len(contrast_range) == 2 and 0 <= contrast_range[0] <= contrast_range[1] <= 1,
               f"contrast_range must be (low, high) with 0 <= low <= high <= 1, got {list(contrast_range)}")  # fmt: skip
        _check(noise >= 0, f"noise must be >= 0, got {noise}")
        _check(min(train_size, val_size, test_size) >= 1, f"train_size, val_size and test_size must be >= 1, got {train_size}, {val_size}, {test_size}")
        _check(w0 >= 0, f"w0 must be >= 0, got {w0}")
        _check(sigma > 0, f"sigma must be > 0 (pixels), got {sigma}")
        _check(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an integer >= 1, got {batch_size!r}")
        _check(num_workers >= 0, f"num_workers must be >= 0, got {num_workers}")
        _check(seed >= 0, f"seed must be >= 0, got {seed}")
        self.save_hyperparameters()
        self.source, self.image_size, self.mirror_padding = source, image_size, mirror_padding
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.class_names: list[str] = list({"membranes": MEMBRANE_CLASSES, "pets": PET_CLASSES, "voc": VOC_CLASSES}[source])
        self.datasets: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Channels of the images: 1 for the grey membranes, 3 for the photographs."""
        return 1 if self.source == "membranes" else 3

    @property
    def ignore_index(self) -> int:
        """The mask value of pixels that are not scored."""
        return IGNORE_INDEX

    def weight_options(self) -> dict[str, Any]:
        hp = self.hparams
        return {"num_classes": self.num_classes, "w0": hp.w0, "sigma": hp.sigma, "class_balance": hp.class_balance}

    # ------------------------------------------------------------------ generation
    def generate(self, split: str) -> SegmentationData:
        """The images of one split of membranes, from a generator seeded by ``(seed, split)``."""
        hp = self.hparams
        rng = np.random.default_rng([hp.seed, ("train", "val", "test").index(split)])
        count = {"train": hp.train_size, "val": hp.val_size, "test": hp.test_size}[split]
        images, targets = [], []
        for _ in range(count):
            image, mask, instances = render_membranes(rng, hp.image_size, hp.cells, hp.membrane_width, tuple(hp.contrast_range), hp.noise)
            images.append(mirror(torch.from_numpy(image)[None], hp.mirror_padding))
            targets.append(segmentation_target(mask, instances, **self.weight_options()))
        stacked = {name: torch.stack([t[name] for t in targets]) for name in targets[0]}
        return SegmentationData(torch.stack(images), stacked)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        if self.source == "membranes":
            self.datasets = {split: self.generate(split) for split in ("train", "val", "test")}
            return

        def wrap(data: Any, indices: Sequence[int] | None = None) -> TorchvisionSegmentation:
            return TorchvisionSegmentation(data, self.source, hp.image_size, hp.mirror_padding, self.weight_options() | {"num_classes": self.num_classes}, indices)

        if self.source == "pets":
            pool, test = load_pets(hp.data_dir, "trainval", hp.download), load_pets(hp.data_dir, "test", hp.download)
            _check(hp.val_size < len(pool), f"val_size must be below the {len(pool)} images of Oxford-IIIT Pet's trainval, got {hp.val_size}")
            order = np.random.default_rng(hp.seed).permutation(len(pool))
            self.datasets = {"train": wrap(pool, np.sort(order[hp.val_size :])), "val": wrap(pool, np.sort(order[: hp.val_size])), "test": wrap(test)}
            return
        train, held_out = (load_voc_segmentation(hp.data_dir, hp.voc_year, s, hp.download) for s in ("train", "val"))
        order = np.random.default_rng(hp.seed).permutation(len(held_out))
        half = len(order) // 2
        self.datasets = {"train": wrap(train), "val": wrap(held_out, np.sort(order[:half])), "test": wrap(held_out, np.sort(order[half:]))}
