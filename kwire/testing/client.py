"""A blocking Kafka request over one short-lived connection: for fixtures that must ask a
running node something (DescribeQuorum) from synchronous code.

Not for use inside a Trio task whose own loop serves the node (an in-process quorum):
the call would block the loop that has to answer it.
"""

from __future__ import annotations

import socket

from kwire.protocol._codec import Message
from kwire.protocol.framing import FrameBuffer, decode_response, encode_request, size_prefixed
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.headers import RequestHeader

__all__ = ["METADATA_TOPIC", "describe_quorum", "request"]

METADATA_TOPIC = "__cluster_metadata"
DESCRIBE_QUORUM_VERSION = 1  # Kafka 3.9's and 4.x's controllers answer v0-v2


def request(host: str, port: int, body: Message, version: int, *, timeout: float = 2.0) -> Message:
    """Send `body` at `version` to host:port and return the decoded response. Every socket
    operation is bounded by `timeout` seconds; OSError (or socket.timeout) on a refused,
    closed or silent connection, ConnectionError when the peer closes mid-answer."""
    api_key = body.API_KEY  # type: ignore[attr-defined]
    header = RequestHeader(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=1,
        client_id="kwire-testing",
    )
    frames = FrameBuffer()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(size_prefixed(encode_request(header, body)))
        while (frame := frames.next_frame()) is None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"{host}:{port} closed the connection")
            frames.feed(data)
    return decode_response(frame, api_key, version)[1]


def describe_quorum(host: str, port: int, *, timeout: float = 2.0) -> DescribeQuorumResponse:
    """DescribeQuorum (KIP-595) of `__cluster_metadata-0` at host:port. The leader answers
    with the replication state; another voter with NOT_LEADER_OR_FOLLOWER (6) in the
    partition, naming the leader it knows (-1 if none)."""
    body = DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )
    answer = request(host, port, body, DESCRIBE_QUORUM_VERSION, timeout=timeout)
    assert isinstance(answer, DescribeQuorumResponse)
    return answer
