"""Settings that name Java classes Kafka would load: kwire cannot run them, so a
configuration naming one (other than Kafka's own defaults and the StandardAuthorizer,
which kwire implements) is refused at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from kwire.server.properties import (
    ConfigError,
)

# -- Java plugin classes ------------------------------------------------------------------

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Settings whose value names Java classes Kafka would load, with the values kwire accepts:
# Kafka's own defaults (built in, or unused by a controller) and, for the authorizer,
# StandardAuthorizer, which kwire implements. Anything else cannot run in Python.
JAVA_PLUGIN_SETTINGS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "authorizer.class.name": frozenset({STANDARD_AUTHORIZER}),
        "create.topic.policy.class.name": frozenset(),
        "alter.config.policy.class.name": frozenset(),
        "principal.builder.class": frozenset(
            {"org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"}
        ),
        "client.quota.callback.class": frozenset(),
        "metric.reporters": frozenset(),
        "kafka.metrics.reporters": frozenset(),
        "config.providers": frozenset(),
        "replica.selector.class": frozenset(),
        "security.providers": frozenset(),
        "sasl.client.callback.handler.class": frozenset(),
        "sasl.login.callback.handler.class": frozenset(),
        "sasl.login.class": frozenset(),
        "sasl.server.callback.handler.class": frozenset(),
        "ssl.engine.factory.class": frozenset(),
        "remote.log.storage.manager.class.name": frozenset(),
        "remote.log.metadata.manager.class.name": frozenset(
            {
                "org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager"
            }
        ),
        "group.consumer.assignors": frozenset(
            {
                "org.apache.kafka.coordinator.group.assignor.UniformAssignor,"
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
            }
        ),
    }
)
_LISTENER_PREFIXED = re.compile(r"listener\.name\.[^.]*\.(?:[^.]*\.)?(.*)")


def check_no_java_plugins(props: Mapping[str, str]) -> None:
    """Refuse (ConfigError, one line) a configuration that names a Java plugin class, also
    under a ``listener.name.<listener>.[<mechanism>.]`` prefix; an empty value is unset."""
    for key in sorted(props):
        value = props[key].strip()
        setting = key
        if key not in JAVA_PLUGIN_SETTINGS and (match := _LISTENER_PREFIXED.fullmatch(key)):
            setting = match.group(1)
            if setting not in JAVA_PLUGIN_SETTINGS:
                setting = key.split(".", 3)[-1]
        allowed = JAVA_PLUGIN_SETTINGS.get(setting)
        if allowed is None or not value:
            continue
        normalized = ",".join(item.strip() for item in value.split(","))
        if normalized in allowed:
            continue
        if setting == "authorizer.class.name":
            hint = f"only {STANDARD_AUTHORIZER} (built in) is supported"
        elif allowed:
            hint = f"only Kafka's default ({sorted(allowed)[0]}) is supported"
        else:
            hint = "leave it unset"
        raise ConfigError(f"{key}={value}: kwire cannot load Java plugin classes; {hint}")
