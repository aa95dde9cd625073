"""The simulator's in-memory log: real batches, Kafka's epoch cache, loss of unflushed data."""

from __future__ import annotations

import pytest

from kwire.records import Record, build_batch, decode_batches, encode_batch
from kwire.sim.memory_log import MemoryLog, MemoryLogError


def batch(*values: bytes, base_offset: int = 0, epoch: int = -1) -> bytes:
    return encode_batch(
        build_batch(
            [Record(offset_delta=i, value=v) for i, v in enumerate(values)],
            base_offset=base_offset,
            base_timestamp=0,
            partition_leader_epoch=epoch,
        )
    )


def test_leader_appends_get_offsets_from_the_end_and_the_leader_epoch() -> None:
    log = MemoryLog()
    assert log.append_as_leader(batch(b"a", b"b"), 1) == (0, 1)
    assert log.append_as_leader(batch(b"c"), 2) == (2, 2)
    decoded = list(decode_batches(log.read(0, 1 << 20)))
    assert [(b.base_offset, b.partition_leader_epoch) for b in decoded] == [(0, 1), (2, 2)]
    assert [r.value for b in decoded for r in b.records] == [b"a", b"b", b"c"]
    assert log.end_offset == 3
    assert log.latest_epoch == 2


def test_end_offset_for_epoch_follows_kafkas_leader_epoch_cache() -> None:
    log = MemoryLog()
    log.append_as_leader(batch(b"a", b"b"), 1)
    log.append_as_leader(batch(b"c"), 3)
    assert log.end_offset_for_epoch(1) == (1, 2)
    assert log.end_offset_for_epoch(2) == (1, 2)  # the largest epoch at or below, its end
    assert log.end_offset_for_epoch(3) == (3, 3)
    assert log.end_offset_for_epoch(4) is None  # newer than anything known


def test_follower_appends_keep_the_leaders_offsets_and_epochs() -> None:
    leader, follower = MemoryLog(), MemoryLog()
    leader.append_as_leader(batch(b"a"), 4)
    leader.append_as_leader(batch(b"b", b"c"), 5)
    assert follower.append_as_follower(leader.read(0, 1 << 20)) == (0, 2)
    assert [b.data for b in follower.batches] == [b.data for b in leader.batches]
    assert follower.end_offset_for_epoch(4) == (4, 1)


def test_follower_append_that_skips_offsets_is_refused_whole() -> None:
    log = MemoryLog()
    with pytest.raises(MemoryLogError, match="expected 0"):
        log.append_as_follower(batch(b"x", base_offset=5, epoch=1))
    assert log.end_offset == 0


def test_empty_append_is_refused() -> None:
    with pytest.raises(MemoryLogError, match="empty"):
        MemoryLog().append_as_leader(b"", 1)


def test_crash_loses_exactly_the_unflushed_tail() -> None:
    log = MemoryLog()
    log.append_as_leader(batch(b"a"), 1)
    log.flush()
    log.append_as_leader(batch(b"b", b"c"), 2)
    assert log.crash() == 2
    assert log.end_offset == 1
    assert log.latest_epoch == 1  # the epoch cache forgets the lost epoch too


def test_truncation_removes_the_whole_batch_holding_the_offset() -> None:
    log = MemoryLog()
    log.append_as_leader(batch(b"a", b"b"), 1)
    log.append_as_leader(batch(b"c", b"d"), 2)
    log.flush()
    assert log.truncate_to(3) == 2
    assert log.flushed_end == 2
    assert log.end_offset_for_epoch(1) == (1, 2)
    assert log.end_offset_for_epoch(2) is None  # the truncated epoch is forgotten


def test_read_returns_whole_batches_within_max_bytes_but_at_least_one() -> None:
    log = MemoryLog()
    log.append_as_leader(batch(b"a" * 100), 1)
    log.append_as_leader(batch(b"b" * 100), 1)
    first = len(log.batches[0].data)
    assert log.read(0, 1) == log.batches[0].data
    assert log.read(0, first + 10) == log.batches[0].data
    assert len(log.read(0, 10_000)) == first + len(log.batches[1].data)
    assert log.read(1, 10_000) == log.batches[1].data
    assert log.read(2, 10_000) == b""


def test_batches_between_finds_those_overlapping_the_range() -> None:
    log = MemoryLog()
    log.append_as_leader(batch(b"a", b"b"), 1)
    log.append_as_leader(batch(b"c"), 1)
    log.append_as_leader(batch(b"d"), 1)
    assert [b.base_offset for b in log.batches_between(1, 3)] == [0, 2]
    assert log.batches_between(3, 3) == []
