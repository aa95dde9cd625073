"""Vote handling, pre-vote, Prospective and Candidate, one core at a time (in the style of
KafkaRaftClientTest, KafkaRaftClientPreVoteTest and QuorumStateTest; expected values are
Kafka 4.3.1's)."""

from __future__ import annotations

import random
from uuid import UUID

import pytest
from test_raft_pump import CLUSTER, ListLog, config

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.fetch import FetchResponse
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.core import RaftCore
from kwire.raft.state import (
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    NO_DIRECTORY_ID,
    Action,
    AppendLeaderChange,
    PersistQuorumState,
    SendFailure,
    SendRequest,
    StateChanged,
)


def core(
    node_id: int = 1,
    *,
    entries: list[int] | None = None,
    persisted: QuorumStateData | None = None,
    voters: int = 3,
    seed: int = 0,
) -> RaftCore:
    raft = RaftCore(
        config(node_id, voters),
        ListLog(list(entries or [])),
        persisted=persisted,
        rng=random.Random(seed),
    )
    raft.start(0)
    return raft


def state(epoch: int, *, leader: int = -1, voted: int = -1) -> QuorumStateData:
    return QuorumStateData(leader_id=leader, leader_epoch=epoch, voted_id=voted)


def vote(
    candidate: int,
    epoch: int,
    *,
    last_epoch: int = 0,
    last_offset: int = 0,
    pre_vote: bool = False,
    voter_id: int = -1,
    cluster_id: str | None = CLUSTER,
    topic: str = METADATA_TOPIC,
    voter_directory_id: UUID = NO_DIRECTORY_ID,
) -> VoteRequest:
    return VoteRequest(
        cluster_id=cluster_id,
        voter_id=voter_id,
        topics=[
            VoteRequest.TopicData(
                topic_name=topic,
                partitions=[
                    VoteRequest.PartitionData(
                        replica_epoch=epoch,
                        replica_id=candidate,
                        last_offset_epoch=last_epoch,
                        last_offset=last_offset,
                        pre_vote=pre_vote,
                        voter_directory_id=voter_directory_id,
                    )
                ],
            )
        ],
    )


def answer(response: VoteResponse) -> tuple[ErrorCode, int, int, bool]:
    p = response.topics[0].partitions[0]
    return ErrorCode(p.error_code), p.leader_epoch, p.leader_id, p.vote_granted


def persisted(actions: list[Action]) -> list[PersistQuorumState]:
    return [a for a in actions if isinstance(a, PersistQuorumState)]


def sent(actions: list[Action]) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest)]


def granted_vote(voter: int, epoch: int, *, granted: bool = True, leader: int = -1) -> VoteResponse:
    return VoteResponse(
        topics=[
            VoteResponse.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    VoteResponse.PartitionData(
                        leader_id=leader, leader_epoch=epoch, vote_granted=granted
                    )
                ],
            )
        ]
    )


def prospective(
    node_id: int = 1, epoch: int = 2, leader: int = -1
) -> tuple[RaftCore, list[Action]]:
    raft = core(node_id, persisted=state(epoch, leader=leader))
    actions = raft.poll(raft.next_deadline_ms() if leader < 0 else 10_000)
    assert raft.state_name == "prospective"
    return raft, actions


# -- granting votes ---------------------------------------------------------------------------


def test_a_vote_is_granted_once_per_epoch_and_made_durable_before_the_answer() -> None:
    raft = core(persisted=state(1))
    response, actions = raft.handle_vote(vote(2, 2), now_ms=5)
    assert answer(response) == (ErrorCode.NONE, 2, -1, True)
    # Unattached in epoch 2 first, then the vote: both written before the answer goes.
    assert persisted(actions) == [
        PersistQuorumState(leader_id=-1, leader_epoch=2, voted_id=-1),
        PersistQuorumState(leader_id=-1, leader_epoch=2, voted_id=2),
    ]
    assert raft.state_name == "voted" and raft.voted_id == 2
    response, actions = raft.handle_vote(vote(3, 2), now_ms=6)
    assert answer(response) == (ErrorCode.NONE, 2, -1, False)
    assert persisted(actions) == []
    response, _ = raft.handle_vote(vote(2, 2), now_ms=7)  # the same candidate asks again
    assert answer(response) == (ErrorCode.NONE, 2, -1, True)


