"""The GROUP config resource (ConfigResource type 32) as Kafka 4.3.1's controller checks it.

Follows GroupConfig.validate (group-coordinator), called by ControllerConfigurationValidator
for GROUP resources at metadata.version 4.0-IV0 and above (kwire keeps Kafka 3.9.0's
behaviour below, where type 32 is unknown):

- the name must not be empty: INVALID_REQUEST "Default group resources are not allowed.";
- a null value: INVALID_CONFIG "Null value not supported for group configs: k1,k2";
- every name must be a GroupConfig name: INVALID_CONFIG "Unknown group config name: K";
- every value must parse as its type and pass its ConfigDef validator (INVALID_CONFIG
  "Invalid value V for configuration K: ...");
- then each value against the broker-level bounds, in GroupConfig.validateValues' order
  (INVALID_CONFIG "K must be greater than or equal to group.X.min..." / "less than or
  equal to group.X.max..."), the assignment intervals only where the group sets them, and
  last each session timeout must exceed its heartbeat interval.

The values checked are the group's configs over the broker's group defaults
(GroupCoordinatorConfig.extractGroupConfigMap); the bounds and defaults are the broker
configs (group.consumer.*, group.share.*, group.streams.*) as this node resolves them,
Kafka 4.3.1's defaults otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kwire.controller.api_error import ApiError
from kwire.controller.topic_configs import ConfigType, TopicConfigDef, _at_least, _one_of, _parse
from kwire.protocol.error_codes import ErrorCode

_T = ConfigType

# GroupConfig.CONFIG_DEF: name -> (type, default, validator); defaults are Kafka 4.3.1's.
GROUP_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        TopicConfigDef("consumer.session.timeout.ms", _T.INT, "45000", _at_least(1)),
        TopicConfigDef("consumer.heartbeat.interval.ms", _T.INT, "5000", _at_least(1)),
        TopicConfigDef("consumer.assignment.interval.ms", _T.INT, "1000", _at_least(0)),
        TopicConfigDef("share.session.timeout.ms", _T.INT, "45000", _at_least(1)),
        TopicConfigDef("share.heartbeat.interval.ms", _T.INT, "5000", _at_least(1)),
        TopicConfigDef("share.record.lock.duration.ms", _T.INT, "30000", _at_least(1000)),
        TopicConfigDef("share.delivery.count.limit", _T.INT, "5", _at_least(2)),
        TopicConfigDef("share.partition.max.record.locks", _T.INT, "2000", _at_least(100)),
        TopicConfigDef("share.auto.offset.reset", _T.STRING, "latest", None),
        TopicConfigDef(
            "share.isolation.level",
            _T.STRING,
            "read_uncommitted",
            _one_of("read_committed", "read_uncommitted"),
        ),
        TopicConfigDef("share.renew.acknowledge.enable", _T.BOOLEAN, "true"),
        TopicConfigDef("share.assignment.interval.ms", _T.INT, "1000", _at_least(0)),
        TopicConfigDef("streams.session.timeout.ms", _T.INT, "45000", _at_least(1)),
        TopicConfigDef("streams.heartbeat.interval.ms", _T.INT, "5000", _at_least(1)),
        TopicConfigDef("streams.num.standby.replicas", _T.INT, "0", _at_least(0)),
        TopicConfigDef("streams.initial.rebalance.delay.ms", _T.INT, "3000", _at_least(0)),
        TopicConfigDef("streams.assignment.interval.ms", _T.INT, "1000", _at_least(0)),
    )
}

# The broker configs GroupCoordinatorConfig.extractGroupConfigMap copies under each
# group config name (the group's defaults).
_BROKER_DEFAULTS = {
    "consumer.session.timeout.ms": "group.consumer.session.timeout.ms",
    "consumer.heartbeat.interval.ms": "group.consumer.heartbeat.interval.ms",
    "share.session.timeout.ms": "group.share.session.timeout.ms",
    "share.heartbeat.interval.ms": "group.share.heartbeat.interval.ms",
    "share.record.lock.duration.ms": "group.share.record.lock.duration.ms",
    "share.delivery.count.limit": "group.share.delivery.count.limit",
    "share.partition.max.record.locks": "group.share.partition.max.record.locks",
    "streams.session.timeout.ms": "group.streams.session.timeout.ms",
    "streams.heartbeat.interval.ms": "group.streams.heartbeat.interval.ms",
    "streams.num.standby.replicas": "group.streams.num.standby.replicas",
    "streams.initial.rebalance.delay.ms": "group.streams.initial.rebalance.delay.ms",
}

# GroupConfig.ALL_GROUP_CONFIG_SYNONYMS: the broker config each group config defaults to.
GROUP_BROKER_SYNONYMS = {
    **_BROKER_DEFAULTS,
    "consumer.assignment.interval.ms": "group.consumer.assignment.interval.ms",
    "share.assignment.interval.ms": "group.share.assignment.interval.ms",
    "streams.assignment.interval.ms": "group.streams.assignment.interval.ms",
}
_BROKER_DEFAULTS_ALSO = {
    "group.consumer.assignment.interval.ms": 1000,
    "group.share.assignment.interval.ms": 1000,
    "group.streams.assignment.interval.ms": 1000,
}

# Kafka 4.3.1's defaults of the broker configs read here (GroupCoordinatorConfig,
# ShareGroupConfig).
BROKER_GROUP_DEFAULTS: dict[str, int] = {
    "group.consumer.session.timeout.ms": 45000,
    "group.consumer.min.session.timeout.ms": 45000,
    "group.consumer.max.session.timeout.ms": 60000,
    "group.consumer.heartbeat.interval.ms": 5000,
    "group.consumer.min.heartbeat.interval.ms": 5000,
    "group.consumer.max.heartbeat.interval.ms": 15000,
    "group.consumer.min.assignment.interval.ms": 0,
    "group.consumer.max.assignment.interval.ms": 15000,
    "group.share.session.timeout.ms": 45000,
    "group.share.min.session.timeout.ms": 45000,
    "group.share.max.session.timeout.ms": 60000,
    "group.share.heartbeat.interval.ms": 5000,
    "group.share.min.heartbeat.interval.ms": 5000,
    "group.share.max.heartbeat.interval.ms": 15000,
    "group.share.min.assignment.interval.ms": 0,
    "group.share.max.assignment.interval.ms": 15000,
    "group.share.record.lock.duration.ms": 30000,
    "group.share.min.record.lock.duration.ms": 15000,
    "group.share.max.record.lock.duration.ms": 60000,
    "group.share.delivery.count.limit": 5,
    "group.share.min.delivery.count.limit": 2,
    "group.share.max.delivery.count.limit": 10,
    "group.share.partition.max.record.locks": 2000,
    "group.share.min.partition.max.record.locks": 100,
    "group.share.max.partition.max.record.locks": 4000,
    "group.streams.session.timeout.ms": 45000,
    "group.streams.min.session.timeout.ms": 45000,
    "group.streams.max.session.timeout.ms": 60000,
    "group.streams.heartbeat.interval.ms": 5000,
    "group.streams.min.heartbeat.interval.ms": 5000,
    "group.streams.max.heartbeat.interval.ms": 15000,
    "group.streams.num.standby.replicas": 0,
    "group.streams.max.standby.replicas": 2,
    "group.streams.initial.rebalance.delay.ms": 3000,
    "group.streams.min.assignment.interval.ms": 0,
    "group.streams.max.assignment.interval.ms": 15000,
    **_BROKER_DEFAULTS_ALSO,
}


@dataclass(frozen=True, slots=True)
class _Bound:
    """One check of GroupConfig.validateValues: ``config`` within the broker configs
    ``low``/``high`` (None: that side is not checked); ``only_if_set``: checked only when
    the group sets it (the assignment intervals)."""

    config: str
    low: str | None
    high: str | None
    only_if_set: bool = False


def _range(config: str, prefix: str, what: str, only_if_set: bool = False) -> _Bound:
    return _Bound(config, f"{prefix}.min.{what}", f"{prefix}.max.{what}", only_if_set)


# In GroupConfig.validateValues' order.
_BOUNDS = (
    _range("consumer.heartbeat.interval.ms", "group.consumer", "heartbeat.interval.ms"),
    _range("consumer.session.timeout.ms", "group.consumer", "session.timeout.ms"),
    _range("consumer.assignment.interval.ms", "group.consumer", "assignment.interval.ms", True),
    _range("share.heartbeat.interval.ms", "group.share", "heartbeat.interval.ms"),
    _range("share.session.timeout.ms", "group.share", "session.timeout.ms"),
    _range("share.record.lock.duration.ms", "group.share", "record.lock.duration.ms"),
    _range("share.delivery.count.limit", "group.share", "delivery.count.limit"),
    _range("share.partition.max.record.locks", "group.share", "partition.max.record.locks"),
    _range("share.assignment.interval.ms", "group.share", "assignment.interval.ms", True),
    _range("streams.heartbeat.interval.ms", "group.streams", "heartbeat.interval.ms"),
    _range("streams.session.timeout.ms", "group.streams", "session.timeout.ms"),
    _Bound("streams.num.standby.replicas", None, "group.streams.max.standby.replicas"),
    _range("streams.assignment.interval.ms", "group.streams", "assignment.interval.ms", True),
)
_SESSION_OVER_HEARTBEAT = (
    ("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"),
    ("share.session.timeout.ms", "share.heartbeat.interval.ms"),
    ("streams.session.timeout.ms", "streams.heartbeat.interval.ms"),
)
_SHARE_RESETS = ("earliest", "latest")


def _invalid(message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_CONFIG, message)


def java_trim(text: str) -> str:
    """String.trim: drops leading and trailing characters up to U+0020 (not other Unicode
    spaces), as ConfigDef.parseType does to every value."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


