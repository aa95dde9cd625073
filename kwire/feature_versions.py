"""Kafka 4.3.1's finalized features other than ``metadata.version``, as data.

Follows server-common's ``Feature`` and its ``FeatureVersion`` enums (KRaftVersion,
TransactionVersion, GroupVersion, EligibleLeaderReplicasVersion, ShareVersion,
StreamsVersion), in the order of ``Feature.PRODUCTION_FEATURES`` (Kafka's test-only
features, ``test.feature.version`` and ``unit.test.*``, are left out as that list leaves
them out).

Each :class:`FeatureLevel` is one level of one feature: the metadata.version from which
``kafka-storage format`` turns it on by default (``bootstrap_metadata_version``) and the
levels of other features it needs (``dependencies``). :class:`FeatureDefinition` answers
Kafka's questions about a feature: its default level at a metadata.version
(``Feature.defaultLevel``), whether a level exists (``Feature.fromFeatureLevel``), whether it
is production (``isProductionReady``), and :func:`validate_version` is
``Feature.validateVersion``. :func:`validate_default_and_latest_production` is
``Feature.validateDefaultValueAndLatestProductionValue``, the consistency rules Kafka checks
when the class loads; a test runs it over every feature.

Levels are plain ints; metadata.version levels are those of :mod:`kwire.metadata_version`.
This module imports nothing from kwire but that one, so the storage tool can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kwire.metadata_version import (
    LATEST_PRODUCTION,
    METADATA_VERSION_FEATURE,
    MINIMUM_VERSION,
    MetadataVersion,
)

__all__ = [
    "ELIGIBLE_LEADER_REPLICAS_VERSION",
    "FEATURES",
    "FeatureDefinition",
    "FeatureLevel",
    "FeatureVersionError",
    "GROUP_VERSION",
    "KRAFT_VERSION",
    "PRODUCTION_FEATURE_NAMES",
    "SHARE_VERSION",
    "STREAMS_VERSION",
    "TRANSACTION_VERSION",
    "feature_by_name",
    "validate_default_and_latest_production",
    "validate_version",
]


class FeatureVersionError(ValueError):
    """Kafka's IllegalArgumentException from Feature: the message is Kafka's."""


@dataclass(frozen=True, slots=True)
class FeatureLevel:
    """One FeatureVersion constant (``TV_2``): its level, the metadata.version that turns it
    on by default, and the minimum levels of other features it depends on."""

    feature: str
    level: int
    bootstrap_metadata_version: MetadataVersion
    dependencies: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    """One entry of Kafka's Feature enum; ``levels`` ascend from 0."""

    name: str
    levels: tuple[FeatureLevel, ...]
    latest_production: int

    @property
    def minimum_production(self) -> int:
        return self.levels[0].level

    @property
    def latest_testing(self) -> int:
        return self.levels[-1].level

    def is_production_ready(self, level: int) -> bool:
        return level <= self.latest_production

    def from_level(self, level: int, allow_unstable: bool) -> FeatureLevel:
        """Feature.fromFeatureLevel; raises FeatureVersionError for an unknown level, or an
        unstable one unless ``allow_unstable``."""
        for candidate in self.levels:
            if candidate.level == level and (allow_unstable or level <= self.latest_production):
                return candidate
        raise FeatureVersionError(f"No feature:{self.name} with feature level {level}")

    def default_version(self, mv: MetadataVersion) -> FeatureLevel:
        """Feature.defaultVersion: the highest level whose bootstrap metadata.version is at
        most ``mv`` (levels are walked in order and the walk stops at the first later one)."""
        chosen = self.levels[0]
        for candidate in self.levels:
            if candidate.bootstrap_metadata_version > mv:
                break
            chosen = candidate
        return chosen

    def default_level(self, mv: MetadataVersion) -> int:
        return self.default_version(mv).level


def _feature(
    name: str, latest_production: int, *levels: tuple[int, MetadataVersion, dict[str, int]]
) -> FeatureDefinition:
    return FeatureDefinition(
        name=name,
        levels=tuple(FeatureLevel(name, level, mv, deps) for level, mv, deps in levels),
        latest_production=latest_production,
    )


