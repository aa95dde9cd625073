"""DescribeConfigs on the controller listener, as Kafka 3.9's ConfigHelper answers it there
(at 4.x levels Kafka 4.3.1's, with 4.3.1's broker config definitions).

The controller describes itself as a node: BROKER with its own id lists every broker config
(KafkaConfig) with its effective value, BROKER "" the cluster-wide dynamic defaults, TOPIC
every topic config (LogConfig) of an existing topic, CLIENT_METRICS a subscription's
configs, BROKER_LOGGER its own log levels. A value comes from the first layer that has it:
the node's dynamic configs (ConfigRecords for BROKER <id>), the cluster-wide dynamic
defaults (BROKER ""), the node's static configuration, Kafka's default. Only dynamic
configs count from the log (DynamicBrokerConfig.fromPersistentProps). Sensitive values
(passwords, and configs Kafka does not define) are never shown.

Errors per resource (ConfigHelper.describeConfigs): an illegal topic name is
INVALID_TOPIC_EXCEPTION, a missing topic UNKNOWN_TOPIC_OR_PARTITION, another node's id or a
non-numeric one INVALID_REQUEST; an unknown resource type fails the whole request with
INVALID_REQUEST. Documentation is not reported (None): kwire does not carry Kafka's texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kwire.controller.api_error import ApiError
from kwire.controller.broker_logger import current_loggers
from kwire.controller.config_definitions import (
    TOPIC_CONFIG_SYNONYMS,
    TOPIC_TYPE_IDS,
    ResponseConfigType,
    broker_config_synonyms,
    broker_config_table,
    broker_config_type,
    broker_default,
    is_sensitive,
    java_parse_int,
    persistent_dynamic_configs,
    scala_hash_map_order,
    show_value,
    topic_config_type,
)
from kwire.controller.config_levels import supported_configs
from kwire.controller.group_configs import (
    BROKER_GROUP_DEFAULTS,
    GROUP_BROKER_SYNONYMS,
    GROUP_CONFIGS,
)
from kwire.controller.image import ConfigResourceType, MetadataImage
from kwire.controller.replication import topic_name_problem
from kwire.controller.topic_configs import (
    ConfigSource,
    ConfigType,
    java_hash_map_order,
    topic_config_defs,
)
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)


def topic_type_id(config_type: ConfigType) -> ResponseConfigType:
    return TOPIC_TYPE_IDS[config_type]


Result = DescribeConfigsResponse.DescribeConfigsResult
Entry = DescribeConfigsResponse.DescribeConfigsResourceResult
Synonym = DescribeConfigsResponse.DescribeConfigsSynonym


@dataclass(frozen=True, slots=True)
class BrokerLayers:
    """Where a broker config's value can come from, highest priority first."""

    node: Mapping[str, str]  # DYNAMIC_BROKER_CONFIG: this node's dynamic configs
    cluster_default: Mapping[str, str]  # DYNAMIC_DEFAULT_BROKER_CONFIG
    static: Mapping[str, str]  # STATIC_BROKER_CONFIG: the node's configuration file
    level: int = 21  # metadata.version level: whose KafkaConfig defines the configs

    @classmethod
    def of(cls, image: MetadataImage, node_id: int, static: Mapping[str, str]) -> BrokerLayers:
        broker = ConfigResourceType.BROKER
        level = image.metadata_version_level
        return cls(
            node=persistent_dynamic_configs(
                image.configs.get((broker, str(node_id)), {}), per_broker=True, level=level
            ),
            cluster_default=persistent_dynamic_configs(
                image.configs.get((broker, ""), {}), per_broker=False, level=level
            ),
            static=static,
            level=level,
        )

    def configured(self, name: str) -> str | None:
        """The value a layer sets (dynamic for this node, dynamic default, static), or None."""
        for layer in (self.node, self.cluster_default, self.static):
            if name in layer:
                return layer[name]
        return None

    def value(self, name: str) -> str | None:
        configured = self.configured(name)
        return configured if configured is not None else broker_default(name, self.level)

    def synonyms(self, name: str, names: list[str], sensitive: bool) -> list[Synonym]:
        """ConfigHelper.configSynonyms: every layer holding one of ``names``, layer by
        layer, from the first that is ``name`` itself."""
        found = []
        defaults = {n: d for n in names if (d := broker_default(n, self.level)) is not None}
        for layer, source in (
            (self.node, ConfigSource.DYNAMIC_BROKER_CONFIG),
            (self.cluster_default, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            (self.static, ConfigSource.STATIC_BROKER_CONFIG),
            (defaults, ConfigSource.DEFAULT_CONFIG),
        ):
            for synonym in names:
                if synonym in layer:
                    value = None if sensitive else layer[synonym]
                    found.append(Synonym(name=synonym, value=value, source=source))
        while found and found[0].name != name:
            found.pop(0)
        return found


def describe_resource(
    image: MetadataImage,
    node_id: int,
    static: Mapping[str, str],
    resource: DescribeConfigsRequest.DescribeConfigsResource,
    include_synonyms: bool,
) -> Result:
    """The answer for one resource (its type already known to be describable)."""
    try:
        entries = _entries(image, node_id, static, resource, include_synonyms)
    except ApiError as e:
        return Result(
            error_code=e.code,
            error_message=e.message,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=[],
        )
    if entries is None:
        return Result(
            error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=[],
        )
    keys = resource.configuration_keys
    if keys:
        entries = [e for e in entries if e.name in keys]
    return Result(
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        configs=entries,
    )


def _entries(
    image: MetadataImage,
    node_id: int,
    static: Mapping[str, str],
    resource: DescribeConfigsRequest.DescribeConfigsResource,
    include_synonyms: bool,
) -> list[Entry] | None:
    name = resource.resource_name
    layers = BrokerLayers.of(image, node_id, static)
    match resource.resource_type:
        case ConfigResourceType.TOPIC:
            problem = topic_name_problem(name)
            if problem is not None:
                raise ApiError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {problem}"
                )
            if name not in image.topic_ids_by_name:
                return None
            level = image.metadata_version_level
            return topic_entries(
                layers,
                supported_configs(image, (ConfigResourceType.TOPIC, name)),
                include_synonyms,
                level,
            )
        case ConfigResourceType.BROKER:
            if not name:
                return cluster_default_entries(layers, include_synonyms)
            if _broker_id(name) != node_id:
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"Unexpected broker id, expected {node_id} or empty string, "
                    f"but received {name}",
                )
            return node_entries(layers, include_synonyms)
        case ConfigResourceType.BROKER_LOGGER:
            if not name:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Broker id must not be empty")
            if _broker_id(name) != node_id:
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"Unexpected broker id, expected {node_id} but received {name}",
                )
            levels = current_loggers()
            return [
                Entry(
                    name=logger,
                    value=levels[logger],
                    config_source=ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG,
                )
                for logger in scala_hash_map_order(list(levels))
            ]
        case ConfigResourceType.CLIENT_METRICS:
            if not name:
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    "Client metrics subscription name must not be empty",
                )
            configs = image.configs.get((ConfigResourceType.CLIENT_METRICS, name), {})
            return [
                Entry(
                    name=key,
                    value=configs[key],
                    config_source=ConfigSource.CLIENT_METRICS_CONFIG,
                )
                for key in java_hash_map_order(list(configs))
            ]
        case ConfigResourceType.GROUP:
            if not name:
                raise ApiError(ErrorCode.INVALID_REQUEST, "Group name must not be empty")
            return group_entries(
                layers, supported_configs(image, (ConfigResourceType.GROUP, name)), include_synonyms
            )
    raise AssertionError(f"resource type {resource.resource_type} is not describable")


