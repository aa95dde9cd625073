"""The tools' client connection to a controller (kwire shell, kwire quorum): TCP, TLS and
SASL as a Kafka client sets them up from ``--command-config`` (Kafka's client property names).

=============================  ===============================================================
property                       what the shell does
=============================  ===============================================================
``security.protocol``          PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
``ssl.truststore.location``    PEM file of the CA certificates to trust (``ssl.truststore.type``
                               must be PEM; Python's ssl reads no JKS/PKCS12); without it the
                               system's CAs; ``ssl.truststore.certificates`` inline PEM
``ssl.keystore.location``      PEM holding the client's key and certificate chain (mutual TLS),
                               ``ssl.key.password`` its key's password
``ssl.endpoint.identification  ``https`` (default) checks the host name; empty does not
.algorithm``
``sasl.mechanism``             PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default GSSAPI: refused)
``sasl.jaas.config``           ``... required username="u" password="p";``
=============================  ===============================================================

After connecting the client sends ApiVersions v3 (the versions it learns choose Fetch's and
FetchSnapshot's), then with SASL a SaslHandshake v1 and SaslAuthenticate v2 exchange (RFC
5802 for SCRAM: the server's signature is checked). Failures raise ShellLoadError with
the server's error code name and message.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

from kwire.server.client import KafkaClient
from kwire.server.client_security import ClientAuthenticationError, ClientSecurity, error_name
from kwire.server.client_security import connect as secure_connect
from kwire.server.properties import load_properties
from kwire.tools.shell_load import ShellLoadError

__all__ = ["ClientSecurity", "connect", "error_name", "security_from_properties"]

CLIENT_ID = "kwire-shell"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def security_from_properties(path: str | None) -> ClientSecurity:
    """The client security settings of a properties file (None: PLAINTEXT). Raises
    ShellLoadError for a setting the shell cannot honour, naming it."""
    if path is None:
        return ClientSecurity()
    try:
        props = load_properties(Path(path))
    except (OSError, ValueError) as error:
        raise ShellLoadError(f"{path}: {error}") from None
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ShellLoadError(f"security.protocol: unknown protocol {protocol}")
    context = _ssl_context(props) if protocol.endswith("SSL") else None
    if not protocol.startswith("SASL"):
        return ClientSecurity(protocol, context)
    mechanism = props.get("sasl.mechanism", "GSSAPI").upper()
    if mechanism not in MECHANISMS:
        raise ShellLoadError(f"sasl.mechanism: {mechanism} is not supported (PLAIN, SCRAM-SHA-*)")
    options = dict(_JAAS_OPTION.findall(props.get("sasl.jaas.config", "")))
    if "username" not in options or "password" not in options:
        raise ShellLoadError('sasl.jaas.config: needs username="..." and password="..."')
    return ClientSecurity(protocol, context, mechanism, options["username"], options["password"])


def _ssl_context(props: dict[str, str]) -> ssl.SSLContext:
    for key in ("ssl.truststore.type", "ssl.keystore.type"):
        if props.get(key, "PEM").upper() != "PEM":
            raise ShellLoadError(f"{key}: only PEM can be read")
    try:
        context = ssl.create_default_context(
            cafile=props.get("ssl.truststore.location") or None,
            cadata=props.get("ssl.truststore.certificates") or None,
        )
        if props.get("ssl.keystore.location"):
            context.load_cert_chain(
                props["ssl.keystore.location"], password=props.get("ssl.key.password")
            )
    except (OSError, ssl.SSLError) as error:
        raise ShellLoadError(f"ssl: {error}") from None
    if props.get("ssl.endpoint.identification.algorithm", "https") == "":
        context.check_hostname = False
    return context


async def connect(
    host: str, port: int, security: ClientSecurity, client_id: str = CLIENT_ID
) -> tuple[KafkaClient, dict[int, tuple[int, int]]]:
    """A connected, authenticated client and the server's API versions. Raises OSError
    (connect) or ShellLoadError (TLS, ApiVersions or SASL refused)."""
    try:
        return await secure_connect(host, port, security, client_id)
    except ClientAuthenticationError as error:
        raise ShellLoadError(str(error)) from None
