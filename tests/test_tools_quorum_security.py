"""``kwire quorum --command-config``: the client's TLS and SASL settings (Kafka's client
property names, as ``kwire shell`` takes them) reach a controller whose listener asks for
them; a refused handshake or password is reported at once, not retried until the timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from server_harness import HOST, KwireServer, write_properties
from test_server_sasl import sasl_properties
from test_server_tls import Certificates, ssl_properties
from test_server_tls import certs as certs  # noqa: F401  (the module fixture)
from test_tools_shell_security import START_TIMEOUT_S, client_config, tls_client_configs

from kwire.tools.quorum import main

REFUSED_WITHIN_S = 20.0  # far below the 60 s --timeout-ms a retried failure would take


def quorum(
    capsys: pytest.CaptureFixture[str], port: int, *options: str
) -> tuple[int, str, str, float]:
    began = time.monotonic()
    status = main(["--bootstrap-controller", f"{HOST}:{port}", *options, "describe", "--status"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err, time.monotonic() - began


def test_a_sasl_listener_is_described_with_the_users_password_and_refuses_a_wrong_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = client_config(tmp_path, "admin", "PLAIN", "admin", "admin-secret")
    wrong = client_config(tmp_path, "wrong", "PLAIN", "admin", "not-the-password")
    with KwireServer(tmp_path / "server", extra_properties=sasl_properties()) as server:
        server.format()
        server.start(timeout=START_TIMEOUT_S)
        status, out, err, _ = quorum(capsys, server.port, "--command-config", str(admin))
        assert (status, err) == (0, "")
        assert out.splitlines()[:2] == [
            f"ClusterId:              {server.cluster_id}",
            "LeaderId:               1",
        ]
        status, out, err, took = quorum(capsys, server.port, "--command-config", str(wrong))
        assert (status, out) == (1, "")
        assert "SaslAuthenticate: SASL_AUTHENTICATION_FAILED" in err
        assert took < REFUSED_WITHIN_S
        # Without the settings the listener never answers a plain client: a timeout.
        status, _, err, _ = quorum(capsys, server.port, "--timeout-ms", "1500")
        assert status == 1 and err.startswith("Timed out waiting for a node assignment.")


def test_tls_with_a_client_certificate_and_without_one(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    certs: Certificates,  # noqa: F811
) -> None:
    known, anonymous = tls_client_configs(tmp_path, certs)
    listener = ssl_properties(certs, **{"ssl.client.auth": "required"})
    with KwireServer(tmp_path / "server", extra_properties=listener) as server:
        server.format()
        server.start(timeout=START_TIMEOUT_S)
        status, out, err, _ = quorum(capsys, server.port, "--command-config", str(known))
        assert (status, err) == (0, "")
        assert out.splitlines()[1] == "LeaderId:               1"
        status, out, err, took = quorum(capsys, server.port, "--command-config", str(anonymous))
        assert (status, out) == (1, "")
        assert err.startswith("TLS handshake failed") and took < REFUSED_WITHIN_S


def test_a_command_config_the_tool_cannot_honour_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kerberos = write_properties(
        tmp_path / "gssapi.properties", {"security.protocol": "SASL_PLAINTEXT"}
    )
    status, out, err, _ = quorum(capsys, 1, "--command-config", str(kerberos))
    assert (status, out) == (1, "")
    assert err == "sasl.mechanism: GSSAPI is not supported (PLAIN, SCRAM-SHA-*)\n"
