"""Every batch Kafka 3.9 wrote in the captured metadata logs, snapshots and bootstrap
checkpoints parses, verifies and re-encodes to identical bytes; and what we decode
agrees with kafka-dump-log's text output for the same files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kwire.records import (
    ControlRecordType,
    compute_batch_crc,
    decode_batches,
    decode_control_record_key,
    encode_batch,
    iter_batch_headers,
    unframe_metadata_record,
)

LOG_DIRS = ("metadata-log", "metadata-log-default")


def record_files(captures: Path) -> list[Path]:
    files: list[Path] = []
    for name in LOG_DIRS:
        part = captures / name / "__cluster_metadata-0"
        files += sorted(part.glob("*.log")) + sorted(part.glob("*.checkpoint"))
        files.append(captures / name / "bootstrap.checkpoint")
    return files


@dataclass
class DumpBatch:
    fields: dict[str, str]
    records: list[dict[str, str]] = field(default_factory=list)

    def int(self, name: str) -> int:
        return int(self.fields[name])


def parse_dump(text: str) -> dict[str, list[DumpBatch]]:
    """kafka-dump-log output -> {file name: batches with their record lines}."""
    files: dict[str, list[DumpBatch]] = {}
    batches: list[DumpBatch] = []
    for line in text.splitlines():
        if line.startswith("Dumping "):
            batches = files.setdefault(Path(line.split()[1]).name, [])
        elif line.startswith("baseOffset:"):
            batches.append(DumpBatch(dict(re.findall(r"(\w+): (\S+)", line))))
        elif line.startswith("| offset:"):
            batches[-1].records.append(dict(re.findall(r"(\w+): (\S+)", line)))
    return files


@pytest.fixture
def files(kafka_captures: Path) -> list[Path]:
    found = [f for f in record_files(kafka_captures) if f.exists()]
    assert len(found) >= 4
    return found


def test_every_batch_verifies_and_reencodes_identically(files: list[Path]) -> None:
    for path in files:
        data = path.read_bytes()
        rebuilt = bytearray()
        count = 0
        for pos, header in iter_batch_headers(data):
            assert compute_batch_crc(data, pos, header) == header.crc
            count += 1
        for batch in decode_batches(data, verify_crc=True):
            rebuilt += encode_batch(batch)
        assert count > 0, path
        assert bytes(rebuilt) == data, path


def test_every_record_value_is_readable(files: list[Path]) -> None:
    for path in files:
        for batch in decode_batches(path.read_bytes()):
            for record in batch.records:
                if batch.is_control:
                    key = decode_control_record_key(record.key)
                    assert key.type != ControlRecordType.UNKNOWN
                    assert record.value
                else:
                    assert record.key is None
                    api_key, version, body = unframe_metadata_record(record.value)
                    assert 0 <= api_key < 100 and 0 <= version < 20
                    assert len(body) == len(record.value or b"") - 3


DUMPS = {
    "metadata-log-dump.txt": "metadata-log",
    "metadata-log-default-dump.txt": "metadata-log-default",
    "metadata-log-checkpoints-dump.txt": "metadata-log",
}


@pytest.mark.parametrize("dump_name", sorted(DUMPS))
def test_matches_kafka_dump_log(kafka_captures: Path, dump_name: str) -> None:
    dump = kafka_captures / dump_name
    if not dump.exists():
        pytest.skip(f"{dump} absent")
    expected = parse_dump(dump.read_text())
    assert expected
    part = kafka_captures / DUMPS[dump_name] / "__cluster_metadata-0"
    for file_name, want_batches in expected.items():
        data = (part / file_name).read_bytes()
        headers = list(iter_batch_headers(data))
        batches = list(decode_batches(data))
        assert len(batches) == len(want_batches), file_name
        assert sum(len(b.records) for b in batches) == sum(len(w.records) for w in want_batches)
        for (pos, header), batch, want in zip(headers, batches, want_batches, strict=True):
            assert pos == want.int("position")
            assert header.size_in_bytes == want.int("size")
            assert header.crc == want.int("crc")
            assert batch.base_offset == want.int("baseOffset")
            assert batch.last_offset == want.int("lastOffset")
            assert header.records_count == want.int("count")
            assert batch.partition_leader_epoch == want.int("partitionLeaderEpoch")
            assert batch.producer_id == want.int("producerId")
            assert batch.producer_epoch == want.int("producerEpoch")
            assert batch.base_sequence == want.int("baseSequence")
            assert str(batch.is_control).lower() == want.fields["isControl"]
            assert str(batch.is_transactional).lower() == want.fields["isTransactional"]
            assert batch.compression.name.lower() == want.fields["compresscodec"]
            assert batch.max_timestamp == want.int("CreateTime")
            for record, want_record in zip(batch.records, want.records, strict=True):
                assert batch.offset_of(record) == int(want_record["offset"])
                assert batch.timestamp_of(record) == int(want_record["CreateTime"])
                key_size = -1 if record.key is None else len(record.key)
                assert key_size == int(want_record["keySize"])
                assert len(record.value or b"") == int(want_record["valueSize"])
                if "controlType" in want_record:
                    key = decode_control_record_key(record.key)
                    assert want_record["controlType"] == f"{key.type.name}({key.type_id})"
