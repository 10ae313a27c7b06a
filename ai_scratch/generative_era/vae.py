"""The variational autoencoder (Kingma and Welling, 2013): an encoder to a Gaussian posterior, the
reparameterisation trick, and the evidence lower bound (ELBO) as the loss.

Paper: D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114).
Evaluation by the importance-weighted bound of Y. Burda, R. Grosse and R. Salakhutdinov,
"Importance Weighted Autoencoders", ICLR 2016 (arXiv:1509.00519).

A latent variable model ``p_theta(x, z) = p_theta(z) p_theta(x | z)`` with a standard normal prior
``p_theta(z) = N(z; 0, I)`` has an intractable posterior ``p_theta(z | x)``. The paper fits an
*encoder* (recognition model) ``q_phi(z | x) = N(z; mu, sigma^2 I)``, with ``mu`` and
``log sigma^2`` computed from ``x`` by an MLP, jointly with the *decoder* ``p_theta(x | z)``, by
maximising a lower bound on ``log p_theta(x)`` (Section 2.2, eq. 3)::

    log p_theta(x) >= L(theta, phi; x) = -D_KL(q_phi(z | x) || p_theta(z)) + E_q[log p_theta(x | z)]

For the Gaussian encoder and prior the KL term has a closed form (Appendix B), and the expectation
is estimated with L samples drawn through the *reparameterisation trick* (Section 2.4): a sample of
``q_phi`` is a differentiable function of phi and of noise that does not depend on phi, so the
gradient passes through the sampling (eq. 10, the estimator L~B)::

    z^(l) = mu + sigma * eps^(l),   eps^(l) ~ N(0, I)                      the reparameterisation
    L~B(theta, phi; x) = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)  = -D_KL (closed form)
                         + 1/L sum_l log p_theta(x | z^(l))                 reconstruction

The loss is ``-L~B``, in nats per example; it is logged as ``loss``, ``elbo`` (= -loss) and its two
terms, ``reconstruction`` (the expected log-likelihood ``E_q[log p(x | z)]``, a negative number for
Bernoulli pixels) and ``kl`` (``D_KL >= 0``): ``elbo = reconstruction - kl``.

Encoder and decoders (Appendix C), MLPs of one hidden layer of tanh units:

* encoder ``q_phi(z | x)`` (C.2): ``h = tanh(W3 x + b3)``, ``mu = W4 h + b4``,
  ``log sigma^2 = W5 h + b5``;
* ``decoder="bernoulli"`` (C.1), for pixels in [0, 1]: ``y = sigmoid(W2 tanh(W1 z + b1) + b2)``,
  ``log p(x | z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i)``;
* ``decoder="gaussian"`` (C.2), for real-valued data: ``h = tanh(W3 z + b3)``, ``mu = W4 h + b4``,
  ``log sigma^2 = W5 h + b5``, ``log p(x | z) = log N(x; mu, sigma^2 I)``. (On Frey Face, Section 5,
  the paper squashed ``mu`` into (0, 1) with a sigmoid; here it stays linear, the form of C.2, so
  that it fits data of any range.)

Evaluation, the importance-weighted bound (Burda et al., eq. 8) with ``k = iw_samples`` draws
``z_1..z_k`` of ``q_phi(z | x)``::

    L_k = log 1/k sum_i p_theta(x, z_i) / q_phi(z_i | x)

With k = 1 it is a one-sample estimate of the ELBO; it grows with k towards ``log p_theta(x)``
(``L_k <= L_{k+1} <= log p(x)``). Logged after each test epoch as ``test_iw_bound``, next to
``test_elbo``; both in nats per example, higher is better.

``variational=False`` is the *plain autoencoder* of the same encoder and decoder, the comparison
for the VAE's blur: ``z = mu`` (no sampling, no log-variance head), no KL term, the loss the
reconstruction's negative log-likelihood alone (binary cross-entropy for Bernoulli pixels). Both
log ``reconstruction_mse`` at validation and test: the mean squared error per pixel between the
data and the decoder's mean at ``z = mu``. The KL term pulls every code towards the prior, so
nearby digits share codes and the decoder answers with their average: blurry reconstructions,
an MSE clearly above the plain autoencoder's. The plain autoencoder has no ELBO and no
importance-weighted bound, and its ``sample(n)`` decodes draws of a prior its codes were never
fitted to.

Paper-sized (Section 5, MNIST): 784 inputs, 500 hidden units in the encoder and in the decoder,
latent dimensions 3 to 200 (Figure 2); with 20 latent dimensions (:data:`PAPER_CONFIGS`) the
Bernoulli VAE has ``(784 * 500 + 500) + 2 (500 * 20 + 20)`` encoder and
``(20 * 500 + 500) + (500 * 784 + 784)`` decoder parameters, 412,540 + 403,284 = 815,824 in all
(:meth:`VAE.paper_sized`). Its forward, the reconstruction of one 28x28 digit, costs
``2 (784 * 500 + 2 * 500 * 20 + 20 * 500 + 500 * 784) = 1,628,000`` FLOPs.
Training as the paper: minibatches of 100, L = 1 sample per example. The paper used Adagrad, a small
weight decay (a N(0, I) prior on the parameters) and weights drawn from N(0, 0.01); this
implementation uses Adam without weight decay, and keeps PyTorch's initialisation unless
``init_std`` is given (``init_std=0.01`` is the paper's).

Example::

    vae = VAE(data_shape=(1, 8, 8), hidden_size=128, latent_dim=4)
    terms = vae.loss_terms(torch.rand(16, 1, 8, 8))   # loss, elbo, reconstruction, kl
    images = vae.sample(25)                           # (25, 1, 8, 8): decoder means of z ~ N(0, I)
    bound = vae.importance_weighted_bound(torch.rand(16, 1, 8, 8), k=100)   # (16,) nats
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ai_scratch.base import check_choice
from ai_scratch.generative_era.base import GenerativeModel, inputs_of
from ai_scratch.info import ModelInfo

Decoder = Literal["bernoulli", "gaussian"]

LOG_2PI = math.log(2.0 * math.pi)

#: Kingma and Welling's MNIST model (Section 5, Appendix C) as :class:`VAE` arguments.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "mnist": {"data_shape": (1, 28, 28), "hidden_size": 500, "latent_dim": 20, "decoder": "bernoulli"},
}

#: :data:`PAPER_CONFIGS` ``"mnist"``'s parameters: encoder 392,500 + 2 x 10,020, decoder 10,500 + 392,784.
PAPER_PARAMETER_COUNT = 815_824


def gaussian_log_density(x: Tensor, mean: Tensor, log_variance: Tensor) -> Tensor:
    """``log N(x; mean, diag(exp(log_variance)))``, summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_variance + (x - mean).square() / log_variance.exp()).sum(-1)


