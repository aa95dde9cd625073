"""Take-over (docs/takeover.md): kwire started on a genuine Kafka controller's metadata
directory (same node id, meta.properties, snapshots and segments) serves the image Kafka
left and continues its log as Kafka would: offsets contiguous after Kafka's last, a new
epoch opened by a LeaderChange control record, Kafka's bytes untouched below it,
quorum-state and leader-epoch-checkpoint in Kafka's format, snapshots named as Kafka
names them; kwire's dump tool and kio read the whole result. With KAFKA_HOME set, a
genuine Kafka controller then starts on the directory kwire wrote and carries on.

The directories are those of ../shared/captures (read-only: each test works on copies).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kio.records.readers import read_batch
from kio.schema.leader_change_message.v0.data import LeaderChangeMessage as KioLeaderChange
from kio.serial import entity_reader

from kwire.log.checkpoints import read_leader_epoch_checkpoint
from kwire.log.properties import read_meta_properties
from kwire.metadata_version import MetadataVersion
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.records.batch import decode_batches
from kwire.records.control import ControlRecordType
from kwire.server.properties import load_properties
from kwire.storage import random_uuid
from kwire.testing.client import describe_quorum, request
from kwire.testing.process import HOST, KwireProcess, free_port, port_accepts, run_module
from kwire.testing.takeover import LogBatch, copy_metadata_dir, offline_image, segment_batches

CAPTURES = Path(__file__).resolve().parents[1].parent / "shared" / "captures"
PARTITION = "__cluster_metadata-0"
NEW_BROKER = 100  # registered through kwire; the captures' brokers are 2, 3, 4
NEW_TOPIC, NEW_TOPIC_2 = "taken-over", "taken-over-2"
LEADER_TIMEOUT_S = 60.0
SNAPSHOT_NAME = re.compile(r"^(\d{20})-(\d{10})\.checkpoint$")
# A snapshot at the first commit 2 s after the last (Kafka's default waits an hour or
# 20 MiB); not at every commit, since a follower whose last fetched epoch is below the
# leader's earliest snapshot's is sent that snapshot (Kafka's validateOffsetAndEpoch), and
# the checks below read the log. No retention: the captured segments are older than
# metadata.max.retention.ms (7 days), so the first check would delete those below the
# newest snapshot (as Kafka's would).
SNAPSHOT_INTERVAL_S = 2.0
SETTINGS = {
    "metadata.log.max.snapshot.interval.ms": str(int(SNAPSHOT_INTERVAL_S * 1000)),
    "metadata.max.retention.ms": "-1",
    "metadata.max.retention.bytes": "-1",
}


@dataclass(slots=True)
class Node:
    """One node of a take-over: its captured directory and the properties kwire gets."""

    node_id: int
    source: Path
    properties: dict[str, str]
    process: KwireProcess | None = None
    before: list[LogBatch] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        assert self.process is not None
        return self.process.data_dir


def captured(relative: str) -> Path:
    path = CAPTURES / relative
    if not path.exists():
        pytest.skip(f"genuine Kafka captures not found at {path}")
    return path


def static_node(directory: str, properties: str) -> Node:
    """A sole static voter: Kafka's properties with this run's port and directory."""
    source = captured(directory)
    props = load_properties(captured(properties))
    node_id = read_meta_properties(source / "meta.properties").node_id
    port = free_port()
    props.update(
        {
            "node.id": str(node_id),
            "controller.quorum.voters": f"{node_id}@{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
        }
    )
    return Node(node_id, source, props)


# -- running kwire on the copies ------------------------------------------------------------


def start(nodes: list[Node], root: Path) -> None:
    for node in nodes:
        home = root / f"node-{node.node_id}"
        data = copy_metadata_dir(node.source, home / "data")
        node.before = segment_batches(data)
        props = {**node.properties, **SETTINGS, "log.dirs": str(data)}
        props.pop("metadata.log.dir", None)
        node.process = KwireProcess(home, properties=props)
    for node in nodes:
        assert node.process is not None
        node.process.launch()
    for node in nodes:
        assert node.process is not None
        node.process.wait_started(LEADER_TIMEOUT_S)


def leader_of(nodes: list[Node]) -> tuple[Node, int]:
    """The node answering DescribeQuorum as leader, and its epoch (bounded wait)."""
    deadline = time.monotonic() + LEADER_TIMEOUT_S
    while time.monotonic() < deadline:
        for node in nodes:
            assert node.process is not None
            try:
                answer = describe_quorum(HOST, node.process.port)
            except OSError:
                continue
            partition = answer.topics[0].partitions[0]
            if answer.error_code == 0 and partition.error_code == 0:
                return node, partition.leader_epoch
        time.sleep(0.05)
    tails = "\n".join(n.process.output()[-2000:] for n in nodes if n.process is not None)
    raise AssertionError(f"no node led within {LEADER_TIMEOUT_S} s:\n{tails}")


def ask(node: Node, body: Message, version: int) -> Message:
    assert node.process is not None
    return request(HOST, node.process.port, body, version, timeout=10.0)


def finalized_features(leader: Node) -> dict[str, int]:
    """The finalized features of the leader's ApiVersions answer, once it has activated
    (a new leader of several voters first replays its log to its epoch start)."""
    body = ApiVersionsRequest(client_software_name="kwire-takeover", client_software_version="1")
    deadline = time.monotonic() + LEADER_TIMEOUT_S
    while True:
        versions = ask(leader, body, 3)
        assert isinstance(versions, ApiVersionsResponse) and versions.error_code == 0, versions
        if versions.finalized_features or time.monotonic() > deadline:
            return {f.name: f.max_version_level for f in versions.finalized_features}
        time.sleep(0.1)


def heartbeat_error(leader: Node, broker_id: int, epoch: int) -> ErrorCode:
    """The error of a BrokerHeartbeat that asks to stay fenced (Kafka writes nothing for
    it), as `broker_id` at `epoch`."""
    body = BrokerHeartbeatRequest(
        broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=-1, want_fence=True
    )
    answer = ask(leader, body, 1)
    assert isinstance(answer, BrokerHeartbeatResponse)
    return ErrorCode(answer.error_code)


def create_topic(leader: Node, name: str) -> None:
    create = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(name=name, num_partitions=1, replication_factor=1)
        ],
        timeout_ms=5000,
    )
    created = ask(leader, create, 7)
    assert isinstance(created, CreateTopicsResponse)
    assert created.topics[0].error_code == ErrorCode.NONE, created


def register_and_unfence_broker(leader: Node, cluster_id: str, features: Mapping[str, int]) -> None:
    """A new broker registers (supporting every finalized feature at its level) and
    heartbeats until unfenced, so that a topic can be placed on it."""
    registration = BrokerRegistrationRequest(
        broker_id=NEW_BROKER,
        cluster_id=cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name=name,
                min_supported_version=1 if name == "metadata.version" else 0,
                max_supported_version=level,
            )
            for name, level in features.items()
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )
    answer = ask(leader, registration, 4)
    assert isinstance(answer, BrokerRegistrationResponse)
    assert answer.error_code == ErrorCode.NONE, answer
    heartbeat = BrokerHeartbeatRequest(
        broker_id=NEW_BROKER, broker_epoch=answer.broker_epoch, current_metadata_offset=2**62
    )
    deadline = time.monotonic() + 20
    while True:
        beat = ask(leader, heartbeat, 1)
        assert isinstance(beat, BrokerHeartbeatResponse) and beat.error_code == 0, beat
        if not beat.is_fenced:
            return
        assert time.monotonic() < deadline, "the new broker stayed fenced"
        time.sleep(0.1)


# -- what the directories hold afterwards ------------------------------------------------------


def snapshot_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / PARTITION).glob("*.checkpoint")}


def epoch_at(batches: list[LogBatch], offset: int) -> int:
    return next(b.epoch for b in batches if b.base_offset <= offset < b.next_offset)


def read_with_kio(path: Path) -> int:
    """Read every batch of a segment or snapshot file with kio (its own CRC and length
    checks); LeaderChange values decode with kio's schema. Returns the batch count."""
    data = path.read_bytes()
    pos = count = 0
    while pos < len(data):
        batch, size = read_batch(data, pos)
        if batch.attributes & 0x20:
            for record in batch.records:
                assert record.key is not None and record.value is not None
                if int.from_bytes(record.key[2:4], "big") == ControlRecordType.LEADER_CHANGE:
                    entity_reader(KioLeaderChange)(record.value, 0)
        pos += size
        count += 1
    return count


