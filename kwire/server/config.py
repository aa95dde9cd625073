"""The controller's configuration, read from a Kafka ``.properties`` file.

Keys, defaults and checks are Kafka 3.9's (KRaftConfigs, QuorumConfig, SocketServerConfigs,
ServerLogConfigs, ReplicationConfigs and KafkaConfig's controller-only validation) for the
part of the configuration a KRaft controller uses. Unknown keys are kept in
``ControllerServerConfig.originals``, never rejected: Kafka accepts them too, and a file
shared with brokers is full of them. Every bad value raises :class:`ConfigError`, whose
message names the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "ConfigError",
    "ControllerServerConfig",
    "Endpoint",
    "QuorumVoter",
    "load_properties",
    "parse_java_properties",
    "parse_overrides",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RECORDS_LOG_OVERHEAD = 12
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_LISTENERS = "PLAINTEXT://:9092"
DEFAULT_LOG_DIR = "/tmp/kafka-logs"
NON_ROUTABLE_HOST = "0.0.0.0"

# Kafka's host[:port] patterns (Utils.HOST_PORT_PATTERN, EndPoint's listener pattern).
_HOST_PORT = re.compile(r"^(?:[0-9a-zA-Z\-%._]*://)?\[?([0-9a-zA-Z\-%._:]*)]?:([0-9]+)$")
_LISTENER = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)]?:(-?[0-9]+)$")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or unsupported."""


# -- java.util.Properties ------------------------------------------------------------------


def _logical_lines(text: str) -> Iterable[str]:
    """Join continuation lines (an odd number of trailing backslashes) and drop comments."""
    pending: str | None = None
    for raw in re.split(r"\r\n|\r|\n", text):
        line = raw.lstrip(" \t\f")
        if pending is None:
            if not line or line[0] in "#!":
                continue
            pending = ""
        backslashes = len(line) - len(line.rstrip("\\"))
        if backslashes % 2 == 1:
            pending += line[:-1]
            continue
        yield pending + line
        pending = None
    if pending:
        yield pending


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch != "\\" or i >= len(text):
            out.append(ch)
            continue
        ch = text[i]
        i += 1
        if ch == "u":
            digits = text[i : i + 4]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ConfigError(f"malformed \\uxxxx escape in {text!r}")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(ch, ch))
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key_end = min(i, len(line))
    while i < len(line) and line[i] in " \t\f":
        i += 1
    if i < len(line) and line[i] in "=:":
        i += 1
    while i < len(line) and line[i] in " \t\f":
        i += 1
    return _unescape(line[:key_end]), _unescape(line[i:])


