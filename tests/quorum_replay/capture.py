"""The genuine quorum captures as per-node timelines: `Exchange`s (a request between two
voters, its answer, when), what each node knew when (`QuorumCapture.view_of`).
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.headers import RequestHeader
from kwire.records.batch import iter_batch_headers

CAPTURES = Path(__file__).parents[2].parent / "shared" / "captures"
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


def is_served(exchange: Exchange) -> bool:
    """A Fetch answered without error (by the leader)."""
    response = exchange.response
    return (
        response is not None
        and bool(response.responses)  # type: ignore[attr-defined]
        and response.responses[0].partitions[0].error_code == 0  # type: ignore[attr-defined]
        and response.error_code == 0  # type: ignore[attr-defined]
    )


def written_end(exchange: Exchange) -> int | None:
    """The end offset of the records a genuine Fetch answer carried, if any."""
    response = exchange.response
    if exchange.api != "Fetch" or response is None or not response.responses:  # type: ignore[attr-defined]
        return None
    records = response.responses[0].partitions[0].records  # type: ignore[attr-defined]
    ends = [header.next_offset for _, header in iter_batch_headers(records or b"")]
    return ends[-1] if ends else None


def directory_id(text: str) -> UUID:
    """A Kafka base64url Uuid string (as `kafka-storage random-uuid` prints it)."""
    import base64

    return UUID(bytes=base64.urlsafe_b64decode(text + "=="))
