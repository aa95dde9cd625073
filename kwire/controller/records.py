"""Metadata records as the controller produces them, and the version of each it writes.

The metadata.version levels that decide those versions live in :mod:`kwire.metadata_version`
(shared with the storage tool); they are re-exported here for the controller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kwire.metadata_version import (
    LATEST_PRODUCTION,
    METADATA_VERSION_FEATURE,
    MINIMUM_KRAFT_VERSION,
    MetadataVersion,
    metadata_version,
)
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord

__all__ = [
    "KRAFT_VERSION_FEATURE",
    "LATEST_PRODUCTION",
    "METADATA_VERSION_FEATURE",
    "MINIMUM_KRAFT_VERSION",
    "MetadataVersion",
    "RecordAndVersion",
    "metadata_version",
    "record_version",
    "with_version",
]

KRAFT_VERSION_FEATURE = "kraft.version"


@dataclass(frozen=True, slots=True)
class RecordAndVersion:
    """One metadata record and the version it is written at (Kafka's ApiMessageAndVersion)."""

    record: Message
    version: int

    @property
    def api_key(self) -> int:
        key = type(self.record).API_KEY  # type: ignore[attr-defined]
        assert isinstance(key, int)
        return key


def versioned_records(records: Iterable[Message], mv: MetadataVersion) -> list[RecordAndVersion]:
    """Each record with the version ``record_version`` gives it, worked out once per record
    type (only BrokerRegistrationChangeRecord's depends on its content)."""
    versions: dict[type, int] = {}
    result = []
    for record in records:
        kind = type(record)
        version = versions.get(kind)
        if version is None:
            version = record_version(record, mv)
            if kind is not BrokerRegistrationChangeRecord:
                versions[kind] = version
        result.append(RecordAndVersion(record, version))
    return result


def record_version(record: Message, mv: MetadataVersion) -> int:
    """The version Kafka writes ``record`` at under ``mv``.

    Records whose layout changed over time follow metadata.version; every other record is
    written at version 0. BrokerRegistrationChangeRecord is the exception that depends on
    content: v1 only if it carries InControlledShutdown, v2 only if it carries LogDirs, v3
    only if it carries CordonedLogDirs (Kafka 4.3.1's ReplicationControlManager).
    """
    if isinstance(record, RegisterBrokerRecord):
        return mv.register_broker_record_version
    if isinstance(record, PartitionRecord):
        return mv.partition_record_version
    if isinstance(record, PartitionChangeRecord):
        return mv.partition_change_record_version
    if isinstance(record, BrokerRegistrationChangeRecord):
        if record.cordoned_log_dirs is not None:
            return 3
        if record.log_dirs:
            return 2
        if record.in_controlled_shutdown:
            return 1
        return 0
    return 0


def with_version(record: Message, mv: MetadataVersion) -> RecordAndVersion:
    return RecordAndVersion(record, record_version(record, mv))
