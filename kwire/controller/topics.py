"""Deleting topics and adding partitions: DeleteTopics (20) and CreatePartitions (37).

Each operation is what Kafka 3.9's ControllerApis (the checks made before the controller
sees the request) and ReplicationControlManager (the records) do together:

| API              | whole-request failure                  | per-item errors                   |
|------------------|----------------------------------------|-----------------------------------|
| DeleteTopics     | delete.topic.enable=false: v0-2        | INVALID_REQUEST (duplicates, name |
|                  | INVALID_REQUEST, v3+                   | and id both or neither given),    |
|                  | TOPIC_DELETION_DISABLED                | TOPIC_AUTHORIZATION_FAILED,       |
|                  |                                        | UNKNOWN_TOPIC_OR_PARTITION,       |
|                  |                                        | UNKNOWN_TOPIC_ID, UNKNOWN_SERVER_ |
|                  |                                        | ERROR past 10,000 records         |
| CreatePartitions | more than 10,000 topics:               | INVALID_REQUEST (duplicates),     |
|                  | POLICY_VIOLATION                       | TOPIC_AUTHORIZATION_FAILED,       |
|                  |                                        | UNKNOWN_TOPIC_OR_PARTITION,       |
|                  |                                        | INVALID_PARTITIONS, INVALID_      |
|                  |                                        | REPLICA_ASSIGNMENT, INVALID_      |
|                  |                                        | REPLICATION_FACTOR, UNKNOWN_      |
|                  |                                        | SERVER_ERROR past 10,000 records  |

Records: one RemoveTopicRecord per deleted topic (its configs and partitions go with it
on replay), in the order of the java.util.HashMap Kafka keeps the ids in; one
PartitionRecord per new partition (ISR = its active replicas, leader = the first of
them). Both results are atomic. As in Kafka, a topic whose records overflow the bound
(or whose new partition finds no active replica) keeps the records it had added before
the failure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    ApiError,
    OperationFailed,
    excessively_large_operation,
)
from kwire.controller.authorizer import AclOperation, AuthHelper, ResourceType
from kwire.controller.cordon import usable_brokers
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.placement import UsableCluster, place_replicas
from kwire.controller.replication import (
    _new_partition,
    _partition_record,
    _validate_manual_assignment,
)
from kwire.controller.topic_configs import java_hash_map_order
from kwire.protocol._codec import ZERO_UUID, Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
)
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

K = TypeVar("K", bound=Hashable)
DeletableTopicResult = DeleteTopicsResponse.DeletableTopicResult
PartitionsResult = CreatePartitionsResponse.CreatePartitionsTopicResult


class _RecordsFull(Exception):
    """The operation's record list is at MAX_RECORDS_PER_USER_OP (Kafka's BoundedList
    refusing an add): the item being processed fails with UNKNOWN_SERVER_ERROR."""


def _add(records: list[Message], record: Message) -> None:
    if len(records) >= MAX_RECORDS_PER_USER_OP:
        raise _RecordsFull
    records.append(record)


def java_uuid_hash(value: UUID) -> int:
    """org.apache.kafka.common.Uuid.hashCode: the two halves xor-ed, folded to 32 bits."""
    folded = (value.int >> 64) ^ (value.int & (2**64 - 1))
    return ((folded >> 32) ^ folded) & 0xFFFFFFFF


def java_hash_map_order_by(keys: Iterable[K], hash_code: Callable[[K], int]) -> list[K]:
    """The order a default java.util.HashMap iterates ``keys`` inserted in this order
    (buckets in index order, insertion order within a bucket; tree bins not modelled)."""
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: K) -> int:
        h = hash_code(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(unique, key=bucket)


# -- DeleteTopics ----------------------------------------------------------------------------


def delete_topics(
    ctl: QuorumController, request: DeleteTopicsRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    """DeleteTopics v0-v6 (ControllerApis.deleteTopics, ReplicationControlManager.
    deleteTopics). Topics are named by ``topic_names`` (v0-v5) or ``topics`` (v6: a name
    or an id). The response lists every answer in a random order (Kafka shuffles them so
    that positions reveal nothing), drawn from the controller's generator.

    Raises OperationFailed when delete.topic.enable is false: INVALID_REQUEST "Topic
    deletion is disabled." below v3, TOPIC_DELETION_DISABLED from v3."""
    if not ctl.config.delete_topic_enable:
        if context.api_version < 3:
            raise OperationFailed(ErrorCode.INVALID_REQUEST, "Topic deletion is disabled.")
        raise OperationFailed(ErrorCode.TOPIC_DELETION_DISABLED)
    image = ctl.image
    responses: list[DeletableTopicResult] = []

    def answer(name: str | None, topic_id: UUID, code: ErrorCode, message: str | None) -> None:
        responses.append(
            DeletableTopicResult(
                name=name, topic_id=topic_id, error_code=code, error_message=message
            )
        )

    names: dict[str, None] = {}  # insertion-ordered sets
    duplicate_names: dict[str, None] = {}
    ids: dict[UUID, None] = {}
    duplicate_ids: dict[UUID, None] = {}

    def provide_name(name: str) -> None:
        if name in duplicate_names or name in names:
            duplicate_names[name] = None
            names.pop(name, None)
        else:
            names[name] = None

    for name in request.topic_names:
        provide_name(name)
    for topic in request.topics:
        if topic.name is None:
            if topic.topic_id == ZERO_UUID:
                answer(
                    None,
                    ZERO_UUID,
                    ErrorCode.INVALID_REQUEST,
                    "Neither topic name nor id were specified.",
                )
            elif topic.topic_id in duplicate_ids or topic.topic_id in ids:
                duplicate_ids[topic.topic_id] = None
                ids.pop(topic.topic_id, None)
            else:
                ids[topic.topic_id] = None
        elif topic.topic_id == ZERO_UUID:
            provide_name(topic.name)
        else:
            answer(
                topic.name,
                topic.topic_id,
                ErrorCode.INVALID_REQUEST,
                "You may not specify both topic name and topic id.",
            )
    for name in java_hash_map_order(duplicate_names):
        answer(name, ZERO_UUID, ErrorCode.INVALID_REQUEST, "Duplicate topic name.")
    for topic_id in java_hash_map_order_by(duplicate_ids, java_uuid_hash):
        answer(None, topic_id, ErrorCode.INVALID_REQUEST, "Duplicate topic id.")

    # Ids to names (ReplicationControlManager.findTopicNames): an unknown id is
    # UNKNOWN_TOPIC_ID whoever asks. Then the authorizer (ControllerApis.deleteTopics):
    # DELETE on the CLUSTER, or else DESCRIBE and DELETE on each TOPIC named or found by
    # id; an id whose topic may not be deleted is TOPIC_AUTHORIZATION_FAILED, with its name
    # only when the topic may be described. Then names to ids (findTopicIds): a name that
    # may not be described is TOPIC_AUTHORIZATION_FAILED before it is looked up, one that
    # may be described but not deleted after. Without an authorizer every topic may be
    # described and deleted.
    id_to_name: dict[UUID, str] = {}
    for topic_id in java_hash_map_order_by(ids, java_uuid_hash):
        info = image.topics.get(topic_id)
        if info is None:
            unknown_id = ErrorCode.UNKNOWN_TOPIC_ID
            answer(None, topic_id, unknown_id, unknown_id.message)
        else:
            id_to_name[topic_id] = info.name
    auth = AuthHelper.for_request(ctl, context)
    to_authorize = [*names, *id_to_name.values()]
    if auth.cluster(AclOperation.DELETE):
        describable = deletable = set(to_authorize)
    else:
        describable = auth.filter(AclOperation.DESCRIBE, ResourceType.TOPIC, to_authorize)
        deletable = auth.filter(AclOperation.DELETE, ResourceType.TOPIC, to_authorize)
    refused = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    for topic_id in java_hash_map_order_by(id_to_name, java_uuid_hash):
        name = id_to_name[topic_id]
        if name not in deletable:
            shown = name if name in describable else None
            answer(shown, topic_id, refused, refused.message)
            del id_to_name[topic_id]
    for name in java_hash_map_order(names):
        found = image.topic_ids_by_name.get(name)
        if name not in describable:
            answer(name, ZERO_UUID, refused, refused.message)
        elif found is None:
            unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            answer(name, ZERO_UUID, unknown, unknown.message)
        elif name not in deletable:
            answer(name, ZERO_UUID, refused, refused.message)
        elif found in duplicate_ids or found in id_to_name:
            # The name's id was also given by id: neither is deleted, and only the name
            # is answered.
            duplicate_ids[found] = None
            id_to_name.pop(found, None)
            answer(
                name,
                found,
                ErrorCode.INVALID_REQUEST,
                "The provided topic name maps to an ID that was already supplied.",
            )
        else:
            id_to_name[found] = name

    records: list[Message] = []
    for topic_id in java_hash_map_order_by(id_to_name, java_uuid_hash):
        try:
            _add(records, RemoveTopicRecord(topic_id=topic_id))
        except _RecordsFull:
            answer(id_to_name[topic_id], topic_id, ErrorCode.UNKNOWN_SERVER_ERROR, None)
            continue
        answer(id_to_name[topic_id], topic_id, ErrorCode.NONE, None)
    ctl.rng.shuffle(responses)
    response = DeleteTopicsResponse(responses=responses)
    if not records:
        return ControllerResult(records=[], response=response)
    return ctl.apply(Applied(), records, next_offset, atomic=True).result(response)


