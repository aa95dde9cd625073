"""Kafka 3.9's ``metadata.version`` feature levels: the one table kwire keeps of them.

:class:`MetadataVersion` is an IntEnum whose value is the feature level; it carries the
feature gates the controller consults and Kafka's name for each level (``3.9-IV0``).
``kwire.controller.records`` re-exports it for the controller, and
``kwire.storage.release`` builds its release-version table (which also lists the versions
that predate KRaft, and parses ``--release-version``) from it.

This module imports nothing from kwire, so the storage tool can use it without loading the
controller package.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "LATEST_PRODUCTION",
    "METADATA_VERSION_FEATURE",
    "MINIMUM_BOOTSTRAP_VERSION",
    "MINIMUM_KRAFT_VERSION",
    "MetadataVersion",
    "metadata_version",
]

METADATA_VERSION_FEATURE = "metadata.version"


class MetadataVersion(IntEnum):
    """The ``metadata.version`` feature levels a Kafka 3.9 controller knows (level = value).

    Member names are Kafka's (``IBP_3_9_IV0``); levels are consecutive from 1, in the order
    of Kafka's enum.
    """

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

    # Kafka's name for the level, derived from the member name.

    @property
    def release(self) -> str:
        """``3.9`` for IBP_3_9_IV0."""
        _, major, minor, _sub = self.name.split("_")
        return f"{major}.{minor}"

    @property
    def sub_version(self) -> str:
        """``IV0`` for IBP_3_9_IV0."""
        return self.name.rsplit("_", 1)[1]

    @property
    def version(self) -> str:
        """``3.9-IV0`` for IBP_3_9_IV0, as Kafka prints it."""
        return f"{self.release}-{self.sub_version}"

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

    # The versions of the records whose layout follows metadata.version.

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
# The oldest level `kafka-storage format` and bootstrap metadata accept.
MINIMUM_BOOTSTRAP_VERSION = MetadataVersion.IBP_3_3_IV0
LATEST_PRODUCTION = MetadataVersion.IBP_3_9_IV0


def metadata_version(level: int) -> MetadataVersion:
    try:
        return MetadataVersion(level)
    except ValueError:
        raise ValueError(f"unknown metadata.version feature level {level}") from None
