"""Three `python -m kwire.server` processes on 127.0.0.1 as one quorum, timed as issue 9
times Kafka: from the kill (or SIGTERM) of the leader to the new leader answering a
committed write, with Kafka's default timeouts. Each voter runs in its own process, so
their fsyncs overlap as they would in production (the in-process tests share one thread)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, free_port

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.server.client import KafkaClient

TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
PROBE_INTERVAL_S = 0.01  # the 10 ms probe Kafka's controller was measured with
# Issue 9's targets are kill -9 p50 < 1 s, p99 < 2 s and SIGTERM <= 0.2 s, as distributions
# (tools/bench_raft.py measures them); one trial here is held to the kill -9 p99 and to the
# SIGTERM bound. A handover is about ten fsyncs in a row across the three processes
# (quorum-state of candidate, voter and leader, the LeaderChange on leader and follower,
# then the write on both), so a heavily loaded machine can stretch it.
KILL_TARGET_S = 2.0
SIGTERM_TARGET_S = 0.2


@pytest.fixture
def voters(tmp_path: Path) -> Iterator[list[KwireServer]]:
    ports = [free_port() for _ in range(3)]
    quorum = ",".join(f"{i + 1}@{HOST}:{port}" for i, port in enumerate(ports))
    servers = [
        KwireServer(
            tmp_path / f"node-{i + 1}",
            port=port,
            extra_properties={"node.id": str(i + 1), "controller.quorum.voters": quorum},
        )
        for i, port in enumerate(ports)
    ]
    cluster_id = str(uuid.uuid4())
    try:
        for server in servers:
            server.format(cluster_id)
        for server in servers:
            # Importing kwire takes seconds on a loaded machine: allow more than usual.
            server.start(timeout=START_TIMEOUT_S)
        yield servers
    finally:
        for server in servers:
            server.close()


async def ask(server: KwireServer, body: object, version: int) -> object | None:
    """One request on a fresh connection; None if the server cannot be reached."""
    try:
        client = await KafkaClient.connect(HOST, server.port)
    except OSError:
        return None
    try:
        return await client.request(body, version)  # type: ignore[arg-type]
    except (OSError, ConnectionError, trio.BrokenResourceError):
        return None
    finally:
        await client.aclose()


def describe_quorum() -> DescribeQuorumRequest:
    return DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )


async def leader_of(servers: list[KwireServer]) -> KwireServer:
    """The voter that answers DescribeQuorum as leader (polled every 10 ms)."""
    while True:
        for server in servers:
            if not server.running:
                continue
            answer = await ask(server, describe_quorum(), 1)
            if isinstance(answer, DescribeQuorumResponse) and answer.topics:
                partition = answer.topics[0].partitions[0]
                if partition.error_code == ErrorCode.NONE:
                    return next(s for s in servers if s.port == server.port)
        await trio.sleep(PROBE_INTERVAL_S)


async def committed_write(servers: list[KwireServer], name: str) -> KwireServer:
    """Send a CreateTopics to each live voter until one commits it (polled every 10 ms)."""
    request = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(name=name, num_partitions=1, replication_factor=1)
        ],
        timeout_ms=10_000,
    )
    while True:
        for server in servers:
            if not server.running:
                continue
            answer = await ask(server, request, 7)
            if isinstance(answer, CreateTopicsResponse):
                code = answer.topics[0].error_code
                if code == ErrorCode.NONE:
                    return server
                assert code == ErrorCode.NOT_CONTROLLER, code
        await trio.sleep(PROBE_INTERVAL_S)


async def register_unfenced_broker(leader: KwireServer) -> bool:
    """Register broker 1 and unfence it; False while the controller is not active."""
    registration = BrokerRegistrationRequest(
        broker_id=1,
        cluster_id=leader.cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
            )
        ],
        features=[  # a Kafka 3.9 broker's (kraft.version is 1 in a dynamic quorum)
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            ),
            BrokerRegistrationRequest.Feature(
                name="kraft.version", min_supported_version=0, max_supported_version=1
            ),
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )
    response = await ask(leader, registration, 4)
    if not isinstance(response, BrokerRegistrationResponse):
        return False
    if response.error_code == ErrorCode.NOT_CONTROLLER:
        return False
    assert response.error_code == ErrorCode.NONE
    heartbeat = BrokerHeartbeatRequest(
        broker_id=1,
        broker_epoch=response.broker_epoch,
        current_metadata_offset=response.broker_epoch,
        want_fence=False,
    )
    answer = await ask(leader, heartbeat, 1)
    assert isinstance(answer, BrokerHeartbeatResponse)
    assert answer.error_code == ErrorCode.NONE and not answer.is_fenced
    return True


async def first_write(servers: list[KwireServer]) -> KwireServer:
    """Wait for an active controller, register a broker there, commit a first topic."""
    while not await register_unfenced_broker(await leader_of(servers)):
        await trio.sleep(PROBE_INTERVAL_S)
    return await committed_write(servers, "orders")


async def test_kill_9_of_the_leader_a_new_leader_commits_a_write_within_the_target(
    voters: list[KwireServer],
) -> None:
    with trio.fail_after(TIMEOUT_S):
        leader = await first_write(voters)
        # Let both followers catch up and fetch again (a steady quorum).
        await trio.sleep(0.5)
        killed_at = time.monotonic()
        leader.kill()
        new_leader = await committed_write(voters, "payments")
        elapsed = time.monotonic() - killed_at
        assert new_leader is not leader
        assert elapsed < KILL_TARGET_S, f"kill -9 failover took {elapsed:.3f} s"


async def test_sigterm_of_the_leader_hands_over_a_committed_write_within_the_bound(
    voters: list[KwireServer],
) -> None:
    with trio.fail_after(TIMEOUT_S):
        leader = await first_write(voters)
        await trio.sleep(0.5)
        assert leader.process is not None
        stopped_at = time.monotonic()
        leader.process.terminate()  # SIGTERM: the leader resigns (EndQuorumEpoch) first
        # (asked of the others only: a write the leader took before the signal may still
        # commit there while it waits for its successor to catch up)
        survivors = [v for v in voters if v is not leader]
        new_leader = await committed_write(survivors, "payments")
        elapsed = time.monotonic() - stopped_at
        assert new_leader is not leader
        assert elapsed <= SIGTERM_TARGET_S, f"graceful handover took {elapsed:.3f} s"
        assert leader.wait_exit() == 0