_MV = MetadataVersion
KRAFT_VERSION = _feature(
    "kraft.version",
    1,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_3_9_IV0, {}),  # KIP-853 dynamic quorums
)
TRANSACTION_VERSION = _feature(
    "transaction.version",
    2,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_4_0_IV2, {}),  # flexible transaction state records (KIP-890)
    (2, _MV.IBP_4_0_IV2, {}),  # epoch bump per transaction (KIP-890)
)
GROUP_VERSION = _feature(
    "group.version",
    1,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_4_0_IV0, {}),  # consumer rebalance protocol (KIP-848)
)
ELIGIBLE_LEADER_REPLICAS_VERSION = _feature(
    "eligible.leader.replicas.version",
    1,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_4_1_IV0, {METADATA_VERSION_FEATURE: int(_MV.IBP_4_0_IV1)}),  # KIP-966
)
SHARE_VERSION = _feature(
    "share.version",
    1,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_4_2_IV0, {}),  # share groups (KIP-932)
)
STREAMS_VERSION = _feature(
    "streams.version",
    1,
    (0, MINIMUM_VERSION, {}),
    (1, _MV.IBP_4_2_IV1, {}),  # "streams" groups (KIP-1071)
)

# Feature.PRODUCTION_FEATURES, in the enum's order.
FEATURES: tuple[FeatureDefinition, ...] = (
    KRAFT_VERSION,
    TRANSACTION_VERSION,
    GROUP_VERSION,
    ELIGIBLE_LEADER_REPLICAS_VERSION,
    SHARE_VERSION,
    STREAMS_VERSION,
)
PRODUCTION_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in FEATURES}


def feature_by_name(name: str) -> FeatureDefinition:
    """Feature.featureFromName; raises FeatureVersionError for an unknown name."""
    found = _BY_NAME.get(name)
    if found is None:
        raise FeatureVersionError(f"Feature {name} not found.")
    return found


def validate_version(version: FeatureLevel, features: Mapping[str, int]) -> None:
    """Feature.validateVersion: a level >= 1 needs metadata.version >= 3.3-IV3 (7), and each
    dependency needs its feature at least at the level named. ``features`` maps names to the
    levels there will be (metadata.version included). Raises FeatureVersionError."""
    mv = features.get(METADATA_VERSION_FEATURE)
    if version.level >= 1 and (mv is None or mv < MINIMUM_VERSION):
        raise FeatureVersionError(
            f"{version.feature} could not be set to {version.level} because it depends on "
            f"metadata.version={int(MINIMUM_VERSION)} ({MINIMUM_VERSION.version})"
        )
    for name, needed in version.dependencies.items():
        have = features.get(name)
        if have is None or have < needed:
            raise FeatureVersionError(
                f"{version.feature} could not be set to {version.level} because it depends on "
                f"{name} level {needed}"
            )


def validate_default_and_latest_production(feature: FeatureDefinition) -> None:
    """Feature.validateDefaultValueAndLatestProductionValue: the latest production level
    exists, is at least the default at LATEST_PRODUCTION, and its dependencies are
    production; every default's dependencies are met by the defaults (or the metadata.version)
    of the same release. Raises FeatureVersionError."""
    if all(v.level != feature.latest_production for v in feature.levels):
        raise FeatureVersionError(
            f"Feature {feature.name} has latest production version {feature.latest_production} "
            "which is not one of its feature versions."
        )
    latest = feature.from_level(feature.latest_production, True)
    if latest.level < feature.default_level(LATEST_PRODUCTION):
        raise FeatureVersionError(
            f"Feature {feature.name} has latest production value {latest.level} smaller "
            "than its default version with latest production MV."
        )
    for name, needed in latest.dependencies.items():
        if name == METADATA_VERSION_FEATURE:
            if needed > LATEST_PRODUCTION:
                raise FeatureVersionError(
                    f"Feature {feature.name} has latest production FeatureVersion {latest.level} "
                    f"with MV dependency {needed} that is not production ready."
                )
        elif not feature_by_name(name).is_production_ready(needed):
            raise FeatureVersionError(
                f"Feature {feature.name} has latest production FeatureVersion {latest.level} "
                f"with dependency {name}={needed} that is not production ready."
            )
    for mv in MetadataVersion:
        if mv < MINIMUM_VERSION:
            continue  # Kafka 4.3.1 knows no level below 3.3-IV3
        default = feature.default_version(mv)
        for name, needed in default.dependencies.items():
            if name == METADATA_VERSION_FEATURE:
                if needed > default.bootstrap_metadata_version:
                    raise FeatureVersionError(
                        f"Feature {feature.name} has default FeatureVersion {default.level} when "
                        f"MV={mv.version} with MV dependency {needed} that is behind its "
                        f"bootstrap MV {default.bootstrap_metadata_version.version}."
                    )
            elif feature_by_name(name).default_level(mv) < needed:
                raise FeatureVersionError(
                    f"Feature {feature.name} has default FeatureVersion {default.level} when "
                    f"MV={mv.version} with dependency {name}={needed} that is behind its "
                    "default version."
                )
