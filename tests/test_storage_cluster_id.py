"""Cluster ids: Kafka 3.9's storage tool formats with any string (StorageTool.scala passes
``--cluster-id`` to Formatter.java, which only requires one; MetaProperties stores it as
given), where 3.0-3.8 refused anything but a base64 uuid. kwire formats with the same ids,
warns about those older releases would refuse, and serves on the directory: raft's Fetch
and broker registration compare ClusterId as a plain string (KafkaRaftClient's
hasValidClusterId, ClusterControlManager.registerBroker).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer

from kwire.log import read_meta_properties
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.raft.state import METADATA_TOPIC_ID
from kwire.server.client import KafkaClient
from kwire.storage import cluster_id_warnings, random_uuid

TIMEOUT_S = 10.0
UUID_ID = "MkU3OEVBNTcwNTJENDM2Qk"


def write_config(directory: Path) -> Path:
    path = directory / "controller.properties"
    path.write_text(
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:19093\n"
        "listeners=CONTROLLER://127.0.0.1:19093\ncontroller.listener.names=CONTROLLER\n"
        f"log.dirs={directory / 'data'}\n"
    )
    return path


def storage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kwire.storage", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "cluster_id",
    [
        "my-cluster",
        "abc",
        "MkU3OEVBNTcwNTJENDM2Q!",
        "a b=c:d#!",
        "x" * 100,
        "",
        "line\nbreak",
    ],
)
def test_format_accepts_a_cluster_id_kafka_39_accepts_and_warns_it_is_not_a_uuid(
    tmp_path: Path, cluster_id: str
) -> None:
    result = storage("format", "-c", write_config(tmp_path), "-t", cluster_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("Formatting metadata directory")
    meta = read_meta_properties(tmp_path / "data" / "meta.properties")
    assert meta.cluster_id == cluster_id
    assert "does not appear to be a valid UUID" in result.stderr
    assert "releases before 3.9 refuse" in result.stderr


def test_format_with_a_uuid_cluster_id_warns_nothing(tmp_path: Path) -> None:
    result = storage("format", "-c", write_config(tmp_path), "-t", UUID_ID)
    assert (result.returncode, result.stderr) == (0, "")
    assert read_meta_properties(tmp_path / "data" / "meta.properties").cluster_id == UUID_ID


def test_reformatting_with_another_non_uuid_id_is_refused_with_kafkas_message(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    assert storage("format", "-c", config, "-t", "my-cluster").returncode == 0
    other = storage("format", "-c", config, "-t", "your-cluster", "--ignore-formatted")
    assert other.returncode == 1
    assert other.stderr.strip().splitlines()[-1] == (
        f"Invalid cluster.id in: {tmp_path / 'data' / 'meta.properties'}. "
        "Expected your-cluster, but read my-cluster"
    )


@pytest.mark.parametrize(
    ("cluster_id", "warnings"),
    [
        (UUID_ID, 0),
        (random_uuid(), 0),
        ("my-cluster", 1),
        ("clüster", 2),  # not a uuid, and Kafka would read it back as ISO-8859-1
    ],
)
def test_cluster_id_warnings(cluster_id: str, warnings: int) -> None:
    assert len(cluster_id_warnings(cluster_id)) == warnings


async def test_the_server_starts_on_a_non_uuid_cluster_id_and_checks_it_as_a_string(
    tmp_path: Path,
) -> None:
    with KwireServer(tmp_path / "kwire") as server:
        server.format("my-cluster")
        server.start()
        assert "of cluster my-cluster" in server.stdout()
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            cluster = await client.request(DescribeClusterRequest(endpoint_type=2), 1)
            assert isinstance(cluster, DescribeClusterResponse)
            assert (cluster.error_code, cluster.cluster_id) == (ErrorCode.NONE, "my-cluster")
            quorum = await client.request(
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
            assert isinstance(quorum, DescribeQuorumResponse)
            epoch = quorum.topics[0].partitions[0].leader_epoch

            async def fetch_error(cluster_id: str | None) -> tuple[int, int]:
                request = FetchRequest(
                    cluster_id=cluster_id,
                    replica_id=-1,
                    replica_state=FetchRequest.ReplicaState(replica_id=2, replica_epoch=-1),
                    max_wait_ms=0,
                    min_bytes=0,
                    max_bytes=1 << 20,
                    session_epoch=-1,
                    topics=[
                        FetchRequest.FetchTopic(
                            topic_id=METADATA_TOPIC_ID,
                            partitions=[
                                FetchRequest.FetchPartition(
                                    partition=0,
                                    current_leader_epoch=epoch,
                                    fetch_offset=0,
                                    last_fetched_epoch=0,
                                    log_start_offset=-1,
                                )
                            ],
                        )
                    ],
                )
                response = await client.request(request, 17)
                assert isinstance(response, FetchResponse)
                partitions = [p for t in response.responses for p in t.partitions]
                return response.error_code, partitions[0].error_code if partitions else -1

            assert await fetch_error("my-cluster") == (ErrorCode.NONE, ErrorCode.NONE)
            assert await fetch_error(None) == (ErrorCode.NONE, ErrorCode.NONE)
            assert (await fetch_error("MY-CLUSTER"))[0] == ErrorCode.INCONSISTENT_CLUSTER_ID

            async def register(cluster_id: str) -> int:
                request = BrokerRegistrationRequest(
                    broker_id=2,
                    cluster_id=cluster_id,
                    incarnation_id=uuid.UUID(int=7),
                    listeners=[
                        BrokerRegistrationRequest.Listener(
                            name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
                        )
                    ],
                    features=[
                        BrokerRegistrationRequest.Feature(
                            name="metadata.version",
                            min_supported_version=1,
                            max_supported_version=21,
                        )
                    ],
                    rack=None,
                    is_migrating_zk_broker=False,
                    log_dirs=[uuid.UUID(int=1 << 100)],
                    previous_broker_epoch=-1,
                )
                response = await client.request(request, 4)
                assert isinstance(response, BrokerRegistrationResponse)
                return response.error_code

            assert await register("other") == ErrorCode.INCONSISTENT_CLUSTER_ID
            assert await register("my-cluster") == ErrorCode.NONE
            await client.aclose()
