"""kwire in place of genuine Kafka 4.3.1 node 3 of quorum-prevote, answer for answer.

Node 3 starts last and follows node 2 (BeginQuorumEpoch v1 in epoch 2); when node 2 is
killed with -9 it waits out the fetch timeout, pre-votes (Vote v2, PreVote=true; node 1
grants), stands in epoch 3 and wins with node 1's vote; it leads epoch 3 (BeginQuorumEpoch
to node 1, Fetch answers to nodes 1 and 2), refuses restarted node 2's stale
EndQuorumEpoch (FENCED_LEADER_EPOCH), and on SIGTERM resigns: EndQuorumEpoch with
preferred candidates [1, 2], then grants node 1's pre-vote and vote for epoch 4 and takes
its BeginQuorumEpoch before exiting.

A kwire RaftCore configured as node 3 (its directory id, Kafka's default timers, fast
failover off: Kafka waits the fetch timeout) is handed the genuine traffic
(tests/quorum_replay/). As a leader its log is the genuine leader's: kwire's
LeaderChange is compared with the genuine one and the controller's records are appended
when the genuine leader first sent them to a follower.

Fetches to a voter that does not lead (Kafka 4.x's KafkaRaftClient fetches from any
bootstrap server, itself included, while it knows no leader or its leader does not answer)
follow rule BOOTSTRAP_FETCH of tests/quorum_replay/: the genuine ones are not replayed,
kwire's are answered as the genuine peer then would have.

The capture is a dynamic quorum (kraft.version 1, KIP-853): kwire's core is handed node 3's
bootstrap checkpoint (kraft.version 1 and the VotersRecord with every voter's directory
id) as the edge hands the log's control records, and follows the voter set the log holds:
its requests name each voter's directory id as node 3's did (the rule
DYNAMIC_QUORUM_VOTER_DIRECTORY_IDS that excused the zeros of a static quorum is gone).
"""

from __future__ import annotations

import random
from functools import cache
from uuid import UUID

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
    directory_id,
    load_capture,
    raft_config,
    read_segment,
)

from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.raft.voter_set import KRaftControlRecords
from kwire.records.batch import decode_batches

NODE = 3
FOLDER = CAPTURES / "kafka-4.3" / "quorum-prevote"
SEGMENT = FOLDER / "metadata-log-3" / "__cluster_metadata-0" / "00000000000000000000.log"
BOOTSTRAP_CHECKPOINT = "00000000000000000000-0000000000.checkpoint"
# notes.txt: kafka-storage random-uuid gave the directory ids.
DIRECTORY_IDS = {
    1: directory_id("dkuzBlOnSDmSdp3skeoWwA"),
    2: directory_id("NieKnjGGTVSIYo91-2YSjQ"),
    3: directory_id("H3gXG6QsRQyb4oSF40UTLA"),
}
# notes.txt, in capture time (ms since the epoch): kill -KILL of node 2 at 01:00:17.967,
# kill -TERM of node 3 at 01:00:47.498, node 3 exited at 01:00:48.694.
NODE_2_KILLED_MS = 1796000417967
NODE_3_SIGTERM_MS = 1796000447498
NODE_3_EXITED_MS = 1796000448694

pytestmark = [
    pytest.mark.skipif(
        not core_has_landed(), reason="kwire.raft has not the multi-voter contract yet"
    ),
    pytest.mark.skipif(
        not QUORUM_PREVOTE.exists() or not SEGMENT.exists(),
        reason=f"no genuine capture at {QUORUM_PREVOTE}",
    ),
]


# RESPONSE_LAG (one moment): node 1's granting vote for epoch 3 reached node 3 at 15.962 s
# (capture time from the first frame), yet node 3 answered node 1's Fetch #562 at 15.967 s
# as the candidate it still was (error NOT_LEADER_OR_FOLLOWER, no leader, no endpoint): its
# raft thread took the vote answer from its queue only later (it sent BeginQuorumEpoch at
# 16.060 s). kwire, handed the answer on its arrival, already leads and serves the Fetch.
RESPONSE_LAG = Rule(
    "RESPONSE_LAG",
    "Fetch",
    "answer",
    lambda path: True,
    "the genuine node had not yet handled the vote answer that made it leader",
    exchanges=frozenset({562}),
)


def bootstrap_history(node: int) -> KRaftControlRecords:
    """What `node` read from its bootstrap checkpoint (kraft.version 1 and the three voters
    with their directory ids), as the edge hands it to RaftCore."""
    checkpoint = FOLDER / f"metadata-log-{node}" / "__cluster_metadata-0" / BOOTSTRAP_CHECKPOINT
    history = KRaftControlRecords()
    history.load_snapshot(0, decode_batches(checkpoint.read_bytes()))
    return history


