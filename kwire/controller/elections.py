"""ElectLeaders (Kafka's ReplicationControlManager.electLeaders, QuorumController.electLeaders).

PREFERRED elects each partition's first replica when it is in the ISR and may lead;
UNCLEAN elects a leader for a partition that has none, outside the ISR if it must. A
partition that already has what was asked is answered ELECTION_NOT_NEEDED (and left out of
the answer when every partition was asked, ``topic_partitions`` null); one where no
replica may lead PREFERRED_LEADER_NOT_AVAILABLE or ELIGIBLE_LEADERS_NOT_AVAILABLE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    OperationFailed,
    excessively_large_operation,
)
from kwire.controller.elr import topic_min_isr
from kwire.controller.image import NO_LEADER, ConfigResourceType
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.partition_change import Election, build_partition_change, leader_acceptor
from kwire.controller.replication import default_directory
from kwire.controller.timeline_order import java_int_hash, java_string_hash, timeline_order
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

UNCLEAN_LEADER_ELECTION_ENABLE = "unclean.leader.election.enable"
_PREFERRED, _UNCLEAN = 0, 1  # Kafka's ElectionType

Result = ElectLeadersResponse.ReplicaElectionResult
PartitionResult = ElectLeadersResponse.PartitionResult


def unclean_election_enabled(ctl: QuorumController, topic: str) -> bool:
    """``unclean.leader.election.enable`` as it applies to ``topic``: the topic's own
    config, else this controller's dynamic broker config, else the cluster default, else
    the controller's static config; false when none is set (ConfigurationControlManager.
    uncleanLeaderElectionEnabledForTopic, Boolean.parseBoolean)."""
    image = ctl.image
    for scope in (
        image.topic_config(topic),
        image.configs.get((ConfigResourceType.BROKER, str(ctl.node_id)), {}),
        image.configs.get((ConfigResourceType.BROKER, ""), {}),
        ctl.config.static_topic_configs,
    ):
        value = scope.get(UNCLEAN_LEADER_ELECTION_ENABLE)
        if value is not None:
            return value.lower() == "true"
    return False


def elect_leaders(
    ctl: QuorumController, request: ElectLeadersRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    """Answer ElectLeaders v0-v2. Raises OperationFailed: INVALID_REQUEST for an unknown
    election type, POLICY_VIOLATION for more than MAX_RECORDS_PER_USER_OP changes."""
    response = ElectLeadersResponse(error_code=ErrorCode.NONE)
    if request.topic_partitions is not None and not request.topic_partitions:
        return ControllerResult(records=[], response=response)  # nothing asked, nothing done
    if request.election_type not in (_PREFERRED, _UNCLEAN):
        raise OperationFailed(
            ErrorCode.INVALID_REQUEST, f"Unknown election type {request.election_type}"
        )
    records: list[Message] = []
    if request.topic_partitions is None:
        # Every partition of every topic, in the order Kafka's TimelineHashMaps hold them.
        by_name = ctl.image.topic_ids_by_name
        for name in timeline_order(by_name, java_string_hash):
            result = Result(topic=name)
            response.replica_election_results.append(result)
            partitions = ctl.image.topics[by_name[name]].partitions
            for partition_id in timeline_order(partitions, java_int_hash):
                code, message = _elect(ctl, request.election_type, name, partition_id, records)
                if code is not ErrorCode.ELECTION_NOT_NEEDED:
                    result.partition_result.append(
                        PartitionResult(
                            partition_id=partition_id, error_code=code, error_message=message
                        )
                    )
    else:
        for topic in request.topic_partitions:
            result = Result(topic=topic.topic)
            response.replica_election_results.append(result)
            for partition_id in topic.partitions:
                code, message = _elect(
                    ctl, request.election_type, topic.topic, partition_id, records
                )
                result.partition_result.append(
                    PartitionResult(
                        partition_id=partition_id, error_code=code, error_message=message
                    )
                )
    return ctl.apply(Applied(), records, next_offset).result(response, atomic=False)


def _elect(
    ctl: QuorumController, election_type: int, name: str, partition_id: int, records: list[Message]
) -> tuple[ErrorCode, str | None]:
    image = ctl.image
    topic = image.topic_by_name(name)
    if topic is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {name}"
    partition = topic.partitions.get(partition_id)
    if partition is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {name}-{partition_id}"
    preferred = partition.replicas[0] if partition.replicas else NO_LEADER
    if (election_type == _PREFERRED and partition.leader == preferred) or (
        election_type == _UNCLEAN and partition.leader != NO_LEADER
    ):
        return ErrorCode.ELECTION_NOT_NEEDED, ErrorCode.ELECTION_NOT_NEEDED.message
    record = build_partition_change(
        partition,
        topic.topic_id,
        partition_id,
        is_acceptable_leader=leader_acceptor(image, partition),
        metadata_version=ctl.metadata_version,
        election=Election.PREFERRED if election_type == _PREFERRED else Election.UNCLEAN,
        default_directory=lambda broker: default_directory(image, broker),
        min_isr=topic_min_isr(ctl, name),
    )
    if record is None:
        code = (
            ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
            if election_type == _PREFERRED
            else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
        )
        return code, code.message
    if len(records) >= MAX_RECORDS_PER_USER_OP:
        raise excessively_large_operation()
    records.append(record)
    return ErrorCode.NONE, None