# -- CreatePartitions ------------------------------------------------------------------------


def create_partitions(
    ctl: QuorumController,
    request: CreatePartitionsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """CreatePartitions v0-v3 (ControllerApis.createPartitions, ReplicationControlManager.
    createPartitions). Answers: duplicated names first (INVALID_REQUEST), then the topics
    the caller may not ALTER (TOPIC_AUTHORIZATION_FAILED, with an authorizer), then one
    result per other topic, in the order of the java.util.HashSet Kafka collects names in.
    ``validate_only`` answers the same and writes nothing.

    Raises OperationFailed (POLICY_VIOLATION) for more than MAX_RECORDS_PER_USER_OP
    topics: Kafka's bounded result list refuses the next result and the whole operation
    fails."""
    seen: dict[str, None] = {}
    duplicates: dict[str, None] = {}
    for topic in request.topics:
        if topic.name in seen:
            duplicates[topic.name] = None
        seen[topic.name] = None
    responses = [
        PartitionsResult(
            name=name, error_code=ErrorCode.INVALID_REQUEST, error_message="Duplicate topic name."
        )
        for name in java_hash_map_order(duplicates)
    ]
    first_of: dict[str, CreatePartitionsRequest.CreatePartitionsTopic] = {}
    for topic in request.topics:
        first_of.setdefault(topic.name, topic)
    # ControllerApis.createPartitions: ALTER on each TOPIC, else TOPIC_AUTHORIZATION_FAILED
    # (no message), answered before the controller's results, in the set's order.
    unique = [n for n in java_hash_map_order(seen) if n not in duplicates]
    alterable = AuthHelper.for_request(ctl, context).filter(
        AclOperation.ALTER, ResourceType.TOPIC, unique
    )
    topics = []
    for name in unique:
        if name in alterable:
            topics.append(first_of[name])
        else:
            responses.append(
                PartitionsResult(name=name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            )
    if not topics:
        return ControllerResult(records=[], response=CreatePartitionsResponse(results=responses))
    if len(topics) > MAX_RECORDS_PER_USER_OP:
        raise excessively_large_operation()

    records: list[Message] = []
    # The usable brokers by rack, set up once for every topic placed (the brokers do not
    # change while the request is answered).
    usable: list[UsableCluster] = []
    for topic in topics:
        code, message = ErrorCode.NONE, None
        try:
            _create_partitions(ctl, topic, records, usable)
        except ApiError as e:
            code, message = e.code, e.message
        except _RecordsFull:
            code, message = ErrorCode.UNKNOWN_SERVER_ERROR, None
        responses.append(PartitionsResult(name=topic.name, error_code=code, error_message=message))
    response = CreatePartitionsResponse(results=responses)
    if request.validate_only or not records:
        return ControllerResult(records=[], response=response)
    return ctl.apply(Applied(), records, next_offset, atomic=True).result(response)


def _create_partitions(
    ctl: QuorumController,
    topic: CreatePartitionsRequest.CreatePartitionsTopic,
    records: list[Message],
    usable: list[UsableCluster],
) -> None:
    """Add ``topic``'s partitions to ``records``; ``usable`` holds the request's
    UsableCluster once a topic has set it up."""
    image = ctl.image
    topic_id = image.topic_ids_by_name.get(topic.name)
    info = None if topic_id is None else image.topics.get(topic_id)
    if topic_id is None or info is None:
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    current = len(info.partitions)
    if topic.count == current:
        raise ApiError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
    if topic.count < current:
        raise ApiError(
            ErrorCode.INVALID_PARTITIONS,
            f"The topic {topic.name} currently has {current} partition(s); {topic.count} "
            "would not be an increase.",
        )
    additional = topic.count - current
    if topic.assignments is not None and len(topic.assignments) != additional:
        raise ApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"Attempted to add {additional} additional partition(s), but only "
            f"{len(topic.assignments)} assignment(s) were specified.",
        )
    if not info.partitions:
        raise ApiError(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            f"Invalid state: topic {topic.name} appears to have no partitions.",
        )
    # The replication factor of the partition Kafka's partition map yields first: the one
    # with the lowest id (key 0 always hashes to the first slot).
    replication_factor = len(info.partitions[min(info.partitions)].replicas)
    start = current
    assignments: list[list[int]] = []
    isrs: list[list[int]] = []
    if topic.assignments is not None:
        for i, assignment in enumerate(topic.assignments):
            replicas = list(assignment.broker_ids)
            _validate_manual_assignment(image, replicas, replication_factor)
            isr = [b for b in replicas if image.is_active(b)]
            if not isr:
                raise ApiError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "All brokers specified in the manual partition assignment for partition "
                    f"{start + i} are fenced or in controlled shutdown.",
                )
            assignments.append(replicas)
            isrs.append(isr)
    else:
        if not usable:
            usable.append(UsableCluster(usable_brokers(image, ctl.tracker)))
        # Kafka places every partition first; past the room left for records the answer
        # is the same (UNKNOWN_SERVER_ERROR), so kwire places no more than that.
        room = MAX_RECORDS_PER_USER_OP - len(records) + 1
        assignments = place_replicas(ctl.rng, usable[0], min(additional, room), replication_factor)
        isrs = assignments
    for i, replicas in enumerate(assignments):
        isr = [b for b in isrs[i] if image.is_active(b)]
        if not isr:
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): All brokers "
                "are currently fenced or in controlled shutdown.",
            )
        partition = _new_partition(image, replicas, isr)
        _add(records, _partition_record(topic_id, start + i, partition, ctl.metadata_version))
