"""Small text files in the partition directory, byte-for-byte as Kafka 3.9 writes them.

* ``leader-epoch-checkpoint``: ``0\\n<count>\\n`` then ``<epoch> <start offset>\\n`` lines.
* ``partition.metadata``: ``version: 0\\ntopic_id: <base64url uuid>`` (no final newline).
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from kwire.log.files import atomic_write

LEADER_EPOCH_CHECKPOINT_VERSION = 0
PARTITION_METADATA_VERSION = 0
# Kafka's Uuid.METADATA_TOPIC_ID: the fixed topic id of __cluster_metadata.
METADATA_TOPIC_ID = uuid.UUID(int=1)

_WHITESPACE = re.compile(r"\s+")


class CheckpointFormatError(ValueError):
    """A checkpoint-style file does not parse."""


@dataclass(frozen=True, slots=True, order=True)
class EpochEntry:
    epoch: int
    start_offset: int


def format_leader_epoch_checkpoint(entries: list[EpochEntry]) -> bytes:
    lines = [str(LEADER_EPOCH_CHECKPOINT_VERSION), str(len(entries))]
    lines += [f"{e.epoch} {e.start_offset}" for e in entries]
    return ("\n".join(lines) + "\n").encode()


def parse_leader_epoch_checkpoint(
    data: bytes, where: str = "leader-epoch-checkpoint"
) -> list[EpochEntry]:
    """Parse as Kafka's CheckpointFile reader: an empty file or a missing count line
    means no entries; the count must match the number of entry lines."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CheckpointFormatError(f"{where}: not UTF-8") from e
    if not lines:
        return []
    try:
        version = int(lines[0])
    except ValueError:
        raise CheckpointFormatError(f"{where}: bad version line {lines[0]!r}") from None
    if version != LEADER_EPOCH_CHECKPOINT_VERSION:
        raise CheckpointFormatError(f"{where}: unrecognised version {version}")
    if len(lines) < 2:
        return []
    try:
        expected = int(lines[1])
    except ValueError:
        raise CheckpointFormatError(f"{where}: bad count line {lines[1]!r}") from None
    entries = []
    for line in lines[2:]:
        parts = _WHITESPACE.split(line)
        try:
            if len(parts) != 2:
                raise ValueError
            entries.append(EpochEntry(int(parts[0]), int(parts[1])))
        except ValueError:
            raise CheckpointFormatError(f"{where}: malformed line {line!r}") from None
    if len(entries) != expected:
        raise CheckpointFormatError(f"{where}: expected {expected} entries, found {len(entries)}")
    return entries


def read_leader_epoch_checkpoint(path: Path) -> list[EpochEntry]:
    return parse_leader_epoch_checkpoint(path.read_bytes(), str(path))


def write_leader_epoch_checkpoint(path: Path, entries: list[EpochEntry]) -> None:
    atomic_write(path, format_leader_epoch_checkpoint(entries))


def uuid_to_kafka_string(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def uuid_from_kafka_string(text: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ValueError(f"bad Kafka uuid {text!r}") from None
    if len(raw) != 16:
        raise ValueError(f"bad Kafka uuid {text!r}: {len(raw)} bytes")
    return uuid.UUID(bytes=raw)


def format_partition_metadata(topic_id: uuid.UUID) -> bytes:
    return (
        f"version: {PARTITION_METADATA_VERSION}\ntopic_id: {uuid_to_kafka_string(topic_id)}"
    ).encode()


def parse_partition_metadata(data: bytes, where: str = "partition.metadata") -> uuid.UUID:
    lines = data.decode("utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        raise CheckpointFormatError(f"{where}: expected version and topic_id lines")
    fields = {}
    for line in lines[:2]:
        key, sep, value = line.partition(":")
        if not sep:
            raise CheckpointFormatError(f"{where}: malformed line {line!r}")
        fields[key.strip()] = value.strip()
    if fields.get("version") != str(PARTITION_METADATA_VERSION):
        raise CheckpointFormatError(f"{where}: unsupported version {fields.get('version')!r}")
    try:
        return uuid_from_kafka_string(fields.get("topic_id", ""))
    except ValueError as e:
        raise CheckpointFormatError(f"{where}: {e}") from None


def read_partition_metadata(path: Path) -> uuid.UUID:
    return parse_partition_metadata(path.read_bytes(), str(path))


def write_partition_metadata(path: Path, topic_id: uuid.UUID) -> None:
    atomic_write(path, format_partition_metadata(topic_id))
