"""Metadata records out of record batches, at the speed of the generated readers.

Start-up reads every record of the newest snapshot and of the log after it (a million
PartitionRecords at a million partitions). ``decode_batch`` builds a ``Record`` and copies
each value before the message is decoded; here the generated reader of each record
(compiled where built) reads the message straight out of the batch's bytes.

Rules:
- The fast path takes the records as Kafka's MetadataRecordSerde and the batch writers lay
  them out: varints of one or two bytes for the record's length, timestamp delta, offset
  delta and value length, a null key, no headers, a value framed ``1 | api key | version``
  with both under 128. Any other record (longer varints, a key, headers, another framing)
  and any record whose message does not end exactly at the value's end is read again by
  the general path (``decode_records``, ``unframe_metadata_record``, ``Message.decode``),
  which raises the same error as before for bad bytes: CorruptRecordError for the batch,
  DecodeError for the message, ValueError for an unknown record type.
- Compressed batches are decompressed first (bounded by
  ``DEFAULT_MAX_UNCOMPRESSED_SIZE``), then read the same way.
- Where the C accelerator is built, its ``metadata_records`` runs the fast path's framing
  (the same checks in the same order, calling the same readers); ``_common_shape_records``
  is its Python twin, used without it, and the tests hold the two equal.
"""

from __future__ import annotations

from typing import Any

from kwire.protocol import _codec
from kwire.protocol._codec import Message
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.records import (
    RECORD_BATCH_OVERHEAD,
    CompressionType,
    RecordBatchHeader,
    decode_records,
    decompress,
    unframe_metadata_record,
)
from kwire.records.varint import BytesLike

__all__ = ["batch_metadata_records", "decode_metadata_value"]

# One decoded record: (offset, message, record version).
MetadataEntry = tuple[int, Message, int]


def decode_metadata_value(value: BytesLike | None) -> tuple[Message, int]:
    """(message, version) of one framed metadata record value, the general way. Raises
    CorruptRecordError, DecodeError or ValueError (an unknown record type)."""
    api_key, version, body = unframe_metadata_record(value)
    record_type = METADATA_RECORDS.get(api_key)
    if record_type is None:
        raise ValueError(f"unknown metadata record type {api_key}")
    return record_type.decode(body, version), version


def batch_metadata_records(
    buf: BytesLike, pos: int, header: RecordBatchHeader
) -> list[MetadataEntry]:
    """The records of the data batch at ``buf[pos:]`` (``header`` read there, its CRC
    already checked by the caller), each with its offset."""
    start = pos + RECORD_BATCH_OVERHEAD
    end = pos + header.size_in_bytes
    codec = header.compression
    if codec == CompressionType.NONE:
        data = bytes(memoryview(buf)[start:end])
    else:
        data = decompress(codec, memoryview(buf)[start:end], at=pos)
    fast = _fast_records(data, header.records_count, header.base_offset)
    if fast is not None:
        return fast
    return [
        (header.base_offset + record.offset_delta, *decode_metadata_value(record.value))
        for record in decode_records(data, 0, len(data), header.records_count, start)
    ]


def _readers() -> dict[tuple[int, int], Any]:
    readers: dict[tuple[int, int], Any] = {}
    for api_key, record_type in METADATA_RECORDS.items():
        for version in range(
            record_type.LOWEST_VERSION, min(record_type.HIGHEST_VERSION, 0x7F) + 1
        ):
            # The generated reader itself (compiled where built): Message.read's checks are
            # this module's own (a bad record goes the general way).
            readers[(api_key, version)] = record_type._READERS[version]
    return readers


_TYPES = _readers()


def _reader_rows(readers: dict[tuple[int, int], Any]) -> tuple[tuple[Any, ...] | None, ...]:
    """``readers`` as the compiled framing takes them: for each api key byte, None or the
    readers by version (None for a version without one)."""
    rows: list[tuple[Any, ...] | None] = [None] * 256
    for api_key in {key for key, _ in readers}:
        highest = max(version for key, version in readers if key == api_key)
        rows[api_key] = tuple(readers.get((api_key, v)) for v in range(highest + 1))
    return tuple(rows)


