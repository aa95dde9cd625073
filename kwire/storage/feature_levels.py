"""The feature levels ``kafka-storage format`` bootstraps, as Kafka 4.3.1 computes them.

Follows core's StorageTool (``--release-version``, ``--feature name=level``) and metadata's
Formatter (calculateEffectiveReleaseVersion, calculateEffectiveFeatureLevels,
effectiveKRaftFeatureLevel) and BootstrapMetadata.fromVersions of Kafka 4.3.1:

- the release version is ``--release-version`` (MetadataVersion.fromVersionString: only
  3.3-IV3 and later, and unstable ones only with ``unstable.feature.versions.enable``),
  or ``--feature metadata.version=N`` (not both), or else LATEST_PRODUCTION (4.3-IV0;
  the latest testing level with unstable versions enabled);
- every production feature not named takes its default level at that release version
  (Feature.defaultLevel), except kraft.version: 0 with static controller.quorum.voters, 1
  without (a dynamic quorum), and a named level must agree with that;
- every level must exist (and be stable unless unstable versions are enabled) and meet its
  dependencies (Feature.validateVersion), checked by feature name;
- the records: metadata.version's FeatureLevelRecord, then one per other feature by name
  whose level is above 0 (kraft.version never has one), all at version 0.

Refusals raise :class:`FeatureLevelError` with Kafka's message (some of which Kafka raises
as uncaught IllegalArgumentExceptions rather than FormatterExceptions; kwire prints the
message either way).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kwire.feature_versions import (
    FEATURES,
    KRAFT_VERSION,
    FeatureVersionError,
    validate_version,
)
from kwire.metadata_version import (
    LATEST_PRODUCTION,
    LATEST_TESTING,
    METADATA_VERSION_FEATURE,
    MINIMUM_VERSION,
    MetadataVersion,
)
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord

__all__ = [
    "FeatureLevelError",
    "bootstrap_feature_records",
    "describe_bootstrap",
    "effective_feature_levels",
    "effective_release_version",
    "parse_feature_arguments",
    "parse_release_version",
]

_MAX_SHORT = 2**15 - 1
_SHORT = re.compile(r"[+-]?[0-9]+")  # what Java's Short.parseShort reads


class FeatureLevelError(ValueError):
    """``format`` refused the release version or a feature level; the message is Kafka's."""


def _known(unstable: bool) -> list[MetadataVersion]:
    last = LATEST_TESTING if unstable else LATEST_PRODUCTION
    return [mv for mv in MetadataVersion if MINIMUM_VERSION <= mv <= last]


def parse_release_version(text: str, unstable: bool = False) -> MetadataVersion:
    """MetadataVersion.fromVersionString of 4.3.1: ``4.3-IV0``, ``4.3`` (its newest
    production sub-version) or ``4.3.1`` (only the first two segments count)."""
    segments = text.split(".")
    key = text if len(segments) <= 2 else ".".join(segments[:2])
    names: dict[str, MetadataVersion] = {}
    for mv in MetadataVersion:
        if mv >= MINIMUM_VERSION:
            names[mv.version] = mv
    for mv in MetadataVersion:
        if mv >= MINIMUM_VERSION and mv.is_production:
            names[mv.release] = mv
    found = names.get(key)
    if found is None or (not unstable and not found.is_production):
        supported = ", ".join(mv.version for mv in _known(unstable))
        raise FeatureLevelError(
            f"Unknown metadata.version '{text}'. Supported metadata.version are: {supported}"
        )
    return found


def parse_feature_arguments(arguments: Sequence[str]) -> dict[str, int]:
    """StorageTool.featureNamesAndLevels: ``name=level`` each (trimmed; a later mention of a
    name wins); the level is a Java short."""
    levels: dict[str, int] = {}
    for argument in arguments:
        name, equals, level_text = argument.partition("=")
        if not equals:
            raise FeatureLevelError(
                f"Can't parse feature=level string {argument}: equals sign not found."
            )
        level_text = level_text.strip()
        level = int(level_text) if _SHORT.fullmatch(level_text) else None
        if level is None or not -_MAX_SHORT - 1 <= level <= _MAX_SHORT:
            raise FeatureLevelError(
                f"Can't parse feature=level string {argument}: unable to parse {level_text} "
                "as a short."
            )
        levels[name.strip()] = level
    return levels


def _verify(mv: MetadataVersion, unstable: bool) -> MetadataVersion:
    if not unstable and not mv.is_production:
        raise FeatureLevelError(f"{METADATA_VERSION_FEATURE} {mv.version} is not yet stable.")
    return mv


