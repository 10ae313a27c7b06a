"""The graph convolutional network (Kipf and Welling, 2017): a node learns from its neighbours' features.

Paper: T. N. Kipf and M. Welling, "Semi-Supervised Classification with Graph Convolutional
Networks", ICLR 2017 (arXiv:1609.02907).

The task (Section 1): classify the nodes of one graph (papers in a citation network, members of a
club) when only a few of them carry a label. Earlier methods added a graph-Laplacian penalty to the
loss (eq. 1) so that neighbours get similar outputs; a GCN puts the graph into the network itself,
``f(X, A)``, and trains on the labelled nodes alone: the gradient reaches every node whose
neighbourhood touches a labelled one.

The layer (Section 2, eq. 2), with ``A`` the adjacency matrix of an undirected graph of ``N`` nodes,
``H^(0) = X`` the ``N x C`` node features and ``W^(l)`` the layer's weights::

    A~ = A + I_N                                            renormalisation: every node its own neighbour
    D~_ii = sum_j A~_ij                                     degrees, self-loop included
    H^(l+1) = sigma( D~^-1/2 A~ D~^-1/2 H^(l) W^(l) )       eq. 2

``Â = D~^-1/2 A~ D~^-1/2`` (:func:`normalized_adjacency`) replaces each row of ``H W`` by a weighted
mean over the node and its neighbours, ``Â_ij = 1 / sqrt(d~_i d~_j)``. Section 2.2 derives it as a
first-order approximation (K = 1, lambda_max ~ 2, one shared parameter) of a spectral graph
convolution ``g_theta * x = U g_theta U^T x`` (eqs. 3-8): ``theta (I_N + D^-1/2 A D^-1/2) x``,
whose eigenvalues lie in [0, 2], so that stacking it is numerically unstable; the
*renormalisation trick* ``I_N + D^-1/2 A D^-1/2 -> D~^-1/2 A~ D~^-1/2`` brings them into (-1, 1].
``Â`` is sparse (``N + 2|E|`` entries), so a layer costs ``O(|E| C F)``: :class:`GraphConvolution`
multiplies it with ``torch.sparse.mm``.

The model (Section 3.1, eq. 9): two layers, a softmax over the ``F`` classes::

    Z = f(X, A) = softmax( Â ReLU( Â X W^(0) ) W^(1) )                  eq. 9
    L = - sum_{l in Y_L} sum_{f=1}^{F} Y_lf ln Z_lf                      eq. 10, labelled nodes only

``Y_L`` is the set of labelled nodes. Training is full-batch (Section 3.1): one gradient step per
epoch on the whole graph, the features and ``Â`` of all nodes, the loss on the labelled ones; the
validation and the test run the whole graph too (in evaluation mode: no dropout) and read the
labels of their own nodes.

Training (Section 5.2, Appendix B): Adam, learning rate 0.01, at most 200 epochs, early stopping
when the validation loss has not decreased for 10 epochs (``EarlyStopping(patience=10)`` in the
configs); dropout 0.5 on the input of every layer, L2 regularisation ``5e-4`` on the first layer's
weights only (Adam's ``weight_decay`` on that parameter group: the gradient of ``5e-4/2 ||W||^2``),
16 hidden units; Glorot initialisation and row-normalised input features. On Cora this gives 81.5%
test accuracy (Table 2), 70.3% on CiteSeer and 79.0% on PubMed.

Two options show what the propagation does:

* ``propagation="none"``: ``Â`` replaced by ``I_N``. Each node is then classified from its own
  features only: the same network is an MLP, the paper's contrast (Table 3, "MLP": 55.1% on Cora).
  On the karate club, whose nodes have no features (``X = I_N``, as in the paper's Appendix A),
  an MLP cannot say anything about a node it was not trained on.
* ``num_layers``: more layers reach further (``L`` layers see ``L`` hops), but each layer also
  averages; with many layers every node's representation tends to the same vector (Appendix B,
  Figure 5: 1 to 10 layers on the citation sets, the best at 2 or 3, and without residual
  connections training grows difficult beyond about 7; "over-smoothing",
  as Li, Han and Wu, 2018, named it).

Parameters: a layer is ``C x F`` weights (no bias in eq. 2 and 9; ``bias=True`` adds one). The
paper's Cora model (:meth:`GCN.paper_sized`): ``C = 1,433`` features, 16 hidden units, ``F = 7``
classes, ``1,433 x 16 + 16 x 7 = 23,040`` parameters. A graph model's one example is its graph: one
forward on Cora's 2,708 nodes and 5,429 edges (Table 1) costs ``2 N (C H + H F)`` FLOPs for the
dense products ``H W`` and ``2 (N + 2|E|)(H + F)`` for the sparse ``Â (H W)``, 125,408,676 in all
(:meth:`GCN.forward_flops`).

Example::

    normalized_adjacency(torch.tensor([[0, 1], [1, 0]]), num_nodes=2).to_dense()   # Â: all 0.5

    datamodule = GraphDataModule("karate", train_nodes=[0, 33])    # datamodules/graphs.py
    datamodule.setup()
    graph = datamodule.graph                                       # the whole graph, one batch
    model = GCN(in_features=34, num_classes=2)
    scores = model(graph["features"], graph["edge_index"])        # (34, 2): class scores per node
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ai_scratch.base import BaseModel, check_choice
from ai_scratch.info import ModelInfo

Propagation = Literal["renormalized", "none"]

#: The graph batch that :class:`datamodules.graphs.GraphDataModule` yields: one dict, the whole graph.
GRAPH_KEYS = ("features", "edge_index", "labels", "train_mask", "val_mask", "test_mask")

#: The paper's three citation data sets (Table 1): input features C and classes F.
PAPER_DATASETS: dict[str, dict[str, int]] = {
    "cora": {"in_features": 1433, "num_classes": 7},
    "citeseer": {"in_features": 3703, "num_classes": 6},
    "pubmed": {"in_features": 500, "num_classes": 3},
}

#: Nodes and undirected edges of the paper's data sets (Table 1).
PAPER_GRAPH_SIZES: dict[str, tuple[int, int]] = {"cora": (2708, 5429), "citeseer": (3327, 4732), "pubmed": (19717, 44338)}


def placeholder_edges(num_nodes: int, num_edges: int) -> Tensor:
    """``(2, 2 num_edges)``: a graph of a given size, ``num_edges`` distinct undirected edges on
    ``num_nodes`` nodes, without self-loops, each listed in both directions as a data set lists them.

    Edge ``e`` joins node ``e mod N`` to the node ``1 + e // N`` places further round a ring. Built
    with ``torch.arange`` on the default device, so it exists under ``torch.device("meta")`` too:
    what a count of operations needs, where the features are zeros as well.

    Raises:
        ValueError: when the ring cannot hold that many distinct edges.
    """
    if num_edges > num_nodes * ((num_nodes - 1) // 2):
        raise ValueError(f"{num_nodes} nodes on a ring hold at most {num_nodes * ((num_nodes - 1) // 2)} distinct edges, got {num_edges}")
    edge = torch.arange(num_edges)
    source = edge % num_nodes
    target = (source + 1 + edge // num_nodes) % num_nodes
    return torch.stack([torch.cat([source, target]), torch.cat([target, source])])


def normalized_adjacency(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """``Â = D~^-1/2 (A + I_N) D~^-1/2`` as a coalesced sparse COO tensor (float32), ``N x N``.

    Args:
        edge_index: ``(2, E)`` integer tensor, one column ``(i, j)`` per entry ``A_ij``; an
            undirected graph lists each edge in both directions.
        num_nodes: ``N``.
        edge_weight: ``(E,)`` values of ``A_ij`` (default 1: a binary adjacency).

    Raises:
        ValueError: for an ``edge_index`` that is not ``(2, E)`` or names a node outside ``[0, N)``.
    """
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index names nodes outside [0, {num_nodes}): min {int(edge_index.min())}, max {int(edge_index.max())}")
    device = edge_index.device
    weight = torch.ones(edge_index.shape[1], device=device) if edge_weight is None else edge_weight.to(device, torch.float32)
    loops = torch.arange(num_nodes, device=device)
    rows = torch.cat([edge_index[0].long(), loops])  # A~ = A + I_N
    cols = torch.cat([edge_index[1].long(), loops])
    values = torch.cat([weight, torch.ones(num_nodes, device=device)])
    degree = torch.zeros(num_nodes, device=device).index_add_(0, rows, values)  # D~_ii = sum_j A~_ij
    inverse_sqrt = degree.rsqrt()  # >= 1 everywhere thanks to the self-loop: no division by zero
    values = inverse_sqrt[rows] * values * inverse_sqrt[cols]  # (D~^-1/2 A~ D~^-1/2)_ij
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (num_nodes, num_nodes), check_invariants=False).coalesce()


def identity_adjacency(num_nodes: int, device: torch.device | str = "cpu") -> Tensor:
    """``I_N`` as a sparse tensor: what ``propagation="none"`` puts in place of ``Â``."""
    loops = torch.arange(num_nodes, device=device)
    ones = torch.ones(num_nodes, device=device)
    return torch.sparse_coo_tensor(torch.stack([loops, loops]), ones, (num_nodes, num_nodes), check_invariants=False).coalesce()


def propagate(adjacency: Tensor, support: Tensor) -> Tensor:
    """``Â (H W)``: the sparse (or dense) adjacency times the dense ``support``, in float32.

    Under mixed precision the support arrives in bfloat16 or float16, for which sparse kernels are
    missing on some devices, and autocast would cast the product down again (its backward then
    mixes types): the product is taken in float32 with autocast off, and the next layer casts it back.
    """
    with torch.autocast(device_type=support.device.type, enabled=False):
        support = support.float()
        if adjacency.is_sparse:
            return torch.sparse.mm(adjacency, support)
        return adjacency.float() @ support


class GraphConvolution(nn.Module):
    """One layer of eq. 2 without its nonlinearity: ``Â H W`` (plus a bias when asked).

    ``H W`` first (``N x F``, ``F <= C`` usually), then ``Â`` times that: the cheaper order.

    Args:
        in_features: ``C``, the width of ``H^(l)``.
        out_features: ``F``, the width of ``H^(l+1)``.
        bias: add a learned bias (the paper's layer has none).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))  # W^(l), C x F
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.xavier_uniform_(self.weight)  # Glorot and Bengio (2010), as in Section 5.2

    def forward(self, hidden: Tensor, adjacency: Tensor) -> Tensor:
        output = propagate(adjacency, hidden @ self.weight)  # Â (H^(l) W^(l))
        return output + self.bias if self.bias is not None else output

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class GCN(BaseModel):
    """The GCN of eq. 9 as a LightningModule, with ``num_layers`` graph convolutions (2 in the paper).

    Batches are one whole graph (:data:`GRAPH_KEYS`): ``features`` ``(N, C)``, ``edge_index``
    ``(2, E)``, ``labels`` ``(N,)`` and boolean ``train_mask``, ``val_mask``, ``test_mask``. Each
    stage computes the scores of all nodes and its loss (eq. 10) and accuracy on its own mask.

    Args:
        in_features: ``C``, features per node (the number of nodes for featureless graphs, ``X = I``).
        num_classes: ``F``.
        hidden_size: width of every hidden layer (16 in the paper).
        num_layers: graph convolutions, >= 1; ``L`` layers reach ``L`` hops.
        dropout: dropout rate on the input of every layer (0.5 in the paper).
        weight_decay: L2 on the first layer's weights (5e-4 in the paper).
        learning_rate: Adam's step size (0.01 in the paper).
        propagation: ``"renormalized"`` (``Â``, the paper) or ``"none"`` (``I``: an MLP).
        bias: give each layer a bias (the paper's have none).
        sparse_adjacency: multiply with a sparse ``Â`` (``False``: a dense one, for a device
            without sparse kernels; the same numbers).

    Raises:
        ValueError: for an argument out of range, in one line.
    """

    INFO: ClassVar[ModelInfo] = ModelInfo(
        name="gcn",
        full_name="Graph Convolutional Network (GCN)",
        module=6,
        pattern="engine-based",
        year_introduced=2017,
        authors=("Thomas N. Kipf", "Max Welling"),
        paper_title="Semi-Supervised Classification with Graph Convolutional Networks",
        key_innovations=(
            "A layer-wise propagation rule H' = sigma(D~^-1/2 (A + I) D~^-1/2 H W): a first-order approximation of spectral graph convolutions",
            "The renormalisation trick A + I, which keeps repeated propagation numerically stable",
            "Semi-supervised node classification trained end to end on the labelled nodes only, the graph inside the network",
            "Cost linear in the number of edges through sparse matrix products, full-batch on the whole graph",
        ),
        architecture_type="Graph neural network: stacked graph convolutions on one graph",
        learning_algorithm="Full-batch gradient descent (Adam) with dropout and early stopping on the validation loss",
        loss_function="Cross-entropy over the labelled nodes only (eq. 10)",
        optimizer="Adam (learning rate 0.01, L2 5e-4 on the first layer)",
        framework="PyTorch Lightning",
        difficulty_level="intermediate",
        key_learning_objectives=(
            "Represent a graph by its adjacency matrix and normalise it symmetrically with self-loops",
            "Write a graph convolution as Â H W with a sparse matrix product",
            "Train semi-supervised: a loss on a few labelled nodes, predictions for all nodes",
            "See what the graph adds by replacing Â with the identity: the same network becomes an MLP",
            "Recognise over-smoothing: deep stacks of averaging layers make all nodes look alike",
        ),
        estimated_training_time="seconds (karate club, stochastic block models); about a minute on a CPU for Cora",
        device_support=("cpu", "gpu", "mps"),
    )

    def __init__(
        self,
        in_features: int = 34,
        num_classes: int = 2,
        hidden_size: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        weight_decay: float = 5e-4,
        learning_rate: float = 0.01,
        propagation: Propagation = "renormalized",
        bias: bool = False,
        sparse_adjacency: bool = True,
    ) -> None:
        for name, value in (("in_features", in_features), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        check_choice("propagation", propagation, Propagation)
        super().__init__(num_classes=num_classes)
        self.save_hyperparameters()
        self.propagation, self.dropout, self.sparse_adjacency = propagation, dropout, sparse_adjacency
        self.weight_decay, self.learning_rate = weight_decay, learning_rate
        widths = [in_features] + [hidden_size] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(GraphConvolution(c, f, bias=bias) for c, f in zip(widths[:-1], widths[1:]))
        self.input_size, self.output_size = (in_features,), (num_classes,)
        # Lightning's model summary runs forward on this: a graph of one node and no edges
        self.example_input_array = (torch.zeros(1, in_features), torch.zeros(2, 0, dtype=torch.long))

    @classmethod
    def paper_sized(cls, dataset: str = "cora", **overrides: Any) -> GCN:
        """The model of Section 5.2 for one of the paper's citation data sets (Table 1): two layers,
        16 hidden units, dropout 0.5, L2 5e-4, Adam at 0.01; on Cora 23,040 parameters.

        A graph model's one example is its graph: training and inference run on all of it at once
        (full-batch, Section 3.1). So ``example_input_array`` is a graph of the data set's size, its
        nodes (zero features) and as many distinct undirected edges as Table 1 gives
        (:func:`placeholder_edges`; which nodes they join changes no count).
        """
        if dataset not in PAPER_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(PAPER_DATASETS)}, got {dataset!r}")
        model = cls(**{**PAPER_DATASETS[dataset], "hidden_size": 16, "num_layers": 2, **overrides})
        nodes, edges = PAPER_GRAPH_SIZES[dataset]
        model.example_input_array = (torch.zeros(nodes, model.input_size[0]), placeholder_edges(nodes, edges))
        return model

    def forward_flops(self) -> int:
        """FLOPs of one forward on ``example_input_array``, the whole graph: per layer ``2 N C F`` for
        the dense ``H W`` and ``2 nnz(Â) F`` for ``Â (H W)``, one multiply-add per nonzero of Â and
        output column (``2 N N F`` with ``sparse_adjacency=False``, which multiplies every entry).

        Written out, not counted by :class:`~torch.utils.flop_counter.FlopCounterMode`: the counter
        sees the dense products but not ``torch.sparse.mm`` (the propagation would look free), and Â
        cannot be built on the meta device, where the values of ``edge_index`` that fix its nonzeros
        do not exist. ``nnz(Â) = N + E``, the self-loops and the E entries of ``edge_index``: exact
        for a graph without repeated edges or self-loops of its own, as Cora's and
        :func:`placeholder_edges`'s; ``propagation="none"`` multiplies by ``I_N``, N entries.
        """
        example = getattr(self, "example_input_array", None)
        if example is None:
            raise ValueError(f"{type(self).__name__} has no example_input_array to count a forward pass on")
        features, edge_index = example
        nodes = features.shape[0]
        if not self.sparse_adjacency:
            entries = nodes * nodes
        else:
            entries = nodes if self.propagation == "none" else nodes + edge_index.shape[1]
        return sum(2 * nodes * layer.in_features * layer.out_features + 2 * entries * layer.out_features for layer in self.layers)

    # ------------------------------------------------------------------ the network
    def adjacency(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """The propagation matrix: ``Â`` (:func:`normalized_adjacency`), or ``I`` for ``"none"``."""
        if self.propagation == "none":
            matrix = identity_adjacency(num_nodes, edge_index.device)
        else:
            matrix = normalized_adjacency(edge_index, num_nodes)
        return matrix if self.sparse_adjacency else matrix.to_dense()

    def layer_outputs(self, features: Tensor, edge_index: Tensor) -> list[Tensor]:
        """``H^(1), ..., H^(L)``: every layer's output, the last one the class scores (before the softmax)."""
        adjacency = self.adjacency(edge_index, features.shape[0])
        hidden, outputs = features, []
        for index, layer in enumerate(self.layers):
            hidden = F.dropout(hidden, self.dropout, self.training)  # dropout on each layer's input
            hidden = layer(hidden, adjacency)  # Â H^(l) W^(l)
            if index < len(self.layers) - 1:
                hidden = F.relu(hidden)  # sigma = ReLU between layers; the softmax is in the loss
            outputs.append(hidden)
        return outputs

    def forward(self, features: Tensor, edge_index: Tensor) -> Tensor:
        """Class scores ``(N, F)`` of every node (eq. 9 before its softmax)."""
        return self.layer_outputs(features, edge_index)[-1]

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self.attached_trainer() is not None else None
        features = getattr(datamodule, "num_features", None)
        classes = getattr(datamodule, "num_classes", None)
        if features is not None and features != self.input_size[0]:
            raise ValueError(
                f"in_features is {self.input_size[0]} but the graph's nodes have {features} features: set --model.in_features={features}"
            )
        if classes is not None and classes != self.num_classes:
            raise ValueError(f"num_classes is {self.num_classes} but the graph has {classes} classes: set --model.num_classes={classes}")

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        scores = self(batch["features"], batch["edge_index"])
        mask = batch[f"{stage}_mask"]
        labelled_scores, labels = scores[mask].float(), batch["labels"][mask]
        loss = F.cross_entropy(labelled_scores, labels)  # eq. 10 over Y_L, averaged
        self.log_classification(stage, loss.detach(), labelled_scores.detach(), labels)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """The predicted class of every node."""
        return self.predict_labels(self(batch["features"], batch["edge_index"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Section 5.2: L2 on the first layer only. Adam's weight_decay adds lambda W to the gradient,
        # the gradient of the paper's lambda/2 ||W||^2 term (not AdamW's decoupled decay).
        first, rest = self.layers[0], self.layers[1:]
        groups = [
            {"params": [first.weight], "weight_decay": self.weight_decay},
            {"params": [p for p in [first.bias, *rest.parameters()] if p is not None], "weight_decay": 0.0},
        ]
        return torch.optim.Adam([g for g in groups if g["params"]], lr=self.learning_rate)

    # ------------------------------------------------------------------ figures
    def figures(self, every_n_epochs: int | None = None) -> list[Callback]:
        """The learning curves, the gradient flow (it shows deep stacks losing their gradient), the
        nodes' hidden representations over epochs and the over-smoothing curve
        (:mod:`ai_scratch.modern_paradigm.gcn_figures`)."""
        from ai_scratch.modern_paradigm.gcn_figures import HiddenRepresentations, OverSmoothingCurve
        from callbacks.figures import GradientFlow, LearningCurves

        return [
            LearningCurves(every_n_epochs=every_n_epochs),
            GradientFlow(every_n_steps=1, every_n_epochs=every_n_epochs),
            HiddenRepresentations(every_n_epochs=every_n_epochs),
            OverSmoothingCurve(),
        ]
