"""Auto-join in the core (kwire.raft.auto_join): an observer controller following a leader
asks it to add itself to the voter set, or to remove a stale voter with its id, as Kafka
4.3.1's KafkaRaftClient.pollFollowerAsObserver does (cases from KafkaRaftClientAutoJoinTest),
and handles each answer as handleAddVoterResponse / handleRemoveVoterResponse do."""

from __future__ import annotations

import random
from uuid import UUID

from test_raft_follower import response as fetch_answer
from test_raft_kraft_version import DIRS, dynamic, node, voters, voters_batch
from test_raft_pump import CLUSTER, ListLog

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.remove_raft_voter import (
    RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
)
from kwire.raft.core import RaftCore
from kwire.raft.state import Action, RaftConfig, SendFailure, SendRequest, Voter
from kwire.raft.voter_set import VoterEndpoint, VoterSet

FETCH_TIMEOUT_MS = 2000  # controller.quorum.fetch.timeout.ms: the update-voter-set period
REQUEST_TIMEOUT_MS = 2000  # controller.quorum.request.timeout.ms
OWN_ENDPOINT = VoterEndpoint("CONTROLLER", "127.0.0.1", 9093)


class Observer:
    """Node 3 following leader 1 in epoch 2 of a dynamic quorum whose voters are
    `voter_set` (3 not among them, or with another directory id)."""

    def __init__(self, voter_set: VoterSet, *, auto_join: bool = True) -> None:
        self.log = ListLog()
        self.raft = RaftCore(
            dynamic(3, voter_set, auto_join=auto_join, local_endpoints=(OWN_ENDPOINT,)),
            self.log,
            persisted=QuorumStateData(leader_id=1, leader_epoch=2),
            rng=random.Random(0),
        )
        assert not self.raft.is_voter
        (self.out,) = sent(self.raft.start(0))
        assert self.raft.state_name == "follower" and self.raft.leader_id == 1

    def answer(self, response: object, now_ms: int) -> SendRequest | None:
        """Answer what is out; return what the observer sends next (None: nothing)."""
        out = self.out
        actions = self.raft.on_response(out.destination, out.request, response, now_ms)  # type: ignore[arg-type]
        return self._next(actions)

    def fail(self, failure: SendFailure, now_ms: int) -> SendRequest | None:
        out = self.out
        return self._next(self.raft.on_send_failed(out.destination, out.request, failure, now_ms))

    def poll(self, now_ms: int) -> SendRequest | None:
        return self._next(self.raft.poll(now_ms))

    def _next(self, actions: list[Action]) -> SendRequest | None:
        requests = sent(actions)
        assert len(requests) <= 1
        if requests:
            self.out = requests[0]
            return requests[0]
        return None

    def fetch_until(self, now_ms: int) -> SendRequest | None:
        """Answer the Fetch out at `now_ms` with no records."""
        assert isinstance(self.out.request, FetchRequest)
        return self.answer(fetch_answer(1, 2), now_ms)


def sent(actions: list[Action]) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest)]


def test_an_observer_asks_its_leader_to_add_it_once_a_fetch_timeout_has_passed() -> None:
    observer = Observer(voters(1, 2))
    before = observer.fetch_until(FETCH_TIMEOUT_MS - 1)
    assert before is not None and isinstance(before.request, FetchRequest)
    request = observer.fetch_until(FETCH_TIMEOUT_MS)
    assert request is not None and request.destination == 1
    add = request.request
    assert isinstance(add, AddRaftVoterRequest)
    assert (add.cluster_id, add.voter_id, add.voter_directory_id) == (CLUSTER, 3, DIRS[3])
    assert [(e.name, e.host, e.port) for e in add.listeners] == [("CONTROLLER", "127.0.0.1", 9093)]
    assert (add.timeout_ms, add.ack_when_committed) == (REQUEST_TIMEOUT_MS, False)


