"""Voter changes in the core (KIP-853): AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter
answered as Kafka 4.3.1's KafkaRaftClient, AddVoterHandler, RemoveVoterHandler,
UpdateVoterHandler and LeaderState answer them (cases from KafkaRaftClientReconfigTest),
with the error messages Kafka sends."""

from __future__ import annotations

import random
from uuid import UUID

from test_raft_election import granted_vote
from test_raft_follower import response as fetch_answer
from test_raft_kraft_version import DIRS, dynamic, node, voters
from test_raft_pump import CLUSTER, ListLog

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)
from kwire.raft.core import FetchRead, RaftCore
from kwire.raft.state import (
    METADATA_TOPIC_ID,
    Action,
    AppendControlRecords,
    AppendLeaderChange,
    CompleteVoterChange,
    Follower,
    RaftConfig,
    SendFailure,
    SendRequest,
    Voter,
)
from kwire.raft.voter_changes import kafka_uuid
from kwire.raft.voter_set import ReplicaKey, VoterEndpoint, VoterSet
from kwire.records.control import ControlRecordType

TIMEOUT_MS = 2000  # controller.quorum.request.timeout.ms


class Leader:
    """Node 1 leading a dynamic quorum (its ListLog holds one epoch per record)."""

    def __init__(self, voter_set: VoterSet, **kw: object) -> None:
        self.log = ListLog()
        several = len(voter_set) > 1  # restarted as a Candidate of epoch 1, granted by 2
        self.raft = RaftCore(
            dynamic(1, voter_set, **kw),
            self.log,
            persisted=QuorumStateData(leader_epoch=1, voted_id=1) if several else None,
            rng=random.Random(0),
        )
        self.now = 0
        actions = self.raft.start(0)
        if several:
            vote = next(a for a in actions if isinstance(a, SendRequest) and a.destination == 2)
            actions += self.raft.on_response(2, vote.request, granted_vote(2, 1), 0)
        self.carry_out(actions)
        assert self.raft.is_leader
        self.now = 1  # Kafka counts a replica caught up only after time 0

    def carry_out(self, actions: list[Action]) -> list[Action]:
        """Append and flush what the core asks; return every action seen."""
        seen = list(actions)
        for action in actions:
            if isinstance(action, AppendLeaderChange | AppendControlRecords):
                assert not isinstance(action, AppendControlRecords) or (
                    action.base_offset == self.log.end_offset
                )
                self.log.entries += [action.epoch] * len(action.values())
                seen += self.carry_out(self.raft.on_flushed(self.log.end_offset, self.now))
        return seen

    def fetch(self, replica: int, offset: int, *, directory: UUID | None = None) -> list[Action]:
        request = FetchRequest(
            cluster_id=CLUSTER,
            replica_state=FetchRequest.ReplicaState(replica_id=replica),
            max_wait_ms=500,
            topics=[
                FetchRequest.FetchTopic(
                    topic_id=METADATA_TOPIC_ID,
                    partitions=[
                        FetchRequest.FetchPartition(
                            current_leader_epoch=self.raft.epoch,
                            fetch_offset=offset,
                            last_fetched_epoch=self.raft.epoch if offset else 0,
                            replica_directory_id=DIRS[replica] if directory is None else directory,
                        )
                    ],
                )
            ],
        )
        outcome = self.raft.fetch(request, self.now)
        assert isinstance(outcome, FetchRead)
        return self.carry_out(self.raft.complete_fetch(request, b"", self.now)[1])

    def caught_up(self, replica: int) -> None:
        """The replica fetches from the leader's end (an observer, or a voter)."""
        self.fetch(replica, self.log.end_offset)


def add_request(voter_id: int = 2, **kw: object) -> AddRaftVoterRequest:
    fields: dict[str, object] = {
        "cluster_id": CLUSTER,
        "timeout_ms": 30000,
        "voter_id": voter_id,
        "voter_directory_id": DIRS[voter_id],
        "listeners": [
            AddRaftVoterRequest.Listener(name="CONTROLLER", host="127.0.0.1", port=9090 + voter_id)
        ],
    }
    fields.update(kw)
    return AddRaftVoterRequest(**fields)  # type: ignore[arg-type]


