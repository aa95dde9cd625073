"""A node's snapshots (kwire.server.snapshots): written on SnapshotGenerator's triggers from
committed state, loaded at start-up, crash-safe; Fetch and FetchSnapshot as
KafkaRaftClient's leader answers them (Kafka 3.9).

`snapshot_records` (kwire.controller.snapshot_image) is another engineer's module; until it
is merged these tests use a double with its signature: the committed records themselves
(the newest snapshot's, then the log's up to the high watermark), whose replay is by
definition the committed image.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from server_harness import free_port
from test_controller_integrity import image_state

from kwire.controller.image import MetadataImage
from kwire.controller.operation import RequestContext
from kwire.controller.records import RecordAndVersion
from kwire.log.snapshot_io import read_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.raft.core import FetchReady, FetchSnapshotRead, FetchSnapshotReady
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.snapshots import read_chunk
from kwire.storage import format_storage, random_uuid

REPO = Path(__file__).parents[1]
PARTITION = "__cluster_metadata-0"


def committed_records(node: ControllerNode) -> list[RecordAndVersion]:
    """The double of snapshot_records: the newest snapshot's records, then the log's."""
    out: list[RecordAndVersion] = []
    latest = node.log.latest_snapshot_id()
    values = read_snapshot(node.log.directory, latest).values if latest else []
    start = latest.end_offset if latest else node.log.log_start_offset
    for batch in node.log.read_batches(start, max_offset=node.committed_offset):
        if not batch.is_control:
            values += [r.value or b"" for r in batch.records]
    for value in values:
        api_key, version, body = _unframe(value)
        out.append(RecordAndVersion(METADATA_RECORDS[api_key].decode(body, version), version))
    return out


def _unframe(value: bytes) -> tuple[int, int, bytes]:
    from kwire.records import unframe_metadata_record

    return unframe_metadata_record(value)


def config_for(data: Path, port: int, **extra: str) -> ControllerServerConfig:
    return ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data),
            **extra,
        }
    )


def open_node(config: ControllerServerConfig, *, start: bool = True) -> ControllerNode:
    """A node writing real snapshots (kwire.controller.snapshot_image.snapshot_records)."""
    node = ControllerNode(build_settings(config))
    if start:
        node.start()
    return node


def new_node(tmp_path: Path, **extra: str) -> tuple[ControllerNode, ControllerServerConfig]:
    config = config_for(tmp_path / "data", free_port(), **extra)
    format_storage(config, random_uuid(), "3.9-IV0")
    return open_node(config), config


def register(node: ControllerNode, broker_id: int) -> None:
    request = BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id=node.settings.cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host="127.0.0.1", port=9000 + broker_id, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )
    result = node.controller.handle(
        request, RequestContext(api_version=3), node.log.end_offset, 1_000
    )
    node.append_result(result, 1_000)


def replay_of_log(node: ControllerNode) -> MetadataImage:
    image = MetadataImage()
    for batch in node.log.read_batches(0):
        if batch.is_control:
            continue
        for record in batch.records:
            api_key, version, body = _unframe(record.value or b"")
            image.replay(
                METADATA_RECORDS[api_key].decode(body, version),
                version,
                batch.base_offset + record.offset_delta,
            )
    return image


def comparable(image: MetadataImage) -> dict[str, object]:
    state = image_state(image)
    state.pop("last_applied_offset")  # a snapshot's records all carry its last offset
    state.pop("feature_history", None)
    # The offsets records were applied at: a snapshot's records all carry its last one.
    state.pop("register_broker_offsets", None)
    return state


def test_the_byte_trigger_writes_a_snapshot_of_the_committed_image_at_the_high_watermark(
    tmp_path: Path,
) -> None:
    node, _ = new_node(tmp_path, **{"metadata.log.max.record.bytes.between.snapshots": "2000"})
    for broker in range(1, 30):
        register(node, broker)
        node.snapshot_work(2_000)
    ids = node.log.snapshot_ids()
    assert ids, "20 KiB committed past a 2,000-byte threshold wrote no snapshot"
    for sid in ids:
        # The id is (high watermark at the time, epoch of the last committed batch).
        assert sid.epoch == node.raft.epoch and sid.end_offset <= node.committed_offset
    # Kafka resets the counter when it schedules: at most one snapshot per ~2,000 bytes.
    assert len(ids) <= node.log.size_in_bytes // 2000 + 1
    node.close()


def test_no_snapshot_before_the_threshold_nor_before_the_interval(tmp_path: Path) -> None:
    node, _ = new_node(tmp_path)  # defaults: 20 MiB, one hour
    for broker in range(1, 10):
        register(node, broker)
        node.snapshot_work(2_000)
    assert node.log.snapshot_ids() == []
    node.close()


def test_the_interval_trigger_snapshots_on_the_first_commit_after_it(tmp_path: Path) -> None:
    node, _ = new_node(tmp_path, **{"metadata.log.max.snapshot.interval.ms": "1000"})
    node.snapshots.last_snapshot_ms = 0
    register(node, 1)  # committed at wall-clock now, long after 0 + 1000 ms
    assert node.snapshots.wanted == "we have waited at least 0 minute(s)"
    node.snapshot_work(5_000)
    assert node.log.snapshot_ids() == [SnapshotId(node.committed_offset, node.raft.epoch)]
    node.close()


def test_a_restart_loads_the_snapshot_then_the_log_after_it_into_the_same_image(
    tmp_path: Path,
) -> None:
    node, config = new_node(tmp_path, **{"metadata.log.max.record.bytes.between.snapshots": "3000"})
    for broker in range(1, 20):
        register(node, broker)
        node.snapshot_work(2_000)
    assert node.log.snapshot_ids()
    register(node, 99)  # after the snapshot: only in the log
    before = comparable(node.controller.image)
    node.close()
    restarted = open_node(config, start=False)  # before it registers itself anew
    latest = restarted.log.latest_snapshot_id()
    assert latest is not None and restarted.log.end_offset > latest.end_offset
    assert comparable(restarted.controller.image) == before
    restarted.close()


WRITER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_server_snapshots as t
config = t.config_for(Path({data!r}), {port})
node = t.ControllerNode(t.build_settings(config))
records = t.committed_records(node)

class Slow(list):
    def __getitem__(self, index):
        if isinstance(index, slice) and index.start and index.start >= 1024:
            print("writing", flush=True)
            time.sleep(60)
        return list.__getitem__(self, index)

def source(image):
    return records * 200  # over 1,024 records: the writer pauses half-way

node.snapshots.source = source
import kwire.server.snapshots as s
real = s.write_snapshot_steps
s.write_snapshot_steps = lambda d, i, values, **kw: real(d, i, Slow(values), **kw)
node.snapshots.write(node.controller, node.log.end_offset, 5_000, "test")
"""


