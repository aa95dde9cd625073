"""``bootstrap.checkpoint``: the records a new cluster starts from, in snapshot format.

Kafka 3.9's BatchFileWriter lays the file out as three batches, all with partition
leader epoch 0: a SnapshotHeaderRecord control batch (offset 0, lastContainedLogTimestamp
0), one batch holding every bootstrap record, then a SnapshotFooterRecord control batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from kwire.log.files import BOOTSTRAP_CHECKPOINT_FILE, fsync_dir
from kwire.protocol._codec import Message
from kwire.protocol.messages.control.snapshot_footer_record import SnapshotFooterRecord
from kwire.protocol.messages.control.snapshot_header_record import SnapshotHeaderRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.records import (
    ControlRecordType,
    CorruptRecordError,
    Record,
    build_batch,
    decode_batches,
    encode_batch,
    encode_control_record_key,
    frame_metadata_record,
    unframe_metadata_record,
)
from kwire.storage.release import (
    FEATURE_NAME,
    LATEST_PRODUCTION,
    MINIMUM_BOOTSTRAP_VERSION,
    MetadataVersion,
    ReleaseVersionError,
    metadata_version_for_level,
    parse_release_version,
)

__all__ = [
    "BootstrapError",
    "bootstrap_metadata_version",
    "bootstrap_records",
    "encode_bootstrap_checkpoint",
    "load_bootstrap",
    "read_bootstrap_checkpoint",
    "write_bootstrap_checkpoint",
]

RecordAndVersion = tuple[Message, int]


class BootstrapError(ValueError):
    """bootstrap.checkpoint is missing its metadata.version or cannot be decoded."""


def bootstrap_records(version: MetadataVersion) -> list[RecordAndVersion]:
    """What ``kafka-storage format`` bootstraps for a release version. Every other 3.9
    feature (transaction.version, ...) defaults to level 0 up to 3.9-IV0, and a level
    of 0 writes no record, so metadata.version is all there is."""
    return [(FeatureLevelRecord(name=FEATURE_NAME, feature_level=version.feature_level), 0)]


def _metadata_record_class(api_key: int) -> type[Message]:
    from kwire.protocol.messages.index import METADATA_RECORDS

    cls = METADATA_RECORDS.get(api_key)
    if cls is None:
        raise BootstrapError(f"unknown metadata record type {api_key}")
    return cls


def _api_key(message: Message) -> int:
    api_key = getattr(message, "API_KEY", None)
    if not isinstance(api_key, int):
        raise ValueError(f"{type(message).__name__} is not a metadata record")
    return api_key


def _control_record(kind: ControlRecordType, message: Message) -> Record:
    return Record(offset_delta=0, key=encode_control_record_key(kind), value=message.encode(0))


def encode_bootstrap_checkpoint(
    records: Sequence[RecordAndVersion], timestamps: Sequence[int] | None = None
) -> bytes:
    """The file's bytes. ``timestamps`` are the three batches' create times (Kafka takes
    the clock as it builds each batch); by default, now."""
    if not records:
        raise ValueError("a bootstrap file needs at least one record")
    if timestamps is None:
        now = int(time.time() * 1000)
        timestamps = (now, now, now)
    header_ts, records_ts, footer_ts = timestamps
    header = build_batch(
        [_control_record(ControlRecordType.SNAPSHOT_HEADER, SnapshotHeaderRecord(version=0))],
        base_offset=0,
        base_timestamp=header_ts,
        partition_leader_epoch=0,
        control=True,
    )
    data = build_batch(
        [
            Record(
                offset_delta=i,
                value=frame_metadata_record(_api_key(message), version, message.encode(version)),
            )
            for i, (message, version) in enumerate(records)
        ],
        base_offset=1,
        base_timestamp=records_ts,
        partition_leader_epoch=0,
    )
    footer = build_batch(
        [_control_record(ControlRecordType.SNAPSHOT_FOOTER, SnapshotFooterRecord(version=0))],
        base_offset=1 + len(records),
        base_timestamp=footer_ts,
        partition_leader_epoch=0,
        control=True,
    )
    return encode_batch(header) + encode_batch(data) + encode_batch(footer)


def write_bootstrap_checkpoint(directory: Path, records: Sequence[RecordAndVersion]) -> Path:
    """Write ``directory/bootstrap.checkpoint`` through a temporary file, as Kafka does."""
    final = directory / BOOTSTRAP_CHECKPOINT_FILE
    temp = directory / (BOOTSTRAP_CHECKPOINT_FILE + ".tmp")
    temp.unlink(missing_ok=True)
    try:
        with open(temp, "xb") as f:
            f.write(encode_bootstrap_checkpoint(records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        fsync_dir(directory)
    finally:
        temp.unlink(missing_ok=True)
    return final


def read_bootstrap_checkpoint(path: Path) -> list[RecordAndVersion]:
    """The metadata records of a bootstrap file (control batches skipped)."""
    try:
        data = path.read_bytes()
        out: list[RecordAndVersion] = []
        for batch in decode_batches(data):
            if batch.is_control:
                continue
            for record in batch.records:
                api_key, version, body = unframe_metadata_record(record.value)
                out.append((_metadata_record_class(api_key).decode(body, version), version))
    except (CorruptRecordError, ValueError) as e:
        if isinstance(e, BootstrapError):
            raise
        raise BootstrapError(f"cannot read {path}: {e}") from None
    return out


def bootstrap_metadata_version(records: Sequence[RecordAndVersion], source: str) -> MetadataVersion:
    """The metadata.version the records set (the last FeatureLevelRecord for it wins)."""
    level = None
    for message, _ in records:
        if isinstance(message, FeatureLevelRecord) and message.name == FEATURE_NAME:
            level = message.feature_level
    if level is None:
        raise BootstrapError(
            f"No FeatureLevelRecord for {FEATURE_NAME} was found in the bootstrap metadata from {source}"
        )
    try:
        version = metadata_version_for_level(level)
    except ReleaseVersionError as e:
        raise BootstrapError(str(e)) from None
    if version < MINIMUM_BOOTSTRAP_VERSION:
        raise BootstrapError(
            f"Bootstrap {FEATURE_NAME} before {MINIMUM_BOOTSTRAP_VERSION} are not supported. "
            f"Can't load metadata from {source}"
        )
    return version


def load_bootstrap(directory: Path, ibp: str | None = None) -> list[RecordAndVersion]:
    """The bootstrap records for a metadata log directory, as Kafka's BootstrapDirectory
    reads them: from bootstrap.checkpoint, or, when there is none, a metadata.version
    record for ``ibp`` (inter.broker.protocol.version) or the latest production version."""
    if not directory.is_dir():
        if directory.exists():
            raise BootstrapError(f"Path {directory} exists, but is not a directory.")
        raise BootstrapError(f"No such directory as {directory}")
    path = directory / BOOTSTRAP_CHECKPOINT_FILE
    if path.exists():
        records = read_bootstrap_checkpoint(path)
        bootstrap_metadata_version(records, f"the binary bootstrap metadata file: {path}")
        return records
    if ibp is None:
        return bootstrap_records(LATEST_PRODUCTION)
    try:
        version = parse_release_version(ibp)
    except ReleaseVersionError as e:
        raise BootstrapError(str(e)) from None
    return bootstrap_records(max(version, MINIMUM_BOOTSTRAP_VERSION))
