"""kwire in place of genuine Kafka 3.9 node 12 of quorum-election: the first leader.

Node 12 stands first (Vote v1 to 11 and 13; a 3.9 voter takes no Vote v2, so kwire's
pre-vote fails UNSUPPORTED_VERSION at once and it stands as Kafka 3.9 does), wins epoch 1,
sends BeginQuorumEpoch, serves both followers' Fetches while the controller writes, is
stopped with SIGTERM: it resigns (Fetch answers NOT_LEADER_OR_FOLLOWER, EndQuorumEpoch
with preferred candidates [11, 13]), grants node 11's vote in epoch 2 and, once node 11's
BeginQuorumEpoch names a remote leader, its shutdown completes.

kwire as node 12 runs with node 12's directory id, Kafka's default timers, Kafka 3.9's
8 MiB Fetch size, and its log is the genuine leader's (tests/quorum_replay/): node 11
kept the epoch-1 batches node 12 wrote, byte for byte.

Rules, each named:
- ELECTION_TIMER: when a node first stands is its randomized election timer; kwire node 12
  starts 2 x election.timeout.ms before node 12's first Vote, so that it stands no later
  (its Vote is paired with the genuine one and answered at the genuine times).
- SIGTERM_TIME: the capture notes no time for the SIGTERM; kwire resigns 1 ms before node
  12's first answer as a resigned leader (a Fetch answered NOT_LEADER_OR_FOLLOWER).
- KAFKA_3_9_BEGIN_QUORUM_EPOCH_REPEATS (tests/quorum_replay/): node 12's repeated
  BeginQuorumEpoch to voters that were fetching are Kafka 3.9's, not 4.x's: not replayed.
- GRANTING_VOTERS_ORDER: compared as a set (3.9 writes them ascending, as kwire does).
"""

from __future__ import annotations

import random
from functools import cache

import pytest
from quorum_replay import (
    KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
    QUORUM_ELECTION,
    QUORUM_ELECTION_SEGMENT,
    Exchange,
    Replay,
    ReplayLog,
    ReplayResult,
    begin_quorum_epoch_repeats,
    bootstrap_fetches,
    core_has_landed,
    load_capture,
    raft_config,
    read_segment,
)

from kwire.protocol.error_codes import ErrorCode

NODE = 12
ELECTION_TIMEOUT_MS = 1000

pytestmark = [
    pytest.mark.skipif(
        not core_has_landed(), reason="kwire.raft has not the multi-voter contract yet"
    ),
    pytest.mark.skipif(
        not QUORUM_ELECTION.exists() or not QUORUM_ELECTION_SEGMENT.exists(),
        reason=f"no genuine capture at {QUORUM_ELECTION}",
    ),
]


