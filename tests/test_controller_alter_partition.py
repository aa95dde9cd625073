"""AlterPartition as Kafka 3.9's controller answers it (ReplicationControlManager.
alterPartition and validateAlterPartitionData decide every expected value here; the
records follow PartitionChangeBuilder)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from genuine_story import (
    assert_same_records,
    controller_before,
    exchanges,
    fields_of,
    first_change_for,
    needs_story,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from partition_fixtures import TOPIC, TOPIC_ID, broker_epoch, cluster, log_dir

from kwire.controller import RequestContext
from kwire.controller.cluster import fence_broker_records, unfence_broker_records
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.image import DIR_UNASSIGNED
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition import AlterPartitionRequest, AlterPartitionResponse
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.assign_replicas_to_dirs import AssignReplicasToDirsRequest
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

BrokerState = AlterPartitionRequest.BrokerState


def alter(
    isr: list[int],
    *,
    broker: int = 1,
    epoch: int | None = None,
    leader_epoch: int = 0,
    partition_epoch: int = 0,
    partition: int = 0,
    version: int = 3,
    recovery: int = 0,
    isr_epochs: dict[int, int] | None = None,
    topic_id: Any = TOPIC_ID,
) -> AlterPartitionRequest:
    data = AlterPartitionRequest.PartitionData(
        partition_index=partition,
        leader_epoch=leader_epoch,
        partition_epoch=partition_epoch,
        leader_recovery_state=recovery,
    )
    if version >= 3:
        epochs = isr_epochs or {}
        data.new_isr_with_epochs = [
            BrokerState(broker_id=b, broker_epoch=epochs.get(b, broker_epoch(b))) for b in isr
        ]
    else:
        data.new_isr = list(isr)
    topic = AlterPartitionRequest.TopicData(partitions=[data])
    if version >= 2:
        topic.topic_id = topic_id
    else:
        topic.topic_name = TOPIC if topic_id == TOPIC_ID else "nope"
    return AlterPartitionRequest(
        broker_id=broker,
        broker_epoch=broker_epoch(broker) if epoch is None else epoch,
        topics=[topic],
    )


def only_partition(response: Any) -> AlterPartitionResponse.PartitionData:
    (topic,) = response.topics
    (partition,) = topic.partitions
    return partition  # type: ignore[no-any-return]


# name, cluster arguments, request, version, expected error
REFUSALS = [
    ("unknown topic id from v2", {}, {"topic_id": TOPIC_ID.__class__(int=7)}, 3,
     ErrorCode.UNKNOWN_TOPIC_ID),
    ("unknown topic name below v2", {}, {"topic_id": None}, 1,
     ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ("unknown partition", {}, {"partition": 5}, 3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ("leader epoch ahead of the controller's", {}, {"leader_epoch": 1}, 3,
     ErrorCode.NOT_CONTROLLER),
    ("partition epoch ahead of the controller's", {}, {"partition_epoch": 1}, 3,
     ErrorCode.NOT_CONTROLLER),
    ("stale leader epoch", {"partitions": [{"leader_epoch": 2}]}, {"leader_epoch": 1}, 3,
     ErrorCode.FENCED_LEADER_EPOCH),
    ("requester is not the leader", {}, {"broker": 2}, 3, ErrorCode.INVALID_REQUEST),
    ("stale partition epoch", {"partitions": [{"partition_epoch": 3}]}, {"partition_epoch": 2},
     3, ErrorCode.INVALID_UPDATE_VERSION),
    ("ISR member that is not a replica", {}, {"isr": [1, 4]}, 3, ErrorCode.INVALID_REQUEST),
    ("ISR repeating a member", {}, {"isr": [1, 2, 2]}, 3, ErrorCode.INVALID_REQUEST),
    ("ISR without the leader", {}, {"isr": [2, 3]}, 3, ErrorCode.INVALID_REQUEST),
    ("RECOVERING with more than one member", {}, {"isr": [1, 2], "recovery": 1}, 3,
     ErrorCode.INVALID_REQUEST),
    ("RECOVERED back to RECOVERING", {}, {"isr": [1], "recovery": 1}, 3,
     ErrorCode.INVALID_REQUEST),
    ("fenced ISR member from v2", {"fenced": (3,)}, {}, 3, ErrorCode.INELIGIBLE_REPLICA),
    ("fenced ISR member below v2", {"fenced": (3,)}, {}, 1, ErrorCode.OPERATION_NOT_ATTEMPTED),
    ("ISR member shutting down", {"shutting_down": (2,)}, {}, 3, ErrorCode.INELIGIBLE_REPLICA),
    ("ISR member with another broker epoch", {}, {"isr_epochs": {2: 7}}, 3,
     ErrorCode.INELIGIBLE_REPLICA),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cluster_args", "changes", "version", "expected"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_an_alter_partition_kafka_refuses_gets_its_error_and_writes_nothing(
    cluster_args: dict[str, Any], changes: dict[str, Any], version: int, expected: ErrorCode
) -> None:
    c = cluster(**cluster_args)
    arguments: dict[str, Any] = {"isr": [1, 2, 3], "version": version} | changes
    if arguments.get("topic_id", TOPIC_ID) is None:
        arguments["topic_id"] = "unknown"
    response, records = c.send(alter(**arguments), version)
    assert only_partition(response).error_code == expected
    assert records == []


def test_a_stale_broker_epoch_fails_the_whole_request() -> None:
    c = cluster()
    response, records = c.send(alter([1, 2], epoch=5), 3)
    assert response.error_code == ErrorCode.STALE_BROKER_EPOCH
    assert response.topics == []
    assert records == []


def test_an_invalid_leader_recovery_state_is_an_unexpected_error() -> None:
    # LeaderRecoveryState.of throws IllegalArgumentException: UnknownServerException.
    response, records = cluster().send(alter([1, 2], recovery=5), 3)
    assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert records == []


def test_a_shrink_writes_the_new_isr_and_answers_the_new_state() -> None:
    c = cluster()
    response, records = c.send(alter([1, 2]), 3)
    assert fields_of(records) == fields_of(
        [PartitionChangeRecord(partition_id=0, topic_id=TOPIC_ID, isr=[1, 2])]
    )
    assert fields_of(only_partition(response)) == fields_of(
        AlterPartitionResponse.PartitionData(
            partition_index=0, leader_id=1, leader_epoch=0, isr=[1, 2], partition_epoch=1
        )
    )


def test_before_3_6_a_shrink_also_bumps_the_leader_epoch() -> None:
    # KAFKA-15021: metadata.version 3.5-IV2 (level 11) still needs the bump.
    c = cluster(level=11)
    response, records = c.send(alter([1, 3]), 3)
    assert (records[0].isr, records[0].leader) == ([1, 3], 1)
    assert (only_partition(response).leader_epoch, only_partition(response).partition_epoch) == (
        1,
        1,
    )


def test_an_expansion_does_not_bump_the_leader_epoch_even_before_3_6() -> None:
    c = cluster(level=11, partitions=[{"isr": [1]}])
    _, records = c.send(alter([1, 2]), 3)
    assert (records[0].isr, records[0].leader) == ([1, 2], -2)


def test_an_unchanged_isr_writes_nothing_and_answers_the_current_state() -> None:
    c = cluster()
    response, records = c.send(alter([1, 2, 3]), 3)
    assert records == []
    assert only_partition(response).isr == [1, 2, 3]
    assert only_partition(response).partition_epoch == 0


def test_a_recovered_leader_clears_the_recovering_state() -> None:
    c = cluster(partitions=[{"isr": [1], "leader_recovery_state": 1}])
    response, records = c.send(alter([1], recovery=0), 3)
    assert records[0].leader_recovery_state == 0
    assert only_partition(response).leader_recovery_state == 0


@pytest.mark.parametrize(("version", "expected"), [(3, ErrorCode.NEW_LEADER_ELECTED),
                                                   (1, ErrorCode.FENCED_LEADER_EPOCH)])  # fmt: skip
def test_completing_a_reassignment_that_moves_the_leader_answers_an_error_but_writes_it(
    version: int, expected: ErrorCode
) -> None:
    # Reassigning [1, 2] to [2, 3]: replicas [2, 3, 1], removing [1], adding [3].
    c = cluster(
        partitions=[
            {"replicas": [2, 3, 1], "isr": [1, 2], "removing_replicas": [1], "adding_replicas": [3]}
        ]
    )
    response, records = c.send(alter([1, 2, 3], version=version), version)
    assert only_partition(response).error_code == expected
    assert fields_of(records) == fields_of(
        [
            PartitionChangeRecord(
                partition_id=0,
                topic_id=TOPIC_ID,
                isr=[2, 3],
                leader=2,
                replicas=[2, 3],
                removing_replicas=[],
                adding_replicas=[],
                directories=[log_dir(2), log_dir(3)],
            )
        ]
    )
    assert c.partition().leader_epoch == 1


def test_completing_a_reassignment_that_keeps_the_leader_answers_the_new_state() -> None:
    # Reassigning [1, 2] to [1, 3]: completes once 3 joins the ISR.
    c = cluster(
        partitions=[
            {"replicas": [1, 3, 2], "isr": [1, 2], "removing_replicas": [2], "adding_replicas": [3]}
        ]
    )
    response, records = c.send(alter([1, 2, 3]), 3)
    assert only_partition(response).error_code == ErrorCode.NONE
    assert (records[0].isr, records[0].replicas, records[0].leader) == ([1, 3], [1, 3], 1)
    assert only_partition(response).isr == [1, 3]
    assert only_partition(response).leader_epoch == 1  # 2 left the replicas: a new epoch


def test_an_empty_request_is_answered_without_checking_the_broker() -> None:
    response, records = cluster().send(AlterPartitionRequest(broker_id=9, broker_epoch=1), 3)
    assert (response.error_code, response.topics, records) == (ErrorCode.NONE, [], [])


# -- the genuine story ------------------------------------------------------------------------


@needs_story
@pytest.mark.parametrize("index", range(5))
def test_genuine_alter_partition_gets_the_genuine_answer_and_records(index: int) -> None:
    """The five AlterPartition v3 of the multi-broker story (broker 3 back in every ISR,
    then the expanding reassignment completing), each against the genuine state just
    before the genuine controller's records for it."""
    exchange = exchanges(56)[index]
    first = exchange.request.topics[0]
    data = first.partitions[0]
    isr = [b.broker_id for b in data.new_isr_with_epochs]
    offset = first_change_for(exchange.time_ms, first.topic_id, data.partition_index, isr)
    controller = controller_before(offset)
    result = controller.handle(
        exchange.request, RequestContext(api_version=exchange.api_version), offset, exchange.time_ms
    )
    assert fields_of(result.response) == fields_of(exchange.response)
    assert_same_records([(rv.record, rv.version) for rv in result.records], offset)


