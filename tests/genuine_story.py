"""The multi-broker story of a genuine Kafka 3.9 controller, for replaying one request at
a time: its frames (Envelope inner requests unwrapped) and its metadata log.

``controller_at(ms)`` gives a QuorumController holding the replay of every record the
genuine controller appended before that time, and the offset its next record took; a
test then feeds the genuine request and compares the answer and the records with the
genuine ones.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from uuid import UUID

import pytest
from test_controller_genuine import CAPTURES, LoggedRecord, fields_of, read_metadata_log

from kwire.controller import ControllerConfig, QuorumController
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.envelope import EnvelopeRequest
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

STORY = CAPTURES / "multi-broker"
FRAMES = STORY / "multi-broker.jsonl"
LOG = STORY / "controller-1-metadata" / "__cluster_metadata-0" / "00000000000000000000.log"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"

needs_story = pytest.mark.skipif(
    not FRAMES.exists() or not LOG.exists(), reason=f"no multi-broker capture at {STORY}"
)

__all__ = [
    "Exchange",
    "assert_same_records",
    "controller_before",
    "exchanges",
    "fields_of",
    "first_change_for",
    "genuine_log",
    "last_offset_before",
    "needs_story",
]


@dataclass(frozen=True)
class Exchange:
    time_ms: int
    api_version: int
    via_envelope: bool
    request: Message
    response: Message


@cache
def genuine_log() -> tuple[LoggedRecord, ...]:
    return tuple(read_metadata_log(LOG))


def exchanges(api_key: int) -> list[Exchange]:
    """Every request of ``api_key`` (direct or inside an Envelope) with its answer."""
    lines = [json.loads(line) for line in FRAMES.read_text().splitlines() if line.strip()]
    answers = {(d["stream"], d["correlation_id"]): d for d in lines if d["dir"] == "response"}
    found = []
    for d in lines:
        if d["dir"] != "request" or d["api_key"] not in (api_key, 58):
            continue
        header, body = decode_request(bytes.fromhex(d["hex"]))
        answer = answers[(d["stream"], d["correlation_id"])]
        _, response = decode_response(bytes.fromhex(answer["hex"]), d["api_key"], d["api_version"])
        envelope = isinstance(body, EnvelopeRequest)
        if envelope:
            header, body = decode_request(bytes(body.request_data))
            if header.request_api_key != api_key:
                continue
            _, response = decode_response(
                bytes(response.response_data), api_key, header.request_api_version
            )
        found.append(
            Exchange(int(d["t"] * 1000), header.request_api_version, envelope, body, response)
        )
    return found


def controller_before(offset: int) -> QuorumController:
    """A controller holding the replay of every genuine record before ``offset``."""
    controller = QuorumController(
        node_id=1, cluster_id=CLUSTER_ID, config=ControllerConfig(), rng=random.Random(0)
    )
    for logged in genuine_log():
        if logged.offset >= offset:
            break
        controller.replay(logged.record, logged.version, logged.offset)
    return controller


def first_change_for(
    time_ms: int,
    topic_id: UUID | None = None,
    partition_id: int = -1,
    isr: list[int] | None = None,
) -> int:
    """The offset of the first PartitionChangeRecord (of ``topic_id``:``partition_id``
    and setting ``isr``, when given) in a batch appended at most a second before ``time_ms`` or later: where
    the records of a request received at ``time_ms`` begin. Batch timestamps cannot split
    the log by request (Kafka's raft puts records of several requests, and a NoOp opened
    before the request, in one batch), their content can."""
    for logged in genuine_log():
        record = logged.record
        if (
            logged.timestamp_ms >= time_ms - 1000
            and isinstance(record, PartitionChangeRecord)
            and (
                topic_id is None
                or (record.topic_id, record.partition_id) == (topic_id, partition_id)
            )
            and (isr is None or record.isr == isr)
        ):
            return logged.offset
    raise AssertionError(f"no PartitionChangeRecord after {time_ms}")


def last_offset_before(time_ms: int) -> int:
    """The offset after the last genuine record appended before ``time_ms``."""
    return max((r.offset + 1 for r in genuine_log() if r.timestamp_ms < time_ms), default=0)


def genuine_records_from(offset: int, count: int) -> list[tuple[Message, int]]:
    by_offset = {r.offset: r for r in genuine_log()}
    return [(by_offset[o].record, by_offset[o].version) for o in range(offset, offset + count)]


def assert_same_records(ours: list[tuple[Message, int]], offset: int) -> None:
    """Our records are the genuine ones at ``offset`` onwards, field for field, at the
    same versions (topic ids are the genuine ones: the state is the genuine replay)."""
    assert ours, "the genuine controller wrote records here"
    genuine = genuine_records_from(offset, len(ours))
    assert [(fields_of(r), v) for r, v in ours] == [(fields_of(r), v) for r, v in genuine]
