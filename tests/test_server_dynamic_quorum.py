"""A dynamic quorum (kraft.version 1, KIP-853) run by `python -m kwire.server`: nodes
formatted with ``--standalone`` or ``--initial-controllers`` and configured with
``controller.quorum.bootstrap.servers`` (no ``controller.quorum.voters``) take their voters
from the bootstrap snapshot, elect, commit and fail over as Kafka 4.3.1's do; the first
batch of the log and every snapshot's header batch carry the KRaftVersion and Voters
records as in ../shared/captures/kafka-4.3/quorum-prevote."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, free_port, run_kwire, write_properties
from test_server_quorum_processes import (
    START_TIMEOUT_S,
    ask,
    committed_write,
    describe_quorum,
    first_write,
    leader_of,
)

from kwire.log import MetadataLog, MetadataLogConfig
from kwire.log.checkpoints import uuid_to_kafka_string
from kwire.log.snapshot_io import read_snapshot
from kwire.log.snapshots import snapshot_path
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.raft.voter_set import (
    KRaftVersion,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
    kraft_control_values,
)
from kwire.records import (
    Record,
    build_batch,
    decode_batch,
    encode_batch,
    unframe_metadata_record,
)
from kwire.records.control import (
    ControlRecordType,
    decode_control_record_key,
    encode_control_record_key,
)
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.quorum_voters import read_control_records, voters_on_listener
from kwire.storage import format_storage, random_uuid
from kwire.storage.dynamic_voters import DynamicVoters

TIMEOUT_S = 40.0
PARTITION = "__cluster_metadata-0"


def dynamic_server(directory: Path, node_id: int, port: int, bootstrap: str) -> KwireServer:
    """A KwireServer configured as Kafka's dynamic-quorum controllers are (no static voters)."""
    server = KwireServer(directory, port=port, extra_properties={"node.id": str(node_id)})
    server.properties.pop("controller.quorum.voters")
    server.properties["controller.quorum.bootstrap.servers"] = bootstrap
    write_properties(server.config_path, server.properties)
    return server


def format_dynamic(server: KwireServer, cluster_id: str, *how: str) -> None:
    """Format at 3.9-IV0 (the first release with KIP-853; the test broker takes up to it)."""
    level = ("--release-version", "3.9-IV0")
    result = run_kwire(
        "kwire.storage", "format", "-c", server.config_path, "-t", cluster_id, *level, *how
    )
    assert result.returncode == 0, result.stderr
    server.cluster_id = cluster_id


def standalone_and_joiner(
    tmp_path: Path, ids: tuple[int, int], cluster_id: str, *, bootstrap_both: bool = False
) -> tuple[KwireServer, KwireServer]:
    """The dynamic-quorum capture's pair, formatted and not started: node `ids[0]`
    formatted `--standalone` (the sole voter), node `ids[1]` `--no-initial-controllers`
    (an observer until added), each in `tmp_path/node-<id>` on a free port;
    `controller.quorum.bootstrap.servers` names the first, or both."""
    ports = free_port(), free_port()
    bootstrap = ",".join(f"{HOST}:{port}" for port in (ports if bootstrap_both else ports[:1]))
    first, second = (
        dynamic_server(tmp_path / f"node-{node_id}", node_id, port, bootstrap)
        for node_id, port in zip(ids, ports, strict=True)
    )
    format_dynamic(first, cluster_id, "--standalone")
    format_dynamic(second, cluster_id, "--no-initial-controllers")
    return first, second


def first_batch_types(data_dir: Path, name: str) -> tuple[list[int], list[bytes | None]]:
    """The control record types and values of the first batch of a log or snapshot file."""
    data = (data_dir / PARTITION / name).read_bytes()
    batch = decode_batch(data, 0, verify_crc=True)[0]
    assert batch.is_control
    return (
        [decode_control_record_key(r.key).type for r in batch.records],
        [r.value for r in batch.records],
    )


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[KwireServer]:
    port = free_port()
    server = dynamic_server(tmp_path / "node-1", 1, port, f"{HOST}:{port}")
    try:
        format_dynamic(server, random_uuid(), "--standalone")
        server.start(timeout=START_TIMEOUT_S)
        yield server
    finally:
        server.close()


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[KwireServer]]:
    ports = [free_port() for _ in range(3)]
    bootstrap = ",".join(f"{HOST}:{p}" for p in ports)
    directories = [uuid_to_kafka_string(uuid.uuid4()) for _ in ports]
    initial = ",".join(
        f"{i + 1}@{HOST}:{p}:{d}" for i, (p, d) in enumerate(zip(ports, directories, strict=True))
    )
    servers = [
        dynamic_server(tmp_path / f"node-{i + 1}", i + 1, p, bootstrap) for i, p in enumerate(ports)
    ]
    cluster_id = random_uuid()
    try:
        for server in servers:
            format_dynamic(server, cluster_id, "--initial-controllers", initial)
        for server in servers:
            server.start(timeout=START_TIMEOUT_S)
        yield servers
    finally:
        for server in servers:
            server.close()


