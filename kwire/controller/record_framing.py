"""Framed metadata record values (MetadataRecordSerde), with one fast path: new partitions.

A CreateTopics of 25 topics of 100 partitions writes 2,500 PartitionRecords, and so does
the same number of partitions added by CreatePartitions: encoding them one field at a
time was a large share of each partition's cost. A new partition's record has one shape
per (version, replicas, ISR, directories) count: no replicas being added or removed, a
recovered leader, no eligible leader replicas and no unknown tagged fields. For that shape
the whole framed value (frame version, api key, version, then the body of Kafka's
PartitionRecord schema) is one ``struct.pack`` with a layout built once per shape. Any
other record, or a value the layout cannot hold (a number outside int32, more than 126
replicas), takes the generated writer, which also reports what is wrong with bad input.

``tests/test_controller_record_framing.py`` compares the two over random records of every
version: the bytes are the same.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from kwire.controller.records import RecordAndVersion
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.records import frame_metadata_record

_PARTITION_RECORD_KEY = 3  # PartitionRecord's api key in Kafka's metadata schemas
_METADATA_FRAME_VERSION = 1
_ONE_BYTE_COUNT = 0x7F  # a compact array count (n + 1) that fits one varint byte

# (version, replicas, isr, directories) -> the packer of the framed value
_LAYOUTS: dict[tuple[int, int, int, int], struct.Struct] = {}


def _layout(version: int, replicas: int, isr: int, directories: int) -> struct.Struct:
    key = (version, replicas, isr, directories)
    layout = _LAYOUTS.get(key)
    if layout is None:
        # frame version, api key, version | partition id, topic id | replicas | isr |
        # removing (empty), adding (empty) | leader, leader epoch, partition epoch |
        # [v1+: directories] | no tagged fields
        spec = f">BBBi16sB{replicas}iB{isr}iBBiii"
        if version >= 1:
            spec += f"B{16 * directories}s"
        layout = _LAYOUTS[key] = struct.Struct(spec + "B")
    return layout


def framed_new_partition(record: PartitionRecord, version: int) -> bytes | None:
    """The framed value of a new partition's ``record`` at ``version`` (0 to 2), or None
    when it is not of that shape (the generated writer must encode it)."""
    replicas, isr, directories = record.replicas, record.isr, record.directories
    if (
        record.removing_replicas
        or record.adding_replicas
        or record.leader_recovery_state != 0
        or record.eligible_leader_replicas is not None
        or record.last_known_elr is not None
        or record.unknown_tagged_fields
        or len(replicas) >= _ONE_BYTE_COUNT
        or len(isr) >= _ONE_BYTE_COUNT
        or len(directories) >= _ONE_BYTE_COUNT
        or not 0 <= version <= 2
        or (version == 0 and directories)
    ):
        return None
    try:
        args = [
            _METADATA_FRAME_VERSION, _PARTITION_RECORD_KEY, version,
            record.partition_id, record.topic_id.bytes,
            len(replicas) + 1, *replicas, len(isr) + 1, *isr, 1, 1,
            record.leader, record.leader_epoch, record.partition_epoch,
        ]  # fmt: skip
        if version >= 1:
            args += [len(directories) + 1, b"".join(d.bytes for d in directories)]
        args.append(0)
        return _layout(version, len(replicas), len(isr), len(directories)).pack(*args)
    except (struct.error, AttributeError, TypeError):
        return None  # the generated writer names the field that cannot be encoded


def framed_values(records: Iterable[RecordAndVersion]) -> list[bytes]:
    """Each record's framed value, as ``records.frame_metadata_record`` of its encoding.

    Raises kwire.protocol.errors.EncodeError for a record its schema cannot hold."""
    values = []
    for rv in records:
        record = rv.record
        if type(record) is PartitionRecord:
            value = framed_new_partition(record, rv.version)
            if value is not None:
                values.append(value)
                continue
        values.append(frame_metadata_record(rv.api_key, rv.version, record.encode(rv.version)))
    return values