def parse_java_properties(text: str) -> dict[str, str]:
    """``java.util.Properties.load`` semantics: ``#``/``!`` comments, ``key=value``,
    ``key: value`` or ``key value``, backslash continuations and escapes (``\\uXXXX``)."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        props[key] = value
    return props


def load_properties(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror or e}") from None
    # Kafka loads through Properties.load(InputStream), which reads ISO-8859-1.
    return parse_java_properties(raw.decode("latin-1"))


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``--override key=value`` arguments."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r}: expected key=value")
        out[key.strip()] = value
    return out


# -- value types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumVoter:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listener: ``NAME://host:port``; ``host`` is "" for all interfaces."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


def _bad(key: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value}: {expected}")


def _int(key: str, value: str, low: int = INT32_MIN, high: int = INT32_MAX) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return _raise(_bad(key, value, "expected an integer"))
    number = int(text)
    if number > high:
        return _raise(_bad(key, value, f"expected an integer no greater than {high}"))
    if number < low:
        return _raise(_bad(key, value, f"expected an integer of at least {low}"))
    return number


def _raise(error: ConfigError) -> Any:
    raise error


def _bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise _bad(key, value, "expected true or false")
    return text == "true"


def _list(value: str) -> list[str]:
    text = value.strip()
    return [] if not text else [item.strip() for item in text.split(",")]


def _host_port(key: str, entry: str, form: str) -> tuple[str, int]:
    match = _HOST_PORT.match(entry)
    if match is None:
        raise ConfigError(f"{key}: cannot parse host and port from {entry!r}: expected {form}")
    port = int(match.group(2))
    if port > 65535:
        raise ConfigError(f"{key}: port {port} in {entry!r} is above 65535")
    return match.group(1), port


def _parse_voters(value: str) -> tuple[QuorumVoter, ...]:
    key = "controller.quorum.voters"
    voters: dict[int, QuorumVoter] = {}
    for entry in _list(value):
        id_text, sep, address = entry.partition("@")
        if not sep or "@" in address:
            raise _bad(key, value, f"entry {entry!r} is not in the form {{id}}@{{host}}:{{port}}")
        node_id = _int(key, id_text, 0)
        host, port = _host_port(key, address, "{id}@{host}:{port}")
        if host == NON_ROUTABLE_HOST:
            raise _bad(key, value, f"host {host} in {entry!r} is not routable")
        if node_id in voters:
            raise _bad(key, value, f"voter id {node_id} appears twice")
        voters[node_id] = QuorumVoter(node_id, host, port)
    return tuple(voters.values())


def _parse_protocol_map(value: str) -> dict[str, str]:
    key = "listener.security.protocol.map"
    mapping: dict[str, str] = {}
    for entry in _list(value):
        name, sep, protocol = entry.rpartition(":")
        if not sep or not name.strip():
            raise _bad(key, value, f"entry {entry!r} is not in the form NAME:PROTOCOL")
        protocol = protocol.strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise _bad(key, value, f"unknown security protocol {protocol!r}")
        mapping[name.strip().upper()] = protocol
    return mapping


def _parse_listeners(key: str, value: str, protocols: Mapping[str, str]) -> tuple[Endpoint, ...]:
    endpoints: list[Endpoint] = []
    for entry in _list(value):
        match = _LISTENER.match(entry)
        if match is None:
            raise _bad(key, value, f"listener {entry!r} is not in the form NAME://host:port")
        name = match.group(1).upper()
        port = int(match.group(3))
        if not 0 <= port <= 65535:
            raise _bad(key, value, f"port {port} of listener {name} is not between 0 and 65535")
        protocol = protocols.get(name)
        if protocol is None:
            raise _bad(
                key,
                value,
                f"no security protocol is defined for listener {name} in listener.security.protocol.map",
            )
        if any(e.listener_name == name for e in endpoints):
            raise _bad(key, value, f"listener name {name} appears twice")
        endpoints.append(Endpoint(name, match.group(2), port, protocol))
    return tuple(endpoints)


def _parse_ip_overrides(value: str) -> dict[str, int]:
    """``host:count,...`` (Kafka's Csv.parseCsvMap: the count follows the last ':', so
    IPv6 addresses need no brackets)."""
    key = "max.connections.per.ip.overrides"
    overrides: dict[str, int] = {}
    if not value:
        return overrides
    entries = re.split(r"\s*,\s*", value)
    while entries and not entries[-1]:
        entries.pop()  # Java's String.split drops trailing empty strings
    for entry in entries:
        host, sep, count = entry.rpartition(":")
        if not sep:
            raise _bad(key, value, f"entry {entry!r} is not in the form host:count")
        host = host.strip()
        if not re.fullmatch(r"[0-9a-zA-Z\-%._:]*", host):
            raise _bad(key, value, f"contains invalid addresses : {host}")
        try:
            overrides[host] = _int(key, count)
        except ConfigError:
            raise _bad(
                key, value, f"the count {count.strip()!r} for {host!r} is not a 32-bit integer"
            ) from None
    return overrides


# -- listener security (Kafka's SslConfigs, BrokerSecurityConfigs, SaslConfigs) -----------

SSL_KEYS = (
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.cipher.suites",
    "ssl.principal.mapping.rules",
)
SASL_KEYS = (
    "sasl.enabled.mechanisms",
    "sasl.server.max.receive.size",
    "connections.max.reauth.ms",
)
SSL_CLIENT_AUTH = ("required", "requested", "none")
TLS_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
PEM = "PEM"
_JAAS_FLAGS = ("REQUIRED", "REQUISITE", "SUFFICIENT", "OPTIONAL")


@dataclass(frozen=True, slots=True, kw_only=True)
class SslSettings:
    """A listener's ``ssl.*`` keys (DefaultSslEngineFactory's), PEM only. Values are the
    configuration's text; `kwire.server.security.server_ssl_context` loads them."""

    keystore_type: str = "JKS"
    keystore_location: str | None = None
    keystore_key: str | None = None
    keystore_certificate_chain: str | None = None
    key_password: str | None = None
    truststore_type: str = "JKS"
    truststore_location: str | None = None
    truststore_certificates: str | None = None
    client_auth: str = "none"  # required | requested | none
    enabled_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True, kw_only=True)