@pytest.mark.parametrize(
    ("name", "last_epoch", "last_offset", "granted"),
    [
        ("older last epoch, longer log", 1, 10, False),
        ("same last epoch, shorter log", 2, 2, False),
        ("same last epoch, same end", 2, 3, True),
        ("newer last epoch, shorter log", 3, 1, True),
    ],
)
def test_a_candidate_whose_log_is_behind_ours_is_refused(
    name: str, last_epoch: int, last_offset: int, granted: bool
) -> None:
    raft = core(entries=[1, 1, 2], persisted=state(3))
    response, _ = raft.handle_vote(vote(2, 4, last_epoch=last_epoch, last_offset=last_offset), 1)
    assert answer(response)[3] is granted, name


@pytest.mark.parametrize(
    ("name", "request_", "top_error", "partition_error"),
    [
        (
            "another cluster",
            vote(2, 5, cluster_id="other"),
            ErrorCode.INCONSISTENT_CLUSTER_ID,
            None,
        ),
        ("another topic", vote(2, 5, topic="other"), ErrorCode.INVALID_REQUEST, None),
        ("an older epoch", vote(2, 2), ErrorCode.NONE, ErrorCode.FENCED_LEADER_EPOCH),
        (
            "a last epoch not below the epoch",
            vote(2, 5, last_epoch=5),
            ErrorCode.NONE,
            ErrorCode.INVALID_REQUEST,
        ),
        (
            "a negative last offset",
            vote(2, 5, last_offset=-1),
            ErrorCode.NONE,
            ErrorCode.INVALID_REQUEST,
        ),
        (
            "meant for another voter",
            vote(2, 5, voter_id=3),
            ErrorCode.NONE,
            ErrorCode.INVALID_VOTER_KEY,
        ),
        (
            "meant for another directory of this voter",
            vote(2, 5, voter_id=1, voter_directory_id=UUID(int=5)),
            ErrorCode.NONE,
            ErrorCode.INVALID_VOTER_KEY,
        ),
    ],
)
def test_invalid_vote_requests_are_answered_with_kafkas_errors(
    name: str, request_: VoteRequest, top_error: ErrorCode, partition_error: ErrorCode | None
) -> None:
    raft = core(persisted=state(3))
    response, _ = raft.handle_vote(request_, 1)
    assert response.error_code == top_error, name
    if partition_error is None:
        assert response.topics == []
    else:
        assert answer(response)[0] == partition_error, name
        assert answer(response)[3] is False


def test_a_vote_answer_names_the_known_leader_and_its_endpoint() -> None:
    raft = core(persisted=state(3, leader=3))
    response, _ = raft.handle_vote(vote(2, 3), 1)
    assert answer(response) == (ErrorCode.NONE, 3, 3, False)  # a follower never votes
    assert [(e.node_id, e.host, e.port) for e in response.node_endpoints] == [
        (3, "127.0.0.1", 9093)
    ]


# -- pre-vote (KIP-996) -----------------------------------------------------------------------


def fetch_ok(leader: int, epoch: int, hw: int = 0) -> FetchResponse:
    data = FetchResponse.PartitionData(partition_index=0, high_watermark=hw, records=b"")
    data.current_leader = FetchResponse.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
    return FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(topic_id=METADATA_TOPIC_ID, partitions=[data])
        ]
    )


