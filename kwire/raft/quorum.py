"""Roles and their transitions (Kafka's QuorumState), shared by every part of `RaftCore`.

Rules kept here:
- A transition that Kafka makes durable (Unattached, a vote, Follower, Candidate, Leader)
  emits PersistQuorumState before anything else of the new state; Prospective and Resigned
  live in memory only. Every transition emits StateChanged.
- A voter's election timeout is random in [T, 2T) (QuorumState.randomElectionTimeoutMs);
  an observer has none. Unattached keeps the timer of the Candidate, Unattached, Resigned or
  (not yet refused) Prospective state it comes from, as Kafka does.
- Every transition forgets the requests in flight (requests.py): their answers are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage
from kwire.raft.membership import Membership
from kwire.raft.requests import RequestManager
from kwire.raft.state import (
    CHECK_QUORUM_TIMEOUT_FACTOR,
    MAX_EPOCH,
    NO_DIRECTORY_ID,
    Action,
    AppendLeaderChange,
    BecameLeader,
    Candidate,
    Follower,
    Leader,
    LogView,
    PersistQuorumState,
    Prospective,
    RaftConfig,
    RandomSource,
    ReplicaProgress,
    Resigned,
    Role,
    StateChanged,
    Unattached,
    Voter,
)
from kwire.raft.voter_changes import abandoned_voter_changes
from kwire.raft.voter_set import KRaftControlRecords, VoterEndpoint, VoterSetError

log = logging.getLogger(__name__)


class QuorumCore(Membership, RequestManager):
    """State shared by the parts of RaftCore: config, log view, role, timers, connections."""

    def __init__(
        self,
        config: RaftConfig,
        log_view: LogView,
        *,
        persisted: QuorumStateData | None = None,
        rng: RandomSource | None = None,
        persisted_epoch: int | None = None,
        persisted_voted_id: int | None = None,
        control_records: KRaftControlRecords | None = None,
    ) -> None:
        if persisted is None and (persisted_epoch is not None or persisted_voted_id is not None):
            persisted = QuorumStateData(
                leader_epoch=persisted_epoch or 0,
                voted_id=-1 if persisted_voted_id is None else persisted_voted_id,
            )
        self.config = config
        self.log = log_view
        self.init_membership(config, log_view, control_records)
        self.rng: RandomSource = rng if rng is not None else SplitMix64(config.node_id)
        self.persisted = persisted
        self.flushed_end_offset = log_view.end_offset
        RequestManager.__init__(self, config.retry_backoff_ms)
        self.repoll = False  # something is due at the next poll (a log operation is out)
        self.now_ms = 0
        self.shutting_down = False  # resign() was called: never stand for election
        # Set by the edge while this voter's controller has committed records left to replay
        # (a restarted standby): in a fast failover it stands after the other voters, whose
        # controllers could activate at once (follower.py). Timing only, never safety.
        self._controller_behind = False
        self.shutdown_deadline_ms: int | None = None  # when a graceful shutdown gives up
        self.shutdown_outcome: str | None = None  # "completed" or "timed_out" once finished
        self.role: Role = self._initial_role()
        self.open_leader: Leader | None = None  # the Leader role until it is closed

    # -- read-only views ------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self.config.node_id

    @property
    def epoch(self) -> int:
        return self.role.epoch

    @property
    def leader_id(self) -> int:
        match self.role:
            case Leader() | Resigned():
                return self.node_id
            case Follower(leader_id=leader_id) | Prospective(leader_id=leader_id):
                return leader_id
            case _:
                return -1

    @property
    def voted_id(self) -> int:
        match self.role:
            case Unattached(voted_id=v) | Prospective(voted_id=v) | Follower(voted_id=v):
                return v
            case Candidate():
                return self.node_id
            case _:
                return -1

    @property
    def high_watermark(self) -> int:
        match self.role:
            case Resigned():
                return -1
            case _:
                return self.role.high_watermark

    @property
    def controller_behind(self) -> bool:
        """This voter's controller has a committed backlog to replay (set by the edge)."""
        return self._controller_behind

    @controller_behind.setter
    def controller_behind(self, behind: bool) -> None:
        """Once caught up, a fast-failover wait lengthened for the backlog is shortened
        back (`Follower.behind_penalty_ms`): a voter that finished replaying while it waited
        behind the others stands when it would have stood ready."""
        role = self.role
        caught_up = self._controller_behind and not behind
        if caught_up and isinstance(role, Follower) and role.behind_penalty_ms:
            earlier = role.fetch_deadline_ms - role.behind_penalty_ms
            role.fetch_deadline_ms = max(self.now_ms, earlier)
            role.behind_penalty_ms = 0
        self._controller_behind = behind

    @property
    def is_leader(self) -> bool:
        return isinstance(self.role, Leader)

    @property
    def state_name(self) -> str:
        match self.role:
            case Unattached(voted_id=v):
                return "voted" if v >= 0 else "unattached"
            case _:
                return type(self.role).__name__.lower()

    def own_voter(self) -> Voter:
        """This node on our listener: as the voter set lists it, else (a leader that
        removed itself, until it resigns) from its own listeners."""
        found = self.voter(self.node_id)
        if found is not None:
            return found
        listener = self.config.listener_name.upper()
        endpoint = next((e for e in self.local_voter_node().endpoints if e.name == listener), None)
        if endpoint is None:
            return Voter(node_id=self.node_id, host="", port=0)
        return Voter(node_id=self.node_id, host=endpoint.host, port=endpoint.port)

    def leader_voter(self) -> Voter | None:
        """The leader with its endpoint: from the voter set, else (an observer following a
        leader it knows only from a response) from the follower state."""
        leader = self.leader_id
        if leader < 0:
            return None
        if leader == self.node_id:
            return self.own_voter()
        found = self.voter(leader)
        role = self.role
        if found is None and isinstance(role, Follower) and role.leader_endpoint is not None:
            endpoint = role.leader_endpoint
            found = Voter(node_id=leader, host=endpoint.host, port=endpoint.port)
        return found

    def last_fetched_epoch(self) -> int:
        """KafkaMetadataLog.lastFetchedEpoch: the last batch's epoch, or the snapshot's."""
        latest = self.log.latest_epoch
        if latest is not None:
            return latest
        snapshot = self.log.latest_snapshot_id()
        return snapshot.epoch if snapshot is not None else 0

    def is_my_voter_key(self, voter_id: int, voter_directory_id: UUID) -> bool:
        """KafkaRaftClient.isValidVoterKey: a request naming a voter (v1+) names us."""
        if voter_id < 0:
            return True
        return voter_id == self.node_id and voter_directory_id in (
            NO_DIRECTORY_ID,
            self.config.directory_id,
        )

    def log_is_up_to_date(self, last_epoch: int, last_offset: int) -> bool:
        """(epoch, offset) of a candidate's log end >= ours (OffsetAndEpoch.compareTo)."""
        return (last_epoch, last_offset) >= (self.last_fetched_epoch(), self.log.end_offset)

    # -- start-up (QuorumState.initialize) ----------------------------------------------------

    def _initial_role(self) -> Role:
        p = self.persisted
        epoch = p.leader_epoch if p is not None and p.leader_epoch >= 0 else 0
        log_epoch = self.log.latest_epoch or 0
        if p is None or epoch < log_epoch:
            return Unattached(epoch=max(epoch, log_epoch))
        if p.leader_id == self.node_id and self.is_voter:
            return Resigned(epoch=epoch)
        if p.voted_id == self.node_id and self.is_voter:
            return Candidate(epoch=epoch, granted={self.node_id})
        endpoint = self.voter_endpoint(p.leader_id)
        if p.leader_id >= 0 and p.leader_id != self.node_id and endpoint is not None:
            return Follower(
                epoch=epoch,
                leader_id=p.leader_id,
                voted_id=p.voted_id,
                voted_directory_id=p.voted_directory_id,
                leader_endpoint=endpoint,
            )
        return Unattached(epoch=epoch, voted_id=p.voted_id, voted_directory_id=p.voted_directory_id)

    def persist_initial(self) -> list[Action]:
        """Kafka writes the initial election state; we do when it differs from the file."""
        wanted = self._election()
        p = self.persisted
        if p is not None and (p.leader_id, p.leader_epoch, p.voted_id) == (
            wanted.leader_id,
            wanted.leader_epoch,
            wanted.voted_id,
        ):
            return []
        return [wanted]

    def arm_initial_timers(self, now_ms: int) -> None:
        match self.role:
            case Unattached() as u:
                u.election_deadline_ms = self._election_deadline(now_ms)
            case Candidate() as c:
                c.election_deadline_ms = self._random_deadline(now_ms)
            case Resigned() as r:
                r.election_deadline_ms = self._random_deadline(now_ms)
                r.unacked = set(self.voter_ids) - {self.node_id}
            case Follower() as f:
                f.fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms
                f.behind_penalty_ms = 0
                f.update_voter_deadline_ms = now_ms + self.config.fetch_timeout_ms

    # -- timers -------------------------------------------------------------------------------

    def _random_deadline(self, now_ms: int) -> int:
        timeout = self.config.election_timeout_ms
        return now_ms + (timeout + self.rng.randrange(timeout) if timeout > 0 else 0)

    def _election_deadline(self, now_ms: int) -> int | None:
        return self._random_deadline(now_ms) if self.is_voter else None

    # -- graceful shutdown (KafkaRaftClient.GracefulShutdown) ---------------------------------

    def maybe_complete_shutdown(self, now_ms: int) -> bool:
        """KafkaRaftClient.maybeCompleteShutdown: a pending shutdown finishes when its timer
        expires ("timed_out"), or ("completed") once this node is an observer, the only
        voter, or knows a leader other than itself. Whether it is finished (it stays so)."""
        if not self.shutting_down:
            return False
        if self.shutdown_outcome is not None:
            return True
        if self.shutdown_deadline_ms is not None and now_ms >= self.shutdown_deadline_ms:
            self.shutdown_outcome = "timed_out"
            log.warning("Node %d: graceful shutdown timed out", self.node_id)
        elif (
            not self.is_voter
            or self.voter_ids == {self.node_id}
            or self.leader_id not in (-1, self.node_id)
        ):
            self.shutdown_outcome = "completed"
            log.info("Node %d: graceful shutdown completed", self.node_id)
        return self.shutdown_outcome is not None

    # -- transitions (QuorumState.transitionTo*) ----------------------------------------------

    def _election(self) -> PersistQuorumState:
        """The election state Kafka writes for the current role (ElectionState)."""
        match self.role:
            case Leader() | Resigned():
                return PersistQuorumState(
                    leader_id=self.node_id,
                    leader_epoch=self.epoch,
                    voted_id=-1,
                    kraft_version=int(self.kraft_version),
                )
            case Candidate():
                return PersistQuorumState(
                    leader_id=-1,
                    leader_epoch=self.epoch,
                    voted_id=self.node_id,
                    voted_directory_id=self.config.directory_id,
                    kraft_version=int(self.kraft_version),
                )
            case (
                Unattached(voted_id=v, voted_directory_id=d)
                | Prospective(voted_id=v, voted_directory_id=d)
                | Follower(voted_id=v, voted_directory_id=d)
            ):
                return PersistQuorumState(
                    leader_id=self.leader_id,
                    leader_epoch=self.epoch,
                    voted_id=v,
                    voted_directory_id=d,
                    kraft_version=int(self.kraft_version),
                )
        raise AssertionError(self.role)

    def _entered(self, *, durable: bool) -> list[Action]:
        self.reset_connections()
        actions: list[Action] = [self._election()] if durable else []
        if self.open_leader is not None and self.role is not self.open_leader:
            actions += abandoned_voter_changes(self.open_leader)
            self.open_leader = None
        actions.append(
            StateChanged(state=self.state_name, epoch=self.epoch, leader_id=self.leader_id)
        )
        log.info("Node %d is now %s in epoch %d", self.node_id, self.state_name, self.epoch)
        return actions

    def to_unattached(self, epoch: int, now_ms: int) -> list[Action]:
        old = self.role
        deadline: int | None
        match old:
            case _ if not self.is_voter:
                deadline = None
            case Candidate(election_deadline_ms=d) | Resigned(election_deadline_ms=d):
                deadline = d
            case Unattached(election_deadline_ms=d):
                deadline = d
            case Prospective(election_deadline_ms=d) if not self.vote_rejected(old):
                deadline = d
            case _:
                deadline = self._random_deadline(now_ms)
        voted, voted_dir = (
            (self.voted_id, _voted_dir(old)) if epoch == old.epoch else (-1, NO_DIRECTORY_ID)
        )
        if isinstance(old, Candidate) and epoch == old.epoch:
            voted_dir = self.config.directory_id
        self.role = Unattached(
            epoch=epoch,
            voted_id=voted,
            voted_directory_id=voted_dir,
            election_deadline_ms=deadline,
            high_watermark=self.high_watermark,
        )
        return self._entered(durable=True)

    def add_vote(self, candidate_id: int, directory_id: UUID, now_ms: int) -> list[Action]:
        """unattachedAddVotedState / prospectiveAddVotedState: record our vote, durably."""
        match self.role:
            case Unattached() as u:
                self.role = Unattached(
                    epoch=u.epoch,
                    voted_id=candidate_id,
                    voted_directory_id=directory_id,
                    election_deadline_ms=self._election_deadline(now_ms),
                    high_watermark=u.high_watermark,
                )
            case Prospective() as p:
                self.role = Prospective(
                    epoch=p.epoch,
                    leader_id=p.leader_id,
                    voted_id=candidate_id,
                    voted_directory_id=directory_id,
                    granted={self.node_id},
                    election_deadline_ms=self._random_deadline(now_ms),
                    high_watermark=p.high_watermark,
                )
            case _:
                return []
        # A vote keeps the requests in flight (Kafka does not reset connections here).
        return [
            self._election(),
            StateChanged(state=self.state_name, epoch=self.epoch, leader_id=self.leader_id),
        ]

    def voter_endpoint(self, node_id: int) -> VoterEndpoint | None:
        """Voter `node_id`'s endpoint on our listener in the current voter set; None if it
        is no voter or has no such listener."""
        known = self.voter(node_id)
        if known is None:
            return None
        listener = self.config.listener_name.upper()
        return VoterEndpoint(name=listener, host=known.host, port=known.port)

    def endpoint_in_response(self, entries: Iterable[Any], leader_id: int) -> VoterEndpoint | None:
        """The leader's endpoint from a response's NodeEndpoints (entries with node_id,
        host, port, all on the listener the request went to): Endpoints.fromVoteResponse
        and its siblings. None when the response names none for `leader_id`."""
        if leader_id < 0:
            return None
        name = self.config.listener_name.upper()
        return next(
            (
                VoterEndpoint(name=name, host=e.host, port=e.port)
                for e in entries
                if e.node_id == leader_id
            ),
            None,
        )

    def endpoint_in_request(self, entries: Iterable[Any]) -> VoterEndpoint | None:
        """The sender's endpoint on our listener from a request's LeaderEndpoints (entries
        with name, host, port): Endpoints.fromBeginQuorumEpochRequest and
        fromEndQuorumEpochRequest. None when it lists none for our listener (v0)."""
        name = self.config.listener_name.upper()
        return next(
            (
                VoterEndpoint(name=name, host=e.host, port=e.port)
                for e in entries
                if e.name.upper() == name
            ),
            None,
        )

    def to_follower(
        self, epoch: int, leader_id: int, now_ms: int, endpoint: VoterEndpoint | None = None
    ) -> list[Action]:
        """QuorumState.transitionToFollower: the leader must be a voter with an endpoint on
        our listener, or come with `endpoint` (a response's NodeEndpoints). The follower
        keeps that endpoint (FollowerState.leaderEndpoints), so it goes on fetching from a
        leader that a VotersRecord appended since removed (it leads until that commits)."""
        endpoint = endpoint or self.voter_endpoint(leader_id)
        if leader_id == self.node_id or endpoint is None:
            log.warning("Node %d ignores leader %d of epoch %d", self.node_id, leader_id, epoch)
            return []
        old = self.role
        same = epoch == old.epoch
        self.role = Follower(
            epoch=epoch,
            leader_id=leader_id,
            voted_id=self.voted_id if same else -1,
            voted_directory_id=_voted_dir(old) if same else NO_DIRECTORY_ID,
            high_watermark=self.high_watermark,
            fetch_deadline_ms=now_ms + self.config.fetch_timeout_ms,
            update_voter_deadline_ms=now_ms + self.config.fetch_timeout_ms,
            leader_endpoint=endpoint,
        )
        return self._entered(durable=True)

    def to_prospective(self, now_ms: int) -> list[Action]:
        old = self.role
        self.role = Prospective(
            epoch=old.epoch,
            leader_id=self.leader_id if not isinstance(old, Resigned) else -1,
            voted_id=self.voted_id,
            voted_directory_id=_voted_dir(old),
            granted={self.node_id},
            election_deadline_ms=self._random_deadline(now_ms),
            high_watermark=self.high_watermark,
            lost_fast_elections=(
                old.lost_fast_elections if isinstance(old, Follower) and old.leader_gone else -1
            ),
            leader_answers=isinstance(old, Follower) and old.leader_gone and old.leader_resigned,
        )
        actions = self._entered(durable=False)
        if self.vote_granted(self.role):
            actions += self.to_candidate(now_ms)
        return actions

    def to_candidate(self, now_ms: int) -> list[Action]:
        self.role = Candidate(
            epoch=self.epoch + 1,
            granted={self.node_id},
            election_deadline_ms=self._random_deadline(now_ms),
            high_watermark=self.high_watermark,
        )
        actions = self._entered(durable=True)
        if self.vote_granted(self.role):
            actions += self.to_leader(now_ms)
        return actions

    def to_leader(self, now_ms: int) -> list[Action]:
        """onBecomeLeader: persist, then the LeaderChangeMessage as the epoch's first record."""
        assert isinstance(self.role, Candidate)
        granted = frozenset(self.role.granted)
        epoch = self.role.epoch
        start = self.log.end_offset
        voter_ids = java_hash_order(self.voter_ids)
        self.role = Leader(
            epoch=epoch,
            epoch_start_offset=start,
            voters={
                v: ReplicaProgress(replica_id=v, directory_id=self.voter_directory_id(v))
                for v in voter_ids
            },
            granting=granted,
            check_quorum_deadline_ms=now_ms
            + int(self.config.fetch_timeout_ms * CHECK_QUORUM_TIMEOUT_FACTOR),
            begin_quorum_deadline_ms=now_ms,
        )
        if not self.kraft_version.is_reconfig_supported:
            # LeaderState: the static voters with the leader's own entry, kept in memory
            # for UpdateRaftVoter (Kafka's kraft.version upgrade state).
            self.role.volatile_voters = self.voter_set.update_voter_ignoring_directory_id(
                self.local_voter_node()
            )
        self.open_leader = self.role
        message = LeaderChangeMessage(
            version=0,
            leader_id=self.node_id,
            voters=[LeaderChangeMessage.Voter(voter_id=v) for v in voter_ids],
            granting_voters=[
                LeaderChangeMessage.Voter(voter_id=v) for v in java_hash_order(granted)
            ],
        )
        try:
            extra = self.start_of_epoch_records()
        except VoterSetError as e:  # Kafka throws IllegalStateException here
            log.error("Node %d: no start-of-epoch voter records: %s", self.node_id, e)
            extra = ()
        append = AppendLeaderChange(epoch=epoch, message=message, control_records=extra)
        self.feed_own_control_batch(start, epoch, append.values())
        actions = self._entered(durable=True)
        return actions + [BecameLeader(epoch=epoch, epoch_start_offset=start), append]

    def to_resigned(self, preferred: list[int], now_ms: int) -> list[Action]:
        self.role = Resigned(
            epoch=self.epoch,
            unacked=set(self.voter_ids) - {self.node_id},
            preferred_successors=preferred,
            election_deadline_ms=self._random_deadline(now_ms),
        )
        return self._entered(durable=False)

    def maybe_transition(
        self, leader_id: int, epoch: int, now_ms: int, endpoint: VoterEndpoint | None = None
    ) -> list[Action]:
        """KafkaRaftClient.maybeTransition: follow what a request or response says of the
        epoch and its leader. A claim inconsistent with the leader we know of the same epoch
        (Kafka throws) is logged and ignored."""
        if epoch == self.epoch and leader_id >= 0 and self.leader_id >= 0:
            if leader_id != self.leader_id:
                log.error(
                    "Node %d: leader %d of epoch %d is inconsistent with leader %d",
                    self.node_id,
                    leader_id,
                    epoch,
                    self.leader_id,
                )
            return []
        if epoch > self.epoch:
            if (
                leader_id >= 0
                and leader_id != self.node_id
                and (self.voter(leader_id) or endpoint is not None)
            ):
                return self.to_follower(epoch, leader_id, now_ms, endpoint)
            return self.to_unattached(epoch, now_ms)
        if epoch == self.epoch and leader_id >= 0 and self.leader_id < 0:
            return self.to_follower(epoch, leader_id, now_ms, endpoint)
        return []

    def handle_common_response(
        self,
        error: ErrorCode,
        leader_id: int,
        epoch: int,
        now_ms: int,
        endpoint: VoterEndpoint | None = None,
    ) -> tuple[bool | None, list[Action]]:
        """KafkaRaftClient.maybeHandleCommonResponse: what a response's epoch, leader and
        error say before its own handler runs; (None, actions) lets the handler go on.
        `endpoint`: the leader's, from the response's NodeEndpoints (None: the voter set's)."""
        if epoch > MAX_EPOCH:
            return False, []  # an epoch the quorum could never move past: not acted on
        if epoch < self.epoch or error == ErrorCode.UNKNOWN_LEADER_EPOCH:
            return True, []
        if epoch > self.epoch or error in (
            ErrorCode.FENCED_LEADER_EPOCH,
            ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ):
            return True, self.maybe_transition(leader_id, epoch, now_ms, endpoint)
        if epoch == self.epoch and leader_id >= 0 and self.leader_id < 0:
            actions = self.to_follower(epoch, leader_id, now_ms, endpoint)
            return (None if error == ErrorCode.NONE and actions else True), actions
        if error == ErrorCode.BROKER_NOT_AVAILABLE:
            return False, []
        if error == ErrorCode.INVALID_VOTER_KEY:
            return True, []
        if error == ErrorCode.INVALID_REQUEST:
            log.error("Node %d: a peer answered INVALID_REQUEST", self.node_id)
            return False, []
        return None, []

    # -- implemented by the parts of RaftCore ------------------------------------------------

    def pump(self, now_ms: int) -> list[Action]:
        """Run the current state's timers and sends until nothing changes."""
        raise NotImplementedError

    def fetch_from_any_voter(self, now_ms: int) -> list[Action]:
        """Fetch from a bootstrap server (else a voter) to find the leader
        (maybeSendFetchToAnyBootstrap)."""
        raise NotImplementedError

    def maybe_send_update_voter(self, role: Follower, now_ms: int) -> list[Action] | None:
        """A follower voter's UpdateRaftVoter, when due (reconfig.py); None: fetch."""
        return None

    def maybe_auto_join(self, role: Follower, now_ms: int) -> list[Action] | None:
        """An observer's AddRaftVoter or RemoveRaftVoter, when due (auto_join.py); None:
        fetch."""
        return None

    # -- elections --------------------------------------------------------------------------

    def vote_granted(self, role: Prospective | Candidate) -> bool:
        return len(role.granted & self.voter_ids) >= self.majority()

    def vote_rejected(self, role: Prospective | Candidate) -> bool:
        """EpochElection.isVoteRejected: a majority can no longer be reached."""
        possible = len(self.voter_ids) - len(role.rejected & self.voter_ids)
        return possible < self.majority()


class SplitMix64:
    """A small seeded generator (SplitMix64) for when the caller gives none: the core
    imports no `random`, and stays deterministic."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def randrange(self, stop: int) -> int:
        if stop <= 0:
            raise ValueError("empty range for randrange")
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return (z ^ (z >> 31)) % stop


def _voted_dir(role: Role) -> UUID:
    match role:
        case (
            Unattached(voted_directory_id=d)
            | Prospective(voted_directory_id=d)
            | Follower(voted_directory_id=d)
        ):
            return d
    return NO_DIRECTORY_ID


def java_hash_order(ids: frozenset[int] | set[int]) -> list[int]:
    """The iteration order of a java.util.HashMap/HashSet of these Integer ids (Kafka builds
    the LeaderChangeMessage voter lists from one): by bucket, for the table size Kafka's
    default capacity and load factor give."""
    capacity = 16
    while len(ids) > capacity * 3 // 4:
        capacity *= 2

    def bucket(i: int) -> int:
        h = i & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(ids, key=lambda i: (bucket(i), i))
