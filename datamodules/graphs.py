"""One graph with node labels and train / val / test node masks, for semi-supervised node classification.

A graph data set here is a single graph: node features ``X`` (``N x C``), the edges as an
``edge_index`` (``2 x E``, each undirected edge listed in both directions), one label per node, and
three disjoint boolean masks that say which nodes' labels the loss, the validation and the test may
read (Kipf and Welling, 2017, Section 5.1). Every loader yields that whole graph as its one batch, a
dict of tensors (:data:`GRAPH_KEYS`), which Lightning moves to the device like any batch; under DDP
every process gets the same graph.

Sources (``source``):

* ``"karate"`` (default, offline): Zachary's karate club (networkx's ``karate_club_graph``): 34
  members, 78 friendships (binary: the interaction counts are not used), labelled by the faction
  each member joined when the club split (``'club'``: Mr. Hi's, 17 members, or the Officer's, 17).
  No features: ``X = I_34``, the featureless setting of the paper's karate experiment (Appendix A).
* ``"sbm"`` (offline): a seeded stochastic block model (``networkx.stochastic_block_model``):
  ``block_sizes`` communities, an edge inside a block with probability ``p_in``, between blocks
  with ``p_out``; the block is the label. Features ``"identity"`` (none) or ``"gaussian"``: a
  random mean per block plus noise of standard deviation ``feature_noise``, ``feature_size`` wide.
* ``"cora"``, ``"citeseer"``, ``"pubmed"``: the Planetoid citation networks (Yang, Cohen and
  Salakhutdinov, 2016) in the ``ind.{name}.{x,y,tx,ty,allx,ally,graph,test.index}`` files of
  https://github.com/kimiyoung/planetoid, downloaded into ``data_dir`` when ``download=True``, read
  as Kipf's ``load_data`` reads them, with the standard split: 20 labelled nodes per class, 500
  validation and 1,000 test nodes. Bag-of-words features, row-normalised (``normalize_features``) as in the paper's code.

Splits for karate and SBM, all seeded by ``seed``: ``labels_per_class`` training nodes per class (or
the nodes named in ``train_nodes``: ``[0, 33]`` are Mr. Hi and the Officer, the two leaders), then
``val_size`` validation nodes drawn from the rest, stratified by class, and every remaining node
for the test.

Example::

    >>> dm = GraphDataModule("karate", labels_per_class=1)
    >>> dm.setup()
    >>> graph = next(iter(dm.train_dataloader()))
    >>> graph["features"].shape, graph["edge_index"].shape, int(graph["train_mask"].sum())
    (torch.Size([34, 34]), torch.Size([2, 156]), 2)

Note: the Planetoid files are Python pickles (scipy sparse matrices, NumPy arrays, a dict of
lists), as the paper's code reads them: load only files from the source you trust.
"""

from __future__ import annotations

import pickle
import urllib.request
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

GraphSource = Literal["karate", "sbm", "cora", "citeseer", "pubmed"]
SbmFeatures = Literal["identity", "gaussian"]

SOURCES = ("karate", "sbm", "cora", "citeseer", "pubmed")
PLANETOID = ("cora", "citeseer", "pubmed")
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
#: The standard Planetoid split (Yang et al., 2016; Kipf and Welling, Section 5.1).
PLANETOID_LABELS_PER_CLASS, PLANETOID_VAL_SIZE, PLANETOID_TEST_SIZE = 20, 500, 1000

#: What every batch holds: the whole graph.
GRAPH_KEYS = ("features", "edge_index", "labels", "train_mask", "val_mask", "test_mask")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def planetoid_files(name: str, data_dir: str | Path) -> list[Path]:
    """The eight files of a Planetoid data set under ``data_dir``."""
    return [Path(data_dir) / f"ind.{name}.{part}" for part in PLANETOID_PARTS]


def download_planetoid(name: str, data_dir: str | Path) -> None:
    """Fetch the missing Planetoid files of ``name`` into ``data_dir`` (plain HTTP with ``urllib``).

    Raises:
        RuntimeError: when a file cannot be fetched (no network, for instance), in one line.
    """
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for path in planetoid_files(name, data_dir):
        if path.is_file():
            continue
        url = f"{PLANETOID_URL}/{path.name}"
        partial = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                out.write(response.read())
        except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"Could not download {url} into {str(data_dir)!r}: {error}") from None
        partial.replace(path)


