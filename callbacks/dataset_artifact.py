"""The data a fit trained on, as a versioned wandb ``dataset`` Artifact that the run uses.

What is read, from any LightningDataModule (nothing here knows a particular one):

* the splits: the datamodule's ``train_dataset``, ``val_dataset``, ``test_dataset`` and
  ``predict_dataset`` (or ``data_train``, ``train_set``, ... as other projects name them), else the
  datasets of its ``*_dataloader()`` methods; without a datamodule, those of the trainer's loaders;
* the content of each split: the tensors, arrays and lists that its dataset keeps as attributes,
  one per sample (``TensorDataset.tensors``, ``inputs``/``targets``, torchvision's ``data``/``targets``,
  ``ImageFolder``'s ``samples``), through ``Subset`` indices; a list of file paths marks data that
  lives on disk;
* the datamodule's ``hparams`` (source, seed, sizes, ...), its ``class_names`` when it has them.

What is logged: one version of the artifact ``dataset-<datamodule>[-<source>]`` with metadata
(``source``, ``seed``, ``hparams``, ``split_sizes``, ``class_balance``, ``fields``, ``digest``) and

* ``splits.npz``, every split's arrays (``train.inputs``, ``train.targets``, ...), when they fit in
  ``max_bytes``; for data on disk these arrays are the file lists (paths relative to the data's
  folder) and the labels, and the files themselves are
* references (``file://`` URIs) to the folders that hold them, not copies; in-memory data too large
  to write is referenced by the folder it was read from (the dataset's ``root``, or the datamodule's
  ``data_dir``) when there is one, and is otherwise described by its metadata alone.

Same data, one version: the ``digest`` is a SHA-256 over every split's arrays in a fixed order (and,
with ``checksum``, the bytes of every file on disk), and ``splits.npz`` is written byte for byte the
same for the same data (no time stamps), so wandb, which versions an artifact by its content, keeps
two runs on the same data as one version; another seed or other split sizes make another.

Example::

    trainer = Trainer(logger=WandbLogger(project="demo"), callbacks=[WandbDatasetArtifact()])
    trainer.fit(model, datamodule=MyDataModule(seed=0))
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.utils.data import Subset

from callbacks.wandb_helpers import run_is_disabled, say_once, wandb_run

SPLITS = ("train", "val", "test", "predict")

#: attribute names under which datamodules keep the dataset of a split, most common first
SPLIT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    split: (f"{split}_dataset", f"data_{split}", f"{split}_set", f"{split}_data")
    + (("valid_dataset", "validation_dataset") if split == "val" else ())
    for split in SPLITS
}

#: attribute names read first, so that these, not their aliases, name a dataset's fields
PREFERRED_NAMES = ("inputs", "data", "samples", "tensors", "targets", "labels")

#: field names taken for class labels, before any other 1-D integer field
LABEL_NAMES = ("targets", "target", "labels", "label", "y")

DATA_FILE = "splits.npz"

# A fixed time stamp for the members of splits.npz: numpy's savez stamps the time of writing.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class SplitContent:
    """What could be read of one split's dataset."""

    size: int | None
    #: field -> one entry per sample (a tensor, an array or a list)
    fields: dict[str, Any] = field(default_factory=dict)
    #: field names whose entries are paths of files on disk
    file_fields: set[str] = field(default_factory=set)
    #: folders that the dataset says it reads from (its ``root``)
    roots: list[str] = field(default_factory=list)


