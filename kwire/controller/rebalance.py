"""The automatic leader rebalance (Kafka 3.9's QuorumController.maybeScheduleNextBalance-
PartitionLeaders and ReplicationControlManager.maybeBalancePartitionLeaders).

Rules, as Kafka's KRaft controller applies them:

1. It is on when ``auto.leader.rebalance.enable`` is true (the default); it then runs every
   ``leader.imbalance.check.interval.seconds`` (300). ``leader.imbalance.per.broker.
   percentage`` plays no part: only the ZooKeeper controller reads it.
2. A partition is imbalanced when its leader is not its preferred replica (the first
   replica); a leaderless partition is imbalanced too.
3. After every write of the active controller, if partitions are imbalanced and no run is
   scheduled, one is scheduled: one interval from now after a run that finished its work
   (or before any run), 10 ms from now after a run that stopped at its limit.
4. A run elects the preferred leader (PartitionChangeBuilder, Election.PREFERRED) of at
   most MAX_ELECTIONS_PER_IMBALANCE (1,000) imbalanced partitions, one PartitionChange-
   Record each, in one non-atomic write. A preferred replica that is outside the ISR,
   fenced, shutting down or whose directory is offline cannot lead, and its partition
   keeps its leader (or, leaderless, gets any ISR member that can lead, as Kafka's
   preferred election falls back to an online one). Unfencing a broker never moves
   leadership back by itself: the next run does.
5. Losing leadership forgets the schedule (QuorumController.renounce).

Kafka iterates its imbalanced set, a TimelineHashSet of TopicIdPartition, whose order
depends on when each partition became imbalanced; kwire derives the set from the image
and orders it as that table would if every partition had been added in topic and
partition order, so the records of a run that moves several partitions may come in
another order than Kafka's (their content is the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from uuid import UUID

from kwire.controller.elections import _PREFERRED, _elect
from kwire.controller.image import MetadataImage, leader_is_not_preferred
from kwire.controller.timeline_order import java_uuid_hash, timeline_order
from kwire.protocol._codec import Message

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

MAX_ELECTIONS_PER_IMBALANCE = 1_000  # ReplicationControlManager.MAX_ELECTIONS_PER_IMBALANCE
IMMEDIATE_DELAY_MS = 10  # QuorumController: "delays them by a small amount of time"
NEVER_MS = 2**63 - 1


class Schedule(Enum):
    """QuorumController.ImbalanceSchedule."""

    SCHEDULED = "scheduled"  # a run is due at ``due_ms``
    DEFERRED = "deferred"  # next run, if needed, one interval after the next write
    IMMEDIATELY = "immediately"  # the last run hit its limit: next one 10 ms on


@dataclass(slots=True)
class LeaderRebalance:
    """When the next rebalance runs (the active controller's soft state, never logged).

    ``interval_ms`` is None when the rebalance is off (auto.leader.rebalance.enable=false).
    """

    interval_ms: int | None
    state: Schedule = Schedule.DEFERRED
    due_ms: int = NEVER_MS

    def forget(self) -> None:
        """Leadership lost: nothing is scheduled (QuorumController.cancelMaybeBalance-
        PartitionLeaders)."""
        self.state, self.due_ms = Schedule.DEFERRED, NEVER_MS

    def is_due(self, now_ms: int) -> bool:
        return self.state is Schedule.SCHEDULED and now_ms >= self.due_ms

    def maybe_schedule(self, image: MetadataImage, now_ms: int) -> None:
        """After a write: schedule a run if partitions are imbalanced and none is due."""
        if self.state is Schedule.SCHEDULED or self.interval_ms is None:
            return
        if not image.imbalanced_count:
            return
        delay = self.interval_ms if self.state is Schedule.DEFERRED else IMMEDIATE_DELAY_MS
        self.state, self.due_ms = Schedule.SCHEDULED, now_ms + delay

    def ran(self, more: bool) -> None:
        """A run ended; ``more`` when it stopped at its limit."""
        self.state = Schedule.IMMEDIATELY if more else Schedule.DEFERRED
        self.due_ms = NEVER_MS


def _imbalanced(image: MetadataImage) -> list[tuple[UUID, int]]:
    return [
        (topic_id, partition_id)
        for topic_id, topic in image.topics.items()
        for partition_id, partition in topic.partitions.items()
        if leader_is_not_preferred(partition)
    ]


def imbalanced_partitions(image: MetadataImage) -> list[tuple[UUID, int]]:
    """(topic id, partition id) of every partition whose leader is not its first replica,
    in the order Kafka's imbalancedPartitions set would iterate them (see the module)."""
    return timeline_order(_imbalanced(image), _topic_id_partition_hash)


def _topic_id_partition_hash(key: tuple[UUID, int]) -> int:
    # TopicIdPartition.hashCode: Objects.hash(topicId, partitionId), in Java int arithmetic.
    value = (31 * (31 + java_uuid_hash(key[0])) + key[1]) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def balance_partition_leaders(
    ctl: QuorumController, limit: int = MAX_ELECTIONS_PER_IMBALANCE
) -> tuple[list[Message], bool]:
    """One rebalance run over ``ctl``'s image: the PartitionChangeRecords electing preferred
    leaders (at most ``limit``), and whether the run stopped at its limit (Kafka then
    reschedules at once). Nothing is applied here."""
    records: list[Message] = []
    image = ctl.image
    for topic_id, partition_id in imbalanced_partitions(image):
        if len(records) >= limit:
            break
        topic = image.topics[topic_id]
        # A preferred replica that cannot lead leaves the partition as it is (no record).
        _elect(ctl, _PREFERRED, topic.name, partition_id, records)
    return records, len(records) >= limit
