"""kwire.server.serve and kwire.server.limits: connection quotas, idle closing and the
request-memory budget, over real sockets against a server running in this process.

Kafka 3.9's behaviour, which each test checks with its own numbers:
- connections.max.idle.ms: a connection on which no byte moved for longer is closed
  (Selector's IdleExpiryManager); a request in flight is not activity, so its response
  is dropped when the connection expires under it.
- max.connections.per.ip: the connection over the limit is accepted and closed at once
  (SocketServer's Acceptor, TooManyConnectionsException); the others are served.
- max.connections: no connection is accepted while the limit is reached; one closing lets
  the next in (ConnectionQuotas.waitForConnectionSlot).
- queued.max.request.bytes: while the request bytes in flight would exceed it, reading
  stops (back-pressure); nothing is closed and every request is answered in the end.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from server_harness import KwireServer, run_kwire

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request, size_prefixed
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.headers import RequestHeader
from kwire.raft.state import METADATA_TOPIC_ID
from kwire.server.__main__ import build_settings, connection_limits
from kwire.server.client import KafkaClient
from kwire.server.config import ConfigError, ControllerServerConfig
from kwire.server.limits import RequestBudget
from kwire.server.node import ControllerNode
from kwire.server.serve import READ_AHEAD, SocketServer
from kwire.storage import format_storage, random_uuid

HOST = "127.0.0.1"
API_VERSIONS_KEY = 18
FETCH_KEY = 1
TIMEOUT_S = 10.0
IDLE_MS = 400
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Running:
    server: SocketServer
    port: int
    node: ControllerNode

    async def connect(self) -> KafkaClient:
        with trio.fail_after(TIMEOUT_S):
            return await KafkaClient.connect(HOST, self.port)


@asynccontextmanager
async def running_server(tmp_path: Path, **properties: str) -> AsyncIterator[Running]:
    """A one-node controller on a free port, configured through its .properties keys."""
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(tmp_path / "controller"),
            # No NoOp records: a long poll then lasts its whole MaxWaitMs.
            "metadata.max.idle.interval.ms": "0",
            **properties,
        }
    )
    format_storage(config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(config), seed=1)
    server = SocketServer(
        node, max_request_bytes=config.socket_request_max_bytes, limits=connection_limits(config)
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run, HOST, port)
            yield Running(server, port, node)
            nursery.cancel_scope.cancel()
    finally:
        node.close()


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def api_versions_frame(correlation_id: int, padding: int = 0) -> bytes:
    """An ApiVersions v3 request; `padding` bytes ride in an unknown tagged field of the
    body (tag 100), which decoders keep or skip, to make a large valid frame."""
    frame = encode_request(
        RequestHeader(
            request_api_key=API_VERSIONS_KEY,
            request_api_version=3,
            correlation_id=correlation_id,
            client_id="connections-test",
        ),
        ApiVersionsRequest(client_software_name="kwire-tests", client_software_version="1"),
    )
    if not padding:
        return frame
    assert frame[-1] == 0  # no tagged fields yet
    return frame[:-1] + b"\x01" + varint(100) + varint(padding) + b"p" * padding


async def api_versions_ok(client: KafkaClient) -> bool:
    with trio.fail_after(TIMEOUT_S):
        response = await client.request(
            ApiVersionsRequest(client_software_name="kwire-tests", client_software_version="1"), 3
        )
    assert isinstance(response, ApiVersionsResponse)
    return response.error_code == ErrorCode.NONE


async def seconds_until_closed(client: KafkaClient, timeout: float = TIMEOUT_S) -> float:
    """How long the server took to close the connection without answering."""
    start = trio.current_time()
    with trio.fail_after(timeout):
        try:
            frame = await client.receive_frame()
        except trio.BrokenResourceError:
            frame = None
    assert frame is None, "expected the server to close the connection, it answered"
    return trio.current_time() - start


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        while not condition():
            await trio.sleep(0.01)


def log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- connections.max.idle.ms -------------------------------------------------------------------


async def test_idle_and_half_frame_connections_are_closed_after_the_idle_time_while_a_talker_is_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kwire.server")
    async with running_server(tmp_path, **{"connections.max.idle.ms": str(IDLE_MS)}) as running:
        talker = await running.connect()
        silent = await running.connect()
        half = await running.connect()
        frame = size_prefixed(api_versions_frame(1))
        await half.stream.send_all(frame[: len(frame) // 2])
        closed_after: dict[str, float] = {}
        talks = 0

        async def watch(name: str, client: KafkaClient) -> None:
            closed_after[name] = await seconds_until_closed(client)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, "silent", silent)
            nursery.start_soon(watch, "half", half)
            # The talker sends a request every third of the idle time, for four idle times.
            for _ in range(12):
                assert await api_versions_ok(talker)
                talks += 1
                await trio.sleep(IDLE_MS / 3000)
        assert talks == 12 and await api_versions_ok(talker)
        for name in ("silent", "half"):
            assert IDLE_MS / 1000 * 0.9 <= closed_after[name] < IDLE_MS / 1000 * 4, name
        stats = running.server.statistics()
        assert (stats.connections_expired, stats.connections) == (2, 1)
        assert len(log_lines(caplog, f"longer than connections.max.idle.ms={IDLE_MS}")) == 2
        for client in (talker, silent, half):
            await client.aclose()


async def test_a_request_in_flight_longer_than_the_idle_time_loses_its_connection_and_response(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka mutes a channel while its request is in flight, so the idle clock runs on:
    a long poll outlasting connections.max.idle.ms ends with the connection closed."""
    caplog.set_level(logging.INFO, logger="kwire.server")
    async with running_server(tmp_path, **{"connections.max.idle.ms": str(IDLE_MS)}) as running:
        node = running.node
        client = await running.connect()
        last_epoch = node.raft.epoch
        fetch = FetchRequest(
            cluster_id=node.settings.cluster_id,
            replica_id=-1,
            replica_state=FetchRequest.ReplicaState(replica_id=2, replica_epoch=-1),
            max_wait_ms=IDLE_MS * 5,
            min_bytes=0,
            max_bytes=1 << 20,
            session_epoch=-1,
            topics=[
                FetchRequest.FetchTopic(
                    topic_id=METADATA_TOPIC_ID,
                    partitions=[
                        FetchRequest.FetchPartition(
                            partition=0,
                            current_leader_epoch=last_epoch,
                            fetch_offset=node.log.end_offset,
                            last_fetched_epoch=last_epoch,
                            log_start_offset=-1,
                        )
                    ],
                )
            ],
        )
        header = RequestHeader(
            request_api_key=FETCH_KEY, request_api_version=17, correlation_id=9, client_id="b"
        )
        await client.send_raw(encode_request(header, fetch))
        waited = await seconds_until_closed(client)
        assert IDLE_MS / 1000 * 0.9 <= waited < IDLE_MS * 5 / 1000
        assert log_lines(caplog, "the response to its request in flight will be dropped")
        await client.aclose()
        # A poll shorter than the idle time is answered on a connection that sent nothing else.
        fresh = await running.connect()
        fetch.max_wait_ms = IDLE_MS // 2
        with trio.fail_after(TIMEOUT_S):
            answered = await fresh.request(fetch, 17)
        assert answered.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        await fresh.aclose()


