"""Metadata records as the controller produces them, and the metadata.version levels that
decide which version of each record it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord

METADATA_VERSION_FEATURE = "metadata.version"
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


class MetadataVersion(IntEnum):
    """The ``metadata.version`` feature levels a Kafka 3.9 controller knows (level = value)."""

    IBP_3_0_IV1 = 1
    IBP_3_1_IV0 = 2
    IBP_3_2_IV0 = 3
    IBP_3_3_IV0 = 4
    IBP_3_3_IV1 = 5
    IBP_3_3_IV2 = 6
    IBP_3_3_IV3 = 7
    IBP_3_4_IV0 = 8
    IBP_3_5_IV0 = 9
    IBP_3_5_IV1 = 10
    IBP_3_5_IV2 = 11
    IBP_3_6_IV0 = 12
    IBP_3_6_IV1 = 13
    IBP_3_6_IV2 = 14
    IBP_3_7_IV0 = 15
    IBP_3_7_IV1 = 16
    IBP_3_7_IV2 = 17
    IBP_3_7_IV3 = 18
    IBP_3_7_IV4 = 19
    IBP_3_8_IV0 = 20
    IBP_3_9_IV0 = 21
    IBP_4_0_IV0 = 22
    IBP_4_0_IV1 = 23

    # The predicates below are the feature gates the controller consults.

    @property
    def supports_leader_recovery(self) -> bool:
        return self >= MetadataVersion.IBP_3_2_IV0

    @property
    def supports_noop_record(self) -> bool:
        return self >= MetadataVersion.IBP_3_3_IV1

    @property
    def supports_broker_registration_change_record(self) -> bool:
        return self >= MetadataVersion.IBP_3_3_IV2

    @property
    def supports_in_controlled_shutdown_state(self) -> bool:
        return self >= MetadataVersion.IBP_3_3_IV3

    @property
    def supports_migration(self) -> bool:
        return self >= MetadataVersion.IBP_3_4_IV0

    @property
    def requires_leader_epoch_bump_on_isr_shrink(self) -> bool:
        return self < MetadataVersion.IBP_3_6_IV0

    @property
    def supports_metadata_transactions(self) -> bool:
        return self >= MetadataVersion.IBP_3_6_IV1

    @property
    def supports_controller_registration(self) -> bool:
        return self >= MetadataVersion.IBP_3_7_IV0

    @property
    def supports_directory_assignment(self) -> bool:
        return self >= MetadataVersion.IBP_3_7_IV2

    @property
    def supports_elr(self) -> bool:
        return self >= MetadataVersion.IBP_4_0_IV0

    @property
    def register_broker_record_version(self) -> int:
        if self.supports_directory_assignment:
            return 3  # adds LogDirs
        if self.supports_migration:
            return 2  # adds IsMigratingZkBroker
        if self.supports_in_controlled_shutdown_state:
            return 1
        return 0

    @property
    def partition_record_version(self) -> int:
        if self.supports_elr:
            return 2
        if self.supports_directory_assignment:
            return 1  # adds Directories
        return 0

    @property
    def partition_change_record_version(self) -> int:
        return self.partition_record_version


MINIMUM_KRAFT_VERSION = MetadataVersion.IBP_3_0_IV1
LATEST_PRODUCTION = MetadataVersion.IBP_3_9_IV0


def metadata_version(level: int) -> MetadataVersion:
    try:
        return MetadataVersion(level)
    except ValueError:
        raise ValueError(f"unknown metadata.version feature level {level}") from None


def record_version(record: Message, mv: MetadataVersion) -> int:
    """The version Kafka writes ``record`` at under ``mv``.

    Records whose layout changed over time follow metadata.version; every other record is
    written at version 0. BrokerRegistrationChangeRecord is the exception that depends on
    content: v1 only if it carries InControlledShutdown, v2 only if it carries LogDirs.
    """
    if isinstance(record, RegisterBrokerRecord):
        return mv.register_broker_record_version
    if isinstance(record, PartitionRecord):
        return mv.partition_record_version
    if isinstance(record, PartitionChangeRecord):
        return mv.partition_change_record_version
    if isinstance(record, BrokerRegistrationChangeRecord):
        if record.log_dirs:
            return 2
        if record.in_controlled_shutdown:
            return 1
        return 0
    return 0


def with_version(record: Message, mv: MetadataVersion) -> RecordAndVersion:
    return RecordAndVersion(record, record_version(record, mv))
