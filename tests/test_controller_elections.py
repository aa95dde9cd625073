"""ElectLeaders as Kafka 3.9's controller answers it (ReplicationControlManager.electLeaders
and electLeader decide the errors and messages; PartitionChangeBuilder the records)."""

from __future__ import annotations

import dataclasses
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
from partition_fixtures import TOPIC, TOPIC_ID, cluster

from kwire.controller import RequestContext
from kwire.controller.elections import UNCLEAN_LEADER_ELECTION_ENABLE as UNCLEAN_KEY
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.timeline_order import java_int_hash, java_string_hash, timeline_order
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

PREFERRED, UNCLEAN = 0, 1


def elect(election_type: int, partitions: list[int] | None = None, topic: str = TOPIC) -> Any:
    return ElectLeadersRequest(
        election_type=election_type,
        topic_partitions=None
        if partitions is None
        else [ElectLeadersRequest.TopicPartitions(topic=topic, partitions=partitions)],
    )


def results(response: Any) -> dict[tuple[str, int], tuple[int, str | None]]:
    return {
        (r.topic, p.partition_id): (p.error_code, p.error_message)
        for r in response.replica_election_results
        for p in r.partition_result
    }


NOT_NEEDED = (ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
# name, cluster arguments, election type, expected (code, message), expected new leader
CASES = [
    ("preferred leader already leads", {}, PREFERRED, NOT_NEEDED, None),
    ("preferred replica back in the ISR", {"partitions": [{"leader": 2}]}, PREFERRED,
     (ErrorCode.NONE, None), 1),
    ("preferred replica fenced", {"partitions": [{"leader": 2}], "fenced": (1,)}, PREFERRED,
     (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, "The preferred leader was not available."),
     None),
    ("preferred replica out of the ISR", {"partitions": [{"leader": 2, "isr": [2, 3]}]},
     PREFERRED,
     (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, "The preferred leader was not available."),
     None),
    ("unclean with a leader", {}, UNCLEAN, NOT_NEEDED, None),
    ("unclean without a leader: a live replica outside the ISR",
     {"partitions": [{"leader": -1, "isr": [1]}], "fenced": (1,)}, UNCLEAN,
     (ErrorCode.NONE, None), 2),
    ("unclean with no live replica",
     {"partitions": [{"leader": -1, "isr": [1]}], "fenced": (1, 2, 3)}, UNCLEAN,
     (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
      "Eligible topic partition leaders are not available."), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cluster_args", "election_type", "expected", "new_leader"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_partition_gets_kafkas_election_result(
    cluster_args: dict[str, Any],
    election_type: int,
    expected: tuple[int, str | None],
    new_leader: int | None,
) -> None:
    c = cluster(**cluster_args)
    before = c.partition()
    response, records = c.send(elect(election_type, [0]), 2)
    assert results(response) == {(TOPIC, 0): expected}
    if new_leader is None:
        assert records == []
    else:
        assert [(r.leader, r.partition_id) for r in records] == [(new_leader, 0)]
        assert c.partition().leader_epoch == before.leader_epoch + 1


def test_an_unclean_leader_is_the_whole_isr_and_recovers() -> None:
    c = cluster(partitions=[{"leader": -1, "isr": [1]}], fenced=(1,))
    _, records = c.send(elect(UNCLEAN, [0]), 2)
    assert fields_of(records) == fields_of(
        [
            PartitionChangeRecord(
                partition_id=0, topic_id=TOPIC_ID, leader=2, isr=[2], leader_recovery_state=1
            )
        ]
    )


def test_unknown_topics_and_partitions_are_named_in_the_message() -> None:
    c = cluster()
    response, _ = c.send(elect(PREFERRED, [7]), 2)
    assert results(response) == {
        (TOPIC, 7): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such partition as foo-7")
    }
    response, _ = c.send(elect(PREFERRED, [0], topic="bar"), 2)
    assert results(response) == {
        ("bar", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such topic as bar")
    }


def test_an_unknown_election_type_fails_the_whole_request() -> None:
    response, records = cluster().send(elect(5, [0]), 2)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert records == []


def test_electing_every_partition_leaves_out_those_that_need_none() -> None:
    c = cluster(partitions=[{}, {"leader": 2}, {}, {"leader": 3}])
    response, records = c.send(elect(PREFERRED), 2)
    assert results(response) == {(TOPIC, 1): (0, None), (TOPIC, 3): (0, None)}
    assert [r.partition_id for r in records] == [1, 3]


def test_an_empty_partition_list_is_answered_empty() -> None:
    response, records = cluster().send(ElectLeadersRequest(topic_partitions=[]), 2)
    assert (response.replica_election_results, records) == ([], [])


def test_kafkas_hash_table_order_is_rebuilt() -> None:
    # Kafka's String.hashCode and the order BaseHashTable iterates 6 and 9 integer keys
    # (the ElectLeaders of the genuine story lists t3-5 before t3-0).
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    assert timeline_order(range(6), java_int_hash) == [5, 0, 2, 4, 1, 3]
    assert timeline_order(range(9), java_int_hash)[:2] == [5, 0]


# name, topic config, cluster-default broker config, expected
UNCLEAN_CONFIGS = [
    ("nothing set: false", None, None, False),
    ("topic config", "true", None, True),
    ("cluster default", None, "TRUE", True),
    ("topic config over the cluster default", "false", "true", False),
]


@pytest.mark.parametrize(
    ("topic_value", "cluster_value", "expected"),
    [case[1:] for case in UNCLEAN_CONFIGS],
    ids=[case[0] for case in UNCLEAN_CONFIGS],
)
def test_unclean_election_is_enabled_as_kafka_resolves_the_topic_config(
    topic_value: str | None, cluster_value: str | None, expected: bool
) -> None:
    # ConfigurationControlManager.uncleanLeaderElectionEnabledForTopic.
    c = cluster(topic_configs={} if topic_value is None else {UNCLEAN_KEY: topic_value})
    if cluster_value is not None:
        c.replay(
            ConfigRecord(resource_type=4, resource_name="", name=UNCLEAN_KEY, value=cluster_value)
        )
    assert unclean_election_enabled(c.controller, TOPIC) is expected


@needs_story
def test_genuine_elect_leaders_gets_the_genuine_answer_and_records() -> None:
    """kafka-leader-election --election-type preferred --all-topic-partitions, in an
    Envelope: t3-5 and t3-0 move back to their preferred leaders."""
    (exchange,) = exchanges(43)
    assert exchange.via_envelope and exchange.request.topic_partitions is None
    offset = first_change_for(exchange.time_ms)
    controller = controller_before(offset)
    result = controller.handle(
        exchange.request,
        RequestContext(api_version=exchange.api_version, envelope=True),
        offset,
        exchange.time_ms,
    )
    assert fields_of(result.response) == fields_of(exchange.response)
    assert_same_records([(rv.record, rv.version) for rv in result.records], offset)
    assert isinstance(exchange.response, ElectLeadersResponse)


# name, ConfigRecords (resource type, name, value), the controller's static value, leader
# after the only ISR member (broker 1) is fenced: ReplicationControlManager.generateLeader-
# AndIsrUpdates elects UNCLEAN when ConfigurationControlManager.uncleanLeaderElection-
# EnabledForTopic says so (topic, then this controller's broker config, then the cluster
# default, then the static config), and Kafka's unclean election picks the first live
# replica, 2; otherwise the partition is left without a leader.
BROKER, TOPIC_TYPE = 4, 2
FENCING_CASES = [
    ("nothing set: no unclean election", [], None, -1),
    ("the topic's own true", [(TOPIC_TYPE, TOPIC, "true")], None, 2),
    ("the cluster default enables it for a topic without its own setting",
     [(BROKER, "", "true")], None, 2),
    ("the topic's own false beats a cluster-wide true",
     [(BROKER, "", "true"), (TOPIC_TYPE, TOPIC, "false")], None, -1),
    ("this controller's broker config (node 0)", [(BROKER, "0", "true")], None, 2),
    ("this controller's broker config beats the cluster default",
     [(BROKER, "", "true"), (BROKER, "0", "false")], None, -1),
    ("another broker's config plays no part", [(BROKER, "2", "true")], None, -1),
    ("the controller's static config", [], "true", 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("configs", "static", "leader"),
    [case[1:] for case in FENCING_CASES],
    ids=[case[0] for case in FENCING_CASES],
)
def test_fencing_the_last_isr_member_elects_uncleanly_as_the_resolved_config_says(
    configs: list[tuple[int, str, str]], static: str | None, leader: int
) -> None:
    c = cluster(partitions=[{"isr": [1]}])
    if static is not None:
        c.controller.config = dataclasses.replace(
            c.controller.config, static_topic_configs={UNCLEAN_KEY: static}
        )
    for resource_type, resource_name, value in configs:
        c.replay(
            ConfigRecord(
                resource_type=resource_type,
                resource_name=resource_name,
                name=UNCLEAN_KEY,
                value=value,
            )
        )
    request = BrokerHeartbeatRequest(
        broker_id=1, broker_epoch=101, current_metadata_offset=c.next_offset, want_fence=True
    )
    response, records = c.send(request, 1)
    assert response.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
    [change] = [r for r in records if isinstance(r, PartitionChangeRecord)]
    assert change.leader == leader
    assert c.partition().leader == leader
