"""Kafka's config definitions as the controller's DescribeConfigs reports them.

Broker configs (KafkaConfig) come from ``broker_config_table``: Kafka 3.9.0's (generated
from a genuine answer) up to 3.9-IV0, Kafka 4.3.1's (3.9's plus the delta of the two
releases' definitions) at 4.x levels (:func:`broker_config_table`); topic configs (LogConfig) from ``topic_configs``. Here: the synonyms that link a
topic config to the broker configs that default it (ServerTopicConfigSynonyms) and a
broker config to its alternative spellings (DynamicBrokerConfig.brokerConfigSynonyms),
which broker configs can be set per broker only, how a value is shown
(ConfigDef.convertToString), and the order Kafka lists configs in (a Scala HashMap's).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from enum import IntEnum

from kwire.controller.broker_config_table import BROKER_CONFIG_TABLE, BROKER_CONFIG_TABLE_4_3
from kwire.controller.topic_configs import (
    ConfigSource,
    ConfigType,
    java_string_hash,
    topic_config_defs,
)


class ResponseConfigType(IntEnum):
    """DescribeConfigsResponse.ConfigType ids."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


TOPIC_TYPE_IDS = {
    ConfigType.BOOLEAN: ResponseConfigType.BOOLEAN,
    ConfigType.INT: ResponseConfigType.INT,
    ConfigType.LONG: ResponseConfigType.LONG,
    ConfigType.DOUBLE: ResponseConfigType.DOUBLE,
    ConfigType.STRING: ResponseConfigType.STRING,
    ConfigType.LIST: ResponseConfigType.LIST,
}

_HOURS = 3_600_000
_MINUTES = 60_000

