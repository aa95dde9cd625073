"""The write path's group commit, and heartbeats that never wait behind it (issue 10).

A running node (its raft driver and flusher in a nursery, no sockets) makes the leader's
appends durable with one fsync per scheduling turn: a lone write costs one fsync, writes
that arrive together share one, and no offset is reported to raft (so committed, so
answered) before its fsync. A BrokerHeartbeat that changes nothing is answered while a
write's fsync is still pending. A kill -9 of a server process under concurrent writes
keeps every acknowledged topic.
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trio
from node_harness import leader
from server_harness import HOST, KwireServer
from test_server_integrity import (
    CONTEXT,
    Halted,
    broker_registration,
    halt_for_test,
    topic_names_in_log,
    unfenced_broker,
)

from kwire.controller.records import RecordAndVersion
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import BrokerRegistrationResponse
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.records import MAX_BATCH_SIZE_BYTES, Record, build_batch, encode_batch
from kwire.server import write_path
from kwire.server.client import KafkaClient
from kwire.server.dispatch import RequestHandler
from kwire.server.node import ControllerNode

__all__ = ["leader"]

TIMEOUT_S = 20.0


def one_topic(name: str, partitions: int = 1) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=1
            )
        ],
        timeout_ms=30_000,
    )


def topic_error(response: Message) -> int:
    assert isinstance(response, CreateTopicsResponse)
    (topic,) = response.topics
    return int(topic.error_code)


@pytest.fixture
def fdatasyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every fdatasync of the process (the log's segment flushes), by file descriptor."""
    calls: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    yield calls


