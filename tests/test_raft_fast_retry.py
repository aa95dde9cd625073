"""Fast failover when the other voters are not ready yet (kwire's, follower.py): a fast
pre-vote round refused by a voter that has not noticed the leader's death is asked again
shortly after, with doubling delays bounded by the fetch timeout; and a voter whose
controller still has committed records to replay stands after the others."""

from __future__ import annotations

from test_raft_election import answer, granted_vote, sent, vote
from test_raft_follower import end, follower, response
from test_raft_pump import Cluster

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.vote import VoteRequest
from kwire.raft.core import RaftCore
from kwire.raft.state import FAST_FAILOVER_MAX_DELAY_MS, Action, SendFailure

STEP_MS = FAST_FAILOVER_MAX_DELAY_MS  # min(50, election_timeout_ms / 10) with Kafka's 1 s
FETCH_TIMEOUT_MS = 2000  # Kafka's controller.quorum.fetch.timeout.ms default


def pre_votes(actions: list[Action]) -> dict[int, VoteRequest]:
    """The pre-vote requests among `actions`, by destination."""
    found = {}
    for send in sent(actions):
        if isinstance(send.request, VoteRequest):
            assert send.request.topics[0].partitions[0].pre_vote
            found[send.destination] = send.request
    return found


def stand(raft: RaftCore, now_ms: int) -> tuple[int, dict[int, VoteRequest]]:
    """Poll at the core's next deadline until it is prospective; (when, its pre-votes)."""
    for _ in range(10):
        now_ms = max(now_ms, raft.next_deadline_ms())
        actions = raft.poll(now_ms)
        if raft.state_name == "prospective":
            return now_ms, pre_votes(actions)
    raise AssertionError(f"still {raft.state_name} at {now_ms} ms")


def test_a_fast_round_refused_by_the_only_live_voter_is_asked_again_soon_then_less_often() -> None:
    # Node 1 follows node 3 (epoch 2) in a quorum {1, 2, 3}; node 3's process dies.
    raft, _, fetch = follower()
    raft.on_send_failed(3, fetch, SendFailure.CONNECTION_REFUSED, 100)
    now, asked = stand(raft, 100)
    assert now < 100 + STEP_MS and 2 in asked
    delays = []
    for _ in range(8):
        # Node 2 still hears from node 3 (it has not noticed yet): it refuses, naming it.
        raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now)
        # Node 3 cannot answer: the round is over without waiting for the election
        # deadline (1 to 2 s); node 1 follows node 3 again, counting it gone.
        assert raft.state_name == "follower" and raft.leader_id == 3
        lost_at = now
        now, asked = stand(raft, now)
        delays.append(now - lost_at)
        assert 2 in asked, "the next round asks node 2 again"
    # The k-th lost round waits 2^k steps plus less than one more, at most the fetch timeout.
    for k, delay in enumerate(delays, start=1):
        low = min(STEP_MS << k, FETCH_TIMEOUT_MS)
        assert low <= delay <= min(low + STEP_MS, FETCH_TIMEOUT_MS), (k, delays)
    assert delays[-1] == FETCH_TIMEOUT_MS
    assert raft.epoch == 2, "pre-votes never move the epoch"


def test_once_node_2_notices_the_leaders_death_the_next_round_wins() -> None:
    raft, _, fetch = follower()
    raft.on_send_failed(3, fetch, SendFailure.CONNECTION_LOST, 100)
    now, asked = stand(raft, 100)
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now)
    now, asked = stand(raft, now)
    assert now - 100 < 4 * STEP_MS  # Kafka's follower would wait out a 2 s fetch timeout
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=True), now)
    assert raft.state_name == "candidate" and raft.epoch == 3


def test_with_more_voters_one_refusal_does_not_end_the_round() -> None:
    raft, _, fetch = follower(voters=5, leader=5)
    raft.on_send_failed(5, fetch, SendFailure.CONNECTION_REFUSED, 100)
    now, asked = stand(raft, 100)
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=5), now)
    assert raft.state_name == "prospective"  # nodes 3 and 4 may still grant
    raft.on_response(3, asked[3], granted_vote(3, 2, granted=True), now + 1)
    raft.on_response(4, asked[4], granted_vote(4, 2, granted=True), now + 2)
    assert raft.state_name == "candidate"


