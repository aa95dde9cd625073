"""CreateTopics: validation, defaults, replica placement, configs and records."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest
from test_controller_cluster import Cluster

from kwire.controller.replication import random_topic_id
from kwire.controller.topic_configs import TOPIC_CONFIGS, ConfigSource, java_hash_map_order
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest

Topic = CreateTopicsRequest.CreatableTopic
Config = CreateTopicsRequest.CreatableTopicConfig
Assignment = CreateTopicsRequest.CreatableReplicaAssignment


def create(cluster: Cluster, *topics: Topic, validate_only: bool = False):  # type: ignore[no-untyped-def]
    return cluster.send(CreateTopicsRequest(topics=list(topics), validate_only=validate_only))


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        (Topic(name="", num_partitions=1, replication_factor=1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (
            Topic(name="..", num_partitions=1, replication_factor=1),
            ErrorCode.INVALID_TOPIC_EXCEPTION,
        ),
        (
            Topic(name="a b", num_partitions=1, replication_factor=1),
            ErrorCode.INVALID_TOPIC_EXCEPTION,
        ),
        (
            Topic(name="x" * 250, num_partitions=1, replication_factor=1),
            ErrorCode.INVALID_TOPIC_EXCEPTION,
        ),
        (Topic(name="t", num_partitions=0, replication_factor=1), ErrorCode.INVALID_PARTITIONS),
        (Topic(name="t", num_partitions=-2, replication_factor=1), ErrorCode.INVALID_PARTITIONS),
        (
            Topic(name="t", num_partitions=1, replication_factor=0),
            ErrorCode.INVALID_REPLICATION_FACTOR,
        ),
        (
            Topic(name="t", num_partitions=1, replication_factor=4),
            ErrorCode.INVALID_REPLICATION_FACTOR,
        ),
        (
            Topic(
                name="t",
                num_partitions=1,
                replication_factor=1,
                configs=[Config(name="nope", value="1")],
            ),
            ErrorCode.INVALID_CONFIG,
        ),
        (
            Topic(
                name="t",
                num_partitions=1,
                replication_factor=1,
                configs=[Config(name="retention.ms", value="x")],
            ),
            ErrorCode.INVALID_CONFIG,
        ),
        (
            Topic(
                name="t",
                num_partitions=1,
                replication_factor=1,
                configs=[Config(name="cleanup.policy", value=None)],
            ),  # type: ignore[arg-type]
            ErrorCode.INVALID_CONFIG,
        ),
        (
            Topic(
                name="t",
                num_partitions=1,
                replication_factor=1,
                assignments=[Assignment(partition_index=0, broker_ids=[2])],
            ),
            ErrorCode.INVALID_REQUEST,
        ),
        (
            Topic(
                name="t",
                num_partitions=-1,
                replication_factor=-1,
                assignments=[Assignment(partition_index=0, broker_ids=[9])],
            ),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            Topic(
                name="t",
                num_partitions=-1,
                replication_factor=-1,
                assignments=[Assignment(partition_index=0, broker_ids=[2, 2])],
            ),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            Topic(
                name="t",
                num_partitions=-1,
                replication_factor=-1,
                assignments=[Assignment(partition_index=1, broker_ids=[2])],
            ),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            Topic(name="__cluster_metadata", num_partitions=1, replication_factor=1),
            ErrorCode.INVALID_REQUEST,
        ),
    ],
)
def test_invalid_topic_is_rejected_without_records(topic: Topic, error: ErrorCode) -> None:
    cluster = Cluster.started().unfenced(2, 3, 4)
    response, records = create(cluster, topic)
    assert [t.error_code for t in response.topics] == [error]
    assert response.topics[0].error_message
    assert records == []


def test_existing_topic_is_rejected() -> None:
    cluster = Cluster.started().unfenced(2)
    create(cluster, Topic(name="t", num_partitions=1, replication_factor=1))
    response, records = create(cluster, Topic(name="t", num_partitions=1, replication_factor=1))
    assert response.topics[0].error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    assert response.topics[0].error_message == "Topic 't' already exists."
    assert records == []


def test_colliding_topic_name_is_rejected() -> None:
    cluster = Cluster.started().unfenced(2)
    create(cluster, Topic(name="a.b", num_partitions=1, replication_factor=1))
    response, _ = create(cluster, Topic(name="a_b", num_partitions=1, replication_factor=1))
    assert response.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_duplicate_names_in_one_request_are_rejected() -> None:
    cluster = Cluster.started().unfenced(2)
    topic = Topic(name="t", num_partitions=1, replication_factor=1)
    response, records = create(cluster, topic, topic)
    assert [(t.name, t.error_code) for t in response.topics] == [("t", ErrorCode.INVALID_REQUEST)]
    assert records == []


def test_create_topic_writes_topic_configs_then_partitions() -> None:
    cluster = Cluster.started().unfenced(2)
    configs = [
        Config(name="segment.bytes", value="1000000"),
        Config(name="cleanup.policy", value="compact"),
    ]
    response, records = create(
        cluster, Topic(name="t", num_partitions=2, replication_factor=1, configs=configs)
    )
    result = response.topics[0]
    assert result.error_code == ErrorCode.NONE and result.error_message is None
    assert records == [
        "TopicRecord",
        "ConfigRecord",
        "ConfigRecord",
        "PartitionRecord",
        "PartitionRecord",
    ]
    topic = cluster.controller.topics_by_name["t"]
    assert result.topic_id == topic.topic_id
    assert (result.num_partitions, result.replication_factor) == (2, 1)
    assert cluster.controller.image.topic_config("t") == {c.name: c.value for c in configs}
    sources = {c.name: (c.value, c.config_source) for c in result.configs}
    assert sorted(sources) == sorted(TOPIC_CONFIGS)
    assert sources["segment.bytes"] == ("1000000", ConfigSource.TOPIC_CONFIG)
    assert sources["retention.ms"] == (
        TOPIC_CONFIGS["retention.ms"].default,
        ConfigSource.DEFAULT_CONFIG,
    )


def test_static_controller_configs_are_reported_as_such() -> None:
    cluster = Cluster.started(static_topic_configs={"retention.ms": "1000"}).unfenced(2)
    response, _ = create(cluster, Topic(name="t", num_partitions=1, replication_factor=1))
    sources = {c.name: (c.value, c.config_source) for c in response.topics[0].configs}
    assert sources["retention.ms"] == ("1000", ConfigSource.STATIC_BROKER_CONFIG)


def test_validate_only_answers_without_writing() -> None:
    cluster = Cluster.started().unfenced(2)
    response, records = create(
        cluster, Topic(name="t", num_partitions=3, replication_factor=1), validate_only=True
    )
    assert response.topics[0].error_code == ErrorCode.NONE
    assert records == []
    assert "t" not in cluster.controller.topics_by_name


@pytest.mark.parametrize(("num_partitions", "replication_factor"), [(-1, -1), (-1, 2), (5, -1)])
def test_minus_one_uses_num_partitions_and_default_replication_factor(
    num_partitions: int, replication_factor: int
) -> None:
    cluster = Cluster.started(num_partitions=4, default_replication_factor=3).unfenced(2, 3, 4)
    response, _ = create(
        cluster,
        Topic(name="t", num_partitions=num_partitions, replication_factor=replication_factor),
    )
    result = response.topics[0]
    assert result.num_partitions == (4 if num_partitions == -1 else num_partitions)
    assert result.replication_factor == (3 if replication_factor == -1 else replication_factor)


def test_create_topics_places_replicas_over_unfenced_brokers() -> None:
    cluster = Cluster.started().unfenced(2, 3, 4)
    cluster.register(5)  # registered but fenced: never a leader
    create(cluster, Topic(name="t", num_partitions=12, replication_factor=2))
    partitions = cluster.controller.topics_by_name["t"].partitions.values()
    leaders = Counter(p.leader for p in partitions)
    assert set(leaders) == {2, 3, 4}
    assert max(leaders.values()) - min(leaders.values()) <= 1  # striped evenly
    for p in partitions:
        assert len(set(p.replicas)) == 2
        assert p.leader == p.replicas[0]
        assert 5 not in p.isr
        assert p.directories == tuple(uuid.UUID(int=10_000 + b) for b in p.replicas)


def test_placement_prefers_different_racks() -> None:
    cluster = Cluster.started()
    for broker_id, rack in [(2, "a"), (3, "a"), (4, "b"), (5, "b")]:
        cluster.register(broker_id, rack=rack)
        cluster.heartbeat(broker_id, want_fence=False)
    create(cluster, Topic(name="t", num_partitions=8, replication_factor=2))
    racks = {b: cluster.controller.brokers[b].rack for b in (2, 3, 4, 5)}
    for p in cluster.controller.topics_by_name["t"].partitions.values():
        assert {racks[r] for r in p.replicas} == {"a", "b"}


def test_placement_is_deterministic_for_a_seed() -> None:
    def replicas() -> list[tuple[int, ...]]:
        cluster = Cluster.started().unfenced(2, 3, 4, 5)
        create(cluster, Topic(name="t", num_partitions=6, replication_factor=3))
        return [p.replicas for p in cluster.controller.topics_by_name["t"].partitions.values()]

    assert replicas() == replicas()


def test_manual_assignment_is_used_as_given() -> None:
    cluster = Cluster.started().unfenced(2, 3)
    assignments = [
        Assignment(partition_index=0, broker_ids=[3, 2]),
        Assignment(partition_index=1, broker_ids=[2, 3]),
    ]
    response, _ = create(
        cluster, Topic(name="t", num_partitions=-1, replication_factor=-1, assignments=assignments)
    )
    assert response.topics[0].error_code == ErrorCode.NONE
    partitions = cluster.controller.topics_by_name["t"].partitions
    assert [(partitions[i].replicas, partitions[i].leader) for i in (0, 1)] == [
        ((3, 2), 3),
        ((2, 3), 2),
    ]


def test_no_unfenced_broker_means_invalid_replication_factor() -> None:
    cluster = Cluster.started()
    cluster.register(2)
    response, _ = create(cluster, Topic(name="t", num_partitions=1, replication_factor=1))
    assert response.topics[0].error_code == ErrorCode.INVALID_REPLICATION_FACTOR


def test_config_records_follow_java_hash_map_order() -> None:
    # Kafka's own order for the __consumer_offsets configs, as its log shows it.
    assert java_hash_map_order(["segment.bytes", "cleanup.policy", "compression.type"]) == [
        "compression.type",
        "cleanup.policy",
        "segment.bytes",
    ]


def test_topic_ids_are_random_but_never_reserved_or_dash_prefixed() -> None:
    import base64

    rng = random.Random(3)
    for _ in range(500):
        topic_id = random_topic_id(rng)
        assert topic_id.int >= 100
        assert not base64.urlsafe_b64encode(topic_id.bytes).startswith(b"-")
