"""Deep convolutional GANs (Radford, Metz and Chintala, 2015): the architecture that made GANs train on images.

Paper: A. Radford, L. Metz and S. Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016 (arXiv:1511.06434).

The game is Goodfellow et al.'s (2014), trained exactly as :mod:`ai_scratch.generative_era.gan` trains
it (:class:`~ai_scratch.generative_era.gan.AdversarialModel`: Algorithm 1, k discriminator steps per
generator step, the non-saturating generator loss ``-log D(G(z))`` of the authors' code by default).
What the paper brought is the pair of networks, in its "architecture guidelines for stable Deep
Convolutional GANs" (Section 3):

* "Replace any pooling layers with strided convolutions (discriminator) and fractional-strided
  convolutions (generator)": the nets learn their own down- and up-sampling.
* "Use batchnorm in both the generator and the discriminator", but "directly applying batchnorm
  to all layers however, resulted in sample oscillation and model instability. This was avoided by
  not applying batchnorm to the generator output layer and the discriminator input layer."
* "Remove fully connected hidden layers for deeper architectures": z is projected by one matrix
  multiplication and reshaped into the first feature maps; "the last convolution layer [of D] is
  flattened and then fed into a single sigmoid output".
* "Use ReLU activation in generator for all layers except for the output, which uses Tanh", so
  images are scaled to [-1, 1] (``DigitsDataModule(normalization="symmetric")``).
* "Use LeakyReLU activation in the discriminator for all layers", with slope 0.2.

and the training details (Section 4): "All weights were initialized from a zero-centered Normal
distribution with standard deviation 0.02", Adam with learning rate 0.0002 ("the suggested learning
rate of 0.001, to be too high") and beta1 = 0.5 ("leaving the momentum term beta1 at the suggested
value of 0.9 resulted in training oscillation and instability"), mini-batches of 128, z from a
100-dimensional uniform distribution.

The generator, for ``feature_maps = (c_0, ..., c_{L-1})`` and images of side ``s``::

    z (latent_dim)  -> Linear -> reshape (c_0, s / 2^L, s / 2^L) -> BN -> ReLU        project and reshape
    for each l:        ConvTranspose 5x5, stride 2 -> (c_{l+1}, 2x the side) -> BN -> ReLU
    last:              ConvTranspose 5x5, stride 2 -> (image_channels, s, s) -> tanh  no BN at the output

and the discriminator mirrors it::

    x (image_channels, s, s) -> Conv 5x5, stride 2 -> (c_{L-1}, s / 2) -> LeakyReLU(0.2)   no BN at the input
    for each l:                 Conv 5x5, stride 2 -> half the side, feature maps back up to c_0 -> BN -> LeakyReLU(0.2)
    last:                       flatten -> Linear -> one logit, D(x) = sigmoid(logit)

The 5x5 kernels, stride 2 and padding 2 are those of the authors' released code (Newmu/dcgan_code,
``faces/train_uncond_dcgan.py``), whose projection is batch-normalised too. A layer followed by
batch norm has no bias (BN's shift is one); the three layers that are not (G's output, D's input and
D's logit) keep theirs, where the released code drops them: 132 parameters more at the paper's size.
``batch_norm=False`` removes every BN layer and gives every layer its bias: the ablation of the
second guideline.

Paper-sized (:data:`PAPER_CONFIGS`, Figure 1, the LSUN generator): "A 100 dimensional uniform
distribution Z is projected to a small spatial extent convolutional representation with many
feature maps. A series of four fractionally-strided convolutions ... then convert this high level
representation into a 64 x 64 pixel image": 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 ->
64x64x3. G has 18,855,043 parameters and its mirrored D 17,232,897, tested against stacks of
``nn`` layers (:meth:`DCGAN.paper_sized`). Its forward is the generator's: one 64x64 image from one
z, 1,281,228,800 FLOPs, nearly all in the three middle convolutions (419,430,400 each). The digits
configurations use the same class at 8x8 (scikit-learn's digits).

Experiments (``configs/dcgan/``): ``digits_strength`` (legible, varied 8x8 digits: a classifier
score of at least 7, real digits 9.8, noise 4.1; and the latent-interpolation figure) and
``without_batch_norm_weakness`` (the second guideline's ablation: without batch norm the generator
collapses to one blob, score near 1).

Example::

    dcgan = DCGAN(image_channels=1, image_size=8, feature_maps=(64, 32))
    images = dcgan.sample(16)                       # (16, 1, 8, 8), in [-1, 1]
    walk = dcgan.decode(torch.rand(4, 100) * 2 - 1)  # the generator: (4, 1, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ai_scratch.generative_era.gan import AdversarialModel, GeneratorLoss, Noise
from ai_scratch.info import ModelInfo

#: Kernel side, stride and padding of every (fractionally-)strided convolution (the released code's).
KERNEL, STRIDE, PADDING = 5, 2, 2

#: The standard deviation of the initial weights (Section 4), and the slope of D's LeakyReLU.
INIT_STD, LEAK = 0.02, 0.2


def dcgan_generator(latent_dim: int, feature_maps: Sequence[int], image_channels: int, image_size: int, batch_norm: bool) -> nn.Sequential:
    """G: project and reshape z, then fractionally-strided convolutions that double the side, tanh at the output."""
    start = image_size // 2 ** len(feature_maps)  # each of the len(feature_maps) convolutions doubles the side
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, feature_maps[0] * start * start, bias=not batch_norm),  # "project"
        nn.Unflatten(1, (feature_maps[0], start, start)),  # "and reshape"
    ]
    layers += [nn.BatchNorm2d(feature_maps[0])] if batch_norm else []
    layers.append(nn.ReLU())
    for c_in, c_out in zip(feature_maps, feature_maps[1:]):
        layers.append(nn.ConvTranspose2d(c_in, c_out, KERNEL, STRIDE, PADDING, output_padding=1, bias=not batch_norm))
        layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
        layers.append(nn.ReLU())
    # the output layer: no batch norm (guideline 2), tanh (guideline 4)
    layers += [nn.ConvTranspose2d(feature_maps[-1], image_channels, KERNEL, STRIDE, PADDING, output_padding=1), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_discriminator(feature_maps: Sequence[int], image_channels: int, image_size: int, batch_norm: bool) -> nn.Sequential:
    """D: strided convolutions that halve the side (the generator's feature maps in reverse), one logit."""
    widths = list(reversed(feature_maps))
    # the input layer: no batch norm (guideline 2)
    layers: list[nn.Module] = [nn.Conv2d(image_channels, widths[0], KERNEL, STRIDE, PADDING), nn.LeakyReLU(LEAK)]
    for c_in, c_out in zip(widths, widths[1:]):
        layers.append(nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING, bias=not batch_norm))
        layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
        layers.append(nn.LeakyReLU(LEAK))
    end = image_size // 2 ** len(feature_maps)
    layers += [nn.Flatten(), nn.Linear(widths[-1] * end * end, 1)]  # "flattened and then fed into a single sigmoid output"
    return nn.Sequential(*layers)