def remove_request(voter_id: int, **kw: object) -> RemoveRaftVoterRequest:
    fields: dict[str, object] = {
        "cluster_id": CLUSTER,
        "voter_id": voter_id,
        "voter_directory_id": DIRS[voter_id],
    }
    fields.update(kw)
    return RemoveRaftVoterRequest(**fields)  # type: ignore[arg-type]


def kraft_versions(low: int, high: int) -> ApiVersionsResponse:
    return ApiVersionsResponse(
        supported_features=[
            ApiVersionsResponse.SupportedFeatureKey(
                name="kraft.version", min_version=low, max_version=high
            )
        ]
    )


def probe_of(actions: list[Action]) -> SendRequest:
    (probe,) = [
        a
        for a in actions
        if isinstance(a, SendRequest) and isinstance(a.request, ApiVersionsRequest)
    ]
    return probe


def completions(actions: list[Action]) -> dict[int, tuple[int, str | None]]:
    return {
        a.ticket: (a.response.error_code, a.response.error_message)
        for a in actions
        if isinstance(a, CompleteVoterChange)
    }


def appended_voters(actions: list[Action]) -> list[VotersRecord]:
    return [
        VotersRecord.decode(value, 0)
        for a in actions
        if isinstance(a, AppendControlRecords)
        for kind, value in a.values()
        if kind is ControlRecordType.KRAFT_VOTERS
    ]


def key_text(voter_id: int) -> str:
    return f"ReplicaKey(id={voter_id}, directoryId={kafka_uuid(DIRS[voter_id])})"


# -- AddRaftVoter -------------------------------------------------------------------------


def test_a_new_voter_is_probed_then_written_and_answered_once_the_voters_record_commits() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    response, actions = leader.raft.handle_add_raft_voter(add_request(), 7, 0)
    assert response is None
    probe = probe_of(actions)
    assert probe.destination == 2
    assert probe.endpoint == VoterEndpoint("CONTROLLER", "127.0.0.1", 9092)
    end = leader.log.end_offset
    seen = leader.carry_out(leader.raft.on_response(2, probe.request, kraft_versions(0, 1), 0))
    (record,) = appended_voters(seen)
    assert [v.voter_id for v in record.voters] == [1, 2]
    assert record.voters[1].voter_directory_id == DIRS[2]
    assert leader.raft.voter_ids == {1, 2}  # the new set rules once appended
    assert completions(seen) == {}  # not committed: node 2 has not fetched it
    seen = leader.fetch(2, end + 1)
    assert completions(seen) == {7: (ErrorCode.NONE, None)}


def test_ack_when_committed_false_answers_when_the_record_is_appended() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    _, actions = leader.raft.handle_add_raft_voter(add_request(ack_when_committed=False), 7, 0)
    seen = leader.carry_out(
        leader.raft.on_response(2, probe_of(actions).request, kraft_versions(0, 1), 0)
    )
    assert completions(seen) == {7: (ErrorCode.NONE, None)}
    response, _ = leader.raft.handle_remove_raft_voter(remove_request(2), 8, 0)
    assert response is not None and response.error_code == ErrorCode.REQUEST_TIMED_OUT
    assert completions(leader.fetch(2, leader.log.end_offset)) == {}  # answered only once


def test_a_voter_already_in_the_set_is_a_duplicate_voter() -> None:
    leader = Leader(voters(1))
    response, actions = leader.raft.handle_add_raft_voter(add_request(1), 7, 0)
    assert response is not None and response.error_code == ErrorCode.DUPLICATE_VOTER
    assert response.error_message == (
        f"The voter id for {key_text(1)} is already part of the set of voters [{key_text(1)}]."
    )
    assert not actions


