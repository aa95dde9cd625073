"""A real kwire server never remembers what its log does not hold.

Reproductions of the faults where the controller's memory ran ahead of its log: a
CreateTopics over the raft batch limit, and a disk that fills up under a write (a real
RLIMIT_FSIZE on a subprocess server). Each ends with a restart on the same directory,
which must replay the log without error and show only what was acknowledged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import trio
import trio.testing
from server_harness import HOST, KwireServer

from kwire.controller import ControllerConfig, RequestContext
from kwire.log import MetadataLog
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.raft.state import Voter
from kwire.records import unframe_metadata_record
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.dispatch import RequestHandler
from kwire.server.node import AppendFailed, ControllerNode, NodeSettings
from kwire.storage import format_storage, random_uuid

TIMEOUT_S = 20.0
MiB = 1024 * 1024


def throttled_configs(size: int = 32_000) -> list[CreateTopicsRequest.CreatableTopicConfig]:
    value = ",".join(f"{i}:{i}" for i in range(size // 6))[:size].rsplit(",", 1)[0]
    return [
        CreateTopicsRequest.CreatableTopicConfig(name=name, value=value)
        for name in (
            "leader.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
        )
    ]


def create_topics(prefix: str, count: int) -> CreateTopicsRequest:
    """``count`` one-partition topics, each with about 64 KB of topic configs."""
    configs = throttled_configs()
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=f"{prefix}-{i}", num_partitions=1, replication_factor=1, configs=configs
            )
            for i in range(count)
        ],
        timeout_ms=30_000,
    )


def codes(response: object) -> set[int]:
    assert isinstance(response, CreateTopicsResponse)
    return {t.error_code for t in response.topics}


CONTEXT = RequestContext(api_version=7)


def broker_registration(cluster_id: str) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=1,
        cluster_id=cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )


async def unfenced_broker(client: KafkaClient, cluster_id: str) -> None:
    """Register broker 1 and heartbeat until it is unfenced."""
    registration = broker_registration(cluster_id)
    response = await client.request(registration, 4)
    assert isinstance(response, BrokerRegistrationResponse)
    assert response.error_code == ErrorCode.NONE
    epoch = response.broker_epoch
    heartbeat = BrokerHeartbeatRequest(
        broker_id=1, broker_epoch=epoch, current_metadata_offset=epoch, want_fence=False
    )
    answer = await client.request(heartbeat, 1)
    assert isinstance(answer, BrokerHeartbeatResponse)
    assert answer.error_code == ErrorCode.NONE and not answer.is_fenced


def records_in_log(data_dir: Path) -> list[object]:
    """Every metadata record of the log on disk, decoded as a restart reads it."""
    records: list[object] = []
    with MetadataLog.open(data_dir / "__cluster_metadata-0") as log:
        for batch in log.read_batches(log.log_start_offset):
            if batch.is_control:
                continue
            for record in batch.records:
                api_key, version, body = unframe_metadata_record(record.value)
                records.append(METADATA_RECORDS[api_key].decode(body, version))
    return records


def topic_names_in_log(data_dir: Path) -> set[str]:
    return {r.name for r in records_in_log(data_dir) if isinstance(r, TopicRecord)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KwireServer]:
    with KwireServer.create(
        tmp_path / "kwire", overrides={"broker.session.timeout.ms": "3000"}
    ) as running:
        yield running


async def test_create_topics_over_the_batch_limit_is_answered_and_never_poisons_the_log(
    server: KwireServer,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        client = await KafkaClient.connect(HOST, server.port)
        await unfenced_broker(client, server.cluster_id)
        oversized = create_topics("big", 140)  # about 9 MB of records: over 8 MiB

        # Kafka 3.9: every topic fails with UNKNOWN_SERVER_ERROR and nothing is written;
        # the connection stays open for the next request.
        assert codes(await client.request(oversized, 7)) == {ErrorCode.UNKNOWN_SERVER_ERROR}
        assert codes(await client.request(oversized, 7)) == {ErrorCode.UNKNOWN_SERVER_ERROR}
        small = create_topics("small", 2)
        assert codes(await client.request(small, 7)) == {ErrorCode.NONE}
        # The broker stops heartbeating: fencing moves the leaders of committed topics only.
        await trio.sleep(3.5)
        await client.aclose()

    assert server.stop() == 0
    records = records_in_log(server.data_dir)
    topic_ids = {r.topic_id for r in records if isinstance(r, TopicRecord)}
    moved = [r.topic_id for r in records if isinstance(r, PartitionChangeRecord)]
    assert sorted(topic_names_in_log(server.data_dir)) == ["small-0", "small-1"]
    assert set(moved) == topic_ids  # the fencing moved both committed topics, nothing else
    server.start()  # replays the log without error
    with trio.fail_after(TIMEOUT_S):
        client = await KafkaClient.connect(HOST, server.port)
        again = await client.request(small, 7)
        assert codes(again) == {ErrorCode.TOPIC_ALREADY_EXISTS}
        await client.aclose()


async def test_a_write_error_on_a_full_disk_halts_and_the_restart_keeps_only_acknowledged_topics(
    tmp_path: Path,
) -> None:
    server = KwireServer(tmp_path / "kwire", file_size_limit=11 * MiB)
    server.format()
    server.start()
    try:
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            await unfenced_broker(client, server.cluster_id)
            first, second = create_topics("first", 95), create_topics("second", 95)  # ~6 MB each
            assert codes(await client.request(first, 7)) == {ErrorCode.NONE}
            # The second batch does not fit under the file-size limit: the append fails with
            # EFBIG, and kwire halts rather than serve from state its log lacks.
            with pytest.raises(ConnectionError):
                await client.request(second, 7)
        status = server.wait_exit()
        assert status == 1
        assert "Unable to append" in server.stderr() and "Halting" in server.stderr()

        server.file_size_limit = None
        server.start()  # recovery truncates the torn tail; replay succeeds
        assert topic_names_in_log(server.data_dir) == {f"first-{i}" for i in range(95)}
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            assert codes(await client.request(first, 7)) == {ErrorCode.TOPIC_ALREADY_EXISTS}
            assert codes(await client.request(second, 7)) == {ErrorCode.NONE}
            await client.aclose()
    finally:
        server.close()


# -- the node's write path, in process ---------------------------------------------------------


class Halted(Exception):
    pass


def halt_for_test(message: str, cause: BaseException) -> NoReturn:
    raise Halted(message) from cause


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ControllerNode]:
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:9093",
            "listeners": f"CONTROLLER://{HOST}:9093",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "controller"),
        }
    )
    format_storage(config, random_uuid(), "3.9-IV0")
    settings = NodeSettings(
        node_id=1,
        cluster_id=random_uuid(),
        voters=(Voter(node_id=1, host=HOST, port=9093),),
        listener_name="CONTROLLER",
        metadata_dir=tmp_path / "controller",
        controller=ControllerConfig(),
    )
    running = ControllerNode(settings, seed=1, fault_handler=halt_for_test)
    running.start()
    yield running
    running.close()


async def test_an_append_the_log_refuses_reverts_the_controller_and_fails_the_request(
    node: ControllerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = RequestHandler(node)
    with trio.fail_after(TIMEOUT_S):
        registered = await handler.controller_request(
            broker_registration(node.settings.cluster_id), CONTEXT
        )
        epoch = registered.broker_epoch
        await handler.controller_request(
            BrokerHeartbeatRequest(
                broker_id=1, broker_epoch=epoch, current_metadata_offset=epoch, want_fence=False
            ),
            CONTEXT,
        )
    end, generation = node.log.end_offset, node.write_generation

    def refuse(data: bytes, epoch: int, **_: object) -> None:
        raise ValueError("refused for the test")

    with monkeypatch.context() as patch:
        patch.setattr(node.log, "append_as_leader", refuse)
        with trio.fail_after(TIMEOUT_S):
            response = await handler.controller_request(create_topics("refused", 2), CONTEXT)
    assert codes(response) == {ErrorCode.UNKNOWN_SERVER_ERROR}
    assert node.log.end_offset == end
    assert node.write_generation == generation + 1
    assert not set(node.controller.topics_by_name) & {"refused-0", "refused-1"}
    assert node.controller.uncommitted_changes == 0

    with trio.fail_after(TIMEOUT_S):
        response = await handler.controller_request(create_topics("refused", 2), CONTEXT)
    assert codes(response) == {ErrorCode.NONE}
    assert node.log.end_offset > end


async def test_an_io_error_on_the_metadata_log_is_fatal(
    node: ControllerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_error(data: bytes, epoch: int, **_: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(node.log, "append_as_leader", disk_error)
    handler = RequestHandler(node)
    with trio.fail_after(TIMEOUT_S), pytest.raises(Halted) as halted:
        await handler.controller_request(broker_registration(node.settings.cluster_id), CONTEXT)
    assert f"at offset {node.log.end_offset}" in str(halted.value)
    assert isinstance(halted.value.__cause__, OSError)


async def test_writes_waiting_for_a_commit_are_abandoned_when_the_node_reverts(
    node: ControllerNode,
) -> None:
    """A leader that takes back uncommitted records (a refused append now, a lost
    leadership with the quorum) answers every request waiting on them NOT_CONTROLLER."""
    generation = node.write_generation
    failures: list[AppendFailed] = []

    async def waiter() -> None:
        try:
            await node.wait_committed(node.committed_offset + 5, generation)
        except AppendFailed as exc:
            failures.append(exc)

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert failures == []
            node.revert_uncommitted("leadership lost (test)")
    assert [f.code for f in failures] == [ErrorCode.NOT_CONTROLLER]
