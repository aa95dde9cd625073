"""A real kwire server, run as a subprocess, against hostile peers, signals, restarts,
bad configuration and kill -9.

Every test talks TCP to 127.0.0.1 on a port picked at run time (tests/server_harness.py)
and every wait is bounded (trio.fail_after, or the harness's own timeouts).
"""

from __future__ import annotations

import random
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, kwire_server_factory, run_kwire, write_properties

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request, size_prefixed
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.metadata import MetadataRequest
from kwire.protocol.messages.produce import ProduceRequest
from kwire.server.client import KafkaClient
from kwire.server.dispatch import CONTROLLER_APIS
from kwire.testing import KwireQuorum

__all__ = ["kwire_server_factory"]  # the fixture, imported for pytest to find

# The (api key, min, max) a genuine Kafka 3.9 controller answers ApiVersions v4 with: decoded
# from /work/shared/captures/kafka-3.9/controller-startup.jsonl (stream 0, correlation id 1).
GENUINE_CONTROLLER_APIS = {
    (1, 0, 17), (7, 0, 3), (17, 0, 1), (18, 0, 4), (19, 0, 7), (20, 0, 6), (29, 0, 3),
    (30, 0, 3), (31, 0, 3), (32, 0, 4), (33, 0, 2), (36, 0, 2), (37, 0, 3), (38, 0, 3),
    (39, 0, 2), (40, 0, 2), (41, 0, 3), (43, 0, 2), (44, 0, 1), (45, 0, 0), (46, 0, 0),
    (49, 0, 1), (50, 0, 0), (51, 0, 0), (52, 0, 1), (53, 0, 1), (54, 0, 1), (55, 0, 2),
    (56, 0, 3), (57, 0, 1), (58, 0, 0), (59, 0, 1), (60, 0, 1), (62, 0, 4), (63, 0, 1),
    (64, 0, 0), (67, 0, 0), (70, 0, 0), (73, 0, 0), (80, 0, 0), (81, 0, 0), (82, 0, 0),
}  # fmt: skip
# The same from a genuine Kafka 4.3.1 controller: /work/shared/captures/kafka-4.3/
# broker-lifecycle/broker-lifecycle.jsonl (its first ApiVersions answer).
GENUINE_43_CONTROLLER_APIS = {
    (1, 4, 18), (17, 0, 1), (18, 0, 4), (19, 2, 7), (20, 1, 6), (29, 1, 3), (30, 1, 3),
    (31, 1, 3), (32, 1, 4), (33, 0, 2), (36, 0, 2), (37, 0, 3), (38, 1, 3), (39, 1, 2),
    (40, 1, 2), (41, 1, 3), (43, 0, 2), (44, 0, 1), (45, 0, 1), (46, 0, 0), (49, 0, 1),
    (50, 0, 0), (51, 0, 0), (52, 0, 2), (53, 0, 1), (54, 0, 1), (55, 0, 2), (56, 2, 3),
    (57, 0, 2), (58, 0, 0), (59, 0, 1), (60, 0, 2), (62, 0, 4), (63, 0, 2), (64, 0, 0),
    (67, 0, 0), (70, 0, 0), (73, 0, 0), (80, 0, 1), (81, 0, 0), (82, 0, 0),
}  # fmt: skip


def union_of_ranges(*offers: set[tuple[str | int, int, int]]) -> set[tuple[str | int, int, int]]:
    """Per key, the lowest minimum and the highest maximum any offer names."""
    ranges: dict[str | int, tuple[int, int]] = {}
    for offer in offers:
        for key, low, high in offer:
            known = ranges.get(key, (low, high))
            ranges[key] = (min(known[0], low), max(known[1], high))
    return {(key, low, high) for key, (low, high) in ranges.items()}


API_VERSIONS_KEY = 18
REQUEST_TIMEOUT_S = 5.0
METADATA_TOPIC = "__cluster_metadata"


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwireServer]:
    """One server shared by the connection-level tests: each judges only its own connections."""
    with KwireServer.create(tmp_path_factory.mktemp("shared-kwire")) as running:
        yield running


async def connect(server: KwireServer) -> KafkaClient:
    with trio.fail_after(REQUEST_TIMEOUT_S):
        return await KafkaClient.connect(HOST, server.port)