def test_another_cluster_id_is_inconsistent() -> None:
    leader = Leader(voters(1))
    response, _ = leader.raft.handle_add_raft_voter(add_request(cluster_id="other"), 7, 0)
    assert response is not None
    assert response.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
    assert (
        response.error_message == f'The given id "other" doesn\'t match the cluster id "{CLUSTER}"'
    )


def test_a_request_without_a_directory_id_or_controller_endpoint_is_invalid() -> None:
    leader = Leader(voters(1))
    response, _ = leader.raft.handle_add_raft_voter(
        add_request(voter_directory_id=UUID(int=0)), 7, 0
    )
    assert response is not None and response.error_code == ErrorCode.INVALID_REQUEST
    assert response.error_message == "Add voter request didn't include a valid voter"
    other = [AddRaftVoterRequest.Listener(name="plain", host="h", port=1)]
    response, _ = leader.raft.handle_add_raft_voter(add_request(listeners=other), 7, 0)
    assert response is not None and response.error_code == ErrorCode.INVALID_REQUEST
    assert response.error_message == (
        "Add voter request didn't include the endpoint (Endpoints(endpoints="
        "{ListenerName(PLAIN)=h/<unresolved>:1})) for the default listener "
        "ListenerName(CONTROLLER)"
    )


def test_a_second_change_while_one_is_pending_times_out() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    assert leader.raft.handle_add_raft_voter(add_request(), 7, 0)[0] is None
    response, _ = leader.raft.handle_add_raft_voter(add_request(3), 8, 0)
    assert response is not None and response.error_code == ErrorCode.REQUEST_TIMED_OUT
    assert response.error_message == (
        "Request timed out waiting for leader to handle previous voter change request"
    )


def test_a_static_quorum_does_not_support_adding_voters() -> None:
    log = ListLog()
    config = RaftConfig(
        node_id=1, cluster_id=CLUSTER, voters=(Voter(node_id=1, host="127.0.0.1", port=9091),)
    )
    raft = RaftCore(config, log, rng=random.Random(0))
    actions = raft.start(0)
    change = next(a for a in actions if isinstance(a, AppendLeaderChange))
    log.entries += [change.epoch] * len(change.values())
    raft.on_flushed(log.end_offset, 0)
    response, _ = raft.handle_add_raft_voter(add_request(), 7, 0)
    assert response is not None and response.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert response.error_message == (
        "Cluster doesn't support adding voter because the kraft.version feature is 0"
    )
    removal, _ = raft.handle_remove_raft_voter(remove_request(1), 8, 0)
    assert removal is not None and removal.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert removal.error_message == (
        "Cluster doesn't support removing voter because the kraft.version feature is 0"
    )


def test_a_new_voter_that_cannot_run_the_finalized_kraft_version_is_refused() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    _, actions = leader.raft.handle_add_raft_voter(add_request(), 7, 0)
    seen = leader.raft.on_response(2, probe_of(actions).request, kraft_versions(0, 0), 0)
    assert completions(seen) == {
        7: (
            ErrorCode.INVALID_REQUEST,
            f"Aborted add voter operation for {key_text(2)} since the kraft.version range "
            "(min: 0, max: 0 doesn't support the finalized version 1",
        )
    }
    assert leader.raft.voter_ids == {1}


def test_a_new_voter_that_never_fetched_is_lagging_behind() -> None:
    leader = Leader(voters(1))
    _, actions = leader.raft.handle_add_raft_voter(add_request(), 7, 0)
    seen = leader.raft.on_response(2, probe_of(actions).request, kraft_versions(0, 1), 0)
    assert completions(seen) == {
        7: (
            ErrorCode.REQUEST_TIMED_OUT,
            f"Aborted add voter operation for {key_text(2)} since it is lagging behind",
        )
    }


