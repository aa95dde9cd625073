"""AssignReplicasToDirs (KIP-858, JBOD): a broker tells the controller which of its log
directories holds each of its replicas (Kafka's ReplicationControlManager.
handleAssignReplicasToDirs).

Only from metadata.version 3.7-IV2 (directory assignment); before, the whole request
fails UNSUPPORTED_VERSION. A stale broker epoch fails it STALE_BROKER_EPOCH. Each
partition is answered on its own: UNKNOWN_TOPIC_ID for an unknown topic,
UNKNOWN_TOPIC_OR_PARTITION for an unknown partition, NOT_LEADER_OR_FOLLOWER when the broker
holds no replica of it; otherwise a PartitionChangeRecord moves the broker's replica to the
directory (none if it is already there). A replica assigned to a directory the broker does
not have online also leaves the ISR and leadership, in further records after all the
assignments, computed from the state before them (as Kafka's generateLeaderAndIsrUpdates).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from kwire.controller.api_error import ApiError, OperationFailed
from kwire.controller.cluster import check_broker_epoch
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.elr import min_isr_resolver, topic_min_isr
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.partition_change import build_partition_change, leader_acceptor
from kwire.controller.replication import default_directory, leader_and_isr_updates
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.assign_replicas_to_dirs import (
    AssignReplicasToDirsRequest,
    AssignReplicasToDirsResponse,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController


def assign_replicas_to_dirs(
    ctl: QuorumController,
    request: AssignReplicasToDirsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Answer AssignReplicasToDirs v0. Raises OperationFailed: UNSUPPORTED_VERSION below
    3.7-IV2, STALE_BROKER_EPOCH for an unknown broker or a stale epoch."""
    mv = ctl.metadata_version
    if not mv.supports_directory_assignment:
        raise OperationFailed(
            ErrorCode.UNSUPPORTED_VERSION, "Directory assignment is not supported yet."
        )
    image = ctl.image
    broker_id = request.broker_id
    try:
        check_broker_epoch(image, broker_id, request.broker_epoch)
    except ApiError as e:
        raise OperationFailed(e.code, e.message) from None
    registration = image.brokers[broker_id]
    records: list[Message] = []
    offline: dict[tuple[UUID, int], None] = {}
    response = AssignReplicasToDirsResponse(error_code=ErrorCode.NONE)
    for directory in request.directories:
        directory_offline = not registration.has_online_dir(directory.id)
        answer = AssignReplicasToDirsResponse.DirectoryData(id=directory.id)
        for asked in directory.topics:
            topic = image.topics.get(asked.topic_id)
            answer_topic = AssignReplicasToDirsResponse.TopicData(topic_id=asked.topic_id)
            for p in asked.partitions:
                code = ErrorCode.NONE
                partition = None if topic is None else topic.partitions.get(p.partition_index)
                if topic is None:
                    code = ErrorCode.UNKNOWN_TOPIC_ID
                elif partition is None:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                elif broker_id not in partition.replicas:
                    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
                else:
                    record = build_partition_change(
                        partition,
                        asked.topic_id,
                        p.partition_index,
                        is_acceptable_leader=leader_acceptor(image, partition),
                        metadata_version=mv,
                        directories={broker_id: directory.id},
                        default_directory=lambda broker: default_directory(image, broker),
                        min_isr=topic_min_isr(ctl, topic.name),
                    )
                    if record is not None:
                        records.append(record)
                    if directory_offline:
                        offline[(asked.topic_id, p.partition_index)] = None
                answer_topic.partitions.append(
                    AssignReplicasToDirsResponse.PartitionData(
                        partition_index=p.partition_index, error_code=code
                    )
                )
            answer.topics.append(answer_topic)
        response.directories.append(answer)
    if offline:
        records += leader_and_isr_updates(
            image,
            list(offline),
            metadata_version=mv,
            unclean_election=lambda topic: unclean_election_enabled(ctl, topic),
            broker_to_remove=broker_id,
            min_isr=min_isr_resolver(ctl),
        )
    return ctl.apply(Applied(), records, next_offset).result(response, atomic=False)
