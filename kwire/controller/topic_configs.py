"""Topic configuration: the topic config names, types, defaults and validation of Kafka
3.9.0's and Kafka 4.3.1's LogConfig, and the effective configs a CreateTopics response
reports.

:func:`topic_config_defs` picks the table by metadata.version level: up to 3.9-IV0 (21)
Kafka 3.9.0's, from 4.0-IV0 (22) Kafka 4.3.1's, which drops message.downconversion.enable,
message.format.version and message.timestamp.difference.max.ms (KIP-724, KIP-937), raises
segment.bytes' minimum to 1 MiB, defaults message.timestamp.after.max.ms to one hour
(KIP-1028), refuses duplicated or empty cleanup.policy entries (ConfigDef.ValidList) and
knows the internal ``internal.segment.bytes`` (accepted, listed only where set).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum

from kwire.controller.api_error import ApiError
from kwire.protocol.error_codes import ErrorCode

_LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1


class ConfigSource(IntEnum):
    """DescribeConfigsResponse's ConfigSource ids."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class ConfigType(Enum):
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    LIST = "LIST"


Validator = Callable[[str, str], None]  # (name, value) -> raises ApiError


def _invalid(name: str, value: str, why: str) -> ApiError:
    return ApiError(
        ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {name}: {why}"
    )


def _at_least(minimum: float) -> Validator:
    def check(name: str, value: str) -> None:
        if float(value) < minimum:
            shown = int(minimum) if float(minimum).is_integer() else minimum
            raise _invalid(name, value, f"Value must be at least {shown}")

    return check


def _between(low: float, high: float) -> Validator:
    def check(name: str, value: str) -> None:
        number = float(value)
        if number < low:
            shown = int(low) if float(low).is_integer() else low
            raise _invalid(name, value, f"Value must be at least {shown}")
        if number > high:
            shown = int(high) if float(high).is_integer() else high
            raise _invalid(name, value, f"Value must be no more than {shown}")

    return check


def _level(low: int, high: int, default: int) -> Validator:
    # Compression levels: the codec's range, or its "default" sentinel.
    def check(name: str, value: str) -> None:
        if int(value) != default and not low <= int(value) <= high:
            raise _invalid(name, value, f"Value must be between {low} and {high}")

    return check


def _one_of(*choices: str) -> Validator:
    def check(name: str, value: str) -> None:
        if value not in choices:
            raise _invalid(name, value, f"String must be one of: {', '.join(choices)}")

    return check


def _list_of(*choices: str) -> Validator:
    def check(name: str, value: str) -> None:
        for item in (v.strip() for v in value.split(",") if v.strip()):
            if item not in choices:
                raise _invalid(name, item, f"String must be one of: {', '.join(choices)}")

    return check


def _java_list(value: str) -> list[str]:
    """ConfigDef.parseType for LIST: empty when blank, else split on commas with the
    whitespace around them (empty items kept)."""
    text = value.strip()
    return [] if not text else [item for item in re.split(r"\s*,\s*", text)]


def _valid_list_in(*choices: str) -> Validator:
    """Kafka 4.3.1's ConfigDef.ValidList.in: empty allowed, no duplicates, no empty item,
    each item one of ``choices`` (ConfigException messages)."""

    def check(name: str, value: str) -> None:
        items = _java_list(value)
        if len(set(items)) != len(items):
            raise ApiError(
                ErrorCode.INVALID_CONFIG, f"Configuration '{name}' values must not be duplicated."
            )
        for item in items:
            if not item:
                raise ApiError(
                    ErrorCode.INVALID_CONFIG, f"Configuration '{name}' values must not be empty."
                )
            if item not in choices:
                raise _invalid(name, item, f"String must be one of: {', '.join(choices)}")

    return check


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    name: str
    type: ConfigType
    default: str  # as Kafka reports it with a default broker configuration
    validator: Validator | None = None
    # ConfigDef.defineInternal: accepted, but listed only where a topic sets it.
    internal: bool = False


