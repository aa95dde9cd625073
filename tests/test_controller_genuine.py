"""The controller against what a genuine Kafka 3.9 controller wrote and answered.

Two checks: replaying every record of the genuine metadata log gives the state the story
describes; and feeding the genuine conversation (controller registration, broker
registration, heartbeats, CreateTopics, AllocateProducerIds, controlled shutdown) through
``QuorumController.handle`` gives the genuine responses and the genuine records, offset for
offset. Values that are random by nature (topic ids) are checked by rule: the response
must name the id of the TopicRecord the controller wrote.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.envelope import EnvelopeRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures" / "kafka-3.9"
DEFAULT_LOG = (
    CAPTURES / "metadata-log-default" / "__cluster_metadata-0" / "00000000000000000000.log"
)
CONVERSATION = CAPTURES / "broker-lifecycle-default.jsonl"
CONTROLLER_APIS = {19, 62, 63, 67, 70}

pytestmark = pytest.mark.skipif(
    not DEFAULT_LOG.exists() or not CONVERSATION.exists(), reason=f"no captures at {CAPTURES}"
)


@dataclasses.dataclass(frozen=True)
class LoggedRecord:
    offset: int
    timestamp_ms: int
    record: Message
    version: int


def read_metadata_log(path: Path) -> list[LoggedRecord]:
    try:
        from kwire.records import decode_batches, unframe_metadata_record
    except ImportError:  # pragma: no cover - depends on the records package
        pytest.skip("kwire.records has no batch reader yet")
    out = []
    for batch in decode_batches(path.read_bytes()):
        if batch.is_control:
            continue
        for r in batch.records:
            api_key, version, body = unframe_metadata_record(r.value)
            record = METADATA_RECORDS[api_key].decode(body, version)
            out.append(LoggedRecord(batch.offset_of(r), batch.timestamp_of(r), record, version))
    return out


def meta_properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def fields_of(message: Any) -> Any:
    """A message as plain data, for equality with helpful diffs."""
    if dataclasses.is_dataclass(message):
        return {
            f.name: fields_of(getattr(message, f.name))
            for f in dataclasses.fields(message)
            if f.name != "unknown_tagged_fields"
        }
    if isinstance(message, list):
        return [fields_of(m) for m in message]
    return message


# -- replaying the genuine log ---------------------------------------------------------------


@pytest.mark.parametrize("log_dir", ["metadata-log-default", "metadata-log"])
def test_replaying_the_genuine_log_rebuilds_the_story(log_dir: str) -> None:
    path = CAPTURES / log_dir / "__cluster_metadata-0" / "00000000000000000000.log"
    if not path.exists():
        pytest.skip(f"no {path}")
    records = read_metadata_log(path)
    cluster_id = meta_properties(path.parents[1] / "meta.properties")["cluster.id"]
    controller = QuorumController(
        node_id=1, cluster_id=cluster_id, config=ControllerConfig(), rng=random.Random(0)
    )
    for logged in records:
        controller.replay(logged.record, logged.version, logged.offset)

    assert controller.last_applied_offset == records[-1].offset
    assert controller.finalized_features()[1] == {"metadata.version": 21}

    registrations = [r for r in records if type(r.record).__name__ == "RegisterBrokerRecord"]
    assert registrations, "the story registers a broker"
    last = registrations[-1]
    broker = controller.brokers[last.record.broker_id]
    assert broker.epoch == last.offset == last.record.broker_epoch
    assert broker.listeners[0].port == last.record.end_points[0].port
    # The story ends with a controlled shutdown: the broker is fenced, leads nothing.
    assert broker.fenced
    assert broker.in_controlled_shutdown
    assert not controller.image.has_leaderships(broker.broker_id)

    controllers = [
        r.record for r in records if type(r.record).__name__ == "RegisterControllerRecord"
    ]
    assert set(controller.controllers) == {c.controller_id for c in controllers}

    topic_records = [r.record for r in records if isinstance(r.record, TopicRecord)]
    assert set(controller.topics_by_name) == {t.name for t in topic_records}
    for topic_record in topic_records:
        topic = controller.topics_by_name[topic_record.name]
        partition_records = [
            r.record
            for r in records
            if type(r.record).__name__ == "PartitionRecord"
            and r.record.topic_id == topic_record.topic_id
        ]
        assert sorted(topic.partitions) == sorted(p.partition_id for p in partition_records)
        for partition in topic.partitions.values():
            assert partition.leader == -1  # moved away during the controlled shutdown
            assert partition.leader_epoch == 1
            assert partition.isr == (last.record.broker_id,)  # the last ISR member stays

    producer_ids = [r.record for r in records if type(r.record).__name__ == "ProducerIdsRecord"]
    assert controller.image.next_producer_id == producer_ids[-1].next_producer_id
    configs = [r.record for r in records if type(r.record).__name__ == "ConfigRecord"]
    for config in configs:
        assert controller.image.topic_config(config.resource_name)[config.name] == config.value


# -- the conversation ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exchange:
    time_ms: int
    request: Message
    api_version: int
    client_id: str
    via_envelope: bool
    response: Message


def read_conversation(path: Path) -> list[Exchange]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    responses = {(d["stream"], d["correlation_id"]): d for d in lines if d.get("dir") == "response"}
    exchanges = []
    for d in lines:
        if d.get("dir") != "request" or d["api_key"] not in CONTROLLER_APIS | {58}:
            continue
        header, body = decode_request(bytes.fromhex(d["hex"]))
        answer = responses[(d["stream"], d["correlation_id"])]
        _, response = decode_response(bytes.fromhex(answer["hex"]), d["api_key"], d["api_version"])
        via_envelope = isinstance(body, EnvelopeRequest)
        if via_envelope:
            header, body = decode_request(bytes(body.request_data))
            _, response = decode_response(
                bytes(response.response_data), header.request_api_key, header.request_api_version
            )
        exchanges.append(
            Exchange(
                time_ms=int(d["t"] * 1000),
                request=body,
                api_version=header.request_api_version,
                client_id=header.client_id or "",
                via_envelope=via_envelope,
                response=response,
            )
        )
    return exchanges


def test_genuine_conversation_gets_genuine_responses_and_records() -> None:
    genuine = read_metadata_log(DEFAULT_LOG)
    by_offset = {r.offset: r for r in genuine}
    exchanges = read_conversation(CONVERSATION)
    assert {type(e.request).__name__ for e in exchanges} >= {
        "ControllerRegistrationRequest",
        "BrokerRegistrationRequest",
        "BrokerHeartbeatRequest",
        "CreateTopicsRequest",
        "AllocateProducerIdsRequest",
    }
    cluster_id = next(e.request.cluster_id for e in exchanges if hasattr(e.request, "cluster_id"))
    controller = QuorumController(
        node_id=1, cluster_id=cluster_id, config=ControllerConfig(), rng=random.Random(7)
    )

    # Activation: the bootstrap records follow the leader-change record at offset 0.
    first = genuine[0]
    bootstrap = controller.activate(first.timestamp_ms, first.offset)
    assert bootstrap is not None
    written: list[tuple[int, Message, int]] = [
        (first.offset + i, rv.record, rv.version) for i, rv in enumerate(bootstrap.records)
    ]

    # Replay the story in time order: each genuine NoOp is a timer firing, each request
    # an arrival. NoOps are forced at the genuine offsets, so offsets line up exactly.
    events: list[tuple[int, int, Any]] = [
        (r.timestamp_ms, 0, r) for r in genuine if isinstance(r.record, NoOpRecord)
    ] + [(e.time_ms, 1, e) for e in exchanges]
    events.sort(key=lambda event: (event[0], event[1]))
    compared_responses = 0
    for time_ms, _, event in events:
        next_offset = written[-1][0] + 1
        if isinstance(event, LoggedRecord):
            result = controller.tick(max(time_ms, controller.next_deadline_ms()), next_offset)
            assert result is not None
            assert [type(rv.record) for rv in result.records] == [NoOpRecord]
        else:
            context = RequestContext(
                api_version=event.api_version,
                client_id=event.client_id,
                envelope=event.via_envelope,
            )
            result = controller.handle(event.request, context, next_offset, time_ms)
            assert result.response is not None
            check_response(event, result.response, result.records)
            compared_responses += 1
        written += [(next_offset + i, rv.record, rv.version) for i, rv in enumerate(result.records)]

    assert compared_responses == len(exchanges)
    # ApiVersions (answered by the server from this view) reports the same finalized
    # features and epoch as the genuine controller did.
    for answer in api_versions_responses(CONVERSATION):
        levels = {f.name: f.max_version_level for f in answer.finalized_features}
        assert controller.finalized_features() == (answer.finalized_features_epoch, levels)
    # Every record, at every offset, as the genuine controller wrote it.
    ours = {offset: (record, version) for offset, record, version in written}
    assert sorted(ours) == sorted(by_offset)
    topic_ids = {
        g.record.topic_id: ours[g.offset][0].topic_id  # type: ignore[attr-defined]
        for g in genuine
        if isinstance(g.record, TopicRecord)
    }
    # A batch of PartitionChangeRecords lists topics in the hash order of their ids
    # (BrokersToIsrs), random by nature: within a run of them, compare as a multiset.
    runs: dict[int, int] = {}
    for offset in sorted(by_offset):
        if isinstance(by_offset[offset].record, PartitionChangeRecord):
            runs[offset] = runs.get(offset - 1, offset)
    for offset, logged in sorted(by_offset.items()):
        record, version = ours[offset]
        assert type(record) is type(logged.record), f"offset {offset}"
        assert version == logged.version, f"offset {offset}"
        if offset in runs:
            continue
        assert fields_of(record) == _expected(logged, topic_ids), f"offset {offset}"
    for start in sorted(set(runs.values())):
        run = [o for o, s in runs.items() if s == start]
        theirs = sorted(repr(_expected(by_offset[o], topic_ids)) for o in run)
        assert sorted(repr(fields_of(ours[o][0])) for o in run) == theirs, f"offsets {run}"


def _expected(logged: LoggedRecord, topic_ids: dict[Any, Any]) -> Any:
    expected = fields_of(logged.record)
    if "topic_id" in expected:
        # Random by nature: ours must be the id our own TopicRecord gave the topic.
        expected["topic_id"] = topic_ids[expected["topic_id"]]
    return expected


def api_versions_responses(path: Path) -> list[Any]:
    answers = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if d.get("dir") == "response" and d["api_key"] == 18:
            answers.append(decode_response(bytes.fromhex(d["hex"]), 18, d["api_version"])[1])
    assert answers
    return answers


def check_response(exchange: Exchange, ours: Message, records: list[Any]) -> None:
    expected = fields_of(exchange.response)
    actual = fields_of(ours)
    name = type(exchange.request).__name__
    # Throttling is the network layer's decision; the controller core never throttles.
    expected.pop("throttle_time_ms", None)
    actual.pop("throttle_time_ms", None)
    if name == "BrokerRegistrationRequest":
        # The broker epoch is by rule the offset of the RegisterBrokerRecord.
        assert actual["broker_epoch"] == records[0].record.broker_epoch
    if name == "CreateTopicsRequest":
        created = {
            rv.record.name: rv.record.topic_id
            for rv in records
            if isinstance(rv.record, TopicRecord)
        }
        for topic in expected["topics"]:
            assert topic["name"] in created
            topic["topic_id"] = created[topic["name"]]
    assert actual == expected, name