def initialize(module: nn.Module) -> None:
    """Section 4: weights from N(0, 0.02), biases 0; batch norm's scale from N(1, 0.02) and shift 0
    (the released code's ``gain_ifn``), so that it starts near the identity."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


class DCGAN(AdversarialModel):
    """The DCGAN of Radford et al. (2015): convolutional G and D built by the architecture guidelines.

    Args:
        image_channels: channels of the images (1 for digits, 3 for the paper's colour images).
        image_size: side of the square images; a multiple of ``2 ** len(feature_maps)``.
        latent_dim: the size of z (the paper's 100).
        feature_maps: the generator's feature maps from the projection on, one fractionally-strided
            convolution after each (the paper's ``(1024, 512, 256, 128)``); D uses them in reverse.
        batch_norm: batch norm in both nets except G's output and D's input (the guideline), or
            none at all (``False``, the ablation).
        noise: p_z, ``"uniform"`` U[-1, 1] (the paper's) or ``"normal"``.
        The others: see :class:`~ai_scratch.generative_era.gan.AdversarialModel` (Adam 2e-4, beta1 0.5).
    """

    INFO = ModelInfo(
        name="dcgan",
        full_name="Deep Convolutional GAN",
        module=5,
        pattern="engine-based",
        year_introduced=2015,
        authors=("Alec Radford", "Luke Metz", "Soumith Chintala"),
        paper_title="Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks",
        key_innovations=(
            "architecture guidelines that make convolutional GANs train stably: strided convolutions, no pooling",
            "batch norm in both networks except the generator's output and the discriminator's input",
            "ReLU in the generator with a tanh output, LeakyReLU(0.2) in the discriminator, no fully connected hidden layers",
            "Adam with learning rate 0.0002 and beta1 = 0.5, weights from N(0, 0.02)",
            "a latent space with smooth walks and vector arithmetic on faces",
        ),
        architecture_type="gan",
        learning_algorithm="alternating stochastic gradient steps for the discriminator and the generator",
        loss_function="discriminator: binary cross-entropy; generator: -log D(G(z)) (non-saturating)",
        optimizer="Adam (learning rate 0.0002, beta1 = 0.5)",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "build a generator from fractionally-strided convolutions and a discriminator from strided ones",
            "place batch norm as the guidelines say and initialise the weights from N(0, 0.02)",
            "train it with the same adversarial step as the MLP GAN and judge samples by a digit classifier's score",
            "walk the latent space between two samples and see the digits morph smoothly",
        ),
        estimated_training_time="minutes",
    )

    def __init__(
        self,
        image_channels: int = 1,
        image_size: int = 8,
        latent_dim: int = 100,
        feature_maps: Sequence[int] = (128, 64),
        batch_norm: bool = True,
        noise: Noise = "uniform",
        generator_loss: GeneratorLoss = "non_saturating",
        discriminator_steps: int = 1,
        generator_learning_rate: float = 2e-4,
        discriminator_learning_rate: float = 2e-4,
        beta1: float = 0.5,
        quality_every_n_epochs: int = 1,
        quality_samples: int = 1000,
    ) -> None:
        feature_maps = tuple(feature_maps)
        if not feature_maps or any(not isinstance(c, int) or c < 1 for c in feature_maps):
            raise ValueError(f"feature_maps must be a non-empty list of positive integers, got {list(feature_maps)}")
        for name, value in (("image_channels", image_channels), ("image_size", image_size), ("latent_dim", latent_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if image_size % 2 ** len(feature_maps):
            raise ValueError(
                f"image_size must be a multiple of 2 ** len(feature_maps) = {2 ** len(feature_maps)} (each of the {len(feature_maps)} "
                f"convolutions halves or doubles the side), got {image_size}"
            )
        generator = dcgan_generator(latent_dim, feature_maps, image_channels, image_size, batch_norm)
        discriminator = dcgan_discriminator(feature_maps, image_channels, image_size, batch_norm)
        generator.apply(initialize)
        discriminator.apply(initialize)
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            data_shape=(image_channels, image_size, image_size),
            latent_dim=latent_dim,
            noise=noise,
            generator_loss=generator_loss,
            discriminator_steps=discriminator_steps,
            generator_learning_rate=generator_learning_rate,
            discriminator_learning_rate=discriminator_learning_rate,
            beta1=beta1,
            quality_every_n_epochs=quality_every_n_epochs,
            quality_samples=quality_samples,
        )
        self.batch_norm = batch_norm
        self.save_hyperparameters()

    @classmethod
    def paper_sized(cls) -> DCGAN:
        """Figure 1's LSUN generator and its mirrored discriminator: z of 100 dimensions projected to
        4x4x1024, then 8x8x512, 16x16x256, 32x32x128 and a 64x64x3 image (5x5 kernels, stride 2);
        G 18,855,043 parameters, D 17,232,897 (the paper gives no count). One example is one z: the
        forward is the generator. A fractionally-strided convolution scatters every input pixel
        through its whole kernel, ``2 C_in C_out 5^2 H_in W_in`` FLOPs (what the counter charges,
        the products that land in the cropped border included); the projection ``2 x 100 x 16,384``."""
        return cls(**PAPER_CONFIGS["radford_lsun"])


#: Figure 1's LSUN generator (and its mirrored discriminator) as :class:`DCGAN` arguments.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "radford_lsun": {"image_channels": 3, "image_size": 64, "latent_dim": 100, "feature_maps": (1024, 512, 256, 128)},
}