class WandbDatasetArtifact(Callback):
    """Log the data of a fit as a ``dataset`` Artifact, recorded as an input of the run.

    Args:
        name: artifact name; default ``dataset-<datamodule class>[-<source>]``, the class name
            lower-cased without ``DataModule``, and the ``source`` or ``dataset`` hyperparameter.
        max_bytes: the largest ``splits.npz`` written; larger data is referenced or only described.
        checksum: put the content of files on disk into the digest and let wandb checksum the
            referenced files (reads every file once); ``False``: paths and labels only, for data
            sets too large to read at every fit.
        metadata: extra metadata of the artifact.

    Raises:
        ValueError: for a name with other characters than letters, digits, ``-``, ``_`` and ``.``,
            or a negative ``max_bytes``.

    At the start of the fit (global rank zero; without a datamodule, at the start of training, when
    the trainer's loaders exist). Online the artifact is logged with ``run.use_artifact``, so the run
    lists it as its input; wandb cannot record an input offline, so an offline run logs it with
    ``run.log_artifact`` (an output of the run once synced) and says so once. Without wandb or
    without a WandbLogger it warns once and does nothing. What was logged is kept in :attr:`logged`.
    """

    def __init__(
        self,
        name: str | None = None,
        max_bytes: int = 50 * 2**20,
        checksum: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"WandbDatasetArtifact: artifact name may hold letters, digits, '-', '_' and '.', got {name!r}")
        if max_bytes < 0:
            raise ValueError(f"WandbDatasetArtifact: max_bytes must be >= 0, got {max_bytes}")
        self.name = name
        self.max_bytes = max_bytes
        self.checksum = checksum
        self.metadata = dict(metadata or {})
        self.directory: Path | None = None
        #: after the fit started: the artifact's name, metadata, file and references
        self.logged: dict[str, Any] | None = None
        self._done = False

    # trainer.log_dir broadcasts from rank zero (a collective call): resolved here, on every rank
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.directory = Path(trainer.log_dir or trainer.default_root_dir) / "dataset"
        self._done = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.datamodule is not None:
            self._log(trainer, trainer.datamodule)

    # Without a datamodule the data is in the trainer's loaders, which exist from here on.
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._done:
            self._log(trainer, None)

    # ------------------------------------------------------------------ internals
    def _log(self, trainer: L.Trainer, datamodule: Any) -> None:
        self._done = True
        if not trainer.is_global_zero:
            return
        run = wandb_run(trainer, "WandbDatasetArtifact")
        if run is None or run_is_disabled(run):
            return
        datasets = datamodule_splits(datamodule) if datamodule is not None else trainer_splits(trainer)
        if not datasets:
            say_once("WandbDatasetArtifact: no dataset artifact, because the fit has no datasets it can find.")
            return
        import wandb

        contents = {split: read_split(dataset) for split, dataset in datasets.items()}
        arrays, files = _arrays_and_files(contents)
        written, references = self._store(trainer, datamodule, contents, arrays, files)
        hparams = _json_safe(dict(getattr(datamodule, "hparams", None) or {}))
        metadata = {
            **describe(datamodule, hparams, contents, arrays),
            "digest": content_digest(arrays, files if self.checksum else {}),
            "digest_of": "every split's arrays" + (" and files" if files and self.checksum else ""),
            "file": DATA_FILE if written is not None else None,
            "references": {name: f"file://{root}" for name, root in references.items()},
            **self.metadata,
        }
        name = self.name or artifact_name(datamodule, hparams)
        artifact = wandb.Artifact(name, type="dataset", metadata=_json_safe(metadata))
        if written is not None:
            artifact.add_file(str(written), name=DATA_FILE)
        for entry, root in references.items():
            artifact.add_reference(f"file://{root}", name=entry, checksum=self.checksum)
        if _is_offline(run):
            say_once(
                "WandbDatasetArtifact: wandb records a run's input artifacts online only; this offline run logs the "
                "dataset as its output."
            )
            run.log_artifact(artifact)
        else:
            run.use_artifact(artifact)  # a new artifact: logged, then used by this run
        self.logged = {"name": name, "metadata": metadata, "path": written, "references": references}

    def _store(
        self,
        trainer: L.Trainer,
        datamodule: Any,
        contents: dict[str, SplitContent],
        arrays: dict[str, np.ndarray],
        files: dict[str, str],
    ) -> tuple[Path | None, dict[str, str]]:
        """Write ``splits.npz`` when it fits in ``max_bytes``; choose the folders to reference: those
        of data on disk, or of in-memory data too large to write. Returns the file and
        ``{name in the artifact: folder}``."""
        data_bytes = sum(array.nbytes for array in arrays.values())
        written = None
        if arrays and data_bytes <= self.max_bytes:
            written = write_npz((self.directory or Path(trainer.default_root_dir) / "dataset") / DATA_FILE, arrays)
        roots = _roots(contents, files) if files or written is None else []
        if not roots and written is None and arrays:
            roots = _existing_dirs([_hparam(datamodule, "data_dir")])
        if not arrays:
            say_once(
                "WandbDatasetArtifact: the datasets keep no tensors, arrays or file lists as attributes, so the dataset "
                "artifact holds their sizes only."
            )
        elif written is None and not roots:
            say_once(
                f"WandbDatasetArtifact: the data ({data_bytes} bytes) is larger than max_bytes={self.max_bytes} and was not "
                "read from a folder, so the dataset artifact holds its metadata only."
            )
        return written, _reference_names(roots)


