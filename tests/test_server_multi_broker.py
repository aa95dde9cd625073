"""Three brokers written in the test live through a cluster's story against a real server.

The server runs in this process on a free 127.0.0.1 port; each broker speaks Kafka 3.9's
broker protocol to it over its own socket: BrokerRegistration v4, a BrokerHeartbeat v1
every 300 ms (reporting the high watermark it learns as an observer with Fetch v17), and
AlterPartition v3 from partition leaders. The story: the brokers register and unfence,
topics are created with replication factor 3, broker 3 falls silent and is fenced by its
session timeout, returns and rejoins the ISRs, the server restarts and replays the same
state, leadership returns to the preferred replicas (auto.leader.rebalance.enable), a
reassignment completes through AlterPartition, and a topic is deleted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from test_controller_integrity import image_state
from test_server_scripted_broker import fetch_request, free_port

from kwire.controller.image import PartitionRegistration, TopicInfo
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition import AlterPartitionRequest, AlterPartitionResponse
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.fetch import FetchResponse
from kwire.protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
)
from kwire.server.__main__ import build_settings
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage, random_uuid

HOST = "127.0.0.1"
BROKERS = (1, 2, 3)
SESSION_TIMEOUT_MS = 1500
HEARTBEAT_S = 0.3


class Server:
    """The kwire server, started and restarted in this process on one free port."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.config = ControllerServerConfig.from_properties(
            {
                "process.roles": "controller",
                "node.id": "100",
                "controller.quorum.voters": f"100@{HOST}:{self.port}",
                "listeners": f"CONTROLLER://{HOST}:{self.port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
                "log.dirs": str(tmp_path / "controller"),
                "metadata.max.idle.interval.ms": "200",
                "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                "auto.leader.rebalance.enable": "true",
                "leader.imbalance.check.interval.seconds": "1",
            }
        )
        self.cluster_id = random_uuid()
        format_storage(self.config, self.cluster_id, "3.9-IV0")
        self.node: ControllerNode | None = None
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        self._scope, self._stopped = trio.CancelScope(), trio.Event()
        await nursery.start(self._run)

    async def _run(self, task_status: trio.TaskStatus[int]) -> None:
        node = self.node = ControllerNode(build_settings(self.config), seed=7)
        try:
            with self._scope:
                await serve(
                    node, HOST, self.port, max_request_bytes=1 << 20, task_status=task_status
                )
        finally:
            node.close()
            self._stopped.set()

    async def stop(self) -> None:
        self._scope.cancel()
        await self._stopped.wait()

    @property
    def image(self) -> Any:
        assert self.node is not None
        return self.node.controller.image


@dataclasses.dataclass
class Broker:
    """One simulated broker: its connection, registration and heartbeat loop."""

    broker_id: int
    server: Server
    client: KafkaClient | None = None
    epoch: int = -1
    silent: bool = False
    fenced: bool | None = None  # as the last heartbeat answered; None: not yet answered
    metadata_offset: int = -1
    directory: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    # One request at a time on the connection (the heartbeat loop and a test's own
    # requests share it; the client reads whichever answer comes next).
    lock: trio.Lock = dataclasses.field(default_factory=trio.Lock)

    async def request(self, body: Message, version: int) -> Any:
        """Send on this broker's connection, reconnecting (as a broker's NetworkClient
        does) when the server went away."""
        async with self.lock:
            return await self._request(body, version)

    async def _request(self, body: Message, version: int) -> Any:
        for _ in range(50):
            try:
                if self.client is None:
                    self.client = await KafkaClient.connect(
                        HOST, self.server.port, client_id=f"broker-{self.broker_id}"
                    )
                return await self.client.request(body, version)
            except (OSError, ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError):
                self.client = None
                await trio.sleep(0.1)
        raise AssertionError(f"broker {self.broker_id} could not reach the server")

    async def register(self) -> None:
        answer = await self.request(
            BrokerRegistrationRequest(
                broker_id=self.broker_id,
                cluster_id=self.server.cluster_id,
                incarnation_id=uuid.uuid4(),
                listeners=[
                    BrokerRegistrationRequest.Listener(
                        name="PLAINTEXT",
                        host=HOST,
                        port=19090 + self.broker_id,
                        security_protocol=0,
                    )
                ],
                features=[
                    BrokerRegistrationRequest.Feature(
                        name="metadata.version", min_supported_version=1, max_supported_version=21
                    ),
                    BrokerRegistrationRequest.Feature(
                        name="kraft.version", min_supported_version=0, max_supported_version=1
                    ),
                ],
                log_dirs=[self.directory],
                previous_broker_epoch=-1,
            ),
            4,
        )
        assert answer.error_code == ErrorCode.NONE
        self.epoch = answer.broker_epoch

    async def learn_offset(self) -> None:
        """The high watermark of the metadata log, as an observer's Fetch learns it."""
        epoch = 0
        for _ in range(5):
            answer = await self.request(fetch_request(self.server.cluster_id, 0, 0, epoch), 17)
            assert isinstance(answer, FetchResponse)
            data = answer.responses[0].partitions[0]
            if data.error_code == ErrorCode.NONE:
                self.metadata_offset = data.high_watermark - 1
                return
            epoch = data.current_leader.leader_epoch  # a new epoch after a restart
        raise AssertionError("the observer fetch kept failing")

    async def heartbeat_forever(self) -> None:
        while True:
            if not self.silent:
                await self.learn_offset()
                answer = await self.request(
                    BrokerHeartbeatRequest(
                        broker_id=self.broker_id,
                        broker_epoch=self.epoch,
                        current_metadata_offset=self.metadata_offset,
                        want_fence=False,
                        want_shut_down=False,
                        offline_log_dirs=[],
                    ),
                    1,
                )
                assert answer.error_code == ErrorCode.NONE, answer
                self.fenced = answer.is_fenced
            await trio.sleep(HEARTBEAT_S)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"never happened: {what}")


