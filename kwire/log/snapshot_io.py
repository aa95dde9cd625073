"""Writing and reading KRaft snapshot files (KIP-630) as Kafka 3.9 lays them out.

A snapshot ``<end offset>-<epoch>.checkpoint`` holds the state of the metadata log up
to, and excluding, ``end offset``. Its bytes, as Kafka's RecordsSnapshotWriter and
BatchAccumulator write them:

- offset 0: a control batch with the SnapshotHeaderRecord (version 0, the timestamp of
  the last batch the snapshot covers); with ``kraft.version`` >= 1 the KRaftVersionRecord
  and VotersRecord follow in the same batch (``kraft_records``, built by
  ``kwire.raft.voter_set.kraft_control_values``);
- the metadata records, framed as in the log, handed over in chunks of 1,024 (Kafka's
  SnapshotEmitter batch size) and packed into batches of at most 8 MiB (MAX_BATCH_SIZE_BYTES;
  the accumulator lingers forever, so a batch closes only when the next chunk does not
  fit); uncompressed, as KafkaRaftClient.createSnapshot builds its writer;
- a control batch with the SnapshotFooterRecord (version 0).

Every batch carries the snapshot's epoch as its partition leader epoch and the time it
was written. The file is written to a ``.checkpoint.part`` and renamed only after fsync:
a crash while writing leaves a partial file that the next open removes.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kwire.log.metadata_reader import batch_metadata_records
from kwire.log.snapshots import SnapshotId, create_partial_snapshot, freeze_snapshot, snapshot_path
from kwire.protocol._codec import Message
from kwire.protocol.messages.control.snapshot_footer_record import SnapshotFooterRecord
from kwire.protocol.messages.control.snapshot_header_record import SnapshotHeaderRecord
from kwire.records import (
    LOG_OVERHEAD,
    MAX_BATCH_SIZE_BYTES,
    RECORD_BATCH_OVERHEAD,
    ControlRecordType,
    Record,
    build_batch,
    check_batch_crc,
    decode_batch,
    decode_batches,
    decode_control_record_key,
    encode_batch,
    encode_control_record_key,
    encode_records,
    plain_record_size,
    read_batch_header,
)
from kwire.records.errors import CorruptRecordError

SNAPSHOT_EMITTER_BATCH_SIZE = 1024  # records per append (Kafka's SnapshotEmitter)
SNAPSHOT_HEADER_VERSION = 0  # ControlRecordUtils.SNAPSHOT_HEADER_CURRENT_VERSION
SNAPSHOT_FOOTER_VERSION = 0  # ControlRecordUtils.SNAPSHOT_FOOTER_CURRENT_VERSION
# The largest batch a snapshot reader accepts: a chunk of SNAPSHOT_EMITTER_BATCH_SIZE
# records may exceed MAX_BATCH_SIZE_BYTES alone (see _data_batches); bounded all the same.
MAX_SNAPSHOT_BATCH_BYTES = 1 << 30


class SnapshotFormatError(ValueError):
    """A snapshot file that does not open with its header or end with its footer."""


@dataclass(frozen=True, slots=True)
class SnapshotContents:
    """What a snapshot file holds: its header's timestamp and the framed metadata
    records, in file order (the control records are not among them)."""

    snapshot_id: SnapshotId
    last_contained_log_timestamp: int
    values: list[bytes]


def _control_batch(
    kind: ControlRecordType,
    value: bytes,
    base_offset: int,
    epoch: int,
    now_ms: int,
    more: Sequence[tuple[ControlRecordType, bytes]] = (),
) -> bytes:
    records = [
        Record(offset_delta=delta, key=encode_control_record_key(k), value=v)
        for delta, (k, v) in enumerate([(kind, value), *more])
    ]
    return encode_batch(
        build_batch(
            records,
            base_offset=base_offset,
            base_timestamp=now_ms,
            partition_leader_epoch=epoch,
            control=True,
        )
    )


def _data_batches(
    values: Sequence[bytes], first_offset: int, epoch: int, now_ms: int
) -> Iterator[bytes]:
    """Chunks of SNAPSHOT_EMITTER_BATCH_SIZE records packed into batches of at most
    MAX_BATCH_SIZE_BYTES; a chunk that alone exceeds it gets a batch of its own (Kafka
    then fails the write: RecordBatchTooLargeException; kwire lets the log reader
    decide, which reads batches of any size)."""
    for steps in _data_batch_steps(values, first_offset, epoch, now_ms):
        yield drive(steps)


def _data_batch_steps(
    values: Sequence[bytes], first_offset: int, epoch: int, now_ms: int
) -> Iterator[Generator[None, None, bytes]]:
    """`_data_batches`, each batch as the steps that encode it (`_encode_data_steps`)."""
    pending: list[bytes] = []
    size = RECORD_BATCH_OVERHEAD
    offset = first_offset
    for start in range(0, len(values), SNAPSHOT_EMITTER_BATCH_SIZE):
        chunk = values[start : start + SNAPSHOT_EMITTER_BATCH_SIZE]
        grown = size + sum(plain_record_size(len(pending) + i, len(v)) for i, v in enumerate(chunk))
        if pending and grown > MAX_BATCH_SIZE_BYTES:
            yield _encode_data_steps(pending, offset, epoch, now_ms)
            offset += len(pending)
            pending = []
            grown = RECORD_BATCH_OVERHEAD + sum(
                plain_record_size(i, len(v)) for i, v in enumerate(chunk)
            )
        pending.extend(chunk)
        size = grown
    if pending:
        yield _encode_data_steps(pending, offset, epoch, now_ms)


T = TypeVar("T")
ENCODE_SLICE = 8192  # records encoded per step of a batch's encoding


def _encode_data_steps(
    values: list[bytes], base_offset: int, epoch: int, now_ms: int
) -> Generator[None, None, bytes]:
    """The bytes of a batch of ``values`` (uncompressed, at ``base_offset``), its records
    encoded ENCODE_SLICE at a time (a yield after each slice): the records' encodings
    simply follow one another."""
    records: list[Record] = []
    payload = bytearray()
    for start in range(0, len(values), ENCODE_SLICE):
        piece = [
            Record(offset_delta=i, value=values[i])
            for i in range(start, min(start + ENCODE_SLICE, len(values)))
        ]
        payload += encode_records(piece)
        records += piece
        yield
    batch = build_batch(
        records, base_offset=base_offset, base_timestamp=now_ms, partition_leader_epoch=epoch
    )
    return encode_batch(batch, records_bytes=bytes(payload))


def write_snapshot(
    directory: Path,
    snapshot_id: SnapshotId,
    values: Sequence[bytes],
    *,
    last_contained_log_timestamp: int,
    now_ms: int,
    kraft_records: Sequence[tuple[ControlRecordType, bytes]] = (),
) -> Path:
    """Write ``values`` (framed metadata records) as snapshot ``snapshot_id`` and return
    the frozen file's path. ``kraft_records`` (control type, value) follow the header in
    its batch: a kraft.version 1 quorum's KRaftVersionRecord and VotersRecord. Raises
    FileExistsError if that snapshot exists (Kafka's createNewSnapshotUnchecked then
    writes nothing) and OSError on an I/O error, after removing the partial file."""
    steps = write_snapshot_steps(
        directory,
        snapshot_id,
        values,
        last_contained_log_timestamp=last_contained_log_timestamp,
        now_ms=now_ms,
        kraft_records=kraft_records,
    )
    return drive(steps)


def drive(steps: Generator[None, None, T]) -> T:
    """Run stepwise work (`write_snapshot_steps`) to its end at once; what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def write_snapshot_steps(
    directory: Path,
    snapshot_id: SnapshotId,
    values: Sequence[bytes],
    *,
    last_contained_log_timestamp: int,
    now_ms: int,
    kraft_records: Sequence[tuple[ControlRecordType, bytes]] = (),
) -> Generator[None, None, Path]:
    """`write_snapshot` a batch at a time: the generator yields after each batch it
    wrote (at most MAX_BATCH_SIZE_BYTES of records encoded) and returns the frozen
    file's path; the bytes are those `write_snapshot` writes. Closing it before the end
    removes the partial file. Errors as `write_snapshot`."""
    if snapshot_path(directory, snapshot_id).exists():
        raise FileExistsError(snapshot_path(directory, snapshot_id))
    epoch = snapshot_id.epoch
    partial = create_partial_snapshot(directory, snapshot_id)
    try:
        with open(partial, "wb") as out:
            header = SnapshotHeaderRecord(
                version=SNAPSHOT_HEADER_VERSION,
                last_contained_log_timestamp=last_contained_log_timestamp,
            )
            out.write(
                _control_batch(
                    ControlRecordType.SNAPSHOT_HEADER,
                    header.encode(0),
                    0,
                    epoch,
                    now_ms,
                    kraft_records,
                )
            )
            offset = 1 + len(kraft_records)
            for batch_steps in _data_batch_steps(values, offset, epoch, now_ms):
                out.write((yield from batch_steps))
                yield
            offset += len(values)
            footer = SnapshotFooterRecord(version=SNAPSHOT_FOOTER_VERSION)
            out.write(
                _control_batch(
                    ControlRecordType.SNAPSHOT_FOOTER, footer.encode(0), offset, epoch, now_ms
                )
            )
            out.flush()
        return freeze_snapshot(partial, snapshot_id)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_snapshot(directory: Path, snapshot_id: SnapshotId) -> SnapshotContents:
    """Read and check a frozen snapshot: CRCs, a header first, a footer last (Kafka's
    RecordsSnapshotReader and the loader's checks). Raises SnapshotFormatError (or
    CorruptRecordError, a ValueError) on anything else, FileNotFoundError if absent."""
    data = snapshot_path(directory, snapshot_id).read_bytes()
    timestamp: int | None = None
    footer_seen = False
    values: list[bytes] = []
    for batch in decode_batches(data, verify_crc=True):
        if footer_seen:
            raise SnapshotFormatError(f"{snapshot_id}: records after the snapshot footer")
        if batch.is_control:
            for record in batch.records:
                kind = decode_control_record_key(record.key or b"").type
                if kind == ControlRecordType.SNAPSHOT_HEADER:
                    if timestamp is not None or values:
                        raise SnapshotFormatError(f"{snapshot_id}: a header not at the start")
                    header = SnapshotHeaderRecord.decode(record.value or b"", 0)
                    timestamp = header.last_contained_log_timestamp
                elif kind == ControlRecordType.SNAPSHOT_FOOTER:
                    footer_seen = True
            continue
        if timestamp is None:
            raise SnapshotFormatError(f"{snapshot_id}: records before the snapshot header")
        values.extend(record.value or b"" for record in batch.records)
    if timestamp is None or not footer_seen:
        raise SnapshotFormatError(
            f"{snapshot_id}: the snapshot has no {'header' if timestamp is None else 'footer'}"
        )
    return SnapshotContents(snapshot_id, timestamp, values)


