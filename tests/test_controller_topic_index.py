"""The image's incremental topic indexes keep each request's cost flat as the cluster grows.

CreateTopics checks a new name against the topics whose names collide with it ('.' and
'_' are the same character to Kafka's metrics), as ReplicationControlManager does with its
topicsWithCollisionChars map; the leader rebalance knows after each write whether any
partition's leader is not its preferred replica (Kafka's imbalancedPartitions). Both are
kept by the image's replay, so each must equal a rebuild over every topic after any
creates, deletes, leader changes and reverts.
"""

from __future__ import annotations

import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_controller_integrity import image_state
from test_controller_topics import send, with_topics

from kwire.controller.image import MetadataImage, collision_key, leader_is_not_preferred
from kwire.controller.image_load import ImageLoader
from kwire.controller.records import RecordAndVersion
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

Creatable = CreateTopicsRequest.CreatableTopic


def create_one(cluster: object, name: str) -> tuple[int, str | None]:
    result = send(
        cluster,
        CreateTopicsRequest(topics=[Creatable(name=name, num_partitions=1, replication_factor=1)]),
        7,
    )  # type: ignore[arg-type]
    assert isinstance(result.response, CreateTopicsResponse)
    (answer,) = result.response.topics
    return answer.error_code, answer.error_message


# -- CreateTopics' collision check, as Kafka 3.9's ReplicationControlManager.validateNewTopicNames


def test_a_name_equal_to_an_existing_one_but_for_dot_and_underscore_collides() -> None:
    cluster = with_topics(("metrics_in", 1, 1))
    assert create_one(cluster, "metrics.in") == (
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        "Topic 'metrics.in' collides with existing topic: metrics_in",
    )


def test_the_existing_name_itself_is_reported_as_already_existing() -> None:
    cluster = with_topics(("a.b", 1, 1))
    assert create_one(cluster, "a.b") == (
        ErrorCode.TOPIC_ALREADY_EXISTS,
        "Topic 'a.b' already exists.",
    )


def test_a_deleted_topic_no_longer_collides() -> None:
    cluster = with_topics(("a_b", 1, 1))
    deleted = send(
        cluster, DeleteTopicsRequest(topics=[DeleteTopicsRequest.DeleteTopicState(name="a_b")]), 6
    )
    assert deleted.records
    assert create_one(cluster, "a.b") == (ErrorCode.NONE, None)


def test_a_creation_taken_back_before_commit_no_longer_collides() -> None:
    cluster = with_topics(("x", 1, 1))
    before = cluster.next_offset
    assert create_one(cluster, "a.b")[0] == ErrorCode.NONE
    cluster.controller.revert_to(before - 1)  # the append failed
    cluster.next_offset = before
    assert create_one(cluster, "a_b") == (ErrorCode.NONE, None)


def test_names_without_dot_or_underscore_never_collide() -> None:
    cluster = with_topics(("a-b", 1, 1))
    assert create_one(cluster, "a-c") == (ErrorCode.NONE, None)
    assert cluster.controller.image.topics_by_collision_key == {}


# -- every index equals its rebuild over the whole image ------------------------------------


def rebuilt_collisions(image: MetadataImage) -> dict[str, list[str]]:
    """The collision index as a full scan builds it: topics in creation order."""
    index: dict[str, list[str]] = {}
    for name in image.topic_ids_by_name:
        if "." in name or "_" in name:
            index.setdefault(collision_key(name), []).append(name)
    return index


def rebuilt_imbalance(image: MetadataImage) -> int:
    return sum(leader_is_not_preferred(p) for _, _, p in image.iter_partitions())


def rebuilt_isr_members(image: MetadataImage) -> dict[int, dict[uuid.UUID, set[int]]]:
    """broker -> topic -> the partitions whose ISR holds it (leaderless ones under -1)."""
    index: dict[int, dict[uuid.UUID, set[int]]] = {}
    for topic, partition_id, partition in image.iter_partitions():
        for broker in {*partition.isr, *([-1] if partition.leader == -1 else [])}:
            index.setdefault(broker, {}).setdefault(topic.topic_id, set()).add(partition_id)
    return index


def isr_members(image: MetadataImage) -> dict[int, dict[uuid.UUID, set[int]]]:
    return {
        broker: {t: set(ps) for t, ps in by_topic.items()}
        for broker, by_topic in image.isr_members.items()
        if by_topic
    }