async def test_a_standalone_node_elects_itself_and_commits_a_create_topics(
    standalone: KwireServer,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        assert await first_write([standalone]) is standalone
        answer = await ask(standalone, describe_quorum(), 2)
    assert isinstance(answer, DescribeQuorumResponse)
    partition = answer.topics[0].partitions[0]
    assert partition.leader_id == 1 and partition.leader_epoch >= 1
    assert [v.replica_id for v in partition.current_voters] == [1]
    # DescribeQuorum v2 lists the voter with its listener, as the VotersRecord names it.
    assert [(n.node_id, [(e.name, e.host, e.port) for e in n.listeners]) for n in answer.nodes] == [
        (1, [("CONTROLLER", HOST, standalone.port)])
    ]
    # quorum-state is written at data version 1 (kraft.version 1's ElectionState).
    state = json.loads((standalone.data_dir / PARTITION / "quorum-state").read_text())
    assert state["data_version"] == 1 and state["leaderId"] == 1


async def test_three_initial_controllers_elect_one_leader_commit_on_all_and_survive_its_kill(
    three: list[KwireServer],
) -> None:
    with trio.fail_after(TIMEOUT_S):
        await first_write(three)
        leader = await leader_of(three)
        # Every voter's log reaches the leader's high watermark after the write.
        while True:
            answer = await ask(leader, describe_quorum(), 2)
            assert isinstance(answer, DescribeQuorumResponse)
            partition = answer.topics[0].partitions[0]
            ends = {v.replica_id: v.log_end_offset for v in partition.current_voters}
            if min(ends.values()) >= partition.high_watermark > 0:
                break
            await trio.sleep(0.05)
        assert sorted(ends) == [1, 2, 3]
        assert partition.leader_id == int(leader.properties["node.id"])
        assert sorted(n.node_id for n in answer.nodes) == [1, 2, 3]
        leader.kill()
        survivor = await committed_write(three, "payments")
        assert survivor is not leader
    # The log's first batch: LeaderChange, KRaftVersion, Voters (the quorum-prevote capture).
    for server in three:
        types, values = first_batch_types(server.data_dir, "00000000000000000000.log")
        assert types == [
            ControlRecordType.LEADER_CHANGE,
            ControlRecordType.KRAFT_VERSION,
            ControlRecordType.KRAFT_VOTERS,
        ]
        assert KRaftVersionRecord.decode(values[1] or b"", 0).kraft_version == 1
        voters = VotersRecord.decode(values[2] or b"", 0).voters
        assert [(v.voter_id, v.endpoints[0].port) for v in voters] == [
            (s + 1, three[s].port) for s in range(3)
        ]


def test_a_snapshot_of_a_dynamic_quorum_carries_kraft_version_and_voters_after_its_header(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        }
    )
    voter = DynamicVoters.parse(f"1@{HOST}:{port}:{uuid_to_kafka_string(uuid.uuid4())}")
    format_storage(config, random_uuid(), initial_controllers=voter)
    node = ControllerNode(build_settings(config))
    try:
        assert [(v.node_id, v.host, v.port) for v in node.settings.voters] == [(1, HOST, port)]
        node.start()
        assert node.raft.is_leader and node.active
        path = node.snapshots.write(node.controller, node.committed_offset, 5_000, "test")
        assert path is not None
        snapshot_id = node.log.latest_snapshot_id()
        assert snapshot_id is not None and snapshot_id.end_offset == node.committed_offset
        assert path == snapshot_path(node.log.directory, snapshot_id)
        types, values = first_batch_types(tmp_path / "data", path.name)
        assert types == [
            ControlRecordType.SNAPSHOT_HEADER,
            ControlRecordType.KRAFT_VERSION,
            ControlRecordType.KRAFT_VOTERS,
        ]
        voters = VotersRecord.decode(values[2] or b"", 0).voters
        assert [(v.voter_id, v.endpoints[0].name, v.endpoints[0].port) for v in voters] == [
            (1, "CONTROLLER", port)
        ]
        # The controller still reads the snapshot's metadata records past the control ones.
        assert read_snapshot(node.log.directory, snapshot_id).values
    finally:
        node.close()
    # A restart from that snapshot still knows its voters and elects itself.
    restarted = ControllerNode(build_settings(config))
    try:
        restarted.start()
        assert restarted.raft.is_leader
        assert [v.node_id for v in restarted.settings.voters] == [1]
    finally:
        restarted.close()


