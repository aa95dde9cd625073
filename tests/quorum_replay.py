"""Replaying the genuine quorum captures against one kwire RaftCore.

The captures (../shared/captures/kafka-3.9/quorum-election, ../shared/captures/kafka-4.3/
quorum-prevote) hold every frame of three genuine controllers' ports. `load_capture` turns a
transcript into `Exchange`s (a request, its answer, who sent it to whom, and when), from
which each node's timeline follows: the requests it got and what it answered
(`received_by`), the requests it sent and what came back (`sent_by`).

`Replay` puts a kwire `RaftCore` in place of one genuine node, on a virtual clock that is
the capture's own (now_ms = the frame's capture time in ms):

- a request the genuine node got is handed to kwire at the time the genuine node answered
  it: Kafka's one raft thread may handle a request well after it arrives (a candidate's
  Fetch answered as the leader it became meanwhile), and the answer shows the state it had
  then. A long-polled Fetch is thus answered with what the log held when the genuine
  leader answered (new records, or nothing at MaxWaitMs);
- a request kwire asks to send (`SendRequest`) is paired with the genuine node's next
  request of that API to that destination, in order; the genuine answer to it is handed to
  kwire at the genuine answer's time (or when kwire sent, if later). A send the genuine
  node never made gets CONNECTION_REFUSED if that peer is down then (`Outage`), or TIMEOUT
  after request_timeout_ms otherwise (nobody answers it); in-flight requests to a peer
  that goes down get CONNECTION_LOST;
- rule BOOTSTRAP_FETCH (`bootstrap_fetches`): Kafka 4.x fetches from any bootstrap voter
  while no leader answers; genuine such Fetches are not replayed, and kwire's Fetches to a
  voter it does not follow are answered as that genuine peer then would have
  (`answer_fetch_as_peer`, checked against every genuine one);
- the log is a `ReplayLog`: what kwire appends (the batches of the genuine Fetch answers
  it gets) grows it as the replay goes. When kwire leads, its log is the genuine leader's
  (`genuine_log`): kwire's LeaderChange is compared with the genuine one of that epoch,
  whose batch is appended (its timestamp and CRC come from the genuine leader's clock), and
  the genuine controller's batches are appended when the genuine leader first sent them
  to a follower (the controller above the raft is not replayed, its writes are);
- `shutdown_ms` (SIGTERM) calls `resign`; the replay ends when the shutdown completes as
  KafkaRaftClient.pollShutdown has it: once a remote leader is known.

Each kwire answer and each kwire request is compared with the genuine one field by field
(after encoding at the genuine version and decoding back, so that fields a version lacks
do not count) and byte for byte. Values that differ by nature are excused only by a named
`Rule` (what, where, why); a test passes a replay's rules explicitly.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import json
import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from kwire.log.snapshots import SnapshotId
from kwire.protocol._codec import Message
from kwire.protocol.errors import ProtocolError
from kwire.protocol.framing import decode_request, decode_response, encode_request, encode_response
from kwire.protocol.messages.headers import RequestHeader
from kwire.records.batch import decode_batches, iter_batch_headers
from kwire.records.control import ControlRecordType, decode_control_record_key

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures"
QUORUM_ELECTION = CAPTURES / "kafka-3.9" / "quorum-election" / "quorum-election.jsonl"
QUORUM_PREVOTE = CAPTURES / "kafka-4.3" / "quorum-prevote" / "quorum-prevote.jsonl"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
# node 11's metadata log of quorum-election: epoch 1 as node 12 wrote it, epoch 2 its own
QUORUM_ELECTION_SEGMENT = (
    QUORUM_ELECTION.parent / "metadata-log-11" / "__cluster_metadata-0" / "00000000000000000000.log"
)
# KafkaRaftClient's fixed MAX_FETCH_SIZE_BYTES in 3.9 (4.x: controller.quorum.fetch.max.bytes,
# 1 MiB by default): a kwire node in place of a 3.9 one is configured with it.
KAFKA_3_9_MAX_FETCH_SIZE_BYTES = 8 * 1024 * 1024

# The RPCs voters send each other (KafkaRaftClient's); the rest (ApiVersions,
# ControllerRegistration, DescribeQuorum, DescribeCluster) is not the consensus's.
RAFT_APIS = {
    1: "Fetch",
    52: "Vote",
    53: "BeginQuorumEpoch",
    54: "EndQuorumEpoch",
    56: "FetchSnapshot",
}
FETCH = 1
APPROXIMATE = "APPROXIMATE"
NEVER_ON_THE_WIRE = ("CONNECTION_REFUSED", "UNSUPPORTED_VERSION")
API_VERSIONS = 18
PEER_ANSWER_MS = 2  # how long a genuine peer takes to answer a Fetch it turns down
RAFT_CLIENT_PREFIX = "raft-client-"  # KafkaRaftClient's NetworkClient: "raft-client-<node id>"


def core_has_landed() -> bool:
    """Whether kwire.raft carries this issue's contract (RaftConfig and SendFailure in
    kwire.raft.state, RaftCore's handle_vote): the replays need it."""
    from kwire.raft import core, state

    return (
        hasattr(state, "RaftConfig")
        and hasattr(state, "SendFailure")
        and hasattr(core.RaftCore, "handle_vote")
    )


