"""A quorum on a secured controller listener. Each voter's own connections to the others
(the raft channels of KIP-595, the controller registration of KIP-919) are secured as the
listener is, as Kafka's RaftManager builds its NetworkClient: the first controller
listener's protocol and ``ssl.*`` keys (the key store is the client certificate, the trust
store checks the peer, ``ssl.endpoint.identification.algorithm`` its host name), and SASL
with ``sasl.mechanism.controller.protocol`` and the username and password of that
mechanism's JAAS entry. A refusal is logged and retried, never taken for a dead leader."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
from test_server_sasl import JAAS_PLAIN, sasl_properties
from test_server_tls import Certificates, controller_config, running_server, ssl_properties
from test_server_tls import certs as certs  # noqa: F401  (the module fixture)

from kwire.controller.registrations import ConfigResourceType
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kwire.raft.state import Voter
from kwire.server.client_security import ClientSecurity, connect, controller_client_security
from kwire.server.config import ConfigError
from kwire.server.controller_registration import SECURITY_PROTOCOL_IDS
from kwire.server.node import ControllerNode
from kwire.server.peer_channel import PeerChannel, PeerEvent, ResponseReceived, SendFailed
from kwire.testing import KwireQuorum
from kwire.testing.client import METADATA_TOPIC

HOST = "127.0.0.1"
TIMEOUT_S = 30.0
PLAIN_CLIENT = {"sasl.mechanism.controller.protocol": "PLAIN"}
RETENTION = "log.retention.ms"


def listener_properties(kind: str, certs: Certificates) -> dict[str, str]:
    """The controller listener's keys for each kind of security under test."""
    match kind:
        case "SSL":
            return ssl_properties(certs, **{"ssl.client.auth": "required"})
        case "SASL_SSL":
            return {**ssl_properties(certs), **sasl_properties("SASL_SSL"), **PLAIN_CLIENT}
        case _:
            return {**sasl_properties("SASL_PLAINTEXT"), **PLAIN_CLIENT}


def tool_client(kind: str, certs: Certificates) -> ClientSecurity:
    """What a tool presents to such a listener: the client certificate, or PLAIN admin."""
    context = None
    if kind.endswith("SSL"):
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.load_cert_chain(certs.client_cert, certs.client_key)
    if kind.startswith("SASL"):
        return ClientSecurity(kind, context, "PLAIN", "admin", "admin-secret")
    return ClientSecurity(kind, context)


async def write_config(port: int, security: ClientSecurity, value: str) -> None:
    """A committed write that needs no broker: the cluster-wide default of
    log.retention.ms (IncrementalAlterConfigs on the BROKER resource ""), asked again
    while the new leader answers NOT_CONTROLLER (it activates once it has replayed)."""
    while (code := await _write_config(port, security, value)) == ErrorCode.NOT_CONTROLLER:
        await trio.sleep(0.02)
    assert code == ErrorCode.NONE


async def _write_config(port: int, security: ClientSecurity, value: str) -> int:
    client, _ = await connect(HOST, port, security, "test-client")
    op = IncrementalAlterConfigsRequest.AlterableConfig(
        name=RETENTION, config_operation=0, value=value
    )
    resource = IncrementalAlterConfigsRequest.AlterConfigsResource(
        resource_type=ConfigResourceType.BROKER, resource_name="", configs=[op]
    )
    try:
        answer = await client.request(IncrementalAlterConfigsRequest(resources=[resource]), 1)
    finally:
        await client.aclose()
    assert isinstance(answer, IncrementalAlterConfigsResponse)
    return answer.responses[0].error_code


def retention(node: ControllerNode) -> str | None:
    return node.controller.image.configs.get((ConfigResourceType.BROKER, ""), {}).get(RETENTION)