async def api_versions(client: KafkaClient, version: int = 3) -> ApiVersionsResponse:
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await client.request(
            ApiVersionsRequest(client_software_name="kwire-tests", client_software_version="1"),
            version,
        )
    assert isinstance(response, ApiVersionsResponse)
    return response


async def describe_quorum(client: KafkaClient) -> DescribeQuorumResponse.PartitionData:
    request = DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await client.request(request, 2)
    assert isinstance(response, DescribeQuorumResponse)
    assert response.error_code == ErrorCode.NONE
    (topic,) = response.topics
    (partition,) = topic.partitions
    assert partition.error_code == ErrorCode.NONE
    return partition


def local_port(client: KafkaClient) -> int:
    return int(client.stream.socket.getsockname()[1])


async def assert_closed_by_server(client: KafkaClient) -> None:
    """The server closes the connection without answering: reading ends (EOF, or a reset
    when it closed with our bytes still unread)."""
    with trio.fail_after(REQUEST_TIMEOUT_S):
        try:
            frame = await client.receive_frame()
        except trio.BrokenResourceError:  # ECONNRESET
            return
    assert frame is None, f"expected the connection to be closed, got a response {frame!r}"


def closing_reason(server: KwireServer, client_port: int) -> str:
    """The server's log line explaining why it closed the connection from `client_port`."""
    marker = f"Closing connection from {HOST}:{client_port}: "
    text = server.wait_for_output(marker, timeout=REQUEST_TIMEOUT_S)
    assert text is not None, f"no log line names the connection {HOST}:{client_port}"
    return next(line for line in text.splitlines() if marker in line).split(marker, 1)[1]


def raw_header(api_key: int, version: int, correlation_id: int = 7, flexible: bool = True) -> bytes:
    """A request header written by hand, for versions the codecs refuse to write."""
    client_id = b"kwire-tests"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return header + (b"\x00" if flexible else b"")


def compact_string(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 127
    return bytes([len(data) + 1]) + data


def api_versions_frame(version: int = 3, client_id: str = "kwire-tests") -> bytes:
    header = RequestHeader(
        request_api_key=API_VERSIONS_KEY,
        request_api_version=version,
        correlation_id=1,
        client_id=client_id,
    )
    body = ApiVersionsRequest(client_software_name="kwire-tests", client_software_version="1")
    return encode_request(header, body)


def registration(
    broker_id: int, cluster_id: str, incarnation: uuid.UUID, port: int = 9092
) -> BrokerRegistrationRequest:
    """What a Kafka 3.9 broker sends (BrokerRegistration v4)."""
    return BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id=cluster_id,
        incarnation_id=incarnation,
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=port, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            ),
            BrokerRegistrationRequest.Feature(
                name="kraft.version", min_supported_version=0, max_supported_version=1
            ),
        ],
        rack=None,
        log_dirs=[uuid.uuid5(incarnation, "log-dir")],
        previous_broker_epoch=-1,
    )


async def register(client: KafkaClient, request: BrokerRegistrationRequest) -> int:
    """Register and return the broker epoch; fails on any error code."""
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await client.request(request, 4)
    assert isinstance(response, BrokerRegistrationResponse)
    assert response.error_code == ErrorCode.NONE, ErrorCode(response.error_code).name
    return response.broker_epoch


async def heartbeat(
    client: KafkaClient, broker_id: int, epoch: int, *, offset: int, want_fence: bool = False
) -> BrokerHeartbeatResponse:
    request = BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=epoch,
        current_metadata_offset=offset,
        want_fence=want_fence,
    )
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await client.request(request, 1)
    assert isinstance(response, BrokerHeartbeatResponse)
    return response


# -- ApiVersions -----------------------------------------------------------------------------


async def test_api_versions_v3_lists_the_apis_of_a_genuine_kafka_39_controller(
    server: KwireServer,
) -> None:
    client = await connect(server)
    response = await api_versions(client, 3)
    assert response.error_code == ErrorCode.NONE
    # kwire serves brokers of both release lines: it offers the union of what the genuine
    # 3.9.0 and 4.3.1 controllers offer.
    offered = {(a.api_key, a.min_version, a.max_version) for a in response.api_keys}
    assert offered == union_of_ranges(GENUINE_CONTROLLER_APIS, GENUINE_43_CONTROLLER_APIS)
    features = {(f.name, f.min_version, f.max_version) for f in response.supported_features}
    genuine_39 = {("kraft.version", 0, 1), ("metadata.version", 1, 21)}
    genuine_43 = {
        ("group.version", 0, 1), ("kraft.version", 0, 1), ("metadata.version", 7, 30),
        ("share.version", 0, 1), ("streams.version", 0, 1), ("transaction.version", 0, 2),
        ("eligible.leader.replicas.version", 0, 1),
    }  # fmt: skip
    assert features == union_of_ranges(genuine_39, genuine_43)
    finalized = {f.name: f.max_version_level for f in response.finalized_features}
    assert finalized["metadata.version"] == 21  # formatted with 3.9-IV0
    await client.aclose()


