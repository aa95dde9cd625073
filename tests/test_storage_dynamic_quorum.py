"""``kafka-storage format`` for a KIP-853 quorum: --initial-controllers, --standalone and
--no-initial-controllers, against what Kafka 4.3.1 and 3.9.0 wrote and printed.

Ground truth: ../shared/captures/kafka-4.3/quorum-prevote (each node formatted with
--initial-controllers: format-controller-N.txt, meta.properties, the bootstrap snapshot
00000000000000000000-0000000000.checkpoint) and ../shared/captures/kafka-3.9/dynamic-quorum
(node 21 formatted --standalone). Kafka's refusals are those of StorageTool.scala, Formatter
and DynamicVoter (4.3.1), with DynamicVoterTest's cases.
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kwire.log import MetadataLog
from kwire.log.checkpoints import uuid_from_kafka_string
from kwire.log.properties import read_meta_properties
from kwire.log.snapshot_io import read_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.control.snapshot_header_record import SnapshotHeaderRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.raft.voter_set import KRaftControlRecords, KRaftVersion, ReplicaKey
from kwire.records import (
    ControlRecordType,
    RecordBatch,
    decode_batches,
    decode_control_record_key,
    encode_batch,
)
from kwire.server.config import ControllerServerConfig
from kwire.storage.dynamic_voters import DynamicVoter, DynamicVoterError, DynamicVoters
from kwire.storage.formatter import FormatterError, format_storage
from kwire.tools.dump_log import DumpRelease, dump_files

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures"
PREVOTE = CAPTURES / "kafka-4.3" / "quorum-prevote"
DYNAMIC_39 = CAPTURES / "kafka-3.9" / "dynamic-quorum" / "metadata-log-21"
BOOTSTRAP_SNAPSHOT = Path("__cluster_metadata-0") / "00000000000000000000-0000000000.checkpoint"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"  # both captures' cluster id
# notes.txt of quorum-prevote: the --initial-controllers every node was formatted with.
INITIAL = (
    "1@127.0.0.1:39311:dkuzBlOnSDmSdp3skeoWwA,2@127.0.0.1:39312:NieKnjGGTVSIYo91-2YSjQ,"
    "3@127.0.0.1:39313:H3gXG6QsRQyb4oSF40UTLA"
)

needs_captures = pytest.mark.skipif(
    not (PREVOTE.is_dir() and DYNAMIC_39.is_dir()), reason=f"captures not found at {CAPTURES}"
)


def storage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kwire.storage", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def dynamic_config(directory: Path, node_id: int = 1, port: int = 39311, **extra: str) -> Path:
    props = {
        "process.roles": "controller",
        "node.id": str(node_id),
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{port}",
        "listeners": f"CONTROLLER://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        "log.dirs": str(directory / f"controller-{node_id}"),
        **extra,
    }
    path = directory / f"controller-{node_id}.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def with_times_of(mine: RecordBatch, theirs: RecordBatch) -> RecordBatch:
    """``mine`` with ``theirs``'s timestamps (batch times and the snapshot header's
    lastContainedLogTimestamp), the only fields that differ by nature."""
    records = list(mine.records)
    for i, (a, b) in enumerate(zip(mine.records, theirs.records, strict=True)):
        if mine.is_control and decode_control_record_key(a.key).type is (
            ControlRecordType.SNAPSHOT_HEADER
        ):
            header = SnapshotHeaderRecord.decode(a.value or b"", 0)
            genuine = SnapshotHeaderRecord.decode(b.value or b"", 0)
            header.last_contained_log_timestamp = genuine.last_contained_log_timestamp
            records[i] = dataclasses.replace(a, value=header.encode(0))
    return dataclasses.replace(
        mine,
        base_timestamp=theirs.base_timestamp,
        max_timestamp=theirs.max_timestamp,
        records=tuple(records),
    )


def assert_same_but_times(mine: bytes, theirs: bytes) -> None:
    ours, genuine = list(decode_batches(mine)), list(decode_batches(theirs))
    assert len(ours) == len(genuine)
    assert (
        b"".join(encode_batch(with_times_of(a, b)) for a, b in zip(ours, genuine, strict=True))
        == theirs
    )


@needs_captures
@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_initial_controllers_format_as_kafka_4_3_formatted_each_node(
    tmp_path: Path, node_id: int
) -> None:
    text = (PREVOTE / f"controller-{node_id}.properties").read_text()
    config = tmp_path / "controller.properties"
    config.write_text(text.replace("<data>", str(tmp_path)))
    result = storage("format", "-t", CLUSTER_ID, "-c", config, "--initial-controllers", INITIAL)
    assert (result.returncode, result.stderr) == (0, "")
    expected = (PREVOTE / f"format-controller-{node_id}.txt").read_text()
    assert result.stdout == expected.replace("<data>", str(tmp_path))

    data = tmp_path / f"controller-{node_id}"
    genuine = PREVOTE / f"metadata-log-{node_id}"
    # meta.properties: the directory id given for this node, as Kafka wrote it.
    assert read_meta_properties(data / "meta.properties") == read_meta_properties(
        genuine / "meta.properties"
    )
    assert_same_but_times(
        (data / BOOTSTRAP_SNAPSHOT).read_bytes(), (genuine / BOOTSTRAP_SNAPSHOT).read_bytes()
    )
    assert_same_but_times(
        (data / "bootstrap.checkpoint").read_bytes(),
        (genuine / "bootstrap.checkpoint").read_bytes(),
    )
    assert sorted(p.name for p in data.rglob("*")) == [
        "00000000000000000000-0000000000.checkpoint",
        "__cluster_metadata-0",
        "bootstrap.checkpoint",
        "meta.properties",
    ]


@needs_captures
def test_standalone_formats_as_kafka_3_9_formatted_its_first_controller(tmp_path: Path) -> None:
    config = dynamic_config(tmp_path, node_id=21, port=19111)
    result = storage("format", "-t", CLUSTER_ID, "-c", config, "-r", "3.9-IV0", "--standalone")
    assert (result.returncode, result.stderr) == (0, "")
    data = tmp_path / "controller-21"
    assert result.stdout.splitlines()[-1] == (
        f"Formatting dynamic metadata voter directory {data} with metadata.version 3.9-IV0."
    )
    meta = read_meta_properties(data / "meta.properties")
    genuine_meta = read_meta_properties(DYNAMIC_39 / "meta.properties")
    assert meta.directory_id is not None and meta.directory_id != genuine_meta.directory_id
    assert dataclasses.replace(meta, directory_id=genuine_meta.directory_id) == genuine_meta
    # The snapshot's voter is this node, with the fresh directory id of meta.properties;
    # with Kafka's directory id in its place the file is Kafka's.
    ours = list(decode_batches((data / BOOTSTRAP_SNAPSHOT).read_bytes()))
    voters_record = ours[0].records[2]
    voters = VotersRecord.decode(voters_record.value or b"", 0)
    assert [v.voter_directory_id for v in voters.voters] == [meta.directory_id]
    voters.voters[0].voter_directory_id = genuine_meta.directory_id
    records = (*ours[0].records[:2], dataclasses.replace(voters_record, value=voters.encode(0)))
    ours[0] = dataclasses.replace(ours[0], records=records)
    assert_same_but_times(
        b"".join(encode_batch(b) for b in ours), (DYNAMIC_39 / BOOTSTRAP_SNAPSHOT).read_bytes()
    )
    assert_same_but_times(
        (data / "bootstrap.checkpoint").read_bytes(),
        (DYNAMIC_39 / "bootstrap.checkpoint").read_bytes(),
    )


def test_the_bootstrap_snapshot_is_what_the_voter_history_and_the_log_read(tmp_path: Path) -> None:
    config = ControllerServerConfig.load(dynamic_config(tmp_path, node_id=2, port=9002))
    initial = DynamicVoters.parse(
        "1@h1:9001:AAAAAAAAAAAAAAAAAAAAAQ,2@h2:9002:AAAAAAAAAAAAAAAAAAAAAg"
    )
    result = format_storage(config, CLUSTER_ID, initial_controllers=initial)
    assert result.feature_levels["kraft.version"] == 1
    partition = tmp_path / "controller-2" / "__cluster_metadata-0"
    history = KRaftControlRecords()
    history.load_snapshot(0, decode_batches((partition / BOOTSTRAP_SNAPSHOT.name).read_bytes()))
    assert history.last_kraft_version is KRaftVersion.KRAFT_VERSION_1
    assert history.last_voter_set == initial.to_voter_set("CONTROLLER")
    assert history.last_voter_set.is_voter(ReplicaKey(2, uuid.UUID(int=2)))
    assert read_snapshot(partition, SnapshotId(0, 0)).values == []
    log = MetadataLog.open(partition)
    try:
        assert (log.log_start_offset, log.end_offset) == (0, 0)
        assert log.latest_snapshot_id() == SnapshotId(0, 0)
    finally:
        log.close()


def test_a_node_not_among_the_initial_controllers_gets_a_fresh_directory(tmp_path: Path) -> None:
    config = dynamic_config(tmp_path, node_id=4, port=9004)
    given = "1@h:9001:dkuzBlOnSDmSdp3skeoWwA,2@h:9002:NieKnjGGTVSIYo91-2YSjQ"
    result = storage("format", "-t", CLUSTER_ID, "-c", config, "-I", given)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "controller-4"
    assert result.stdout.splitlines()[-1] == (
        f"Formatting dynamic metadata directory {data} with metadata.version 4.3-IV0."
    )
    directory_id = read_meta_properties(data / "meta.properties").directory_id
    assert directory_id not in {
        uuid_from_kafka_string(d) for d in ("dkuzBlOnSDmSdp3skeoWwA", "NieKnjGGTVSIYo91-2YSjQ")
    }
    history = KRaftControlRecords()
    history.load_snapshot(0, decode_batches((data / BOOTSTRAP_SNAPSHOT).read_bytes()))
    assert history.last_voter_set.voter_ids() == [1, 2]


def test_no_initial_controllers_implies_kraft_version_1_without_a_snapshot(tmp_path: Path) -> None:
    config = ControllerServerConfig.load(dynamic_config(tmp_path, node_id=22, port=19112))
    result = format_storage(config, CLUSTER_ID, "3.9-IV0")
    data = tmp_path / "controller-22"
    assert (
        result.lines[-1] == f"Formatting metadata directory {data} with metadata.version 3.9-IV0."
    )
    assert result.feature_levels["kraft.version"] == 1
    # BootstrapMetadata.fromVersions never writes kraft.version as a FeatureLevelRecord.
    assert [r.name for r, _ in result.bootstrap] == ["metadata.version"]  # type: ignore[attr-defined]
    assert sorted(p.name for p in data.iterdir()) == ["bootstrap.checkpoint", "meta.properties"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--standalone", "--no-initial-controllers"],
            "argument --no-initial-controllers/-N: not allowed with argument --standalone/-s",
        ),
        (
            ["--standalone", "--feature", "kraft.version=0"],
            "Cannot set kraft.version to 0 if controller.quorum.voters is empty and one of the "
            "flags --standalone, --initial-controllers, or --no-initial-controllers is used. For "
            "dynamic controllers support, try removing the --feature flag for kraft.version.",
        ),
        (["-I", "1@localhost:8020"], "No colon following port could be found."),
        (["-I", " , x"], "No @ found in dynamic voter string."),
        (["-I", " , "], "No voters given."),
        (["-I", ","], "No voters given."),
        (
            ["-I", "1@h:1:dkuzBlOnSDmSdp3skeoWwA,1@h:2:NieKnjGGTVSIYo91-2YSjQ"],
            "Node id 1 was specified more than once.",
        ),
        (
            [],
            "Because controller.quorum.voters is not set on this controller, you must specify one "
            "of the following: --standalone, --initial-controllers, or --no-initial-controllers.",
        ),
    ],
    ids=[
        "exclusive flags",
        "kraft.version 0",
        "no port colon",
        "blank voter",
        "only blanks",
        "no voters",
        "duplicate id",
        "no flag",
    ],
)
def test_dynamic_quorum_refusals(tmp_path: Path, args: list[str], message: str) -> None:
    result = storage("format", "-t", CLUSTER_ID, "-c", dynamic_config(tmp_path), *args)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.strip().endswith(message)
    assert not (tmp_path / "controller-1").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost:8020:K90IZ-0DRNazJ49kCZ1EMQ", "No @ found in dynamic voter string."),
        (
            "@localhost:8020:K90IZ-0DRNazJ49kCZ1EMQ",
            "Invalid @ at beginning of dynamic voter string.",
        ),
        (
            "-1@localhost:8020:K90IZ-0DRNazJ49kCZ1EMQ",
            "Invalid negative node id -1 in dynamic voter string.",
        ),
        (
            "blah@localhost:8020:K90IZ-0DRNazJ49kCZ1EMQ",
            "Failed to parse node id in dynamic voter string.",
        ),
        ("2@", "No hostname found after node id."),
        (
            "5@[2001:4860:4860::8888:8020:__0IZ-0DRNazJ49kCZ1EMQ",
            "Hostname began with left bracket, but no right bracket was found.",
        ),
        ("2@localhost8020K90IZ-0DRNazJ49kCZ1EMQ", "No colon following hostname could be found."),
        (
            "5@[2001:4860:4860::8888]8020:__0IZ-0DRNazJ49kCZ1EMQ",
            "Port section must start with a colon.",
        ),
        (
            "5@[2001:4860:4860::8888]:8020__0IZ-0DRNazJ49kCZ1EMQ",
            "No colon following port could be found.",
        ),
        (
            "5@[2001:4860:4860::8888]:8020m:__0IZ-0DRNazJ49kCZ1EMQ",
            "Failed to parse port in dynamic voter string.",
        ),
        (
            "5@[2001:4860:4860::8888]:-8020:__0IZ-0DRNazJ49kCZ1EMQ",
            "Invalid port -8020 in dynamic voter string.",
        ),
        (
            "5@[2001:4860:4860::8888]:666666:__0IZ-0DRNazJ49kCZ1EMQ",
            "Invalid port 666666 in dynamic voter string.",
        ),
        (
            "5@[2001:4860:4860::8888]:8020:%_0IZ-0DRNazJ49kCZ1EMQ",
            "Failed to parse directory ID in dynamic voter string.",
        ),
        ("5@[2001:4860:4860::8888]:8020:", "Failed to parse directory ID in dynamic voter string."),
        ("5@h:8020:AAAAAAAAAAAAAAAAAAAA", "Failed to parse directory ID in dynamic voter string."),
    ],
)
def test_a_bad_voter_string_is_refused_with_kafkas_message(text: str, message: str) -> None:
    # Kafka 4.3.1's DynamicVoterTest, case for case (the last: 15 bytes, not a uuid).
    with pytest.raises(DynamicVoterError) as refused:
        DynamicVoter.parse(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("text", "voter"),
    [
        ("2@localhost:8020:K90IZ-0DRNazJ49kCZ1EMQ", (2, "localhost", 8020)),
        ("5@[2001:4860:4860::8888]:8020:__0IZ-0DRNazJ49kCZ1EMQ", (5, "2001:4860:4860::8888", 8020)),
        (" 0@h:0:K90IZ-0DRNazJ49kCZ1EMQ ", (0, "h", 0)),
    ],
)
def test_a_voter_string_parses_and_prints_back(text: str, voter: tuple[int, str, int]) -> None:
    parsed = DynamicVoter.parse(text)
    assert (parsed.node_id, parsed.host, parsed.port) == voter
    assert str(parsed) == text.strip()
    assert parsed.directory_id == uuid_from_kafka_string(text.strip().rpartition(":")[2])


def test_voters_are_kept_by_id_and_become_a_voter_set_on_the_controller_listener() -> None:
    voters = DynamicVoters.parse("3@c:3:H3gXG6QsRQyb4oSF40UTLA,,1@a:1:dkuzBlOnSDmSdp3skeoWwA")
    assert [v.node_id for v in voters.voters] == [1, 3]
    assert str(voters) == "1@a:1:dkuzBlOnSDmSdp3skeoWwA,3@c:3:H3gXG6QsRQyb4oSF40UTLA"
    voter_set = voters.to_voter_set("controller")
    node = voter_set.node(3)
    assert node is not None
    assert [(e.name, e.host, e.port) for e in node.endpoints] == [("CONTROLLER", "c", 3)]
    assert node.supported_kraft_versions == (0, 1)


def _masked(line: str) -> str:
    # Times differ by nature, and with them each batch's CRC.
    line = re.sub(r"CreateTime: \d+", "CreateTime: T", line)
    line = re.sub(r"crc: \d+", "crc: C", line)
    return re.sub(r'"lastContainedLogTimestamp":\d+', '"lastContainedLogTimestamp":T', line)


@needs_captures
def test_the_bootstrap_snapshot_dumps_as_kafka_dump_log_printed_the_genuine_one(
    tmp_path: Path,
) -> None:
    text = (PREVOTE / "controller-1.properties").read_text()
    config = tmp_path / "controller.properties"
    config.write_text(text.replace("<data>", str(tmp_path)))
    loaded = ControllerServerConfig.load(config)
    format_storage(loaded, CLUSTER_ID, initial_controllers=DynamicVoters.parse(INITIAL))
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "controller-1" / BOOTSTRAP_SNAPSHOT
    status = dump_files([str(path)], out, err, release=DumpRelease.KAFKA_4_3)
    assert (status, err.getvalue()) == (0, "")
    expected = (
        PREVOTE / "dump-metadata-log-1-00000000000000000000-0000000000.checkpoint.txt"
    ).read_text()
    mine, theirs = out.getvalue().splitlines(), expected.splitlines()
    assert mine[0] == f"Dumping {path}" and theirs[0].endswith(str(BOOTSTRAP_SNAPSHOT))
    assert [_masked(x) for x in mine[1:]] == [_masked(x) for x in theirs[1:]]


def test_the_library_refuses_initial_controllers_beside_static_voters(tmp_path: Path) -> None:
    config = ControllerServerConfig.load(
        dynamic_config(tmp_path, **{"controller.quorum.voters": "1@127.0.0.1:39311"})
    )
    with pytest.raises(FormatterError, match="You cannot specify controller.quorum.voters"):
        format_storage(config, CLUSTER_ID, initial_controllers=DynamicVoters.parse(INITIAL))
    assert not (tmp_path / "controller-1").exists()
