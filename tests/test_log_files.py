"""Byte-exact formats of the small files in a KRaft metadata log directory."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from kwire.log.checkpoints import (
    METADATA_TOPIC_ID,
    CheckpointFormatError,
    EpochEntry,
    format_leader_epoch_checkpoint,
    format_partition_metadata,
    parse_leader_epoch_checkpoint,
    parse_partition_metadata,
    uuid_from_kafka_string,
    uuid_to_kafka_string,
)
from kwire.log.properties import (
    MetaProperties,
    PropertiesFormatError,
    format_properties,
    java_properties_order,
    parse_properties,
    read_meta_properties,
    write_meta_properties,
)
from kwire.log.quorum_state import (
    QuorumStateData,
    QuorumStateFormatError,
    format_quorum_state,
    parse_quorum_state,
    read_quorum_state,
    write_quorum_state,
)
from kwire.log.snapshots import (
    SnapshotId,
    create_partial_snapshot,
    freeze_snapshot,
    list_snapshots,
    mark_snapshot_for_deletion,
    parse_snapshot_path,
    remove_snapshot_leftovers,
    snapshot_path,
)

LOG_DIRS = ("metadata-log", "metadata-log-default")


@pytest.mark.parametrize("name", LOG_DIRS)
def test_meta_properties_identical_but_for_the_date(kafka_captures: Path, name: str) -> None:
    path = kafka_captures / name / "meta.properties"
    meta = read_meta_properties(path)
    assert meta.version == 1 and meta.node_id == 1 and meta.directory_id is not None
    original = path.read_bytes().split(b"\n")
    ours = format_properties(meta.to_properties(), now=0).split(b"\n")
    assert ours[0] == original[0] == b"#"
    assert ours[2:] == original[2:]
    # The date line is java.util.Date.toString(); check ours has the same shape.
    assert len(ours[1]) == len(original[1]) and ours[1].endswith(b" 1970")


def test_meta_properties_write_read(tmp_path: Path) -> None:
    meta = MetaProperties(cluster_id="MkU3OEVBNTcwNTJENDM2Qk", node_id=3, directory_id=uuid.uuid4())
    write_meta_properties(tmp_path / "meta.properties", meta, now=1_795_330_950)
    text = (tmp_path / "meta.properties").read_text()
    assert text.splitlines()[1] == "#Sun Nov 22 07:02:30 UTC 2026"
    assert read_meta_properties(tmp_path / "meta.properties") == meta
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(PropertiesFormatError):
        MetaProperties.from_properties({"version": "1", "node.id": "1"})
    with pytest.raises(PropertiesFormatError):
        MetaProperties.from_properties({"version": "1", "node.id": "x", "cluster.id": "c"})


def test_java_properties_parsing_and_order() -> None:
    text = b"# c\n! c\n a b\nc:d\ne = f \\\n  g\nk\\=x=y\nsp\\ ace = v\\tw\n"
    assert parse_properties(text) == {"a": "b", "c": "d", "e": "f g", "k=x": "y", "sp ace": "v\tw"}
    # Kafka's capture shows this order; it follows from Java String.hashCode bins.
    keys = ["version", "cluster.id", "node.id", "directory.id"]
    assert java_properties_order(keys) == ["node.id", "directory.id", "version", "cluster.id"]
    assert parse_properties(format_properties({"a=b": " x:y#"}, now=0)) == {"a=b": " x:y#"}


@pytest.mark.parametrize("name", LOG_DIRS)
def test_partition_metadata_identical(kafka_captures: Path, name: str) -> None:
    raw = (kafka_captures / name / "__cluster_metadata-0" / "partition.metadata").read_bytes()
    assert parse_partition_metadata(raw) == METADATA_TOPIC_ID
    assert format_partition_metadata(METADATA_TOPIC_ID) == raw


def test_partition_metadata_errors() -> None:
    with pytest.raises(CheckpointFormatError):
        parse_partition_metadata(b"version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ")
    with pytest.raises(CheckpointFormatError):
        parse_partition_metadata(b"version: 0\ntopic_id: AAAA")
    with pytest.raises(CheckpointFormatError):
        parse_partition_metadata(b"version: 0")


def test_kafka_uuid_strings() -> None:
    assert uuid_to_kafka_string(uuid.UUID(int=1)) == "AAAAAAAAAAAAAAAAAAAAAQ"
    some = uuid.uuid4()
    assert uuid_from_kafka_string(uuid_to_kafka_string(some)) == some


@pytest.mark.parametrize("name", LOG_DIRS)
def test_leader_epoch_checkpoint_identical(kafka_captures: Path, name: str) -> None:
    raw = (kafka_captures / name / "__cluster_metadata-0" / "leader-epoch-checkpoint").read_bytes()
    entries = parse_leader_epoch_checkpoint(raw)
    assert entries == [EpochEntry(1, 0)]
    assert format_leader_epoch_checkpoint(entries) == raw


def test_leader_epoch_checkpoint_format_and_errors() -> None:
    entries = [EpochEntry(1, 0), EpochEntry(4, 120)]
    raw = format_leader_epoch_checkpoint(entries)
    assert raw == b"0\n2\n1 0\n4 120\n"
    assert parse_leader_epoch_checkpoint(b"0\n2\n1\t0\n4   120\n") == entries
    assert parse_leader_epoch_checkpoint(b"") == []
    for bad in (b"1\n0\n", b"0\n2\n1 0\n", b"0\n1\n1 x\n", b"0\n1\n1 2 3\n", b"zero\n"):
        with pytest.raises(CheckpointFormatError):
            parse_leader_epoch_checkpoint(bad)


@pytest.mark.parametrize("name", LOG_DIRS)
def test_quorum_state_identical(kafka_captures: Path, name: str, tmp_path: Path) -> None:
    raw = (kafka_captures / name / "__cluster_metadata-0" / "quorum-state").read_bytes()
    state = parse_quorum_state(raw)
    assert state.leader_id == 1 and state.current_voters == (1,) and state.data_version == 0
    assert format_quorum_state(state) == raw
    write_quorum_state(tmp_path / "quorum-state", state)
    assert (tmp_path / "quorum-state").read_bytes() == raw
    assert [p.name for p in tmp_path.iterdir()] == ["quorum-state"]


def test_quorum_state_v1_and_errors(tmp_path: Path) -> None:
    state = QuorumStateData(
        leader_id=2, leader_epoch=7, voted_id=2, voted_directory_id=uuid.UUID(int=5), data_version=1
    )
    raw = format_quorum_state(state)
    assert raw == (
        b'{"leaderId":2,"leaderEpoch":7,"votedId":2,'
        b'"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAABQ","data_version":1}'
    )
    assert parse_quorum_state(raw) == dataclasses.replace(state, current_voters=())
    nulls = QuorumStateData(current_voters=None)
    assert b'"currentVoters":null' in format_quorum_state(nulls)
    assert parse_quorum_state(format_quorum_state(nulls)) == nulls
    assert read_quorum_state(tmp_path / "absent") is None
    for bad in (b"", b"[]", b'{"leaderId":1}', b'{"data_version":2}', b"{nope"):
        with pytest.raises(QuorumStateFormatError):
            parse_quorum_state(bad)


def test_snapshot_file_lifecycle(tmp_path: Path) -> None:
    sid = SnapshotId(end_offset=221, epoch=1)
    assert snapshot_path(tmp_path, sid).name == "00000000000000000221-0000000001.checkpoint"
    partial = create_partial_snapshot(tmp_path, sid)
    assert partial.name.startswith("00000000000000000221-0000000001-")
    assert partial.name.endswith(".checkpoint.part")
    parsed = parse_snapshot_path(partial)
    assert parsed is not None and parsed.partial and parsed.snapshot_id == sid
    assert list_snapshots(tmp_path) == []
    partial.write_bytes(b"snapshot bytes")
    final = freeze_snapshot(partial, sid)
    assert final.read_bytes() == b"snapshot bytes" and not partial.exists()
    other = SnapshotId(27, 1)
    freeze_snapshot(create_partial_snapshot(tmp_path, other), other)
    assert list_snapshots(tmp_path) == [other, sid]
    deleted = mark_snapshot_for_deletion(tmp_path, other)
    assert deleted.name == "00000000000000000027-0000000001.checkpoint.deleted"
    leftover = create_partial_snapshot(tmp_path, SnapshotId(300, 2))
    assert sorted(remove_snapshot_leftovers(tmp_path)) == sorted([deleted, leftover])
    assert list_snapshots(tmp_path) == [sid]
    assert parse_snapshot_path(tmp_path / "00000000000000000000.log") is None
    assert parse_snapshot_path(tmp_path / "bootstrap.checkpoint") is None


def test_genuine_snapshot_names(kafka_captures: Path) -> None:
    part = kafka_captures / "metadata-log" / "__cluster_metadata-0"
    ids = list_snapshots(part)
    assert ids and all(snapshot_path(part, i).exists() for i in ids)
    assert SnapshotId(221, 1) in ids
