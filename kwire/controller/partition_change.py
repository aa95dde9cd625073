"""Leader, ISR and assignment changes for one partition (Kafka's PartitionChangeBuilder).

Given a partition and its targets (ISR, replicas, adding/removing replicas, leader recovery
state, directories), elect a leader and produce the PartitionChangeRecord that moves the
partition there, or ``None`` when nothing would change. The steps run in Kafka's order:

1. complete a reassignment if the target ISR already holds every target replica
   (``complete_reassignment``, Kafka's PartitionReassignmentReplicas);
2. elect a leader (PREFERRED, ONLINE or UNCLEAN); an unclean leader becomes the whole ISR
   and, from 3.2-IV0, starts RECOVERING;
3. bump the leader epoch when a replica leaves the replica set, and (before 3.6-IV0) when
   the ISR shrinks;
4. write the ISR (never empty), replicas, directories, adding/removing replicas and the
   leader recovery state that differ from the partition's.

With eligible leader replicas off (Kafka 3.9, or ``eligible.leader.replicas.version`` 0)
the ISR is never written empty and a leftover ELR is cleared. With them on (``min_isr``
given; Kafka 4.3.1's PartitionChangeBuilder, see kwire.controller.elr) the steps are:

1. as above;
2. while the target ISR is below ``min_isr`` the replicas it loses join the ELR (less
   ``unclean_shutdown`` replicas), else the ELR empties;
3. elect: an ISR member, or an ELR member when the ISR is empty; else the last known
   leader (the one replica of LastKnownElr) if it may lead, an unclean election that
   makes it the ISR; else (UNCLEAN) any replica. A leader taken from the ELR becomes the
   ISR and leaves the ELR;
4. write the ELR if it changed (cleared by an unclean election), the ISR even when empty,
   and LastKnownElr: the old leader when the partition first loses its leader, cleared
   once it has one again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from kwire.controller.elr import target_elr
from kwire.controller.image import (
    NO_LEADER,
    NO_LEADER_CHANGE,
    LeaderRecoveryState,
    MetadataImage,
    PartitionRegistration,
)
from kwire.controller.records import MetadataVersion
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)


class Election(Enum):
    PREFERRED = "preferred"  # the first replica if it can lead, else as ONLINE
    ONLINE = "online"  # keep the current leader if it can lead, else any ISR member
    UNCLEAN = "unclean"  # as ONLINE, then any acceptable replica even outside the ISR


@dataclass(frozen=True, slots=True)
class CompletedReassignment:
    replicas: list[int]
    isr: list[int]


def reassignment_in_progress(partition: PartitionRegistration) -> bool:
    return bool(partition.removing_replicas or partition.adding_replicas)


def complete_reassignment(
    removing: Sequence[int], adding: Sequence[int], replicas: Sequence[int], isr: Sequence[int]
) -> CompletedReassignment | None:
    """The replicas and ISR once a reassignment in progress completes, or None while it
    cannot: the ISR, less the replicas being removed, must be non-empty and hold every
    remaining replica (PartitionReassignmentReplicas.maybeCompleteReassignment)."""
    if not removing and not adding:
        return None
    new_isr, new_replicas = list(isr), list(replicas)
    if removing:
        new_isr = [r for r in isr if r not in removing]
        if not new_isr:
            return None
        new_replicas = [r for r in replicas if r not in removing]
        if not new_replicas:
            return None
    if not set(new_replicas) <= set(new_isr):
        return None
    return CompletedReassignment(new_replicas, new_isr)


def leader_acceptor(
    image: MetadataImage,
    partition: PartitionRegistration,
    is_acceptable: Callable[[int], bool] | None = None,
) -> Callable[[int], bool]:
    """Kafka's LeaderAcceptor: a replica may lead if ``is_acceptable`` (by default: it is
    registered, unfenced and not shutting down) and its directory for this partition is
    online."""

    def check(replica: int) -> bool:
        if is_acceptable is None:
            if not image.is_active(replica):
                return False
        elif not is_acceptable(replica):
            return False
        registration = image.brokers.get(replica)
        return registration is not None and registration.has_online_dir(
            partition.directory(replica)
        )

    return check


def build_partition_change(
    partition: PartitionRegistration,
    topic_id: UUID,
    partition_id: int,
    *,
    is_acceptable_leader: Callable[[int], bool],
    metadata_version: MetadataVersion,
    target_isr: Sequence[int] | None = None,
    target_replicas: Sequence[int] | None = None,
    target_removing: Sequence[int] | None = None,
    target_adding: Sequence[int] | None = None,
    target_leader_recovery_state: LeaderRecoveryState | None = None,
    directories: Mapping[int, UUID] | None = None,
    default_directory: Callable[[int], UUID] | None = None,
    election: Election = Election.ONLINE,
    zk_migration: bool = False,
    min_isr: int | None = None,
    unclean_shutdown: Sequence[int] = (),
) -> PartitionChangeRecord | None:
    """The PartitionChangeRecord taking ``partition`` to the targets (each ``None`` keeps
    the partition's own value), or None when nothing would change.

    ``directories`` overrides the directory of some replicas; a replica that is new to the
    partition gets ``default_directory(replica)`` (ClusterControlManager.defaultDir).
    Raises ValueError if such a replica appears and no ``default_directory`` is given.

    ``min_isr`` (the topic's effective min ISR) turns eligible leader replicas on; None
    leaves them off. ``unclean_shutdown`` lists replicas that may not join the ELR."""
    isr = list(partition.isr if target_isr is None else target_isr)
    replicas = list(partition.replicas if target_replicas is None else target_replicas)
    removing = list(partition.removing_replicas if target_removing is None else target_removing)
    adding = list(partition.adding_replicas if target_adding is None else target_adding)
    recovery = (
        partition.leader_recovery_state
        if target_leader_recovery_state is None
        else target_leader_recovery_state
    )
    record = PartitionChangeRecord(partition_id=partition_id, topic_id=topic_id)

    completed = complete_reassignment(removing, adding, replicas, isr)
    if completed is not None:
        isr, replicas, removing, adding = completed.isr, completed.replicas, [], []

    elr_on = min_isr is not None
    elr = list(partition.elr)
    if min_isr is not None:
        elr = target_elr(partition.elr, partition.isr, isr, min_isr, unclean_shutdown)

    # Elect.
    def valid_leader(replica: int) -> bool:
        in_isr = replica in isr or (not isr and replica in elr)
        return in_isr and is_acceptable_leader(replica)

    def last_known_leader() -> int:
        # Balanced recovery: with no ISR and no ELR, the one last known leader may lead.
        if not elr_on or elr or isr or len(partition.last_known_elr) != 1:
            return NO_LEADER
        candidate = partition.last_known_elr[0]
        return candidate if is_acceptable_leader(candidate) else NO_LEADER

    leader, unclean = NO_LEADER, False
    if election is Election.PREFERRED and replicas and valid_leader(replicas[0]):
        leader = replicas[0]
    elif valid_leader(partition.leader):
        leader = partition.leader
    else:
        leader = next((r for r in replicas if valid_leader(r)), NO_LEADER)
        if leader == NO_LEADER:
            leader = last_known_leader()
            unclean = leader != NO_LEADER
        if leader == NO_LEADER and election is Election.UNCLEAN:
            leader = next((r for r in replicas if is_acceptable_leader(r)), NO_LEADER)
            unclean = leader != NO_LEADER
    if leader != partition.leader:
        if leader in elr:
            # A leader from the ELR is the whole new ISR.
            isr = [leader]
            elr = [r for r in elr if r != leader]
        record.leader = leader
        if unclean:
            # An unclean leader starts a new history: it is the whole ISR, and it must
            # recover before others may follow it.
            record.isr = [leader]
            if (
                partition.leader_recovery_state is not LeaderRecoveryState.RECOVERING
                and metadata_version.supports_leader_recovery
            ):
                record.leader_recovery_state = LeaderRecoveryState.RECOVERING

    # A replica leaving the replica set must see a new leader epoch.
    if record.leader == NO_LEADER_CHANGE and not set(partition.replicas) <= set(replicas):
        record.leader = partition.leader

    # An unclean election (or ELR off) leaves no eligible leader replicas.
    if record.isr is not None or not elr_on:
        elr = []
    if elr != list(partition.elr):
        record.eligible_leader_replicas = elr

    # An empty ISR is only written while ELR is on; otherwise the last member stays.
    if record.isr is None and (isr or elr_on) and isr != list(partition.isr):
        record.isr = isr

    # Before 3.6-IV0 (and during a ZK migration) brokers only learn of an ISR shrink
    # through a new leader epoch.
    if (
        (metadata_version.requires_leader_epoch_bump_on_isr_shrink or zk_migration)
        and record.leader == NO_LEADER_CHANGE
        and record.isr is not None
        and not set(partition.isr) <= set(record.isr)
    ):
        record.leader = partition.leader

    if elr_on:
        # LastKnownElr holds the leader the partition last had while it has none.
        if record.leader == NO_LEADER and not partition.last_known_elr:
            record.last_known_elr = [partition.leader]
        elif record.leader >= 0 and partition.last_known_elr:
            record.last_known_elr = []

    _set_assignment_changes(
        record, partition, replicas, removing, adding, directories, default_directory,
        metadata_version,
    )  # fmt: skip

    if recovery is not partition.leader_recovery_state:
        record.leader_recovery_state = recovery

    if _is_noop(record):
        return None
    return record


def _set_assignment_changes(
    record: PartitionChangeRecord,
    partition: PartitionRegistration,
    replicas: list[int],
    removing: list[int],
    adding: list[int],
    overrides: Mapping[int, UUID] | None,
    default_directory: Callable[[int], UUID] | None,
    mv: MetadataVersion,
) -> None:
    if replicas:
        if mv.supports_directory_assignment:
            known = dict(zip(partition.replicas, partition.directories, strict=False))
            known.update(overrides or {})
            directories = []
            for replica in replicas:
                if replica in known:
                    directories.append(known[replica])
                elif default_directory is None:
                    raise ValueError(f"no directory known for new replica {replica}")
                else:
                    directories.append(default_directory(replica))
            if directories != list(partition.directories):
                record.directories = directories
        if replicas != list(partition.replicas):
            record.replicas = replicas
    if removing != list(partition.removing_replicas):
        record.removing_replicas = removing
    if adding != list(partition.adding_replicas):
        record.adding_replicas = adding


def _is_noop(record: PartitionChangeRecord) -> bool:
    return (
        record.isr is None
        and record.eligible_leader_replicas is None
        and record.last_known_elr is None
        and record.leader == NO_LEADER_CHANGE
        and record.replicas is None
        and record.removing_replicas is None
        and record.adding_replicas is None
        and record.leader_recovery_state == -1
        and record.directories is None
    )
