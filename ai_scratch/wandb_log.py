"""Read what wandb wrote locally: a run's transaction log ``run-<id>.wandb``.

Every wandb run, online or offline, keeps its record in ``<dir>/wandb/*run-<time>-<id>/run-<id>.wandb``:
a 7-byte header (``:W&B`` and version bytes) followed by LevelDB-log framing in 32 KiB blocks.
Each chunk is crc32 (u32), length (u16), type (u8: 1 full, 2 first, 3 middle, 4 last) and data;
each assembled record is a ``wandb_internal_pb2.Record``. wandb no longer ships a Python reader;
this small one lets a resumed fit find where its run's history stopped, and the tests assert what
a user would see after ``wandb sync``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

BLOCK_SIZE = 32 * 1024
HEADER_SIZE = 7
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path, complete: bool = True) -> list[Any]:
    """All records of a transaction log, parsed, in order; checks each chunk's crc32.

    ``complete=False`` reads a log whose writer was killed or is still writing: the records up to
    the first chunk that is cut short or fails its checksum. Otherwise such a chunk is an error.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb transaction log")
    records, pending, position = [], b"", HEADER_SIZE
    while position + CHUNK_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:  # block trailer padding
            position += left_in_block
            continue
        checksum, length, kind = CHUNK_HEADER.unpack_from(data, position)
        if kind == 0 and length == 0:  # zero padding to the end of the block
            position += left_in_block
            continue
        start = position + CHUNK_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != checksum:
            if not complete:
                break
            raise ValueError(f"{path}: bad checksum at byte {position}")
        position = start + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def run_logs(wandb_dir: str | Path, run_id: str) -> list[Path]:
    """The transaction logs that runs with id ``run_id`` left under ``wandb_dir`` (its ``wandb/``
    folder): one per process that ran it, online (``run-*``) or offline (``offline-run-*``)."""
    return sorted(Path(wandb_dir).glob(f"wandb/*run-*-{run_id}/run-{run_id}.wandb"))


def last_step(paths: list[Path]) -> int | None:
    """The largest history step (``_step``) in these transaction logs, or ``None`` when they hold
    no history."""
    steps = [
        int(item.value_json)
        for path in paths
        for record in read_records(path, complete=False)
        if record.WhichOneof("record_type") == "history"
        for item in record.history.item
        if "/".join(item.nested_key) == "_step" or item.key == "_step"
    ]
    return max(steps, default=None)
