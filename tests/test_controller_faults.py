"""Controller faults (kwire.server.faults), as Kafka 3.9's QuorumController treats them.

An unexpected exception while the controller handles a request or runs its periodic work
is answered UNKNOWN_SERVER_ERROR, logged at ERROR in Kafka's words, counted in
MetadataErrorCount, and the active controller renounces: it reverts to its last committed
offset and resigns, so that another voter (or, alone, itself again) leads. API errors are
answers, not faults. Faults are planted with monkeypatch in real in-process servers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from server_harness import HOST
from test_controller_integrity import image_state
from test_raft_leader import leader_of, sent
from test_server_connections import Running, running_server
from test_server_integrity import CONTEXT, Halted, broker_registration, node
from test_server_metrics import scrape, value
from test_server_quorum import (
    TIMEOUT_S,
    Voter,
    create,
    create_topic,
    quorum,
    register_unfenced_broker,
    request,
)

from kwire.controller import controller as controller_module
from kwire.controller.api_error import OperationFailed
from kwire.controller.controller import QuorumController
from kwire.controller.image import MetadataImage
from kwire.log.metadata_reader import batch_metadata_records
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.records import iter_batch_headers
from kwire.server.dispatch import RequestHandler
from kwire.server.faults import PERIODIC_WORK, classify, event_name
from kwire.server.metrics import metrics_page
from kwire.server.node import AppendFailed, ControllerNode
from kwire.server.operator_pages import serve_operator_pages

METRIC = "kafka_controller_kafkacontroller_metadataerrorcount"
FAULTY_TOPIC = "boom"
__all__ = ["node"]  # the in-process node fixture, imported for pytest to find
FAULT_LINE = re.compile(
    r"Encountered quorum controller fault: (\w+): event failed with RuntimeError \(treated as "
    r"UnknownServerException\) at epoch (\d+) in \d+ microseconds\. Renouncing leadership "
    r"and reverting to the last committed offset (-?\d+)\."
)


# -- Kafka's classification and wording (EventHandlerExceptionInfoTest's cases) -------------


@pytest.mark.parametrize(
    ("exception", "delta_us", "active", "expected"),
    [
        pytest.param(
            TypeError("'NoneType' object is not subscriptable"),
            40,
            True,
            "event failed with TypeError (treated as UnknownServerException) at epoch 123 in "
            "40 microseconds. Renouncing leadership and reverting to the last committed "
            "offset 456.",
            id="a bug on the active controller renounces",
        ),
        pytest.param(
            TypeError("'NoneType' object is not subscriptable"),
            40,
            False,
            "event failed with TypeError (treated as UnknownServerException) at epoch 123 in "
            "40 microseconds. The controller is already in standby mode.",
            id="a bug on a standby says so",
        ),
        pytest.param(
            RuntimeError("interrupted"),
            None,
            True,
            "event unable to start processing because of RuntimeError (treated as "
            "UnknownServerException) at epoch 123. Renouncing leadership and reverting to the "
            "last committed offset 456.",
            id="a fault before the event began",
        ),
        pytest.param(
            OperationFailed(ErrorCode.TOPIC_ALREADY_EXISTS, "Topic exists."),
            234,
            True,
            "event failed with OperationFailed in 234 microseconds. Exception message: "
            "Topic exists.",
            id="an API error is an answer with its message",
        ),
    ],
)
def test_failure_messages_are_kafkas(
    exception: BaseException, delta_us: int | None, active: bool, expected: str
) -> None:
    info = classify(exception)
    message = info.failure_message(
        epoch=123, delta_us=delta_us, active=active, last_committed_offset=456
    )
    assert message == expected


@pytest.mark.parametrize(
    ("exception", "is_fault", "error"),
    [
        (RuntimeError("bug"), True, ErrorCode.UNKNOWN_SERVER_ERROR),
        (KeyError("missing"), True, ErrorCode.UNKNOWN_SERVER_ERROR),
        (OperationFailed(ErrorCode.INVALID_REPLICATION_FACTOR), False, 38),
        (AppendFailed(ErrorCode.NOT_CONTROLLER, "reverted"), False, 41),
    ],
)
def test_api_errors_are_answers_and_anything_else_is_a_fault_that_causes_failover(
    exception: BaseException, is_fault: bool, error: int
) -> None:
    info = classify(exception)
    assert (info.is_fault, info.causes_failover, info.error) == (is_fault, is_fault, error)


def test_events_carry_kafkas_quorum_controller_names() -> None:
    assert [event_name(key) for key in (19, 63, 62, 33, 70, 44)] == [
        "createTopics",
        "processBrokerHeartbeat",
        "registerBroker",
        "legacyAlterConfigs",
        "registerController",
        "incrementalAlterConfigs",
    ]


def test_the_raft_leader_renounces_only_its_own_epoch_and_stands_again_after_a_timeout() -> None:
    raft, _, _ = leader_of([])
    raft.renounce(1, 10)  # an older epoch (the controller missed a change): nothing to do
    assert raft.is_leader and raft.epoch == 2
    actions = raft.renounce(2, 10)
    # KafkaRaftClient.resign: Resigned, EndQuorumEpoch to the others, but no shutdown.
    assert raft.state_name == "resigned" and raft.epoch == 2
    requests = sent(actions)
    assert sorted(s.destination for s in requests) == [2, 3]
    assert all(isinstance(s.request, EndQuorumEpochRequest) for s in requests)
    assert not raft.shutting_down
    raft.poll(raft.next_deadline_ms())
    assert raft.state_name == "prospective" and raft.epoch == 3


# -- helpers ----------------------------------------------------------------------------------


def plant_create_topics_fault(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """CreateTopics of FAULTY_TOPIC applies its records, then raises RuntimeError (a bug
    after part of the work); other topics are created as usual. Returns the names the
    faulty handler saw."""
    real = controller_module.REQUEST_HANDLERS[CreateTopicsRequest]
    seen: list[str] = []

    def faulty(controller: QuorumController, body: Any, context: Any, offset: int) -> Any:
        result = real(controller, body, context, offset)
        names = [topic.name for topic in body.topics]
        seen.extend(names)
        if FAULTY_TOPIC in names:
            assert FAULTY_TOPIC in controller.topics_by_name  # applied, not yet appended
            raise RuntimeError("planted fault")
        return result

    monkeypatch.setitem(controller_module.REQUEST_HANDLERS, CreateTopicsRequest, faulty)
    return seen


def committed_replay(node: ControllerNode) -> dict[str, object]:
    """The image a fresh controller replays from the node's committed log."""
    assert node.log.latest_snapshot_id() is None
    image = MetadataImage()
    offset, committed = node.log.log_start_offset, node.committed_offset
    while offset < committed:
        data = node.log.read(offset, max_offset=committed)
        for pos, header in iter_batch_headers(data, verify_crc=False):
            if not header.is_control:
                for record_offset, record, version in batch_metadata_records(data, pos, header):
                    image.replay(record, version, record_offset)
            offset = header.next_offset
    return image_state(image)


