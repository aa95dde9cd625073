"""The harness of tests/test_server_genuine_conversation.py: the genuine broker stories,
kwire's side of a replayed conversation over TCP, and the rules that compare answers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from genuine_43 import kafka_4_3_topic_defaults

from kwire.log import read_meta_properties
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.create_topics import CreateTopicsResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.records import decode_batches, unframe_metadata_record
from kwire.server.__main__ import build_settings
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.dispatch import unwrap_envelope
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage, read_bootstrap_checkpoint

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9"
CAPTURES_4_3 = CAPTURES.parent / "kafka-4.3"
SEGMENT = Path("__cluster_metadata-0") / "00000000000000000000.log"


@dataclass(frozen=True, slots=True)
class Story:
    """One genuine controller's port: its frames, its log directory, how it was formatted."""

    name: str
    frames: Path  # <story>.jsonl: every frame of the controller's port
    log_dir: Path  # its metadata log directory: meta.properties, bootstrap.checkpoint, log
    release_version: str | None  # --release-version of its format; None: 4.3.1's default
    kafka_4_3: bool  # the genuine controller is Kafka 4.3.1 (release rules apply)
    answers: frozenset[str]  # the kinds of answer the story must have compared
    min_answered: int

    @property
    def log(self) -> Path:
        return self.log_dir / SEGMENT

    @property
    def release_rule(self) -> Callable[[str, Any], Any]:
        return kafka_4_3_topic_defaults if self.kafka_4_3 else lambda name, answer: answer


PLAIN_STORY_ANSWERS = frozenset(
    {
        "ApiVersionsResponse",
        "FetchResponse",
        "BrokerRegistrationResponse",
        "BrokerHeartbeatResponse",
        "EnvelopeResponse",
        "CreateTopicsResponse",
        "AllocateProducerIdsResponse",
    }
)
KAFKA_3_9 = Story(
    "kafka-3.9/broker-lifecycle-default",
    CAPTURES / "broker-lifecycle-default.jsonl",
    CAPTURES / "metadata-log-default",
    "3.9-IV0",
    kafka_4_3=False,
    answers=PLAIN_STORY_ANSWERS,
    min_answered=40,
)
STATIC39 = Story(
    "kafka-4.3/broker-lifecycle-static39",
    CAPTURES_4_3 / "broker-lifecycle-static39" / "broker-lifecycle-static39.jsonl",
    CAPTURES_4_3 / "broker-lifecycle-static39" / "metadata-log-1",
    "3.9-IV0",
    kafka_4_3=True,
    answers=PLAIN_STORY_ANSWERS | {"DescribeClusterResponse"},
    min_answered=80,
)
LIFECYCLE = Story(
    "kafka-4.3/broker-lifecycle",
    CAPTURES_4_3 / "broker-lifecycle" / "broker-lifecycle.jsonl",
    CAPTURES_4_3 / "broker-lifecycle" / "metadata-log-1",
    None,
    kafka_4_3=True,
    answers=PLAIN_STORY_ANSWERS | {"DescribeClusterResponse", "DescribeQuorumResponse"},
    min_answered=120,
)
STORIES = [KAFKA_3_9, STATIC39, LIFECYCLE]


# What a genuine Kafka controller answered its broker's ApiVersions: kwire serves both
# release lines, so it offers the union of the 3.9.0 and 4.3.1 controllers' ranges and features.
STORY_43 = LIFECYCLE.frames


def genuine_api_versions(frames: Path) -> dict[str, Any]:
    for line in frames.read_text().splitlines():
        frame = json.loads(line)
        if frame["dir"] == "response" and frame["api_key"] == 18:
            _, answer = decode_response(bytes.fromhex(frame["hex"]), 18, frame["api_version"])
            return plain(answer)
    raise AssertionError(f"no ApiVersions answer in {frames}")


