"""One voter's node without its network (kwire.server.node): a standby replays only what
is committed, a snapshot fetched from the leader rebuilds it, a vote is durable before it
is answered, and the quorum settings reach the core."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_harness import free_port
from test_server_snapshots import comparable, register

from kwire.log import read_quorum_state
from kwire.log.snapshots import snapshot_path
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.state import (
    AppendAsFollower,
    HighWatermarkAdvanced,
    InstallSnapshot,
    StartSnapshotFetch,
    WriteSnapshotChunk,
)
from kwire.server.__main__ import build_settings
from kwire.server.config import ConfigError, ControllerServerConfig
from kwire.server.dispatch import RequestHandler
from kwire.server.node import ControllerNode
from kwire.storage import format_storage, random_uuid

NOW_MS = 1_000


def config(
    data: Path, node_id: int, voters: str, port: int, **extra: str
) -> ControllerServerConfig:
    return ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data),
            **extra,
        }
    )


def leader_and_standby(tmp_path: Path, **extra: str) -> tuple[ControllerNode, ControllerNode]:
    """A sole voter that leads (node 1) and, formatted for the same cluster, node 2 of a
    two-voter quorum that nobody runs: it only does what its actions say."""
    cluster_id = random_uuid()
    port, other = free_port(), free_port()
    leader_config = config(tmp_path / "leader", 1, f"1@127.0.0.1:{port}", port, **extra)
    standby_config = config(
        tmp_path / "standby", 2, f"1@127.0.0.1:{port},2@127.0.0.1:{other}", other
    )
    format_storage(leader_config, cluster_id, "3.9-IV0")
    format_storage(standby_config, cluster_id, "3.9-IV0")
    leader = ControllerNode(build_settings(leader_config))
    leader.start()
    return leader, ControllerNode(build_settings(standby_config))


def batch_ends(node: ControllerNode) -> list[int]:
    return [batch.next_offset for batch in node.log.read_batches(0)]


def test_a_standby_replays_only_what_the_high_watermark_says_is_committed(
    tmp_path: Path,
) -> None:
    leader, standby = leader_and_standby(tmp_path)
    try:
        for broker in (1, 2, 3):
            register(leader, broker)
        replicated = leader.log.read(0, 64 * 1024 * 1024)
        standby.carry_out([AppendAsFollower(records=replicated)], NOW_MS)
        assert standby.log.end_offset == leader.log.end_offset
        assert dict(standby.controller.brokers) == {}  # appended, not committed
        # Committed up to the end of the first broker's registration: only it is known.
        first_broker_end = batch_ends(leader)[-3]
        standby.carry_out([HighWatermarkAdvanced(offset=first_broker_end)], NOW_MS)
        assert sorted(standby.controller.brokers) == [1]
        assert standby.committed_offset == first_broker_end
        standby.carry_out([HighWatermarkAdvanced(offset=leader.log.end_offset)], NOW_MS)
        assert sorted(standby.controller.brokers) == [1, 2, 3]
        assert comparable(standby.controller.image) == comparable(leader.controller.image)
        assert not standby.active
    finally:
        leader.close()
        standby.close()


def test_a_snapshot_fetched_in_chunks_rebuilds_the_standby_and_restarts_its_log(
    tmp_path: Path,
) -> None:
    leader, standby = leader_and_standby(
        tmp_path, **{"metadata.log.max.record.bytes.between.snapshots": "1"}
    )
    try:
        for broker in (1, 2):
            register(leader, broker)
        leader.snapshot_work(NOW_MS)
        snapshot_id = leader.log.latest_snapshot_id()
        assert snapshot_id is not None
        data = snapshot_path(leader.log.directory, snapshot_id).read_bytes()
        half = len(data) // 2
        standby.carry_out(
            [
                StartSnapshotFetch(snapshot_id=snapshot_id),
                WriteSnapshotChunk(snapshot_id=snapshot_id, position=0, data=data[:half]),
                WriteSnapshotChunk(snapshot_id=snapshot_id, position=half, data=data[half:]),
                InstallSnapshot(snapshot_id=snapshot_id),
            ],
            NOW_MS,
        )
        assert standby.log.latest_snapshot_id() == snapshot_id
        assert standby.log.log_start_offset == standby.log.end_offset == snapshot_id.end_offset
        assert snapshot_path(standby.log.directory, snapshot_id).read_bytes() == data
        assert sorted(standby.controller.brokers) == [1, 2]
        assert comparable(standby.controller.image) == comparable(leader.controller.image)
        assert not list(standby.log.directory.glob("*.part"))
    finally:
        leader.close()
        standby.close()


def test_the_quorum_timings_and_fast_failover_reach_the_raft_core(tmp_path: Path) -> None:
    port = free_port()
    settings_config = config(
        tmp_path / "data",
        1,
        f"1@127.0.0.1:{port},2@127.0.0.1:{free_port()}",
        port,
        **{
            "controller.quorum.election.timeout.ms": "1500",
            "controller.quorum.election.backoff.max.ms": "700",
            "controller.quorum.fetch.timeout.ms": "3000",
            "controller.quorum.request.timeout.ms": "2500",
            "controller.quorum.retry.backoff.ms": "30",
            "kwire.quorum.fast.failover.enable": "false",
        },
    )
    format_storage(settings_config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(settings_config))
    try:
        raft = node.raft.config
        assert (
            raft.election_timeout_ms,
            raft.election_backoff_max_ms,
            raft.fetch_timeout_ms,
            raft.request_timeout_ms,
            raft.retry_backoff_ms,
            raft.fast_failover,
        ) == (1500, 700, 3000, 2500, 30, False)
        assert node.driver.peers.request_timeout_ms == 2500
    finally:
        node.close()


def test_fast_failover_is_on_by_default_and_takes_only_a_boolean(tmp_path: Path) -> None:
    port = free_port()
    voters = f"1@127.0.0.1:{port}"
    assert config(tmp_path, 1, voters, port).quorum_fast_failover_enable is True
    with pytest.raises(ConfigError, match="kwire.quorum.fast.failover.enable"):
        config(tmp_path, 1, voters, port, **{"kwire.quorum.fast.failover.enable": "maybe"})


async def test_a_vote_granted_over_the_listener_is_in_quorum_state_before_the_answer(
    tmp_path: Path,
) -> None:
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    voter_config = config(tmp_path / "data", 2, voters, ports[1])
    format_storage(voter_config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(voter_config))
    node.start()
    try:
        request = VoteRequest(
            cluster_id=node.settings.cluster_id,
            voter_id=2,
            topics=[
                VoteRequest.TopicData(
                    topic_name="__cluster_metadata",
                    partitions=[
                        VoteRequest.PartitionData(
                            partition_index=0,
                            replica_epoch=1,
                            replica_id=1,
                            last_offset_epoch=0,
                            last_offset=0,
                        )
                    ],
                )
            ],
        )
        header = RequestHeader(
            request_api_key=52, request_api_version=1, correlation_id=7, client_id="raft-client-1"
        )
        response = await RequestHandler(node).handle(header, request)
        assert isinstance(response, VoteResponse)
        partition = response.topics[0].partitions[0]
        assert (partition.error_code, partition.vote_granted, partition.leader_epoch) == (
            0,
            True,
            1,
        )
        persisted = read_quorum_state(node.quorum_state_path)
        assert persisted is not None
        assert (persisted.leader_epoch, persisted.voted_id, persisted.leader_id) == (1, 1, -1)
        # A second candidate in the same epoch gets no vote: one vote per epoch.
        request.topics[0].partitions[0].replica_id = 3
        second = await RequestHandler(node).handle(header, request)
        assert isinstance(second, VoteResponse)
        assert second.topics[0].partitions[0].vote_granted is False
    finally:
        node.close()


@pytest.mark.parametrize("version", [0, 1])
async def test_begin_quorum_epoch_is_answered_at_every_version_endpoints_from_v1(
    tmp_path: Path, version: int
) -> None:
    # Kafka's RaftUtil puts the leader's NodeEndpoints in the answer from v1 only; a v0
    # answer naming a known leader must still encode.
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    voter_config = config(tmp_path / "data", 2, voters, ports[1])
    format_storage(voter_config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(voter_config))
    node.start()
    try:
        request = BeginQuorumEpochRequest(
            cluster_id=node.settings.cluster_id,
            voter_id=2,
            topics=[
                BeginQuorumEpochRequest.TopicData(
                    topic_name="__cluster_metadata",
                    partitions=[
                        BeginQuorumEpochRequest.PartitionData(
                            partition_index=0, leader_id=1, leader_epoch=1
                        )
                    ],
                )
            ],
        )
        header = RequestHeader(
            request_api_key=53,
            request_api_version=version,
            correlation_id=7,
            client_id="raft-client-1",
        )
        response = await RequestHandler(node).handle(header, request)
        assert isinstance(response, BeginQuorumEpochResponse)
        partition = response.topics[0].partitions[0]
        assert (partition.error_code, partition.leader_id, partition.leader_epoch) == (0, 1, 1)
        response.encode(version)  # would raise for endpoints at v0
        expected = [(1, ports[0])] if version >= 1 else []
        assert [(e.node_id, e.port) for e in response.node_endpoints] == expected
    finally:
        node.close()
