"""A metadata log directory read for ``kwire history``: its batches, its snapshots, and the
image at any end offset the directory can still rebuild.

The directory is only read: no recovery, no index, no lock (a running controller's
directory can be read while it writes; a torn batch at the tail ends the log there).

Rules:
- ``image_at(n)`` is the image after every record below ``n`` (an *end offset*, as a
  snapshot ``<n>-<epoch>.checkpoint`` holds every record below ``n``). It loads the newest
  snapshot whose end offset is at most ``n`` and replays the log from there, through
  kwire's ImageLoader; with no such snapshot, the log from offset 0. As Kafka's
  MetadataLoader publishes it: an aborted metadata transaction leaves nothing, and the
  records of one still open at ``n`` are left out (``LoadedImage.open_transaction`` says
  where it began).
- An end offset is unavailable, with a message saying why (HistoryUnavailable), when it is
  above the log's end, or when the log was cleaned below it (the log starts above 0 or the
  snapshot's end) and no snapshot kept ends at or below it.
- Batches are read one at a time, each at most MAX_LOG_BATCH_BYTES; a batch that fails its
  CRC or does not decode stops the reading with CorruptRecordError / DecodeError /
  ValueError naming the file and position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.controller.transactions import discard_open_transaction
from kwire.log.metadata_reader import MetadataEntry, batch_metadata_records
from kwire.log.snapshot_io import iter_snapshot_records
from kwire.log.snapshots import SnapshotId, list_snapshots
from kwire.protocol.messages.index import CONTROL_RECORDS
from kwire.records import LOG_OVERHEAD, RECORD_BATCH_OVERHEAD
from kwire.records.batch import check_batch_crc, decode_batch, read_batch_header
from kwire.records.control import ControlRecordType, decode_control_record_key
from kwire.records.errors import CorruptRecordError

__all__ = ["HistoryUnavailable", "LoadedImage", "LoggedBatch", "MetadataDirectory"]

PARTITION_DIR = "__cluster_metadata-0"
# The largest log batch read (Kafka's KafkaRaftClient appends batches of at most 8 MiB).
MAX_LOG_BATCH_BYTES = 64 * 1024 * 1024


class HistoryUnavailable(ValueError):
    """The directory cannot rebuild what was asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class LoggedBatch:
    """One data batch of the log: offsets, leader epoch, append time (the batch's max
    timestamp, ms since the epoch, as kafka-dump-log prints CreateTime) and records."""

    base_offset: int
    last_offset: int
    epoch: int
    timestamp_ms: int
    records: list[MetadataEntry]
    # A control batch of the raft layer (records: LeaderChangeMessage, KRaftVersionRecord,
    # VotersRecord), only from ``batches(..., control=True)``.
    is_control: bool = False


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An image and how it was built: from snapshot ``snapshot`` (None: from the log's
    start) and then the log up to ``end_offset``."""

    image: MetadataImage
    end_offset: int
    snapshot: SnapshotId | None
    # The offset of the BeginTransactionRecord of a metadata transaction still open at
    # ``end_offset``, whose records the image leaves out (-1: none).
    open_transaction: int = -1


class MetadataDirectory:
    """``path`` is a ``__cluster_metadata-0`` directory or a log directory holding one."""

    def __init__(self, path: Path) -> None:
        if (path / PARTITION_DIR).is_dir():
            path = path / PARTITION_DIR
        if not path.is_dir():
            raise HistoryUnavailable(f"{path} is not a directory")
        self.path = path
        self.segments = sorted(p for p in path.iterdir() if p.suffix == ".log" and p.stem.isdigit())
        self.snapshots: list[SnapshotId] = list_snapshots(path)
        if not self.segments and not self.snapshots:
            raise HistoryUnavailable(f"{path} holds no metadata log segment and no snapshot")
        self._end: int | None = None

    @property
    def log_start_offset(self) -> int:
        """The first offset the segments hold (the first segment's base offset)."""
        return int(self.segments[0].stem) if self.segments else self.end_offset

    @property
    def end_offset(self) -> int:
        """The offset after the last complete batch (or the newest snapshot's end)."""
        if self._end is None:
            end = self.snapshots[-1].end_offset if self.snapshots else 0
            if self.segments:  # a segment just rolled is empty: the log ends at its base
                end = max(end, int(self.segments[-1].stem))
            for segment in self.segments[-1:]:
                for _, _, next_offset, _ in _batches(segment, start=None):
                    end = max(end, next_offset)
            self._end = end
        return self._end

    def batches(
        self, start: int = 0, end: int | None = None, *, control: bool = False
    ) -> Iterator[LoggedBatch]:
        """The data batches holding offsets in ``[start, end)``, oldest first, and with
        ``control`` the control batches too; records outside the range are left out of
        the first and last batch. Segments wholly below ``start`` are not opened, and
        batches below it are not decoded."""
        bases = [int(p.stem) for p in self.segments]
        for index, segment in enumerate(self.segments):
            if index + 1 < len(bases) and bases[index + 1] <= start:
                continue
            for header, base, next_offset, entries in _batches(
                segment, start=start, control=control
            ):
                if end is not None and base >= end:
                    return
                if entries is None:
                    continue
                kept = [e for e in entries if e[0] >= start and (end is None or e[0] < end)]
                epoch, timestamp, is_control = header
                yield LoggedBatch(base, next_offset - 1, epoch, timestamp, kept, is_control)

    def snapshot_records(self, snapshot: SnapshotId) -> Iterator[list[MetadataEntry]]:
        """The records of a kept snapshot, a batch at a time."""
        return iter_snapshot_records(self.path, snapshot)

    def image_at(self, end_offset: int, *, use_snapshots: bool = True) -> LoadedImage:
        """The image after every record below ``end_offset`` (see the module's rules);
        ``use_snapshots=False`` replays the log from offset 0 only."""
        if end_offset < 0:
            raise HistoryUnavailable(f"offset {end_offset} is negative")
        if end_offset > self.end_offset:
            raise HistoryUnavailable(
                f"offset {end_offset} is beyond the end of the log ({self.end_offset})"
            )
        candidates = [s for s in self.snapshots if s.end_offset <= end_offset]
        base = candidates[-1] if candidates and use_snapshots else None
        replay_from = base.end_offset if base is not None else 0
        if self.log_start_offset > replay_from and end_offset > replay_from:
            kept = ", ".join(str(s.end_offset) for s in self.snapshots) or "none"
            raise HistoryUnavailable(
                f"the image at offset {end_offset} is unavailable: the log was cleaned below"
                f" offset {self.log_start_offset} and no snapshot kept ends at or below"
                f" {end_offset} (snapshots kept end at: {kept})"
            )
        image = MetadataImage()
        loader = ImageLoader(image)
        if base is not None:
            for batch in self.snapshot_records(base):
                loader.replay_all(batch, base.end_offset - 1)
        for logged in self.batches(replay_from, end_offset):
            loader.replay_all(logged.records)
        loader.finish()
        return LoadedImage(image, end_offset, base, discard_open_transaction(image))

    def history_start(self) -> LoadedImage:
        """Where a timeline can start: the empty image at offset 0 when the log starts
        there, else the oldest snapshot from which the log continues."""
        if self.log_start_offset == 0:
            return LoadedImage(MetadataImage(), 0, None)
        usable = [s for s in self.snapshots if s.end_offset >= self.log_start_offset]
        if not usable:
            raise HistoryUnavailable(
                f"the log starts at offset {self.log_start_offset} and no snapshot kept"
                " reaches it: no history can be rebuilt"
            )
        return self.image_at(usable[0].end_offset)


def _batches(
    segment: Path, *, start: int | None, control: bool = False
) -> Iterator[tuple[tuple[int, int, bool], int, int, list[MetadataEntry] | None]]:
    """((leader epoch, max timestamp, is control), base offset, next offset, records) of
    each complete batch of ``segment``, read one batch at a time. Records are decoded
    (after the CRC check) only for batches ending above ``start`` (``start=None``: none),
    and for control batches only with ``control``."""
    with open(segment, "rb") as f:
        position = 0
        while len(head := f.read(LOG_OVERHEAD)) == LOG_OVERHEAD:
            length = int.from_bytes(head[8:12], "big", signed=True)
            if not RECORD_BATCH_OVERHEAD - LOG_OVERHEAD <= length <= MAX_LOG_BATCH_BYTES:
                raise CorruptRecordError(f"{segment}: batch length {length}", position)
            data = head + f.read(length)
            if len(data) < LOG_OVERHEAD + length:
                return  # a torn tail: the log ends before it
            header = read_batch_header(data)
            info = (header.partition_leader_epoch, header.max_timestamp, header.is_control)
            wanted = start is not None and header.next_offset > start
            entries: list[MetadataEntry] | None = None
            if wanted and (control or not header.is_control):
                check_batch_crc(data, 0, header)
                if header.is_control:
                    entries = _control_records(data)
                else:
                    entries = batch_metadata_records(data, 0, header)
            yield info, header.base_offset, header.next_offset, entries
            position += len(data)


def _control_records(data: bytes) -> list[MetadataEntry]:
    """The raft control records of a control batch that kwire decodes (leader changes,
    kraft.version, voters), each as (offset, message, 0); others are left out."""
    batch, _ = decode_batch(data, verify_crc=False)
    out: list[MetadataEntry] = []
    for record in batch.records:
        kind = decode_control_record_key(record.key or b"").type
        cls = CONTROL_RECORDS.get(int(kind))
        if cls is not None and kind in _TIMELINE_CONTROL:
            out.append(
                (batch.base_offset + record.offset_delta, cls.decode(record.value or b"", 0), 0)
            )
    return out


_TIMELINE_CONTROL = frozenset(
    {
        ControlRecordType.LEADER_CHANGE,
        ControlRecordType.KRAFT_VERSION,
        ControlRecordType.KRAFT_VOTERS,
    }
)