@cache
def replay() -> ReplayResult:
    from kwire.raft.core import RaftCore

    capture = load_capture(QUORUM_PREVOTE)
    node_2_back = capture.port_up_ms(2, after=NODE_2_KILLED_MS)
    config = raft_config(capture, NODE)
    # The format's bootstrap snapshot 00000000000000000000-0000000000.checkpoint.
    log = ReplayLog(snapshot=SnapshotId(end_offset=0, epoch=0))
    core = RaftCore(config, log, rng=random.Random(0), control_records=bootstrap_history(NODE))
    first = min(e.request_ms for e in capture.sent_by(NODE))
    return Replay(
        capture,
        NODE,
        core,
        log,
        rules=(RESPONSE_LAG,),
        outages=[Outage(2, NODE_2_KILLED_MS, node_2_back)],
        start_ms=first,
        end_ms=NODE_3_EXITED_MS,
        skip=bootstrap_fetches(capture, NODE),
        genuine_log=read_segment(SEGMENT),
        shutdown_ms=NODE_3_SIGTERM_MS,
    ).run()


def test_the_replay_of_node_3_runs_to_its_end() -> None:
    # kwire never asks for what the genuine traffic cannot feed (e.g. a Fetch at another
    # offset, whose genuine answer would not append).
    result = replay()
    assert result.stopped is None


def _shown(result: ReplayResult, api: str, kind: str) -> list[str]:
    return [str(c) for c in result.of(api, kind) if not c.matches]


def test_kwire_node_3_answers_every_vote_and_pre_vote_as_node_3_did() -> None:
    result = replay()
    votes = result.of("Vote", "answer")
    # node 1's pre-vote in epoch 2 (refused FENCED_LEADER_EPOCH: 3 already stood in epoch 3),
    # node 1's pre-vote in epoch 3 (granted: 3 resigned) and its vote in epoch 4.
    assert [
        (c.exchange.sender, c.exchange.request.topics[0].partitions[0].pre_vote) for c in votes
    ] == [(1, True), (1, True), (1, False)]
    assert _shown(result, "Vote", "answer") == []
    assert all(c.bytes_equal for c in votes)


def test_kwire_node_3_asks_for_pre_votes_and_votes_as_node_3_did() -> None:
    result = replay()
    asked = result.of("Vote", "request")
    assert [
        (c.exchange.receiver, c.exchange.request.topics[0].partitions[0].pre_vote) for c in asked
    ] == [(1, True), (1, False)]
    assert _shown(result, "Vote", "request") == []


def test_kwire_node_3_answers_begin_and_end_quorum_epoch_as_node_3_did() -> None:
    result = replay()
    answers = result.of("BeginQuorumEpoch", "answer") + result.of("EndQuorumEpoch", "answer")
    # BeginQuorumEpoch from 2 (epoch 2); restarted node 2's EndQuorumEpoch of epoch 2,
    # answered FENCED_LEADER_EPOCH with leader 3 in epoch 3; node 1's BeginQuorumEpoch of
    # epoch 4 while shutting down.
    assert [(c.exchange.api, c.exchange.sender) for c in answers] == [
        ("BeginQuorumEpoch", 2),
        ("BeginQuorumEpoch", 1),
        ("EndQuorumEpoch", 2),
    ]
    [fenced] = result.of("EndQuorumEpoch", "answer")
    assert fenced.exchange.response.topics[0].partitions[0].error_code == (
        ErrorCode.FENCED_LEADER_EPOCH
    )
    assert [str(c) for c in answers if not c.matches] == []
    assert all(c.bytes_equal for c in answers)


def test_kwire_node_3_sends_nothing_but_end_quorum_epoch_while_shutting_down() -> None:
    # KafkaRaftClient.pollUnattachedAsVoter (4.x): no Fetch while a graceful shutdown is
    # pending; node 1's BeginQuorumEpoch completes it. Node 2's listener was not yet up at
    # the SIGTERM: the connection attempts refused before it never reached the wire.
    from kwire.raft.state import SendFailure

    result = replay()
    during = [s for s in result.sent if s.during_shutdown]
    assert {type(s.request).__name__ for s in during} == {"EndQuorumEpochRequest"}
    on_wire = [s.destination for s in during if s.failure != SendFailure.CONNECTION_REFUSED]
    assert on_wire == [1, 2]
    assert result.shutdown_complete_ms is not None


def test_kwire_node_3_answers_node_1s_begin_quorum_epoch_as_node_3_did() -> None:
    result = replay()
    begun = [c for c in result.of("BeginQuorumEpoch", "answer") if c.exchange.sender == 1]
    assert len(begun) == 1
    assert begun[0].matches, str(begun[0])
    assert begun[0].bytes_equal


