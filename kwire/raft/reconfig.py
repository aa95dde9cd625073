"""Changing the voters while the quorum runs (KIP-853): AddRaftVoter, RemoveRaftVoter and
UpdateRaftVoter, with the semantics of Kafka 4.3.1's KafkaRaftClient, AddVoterHandler,
RemoveVoterHandler, UpdateVoterHandler and LeaderState.

Theory of operation
-------------------
Only the leader changes the voter set, one change at a time: it appends a control batch
holding the new VotersRecord (`AppendControlRecords`), which rules from the moment it is
appended (membership.py) and is answered once committed. A request may therefore be
answered at once (`handle_*` return the response) or later: the caller passes a `ticket`
and `handle_add_raft_voter` / `handle_remove_raft_voter` return None for the response; a
`CompleteVoterChange(ticket, response)` action answers it later, exactly once, when:
- the VotersRecord commits (the high watermark passes it): NONE;
- AddRaftVoter's probe of the new voter (an ApiVersions request to the endpoint the
  request names) fails, shows a kraft.version range without the finalized version, or
  finds the new voter not caught up (it must have fetched as an observer in the last hour
  and have reached the leader's end once): REQUEST_TIMED_OUT or INVALID_REQUEST;
- the operation's timer (`controller.quorum.request.timeout.ms`) runs out: REQUEST_TIMED_OUT;
- this node stops leading (LeaderState.close): NOT_LEADER_OR_FOLLOWER.
AddRaftVoter v1 with AckWhenCommitted false is answered NONE when its VotersRecord is
appended, and the change still blocks others until it commits. A leader that removed
itself resigns once the removal commits. Checks run in Kafka's order: cluster id, leader
and epoch (NOT_LEADER_OR_FOLLOWER, or BROKER_NOT_AVAILABLE while shutting down), the
voter key, endpoints, a change pending (REQUEST_TIMED_OUT), no high watermark yet in this
epoch, kraft.version 0 (UNSUPPORTED_VERSION), an uncommitted VotersRecord, then the change
itself (DUPLICATE_VOTER, VOTER_NOT_FOUND for an unknown voter or the last one).

UpdateRaftVoter is answered at once: at kraft.version 1 it appends the updated
VotersRecord; at kraft.version 0 it updates the leader's in-memory copy of the static voters
(`Leader.volatile_voters`), which a kraft.version upgrade writes to the log once every voter
has reported (leader.py, `upgrade_kraft_version`). A follower voter sends UpdateRaftVoter to
its leader when its update-voter period (`controller.quorum.fetch.timeout.ms`, restarted
with each new leader) has passed: at kraft.version 1 while the voter set in the log does not
hold its listeners and kraft.version range, at kraft.version 0 until the leader of the
epoch has answered one NONE or UNSUPPORTED_VERSION (a Kafka 3.9 leader's answer), since
leaders keep that report only in memory (KafkaRaftClient.pollFollowerAsVoter,
shouldSendUpdateVoteRequest of Kafka 4.3.1).
"""

from __future__ import annotations

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.remove_raft_voter import (
    RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
)
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)
from kwire.raft.leader import LeaderPart
from kwire.raft.state import (
    Action,
    AppendControlRecords,
    CompleteVoterChange,
    Follower,
    Leader,
    PendingAddVoter,
    PendingRemoveVoter,
    ReplicaProgress,
    SendFailure,
    SendRequest,
)
from kwire.raft.voter_changes import (
    add_voter_response,
    endpoint_named,
    endpoints_text,
    optional_offset_text,
    remove_voter_response,
    replica_key_text,
    replica_keys_text,
    request_endpoints,
    request_voter_key,
    update_voter_response,
)
from kwire.raft.voter_set import (
    SUPPORTED_KRAFT_VERSIONS,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
)
from kwire.records.control import ControlRecordType

KRAFT_VERSION_FEATURE = "kraft.version"
CAUGHT_UP_WINDOW_MS = 3_600_000  # LeaderState.isReplicaCaughtUp: fetched within the hour
PROBE_SOFTWARE_NAME = "kwire"  # the ApiVersions probe of a voter being added
PROBE_SOFTWARE_VERSION = "0.1.0"

