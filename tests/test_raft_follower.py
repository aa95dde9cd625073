"""The follower and the observer: the Fetch loop, errors that name a new leader,
divergence, the high watermark, fetch timeouts and fast failover, snapshot download
(FollowerState and KafkaRaftClient.handleFetchResponse; Kafka 4.3.1's values)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from test_raft_election import sent, vote
from test_raft_pump import CLUSTER, Cluster, ListLog, config

from kwire.log.quorum_state import QuorumStateData
from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_request
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest, FetchSnapshotResponse
from kwire.raft.core import FetchReady, RaftCore
from kwire.raft.state import (
    MAX_EPOCH,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    AppendAsFollower,
    HighWatermarkAdvanced,
    InstallSnapshot,
    PersistQuorumState,
    RaftConfig,
    SendFailure,
    StartSnapshotFetch,
    TruncateTo,
    WriteSnapshotChunk,
)
from kwire.raft.voter_set import VoterEndpoint


def follower(
    entries: list[int] | None = None,
    *,
    leader: int = 3,
    epoch: int = 2,
    node_id: int = 1,
    voters: int = 3,
    fast_failover: bool = True,
) -> tuple[RaftCore, ListLog, FetchRequest]:
    log = ListLog(list(entries or []))
    raft = RaftCore(
        dataclasses.replace(config(node_id, voters), fast_failover=fast_failover),
        log,
        persisted=QuorumStateData(leader_id=leader, leader_epoch=epoch),
        rng=random.Random(0),
    )
    (first,) = sent(raft.start(0))
    assert first.destination == leader and isinstance(first.request, FetchRequest)
    return raft, log, first.request


def response(
    leader: int,
    epoch: int,
    *,
    error: ErrorCode = ErrorCode.NONE,
    records: bytes = b"",
    hw: int = -1,
    diverging: tuple[int, int] | None = None,
    snapshot: tuple[int, int] | None = None,
) -> FetchResponse:
    data = FetchResponse.PartitionData(
        partition_index=0, error_code=error, high_watermark=hw, records=records
    )
    data.current_leader = FetchResponse.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
    if diverging:
        data.diverging_epoch = FetchResponse.EpochEndOffset(
            epoch=diverging[0], end_offset=diverging[1]
        )
    if snapshot:
        data.snapshot_id = FetchResponse.SnapshotId(end_offset=snapshot[0], epoch=snapshot[1])
    return FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(topic_id=METADATA_TOPIC_ID, partitions=[data])
        ]
    )


def test_a_follower_fetches_from_its_log_end_with_the_last_epoch() -> None:
    _, _, request = follower([1, 1, 2])
    p = request.topics[0].partitions[0]
    assert request.cluster_id == CLUSTER
    assert request.replica_state.replica_id == 1 and request.replica_id == -1
    assert request.max_wait_ms == 500
    assert request.topics[0].topic_id == METADATA_TOPIC_ID
    assert (p.current_leader_epoch, p.fetch_offset, p.last_fetched_epoch) == (2, 3, 2)


def test_records_are_appended_then_the_high_watermark_and_the_next_fetch_follow_the_flush() -> None:
    raft, log, request = follower([1])
    actions = raft.on_response(3, request, response(3, 2, records=bytes([2, 2]), hw=5), 10)
    assert actions == [AppendAsFollower(records=bytes([2, 2]))]  # nothing more until flushed
    log.entries += [2, 2]
    actions = raft.on_flushed(3, 11)
    # min(the leader's 5, our end 3)
    assert actions[0] == HighWatermarkAdvanced(offset=3)
    (fetch,) = sent(actions)
    assert fetch.request.topics[0].partitions[0].fetch_offset == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "entries", "diverging", "offset"),
    [
        ("the leader's epoch ends earlier", [1, 1, 1, 3, 3], (1, 2), 2),
        ("our epoch ends earlier", [1, 1, 3, 3], (1, 3), 2),
        ("we hold no such epoch", [3, 3], (2, 1), 0),
    ],
)
def test_a_diverging_epoch_truncates_to_where_the_logs_agree(
    name: str, entries: list[int], diverging: tuple[int, int], offset: int
) -> None:
    raft, _, request = follower(entries, epoch=4)
    actions = raft.on_response(3, request, response(3, 4, diverging=diverging), 10)
    assert actions == [TruncateTo(offset=offset)], name
    # the next Fetch waits for the truncation: it goes at the next poll
    assert raft.next_deadline_ms() == 10
    (fetch,) = sent(raft.poll(10))
    assert fetch.destination == 3


def test_a_follower_never_truncates_below_its_high_watermark() -> None:
    raft, log, request = follower([1, 1, 1])
    (fetch,) = sent(raft.on_response(3, request, response(3, 2, hw=3), 10))
    assert raft.high_watermark == 3
    actions = raft.on_response(3, fetch.request, response(3, 2, diverging=(1, 1)), 12)
    assert not any(isinstance(a, TruncateTo) for a in actions)
    assert log.entries == [1, 1, 1]


@pytest.mark.parametrize("error", [ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.NOT_LEADER_OR_FOLLOWER])
def test_an_error_naming_a_newer_leader_moves_the_follower_to_it(error: ErrorCode) -> None:
    raft, _, request = follower()
    actions = raft.on_response(3, request, response(2, 5, error=error), 10)
    assert raft.state_name == "follower" and (raft.epoch, raft.leader_id) == (5, 2)
    assert actions[0] == PersistQuorumState(leader_id=2, leader_epoch=5, voted_id=-1)
    assert [s.destination for s in sent(actions)] == [2]


def test_a_voter_without_a_successful_fetch_in_fetch_timeout_stands_for_election() -> None:
    raft, _, _ = follower()
    assert raft.next_deadline_ms() == 2000
    raft.poll(1999)
    assert raft.state_name == "follower"
    raft.poll(2000)
    assert raft.state_name == "prospective" and raft.epoch == 2


def test_an_observer_keeps_following_without_a_fetch_timeout() -> None:
    raft, _, _ = follower(node_id=7)
    raft.poll(60_000)
    assert raft.state_name == "follower" and raft.leader_id == 3


@pytest.mark.parametrize("failure", [SendFailure.CONNECTION_LOST, SendFailure.CONNECTION_REFUSED])
def test_a_lost_leader_connection_fails_over_at_once(failure: SendFailure) -> None:
    raft, _, request = follower()
    raft.on_send_failed(3, request, failure, 100)
    assert raft.next_deadline_ms() < 150
    raft.poll(149)  # within min(50, election_timeout / 10) ms, not fetch_timeout's 2000
    assert raft.state_name == "prospective"


@pytest.mark.parametrize("failure", [SendFailure.TIMEOUT, SendFailure.AUTHENTICATION_FAILED])
def test_a_timed_out_or_refused_fetch_still_waits_the_fetch_timeout(failure: SendFailure) -> None:
    """A leader that answers nothing in time, or whose TLS or SASL refuses this node, is
    alive: only the fetch timeout makes the follower stand."""
    raft, _, request = follower()
    raft.on_send_failed(3, request, failure, 1999)
    assert raft.state_name == "follower"
    raft.poll(1999)
    assert raft.state_name == "follower"
    raft.poll(2000)
    assert raft.state_name == "prospective"


def test_failover_after_a_lost_connection_is_quick_in_a_quorum() -> None:
    for fast, most_ms in [(True, 1000), (False, 5000)]:
        cluster = Cluster(3, seed=7, fast_failover=int(fast))
        cluster.start()
        cluster.run_until(cluster.stable)
        (old,) = cluster.leaders()
        cluster.crash(old)
        start = cluster.now
        cluster.run_until(cluster.stable)
        took = cluster.now - start
        if fast:
            assert took < most_ms, took  # no 2 s fetch timeout
        else:
            assert 2000 <= took < most_ms, took


def test_a_follower_refuses_a_voters_fetch_naming_the_leader_it_knows() -> None:
    raft, _, _ = follower()
    request = FetchRequest(
        cluster_id=CLUSTER,
        replica_state=FetchRequest.ReplicaState(replica_id=2),
        topics=[
            FetchRequest.FetchTopic(
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        current_leader_epoch=2, fetch_offset=0, last_fetched_epoch=0
                    )
                ],
            )
        ],
    )
    outcome = raft.fetch(request, 5)
    assert isinstance(outcome, FetchReady)
    data = outcome.response.responses[0].partitions[0]
    assert data.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (data.current_leader.leader_id, data.current_leader.leader_epoch) == (3, 2)
    assert [(e.node_id, e.port) for e in outcome.response.node_endpoints] == [(3, 9093)]


def test_an_observer_finds_the_leader_through_a_voter_that_is_not_it() -> None:
    cluster = Cluster(3, seed=2)
    cluster.start()
    cluster.run_until(cluster.stable)
    (leader,) = cluster.leaders()
    observer = cluster.add(9, config(9, 3))
    cluster.carry_out(9, observer.core.start(cluster.now))
    assert observer.core.state_name == "unattached"
    cluster.run_until(lambda: observer.core.leader_id == leader)
    cluster.run_until(lambda: observer.log.entries == cluster.nodes[leader].log.entries)
    assert observer.core.state_name == "follower"


# -- snapshot download (KIP-630) ----------------------------------------------------------------


def chunk(snapshot: SnapshotId, position: int, data: bytes, size: int) -> FetchSnapshotResponse:
    part = FetchSnapshotResponse.PartitionSnapshot(
        index=0, size=size, position=position, unaligned_records=data
    )
    part.snapshot_id = FetchSnapshotResponse.SnapshotId(
        end_offset=snapshot.end_offset, epoch=snapshot.epoch
    )
    part.current_leader = FetchSnapshotResponse.LeaderIdAndEpoch(leader_id=3, leader_epoch=2)
    return FetchSnapshotResponse(
        topics=[FetchSnapshotResponse.TopicSnapshot(name=METADATA_TOPIC, partitions=[part])]
    )


def test_a_follower_below_the_log_start_downloads_and_installs_the_snapshot() -> None:
    raft, log, request = follower([])
    snapshot = SnapshotId(end_offset=40, epoch=2)
    actions = raft.on_response(3, request, response(3, 2, snapshot=(40, 2)), 10)
    assert actions[0] == StartSnapshotFetch(snapshot_id=snapshot)
    (first,) = sent(actions)
    assert isinstance(first.request, FetchSnapshotRequest)
    p = first.request.topics[0].partitions[0]
    assert (p.snapshot_id.end_offset, p.snapshot_id.epoch, p.position) == (40, 2, 0)
    actions = raft.on_response(3, first.request, chunk(snapshot, 0, b"abcd", 6), 11)
    assert actions[0] == WriteSnapshotChunk(snapshot_id=snapshot, position=0, data=b"abcd")
    (second,) = sent(actions)
    assert second.request.topics[0].partitions[0].position == 4  # type: ignore[union-attr]
    actions = raft.on_response(3, second.request, chunk(snapshot, 4, b"ef", 6), 12)
    assert actions == [
        WriteSnapshotChunk(snapshot_id=snapshot, position=4, data=b"ef"),
        InstallSnapshot(snapshot_id=snapshot),
    ]
    log.entries, log.log_start_offset = [], 40  # what the edge's install does (log end = 40)
    log.entries = [2] * 40
    actions = raft.on_flushed(40, 13)
    assert actions[0] == HighWatermarkAdvanced(offset=40)
    (fetch,) = sent(actions)
    assert isinstance(fetch.request, FetchRequest)


# -- BeginQuorumEpoch and EndQuorumEpoch requests ------------------------------------------------


def begin(
    leader: int, epoch: int, *, voter_id: int = 1, cluster_id: str | None = CLUSTER
) -> BeginQuorumEpochRequest:
    return BeginQuorumEpochRequest(
        cluster_id=cluster_id,
        voter_id=voter_id,
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(leader_id=leader, leader_epoch=epoch)
                ],
            )
        ],
    )


def end(leader: int, epoch: int, preferred: list[int]) -> EndQuorumEpochRequest:
    return EndQuorumEpochRequest(
        cluster_id=CLUSTER,
        topics=[
            EndQuorumEpochRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    EndQuorumEpochRequest.PartitionData(
                        leader_id=leader,
                        leader_epoch=epoch,
                        preferred_candidates=[
                            EndQuorumEpochRequest.ReplicaInfo(candidate_id=c) for c in preferred
                        ],
                    )
                ],
            )
        ],
    )


@pytest.mark.parametrize(
    ("name", "request_", "top", "partition", "state"),
    [
        ("a new leader", begin(2, 3), ErrorCode.NONE, (ErrorCode.NONE, 3, 2), ("follower", 3, 2)),
        (
            "an old epoch",
            begin(2, 1),
            ErrorCode.NONE,
            (ErrorCode.FENCED_LEADER_EPOCH, 2, 3),
            ("follower", 2, 3),
        ),
        (
            "no leader id",
            begin(-1, 3),
            ErrorCode.NONE,
            (ErrorCode.INVALID_REQUEST, 2, 3),
            ("follower", 2, 3),
        ),
        (
            "another voter's",
            begin(2, 3, voter_id=5),
            ErrorCode.NONE,
            (ErrorCode.INVALID_VOTER_KEY, 3, 2),
            ("follower", 3, 2),
        ),
        (
            "another cluster",
            begin(2, 3, cluster_id="x"),
            ErrorCode.INCONSISTENT_CLUSTER_ID,
            None,
            ("follower", 2, 3),
        ),
    ],
)
def test_begin_quorum_epoch_requests_are_answered_as_kafka_does(
    name: str,
    request_: BeginQuorumEpochRequest,
    top: ErrorCode,
    partition: tuple[ErrorCode, int, int] | None,
    state: tuple[str, int, int],
) -> None:
    raft, _, _ = follower()
    response, _ = raft.handle_begin_quorum_epoch(request_, 10)
    assert response.error_code == top, name
    if partition is not None:
        p = response.topics[0].partitions[0]
        assert (p.error_code, p.leader_epoch, p.leader_id) == partition, name
    assert (raft.state_name, raft.epoch, raft.leader_id) == state, name


@pytest.mark.parametrize(("preferred", "stands_at"), [([1, 2], 10), ([2, 1], 510), ([2], 1010)])
def test_end_quorum_epoch_from_the_leader_shortens_the_fetch_timeout_by_rank(
    preferred: list[int], stands_at: int
) -> None:
    raft, _, _ = follower(fast_failover=False)  # Kafka's timing
    response, _ = raft.handle_end_quorum_epoch(end(3, 2, preferred), 10)
    assert response.topics[0].partitions[0].error_code == ErrorCode.NONE
    if stands_at > 10:
        raft.poll(stands_at - 1)
        assert raft.state_name == "follower"
    raft.poll(stands_at)
    assert raft.state_name == "prospective"


@pytest.mark.parametrize(
    ("preferred", "behind", "window"),
    [
        ([1, 2], False, (10, 10)),  # first: at once
        ([2, 1], False, (60, 85)),  # second: one step D = 50 ms (+ [0, 25)), not 500 ms
        ([1, 2], True, (110, 135)),  # first, but its controller must replay: after node 2
        ([2], False, (60, 85)),  # not named: after every named one
    ],
)
def test_with_fast_failover_successors_stand_one_step_apart_and_a_replaying_one_last(
    preferred: list[int], behind: bool, window: tuple[int, int]
) -> None:
    raft, _, _ = follower()
    raft.controller_behind = behind
    raft.handle_end_quorum_epoch(end(3, 2, preferred), 10)
    if window[0] > 10:
        raft.poll(window[0] - 1)
        assert raft.state_name == "follower"
    raft.poll(window[1])
    assert raft.state_name == "prospective"


@pytest.mark.parametrize(("fast_failover", "granted"), [(True, True), (False, False)])
def test_after_end_quorum_epoch_the_successors_pre_vote_is_granted_with_fast_failover(
    fast_failover: bool, granted: bool
) -> None:
    # Kafka's follower keeps refusing pre-votes once it has fetched from its leader, even
    # after that leader announced its resignation; kwire's (fast failover) grants them.
    raft = RaftCore(
        config(1, 3, fast_failover=int(fast_failover)),
        ListLog([]),
        persisted=QuorumStateData(leader_id=3, leader_epoch=2),
        rng=random.Random(0),
    )
    (first,) = sent(raft.start(0))
    raft.on_response(3, first.request, response(3, 2), 5)  # a fetch succeeded
    before, _ = raft.handle_vote(vote(2, 2, pre_vote=True), 6)
    assert before.topics[0].partitions[0].vote_granted is False
    raft.handle_end_quorum_epoch(end(3, 2, [2, 1]), 10)
    answer, _ = raft.handle_vote(vote(2, 2, pre_vote=True), 11)
    assert answer.topics[0].partitions[0].vote_granted is granted
    assert raft.epoch == 2  # a pre-vote never moves the epoch


@pytest.mark.parametrize(("fast_failover", "stands_by"), [(True, 100), (False, 2000)])
def test_a_leader_saying_it_no_longer_leads_its_epoch_is_a_lost_leader_with_fast_failover(
    fast_failover: bool, stands_by: int
) -> None:
    # A resigned leader answers Fetch NOT_LEADER_OR_FOLLOWER naming itself in its epoch.
    raft = RaftCore(
        config(1, 3, fast_failover=int(fast_failover)),
        ListLog([]),
        persisted=QuorumStateData(leader_id=3, leader_epoch=2),
        rng=random.Random(0),
    )
    (first,) = sent(raft.start(0))
    (second,) = sent(raft.on_response(3, first.request, response(3, 2), 5))
    assert second.destination == 3 and isinstance(second.request, FetchRequest)
    resigned = response(3, 2, error=ErrorCode.NOT_LEADER_OR_FOLLOWER)
    raft.on_response(3, second.request, resigned, 20)
    raft.poll(5 + stands_by - 1)
    assert raft.state_name == ("prospective" if fast_failover else "follower")
    raft.poll(5 + stands_by)
    assert raft.state_name == "prospective"


def test_hostile_answers_are_refused_without_acting_on_them() -> None:
    raft, log, request = follower([1, 1])
    # a negative diverging end: refused, no truncation (and the leader backs off)
    actions = raft.on_response(3, request, response(3, 2, diverging=(1, -5)), 10)
    assert not any(isinstance(a, TruncateTo) for a in actions)
    # an error code this build does not know: no crash, nothing appended
    raft, log, request = follower([1, 1])
    odd = response(3, 2, records=bytes([2]))
    odd.responses[0].partitions[0].error_code = 31_999
    actions = raft.on_response(3, request, odd, 10)
    assert not any(isinstance(a, AppendAsFollower) for a in actions)
    assert raft.state_name == "follower" and log.entries == [1, 1]


def test_a_snapshot_chunk_past_the_announced_size_starts_the_download_over() -> None:
    raft, _, request = follower([])
    snapshot = SnapshotId(end_offset=40, epoch=2)
    (first,) = sent(raft.on_response(3, request, response(3, 2, snapshot=(40, 2)), 10))
    actions = raft.on_response(3, first.request, chunk(snapshot, 0, b"abcdefgh", 6), 11)
    assert not any(isinstance(a, WriteSnapshotChunk | InstallSnapshot) for a in actions)
    # what goes next is a plain Fetch (the leader will name the snapshot anew)
    following = sent(actions + raft.poll(40))
    assert following and all(isinstance(s.request, FetchRequest) for s in following)


@pytest.mark.parametrize("epoch", [MAX_EPOCH + 1, 2**31 - 1])
def test_an_epoch_the_quorum_could_never_move_past_is_refused_and_not_followed(epoch: int) -> None:
    # A hostile frame naming epoch 2**31-1 would otherwise leave the quorum leaderless for
    # good (the next election overflows int32); MAX_EPOCH itself is still taken.
    raft, _, request = follower()
    vote_answer, vote_actions = raft.handle_vote(vote(2, epoch, last_epoch=1), 5)
    assert vote_answer.topics[0].partitions[0].error_code == ErrorCode.INVALID_REQUEST
    begin_answer, _ = raft.handle_begin_quorum_epoch(begin(2, epoch), 6)
    assert begin_answer.topics[0].partitions[0].error_code == ErrorCode.INVALID_REQUEST
    end_answer, _ = raft.handle_end_quorum_epoch(end(2, epoch, [1]), 7)
    assert end_answer.topics[0].partitions[0].error_code == ErrorCode.INVALID_REQUEST
    raft.on_response(3, request, response(2, epoch, error=ErrorCode.FENCED_LEADER_EPOCH), 8)
    assert (raft.state_name, raft.epoch, raft.leader_id) == ("follower", 2, 3)
    assert not any(isinstance(a, PersistQuorumState) for a in vote_actions)
    taken, _ = raft.handle_begin_quorum_epoch(begin(2, MAX_EPOCH), 9)
    assert taken.topics[0].partitions[0].error_code == ErrorCode.NONE
    assert (raft.epoch, raft.leader_id) == (MAX_EPOCH, 2)


# -- observers through controller.quorum.bootstrap.servers (KIP-853) -------------------------

BOOTSTRAP = VoterEndpoint(name="CONTROLLER", host="127.0.0.1", port=19111)


def bootstrap_observer(persisted: QuorumStateData | None = None) -> tuple[RaftCore, FetchRequest]:
    """Node 22 of ../shared/captures/kafka-3.9/dynamic-quorum: formatted
    --no-initial-controllers (no voters known), one bootstrap server."""
    raft = RaftCore(
        RaftConfig(
            node_id=22,
            cluster_id=CLUSTER,
            voters=(),
            bootstrap_servers=((BOOTSTRAP.host, BOOTSTRAP.port),),
        ),
        ListLog([]),
        persisted=persisted,
        rng=random.Random(0),
    )
    (first,) = sent(raft.start(0))
    assert (first.destination, first.endpoint) == (-2, BOOTSTRAP)  # Kafka's id for it
    assert isinstance(first.request, FetchRequest)
    return raft, first.request


def with_leader_endpoint(answer: FetchResponse, leader: int, port: int) -> FetchResponse:
    answer.node_endpoints = [
        FetchResponse.NodeEndpoint(node_id=leader, host="127.0.0.1", port=port, rack=None)
    ]
    return answer


def test_an_observer_fetches_from_a_bootstrap_server_then_follows_the_leader_it_names() -> None:
    raft, first = bootstrap_observer()
    partition = first.topics[0].partitions[0]
    # Node 22's first Fetch: epoch 0, from offset 0 with last fetched epoch 0.
    assert (partition.current_leader_epoch, partition.fetch_offset) == (0, 0)
    assert partition.last_fetched_epoch == 0
    answer = with_leader_endpoint(
        response(21, 1, error=ErrorCode.FENCED_LEADER_EPOCH), 21, BOOTSTRAP.port
    )
    actions = raft.on_response(-2, first, answer, 10)
    assert PersistQuorumState(leader_id=21, leader_epoch=1, voted_id=-1) in actions
    (second,) = sent(actions)
    # At once to leader 21, at the endpoint its answer gave (it is no voter we know).
    assert (second.destination, second.endpoint) == (21, BOOTSTRAP)
    assert isinstance(second.request, FetchRequest)
    assert second.request.topics[0].partitions[0].current_leader_epoch == 1
    assert (raft.leader_id, raft.epoch, raft.is_voter) == (21, 1, False)


def test_a_bootstrap_answer_without_error_is_the_leaders_and_its_records_are_appended() -> None:
    raft, first = bootstrap_observer(QuorumStateData(leader_id=-1, leader_epoch=1))
    answer = with_leader_endpoint(response(21, 1, records=b"batches", hw=5), 21, 19111)
    actions = raft.on_response(-2, first, answer, 10)
    assert AppendAsFollower(records=b"batches") in actions
    assert raft.leader_id == 21


def test_an_answer_naming_a_leader_neither_voter_nor_with_an_endpoint_is_not_followed() -> None:
    raft, first = bootstrap_observer()
    raft.on_response(-2, first, response(21, 1, error=ErrorCode.FENCED_LEADER_EPOCH), 10)
    assert (raft.leader_id, raft.epoch) == (-1, 1)


def test_the_observers_first_fetch_is_node_22s_of_the_dynamic_quorum_capture(
    kafka_captures: Path,
) -> None:
    """Node 22 (formatted --no-initial-controllers) asked its bootstrap server this; kwire's
    observer asks the same, but for the two values Kafka 4.3.1 changed: an unknown high
    watermark is -1 (4.3.1's buildFetchRequest; 3.9 sent Long.MAX_VALUE) and MaxBytes is
    controller.quorum.fetch.max.bytes (4.3.1's, 1 MiB; 3.9 had no such key: 8 MiB)."""
    capture = kafka_captures / "dynamic-quorum" / "dynamic-quorum-add-controller.jsonl"
    genuine = next(
        body
        for line in capture.read_text().splitlines()
        if (row := json.loads(line))["api_key"] == 1 and row["dir"] == "request"
        for _, body in [decode_request(bytes.fromhex(row["hex"]))]
        if isinstance(body, FetchRequest) and body.replica_state.replica_id == 22
    )
    partition = genuine.topics[0].partitions[0]
    raft = RaftCore(
        RaftConfig(
            node_id=22,
            cluster_id=genuine.cluster_id or "",
            voters=(),
            directory_id=partition.replica_directory_id,
            bootstrap_servers=(("127.0.0.1", 19111),),
        ),
        ListLog([]),
        rng=random.Random(0),
    )
    (first,) = sent(raft.start(0))
    assert first.destination == -2
    expected = dataclasses.replace(genuine, max_bytes=1_048_576)
    expected.topics[0].partitions[0].high_watermark = -1
    # Compared as Kafka's bytes at the genuine version (v17 names the topic by id).
    assert first.request.encode(17) == expected.encode(17)
