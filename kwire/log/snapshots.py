"""KRaft snapshot files: ``<20-digit end offset>-<10-digit epoch>.checkpoint``.

While being written a snapshot is ``<id>-<random>.checkpoint.part``; freezing fsyncs
it and renames it atomically. Deletion first renames to ``.checkpoint.deleted``.
Partial and deleted leftovers are removed when the log is opened, as Kafka does.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kwire.log.files import fsync_dir

SNAPSHOT_SUFFIX = ".checkpoint"
PARTIAL_SUFFIX = ".checkpoint.part"
DELETE_SUFFIX = ".checkpoint.deleted"
EPOCH_WIDTH = 10
_OFFSET_WIDTH = 20


@dataclass(frozen=True, order=True, slots=True)
class SnapshotId:
    end_offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class SnapshotPath:
    path: Path
    snapshot_id: SnapshotId
    partial: bool
    deleted: bool


def snapshot_file_stem(snapshot_id: SnapshotId) -> str:
    return f"{snapshot_id.end_offset:0{_OFFSET_WIDTH}d}-{snapshot_id.epoch:0{EPOCH_WIDTH}d}"


def snapshot_path(directory: Path, snapshot_id: SnapshotId) -> Path:
    return directory / (snapshot_file_stem(snapshot_id) + SNAPSHOT_SUFFIX)


def parse_snapshot_path(path: Path) -> SnapshotPath | None:
    """Classify a file name; like Kafka, the id is read from fixed-width positions."""
    name = path.name
    partial = name.endswith(PARTIAL_SUFFIX)
    deleted = name.endswith(DELETE_SUFFIX)
    if not (partial or deleted or name.endswith(SNAPSHOT_SUFFIX)):
        return None
    offset_text = name[:_OFFSET_WIDTH]
    epoch_text = name[_OFFSET_WIDTH + 1 : _OFFSET_WIDTH + 1 + EPOCH_WIDTH]
    if (
        len(name) < _OFFSET_WIDTH + 1 + EPOCH_WIDTH
        or name[_OFFSET_WIDTH] != "-"
        or not offset_text.isdigit()
        or not epoch_text.isdigit()
    ):
        return None
    return SnapshotPath(path, SnapshotId(int(offset_text), int(epoch_text)), partial, deleted)


def list_snapshots(directory: Path) -> list[SnapshotId]:
    """Ids of the complete (frozen) snapshots in ``directory``, oldest first."""
    found = []
    for entry in directory.iterdir():
        parsed = parse_snapshot_path(entry)
        if parsed is not None and not parsed.partial and not parsed.deleted:
            found.append(parsed.snapshot_id)
    return sorted(found)


def remove_snapshot_leftovers(directory: Path) -> list[Path]:
    """Delete ``.checkpoint.part`` and ``.checkpoint.deleted`` files; return them."""
    removed = []
    for entry in directory.iterdir():
        parsed = parse_snapshot_path(entry)
        if parsed is not None and (parsed.partial or parsed.deleted):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        fsync_dir(directory)
    return removed


def create_partial_snapshot(directory: Path, snapshot_id: SnapshotId) -> Path:
    """Create an empty, uniquely named ``.checkpoint.part`` file to write into."""
    fd, name = tempfile.mkstemp(
        prefix=snapshot_file_stem(snapshot_id) + "-", suffix=PARTIAL_SUFFIX, dir=directory
    )
    os.close(fd)
    return Path(name)


def freeze_snapshot(partial: Path, snapshot_id: SnapshotId) -> Path:
    """fsync the written partial file and atomically rename it to its final name."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    final = snapshot_path(partial.parent, snapshot_id)
    os.replace(partial, final)
    fsync_dir(partial.parent)
    return final


def mark_snapshot_for_deletion(directory: Path, snapshot_id: SnapshotId) -> Path:
    source = snapshot_path(directory, snapshot_id)
    target = directory / (snapshot_file_stem(snapshot_id) + DELETE_SUFFIX)
    os.replace(source, target)
    fsync_dir(directory)
    return target


def delete_snapshot(directory: Path, snapshot_id: SnapshotId) -> bool:
    """Remove the snapshot and any ``.deleted`` twin; True if something was removed."""
    stem = snapshot_file_stem(snapshot_id)
    removed = False
    for name in (stem + SNAPSHOT_SUFFIX, stem + DELETE_SUFFIX):
        try:
            (directory / name).unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed
