"""Speed of the generative models: what DDPM's sampling costs against T, and against one network call.

    python benchmarks/generative_speed.py                         # CPU: the MLP on points and the 8x8 U-Net
    python benchmarks/generative_speed.py --networks unet --timesteps 10 100 1000 --rounds 3
    python benchmarks/generative_speed.py --device cuda --samples 1000 --image-samples 256
    python benchmarks/generative_speed.py --networks --train-configs vae/digits_elbo_strength ddpm/digits_strength

DDPM's weakness, measured (Ho et al., 2020, Algorithm 2): a sample is x_0 at the end of a chain of
T reverse steps, each one call of the noise predictor eps_theta, where a GAN's generator (or a
VAE's decoder) maps noise to data in one call. For each network, the sides timed are:

* **one call**: a single forward of eps_theta on a batch of ``n`` inputs, without gradients: the
  cost of a one-call generator of the same size (the reference of every ratio);
* **T = 10, 100, 1000** (``--timesteps``): ``DDPM.sample(n)``, the whole ancestral chain, with the
  model's linear schedule rescaled to that T;
* **train step**: one step of Algorithm 1 (L_simple on a batch of ``--batch-size``, backward, Adam).

The networks are the ones the configs train (untrained weights: the cost does not depend on them):
``mlp``, ``MLPDenoiser`` (128 units, 3 blocks) on ``--samples`` points in the plane, as in
``configs/ddpm/moons_strength.yaml``; ``unet``, the small ``UNet`` (32 base channels, multipliers
(1, 2)) on ``--image-samples`` 8x8 images, as in ``configs/ddpm/digits_strength.yaml``.

The generators the configs train, timed beside them: ``GAN.sample(n)`` of
``configs/gan/eight_gaussians_strength.yaml`` with the MLP, ``DCGAN.sample(n)`` of
``configs/dcgan/digits_strength.yaml`` with the U-Net: the single call a GAN pays per sample batch.

Then the training step of each model, as its experiment config builds it (``--train-configs``):
one step on a batch of the config's batch size, backward and optimiser step included (for a GAN,
one step of D and one of G, Algorithm 1 with k = 1; for DDPM, the moving average's update too).
The ratio is over the VAE's step in the same round.

After a warm-up call of each, the sides alternate in rounds (each round in the reverse order of the
last), and each round times one call of each. Printed per side: the median time, samples per
second, and the median over rounds of the paired ratio, the side's time over one call's in the same
round, with a bootstrap 90% interval. For the chains, the ratio over T too: the cost of one
reverse step over one bare call (about 1 when the network dominates; above 1 when the step's own
arithmetic and noise draws are not negligible beside a small network).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import from_config_sections, instantiate, paired_rounds, single_optimizer, versions  # noqa: E402

REFERENCE = "one call"
TRAIN_REFERENCE = "vae/digits_elbo_strength"

#: The generator each denoiser is compared with: a GAN of the same data, built from its config.
GENERATORS = {"mlp": "gan/eight_gaussians_strength", "unet": "dcgan/digits_strength"}

#: The experiments whose training step is timed, by default.
TRAIN_CONFIGS = [TRAIN_REFERENCE, "gan/eight_gaussians_strength", "dcgan/digits_strength", "ddpm/moons_strength", "ddpm/digits_strength"]


def build(network: str, timesteps: int, device: torch.device):
    """A DDPM with the configs' network and the paper's schedule rescaled to ``timesteps`` (the same sum of betas)."""
    from ai_scratch.generative_era.ddpm import DDPM

    scale = 1000 / timesteps
    beta_1, beta_T = min(1e-4 * scale, 0.5), min(0.02 * scale, 0.999)  # noqa: N806
    if network == "mlp":
        model = DDPM(denoiser="mlp", data_shape=(2,), timesteps=timesteps, beta_1=beta_1, beta_T=beta_T, hidden_size=128, num_layers=3)
    else:
        model = DDPM(denoiser="unet", data_shape=(1, 8, 8), timesteps=timesteps, beta_1=beta_1, beta_T=beta_T, base_channels=32,
                     channel_multipliers=(1, 2), num_res_blocks=1, norm_groups=8)  # fmt: skip
    return model.to(device)


def from_config(name: str, device: torch.device):
    """The model and one training batch of the experiment ``name`` (``vae/digits_elbo_strength``)."""
    settings = from_config_sections(name)
    model = instantiate(settings["model"]).to(device)
    data = instantiate(settings["data"])
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    return model, inputs.to(device)


def training_step(name: str, device: torch.device) -> tuple[Callable[[], None], int]:
    """One training step of the experiment's model on one batch, and the batch's size."""
    from ai_scratch.generative_era.gan import AdversarialModel, discriminator_loss, generator_loss

    torch.manual_seed(0)
    model, inputs = from_config(name, device)
    model.train()
    m = len(inputs)
    if isinstance(model, AdversarialModel):  # Algorithm 1, k = 1: a step of D, then a step of G
        d_optimizer, g_optimizer = model.configure_optimizers()

        def step() -> None:
            fake = model.decode(model.noise(m)).detach()
            discriminator_loss(model.discriminate(inputs), model.discriminate(fake)).backward()
            d_optimizer.step()
            d_optimizer.zero_grad(set_to_none=True)
            generator_loss(model.discriminate(model.decode(model.noise(m))), model.generator_loss_kind).backward()
            g_optimizer.step()
            g_optimizer.zero_grad(set_to_none=True)
            model.discriminator.zero_grad(set_to_none=True)  # G's loss reached D's weights too

        return step, m
    optimizer = single_optimizer(model)
    ema = getattr(model, "ema", None)

    def step() -> None:
        model.loss_terms(inputs)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update_parameters(model.network)

    return step, m


def sides(network: str, options: argparse.Namespace, device: torch.device) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one timed call, how many samples it produces; 0 for the training step)."""
    torch.manual_seed(0)
    n = options.samples if network == "mlp" else options.image_samples
    reference = build(network, 1000, device).eval()
    inputs = torch.randn(n, *reference.data_shape, device=device)
    steps = torch.full((n,), 500, device=device, dtype=torch.long)

    def one_call() -> None:
        with torch.no_grad():
            reference.ema.module(inputs, steps)

    result: dict[str, tuple[Callable[[], None], int]] = {REFERENCE: (one_call, n)}
    generator, _ = from_config(GENERATORS[network], device)
    generator.eval()
    result[f"{generator.INFO.name.upper()} sample"] = (lambda: generator.sample(n), n)
    for timesteps in options.timesteps:
        model = build(network, timesteps, device).eval()
        result[f"T = {timesteps}"] = (lambda model=model: model.sample(n), n)
    trained = build(network, 1000, device).train()
    optimizer = torch.optim.Adam(trained.network.parameters(), lr=1e-3)
    batch = torch.randn(options.batch_size, *trained.data_shape, device=device)

    def train_step() -> None:
        loss = trained.loss_terms(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    result["train step"] = (train_step, 0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", default=["mlp", "unet"], choices=["mlp", "unet"], help="DDPM sampling, per denoiser (none: skip)")
    parser.add_argument("--train-configs", nargs="*", default=TRAIN_CONFIGS, help="experiments whose training step is timed (none: skip)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--timesteps", type=int, nargs="+", default=[10, 100, 1000], help="chain lengths T to sample with")
    parser.add_argument("--samples", type=int, default=1000, help="points drawn per call (mlp)")
    parser.add_argument("--image-samples", type=int, default=64, help="images drawn per call (unet)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch of the training step")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    options = parser.parse_args(argv)
    for flag in ("samples", "image_samples", "batch_size", "rounds"):
        if getattr(options, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    missing = [name for name in options.train_configs if not (ROOT / "configs" / f"{name}.yaml").is_file()]
    if missing:
        parser.error(f"--train-configs: no config {missing[0]!r} under configs/")
    if min(options.timesteps) < 1:
        parser.error("--timesteps must be at least 1")
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")

    print(f"device {device}, {torch.get_num_threads()} threads, {options.rounds} rounds")
    if options.networks:
        print("\nDDPM's sampling against T; every ratio is over one call of eps_theta on the same inputs")
        print(f"{'network':<8} {'side':<13} {'time':>10} {'samples/s':>11} {'/ one call':>11} {'90% interval':>19} {'/ (T calls)':>12}")
    for network in options.networks:
        rows = paired_rounds(sides(network, options, device), REFERENCE, options.rounds, device)
        for name, row in rows.items():
            per_call = f"{row['ratio'] / int(name.split('= ')[1]):>12.3f}" if name.startswith("T =") else f"{'':>12}"
            rate = f"{row['per_second']:>11,.0f}" if row["per_second"] else f"{'-':>11}"
            interval = "" if name == REFERENCE else f"[{row['low']:.2f}, {row['high']:.2f}]"
            ratio = "1" if name == REFERENCE else f"{row['ratio']:.2f}"
            print(f"{network:<8} {name:<13} {1000 * row['seconds']:>8.1f}ms {rate} {ratio:>11} {interval:>19} {per_call}", flush=True)
        chain, generator = rows.get("T = 1000"), next(row for name, row in rows.items() if name.endswith(" sample"))
        if chain is not None:
            n = options.samples if network == "mlp" else options.image_samples
            print(f"{network:<8} {n} samples by a chain of T = 1000 take {chain['seconds'] / generator['seconds']:,.0f} times the GAN's one call, "
                  f"and as long as {chain['seconds'] / rows['train step']['seconds']:.0f} training steps on batches of {options.batch_size}",
                  flush=True)  # fmt: skip
    if options.train_configs:
        calls = {name: training_step(name, device) for name in options.train_configs}
        reference = TRAIN_REFERENCE if TRAIN_REFERENCE in calls else options.train_configs[0]
        print(f"\nOne training step of each experiment's model on a batch of its config's size; ratios over {reference}'s")
        print(f"{'experiment':<32} {'batch':>6} {'time':>10} {'examples/s':>11} {'ratio':>7} {'90% interval':>15}")
        for name, row in paired_rounds(calls, reference, options.rounds, device).items():
            interval = "" if name == reference else f"[{row['low']:.2f}, {row['high']:.2f}]"
            print(f"{name:<32} {calls[name][1]:>6} {1000 * row['seconds']:>8.2f}ms {row['per_second']:>11,.0f} {row['ratio']:>7.2f} {interval:>15}", flush=True)
    print(versions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
