"""Auto-join (Kafka 4.x, `controller.quorum.auto.join.enable`, KIP-853): an observer
controller adds itself to the voter set, with the semantics of Kafka 4.3.1's
KafkaRaftClient (pollFollowerAsObserver, shouldSendAddOrRemoveVoterRequest,
handleAddVoterResponse, handleRemoveVoterResponse) and FollowerState's update-voter-set
period.

Rules kept here:
- Only an observer that follows a leader (a Follower; an Unattached observer only looks
  for one) asks, at kraft.version 1, with `RaftConfig.auto_join` on (Kafka also needs
  canBecomeVoter, which every kwire node is: each is a controller), once its update-voter-set
  period is over: `controller.quorum.fetch.timeout.ms` after it began following, or after
  its last request or answer. A shutting-down observer asks nothing (follower.py returns
  first).
- What it asks: if the voter set holds its id (with another directory id, or it would be a
  voter: a disk replaced), RemoveRaftVoter for that stale voter; otherwise AddRaftVoter for
  itself: its id and directory id, its controller listeners, TimeoutMs
  `controller.quorum.request.timeout.ms` and AckWhenCommitted false (KIP-1186: the leader
  answers once the VotersRecord is appended).
- The request goes to the leader instead of the next Fetch, when the connection to the
  leader is free (else the observer waits, fetching nothing, as Kafka's maybeSendRequest
  does); the period restarts when it is sent.
- Answers: AddRaftVoter NONE, REQUEST_TIMED_OUT or DUPLICATE_VOTER, and RemoveRaftVoter
  NONE, REQUEST_TIMED_OUT or VOTER_NOT_FOUND restart the period; so does a request that
  got no answer in time (Kafka turns the timeout into a REQUEST_TIMED_OUT answer). Any
  other error is logged and backs the connection off (`controller.quorum.retry.backoff.ms`);
  the period being over, the request goes again after the backoff.
- The observer becomes a voter when the VotersRecord naming it reaches its log
  (membership.py); from then on it is a follower voter (UpdateRaftVoter, elections).
"""

from __future__ import annotations

import logging

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.remove_raft_voter import (
    RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
)
from kwire.raft.quorum import QuorumCore
from kwire.raft.state import Action, Follower, SendRequest

log = logging.getLogger(__name__)

# The answers after which the observer waits a whole period before asking again.
ADD_SETTLED = frozenset({ErrorCode.NONE, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.DUPLICATE_VOTER})
REMOVE_SETTLED = frozenset({ErrorCode.NONE, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.VOTER_NOT_FOUND})


class AutoJoinPart(QuorumCore):
    """The observer's half of auto-join (mixed into RaftCore)."""

    def should_auto_join(self) -> bool:
        """shouldSendAddOrRemoveVoterRequest without its timer: an observer at
        kraft.version 1 with auto-join on."""
        return (
            self.config.auto_join and not self.is_voter and self.kraft_version.is_reconfig_supported
        )

    def auto_join_deadline_ms(self) -> int | None:
        """When the observer's update-voter-set period ends, if it is still to come and the
        observer would then ask; None otherwise (an over period waits for an answer or the
        connection's backoff, whose own deadlines wake the caller)."""
        role = self.role
        if (
            isinstance(role, Follower)
            and not self.shutting_down
            and self.should_auto_join()
            and role.update_voter_deadline_ms > self.now_ms
        ):
            return role.update_voter_deadline_ms
        return None

    def maybe_auto_join(self, role: Follower, now_ms: int) -> list[Action] | None:
        """pollFollowerAsObserver: the AddRaftVoter or RemoveRaftVoter to send now ([] to
        wait for the leader's connection), or None to go on fetching."""
        if not self.should_auto_join() or now_ms < role.update_voter_deadline_ms:
            return None
        request: AddRaftVoterRequest | RemoveRaftVoterRequest
        stale = self.voter_set.node(self.node_id)
        if stale is not None:
            # Our id votes with another directory id (else we would be a voter).
            request = RemoveRaftVoterRequest(
                cluster_id=self.config.cluster_id,
                voter_id=stale.key.id,
                voter_directory_id=stale.key.directory_id,
            )
        else:
            request = AddRaftVoterRequest(
                cluster_id=self.config.cluster_id,
                timeout_ms=self.config.request_timeout_ms,
                voter_id=self.node_id,
                voter_directory_id=self.config.directory_id,
                listeners=[
                    AddRaftVoterRequest.Listener(name=e.name, host=e.host, port=e.port)
                    for e in self.local_voter_node().endpoints
                ],
                ack_when_committed=False,
            )
        if self.any_in_flight() or not self.ready(role.leader_id, type(request), now_ms):
            return []
        self.sent(role.leader_id, request)
        role.update_voter_deadline_ms = now_ms + self.config.fetch_timeout_ms
        if stale is not None:
            log.info(
                "Node %d: asks leader %d to remove voter %s",
                self.node_id,
                role.leader_id,
                stale.key,
            )
        else:
            log.info("Node %d: asks leader %d to add it as a voter", self.node_id, role.leader_id)
        endpoint = role.leader_endpoint if self.voter(role.leader_id) is None else None
        return [SendRequest(destination=role.leader_id, request=request, endpoint=endpoint)]

    def on_voter_change_response(
        self, response: AddRaftVoterResponse | RemoveRaftVoterResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """handleAddVoterResponse / handleRemoveVoterResponse: (handled, actions); an
        unexpected error is not handled, and the caller backs the connection off."""
        error = ErrorCode.of(response.error_code)
        settled = ADD_SETTLED if isinstance(response, AddRaftVoterResponse) else REMOVE_SETTLED
        if error in settled:
            self.restart_auto_join_period(now_ms)
            return True, []
        log.error(
            "Node %d: unexpected error %s in %s: %s",
            self.node_id,
            error.name,
            type(response).__name__,
            response.error_message,
        )
        return False, []

    def restart_auto_join_period(self, now_ms: int) -> None:
        """FollowerState.resetUpdateVoterSetPeriod."""
        role = self.role
        if isinstance(role, Follower):
            role.update_voter_deadline_ms = now_ms + self.config.fetch_timeout_ms