async def settled(node: ControllerNode) -> None:
    """Wait until the node is active with everything it appended committed and applied."""
    while not (
        node.active
        and node.committed_offset == node.log.end_offset
        and node.controller.last_applied_offset < node.committed_offset
    ):
        await trio.sleep(0.005)


async def with_orders(voter: Running | Voter) -> None:
    """Once the voter is active and settled: a broker registered and unfenced, and the
    topic "orders" created (acknowledged)."""
    await settled(voter.node)
    await register_unfenced_broker(voter)
    assert await create(voter, "orders") == ErrorCode.NONE


def fault_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "kwire.faults" and r.levelno == logging.ERROR]


@asynccontextmanager
async def sole_voter(tmp_path: Path) -> AsyncIterator[tuple[Running, int]]:
    """A one-voter quorum served on a free port (NoOp records off, so that its committed
    offset moves only when asked; a short election timeout), with its /metrics page on
    another port (the second item)."""
    properties = {"controller.quorum.election.timeout.ms": "200"}
    async with running_server(tmp_path, **properties) as running, trio.open_nursery() as nursery:
        pages = [((HOST, 0), "/metrics", metrics_page(running.node))]
        served = await nursery.start(serve_operator_pages, pages)
        try:
            yield running, served[0][1]
        finally:
            nursery.cancel_scope.cancel()


