"""``kwire shell --bootstrap-controller --command-config``: the listener's SASL
authentication and StandardAuthorizer apply to the shell as to any client (Kafka 3.9's
ControllerApis: Fetch needs CLUSTER_ACTION on the cluster), and a follower sends the shell
on to the leader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, write_properties
from test_server_quorum_processes import leader_of, register_unfenced_broker
from test_server_quorum_processes import voters as voters  # noqa: F401  (the fixture)
from test_server_sasl import sasl_properties
from test_server_tls import Certificates, ssl_properties
from test_server_tls import certs as certs  # noqa: F401  (the module fixture)

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.tools.shell import main
from kwire.tools.shell_client import connect, security_from_properties

TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0  # importing kwire takes seconds on a loaded machine
AUTHORIZED = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:bob",
}


def client_config(tmp_path: Path, name: str, mechanism: str, user: str, password: str) -> Path:
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    return write_properties(
        tmp_path / f"{name}.properties",
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.jaas.config": f"org.apache.kafka.common.security.{module} required "
            f'username="{user}" password="{password}";',
        },
    )


def shell(
    capsys: pytest.CaptureFixture[str], port: int, config: Path, *command: str
) -> tuple[int, str, str]:
    status = main(
        ["--bootstrap-controller", f"{HOST}:{port}", "--command-config", str(config), *command]
    )
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def add_scram_user(port: int, admin: Path, user: str, password: str) -> None:
    """AlterUserScramCredentials as the admin: SCRAM-SHA-256, 4096 iterations."""
    salt = b"salt-of-" + user.encode()
    upsert = AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
        name=user,
        mechanism=1,
        iterations=4096,
        salt=salt,
        salted_password=hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 4096),
    )
    with trio.fail_after(TIMEOUT_S):
        client, _ = await connect(HOST, port, security_from_properties(str(admin)))
        try:
            answer = await client.request(AlterUserScramCredentialsRequest(upsertions=[upsert]), 0)
        finally:
            await client.aclose()
    assert isinstance(answer, AlterUserScramCredentialsResponse)
    assert answer.results[0].error_code == ErrorCode.NONE, answer


def test_sasl_users_are_authenticated_and_authorized_as_any_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = client_config(tmp_path, "admin", "PLAIN", "admin", "admin-secret")
    alice = client_config(tmp_path, "alice", "PLAIN", "alice", "alice-pw")
    wrong = client_config(tmp_path, "wrong", "PLAIN", "alice", "not-her-password")
    bob = client_config(tmp_path, "bob", "SCRAM-SHA-256", "bob", "bob-pw")
    with KwireServer(
        tmp_path / "server", extra_properties={**sasl_properties(), **AUTHORIZED}
    ) as server:
        server.format()
        server.start(timeout=START_TIMEOUT_S)
        assert shell(capsys, server.port, admin, "cat", "/image/features/metadataVersion") == (
            0,
            "Optional[3.9-IV0]\n",
            "",
        )
        status, _, error = shell(capsys, server.port, alice, "ls")
        assert (status, error) == (
            1,
            f"Error: Fetch from 127.0.0.1:{server.port}: CLUSTER_AUTHORIZATION_FAILED\n",
        )
        status, _, error = shell(capsys, server.port, wrong, "ls")
        assert status == 1 and "SaslAuthenticate: SASL_AUTHENTICATION_FAILED" in error
        trio.run(add_scram_user, server.port, admin, "bob", "bob-pw")
        status, out, _ = shell(capsys, server.port, bob, "ls", "/image/scram/SCRAM-SHA-256")
        assert (status, out) == (0, "bob\n")


def tls_client_configs(tmp_path: Path, certs: Certificates) -> tuple[Path, Path]:  # noqa: F811
    """Client properties trusting the test CA: (with the client's certificate, without)."""
    keystore = tmp_path / "client-keystore.pem"
    keystore.write_text(certs.client_key.read_text() + certs.client_cert.read_text())
    trusting = {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
    }
    anonymous = write_properties(tmp_path / "anonymous.properties", trusting)
    known = write_properties(
        tmp_path / "known.properties", {**trusting, "ssl.keystore.location": str(keystore)}
    )
    return known, anonymous


def test_tls_with_a_client_certificate_is_set_up_from_the_command_config(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    certs: Certificates,  # noqa: F811
) -> None:
    known, anonymous = tls_client_configs(tmp_path, certs)
    listener = ssl_properties(certs, **{"ssl.client.auth": "required"})
    with KwireServer(tmp_path / "server", extra_properties=listener) as server:
        server.format()
        server.start(timeout=START_TIMEOUT_S)
        status, out, _ = shell(capsys, server.port, known, "ls", "/image/features")
        assert (status, out) == (0, "metadataVersion\n")
        status, _, error = shell(capsys, server.port, anonymous, "ls")
        assert status == 1 and error.startswith(
            f"Error: TLS handshake failed: {HOST}:{server.port}"
        )


def test_a_follower_sends_the_shell_on_to_the_leader(
    voters: list[KwireServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    async def prepare() -> KwireServer:
        with trio.fail_after(60):
            leader = await leader_of(voters)
            while not await register_unfenced_broker(leader):
                await trio.sleep(0.1)
                leader = await leader_of(voters)
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name="followed", num_partitions=2, replication_factor=1
                    )
                ],
                timeout_ms=30_000,
            )
            client, _ = await connect(HOST, leader.port, security_from_properties(None))
            try:
                answer = await client.request(request, 7)
            finally:
                await client.aclose()
            assert isinstance(answer, CreateTopicsResponse)
            assert answer.topics[0].error_code == ErrorCode.NONE, answer
            return leader

    leader = trio.run(prepare)
    follower = next(v for v in voters if v.port != leader.port)
    status = main(
        ["--bootstrap-controller", f"{HOST}:{follower.port}", "ls", "/image/topics/byName"]
    )
    assert (status, capsys.readouterr().out) == (0, "followed\n")