# -- max.connections.per.ip and max.connections -------------------------------------------------


async def test_the_connection_over_max_connections_per_ip_is_closed_at_accept_and_the_others_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kwire.server")
    async with running_server(tmp_path, **{"max.connections.per.ip": "2"}) as running:
        first, second = await running.connect(), await running.connect()
        assert await api_versions_ok(first) and await api_versions_ok(second)
        third = await running.connect()
        await third.send_raw(api_versions_frame(1))
        assert await seconds_until_closed(third) < 2.0
        assert log_lines(caplog, "already has the configured maximum of 2 connections")
        assert await api_versions_ok(first) and await api_versions_ok(second)
        stats = running.server.statistics()
        assert (stats.connections_rejected, stats.connections_by_address) == (1, {HOST: 2})
        # Closing one frees its slot for a new connection.
        await first.aclose()
        await wait_until(lambda: running.server.statistics().connections == 1, "the close")
        fourth = await running.connect()
        assert await api_versions_ok(fourth) and await api_versions_ok(second)
        for client in (second, third, fourth):
            await client.aclose()


async def test_max_connections_per_ip_overrides_set_the_limit_of_a_named_address(
    tmp_path: Path,
) -> None:
    properties = {"max.connections.per.ip": "0", "max.connections.per.ip.overrides": "localhost:1"}
    async with running_server(tmp_path, **properties) as running:
        first = await running.connect()
        assert await api_versions_ok(first)
        second = await running.connect()
        await second.send_raw(api_versions_frame(1))
        await seconds_until_closed(second)
        assert running.server.statistics().connections_rejected == 1
        for client in (first, second):
            await client.aclose()


