"""kwire.server.dispatch: the answers the edge gives itself, in-process.

- An API the controller does not implement yet gets UNSUPPORTED_VERSION on every item of
  the request (the issue: CreatePartitions and DeleteTopics answered with no result).
- A node that does not lead answers a controller request with NOT_CONTROLLER on every item.
- SaslHandshake and SaslAuthenticate get Kafka 3.9 ControllerApis' ILLEGAL_SASL_STATE.
- DescribeQuorum below v2 leaves out what v2 added, as Kafka's RaftUtil does.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import trio
from node_harness import leader, make_node
from server_harness import free_port

from kwire.controller.controller import RequestContext
from kwire.protocol._codec import ZERO_UUID, Message, RawTaggedField
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request, encode_response
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.sasl_authenticate import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
)
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest, SaslHandshakeResponse
from kwire.server.dispatch import MAX_CONTEXTS, Peer, RequestHandler, encode_heartbeat_response
from kwire.server.node import ControllerNode
from kwire.server.serve import answer

__all__ = ["leader"]  # the fixture, imported for pytest to find

BROKER_HEARTBEAT = 63


async def ask(node: ControllerNode, body: Message, version: int) -> Message:
    """Send `body` at `version` through the server's `answer` and read the reply back."""
    api_key: int = body.API_KEY  # type: ignore[attr-defined]
    header = RequestHeader(
        request_api_key=api_key, request_api_version=version, correlation_id=9, client_id="c"
    )
    frame = await answer(encode_request(header, body), RequestHandler(node))
    _, response = decode_response(frame, api_key, version)
    return response


@pytest.mark.parametrize("version", range(0, 7))
async def test_delete_topics_of_two_unknown_topics_gets_two_results_each_unknown(
    leader: ControllerNode, version: int
) -> None:
    if version >= 6:
        body = DeleteTopicsRequest(
            topics=[DeleteTopicsRequest.DeleteTopicState(name=n) for n in ("a", "b")]
        )
    else:
        body = DeleteTopicsRequest(topic_names=["a", "b"])
    response = await ask(leader, body, version)
    assert isinstance(response, DeleteTopicsResponse)
    # ControllerApis.deleteTopics: UNKNOWN_TOPIC_OR_PARTITION per name, in shuffled order.
    assert sorted((r.name, r.error_code) for r in response.responses) == [("a", 3), ("b", 3)]


@pytest.mark.parametrize("version", range(0, 4))
async def test_create_partitions_of_two_unknown_topics_gets_two_results_each_unknown(
    leader: ControllerNode, version: int
) -> None:
    body = CreatePartitionsRequest(
        topics=[
            CreatePartitionsRequest.CreatePartitionsTopic(name=n, count=2, assignments=None)
            for n in "ab"
        ]
    )
    response = await ask(leader, body, version)
    assert isinstance(response, CreatePartitionsResponse)
    # ReplicationControlManager.createPartitions: UnknownTopicOrPartitionException, no
    # message, in the order of Kafka's HashSet of names.
    assert [(r.name, r.error_code, r.error_message) for r in response.results] == [
        ("a", 3, None),
        ("b", 3, None),
    ]


async def test_a_node_that_does_not_lead_answers_not_controller_on_every_topic(
    tmp_path: Path,
) -> None:
    port, other = free_port(), free_port()
    node = make_node(tmp_path, f"1@127.0.0.1:{port},2@127.0.0.1:{other}", port)
    try:
        body = CreateTopicsRequest(
            topics=[CreateTopicsRequest.CreatableTopic(name=n, num_partitions=1) for n in "xy"]
        )
        response = await RequestHandler(node).controller_request(
            body, RequestContext(api_version=7)
        )
        assert isinstance(response, CreateTopicsResponse)
        assert [(t.name, t.error_code) for t in response.topics] == [("x", 41), ("y", 41)]
        assert node.log.end_offset == 0
    finally:
        node.close()


@pytest.mark.parametrize("version", [0, 1])
async def test_sasl_handshake_on_a_plaintext_listener_is_illegal_sasl_state(
    leader: ControllerNode, version: int
) -> None:
    response = await ask(leader, SaslHandshakeRequest(mechanism="PLAIN"), version)
    assert isinstance(response, SaslHandshakeResponse)
    assert (response.error_code, response.mechanisms) == (ErrorCode.ILLEGAL_SASL_STATE, [])


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_sasl_authenticate_on_a_plaintext_listener_is_illegal_sasl_state(
    leader: ControllerNode, version: int
) -> None:
    response = await ask(leader, SaslAuthenticateRequest(auth_bytes=b"x"), version)
    assert isinstance(response, SaslAuthenticateResponse)
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE
    assert response.error_message == (
        "SaslAuthenticate request received after successful authentication"
    )