def kl_to_standard_normal(mu: Tensor, log_variance: Tensor) -> Tensor:
    """``D_KL(N(mu, sigma^2 I) || N(0, I))`` per example, in closed form (Appendix B)."""
    # -D_KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    return -0.5 * (1.0 + log_variance - mu.square() - log_variance.exp()).sum(-1)


def reparameterise(mu: Tensor, log_variance: Tensor, samples: int | None = None) -> Tensor:
    """``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (Section 2.4): ``(samples, *mu.shape)`` draws, or one."""
    shape = mu.shape if samples is None else (samples, *mu.shape)
    eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)  # the noise does not depend on phi
    return mu + (0.5 * log_variance).exp() * eps  # sigma = exp(log sigma^2 / 2)


class GaussianEncoder(nn.Module):
    """``q_phi(z | x) = N(z; mu, sigma^2 I)`` (Appendix C.2): ``h = tanh(W3 x + b3)``,
    ``mu = W4 h + b4``, ``log sigma^2 = W5 h + b5``. Without ``log_variance`` (a plain autoencoder's
    encoder) it gives ``mu`` alone."""

    def __init__(self, input_size: int, hidden_size: int, latent_dim: int, log_variance: bool = True) -> None:
        super().__init__()
        self.hidden = nn.Linear(input_size, hidden_size)  # W3, b3
        self.mu = nn.Linear(hidden_size, latent_dim)  # W4, b4
        self.log_variance = nn.Linear(hidden_size, latent_dim) if log_variance else None  # W5, b5

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        h = torch.tanh(self.hidden(x))
        return self.mu(h), self.log_variance(h) if self.log_variance is not None else None