@pytest.fixture
async def running(leader: ControllerNode) -> AsyncIterator[ControllerNode]:  # noqa: F811
    """The one-voter leader with its tasks running (driver, flusher, periodic work)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader.run)
        with trio.fail_after(TIMEOUT_S):
            while not leader.writes.group_commit:
                await trio.sleep(0)
        yield leader
        nursery.cancel_scope.cancel()


async def register_unfenced(handler: RequestHandler, broker_id: int) -> int:
    """Register `broker_id` and heartbeat it unfenced; its broker epoch."""
    node = handler.node
    registration = broker_registration(node.settings.cluster_id)
    registration.broker_id = broker_id
    registered = await handler.controller_request(registration, CONTEXT)
    assert isinstance(registered, BrokerRegistrationResponse)
    assert registered.error_code == ErrorCode.NONE
    epoch = registered.broker_epoch
    answer = await handler.controller_request(heartbeat(broker_id, epoch), CONTEXT)
    assert isinstance(answer, BrokerHeartbeatResponse)
    assert answer.error_code == ErrorCode.NONE and not answer.is_fenced
    return epoch


def heartbeat(broker_id: int, epoch: int, *, want_fence: bool = False) -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=epoch,
        current_metadata_offset=epoch,
        want_fence=want_fence,
    )


# -- the heap freeze ---------------------------------------------------------------------------


class _Cycle:
    """An object that refers to itself: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def config_values(total_bytes: int) -> list[RecordAndVersion]:
    """Records of about `total_bytes` bytes in all (each config value 10 KB)."""
    size = 10_000
    return [
        RecordAndVersion(
            ConfigRecord(resource_type=2, resource_name=f"t{i}", name="x", value="v" * size), 0
        )
        for i in range(total_bytes // size + 1)
    ]


async def test_the_heap_is_frozen_once_enough_records_commit_and_cyclic_garbage_goes_first(
    leader: ControllerNode,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(write_path, "HEAP_FREEZE_BYTES", 50_000)
    frozen = gc.get_freeze_count()
    try:
        leader.append(config_values(20_000), 1)  # committed at once (a sole voter)
        assert (leader.writes.stats.heap_freezes, gc.get_freeze_count()) == (0, frozen)
        garbage = _Cycle()
        collected = weakref.ref(garbage)
        del garbage
        kept = _Cycle()
        leader.append(config_values(40_000), 2)  # 60,000 bytes since the start: freeze
        assert leader.writes.stats.heap_freezes == 1
        assert gc.get_freeze_count() > frozen
        assert collected() is None, "cyclic garbage was frozen instead of collected"
        assert not any(o is kept for o in gc.get_objects(2))  # frozen: out of reach
        leader.append(config_values(20_000), 3)  # the count starts again
        assert leader.writes.stats.heap_freezes == 1
    finally:
        gc.unfreeze()


# -- group commit ---------------------------------------------------------------------------


async def test_a_lone_create_topics_commits_with_one_fsync(
    running: ControllerNode, fdatasyncs: list[int]
) -> None:
    handler = RequestHandler(running)
    with trio.fail_after(TIMEOUT_S):
        await register_unfenced(handler, 1)
        await trio.testing.wait_all_tasks_blocked()
        before, end = len(fdatasyncs), running.log.end_offset
        response = await handler.controller_request(one_topic("alone"), CONTEXT)
    assert topic_error(response) == ErrorCode.NONE
    assert len(fdatasyncs) - before == 1
    assert running.committed_offset == running.log.end_offset > end


async def test_concurrent_create_topics_share_fsyncs_and_all_commit(
    running: ControllerNode, fdatasyncs: list[int]
) -> None:
    handler = RequestHandler(running)
    count = 20
    answers: dict[str, int] = {}

    async def create(name: str) -> None:
        answers[name] = topic_error(await handler.controller_request(one_topic(name), CONTEXT))

    with trio.fail_after(TIMEOUT_S):
        await register_unfenced(handler, 1)
        await trio.testing.wait_all_tasks_blocked()
        before = len(fdatasyncs)
        batches = running.writes.stats.leader_batches
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(create, f"together-{i}")
    assert answers == {f"together-{i}": ErrorCode.NONE for i in range(count)}
    assert running.writes.stats.leader_batches - batches == count  # one batch each
    assert 1 <= len(fdatasyncs) - before < count
    assert running.committed_offset == running.log.end_offset
    assert {f"together-{i}" for i in range(count)} <= set(running.controller.topics_by_name)


async def test_no_offset_is_committed_before_its_fsync(
    running: ControllerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """raft hears of the leader's copy only from the flusher, after the fsync."""
    handler = RequestHandler(running)
    with trio.fail_after(TIMEOUT_S):
        await register_unfenced(handler, 1)
    durable: list[int] = []
    real_flush = running.log.flush

    def flush() -> None:
        real_flush()
        durable.append(running.log.end_offset)

    reported: list[tuple[int, int]] = []
    real_on_flushed = running.writes.on_flushed

    def on_flushed(end_offset: int, now_ms: int) -> None:
        reported.append((end_offset, durable[-1] if durable else -1))
        real_on_flushed(end_offset, now_ms)

    monkeypatch.setattr(running.log, "flush", flush)
    monkeypatch.setattr(running.writes, "on_flushed", on_flushed)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(handler.controller_request, one_topic(f"d-{i}"), CONTEXT)
    assert reported and all(end <= flushed for end, flushed in reported)
    assert running.committed_offset <= durable[-1]


async def test_one_flush_covers_at_most_one_raft_batch_of_appends(
    leader: ControllerNode,  # noqa: F811
    fdatasyncs: list[int],
) -> None:
    """Appends without the flusher's turn are flushed at once when they reach 8 MiB."""
    writes = leader.writes
    writes.group_commit = True  # as while the flusher runs, without running it
    chunk = encode_batch(
        build_batch([Record(offset_delta=0, value=b"x" * (1024 * 1024))], base_timestamp=0)
    )
    appended, before = 0, len(fdatasyncs)
    while appended + len(chunk) < MAX_BATCH_SIZE_BYTES:
        writes.append_batch(chunk, leader.raft.epoch, 0)
        appended += len(chunk)
    assert len(fdatasyncs) == before and writes.flush_pending
    assert leader.committed_offset < leader.log.end_offset  # nothing counted unflushed
    writes.append_batch(chunk, leader.raft.epoch, 0)
    assert len(fdatasyncs) == before + 1 and not writes.flush_pending
    assert leader.committed_offset == leader.log.end_offset


async def test_a_failed_group_fsync_is_fatal(
    leader: ControllerNode,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader.fault_handler = halt_for_test
    end = leader.committed_offset

    def disk_error() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(leader.log, "flush", disk_error)
    handler = RequestHandler(leader)
    with trio.fail_after(TIMEOUT_S), pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leader.run)
            while not leader.writes.group_commit:
                await trio.sleep(0)
            await handler.controller_request(
                broker_registration(leader.settings.cluster_id), CONTEXT
            )
    halted, _ = raised.value.split(Halted)
    assert halted is not None
    fault: BaseException = halted
    while isinstance(fault, BaseExceptionGroup):
        fault = fault.exceptions[0]
    assert "Unable to flush the metadata log" in str(fault)
    assert leader.committed_offset == end < leader.log.end_offset


# -- heartbeats do not wait behind commits -------------------------------------------------------


class HeldFlush:
    """Holds the flusher's fsync until `release`."""

    def __init__(self, node: ControllerNode, monkeypatch: pytest.MonkeyPatch) -> None:
        self.node = node
        self.asked = trio.Event()
        self._flush: Callable[[int], None] = node.writes.flush
        monkeypatch.setattr(node.writes, "flush", self._held)

    def _held(self, now_ms: int) -> None:
        self.asked.set()

    async def release(self) -> None:
        await self.node.driver.call(self._flush)


async def test_a_heartbeat_that_changes_nothing_is_answered_while_an_fsync_is_pending(
    running: ControllerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = RequestHandler(running)
    with trio.fail_after(TIMEOUT_S):
        epoch = await register_unfenced(handler, 1)
    held = HeldFlush(running, monkeypatch)
    created: list[int] = []

    async def create() -> None:
        created.append(topic_error(await handler.controller_request(one_topic("held"), CONTEXT)))

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create)
            await held.asked.wait()
            end = running.log.end_offset
            assert running.writes.flush_pending and running.committed_offset < end

            answer = await handler.controller_request(heartbeat(1, epoch), CONTEXT)
            assert isinstance(answer, BrokerHeartbeatResponse)
            assert (answer.error_code, answer.is_fenced, answer.should_shut_down) == (
                ErrorCode.NONE,
                False,
                False,
            )
            assert running.log.end_offset == end  # the heartbeat wrote nothing
            assert not created and running.committed_offset < end  # still not durable

            await held.release()
    assert created == [ErrorCode.NONE]
    assert running.committed_offset == running.log.end_offset


async def test_a_heartbeat_waits_for_its_own_brokers_pending_change(
    running: ControllerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat's answer reads its broker's registration: when a change of it is not
    yet durable (here a fencing), the answer waits for it; other brokers' do not."""
    handler = RequestHandler(running)
    with trio.fail_after(TIMEOUT_S):
        first = await register_unfenced(handler, 1)
        second = await register_unfenced(handler, 2)
    held = HeldFlush(running, monkeypatch)
    fenced: list[Message] = []

    async def ask(request: BrokerHeartbeatRequest) -> None:
        fenced.append(await handler.controller_request(request, CONTEXT))

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, heartbeat(2, second, want_fence=True))
            await held.asked.wait()
            nursery.start_soon(ask, heartbeat(2, second, want_fence=True))  # changes nothing
            other = await handler.controller_request(heartbeat(1, first), CONTEXT)
            assert isinstance(other, BrokerHeartbeatResponse) and not other.is_fenced
            await trio.testing.wait_all_tasks_blocked()
            assert fenced == []  # both of broker 2's wait for its fencing to be durable
            await held.release()
    assert [
        (a.error_code, a.is_fenced) for a in fenced if isinstance(a, BrokerHeartbeatResponse)
    ] == [
        (ErrorCode.NONE, True),
        (ErrorCode.NONE, True),
    ]


# -- a real process, kill -9 -------------------------------------------------------------------


async def test_every_acknowledged_topic_survives_a_kill_9_under_concurrent_writes(
    tmp_path: Path,
) -> None:
    server = KwireServer(tmp_path / "kwire")
    server.format()
    server.start()
    acked: set[str] = set()
    try:
        with trio.fail_after(TIMEOUT_S):
            first = await KafkaClient.connect(HOST, server.port)
            await unfenced_broker(first, server.cluster_id)

            async def writer(index: int) -> None:
                client = await KafkaClient.connect(HOST, server.port)
                for k in range(10_000):
                    name = f"w{index}-{k}"
                    try:
                        response = await client.request(one_topic(name), 7)
                    except (ConnectionError, OSError, trio.BrokenResourceError):
                        return
                    if topic_error(response) == ErrorCode.NONE:
                        acked.add(name)

            async with trio.open_nursery() as nursery:
                for index in range(8):
                    nursery.start_soon(writer, index)
                while len(acked) < 200:
                    await trio.sleep(0.005)
                server.kill()  # kill -9 with writes in flight
            await first.aclose()
    finally:
        server.close()
    assert len(acked) >= 200
    assert acked <= topic_names_in_log(server.data_dir)


# -- parked fetches and what happens before they park ---------------------------------------


async def test_a_fetch_parked_after_a_resignation_it_was_too_late_to_see_ends_at_once(
    leader: ControllerNode,  # noqa: F811
) -> None:
    # The driver decides a Fetch must wait (its turn takes the mark), then handles the
    # leader's resignation before the connection task parks: the wait must end at once,
    # not after MaxWaitMs (500 ms, holding back the Vote queued behind it).
    writes = leader.writes
    end = leader.log.end_offset
    mark = writes.wait_mark()
    writes.interrupt_waits()  # the resignation's StateChanged, in the driver's next turn
    with trio.fail_after(1.0):
        await writes.wait_log_growth(end, trio.current_time() + 30.0, mark)
        await writes.wait_log_growth_or_commit(end, trio.current_time() + 30.0, mark)


async def test_a_v18_fetch_parked_after_a_commit_it_was_too_late_to_see_ends_at_once(
    leader: ControllerNode,  # noqa: F811
) -> None:
    writes = leader.writes
    mark = writes.wait_mark()
    end = leader.append(config_values(100), 1)  # committed at once (a sole voter)
    assert writes.committed_offset > mark[1]
    with trio.fail_after(1.0):
        await writes.wait_log_growth_or_commit(end, trio.current_time() + 30.0, mark)


async def test_a_parked_fetch_without_news_still_waits_out_its_deadline(
    leader: ControllerNode,  # noqa: F811
) -> None:
    writes = leader.writes
    mark = writes.wait_mark()
    began = trio.current_time()
    with trio.fail_after(5.0):
        await writes.wait_log_growth(leader.log.end_offset, began + 0.3, mark)
    assert trio.current_time() - began >= 0.3
