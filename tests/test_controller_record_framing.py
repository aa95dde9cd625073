"""A new partition's PartitionRecord framed in one pack is byte for byte what the
generated writer and MetadataRecordSerde's framing make of it, at every version."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import messages

from kwire.controller.record_framing import framed_new_partition, framed_values
from kwire.controller.records import RecordAndVersion
from kwire.protocol.errors import EncodeError
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.records import frame_metadata_record

DIR = uuid.UUID("a1b2c3d4-0000-4000-8000-00000000000a")


def generated(record: PartitionRecord, version: int) -> bytes:
    return frame_metadata_record(3, version, record.encode(version))


def new_partition(replicas: list[int], isr: list[int], directories: int = 0) -> PartitionRecord:
    return PartitionRecord(
        partition_id=7,
        topic_id=uuid.UUID("0f2c8b1e-5a3d-4c1b-9e7f-2d4a6b8c0e1f"),
        replicas=replicas,
        isr=isr,
        leader=isr[0],
        leader_epoch=0,
        partition_epoch=0,
        directories=[DIR] * directories,
    )


@pytest.mark.parametrize(
    ("case", "record", "version"),
    [
        ("three replicas at 3.3 levels (v0)", new_partition([1, 2, 3], [1, 2, 3]), 0),
        ("three replicas and their directories (v1)", new_partition([1, 2, 3], [1, 2, 3], 3), 1),
        ("a fenced replica outside the ISR (v1)", new_partition([4, 5, 6], [5, 6], 3), 1),
        ("the 4.x level's record (v2)", new_partition([3, 1], [3, 1], 2), 2),
        ("126 replicas, the most one byte counts", new_partition([*range(126)], [0], 126), 1),
    ],
)
def test_a_new_partition_is_framed_in_one_pack_as_the_generated_writer_frames_it(
    case: str, record: PartitionRecord, version: int
) -> None:
    fast = framed_new_partition(record, version)
    assert fast is not None, case
    assert fast == generated(record, version)


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("a replica being added", {"adding_replicas": [4]}),
        ("a replica being removed", {"removing_replicas": [1]}),
        ("a leader still recovering", {"leader_recovery_state": 1}),
        ("eligible leader replicas", {"eligible_leader_replicas": [2]}),
        ("127 replicas (a two-byte count)", {"replicas": [*range(127)]}),
        ("a broker id outside int32", {"replicas": [2**31, 2, 3]}),
    ],
)
def test_other_partition_records_take_the_generated_writer(
    case: str, change: dict[str, object]
) -> None:
    record = new_partition([1, 2, 3], [1, 2, 3], 3)
    for name, value in change.items():
        setattr(record, name, value)
    assert framed_new_partition(record, 2) is None, case


def test_a_record_its_schema_cannot_hold_is_refused_with_the_field_named() -> None:
    record = new_partition([1, 2, 3], [1, 2, 3], 3)
    record.leader = 2**31
    with pytest.raises(EncodeError, match="leader"):
        framed_values([RecordAndVersion(record, 1)])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2).flatmap(lambda v: st.tuples(st.just(v), messages(PartitionRecord, v))),
    st.booleans(),
)
def test_every_partition_record_is_framed_as_the_generated_writer_frames_it(
    case: tuple[int, PartitionRecord], as_new: bool
) -> None:
    version, record = case
    if as_new:  # half of them in a new partition's shape, so the fast path runs too
        record.removing_replicas, record.adding_replicas = [], []
        record.leader_recovery_state, record.unknown_tagged_fields = 0, ()
        record.eligible_leader_replicas = record.last_known_elr = None
    try:
        expected: list[bytes] | type[EncodeError] = [generated(record, version)]
    except EncodeError:
        expected = EncodeError
    if expected is EncodeError:
        with pytest.raises(EncodeError):
            framed_values([RecordAndVersion(record, version)])
    else:
        assert framed_values([RecordAndVersion(record, version)]) == expected
