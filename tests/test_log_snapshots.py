"""Snapshot files and the log rules around them (kwire.log.snapshot_io, kwire.log.snapshot_set),
each against what Kafka 3.9 writes or keeps (RecordsSnapshotWriter, KafkaMetadataLog)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from kwire.log import MetadataLog, MetadataLogConfig
from kwire.log.snapshot_io import (
    SnapshotFormatError,
    read_last_contained_log_timestamp,
    read_snapshot,
    write_snapshot,
)
from kwire.log.snapshot_set import delete_before_snapshot, maybe_clean
from kwire.log.snapshots import SnapshotId, list_snapshots, snapshot_path
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.records import Record, build_batch, decode_batches, encode_batch, frame_metadata_record
from kwire.tools import dump_log

CAPTURES = Path(__file__).parents[2] / "shared" / "captures"
# The formatter's 0-0 snapshot of a dynamic quorum (KRaftVersionRecord and VotersRecord in its
# header batch) is not among them: kwire writes static-quorum snapshots (kraft.version 0).
GENUINE_39 = sorted(
    p
    for p in (CAPTURES / "kafka-3.9").glob("**/__cluster_metadata-0/*.checkpoint")
    if not p.name.startswith("00000000000000000000-")
)
NOOP = frame_metadata_record(NoOpRecord.API_KEY or 0, 0, NoOpRecord().encode(0))
SMALL = MetadataLogConfig(segment_bytes=4096, index_interval_bytes=256)


def batch_sizes(data: bytes) -> list[int]:
    sizes, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 8 : pos + 12], "big")
        sizes.append(length + 12)
        pos += length + 12
    return sizes


@pytest.mark.skipif(not GENUINE_39, reason="needs ../shared/captures/kafka-3.9")
@pytest.mark.parametrize("genuine", GENUINE_39, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_a_snapshot_of_the_same_records_has_the_genuine_snapshots_batches(
    genuine: Path, tmp_path: Path
) -> None:
    """Kafka 3.9's RecordsSnapshotWriter: header batch, the records in one batch under
    8 MiB, footer batch; each with the snapshot's epoch, uncompressed, same sizes."""
    snapshot_id = SnapshotId(int(genuine.name[:20]), int(genuine.name[21:31]))
    contents = read_snapshot(genuine.parent, snapshot_id)
    written = write_snapshot(
        tmp_path,
        snapshot_id,
        contents.values,
        last_contained_log_timestamp=contents.last_contained_log_timestamp,
        now_ms=contents.last_contained_log_timestamp,
    )
    assert written.name == genuine.name
    ours, theirs = written.read_bytes(), genuine.read_bytes()
    assert batch_sizes(ours) == batch_sizes(theirs)
    assert len(ours) == len(theirs)

    def shape(data: bytes) -> list[tuple[int, int, bool, int, int]]:
        return [
            (b.base_offset, b.last_offset, b.is_control, b.partition_leader_epoch, b.compression)
            for b in decode_batches(data)
        ]

    assert shape(ours) == shape(theirs)
    ours_records = [r for b in decode_batches(ours) for r in b.records]
    theirs_records = [r for b in decode_batches(theirs) for r in b.records]
    assert [(r.key, r.value) for r in ours_records] == [(r.key, r.value) for r in theirs_records]


def test_kwire_snapshots_read_through_the_dump_tool_as_kafka_prints_them(tmp_path: Path) -> None:
    values = [NOOP]
    path = write_snapshot(
        tmp_path, SnapshotId(7, 2), values, last_contained_log_timestamp=1234, now_ms=5678
    )
    out = io.StringIO()
    with redirect_stdout(out):
        assert dump_log.main([str(path), "--kafka-release", "3.9"]) == 0
    text = out.getvalue()
    assert "Snapshot end offset: 7, epoch: 2" in text
    assert 'SnapshotHeader {"version":0,"lastContainedLogTimestamp":1234}' in text
    assert 'SnapshotFooter {"version":0}' in text
    assert '"type":"NO_OP_RECORD"' in text


def test_records_of_one_snapshot_spill_into_a_new_batch_past_8_mib(tmp_path: Path) -> None:
    """RaftSnapshotWriter hands 1,024 records at a time; a chunk that does not fit in the
    current 8 MiB batch starts the next one."""
    value = b"x" * 4000
    count = 3 * 1024
    path = write_snapshot(
        tmp_path,
        SnapshotId(count + 1, 1),
        [value] * count,
        last_contained_log_timestamp=0,
        now_ms=0,
    )
    data = [(b.base_offset, len(b.records)) for b in decode_batches(path.read_bytes())]
    assert data == [(0, 1), (1, 2048), (2049, 1024), (3073, 1)]


def test_a_snapshot_without_its_footer_is_refused(tmp_path: Path) -> None:
    path = write_snapshot(
        tmp_path, SnapshotId(3, 1), [NOOP], last_contained_log_timestamp=9, now_ms=9
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 75])  # the footer batch is 75 bytes
    with pytest.raises(SnapshotFormatError, match="no footer"):
        read_snapshot(tmp_path, SnapshotId(3, 1))
    assert read_last_contained_log_timestamp(tmp_path, SnapshotId(3, 1)) == 9


# -- the log and its snapshots ------------------------------------------------------------


