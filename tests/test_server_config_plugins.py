"""Java plugin classes cannot load in Python: a configuration that names one is refused
at start-up with one line and exit status 1; StandardAuthorizer, which kwire implements,
and Kafka's own defaults are accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kwire.server.__main__ import build_settings, zero_config
from kwire.server.config import ConfigError, ControllerServerConfig

BASE = {
    "process.roles": "controller",
    "node.id": "1",
    "controller.quorum.voters": "1@127.0.0.1:9093",
    "listeners": "CONTROLLER://127.0.0.1:9093",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
    "log.dirs": "/tmp/kwire-test",
}

REFUSED = {
    "a custom authorizer": ("authorizer.class.name", "com.example.MyAuthorizer"),
    "the ZooKeeper-mode authorizer": (
        "authorizer.class.name",
        "kafka.security.authorizer.AclAuthorizer",
    ),
    "a create-topic policy": ("create.topic.policy.class.name", "com.example.Policy"),
    "an alter-config policy": ("alter.config.policy.class.name", "com.example.Policy"),
    "a principal builder": ("principal.builder.class", "com.example.Builder"),
    "a quota callback": ("client.quota.callback.class", "com.example.Quotas"),
    "a metrics reporter": ("metric.reporters", "org.apache.kafka.common.metrics.JmxReporter"),
    "config providers": ("config.providers", "file"),
    "a listener's SASL callback handler": (
        "listener.name.controller.plain.sasl.server.callback.handler.class",
        "com.example.Handler",
    ),
    "a listener's login class": ("listener.name.controller.sasl.login.class", "com.x.Login"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_java_plugin_class_is_refused_in_one_line_naming_the_setting(case: str) -> None:
    key, value = REFUSED[case]
    with pytest.raises(ConfigError) as error:
        ControllerServerConfig.from_properties({**BASE, key: value})
    message = str(error.value)
    assert message.startswith(f"{key}={value}: kwire cannot load Java plugin classes")
    assert "\n" not in message


ACCEPTED = {
    "StandardAuthorizer": (
        "authorizer.class.name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ),
    "no authorizer": ("authorizer.class.name", ""),
    "Kafka's default principal builder": (
        "principal.builder.class",
        "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder",
    ),
    "an empty reporter list": ("metric.reporters", " "),
}


@pytest.mark.parametrize("case", ACCEPTED, ids=list(ACCEPTED))
def test_kwires_own_authorizer_and_kafkas_defaults_are_accepted(case: str) -> None:
    key, value = ACCEPTED[case]
    config = ControllerServerConfig.from_properties({**BASE, key: value})
    assert config.originals[key] == value


def test_the_server_exits_1_with_the_one_line_message(tmp_path: Path) -> None:
    properties = tmp_path / "controller.properties"
    lines = {**BASE, "log.dirs": str(tmp_path), "create.topic.policy.class.name": "com.x.P"}
    properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    done = subprocess.run(
        [sys.executable, "-m", "kwire.server", str(properties)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: create.topic.policy.class.name=com.x.P: kwire cannot load Java plugin "
        "classes; leave it unset"
    ]


def test_the_controller_receives_the_static_configs_and_the_voters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = build_settings(zero_config())
    static = settings.controller.static_broker_configs
    # KafkaConfig.populateSynonyms: broker.id follows node.id when not given.
    assert (static["node.id"], static["broker.id"]) == ("1", "1")
    assert settings.controller.quorum_node_ids == (1,)


@pytest.mark.parametrize(
    ("super_users", "accepted"),
    [
        ("User:admin;User:broker", True),
        ("User:", True),  # Kafka parses these too
        (":bob", True),
        (";;", True),
        ("bob", False),
        ("User:admin;bob", False),
    ],
)
def test_super_users_must_be_principals_when_the_standard_authorizer_is_configured(
    super_users: str, accepted: bool
) -> None:
    """Kafka's StandardAuthorizer refuses to start on an entry without a principal type
    ("expected a string in format principalType:principalName")."""
    props = {
        **BASE,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": super_users,
    }
    if accepted:
        ControllerServerConfig.from_properties(props)
    else:
        with pytest.raises(
            ConfigError, match="super.users=.*principalType:principalName but got bob"
        ):
            ControllerServerConfig.from_properties(props)