# -- the capture ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request between two voters and its answer (None: unanswered in the capture)."""

    index: int  # line of the request in the transcript
    stream: int
    sender: int  # node id of the raft client that sent it
    receiver: int  # node id owning the server port
    header: RequestHeader
    request: Message
    request_raw: bytes
    request_ms: int
    response: Message | None
    response_raw: bytes | None
    response_ms: int | None

    @property
    def api_key(self) -> int:
        return self.header.request_api_key

    @property
    def api_version(self) -> int:
        return self.header.request_api_version

    @property
    def api(self) -> str:
        return RAFT_APIS[self.api_key]

    def __str__(self) -> str:
        return f"#{self.index} {self.api} v{self.api_version} {self.sender}->{self.receiver}"


@dataclass(frozen=True, slots=True)
class QuorumCapture:
    name: str
    endpoints: dict[int, tuple[str, int]]  # node id -> its controller listener
    exchanges: tuple[Exchange, ...]  # in order of the requests
    first_ms: int
    last_ms: int
    # node id -> api key -> the highest version its ApiVersions answers offered
    api_versions: dict[int, dict[int, int]] = field(default_factory=dict)
    # node id -> the capture times of every request its port received (any API)
    received_ms: dict[int, list[int]] = field(default_factory=dict)
    _views: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict, repr=False)

    @property
    def leaders(self) -> dict[int, int]:
        """epoch -> the node that led it (from the BeginQuorumEpoch requests)."""
        return {
            e.request.topics[0].partitions[0].leader_epoch: e.sender  # type: ignore[attr-defined]
            for e in self.exchanges
            if e.api == "BeginQuorumEpoch"
        }

    def is_bootstrap_fetch(self, exchange: Exchange) -> bool:
        """A Fetch to the sender itself or to a voter the sender did not know as its leader
        when it sent it: Kafka 4.x's fetch to any bootstrap server while no leader answers
        (it goes over the bootstrap server's own connection)."""
        if exchange.api != "Fetch":
            return False
        _, leader = self.view_of(exchange.sender, exchange.request_ms, before=True)
        return exchange.sender == exchange.receiver or leader != exchange.receiver

    def view_of(self, node: int, ms: int, *, before: bool = False) -> tuple[int, int]:
        """(epoch, leader id or -1) that `node` knew at `ms` (strictly before it if
        `before`), folded from what it showed and heard: the leader and epoch of its answers
        and of the answers it got, its BeginQuorumEpoch (it leads) and Vote (it stands)
        requests. A higher epoch replaces the view; in the same epoch a leader, once named,
        stays."""
        folded = self._views.get(node)
        if folded is None:
            folded = self._views[node] = _fold(self._evidence_of(node))
        times = [v[0] for v in folded]
        i = bisect.bisect_left(times, ms) if before else bisect.bisect_right(times, ms)
        _, epoch, leader = folded[i - 1] if i else (0, 0, -1)
        return epoch, leader

    def _evidence_of(self, node: int) -> list[tuple[int, int, int]]:
        seen: list[tuple[int, int, int]] = []
        for e in self.exchanges:
            if (
                e.response is not None
                and e.response_ms is not None
                and node in (e.sender, e.receiver)
            ):
                leader = _leader_in(e.response)
                if leader is not None:
                    seen.append((e.response_ms, *leader))
            if e.sender == node and e.api in ("BeginQuorumEpoch", "Vote"):
                partition = e.request.topics[0].partitions[0]  # type: ignore[attr-defined]
                if e.api == "BeginQuorumEpoch":
                    seen.append((e.request_ms, partition.leader_epoch, node))
                elif not partition.pre_vote:
                    seen.append((e.request_ms, partition.replica_epoch, -1))
        return sorted(seen)

    def directory_id_of(self, node: int) -> UUID:
        """The directory id `node` names itself with in its Fetch and Vote requests."""
        return next(
            e.request.topics[0].partitions[0].replica_directory_id  # type: ignore[attr-defined]
            for e in self.sent_by(node)
            if e.api in ("Fetch", "Vote")
        )

    def port_up_ms(self, node: int, after: int = 0) -> int:
        """When `node`'s port first took a request after `after`: its listener was up."""
        return min(ms for ms in self.received_ms.get(node, []) if ms > after)

    def received_by(self, node: int) -> list[Exchange]:
        return [e for e in self.exchanges if e.receiver == node]

    def sent_by(self, node: int) -> list[Exchange]:
        return [e for e in self.exchanges if e.sender == node]


