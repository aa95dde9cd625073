"""kwire in place of genuine Kafka 4.3.1 node 2 of quorum-prevote: the leader killed with -9.

Node 2 pre-votes with node 1, splits the vote in epoch 1, pre-votes again and wins epoch 2
with node 1's vote; it leads (BeginQuorumEpoch to 1 and 3, Fetch answers) until it is
killed with -9. Restarted, its quorum-state says it led epoch 2, so it comes back Resigned
(QuorumState.initialize) and sends EndQuorumEpoch to 3 and 1, which answer
FENCED_LEADER_EPOCH naming leader 3 in epoch 3; it follows node 3 (truncating nothing: it
had written nothing past what the others held), refuses node 1's pre-vote for epoch 4
(it still hears node 3), grants node 1's vote and follows node 1 until it is stopped.

Two kwire cores stand for the two processes: the first from node 2's start to the kill,
the second from the restart, built from the first's last PersistQuorumState and the log it
left (every append was flushed before kwire was told so). Rules as for node 1
(tests/test_quorum_replay_prevote_node1.py), with ELECTION_TIMER's start 2 x
election.timeout.ms before node 2's first pre-vote and `SEED` 0 (of seeds 0 to 9: 0, 1, 3
and 9 give node 2's story exactly, 4 and 5 with one more pre-vote round, and 2, 6, 7 and 8
lead epoch 2 only after node 1's first Fetch of it, answered UNKNOWN_LEADER_EPOCH), plus RESPONSE_LAG for one answer (#59, below), PORT_UP_BOUND (below) and
HANDLING_WINDOW (tests/quorum_replay/).
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
    Rule,
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
from kwire.protocol.error_codes import ErrorCode
from kwire.raft.voter_set import KRaftControlRecords
from kwire.records.batch import decode_batches

NODE = 2
SEGMENT = (
    CAPTURES
    / "kafka-4.3"
    / "quorum-prevote"
    / "metadata-log-2"
    / "__cluster_metadata-0"
    / "00000000000000000000.log"
)
NODE_2_SIGTERM_MS = 1796000456560  # notes.txt: kill -TERM 11957 (controller-2) at 01:00:56.560
SEED = 0
# RESPONSE_LAG (one moment): node 1's grant of node 2's pre-vote reached node 2 at 4.222 s
# (capture time from the first frame), yet node 2 answered node 1's pre-vote (#59) at
# 4.254 s from epoch 0, granted: it had not yet taken the grant from its queue (it stood in
# epoch 1 and sent its vote at 4.340 s). kwire, handed the grant on its arrival, already
# stands in epoch 1 and answers FENCED_LEADER_EPOCH.
RESPONSE_LAG = Rule(
    "RESPONSE_LAG",
    "Vote",
    "answer",
    lambda path: True,
    "the genuine node had not yet handled the pre-vote grant that made it stand",
    exchanges=frozenset({59}),
)

pytestmark = [
    pytest.mark.skipif(
        not core_has_landed(), reason="kwire.raft has not the multi-voter contract yet"
    ),
    pytest.mark.skipif(
        not QUORUM_PREVOTE.exists() or not SEGMENT.exists(),
        reason=f"no genuine capture at {QUORUM_PREVOTE}",
    ),
]


def history_to_end(log: ReplayLog) -> KRaftControlRecords:
    """What restarted node 2 reads: its bootstrap checkpoint, then its log to the end."""
    history = bootstrap_history(NODE)
    history.append(b for stored in log.batches for b in decode_batches(stored.raw))
    return history


@cache
def replay(seed: int = SEED) -> tuple[ReplayResult, ReplayResult]:
    """(before the kill, after the restart)."""
    from kwire.log.quorum_state import QuorumStateData
    from kwire.raft.core import RaftCore
    from kwire.raft.state import PersistQuorumState

    capture = load_capture(QUORUM_PREVOTE)
    config = raft_config(capture, NODE)
    common = {
        "rules": (RESPONSE_LAG,),
        "skip": bootstrap_fetches(capture, NODE),
        "genuine_log": read_segment(SEGMENT),
    }
    log = ReplayLog(snapshot=SnapshotId(end_offset=0, epoch=0))
    # ELECTION_TIMER: kwire node 2 starts 2 x election.timeout.ms before node 2's first
    # pre-vote, so that its randomized timer has it stand no later than node 2 did.
    first = min(e.request_ms for e in capture.sent_by(NODE) if e.api == "Vote") - 2000
    before = Replay(
        capture,
        NODE,
        RaftCore(config, log, rng=random.Random(seed), control_records=bootstrap_history(NODE)),
        log,
        outages=[Outage(3, None, capture.port_up_ms(3))],
        start_ms=first,
        end_ms=NODE_2_KILLED_MS,
        **common,  # type: ignore[arg-type]
    ).run()
    last = [a for _, a in before.actions if isinstance(a, PersistQuorumState)][-1]
    persisted = QuorumStateData(
        leader_id=last.leader_id,
        leader_epoch=last.leader_epoch,
        voted_id=last.voted_id,
        voted_directory_id=last.voted_directory_id,
        data_version=1,
    )
    restarted = min(e.request_ms for e in capture.sent_by(NODE) if e.request_ms > NODE_2_KILLED_MS)
    after = Replay(
        capture,
        NODE,
        RaftCore(
            config,
            log,
            persisted=persisted,
            rng=random.Random(seed),
            control_records=history_to_end(log),
        ),
        log,
        outages=[Outage(3, NODE_3_EXITED_MS, None)],
        start_ms=restarted,
        shutdown_ms=NODE_2_SIGTERM_MS,
        **common,  # type: ignore[arg-type]
    ).run()
    return before, after


def _shown(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_both_lives_of_node_2_replay_to_their_end() -> None:
    before, after = replay()
    assert (before.stopped, after.stopped) == (None, None)
    assert after.shutdown_complete_ms == NODE_2_SIGTERM_MS  # a follower stops at once


def test_kwire_node_2_wins_epoch_2_after_the_split_vote_as_node_2_did() -> None:
    before, _ = replay()
    asked = before.of("Vote", "request")
    assert [
        (
            c.exchange.request.topics[0].partitions[0].replica_epoch,
            c.exchange.request.topics[0].partitions[0].pre_vote,
        )
        for c in asked
    ] == [(0, True), (1, False), (1, True), (2, False)]
    assert _shown(before, "Vote", "request") == []
    assert _shown(before, "Vote", "answer") == []
    [(_, epoch, genuine, kwire)] = before.leader_changes
    assert (epoch, kwire.leader_id, kwire.voters) == (2, genuine.leader_id, genuine.voters)
    # GRANTING_VOTERS_ORDER: as a set (salted per JVM in 4.x; node 2's wrote [1, 2]).
    assert {v.voter_id for v in kwire.granting_voters} == {
        v.voter_id for v in genuine.granting_voters
    }


def test_kwire_node_2_leads_epoch_2_as_node_2_did() -> None:
    # PORT_UP_BOUND: a peer's listener is known up only from the first request it took
    # (node 3's: 5.479 s). kwire leads at once on the winning vote (5.478 s), node 2 after
    # its durable transition (BeginQuorumEpoch at 5.701 s): kwire's BeginQuorumEpoch to
    # node 3 falls before the bound and is refused; node 3 then fetches, so kwire (Kafka
    # 4.x) has no reason to send it again, and node 2's is the one request left unsent.
    before, _ = replay()
    begun = before.of("BeginQuorumEpoch", "request")
    assert [c.exchange.receiver for c in begun] == [1]
    assert _shown(before, "BeginQuorumEpoch", "request") == []
    refused = [
        s.destination
        for s in before.sent
        if type(s.request).__name__ == "BeginQuorumEpochRequest"
        and getattr(s.failure, "name", "") == "CONNECTION_REFUSED"
    ]
    assert refused == [3]
    assert [(e.api, e.receiver) for e in before.unsent] == [("BeginQuorumEpoch", 3)]
    answers = before.of("Fetch", "answer")
    assert {c.exchange.sender for c in answers} == {1, 3}
    assert _shown(before, "Fetch", "answer") == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_2_comes_back_resigned_and_ends_its_old_epoch() -> None:
    # QuorumState.initialize: a leader's quorum-state comes back Resigned; EndQuorumEpoch
    # for epoch 2 with no preferred candidates (it knows no replica's progress).
    _, after = replay()
    assert after.states[0][1:3] == ("resigned", 2)
    ended = after.of("EndQuorumEpoch", "request")
    assert sorted(c.exchange.receiver for c in ended) == [1, 3]
    for c in ended:
        partition = c.kwire.topics[0].partitions[0]
        assert (partition.leader_id, partition.leader_epoch) == (2, 2)
        assert partition.preferred_candidates == []


def test_kwire_node_2_follows_node_3_then_node_1_as_node_2_did() -> None:
    _, after = replay()
    followed = [(epoch, leader) for _, state, epoch, leader in after.states if state == "follower"]
    assert list(dict.fromkeys(followed)) == [(3, 3), (4, 1)]
    fetches = after.of("Fetch", "request")
    assert {c.exchange.receiver for c in fetches} == {1, 3}
    assert _shown(after, "Fetch", "request") == []
    assert all(c.bytes_equal for c in fetches)


def test_kwire_node_2_answers_node_1s_pre_vote_and_vote_as_node_2_did() -> None:
    # It refuses the pre-vote (it heard from leader 3) and grants the vote for epoch 4.
    _, after = replay()
    votes = after.of("Vote", "answer")
    assert [c.exchange.response.topics[0].partitions[0].vote_granted for c in votes] == [
        False,
        True,
    ]
    assert _shown(after, "Vote", "answer") == []
    answers = after.of("BeginQuorumEpoch", "answer") + after.of("EndQuorumEpoch", "answer")
    assert [str(c) for c in answers if not c.matches] == []


def test_kwire_node_2_ends_its_old_epoch_with_the_end_quorum_epoch_node_2_sent() -> None:
    _, after = replay()
    assert _shown(after, "EndQuorumEpoch", "request") == []


def test_kwire_node_2_is_told_of_leader_3_as_node_2_was() -> None:
    _, after = replay()
    ended = after.of("EndQuorumEpoch", "request")
    assert all(
        c.exchange.response.topics[0].partitions[0].error_code == ErrorCode.FENCED_LEADER_EPOCH
        for c in ended
    )


def test_kwire_node_2_sends_nothing_node_2_did_not() -> None:
    before, after = replay()
    for result in before, after:
        extra = [
            (s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()
        ]
        assert extra == []
    assert [str(e) for e in after.unsent] == []


def test_kwire_node_2_writes_the_voters_after_its_leader_change_as_node_2_did() -> None:
    # LeaderState.appendStartOfEpochControlRecords: the voters came from the bootstrap
    # checkpoint (offset -1), so the epoch-2 batch holds LeaderChange, KRaftVersion 1 and
    # the VotersRecord: kwire's two records are node 2's, byte for byte.
    from kwire.raft.state import AppendLeaderChange
    from kwire.records.control import decode_control_record_key

    before, _ = replay()
    [append] = [a for _, a in before.actions if isinstance(a, AppendLeaderChange)]
    assert append.epoch == 2
    genuine = next(b for b in read_segment(SEGMENT) if b.base_offset == 0)
    records = next(decode_batches(genuine.raw)).records
    assert [(decode_control_record_key(r.key).type, r.value) for r in records[1:]] == list(
        append.control_records
    )
