"""Metadata records in words an operator reads: what a record did, and why, where the log
shows why.

``record_sentence(record, prior, context)`` turns one record of ``__cluster_metadata``
into a sentence such as ``partition t3-0 leader 3 -> 4 (leader epoch 1), ISR shrank from
[3, 4, 2] to [4, 2]: broker 3 was fenced``. ``prior`` is the image just before the record
(without it the sentence says what the record holds, not what it changed); ``context`` is
what the record's batch did to brokers (``batch_context``), which is where the log keeps
the cause of a partition change: Kafka 3.9's and 4.3.1's controllers write a fencing, a
controlled shutdown or an unfencing in the same atomic batch as the partition changes it
causes (ReplicationControlManager.handleBrokerFenced, handleBrokerInControlledShutdown,
handleBrokerUnfenced). ``record_subjects`` says which brokers and topic a record concerns,
for timelines.

Rules (the causes, from what the records of Kafka 3.9 and 4.3.1 can show):
- A broker fenced while in controlled shutdown completed its shutdown; fenced otherwise,
  its session expired (Kafka logs "Fencing broker N because its session has timed out";
  a broker that asks to be fenced does so only before its first unfencing).
- A RegisterBrokerRecord for a registered id with another incarnation id is a restart.
- A partition change in a batch that fences, shuts down or unfences a broker is caused by
  it; so is one in the batch of a broker's new registration (Kafka's
  handleBrokerUncleanShutdown: the broker restarted without a controlled shutdown) or of
  a change of its log directories (handleDirectoriesOffline); a change of replicas or of adding/removing replicas is a reassignment; a change of
  the ISR alone came from the partition's leader (AlterPartition); a leader moved to the
  first replica with nothing else changed is a preferred leader election; a leader that
  was not in the ISR (leader recovery state RECOVERING) is an unclean election.
Pure: no clocks, no I/O; ``prior`` is only read.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from kwire.controller.image import MetadataImage
from kwire.controller.registrations import (
    NO_LEADER,
    ConfigResourceType,
    LeaderRecoveryState,
    PartitionRegistration,
)
from kwire.metadata_version import MetadataVersion
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord,
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
from kwire.protocol.messages.metadata_records.end_transaction_record import (
    EndTransactionRecord,
)
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
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

__all__ = [
    "BatchContext",
    "Subjects",
    "batch_context",
    "record_sentence",
    "record_subjects",
    "record_summary",
    "sensitive_config",
    "uuid_text",
]

SCRAM_MECHANISMS = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
ZK_MIGRATION_STATES = {0: "NONE", 1: "PRE_MIGRATION", 2: "MIGRATION", 3: "POST_MIGRATION"}
# Config names whose values a timeline does not print (passwords, JAAS texts, keys).
_SENSITIVE_PARTS = ("password", "jaas", "secret", ".key")


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What one atomic batch did to brokers: the ids fenced, put in controlled shutdown,
    unfenced, (re)registered, and whose log directories changed, by its records."""

    fenced: frozenset[int] = frozenset()
    shutting_down: frozenset[int] = frozenset()
    unfenced: frozenset[int] = frozenset()
    registered: frozenset[int] = frozenset()
    directories_changed: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Subjects:
    """Which brokers a record concerns (its own broker; for a new partition its replicas;
    for a partition change the brokers whose leadership, ISR, ELR or replica membership
    changed), and its topic name and partition, if any."""

    brokers: frozenset[int] = frozenset()
    topic: str | None = None
    partition: int | None = None


def batch_context(records: Iterable[Message]) -> BatchContext:
    """The broker changes that ``records`` (one batch) hold."""
    fenced: set[int] = set()
    shutting: set[int] = set()
    unfenced: set[int] = set()
    registered: set[int] = set()
    directories: set[int] = set()
    for record in records:
        match record:
            case BrokerRegistrationChangeRecord():
                if record.fenced == 1:
                    fenced.add(record.broker_id)
                elif record.fenced == -1:
                    unfenced.add(record.broker_id)
                if record.in_controlled_shutdown == 1:
                    shutting.add(record.broker_id)
                if record.log_dirs:
                    directories.add(record.broker_id)
            case FenceBrokerRecord():
                fenced.add(record.id)
            case UnfenceBrokerRecord():
                unfenced.add(record.id)
            case RegisterBrokerRecord():
                registered.add(record.broker_id)
    return BatchContext(
        frozenset(fenced),
        frozenset(shutting),
        frozenset(unfenced),
        frozenset(registered),
        frozenset(directories),
    )


