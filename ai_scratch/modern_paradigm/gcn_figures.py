"""The figures of the GCN (:mod:`ai_scratch.modern_paradigm.gcn`): what propagation does to the nodes.

* :class:`HiddenRepresentations` (``hidden_representations.png``): every node placed by the
  network's last hidden layer, at a few moments of training, coloured by its true class, the
  labelled nodes starred. Kipf and Welling (2017, Appendix A, on the karate club) show the same:
  with one label per class, the hidden layer already groups the nodes of a community together,
  because each layer averages a node with its neighbours.
* :class:`OverSmoothingCurve` (``oversmoothing.png``): the same model trained again at 1, 2, 4, 8,
  16 and 32 layers (:func:`depth_sweep`), with (a) its test accuracy against depth, beside the
  accuracy without the graph (``propagation="none"``, an MLP), and (b) how alike the nodes' last
  hidden representations are (mean cosine similarity between nodes) in the network as initialised:
  the effect of propagation alone, before any learning.
  Every layer multiplies by ``Â``, whose repeated powers tend to one direction: deep stacks make
  all nodes look alike, and accuracy falls to chance (Appendix B, Figure 5 of the paper).

:func:`hidden_representations_figure` and :func:`oversmoothing_figure` draw the same from arrays,
without a Trainer.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import move_data_to_device
from matplotlib.figure import Figure
from torch import Tensor

from callbacks import plots
from callbacks.figures import FigureCallback

#: Depths of the over-smoothing curve.
DEFAULT_DEPTHS = (1, 2, 4, 8, 16, 32)


def _graph_of(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Tensor] | None:
    """The datamodule's whole graph on the module's device, or ``None`` when there is none."""
    datamodule = trainer.datamodule
    graph = getattr(datamodule, "graph", None) if datamodule is not None else None
    if not isinstance(graph, dict) or "edge_index" not in graph:
        return None
    return move_data_to_device(graph, pl_module.device)


def project_2d(points: np.ndarray) -> np.ndarray:
    """Points of any width on the plane: as they are when 2-D, else on their two principal axes."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[1] == 1:
        return np.column_stack([points[:, 0], np.zeros(len(points))])
    if points.shape[1] == 2:
        return points
    centred = points - points.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:2].T


def last_hidden(model: Any, graph: dict[str, Tensor]) -> Tensor:
    """The last hidden layer's output ``H^(L-1)`` of every node (the scores for a one-layer model),
    in evaluation mode, as float32 on the CPU."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = model.layer_outputs(graph["features"], graph["edge_index"])
    model.train(was_training)
    return outputs[-2 if len(outputs) > 1 else -1].float().cpu()


def mean_cosine_similarity(representations: Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct nodes: 1 when every node points the same way."""
    unit = F.normalize(representations.float(), dim=1)
    n = len(unit)
    if n < 2:
        return float("nan")
    similarity = unit @ unit.T
    return float((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1)))


