"""SASL on controller listeners (kwire.server.security, kwire.server.sasl), driven over
real sockets against a server in this process, with a client written here.

Each expected value is Kafka 3.9's: SaslServerAuthenticator decides the order of the
exchange, which requests are refused and how (answer or not, before closing);
PlainSaslServer and ScramSaslServer decide the error messages; SaslAuthenticate's
session_lifetime_ms is connections.max.reauth.ms (ReauthInfo) or 0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from test_server_tls import HOST, TIMEOUT_S, Certificates, running_server, tls_client
from test_server_tls import certs as certs  # noqa: F401  (the module fixture)

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request
from kwire.protocol.messages.api_versions import ApiVersionsRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)
from kwire.protocol.messages.sasl_authenticate import SaslAuthenticateRequest
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest
from kwire.server.client import KafkaClient
from kwire.server.node import ControllerNode
from kwire.server.sasl import ScramMechanism, ScramServer, scram_credential

JAAS_PLAIN = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-pw";'
)
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
# new ArrayList<>(new HashSet<>(enabled)): String.hashCode buckets 0 (PLAIN, then
# SCRAM-SHA-512 in insertion order) and 6 (SCRAM-SHA-256).
KAFKA_MECHANISM_ORDER = ["PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"]
GENERIC_FAILURE = (
    "Authentication failed during authentication due to invalid credentials with SASL mechanism {}"
)


def sasl_properties(protocol: str = "SASL_PLAINTEXT", **extra: str) -> dict[str, str]:
    return {
        "listener.security.protocol.map": f"CONTROLLER:{protocol}",
        "sasl.enabled.mechanisms": MECHANISMS,
        "listener.name.controller.plain.sasl.jaas.config": JAAS_PLAIN,
        "listener.name.controller.scram-sha-256.sasl.jaas.config": JAAS_SCRAM,
        "listener.name.controller.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        **extra,
    }


def add_scram_user(
    node: ControllerNode, user: str, password: str, mechanism: ScramMechanism
) -> None:
    """What AlterUserScramCredentials would leave in the image."""
    credential = scram_credential(mechanism, password, f"salt-of-{user}".encode(), 4096)
    record = UserScramCredentialRecord(
        name=user,
        mechanism=mechanism.type_id,
        salt=credential.salt,
        stored_key=credential.stored_key,
        server_key=credential.server_key,
        iterations=credential.iterations,
    )
    node.controller.replay(record, 0, node.log.end_offset)


async def connect(port: int) -> KafkaClient:
    return await KafkaClient.connect(HOST, port)


async def handshake(client: KafkaClient, mechanism: str, version: int = 1) -> Any:
    return await client.request(SaslHandshakeRequest(mechanism=mechanism), version)


async def authenticate(client: KafkaClient, token: bytes, version: int = 2) -> Any:
    return await client.request(SaslAuthenticateRequest(auth_bytes=token), version)


def plain_token(user: str, password: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{user}\0{password}".encode()


async def scram_login(
    client: KafkaClient, mechanism: str, user: str, password: str, version: int = 2
) -> tuple[Any, Any]:
    """RFC 5802 from the client's side, written from the RFC (not from kwire.server.sasl)."""
    digest = "sha256" if mechanism.endswith("256") else "sha512"
    nonce = "clientnonce123"
    bare = f"n={user},r={nonce}"
    first = await authenticate(client, f"n,,{bare}".encode(), version)
    if first.error_code != ErrorCode.NONE:
        return first, None
    server_first = first.auth_bytes.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        digest, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", digest)
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.new(digest, client_key).digest(), auth_message, digest)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    second = await authenticate(client, final.encode(), version)
    expected = hmac.digest(hmac.digest(salted, b"Server Key", digest), auth_message, digest)
    if second.error_code == ErrorCode.NONE:
        assert second.auth_bytes == b"v=" + base64.b64encode(expected)  # the server proves itself
    return first, second


async def closed(client: KafkaClient) -> bool:
    """Whether the server closes the connection without sending anything more."""
    return await client.receive_frame() is None


async def describe_cluster_answers(client: KafkaClient) -> bool:
    response = await client.request(DescribeClusterRequest(endpoint_type=2), 1)
    return response.error_code == ErrorCode.NONE