def test_kwire_node_3_as_leader_begins_its_epoch_as_node_3_did() -> None:
    result = replay()
    [begin] = result.of("BeginQuorumEpoch", "request")
    assert begin.exchange.receiver == 1  # node 2 was dead: its connection refused
    assert begin.matches, str(begin)


def test_kwire_node_3_resigning_names_the_genuine_preferred_candidates() -> None:
    # LeaderState's preferred successors, ordered by replication progress: [1, 2].
    result = replay()
    ended = result.of("EndQuorumEpoch", "request")
    assert sorted(c.exchange.receiver for c in ended) == [1, 2]
    for c in ended:
        partition = c.kwire.topics[0].partitions[0]
        assert [r.candidate_id for r in partition.preferred_candidates] == [1, 2]
        assert (partition.leader_id, partition.leader_epoch) == (3, 3)


def test_kwire_node_3_resigns_with_the_end_quorum_epoch_node_3_sent() -> None:
    result = replay()
    ended = result.of("EndQuorumEpoch", "request")
    assert [str(c) for c in ended if not c.matches] == []


def test_kwire_node_3_writes_the_leader_change_node_3_wrote() -> None:
    # GRANTING_VOTERS_ORDER (tests/quorum_replay/): 4.x's order is salted per JVM (node 3's
    # wrote [3, 1]); compared as a set.
    result = replay()
    [(_, epoch, genuine, kwire)] = result.leader_changes
    assert epoch == 3
    assert genuine is not None
    assert (kwire.version, kwire.leader_id, kwire.voters) == (
        genuine.version,
        genuine.leader_id,
        genuine.voters,
    )
    assert sorted(v.voter_id for v in kwire.granting_voters) == sorted(
        v.voter_id for v in genuine.granting_voters
    )


def test_kwire_node_3_answers_every_fetch_as_node_3_did() -> None:
    result = replay()
    answers = result.of("Fetch", "answer")
    assert {c.exchange.sender for c in answers} == {1, 2}
    assert _shown(result, "Fetch", "answer") == []
    assert all(c.bytes_equal for c in answers if not c.excused)
    assert [c.exchange.index for c in answers if c.excused] == [562]  # RESPONSE_LAG


def test_kwire_node_3_fetches_from_its_leaders_as_node_3_did() -> None:
    result = replay()
    fetches = result.of("Fetch", "request")
    assert {c.exchange.receiver for c in fetches} == {2}
    assert _shown(result, "Fetch", "request") == []


def test_kwire_node_3_sends_nothing_node_3_did_not() -> None:
    result = replay()
    extra = [(s.time_ms, s.destination, type(s.request).__name__) for s in result.unpaired_sends()]
    assert extra == []
    # While node 2 was dead kwire's requests to it were refused, as node 3's connections were.
    refused = [s for s in result.sent if getattr(s.failure, "name", None) == "CONNECTION_REFUSED"]
    assert refused and all(s.destination == 2 and s.time_ms >= NODE_2_KILLED_MS for s in refused)
    assert [str(e) for e in result.unsent] == []


def test_kwire_node_3_names_each_voters_directory_id_as_node_3_did() -> None:
    # Handed the bootstrap checkpoint's VotersRecord, kwire addresses Vote and
    # BeginQuorumEpoch to each voter's replica key and names the preferred candidates'
    # directory ids in EndQuorumEpoch, as node 3 did.
    result = replay()
    shown = [
        str(c)
        for api in ("Vote", "BeginQuorumEpoch", "EndQuorumEpoch")
        for c in result.of(api, "request")
        if not c.matches
    ]
    assert shown == []


def test_directory_ids_of_the_notes_are_the_ones_on_the_wire() -> None:
    capture = load_capture(QUORUM_PREVOTE)
    for exchange in capture.exchanges:
        if exchange.api == "Fetch":
            partition = exchange.request.topics[0].partitions[0]
            assert partition.replica_directory_id == DIRECTORY_IDS[exchange.sender]
    assert DIRECTORY_IDS[3] == UUID("1f78171b-a42c-450c-9be2-8485e345132c")


def test_kwire_node_3_writes_no_voter_records_at_the_start_of_epoch_3() -> None:
    # LeaderState.appendStartOfEpochControlRecords: the voters come from node 2's epoch-2
    # batch (offset 2, not the bootstrap checkpoint's -1) and node 3's entry is unchanged,
    # so node 3's LeaderChange batch holds the LeaderChange alone, as the genuine one did.
    from kwire.raft.state import AppendLeaderChange

    result = replay()
    appends = [a for _, a in result.actions if isinstance(a, AppendLeaderChange)]
    assert [(a.epoch, a.control_records) for a in appends] == [(3, ())]
    genuine = next(b for b in read_segment(SEGMENT) if b.epoch == 3)
    assert len(list(decode_batches(genuine.raw))[0].records) == 1
