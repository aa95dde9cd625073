"""The values KRaft's consensus is made of: voters, replica progress, roles and actions.

A role is a value (`Leader`, `Follower`, `Candidate`, `Unattached`), matched with
`match`, so no field is "None unless leader". Actions are commands the I/O edge carries
out; they are frozen and named for what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage

METADATA_TOPIC = "__cluster_metadata"
METADATA_TOPIC_ID = UUID(int=1)  # Kafka's fixed id for __cluster_metadata
METADATA_PARTITION = 0
OBSERVER_SESSION_TIMEOUT_MS = 300_000  # observers silent this long leave DescribeQuorum


@dataclass(frozen=True, slots=True, kw_only=True)
class Voter:
    """A voter of the static quorum (`controller.quorum.voters`: id@host:port)."""

    node_id: int
    host: str
    port: int


@dataclass(slots=True, kw_only=True)
class ReplicaProgress:
    """What the leader knows of one replica's fetching (voter or observer)."""

    replica_id: int
    directory_id: UUID = UUID(int=0)
    end_offset: int = -1  # the last fetch offset: the replica holds everything below it
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1
    last_fetch_leader_end_offset: int = -1

    def record_fetch(self, fetch_offset: int, leader_end_offset: int, now_ms: int) -> None:
        # A replica is caught up when it fetches from the leader's end; or, failing that,
        # when it reaches the end the leader had at its previous fetch (so it was caught
        # up as of that previous fetch).
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, now_ms)
        elif 0 < self.last_fetch_leader_end_offset <= fetch_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, self.last_fetch_ms)
        self.last_fetch_leader_end_offset = leader_end_offset
        self.last_fetch_ms = max(self.last_fetch_ms, now_ms)
        self.end_offset = fetch_offset


@dataclass(slots=True, kw_only=True)
class Unattached:
    epoch: int
    voted_id: int = -1


@dataclass(slots=True, kw_only=True)
class Candidate:
    epoch: int
    granted: set[int] = field(default_factory=set)


@dataclass(slots=True, kw_only=True)
class Follower:
    epoch: int
    leader_id: int
    high_watermark: int = -1


@dataclass(slots=True, kw_only=True)
class Leader:
    epoch: int
    epoch_start_offset: int
    high_watermark: int = -1  # -1 until a record of this epoch is committed
    voters: dict[int, ReplicaProgress] = field(default_factory=dict)
    observers: dict[tuple[int, UUID], ReplicaProgress] = field(default_factory=dict)


Role = Unattached | Candidate | Follower | Leader


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistQuorumState:
    """Write `quorum-state` (and fsync) before acting on the new epoch."""

    leader_id: int
    leader_epoch: int
    voted_id: int
    applied_offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendLeaderChange:
    """Append this LeaderChangeMessage control record as the first record of the epoch."""

    epoch: int
    message: LeaderChangeMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class BecameLeader:
    epoch: int
    epoch_start_offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HighWatermarkAdvanced:
    """Everything below `offset` is committed: durable on a majority of voters."""

    offset: int


Action = PersistQuorumState | AppendLeaderChange | BecameLeader | HighWatermarkAdvanced
