"""AlterPartitionReassignments v1 (KIP-860: AllowReplicationFactorChange) as Kafka 4.3.1's
ReplicationControlManager.alterPartitionReassignments / validatePartitionReplicationFactorUnchanged
decides it; v0 always allows a change of replication factor."""

from __future__ import annotations

from typing import Any

import pytest
from partition_fixtures import TOPIC, cluster

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)

Reassignable = AlterPartitionReassignmentsRequest.ReassignablePartition


def reassign(replicas: list[int] | None, *, allow: bool) -> Any:
    return AlterPartitionReassignmentsRequest(
        allow_replication_factor_change=allow,
        topics=[
            AlterPartitionReassignmentsRequest.ReassignableTopic(
                name=TOPIC, partitions=[Reassignable(partition_index=0, replicas=replicas)]
            )
        ],
    )


def answer(response: Any) -> tuple[int, str | None]:
    (topic,) = response.responses
    (partition,) = topic.partitions
    return partition.error_code, partition.error_message


@pytest.mark.parametrize(
    ("name", "target", "expected"),
    [
        ("growing", [1, 2, 3, 4], "The replication factor is changed from 3 to 4"),
        ("shrinking", [1, 2], "The replication factor is changed from 3 to 2"),
    ],
)
def test_a_v1_reassignment_that_changes_the_replication_factor_is_refused_when_not_allowed(
    name: str, target: list[int], expected: str
) -> None:
    c = cluster(brokers=5)
    response, records = c.send(reassign(target, allow=False), 1)
    assert answer(response) == (ErrorCode.INVALID_REPLICATION_FACTOR, expected)
    assert response.allow_replication_factor_change is False
    assert records == []


def test_a_v1_reassignment_that_keeps_the_replication_factor_goes_ahead() -> None:
    c = cluster(brokers=5)
    response, records = c.send(reassign([5, 2, 1], allow=False), 1)
    assert answer(response) == (ErrorCode.NONE, None)
    assert len(records) == 1
    assert records[0].adding_replicas == [5]


def test_the_replication_factor_change_is_allowed_by_default() -> None:
    c = cluster(brokers=5)
    request = reassign([1, 2, 3, 4], allow=True)
    assert AlterPartitionReassignmentsRequest().allow_replication_factor_change is True
    response, records = c.send(request, 1)
    assert answer(response) == (ErrorCode.NONE, None)
    assert response.allow_replication_factor_change is True
    assert records[0].adding_replicas == [4]


def test_during_a_reassignment_the_factor_is_the_one_it_aims_at() -> None:
    # replicas [1, 2, 3, 4], adding [4], removing [3]: the reassignment aims at 3 replicas.
    c = cluster(
        brokers=5,
        partitions=[{"replicas": [1, 2, 4, 3], "adding_replicas": [4], "removing_replicas": [3]}],
    )
    ok, _ = c.send(reassign([1, 2, 5], allow=False), 1)
    assert answer(ok) == (ErrorCode.NONE, None)
    c = cluster(
        brokers=5,
        partitions=[{"replicas": [1, 2, 4, 3], "adding_replicas": [4], "removing_replicas": [3]}],
    )
    refused, _ = c.send(reassign([1, 2, 4, 3], allow=False), 1)
    assert answer(refused) == (
        ErrorCode.INVALID_REPLICATION_FACTOR,
        "The replication factor is changed from 3 to 4",
    )


def test_the_targets_own_validation_comes_before_the_factor_check() -> None:
    c = cluster(brokers=5)
    response, _ = c.send(reassign([1, 1], allow=False), 1)
    assert answer(response)[0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT


def test_a_cancellation_is_not_checked() -> None:
    c = cluster(
        brokers=5,
        partitions=[{"replicas": [1, 2, 4, 3], "adding_replicas": [4], "removing_replicas": [3]}],
    )
    response, records = c.send(reassign(None, allow=False), 1)
    assert answer(response) == (ErrorCode.NONE, None)
    assert records[0].replicas == [1, 2, 3]


def test_the_v1_response_carries_the_flag_on_the_wire() -> None:
    response = AlterPartitionReassignmentsResponse(allow_replication_factor_change=False)
    decoded = AlterPartitionReassignmentsResponse.decode(response.encode(1), 1)
    assert decoded.allow_replication_factor_change is False