# -- AssignReplicasToDirs (ReplicationControlManager.handleAssignReplicasToDirs) --------------


def assign(
    directory: Any, partitions: list[int], *, broker: int = 1, topic_id: Any = TOPIC_ID
) -> Any:
    return AssignReplicasToDirsRequest(
        broker_id=broker,
        broker_epoch=broker_epoch(broker),
        directories=[
            AssignReplicasToDirsRequest.DirectoryData(
                id=directory,
                topics=[
                    AssignReplicasToDirsRequest.TopicData(
                        topic_id=topic_id,
                        partitions=[
                            AssignReplicasToDirsRequest.PartitionData(partition_index=p)
                            for p in partitions
                        ],
                    )
                ],
            )
        ],
    )


def assign_errors(response: Any) -> list[int]:
    return [p.error_code for d in response.directories for t in d.topics for p in t.partitions]


def test_assigning_a_replica_to_an_online_directory_moves_only_the_directory() -> None:
    c = cluster(partitions=[{"directories": [DIR_UNASSIGNED, log_dir(2), log_dir(3)]}])
    response, records = c.send(assign(log_dir(1), [0, 4]), 0)
    assert assign_errors(response) == [ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    assert fields_of(records) == fields_of(
        [
            PartitionChangeRecord(
                partition_id=0,
                topic_id=TOPIC_ID,
                directories=[log_dir(1), log_dir(2), log_dir(3)],
            )
        ]
    )


def test_assigning_to_an_offline_directory_also_leaves_the_isr() -> None:
    c = cluster()
    offline = log_dir(9)
    _, records = c.send(assign(offline, [0]), 0)
    assert [r.directories for r in records] == [[offline, log_dir(2), log_dir(3)], None]
    assert (records[1].isr, records[1].leader) == ([2, 3], 2)


@pytest.mark.parametrize(
    ("broker", "topic_id", "expected"),
    [(4, TOPIC_ID, ErrorCode.NOT_LEADER_OR_FOLLOWER),
     (1, TOPIC_ID.__class__(int=5), ErrorCode.UNKNOWN_TOPIC_ID)],
    ids=["broker holds no replica", "unknown topic id"],
)  # fmt: skip
def test_assigning_what_the_broker_does_not_hold_gets_kafkas_error(
    broker: int, topic_id: Any, expected: ErrorCode
) -> None:
    response, records = cluster().send(
        assign(log_dir(broker), [0], broker=broker, topic_id=topic_id), 0
    )
    assert assign_errors(response) == [expected]
    assert records == []


def test_directory_assignment_needs_metadata_version_3_7_iv2() -> None:
    response, records = cluster(level=16).send(assign(log_dir(1), [0]), 0)
    assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert records == []


# -- the partition state machine, whatever happens ----------------------------------------------

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("alter"), st.sets(st.integers(1, 5))),
        st.tuples(st.just("elect"), st.sampled_from([0, 1])),
        st.tuples(
            st.just("reassign"),
            st.one_of(st.none(), st.lists(st.integers(1, 5), min_size=1, max_size=4, unique=True)),
        ),
        st.tuples(st.just("fence"), st.integers(1, 5), st.booleans()),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, unclean=st.booleans())