def indexes(image: MetadataImage) -> tuple[dict[str, list[str]], int]:
    collisions = {key: list(names) for key, names in image.topics_by_collision_key.items()}
    return collisions, image.imbalanced_count


def partition_record(topic_id: uuid.UUID, partition: int, leader: int) -> PartitionRecord:
    return PartitionRecord(
        partition_id=partition, topic_id=topic_id, replicas=[1, 2, 3], isr=[1, 2, 3], leader=leader
    )


NAMES = ["a.b", "a_b", "a-b", "x.y.z", "x_y.z", "plain"]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(NAMES), st.integers(0, 2)),
        st.tuples(st.just("create at once"), st.sampled_from(NAMES), st.integers(0, 2)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(0)),
        st.tuples(st.just("lead"), st.sampled_from(NAMES), st.integers(0, 2)),
        st.tuples(st.just("commit"), st.just(""), st.just(0)),
        st.tuples(st.just("revert"), st.just(""), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(STEPS)
# A removal taken back: the colliding names keep their creation order.
@example(
    [
        ("create", "a.b", 0),
        ("create", "a_b", 0),
        ("commit", "", 0),
        ("delete", "a.b", 0),
        ("revert", "", 0),
    ]
)
def test_indexes_equal_a_full_rebuild_after_creates_deletes_and_reverts(
    steps: list[tuple[str, str, int]],
) -> None:
    image = MetadataImage()
    image.undo.recording = True
    log: list[tuple[Message, int]] = []  # what the log holds: the records not taken back

    def apply(record: Message, at: int) -> None:
        image.replay(record, 0, at)
        log.append((record, at))

    offset, committed = 0, -1
    snapshot = indexes(image)  # the indexes as of the committed offset
    ids: dict[str, uuid.UUID] = {}
    for kind, name, n in steps:
        topic = image.topic_by_name(name)
        match kind:
            case "create" if topic is None:
                topic_id = ids.setdefault(name, uuid.UUID(int=len(ids) + 1000))
                apply(TopicRecord(name=name, topic_id=topic_id), offset)
                for partition in range(2):
                    # Replicas [1, 2, 3]; the leader is replica ``n``: 0 is the preferred.
                    record = partition_record(topic_id, partition, 1 + (n + partition) % 3)
                    offset += 1
                    apply(record, offset)
            case "create at once" if topic is None:
                # As the active controller applies its own CreateTopics: one atomic batch.
                topic_id = ids.setdefault(name, uuid.UUID(int=len(ids) + 1000))
                batch = [RecordAndVersion(TopicRecord(name=name, topic_id=topic_id), 0)]
                for partition in range(3):
                    leader = 1 + (n + partition) % 3
                    batch.append(RecordAndVersion(partition_record(topic_id, partition, leader), 0))
                ImageLoader(image).apply_atomic(batch, offset)
                log.extend((rv.record, at) for at, rv in enumerate(batch, offset))
                offset += len(batch) - 1
            case "delete" if topic is not None:
                apply(RemoveTopicRecord(topic_id=topic.topic_id), offset)
            case "lead" if topic is not None:
                change = PartitionChangeRecord(
                    partition_id=0, topic_id=topic.topic_id, leader=n + 1
                )
                apply(change, offset)
            case "commit":
                image.undo.forget_through(offset - 1)
                committed, snapshot = offset - 1, indexes(image)
            case "revert":
                image.undo.revert_to(committed)
                log = [(record, at) for record, at in log if at <= committed]
                offset = committed + 1
                assert indexes(image) == snapshot
        offset += 1
        # (A reverted removal puts its name back last in topic_ids_by_name: the rebuild's
        # order is checked against the replayed log's below.)
        collisions, imbalance = indexes(image)
        assert {key: set(names) for key, names in collisions.items()} == {
            key: set(names) for key, names in rebuilt_collisions(image).items()
        }
        assert imbalance == rebuilt_imbalance(image)
        assert isr_members(image) == rebuilt_isr_members(image)
        assert set(image.isr_table_capacity) == set(rebuilt_isr_members(image))
    # And every other index (ISR and ELR members, ...) is what replaying the log builds.
    replayed = MetadataImage()
    for record, at in log:
        replayed.replay(record, 0, at)
    assert image_state(image) == image_state(replayed)
    # Colliding names in creation order, also after a removal was taken back.
    assert indexes(image) == indexes(replayed)
