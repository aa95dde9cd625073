"""One log segment on disk: ``<base>.log`` plus its ``.index`` and ``.timeindex``.

The segment file is the only thing made durable per append (``flush``). Index files
are derived data: the active segment's are preallocated to the maximum index size and
written as entries accrue, and trimmed to their entries on roll/close, as Kafka does;
after a crash they are rebuilt from the recovery scan.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from pathlib import Path

from kwire.log.files import fsync_dir, index_file, log_file, time_index_file
from kwire.log.index import (
    OFFSET_ENTRY_SIZE,
    TIME_ENTRY_SIZE,
    SegmentIndex,
    max_entries,
    preallocated_size,
)
from kwire.log.recovery import SegmentScan, scan_segment
from kwire.records.batch import LOG_OVERHEAD

log = logging.getLogger(__name__)

_OFFSET_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_PROBE_SIZE = 27  # through lastOffsetDelta


def _write_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


class LogSegment:
    def __init__(
        self,
        directory: Path,
        base_offset: int,
        fd: int,
        size: int,
        next_offset: int,
        index: SegmentIndex,
        max_index_size: int,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.size = size
        self.next_offset = next_offset
        self.index = index
        self._fd = fd
        self._max_index_size = max_index_size
        self._index_fds: tuple[int, int] | None = None  # open while active
        self._offset_written = 0
        self._time_written = 0

    # ------------------------------------------------------------ opening

    @property
    def log_path(self) -> Path:
        return log_file(self.directory, self.base_offset)

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, *, index_interval_bytes: int, max_index_size: int
    ) -> LogSegment:
        path = log_file(directory, base_offset)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fsync_dir(directory)  # the new name must survive a crash before its first fsync
        index = SegmentIndex(base_offset, index_interval_bytes)
        return cls(directory, base_offset, fd, 0, base_offset, index, max_index_size)

    @classmethod
    def recover(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_size: int,
        latest_epoch: int | None,
    ) -> tuple[LogSegment, SegmentScan]:
        """Open an existing segment, validate every batch and cut off an invalid tail."""
        path = log_file(directory, base_offset)
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size:
                with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mm, memoryview(mm) as view:
                    scan = scan_segment(
                        view,
                        base_offset,
                        index_interval_bytes=index_interval_bytes,
                        latest_epoch=latest_epoch,
                    )
            else:
                scan = scan_segment(b"", base_offset, index_interval_bytes=index_interval_bytes)
            if scan.valid_bytes < size:
                log.warning(
                    "%s: %s at byte %d (after offset %d); truncating %d bytes",
                    path,
                    scan.error,
                    scan.valid_bytes,
                    scan.next_offset - 1,
                    size - scan.valid_bytes,
                )
                os.ftruncate(fd, scan.valid_bytes)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        segment = cls(
            directory,
            base_offset,
            fd,
            scan.valid_bytes,
            scan.next_offset,
            scan.index,
            max_index_size,
        )
        return segment, scan

    # ------------------------------------------------------------ index files

    @property
    def is_active(self) -> bool:
        return self._index_fds is not None

    def activate(self) -> None:
        """Open the index files for appending, preallocated as Kafka does."""
        if self._index_fds is not None:
            return
        fds = []
        for path, data, entry in (
            (
                index_file(self.directory, self.base_offset),
                self.index.offset_bytes,
                OFFSET_ENTRY_SIZE,
            ),
            (
                time_index_file(self.directory, self.base_offset),
                self.index.time_bytes,
                TIME_ENTRY_SIZE,
            ),
        ):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(fd, 0)  # drop stale entries from before a crash
            _write_all(fd, data, 0)
            os.ftruncate(fd, max(len(data), preallocated_size(self._max_index_size, entry)))
            fds.append(fd)
        self._index_fds = (fds[0], fds[1])
        self._offset_written = len(self.index.offset_bytes)
        self._time_written = len(self.index.time_bytes)

    def _write_index_tails(self) -> None:
        assert self._index_fds is not None
        ofd, tfd = self._index_fds
        if len(self.index.offset_bytes) > self._offset_written:
            _write_all(ofd, self.index.offset_bytes[self._offset_written :], self._offset_written)
            self._offset_written = len(self.index.offset_bytes)
        if len(self.index.time_bytes) > self._time_written:
            _write_all(tfd, self.index.time_bytes[self._time_written :], self._time_written)
            self._time_written = len(self.index.time_bytes)

    def deactivate(self) -> None:
        """Roll/close: add the closing time entry, trim both index files to size."""
        if self._index_fds is None:
            return
        self.index.maybe_append_time_entry()
        self._write_index_tails()
        ofd, tfd = self._index_fds
        os.ftruncate(ofd, len(self.index.offset_bytes))
        os.ftruncate(tfd, len(self.index.time_bytes))
        os.fsync(ofd)
        os.fsync(tfd)
        self._index_fds = None
        os.close(ofd)
        os.close(tfd)

    def write_inactive_indexes(self) -> None:
        """Bring an inactive segment's index files in line with the rebuilt index
        (closing time entry included), rewriting only files that differ."""
        self.index.maybe_append_time_entry()
        for path, data in (
            (index_file(self.directory, self.base_offset), bytes(self.index.offset_bytes)),
            (time_index_file(self.directory, self.base_offset), bytes(self.index.time_bytes)),
        ):
            try:
                if path.read_bytes() == data:
                    continue
            except FileNotFoundError:
                pass
            log.info("%s: rewriting index (%d bytes) from the recovery scan", path, len(data))
            path.write_bytes(data)

    def index_is_full(self) -> bool:
        return self.index.offset_entries >= max_entries(
            self._max_index_size, OFFSET_ENTRY_SIZE
        ) or self.index.time_entries >= max_entries(self._max_index_size, TIME_ENTRY_SIZE)

    # ------------------------------------------------------------ data

    def append(self, data: bytes | bytearray, batches: list[tuple[int, int, int]]) -> None:
        """Write whole batches at the end. ``batches`` holds ``(position within data,
        last offset, max timestamp)`` per batch. Not durable until :meth:`flush`."""
        start = self.size
        _write_all(self._fd, data, start)
        self.size += len(data)
        for pos, last_offset, max_ts in batches:
            self.index.add_batch(start + pos, last_offset, max_ts)
            self.next_offset = last_offset + 1
        if self._index_fds is not None:
            self._write_index_tails()

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def read(self, position: int, length: int) -> bytes:
        return os.pread(self._fd, length, position)

    def find_batch(self, offset: int) -> tuple[int, int] | None:
        """``(position, base offset)`` of the first batch whose last offset is >=
        ``offset``, seeking with the index then walking batch headers."""
        pos = self.index.lookup(offset)
        while pos < self.size:
            probe = os.pread(self._fd, _PROBE_SIZE, pos)
            if len(probe) < _PROBE_SIZE:
                return None
            base, length = _OFFSET_AND_LENGTH.unpack_from(probe, 0)
            (last_delta,) = _LAST_OFFSET_DELTA.unpack_from(probe, 23)
            if base + last_delta >= offset:
                return pos, base
            pos += length + LOG_OVERHEAD
        return None

    def truncate_to_position(self, position: int, *, index_interval_bytes: int) -> None:
        """Cut the file at a batch boundary and rebuild the in-memory index by rescanning
        what is left (truncation is rare; this keeps the index identical to a rebuild)."""
        was_active = self.is_active
        if was_active:
            self._close_index_fds()
        os.ftruncate(self._fd, position)
        os.fsync(self._fd)
        self.size = position
        if position:
            with mmap.mmap(self._fd, position, prot=mmap.PROT_READ) as mm, memoryview(mm) as view:
                scan = scan_segment(
                    view, self.base_offset, index_interval_bytes=index_interval_bytes
                )
        else:
            scan = scan_segment(b"", self.base_offset, index_interval_bytes=index_interval_bytes)
        self.index = scan.index
        self.next_offset = scan.next_offset
        if was_active:
            self.activate()

    def _close_index_fds(self) -> None:
        if self._index_fds is not None:
            for fd in self._index_fds:
                os.close(fd)
            self._index_fds = None

    def close(self) -> None:
        """Trim the indexes (:meth:`deactivate`) and release every file; the files are
        released even when trimming fails (``OSError``), which is raised after."""
        try:
            self.deactivate()
        finally:
            self._close_index_fds()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def delete(self) -> None:
        self._close_index_fds()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for path in (
            self.log_path,
            index_file(self.directory, self.base_offset),
            time_index_file(self.directory, self.base_offset),
        ):
            path.unlink(missing_ok=True)
