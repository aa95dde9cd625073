"""A broker written in the test walks a genuine broker's life against the real server.

The server runs in this process on a free port; the broker speaks to it over sockets the
way Kafka 3.9's broker does: ApiVersions, observer Fetch on its own connection,
registration, heartbeats until unfenced, CreateTopics forwarded inside an Envelope,
producer ids, controlled shutdown, and a restart with a new incarnation.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request
from kwire.protocol.messages.allocate_producer_ids import AllocateProducerIdsRequest
from kwire.protocol.messages.api_versions import ApiVersionsRequest
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest
from kwire.protocol.messages.envelope import EnvelopeRequest
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.raft.state import METADATA_TOPIC_ID
from kwire.records import decode_batches, unframe_metadata_record
from kwire.server.__main__ import build_settings
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage, random_uuid

BROKER_ID = 2
DIRECTORY = uuid.UUID("d44d709b-d2ee-4a18-b510-49c28a4ea63b")
ANONYMOUS_PRINCIPAL = bytes.fromhex("00000555736572" + "0a" + b"ANONYMOUS".hex() + "0000")


@dataclass
class Running:
    port: int
    cluster_id: str
    node: ControllerNode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Running]:
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(tmp_path / "controller"),
            "metadata.max.idle.interval.ms": "200",
            "broker.session.timeout.ms": "3000",
        }
    )
    cluster_id = random_uuid()
    format_storage(config, cluster_id, "3.9-IV0")
    node = ControllerNode(build_settings(config), seed=7)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(
                node, "127.0.0.1", port, max_request_bytes=1 << 20, task_status=task_status
            )
        )
        yield Running(port=port, cluster_id=cluster_id, node=node)
        nursery.cancel_scope.cancel()
    node.close()


def fetch_request(cluster_id: str, offset: int, last_epoch: int, leader_epoch: int) -> FetchRequest:
    return FetchRequest(
        cluster_id=cluster_id,
        replica_id=-1,
        replica_state=FetchRequest.ReplicaState(replica_id=BROKER_ID, replica_epoch=-1),
        max_wait_ms=500,
        min_bytes=0,
        max_bytes=8 * 1024 * 1024,
        session_epoch=-1,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0,
                        current_leader_epoch=leader_epoch,
                        fetch_offset=offset,
                        last_fetched_epoch=last_epoch,
                        log_start_offset=-1,
                        replica_directory_id=DIRECTORY,
                    )
                ],
            )
        ],
    )


class ObserverLog:
    """What the broker's raft client has replicated: every record by offset."""

    def __init__(self) -> None:
        self.records: dict[int, tuple[str, object]] = {}
        self.end_offset = 0
        self.last_epoch = 0
        self.high_watermark = -1

    def apply(self, response: FetchResponse) -> None:
        data = response.responses[0].partitions[0]
        assert data.error_code == ErrorCode.NONE, ErrorCode(data.error_code).name
        self.high_watermark = data.high_watermark
        for batch in decode_batches(bytes(data.records or b"")):
            for record in batch.records:
                offset = batch.base_offset + record.offset_delta
                if batch.is_control:
                    self.records[offset] = ("control", None)
                else:
                    key, version, body = unframe_metadata_record(record.value or b"")
                    message = METADATA_RECORDS[key].decode(body, version)
                    self.records[offset] = (type(message).__name__, message)
            self.end_offset = batch.next_offset
            self.last_epoch = batch.partition_leader_epoch

    def kinds(self) -> list[str]:
        return [kind for _, (kind, _) in sorted(self.records.items())]

    def offset_of(self, kind: str, predicate: object = None) -> int:
        for offset, (name, message) in sorted(self.records.items()):
            if name == kind and (predicate is None or predicate(message)):  # type: ignore[operator]
                return offset
        raise AssertionError(f"no {kind} in the log: {self.kinds()}")


async def catch_up(raft: KafkaClient, running: Running, log: ObserverLog, epoch: int) -> None:
    """Fetch until the observer has everything up to the high watermark."""
    for _ in range(50):
        response = await raft.request(
            fetch_request(running.cluster_id, log.end_offset, log.last_epoch, epoch), 17
        )
        assert isinstance(response, FetchResponse)
        log.apply(response)
        if log.end_offset >= log.high_watermark > 0:
            return
    raise AssertionError("the observer never caught up")


