"""The multi-broker Kafka 3.9 capture (../shared/captures/kafka-3.9/multi-broker) as test
material: its metadata log, a controller that replayed it up to an offset, and the
requests brokers forwarded inside Envelopes with the genuine answers."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from test_controller_genuine import CAPTURES, LoggedRecord, read_metadata_log

from kwire.controller import ControllerConfig, QuorumController
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.envelope import EnvelopeRequest

MULTI_BROKER = CAPTURES / "multi-broker"
LOG = MULTI_BROKER / "controller-1-metadata" / "__cluster_metadata-0" / "00000000000000000000.log"
TRANSCRIPT = MULTI_BROKER / "multi-broker.jsonl"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"

needs_capture = pytest.mark.skipif(
    not LOG.exists() or not TRANSCRIPT.exists(), reason=f"no capture at {MULTI_BROKER}"
)


@dataclasses.dataclass(frozen=True)
class Forwarded:
    """A request a broker forwarded in an Envelope, and the genuine inner answer."""

    time_ms: int
    api_version: int
    request: Message
    response: Message


def genuine_log() -> list[LoggedRecord]:
    return read_metadata_log(Path(LOG))


def replayed_until(offset: int, *, seed: int = 0) -> QuorumController:
    """A controller that replayed the genuine log below ``offset``."""
    controller = QuorumController(
        node_id=1, cluster_id=CLUSTER_ID, config=ControllerConfig(), rng=random.Random(seed)
    )
    for logged in genuine_log():
        if logged.offset >= offset:
            break
        controller.replay(logged.record, logged.version, logged.offset)
    return controller


def forwarded(api_key: int) -> list[Forwarded]:
    lines = [json.loads(line) for line in TRANSCRIPT.read_text().splitlines() if line.strip()]
    answers = {(d["stream"], d["correlation_id"]): d for d in lines if d["dir"] == "response"}
    found = []
    for d in lines:
        if d["dir"] != "request" or d["api_key"] != 58:
            continue
        _, envelope = decode_request(bytes.fromhex(d["hex"]))
        assert isinstance(envelope, EnvelopeRequest)
        header, inner = decode_request(bytes(envelope.request_data))
        if header.request_api_key != api_key:
            continue
        answer = answers[(d["stream"], d["correlation_id"])]
        _, outer = decode_response(bytes.fromhex(answer["hex"]), 58, d["api_version"])
        _, response = decode_response(
            bytes(outer.response_data), header.request_api_key, header.request_api_version
        )
        found.append(Forwarded(int(d["t"] * 1000), header.request_api_version, inner, response))
    return found
