"""Real kwire quorums on loopback: N server processes, a writer, a probe and a link proxy.

    async with open_quorum(tmp_path, size=3) as quorum:       # formatted, started, listening
        async with trio.open_nursery() as nursery:
            probe = QuorumProbe(quorum); nursery.start_soon(probe.run)
            leader, epoch = await probe.wait_leader(timeout=10)
            writer = QuorumWriter(quorum, probe); await nursery.start(writer.run)
            await quorum.kill(leader)                         # kill -9
            ack = await writer.wait_ack(after=..., not_from=leader, timeout=10)
            ...

Each node is `python -m kwire.server controller.properties` (the README's server command)
in its own directory, formatted by `python -m kwire.storage format` with the quorum's one
cluster id, with `controller.quorum.voters` naming every node on 127.0.0.1 at ports picked
free at run time. Processes are Trio processes, so that starting, killing and waiting never
block the proxies, the probe or the writer running in the same loop; every wait is bounded.

- `QuorumProbe` asks every voter DescribeQuorum every 10 ms (as Kafka's controller was
  measured) and keeps what each answered: a leader answers with the quorum's replication
  state, the others with NOT_LEADER_OR_FOLLOWER naming the leader they know.
- `QuorumWriter` keeps one simulated broker registered and heartbeating at whichever node
  leads (so that topics have an unfenced broker to live on), and sends CreateTopics of one
  one-partition topic at a time, each with a name never used before, to the node the probe
  names as leader. Only an answer NONE counts as acknowledged; a timeout, a lost connection
  or any error leaves the write's outcome unknown (it may or may not commit; Kafka's
  clients treat it the same way), so nothing unacknowledged is ever required.
- `LinkProxy`: with ``proxied=True`` every node reaches each peer through its own proxy
  (node i's voters list names node j at the port of proxy i->j), so `Quorum.isolate(n)` can
  cut every link of node n, silently (bytes dropped: the leader only learns by its fetch
  timeout) or by refusing (connections closed), `Quorum.cut(a, b)` only the links between
  two nodes, `Quorum.slow(a, b, s)` delays what those links carry, and `heal()` restores
  them all.
- `topics_in_log(node)` reads what a stopped node's restart reads (its newest snapshot, then
  the log after it) with `kwire.log`.
"""

from __future__ import annotations

import contextlib
import enum
import math
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import trio
from server_harness import HOST, KwireServer, free_port

from kwire.log.metadata_log import MetadataLog
from kwire.log.snapshots import list_snapshots, snapshot_path
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import RecordBatch, decode_batches, unframe_metadata_record
from kwire.server.client import KafkaClient
from kwire.storage import random_uuid
from kwire.testing.process import child_env

__all__ = [
    "FORM_TIMEOUT_S",
    "HOST",
    "Ack",
    "CutMode",
    "LinkProxy",
    "ProcNode",
    "Quorum",
    "QuorumNotFormed",
    "QuorumProbe",
    "QuorumWriter",
    "multi_voter_quorum",
    "Recovery",
    "settle_and_read",
    "open_quorum",
    "percentile",
    "topics_in_log",
    "topics_in_log_dir",
]

