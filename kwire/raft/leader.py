"""The leader's side (Kafka's LeaderState and ResignedState): the high watermark,
BeginQuorumEpoch, check quorum, resignation and EndQuorumEpoch.

Rules kept here:
- The high watermark is the largest offset a majority of voters hold durably (the leader
  counts with its flushed end offset, followers with their fetch offsets), and moves only
  past the epoch start offset: a leader must commit a record of its own epoch before it
  exposes earlier ones (LeaderState.maybeUpdateHighWatermark).
- BeginQuorumEpoch goes, every fetch_timeout_ms / 2, to each voter that has not fetched in
  that long (LeaderState.needToSendBeginQuorumRequests).
- Check quorum: a leader of several voters that has not had Fetch or FetchSnapshot from a
  majority (itself counted) within fetch_timeout_ms * 1.5 resigns
  (LeaderState.timeUntilCheckQuorumExpires).
- Resigning, it names the other voters by descending fetch offset as preferred successors
  (nonLeaderVotersByDescendingFetchOffset) and sends EndQuorumEpoch to every voter until each
  answers; after an election timeout it moves to Unattached in epoch + 1.
- The kraft.version upgrade (KAFKA-16538, Kafka 4.1+; `upgrade_kraft_version`): a leader of
  a kraft.version 0 quorum keeps the static voters in memory (`Leader.volatile_voters`, its
  own entry from its listeners), which every follower's UpdateRaftVoter fills in with its
  directory id, listeners and kraft.version range (reconfig.py). Once each voter supports
  kraft.version 1 the upgrade appends one control batch, KRaftVersionRecord(1) then the
  VotersRecord of those voters, and the quorum is dynamic from that append on
  (LeaderState.maybeAppendUpgradedKRaftVersion).
"""

from __future__ import annotations

from kwire.kraft_upgrade import KRaftUpgradeError, RefusalKind
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.raft import messages
from kwire.raft.election import ElectionPart
from kwire.raft.state import (
    CHECK_QUORUM_TIMEOUT_FACTOR,
    SHUTDOWN_TIMEOUT_MS,
    Action,
    AppendControlRecords,
    HighWatermarkAdvanced,
    Leader,
    Resigned,
    SendRequest,
)
from kwire.raft.voter_set import (
    KRAFT_VERSION_RECORD_VERSION,
    VOTERS_RECORD_VERSION,
    ZERO_UUID,
    KRaftVersion,
)
from kwire.records.control import ControlRecordType

KRAFT_VERSION_NAME = "kraft.version"


