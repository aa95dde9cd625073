"""Topics, partitions, leaders and ISRs (Kafka's ReplicationControlManager).

Functions here only read the image and return records; the controller applies them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    ApiError,
    excessively_large_operation,
)
from kwire.controller.authorizer import AclOperation, AuthHelper, ResourceType
from kwire.controller.cordon import usable_brokers
from kwire.controller.elr import MinIsr, clear_elr_records, elr_enabled
from kwire.controller.heartbeats import BrokerHeartbeatTracker
from kwire.controller.image import (
    DIR_MIGRATING,
    DIR_UNASSIGNED,
    NO_LEADER,
    ConfigResourceType,
    MetadataImage,
    PartitionRegistration,
)
from kwire.controller.java_order import JavaHashMap, string_hash
from kwire.controller.partition_change import Election, build_partition_change
from kwire.controller.placement import UsableCluster, place_replicas
from kwire.controller.records import MetadataVersion
from kwire.controller.topic_configs import (
    Inherited,
    effective_topic_configs,
    java_hash_map_order,
    validate_topic_configs,
)
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

CLUSTER_METADATA_TOPIC = "__cluster_metadata"
_MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")

Result = CreateTopicsResponse.CreatableTopicResult
TopicConfigs = CreateTopicsResponse.CreatableTopicConfigs


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationSettings:
    default_num_partitions: int
    default_replication_factor: int
    static_topic_defaults: Mapping[str, str]
    # A topic config's value from the broker configs (ConfigurationControlManager.
    # computeEffectiveTopicConfigs: this node's dynamic, cluster-wide, static), or None.
    inherited: Inherited | None = None


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` is not a legal topic name, in Kafka's words, or None."""
    if not name:
        return "the empty string is not allowed"
    if name in (".", ".."):
        return f"'{name}' is not allowed"
    if len(name) > _MAX_TOPIC_NAME_LENGTH:
        return (
            f"the length of '{name}' is longer than the max allowed length {_MAX_TOPIC_NAME_LENGTH}"
        )
    if not _LEGAL_TOPIC_NAME.fullmatch(name):
        return (
            f"'{name}' contains one or more characters other than ASCII alphanumerics, "
            "'.', '_' and '-'"
        )
    return None


def random_topic_id(rng: random.Random) -> UUID:
    """A fresh topic id like Kafka's Uuid.randomUuid: version 4, never one of the reserved
    ids, and never one whose base64 form starts with '-' (it would read as a CLI flag)."""
    while True:
        candidate = UUID(int=rng.getrandbits(128), version=4)
        if candidate.int < 100 or candidate.bytes[0] >> 2 == 62:
            continue  # reserved, or base64 would start with '-'
        return candidate


def default_directory(image: MetadataImage, broker_id: int) -> UUID:
    """Where a new replica on ``broker_id`` lives: its only log dir, else unassigned."""
    registration = image.brokers.get(broker_id)
    if registration is None:
        return DIR_UNASSIGNED
    if not registration.directories:
        return DIR_MIGRATING
    if len(registration.directories) == 1:
        return registration.directories[0]
    return DIR_UNASSIGNED


class _Shared:
    """What every topic of one CreateTopics shares, computed once per request: the image
    and the broker configs do not change while it is answered. Broker facts are looked up
    lazily, so the cost follows the brokers a request places on, not the cluster's size."""

    __slots__ = ("image", "active", "directory", "with_directories", "configs", "usable")

    def __init__(self, image: MetadataImage, mv: MetadataVersion) -> None:
        self.image = image
        self.active: dict[int, bool] = {}
        self.directory: dict[int, UUID] = {}
        self.with_directories = mv.supports_directory_assignment
        # The response's configs by the topic's own configs (in request order).
        self.configs: dict[tuple[tuple[str, str], ...], list[TopicConfigs]] = {}
        # The usable brokers by rack, set up by the first topic placed by the placer.
        self.usable: UsableCluster | None = None

    def is_active(self, broker_id: int) -> bool:
        active = self.active.get(broker_id)
        if active is None:
            active = self.active[broker_id] = self.image.is_active(broker_id)
        return active

    def isr(self, replicas: list[int]) -> list[int]:
        """The replicas that can be in a new partition's ISR (unfenced, not shutting down)."""
        return [b for b in replicas if self.is_active(b)]

    def directories(self, replicas: list[int]) -> list[UUID]:
        directory = self.directory
        result = []
        for broker_id in replicas:
            found = directory.get(broker_id)
            if found is None:
                found = directory[broker_id] = default_directory(self.image, broker_id)
            result.append(found)
        return result