async def test_api_versions_at_an_unsupported_version_falls_back_to_v0_unsupported_version(
    server: KwireServer,
) -> None:
    """KIP-511: a client newer than the server sends ApiVersions v99 (flexible header and
    body); the server answers in v0 with UNSUPPORTED_VERSION and the ApiVersions range, and
    keeps the connection for the client's retry at a version both know."""
    client = await connect(server)
    body = compact_string("apache-kafka-java") + compact_string("9.9.9") + b"\x00"
    await client.send_raw(raw_header(API_VERSIONS_KEY, 99, correlation_id=41) + body)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        frame = await client.receive_frame()
    assert frame is not None, "the server closed the connection instead of answering v0"
    header, response = decode_response(frame, API_VERSIONS_KEY, 0)
    assert header.correlation_id == 41
    assert isinstance(response, ApiVersionsResponse)
    assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
    ranges = {a.api_key: (a.min_version, a.max_version) for a in response.api_keys}
    assert ranges == {API_VERSIONS_KEY: (0, 4)}  # only its own range, as Kafka answers
    retry = await api_versions(client, 3)  # the same connection, as Kafka's clients retry
    assert retry.error_code == ErrorCode.NONE
    await client.aclose()


async def test_describe_quorum_v2_describes_the_sole_voter_as_a_genuine_controller_does(
    server: KwireServer,
) -> None:
    """Shape of metadata-quorum-describe.jsonl's answer: leader 1, voter 1 with a zero
    directory id, no observers yet, and node 1 with its CONTROLLER listener."""
    client = await connect(server)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await client.request(
            DescribeQuorumRequest(
                topics=[
                    DescribeQuorumRequest.TopicData(
                        topic_name=METADATA_TOPIC,
                        partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                    )
                ]
            ),
            2,
        )
    assert isinstance(response, DescribeQuorumResponse)
    (partition,) = response.topics[0].partitions
    assert (partition.leader_id, partition.error_code) == (1, ErrorCode.NONE)
    assert partition.leader_epoch >= 1
    (voter,) = partition.current_voters
    assert voter.replica_id == 1
    assert voter.replica_directory_id == uuid.UUID(int=0)
    assert voter.log_end_offset >= partition.high_watermark > 0
    assert partition.observers == []
    assert [
        (n.node_id, [(x.name, x.host, x.port) for x in n.listeners]) for n in response.nodes
    ] == [(1, [("CONTROLLER", HOST, server.port)])]
    await client.aclose()


# -- frames that must close the connection ----------------------------------------------------


def _truncated_body() -> bytes:
    frame = api_versions_frame(3)
    return size_prefixed(frame[:-3])


def _garbage(seed: int, size: int) -> bytes:
    return size_prefixed(random.Random(seed).randbytes(size))


@dataclass(frozen=True)
class BadFrame:
    data: bytes
    reason: str  # a substring of the logged reason ("" when any reason will do)


