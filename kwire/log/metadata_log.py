"""The ``__cluster_metadata-0`` partition directory, laid out as Kafka 3.9 lays it out.

Durability: ``append_as_leader`` / ``append_as_follower`` write the batches and, unless
called with ``fsync=False``, fdatasync the segment before returning, so offsets they
return are on stable storage. With ``fsync=False`` nothing is durable until
:meth:`MetadataLog.flush`. Index files and the producer snapshot are derived data and
are rebuilt on open; the leader-epoch checkpoint is written atomically whenever the
cache changes, and reconciled with the log on open.

Recovery: like KafkaMetadataLog (which always opens with ``lastShutdownClean=false``),
every segment is scanned on open. A torn or corrupt tail is cut off with a warning and
any later segments are deleted; no complete valid batch before it is ever dropped.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kwire.log.checkpoints import (
    METADATA_TOPIC_ID,
    CheckpointFormatError,
    read_leader_epoch_checkpoint,
    read_partition_metadata,
    write_leader_epoch_checkpoint,
    write_partition_metadata,
)
from kwire.log.epoch_cache import LeaderEpochCache
from kwire.log.files import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LEADER_EPOCH_CHECKPOINT_FILE,
    LOG_SUFFIX,
    PARTITION_METADATA_FILE,
    PRODUCER_SNAPSHOT_SUFFIX,
    SWAP_SUFFIX,
    TEMP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    fsync_dir,
    index_file,
    log_file,
    parse_offset_prefix,
    producer_snapshot_file,
    time_index_file,
)
from kwire.log.index import DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_MAX_INDEX_SIZE
from kwire.log.segment import LogSegment
from kwire.log.snapshot_set import SnapshotSet, recover_snapshots
from kwire.log.snapshots import SnapshotId, remove_snapshot_leftovers
from kwire.records.batch import (
    LOG_OVERHEAD,
    MAX_BATCH_SIZE_BYTES,
    RECORD_BATCH_OVERHEAD,
    RecordBatch,
    RecordBatchHeader,
    check_batch_crc,
    crc32c,
    decode_batches,
    read_batch_header,
    set_base_offset_and_epoch,
)
from kwire.records.errors import CorruptRecordError
from kwire.records.varint import BytesLike

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 1024 * 1024 * 1024  # metadata.log.segment.bytes
_INT32_MAX = (1 << 31) - 1
_BATCH_WALK = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")


class OffsetOutOfRangeError(ValueError):
    """The requested offset is outside [log start offset, log end offset]."""


class InvalidAppendError(ValueError):
    """Batches handed to append do not fit the log (offsets, size)."""


class InconsistentTopicIdError(ValueError):
    """partition.metadata names a different topic id than the one expected."""


@dataclass(frozen=True, slots=True)
class MetadataLogConfig:
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    index_interval_bytes: int = DEFAULT_INDEX_INTERVAL_BYTES
    max_index_size: int = DEFAULT_MAX_INDEX_SIZE
    max_batch_size_bytes: int = MAX_BATCH_SIZE_BYTES
    topic_id: uuid.UUID = METADATA_TOPIC_ID


class LogAppendInfo(NamedTuple):
    first_offset: int
    last_offset: int


def empty_producer_snapshot() -> bytes:
    """The ``<offset>.snapshot`` producer-state file Kafka writes for a log without
    producers: version int16 1, CRC-32C of the rest, zero entries."""
    body = struct.pack(">i", 0)
    return struct.pack(">hI", 1, crc32c(body)) + body


class MetadataLog:
    """Use :meth:`open`. Not thread-safe; one owner."""

    def __init__(
        self,
        directory: Path,
        config: MetadataLogConfig,
        segments: list[LogSegment],
        epoch_cache: LeaderEpochCache,
    ) -> None:
        self.directory = directory
        self.config = config
        self._segments = segments
        self._epoch_cache = epoch_cache
        self._log_start_offset = segments[0].base_offset
        self._high_watermark = segments[0].base_offset
        self._closed = False
        # Complete snapshots at or after the log start offset (KafkaMetadataLog's map).
        self.snapshots = SnapshotSet(directory)

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: Path, config: MetadataLogConfig | None = None) -> MetadataLog:
        """Open (creating if new) a partition directory and recover it."""
        config = config or MetadataLogConfig()
        if not directory.is_dir():
            directory.mkdir(parents=True)
            fsync_dir(directory.parent)
        _remove_leftovers(directory)
        _check_partition_metadata(directory / PARTITION_METADATA_FILE, config.topic_id)

        checkpoint = directory / LEADER_EPOCH_CHECKPOINT_FILE
        try:
            cache = LeaderEpochCache(read_leader_epoch_checkpoint(checkpoint))
            cache_dirty = False
        except FileNotFoundError:
            cache, cache_dirty = LeaderEpochCache(), True
        except CheckpointFormatError as e:
            log.warning("%s; rebuilding the leader epoch cache from the log", e)
            cache, cache_dirty = LeaderEpochCache(), True

        bases = sorted(
            base
            for entry in directory.iterdir()
            if (base := parse_offset_prefix(entry.name, LOG_SUFFIX)) is not None
        )
        segments: list[LogSegment] = []
        for i, base in enumerate(bases):
            if segments and base < segments[-1].next_offset:
                log.warning(
                    "%s overlaps the previous segment (ends at %d); deleting it and later ones",
                    log_file(directory, base),
                    segments[-1].next_offset,
                )
                _delete_segment_files(directory, bases[i:])
                break
            segment, scan = LogSegment.recover(
                directory,
                base,
                index_interval_bytes=config.index_interval_bytes,
                max_index_size=config.max_index_size,
                latest_epoch=cache.latest_epoch,
            )
            segments.append(segment)
            for epoch, start_offset in scan.epoch_starts:
                cache_dirty |= cache.assign(epoch, start_offset)
            if scan.error is not None and i + 1 < len(bases):
                log.warning(
                    "%s was truncated; deleting the %d later segment(s)",
                    segment.log_path,
                    len(bases) - i - 1,
                )
                _delete_segment_files(directory, bases[i + 1 :])
                break
        if not segments:
            segments.append(
                LogSegment.create(
                    directory,
                    0,
                    index_interval_bytes=config.index_interval_bytes,
                    max_index_size=config.max_index_size,
                )
            )
        for segment in segments[:-1]:
            segment.write_inactive_indexes()
        segments[-1].activate()

        end_offset = segments[-1].next_offset
        cache_dirty |= cache.truncate_from_end(end_offset)
        if cache_dirty:
            write_leader_epoch_checkpoint(checkpoint, cache.entries)
        _delete_producer_snapshots_after(directory, end_offset)
        opened = cls(directory, config, segments, cache)
        recover_snapshots(opened)
        return opened

    # ------------------------------------------------------------ state

    @property
    def log_start_offset(self) -> int:
        """The first offset the log serves: the first segment's base offset, or later
        once a snapshot lets it advance (as Kafka's metadata log, it is not persisted: a
        reopened log starts at its first segment)."""
        return self._log_start_offset

    @property
    def end_offset(self) -> int:
        """The log end offset: the offset the next appended record will get."""
        return self._segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, bounded to [log start offset, log end offset]."""
        self._high_watermark = min(max(offset, self.log_start_offset), self.end_offset)
        return self._high_watermark

    @property
    def latest_epoch(self) -> int | None:
        return self._epoch_cache.latest_epoch

    @property
    def epoch_entries(self) -> list[tuple[int, int]]:
        return [(e.epoch, e.start_offset) for e in self._epoch_cache.entries]

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """``(epoch, end offset)`` per Kafka's leader epoch cache, or None if unknown; an
        epoch older than the log that ends at the earliest snapshot is that snapshot's id
        (KafkaMetadataLog.endOffsetForEpoch)."""
        found = self._epoch_cache.end_offset_for(epoch, self.end_offset)
        earliest = self.snapshots.earliest()
        if found is not None and earliest is not None and found == (epoch, earliest.end_offset):
            return earliest.epoch, earliest.end_offset
        return found

    def epoch_for_offset(self, offset: int) -> int | None:
        """The leader epoch of the batch holding ``offset``, from the epoch cache."""
        return self._epoch_cache.epoch_for_offset(offset)

    @property
    def segment_base_offsets(self) -> list[int]:
        return [s.base_offset for s in self._segments]

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def snapshot_ids(self) -> list[SnapshotId]:
        """Complete ``.checkpoint`` snapshots the log keeps, oldest first."""
        return self.snapshots.ids()

    def latest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshots.latest()

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshots.earliest()

    def advance_log_start_offset(self, offset: int) -> int:
        """Move the log start offset up to ``offset`` (never past the high watermark,
        never down) and delete the segments wholly below it, never the active one (Kafka's
        maybeIncrementLogStartOffset then deleteOldSegments). Returns how many segments
        were deleted; 0 when ``offset`` is not above the current start."""
        self._check_open()
        if offset <= self._log_start_offset:
            return 0
        if offset > self._high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot move the log start offset to {offset} past the high watermark "
                f"{self._high_watermark}"
            )
        self._log_start_offset = offset
        if self._epoch_cache.truncate_from_start(offset):
            self._write_epoch_checkpoint()
        deleted = 0
        while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
            self._segments.pop(0).delete()
            deleted += 1
        if deleted:
            fsync_dir(self.directory)
        return deleted

    # ------------------------------------------------------------ append

    def append_as_leader(
        self, records: BytesLike, epoch: int, *, fsync: bool = True
    ) -> LogAppendInfo:
        """Append batches, assigning offsets from the log end offset and stamping
        ``epoch`` as their partition leader epoch (both lie outside the CRC)."""
        buf = bytearray(records)
        headers = self._validate(buf)
        next_offset = self.end_offset
        placed = []
        for pos, h in headers:
            set_base_offset_and_epoch(buf, pos, next_offset, epoch)
            placed.append(
                (pos, next_offset, next_offset + h.last_offset_delta, h.max_timestamp, epoch)
            )
            next_offset += h.last_offset_delta + 1
        return self._append(buf, placed, fsync)

    def append_as_follower(self, records: BytesLike, *, fsync: bool = True) -> LogAppendInfo:
        """Append batches replicated from the leader; they must start at the log end
        offset and be contiguous."""
        buf = bytes(records)
        headers = self._validate(buf)
        expected = self.end_offset
        placed = []
        for pos, h in headers:
            if h.base_offset != expected:
                raise InvalidAppendError(
                    f"batch at byte {pos} has base offset {h.base_offset}, expected {expected}"
                )
            placed.append(
                (pos, h.base_offset, h.last_offset, h.max_timestamp, h.partition_leader_epoch)
            )
            expected = h.last_offset + 1
        return self._append(buf, placed, fsync)

    def _validate(self, buf: BytesLike) -> list[tuple[int, RecordBatchHeader]]:
        self._check_open()
        view = memoryview(buf)
        headers = []
        pos = 0
        while pos < len(view):
            h = read_batch_header(view, pos)
            check_batch_crc(view, pos, h)
            if h.size_in_bytes > self.config.max_batch_size_bytes:
                raise InvalidAppendError(
                    f"batch of {h.size_in_bytes} bytes exceeds {self.config.max_batch_size_bytes}"
                )
            if h.last_offset_delta < 0:
                raise CorruptRecordError(f"negative last offset delta {h.last_offset_delta}", pos)
            headers.append((pos, h))
            pos += h.size_in_bytes
        if not headers:
            raise InvalidAppendError("attempt to append an empty record set")
        return headers

    def _append(
        self, buf: bytes | bytearray, placed: list[tuple[int, int, int, int, int]], fsync: bool
    ) -> LogAppendInfo:
        first, last = placed[0][1], placed[-1][2]
        segment = self._segments[-1]
        if segment.size > 0 and (
            segment.size > self.config.segment_bytes - len(buf)
            or segment.index_is_full()
            or last - segment.base_offset > _INT32_MAX
        ):
            segment = self._roll()
        segment.append(
            buf, [(pos, last_offset, max_ts) for pos, _, last_offset, max_ts, _ in placed]
        )
        if fsync:
            segment.flush()
        changed = False
        for _, base, _, _, epoch in placed:
            if epoch >= 0:
                changed |= self._epoch_cache.assign(epoch, base)
        if changed:
            self._write_epoch_checkpoint()
        return LogAppendInfo(first, last)

    def _roll(self) -> LogSegment:
        old = self._segments[-1]
        old.deactivate()
        old.flush()
        new = LogSegment.create(
            self.directory,
            self.end_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.max_index_size,
        )
        new.activate()
        self._segments.append(new)
        _write_producer_snapshot(self.directory, new.base_offset)
        return new

    def flush(self) -> None:
        """Make everything appended so far durable."""
        self._check_open()
        self._segments[-1].flush()

    # ------------------------------------------------------------ read

    def read(
        self, start_offset: int, max_bytes: int = 1024 * 1024, max_offset: int | None = None
    ) -> bytes:
        """Whole batches from the one holding ``start_offset``: at most ``max_bytes``
        but always at least one batch, and only batches whose last offset is below
        ``max_offset`` (pass the high watermark for committed reads)."""
        self._check_open()
        end = self.end_offset
        if start_offset == end or (max_offset is not None and start_offset >= max_offset):
            return b""
        if not self.log_start_offset <= start_offset < end:
            raise OffsetOutOfRangeError(
                f"offset {start_offset} outside [{self.log_start_offset}, {end}]"
            )
        i = bisect.bisect_right(self.segment_base_offsets, start_offset) - 1
        for segment in self._segments[i:]:
            found = segment.find_batch(start_offset)
            if found is None:
                continue
            pos = found[0]
            chunk = segment.read(
                pos, min(max(max_bytes, RECORD_BATCH_OVERHEAD), segment.size - pos)
            )
            take = _whole_batches(chunk, max_bytes, max_offset)
            if take < 0:  # the first batch alone exceeds max_bytes: return it anyway
                return segment.read(pos, -take)
            return chunk[:take]
        return b""

    def read_batches(
        self, start_offset: int, max_offset: int | None = None, *, verify_crc: bool = False
    ) -> Iterator[RecordBatch]:
        """Decode batches from ``start_offset`` to the end (or up to ``max_offset``)."""
        offset = start_offset
        while True:
            data = self.read(offset, max_offset=max_offset)
            if not data:
                return
            for batch in decode_batches(data, verify_crc=verify_crc):
                yield batch
                offset = batch.next_offset

    # ------------------------------------------------------------ truncate

    def truncate_to(self, offset: int) -> int:
        """Remove everything at or after ``offset`` (the whole batch holding it) and
        return the new log end offset."""
        self._check_open()
        if offset >= self.end_offset:
            return self.end_offset
        if offset < self.log_start_offset:
            raise OffsetOutOfRangeError(
                f"cannot truncate to {offset} below log start {self.log_start_offset}; "
                "use truncate_fully_and_start_at"
            )
        deleted = False
        while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
            self._segments.pop().delete()
            deleted = True
        segment = self._segments[-1]
        found = segment.find_batch(offset)
        if found is not None:
            segment.truncate_to_position(
                found[0], index_interval_bytes=self.config.index_interval_bytes
            )
        segment.activate()
        if deleted:
            fsync_dir(self.directory)
        end = self.end_offset
        if self._epoch_cache.truncate_from_end(end):
            self._write_epoch_checkpoint()
        _delete_producer_snapshots_after(self.directory, end)
        self._high_watermark = min(self._high_watermark, end)
        return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and restart the log, empty, at ``offset`` (after loading
        a snapshot that is ahead of the log)."""
        self._check_open()
        for segment in self._segments:
            segment.delete()
        _delete_producer_snapshots_after(self.directory, -1)
        segment = LogSegment.create(
            self.directory,
            offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_size=self.config.max_index_size,
        )
        segment.activate()
        self._segments = [segment]
        self._log_start_offset = offset
        if self._epoch_cache.clear():
            self._write_epoch_checkpoint()
        self._high_watermark = offset

    # ------------------------------------------------------------ close

    def close(self) -> None:
        """Flush, trim the active segment's indexes and write the producer snapshot.

        The log is closed and every segment's file released even when a step fails
        (``OSError``, a full disk): the first failure is raised after, and the producer
        snapshot, which claims the log up to its end, is written only after a flush that
        worked. Closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        failures: list[OSError] = []
        try:
            self._segments[-1].flush()
        except OSError as e:
            failures.append(e)
        for segment in self._segments:
            try:
                segment.close()
            except OSError as e:
                failures.append(e)
        if not failures:
            _write_producer_snapshot(self.directory, self.end_offset)
        if failures:
            raise failures[0]

    def __enter__(self) -> MetadataLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("metadata log is closed")

    def _write_epoch_checkpoint(self) -> None:
        write_leader_epoch_checkpoint(
            self.directory / LEADER_EPOCH_CHECKPOINT_FILE, self._epoch_cache.entries
        )


