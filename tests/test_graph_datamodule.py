"""GraphDataModule: the karate club and the stochastic block model (graphs, labels, seeded splits),
the whole graph as one batch that Lightning moves to the device, the Planetoid loader on a tiny set
of files in the Planetoid format written here, and bad input in one line."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from datamodules.graphs import GRAPH_KEYS, PLANETOID_PARTS, GraphDataModule, load_planetoid


def set_up(**options: Any) -> GraphDataModule:
    datamodule = GraphDataModule(**options)
    datamodule.setup()
    return datamodule


def assert_masks_partition_the_labelled_nodes(graph: dict[str, torch.Tensor], num_nodes: int) -> None:
    masks = torch.stack([graph["train_mask"], graph["val_mask"], graph["test_mask"]])
    assert masks.dtype == torch.bool and masks.shape == (3, num_nodes)
    assert int(masks.sum(0).max()) == 1  # disjoint


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in edge_index.T}


# ---------------------------------------------------------------------- karate and SBM
def test_the_karate_club_is_zacharys_graph_split_by_faction() -> None:
    datamodule = set_up(source="karate", train_nodes=[0, 33], val_size=8)
    graph = datamodule.graph
    assert set(graph) == set(GRAPH_KEYS)
    edges = edge_set(graph["edge_index"])
    assert len(edges) == 156 and all((j, i) in edges for i, j in edges) and all(i != j for i, j in edges)  # 78 friendships
    torch.testing.assert_close(graph["features"], torch.eye(34))  # featureless: X = I
    labels = graph["labels"]
    assert datamodule.class_names == ["Mr. Hi", "Officer"] and labels.bincount().tolist() == [17, 17]
    assert int(labels[0]) == 0 and int(labels[33]) == 1  # the two leaders
    assert_masks_partition_the_labelled_nodes(graph, 34)
    assert datamodule.split_indices["train"].tolist() == [0, 33]
    assert graph["val_mask"].sum() == 8 and graph["test_mask"].sum() == 24 and graph["train_mask"].sum() + 32 == 34
    assert labels[graph["val_mask"]].bincount().tolist() == [4, 4]  # stratified
    assert (datamodule.num_nodes, datamodule.num_features, datamodule.num_classes) == (34, 34, 2)


def test_seeded_labels_one_per_class_and_the_same_split_for_the_same_seed() -> None:
    first, again, other = (set_up(source="karate", labels_per_class=1, seed=seed) for seed in (0, 0, 5))
    train = first.split_indices["train"]
    assert len(train) == 2 and sorted(first.graph["labels"][train].tolist()) == [0, 1]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.split_indices[split], again.split_indices[split])
    assert any(not np.array_equal(first.split_indices[s], other.split_indices[s]) for s in ("train", "val"))
    assert first.graph["val_mask"].sum() == 8  # a quarter of the 32 unlabelled nodes by default


def test_the_stochastic_block_model_is_seeded_and_denser_inside_blocks() -> None:
    datamodule = set_up(source="sbm", block_sizes=[30, 30, 30], p_in=0.3, p_out=0.02, labels_per_class=2, seed=3)
    graph = datamodule.graph
    labels, (rows, cols) = graph["labels"], graph["edge_index"]
    assert labels.bincount().tolist() == [30, 30, 30] and datamodule.class_names == ["block 0", "block 1", "block 2"]
    inside = float((labels[rows] == labels[cols]).float().mean())
    assert inside > 0.75  # expected 3 * 30 * 29 * 0.3 / (that + 6 * 30 * 30 * 0.02): about 0.89
    torch.testing.assert_close(graph["edge_index"], set_up(source="sbm", block_sizes=[30, 30, 30], p_in=0.3, p_out=0.02,
                                                            labels_per_class=2, seed=3).graph["edge_index"])  # fmt: skip
    assert not torch.equal(graph["edge_index"], set_up(source="sbm", block_sizes=[30, 30, 30], p_in=0.3, p_out=0.02, seed=4).graph["edge_index"])
    assert_masks_partition_the_labelled_nodes(graph, 90)
    assert graph["train_mask"].sum() == 6 and labels[graph["train_mask"]].bincount().tolist() == [2, 2, 2]
    gaussian = set_up(source="sbm", features="gaussian", feature_size=8, feature_noise=0.0)
    features, labels = gaussian.graph["features"], gaussian.graph["labels"]
    assert features.shape == (120, 8) and gaussian.num_features == 8
    # without noise every node of a block has its block's mean, and the blocks' means differ
    assert len(torch.unique(features, dim=0)) == 3 and all(len(torch.unique(features[labels == k], dim=0)) == 1 for k in range(3))


def test_the_whole_graph_is_one_batch_that_lightning_moves_to_the_device() -> None:
    datamodule = set_up(source="karate")
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.test_dataloader()):
        batches = list(loader)
        assert len(batches) == 1 and set(batches[0]) == set(GRAPH_KEYS)
        assert batches[0]["features"].shape == (34, 34)  # no batch dimension added
    moved = datamodule.transfer_batch_to_device(batches[0], torch.device("meta"), 0)
    assert all(tensor.device.type == "meta" for tensor in moved.values())


# ---------------------------------------------------------------------- Planetoid, on a tiny set written here
def write_planetoid(directory: Path, name: str, classes: int, features: int, extra: int = 5, tests: int = 12,
                    isolated: int | None = None, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Planetoid's eight files for a small graph: 20 labelled nodes per class, 500 validation nodes and
    ``extra`` more in ``allx``, then ``tests`` test nodes listed in a shuffled ``test.index``; with
    ``isolated``, that test index has no row in ``tx`` (CiteSeer's isolated nodes). Returns the truth."""
    rng = np.random.default_rng(seed)
    train, known = 20 * classes, 20 * classes + 500 + extra
    test_nodes = np.arange(known, known + tests)
    listed = test_nodes if isolated is None else np.delete(test_nodes, isolated)
    num_nodes = known + tests
    x_all = sp.random(num_nodes, features, density=0.01, format="csr", random_state=seed, dtype=np.float32)
    x_all = (x_all + sp.csr_matrix((np.ones(num_nodes), (np.arange(num_nodes), rng.integers(0, features, num_nodes))),
                                   shape=(num_nodes, features))).tocsr()  # fmt: skip  (no empty row)
    labels = np.concatenate([np.repeat(np.arange(classes), 20), rng.integers(0, classes, num_nodes - train)])
    one_hot = np.eye(classes)[labels]
    order = rng.permutation(listed)  # test.index lists the test nodes in the order of tx's rows
    objects = {
        "x": x_all[:train], "y": one_hot[:train], "allx": x_all[:known], "ally": one_hot[:known],
        "tx": x_all[order], "ty": one_hot[order],
        "graph": {i: [int((i + 1) % num_nodes), int((i + 7) % num_nodes)] for i in range(num_nodes)},
    }  # fmt: skip
    for part in PLANETOID_PARTS[:-1]:
        with open(directory / f"ind.{name}.{part}", "wb") as file:
            pickle.dump(objects[part], file)
    (directory / f"ind.{name}.test.index").write_text("\n".join(str(i) for i in order) + "\n")
    return {"features": x_all.toarray(), "labels": labels, "test": np.sort(listed), "num_nodes": num_nodes}


