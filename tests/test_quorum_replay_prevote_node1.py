"""kwire in place of genuine Kafka 4.3.1 node 1 of quorum-prevote: pre-votes, a split vote,
two more elections and the last leadership.

Node 1 starts first and alone (its pre-votes find no one), pre-votes with node 2 when node
2 comes up (both granted), stands in epoch 1 as node 2 does (each refuses the other: a split
vote), grants node 2's pre-vote and vote for epoch 2 and follows node 2; when node 2 is
killed it pre-votes node 3 (refused FENCED_LEADER_EPOCH: node 3 already stands in epoch 3),
grants node 3's pre-vote and vote and follows node 3; refuses restarted node 2's stale
EndQuorumEpoch; on node 3's EndQuorumEpoch (node 1 first preferred) it pre-votes at once
(node 3 grants, node 2 refuses: it still hears node 3), wins epoch 4 and leads to the end.

kwire as node 1: node 1's directory id and bootstrap checkpoint (kraft.version 1, the three
voters' directory ids), Kafka's default timers, fast failover off; its log
is what it fetched, then as leader node 1's own segment. Rules (tests/quorum_replay/ and
tests/test_quorum_replay_prevote.py): BOOTSTRAP_FETCH,
GRANTING_VOTERS_ORDER, and ELECTION_TIMER: when an unattached node stands is its randomized
election timer. `SEED` seeds kwire's generator; under it kwire's timers put its pre-vote to
node 2 after node 2's port came up and before the genuine split vote, as node 1's were. Of
seeds 0 to 19, 11 reproduce node 1's story exactly (0 is the first), 5 also start one more
pre-vote round that node 1 did not (unanswered), and 4 stand too late and grant node 2's
vote in epoch 1 (another valid history): the test shows that the genuine story is one
kwire's timers produce, not that every draw does.
"""

from __future__ import annotations

import random
from functools import cache

import pytest
from quorum_replay import (
    CAPTURES,
    QUORUM_PREVOTE,
    Outage,
    Replay,
    ReplayLog,
    ReplayResult,
    bootstrap_fetches,
    core_has_landed,
    load_capture,
    raft_config,
    read_segment,
)
from test_quorum_replay_prevote import (
    NODE_2_KILLED_MS,
    NODE_3_EXITED_MS,
    bootstrap_history,
)

from kwire.log.snapshots import SnapshotId

NODE = 1
SEGMENT = (
    CAPTURES
    / "kafka-4.3"
    / "quorum-prevote"
    / "metadata-log-1"
    / "__cluster_metadata-0"
    / "00000000000000000000.log"
)
NODE_2_EXITED_MS = 1796000457237  # notes.txt: controller-2 exited at 01:00:57.237
SEED = 0

pytestmark = [
    pytest.mark.skipif(
        not core_has_landed(), reason="kwire.raft has not the multi-voter contract yet"
    ),
    pytest.mark.skipif(
        not QUORUM_PREVOTE.exists() or not SEGMENT.exists(),
        reason=f"no genuine capture at {QUORUM_PREVOTE}",
    ),
]


@cache
def replay(seed: int = SEED) -> ReplayResult:
    from kwire.raft.core import RaftCore

    capture = load_capture(QUORUM_PREVOTE)

    # A peer is down until its port first takes a request (node 3's listener came up after
    # its own raft client had begun to send), and from its kill or exit.
    outages = [
        Outage(2, None, capture.port_up_ms(2)),
        Outage(2, NODE_2_KILLED_MS, capture.port_up_ms(2, after=NODE_2_KILLED_MS)),
        Outage(2, NODE_2_EXITED_MS, None),
        Outage(3, None, capture.port_up_ms(3)),
        Outage(3, NODE_3_EXITED_MS, None),
    ]
    log = ReplayLog(snapshot=SnapshotId(end_offset=0, epoch=0))
    core = RaftCore(
        raft_config(capture, NODE),
        log,
        rng=random.Random(seed),
        control_records=bootstrap_history(NODE),
    )
    return Replay(
        capture,
        NODE,
        core,
        log,
        outages=outages,
        skip=bootstrap_fetches(capture, NODE),
        genuine_log=read_segment(SEGMENT),
    ).run()