async def test_at_max_connections_new_connections_wait_until_one_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kwire.server")
    async with running_server(tmp_path, **{"max.connections": "2"}) as running:
        first, second = await running.connect(), await running.connect()
        assert await api_versions_ok(first) and await api_versions_ok(second)
        waiting = await running.connect()  # the kernel's backlog completes the handshake
        await waiting.send_raw(api_versions_frame(5))
        with trio.move_on_after(0.5):
            await waiting.receive_frame()
            pytest.fail("a connection beyond max.connections was served")
        stats = running.server.statistics()
        assert (stats.accepting, stats.connections, stats.connections_rejected) == (False, 2, 0)
        assert await api_versions_ok(second)  # the open ones are served meanwhile
        await first.aclose()
        with trio.fail_after(TIMEOUT_S):
            frame = await waiting.receive_frame()
        assert frame is not None
        header, response = decode_response(frame, API_VERSIONS_KEY, 3)
        assert header.correlation_id == 5 and response.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        assert log_lines(caplog, "max.connections=2 are open")
        for client in (second, waiting):
            await client.aclose()


# -- queued.max.request.bytes ------------------------------------------------------------------


async def test_large_requests_over_the_budget_wait_their_turn_and_are_all_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kwire.server")
    budget = 3 * MIB // 2
    properties = {"socket.request.max.bytes": str(MIB), "queued.max.request.bytes": str(budget)}
    async with running_server(tmp_path, **properties) as running:
        server = running.server
        peaks: list[int] = []

        async def sample() -> None:
            while True:
                peaks.append(server.statistics().request_bytes_in_flight)
                await trio.sleep(0)

        frames = [api_versions_frame(i, padding=MIB - 200) for i in range(3)]
        size = len(frames[0])
        assert MIB - 400 < size <= MIB and 2 * size > budget
        clients = [await running.connect() for _ in frames]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            # The first frame's body comes in two halves: its bytes are held meanwhile.
            first = size_prefixed(frames[0])
            await clients[0].stream.send_all(first[: len(first) // 2])
            await wait_until(lambda: server.statistics().request_bytes_in_flight == size, "")
            for client, frame in zip(clients[1:], frames[1:], strict=True):
                nursery.start_soon(client.send_raw, frame)
            await wait_until(lambda: server.statistics().requests_waiting == 2, "back-pressure")
            assert server.statistics().request_bytes_in_flight == size
            await clients[0].stream.send_all(first[len(first) // 2 :])
            for index, client in enumerate(clients):
                with trio.fail_after(TIMEOUT_S):
                    reply = await client.receive_frame()
                assert reply is not None, f"request {index} was lost"
                header, response = decode_response(reply, API_VERSIONS_KEY, 3)
                assert header.correlation_id == index
                assert response.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()
        stats = server.statistics()
        assert size <= stats.request_bytes_peak <= budget
        assert max(peaks) <= budget
        assert (stats.request_bytes_in_flight, stats.requests_waiting) == (0, 0)
        assert stats.requests_delayed == 2 and stats.connections == 3
        assert log_lines(caplog, f"queued.max.request.bytes={budget}")
        for client in clients:
            await client.aclose()


async def test_frames_of_every_size_arriving_together_or_a_byte_at_a_time_are_all_answered(
    tmp_path: Path,
) -> None:
    """A connection reads up to READ_AHEAD bytes with each frame's size prefix and keeps
    what follows for the next frame: frames larger than that, frames cut anywhere and
    frames that share one segment are all answered, in order, once each."""
    async with running_server(tmp_path) as running:
        sizes = [0, READ_AHEAD, 3 * READ_AHEAD, 0, 0, READ_AHEAD // 2, 0]
        frames = [
            size_prefixed(api_versions_frame(i, padding=padding)) for i, padding in enumerate(sizes)
        ]
        together = await running.connect()
        trickled = await running.connect()
        with trio.fail_after(TIMEOUT_S):
            await together.stream.send_all(b"".join(frames))
            for byte in b"".join(frames):
                await trickled.stream.send_all(bytes([byte]))
            for client in (together, trickled):
                for index in range(len(frames)):
                    reply = await client.receive_frame()
                    assert reply is not None, f"frame {index} was not answered"
                    header, response = decode_response(reply, API_VERSIONS_KEY, 3)
                    assert header.correlation_id == index
                    assert response.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        stats = running.server.statistics()
        assert stats.request_bytes_in_flight == 0
        # Nothing more comes: each frame was answered exactly once.
        with trio.move_on_after(0.2):
            extra = await together.stream.receive_some(1)
            raise AssertionError(f"an unexpected extra answer: {extra!r}")
        for client in (together, trickled):
            await client.aclose()


async def test_a_peer_that_keeps_its_socket_full_does_not_hold_the_loop(tmp_path: Path) -> None:
    """Frames already waiting in the socket are read without blocking; the connection
    still lets the other tasks run between reads, so one peer's long pipeline never holds
    the event loop (here: a task of this test runs while the pipeline is half answered)."""
    async with running_server(tmp_path) as running:
        handler = running.server.handler
        answered = 0
        handle = handler.handle

        async def counting_handle(*args: Any, **kwargs: Any) -> Any:
            nonlocal answered
            answered += 1
            return await handle(*args, **kwargs)

        handler.handle = counting_handle  # type: ignore[method-assign]
        count = 100
        flooder = await running.connect()
        seen: list[int] = []
        with trio.fail_after(TIMEOUT_S):
            await flooder.stream.send_all(
                b"".join(size_prefixed(api_versions_frame(i)) for i in range(count))
            )
            async with trio.open_nursery() as nursery:

                async def drain() -> None:
                    for _ in range(count):
                        assert await flooder.receive_frame() is not None

                nursery.start_soon(drain)
                while answered < count:
                    seen.append(answered)
                    await trio.sleep(0)
        assert any(0 < n < count for n in seen), "the pipeline was answered in one loop step"
        await flooder.aclose()


# -- RequestBudget on its own -------------------------------------------------------------------


async def test_the_budget_admits_in_arrival_order_and_a_cancelled_waiter_gives_way() -> None:
    budget = RequestBudget(10)
    admitted: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        admitted.append(name)

    await budget.acquire(8)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, "big", 9)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "small", 2)  # fits now, but waits behind "big"
        await trio.testing.wait_all_tasks_blocked()
        assert (admitted, budget.waiting, budget.in_use) == ([], 2, 8)
        budget.release(8)
        await trio.testing.wait_all_tasks_blocked()
        assert (admitted, budget.waiting, budget.in_use) == (["big"], 1, 9)
        budget.release(9)
        await trio.testing.wait_all_tasks_blocked()
        assert (admitted, budget.waiting, budget.in_use) == (["big", "small"], 0, 2)
    budget.release(2)
    with trio.CancelScope() as scope:
        await budget.acquire(10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take, "cancelled", 5)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(take, "after", 1)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert (budget.waiting, budget.in_use) == (0, 10)
    budget.release(10)
    assert budget.peak == 10 and budget.in_use == 0


async def test_an_unbounded_budget_never_waits() -> None:
    budget = RequestBudget(None)
    for _ in range(3):
        await budget.acquire(2**40)
    assert (budget.in_use, budget.waits) == (3 * 2**40, 0)


async def test_a_budget_below_socket_request_max_bytes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be larger or equal to socket.request.max.bytes"):
        async with running_server(
            tmp_path, **{"socket.request.max.bytes": "1000", "queued.max.request.bytes": "999"}
        ):
            pass


def test_an_override_host_that_does_not_resolve_stops_the_server_with_one_line(
    tmp_path: Path,
) -> None:
    server = KwireServer(
        tmp_path, overrides={"max.connections.per.ip.overrides": "no-such-host.invalid:3"}
    )
    server.format()
    result = run_kwire("kwire.server", server.config_path, *server.command()[4:])
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: max.connections.per.ip.overrides: cannot resolve host 'no-such-host.invalid': "
    )