def read_last_contained_log_timestamp(directory: Path, snapshot_id: SnapshotId) -> int:
    """The header's lastContainedLogTimestamp (Kafka's Snapshots.lastContainedLogTimestamp),
    read from the first batch only."""
    path = snapshot_path(directory, snapshot_id)
    with open(path, "rb") as f:
        head = f.read(RECORD_BATCH_OVERHEAD)
        if len(head) < RECORD_BATCH_OVERHEAD:
            raise SnapshotFormatError(f"{snapshot_id}: shorter than a batch")
        length = int.from_bytes(head[8:12], "big", signed=True)
        if not 0 < length <= MAX_BATCH_SIZE_BYTES:
            raise CorruptRecordError(f"snapshot {snapshot_id}: batch length {length}", 0)
        first = head + f.read(length + 12 - RECORD_BATCH_OVERHEAD)
    batch = next(decode_batches(first, verify_crc=True))
    if not batch.is_control or not batch.records:
        raise SnapshotFormatError(f"{snapshot_id}: the first batch is not the header")
    record = batch.records[0]
    if decode_control_record_key(record.key or b"").type != ControlRecordType.SNAPSHOT_HEADER:
        raise SnapshotFormatError(f"{snapshot_id}: the first record is not the header")
    return SnapshotHeaderRecord.decode(record.value or b"", 0).last_contained_log_timestamp


