"""The metadata state the controller rebuilds by replaying ``__cluster_metadata``.

``MetadataImage.replay`` accepts every metadata record type of Kafka 3.9 and applies it
exactly as Kafka's controller managers do (ClusterControlManager, ReplicationControlManager,
ConfigurationControlManager, FeatureControlManager, ...). It is plain data: no clocks, no
sessions; the active controller's soft state (heartbeats) lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from uuid import UUID

from kwire.controller.image_order import MapOrder, publish
from kwire.controller.java_order import timeline_capacity_after_put
from kwire.controller.registrations import (  # noqa: F401  (re-exported)
    DIR_LOST,
    DIR_MIGRATING,
    DIR_UNASSIGNED,
    MIN_TABLE_CAPACITY,
    NO_LEADER,
    NO_LEADER_CHANGE,
    BrokerRegistration,
    ClientQuotaEntity,
    ConfigResourceType,
    ControllerRegistration,
    Endpoint,
    LeaderRecoveryState,
    PartitionRegistration,
    ReplayError,
    TopicInfo,
    ZkMigrationState,
    is_reserved_directory,
    timeline_hash_slot,
)
from kwire.controller.transactions import begin_while_open, no_open_transaction
from kwire.controller.undo import UndoLog
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord as _AbortTransactionRecord,
)
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.clear_elr_record import ClearElrRecord
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.producer_ids_record import ProducerIdsRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.protocol.messages.metadata_records.remove_access_control_entry_record import (
    RemoveAccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.remove_delegation_token_record import (
    RemoveDelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.metadata_records.remove_user_scram_credential_record import (
    RemoveUserScramCredentialRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.protocol.messages.metadata_records.unfence_broker_record import UnfenceBrokerRecord
from kwire.protocol.messages.metadata_records.unregister_broker_record import (
    UnregisterBrokerRecord,
)
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)
from kwire.protocol.messages.metadata_records.zk_migration_state_record import (
    ZkMigrationStateRecord,
)


@dataclass(slots=True)
class MetadataImage:
    """Everything the metadata log says, as of ``last_applied_offset``."""

    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    register_broker_offsets: dict[int, int] = field(default_factory=dict)
    directory_owners: dict[UUID, int] = field(default_factory=dict)
    controllers: dict[int, ControllerRegistration] = field(default_factory=dict)
    topics: dict[UUID, TopicInfo] = field(default_factory=dict)
    topic_ids_by_name: dict[str, UUID] = field(default_factory=dict)
    # Topics whose names hold '.' or '_', by the name with every '.' made '_' (Kafka's
    # ReplicationControlManager.topicsWithCollisionChars), each set in creation order:
    # CreateTopics checks a new name against it in O(1) however many topics exist.
    topics_by_collision_key: dict[str, dict[str, None]] = field(default_factory=dict)
    # How many partitions have a leader other than their preferred replica (Kafka's
    # ReplicationControlManager.imbalancedPartitions, counted): whether a leader rebalance
    # is needed is known after every write without a scan of every partition.
    imbalanced_count: int = 0
    configs: dict[tuple[ConfigResourceType, str], dict[str, str]] = field(default_factory=dict)
    finalized_features: dict[str, int] = field(default_factory=dict)
    zk_migration_state: ZkMigrationState = ZkMigrationState.UNINITIALIZED
    next_producer_id: int = 0
    last_producer_ids_broker: tuple[int, int] | None = None
    client_quotas: dict[ClientQuotaEntity, dict[str, float]] = field(default_factory=dict)
    acls: dict[UUID, AccessControlEntryRecord] = field(default_factory=dict)
    # The capacity of Kafka's TimelineHashMap of ACLs by id, whose order DeleteAcls follows
    # (see kwire.controller.acls); it only grows.
    acl_table_capacity: int = 2
    scram_credentials: dict[tuple[str, int], UserScramCredentialRecord] = field(
        default_factory=dict
    )
    delegation_tokens: dict[str, DelegationTokenRecord] = field(default_factory=dict)
    # Offset of an open BeginTransactionRecord, -1 when no metadata transaction is open.
    transaction_start_offset: int = -1
    last_applied_offset: int = -1
    # (epoch, finalized features) after each committed change of features, oldest first.
    # The epoch is the offset that made the change visible: the FeatureLevelRecord's own,
    # or the end of the metadata transaction holding it (as Kafka reports it).
    feature_history: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    _features_pending: bool = False
    # broker -> topic id -> partition ids whose ISR holds the broker, in the order they
    # joined (Kafka's BrokersToIsrs); partitions without a leader sit under NO_LEADER.
    isr_members: dict[int, dict[UUID, list[int]]] = field(default_factory=dict)
    # broker -> capacity of the hash table Kafka keeps that broker's topics in (a
    # TimelineHashMap, whose iteration order, and so the order of the records written
    # when the broker is fenced, depends on it): it doubles as topics join and starts
    # again from 2 once the broker is in no ISR.
    isr_table_capacity: dict[int, int] = field(default_factory=dict)
    # The same two for eligible leader replicas (Kafka's BrokersToElrs).
    elr_members: dict[int, dict[UUID, list[int]]] = field(default_factory=dict)
    elr_table_capacity: dict[int, int] = field(default_factory=dict)
    # Called with (broker id, fenced) whenever a registration is (re)established or its
    # fencing may have changed, so the heartbeat tracker stays in step (Kafka's replay
    # calls heartbeatManager.register the same way).
    on_broker_registered: Callable[[int, bool], None] | None = None
    on_broker_removed: Callable[[int], None] | None = None
    # The iteration order of each map of Kafka's published image (map id -> keys), which
    # a snapshot follows, and the keys changed by the open metadata transaction (see
    # kwire.controller.image_order).
    kafka_orders: dict[Any, MapOrder] = field(default_factory=dict)
    delta_touches: dict[Any, dict[Any, None]] = field(default_factory=dict)
    # mechanism -> how many SCRAM credentials use it (Kafka keeps one map per mechanism).
    scram_mechanisms: dict[int, int] = field(default_factory=dict)
    # How to take back the changes of uncommitted records (see kwire.controller.undo):
    # every change below goes through it.
    undo: UndoLog = field(default_factory=UndoLog)

    # -- dispatch ------------------------------------------------------------------------

    def replay(self, record: Message, version: int, offset: int) -> None:
        """Apply one record read from (or about to be written to) the log at ``offset``.
        While ``undo.recording`` is set, the change can be taken back with
        ``undo.revert_to``; a record that raises ReplayError may leave part of its change
        applied (the log is inconsistent then)."""
        handler = _HANDLERS.get(type(record))
        if handler is None:
            raise ReplayError(f"not a metadata record: {type(record).__name__}")
        self.undo.offset = offset
        touched = self._touches(record)
        handler(self, record, offset)
        for map_id, key in touched:
            keys = self.delta_touches.get(map_id)
            if keys is None:
                keys = {}
                self.undo.set_item(self.delta_touches, map_id, keys)
            if key is not None and key not in keys:
                self.undo.set_item(keys, key, None)
        if self.transaction_start_offset < 0 and self.delta_touches:
            self._publish_delta(aborted=isinstance(record, _AbortTransactionRecord))
        if offset > self.last_applied_offset:
            self.undo.set_attr(self, "last_applied_offset", offset)

    # -- the order of Kafka's published image ----------------------------------------------

    def _touches(self, record: Message) -> list[tuple[Any, Any]]:
        """(map id, key) pairs ``record`` changes in Kafka's image; a None key rebuilds the
        map without a change (Kafka rebuilds every map of a part its delta touches)."""
        match record:
            case RegisterBrokerRecord() | UnregisterBrokerRecord():
                return [("brokers", record.broker_id), ("controllers", None)]
            case BrokerRegistrationChangeRecord():
                return [("brokers", record.broker_id), ("controllers", None)]
            case FenceBrokerRecord() | UnfenceBrokerRecord():
                return [("brokers", record.id), ("controllers", None)]
            case RegisterControllerRecord():
                return [("brokers", None), ("controllers", record.controller_id)]
            case FeatureLevelRecord():
                name = None if record.name == "metadata.version" else record.name
                return [("features", name)]
            case ConfigRecord():
                resource = (ConfigResourceType(record.resource_type), record.resource_name)
                return [(("config", resource), record.name)]
            case ClientQuotaRecord():
                entity = tuple(sorted((e.entity_type, e.entity_name) for e in record.entity))
                return [("quota_entities", entity), (("quota", entity), record.key)]
            case AccessControlEntryRecord() | RemoveAccessControlEntryRecord():
                return [("acls", record.id)]
            case UserScramCredentialRecord() | RemoveUserScramCredentialRecord():
                mechanisms = set(self.scram_mechanisms) | {record.mechanism}
                return [(("scram", m), None) for m in sorted(mechanisms)] + [
                    (("scram", record.mechanism), record.name)
                ]
            case DelegationTokenRecord() | RemoveDelegationTokenRecord():
                return [("tokens", record.token_id)]
        return []

    def kafka_map_keys(self, map_id: Any) -> set[Any]:
        """The keys the map ``map_id`` of Kafka's image holds now."""
        match map_id:
            case "brokers":
                return set(self.brokers)
            case "controllers":
                return set(self.controllers)
            case "features":
                return set(self.finalized_features) - {"metadata.version"}
            case "quota_entities":
                return set(self.client_quotas)
            case "acls":
                return set(self.acls)
            case "tokens":
                return set(self.delegation_tokens)
            case ("config", resource):
                return set(self.configs.get(resource, {}))
            case ("quota", entity):
                return set(self.client_quotas.get(entity, {}))
            case ("scram", mechanism):
                return {name for name, m in self.scram_credentials if m == mechanism}
        raise KeyError(map_id)

    def kafka_map_has(self, map_id: Any, key: Any) -> bool:
        """Whether the map ``map_id`` of Kafka's image holds ``key`` now; O(1)."""
        match map_id:
            case "brokers":
                return key in self.brokers
            case "controllers":
                return key in self.controllers
            case "features":
                return key != "metadata.version" and key in self.finalized_features
            case "quota_entities":
                return key in self.client_quotas
            case "acls":
                return key in self.acls
            case "tokens":
                return key in self.delegation_tokens
            case ("config", resource):
                return key in self.configs.get(resource, {})
            case ("quota", entity):
                return key in self.client_quotas.get(entity, {})
            case ("scram", mechanism):
                return (key, mechanism) in self.scram_credentials
        raise KeyError(map_id)

    def _publish_delta(self, *, aborted: bool) -> None:
        # MetadataBatchLoader publishes an empty delta for an aborted transaction.
        for map_id, keys in list(self.delta_touches.items()):
            self.undo.pop_item(self.delta_touches, map_id)
            if aborted:
                continue
            publish(self.kafka_orders, map_id, keys, partial(self.kafka_map_has, map_id), self.undo)

    def kafka_order(self, map_id: Any) -> list[Any]:
        """The keys of ``map_id`` in the order Kafka's published image iterates them (keys
        of an open transaction, not yet published, last); O(n log n)."""
        present = self.kafka_map_keys(map_id)
        state = self.kafka_orders.get(map_id)
        order = [k for k in state.order() if k in present] if state is not None else []
        return order + sorted(present - set(order), key=repr)

    # -- read helpers --------------------------------------------------------------------

    @property
    def metadata_version_level(self) -> int:
        return self.finalized_features.get("metadata.version", 0)

    def topic_by_name(self, name: str) -> TopicInfo | None:
        topic_id = self.topic_ids_by_name.get(name)
        return None if topic_id is None else self.topics.get(topic_id)

    def colliding_topic(self, name: str) -> str | None:
        """The oldest existing topic other than ``name`` whose name equals ``name`` once
        every '.' is made '_' (Kafka: "collides with existing topic"), or None; O(1)."""
        names = self.topics_by_collision_key.get(collision_key(name))
        if not names:
            return None
        first = next(iter(names))
        return first if first != name else None

    def is_active(self, broker_id: int) -> bool:
        registration = self.brokers.get(broker_id)
        return registration is not None and registration.active

    def partitions_with_broker_in_isr(self, broker_id: int) -> list[tuple[UUID, int]]:
        """The partitions whose ISR holds ``broker_id``, in the order Kafka's BrokersToIsrs
        yields them: topics in its hash table's slot order (ties newest first), each
        topic's partitions in the order they joined."""
        return _members_in_order(self.isr_members, self.isr_table_capacity, broker_id)

    def partitions_with_broker_in_elr(self, broker_id: int) -> list[tuple[UUID, int]]:
        """The partitions whose ELR holds ``broker_id``, in Kafka's BrokersToElrs order
        (as for :meth:`partitions_with_broker_in_isr`)."""
        return _members_in_order(self.elr_members, self.elr_table_capacity, broker_id)

    def partitions_without_leader(self) -> list[tuple[UUID, int]]:
        return self.partitions_with_broker_in_isr(NO_LEADER)

    def has_leaderships(self, broker_id: int) -> bool:
        for topic_id, partitions in self.isr_members.get(broker_id, {}).items():
            topic = self.topics[topic_id]
            if any(topic.partitions[p].leader == broker_id for p in partitions):
                return True
        return False

    def topic_config(self, topic: str) -> dict[str, str]:
        return self.configs.get((ConfigResourceType.TOPIC, topic), {})

    # -- brokers and controllers ----------------------------------------------------------

    def _register_broker(self, record: RegisterBrokerRecord, offset: int) -> None:
        previous = self.brokers.get(record.broker_id)
        self.undo.set_item(self.register_broker_offsets, record.broker_id, offset)
        registration = BrokerRegistration(
            broker_id=record.broker_id,
            epoch=record.broker_epoch,
            incarnation_id=record.incarnation_id,
            listeners=tuple(
                Endpoint(
                    name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol
                )
                for e in record.end_points
            ),
            supported_features={
                f.name: (f.min_supported_version, f.max_supported_version) for f in record.features
            },
            rack=record.rack,
            fenced=record.fenced,
            in_controlled_shutdown=record.in_controlled_shutdown,
            is_migrating_zk_broker=record.is_migrating_zk_broker,
            directories=tuple(record.log_dirs),
            cordoned_directories=_cordoned(record.cordoned_log_dirs),
        )
        self.undo.set_item(self.brokers, record.broker_id, registration)
        self._move_directories(
            record.broker_id, previous.directories if previous else (), registration.directories
        )
        if previous is not None and self.on_broker_removed is not None:
            self.on_broker_removed(record.broker_id)
        if self.on_broker_registered is not None:
            self.on_broker_registered(record.broker_id, record.fenced)

    def _unregister_broker(self, record: UnregisterBrokerRecord, offset: int) -> None:
        registration = self._registration_with_epoch(record, record.broker_id, record.broker_epoch)
        self.undo.pop_item(self.register_broker_offsets, record.broker_id)
        self._move_directories(record.broker_id, registration.directories, ())
        self.undo.pop_item(self.brokers, record.broker_id)
        if self.on_broker_removed is not None:
            self.on_broker_removed(record.broker_id)

    def _registration_with_epoch(self, record: Message, broker_id: int, epoch: int) -> Any:
        registration = self.brokers.get(broker_id)
        if registration is None:
            raise ReplayError(f"{type(record).__name__}: no registration for broker {broker_id}")
        if registration.epoch != epoch:
            raise ReplayError(
                f"{type(record).__name__}: broker {broker_id} has epoch {registration.epoch}, "
                f"not {epoch}"
            )
        return registration

    def _change_registration(
        self,
        record: Message,
        broker_id: int,
        epoch: int,
        *,
        fenced: bool | None = None,
        in_controlled_shutdown: bool | None = None,
        directories: tuple[UUID, ...] | None = None,
        cordoned_directories: tuple[UUID, ...] | None = None,
    ) -> None:
        current: BrokerRegistration = self._registration_with_epoch(record, broker_id, epoch)
        changes: dict[str, Any] = {}
        if fenced is not None:
            changes["fenced"] = fenced
        if in_controlled_shutdown is not None:
            changes["in_controlled_shutdown"] = in_controlled_shutdown
        if directories is not None:
            changes["directories"] = directories
        if cordoned_directories is not None:
            changes["cordoned_directories"] = cordoned_directories
        updated = replace(current, **changes)
        self.undo.set_item(self.brokers, broker_id, updated)
        self._move_directories(broker_id, current.directories, updated.directories)
        if self.on_broker_registered is not None:
            self.on_broker_registered(broker_id, updated.fenced)

    def _fence(self, record: FenceBrokerRecord, offset: int) -> None:
        self._change_registration(record, record.id, record.epoch, fenced=True)

    def _unfence(self, record: UnfenceBrokerRecord, offset: int) -> None:
        self._change_registration(record, record.id, record.epoch, fenced=False)

    def _registration_change(self, record: BrokerRegistrationChangeRecord, offset: int) -> None:
        # fenced / inControlledShutdown: 0 = no change, 1 = set, -1 = clear.
        fencing = {0: None, 1: True, -1: False}
        shutdown = {0: None, 1: True}
        if record.fenced not in fencing or record.in_controlled_shutdown not in shutdown:
            raise ReplayError(f"unknown change values in {record}")
        self._change_registration(
            record,
            record.broker_id,
            record.broker_epoch,
            fenced=fencing[record.fenced],
            in_controlled_shutdown=shutdown[record.in_controlled_shutdown],
            directories=tuple(record.log_dirs) if record.log_dirs else None,
            # null: no change; a list (even empty) replaces the cordoned set.
            cordoned_directories=_cordoned(record.cordoned_log_dirs),
        )

    def _move_directories(
        self, broker_id: int, removed: tuple[UUID, ...], added: tuple[UUID, ...]
    ) -> None:
        for directory in removed:
            if self.directory_owners.get(directory) == broker_id:
                self.undo.pop_item(self.directory_owners, directory)
        for directory in added:
            self.undo.set_item(self.directory_owners, directory, broker_id)

    def _register_controller(self, record: RegisterControllerRecord, offset: int) -> None:
        registration = ControllerRegistration(
            controller_id=record.controller_id,
            incarnation_id=record.incarnation_id,
            zk_migration_ready=record.zk_migration_ready,
            listeners=tuple(
                Endpoint(
                    name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol
                )
                for e in record.end_points
            ),
            supported_features={
                f.name: (f.min_supported_version, f.max_supported_version) for f in record.features
            },
        )
        self.undo.set_item(self.controllers, record.controller_id, registration)

    # -- topics and partitions ------------------------------------------------------------

    def _topic(self, record: TopicRecord, offset: int) -> None:
        self.undo.set_item(self.topic_ids_by_name, record.name, record.topic_id)
        if "." in record.name or "_" in record.name:
            key = collision_key(record.name)
            names = self.topics_by_collision_key.get(key)
            if names is None:
                names = {}
                self.undo.set_item(self.topics_by_collision_key, key, names)
            self.undo.set_item(names, record.name, None)
        self.undo.set_item(
            self.topics, record.topic_id, TopicInfo(name=record.name, topic_id=record.topic_id)
        )

    def _partition(self, record: PartitionRecord, offset: int) -> None:
        topic = self.topics.get(record.topic_id)
        if topic is None:
            raise ReplayError(f"PartitionRecord for unknown topic id {record.topic_id}")
        previous = topic.partitions.get(record.partition_id)
        updated = PartitionRegistration.from_record(record)
        self.undo.set_item(topic.partitions, record.partition_id, updated)
        self._update_isr_members(record.topic_id, record.partition_id, previous, updated)
        self._count_imbalance(previous, updated)

    def _partition_change(self, record: PartitionChangeRecord, offset: int) -> None:
        topic = self.topics.get(record.topic_id)
        previous = None if topic is None else topic.partitions.get(record.partition_id)
        if topic is None or previous is None:
            raise ReplayError(
                f"PartitionChangeRecord for unknown partition {record.topic_id}:{record.partition_id}"
            )
        updated = previous.merge(record)
        self.undo.set_item(topic.partitions, record.partition_id, updated)
        self._update_isr_members(record.topic_id, record.partition_id, previous, updated)
        self._count_imbalance(previous, updated)

    def _remove_topic(self, record: RemoveTopicRecord, offset: int) -> None:
        topic = self.undo.pop_item(self.topics, record.topic_id)
        if topic is None:
            raise ReplayError(f"RemoveTopicRecord for unknown topic id {record.topic_id}")
        self.undo.pop_item(self.topic_ids_by_name, topic.name)
        if "." in topic.name or "_" in topic.name:
            key = collision_key(topic.name)
            names = self.topics_by_collision_key.get(key)
            if names is not None and topic.name in names:
                # A new set without the name (a handful of names): taking the removal back
                # restores the old set itself, so its names keep their creation order.
                rest = {name: None for name in names if name != topic.name}
                if rest:
                    self.undo.set_item(self.topics_by_collision_key, key, rest)
                else:
                    self.undo.pop_item(self.topics_by_collision_key, key)
        self._unindex_topic(record.topic_id, topic)
        # Kafka drops the topic's dynamic configs together with the topic.
        self.undo.pop_item(self.configs, (ConfigResourceType.TOPIC, topic.name))

    def _unindex_topic(self, topic_id: UUID, topic: TopicInfo) -> None:
        """Take a removed topic out of the ISR and ELR indexes, one entry per broker (what
        removing its partitions one at a time leaves), and out of the imbalance count."""
        isr_brokers: set[int] = set()
        elr_brokers: set[int] = set()
        imbalanced = 0
        for partition in topic.partitions.values():
            isr_brokers.update(partition.isr)
            if partition.leader == NO_LEADER:
                isr_brokers.add(NO_LEADER)
            if partition.elr:
                elr_brokers.update(partition.elr)
            if leader_is_not_preferred(partition):
                imbalanced += 1
        undo = self.undo
        for index, capacities, brokers in (
            (self.isr_members, self.isr_table_capacity, isr_brokers),
            (self.elr_members, self.elr_table_capacity, elr_brokers),
        ):
            for broker in sorted(brokers):
                by_topic = index.get(broker)
                if by_topic is None or undo.pop_item(by_topic, topic_id) is None:
                    continue
                if not by_topic:
                    undo.pop_item(capacities, broker)
        if imbalanced:
            undo.set_attr(self, "imbalanced_count", self.imbalanced_count - imbalanced)

    def _count_imbalance(
        self, previous: PartitionRegistration | None, updated: PartitionRegistration | None
    ) -> None:
        change = (updated is not None and leader_is_not_preferred(updated)) - (
            previous is not None and leader_is_not_preferred(previous)
        )
        if change:
            self.undo.set_attr(self, "imbalanced_count", self.imbalanced_count + change)

    def _update_isr_members(
        self,
        topic_id: UUID,
        partition_id: int,
        previous: PartitionRegistration | None,
        updated: PartitionRegistration | None,
    ) -> None:
        def members(p: PartitionRegistration | None) -> set[int]:
            if p is None:
                return set()
            # A leaderless partition is also indexed under NO_LEADER.
            return set(p.isr) | ({NO_LEADER} if p.leader == NO_LEADER else set())

        def elr(p: PartitionRegistration | None) -> set[int]:
            return set() if p is None else set(p.elr)

        before, after = members(previous), members(updated)
        if before != after:
            self._update_index(
                self.isr_members, self.isr_table_capacity, topic_id, partition_id,
                before, after,
            )  # fmt: skip
        if (previous is not None and previous.elr) or (updated is not None and updated.elr):
            self._update_index(
                self.elr_members, self.elr_table_capacity, topic_id, partition_id,
                elr(previous), elr(updated),
            )  # fmt: skip

    def _update_index(
        self,
        index: dict[int, dict[UUID, list[int]]],
        capacities: dict[int, int],
        topic_id: UUID,
        partition_id: int,
        before: set[int],
        after: set[int],
    ) -> None:
        undo = self.undo
        for broker in sorted(before - after):
            by_topic = index.get(broker, {})
            partitions = by_topic.get(topic_id, [])
            if partition_id in partitions:
                undo.list_remove(partitions, partition_id)
            if not partitions:
                undo.pop_item(by_topic, topic_id)
                if not by_topic:
                    undo.pop_item(capacities, broker)
        for broker in sorted(after - before):
            topics_of_broker = index.get(broker)
            if topics_of_broker is None:
                topics_of_broker = {}
                undo.set_item(index, broker, topics_of_broker)
            members_of_topic = topics_of_broker.get(topic_id)
            if members_of_topic is None:
                capacity = capacities.get(broker, MIN_TABLE_CAPACITY)
                # BaseHashTable doubles before an add that would pass a 0.75 load.
                if (len(topics_of_broker) + 1) * 0.75 > capacity:
                    capacity *= 2
                if capacities.get(broker) != capacity:
                    undo.set_item(capacities, broker, capacity)
                members_of_topic = []
                undo.set_item(topics_of_broker, topic_id, members_of_topic)
            undo.list_append(members_of_topic, partition_id)

    def _clear_elr(self, record: ClearElrRecord, offset: int) -> None:
        # ReplicationControlManager.replay(ClearElrRecord): every partition of the named
        # topic (of every topic when the name is empty) that has an ELR or LastKnownElr
        # loses both, and its partition epoch moves on as for a PartitionChangeRecord.
        if record.topic_name:
            topic = self.topic_by_name(record.topic_name)
            if topic is None:
                raise ReplayError(
                    f"Unable to find a topic named {record.topic_name} in order to clear its ELRs."
                )
            topics = [topic]
        else:
            topics = list(self.topics.values())
        for topic in topics:
            for partition_id, partition in list(topic.partitions.items()):
                if partition.elr or partition.last_known_elr:
                    self._partition_change(
                        PartitionChangeRecord(
                            partition_id=partition_id,
                            topic_id=topic.topic_id,
                            eligible_leader_replicas=[],
                            last_known_elr=[],
                        ),
                        offset,
                    )

    # -- configs, features, producer ids --------------------------------------------------

    def _config(self, record: ConfigRecord, offset: int) -> None:
        key = (ConfigResourceType(record.resource_type), record.resource_name)
        self._set_in_group(self.configs, key, record.name, record.value)

    def _feature_level(self, record: FeatureLevelRecord, offset: int) -> None:
        # Level 0 means the feature is not finalized at all.
        if record.feature_level == 0 and record.name != "metadata.version":
            self.undo.pop_item(self.finalized_features, record.name)
        else:
            self.undo.set_item(self.finalized_features, record.name, record.feature_level)
        if self.transaction_start_offset >= 0:
            self.undo.set_attr(self, "_features_pending", True)
        else:
            self.undo.list_append(self.feature_history, (offset, dict(self.finalized_features)))

    def finalized_features_at(self, offset: int) -> tuple[int, dict[str, int]]:
        """(epoch, levels) of the finalized features as of ``offset`` ((-1, {}) before any)."""
        for epoch, levels in reversed(self.feature_history):
            if epoch <= offset:
                return epoch, dict(levels)
        return -1, {}

    def _zk_migration_state(self, record: ZkMigrationStateRecord, offset: int) -> None:
        self.undo.set_attr(self, "zk_migration_state", ZkMigrationState(record.zk_migration_state))

    def _producer_ids(self, record: ProducerIdsRecord, offset: int) -> None:
        if record.next_producer_id <= self.next_producer_id and self.last_producer_ids_broker:
            raise ReplayError(
                f"next producer id {record.next_producer_id} does not advance past "
                f"{self.next_producer_id}"
            )
        self.undo.set_attr(self, "next_producer_id", record.next_producer_id)
        self.undo.set_attr(
            self, "last_producer_ids_broker", (record.broker_id, record.broker_epoch)
        )

    # -- security and quotas --------------------------------------------------------------

    def _client_quota(self, record: ClientQuotaRecord, offset: int) -> None:
        entity: ClientQuotaEntity = tuple(
            sorted((e.entity_type, e.entity_name) for e in record.entity)
        )
        self._set_in_group(
            self.client_quotas, entity, record.key, None if record.remove else record.value
        )

    def _acl(self, record: AccessControlEntryRecord, offset: int) -> None:
        # Kafka's table grows before a put that would pass 3/4 full (a function of the
        # log, as for a controller that replayed it; kwire does not model the extra put
        # of Kafka's active controller while creating, which can grow it one put early).
        capacity = timeline_capacity_after_put(len(self.acls), self.acl_table_capacity)
        if capacity != self.acl_table_capacity:
            self.undo.set_attr(self, "acl_table_capacity", capacity)
        self.undo.set_item(self.acls, record.id, record)

    def _remove_acl(self, record: RemoveAccessControlEntryRecord, offset: int) -> None:
        if self.undo.pop_item(self.acls, record.id) is None:
            raise ReplayError(f"RemoveAccessControlEntryRecord for unknown ACL {record.id}")

    def _scram(self, record: UserScramCredentialRecord, offset: int) -> None:
        key = (record.name, record.mechanism)
        if key not in self.scram_credentials:
            count = self.scram_mechanisms.get(record.mechanism, 0)
            self.undo.set_item(self.scram_mechanisms, record.mechanism, count + 1)
        self.undo.set_item(self.scram_credentials, key, record)

    def _remove_scram(self, record: RemoveUserScramCredentialRecord, offset: int) -> None:
        if self.undo.pop_item(self.scram_credentials, (record.name, record.mechanism)) is None:
            return
        count = self.scram_mechanisms[record.mechanism]
        if count == 1:
            self.undo.pop_item(self.scram_mechanisms, record.mechanism)
        else:
            self.undo.set_item(self.scram_mechanisms, record.mechanism, count - 1)

    def _delegation_token(self, record: DelegationTokenRecord, offset: int) -> None:
        self.undo.set_item(self.delegation_tokens, record.token_id, record)

    def _remove_delegation_token(self, record: RemoveDelegationTokenRecord, offset: int) -> None:
        self.undo.pop_item(self.delegation_tokens, record.token_id)

    # -- markers --------------------------------------------------------------------------

    def _noop(self, record: Message, offset: int) -> None:
        pass

    # Metadata transactions (kwire.controller.transactions): applied as they come, as
    # Kafka's controller does; the undo log holds their changes until they end, and an
    # abort takes them back to the offset before the Begin (OffsetControlManager.replay).

    def _begin_transaction(self, record: BeginTransactionRecord, offset: int) -> None:
        if self.transaction_start_offset >= 0:
            raise ReplayError(begin_while_open(offset, self.transaction_start_offset))
        self.undo.hold(offset)
        self.undo.set_attr(self, "transaction_start_offset", offset)

    def _end_transaction(self, record: Message, offset: int) -> None:
        if self.transaction_start_offset < 0:
            raise ReplayError(no_open_transaction(record, offset))
        self.undo.set_attr(self, "transaction_start_offset", -1)
        self.undo.release()
        if self._features_pending:
            self.undo.set_attr(self, "_features_pending", False)
            self.undo.list_append(self.feature_history, (offset, dict(self.finalized_features)))

    def _abort_transaction(self, record: Message, offset: int) -> None:
        start = self.transaction_start_offset
        if start < 0:
            raise ReplayError(no_open_transaction(record, offset))
        # Everything since the Begin, the Begin's own changes included (the open
        # transaction, the undo log's hold, the keys touched for publication).
        self.undo.roll_back_to(start - 1)

    def _set_in_group(
        self, groups: dict[Any, dict[str, Any]], group: Any, name: str, value: Any
    ) -> None:
        """Set (or with None, remove) ``name`` in ``groups[group]``; an emptied group goes."""
        entries = groups.get(group)
        if entries is None:
            if value is None:
                return
            entries = {}
            self.undo.set_item(groups, group, entries)
        if value is None:
            self.undo.pop_item(entries, name)
        else:
            self.undo.set_item(entries, name, value)
        if not entries:
            self.undo.pop_item(groups, group)

    def iter_partitions(self) -> Iterator[tuple[TopicInfo, int, PartitionRegistration]]:
        for topic in self.topics.values():
            for partition_id, partition in topic.partitions.items():
                yield topic, partition_id, partition


