"""Read back what wandb recorded: the offline transaction log ``run-<id>.wandb``.

The records come from :func:`ai_scratch.wandb_log.read_records`; this module assembles them into
what a user would see after ``wandb sync`` (:class:`RunLog`), so that tests assert it without
mocking wandb.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_scratch.wandb_log import read_records


@dataclass
class RunLog:
    """What one offline run recorded, in plain Python."""

    project: str = ""
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def finished_records(path: str | Path, timeout: float = 30.0, settle: float = 2.0) -> list[Any]:
    """The records of a run's log once wandb has written all of it.

    ``run.finish()`` returns before wandb's service has closed the run's stream: the request that
    closes it is sent, not awaited, and the last block of the log reaches the file only then. So
    a test that reads the log right after a run finished may find its tail missing (the exit
    record, the last artifacts). Wait for the exit record; a run that was killed never writes one,
    so a log that has not grown for ``settle`` seconds is taken as it is.
    """
    deadline = time.monotonic() + timeout
    size, stable_since = -1, time.monotonic()
    while True:
        now = time.monotonic()
        current = Path(path).stat().st_size
        if current != size:
            size, stable_since = current, now
        settled = now - stable_since >= settle or now >= deadline
        # a log that stopped growing is read as far as it goes (a killed run's last chunk may be cut short)
        records = read_records(path, complete=False)
        if settled or any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        time.sleep(0.05)


def read_run(path: str | Path) -> RunLog:
    """Assemble a :class:`RunLog` from ``run-<id>.wandb`` (waiting for wandb to finish writing it)."""
    log = RunLog()
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            log.project = run.project or log.project
            log.run_id = run.run_id or log.run_id
            log.name = run.display_name or log.name
            log.group = run.run_group or log.group
            log.job_type = run.job_type or log.job_type
            log.notes = run.notes or log.notes
            if run.tags:
                log.tags = list(run.tags)
            for item in run.config.update:
                log.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                _set_nested(log.config, list(item.nested_key) or [item.key], json.loads(item.value_json))
        elif kind == "history":
            log.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                log.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "artifact":
            artifact = record.artifact
            log.artifacts.append(
                {
                    "name": artifact.name,
                    "type": artifact.type,
                    "aliases": list(artifact.aliases),
                    "metadata": json.loads(artifact.metadata) if artifact.metadata else {},
                    "files": [entry.path for entry in artifact.manifest.contents],
                }
            )
        elif kind == "exit":
            log.exit_code = record.exit.exit_code
    return log


def _set_nested(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def find_runs(wandb_dir: str | Path) -> list[Path]:
    """The transaction logs of all offline runs under ``wandb_dir`` (its ``wandb/`` folder)."""
    return sorted(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))
