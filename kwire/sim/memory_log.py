"""An in-memory metadata log for the simulator: real record batch bytes, a durable prefix.

`MemoryLog` answers the consensus core's `LogView` questions (end offset, log start,
latest epoch, end offset of an epoch) from Kafka's leader epoch cache rules
(kwire.log.epoch_cache, as the on-disk `MetadataLog`), and holds every batch as the
encoded v2 bytes a real log would hold, so a controller replays genuine records.

Durability follows the real log's fsync: `append_as_leader` and `append_as_follower` add
batches that are *unflushed* until `flush()`; `crash()` drops whatever was not flushed,
as a kill -9 during the fsync would. A truncation is durable at once (the simulator never
lets a truncated suffix come back). Snapshots are not simulated: the log always starts at
offset 0 and `latest_snapshot_id()` is None.
"""

from __future__ import annotations

from bisect import bisect_right

from kwire.log.epoch_cache import LeaderEpochCache
from kwire.log.snapshots import SnapshotId
from kwire.records import (
    RecordBatch,
    RecordBatchHeader,
    decode_batch,
    iter_batch_headers,
    set_base_offset_and_epoch,
)


class MemoryLogError(ValueError):
    """An append the log refuses: empty, non-contiguous, or a truncation below its start."""


class StoredBatch:
    """One batch as the log holds it: offsets [base_offset, last_offset], its leader
    epoch, and its encoded bytes (base offset and epoch stamped in). Immutable; decoded
    once, when first asked."""

    __slots__ = ("base_offset", "last_offset", "epoch", "data", "_decoded")

    def __init__(self, base_offset: int, last_offset: int, epoch: int, data: bytes) -> None:
        self.base_offset = base_offset
        self.last_offset = last_offset
        self.epoch = epoch
        self.data = data
        self._decoded: RecordBatch | None = None

    def __repr__(self) -> str:
        return f"StoredBatch({self.base_offset}..{self.last_offset}, epoch {self.epoch})"

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    def decode(self) -> RecordBatch:
        if self._decoded is None:
            self._decoded = decode_batch(self.data, verify_crc=False)[0]
        return self._decoded


class MemoryLog:
    """Batches in offset order; `flushed_end` is the durable end offset (exclusive)."""

    def __init__(self) -> None:
        self.batches: list[StoredBatch] = []
        self._bases: list[int] = []
        self._cache = LeaderEpochCache()
        self.flushed_end = 0
        self.high_watermark = 0

    # -- LogView ------------------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        return self.batches[-1].next_offset if self.batches else 0

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def latest_epoch(self) -> int | None:
        return self._cache.latest_epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """(largest epoch <= `epoch`, its end offset), as Kafka's LeaderEpochFileCache."""
        return self._cache.end_offset_for(epoch, self.end_offset)

    def latest_snapshot_id(self) -> SnapshotId | None:
        return None

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return None

    def epoch_for_offset(self, offset: int) -> int | None:
        return self._cache.epoch_for_offset(offset)

    # -- appends --------------------------------------------------------------------------------

    def append_as_leader(self, data: bytes, epoch: int) -> tuple[int, int]:
        """Append batches, giving them offsets from the end and `epoch` as their leader
        epoch; returns (first offset, last offset). Unflushed until `flush()`."""
        buf = bytearray(data)
        headers = self._headers(buf)
        next_offset = self.end_offset
        placed: list[tuple[int, int, int, int]] = []
        for pos, header in headers:
            set_base_offset_and_epoch(buf, pos, next_offset, epoch)
            placed.append((pos, header.size_in_bytes, next_offset, header.last_offset_delta))
            next_offset += header.last_offset_delta + 1
        first = self.end_offset
        for pos, size, base, delta in placed:
            self._add(StoredBatch(base, base + delta, epoch, bytes(buf[pos : pos + size])))
        return first, next_offset - 1

    def append_as_follower(self, data: bytes) -> tuple[int, int]:
        """Append batches replicated from a leader; they must start at the end offset and
        be contiguous (MemoryLogError otherwise, nothing appended)."""
        headers = self._headers(data)
        expected = self.end_offset
        for pos, header in headers:
            if header.base_offset != expected:
                raise MemoryLogError(
                    f"batch at byte {pos} has base offset {header.base_offset}, expected {expected}"
                )
            expected = header.last_offset + 1
        first = self.end_offset
        for pos, header in headers:
            batch = StoredBatch(
                header.base_offset,
                header.last_offset,
                header.partition_leader_epoch,
                bytes(data[pos : pos + header.size_in_bytes]),
            )
            self._add(batch)
        return first, expected - 1

    def _headers(self, data: bytes | bytearray) -> list[tuple[int, RecordBatchHeader]]:
        headers = list(iter_batch_headers(data, verify_crc=True))
        if not headers:
            raise MemoryLogError("attempt to append an empty record set")
        return headers

    def _add(self, batch: StoredBatch) -> None:
        self.batches.append(batch)
        self._bases.append(batch.base_offset)
        if batch.epoch >= 0:
            self._cache.assign(batch.epoch, batch.base_offset)

    def flush(self) -> None:
        """Everything appended so far is durable."""
        self.flushed_end = self.end_offset

    # -- truncation and crashes -----------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Remove the batch holding `offset` and everything after; returns the new end."""
        if offset < 0:
            raise MemoryLogError(f"cannot truncate to {offset}")
        if offset >= self.end_offset:
            return self.end_offset
        keep = bisect_right(self._bases, offset)
        if keep and self.batches[keep - 1].last_offset >= offset:
            keep -= 1
        del self.batches[keep:]
        del self._bases[keep:]
        end = self.end_offset
        self._cache.truncate_from_end(end)
        self.flushed_end = min(self.flushed_end, end)
        self.high_watermark = min(self.high_watermark, end)
        return end

    def crash(self) -> int:
        """A kill -9: whatever was not flushed is gone. Returns how many offsets were lost."""
        lost = self.end_offset - self.flushed_end
        self.truncate_to(self.flushed_end)
        self.high_watermark = 0  # a restarted node re-learns it
        return lost

    # -- reads ----------------------------------------------------------------------------------

    def batch_index(self, offset: int) -> int:
        """Index in `batches` of the batch holding `offset` (-1 when none does)."""
        index = bisect_right(self._bases, offset) - 1
        if index < 0 or self.batches[index].last_offset < offset:
            return -1
        return index

    def read(self, start_offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `start_offset`: at most `max_bytes`, but
        always at least one batch (b"" at or past the end)."""
        index = self.batch_index(start_offset)
        if index < 0:
            return b""
        out = bytearray(self.batches[index].data)
        for batch in self.batches[index + 1 :]:
            if len(out) + len(batch.data) > max_bytes:
                break
            out += batch.data
        return bytes(out)

    def batches_between(self, start: int, end: int) -> list[StoredBatch]:
        """The batches holding any offset in [start, end)."""
        if start >= end:
            return []
        index = max(bisect_right(self._bases, start) - 1, 0)
        out: list[StoredBatch] = []
        for batch in self.batches[index:]:
            if batch.base_offset >= end:
                break
            if batch.last_offset >= start:
                out.append(batch)
        return out
