"""kwire.tools.dump_log against kafka-dump-log.sh's own output, and on damaged input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.records import (
    CompressionType,
    Record,
    TimestampType,
    build_batch,
    encode_batch,
    frame_metadata_record,
)
from kwire.records.batch import RecordBatch, batch_attributes
from kwire.tools.dump_log import DumpRelease, dump_files

CAPTURES_4_3 = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-4.3"
# Kafka 4.3.1's dumps: dump-metadata-log-<node>-<file>.txt beside metadata-log-<node>/.
DUMPS_4_3 = sorted(CAPTURES_4_3.glob("*/dump-metadata-log-*.txt"))

CASES = [
    ("metadata-log-dump.txt", "metadata-log"),
    ("metadata-log-default-dump.txt", "metadata-log-default"),
    ("metadata-log-checkpoints-dump.txt", "metadata-log"),
    ("dynamic-quorum/metadata-log-21-dump.txt", "dynamic-quorum/metadata-log-21"),
    *(
        (f"multi-broker/{name}", "multi-broker/controller-1-metadata")
        for name in [
            "dump-controller-1-metadata-00000000000000000000.log.txt",
            "dump-controller-1-metadata-00000000000000000032-0000000001.checkpoint.txt",
            "dump-controller-1-metadata-00000000000000000448-0000000001.checkpoint.txt",
        ]
    ),
]


def run(
    paths: list[Path | str],
    *,
    as_json: bool = False,
    release: DumpRelease = DumpRelease.KAFKA_3_9,
) -> tuple[list[str], str, int]:
    out, err = io.StringIO(), io.StringIO()
    status = dump_files([str(p) for p in paths], out, err, as_json=as_json, release=release)
    return out.getvalue().splitlines(), err.getvalue(), status


def _dumped_files(dump: list[str], log_dir: Path) -> list[Path]:
    # The dump names each file relative to wherever it was taken; keep only the last
    # two path components (partition directory and file name).
    names = [
        line.removeprefix("Dumping ").split("/")[-2:]
        for line in dump
        if line.startswith("Dumping ")
    ]
    return [log_dir.joinpath(*parts) for parts in names]


@pytest.mark.parametrize(("dump_name", "log_dir"), CASES, ids=[c[0] for c in CASES])
def test_output_matches_kafka_line_for_line(
    kafka_captures: Path, dump_name: str, log_dir: str
) -> None:
    expected = (kafka_captures / dump_name).read_text().splitlines()
    files = _dumped_files(expected, kafka_captures / log_dir)
    actual, err, status = run(files)
    assert (status, err) == (0, "")
    assert len(actual) == len(expected)
    for number, (mine, theirs) in enumerate(zip(actual, expected, strict=True), 1):
        if theirs.startswith("Dumping "):
            assert mine.startswith("Dumping ") and mine.endswith(theirs.split("/")[-1]), number
        else:
            assert mine == theirs, f"line {number}"


def _genuine_4_3_file(dump: Path) -> Path:
    # dump-metadata-log-1-00000000000000000034-0000000001.checkpoint.txt names
    # metadata-log-1/__cluster_metadata-0/00000000000000000034-0000000001.checkpoint;
    # dump-metadata-log-1-bootstrap.checkpoint.txt names metadata-log-1/bootstrap.checkpoint.
    node, _, name = dump.name.removeprefix("dump-metadata-log-").removesuffix(".txt").partition("-")
    log_dir = dump.parent / f"metadata-log-{node}"
    if name == "bootstrap.checkpoint":
        return log_dir / name
    return log_dir / "__cluster_metadata-0" / name


@pytest.mark.skipif(not DUMPS_4_3, reason=f"no Kafka 4.3.1 dumps at {CAPTURES_4_3}")
@pytest.mark.parametrize(
    "dump",
    DUMPS_4_3,
    ids=[f"{d.parent.name}/{d.name.removeprefix('dump-')}" for d in DUMPS_4_3],
)
def test_output_matches_kafka_4_3_dump_log_line_for_line(dump: Path) -> None:
    # Kafka 4.3.1's tools/.../DumpLogSegments.java printed these: segments, snapshots,
    # the dynamic quorum's KRaftVersion/KRaftVoters and LeaderChange as JSON.
    expected = dump.read_text().splitlines()
    actual, err, status = run([_genuine_4_3_file(dump)], release=DumpRelease.KAFKA_4_3)
    assert (status, err) == (0, "")
    # Kafka names the file as it was given (metadata-log-1/...); kwire is given the full path.
    assert actual[0].endswith(expected[0].removeprefix("Dumping "))
    assert len(actual) == len(expected)
    for number, (mine, theirs) in enumerate(zip(actual[1:], expected[1:], strict=True), 2):
        assert mine == theirs, f"line {number}"


@pytest.mark.parametrize(
    ("release", "printed"),
    [
        (DumpRelease.KAFKA_3_9, "controlType: LEADER_CHANGE(2)"),
        (
            DumpRelease.KAFKA_4_3,
            'LeaderChange: {"version":0,"leaderId":1,"voters":[{"voterId":1}],'
            '"grantingVoters":[{"voterId":1}]}',
        ),
    ],
    ids=["3.9.0 prints only the type", "4.3.1 prints the message"],
)
def test_leader_change_is_printed_as_the_chosen_release_prints_it(
    kafka_captures: Path, release: DumpRelease, printed: str
) -> None:
    segment = (
        kafka_captures
        / "metadata-log-default"
        / "__cluster_metadata-0"
        / "00000000000000000000.log"
    )
    lines, _, status = run([segment], release=release)
    assert status == 0
    assert lines[3].endswith(" headerKeys: [] " + printed)


def test_bootstrap_checkpoint(kafka_captures: Path) -> None:
    lines, _, status = run([kafka_captures / "metadata-log" / "bootstrap.checkpoint"])
    assert status == 0
    assert lines[1] == "KRaft bootstrap snapshot"
    assert lines[3].endswith('SnapshotHeader {"version":0,"lastContainedLogTimestamp":0}')
    assert lines[5].endswith(
        'payload: {"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"metadata.version","featureLevel":21}}'
    )
    assert lines[7].endswith('SnapshotFooter {"version":0}')
    assert len(lines) == 8


def test_json_mode_carries_what_the_text_shows(kafka_captures: Path) -> None:
    segment = kafka_captures / "metadata-log" / "__cluster_metadata-0" / "00000000000000000000.log"
    text, _, _ = run([segment])
    objects = [json.loads(line) for line in run([segment], as_json=True)[0]]
    assert objects[0] == {"kind": "file", "path": str(segment), "fileType": "log", "startOffset": 0}
    batches = [o for o in objects if o["kind"] == "batch"]
    records = [o for o in objects if o["kind"] == "record"]
    assert len(batches) == sum(line.startswith("baseOffset:") for line in text)
    assert len(records) == sum(line.startswith("| offset:") for line in text)
    first_batch = next(line for line in text if line.startswith("baseOffset:"))
    assert f"crc: {batches[0]['crc']} isvalid: true" in first_batch
    leader_change = records[0]
    assert leader_change["controlType"] == "LEADER_CHANGE"
    assert leader_change["control"]["leaderId"] == 1
    payloads = [line.split(" payload: ", 1)[1] for line in text if " payload: " in line]
    assert [json.dumps(r["payload"], separators=(",", ":")) for r in records if "payload" in r] == [
        json.dumps(json.loads(p), separators=(",", ":")) for p in payloads
    ]


def _metadata_value(level: int) -> bytes:
    return frame_metadata_record(12, 0, FeatureLevelRecord(name="x", feature_level=level).encode(0))


def _write(directory: Path, name: str, *batches: RecordBatch) -> Path:
    path = directory / name
    path.write_bytes(b"".join(encode_batch(b) for b in batches))
    return path


def test_batch_and_record_fields(tmp_path: Path) -> None:
    records = [
        Record(
            offset_delta=0,
            timestamp_delta=0,
            value=_metadata_value(1),
            headers=(("a", b"1"), ("b", None)),
        ),
        Record(offset_delta=1, timestamp_delta=5, key=b"k", value=_metadata_value(2)),
    ]
    compressed = build_batch(
        records,
        base_offset=10,
        base_timestamp=1000,
        partition_leader_epoch=3,
        compression=CompressionType.GZIP,
        transactional=True,
        producer_id=7,
        producer_epoch=2,
        base_sequence=2**31 - 1,  # the record sequence wraps to 0
    )
    appended = RecordBatch(
        base_offset=12,
        attributes=batch_attributes(
            timestamp_type=TimestampType.LOG_APPEND_TIME, delete_horizon=True
        ),
        base_timestamp=500,
        max_timestamp=2000,
        records=(Record(offset_delta=0, timestamp_delta=99, value=_metadata_value(3)),),
    )
    path = _write(tmp_path, "00000000000000000010.log", compressed, appended)
    lines, err, status = run([path])
    assert (status, err) == (0, "")
    size = len(encode_batch(compressed))
    assert lines[1:] == [
        "Log starting offset: 10",
        "baseOffset: 10 lastOffset: 11 count: 2 baseSequence: 2147483647 lastSequence: 0"
        " producerId: 7 producerEpoch: 2 partitionLeaderEpoch: 3 isTransactional: true"
        f" isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1005"
        f" size: {size} magic: 2 compresscodec: gzip crc: {_crc(compressed)} isvalid: true",
        "| offset: 10 CreateTime: 1000 keySize: -1 valueSize: 8 sequence: 2147483647"
        ' headerKeys: [a,b] payload: {"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"x","featureLevel":1}}',
        "| offset: 11 CreateTime: 1005 keySize: 1 valueSize: 8 sequence: 0"
        ' headerKeys: [] payload: {"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"x","featureLevel":2}}',
        "baseOffset: 12 lastOffset: 12 count: 1 baseSequence: -1 lastSequence: -1"
        " producerId: -1 producerEpoch: -1 partitionLeaderEpoch: -1 isTransactional: false"
        f" isControl: false deleteHorizonMs: OptionalLong[500] position: {size} LogAppendTime: 2000"
        f" size: {len(encode_batch(appended))} magic: 2 compresscodec: none crc: {_crc(appended)} isvalid: true",
        "| offset: 12 LogAppendTime: 2000 keySize: -1 valueSize: 8 sequence: -1"
        ' headerKeys: [] payload: {"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"x","featureLevel":3}}',
    ]


def _crc(batch: RecordBatch) -> int:
    return int.from_bytes(encode_batch(batch)[17:21], "big")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x01\x63\x00", "payload: Error at 0, skipping. Unknown metadata id 99"),
        (None, "payload: Error at 0, skipping. metadata record has a null value"),
        (b"\x01\x0c\x00\x02", "payload: Error at 0, skipping."),
    ],
)
def test_undecodable_payload_is_reported_and_skipped(
    tmp_path: Path, value: bytes | None, expected: str
) -> None:
    batch = build_batch([Record(offset_delta=0, value=value)], base_timestamp=1)
    path = _write(tmp_path, "00000000000000000000.log", batch)
    lines, _, status = run([path])
    assert status == 0
    assert expected in lines[-1]


def test_truncated_tail_is_reported_like_kafka(kafka_captures: Path, tmp_path: Path) -> None:
    segment = kafka_captures / "metadata-log" / "__cluster_metadata-0" / "00000000000000000000.log"
    path = tmp_path / segment.name
    path.write_bytes(segment.read_bytes()[:500])  # batches end at 472; 28 bytes of a torn one
    lines, err, status = run([path])
    assert status == 0
    assert lines[-1] == "Found 28 invalid bytes at the end of 00000000000000000000.log"
    assert lines[-2].startswith("| offset: 6 ")


def test_bad_crc_is_flagged_and_decoding_continues(kafka_captures: Path, tmp_path: Path) -> None:
    segment = kafka_captures / "metadata-log" / "__cluster_metadata-0" / "00000000000000000000.log"
    data = bytearray(segment.read_bytes()[:472])
    data[91 + 17] ^= 0xFF  # the stored crc of the second batch
    path = tmp_path / segment.name
    path.write_bytes(bytes(data))
    lines, _, status = run([path])
    assert status == 0
    batch_lines = [line for line in lines if line.startswith("baseOffset:")]
    assert [line.endswith("isvalid: true") for line in batch_lines] == [True, False, True, True]
    assert sum(line.startswith("| offset:") for line in lines) == 7


def test_corrupt_records_stop_with_a_message_and_no_traceback(
    kafka_captures: Path, tmp_path: Path
) -> None:
    segment = kafka_captures / "metadata-log" / "__cluster_metadata-0" / "00000000000000000000.log"
    data = bytearray(segment.read_bytes()[:472])
    data[91 + 61] = 0x7F  # the first record length of the second batch: -64
    path = tmp_path / segment.name
    path.write_bytes(bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "kwire.tools.dump_log", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "stopped at byte position 153" in result.stderr
    assert result.stdout.splitlines()[-1].startswith("baseOffset: 1 lastOffset: 4")


def test_unknown_and_badly_named_files(tmp_path: Path) -> None:
    other = tmp_path / "quorum-state"
    other.write_text("{}")
    odd = tmp_path / "abc.checkpoint"
    odd.write_bytes(b"")
    lines, err, status = run([other, odd, tmp_path / "00000000000000000000.log"])
    assert status == 1
    assert f"Ignoring unknown file {other}" in err
    assert "is not a <offset>-<epoch>.checkpoint name" in err
    assert "cannot read the file" in err
    assert lines.count(f"Dumping {other}") == 1


def test_json_error_lines(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"\x00" * 8 + b"\x00\x00\x00\x05" + b"\x00" * 20)  # batch length 5: corrupt
    lines, _, status = run([path], as_json=True)
    assert status == 1
    error = json.loads(lines[-1])
    assert (
        error["kind"] == "error"
        and error["position"] == 0
        and "below the v2 minimum" in error["message"]
    )