class JaasEntry:
    """One login module of a ``sasl.jaas.config`` value (Kafka's JaasConfig)."""

    login_module: str
    control_flag: str
    options: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslSettings:
    """A listener's SASL keys: its mechanisms (as configured, in order) and their JAAS."""

    enabled_mechanisms: tuple[str, ...]
    jaas: Mapping[str, JaasEntry]  # by mechanism
    max_receive_size: int = 524288  # sasl.server.max.receive.size, bytes
    connections_max_reauth_ms: int = 0  # 0: sessions do not expire

    def plain_users(self) -> dict[str, str]:
        """PLAIN's users: the ``user_<name>`` options of a PlainLoginModule entry
        (PlainServerCallbackHandler reads no other module's options)."""
        entry = self.jaas.get("PLAIN")
        if entry is None or entry.login_module != PLAIN_LOGIN_MODULE:
            return {}
        return {k[5:]: v for k, v in entry.options.items() if k.startswith("user_")}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerSecurity:
    """A listener's security protocol and the settings it uses."""

    protocol: str = "PLAINTEXT"
    ssl: SslSettings | None = None  # for SSL and SASL_SSL
    sasl: SaslSettings | None = None  # for SASL_PLAINTEXT and SASL_SSL


def _listener_values(props: Mapping[str, str], listener: str) -> dict[str, str]:
    """Kafka's valuesWithPrefixOverride: ``listener.name.<listener>.<key>`` wins over
    ``<key>``; the prefixed keys also appear without their prefix."""
    prefix = f"listener.name.{listener.lower()}."
    values = dict(props)
    for key, value in props.items():
        if key.startswith(prefix):
            values[key[len(prefix) :]] = value
    return values


def parse_jaas_config(key: str, text: str) -> JaasEntry:
    """One ``sasl.jaas.config`` value: ``Module flag key="value" ...;`` (JaasConfig's
    tokenizer: quoted or bare values, // and /* */ comments). Exactly one module."""
    token = re.compile(
        r'\s+|//[^\n]*|/\*.*?\*/|"(?P<q>(?:[^"\\]|\\.)*)"|\'(?P<s>(?:[^\'\\]|\\.)*)\''
        r"|(?P<w>[A-Za-z0-9_$.\-]+)|(?P<p>.)",
        re.S,
    )
    tokens: list[tuple[str, str]] = []
    for match in token.finditer(text):
        for kind in ("q", "s", "w", "p"):
            if match[kind] is not None:
                value = match[kind]
                if kind in "qs":
                    value = re.sub(r"\\(.)", r"\1", value)
                tokens.append(("word" if kind != "p" else value, value))
                break
    entries: list[JaasEntry] = []
    i = 0
    while i < len(tokens):
        module = tokens[i][1]
        if i + 1 >= len(tokens):
            raise ConfigError(f"{key}: Login module control flag not specified in JAAS config")
        flag = tokens[i + 1][1]
        if flag.upper() not in _JAAS_FLAGS:
            raise ConfigError(f"{key}: Invalid login module control flag '{flag}' in JAAS config")
        options: dict[str, str] = {}
        i += 2
        while i < len(tokens) and tokens[i][0] != ";":
            name = tokens[i][1]
            if i + 2 >= len(tokens) or tokens[i + 1][0] != "=" or tokens[i + 2][0] != "word":
                raise ConfigError(f"{key}: Value not specified for key '{name}' in JAAS config")
            options[name] = tokens[i + 2][1]
            i += 3
        if i >= len(tokens):
            raise ConfigError(f"{key}: JAAS config entry not terminated by semi-colon")
        i += 1
        entries.append(JaasEntry(login_module=module, control_flag=flag, options=options))
    if len(entries) != 1:
        raise ConfigError(
            f"{key}: JAAS config property contains {len(entries)} login modules, should be 1 module"
            if entries
            else f"{key}: Login module not specified in JAAS config"
        )
    return entries[0]