def test_a_probe_that_cannot_connect_aborts_the_add() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    _, actions = leader.raft.handle_add_raft_voter(add_request(), 7, 0)
    probe = probe_of(actions)
    seen = leader.raft.on_send_failed(2, probe.request, SendFailure.CONNECTION_REFUSED, 0)
    assert completions(seen) == {
        7: (
            ErrorCode.REQUEST_TIMED_OUT,
            "Aborted add voter operation for since API_VERSIONS returned an error "
            "BROKER_NOT_AVAILABLE",
        )
    }


def test_a_change_not_committed_within_the_request_timeout_times_out() -> None:
    leader = Leader(voters(1))
    leader.caught_up(2)
    _, actions = leader.raft.handle_add_raft_voter(add_request(), 7, 0)
    leader.carry_out(leader.raft.on_response(2, probe_of(actions).request, kraft_versions(0, 1), 0))
    assert leader.raft.next_deadline_ms() <= TIMEOUT_MS
    assert completions(leader.raft.poll(TIMEOUT_MS - 1)) == {}
    assert completions(leader.raft.poll(TIMEOUT_MS)) == {
        7: (ErrorCode.REQUEST_TIMED_OUT, "The request timed out.")
    }


def test_a_leader_that_loses_its_leadership_answers_not_leader_or_follower() -> None:
    leader = Leader(voters(1, 2, 3))
    for voter in (2, 3):
        leader.caught_up(voter)
    leader.caught_up(4)
    _, actions = leader.raft.handle_add_raft_voter(add_request(4), 7, 0)
    seen = leader.raft.poll(4000)  # no fetch from a majority in 1.5 fetch timeouts: resigns
    assert not leader.raft.is_leader
    code, message = completions(seen)[7]
    assert code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert message == ErrorCode.NOT_LEADER_OR_FOLLOWER.message


def test_a_follower_answers_not_leader_or_follower_at_once() -> None:
    raft = RaftCore(dynamic(2, voters(1, 2)), ListLog(), rng=random.Random(0))
    raft.start(0)
    response, actions = raft.handle_add_raft_voter(add_request(3), 7, 0)
    assert response is not None and response.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert response.error_message == "" and not actions


# -- RemoveRaftVoter ----------------------------------------------------------------------


def test_removing_a_voter_writes_the_smaller_set_and_answers_once_committed() -> None:
    leader = Leader(voters(1, 2, 3))
    leader.caught_up(2)
    response, actions = leader.raft.handle_remove_raft_voter(remove_request(3), 9, 0)
    assert response is None
    seen = leader.carry_out(actions)
    (record,) = appended_voters(seen)
    assert sorted(v.voter_id for v in record.voters) == [1, 2]
    assert leader.raft.voter_ids == {1, 2}
    assert completions(seen) == {}
    assert completions(leader.fetch(2, leader.log.end_offset)) == {9: (ErrorCode.NONE, None)}


def test_removing_an_unknown_voter_or_the_last_one_is_voter_not_found() -> None:
    leader = Leader(voters(1))
    response, _ = leader.raft.handle_remove_raft_voter(remove_request(2), 9, 0)
    assert response is not None and response.error_code == ErrorCode.VOTER_NOT_FOUND
    assert response.error_message == (
        f"Cannot remove voter {key_text(2)} from the set of voters [{key_text(1)}]"
    )
    response, _ = leader.raft.handle_remove_raft_voter(remove_request(1), 9, 0)
    assert response is not None and response.error_code == ErrorCode.VOTER_NOT_FOUND
    assert response.error_message == (
        f"Cannot remove voter {key_text(1)} from the set of voters [{key_text(1)}]"
    )


def test_a_leader_that_removed_itself_resigns_once_the_removal_commits() -> None:
    leader = Leader(voters(1, 2, 3))
    leader.caught_up(2)
    leader.caught_up(3)
    _, actions = leader.raft.handle_remove_raft_voter(remove_request(1), 9, 0)
    leader.carry_out(actions)
    assert leader.raft.is_leader  # still leading the new set until it commits
    leader.fetch(2, leader.log.end_offset)
    seen = leader.fetch(3, leader.log.end_offset)
    assert completions(seen) == {9: (ErrorCode.NONE, None)}
    leader.raft.poll(1)
    assert leader.raft.state_name == "resigned"
    assert not leader.raft.is_voter


