"""Brokers and controllers joining the cluster, heartbeats, fencing and controlled
shutdown (Kafka's ClusterControlManager and the broker half of ReplicationControlManager).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

from kwire.controller.api_error import ApiError
from kwire.controller.cordon import cordoned_dirs_records, cordoned_log_dirs_supported
from kwire.controller.elr import MinIsr
from kwire.controller.heartbeats import BrokerControlState, BrokerHeartbeatTracker, HeartbeatIntent
from kwire.controller.image import (
    MetadataImage,
    ZkMigrationState,
    is_reserved_directory,
)
from kwire.controller.records import (
    METADATA_VERSION_FEATURE,
    MINIMUM_KRAFT_VERSION,
    MetadataVersion,
)
from kwire.controller.replication import UncleanElection, leader_and_isr_updates
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.protocol.messages.metadata_records.unfence_broker_record import UnfenceBrokerRecord

# BrokerRegistrationChangeRecord's tri-state fields.
_FENCE, _UNFENCE, _IN_CONTROLLED_SHUTDOWN = 1, -1, 1


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> None:
    registration = image.brokers.get(broker_id)
    if registration is None:
        raise ApiError(
            ErrorCode.STALE_BROKER_EPOCH, f"No broker registration found for broker id {broker_id}"
        )
    if registration.epoch != broker_epoch:
        raise ApiError(
            ErrorCode.STALE_BROKER_EPOCH,
            f"Expected broker epoch {registration.epoch}, but got broker epoch {broker_epoch}",
        )


# -- registration ----------------------------------------------------------------------------


def register_broker(
    image: MetadataImage,
    tracker: BrokerHeartbeatTracker,
    request: BrokerRegistrationRequest,
    *,
    cluster_id: str,
    new_broker_epoch: int,
    finalized_features: Mapping[str, int],
    metadata_version: MetadataVersion,
    zk_migration_enabled: bool = False,
    clean_shutdown_detection: bool = False,
    shutdown_records: Callable[[int, bool], list[Message]] | None = None,
) -> tuple[list[Message], int]:
    """The RegisterBrokerRecord for a registration and the broker epoch to answer with.

    A broker re-registering with the incarnation id it already has keeps its epoch and
    state; a new incarnation gets ``new_broker_epoch`` (the offset its record will take),
    but only once the old incarnation's session has lapsed or it has been fenced.

    A new incarnation first gets ``shutdown_records(broker id, clean)``, written before
    its RegisterBrokerRecord; ``clean`` is whether the request's PreviousBrokerEpoch is the
    epoch of the registration it replaces (-2 when there is none), and is always false
    without ``clean_shutdown_detection`` (BrokerRegistration v3+; Kafka 4.3.1's
    ClusterControlManager.registerBroker).
    """
    if request.cluster_id != cluster_id:
        raise ApiError(
            ErrorCode.INCONSISTENT_CLUSTER_ID,
            f"Expected cluster ID {cluster_id}, but got cluster ID {request.cluster_id}",
        )
    broker_id = request.broker_id
    existing = image.brokers.get(broker_id)
    previous_incarnation = existing.incarnation_id if existing else None
    if (
        existing is not None
        and tracker.has_valid_session(broker_id)
        and request.incarnation_id != previous_incarnation
    ):
        raise ApiError(
            ErrorCode.DUPLICATE_BROKER_REGISTRATION,
            "Another broker is registered with that broker id.",
        )
    # Kafka 4.x controllers have no ZooKeeper migration: ZK brokers are always refused.
    kafka4 = metadata_version >= MetadataVersion.IBP_4_0_IV0
    zk_allowed = zk_migration_enabled and metadata_version.supports_migration and not kafka4
    if request.is_migrating_zk_broker and not zk_allowed:
        raise ApiError(
            ErrorCode.BROKER_ID_NOT_REGISTERED,
            "Controller does not support registering ZK brokers.",
        )
    if (
        not kafka4
        and not request.is_migrating_zk_broker
        and image.zk_migration_state is ZkMigrationState.PRE_MIGRATION
    ):
        raise ApiError(
            ErrorCode.BROKER_ID_NOT_REGISTERED,
            "Controller is in pre-migration mode and cannot register KRaft brokers until the "
            "metadata migration is complete.",
        )
    if metadata_version.supports_directory_assignment:
        _check_log_dirs(image, broker_id, request.log_dirs)

    record = RegisterBrokerRecord(
        broker_id=broker_id,
        is_migrating_zk_broker=request.is_migrating_zk_broker,
        incarnation_id=request.incarnation_id,
        rack=request.rack,
        end_points=[
            RegisterBrokerRecord.BrokerEndpoint(
                name=listener.name,
                host=listener.host,
                port=listener.port,
                security_protocol=listener.security_protocol,
            )
            for listener in request.listeners
        ],
    )
    unverified = dict(finalized_features)
    for feature in request.features:
        _check_feature(
            finalized_features,
            feature.name,
            feature.min_supported_version,
            feature.max_supported_version,
        )
        record.features.append(
            RegisterBrokerRecord.BrokerFeature(
                name=feature.name,
                min_supported_version=feature.min_supported_version,
                max_supported_version=feature.max_supported_version,
            )
        )
        unverified.pop(feature.name, None)
    requested = {f.name for f in request.features}
    if METADATA_VERSION_FEATURE not in requested and kafka4:
        # Kafka 4.3.1 no longer assumes the first KRaft level for such brokers.
        raise ApiError(
            ErrorCode.INVALID_REGISTRATION,
            f"Request features do not contain '{METADATA_VERSION_FEATURE}'",
        )
    if METADATA_VERSION_FEATURE not in requested:
        # Brokers that name no metadata.version range only support the first KRaft one.
        level = int(MINIMUM_KRAFT_VERSION)
        _check_feature(finalized_features, METADATA_VERSION_FEATURE, level, level)
        record.features.append(
            RegisterBrokerRecord.BrokerFeature(
                name=METADATA_VERSION_FEATURE,
                min_supported_version=level,
                max_supported_version=level,
            )
        )
        unverified.pop(METADATA_VERSION_FEATURE, None)
    for name, level in unverified.items():
        # A finalized feature the broker does not mention: it supports only level 0.
        if level != 0:
            _check_feature(finalized_features, name, 0, 0)
    if metadata_version.supports_directory_assignment:
        record.log_dirs = list(request.log_dirs)

    records: list[Message] = []
    if request.incarnation_id != previous_incarnation:
        if shutdown_records is not None:
            stored_epoch = existing.epoch if existing is not None else -2
            clean = clean_shutdown_detection and stored_epoch == request.previous_broker_epoch
            records += shutdown_records(broker_id, clean)
        record.broker_epoch = new_broker_epoch
        tracker.remove(broker_id)
    else:
        assert existing is not None
        record.broker_epoch = existing.epoch
        record.fenced = existing.fenced
        record.in_controlled_shutdown = existing.in_controlled_shutdown
    tracker.register(broker_id, record.fenced)
    records.append(record)
    return records, record.broker_epoch


def _check_log_dirs(image: MetadataImage, broker_id: int, log_dirs: list[UUID]) -> None:
    def invalid(message: str) -> ApiError:
        return ApiError(ErrorCode.INVALID_REGISTRATION, message)

    if not log_dirs:
        raise invalid("No directories specified in request")
    if any(is_reserved_directory(d) for d in log_dirs):
        raise invalid("Reserved directory ID in request")
    if len(set(log_dirs)) != len(log_dirs):
        raise invalid("Duplicate directory ID in request")
    for directory in log_dirs:
        owner = image.directory_owners.get(directory)
        if owner is not None and owner != broker_id:
            raise invalid(f"Broker {owner} is already registered with directory {directory}")


def _check_feature(finalized: Mapping[str, int], name: str, low: int, high: int) -> None:
    # metadata.version is 1 when not finalized; every other feature is 0.
    level = finalized.get(name, 1 if name == METADATA_VERSION_FEATURE else 0)
    if not low <= level <= high:
        raise ApiError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"Unable to register because the broker does not support finalized version "
            f"{level} of {name}. The broker wants a version between {low} and {high}, inclusive.",
        )


def register_controller(
    request: ControllerRegistrationRequest, metadata_version: MetadataVersion
) -> list[Message]:
    if not metadata_version.supports_controller_registration:
        raise ApiError(
            ErrorCode.UNSUPPORTED_VERSION,
            "The current MetadataVersion is too old to support controller registrations.",
        )
    return [
        RegisterControllerRecord(
            controller_id=request.controller_id,
            incarnation_id=request.incarnation_id,
            zk_migration_ready=request.zk_migration_ready,
            end_points=[
                RegisterControllerRecord.ControllerEndpoint(
                    name=listener.name,
                    host=listener.host,
                    port=listener.port,
                    security_protocol=listener.security_protocol,
                )
                for listener in request.listeners
            ],
            features=[
                RegisterControllerRecord.ControllerFeature(
                    name=feature.name,
                    min_supported_version=feature.min_supported_version,
                    max_supported_version=feature.max_supported_version,
                )
                for feature in request.features
            ],
        )
    ]


# -- fencing ---------------------------------------------------------------------------------


def fence_broker_records(
    image: MetadataImage,
    broker_id: int,
    mv: MetadataVersion,
    *,
    unclean_election: UncleanElection,
    min_isr: MinIsr = None,
) -> list[Message]:
    """Take the broker out of every ISR and leadership, then fence it."""
    registration = image.brokers[broker_id]
    records = leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_isr(broker_id),
        metadata_version=mv,
        unclean_election=unclean_election,
        broker_to_remove=broker_id,
        min_isr=min_isr,
    )
    if mv.supports_broker_registration_change_record:
        records.append(
            BrokerRegistrationChangeRecord(
                broker_id=broker_id, broker_epoch=registration.epoch, fenced=_FENCE
            )
        )
    else:
        records.append(FenceBrokerRecord(id=broker_id, epoch=registration.epoch))
    return records


def unfence_broker_records(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    mv: MetadataVersion,
    *,
    unclean_election: UncleanElection,
    min_isr: MinIsr = None,
) -> list[Message]:
    """Unfence the broker, then let it lead partitions that have no leader."""
    records: list[Message]
    if mv.supports_broker_registration_change_record:
        records = [
            BrokerRegistrationChangeRecord(
                broker_id=broker_id, broker_epoch=broker_epoch, fenced=_UNFENCE
            )
        ]
    else:
        records = [UnfenceBrokerRecord(id=broker_id, epoch=broker_epoch)]
    records += leader_and_isr_updates(
        image,
        image.partitions_without_leader(),
        metadata_version=mv,
        unclean_election=unclean_election,
        broker_to_add=broker_id,
        min_isr=min_isr,
    )
    return records


def controlled_shutdown_records(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    mv: MetadataVersion,
    *,
    unclean_election: UncleanElection,
    min_isr: MinIsr = None,
) -> list[Message]:
    """Mark the broker as shutting down and move its leaderships and ISR places away."""
    records: list[Message] = []
    if (
        mv.supports_in_controlled_shutdown_state
        and not image.brokers[broker_id].in_controlled_shutdown
    ):
        records.append(
            BrokerRegistrationChangeRecord(
                broker_id=broker_id,
                broker_epoch=broker_epoch,
                in_controlled_shutdown=_IN_CONTROLLED_SHUTDOWN,
            )
        )
    records += leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_isr(broker_id),
        metadata_version=mv,
        unclean_election=unclean_election,
        broker_to_remove=broker_id,
        min_isr=min_isr,
    )
    return records


def offline_dirs_records(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    offline: list[UUID],
    mv: MetadataVersion,
    *,
    unclean_election: UncleanElection,
    min_isr: MinIsr = None,
) -> list[Message]:
    """Handle log dirs a broker reports offline: move partitions off them and record the
    directories that remain."""
    registration = image.brokers[broker_id]
    newly_offline = [d for d in registration.directories if d in set(offline)]
    if not newly_offline:
        return []
    affected = [
        (topic.topic_id, partition_id)
        for topic, partition_id, partition in image.iter_partitions()
        if broker_id in partition.replicas and partition.directory(broker_id) in newly_offline
    ]
    records = leader_and_isr_updates(
        image,
        affected,
        metadata_version=mv,
        unclean_election=unclean_election,
        broker_to_remove=broker_id,
        min_isr=min_isr,
    )
    remaining = [d for d in registration.directories if d not in set(offline)]
    records.append(
        BrokerRegistrationChangeRecord(
            broker_id=broker_id, broker_epoch=broker_epoch, log_dirs=remaining
        )
    )
    return records


# -- heartbeats ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatOutcome:
    records: list[Message]
    is_caught_up: bool
    next_state: BrokerControlState


def process_heartbeat(
    image: MetadataImage,
    tracker: BrokerHeartbeatTracker,
    request: BrokerHeartbeatRequest,
    mv: MetadataVersion,
    *,
    unclean_election: UncleanElection,
    min_isr: MinIsr = None,
) -> HeartbeatOutcome:
    broker_id = request.broker_id
    register_offset = image.register_broker_offsets.get(broker_id)
    if register_offset is None:
        raise ApiError(
            ErrorCode.STALE_BROKER_EPOCH,
            f"Receive a heartbeat from broker {broker_id} before registration",
        )
    check_broker_epoch(image, broker_id, request.broker_epoch)
    intent = HeartbeatIntent(
        want_fence=request.want_fence,
        want_shut_down=request.want_shut_down,
        current_metadata_offset=request.current_metadata_offset,
    )
    current, next_state = tracker.next_state(
        broker_id, intent, register_offset, lambda: image.has_leaderships(broker_id)
    )
    records: list[Message] = []
    if current is not next_state:
        if next_state in (BrokerControlState.FENCED, BrokerControlState.SHUTDOWN_NOW):
            records += fence_broker_records(
                image, broker_id, mv, unclean_election=unclean_election, min_isr=min_isr
            )
        elif next_state is BrokerControlState.UNFENCED:
            records += unfence_broker_records(
                image,
                broker_id,
                request.broker_epoch,
                mv,
                unclean_election=unclean_election,
                min_isr=min_isr,
            )
        elif next_state is BrokerControlState.CONTROLLED_SHUTDOWN:
            records += controlled_shutdown_records(
                image,
                broker_id,
                request.broker_epoch,
                mv,
                unclean_election=unclean_election,
                min_isr=min_isr,
            )
    tracker.touch(broker_id, next_state.fenced, request.current_metadata_offset)
    if mv.supports_directory_assignment and request.offline_log_dirs:
        records += offline_dirs_records(
            image,
            broker_id,
            request.broker_epoch,
            request.offline_log_dirs,
            mv,
            unclean_election=unclean_election,
            min_isr=min_isr,
        )
    if cordoned_log_dirs_supported(int(mv)):
        records += cordoned_dirs_records(
            image, broker_id, request.broker_epoch, request.cordoned_log_dirs
        )
    return HeartbeatOutcome(
        records=records,
        is_caught_up=request.current_metadata_offset >= register_offset,
        next_state=next_state,
    )
