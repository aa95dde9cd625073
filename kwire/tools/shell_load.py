"""The metadata image the shell browses, built from files with kwire's own loader.

Two sources, as Kafka's shell and its MetadataLoader see them:

- ``load_file(path)`` (``--snapshot FILE``, Kafka's only option): the file is read as
  Kafka 3.9's SnapshotFileReader reads it, whatever its kind (a ``.checkpoint`` snapshot, a
  ``.log`` segment): every data batch in file order is committed, control batches
  (snapshot header and footer, leader changes, voters) are skipped. The provenance is the
  last data batch's last offset, partition leader epoch and max timestamp.
- ``load_directory(path)`` (``--directory DIR``, kwire's): a metadata log directory
  (``__cluster_metadata-0`` or the log directory holding it) as a replica loads it: the
  newest snapshot (provenance: its end offset - 1, its epoch and the
  ``lastContainedLogTimestamp`` of its header), then every data batch of the segments
  from the snapshot's end offset on.

Metadata transactions are published as Kafka's MetadataBatchLoader publishes them: an
aborted one leaves nothing, and a file or directory that ends inside one shows the image
before its BeginTransactionRecord, with that image's provenance (the offset before the
Begin, and the epoch and time of the batch holding it).

Nothing is written: no lock, no recovery, no index. A batch cut short at the end of a file
(a segment being appended to) ends that file, as Kafka's FileRecords iterator ends it. A
batch whose CRC does not match, whose length is out of bounds, or whose records cannot be
read raises ShellLoadError naming the file and byte position. Each batch is read and
applied on its own, so memory holds one batch besides the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.controller.registrations import ReplayError
from kwire.controller.transactions import discard_open_transaction
from kwire.log.files import LOG_SUFFIX, parse_offset_prefix
from kwire.log.metadata_reader import batch_metadata_records
from kwire.log.snapshot_io import read_last_contained_log_timestamp
from kwire.log.snapshots import list_snapshots, snapshot_path
from kwire.protocol.errors import DecodeError
from kwire.records import (
    LOG_OVERHEAD,
    RECORD_BATCH_OVERHEAD,
    CorruptRecordError,
    RecordBatchHeader,
    check_batch_crc,
    read_batch_header,
)
from kwire.tools.shell_format import Provenance

__all__ = ["ImageBuilder", "ShellLoadError", "load_directory", "load_file"]

METADATA_PARTITION_DIR = "__cluster_metadata-0"
# The largest batch read: Kafka writes metadata batches of at most 8 MiB, snapshots' too.
MAX_BATCH_BYTES = 64 * 1024 * 1024


class ShellLoadError(ValueError):
    """The metadata could not be read; the message names the file and position."""


class ImageBuilder:
    """Applies committed data batches to a fresh image through ``ImageLoader``."""

    __slots__ = ("image", "provenance", "_loader")

    def __init__(self) -> None:
        self.image = MetadataImage()
        self._loader = ImageLoader(self.image)
        self.provenance = Provenance()

    def add_batch(
        self,
        data: bytes,
        pos: int,
        header: RecordBatchHeader,
        *,
        where: str,
        at_offset: int | None = None,
        skip_below: int = 0,
    ) -> None:
        """Apply the data batch at ``data[pos:]`` (``header`` read there): its records at
        their own offsets (those below ``skip_below`` left out), or all at ``at_offset``
        (a snapshot's). Raises ShellLoadError for records that cannot be read or applied."""
        try:
            entries = batch_metadata_records(data, pos, header)
            if skip_below:
                entries = [entry for entry in entries if entry[0] >= skip_below]
            self._loader.replay_all(entries, at_offset)
        except (CorruptRecordError, DecodeError, ReplayError, ValueError) as error:
            raise ShellLoadError(
                f"{where}: batch at offset {header.base_offset}: {error}"
            ) from None
        if at_offset is None and entries:
            start = self.image.transaction_start_offset
            if start < 0:
                last = header.last_offset
            elif start > entries[0][0]:
                last = start - 1  # published at the Begin: the records before it
            else:
                return  # nothing published since the previous batch
            self.provenance = Provenance(last, header.partition_leader_epoch, header.max_timestamp)

    def finish(self) -> tuple[MetadataImage, Provenance]:
        """The image as Kafka's MetadataLoader last published it: without the records of
        a metadata transaction still open (kwire.controller.transactions)."""
        self._loader.finish()
        discard_open_transaction(self.image)
        return self.image, self.provenance


def iter_file_batches(path: Path) -> Iterator[tuple[bytes, RecordBatchHeader]]:
    """Each whole batch of ``path`` as (bytes, header), its CRC checked; a batch cut short
    at the end ends the iteration. Raises ShellLoadError, OSError."""
    with open(path, "rb") as f:
        yield from _batches(f, str(path))


def _batches(f: BinaryIO, where: str) -> Iterator[tuple[bytes, RecordBatchHeader]]:
    position = 0
    while True:
        head = f.read(LOG_OVERHEAD)
        if len(head) < LOG_OVERHEAD:
            return
        length = int.from_bytes(head[8:12], "big", signed=True)
        if not RECORD_BATCH_OVERHEAD - LOG_OVERHEAD <= length <= MAX_BATCH_BYTES:
            raise ShellLoadError(f"{where}: batch length {length} at position {position}")
        body = f.read(length)
        if len(body) < length:
            return
        data = head + body
        try:
            header = read_batch_header(data)
            check_batch_crc(data, 0, header)
        except (CorruptRecordError, ValueError) as error:
            raise ShellLoadError(f"{where}: position {position}: {error}") from None
        yield data, header
        position += len(data)


def load_file(path: Path) -> tuple[MetadataImage, Provenance]:
    """The image of every data batch in ``path`` (see the module docstring)."""
    builder = ImageBuilder()
    try:
        for data, header in iter_file_batches(path):
            if not header.is_control:
                builder.add_batch(data, 0, header, where=str(path))
    except OSError as error:
        raise ShellLoadError(f"{path}: {error.strerror or error}") from None
    return builder.finish()


def metadata_partition_dir(path: Path) -> Path:
    """``path`` itself when it holds segments or snapshots, else its
    ``__cluster_metadata-0``. Raises ShellLoadError when neither exists."""
    if not path.is_dir():
        raise ShellLoadError(f"{path}: not a directory")
    inner = path / METADATA_PARTITION_DIR
    if inner.is_dir():
        return inner
    if any(p.suffix in (LOG_SUFFIX, ".checkpoint") for p in path.iterdir()):
        return path
    raise ShellLoadError(f"{path}: no metadata log ({METADATA_PARTITION_DIR}) in this directory")


def load_directory(path: Path) -> tuple[MetadataImage, Provenance]:
    """The image of a metadata log directory: the newest snapshot, then the log after it."""
    directory = metadata_partition_dir(path)
    builder = ImageBuilder()
    start = 0
    try:
        snapshots = [s for s in list_snapshots(directory) if s.end_offset > 0]
        if snapshots:
            latest = snapshots[-1]
            where = str(snapshot_path(directory, latest))
            offset = latest.end_offset - 1
            for data, header in iter_file_batches(snapshot_path(directory, latest)):
                if not header.is_control:
                    builder.add_batch(data, 0, header, where=where, at_offset=offset)
            time_ms = read_last_contained_log_timestamp(directory, latest)
            builder.provenance = Provenance(offset, latest.epoch, time_ms)
            start = latest.end_offset
        segments = sorted(
            (base, p)
            for p in directory.iterdir()
            if (base := parse_offset_prefix(p.name, LOG_SUFFIX)) is not None
        )
        for index, (_, segment) in enumerate(segments):
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            if following is not None and following <= start:
                continue  # wholly below the snapshot
            for data, header in iter_file_batches(segment):
                if header.is_control or header.last_offset < start:
                    continue
                builder.add_batch(data, 0, header, where=str(segment), skip_below=start)
    except OSError as error:
        raise ShellLoadError(f"{directory}: {error.strerror or error}") from None
    except ValueError as error:
        if isinstance(error, ShellLoadError):
            raise
        raise ShellLoadError(f"{directory}: {error}") from None
    return builder.finish()
