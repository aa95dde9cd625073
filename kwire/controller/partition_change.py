"""Leader and ISR changes for one partition (Kafka's PartitionChangeBuilder).

Given a partition and a target ISR, elect a leader and produce the PartitionChangeRecord
that moves the partition there, or ``None`` when nothing would change. Eligible leader
replicas (KIP-966) stay disabled, as they are in every production metadata.version of
Kafka 3.9; their fields are only cleared if a record left some behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from uuid import UUID

from kwire.controller.image import (
    NO_LEADER,
    NO_LEADER_CHANGE,
    LeaderRecoveryState,
    PartitionRegistration,
)
from kwire.controller.records import MetadataVersion
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)


class Election(Enum):
    PREFERRED = "preferred"  # the first replica if it can lead, else any ISR member
    ONLINE = "online"  # keep the current leader if it can lead, else any ISR member
    UNCLEAN = "unclean"  # as ONLINE, then any live replica even outside the ISR


def build_partition_change(
    partition: PartitionRegistration,
    topic_id: UUID,
    partition_id: int,
    *,
    is_acceptable_leader: Callable[[int], bool],
    metadata_version: MetadataVersion,
    target_isr: Sequence[int] | None = None,
    election: Election = Election.ONLINE,
) -> PartitionChangeRecord | None:
    isr = list(partition.isr if target_isr is None else target_isr)
    replicas = list(partition.replicas)
    record = PartitionChangeRecord(partition_id=partition_id, topic_id=topic_id)

    def valid_leader(replica: int) -> bool:
        return replica in isr and is_acceptable_leader(replica)

    # Elect.
    leader, unclean = NO_LEADER, False
    if election is Election.PREFERRED and replicas and valid_leader(replicas[0]):
        leader = replicas[0]
    elif valid_leader(partition.leader):
        leader = partition.leader
    else:
        leader = next((r for r in replicas if valid_leader(r)), NO_LEADER)
        if leader == NO_LEADER and election is Election.UNCLEAN:
            leader = next((r for r in replicas if is_acceptable_leader(r)), NO_LEADER)
            unclean = leader != NO_LEADER
    if leader != partition.leader:
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

    if partition.elr:
        record.eligible_leader_replicas = []

    # An empty ISR is never written while ELR is disabled: the last member stays.
    if record.isr is None and isr and isr != list(partition.isr):
        record.isr = isr

    # Before 3.6-IV0 brokers only learn of an ISR shrink through a new leader epoch.
    if (
        metadata_version.requires_leader_epoch_bump_on_isr_shrink
        and record.leader == NO_LEADER_CHANGE
        and record.isr is not None
        and not set(partition.isr) <= set(record.isr)
    ):
        record.leader = partition.leader

    if _is_noop(record):
        return None
    return record


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
