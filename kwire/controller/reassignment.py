"""Partition reassignments: AlterPartitionReassignments and ListPartitionReassignments
(Kafka's ReplicationControlManager.alterPartitionReassignments /
listPartitionReassignments, PartitionReassignmentReplicas and PartitionReassignmentRevert).

A reassignment to target replicas T of a partition with replicas R writes one
PartitionChangeRecord: replicas T followed by the replicas leaving (R - T, ascending),
adding_replicas = T - R and removing_replicas = R - T (both ascending). If the ISR already
holds every target replica it completes at once (replicas T, no adding/removing);
otherwise it completes when AlterPartition brings the missing replicas into the ISR. A
replica leaving the replica set bumps the leader epoch. ``replicas: null`` cancels a
reassignment in progress: the replicas being added leave again, and the ISR loses them
(if nothing of the ISR would be left, the first remaining replica becomes the ISR, which
needs unclean.leader.election.enable).

Per-partition errors, with Kafka's messages: UNKNOWN_TOPIC_OR_PARTITION,
INVALID_REPLICA_ASSIGNMENT (empty, unregistered or repeated brokers; a cancellation that
would need an unclean election), NO_REASSIGNMENT_IN_PROGRESS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    ApiError,
)
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.elr import topic_min_isr
from kwire.controller.image import PartitionRegistration, TopicInfo
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.partition_change import (
    Election,
    build_partition_change,
    leader_acceptor,
    reassignment_in_progress,
)
from kwire.controller.replication import _validate_manual_assignment, default_directory
from kwire.controller.replication_factor import check_replication_factor_unchanged
from kwire.controller.timeline_order import java_uuid_hash, timeline_order
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)
from kwire.protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

TopicResponse = AlterPartitionReassignmentsResponse.ReassignableTopicResponse
PartitionResponse = AlterPartitionReassignmentsResponse.ReassignablePartitionResponse
Ongoing = ListPartitionReassignmentsResponse.OngoingPartitionReassignment
OngoingTopic = ListPartitionReassignmentsResponse.OngoingTopicReassignment


def alter_partition_reassignments(
    ctl: QuorumController,
    request: AlterPartitionReassignmentsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Answer AlterPartitionReassignments v0-v1: each partition's reassignment starts,
    changes, completes or is cancelled, or gets its own error (beyond
    MAX_RECORDS_PER_USER_OP records: UNKNOWN_SERVER_ERROR, as Kafka). The records are
    atomic."""
    allow_rf_change = request.allow_replication_factor_change  # always true in v0
    response = AlterPartitionReassignmentsResponse(
        error_code=ErrorCode.NONE,
        error_message=None,
        allow_replication_factor_change=allow_rf_change,
    )
    records: list[Message] = []
    for topic in request.topics:
        answer = TopicResponse(name=topic.name)
        for target in topic.partitions:
            code, message = ErrorCode.NONE, None
            try:
                record = _alter_one(ctl, topic.name, target, allow_rf_change)
            except ApiError as e:
                code, message = e.code, e.message
            else:
                if record is not None:
                    if len(records) < MAX_RECORDS_PER_USER_OP:
                        records.append(record)
                    else:
                        # Kafka's bounded record list refuses it inside the per-partition
                        # catch-all: an unexpected error for this partition alone.
                        code = ErrorCode.UNKNOWN_SERVER_ERROR
                        message = code.message
            answer.partitions.append(
                PartitionResponse(
                    partition_index=target.partition_index, error_code=code, error_message=message
                )
            )
        response.responses.append(answer)
    return ctl.apply(Applied(), records, next_offset).result(response)


def _alter_one(
    ctl: QuorumController,
    name: str,
    target: AlterPartitionReassignmentsRequest.ReassignablePartition,
    allow_rf_change: bool = True,
) -> PartitionChangeRecord | None:
    image = ctl.image
    topic = image.topic_by_name(name)
    if topic is None:
        raise ApiError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {name}."
        )
    partition = topic.partitions.get(target.partition_index)
    if partition is None:
        raise ApiError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            f"Unable to find partition {name}:{target.partition_index}.",
        )
    if target.replicas is None:
        return _cancel(ctl, topic, target.partition_index, partition)
    return _change(
        ctl, topic, target.partition_index, partition, list(target.replicas), allow_rf_change
    )