_ROWS = _reader_rows(_TYPES)
_compiled_records: Any = (
    _codec._speedups.metadata_records if _codec.compiled_readers_available() else None
)


def _varint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    """A zigzag varint of at most 3 bytes at ``pos`` (-1 when longer or cut short; no
    record field of the common shape is negative)."""
    raw = 0
    for shift in (0, 7, 14):
        if pos >= size:
            return -1, pos
        b = data[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
    return -1, pos


def _fast_records(data: bytes, count: int, base_offset: int) -> list[MetadataEntry] | None:
    """The records of ``data`` (a batch's records region) when every one has the common
    shape and decodes to its value's end; None otherwise (the caller reads them again)."""
    if _compiled_records is not None and type(data) is bytes:
        return _compiled_records(data, count, base_offset, _ROWS)
    return _python_records(data, count, base_offset)


def _python_records(data: bytes, count: int, base_offset: int) -> list[MetadataEntry] | None:
    """``_fast_records`` in Python (the compiled framing's twin)."""
    try:
        return _common_shape_records(data, count, base_offset)
    except IndexError:  # cut short: the general path names the problem
        return None


def _common_shape_records(data: bytes, count: int, base_offset: int) -> list[MetadataEntry] | None:
    out: list[MetadataEntry] = []
    append = out.append
    types = _TYPES
    pos = 0
    size = len(data)
    for _ in range(count):
        if pos + 2 <= size and data[pos] >= 0x80 and data[pos + 1] < 0x80:
            raw = (data[pos] & 0x7F) | (data[pos + 1] << 7)
            length = (raw >> 1) ^ -(raw & 1)
            pos += 2
        else:
            length, pos = _varint(data, pos, size)
        rec_end = pos + length
        if length < 7 or rec_end > size:
            return None
        # attributes, a timestamp delta of one byte, the offset delta, a null key
        if data[pos + 1] >= 0x80:
            return None
        b = data[pos + 2]
        if b < 0x80:
            offset_delta = (b >> 1) ^ -(b & 1)
            pos += 3
        elif data[pos + 3] < 0x80:
            raw = (b & 0x7F) | (data[pos + 3] << 7)
            offset_delta = (raw >> 1) ^ -(raw & 1)
            pos += 4
        elif data[pos + 4] < 0x80:  # past 8,191 records into a batch (snapshots' 8 MiB ones)
            raw = (b & 0x7F) | ((data[pos + 3] & 0x7F) << 7) | (data[pos + 4] << 14)
            offset_delta = (raw >> 1) ^ -(raw & 1)
            pos += 5
        else:
            offset_delta, pos = _varint(data, pos + 2, rec_end)
            if offset_delta < 0 or pos >= rec_end:
                return None
        if data[pos] != 1:
            return None
        b = data[pos + 1]
        if b < 0x80:
            value_size = (b >> 1) ^ -(b & 1)
            pos += 2
        elif data[pos + 2] < 0x80:
            raw = (b & 0x7F) | (data[pos + 2] << 7)
            value_size = (raw >> 1) ^ -(raw & 1)
            pos += 3
        else:
            value_size, pos = _varint(data, pos + 1, rec_end)
        value_end = pos + value_size
        # the value, then a zero header count, must fill the record exactly
        if value_size < 3 or value_end + 1 != rec_end or data[value_end] != 0:
            return None
        if data[pos] != 1:
            return None
        reader = types.get((data[pos + 1], data[pos + 2]))
        if reader is None:
            return None
        try:
            message, message_end = reader(data, pos + 3)
        except Exception:  # noqa: BLE001 - any failure is read again the general way
            return None
        if message_end != value_end:
            return None
        append((base_offset + offset_delta, message, data[pos + 2]))
        pos = rec_end
    if pos != size:
        return None
    return out
