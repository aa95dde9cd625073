"""Metadata record framing, as Kafka's MetadataRecordSerde (AbstractApiMessageSerde)
writes record values in ``__cluster_metadata``::

    frame version (unsigned varint, always 1) | api key (unsigned varint) |
    record version (unsigned varint) | record body
"""

from __future__ import annotations

from kwire.records.errors import CorruptRecordError
from kwire.records.varint import BytesLike, read_unsigned_varint, write_unsigned_varint

METADATA_FRAME_VERSION = 1
_INT16_MAX = 0x7FFF


def frame_metadata_record(api_key: int, version: int, body: BytesLike) -> bytes:
    if not 0 <= api_key <= _INT16_MAX or not 0 <= version <= _INT16_MAX:
        raise ValueError(f"api key {api_key} / version {version} out of int16 range")
    # The fast path covers every real record: all three varints fit one byte.
    if api_key < 0x80 and version < 0x80:
        return bytes((METADATA_FRAME_VERSION, api_key, version)) + bytes(body)
    out = bytearray()
    write_unsigned_varint(out, METADATA_FRAME_VERSION)
    write_unsigned_varint(out, api_key)
    write_unsigned_varint(out, version)
    out += body
    return bytes(out)


def unframe_metadata_record(value: BytesLike | None) -> tuple[int, int, memoryview]:
    """Return ``(api_key, version, body)``; ``body`` is a view into ``value``."""
    if value is None:
        raise CorruptRecordError("metadata record has a null value")
    view = memoryview(value)
    end = len(view)
    if end >= 3 and view[0] == METADATA_FRAME_VERSION and view[1] < 0x80 and view[2] < 0x80:
        return view[1], view[2], view[3:]
    frame_version, pos = read_unsigned_varint(view, 0, end)
    if frame_version == 0:
        raise CorruptRecordError(
            "metadata frame version 0 (KRaft preview in 2.8) is not supported", 0
        )
    if frame_version != METADATA_FRAME_VERSION:
        raise CorruptRecordError(f"unknown metadata frame version {frame_version}", 0)
    start = pos
    api_key, pos = read_unsigned_varint(view, pos, end)
    if api_key > _INT16_MAX:
        raise CorruptRecordError(f"metadata api key {api_key} too large", start)
    start = pos
    version, pos = read_unsigned_varint(view, pos, end)
    if version > _INT16_MAX:
        raise CorruptRecordError(f"metadata record version {version} too large", start)
    return api_key, version, view[pos:]