class CreateTopicsOutcome:
    __slots__ = ("records", "response")

    def __init__(self, records: list[Message], response: CreateTopicsResponse) -> None:
        self.records = records
        self.response = response


def create_topics(
    image: MetadataImage,
    tracker: BrokerHeartbeatTracker,
    request: CreateTopicsRequest,
    *,
    settings: ReplicationSettings,
    rng: random.Random,
    metadata_version: MetadataVersion,
    auth: AuthHelper | None = None,
) -> CreateTopicsOutcome:
    """CreateTopics as ControllerApis and the QuorumController answer it together.

    ``auth`` (the caller; every answer yes without an authorizer) decides, as
    ControllerApis.createTopics: CREATE on the CLUSTER, or else CREATE on each TOPIC, lets
    a topic reach the controller (otherwise TOPIC_AUTHORIZATION_FAILED "Authorization
    failed."); DESCRIBE_CONFIGS on the TOPIC lets a created topic's configs, partition
    count and replication factor be returned (otherwise topic_config_error_code
    TOPIC_AUTHORIZATION_FAILED). Answers: the controller's, in request order, then
    duplicates, then the metadata topic and the unauthorized names, in the order of
    the java.util.HashSets Kafka keeps them in.

    Raises OperationFailed (POLICY_VIOLATION) when the topics that pass validation would
    take more than MAX_RECORDS_PER_USER_OP records, validate_only or not, as Kafka does."""
    if auth is None:
        auth = AuthHelper(None, "", "")
    # ControllerApis: duplicate names, the metadata topic and unauthorized names never
    # reach the controller. Both sets are Java HashSets: their order is Kafka's answer order.
    names: JavaHashMap[str, None] = JavaHashMap()
    duplicates: JavaHashMap[str, None] = JavaHashMap()
    for topic in request.topics:
        if topic.name in duplicates:
            continue
        if topic.name in names:
            names.remove(topic.name)
            duplicates.put(topic.name, string_hash(topic.name), None)
        else:
            names.put(topic.name, string_hash(topic.name), None)
    name_order, duplicate_order = names.keys(), duplicates.keys()
    allowed = [n for n in name_order if n != CLUSTER_METADATA_TOPIC]
    if auth.cluster(AclOperation.CREATE):
        authorized = set(allowed)
    else:
        authorized = auth.filter(AclOperation.CREATE, ResourceType.TOPIC, allowed)
    describable = auth.filter(AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, allowed)
    topics = [t for t in request.topics if t.name not in duplicates and t.name in authorized]

    errors: dict[str, ApiError] = {}
    for topic in topics:
        problem = topic_name_problem(topic.name)
        if problem is not None:
            errors[topic.name] = ApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {problem}"
            )
        if "." in topic.name or "_" in topic.name:
            other = image.colliding_topic(topic.name)
            if other is not None:
                errors[topic.name] = ApiError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                    f"Topic '{topic.name}' collides with existing topic: {other}",
                )
    for topic in topics:
        if topic.name in image.topic_ids_by_name:
            errors[topic.name] = ApiError(
                ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists."
            )
    for topic in topics:
        nulls = [c.name for c in topic.configs if c.value is None]
        if topic.name not in errors and nulls:
            errors[topic.name] = ApiError(
                ErrorCode.INVALID_CONFIG,
                "Null value not supported for topic configs: " + ",".join(nulls),
            )

    records: list[Message] = []
    successes: dict[str, Result] = {}
    shared = _Shared(image, metadata_version)
    for topic in topics:
        if topic.name in errors:
            continue
        configs = {c.name: c.value for c in topic.configs if c.value is not None}
        try:
            validate_topic_configs(configs, metadata_version)
            successes[topic.name] = _create_topic(
                image,
                tracker,
                topic,
                configs,
                records,
                settings,
                rng,
                metadata_version,
                shared,
                topic.name in describable,
            )
        except ApiError as e:
            errors[topic.name] = e

    response = CreateTopicsResponse()
    for topic in topics:
        error = errors.get(topic.name)
        if error is None:
            response.topics.append(successes[topic.name])
        else:
            response.topics.append(
                Result(name=topic.name, error_code=error.code, error_message=error.message)
            )
    for name in duplicate_order:
        response.topics.append(
            Result(
                name=name,
                error_code=ErrorCode.INVALID_REQUEST,
                error_message="Duplicate topic name.",
            )
        )
    for name in name_order:
        if name == CLUSTER_METADATA_TOPIC:
            response.topics.append(
                Result(
                    name=CLUSTER_METADATA_TOPIC,
                    error_code=ErrorCode.INVALID_REQUEST,
                    error_message=(
                        f"Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."
                    ),
                )
            )
        elif name not in authorized:
            response.topics.append(
                Result(
                    name=name,
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                    error_message="Authorization failed.",
                )
            )
    return CreateTopicsOutcome([] if request.validate_only else records, response)