class LeaderPart(ElectionPart):
    # -- high watermark -----------------------------------------------------------------------

    def _maybe_advance_high_watermark(self, leader: Leader) -> list[Action]:
        offsets = sorted((p.end_offset for p in leader.voters.values()), reverse=True)
        candidate = offsets[len(leader.voters) // 2]
        if candidate > leader.epoch_start_offset and candidate > leader.high_watermark:
            leader.high_watermark = candidate
            return [HighWatermarkAdvanced(offset=candidate), *self.voter_changes_committed(leader)]
        return []

    def voter_changes_committed(self, leader: Leader) -> list[Action]:
        """Answers to voter changes the new high watermark commits (reconfig.py)."""
        return []

    def expire_voter_changes(self, leader: Leader, now_ms: int) -> list[Action]:
        """Voter changes whose time ran out (reconfig.py)."""
        return []

    def leader_flushed(self, leader: Leader, end_offset: int, now_ms: int) -> list[Action]:
        own = leader.voters.get(self.node_id)
        if own is not None:
            own.end_offset = end_offset
            own.last_fetch_ms = own.last_caught_up_ms = now_ms
        return self._maybe_advance_high_watermark(leader)

    # -- check quorum -------------------------------------------------------------------------

    def _check_quorum_timeout_ms(self) -> int:
        return int(self.config.fetch_timeout_ms * CHECK_QUORUM_TIMEOUT_FACTOR)

    def record_following_voter(self, leader: Leader, voter_id: int, now_ms: int) -> None:
        """updateCheckQuorumForFollowingVoter, for a Fetch or FetchSnapshot from any replica
        (an observer's too, as Kafka's updateReplicaState): a voter counts as fetched; once
        a majority (the leader counted) has fetched since the timer was last reset, reset
        it. A leader whose only other replicas are observers resets it at every fetch."""
        if voter_id in leader.voters and voter_id != self.node_id:
            leader.fetched_voters.add(voter_id)
        majority = len(leader.voters) // 2 + 1
        if self.node_id in leader.voters:
            majority -= 1
        if len(leader.fetched_voters) >= majority:
            leader.fetched_voters.clear()
            leader.check_quorum_deadline_ms = now_ms + self._check_quorum_timeout_ms()

    def voters_by_descending_fetch_offset(self, leader: Leader) -> list[int]:
        """nonLeaderVotersByDescendingFetchOffset: unknown offsets last, ties by id."""
        others = [p for v, p in leader.voters.items() if v != self.node_id]
        others.sort(key=lambda p: (p.end_offset < 0, -p.end_offset, p.replica_id))
        return [p.replica_id for p in others]

    @property
    def resigning(self) -> bool:
        """A leader shutting down that still leads while its first successor catches up
        (`successor_catching_up`): it takes no new writes."""
        return isinstance(self.role, Leader) and self.shutting_down

    def successor_catching_up(self, leader: Leader, now_ms: int) -> bool:
        """kwire's, with fast failover: a leader shutting down gracefully stays leader
        (serving Fetch, taking no writes: `resigning`) until the voter it names first has
        fetched its whole log, for at most one fast-failover step D. A successor missing the
        last batch would have its pre-vote refused by the resigned leader (its log behind)
        and need the other voters' answers, which a voter still replaying gives tens of
        milliseconds late. Kafka resigns at once. Staying leader longer is safe. A renounce
        (a fault, a hand-over) resigns at once: its uncommitted records are not pushed on."""
        if not self.config.fast_failover or not self.shutting_down:
            return False
        if leader.resign_wait_until_ms is None:
            leader.resign_wait_until_ms = now_ms + self.fast_failover_step_ms()
        if now_ms >= leader.resign_wait_until_ms:
            return False
        successors = self.voters_by_descending_fetch_offset(leader)
        if not successors:
            return False
        first = leader.voters[successors[0]].end_offset
        return 0 <= first < self.log.end_offset  # (one never heard from is not waited for)

    # -- polling ----------------------------------------------------------------------------

    def poll_leader(self, now_ms: int) -> list[Action]:
        leader = self.role
        assert isinstance(leader, Leader)
        expired = len(leader.voters) > 1 and now_ms >= leader.check_quorum_deadline_ms
        resigning = leader.resign_requested or self.shutting_down
        if expired or (resigning and not self.successor_catching_up(leader, now_ms)):
            if expired:
                self._log(
                    f"no Fetch from a majority of voters within {self._check_quorum_timeout_ms()}"
                    " ms: resigning"
                )
            return self.to_resigned(self.voters_by_descending_fetch_offset(leader), now_ms)
        actions: list[Action] = self.expire_voter_changes(leader, now_ms)
        if now_ms >= leader.begin_quorum_deadline_ms:
            interval = self.config.fetch_timeout_ms // 2
            me = self.own_voter()
            for voter_id, progress in leader.voters.items():
                if voter_id == self.node_id:
                    continue
                silent = progress.last_fetch_ms < 0 or now_ms - progress.last_fetch_ms >= interval
                if silent and self.ready(voter_id, BeginQuorumEpochRequest, now_ms):
                    request = messages.begin_quorum_epoch_request(
                        cluster_id=self.config.cluster_id,
                        epoch=leader.epoch,
                        leader=me,
                        voter_id=voter_id,
                        voter_directory_id=progress.directory_id,
                        listener_name=self.config.listener_name,
                    )
                    self.sent(voter_id, request)
                    actions.append(SendRequest(destination=voter_id, request=request))
            leader.begin_quorum_deadline_ms = now_ms + interval
        return actions

    def poll_resigned(self, now_ms: int) -> list[Action]:
        resigned = self.role
        assert isinstance(resigned, Resigned)
        me = self.own_voter()
        actions: list[Action] = []
        for voter_id in sorted(resigned.unacked):
            if self.ready(voter_id, EndQuorumEpochRequest, now_ms):
                request = messages.end_quorum_epoch_request(
                    cluster_id=self.config.cluster_id,
                    epoch=resigned.epoch,
                    leader=me,
                    preferred=[
                        (v, self.voter_directory_id(v)) for v in resigned.preferred_successors
                    ],
                )
                self.sent(voter_id, request)
                actions.append(SendRequest(destination=voter_id, request=request))
        if now_ms >= resigned.election_deadline_ms and not self.shutting_down:
            actions += self.to_unattached(resigned.epoch + 1, now_ms)
        return actions

    def resign(self, now_ms: int, *, timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> list[Action]:
        """Graceful shutdown (KafkaRaftClient.shutdown(timeout_ms); Kafka's driver gives
        5000 ms). A leader resigns at once (Resigned, EndQuorumEpoch to every voter with the
        others as preferred successors by fetch progress). From then on the node never
        stands for election and sends no Fetch: Resigned stays until another leader's
        epoch; an Unattached voter (voted or not) waits, answering Vote and
        BeginQuorumEpoch; a Candidate or Prospective one finishes its election without a
        timeout. `shutdown_complete` says when the caller may stop. A second call keeps
        the first deadline."""
        self.now_ms = max(self.now_ms, now_ms)
        if not self.shutting_down:
            self.shutting_down = True
            self.shutdown_deadline_ms = now_ms + max(0, timeout_ms)
            self._log(f"graceful shutdown begins (timeout {timeout_ms} ms)")
        if isinstance(self.role, Leader):
            self.role.resign_requested = True
        return self.pump(now_ms)

    def renounce(self, epoch: int, now_ms: int) -> list[Action]:
        """KafkaRaftClient.resign(epoch), which the controller calls when it renounces after
        a fault: the leader of `epoch` resigns as in `resign` (EndQuorumEpoch naming its
        successors) but does not shut down, so after its election timeout it stands again
        (a sole voter re-elects itself). Nothing happens for another epoch or when not leading."""
        self.now_ms = max(self.now_ms, now_ms)
        if isinstance(self.role, Leader) and self.role.epoch == epoch:
            self._log(f"resigning from epoch {epoch} at the controller's request")
            self.role.resign_requested = True
        return self.pump(now_ms)

    @property
    def shutdown_complete(self) -> bool:
        """The graceful shutdown begun by `resign` is finished, as Kafka's
        GracefulShutdown.isFinished after KafkaRaftClient.maybeCompleteShutdown: True once,
        at any entry point after `resign`, this node is an observer, the only voter, or
        knows a leader other than itself (a follower of the next leader), or once the
        shutdown timeout passed (`shutdown_timed_out`; the caller polls at
        `next_deadline_ms()`, which includes it). It stays True; from then on the core
        sends nothing (requests are still answered) and the process may stop."""
        return self.shutdown_outcome is not None

    @property
    def shutdown_timed_out(self) -> bool:
        """The graceful shutdown finished because its timeout passed, not because a remote
        leader was known (Kafka completes the shutdown future with a TimeoutException)."""
        return self.shutdown_outcome == "timed_out"

    @property
    def resignation_acknowledged(self) -> bool:
        """A Resigned node's EndQuorumEpoch has been answered by every other voter."""
        return isinstance(self.role, Resigned) and not self.role.unacked

    # -- the kraft.version upgrade ----------------------------------------------------------

    def upgrade_kraft_version(
        self, epoch: int, level: int, validate_only: bool, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.upgradeKRaftVersion then LeaderState.maybeAppendUpgradedKRaftVersion
        (Kafka 4.3.1): (whether an upgrade was appended, actions). Nothing to do when the
        log (or a pending upgrade) is at `level` already. Otherwise every voter of the
        in-memory set must have reported a kraft.version range holding `level` by
        UpdateRaftVoter; then, unless `validate_only`, one control batch at the log end:
        KRaftVersionRecord (v0) of `level`, then the VotersRecord (v0) of those voters
        (written only when it differs from the log's, which it always does from a static
        set). The new version and voters rule from that append. Raises KRaftUpgradeError (kwire.kraft_upgrade)."""
        self.now_ms = max(self.now_ms, now_ms)
        leader = self.role
        if not isinstance(leader, Leader):
            raise KRaftUpgradeError(
                RefusalKind.NOT_LEADER,
                "Upgrade kraft version failed because the replica is not the current leader",
            )
        if epoch < leader.epoch:
            raise KRaftUpgradeError(
                RefusalKind.NOT_LEADER,
                f"Upgrade kraft version failed because the given epoch {epoch} is stale. "
                f"Current leader epoch is {leader.epoch}",
            )
        if epoch > leader.epoch:
            raise KRaftUpgradeError(
                RefusalKind.INVALID_ARGUMENT,
                f"Attempt to append from epoch {epoch} which is larger than the current "
                f"epoch of {leader.epoch}",
            )
        if level not in (0, 1):
            raise KRaftUpgradeError(
                RefusalKind.INVALID_ARGUMENT, f"Unknown KRaft feature level: {level}"
            )
        new = KRaftVersion(level)
        persisted = self.kraft_version
        pending = leader.requested_kraft_version
        if pending is not None:
            if pending is new:
                return False, []
            raise KRaftUpgradeError(
                RefusalKind.INVALID,
                f"Invalid concurrent upgrade of {KRAFT_VERSION_NAME} from version "
                f"{pending.name} to {new.name}",
            )
        if persisted is new:
            return False, []
        if persisted > new:
            raise KRaftUpgradeError(
                RefusalKind.INVALID,
                f"Invalid upgrade of {KRAFT_VERSION_NAME} from version {persisted.name} to "
                f"{new.name} because the new version is a downgrade",
            )
        voters = leader.volatile_voters
        if voters is None:
            raise KRaftUpgradeError(
                RefusalKind.INVALID,
                f"Invalid upgrade of {KRAFT_VERSION_NAME} from version {persisted.name} to "
                f"{new.name}",
            )
        persisted_voters = self.voter_set
        if set(voters.voter_ids()) != set(persisted_voters.voter_ids()):
            raise KRaftUpgradeError(
                RefusalKind.ILLEGAL_STATE,
                f"Unable to update {KRAFT_VERSION_NAME} to {new.name} due to missing voters "
                f"{sorted(voters.voter_ids())} compared to {sorted(persisted_voters.voter_ids())}",
            )
        if not voters.supports_version(new):
            self._log(f"not all voters support kraft version {int(new)}")
            raise KRaftUpgradeError(
                RefusalKind.INVALID,
                f"Invalid upgrade of {KRAFT_VERSION_NAME} to {new.name} because not all of "
                "the voters support it",
            )
        if any(key.directory_id == ZERO_UUID for key in voters.voter_keys()):
            raise KRaftUpgradeError(
                RefusalKind.ILLEGAL_STATE,
                f"Directory id must be known for all of the voters: {voters}",
            )
        if validate_only:
            return True, []
        leader.volatile_voters = None
        leader.requested_kraft_version = new
        values = [
            (
                ControlRecordType.KRAFT_VERSION,
                KRaftVersionRecord(
                    version=KRAFT_VERSION_RECORD_VERSION, kraft_version=int(new)
                ).encode(0),
            )
        ]
        if voters != persisted_voters:
            values.append(
                (
                    ControlRecordType.KRAFT_VOTERS,
                    voters.to_voters_record(VOTERS_RECORD_VERSION).encode(0),
                )
            )
        offset = self.log.end_offset
        self.feed_own_control_batch(offset, leader.epoch, values)
        self.on_voters_appended(leader)
        self._log(f"appended {KRAFT_VERSION_NAME} {int(new)} and voters {voters} at {offset}")
        return True, [
            AppendControlRecords(
                epoch=leader.epoch, base_offset=offset, control_records=tuple(values)
            )
        ]

    def on_voters_appended(self, leader: Leader) -> None:
        """The leader's replica states follow a newly appended voter set (reconfig.py)."""

    # -- responses ----------------------------------------------------------------------------

    def on_begin_quorum_epoch_response(
        self, source: int, response: BeginQuorumEpochResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleBeginQuorumEpochResponse."""
        if response.error_code != ErrorCode.NONE:
            return False, []
        partition = messages.single_partition(response.topics)
        if partition is None:
            return False, []
        error = messages.error_of(partition.error_code)
        endpoint = self.endpoint_in_response(response.node_endpoints, partition.leader_id)
        handled, actions = self.handle_common_response(
            error, partition.leader_id, partition.leader_epoch, now_ms, endpoint
        )
        if handled is not None:
            return handled, actions
        return error == ErrorCode.NONE, actions

    def on_end_quorum_epoch_response(
        self, source: int, response: EndQuorumEpochResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleEndQuorumEpochResponse: an answer acknowledges."""
        if response.error_code != ErrorCode.NONE:
            return False, []
        partition = messages.single_partition(response.topics)
        if partition is None:
            return False, []
        error = messages.error_of(partition.error_code)
        endpoint = self.endpoint_in_response(response.node_endpoints, partition.leader_id)
        handled, actions = self.handle_common_response(
            error, partition.leader_id, partition.leader_epoch, now_ms, endpoint
        )
        if handled is not None:
            return handled, actions
        if error != ErrorCode.NONE:
            return False, actions
        if isinstance(self.role, Resigned):
            self.role.unacked.discard(source)
        return True, actions