@cache
def replay() -> ReplayResult:
    from kwire.raft.core import RaftCore

    capture = load_capture(QUORUM_ELECTION)
    repeats = begin_quorum_epoch_repeats(capture, NODE)
    bootstrap = bootstrap_fetches(capture, NODE)

    def skip(exchange: Exchange) -> str | None:
        if exchange.index in repeats:
            return "KAFKA_3_9_BEGIN_QUORUM_EPOCH_REPEATS"
        return bootstrap(exchange)

    first_vote = min(e.request_ms for e in capture.sent_by(NODE) if e.api == "Vote")
    resigned = min(
        e.response_ms
        for e in capture.received_by(NODE)
        if e.api == "Fetch"
        and e.response_ms is not None
        and e.response.responses[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    )
    config = raft_config(
        capture,
        NODE,
        fetch_max_bytes=KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
        update_voter_at_kraft_version_0=False,  # Kafka 3.9 sends none at kraft.version 0
    )
    log = ReplayLog()
    core = RaftCore(config, log, rng=random.Random(0))
    return Replay(
        capture,
        NODE,
        core,
        log,
        start_ms=first_vote - 2 * ELECTION_TIMEOUT_MS,
        skip=skip,
        genuine_log=read_segment(QUORUM_ELECTION_SEGMENT),
        shutdown_ms=resigned - 1,
    ).run()


def _shown(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_the_replay_of_node_12_runs_to_its_shutdown() -> None:
    result = replay()
    assert result.stopped is None
    assert result.shutdown_complete_ms is not None


def test_kwire_node_12_stands_with_kafka_3_9s_vote_after_an_unsupported_pre_vote() -> None:
    result = replay()
    asked = result.of("Vote", "request")
    assert sorted(c.exchange.receiver for c in asked) == [11, 13]
    assert _shown(result, "Vote", "request") == []
    assert all(c.bytes_equal for c in asked)
    refused = [s for s in result.sent if getattr(s.failure, "name", "") == "UNSUPPORTED_VERSION"]
    assert {s.destination for s in refused} == {11, 13}
    assert all(s.request.topics[0].partitions[0].pre_vote for s in refused)


def test_kwire_node_12_begins_its_epoch_as_node_12_did() -> None:
    result = replay()
    begun = result.of("BeginQuorumEpoch", "request")
    assert sorted(c.exchange.receiver for c in begun) == [11, 13]
    assert _shown(result, "BeginQuorumEpoch", "request") == []
    assert all(c.bytes_equal for c in begun)


def test_kwire_node_12_writes_the_leader_change_node_12_wrote() -> None:
    result = replay()
    [(_, epoch, genuine, kwire)] = result.leader_changes
    assert epoch == 1
    assert genuine is not None
    assert kwire == genuine  # 3.9's granting voters are ascending, as kwire's


def test_kwire_node_12_answers_every_fetch_as_node_12_did() -> None:
    # As leader (records, high watermark), as resigned leader (NOT_LEADER_OR_FOLLOWER with
    # itself as leader of epoch 1), and after voting in epoch 2 (FENCED_LEADER_EPOCH).
    result = replay()
    answers = result.of("Fetch", "answer")
    assert {c.exchange.sender for c in answers} == {11, 13}
    assert _shown(result, "Fetch", "answer") == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_12_answers_node_11s_vote_as_node_12_did() -> None:
    result = replay()
    [vote] = result.of("Vote", "answer")
    assert vote.exchange.sender == 11
    assert vote.matches, str(vote)
    assert vote.bytes_equal


def test_kwire_node_12_sends_nothing_but_end_quorum_epoch_while_shutting_down() -> None:
    result = replay()
    sent = [(s.destination, type(s.request).__name__) for s in result.sent if s.during_shutdown]
    assert sent == [(11, "EndQuorumEpochRequest"), (13, "EndQuorumEpochRequest")]


def test_kwire_node_12_answers_node_11s_begin_quorum_epoch_as_node_12_did() -> None:
    # Its shutdown completes there (a remote leader known): the last frame node 12 sent.
    result = replay()
    [begin] = result.of("BeginQuorumEpoch", "answer")
    assert begin.exchange.sender == 11
    assert begin.matches, str(begin)
    assert begin.bytes_equal


def test_kwire_node_12_resigns_naming_the_genuine_preferred_candidates() -> None:
    result = replay()
    ended = result.of("EndQuorumEpoch", "request")
    assert sorted(c.exchange.receiver for c in ended) == [11, 13]
    for c in ended:
        partition = c.kwire.topics[0].partitions[0]
        assert [r.candidate_id for r in partition.preferred_candidates] == [11, 13]


def test_kwire_node_12_resigns_with_the_end_quorum_epoch_node_12_sent() -> None:
    result = replay()
    ended = result.of("EndQuorumEpoch", "request")
    assert [str(c) for c in ended if not c.matches] == []
    assert all(c.bytes_equal for c in ended)


def test_kwire_node_12_sends_nothing_node_12_did_not() -> None:
    result = replay()
    extra = [(s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()]
    assert extra == []
    assert [str(e) for e in result.unsent] == []