def check_continues_kafka_log(
    node: Node, kafka_epoch: int, leader: tuple[int, int], quorum_hw: int
) -> dict[int, LogBatch]:
    """The checks of the module docstring on one stopped node; returns the first batch of
    each epoch kwire's nodes wrote (a later epoch appears when leadership moved)."""
    after = segment_batches(node.data_dir)
    # Contiguous offsets from the log start to the end.
    for previous, batch in zip(after, after[1:], strict=False):
        assert batch.base_offset == previous.next_offset, (previous, batch)
    # kwire's epochs follow Kafka's, as a suffix of the log ...
    new = [b for b in after if b.epoch > kafka_epoch]
    assert new and after[-len(new) :] == new
    starts: dict[int, LogBatch] = {}
    for batch in new:
        starts.setdefault(batch.epoch, batch)
    # ... each opened by a LeaderChange control batch naming its leader ...
    for epoch, first in starts.items():
        assert first.control_types == (ControlRecordType.LEADER_CHANGE,), (epoch, first)
        (leader_change,) = decode_batches(first.raw)
        value, _ = entity_reader(KioLeaderChange)(leader_change.records[0].value, 0)
        if epoch == leader[1]:
            assert value.leader_id == leader[0]
    # ... and Kafka's batches below them are byte for byte what Kafka wrote, none of the
    # committed ones lost.
    first = new[0]
    assert first.base_offset >= quorum_hw
    kept = [b for b in node.before if b.next_offset <= first.base_offset]
    assert [b.raw for b in after[: len(kept)]] == [b.raw for b in kept]
    # leader-epoch-checkpoint: Kafka's entries, then (epoch, start offset) of each new one.
    entries = read_leader_epoch_checkpoint(node.data_dir / PARTITION / "leader-epoch-checkpoint")
    assert [(e.epoch, e.start_offset) for e in entries if e.epoch > kafka_epoch] == [
        (epoch, b.base_offset) for epoch, b in starts.items()
    ]
    # quorum-state: the fields Kafka writes for this directory's kraft version.
    original = json.loads((node.source / PARTITION / "quorum-state").read_text())
    state = json.loads((node.data_dir / PARTITION / "quorum-state").read_text())
    assert list(state) == list(original)
    assert state["data_version"] == original["data_version"]
    assert state["leaderEpoch"] >= max(starts)
    # Snapshots: Kafka's names, <end offset>-<epoch of the record before it>.
    for name in snapshot_files(node.data_dir) - snapshot_files(node.source):
        match = SNAPSHOT_NAME.match(name)
        assert match is not None, name
        end, snapshot_epoch = int(match.group(1)), int(match.group(2))
        assert end <= after[-1].next_offset
        assert snapshot_epoch == epoch_at(after, end - 1), name
    # kwire's dump tool and kio read every segment and snapshot.
    files = sorted((node.data_dir / PARTITION).glob("*.log"))
    files += sorted((node.data_dir / PARTITION).glob("*.checkpoint"))
    dump = run_module("kwire.tools.dump_log", "--json", *files, timeout=120)
    assert dump.returncode == 0, dump.stderr
    for path in files:
        assert read_with_kio(path) > 0, path
    return starts