def _fold(evidence: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(ms, epoch, leader) after each piece of evidence, as `QuorumCapture.view_of` folds."""
    epoch, leader = 0, -1
    folded = []
    for ms, seen_epoch, seen_leader in evidence:
        if seen_epoch > epoch:
            epoch, leader = seen_epoch, seen_leader
        elif seen_epoch == epoch and seen_leader != -1:
            leader = seen_leader
        folded.append((ms, epoch, leader))
    return folded


def _leader_in(response: Message) -> tuple[int, int] | None:
    """(epoch, leader) an answer carries in its one partition."""
    if isinstance(getattr(response, "responses", None), list):  # Fetch
        if not response.responses:  # type: ignore[attr-defined]
            return None
        leader = response.responses[0].partitions[0].current_leader  # type: ignore[attr-defined]
        return leader.leader_epoch, leader.leader_id
    topics = getattr(response, "topics", None)
    if not topics:
        return None
    partition = topics[0].partitions[0]
    return partition.leader_epoch, partition.leader_id


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def load_capture(path: Path) -> QuorumCapture:
    """Parse a transcript: ports are mapped to node ids through the receivers' ids that
    Vote and BeginQuorumEpoch requests name (VoterId), checked against every endpoint the
    frames carry; senders are known by their raft client id."""
    frames = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    requests: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}
    answers: dict[tuple[int, int], dict[str, Any]] = {}
    for i, frame in enumerate(frames):
        key = (frame["stream"], frame["correlation_id"])
        if frame["dir"] == "request":
            requests[key] = (i, frame)
        else:
            answers[key] = frame
    ports: dict[int, int] = {}
    decoded: list[tuple[int, dict[str, Any], RequestHeader, Message]] = []
    for i, frame in sorted(requests.values(), key=lambda pair: pair[0]):
        if frame["api_key"] not in RAFT_APIS:
            continue
        header, body = decode_request(bytes.fromhex(frame["hex"]))
        if not (header.client_id or "").startswith(RAFT_CLIENT_PREFIX):
            continue
        voter_id = getattr(body, "voter_id", None)
        port = int(frame["server"].rsplit(":", 1)[1])
        if voter_id is not None and voter_id >= 0:
            assert ports.setdefault(port, voter_id) == voter_id, (port, voter_id)
        decoded.append((i, frame, header, body))
    endpoints = {node: ("127.0.0.1", port) for port, node in ports.items()}
    api_versions: dict[int, dict[int, int]] = {}
    for answer in answers.values():
        if answer["api_key"] != API_VERSIONS:
            continue
        port = int(answer["server"].rsplit(":", 1)[1])
        if port not in ports:
            continue
        _, body = decode_response(bytes.fromhex(answer["hex"]), API_VERSIONS, answer["api_version"])
        offered = {k.api_key: k.max_version for k in body.api_keys}  # type: ignore[attr-defined]
        assert api_versions.setdefault(ports[port], offered) == offered
    received_ms: dict[int, list[int]] = defaultdict(list)
    for _, frame in requests.values():
        port = int(frame["server"].rsplit(":", 1)[1])
        if port in ports:
            received_ms[ports[port]].append(_ms(frame["t"]))
    exchanges = []
    for i, frame, header, body in decoded:
        port = int(frame["server"].rsplit(":", 1)[1])
        answer = answers.get((frame["stream"], frame["correlation_id"]))
        response = response_raw = None
        if answer is not None:
            response_raw = bytes.fromhex(answer["hex"])
            _, response = decode_response(response_raw, frame["api_key"], frame["api_version"])
            for endpoint in getattr(response, "node_endpoints", None) or ():
                assert endpoints[endpoint.node_id] == (endpoint.host, endpoint.port), endpoint
        exchanges.append(
            Exchange(
                index=i,
                stream=frame["stream"],
                sender=int(header.client_id.removeprefix(RAFT_CLIENT_PREFIX)),  # type: ignore[union-attr]
                receiver=ports[port],
                header=header,
                request=body,
                request_raw=bytes.fromhex(frame["hex"]),
                request_ms=_ms(frame["t"]),
                response=response,
                response_raw=response_raw,
                response_ms=None if answer is None else _ms(answer["t"]),
            )
        )
    return QuorumCapture(
        name=f"{path.parent.parent.name}/{path.parent.name}",
        endpoints=dict(sorted(endpoints.items())),
        exchanges=tuple(exchanges),
        first_ms=_ms(frames[0]["t"]),
        last_ms=_ms(frames[-1]["t"]),
        api_versions=api_versions,
        received_ms={node: sorted(times) for node, times in received_ms.items()},
    )


# -- the log ----------------------------------------------------------------------------------


class ShutdownComplete(Exception):
    """The replayed node's graceful shutdown completed: the replay ends there."""


class ReplayDiverged(Exception):
    """kwire took a path the genuine traffic can no longer feed (the replay stops there)."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    base_offset: int
    next_offset: int
    epoch: int
    raw: bytes


class ReplayLog:
    """A LogView over a list of record batches, as the replayed node holds them."""

    def __init__(self, snapshot: SnapshotId | None = None) -> None:
        self.batches: list[StoredBatch] = []
        self.snapshot = snapshot  # the bootstrap snapshot a dynamic quorum's format writes

    @property
    def end_offset(self) -> int:
        return self.batches[-1].next_offset if self.batches else 0

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def latest_epoch(self) -> int | None:
        if self.batches:
            return self.batches[-1].epoch
        return None if self.snapshot is None else self.snapshot.epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """Kafka's LeaderEpochFileCache.endOffsetFor: the largest epoch <= `epoch` and
        where it ends (the next epoch's start, or the log end); None if unknown."""
        if epoch < 0 or not self.batches:
            return None
        starts: list[tuple[int, int]] = []  # (epoch, start offset)
        for batch in self.batches:
            if not starts or starts[-1][0] != batch.epoch:
                starts.append((batch.epoch, batch.base_offset))
        if starts[-1][0] == epoch:
            return epoch, self.end_offset
        later = [i for i, (e, _) in enumerate(starts) if e > epoch]
        if not later:
            return None
        if later[0] == 0:
            return epoch, starts[0][1]
        return starts[later[0] - 1][0], starts[later[0]][1]

    def latest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshot

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return self.snapshot

    def append(self, records: bytes) -> int:
        """Append whole batches that start at the end offset; the new end offset."""
        for pos, header in iter_batch_headers(records):
            if header.base_offset != self.end_offset:
                raise ReplayDiverged(
                    f"asked to append a batch at offset {header.base_offset} to a log that "
                    f"ends at {self.end_offset}"
                )
            raw = bytes(records[pos : pos + header.size_in_bytes])
            self.batches.append(
                StoredBatch(
                    header.base_offset, header.next_offset, header.partition_leader_epoch, raw
                )
            )
        return self.end_offset

    def truncate_to(self, offset: int) -> None:
        assert all(b.base_offset >= offset or b.next_offset <= offset for b in self.batches)
        self.batches = [b for b in self.batches if b.next_offset <= offset]

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset`, at least one, up to `max_bytes`."""
        out = bytearray()
        for batch in self.batches:
            if batch.next_offset <= offset:
                continue
            if out and len(out) + len(batch.raw) > max_bytes:
                break
            out += batch.raw
        return bytes(out)


# -- comparing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    path: str  # e.g. "topics[0].partitions[0].vote_granted"
    genuine: Any
    kwire: Any


def differences(genuine: Any, kwire: Any, path: str = "") -> list[Difference]:
    """Every leaf where two decoded messages differ."""
    if dataclasses.is_dataclass(genuine) and type(genuine) is type(kwire):
        found = []
        for f in dataclasses.fields(genuine):
            sub = f"{path}.{f.name}" if path else f.name
            found += differences(getattr(genuine, f.name), getattr(kwire, f.name), sub)
        return found
    if isinstance(genuine, list | tuple) and isinstance(kwire, list | tuple):
        if len(genuine) != len(kwire):
            return [Difference(f"{path}.len", len(genuine), len(kwire))]
        found = []
        for i, (g, k) in enumerate(zip(genuine, kwire, strict=True)):
            found += differences(g, k, f"{path}[{i}]")
        return found
    return [] if genuine == kwire else [Difference(path, genuine, kwire)]


@dataclass(frozen=True, slots=True)
class Rule:
    """A named, narrow exception: in `api`'s `kind` ("answer" or "request") messages, a
    difference at a path that `where` accepts is by nature, for the reason given. A rule
    for one moment of one capture names the exchanges (transcript lines) it covers."""

    name: str
    api: str
    kind: str
    where: Callable[[str], bool]
    why: str
    exchanges: frozenset[int] | None = None

    def excuses(self, exchange: Exchange, kind: str, difference: Difference) -> bool:
        return (
            exchange.api == self.api
            and kind == self.kind
            and (self.exchanges is None or exchange.index in self.exchanges)
            and self.where(difference.path)
        )


@dataclass(slots=True)
class Comparison:
    """kwire's message beside the genuine one."""

    exchange: Exchange
    kind: str  # "answer": kwire answered the genuine request; "request": kwire sent it
    time_ms: int
    kwire: Message
    bytes_equal: bool
    unexcused: list[Difference]
    excused: list[tuple[str, Difference]]  # (rule name, difference)

    @property
    def matches(self) -> bool:
        return not self.unexcused

    def __str__(self) -> str:
        shown = "; ".join(
            f"{d.path}: genuine {d.genuine!r}, kwire {d.kwire!r}" for d in self.unexcused
        )
        return f"{self.exchange} {self.kind}: {shown or 'matches'}"


def _encode(exchange: Exchange, kind: str, message: Message) -> tuple[bytes, Message]:
    if kind == "request":
        raw = encode_request(exchange.header, message)
        return raw, decode_request(raw)[1]
    raw = encode_response(
        exchange.api_key, exchange.api_version, exchange.header.correlation_id, message
    )
    return raw, decode_response(raw, exchange.api_key, exchange.api_version)[1]


def compare(
    exchange: Exchange, kind: str, kwire: Message, time_ms: int, rules: Iterable[Rule]
) -> Comparison:
    genuine = exchange.request if kind == "request" else exchange.response
    genuine_raw = exchange.request_raw if kind == "request" else exchange.response_raw
    raw, decoded = _encode(exchange, kind, kwire)
    unexcused: list[Difference] = []
    excused: list[tuple[str, Difference]] = []
    for difference in differences(genuine, decoded):
        rule = next((r for r in rules if r.excuses(exchange, kind, difference)), None)
        if rule is None:
            unexcused.append(difference)
        else:
            excused.append((rule.name, difference))
    return Comparison(exchange, kind, time_ms, kwire, raw == genuine_raw, unexcused, excused)


# -- the driver -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outage:
    """A genuine node's process was not running from `from_ms` (None: from the start)
    until `to_ms` (None: to the end): requests to it are refused, in-flight ones lost."""

    node: int
    from_ms: int | None
    to_ms: int | None

    def covers(self, ms: int) -> bool:
        return (self.from_ms is None or self.from_ms <= ms) and (
            self.to_ms is None or ms < self.to_ms
        )


@dataclass(slots=True)
class Sent:
    """A request kwire asked to send, and what became of it."""

    destination: int
    request: Message
    time_ms: int
    exchange: Exchange | None = None  # the genuine request it was paired with
    failure: Any = None  # the SendFailure kwire was told of, if any
    bootstrap: bool = False  # a Fetch to a voter kwire did not follow (answered as the peer)
    during_shutdown: bool = False  # sent after `shutdown_ms` (resign)


@dataclass(slots=True)
class ReplayResult:
    node: int
    log: ReplayLog
    comparisons: list[Comparison] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    # genuine requests kwire never sent; genuine requests to it the capture has no answer to
    unsent: list[Exchange] = field(default_factory=list)
    unanswered: list[Exchange] = field(default_factory=list)
    actions: list[tuple[int, Any]] = field(default_factory=list)  # (now_ms, action)
    # (ms, state name, epoch, leader id) at every StateChanged
    states: list[tuple[int, str, int, int]] = field(default_factory=list)
    # (ms, epoch, the genuine LeaderChangeMessage at that offset or None, kwire's)
    leader_changes: list[tuple[int, int, Any, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the replay stopped early (ReplayDiverged), if it did
    shutdown_complete_ms: int | None = None

    def of(self, api: str, kind: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.exchange.api == api and c.kind == kind]

    def mismatches(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.matches]

    def bootstrap_fetches(self) -> list[Sent]:
        return [s for s in self.sent if s.bootstrap]

    def unpaired_sends(self) -> list[Sent]:
        """kwire's sends the genuine node did not make, but those that never reach the wire
        (to a peer that was down, or that its version cannot carry: the genuine node's
        refused connections leave no frame), rule BOOTSTRAP_FETCH's, and rule
        HANDLING_WINDOW's: a send kwire made while a Vote, BeginQuorumEpoch or
        EndQuorumEpoch had reached the genuine node but was not yet answered (kwire is
        handed it at the answer's time; the genuine node had already acted on it)."""
        windows = [
            (c.exchange.request_ms, c.time_ms)
            for c in self.comparisons
            if c.kind == "answer" and c.exchange.api != "Fetch"
        ]
        return [
            s
            for s in self.sent
            if s.exchange is None
            and not s.bootstrap
            and getattr(s.failure, "name", None) not in NEVER_ON_THE_WIRE
            and not any(start <= s.time_ms < end for start, end in windows)
        ]


class Replay:
    """Drive `core` (a RaftCore for node `node`, over `log`) with the genuine traffic of
    `capture` from `start_ms` to `end_ms`; see the module docstring for the rules of time."""

    def __init__(
        self,
        capture: QuorumCapture,
        node: int,
        core: Any,
        log: ReplayLog,
        *,
        rules: Iterable[Rule] = (),
        outages: Iterable[Outage] = (),
        start_ms: int | None = None,
        end_ms: int | None = None,
        request_timeout_ms: int = 2000,
        skip: Callable[[Exchange], str | None] = lambda exchange: None,
        genuine_log: Iterable[StoredBatch] = (),
        shutdown_ms: int | None = None,
    ) -> None:
        self.capture = capture
        self.node = node
        self.core = core
        self.log = log
        self.rules = tuple(rules)
        self.outages = tuple(outages)
        self.start_ms = capture.first_ms if start_ms is None else start_ms
        self.end_ms = capture.last_ms if end_ms is None else end_ms
        self.request_timeout_ms = request_timeout_ms
        self.skip = skip
        self.genuine_log = tuple(genuine_log)
        self.shutdown_ms = shutdown_ms
        self.result = ReplayResult(node, log)
        self.now_ms = self.start_ms
        self._events: list[tuple[int, int, int, str, Any]] = []
        self._seq = 0
        # genuine requests waiting for kwire's send, and kwire sends waiting for a genuine
        # request, per (destination, api key)
        self._genuine: dict[tuple[int, int], deque[Exchange]] = defaultdict(deque)
        self._kwire: dict[tuple[int, int], deque[Sent]] = defaultdict(deque)
        self._in_flight: list[Sent] = []
        self._shutting_down = False
        self._polls_at_now = 0

    # -- events

    def _at(self, ms: int, kind: str, payload: Any, *, first: bool = False) -> None:
        self._seq += 1
        heapq.heappush(self._events, (ms, 0 if first else 1, self._seq, kind, payload))

    def run(self) -> ReplayResult:
        for exchange in self.capture.exchanges:
            if not self.start_ms <= exchange.request_ms <= self.end_ms:
                continue
            reason = self.skip(exchange)
            if reason is not None:
                self.result.notes.append(f"{exchange}: not replayed: {reason}")
                continue
            if exchange.receiver == self.node:
                written = _written_end(exchange)
                if written is not None and self.genuine_log:
                    self._at(exchange.response_ms, "controller-write", written, first=True)  # type: ignore[arg-type]
                if exchange.response_ms is None:
                    self.result.unanswered.append(exchange)
                else:
                    self._at(exchange.response_ms, "inbound", exchange)
            elif exchange.sender == self.node:
                self._at(exchange.request_ms, "genuine-send", exchange)
        if self.shutdown_ms is not None:
            self._at(self.shutdown_ms, "shutdown", None)
        for outage in self.outages:
            if outage.from_ms is not None and outage.node != self.node:
                self._at(outage.from_ms, "down", outage)
        try:
            self._run_events()
        except ReplayDiverged as exc:
            self.result.stopped = f"at {self.now_ms}: {exc}"
        except ShutdownComplete:
            self.result.notes.append(f"{self.now_ms}: shutdown complete (a remote leader)")
            self.result.shutdown_complete_ms = self.now_ms
        for queue in self._genuine.values():
            self.result.unsent.extend(queue)
        return self.result

    def _run_events(self) -> None:
        from kwire.raft.state import SendFailure

        self._carry_out(self.core.start(self.start_ms))
        while True:
            next_ms = self._events[0][0] if self._events else self.end_ms + 1
            if self._run_timer_before(min(next_ms, self.end_ms)):
                continue
            if next_ms > self.end_ms:
                break
            ms, _, _, kind, payload = heapq.heappop(self._events)
            self.now_ms = max(self.now_ms, ms)
            match kind:
                case "inbound":
                    self._inbound(payload)
                case "genuine-send":
                    self._genuine[(payload.receiver, payload.api_key)].append(payload)
                case "answer":
                    sent = payload
                    if sent in self._in_flight:
                        self._in_flight.remove(sent)
                        assert sent.exchange is not None and sent.exchange.response is not None
                        self._carry_out(
                            self.core.on_response(
                                sent.destination, sent.request, sent.exchange.response, self.now_ms
                            )
                        )
                case "fail":
                    sent, failure = payload
                    if sent in self._in_flight:
                        self._in_flight.remove(sent)
                        sent.failure = failure
                        self._carry_out(
                            self.core.on_send_failed(
                                sent.destination, sent.request, failure, self.now_ms
                            )
                        )
                case "peer-answer":
                    if payload in self._in_flight:
                        self._in_flight.remove(payload)
                        self._carry_out(
                            self.core.on_response(
                                payload.destination,
                                payload.request,
                                self._peer_fetch_answer(payload),
                                self.now_ms,
                            )
                        )
                case "controller-write":
                    self._controller_write(payload)
                case "shutdown":
                    self._shutting_down = True
                    if self.core.leader_id not in (-1, self.node):
                        raise ShutdownComplete  # a follower stops at once (pollShutdown)
                    self._carry_out(self.core.resign(self.now_ms))
                case "down":
                    for sent in list(self._in_flight):
                        if sent.destination == payload.node:
                            self._at(self.now_ms, "fail", (sent, SendFailure.CONNECTION_LOST))
            self._pair()

    def _run_timer_before(self, ms: int) -> bool:
        """Poll kwire if a timer of its is due by `ms` (before an event of the same time);
        whether it did."""
        deadline = self.core.next_deadline_ms()
        if deadline > ms:
            return False
        self._polls_at_now = self._polls_at_now + 1 if deadline <= self.now_ms else 0
        if self._polls_at_now > 100:
            raise ReplayDiverged(f"next_deadline_ms() stays at {deadline} after poll()")
        self.now_ms = max(self.now_ms, deadline)
        self._carry_out(self.core.poll(self.now_ms))
        self._pair()
        return True

    # -- kwire's side

    def _carry_out(self, actions: list[Any]) -> None:
        from kwire.raft import state

        for action in actions:
            self.result.actions.append((self.now_ms, action))
            match action:
                case state.SendRequest(destination=destination, request=request):
                    self._send(destination, request)
                case state.AppendAsFollower(records=records):
                    end = self.log.append(records)
                    self._carry_out(self.core.on_flushed(end, self.now_ms))
                case state.TruncateTo(offset=offset):
                    self.log.truncate_to(offset)
                case state.AppendLeaderChange(epoch=epoch, message=message):
                    self._append_leader_change(epoch, message)
                case state.StateChanged(state=name, epoch=epoch, leader_id=leader):
                    self.result.states.append((self.now_ms, name, epoch, leader))
                    if self._shutting_down and leader not in (-1, self.node):
                        # KafkaRaftClient.pollShutdown: a graceful shutdown completes once
                        # a remote leader is known; the process stops acting.
                        raise ShutdownComplete
                case _:
                    pass  # PersistQuorumState, HighWatermarkAdvanced, BecameLeader: recorded

    def _send(self, destination: int, request: Message) -> None:
        from kwire.raft.state import SendFailure

        sent = Sent(destination, request, self.now_ms, during_shutdown=self._shutting_down)
        self.result.sent.append(sent)
        self._in_flight.append(sent)
        if any(o.node == destination and o.covers(self.now_ms) for o in self.outages):
            self._at(self.now_ms, "fail", (sent, SendFailure.CONNECTION_REFUSED))
            return
        api_key = _api_key(request)
        if not _fits(request, self.capture.api_versions.get(destination, {}).get(api_key)):
            # The edge sends at the highest version both sides take; a request that version
            # cannot carry (PreVote needs Vote v2) fails at once.
            self._at(self.now_ms, "fail", (sent, SendFailure.UNSUPPORTED_VERSION))
            return
        if (
            api_key == FETCH
            and destination != self.core.leader_id
            and not self._genuine[(destination, FETCH)]
        ):
            # BOOTSTRAP_FETCH: a Fetch to a voter kwire does not follow.
            sent.bootstrap = True
            self._at(self.now_ms + PEER_ANSWER_MS, "peer-answer", sent)
            return
        self._kwire[(destination, api_key)].append(sent)
        self._at(self.now_ms + self.request_timeout_ms, "fail", (sent, SendFailure.TIMEOUT))

    def _pair(self) -> None:
        """Pair kwire's sends with the genuine requests of the same API to the same peer."""
        for key, sends in self._kwire.items():
            genuine = self._genuine[key]
            while sends and genuine:
                sent, exchange = sends.popleft(), genuine.popleft()
                if sent not in self._in_flight:
                    # it already failed (timed out) before the genuine node sent its own
                    genuine.appendleft(exchange)
                    continue
                sent.exchange = exchange
                self.result.comparisons.append(
                    compare(exchange, "request", sent.request, sent.time_ms, self.rules)
                )
                if exchange.response_ms is not None:
                    self._at(max(exchange.response_ms, self.now_ms), "answer", sent)

    def _peer_fetch_answer(self, sent: Sent) -> Message:
        answer, reason = answer_fetch_as_peer(
            self.capture, sent.destination, sent.request, self.now_ms
        )
        self.result.notes.append(f"{self.now_ms}: kwire's Fetch to {sent.destination}: {reason}")
        return answer

    # -- kwire as the leader: its log is the genuine leader's

    def _genuine_batch_at(self, offset: int) -> StoredBatch | None:
        return next((b for b in self.genuine_log if b.base_offset == offset), None)

    def _append_leader_change(self, epoch: int, message: Any) -> None:
        """kwire's LeaderChange stands where the genuine leader's is: the message is
        compared field by field, and the genuine batch (its timestamp and CRC are the
        genuine leader's clock's) is appended so that later Fetch answers compare."""
        from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage

        batch = self._genuine_batch_at(self.log.end_offset)
        genuine = None
        if batch is not None and batch.epoch == epoch:
            record = next(decode_batches(batch.raw)).records[0]
            key = decode_control_record_key(record.key)
            if key.type == ControlRecordType.LEADER_CHANGE:
                genuine = LeaderChangeMessage.decode(record.value or b"", 0)
        self.result.leader_changes.append((self.now_ms, epoch, genuine, message))
        if genuine is None or batch is None:
            self.result.notes.append(
                f"{self.now_ms}: kwire leads epoch {epoch} but the genuine node held no "
                f"LeaderChange of that epoch at offset {self.log.end_offset}"
            )
            return
        self._carry_out(self.core.on_flushed(self.log.append(batch.raw), self.now_ms))

    def _controller_write(self, end_offset: int) -> None:
        """The genuine controller's records, appended by kwire's leader when the genuine
        leader first sent them to a follower (the controller above the raft is not
        replayed: its writes are)."""
        if not self.core.is_leader:
            return
        appended = False
        while self.log.end_offset < end_offset:
            batch = self._genuine_batch_at(self.log.end_offset)
            if batch is None or batch.epoch != self.core.epoch:
                break
            self.log.append(batch.raw)
            appended = True
        if appended:
            self._carry_out(self.core.on_flushed(self.log.end_offset, self.now_ms))

    # -- the genuine peers' side

    def _inbound(self, exchange: Exchange) -> None:
        if exchange.api == "Fetch":
            self._fetch(exchange)
            return
        handler = {
            "Vote": self.core.handle_vote,
            "BeginQuorumEpoch": self.core.handle_begin_quorum_epoch,
            "EndQuorumEpoch": self.core.handle_end_quorum_epoch,
        }[exchange.api]
        response, actions = handler(exchange.request, self.now_ms)
        self.result.comparisons.append(
            compare(exchange, "answer", response, self.now_ms, self.rules)
        )
        self._carry_out(actions)  # before the answer goes out; compared first, as it stands

    def _fetch(self, exchange: Exchange) -> None:
        from kwire.raft.core import FetchReady

        request = exchange.request
        outcome = self.core.fetch(request, self.now_ms)
        if isinstance(outcome, FetchReady):
            response = outcome.response
        else:
            records = self.log.read(outcome.offset, outcome.max_bytes)
            response, actions = self.core.complete_fetch(request, records, self.now_ms)
            self._carry_out(actions)
        self.result.comparisons.append(
            compare(exchange, "answer", response, self.now_ms, self.rules)
        )


def answer_fetch_as_peer(
    capture: QuorumCapture, peer: int, request: Message, ms: int, *, before: bool = False
) -> tuple[Message, str]:
    """A genuine peer's answer to a Fetch it was never sent, for a peer that does not lead
    the epoch asked (rule BOOTSTRAP_FETCH): the shape of a genuine Fetch error answer of the
    capture, with the epoch and leader the peer showed at `ms`
    (`QuorumCapture.view_of`; strictly before `ms` if `before`) and the error of KafkaRaftClient's validateLeaderOnlyRequest."""
    from kwire.protocol.error_codes import ErrorCode

    epoch, leader = capture.view_of(peer, ms, before=before)
    asked = request.topics[0].partitions[0]  # type: ignore[attr-defined]
    approximate = ""
    if leader == peer and asked.current_leader_epoch == epoch:
        # The genuine leader would have served it from its log, which the replay does not
        # hold: the answer tells who leads, and the replay notes the approximation.
        approximate = f" ({APPROXIMATE}: that peer led this epoch)"
    if asked.current_leader_epoch < epoch:
        error = ErrorCode.FENCED_LEADER_EPOCH
    elif asked.current_leader_epoch > epoch:
        error = ErrorCode.UNKNOWN_LEADER_EPOCH
    else:
        error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    template = next(
        e
        for e in capture.exchanges
        if e.api == "Fetch"
        and e.response is not None
        and e.response.responses  # type: ignore[attr-defined]
        and e.response.responses[0].partitions[0].error_code  # type: ignore[attr-defined]
    )
    assert template.response_raw is not None
    _, answer = decode_response(template.response_raw, FETCH, template.api_version)
    partition = answer.responses[0].partitions[0]  # type: ignore[attr-defined]
    partition.error_code = error
    partition.current_leader.leader_id = leader
    partition.current_leader.leader_epoch = epoch
    answer.node_endpoints = [  # type: ignore[attr-defined]
        type(answer).NodeEndpoint(node_id=leader, host=host, port=port, rack=None)  # type: ignore[attr-defined]
        for node, (host, port) in capture.endpoints.items()
        if node == leader
    ]
    return answer, (
        f"answered as node {peer} (epoch {epoch}, leader {leader}): {error.name}{approximate}"
    )


def raft_config(capture: QuorumCapture, node: int, **overrides: Any) -> Any:
    """A RaftConfig for `node` of the capture's static quorum: the capture's voters and
    endpoints, the node's own directory id, Kafka's default timers, and fast failover off
    (Kafka has none)."""
    from kwire.raft.state import RaftConfig, Voter

    settings: dict[str, Any] = {
        "node_id": node,
        "cluster_id": CLUSTER_ID,
        "voters": tuple(
            Voter(node_id=n, host=host, port=port) for n, (host, port) in capture.endpoints.items()
        ),
        "directory_id": capture.directory_id_of(node),
        "fast_failover": False,
    }
    return RaftConfig(**(settings | overrides))


def begin_quorum_epoch_repeats(capture: QuorumCapture, node: int) -> set[int]:
    """Rule KAFKA_3_9_BEGIN_QUORUM_EPOCH_REPEATS: Kafka 3.9's leader sends BeginQuorumEpoch
    to every voter each fetch.timeout.ms / 2 (3.9's maybeSendBeginQuorumEpochRequests);
    Kafka 4.x, whose semantics kwire's core follows, only to the voters that have not
    fetched within that time (LeaderState.needToSendBeginQuorumRequests). The transcript
    lines of `node`'s BeginQuorumEpoch requests after its first to each voter in an epoch."""
    seen: set[tuple[int, int]] = set()
    repeats = set()
    for e in capture.sent_by(node):
        if e.api == "BeginQuorumEpoch":
            key = (e.receiver, e.request.topics[0].partitions[0].leader_epoch)  # type: ignore[attr-defined]
            if key in seen:
                repeats.add(e.index)
            seen.add(key)
    return repeats


def bootstrap_fetches(capture: QuorumCapture, node: int) -> Callable[[Exchange], str | None]:
    """Rule BOOTSTRAP_FETCH, for `Replay(skip=...)` of `node`: its genuine Fetches to itself
    or to a voter it did not know as its leader are Kafka 4.x's fetches to any bootstrap
    server while no leader answers (KafkaRaftClient.maybeSendFetchToAnyBootstrap). Which
    server it picks and when is the request manager's round of ready connections, not the
    consensus: those genuine requests are not replayed, and kwire's own Fetches to a voter
    it does not follow are answered as the genuine peer then would (`Replay`). One the
    peer served (it had just become leader: records) is replayed as any Fetch: kwire's
    next Fetch to that peer is paired with it."""

    def skip(exchange: Exchange) -> str | None:
        if exchange.sender != node or not capture.is_bootstrap_fetch(exchange):
            return None
        if _served(exchange):
            return None  # the peer led by then and sent records: replayed as any Fetch
        return "BOOTSTRAP_FETCH"

    return skip


def _served(exchange: Exchange) -> bool:
    """A Fetch answered without error (by the leader)."""
    response = exchange.response
    return (
        response is not None
        and bool(response.responses)  # type: ignore[attr-defined]
        and response.responses[0].partitions[0].error_code == 0  # type: ignore[attr-defined]
        and response.error_code == 0  # type: ignore[attr-defined]
    )


def _written_end(exchange: Exchange) -> int | None:
    """The end offset of the records a genuine Fetch answer carried, if any."""
    response = exchange.response
    if exchange.api != "Fetch" or response is None or not response.responses:  # type: ignore[attr-defined]
        return None
    records = response.responses[0].partitions[0].records  # type: ignore[attr-defined]
    ends = [header.next_offset for _, header in iter_batch_headers(records or b"")]
    return ends[-1] if ends else None


def read_segment(path: Path) -> list[StoredBatch]:
    """The batches of a genuine log segment (`<dir>/__cluster_metadata-0/<offset>.log`)."""
    data = path.read_bytes()
    return [
        StoredBatch(
            header.base_offset,
            header.next_offset,
            header.partition_leader_epoch,
            data[pos : pos + header.size_in_bytes],
        )
        for pos, header in iter_batch_headers(data)
    ]


def _fits(request: Message, version: int | None) -> bool:
    """Whether `request` can be written at `version` (None: the peer's is unknown)."""
    if version is None:
        return True
    try:
        request.write(bytearray(), version)
    except ProtocolError:
        return False
    return True


def _api_key(request: Message) -> int:
    name = type(request).__name__.removesuffix("Request")
    return next(key for key, api in RAFT_APIS.items() if api == name)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def directory_id(text: str) -> UUID:
    """A Kafka base64url Uuid string (as `kafka-storage random-uuid` prints it)."""
    import base64

    return UUID(bytes=base64.urlsafe_b64decode(text + "=="))