@pytest.mark.parametrize("kind", ["SSL", "SASL_SSL", "SASL_PLAINTEXT"])
async def test_three_voters_elect_replicate_and_register_over_the_secured_listener(
    tmp_path: Path, certs: Certificates, kind: str
) -> None:
    overrides = listener_properties(kind, certs)
    quorum = KwireQuorum.start(tmp_path, voters=3, mode="inprocess", overrides=overrides)
    try:
        leader = await quorum.wait_leader(timeout=TIMEOUT_S)
        await write_config(quorum.ports[leader], tool_client(kind, certs), "1234")
        assert quorum.inprocess is not None
        nodes = quorum.inprocess.nodes
        with trio.fail_after(TIMEOUT_S):
            # Standbys replay only what is committed: the value on all three is replication.
            while [retention(n) for n in nodes.values()] != ["1234"] * 3:
                await trio.sleep(0.02)
            # Each standby registered over its own secured connection to the leader.
            while len(nodes[leader].controller.image.controllers) < 3:
                await trio.sleep(0.02)
        registrations = nodes[leader].controller.image.controllers.values()
        assert {r.listeners[0].security_protocol for r in registrations} == {
            SECURITY_PROTOCOL_IDS[kind]
        }
        assert {n.raft.leader_id for n in nodes.values()} == {leader}
    finally:
        await quorum.aclose()


# -- one raft channel against a secured listener --------------------------------------------


def peer_channel(
    port: int, security: ClientSecurity, request_timeout_ms: int = 5000
) -> tuple[PeerChannel, trio.MemoryReceiveChannel[PeerEvent]]:
    send, receive = trio.open_memory_channel[PeerEvent](16)
    voter = Voter(node_id=1, host=HOST, port=port)
    channel = PeerChannel(
        voter,
        client_id="raft-client-2",
        request_timeout_ms=request_timeout_ms,
        deliver=send,
        security=security,
    )
    return channel, receive


async def answers(
    channel: PeerChannel,
    inbox: trio.MemoryReceiveChannel[PeerEvent],
    count: int,
    pause_s: float = 0,
) -> list[PeerEvent]:
    """Send ApiVersions `count` times (`pause_s` apart), each once the last was answered."""
    found: list[PeerEvent] = []
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel.run)
            for _ in range(count):
                channel.send(
                    ApiVersionsRequest(client_software_name="kwire", client_software_version="1")
                )
                found.append(await inbox.receive())
                await trio.sleep(pause_s)
            nursery.cancel_scope.cancel()
    return found


def outcome(event: PeerEvent) -> str:
    if isinstance(event, SendFailed):
        return event.failure.name
    assert isinstance(event, ResponseReceived)
    assert isinstance(event.response, ApiVersionsResponse)
    return ErrorCode(event.response.error_code).name


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kwire.peers"
        and r.levelno == logging.ERROR
        and "Authentication" in r.getMessage()
    ]


