"""The ``metadata.version`` feature levels: the one table kwire keeps of them.

:class:`MetadataVersion` is an IntEnum whose value is the feature level; it carries the
feature gates the controller consults and Kafka's name for each level (``3.9-IV0``).
Levels 7..31 and their gates are Kafka 4.3.1's (server-common MetadataVersion); levels
1..6, which 4.3.1 no longer knows, are Kafka 3.9's, kept for clusters bootstrapped by 3.x.
Levels 22 and 23 were unstable in 3.9 and mean what 4.3.1 made of them (ELR from 23).
``kwire.controller.records`` re-exports it for the controller, and
``kwire.storage.release`` builds its release-version table (which also lists the versions
that predate KRaft, and parses ``--release-version``) from it.

This module imports nothing from kwire, so the storage tool can use it without loading the
controller package.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "LATEST_3_9",
    "LATEST_PRODUCTION",
    "LATEST_TESTING",
    "MINIMUM_VERSION",
    "METADATA_VERSION_FEATURE",
    "MINIMUM_BOOTSTRAP_VERSION",
    "MINIMUM_KRAFT_VERSION",
    "MetadataVersion",
    "metadata_changed_between",
    "metadata_version",
]

METADATA_VERSION_FEATURE = "metadata.version"


class MetadataVersion(IntEnum):
    """The ``metadata.version`` feature levels kwire knows (level = value).

    Member names are Kafka's (``IBP_3_9_IV0``); levels are consecutive from 1, in the order
    of Kafka's enum. Levels above :data:`LATEST_PRODUCTION` are unstable.
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
    IBP_4_0_IV2 = 24
    IBP_4_0_IV3 = 25
    IBP_4_1_IV0 = 26
    IBP_4_1_IV1 = 27
    IBP_4_2_IV0 = 28
    IBP_4_2_IV1 = 29
    IBP_4_3_IV0 = 30
    IBP_4_4_IV0 = 31

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

    @property
    def is_production(self) -> bool:
        """MetadataVersion.isProduction: at most LATEST_PRODUCTION (4.3-IV0)."""
        return self <= LATEST_PRODUCTION

    @property
    def did_metadata_change(self) -> bool:
        """MetadataVersion.didMetadataChange: this level's records differ from the level below."""
        return int(self) in _METADATA_CHANGED

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
        """isElrSupported (KIP-966): PartitionRecord/PartitionChangeRecord v2, ClearElrRecord."""
        return self >= MetadataVersion.IBP_4_0_IV1

    @property
    def supports_cordoned_log_dirs(self) -> bool:
        """isCordonedLogDirsSupported: RegisterBrokerRecord v4, BrokerRegistrationChangeRecord v3."""
        return self >= MetadataVersion.IBP_4_3_IV0

    # Aliases with Kafka 4.3.1's predicate names.

    @property
    def is_elr_supported(self) -> bool:
        return self.supports_elr

    @property
    def is_directory_assignment_supported(self) -> bool:
        return self.supports_directory_assignment

    @property
    def is_controller_registration_supported(self) -> bool:
        return self.supports_controller_registration

    @property
    def is_metadata_transaction_supported(self) -> bool:
        return self.supports_metadata_transactions

    @property
    def is_scram_supported(self) -> bool:
        return self >= MetadataVersion.IBP_3_5_IV2

    @property
    def is_delegation_token_supported(self) -> bool:
        return self >= MetadataVersion.IBP_3_6_IV2

    # The versions of the records whose layout follows metadata.version.

    @property
    def register_broker_record_version(self) -> int:
        if self.supports_cordoned_log_dirs:
            return 4  # adds CordonedLogDirs
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

    @property
    def register_controller_record_version(self) -> int:
        """registerControllerRecordVersion: 0; controller registration needs 3.7-IV0."""
        if not self.supports_controller_registration:
            raise ValueError(f"Controller registration is not supported in MetadataVersion {self}")
        return 0

    @property
    def fetch_request_version(self) -> int:
        """fetchRequestVersion: what a broker's replica fetcher sends at this level."""
        for level, version in _FETCH_VERSIONS:
            if self >= level:
                return version
        return 13

    @property
    def list_offset_request_version(self) -> int:
        """listOffsetRequestVersion."""
        for level, version in _LIST_OFFSETS_VERSIONS:
            if self >= level:
                return version
        return 7


# MetadataVersion.didMetadataChange: 1..6 as Kafka 3.9, 7..31 as Kafka 4.3.1.
_METADATA_CHANGED = frozenset({1, 3, 5, 6, 7, 8, 11, 13, 14, 15, 17, 23, 30})
_FETCH_VERSIONS = (
    (MetadataVersion.IBP_4_1_IV1, 18),
    (MetadataVersion.IBP_3_9_IV0, 17),
    (MetadataVersion.IBP_3_7_IV4, 16),
    (MetadataVersion.IBP_3_5_IV1, 15),
    (MetadataVersion.IBP_3_5_IV0, 14),
)
_LIST_OFFSETS_VERSIONS = (
    (MetadataVersion.IBP_4_2_IV1, 11),
    (MetadataVersion.IBP_4_0_IV3, 10),
    (MetadataVersion.IBP_3_9_IV0, 9),
    (MetadataVersion.IBP_3_5_IV0, 8),
)

MINIMUM_KRAFT_VERSION = MetadataVersion.IBP_3_0_IV1
# The oldest level Kafka 3.9's bootstrap metadata accepts.
MINIMUM_BOOTSTRAP_VERSION = MetadataVersion.IBP_3_3_IV0
# Kafka 4.3.1's MetadataVersion.MINIMUM_VERSION: the oldest level it knows or formats.
MINIMUM_VERSION = MetadataVersion.IBP_3_3_IV3
LATEST_PRODUCTION = MetadataVersion.IBP_4_3_IV0
LATEST_TESTING = MetadataVersion.IBP_4_4_IV0
# The newest level Kafka 3.9.0 supports (its LATEST_PRODUCTION).
LATEST_3_9 = MetadataVersion.IBP_3_9_IV0


def metadata_changed_between(a: MetadataVersion, b: MetadataVersion) -> bool:
    """MetadataVersion.checkIfMetadataChanged: whether any level in (low, high] changed
    the metadata."""
    low, high = sorted((int(a), int(b)))
    return any(level in _METADATA_CHANGED for level in range(low + 1, high + 1))


_BY_LEVEL: dict[int, MetadataVersion] = {int(mv): mv for mv in MetadataVersion}


def metadata_version(level: int) -> MetadataVersion:
    """The level's MetadataVersion (a dict lookup: every request of the controller asks,
    and the enum's own lookup costs several times more); ValueError if unknown."""
    found = _BY_LEVEL.get(level)
    if found is None:
        raise ValueError(f"unknown metadata.version feature level {level}")
    return found
