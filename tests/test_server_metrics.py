"""kwire's /metrics page on a real server: Kafka's controller metrics, with Kafka's meaning.

A subprocess server (tests/server_harness.py) with ``kwire.metrics.listener`` on port 0 is
scraped over HTTP while a scripted broker registers, unfences and is fenced by its session
timeout, topics are created, and a 3-voter quorum elects a leader.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from server_harness import HOST, KwireServer, free_port
from test_server_quorum_processes import ask, describe_quorum, register_unfenced_broker

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse

TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
SESSION_TIMEOUT_MS = 1500
PAGES_LINE = re.compile(r"kwire operator pages /metrics on http://127\.0\.0\.1:(\d+)")
CONTROLLER = "kafka_controller_kafkacontroller_"
RAFT = "kafka_server_raft_metrics_"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- scraping ------------------------------------------------------------------------------


def metrics_port(server: KwireServer) -> int:
    """The port the server printed for its /metrics page (it was given port 0)."""
    text = server.wait_for_output(lambda out: PAGES_LINE.search(out) is not None)
    found = PAGES_LINE.search(text or "")
    assert found is not None, server.output()
    return int(found.group(1))


async def http_get(port: int, path: str = "/metrics") -> tuple[str, str, str]:
    """(status line, content type, body) of one GET."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers.get("Content-Type", ""), body.decode()


async def scrape(port: int) -> Samples:
    """Every sample of the page, by (name, labels)."""
    status, _, body = await http_get(port)
    assert status == "HTTP/1.1 200 OK", status
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape_until(port: int, name: str, wanted: float, **labels: str) -> Samples:
    """Scrape every 50 ms until `name` has the value `wanted` (bounded by the caller)."""
    while True:
        samples = await scrape(port)
        if samples.get((name, frozenset(labels.items()))) == wanted:
            return samples
        await trio.sleep(0.05)


# -- Kafka requests (the quorum process tests' helpers: ask, describe_quorum, and
# register_unfenced_broker, which registers broker 1 and unfences it) ------------------


def create_topics(*topics: tuple[str, int]) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=1
            )
            for name, partitions in topics
        ],
        timeout_ms=10_000,
    )


async def quorum_partition(server: KwireServer) -> DescribeQuorumResponse.PartitionData | None:
    answer = await ask(server, describe_quorum(), 1)
    if not isinstance(answer, DescribeQuorumResponse) or not answer.topics:
        return None
    partition = answer.topics[0].partitions[0]
    return partition if partition.error_code == ErrorCode.NONE else None


# -- one server ----------------------------------------------------------------------------


def started(server: KwireServer, cluster_id: str | None = None) -> KwireServer:
    """`server` formatted and started, allowed a loaded machine's slow start."""
    try:
        server.format(cluster_id)
        server.start(timeout=START_TIMEOUT_S)
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KwireServer]:
    overrides = {
        "kwire.metrics.listener": f"{HOST}:0",
        "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
        "broker.heartbeat.interval.ms": "500",
    }
    with started(KwireServer(tmp_path / "kwire", overrides=overrides)) as running:
        yield running


async def test_a_broker_is_active_once_unfenced_and_fenced_after_its_session_times_out(
    server: KwireServer,
) -> None:
    port = metrics_port(server)
    with trio.fail_after(TIMEOUT_S):
        before = await scrape(port)
        assert value(before, CONTROLLER + "fencedbrokercount") == 0
        assert value(before, CONTROLLER + "activebrokercount") == 0
        assert await register_unfenced_broker(server)
        unfenced = await scrape(port)
        assert value(unfenced, CONTROLLER + "activebrokercount") == 1
        assert value(unfenced, CONTROLLER + "fencedbrokercount") == 0
        # No more heartbeats: the active controller fences the broker after its session.
        fenced = await scrape_until(port, CONTROLLER + "fencedbrokercount", 1)
        assert value(fenced, CONTROLLER + "activebrokercount") == 0


async def test_topics_partitions_and_offline_partitions_count_the_image(
    server: KwireServer,
) -> None:
    port = metrics_port(server)
    with trio.fail_after(TIMEOUT_S):
        assert await register_unfenced_broker(server)
        answer = await ask(server, create_topics(("orders", 3), ("payments", 1)), 7)
        assert isinstance(answer, CreateTopicsResponse)
        assert [t.error_code for t in answer.topics] == [ErrorCode.NONE, ErrorCode.NONE]
        created = await scrape(port)
        assert value(created, CONTROLLER + "globaltopiccount") == 2
        assert value(created, CONTROLLER + "globalpartitioncount") == 4
        assert value(created, CONTROLLER + "offlinepartitionscount") == 0
        assert value(created, CONTROLLER + "preferredreplicaimbalancecount") == 0
        # Fencing the only replica leaves every partition without a leader: offline, and
        # not led by its preferred replica (Kafka's ControllerMetricsChanges).
        fenced = await scrape_until(port, CONTROLLER + "offlinepartitionscount", 4)
        assert value(fenced, CONTROLLER + "preferredreplicaimbalancecount") == 4
        assert value(fenced, CONTROLLER + "globalpartitioncount") == 4