def _ssl_settings(values: Mapping[str, str], listener: str) -> SslSettings:
    def get(key: str) -> str | None:
        return values.get(key) or None

    keystore_type = (get("ssl.keystore.type") or "JKS").upper()
    truststore_type = (get("ssl.truststore.type") or "JKS").upper()
    location = get("ssl.keystore.location")
    key, chain = get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")
    pem_hint = (
        "Python's ssl module cannot read JKS or PKCS12 stores: use PEM (KIP-651), "
        "e.g. ssl.keystore.type=PEM with ssl.keystore.location=<PEM file with key and chain>"
    )
    # DefaultSslEngineFactory.createKeystore's checks, in its order.
    if key is not None:
        if keystore_type != PEM:
            raise ConfigError(
                "SSL private key can be specified only for PEM, but key store type is "
                f"{keystore_type}."
            )
        if chain is None:
            raise ConfigError(
                "SSL private key is specified, but certificate chain is not specified."
            )
        if location is not None:
            raise ConfigError("Both SSL key store location and separate private key are specified.")
    elif chain is not None:
        raise ConfigError("SSL certificate chain is specified, but private key is not specified")
    if keystore_type == PEM and get("ssl.keystore.password") is not None:
        raise ConfigError(
            "SSL key store password cannot be specified with PEM format, only key password "
            "may be specified."
        )
    if key is None and location is None:
        raise ConfigError(
            f"listener {listener} uses TLS but has no key store: set ssl.keystore.type=PEM "
            "and ssl.keystore.location, or ssl.keystore.key and ssl.keystore.certificate.chain"
        )
    if location is not None and keystore_type != PEM:
        raise ConfigError(f"ssl.keystore.type={keystore_type}: {pem_hint}")
    trust_location, trust_certs = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    if trust_certs is not None:
        if truststore_type != PEM:
            raise ConfigError(
                "SSL trust store certs can be specified only for PEM, but trust store type is "
                f"{truststore_type}."
            )
        if trust_location is not None:
            raise ConfigError(
                "Both SSL trust store location and separate trust certificates are specified."
            )
    has_trust = trust_certs is not None or trust_location is not None
    if has_trust and truststore_type == PEM and get("ssl.truststore.password") is not None:
        raise ConfigError("SSL trust store password cannot be specified for PEM format.")
    if trust_location is not None and truststore_type != PEM:
        raise ConfigError(
            f"ssl.truststore.type={truststore_type}: Python's ssl module cannot read JKS or "
            "PKCS12 stores: use PEM (KIP-651), ssl.truststore.type=PEM"
        )
    client_auth = get("ssl.client.auth") or "none"
    if client_auth not in SSL_CLIENT_AUTH:
        raise _bad("ssl.client.auth", client_auth, "expected one of required, requested, none")
    protocols = tuple(_list(values.get("ssl.enabled.protocols", "TLSv1.2,TLSv1.3")))
    for protocol in protocols:
        if protocol not in TLS_PROTOCOLS:
            raise _bad("ssl.enabled.protocols", protocol, f"expected some of {TLS_PROTOCOLS}")
    if get("ssl.cipher.suites"):
        raise ConfigError(
            "ssl.cipher.suites: kwire cannot apply Java cipher suite names; leave it unset "
            "(the defaults of Python's ssl module apply)"
        )
    rules = get("ssl.principal.mapping.rules")
    if rules is not None and rules != "DEFAULT":
        raise _bad("ssl.principal.mapping.rules", rules, "kwire supports only DEFAULT")
    return SslSettings(
        keystore_type=keystore_type,
        keystore_location=location,
        keystore_key=key,
        keystore_certificate_chain=chain,
        key_password=get("ssl.key.password"),
        truststore_type=truststore_type,
        truststore_location=trust_location,
        truststore_certificates=trust_certs,
        client_auth=client_auth,
        enabled_protocols=protocols,
    )


