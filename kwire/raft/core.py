"""KRaft consensus as a sans-IO state machine (KIP-595, KIP-996 pre-vote), for a static
quorum (kraft.version 0) or one whose voters live in the log (kraft.version 1, KIP-853,
membership.py), with the semantics of Kafka 4.3.1's KafkaRaftClient.

Theory of operation
-------------------
`RaftCore` never reads a clock, a socket or a disk. The caller passes `now_ms`, answers
its questions about the log through `LogView`, and carries out, synchronously and in
order, the actions every entry point returns (state.py lists them): persist the quorum
state, send a request to a voter, append or truncate, announce a new high watermark.

- Inbound requests (`handle_vote`, `handle_begin_quorum_epoch`, `handle_end_quorum_epoch`)
  return (response, actions); the actions are carried out before the response is sent, so
  a vote is durable before it is answered. `fetch`/`complete_fetch`, `fetch_snapshot`/
  `complete_fetch_snapshot` and `describe_quorum` serve replicas and clients.
- Requests this core sends (`SendRequest`) come back through `on_response` (with the same
  request object) or `on_send_failed`. Answers to requests sent before the last state
  transition are dropped, as Kafka's RequestManager does.
- `poll(now_ms)` runs whatever is due; `next_deadline_ms()` says when that is next. Every
  entry point also sends what its new state wants sent, so a caller that polls at the
  deadline and feeds every event in misses nothing.

The roles and their transitions are in quorum.py (QuorumState), elections in election.py,
the leader in leader.py, Fetch/FetchSnapshot serving in serving.py, the follower's fetch
loop in follower.py, DescribeQuorum in describe.py, the voter changes of KIP-853
(AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter; answers by ticket) in reconfig.py, and an
observer's auto-join (controller.quorum.auto.join.enable) in auto_join.py.
"""

from __future__ import annotations

from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
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
from kwire.raft.auto_join import AutoJoinPart
from kwire.raft.describe import DescribePart
from kwire.raft.follower import FollowerPart
from kwire.raft.reconfig import ReconfigPart
from kwire.raft.serving import (
    BOOTSTRAP_SNAPSHOT_ID,
    FetchOutcome,
    FetchRead,
    FetchReady,
    FetchSnapshotOutcome,
    FetchSnapshotRead,
    FetchSnapshotReady,
    ServingPart,
)
from kwire.raft.state import (
    Action,
    Candidate,
    Follower,
    Leader,
    LogView,
    OutboundRequest,
    OutboundResponse,
    Prospective,
    RaftConfig,
    Resigned,
    SendFailure,
    StateChanged,
    Unattached,
)

__all__ = [
    "BOOTSTRAP_SNAPSHOT_ID",
    "NO_DEADLINE",
    "FetchOutcome",
    "FetchRead",
    "FetchReady",
    "FetchSnapshotOutcome",
    "FetchSnapshotRead",
    "FetchSnapshotReady",
    "LogView",
    "RaftConfig",
    "RaftCore",
    "SnapshotId",
]

NO_DEADLINE = 2**62  # next_deadline_ms() when nothing is timed (an idle observer)
_MAX_TRANSITIONS_PER_POLL = 8