@pytest.mark.parametrize(("version", "nodes"), [(0, 0), (1, 0), (2, 1)])
async def test_describe_quorum_lists_nodes_only_from_v2(
    leader: ControllerNode, version: int, nodes: int
) -> None:
    body = DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )
    response = await ask(leader, body, version)
    assert isinstance(response, DescribeQuorumResponse)
    (partition,) = response.topics[0].partitions
    assert (partition.error_code, partition.leader_id) == (ErrorCode.NONE, 1)
    assert len(response.nodes) == nodes
    if version < 2:
        assert {v.replica_directory_id for v in partition.current_voters} == {ZERO_UUID}


# -- BrokerHeartbeat, the hot path ----------------------------------------------------------


def registration(cluster_id: str, broker_id: int = 7) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id=cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host="127.0.0.1", port=9092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )


async def test_a_heartbeat_is_answered_without_waiting_for_the_raft_drivers_turn(
    leader: ControllerNode,
) -> None:
    """A BrokerHeartbeat runs the controller step in the connection's own task: it is
    answered (and unfences its broker, as Kafka does once the broker has caught up with
    its registration) even while nobody drains the driver's inbox."""
    registered = await ask(leader, registration(leader.settings.cluster_id), 4)
    assert isinstance(registered, BrokerRegistrationResponse)
    assert registered.error_code == ErrorCode.NONE
    leader.driver.running = True  # calls now queue for a driver task that never runs
    heartbeat = BrokerHeartbeatRequest(
        broker_id=7,
        broker_epoch=registered.broker_epoch,
        current_metadata_offset=registered.broker_epoch,
        want_fence=False,
    )
    with trio.fail_after(5):
        first = await ask(leader, heartbeat, 1)
        second = await ask(leader, heartbeat, 1)
    for response in (first, second):
        assert isinstance(response, BrokerHeartbeatResponse)
        assert (response.error_code, response.is_fenced, response.is_caught_up) == (0, False, True)
    leader.driver.running = False


async def test_a_heartbeat_to_a_node_that_does_not_lead_is_not_controller(
    tmp_path: Path,
) -> None:
    port, other = free_port(), free_port()
    node = make_node(tmp_path, f"1@127.0.0.1:{port},2@127.0.0.1:{other}", port)
    try:
        heartbeat = BrokerHeartbeatRequest(broker_id=7, broker_epoch=3, current_metadata_offset=3)
        response = await ask(node, heartbeat, 1)
        assert isinstance(response, BrokerHeartbeatResponse)
        assert response.error_code == ErrorCode.NOT_CONTROLLER
        assert node.log.end_offset == 0
    finally:
        node.close()


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize(
    ("error", "caught_up", "fenced", "shut_down", "throttle"),
    [
        (0, True, False, False, 0),
        (0, False, True, False, 0),
        (0, True, True, True, 0),
        (ErrorCode.STALE_BROKER_EPOCH, False, True, False, 0),
        (ErrorCode.NOT_CONTROLLER, False, False, True, 2**31 - 1),
    ],
)
def test_a_heartbeat_answer_is_framed_byte_for_byte_as_the_generic_writer_frames_it(
    version: int, error: int, caught_up: bool, fenced: bool, shut_down: bool, throttle: int
) -> None:
    response = BrokerHeartbeatResponse(
        throttle_time_ms=throttle,
        error_code=error,
        is_caught_up=caught_up,
        is_fenced=fenced,
        should_shut_down=shut_down,
    )
    generic = encode_response(BROKER_HEARTBEAT, version, 12345, response)
    assert encode_heartbeat_response(12345, response) == generic
    response.unknown_tagged_fields = (RawTaggedField(9, b"xy"),)
    generic = encode_response(BROKER_HEARTBEAT, version, 12345, response)
    assert encode_heartbeat_response(12345, response) == generic


async def test_request_contexts_are_shared_per_peer_and_client_and_their_cache_is_bounded(
    leader: ControllerNode,
) -> None:
    handler = RequestHandler(leader)

    def header(client_id: str, version: int = 1) -> RequestHeader:
        return RequestHeader(
            request_api_key=BROKER_HEARTBEAT,
            request_api_version=version,
            correlation_id=1,
            client_id=client_id,
        )

    alice = Peer(principal="User:alice", client_host="10.0.0.1")
    bob = Peer(principal="User:bob", client_host="10.0.0.1")
    first = handler.context(header("b1"), alice)
    assert handler.context(header("b1"), alice) is first
    assert (first.principal, first.client_host, first.client_id, first.api_version) == (
        "User:alice",
        "10.0.0.1",
        "b1",
        1,
    )
    assert handler.context(header("b1"), bob).principal == "User:bob"
    assert handler.context(header("b1", 0), alice).api_version == 0
    for i in range(MAX_CONTEXTS + 5):
        assert handler.context(header(f"client-{i}"), alice).client_id == f"client-{i}"
    assert len(handler._contexts) <= MAX_CONTEXTS