def take_over(
    nodes: list[Node], root: Path, *, quorum_hw: int = 0, kafka_home: str | None = None
) -> None:
    """Start kwire on copies of the nodes' directories, check what it serves against the
    image loaded offline, write, stop, and check the logs; then (with `kafka_home`) hand
    back to Kafka."""
    images = {n.node_id: offline_image(n.source) for n in nodes}
    cluster_id = read_meta_properties(nodes[0].source / "meta.properties").cluster_id
    leader: Node | None = None
    start(nodes, root)
    try:
        leader, epoch = leader_of(nodes)
        kafka_epoch = max(b.epoch for n in nodes for b in n.before)
        assert epoch > kafka_epoch
        image = images[leader.node_id]
        # The finalized features are the image's.
        served = finalized_features(leader)
        expected = {k: v for k, v in image.finalized_features.items() if v > 0}
        dynamic = "controller.quorum.voters" not in leader.properties  # kraft.version 1
        if expected.get("metadata.version", 0) >= 22 and dynamic:
            expected["kraft.version"] = 1  # at 4.x levels, as Kafka 4.3.1's controller
        assert served == expected
        # Every topic of the image exists (validate_only: nothing is written).
        if image.topic_ids_by_name:
            names = sorted(image.topic_ids_by_name)
            check = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=name, num_partitions=1, replication_factor=1
                    )
                    for name in names
                ],
                timeout_ms=5000,
                validate_only=True,
            )
            answer = ask(leader, check, 7)
            assert isinstance(answer, CreateTopicsResponse)
            assert {t.name: t.error_code for t in answer.topics} == dict.fromkeys(
                names, ErrorCode.TOPIC_ALREADY_EXISTS
            )
        # Every registered broker of the image is known at its epoch (a heartbeat that
        # asks to stay fenced changes nothing), and only at it.
        for broker_id, registration in sorted(image.brokers.items()):
            assert heartbeat_error(leader, broker_id, registration.epoch) == ErrorCode.NONE
            stale = heartbeat_error(leader, broker_id, registration.epoch - 1)
            assert stale == ErrorCode.STALE_BROKER_EPOCH
        # A broker the image lacks: Kafka's ClusterControlManager.checkBrokerEpoch answers
        # STALE_BROKER_EPOCH too ("No broker registration found for broker id ...").
        assert heartbeat_error(leader, NEW_BROKER, 1) == ErrorCode.STALE_BROKER_EPOCH
        # Write: a new broker and a topic on it; a second topic once the snapshot
        # interval has passed, whose commit makes the leader write a snapshot.
        # (kraft.version lives in the raft log: 1 in a dynamic quorum, which a broker
        # must support to register, as Kafka's registerBroker checks.)
        features = dict(image.finalized_features) | ({"kraft.version": 1} if dynamic else {})
        register_and_unfence_broker(leader, cluster_id, features)
        create_topic(leader, NEW_TOPIC)
        time.sleep(SNAPSHOT_INTERVAL_S + 0.2)
        create_topic(leader, NEW_TOPIC_2)
        deadline = time.monotonic() + 20
        while snapshot_files(leader.data_dir) <= snapshot_files(leader.source):
            assert time.monotonic() < deadline, "kwire wrote no snapshot"
            time.sleep(0.1)
    finally:
        # Followers first, then the leader (docs/takeover.md: the leader last, so that
        # it does not hand over to a voter about to stop).
        for node in sorted(nodes, key=lambda n: n is leader):
            if node.process is not None:
                assert node.process.stop() == 0, node.process.output()[-3000:]
    for node in nodes:
        starts = check_continues_kafka_log(node, kafka_epoch, (leader.node_id, epoch), quorum_hw)
        if node is leader:
            # Its epoch starts right after the last offset Kafka left in its log.
            assert starts[epoch].base_offset == leader.before[-1].next_offset
    # The leader's image is Kafka's plus what kwire was asked to write.
    after = offline_image(leader.data_dir)
    assert set(after.topic_ids_by_name) == set(image.topic_ids_by_name) | {NEW_TOPIC, NEW_TOPIC_2}
    assert set(after.brokers) == set(image.brokers) | {NEW_BROKER}
    assert after.finalized_features == image.finalized_features
    for name, topic_id in image.topic_ids_by_name.items():
        assert after.topic_ids_by_name[name] == topic_id
    if kafka_home is not None:
        newest = newest_level_of(Path(kafka_home))
        level = after.finalized_features.get("metadata.version", 0)
        if level > newest:
            pytest.skip(
                f"taken over; not handed back: the Kafka at KAFKA_HOME reads metadata.version "
                f"levels up to {newest}, this directory is at {level} (hand-back needs a newer "
                "release's distribution)"
            )
        hand_back(nodes, Path(kafka_home), root)


