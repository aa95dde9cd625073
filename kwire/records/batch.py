"""Record batches, magic v2 (Kafka's DefaultRecordBatch / DefaultRecord layout).

Batch header (big-endian), 61 bytes::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
    crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
    maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
    recordsCount int32

``batchLength`` counts everything after itself; the CRC-32C covers attributes to the end,
so base offset and partition leader epoch can be rewritten without recomputing it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import crcmod.predefined

from kwire.records.compression import (
    DEFAULT_MAX_UNCOMPRESSED_SIZE,
    CompressionType,
    compress,
    decompress,
)
from kwire.records.errors import CorruptRecordError, IncompleteBatchError
from kwire.records.varint import (
    BytesLike,
    read_varint,
    read_varlong,
    write_varint,
    write_varlong,
)

crc32c: Callable[[BytesLike], int]
try:  # the same CRC-32C, hardware-accelerated (about 300x crcmod's), where installed
    from crc32c import crc32c
except ImportError:  # pragma: no cover - crcmod alone
    crc32c = crcmod.predefined.mkCrcFun("crc-32c")

MAGIC_V2 = 2
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part batchLength does not count
RECORD_BATCH_OVERHEAD = 61
# The largest batch a KRaft leader appends (KafkaRaftClient.MAX_BATCH_SIZE_BYTES).
MAX_BATCH_SIZE_BYTES = 8 * 1024 * 1024
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21  # start of the CRC-covered region
PARTITION_LEADER_EPOCH_OFFSET = 12

NO_PARTITION_LEADER_EPOCH = -1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_TIMESTAMP = -1

COMPRESSION_CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG_MASK = 0x10
CONTROL_FLAG_MASK = 0x20
DELETE_HORIZON_FLAG_MASK = 0x40

_HEADER = struct.Struct(">qiibIhiqqqhii")
_UINT32 = struct.Struct(">I")
_EPOCH = struct.Struct(">i")
_BASE_OFFSET = struct.Struct(">q")


class TimestampType(IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


def batch_attributes(
    *,
    compression: CompressionType = CompressionType.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    transactional: bool = False,
    control: bool = False,
    delete_horizon: bool = False,
) -> int:
    """The int16 attributes word for the given flags."""
    attrs = int(compression) & COMPRESSION_CODEC_MASK
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attrs |= TIMESTAMP_TYPE_MASK
    if transactional:
        attrs |= TRANSACTIONAL_FLAG_MASK
    if control:
        attrs |= CONTROL_FLAG_MASK
    if delete_horizon:
        attrs |= DELETE_HORIZON_FLAG_MASK
    return attrs


class _AttributeFlags:
    """Attribute-derived properties shared by the header and the decoded batch."""

    __slots__ = ()
    attributes: int

    @property
    def compression(self) -> CompressionType:
        codec = self.attributes & COMPRESSION_CODEC_MASK
        try:
            return CompressionType(codec)
        except ValueError:
            raise CorruptRecordError(f"unknown compression codec id {codec}") from None

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType((self.attributes & TIMESTAMP_TYPE_MASK) >> 3)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_FLAG_MASK)


@dataclass(slots=True, frozen=True, kw_only=True)
class RecordBatchHeader(_AttributeFlags):
    """Every field of the 61-byte v2 batch header, as stored."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size_in_bytes(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


# Not frozen: frozen dataclass construction costs ~1 us more per record, which is most
# of the decode budget for a large metadata log.
@dataclass(slots=True, kw_only=True)
class Record:
    """One record; offset and timestamp are deltas from the batch's base values."""

    offset_delta: int
    timestamp_delta: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    attributes: int = 0  # unused by Kafka, kept so re-encoding is exact


@dataclass(slots=True, frozen=True, kw_only=True)
class RecordBatch(_AttributeFlags):
    """A decoded batch. Length, CRC, magic and record count are derived when encoding."""

    base_offset: int = 0
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH
    attributes: int = 0
    last_offset_delta: int = 0
    base_timestamp: int = NO_TIMESTAMP
    max_timestamp: int = NO_TIMESTAMP
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    base_sequence: int = NO_SEQUENCE
    records: tuple[Record, ...] = ()

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def delete_horizon_ms(self) -> int | None:
        return self.base_timestamp if self.has_delete_horizon else None

    def offset_of(self, record: Record) -> int:
        return self.base_offset + record.offset_delta

    def timestamp_of(self, record: Record) -> int:
        if self.timestamp_type == TimestampType.LOG_APPEND_TIME:
            return self.max_timestamp
        return self.base_timestamp + record.timestamp_delta


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    base_timestamp: int,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    compression: CompressionType = CompressionType.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    transactional: bool = False,
    control: bool = False,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> RecordBatch:
    """A batch with lastOffsetDelta and maxTimestamp derived as Kafka's builder does."""
    if not records:
        raise ValueError("a batch needs at least one record")
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        max_timestamp = base_timestamp
    else:
        max_timestamp = base_timestamp + max(r.timestamp_delta for r in records)
    return RecordBatch(
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=batch_attributes(
            compression=compression,
            timestamp_type=timestamp_type,
            transactional=transactional,
            control=control,
        ),
        last_offset_delta=records[-1].offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records=tuple(records),
    )


