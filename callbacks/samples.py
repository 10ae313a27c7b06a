"""Figures of generative models: what the model draws, and what its latent space holds.

* :class:`SampleGrid`: for any module with ``sample(n)``. Images: a grid of samples beside a grid
  of held-out validation images. Points in the plane: the samples scattered over the held-out
  validation points, in two colours.
* :class:`LatentInterpolation`: for any module with a ``latent_dim`` and ``decode(z)``. Rows of
  images decoded along straight lines ``z(t) = (1 - t) z_a + t z_b`` between two random latent
  points; a smooth change from one digit to another says the model has learned a continuous
  latent space rather than a lookup table (Bengio et al., 2013; Radford et al., 2016, Section 6.1).
  For outputs in the plane, the decoded paths are drawn as lines over the data.

Both are seeded: the same noise and the same latent points at every epoch, so that figures of
successive epochs show how the model changed, not a new draw. The draws happen in a forked random
state, so the fit's own random numbers are the ones it would have drawn without the figures.

Held-out data comes from ``trainer.datamodule.arrays("val")`` when the datamodule has it (evenly
spaced through the split), else from the validation loader. Images are shown with ink in [0, 1]: when the held-out images (or, without
them, the samples) go below -0.5 they are read as [-1, 1] (a tanh generator's range) and mapped by
``(x + 1) / 2``; values outside the range are clipped for display.

Example::

    trainer = Trainer(callbacks=[SampleGrid(n=64, every_n_epochs=5), LatentInterpolation(steps=10, rows=4)])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import make_grid

from callbacks import plots
from callbacks.batches import evaluating, inputs_and_targets, validation_batches
from callbacks.figures import FigureCallback


# ---------------------------------------------------------------------- what both figures share
@contextmanager
def seeded_random_state(device: torch.device, seed: int) -> Iterator[None]:
    """Global random numbers seeded with ``seed`` inside, and the caller's random state (CPU and
    the device's) restored afterwards."""
    if device.type == "cpu":
        devices: list[int] = []
    else:
        module = getattr(torch, device.type)
        devices = list(range(module.device_count())) if hasattr(module, "device_count") else [0]
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def held_out_inputs(trainer: L.Trainer, limit: int) -> np.ndarray | None:
    """Up to ``limit`` validation inputs as a float32 array: from the datamodule's ``arrays("val")``
    when it has that method, evenly spaced through the split (a split stored in class order still
    shows every class), else the validation loader's first batches; ``None`` without validation data."""
    arrays = getattr(trainer.datamodule, "arrays", None) if trainer.datamodule is not None else None
    if callable(arrays):
        inputs = np.asarray(arrays("val")[0])
        if not len(inputs):
            return None
        spaced = np.unique(np.linspace(0, len(inputs) - 1, min(limit, len(inputs))).round().astype(int))
        return inputs[spaced].astype(np.float32)
    taken: list[np.ndarray] = []
    for batch in validation_batches(trainer):
        inputs, _ = inputs_and_targets(batch)
        if not isinstance(inputs, Tensor):
            return None
        taken.append(inputs.detach().float().cpu().numpy())
        if sum(len(x) for x in taken) >= limit:
            break
    return np.concatenate(taken)[:limit] if taken else None


def is_image_batch(x: np.ndarray) -> bool:
    """``(N, C, H, W)`` with one or three channels."""
    return x.ndim == 4 and x.shape[1] in (1, 3)


def is_plane_points(x: np.ndarray) -> bool:
    """``(N, 2)``: points in the plane."""
    return x.ndim == 2 and x.shape[1] == 2


