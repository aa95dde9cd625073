"""Sparse offset and time indexes of a segment (pure; the segment does the file I/O).

``.index`` entries are 8 bytes: relative offset int32, file position int32.
``.timeindex`` entries are 12 bytes: timestamp int64, relative offset int32.

Kafka's rule, used both while appending and when rebuilding during recovery: a batch
gets an offset-index entry ``(its last offset, its position)`` when more than
``index_interval_bytes`` were written since the previous entry; at the same moment the
time index gets ``(max timestamp so far, offset of that batch)`` if the timestamp grew.
When a segment is closed or rolled, one more time entry for the max timestamp is added.
"""

from __future__ import annotations

import bisect
import struct
from array import array

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
OFFSET_ENTRY_SIZE = OFFSET_ENTRY.size
TIME_ENTRY_SIZE = TIME_ENTRY.size
DEFAULT_INDEX_INTERVAL_BYTES = 4096  # log.index.interval.bytes
DEFAULT_MAX_INDEX_SIZE = 10 * 1024 * 1024  # segment.index.bytes
NO_TIMESTAMP = -1


def max_entries(max_index_size: int, entry_size: int) -> int:
    return max_index_size // entry_size


def preallocated_size(max_index_size: int, entry_size: int) -> int:
    """Kafka sizes an active segment's index file to the largest entry multiple."""
    return max_entries(max_index_size, entry_size) * entry_size


class SegmentIndex:
    """In-memory offset and time index of one segment, plus the state Kafka's rule needs."""

    __slots__ = (
        "base_offset",
        "interval",
        "_rel_offsets",
        "_positions",
        "offset_bytes",
        "time_bytes",
        "_last_entry_position",
        "_last_time_ts",
        "_last_time_offset",
        "max_timestamp",
        "offset_of_max_timestamp",
    )

    def __init__(self, base_offset: int, interval: int = DEFAULT_INDEX_INTERVAL_BYTES) -> None:
        self.base_offset = base_offset
        self.interval = interval
        self._rel_offsets = array("i")
        self._positions = array("i")
        self.offset_bytes = bytearray()
        self.time_bytes = bytearray()
        self._last_entry_position = 0
        self._last_time_ts = NO_TIMESTAMP
        self._last_time_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = -1

    @property
    def offset_entries(self) -> int:
        return len(self._positions)

    @property
    def time_entries(self) -> int:
        return len(self.time_bytes) // TIME_ENTRY_SIZE

    def add_batch(self, position: int, last_offset: int, max_timestamp: int) -> bool:
        """Account for a batch written at ``position``; True if index entries were added."""
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if position - self._last_entry_position <= self.interval:
            return False
        rel = last_offset - self.base_offset
        if self._rel_offsets and rel <= self._rel_offsets[-1]:
            raise ValueError(f"index offset {last_offset} not above the last entry")
        self._rel_offsets.append(rel)
        self._positions.append(position)
        self.offset_bytes += OFFSET_ENTRY.pack(rel, position)
        self._last_entry_position = position
        self.maybe_append_time_entry()
        return True

    def maybe_append_time_entry(self) -> bool:
        """Kafka's TimeIndex.maybeAppend(max timestamp so far, its offset); also used on
        close and roll."""
        if self.max_timestamp <= self._last_time_ts:
            return False
        self._last_time_ts = self.max_timestamp
        self._last_time_offset = self.offset_of_max_timestamp
        self.time_bytes += TIME_ENTRY.pack(
            self.max_timestamp, self.offset_of_max_timestamp - self.base_offset
        )
        return True

    def lookup(self, offset: int) -> int:
        """Position of the greatest entry whose offset is <= ``offset`` (0 if none);
        scanning forward from there finds the batch holding ``offset``."""
        i = bisect.bisect_right(self._rel_offsets, offset - self.base_offset)
        return self._positions[i - 1] if i else 0


def decode_offset_index(data: bytes, base_offset: int) -> list[tuple[int, int]]:
    """``(absolute offset, position)`` pairs; a trailing partial entry is ignored."""
    usable = len(data) - len(data) % OFFSET_ENTRY_SIZE
    return [(base_offset + r, p) for r, p in OFFSET_ENTRY.iter_unpack(data[:usable])]


def decode_time_index(data: bytes, base_offset: int) -> list[tuple[int, int]]:
    """``(timestamp, absolute offset)`` pairs; a trailing partial entry is ignored."""
    usable = len(data) - len(data) % TIME_ENTRY_SIZE
    return [(t, base_offset + r) for t, r in TIME_ENTRY.iter_unpack(data[:usable])]