def snapshot_size(directory: Path, snapshot_id: SnapshotId) -> int:
    return os.path.getsize(snapshot_path(directory, snapshot_id))


def read_snapshot_slice(
    directory: Path, snapshot_id: SnapshotId, position: int, max_bytes: int
) -> bytes:
    """Bytes ``[position, position + max_bytes)`` of the snapshot file, not aligned to
    batches (Kafka's FileRawSnapshotReader.slice, as FetchSnapshot sends them)."""
    with open(snapshot_path(directory, snapshot_id), "rb") as f:
        f.seek(position)
        return f.read(max_bytes)


def iter_snapshot_records(
    directory: Path, snapshot_id: SnapshotId
) -> Iterator[list[tuple[int, Message, int]]]:
    """The metadata records of a frozen snapshot, a batch at a time, each as (offset,
    message, version): the file is read batch by batch, never whole. The checks of
    ``read_snapshot`` apply as the batches come (CRCs, the header first, records only
    between header and footer); a snapshot without its footer raises after its last
    batch, so a caller loading it must discard what it loaded. Raises SnapshotFormatError,
    CorruptRecordError or DecodeError (ValueErrors), FileNotFoundError if absent."""
    header_seen = False
    footer_seen = False
    with open(snapshot_path(directory, snapshot_id), "rb") as f:
        position = 0
        while head := f.read(LOG_OVERHEAD):
            if len(head) < LOG_OVERHEAD:
                raise CorruptRecordError(f"snapshot {snapshot_id}: a truncated batch", position)
            length = int.from_bytes(head[8:12], "big", signed=True)
            if not RECORD_BATCH_OVERHEAD - LOG_OVERHEAD <= length <= MAX_SNAPSHOT_BATCH_BYTES:
                raise CorruptRecordError(f"snapshot {snapshot_id}: batch length {length}", position)
            data = head + f.read(length)
            header = read_batch_header(data)
            check_batch_crc(data, 0, header)
            if footer_seen:
                raise SnapshotFormatError(f"{snapshot_id}: records after the snapshot footer")
            if header.is_control:
                batch, _ = decode_batch(data, verify_crc=False)
                for record in batch.records:
                    kind = decode_control_record_key(record.key or b"").type
                    if kind == ControlRecordType.SNAPSHOT_HEADER:
                        if header_seen:
                            raise SnapshotFormatError(f"{snapshot_id}: a header not at the start")
                        header_seen = True
                    elif kind == ControlRecordType.SNAPSHOT_FOOTER:
                        footer_seen = True
            elif not header_seen:
                raise SnapshotFormatError(f"{snapshot_id}: records before the snapshot header")
            else:
                yield batch_metadata_records(data, 0, header)
            position += len(data)
    if not header_seen or not footer_seen:
        raise SnapshotFormatError(
            f"{snapshot_id}: the snapshot has no {'footer' if header_seen else 'header'}"
        )