def test_the_newest_voters_record_in_the_log_wins_over_the_bootstrap_snapshot(
    tmp_path: Path,
) -> None:
    port, moved = free_port(), free_port()
    directory = uuid.uuid4()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        }
    )
    voter = DynamicVoters.parse(f"1@{HOST}:{port}:{uuid_to_kafka_string(directory)}")
    format_storage(config, random_uuid(), initial_controllers=voter)
    metadata_log = MetadataLog.open(tmp_path / "data" / PARTITION, MetadataLogConfig())
    try:
        assert [
            v.port
            for v in voters_on_listener(
                read_control_records(metadata_log).last_voter_set, "controller"
            )
        ] == [port]
        # A data batch, then a start-of-epoch batch naming voter 1 on another port, then data.
        data = Record(offset_delta=0, key=None, value=b"x")
        metadata_log.append_as_leader(encode_batch(build_batch([data], base_timestamp=0)), 1)
        elsewhere = VoterSet.from_nodes(
            [
                VoterNode(
                    ReplicaKey(1, directory),
                    (VoterEndpoint("CONTROLLER", HOST, moved),),
                    (0, 1),
                )
            ]
        )
        values = kraft_control_values(KRaftVersion.KRAFT_VERSION_1, elsewhere)
        control = [
            Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
            for i, (kind, value) in enumerate(values)
        ]
        metadata_log.append_as_leader(
            encode_batch(build_batch(control, base_timestamp=0, control=True)), 2
        )
        metadata_log.append_as_leader(encode_batch(build_batch([data], base_timestamp=0)), 2)
        records = read_control_records(metadata_log)
    finally:
        metadata_log.close()
    assert records.next_offset == 4
    assert records.voter_set_at(0) is not None and records.voter_set_at(0).node(1) is not None
    assert voters_on_listener(records.voter_set_at(0), "CONTROLLER")[0].port == port
    assert records.last_voter_set_offset == 2
    assert [
        (v.node_id, v.port) for v in voters_on_listener(records.last_voter_set, "controller")
    ] == [(1, moved)]


def topic_names_in_log(data_dir: Path) -> list[str]:
    """The names of the TopicRecords in a node's metadata log, in log order."""
    log = MetadataLog.open(data_dir / PARTITION, MetadataLogConfig())
    try:
        names = []
        for batch in log.read_batches(0, max_offset=log.end_offset):
            if batch.is_control:
                continue
            for record in batch.records:
                api_key, version, body = unframe_metadata_record(record.value or b"")
                message = METADATA_RECORDS[api_key].decode(body, version)
                if isinstance(message, TopicRecord):
                    names.append(message.name)
        return names
    finally:
        log.close()


async def test_a_node_formatted_without_initial_controllers_observes_through_bootstrap_servers(
    tmp_path: Path,
) -> None:
    """As node 22 of ../shared/captures/kafka-3.9/dynamic-quorum: its first Fetch goes to
    the bootstrap server, whose answer names leader 21 and its endpoint; it then follows
    the leader as an observer, and the leader's DescribeQuorum lists it (status-before.txt)."""
    leader, observer = standalone_and_joiner(tmp_path, (21, 22), random_uuid())
    try:
        leader.start(timeout=START_TIMEOUT_S)
        observer.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            await first_write([leader])
            while True:
                answer = await ask(leader, describe_quorum(), 2)
                assert isinstance(answer, DescribeQuorumResponse)
                partition = answer.topics[0].partitions[0]
                caught_up = [
                    o
                    for o in partition.observers
                    if o.replica_id == 22 and o.log_end_offset >= partition.high_watermark
                ]
                if caught_up:
                    break
                await trio.sleep(0.05)
        assert [v.replica_id for v in partition.current_voters] == [21]
        assert [o.replica_id for o in partition.observers] == [22]
        # The observer names its meta.properties' directory id, as node 22 did.
        meta = (observer.data_dir / "meta.properties").read_text()
        directory = uuid_to_kafka_string(partition.observers[0].replica_directory_id)
        assert f"directory.id={directory}" in meta
        # The observer never voted or led: quorum-state names leader 21 in its epoch.
        state = json.loads((observer.data_dir / PARTITION / "quorum-state").read_text())
        assert (state["leaderId"], state["leaderEpoch"]) == (21, partition.leader_epoch)
    finally:
        observer.close()
        leader.close()
    # What the leader committed is in the observer's log too.
    assert topic_names_in_log(observer.data_dir) == topic_names_in_log(leader.data_dir)
    assert "orders" in topic_names_in_log(observer.data_dir)
