"""Kafka's own ``kafka-metadata-quorum`` grows and shrinks a kwire dynamic quorum
(KIP-853), as in ../shared/captures/kafka-3.9/dynamic-quorum: node 1 formatted
``--standalone``, node 2 with ``--no-initial-controllers``; ``add-controller`` run with
node 2's properties makes it a voter, ``remove-controller`` an observer again."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, run_kwire
from test_server_dynamic_quorum import standalone_and_joiner
from test_server_quorum_processes import START_TIMEOUT_S, ask, describe_quorum, first_write

from kwire.log import read_meta_properties
from kwire.log.checkpoints import uuid_to_kafka_string
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.storage import random_uuid

from .conftest import TOOL_TIMEOUT_S, KafkaDistribution, describe
from .kafka_nodes import QUORUM_TIMEOUT_S, Kind, MixedPlan, MixedQuorum

CHANGE_TIMEOUT_S = 30.0


async def voters_and_observers(leader: KwireServer) -> tuple[list[int], list[int]]:
    answer = await ask(leader, describe_quorum(), 2)
    assert isinstance(answer, DescribeQuorumResponse)
    partition = answer.topics[0].partitions[0]
    return (
        sorted(v.replica_id for v in partition.current_voters),
        sorted(o.replica_id for o in partition.observers),
    )


async def wait_for(leader: KwireServer, voters: list[int]) -> None:
    with trio.fail_after(CHANGE_TIMEOUT_S):
        while (await voters_and_observers(leader))[0] != voters:
            await trio.sleep(0.1)


def quorum_tool(kafka: KafkaDistribution, leader: KwireServer, *args: str | Path) -> str:
    result = kafka.run(
        "kafka-metadata-quorum.sh",
        "--bootstrap-controller",
        f"{HOST}:{leader.port}",
        *args,
        timeout=TOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, describe(result)
    return result.stdout


async def test_kafka_metadata_quorum_adds_then_removes_a_kwire_controller(
    kafka_distribution: KafkaDistribution, tmp_path: Path
) -> None:
    leader, joiner = standalone_and_joiner(tmp_path, (1, 2), random_uuid())
    try:
        leader.start(timeout=START_TIMEOUT_S)
        joiner.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(CHANGE_TIMEOUT_S):
            await first_write([leader])
            while (await voters_and_observers(leader)) != ([1], [2]):
                await trio.sleep(0.1)
        # add-controller reads node 2's id, directory id and controller listener from its
        # configuration and meta.properties, as in the capture.
        directory = read_meta_properties(joiner.data_dir / "meta.properties").directory_id
        assert directory is not None
        added = await trio.to_thread.run_sync(
            quorum_tool, kafka_distribution, leader, "--command-config", joiner.config_path,
            "add-controller",
        )  # fmt: skip
        key = uuid_to_kafka_string(directory)
        assert f"Added controller 2 with directory id {key}" in added
        await wait_for(leader, [1, 2])
        # The genuine tool's describe agrees.
        replication = await trio.to_thread.run_sync(
            quorum_tool, kafka_distribution, leader, "describe", "--replication"
        )
        roles = {line.split()[0]: line.split()[-1] for line in replication.splitlines()[1:]}
        assert roles == {"1": "Leader", "2": "Follower"}, replication
        removed = await trio.to_thread.run_sync(
            quorum_tool, kafka_distribution, leader, "remove-controller", "--controller-id", "2",
            "--controller-directory-id", key,
        )  # fmt: skip
        # ("Removed  KRaft controller", two spaces, in Kafka 3.9's words)
        assert re.search(rf"Removed +KRaft controller 2 with directory id {key}", removed)
        await wait_for(leader, [1])
        started = time.monotonic()
        while (await voters_and_observers(leader))[1] != [2]:
            assert time.monotonic() - started < CHANGE_TIMEOUT_S, "node 2 left the quorum"
            await trio.sleep(0.1)
    finally:
        joiner.close()
        leader.close()


# -- kwire quorum against genuine Kafka controllers ---------------------------------------------

# The values that move between two runs a moment apart: the status's high watermark and lag,
# each replica's log end offset and fetch times.
_LIVE_STATUS = ("HighWatermark:", "MaxFollowerLag:", "MaxFollowerLagTimeMs:")
_LIVE_COLUMNS = (2, 4, 5)


def steady(text: str, what: str) -> list[list[str]]:
    """`describe` output split into fields, the moving values blanked."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if what == "--status":
        return [row[:1] if row[0] in _LIVE_STATUS else row for row in rows]
    return [rows[0]] + [
        ["*" if i in _LIVE_COLUMNS else cell for i, cell in enumerate(row)] for row in rows[1:]
    ]


@pytest.mark.parametrize("what", ["--status", "--replication"])
def test_kwire_quorum_describes_genuine_kafka_controllers_as_kafkas_tool_does(
    kafka_distribution: KafkaDistribution, tmp_path: Path, what: str
) -> None:
    plan = MixedPlan.new(
        tmp_path, (Kind.KAFKA, Kind.KAFKA, Kind.KAFKA), kafka_distribution.release_version
    )
    release = ".".join(map(str, kafka_distribution.release[:2]))
    with MixedQuorum(kafka_distribution, plan) as quorum:
        quorum.start()
        quorum.wait_leader(QUORUM_TIMEOUT_S)
        address = f"{HOST}:{plan.voters[0].port}"
        genuine = kafka_distribution.run(
            "kafka-metadata-quorum.sh", "--bootstrap-controller", address, "describe", what
        )
        assert genuine.returncode == 0, describe(genuine)
        ours = run_kwire(
            "kwire.tools.quorum", "--bootstrap-controller", address,
            "--kafka-release", release, "describe", what, timeout=TOOL_TIMEOUT_S,
        )  # fmt: skip
        assert ours.returncode == 0, ours.stderr
    assert steady(ours.stdout, what) == steady(genuine.stdout, what)
    assert len(steady(genuine.stdout, what)) >= (4 if what == "--replication" else 8)