_T = ConfigType
# Kafka 3.9.0's LogConfig (metadata.version up to 3.9-IV0).
TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        TopicConfigDef("cleanup.policy", _T.LIST, "delete", _list_of("compact", "delete")),
        TopicConfigDef("compression.gzip.level", _T.INT, "-1", _level(1, 9, -1)),
        TopicConfigDef("compression.lz4.level", _T.INT, "9", _level(1, 17, 9)),
        TopicConfigDef(
            "compression.type",
            _T.STRING,
            "producer",
            _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        ),
        TopicConfigDef("compression.zstd.level", _T.INT, "3", _level(-131072, 22, 3)),
        TopicConfigDef("delete.retention.ms", _T.LONG, "86400000", _at_least(0)),
        TopicConfigDef("file.delete.delay.ms", _T.LONG, "60000", _at_least(0)),
        TopicConfigDef("flush.messages", _T.LONG, str(_LONG_MAX), _at_least(1)),
        TopicConfigDef("flush.ms", _T.LONG, str(_LONG_MAX), _at_least(0)),
        TopicConfigDef("follower.replication.throttled.replicas", _T.LIST, ""),
        TopicConfigDef("index.interval.bytes", _T.INT, "4096", _at_least(0)),
        TopicConfigDef("leader.replication.throttled.replicas", _T.LIST, ""),
        TopicConfigDef("local.retention.bytes", _T.LONG, "-2", _at_least(-2)),
        TopicConfigDef("local.retention.ms", _T.LONG, "-2", _at_least(-2)),
        TopicConfigDef("max.compaction.lag.ms", _T.LONG, str(_LONG_MAX), _at_least(1)),
        TopicConfigDef("max.message.bytes", _T.INT, "1048588", _at_least(0)),
        TopicConfigDef("message.downconversion.enable", _T.BOOLEAN, "true"),
        TopicConfigDef("message.format.version", _T.STRING, "3.0-IV1"),
        TopicConfigDef("message.timestamp.after.max.ms", _T.LONG, str(_LONG_MAX), _at_least(0)),
        TopicConfigDef("message.timestamp.before.max.ms", _T.LONG, str(_LONG_MAX), _at_least(0)),
        TopicConfigDef(
            "message.timestamp.difference.max.ms", _T.LONG, str(_LONG_MAX), _at_least(0)
        ),
        TopicConfigDef(
            "message.timestamp.type",
            _T.STRING,
            "CreateTime",
            _one_of("CreateTime", "LogAppendTime"),
        ),
        TopicConfigDef("min.cleanable.dirty.ratio", _T.DOUBLE, "0.5", _between(0, 1)),
        TopicConfigDef("min.compaction.lag.ms", _T.LONG, "0", _at_least(0)),
        TopicConfigDef("min.insync.replicas", _T.INT, "1", _at_least(1)),
        TopicConfigDef("preallocate", _T.BOOLEAN, "false"),
        TopicConfigDef("remote.log.copy.disable", _T.BOOLEAN, "false"),
        TopicConfigDef("remote.log.delete.on.disable", _T.BOOLEAN, "false"),
        TopicConfigDef("remote.storage.enable", _T.BOOLEAN, "false"),
        TopicConfigDef("retention.bytes", _T.LONG, "-1"),
        TopicConfigDef("retention.ms", _T.LONG, "604800000", _at_least(-1)),
        # LegacyRecord.RECORD_OVERHEAD_V0 is the smallest segment Kafka accepts.
        TopicConfigDef("segment.bytes", _T.INT, "1073741824", _at_least(14)),
        TopicConfigDef("segment.index.bytes", _T.INT, "10485760", _at_least(4)),
        TopicConfigDef("segment.jitter.ms", _T.LONG, "0", _at_least(0)),
        TopicConfigDef("segment.ms", _T.LONG, "604800000", _at_least(1)),
        TopicConfigDef("unclean.leader.election.enable", _T.BOOLEAN, "false"),
    )
}
TOPIC_CONFIGS_3_9 = TOPIC_CONFIGS