BAD_FRAMES: dict[str, BadFrame] = {
    "size-prefix-0x7fffffff": BadFrame(b"\x7f\xff\xff\xff", "frame size 2147483647"),
    "negative-size-prefix": BadFrame(b"\xff\xff\xff\xff", "frame size -1"),
    "min-int-size-prefix": BadFrame(b"\x80\x00\x00\x00", "frame size -2147483648"),
    # A TLS ClientHello's record header read as a size (0x16030102): a client on SSL.
    "tls-client-hello": BadFrame(
        b"\x16\x03\x01\x02\x00\x01", "frame size 369295618 is a TLS handshake"
    ),
    "empty-frame": BadFrame(size_prefixed(b""), "8 bytes"),
    "truncated-header": BadFrame(size_prefixed(b"\x00\x12\x00"), "8 bytes"),
    "truncated-body": BadFrame(_truncated_body(), "ApiVersionsRequest v3"),
    "trailing-bytes": BadFrame(size_prefixed(api_versions_frame(3) + b"\x00\x00"), "trailing"),
    "unknown-api-key": BadFrame(size_prefixed(raw_header(999, 0) + b"\x00"), "API key 999"),
    "negative-api-key": BadFrame(size_prefixed(raw_header(-5, 0) + b"\x00"), "API key -5"),
    "produce-is-broker-only": BadFrame(
        size_prefixed(
            encode_request(
                RequestHeader(request_api_key=0, request_api_version=9, correlation_id=3),
                ProduceRequest(acks=1, timeout_ms=1000),
            )
        ),
        "API key 0",
    ),
    "metadata-is-broker-only": BadFrame(
        size_prefixed(
            encode_request(
                RequestHeader(request_api_key=3, request_api_version=12, correlation_id=3),
                MetadataRequest(topics=None),
            )
        ),
        "API key 3",
    ),
    "describe-quorum-v99": BadFrame(size_prefixed(raw_header(55, 99) + b"\x00"), "99"),
    "describe-quorum-negative-version": BadFrame(size_prefixed(raw_header(55, -1) + b"\x00"), "-1"),
    "garbage-seed-1": BadFrame(_garbage(1, 64), ""),
    "garbage-seed-2": BadFrame(_garbage(2, 7), ""),
    "garbage-seed-3": BadFrame(_garbage(3, 4096), ""),
    "garbage-seed-4": BadFrame(_garbage(4, 1), ""),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES), ids=list(BAD_FRAMES))
async def test_a_bad_frame_closes_only_its_own_connection_and_the_log_says_why(
    server: KwireServer, case: str
) -> None:
    bad = BAD_FRAMES[case]
    healthy = await connect(server)
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    hostile = await connect(server)
    hostile_port = local_port(hostile)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await hostile.stream.send_all(bad.data)
    await assert_closed_by_server(hostile)
    reason = closing_reason(server, hostile_port)
    assert bad.reason in reason
    # The connection opened before the bad one still works, and so do new ones.
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    assert (await describe_quorum(healthy)).leader_id == 1
    fresh = await connect(server)
    assert (await api_versions(fresh)).error_code == ErrorCode.NONE
    assert server.running
    for client in (healthy, hostile, fresh):
        await client.aclose()


async def test_random_bodies_behind_a_valid_header_of_every_controller_api_are_survived(
    server: KwireServer,
) -> None:
    """A valid header (each API the controller serves, at its newest version) then random
    bytes: the decoder must refuse them (close, logged with the request's name) or, should
    they happen to decode, the request is answered; never a crash or a hang."""
    healthy = await connect(server)
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    for api_key in CONTROLLER_APIS:
        api = APIS[api_key]
        version = api.highest_version
        rng = random.Random(api_key)
        flexible = api.request_header_version(version) >= 2
        frame = raw_header(api_key, version, correlation_id=api_key, flexible=flexible)
        frame += rng.randbytes(rng.randrange(0, 80))
        hostile = await connect(server)
        with trio.fail_after(REQUEST_TIMEOUT_S):
            await hostile.send_raw(frame)
            try:
                answer = await hostile.receive_frame()
            except trio.BrokenResourceError:
                answer = None
        if answer is None:
            assert api.request.NAME in closing_reason(server, local_port(hostile))
        else:
            header, _ = decode_response(answer, api_key, version)
            assert header.correlation_id == api_key
        await hostile.aclose()
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    assert server.running
    await healthy.aclose()


