"""The replayed node's log: a LogView over a list of record batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kwire.log.snapshots import SnapshotId
from kwire.records.batch import iter_batch_headers


class ReplayDiverged(Exception):
    """kwire took a path the genuine traffic can no longer feed (the replay stops there)."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    base_offset: int
    next_offset: int
    epoch: int
    raw: bytes


class ReplayLog:
    """A LogView over a list of record batches, as the replayed node holds them."""

    def __init__(self, snapshot: SnapshotId | None = None) -> None:
        self.batches: list[StoredBatch] = []
        self.snapshot = snapshot  # the bootstrap snapshot a dynamic quorum's format writes

    @property
    def end_offset(self) -> int:
        return self.batches[-1].next_offset if self.batches else 0

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def latest_epoch(self) -> int | None:
        if self.batches:
            return self.batches[-1].epoch
        return None if self.snapshot is None else self.snapshot.epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """Kafka's LeaderEpochFileCache.endOffsetFor: the largest epoch <= `epoch` and
        where it ends (the next epoch's start, or the log end); None if unknown."""
        if epoch < 0 or not self.batches:
            return None
        starts: list[tuple[int, int]] = []  # (epoch, start offset)
        for batch in self.batches:
            if not starts or starts[-1][0] != batch.epoch:
                starts.append((batch.epoch, batch.base_offset))
        if starts[-1][0] == epoch:
            return epoch, self.end_offset
        later = [i for i, (e, _) in enumerate(starts) if e > epoch]
        if not later:
            return None
        if later[0] == 0:
            return epoch, starts[0][1]
        return starts[later[0] - 1][0], starts[later[0]][1]

    def latest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshot

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshot

    def append(self, records: bytes) -> int:
        """Append whole batches that start at the end offset; the new end offset."""
        for pos, header in iter_batch_headers(records):
            if header.base_offset != self.end_offset:
                raise ReplayDiverged(
                    f"asked to append a batch at offset {header.base_offset} to a log that "
                    f"ends at {self.end_offset}"
                )
            raw = bytes(records[pos : pos + header.size_in_bytes])
            self.batches.append(
                StoredBatch(
                    header.base_offset, header.next_offset, header.partition_leader_epoch, raw
                )
            )
        return self.end_offset

    def truncate_to(self, offset: int) -> None:
        assert all(b.base_offset >= offset or b.next_offset <= offset for b in self.batches)
        self.batches = [b for b in self.batches if b.next_offset <= offset]

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset`, at least one, up to `max_bytes`."""
        out = bytearray()
        for batch in self.batches:
            if batch.next_offset <= offset:
                continue
            if out and len(out) + len(batch.raw) > max_bytes:
                break
            out += batch.raw
        return bytes(out)


def read_segment(path: Path) -> list[StoredBatch]:
    """The batches of a genuine log segment (`<dir>/__cluster_metadata-0/<offset>.log`)."""
    data = path.read_bytes()
    return [
        StoredBatch(
            header.base_offset,
            header.next_offset,
            header.partition_leader_epoch,
            data[pos : pos + header.size_in_bytes],
        )
        for pos, header in iter_batch_headers(data)
    ]