# Kafka 4.3.1's LogConfig: 3.9's less three, with these changes.
REMOVED_IN_4_0 = (
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
)
_CHANGED_IN_4_X = (
    TopicConfigDef("cleanup.policy", _T.LIST, "delete", _valid_list_in("compact", "delete")),
    TopicConfigDef("message.timestamp.after.max.ms", _T.LONG, "3600000", _at_least(0)),
    TopicConfigDef("segment.bytes", _T.INT, "1073741824", _at_least(1024 * 1024)),
    TopicConfigDef("internal.segment.bytes", _T.INT, "", internal=True),
)
TOPIC_CONFIGS_4_3: dict[str, TopicConfigDef] = {
    name: definition
    for name, definition in sorted(
        (
            {n: d for n, d in TOPIC_CONFIGS_3_9.items() if n not in REMOVED_IN_4_0}
            | {d.name: d for d in _CHANGED_IN_4_X}
        ).items()
    )
}
_FIRST_4_X_LEVEL = 22  # 4.0-IV0


def topic_config_defs(level: int) -> dict[str, TopicConfigDef]:
    """LogConfig's definitions at this metadata.version level: Kafka 3.9.0's up to
    3.9-IV0 (21), Kafka 4.3.1's from 4.0-IV0 (22)."""
    return TOPIC_CONFIGS_4_3 if level >= _FIRST_4_X_LEVEL else TOPIC_CONFIGS_3_9


def _parse(definition: TopicConfigDef, value: str) -> None:
    name, text = definition.name, value.strip()
    if definition.type is ConfigType.BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise _invalid(name, value, "Expected value to be either true or false")
    elif definition.type in (ConfigType.INT, ConfigType.LONG):
        limit = _INT_MAX if definition.type is ConfigType.INT else _LONG_MAX
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or not -limit - 1 <= number <= limit:
            raise _invalid(name, value, f"Not a number of type {definition.type.value}")
    elif definition.type is ConfigType.DOUBLE:
        try:
            float(text)
        except ValueError:
            raise _invalid(name, value, "Not a number of type DOUBLE") from None
    if definition.validator is not None:
        definition.validator(name, text)


def validate_topic_configs(configs: Mapping[str, str], level: int = 21) -> None:
    """Raise INVALID_CONFIG for unknown names or bad values, as LogConfig.validate does
    (the release line's LogConfig at this metadata.version level)."""
    defs = topic_config_defs(level)
    for name in configs:
        if name not in defs:
            raise ApiError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
    for name, value in configs.items():
        _parse(defs[name], value)


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    name: str
    value: str
    source: ConfigSource
    read_only: bool = False
    sensitive: bool = False


Inherited = Callable[[str], tuple[str, ConfigSource] | None]


def effective_topic_configs(
    topic_configs: Mapping[str, str],
    static_defaults: Mapping[str, str],
    *,
    level: int = 21,
    inherited: Inherited | None = None,
) -> list[EffectiveConfig]:
    """Every topic config of the level's LogConfig, sorted by name, with the value that
    applies and where it came from (KafkaConfigSchema.resolveEffectiveTopicConfigs): the
    topic itself; else what ``inherited`` finds for it in the broker configs (dynamic for
    this node, then cluster-wide, then static, through the topic config's synonyms); else
    ``static_defaults`` (keyed by topic config name); else LogConfig's default. An
    internal config is listed only when the topic sets it."""
    result = []
    defs = topic_config_defs(level)
    for name in sorted(defs):
        definition = defs[name]
        found = None if inherited is None else inherited(name)
        if name in topic_configs:
            result.append(EffectiveConfig(name, topic_configs[name], ConfigSource.TOPIC_CONFIG))
        elif definition.internal:
            continue
        elif found is not None and found[1] != ConfigSource.STATIC_BROKER_CONFIG:
            result.append(EffectiveConfig(name, found[0], found[1]))
        elif name in static_defaults:
            result.append(
                EffectiveConfig(name, static_defaults[name], ConfigSource.STATIC_BROKER_CONFIG)
            )
        elif found is not None:
            result.append(EffectiveConfig(name, found[0], found[1]))
        else:
            result.append(EffectiveConfig(name, definition.default, ConfigSource.DEFAULT_CONFIG))
    return result


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def java_hash_map_order(keys: Iterable[str]) -> list[str]:
    """The order a java.util.HashMap<String, _> iterates keys inserted in this order.

    Kafka builds the ConfigRecords of a new topic from such a map, so their order in the
    log follows it. Buckets are visited in index order; keys sharing a bucket keep their
    insertion order (tree bins, used past 8 collisions, are not modelled).
    """
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(unique, key=bucket)  # sorted() is stable: ties keep insertion order