# ---------------------------------------------------------------------- hidden representations
class HiddenRepresentations(FigureCallback):
    """The nodes in the plane of the last hidden layer, before training and at a few epochs after.

    Records the hidden representations when training starts and at the end of epochs 1, 2, 5, 10,
    20, 50, 100, ... and of the last epoch; draws up to ``panels`` of them. Widths above two are
    projected on their two principal axes.

    Args:
        panels: the most snapshots drawn (the first and the last always among them).
        max_edges: draw the graph's edges when it has at most this many (0: never).
        every_n_epochs, log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "hidden_representations"

    def __init__(self, panels: int = 6, max_edges: int = 2000, every_n_epochs: int | None = None, log_to_wandb: bool = True) -> None:
        super().__init__(every_n_epochs, log_to_wandb)
        if panels < 2:
            raise ValueError(f"HiddenRepresentations: panels must be at least 2, got {panels}")
        self.panels, self.max_edges = panels, max_edges
        self.snapshots: list[tuple[str, np.ndarray]] = []

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule, label: str) -> None:
        graph = _graph_of(trainer, pl_module)
        if graph is None or not hasattr(pl_module, "layer_outputs"):
            return
        self.snapshots = [s for s in self.snapshots if s[0] != label]
        self.snapshots.append((label, last_hidden(pl_module, graph).numpy()))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.snapshots = []
        self._record(trainer, pl_module, "before training")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done in {1, 2, 5} or (done >= 10 and str(done).strip("0") in ("1", "2", "5")):
            self._record(trainer, pl_module, f"after epoch {done}")
        super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, pl_module, f"after epoch {trainer.current_epoch}")  # the last epoch trained
        super().on_train_end(trainer, pl_module)

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        graph = getattr(trainer.datamodule, "graph", None) if trainer.datamodule is not None else None
        if not self.snapshots or graph is None:
            self.does_not_apply("the data is not one graph (a GraphDataModule) or the model has no layer_outputs")
            return None
        chosen = self.snapshots
        if len(chosen) > self.panels:  # the first, the last, and evenly spaced ones between
            keep = np.unique(np.linspace(0, len(chosen) - 1, self.panels).round().astype(int))
            chosen = [chosen[i] for i in keep]
        edge_index = graph["edge_index"].cpu().numpy()
        names = list(getattr(trainer.datamodule, "class_names", None) or [])
        layers = len(getattr(pl_module, "layers", [])) or 1
        return hidden_representations_figure(
            chosen,
            labels=graph["labels"].cpu().numpy(),
            labelled=graph["train_mask"].cpu().numpy(),
            class_names=names,
            edge_index=edge_index if edge_index.shape[1] <= self.max_edges else None,
            title=(f"GCN ({layers} layers): the nodes as the last hidden layer sees them, during training" if layers > 1
                   else "GCN (1 layer, no hidden layer): the nodes' class scores during training"),
            unit_name="hidden unit" if layers > 1 else "class score",
        )


def hidden_representations_figure(
    snapshots: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    labelled: np.ndarray,
    class_names: Sequence[str],
    edge_index: np.ndarray | None,
    title: str,
    unit_name: str = "hidden unit",
) -> Figure:
    """One panel per ``(label, representations)`` snapshot: the nodes in 2-D, coloured by class."""
    if not snapshots:
        return plots.empty_figure(title, "no hidden representations were recorded")
    labels, labelled = np.asarray(labels).astype(int), np.asarray(labelled).astype(bool)
    num_classes = int(labels.max()) + 1
    names = list(class_names) if len(class_names) == num_classes else [f"class {k}" for k in range(num_classes)]
    colors = plots.qualitative_colors(max(2, num_classes))
    columns = min(3, len(snapshots))
    rows = int(np.ceil(len(snapshots) / columns))
    fig = plots.new_figure(4.2 * columns, 3.9 * rows + 0.9)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    width = np.asarray(snapshots[0][1]).shape[1]
    for ax, (label, representations) in zip(axes, snapshots):
        points = project_2d(representations)
        if edge_index is not None:
            for i, j in edge_index.T:
                if i < j:
                    ax.plot(points[[i, j], 0], points[[i, j], 1], color="0.82", linewidth=0.5, zorder=1)
        for k in range(num_classes):
            unlabelled = (labels == k) & ~labelled
            ax.scatter(points[unlabelled, 0], points[unlabelled, 1], s=22, color=colors[k], alpha=0.85, zorder=2,
                       label=names[k])  # fmt: skip
            given = (labels == k) & labelled
            ax.scatter(points[given, 0], points[given, 1], s=170, marker="*", color=colors[k], edgecolors="black",
                       linewidths=1.0, zorder=3, label=f"{names[k]}: label given")  # fmt: skip
        axis_names = (f"{unit_name} 1", f"{unit_name} 2") if width <= 2 else ("principal axis 1", "principal axis 2")
        representations = np.asarray(representations, dtype=np.float64)
        spread = float(np.sqrt(((representations - representations.mean(0)) ** 2).sum(1).mean()))  # RMS distance to the mean node
        alike = mean_cosine_similarity(torch.from_numpy(representations))
        panel_title = f"{label}\nspread {spread:.2g}, similarity {alike:.2f}"
        plots.style_axes(ax, title=panel_title, xlabel=axis_names[0], ylabel=axis_names[1])
    for ax in axes[len(snapshots):]:
        ax.set_visible(False)
    handles, legend_labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="outside right upper", fontsize=plots.LEGEND_SIZE)
    plots.add_title(fig, title)
    projection = "its two units" if width <= 2 else f"its {width} numbers per node, projected on their two principal axes"
    plots.add_note(fig, [
        f"Each dot is a node placed by the last hidden layer ({projection}); colour: the node's true class; "
        f"stars: the {int(labelled.sum())} nodes whose label the loss saw.",
        "Every layer averages a node with its neighbours, so nodes of one community move together although "
        "only the starred labels were used.",
        "Spread: how far the nodes lie from their mean (mind the scale of the axes); similarity: the mean cosine "
        "similarity between nodes, near 1 when every node points the same way (over-smoothed).",
    ])  # fmt: skip
    return fig


# ---------------------------------------------------------------------- over-smoothing
def train_full_batch(model: Any, graph: dict[str, Tensor], epochs: int) -> dict[str, float]:
    """Train ``model`` (a GCN) on the whole ``graph`` for ``epochs`` steps with its own optimizer, as
    the fit does; returns the test accuracy at the epoch of the lowest validation loss (the
    checkpoint the fit tests) and the validation loss there."""
    optimizer = model.configure_optimizers()
    labels, train, val, test = graph["labels"], graph["train_mask"], graph["val_mask"], graph["test_mask"]
    best = {"val_loss": float("inf"), "test_accuracy": float("nan")}
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        scores = model(graph["features"], graph["edge_index"])
        F.cross_entropy(scores[train].float(), labels[train]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            scores = model(graph["features"], graph["edge_index"]).float()
        val_loss = float(F.cross_entropy(scores[val], labels[val]))
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "test_accuracy": float((scores[test].argmax(1) == labels[test]).float().mean())}
    return best


def depth_sweep(
    model_class: type, hparams: dict[str, Any], graph: dict[str, Tensor], depths: Sequence[int] = DEFAULT_DEPTHS,
    epochs: int = 200, seed: int = 0,
) -> dict[str, Any]:
    """The model of ``hparams`` trained anew at every depth, and once with ``propagation="none"``.

    Returns ``{"depths", "test_accuracy", "similarity_untrained", "mlp_test_accuracy"}``: lists over
    depths (the similarity: :func:`mean_cosine_similarity` of the last hidden layer of the network
    as initialised, the effect of propagation alone) and the MLP's accuracy. The global random state
    is left as it was.
    """
    device = graph["features"].device
    rows: dict[str, Any] = {"depths": list(depths), "test_accuracy": [], "similarity_untrained": []}
    with torch.random.fork_rng(devices=[]):
        for depth in depths:
            torch.manual_seed(seed)
            model = model_class(**{**hparams, "num_layers": depth}).to(device)
            rows["similarity_untrained"].append(mean_cosine_similarity(last_hidden(model, graph)))
            rows["test_accuracy"].append(train_full_batch(model, graph, epochs)["test_accuracy"])
        torch.manual_seed(seed)
        mlp = model_class(**{**hparams, "propagation": "none"}).to(device)
        rows["mlp_test_accuracy"] = train_full_batch(mlp, graph, epochs)["test_accuracy"]
    return rows


class OverSmoothingCurve(FigureCallback):
    """Test accuracy and the nodes' similarity against the number of layers, at the end of training.

    Trains the fitted model's configuration again (on global rank zero, in a plain loop, as many
    epochs as the fit ran, at most ``max_epochs``) at each of ``depths`` and without propagation.

    Args:
        depths: the numbers of layers.
        max_epochs: the most epochs per depth.
        max_nodes: draw only for graphs of at most this many nodes (the sweep trains many models).
        log_to_wandb: see :class:`~callbacks.figures.FigureCallback`.
    """

    name = "oversmoothing"

    def __init__(self, depths: Sequence[int] = DEFAULT_DEPTHS, max_epochs: int = 200, max_nodes: int = 5000, log_to_wandb: bool = True) -> None:
        super().__init__(None, log_to_wandb)
        if not depths or any(d < 1 for d in depths):
            raise ValueError(f"OverSmoothingCurve: depths must be positive integers, got {list(depths)}")
        self.depths, self.max_epochs, self.max_nodes = tuple(sorted(set(depths))), max_epochs, max_nodes

    def draw(self, data: Any, trainer: L.Trainer, pl_module: L.LightningModule) -> Figure | None:
        graph = _graph_of(trainer, pl_module)
        if graph is None or not hasattr(pl_module, "layer_outputs"):
            self.does_not_apply("the data is not one graph (a GraphDataModule) or the model is not a GCN")
            return None
        if len(graph["labels"]) > self.max_nodes:
            self.does_not_apply(f"the graph has more than {self.max_nodes} nodes (the curve trains {len(self.depths) + 1} models)")
            return None
        epochs = max(1, min(self.max_epochs, trainer.current_epoch))
        accepted = inspect.signature(type(pl_module).__init__).parameters  # hparams also hold the CLI's _class_path
        hparams = {k: v for k, v in dict(pl_module.hparams).items() if k in accepted and k not in ("self", "num_layers")}
        rows = depth_sweep(type(pl_module), hparams, graph, self.depths, epochs=epochs, seed=0)
        return oversmoothing_figure(rows, current_depth=len(pl_module.layers), epochs=epochs)


def oversmoothing_figure(rows: dict[str, Any], current_depth: int | None, epochs: int) -> Figure:
    """The figure of :class:`OverSmoothingCurve` from :func:`depth_sweep`'s rows."""
    depths = np.asarray(rows["depths"])
    fig = plots.new_figure(11.5, 4.8)
    accuracy_ax, similarity_ax = fig.subplots(1, 2)
    accuracy_ax.plot(depths, rows["test_accuracy"], "o-", color="tab:blue", label="GCN, trained")
    accuracy_ax.axhline(rows["mlp_test_accuracy"], color="tab:gray", linestyle="--", label="no graph (propagation none: an MLP)")
    if current_depth is not None and current_depth in rows["depths"]:
        index = rows["depths"].index(current_depth)
        accuracy_ax.scatter([current_depth], [rows["test_accuracy"][index]], s=160, facecolors="none", edgecolors="tab:red",
                            linewidths=1.8, zorder=3, label=f"this run's depth ({current_depth})")  # fmt: skip
    accuracy_ax.set_xscale("log", base=2)
    accuracy_ax.set_xticks(depths, [str(d) for d in depths])
    accuracy_ax.set_ylim(-0.02, 1.02)
    plots.style_axes(accuracy_ax, title="(a) test accuracy", xlabel="graph convolution layers", ylabel="test accuracy")
    accuracy_ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left")
    similarity_ax.plot(depths, rows["similarity_untrained"], "s-", color="tab:orange", label="the GCN as initialised (random weights)")
    similarity_ax.set_xscale("log", base=2)
    similarity_ax.set_xticks(depths, [str(d) for d in depths])
    similarity_ax.set_ylim(-0.02, 1.02)
    plots.style_axes(similarity_ax, title="(b) how alike the nodes are", xlabel="graph convolution layers",
                     ylabel="mean cosine similarity between nodes")  # fmt: skip
    similarity_ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower right")
    plots.add_title(fig, "Over-smoothing: stacking graph convolutions makes every node look alike")
    plots.add_note(fig, [
        f"The same GCN trained anew at each depth ({epochs} epochs, the checkpoint of lowest validation loss). Each layer "
        "averages every node with its neighbours; many layers average over the whole graph,",
        "so the last hidden layer gives nearly the same vector to every node even before training (b: similarity "
        "near 1), and the classes can no longer be told apart (a: accuracy falls to chance).",
    ])  # fmt: skip
    return fig
