"""Graceful shutdown (`RaftCore.resign`): Kafka 4.3.1's KafkaRaftClient.shutdown and
GracefulShutdown. A leader resigns; no node stands for election or fetches while the
shutdown is pending; it completes when the node is an observer, the only voter, or knows a
remote leader, or when its timeout (5000 ms, KafkaRaftClientDriver's) passes."""

from __future__ import annotations

import random

from test_raft_election import core, granted_vote, state, vote
from test_raft_follower import follower
from test_raft_leader import _begin, _end_ok, leader_of, sent
from test_raft_pump import ListLog, config

from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.raft.core import RaftCore
from kwire.raft.state import SHUTDOWN_TIMEOUT_MS


def test_a_resigning_leader_sends_end_quorum_epoch_without_leader_endpoints() -> None:
    # RaftUtil.singletonEndQuorumEpochRequest never sets LeaderEndpoints (3.9 and 4.3.1).
    raft, _, _ = leader_of([])
    ends = [s for s in sent(raft.resign(1)) if isinstance(s.request, EndQuorumEpochRequest)]
    assert sorted(s.destination for s in ends) == [2, 3]
    assert all(s.request.leader_endpoints == [] for s in ends)  # type: ignore[union-attr]
    assert not raft.shutdown_complete


def test_a_shutting_down_voter_that_voted_sends_nothing_until_the_next_leader_begins() -> None:
    raft, _, _ = leader_of([])
    for s in sent(raft.resign(1)):
        raft.on_response(s.destination, s.request, _end_ok(), 2)
    response, actions = raft.handle_vote(vote(2, 3, last_epoch=2, last_offset=1), 100)
    assert response.topics[0].partitions[0].vote_granted
    assert raft.state_name == "voted" and raft.epoch == 3
    assert sent(actions) == []
    # pollUnattachedAsVoter: no Fetch to any bootstrap voter, no election while pending
    assert raft.next_deadline_ms() == 1 + SHUTDOWN_TIMEOUT_MS
    assert sent(raft.poll(4_000)) == []
    assert raft.state_name == "voted" and not raft.shutdown_complete
    _, actions = raft.handle_begin_quorum_epoch(_begin(leader=2, epoch=3), 200)
    assert raft.state_name == "follower" and raft.leader_id == 2
    assert raft.shutdown_complete and not raft.shutdown_timed_out
    assert sent(actions) == []  # a completed shutdown sends nothing, not even a Fetch
    assert sent(raft.poll(10_000)) == []


def test_a_pending_shutdown_times_out_after_5000_ms_by_default() -> None:
    raft, _, _ = leader_of([])
    raft.resign(1)
    assert raft.next_deadline_ms() <= 1 + SHUTDOWN_TIMEOUT_MS
    raft.poll(SHUTDOWN_TIMEOUT_MS)
    assert not raft.shutdown_complete and raft.state_name == "resigned"
    raft.poll(1 + SHUTDOWN_TIMEOUT_MS)
    assert raft.shutdown_complete and raft.shutdown_timed_out
    assert sent(raft.poll(60_000)) == []


def test_a_follower_completes_its_shutdown_at_once_without_fetching() -> None:
    raft, _, _ = follower(leader=3, epoch=2)
    assert sent(raft.resign(10)) == []
    assert raft.shutdown_complete and not raft.shutdown_timed_out
    assert raft.state_name == "follower"


def test_an_observer_and_a_sole_voter_complete_their_shutdown_at_once() -> None:
    observer = RaftCore(config(4, 3), ListLog(), rng=random.Random(0))
    observer.start(0)
    observer.resign(1)
    assert observer.shutdown_complete
    sole = RaftCore(config(1, 1), ListLog(), rng=random.Random(0))
    sole.start(0)
    assert sole.is_leader
    sole.resign(1)
    assert sole.shutdown_complete


def test_an_unattached_voter_waits_for_a_leader_instead_of_standing() -> None:
    raft = core(1, persisted=state(2))
    assert sent(raft.resign(0)) == []
    assert raft.next_deadline_ms() == SHUTDOWN_TIMEOUT_MS  # its election timer is off
    assert raft.state_name == "unattached" and not raft.shutdown_complete


def test_a_candidate_shutting_down_finishes_its_election_without_a_timeout() -> None:
    # pollCandidate: keep asking for votes until elected, another leader, or the timeout.
    raft = RaftCore(config(1, 3), ListLog(), persisted=state(2, voted=1), rng=random.Random(0))
    votes = sent(raft.start(0))
    assert raft.state_name == "candidate" and sorted(s.destination for s in votes) == [2, 3]
    raft.resign(0)
    raft.poll(4_000)  # past the election timeout (< 2000 ms)
    assert raft.state_name == "candidate" and raft.epoch == 2
    raft.on_response(2, votes[0].request, granted_vote(2, 2), 4_001)
    # elected, it resigns at once (pollLeader with a shutdown pending)
    assert raft.state_name == "resigned" and raft.epoch == 2
    assert not raft.shutdown_complete
