"""A listener's security: its protocol and the ``ssl.*`` and SASL keys Kafka 3.9 reads
for it (SslConfigs, BrokerSecurityConfigs, SaslConfigs, JaasConfig), PEM only."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from kwire.server.properties import (
    INT64_MAX,
    INT64_MIN,
    ConfigError,
    Endpoint,
    _bad,
    _int,
    _list,
)

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
    "ssl.endpoint.identification.algorithm",
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
    configuration's text; `kwire.server.tls` loads them."""

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
    # As a client (to other controllers): "https" checks the peer's host name, "" does not.
    endpoint_identification_algorithm: str = "https"


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
    identification = values.get("ssl.endpoint.identification.algorithm", "https").strip()
    if identification.lower() not in ("https", ""):
        raise _bad(
            "ssl.endpoint.identification.algorithm",
            identification,
            'expected "https" (check the host name) or empty (do not)',
        )
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
        endpoint_identification_algorithm=identification.lower(),
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


# -- the client side: a controller's connections to the other controllers ----------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSasl:
    """The SASL client of a controller's connections to other controllers (Kafka's
    RaftManager: ``sasl.mechanism.controller.protocol``, its credentials the ``username``
    and ``password`` options of the controller listener's JAAS entry for that mechanism,
    JaasContext.Type.SERVER)."""

    mechanism: str
    username: str | None = None
    password: str | None = None
    jaas_key: str = ""  # the key the JAAS entry was read from

    @property
    def problem(self) -> str:
        """Why this node cannot authenticate to its peers ("" when it can)."""
        if self.username is None or self.password is None:
            return (
                f'{self.jaas_key} has no username="..." and password="..." options: they are '
                "the credentials this controller presents to the other controllers"
            )
        return ""


def client_sasl(props: Mapping[str, str], listener: str, mechanism: str) -> ClientSasl:
    """The client SASL settings of `listener` for `mechanism`; ConfigError for a mechanism
    kwire cannot speak or a missing JAAS entry (Kafka fails at start-up on both)."""
    if mechanism not in SASL_MECHANISMS:
        raise _bad(
            "sasl.mechanism.controller.protocol",
            mechanism,
            f"kwire's connections to other controllers speak {', '.join(SASL_MECHANISMS)}",
        )
    key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    text = _listener_values(props, listener).get(f"{mechanism.lower()}.sasl.jaas.config")
    if text is None:
        raise ConfigError(
            f"{key} is missing: Could not find a 'KafkaServer' or "
            f"'{listener.lower()}.KafkaServer' entry in the JAAS configuration for "
            f"sasl.mechanism.controller.protocol={mechanism}"
        )
    options = parse_jaas_config(key, text).options
    return ClientSasl(
        mechanism=mechanism,
        username=options.get("username"),
        password=options.get("password"),
        jaas_key=key,
    )