def test_kill_9_while_writing_a_snapshot_leaves_the_previous_snapshot_and_log_intact(
    tmp_path: Path,
) -> None:
    node, config = new_node(tmp_path, **{"metadata.log.max.record.bytes.between.snapshots": "2000"})
    for broker in range(1, 25):
        register(node, broker)
        node.snapshot_work(2_000)
    previous = node.log.snapshot_ids()
    assert previous
    register(node, 50)
    expected = comparable(node.controller.image)
    node.close()
    script = WRITER.format(
        tests=str(REPO / "tests"), data=str(tmp_path / "data"), port=config.quorum_voters[0].port
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"writing\n"
        partition = tmp_path / "data" / PARTITION
        assert list(partition.glob("*.checkpoint.part")), "no partial snapshot while writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    restarted = open_node(config, start=False)
    assert not list(partition.glob("*.checkpoint.part"))
    assert restarted.log.snapshot_ids() == previous
    assert comparable(restarted.controller.image) == expected
    assert comparable(replay_of_log(restarted)) == expected
    restarted.close()


# -- Fetch and FetchSnapshot -------------------------------------------------------------


def fetch(node: ControllerNode, offset: int, epoch: int) -> FetchRequest:
    return FetchRequest(
        cluster_id=node.settings.cluster_id,
        replica_id=2,
        max_wait_ms=0,
        topics=[
            FetchRequest.FetchTopic(
                topic="__cluster_metadata",
                topic_id=uuid.UUID("00000000-0000-0000-0000-000000000001"),
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0,
                        current_leader_epoch=node.raft.epoch,
                        fetch_offset=offset,
                        last_fetched_epoch=epoch,
                    )
                ],
            )
        ],
    )


def snapshot_request(
    node: ControllerNode, sid: SnapshotId, position: int, max_bytes: int, **kw: object
) -> FetchSnapshotRequest:
    partition = FetchSnapshotRequest.PartitionSnapshot(
        partition=0,
        current_leader_epoch=node.raft.epoch,
        snapshot_id=FetchSnapshotRequest.SnapshotId(end_offset=sid.end_offset, epoch=sid.epoch),
        position=position,
    )
    request = FetchSnapshotRequest(
        cluster_id=node.settings.cluster_id,
        replica_id=2,
        max_bytes=max_bytes,
        topics=[
            FetchSnapshotRequest.TopicSnapshot(name="__cluster_metadata", partitions=[partition])
        ],
    )
    return dataclasses.replace(request, **kw)  # type: ignore[arg-type]


def answer(node: ControllerNode, request: FetchSnapshotRequest):  # type: ignore[no-untyped-def]
    outcome = node.raft.fetch_snapshot(request, 0)
    if isinstance(outcome, FetchSnapshotReady):
        return outcome.response
    assert isinstance(outcome, FetchSnapshotRead)
    size, chunk = read_chunk(node.log, outcome.snapshot_id, outcome.position, outcome.max_bytes)
    return node.raft.complete_fetch_snapshot(outcome, size, chunk)


