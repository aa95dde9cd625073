"""Partition reassignments as Kafka 3.9's controller runs them
(ReplicationControlManager.alterPartitionReassignments / listPartitionReassignments,
PartitionReassignmentReplicas and PartitionReassignmentRevert decide every expected value)."""

from __future__ import annotations

from typing import Any

import pytest
from genuine_story import (
    assert_same_records,
    controller_before,
    exchanges,
    fields_of,
    first_change_for,
    last_offset_before,
    needs_story,
)
from partition_fixtures import TOPIC, TOPIC_ID, broker_epoch, cluster, log_dir

from kwire.controller import RequestContext
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition import AlterPartitionRequest
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

Reassignable = AlterPartitionReassignmentsRequest.ReassignablePartition


def reassign(replicas: list[int] | None, partition: int = 0, topic: str = TOPIC) -> Any:
    return AlterPartitionReassignmentsRequest(
        topics=[
            AlterPartitionReassignmentsRequest.ReassignableTopic(
                name=topic, partitions=[Reassignable(partition_index=partition, replicas=replicas)]
            )
        ]
    )


def answer(response: Any) -> tuple[int, str | None]:
    (topic,) = response.responses
    (partition,) = topic.partitions
    return partition.error_code, partition.error_message


def listed(c: Any, topics: list[tuple[str, list[int]]] | None = None) -> Any:
    request = ListPartitionReassignmentsRequest(
        topics=None
        if topics is None
        else [
            ListPartitionReassignmentsRequest.ListPartitionReassignmentsTopics(
                name=n, partition_indexes=p
            )
            for n, p in topics
        ]
    )
    response, records = c.send(request, 0)
    assert records == []
    return fields_of(response.topics)


def ongoing(partition: int, replicas: list[int], adding: list[int], removing: list[int]) -> Any:
    return ListPartitionReassignmentsResponse.OngoingTopicReassignment(
        name=TOPIC,
        partitions=[
            ListPartitionReassignmentsResponse.OngoingPartitionReassignment(
                partition_index=partition,
                replicas=replicas,
                adding_replicas=adding,
                removing_replicas=removing,
            )
        ],
    )


def test_moving_a_replica_starts_a_reassignment_and_lists_it() -> None:
    c = cluster(brokers=5)
    response, records = c.send(reassign([5, 2, 1]), 0)
    assert answer(response) == (ErrorCode.NONE, None)
    # Target first, then the replicas leaving; adding/removing ascending. Broker 3 stays
    # a replica until the reassignment completes, so the leader epoch stays.
    assert fields_of(records) == fields_of(
        [
            PartitionChangeRecord(
                partition_id=0,
                topic_id=TOPIC_ID,
                replicas=[5, 2, 1, 3],
                removing_replicas=[3],
                adding_replicas=[5],
                directories=[log_dir(5), log_dir(2), log_dir(1), log_dir(3)],
            )
        ]
    )
    expected = [fields_of(ongoing(0, [5, 2, 1, 3], [5], [3]))]
    assert listed(c) == expected
    assert listed(c, [(TOPIC, [0, 1]), ("nope", [0])]) == expected


def test_the_reassignment_completes_when_the_new_replica_joins_the_isr() -> None:
    c = cluster(brokers=5)
    c.send(reassign([5, 2, 1]), 0)
    p = c.partition()
    request = AlterPartitionRequest(
        broker_id=1,
        broker_epoch=broker_epoch(1),
        topics=[
            AlterPartitionRequest.TopicData(
                topic_id=TOPIC_ID,
                partitions=[
                    AlterPartitionRequest.PartitionData(
                        partition_index=0,
                        leader_epoch=p.leader_epoch,
                        partition_epoch=p.partition_epoch,
                        new_isr_with_epochs=[
                            AlterPartitionRequest.BrokerState(broker_id=b, broker_epoch=-1)
                            for b in (1, 2, 3, 5)
                        ],
                    )
                ],
            )
        ],
    )
    _, records = c.send(request, 3)
    assert (records[0].replicas, records[0].isr) == ([5, 2, 1], [1, 2, 5])
    assert (records[0].adding_replicas, records[0].removing_replicas) == ([], [])
    assert listed(c) == []