def _shown(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_the_replay_of_node_1_runs_to_its_end() -> None:
    assert replay().stopped is None


def test_kwire_node_1_answers_every_vote_and_pre_vote_as_node_1_did() -> None:
    # Node 2's pre-vote (granted) and vote (refused: split) in epoch 1, its pre-vote and
    # vote for epoch 2 (granted); node 3's pre-vote and vote for epoch 3 (granted).
    result = replay()
    votes = result.of("Vote", "answer")
    assert [
        (c.exchange.sender, c.exchange.request.topics[0].partitions[0].pre_vote) for c in votes
    ] == [(2, True), (2, False), (2, True), (2, False), (3, True), (3, False)]
    assert _shown(result, "Vote", "answer") == []
    assert all(c.bytes_equal for c in votes)


def test_kwire_node_1_asks_for_pre_votes_and_votes_as_node_1_did() -> None:
    result = replay()
    asked = result.of("Vote", "request")
    assert [
        (c.exchange.receiver, c.exchange.request.topics[0].partitions[0].pre_vote) for c in asked
    ][:3] == [(2, True), (2, False), (3, True)]
    assert _shown(result, "Vote", "request") == []


def test_kwire_node_1_asks_every_voter_node_1_asked() -> None:
    # KafkaRaftClient.onBecomeCandidate (3.9 and 4.x) resets the connections: the candidate
    # asks every voter at once, also one whose pre-vote answer is still on its way (node 1
    # sent Vote epoch 4 to node 2, #1073, which granted it first).
    result = replay()
    assert [str(e) for e in result.unsent] == []


def test_kwire_node_1_writes_the_leader_change_node_1_wrote() -> None:
    # GRANTING_VOTERS_ORDER: as a set (node 1's JVM wrote [2, 1]; salted per JVM).
    result = replay()
    [(_, epoch, genuine, kwire)] = result.leader_changes
    assert epoch == 4
    assert (kwire.leader_id, kwire.voters) == (genuine.leader_id, genuine.voters)
    assert sorted(v.voter_id for v in kwire.granting_voters) == sorted(
        v.voter_id for v in genuine.granting_voters
    )


def test_kwire_node_1_answers_begin_and_end_quorum_epoch_as_node_1_did() -> None:
    # BeginQuorumEpoch from 2 (epoch 2) and 3 (epoch 3); restarted node 2's stale
    # EndQuorumEpoch (FENCED_LEADER_EPOCH) and resigning node 3's (node 1 first preferred).
    result = replay()
    answers = result.of("BeginQuorumEpoch", "answer") + result.of("EndQuorumEpoch", "answer")
    assert sorted((c.exchange.api, c.exchange.sender) for c in answers) == [
        ("BeginQuorumEpoch", 2),
        ("BeginQuorumEpoch", 3),
        ("EndQuorumEpoch", 2),
        ("EndQuorumEpoch", 3),
    ]
    assert [str(c) for c in answers if not c.matches] == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_1_stands_at_once_when_named_first_successor() -> None:
    result = replay()
    resigned = next(c for c in result.of("EndQuorumEpoch", "answer") if c.exchange.sender == 3)
    stood = min(
        ms for ms, state, epoch, _ in result.states if state == "prospective" and epoch == 3
    )
    assert stood == resigned.time_ms


def test_kwire_node_1_fetches_as_node_1_did() -> None:
    result = replay()
    fetches = result.of("Fetch", "request")
    assert {c.exchange.receiver for c in fetches} == {2, 3}
    assert _shown(result, "Fetch", "request") == []
    assert all(c.bytes_equal for c in fetches)


def test_kwire_node_1_as_leader_answers_every_fetch_as_node_1_did() -> None:
    # Records, the high watermark of epoch 4, the leader's endpoint; and, before, the
    # answers to Fetches it got while not leading.
    result = replay()
    answers = result.of("Fetch", "answer")
    assert {c.exchange.sender for c in answers} == {2, 3}
    assert _shown(result, "Fetch", "answer") == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_1_sends_nothing_node_1_did_not() -> None:
    result = replay()
    extra = [(s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()]
    assert extra == []
