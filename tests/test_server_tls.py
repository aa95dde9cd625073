"""TLS on SSL listeners (kwire.server.security, kwire.server.serve), against certificates
made at test time with the openssl command, and a TLS client (ssl + trio).

Kafka 3.9's behaviour, which each test checks:
- DefaultSslEngineFactory: the key store gives the server's key and chain (PEM since
  KIP-651: a file, or the key and chain inline); ssl.client.auth=required demands a
  client certificate that chains to the trust store, requested takes one if offered, none
  asks for none.
- SslTransportLayer/Selector: a failed handshake closes that connection only (and is an
  authentication failure, logged); a plaintext client gets no answer.
- DefaultKafkaPrincipalBuilder with the DEFAULT mapping rule: User:<subject DN, RFC 2253>.
- kwire-specific: JKS and PKCS12 stores are refused at start-up (Python's ssl reads PEM).
"""

from __future__ import annotations

import logging
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from server_harness import KwireServer, ServerStartError, free_port

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import encode_request
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.server.__main__ import build_settings, connection_limits
from kwire.server.client import KafkaClient
from kwire.server.config import ConfigError, ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import SocketServer
from kwire.server.tls import certificate_principal
from kwire.storage import format_storage, random_uuid

HOST = "127.0.0.1"
TIMEOUT_S = 10.0
KEY_PASSWORD = "key-secret"


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client one, all PEM files."""

    ca: Path
    ca_key: Path
    server_key: Path
    server_key_encrypted: Path
    server_cert: Path
    keystore: Path  # server key and certificate in one file
    client_key: Path
    client_cert: Path
    stranger_key: Path  # a client certificate no trusted CA signed
    stranger_cert: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, ca: str, ca_key: str, ext: str) -> None:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def _self_signed_ca(directory: Path, name: str, subject: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", subject,
        cwd=directory,
    )  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed_ca(directory, "ca", "/CN=kwire-test-ca")
    _self_signed_ca(directory, "other-ca", "/CN=someone-else")
    _signed(directory, "server", "/CN=localhost", "ca.pem", "ca.key", "subjectAltName=IP:127.0.0.1")
    _signed(
        directory, "client", "/O=kwire/CN=client", "ca.pem", "ca.key", "keyUsage=digitalSignature"
    )
    _signed(directory, "stranger", "/CN=stranger", "other-ca.pem", "other-ca.key", "keyUsage=digitalSignature")  # fmt: skip
    _openssl(
        "pkcs8", "-topk8", "-in", "server.key", "-out", "server-encrypted.key",
        "-passout", f"pass:{KEY_PASSWORD}", "-v2", "aes-256-cbc", cwd=directory,
    )  # fmt: skip
    keystore = directory / "keystore.pem"
    keystore.write_text(
        (directory / "server.key").read_text() + (directory / "server.pem").read_text()
    )
    return Certificates(
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_key=directory / "server.key",
        server_key_encrypted=directory / "server-encrypted.key",
        server_cert=directory / "server.pem",
        keystore=keystore,
        client_key=directory / "client.key",
        client_cert=directory / "client.pem",
        stranger_key=directory / "stranger.key",
        stranger_cert=directory / "stranger.pem",
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def ssl_properties(certs: Certificates, **extra: str) -> dict[str, str]:
    return {
        "listener.security.protocol.map": "CONTROLLER:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
        **extra,
    }


def controller_config(
    tmp_path: Path, port: int, properties: dict[str, str]
) -> ControllerServerConfig:
    return ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "controller"),
            "connection.failed.authentication.delay.ms": "50",
            **properties,
        }
    )


@dataclass
class Running:
    server: SocketServer
    port: int
    node: ControllerNode


@asynccontextmanager
async def running_server(tmp_path: Path, properties: dict[str, str]) -> AsyncIterator[Running]:
    """A one-node controller on a free port with these .properties keys."""
    port = free_port()
    config = controller_config(tmp_path, port, properties)
    format_storage(config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(config), seed=1)
    server = SocketServer(
        node,
        max_request_bytes=config.socket_request_max_bytes,
        limits=connection_limits(config),
        security=config.controller_security,
        failed_authentication_delay_ms=config.failed_authentication_delay_ms,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run, HOST, port)
            yield Running(server, port, node)
            nursery.cancel_scope.cancel()
    finally:
        node.close()


def client_context(certs: Certificates, *, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert == "client":
        context.load_cert_chain(certs.client_cert, certs.client_key)
    elif cert == "stranger":
        context.load_cert_chain(certs.stranger_cert, certs.stranger_key)
    return context


async def tls_client(port: int, context: ssl.SSLContext) -> KafkaClient:
    tcp = await trio.open_tcp_stream(HOST, port)
    stream = trio.SSLStream(tcp, context, server_hostname=HOST)
    await stream.do_handshake()
    return KafkaClient(stream)  # type: ignore[arg-type]  # any trio stream will do


async def api_versions_and_describe_cluster(client: KafkaClient) -> tuple[Any, Any]:
    versions = await client.request(ApiVersionsRequest(), 0)
    cluster = await client.request(DescribeClusterRequest(endpoint_type=2), 1)
    return versions, cluster


def inline_pem(certs: Certificates) -> dict[str, str]:
    return {
        "ssl.keystore.location": "",
        "ssl.keystore.key": certs.server_key.read_text(),
        "ssl.keystore.certificate.chain": certs.server_cert.read_text(),
        "ssl.truststore.location": "",
        "ssl.truststore.certificates": certs.ca.read_text(),
    }


KEYSTORES: dict[str, Callable[[Certificates], dict[str, str]]] = {
    "PEM key and chain in one file": lambda c: {},
    "PEM key and chain inline": inline_pem,
    "encrypted PKCS#8 key with ssl.key.password": lambda c: {
        "ssl.keystore.location": "",
        "ssl.keystore.key": c.server_key_encrypted.read_text(),
        "ssl.keystore.certificate.chain": c.server_cert.read_text(),
        "ssl.key.password": KEY_PASSWORD,
    },
}


@pytest.mark.parametrize("keystore", KEYSTORES, ids=list(KEYSTORES))
async def test_a_tls_client_runs_api_versions_and_describe_cluster(
    tmp_path: Path, certs: Certificates, keystore: str
) -> None:
    properties = {**ssl_properties(certs), **KEYSTORES[keystore](certs)}
    properties = {k: v for k, v in properties.items() if v}
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            client = await tls_client(running.port, client_context(certs))
            versions, cluster = await api_versions_and_describe_cluster(client)
            await client.aclose()
    assert isinstance(versions, ApiVersionsResponse) and versions.error_code == ErrorCode.NONE
    assert isinstance(cluster, DescribeClusterResponse) and cluster.error_code == ErrorCode.NONE
    assert [(b.broker_id, b.port) for b in cluster.brokers] == [(1, running.port)]


# ssl.client.auth x the client's certificate -> whether requests are answered.
CLIENT_AUTH_CASES = [
    ("none, no certificate", "none", None, True),
    ("none, a certificate (not asked for)", "none", "client", True),
    ("requested, no certificate", "requested", None, True),
    ("requested, a trusted certificate", "requested", "client", True),
    ("requested, an untrusted certificate", "requested", "stranger", False),
    ("required, no certificate", "required", None, False),
    ("required, a trusted certificate", "required", "client", True),
    ("required, an untrusted certificate", "required", "stranger", False),
]


@pytest.mark.parametrize(
    ("client_auth", "cert", "served"),
    [c[1:] for c in CLIENT_AUTH_CASES],
    ids=[c[0] for c in CLIENT_AUTH_CASES],
)
async def test_ssl_client_auth_decides_which_clients_are_served(
    tmp_path: Path, certs: Certificates, client_auth: str, cert: str | None, served: bool
) -> None:
    properties = ssl_properties(certs, **{"ssl.client.auth": client_auth})
    async with running_server(tmp_path, properties) as running:
        with trio.fail_after(TIMEOUT_S):
            try:
                client = await tls_client(running.port, client_context(certs, cert=cert))
                versions, _ = await api_versions_and_describe_cluster(client)
                answered = versions.error_code == ErrorCode.NONE
            except (trio.BrokenResourceError, ConnectionError):
                answered = False  # TLS 1.3: the refusal arrives after the client's handshake
        statistics = running.server.statistics()
    assert answered is served
    assert statistics.authentications_failed == (0 if served else 1)


async def test_a_plaintext_client_is_refused_and_tls_clients_are_still_served(
    tmp_path: Path, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kwire.server")
    async with running_server(tmp_path, ssl_properties(certs)) as running:
        with trio.fail_after(TIMEOUT_S):
            plain = await KafkaClient.connect(HOST, running.port)
            header = RequestHeader(request_api_key=18, request_api_version=0, correlation_id=1)
            await plain.send_raw(encode_request(header, ApiVersionsRequest()))
            assert await plain.receive_frame() is None  # closed, never answered
            await plain.aclose()
            client = await tls_client(running.port, client_context(certs))
            versions, _ = await api_versions_and_describe_cluster(client)
            await client.aclose()
    assert versions.error_code == ErrorCode.NONE
    assert any(
        "Failed authentication" in r.getMessage() and "SSL handshake failed" in r.getMessage()
        for r in caplog.records
    )


def test_the_principal_of_a_client_certificate_is_its_subject_in_rfc_2253_form(
    certs: Certificates,
) -> None:
    decoded = ssl._ssl._test_decode_cert(str(certs.client_cert))  # type: ignore[attr-defined]
    # DefaultKafkaPrincipalBuilder: X500Principal.getName(), last RDN first.
    assert certificate_principal(decoded) == "User:CN=client,O=kwire"
    assert certificate_principal(None) == "User:ANONYMOUS"
    assert certificate_principal({}) == "User:ANONYMOUS"


# Start-up refusals: DefaultSslEngineFactory's messages, and kwire's PEM-only rule.
STARTUP_REFUSALS = [
    ("a JKS key store", {"ssl.keystore.type": "JKS", "ssl.keystore.password": "x"}, "use PEM"),
    (
        "a PKCS12 key store",
        {"ssl.keystore.type": "PKCS12", "ssl.keystore.password": "x"},
        "use PEM",
    ),
    ("a JKS trust store", {"ssl.truststore.type": "JKS"}, "use PEM"),
    (
        "a key store password with PEM",
        {"ssl.keystore.password": "x"},
        "SSL key store password cannot be specified with PEM format",
    ),
    (
        "a trust store password with PEM",
        {"ssl.truststore.password": "x"},
        "SSL trust store password cannot be specified for PEM format.",
    ),
    ("no key store", {"ssl.keystore.location": ""}, "has no key store"),
    ("an unknown ssl.client.auth", {"ssl.client.auth": "maybe"}, "ssl.client.auth=maybe"),
]


@pytest.mark.parametrize(
    ("changes", "message"), [c[1:] for c in STARTUP_REFUSALS], ids=[c[0] for c in STARTUP_REFUSALS]
)
def test_tls_settings_kwire_cannot_use_are_refused_at_start_up(
    tmp_path: Path, certs: Certificates, changes: dict[str, str], message: str
) -> None:
    properties = {k: v for k, v in {**ssl_properties(certs), **changes}.items() if v}
    with pytest.raises(ConfigError, match=message):
        controller_config(tmp_path, 9093, properties)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ssl.key.password": "wrong"}, "ssl.keystore.key: the PEM keystore configs failed"),
        ({"ssl.key.password": ""}, "ssl.keystore.key: the PEM keystore configs failed"),
    ],
    ids=["a wrong key password", "no key password for an encrypted key"],
)
def test_a_key_store_that_does_not_load_stops_the_server_from_starting(
    tmp_path: Path, certs: Certificates, changes: dict[str, str], message: str
) -> None:
    properties = {
        **ssl_properties(certs),
        "ssl.keystore.location": "",
        "ssl.keystore.key": certs.server_key_encrypted.read_text(),
        "ssl.keystore.certificate.chain": certs.server_cert.read_text(),
        **changes,
    }
    config = controller_config(tmp_path, 9093, {k: v for k, v in properties.items() if v})
    format_storage(config, random_uuid(), "3.9-IV0")
    with pytest.raises(ConfigError, match=message):
        build_settings(config)  # the client side, towards the other controllers
    node = ControllerNode(build_settings(controller_config(tmp_path, 9093, {})), seed=1)
    try:
        with pytest.raises(ConfigError, match=message):  # the listener's side
            SocketServer(node, max_request_bytes=1024, security=config.controller_security)
    finally:
        node.close()


def test_a_key_store_file_that_does_not_load_exits_1_with_one_line_naming_the_key(
    tmp_path: Path,
) -> None:
    """The store loads inside the running server; its failure still reaches the user as
    one line, not a traceback from the server's task group."""
    server = KwireServer(
        tmp_path / "kwire",
        extra_properties={
            "listener.security.protocol.map": "CONTROLLER:SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tmp_path / "missing.pem"),
        },
    )
    server.format()
    try:
        with pytest.raises(ServerStartError):
            server.start()
        assert server.wait_exit() == 1
        stderr = server.stderr()
        assert "Traceback" not in stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, stderr
        assert errors[0].startswith(f"error: ssl.keystore.location={tmp_path / 'missing.pem'}")
    finally:
        server.close()
