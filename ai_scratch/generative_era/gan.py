"""Generative adversarial nets (Goodfellow et al., 2014): a generator and a discriminator in a minimax game.

Paper: I. J. Goodfellow, J. Pouget-Abadie, M. Mirza, B. Xu, D. Warde-Farley, S. Ozair, A. Courville
and Y. Bengio, "Generative Adversarial Nets", NIPS 2014 (arXiv:1406.2661).

A generator G maps noise z ~ p_z(z) to data space; a discriminator D maps an example to the
probability that it came from the data rather than from G. D is trained to tell the two apart, G to
fool D: the two-player minimax game of eq. (1)::

    min_G max_D V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))]        (1)

For a fixed G the best discriminator is (Proposition 1)::

    D*_G(x) = p_data(x) / (p_data(x) + p_g(x))

and with it the game's value is ``C(G) = -log 4 + 2 JSD(p_data || p_g)`` (Theorem 1): its global
minimum ``-log 4`` is reached exactly when ``p_g = p_data``, where D answers 1/2 everywhere. So at
the equilibrium the discriminator's loss ``-V`` is ``log 4 = 1.386`` and ``D(x) = D(G(z)) = 1/2``.

Algorithm 1 (minibatch stochastic gradient training; the paper used k = 1, "the least expensive
option")::

    for number of training iterations:
        for k steps:
            sample m noise samples z_1..z_m from p_z and m examples x_1..x_m from p_data
            update D by ascending  grad_theta_d (1/m) sum_i [log D(x_i) + log(1 - D(G(z_i)))]
        sample m noise samples z_1..z_m from p_z
        update G by descending grad_theta_g (1/m) sum_i log(1 - D(G(z_i)))

Here each training batch is one of the k discriminator steps (a fresh minibatch of data each time,
as the algorithm asks), and every k-th batch of an epoch is followed by one generator step on fresh
noise: Lightning's manual optimisation with two optimisers, D's first.

The generator's loss, ``generator_loss`` (Section 3):

* ``"saturating"``: the minimax loss of Algorithm 1, G minimises ``log(1 - D(G(z)))``.
* ``"non_saturating"`` (the default): "Early in learning, when G is poor, D can reject samples with
  high confidence because they are clearly different from the training data. In this case,
  log(1 - D(G(z))) saturates. Rather than training G to minimize log(1 - D(G(z))) we can train G to
  maximize log D(G(z)). This objective function results in the same fixed point of the dynamics of
  G and D but provides much stronger gradients early in learning." G minimises ``-log D(G(z))``.

Why, in one line: D ends in a sigmoid, ``D = sigmoid(a)``, and the gradient reaches G through the
logit ``a``. ``d/da log(1 - sigmoid(a)) = -D`` vanishes when D rejects the fake (D near 0), while
``d/da [-log sigmoid(a)] = -(1 - D)`` is then near -1. The ratio of the two is ``D / (1 - D)``.
The losses are computed from the logits with ``logsigmoid`` (``log D = logsigmoid(a)``,
``log(1 - D) = logsigmoid(-a)``), which stays finite where ``log`` of a rounded sigmoid would not.

Networks. The paper's generators "used a mixture of rectifier linear activations and sigmoid
activations, while the discriminator net used maxout activations. Dropout was applied in training
the discriminator net." This file's :class:`GAN` is the multilayer perceptron version: a ReLU MLP
generator (linear output for points in the plane; ``sigmoid`` for images in [0, 1] as in the paper,
``tanh`` for [-1, 1]) and an MLP discriminator with LeakyReLU(0.2) hidden units by default, or the
paper's maxout units (``discriminator_activation="maxout"``, 5 pieces per unit as in the authors'
released ``mnist.yaml``) with dropout. The authors' optimiser was SGD with momentum; this one uses
Adam with beta1 = 0.5 (Radford et al., 2015), which trains the small 2-D games far more reliably.

Paper-sized (:data:`PAPER_CONFIGS`): the MNIST model of the authors' released code (``mnist.yaml``
in github.com/goodfeli/adversarial; the paper's text gives no sizes): G 100 -> 1200 -> 1200 -> 784
(ReLU, ReLU, sigmoid), 2,503,984 parameters; D 784 -> maxout 240x5 -> maxout 240x5 -> 1, 1,231,441
parameters; tested against the same stacks of ``nn.Linear`` (:meth:`GAN.paper_sized`). Its forward
is the generator's: one digit from one z costs ``2 (100 * 1200 + 1200 * 1200 + 1200 * 784) =
5,001,600`` FLOPs.

What is logged (epoch means): ``train_d_loss`` (``-V`` on the batch), ``train_g_loss`` (the chosen
generator loss), ``train_d_real`` and ``train_d_fake`` (the mean of D(x) over real examples and of
D(G(z)) over fakes), ``train_generator_grad_norm`` (the L2 norm of G's whole gradient at its steps);
``val_*`` the same terms on held-out data, and the base's sample quality (``val_mmd``; with the
eight Gaussians, the mode coverage of :func:`ai_scratch.generative_era.evaluation.mode_coverage`).

Experiments (``configs/gan/``): ``eight_gaussians_strength`` (the MLP GAN covers the eight modes of
the ring with sharp samples) and ``saturating_loss_weakness`` (the minimax loss of Algorithm 1 gives
the generator gradients several times smaller early in training than the non-saturating one).

Example::

    gan = GAN(data_shape=(2,), latent_dim=16)
    points = gan.sample(500)                 # (500, 2)
    same = gan.decode(torch.randn(4, 16))    # the generator itself: (4, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ai_scratch.base import check_choice
from ai_scratch.generative_era.base import GenerativeModel, inputs_of
from ai_scratch.info import ModelInfo

GeneratorLoss = Literal["non_saturating", "saturating"]
Noise = Literal["normal", "uniform"]
OutputActivation = Literal["none", "sigmoid", "tanh"]
DiscriminatorActivation = Literal["leaky_relu", "maxout"]

#: Pieces of each maxout unit, as in the authors' released MNIST model (``num_pieces: 5``).
MAXOUT_PIECES = 5

#: The loss of the discriminator at the game's equilibrium, ``-V = -2 log(1/2) = log 4``.
EQUILIBRIUM_D_LOSS = math.log(4.0)


# ---------------------------------------------------------------------- the losses
def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-V(D, G)`` on a minibatch: ``-(1/m) sum_i [log D(x_i) + log(1 - D(G(z_i)))]``.

    D ascends V (Algorithm 1), so it descends this; with ``D = sigmoid(logit)`` it is the binary
    cross-entropy of "real" on the data and "fake" on the samples.
    """
    return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean())


