"""kwire.raft.voter_set: the voter set and its history, against every genuine KIP-853 log.

Ground truth: ../shared/captures/kafka-4.3/quorum-prevote (three Kafka 4.3.1 controllers
formatted with --initial-controllers) and ../shared/captures/kafka-3.9/dynamic-quorum (a
Kafka 3.9 quorum formatted --standalone that grew by add-controller); the voters Kafka
reported (`kafka-metadata-quorum describe --status`, CurrentVoters) are the expected values.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest

from kwire.log.checkpoints import uuid_from_kafka_string
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.raft.voter_set import (
    KRaftControlRecords,
    KRaftVersion,
    LogHistory,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
    VoterSetError,
    kraft_control_values,
    start_of_epoch_control_values,
)
from kwire.records import (
    ControlRecordType,
    Record,
    RecordBatch,
    build_batch,
    decode_batches,
    decode_control_record_key,
    encode_control_record_key,
)

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures"
PREVOTE = CAPTURES / "kafka-4.3" / "quorum-prevote"
DYNAMIC_39 = CAPTURES / "kafka-3.9" / "dynamic-quorum"
BOOTSTRAP = "00000000000000000000-0000000000.checkpoint"
# Every metadata log directory of a dynamic quorum in the captures.
LOG_DIRS = [
    *(PREVOTE / f"metadata-log-{n}" for n in (1, 2, 3)),
    DYNAMIC_39 / "metadata-log-21",
]

needs_captures = pytest.mark.skipif(
    not all(d.is_dir() for d in LOG_DIRS), reason=f"dynamic quorum captures not found at {CAPTURES}"
)


def partition(log_dir: Path) -> Path:
    return log_dir / "__cluster_metadata-0"


def described_voters(status: Path) -> dict[int, tuple[uuid.UUID, list[str]]]:
    """CurrentVoters of a `kafka-metadata-quorum describe --status` output."""
    line = next(x for x in status.read_text().splitlines() if x.startswith("CurrentVoters:"))
    voters = json.loads(line.partition(":")[2])
    return {v["id"]: (uuid_from_kafka_string(v["directoryId"]), v["endpoints"]) for v in voters}


def as_described(voters: VoterSet) -> dict[int, tuple[uuid.UUID, list[str]]]:
    return {
        n.key.id: (n.key.directory_id, [f"{e.name}://{e.host}:{e.port}" for e in n.endpoints])
        for n in voters
    }


def history_of(log_dir: Path) -> KRaftControlRecords:
    records = KRaftControlRecords()
    records.load_snapshot(0, decode_batches((partition(log_dir) / BOOTSTRAP).read_bytes()))
    records.append(decode_batches((partition(log_dir) / "00000000000000000000.log").read_bytes()))
    return records


def control_values(data: bytes, kind: ControlRecordType) -> list[tuple[int, bytes]]:
    found = []
    for batch in decode_batches(data):
        if batch.is_control:
            for delta, record in enumerate(batch.records):
                if decode_control_record_key(record.key).type is kind:
                    found.append((batch.base_offset + delta, record.value or b""))
    return found


def node(voter_id: int, directory: int = 0, port: int = 9093) -> VoterNode:
    return VoterNode(
        ReplicaKey(voter_id, uuid.UUID(int=directory)),
        (VoterEndpoint("CONTROLLER", "127.0.0.1", port),),
        (0, 1),
    )


def control_batch(base_offset: int, *values: tuple[ControlRecordType, bytes]) -> RecordBatch:
    records = [
        Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
        for i, (kind, value) in enumerate(values)
    ]
    return build_batch(records, base_offset=base_offset, base_timestamp=0, control=True)


def data_batch(base_offset: int, count: int = 1) -> RecordBatch:
    records = [Record(offset_delta=i, value=b"x") for i in range(count)]
    return build_batch(records, base_offset=base_offset, base_timestamp=0)


def voters_value(*nodes: VoterNode) -> tuple[ControlRecordType, bytes]:
    return ControlRecordType.KRAFT_VOTERS, VoterSet.from_nodes(nodes).to_voters_record().encode(0)


KRAFT_1 = (ControlRecordType.KRAFT_VERSION, KRaftVersionRecord(kraft_version=1).encode(0))


# --- genuine logs ----------------------------------------------------------------------


@needs_captures
def test_the_4_3_voters_are_those_kafka_described_at_every_step() -> None:
    expected = [
        described_voters(PREVOTE / f"status-{step}.txt")
        for step in (
            "1-initial",
            "2-after-kill9-leader-2",
            "3-after-restart-2",
            "4-after-sigterm-leader-3",
        )
    ]
    assert all(e == expected[0] for e in expected)  # the quorum never changed membership
    for n in (1, 2, 3):
        records = history_of(PREVOTE / f"metadata-log-{n}")
        assert as_described(records.last_voter_set) == expected[0]
        assert records.last_kraft_version is KRaftVersion.KRAFT_VERSION_1
        # The bootstrap snapshot's records count at offset -1; the first leader rewrote
        # both at offsets 1 and 2, right after its LeaderChange.
        assert records.last_voter_set_offset == 2
        assert records.voter_set_at(-1) == records.voter_set_at(1) == records.last_voter_set
        assert records.kraft_version_at(0) is KRaftVersion.KRAFT_VERSION_1


@needs_captures
def test_the_3_9_quorum_grew_where_kafka_wrote_its_voters_record() -> None:
    records = history_of(DYNAMIC_39 / "metadata-log-21")
    before = described_voters(DYNAMIC_39 / "status-before.txt")  # HighWatermark 43
    after = described_voters(DYNAMIC_39 / "status-after.txt")  # HighWatermark 62
    assert as_described(records.voter_set_at(42) or VoterSet.empty()) == before
    assert as_described(records.voter_set_at(61) or VoterSet.empty()) == after
    assert as_described(records.last_voter_set) == after
    assert records.last_voter_set_offset == 44  # add-controller's VotersRecord
    assert records.voter_set_at(43) == records.voter_set_at(-1)
    assert records.next_offset == 74  # the log's end: the 3.9 leader's last batch


@needs_captures
@pytest.mark.parametrize("log_dir", [PREVOTE / "metadata-log-1", PREVOTE / "metadata-log-3"])
def test_a_snapshot_carries_the_voters_as_of_its_end(log_dir: Path) -> None:
    from_log = history_of(log_dir)
    from_snapshot = KRaftControlRecords()
    data = (partition(log_dir) / "00000000000000000073-0000000003.checkpoint").read_bytes()
    from_snapshot.load_snapshot(73, decode_batches(data))
    assert from_snapshot.next_offset == 73
    assert from_snapshot.last_voter_set_offset == 72  # the snapshot's last contained offset
    assert from_snapshot.voter_set_at(72) == from_log.voter_set_at(72)
    assert from_snapshot.kraft_version_at(72) is from_log.kraft_version_at(72)
    # ... and the log after it continues the same history.
    from_snapshot.append(
        decode_batches((partition(log_dir) / "00000000000000000000.log").read_bytes())
    )
    assert from_snapshot.next_offset == from_log.next_offset
    assert from_snapshot.last_voter_set == from_log.last_voter_set


@needs_captures
@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for d in LOG_DIRS
        if partition(d).is_dir()
        for p in partition(d).iterdir()
        if p.suffix in (".log", ".checkpoint")
    ),
    ids=lambda p: f"{p.parents[1].name}/{p.name}",
)
def test_every_genuine_voters_record_is_rewritten_byte_for_byte(path: Path) -> None:
    values = control_values(path.read_bytes(), ControlRecordType.KRAFT_VOTERS)
    assert values  # every genuine dynamic-quorum file holds at least one
    for _, value in values:
        voters = VoterSet.from_voters_record(VotersRecord.decode(value, 0))
        assert voters.to_voters_record().encode(0) == value
    versions = control_values(path.read_bytes(), ControlRecordType.KRAFT_VERSION)
    assert [value for _, value in versions] == [
        kraft_control_values(KRaftVersion.KRAFT_VERSION_1, None)[0][1]
    ] * len(versions)


@needs_captures
def test_add_voter_writes_the_record_kafka_wrote_for_add_controller() -> None:
    log = (partition(DYNAMIC_39 / "metadata-log-21") / "00000000000000000000.log").read_bytes()
    (_, first), (_, grown) = control_values(log, ControlRecordType.KRAFT_VOTERS)
    before = VoterSet.from_voters_record(VotersRecord.decode(first, 0))
    new_voter = VoterSet.from_voters_record(VotersRecord.decode(grown, 0)).node(22)
    assert new_voter is not None
    added = before.add_voter(new_voter)
    assert added is not None and added.to_voters_record().encode(0) == grown


# --- the voter set ----------------------------------------------------------------------


def test_voters_iterate_in_java_hashmap_order() -> None:
    # HashMap(2) holding 1 and 4 grows to 4 buckets: 4 lands in bucket 0, 1 in bucket 1.
    record = VotersRecord(voters=VoterSet.from_nodes([node(1)]).to_voters_record().voters)
    record.voters += VoterSet.from_nodes([node(4)]).to_voters_record().voters
    assert VoterSet.from_voters_record(record).voter_ids() == [4, 1]
    # A default HashMap (16 buckets) copied for 3 voters: 17 and 1 share bucket 1 and keep
    # insertion order, 16 is in bucket 0.
    assert VoterSet.from_nodes([node(1), node(17), node(16)]).voter_ids() == [16, 1, 17]


@pytest.mark.parametrize(("size", "majority"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_a_majority_is_more_than_half_of_the_voters(size: int, majority: int) -> None:
    voters = VoterSet.from_nodes(node(i) for i in range(1, size + 1))
    assert voters.majority_size == majority
    assert voters.is_majority(range(1, majority + 1))
    assert not voters.is_majority([*range(1, majority), 99])  # a non-voter does not count


def test_a_voter_with_a_directory_id_must_match_it() -> None:
    voters = VoterSet.from_nodes([node(1, directory=7)])
    assert voters.is_voter(ReplicaKey(1, uuid.UUID(int=7)))
    assert not voters.is_voter(ReplicaKey(1, uuid.UUID(int=8)))
    assert not voters.is_voter(ReplicaKey(1))
    static = VoterSet.from_static("controller", [(1, "h", 9093)])
    assert static.is_voter(ReplicaKey(1, uuid.UUID(int=8)))  # no directory id: ids suffice
    assert static.endpoints(1) == (VoterEndpoint("CONTROLLER", "h", 9093),)
    assert static.endpoints(2) == ()
    assert static.node(1) is not None and static.node(1).supported_kraft_versions == (0, 0)  # type: ignore[union-attr]


def test_changes_are_refused_as_kafka_refuses_them() -> None:
    voters = VoterSet.from_nodes([node(1, 1), node(2, 2)])
    assert voters.add_voter(node(2, 3)) is None  # id taken
    assert voters.remove_voter(ReplicaKey(2, uuid.UUID(int=3))) is None  # wrong directory
    one = voters.remove_voter(ReplicaKey(2, uuid.UUID(int=2)))
    assert one is not None and one.voter_ids() == [1]
    assert one.remove_voter(ReplicaKey(1, uuid.UUID(int=1))) is None  # never the last voter
    moved = node(1, 1, port=9999)
    assert voters.update_voter(node(1, 5)) is None  # not that replica
    updated = voters.update_voter(moved)
    assert updated is not None and updated.node(1) == moved and voters.node(1) != moved
    assert voters.voter_node_needs_update(moved) and not updated.voter_node_needs_update(moved)
    assert voters.update_voter_ignoring_directory_id(node(1, 5)) is not None


def test_overlapping_majorities_differ_by_at_most_one_voter_each_way() -> None:
    three = VoterSet.from_nodes(node(i, i) for i in (1, 2, 3))
    assert three.has_overlapping_majority(three.add_voter(node(4, 4)))  # type: ignore[arg-type]
    assert three.has_overlapping_majority(VoterSet.from_nodes(node(i, i) for i in (1, 2, 4)))
    assert not three.has_overlapping_majority(VoterSet.from_nodes(node(i, i) for i in (1, 4, 5)))


def test_voters_at_kraft_version_0_are_refused() -> None:
    with pytest.raises(VoterSetError, match="not expected when the kraft.version is 0"):
        kraft_control_values(KRaftVersion.KRAFT_VERSION_0, VoterSet.from_nodes([node(1)]))
    assert kraft_control_values(KRaftVersion.KRAFT_VERSION_0, None) == []


# --- the history ------------------------------------------------------------------------


def test_without_records_the_static_voters_and_kraft_version_0_hold() -> None:
    static = VoterSet.from_static("CONTROLLER", [(1, "h", 1), (2, "h", 2), (3, "h", 3)])
    records = KRaftControlRecords(static)
    records.append([data_batch(0, 5)])
    assert records.last_voter_set == static
    assert records.last_voter_set_offset is None
    assert records.voter_set_at(4) is None  # the static set is never "at" an offset
    assert records.kraft_version_at(4) is KRaftVersion.KRAFT_VERSION_0
    records.append([control_batch(5, KRAFT_1, voters_value(node(1)))])
    assert records.last_voter_set.voter_ids() == [1]  # the log overrides the configuration
    assert records.kraft_version_at(5) is KRaftVersion.KRAFT_VERSION_1
    assert records.kraft_version_at(4) is KRaftVersion.KRAFT_VERSION_0


def test_truncation_forgets_records_beyond_the_new_end_and_reads_again() -> None:
    records = KRaftControlRecords()
    records.append([control_batch(0, KRAFT_1, voters_value(node(1))), data_batch(2, 3)])
    records.append([control_batch(5, voters_value(node(1), node(2)))])
    assert records.last_voter_set.voter_ids() == [1, 2]
    records.truncate_new_entries(5)
    assert records.last_voter_set.voter_ids() == [1] and records.next_offset == 5
    # The new leader's log has another record at the same offset.
    records.append([control_batch(5, voters_value(node(1), node(3)))])
    assert records.last_voter_set.voter_ids() == [1, 3]
    assert records.voter_set_at(4) == VoterSet.from_nodes([node(1)])


def test_a_snapshot_keeps_the_last_value_before_its_start() -> None:
    records = KRaftControlRecords()
    records.append([control_batch(0, KRAFT_1, voters_value(node(1)))])
    records.append([control_batch(2, voters_value(node(1), node(2))), data_batch(3, 7)])
    records.truncate_old_entries(9)
    assert records.voter_set_at(9) == VoterSet.from_nodes([node(1), node(2)])
    assert records.voter_set_at(1) is None  # forgotten: the snapshot answers for it now
    assert records.kraft_version_at(9) is KRaftVersion.KRAFT_VERSION_1


def test_offsets_not_yet_read_and_gaps_are_refused() -> None:
    records = KRaftControlRecords()
    records.append([data_batch(0, 2)])
    with pytest.raises(VoterSetError, match=r"offset \(2\) .* largest known offset \(1\)"):
        records.voter_set_at(2)
    with pytest.raises(VoterSetError, match="does not follow offset 1"):
        records.append([data_batch(3)])
    records.append([data_batch(0, 2), data_batch(2)])  # what was read is skipped
    assert records.next_offset == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            (ControlRecordType.KRAFT_VERSION, KRaftVersionRecord(kraft_version=2).encode(0)),
            "Unknown KRaft feature level: 2",
        ),
        ((ControlRecordType.KRAFT_VOTERS, b"\x00\x00\x05"), "control record at offset 0"),
        ((ControlRecordType.KRAFT_VERSION, b""), "control record at offset 0"),
    ],
    ids=["unknown kraft.version", "truncated VotersRecord", "empty KRaftVersionRecord"],
)
def test_bad_control_records_are_a_clear_error(
    value: tuple[ControlRecordType, bytes], message: str
) -> None:
    with pytest.raises(VoterSetError, match=message):
        KRaftControlRecords().append([control_batch(0, value)])


def test_log_history_offsets_strictly_increase_from_minus_one() -> None:
    history: LogHistory[str] = LogHistory()
    with pytest.raises(VoterSetError, match="greater than or equal to -1"):
        history.add_at(-2, "a")
    history.add_at(-1, "a")
    with pytest.raises(VoterSetError, match="must be greater than the last offset -1"):
        history.add_at(-1, "b")
    history.add_at(10, "b")
    assert [history.value_at_or_before(o) for o in (-2, -1, 9, 10, 99)] == [
        None,
        "a",
        "a",
        "b",
        "b",
    ]


@needs_captures
@pytest.mark.parametrize(
    ("log_dir", "leader"),
    [(PREVOTE / "metadata-log-1", 2), (DYNAMIC_39 / "metadata-log-21", 21)],
    ids=["4.3.1 leader 2", "3.9.0 leader 21"],
)
def test_the_first_leader_rewrites_the_bootstrap_voters_after_its_leader_change(
    log_dir: Path, leader: int
) -> None:
    records = KRaftControlRecords()
    records.load_snapshot(0, decode_batches((partition(log_dir) / BOOTSTRAP).read_bytes()))
    local = records.last_voter_set.node(leader)
    assert local is not None
    first = next(decode_batches((partition(log_dir) / "00000000000000000000.log").read_bytes()))
    genuine = [(decode_control_record_key(r.key).type, r.value or b"") for r in first.records[1:]]
    assert start_of_epoch_control_values(records, local) == genuine
    # Once the log holds them, a later leader with the same endpoints writes nothing more...
    records.append([first])
    assert start_of_epoch_control_values(records, local) == []
    # ... and one whose endpoint moved writes the voters with its new endpoint.
    moved = dataclasses.replace(local, endpoints=(VoterEndpoint("CONTROLLER", "10.0.0.9", 1),))
    (_, version), (_, voters) = start_of_epoch_control_values(records, moved)
    assert version == genuine[0][1]
    assert VoterSet.from_voters_record(VotersRecord.decode(voters, 0)).node(leader) == moved


def test_a_kraft_version_1_leader_needs_a_voter_set_that_holds_it() -> None:
    records = KRaftControlRecords()
    records.append([control_batch(0, KRAFT_1)])
    with pytest.raises(VoterSetError, match="there is no voter set in the log or checkpoint"):
        start_of_epoch_control_values(records, node(1))
    records.append([control_batch(1, voters_value(node(2)))])
    assert start_of_epoch_control_values(records, node(2)) == []
    assert start_of_epoch_control_values(records, node(3)) == []  # not a voter: no update
    bootstrapped = KRaftControlRecords()
    bootstrapped.load_snapshot(0, [control_batch(0, KRAFT_1, voters_value(node(2)))])
    with pytest.raises(VoterSetError, match="Update expected for leader node"):
        start_of_epoch_control_values(bootstrapped, node(3))
    assert start_of_epoch_control_values(KRaftControlRecords(), node(1)) == []  # kraft.version 0