def _cancel(
    ctl: QuorumController, topic: TopicInfo, partition_id: int, partition: PartitionRegistration
) -> PartitionChangeRecord | None:
    if not reassignment_in_progress(partition):
        raise ApiError(
            ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS.message
        )
    # PartitionReassignmentRevert: back to the replicas before the reassignment.
    adding = set(partition.adding_replicas)
    replicas = [r for r in partition.replicas if r not in adding]
    isr = [r for r in partition.isr if r not in adding]
    unclean = False
    if not isr:
        if not replicas:
            raise ApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "Invalid replica assignment: addingReplicas contains all replicas.",
            )
        isr, unclean = [replicas[0]], True
    allow_unclean = unclean_election_enabled(ctl, topic.name)
    if unclean and not allow_unclean:
        raise ApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"Unable to revert partition assignment for {topic.name}:{partition_id} because "
            "it would require an unclean leader election.",
        )
    image = ctl.image
    return build_partition_change(
        partition,
        topic.topic_id,
        partition_id,
        is_acceptable_leader=leader_acceptor(image, partition),
        metadata_version=ctl.metadata_version,
        election=Election.UNCLEAN if allow_unclean else Election.ONLINE,
        target_isr=isr,
        target_replicas=replicas,
        target_removing=[],
        target_adding=[],
        default_directory=lambda broker: default_directory(image, broker),
        min_isr=topic_min_isr(ctl, topic.name),
    )


def _change(
    ctl: QuorumController,
    topic: TopicInfo,
    partition_id: int,
    partition: PartitionRegistration,
    target: list[int],
    allow_rf_change: bool = True,
) -> PartitionChangeRecord | None:
    image = ctl.image
    _validate_manual_assignment(image, target, None)
    if not allow_rf_change:
        check_replication_factor_unchanged(partition, target)
    current = list(partition.replicas)
    removing = sorted(set(current) - set(target))
    adding = sorted(set(target) - set(current))
    replicas = target + removing
    # Target directories: a replica that stays keeps its own, a new one gets its broker's
    # default (PartitionAssignment over clusterDescriber).
    return build_partition_change(
        partition,
        topic.topic_id,
        partition_id,
        is_acceptable_leader=leader_acceptor(image, partition),
        metadata_version=ctl.metadata_version,
        target_replicas=None if replicas == current else replicas,
        target_removing=removing or None,
        target_adding=adding or None,
        default_directory=lambda broker: default_directory(image, broker),
        min_isr=topic_min_isr(ctl, topic.name),
    )


def list_partition_reassignments(
    ctl: QuorumController,
    request: ListPartitionReassignmentsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Answer ListPartitionReassignments v0: the partitions asked for (every partition when
    ``topics`` is null) whose reassignment is in progress, with their replicas, adding and
    removing replicas. Unknown topics and partitions are left out, without error."""
    response = ListPartitionReassignmentsResponse(error_code=ErrorCode.NONE, error_message=None)
    image = ctl.image
    if request.topics is None:
        # Kafka lists its reassigning topics in hash-table order; within a topic kwire
        # lists partitions by creation (Kafka: in the order their reassignments began).
        reassigning = [
            topic_id
            for topic_id, topic in image.topics.items()
            if any(reassignment_in_progress(p) for p in topic.partitions.values())
        ]
        for topic_id in timeline_order(reassigning, java_uuid_hash):
            topic = image.topics[topic_id]
            _list_topic(response, topic, list(topic.partitions))
    else:
        for asked in request.topics:
            named = image.topic_by_name(asked.name)
            if named is not None:
                _list_topic(response, named, asked.partition_indexes)
    return ControllerResult(records=[], response=response)


def _list_topic(
    response: ListPartitionReassignmentsResponse, topic: TopicInfo, partition_ids: list[int]
) -> None:
    ongoing = OngoingTopic(name=topic.name)
    for partition_id in partition_ids:
        partition = topic.partitions.get(partition_id)
        if partition is not None and reassignment_in_progress(partition):
            ongoing.partitions.append(
                Ongoing(
                    partition_index=partition_id,
                    replicas=list(partition.replicas),
                    adding_replicas=list(partition.adding_replicas),
                    removing_replicas=list(partition.removing_replicas),
                )
            )
    if ongoing.partitions:
        response.topics.append(ongoing)
