"""Elections: Vote requests and responses, Prospective (pre-vote, KIP-996) and Candidate
(Kafka's KafkaRaftClient.handleVoteRequest/handleVoteResponse, ProspectiveState,
CandidateState, EpochElection and each state's canGrantVote).

Rules kept here:
- A Vote names our epoch or later: an older one is FENCED_LEADER_EPOCH; a later one first
  moves us to Unattached in that epoch, except a pre-vote, which never bumps an epoch.
- One vote per epoch, durable before it is answered; a candidate's log end (epoch, offset)
  must be at least ours. A pre-vote is granted to an up-to-date log unless we are a leader,
  or a follower that has fetched from its leader in this epoch.
- A Prospective node that wins a majority of pre-votes becomes Candidate in epoch + 1; a
  peer too old for PreVote (UNSUPPORTED_VERSION: Vote below v2) sends it there at once.
  Refused by a majority, or timed out, it goes back to following the leader it knew, else
  Unattached. A Candidate that wins a majority leads; one that times out goes Prospective.
"""

from __future__ import annotations

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft import messages
from kwire.raft.quorum import QuorumCore, log
from kwire.raft.state import (
    FAST_FAILOVER_MAX_DELAY_MS,
    MAX_EPOCH,
    NO_DIRECTORY_ID,
    Action,
    Candidate,
    Follower,
    Leader,
    Prospective,
    Resigned,
    SendFailure,
    SendRequest,
    Unattached,
)


