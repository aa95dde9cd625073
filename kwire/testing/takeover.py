"""Reading a metadata directory offline, to check a take-over (docs/takeover.md): kwire
started on a genuine Kafka controller's directory, or Kafka on kwire's.

- `copy_metadata_dir`: a writable copy of a metadata directory (a controller's
  `metadata.log.dir`: meta.properties, bootstrap.checkpoint, __cluster_metadata-0/),
  without the `.lock` file a running process holds.
- `offline_image`: the metadata image kwire's loader builds from a directory (newest
  snapshot, then every metadata record of the log after it), as a node would at start-up,
  without starting one; the directory itself is not touched (a private copy is opened).
- `segment_batches`: every record batch of the log's segments, in file order, with its
  raw bytes, offsets, leader epoch and control record types.
"""

from __future__ import annotations

import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.log.metadata_log import MetadataLog
from kwire.log.metadata_reader import decode_metadata_value
from kwire.log.snapshot_io import iter_snapshot_records
from kwire.records.batch import decode_batches
from kwire.records.control import decode_control_record_key

__all__ = ["LogBatch", "copy_metadata_dir", "offline_image", "segment_batches"]

PARTITION_DIR = "__cluster_metadata-0"
_BATCH_PREFIX = struct.Struct(">qi")  # base offset, batch length (bytes after this field)
_CONTROL_ATTRIBUTE = 0x20


def copy_metadata_dir(source: Path, dest: Path) -> Path:
    """Copy the metadata directory `source` to `dest` (which must not exist), make every
    file and directory of the copy writable by its owner (captured directories may be
    read-only), drop any `.lock`; returns `dest`."""
    shutil.copytree(source, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
        if path.name == ".lock":
            path.unlink()
    return dest


def offline_image(metadata_dir: Path) -> MetadataImage:
    """The image of `metadata_dir`: its newest snapshot, then the metadata records after it
    (committed or not), applied by kwire's `ImageLoader`. Opens a private copy, since
    opening a log may rebuild its indexes. Raises what the log and record readers raise
    on a corrupt file (ValueError subclasses)."""
    image = MetadataImage()
    loader = ImageLoader(image)
    with tempfile.TemporaryDirectory(prefix="kwire-offline-") as scratch:
        copy = copy_metadata_dir(metadata_dir / PARTITION_DIR, Path(scratch) / PARTITION_DIR)
        with MetadataLog.open(copy) as log:
            start = log.log_start_offset
            latest = log.latest_snapshot_id()
            if latest is not None:
                for records in iter_snapshot_records(log.directory, latest):
                    loader.replay_all(records, latest.end_offset - 1)
                start = max(start, latest.end_offset)
            for batch in log.read_batches(start, verify_crc=True):
                if batch.is_control:
                    continue
                entries = []
                for record in batch.records:
                    offset = batch.offset_of(record)
                    if offset >= start:
                        message, version = decode_metadata_value(record.value)
                        entries.append((offset, message, version))
                loader.replay_all(entries)
    loader.finish()
    return image


@dataclass(frozen=True, slots=True)
class LogBatch:
    """One record batch of a segment file: offsets [base_offset, next_offset), the leader
    epoch that wrote it, its control record types (kwire.records.control, empty for a
    data batch) and its bytes as the file holds them."""

    segment: str
    base_offset: int
    next_offset: int
    epoch: int
    control_types: tuple[int, ...]
    raw: bytes


def segment_batches(metadata_dir: Path) -> list[LogBatch]:
    """Every batch of every `.log` segment of `metadata_dir`, in offset order of the
    segments. ValueError for a file that does not divide into whole batches."""
    batches: list[LogBatch] = []
    for segment in sorted((metadata_dir / PARTITION_DIR).glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos < len(data):
            if len(data) - pos < _BATCH_PREFIX.size:
                raise ValueError(f"{segment.name}: {len(data) - pos} stray bytes at {pos}")
            _, length = _BATCH_PREFIX.unpack_from(data, pos)
            end = pos + _BATCH_PREFIX.size + length
            if length <= 0 or end > len(data):
                raise ValueError(f"{segment.name}: a batch at {pos} runs past the file's end")
            raw = data[pos:end]
            (batch,) = decode_batches(raw, verify_crc=True)
            control = bool(batch.attributes & _CONTROL_ATTRIBUTE)
            types = (
                tuple(decode_control_record_key(r.key).type_id for r in batch.records)
                if control
                else ()
            )
            batches.append(
                LogBatch(
                    segment.name,
                    batch.base_offset,
                    batch.next_offset,
                    batch.partition_leader_epoch,
                    types,
                    raw,
                )
            )
            pos = end
    return batches