def ink_range(images: np.ndarray, reference: np.ndarray | None) -> tuple[np.ndarray, str]:
    """``images`` with values in [0, 1] for display, and a note on how they were mapped."""
    judged = reference if reference is not None else images
    if float(judged.min()) < -0.5:
        return np.clip((images + 1.0) / 2.0, 0.0, 1.0), "Values in [-1, 1] shown as (x + 1) / 2, clipped to [0, 1]."
    return np.clip(images, 0.0, 1.0), "Values clipped to [0, 1]."


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Images ``(N, C, H, W)`` in [0, 1] as one picture, ``columns`` to a row, with a one-pixel grey
    border: ``(rows, cols)`` for one channel, ``(rows, cols, 3)`` for colour."""
    grid = make_grid(torch.from_numpy(np.ascontiguousarray(images)).float(), nrow=columns, padding=1, pad_value=0.5)
    return grid[0].numpy() if images.shape[1] == 1 else grid.permute(1, 2, 0).numpy()


def show_image(ax: Any, picture: np.ndarray, title: str) -> None:
    ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    plots.style_axes(ax, title=title, grid=False)
    ax.set_xticks([])
    ax.set_yticks([])


def plane_axes_names(trainer: L.Trainer) -> tuple[str, str]:
    names = getattr(trainer.datamodule, "feature_names", None) if trainer.datamodule is not None else None
    return (str(names[0]), str(names[1])) if names is not None and len(names) == 2 else ("x1", "x2")


def frame_plane(ax: Any, data: np.ndarray | None, drawn: np.ndarray) -> int:
    """Equal scales, limits around the data (with a margin) so that a few runaway samples do not
    shrink it to a dot; returns how many drawn points fall outside the view."""
    ax.set_aspect("equal", adjustable="box")
    if data is None or not len(data):
        return 0
    low, high = data.min(axis=0), data.max(axis=0)
    margin = 0.25 * (high - low).max() + 1e-6
    low, high = low - margin, high + margin
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    outside = ((drawn < low) | (drawn > high)).any(axis=1)
    return int(outside.sum())


def outside_note(count: int, what: str) -> str:
    """The note "3 samples fall outside the view.", or nothing when none do."""
    if count == 0:
        return ""
    return f"{count} {what} falls outside the view." if count == 1 else f"{count} {what}s fall outside the view."


def module_dtype(pl_module: L.LightningModule) -> torch.dtype:
    return next((p.dtype for p in pl_module.parameters() if p.is_floating_point()), torch.float32)


class _GenerativeFigure(FigureCallback):
    """A figure of a generative model: titles say after how many epochs it was drawn."""

    def __init__(self, seed: int, every_n_epochs: int | None, log_to_wandb: bool) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{type(self).__name__}: seed must be an integer >= 0, got {seed!r}")
        self.seed = seed
        self._epochs_done: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epochs_done = trainer.current_epoch + 1
        super().on_train_epoch_end(trainer, pl_module)

    def epochs_done(self, trainer: L.Trainer) -> int:
        return self._epochs_done if self._epochs_done is not None else trainer.current_epoch

    def title(self, what: str, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        epochs = self.epochs_done(trainer)
        return f"{what}: {type(pl_module).__name__}, after {epochs} epoch{'s' if epochs != 1 else ''}"

    def seeded(self, pl_module: L.LightningModule, draw: Callable[[], Tensor]) -> np.ndarray:
        """``draw()`` in eval mode, without gradients, with seeded global random numbers."""
        with evaluating(pl_module), seeded_random_state(pl_module.device, self.seed):
            out = draw()
        if not isinstance(out, Tensor):
            raise TypeError(f"expected a tensor, got {type(out).__name__}")
        return out.detach().float().cpu().numpy()


# ---------------------------------------------------------------------- samples
class SampleGrid(_GenerativeFigure):
    """What the model draws: a grid of sampled images, or sampled points over the data.

    Args:
        n: images in the grid (drawn by ``pl_module.sample(n)``), and held-out images beside them.
        num_points: samples drawn for data in the plane (a scatter needs more than a grid).
        seed: seed of the global random numbers while sampling (the same noise every epoch).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Raises:
        ValueError: for ``n`` or ``num_points`` below 1, or a negative ``seed``.

    For a module without ``sample`` or whose samples are neither images ``(N, 1 or 3, H, W)`` nor
    points ``(N, 2)``, it says so once and draws nothing. The last samples drawn are kept in
    :attr:`samples` (a NumPy array, as the model gave them).
    """

    name = "sample_grid"

    def __init__(
        self, n: int = 64, num_points: int = 1000, seed: int = 0, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(seed, every_n_epochs, log_to_wandb)
        for argument, value in (("n", n), ("num_points", num_points)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SampleGrid: {argument} must be an integer >= 1, got {value!r}")
        self.n, self.num_points = n, num_points
        self.samples: np.ndarray | None = None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        sample = getattr(pl_module, "sample", None)
        if not callable(sample):
            self.does_not_apply(f"{type(pl_module).__name__} has no sample(n) method")
            return None
        reference = held_out_inputs(trainer, max(self.n, self.num_points))
        count = self.num_points if reference is not None and is_plane_points(reference) else self.n
        samples = self.seeded(pl_module, lambda: sample(count))
        if is_image_batch(samples):
            self.samples = samples
            images = held_out_inputs(trainer, self.n) if reference is not None and is_image_batch(reference) else None
            return self._image_figure(samples, images, trainer, pl_module)
        if is_plane_points(samples):
            self.samples = samples
            points = reference if reference is not None and is_plane_points(reference) else None
            return self._points_figure(samples, points, trainer, pl_module)
        self.does_not_apply(f"the samples of {type(pl_module).__name__} are neither images (N, C, H, W) nor points (N, 2)")
        return None

    def _image_figure(self, samples: np.ndarray, real: np.ndarray | None, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure:
        columns = math.ceil(math.sqrt(len(samples)))
        shown, range_note = ink_range(samples, real)
        panels = [(shown, f"{len(samples)} samples")]
        if real is not None:
            panels.append((ink_range(real, real)[0], f"{len(real)} held-out validation images"))
        fig = plots.new_image_figure(5.0 * len(panels) + 1.0, 5.8)
        for index, (images, label) in enumerate(panels):
            show_image(fig.add_subplot(1, len(panels), index + 1), image_grid(images, columns), label)
        plots.add_title(fig, self.title("Samples", trainer, pl_module))
        plots.add_note(fig, [
            f"Left: {type(pl_module).__name__}.sample({len(samples)}) with seed {self.seed} (the same noise at every epoch)"
            + ("; right: real images the model did not train on, for comparison." if real is not None else "."),
            range_note,
        ])  # fmt: skip
        return fig

    def _points_figure(self, samples: np.ndarray, real: np.ndarray | None, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure:
        fig = plots.new_image_figure(8.5, 6.5)
        ax = fig.add_subplot()
        colors = plots.qualitative_colors(2)
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=6, alpha=0.5, color=colors[0], label=f"held-out validation data ({len(real)})")
        ax.scatter(samples[:, 0], samples[:, 1], s=6, alpha=0.5, color=colors[1], label=f"samples ({len(samples)})")
        xlabel, ylabel = plane_axes_names(trainer)
        plots.style_axes(ax, xlabel=xlabel, ylabel=ylabel)
        outside = frame_plane(ax, real, samples)
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=2.5)
        plots.add_title(fig, self.title("Samples", trainer, pl_module))
        plots.add_note(fig, [
            f"{type(pl_module).__name__}.sample({len(samples)}) with seed {self.seed}, over data the model did not train on.",
            "Samples where there is no data, or data with no samples (a missing mode), show what the model has not learned.",
            outside_note(outside, "sample"),
        ])  # fmt: skip
        return fig


# ---------------------------------------------------------------------- latent interpolation
class LatentInterpolation(_GenerativeFigure):
    """Decoded straight lines through the latent space: ``decode((1 - t) z_a + t z_b)``.

    Args:
        steps: points on each line, ``t = 0, 1/(steps - 1), ..., 1`` (at least 2).
        rows: lines, each between its own pair of latent points ``z_a, z_b``, drawn by the module's
            ``noise(n)`` when it has one (its prior p_z), else from ``N(0, I)``.
        seed: seed of the latent points (the same lines every epoch).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.

    Raises:
        ValueError: for ``steps`` below 2, ``rows`` below 1, or a negative ``seed``.

    The module needs ``latent_dim`` (an int, or the shape of one latent tensor) and ``decode(z)``
    for a batch ``z`` of shape ``(B, *latent shape)``. Images become a grid (one row per line);
    points in the plane become paths over the held-out data. Otherwise it says so once and draws
    nothing. The last endpoints and outputs are kept in :attr:`endpoints` ``(rows, 2, *latent)``
    and :attr:`decoded` ``(rows, steps, ...)``.
    """

    name = "latent_interpolation"

    def __init__(
        self, steps: int = 10, rows: int = 4, seed: int = 0, every_n_epochs: int | None = None, log_to_wandb: bool = True
    ) -> None:
        super().__init__(seed, every_n_epochs, log_to_wandb)
        if not isinstance(steps, int) or steps < 2:
            raise ValueError(f"LatentInterpolation: steps must be an integer >= 2, got {steps!r}")
        if not isinstance(rows, int) or rows < 1:
            raise ValueError(f"LatentInterpolation: rows must be an integer >= 1, got {rows!r}")
        self.steps, self.rows = steps, rows
        self.prior = "N(0, I)"  # the distribution of the latest endpoints (see latent_endpoints)
        self.endpoints: Tensor | None = None
        self.decoded: np.ndarray | None = None

    def latent_shape(self, pl_module: L.LightningModule) -> tuple[int, ...] | None:
        latent_dim = getattr(pl_module, "latent_dim", None)
        if isinstance(latent_dim, int) and not isinstance(latent_dim, bool) and latent_dim >= 1:
            return (latent_dim,)
        if isinstance(latent_dim, (tuple, list, torch.Size)) and latent_dim and all(isinstance(d, int) and d >= 1 for d in latent_dim):
            return tuple(latent_dim)
        return None

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        shape, decode = self.latent_shape(pl_module), getattr(pl_module, "decode", None)
        if shape is None or not callable(decode):
            self.does_not_apply(f"{type(pl_module).__name__} has no latent_dim and decode(z) to interpolate with")
            return None
        endpoints, self.prior = self.latent_endpoints(pl_module, shape)
        t = torch.linspace(0.0, 1.0, self.steps).reshape(1, self.steps, *[1] * len(shape))
        z = (1 - t) * endpoints[:, :1] + t * endpoints[:, 1:]  # (rows, steps, *shape): z(t) = (1 - t) z_a + t z_b
        latents = z.reshape(self.rows * self.steps, *shape).to(pl_module.device, module_dtype(pl_module))
        decoded = self.seeded(pl_module, lambda: decode(latents))
        decoded = decoded.reshape(self.rows, self.steps, *decoded.shape[1:])
        if is_image_batch(decoded[0]):
            self.endpoints, self.decoded = endpoints, decoded
            return self._image_figure(decoded, trainer, pl_module)
        if is_plane_points(decoded[0]):
            self.endpoints, self.decoded = endpoints, decoded
            return self._path_figure(decoded, trainer, pl_module)
        self.does_not_apply(f"{type(pl_module).__name__}.decode gives neither images (N, C, H, W) nor points (N, 2)")
        return None

    def latent_endpoints(self, pl_module: L.LightningModule, shape: tuple[int, ...]) -> tuple[Tensor, str]:
        """``(rows, 2, *shape)`` latent points and the name of the prior they come from: the
        module's own ``noise(n)`` when it has one (a GAN's p_z may be uniform), else N(0, I)."""
        noise = getattr(pl_module, "noise", None)
        if callable(noise):
            drawn = torch.as_tensor(self.seeded(pl_module, lambda: noise(2 * self.rows)), dtype=torch.float32)
            if tuple(drawn.shape) == (2 * self.rows, *shape):
                return drawn.reshape(self.rows, 2, *shape), "p_z, the model's noise"
        return torch.randn(self.rows, 2, *shape, generator=torch.Generator().manual_seed(self.seed)), "N(0, I)"

    def _note(self, pl_module: L.LightningModule, what: str) -> str:
        return (f"Each {what} decodes z(t) = (1 - t) z_a + t z_b for t = 0, ..., 1 in {self.steps} steps, between two latent points "
                f"z_a, z_b ~ {self.prior} of {type(pl_module).__name__} (seed {self.seed}: the same points at every epoch).")  # fmt: skip

    def _image_figure(self, decoded: np.ndarray, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure:
        rows, steps = decoded.shape[:2]
        reference = held_out_inputs(trainer, 64)
        images, range_note = ink_range(decoded.reshape(rows * steps, *decoded.shape[2:]), reference)
        height, width = decoded.shape[-2:]
        fig = plots.new_image_figure(1.0 + 0.8 * steps, 1.6 + 0.8 * rows * height / width)
        ax = fig.add_subplot()
        show_image(ax, image_grid(images, steps), "")
        # tick at every tile's centre: make_grid puts a 1-pixel border around each tile
        ax.set_xticks([1 + j * (width + 1) + width / 2 - 0.5 for j in range(steps)], [f"{v:.2g}" for v in np.linspace(0, 1, steps)])
        ax.set_yticks([1 + i * (height + 1) + height / 2 - 0.5 for i in range(rows)], [f"line {i + 1}" for i in range(rows)])
        plots.style_axes(ax, xlabel="t (0: z_a, 1: z_b)", grid=False)
        plots.add_title(fig, self.title("Latent interpolation", trainer, pl_module))
        plots.add_note(fig, [self._note(pl_module, "row"), range_note])
        return fig

    def _path_figure(self, decoded: np.ndarray, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure:
        fig = plots.new_image_figure(8.5, 6.5)
        ax = fig.add_subplot()
        real = held_out_inputs(trainer, 2000)
        real = real if real is not None and is_plane_points(real) else None
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=5, alpha=0.3, color="0.6", label=f"held-out validation data ({len(real)})")
        for index, (path, color) in enumerate(zip(decoded, plots.qualitative_colors(len(decoded)))):
            ax.plot(path[:, 0], path[:, 1], "-o", color=color, markersize=3, linewidth=1.5, label=f"line {index + 1}")
            ax.plot(path[0, 0], path[0, 1], "s", color=color, markersize=7)  # t = 0
        xlabel, ylabel = plane_axes_names(trainer)
        plots.style_axes(ax, xlabel=xlabel, ylabel=ylabel)
        outside = frame_plane(ax, real, decoded.reshape(-1, 2))
        ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        plots.add_title(fig, self.title("Latent interpolation", trainer, pl_module))
        plots.add_note(fig, [
            self._note(pl_module, "line"), "Squares mark t = 0; dots the decoded points, joined in order of t.",
            outside_note(outside, "decoded point"),
        ])  # fmt: skip
        return fig