def _create_topic(
    image: MetadataImage,
    tracker: BrokerHeartbeatTracker,
    topic: CreateTopicsRequest.CreatableTopic,
    configs: dict[str, str],
    records: list[Message],
    settings: ReplicationSettings,
    rng: random.Random,
    mv: MetadataVersion,
    shared: _Shared,
    describable: bool = True,
) -> Result:
    config_records: list[Message] = [
        ConfigRecord(
            resource_type=ConfigResourceType.TOPIC,
            resource_name=topic.name,
            name=name,
            value=configs[name],
        )
        for name in java_hash_map_order(configs)
    ]
    if elr_enabled(image):
        # A topic created with min.insync.replicas clears its (new) ELRs, as any change of
        # it does (ConfigurationControlManager.incrementalAlterConfig).
        config_records += clear_elr_records(config_records)
    # Each new partition's replicas and ISR, by partition id.
    new_parts: dict[int, tuple[list[int], list[int]]] = {}
    if topic.assignments:
        if topic.replication_factor != -1:
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                "A manual partition assignment was specified, but replication factor was "
                "not set to -1.",
            )
        if topic.num_partitions != -1:
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                "A manual partition assignment was specified, but numPartitions was not set to -1.",
            )
        replication_factor: int | None = None
        for assignment in topic.assignments:
            if assignment.partition_index in new_parts:
                raise ApiError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "Found multiple manual partition assignments for partition "
                    f"{assignment.partition_index}",
                )
            _validate_manual_assignment(image, assignment.broker_ids, replication_factor)
            replication_factor = len(assignment.broker_ids)
            isr = shared.isr(assignment.broker_ids)
            if not isr:
                raise ApiError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "All brokers specified in the manual partition assignment for partition "
                    f"{assignment.partition_index} are fenced or in controlled shutdown.",
                )
            new_parts[assignment.partition_index] = (list(assignment.broker_ids), isr)
        for index in range(len(new_parts)):
            if index not in new_parts:
                raise ApiError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "partitions should be a consecutive 0-based integer sequence",
                )
    elif topic.replication_factor < -1 or topic.replication_factor == 0:
        raise ApiError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )
    elif topic.num_partitions < -1 or topic.num_partitions == 0:
        raise ApiError(
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.",
        )
    else:
        num_partitions = (
            settings.default_num_partitions if topic.num_partitions == -1 else topic.num_partitions
        )
        replication_factor = (
            settings.default_replication_factor
            if topic.replication_factor == -1
            else topic.replication_factor
        )
        if shared.usable is None:  # once per request: the brokers do not change meanwhile
            shared.usable = UsableCluster(usable_brokers(image, tracker))
        try:
            placements = place_replicas(
                rng,
                shared.usable,
                num_partitions,
                replication_factor,
                # Kafka places every partition and then fails adding the records; the
                # answer is the same, without placing millions of partitions first.
                max_partitions=MAX_RECORDS_PER_USER_OP - len(records) - 1 - len(config_records),
            )
        except ApiError as e:
            raise ApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): {e.message}",
            ) from None
        for partition_id, replicas in enumerate(placements):
            isr = shared.isr(replicas)
            if not isr:
                raise ApiError(
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                    f"Unable to replicate the partition {replication_factor} time(s): All "
                    "brokers are currently fenced or in controlled shutdown.",
                )
            new_parts[partition_id] = (replicas, isr)

    if len(records) + 1 + len(config_records) + len(new_parts) > MAX_RECORDS_PER_USER_OP:
        raise excessively_large_operation()
    topic_id = _unused_topic_id(image, rng)
    result = Result(
        name=topic.name,
        topic_id=topic_id,
        error_code=ErrorCode.NONE,
        error_message=None,
        # Without DESCRIBE_CONFIGS on the topic, ReplicationControlManager.createTopic
        # returns no configs, and -1 for the counts (the schema's defaults).
        topic_config_error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    )
    if describable:
        result.topic_config_error_code = ErrorCode.NONE
        result.num_partitions = len(new_parts)
        result.replication_factor = len(new_parts[0][0])
        key = tuple(configs.items())
        described = shared.configs.get(key)
        if described is None:
            described = shared.configs[key] = [
                TopicConfigs(
                    name=entry.name,
                    value=None if entry.sensitive else entry.value,
                    read_only=entry.read_only,
                    config_source=entry.source,
                    is_sensitive=entry.sensitive,
                )
                for entry in effective_topic_configs(
                    configs, settings.static_topic_defaults, level=mv, inherited=settings.inherited
                )
            ]
        # The entries are shared by the topics of this request with the same configs.
        result.configs = list(described)
    records.append(TopicRecord(name=topic.name, topic_id=topic_id))
    # ConfigRecords (and any ClearElrRecord) sit between the TopicRecord and the
    # PartitionRecords, in the order of the Java HashMap Kafka builds them from.
    records += config_records
    with_directories = shared.with_directories
    for partition_id in sorted(new_parts) if topic.assignments else range(len(new_parts)):
        replicas, isr = new_parts[partition_id]
        record = PartitionRecord(
            partition_id=partition_id,
            topic_id=topic_id,
            replicas=replicas,
            isr=isr,
            leader=isr[0],
            leader_epoch=0,
            partition_epoch=0,
        )
        if with_directories:
            record.directories = shared.directories(replicas)
        records.append(record)
    return result


