"""Kafka 3.9's release versions (MetadataVersion as ``kafka-storage`` sees it) and their parsing.

The KRaft-era entries, their feature levels and names, come from
:class:`kwire.metadata_version.MetadataVersion`, the one table of ``metadata.version`` levels
(which the controller uses for its feature gates); this module adds the versions that predate
KRaft, Kafka's ordinals and release-version parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from kwire import metadata_version as _levels

__all__ = [
    "FEATURE_NAME",
    "LATEST_PRODUCTION",
    "MINIMUM_BOOTSTRAP_VERSION",
    "MetadataVersion",
    "ReleaseVersionError",
    "metadata_version_for_level",
    "parse_release_version",
    "resolve_release_version",
]

FEATURE_NAME = _levels.METADATA_VERSION_FEATURE


class ReleaseVersionError(ValueError):
    """A release version is unknown, too old or not production ready."""


@dataclass(frozen=True, order=True, slots=True)
class MetadataVersion:
    ordinal: int  # position in Kafka's enum; orders versions, including pre-KRaft ones
    feature_level: int  # -1 for versions that predate KRaft
    release: str  # "3.9"
    sub_version: str  # "IV0", or "" for the oldest releases

    @property
    def version(self) -> str:
        """Kafka's name for it, as printed: ``3.9-IV0``."""
        return f"{self.release}-{self.sub_version}" if self.sub_version else self.release

    @property
    def is_kraft_supported(self) -> bool:
        return self.feature_level > 0

    @property
    def is_production(self) -> bool:
        return self <= LATEST_PRODUCTION

    def __str__(self) -> str:
        return self.version


_LEGACY = [
    "0.8.0",
    "0.8.1",
    "0.8.2",
    "0.9.0",
    "0.10.0-IV0",
    "0.10.0-IV1",
    "0.10.1-IV0",
    "0.10.1-IV1",
    "0.10.1-IV2",
    "0.10.2-IV0",
    "0.11.0-IV0",
    "0.11.0-IV1",
    "0.11.0-IV2",
    "1.0-IV0",
    "1.1-IV0",
    "2.0-IV0",
    "2.0-IV1",
    "2.1-IV0",
    "2.1-IV1",
    "2.1-IV2",
    "2.2-IV0",
    "2.2-IV1",
    "2.3-IV0",
    "2.3-IV1",
    "2.4-IV0",
    "2.4-IV1",
    "2.5-IV0",
    "2.6-IV0",
    "2.7-IV0",
    "2.7-IV1",
    "2.7-IV2",
    "2.8-IV0",
    "2.8-IV1",
    "3.0-IV0",
]


def _make(ordinal: int, name: str, level: int) -> MetadataVersion:
    release, _, sub = name.partition("-")
    return MetadataVersion(ordinal, level, release, sub)


# The KRaft-era versions follow the legacy ones in Kafka's enum, in level order.
VERSIONS: tuple[MetadataVersion, ...] = tuple(
    [_make(i, n, -1) for i, n in enumerate(_LEGACY)]
    + [
        MetadataVersion(len(_LEGACY) + i, int(level), level.release, level.sub_version)
        for i, level in enumerate(_levels.MetadataVersion)
    ]
)
_BY_NAME = {v.version: v for v in VERSIONS}
_BY_LEVEL = {v.feature_level: v for v in VERSIONS if v.is_kraft_supported}
LATEST_PRODUCTION = _BY_LEVEL[_levels.LATEST_PRODUCTION]
MINIMUM_BOOTSTRAP_VERSION = _BY_LEVEL[_levels.MINIMUM_BOOTSTRAP_VERSION]
# A bare release ("3.7") means its newest production sub-version, as in Kafka.
_BY_NAME.update({v.release: v for v in VERSIONS if v.ordinal <= LATEST_PRODUCTION.ordinal})


def parse_release_version(text: str) -> MetadataVersion:
    """Kafka's MetadataVersion.fromVersionString: ``3.9-IV0``, ``3.9`` or ``3.9.1``."""
    segments = text.split(".")
    width = 3 if text.startswith("0.") else 2
    key = text if width >= len(segments) else ".".join(segments[:width])
    found = _BY_NAME.get(key)
    if found is None:
        raise ReleaseVersionError(f"Version {text} is not a valid version")
    return found


def metadata_version_for_level(level: int) -> MetadataVersion:
    found = _BY_LEVEL.get(level)
    if found is None:
        raise ReleaseVersionError(f"No MetadataVersion with feature level {level}")
    return found


def resolve_release_version(text: str | None) -> MetadataVersion:
    """The version ``format`` bootstraps with, refused as Kafka 3.9's Formatter refuses it."""
    version = LATEST_PRODUCTION if text is None else parse_release_version(text)
    if not version.is_kraft_supported:
        raise ReleaseVersionError(f"{FEATURE_NAME} {version} is too old to be supported.")
    if not version.is_production:
        raise ReleaseVersionError(f"{FEATURE_NAME} {version} is not yet stable.")
    if version < MINIMUM_BOOTSTRAP_VERSION:
        raise ReleaseVersionError(
            f"Bootstrap {FEATURE_NAME} before {MINIMUM_BOOTSTRAP_VERSION} are not supported. "
            "Can't load metadata from format command"
        )
    return version
