"""The snapshots a metadata log keeps, and the rules that delete them with the log's
oldest segments (Kafka 3.9's KafkaMetadataLog: recoverSnapshots, truncateToLatestSnapshot,
deleteBeforeSnapshot, maybeClean with cleanSnapshotsRetentionSize/-Ms).

Rules:
- On open, partial and ``.deleted`` files go (kwire.log.snapshots), then every snapshot
  below the log start offset; a log that starts above 0 must have a snapshot at or after
  its start ("Inconsistent snapshot state", as Kafka refuses to start). A newest
  snapshot ahead of the log (a newer epoch, or the same epoch past the log end) empties
  the log and restarts it at the snapshot (a follower that crashed after fetching it).
- ``delete_before_snapshot(id)`` acts only if ``id`` is a kept snapshot above the log
  start offset and not after the newest one: the log start moves to ``id``, the
  segments wholly below it are deleted, and so are the older snapshots.
- ``maybe_clean`` never deletes the newest snapshot, nor the log after it: by size, while
  the log's bytes plus the snapshots' bytes exceed ``metadata.max.retention.bytes``, the
  oldest snapshot goes (moving the log start to the next one); by time, every snapshot
  but the newest whose header timestamp is older than ``metadata.max.retention.ms``. A
  negative limit disables its rule.

Kafka renames deleted snapshots to ``.deleted`` and removes them after
``file.delete.delay.ms`` (60 s) so that open readers finish; kwire reads a snapshot
only synchronously (a FetchSnapshot chunk, a load), so it removes them at once.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kwire.log.snapshot_io import read_last_contained_log_timestamp, snapshot_size
from kwire.log.snapshots import (
    SnapshotId,
    delete_snapshot,
    list_snapshots,
    mark_snapshot_for_deletion,
)

if TYPE_CHECKING:
    from kwire.log.metadata_log import MetadataLog

log = logging.getLogger(__name__)


class InconsistentSnapshotError(ValueError):
    """The log starts above 0 but no snapshot covers its start."""


class SnapshotSet:
    """The ids of the complete snapshots kept for one log directory, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ids: list[SnapshotId] = []

    def ids(self) -> list[SnapshotId]:
        return list(self._ids)

    def latest(self) -> SnapshotId | None:
        return self._ids[-1] if self._ids else None

    def earliest(self) -> SnapshotId | None:
        return self._ids[0] if self._ids else None

    def __contains__(self, snapshot_id: object) -> bool:
        return snapshot_id in self._ids

    def add(self, snapshot_id: SnapshotId) -> None:
        """A snapshot was frozen (Kafka's onSnapshotFrozen)."""
        if snapshot_id not in self._ids:
            self._ids.append(snapshot_id)
            self._ids.sort()

    def forget_before(self, snapshot_id: SnapshotId, reason: str) -> list[SnapshotId]:
        """Delete the snapshots older than ``snapshot_id``; return their ids."""
        gone = [s for s in self._ids if s < snapshot_id]
        self._ids = [s for s in self._ids if s >= snapshot_id]
        for old in gone:
            log.info("Deleting snapshot %s because %s", old, reason)
            with contextlib.suppress(FileNotFoundError):
                mark_snapshot_for_deletion(self.directory, old)
            delete_snapshot(self.directory, old)
        return gone


def recover_snapshots(metadata_log: MetadataLog) -> None:
    """Load the snapshot ids of an opened log and apply the open-time rules above."""
    found = list_snapshots(metadata_log.directory)
    start = metadata_log.log_start_offset
    keep = [s for s in found if s.end_offset >= start]
    if start > 0 and not (keep and keep[-1].end_offset >= start):
        raise InconsistentSnapshotError(
            "Inconsistent snapshot state: there must be a snapshot at an offset larger then "
            f"the current log start offset {start}, but the latest snapshot is "
            f"{keep[-1] if keep else None}"
        )
    for old in found:
        if old.end_offset < start:
            delete_snapshot(metadata_log.directory, old)
            log.info("Deleted unneeded snapshot %s below the log start offset %d", old, start)
    snapshots = metadata_log.snapshots
    for snapshot_id in keep:
        snapshots.add(snapshot_id)
    truncate_to_latest_snapshot(metadata_log)


def truncate_to_latest_snapshot(metadata_log: MetadataLog) -> bool:
    """Empty the log and restart it at the newest snapshot if that snapshot is ahead of
    the log; True if it did (Kafka's truncateToLatestSnapshot)."""
    latest = metadata_log.snapshots.latest()
    if latest is None:
        return False
    log_epoch = metadata_log.latest_epoch or 0
    if latest.epoch > log_epoch or (
        latest.epoch == log_epoch and latest.end_offset > metadata_log.end_offset
    ):
        metadata_log.truncate_fully_and_start_at(latest.end_offset)
        metadata_log.snapshots.forget_before(latest, "the log was truncated fully")
        return True
    return False


def delete_before_snapshot(metadata_log: MetadataLog, snapshot_id: SnapshotId, reason: str) -> bool:
    """Move the log start to ``snapshot_id`` and delete what precedes it; True if a
    segment or a snapshot was deleted (Kafka's deleteBeforeSnapshot)."""
    snapshots = metadata_log.snapshots
    latest = snapshots.latest()
    if (
        latest is None
        or snapshot_id not in snapshots
        or not metadata_log.log_start_offset < snapshot_id.end_offset <= latest.end_offset
        or snapshot_id.end_offset > metadata_log.high_watermark
    ):
        return False
    segments = metadata_log.advance_log_start_offset(snapshot_id.end_offset)
    forgotten = snapshots.forget_before(snapshot_id, reason)
    return segments != 0 or bool(forgotten)


def maybe_clean(
    metadata_log: MetadataLog, now_ms: int, *, retention_bytes: int, retention_ms: int
) -> bool:
    """Apply ``metadata.max.retention.bytes`` then ``metadata.max.retention.ms``; True if
    anything was deleted (Kafka's maybeClean)."""
    cleaned = False
    if retention_bytes >= 0:
        cleaned |= _clean_by_size(metadata_log, retention_bytes)
    if retention_ms >= 0:
        cleaned |= _clean_by_time(metadata_log, now_ms, retention_ms)
    return cleaned


def _clean_by_size(metadata_log: MetadataLog, retention_bytes: int) -> bool:
    directory = metadata_log.directory
    ids = metadata_log.snapshots.ids()
    if len(ids) < 2:
        return False
    sizes = {s: snapshot_size(directory, s) for s in ids}
    total = sum(sizes.values())
    cleaned = False
    for older, newer in zip(ids, ids[1:], strict=False):
        log_size = metadata_log.size_in_bytes
        if log_size + total <= retention_bytes:
            break
        reason = (
            f"the size of the metadata log ({log_size}) and the snapshots ({total}) "
            f"is greater than {retention_bytes}"
        )
        total -= sizes[older]
        if not delete_before_snapshot(metadata_log, newer, reason):
            break
        cleaned = True
    return cleaned


def _clean_by_time(metadata_log: MetadataLog, now_ms: int, retention_ms: int) -> bool:
    directory = metadata_log.directory
    ids = metadata_log.snapshots.ids()
    cleaned = False
    for older, newer in zip(ids, ids[1:], strict=False):
        timestamp = read_last_contained_log_timestamp(directory, older)
        if now_ms - timestamp <= retention_ms:
            break
        reason = (
            f"its last contained log timestamp ({timestamp}) is older than {now_ms} minus "
            f"the retention ({retention_ms})"
        )
        if not delete_before_snapshot(metadata_log, newer, reason):
            break
        cleaned = True
    return cleaned