def _unused_topic_id(image: MetadataImage, rng: random.Random) -> UUID:
    while True:
        topic_id = random_topic_id(rng)
        if topic_id not in image.topics:
            return topic_id


def _validate_manual_assignment(
    image: MetadataImage, broker_ids: list[int], replication_factor: int | None
) -> None:
    if not broker_ids:
        raise ApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes an empty replica list.",
        )
    previous = None
    for broker_id in sorted(broker_ids):
        if broker_id not in image.brokers:
            raise ApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {broker_id}, but no such "
                "broker is registered.",
            )
        if broker_id == previous:
            raise ApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {previous} more than once.",
            )
        previous = broker_id
    if replication_factor is not None and len(broker_ids) != replication_factor:
        raise ApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"The manual partition assignment includes a partition with {len(broker_ids)} "
            "replica(s), but this is not consistent with previous partitions, which have "
            f"{replication_factor} replica(s).",
        )


def _new_partition(
    image: MetadataImage, replicas: Iterable[int], isr: list[int]
) -> PartitionRegistration:
    replicas = tuple(replicas)
    return PartitionRegistration(
        replicas=replicas,
        directories=tuple(default_directory(image, b) for b in replicas),
        isr=tuple(isr),
        leader=isr[0],
        leader_epoch=0,
        partition_epoch=0,
    )


