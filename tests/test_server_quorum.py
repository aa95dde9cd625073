"""Three kwire voters in one process, each serving on its own 127.0.0.1 port: they elect
one leader, replicate the controller's writes to hot standbys, fail over when the leader
dies, and hand over when it stops gracefully (issue 9, items 2, 3 and 9)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio
from server_harness import HOST, free_port
from test_controller_integrity import image_state

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.server.__main__ import build_settings
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage, random_uuid

TIMEOUT_S = 20.0
MAX_REQUEST_BYTES = 100 * 1024 * 1024
# The three voters share this process's one thread, so their fsyncs run one after the
# other: timings are looser than with processes (test_server_quorum_processes.py).
# A fast failover that meets a split vote costs one election timeout more (1 s).
FAILOVER_BOUND_S = 2.0
HANDOVER_BOUND_S = 0.5


@dataclass
class Voter:
    """One running voter: its node, port, and the scope that kills it."""

    node_id: int
    port: int
    node: ControllerNode
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def leads(self) -> bool:
        return not self.stopped.is_set() and self.node.active

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(
                        functools.partial(
                            serve, self.node, HOST, self.port, max_request_bytes=MAX_REQUEST_BYTES
                        )
                    )
                    task_status.started()
        finally:
            self.stopped.set()
            self.node.close()

    def kill(self) -> None:
        """Stop at once, as a dead process: its sockets close, nothing is handed over."""
        self.scope.cancel()


@dataclass
class Quorum:
    voters: list[Voter]

    def live(self) -> list[Voter]:
        return [v for v in self.voters if not v.stopped.is_set()]

    async def leader(self, excluding: Voter | None = None) -> Voter:
        """The one live voter whose controller is active (waits for it)."""
        while True:
            leaders = [v for v in self.live() if v.leads and v is not excluding]
            if len(leaders) == 1:
                return leaders[0]
            assert len(leaders) < 2, "two active controllers at once"
            await trio.sleep(0.005)

    async def committed_everywhere(self, offset: int) -> None:
        while any(v.node.committed_offset < offset for v in self.live()):
            await trio.sleep(0.005)


@asynccontextmanager
async def quorum(tmp_path: Path, size: int = 3) -> AsyncIterator[Quorum]:
    ports = [free_port() for _ in range(size)]
    voters = ",".join(f"{i + 1}@{HOST}:{port}" for i, port in enumerate(ports))
    cluster_id = random_uuid()
    running: list[Voter] = []
    for index, port in enumerate(ports):
        config = ControllerServerConfig.from_properties(
            {
                "process.roles": "controller",
                "node.id": str(index + 1),
                "controller.quorum.voters": voters,
                "listeners": f"CONTROLLER://{HOST}:{port}",
                "controller.listener.names": "CONTROLLER",
                "log.dirs": str(tmp_path / f"node-{index + 1}"),
            }
        )
        format_storage(config, cluster_id, "3.9-IV0")
        node = ControllerNode(build_settings(config), seed=index)
        running.append(Voter(node_id=index + 1, port=port, node=node))
    async with trio.open_nursery() as nursery:
        for voter in running:
            await nursery.start(voter.run)
        try:
            yield Quorum(running)
        finally:
            nursery.cancel_scope.cancel()


async def request(voter: Voter, body: object, version: int) -> object:
    client = await KafkaClient.connect(HOST, voter.port)
    try:
        return await client.request(body, version)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def register_unfenced_broker(leader: Voter) -> None:
    registration = BrokerRegistrationRequest(
        broker_id=1,
        cluster_id=leader.node.settings.cluster_id,
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
    response = await request(leader, registration, 4)
    assert isinstance(response, BrokerRegistrationResponse)
    assert response.error_code == ErrorCode.NONE
    heartbeat = BrokerHeartbeatRequest(
        broker_id=1,
        broker_epoch=response.broker_epoch,
        current_metadata_offset=response.broker_epoch,
        want_fence=False,
    )
    answer = await request(leader, heartbeat, 1)
    assert isinstance(answer, BrokerHeartbeatResponse)
    assert answer.error_code == ErrorCode.NONE and not answer.is_fenced


def create_topic(name: str) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(name=name, num_partitions=1, replication_factor=1)
        ],
        timeout_ms=10_000,
    )


async def create(voter: Voter, name: str) -> int:
    response = await request(voter, create_topic(name), 7)
    assert isinstance(response, CreateTopicsResponse)
    return response.topics[0].error_code


def standby_image(voter: Voter) -> dict[str, object]:
    return image_state(voter.node.controller.image)


async def test_three_voters_elect_one_leader_whose_controller_alone_is_active(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            epoch = leader.node.raft.epoch
            followers = [v for v in q.voters if v is not leader]
            # Every voter agrees on the leader of the epoch once it has heard from it.
            while any(v.node.raft.leader_id != leader.node_id for v in followers):
                await trio.sleep(0.005)
            assert all(v.node.raft.epoch == epoch for v in followers)
            assert [v.node.active for v in followers] == [False, False]
            # The new leader registered itself as a controller, on every standby too.
            await q.committed_everywhere(leader.node.log.end_offset)
            assert all(leader.node_id in v.node.controller.controllers for v in q.voters)


async def test_a_create_topics_through_the_leader_commits_on_all_three_standby_images(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            # The standbys register themselves (KIP-919) in writes of their own: once all
            # have, the log's end below is the last write until the test writes again.
            while len(leader.node.controller.image.controllers) < len(q.voters):
                await trio.sleep(0.005)
            await register_unfenced_broker(leader)
            assert await create(leader, "orders") == ErrorCode.NONE
            await q.committed_everywhere(leader.node.log.end_offset)
            images = [standby_image(v) for v in q.voters]
            assert all("orders" in v.node.controller.topics_by_name for v in q.voters)
            assert images[0] == images[1] == images[2]


async def test_a_controller_request_to_a_follower_is_answered_not_controller(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            follower = next(v for v in q.voters if v is not leader)
            assert await create(follower, "orders") == ErrorCode.NOT_CONTROLLER
            assert "orders" not in leader.node.controller.topics_by_name


async def test_when_the_leader_dies_the_others_elect_a_new_one_within_the_bound(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await register_unfenced_broker(leader)
            assert await create(leader, "orders") == ErrorCode.NONE
            await q.committed_everywhere(leader.node.log.end_offset)
            leader.kill()
            killed_at = trio.current_time()
            new_leader = await q.leader(excluding=leader)
            elapsed = trio.current_time() - killed_at
            assert elapsed < FAILOVER_BOUND_S, f"failover took {elapsed:.3f} s"
            assert new_leader.node.raft.epoch > leader.node.raft.epoch
            # The topic survived, and the new leader writes: the broker kept its session.
            assert "orders" in new_leader.node.controller.topics_by_name
            assert await create(new_leader, "payments") == ErrorCode.NONE
            assert not new_leader.node.controller.brokers[1].fenced


async def test_a_graceful_stop_of_the_leader_hands_over_within_the_bound(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await q.committed_everywhere(leader.node.log.end_offset)
            started = trio.current_time()
            await leader.node.resign()
            leader.kill()
            new_leader = await q.leader(excluding=leader)
            elapsed = trio.current_time() - started
            assert elapsed <= HANDOVER_BOUND_S, f"handover took {elapsed:.3f} s"
            assert new_leader is not leader


async def test_a_deposed_leader_answers_its_waiting_write_not_controller(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await register_unfenced_broker(leader)
            # The followers die: the leader's next write can never commit.
            for voter in q.voters:
                if voter is not leader:
                    voter.kill()
            answer = await create(leader, "orders")
            # With no majority the leader resigns at the fetch timeout, renounces and
            # answers the waiting write NOT_CONTROLLER; nothing of it stays applied.
            assert answer == ErrorCode.NOT_CONTROLLER
            assert not leader.node.active
            assert "orders" not in leader.node.controller.topics_by_name