# java.time.Duration.parse's grammar: PnDTnHnMn.nS, letters in either ASCII case, signs on
# the whole and on each number, a fraction of seconds of up to 9 digits after . or ,.
_ISO_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)D)?"
    r"(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?",
    re.IGNORECASE | re.ASCII,
)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def java_duration_seconds(text: str) -> int | None:
    """java.time.Duration.parse(text).getSeconds() (whole seconds, rounded toward minus
    infinity as Duration keeps them), or None where Java throws DateTimeParseException:
    no match, a ``T`` with no time after it, no component at all, or a value beyond a
    signed 64-bit second count (Math.multiplyExact/addExact overflow)."""
    match = _ISO_DURATION.fullmatch(text)
    if match is None or (match.group(3) or "").upper() == "T":
        return None
    negate, days, _, hours, minutes, seconds, fraction = match.groups()
    if days is None and hours is None and minutes is None and seconds is None:
        return None

    def in_long(value: int) -> bool:
        return _LONG_MIN <= value <= _LONG_MAX

    parts = []
    for number, unit in ((days, 86400), (hours, 3600), (minutes, 60), (seconds, 1)):
        value = int(number) if number is not None else 0
        if not in_long(value) or not in_long(value * unit):
            return None
        parts.append(value * unit)
    total = parts[3]
    for part in reversed(parts[:3]):  # days + (hours + (minutes + seconds))
        total += part
        if not in_long(total):
            return None
    nanos = int((fraction or "").ljust(9, "0"))
    if seconds is not None and seconds.startswith("-"):
        nanos = -nanos
    total += nanos // 1_000_000_000  # Duration.ofSeconds(seconds, nanos)
    nanos %= 1_000_000_000
    if negate == "-":  # Duration.negated()
        total = -total - 1 if nanos else -total
    return total if in_long(total) else None