async def test_a_connection_that_ends_mid_frame_is_closed_and_others_go_on(
    server: KwireServer,
) -> None:
    healthy = await connect(server)
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    hostile = await connect(server)
    frame = size_prefixed(api_versions_frame(3))
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await hostile.stream.send_all(frame[: len(frame) // 2])
        await hostile.stream.send_eof()  # half-close: the rest of the frame never comes
    await assert_closed_by_server(hostile)
    assert (await api_versions(healthy)).error_code == ErrorCode.NONE
    await healthy.aclose()
    await hostile.aclose()


async def test_pipelined_requests_are_answered_in_order_on_one_connection(
    server: KwireServer,
) -> None:
    """The framing edge must split a burst of frames that arrive in one read."""
    client = await connect(server)
    frames = b"".join(
        size_prefixed(
            encode_request(
                RequestHeader(
                    request_api_key=API_VERSIONS_KEY,
                    request_api_version=3,
                    correlation_id=100 + i,
                    client_id="pipelined",
                ),
                ApiVersionsRequest(client_software_name="x", client_software_version="1"),
            )
        )
        for i in range(20)
    )
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await client.stream.send_all(frames)
        for i in range(20):
            frame = await client.receive_frame()
            assert frame is not None
            header, response = decode_response(frame, API_VERSIONS_KEY, 3)
            assert header.correlation_id == 100 + i
            assert isinstance(response, ApiVersionsResponse)
            assert response.error_code == ErrorCode.NONE
    await client.aclose()


async def test_a_frame_larger_than_socket_request_max_bytes_is_refused(
    kwire_server_factory: Callable[..., KwireServer],
) -> None:
    limit = 1024
    small = kwire_server_factory(overrides={"socket.request.max.bytes": str(limit)})
    # An ApiVersions request of exactly `limit` bytes (the client id pads it) is served...
    padding = limit - len(api_versions_frame(3, client_id=""))
    at_limit = api_versions_frame(3, client_id="p" * padding)
    assert len(at_limit) == limit
    client = await connect(small)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await client.send_raw(at_limit)
        frame = await client.receive_frame()
    assert frame is not None, "a frame of exactly socket.request.max.bytes was refused"
    _, response = decode_response(frame, API_VERSIONS_KEY, 3)
    assert isinstance(response, ApiVersionsResponse)
    assert response.error_code == ErrorCode.NONE
    # ...one byte more is refused, that connection is closed, and the log names the limit.
    over = api_versions_frame(3, client_id="p" * (padding + 1))
    assert len(over) == limit + 1
    hostile = await connect(small)
    hostile_port = local_port(hostile)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await hostile.send_raw(over)
    await assert_closed_by_server(hostile)
    reason = closing_reason(small, hostile_port)
    assert "socket.request.max.bytes" in reason
    assert str(limit + 1) in reason
    assert (await api_versions(client)).error_code == ErrorCode.NONE
    await client.aclose()
    await hostile.aclose()


# -- shutdown and restart ----------------------------------------------------------------------


async def test_sigterm_exits_with_status_0_promptly_and_logs_a_clean_shutdown(
    kwire_quorum_factory: Callable[..., KwireQuorum],
) -> None:
    server = kwire_quorum_factory(voters=1).process(1)  # kwire's pytest plugin
    idle = await connect(server)  # connections open at shutdown must not hold it up
    partial = await connect(server)
    with trio.fail_after(REQUEST_TIMEOUT_S):
        await partial.stream.send_all(size_prefixed(api_versions_frame(3))[:6])
    assert (await api_versions(idle)).error_code == ErrorCode.NONE
    started = time.monotonic()
    status = server.stop(timeout=5.0)
    elapsed = time.monotonic() - started
    assert status == 0, f"exit status {status}\n{server.stderr()}"
    assert elapsed < 5.0
    log = server.stderr()
    assert "Received SIGTERM; shutting down" in log
    assert "Stopped; the metadata log is closed" in log
    assert "Traceback" not in log
    assert "ERROR" not in log
    await idle.aclose()
    await partial.aclose()


async def test_restart_bumps_the_leader_epoch_and_keeps_registrations_as_kafka_does(
    kwire_quorum_factory: Callable[..., KwireQuorum],
) -> None:
    server = kwire_quorum_factory(voters=1).process(1)  # kwire's pytest plugin
    incarnation = uuid.uuid4()
    client = await connect(server)
    before = await describe_quorum(client)
    assert before.leader_id == 1
    epoch = await register(client, registration(2, server.cluster_id, incarnation))
    hb = await heartbeat(client, 2, epoch, offset=2**40)  # caught up: unfenced
    assert hb.error_code == ErrorCode.NONE
    assert not hb.is_fenced
    before = await describe_quorum(client)
    assert before.high_watermark > epoch  # the registration is committed
    await client.aclose()

    assert server.stop() == 0
    await trio.to_thread.run_sync(server.start)
    client = await connect(server)
    after = await describe_quorum(client)
    assert after.leader_id == 1
    assert after.leader_epoch == before.leader_epoch + 1
    assert after.high_watermark >= before.high_watermark
    assert [v.replica_id for v in after.current_voters] == [1]

    # The registration survived: the same incarnation re-registering is an amendment that
    # keeps its epoch (ClusterControlManager: "Broker epoch remains ...")...
    assert await register(client, registration(2, server.cluster_id, incarnation)) == epoch
    # ...heartbeats with that epoch are accepted and with any other are stale...
    assert (await heartbeat(client, 2, epoch, offset=2**40)).error_code == ErrorCode.NONE
    stale = await heartbeat(client, 2, epoch - 1, offset=2**40)
    assert stale.error_code == ErrorCode.STALE_BROKER_EPOCH
    # ...and the new controller gave the unfenced broker a fresh session on activation, so
    # another incarnation claiming broker id 2 is refused.
    with trio.fail_after(REQUEST_TIMEOUT_S):
        duplicate = await client.request(registration(2, server.cluster_id, uuid.uuid4()), 4)
    assert isinstance(duplicate, BrokerRegistrationResponse)
    assert duplicate.error_code == ErrorCode.DUPLICATE_BROKER_REGISTRATION
    await client.aclose()


# -- bad configuration ------------------------------------------------------------------------


BAD_CONFIGS: dict[str, tuple[dict[str, str | None], str]] = {
    "node-id-not-an-integer": ({"node.id": "abc"}, "node.id"),
    "no-quorum-voters": ({"controller.quorum.voters": None}, "controller.quorum.voters"),
    "broker-role": ({"process.roles": "broker"}, "process.roles"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_a_bad_configuration_exits_1_with_one_stderr_line_naming_the_key(
    tmp_path: Path, case: str
) -> None:
    changes, key = BAD_CONFIGS[case]
    good = KwireServer(tmp_path)  # formatted, so only the configuration can stop it
    good.format("MkU3OEVBNTcwNTJENDM2Qk")
    props = {k: v for k, v in {**good.properties, **changes}.items() if v is not None}
    path = write_properties(tmp_path / "bad.properties", props)
    result = run_kwire("kwire.server", path, timeout=15)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout


# -- kill -9 ------------------------------------------------------------------------------------


async def test_kill_9_mid_writes_then_restart_keeps_every_acknowledged_registration(
    kwire_quorum_factory: Callable[..., KwireQuorum],
) -> None:
    server = kwire_quorum_factory(voters=1).process(1)  # kwire's pytest plugin
    acked: dict[int, tuple[uuid.UUID, int]] = {}  # broker id -> (incarnation, epoch)
    wanted = 120
    enough = trio.Event()

    async def writer(first_id: int, stride: int) -> None:
        client = await connect(server)
        broker_id = first_id
        try:
            while True:
                incarnation = uuid.uuid4()
                epoch = await register(
                    client, registration(broker_id, server.cluster_id, incarnation)
                )
                acked[broker_id] = (incarnation, epoch)
                # The heartbeat unfences it: more records, written while the kill lands.
                await heartbeat(client, broker_id, epoch, offset=2**40)
                if len(acked) >= wanted:
                    enough.set()
                broker_id += stride
        except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # the server died under us: expected
        finally:
            await client.aclose()

    writers = 4
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(writers):
                nursery.start_soon(writer, 100 + i, writers)
            await enough.wait()
            assert server.kill() == -9  # while the writers are still sending
    assert len(acked) >= wanted

    await trio.to_thread.run_sync(server.start)
    assert "Traceback" not in server.stderr()
    client = await connect(server)
    quorum = await describe_quorum(client)
    assert quorum.leader_id == 1
    for broker_id, (incarnation, epoch) in sorted(acked.items()):
        # Acknowledged means committed: its RegisterBrokerRecord (at offset `epoch`) is
        # below the high watermark after recovery...
        assert epoch < quorum.high_watermark, (broker_id, epoch, quorum.high_watermark)
        # ...and it is still there: re-registering the same incarnation keeps that epoch.
        again = await register(client, registration(broker_id, server.cluster_id, incarnation))
        assert again == epoch, (broker_id, epoch, again)
    await client.aclose()
    assert server.stop() == 0


def test_the_harness_refuses_to_hide_a_server_that_cannot_start(tmp_path: Path) -> None:
    """The harness itself: an unformatted directory makes start() fail fast, with the output."""
    server = KwireServer(tmp_path)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="not formatted"):
        server.start(timeout=15)
    assert time.monotonic() - started < 15
    assert not server.running
