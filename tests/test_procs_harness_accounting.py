"""The process tests' accounting (procs_harness.topics_in_log_dir) reads what a restart
reads: the newest snapshot, then the log after it. Retention (metadata.max.retention.bytes)
deletes the segments a snapshot covers; a reader of the segments alone then reported
40,645 of 40,906 acknowledged topics missing from a sole voter that had lost none
(tools.chaos --nodes 1 with processes living past the 60 s cleaning interval)."""

from __future__ import annotations

import uuid
from pathlib import Path

from procs_harness import topics_in_log_dir

from kwire.log import MetadataLog, MetadataLogConfig
from kwire.log.snapshot_io import write_snapshot
from kwire.log.snapshot_set import delete_before_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import Record, build_batch, encode_batch, frame_metadata_record

SMALL = MetadataLogConfig(segment_bytes=4096, index_interval_bytes=256)


def topic_value(name: str) -> bytes:
    record = TopicRecord(name=name, topic_id=uuid.uuid4())
    api_key = TopicRecord.API_KEY
    assert api_key is not None
    return frame_metadata_record(api_key, 0, record.encode(0))


def append_topics(log: MetadataLog, names: list[str]) -> None:
    for name in names:
        batch = build_batch([Record(offset_delta=0, value=topic_value(name))], base_timestamp=0)
        log.append_as_leader(encode_batch(batch), 1)
    log.update_high_watermark(log.end_offset)


def test_topics_covered_by_a_snapshot_are_found_after_retention_deleted_their_segments(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "__cluster_metadata-0"
    before = [f"before-{i}" for i in range(200)]
    after = [f"after-{i}" for i in range(20)]
    with MetadataLog.open(directory, SMALL) as log:
        append_topics(log, before)
        snapshot = SnapshotId(log.end_offset, 1)
        write_snapshot(
            directory,
            snapshot,
            [topic_value(name) for name in before],
            last_contained_log_timestamp=0,
            now_ms=0,
        )
        log.snapshots.add(snapshot)
        append_topics(log, after)
        assert delete_before_snapshot(log, snapshot, "retention")
        assert log.log_start_offset == snapshot.end_offset  # the first topics' segments are gone
    assert topics_in_log_dir(directory) == set(before) | set(after)


def test_without_a_snapshot_the_whole_log_is_read(tmp_path: Path) -> None:
    directory = tmp_path / "__cluster_metadata-0"
    names = [f"t-{i}" for i in range(50)]
    with MetadataLog.open(directory, SMALL) as log:
        append_topics(log, names)
    assert topics_in_log_dir(directory) == set(names)
