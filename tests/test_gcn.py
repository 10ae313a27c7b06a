"""The GCN (Kipf and Welling, 2017): the renormalised adjacency against a dense hand computation, the
sparse and dense products, eq. 9 written out, permutation equivariance, the paper-sized parameter
count, fits of the configs through the CLI (metrics, figures, mixed precision, bad input), and
(slow) the claims on other seeds and a fit under DDP on two processes."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ai_scratch.cli import main
from ai_scratch.modern_paradigm.gcn import GCN, GraphConvolution, identity_adjacency, normalized_adjacency
from ai_scratch.modern_paradigm.gcn_figures import depth_sweep, mean_cosine_similarity, oversmoothing_figure
from conftest import config, fit_on_two_processes
from datamodules.graphs import GraphDataModule

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
CLAIMS = ["gcn/karate_strength", "gcn/karate_mlp_weakness", "gcn/karate_oversmoothing_weakness"]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def a_graph(num_nodes: int = 7, seed: int = 0) -> torch.Tensor:
    """A random undirected graph (both directions of every edge, no self-loops) with an isolated node."""
    generator = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.rand(num_nodes, num_nodes, generator=generator) < 0.4, diagonal=1)
    upper[-1] = upper[:, -1] = False  # the last node has no neighbour: its degree is its self-loop
    rows, cols = torch.nonzero(upper | upper.T, as_tuple=True)
    return torch.stack([rows, cols])


def dense_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    adjacency = torch.zeros(num_nodes, num_nodes)
    adjacency[edge_index[0], edge_index[1]] = 1.0
    return adjacency


# ---------------------------------------------------------------------- the propagation rule
def test_the_normalized_adjacency_is_the_dense_hand_computation() -> None:
    edge_index = a_graph()
    a_tilde = dense_adjacency(edge_index, 7) + torch.eye(7)  # A~ = A + I_N
    d_tilde = a_tilde.sum(1)  # D~_ii = sum_j A~_ij
    expected = torch.diag(d_tilde.rsqrt()) @ a_tilde @ torch.diag(d_tilde.rsqrt())
    adjacency = normalized_adjacency(edge_index, 7)
    assert adjacency.is_sparse and adjacency.dtype == torch.float32
    assert adjacency._nnz() == edge_index.shape[1] + 7  # N + 2|E| entries
    torch.testing.assert_close(adjacency.to_dense(), expected)
    assert float(adjacency.to_dense()[6, 6]) == 1.0  # an isolated node keeps its own features
    # the renormalisation trick: eigenvalues in (-1, 1], the largest exactly 1 (eigenvector D~^1/2 1)
    eigenvalues = torch.linalg.eigvalsh(expected)
    assert float(eigenvalues.max()) == pytest.approx(1.0, abs=1e-5) and float(eigenvalues.min()) > -1.0
    weighted = normalized_adjacency(edge_index, 7, edge_weight=torch.full((edge_index.shape[1],), 2.0))
    a_weighted = 2 * dense_adjacency(edge_index, 7) + torch.eye(7)
    d_weighted = a_weighted.sum(1).rsqrt()
    torch.testing.assert_close(weighted.to_dense(), d_weighted[:, None] * a_weighted * d_weighted[None, :])


def test_bad_edges_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"edge_index must have shape \(2, E\), got \(3, 2\)"):
        normalized_adjacency(torch.zeros(3, 2, dtype=torch.long), 4)
    with pytest.raises(ValueError, match=r"edge_index names nodes outside \[0, 4\): min 0, max 4"):
        normalized_adjacency(torch.tensor([[0, 4], [4, 0]]), 4)


def test_the_sparse_and_the_dense_products_agree_with_their_gradients() -> None:
    torch.manual_seed(0)
    layer = GraphConvolution(5, 3, bias=True)
    adjacency = normalized_adjacency(a_graph(), 7)
    hidden = torch.randn(7, 5)
    sparse = layer(hidden, adjacency)
    (sparse_grad,) = torch.autograd.grad(sparse.square().sum(), layer.weight)
    dense = layer(hidden, adjacency.to_dense())
    (dense_grad,) = torch.autograd.grad(dense.square().sum(), layer.weight)
    torch.testing.assert_close(sparse, dense)
    torch.testing.assert_close(sparse_grad, dense_grad)
    torch.testing.assert_close(sparse, adjacency.to_dense() @ hidden @ layer.weight.detach() + layer.bias.detach())
    model = GCN(in_features=5, num_classes=3).eval()
    dense_model = GCN(in_features=5, num_classes=3, sparse_adjacency=False).eval()
    dense_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(hidden, a_graph()), dense_model(hidden, a_graph()))


def test_the_two_layer_model_is_eq_9() -> None:
    torch.manual_seed(0)
    model = GCN(in_features=5, num_classes=3, hidden_size=4).eval()  # eval: no dropout
    features, edge_index = torch.randn(7, 5), a_graph()
    a_hat = normalized_adjacency(edge_index, 7).to_dense()
    w0, w1 = model.layers[0].weight.detach(), model.layers[1].weight.detach()
    expected = a_hat @ torch.relu(a_hat @ features @ w0) @ w1  # Z = softmax(Â ReLU(Â X W0) W1), before its softmax
    torch.testing.assert_close(model(features, edge_index), expected)
    assert model.layers[0].bias is None  # eq. 2 and 9 have no bias


def test_without_propagation_the_same_network_is_an_mlp_that_ignores_the_edges() -> None:
    torch.manual_seed(0)
    model = GCN(in_features=5, num_classes=3, hidden_size=4, propagation="none").eval()
    features = torch.randn(7, 5)
    w0, w1 = model.layers[0].weight.detach(), model.layers[1].weight.detach()
    torch.testing.assert_close(model(features, a_graph(seed=0)), torch.relu(features @ w0) @ w1)
    torch.testing.assert_close(model(features, a_graph(seed=0)), model(features, a_graph(seed=3)))
    torch.testing.assert_close(identity_adjacency(4).to_dense(), torch.eye(4))


def test_relabelling_the_nodes_permutes_the_outputs() -> None:
    torch.manual_seed(0)
    model = GCN(in_features=5, num_classes=3, num_layers=3).eval()
    features, edge_index = torch.randn(7, 5), a_graph()
    permutation = torch.randperm(7)  # new node k is old node permutation[k]
    new_index = torch.empty_like(permutation)
    new_index[permutation] = torch.arange(7)
    permuted = model(features[permutation], new_index[edge_index])
    torch.testing.assert_close(permuted, model(features, edge_index)[permutation])


def test_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    model = GCN(in_features=5, num_classes=3)
    features, edge_index = torch.randn(7, 5), a_graph()
    model.train()
    assert not torch.allclose(model(features, edge_index), model(features, edge_index))
    model.eval()
    torch.testing.assert_close(model(features, edge_index), model(features, edge_index))


# ---------------------------------------------------------------------- sizes, optimiser, arguments
@pytest.mark.parametrize(("dataset", "features", "classes"), [("cora", 1433, 7), ("citeseer", 3703, 6), ("pubmed", 500, 3)])
def test_the_paper_sized_models_have_c_h_plus_h_f_parameters(dataset: str, features: int, classes: int) -> None:
    model = GCN.paper_sized(dataset)
    assert count(model) == features * 16 + 16 * classes  # W^(0): C x H, W^(1): H x F, no biases
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(features, 16), (16, classes)]
    assert model.dropout == 0.5 and model.weight_decay == 5e-4 and model.learning_rate == 0.01


def test_the_paper_sized_cora_model_has_23_040_parameters_and_its_info() -> None:
    assert count(GCN.paper_sized("cora")) == 1433 * 16 + 16 * 7 == 23_040
    assert count(GCN.paper_sized("cora", bias=True)) == 23_040 + 16 + 7
    info = GCN.INFO
    assert info.name == "gcn" and info.module == 6 and info.category == "modern" and info.module_name == "modern-paradigm"
    assert info.year_introduced == 2017 and info.key_learning_objectives and info.key_innovations
    with pytest.raises(ValueError, match=r"dataset must be one of \['citeseer', 'cora', 'pubmed'\], got 'reddit'"):
        GCN.paper_sized("reddit")


def test_the_paper_sized_example_is_the_whole_cora_sized_graph_and_its_flops_the_closed_form() -> None:
    nodes, edges, features, hidden, classes = 2708, 5429, 1433, 16, 7  # Table 1
    with torch.device("meta"):
        model = GCN.paper_sized("cora")
    x, edge_index = model.example_input_array
    assert tuple(x.shape) == (nodes, features) and tuple(edge_index.shape) == (2, 2 * edges)  # each edge both ways
    dense = 2 * nodes * (features * hidden + hidden * classes)  # H W in each layer
    sparse = 2 * (nodes + 2 * edges) * (hidden + classes)  # Â (H W): one multiply-add per nonzero of Â and column
    assert model.forward_flops() == dense + sparse == 125_408_676


def test_forward_flops_agree_with_the_counter_where_it_can_see_and_with_the_real_adjacency() -> None:
    """On the CPU the counter runs the real forward: it counts the dense products and misses the sparse
    one, which forward_flops adds for the nonzeros that Â really has."""
    from torch.utils.flop_counter import FlopCounterMode

    model = GCN.paper_sized("cora").eval()
    x, edge_index = model.example_input_array
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, edge_index)
    nonzeros = normalized_adjacency(edge_index, x.shape[0])._nnz()
    assert nonzeros == 2708 + 2 * 5429  # the placeholder graph has no repeated edges and no self-loops
    assert model.forward_flops() == counter.get_total_flops() + 2 * nonzeros * (16 + 7)
    mlp = GCN.paper_sized("cora", propagation="none")
    assert mlp.forward_flops() == counter.get_total_flops() + 2 * 2708 * (16 + 7)  # I_N: one entry per node


def test_the_l2_penalty_is_on_the_first_layer_only() -> None:
    model = GCN(in_features=5, num_classes=3, num_layers=3, weight_decay=5e-4, bias=True)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.01
    decayed, free = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and [id(p) for p in decayed["params"]] == [id(model.layers[0].weight)]
    assert free["weight_decay"] == 0.0
    assert {id(p) for p in free["params"]} == {id(p) for p in model.parameters()} - {id(model.layers[0].weight)}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_layers": 0}, "num_layers must be a positive integer, got 0"),
        ({"hidden_size": -1}, "hidden_size must be a positive integer, got -1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0, got -0.0001"),
        ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        ({"propagation": "chebyshev"}, r"propagation must be one of \('renormalized', 'none'\), got 'chebyshev'"),
        ({"num_classes": 1}, "num_classes must be at least 2, got 1"),
    ],
)
def test_bad_arguments_are_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        GCN(**options)
    assert len(str(error.value).splitlines()) == 1


# ---------------------------------------------------------------------- real fits through the CLI
def test_the_strength_config_fits_and_logs_the_standard_metrics(workdir: Path) -> None:
    cli = main(["fit", "--config", config("gcn/karate_strength"), *QUIET, "--figures=false", "--trainer.max_epochs=3"])
    metrics = cli.trainer.callback_metrics  # after fit, the test's
    assert {"test_accuracy", "test_loss"} <= set(metrics)
    assert cli.claim_result is not None and cli.claim_result.observed == pytest.approx(float(metrics["test_accuracy"]))
    assert cli.trainer.num_training_batches == 1 and cli.trainer.global_step == 3  # full batch: one step an epoch
    graph = cli.datamodule.graph
    with torch.no_grad():  # the logged accuracy is the model's on the 24 test nodes (the best checkpoint's weights)
        predicted = cli.model.eval()(graph["features"], graph["edge_index"]).argmax(1)
    test = graph["test_mask"]
    assert float(metrics["test_accuracy"]) == pytest.approx(float((predicted[test] == graph["labels"][test]).float().mean()))
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    assert len([row for row in rows if row["val_loss"]]) == 3 and len([row for row in rows if row["train_loss"]]) == 3  # one a epoch


def test_bf16_mixed_precision_fits(workdir: Path) -> None:
    """The sparse product runs in float32 with autocast off (16-mixed on a CPU is Lightning's bf16-mixed)."""
    cli = main(["fit", "--config", config("gcn/karate_strength"), *QUIET, "--figures=false", "--trainer.max_epochs=2",
                "--trainer.precision=bf16-mixed"])  # fmt: skip
    assert cli.trainer.precision == "bf16-mixed"
    assert all(torch.isfinite(value).all() for value in cli.trainer.callback_metrics.values())


def test_the_figures_are_written(workdir: Path) -> None:
    cli = main(["fit", "--config", config("gcn/karate_strength"), *QUIET, "--trainer.max_epochs=2", "--experiment.claim=null"])
    figures = {path.name for path in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"hidden_representations.png", "oversmoothing.png", "learning_curves.png", "gradient_flow.png"} <= figures, figures


def test_deep_stacks_make_the_nodes_alike_before_any_training() -> None:
    datamodule = GraphDataModule("karate", train_nodes=[0, 33], val_size=8)
    datamodule.setup()
    rows = depth_sweep(GCN, {"in_features": 34, "num_classes": 2}, datamodule.graph, depths=(1, 2, 32), epochs=1)
    one, two, deep = rows["similarity_untrained"]
    assert deep > 0.95 and deep > two > one  # Â^L tends to one direction as L grows
    assert 0.0 <= rows["mlp_test_accuracy"] <= 1.0 and len(rows["test_accuracy"]) == 3
    assert mean_cosine_similarity(torch.ones(5, 3)) == pytest.approx(1.0)
    figure = oversmoothing_figure(rows, current_depth=2, epochs=1)
    assert "Over-smoothing" in figure.get_suptitle()


def test_a_model_of_the_wrong_width_is_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"in_features is 10 but the graph's nodes have 34 features: set --model.in_features=34"):
        main(["fit", "--config", config("gcn/karate_strength"), *QUIET, "--figures=false", "--trainer.max_epochs=1", "--model.in_features=10"])