def _sasl_settings(values: Mapping[str, str], listener: str) -> SaslSettings:
    mechanisms = tuple(_list(values.get("sasl.enabled.mechanisms", "GSSAPI")))
    if not mechanisms:
        raise ConfigError("sasl.enabled.mechanisms: No SASL mechanisms are enabled")
    for mechanism in mechanisms:
        if mechanism not in SASL_MECHANISMS:
            raise _bad(
                "sasl.enabled.mechanisms",
                ",".join(mechanisms),
                f"kwire supports {', '.join(SASL_MECHANISMS)}, not {mechanism}",
            )
    jaas: dict[str, JaasEntry] = {}
    for mechanism in mechanisms:
        key = f"{mechanism.lower()}.sasl.jaas.config"
        text = values.get(key)
        if text is None:
            # JaasContext.loadServerContext without a static JAAS file.
            raise ConfigError(
                f"listener.name.{listener.lower()}.{key} is missing: Could not find a "
                f"'KafkaServer' or '{listener.lower()}.KafkaServer' entry in the JAAS "
                "configuration (kwire reads JAAS only from the listener's sasl.jaas.config)"
            )
        jaas[mechanism] = parse_jaas_config(f"listener.name.{listener.lower()}.{key}", text)
    settings = SaslSettings(enabled_mechanisms=mechanisms, jaas=MappingProxyType(jaas))
    if "sasl.server.max.receive.size" in values:
        settings = dataclasses.replace(
            settings,
            max_receive_size=_int(
                "sasl.server.max.receive.size", values["sasl.server.max.receive.size"]
            ),
        )
    if "connections.max.reauth.ms" in values:
        settings = dataclasses.replace(
            settings,
            connections_max_reauth_ms=_int(
                "connections.max.reauth.ms",
                values["connections.max.reauth.ms"],
                INT64_MIN,
                INT64_MAX,
            ),
        )
    return settings


def listener_security(props: Mapping[str, str], endpoint: Endpoint) -> ListenerSecurity:
    """The security settings `endpoint`'s protocol needs, from its listener-prefixed keys
    first (ChannelBuilders.channelBuilderConfigs). For SASL_SSL, ssl.client.auth applies
    only when listener-prefixed, as in Kafka (KIP-684); raises ConfigError."""
    protocol = endpoint.security_protocol
    values = _listener_values(props, endpoint.listener_name)
    ssl = sasl = None
    if protocol in ("SSL", "SASL_SSL"):
        ssl = _ssl_settings(values, endpoint.listener_name)
        prefixed = f"listener.name.{endpoint.listener_name.lower()}.ssl.client.auth"
        if protocol == "SASL_SSL" and prefixed not in props:
            ssl = dataclasses.replace(ssl, client_auth="none")
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        sasl = _sasl_settings(values, endpoint.listener_name)
    return ListenerSecurity(protocol=protocol, ssl=ssl, sasl=sasl)


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
    ("default.replication.factor", "default_replication_factor", "int", INT32_MIN),
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
    # delegation.token.secret.key (or its old name delegation.token.master.key): unset or
    # empty turns token authentication off, as in Kafka.
    delegation_token_secret_key: str | None = None
    delegation_token_max_lifetime_ms: int = 7 * 24 * 3600 * 1000
    delegation_token_expiry_time_ms: int = 24 * 3600 * 1000
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
        ):
            if key in props:
                values[attr] = _bool(key, props[key])
        # check_no_java_plugins let through only Kafka's StandardAuthorizer (or nothing).
        values["standard_authorizer"] = bool(props.get("authorizer.class.name"))
        values["super_users"] = props.get("super.users", "")
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
