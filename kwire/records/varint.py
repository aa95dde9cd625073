"""Kafka's variable-length integers (protobuf-style base-128, zigzag for signed).

Decoders take ``(buf, pos, end)`` and return ``(value, new_pos)``; they never read at or
past ``end`` and raise :class:`CorruptRecordError` instead of IndexError.
"""

from __future__ import annotations

from kwire.records.errors import CorruptRecordError

# Anything memoryview() accepts; spelled out because collections.abc.Buffer is 3.12+.
BytesLike = bytes | bytearray | memoryview

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _read_raw(buf: BytesLike, pos: int, end: int, max_bytes: int, what: str) -> tuple[int, int]:
    view = memoryview(buf)
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise CorruptRecordError(f"truncated {what}", start)
        b = view[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if pos - start >= max_bytes:
            raise CorruptRecordError(f"{what} is longer than {max_bytes} bytes", start)


def read_unsigned_varint(buf: BytesLike, pos: int, end: int) -> tuple[int, int]:
    """Unsigned 32-bit varint (at most 5 bytes)."""
    raw, new_pos = _read_raw(buf, pos, end, 5, "unsigned varint")
    if raw > 0xFFFFFFFF:
        raise CorruptRecordError("unsigned varint overflows 32 bits", pos)
    return raw, new_pos


def read_varint(buf: BytesLike, pos: int, end: int) -> tuple[int, int]:
    """Zigzag-encoded signed 32-bit varint (at most 5 bytes)."""
    raw, new_pos = _read_raw(buf, pos, end, 5, "varint")
    if raw > 0xFFFFFFFF:
        raise CorruptRecordError("varint overflows 32 bits", pos)
    return (raw >> 1) ^ -(raw & 1), new_pos


def read_varlong(buf: BytesLike, pos: int, end: int) -> tuple[int, int]:
    """Zigzag-encoded signed 64-bit varint (at most 10 bytes)."""
    raw, new_pos = _read_raw(buf, pos, end, 10, "varlong")
    if raw > 0xFFFFFFFFFFFFFFFF:
        raise CorruptRecordError("varlong overflows 64 bits", pos)
    return (raw >> 1) ^ -(raw & 1), new_pos


def write_unsigned_varint(out: bytearray, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"unsigned varint out of range: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_varint(out: bytearray, value: int) -> None:
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"varint out of int32 range: {value}")
    raw = ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def write_varlong(out: bytearray, value: int) -> None:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"varlong out of int64 range: {value}")
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