def record_summary(record: Message) -> str:
    """The record's type and the fields it sets (those unlike the schema's defaults, ids
    and names left out), e.g. ``BrokerRegistrationChangeRecord fenced=1``."""
    parts = [type(record).__name__]
    for f in dataclasses.fields(record):
        if f.name in _SUMMARY_SKIPPED:
            continue
        value = getattr(record, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value == default or isinstance(value, bytes):
            continue
        if f.name == "value" and isinstance(record, ConfigRecord) and sensitive_config(record.name):
            value = "(hidden)"
        parts.append(f"{_camel(f.name)}={_value(value)}")
    return " ".join(parts)


def record_sentence(
    record: Message, prior: MetadataImage | None = None, context: BatchContext | None = None
) -> str:
    """One sentence for ``record``, its cause where ``context`` (its batch) or ``prior``
    shows it, followed by `` -- `` and ``record_summary``."""
    return f"{_words(record, prior, context or BatchContext())} -- {record_summary(record)}"


def record_subjects(record: Message, prior: MetadataImage | None = None) -> Subjects:
    """The brokers, topic and partition ``record`` concerns (names need ``prior``)."""
    match record:
        case RegisterBrokerRecord() | UnregisterBrokerRecord() | ProducerIdsRecord():
            return Subjects(frozenset({record.broker_id}))
        case BrokerRegistrationChangeRecord():
            return Subjects(frozenset({record.broker_id}))
        case FenceBrokerRecord() | UnfenceBrokerRecord():
            return Subjects(frozenset({record.id}))
        case TopicRecord():
            return Subjects(topic=record.name)
        case PartitionRecord():
            brokers = {*record.replicas, *record.isr, record.leader} - {NO_LEADER}
            old = _partition(prior, record.topic_id, record.partition_id)
            if old is not None:
                brokers |= _members(old)
            name = _topic_name(prior, record.topic_id)
            return Subjects(frozenset(brokers), name, record.partition_id)
        case PartitionChangeRecord():
            old = _partition(prior, record.topic_id, record.partition_id)
            name = _topic_name(prior, record.topic_id)
            if old is None:
                return Subjects(topic=name, partition=record.partition_id)
            return Subjects(_role_changes(old, old.merge(record)), name, record.partition_id)
        case RemoveTopicRecord():
            return Subjects(topic=_topic_name(prior, record.topic_id))
        case ConfigRecord():
            if record.resource_type == ConfigResourceType.TOPIC:
                return Subjects(topic=record.resource_name)
            if (
                record.resource_type
                in (
                    ConfigResourceType.BROKER,
                    ConfigResourceType.BROKER_LOGGER,
                )
                and record.resource_name.isdigit()
            ):
                return Subjects(frozenset({int(record.resource_name)}))
            return Subjects()
        case ClearElrRecord():
            return Subjects(topic=record.topic_name or None)
        case _:
            return Subjects()


# -- the sentences ------------------------------------------------------------------------


def _words(record: Message, prior: MetadataImage | None, context: BatchContext) -> str:
    match record:
        case RegisterBrokerRecord():
            return _register_broker(record, prior)
        case BrokerRegistrationChangeRecord():
            return _registration_change(record, prior)
        case FenceBrokerRecord():
            return f"broker {record.id} fenced: {_fence_cause(record.id, prior)}"
        case UnfenceBrokerRecord():
            return _unfenced(record.id)
        case UnregisterBrokerRecord():
            return (
                f"broker {record.broker_id} unregistered (broker epoch {record.broker_epoch}):"
                " removed by UnregisterBroker (kafka-cluster unregister)"
            )
        case RegisterControllerRecord():
            listeners = ", ".join(f"{e.name}://{e.host}:{e.port}" for e in record.end_points)
            return (
                f"controller {record.controller_id} registered"
                f" (incarnation {uuid_text(record.incarnation_id)}, listeners {listeners})"
            )
        case TopicRecord():
            return f"topic {record.name} created (topic id {uuid_text(record.topic_id)})"
        case PartitionRecord():
            return _partition_record(record, prior)
        case PartitionChangeRecord():
            return _partition_change(record, prior, context)
        case RemoveTopicRecord():
            return _remove_topic(record, prior)
        case ConfigRecord():
            return _config(record)
        case FeatureLevelRecord():
            return _feature(record)
        case ZkMigrationStateRecord():
            state = ZK_MIGRATION_STATES.get(record.zk_migration_state, "UNKNOWN")
            return f"ZooKeeper migration state {state}"
        case BeginTransactionRecord():
            return f"metadata transaction began ({record.name or 'unnamed'})"
        case EndTransactionRecord():
            return "metadata transaction ended: its records take effect together"
        case AbortTransactionRecord():
            reason = record.reason or "no reason given"
            if prior is not None and prior.transaction_start_offset >= 0:
                return (
                    f"metadata transaction aborted ({reason}): the records from offset"
                    f" {prior.transaction_start_offset} on take no effect"
                )
            return f"metadata transaction aborted ({reason})"
        case NoOpRecord():
            return "no-op (the active controller's periodic write)"
        case ProducerIdsRecord():
            return (
                f"producer ids below {record.next_producer_id} handed out"
                f" (last block to broker {record.broker_id}, broker epoch {record.broker_epoch})"
            )
        case ClientQuotaRecord():
            entity = ", ".join(
                f"{e.entity_type}={e.entity_name or '<default>'}" for e in record.entity
            )
            if record.remove:
                return f"client quota {record.key} of {entity} removed"
            return f"client quota {record.key} of {entity} set to {record.value:g}"
        case AccessControlEntryRecord():
            return (
                f"ACL {uuid_text(record.id)} added for {record.principal} on {record.resource_name}"
            )
        case RemoveAccessControlEntryRecord():
            return f"ACL {uuid_text(record.id)} removed"
        case UserScramCredentialRecord():
            mechanism = SCRAM_MECHANISMS.get(record.mechanism, str(record.mechanism))
            return f"SCRAM credential of user {record.name} ({mechanism}) set"
        case RemoveUserScramCredentialRecord():
            mechanism = SCRAM_MECHANISMS.get(record.mechanism, str(record.mechanism))
            return f"SCRAM credential of user {record.name} ({mechanism}) removed"
        case DelegationTokenRecord():
            return f"delegation token {record.token_id} of {record.owner} created or renewed"
        case RemoveDelegationTokenRecord():
            return f"delegation token {record.token_id} removed"
        case ClearElrRecord():
            which = f"topic {record.topic_name}" if record.topic_name else "every topic"
            return f"eligible leader replicas cleared for {which}"
        case _:
            return type(record).__name__


def _register_broker(record: RegisterBrokerRecord, prior: MetadataImage | None) -> str:
    b = record.broker_id
    listeners = ", ".join(f"{e.name}://{e.host}:{e.port}" for e in record.end_points)
    rack = f", rack {record.rack}" if record.rack else ""
    state = "fenced until it catches up" if record.fenced else "unfenced"
    old = None if prior is None else prior.brokers.get(b)
    details = f"broker epoch {record.broker_epoch}{rack}, listeners {listeners}; {state}"
    if old is None:
        return f"broker {b} registered (incarnation {uuid_text(record.incarnation_id)}, {details})"
    if old.incarnation_id != record.incarnation_id:
        return (
            f"broker {b} registered again: a new incarnation {uuid_text(record.incarnation_id)}"
            f" (the broker restarted; previous broker epoch {old.epoch}), {details}"
        )
    return f"broker {b} registered again with the same incarnation ({details})"


def _registration_change(
    record: BrokerRegistrationChangeRecord, prior: MetadataImage | None
) -> str:
    b = record.broker_id
    clauses: list[str] = []
    if record.fenced == 1:
        clauses.append(f"broker {b} fenced: {_fence_cause(b, prior)}")
    elif record.fenced == -1:
        clauses.append(_unfenced(b))
    if record.in_controlled_shutdown == 1:
        clauses.append(
            f"broker {b} began a controlled shutdown: its leaderships move to other"
            " replicas and it leaves every ISR"
        )
    if record.log_dirs:
        dirs = ", ".join(uuid_text(d) for d in record.log_dirs)
        clauses.append(f"broker {b} log directories now {dirs}")
    if record.cordoned_log_dirs is not None:
        dirs = ", ".join(uuid_text(d) for d in record.cordoned_log_dirs) or "none"
        clauses.append(f"broker {b} cordoned log directories now {dirs}")
    return "; ".join(clauses) or f"broker {b} registration changed"


def _fence_cause(broker: int, prior: MetadataImage | None) -> str:
    old = None if prior is None else prior.brokers.get(broker)
    if old is not None and old.in_controlled_shutdown:
        return "its controlled shutdown completed"
    if old is not None and old.fenced:
        return "it was already fenced"
    return "its session expired (no heartbeat within broker.session.timeout.ms)"


def _unfenced(broker: int) -> str:
    return f"broker {broker} unfenced: it caught up with the metadata log and may lead partitions"


def _partition_record(record: PartitionRecord, prior: MetadataImage | None) -> str:
    name = _partition_name(prior, record.topic_id, record.partition_id)
    leader = _leader(record.leader)
    text = (
        f"partition {name} created: replicas {_ids(record.replicas)}, leader {leader},"
        f" ISR {_ids(record.isr)}"
    )
    if _partition(prior, record.topic_id, record.partition_id) is not None:
        return text.replace(" created:", " replaced:", 1)
    return text


def _partition_change(
    record: PartitionChangeRecord, prior: MetadataImage | None, context: BatchContext
) -> str:
    name = _partition_name(prior, record.topic_id, record.partition_id)
    old = _partition(prior, record.topic_id, record.partition_id)
    if old is None:
        return f"partition {name} changed"
    new = old.merge(record)
    clauses: list[str] = []
    if new.leader != old.leader:
        clauses.append(
            f"leader {_leader(old.leader)} -> {_leader(new.leader)} (leader epoch {new.leader_epoch})"
        )
    if new.isr != old.isr:
        verb = _set_change(old.isr, new.isr)
        clauses.append(f"ISR {verb} from {_ids(old.isr)} to {_ids(new.isr)}")
    if new.replicas != old.replicas:
        clauses.append(f"replicas {_ids(old.replicas)} -> {_ids(new.replicas)}")
    if new.adding_replicas != old.adding_replicas:
        clauses.append(f"adding replicas {_ids(new.adding_replicas)}")
    if new.removing_replicas != old.removing_replicas:
        clauses.append(f"removing replicas {_ids(new.removing_replicas)}")
    if new.elr != old.elr:
        clauses.append(f"ELR {_ids(old.elr)} -> {_ids(new.elr)}")
    if new.last_known_elr != old.last_known_elr:
        clauses.append(f"last known ELR {_ids(old.last_known_elr)} -> {_ids(new.last_known_elr)}")
    if new.directories != old.directories and new.replicas == old.replicas:
        clauses.append("replica directories reassigned")
    if new.leader_recovery_state != old.leader_recovery_state:
        clauses.append(f"leader recovery state {new.leader_recovery_state.name}")
    what = ", ".join(clauses) or "partition epoch bumped"
    return f"partition {name} {what}{_change_cause(old, new, context)}"


def _change_cause(
    old: PartitionRegistration, new: PartitionRegistration, context: BatchContext
) -> str:
    unclean = new.leader_recovery_state == LeaderRecoveryState.RECOVERING or (
        new.leader not in (NO_LEADER, old.leader) and new.leader not in old.isr
    )
    cause = _broker_cause(old, new, context)
    if unclean:
        election = (
            f"unclean leader election (broker {new.leader} was not in the ISR; data may be lost)"
        )
        return f": {cause}; {election}" if cause else f": {election}"
    if cause:
        return f": {cause}"
    if (
        new.replicas != old.replicas
        or new.adding_replicas != old.adding_replicas
        or new.removing_replicas != old.removing_replicas
    ):
        if new.adding_replicas or new.removing_replicas:
            return ": reassignment in progress"
        if old.adding_replicas or old.removing_replicas:
            return ": reassignment completed"
        return ": reassignment"
    if new.isr != old.isr and new.leader == old.leader and old.leader != NO_LEADER:
        return f" (AlterPartition from broker {old.leader})"
    if new.leader != old.leader and new.replicas and new.leader == new.replicas[0]:
        return ": preferred leader election (kafka-leader-election or the automatic rebalance)"
    return ""


def _broker_cause(
    old: PartitionRegistration, new: PartitionRegistration, context: BatchContext
) -> str:
    members = _members(old)
    for broker in sorted(context.fenced & members):
        return f"broker {broker} was fenced"
    for broker in sorted(context.shutting_down & members):
        return f"broker {broker} is in controlled shutdown"
    for broker in sorted(context.registered & members):
        return f"broker {broker} registered again after an unclean shutdown"
    for broker in sorted(context.directories_changed & members):
        return f"a log directory of broker {broker} went offline"
    for broker in sorted(context.unfenced & {*new.replicas}):
        return f"broker {broker} was unfenced"
    return ""


def _remove_topic(record: RemoveTopicRecord, prior: MetadataImage | None) -> str:
    topic = None if prior is None else prior.topics.get(record.topic_id)
    if topic is None:
        return f"topic {uuid_text(record.topic_id)} deleted"
    return (
        f"topic {topic.name} deleted (topic id {uuid_text(record.topic_id)},"
        f" {len(topic.partitions)} partitions)"
    )


def _config(record: ConfigRecord) -> str:
    match record.resource_type:
        case ConfigResourceType.TOPIC:
            where = f"topic {record.resource_name}"
        case ConfigResourceType.BROKER:
            where = (
                f"broker {record.resource_name}"
                if record.resource_name
                else "every broker (default)"
            )
        case ConfigResourceType.BROKER_LOGGER:
            where = f"the loggers of broker {record.resource_name}"
        case ConfigResourceType.CLIENT_METRICS:
            where = f"client metrics {record.resource_name}"
        case ConfigResourceType.GROUP:
            where = f"group {record.resource_name}"
        case _:
            where = f"resource {record.resource_type}:{record.resource_name}"
    if record.value is None:
        return f"config {record.name} of {where} removed"
    value = "(a sensitive value)" if sensitive_config(record.name) else record.value
    return f"config {record.name} of {where} set to {value}"


def _feature(record: FeatureLevelRecord) -> str:
    if record.feature_level == 0:
        return f"feature {record.name} disabled (level 0)"
    text = f"feature {record.name} finalized at level {record.feature_level}"
    if record.name == "metadata.version":
        with contextlib.suppress(ValueError):
            text += f" ({MetadataVersion(record.feature_level).version})"
    return text


# -- helpers --------------------------------------------------------------------------------


_SUMMARY_SKIPPED = frozenset({"unknown_tagged_fields", "topic_id", "partition_id", "broker_id"})
_SUMMARY_SKIPPED |= {"directories", "end_points", "features", "log_dirs", "incarnation_id"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _value(value: Any) -> str:
    if isinstance(value, UUID):
        return uuid_text(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def uuid_text(value: UUID) -> str:
    """Kafka's text for a Uuid: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def _ids(ids: Sequence[int]) -> str:
    return "[" + ", ".join(str(i) for i in ids) + "]"


def _leader(leader: int) -> str:
    return "none" if leader == NO_LEADER else str(leader)


def _set_change(old: Sequence[int], new: Sequence[int]) -> str:
    if set(new) < set(old):
        return "shrank"
    if set(new) > set(old):
        return "expanded"
    return "changed"


def _role_changes(old: PartitionRegistration, new: PartitionRegistration) -> frozenset[int]:
    """The brokers whose part in a partition changed: leadership, ISR, ELR or replica
    membership (adding and removing included)."""
    changed = {old.leader, new.leader} - {NO_LEADER} if old.leader != new.leader else set()
    for before, after in (
        (old.isr, new.isr),
        (old.replicas, new.replicas),
        (old.adding_replicas, new.adding_replicas),
        (old.removing_replicas, new.removing_replicas),
        (old.elr, new.elr),
    ):
        changed |= set(before) ^ set(after)
    return frozenset(changed)


def _members(p: PartitionRegistration) -> set[int]:
    return ({*p.replicas, *p.isr, p.leader} | {*p.adding_replicas}) - {NO_LEADER}


def sensitive_config(name: str) -> bool:
    return any(part in name for part in _SENSITIVE_PARTS)


def _partition(
    prior: MetadataImage | None, topic_id: UUID, partition: int
) -> PartitionRegistration | None:
    topic = None if prior is None else prior.topics.get(topic_id)
    return None if topic is None else topic.partitions.get(partition)


def _topic_name(prior: MetadataImage | None, topic_id: UUID) -> str | None:
    topic = None if prior is None else prior.topics.get(topic_id)
    return None if topic is None else topic.name


def _partition_name(prior: MetadataImage | None, topic_id: UUID, partition: int) -> str:
    return f"{_topic_name(prior, topic_id) or uuid_text(topic_id)}-{partition}"