# -- UpdateRaftVoter ----------------------------------------------------------------------


def update_request(voter_id: int, port: int, epoch: int, **kw: object) -> UpdateRaftVoterRequest:
    fields: dict[str, object] = {
        "cluster_id": CLUSTER,
        "current_leader_epoch": epoch,
        "voter_id": voter_id,
        "voter_directory_id": DIRS[voter_id],
        "listeners": [
            UpdateRaftVoterRequest.Listener(name="CONTROLLER", host="10.0.0.9", port=port)
        ],
        "kraft_version_feature": UpdateRaftVoterRequest.KRaftVersionFeature(
            min_supported_version=0, max_supported_version=1
        ),
    }
    fields.update(kw)
    return UpdateRaftVoterRequest(**fields)  # type: ignore[arg-type]


def test_an_update_writes_the_voters_new_endpoint_and_names_the_leader() -> None:
    leader = Leader(voters(1, 2))
    leader.caught_up(2)
    response, actions = leader.raft.handle_update_raft_voter(
        update_request(2, 7777, leader.raft.epoch), 0
    )
    assert response.error_code == ErrorCode.NONE
    assert (response.current_leader.leader_id, response.current_leader.leader_epoch) == (
        1,
        leader.raft.epoch,
    )
    assert (response.current_leader.host, response.current_leader.port) == ("127.0.0.1", 9091)
    (record,) = appended_voters(actions)
    updated = next(v for v in record.voters if v.voter_id == 2)
    assert [(e.host, e.port) for e in updated.endpoints] == [("10.0.0.9", 7777)]


def test_updates_of_unknown_voters_stale_epochs_and_bad_ranges_are_refused() -> None:
    leader = Leader(voters(1, 2))
    leader.caught_up(2)
    epoch = leader.raft.epoch
    cases = {
        "unknown voter": (update_request(3, 1, epoch), ErrorCode.VOTER_NOT_FOUND),
        "older epoch": (update_request(2, 1, epoch - 1), ErrorCode.FENCED_LEADER_EPOCH),
        "newer epoch": (update_request(2, 1, epoch + 1), ErrorCode.UNKNOWN_LEADER_EPOCH),
        "reversed range": (
            update_request(
                2,
                1,
                epoch,
                kraft_version_feature=UpdateRaftVoterRequest.KRaftVersionFeature(
                    min_supported_version=1, max_supported_version=0
                ),
            ),
            ErrorCode.INVALID_REQUEST,
        ),
        "range without 1": (
            update_request(
                2,
                1,
                epoch,
                kraft_version_feature=UpdateRaftVoterRequest.KRaftVersionFeature(
                    min_supported_version=0, max_supported_version=0
                ),
            ),
            ErrorCode.INVALID_REQUEST,
        ),
    }
    for name, (request, expected) in cases.items():
        response, actions = leader.raft.handle_update_raft_voter(request, 0)
        assert response.error_code == expected, name
        assert not appended_voters(actions), name


def begin_epoch_1() -> BeginQuorumEpochRequest:
    return BeginQuorumEpochRequest(
        cluster_id=CLUSTER,
        voter_id=2,
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(
                        partition_index=0, voter_directory_id=DIRS[2], leader_id=1, leader_epoch=1
                    )
                ],
            )
        ],
    )


