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

import base64
import hashlib
import hmac
import re
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.sasl_authenticate import SaslAuthenticateRequest
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest
from kwire.server.client import KafkaClient
from kwire.server.properties import load_properties
from kwire.tools.shell_load import ShellLoadError

__all__ = ["ClientSecurity", "connect", "error_name", "security_from_properties"]

CLIENT_ID = "kwire-shell"
SOFTWARE_VERSION = "0.1.0"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = {"PLAIN": "", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str = ""
    username: str = ""
    password: str = ""


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


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
    (connect), trio.BrokenResourceError (TLS handshake) or ShellLoadError (ApiVersions or
    SASL refused)."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    if security.ssl_context is not None:
        tls = trio.SSLStream(stream, security.ssl_context, server_hostname=host)
        await tls.do_handshake()
        stream = tls
    client = KafkaClient(stream, client_id)  # type: ignore[arg-type]  # any trio stream
    hello = ApiVersionsRequest(
        client_software_name=client_id, client_software_version=SOFTWARE_VERSION
    )
    answer = await client.request(hello, 3)
    assert isinstance(answer, ApiVersionsResponse)
    if answer.error_code != ErrorCode.NONE:
        raise ShellLoadError(f"ApiVersions: {error_name(answer.error_code)}")
    versions = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}
    if security.mechanism:
        await _authenticate(client, security)
    return client, versions


async def _authenticate(client: KafkaClient, security: ClientSecurity) -> None:
    handshake = await client.request(SaslHandshakeRequest(mechanism=security.mechanism), 1)
    if handshake.error_code != ErrorCode.NONE:  # type: ignore[attr-defined]
        raise ShellLoadError(
            f"SaslHandshake: {error_name(handshake.error_code)} "  # type: ignore[attr-defined]
            f"(enabled: {', '.join(handshake.mechanisms)})"  # type: ignore[attr-defined]
        )
    if security.mechanism == "PLAIN":
        token = f"\0{security.username}\0{security.password}".encode()
        await _exchange(client, token)
        return
    digest = MECHANISMS[security.mechanism]
    user = security.username.replace("=", "=3D").replace(",", "=2C")
    bare = f"n={user},r={secrets.token_hex(16)}"
    server_first = (await _exchange(client, f"n,,{bare}".encode())).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(",") if "=" in item)
    try:
        salted = hashlib.pbkdf2_hmac(
            digest, security.password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
    except (KeyError, ValueError):
        raise ShellLoadError(f"SCRAM: unexpected server message {server_first!r}") from None
    client_key = hmac.digest(salted, b"Client Key", digest)
    without_proof = f"c=biws,r={fields.get('r', '')}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.new(digest, client_key).digest(), auth_message, digest)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    server_final = await _exchange(client, final.encode())
    expected = hmac.digest(hmac.digest(salted, b"Server Key", digest), auth_message, digest)
    if server_final != b"v=" + base64.b64encode(expected):
        raise ShellLoadError("SCRAM: the server's signature does not match")


async def _exchange(client: KafkaClient, token: bytes) -> bytes:
    answer = await client.request(SaslAuthenticateRequest(auth_bytes=token), 2)
    if answer.error_code != ErrorCode.NONE:  # type: ignore[attr-defined]
        raise ShellLoadError(
            f"SaslAuthenticate: {error_name(answer.error_code)}: "  # type: ignore[attr-defined]
            f"{answer.error_message}"  # type: ignore[attr-defined]
        )
    return bytes(answer.auth_bytes)  # type: ignore[attr-defined]
