"""The consensus core, driven without sockets, disks or clocks."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest

from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.raft.core import FetchRead, FetchReady, RaftConfig, RaftCore
from kwire.raft.state import (
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    AppendLeaderChange,
    BecameLeader,
    HighWatermarkAdvanced,
    PersistQuorumState,
    StateChanged,
    Voter,
)

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qk"


@dataclass
class FakeLog:
    """A log described by its epochs: (epoch, start offset) pairs and an end offset."""

    epochs: list[tuple[int, int]] = field(default_factory=list)
    end_offset: int = 0
    log_start_offset: int = 0
    snapshots: list[SnapshotId] = field(default_factory=list)

    def latest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshots[-1] if self.snapshots else None

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshots[0] if self.snapshots else None

    @property
    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else 0

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        found = None
        for index, (e, _) in enumerate(self.epochs):
            if e <= epoch:
                end = self.epochs[index + 1][1] if index + 1 < len(self.epochs) else self.end_offset
                found = (e, end)
        return found

    def append(self, epoch: int, count: int) -> None:
        if not self.epochs or self.epochs[-1][0] != epoch:
            self.epochs.append((epoch, self.end_offset))
        self.end_offset += count


def single_voter(log: FakeLog, persisted_epoch: int = 0) -> RaftCore:
    config = RaftConfig(
        node_id=1, cluster_id=CLUSTER, voters=(Voter(node_id=1, host="127.0.0.1", port=9093),)
    )
    return RaftCore(config, log, persisted_epoch=persisted_epoch)


def fetch(offset: int, last_epoch: int, leader_epoch: int, *, replica: int = 2) -> FetchRequest:
    return FetchRequest(
        cluster_id=CLUSTER,
        replica_state=FetchRequest.ReplicaState(replica_id=replica, replica_epoch=-1),
        max_wait_ms=500,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0,
                        current_leader_epoch=leader_epoch,
                        fetch_offset=offset,
                        last_fetched_epoch=last_epoch,
                        replica_directory_id=UUID(int=7),
                    )
                ],
            )
        ],
    )


def started_leader(log: FakeLog, persisted_epoch: int = 0) -> RaftCore:
    core = single_voter(log, persisted_epoch)
    for action in core.start(now_ms=1000):
        if isinstance(action, AppendLeaderChange):
            log.append(action.epoch, 1)
    core.on_flushed(log.end_offset, now_ms=1001)
    return core


def test_a_sole_voter_elects_itself_in_the_next_epoch() -> None:
    core = single_voter(FakeLog(), persisted_epoch=4)
    actions = [a for a in core.start(now_ms=0) if not isinstance(a, StateChanged)]
    kinds = [type(a) for a in actions]
    # quorum-state is written before the epoch is acted on, and the vote before leadership
    assert kinds == [PersistQuorumState, PersistQuorumState, BecameLeader, AppendLeaderChange]
    assert actions[0] == PersistQuorumState(leader_id=-1, leader_epoch=5, voted_id=1)
    assert core.is_leader and core.epoch == 5
    change = actions[-1]
    assert isinstance(change, AppendLeaderChange)
    assert [v.voter_id for v in change.message.granting_voters] == [1]


def test_high_watermark_waits_for_a_record_of_the_new_epoch() -> None:
    log = FakeLog()
    log.append(1, 10)  # an earlier epoch's records
    core = single_voter(log, persisted_epoch=1)
    core.start(now_ms=0)
    assert core.on_flushed(10, now_ms=1) == []  # only earlier epochs are durable
    log.append(2, 1)
    assert core.on_flushed(11, now_ms=2) == [HighWatermarkAdvanced(offset=11)]
    assert core.high_watermark == 11


def test_fetch_with_an_old_leader_epoch_is_fenced_without_high_watermark() -> None:
    core = started_leader(FakeLog())
    outcome = core.fetch(fetch(0, 0, leader_epoch=0), now_ms=5)
    assert isinstance(outcome, FetchReady)
    data = outcome.response.responses[0].partitions[0]
    assert data.error_code == ErrorCode.FENCED_LEADER_EPOCH
    assert data.high_watermark == -1
    assert (data.current_leader.leader_id, data.current_leader.leader_epoch) == (1, 1)
    assert [e.node_id for e in outcome.response.node_endpoints] == [1]


@pytest.mark.parametrize(
    ("request_epoch", "error"),
    [(2, ErrorCode.UNKNOWN_LEADER_EPOCH), (0, ErrorCode.FENCED_LEADER_EPOCH)],
)
def test_fetch_epoch_checks(request_epoch: int, error: ErrorCode) -> None:
    core = started_leader(FakeLog())
    outcome = core.fetch(fetch(0, 0, leader_epoch=request_epoch), now_ms=5)
    assert isinstance(outcome, FetchReady)
    assert outcome.response.responses[0].partitions[0].error_code == error


def test_wrong_cluster_id_is_rejected() -> None:
    core = started_leader(FakeLog())
    request = fetch(0, 0, leader_epoch=1)
    request.cluster_id = "another"
    outcome = core.fetch(request, now_ms=5)
    assert isinstance(outcome, FetchReady)
    assert outcome.response.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID


def test_fetch_from_a_diverged_position_names_the_epoch_end() -> None:
    log = FakeLog()
    log.append(1, 10)
    log.append(3, 5)
    core = started_leader(log, persisted_epoch=3)
    # The observer thinks epoch 2 ran to offset 12, but our epoch 1 ended at 10.
    outcome = core.fetch(fetch(12, 2, leader_epoch=4), now_ms=5)
    assert isinstance(outcome, FetchReady)
    diverging = outcome.response.responses[0].partitions[0].diverging_epoch
    assert (diverging.epoch, diverging.end_offset) == (1, 10)
    assert not core.fetch_would_wait(fetch(12, 2, 4), outcome.response)


def test_valid_fetch_reads_records_and_tracks_the_observer() -> None:
    log = FakeLog()
    core = started_leader(log)
    outcome = core.fetch(fetch(0, 0, leader_epoch=1), now_ms=5)
    assert isinstance(outcome, FetchRead) and outcome.offset == 0
    response, actions = core.complete_fetch(fetch(0, 0, 1), b"batch", now_ms=6)
    data = response.responses[0].partitions[0]
    assert data.records == b"batch" and data.high_watermark == 1
    assert actions == []
    described = core.describe_quorum(
        DescribeQuorumRequest(
            topics=[
                DescribeQuorumRequest.TopicData(
                    topic_name=METADATA_TOPIC,
                    partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                )
            ]
        ),
        now_ms=9,
    )
    partition = described.topics[0].partitions[0]
    assert [o.replica_id for o in partition.observers] == [2]
    assert partition.observers[0].replica_directory_id == UUID(int=7)
    assert partition.observers[0].last_fetch_timestamp == 6
    assert partition.current_voters[0].log_end_offset == 1
    assert partition.high_watermark == 1


def test_an_empty_fetch_would_wait_for_data() -> None:
    log = FakeLog()
    core = started_leader(log)
    response, _ = core.complete_fetch(fetch(1, 1, 1), b"", now_ms=6)
    assert core.fetch_would_wait(fetch(1, 1, 1), response)


def test_the_core_does_no_io() -> None:
    banned = {"trio", "socket", "os", "time", "random", "asyncio", "pathlib"}
    for path in Path(__file__).parents[1].joinpath("kwire", "raft").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not banned & set(names), f"{path.name} imports {banned & set(names)}"