def test_a_follower_whose_endpoint_differs_from_the_voter_set_sends_update_raft_voter() -> None:
    moved = (VoterEndpoint("CONTROLLER", "127.0.0.1", 6002),)
    config = dynamic(2, voters(1, 2), local_endpoints=moved)
    raft = RaftCore(config, ListLog(), rng=random.Random(0))
    (first,) = [a for a in raft.start(0) if isinstance(a, SendRequest)]  # an unattached voter's
    _, actions = raft.handle_begin_quorum_epoch(begin_epoch_1(), 0)
    assert raft.state_name == "follower"
    actions += raft.on_send_failed(1, first.request, SendFailure.TIMEOUT, 0)
    (fetch,) = [a for a in actions if isinstance(a, SendRequest)]
    assert isinstance(fetch.request, FetchRequest)
    # Answered before the update period (one fetch timeout) ends: the next Fetch goes out.
    (fetch,) = [
        a
        for a in raft.on_response(1, fetch.request, fetch_answer(1, 1), 1500)
        if isinstance(a, SendRequest)
    ]
    assert raft.poll(2000) == []  # the period is over, but a Fetch is out to the leader
    sent = raft.on_response(1, fetch.request, fetch_answer(1, 1), 2000)
    (update,) = [a for a in sent if isinstance(a, SendRequest)]
    request = update.request
    assert isinstance(request, UpdateRaftVoterRequest) and update.destination == 1
    assert (request.voter_id, request.voter_directory_id, request.current_leader_epoch) == (
        2,
        DIRS[2],
        1,
    )
    assert [(e.name, e.host, e.port) for e in request.listeners] == [
        ("CONTROLLER", "127.0.0.1", 6002)
    ]
    answer = UpdateRaftVoterResponse(
        current_leader=UpdateRaftVoterResponse.CurrentLeader(leader_id=1, leader_epoch=1)
    )
    raft.on_response(1, request, answer, 3400)
    assert raft.state_name == "follower"
    raft.poll(4100)  # the last Fetch answer (2000) alone would have expired at 4000
    assert raft.state_name == "follower"


def test_a_follower_due_to_update_its_entry_is_polled_when_the_period_ends() -> None:
    # The driver sleeps until next_deadline_ms: the update period's end must be in it, not
    # only the later fetch deadline (otherwise the update waits for some other event).
    moved = (VoterEndpoint("CONTROLLER", "127.0.0.1", 6002),)
    raft = RaftCore(
        dynamic(2, voters(1, 2), local_endpoints=moved), ListLog(), rng=random.Random(0)
    )
    (first,) = [a for a in raft.start(0) if isinstance(a, SendRequest)]
    _, actions = raft.handle_begin_quorum_epoch(begin_epoch_1(), 0)
    actions += raft.on_send_failed(1, first.request, SendFailure.TIMEOUT, 0)
    (fetch,) = [a for a in actions if isinstance(a, SendRequest)]
    raft.on_response(1, fetch.request, fetch_answer(1, 1), 1500)
    assert raft.next_deadline_ms() == 2000  # the update period; the fetch timeout is 3500


def test_a_follower_whose_entry_matches_sends_no_update() -> None:
    raft = RaftCore(
        dynamic(2, VoterSet.from_nodes([node(1), node(2)])), ListLog(), rng=random.Random(0)
    )
    assert not raft.should_send_update_voter(Follower(epoch=1, leader_id=1))
    assert raft.voter_set.is_voter(ReplicaKey(2, DIRS[2]))


def test_a_standalone_leader_whose_observer_becomes_a_voter_keeps_leading() -> None:
    """Kafka counts every replica's fetch in the check-quorum timer (updateReplicaState), so
    a sole voter followed by an observer has a fresh timer when the observer becomes a voter."""
    leader = Leader(voters(1))
    leader.now = 10_000  # long after the election: an unrefreshed timer would have expired
    leader.caught_up(2)
    _, actions = leader.raft.handle_add_raft_voter(add_request(), 7, leader.now)
    leader.carry_out(
        leader.raft.on_response(2, probe_of(actions).request, kraft_versions(0, 1), leader.now)
    )
    leader.raft.poll(leader.now + 1)
    assert leader.raft.is_leader and leader.raft.voter_ids == {1, 2}