def effective_release_version(
    release: MetadataVersion | None, features: Mapping[str, int], unstable: bool = False
) -> MetadataVersion:
    """Formatter.calculateEffectiveReleaseVersion."""
    if METADATA_VERSION_FEATURE in features:
        if release is not None:
            raise FeatureLevelError(
                f"Use --release-version instead of --feature {METADATA_VERSION_FEATURE}=X to "
                "avoid ambiguity."
            )
        level = features[METADATA_VERSION_FEATURE]
        if not MINIMUM_VERSION <= level <= LATEST_TESTING:
            raise FeatureLevelError(
                f"No MetadataVersion with feature level {level}. Valid feature levels are from "
                f"{int(MINIMUM_VERSION)} to {int(LATEST_TESTING)}."
            )
        return _verify(MetadataVersion(level), unstable)
    if release is not None:
        return _verify(release, unstable)
    return LATEST_TESTING if unstable else LATEST_PRODUCTION


def _kraft_level(configured: int | None, dynamic_quorum: bool) -> int:
    """Formatter.effectiveKRaftFeatureLevel."""
    if configured is None:
        return 1 if dynamic_quorum else 0
    if configured == 0 and dynamic_quorum:
        raise FeatureLevelError(
            "Cannot set kraft.version to 0 if controller.quorum.voters is empty and one of the "
            "flags --standalone, --initial-controllers, or --no-initial-controllers is used. For "
            "dynamic controllers support, try removing the --feature flag for kraft.version."
        )
    if configured != 0 and not dynamic_quorum:
        raise FeatureLevelError(
            f"Cannot set kraft.version to {configured} unless controller.quorum.voters is empty "
            "and one of the flags --standalone, --initial-controllers, or "
            "--no-initial-controllers is used. For dynamic controllers support, try using one of "
            "--standalone, --initial-controllers, or --no-initial-controllers and removing "
            "controller.quorum.voters."
        )
    return configured


def effective_feature_levels(
    release: MetadataVersion,
    features: Mapping[str, int],
    unstable: bool = False,
    dynamic_quorum: bool = False,
) -> dict[str, int]:
    """Formatter.calculateEffectiveFeatureLevels: every feature's level, sorted by name
    (Kafka's TreeMap), metadata.version included."""
    known = {f.name: f for f in FEATURES}
    for name in sorted(features):
        if name != METADATA_VERSION_FEATURE and name not in known:
            raise FeatureLevelError(
                f"Unsupported feature: {name}. Supported features are: {', '.join(sorted(known))}"
            )
    levels = dict(features)
    levels[METADATA_VERSION_FEATURE] = int(release)
    for feature in FEATURES:
        if feature.name == KRAFT_VERSION.name:
            levels[feature.name] = _kraft_level(levels.get(feature.name), dynamic_quorum)
        elif feature.name not in levels:
            levels[feature.name] = feature.default_level(release)
    for name in sorted(levels):
        if name == METADATA_VERSION_FEATURE:
            continue
        try:
            validate_version(known[name].from_level(levels[name], unstable), levels)
        except FeatureVersionError as e:
            raise FeatureLevelError(str(e)) from None
    return {name: levels[name] for name in sorted(levels)}


def bootstrap_feature_records(
    release: MetadataVersion, levels: Mapping[str, int]
) -> list[tuple[FeatureLevelRecord, int]]:
    """BootstrapMetadata.fromVersions: metadata.version, then by name every other feature
    above level 0 but kraft.version; each (record, version 0)."""
    records = [(FeatureLevelRecord(name=METADATA_VERSION_FEATURE, feature_level=int(release)), 0)]
    for name in sorted(levels):
        if name in (METADATA_VERSION_FEATURE, KRAFT_VERSION.name) or levels[name] <= 0:
            continue
        records.append((FeatureLevelRecord(name=name, feature_level=levels[name]), 0))
    return records


def describe_bootstrap(
    records: Sequence[tuple[object, int]], level: int, source: str = "format command"
) -> str:
    """BootstrapMetadata.toString as Kafka prints it before formatting (FeatureLevelRecords
    only: what ``format`` writes without --add-scram)."""
    parts = []
    for record, version in records:
        if not isinstance(record, FeatureLevelRecord):
            raise TypeError(f"cannot describe {type(record).__name__}")
        parts.append(
            f"ApiMessageAndVersion(FeatureLevelRecord(name='{record.name}', "
            f"featureLevel={record.feature_level}) at version {version})"
        )
    return (
        f"BootstrapMetadata(records=[{', '.join(parts)}], metadataVersionLevel={level}, "
        f"source={source})"
    )