def _partition_record(
    topic_id: UUID, partition_id: int, p: PartitionRegistration, mv: MetadataVersion
) -> PartitionRecord:
    record = PartitionRecord(
        partition_id=partition_id,
        topic_id=topic_id,
        replicas=list(p.replicas),
        isr=list(p.isr),
        removing_replicas=list(p.removing_replicas),
        adding_replicas=list(p.adding_replicas),
        leader=p.leader,
        leader_recovery_state=p.leader_recovery_state,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
    )
    if mv.supports_directory_assignment:
        record.directories = list(p.directories)
    return record


# -- leader and ISR changes ------------------------------------------------------------------


# Whether a topic (by name) may elect a leader outside its ISR (see leader_and_isr_updates).
UncleanElection = Callable[[str], bool]


def leader_and_isr_updates(
    image: MetadataImage,
    partitions: Iterable[tuple[UUID, int]],
    *,
    metadata_version: MetadataVersion,
    unclean_election: UncleanElection,
    broker_to_remove: int = NO_LEADER,
    broker_to_add: int = NO_LEADER,
    min_isr: MinIsr = None,
    unclean_shutdown_broker: int = NO_LEADER,
) -> list[Message]:
    """PartitionChangeRecords that take ``broker_to_remove`` out of the ISR and leadership
    of ``partitions`` and elect leaders, treating ``broker_to_add`` as able to lead even
    though the image still shows it fenced (it is being unfenced in the same batch).
    ``unclean_election(topic name)`` says whether the topic may elect a leader outside its
    ISR: ``unclean.leader.election.enable`` as the controller resolves it (kwire.controller.
    elections.unclean_election_enabled; ReplicationControlManager.generateLeaderAndIsr-
    Updates asks ConfigurationControlManager.uncleanLeaderElectionEnabledForTopic).

    ``min_isr`` (kwire.controller.elr.min_isr_resolver) keeps eligible leader replicas;
    ``unclean_shutdown_broker`` leaves the ISR, the ELR and may not lead (Kafka 4.3.1's
    handleBrokerShutdown for a broker back from an unclean shutdown)."""
    excluded = {broker_to_remove, unclean_shutdown_broker} - {NO_LEADER}

    def acceptable(partition: PartitionRegistration) -> Callable[[int], bool]:
        def check(replica: int) -> bool:
            if replica in excluded:
                return False
            if replica != broker_to_add and not image.is_active(replica):
                return False
            registration = image.brokers.get(replica)
            return registration is not None and registration.has_online_dir(
                partition.directory(replica)
            )

        return check

    # Per topic, not per partition: nothing is applied while the records are built.
    unclean: dict[str, bool] = {}
    min_isrs: dict[str, int | None] = {}
    records: list[Message] = []
    for topic_id, partition_id in list(partitions):
        topic = image.topics[topic_id]
        partition = topic.partitions[partition_id]
        name = topic.name
        if name not in unclean:
            unclean[name] = unclean_election(name)
            min_isrs[name] = None if min_isr is None else min_isr(name)
        record = build_partition_change(
            partition,
            topic_id,
            partition_id,
            is_acceptable_leader=acceptable(partition),
            metadata_version=metadata_version,
            target_isr=[r for r in partition.isr if r not in excluded],
            election=Election.UNCLEAN if unclean[name] else Election.ONLINE,
            min_isr=min_isrs[name],
            unclean_shutdown=(
                [unclean_shutdown_broker] if unclean_shutdown_broker != NO_LEADER else []
            ),
        )
        if record is not None:
            records.append(record)
    return records