class ElectionPart(QuorumCore):
    def handle_vote(self, request: VoteRequest, now_ms: int) -> tuple[VoteResponse, list[Action]]:
        """Answer a Vote (v0-v2) as KafkaRaftClient.handleVoteRequest. Top-level errors:
        INCONSISTENT_CLUSTER_ID, INVALID_REQUEST (not __cluster_metadata-0). Partition errors:
        INVALID_REQUEST (negative last offset/epoch, or a last epoch beyond the request's),
        FENCED_LEADER_EPOCH (an older epoch), INVALID_VOTER_KEY (meant for another node).
        The actions (PersistQuorumState first) must be carried out before answering."""
        self.now_ms = now_ms
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return VoteResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID), []
        partition = messages.single_partition(request.topics)
        if partition is None:
            return VoteResponse(error_code=ErrorCode.INVALID_REQUEST), []
        candidate = partition.replica_id
        epoch = partition.replica_epoch
        pre_vote = partition.pre_vote
        last_epoch, last_offset = partition.last_offset_epoch, partition.last_offset
        illegal_epoch = last_epoch > epoch if pre_vote else last_epoch >= epoch
        if last_offset < 0 or last_epoch < 0 or illegal_epoch or epoch > MAX_EPOCH:
            return self._vote_response(ErrorCode.INVALID_REQUEST, False), []
        if epoch < self.epoch:
            return self._vote_response(ErrorCode.FENCED_LEADER_EPOCH, False), []
        if candidate < 0:
            return self._vote_response(ErrorCode.INVALID_REQUEST, False), []
        actions: list[Action] = []
        if epoch > self.epoch:
            # A pre-vote too: the sender never bumps its own epoch for it, but one newer
            # than ours moves us to Unattached in it (KafkaRaftClientPreVoteTest
            # testHandlePreVoteRequestAsFollower).
            actions += self.to_unattached(epoch, now_ms)
        if not self.is_my_voter_key(request.voter_id, partition.voter_directory_id):
            return self._vote_response(ErrorCode.INVALID_VOTER_KEY, False), actions
        up_to_date = self.log_is_up_to_date(last_epoch, last_offset)
        granted = self._can_grant_vote(
            candidate, partition.replica_directory_id, up_to_date, pre_vote
        )
        if granted and not pre_vote and self.voted_id < 0:
            actions += self.add_vote(candidate, partition.replica_directory_id, now_ms)
        if not up_to_date:
            self._stand_first(now_ms)
        log_vote = "granted" if granted else "refused"
        kind = "pre-vote" if pre_vote else "vote"
        self._log(f"{kind} for {candidate} in epoch {epoch} {log_vote}")
        return self._vote_response(ErrorCode.NONE, granted), actions + self.pump(now_ms)

    def _can_grant_vote(
        self, candidate: int, directory_id: object, up_to_date: bool, pre_vote: bool
    ) -> bool:
        match self.role:
            case Leader():
                return False
            case Candidate() | Resigned():
                return pre_vote and up_to_date
            case Follower(has_fetched=has_fetched):
                return pre_vote and not has_fetched and up_to_date
            case (
                Unattached(voted_id=voted, voted_directory_id=voted_dir)
                | Prospective(voted_id=voted, voted_directory_id=voted_dir)
            ):
                if pre_vote:
                    return up_to_date
                if voted >= 0:
                    return voted == candidate and (voted_dir in (NO_DIRECTORY_ID, directory_id))
                if self.leader_id >= 0:
                    return False
                return up_to_date
        return False

    def _vote_response(self, error: ErrorCode, granted: bool) -> VoteResponse:
        return messages.vote_response(
            error, epoch=self.epoch, leader=self.leader_voter(), granted=granted
        )

    def _log(self, text: str) -> None:
        log.info("Node %d: %s", self.node_id, text)

    # -- Vote responses -----------------------------------------------------------------------

    def on_vote_response(
        self, source: int, response: VoteResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleVoteResponse: (handled successfully, actions)."""
        if response.error_code == ErrorCode.UNSUPPORTED_VERSION and isinstance(
            self.role, Prospective
        ):
            return True, self.to_candidate(now_ms)
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
        role = self.role
        if isinstance(role, Prospective | Candidate) and source in self.voter_ids:
            if partition.vote_granted and source not in role.rejected:
                role.granted.add(source)
                if self.vote_granted(role):
                    if isinstance(role, Prospective):
                        actions += self.to_candidate(now_ms)
                    else:
                        actions += self.to_leader(now_ms)
            elif not partition.vote_granted and source not in role.granted:
                role.rejected.add(source)
                if isinstance(role, Prospective) and (
                    self.vote_rejected(role) or self._fast_round_answered(role)
                ):
                    actions += self.prospective_lost(now_ms)
        return True, actions

    def _fast_round_answered(self, role: Prospective) -> bool:
        """A fast-failover pre-vote round that every voter but the dead leader answered
        without a majority is lost now rather than at its election deadline (1-2 s): a
        voter that refused may not have noticed the leader's death yet, and is asked again
        in the next round, shortly after (`leader_gone`). A leader that said it resigned is
        alive and grants pre-votes: the round waits for its answer too (without it, a
        refusal arriving first lost every round until the refusing voter's fetch timeout)."""
        if role.lost_fast_elections < 0:
            return False
        waiting = self.voter_ids - role.granted - role.rejected
        return not waiting if role.leader_answers else waiting <= {role.leader_id}

    def on_vote_failed(self, destination: int, failure: SendFailure, now_ms: int) -> list[Action]:
        """A pre-vote to the resigned leader a fast round waits for found its process gone
        (refused or lost): the round no longer waits for it, and is lost now if everyone
        else has answered without a majority."""
        role = self.role
        if (
            isinstance(role, Prospective)
            and role.leader_answers
            and destination == role.leader_id
            and failure in (SendFailure.CONNECTION_REFUSED, SendFailure.CONNECTION_LOST)
        ):
            role.leader_answers = False
            if self._fast_round_answered(role):
                return self.prospective_lost(now_ms)
        return []

    def on_vote_unsupported(self, now_ms: int) -> list[Action]:
        """A voter cannot take Vote v2 (no PreVote): a Prospective node stands at once."""
        if isinstance(self.role, Prospective):
            return self.to_candidate(now_ms)
        return []

    def prospective_lost(self, now_ms: int) -> list[Action]:
        """prospectiveTransitionAfterElectionLoss: back to the leader we knew, else
        Unattached. A lost fast-failover pre-vote (a voter that still followed the dead
        leader refused it, not yet knowing) keeps the leader counted gone: the next round
        comes after a short delay that doubles with each round lost, up to fetch_timeout_ms
        (`leader_gone`), rather than after a whole fetch timeout."""
        role = self.role
        assert isinstance(role, Prospective)
        if role.leader_id >= 0 and self.voter(role.leader_id) is not None:
            actions = self.to_follower(role.epoch, role.leader_id, now_ms)
            follower = self.role
            if role.lost_fast_elections >= 0 and isinstance(follower, Follower):
                follower.lost_fast_elections = role.lost_fast_elections + 1
                follower.leader_resigned = role.leader_answers
                self.leader_gone(follower, now_ms)
            return actions
        return self.to_unattached(role.epoch, now_ms)

    def fast_failover_step_ms(self) -> int:
        """D, the rank step of fast failover's staggered delays (follower.py): 50 ms, or a
        tenth of the election timeout if that is shorter (never below 2 ms)."""
        return max(2, min(FAST_FAILOVER_MAX_DELAY_MS, self.config.election_timeout_ms // 10))

    def leader_gone(self, role: Follower, now_ms: int) -> None:
        """Fast failover: grant pre-votes from now on, and stand after a delay staggered
        by rank among the other voters (follower.py's module docstring), after all of them
        while `controller_behind`, doubled for each fast round already lost, never later
        than the fetch timeout would."""
        config = self.config
        step = self.fast_failover_step_ms()
        others = sorted(self.voter_ids - {role.leader_id})
        rank = others.index(self.node_id) if self.node_id in others else 0
        delay = rank * step + self.rng.randrange(step // 2)
        penalty = len(others) * step if self.controller_behind else 0
        delay += penalty  # after every voter ready to activate at once
        if role.lost_fast_elections:
            delay = (step << role.lost_fast_elections) + self.rng.randrange(step)
            penalty = 0
        deadline = now_ms + min(delay, config.fetch_timeout_ms)
        if deadline < role.fetch_deadline_ms:
            role.fetch_deadline_ms = deadline
            role.behind_penalty_ms = min(penalty, deadline - now_ms)
        role.has_fetched = False
        role.leader_gone = True

    def _stand_first(self, now_ms: int) -> None:
        """Fast failover: a voter asked for its vote by a candidate whose log is behind its
        own, while its leader is gone, stands within half a step: that candidate cannot win
        this voter's vote, so waiting out our rank (or, for a standby with a backlog, every
        other voter) only delays the failover (seen: a survivor still replaying whose log was
        ahead waited 100 ms more after refusing the other). Pre-votes never bump the epoch:
        safety is unchanged."""
        role = self.role
        if isinstance(role, Follower) and role.leader_gone:
            soon = now_ms + self.rng.randrange(max(1, self.fast_failover_step_ms() // 2))
            if soon < role.fetch_deadline_ms:
                role.fetch_deadline_ms = soon
                role.behind_penalty_ms = 0  # (nothing left to take back)

    # -- polling ----------------------------------------------------------------------------

    def poll_nominee(self, now_ms: int) -> list[Action]:
        role = self.role
        assert isinstance(role, Prospective | Candidate)
        # Shutting down, a nominee finishes its election but never times it out
        # (pollCandidate / pollProspective): it waits to win, or for another leader.
        if now_ms >= role.election_deadline_ms and not self.shutting_down:
            if isinstance(role, Candidate):
                return self.to_prospective(now_ms)
            return self.prospective_lost(now_ms)
        if self.vote_rejected(role):
            return []
        last_epoch, end = self.last_fetched_epoch(), self.log.end_offset
        actions: list[Action] = []
        for voter in sorted(self.voter_ids - role.granted - role.rejected):
            if voter == self.node_id or not self.ready(voter, VoteRequest, now_ms):
                continue
            request = messages.vote_request(
                cluster_id=self.config.cluster_id,
                epoch=role.epoch,
                candidate_id=self.node_id,
                candidate_directory_id=self.config.directory_id,
                voter_id=voter,
                voter_directory_id=self.voter_directory_id(voter),
                last_epoch=last_epoch,
                last_offset=end,
                pre_vote=isinstance(role, Prospective),
            )
            self.sent(voter, request)
            actions.append(SendRequest(destination=voter, request=request))
        return actions

    def poll_unattached(self, now_ms: int) -> list[Action]:
        role = self.role
        assert isinstance(role, Unattached)
        deadline = role.election_deadline_ms
        if self.shutting_down and self.is_voter:
            return []  # pollUnattachedAsVoter: wait for the shutdown or an epoch bump
        if deadline is not None and now_ms >= deadline:
            return self.to_prospective(now_ms)
        return self.fetch_from_any_voter(now_ms)