def registration(incarnation: uuid.UUID, cluster_id: str) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=BROKER_ID,
        cluster_id=cluster_id,
        incarnation_id=incarnation,
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host="127.0.0.1", port=19092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="kraft.version", min_supported_version=0, max_supported_version=1
            ),
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            ),
        ],
        rack=None,
        log_dirs=[DIRECTORY],
        previous_broker_epoch=-1,
    )


async def heartbeat_until(
    broker: KafkaClient, epoch: int, log_end: int, *, fenced: bool, shut_down: bool = False
) -> BrokerHeartbeatRequest:
    for _ in range(40):
        response = await broker.request(
            BrokerHeartbeatRequest(
                broker_id=BROKER_ID,
                broker_epoch=epoch,
                current_metadata_offset=log_end,
                want_fence=False,
                want_shut_down=shut_down,
            ),
            1,
        )
        assert response.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        if shut_down and response.should_shut_down:  # type: ignore[attr-defined]
            return response  # type: ignore[return-value]
        if not shut_down and response.is_fenced == fenced:  # type: ignore[attr-defined]
            return response  # type: ignore[return-value]
        await trio.sleep(0.05)
    raise AssertionError("the heartbeat state never changed")


async def test_a_broker_lives_its_whole_life_against_the_server(server: Running) -> None:
    with trio.fail_after(30):
        broker = await KafkaClient.connect("127.0.0.1", server.port, client_id=str(BROKER_ID))
        raft = await KafkaClient.connect("127.0.0.1", server.port, client_id="raft-client-2")
        versions = await broker.request(
            ApiVersionsRequest(
                client_software_name="apache-kafka-java", client_software_version="3.9.0"
            ),
            4,
        )
        assert {63, 62, 1, 58, 67}.issubset({k.api_key for k in versions.api_keys})  # type: ignore[attr-defined]

        # An observer that does not know the epoch yet is fenced and told who leads.
        first = await raft.request(fetch_request(server.cluster_id, 0, 0, 0), 17)
        assert isinstance(first, FetchResponse)
        partition = first.responses[0].partitions[0]
        assert partition.error_code == ErrorCode.FENCED_LEADER_EPOCH
        leader = partition.current_leader
        assert (leader.leader_id, leader.leader_epoch) == (1, 1)
        assert [(e.node_id, e.port) for e in first.node_endpoints] == [(1, server.port)]

        log = ObserverLog()
        await catch_up(raft, server, log, leader.leader_epoch)
        kinds = log.kinds()
        assert kinds[:6] == [
            "control",
            "BeginTransactionRecord",
            "FeatureLevelRecord",
            "ZkMigrationStateRecord",
            "EndTransactionRecord",
            "RegisterControllerRecord",
        ]

        registered = await broker.request(registration(uuid.uuid4(), server.cluster_id), 4)
        assert registered.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        broker_epoch = registered.broker_epoch  # type: ignore[attr-defined]
        await catch_up(raft, server, log, 1)
        assert broker_epoch == log.offset_of("RegisterBrokerRecord")

        # Not caught up: stays fenced. Caught up: unfenced, with a record saying so.
        behind = await broker.request(
            BrokerHeartbeatRequest(
                broker_id=BROKER_ID, broker_epoch=broker_epoch, current_metadata_offset=0
            ),
            1,
        )
        assert behind.is_fenced and not behind.is_caught_up  # type: ignore[attr-defined]
        await heartbeat_until(broker, broker_epoch, log.end_offset, fenced=False)
        await catch_up(raft, server, log, 1)
        unfenced_at = log.offset_of(
            "BrokerRegistrationChangeRecord", lambda m: m.broker_id == BROKER_ID and m.fenced == -1
        )
        assert unfenced_at > broker_epoch

        # CreateTopics forwarded by the broker on a client's behalf.
        inner = encode_request(
            RequestHeader(
                request_api_key=19,
                request_api_version=7,
                correlation_id=5,
                client_id="adminclient-1",
            ),
            CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name="demo", num_partitions=10, replication_factor=1
                    )
                ],
                timeout_ms=30000,
            ),
        )
        wrapped = await broker.request(
            EnvelopeRequest(
                request_data=inner,
                request_principal=ANONYMOUS_PRINCIPAL,
                client_host_address=bytes([127, 0, 0, 1]),
            ),
            0,
        )
        assert wrapped.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        header, created = decode_response(wrapped.response_data, 19, 7)  # type: ignore[attr-defined]
        assert header.correlation_id == 5
        assert isinstance(created, CreateTopicsResponse)
        result = created.topics[0]
        assert (result.name, result.error_code, result.num_partitions) == ("demo", 0, 10)
        await catch_up(raft, server, log, 1)
        topic_offset = log.offset_of("TopicRecord", lambda m: m.name == "demo")
        partitions = [
            m
            for o, (k, m) in sorted(log.records.items())
            if k == "PartitionRecord" and o > topic_offset
        ]
        assert len(partitions) == 10
        assert all(p.leader == BROKER_ID and p.replicas == [BROKER_ID] for p in partitions)  # type: ignore[attr-defined]
        assert all(p.directories == [DIRECTORY] for p in partitions)  # type: ignore[attr-defined]

        # Producer id blocks of 1000, one after the other.
        blocks = [
            await broker.request(
                AllocateProducerIdsRequest(broker_id=BROKER_ID, broker_epoch=broker_epoch), 0
            )
            for _ in range(2)
        ]
        assert [(b.producer_id_start, b.producer_id_len) for b in blocks] == [
            (0, 1000),
            (1000, 1000),
        ]  # type: ignore[attr-defined]

        # The admin client's view: the quorum and its observer, the controller endpoints.
        quorum = await broker.request(
            DescribeQuorumRequest(
                topics=[
                    DescribeQuorumRequest.TopicData(
                        topic_name="__cluster_metadata",
                        partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                    )
                ]
            ),
            2,
        )
        state = quorum.topics[0].partitions[0]  # type: ignore[attr-defined]
        assert state.leader_id == 1 and state.high_watermark >= log.end_offset - 1
        assert [(o.replica_id, o.replica_directory_id) for o in state.observers] == [
            (BROKER_ID, DIRECTORY)
        ]
        cluster = await broker.request(DescribeClusterRequest(endpoint_type=2), 1)
        assert cluster.cluster_id == server.cluster_id and cluster.controller_id == 1  # type: ignore[attr-defined]

        # Controlled shutdown: leadership moves away, then the broker is told to stop.
        done = await heartbeat_until(
            broker, broker_epoch, log.end_offset, fenced=True, shut_down=True
        )
        assert done.should_shut_down  # type: ignore[attr-defined]

        # The broker restarts with a new incarnation and is given a newer epoch.
        again = await broker.request(registration(uuid.uuid4(), server.cluster_id), 4)
        assert again.error_code == ErrorCode.NONE  # type: ignore[attr-defined]
        assert again.broker_epoch > broker_epoch  # type: ignore[attr-defined]
        await broker.aclose()
        await raft.aclose()