def test_a_follower_grants_pre_votes_until_it_has_fetched_from_its_leader() -> None:
    raft = RaftCore(config(1), ListLog(), persisted=state(2, leader=3))
    (fetch,) = sent(raft.start(0))
    response, actions = raft.handle_vote(vote(2, 2, pre_vote=True), 1)
    assert answer(response) == (ErrorCode.NONE, 2, 3, True)
    assert persisted(actions) == []  # a pre-vote is never recorded
    raft.on_response(3, fetch.request, fetch_ok(3, 2), 2)
    response, _ = raft.handle_vote(vote(2, 2, pre_vote=True), 3)
    assert answer(response) == (ErrorCode.NONE, 2, 3, False)
    assert raft.state_name == "follower"


def test_a_pre_vote_in_a_newer_epoch_moves_us_to_unattached_in_it() -> None:
    raft = core(persisted=state(2, leader=3))
    response, actions = raft.handle_vote(vote(2, 3, last_epoch=0, pre_vote=True), 1)
    assert answer(response) == (ErrorCode.NONE, 3, -1, True)
    assert persisted(actions) == [PersistQuorumState(leader_id=-1, leader_epoch=3, voted_id=-1)]
    assert raft.state_name == "unattached"


@pytest.mark.parametrize(
    ("role", "persisted_", "pre_vote_granted", "vote_granted"),
    [
        ("candidate", state(4, voted=1), True, False),
        ("resigned", state(4, leader=1), True, False),
        ("voted", state(4, voted=3), True, False),
    ],
)
def test_candidates_and_resigned_leaders_grant_pre_votes_only(
    role: str, persisted_: QuorumStateData, pre_vote_granted: bool, vote_granted: bool
) -> None:
    raft = core(persisted=persisted_)
    assert raft.state_name == role
    response, _ = raft.handle_vote(vote(2, 4, pre_vote=True), 1)
    assert answer(response)[3] is pre_vote_granted
    response, _ = raft.handle_vote(vote(2, 4), 1)
    assert answer(response)[3] is vote_granted


def test_a_leader_refuses_pre_votes_in_its_epoch() -> None:
    raft, actions = prospective()
    actions = raft.on_response(2, sent(actions)[0].request, granted_vote(2, 2), 1)
    (vote_to_2,) = sent(actions)
    raft.on_response(2, vote_to_2.request, granted_vote(2, 3), 2)
    assert raft.is_leader and raft.epoch == 3
    response, _ = raft.handle_vote(vote(2, 3, pre_vote=True, last_epoch=3, last_offset=9), 3)
    assert answer(response) == (ErrorCode.NONE, 3, 1, False)


# -- standing for election --------------------------------------------------------------------


def test_election_timeouts_are_random_in_t_to_2t() -> None:
    deadlines = {core(persisted=state(1), seed=seed).next_deadline_ms() for seed in range(40)}
    assert all(1000 <= d < 2000 for d in deadlines)
    assert len(deadlines) > 20


def test_prospective_asks_every_voter_for_a_pre_vote_in_its_own_epoch() -> None:
    raft, actions = prospective(epoch=2)
    requests = sent(actions)
    assert [r.destination for r in requests] == [2, 3]
    for r in requests:
        assert isinstance(r.request, VoteRequest)
        p = r.request.topics[0].partitions[0]
        assert (p.replica_epoch, p.replica_id, p.pre_vote, r.request.voter_id) == (
            2,
            1,
            True,
            r.destination,
        )
    assert raft.epoch == 2 and persisted(actions) == []