# ---------------------------------------------------------------- encoding


def _zigzag_size(value: int) -> int:
    """Bytes of a non-negative ``value`` written by write_varint."""
    zigzag, size = value << 1, 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _encode_record(out: bytearray, r: Record) -> None:
    value = r.value
    if (
        value is not None
        and r.key is None
        and not r.headers
        and r.attributes == 0
        and r.timestamp_delta == 0
        and 0 <= r.offset_delta < 0x100000
    ):
        # A keyless, headerless record (every metadata record): written straight into
        # ``out``, its length known beforehand, without an intermediate body. Offset
        # deltas take up to 3 varint bytes (a snapshot's 8 MiB batches reach 100,000+).
        delta = r.offset_delta << 1  # zigzag of a non-negative int32
        size = len(value)
        size_bytes = _zigzag_size(size)
        # attributes, timestamp delta 0, the offset delta, a null key
        if delta < 0x80:
            head = bytes((0, 0, delta, 1))
        elif delta < 0x4000:
            head = bytes((0, 0, (delta & 0x7F) | 0x80, delta >> 7, 1))
        else:
            head = bytes(
                (0, 0, (delta & 0x7F) | 0x80, ((delta >> 7) & 0x7F) | 0x80, delta >> 14, 1)
            )
        write_varint(out, len(head) + 1 + size_bytes + size)
        out += head
        write_varint(out, size)
        out += value
        out.append(0)  # no headers
        return
    _encode_any_record(out, r)


def _encode_any_record(out: bytearray, r: Record) -> None:
    body = bytearray()
    body.append(r.attributes & 0xFF)
    write_varlong(body, r.timestamp_delta)
    write_varint(body, r.offset_delta)
    for blob in (r.key, r.value):
        if blob is None:
            body.append(1)  # zigzag(-1)
        else:
            write_varint(body, len(blob))
            body += blob
    write_varint(body, len(r.headers))
    for hkey, hvalue in r.headers:
        raw = hkey.encode("utf-8")
        write_varint(body, len(raw))
        body += raw
        if hvalue is None:
            body.append(1)
        else:
            write_varint(body, len(hvalue))
            body += hvalue
    write_varint(out, len(body))
    out += body


def encode_records(records: Sequence[Record]) -> bytes:
    """The concatenated, uncompressed record encodings (the payload that gets compressed)."""
    out = bytearray()
    for r in records:
        _encode_record(out, r)
    return bytes(out)


def encode_batch(
    batch: RecordBatch, *, compression_level: int | None = None, records_bytes: bytes | None = None
) -> bytes:
    """Serialize ``batch`` with a freshly computed length and CRC. ``records_bytes``:
    `encode_records(batch.records)` when the caller already has it (e.g. encoded a slice
    at a time), which is then not encoded again."""
    payload = encode_records(batch.records) if records_bytes is None else records_bytes
    codec = batch.compression
    if codec != CompressionType.NONE:
        payload = compress(codec, payload, compression_level)
    size = RECORD_BATCH_OVERHEAD + len(payload)
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        batch.base_offset,
        size - LOG_OVERHEAD,
        batch.partition_leader_epoch,
        MAGIC_V2,
        0,
        batch.attributes,
        batch.last_offset_delta,
        batch.base_timestamp,
        batch.max_timestamp,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        len(batch.records),
    )
    out[RECORD_BATCH_OVERHEAD:] = payload
    _UINT32.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)