def _whole_batches(chunk: bytes, max_bytes: int, max_offset: int | None) -> int:
    """Length of the prefix of ``chunk`` made of whole batches within the limits; the
    negated size of the first batch if even that one does not fit in ``chunk``."""
    pos = 0
    while len(chunk) - pos >= RECORD_BATCH_OVERHEAD:
        base, length = _BATCH_WALK.unpack_from(chunk, pos)
        (last_delta,) = _LAST_OFFSET_DELTA.unpack_from(chunk, pos + 23)
        size = length + LOG_OVERHEAD
        if max_offset is not None and base + last_delta >= max_offset:
            break
        if pos + size > len(chunk) or pos + size > max_bytes:
            if pos == 0:
                return -size
            break
        pos += size
    return pos


def _check_partition_metadata(path: Path, topic_id: uuid.UUID) -> None:
    try:
        found = read_partition_metadata(path)
    except FileNotFoundError:
        write_partition_metadata(path, topic_id)
        return
    if found != topic_id:
        raise InconsistentTopicIdError(f"{path} has topic id {found}, expected {topic_id}")


def _remove_leftovers(directory: Path) -> None:
    """Kafka's load-time cleanup: files mid-delete, compaction leftovers, temp files,
    partial snapshots and index files whose segment is gone."""
    names = {entry.name for entry in directory.iterdir()}
    doomed = []
    for name in names:
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, SWAP_SUFFIX, TEMP_SUFFIX)):
            if name.endswith(SWAP_SUFFIX):
                log.warning("%s: removing swap file (the metadata log is never compacted)", name)
            doomed.append(name)
            continue
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            base = parse_offset_prefix(name, suffix)
            if base is not None and log_file(directory, base).name not in names:
                doomed.append(name)
    for name in doomed:
        (directory / name).unlink(missing_ok=True)
    remove_snapshot_leftovers(directory)
    if doomed:
        fsync_dir(directory)


def _delete_segment_files(directory: Path, bases: list[int]) -> None:
    for base in bases:
        for path in (
            log_file(directory, base),
            index_file(directory, base),
            time_index_file(directory, base),
        ):
            path.unlink(missing_ok=True)
    fsync_dir(directory)


def _write_producer_snapshot(directory: Path, offset: int) -> None:
    path = producer_snapshot_file(directory, offset)
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    tmp.write_bytes(empty_producer_snapshot())
    os.replace(tmp, path)
    # Older producer snapshots describe the same (empty) producer state; keep the newest.
    for entry in directory.iterdir():
        other = parse_offset_prefix(entry.name, PRODUCER_SNAPSHOT_SUFFIX)
        if other is not None and other < offset:
            entry.unlink(missing_ok=True)


def _delete_producer_snapshots_after(directory: Path, offset: int) -> None:
    for entry in directory.iterdir():
        other = parse_offset_prefix(entry.name, PRODUCER_SNAPSHOT_SUFFIX)
        if other is not None and other > offset:
            entry.unlink(missing_ok=True)