def test_a_reassignment_the_isr_already_covers_completes_at_once() -> None:
    # The genuine story's shrink: [3, 4, 2] -> [4, 3] with ISR [3, 4, 2].
    c = cluster(partitions=[{"replicas": [3, 4, 2], "isr": [3, 4, 2], "leader": 3}])
    _, records = c.send(reassign([4, 3]), 0)
    assert fields_of(records) == fields_of(
        [
            PartitionChangeRecord(
                partition_id=0,
                topic_id=TOPIC_ID,
                isr=[3, 4],  # the ISR's own order, less the replica leaving
                leader=3,
                replicas=[4, 3],
                directories=[log_dir(4), log_dir(3)],
            )
        ]
    )
    assert listed(c) == []


def test_reassigning_to_the_same_replicas_writes_nothing() -> None:
    _, records = (c := cluster()).send(reassign([1, 2, 3]), 0)
    assert records == []
    assert listed(c) == []


def test_cancelling_takes_the_added_replicas_out_again() -> None:
    c = cluster(brokers=5)
    c.send(reassign([5, 2, 1]), 0)
    response, records = c.send(reassign(None), 0)
    assert answer(response) == (ErrorCode.NONE, None)
    assert (records[0].replicas, records[0].adding_replicas, records[0].removing_replicas) == (
        [2, 1, 3],
        [],
        [],
    )
    assert listed(c) == []


def test_a_cancellation_that_needs_an_unclean_election_is_refused_unless_enabled() -> None:
    # Every ISR member is being added: reverting leaves no ISR but the first old replica.
    spec = {"replicas": [4, 1], "isr": [4], "leader": 4, "adding_replicas": [4],
            "removing_replicas": [1]}  # fmt: skip
    response, records = cluster(partitions=[spec]).send(reassign(None), 0)
    assert answer(response) == (
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        "Unable to revert partition assignment for foo:0 because it would require an "
        "unclean leader election.",
    )
    assert records == []
    enabled = cluster(partitions=[spec], topic_configs={"unclean.leader.election.enable": "true"})
    response, records = enabled.send(reassign(None), 0)
    assert answer(response) == (ErrorCode.NONE, None)
    assert (records[0].replicas, records[0].isr, records[0].leader) == ([1], [1], 1)


# name, request, expected (code, message)
REFUSALS = [
    ("unknown topic", reassign([1], topic="bar"),
     (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find a topic named bar.")),
    ("unknown partition", reassign([1], partition=3),
     (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition foo:3.")),
    ("no reassignment to cancel", reassign(None),
     (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress.")),
    ("empty replica list", reassign([]),
     (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      "The manual partition assignment includes an empty replica list.")),
    ("unregistered broker", reassign([1, 9]),
     (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      "The manual partition assignment includes broker 9, but no such broker is registered.")),
    ("repeated broker", reassign([2, 2]),
     (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      "The manual partition assignment includes the broker 2 more than once.")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "expected"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_a_refused_reassignment_gets_kafkas_error_and_message(
    request_: Any, expected: tuple[int, str]
) -> None:
    response, records = cluster().send(request_, 0)
    assert answer(response) == expected
    assert records == []


# -- the genuine story ------------------------------------------------------------------------


@needs_story
@pytest.mark.parametrize("index", range(2))
def test_genuine_reassignments_get_the_genuine_answer_and_records(index: int) -> None:
    """t3-0: [3, 4, 2] -> [4, 3] (completes at once), then -> [2, 3, 4] (adds 2)."""
    exchange = exchanges(45)[index]
    assert exchange.via_envelope
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


@needs_story
def test_genuine_list_partition_reassignments_get_the_genuine_answers() -> None:
    answered = 0
    for exchange in exchanges(46):
        controller = controller_before(last_offset_before(exchange.time_ms))
        result = controller.handle(
            exchange.request,
            RequestContext(api_version=exchange.api_version, envelope=True),
            0,
            exchange.time_ms,
        )
        assert result.records == []
        assert fields_of(result.response) == fields_of(exchange.response)
        answered += 1
    assert answered == 20
