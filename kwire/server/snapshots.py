"""A node's snapshot lifecycle (KIP-630): load at start-up, write on Kafka's triggers,
clean the log, serve FetchSnapshot chunks.

Rules, as Kafka 3.9 runs them (SnapshotGenerator, SnapshotEmitter, KafkaRaftClient,
KafkaMetadataLog):
- Start-up loads the newest snapshot into the controller (every record at the
  snapshot's last contained offset, as Kafka's MetadataLoader does), then replays the
  log from the snapshot's end offset. A snapshot that cannot be read is fatal, as the
  loader's fault is in Kafka.
- The triggers count the bytes of the batches committed since the last snapshot:
  ``metadata.log.max.record.bytes.between.snapshots`` (default 20 MiB) or, when
  ``metadata.log.max.snapshot.interval.ms`` (default 1 hour; 0 disables) has passed
  since the last one, on the next commit. Both counters restart when a snapshot is
  scheduled, and at start-up (Kafka publishes the loaded image as a snapshot to the
  generator, which resets them).
- A snapshot holds only committed, stable state: it is written when the controller has
  applied nothing past the high watermark (on a sole voter, after every write) and no
  metadata transaction is open (Kafka publishes no image inside one, so its
  SnapshotGenerator sees none: a due snapshot waits for the transaction's end), with id
  ``(high watermark, epoch of the last committed batch)`` and the header timestamp of
  that batch. Its records are `snapshot_records(image)` (kwire.controller.snapshot_image),
  framed as in the log, taken from a consistent copy of the image (`snapshot_view`).
- Every 60 s (RaftMetadataLogCleanerManager) the log is cleaned by
  ``metadata.max.retention.bytes`` / ``metadata.max.retention.ms`` (kwire.log.snapshot_set).

Cost: the snapshot is written in the node's one Trio loop (Kafka writes it on its own
thread). While the node runs, `SnapshotDriver.begin` takes, in the driver's turn, a
consistent copy of the image (`snapshot_view`: shallow copies of the partitions dicts,
O(partitions) C-level copying) and the node's writer task then frames FRAME_SLICE records,
or encodes and writes one batch of at most 8 MiB, per step, letting heartbeats and
requests run between steps; the bytes are those of the synchronous `write` at the same
offset. The copy costs memory: the dicts, not the registrations. The fsync and rename at
the end are one step. tools/bench_startup.py measures how long a snapshot takes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from kwire.controller.controller import QuorumController
from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.controller.records import RecordAndVersion
from kwire.controller.snapshot_image import snapshot_view
from kwire.controller.transactions import last_stable_offset
from kwire.log import MetadataLog
from kwire.log.snapshot_io import (
    drive,
    iter_snapshot_records,
    read_snapshot_slice,
    snapshot_size,
    write_snapshot_steps,
)
from kwire.log.snapshot_set import maybe_clean
from kwire.log.snapshots import SnapshotId, create_partial_snapshot, freeze_snapshot
from kwire.records import frame_metadata_record, read_batch_header
from kwire.records.control import ControlRecordType

log = logging.getLogger("kwire.snapshots")

# The records of a metadata snapshot of an image, in Kafka's order and versions; they may be
# generated lazily, but from a copy taken during the call (the image changes afterwards).
SnapshotSource = Callable[[MetadataImage], Iterable[RecordAndVersion]]

CLEAN_INTERVAL_MS = 60_000  # KafkaRaftClient's RaftMetadataLogCleanerManager delay


def default_snapshot_source() -> SnapshotSource:
    """Kafka's records of the image (kwire.controller.snapshot_image), from a consistent
    copy (`snapshot_view`) generated as they are framed."""
    return lambda image: snapshot_view(image).records()


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotSettings:
    """Kafka's names: metadata.log.max.record.bytes.between.snapshots,
    metadata.log.max.snapshot.interval.ms, metadata.max.retention.bytes (bytes; < 0
    unbounded), metadata.max.retention.ms (< 0 unbounded)."""

    max_new_record_bytes: int = 20 * 1024 * 1024
    max_interval_ms: int = 3600 * 1000
    retention_bytes: int = 100 * 1024 * 1024
    retention_ms: int = 7 * 24 * 3600 * 1000


def load_newest_snapshot(metadata_log: MetadataLog, controller: QuorumController) -> int:
    """Replay the newest snapshot into ``controller``; returns how many records it held
    (0 without a snapshot). The file is read a batch at a time and applied through an
    ``ImageLoader`` (every record at the snapshot's last contained offset). Raises
    ValueError for a snapshot that cannot be read (the controller then holds part of it:
    discard it)."""
    latest = metadata_log.latest_snapshot_id()
    if latest is None:
        return 0
    offset = latest.end_offset - 1
    loader = ImageLoader(controller.image)
    count = 0
    for batch in iter_snapshot_records(metadata_log.directory, latest):
        loader.replay_all(batch, offset)
        count += len(batch)
    loader.finish()
    controller.commit(offset)
    log.info("Loaded snapshot %s (%d records)", latest, count)
    return count


def read_chunk(
    metadata_log: MetadataLog, snapshot_id: SnapshotId, position: int, max_bytes: int
) -> tuple[int | None, bytes]:
    """(size, bytes from ``position``) of a kept snapshot, (None, b"") if it is not kept;
    at most ``max_bytes`` bytes and never past the end of the file."""
    if snapshot_id not in metadata_log.snapshots:
        return None, b""
    try:
        size = snapshot_size(metadata_log.directory, snapshot_id)
        if position < 0 or position >= size or max_bytes < 0:
            return size, b""
        return size, read_snapshot_slice(
            metadata_log.directory, snapshot_id, position, min(max_bytes, size)
        )
    except FileNotFoundError:
        return None, b""


FRAME_SLICE = 4096  # records framed per step of a snapshot's writing


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotJob:
    """A snapshot begun by `SnapshotDriver.begin`: its id, header timestamp, the time its
    batches carry, KRaft control records, and its metadata records from a consistent
    copy of the image (generated as they are framed)."""

    snapshot_id: SnapshotId
    records: Iterable[RecordAndVersion]
    last_contained_log_timestamp: int
    now_ms: int
    kraft_records: Sequence[tuple[ControlRecordType, bytes]]
    reason: str


# The control records a snapshot's header batch carries after the SnapshotHeaderRecord,
# given the snapshot's last contained offset (kraft.version 1: KRaftVersion + Voters).
KRaftRecordsAt = Callable[[int], Sequence[tuple[ControlRecordType, bytes]]]


class SnapshotDriver:
    """Counts committed bytes, decides when to snapshot, writes and cleans.
    `kraft_records` gives the KRaft control records of a snapshot ending after the given
    offset (Kafka's KafkaRaftClient.createSnapshot: the kraft.version and voter set at
    the last contained offset); None: none (kraft.version 0)."""

    def __init__(
        self,
        metadata_log: MetadataLog,
        settings: SnapshotSettings,
        source: SnapshotSource,
        now_ms: int,
        kraft_records: KRaftRecordsAt | None = None,
    ) -> None:
        self.log = metadata_log
        self.kraft_records = kraft_records
        self.settings = settings
        self.source = source
        self.bytes_since_last = 0
        self.last_snapshot_ms = now_ms
        self.next_clean_ms = now_ms + CLEAN_INTERVAL_MS
        self.wanted: str | None = None  # why a snapshot is due, until begun
        self.writing: SnapshotJob | None = None  # the snapshot being written
        self._pending: deque[tuple[int, int]] = deque()  # (end offset, bytes) appended

    def on_appended(self, end_offset: int, size: int) -> None:
        """A batch of ``size`` bytes ending before ``end_offset`` reached the log."""
        self._pending.append((end_offset, size))

    def on_truncated(self, end_offset: int) -> None:
        self._pending = deque((e, s) for e, s in self._pending if e <= end_offset)

    def on_committed(self, high_watermark: int, now_ms: int) -> None:
        """Everything below ``high_watermark`` is committed (Kafka's publishLogDelta)."""
        grew = False
        while self._pending and self._pending[0][0] <= high_watermark:
            self.bytes_since_last += self._pending.popleft()[1]
            grew = True
        if not grew or self.wanted is not None:
            return
        settings = self.settings
        if self.bytes_since_last >= settings.max_new_record_bytes:
            self._schedule(f"we have replayed at least {settings.max_new_record_bytes} bytes")
        elif (
            settings.max_interval_ms != 0
            and now_ms - self.last_snapshot_ms >= settings.max_interval_ms
        ):
            minutes = settings.max_interval_ms // 60_000
            self._schedule(f"we have waited at least {minutes} minute(s)")

    def _schedule(self, reason: str) -> None:
        self.wanted = reason
        self.bytes_since_last = 0

    def maybe_write(
        self, controller: QuorumController, high_watermark: int, now_ms: int
    ) -> Path | None:
        """Write the due snapshot if the controller holds only committed state."""
        job = self.maybe_begin(controller, high_watermark, now_ms)
        return None if job is None else drive(self.steps(job))

    def maybe_begin(
        self, controller: QuorumController, high_watermark: int, now_ms: int
    ) -> SnapshotJob | None:
        """Start the due snapshot if the controller holds only committed state and no
        other snapshot is being written; its file is written by `steps`."""
        if self.wanted is None or self.writing is not None:
            return None
        if controller.last_applied_offset >= high_watermark:
            return None  # uncommitted records applied: wait for them to commit
        if last_stable_offset(controller.image, high_watermark - 1) < high_watermark - 1:
            return None  # inside a metadata transaction: wait for its end
        reason, self.wanted = self.wanted, None
        self.last_snapshot_ms = now_ms
        return self.begin(controller, high_watermark, now_ms, reason)

    def write(
        self, controller: QuorumController, high_watermark: int, now_ms: int, reason: str
    ) -> Path | None:
        """Write the snapshot of the committed image ending at ``high_watermark``."""
        job = self.begin(controller, high_watermark, now_ms, reason)
        return None if job is None else drive(self.steps(job))

    def begin(
        self, controller: QuorumController, high_watermark: int, now_ms: int, reason: str
    ) -> SnapshotJob | None:
        """Take the snapshot ending at ``high_watermark`` of the committed image: its id,
        timestamps and a consistent copy of its records (the source's), cheap next to
        framing and writing them, which `steps` does. None when there is nothing to
        write (no committed batch, or that snapshot exists). Until the job's steps end,
        no other snapshot begins."""
        epoch = self.log.epoch_for_offset(high_watermark - 1)
        if high_watermark <= 0 or epoch is None or high_watermark < self.log.log_start_offset:
            return None
        if last_stable_offset(controller.image, high_watermark - 1) < high_watermark - 1:
            log.info(
                "Not generating a snapshot at offset %d: the metadata transaction begun at "
                "offset %d is still open.",
                high_watermark,
                controller.image.transaction_start_offset,
            )
            return None
        snapshot_id = SnapshotId(high_watermark, epoch)
        if snapshot_id in self.log.snapshots:
            log.error("Not generating %s because it already exists.", snapshot_id)
            return None
        last_batch = read_batch_header(self.log.read(high_watermark - 1, 1))
        job = SnapshotJob(
            snapshot_id=snapshot_id,
            records=self.source(controller.image),
            last_contained_log_timestamp=last_batch.max_timestamp,
            now_ms=now_ms,
            kraft_records=self.kraft_records(high_watermark - 1) if self.kraft_records else (),
            reason=reason,
        )
        self.writing = job
        return job

    def steps(self, job: SnapshotJob) -> Generator[None, None, Path]:
        """Frame `job`'s records (FRAME_SLICE at a time) and write its file (a batch at
        a time), yielding after each slice and batch; returns the file's path. The bytes
        do not depend on how the steps are spaced. Closing the generator early removes
        the partial file; either way the driver may begin the next snapshot."""
        try:
            values: list[bytes] = []
            records = iter(job.records)
            while chunk := list(islice(records, FRAME_SLICE)):
                values.extend(
                    frame_metadata_record(
                        item.api_key, item.version, item.record.encode(item.version)
                    )
                    for item in chunk
                )
                yield
            log.info("Creating new KRaft snapshot file %s because %s.", job.snapshot_id, job.reason)
            path = yield from write_snapshot_steps(
                self.log.directory,
                job.snapshot_id,
                values,
                last_contained_log_timestamp=job.last_contained_log_timestamp,
                now_ms=job.now_ms,
                kraft_records=job.kraft_records,
            )
            self.log.snapshots.add(job.snapshot_id)
            log.info("Successfully wrote snapshot %s (%d records)", job.snapshot_id, len(values))
            return path
        finally:
            self.writing = None

    def maybe_clean(self, now_ms: int) -> bool:
        """Clean the log when the 60 s cleaning timer has expired."""
        if now_ms < self.next_clean_ms:
            return False
        self.next_clean_ms = now_ms + CLEAN_INTERVAL_MS
        return maybe_clean(
            self.log,
            now_ms,
            retention_bytes=self.settings.retention_bytes,
            retention_ms=self.settings.retention_ms,
        )

    def next_deadline_ms(self) -> int:
        return self.next_clean_ms


class SnapshotDownload:
    """A follower's FetchSnapshot download (KafkaRaftClient.handleFetchSnapshotResponse):
    chunks go into a ``.checkpoint.part`` file at the positions the leader gave; once
    complete it is fsynced and renamed into place, and the log restarts, empty, at the
    snapshot's end offset (truncateToLatestSnapshot). An I/O error is raised to the
    caller, whose fault handler halts the process."""

    def __init__(self, metadata_log: MetadataLog) -> None:
        self.log = metadata_log
        self.partial: tuple[SnapshotId, Path] | None = None

    def start(self, snapshot_id: SnapshotId) -> None:
        """Begin `snapshot_id` afresh (a partial download of another one is dropped)."""
        self.abandon()
        self.partial = (snapshot_id, create_partial_snapshot(self.log.directory, snapshot_id))
        log.info("Fetching snapshot %s from the leader", snapshot_id)

    def write(self, snapshot_id: SnapshotId, position: int, data: bytes) -> None:
        if self.partial is None or self.partial[0] != snapshot_id:
            raise ValueError(f"no download of snapshot {snapshot_id} is under way")
        with self.partial[1].open("r+b") as out:
            out.seek(position)
            out.write(data)

    def install(self, snapshot_id: SnapshotId) -> None:
        """Freeze the download and restart the log at its end offset."""
        if self.partial is None or self.partial[0] != snapshot_id:
            raise ValueError(f"no download of snapshot {snapshot_id} is under way")
        _, path = self.partial
        self.partial = None
        freeze_snapshot(path, snapshot_id)
        self.log.snapshots.add(snapshot_id)
        self.log.truncate_fully_and_start_at(snapshot_id.end_offset)
        self.log.snapshots.forget_before(snapshot_id, "the log was truncated fully")
        log.info(
            "Installed snapshot %s; the log restarts at %d", snapshot_id, snapshot_id.end_offset
        )

    def abandon(self) -> None:
        if self.partial is not None:
            self.partial[1].unlink(missing_ok=True)
            self.partial = None
