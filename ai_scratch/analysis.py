"""Analysis artifacts: what a command that looks across runs leaves in Weights & Biases.

``ai-scratch reproduce`` (every claim, one table) and ``ai-scratch compare`` (several models side
by side) do not train one model: they look at many. What they find goes to one wandb run of its
own, in a project of its own (``ai-from-scratch-comparison``), as

* a ``wandb.Table`` in the run's history (sortable and filterable in the wandb UI), and
* an artifact of type ``analysis`` that holds the files the command wrote (a report, a figure, a
  JSON file) and the same table, versioned: each new report of the same name is a new version, so
  the history of a claim across code changes stays in one place.

::

    from ai_scratch.analysis import log_analysis

    where = log_analysis(
        "ai-from-scratch-comparison", "reproduce-module-1",
        files=["runs/reproduce/report.md", "runs/reproduce/report.json"],
        table=[{"experiment": "perceptron/xor_weakness", "reproduced": True, "observed": 0.5}],
        metadata={"reproduced": 1, "not_reproduced": 0},
        job_type="reproduce",
    )

The mode follows ``ai-scratch fit --wandb``: ``mode``, else ``WANDB_MODE``, else online; online
without credentials or network falls back to offline with one warning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ai_scratch.tracking import resolve_mode
from callbacks.wandb_helpers import wandb_installed, warn_once

#: Where the commands that look across models log what they find.
COMPARISON_PROJECT = "ai-from-scratch-comparison"
#: The wandb artifact type of what they leave there.
ANALYSIS_TYPE = "analysis"


def artifact_name(name: str) -> str:
    """``name`` as a wandb artifact name: letters, digits, ``-``, ``_`` and ``.`` only (a run name
    such as ``reproduce-perceptron/xor_weakness`` becomes ``reproduce-perceptron_xor_weakness``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or ANALYSIS_TYPE


def as_table(rows: Any) -> Any:
    """A ``wandb.Table`` from a list of row dicts (the columns are their keys, in order of first
    appearance); a ``wandb.Table`` is returned as it is."""
    import wandb

    if isinstance(rows, wandb.Table):
        return rows
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return wandb.Table(columns=columns, data=[[row.get(column) for column in columns] for row in rows])


def log_analysis(
    project: str,
    name: str,
    files: Sequence[str | os.PathLike[str]],
    table: Any = None,
    metadata: Mapping[str, Any] | None = None,
    mode: str | None = None,
    *,
    job_type: str = ANALYSIS_TYPE,
    tags: Sequence[str] = (),
    group: str | None = None,
    config: Mapping[str, Any] | None = None,
    table_key: str = "table",
    images: Mapping[str, str | os.PathLike[str]] | None = None,
    save_dir: str | os.PathLike[str] | None = None,
) -> str | None:
    """Open a wandb run, log ``table`` and an ``analysis`` artifact of ``files``, finish the run.

    Args:
        project: the wandb project (:data:`COMPARISON_PROJECT` for comparisons and reproductions).
        name: the run's name; the artifact is named after it (see :func:`artifact_name`), so the
            same analysis run again becomes the artifact's next version.
        files: the files the artifact holds (a report, a figure, a JSON file), each under its
            own file name.
        table: a ``wandb.Table``, or a list of row dicts (see :func:`as_table`); logged in the
            run's history under ``table_key`` and added to the artifact under the same name.
        metadata: the artifact's metadata (counts, the command, versions); also the run's summary.
        mode: ``online``, ``offline`` or ``disabled``; default ``WANDB_MODE``, else online.
        job_type: the run's job type (``reproduce``, ``compare``).
        tags, group, config: the run's tags, group and config.
        table_key: the table's key in the history and its name in the artifact.
        images: ``{history key: PNG file}``, each also logged as an image (a figure to look at in
            the run's page, besides its file in the artifact).
        save_dir: where wandb writes the run (default ``WANDB_DIR``, else ``runs``, as ``fit``).

    Returns:
        Where the run is: its URL online; offline, the run's folder, which ``wandb sync <folder>``
        uploads; ``None`` when the mode is ``disabled`` or wandb is not installed (one warning).

    Raises:
        FileNotFoundError: a file in ``files`` does not exist (checked before the run opens).
        ai_scratch.tracking.TrackingError: an unknown mode.
    """
    paths = [Path(file) for file in [*files, *(images or {}).values()]]
    paths = list(dict.fromkeys(paths))
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"log_analysis: no such file: {', '.join(missing)}")
    resolved, reason = resolve_mode(mode)
    if not wandb_installed():
        warn_once(f"{name}: wandb is not installed, so the analysis stays on disk ({', '.join(map(str, paths))}).")
        return None
    if reason:
        warn_once(reason)
    import wandb

    directory = Path(save_dir or os.environ.get("WANDB_DIR") or "runs")
    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project, name=name, job_type=job_type, tags=list(tags), group=group,
        config=dict(config or {}), mode=resolved, dir=str(directory),
    )  # fmt: skip
    try:
        artifact = wandb.Artifact(artifact_name(name), type=ANALYSIS_TYPE, metadata=dict(metadata or {}))
        for path in paths:
            artifact.add_file(str(path), name=path.name)
        for key, image in (images or {}).items():
            run.log({key: wandb.Image(str(image), caption=Path(image).stem)})
        if table is not None:
            wandb_table = as_table(table)
            run.log({table_key: wandb_table})
            artifact.add(wandb_table, table_key)
        if metadata:
            run.summary.update(dict(metadata))
        run.log_artifact(artifact)
        where = None if run.disabled else (run.settings.sync_dir if run.offline else run.url)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return where
