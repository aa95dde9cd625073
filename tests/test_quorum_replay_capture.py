"""The genuine quorum captures parse into per-node timelines, and the replay's log answers
as Kafka's log does: the ground the replay tests (test_quorum_replay_*.py) stand on."""

from __future__ import annotations

from collections import Counter

import pytest
from quorum_replay import (
    APPROXIMATE,
    QUORUM_ELECTION,
    QUORUM_PREVOTE,
    ReplayLog,
    answer_fetch_as_peer,
    differences,
    load_capture,
)

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import encode_response

pytestmark = pytest.mark.skipif(
    not QUORUM_ELECTION.exists() or not QUORUM_PREVOTE.exists(),
    reason="no genuine quorum captures (../shared/captures is absent)",
)


def test_ports_map_to_the_node_ids_of_the_controller_configs() -> None:
    # quorum-election: controller.quorum.voters=11@127.0.0.1:19101,12@...:19102,13@...:19103;
    # quorum-prevote: controller-N.properties listen on 127.0.0.1:3931N.
    assert load_capture(QUORUM_ELECTION).endpoints == {
        11: ("127.0.0.1", 19101),
        12: ("127.0.0.1", 19102),
        13: ("127.0.0.1", 19103),
    }
    assert load_capture(QUORUM_PREVOTE).endpoints == {
        1: ("127.0.0.1", 39311),
        2: ("127.0.0.1", 39312),
        3: ("127.0.0.1", 39313),
    }


def test_node_13_of_quorum_election_only_follows() -> None:
    capture = load_capture(QUORUM_ELECTION)
    assert Counter(e.api for e in capture.sent_by(13)) == {"Fetch": 81}
    received = capture.received_by(13)
    assert Counter(e.api for e in received) == {
        "BeginQuorumEpoch": 35,
        "Vote": 2,
        "EndQuorumEpoch": 1,
    }
    votes = [e for e in received if e.api == "Vote"]
    # It granted 12's vote in epoch 1 and 11's in epoch 2.
    assert [(e.sender, e.request.topics[0].partitions[0].replica_epoch) for e in votes] == [
        (12, 1),
        (11, 2),
    ]
    assert all(e.response.topics[0].partitions[0].vote_granted for e in votes)


def test_every_quorum_request_between_voters_is_answered_but_the_last_long_polls() -> None:
    # 3.9: node 13's last Fetch to leader 11 was pending when the capture stopped.
    election = load_capture(QUORUM_ELECTION)
    assert [str(e) for e in election.exchanges if e.response is None] == [
        str(election.sent_by(13)[-1])
    ]
    # 4.3: the long polls of nodes 1 and 3 pending at leader 2 when it was killed with -9.
    prevote = load_capture(QUORUM_PREVOTE)
    lost = [e for e in prevote.exchanges if e.response is None]
    assert sorted((e.sender, e.receiver, e.api) for e in lost) == [
        (1, 2, "Fetch"),
        (3, 2, "Fetch"),
    ]


def test_pre_votes_of_quorum_prevote_are_the_ones_votes_decoded_lists() -> None:
    # votes-decoded.txt: 13 Vote v2 exchanges, 7 with PreVote=true.
    votes = [e for e in load_capture(QUORUM_PREVOTE).exchanges if e.api == "Vote"]
    assert len(votes) == 13
    assert sum(e.request.topics[0].partitions[0].pre_vote for e in votes) == 7
    refused = [e for e in votes if e.response.topics[0].partitions[0].error_code]
    assert [(e.sender, e.receiver) for e in refused] == [(1, 3)]
    assert refused[0].response.topics[0].partitions[0].error_code == ErrorCode.FENCED_LEADER_EPOCH


def _fetched_records(node: int) -> list[bytes]:
    capture = load_capture(QUORUM_ELECTION)
    return [
        e.response.responses[0].partitions[0].records
        for e in capture.sent_by(node)
        if e.response is not None
        and e.response.responses
        and e.response.responses[0].partitions[0].records
    ]


def test_the_replay_log_holds_what_the_follower_fetched() -> None:
    log = ReplayLog()
    for records in _fetched_records(13):
        log.append(records)
    # status-after.txt: the high watermark of epoch 2 reached 74 as node 13 kept up.
    assert log.end_offset >= 74
    assert log.latest_epoch == 2
    # Epoch 1 ran from offset 0 to 39 (node 11's Vote in epoch 2 named last offset 39).
    assert log.end_offset_for_epoch(1) == (1, 39)
    assert log.end_offset_for_epoch(2) == (2, log.end_offset)
    assert log.end_offset_for_epoch(0) == (0, 0)  # older than the log: ends where it starts
    assert log.end_offset_for_epoch(3) is None


def test_the_replay_log_truncates_and_reads_whole_batches() -> None:
    log = ReplayLog()
    for records in _fetched_records(13):
        log.append(records)
    first_of_epoch_2 = next(b for b in log.batches if b.epoch == 2)
    assert log.read(first_of_epoch_2.base_offset, 1) == first_of_epoch_2.raw
    log.truncate_to(first_of_epoch_2.base_offset)
    assert (log.end_offset, log.latest_epoch) == (39, 1)
    assert log.end_offset_for_epoch(1) == (1, 39)
    assert log.end_offset_for_epoch(2) is None  # newer than any epoch held (Kafka: UNDEFINED)


def test_differences_name_the_field_that_differs() -> None:
    capture = load_capture(QUORUM_ELECTION)
    vote_1, vote_2 = [e.request for e in capture.received_by(13) if e.api == "Vote"]
    found = {d.path: (d.genuine, d.kwire) for d in differences(vote_1, vote_2)}
    assert found == {
        "topics[0].partitions[0].replica_epoch": (1, 2),
        "topics[0].partitions[0].replica_id": (12, 11),
        "topics[0].partitions[0].replica_directory_id": (
            vote_1.topics[0].partitions[0].replica_directory_id,
            vote_2.topics[0].partitions[0].replica_directory_id,
        ),
        "topics[0].partitions[0].last_offset_epoch": (0, 1),
        "topics[0].partitions[0].last_offset": (0, 39),
    }


def test_a_peer_answers_a_bootstrap_fetch_as_the_genuine_peers_did() -> None:
    # Rule BOOTSTRAP_FETCH answers kwire's Fetches to voters it does not follow from the
    # genuine peer's state. Where genuine nodes sent such Fetches (quorum-prevote: at start,
    # and after the leader was killed) and the peer turned them down, the answer built from
    # what the peer showed before it answered is the genuine one, byte for byte. (A peer
    # that had just become leader served records: the replay does not claim those.)
    capture = load_capture(QUORUM_PREVOTE)
    checked = served = 0
    for exchange in capture.exchanges:
        if not capture.is_bootstrap_fetch(exchange) or exchange.response is None:
            continue
        if exchange.sender == exchange.receiver:
            continue  # a node's own port: its view is its own, not a peer's
        if exchange.response.responses[0].partitions[0].error_code == ErrorCode.NONE:
            served += 1
            continue
        answer, reason = answer_fetch_as_peer(
            capture, exchange.receiver, exchange.request, exchange.response_ms, before=True
        )
        assert APPROXIMATE not in reason
        raw = encode_response(1, exchange.api_version, exchange.header.correlation_id, answer)
        assert raw == exchange.response_raw, str(exchange)
        checked += 1
    assert checked > 20
    assert served <= 2