def load_planetoid(name: str, data_dir: str | Path) -> dict[str, Any]:
    """Read a Planetoid data set as the paper's code does (``gcn/utils.py``, ``load_data``).

    ``x``/``y`` are the labelled training nodes, ``allx``/``ally`` every node that is not a test
    node, ``tx``/``ty`` the test nodes, whose graph indices are listed in ``test.index``. CiteSeer
    has test indices with no node in ``tx`` (isolated nodes): they get zero features and no label.

    Returns:
        ``features`` (N x C float32, not normalised), ``labels`` (N,) int64 (-1 where a node has
        none), ``edge_index`` (2 x E, both directions, no self-loops, no duplicates), and the
        standard split's ``train``, ``val``, ``test`` node indices.
    """
    import scipy.sparse as sp

    objects = {}
    for part, path in zip(PLANETOID_PARTS[:-1], planetoid_files(name, data_dir)[:-1]):
        with open(path, "rb") as file:
            objects[part] = pickle.load(file, encoding="latin1")  # written by Python 2
    test_index = np.array([int(line) for line in planetoid_files(name, data_dir)[-1].read_text().split()], dtype=np.int64)
    test_range = np.sort(test_index)
    tx, ty = sp.csr_matrix(objects["tx"]), np.asarray(objects["ty"])
    if name == "citeseer":  # isolated test nodes: rows of zeros for the indices tx lacks
        full_range = np.arange(test_range.min(), test_range.max() + 1)
        tx_extended = sp.lil_matrix((len(full_range), tx.shape[1]), dtype=np.float32)
        tx_extended[test_range - test_range.min(), :] = tx
        ty_extended = np.zeros((len(full_range), ty.shape[1]))
        ty_extended[test_range - test_range.min(), :] = ty
        tx, ty = tx_extended.tocsr(), ty_extended
    features = sp.vstack([sp.csr_matrix(objects["allx"]), tx]).toarray().astype(np.float32)
    one_hot = np.vstack([np.asarray(objects["ally"]), ty])
    features[test_index, :] = features[test_range, :]  # the test rows are stored in test.index's order
    one_hot[test_index, :] = one_hot[test_range, :]
    labels = np.where(one_hot.sum(1) > 0, one_hot.argmax(1), -1).astype(np.int64)

    graph: dict[int, list[int]] = objects["graph"]
    num_nodes = max(len(labels), max(graph) + 1, max((max(n) for n in graph.values() if n), default=0) + 1)
    if num_nodes > len(labels):  # nodes of the graph without a feature row: zeros, no label
        features = np.vstack([features, np.zeros((num_nodes - len(labels), features.shape[1]), dtype=np.float32)])
        labels = np.concatenate([labels, np.full(num_nodes - len(labels), -1, dtype=np.int64)])
    edges = {(int(i), int(j)) for i, neighbours in graph.items() for j in neighbours if int(i) != int(j)}
    edges |= {(j, i) for i, j in edges}  # undirected
    edge_index = np.array(sorted(edges), dtype=np.int64).T.reshape(2, -1)
    train_count = np.asarray(objects["y"]).shape[0]
    return {
        "features": features,
        "labels": labels,
        "edge_index": edge_index,
        "train": np.arange(train_count),
        "val": np.arange(train_count, train_count + PLANETOID_VAL_SIZE),
        "test": test_range,
    }


def edges_of(graph: Any) -> np.ndarray:
    """``edge_index`` (2 x E, both directions, no self-loops) of a networkx graph with nodes 0..N-1."""
    pairs = [(int(i), int(j)) for i, j in graph.edges() if i != j]
    pairs += [(j, i) for i, j in pairs]
    return np.array(sorted(set(pairs)), dtype=np.int64).T.reshape(2, -1)


class _WholeGraph(Dataset):
    """A data set of one item: the graph."""

    def __init__(self, graph: dict[str, Tensor]) -> None:
        self.graph = graph

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.graph