def resigned_leader_round(
    raft: RaftCore, fetch: FetchRequest
) -> tuple[int, dict[int, VoteRequest]]:
    """Node 3, the leader, answers node 1's Fetch saying it resigned epoch 2 (a graceful
    shutdown: it is alive, and grants pre-votes); node 1 stands."""
    (second,) = sent(raft.on_response(3, fetch, response(3, 2), 5))
    resigned = response(3, 2, error=ErrorCode.NOT_LEADER_OR_FOLLOWER)
    raft.on_response(3, second.request, resigned, 20)
    return stand(raft, 20)


def test_a_round_after_a_resignation_waits_for_the_resigned_leaders_grant() -> None:
    # Node 2, cut off from node 3, still counts node 3 as its leader: it refuses first.
    raft, _, fetch = follower()
    now, asked = resigned_leader_round(raft, fetch)
    assert now < 20 + 2 * STEP_MS and set(asked) == {2, 3}
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now + 1)
    # Node 3 resigned but lives: the round is not lost before its answer...
    assert raft.state_name == "prospective"
    raft.on_response(3, asked[3], granted_vote(3, 2, granted=True, leader=3), now + 2)
    # ...which makes a majority. (Counted as dead, it lost every round until node 2's
    # fetch timeout, 2 s.)
    assert raft.state_name == "candidate" and raft.epoch == 3


def test_a_resigned_leader_whose_process_then_dies_no_longer_holds_a_round_open() -> None:
    raft, _, fetch = follower()
    now, asked = resigned_leader_round(raft, fetch)
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now + 1)
    raft.on_response(3, asked[3], granted_vote(3, 2, granted=False, leader=3), now + 2)
    assert raft.state_name == "follower", "refused by both: lost at once"
    lost_at = now + 2
    now, asked = stand(raft, lost_at)
    assert now - lost_at <= 3 * STEP_MS, "the next round comes soon"
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now + 1)
    assert raft.state_name == "prospective", "node 3 may still grant"
    # Node 3's process is gone (killed after it resigned): nobody is left to ask.
    raft.on_send_failed(3, asked[3], SendFailure.CONNECTION_REFUSED, now + 2)
    assert raft.state_name == "follower" and raft.leader_id == 3
    # From then on node 3 counts as dead: a refusal alone ends the round.
    now, asked = stand(raft, now + 2)
    raft.on_response(2, asked[2], granted_vote(2, 2, granted=False, leader=3), now + 1)
    assert raft.state_name == "follower"


def rank_delay(controller_behind: bool) -> int:
    raft, _, fetch = follower()
    raft.controller_behind = controller_behind
    raft.on_send_failed(3, fetch, SendFailure.CONNECTION_REFUSED, 100)
    when, _ = stand(raft, 100)
    return when - 100


def test_a_voter_whose_controller_is_behind_stands_after_every_other_voter() -> None:
    # Node 1 ranks first among {1, 2}: at once, unless its controller must replay first,
    # then after node 2's whole window (rank 1: [50, 75) ms).
    assert rank_delay(False) < STEP_MS // 2
    assert 2 * STEP_MS <= rank_delay(True) < 2 * STEP_MS + STEP_MS // 2


def test_in_a_quorum_the_node_behind_lets_the_other_survivor_lead() -> None:
    # Node 3 leads; node 1's controller is behind (it was just restarted). Whoever of
    # nodes 1 and 2 stands first would win; node 2 must, every time.
    for seed in range(20):
        cluster = Cluster(3, seed=seed)
        cluster.start()
        cluster.run_until(cluster.stable)
        (old,) = cluster.leaders()
        behind = next(i for i in cluster.nodes if i != old)
        cluster.nodes[behind].core.controller_behind = True
        cluster.crash(old)
        cluster.run_until(cluster.stable)
        (new,) = cluster.leaders()
        assert new not in (old, behind), seed