def test_an_added_observer_fetches_until_the_voters_record_makes_it_a_voter() -> None:
    observer = Observer(voters(1, 2))
    observer.fetch_until(FETCH_TIMEOUT_MS)
    # AckWhenCommitted false (KIP-1186): answered before the VotersRecord reaches us.
    after = observer.answer(AddRaftVoterResponse(), FETCH_TIMEOUT_MS + 10)
    assert after is not None and isinstance(after.request, FetchRequest)
    with_us = VoterSet.from_nodes([node(1), node(2), node(3, port=9093)])
    records = voters_batch(0, 2, with_us)
    observer.answer(fetch_answer(1, 2, records=records), FETCH_TIMEOUT_MS + 20)
    assert observer.raft.is_voter and observer.raft.voter_ids == {1, 2, 3}
    observer.log.entries += [2, 2]
    observer._next(observer.raft.on_flushed(2, FETCH_TIMEOUT_MS + 30))
    # A voter now: a later period brings a Fetch (its entry is up to date), no AddRaftVoter.
    nxt = observer.fetch_until(3 * FETCH_TIMEOUT_MS)
    assert nxt is not None and isinstance(nxt.request, FetchRequest)


def test_an_add_answered_without_the_voters_record_is_asked_again_a_period_later() -> None:
    observer = Observer(voters(1, 2))
    observer.fetch_until(FETCH_TIMEOUT_MS)
    observer.answer(AddRaftVoterResponse(), FETCH_TIMEOUT_MS + 10)
    # The period restarted with the answer: fetches until it is over, then asks again.
    early = observer.fetch_until(2 * FETCH_TIMEOUT_MS + 9)
    assert early is not None and isinstance(early.request, FetchRequest)
    again = observer.fetch_until(2 * FETCH_TIMEOUT_MS + 10)
    assert again is not None and isinstance(again.request, AddRaftVoterRequest)


def test_an_observer_whose_id_votes_with_another_directory_removes_that_voter_first() -> None:
    stale = node(3, directory=UUID(int=99))
    observer = Observer(VoterSet.from_nodes([node(1), stale]))
    request = observer.fetch_until(FETCH_TIMEOUT_MS)
    assert request is not None
    removal = request.request
    assert isinstance(removal, RemoveRaftVoterRequest)
    assert (removal.cluster_id, removal.voter_id, removal.voter_directory_id) == (
        CLUSTER,
        3,
        UUID(int=99),
    )
    observer.answer(RemoveRaftVoterResponse(), FETCH_TIMEOUT_MS + 10)
    records = voters_batch(0, 2, voters(1))
    observer.answer(fetch_answer(1, 2, records=records), FETCH_TIMEOUT_MS + 20)
    observer.log.entries += [2, 2]
    observer._next(observer.raft.on_flushed(2, FETCH_TIMEOUT_MS + 30))
    # The stale voter gone, the next period adds the observer itself.
    add = observer.fetch_until(2 * FETCH_TIMEOUT_MS + 10)
    assert add is not None and isinstance(add.request, AddRaftVoterRequest)
    assert (add.request.voter_id, add.request.voter_directory_id) == (3, DIRS[3])


def test_an_observer_does_not_ask_when_auto_join_is_off() -> None:
    observer = Observer(voters(1, 2), auto_join=False)
    for now in (FETCH_TIMEOUT_MS, 5 * FETCH_TIMEOUT_MS):
        request = observer.fetch_until(now)
        assert request is not None and isinstance(request.request, FetchRequest)


def test_an_observer_of_a_static_quorum_does_not_ask() -> None:
    """kraft.version 0 (controller.quorum.voters): AddRaftVoter is not supported."""
    config = RaftConfig(
        node_id=3,
        cluster_id=CLUSTER,
        voters=(Voter(node_id=1, host="127.0.0.1", port=9091),),
        auto_join=True,
    )
    raft = RaftCore(
        config, ListLog(), persisted=QuorumStateData(leader_id=1, leader_epoch=2), rng=None
    )
    (fetch,) = sent(raft.start(0))
    for now in (FETCH_TIMEOUT_MS, 5 * FETCH_TIMEOUT_MS):
        (fetch,) = sent(raft.on_response(1, fetch.request, fetch_answer(1, 2), now))
        assert isinstance(fetch.request, FetchRequest)