# -- logging in ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_plain_logs_in_with_a_jaas_user_and_is_then_served(
    tmp_path: Path, version: int
) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            versions = await client.request(  # allowed first
                ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3
            )
            hello = await handshake(client, "PLAIN")
            answer = await authenticate(client, plain_token("alice", "alice-pw"), version)
            served = await describe_cluster_answers(client)
    assert versions.error_code == ErrorCode.NONE
    assert (hello.error_code, hello.mechanisms) == (ErrorCode.NONE, KAFKA_MECHANISM_ORDER)
    assert (answer.error_code, answer.auth_bytes) == (ErrorCode.NONE, b"")
    assert answer.session_lifetime_ms == 0  # connections.max.reauth.ms defaults to 0
    assert served


@pytest.mark.parametrize("mechanism", [m.mechanism_name for m in ScramMechanism])
async def test_scram_logs_in_with_the_credentials_in_the_metadata_image(
    tmp_path: Path, mechanism: str
) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        add_scram_user(running.node, "bob", "bob-pw", ScramMechanism.by_name(mechanism))  # type: ignore[arg-type]
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, mechanism)
            first, second = await scram_login(client, mechanism, "bob", "bob-pw")
            served = await describe_cluster_answers(client)
    assert first.error_code == ErrorCode.NONE and first.session_lifetime_ms == 0
    assert second.error_code == ErrorCode.NONE
    assert served


async def test_the_authenticated_principal_reaches_the_controller(tmp_path: Path) -> None:
    seen: list[str] = []
    async with running_server(tmp_path, sasl_properties()) as running:
        original = running.server.handler.controller_request

        async def spy(body: Any, context: Any) -> Any:
            seen.append(context.principal)
            return await original(body, context)

        running.server.handler.controller_request = spy  # type: ignore[method-assign]
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, "PLAIN")
            await authenticate(client, plain_token("alice", "alice-pw"))
            await client.request(CreateTopicsRequest(timeout_ms=1000), 7)
    assert seen == ["User:alice"]  # DefaultKafkaPrincipalBuilder: User:<authorization id>


async def test_handshake_v0_is_followed_by_raw_tokens(tmp_path: Path) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            hello = await handshake(client, "PLAIN", version=0)
            await client.send_raw(plain_token("alice", "alice-pw"))
            token = await client.receive_frame()  # PlainSaslServer's empty challenge
            served = await describe_cluster_answers(client)
    assert hello.error_code == ErrorCode.NONE
    assert token == b""
    assert served


async def test_session_lifetime_is_connections_max_reauth_ms_and_the_session_expires(
    tmp_path: Path,
) -> None:
    properties = sasl_properties(**{"connections.max.reauth.ms": "300"})
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, "PLAIN")
            answer = await authenticate(client, plain_token("alice", "alice-pw"))
            served_at_once = await describe_cluster_answers(client)
            await trio.sleep(0.4)
            header = RequestHeader(request_api_key=60, request_api_version=1, correlation_id=9)
            await client.send_raw(encode_request(header, DescribeClusterRequest(endpoint_type=2)))
            expired = await closed(client)
    assert answer.session_lifetime_ms == 300
    assert served_at_once and expired


# Re-authentication (KIP-368): the same principal renews the session; another is refused.
REAUTH_CASES = [
    ("the same user", "alice", "alice-pw", ErrorCode.NONE, None),
    (
        "another user",
        "admin",
        "admin-secret",
        ErrorCode.SASL_AUTHENTICATION_FAILED,
        "Cannot change principals during re-authentication from User.alice: User.admin",
    ),
]


@pytest.mark.parametrize(
    ("user", "password", "code", "message"),
    [c[1:] for c in REAUTH_CASES],
    ids=[c[0] for c in REAUTH_CASES],
)
async def test_a_client_re_authenticates_on_the_same_connection(
    tmp_path: Path, user: str, password: str, code: int, message: str | None
) -> None:
    properties = sasl_properties(**{"connections.max.reauth.ms": "60000"})
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, "PLAIN")
            await authenticate(client, plain_token("alice", "alice-pw"))
            again = await handshake(client, "PLAIN")
            answer = await authenticate(client, plain_token(user, password))
    assert again.error_code == ErrorCode.NONE
    assert answer.error_code == code
    if message is not None:
        assert answer.error_message == message
    else:
        assert answer.session_lifetime_ms == 60000