def test_a_graceful_hand_over_skips_a_preferred_successor_whose_controller_is_behind() -> None:
    # The leader resigns naming both survivors, the lower id first (their logs are level);
    # that one's controller is still replaying (it was just restarted), so the other
    # survivor leads, within a few steps rather than Kafka's 500 ms for the second place.
    for seed in range(20):
        second, took = hand_over_with_the_first_successor_behind(seed)
        assert second, seed
        assert took < 4 * STEP_MS, seed


def hand_over_with_the_first_successor_behind(seed: int) -> tuple[bool, int]:
    """(whether the second successor leads, how long the hand-over took in ms)."""
    cluster = Cluster(3, seed=seed)
    cluster.start()
    cluster.run_until(cluster.stable)
    (old,) = cluster.leaders()
    first, second = sorted(i for i in cluster.nodes if i != old)
    cluster.nodes[first].core.controller_behind = True
    cluster.carry_out(old, cluster.nodes[old].core.resign(cluster.now))
    start = cluster.now
    cluster.run_until(lambda: any(n != old for n in cluster.leaders()))
    return cluster.leaders() == [second], cluster.now - start


def behind_voter_asked_by(last_offset: int) -> tuple[bool, int]:
    """Node 1 (its controller still replaying, its log 4 records of epoch 2) follows node
    3, which dies at 100 ms; at 110 ms node 2 asks for a pre-vote with its log ending at
    `last_offset` (epoch 2). (Granted, when node 1 then stands, in ms after the death.)"""
    raft, _, fetch = follower([1, 2, 2, 2])
    raft.controller_behind = True
    raft.on_send_failed(3, fetch, SendFailure.CONNECTION_LOST, 100)
    response, _ = raft.handle_vote(
        vote(2, 2, last_epoch=2, last_offset=last_offset, pre_vote=True, voter_id=1), 110
    )
    granted = answer(response)[3]
    when, _ = stand(raft, 110)
    return granted, when - 100


def test_a_voter_behind_refusing_a_candidate_whose_log_is_shorter_stands_at_once() -> None:
    # Node 2 cannot win node 1's vote; node 1 waiting for every other voter first (its
    # controller must replay) would only delay the failover: it stands within half a step.
    granted, delay = behind_voter_asked_by(last_offset=3)
    assert not granted
    assert delay < 10 + STEP_MS // 2


def test_a_voter_behind_granting_an_up_to_date_candidate_keeps_its_place_last() -> None:
    granted, delay = behind_voter_asked_by(last_offset=4)
    assert granted
    assert delay >= 2 * STEP_MS


def test_a_voter_that_finishes_replaying_while_it_waits_behind_stands_as_if_ready() -> None:
    # Node 1 (rank 0) waits 2 steps more for its backlog after node 3 died at 100 ms; its
    # replay ends 10 ms later: it stands within the first half step, as a ready voter.
    raft, _, fetch = follower()
    raft.controller_behind = True
    raft.on_send_failed(3, fetch, SendFailure.CONNECTION_REFUSED, 100)
    raft.poll(110)
    assert raft.state_name == "follower", "rank 0 + its backlog: not before 200 ms"
    raft.controller_behind = False
    when, _ = stand(raft, 110)
    assert 110 <= when < 100 + STEP_MS // 2  # rank 0: at once, plus less than half a step


def test_a_successor_that_finishes_replaying_stands_at_its_own_place() -> None:
    # The resigning leader names node 1 first; node 1 is behind, so it waits for node 2's
    # place too; caught up 5 ms later, it stands at once, as the first named.
    raft, _, _ = follower()
    raft.controller_behind = True
    raft.handle_end_quorum_epoch(end(3, 2, [1, 2]), 100)
    raft.poll(105)
    assert raft.state_name == "follower", "first named, but behind: not before 200 ms"
    raft.controller_behind = False
    when, _ = stand(raft, 105)
    assert 105 <= when < 100 + STEP_MS // 2
