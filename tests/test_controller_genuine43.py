"""Genuine Kafka 4.3.1 frames fed to kwire (../shared/captures/kafka-4.3): a 4.3.1 broker's
BrokerRegistration v4, BrokerHeartbeat v2 (CordonedLogDirs), CreateTopics v7 (in an
Envelope), AllocateProducerIds and ListPartitionReassignments, each after the state the
genuine controller had, built by replaying its own log up to that request; and the
genuine DescribeCluster v2 to a kwire server.

Compared by rule, as values that differ by nature: topic ids (random). At 3.9-IV0 kwire
answers as Kafka 3.9.0's controller, whose CreateTopics lists Kafka 3.9's topic configs
(three more, and message.timestamp.after.max.ms at 3.9's default): the names both list
must agree in value and source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from server_harness import HOST, KwireServer
from story_replay import GenuineTopicIds
from test_controller_genuine import (
    Exchange,
    LoggedRecord,
    fields_of,
    read_conversation,
    read_metadata_log,
)

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.metadata_version import MetadataVersion
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.server.client import KafkaClient

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures" / "kafka-4.3"
BOOTSTRAP = {"BeginTransactionRecord", "FeatureLevelRecord", "EndTransactionRecord", "ConfigRecord"}
# Kafka 3.9's LogConfig lists these; Kafka 4.3.1's does not (KIP-724, KIP-937).
ONLY_IN_3_9 = {
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
}
# KIP-1028 changed its default in Kafka 4.0 (3.9: Long.MAX_VALUE).
DEFAULT_CHANGED_IN_4_0 = {"message.timestamp.after.max.ms": ("9223372036854775807", "3600000")}


NOOP_RACE_MS = 5


def capture(name: str) -> Path:
    path = CAPTURES / name
    if not (path / f"{name}.jsonl").exists():
        pytest.skip(f"no capture at {path}")
    return path


def metadata_log(path: Path) -> list[LoggedRecord]:
    return read_metadata_log(
        path / "metadata-log-1" / "__cluster_metadata-0" / "00000000000000000000.log"
    )


def expected_answer(exchange: Exchange, ours: Any, records: list[Any]) -> Any:
    expected = fields_of(exchange.response)
    expected.pop("throttle_time_ms", None)
    name = type(exchange.request).__name__
    if name == "CreateTopicsRequest":
        created = {r.name: r.topic_id for r in records if isinstance(r, TopicRecord)}
        for topic in expected["topics"]:
            topic["topic_id"] = created[topic["name"]]
    return expected


def our_answer(exchange: Exchange, ours: Any, level: int) -> Any:
    actual = fields_of(ours)
    actual.pop("throttle_time_ms", None)
    if type(exchange.request).__name__ == "CreateTopicsRequest" and level < 22:
        for topic in actual["topics"]:
            kept = []
            for config in topic["configs"]:
                if config["name"] in ONLY_IN_3_9:
                    continue
                old_new = DEFAULT_CHANGED_IN_4_0.get(config["name"])
                if old_new is not None:
                    assert config["value"] == old_new[0]
                    config["value"] = old_new[1]
                kept.append(config)
            topic["configs"] = kept
    return actual


def replay_story(name: str, level: int) -> list[tuple[str, int]]:
    """Feed every controller request of the capture to a controller whose state is the
    genuine log's up to that request; compare each answer and every record written.
    Returns (request name, records written) per request."""
    path = capture(name)
    genuine = metadata_log(path)
    exchanges = read_conversation(path / f"{name}.jsonl")
    cluster_id = next(e.request.cluster_id for e in exchanges if hasattr(e.request, "cluster_id"))
    # kwire draws the genuine topic ids: record orders follow the ids' hashes.
    ids = [r.record.topic_id for r in genuine if isinstance(r.record, TopicRecord)]
    controller = QuorumController(
        node_id=1, cluster_id=cluster_id, config=ControllerConfig(), rng=GenuineTopicIds(ids, 7)
    )
    pos = 0
    while type(genuine[pos].record).__name__ in BOOTSTRAP:
        controller.replay(genuine[pos].record, genuine[pos].version, genuine[pos].offset)
        pos += 1
    assert controller.image.metadata_version_level == level
    controller.activate(genuine[pos].timestamp_ms, genuine[pos].offset)
    topic_ids: dict[Any, Any] = {}
    story = []
    for exchange in exchanges:
        # The NoOps the genuine controller wrote before this request arrived, or in the
        # same few milliseconds just before the request's own records (its NoOp timer
        # and the request raced: the NoOp went first).
        while isinstance(genuine[pos].record, NoOpRecord) and (
            genuine[pos].timestamp_ms < exchange.time_ms
            or (
                genuine[pos].timestamp_ms <= exchange.time_ms + NOOP_RACE_MS
                and not isinstance(genuine[pos + 1].record, NoOpRecord)
            )
        ):
            controller.replay(genuine[pos].record, genuine[pos].version, genuine[pos].offset)
            pos += 1
        context = RequestContext(
            api_version=exchange.api_version,
            client_id=exchange.client_id,
            envelope=exchange.via_envelope,
        )
        result = controller.handle(exchange.request, context, genuine[pos].offset, exchange.time_ms)
        records = [rv.record for rv in result.records]
        label = f"{type(exchange.request).__name__} at {exchange.time_ms}"
        assert our_answer(exchange, result.response, level) == expected_answer(
            exchange, result.response, records
        ), label
        for rv in result.records:
            logged = genuine[pos]
            expected = fields_of(logged.record)
            if isinstance(logged.record, TopicRecord):
                topic_ids[logged.record.topic_id] = rv.record.topic_id
            if "topic_id" in expected:
                expected["topic_id"] = topic_ids[expected["topic_id"]]
            assert (type(rv.record), rv.version) == (type(logged.record), logged.version), label
            assert fields_of(rv.record) == expected, f"{label}: offset {logged.offset}"
            pos += 1
        story.append((type(exchange.request).__name__, len(records)))
    assert all(isinstance(g.record, NoOpRecord) for g in genuine[pos:])
    return story


def test_a_4_3_broker_at_3_9_iv0_gets_the_genuine_answers_and_records() -> None:
    story = replay_story("broker-lifecycle-static39", 21)
    # RegisterBrokerRecord v3; heartbeats' CordonedLogDirs (null, here) write nothing; one
    # unfencing, a topic of 6 partitions, a producer id block, the controlled shutdown
    # (1 + 6 records) and the fencing.
    assert [n for n in story if n[1]] == [
        ("ControllerRegistrationRequest", 1),
        ("BrokerRegistrationRequest", 1),
        ("BrokerHeartbeatRequest", 1),
        ("CreateTopicsRequest", 7),
        ("AllocateProducerIdsRequest", 1),
        ("BrokerHeartbeatRequest", 7),
        ("BrokerHeartbeatRequest", 1),
    ]


@pytest.mark.skipif(
    30 not in MetadataVersion._value2member_map_,
    reason="kwire.metadata_version has no level 30 (4.3-IV0) yet",
)
def test_a_4_3_broker_at_4_3_iv0_gets_the_genuine_answers_and_records() -> None:
    story = replay_story("broker-lifecycle", 30)
    # The first heartbeat with CordonedLogDirs=[] writes BrokerRegistrationChangeRecord v3.
    heartbeats = [n for n in story if n[0] == "BrokerHeartbeatRequest" and n[1]]
    assert heartbeats[:2] == [("BrokerHeartbeatRequest", 1), ("BrokerHeartbeatRequest", 1)]


def describe_cluster_exchange() -> tuple[Any, Any]:
    import json

    path = capture("broker-lifecycle") / "broker-lifecycle.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    request = next(d for d in lines if d["dir"] == "request" and d["api_key"] == 60)
    answer = next(
        d
        for d in lines
        if d["dir"] == "response"
        and d["stream"] == request["stream"]
        and d["correlation_id"] == request["correlation_id"]
    )
    _, body = decode_request(bytes.fromhex(request["hex"]))
    _, response = decode_response(bytes.fromhex(answer["hex"]), 60, 2)
    return body, response


async def test_the_genuine_describe_cluster_v2_gets_the_genuine_answer(tmp_path: Path) -> None:
    """AuthHelper.computeDescribeClusterResponse on a controller: the controllers, each
    with IsFenced false (v2); IncludeFencedBrokers means nothing there."""
    request, genuine = describe_cluster_exchange()
    assert isinstance(request, DescribeClusterRequest)
    with KwireServer.create(tmp_path / "kwire") as server:
        with trio.fail_after(20):
            client = await KafkaClient.connect(HOST, server.port)
            ours = await client.request(request, 2)
            await client.aclose()
    assert isinstance(ours, DescribeClusterResponse)
    expected = fields_of(genuine)
    # By nature: the cluster id, the node id and port of the controller answering.
    expected["cluster_id"] = server.cluster_id
    expected["controller_id"] = ours.controller_id
    (broker,) = expected["brokers"]
    broker["broker_id"], broker["port"] = ours.controller_id, server.port
    assert fields_of(ours) == expected
    assert ours.brokers[0].is_fenced is False