def test_the_planetoid_loader_reads_the_standard_split(tmp_path: Path) -> None:
    truth = write_planetoid(tmp_path, "cora", classes=7, features=1433)
    datamodule = set_up(source="cora", data_dir=str(tmp_path))
    graph = datamodule.graph
    assert datamodule.num_nodes == truth["num_nodes"] and datamodule.num_features == 1433 and datamodule.num_classes == 7
    np.testing.assert_array_equal(graph["labels"].numpy(), truth["labels"])  # test rows put back in node order
    expected = truth["features"] / truth["features"].sum(1, keepdims=True)  # row-normalised
    np.testing.assert_allclose(graph["features"].numpy(), expected, rtol=1e-5)
    assert_masks_partition_the_labelled_nodes(graph, truth["num_nodes"])
    assert datamodule.split_indices["train"].tolist() == list(range(140))  # 20 per class
    assert datamodule.split_indices["val"].tolist() == list(range(140, 640))  # the next 500
    np.testing.assert_array_equal(datamodule.split_indices["test"], truth["test"])
    assert graph["labels"][graph["train_mask"]].bincount().tolist() == [20] * 7
    edges = edge_set(graph["edge_index"])
    assert all((j, i) in edges for i, j in edges) and (0, 1) in edges and (1, 0) in edges and (0, 7) in edges


def test_citeseers_isolated_test_nodes_get_zero_features_and_no_split(tmp_path: Path) -> None:
    truth = write_planetoid(tmp_path, "citeseer", classes=6, features=3703, isolated=4)
    data = load_planetoid("citeseer", tmp_path)
    missing = truth["num_nodes"] - 12 + 4
    assert data["features"].shape == (truth["num_nodes"], 3703) and not data["features"][missing].any()
    assert data["labels"][missing] == -1 and missing not in data["test"] and len(data["test"]) == 11
    listed = data["test"]
    np.testing.assert_array_equal(data["labels"][listed], truth["labels"][listed])
    np.testing.assert_allclose(data["features"][listed], truth["features"][listed])
    datamodule = set_up(source="citeseer", data_dir=str(tmp_path))
    assert not bool(datamodule.graph["test_mask"][missing])


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"source": "reddit"}, r"source must be one of \['karate', 'sbm', 'cora', 'citeseer', 'pubmed'\], got 'reddit'"),
        ({"labels_per_class": 17}, r"labels_per_class=17 leaves no unlabelled node in the smallest class of 'karate' \(17 nodes\): use at most 16"),
        ({"labels_per_class": 0}, "labels_per_class must be a positive integer or None, got 0"),
        ({"labels_per_class": 10, "val_size": 14}, "20 labelled and val_size=14 validation nodes leave no test node among the 34 nodes of 'karate'"),
        ({"train_nodes": [0, 34]}, r"train_nodes must be distinct node indices in \[0, 34\), got \[0, 34\]"),
        ({"source": "sbm", "block_sizes": [10]}, r"block_sizes must list at least two blocks of at least 2 nodes, got \[10\]"),
        ({"source": "sbm", "p_in": 1.5}, "p_in and p_out must be probabilities, got p_in=1.5, p_out=0.02"),
        ({"source": "cora", "labels_per_class": 5, "download": True}, r"labels_per_class must be 20 \(or None\) for 'cora': its standard split, got 5"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_input_is_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        GraphDataModule(**options)
    assert len(str(error.value).splitlines()) == 1


def test_missing_planetoid_files_without_download_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"pubmed not found: .*ind\.pubmed\.x is missing and download is false: pass --data.download true") as error:
        GraphDataModule("pubmed", data_dir=str(tmp_path))
    assert len(str(error.value).splitlines()) == 1