def partitions(image: Any) -> dict[tuple[str, int], PartitionRegistration]:
    topics: dict[uuid.UUID, TopicInfo] = image.topics
    return {(t.name, p): part for t in topics.values() for p, part in t.partitions.items()}


async def alter_isr(
    server: Server, brokers: dict[int, Broker], name: str, partition_id: int, isr: list[int]
) -> AlterPartitionResponse.PartitionData:
    """The partition's leader asks for ``isr`` (AlterPartition v3, as Kafka 3.9's
    broker sends it with each member's broker epoch)."""
    topic = server.image.topic_by_name(name)
    part = topic.partitions[partition_id]
    leader = brokers[part.leader]
    answer = await leader.request(
        AlterPartitionRequest(
            broker_id=leader.broker_id,
            broker_epoch=leader.epoch,
            topics=[
                AlterPartitionRequest.TopicData(
                    topic_id=topic.topic_id,
                    partitions=[
                        AlterPartitionRequest.PartitionData(
                            partition_index=partition_id,
                            leader_epoch=part.leader_epoch,
                            partition_epoch=part.partition_epoch,
                            new_isr_with_epochs=[
                                AlterPartitionRequest.BrokerState(
                                    broker_id=b, broker_epoch=brokers[b].epoch
                                )
                                for b in isr
                            ],
                        )
                    ],
                )
            ],
        ),
        3,
    )
    assert answer.error_code == ErrorCode.NONE
    (result,) = answer.topics[0].partitions
    return result  # type: ignore[no-any-return]