async def test_a_certificate_the_listener_does_not_trust_is_refused_once_logged_and_retried(
    tmp_path: Path, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = ssl.create_default_context(cafile=str(certs.ca))
    stranger.load_cert_chain(certs.stranger_cert, certs.stranger_key)
    listener = ssl_properties(certs, **{"ssl.client.auth": "required"})
    async with running_server(tmp_path, listener) as server:
        channel, inbox = peer_channel(server.port, ClientSecurity("SSL", stranger))
        events = await answers(channel, inbox, 3, pause_s=0.1)
        assert [outcome(e) for e in events] == ["AUTHENTICATION_FAILED"] * 3
        logged = refusals(caplog)
        assert len(logged) == 1 and "TLS handshake failed" in logged[0], logged
        assert "UNKNOWN_CA" in logged[0]  # the listener's alert says why
        trusted = tool_client("SSL", certs)
        channel, inbox = peer_channel(server.port, trusted)
        assert [outcome(e) for e in await answers(channel, inbox, 1)] == ["NONE"]


async def test_the_peer_host_name_is_checked_unless_identification_is_turned_off(
    tmp_path: Path, certs: Certificates
) -> None:
    """The listener's certificate here names a person, not 127.0.0.1: with the default
    ``https`` identification the peer is refused, with an empty one only its chain counts."""
    keystore = tmp_path / "no-address.pem"
    keystore.write_text(certs.client_key.read_text() + certs.client_cert.read_text())
    listener = ssl_properties(certs, **{"ssl.keystore.location": str(keystore)})
    async with running_server(tmp_path / "server", listener) as server:
        seen = []
        for identification in ("https", ""):
            properties = ssl_properties(
                certs, **{"ssl.endpoint.identification.algorithm": identification}
            )
            config = controller_config(tmp_path, server.port, properties)
            channel, inbox = peer_channel(server.port, controller_client_security(config))
            seen += [outcome(e) for e in await answers(channel, inbox, 1)]
        assert seen == ["AUTHENTICATION_FAILED", "NONE"]


async def test_a_plaintext_voter_closed_on_by_a_tls_listener_is_refused_not_a_lost_leader(
    tmp_path: Path, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """A voter whose controller listener is PLAINTEXT, towards one on SSL: the listener
    takes its ApiVersions for a broken TLS handshake and closes. The voter is up (it
    accepted the connection), so this is a refusal to fix in the configuration, logged
    once, and not a lost connection that would start a fast failover."""
    async with running_server(tmp_path, ssl_properties(certs)) as server:
        channel, inbox = peer_channel(server.port, ClientSecurity("PLAINTEXT"))
        events = await answers(channel, inbox, 2)
        assert [outcome(e) for e in events] == ["AUTHENTICATION_FAILED"] * 2
        (logged,) = refusals(caplog)
        assert "closed the connection before answering ApiVersions" in logged
        assert "This node's controller listener is PLAINTEXT" in logged
        assert "a TCP proxy in front of a stopped voter" in logged


async def test_a_tls_voter_towards_a_plaintext_listener_is_told_to_check_the_protocol(
    tmp_path: Path, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """The reverse: the PLAINTEXT listener reads the ClientHello as a request size, says
    so (a TLS handshake, not a frame over socket.request.max.bytes) and closes."""
    async with running_server(tmp_path, {}) as server:
        channel, inbox = peer_channel(server.port, tool_client("SSL", certs))
        assert [outcome(e) for e in await answers(channel, inbox, 1)] == ["AUTHENTICATION_FAILED"]
        (logged,) = refusals(caplog)
        assert "TLS handshake failed" in logged and "does the listener use TLS?" in logged
        closing = [r.getMessage() for r in caplog.records if "Closing connection" in r.getMessage()]
        assert closing and "is a TLS handshake: the client uses SSL" in closing[0]


@pytest.mark.parametrize("kind", ["PLAINTEXT", "SSL"])
async def test_a_voter_that_accepts_and_says_nothing_times_out_and_is_logged_once(
    certs: Certificates, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """A peer that accepts TCP and never answers (a hung process, another service): each
    attempt ends at controller.quorum.request.timeout.ms with TIMEOUT (alive but silent:
    the fetch timeout decides, not fast failover), and one warning says so."""
    held: list[trio.SocketStream] = []

    async def mute(stream: trio.SocketStream) -> None:
        held.append(stream)
        await trio.sleep_forever()

    security = tool_client(kind, certs) if kind == "SSL" else ClientSecurity()
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, mute, 0, host=HOST))
        port = listener.socket.getsockname()[1]
        channel, inbox = peer_channel(port, security, request_timeout_ms=300)
        assert [outcome(e) for e in await answers(channel, inbox, 2)] == ["TIMEOUT"] * 2
        nursery.cancel_scope.cancel()
    assert len(held) == 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    what = "complete the TLS handshake" if kind == "SSL" else "answer ApiVersions"
    assert warned == [
        f"Voter 1 at {HOST}:{port} accepted the connection but did not {what} within 300 ms"
    ]


async def test_a_sasl_voter_towards_a_plaintext_listener_is_told_to_check_the_protocol(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener without SASL answers SaslHandshake ILLEGAL_SASL_STATE with no mechanism
    (KafkaApis); the refusal says what that means."""
    async with running_server(tmp_path, {}) as server:
        admin = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "admin-secret")
        channel, inbox = peer_channel(server.port, admin)
        assert [outcome(e) for e in await answers(channel, inbox, 1)] == ["AUTHENTICATION_FAILED"]
        (logged,) = refusals(caplog)
        assert logged.endswith(
            "SaslHandshake: ILLEGAL_SASL_STATE (enabled: none): does the listener use SASL?"
        )


async def test_wrong_sasl_credentials_are_refused_with_the_listeners_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(tmp_path, sasl_properties()) as server:
        wrong = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "not-the-password")
        channel, inbox = peer_channel(server.port, wrong)
        assert [outcome(e) for e in await answers(channel, inbox, 2)] == [
            "AUTHENTICATION_FAILED"
        ] * 2
        assert ["SASL_AUTHENTICATION_FAILED" in m for m in refusals(caplog)] == [True]


async def test_refusals_back_off_50_ms_doubling_to_500_ms_even_when_requests_keep_coming(
    tmp_path: Path,
) -> None:
    """Kafka's ClusterConnectionStates: an authentication failure grows the reconnect
    backoff, and only a connection that is ready (authenticated) resets it; the raft core
    retrying every request does not cut the wait short. Seven refusals therefore take at
    least 50 + 100 + 200 + 400 + 500 + 500 ms, not seven quick reconnects."""
    listener = sasl_properties(**{"connection.failed.authentication.delay.ms": "0"})
    async with running_server(tmp_path, listener) as server:
        wrong = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "not-the-password")
        channel, inbox = peer_channel(server.port, wrong)
        began = trio.current_time()
        events = await answers(channel, inbox, 7)
        elapsed_ms = (trio.current_time() - began) * 1000
        assert [outcome(e) for e in events] == ["AUTHENTICATION_FAILED"] * 7
        assert channel.connects == 7
        assert elapsed_ms >= 50 + 100 + 200 + 400 + 500 + 500


async def test_a_refusal_for_a_new_reason_is_logged_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once per run of refusals means once per reason: an operator who fixes one mistake
    and makes another (a new certificate, other credentials) sees the new one at once."""
    async with running_server(tmp_path, sasl_properties()) as server:
        wrong = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "not-the-password")
        gap = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", problem="no username")
        channel, inbox = peer_channel(server.port, wrong)
        seen = []
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(channel.run)
                for security in (wrong, wrong, gap, gap):
                    channel.security = security
                    channel.send(
                        ApiVersionsRequest(client_software_name="k", client_software_version="1")
                    )
                    seen.append(outcome(await inbox.receive()))
                nursery.cancel_scope.cancel()
        assert seen == ["AUTHENTICATION_FAILED"] * 4
        logged = refusals(caplog)
        assert len(logged) == 2, logged
        assert "SASL_AUTHENTICATION_FAILED" in logged[0] and logged[1].endswith("no username")


async def test_a_session_that_expires_is_renewed_on_the_same_connection(tmp_path: Path) -> None:
    """connections.max.reauth.ms: the listener closes a connection whose session expired;
    the channel authenticates again (KIP-368) before its next request instead."""
    listener = sasl_properties(**{"connections.max.reauth.ms": "1500"})
    async with running_server(tmp_path, listener) as server:
        admin = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "admin-secret")
        channel, inbox = peer_channel(server.port, admin)
        events = await answers(channel, inbox, 3, pause_s=0.8)  # 1.6 s in all
        assert [outcome(e) for e in events] == ["NONE"] * 3
        assert channel.connects == 1


async def test_one_second_sessions_are_renewed_again_and_again_on_one_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """connections.max.reauth.ms=1000: renewing at 85-95 % of the session would start a
    re-authentication within a second of the last one, which the listener refuses
    (KafkaChannel: at most one a second, ILLEGAL_SASL_STATE); the channel waits that second
    out instead, so every renewal succeeds on the first connection."""
    listener = sasl_properties(**{"connections.max.reauth.ms": "1000"})
    async with running_server(tmp_path, listener) as server:
        admin = ClientSecurity("SASL_PLAINTEXT", None, "PLAIN", "admin", "admin-secret")
        channel, inbox = peer_channel(server.port, admin)
        events = await answers(channel, inbox, 12, pause_s=0.3)  # 3.6 s: three renewals
        assert [outcome(e) for e in events] == ["NONE"] * 12
        assert channel.connects == 1
        assert refusals(caplog) == []


# -- configuration -----------------------------------------------------------------------


def quorum_config(tmp_path: Path, voters: int, properties: dict[str, str]) -> object:
    listed = ",".join(f"{i}@{HOST}:{9090 + i}" for i in range(1, voters + 1))
    return controller_config(
        tmp_path,
        9091,
        {**properties, "controller.quorum.voters": listed},
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sasl.mechanism.controller.protocol": "GSSAPI"},
            "sasl.mechanism.controller.protocol=GSSAPI",
        ),
        (
            {"sasl.mechanism.controller.protocol": "SCRAM-SHA-512"},
            "listener.name.controller.scram-sha-512.sasl.jaas.config is missing",
        ),
    ],
    ids=["Kafka's default GSSAPI", "a mechanism without its JAAS entry"],
)
def test_a_quorum_whose_voters_cannot_authenticate_to_each_other_does_not_start(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    properties = {**sasl_properties(**{"sasl.enabled.mechanisms": "PLAIN"}), **changes}
    properties.pop("listener.name.controller.scram-sha-512.sasl.jaas.config")
    with pytest.raises(ConfigError, match=message):
        quorum_config(tmp_path, 3, properties)
    sole = quorum_config(tmp_path, 1, properties)  # a sole voter never connects: it starts
    assert message in controller_client_security(sole).problem  # type: ignore[arg-type]


def test_credentials_come_from_the_mechanisms_jaas_entry(tmp_path: Path) -> None:
    config = quorum_config(tmp_path, 3, {**sasl_properties(), **PLAIN_CLIENT})
    security = controller_client_security(config)  # type: ignore[arg-type]
    assert (security.protocol, security.mechanism, security.username, security.password) == (
        "SASL_PLAINTEXT",
        "PLAIN",
        "admin",
        "admin-secret",
    )
    assert "username" in JAAS_PLAIN and security.problem == ""
    no_user = JAAS_PLAIN.replace('username="admin" password="admin-secret" ', "")
    config = quorum_config(
        tmp_path,
        3,
        {
            **sasl_properties(),
            **PLAIN_CLIENT,
            "listener.name.controller.plain.sasl.jaas.config": no_user,
        },
    )
    problem = controller_client_security(config).problem  # type: ignore[arg-type]
    assert problem.startswith(
        'listener.name.controller.plain.sasl.jaas.config has no username="..." and '
        'password="..." options'
    )


def test_an_unknown_endpoint_identification_algorithm_is_refused(
    tmp_path: Path, certs: Certificates
) -> None:
    properties = ssl_properties(certs, **{"ssl.endpoint.identification.algorithm": "ldaps"})
    with pytest.raises(ConfigError, match="ssl.endpoint.identification.algorithm"):
        controller_config(tmp_path, 9093, properties)


# -- real processes: kill -9 of the leader of a SASL_SSL quorum --------------------------------


async def secured_leader(ports: Iterator[int] | list[int], security: ClientSecurity) -> int:
    """The port of the voter that answers DescribeQuorum as leader (over TLS and SASL)."""
    request = DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )
    while True:
        for port in ports:
            try:
                client, _ = await connect(HOST, port, security, "test-probe")
            except OSError:
                continue
            try:
                answer = await client.request(request, 1)
            except (OSError, trio.BrokenResourceError):
                continue
            finally:
                await client.aclose()
            assert isinstance(answer, DescribeQuorumResponse)
            if answer.topics[0].partitions[0].error_code == ErrorCode.NONE:
                return port
        await trio.sleep(0.05)


async def test_a_sasl_ssl_quorum_fails_over_after_a_kill_9_of_its_leader(
    tmp_path: Path, certs: Certificates
) -> None:
    overrides = listener_properties("SASL_SSL", certs)
    quorum = KwireQuorum.start(
        tmp_path, voters=3, mode="subprocess", overrides=overrides, wait_for_leader=False
    )
    client = tool_client("SASL_SSL", certs)
    try:
        ports = quorum.ports
        with trio.fail_after(60):
            first = await secured_leader(list(ports.values()), client)
            await write_config(first, client, "1")
        killed = next(n for n, p in ports.items() if p == first)
        quorum.kill_node(killed)
        with trio.fail_after(TIMEOUT_S):
            survivors = [p for n, p in ports.items() if n != killed]
            second = await secured_leader(survivors, client)
            await write_config(second, client, "2")
        assert second != first
    finally:
        quorum.close()