def group_entries(
    layers: BrokerLayers, group_configs: Mapping[str, str], include_synonyms: bool
) -> list[Entry]:
    """Every GroupConfig of a group (Kafka 4.3.1's ConfigHelper.createGroupConfigEntry):
    the group's own value (GROUP_CONFIG), else its broker synonym's as this node resolves
    it (group.consumer.session.timeout.ms for consumer.session.timeout.ms, ...), else
    GroupConfig's default. Synonyms: the group's own, then the broker synonym's layers."""
    entries = []
    for name in scala_hash_map_order(sorted(GROUP_CONFIGS)):
        definition = GROUP_CONFIGS[name]
        config_type = topic_type_id(definition.type)
        broker_name = GROUP_BROKER_SYNONYMS.get(name)
        synonyms: list[Synonym] = []
        if broker_name is not None:
            # The broker config's default is Kafka 4.3.1's (GROUP configs exist only at 4.x
            # levels), not that of the 3.9.0 broker table (group.share.partition.max.record.locks:
            # 2000, not 200).
            synonyms = [
                s
                for s in layers.synonyms(broker_name, [broker_name], False)
                if s.source is not ConfigSource.DEFAULT_CONFIG
            ]
            default = BROKER_GROUP_DEFAULTS.get(broker_name)
            if default is not None:
                synonyms.append(
                    Synonym(
                        name=broker_name, value=str(default), source=ConfigSource.DEFAULT_CONFIG
                    )
                )
        else:
            synonyms = [
                Synonym(name=name, value=definition.default, source=ConfigSource.DEFAULT_CONFIG)
            ]
        if name in group_configs:
            value = show_value(config_type, group_configs[name])
            synonyms.insert(0, Synonym(name=name, value=value, source=ConfigSource.GROUP_CONFIG))
        else:
            value = synonyms[0].value if synonyms else definition.default
        entries.append(_entry(name, value, synonyms, include_synonyms, config_type))
    return entries


