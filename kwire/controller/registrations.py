"""What the metadata image holds about each broker, controller, topic and partition, and
the constants and enums of those records (Kafka's BrokerRegistration,
ControllerRegistration, PartitionRegistration, ...). Plain values: the image keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from uuid import UUID

from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord

NO_LEADER = -1
NO_LEADER_CHANGE = -2

# Reserved directory ids (Kafka's DirectoryId): every id below 100 is reserved.
DIR_MIGRATING = UUID(int=0)
DIR_UNASSIGNED = UUID(int=1)
DIR_LOST = UUID(int=2)


def is_reserved_directory(directory: UUID) -> bool:
    return directory.int < 100


class ConfigResourceType(IntEnum):
    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class LeaderRecoveryState(IntEnum):
    RECOVERED = 0
    RECOVERING = 1


class ZkMigrationState(IntEnum):
    """Kafka's metadata.migration.ZkMigrationState, by its record byte (the declaration
    order differs from the byte order: MIGRATION is 1, PRE_MIGRATION 2)."""

    NONE = 0
    MIGRATION = 1
    PRE_MIGRATION = 2
    POST_MIGRATION = 3
    ZK = 4
    UNINITIALIZED = -1


MIN_TABLE_CAPACITY = 2  # BaseHashTable.MIN_CAPACITY
_FIBONACCI_MULTIPLIER = -7046029254386353131  # 0xc6a4a7935bd1e995 as a Java long


def timeline_hash_slot(topic_id: UUID, capacity: int) -> int:
    """The slot of ``topic_id`` in a Kafka BaseHashTable of ``capacity`` (a power of two)
    slots: Uuid.hashCode, multiplied by a 64-bit Fibonacci constant, top bits kept."""
    folded = (topic_id.int >> 64) ^ (topic_id.int & (2**64 - 1))
    hash_code = ((folded >> 32) ^ folded) & 0xFFFFFFFF
    if hash_code >= 2**31:
        hash_code -= 2**32  # a Java int
    product = (hash_code * _FIBONACCI_MULTIPLIER) % 2**64
    return product >> (64 - (capacity.bit_length() - 1))


class ReplayError(ValueError):
    """A record that cannot apply to the current state: the log is inconsistent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str
    host: str
    port: int
    security_protocol: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerRegistration:
    broker_id: int
    epoch: int
    incarnation_id: UUID
    listeners: tuple[Endpoint, ...]
    supported_features: dict[str, tuple[int, int]]
    rack: str | None
    fenced: bool
    in_controlled_shutdown: bool
    is_migrating_zk_broker: bool
    directories: tuple[UUID, ...]
    # Directories the broker reported cordoned (KIP-1066, metadata.version 4.3-IV0); None
    # until its heartbeats first carry them.
    cordoned_directories: tuple[UUID, ...] | None = None

    @property
    def active(self) -> bool:
        """Unfenced and not shutting down: may lead partitions and join new ISRs."""
        return not self.fenced and not self.in_controlled_shutdown

    def has_online_dir(self, directory: UUID) -> bool:
        # Kafka treats reserved ids (e.g. MIGRATING, UNASSIGNED) as always online.
        return is_reserved_directory(directory) or directory in self.directories


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerRegistration:
    controller_id: int
    incarnation_id: UUID
    zk_migration_ready: bool
    listeners: tuple[Endpoint, ...]
    supported_features: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionRegistration:
    replicas: tuple[int, ...]
    directories: tuple[UUID, ...]
    isr: tuple[int, ...]
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader: int
    leader_recovery_state: LeaderRecoveryState = LeaderRecoveryState.RECOVERED
    leader_epoch: int
    partition_epoch: int
    elr: tuple[int, ...] = ()
    last_known_elr: tuple[int, ...] = ()

    def directory(self, replica: int) -> UUID:
        try:
            return self.directories[self.replicas.index(replica)]
        except (ValueError, IndexError):
            return DIR_UNASSIGNED

    @classmethod
    def from_record(cls, record: PartitionRecord) -> PartitionRegistration:
        replicas = tuple(record.replicas)
        return cls(
            replicas=replicas,
            directories=_directories_or_migrating(record.directories, len(replicas)),
            isr=tuple(record.isr),
            removing_replicas=tuple(record.removing_replicas),
            adding_replicas=tuple(record.adding_replicas),
            leader=record.leader,
            leader_recovery_state=LeaderRecoveryState(record.leader_recovery_state),
            leader_epoch=record.leader_epoch,
            partition_epoch=record.partition_epoch,
            elr=tuple(record.eligible_leader_replicas or ()),
            last_known_elr=tuple(record.last_known_elr or ()),
        )

    def merge(self, change: PartitionChangeRecord) -> PartitionRegistration:
        """Apply a PartitionChangeRecord: absent fields keep their value; a leader change
        bumps the leader epoch; every change bumps the partition epoch."""
        replicas = self.replicas if change.replicas is None else tuple(change.replicas)
        directories = self.directories if change.directories is None else tuple(change.directories)
        leader, leader_epoch = self.leader, self.leader_epoch
        if change.leader != NO_LEADER_CHANGE:
            leader, leader_epoch = change.leader, self.leader_epoch + 1
        recovery = self.leader_recovery_state
        if change.leader_recovery_state != -1:
            recovery = LeaderRecoveryState(change.leader_recovery_state)
        return PartitionRegistration(
            replicas=replicas,
            directories=_directories_or_migrating(list(directories), len(replicas)),
            isr=self.isr if change.isr is None else tuple(change.isr),
            removing_replicas=(
                self.removing_replicas
                if change.removing_replicas is None
                else tuple(change.removing_replicas)
            ),
            adding_replicas=(
                self.adding_replicas
                if change.adding_replicas is None
                else tuple(change.adding_replicas)
            ),
            leader=leader,
            leader_recovery_state=recovery,
            leader_epoch=leader_epoch,
            partition_epoch=self.partition_epoch + 1,
            elr=(
                self.elr
                if change.eligible_leader_replicas is None
                else tuple(change.eligible_leader_replicas)
            ),
            last_known_elr=(
                self.last_known_elr
                if change.last_known_elr is None
                else tuple(change.last_known_elr)
            ),
        )


def _directories_or_migrating(directories: list[UUID], count: int) -> tuple[UUID, ...]:
    # Records from before directory assignment carry no directories: every replica is
    # then "migrating", as Kafka fills in.
    if not directories:
        return (DIR_MIGRATING,) * count
    return tuple(directories)


@dataclass(slots=True, kw_only=True)
class TopicInfo:
    name: str
    topic_id: UUID
    partitions: dict[int, PartitionRegistration] = field(default_factory=dict)


ClientQuotaEntity = tuple[tuple[str, str | None], ...]