AddOutcome = tuple[AddRaftVoterResponse | None, list[Action]]
RemoveOutcome = tuple[RemoveRaftVoterResponse | None, list[Action]]


class ReconfigPart(LeaderPart):
    # -- AddRaftVoter -------------------------------------------------------------------------

    def handle_add_raft_voter(
        self, request: AddRaftVoterRequest, ticket: int, now_ms: int
    ) -> AddOutcome:
        """KafkaRaftClient.handleAddVoterRequest then AddVoterHandler.handleAddVoterRequest:
        (response, actions) when answered now, else (None, actions) and a later
        CompleteVoterChange for `ticket`."""
        self.now_ms = max(self.now_ms, now_ms)
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return AddRaftVoterResponse(
                error_code=ErrorCode.INCONSISTENT_CLUSTER_ID,
                error_message=self._cluster_id_text(request.cluster_id),
            ), []
        error = self._leader_only_error(self.epoch)
        if error is not None:
            return AddRaftVoterResponse(error_code=error), []
        key = request_voter_key(request.voter_id, request.voter_directory_id)
        if key is None or key.directory_id.int == 0:
            return AddRaftVoterResponse(
                error_code=ErrorCode.INVALID_REQUEST,
                error_message="Add voter request didn't include a valid voter",
            ), []
        endpoints = request_endpoints(request.listeners)
        endpoint = endpoint_named(endpoints, self.config.listener_name)
        if endpoint is None:
            return AddRaftVoterResponse(
                error_code=ErrorCode.INVALID_REQUEST,
                error_message=(
                    f"Add voter request didn't include the endpoint ({endpoints_text(endpoints)})"
                    f" for the default listener ListenerName({self.config.listener_name.upper()})"
                ),
            ), []
        leader = self.role
        assert isinstance(leader, Leader)
        actions = self.expire_voter_changes(leader, now_ms)
        refusal = self._change_refusal(leader, "adding")
        if refusal is not None:
            return add_voter_response(*refusal), actions
        voters = self.voter_set
        if key.id in voters:
            return add_voter_response(
                ErrorCode.DUPLICATE_VOTER,
                f"The voter id for {replica_key_text(key)} is already part of the set of "
                f"voters {replica_keys_text(voters.voter_keys())}.",
            ), actions
        if not self.ready(key.id, ApiVersionsRequest, now_ms):
            return add_voter_response(
                ErrorCode.REQUEST_TIMED_OUT,
                f"New voter {replica_key_text(key)} is not ready to receive requests",
            ), actions
        probe = ApiVersionsRequest(
            client_software_name=PROBE_SOFTWARE_NAME,
            client_software_version=PROBE_SOFTWARE_VERSION,
        )
        self.sent(key.id, probe)
        leader.add_voter = PendingAddVoter(
            ticket=ticket,
            voter=key,
            endpoints=endpoints,
            ack_when_committed=request.ack_when_committed,
            deadline_ms=now_ms + self.config.request_timeout_ms,
        )
        actions.append(SendRequest(destination=key.id, request=probe, endpoint=endpoint))
        return None, actions

    def on_api_versions_response(
        self, source: int, response: ApiVersionsResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleApiVersionsResponse / AddVoterHandler: the new voter's
        kraft.version range decides; it must be caught up; then the VotersRecord."""
        leader = self.role
        if not isinstance(leader, Leader):
            return True, []
        pending = leader.add_voter
        if pending is None or pending.last_offset is not None or pending.voter.id != source:
            return True, []
        error = ErrorCode.of(response.error_code)
        if error is not ErrorCode.NONE:
            return False, self._abort_add(
                leader,
                ErrorCode.REQUEST_TIMED_OUT,
                "Aborted add voter operation for since API_VERSIONS returned an error "
                f"{error.name}",
            )
        finalized = int(self.kraft_version)
        feature = next(
            (f for f in response.supported_features if f.name == KRAFT_VERSION_FEATURE), None
        )
        if feature is None or not feature.min_version <= finalized <= feature.max_version:
            shown = (
                "(min: 0, max: 0)"
                if feature is None
                else f"(min: {feature.min_version}, max: {feature.max_version}"
            )
            return True, self._abort_add(
                leader,
                ErrorCode.INVALID_REQUEST,
                f"Aborted add voter operation for {replica_key_text(pending.voter)} since the "
                f"{KRAFT_VERSION_FEATURE} range {shown} doesn't support the finalized "
                f"version {finalized}",
            )
        if not self._caught_up(leader, pending.voter, now_ms):
            return True, self._abort_add(
                leader,
                ErrorCode.REQUEST_TIMED_OUT,
                f"Aborted add voter operation for {replica_key_text(pending.voter)} since it is "
                "lagging behind",
            )
        node = VoterNode(
            pending.voter, pending.endpoints, (feature.min_version, feature.max_version)
        )
        new_voters = self.voter_set.add_voter(node)
        if new_voters is None:  # Kafka throws IllegalStateException; the checks exclude it
            return True, self._abort_add(leader, ErrorCode.UNKNOWN_SERVER_ERROR, None)
        offset, actions = self._append_voters(leader, new_voters)
        pending.last_offset = offset
        if not pending.ack_when_committed:
            pending.answered = True
            actions.append(
                CompleteVoterChange(
                    ticket=pending.ticket, response=add_voter_response(ErrorCode.NONE)
                )
            )
        return True, actions

    def on_api_versions_failed(
        self, source: int, failure: SendFailure, now_ms: int
    ) -> list[Action]:
        """A probe that got no answer reaches Kafka's handler as an error answer
        (KafkaNetworkChannel: UNSUPPORTED_VERSION, else BROKER_NOT_AVAILABLE)."""
        error = (
            ErrorCode.UNSUPPORTED_VERSION
            if failure is SendFailure.UNSUPPORTED_VERSION
            else ErrorCode.BROKER_NOT_AVAILABLE
        )
        return self.on_api_versions_response(source, ApiVersionsResponse(error_code=error), now_ms)[
            1
        ]

    def _caught_up(self, leader: Leader, key: ReplicaKey, now_ms: int) -> bool:
        progress = leader.observers.get((key.id, key.directory_id))
        return (
            progress is not None
            and progress.last_caught_up_ms > 0
            and progress.last_fetch_ms > 0
            and progress.last_fetch_ms > now_ms - CAUGHT_UP_WINDOW_MS
        )

    def _abort_add(self, leader: Leader, error: ErrorCode, message: str | None) -> list[Action]:
        pending, leader.add_voter = leader.add_voter, None
        if pending is None or pending.answered:
            return []
        return [
            CompleteVoterChange(ticket=pending.ticket, response=add_voter_response(error, message))
        ]

    # -- RemoveRaftVoter ----------------------------------------------------------------------

    def handle_remove_raft_voter(
        self, request: RemoveRaftVoterRequest, ticket: int, now_ms: int
    ) -> RemoveOutcome:
        """KafkaRaftClient.handleRemoveVoterRequest then RemoveVoterHandler: (response,
        actions) when answered now, else (None, actions) and a later CompleteVoterChange."""
        self.now_ms = max(self.now_ms, now_ms)
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return RemoveRaftVoterResponse(
                error_code=ErrorCode.INCONSISTENT_CLUSTER_ID,
                error_message=self._cluster_id_text(request.cluster_id),
            ), []
        error = self._leader_only_error(self.epoch)
        if error is not None:
            return RemoveRaftVoterResponse(error_code=error), []
        key = request_voter_key(request.voter_id, request.voter_directory_id)
        if key is None or key.directory_id.int == 0:
            return RemoveRaftVoterResponse(
                error_code=ErrorCode.INVALID_REQUEST,
                error_message="Remove voter request didn't include a valid voter",
            ), []
        leader = self.role
        assert isinstance(leader, Leader)
        actions = self.expire_voter_changes(leader, now_ms)
        refusal = self._change_refusal(leader, "removing")
        if refusal is not None:
            return remove_voter_response(*refusal), actions
        voters = self.voter_set
        new_voters = voters.remove_voter(key)
        if new_voters is None:
            return remove_voter_response(
                ErrorCode.VOTER_NOT_FOUND,
                f"Cannot remove voter {replica_key_text(key)} from the set of voters "
                f"{replica_keys_text(voters.voter_keys())}",
            ), actions
        offset, appended = self._append_voters(leader, new_voters)
        leader.remove_voter = PendingRemoveVoter(
            ticket=ticket, last_offset=offset, deadline_ms=now_ms + self.config.request_timeout_ms
        )
        return None, actions + appended

    # -- UpdateRaftVoter (the leader's side) --------------------------------------------------

    def handle_update_raft_voter(
        self, request: UpdateRaftVoterRequest, now_ms: int, *, listener_name: str | None = None
    ) -> tuple[UpdateRaftVoterResponse, list[Action]]:
        """KafkaRaftClient.handleUpdateVoterRequest then UpdateVoterHandler; answered at
        once. `listener_name` is the listener the request came by (its endpoint of the
        leader goes into CurrentLeader); default: the controller listener."""
        self.now_ms = max(self.now_ms, now_ms)
        listener = listener_name or self.config.listener_name

        def answer(error: ErrorCode) -> UpdateRaftVoterResponse:
            leader_id = self.leader_id
            endpoint = None
            if leader_id >= 0:
                endpoint = endpoint_named(self._listeners_of(leader_id), listener)
            return update_voter_response(
                error, leader_id=leader_id, epoch=self.epoch, leader_endpoint=endpoint
            )

        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return answer(ErrorCode.INCONSISTENT_CLUSTER_ID), []
        error = self._leader_only_error(request.current_leader_epoch)
        if error is not None:
            return answer(error), []
        key = request_voter_key(request.voter_id, request.voter_directory_id)
        endpoints = request_endpoints(request.listeners)
        feature = request.kraft_version_feature
        low, high = feature.min_supported_version, feature.max_supported_version
        if (
            key is None
            or key.directory_id.int == 0
            or endpoint_named(endpoints, self.config.listener_name) is None
            or low < 0
            or high < 0
            or high < low
        ):
            return answer(ErrorCode.INVALID_REQUEST), []
        leader = self.role
        assert isinstance(leader, Leader)
        actions = self.expire_voter_changes(leader, now_ms)
        if self._pending(leader) or leader.high_watermark < 0:
            return answer(ErrorCode.REQUEST_TIMED_OUT), actions
        kraft_version = self.kraft_version
        reconfig = kraft_version.is_reconfig_supported
        voters: VoterSet | None
        if reconfig:
            offset = self.kraft.last_voter_set_offset
            committed = offset is not None and offset < leader.high_watermark
            voters = self.voter_set if committed else None
        else:
            voters = leader.volatile_voters
        if voters is None:
            return answer(ErrorCode.REQUEST_TIMED_OUT), actions
        if not low <= int(kraft_version) <= high:
            return answer(ErrorCode.INVALID_REQUEST), actions
        node = VoterNode(key, endpoints, (low, high))
        updated = (
            voters.update_voter(node)
            if reconfig
            else voters.update_voter_ignoring_directory_id(node)
        )
        if updated is None:
            return answer(ErrorCode.VOTER_NOT_FOUND), actions
        if reconfig:
            actions += self._append_voters(leader, updated)[1]
        else:
            leader.volatile_voters = updated
        self.record_following_voter(leader, key.id, now_ms)
        return answer(ErrorCode.NONE), actions

    # -- the leader's bookkeeping -------------------------------------------------------------

    def _change_refusal(self, leader: Leader, verb: str) -> tuple[ErrorCode, str] | None:
        """The checks AddVoterHandler and RemoveVoterHandler share, in their order."""
        if self._pending(leader):
            return (
                ErrorCode.REQUEST_TIMED_OUT,
                "Request timed out waiting for leader to handle previous voter change request",
            )
        if leader.high_watermark < 0:
            return (
                ErrorCode.REQUEST_TIMED_OUT,
                "Request timed out waiting for leader to establish HWM and fence previous "
                "voter changes",
            )
        version = self.kraft_version
        if not version.is_reconfig_supported:
            return (
                ErrorCode.UNSUPPORTED_VERSION,
                f"Cluster doesn't support {verb} voter because the {KRAFT_VERSION_FEATURE} "
                f"feature is {int(version)}",
            )
        offset = self.kraft.last_voter_set_offset
        if offset is None or offset >= leader.high_watermark:
            return (
                ErrorCode.REQUEST_TIMED_OUT,
                "Request timed out waiting for voters to commit the latest voter change at "
                f"{optional_offset_text(offset)} with HWM {leader.high_watermark}",
            )
        return None

    @staticmethod
    def _pending(leader: Leader) -> bool:
        return leader.add_voter is not None or leader.remove_voter is not None

    def expire_voter_changes(self, leader: Leader, now_ms: int) -> list[Action]:
        """LeaderState.maybeExpirePendingOperation: REQUEST_TIMED_OUT (default message)."""
        actions: list[Action] = []
        if leader.add_voter is not None and now_ms >= leader.add_voter.deadline_ms:
            actions += self._abort_add(leader, ErrorCode.REQUEST_TIMED_OUT, None)
        removal = leader.remove_voter
        if removal is not None and now_ms >= removal.deadline_ms:
            leader.remove_voter = None
            actions.append(
                CompleteVoterChange(
                    ticket=removal.ticket,
                    response=remove_voter_response(ErrorCode.REQUEST_TIMED_OUT),
                )
            )
        return actions

    def voter_change_deadline(self, leader: Leader) -> int | None:
        deadlines = [
            change.deadline_ms
            for change in (leader.add_voter, leader.remove_voter)
            if change is not None
        ]
        return min(deadlines, default=None)

    def voter_changes_committed(self, leader: Leader) -> list[Action]:
        """AddVoterHandler / RemoveVoterHandler.highWatermarkUpdated: a committed
        VotersRecord answers its request; a leader no longer among the committed voters
        resigns."""
        actions: list[Action] = []
        hw = leader.high_watermark
        added = leader.add_voter
        if added is not None and added.last_offset is not None and hw > added.last_offset:
            leader.add_voter = None
            if not added.answered:
                actions.append(
                    CompleteVoterChange(
                        ticket=added.ticket, response=add_voter_response(ErrorCode.NONE)
                    )
                )
        removal = leader.remove_voter
        if removal is not None and hw > removal.last_offset:
            leader.remove_voter = None
            actions.append(
                CompleteVoterChange(
                    ticket=removal.ticket, response=remove_voter_response(ErrorCode.NONE)
                )
            )
            if not self.voter_set.is_voter(self.local_key):
                self._log(f"not in the committed voter set: resigning from epoch {leader.epoch}")
                leader.resign_requested = True
        return actions

    def _append_voters(self, leader: Leader, voters: VoterSet) -> tuple[int, list[Action]]:
        """LeaderState.appendVotersRecord: one control batch at the log end; the new set
        rules at once, and the leader's replica states follow it."""
        offset = self.log.end_offset
        values = ((ControlRecordType.KRAFT_VOTERS, voters.to_voters_record().encode(0)),)
        self.feed_own_control_batch(offset, leader.epoch, values)
        self.sync_leader_voters(leader)
        return offset, [
            AppendControlRecords(epoch=leader.epoch, base_offset=offset, control_records=values)
        ]

    def on_voters_appended(self, leader: Leader) -> None:
        self.sync_leader_voters(leader)

    def sync_leader_voters(self, leader: Leader) -> None:
        """LeaderState.updateVoterAndObserverStates: the replica states follow the newest
        voter set; a new voter keeps its progress as an observer, a removed one becomes an
        observer with its progress."""
        old = leader.voters
        voters: dict[int, ReplicaProgress] = {}
        for node in self.voter_set.voters:
            key = node.key
            progress = old.pop(key.id, None)
            observed = leader.observers.pop((key.id, key.directory_id), None)
            if progress is None or (
                progress.directory_id != key.directory_id and observed is not None
            ):
                progress = observed or ReplicaProgress(replica_id=key.id)
            progress.directory_id = key.directory_id
            voters[key.id] = progress
        for progress in old.values():
            leader.observers.setdefault((progress.replica_id, progress.directory_id), progress)
        leader.voters = voters

    def _leader_only_error(self, request_epoch: int) -> ErrorCode | None:
        """KafkaRaftClient.validateLeaderOnlyRequest."""
        if request_epoch < self.epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if request_epoch > self.epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.shutting_down:
            return ErrorCode.BROKER_NOT_AVAILABLE
        return None

    def _cluster_id_text(self, given: str) -> str:
        return f'The given id "{given}" doesn\'t match the cluster id "{self.config.cluster_id}"'

    def _listeners_of(self, leader_id: int) -> tuple[VoterEndpoint, ...]:
        if leader_id == self.node_id:
            return self.local_voter_node().endpoints
        return self.voter_set.endpoints(leader_id)

    # -- UpdateRaftVoter (the follower's side) ------------------------------------------------

    def should_send_update_voter(self, role: Follower) -> bool:
        """KafkaRaftClient.shouldSendUpdateVoteRequest (4.3.1): at kraft.version 1, the
        voter set in the log does not hold this node's listeners and kraft.version range;
        at kraft.version 0, the leader of this epoch has not yet taken our report (leaders
        keep it in memory only, for a later kraft.version upgrade). kwire's: not at
        kraft.version 0 without a directory id (a log directory formatted before Kafka 3.7
        has none), which the leader could only refuse as INVALID_REQUEST, logged each time."""
        if self.kraft_version.is_reconfig_supported:
            return self.voter_set.voter_node_needs_update(self.local_voter_node())
        return (
            self.config.update_voter_at_kraft_version_0
            and self.config.directory_id.int != 0
            and not role.has_updated_leader
        )

    def maybe_send_update_voter(self, role: Follower, now_ms: int) -> list[Action] | None:
        """pollFollowerAsVoter's update-voter period: the request to send now ([] to wait
        for the leader's connection), or None to go on fetching."""
        if now_ms < role.update_voter_deadline_ms:
            return None
        if not self.should_send_update_voter(role):
            role.update_voter_deadline_ms = now_ms + self.config.fetch_timeout_ms
            return None
        if self.any_in_flight() or not self.ready(role.leader_id, UpdateRaftVoterRequest, now_ms):
            return []
        local = self.local_voter_node()
        request = UpdateRaftVoterRequest(
            cluster_id=self.config.cluster_id,
            current_leader_epoch=role.epoch,
            voter_id=self.node_id,
            voter_directory_id=self.config.directory_id,
            listeners=[
                UpdateRaftVoterRequest.Listener(name=e.name, host=e.host, port=e.port)
                for e in local.endpoints
            ],
            kraft_version_feature=UpdateRaftVoterRequest.KRaftVersionFeature(
                min_supported_version=SUPPORTED_KRAFT_VERSIONS[0],
                max_supported_version=SUPPORTED_KRAFT_VERSIONS[1],
            ),
        )
        self.sent(role.leader_id, request)
        role.update_voter_deadline_ms = now_ms + self.config.fetch_timeout_ms
        endpoint = role.leader_endpoint if self.voter(role.leader_id) is None else None
        return [SendRequest(destination=role.leader_id, request=request, endpoint=endpoint)]

    def on_update_voter_response(
        self, response: UpdateRaftVoterResponse, now_ms: int
    ) -> tuple[bool, list[Action]]:
        """KafkaRaftClient.handleUpdateVoterResponse."""
        error = ErrorCode.of(response.error_code)
        current = response.current_leader
        handled, actions = self.handle_common_response(
            error, current.leader_id, current.leader_epoch, now_ms
        )
        if handled is not None:
            return handled, actions
        role = self.role
        if error in (ErrorCode.NONE, ErrorCode.UNSUPPORTED_VERSION) and isinstance(role, Follower):
            role.has_updated_leader = True
            role.fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms
            role.behind_penalty_ms = 0
            return True, actions
        return False, actions
