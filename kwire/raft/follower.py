"""The follower's side (Kafka's FollowerState and the fetch half of KafkaRaftClient):
BeginQuorumEpoch and EndQuorumEpoch requests, the Fetch loop, truncation, snapshot
download and the follower's high watermark.

Rules kept here:
- A follower has one Fetch (or FetchSnapshot) out at a time, to its leader, from its log
  end with the epoch of its last batch; the next one waits until the records of the last
  answer are appended and flushed (`on_flushed`) or a truncation is done (next `poll`).
- A voter that has had no successful fetch for fetch_timeout_ms becomes Prospective; an
  observer keeps fetching. While its leader's connection backs off after a failure, a
  follower (like an Unattached node) fetches from any bootstrap node to learn who leads:
  one of `controller.quorum.bootstrap.servers` (ids -2, -3, ..., sent to their endpoint)
  when configured, else one of the other voters (Kafka 4.3.1's RequestManager).
- An observer learns its leader from a Fetch answer's CurrentLeader and NodeEndpoints
  (KIP-853): it follows a leader absent from the voter set it knows (its log may hold no
  VotersRecord yet) at that endpoint. An answer without error from a bootstrap server
  comes from the leader itself, so its records are appended at once, as Kafka does.
- Fast failover (kwire's, `RaftConfig.fast_failover`): a refused or lost connection to the
  leader with a Fetch out, or the leader answering that it no longer leads its epoch (it
  resigned), means the leader is gone. At once the voter stops counting itself as hearing
  from the leader (so it grants other voters' pre-votes), and its fetch timer expires after
  a delay staggered by its rank among the other voters (by node id): rank * D + a random
  [0, D/2) ms, D = min(50, election_timeout_ms / 10), so the surviving voters stand one
  after the other rather than splitting the vote. A voter whose controller still has
  committed records to replay (the edge's `controller_behind`: a restarted standby) adds
  (voters - 1) * D, standing after the others, whose controllers can activate at once. A
  fast pre-vote round lost (a voter still heard from the leader: it had not noticed the
  death yet) keeps the leader counted gone: after the k-th such round the next comes after
  2^k * D + a random [0, D) ms, at most fetch_timeout_ms, where Kafka's follower waits a
  whole fetch timeout. A TIMEOUT, or a live but silent leader, still waits
  fetch_timeout_ms. Timing never decides safety: votes and epochs do.
- DivergingEpoch truncates to the end of that epoch in the leader's log (or ours, if
  earlier: ReplicatedLog.truncateToEndOffset), never below the high watermark. A SnapshotId
  starts a snapshot download in FetchSnapshot chunks, installed when complete.
- The follower's high watermark is min(the leader's, our log end), and never goes back.
- EndQuorumEpoch from our leader makes us stand after a backoff set by our place among its
  preferred successors (KafkaRaftClient.endEpochElectionBackoff): at once when first. With
  fast failover the places are one step D apart (as above) rather than Kafka's halved
  election backoffs, and a voter with committed records still to replay stands last.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotResponse
from kwire.raft import messages
from kwire.raft.election import ElectionPart
from kwire.raft.state import (
    MAX_EPOCH,
    METADATA_PARTITION,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    NO_DIRECTORY_ID,
    Action,
    AppendAsFollower,
    Follower,
    HighWatermarkAdvanced,
    InstallSnapshot,
    OutboundRequest,
    SendFailure,
    SendRequest,
    SnapshotFetch,
    StartSnapshotFetch,
    TruncateTo,
    WriteSnapshotChunk,
)
from kwire.raft.voter_set import VoterEndpoint


class FollowerPart(ElectionPart):
    # -- BeginQuorumEpoch / EndQuorumEpoch requests -------------------------------------------

    def handle_begin_quorum_epoch(
        self, request: BeginQuorumEpochRequest, now_ms: int
    ) -> tuple[BeginQuorumEpochResponse, list[Action]]:
        """KafkaRaftClient.handleBeginQuorumEpochRequest: follow the new leader. Errors:
        INCONSISTENT_CLUSTER_ID and INVALID_REQUEST (top level), FENCED_LEADER_EPOCH,
        INVALID_REQUEST (no leader id) and INVALID_VOTER_KEY in the partition."""
        self.now_ms = max(self.now_ms, now_ms)
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return BeginQuorumEpochResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID), []
        partition = messages.single_partition(request.topics)
        if partition is None:
            return BeginQuorumEpochResponse(error_code=ErrorCode.INVALID_REQUEST), []
        error = self._validate_voter_only(partition.leader_id, partition.leader_epoch)
        if error is not None:
            return self._begin_response(error), []
        endpoint = self.endpoint_in_request(request.leader_endpoints)
        actions = self.maybe_transition(
            partition.leader_id, partition.leader_epoch, now_ms, endpoint
        )
        if not self.is_my_voter_key(request.voter_id, partition.voter_directory_id):
            return self._begin_response(ErrorCode.INVALID_VOTER_KEY), actions + self.pump(now_ms)
        return self._begin_response(ErrorCode.NONE), actions + self.pump(now_ms)

    def handle_end_quorum_epoch(
        self, request: EndQuorumEpochRequest, now_ms: int
    ) -> tuple[EndQuorumEpochResponse, list[Action]]:
        """KafkaRaftClient.handleEndQuorumEpochRequest: our leader resigns; stand for
        election after a backoff given by our place among its preferred successors."""
        self.now_ms = max(self.now_ms, now_ms)
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return EndQuorumEpochResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID), []
        partition = messages.single_partition(request.topics)
        if partition is None:
            return EndQuorumEpochResponse(error_code=ErrorCode.INVALID_REQUEST), []
        error = self._validate_voter_only(partition.leader_id, partition.leader_epoch)
        if error is not None:
            return self._end_response(error), []
        endpoint = self.endpoint_in_request(request.leader_endpoints)
        actions = self.maybe_transition(
            partition.leader_id, partition.leader_epoch, now_ms, endpoint
        )
        role = self.role
        if isinstance(role, Follower) and role.leader_id == partition.leader_id:
            preferred: list[int | tuple[int, UUID]] = [
                (c.candidate_id, c.candidate_directory_id) for c in partition.preferred_candidates
            ] or list(partition.preferred_successors)
            penalty = 0
            if self.config.fast_failover:
                backoff = self.fast_end_epoch_backoff(preferred)
                if self.controller_behind:  # (the places it stands back for its backlog)
                    position, total = self._preferred_position(preferred)
                    penalty = (max(position, total) - position) * self.fast_failover_step_ms()
            else:
                backoff = self.end_epoch_election_backoff(preferred)
            role.fetch_deadline_ms = now_ms + backoff
            role.behind_penalty_ms = min(penalty, backoff)
            if self.config.fast_failover:
                # kwire's: the leader said it is going, so we no longer hear from a leader
                # and grant the successor's pre-vote (Kafka's follower refuses it and
                # leaves the hand-over to the resigned leader's grant alone).
                role.has_fetched = False
        return self._end_response(ErrorCode.NONE), actions + self.pump(now_ms)

    def end_epoch_election_backoff(self, preferred: Sequence[int | tuple[int, UUID]]) -> int:
        """endEpochElectionBackoff / strictExponentialElectionBackoffMs (ms). `preferred`
        are ids (v0) or (id, directory id) (v1): we are the one whose id is ours and whose
        directory id is zero or ours."""
        position, total = self._preferred_position(preferred)
        backoff_max = self.config.election_backoff_max_ms
        if position == 0:
            return 0
        if position >= total:
            return backoff_max
        base = backoff_max >> (total - 1)
        return min(backoff_max, base << (position - 1))

    def fast_end_epoch_backoff(self, preferred: Sequence[int | tuple[int, UUID]]) -> int:
        """kwire's hand-over backoff (ms) with fast failover: the preferred successors
        stand one fast-failover step apart (leader_gone's stagger: position * D + a random
        [0, D/2)), the first at once, instead of Kafka's halving of the election backoff
        (500 ms for the second of three voters). A successor whose controller still has
        committed records to replay (`controller_behind`) stands after all of them: as
        leader it could not serve until its replay ends, so a ready one goes first."""
        position, total = self._preferred_position(preferred)
        if self.controller_behind:
            position = max(position, total)
        if position == 0:
            return 0
        step = self.fast_failover_step_ms()
        return min(
            position * step + self.rng.randrange(max(1, step // 2)), self.config.fetch_timeout_ms
        )

    def _preferred_position(self, preferred: Sequence[int | tuple[int, UUID]]) -> tuple[int, int]:
        """Our place among the preferred successors (their number if not named) and their
        number."""
        mine = (NO_DIRECTORY_ID, self.config.directory_id)
        keys = [(c, NO_DIRECTORY_ID) if isinstance(c, int) else c for c in preferred]
        position = next(
            (i for i, (c, d) in enumerate(keys) if c == self.node_id and d in mine), len(keys)
        )
        return position, len(keys)

    def _validate_voter_only(self, remote_id: int, epoch: int) -> ErrorCode | None:
        if epoch < self.epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if remote_id < 0 or epoch > MAX_EPOCH:
            return ErrorCode.INVALID_REQUEST
        return None

    def _begin_response(self, error: ErrorCode) -> BeginQuorumEpochResponse:
        return messages.begin_quorum_epoch_response(
            error, epoch=self.epoch, leader=self.leader_voter()
        )

    def _end_response(self, error: ErrorCode) -> EndQuorumEpochResponse:
        return messages.end_quorum_epoch_response(
            error, epoch=self.epoch, leader=self.leader_voter()
        )

    # -- the fetch loop -----------------------------------------------------------------------

    def poll_follower(self, now_ms: int) -> list[Action]:
        role = self.role
        assert isinstance(role, Follower)
        if self.shutting_down:
            return []  # pollFollowerAs*: a follower's shutdown completes at once
        if self.is_voter and now_ms >= role.fetch_deadline_ms:
            self._log(f"no fetch from leader {role.leader_id} succeeded in time")
            return self.to_prospective(now_ms)
        if role.awaiting_flush:
            return []
        if not self.is_voter:
            join = self.maybe_auto_join(role, now_ms)  # pollFollowerAsObserver
            if join is not None:
                return join
        if self.backing_off(role.leader_id, now_ms):
            return self.fetch_from_any_voter(now_ms)
        if self.is_voter:
            update = self.maybe_send_update_voter(role, now_ms)
            if update is not None:
                return update
        request = self._fetch_or_fetch_snapshot(role)
        if self.any_in_flight() or not self.ready(role.leader_id, type(request), now_ms):
            return []  # (a Fetch forgotten at the last transition may still be out)
        self.sent(role.leader_id, request)
        endpoint = role.leader_endpoint if self.voter(role.leader_id) is None else None
        return [SendRequest(destination=role.leader_id, request=request, endpoint=endpoint)]

    def fetch_from_any_voter(self, now_ms: int) -> list[Action]:
        """maybeSendFetchToAnyBootstrap: one Fetch at a time to a ready bootstrap node (a
        bootstrap server, else another voter), starting from a random one; answers from
        non-leaders name the leader they know."""
        if self.any_in_flight():
            return []
        nodes: list[tuple[int, VoterEndpoint | None]]
        if self.config.bootstrap_servers:
            nodes = [
                self.config.bootstrap_destination(i)
                for i in range(len(self.config.bootstrap_servers))
            ]
        else:
            me = self.node_id
            nodes = [(voter, None) for voter in self.voter_set.sorted_ids if voter != me]
        if not nodes:
            return []
        start = self.rng.randrange(len(nodes))
        for i in range(len(nodes)):
            destination, endpoint = nodes[(start + i) % len(nodes)]
            if self.ready(destination, FetchRequest, now_ms):
                request = self._fetch_request()
                self.sent(destination, request)
                return [SendRequest(destination=destination, request=request, endpoint=endpoint)]
        return []

    def _fetch_or_fetch_snapshot(self, role: Follower) -> OutboundRequest:
        if role.snapshot is None:
            return self._fetch_request()
        return messages.fetch_snapshot_request(
            cluster_id=self.config.cluster_id,
            replica_id=self.node_id,
            directory_id=self.config.directory_id,
            epoch=role.epoch,
            snapshot_id=role.snapshot.snapshot_id,
            position=role.snapshot.position,
            max_bytes=self.config.fetch_snapshot_max_bytes,
        )

    def _fetch_request(self) -> FetchRequest:
        return messages.fetch_request(
            cluster_id=self.config.cluster_id,
            replica_id=self.node_id,
            directory_id=self.config.directory_id,
            epoch=self.epoch,
            fetch_offset=self.log.end_offset,
            last_fetched_epoch=self.last_fetched_epoch(),
            high_watermark=self.high_watermark,
            max_wait_ms=self.config.fetch_max_wait_ms,
            max_bytes=self.config.fetch_max_bytes,
        )

    def on_fetch_failed(self, destination: int, failure: SendFailure, now_ms: int) -> None:
        """Fast failover: the leader's process is gone (refused or lost), so grant pre-votes
        from now on and expire the fetch timer after a short delay staggered by rank
        (module docstring) instead of fetch_timeout_ms."""
        role = self.role
        if (
            self.config.fast_failover
            and self.is_voter
            and isinstance(role, Follower)
            and destination == role.leader_id
            and failure in (SendFailure.CONNECTION_REFUSED, SendFailure.CONNECTION_LOST)
        ):
            role.leader_resigned = False  # (resigned or not, its process is gone now)
            self.leader_gone(role, now_ms)

    def _heard_from_leader(self, role: Follower, now_ms: int) -> None:
        """A fetch succeeded: the fetch timer restarts and the leader is alive."""
        role.fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms
        role.behind_penalty_ms = 0
        role.has_fetched = True
        role.leader_gone = False
        role.leader_resigned = False
        role.lost_fast_elections = 0

    # -- Fetch responses ----------------------------------------------------------------------

    def on_fetch_response(
        self, source: int, response: FetchResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleFetchResponse: (handled successfully, actions)."""
        if response.error_code != ErrorCode.NONE:
            return False, []
        if len(response.responses) != 1 or len(response.responses[0].partitions) != 1:
            return False, []
        topic = response.responses[0]
        data = topic.partitions[0]
        if (
            topic.topic_id != METADATA_TOPIC_ID and topic.topic != METADATA_TOPIC
        ) or data.partition_index != METADATA_PARTITION:
            return False, []
        error = messages.error_of(data.error_code)
        before = self.role
        if (
            self.config.fast_failover
            and self.is_voter
            and isinstance(before, Follower)
            and error == ErrorCode.NOT_LEADER_OR_FOLLOWER
            and source == before.leader_id
            and (data.current_leader.leader_id, data.current_leader.leader_epoch)
            == (before.leader_id, before.epoch)
        ):
            # Our leader says it no longer leads its epoch: it resigned (a graceful
            # shutdown); stand as after a lost connection rather than at the fetch timeout.
            before.leader_resigned = True
            self.leader_gone(before, now_ms)
        leader_id = data.current_leader.leader_id
        endpoint = self.endpoint_in_response(response.node_endpoints, leader_id)
        handled, actions = self.handle_common_response(
            error, leader_id, data.current_leader.leader_epoch, now_ms, endpoint
        )
        if handled is not None:
            if self.role is before and source != self.leader_id:
                self.backoff(source, now_ms)  # a non-leader that told us nothing new
            return handled, actions
        role = self.role
        # Only the leader answers a Fetch without error: a bootstrap server that did is it.
        if not isinstance(role, Follower) or (source != role.leader_id and source > -2):
            return True, actions
        if error != ErrorCode.NONE:
            return False, actions
        if data.diverging_epoch.epoch >= 0:
            if data.diverging_epoch.end_offset < 0:
                return False, actions  # a leader never names a negative end
            offset = self._truncation_offset(
                data.diverging_epoch.epoch, data.diverging_epoch.end_offset
            )
            if offset < role.high_watermark:
                self._log(f"leader asked to truncate to {offset}, below the high watermark")
                return False, actions
            actions.append(TruncateTo(offset=offset))
            self.truncate_control_records(offset)
            self.repoll = True
        elif data.snapshot_id.epoch >= 0 or data.snapshot_id.end_offset >= 0:
            if data.snapshot_id.epoch < 0 or data.snapshot_id.end_offset < 0:
                return False, actions
            snapshot_id = SnapshotId(data.snapshot_id.end_offset, data.snapshot_id.epoch)
            role.snapshot = SnapshotFetch(snapshot_id=snapshot_id)
            actions.append(StartSnapshotFetch(snapshot_id=snapshot_id))
        else:
            records = bytes(data.records or b"")
            if records:
                role.awaiting_flush = True
                role.pending_high_watermark = data.high_watermark
                actions.append(AppendAsFollower(records=records))
                self.feed_appended(records)
            else:
                actions += self.update_follower_high_watermark(role, data.high_watermark)
        self._heard_from_leader(role, now_ms)
        return True, actions

    def _truncation_offset(self, epoch: int, end_offset: int) -> int:
        """ReplicatedLog.truncateToEndOffset: the leader's end of `epoch`, or ours if
        earlier; a log holding no such epoch goes back to its start."""
        if epoch == 0:
            return min(end_offset, self.log.end_offset)
        found = self.log.end_offset_for_epoch(epoch)
        if found is None:
            return self.log.log_start_offset
        local_epoch, local_end = found
        return min(local_end, end_offset) if local_epoch == epoch else local_end

    def update_follower_high_watermark(self, role: Follower, leader_hw: int) -> list[Action]:
        if leader_hw < 0:
            return []
        new = min(leader_hw, self.log.end_offset)
        if new > role.high_watermark:
            role.high_watermark = new
            return [HighWatermarkAdvanced(offset=new)]
        return []

    def follower_flushed(self, role: Follower, end_offset: int) -> list[Action]:
        if not role.awaiting_flush:
            return []
        role.awaiting_flush = False
        hw, role.pending_high_watermark = role.pending_high_watermark, -1
        return self.update_follower_high_watermark(role, hw)

    # -- FetchSnapshot responses --------------------------------------------------------------

    def on_fetch_snapshot_response(
        self, source: int, response: FetchSnapshotResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleFetchSnapshotResponse: write the chunk; install the
        snapshot once its size is reached; start over if the leader lost it."""
        if response.error_code != ErrorCode.NONE:
            return False, []
        found = [
            p
            for t in response.topics
            if t.name == METADATA_TOPIC
            for p in t.partitions
            if p.index == METADATA_PARTITION
        ]
        if len(found) != 1:
            return False, []
        data = found[0]
        error = messages.error_of(data.error_code)
        handled, actions = self.handle_common_response(
            error, data.current_leader.leader_id, data.current_leader.leader_epoch, now_ms
        )
        if handled is not None:
            return handled, actions
        role = self.role
        if not isinstance(role, Follower) or role.snapshot is None:
            return True, actions
        if (
            error == ErrorCode.SNAPSHOT_NOT_FOUND
            or data.snapshot_id.end_offset < 0
            or data.snapshot_id.epoch < 0
        ):
            role.snapshot = None
            self._heard_from_leader(role, now_ms)
            return True, actions
        if error != ErrorCode.NONE:
            return False, actions
        fetching = role.snapshot
        got = SnapshotId(data.snapshot_id.end_offset, data.snapshot_id.epoch)
        if got != fetching.snapshot_id or data.position != fetching.position:
            self._log(f"unexpected snapshot chunk {got} at {data.position}; starting over")
            role.snapshot = None
            return False, actions
        chunk = bytes(data.unaligned_records or b"")
        if data.size <= 0 or fetching.position + len(chunk) > data.size:
            self._log(f"snapshot chunk past the size {data.size} of {got}; starting over")
            role.snapshot = None
            return False, actions
        if chunk:
            actions.append(
                WriteSnapshotChunk(snapshot_id=got, position=fetching.position, data=chunk)
            )
            _keep_first_batch(fetching.head, chunk)
            fetching.position += len(chunk)
        if fetching.position >= data.size:
            role.snapshot = None
            role.awaiting_flush = True
            role.pending_high_watermark = got.end_offset
            actions.append(InstallSnapshot(snapshot_id=got))
            self.feed_snapshot_head(got.end_offset, bytes(fetching.head))
        self._heard_from_leader(role, now_ms)
        return True, actions


_BATCH_LENGTH_END = 12  # base offset (8 bytes), then the batch length (4): the rest follows
_MAX_SNAPSHOT_HEAD = 1 << 20  # a header batch with the voters is far smaller


def _keep_first_batch(head: bytearray, chunk: bytes) -> None:
    """Collect a snapshot's first batch (header, KRaftVersion, Voters) from its chunks."""
    if len(head) >= _BATCH_LENGTH_END:
        length = int.from_bytes(head[8:12], "big", signed=True)
        needed = min(_BATCH_LENGTH_END + max(0, length), _MAX_SNAPSHOT_HEAD)
    else:
        needed = _BATCH_LENGTH_END
    take = chunk[: max(0, needed - len(head))]
    head += take
    if len(head) == _BATCH_LENGTH_END and len(take) < len(chunk):
        _keep_first_batch(head, chunk[len(take) :])
