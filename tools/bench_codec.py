"""Codec benchmark: kwire beside kio and kafka-python, in one process run.

Each case builds a message with kwire, then hands its bytes to the peers so that all
three encode and decode the same message. Body alone, and with its header. Prints
microseconds per operation for each side and kwire's speed-up (peer time / kwire time:
above 1 means kwire is faster).

    python tools/bench_codec.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
import timeit
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response, encode_request, encode_response
from kwire.protocol.messages.api_versions import ApiVersionsResponse
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.metadata import MetadataResponse
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import (
    RegisterBrokerRecord,
)
from kwire.protocol.messages.vote import VoteRequest

TOPIC_ID = uuid.UUID("5f3c2b1a-0d9e-4c8b-a7f6-112233445566")


@dataclass
class Case:
    name: str
    message: Message
    version: int
    kio_module: str | None  # kio.schema.<module>.v<N>.<kind>
    kafka_python: str | None  # dotted path of kafka-python's class


def cases() -> list[Case]:
    heartbeat = BrokerHeartbeatRequest(
        broker_id=2, broker_epoch=8, current_metadata_offset=1234, want_fence=False
    )
    vote = VoteRequest(
        cluster_id="MkU3OEVBNTcwNTJENDM2Qg",
        topics=[
            VoteRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    VoteRequest.PartitionData(
                        partition_index=0,
                        replica_epoch=5,
                        replica_id=1,
                        last_offset_epoch=4,
                        last_offset=1000,
                    )
                ],
            )
        ],
    )
    fetch = FetchRequest(
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=8 * 1024 * 1024,
        session_epoch=-1,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0,
                        current_leader_epoch=3,
                        fetch_offset=1000,
                        last_fetched_epoch=3,
                        partition_max_bytes=1024 * 1024,
                    )
                ],
            )
        ],
        rack_id="",
    )
    fetch_response = FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic_id=TOPIC_ID,
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=0,
                        high_watermark=1001,
                        last_stable_offset=1001,
                        log_start_offset=0,
                        records=bytes(range(256)) * 4,
                    )
                ],
            )
        ]
    )
    api_versions = ApiVersionsResponse(
        api_keys=[
            ApiVersionsResponse.ApiVersion(api_key=key, min_version=0, max_version=key % 17)
            for key in range(60)
        ]
    )
    create_topics = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=f"orders-{i:03d}",
                num_partitions=10,
                replication_factor=3,
                configs=[
                    CreateTopicsRequest.CreatableTopicConfig(name="cleanup.policy", value="compact")
                ],
            )
            for i in range(100)
        ],
        timeout_ms=30000,
    )
    metadata = MetadataResponse(
        brokers=[
            MetadataResponse.MetadataResponseBroker(node_id=n, host="127.0.0.1", port=9092 + n)
            for n in range(3)
        ],
        cluster_id="MkU3OEVBNTcwNTJENDM2Qg",
        controller_id=1,
        topics=[
            MetadataResponse.MetadataResponseTopic(
                name=f"orders-{t:03d}",
                topic_id=uuid.UUID(int=t + 1),
                partitions=[
                    MetadataResponse.MetadataResponsePartition(
                        partition_index=p,
                        leader_id=p % 3,
                        leader_epoch=7,
                        replica_nodes=[p % 3, (p + 1) % 3, (p + 2) % 3],
                        isr_nodes=[p % 3, (p + 1) % 3, (p + 2) % 3],
                    )
                    for p in range(10)
                ],
            )
            for t in range(100)
        ],
    )
    register = RegisterBrokerRecord(
        broker_id=2,
        incarnation_id=TOPIC_ID,
        broker_epoch=42,
        end_points=[
            RegisterBrokerRecord.BrokerEndpoint(
                name="PLAINTEXT", host="127.0.0.1", port=9092, security_protocol=0
            )
        ],
        features=[
            RegisterBrokerRecord.BrokerFeature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        fenced=True,
        log_dirs=[TOPIC_ID],
    )
    partition = PartitionRecord(
        partition_id=3,
        topic_id=TOPIC_ID,
        replicas=[1, 2, 3],
        isr=[1, 2, 3],
        leader=1,
        leader_epoch=0,
        partition_epoch=0,
        directories=[TOPIC_ID, TOPIC_ID, TOPIC_ID],
    )
    return [
        Case("BrokerHeartbeatRequest v1", heartbeat, 1, "broker_heartbeat", None),
        Case("VoteRequest v1", vote, 1, "vote", None),
        Case("FetchRequest v17", fetch, 17, "fetch", "kafka.protocol.consumer.fetch.FetchRequest"),
        Case(
            "FetchResponse v17 (1 KiB)",
            fetch_response,
            17,
            "fetch",
            "kafka.protocol.consumer.fetch.FetchResponse",
        ),
        Case(
            "ApiVersionsResponse v3 (60)",
            api_versions,
            3,
            "api_versions",
            "kafka.protocol.metadata.api_versions.ApiVersionsResponse",
        ),
        Case(
            "CreateTopicsRequest v7 (100)",
            create_topics,
            7,
            "create_topics",
            "kafka.protocol.admin.topics.CreateTopicsRequest",
        ),
        Case(
            "MetadataResponse v12 (100x10)",
            metadata,
            12,
            "metadata",
            "kafka.protocol.metadata.metadata.MetadataResponse",
        ),
        Case("RegisterBrokerRecord v3", register, 3, None, None),
        Case("PartitionRecord v2", partition, 2, None, None),
    ]


def best_us(function: Callable[[], object], budget: float) -> float:
    timer = timeit.Timer(function)
    number, elapsed = timer.autorange()
    number = max(1, int(number * budget / max(elapsed, 1e-9) / 5))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def kio_side(case: Case, body: bytes, header: bytes) -> dict[str, Callable[[], object]]:
    from kio.serial import entity_reader, entity_writer

    kind = case.message.KIND
    module = importlib.import_module(f"kio.schema.{case.kio_module}.v{case.version}.{kind}")
    cls = getattr(module, case.message.NAME)
    read, write = entity_reader(cls), entity_writer(cls)
    value, _ = read(body, 0)
    header_cls = cls.__header_schema__
    read_header, write_header = entity_reader(header_cls), entity_writer(header_cls)
    header_value, header_size = read_header(header, 0)
    framed = header + body

    def encode() -> bytes:
        out = io.BytesIO()
        write(out, value)
        return out.getvalue()

    def encode_with_header() -> bytes:
        out = io.BytesIO()
        write_header(out, header_value)
        write(out, value)
        return out.getvalue()

    def decode_with_header() -> object:
        head, size = read_header(framed, 0)
        return read(framed[size:], 0)

    if encode() != body:
        raise AssertionError(f"kio does not re-encode {case.name} to kwire's bytes")
    return {
        "encode": encode,
        "decode": lambda: read(body, 0),
        "encode+header": encode_with_header,
        "decode+header": decode_with_header,
    }


def kafka_python_side(case: Case, body: bytes, framed: bytes) -> dict[str, Callable[[], object]]:
    cls = _resolve(case.kafka_python)  # type: ignore[arg-type]
    version = case.version
    value = cls.decode(body, version=version)
    if not hasattr(value, "_header"):
        value._header = None  # decode() skips __init__, which encode() relies on
    with_header = cls.decode(framed, version=version, header=True)
    if case.message.KIND == "request":
        with_header.with_header(correlation_id=7, client_id="bench")
    operations: dict[str, Callable[[], object]] = {
        "encode": lambda: value.encode(version=version),
        "decode": lambda: cls.decode(body, version=version),
        "decode+header": lambda: cls.decode(framed, version=version, header=True),
    }
    if case.message.KIND == "request":
        # kafka-python writes request headers only; a response with header it cannot encode.
        operations["encode+header"] = lambda: with_header.encode(version=version, header=True)
    return operations


def kwire_side(case: Case) -> tuple[dict[str, Callable[[], object]], bytes, bytes]:
    message, version = case.message, case.version
    body = message.encode(version)
    cls = type(message)
    operations: dict[str, Callable[[], object]] = {
        "encode": lambda: message.encode(version),
        "decode": lambda: cls.decode(body, version),
    }
    header = b""
    if message.KIND == "request":
        request_header = RequestHeader(
            request_api_key=message.API_KEY,  # type: ignore[arg-type]
            request_api_version=version,
            correlation_id=7,
            client_id="bench",
        )
        framed = encode_request(request_header, message)
        operations["encode+header"] = lambda: encode_request(request_header, message)
        operations["decode+header"] = lambda: decode_request(framed)
        header = framed[: len(framed) - len(body)]
    elif message.KIND == "response":
        key = message.API_KEY
        framed = encode_response(key, version, 7, message)  # type: ignore[arg-type]
        operations["encode+header"] = lambda: encode_response(key, version, 7, message)  # type: ignore[arg-type]
        operations["decode+header"] = lambda: decode_response(framed, key, version)  # type: ignore[arg-type]
        header = framed[: len(framed) - len(body)]
    return operations, body, header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = parser.parse_args()
    budget = 0.05 if args.quick else 0.4
    print(f"Python {sys.version.split()[0]}; microseconds per operation (best of 5)")
    print(
        f"{'case':32} {'op':14} {'kwire':>10} {'kio':>10} {'x kio':>7} {'kafka-py':>10} {'x kpy':>7}"
    )
    for case in cases():
        ours, body, header = kwire_side(case)
        peers: dict[str, dict[str, Callable[[], object]]] = {}
        if case.kio_module:
            peers["kio"] = kio_side(case, body, header)
        if case.kafka_python:
            peers["kafka-python"] = kafka_python_side(case, body, header + body)
        for op, function in ours.items():
            mine = best_us(function, budget)
            row = f"{case.name:32} {op:14} {mine:10.2f}"
            for peer in ("kio", "kafka-python"):
                theirs = peers.get(peer, {}).get(op)
                if theirs is None:
                    row += f" {'-':>10} {'-':>7}"
                else:
                    elapsed = best_us(theirs, budget)
                    row += f" {elapsed:10.2f} {elapsed / mine:6.2f}x"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