# -- the reverse: genuine Kafka on kwire's directory ---------------------------------------------


def hand_back(nodes: list[Node], kafka_home: Path, root: Path) -> None:
    """Start `kafka-server-start` on each directory kwire wrote (same properties), check
    that it answers DescribeQuorum as a leader of a newer epoch, and that its log
    continues kwire's."""
    processes: list[subprocess.Popen[bytes]] = []
    ends = {n.node_id: segment_batches(n.data_dir)[-1] for n in nodes}
    try:
        for node in nodes:
            assert node.process is not None
            config = node.process.config_path
            log_dir = root / f"kafka-logs-{node.node_id}"
            log_dir.mkdir()
            env = {**os.environ, "LOG_DIR": str(log_dir)}
            out = (log_dir / "console.txt").open("wb")
            processes.append(
                subprocess.Popen(
                    [str(kafka_home / "bin" / "kafka-server-start.sh"), str(config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        deadline = time.monotonic() + 120
        epoch = -1
        while epoch < 0:
            assert time.monotonic() < deadline, "Kafka did not lead on kwire's directories"
            for node in nodes:
                assert node.process is not None
                if not port_accepts(node.process.port):
                    continue
                try:
                    answer = describe_quorum(HOST, node.process.port)
                except OSError:
                    continue
                partition = answer.topics[0].partitions[0]
                if answer.error_code == 0 and partition.error_code == 0:
                    epoch = partition.leader_epoch
            time.sleep(0.5)
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    kwire_epoch = max(end.epoch for end in ends.values())
    assert epoch > kwire_epoch
    for node in nodes:
        batches = segment_batches(node.data_dir)
        for previous, batch in zip(batches, batches[1:], strict=False):
            assert batch.base_offset == previous.next_offset
        # (Kafka's leader stopping gracefully may have handed its epoch on to another: a
        # later epoch, never an earlier one)
        assert batches[-1].epoch >= epoch


def newest_level_of(kafka_home: Path) -> int:
    """The newest metadata.version feature level the distribution at `kafka_home` knows:
    its release line's newest production level (Kafka refuses to start on a log at a
    level it does not know: "No MetadataVersion with feature level N")."""
    jars = sorted(kafka_home.glob("libs/kafka-clients-*.jar"))
    match = re.search(r"kafka-clients-(\d+)\.(\d+)\.", jars[0].name) if jars else None
    if match is None:
        pytest.fail(f"{kafka_home}/libs has no kafka-clients-X.Y.Z.jar")
    levels = [v for v in MetadataVersion if v.name.startswith(f"IBP_{match[1]}_{match[2]}_IV")]
    if not levels:
        pytest.fail(f"kwire knows no metadata.version of Kafka {match[1]}.{match[2]}")
    return int(max(levels))


def kafka_home_or_none() -> str | None:
    home = os.environ.get("KAFKA_HOME")
    if home and not (Path(home) / "bin" / "kafka-server-start.sh").exists():
        pytest.fail(f"KAFKA_HOME={home} has no bin/kafka-server-start.sh")
    return home or None


# -- the cases ------------------------------------------------------------------------------------

SINGLE_NODE = {
    "kafka-3.9 metadata-log": ("kafka-3.9/metadata-log", "kafka-3.9/controller.properties"),
    "kafka-3.9 metadata-log-default": (
        "kafka-3.9/metadata-log-default",
        "kafka-3.9/controller.properties",
    ),
    "kafka-3.9 multi-broker controller-1": (
        "kafka-3.9/multi-broker/controller-1-metadata",
        "kafka-3.9/multi-broker/c1.properties",
    ),
    "kafka-4.3 broker-lifecycle": (
        "kafka-4.3/broker-lifecycle/metadata-log-1",
        "kafka-4.3/broker-lifecycle/controller.properties",
    ),
    "kafka-4.3 broker-lifecycle-static39": (
        "kafka-4.3/broker-lifecycle-static39/metadata-log-1",
        "kafka-4.3/broker-lifecycle-static39/controller.properties",
    ),
}


@pytest.mark.parametrize(("directory", "properties"), SINGLE_NODE.values(), ids=SINGLE_NODE)
def test_kwire_takes_over_a_genuine_sole_controller_and_continues_its_log(
    tmp_path: Path, directory: str, properties: str
) -> None:
    take_over([static_node(directory, properties)], tmp_path, kafka_home=kafka_home_or_none())


def test_kafka_can_take_back_what_kwire_wrote_when_kafka_home_is_set(tmp_path: Path) -> None:
    home = kafka_home_or_none()
    if home is None:
        pytest.skip(
            "KAFKA_HOME is not set: the hand-back to a genuine Kafka controller needs a Kafka "
            "distribution (the take-over tests run it too when KAFKA_HOME is set)"
        )
    node = static_node("kafka-3.9/metadata-log", "kafka-3.9/controller.properties")
    take_over([node], tmp_path, kafka_home=home)


def _clear_port(*ports: int) -> None:
    busy = [p for p in ports if port_accepts(p)]
    if busy:
        pytest.skip(f"the captured quorum's ports {busy} are in use on this machine")


def high_watermark(status: str) -> int:
    """The HighWatermark of a captured `kafka-metadata-quorum describe --status`."""
    match = re.search(r"^HighWatermark:\s+(\d+)$", captured(status).read_text(), re.M)
    assert match is not None
    return int(match.group(1))


def follower_copy(source: Path, dest: Path, node_id: int, directory_id: str) -> Path:
    """A voter whose directory the capture lacks, as Kafka would have left it: the
    committed log it replicated from `source` (a copy of it, with its quorum-state),
    under its own meta.properties."""
    copy = copy_metadata_dir(source, dest)
    meta = (copy / "meta.properties").read_text()
    meta = re.sub(r"^node\.id=.*$", f"node.id={node_id}", meta, flags=re.M)
    meta = re.sub(r"^directory\.id=.*$", f"directory.id={directory_id}", meta, flags=re.M)
    (copy / "meta.properties").write_text(meta)
    return copy


def test_kwire_takes_over_the_whole_genuine_pre_vote_quorum(tmp_path: Path) -> None:
    """Kafka 4.3.1's dynamic quorum (kraft.version 1) of three: its voters and their
    endpoints are in the log (VotersRecord), so kwire listens where Kafka did."""
    nodes = []
    for node_id in (1, 2, 3):
        props = load_properties(
            captured(f"kafka-4.3/quorum-prevote/controller-{node_id}.properties")
        )
        nodes.append(
            Node(node_id, captured(f"kafka-4.3/quorum-prevote/metadata-log-{node_id}"), props)
        )
    _clear_port(39311, 39312, 39313)
    hw = high_watermark("kafka-4.3/quorum-prevote/status-4-after-sigterm-leader-3.txt")
    take_over(nodes, tmp_path, quorum_hw=hw, kafka_home=kafka_home_or_none())


def test_kwire_takes_over_a_genuine_static_quorum_of_three(tmp_path: Path) -> None:
    """Kafka 3.9's static quorum 11, 12, 13: node 11's directory is captured; 12 and 13
    get copies of its committed log (as followers that replicated it)."""
    source = captured("kafka-3.9/quorum-election/metadata-log-11")
    ports = {node_id: free_port() for node_id in (11, 12, 13)}
    voters = ",".join(f"{n}@{HOST}:{p}" for n, p in ports.items())
    nodes = []
    for node_id, port in ports.items():
        props = {
            "process.roles": "controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        }
        directory = source
        if node_id != 11:
            # (a random id of its own: Kafka refuses the reserved ones, such as all zeros)
            directory = follower_copy(
                source, tmp_path / f"captured-{node_id}", node_id, random_uuid()
            )
        nodes.append(Node(node_id, directory, props))
    hw = high_watermark("kafka-3.9/quorum-election/status-after.txt")
    take_over(nodes, tmp_path, quorum_hw=hw, kafka_home=kafka_home_or_none())


def test_kwire_takes_over_a_genuine_dynamic_quorum_of_two(tmp_path: Path) -> None:
    """Kafka 3.9's KIP-853 quorum: node 21 (formatted --standalone) and node 22 (added
    with add-controller); node 21's directory is captured, node 22 gets a copy of its
    committed log under node 22's id and directory id (from the VotersRecord)."""
    source = captured("kafka-3.9/dynamic-quorum/metadata-log-21")
    _clear_port(19111, 19112)
    nodes = []
    for node_id, port in ((21, 19111), (22, 19112)):
        props = {
            "process.roles": "controller",
            "node.id": str(node_id),
            "controller.quorum.bootstrap.servers": f"{HOST}:19111,{HOST}:19112",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        }
        directory = source
        if node_id == 22:
            directory = follower_copy(
                source, tmp_path / "captured-22", 22, "2dKz61-FUQ7vGt-uKYFSBg"
            )
        nodes.append(Node(node_id, directory, props))
    hw = high_watermark("kafka-3.9/dynamic-quorum/status-after.txt")
    take_over(nodes, tmp_path, quorum_hw=hw, kafka_home=kafka_home_or_none())


def test_reading_a_segment_cut_inside_a_batch_names_the_file_and_the_position(
    tmp_path: Path,
) -> None:
    copy = copy_metadata_dir(captured("kafka-3.9/metadata-log"), tmp_path / "copy")
    segment = copy / PARTITION / "00000000000000000000.log"
    whole = segment_batches(copy)
    cut = len(whole[0].raw) + 20  # the second batch's prefix and a few of its bytes
    segment.write_bytes(segment.read_bytes()[:cut])
    with pytest.raises(ValueError, match=rf"{segment.name}: a batch at {len(whole[0].raw)} runs"):
        segment_batches(copy)


def test_a_copy_of_a_read_only_capture_is_writable_and_unlocked(tmp_path: Path) -> None:
    source = tmp_path / "source"
    copy_metadata_dir(captured("kafka-3.9/metadata-log"), source)
    (source / ".lock").write_text("")
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    copy = copy_metadata_dir(source, tmp_path / "copy")
    assert not (copy / ".lock").exists()
    assert all(p.stat().st_mode & 0o200 for p in [copy, *copy.rglob("*")])
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