def describe(
    datamodule: Any, hparams: dict[str, Any], contents: dict[str, SplitContent], arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The metadata of the data: its datamodule, source, seed and hyperparameters, the size and the
    class balance of every split, the class names, and the shape and dtype of every array."""
    datamodule_name = type(datamodule).__qualname__ if datamodule is not None else None
    source = next((hparams[k] for k in ("source", "dataset", "data_dir") if isinstance(hparams.get(k), str)), None)
    return {
        "datamodule": datamodule_name,
        "source": source or datamodule_name,
        "seed": hparams.get("seed", getattr(datamodule, "seed", None)),
        "hparams": hparams,
        "split_sizes": {split: content.size for split, content in contents.items()},
        "class_balance": {split: balance for split, content in contents.items() if (balance := class_balance(content))},
        "class_names": _class_names(datamodule),
        "fields": {key: {"shape": list(array.shape), "dtype": array.dtype.str} for key, array in arrays.items()},
    }


# ---------------------------------------------------------------------- finding the splits
def datamodule_splits(datamodule: Any) -> dict[str, Any]:
    """``{split: dataset}`` of a datamodule: its dataset attributes, else its loaders' datasets."""
    found: dict[str, Any] = {}
    for split, names in SPLIT_ATTRIBUTES.items():
        dataset = next((d for n in names if _is_dataset(d := getattr(datamodule, n, None))), None)
        if dataset is not None:
            found[split] = dataset
    if found:
        return found
    for split in SPLITS:
        method = getattr(datamodule, f"{split}_dataloader", None)
        try:
            loader = method() if callable(method) else None
        except Exception:  # noqa: BLE001  (a hook it does not define, or a split not set up for fitting)
            continue
        dataset = _loader_dataset(loader)
        if dataset is not None:
            found[split] = dataset
    return found


def trainer_splits(trainer: L.Trainer) -> dict[str, Any]:
    """``{split: dataset}`` of the loaders the trainer was given (``train`` and ``val``)."""
    loaders = {"train": trainer.train_dataloader, "val": trainer.val_dataloaders}
    return {split: dataset for split, loader in loaders.items() if (dataset := _loader_dataset(loader)) is not None}


def _is_dataset(value: Any) -> bool:
    return value is not None and hasattr(value, "__getitem__") and hasattr(value, "__len__")


def _loader_dataset(loader: Any) -> Any:
    """The dataset of a loader, or of the first of several loaders."""
    if isinstance(loader, (list, tuple)):
        loader = loader[0] if loader else None
    elif isinstance(loader, Mapping):
        loader = next(iter(loader.values()), None)
    dataset = getattr(loader, "dataset", None)
    return dataset if _is_dataset(dataset) else None


# ---------------------------------------------------------------------- reading a split
def read_split(dataset: Any) -> SplitContent:
    """The per-sample fields of a dataset: its tensors, arrays and lists with one entry per sample.

    ``Subset`` is followed to its dataset and its indices applied. A list of paths of existing
    files (or of ``(path, label)`` pairs, as ``ImageFolder.samples``) is a field of files on disk.
    """
    if isinstance(dataset, Subset):
        inner = read_split(dataset.dataset)
        index = np.asarray(dataset.indices, dtype=np.int64)
        inner.fields = {key: _take(value, index) for key, value in inner.fields.items()}
        inner.size = len(index)
        return inner
    try:
        size: int | None = len(dataset)
    except TypeError:
        return SplitContent(size=None)
    content = SplitContent(size=size)
    root = getattr(dataset, "root", None)
    if isinstance(root, (str, os.PathLike)) and os.path.isdir(root):
        content.roots.append(os.path.abspath(root))
    seen: set[int] = set()
    attributes = getattr(dataset, "__dict__", {})
    # the usual names first, so that an alias (ImageFolder's imgs of its samples) is the one skipped
    order = [k for k in PREFERRED_NAMES if k in attributes] + sorted(k for k in attributes if k not in PREFERRED_NAMES)
    for key, value in ((k, attributes[k]) for k in order):
        if key.startswith("_") or id(value) in seen:
            continue
        seen.add(id(value))
        _add_field(content, key, value, size)
    return content


def _add_field(content: SplitContent, key: str, value: Any, size: int) -> None:
    if isinstance(value, (Tensor, np.ndarray)):
        if value.ndim >= 1 and len(value) == size:
            content.fields[key] = value
        return
    if not isinstance(value, (list, tuple)):
        return
    if value and all(isinstance(v, Tensor) and v.ndim >= 1 and len(v) == size for v in value):  # TensorDataset.tensors
        for i, tensor in enumerate(value):
            content.fields[f"{key}.{i}"] = tensor
        return
    if len(value) != size or not value:
        return
    first = value[0]
    if isinstance(first, str):
        content.fields[key] = list(value)
        if os.path.isfile(first):
            content.file_fields.add(key)
    elif isinstance(first, tuple) and first and isinstance(first[0], str) and os.path.isfile(first[0]):
        content.fields[f"{key}.path"] = [item[0] for item in value]  # ImageFolder.samples: (path, label)
        content.file_fields.add(f"{key}.path")
        if len(first) == 2 and isinstance(first[1], numbers.Integral):
            content.fields[f"{key}.label"] = [int(item[1]) for item in value]
    elif isinstance(first, numbers.Number) and all(isinstance(v, numbers.Number) for v in value):
        content.fields[key] = list(value)


def _take(value: Any, index: np.ndarray) -> Any:
    if isinstance(value, Tensor):
        return value[torch.from_numpy(index)]
    if isinstance(value, np.ndarray):
        return value[index]
    return [value[i] for i in index]


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            tensor = tensor.float()
        return np.ascontiguousarray(tensor.numpy())
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    if value and isinstance(value[0], str):
        return np.asarray([v.encode("utf-8") for v in value], dtype=np.bytes_)  # UTF-8: a quarter of numpy's UTF-32
    return np.asarray(value)


def _arrays_and_files(contents: dict[str, SplitContent]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``{"<split>.<field>": array}`` of every split, with file paths made relative to the folder
    that holds them all (moving the data does not change it), and ``{relative path: absolute path}``."""
    all_paths = [os.path.abspath(p) for c in contents.values() for key in c.file_fields for p in c.fields[key]]
    base = _common_folder(all_paths)
    arrays: dict[str, np.ndarray] = {}
    for split, content in contents.items():
        for key, value in content.fields.items():
            if key in content.file_fields:
                value = [os.path.relpath(os.path.abspath(p), base).replace(os.sep, "/") for p in value]
            arrays[f"{split}.{key}"] = _as_array(value)
    files = {os.path.relpath(p, base).replace(os.sep, "/"): p for p in all_paths} if base else {}
    return arrays, dict(sorted(files.items()))


def _common_folder(paths: list[str]) -> str:
    if not paths:
        return ""
    folder = os.path.commonpath(paths)
    return os.path.dirname(folder) if os.path.isfile(folder) else folder


# ---------------------------------------------------------------------- digest, file, labels
def content_digest(arrays: dict[str, np.ndarray], files: dict[str, str]) -> str | None:
    """SHA-256 over the arrays in key order (each key, dtype, shape, then its bytes) and then over
    ``files`` (relative path, then the file's bytes) in path order; ``None`` with neither."""
    if not arrays and not files:
        return None
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = arrays[key]
        digest.update(f"{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    for relative, path in files.items():
        digest.update(f"{relative}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an ``.npz`` (``numpy.load`` reads it) that is the same bytes for the same
    arrays: members in key order, uncompressed, with a fixed time stamp and permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, on every platform
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arrays[key], allow_pickle=False)
    return path


def class_balance(content: SplitContent) -> dict[str, int] | None:
    """Samples per label of a split, from its label field (``targets``, ``labels``, ... or the last
    one-dimensional integer field); ``None`` when it has none."""
    labels = [content.fields[n] for n in LABEL_NAMES if n in content.fields]
    labels += [v for k, v in content.fields.items() if k.endswith(".label")]
    labels += [v for k, v in reversed(content.fields.items()) if k not in content.file_fields]
    for value in labels:
        array = _as_array(value)
        if array.ndim == 1 and array.dtype.kind in "iub" and len(array):
            values, counts = np.unique(array, return_counts=True)
            return {str(v.item()): int(c) for v, c in zip(values, counts)}
    return None


# ---------------------------------------------------------------------- names and references
def artifact_name(datamodule: Any, hparams: dict[str, Any]) -> str:
    """``dataset-<datamodule class>[-<source>]``, lower case, as wandb allows."""
    stem = re.sub(r"(?i)_?data_?module$", "", type(datamodule).__name__) if datamodule is not None else "data"
    source = next((hparams[k] for k in ("source", "dataset") if isinstance(hparams.get(k), str)), None)
    name = "-".join(part for part in ("dataset", stem or "data", source) if part)
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-")[:128]


def _roots(contents: dict[str, SplitContent], files: dict[str, str]) -> list[str]:
    roots = [root for content in contents.values() for root in content.roots]
    if not roots and files:
        roots = [_common_folder(list(files.values()))]
    return _existing_dirs(roots)


def _existing_dirs(paths: Iterable[Any]) -> list[str]:
    """The existing folders among ``paths``, absolute, without those inside another one."""
    found = sorted({os.path.abspath(p) for p in paths if isinstance(p, (str, os.PathLike)) and os.path.isdir(p)})
    return [p for p in found if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in found)]


def _reference_names(roots: list[str]) -> dict[str, str]:
    """``{name in the artifact: folder}``: each folder by its path below the folders' common parent."""
    if not roots:
        return {}
    parent = os.path.commonpath(roots) if len(roots) > 1 else os.path.dirname(roots[0])
    return {os.path.relpath(root, parent).replace(os.sep, "/"): root for root in roots}


def _is_offline(run: Any) -> bool:
    offline = getattr(run, "offline", None)  # wandb's Run.offline; its settings' mode where there is none
    return offline if isinstance(offline, bool) else getattr(getattr(run, "settings", None), "mode", None) in ("offline", "dryrun")


def _hparam(datamodule: Any, key: str) -> Any:
    hparams = getattr(datamodule, "hparams", None) or {}
    return hparams.get(key, getattr(datamodule, key, None))


def _class_names(datamodule: Any) -> list[str] | None:
    names = getattr(datamodule, "class_names", None) if datamodule is not None else None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def _json_safe(value: Any) -> Any:
    """``value`` as JSON holds it: paths, tuples and other objects become strings and lists."""
    return json.loads(json.dumps(value, default=str))