def cleaned_node(tmp_path: Path) -> ControllerNode:
    node, _ = new_node(tmp_path, **{"metadata.log.max.record.bytes.between.snapshots": "2000"})
    for broker in range(1, 30):
        register(node, broker)
        node.snapshot_work(2_000)
    node.snapshots.settings = dataclasses.replace(node.snapshots.settings, retention_bytes=0)
    node.snapshots.next_clean_ms = 0
    node.snapshot_work(10**13)
    assert node.log.log_start_offset > 0
    return node


def test_fetch_below_the_log_start_answers_the_newest_snapshot_id(tmp_path: Path) -> None:
    node = cleaned_node(tmp_path)
    latest = node.log.latest_snapshot_id()
    assert latest is not None
    cases = {
        # ReplicatedLog.validateOffsetAndEpoch / tryCompleteFetchRequest
        "an empty replica (offset 0)": (0, 0),
        "below the log start": (node.log.log_start_offset - 1, node.raft.epoch),
        "at the log start with another epoch": (node.log.log_start_offset, 0),
    }
    for name, (offset, epoch) in cases.items():
        outcome = node.raft.fetch(fetch(node, offset, epoch), 0)
        assert isinstance(outcome, FetchReady), name
        data = outcome.response.responses[0].partitions[0]
        assert (data.snapshot_id.end_offset, data.snapshot_id.epoch) == (
            latest.end_offset,
            latest.epoch,
        ), name
        assert data.error_code == ErrorCode.NONE and not data.records, name
        assert data.log_start_offset == node.log.log_start_offset, name
    # At the log start with the snapshot's epoch the fetch reads the log.
    outcome = node.raft.fetch(fetch(node, node.log.log_start_offset, latest.epoch), 0)
    assert not isinstance(outcome, FetchReady)
    node.close()


def test_fetch_snapshot_serves_the_file_in_chunks_that_rebuild_it(tmp_path: Path) -> None:
    node = cleaned_node(tmp_path)
    latest = node.log.latest_snapshot_id()
    assert latest is not None
    whole = (
        node.log.directory / f"{latest.end_offset:020d}-{latest.epoch:010d}.checkpoint"
    ).read_bytes()
    got, position = b"", 0
    while position < len(whole):
        response = answer(node, snapshot_request(node, latest, position, 1000))
        data = response.topics[0].partitions[0]
        assert data.error_code == ErrorCode.NONE
        assert (data.size, data.position) == (len(whole), position)
        assert len(data.unaligned_records) == min(1000, len(whole) - position)
        assert data.current_leader.leader_id == 1
        got += bytes(data.unaligned_records)
        position += len(data.unaligned_records)
    assert got == whole
    node.close()


def test_fetch_snapshot_errors_are_kafkas(tmp_path: Path) -> None:
    node = cleaned_node(tmp_path)
    latest = node.log.latest_snapshot_id()
    assert latest is not None
    size = (
        node.log.directory.joinpath(f"{latest.end_offset:020d}-{latest.epoch:010d}.checkpoint")
        .stat()
        .st_size
    )
    cases = {
        # KafkaRaftClient.handleFetchSnapshotRequest
        "unknown snapshot": (
            snapshot_request(node, SnapshotId(3, 1), 0, 100),
            None,
            ErrorCode.SNAPSHOT_NOT_FOUND,
        ),
        "the bootstrap snapshot": (
            snapshot_request(node, SnapshotId(0, 0), 0, 100),
            None,
            ErrorCode.SNAPSHOT_NOT_FOUND,
        ),
        "position at the size": (
            snapshot_request(node, latest, size, 100),
            None,
            ErrorCode.POSITION_OUT_OF_RANGE,
        ),
        "negative position": (
            snapshot_request(node, latest, -1, 100),
            None,
            ErrorCode.POSITION_OUT_OF_RANGE,
        ),
        "another cluster": (
            snapshot_request(node, latest, 0, 100, cluster_id="other"),
            ErrorCode.INCONSISTENT_CLUSTER_ID,
            None,
        ),
    }
    for name, (request, top, partition_error) in cases.items():
        response = answer(node, request)
        if top is not None:
            assert response.error_code == top and not response.topics, name
        else:
            assert response.topics[0].partitions[0].error_code == partition_error, name
    stale = snapshot_request(node, latest, 0, 100)
    stale.topics[0].partitions[0].current_leader_epoch = node.raft.epoch - 1
    assert answer(node, stale).topics[0].partitions[0].error_code == ErrorCode.FENCED_LEADER_EPOCH
    other = snapshot_request(node, latest, 0, 100)
    other.topics[0].name = "other"
    data = answer(node, other).topics[0]
    assert (data.name, data.partitions[0].error_code) == (
        "other",
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    )
    node.close()
