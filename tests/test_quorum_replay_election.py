"""kwire in place of genuine Kafka 3.9 node 13 of quorum-election, answer for answer.

Node 13 only follows: it grants node 12's vote in epoch 1, follows 12 (BeginQuorumEpoch,
then Fetch after Fetch), gets 12's EndQuorumEpoch when 12 is stopped with SIGTERM (node 13
second among the preferred candidates), grants node 11's vote in epoch 2, and follows 11.
A kwire RaftCore configured as node 13 (node 13's directory id, Kafka's default timers,
fast failover off: Kafka 3.9 has none) is handed the genuine traffic (tests/quorum_replay/)
and must answer and ask exactly as node 13 did.

Settings that make kwire node 13 a Kafka 3.9 node: Fetch MaxBytes is 8 MiB, KafkaRaftClient's
fixed MAX_FETCH_SIZE_BYTES in 3.9 (4.x made it controller.quorum.fetch.max.bytes, 1 MiB).
No rule excuses any field: node 13 sends and answers nothing that differs by nature. Kafka
3.9's node 13 never fetched from a voter it did not follow; kwire's core (Kafka 4.3.1's
semantics) may, while unattached: rule BOOTSTRAP_FETCH of tests/quorum_replay/ answers
those as the genuine peer then would, and they are listed apart (`bootstrap_fetches`).
"""

from __future__ import annotations

import random
from collections import Counter
from functools import cache

import pytest
from quorum_replay import (
    KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
    QUORUM_ELECTION,
    QUORUM_ELECTION_SEGMENT,
    Replay,
    ReplayLog,
    ReplayResult,
    bootstrap_fetches,
    core_has_landed,
    load_capture,
    raft_config,
    read_segment,
)

NODE = 13

pytestmark = [
    pytest.mark.skipif(
        not core_has_landed(), reason="kwire.raft has not the multi-voter contract yet"
    ),
    pytest.mark.skipif(
        not QUORUM_ELECTION.exists(), reason=f"no genuine capture at {QUORUM_ELECTION}"
    ),
]


@cache
def replay(seed: int = 0) -> ReplayResult:
    from kwire.raft.core import RaftCore

    capture = load_capture(QUORUM_ELECTION)
    config = raft_config(
        capture,
        NODE,
        fetch_max_bytes=KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
        update_voter_at_kraft_version_0=False,  # Kafka 3.9 sends none at kraft.version 0
    )
    log = ReplayLog()
    core = RaftCore(config, log, rng=random.Random(seed))
    return Replay(capture, NODE, core, log, skip=bootstrap_fetches(capture, NODE)).run()


def test_the_replay_of_node_13_runs_to_its_end() -> None:
    # kwire never asks for what the genuine traffic cannot feed (e.g. a Fetch at another
    # offset, whose genuine answer would not append).
    result = replay()
    assert result.stopped is None


def _describe(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_kwire_node_13_answers_both_votes_as_node_13_did() -> None:
    result = replay()
    votes = result.of("Vote", "answer")
    assert [c.exchange.sender for c in votes] == [12, 11]
    assert _describe(result, "Vote", "answer") == []
    assert all(c.bytes_equal for c in votes)


def test_kwire_node_13_answers_every_begin_quorum_epoch_as_node_13_did() -> None:
    result = replay()
    answers = result.of("BeginQuorumEpoch", "answer")
    assert Counter(c.exchange.sender for c in answers) == {12: 17, 11: 18}
    assert _describe(result, "BeginQuorumEpoch", "answer") == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_13_answers_the_resigning_leaders_end_quorum_epoch_as_node_13_did() -> None:
    result = replay()
    [answer] = result.of("EndQuorumEpoch", "answer")
    assert answer.matches, str(answer)
    assert answer.bytes_equal


def test_kwire_node_13_sends_every_fetch_node_13_sent_byte_for_byte() -> None:
    result = replay()
    fetches = result.of("Fetch", "request")
    assert Counter(c.exchange.receiver for c in fetches) == {12: 42, 11: 39}
    assert _describe(result, "Fetch", "request") == []
    assert all(c.bytes_equal for c in fetches)


def test_kwire_node_13_sends_nothing_node_13_did_not() -> None:
    result = replay()
    extra = [(s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()]
    assert extra == []
    assert [str(e) for e in result.unsent] == []


def test_kwire_node_13_moves_through_the_states_node_13_did() -> None:
    # Unattached (voted for 12 in epoch 1), follower of 12, unattached again when 12
    # resigns and 11 asks for votes in epoch 2 (voted for 11), follower of 11.
    result = replay()
    followed = [(epoch, leader) for _, state, epoch, leader in result.states if leader >= 0]
    assert list(dict.fromkeys(followed)) == [(1, 12), (2, 11)]
    assert all(state != "leader" and "candidate" not in state for _, state, _, _ in result.states)


@pytest.mark.skipif(not QUORUM_ELECTION_SEGMENT.exists(), reason="no metadata-log-11 segment")
def test_kwire_node_13_holds_the_log_the_leaders_hold() -> None:
    # Followers hold the leader's batches byte for byte; node 11 (leader of epoch 2) kept
    # its log, so kwire node 13's log is a prefix of node 11's segment.
    log = replay().log
    genuine = read_segment(QUORUM_ELECTION_SEGMENT)
    assert log.end_offset >= 74  # status-after.txt: high watermark 74 in epoch 2
    assert [b.raw for b in log.batches] == [b.raw for b in genuine[: len(log.batches)]]
