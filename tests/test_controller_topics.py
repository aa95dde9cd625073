"""DeleteTopics and CreatePartitions as Kafka 3.9's controller answers them and the
records it writes (ControllerApis.deleteTopics / createPartitions and
ReplicationControlManager.deleteTopics / createPartitions decide every expected value)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from multi_broker import forwarded, genuine_log, needs_capture, replayed_until
from test_controller_cluster import Cluster

from kwire.controller import RequestContext
from kwire.controller.api_error import MAX_RECORDS_PER_USER_OP
from kwire.controller.image import ConfigResourceType
from kwire.controller.operation import ControllerResult
from kwire.controller.topics import java_hash_map_order_by, java_uuid_hash
from kwire.protocol._codec import ZERO_UUID, Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.protocol.messages.unregister_broker import UnregisterBrokerRequest

State = DeleteTopicsRequest.DeleteTopicState
NewPartitions = CreatePartitionsRequest.CreatePartitionsTopic
Assignment = CreatePartitionsRequest.CreatePartitionsAssignment
UNKNOWN_ID = uuid.UUID("6f1c1f4e-0000-4000-8000-000000000001")


def grow(name: str, count: int) -> NewPartitions:
    """A topic to grow to ``count`` partitions placed by the controller (null
    assignments; an empty list would mean zero assignments)."""
    return NewPartitions(name=name, count=count, assignments=None)


def send(cluster: Cluster, request: Message, version: int) -> ControllerResult:
    result = cluster.controller.handle(
        request, RequestContext(api_version=version), cluster.next_offset, cluster.now_ms
    )
    cluster.next_offset += len(result.records)
    return result


def with_topics(*specs: tuple[str, int, int], brokers: int = 3) -> Cluster:
    """Unfenced brokers 1..brokers and topics (name, partitions, replication factor)."""
    cluster = Cluster.started().unfenced(*range(1, brokers + 1))
    topics = [
        CreateTopicsRequest.CreatableTopic(name=n, num_partitions=p, replication_factor=rf)
        for n, p, rf in specs
    ]
    result = send(cluster, CreateTopicsRequest(topics=topics), 7)
    assert all(t.error_code == 0 for t in result.response.topics)  # type: ignore[union-attr]
    return cluster


def topic_id(cluster: Cluster, name: str) -> uuid.UUID:
    return cluster.controller.image.topic_ids_by_name[name]


def answers(response: Any) -> list[tuple[str | None, uuid.UUID, int, str | None]]:
    assert isinstance(response, DeleteTopicsResponse)
    return sorted(
        ((r.name, r.topic_id, r.error_code, r.error_message) for r in response.responses),
        key=str,
    )


# -- DeleteTopics ----------------------------------------------------------------------------

DUPLICATE_NAME = "Duplicate topic name."


@pytest.mark.parametrize(
    ("case", "states", "expected"),
    [
        (
            "an unknown name",
            lambda c: [State(name="nope")],
            lambda c: [
                (
                    "nope",
                    ZERO_UUID,
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.",
                ),
            ],
        ),
        (
            "an unknown id",
            lambda c: [State(name=None, topic_id=UNKNOWN_ID)],
            lambda c: [
                (
                    None,
                    UNKNOWN_ID,
                    ErrorCode.UNKNOWN_TOPIC_ID,
                    "This server does not host this topic ID.",
                ),
            ],
        ),
        (
            "both a name and an id",
            lambda c: [State(name="a", topic_id=topic_id(c, "a"))],
            lambda c: [
                (
                    "a",
                    topic_id(c, "a"),
                    ErrorCode.INVALID_REQUEST,
                    "You may not specify both topic name and topic id.",
                ),
            ],
        ),
        (
            "neither a name nor an id",
            lambda c: [State(name=None, topic_id=ZERO_UUID)],
            lambda c: [
                (
                    None,
                    ZERO_UUID,
                    ErrorCode.INVALID_REQUEST,
                    "Neither topic name nor id were specified.",
                ),
            ],
        ),
        (
            "a name given twice",
            lambda c: [State(name="a"), State(name="a"), State(name="a")],
            lambda c: [("a", ZERO_UUID, ErrorCode.INVALID_REQUEST, DUPLICATE_NAME)],
        ),
        (
            "an id given twice",
            lambda c: [State(name=None, topic_id=topic_id(c, "a"))] * 2,
            lambda c: [
                (None, topic_id(c, "a"), ErrorCode.INVALID_REQUEST, "Duplicate topic id."),
            ],
        ),
        (
            "a name whose id is also given",
            lambda c: [State(name=None, topic_id=topic_id(c, "a")), State(name="a")],
            # Only the name is answered; neither deletes anything.
            lambda c: [
                (
                    "a",
                    topic_id(c, "a"),
                    ErrorCode.INVALID_REQUEST,
                    "The provided topic name maps to an ID that was already supplied.",
                ),
            ],
        ),
    ],
)
def test_delete_topics_answers_bad_items_with_kafkas_errors_and_deletes_nothing(
    case: str, states: Any, expected: Any
) -> None:
    cluster = with_topics(("a", 1, 1))
    result = send(cluster, DeleteTopicsRequest(topics=states(cluster)), 6)
    assert answers(result.response) == sorted(expected(cluster), key=str), case
    assert result.records == []
    assert "a" in cluster.controller.image.topic_ids_by_name


def test_delete_topics_by_name_and_by_id_writes_one_remove_topic_record_each() -> None:
    cluster = with_topics(("a", 2, 2), ("b", 1, 1), ("c", 1, 1))
    a, b = topic_id(cluster, "a"), topic_id(cluster, "b")
    cluster.controller.image.configs[(ConfigResourceType.TOPIC, "a")] = {"retention.ms": "1"}
    request = DeleteTopicsRequest(topics=[State(name="a"), State(name=None, topic_id=b)])
    result = send(cluster, request, 6)
    assert answers(result.response) == sorted(
        [("a", a, ErrorCode.NONE, None), ("b", b, ErrorCode.NONE, None)], key=str
    )
    assert result.atomic
    removed = [rv.record.topic_id for rv in result.records]  # type: ignore[attr-defined]
    assert all(isinstance(rv.record, RemoveTopicRecord) for rv in result.records)
    # The records follow the java.util.HashMap Kafka keeps the ids in.
    assert removed == java_hash_map_order_by([a, b], java_uuid_hash)
    image = cluster.controller.image
    assert set(image.topic_ids_by_name) == {"c"}
    assert (ConfigResourceType.TOPIC, "a") not in image.configs  # configs go with the topic
    assert all(a not in topics for topics in image.isr_members.values())


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4, 5])
def test_delete_topics_before_v6_names_topics_in_topic_names(version: int) -> None:
    cluster = with_topics(("a", 1, 1))
    a = topic_id(cluster, "a")
    result = send(cluster, DeleteTopicsRequest(topic_names=["a", "zz"]), version)
    assert answers(result.response) == sorted(
        [
            ("a", a, ErrorCode.NONE, None),
            (
                "zz",
                ZERO_UUID,
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.",
            ),
        ],
        key=str,
    )
    assert len(result.records) == 1


@pytest.mark.parametrize(
    ("version", "code"),
    [
        (0, ErrorCode.INVALID_REQUEST),  # InvalidRequestException below v3
        (2, ErrorCode.INVALID_REQUEST),
        (3, ErrorCode.TOPIC_DELETION_DISABLED),
        (6, ErrorCode.TOPIC_DELETION_DISABLED),
    ],
)
def test_delete_topics_is_refused_as_a_whole_when_delete_topic_enable_is_false(
    version: int, code: ErrorCode
) -> None:
    cluster = Cluster.started(delete_topic_enable=False).unfenced(1)
    send(
        cluster,
        CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(name="a")]),
        7,
    )
    if version >= 6:
        request = DeleteTopicsRequest(topics=[State(name="a")])
    else:
        request = DeleteTopicsRequest(topic_names=["a"])
    result = send(cluster, request, version)
    assert result.records == []
    assert [(r.name, r.error_code) for r in result.response.responses] == [  # type: ignore[union-attr]
        ("a", code)
    ]


def test_deleting_more_than_10000_topics_deletes_10000_and_fails_the_rest() -> None:
    cluster = Cluster.started()
    image = cluster.controller.image
    names = [f"t{i}" for i in range(MAX_RECORDS_PER_USER_OP + 2)]
    for offset, name in enumerate(names, start=cluster.next_offset):
        image.replay(TopicRecord(name=name, topic_id=uuid.UUID(int=10**6 + offset)), 0, offset)
    cluster.next_offset += len(names)
    result = send(cluster, DeleteTopicsRequest(topics=[State(name=n) for n in names]), 6)
    codes = [r.error_code for r in result.response.responses]  # type: ignore[union-attr]
    # BoundedList refuses the 10,001st RemoveTopicRecord: UnknownServerException per id.
    assert codes.count(ErrorCode.NONE) == MAX_RECORDS_PER_USER_OP
    assert codes.count(ErrorCode.UNKNOWN_SERVER_ERROR) == 2
    assert len(result.records) == MAX_RECORDS_PER_USER_OP
    assert len(image.topic_ids_by_name) == 2


@pytest.mark.parametrize(
    ("case", "keys", "expected"),
    [
        # Uuid.hashCode = (int)(xor >> 32) ^ (int)xor, with xor = msb ^ lsb.
        ("msb only", [uuid.UUID(int=(1 << 96) | (2 << 64))], [3]),
        ("lsb only", [uuid.UUID(int=(5 << 32) | 7)], [2]),
        ("both halves cancel", [uuid.UUID(int=(9 << 64) | 9)], [0]),
    ],
)
def test_java_uuid_hash_is_kafkas_uuid_hash_code(case: str, keys: Any, expected: Any) -> None:
    assert [java_uuid_hash(k) for k in keys] == expected, case


def test_java_hash_map_order_visits_buckets_in_order_and_ties_in_insertion_order() -> None:
    one, seventeen, two = uuid.UUID(int=1), uuid.UUID(int=17), uuid.UUID(int=2)
    # Capacity 16: hashes 17 and 1 share bucket 1, hash 2 is bucket 2.
    assert java_hash_map_order_by([two, seventeen, one], java_uuid_hash) == [seventeen, one, two]


@needs_capture
def test_genuine_delete_topics_v6_gets_the_genuine_answer_and_record() -> None:
    [exchange] = forwarded(20)
    assert exchange.api_version == 6
    [removal] = [g for g in genuine_log() if isinstance(g.record, RemoveTopicRecord)]
    controller = replayed_until(removal.offset)
    result = controller.handle(
        exchange.request,
        RequestContext(api_version=6, envelope=True),
        removal.offset,
        exchange.time_ms,
    )
    assert result.response == exchange.response
    assert [(type(rv.record), rv.version) for rv in result.records] == [
        (RemoveTopicRecord, removal.version)
    ]
    assert result.records[0].record == removal.record
    assert "t1" not in controller.topics_by_name


# -- CreatePartitions ------------------------------------------------------------------------


def results(response: Any) -> list[tuple[str, int, str | None]]:
    assert isinstance(response, CreatePartitionsResponse)
    return [(r.name, r.error_code, r.error_message) for r in response.results]


@pytest.mark.parametrize(
    ("case", "topic", "code", "message"),
    [
        (
            "an unknown topic",
            grow("nope", 4),
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            None,
        ),
        (
            "the same count",
            grow("a", 3),
            ErrorCode.INVALID_PARTITIONS,
            "Topic already has 3 partition(s).",
        ),
        (
            "a smaller count",
            grow("a", 2),
            ErrorCode.INVALID_PARTITIONS,
            "The topic a currently has 3 partition(s); 2 would not be an increase.",
        ),
        (
            "fewer assignments than partitions",
            NewPartitions(name="a", count=5, assignments=[Assignment(broker_ids=[1, 2])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.",
        ),
        (
            "an empty assignment",
            NewPartitions(name="a", count=4, assignments=[Assignment(broker_ids=[])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes an empty replica list.",
        ),
        (
            "an unregistered broker",
            NewPartitions(name="a", count=4, assignments=[Assignment(broker_ids=[1, 9])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes broker 9, but no such broker is registered.",
        ),
        (
            "a broker twice",
            NewPartitions(name="a", count=4, assignments=[Assignment(broker_ids=[2, 2])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes the broker 2 more than once.",
        ),
        (
            "another replication factor",
            NewPartitions(name="a", count=4, assignments=[Assignment(broker_ids=[1, 2, 3])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes a partition with 3 replica(s), but this is "
            "not consistent with previous partitions, which have 2 replica(s).",
        ),
        (
            "only fenced brokers",
            NewPartitions(
                name="a",
                count=5,
                assignments=[Assignment(broker_ids=[1, 2]), Assignment(broker_ids=[4, 5])],
            ),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "All brokers specified in the manual partition assignment for partition 4 are fenced "
            "or in controlled shutdown.",
        ),
    ],
)
def test_create_partitions_answers_bad_topics_with_kafkas_errors_and_writes_nothing(
    case: str, topic: NewPartitions, code: ErrorCode, message: str | None
) -> None:
    cluster = with_topics(("a", 3, 2))
    cluster.register(4)  # registered, still fenced
    cluster.register(5)
    result = send(cluster, CreatePartitionsRequest(topics=[topic]), 3)
    assert results(result.response) == [(topic.name, code, message)], case
    assert result.records == []


def test_create_partitions_places_new_partitions_with_the_active_replicas_as_isr() -> None:
    cluster = with_topics(("a", 2, 3))
    a = topic_id(cluster, "a")
    result = send(cluster, CreatePartitionsRequest(topics=[grow("a", 5)]), 3)
    assert results(result.response) == [("a", ErrorCode.NONE, None)]
    assert result.atomic
    records = [rv.record for rv in result.records]
    assert [type(r) for r in records] == [PartitionRecord] * 3
    for partition_id, record in enumerate(records, start=2):
        assert isinstance(record, PartitionRecord)
        assert (record.topic_id, record.partition_id) == (a, partition_id)
        assert sorted(record.replicas) == [1, 2, 3]
        assert record.isr == record.replicas  # every replica is active
        assert record.leader == record.replicas[0]
        assert (record.leader_epoch, record.partition_epoch) == (0, 0)
        assert record.directories == [uuid.UUID(int=10_000 + b) for b in record.replicas]
    assert sorted(cluster.controller.image.topics[a].partitions) == [0, 1, 2, 3, 4]


def test_create_partitions_with_assignments_keeps_fenced_replicas_out_of_the_isr() -> None:
    cluster = with_topics(("a", 1, 2))
    cluster.register(4)  # fenced
    request = CreatePartitionsRequest(
        topics=[NewPartitions(name="a", count=2, assignments=[Assignment(broker_ids=[4, 2])])]
    )
    result = send(cluster, request, 3)
    assert results(result.response) == [("a", ErrorCode.NONE, None)]
    [record] = [rv.record for rv in result.records]
    assert isinstance(record, PartitionRecord)
    assert (record.replicas, record.isr, record.leader) == ([4, 2], [2], 2)


def test_create_partitions_validate_only_answers_the_same_and_writes_nothing() -> None:
    cluster = with_topics(("a", 1, 1), ("b", 1, 1))
    request = CreatePartitionsRequest(
        topics=[grow("a", 3), grow("b", 1)],
        validate_only=True,
    )
    result = send(cluster, request, 3)
    assert sorted(results(result.response)) == [
        ("a", ErrorCode.NONE, None),
        ("b", ErrorCode.INVALID_PARTITIONS, "Topic already has 1 partition(s)."),
    ]
    assert result.records == []
    assert len(cluster.controller.image.topics[topic_id(cluster, "a")].partitions) == 1


def test_create_partitions_answers_duplicates_first_and_still_grows_the_others() -> None:
    cluster = with_topics(("a", 1, 1), ("b", 1, 1))
    request = CreatePartitionsRequest(
        topics=[
            grow("a", 2),
            grow("b", 2),
            grow("a", 3),
        ]
    )
    result = send(cluster, request, 3)
    assert results(result.response) == [
        ("a", ErrorCode.INVALID_REQUEST, "Duplicate topic name."),
        ("b", ErrorCode.NONE, None),
    ]
    assert len(result.records) == 1


def test_create_partitions_without_enough_brokers_is_refused_by_the_placer() -> None:
    cluster = with_topics(("a", 1, 3))
    send(cluster, UnregisterBrokerRequest(broker_id=3), 0)
    result = send(cluster, CreatePartitionsRequest(topics=[grow("a", 2)]), 3)
    assert results(result.response) == [
        (
            "a",
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "The target replication factor of 3 cannot be reached because only 2 broker(s) are "
            "registered.",
        ),
    ]


def test_create_partitions_for_more_than_10000_topics_fails_every_topic() -> None:
    cluster = with_topics(("a", 1, 1))
    names = [f"t{i}" for i in range(MAX_RECORDS_PER_USER_OP + 1)]
    request = CreatePartitionsRequest(topics=[grow(n, 2) for n in names])
    result = send(cluster, request, 3)
    # The bounded result list refuses the 10,001st result: a policy violation for all.
    assert {r[1:] for r in results(result.response)} == {
        (ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
    }
    assert result.records == []


def test_partitions_past_10000_records_fail_their_topic_but_keep_the_records_before() -> None:
    cluster = with_topics(("a", 1, 1), ("b", 1, 1))
    request = CreatePartitionsRequest(
        topics=[
            grow("a", MAX_RECORDS_PER_USER_OP),
            grow("b", 3),
        ]
    )
    result = send(cluster, request, 3)
    by_name = {r[0]: r[1:] for r in results(result.response)}
    # Kafka's BoundedList throws inside the per-topic try: UnknownServerException (no
    # message) for the topic that overflowed; its earlier records are still written.
    # HashSet order visits "a" (hash 97) before "b" (98): a's 9,999 partitions fit, b's
    # second does not; b keeps its first.
    assert by_name == {"a": (ErrorCode.NONE, None), "b": (ErrorCode.UNKNOWN_SERVER_ERROR, None)}
    image = cluster.controller.image
    assert len(image.topics[topic_id(cluster, "b")].partitions) == 2
    assert len(result.records) == MAX_RECORDS_PER_USER_OP


@needs_capture
def test_genuine_create_partitions_v3_gets_the_genuine_answer_and_records_by_rule() -> None:
    [exchange] = forwarded(37)
    assert exchange.api_version == 3
    genuine = [
        g
        for g in genuine_log()
        if isinstance(g.record, PartitionRecord) and g.record.partition_id >= 6
    ]
    assert [g.record.partition_id for g in genuine] == [6, 7, 8]  # type: ignore[attr-defined]
    start = genuine[0].offset
    controller = replayed_until(start)
    controller.activate(exchange.time_ms, start)
    result = controller.handle(
        exchange.request, RequestContext(api_version=3, envelope=True), start, exchange.time_ms
    )
    assert result.response == exchange.response
    assert result.atomic
    assert [rv.version for rv in result.records] == [g.version for g in genuine]
    directories = {b: r.directories[0] for b, r in controller.brokers.items()}
    ours = [rv.record for rv in result.records]
    for record, logged in zip(ours, genuine, strict=True):
        theirs = logged.record
        assert isinstance(record, PartitionRecord) and isinstance(theirs, PartitionRecord)
        # Placement is random by nature: compare by rule. One replica per rack (r1, r2,
        # r3 = brokers 2, 3, 4), ISR = replicas, leader = first, epochs 0.
        assert sorted(record.replicas) == sorted(theirs.replicas) == [2, 3, 4]
        assert record.isr == record.replicas
        assert record.leader == record.replicas[0]
        assert record.directories == [directories[b] for b in record.replicas]
        for name in (
            "topic_id",
            "partition_id",
            "leader_epoch",
            "partition_epoch",
            "removing_replicas",
            "adding_replicas",
            "leader_recovery_state",
        ):
            assert getattr(record, name) == getattr(theirs, name), name
    # The striped placer rotates leadership over the three brokers, as Kafka's did.
    assert sorted(r.leader for r in ours) == sorted(g.record.leader for g in genuine) == [2, 3, 4]  # type: ignore[attr-defined]