def _entry(
    name: str,
    value: str | None,
    synonyms: list[Synonym],
    include_synonyms: bool,
    config_type: int,
) -> Entry:
    """A topic's or group's entry: its source is its first synonym's (the most specific)."""
    return Entry(
        name=name,
        value=value,
        read_only=False,
        config_source=synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG,
        is_sensitive=False,
        synonyms=synonyms if include_synonyms else [],
        config_type=config_type,
        documentation=None,
    )


def _broker_id(name: str) -> int:
    number = java_parse_int(name)
    if number is None:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}"
        )
    return number


def node_entries(layers: BrokerLayers, include_synonyms: bool) -> list[Entry]:
    """Every broker config of this node (ConfigHelper.allConfigs of its KafkaConfig)."""
    table = broker_config_table(layers.level)
    names = [*layers.static, *layers.cluster_default, *layers.node, *sorted(table)]
    entries = []
    for name in scala_hash_map_order(names):
        config_type = broker_config_type(name, layers.level)
        sensitive = is_sensitive(config_type)
        value = None if sensitive else show_value(config_type, layers.value(name))
        synonyms = layers.synonyms(name, broker_config_synonyms(name), sensitive)
        entries.append(
            _broker_entry(name, value, config_type, synonyms, include_synonyms, layers.level)
        )
    return entries


def cluster_default_entries(layers: BrokerLayers, include_synonyms: bool) -> list[Entry]:
    """The cluster-wide dynamic defaults, their values as written."""
    entries = []
    for name in scala_hash_map_order(list(layers.cluster_default)):
        config_type = broker_config_type(name, layers.level)
        sensitive = is_sensitive(config_type)
        value = None if sensitive else layers.cluster_default[name]
        synonyms = [
            s
            for s in layers.synonyms(name, broker_config_synonyms(name), sensitive)
            if s.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
        ]
        entries.append(
            _broker_entry(name, value, config_type, synonyms, include_synonyms, layers.level)
        )
    return entries


def _broker_entry(
    name: str,
    value: str | None,
    config_type: ResponseConfigType,
    synonyms: list[Synonym],
    include_synonyms: bool,
    level: int,
) -> Entry:
    row = broker_config_table(level).get(name)
    return Entry(
        name=name,
        value=value,
        read_only=row is None or row[2],
        config_source=synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG,
        is_sensitive=is_sensitive(config_type),
        synonyms=synonyms if include_synonyms else [],
        config_type=config_type,
        documentation=None,
    )


def topic_value(
    layers: BrokerLayers, topic_configs: Mapping[str, str], name: str, level: int = 21
) -> str:
    """A topic config's effective value: the topic's own, else the first broker synonym
    set anywhere (converted to the topic config's unit), else LogConfig's default (the
    release line's at this metadata.version level)."""
    config_type = topic_config_type(name, level)
    if name in topic_configs:
        return show_value(config_type, topic_configs[name]) or ""
    for synonym, factor in TOPIC_CONFIG_SYNONYMS.get(name, ()):
        raw = layers.value(synonym)
        if raw is None:
            continue
        if factor != 1:
            try:
                raw = str(int(raw.strip()) * factor)
            except ValueError:
                continue
        return show_value(config_type, raw) or ""
    return topic_config_defs(level)[name].default


def topic_entries(
    layers: BrokerLayers,
    topic_configs: Mapping[str, str],
    include_synonyms: bool,
    level: int = 21,
) -> list[Entry]:
    """Every topic config of the level's LogConfig (ConfigHelper.createTopicConfigEntry);
    an internal one only where the topic sets it."""
    defs = topic_config_defs(level)
    listed = sorted(n for n, d in defs.items() if not d.internal or n in topic_configs)
    names = [*topic_configs, *listed]
    entries = []
    for name in scala_hash_map_order(names):
        config_type = topic_config_type(name, level)
        value = topic_value(layers, topic_configs, name, level)
        synonyms: list[Synonym] = []
        broker_synonyms = TOPIC_CONFIG_SYNONYMS.get(name)
        if broker_synonyms:
            first = broker_synonyms[0][0]
            synonyms = layers.synonyms(first, broker_config_synonyms(first), False)
        if name in topic_configs:
            synonyms.insert(0, Synonym(name=name, value=value, source=ConfigSource.TOPIC_CONFIG))
        entries.append(_entry(name, value, synonyms, include_synonyms, config_type))
    return entries