def set_base_offset_and_epoch(
    buf: bytearray, pos: int, base_offset: int, partition_leader_epoch: int
) -> None:
    """Rewrite in place the two fields a leader assigns; both lie outside the CRC."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)
    _EPOCH.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, partition_leader_epoch)


# ---------------------------------------------------------------- decoding


def read_batch_header(buf: BytesLike, pos: int = 0) -> RecordBatchHeader:
    """Parse and sanity-check the header at ``pos``; the CRC is not checked here.

    Raises :class:`IncompleteBatchError` if the buffer ends before the batch does.
    """
    view = memoryview(buf)
    avail = len(view) - pos
    if pos < 0 or avail < LOG_OVERHEAD:
        raise IncompleteBatchError("truncated batch: fewer than 12 bytes left", pos)
    batch_length = _EPOCH.unpack_from(view, pos + 8)[0]
    if batch_length < RECORD_BATCH_OVERHEAD - LOG_OVERHEAD:
        raise CorruptRecordError(f"batch length {batch_length} below the v2 minimum", pos)
    if avail >= 17 and view[pos + 16] != MAGIC_V2:
        raise CorruptRecordError(f"unsupported magic {view[pos + 16]} (only v2)", pos)
    if avail < batch_length + LOG_OVERHEAD:
        raise IncompleteBatchError(
            f"truncated batch: needs {batch_length + LOG_OVERHEAD} bytes, {avail} left", pos
        )
    fields = _HEADER.unpack_from(view, pos)
    header = RecordBatchHeader(
        base_offset=fields[0],
        batch_length=fields[1],
        partition_leader_epoch=fields[2],
        magic=fields[3],
        crc=fields[4],
        attributes=fields[5],
        last_offset_delta=fields[6],
        base_timestamp=fields[7],
        max_timestamp=fields[8],
        producer_id=fields[9],
        producer_epoch=fields[10],
        base_sequence=fields[11],
        records_count=fields[12],
    )
    if header.records_count < 0:
        raise CorruptRecordError(f"negative record count {header.records_count}", pos)
    return header


def compute_batch_crc(buf: BytesLike, pos: int, header: RecordBatchHeader) -> int:
    view = memoryview(buf)
    return int(crc32c(view[pos + ATTRIBUTES_OFFSET : pos + header.size_in_bytes]))


def check_batch_crc(buf: BytesLike, pos: int, header: RecordBatchHeader) -> None:
    actual = compute_batch_crc(buf, pos, header)
    if actual != header.crc:
        raise CorruptRecordError(
            f"CRC mismatch: stored {header.crc:#010x}, computed {actual:#010x}", pos
        )


def _corrupt(reason: str, pos: int, base: int) -> CorruptRecordError:
    return CorruptRecordError(reason, pos + base)


def decode_records(
    data: bytes, pos: int, end: int, count: int, error_base: int = 0
) -> tuple[Record, ...]:
    """Parse ``count`` records from ``data[pos:end]``, which must be consumed exactly.

    ``error_base`` is added to positions in error messages (0 for compressed payloads,
    whose positions are within the decompressed bytes).
    """
    if end > len(data):
        raise CorruptRecordError("record region extends past buffer", end + error_base)
    try:
        return _decode_records(data, pos, end, count)
    except CorruptRecordError as e:
        raise CorruptRecordError(e.reason, (e.offset or 0) + error_base) from None


def _decode_records(data: bytes, pos: int, end: int, count: int) -> tuple[Record, ...]:
    error_base = 0  # offsets are rebased once by the caller
    records: list[Record] = []
    append = records.append
    for index in range(count):
        # Single-byte varints are the overwhelming case; inline them for speed.
        if pos >= end:
            raise _corrupt(f"record {index} of {count} missing", pos, error_base)
        b = data[pos]
        if b < 0x80:
            length = (b >> 1) ^ -(b & 1)
            pos += 1
        else:
            length, pos = read_varint(data, pos, end)
        rec_start = pos
        rec_end = pos + length
        if length < 6 or rec_end > end:
            raise _corrupt(f"bad record length {length}", rec_start, error_base)
        attributes = data[pos]
        pos += 1
        b = data[pos]
        if b < 0x80:
            ts_delta = (b >> 1) ^ -(b & 1)
            pos += 1
        else:
            ts_delta, pos = read_varlong(data, pos, rec_end)
        if pos < rec_end and data[pos] < 0x80:
            b = data[pos]
            off_delta = (b >> 1) ^ -(b & 1)
            pos += 1
        else:
            off_delta, pos = read_varint(data, pos, rec_end)
        key: bytes | None = None
        value: bytes | None = None
        for which in (0, 1):
            if pos < rec_end and data[pos] < 0x80:
                b = data[pos]
                size = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                size, pos = read_varint(data, pos, rec_end)
            if size >= 0:
                if pos + size > rec_end:
                    raise _corrupt(f"record field length {size} overruns record", pos, error_base)
                blob = data[pos : pos + size]
                pos += size
            elif size == -1:
                blob = None
            else:
                raise _corrupt(f"negative field length {size}", pos, error_base)
            if which == 0:
                key = blob
            else:
                value = blob
        if pos < rec_end and data[pos] == 0:
            headers: tuple[tuple[str, bytes | None], ...] = ()
            pos += 1
        else:
            headers, pos = _decode_headers(data, pos, rec_end, error_base)
        if pos != rec_end:
            raise _corrupt(
                f"record declared {length} bytes but used {pos - rec_start}", rec_start, error_base
            )
        append(
            Record(
                offset_delta=off_delta,
                timestamp_delta=ts_delta,
                key=key,
                value=value,
                headers=headers,
                attributes=attributes,
            )
        )
    if pos != end:
        raise _corrupt(f"{end - pos} bytes left after {count} records", pos, error_base)
    return tuple(records)


def _decode_headers(
    data: bytes, pos: int, end: int, error_base: int
) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    count, pos = read_varint(data, pos, end)
    if count < 0:
        raise _corrupt(f"negative header count {count}", pos, error_base)
    headers = []
    for _ in range(count):
        klen, pos = read_varint(data, pos, end)
        if klen < 0 or pos + klen > end:
            raise _corrupt(f"bad header key length {klen}", pos, error_base)
        try:
            hkey = data[pos : pos + klen].decode("utf-8")
        except UnicodeDecodeError:
            raise _corrupt("header key is not UTF-8", pos, error_base) from None
        pos += klen
        vlen, pos = read_varint(data, pos, end)
        hvalue: bytes | None
        if vlen == -1:
            hvalue = None
        elif vlen < 0 or pos + vlen > end:
            raise _corrupt(f"bad header value length {vlen}", pos, error_base)
        else:
            hvalue = data[pos : pos + vlen]
            pos += vlen
        headers.append((hkey, hvalue))
    return tuple(headers), pos


def decode_batch(
    buf: BytesLike,
    pos: int = 0,
    *,
    verify_crc: bool = True,
    max_uncompressed_size: int = DEFAULT_MAX_UNCOMPRESSED_SIZE,
) -> tuple[RecordBatch, int]:
    """Decode the batch at ``pos``; returns it and the position just after it."""
    view = memoryview(buf)
    header = read_batch_header(view, pos)
    if verify_crc:
        check_batch_crc(view, pos, header)
    end = pos + header.size_in_bytes
    try:
        codec = header.compression
    except CorruptRecordError as e:
        raise CorruptRecordError(e.reason, pos) from None
    if codec == CompressionType.NONE:
        data = bytes(view[pos + RECORD_BATCH_OVERHEAD : end])
        records = decode_records(
            data, 0, len(data), header.records_count, pos + RECORD_BATCH_OVERHEAD
        )
    else:
        data = decompress(
            codec, view[pos + RECORD_BATCH_OVERHEAD : end], max_uncompressed_size, at=pos
        )
        try:
            records = decode_records(data, 0, len(data), header.records_count)
        except CorruptRecordError as e:
            raise CorruptRecordError(
                f"in decompressed records (offset {e.offset}): {e.reason}", pos
            ) from None
    batch = RecordBatch(
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=header.attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        records=records,
    )
    return batch, end


def iter_batch_headers(
    buf: BytesLike, pos: int = 0, *, verify_crc: bool = True, allow_truncated_tail: bool = False
) -> Iterator[tuple[int, RecordBatchHeader]]:
    """Yield ``(position, header)`` for each batch without decoding records."""
    view = memoryview(buf)
    while pos < len(view):
        try:
            header = read_batch_header(view, pos)
        except IncompleteBatchError:
            if allow_truncated_tail:
                return
            raise
        if verify_crc:
            check_batch_crc(view, pos, header)
        yield pos, header
        pos += header.size_in_bytes


def decode_batches(
    buf: BytesLike,
    *,
    verify_crc: bool = True,
    allow_truncated_tail: bool = False,
    max_uncompressed_size: int = DEFAULT_MAX_UNCOMPRESSED_SIZE,
) -> Iterator[RecordBatch]:
    """Decode consecutive batches. A partial final batch is an error unless
    ``allow_truncated_tail`` (fetch responses may end mid-batch)."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        try:
            batch, pos = decode_batch(
                view, pos, verify_crc=verify_crc, max_uncompressed_size=max_uncompressed_size
            )
        except IncompleteBatchError:
            if allow_truncated_tail:
                return
            raise
        yield batch
