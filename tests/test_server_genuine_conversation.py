"""kwire answers a genuine broker's conversation as the genuine Kafka 3.9 controller did.

The broker's requests from `broker-lifecycle-default.jsonl` (the plain story: register,
unfence, create topics, allocate producer ids, controlled shutdown) are sent, in their
captured order and on their captured connections, to a kwire server formatted with the
same cluster id. Every answer is compared with the genuine one field by field. Values that
differ by nature are compared by rule, never skipped:

- broker epoch: the offset of kwire's own RegisterBrokerRecord;
- topic id: the id in kwire's own TopicRecord for that name;
- high watermark: -1 exactly where the genuine one is -1, else within kwire's log;
- node endpoints: the same node and host, kwire's port;
- finalized features epoch: an offset within kwire's committed log.

Requests that carry the broker's view of the log are rewritten by rule: a heartbeat's
broker epoch becomes kwire's, its metadata offset what the broker has fetched from kwire;
a fetch asks from where the broker's fetching of kwire has reached.
Afterwards kwire's log holds the same kinds of records, in the same order, as the genuine
controller's `metadata-log-default/` (NoOp records aside: they count time, not events).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from kwire.log import read_meta_properties
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.create_topics import CreateTopicsResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.records import decode_batches, unframe_metadata_record
from kwire.server.__main__ import build_settings
from kwire.server.client import KafkaClient
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9"
STORY = CAPTURES / "broker-lifecycle-default.jsonl"
GENUINE_LOG = (
    CAPTURES / "metadata-log-default" / "__cluster_metadata-0" / "00000000000000000000.log"
)

pytestmark = [
    pytest.mark.skipif(
        not STORY.exists(), reason=f"no genuine Kafka capture at {STORY} (../shared is absent)"
    ),
    pytest.mark.usefixtures("codec_backend"),
]

# What a genuine Kafka 4.3.1 controller answered its broker's ApiVersions: kwire serves both
# release lines, so it offers the union of the two controllers' ranges and features.
STORY_43 = CAPTURES.parent / "kafka-4.3" / "broker-lifecycle" / "broker-lifecycle.jsonl"


def genuine_43_api_versions() -> dict[str, Any]:
    for line in STORY_43.read_text().splitlines():
        frame = json.loads(line)
        if frame["dir"] == "response" and frame["api_key"] == 18:
            _, answer = decode_response(bytes.fromhex(frame["hex"]), 18, frame["api_version"])
            return plain(answer)
    raise AssertionError(f"no ApiVersions answer in {STORY_43}")


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


def record_kinds(data: bytes) -> list[tuple[int, str, Message | None]]:
    kinds: list[tuple[int, str, Message | None]] = []
    for batch in decode_batches(data):
        for record in batch.records:
            offset = batch.base_offset + record.offset_delta
            if batch.is_control:
                kinds.append((offset, "control", None))
                continue
            key, version, body = unframe_metadata_record(record.value or b"")
            message = METADATA_RECORDS[key].decode(body, version)
            kinds.append((offset, type(message).__name__, message))
    return kinds


class Conversation:
    """kwire's side of the replay: connections per captured stream, and the broker's view."""

    def __init__(self, port: int, node: ControllerNode) -> None:
        self.port = port
        self.node = node
        self.clients: dict[int, KafkaClient] = {}
        self.fetched_end = 0
        self.fetched_epoch = 0
        self.genuine_broker_epoch = -1
        self.broker_epoch = -1
        self.checked: dict[str, int] = {}

    async def client(self, stream: int, client_id: str) -> KafkaClient:
        if stream not in self.clients:
            self.clients[stream] = await KafkaClient.connect("127.0.0.1", self.port, client_id)
        return self.clients[stream]

    def our_records(self) -> list[tuple[int, str, Message | None]]:
        return record_kinds(self.node.log.read(0, max_bytes=64 << 20))

    def offset_of(self, kind: str, **fields: object) -> int:
        for offset, name, message in self.our_records():
            if name == kind and all(getattr(message, k) == v for k, v in fields.items()):
                return offset
        raise AssertionError(f"kwire's log has no {kind} with {fields}")


@pytest.fixture
async def conversation(tmp_path: Path) -> AsyncIterator[Conversation]:
    cluster_id = read_meta_properties(
        CAPTURES / "metadata-log-default" / "meta.properties"
    ).cluster_id
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(tmp_path / "controller-1"),
            # NoOps every 100 ms instead of 500: long polls end sooner, nothing else changes.
            "metadata.max.idle.interval.ms": "100",
        }
    )
    format_storage(config, cluster_id, "3.9-IV0")
    node = ControllerNode(build_settings(config), seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(
                node, "127.0.0.1", port, max_request_bytes=1 << 20, task_status=task_status
            )
        )
        yield Conversation(port, node)
        nursery.cancel_scope.cancel()
    node.close()


def rewrite(request: Message, api_key: int, talk: Conversation) -> None:
    """Put kwire's values where the genuine request carried the genuine log's."""
    if api_key == 1:
        partition = request.topics[0].partitions[0]  # type: ignore[attr-defined]
        partition.fetch_offset = talk.fetched_end
        partition.last_fetched_epoch = talk.fetched_epoch
    elif api_key == 63:
        request.broker_epoch = talk.broker_epoch  # type: ignore[attr-defined]
        request.current_metadata_offset = max(talk.fetched_end - 1, 0)  # type: ignore[attr-defined]
    elif api_key == 67:
        request.broker_epoch = talk.broker_epoch  # type: ignore[attr-defined]


def compare(api_key: int, genuine: Message, ours: Message, talk: Conversation) -> None:
    want, got = plain(genuine), plain(ours)
    if api_key == 18:
        epoch = got.pop("finalized_features_epoch")
        assert 0 <= epoch < talk.node.log.end_offset
        want.pop("finalized_features_epoch")
        other = genuine_43_api_versions()
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
        for endpoint in want["node_endpoints"]:
            endpoint["port"] = talk.port
    elif api_key == 62:
        talk.genuine_broker_epoch = want.pop("broker_epoch")
        talk.broker_epoch = got.pop("broker_epoch")
        assert talk.broker_epoch == talk.offset_of("RegisterBrokerRecord", broker_id=2)
    elif api_key in (19, 58):
        if api_key == 58:
            g_inner, o_inner = want.pop("response_data"), got.pop("response_data")
            compare_create_topics(
                decode_response(g_inner, 19, 7)[1], decode_response(o_inner, 19, 7)[1], talk
            )
        else:
            compare_create_topics(genuine, ours, talk)
            return
    assert got == want, f"api key {api_key}"
    talk.checked[type(ours).__name__] = talk.checked.get(type(ours).__name__, 0) + 1


def compare_create_topics(genuine: Message, ours: Message, talk: Conversation) -> None:
    assert isinstance(genuine, CreateTopicsResponse) and isinstance(ours, CreateTopicsResponse)
    want, got = plain(genuine), plain(ours)
    for g_topic, o_topic in zip(want["topics"], got["topics"], strict=True):
        g_topic.pop("topic_id")
        our_id = o_topic.pop("topic_id")
        assert our_id == talk.node.controller.topics_by_name[o_topic["name"]].topic_id
    assert got == want
    talk.checked["CreateTopicsResponse"] = talk.checked.get("CreateTopicsResponse", 0) + 1


async def test_kwire_answers_the_genuine_broker_as_kafka_did(conversation: Conversation) -> None:
    talk = conversation
    frames = [json.loads(line) for line in STORY.read_text().splitlines()]
    pending: dict[tuple[int, int], dict[str, Any]] = {}
    answered = 0
    with trio.fail_after(60):
        for frame in frames:
            key = (frame["stream"], frame["correlation_id"])
            if frame["dir"] == "request":
                pending[key] = frame
                continue
            request_frame = pending.pop(key, None)
            if request_frame is None or frame["stream"] == CONTROLLER_STREAM:
                continue  # answered before the capture began, or the controller's own
            header, request = decode_request(bytes.fromhex(request_frame["hex"]))
            api_key, version = header.request_api_key, header.request_api_version
            rewrite(request, api_key, talk)
            client = await talk.client(frame["stream"], header.client_id or "")
            ours = await client.request(request, version)
            _, genuine = decode_response(bytes.fromhex(frame["hex"]), api_key, version)
            compare(api_key, genuine, ours, talk)
            answered += 1
    assert answered > 40
    assert set(talk.checked) >= {
        "ApiVersionsResponse",
        "FetchResponse",
        "BrokerRegistrationResponse",
        "BrokerHeartbeatResponse",
        "EnvelopeResponse",
        "CreateTopicsResponse",
        "AllocateProducerIdsResponse",
    }

    # The same events, in the same order, as in the genuine controller's log.
    genuine_kinds = [k for _, k, _ in record_kinds(GENUINE_LOG.read_bytes()) if k != "NoOpRecord"]
    ours_all = [k for _, k, _ in talk.our_records()]
    assert "NoOpRecord" in ours_all  # time passes in kwire's log too
    our_kinds = [k for k in ours_all if k != "NoOpRecord"]
    assert our_kinds == genuine_kinds[: len(our_kinds)]
    assert len(our_kinds) >= len(genuine_kinds) - 2, genuine_kinds[len(our_kinds) :]
    for client in talk.clients.values():
        await client.aclose()
