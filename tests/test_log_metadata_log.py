"""MetadataLog: append, read, roll, truncate, epoch cache, reopen and recovery."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from kwire.log import (
    InconsistentTopicIdError,
    InvalidAppendError,
    MetadataLog,
    MetadataLogConfig,
    OffsetOutOfRangeError,
)
from kwire.log.checkpoints import write_partition_metadata
from kwire.log.index import decode_offset_index, decode_time_index
from kwire.log.snapshot_set import InconsistentSnapshotError
from kwire.log.snapshots import SnapshotId, create_partial_snapshot, freeze_snapshot
from kwire.records import (
    CorruptRecordError,
    Record,
    build_batch,
    decode_batches,
    encode_batch,
    frame_metadata_record,
    iter_batch_headers,
)

SMALL = MetadataLogConfig(segment_bytes=4000, index_interval_bytes=300)


def batch(tag: int, records: int = 1, size: int = 40) -> bytes:
    values = [
        frame_metadata_record(0, 0, b"%06d-%d" % (tag, k) + b"x" * size) for k in range(records)
    ]
    recs = [Record(offset_delta=k, timestamp_delta=k, value=v) for k, v in enumerate(values)]
    return encode_batch(build_batch(recs, base_timestamp=1_700_000_000_000 + tag))


def tags(log: MetadataLog, start: int = 0) -> list[int]:
    return [int((b.records[0].value or b"")[3:9]) for b in log.read_batches(start)]


def fill(log: MetadataLog, n: int, epoch: int = 1, records: int = 2) -> None:
    for i in range(n):
        log.append_as_leader(batch(i, records), epoch)


def test_new_directory_layout(tmp_path: Path) -> None:
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog.open(d)
    assert (
        d / "partition.metadata"
    ).read_bytes() == b"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ"
    assert (d / "leader-epoch-checkpoint").read_bytes() == b"0\n0\n"
    # Like Kafka, the active segment's indexes are preallocated while open...
    assert (d / "00000000000000000000.index").stat().st_size == 10 * 1024 * 1024
    assert (d / "00000000000000000000.timeindex").stat().st_size == 10 * 1024 * 1024 - 4
    assert log.end_offset == 0 and log.latest_epoch is None
    info = log.append_as_leader(batch(0, 3), epoch=1)
    assert (info.first_offset, info.last_offset) == (0, 2)
    log.close()
    # ...and trimmed on close, when the producer snapshot is written too.
    assert (d / "00000000000000000000.index").stat().st_size == 0
    assert (d / "00000000000000000000.timeindex").stat().st_size == 12
    assert (d / "00000000000000000003.snapshot").read_bytes() == bytes.fromhex(
        "000148674bc700000000"
    )
    assert (d / "leader-epoch-checkpoint").read_bytes() == b"0\n1\n1 0\n"


def test_append_read_and_epochs(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 5, epoch=1)
    fill(log, 3, epoch=3)
    assert log.end_offset == 16
    assert log.epoch_entries == [(1, 0), (3, 10)]
    assert log.end_offset_for_epoch(1) == (1, 10)
    assert log.end_offset_for_epoch(2) == (1, 10)
    assert log.end_offset_for_epoch(3) == (3, 16)
    assert log.end_offset_for_epoch(0) == (0, 0)
    assert log.end_offset_for_epoch(4) is None
    batches = list(log.read_batches(0))
    assert [b.base_offset for b in batches] == list(range(0, 16, 2))
    assert [b.partition_leader_epoch for b in batches] == [1] * 5 + [3] * 3
    assert tags(log) == [0, 1, 2, 3, 4, 0, 1, 2]
    # An offset inside a batch returns the whole batch holding it.
    assert next(iter(log.read_batches(7))).base_offset == 6
    assert (tmp_path / "p" / "leader-epoch-checkpoint").read_bytes() == b"0\n2\n1 0\n3 10\n"
    log.close()


def test_read_limits(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p")
    fill(log, 10)
    one = len(batch(0, 2))
    assert len(log.read(0, max_bytes=one * 3 + 5)) == one * 3
    assert len(log.read(0, max_bytes=1)) == one  # always at least one batch
    assert [b.base_offset for b in decode_batches(log.read(4, max_offset=9))] == [4, 6]
    assert log.read(5, max_offset=4) == b""
    assert log.read(20) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(21)
    log.update_high_watermark(8)
    assert [b.base_offset for b in log.read_batches(0, max_offset=log.high_watermark)][-1] == 6
    assert log.update_high_watermark(99) == 20
    log.close()


def test_follower_append_rules(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", MetadataLogConfig(max_batch_size_bytes=2000))
    first = encode_batch(
        build_batch(
            [Record(offset_delta=0, value=b"a")], base_timestamp=1, partition_leader_epoch=4
        )
    )
    assert log.append_as_follower(first) == (0, 0)
    assert log.latest_epoch == 4
    with pytest.raises(InvalidAppendError, match="expected 1"):
        log.append_as_follower(first)
    bad = bytearray(
        encode_batch(build_batch([Record(offset_delta=0)], base_offset=1, base_timestamp=1))
    )
    bad[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        log.append_as_follower(bad)
    with pytest.raises(InvalidAppendError, match="empty"):
        log.append_as_leader(b"", 1)
    with pytest.raises(InvalidAppendError, match="exceeds"):
        log.append_as_leader(batch(0, 1, size=3000), 4)
    assert log.end_offset == 1
    log.close()


def test_roll_and_reopen(tmp_path: Path) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 60)
    bases = log.segment_base_offsets
    assert len(bases) >= 3 and bases[0] == 0
    for prev, nxt in zip(bases, bases[1:], strict=False):
        assert (d / f"{nxt:020d}.log").exists()
        # every segment stays under segment_bytes
        assert (d / f"{prev:020d}.log").stat().st_size <= SMALL.segment_bytes
    # Rolled segments have trimmed indexes matching the Kafka rule.
    first_index = decode_offset_index((d / f"{bases[0]:020d}.index").read_bytes(), 0)
    assert first_index and all(p > 0 for _, p in first_index)
    log.close()
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    again = MetadataLog.open(d, SMALL)
    assert again.end_offset == 120 and again.segment_base_offsets == bases
    assert tags(again) == list(range(60))
    assert tags(again, 77) == list(range(38, 60))
    again.close()
    assert {p.name: p.read_bytes() for p in d.iterdir()} == files


def test_indexes_rebuilt_when_missing_or_corrupt(tmp_path: Path) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 60)
    log.close()
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    index_files = sorted(d.glob("*.index")) + sorted(d.glob("*.timeindex"))
    index_files[0].unlink()
    index_files[1].write_bytes(b"\xff" * 13)
    index_files[-1].write_bytes(b"")
    MetadataLog.open(d, SMALL).close()
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    timeindex = decode_time_index(before["00000000000000000000.timeindex"], 0)
    assert [t for t, _ in timeindex] == sorted(t for t, _ in timeindex)


def test_truncate(tmp_path: Path) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 30, epoch=1)
    fill(log, 30, epoch=2)
    assert log.epoch_entries == [(1, 0), (2, 60)]
    log.update_high_watermark(100)
    segments_before = log.segment_base_offsets
    assert log.truncate_to(200) == 120  # beyond the end: nothing to do
    assert log.truncate_to(75) == 74  # mid-batch: the whole batch goes
    assert log.high_watermark == 74
    assert all(b <= 74 for b in log.segment_base_offsets)
    assert len(log.segment_base_offsets) < len(segments_before)
    assert tags(log)[-1] == 6 and len(tags(log)) == 37
    assert log.truncate_to(60) == 60
    assert log.epoch_entries == [(1, 0)]
    assert (d / "leader-epoch-checkpoint").read_bytes() == b"0\n1\n1 0\n"
    log.append_as_leader(batch(99), epoch=5)
    assert log.epoch_entries == [(1, 0), (5, 60)]
    log.close()
    reopened = MetadataLog.open(d, SMALL)
    assert reopened.end_offset == 61 and tags(reopened, 58) == [29, 99]
    assert reopened.epoch_entries == [(1, 0), (5, 60)]
    with pytest.raises(OffsetOutOfRangeError):
        reopened.truncate_to(-1)
    reopened.truncate_fully_and_start_at(500)
    assert reopened.end_offset == 500 and reopened.log_start_offset == 500
    assert reopened.epoch_entries == [] and reopened.segment_base_offsets == [500]
    reopened.append_as_leader(batch(7), epoch=6)
    reopened.close()
    assert sorted(p.name for p in d.glob("*.log")) == ["00000000000000000500.log"]
    # Kafka's recoverSnapshots refuses a log starting above 0 that no snapshot covers.
    with pytest.raises(InconsistentSnapshotError, match="log start offset 500"):
        MetadataLog.open(d, SMALL)
    freeze_snapshot(create_partial_snapshot(d, SnapshotId(500, 5)), SnapshotId(500, 5))
    assert MetadataLog.open(d, SMALL).epoch_entries == [(6, 500)]


def test_truncate_to_segment_base(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 60)
    base = log.segment_base_offsets[2]
    assert log.truncate_to(base) == base
    assert log.segment_base_offsets[-1] == base
    log.append_as_leader(batch(1000), epoch=1)
    assert tags(log, base) == [1000]
    log.close()


def corrupt_and_reopen(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> tuple[MetadataLog, int, int]:
    d = tmp_path / "p"
    log = MetadataLog.open(d)
    fill(log, 10)
    log.close()
    seg = d / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    last_pos = list(iter_batch_headers(data))[-1][0]
    if damage == "flip":
        data[last_pos + 70] ^= 0x10
    elif damage == "cut":
        del data[last_pos + 30 :]
    elif damage == "garbage":
        data += b"\x00\x01garbage" * 7
        last_pos = len(data) - 63  # valid prefix keeps every batch
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        reopened = MetadataLog.open(d)
    return reopened, last_pos, len(data)


@pytest.mark.parametrize("damage", ["flip", "cut", "garbage"])
def test_recovery_keeps_exactly_the_valid_prefix(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log, last_pos, _ = corrupt_and_reopen(tmp_path, damage, caplog)
    seg = tmp_path / "p" / "00000000000000000000.log"
    if damage == "garbage":
        assert log.end_offset == 20 and tags(log) == list(range(10))
        assert seg.stat().st_size == last_pos
    else:
        assert log.end_offset == 18 and tags(log) == list(range(9))
        assert seg.stat().st_size == last_pos
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(seg) in m and f"at byte {seg.stat().st_size}" in m for m in warning)
    log.append_as_leader(batch(42), epoch=1)
    assert tags(log)[-1] == 42
    log.close()


def test_corrupt_middle_segment_drops_later_segments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 60)
    bases = log.segment_base_offsets
    log.close()
    middle = d / f"{bases[1]:020d}.log"
    data = bytearray(middle.read_bytes())
    data[-5] ^= 0xFF
    middle.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        log = MetadataLog.open(d, SMALL)
    assert log.segment_base_offsets == bases[:2]
    assert not (d / f"{bases[2]:020d}.log").exists()
    assert tags(log) == list(range(len(tags(log))))
    assert "later segment" in caplog.text
    log.close()


def test_leftovers_and_lost_checkpoint(tmp_path: Path) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d)
    fill(log, 3, epoch=2)
    log.close()
    for name in (
        "00000000000000000009.log.deleted",
        "00000000000000000010-0000000001-123.checkpoint.part",
        "00000000000000000010-0000000001.checkpoint.deleted",
        "quorum-state.tmp",
        "00000000000000000077.index",
        "00000000000000000099.snapshot",
    ):
        (d / name).write_bytes(b"junk")
    (d / "leader-epoch-checkpoint").write_bytes(b"0\n5\n")
    MetadataLog.open(d).close()
    names = sorted(p.name for p in d.iterdir())
    assert names == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        "00000000000000000006.snapshot",
        "leader-epoch-checkpoint",
        "partition.metadata",
    ]
    assert (d / "leader-epoch-checkpoint").read_bytes() == b"0\n1\n2 0\n"


def test_wrong_topic_id_is_refused(tmp_path: Path) -> None:
    import uuid

    d = tmp_path / "p"
    d.mkdir()
    write_partition_metadata(d / "partition.metadata", uuid.UUID(int=7))
    with pytest.raises(InconsistentTopicIdError):
        MetadataLog.open(d)


# ------------------------------------------------------------------ genuine data

LOG_DIRS = ("metadata-log", "metadata-log-default")


@pytest.fixture(params=LOG_DIRS)
def captured_copy(request: pytest.FixtureRequest, kafka_captures: Path, tmp_path: Path) -> Path:
    copy = tmp_path / request.param
    shutil.copytree(kafka_captures / request.param, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy / "__cluster_metadata-0"


def test_genuine_log_reads_back_and_round_trips_byte_for_byte(captured_copy: Path) -> None:
    segment = (captured_copy / "00000000000000000000.log").read_bytes()
    original = {p.name: p.read_bytes() for p in captured_copy.iterdir()}
    headers = list(iter_batch_headers(segment))
    log = MetadataLog.open(captured_copy)
    assert log.end_offset == headers[-1][1].next_offset
    assert log.latest_epoch == headers[-1][1].partition_leader_epoch
    assert log.read(0, max_bytes=len(segment)) == segment
    assert list(log.read_batches(0)) == list(decode_batches(segment))
    log.close()
    # Opening and closing changes nothing: indexes, checkpoint and producer snapshot
    # are what Kafka wrote.
    assert {p.name: p.read_bytes() for p in captured_copy.iterdir()} == original


CAPTURES_4_3 = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-4.3"
LOG_DIRS_4_3 = sorted(CAPTURES_4_3.glob("*/metadata-log-*"))
# Node 2 of quorum-prevote was killed with SIGKILL, restarted, truncated to the new leader
# and appended to again: its files carry that history, which Kafka 4.3.1's own next open
# would erase. KafkaRaftLog opens UnifiedLog with recovery point 0 and
# lastShutdownClean=false, so LogSegment.recover resets and rebuilds both indexes, and
# ProducerStateManager.removeStraySnapshots deletes every producer snapshot that is neither
# at a segment base nor the newest. kwire does the same: these files change, as in Kafka.
CHANGED_BY_KAFKA_TOO = {
    "quorum-prevote/metadata-log-2": {
        "00000000000000000000.index": "rebuilt",
        "00000000000000000000.timeindex": "rebuilt",
        "00000000000000000031.snapshot": "deleted",
    }
}


def _rebuilt_offset_index(segment: bytes, interval: int = 4096) -> list[tuple[int, int]]:
    # LogSegment.recover: once more than index.interval.bytes lie past the last entry,
    # the next batch is indexed by (its last offset, its position).
    entries, last_entry = [], 0
    for position, header in iter_batch_headers(segment):
        if position - last_entry > interval:
            entries.append((header.last_offset, position))
            last_entry = position
    return entries


@pytest.mark.skipif(not LOG_DIRS_4_3, reason=f"no Kafka 4.3.1 log directories at {CAPTURES_4_3}")
@pytest.mark.parametrize(
    "log_dir", LOG_DIRS_4_3, ids=[f"{d.parent.name}/{d.name}" for d in LOG_DIRS_4_3]
)
def test_genuine_4_3_log_opens_reads_and_closes_leaving_every_byte_identical(
    log_dir: Path, tmp_path: Path
) -> None:
    # Kafka 4.3.1 wrote these directories (segments, indexes, producer snapshots, KRaft
    # snapshots, bootstrap.checkpoint, quorum-state); kwire reads them without a change.
    copy = tmp_path / log_dir.name
    shutil.copytree(log_dir, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    original = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    part = copy / "__cluster_metadata-0"
    segment = (part / "00000000000000000000.log").read_bytes()
    headers = list(iter_batch_headers(segment))
    log = MetadataLog.open(part)
    assert log.end_offset == headers[-1][1].next_offset
    assert log.latest_epoch == headers[-1][1].partition_leader_epoch
    assert log.read(0, max_bytes=len(segment)) == segment
    assert list(log.read_batches(0)) == list(decode_batches(segment))
    log.close()
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    index = Path("__cluster_metadata-0") / "00000000000000000000.index"
    assert decode_offset_index(after[index], 0) == _rebuilt_offset_index(segment)
    changed = {
        Path("__cluster_metadata-0") / name: change
        for name, change in CHANGED_BY_KAFKA_TOO.get(
            f"{log_dir.parent.name}/{log_dir.name}", {}
        ).items()
    }
    for path, change in changed.items():
        assert (after[path] != original[path]) if change == "rebuilt" else (path not in after)
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in original.items() if k not in changed
    }


def test_genuine_derived_files_regenerate_identically(captured_copy: Path) -> None:
    derived = [
        p
        for p in captured_copy.iterdir()
        if p.suffix in (".index", ".timeindex", ".snapshot")
        or p.name in ("leader-epoch-checkpoint", "partition.metadata")
    ]
    assert len(derived) == 5
    original = {p.name: p.read_bytes() for p in derived}
    for p in derived:
        p.unlink()
    MetadataLog.open(captured_copy).close()
    assert {name: (captured_copy / name).read_bytes() for name in original} == original


def test_appending_to_a_genuine_log(captured_copy: Path) -> None:
    log = MetadataLog.open(captured_copy)
    end = log.end_offset
    info = log.append_as_leader(batch(1, 3), epoch=2)
    assert info == (end, end + 2)
    assert log.epoch_entries == [(1, 0), (2, end)]
    log.close()
    assert (captured_copy / "leader-epoch-checkpoint").read_bytes() == (
        f"0\n2\n1 0\n2 {end}\n".encode()
    )
    again = MetadataLog.open(captured_copy)
    assert tags(again, end) == [1] and again.end_offset == end + 3
    again.close()


def test_a_close_that_fails_on_a_full_disk_still_releases_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog.open(d, SMALL)
    fill(log, 40)
    assert len(log._segments) > 1
    fds = [seg._fd for seg in log._segments]

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kwire.log.segment.os.fdatasync", full)
    with pytest.raises(OSError, match="No space left"):
        log.close()
    monkeypatch.undo()
    # Every segment file was closed all the same, and the log refuses further use...
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    with pytest.raises(ValueError, match="closed"):
        log.append_as_leader(batch(99), 1)
    log.close()  # ...and closing again does nothing.
    # No producer snapshot claims the end of a log whose flush failed.
    assert not (d / "00000000000000000080.snapshot").exists()
    # What the failed flush left is recovered on the next open.
    reopened = MetadataLog.open(d, SMALL)
    assert tags(reopened) == list(range(40))
    reopened.close()