class BernoulliDecoder(nn.Module):
    """``p_theta(x | z)``, a product of Bernoullis (Appendix C.1): ``y = sigmoid(W2 tanh(W1 z + b1) + b2)``."""

    def __init__(self, latent_dim: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(latent_dim, hidden_size)  # W1, b1
        self.logits = nn.Linear(hidden_size, output_size)  # W2, b2: y = sigmoid(logits)

    def forward(self, z: Tensor) -> Tensor:
        return self.logits(torch.tanh(self.hidden(z)))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i)``, from the logits (stable)."""
        logits = self(z)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def mean(self, z: Tensor) -> Tensor:
        """``E[x | z] = y``: each pixel's probability of ink."""
        return torch.sigmoid(self(z))


class GaussianDecoder(nn.Module):
    """``p_theta(x | z) = N(x; mu, sigma^2 I)`` (Appendix C.2): ``h = tanh(W3 z + b3)``,
    ``mu = W4 h + b4``, ``log sigma^2 = W5 h + b5``."""

    def __init__(self, latent_dim: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(latent_dim, hidden_size)  # W3, b3
        self.mu = nn.Linear(hidden_size, output_size)  # W4, b4
        self.log_variance = nn.Linear(hidden_size, output_size)  # W5, b5

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.hidden(z))
        return self.mu(h), self.log_variance(h)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log N(x; mu, sigma^2 I) = -1/2 sum_i (log 2 pi + log sigma_i^2 + (x_i - mu_i)^2 / sigma_i^2)``."""
        mean, log_variance = self(z)
        return gaussian_log_density(x, mean, log_variance)

    def mean(self, z: Tensor) -> Tensor:
        return self(z)[0]


DECODERS: dict[str, type[BernoulliDecoder | GaussianDecoder]] = {"bernoulli": BernoulliDecoder, "gaussian": GaussianDecoder}


class VAE(GenerativeModel):
    """The variational autoencoder as a LightningModule, or with ``variational=False`` the plain
    autoencoder of the same encoder and decoder.

    Args:
        data_shape: one example's shape, ``(channels, height, width)`` for images (flattened for
            the MLPs); it must be the datamodule's ``data_shape`` or ``input_shape``.
        hidden_size: tanh units of the encoder's and of the decoder's hidden layer (500 for MNIST).
        latent_dim: dimension J of ``z`` (2 draws the paper's manifold figure).
        decoder: ``"bernoulli"`` (pixels in [0, 1]) or ``"gaussian"`` (real-valued data).
        variational: ``True`` the VAE; ``False`` the plain autoencoder: ``z = mu``, no KL term.
        iw_samples: k of the importance-weighted bound logged at test (``test_iw_bound``).
        learning_rate: Adam's step size.
        init_std: weights drawn from ``N(0, init_std^2)`` and biases zero (the paper's: 0.01);
            ``None`` keeps PyTorch's default initialisation.
        quality_every_n_epochs, quality_samples: see
            :class:`~ai_scratch.generative_era.base.GenerativeModel`.

    Raises:
        ValueError: on an argument out of range, one line naming it; at fit, on data whose shape
            is not ``data_shape`` or, for the Bernoulli decoder, whose values leave [0, 1].
    """

    INFO = ModelInfo(
        name="vae",
        full_name="Variational Autoencoder",
        module=5,
        pattern="engine-based",
        year_introduced=2013,
        authors=("Diederik P. Kingma", "Max Welling"),
        paper_title="Auto-Encoding Variational Bayes",
        key_innovations=(
            "the reparameterisation trick: z = mu + sigma * eps makes a sample differentiable in the encoder's parameters",
            "an encoder (recognition model) that amortises posterior inference over the data set",
            "the evidence lower bound as a training loss: reconstruction minus a closed-form KL to the prior",
            "a generative model with a smooth latent space: decode z ~ N(0, I) to draw new examples",
        ),
        architecture_type="encoder-decoder MLPs with a Gaussian latent variable",
        learning_algorithm="stochastic gradient variational Bayes (SGVB): backpropagation through sampled latents",
        loss_function="negative evidence lower bound: KL(q(z|x) || p(z)) - E_q[log p(x|z)]",
        optimizer="Adam (Adagrad in the paper)",
        framework="pytorch",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "derive the ELBO and compute its closed-form KL term for a Gaussian encoder",
            "make sampling differentiable with the reparameterisation trick",
            "read the ELBO's two terms: reconstruction against the pull towards the prior",
            "tighten the bound with importance weighting (Burda et al.): L_1 <= L_k <= log p(x)",
            "see the price of the KL term: blurrier reconstructions than a plain autoencoder",
        ),
        estimated_training_time="seconds to minutes",
    )

    def __init__(
        self,
        data_shape: tuple[int, ...] = (1, 28, 28),
        hidden_size: int = 500,
        latent_dim: int = 20,
        decoder: Decoder = "bernoulli",
        variational: bool = True,
        iw_samples: int = 100,
        learning_rate: float = 1e-3,
        init_std: float | None = None,
        quality_every_n_epochs: int = 1,
        quality_samples: int = 1000,
    ) -> None:
        super().__init__(quality_every_n_epochs, quality_samples)
        data_shape = tuple(data_shape)
        if not data_shape or any(not isinstance(n, int) or n < 1 for n in data_shape):
            raise ValueError(f"data_shape must be a non-empty list of positive integers, got {list(data_shape)}")
        for name, value in (("hidden_size", hidden_size), ("latent_dim", latent_dim), ("iw_samples", iw_samples)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_choice("decoder", decoder, Decoder)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if init_std is not None and not init_std > 0:
            raise ValueError(f"init_std must be positive or None, got {init_std}")
        self.save_hyperparameters()
        self.latent_dim = latent_dim
        self.decoder_kind, self.variational = decoder, variational
        self.iw_samples, self.learning_rate = iw_samples, learning_rate
        input_size = math.prod(data_shape)
        self.encoder = GaussianEncoder(input_size, hidden_size, latent_dim, log_variance=variational)
        self.decoder = DECODERS[decoder](latent_dim, hidden_size, input_size)
        if init_std is not None:
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, 0.0, init_std)
                    nn.init.zeros_(layer.bias)
        self.set_sizes(data_shape, data_shape)

    @classmethod
    def paper_sized(cls) -> VAE:
        """Kingma and Welling's MNIST model (Section 5, Appendix C): 784 Bernoulli pixels, 500 tanh
        units in the encoder and in the decoder, a 20-dimensional latent: 815,824 parameters (the
        paper gives none). One example is one 28x28 digit, reconstructed through ``z = mu``; the
        encoder computes the log-variance head as well, so the forward costs
        ``2 (784 * 500 + 2 * 500 * 20 + 20 * 500 + 500 * 784)`` FLOPs."""
        return cls(**PAPER_CONFIGS["mnist"])

    # ------------------------------------------------------------------ the model
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mu, log sigma^2)`` of ``q_phi(z | x)`` for data-shaped ``x``; ``log sigma^2`` is ``None``
        for the plain autoencoder."""
        return self.encoder(x.flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's mean ``E[x | z]`` for codes ``z`` ``(n, latent_dim)``, shaped like the data."""
        return self.decoder.mean(z).reshape(len(z), *self.input_size)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x``: the decoder's mean at ``z = mu`` (no sampling)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` draws of ``z ~ p(z) = N(0, I)`` through the decoder: its means, shaped like the data."""
        z = torch.randn(n, self.latent_dim, device=self.device)
        return self.decode(z)

    # ------------------------------------------------------------------ the bound
    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        """The SGVB estimate L~B (eq. 10, L = 1) of a batch, in nats per example: ``loss = -elbo``,
        ``elbo = reconstruction - kl``. The plain autoencoder: ``loss = -reconstruction`` at ``z = mu``."""
        x = inputs.flatten(1)
        mu, log_variance = self.encoder(x)
        if log_variance is None:  # the plain autoencoder: the code is mu itself
            reconstruction = self.decoder.log_likelihood(x, mu).mean()
            return {"loss": -reconstruction, "reconstruction": reconstruction}
        z = reparameterise(mu, log_variance)  # z = mu + sigma * eps
        reconstruction = self.decoder.log_likelihood(x, z).mean()  # 1/L sum_l log p(x | z^(l)), L = 1
        kl = kl_to_standard_normal(mu, log_variance).mean()  # D_KL(q(z | x) || p(z))
        elbo = reconstruction - kl
        return {"loss": -elbo, "elbo": elbo, "reconstruction": reconstruction, "kl": kl}

    def importance_weighted_bound(self, inputs: Tensor, k: int | None = None, chunk: int = 100) -> Tensor:
        """``L_k = log 1/k sum_i p(x, z_i) / q(z_i | x)`` per example (Burda et al., eq. 8), in nats.

        Args:
            inputs: a batch of data.
            k: draws of ``q(z | x)`` per example (default ``iw_samples``).
            chunk: draws decoded at once (memory ``chunk x batch x input size``).

        Raises:
            ValueError: for the plain autoencoder, which has no ``q(z | x)`` to sample.
        """
        if not self.variational:
            raise ValueError("the plain autoencoder (variational=False) has no posterior q(z|x): no importance-weighted bound")
        k = self.iw_samples if k is None else k
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        x = inputs.flatten(1)
        mu, log_variance = self.encoder(x)
        log_weights = []
        for start in range(0, k, chunk):
            z = reparameterise(mu, log_variance, samples=min(chunk, k - start))  # (draws, batch, J)
            log_p_x_given_z = self.decoder.log_likelihood(x, z)
            log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))  # p(z) = N(0, I)
            log_q_z = gaussian_log_density(z, mu, log_variance)  # q(z | x)
            log_weights.append(log_p_x_given_z + log_p_z - log_q_z)  # log w_i = log p(x, z_i) / q(z_i | x)
        return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)

    @torch.no_grad()
    def evaluation_terms(self, inputs: Tensor, stage: str) -> dict[str, Tensor]:
        """What validation and test add to the loss terms: ``reconstruction_mse`` (per pixel, the
        decoder's mean at ``z = mu``) and, at test, the VAE's ``iw_bound`` with ``iw_samples`` draws."""
        terms = {"reconstruction_mse": F.mse_loss(self(inputs), inputs)}
        if stage == "test" and self.variational:
            terms["iw_bound"] = self.importance_weighted_bound(inputs).mean()
        return terms

    # ------------------------------------------------------------------ Lightning
    def setup(self, stage: str) -> None:
        """Refuse, in one line, data whose shape is not the model's."""
        trainer = self.attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        have = getattr(datamodule, "data_shape", None) or getattr(datamodule, "input_shape", None)
        if have is not None and tuple(have) != self.input_size:
            raise ValueError(
                f"the model's data_shape is {list(self.input_size)} but the data's examples are {list(have)}: set --model.data_shape={list(have)}"
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # once, on the first batch: a Bernoulli likelihood is defined for values in [0, 1] only
        if self.decoder_kind == "bernoulli" and self.global_step == 0 and batch_idx == 0:
            x = inputs_of(batch)
            low, high = float(x.min()), float(x.max())
            if low < 0.0 or high > 1.0:
                raise ValueError(
                    f"the Bernoulli decoder needs data in [0, 1], got values in [{low:.3g}, {high:.3g}]: "
                    "use --data.normalization unit, or --model.decoder gaussian"
                )

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        inputs = inputs_of(batch)
        self.log_terms("val", self.evaluation_terms(inputs, "val"), len(inputs))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        inputs = inputs_of(batch)
        self.log_terms("test", self.evaluation_terms(inputs, "test"), len(inputs))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)

    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """Learning curves, gradient flow, reconstructions (originals above, reconstructions below),
        samples and latent interpolations, and for a 2-D latent the paper's manifold and the codes of
        the validation digits (:mod:`ai_scratch.generative_era.vae_figures`)."""
        from ai_scratch.generative_era.vae_figures import vae_figures

        return vae_figures(self, every_n_epochs)