def generator_loss(fake_logits: Tensor, kind: GeneratorLoss = "non_saturating") -> Tensor:
    """What G descends, from D's logits on its samples.

    ``"saturating"``: ``(1/m) sum_i log(1 - D(G(z_i)))`` (Algorithm 1; at most 0).
    ``"non_saturating"``: ``-(1/m) sum_i log D(G(z_i))`` (Section 3's remedy; at least 0).
    """
    check_choice("generator_loss", kind, GeneratorLoss)
    if kind == "saturating":
        return F.logsigmoid(-fake_logits).mean()  # log(1 - D(G(z)))
    return -F.logsigmoid(fake_logits).mean()  # -log D(G(z))


# ---------------------------------------------------------------------- the networks
class Maxout(nn.Module):
    """Maxout units (Goodfellow et al., 2013): ``h_j = max_p (W x + b)_{j, p}``, the largest of
    ``pieces`` affine functions of the input per unit; the paper's discriminator used them."""

    def __init__(self, in_features: int, units: int, pieces: int = MAXOUT_PIECES) -> None:
        super().__init__()
        if pieces < 1:
            raise ValueError(f"pieces must be at least 1, got {pieces}")
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.units, self.pieces)).amax(dim=-1)


def mlp_generator(latent_dim: int, hidden: Sequence[int], data_size: int, output_activation: OutputActivation) -> nn.Sequential:
    """G: z -> ReLU layers -> ``data_size`` outputs (linear, sigmoid or tanh)."""
    layers: list[nn.Module] = []
    width = latent_dim
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, data_size))
    if output_activation == "sigmoid":
        layers.append(nn.Sigmoid())
    elif output_activation == "tanh":
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def mlp_discriminator(data_size: int, hidden: Sequence[int], activation: DiscriminatorActivation, dropout: float) -> nn.Sequential:
    """D: x -> LeakyReLU(0.2) or maxout layers (with dropout on their inputs) -> one logit.

    The sigmoid that makes the logit a probability, ``D(x) = sigmoid(logit)``, is in the losses.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = data_size
    for units in hidden:
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if activation == "maxout":
            layers.append(Maxout(width, units))
        else:
            layers += [nn.Linear(width, units), nn.LeakyReLU(0.2)]
        width = units
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------- the game
class AdversarialModel(GenerativeModel):
    """The adversarial game of Algorithm 1 for any generator and discriminator (GAN, DCGAN).

    Subclasses build the two networks and pass them here: ``generator`` maps ``(n, latent_dim)``
    noise to ``(n, *data_shape)``, ``discriminator`` maps ``(n, *data_shape)`` to ``(n, 1)`` logits.

    Args:
        generator, discriminator: the two players.
        data_shape: the shape of one example (``(2,)`` for points, ``(1, 28, 28)`` for digits).
        latent_dim: the size of z.
        noise: p_z, ``"normal"`` N(0, I) or ``"uniform"`` U[-1, 1] (DCGAN's).
        generator_loss: ``"non_saturating"`` or ``"saturating"`` (see the module docstring).
        discriminator_steps: k of Algorithm 1, discriminator steps per generator step.
        generator_learning_rate, discriminator_learning_rate: Adam's step sizes.
        beta1: Adam's first momentum coefficient (0.5 in DCGAN; Adam's own default 0.9 oscillates).
        quality_every_n_epochs, quality_samples: see :class:`GenerativeModel`.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        data_shape: Sequence[int],
        latent_dim: int,
        noise: Noise = "normal",
        generator_loss: GeneratorLoss = "non_saturating",
        discriminator_steps: int = 1,
        generator_learning_rate: float = 2e-4,
        discriminator_learning_rate: float = 2e-4,
        beta1: float = 0.5,
        quality_every_n_epochs: int = 1,
        quality_samples: int = 1000,
    ) -> None:
        super().__init__(quality_every_n_epochs, quality_samples)
        check_choice("noise", noise, Noise)
        check_choice("generator_loss", generator_loss, GeneratorLoss)
        if not isinstance(discriminator_steps, int) or discriminator_steps < 1:
            raise ValueError(f"discriminator_steps must be an integer >= 1, got {discriminator_steps!r}")
        for name, rate in (("generator_learning_rate", generator_learning_rate), ("discriminator_learning_rate", discriminator_learning_rate)):
            if not rate > 0:
                raise ValueError(f"{name} must be positive, got {rate}")
        if not 0 <= beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
        self.automatic_optimization = False  # two optimisers, stepped in the order of Algorithm 1
        self.generator, self.discriminator = generator, discriminator
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        self.noise_kind, self.generator_loss_kind, self.discriminator_steps = noise, generator_loss, discriminator_steps
        self.generator_learning_rate, self.discriminator_learning_rate, self.beta1 = generator_learning_rate, discriminator_learning_rate, beta1
        self.set_sizes((latent_dim,), self.data_shape)

    # ------------------------------------------------------------------ the generator
    def noise(self, n: int) -> Tensor:
        """``n`` draws of z from p_z, on the model's device."""
        if self.noise_kind == "uniform":
            return torch.rand(n, self.latent_dim, device=self.device) * 2 - 1
        return torch.randn(n, self.latent_dim, device=self.device)

    def decode(self, z: Tensor) -> Tensor:
        """G(z): examples shaped like the data."""
        return self.generator(z).reshape(len(z), *self.data_shape)

    def forward(self, z: Tensor) -> Tensor:
        return self.decode(z)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.decode(self.noise(n))

    def discriminate(self, x: Tensor) -> Tensor:
        """D's logits ``a`` for a batch of examples, shape ``(n,)``; ``D(x) = sigmoid(a)``."""
        return self.discriminator(x).reshape(len(x))

    # ------------------------------------------------------------------ checks
    def setup(self, stage: str) -> None:
        """Refuse, in one line, data whose examples do not have the model's ``data_shape``."""
        datamodule = self.trainer.datamodule
        have = getattr(datamodule, "data_shape", None) or getattr(datamodule, "input_shape", None)
        if have is not None and tuple(have) != self.data_shape:
            raise ValueError(
                f"the model's data_shape is {list(self.data_shape)} but the data's examples are {list(have)}: set --model.data_shape={list(have)}"
            )

    # ------------------------------------------------------------------ Algorithm 1
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = (self.beta1, 0.999)
        return [
            torch.optim.Adam(self.discriminator.parameters(), lr=self.discriminator_learning_rate, betas=betas),
            torch.optim.Adam(self.generator.parameters(), lr=self.generator_learning_rate, betas=betas),
        ]

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real = inputs_of(batch)  # x_1..x_m from p_data
        m = len(real)
        d_optimizer, g_optimizer = self.optimizers()

        # one of the k steps of D: ascend log D(x) + log(1 - D(G(z))), G held fixed (detach)
        with self.toggled_optimizer(d_optimizer):
            fake = self.decode(self.noise(m)).detach()
            real_logits, fake_logits = self.discriminate(real), self.discriminate(fake)
            d_loss = discriminator_loss(real_logits, fake_logits)
            d_optimizer.zero_grad()
            self.manual_backward(d_loss)
            d_optimizer.step()
        self.log_terms("train", {"d_loss": d_loss, "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}, m)

        # after every k-th step of D, one step of G on fresh noise; D's parameters are frozen (toggled)
        if (batch_idx + 1) % self.discriminator_steps == 0:
            with self.toggled_optimizer(g_optimizer):
                g_loss = generator_loss(self.discriminate(self.decode(self.noise(m))), self.generator_loss_kind)
                g_optimizer.zero_grad()
                self.manual_backward(g_loss)
                g_optimizer.step()
            self.log_terms("train", {"g_loss": g_loss}, m)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log the norm of G's whole gradient at its steps (here, after Lightning has unscaled a
        mixed-precision gradient): how strongly the chosen loss pushes the generator."""
        generator_optimizer = self.optimizers(use_pl_optimizer=False)[1]
        if optimizer is not generator_optimizer:
            return
        norms = [p.grad.detach().float().norm() for p in self.generator.parameters() if p.grad is not None]
        if norms:
            self.log("train_generator_grad_norm", torch.stack(norms).norm(), on_step=False, on_epoch=True, batch_size=1, sync_dist=True)

    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        """Both players' losses on held-out examples and one draw of noise.

        ``loss`` is the discriminator's, ``-V(D, G)`` (``log 4`` at the equilibrium): the one loss
        both players share, D descending it and G (in the minimax game) ascending it.
        """
        real_logits, fake_logits = self.discriminate(inputs), self.discriminate(self.decode(self.noise(len(inputs))))
        d_loss = discriminator_loss(real_logits, fake_logits)
        return {
            "loss": d_loss,
            "d_loss": d_loss,
            "g_loss": generator_loss(fake_logits, self.generator_loss_kind),
            "d_real": torch.sigmoid(real_logits).mean(),
            "d_fake": torch.sigmoid(fake_logits).mean(),
        }

    # ------------------------------------------------------------------ sample quality
    def sample_quality(self, samples: Tensor, held_out: Tensor) -> dict[str, Tensor]:
        """The base's measures, and, when the data has known modes (the eight Gaussians), how many
        of them the samples cover and what fraction of samples lie near one."""
        quality = super().sample_quality(samples, held_out)
        trainer = self.attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        modes = getattr(datamodule, "modes", None)
        if modes is not None and samples.ndim == 2:
            from ai_scratch.generative_era.evaluation import mode_coverage

            std = getattr(datamodule, "mode_std", None)
            if std is None:
                from datamodules.points import RING_STD as std
            quality.update({name: value.to(held_out.device) for name, value in mode_coverage(samples, modes, std).items()})
        return quality

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The learning curves (every val_* term but the duplicate val_loss), both players' losses
        and D's outputs (:class:`~ai_scratch.generative_era.gan_figures.AdversarialCurves`), for points
        in the plane the samples over D's decision surface
        (:class:`~ai_scratch.generative_era.gan_figures.DiscriminatorSurface`), and a grid of samples and
        a walk through the latent space (``callbacks.samples``)."""
        from ai_scratch.generative_era.gan_figures import adversarial_figures

        return adversarial_figures(self, every_n_epochs)


class GAN(AdversarialModel):
    """The GAN of Goodfellow et al. (2014) with multilayer perceptrons for G and D.

    Args:
        data_shape: the shape of one example: ``[2]`` for points, ``[1, 28, 28]`` for digits (the
            generator's output is reshaped to it; the discriminator flattens its input).
        latent_dim: the size of the noise z.
        generator_hidden: widths of G's ReLU layers.
        discriminator_hidden: widths of D's hidden layers.
        discriminator_activation: ``"leaky_relu"`` (slope 0.2) or ``"maxout"`` (the paper's, 5 pieces).
        discriminator_dropout: dropout on the inputs of D's layers (the paper's D was trained with it).
        output_activation: G's last layer: ``"none"`` (points), ``"sigmoid"`` (images in [0, 1],
            the paper's) or ``"tanh"`` (images in [-1, 1]).
        The others: see :class:`AdversarialModel`.
    """

    INFO = ModelInfo(
        name="gan",
        full_name="Generative Adversarial Network",
        module=5,
        pattern="engine-based",
        year_introduced=2014,
        authors=(
            "Ian J. Goodfellow", "Jean Pouget-Abadie", "Mehdi Mirza", "Bing Xu", "David Warde-Farley",
            "Sherjil Ozair", "Aaron Courville", "Yoshua Bengio",
        ),  # fmt: skip
        paper_title="Generative Adversarial Nets",
        key_innovations=(
            "a generator trained against a discriminator in a two-player minimax game, no likelihood needed",
            "sampling by one forward pass from noise: no Markov chain, no approximate inference",
            "the optimal discriminator p_data / (p_data + p_g) turns the game into minimising the Jensen-Shannon divergence",
            "the non-saturating generator loss, -log D(G(z)), for strong gradients early in training",
        ),
        architecture_type="gan",
        learning_algorithm="alternating stochastic gradient steps: k for the discriminator, one for the generator (Algorithm 1)",
        loss_function="discriminator: binary cross-entropy (-V(D, G)); generator: log(1 - D(G(z))) or -log D(G(z))",
        optimizer="Adam (beta1 = 0.5) for each player; the paper used SGD with momentum",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "write the minimax value V(D, G) and both players' losses from D's logits",
            "train two networks with two optimisers in Lightning's manual optimisation, k steps of D per step of G",
            "see why log(1 - D(G(z))) saturates when D rejects the fakes and -log D(G(z)) does not",
            "measure samples by mode coverage and MMD, since a GAN has no likelihood to report",
        ),
        estimated_training_time="minutes",
    )

    def __init__(
        self,
        data_shape: Sequence[int] = (2,),
        latent_dim: int = 16,
        generator_hidden: Sequence[int] = (256, 256),
        discriminator_hidden: Sequence[int] = (256, 256),
        discriminator_activation: DiscriminatorActivation = "leaky_relu",
        discriminator_dropout: float = 0.0,
        output_activation: OutputActivation = "none",
        noise: Noise = "normal",
        generator_loss: GeneratorLoss = "non_saturating",
        discriminator_steps: int = 1,
        generator_learning_rate: float = 1e-3,
        discriminator_learning_rate: float = 1e-3,
        beta1: float = 0.5,
        quality_every_n_epochs: int = 1,
        quality_samples: int = 1000,
    ) -> None:
        check_choice("discriminator_activation", discriminator_activation, DiscriminatorActivation)
        check_choice("output_activation", output_activation, OutputActivation)
        data_shape = tuple(data_shape)
        if not data_shape or any(not isinstance(s, int) or s < 1 for s in data_shape):
            raise ValueError(f"data_shape must be a list of positive integers, got {list(data_shape)}")
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        for name, widths in (("generator_hidden", generator_hidden), ("discriminator_hidden", discriminator_hidden)):
            if any(not isinstance(w, int) or w < 1 for w in widths):
                raise ValueError(f"{name} must be a list of positive integers, got {list(widths)}")
        if not 0 <= discriminator_dropout < 1:
            raise ValueError(f"discriminator_dropout must be in [0, 1), got {discriminator_dropout}")
        data_size = math.prod(data_shape)
        super().__init__(
            generator=mlp_generator(latent_dim, generator_hidden, data_size, output_activation),
            discriminator=mlp_discriminator(data_size, discriminator_hidden, discriminator_activation, discriminator_dropout),
            data_shape=data_shape,
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
        self.save_hyperparameters()

    @classmethod
    def paper_sized(cls) -> GAN:
        """The MNIST model of the authors' released code (``mnist.yaml``; the paper's text gives no
        sizes): G 100 -> 1200 -> 1200 -> 784 (2,503,984 parameters), D 784 -> maxout 240x5 -> maxout
        240x5 -> 1 (1,231,441), 3,735,425 in all. One example is one z of 100 dimensions: the
        forward is the generator, one digit, ``2 (100 * 1200 + 1200 * 1200 + 1200 * 784)`` FLOPs
        (judging it, D's forward, costs ``2 (784 * 1200 + 240 * 1200 + 240)`` more)."""
        return cls(**PAPER_CONFIGS["goodfellow_mnist"])


#: The authors' released MNIST model (goodfeli/adversarial, ``mnist.yaml``) as :class:`GAN` arguments.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "goodfellow_mnist": {
        "data_shape": (1, 28, 28),
        "latent_dim": 100,
        "generator_hidden": (1200, 1200),
        "discriminator_hidden": (240, 240),
        "discriminator_activation": "maxout",
        "discriminator_dropout": 0.5,
        "output_activation": "sigmoid",
    },
}
