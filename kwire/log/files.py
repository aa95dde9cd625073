"""File naming and small durable-write helpers for the metadata log directory."""

from __future__ import annotations

import os
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
PRODUCER_SNAPSHOT_SUFFIX = ".snapshot"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
TEMP_SUFFIX = ".tmp"

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION_DIR = f"{METADATA_TOPIC}-0"
PARTITION_METADATA_FILE = "partition.metadata"
LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"
QUORUM_STATE_FILE = "quorum-state"
META_PROPERTIES_FILE = "meta.properties"
BOOTSTRAP_CHECKPOINT_FILE = "bootstrap.checkpoint"

OFFSET_WIDTH = 20


def offset_prefix(offset: int) -> str:
    """Kafka's zero-padded 20-digit file name prefix for an offset."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    return f"{offset:0{OFFSET_WIDTH}d}"


def log_file(directory: Path, base_offset: int) -> Path:
    return directory / (offset_prefix(base_offset) + LOG_SUFFIX)


def index_file(directory: Path, base_offset: int) -> Path:
    return directory / (offset_prefix(base_offset) + INDEX_SUFFIX)


def time_index_file(directory: Path, base_offset: int) -> Path:
    return directory / (offset_prefix(base_offset) + TIME_INDEX_SUFFIX)


def producer_snapshot_file(directory: Path, offset: int) -> Path:
    return directory / (offset_prefix(offset) + PRODUCER_SNAPSHOT_SUFFIX)


def parse_offset_prefix(name: str, suffix: str) -> int | None:
    """The offset of ``<20 digits><suffix>``, or None if ``name`` is not of that form."""
    if not name.endswith(suffix) or len(name) != OFFSET_WIDTH + len(suffix):
        return None
    digits = name[:OFFSET_WIDTH]
    return int(digits) if digits.isdigit() else None


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path.tmp``, fsync it, rename over ``path`` and fsync the directory, so a
    crash leaves either the old or the new content (Kafka's atomicMoveWithFallback)."""
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