async def test_an_empty_fetch_waits_for_new_records(server: Running) -> None:
    with trio.fail_after(10):
        raft = await KafkaClient.connect("127.0.0.1", server.port)
        log = ObserverLog()
        await catch_up(raft, server, log, 1)
        start = trio.current_time()
        # At the log end: the answer comes when the next NoOp (every 200 ms here) lands,
        # not at once and not after the full MaxWaitMs.
        response = await raft.request(
            fetch_request(server.cluster_id, log.end_offset, log.last_epoch, 1), 17
        )
        waited = trio.current_time() - start
        assert isinstance(response, FetchResponse)
        assert response.responses[0].partitions[0].records
        assert waited < 0.5
        await raft.aclose()


@pytest.mark.parametrize(
    ("version", "endpoint_type", "error"),
    [
        (1, 2, ErrorCode.NONE),
        (1, 1, ErrorCode.MISMATCHED_ENDPOINT_TYPE),  # asking a controller for brokers
        (0, 1, ErrorCode.INVALID_REQUEST),  # v0 always means brokers
        (1, 7, ErrorCode.UNSUPPORTED_ENDPOINT_TYPE),
    ],
)
async def test_describe_cluster_answers_each_endpoint_type_as_kafka_does(
    server: Running, version: int, endpoint_type: int, error: ErrorCode
) -> None:
    with trio.fail_after(10):
        client = await KafkaClient.connect("127.0.0.1", server.port)
        request = DescribeClusterRequest(endpoint_type=endpoint_type)
        response = await client.request(request, version)
        assert response.error_code == error  # type: ignore[attr-defined]
        brokers = [(b.broker_id, b.port) for b in response.brokers]  # type: ignore[attr-defined]
        assert brokers == ([(1, server.port)] if error == ErrorCode.NONE else [])
        await client.aclose()