# -- one voter --------------------------------------------------------------------------------


async def test_a_faulty_request_is_answered_unknown_server_error_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen = plant_create_topics_fault(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with sole_voter(tmp_path) as (voter, metrics_port):
            node = voter.node
            await with_orders(voter)
            assert value(await scrape(metrics_port), METRIC) == 0
            epoch, last_committed = node.raft.epoch, node.committed_offset - 1

            response = await request(voter, create_topic(FAULTY_TOPIC), 7)

            assert seen == ["orders", FAULTY_TOPIC]
            assert isinstance(response, CreateTopicsResponse)
            assert [(t.name, t.error_code, t.error_message) for t in response.topics] == [
                (FAULTY_TOPIC, ErrorCode.UNKNOWN_SERVER_ERROR, None)
            ]
            assert value(await scrape(metrics_port), METRIC) == 1
            [line] = fault_lines(caplog)
            found = FAULT_LINE.fullmatch(line.getMessage())
            assert found is not None, line.getMessage()
            assert found.groups() == ("createTopics", str(epoch), str(last_committed))
            assert line.exc_info is not None and str(line.exc_info[1]) == "planted fault"


async def test_a_sole_voter_renounces_and_comes_back_active_with_only_its_committed_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_create_topics_fault(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with sole_voter(tmp_path) as (voter, _):
            node = voter.node
            await with_orders(voter)
            epoch = node.raft.epoch

            assert await create(voter, FAULTY_TOPIC) == ErrorCode.UNKNOWN_SERVER_ERROR
            # It renounced in the same step: not active, and its image is the committed log's.
            assert not node.active
            assert node.raft.state_name == "resigned"
            assert image_state(node.controller.image) == committed_replay(node)

            # Alone, it stands again after its election timeout and leads a new epoch.
            await settled(node)
            assert node.raft.epoch > epoch
            assert image_state(node.controller.image) == committed_replay(node)
            topics = node.controller.topics_by_name
            assert "orders" in topics and FAULTY_TOPIC not in topics
            assert await create(voter, "payments") == ErrorCode.NONE
            assert await create(voter, "orders") == ErrorCode.TOPIC_ALREADY_EXISTS


async def test_a_faulty_heartbeat_run_in_its_connection_task_renounces_as_well(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def faulty(controller: QuorumController, body: Any, context: Any, offset: int) -> Any:
        raise RuntimeError("planted fault")

    with trio.fail_after(TIMEOUT_S):
        async with sole_voter(tmp_path) as (voter, metrics_port):
            node = voter.node
            await settled(node)
            await register_unfenced_broker(voter)
            epoch = node.raft.epoch
            monkeypatch.setitem(controller_module.REQUEST_HANDLERS, BrokerHeartbeatRequest, faulty)
            heartbeat = BrokerHeartbeatRequest(
                broker_id=1,
                broker_epoch=node.controller.brokers[1].epoch,
                current_metadata_offset=node.committed_offset,
                want_fence=False,
            )

            answer = await request(voter, heartbeat, 1)

            assert isinstance(answer, BrokerHeartbeatResponse)
            assert answer.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
            assert not node.active
            [line] = fault_lines(caplog)
            found = FAULT_LINE.fullmatch(line.getMessage())
            assert found is not None and found.group(1) == "processBrokerHeartbeat"
            assert value(await scrape(metrics_port), METRIC) == 1
            monkeypatch.undo()
            await settled(node)
            assert node.raft.epoch > epoch
            assert await create(voter, "orders") == ErrorCode.NONE


async def test_a_fatal_fault_is_neither_survived_nor_counted(
    node: ControllerNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def disk_error(data: bytes, epoch: int, **_: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(node.log, "append_as_leader", disk_error)
    with trio.fail_after(TIMEOUT_S), pytest.raises(Halted):
        await RequestHandler(node).controller_request(
            broker_registration(node.settings.cluster_id), CONTEXT
        )
    # Kafka's ProcessTerminatingFaultHandler halts: no renounce, no count, no fault line.
    assert node.faults.metadata_errors == 0
    assert node.active
    assert fault_lines(caplog) == []


async def test_an_api_error_is_not_a_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plant_create_topics_fault(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with sole_voter(tmp_path) as (voter, metrics_port):
            node = voter.node
            await with_orders(voter)
            epoch = node.raft.epoch

            assert await create(voter, "orders") == ErrorCode.TOPIC_ALREADY_EXISTS

            assert value(await scrape(metrics_port), METRIC) == 0
            assert fault_lines(caplog) == []
            assert node.active and node.raft.epoch == epoch


async def test_a_fault_in_the_periodic_work_renounces_and_the_ticks_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_tick = QuorumController.tick
    faults: list[int] = []

    def tick_once_faulty(self: QuorumController, now_ms: int, next_offset: int, **kw: Any) -> Any:
        if self.is_active and not faults:
            faults.append(now_ms)
            raise RuntimeError("planted fault")
        return real_tick(self, now_ms, next_offset, **kw)

    with trio.fail_after(TIMEOUT_S):
        async with sole_voter(tmp_path) as (voter, metrics_port):
            node = voter.node
            await settled(node)
            epoch = node.raft.epoch
            monkeypatch.setattr(QuorumController, "tick", tick_once_faulty)
            node.periodic.wake()
            while not faults:
                await trio.sleep(0.005)

            assert value(await scrape(metrics_port), METRIC) == 1
            [line] = fault_lines(caplog)
            found = FAULT_LINE.fullmatch(line.getMessage())
            assert found is not None and found.group(1) == PERIODIC_WORK
            # The node survived its periodic task's fault: it leads again and writes.
            await settled(node)
            assert node.raft.epoch > epoch
            await register_unfenced_broker(voter)
            assert await create(voter, "orders") == ErrorCode.NONE
            assert image_state(node.controller.image) == committed_replay(node)


# -- three voters -----------------------------------------------------------------------------


async def test_a_fault_on_the_leader_of_three_moves_leadership_to_a_healthy_voter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_create_topics_fault(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await with_orders(leader)
            epoch = leader.node.raft.epoch

            assert await create(leader, FAULTY_TOPIC) == ErrorCode.UNKNOWN_SERVER_ERROR

            new_leader = await q.leader(excluding=leader)
            assert new_leader.node.raft.epoch > epoch
            assert await create(new_leader, "payments") == ErrorCode.NONE
            await q.committed_everywhere(new_leader.node.log.end_offset)
            for voter in q.voters:
                topics = voter.node.controller.topics_by_name
                assert "orders" in topics and "payments" in topics
                assert FAULTY_TOPIC not in topics
                assert image_state(voter.node.controller.image) == committed_replay(voter.node)
            assert [v.node.faults.metadata_errors for v in q.voters] == [
                int(v is leader) for v in q.voters
            ]
            assert not new_leader.node.controller.brokers[1].fenced


async def test_a_fault_answers_the_writes_waiting_to_commit_not_controller_and_forgets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant_create_topics_fault(monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await with_orders(leader)
            # The followers die: the next write is appended but can never commit.
            for voter in q.voters:
                if voter is not leader:
                    voter.kill()
            answers: dict[str, int] = {}

            async def create_and_keep(name: str) -> None:
                answers[name] = await create(leader, name)

            end = leader.node.log.end_offset
            async with trio.open_nursery() as nursery:
                nursery.start_soon(create_and_keep, "pending")
                # Applied and appended (a standby's registration may land first: wait for
                # the topic itself, not for any growth of the log).
                while "pending" not in leader.node.controller.topics_by_name:
                    await trio.sleep(0.001)
                assert leader.node.log.end_offset > end
                await create_and_keep(FAULTY_TOPIC)
                # Renounced at the fault, not at the check-quorum timeout (3 s) to come.
                assert not leader.node.active
                assert leader.node.raft.state_name == "resigned"
                with trio.fail_after(1.0):
                    while "pending" not in answers:
                        await trio.sleep(0.001)

            assert answers == {
                FAULTY_TOPIC: ErrorCode.UNKNOWN_SERVER_ERROR,
                "pending": ErrorCode.NOT_CONTROLLER,
            }
            node = leader.node
            assert not node.active
            topics = node.controller.topics_by_name
            assert "orders" in topics and "pending" not in topics and FAULTY_TOPIC not in topics
            assert image_state(node.controller.image) == committed_replay(node)
