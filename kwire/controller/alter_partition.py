"""AlterPartition: a partition leader asks to change its ISR (Kafka's
ReplicationControlManager.alterPartition, QuorumController.alterPartition).

The request's broker epoch is checked first (a stale one fails the whole request,
STALE_BROKER_EPOCH). Then each partition, in Kafka's order of checks (see ``_validate``):
unknown topic (UNKNOWN_TOPIC_OR_PARTITION by name below v2, UNKNOWN_TOPIC_ID by id from
v2), unknown partition, epochs ahead of ours (NOT_CONTROLLER: we are probably no longer
the active controller), a stale leader epoch (FENCED_LEADER_EPOCH), a requester that is
not the leader (INVALID_REQUEST), a stale partition epoch (INVALID_UPDATE_VERSION), an ISR
that is not a subset of the replicas or leaves out the leader, or breaks the leader
recovery rules (INVALID_REQUEST), and ISR members that are unregistered, fenced, shutting
down or (v3) of another broker epoch (INELIGIBLE_REPLICA from v2, OPERATION_NOT_ATTEMPTED
below). An accepted change is written with PartitionChangeBuilder's rules, which also
complete a reassignment whose target replicas are all in the new ISR; if that moves the
leadership away from the requester, the answer is NEW_LEADER_ELECTED (FENCED_LEADER_EPOCH
below v2) although the record is written. Otherwise the answer is the partition's new
state (leader, leader epoch, ISR, recovery state, partition epoch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import ApiError, OperationFailed
from kwire.controller.cluster import check_broker_epoch
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.elr import topic_min_isr
from kwire.controller.image import (
    NO_LEADER_CHANGE,
    LeaderRecoveryState,
    MetadataImage,
    PartitionRegistration,
)
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.partition_change import Election, build_partition_change, leader_acceptor
from kwire.controller.replication import default_directory
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition import AlterPartitionRequest, AlterPartitionResponse

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

BrokerState = AlterPartitionRequest.BrokerState
PartitionData = AlterPartitionResponse.PartitionData


def alter_partition(
    ctl: QuorumController, request: AlterPartitionRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    """Answer AlterPartition v0-v3. Raises OperationFailed: STALE_BROKER_EPOCH for an
    unknown broker or stale epoch; UNKNOWN_SERVER_ERROR for a leader recovery state that is
    neither 0 nor 1 (Kafka's IllegalArgumentException, which also fails it over)."""
    version = context.api_version
    response = AlterPartitionResponse(error_code=ErrorCode.NONE)
    if not request.topics:
        return ControllerResult(records=[], response=response)
    try:
        check_broker_epoch(ctl.image, request.broker_id, request.broker_epoch)
    except ApiError as e:
        raise OperationFailed(e.code, e.message) from None
    image = ctl.image
    records: list[Message] = []
    for topic_data in request.topics:
        answer = AlterPartitionResponse.TopicData(
            topic_name=topic_data.topic_name, topic_id=topic_data.topic_id
        )
        response.topics.append(answer)
        topic_id = (
            topic_data.topic_id
            if version > 1
            else image.topic_ids_by_name.get(topic_data.topic_name)
        )
        topic = None if topic_id is None else image.topics.get(topic_id)
        if topic is None:
            code = (
                ErrorCode.UNKNOWN_TOPIC_ID if version > 1 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            )
            answer.partitions += [
                PartitionData(partition_index=p.partition_index, error_code=code)
                for p in topic_data.partitions
            ]
            continue
        for data in topic_data.partitions:
            if version < 3:
                new_isr = [BrokerState(broker_id=b, broker_epoch=-1) for b in data.new_isr]
            else:
                new_isr = list(data.new_isr_with_epochs)
            partition = topic.partitions.get(data.partition_index)
            error = _validate(image, request.broker_id, partition, data, new_isr, version)
            if error is not ErrorCode.NONE or partition is None:
                answer.partitions.append(
                    PartitionData(partition_index=data.partition_index, error_code=error)
                )
                continue
            record = build_partition_change(
                partition,
                topic.topic_id,
                data.partition_index,
                is_acceptable_leader=leader_acceptor(image, partition),
                metadata_version=ctl.metadata_version,
                target_isr=[b.broker_id for b in new_isr],
                target_leader_recovery_state=LeaderRecoveryState(data.leader_recovery_state),
                default_directory=lambda broker: default_directory(image, broker),
                election=(
                    Election.UNCLEAN
                    if unclean_election_enabled(ctl, topic.name)
                    else Election.ONLINE
                ),
                min_isr=topic_min_isr(ctl, topic.name),
            )
            if record is not None:
                records.append(record)
                partition = partition.merge(record)
                if record.leader not in (request.broker_id, NO_LEADER_CHANGE):
                    # Completing a reassignment moved the leadership: the requester must
                    # learn the new state before it tries again.
                    answer.partitions.append(
                        PartitionData(
                            partition_index=data.partition_index,
                            error_code=(
                                ErrorCode.NEW_LEADER_ELECTED
                                if version > 1
                                else ErrorCode.FENCED_LEADER_EPOCH
                            ),
                        )
                    )
                    continue
            answer.partitions.append(
                PartitionData(
                    partition_index=data.partition_index,
                    error_code=ErrorCode.NONE,
                    leader_id=partition.leader,
                    leader_epoch=partition.leader_epoch,
                    isr=list(partition.isr),
                    leader_recovery_state=partition.leader_recovery_state,
                    partition_epoch=partition.partition_epoch,
                )
            )
    return ctl.apply(Applied(), records, next_offset).result(response, atomic=False)


def _validate(
    image: MetadataImage,
    broker_id: int,
    partition: PartitionRegistration | None,
    data: AlterPartitionRequest.PartitionData,
    new_isr: list[AlterPartitionRequest.BrokerState],
    version: int,
) -> ErrorCode:
    """The first problem Kafka's validateAlterPartitionData finds, or NONE."""
    if partition is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if (
        data.leader_epoch > partition.leader_epoch
        or data.partition_epoch > partition.partition_epoch
    ):
        return ErrorCode.NOT_CONTROLLER
    if data.leader_epoch < partition.leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if broker_id != partition.leader:
        return ErrorCode.INVALID_REQUEST
    if data.partition_epoch < partition.partition_epoch:
        return ErrorCode.INVALID_UPDATE_VERSION
    isr = [b.broker_id for b in new_isr]
    if not _valid_isr(partition.replicas, isr) or partition.leader not in isr:
        return ErrorCode.INVALID_REQUEST
    if data.leader_recovery_state not in (0, 1):
        raise OperationFailed(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            "java.lang.IllegalArgumentException: "
            f"Value {data.leader_recovery_state} is not a valid leader recovery state",
        )
    recovering = data.leader_recovery_state == LeaderRecoveryState.RECOVERING
    if recovering and len(isr) > 1:
        return ErrorCode.INVALID_REQUEST
    if recovering and partition.leader_recovery_state is LeaderRecoveryState.RECOVERED:
        return ErrorCode.INVALID_REQUEST
    for state in new_isr:
        registration = image.brokers.get(state.broker_id)
        if (
            registration is None
            or registration.in_controlled_shutdown
            or registration.fenced
            or (state.broker_epoch != -1 and registration.epoch != state.broker_epoch)
        ):
            return (
                ErrorCode.INELIGIBLE_REPLICA if version > 1 else ErrorCode.OPERATION_NOT_ATTEMPTED
            )
    return ErrorCode.NONE


def _valid_isr(replicas: tuple[int, ...], isr: list[int]) -> bool:
    """Kafka's Replicas.validateIsr: no negative id, no duplicate, every member a replica."""
    if not isr:
        return True
    return len(set(isr)) == len(isr) and min(isr) >= 0 and set(isr) <= set(replicas)