FORM_TIMEOUT_S = 15.0  # a first election takes about 1-2 s with the default timeouts
START_TIMEOUT_S = 60.0  # Python start-up on a busy 2-core machine can take many seconds
STOP_TIMEOUT_S = 10.0
PROBE_INTERVAL_S = 0.010
REQUEST_TIMEOUT_S = 5.0
METADATA_TOPIC = "__cluster_metadata"
BROKER_ID = 1000  # the simulated broker; controllers are nodes 1..N


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`; nan when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


# -- processes ------------------------------------------------------------------------------


class ProcNode:
    """One kwire server process: its directory, properties and output come from
    `KwireServer` (tests/server_harness.py); the process itself is a Trio process."""

    def __init__(self, node_id: int, server: KwireServer) -> None:
        self.node_id = node_id
        self.server = server
        self.process: trio.Process | None = None
        self._files: list[IO[bytes]] = []

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"node {self.node_id} is not running"
        return self.process.pid

    async def format(self, cluster_id: str) -> None:
        """Format this node's directory at 3.9-IV0 with `KwireServer.format` (the storage
        tool's code, in this process: tens of milliseconds, before any node runs)."""
        self.server.format(cluster_id)
        await trio.lowlevel.checkpoint()

    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the server and wait (bounded) until it prints "listening on" and accepts."""
        if self.running:
            raise RuntimeError(f"node {self.node_id} is already running")
        self._close_files()
        self.server.starts += 1
        self._files = [self.server.stdout_path.open("wb"), self.server.stderr_path.open("wb")]
        self.process = await trio.lowlevel.open_process(
            self.server.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._files[0],
            stderr=self._files[1],
            cwd=self.server.directory,
            env=child_env(),
        )
        with trio.move_on_after(timeout):
            while self.process.returncode is None and self.process.poll() is None:
                if self.server.listening():
                    return
                await trio.sleep(0.02)
        status = self.process.poll()
        if status is None:
            await self.kill()
        raise RuntimeError(
            f"node {self.node_id} did not start (status {status}):\n{self.server.output()[-3000:]}"
        )

    async def kill(self) -> None:
        """kill -9, and reap (bounded)."""
        await self._signal(signal.SIGKILL, STOP_TIMEOUT_S)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a graceful shutdown: a leader resigns), wait, kill -9 past `timeout`."""
        await self._signal(signal.SIGTERM, timeout)
        return None if self.process is None else self.process.returncode

    async def _signal(self, signum: int, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signum)
            with trio.move_on_after(timeout):
                await self.process.wait()
            if self.process.poll() is None:
                self.process.kill()
                with trio.move_on_after(STOP_TIMEOUT_S):
                    await self.process.wait()
        self._close_files()

    def _close_files(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []


def topics_in_log(node: ProcNode) -> set[str]:
    """The topic names of every TopicRecord a stopped node's restart would read: its newest
    snapshot's and those of its metadata log after it, committed or not."""
    return topics_in_log_dir(node.server.data_dir / "__cluster_metadata-0")


def topics_in_log_dir(directory: Path) -> set[str]:
    """The topic names a restart on the metadata log partition `directory` would read (a
    stopped node's, or a copy: kwire's reader recovers it, so never a live one): the newest
    snapshot's TopicRecords, then the log's after its end offset (all of it without one).
    Retention deletes the segments a snapshot covers, so the log alone is not enough."""
    names: set[str] = set()
    snapshots = list_snapshots(directory)
    start = 0
    if snapshots:
        newest = snapshots[-1]
        names |= _topic_names(decode_batches(snapshot_path(directory, newest).read_bytes()))
        start = newest.end_offset
    with MetadataLog.open(directory) as log:
        if start < log.end_offset:
            names |= _topic_names(log.read_batches(max(start, log.log_start_offset)))
    return names


def _topic_names(batches: Iterable[RecordBatch]) -> set[str]:
    names: set[str] = set()
    for batch in batches:
        if batch.is_control:
            continue
        for record in batch.records:
            api_key, version, body = unframe_metadata_record(record.value or b"")
            if api_key == TopicRecord.API_KEY:
                message = METADATA_RECORDS[api_key].decode(body, version)
                assert isinstance(message, TopicRecord)
                names.add(message.name)
    return names


# -- the link proxy -------------------------------------------------------------------------


class CutMode(enum.Enum):
    OPEN = "open"  # bytes flow
    SILENT = "silent"  # bytes are dropped, connections stay open (a partition)
    REFUSE = "refuse"  # connections are closed at once and new ones closed at accept


@dataclass(slots=True, eq=False)
class LinkProxy:
    """Forwards the connections node `source` opens to node `target` (one direction of
    one peer link). Listens on 127.0.0.1:`port` (picked by the kernel in `listen`)."""

    source: int
    target: int
    target_port: int
    mode: CutMode = CutMode.OPEN
    delay_s: float = 0.0  # while OPEN: each chunk read is forwarded this much later
    port: int = 0
    _listener: trio.SocketListener | None = None
    _connections: set[trio.CancelScope] = field(default_factory=set)
    _broken: set[trio.CancelScope] = field(default_factory=set)

    async def listen(self) -> None:
        (self._listener,) = await trio.open_tcp_listeners(0, host=HOST)
        self.port = int(self._listener.socket.getsockname()[1])

    async def run(self) -> None:
        assert self._listener is not None, "listen() first"
        await trio.serve_listeners(self._handle, [self._listener])

    def set_mode(self, mode: CutMode) -> None:
        """SILENT drops bytes from now on; REFUSE closes every connection; OPEN (heal)
        closes the connections that lost bytes, so that no stream resumes mid-frame."""
        self.mode = mode
        doomed = self._connections if mode is CutMode.REFUSE else set()
        if mode is CutMode.OPEN:
            doomed = set(self._broken)
            self._broken.clear()
        for scope in doomed:
            scope.cancel()

    async def _handle(self, inbound: trio.SocketStream) -> None:
        async with inbound:
            if self.mode is CutMode.REFUSE:
                return
            with trio.CancelScope() as scope:
                self._connections.add(scope)
                try:
                    if self.mode is CutMode.SILENT:
                        self._broken.add(scope)
                        await self._pump(inbound, None, scope)
                        return
                    try:
                        outbound = await trio.open_tcp_stream(HOST, self.target_port)
                    except OSError:
                        return  # the target is down: the source sees the connection closed
                    async with outbound, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, inbound, outbound, scope)
                        nursery.start_soon(self._pump, outbound, inbound, scope)
                finally:
                    self._connections.discard(scope)
                    self._broken.discard(scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream | None, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                if self.mode is CutMode.OPEN and sink is not None:
                    if self.delay_s:
                        await trio.sleep(self.delay_s)
                    await sink.send_all(data)
                else:
                    self._broken.add(scope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()  # one side closed: close both


# -- the quorum -----------------------------------------------------------------------------


class Quorum:
    """N kwire nodes (ids 1..N) of one cluster, each voter of a static quorum."""

    def __init__(self, nodes: list[ProcNode], proxies: list[LinkProxy], cluster_id: str) -> None:
        self.nodes = {node.node_id: node for node in nodes}
        self.proxies = proxies
        self.cluster_id = cluster_id
        self.probe = QuorumProbe(self)

    def node(self, node_id: int) -> ProcNode:
        return self.nodes[node_id]

    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    async def start(self, node_ids: Iterable[int] | None = None) -> None:
        async with trio.open_nursery() as nursery:
            for node_id in self.ids if node_ids is None else node_ids:
                nursery.start_soon(self.nodes[node_id].start)

    async def kill(self, node_id: int) -> None:
        await self.nodes[node_id].kill()

    async def stop(self, node_id: int) -> int | None:
        return await self.nodes[node_id].stop()

    async def stop_all(self) -> None:
        async with trio.open_nursery() as nursery:
            for node in self.nodes.values():
                nursery.start_soon(node.stop)

    def isolate(self, node_id: int, mode: CutMode = CutMode.SILENT) -> None:
        """Cut every peer link to and from `node_id` (clients still reach it)."""
        if not self.proxies:
            raise RuntimeError("the quorum was opened without proxied=True")
        for proxy in self.proxies:
            if node_id in (proxy.source, proxy.target):
                proxy.set_mode(mode)

    def cut(self, a: int, b: int, mode: CutMode = CutMode.SILENT) -> None:
        """Cut the peer links between `a` and `b` only, both ways (each still reaches the
        other nodes, and clients reach both)."""
        if not self.proxies:
            raise RuntimeError("the quorum was opened without proxied=True")
        for proxy in self.proxies:
            if {proxy.source, proxy.target} == {a, b}:
                proxy.set_mode(mode)

    def slow(self, a: int, b: int, delay_s: float) -> None:
        """Delay what the links between `a` and `b` carry by `delay_s`, both ways."""
        if not self.proxies:
            raise RuntimeError("the quorum was opened without proxied=True")
        for proxy in self.proxies:
            if {proxy.source, proxy.target} == {a, b}:
                proxy.delay_s = delay_s

    def heal(self) -> None:
        """Every link open again, without delay."""
        for proxy in self.proxies:
            proxy.delay_s = 0.0
            proxy.set_mode(CutMode.OPEN)

    def output(self, node_id: int) -> str:
        return self.nodes[node_id].server.output()

    async def wait_formed(self, timeout: float) -> tuple[int, int]:
        """(leader id, epoch) once a voter answers as leader; QuorumNotFormed past `timeout`."""
        try:
            return await self.probe.wait_leader(timeout=timeout)
        except trio.TooSlowError:
            tails = "\n".join(
                f"--- node {n}:\n" + "\n".join(self.output(n).splitlines()[-8:]) for n in self.ids
            )
            raise QuorumNotFormed(
                f"no node of the {len(self.ids)}-node quorum answered DescribeQuorum as "
                f"leader within {timeout:.0f} s\n{tails}"
            ) from None


class QuorumNotFormed(Exception):
    """No voter answered as leader in time: the quorum could not elect (the message
    carries each node's last log lines)."""


@contextlib.asynccontextmanager
async def open_quorum(
    directory: Path,
    size: int,
    *,
    proxied: bool = False,
    overrides: dict[str, str] | None = None,
    log_level: str = "INFO",
) -> AsyncIterator[Quorum]:
    """Format `size` nodes of one new cluster under `directory`, start them and their
    `QuorumProbe` (``quorum.probe``), and stop them all (SIGTERM, then kill -9) when the
    block ends. An exception of the block comes out as itself, not in a group."""
    ports = {node_id: free_port() for node_id in range(1, size + 1)}
    try:
        async with trio.open_nursery() as nursery:
            proxies: list[LinkProxy] = []
            if proxied:
                for source in ports:
                    for target in ports:
                        if source != target:
                            proxy = LinkProxy(source, target, ports[target])
                            await proxy.listen()
                            nursery.start_soon(proxy.run)
                            proxies.append(proxy)
            seen = {(p.source, p.target): p.port for p in proxies}
            cluster_id = random_uuid()
            nodes: list[ProcNode] = []
            for node_id, port in ports.items():
                voters = ",".join(f"{t}@{HOST}:{seen.get((node_id, t), ports[t])}" for t in ports)
                server = KwireServer(
                    directory / f"node-{node_id}",
                    port=port,
                    overrides=overrides,
                    log_level=log_level,
                    extra_properties={"node.id": str(node_id), "controller.quorum.voters": voters},
                )
                nodes.append(ProcNode(node_id, server))
            async with trio.open_nursery() as formats:
                for node in nodes:
                    formats.start_soon(node.format, cluster_id)
            quorum = Quorum(nodes, proxies, cluster_id)
            try:
                await quorum.start()
                nursery.start_soon(quorum.probe.run)
                yield quorum
            finally:
                with trio.CancelScope(shield=True):
                    await quorum.stop_all()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _sole(group) from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, or the group itself."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


# -- talking to the nodes -------------------------------------------------------------------


class Connections:
    """At most one connection per node, opened on demand, dropped on any failure (an
    answer may still be on its way, so the connection cannot be reused)."""

    def __init__(self, quorum: Quorum, client_id: str) -> None:
        self.quorum = quorum
        self.client_id = client_id
        self._open: dict[int, KafkaClient] = {}

    async def request(
        self, node_id: int, body: Message, version: int, timeout: float = REQUEST_TIMEOUT_S
    ) -> Message | None:
        """The answer, or None if it could not be had within `timeout`."""
        with trio.move_on_after(timeout):
            try:
                client = self._open.get(node_id)
                if client is None:
                    port = self.quorum.node(node_id).port
                    client = await KafkaClient.connect(HOST, port, self.client_id)
                    self._open[node_id] = client
                return await client.request(body, version)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
                pass
        await self.drop(node_id)
        return None

    async def drop(self, node_id: int) -> None:
        client = self._open.pop(node_id, None)
        if client is not None:
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await client.aclose()

    async def close(self) -> None:
        for node_id in list(self._open):
            await self.drop(node_id)


@dataclass(slots=True)
class NodeView:
    """What one voter last answered DescribeQuorum (`at`: trio.current_time())."""

    at: float
    leader_id: int
    epoch: int
    is_leader: bool
    high_watermark: int = -1
    log_end_offsets: dict[int, int] = field(default_factory=dict)


class QuorumProbe:
    """Polls DescribeQuorum on every voter every 10 ms; `views` holds the latest answers
    and `leaders` every (time, leader id, epoch) first answered by a leader."""

    def __init__(self, quorum: Quorum, interval_s: float = PROBE_INTERVAL_S) -> None:
        self.quorum = quorum
        self.interval_s = interval_s
        self.views: dict[int, NodeView] = {}
        self.leaders: list[tuple[float, int, int]] = []
        self._changed = trio.Event()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for node_id in self.quorum.ids:
                nursery.start_soon(self._poll, node_id)

    async def _poll(self, node_id: int) -> None:
        connections = Connections(self.quorum, "kwire-probe")
        request = DescribeQuorumRequest(
            topics=[
                DescribeQuorumRequest.TopicData(
                    topic_name=METADATA_TOPIC,
                    partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                )
            ]
        )
        try:
            while True:
                answer = await connections.request(node_id, request, 1, timeout=1.0)
                if isinstance(answer, DescribeQuorumResponse):
                    self._note(node_id, answer)
                else:
                    self.views.pop(node_id, None)
                await trio.sleep(self.interval_s)
        finally:
            await connections.close()

    def _note(self, node_id: int, answer: DescribeQuorumResponse) -> None:
        if answer.error_code != ErrorCode.NONE or not answer.topics:
            return
        partition = answer.topics[0].partitions[0]
        now = trio.current_time()
        is_leader = partition.error_code == ErrorCode.NONE
        view = NodeView(now, partition.leader_id, partition.leader_epoch, is_leader)
        if is_leader:
            view.high_watermark = partition.high_watermark
            view.log_end_offsets = {
                r.replica_id: r.log_end_offset for r in partition.current_voters
            }
            if not self.leaders or self.leaders[-1][1:] != (node_id, partition.leader_epoch):
                self.leaders.append((now, node_id, partition.leader_epoch))
        self.views[node_id] = view
        self._changed.set()
        self._changed = trio.Event()

    def leader(self) -> tuple[int, int] | None:
        """(leader id, epoch) of the highest epoch any live voter reports, preferring a
        node that answers as leader; None if no voter knows a leader."""
        best: tuple[int, int, int] | None = None
        for node_id, view in self.views.items():
            if not self.quorum.node(node_id).running or view.leader_id < 0:
                continue
            key = (view.epoch, int(view.is_leader), view.leader_id)
            if best is None or key > best:
                best = key
        return None if best is None else (best[2], best[0])

    async def wait_leader(
        self, *, timeout: float, not_id: int | None = None, above_epoch: int = 0
    ) -> tuple[int, int]:
        """Wait until a live node answers as the leader of an epoch above `above_epoch`
        (and is not `not_id`); (leader id, epoch). Raises TooSlowError past `timeout`."""
        with trio.fail_after(timeout):
            while True:
                for node_id, view in self.views.items():
                    if (
                        view.is_leader
                        and view.epoch > above_epoch
                        and node_id != not_id
                        and self.quorum.node(node_id).running
                    ):
                        return node_id, view.epoch
                await self._changed.wait()

    async def wait_caught_up(self, offset: int, *, timeout: float) -> None:
        """Wait until the leader reports every voter's log end at `offset` or beyond."""
        with trio.fail_after(timeout):
            while True:
                for view in self.views.values():
                    ends = view.log_end_offsets
                    complete = view.is_leader and len(ends) == len(self.quorum.ids)
                    if complete and min(ends.values()) >= offset:
                        return
                await self._changed.wait()

    def high_watermark(self) -> int:
        """The highest high watermark any leader reported (-1 if none did)."""
        return max((v.high_watermark for v in self.views.values() if v.is_leader), default=-1)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged CreateTopics: sent at `sent`, answered NONE by `node` at `acked`."""

    name: str
    node: int
    sent: float
    acked: float


class QuorumWriter:
    """Writes one-partition topics, one at a time, to whichever node leads, and keeps a
    simulated broker (id 1000) registered and heartbeating at the leader."""

    def __init__(self, quorum: Quorum, prefix: str = "t", *, broker: bool = True) -> None:
        self.quorum = quorum
        self.probe = quorum.probe
        self.prefix = prefix
        self.broker = broker  # False: another writer keeps the broker alive
        self.acks: list[Ack] = []
        self.attempted: set[str] = set()
        self.failures = 0  # writes whose outcome is unknown
        # (sent at, target node, what came back) of every write not acknowledged
        self.refusals: list[tuple[float, int, str]] = []
        self.paused = False
        self._connections = Connections(quorum, "kwire-writer")
        self._acked = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register the broker and heartbeat (unless ``broker=False``); started once a
        first write is acknowledged; then write until cancelled."""
        broker = Connections(self.quorum, "kwire-sim-broker")
        try:
            async with trio.open_nursery() as nursery:
                if self.broker:
                    epoch = await self._register(broker)
                    nursery.start_soon(self._heartbeat, broker, epoch)
                await self._wait_first_ack()
                task_status.started()
                while True:
                    if self.paused:
                        await trio.sleep(0.01)
                        continue
                    await self.write_one()
        finally:
            await broker.close()
            await self._connections.close()

    def _target(self) -> int:
        known = self.probe.leader()
        return known[0] if known is not None else self.quorum.ids[0]

    async def _register(self, broker: Connections) -> int:
        request = BrokerRegistrationRequest(
            broker_id=BROKER_ID,
            cluster_id=self.quorum.cluster_id,
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
        while True:
            answer = await broker.request(self._target(), request, 4)
            if isinstance(answer, BrokerRegistrationResponse) and answer.error_code == 0:
                return answer.broker_epoch
            await trio.sleep(0.05)

    async def _heartbeat(self, broker: Connections, epoch: int) -> None:
        """Every 250 ms (Kafka's brokers: 2 s; kwire's session is 9 s), at the leader;
        a larger metadata offset than any in the log means "caught up" (unfence me)."""
        request = BrokerHeartbeatRequest(
            broker_id=BROKER_ID, broker_epoch=epoch, current_metadata_offset=2**62
        )
        while True:
            answer = await broker.request(self._target(), request, 1, timeout=1.0)
            if not isinstance(answer, BrokerHeartbeatResponse) or answer.error_code != 0:
                await trio.sleep(0.02)
                continue
            await trio.sleep(0.25)

    async def _wait_first_ack(self) -> None:
        while not self.acks:
            await self.write_one()
            if not self.acks:
                await trio.sleep(0.05)

    async def write_one(
        self, timeout: float = REQUEST_TIMEOUT_S, *, target: int | None = None
    ) -> Ack | None:
        """One CreateTopics of a new name at `target` (default: the believed leader); the
        Ack, or None when it was not acknowledged (refused, lost, timed out: unknown)."""
        name = f"{self.prefix}-{len(self.attempted)}"
        self.attempted.add(name)
        request = CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(
                    name=name, num_partitions=1, replication_factor=1
                )
            ],
            timeout_ms=int(timeout * 1000),
        )
        target = self._target() if target is None else target
        sent = trio.current_time()
        answer = await self._connections.request(target, request, 7, timeout)
        if (
            isinstance(answer, CreateTopicsResponse)
            and len(answer.topics) == 1
            and answer.topics[0].error_code == ErrorCode.NONE
        ):
            ack = Ack(name, target, sent, trio.current_time())
            self.acks.append(ack)
            self._acked.set()
            self._acked = trio.Event()
            return ack
        self.failures += 1
        if isinstance(answer, CreateTopicsResponse) and answer.topics:
            outcome = ErrorCode(answer.topics[0].error_code).name
        else:
            outcome = "no answer" if answer is None else type(answer).__name__
        self.refusals.append((sent, target, outcome))
        await trio.sleep(0.005)  # the probe re-reads the leader every 10 ms
        return None

    async def wait_ack(self, *, after: float, not_from: int | None, timeout: float) -> Ack:
        """The first write acknowledged after `after` by a node other than `not_from`."""
        with trio.fail_after(timeout):
            while True:
                for ack in reversed(self.acks):
                    if ack.acked <= after:
                        break
                    if ack.node != not_from:
                        return next(a for a in self.acks if a.acked > after and a.node != not_from)
                await self._acked.wait()

    @property
    def acked_names(self) -> set[str]:
        return {ack.name for ack in self.acks}


@dataclass(frozen=True, slots=True)
class Recovery:
    """What every node's log holds after the quorum settled (or failed to, within the
    time given: `settled` False) and stopped."""

    acked: set[str]
    attempted: set[str]
    found: dict[int, set[str]]  # node id -> topic names in its log
    settled: bool

    @property
    def missing(self) -> dict[int, set[str]]:
        """Acknowledged writes a node's log lacks (must be empty)."""
        return {n: self.acked - names for n, names in self.found.items() if self.acked - names}

    @property
    def invented(self) -> dict[int, set[str]]:
        """Topics in a log that no writer ever sent (must be empty)."""
        return {
            n: names - self.attempted for n, names in self.found.items() if names - self.attempted
        }


async def settle_and_read(
    quorum: Quorum, writers: Iterable[QuorumWriter], *, timeout: float = 30.0
) -> Recovery:
    """With the writers stopped: start any stopped node, wait (bounded) for a leader and
    for every voter's log to reach the leader's high watermark, stop every node
    (SIGTERM), and read every log."""
    settled = False
    with trio.move_on_after(timeout):
        await quorum.start([n for n in quorum.ids if not quorum.node(n).running])
        await quorum.probe.wait_leader(timeout=timeout)
        # Another round of answers, so the high watermark covers the last acknowledgement.
        await trio.sleep(0.1)
        await quorum.probe.wait_caught_up(quorum.probe.high_watermark(), timeout=timeout)
        settled = True
    await quorum.stop_all()
    writers = list(writers)
    return Recovery(
        acked=set().union(*(w.acked_names for w in writers)),
        attempted=set().union(*(w.attempted for w in writers)),
        found={n: topics_in_log(quorum.node(n)) for n in quorum.ids},
        settled=settled,
    )


@pytest.fixture(scope="module")
def multi_voter_quorum(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skips (with the nodes' last log lines) when three kwire processes do not elect a
    leader: checked once, outside Trio, because pytest-trio drops the reason of a skip
    raised inside a test."""

    async def form() -> str | None:
        async with open_quorum(
            tmp_path_factory.mktemp("formation"), 3, log_level="WARNING"
        ) as quorum:
            try:
                await quorum.wait_formed(FORM_TIMEOUT_S)
            except QuorumNotFormed as exc:
                return str(exc)
        return None

    reason = trio.run(form)
    if reason is not None:
        pytest.skip(f"the quorum cannot form, so there is nothing to fail over: {reason}")
