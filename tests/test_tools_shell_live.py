"""``kwire shell --bootstrap-controller``: a running kwire read over the network as a
non-replica fetcher shows what the shell shows offline on the same directory."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from server_harness import HOST, KwireServer, free_port
from test_server_quorum_processes import ask, describe_quorum, register_unfenced_broker

from kwire.log.snapshots import SnapshotId, list_snapshots
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.server.client import KafkaClient
from kwire.tools import shell_live
from kwire.tools.shell import main
from kwire.tools.shell_client import ClientSecurity
from kwire.tools.shell_live import fetch_image, parse_bootstrap
from kwire.tools.shell_load import ShellLoadError

TIMEOUT_S = 30.0
# Everything but the provenance, which moves with each NoOpRecord the leader writes.
STABLE_PATHS = [
    "/image/topics",
    "/image/cluster",
    "/image/features",
    "/image/configs",
    "/image/producerIds",
    "/image/acls",
]


# Importing kwire takes seconds on a loaded machine: allow more than the harness's 15 s.
START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def started(directory: Path, **kwargs: Any) -> Iterator[KwireServer]:
    """A formatted, running server for the block (kwire_server with a longer start)."""
    with KwireServer(directory, **kwargs) as server:
        server.format()
        server.start(timeout=START_TIMEOUT_S)
        yield server


# A registered broker stays unfenced for the whole test (no heartbeats follow).
SERVER_SETTINGS = {"broker.session.timeout.ms": "600000"}


async def with_broker_and_topics(server: KwireServer, *topics: tuple[str, int]) -> None:
    """Broker 1 registered and unfenced, then each topic created on it."""
    with trio.fail_after(TIMEOUT_S):
        while not await register_unfenced_broker(server):
            await trio.sleep(0.1)
    for name, partitions in topics:
        await create_assigned_topic(server.port, name, partitions)


async def create_assigned_topic(port: int, name: str, partitions: int) -> None:
    request = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=name,
                num_partitions=-1,
                replication_factor=-1,
                assignments=[
                    CreateTopicsRequest.CreatableReplicaAssignment(
                        partition_index=i, broker_ids=[1]
                    )
                    for i in range(partitions)
                ],
            )
        ],
        timeout_ms=30_000,
    )
    with trio.fail_after(TIMEOUT_S):
        client = await KafkaClient.connect(HOST, port)
        try:
            answer = await client.request(request, 7)
        finally:
            await client.aclose()
    assert isinstance(answer, CreateTopicsResponse)
    assert answer.topics[0].error_code == ErrorCode.NONE, answer


def shell_output(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_live_shell_shows_what_the_offline_shell_shows_on_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with started(tmp_path / "server", overrides=SERVER_SETTINGS) as server:
        trio.run(with_broker_and_topics, server, ("alpha", 3), ("beta", 1))
        live = shell_output(
            capsys, "--bootstrap-controller", f"{HOST}:{server.port}", "tree", *STABLE_PATHS
        )
        # Kafka's LeaderState.updateReplicaState ignores negative replica ids: no observer.
        described = trio.run(ask, server, describe_quorum(), 1)
        found = shell_output(
            capsys, "--bootstrap-controller", f"{HOST}:{server.port}", "ls", "/image/topics/byName"
        )
        server.stop()
        offline = shell_output(capsys, "--directory", str(server.data_dir), "tree", *STABLE_PATHS)
    assert found == "alpha\nbeta\n"
    assert isinstance(described, DescribeQuorumResponse)
    assert described.topics[0].partitions[0].observers == []
    assert live == offline
    assert "PartitionRegistration(replicas=[1]" in live


def test_live_shell_loads_the_leaders_snapshot_with_fetch_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[SnapshotId] = []
    real = shell_live._Fetcher._load_snapshot

    async def counted(self: object, client: object, versions: object, snapshot: SnapshotId) -> None:
        loaded.append(snapshot)
        await real(self, client, versions, snapshot)  # type: ignore[arg-type]

    monkeypatch.setattr(shell_live._Fetcher, "_load_snapshot", counted)
    overrides = {**SERVER_SETTINGS, "metadata.log.max.record.bytes.between.snapshots": "1"}
    with started(tmp_path / "server", overrides=overrides) as server:
        trio.run(with_broker_and_topics, server, ("gamma", 4))
        directory = server.data_dir / "__cluster_metadata-0"
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if any(s.end_offset > 0 for s in list_snapshots(directory)):
                break
            time.sleep(0.1)
        assert any(s.end_offset > 0 for s in list_snapshots(directory)), "no snapshot written"
        image, provenance = fetch_image(f"{HOST}:{server.port}", None, timeout_s=TIMEOUT_S)
        live = shell_output(
            capsys,
            "--bootstrap-controller",
            f"{HOST}:{server.port}",
            "ls",
            "/image/topics/byName/gamma",
        )
    assert live == "0\n1\n2\n3\nid\nname\n"
    # The leader answered the fetch at offset 0 with its newest snapshot's id.
    assert loaded and all(snapshot.end_offset > 0 for snapshot in loaded)
    assert provenance.epoch >= 1 and provenance.offset > 0
    assert image.topic_by_name("gamma") is not None


def test_an_unreachable_controller_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["--bootstrap-controller", f"{HOST}:{port}", "ls"]) == 1
    assert f"{HOST}:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "host", "host:x", "host:0", ":9093"])
def test_bad_bootstrap_addresses_are_refused(text: str) -> None:
    with pytest.raises(ShellLoadError):
        parse_bootstrap(text)


def test_bootstrap_lists_are_split_on_commas() -> None:
    assert parse_bootstrap("a:1, b:2") == [("a", 1), ("b", 2)]
    assert parse_bootstrap("[::1]:9093") == [("::1", 9093)]


async def test_a_silent_controller_ends_the_read_after_the_timeout_without_progress() -> None:
    async def accept_and_say_nothing(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, accept_and_say_nothing, 0, host=HOST)
        )
        port = listeners[0].socket.getsockname()[1]
        with (
            trio.fail_after(TIMEOUT_S),
            pytest.raises(ShellLoadError, match="no progress in 0.5 s"),
        ):
            await shell_live._fetch_within([(HOST, port)], ClientSecurity(), 0.5)
        nursery.cancel_scope.cancel()