def union_of_ranges(
    first: list[dict[str, Any]], second: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    merged: dict[Any, dict[str, Any]] = {}
    for entry in [*first, *second]:
        known = merged.setdefault(entry[key], dict(entry))
        known["min_version"] = min(known["min_version"], entry["min_version"])
        known["max_version"] = max(known["max_version"], entry["max_version"])
    return list(merged.values())


CONTROLLER_STREAM = 0  # the genuine controller registering itself: kwire does that inside
BROKER_ID = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plain(value: Any) -> Any:
    """A message as nested plain data, for field-by-field comparison."""
    if isinstance(value, Message) or hasattr(type(value), "FIELDS"):
        return {f.attribute: plain(getattr(value, f.attribute)) for f in type(value).FIELDS}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def record_kinds(data: bytes) -> list[tuple[int, str, int, Message | None]]:
    """(offset, record class, record version, record) of every record of a log segment."""
    kinds: list[tuple[int, str, int, Message | None]] = []
    for batch in decode_batches(data):
        for record in batch.records:
            offset = batch.base_offset + record.offset_delta
            if batch.is_control:
                kinds.append((offset, "control", 0, None))
                continue
            key, version, body = unframe_metadata_record(record.value or b"")
            message = METADATA_RECORDS[key].decode(body, version)
            kinds.append((offset, type(message).__name__, version, message))
    return kinds


Kinds = list[tuple[int, str, int, Message | None]]


def events(kinds: Kinds, story: Story) -> Kinds:
    """The records but NoOps (they count time) and control records; and, against a 4.3.1
    log, but ZkMigrationStateRecord (Kafka 4.x writes none; kwire at 3.9-IV0 writes it as
    3.9.0 does)."""
    dropped = {"NoOpRecord", "control"}
    if story.kafka_4_3:
        dropped.add("ZkMigrationStateRecord")
    return [kind for kind in kinds if kind[1] not in dropped]


def without_time(kinds: Kinds, story: Story) -> list[tuple[str, int]]:
    """(record class, version) of each event."""
    return [(kind, version) for _, kind, version, _ in events(kinds, story)]


class Conversation:
    """kwire's side of the replay: connections per captured stream, and the broker's view."""

    def __init__(self, port: int, node: ControllerNode, story: Story) -> None:
        self.port = port
        self.node = node
        self.story = story
        self.clients: dict[int, KafkaClient] = {}
        self.fetched_end = 0
        self.fetched_epoch = 0
        self.last_fetch_offset = 0
        self.high_watermark = -1  # the last one kwire told the broker's fetcher
        self.genuine_broker_epoch = -1
        self.broker_epoch = -1
        self.started_ms = int(time.time() * 1000)
        self.checked: dict[str, int] = {}
        self.genuine_events = [o for o, *_ in events(record_kinds(story.log.read_bytes()), story)]

    async def client(self, stream: int, client_id: str) -> KafkaClient:
        if stream not in self.clients:
            self.clients[stream] = await KafkaClient.connect("127.0.0.1", self.port, client_id)
        return self.clients[stream]

    def our_records(self) -> list[tuple[int, str, int, Message | None]]:
        return record_kinds(self.node.log.read(0, max_bytes=64 << 20))

    def offset_of(self, kind: str, **fields: object) -> int:
        for offset, name, _, message in self.our_records():
            if name == kind and all(getattr(message, k) == v for k, v in fields.items()):
                return offset
        raise AssertionError(f"kwire's log has no {kind} with {fields}")

    def published_offset(self, genuine_offset: int) -> int:
        """The offset of kwire's log a broker has published when it had published the
        genuine log to ``genuine_offset``: just before kwire's next event after the n events
        the broker had seen (NoOps aside), and never beyond what it has fetched from kwire."""
        seen = sum(1 for offset in self.genuine_events if offset <= genuine_offset)
        ours = [offset for offset, *_ in events(self.our_records(), self.story)]
        fetched = max(self.fetched_end - 1, 0)
        return min(ours[seen] - 1, fetched) if seen < len(ours) else fetched

    def a_time_of_this_run(self, ms: int) -> bool:
        return self.started_ms <= ms <= int(time.time() * 1000)


@asynccontextmanager
async def kwire_server(
    directory: Path, story: Story, release_version: str | None
) -> AsyncIterator[Conversation]:
    """A kwire server on a free port of 127.0.0.1, formatted with the story's cluster id at
    ``release_version`` (4.3.1's default, 4.3-IV0, for None), serving until the block ends."""
    cluster_id = read_meta_properties(story.log_dir / "meta.properties").cluster_id
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(directory / "controller-1"),
            "num.partitions": "1",
            # NoOps every 100 ms instead of 500: long polls end sooner, nothing else changes.
            "metadata.max.idle.interval.ms": "100",
        }
    )
    formatted = format_storage(config, cluster_id, release_version)
    if release_version == story.release_version:
        # Formatted as the genuine controller was: the same bootstrap records.
        genuine_bootstrap = read_bootstrap_checkpoint(story.log_dir / "bootstrap.checkpoint")
        assert [(plain(record), version) for record, version in formatted.bootstrap] == [
            (plain(record), version) for record, version in genuine_bootstrap
        ]
    node = ControllerNode(build_settings(config), seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(
                node, "127.0.0.1", port, max_request_bytes=1 << 20, task_status=task_status
            )
        )
        talk = Conversation(port, node, story)
        yield talk
        for client in talk.clients.values():
            await client.aclose()
        nursery.cancel_scope.cancel()
    node.close()