def _check_auto_offset_reset(value: str) -> None:
    """ShareGroupAutoOffsetResetStrategy.Validator over AutoOffsetResetStrategy.fromString
    (Kafka 4.3.1): after ConfigDef's trim, exactly ``earliest``, ``latest`` or
    ``by_duration:`` and a java.time.Duration that parses and is not negative (case
    matters: ``LATEST`` is refused; ``none`` is a consumer strategy, not a share one)."""
    text = java_trim(value)
    if text in _SHARE_RESETS:
        return
    if text.startswith("by_duration:"):
        seconds = java_duration_seconds(text.removeprefix("by_duration:"))
        if seconds is not None and seconds >= 0:
            return
    name = "share.auto.offset.reset"
    raise _invalid(
        f"Invalid value {text} for configuration {name}: Invalid value `{text}` for "
        f"configuration {name}. The value must be either 'earliest', 'latest' or of the "
        "format 'by_duration:<PnDTnHnMn.nS>'."
    )


def validate_group_configs(
    name: str, configs: Mapping[str, str | None], broker: Callable[[str], str | None]
) -> None:
    """ControllerConfigurationValidator's GROUP case then GroupConfig.validate; ``configs``
    are the group's configs after the change, ``broker`` resolves a broker config (None:
    unset). Raises ApiError (see the module docstring)."""
    if not name:
        raise ApiError(ErrorCode.INVALID_REQUEST, "Default group resources are not allowed.")
    nulls = [key for key, value in configs.items() if value is None]
    if nulls:
        raise _invalid("Null value not supported for group configs: " + ",".join(nulls))

    def broker_int(key: str) -> int:
        raw = broker(key)
        try:
            return int(raw.strip()) if raw is not None else BROKER_GROUP_DEFAULTS[key]
        except ValueError:
            return BROKER_GROUP_DEFAULTS[key]

    combined: dict[str, str] = {
        config: str(broker_int(key)) for config, key in _BROKER_DEFAULTS.items()
    }
    combined.update({k: v for k, v in configs.items() if v is not None})
    for key in combined:
        if key not in GROUP_CONFIGS:
            raise _invalid(f"Unknown group config name: {key}")
    values: dict[str, int] = {}
    for key, definition in GROUP_CONFIGS.items():
        value = combined.get(key, definition.default)
        _parse(definition, value)
        if key == "share.auto.offset.reset":
            _check_auto_offset_reset(value)
        if definition.type is ConfigType.INT:
            values[key] = int(value.strip())
    for bound in _BOUNDS:
        if bound.only_if_set and bound.config not in configs:
            continue
        number = values[bound.config]
        if bound.low is not None and number < broker_int(bound.low):
            raise _invalid(f"{bound.config} must be greater than or equal to {bound.low}")
        if bound.high is not None and number > broker_int(bound.high):
            raise _invalid(f"{bound.config} must be less than or equal to {bound.high}")
    for session, heartbeat in _SESSION_OVER_HEARTBEAT:
        if values[session] <= values[heartbeat]:
            raise _invalid(f"{session} must be greater than {heartbeat}")
