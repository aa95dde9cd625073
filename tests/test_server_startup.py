"""`python -m kwire.server` at start-up, as a new user meets it: a listener port already
in use (one line with Kafka's SocketServer message, exit status 1), a listener on port 0
(the bound port is what the node publishes, as Kafka's ControllerServer corrects its
ListenerInfo with socketServer.boundPort), and the line that tells brokers how to reach
the quorum (every voter, not only this node)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import trio
from server_harness import HOST, KwireServer, _child_env, free_port, run_kwire
from test_server_dynamic_quorum import dynamic_server, format_dynamic
from test_server_quorum_processes import describe_quorum

from kwire.log import MetadataLog, MetadataLogConfig
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.records import unframe_metadata_record
from kwire.server.client import KafkaClient
from kwire.storage import random_uuid

TIMEOUT_S = 30.0
LISTENING = re.compile(r"listening on [^ ]+:(\d+) \(CONTROLLER\); brokers use (\S+)")


def test_a_listener_port_in_use_is_one_line_with_kafkas_message_and_exit_status_1(
    tmp_path: Path,
) -> None:
    server = KwireServer(tmp_path)
    server.format()
    with socket.socket() as taken:
        taken.bind((HOST, server.port))
        taken.listen()
        result = run_kwire("kwire.server", server.config_path, timeout=TIMEOUT_S, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: Socket server failed to bind to {HOST}:{server.port}: Address already in use."
    ]


def test_the_start_up_line_names_every_voter_of_a_static_quorum(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@{HOST}:{p}" for i, p in enumerate(ports))
    server = KwireServer(
        tmp_path,
        port=ports[1],
        extra_properties={"node.id": "2", "controller.quorum.voters": voters},
    )
    server.format()
    try:
        server.start(timeout=TIMEOUT_S)  # it listens without a quorum (its peers are down)
        match = LISTENING.search(server.stdout())
    finally:
        server.stop()
    assert match is not None, server.stdout()
    assert match.group(2) == f"controller.quorum.voters={voters}"


def start_on_port_0(server: KwireServer) -> tuple[subprocess.Popen[bytes], int]:
    """Start `server` (configured with port 0) and read the port it says it bound."""
    out = (server.directory / "stdout.txt").open("wb")
    process = subprocess.Popen(
        server.command(),
        stdout=out,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=server.directory,
        env=_child_env(),
    )
    deadline = time.monotonic() + TIMEOUT_S
    while (match := LISTENING.search(server.directory.joinpath("stdout.txt").read_text())) is None:
        assert process.poll() is None, "kwire exited before listening"
        assert time.monotonic() < deadline, "kwire did not listen in time"
        time.sleep(0.02)
    return process, int(match.group(1))


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT_S)


async def describe_when_led(port: int) -> DescribeQuorumResponse:
    """DescribeQuorum v2 from the node on `port`, once it leads (polled every 50 ms)."""
    with trio.fail_after(TIMEOUT_S):
        while True:
            client = await KafkaClient.connect(HOST, port)
            try:
                answer = await client.request(describe_quorum(), 2)
            finally:
                await client.aclose()
            assert isinstance(answer, DescribeQuorumResponse)
            if answer.topics and answer.topics[0].partitions[0].error_code == ErrorCode.NONE:
                return answer
            await trio.sleep(0.05)


def registered_controller_ports(data_dir: Path) -> list[int]:
    """The controller listener ports of every RegisterControllerRecord in the log."""
    log = MetadataLog.open(data_dir / "__cluster_metadata-0", MetadataLogConfig())
    try:
        ports = []
        for batch in log.read_batches(0, max_offset=log.end_offset):
            for record in [] if batch.is_control else batch.records:
                api_key, version, body = unframe_metadata_record(record.value or b"")
                message = METADATA_RECORDS[api_key].decode(body, version)
                if isinstance(message, RegisterControllerRecord):
                    ports += [e.port for e in message.end_points]
        return ports
    finally:
        log.close()


async def test_a_listener_on_port_0_publishes_the_port_it_bound(tmp_path: Path) -> None:
    server = KwireServer(tmp_path, port=0)  # listeners and controller.quorum.voters: port 0
    server.format()
    process, port = start_on_port_0(server)
    try:
        assert port != 0
        answer = await describe_when_led(port)
        deadline = time.monotonic() + TIMEOUT_S
        while not registered_controller_ports(server.data_dir):
            assert time.monotonic() < deadline, "the controller never registered"
            await trio.sleep(0.05)
    finally:
        stop(process)
    assert [(n.node_id, [(e.host, e.port) for e in n.listeners]) for n in answer.nodes] == [
        (1, [(HOST, port)])
    ]
    assert registered_controller_ports(server.data_dir) == [port]


async def test_a_dynamic_voter_on_port_0_writes_the_bound_port_in_its_voters_record(
    tmp_path: Path,
) -> None:
    server = dynamic_server(tmp_path, 1, 0, f"{HOST}:0")
    format_dynamic(server, random_uuid(), "--standalone")
    process, port = start_on_port_0(server)
    try:
        answer = await describe_when_led(port)
    finally:
        stop(process)
    assert [(n.node_id, [(e.host, e.port) for e in n.listeners]) for n in answer.nodes] == [
        (1, [(HOST, port)])
    ]


def test_the_same_node_id_twice_in_the_voters_is_refused_in_one_line_with_exit_status_1(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = KwireServer(tmp_path, port=port)
    server.format()
    voters = f"1@{HOST}:{port},1@{HOST}:{free_port()}"
    result = run_kwire(
        "kwire.server",
        server.config_path,
        "--override",
        f"controller.quorum.voters={voters}",
        timeout=TIMEOUT_S,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: controller.quorum.voters={voters}: Node id 1 was specified more than once."
    ]
