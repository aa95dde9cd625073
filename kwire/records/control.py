"""Control record keys (Kafka's ControlRecordType): ``version int16, type int16``.

Control record values (LeaderChangeMessage, SnapshotHeaderRecord, ...) are generated
message classes elsewhere; this layer treats them as opaque bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from kwire.records.errors import CorruptRecordError

CONTROL_RECORD_KEY_VERSION = 0
CONTROL_RECORD_KEY_SIZE = 4
_KEY = struct.Struct(">hh")


class ControlRecordType(IntEnum):
    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6
    UNKNOWN = -1  # any type id this version does not know; never written


@dataclass(slots=True, frozen=True)
class ControlRecordKey:
    version: int
    type_id: int

    @property
    def type(self) -> ControlRecordType:
        try:
            return ControlRecordType(self.type_id)
        except ValueError:
            return ControlRecordType.UNKNOWN


def encode_control_record_key(
    record_type: ControlRecordType, version: int = CONTROL_RECORD_KEY_VERSION
) -> bytes:
    if record_type == ControlRecordType.UNKNOWN:
        raise ValueError("cannot encode an UNKNOWN control record type")
    return _KEY.pack(version, int(record_type))


def decode_control_record_key(key: bytes | None) -> ControlRecordKey:
    """Parse a control record key. Like Kafka, a newer key version is read as v0 (the
    type id is always the second int16) and extra trailing bytes are ignored."""
    if key is None or len(key) < CONTROL_RECORD_KEY_SIZE:
        size = -1 if key is None else len(key)
        raise CorruptRecordError(f"control record key needs 4 bytes, got {size}")
    version, type_id = _KEY.unpack_from(key, 0)
    if version < 0:
        raise CorruptRecordError(f"negative control record key version {version}")
    return ControlRecordKey(version, type_id)