# Topic config -> the broker configs that give its default, first match wins, each with
# the factor that turns its value into the topic config's unit
# (ServerTopicConfigSynonyms.ALL_TOPIC_CONFIG_SYNONYMS).
TOPIC_CONFIG_SYNONYMS: dict[str, tuple[tuple[str, int], ...]] = {
    "segment.bytes": (("log.segment.bytes", 1),),
    "segment.ms": (("log.roll.ms", 1), ("log.roll.hours", _HOURS)),
    "segment.jitter.ms": (("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", _HOURS)),
    "segment.index.bytes": (("log.index.size.max.bytes", 1),),
    "flush.messages": (("log.flush.interval.messages", 1),),
    "flush.ms": (("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)),
    "retention.bytes": (("log.retention.bytes", 1),),
    "retention.ms": (
        ("log.retention.ms", 1),
        ("log.retention.minutes", _MINUTES),
        ("log.retention.hours", _HOURS),
    ),
    "max.message.bytes": (("message.max.bytes", 1),),
    "index.interval.bytes": (("log.index.interval.bytes", 1),),
    "delete.retention.ms": (("log.cleaner.delete.retention.ms", 1),),
    "min.compaction.lag.ms": (("log.cleaner.min.compaction.lag.ms", 1),),
    "max.compaction.lag.ms": (("log.cleaner.max.compaction.lag.ms", 1),),
    "file.delete.delay.ms": (("log.segment.delete.delay.ms", 1),),
    "min.cleanable.dirty.ratio": (("log.cleaner.min.cleanable.ratio", 1),),
    "cleanup.policy": (("log.cleanup.policy", 1),),
    "unclean.leader.election.enable": (("unclean.leader.election.enable", 1),),
    "min.insync.replicas": (("min.insync.replicas", 1),),
    "compression.type": (("compression.type", 1),),
    "compression.gzip.level": (("compression.gzip.level", 1),),
    "compression.lz4.level": (("compression.lz4.level", 1),),
    "compression.zstd.level": (("compression.zstd.level", 1),),
    "preallocate": (("log.preallocate", 1),),
    "message.format.version": (("log.message.format.version", 1),),
    "message.timestamp.type": (("log.message.timestamp.type", 1),),
    "message.timestamp.difference.max.ms": (("log.message.timestamp.difference.max.ms", 1),),
    "message.timestamp.before.max.ms": (("log.message.timestamp.before.max.ms", 1),),
    "message.timestamp.after.max.ms": (("log.message.timestamp.after.max.ms", 1),),
    "message.downconversion.enable": (("log.message.downconversion.enable", 1),),
    "local.retention.ms": (("log.local.retention.ms", 1),),
    "local.retention.bytes": (("log.local.retention.bytes", 1),),
}

_LISTENER_CONFIG = re.compile(r"listener\.name\.[^.]*\.(.*)")

# SslConfigs.RECONFIGURABLE_CONFIGS: settable only with a listener prefix.
DYNAMIC_SECURITY_CONFIGS = frozenset(
    {
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
        "ssl.truststore.certificates",
    }
)
# DynamicListenerConfig.ReconfigurableConfigs.
_LISTENER_RECONFIGURABLE = frozenset(
    {
        "advertised.listeners",
        "listeners",
        "listener.security.protocol.map",
        "principal.builder.class",
        "ssl.protocol",
        "ssl.provider",
        "ssl.cipher.suites",
        "ssl.enabled.protocols",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.endpoint.identification.algorithm",
        "ssl.secure.random.implementation",
        "ssl.client.auth",
        "ssl.engine.factory.class",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.jaas.config",
        "sasl.enabled.mechanisms",
        "sasl.kerberos.service.name",
        "sasl.kerberos.kinit.cmd",
        "sasl.kerberos.ticket.renew.window.factor",
        "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.min.time.before.relogin",
        "sasl.kerberos.principal.to.local.rules",
        "sasl.login.refresh.window.factor",
        "sasl.login.refresh.window.jitter",
        "sasl.login.refresh.min.period.seconds",
        "sasl.login.refresh.buffer.seconds",
        "max.connections",
        "max.connection.creation.rate",
        "num.network.threads",
    }
    | DYNAMIC_SECURITY_CONFIGS
)
_CLUSTER_LEVEL_LISTENER_CONFIGS = frozenset(
    {"max.connections", "max.connection.creation.rate", "num.network.threads"}
)
PER_BROKER_CONFIGS = _LISTENER_RECONFIGURABLE - _CLUSTER_LEVEL_LISTENER_CONFIGS
# Kafka 4.3.1's DynamicBrokerConfig.PER_BROKER_CONFIGS adds cordoned.log.dirs.
PER_BROKER_CONFIGS_4_3 = PER_BROKER_CONFIGS | {"cordoned.log.dirs"}
# Set per listener and SASL mechanism: listener.name.<l>.<mechanism>.<config>.
_LISTENER_MECHANISM_CONFIGS = (
    "sasl.jaas.config",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.server.callback.handler.class",
    "connections.max.reauth.ms",
)


def inherited_topic_default(
    node: Mapping[str, str], cluster: Mapping[str, str], static: Mapping[str, str]
) -> Callable[[str], tuple[str, ConfigSource] | None]:
    """KafkaConfigSchema.resolveEffectiveTopicConfig below the topic's own configs: the
    first synonym (ServerTopicConfigSynonyms order) in this node's dynamic broker configs
    (DYNAMIC_BROKER_CONFIG), else in the cluster-wide ones (DYNAMIC_DEFAULT_BROKER_CONFIG),
    else in the static configuration (STATIC_BROKER_CONFIG); hours and minutes converted
    to milliseconds. None: LogConfig's default applies."""

    def lookup(name: str) -> tuple[str, ConfigSource] | None:
        synonyms = TOPIC_CONFIG_SYNONYMS.get(name, ())
        for layer, source in (
            (node, ConfigSource.DYNAMIC_BROKER_CONFIG),
            (cluster, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            (static, ConfigSource.STATIC_BROKER_CONFIG),
        ):
            for synonym, factor in synonyms:
                if synonym in layer:
                    value = layer[synonym]
                    if factor != 1:
                        with contextlib.suppress(ValueError):
                            value = str(int(value.strip()) * factor)
                    return value, source
        return None

    return lookup


BrokerConfigRow = tuple[int, str | None, bool, bool]
_FIRST_4_X_LEVEL = 22  # 4.0-IV0 (config_levels.FIRST_4_X_LEVEL, which imports this module)


def broker_config_table(level: int = 21) -> Mapping[str, BrokerConfigRow]:
    """KafkaConfig's definitions at a metadata.version level: name -> (type id, default,
    read-only, sensitive). Kafka 3.9.0's up to 3.9-IV0 (21), Kafka 4.3.1's at 4.x levels
    (AbstractKafkaConfig.CONFIG_DEF and DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS)."""
    return BROKER_CONFIG_TABLE_4_3 if level >= _FIRST_4_X_LEVEL else BROKER_CONFIG_TABLE


def broker_config_type(name: str, level: int = 21) -> ResponseConfigType:
    """KafkaConfig.configType: a listener-prefixed name has its base config's type."""
    table = broker_config_table(level)
    row = table.get(name)
    if row is None and (match := _LISTENER_CONFIG.fullmatch(name)) is not None:
        base = match.group(1)
        row = table.get(base) or table.get(base.split(".", 1)[-1])
    return ResponseConfigType.UNKNOWN if row is None else ResponseConfigType(row[0])


def is_sensitive(config_type: ResponseConfigType) -> bool:
    """KafkaConfig.maybeSensitive: passwords, and every config of unknown type."""
    return config_type in (ResponseConfigType.PASSWORD, ResponseConfigType.UNKNOWN)


def is_dynamic_broker_config(name: str, level: int = 21) -> bool:
    """In DynamicBrokerConfig.AllDynamicConfigs (or a name Kafka does not define, which
    it keeps as given)."""
    row = broker_config_table(level).get(name)
    return row is None or not row[2]


def broker_default(name: str, level: int = 21) -> str | None:
    row = broker_config_table(level).get(name)
    return None if row is None else row[1]


def is_list_broker_config(name: str, level: int = 21) -> bool:
    """KafkaConfigSchema.isSplittable for a BROKER config: a LIST config KafkaConfig
    defines (an unknown name is not)."""
    row = broker_config_table(level).get(name)
    return row is not None and row[0] == ResponseConfigType.LIST


def broker_config_synonyms(name: str) -> list[str]:
    """DynamicBrokerConfig.brokerConfigSynonyms(name, matchListenerOverride=true)."""
    for group in (
        ("log.roll.ms", "log.roll.hours"),
        ("log.roll.jitter.ms", "log.roll.jitter.hours"),
        ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    ):
        if name in group:
            return list(group)
    if name == "log.flush.interval.ms":
        return ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
    if (match := _LISTENER_CONFIG.fullmatch(name)) is not None:
        base = match.group(1)
        mechanism = next((m for m in _LISTENER_MECHANISM_CONFIGS if base.endswith(m)), base)
        return [name, mechanism]
    return [name]


def persistent_dynamic_configs(
    configs: dict[str, str], *, per_broker: bool, level: int = 21
) -> dict[str, str]:
    """What DynamicBrokerConfig.fromPersistentProps keeps of the dynamic configs in the
    log: not read-only ones, not security configs without a listener prefix, and at the
    cluster-wide default not per-broker ones (Kafka 4.3.1 adds cordoned.log.dirs to those)."""
    per_broker_names = PER_BROKER_CONFIGS_4_3 if level >= _FIRST_4_X_LEVEL else PER_BROKER_CONFIGS
    kept = {}
    for name, value in configs.items():
        if not is_dynamic_broker_config(name, level) or name in DYNAMIC_SECURITY_CONFIGS:
            continue
        if not per_broker:
            match = _LISTENER_CONFIG.fullmatch(name)
            if name in per_broker_names or (
                match is not None and match.group(1) not in _CLUSTER_LEVEL_LISTENER_CONFIGS
            ):
                continue
        kept[name] = value
    return kept


def _java_double(value: float) -> str:
    # Double.toString for the values configs take (plain decimals, not NaN/huge).
    text = repr(float(value))
    if "e" in text or "E" in text:
        mantissa, exponent = text.lower().split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}E{int(exponent)}"
    return text


def show_value(config_type: ResponseConfigType, value: str | None) -> str | None:
    """The value as Kafka shows it after parsing (ConfigDef.parse then convertToString):
    trimmed, lists joined by ',', numbers and booleans canonical. A value that does not
    parse is shown as given."""
    if value is None:
        return None
    text = value.strip()
    try:
        match config_type:
            case ResponseConfigType.BOOLEAN:
                return text.lower() if text.lower() in ("true", "false") else value
            case ResponseConfigType.INT | ResponseConfigType.LONG | ResponseConfigType.SHORT:
                return str(int(text))
            case ResponseConfigType.DOUBLE:
                return _java_double(float(text))
            case ResponseConfigType.LIST:
                return ",".join(item.strip() for item in text.split(",")) if text else ""
            case ResponseConfigType.UNKNOWN:
                return value
            case _:
                return text
    except ValueError:
        return value


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def java_parse_int(text: str) -> int | None:
    """Integer.parseInt: an optional sign and decimal digits, within 32 bits; else None."""
    if not _JAVA_INT.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**31) <= number < 2**31 else None


def topic_config_type(name: str, level: int = 21) -> ResponseConfigType:
    definition = topic_config_defs(level).get(name)
    return ResponseConfigType.UNKNOWN if definition is None else TOPIC_TYPE_IDS[definition.type]


def scala_hash_map_order(keys: list[str]) -> list[str]:
    """The order a Scala 2.13 mutable.HashMap[String, _] built from ``keys`` iterates.

    Kafka's ConfigHelper lists a resource's configs from such a map. Its table starts at
    16 buckets and doubles before an insertion would reach 3/4 full; a key's bucket is
    its improved hash (h ^ h >>> 16) masked by the table size, and each bucket is kept
    sorted by improved hash (as a signed int), ties in insertion order.
    """
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) >= capacity * 3 // 4:
        capacity *= 2

    def improved(key: str) -> int:
        h = java_string_hash(key) & 0xFFFFFFFF
        v = h ^ (h >> 16)
        return v - (1 << 32) if v >= 1 << 31 else v

    return sorted(unique, key=lambda k: (improved(k) & (capacity - 1), improved(k)))
