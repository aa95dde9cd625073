"""KIP-860: AlterPartitionReassignments v1 can forbid a reassignment that changes a
partition's replication factor (AllowReplicationFactorChange=false; v0 always allows it,
the field's default being true).

Kafka 4.3.1's ReplicationControlManager.validatePartitionReplicationFactorUnchanged: the
current replication factor is the number of replicas, or, while a reassignment is in
progress, the size of (replicas + adding) - removing, i.e. the factor the ongoing
reassignment aims at. A target list of another size fails the partition with
INVALID_REPLICATION_FACTOR "The replication factor is changed from <current> to <target>".
The check runs after the target's own validation (duplicates, negative or unknown
brokers), before any record is built, and on changes only (a cancellation, Replicas null,
is never checked).
"""

from __future__ import annotations

from collections.abc import Sequence

from kwire.controller.api_error import ApiError
from kwire.controller.image import PartitionRegistration
from kwire.controller.partition_change import reassignment_in_progress
from kwire.protocol.error_codes import ErrorCode


def current_replication_factor(partition: PartitionRegistration) -> int:
    """The replication factor a partition has, or is being reassigned to."""
    if reassignment_in_progress(partition):
        aimed = set(partition.replicas) | set(partition.adding_replicas)
        return len(aimed - set(partition.removing_replicas))
    return len(partition.replicas)


def check_replication_factor_unchanged(
    partition: PartitionRegistration, target: Sequence[int]
) -> None:
    """Raises ApiError(INVALID_REPLICATION_FACTOR) when ``target`` has another size than
    the partition's current replication factor."""
    current = current_replication_factor(partition)
    if current != len(target):
        raise ApiError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"The replication factor is changed from {current} to {len(target)}",
        )