def _handlers() -> dict[type, Callable[[MetadataImage, Any, int], None]]:
    from kwire.protocol.messages.metadata_records.abort_transaction_record import (
        AbortTransactionRecord,
    )
    from kwire.protocol.messages.metadata_records.end_transaction_record import (
        EndTransactionRecord,
    )
    from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord

    m = MetadataImage
    return {
        RegisterBrokerRecord: m._register_broker,
        UnregisterBrokerRecord: m._unregister_broker,
        TopicRecord: m._topic,
        PartitionRecord: m._partition,
        ConfigRecord: m._config,
        PartitionChangeRecord: m._partition_change,
        FenceBrokerRecord: m._fence,
        UnfenceBrokerRecord: m._unfence,
        RemoveTopicRecord: m._remove_topic,
        DelegationTokenRecord: m._delegation_token,
        UserScramCredentialRecord: m._scram,
        FeatureLevelRecord: m._feature_level,
        ClientQuotaRecord: m._client_quota,
        ProducerIdsRecord: m._producer_ids,
        BrokerRegistrationChangeRecord: m._registration_change,
        AccessControlEntryRecord: m._acl,
        RemoveAccessControlEntryRecord: m._remove_acl,
        NoOpRecord: m._noop,
        ZkMigrationStateRecord: m._zk_migration_state,
        RemoveUserScramCredentialRecord: m._remove_scram,
        BeginTransactionRecord: m._begin_transaction,
        EndTransactionRecord: m._end_transaction,
        AbortTransactionRecord: m._abort_transaction,
        RemoveDelegationTokenRecord: m._remove_delegation_token,
        RegisterControllerRecord: m._register_controller,
        ClearElrRecord: m._clear_elr,
    }


_HANDLERS = _handlers()


def leader_is_not_preferred(partition: PartitionRegistration) -> bool:
    """Whether the partition's leader is not its first replica (none counts as not)."""
    return not partition.replicas or partition.leader != partition.replicas[0]


def collision_key(name: str) -> str:
    """``name`` with every '.' made '_' (Kafka's Topic.unifyCollisionChars)."""
    return name.replace(".", "_")


def _cordoned(directories: list[UUID] | None) -> tuple[UUID, ...] | None:
    return None if directories is None else tuple(directories)


def _members_in_order(
    index: dict[int, dict[UUID, list[int]]], capacities: dict[int, int], broker_id: int
) -> list[tuple[UUID, int]]:
    by_topic = index.get(broker_id, {})
    capacity = capacities.get(broker_id, MIN_TABLE_CAPACITY)
    # Slots in order; Kafka's iterator walks each slot's chain from its end, so topics
    # sharing a slot come newest first (SnapshottableHashTable.CurrentIterator).
    newest_first = list(reversed(list(by_topic)))
    return [
        (topic_id, partition_id)
        for topic_id in sorted(newest_first, key=lambda t: timeline_hash_slot(t, capacity))
        for partition_id in by_topic[topic_id]
    ]
