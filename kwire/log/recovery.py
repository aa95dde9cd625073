"""Recovery scan of a segment's bytes (pure): find the longest valid prefix of whole
batches, and rebuild the index and leader-epoch starts along the way."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kwire.log.index import DEFAULT_INDEX_INTERVAL_BYTES, SegmentIndex
from kwire.records.batch import (
    ATTRIBUTES_OFFSET,
    LOG_OVERHEAD,
    MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
    crc32c,
)
from kwire.records.varint import BytesLike

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp; the rest of the header is not needed to scan.
_SCAN_HEADER = struct.Struct(">qiibIhiqq")
_INT32_MAX = (1 << 31) - 1


@dataclass(slots=True)
class SegmentScan:
    valid_bytes: int
    next_offset: int  # offset after the last valid batch (base offset when empty)
    batch_count: int
    index: SegmentIndex
    # (epoch, base offset) where the partition leader epoch rose above everything before.
    epoch_starts: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None  # why scanning stopped before the end of the buffer
    torn: bool = False  # the stop was an incomplete final batch rather than corruption


def scan_segment(
    buf: BytesLike,
    base_offset: int,
    *,
    index_interval_bytes: int = DEFAULT_INDEX_INTERVAL_BYTES,
    latest_epoch: int | None = None,
    verify_crc: bool = True,
) -> SegmentScan:
    """Walk batches from position 0, checking length, magic, CRC and offsets.

    Stops at the first batch that is incomplete or invalid; everything before it is
    kept. ``latest_epoch`` is the epoch cache's newest epoch before this segment.
    """
    view = memoryview(buf)
    size = len(view)
    index = SegmentIndex(base_offset, index_interval_bytes)
    epoch_starts: list[tuple[int, int]] = []
    try:
        pos, next_offset, count, error, torn, latest_epoch = _walk(
            view, size, base_offset, verify_crc, index, epoch_starts, latest_epoch
        )
    finally:
        view.release()
    return SegmentScan(pos, next_offset, count, index, epoch_starts, error, torn)


def _walk(
    view: memoryview,
    size: int,
    base_offset: int,
    verify_crc: bool,
    index: SegmentIndex,
    epoch_starts: list[tuple[int, int]],
    latest_epoch: int | None,
) -> tuple[int, int, int, str | None, bool, int | None]:
    pos = 0
    next_offset = base_offset
    count = 0
    error: str | None = None
    torn = False
    while pos < size:
        if size - pos < RECORD_BATCH_OVERHEAD:
            error, torn = f"incomplete batch header ({size - pos} bytes)", True
            break
        (
            batch_base,
            batch_length,
            epoch,
            magic,
            crc,
            _attributes,
            last_delta,
            _base_ts,
            max_ts,
        ) = _SCAN_HEADER.unpack_from(view, pos)
        batch_size = batch_length + LOG_OVERHEAD
        if batch_size < RECORD_BATCH_OVERHEAD:
            error = f"batch length {batch_length} below the v2 minimum"
            break
        if magic != MAGIC_V2:
            error = f"unsupported magic {magic}"
            break
        if batch_size > size - pos:
            error, torn = f"incomplete batch: {batch_size} bytes needed, {size - pos} left", True
            break
        if verify_crc and crc32c(view[pos + ATTRIBUTES_OFFSET : pos + batch_size]) != crc:
            error = "CRC mismatch"
            break
        last_offset = batch_base + last_delta
        if batch_base < next_offset or last_delta < 0:
            error = f"batch offsets {batch_base}..{last_offset} not after {next_offset - 1}"
            break
        if last_offset - base_offset > _INT32_MAX:
            error = f"offset {last_offset} does not fit a segment based at {base_offset}"
            break
        index.add_batch(pos, last_offset, max_ts)
        if epoch >= 0 and (latest_epoch is None or epoch > latest_epoch):
            epoch_starts.append((epoch, batch_base))
            latest_epoch = epoch
        next_offset = last_offset + 1
        pos += batch_size
        count += 1
    return pos, next_offset, count, error, torn, latest_epoch