async def test_requests_are_counted_by_api_version_and_kafka_error_name(
    server: KwireServer,
) -> None:
    port = metrics_port(server)
    errors = "kafka_network_requestmetrics_errors_total"
    requests = "kafka_network_requestmetrics_requests_total"
    with trio.fail_after(TIMEOUT_S):
        assert await register_unfenced_broker(server)
        first = await ask(server, create_topics(("orders", 1), ("payments", 1)), 7)
        assert isinstance(first, CreateTopicsResponse)
        again = await ask(server, create_topics(("orders", 1)), 7)
        assert isinstance(again, CreateTopicsResponse)
        assert again.topics[0].error_code == ErrorCode.TOPIC_ALREADY_EXISTS
        samples = await scrape(port)
    assert value(samples, requests, request="CreateTopics", version="7") == 2
    assert value(samples, errors, request="CreateTopics", error="NONE") == 2
    assert value(samples, errors, request="CreateTopics", error="TOPIC_ALREADY_EXISTS") == 1
    assert value(samples, requests, request="BrokerRegistration", version="4") == 1
    assert value(samples, errors, request="BrokerHeartbeat", error="NONE") == 1
    latency = "kafka_network_requestmetrics_totaltimems"
    assert value(samples, latency + "_count", request="CreateTopics") == 2
    assert value(samples, latency + "_bucket", request="CreateTopics", le="+Inf") == 2
    assert value(samples, latency + "_sum", request="CreateTopics") > 0


async def test_raft_metrics_say_what_describe_quorum_says(server: KwireServer) -> None:
    port = metrics_port(server)
    with trio.fail_after(TIMEOUT_S):
        before = await quorum_partition(server)
        samples = await scrape(port)
        after = await quorum_partition(server)
    assert before is not None and after is not None
    assert value(samples, RAFT + "current_leader") == before.leader_id == 1
    assert value(samples, RAFT + "current_epoch") == before.leader_epoch
    assert value(samples, RAFT + "current_vote") == 1  # a leader's own id, as Kafka's
    assert value(samples, RAFT + "current_state", state="leader") == 1
    assert value(samples, RAFT + "current_state", state="follower") == 0
    # The leader writes a NoOp record every 500 ms, so the high watermark is read between
    # two answers.
    high_watermark = value(samples, RAFT + "high_watermark")
    assert before.high_watermark <= high_watermark <= after.high_watermark
    assert value(samples, RAFT + "log_end_offset") >= high_watermark
    # Kafka's LastCommittedRecordOffset: the last committed record, below the watermark.
    assert value(samples, CONTROLLER + "lastcommittedrecordoffset") == high_watermark - 1
    assert value(samples, CONTROLLER + "activecontrollercount") == 1
    assert value(samples, RAFT + "append_records_rate") > 0


async def test_the_page_is_prometheus_text_and_nothing_else_is_served(
    server: KwireServer,
) -> None:
    port = metrics_port(server)
    with trio.fail_after(TIMEOUT_S):
        status, content_type, body = await http_get(port)
        missing, _, _ = await http_get(port, "/status")
    assert status == "HTTP/1.1 200 OK"
    assert content_type.startswith("text/plain; version=")
    assert "# TYPE kafka_controller_kafkacontroller_activecontrollercount gauge" in body
    assert missing.startswith("HTTP/1.1 404")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (Linux: its socket inodes in /proc/net/tcp)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_nothing_listens_for_metrics_without_the_key(tmp_path: Path, server: KwireServer) -> None:
    assert listening_ports(server.pid) == {server.port, metrics_port(server)}
    with started(KwireServer(tmp_path / "plain")) as plain:
        assert "operator pages" not in plain.stdout()
        assert listening_ports(plain.pid) == {plain.port}


# -- three voters --------------------------------------------------------------------------


@pytest.fixture
def voters(tmp_path: Path) -> Iterator[list[KwireServer]]:
    ports = [free_port() for _ in range(3)]
    quorum = ",".join(f"{i + 1}@{HOST}:{port}" for i, port in enumerate(ports))
    servers = [
        KwireServer(
            tmp_path / f"node-{i + 1}",
            port=port,
            extra_properties={"node.id": str(i + 1), "controller.quorum.voters": quorum},
            overrides={"kwire.metrics.listener": f"{HOST}:0"},
        )
        for i, port in enumerate(ports)
    ]
    cluster_id = str(uuid.uuid4())
    try:
        for each in servers:
            each.format(cluster_id)
        for each in servers:
            each.start(timeout=START_TIMEOUT_S)
        yield servers
    finally:
        for each in servers:
            each.close()


async def test_exactly_one_voter_of_three_is_the_active_controller(
    voters: list[KwireServer],
) -> None:
    ports = [metrics_port(each) for each in voters]
    with trio.fail_after(TIMEOUT_S):
        # Wait for an active controller: one voter registers the broker.
        while True:
            for each in voters:
                if await register_unfenced_broker(each):
                    leader = each
                    break
            else:
                await trio.sleep(0.05)
                continue
            break
        partition = await quorum_partition(leader)
        assert partition is not None
        # A follower may still be fetching the broker's registration: wait for each.
        for port in ports:
            await scrape_until(port, CONTROLLER + "activebrokercount", 1)
        scraped = [await scrape(port) for port in ports]
    active = [value(s, CONTROLLER + "activecontrollercount") for s in scraped]
    assert active == [1 if each is leader else 0 for each in voters]
    for samples, each in zip(scraped, voters, strict=True):
        assert value(samples, RAFT + "current_leader") == partition.leader_id
        assert value(samples, RAFT + "current_epoch") == partition.leader_epoch
        state = "leader" if each is leader else "follower"
        assert value(samples, RAFT + "current_state", state=state) == 1
        assert value(samples, CONTROLLER + "newactivecontrollerscount") >= 1
        assert value(samples, CONTROLLER + "activebrokercount") == 1
        if each is leader:  # it stood as a candidate and won: an election was timed
            assert value(samples, RAFT + "election_latency_max") > 0