class RaftCore(ReconfigPart, ServingPart, FollowerPart, DescribePart, AutoJoinPart):
    """One node's consensus: construct with the config, a LogView and what `quorum-state`
    held (`persisted`, None for none), then `start`. `rng` gives the election jitter
    (seeded by the caller for determinism; defaults to Random(node_id)).
    `control_records` (a `kwire.raft.voter_set.KRaftControlRecords` fed the newest
    snapshot and the log up to its end) gives a kraft.version 1 log's voter history;
    without it the voters are `RaftConfig.voter_set` (as the bootstrap checkpoint's) or
    the static `RaftConfig.voters`. ValueError if it was not read to the log's end."""

    def start(self, now_ms: int) -> list[Action]:
        """Begin in the state quorum-state gives (QuorumState.initialize): a sole voter
        elects itself at once; a restarted ex-leader comes back Resigned and sends
        EndQuorumEpoch; others arm their timers (KafkaRaftClient.initialize)."""
        self.now_ms = now_ms
        actions = self.persist_initial()
        self.arm_initial_timers(now_ms)
        actions.append(
            StateChanged(state=self.state_name, epoch=self.epoch, leader_id=self.leader_id)
        )
        only_voter = self.voter_ids == {self.node_id}
        match self.role:
            case Unattached() | Follower() | Resigned() if only_voter:
                actions += self.to_prospective(now_ms)
            case Candidate() as candidate if self.vote_granted(candidate):
                actions += self.to_leader(now_ms)
        return actions + self.pump(now_ms)

    def poll(self, now_ms: int) -> list[Action]:
        """Run whatever timers are due and send what the state wants sent."""
        self.now_ms = max(self.now_ms, now_ms)
        self.repoll = False
        return self.pump(now_ms)

    def pump(self, now_ms: int) -> list[Action]:
        # A finished graceful shutdown stops all activity (Kafka's client stops polling);
        # requests are still answered.
        if self.maybe_complete_shutdown(now_ms):
            return []
        actions: list[Action] = []
        for _ in range(_MAX_TRANSITIONS_PER_POLL):
            before = self.role
            match self.role:
                case Leader():
                    actions += self.poll_leader(now_ms)
                case Candidate() | Prospective():
                    actions += self.poll_nominee(now_ms)
                case Follower():
                    actions += [] if self.repoll else self.poll_follower(now_ms)
                case Unattached():
                    actions += [] if self.repoll else self.poll_unattached(now_ms)
                case Resigned():
                    actions += self.poll_resigned(now_ms)
            if self.role is before:
                break
        self.maybe_complete_shutdown(now_ms)
        return actions

    def next_deadline_ms(self) -> int:
        """The next time (absolute ms) `poll` has something to do."""
        if self.shutdown_outcome is not None:
            return NO_DEADLINE
        if self.repoll:
            return self.now_ms
        deadlines: list[int] = [
            c.backoff_until_ms
            for c in self.connections.values()
            if c.backoff_until_ms > self.now_ms
        ]
        match self.role:
            case Unattached(election_deadline_ms=d) if d is not None and not self.shutting_down:
                deadlines.append(d)
            case Prospective(election_deadline_ms=d) | Candidate(election_deadline_ms=d) if (
                not self.shutting_down
            ):
                deadlines.append(d)
            case Resigned(election_deadline_ms=d) if not self.shutting_down:
                deadlines.append(d)
            case Follower(fetch_deadline_ms=d) as follower if (
                self.is_voter and not self.shutting_down
            ):
                deadlines.append(d)
                # The update-voter period (a past one waits for the answer in flight).
                update = follower.update_voter_deadline_ms
                if update > self.now_ms and self.should_send_update_voter(follower):
                    deadlines.append(update)
            case Leader() as leader:
                deadlines.append(leader.begin_quorum_deadline_ms)
                if leader.resign_wait_until_ms is not None:
                    deadlines.append(leader.resign_wait_until_ms)
                if len(leader.voters) > 1:
                    deadlines.append(leader.check_quorum_deadline_ms)
                change = self.voter_change_deadline(leader)
                if change is not None:
                    deadlines.append(change)
        join = self.auto_join_deadline_ms()
        if join is not None:
            deadlines.append(join)
        if self.shutdown_deadline_ms is not None:
            deadlines.append(self.shutdown_deadline_ms)
        return min(deadlines, default=NO_DEADLINE)

    # -- the log's progress -------------------------------------------------------------------

    def on_flushed(self, end_offset: int, now_ms: int) -> list[Action]:
        """The local log is durable up to `end_offset` (exclusive)."""
        self.now_ms = max(self.now_ms, now_ms)
        self.flushed_end_offset = end_offset
        actions: list[Action] = []
        match self.role:
            case Leader() as leader:
                actions = self.leader_flushed(leader, end_offset, now_ms)
            case Follower() as follower:
                actions = self.follower_flushed(follower, end_offset)
        return actions + self.pump(now_ms)

    # -- answers to what we sent --------------------------------------------------------------

    def on_response(
        self,
        destination: int,
        request: OutboundRequest,
        response: OutboundResponse,
        now_ms: int,
    ) -> list[Action]:
        """The answer to a request this core asked to send (the same object)."""
        self.now_ms = max(self.now_ms, now_ms)
        if not self.take_answer(destination, request):
            return self.pump(now_ms)  # a forgotten request's slot is free again
        handled: bool
        actions: list[Action]
        match request, response:
            case VoteRequest(), VoteResponse():
                handled, actions = self.on_vote_response(destination, response, now_ms)
            case BeginQuorumEpochRequest(), BeginQuorumEpochResponse():
                handled, actions = self.on_begin_quorum_epoch_response(
                    destination, response, now_ms
                )
            case EndQuorumEpochRequest(), EndQuorumEpochResponse():
                handled, actions = self.on_end_quorum_epoch_response(destination, response, now_ms)
            case FetchRequest(), FetchResponse():
                handled, actions = self.on_fetch_response(destination, response, now_ms)
            case FetchSnapshotRequest(), FetchSnapshotResponse():
                handled, actions = self.on_fetch_snapshot_response(destination, response, now_ms)
            case ApiVersionsRequest(), ApiVersionsResponse():
                handled, actions = self.on_api_versions_response(destination, response, now_ms)
            case UpdateRaftVoterRequest(), UpdateRaftVoterResponse():
                handled, actions = self.on_update_voter_response(response, now_ms)
            case AddRaftVoterRequest(), AddRaftVoterResponse():
                handled, actions = self.on_voter_change_response(response, now_ms)
            case RemoveRaftVoterRequest(), RemoveRaftVoterResponse():
                handled, actions = self.on_voter_change_response(response, now_ms)
            case _:
                handled, actions = False, []
        if not handled:
            self.backoff(destination, now_ms)
        return actions + self.pump(now_ms)

    def on_send_failed(
        self,
        destination: int,
        request: OutboundRequest,
        failure: SendFailure,
        now_ms: int,
    ) -> list[Action]:
        """A request this core asked to send got no answer. UNSUPPORTED_VERSION for a
        pre-vote (the peer has no Vote v2) makes a Prospective node a Candidate at once;
        a refused or lost Fetch to the leader may fail over fast (follower.py)."""
        self.now_ms = max(self.now_ms, now_ms)
        if not self.take_answer(destination, request):
            return self.pump(now_ms)  # a forgotten request's slot is free again
        actions: list[Action] = []
        handled = failure == SendFailure.TIMEOUT
        if failure == SendFailure.UNSUPPORTED_VERSION and isinstance(request, VoteRequest):
            actions += self.on_vote_unsupported(now_ms)
            handled = bool(actions)  # Kafka counts it a handled answer: no backoff
        elif isinstance(request, VoteRequest):
            actions += self.on_vote_failed(destination, failure, now_ms)
        elif isinstance(request, FetchRequest | FetchSnapshotRequest):
            self.on_fetch_failed(destination, failure, now_ms)
        elif isinstance(request, ApiVersionsRequest):
            actions += self.on_api_versions_failed(destination, failure, now_ms)
        elif isinstance(request, UpdateRaftVoterRequest):
            # Kafka's channel answers it UNSUPPORTED_VERSION with no leader and epoch -1,
            # which maybeHandleCommonResponse counts handled (no backoff), changing nothing.
            handled = handled or failure == SendFailure.UNSUPPORTED_VERSION
        elif isinstance(request, AddRaftVoterRequest | RemoveRaftVoterRequest) and handled:
            self.restart_auto_join_period(now_ms)  # a REQUEST_TIMED_OUT answer, for Kafka
        if not handled:
            self.backoff(destination, now_ms)
        return actions + self.pump(now_ms)
