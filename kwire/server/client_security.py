"""The client side of a secured Kafka connection (ChannelBuilders.clientChannelBuilder):
TLS, then ApiVersions, then SASL (SaslClientAuthenticator: PLAIN, SCRAM-SHA-256/512).

Used by a controller's own connections to other controllers, as Kafka's RaftManager builds
them from the first controller listener (its protocol from listener.security.protocol.map,
its ``ssl.*`` keys, ``sasl.mechanism.controller.protocol`` and the username and password
of that mechanism's JAAS entry): the raft channels (kwire.server.peer_channel) and the
controller registration (KIP-919); and by the tools (``kwire shell``, ``kwire quorum``),
which take Kafka's client properties instead (kwire.tools.shell_client).

SASL: SaslHandshake v1 naming the mechanism, then SaslAuthenticate v2 tokens. PLAIN sends
``\\0user\\0password``; SCRAM follows RFC 5802 and checks the server's signature. The
answer's session_lifetime_ms (KIP-368) tells when the client must authenticate again:
`reauthentication_due_ms` picks a point between 85 % and 95 % of it, as Kafka's client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.sasl_authenticate import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
)
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest, SaslHandshakeResponse
from kwire.server.client import KafkaClient
from kwire.server.tls import client_ssl_context

if TYPE_CHECKING:
    from kwire.server.config import ControllerServerConfig

__all__ = [
    "ClientAuthenticationError",
    "PLAINTEXT",
    "ClientSecurity",
    "MIN_REAUTH_INTERVAL_MS",
    "authenticate",
    "connect",
    "controller_client_security",
    "open_stream",
    "secure_stream",
    "reauthentication_due_ms",
]

SOFTWARE_VERSION = "0.1.0"
SCRAM_DIGESTS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
HANDSHAKE_VERSION = 1  # followed by SaslAuthenticate requests (not raw tokens)
AUTHENTICATE_VERSION = 2  # carries session_lifetime_ms (KIP-368)
# A listener starts at most one re-authentication a second on a connection (KafkaChannel's
# MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS); a SaslHandshake sooner is answered ILLEGAL_SASL_STATE.
MIN_REAUTH_INTERVAL_MS = 1000


class ClientAuthenticationError(Exception):
    """TLS or SASL refused this client (Kafka's AuthenticationException); the message says
    which step and why."""


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """How to secure a connection: the protocol name, the TLS context (SSL, SASL_SSL), the
    SASL mechanism and credentials (SASL_*). `problem`, when set, says why this client
    cannot authenticate (a configuration gap found at start-up); connecting then fails
    with it rather than with the server's refusal."""

    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanism: str = ""
    username: str = ""
    password: str = ""
    problem: str = ""

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")


PLAINTEXT = ClientSecurity()  # no TLS, no SASL


def controller_client_security(config: ControllerServerConfig) -> ClientSecurity:
    """A controller's security towards other controllers (RaftManager.buildNetworkClient):
    the first controller listener's protocol and TLS keys, with the SASL client settings
    the configuration parsed (`ControllerServerConfig.controller_client_sasl`). Raises
    ConfigError when the TLS stores cannot be loaded."""
    name = config.controller_listener_names[0]
    security = config.listener_security.get(name)
    protocol = config.listener_security_protocol_map.get(name, name)
    if security is None:  # the first controller listener is not bound here
        return ClientSecurity(protocol=protocol)
    context = client_ssl_context(security.ssl) if security.ssl is not None else None
    sasl = config.controller_client_sasl
    if not protocol.startswith("SASL"):
        return ClientSecurity(protocol=protocol, ssl_context=context)
    if sasl is None:  # refused at load time for a quorum that needs it
        return ClientSecurity(
            protocol=protocol, ssl_context=context, problem=config.controller_client_problem
        )
    return ClientSecurity(
        protocol=protocol,
        ssl_context=context,
        mechanism=sasl.mechanism,
        username=sasl.username or "",
        password=sasl.password or "",
        problem=sasl.problem,
    )


async def open_stream(host: str, port: int, security: ClientSecurity) -> trio.abc.Stream:
    """A TCP connection, with its TLS handshake done when `security` has a TLS context.
    Raises OSError (connect) or ClientAuthenticationError (`secure_stream`)."""
    return await secure_stream(await trio.open_tcp_stream(host, port), host, port, security)


async def secure_stream(
    stream: trio.abc.Stream, host: str, port: int, security: ClientSecurity
) -> trio.abc.Stream:
    """`stream` (connected to `host`:`port`) after its TLS handshake, when `security` has
    a TLS context; closed and ClientAuthenticationError when the handshake failed (a
    certificate that does not chain to the trust store or does not name `host`, a peer
    that closed the connection)."""
    if security.ssl_context is None:
        return stream
    tls = trio.SSLStream(stream, security.ssl_context, server_hostname=host)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as error:
        await trio.aclose_forcefully(stream)
        reason = tls_failure(error)
        if not isinstance(error.__cause__, ssl.SSLError) or "EOF" in reason:  # no TLS answer
            reason += " (does the listener use TLS?)"
        raise ClientAuthenticationError(f"TLS handshake failed: {host}:{port}: {reason}") from None
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise
    return tls


def tls_failure(error: BaseException) -> str:
    """The reason under a broken TLS stream (the ssl error trio wraps), in words."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLError):
        return getattr(cause, "verify_message", None) or cause.reason or str(cause)
    return str(cause or error) or "the connection closed"


Exchange = Callable[[Message, int], Awaitable[Message]]


async def authenticate(exchange: Exchange, security: ClientSecurity) -> int:
    """SaslHandshake then SaslAuthenticate through `exchange` (send a request at a version,
    return the answer). Returns the session lifetime the server granted (ms, 0: none).
    Raises ClientAuthenticationError naming the server's error code and message."""
    if security.problem:
        raise ClientAuthenticationError(security.problem)
    handshake = await exchange(SaslHandshakeRequest(mechanism=security.mechanism), 1)
    assert isinstance(handshake, SaslHandshakeResponse)
    if handshake.error_code == ErrorCode.ILLEGAL_SASL_STATE and not handshake.mechanisms:
        # Kafka's answer to SaslHandshake on a listener without SASL (KafkaApis).
        raise ClientAuthenticationError(
            "SaslHandshake: ILLEGAL_SASL_STATE (enabled: none): does the listener use SASL?"
        )
    if handshake.error_code != ErrorCode.NONE:
        raise ClientAuthenticationError(
            f"SaslHandshake: {error_name(handshake.error_code)} "
            f"(enabled: {', '.join(handshake.mechanisms)})"
        )
    if security.mechanism == "PLAIN":
        token = f"\0{security.username}\0{security.password}".encode()
        return (await _token(exchange, token)).session_lifetime_ms
    digest = SCRAM_DIGESTS[security.mechanism]
    user = security.username.replace("=", "=3D").replace(",", "=2C")
    bare = f"n={user},r={secrets.token_hex(16)}"
    server_first = (await _token(exchange, f"n,,{bare}".encode())).auth_bytes.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(",") if "=" in item)
    try:
        salted = hashlib.pbkdf2_hmac(
            digest, security.password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
    except (KeyError, ValueError):
        raise ClientAuthenticationError(
            f"SCRAM: unexpected server message {server_first!r}"
        ) from None
    client_key = hmac.digest(salted, b"Client Key", digest)
    without_proof = f"c=biws,r={fields.get('r', '')}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.new(digest, client_key).digest(), auth_message, digest)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    answer = await _token(exchange, final.encode())
    expected = hmac.digest(hmac.digest(salted, b"Server Key", digest), auth_message, digest)
    if bytes(answer.auth_bytes) != b"v=" + base64.b64encode(expected):
        raise ClientAuthenticationError("SCRAM: the server's signature does not match")
    return answer.session_lifetime_ms


async def _token(exchange: Exchange, token: bytes) -> SaslAuthenticateResponse:
    answer = await exchange(SaslAuthenticateRequest(auth_bytes=token), AUTHENTICATE_VERSION)
    assert isinstance(answer, SaslAuthenticateResponse)
    if answer.error_code != ErrorCode.NONE:
        raise ClientAuthenticationError(
            f"SaslAuthenticate: {error_name(answer.error_code)}: {answer.error_message}"
        )
    return answer


def reauthentication_due_ms(now_ms: float, session_lifetime_ms: int) -> float:
    """When a client re-authenticates a session granted for `session_lifetime_ms` (KIP-368:
    at a random point between 85 % and 95 % of it; inf when the session does not expire)."""
    if session_lifetime_ms <= 0:
        return float("inf")
    share = 0.85 + 0.10 * random.random()  # noqa: S311 (timing only)
    return now_ms + session_lifetime_ms * share


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


async def connect(
    host: str, port: int, security: ClientSecurity, client_id: str
) -> tuple[KafkaClient, dict[int, tuple[int, int]]]:
    """A connected, authenticated client and the server's API versions (ApiVersions v3
    first, then SASL). Raises OSError (connect) or ClientAuthenticationError (TLS,
    ApiVersions or SASL refused)."""
    stream = await open_stream(host, port, security)
    client = KafkaClient(stream, client_id)  # type: ignore[arg-type]  # any trio stream
    try:
        hello = ApiVersionsRequest(
            client_software_name=client_id, client_software_version=SOFTWARE_VERSION
        )
        try:
            answer = await client.request(hello, 3)
        except trio.BrokenResourceError as error:
            if security.ssl_context is None:
                raise
            raise ClientAuthenticationError(  # TLS 1.3: the server refused our certificate
                f"TLS handshake failed: {host}:{port} closed the connection: {tls_failure(error)}"
            ) from None
        assert isinstance(answer, ApiVersionsResponse)
        if answer.error_code != ErrorCode.NONE:
            raise ClientAuthenticationError(f"ApiVersions: {error_name(answer.error_code)}")
        versions = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}
        if security.uses_sasl:
            await authenticate(client.request, security)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise
    return client, versions
