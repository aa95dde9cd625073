"""kwire.server.config: Kafka .properties into ControllerServerConfig."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kwire.server.config import (
    ConfigError,
    ControllerServerConfig,
    Endpoint,
    QuorumVoter,
    load_properties,
    parse_java_properties,
    parse_overrides,
)

BASE = {
    "process.roles": "controller",
    "node.id": "1",
    "controller.quorum.voters": "1@127.0.0.1:19093",
    "listeners": "CONTROLLER://127.0.0.1:19093",
    "controller.listener.names": "CONTROLLER",
    "log.dirs": "/data/controller-1",
}


def config(**changes: str | None) -> ControllerServerConfig:
    props = dict(BASE)
    for key, value in changes.items():
        key = key.replace("_", ".")
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return ControllerServerConfig.from_properties(props)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", {"a": "b"}),
        ("a: b", {"a": "b"}),
        ("a b", {"a": "b"}),
        ("  a =  b  ", {"a": "b  "}),
        ("# comment\n! also\n\na=1", {"a": "1"}),
        ("a=1\\\n    2\\\n 3", {"a": "123"}),
        ("a=x\\\\\nb=y", {"a": "x\\", "b": "y"}),
        ("k\\=ey=v\\:al", {"k=ey": "v:al"}),
        ("a=\\u00e9\\t|", {"a": "é\t|"}),
        ("a=1\r\nb=2\rc=3", {"a": "1", "b": "2", "c": "3"}),
        ("a=1\\\n# not a comment", {"a": "1# not a comment"}),
        ("a", {"a": ""}),
        ("a=b=c", {"a": "b=c"}),
    ],
)
def test_java_properties_syntax(text: str, expected: dict[str, str]) -> None:
    assert parse_java_properties(text) == expected


def test_bad_unicode_escape() -> None:
    with pytest.raises(ConfigError, match="uxxxx"):
        parse_java_properties("a=\\u12")


def test_captured_controller_properties(kafka_captures: Path) -> None:
    cfg = ControllerServerConfig.load(kafka_captures / "controller.properties")
    assert cfg.node_id == 1
    assert cfg.quorum_voters == (QuorumVoter(1, "127.0.0.1", 19093),)
    assert cfg.listeners == (Endpoint("CONTROLLER", "127.0.0.1", 19093),)
    assert cfg.controller_listener == Endpoint("CONTROLLER", "127.0.0.1", 19093)
    assert cfg.metadata_log_dir == Path("<data>/controller-1")
    assert cfg.metadata_snapshot_max_interval_ms == 10000
    assert cfg.num_partitions == 1


def test_captured_broker_properties_are_refused(kafka_captures: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^process\.roles=broker: .*broker role is not supported"
    ):
        ControllerServerConfig.load(kafka_captures / "broker.properties")


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("metadata_max_idle_interval_ms", 500),
        ("quorum_election_timeout_ms", 1000),
        ("quorum_fetch_timeout_ms", 2000),
        ("quorum_election_backoff_max_ms", 1000),
        ("quorum_request_timeout_ms", 2000),
        ("quorum_retry_backoff_ms", 20),
        ("quorum_append_linger_ms", 25),
        ("broker_session_timeout_ms", 9000),
        ("broker_heartbeat_interval_ms", 2000),
        ("initial_broker_registration_timeout_ms", 60000),
        ("socket_request_max_bytes", 104857600),
        ("num_partitions", 1),
        ("default_replication_factor", 1),
        ("metadata_log_segment_bytes", 1073741824),
        ("metadata_log_segment_ms", 604800000),
        ("metadata_snapshot_max_interval_ms", 3600000),
        ("metadata_snapshot_max_new_record_bytes", 20971520),
        ("metadata_max_retention_bytes", 104857600),
        ("quorum_bootstrap_servers", ()),
        ("advertised_listeners", ()),
        ("inter_broker_protocol_version", None),
        # DelegationTokenManagerConfigs.DELEGATION_TOKEN_EXPIRY_CHECK_INTERVAL_MS_DEFAULT
        ("delegation_token_expiry_check_interval_ms", 3600000),
        # QuorumConfig.DEFAULT_QUORUM_AUTO_JOIN_ENABLE (Kafka 4.3.1)
        ("quorum_auto_join_enable", False),
    ],
)
def test_kafka_defaults(attribute: str, expected: object) -> None:
    assert getattr(config(), attribute) == expected


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        ("metadata.max.idle.interval.ms", "0", "metadata_max_idle_interval_ms", 0),
        ("controller.quorum.append.linger.ms", " 5 ", "quorum_append_linger_ms", 5),
        ("metadata.log.segment.ms", "9000000000", "metadata_log_segment_ms", 9000000000),
        ("broker.session.timeout.ms", "+12", "broker_session_timeout_ms", 12),
        ("num.partitions", "3", "num_partitions", 3),
        ("unstable.feature.versions.enable", "TRUE", "unstable_feature_versions_enable", True),
        ("controller.quorum.auto.join.enable", " true", "quorum_auto_join_enable", True),
        ("inter.broker.protocol.version", "3.7", "inter_broker_protocol_version", "3.7"),
        (
            "delegation.token.expiry.check.interval.ms",
            "5000",
            "delegation_token_expiry_check_interval_ms",
            5000,
        ),
    ],
)
def test_values_are_typed(key: str, value: str, attribute: str, expected: object) -> None:
    assert (
        getattr(ControllerServerConfig.from_properties({**BASE, key: value}), attribute) == expected
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("node.id", "abc", "node.id=abc: expected an integer"),
        ("node.id", "-1", "node.id=-1: expected an integer of at least 0"),
        (
            "node.id",
            "3000000000",
            "node.id=3000000000: expected an integer no greater than 2147483647",
        ),
        (
            "metadata.max.idle.interval.ms",
            "-5",
            "metadata.max.idle.interval.ms=-5: expected an integer of at least 0",
        ),
        (
            "metadata.log.segment.bytes",
            "1.5",
            "metadata.log.segment.bytes=1.5: expected an integer",
        ),
        ("num.partitions", "0", "num.partitions=0: expected an integer of at least 1"),
        # DelegationTokenManagerConfigs: a LONG, atLeast(1).
        (
            "delegation.token.expiry.check.interval.ms",
            "0",
            "delegation.token.expiry.check.interval.ms=0: expected an integer of at least 1",
        ),
        (
            "unstable.feature.versions.enable",
            "yes",
            "unstable.feature.versions.enable=yes: expected true or false",
        ),
        (
            "controller.quorum.auto.join.enable",
            "1",
            "controller.quorum.auto.join.enable=1: expected true or false",
        ),
        (
            "process.roles",
            "broker,controller",
            "process.roles=broker,controller: kwire runs the controller role only",
        ),
        (
            "process.roles",
            "zookeeper",
            "process.roles=zookeeper: expected broker and/or controller",
        ),
        ("controller.quorum.voters", "1@host", "cannot parse host and port from 'host'"),
        (
            "controller.quorum.voters",
            "x@host:9093",
            "controller.quorum.voters=x: expected an integer",
        ),
        (
            "controller.quorum.voters",
            "1-host:9093",
            "entry '1-host:9093' is not in the form {id}@{host}:{port}",
        ),
        (
            "controller.quorum.voters",
            "1@0.0.0.0:9093",
            "host 0.0.0.0 in '1@0.0.0.0:9093' is not routable",
        ),
        ("controller.quorum.voters", "1@h:1,1@h:2", "Node id 1 was specified more than once."),
        ("controller.quorum.voters", "2@h:9093", "must include this node (node.id=1)"),
        (
            "listeners",
            "CONTROLLER//h:1",
            "listener 'CONTROLLER//h:1' is not in the form NAME://host:port",
        ),
        ("listeners", "CONTROLLER://h:70000", "port 70000 of listener CONTROLLER"),
        (
            "listeners",
            "CONTROLLER://h:1,PLAINTEXT://h:2",
            "listener PLAINTEXT is not in controller.listener.names",
        ),
        ("listeners", "OTHER://h:1", "no security protocol is defined for listener OTHER"),
        # An SSL listener needs a key store (kwire refuses to start without one).
        ("listener.security.protocol.map", "CONTROLLER:SSL", "has no key store"),
        ("listener.security.protocol.map", "CONTROLLER:FOO", "unknown security protocol 'FOO'"),
        ("listener.security.protocol.map", "CONTROLLER", "is not in the form NAME:PROTOCOL"),
        (
            "controller.listener.names",
            "CONTROLLER,OTHER",
            "expected a listener for controller listener OTHER",
        ),
        ("advertised.listeners", "CONTROLLER://0.0.0.0:1", "0.0.0.0 cannot be advertised"),
        ("control.plane.listener.name", "X", "is not supported in KRaft mode"),
    ],
)
def test_bad_values_name_key_value_and_expectation(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ControllerServerConfig.from_properties({**BASE, key: value})


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("process.roles", "process.roles is missing"),
        ("node.id", "node.id is missing"),
        ("controller.quorum.voters", "controller.quorum.voters is missing"),
        ("controller.listener.names", "controller.listener.names is missing"),
    ],
)
def test_missing_required_keys(missing: str, message: str) -> None:
    props = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=re.escape(message)):
        ControllerServerConfig.from_properties(props)


@pytest.mark.parametrize(
    ("changes", "metadata_dir", "log_dirs"),
    [
        ({}, "/data/controller-1", ("/data/controller-1",)),
        ({"log.dirs": "/a, /b"}, "/a", ("/a", "/b")),
        ({"log.dirs": None, "log.dir": "/c"}, "/c", ("/c",)),
        ({"log.dirs": None}, "/tmp/kafka-logs", ("/tmp/kafka-logs",)),
        ({"metadata.log.dir": "/m"}, "/m", ("/data/controller-1",)),
    ],
)
def test_log_directories(
    changes: dict[str, str | None], metadata_dir: str, log_dirs: tuple[str, ...]
) -> None:
    props = dict(BASE)
    for key, value in changes.items():
        if value is None:
            props.pop(key)
        else:
            props[key] = value
    cfg = ControllerServerConfig.from_properties(props)
    assert cfg.metadata_log_dir == Path(metadata_dir)
    assert cfg.log_dirs == tuple(Path(d) for d in log_dirs)
    assert set(cfg.all_log_dirs) == {Path(metadata_dir), *map(Path, log_dirs)}


def test_bootstrap_servers_instead_of_voters() -> None:
    cfg = config(
        controller_quorum_voters=None,
        **{"controller.quorum.bootstrap.servers": "h1:9093, [::1]:9094"},
    )
    assert cfg.quorum_voters == ()
    assert cfg.quorum_bootstrap_servers == (("h1", 9093), ("::1", 9094))


def test_listener_details() -> None:
    cfg = ControllerServerConfig.from_properties(
        {
            **BASE,
            "listeners": "controller://:19093",
            "advertised.listeners": "CONTROLLER://ctl.example:29093",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        }
    )
    assert cfg.listeners == (Endpoint("CONTROLLER", "", 19093),)
    assert cfg.controller_listener == Endpoint("CONTROLLER", "ctl.example", 29093)
    assert str(Endpoint("CONTROLLER", "::1", 1)) == "CONTROLLER://[::1]:1"


def test_unknown_keys_are_kept() -> None:
    cfg = ControllerServerConfig.from_properties(
        {**BASE, "offsets.topic.replication.factor": "1", "zz": "x"}
    )
    assert cfg.originals["zz"] == "x"
    assert cfg.unknown_keys == ("offsets.topic.replication.factor", "zz")


def test_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.properties"
    path.write_bytes(b"".join(f"{k}={v}\n".encode() for k, v in BASE.items()) + b"x=caf\xe9\n")
    assert load_properties(path)["x"] == "café"  # ISO-8859-1, as Properties.load reads it
    cfg = ControllerServerConfig.load(path, parse_overrides(["node.id=1", "num.partitions=4"]))
    assert cfg.num_partitions == 4
    with pytest.raises(ConfigError, match="override 'oops': expected key=value"):
        parse_overrides(["oops"])
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        ControllerServerConfig.load(tmp_path / "missing.properties")


def test_default_single_node(tmp_path: Path) -> None:
    cfg = ControllerServerConfig.default_single_node(tmp_path, port=19093)
    assert cfg.node_id == 1
    assert cfg.quorum_voters == (QuorumVoter(1, "127.0.0.1", 19093),)
    assert cfg.controller_listener == Endpoint("CONTROLLER", "127.0.0.1", 19093)
    assert cfg.metadata_log_dir == tmp_path
    assert ControllerServerConfig.default_single_node(tmp_path).controller_listener.port == 9093


def test_config_is_frozen() -> None:
    cfg = config()
    with pytest.raises(AttributeError):
        cfg.node_id = 2  # type: ignore[misc]


# -- the socket server's limits (SocketServerConfigs, KafkaConfig.validateValues) ----------------


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("connections_max_idle_ms", 600000),
        ("max_connections", 2147483647),
        ("max_connections_per_ip", 2147483647),
        ("max_connections_per_ip_overrides", {}),
        ("failed_authentication_delay_ms", 100),
        # Kafka's default is -1, unbounded; kwire's bounds the memory requests can hold.
        ("queued_max_request_bytes", 104857600),
    ],
)
def test_socket_limit_defaults(attribute: str, expected: object) -> None:
    assert getattr(config(), attribute) == expected


@pytest.mark.parametrize(
    ("props", "attribute", "expected"),
    [
        ({"connections.max.idle.ms": "-1"}, "connections_max_idle_ms", -1),
        ({"connections.max.idle.ms": "9000000000"}, "connections_max_idle_ms", 9000000000),
        ({"max.connections": "0"}, "max_connections", 0),
        ({"queued.max.request.bytes": "-1"}, "queued_max_request_bytes", -1),
        ({"queued.max.request.bytes": "0"}, "queued_max_request_bytes", 0),
        (
            {"socket.request.max.bytes": "1000", "queued.max.request.bytes": "1000"},
            "queued_max_request_bytes",
            1000,
        ),
        (
            {"max.connections.per.ip.overrides": "127.0.0.1:5 , ::1:7,host-a:+3,"},
            "max_connections_per_ip_overrides",
            {"127.0.0.1": 5, "::1": 7, "host-a": 3},
        ),
        (
            {"max.connections.per.ip": "0", "max.connections.per.ip.overrides": "h:1"},
            "max_connections_per_ip",
            0,
        ),
        (
            {"connections.max.idle.ms": "-1", "connection.failed.authentication.delay.ms": "5000"},
            "failed_authentication_delay_ms",
            5000,
        ),
    ],
)
def test_socket_limits_as_kafka_reads_them(
    props: dict[str, str], attribute: str, expected: object
) -> None:
    assert getattr(ControllerServerConfig.from_properties({**BASE, **props}), attribute) == expected


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"max.connections": "-1"}, "max.connections=-1: expected an integer of at least 0"),
        (
            {"max.connections.per.ip": "-2"},
            "max.connections.per.ip=-2: expected an integer of at least 0",
        ),
        (
            {"max.connections.per.ip": "0"},
            "max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides "
            "property is set.",
        ),
        (
            {"socket.request.max.bytes": "1000", "queued.max.request.bytes": "999"},
            "queued.max.request.bytes must be larger or equal to socket.request.max.bytes",
        ),
        (
            {"connections.max.idle.ms": "100"},
            "connection.failed.authentication.delay.ms=100 should always be less than "
            "connections.max.idle.ms=100 to prevent failed authentication responses from "
            "timing out",
        ),
        ({"connections.max.idle.ms": "1.5"}, "connections.max.idle.ms=1.5: expected an integer"),
        ({"max.connections.per.ip.overrides": "hostonly"}, "is not in the form host:count"),
        ({"max.connections.per.ip.overrides": "a:1,,b:2"}, "'' is not in the form host:count"),
        (
            {"max.connections.per.ip.overrides": "bad/host:1"},
            "contains invalid addresses : bad/host",
        ),
        (
            {"max.connections.per.ip.overrides": "h:x"},
            "the count 'x' for 'h' is not a 32-bit integer",
        ),
    ],
)
def test_bad_socket_limits_are_refused_as_kafka_refuses_them(
    props: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ControllerServerConfig.from_properties({**BASE, **props})
