"""The values KRaft's consensus is made of: configuration, voters, replica progress, roles,
send failures and actions (the contract between `RaftCore` and whoever drives it).

A role is a value (Kafka's EpochState classes: `Unattached`, `Prospective`, `Candidate`,
`Leader`, `Follower`, `Resigned`), matched with `match`, so no field is "None unless
leader". Every timer is an absolute deadline in milliseconds held by the role that owns it.
Actions are commands the I/O edge (or the simulator) carries out synchronously and in
order; they are frozen and named for what to do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest, FetchSnapshotResponse
from kwire.protocol.messages.remove_raft_voter import (
    RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
)
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.voter_set import KRaftVersion, ReplicaKey, VoterEndpoint, VoterSet
from kwire.records.control import ControlRecordType

METADATA_TOPIC = "__cluster_metadata"
METADATA_TOPIC_ID = UUID(int=1)  # Kafka's fixed id for __cluster_metadata
METADATA_PARTITION = 0
OBSERVER_SESSION_TIMEOUT_MS = 300_000  # observers silent this long leave DescribeQuorum
NO_DIRECTORY_ID = UUID(int=0)
CHECK_QUORUM_TIMEOUT_FACTOR = 1.5  # LeaderState.CHECK_QUORUM_TIMEOUT_FACTOR
SHUTDOWN_TIMEOUT_MS = 5000  # KafkaRaftClientDriver: client.shutdown(5000)
# kwire refuses an epoch above this in a request or answer (INVALID_REQUEST, or the
# answer is not acted on): epochs are int32 and grow by one per election, so a quorum
# moved to an epoch it cannot grow past (a hostile frame naming 2**31-1) would stay
# without a leader for good; 65,536 epochs of headroom (Kafka has no such bound).
MAX_EPOCH = 2**31 - 1 - 2**16
FAST_FAILOVER_MAX_DELAY_MS = 50  # the rank step of the staggered fast-failover delay (follower.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Voter:
    """A voter of the static quorum (`controller.quorum.voters`: id@host:port)."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """The quorum and its timers (Kafka's QuorumConfig; every default is Kafka's).

    `fast_failover` is kwire's: a follower voter whose connection to its leader is refused or
    lost treats the leader as gone after a short random delay instead of waiting
    `fetch_timeout_ms`. Times are milliseconds; sizes bytes.

    The voters: `voters` is a static quorum's (kraft.version 0, `controller.quorum.voters`).
    A dynamic quorum (kraft.version 1, KIP-853) gives `voter_set`, the bootstrap
    checkpoint's VotersRecord (`kafka-storage format --initial-controllers/--standalone`),
    unless the caller hands RaftCore the log's control records (`control_records=`);
    either way the newest VotersRecord in the log rules from when it is appended.
    `local_endpoints` are this node's listeners as a VotersRecord names them (the leader
    writes them into the voter set at kraft.version 1, LeaderState's localVoterNode);
    empty: the endpoints the voter set already lists for this node.

    `bootstrap_servers` are `controller.quorum.bootstrap.servers` as (host, port), in order
    (QuorumConfig.parseBootstrapServers). A node that does not know its leader fetches from
    one of them, as Kafka's RequestManager does with the ids -2, -3, ... in this order
    (`bootstrap_destination`); empty: from the other voters, as with static voters."""

    node_id: int
    cluster_id: str
    voters: tuple[Voter, ...]
    listener_name: str = "CONTROLLER"
    directory_id: UUID = NO_DIRECTORY_ID
    voter_set: VoterSet | None = None
    local_endpoints: tuple[VoterEndpoint, ...] = ()
    election_timeout_ms: int = 1000  # controller.quorum.election.timeout.ms
    election_backoff_max_ms: int = 1000  # controller.quorum.election.backoff.max.ms
    fetch_timeout_ms: int = 2000  # controller.quorum.fetch.timeout.ms
    request_timeout_ms: int = 2000  # controller.quorum.request.timeout.ms
    retry_backoff_ms: int = 20  # controller.quorum.retry.backoff.ms
    fetch_max_wait_ms: int = 500  # KafkaRaftClient.MAX_FETCH_WAIT_MS
    fetch_max_bytes: int = 1_048_576  # controller.quorum.fetch.max.bytes
    fetch_snapshot_max_bytes: int = 1_048_576  # controller.quorum.fetch.snapshot.max.bytes
    fast_failover: bool = True
    bootstrap_servers: tuple[tuple[str, int], ...] = ()
    auto_join: bool = False  # controller.quorum.auto.join.enable (auto_join.py)
    # A kraft.version 0 voter reports itself to each new leader by UpdateRaftVoter, for a
    # later kraft.version upgrade (Kafka 4.1+, KAFKA-16538); False: as Kafka 3.9, whose
    # voters send UpdateRaftVoter at kraft.version 1 only (a replay of a 3.9 node).
    update_voter_at_kraft_version_0: bool = True

    def bootstrap_destination(self, index: int) -> tuple[int, VoterEndpoint]:
        """The id (-2 - index, KafkaRaftClient's numbering) and the endpoint of the
        `index`-th bootstrap server."""
        host, port = self.bootstrap_servers[index]
        return -2 - index, VoterEndpoint(name=self.listener_name.upper(), host=host, port=port)

    @property
    def voter_ids(self) -> frozenset[int]:
        return frozenset(v.node_id for v in self.voters)

    @property
    def is_voter(self) -> bool:
        return self.node_id in self.voter_ids

    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    def voter(self, node_id: int) -> Voter | None:
        return next((v for v in self.voters if v.node_id == node_id), None)


class LogView(Protocol):
    """What consensus asks of the log: its bounds, its last epoch, and where an epoch ends.

    `end_offset_for_epoch(epoch)` answers as Kafka's ReplicatedLog.endOffsetForEpoch: the
    largest epoch <= `epoch` in the log and the offset where it ends, or None."""

    @property
    def end_offset(self) -> int: ...

    @property
    def log_start_offset(self) -> int: ...

    @property
    def latest_epoch(self) -> int | None: ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None: ...

    def latest_snapshot_id(self) -> SnapshotId | None: ...

    def earliest_snapshot_id(self) -> SnapshotId | None: ...


class RandomSource(Protocol):
    """Where election jitter comes from: `random.Random` (seeded by the caller) fits."""

    def randrange(self, stop: int, /) -> int: ...


class SendFailure(enum.Enum):
    """Why a request to a peer got no answer."""

    CONNECTION_REFUSED = "connection_refused"  # could not connect (no process listening)
    CONNECTION_LOST = "connection_lost"  # reset or closed with the request in flight
    TIMEOUT = "timeout"  # no answer within the request timeout
    UNSUPPORTED_VERSION = "unsupported_version"  # the peer's ApiVersions cannot carry it
    AUTHENTICATION_FAILED = "authentication_failed"  # TLS or SASL refused this node


OutboundRequest = (
    VoteRequest
    | BeginQuorumEpochRequest
    | EndQuorumEpochRequest
    | FetchRequest
    | FetchSnapshotRequest
    | ApiVersionsRequest
    | UpdateRaftVoterRequest
    | AddRaftVoterRequest
    | RemoveRaftVoterRequest
)
OutboundResponse = (
    VoteResponse
    | BeginQuorumEpochResponse
    | EndQuorumEpochResponse
    | FetchResponse
    | FetchSnapshotResponse
    | ApiVersionsResponse
    | UpdateRaftVoterResponse
    | AddRaftVoterResponse
    | RemoveRaftVoterResponse
)


@dataclass(slots=True, kw_only=True)
class ReplicaProgress:
    """What the leader knows of one replica's fetching (voter or observer)."""

    replica_id: int
    directory_id: UUID = NO_DIRECTORY_ID
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


# -- voter changes in progress (KIP-853) ----------------------------------------------------


@dataclass(slots=True, kw_only=True)
class PendingAddVoter:
    """An AddRaftVoter the leader works on (Kafka's AddVoterHandlerState): waiting for the
    new voter's ApiVersions answer (`last_offset` None), then for its VotersRecord at
    `last_offset` to commit. `ticket` names the caller's waiting request; `answered` once
    its answer went out early (AckWhenCommitted false)."""

    ticket: int
    voter: ReplicaKey
    endpoints: tuple[VoterEndpoint, ...]
    ack_when_committed: bool
    deadline_ms: int
    last_offset: int | None = None
    answered: bool = False


@dataclass(slots=True, kw_only=True)
class PendingRemoveVoter:
    """A RemoveRaftVoter whose VotersRecord at `last_offset` waits to commit (Kafka's
    RemoveVoterHandlerState)."""

    ticket: int
    last_offset: int
    deadline_ms: int


# -- roles (Kafka's EpochState implementations) ----------------------------------------------


@dataclass(slots=True, kw_only=True)
class Unattached:
    """UnattachedState: no leader known in `epoch`; `voted_id` >= 0 once we voted ("Voted").
    An observer's `election_deadline_ms` is None: it never stands for election."""

    epoch: int
    voted_id: int = -1
    voted_directory_id: UUID = NO_DIRECTORY_ID
    election_deadline_ms: int | None = None
    high_watermark: int = -1


@dataclass(slots=True, kw_only=True)
class Prospective:
    """ProspectiveState (KIP-996): asks for pre-votes in the current epoch, which it never
    bumps; keeps the leader and vote of the state it came from."""

    epoch: int
    leader_id: int = -1
    voted_id: int = -1
    voted_directory_id: UUID = NO_DIRECTORY_ID
    granted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    election_deadline_ms: int = 0
    high_watermark: int = -1
    # A fast-failover pre-vote (its follower found the leader gone): how many such rounds
    # were lost before this one; -1 otherwise.
    lost_fast_elections: int = -1
    # The leader it came from said it resigned (alive, it answers pre-votes): a fast round
    # waits for its answer too (`_fast_round_answered`).
    leader_answers: bool = False


@dataclass(slots=True, kw_only=True)
class Candidate:
    """CandidateState: voted for itself in `epoch` and asks every voter for its vote."""

    epoch: int
    granted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    election_deadline_ms: int = 0
    high_watermark: int = -1


@dataclass(slots=True, kw_only=True)
class SnapshotFetch:
    """The snapshot a follower is fetching (FollowerState.fetchingSnapshot): the bytes
    written so far."""

    snapshot_id: SnapshotId
    position: int = 0
    head: bytearray = field(default_factory=bytearray)  # the first batch, for its voters


@dataclass(slots=True, kw_only=True)
class Follower:
    """FollowerState: fetches from `leader_id`; `has_fetched` once a fetch succeeded (a
    voter that hears from its leader refuses pre-votes). `leader_endpoint`: where the leader
    said it listens (a response's NodeEndpoints), used while the leader is not in the voter
    set this node knows (an observer that has not replicated the VotersRecord yet)."""

    epoch: int
    leader_id: int
    leader_endpoint: VoterEndpoint | None = None
    voted_id: int = -1
    voted_directory_id: UUID = NO_DIRECTORY_ID
    high_watermark: int = -1
    fetch_deadline_ms: int = 0
    has_fetched: bool = False
    awaiting_flush: bool = False  # an AppendAsFollower is out; the next Fetch waits for it
    pending_high_watermark: int = -1  # from the response whose records are being appended
    snapshot: SnapshotFetch | None = None
    update_voter_deadline_ms: int = 0  # FollowerState's updateVoterSetPeriodTimer
    has_updated_leader: bool = False  # an UpdateRaftVoter was answered NONE in this epoch
    leader_gone: bool = False  # fast failover: the leader's connection was refused or lost
    # ... or the leader said it resigned its epoch: it is alive and answers pre-votes.
    leader_resigned: bool = False
    lost_fast_elections: int = 0  # fast-failover pre-vote rounds lost since (retries back off)
    # The part of fetch_deadline_ms owed to `controller_behind` (taken back once caught up).
    behind_penalty_ms: int = 0


@dataclass(slots=True, kw_only=True)
class Leader:
    """LeaderState: replication progress, the high watermark, BeginQuorumEpoch and the
    check-quorum timer."""

    epoch: int
    epoch_start_offset: int
    high_watermark: int = -1  # -1 until a record of this epoch is committed
    voters: dict[int, ReplicaProgress] = field(default_factory=dict)
    observers: dict[tuple[int, UUID], ReplicaProgress] = field(default_factory=dict)
    granting: frozenset[int] = frozenset()
    fetched_voters: set[int] = field(default_factory=set)
    check_quorum_deadline_ms: int = 0
    begin_quorum_deadline_ms: int = 0
    resign_requested: bool = False
    # Fast failover: until when a resigning leader waits for its first successor to fetch
    # its whole log (`LeaderPart.successor_catching_up`); None before it resigns.
    resign_wait_until_ms: int | None = None
    add_voter: PendingAddVoter | None = None  # LeaderState.addVoterHandlerState
    remove_voter: PendingRemoveVoter | None = None  # LeaderState.removeVoterHandlerState
    # kraft.version 0: the static voters as UpdateRaftVoter reported them, kept in memory
    # for a kraft.version upgrade (LeaderState's KRaftVersionUpgrade.Voters), then None once
    # the upgrade to `requested_kraft_version` is appended (KRaftVersionUpgrade.Version).
    volatile_voters: VoterSet | None = None
    requested_kraft_version: KRaftVersion | None = None


@dataclass(slots=True, kw_only=True)
class Resigned:
    """ResignedState: a leader that gave up `epoch`; sends EndQuorumEpoch to the voters that
    have not answered, then after an election timeout moves to Unattached in epoch + 1."""

    epoch: int
    unacked: set[int] = field(default_factory=set)
    preferred_successors: list[int] = field(default_factory=list)
    election_deadline_ms: int = 0


Role = Unattached | Prospective | Candidate | Follower | Leader | Resigned


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistQuorumState:
    """Write `quorum-state` (and fsync) before acting on the new epoch or answering a vote.
    `applied_offset` is always 0 (the kraft.version 0 file's field; Kafka writes 0 too).
    `kraft_version` is the log's at the time: it picks the file's data_version
    (`kwire.log.quorum_state.election_quorum_state`): 0 drops `voted_directory_id`, 1 keeps
    it (Kafka's ElectionState.toQuorumStateData)."""

    leader_id: int
    leader_epoch: int
    voted_id: int
    voted_directory_id: UUID = NO_DIRECTORY_ID
    applied_offset: int = 0
    kraft_version: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """Send `request` to voter `destination` at the highest version both sides support; the
    answer comes back through `on_response` or `on_send_failed` with this same object.

    `endpoint` names where to send when `destination` is not (or not yet) a voter of the
    current voter set: a voter being added (AddRaftVoter's ApiVersions, KIP-853) or one of
    `controller.quorum.bootstrap.servers` (Kafka gives those the ids -2, -3, ...). Without
    it the edge sends to `destination`'s endpoint on the controller listener in the
    current voter set."""

    destination: int
    request: OutboundRequest
    endpoint: VoterEndpoint | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendLeaderChange:
    """Append one control batch as the first batch of the epoch: this LeaderChangeMessage,
    then `control_records` (kraft.version 1 only: the KRaftVersionRecord and VotersRecord
    of LeaderState.appendStartOfEpochControlRecords, as (type, encoded value)) at the next
    offsets, in this order (`values()`); fsync, then call `on_flushed`."""

    epoch: int
    message: LeaderChangeMessage
    control_records: tuple[tuple[ControlRecordType, bytes], ...] = ()

    def values(self) -> list[tuple[ControlRecordType, bytes]]:
        """Every record of the batch, in order: (control record type, encoded value)."""
        return [
            (ControlRecordType.LEADER_CHANGE, self.message.encode(self.message.version)),
            *self.control_records,
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendControlRecords:
    """Append one control batch of epoch `epoch` holding `control_records` ((type, encoded
    value), in order) at the log end, which is `base_offset` (the leader's VotersRecord of
    AddRaftVoter, RemoveRaftVoter or UpdateRaftVoter: LeaderState.appendVotersRecord);
    fsync, then call `on_flushed`. Carried out as AppendLeaderChange."""

    epoch: int
    base_offset: int
    control_records: tuple[tuple[ControlRecordType, bytes], ...]

    def values(self) -> list[tuple[ControlRecordType, bytes]]:
        return list(self.control_records)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteVoterChange:
    """Answer the AddRaftVoter or RemoveRaftVoter request the caller registered as
    `ticket` with `response` (its VotersRecord committed, the new voter's ApiVersions answer
    refused it, its time ran out, or leadership was lost). Each ticket is completed once."""

    ticket: int
    response: AddRaftVoterResponse | RemoveRaftVoterResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendAsFollower:
    """Append these batches as a follower (they carry their own offsets and epochs), fsync,
    then call `on_flushed(new_end_offset)`."""

    records: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TruncateTo:
    """Truncate the log to `offset` (never below the high watermark)."""

    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BecameLeader:
    epoch: int
    epoch_start_offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HighWatermarkAdvanced:
    """Everything below `offset` is committed: durable on a majority of voters."""

    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged:
    """Emitted on every transition. `state` is one of unattached, voted, prospective,
    candidate, leader, follower, resigned; `leader_id` is -1 when unknown."""

    state: str
    epoch: int
    leader_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartSnapshotFetch:
    """Create an empty partial snapshot file for `snapshot_id` (replacing any partial one);
    chunks follow through `WriteSnapshotChunk`."""

    snapshot_id: SnapshotId


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteSnapshotChunk:
    """Append `data` at `position` of the partial snapshot `snapshot_id`."""

    snapshot_id: SnapshotId
    position: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshot:
    """The partial snapshot is complete: fsync and move it into place, then truncate the log
    fully to it (log start = end = its end offset; Kafka's truncateToLatestSnapshot), reload
    the state machine from it, and call `on_flushed(snapshot end offset)`."""

    snapshot_id: SnapshotId


Action = (
    PersistQuorumState
    | SendRequest
    | AppendLeaderChange
    | AppendControlRecords
    | CompleteVoterChange
    | AppendAsFollower
    | TruncateTo
    | BecameLeader
    | HighWatermarkAdvanced
    | StateChanged
    | StartSnapshotFetch
    | WriteSnapshotChunk
    | InstallSnapshot
)