def test_the_cora_config_parses_and_without_its_files_fails_in_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("gcn/paper/cora"), "--print_config"])
    assert exit_info.value.code == 0
    assert "source: cora" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("gcn/paper/cora"), *QUIET, "--data.download=false", f"--data.data_dir={workdir / 'nothing'}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "cora not found" in error and "--data.download true" in error and len(error.splitlines()) == 1


# ---------------------------------------------------------------------- the claims (slow)
@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", CLAIMS)
def test_the_claims_hold_on_other_seeds(workdir: Path, name: str, seed: int) -> None:
    """The configs run seed 0 in ``ai-scratch reproduce``; here the same claims on seeds 1 and 2."""
    cli = main(["fit", "--config", config(name), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()


@pytest.mark.slow
def test_the_gcn_fits_on_two_processes_with_the_same_weights(tmp_path: Path) -> None:
    """Under DDP every process gets the whole graph: the averaged gradients are each process's own,
    and the copies stay equal."""
    rank0, rank1, stdout = fit_on_two_processes("gcn/karate_strength", tmp_path, "--trainer.max_epochs", "20", "--figures", "false")
    assert rank0.keys() == rank1.keys() and any(key.startswith("layers.") for key in rank0)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)
    assert "[claim] karate_strength" in stdout


def test_cross_entropy_over_the_labelled_nodes_only() -> None:
    """eq. 10: the training loss reads the labels of the training mask and no other."""
    torch.manual_seed(0)
    model = GCN(in_features=5, num_classes=3, dropout=0.0)
    features, edge_index = torch.randn(7, 5), a_graph()
    labels, mask = torch.tensor([0, 1, 2, 0, 1, 2, 0]), torch.tensor([True, False, True, False, False, False, False])
    batch = {"features": features, "edge_index": edge_index, "labels": labels, "train_mask": mask}
    loss = model.training_step(batch, 0)
    torch.testing.assert_close(loss, F.cross_entropy(model(features, edge_index)[mask], labels[mask]))
    changed = {**batch, "labels": torch.where(mask, labels, (labels + 1) % 3)}  # other nodes' labels changed
    torch.testing.assert_close(model.training_step(changed, 0), loss)


def test_the_gradient_reaches_the_neighbours_of_labelled_nodes_only_through_the_graph() -> None:
    """With X = I, row i of W^(0) belongs to node i. The GCN's loss on nodes 0 and 33 sends gradient
    to the rows of their neighbourhoods (two hops for two layers); without propagation only to
    their own rows, which is why the MLP knows nothing of the other members."""
    datamodule = GraphDataModule("karate", train_nodes=[0, 33], val_size=8)
    datamodule.setup()
    graph = datamodule.graph
    reached = {}
    for propagation in ("renormalized", "none"):
        torch.manual_seed(0)
        model = GCN(propagation=propagation, dropout=0.0)
        model.training_step(graph, 0).backward()
        reached[propagation] = set(torch.nonzero(model.layers[0].weight.grad.abs().sum(1)).flatten().tolist())
    assert reached["none"] == {0, 33}
    rows, cols = graph["edge_index"]
    one_hop = {0, 33} | set(cols[(rows == 0) | (rows == 33)].tolist())
    two_hops = one_hop | set(cols[torch.isin(rows, torch.tensor(sorted(one_hop)))].tolist())
    assert one_hop < reached["renormalized"] <= two_hops