def test_settling_answers_restart_the_period_and_others_back_the_leader_off() -> None:
    """handleAddVoterResponse / handleRemoveVoterResponse: NONE, REQUEST_TIMED_OUT and
    DUPLICATE_VOTER (VOTER_NOT_FOUND for a removal) restart the period when they arrive, and
    the observer goes on fetching from its leader; any other error is unexpected: the
    leader's connection backs off (the next Fetch goes to another voter) and the period
    runs from when the request was sent."""
    stale = VoterSet.from_nodes([node(1), node(2), node(3, directory=UUID(int=99))])
    cases: dict[str, tuple[VoterSet, object, bool]] = {
        "add timed out": (
            voters(1, 2),
            AddRaftVoterResponse(error_code=ErrorCode.REQUEST_TIMED_OUT),
            True,
        ),
        "add duplicate": (
            voters(1, 2),
            AddRaftVoterResponse(error_code=ErrorCode.DUPLICATE_VOTER),
            True,
        ),
        "add not leader": (
            voters(1, 2),
            AddRaftVoterResponse(error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER),
            False,
        ),
        "add invalid": (
            voters(1, 2),
            AddRaftVoterResponse(error_code=ErrorCode.INVALID_REQUEST),
            False,
        ),
        "remove not found": (
            stale,
            RemoveRaftVoterResponse(error_code=ErrorCode.VOTER_NOT_FOUND),
            True,
        ),
        "remove timed out": (
            stale,
            RemoveRaftVoterResponse(error_code=ErrorCode.REQUEST_TIMED_OUT),
            True,
        ),
        "remove refused": (
            stale,
            RemoveRaftVoterResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
            False,
        ),
    }
    answered_at = FETCH_TIMEOUT_MS + 10  # sent at FETCH_TIMEOUT_MS
    between = 2 * FETCH_TIMEOUT_MS + 5  # a period after the send, not after the answer
    for name, (voter_set, answer, settles) in cases.items():
        observer = Observer(voter_set)
        asked = observer.fetch_until(FETCH_TIMEOUT_MS)
        assert asked is not None and asked.destination == 1, name
        kind = type(asked.request)
        assert kind in (AddRaftVoterRequest, RemoveRaftVoterRequest), name
        after = observer.answer(answer, answered_at)
        assert after is not None and isinstance(after.request, FetchRequest), name
        assert after.destination == (1 if settles else 2), name
        nxt = observer.fetch_until(between)
        assert nxt is not None, name
        assert type(nxt.request) is (FetchRequest if settles else kind), name


def test_a_request_that_times_out_unanswered_waits_a_whole_period() -> None:
    observer = Observer(voters(1, 2))
    observer.fetch_until(FETCH_TIMEOUT_MS)
    after = observer.fail(SendFailure.TIMEOUT, FETCH_TIMEOUT_MS + REQUEST_TIMEOUT_MS)
    assert after is not None and isinstance(after.request, FetchRequest)
    again = observer.fetch_until(FETCH_TIMEOUT_MS + REQUEST_TIMEOUT_MS + FETCH_TIMEOUT_MS - 1)
    assert again is not None and isinstance(again.request, FetchRequest)


def test_the_period_end_is_a_deadline_only_when_the_observer_would_ask() -> None:
    joining = Observer(voters(1, 2))
    assert joining.raft.next_deadline_ms() == FETCH_TIMEOUT_MS
    staying = Observer(voters(1, 2), auto_join=False)
    assert staying.raft.next_deadline_ms() > 10 * FETCH_TIMEOUT_MS
