"""The controller's configuration, read from a Kafka ``.properties`` file.

Keys, defaults and checks are Kafka 3.9's (KRaftConfigs, QuorumConfig, SocketServerConfigs,
ServerLogConfigs, ReplicationConfigs and KafkaConfig's controller-only validation) for the
part of the configuration a KRaft controller uses. Unknown keys are kept in
``ControllerServerConfig.originals``, never rejected: Kafka accepts them too, and a file
shared with brokers is full of them. Every bad value raises :class:`ConfigError`, whose
message names the key, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kwire.server.java_plugins import (
    check_no_java_plugins,
)
from kwire.server.listener_security import (
    SASL_KEYS,
    SSL_KEYS,
    ClientSasl,
    ListenerSecurity,
    client_sasl,
    listener_security,
)
from kwire.server.properties import (
    DEFAULT_LISTENERS,
    DEFAULT_LOG_DIR,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    NON_ROUTABLE_HOST,
    RECORDS_LOG_OVERHEAD,
    SECURITY_PROTOCOLS,
    ConfigError,
    Endpoint,
    QuorumVoter,
    _bad,
    _bool,
    _host_port,
    _int,
    _list,
    _parse_ip_overrides,
    _parse_listeners,
    _parse_protocol_map,
    _parse_voters,
    load_properties,
    parse_java_properties,
    parse_overrides,
)

__all__ = [
    "ConfigError",
    "ControllerServerConfig",
    "Endpoint",
    "QuorumVoter",
    "load_properties",
    "parse_java_properties",
    "parse_overrides",
]

# -- the configuration ---------------------------------------------------------------------

# Numeric settings: key, attribute, type and minimum; defaults live on the dataclass.
_NUMERIC: tuple[tuple[str, str, str, int], ...] = (
    ("metadata.log.segment.bytes", "metadata_log_segment_bytes", "int", RECORDS_LOG_OVERHEAD),
    (
        "metadata.log.segment.min.bytes",
        "metadata_log_segment_min_bytes",
        "int",
        RECORDS_LOG_OVERHEAD,
    ),
    ("metadata.log.segment.ms", "metadata_log_segment_ms", "long", INT64_MIN),
    ("metadata.max.retention.bytes", "metadata_max_retention_bytes", "long", INT64_MIN),
    ("metadata.max.retention.ms", "metadata_max_retention_ms", "long", INT64_MIN),
    ("metadata.max.idle.interval.ms", "metadata_max_idle_interval_ms", "int", 0),
    ("metadata.log.max.snapshot.interval.ms", "metadata_snapshot_max_interval_ms", "long", 0),
    (
        "metadata.log.max.record.bytes.between.snapshots",
        "metadata_snapshot_max_new_record_bytes",
        "long",
        1,
    ),
    ("controller.quorum.election.timeout.ms", "quorum_election_timeout_ms", "int", INT32_MIN),
    ("controller.quorum.fetch.timeout.ms", "quorum_fetch_timeout_ms", "int", INT32_MIN),
    (
        "controller.quorum.election.backoff.max.ms",
        "quorum_election_backoff_max_ms",
        "int",
        INT32_MIN,
    ),
    ("controller.quorum.request.timeout.ms", "quorum_request_timeout_ms", "int", INT32_MIN),
    ("controller.quorum.retry.backoff.ms", "quorum_retry_backoff_ms", "int", INT32_MIN),
    ("controller.quorum.append.linger.ms", "quorum_append_linger_ms", "int", INT32_MIN),
    ("broker.session.timeout.ms", "broker_session_timeout_ms", "int", INT32_MIN),
    ("broker.heartbeat.interval.ms", "broker_heartbeat_interval_ms", "int", INT32_MIN),
    (
        "initial.broker.registration.timeout.ms",
        "initial_broker_registration_timeout_ms",
        "int",
        INT32_MIN,
    ),
    ("socket.request.max.bytes", "socket_request_max_bytes", "int", 1),
    ("connections.max.idle.ms", "connections_max_idle_ms", "long", INT64_MIN),
    ("max.connections", "max_connections", "int", 0),
    ("max.connections.per.ip", "max_connections_per_ip", "int", 0),
    ("queued.max.request.bytes", "queued_max_request_bytes", "long", INT64_MIN),
    (
        "connection.failed.authentication.delay.ms",
        "failed_authentication_delay_ms",
        "int",
        0,
    ),
    ("num.partitions", "num_partitions", "int", 1),
    ("delegation.token.max.lifetime.ms", "delegation_token_max_lifetime_ms", "long", 1),
    ("delegation.token.expiry.time.ms", "delegation_token_expiry_time_ms", "long", 1),
    (
        "delegation.token.expiry.check.interval.ms",
        "delegation_token_expiry_check_interval_ms",
        "long",
        1,
    ),
    ("default.replication.factor", "default_replication_factor", "int", INT32_MIN),
    # ReplicationConfigs: a LONG of at least 1; an INT with no bound, read by Kafka's
    # ZooKeeper controller only (the KRaft controller ignores it, and so does kwire).
    (
        "leader.imbalance.check.interval.seconds",
        "leader_imbalance_check_interval_seconds",
        "long",
        1,
    ),
    (
        "leader.imbalance.per.broker.percentage",
        "leader_imbalance_per_broker_percentage",
        "int",
        INT32_MIN,
    ),
)

_OTHER_KEYS = frozenset(
    {
        "process.roles",
        "node.id",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "controller.listener.names",
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "control.plane.listener.name",
        "metadata.log.dir",
        "log.dirs",
        "log.dir",
        "inter.broker.protocol.version",
        "unstable.feature.versions.enable",
        "eligible.leader.replicas.enable",
        "max.connections.per.ip.overrides",
        "sasl.mechanism.controller.protocol",
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
        "delete.topic.enable",
        "kwire.quorum.fast.failover.enable",
        "kwire.metrics.listener",
        "kwire.status.listener",
        "controller.quorum.auto.join.enable",
        "auto.leader.rebalance.enable",
        "delegation.token.secret.key",
        "delegation.token.master.key",
        *SSL_KEYS,
        *SASL_KEYS,
    }
)
KNOWN_KEYS = frozenset(k for k, *_ in _NUMERIC) | _OTHER_KEYS


@dataclass(frozen=True)
class ControllerServerConfig:
    """What a kwire controller reads from its configuration, with Kafka's defaults."""

    node_id: int
    quorum_voters: tuple[QuorumVoter, ...]
    controller_listener_names: tuple[str, ...]
    listeners: tuple[Endpoint, ...]
    metadata_log_dir: Path
    process_roles: tuple[str, ...] = ("controller",)
    quorum_bootstrap_servers: tuple[tuple[str, int], ...] = ()
    advertised_listeners: tuple[Endpoint, ...] = ()
    listener_security_protocol_map: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )
    log_dirs: tuple[Path, ...] = ()
    inter_broker_protocol_version: str | None = None
    unstable_feature_versions_enable: bool = False
    eligible_leader_replicas_enable: bool = False
    metadata_log_segment_bytes: int = 1024**3
    metadata_log_segment_min_bytes: int = 8 * 1024**2
    metadata_log_segment_ms: int = 7 * 24 * 3600 * 1000
    metadata_max_retention_bytes: int = 100 * 1024**2
    metadata_max_retention_ms: int = 7 * 24 * 3600 * 1000
    metadata_max_idle_interval_ms: int = 500
    metadata_snapshot_max_interval_ms: int = 3600 * 1000
    metadata_snapshot_max_new_record_bytes: int = 20 * 1024**2
    quorum_election_timeout_ms: int = 1000
    quorum_fetch_timeout_ms: int = 2000
    quorum_election_backoff_max_ms: int = 1000
    quorum_request_timeout_ms: int = 2000
    quorum_retry_backoff_ms: int = 20
    quorum_append_linger_ms: int = 25
    broker_session_timeout_ms: int = 9000
    broker_heartbeat_interval_ms: int = 2000
    initial_broker_registration_timeout_ms: int = 60000
    socket_request_max_bytes: int = 100 * 1024**2
    connections_max_idle_ms: int = 600_000
    max_connections: int = INT32_MAX
    max_connections_per_ip: int = INT32_MAX
    max_connections_per_ip_overrides: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )
    # Kafka's default is -1 (unbounded); kwire bounds the memory requests can pin.
    queued_max_request_bytes: int = 100 * 1024**2
    failed_authentication_delay_ms: int = 100
    # The client side of KRaft: the mechanism brokers and voters use towards controllers.
    sasl_mechanism_controller_protocol: str = "GSSAPI"
    # With a SASL controller listener: this controller's SASL client towards the others,
    # or (a node that needs no peer at start) why it has none.
    controller_client_sasl: ClientSasl | None = None
    controller_client_problem: str = ""
    # The security of each listener, by listener name (TLS and SASL settings only where
    # the listener's protocol uses them).
    listener_security: Mapping[str, ListenerSecurity] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )
    num_partitions: int = 1
    default_replication_factor: int = 1
    # authorizer.class.name set to Kafka's StandardAuthorizer (the only one kwire runs),
    # with super.users (";"-separated principals) and allow.everyone.if.no.acl.found.
    standard_authorizer: bool = False
    super_users: str = ""
    allow_everyone_if_no_acl_found: bool = False
    delete_topic_enable: bool = True
    # kwire's own: a follower whose connection to its leader is refused or lost elects
    # at once (after a random delay under 50 ms) instead of waiting out the fetch timeout.
    quorum_fast_failover_enable: bool = True
    # kwire's own operator pages (no Kafka counterpart: Kafka's controller is JMX only):
    # HOST:PORT of an HTTP listener serving /metrics (Prometheus text) and /status; unset:
    # off. The two may name one address (one server serves both); port 0 picks a free port.
    metrics_listener: tuple[str, int] | None = None
    status_listener: tuple[str, int] | None = None
    # QuorumConfig (Kafka 4.x): an observer controller adds itself to the voter set.
    quorum_auto_join_enable: bool = False
    # The automatic leader rebalance (ReplicationConfigs; kwire.controller.rebalance).
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: int = 300
    leader_imbalance_per_broker_percentage: int = 10
    # delegation.token.secret.key (or its old name delegation.token.master.key): unset or
    # empty turns token authentication off, as in Kafka.
    delegation_token_secret_key: str | None = None
    delegation_token_max_lifetime_ms: int = 7 * 24 * 3600 * 1000
    delegation_token_expiry_time_ms: int = 24 * 3600 * 1000
    # delegation.token.expiry.check.interval.ms: how often expired tokens are removed.
    delegation_token_expiry_check_interval_ms: int = 3600 * 1000
    originals: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        """Keys kwire does not use; the caller logs them at debug level."""
        return tuple(sorted(k for k in self.originals if k not in KNOWN_KEYS))

    @property
    def controller_security(self) -> ListenerSecurity:
        """The security of the listener the controller serves on."""
        return self.listener_security.get(
            self.controller_listener.listener_name, ListenerSecurity()
        )

    @property
    def static_broker_configs(self) -> dict[str, str]:
        """The configuration as Kafka's KafkaConfig holds it for DescribeConfigs
        (STATIC_BROKER_CONFIG): every given key, with broker.id set from node.id when
        absent (KafkaConfig.populateSynonyms)."""
        configs = dict(self.originals)
        configs.setdefault("broker.id", str(self.node_id))
        return configs

    @property
    def controller_listener(self) -> Endpoint:
        """The listener the controller serves on (the first controller listener)."""
        return self.effective_advertised_controller_listeners[0]

    @property
    def effective_advertised_controller_listeners(self) -> tuple[Endpoint, ...]:
        # Per controller listener name: its advertised endpoint, else the bound one.
        found = []
        for name in self.controller_listener_names:
            for pool in (self.advertised_listeners, self.listeners):
                match = next((e for e in pool if e.listener_name == name), None)
                if match is not None:
                    found.append(match)
                    break
        return tuple(found)

    @property
    def all_log_dirs(self) -> tuple[Path, ...]:
        """log.dirs plus metadata.log.dir, sorted and unique, as the storage tool uses them."""
        return tuple(sorted({*self.log_dirs, self.metadata_log_dir}, key=str))

    # -- construction --------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, overrides: Mapping[str, str] | None = None) -> ControllerServerConfig:
        props = load_properties(path)
        props.update(overrides or {})
        return cls.from_properties(props)

    @classmethod
    def default_single_node(cls, data_dir: Path, port: int = 9093) -> ControllerServerConfig:
        """The zero-configuration controller: node 1, sole voter, on 127.0.0.1:``port``."""
        return cls.from_properties(
            {
                "process.roles": "controller",
                "node.id": "1",
                "controller.quorum.voters": f"1@127.0.0.1:{port}",
                "listeners": f"CONTROLLER://127.0.0.1:{port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
                "log.dirs": str(data_dir),
            }
        )

    @classmethod
    def from_properties(cls, raw: Mapping[str, str]) -> ControllerServerConfig:
        # Kafka trims every value before parsing it.
        props = {k: v.strip() for k, v in raw.items()}
        values: dict[str, Any] = {"originals": MappingProxyType(dict(raw))}
        check_no_java_plugins(props)

        roles = _list(props.get("process.roles", ""))
        for role in roles:
            if role not in ("broker", "controller"):
                raise _bad(
                    "process.roles", props["process.roles"], "expected broker and/or controller"
                )
        if "broker" in roles:
            raise _bad(
                "process.roles",
                props["process.roles"],
                "kwire runs the controller role only; the broker role is not supported "
                "(set process.roles=controller)",
            )
        if "controller" not in roles:
            raise ConfigError(
                "process.roles is missing: expected process.roles=controller "
                "(kwire does not support ZooKeeper mode)"
            )
        values["process_roles"] = tuple(roles)

        if not props.get("node.id"):
            raise ConfigError("node.id is missing: expected a non-negative integer")
        values["node_id"] = node_id = _int("node.id", props["node.id"], 0)

        for key, attr, kind, low in _NUMERIC:
            if key in props:
                high = INT32_MAX if kind == "int" else INT64_MAX
                values[attr] = _int(key, props[key], low, high)
        for key, attr in (
            ("unstable.feature.versions.enable", "unstable_feature_versions_enable"),
            ("eligible.leader.replicas.enable", "eligible_leader_replicas_enable"),
            ("allow.everyone.if.no.acl.found", "allow_everyone_if_no_acl_found"),
            ("delete.topic.enable", "delete_topic_enable"),
            ("auto.leader.rebalance.enable", "auto_leader_rebalance_enable"),
            ("kwire.quorum.fast.failover.enable", "quorum_fast_failover_enable"),
            ("controller.quorum.auto.join.enable", "quorum_auto_join_enable"),
        ):
            if key in props:
                values[attr] = _bool(key, props[key])
        for key, attr in (
            ("kwire.metrics.listener", "metrics_listener"),
            ("kwire.status.listener", "status_listener"),
        ):
            if props.get(key, "").strip():
                values[attr] = _host_port(key, props[key].strip(), "{host}:{port}")
        # check_no_java_plugins let through only Kafka's StandardAuthorizer (or nothing).
        values["standard_authorizer"] = bool(props.get("authorizer.class.name"))
        values["super_users"] = props.get("super.users", "")
        if values["standard_authorizer"]:
            # StandardAuthorizer.getConfiguredSuperUsers parses each entry as a principal.
            for entry in values["super_users"].split(";"):
                if entry.strip() and ":" not in entry:
                    raise _bad(
                        "super.users",
                        props["super.users"],
                        "expected a string in format principalType:principalName but got "
                        f"{entry.strip()}",
                    )
        secret = props.get("delegation.token.secret.key") or props.get(
            "delegation.token.master.key"
        )
        values["delegation_token_secret_key"] = secret or None
        if props.get("inter.broker.protocol.version"):
            values["inter_broker_protocol_version"] = props["inter.broker.protocol.version"]

        voters = _parse_voters(props.get("controller.quorum.voters", ""))
        bootstrap = tuple(
            _host_port("controller.quorum.bootstrap.servers", entry, "{host}:{port}")
            for entry in _list(props.get("controller.quorum.bootstrap.servers", ""))
        )
        if not voters and not bootstrap:
            raise ConfigError(
                "controller.quorum.voters is missing: expected {id}@{host}:{port},... "
                "(or controller.quorum.bootstrap.servers)"
            )
        if voters and node_id not in {v.node_id for v in voters}:
            raise _bad(
                "controller.quorum.voters",
                props["controller.quorum.voters"],
                f"must include this node (node.id={node_id})",
            )
        values["quorum_voters"], values["quorum_bootstrap_servers"] = voters, bootstrap

        names = tuple(n.upper() for n in _list(props.get("controller.listener.names", "")))
        if not names:
            raise ConfigError(
                "controller.listener.names is missing: expected a listener name such as CONTROLLER"
            )
        values["controller_listener_names"] = names
        if props.get("control.plane.listener.name"):
            raise _bad(
                "control.plane.listener.name",
                props["control.plane.listener.name"],
                "is not supported in KRaft mode",
            )

        protocols = cls._protocol_map(props, names)
        values["listener_security_protocol_map"] = MappingProxyType(protocols)
        listeners_text = props.get("listeners", DEFAULT_LISTENERS)
        listeners = _parse_listeners("listeners", listeners_text, protocols)
        for endpoint in listeners:
            if endpoint.listener_name not in names:
                raise _bad(
                    "listeners",
                    listeners_text,
                    f"listener {endpoint.listener_name} is not in controller.listener.names; "
                    "a controller may only have controller listeners",
                )
        missing = [n for n in names if n not in {e.listener_name for e in listeners}]
        if missing:
            raise _bad(
                "listeners",
                listeners_text,
                f"expected a listener for controller listener {missing[0]}",
            )
        values["listeners"] = listeners
        if props.get("advertised.listeners"):
            advertised = _parse_listeners(
                "advertised.listeners", props["advertised.listeners"], protocols
            )
            for endpoint in advertised:
                if endpoint.host == NON_ROUTABLE_HOST:
                    raise _bad(
                        "advertised.listeners",
                        props["advertised.listeners"],
                        "0.0.0.0 cannot be advertised",
                    )
            values["advertised_listeners"] = advertised

        values.update(cls._socket_limits(props, values))
        values["listener_security"] = MappingProxyType(
            {e.listener_name: listener_security(props, e) for e in listeners}
        )
        if props.get("sasl.mechanism.controller.protocol"):
            values["sasl_mechanism_controller_protocol"] = props[
                "sasl.mechanism.controller.protocol"
            ]
        values.update(cls._controller_client(props, values))

        log_dirs_text = props.get("log.dirs") or props.get("log.dir") or DEFAULT_LOG_DIR
        log_dirs = tuple(Path(d) for d in _list(log_dirs_text) if d)
        if not log_dirs:
            raise _bad("log.dirs", log_dirs_text, "expected at least one directory")
        values["log_dirs"] = log_dirs
        values["metadata_log_dir"] = (
            Path(props["metadata.log.dir"]) if props.get("metadata.log.dir") else log_dirs[0]
        )
        return cls(**values)

    @staticmethod
    def _controller_client(props: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
        """The SASL client towards other controllers (RaftManager: the first controller
        listener, `sasl.mechanism.controller.protocol`). Kafka refuses to start without it;
        kwire does too when the node has peers from the start (other static voters or
        bootstrap servers), and otherwise records why it has none (logged at start-up)."""
        name = values["controller_listener_names"][0]
        protocol = values.get("listener_security_protocol_map", {}).get(name, name)
        if not protocol.startswith("SASL"):
            return {}
        mechanism = values.get("sasl_mechanism_controller_protocol", "GSSAPI")
        try:
            return {"controller_client_sasl": client_sasl(props, name, mechanism)}
        except ConfigError as error:
            node_id = values["node_id"]
            voters = values.get("quorum_voters", ())
            if any(v.node_id != node_id for v in voters) or values.get("quorum_bootstrap_servers"):
                raise
            return {"controller_client_problem": str(error)}

    @staticmethod
    def _socket_limits(props: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
        """max.connections.per.ip.overrides, and KafkaConfig's checks across the socket
        server's keys (their single values were parsed with the other numbers)."""
        out: dict[str, Any] = {}
        key = "max.connections.per.ip.overrides"
        overrides = _parse_ip_overrides(props.get(key, ""))
        out["max_connections_per_ip_overrides"] = MappingProxyType(overrides)
        per_ip = values.get("max_connections_per_ip", INT32_MAX)
        if per_ip == 0 and not overrides:
            raise ConfigError(
                "max.connections.per.ip=0: max.connections.per.ip can be set to zero only if "
                "max.connections.per.ip.overrides property is set."
            )
        queued = values.get("queued_max_request_bytes", 100 * 1024**2)
        request_max = values.get("socket_request_max_bytes", 100 * 1024**2)
        if 0 < queued < request_max:
            raise ConfigError(
                f"queued.max.request.bytes={queued}: queued.max.request.bytes must be larger "
                f"or equal to socket.request.max.bytes (socket.request.max.bytes={request_max}; "
                "-1 or 0 means no limit)"
            )
        idle = values.get("connections_max_idle_ms", 600_000)
        delay = values.get("failed_authentication_delay_ms", 100)
        if idle >= 0 and delay >= idle:
            raise ConfigError(
                f"connection.failed.authentication.delay.ms={delay} should always be less than "
                f"connections.max.idle.ms={idle} to prevent failed authentication responses "
                "from timing out"
            )
        return out

    @staticmethod
    def _protocol_map(props: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
        key = "listener.security.protocol.map"
        if key in props:
            return _parse_protocol_map(props[key])
        # Kafka's default map, plus PLAINTEXT for the controller listeners when the map
        # was not given explicitly (KafkaConfig.effectiveListenerSecurityProtocolMap).
        mapping = {p: p for p in SECURITY_PROTOCOLS}
        for name in names:
            mapping.setdefault(name, "PLAINTEXT")
        return mapping