def fill(log: MetadataLog, batches: int, epoch: int = 1, timestamp: int = 1000) -> None:
    for i in range(batches):
        records = [Record(offset_delta=k, value=b"r%05d" % i) for k in range(10)]
        log.append_as_leader(encode_batch(build_batch(records, base_timestamp=timestamp)), epoch)
    log.update_high_watermark(log.end_offset)


def snapshot_at(log: MetadataLog, offset: int, epoch: int = 1, timestamp: int = 1000) -> SnapshotId:
    sid = SnapshotId(offset, epoch)
    write_snapshot(
        log.directory, sid, [NOOP], last_contained_log_timestamp=timestamp, now_ms=timestamp
    )
    log.snapshots.add(sid)
    return sid


def test_deleting_before_a_snapshot_moves_the_log_start_and_drops_older_segments_and_snapshots(
    tmp_path: Path,
) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 100)
    first, second = snapshot_at(log, 300), snapshot_at(log, 600)
    # KafkaMetadataLog.deleteBeforeSnapshot: only a kept snapshot above the log start.
    assert not delete_before_snapshot(log, SnapshotId(500, 1), "test")
    assert delete_before_snapshot(log, second, "test")
    assert log.log_start_offset == 600
    assert all(b <= 600 for b in log.segment_base_offsets[:1])
    assert log.segment_base_offsets[1] > 600
    assert log.snapshot_ids() == [second] and list_snapshots(log.directory) == [second]
    assert not snapshot_path(log.directory, first).exists()
    assert not delete_before_snapshot(log, second, "test")  # not above the log start any more
    log.close()


def test_cleaning_by_size_keeps_the_newest_snapshot_and_the_log_after_it(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 100)
    ids = [snapshot_at(log, offset) for offset in (200, 500, 800)]
    # retention 0: everything is over the limit, yet the newest snapshot stays.
    assert maybe_clean(log, 2000, retention_bytes=0, retention_ms=-1)
    assert log.snapshot_ids() == [ids[-1]]
    assert log.log_start_offset == 800 and log.end_offset == 1000
    assert not maybe_clean(log, 2000, retention_bytes=0, retention_ms=-1)
    log.close()


def test_cleaning_by_size_stops_once_the_log_and_snapshots_fit(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 100)
    ids = [snapshot_at(log, offset) for offset in (200, 500, 800)]
    limit = log.size_in_bytes  # the log alone fits; with three snapshots it does not
    assert maybe_clean(log, 2000, retention_bytes=limit, retention_ms=-1)
    assert log.snapshot_ids() == ids[1:]  # removing the oldest was enough
    assert log.log_start_offset == 500
    log.close()


def test_cleaning_by_time_removes_snapshots_older_than_retention_but_never_the_newest(
    tmp_path: Path,
) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 100)
    old = snapshot_at(log, 200, timestamp=1_000)
    mid = snapshot_at(log, 500, timestamp=50_000)
    new = snapshot_at(log, 800, timestamp=1_000)  # old too, but the newest
    # now - timestamp > retention deletes: 60_000 - 1_000 > 10_000; 60_000 - 50_000 is not.
    assert maybe_clean(log, 60_000, retention_bytes=-1, retention_ms=10_000)
    assert log.snapshot_ids() == [mid, new] and log.log_start_offset == 500
    assert not maybe_clean(log, 60_000, retention_bytes=-1, retention_ms=10_000)
    assert old not in log.snapshots
    log.close()


def test_negative_retention_never_cleans(tmp_path: Path) -> None:
    log = MetadataLog.open(tmp_path / "p", SMALL)
    fill(log, 50)
    snapshot_at(log, 100)
    snapshot_at(log, 400)
    assert not maybe_clean(log, 10**12, retention_bytes=-1, retention_ms=-1)
    assert log.log_start_offset == 0 and len(log.snapshot_ids()) == 2
    log.close()


def test_reopening_keeps_snapshots_from_the_first_segment_and_removes_partial_ones(
    tmp_path: Path,
) -> None:
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 100)
    kept = snapshot_at(log, 600)
    snapshot_at(log, 300)
    delete_before_snapshot(log, kept, "test")
    first_segment = log.segment_base_offsets[0]
    log.close()
    (d / "00000000000000000900-0000000001-123.checkpoint.part").write_bytes(b"torn")
    reopened = MetadataLog.open(d, SMALL)
    # Kafka's metadata log does not persist its start: it restarts at the first segment.
    assert reopened.log_start_offset == first_segment
    assert reopened.snapshot_ids() == [kept]
    assert not list(d.glob("*.part"))
    reopened.close()


def test_a_snapshot_ahead_of_the_log_restarts_the_log_at_it(tmp_path: Path) -> None:
    """truncateToLatestSnapshot: a follower that fetched a snapshot and crashed."""
    d = tmp_path / "p"
    log = MetadataLog.open(d, SMALL)
    fill(log, 10)
    log.close()
    write_snapshot(d, SnapshotId(5000, 3), [], last_contained_log_timestamp=1, now_ms=1)
    reopened = MetadataLog.open(d, SMALL)
    assert reopened.log_start_offset == reopened.end_offset == 5000
    assert reopened.snapshot_ids() == [SnapshotId(5000, 3)]
    reopened.close()