# -- failures: (mechanism, user, password) -> Kafka's message ---------------------------------

FAILURES = [
    ("PLAIN, wrong password", "PLAIN", "alice", "nope", "Authentication failed: Invalid username or password"),
    ("PLAIN, unknown user", "PLAIN", "mallory", "x", "Authentication failed: Invalid username or password"),
    ("PLAIN, empty password", "PLAIN", "alice", "", "Authentication failed: password not specified"),
    ("SCRAM-SHA-256, wrong password", "SCRAM-SHA-256", "bob", "nope", GENERIC_FAILURE.format("SCRAM-SHA-256")),
    ("SCRAM-SHA-256, unknown user", "SCRAM-SHA-256", "mallory", "x", GENERIC_FAILURE.format("SCRAM-SHA-256")),
    ("SCRAM-SHA-512, wrong password", "SCRAM-SHA-512", "bob", "nope", GENERIC_FAILURE.format("SCRAM-SHA-512")),
    ("SCRAM-SHA-512, user with only SHA-256", "SCRAM-SHA-512", "carol", "carol-pw", GENERIC_FAILURE.format("SCRAM-SHA-512")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mechanism", "user", "password", "message"),
    [c[1:] for c in FAILURES],
    ids=[c[0] for c in FAILURES],
)
async def test_bad_credentials_get_sasl_authentication_failed_and_the_connection_closes(
    tmp_path: Path, mechanism: str, user: str, password: str, message: str
) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        add_scram_user(running.node, "bob", "bob-pw", ScramMechanism.SCRAM_SHA_256)
        add_scram_user(running.node, "bob", "bob-pw", ScramMechanism.SCRAM_SHA_512)
        add_scram_user(running.node, "carol", "carol-pw", ScramMechanism.SCRAM_SHA_256)
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, mechanism)
            if mechanism == "PLAIN":
                answer = await authenticate(client, plain_token(user, password))
            else:
                first, second = await scram_login(client, mechanism, user, password)
                answer = second or first
            is_closed = await closed(client)
    assert (answer.error_code, answer.error_message) == (
        ErrorCode.SASL_AUTHENTICATION_FAILED,
        message,
    )
    assert is_closed


async def test_an_unknown_mechanism_gets_the_enabled_list_then_the_connection_closes(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            hello = await handshake(client, "GSSAPI")
            is_closed = await closed(client)
    assert hello.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert hello.mechanisms == KAFKA_MECHANISM_ORDER
    assert is_closed


async def test_a_failed_authentication_is_answered_after_the_configured_delay(
    tmp_path: Path,
) -> None:
    properties = sasl_properties(**{"connection.failed.authentication.delay.ms": "300"})
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, "PLAIN")
            started = trio.current_time()
            answer = await authenticate(client, plain_token("alice", "wrong"))
            waited = trio.current_time() - started
    assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert waited >= 0.3


def frame(api_key: int, version: int, body: Any, correlation_id: int = 1) -> bytes:
    header = RequestHeader(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=correlation_id,
        client_id="t",
    )
    return encode_request(header, body)


