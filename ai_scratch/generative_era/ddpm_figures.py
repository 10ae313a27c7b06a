"""DDPM's own figures: the noise schedule, and noise turning into data along the reverse process.

* :func:`schedule_figure`: beta_t and alpha-bar_t against t for the linear schedule (Ho et al.,
  Section 4) and the cosine one (Nichol and Dhariwal, eq. 17). alpha-bar_t is how much of x_0's
  signal is left in x_t (``x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps``): the linear
  schedule destroys it early, the cosine one spreads the destruction evenly over the chain.
* :func:`trajectory_figure`: x_T ... x_0 of a few samples at a few steps of Algorithm 2. Points
  in the plane are scatter panels (the held-out data in grey beside the last); images are rows, one
  per sample, one column per step.

:class:`NoiseSchedule` and :class:`DenoisingTrajectory` draw them at the end of a fit (``DDPM.figures``).
From a shell::

    python -m ai_scratch.generative_era.ddpm_figures schedule schedule.png --timesteps 1000
    python -m ai_scratch.generative_era.ddpm_figures trajectory trajectory.png --checkpoint runs/ddpm/.../last.ckpt
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure

from ai_scratch.generative_era.ddpm import cosine_betas, linear_betas
from callbacks import plots
from callbacks.figures import FigureCallback

SCHEDULE_COLORS = {"linear": "C0", "cosine": "C3"}


def schedules(timesteps: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> dict[str, dict[str, np.ndarray]]:  # noqa: N803
    """``{"linear"|"cosine": {"beta": beta_1..beta_T, "alpha_bar": alpha-bar_1..alpha-bar_T}}``."""
    result = {}
    for name, betas in (("linear", linear_betas(timesteps, beta_1, beta_T)), ("cosine", cosine_betas(timesteps))):
        result[name] = {"beta": betas.numpy(), "alpha_bar": torch.cumprod(1 - betas, 0).numpy()}
    return result


def schedule_figure(timesteps: int = 1000, used: str | None = None, beta_1: float = 1e-4, beta_T: float = 0.02) -> Figure:  # noqa: N803
    """beta_t (log scale) and alpha-bar_t against t, linear and cosine; ``used`` is drawn thicker."""
    curves = schedules(timesteps, beta_1, beta_T)
    t = np.arange(1, timesteps + 1)
    fig = plots.new_figure(12, 4.6)
    beta_axes, signal_axes = fig.subplots(1, 2)
    for name, curve in curves.items():
        label = f"{name} ({'Ho et al.' if name == 'linear' else 'Nichol and Dhariwal'})" + (", this model's" if name == used else "")
        width = 2.6 if name == used else 1.5
        beta_axes.plot(t, curve["beta"], color=SCHEDULE_COLORS[name], linewidth=width, label=label)
        signal_axes.plot(t, curve["alpha_bar"], color=SCHEDULE_COLORS[name], linewidth=width, label=label)
    beta_axes.set_yscale("log")
    plots.style_axes(beta_axes, "Noise added at step t: beta_t", "step t", "beta_t (log scale)")
    plots.style_axes(signal_axes, "Signal left in x_t: alpha-bar_t = prod (1 - beta_s)", "step t", "alpha-bar_t")
    signal_axes.set_ylim(-0.02, 1.02)
    for axes in (beta_axes, signal_axes):
        axes.set_xlim(0, timesteps + 1)
        axes.legend(fontsize=plots.LEGEND_SIZE, framealpha=0.9)
    plots.add_title(fig, f"DDPM noise schedules over T = {timesteps} steps")
    final = {name: curve["alpha_bar"][-1] for name, curve in curves.items()}
    plots.add_note(fig, [
        f"x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) eps. At t = T, alpha-bar is {final['linear']:.1e} (linear) and "
        f"{final['cosine']:.1e} (cosine): x_T is noise.",
        "The linear schedule has destroyed most of the signal halfway; the cosine one keeps it longer (beta_t is clipped at 0.999).",
    ])  # fmt: skip
    return fig


def trajectory_figure(trajectory: Mapping[int, np.ndarray], held_out: np.ndarray | None = None, title: str | None = None) -> Figure:
    """x_t at the steps of ``trajectory`` (``{t: (n, ...)}``, largest t first): scatter panels for
    points ``(n, 2)``, rows of images for ``(n, 1, H, W)`` (at most 8 rows)."""
    times = sorted(trajectory, reverse=True)
    first = np.asarray(trajectory[times[0]])
    if first.ndim == 2 and first.shape[1] == 2:
        return _points_trajectory(trajectory, times, held_out, title)
    if first.ndim == 4:
        return _image_trajectory(trajectory, times, title)
    raise ValueError(f"trajectory: points (n, 2) or images (n, C, H, W), got shape {first.shape}")


def _points_trajectory(trajectory: Mapping[int, np.ndarray], times: list[int], held_out: np.ndarray | None, title: str | None) -> Figure:
    fig = plots.new_image_figure(2.8 * len(times), 3.6)
    panels = fig.subplots(1, len(times), sharex=True, sharey=True)
    panels = np.atleast_1d(panels)
    limit = 1.1 * max(np.abs(np.asarray(trajectory[times[-1]])).max(), 3.0)
    for panel, t in zip(panels, times):
        if held_out is not None and t == 0:
            panel.scatter(held_out[:, 0], held_out[:, 1], s=3, color="0.75", label="held-out data")
        x = np.asarray(trajectory[t])
        panel.scatter(x[:, 0], x[:, 1], s=3, color="C0", label="samples")
        panel.set_xlim(-limit, limit)
        panel.set_ylim(-limit, limit)
        panel.set_aspect("equal")
        plots.style_axes(panel, f"x_{t}" + (" (noise)" if t == times[0] else " (sample)" if t == 0 else ""), "x", "y" if t == times[0] else None)
    if held_out is not None and 0 in times:
        panels[-1].legend(fontsize=plots.LEGEND_SIZE, loc="upper right", markerscale=3)
    plots.add_title(fig, title or "Ancestral sampling (Algorithm 2): from x_T ~ N(0, I) to x_0")
    plots.add_note(fig, ["each panel: the same samples at one step t of the reverse process; each step is one call of eps_theta"])
    return fig


def _image_trajectory(trajectory: Mapping[int, np.ndarray], times: list[int], title: str | None) -> Figure:
    rows = min(8, len(trajectory[times[0]]))
    fig = plots.new_image_figure(1.1 * len(times) + 0.5, 1.1 * rows + 1.2)
    grid = fig.subplots(rows, len(times), squeeze=False)
    for column, t in enumerate(times):
        images = np.asarray(trajectory[t])
        for row in range(rows):
            ax = grid[row, column]
            image = images[row].transpose(1, 2, 0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image.clip(-1, 1) * 0.5 + 0.5, cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {t}", fontsize=plots.LABEL_SIZE)
    plots.add_title(fig, title or "Ancestral sampling: noise x_T to digit x_0")
    plots.add_note(fig, ["one row per sample, one column per step t (grey scale fixed to [-1, 1])"])
    return fig


# ---------------------------------------------------------------------- callbacks
class NoiseSchedule(FigureCallback):
    """The model's noise schedule beside the other one, for its T (:func:`schedule_figure`)."""

    name = "noise_schedule"

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        hp = getattr(pl_module, "hparams", {})
        if "timesteps" not in hp or "schedule" not in hp:
            self.does_not_apply("the model has no diffusion schedule (hyperparameters timesteps and schedule)")
            return None
        return schedule_figure(hp["timesteps"], hp["schedule"], hp.get("beta_1", 1e-4), hp.get("beta_T", 0.02))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The schedule does not change while training: drawn once, at the end."""


class DenoisingTrajectory(FigureCallback):
    """A few samples along the reverse process (:func:`trajectory_figure`), from the model's
    ``sample_trajectory(n, times)``; for points, the validation data beside the last panel.

    Args:
        n: samples drawn (all for points, at most 8 image rows).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "denoising_trajectory"

    def __init__(self, n: int = 500, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if n < 1:
            raise ValueError(f"DenoisingTrajectory: n must be at least 1, got {n}")
        self.n = n

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        if not callable(getattr(pl_module, "sample_trajectory", None)):
            self.does_not_apply("the model has no sample_trajectory(n, times)")
            return None
        image_like = len(getattr(pl_module, "data_shape", ())) == 3
        generator = torch.Generator().manual_seed(0)
        trajectory = pl_module.sample_trajectory(8 if image_like else self.n, generator=generator)
        arrays = {t: x.detach().float().cpu().numpy() for t, x in trajectory.items()}
        held_out = None
        datamodule = trainer.datamodule
        if not image_like and callable(getattr(datamodule, "arrays", None)):
            held_out = datamodule.arrays("val")[0]
        return trajectory_figure(arrays, held_out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ai_scratch.generative_era.ddpm_figures schedule|trajectory OUT.png``."""
    parser = argparse.ArgumentParser(description="Draw DDPM's noise schedules, or a trained model's denoising trajectory.")
    parser.add_argument("figure", choices=["schedule", "trajectory"])
    parser.add_argument("output", help="where to save the PNG")
    parser.add_argument("--timesteps", type=int, default=1000, help="T for the schedule figure")
    parser.add_argument("--checkpoint", help="a DDPM checkpoint, for the trajectory")
    parser.add_argument("--samples", type=int, default=500)
    options = parser.parse_args(argv)
    if options.figure == "schedule":
        if options.timesteps < 2:
            parser.error("--timesteps must be at least 2")
        figure = schedule_figure(options.timesteps)
    else:
        if not options.checkpoint:
            parser.error("trajectory needs --checkpoint")
        from ai_scratch.generative_era.ddpm import DDPM

        model = DDPM.load_from_checkpoint(options.checkpoint, map_location="cpu")
        trajectory = model.sample_trajectory(options.samples, generator=torch.Generator().manual_seed(0))
        figure = trajectory_figure({t: x.numpy() for t, x in trajectory.items()})
    print(f"saved {plots.save_figure(figure, options.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