async def test_three_brokers_live_through_fencing_isr_changes_a_restart_reassignment_and_deletion(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await server.start(nursery)
            brokers = {b: Broker(b, server) for b in BROKERS}

            # Register; heartbeats unfence every broker once it has caught up.
            for broker in brokers.values():
                await broker.register()
                nursery.start_soon(broker.heartbeat_forever)
            await eventually(lambda: all(b.fenced is False for b in brokers.values()), "unfenced")

            admin = brokers[1]
            created = await admin.request(
                CreateTopicsRequest(
                    topics=[
                        CreateTopicsRequest.CreatableTopic(
                            name=name, num_partitions=count, replication_factor=rf
                        )
                        for name, count, rf in (("events", 6, 3), ("gone", 2, 3), ("moved", 1, 2))
                    ],
                    timeout_ms=30_000,
                ),
                7,
            )
            assert [(t.name, t.error_code) for t in created.topics] == [
                ("events", 0),
                ("gone", 0),
                ("moved", 0),
            ]
            placed = partitions(server.image)
            # Every partition starts led by its preferred replica with the full ISR
            # (StripedReplicaPlacer over three unfenced brokers).
            assert all(p.leader == p.replicas[0] for p in placed.values())
            assert all(sorted(p.isr) == sorted(p.replicas) for p in placed.values())
            led_by_3 = [key for key, p in placed.items() if p.replicas[0] == 3]
            assert led_by_3, "the placer gave broker 3 no preferred leadership"

            # Broker 3 falls silent: fenced once its session runs out, it leaves every
            # ISR and no partition keeps it as leader (ReplicationControlManager.
            # handleBrokerFenced).
            brokers[3].silent = True
            await eventually(lambda: server.image.brokers[3].fenced, "broker 3 fenced")
            fenced = partitions(server.image)
            assert all(3 not in p.isr and p.leader != 3 for p in fenced.values())
            assert all(fenced[key].leader == placed[key].replicas[1] for key in led_by_3)

            # It returns with its epoch: a caught-up heartbeat unfences it (the answer
            # says so, BrokerHeartbeatManager), with no leader moving back yet.
            brokers[3].fenced = None
            brokers[3].silent = False
            await eventually(lambda: brokers[3].fenced is False, "broker 3 unfenced")
            assert not server.image.brokers[3].fenced
            assert all(3 not in p.isr for p in partitions(server.image).values())

            # The leaders add it back to their ISRs; each answer is the new state.
            for (name, pid), part in partitions(server.image).items():
                if 3 in part.replicas:
                    wanted = [*part.isr, 3]
                    answer = await alter_isr(server, brokers, name, pid, wanted)
                    assert answer.error_code == ErrorCode.NONE
                    assert sorted(answer.isr) == sorted(wanted)
                    assert answer.partition_epoch == part.partition_epoch + 1
            rejoined = partitions(server.image)
            assert all(sorted(p.isr) == sorted(p.replicas) for p in rejoined.values())

            # With the rebalance every second, leadership goes back to broker 3 where it
            # is the preferred replica.
            await eventually(
                lambda: all(p.leader == p.replicas[0] for p in partitions(server.image).values()),
                "leaders back on their preferred replicas",
            )

            # The server restarts: the replayed state is the state it had, but for what
            # the new process writes once it leads: its own registration with a new
            # incarnation (ControllerRegistration) and the offsets of its new records.
            await server.stop()
            before = image_state(server.image)
            await server.start(nursery)
            after = image_state(server.image)
            moving = {"last_applied_offset", "controllers"}
            assert {k: v for k, v in after.items() if k not in moving} == {
                k: v for k, v in before.items() if k not in moving
            }
            assert after["last_applied_offset"] >= before["last_applied_offset"]
            assert {
                k: dataclasses.replace(v, incarnation_id=None)
                for k, v in after["controllers"].items()
            } == {
                k: dataclasses.replace(v, incarnation_id=None)
                for k, v in before["controllers"].items()
            }
            await eventually(
                lambda: not any(server.image.brokers[b].fenced for b in BROKERS),
                "brokers still unfenced after the restart",
            )

            # A reassignment adding broker 3's missing replica completes when the leader
            # reports it in the ISR (PartitionChangeBuilder completes it).
            moved = server.image.topic_by_name("moved").partitions[0]
            target = [*moved.replicas, next(b for b in BROKERS if b not in moved.replicas)]
            answer = await admin.request(
                AlterPartitionReassignmentsRequest(
                    timeout_ms=30_000,
                    topics=[
                        AlterPartitionReassignmentsRequest.ReassignableTopic(
                            name="moved",
                            partitions=[
                                AlterPartitionReassignmentsRequest.ReassignablePartition(
                                    partition_index=0, replicas=target
                                )
                            ],
                        )
                    ],
                ),
                0,
            )
            assert answer.error_code == ErrorCode.NONE
            assert answer.responses[0].partitions[0].error_code == ErrorCode.NONE
            pending = server.image.topic_by_name("moved").partitions[0]
            assert (list(pending.replicas), list(pending.adding_replicas)) == (target, target[-1:])
            listed = await admin.request(ListPartitionReassignmentsRequest(timeout_ms=30_000), 0)
            assert [(t.name, [p.adding_replicas for p in t.partitions]) for t in listed.topics] == [
                ("moved", [target[-1:]])
            ]
            done = await alter_isr(server, brokers, "moved", 0, target)
            assert done.error_code == ErrorCode.NONE
            finished = server.image.topic_by_name("moved").partitions[0]
            assert (list(finished.replicas), finished.adding_replicas) == (target, ())
            assert sorted(finished.isr) == sorted(target)
            listed = await admin.request(ListPartitionReassignmentsRequest(timeout_ms=30_000), 0)
            assert listed.topics == []

            # A topic is deleted: its partitions are gone from the image.
            deleted = await admin.request(
                DeleteTopicsRequest(topic_names=["gone"], timeout_ms=30_000), 5
            )
            assert [(r.name, r.error_code) for r in deleted.responses] == [("gone", 0)]
            assert server.image.topic_by_name("gone") is None
            assert {name for name, _ in partitions(server.image)} == {"events", "moved"}

            for broker in brokers.values():
                if broker.client is not None:
                    await broker.client.aclose()
            nursery.cancel_scope.cancel()