def test_a_majority_of_pre_votes_makes_a_candidate_then_a_majority_of_votes_a_leader() -> None:
    raft, actions = prospective(epoch=2)
    first = sent(actions)[0]
    actions = raft.on_response(2, first.request, granted_vote(2, 2), 1)
    assert raft.state_name == "candidate" and raft.epoch == 3
    assert persisted(actions) == [PersistQuorumState(leader_id=-1, leader_epoch=3, voted_id=1)]
    votes = sent(actions)
    assert all(isinstance(v.request, VoteRequest) for v in votes)
    assert [v.destination for v in votes] == [2]  # 3's pre-vote is still out
    actions = raft.on_response(2, votes[0].request, granted_vote(2, 3), 2)
    assert raft.is_leader and raft.epoch == 3
    kinds = [type(a) for a in actions if not isinstance(a, SendRequest)]
    assert kinds[:2] == [PersistQuorumState, StateChanged]
    change = next(a for a in actions if isinstance(a, AppendLeaderChange))
    assert [v.voter_id for v in change.message.voters] == [1, 2, 3]
    assert [v.voter_id for v in change.message.granting_voters] == [1, 2]


def test_a_voter_without_pre_vote_support_makes_a_plain_election() -> None:
    raft, actions = prospective(epoch=2)
    first = sent(actions)[0]
    actions = raft.on_send_failed(2, first.request, SendFailure.UNSUPPORTED_VERSION, 1)
    # Kafka 3.9 voters cannot take Vote v2: stand at once, as 3.9 does.
    assert raft.state_name == "candidate" and raft.epoch == 3
    plain = [s for s in sent(actions) if isinstance(s.request, VoteRequest)]
    assert plain and not any(s.request.topics[0].partitions[0].pre_vote for s in plain)


@pytest.mark.parametrize(("leader", "after"), [(3, "follower"), (-1, "unattached")])
def test_a_prospective_refused_by_a_majority_goes_back_without_bumping_the_epoch(
    leader: int, after: str
) -> None:
    raft, actions = prospective(epoch=2, leader=leader)
    requests = {s.destination: s.request for s in sent(actions)}
    for voter in (2, 3):
        if voter in requests:
            raft.on_response(
                voter, requests[voter], granted_vote(voter, 2, granted=False, leader=leader), 1
            )
    assert raft.state_name == after and raft.epoch == 2 and raft.leader_id == leader


def test_a_candidate_that_times_out_becomes_prospective_in_the_same_epoch() -> None:
    raft = core(persisted=state(4, voted=1))
    assert raft.state_name == "candidate"
    deadline = raft.next_deadline_ms()
    raft.poll(deadline - 1)
    assert raft.state_name == "candidate"
    actions = raft.poll(deadline)
    assert raft.state_name == "prospective" and raft.epoch == 4
    assert all(s.request.topics[0].partitions[0].pre_vote for s in sent(actions))  # type: ignore[union-attr]


def test_answers_to_requests_sent_before_a_transition_are_dropped() -> None:
    raft, actions = prospective(epoch=2)
    stale = sent(actions)[1]  # the pre-vote to 3
    raft.on_response(2, sent(actions)[0].request, granted_vote(2, 2), 1)
    assert raft.state_name == "candidate"
    # 3's answer to the pre-vote must not count as a vote for the candidate; it frees
    # the slot for the real Vote to 3 (never two Votes out to one voter).
    (vote_to_3,) = sent(raft.on_response(3, stale.request, granted_vote(3, 3), 2))
    assert raft.state_name == "candidate"
    assert vote_to_3.destination == 3
    assert not vote_to_3.request.topics[0].partitions[0].pre_vote  # type: ignore[union-attr]


def test_an_observer_answers_votes_like_kafka_but_never_stands() -> None:
    # KafkaRaftClientTest.testHandleVoteRequestAsObserver: granted and recorded; the
    # candidate counts only voters, so the answer cannot elect anyone.
    raft = core(7, persisted=state(2))
    response, actions = raft.handle_vote(vote(2, 3, last_epoch=2, last_offset=1), 1)
    assert answer(response) == (ErrorCode.NONE, 3, -1, True)
    assert persisted(actions)[-1] == PersistQuorumState(leader_id=-1, leader_epoch=3, voted_id=2)
    raft.poll(100_000)
    assert raft.state_name == "voted" and raft.epoch == 3