def rewrite(request: Message, api_key: int, talk: Conversation) -> None:
    """Put kwire's values where the genuine request carried the genuine log's."""
    if api_key == 1:
        partition = request.topics[0].partitions[0]  # type: ignore[attr-defined]
        partition.fetch_offset = talk.fetched_end
        partition.last_fetched_epoch = talk.fetched_epoch
        if partition.high_watermark != -1:  # Fetch v18 (KIP-1166): the fetcher's high watermark
            partition.high_watermark = talk.high_watermark
        talk.last_fetch_offset = talk.fetched_end
    elif api_key == 63:
        request.broker_epoch = talk.broker_epoch  # type: ignore[attr-defined]
        request.current_metadata_offset = talk.published_offset(  # type: ignore[attr-defined]
            request.current_metadata_offset  # type: ignore[attr-defined]
        )
    elif api_key == 67:
        request.broker_epoch = talk.broker_epoch  # type: ignore[attr-defined]


def compare(
    api_key: int, request: Message, genuine: Message, ours: Message, talk: Conversation
) -> None:
    want, got = plain(genuine), plain(ours)
    if api_key == 18:
        epoch = got.pop("finalized_features_epoch")
        assert 0 <= epoch < talk.node.log.end_offset
        want.pop("finalized_features_epoch")
        # Kafka lists finalized features in a Java HashMap's order: compared by name.
        for answer in (want, got):
            answer["finalized_features"].sort(key=lambda f: f["name"])
        other = genuine_api_versions(KAFKA_3_9.frames if talk.story.kafka_4_3 else STORY_43)
        want["api_keys"] = sorted(
            union_of_ranges(want["api_keys"], other["api_keys"], "api_key"),
            key=lambda k: k["api_key"],
        )
        got["api_keys"] = sorted(got["api_keys"], key=lambda k: k["api_key"])
        want["supported_features"] = sorted(
            union_of_ranges(want["supported_features"], other["supported_features"], "name"),
            key=lambda f: f["name"],
        )
        got["supported_features"] = sorted(got["supported_features"], key=lambda f: f["name"])
    elif api_key == 1:
        g_part, o_part = want["responses"][0]["partitions"][0], got["responses"][0]["partitions"][0]
        if o_part["records"]:
            batches = list(decode_batches(o_part["records"]))
            talk.fetched_end = batches[-1].next_offset
            talk.fetched_epoch = batches[-1].partition_leader_epoch
        for part in (g_part, o_part):
            part.pop("records")
        g_hw, o_hw = g_part.pop("high_watermark"), o_part.pop("high_watermark")
        assert (g_hw == -1) == (o_hw == -1) and o_hw <= talk.node.log.end_offset
        talk.high_watermark = o_hw
        for endpoint in want["node_endpoints"]:
            endpoint["port"] = talk.port
    elif api_key == 60:
        for broker in want["brokers"]:  # DescribeCluster of the controllers (endpointType 2)
            broker["port"] = talk.port
    elif api_key == 55:
        compare_describe_quorum(want, got, talk)
    elif api_key == 62:
        talk.genuine_broker_epoch = want.pop("broker_epoch")
        talk.broker_epoch = got.pop("broker_epoch")
        assert talk.broker_epoch == talk.offset_of("RegisterBrokerRecord", broker_id=BROKER_ID)
    elif api_key == 58:
        inner = unwrap_envelope(request).header  # type: ignore[arg-type]
        g_inner, o_inner = want.pop("response_data"), got.pop("response_data")
        key, version = inner.request_api_key, inner.request_api_version
        compare(
            key,
            request,
            decode_response(g_inner, key, version)[1],
            decode_response(o_inner, key, version)[1],
            talk,
        )
    elif api_key == 19:
        compare_create_topics(genuine, ours, talk)
        return
    assert_same(got, want, f"api key {api_key}")
    talk.checked[type(ours).__name__] = talk.checked.get(type(ours).__name__, 0) + 1


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Every path where kwire's answer (plain data) differs from the genuine one."""
    if isinstance(got, dict) and isinstance(want, dict) and got.keys() == want.keys():
        return [d for k in want for d in differences(got[k], want[k], f"{path}.{k}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    return [] if got == want else [f"{path}: genuine {want!r} != kwire {got!r}"]


def assert_same(got: Any, want: Any, what: str) -> None:
    found = differences(got, want)
    if found:
        raise AssertionError(f"{what}: " + "; ".join(found))


def compare_describe_quorum(want: dict[str, Any], got: dict[str, Any], talk: Conversation) -> None:
    """DescribeQuorum (KIP-595, KIP-853): offsets within kwire's log, times of this run."""
    end = talk.node.log.end_offset
    for g_part, o_part in zip(
        want["topics"][0]["partitions"], got["topics"][0]["partitions"], strict=True
    ):
        g_hw, o_hw = g_part.pop("high_watermark"), o_part.pop("high_watermark")
        assert (g_hw == -1) == (o_hw == -1) and 0 <= o_hw <= end
        for kind in ("current_voters", "observers"):
            for g_replica, o_replica in zip(g_part[kind], o_part[kind], strict=True):
                g_leo, o_leo = g_replica.pop("log_end_offset"), o_replica.pop("log_end_offset")
                if kind == "observers":  # where the broker last asked kwire from
                    assert o_leo == talk.last_fetch_offset, (o_leo, talk.last_fetch_offset)
                else:
                    assert (g_leo == -1) == (o_leo == -1) and o_hw <= o_leo <= end
                for stamp in ("last_fetch_timestamp", "last_caught_up_timestamp"):
                    g_ms, o_ms = g_replica.pop(stamp), o_replica.pop(stamp)
                    assert o_ms == -1 if g_ms == -1 else talk.a_time_of_this_run(o_ms), stamp
    for node in want["nodes"]:
        for listener in node["listeners"]:
            listener["port"] = talk.port


def compare_create_topics(genuine: Message, ours: Message, talk: Conversation) -> None:
    assert isinstance(genuine, CreateTopicsResponse) and isinstance(ours, CreateTopicsResponse)
    want, got = plain(genuine), talk.story.release_rule("CreateTopics", plain(ours))
    for g_topic, o_topic in zip(want["topics"], got["topics"], strict=True):
        g_topic.pop("topic_id")
        our_id = o_topic.pop("topic_id")
        assert our_id == talk.node.controller.topics_by_name[o_topic["name"]].topic_id
    assert_same(got, want, "CreateTopics")
    talk.checked["CreateTopicsResponse"] = talk.checked.get("CreateTopicsResponse", 0) + 1


async def ask(talk: Conversation, request_frame: dict[str, Any]) -> tuple[Message, Message]:
    """Send one captured request to kwire, rewritten; (the request, kwire's answer)."""
    header, request = decode_request(bytes.fromhex(request_frame["hex"]))
    rewrite(request, header.request_api_key, talk)
    client = await talk.client(request_frame["stream"], header.client_id or "")
    return request, await client.request(request, header.request_api_version)