def _the_graph(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collate a batch of one graph: the graph itself (no batch dimension)."""
    return items[0]


class GraphDataModule(L.LightningDataModule):
    """One graph for semi-supervised node classification; see the module docstring for the sources.

    Args:
        source: ``"karate"``, ``"sbm"``, ``"cora"``, ``"citeseer"`` or ``"pubmed"``.
        labels_per_class: labelled training nodes per class (karate, SBM); ``None``: 1 there, and
            the standard split's 20 for Planetoid (which takes no other value).
        train_nodes: the labelled nodes, by index, instead of a seeded draw (karate, SBM).
        val_size: validation nodes (karate, SBM); ``None``: a quarter of the unlabelled nodes.
            Planetoid: the standard 500.
        block_sizes, p_in, p_out: the SBM's communities and edge probabilities.
        features: the SBM's features, ``"identity"`` or ``"gaussian"``.
        feature_size, feature_noise: width and noise of the SBM's Gaussian features.
        normalize_features: divide each node's features by their sum (Kipf and Welling's
            preprocessing of bag-of-words counts); ``None``: for Planetoid only (the SBM's Gaussian
            features can sum to zero; one-hot features are unchanged by it).
        data_dir: where the Planetoid files are, or are downloaded to.
        download: download missing Planetoid files (in :meth:`prepare_data`).
        num_workers: DataLoader workers (0: the graph is in memory already).
        seed: seed of the SBM and of the splits, >= 0.

    Attributes:
        num_nodes, num_features, num_classes, class_names: known from construction on.
        graph (after :meth:`setup`): the batch, a dict of :data:`GRAPH_KEYS`.
        split_indices (after setup): ``{"train", "val", "test"}`` -> sorted node indices.

    Raises:
        ValueError: one line for a wrong source or option, more labelled and validation nodes than
            the graph has, or Planetoid files missing with ``download=False``.
    """

    def __init__(
        self,
        source: GraphSource = "karate",
        labels_per_class: int | None = None,
        train_nodes: list[int] | None = None,
        val_size: int | None = None,
        block_sizes: list[int] = [40, 40, 40],  # noqa: B006  (jsonargparse needs a plain default)
        p_in: float = 0.15,
        p_out: float = 0.02,
        features: SbmFeatures = "identity",
        feature_size: int = 16,
        feature_noise: float = 1.0,
        normalize_features: bool | None = None,
        data_dir: str = "data",
        download: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check(source in SOURCES, f"source must be one of {list(SOURCES)}, got {source!r}")
        _check(labels_per_class is None or (isinstance(labels_per_class, int) and labels_per_class >= 1),
               f"labels_per_class must be a positive integer or None, got {labels_per_class!r}")  # fmt: skip
        _check(val_size is None or (isinstance(val_size, int) and val_size >= 1), f"val_size must be a positive integer or None, got {val_size!r}")
        _check(isinstance(seed, int) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}")
        _check(num_workers >= 0, f"num_workers must be >= 0, got {num_workers}")
        _check(features in ("identity", "gaussian"), f"features must be 'identity' or 'gaussian', got {features!r}")
        _check(len(block_sizes) >= 2 and all(isinstance(s, int) and s >= 2 for s in block_sizes),
               f"block_sizes must list at least two blocks of at least 2 nodes, got {block_sizes!r}")  # fmt: skip
        _check(0.0 <= p_out <= 1.0 and 0.0 <= p_in <= 1.0, f"p_in and p_out must be probabilities, got p_in={p_in}, p_out={p_out}")
        _check(feature_size >= 1 and feature_noise >= 0, f"feature_size must be >= 1 and feature_noise >= 0, got {feature_size}, {feature_noise}")
        self.source, self.seed, self.num_workers = source, seed, num_workers
        self.block_sizes, self.p_in, self.p_out = list(block_sizes), p_in, p_out
        self.features_kind, self.feature_size, self.feature_noise = features, feature_size, feature_noise
        self.normalize_features = source in PLANETOID if normalize_features is None else normalize_features
        self.data_dir, self.download = data_dir, download
        self.train_nodes = list(train_nodes) if train_nodes is not None else None
        self.graph: dict[str, Tensor] | None = None
        self.split_indices: dict[str, np.ndarray] = {}

        if source in PLANETOID:
            _check(labels_per_class in (None, PLANETOID_LABELS_PER_CLASS),
                   f"labels_per_class must be {PLANETOID_LABELS_PER_CLASS} (or None) for {source!r}: its standard split, got {labels_per_class}")  # fmt: skip
            _check(val_size in (None, PLANETOID_VAL_SIZE), f"val_size must be {PLANETOID_VAL_SIZE} (or None) for {source!r}: its standard split, got {val_size}")
            _check(train_nodes is None, f"train_nodes is for karate and sbm; {source!r} has its standard split")
            missing = [str(p) for p in planetoid_files(source, data_dir) if not p.is_file()]
            _check(download or not missing,
                   f"{source} not found: {missing[0] if missing else ''} is missing and download is false: pass --data.download true "
                   f"(download=True) to fetch it from {PLANETOID_URL} into data_dir={data_dir!r}, or use --data.source karate or sbm offline")  # fmt: skip
            self.labels_per_class, self.val_size = PLANETOID_LABELS_PER_CLASS, PLANETOID_VAL_SIZE
            self.num_classes = {"cora": 7, "citeseer": 6, "pubmed": 3}[source]
            self.num_features = {"cora": 1433, "citeseer": 3703, "pubmed": 500}[source]
            self.num_nodes = {"cora": 2708, "citeseer": 3327, "pubmed": 19717}[source]
            self.class_names = [f"class {k}" for k in range(self.num_classes)]
            return

        class_sizes = [17, 17] if source == "karate" else self.block_sizes
        self.num_nodes, self.num_classes = sum(class_sizes), len(class_sizes)
        self.num_features = self.num_nodes if source == "karate" or features == "identity" else feature_size
        self.class_names = ["Mr. Hi", "Officer"] if source == "karate" else [f"block {k}" for k in range(self.num_classes)]
        self.labels_per_class = labels_per_class or 1
        if self.train_nodes is not None:
            _check(len(self.train_nodes) >= 1 and len(set(self.train_nodes)) == len(self.train_nodes)
                   and all(isinstance(n, int) and 0 <= n < self.num_nodes for n in self.train_nodes),
                   f"train_nodes must be distinct node indices in [0, {self.num_nodes}), got {self.train_nodes}")  # fmt: skip
            labelled = len(self.train_nodes)
        else:
            _check(self.labels_per_class < min(class_sizes),
                   f"labels_per_class={self.labels_per_class} leaves no unlabelled node in the smallest class of {source!r} "
                   f"({min(class_sizes)} nodes): use at most {min(class_sizes) - 1}")  # fmt: skip
            labelled = self.labels_per_class * self.num_classes
        unlabelled = self.num_nodes - labelled
        self.val_size = val_size if val_size is not None else max(1, unlabelled // 4)
        _check(self.val_size < unlabelled,
               f"{labelled} labelled and val_size={self.val_size} validation nodes leave no test node among the {self.num_nodes} nodes of {source!r}")  # fmt: skip

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> None:
        """Download the Planetoid files when asked to (Lightning calls this on one process only)."""
        if self.source in PLANETOID and self.download:
            download_planetoid(self.source, self.data_dir)

    def _karate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import networkx as nx

        graph = nx.karate_club_graph()
        labels = np.array([self.class_names.index(graph.nodes[i]["club"]) for i in range(graph.number_of_nodes())], dtype=np.int64)
        return np.eye(len(labels), dtype=np.float32), labels, edges_of(graph)

    def _sbm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import networkx as nx

        blocks = len(self.block_sizes)
        probabilities = [[self.p_in if a == b else self.p_out for b in range(blocks)] for a in range(blocks)]
        graph = nx.stochastic_block_model(self.block_sizes, probabilities, seed=self.seed)
        labels = np.repeat(np.arange(blocks), self.block_sizes).astype(np.int64)
        if self.features_kind == "identity":
            features = np.eye(len(labels), dtype=np.float32)
        else:
            rng = np.random.default_rng(self.seed)
            means = rng.normal(size=(blocks, self.feature_size))
            features = (means[labels] + self.feature_noise * rng.normal(size=(len(labels), self.feature_size))).astype(np.float32)
        return features, labels, edges_of(graph)

    def _split(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        if self.train_nodes is not None:
            train = np.array(sorted(self.train_nodes), dtype=np.int64)
        else:
            train = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == k), self.labels_per_class, replace=False)
                                            for k in range(self.num_classes)]))  # fmt: skip
        rest = np.setdiff1d(np.arange(len(labels)), train)
        # stratified where it can be: each class keeps its share of the unlabelled nodes in validation
        stratify = labels[rest] if self.val_size >= self.num_classes and np.bincount(labels[rest]).min() >= 2 else None
        _, val = train_test_split(rest, test_size=self.val_size, stratify=stratify, random_state=self.seed)
        val = np.sort(val)
        return {"train": train, "val": val, "test": np.setdiff1d(rest, val)}

    def setup(self, stage: str | None = None) -> None:
        """Build or read the graph and its masks (once)."""
        if self.graph is not None:
            return
        if self.source in PLANETOID:
            data = load_planetoid(self.source, self.data_dir)
            features, labels, edge_index = data["features"], data["labels"], data["edge_index"]
            splits = {split: data[split] for split in ("train", "val", "test")}
        else:
            features, labels, edge_index = self._karate() if self.source == "karate" else self._sbm()
            splits = self._split(labels)
        if self.normalize_features:
            sums = features.sum(1, keepdims=True)
            features = np.divide(features, sums, out=np.zeros_like(features), where=sums != 0)
        _check(features.shape[1] == self.num_features and labels.max() + 1 == self.num_classes,
               f"the {self.source} files hold {features.shape[1]} features and {labels.max() + 1} classes, "
               f"where {self.num_features} and {self.num_classes} were expected")  # fmt: skip
        self.num_nodes = len(labels)
        masks = {}
        for split, nodes in splits.items():
            mask = np.zeros(len(labels), dtype=bool)
            mask[nodes] = True
            masks[f"{split}_mask"] = torch.from_numpy(mask)
        self.split_indices = {split: np.sort(nodes) for split, nodes in splits.items()}
        self.graph = {
            "features": torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
            "edge_index": torch.from_numpy(np.ascontiguousarray(edge_index)),
            "labels": torch.from_numpy(np.maximum(labels, 0)),  # nodes without a label are in no split
            **masks,
        }

    # ------------------------------------------------------------------ loaders
    def _loader(self) -> DataLoader:
        self.setup()
        return DataLoader(_WholeGraph(self.graph), batch_size=1, collate_fn=_the_graph, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        """The whole graph, once per epoch: full-batch training (Section 3.1)."""
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