# Out-of-order requests: what is sent before, and what Kafka answers (None: nothing) then closes.
Step = Callable[[KafkaClient], Any]
OUT_OF_ORDER = [
    ("a request before the handshake", [], frame(60, 1, DescribeClusterRequest(endpoint_type=2)), None),
    ("ApiVersions twice", [frame(18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))],
     frame(18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"), 2), None),
    ("SaslAuthenticate before the handshake", [], frame(36, 2, SaslAuthenticateRequest(auth_bytes=b"x")), None),
    ("a request instead of SaslAuthenticate", [frame(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))],
     frame(60, 1, DescribeClusterRequest(endpoint_type=2), 2),
     (ErrorCode.ILLEGAL_SASL_STATE, "Unexpected Kafka request of type DESCRIBE_CLUSTER during SASL authentication.")),
    ("SaslAuthenticate at an unsupported version", [frame(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))],
     frame(36, 2, SaslAuthenticateRequest(auth_bytes=b"x"), 2)[:2] + b"\x00\x07" + frame(36, 2, SaslAuthenticateRequest(auth_bytes=b"x"), 2)[4:], None),
    ("a frame over sasl.server.max.receive.size", [], frame(17, 1, SaslHandshakeRequest(mechanism="P" * 600)), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "request_frame", "expected"),
    [c[1:] for c in OUT_OF_ORDER],
    ids=[c[0] for c in OUT_OF_ORDER],
)
async def test_out_of_order_requests_are_refused_as_kafka_refuses_them(
    tmp_path: Path, before: list[bytes], request_frame: bytes, expected: tuple[int, str] | None
) -> None:
    properties = sasl_properties(**{"sasl.server.max.receive.size": "512"})
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            for earlier in before:
                await client.send_raw(earlier)
                assert await client.receive_frame() is not None
            await client.send_raw(request_frame)
            try:
                reply = await client.receive_frame()
                is_closed = reply is None or await closed(client)
            except trio.BrokenResourceError:  # closed with our frame unread: a reset
                reply, is_closed = None, True
    assert is_closed
    if expected is None:
        assert reply is None
    else:
        _, response = decode_response(reply, 60, 1)  # type: ignore[arg-type]
        assert (response.error_code, response.error_message) == expected  # type: ignore[attr-defined]


async def test_after_authentication_sasl_requests_get_illegal_sasl_state(tmp_path: Path) -> None:
    async with running_server(tmp_path, sasl_properties()) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await connect(running.port)
            await handshake(client, "PLAIN")
            await authenticate(client, plain_token("alice", "alice-pw"))
            # ControllerApis: no re-authentication without a session lifetime.
            again = await handshake(client, "PLAIN")
            token = await authenticate(client, b"x")
    assert again.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert (token.error_code, token.error_message) == (
        ErrorCode.ILLEGAL_SASL_STATE,
        "SaslAuthenticate request received after successful authentication",
    )


async def test_sasl_ssl_authenticates_inside_tls(tmp_path: Path, certs: Certificates) -> None:
    from test_server_tls import client_context, ssl_properties

    properties = {**ssl_properties(certs), **sasl_properties("SASL_SSL")}
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await tls_client(running.port, client_context(certs))
            await handshake(client, "PLAIN")
            answer = await authenticate(client, plain_token("admin", "admin-secret"))
            served = await describe_cluster_answers(client)
    assert answer.error_code == ErrorCode.NONE and served


# -- the SCRAM server on RFC 7677's example -------------------------------------------------


def test_scram_sha_256_answers_rfc_7677s_example_exchange() -> None:
    credential = scram_credential(
        ScramMechanism.SCRAM_SHA_256, "pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096
    )
    server = ScramServer(
        ScramMechanism.SCRAM_SHA_256,
        lambda user, _: credential if user == "user" else None,
        nonce=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    )
    first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    final = server.evaluate(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.complete and server.authorization_id == "user"


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sasl.enabled.mechanisms": "GSSAPI"}, "not GSSAPI"),
        ({"sasl.enabled.mechanisms": ""}, "No SASL mechanisms are enabled"),
        ({"listener.name.controller.plain.sasl.jaas.config": ""}, "Could not find a 'KafkaServer'"),
        (
            {"listener.name.controller.plain.sasl.jaas.config": "a required; b required;"},
            "contains 2 login modules, should be 1 module",
        ),
        (
            {"listener.name.controller.plain.sasl.jaas.config": "a maybe;"},
            "Invalid login module control flag 'maybe'",
        ),
        (
            {"listener.name.controller.plain.sasl.jaas.config": 'a required x="1"'},
            "not terminated by semi-colon",
        ),
    ],
    ids=["GSSAPI", "no mechanism", "no JAAS", "two login modules", "bad flag", "no semi-colon"],
)
def test_sasl_settings_kwire_cannot_use_are_refused_at_start_up(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    from test_server_tls import controller_config

    from kwire.server.config import ConfigError

    properties = {
        k: v for k, v in {**sasl_properties(), **changes}.items() if v or "mechanisms" in k
    }
    with pytest.raises(ConfigError, match=message):
        controller_config(tmp_path, 9093, properties)
