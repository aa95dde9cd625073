"""kwire in place of genuine Kafka 3.9 node 11 of quorum-election: the successor.

Node 11 grants node 12's vote in epoch 1 and follows it; when node 12 resigns, its
EndQuorumEpoch names node 11 first among the preferred candidates, so node 11 stands at
once (KafkaRaftClient.endEpochElectionBackoff: position 0, no backoff), wins epoch 2 with
node 12's vote, writes its LeaderChange, sends BeginQuorumEpoch and serves node 13's
Fetches (and the high watermark) to the end of the capture.

kwire as node 11: node 11's directory id, Kafka's default timers, Kafka 3.9's 8 MiB Fetch
size, fast failover off; its log is what it fetched from node 12, then as leader node
11's own segment (metadata-log-11). NODE_12_EXIT: the capture notes no exit time for node
12; it is taken as gone 1 ms after its last frame (its answer to node 11's
BeginQuorumEpoch, which completed its shutdown), so that kwire's later requests to it are
refused as genuine node 11's were (no frame). Rules: BOOTSTRAP_FETCH, KAFKA_3_9_BEGIN_QUORUM_EPOCH_
REPEATS (tests/quorum_replay/), GRANTING_VOTERS_ORDER (3.9 writes
them ascending, as kwire does: compared exactly).
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
    Outage,
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

NODE = 11

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

    config = raft_config(
        capture,
        NODE,
        fetch_max_bytes=KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
        update_voter_at_kraft_version_0=False,  # Kafka 3.9 sends none at kraft.version 0
    )
    log = ReplayLog()
    core = RaftCore(config, log, rng=random.Random(0))
    node_12_gone = 1 + max(
        e.response_ms or e.request_ms for e in capture.exchanges if 12 in (e.receiver, e.sender)
    )
    return Replay(
        capture,
        NODE,
        core,
        log,
        skip=skip,
        genuine_log=read_segment(QUORUM_ELECTION_SEGMENT),
        outages=[Outage(12, node_12_gone, None)],
    ).run()


def _shown(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_the_replay_of_node_11_runs_to_its_end() -> None:
    assert replay().stopped is None


def test_kwire_node_11_stands_at_once_when_named_first_successor() -> None:
    result = replay()
    [ended] = result.of("EndQuorumEpoch", "answer")
    stood = min(ms for ms, state, epoch, _ in result.states if state == "candidate")
    assert stood == ended.time_ms  # no election backoff for the first preferred candidate
    asked = result.of("Vote", "request")
    assert sorted(c.exchange.receiver for c in asked) == [12, 13]
    assert _shown(result, "Vote", "request") == []
    assert all(c.bytes_equal for c in asked)


def test_kwire_node_11_answers_node_12_as_node_11_did() -> None:
    result = replay()
    answers = [
        c
        for api in ("Vote", "BeginQuorumEpoch", "EndQuorumEpoch")
        for c in result.of(api, "answer")
    ]
    assert {c.exchange.sender for c in answers} == {12}
    assert len(answers) == 1 + 17 + 1
    assert [str(c) for c in answers if not c.matches] == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_11_follows_node_12_fetch_for_fetch() -> None:
    result = replay()
    fetches = result.of("Fetch", "request")
    assert {c.exchange.receiver for c in fetches} == {12}
    assert _shown(result, "Fetch", "request") == []
    assert all(c.bytes_equal for c in fetches)


def test_kwire_node_11_leads_epoch_2_as_node_11_did() -> None:
    result = replay()
    [(_, epoch, genuine, kwire)] = result.leader_changes
    assert (epoch, kwire) == (2, genuine)
    begun = result.of("BeginQuorumEpoch", "request")
    assert sorted(c.exchange.receiver for c in begun) == [12, 13]
    assert _shown(result, "BeginQuorumEpoch", "request") == []


def test_kwire_node_11_answers_node_13s_fetches_as_node_11_did() -> None:
    # Records, the high watermark of epoch 2 (from 40 on), the leader's endpoint.
    result = replay()
    answers = result.of("Fetch", "answer")
    assert {c.exchange.sender for c in answers} == {13}
    assert len(answers) == 38  # the 39th was pending when the capture stopped
    assert _shown(result, "Fetch", "answer") == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_11_sends_nothing_node_11_did_not() -> None:
    result = replay()
    extra = [(s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()]
    assert extra == []
    assert [str(e) for e in result.unsent] == []