def test_the_partition_state_stays_consistent_whatever_happens(
    steps: list[tuple[Any, ...]], unclean: bool
) -> None:
    """Leader in the ISR (or none), ISR within the replicas, partition epoch strictly
    increasing with each change, leader epoch never decreasing."""
    c = cluster(brokers=5, topic_configs={"unclean.leader.election.enable": str(unclean).lower()})
    previous = c.partition()
    for step in steps:
        p = c.partition()
        match step:
            case ("alter", members):
                isr = sorted(members & set(p.replicas) | {p.leader})
                request = alter(
                    isr, broker=max(p.leader, 1), leader_epoch=p.leader_epoch,
                    partition_epoch=p.partition_epoch,
                )  # fmt: skip
                c.send(request, 3)
            case ("elect", election_type):
                c.send(
                    ElectLeadersRequest(
                        election_type=election_type,
                        topic_partitions=[
                            ElectLeadersRequest.TopicPartitions(topic=TOPIC, partitions=[0])
                        ],
                    ),
                    2,
                )
            case ("reassign", replicas):
                c.send(
                    AlterPartitionReassignmentsRequest(
                        topics=[
                            AlterPartitionReassignmentsRequest.ReassignableTopic(
                                name=TOPIC,
                                partitions=[
                                    AlterPartitionReassignmentsRequest.ReassignablePartition(
                                        partition_index=0, replicas=replicas
                                    )
                                ],
                            )
                        ]
                    ),
                    0,
                )
            case ("fence", broker, fenced):
                # The broker's session lapses or it comes back, as the heartbeat path
                # writes it.
                registration = c.controller.brokers[broker]
                unclean = functools.partial(unclean_election_enabled, c.controller)
                if registration.fenced != fenced:
                    records = (
                        fence_broker_records(
                            c.controller.image,
                            broker,
                            c.controller.metadata_version,
                            unclean_election=unclean,
                        )
                        if fenced
                        else unfence_broker_records(
                            c.controller.image,
                            broker,
                            registration.epoch,
                            c.controller.metadata_version,
                            unclean_election=unclean,
                        )
                    )
                    c.replay(*records, version=1)
        p = c.partition()
        assert p.leader == -1 or p.leader in p.isr
        assert p.isr, "the ISR is never empty while ELR is off"
        assert set(p.isr) <= set(p.replicas)
        assert len(set(p.replicas)) == len(p.replicas)
        assert set(p.adding_replicas) | set(p.removing_replicas) <= set(p.replicas)
        if p != previous:
            assert p.partition_epoch > previous.partition_epoch
        assert p.leader_epoch >= previous.leader_epoch
        previous = p
