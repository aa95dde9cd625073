"""Envelope (58): a broker forwards a client's request to the controller.

Kafka 3.9 (core/.../server/EnvelopeUtils.scala, ControllerApis.handleEnvelopeRequest,
network/RequestChannel.scala) checks, in this order: the client's principal
(PRINCIPAL_DESERIALIZATION_FAILURE), the client's address (INVALID_REQUEST), the inner
header (UNSUPPORTED_VERSION), that the inner API is forwardable (INVALID_REQUEST), the inner
body (UNSUPPORTED_VERSION). A refused Envelope carries no response data and runs nothing.
These tests drive an in-process leader through the request handler.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from node_harness import leader, make_node
from server_harness import free_port

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request
from kwire.protocol.messages.allocate_producer_ids import (
    AllocateProducerIdsRequest,
    AllocateProducerIdsResponse,
)
from kwire.protocol.messages.api_versions import ApiVersionsRequest
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.data.default_principal_data import DefaultPrincipalData
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.server.dispatch import RequestHandler
from kwire.server.node import ControllerNode

__all__ = ["leader"]  # the fixture, imported for pytest to find

BROKER_CLIENT_ADDRESS = bytes([127, 0, 0, 1])


def principal_bytes(kind: str = "User", name: str = "alice") -> bytes:
    """What a Kafka broker's DefaultKafkaPrincipalBuilder.serialize writes."""
    return (0).to_bytes(2, "big") + DefaultPrincipalData(type=kind, name=name).encode(0)


def inner(body: Message, version: int, correlation_id: int = 11) -> bytes:
    header = RequestHeader(
        request_api_key=body.API_KEY,  # type: ignore[attr-defined]
        request_api_version=version,
        correlation_id=correlation_id,
        client_id="admin-client",
    )
    return encode_request(header, body)


def inner_header(api_key: int, version: int) -> bytes:
    """Only the header of an inner request, for bodies written by hand."""
    header = RequestHeader(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=11,
        client_id="admin-client",
    )
    return header.encode(APIS[api_key].request_header_version(version))


def envelope(
    request_data: bytes,
    principal: bytes | None = None,
    address: bytes = BROKER_CLIENT_ADDRESS,
) -> tuple[RequestHeader, EnvelopeRequest]:
    header = RequestHeader(
        request_api_key=58, request_api_version=0, correlation_id=5, client_id="broker-1"
    )
    body = EnvelopeRequest(
        request_data=request_data,
        request_principal=principal_bytes() if principal is None else principal,
        client_host_address=address,
    )
    return header, body


def registration(broker_id: int, cluster_id: str) -> BrokerRegistrationRequest:
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
        log_dirs=[uuid.uuid4()],
        previous_broker_epoch=-1,
    )


async def send(
    node: ControllerNode, request: tuple[RequestHeader, EnvelopeRequest]
) -> EnvelopeResponse:
    response = await RequestHandler(node).handle(*request)
    assert isinstance(response, EnvelopeResponse)
    return response


def refused(response: EnvelopeResponse) -> ErrorCode:
    """The Envelope's error code, after checking that nothing inner came back."""
    assert response.response_data is None
    return ErrorCode(response.error_code)


# -- forwardability ---------------------------------------------------------------------------


async def test_a_broker_registration_in_an_envelope_is_refused_and_registers_nothing(
    leader: ControllerNode,
) -> None:
    end = leader.log.end_offset
    forwarded = inner(registration(42, leader.settings.cluster_id), 4)
    response = await send(leader, envelope(forwarded))
    assert refused(response) == ErrorCode.INVALID_REQUEST
    assert 42 not in leader.controller.brokers
    assert leader.log.end_offset == end  # nothing was written


async def test_an_api_versions_in_an_envelope_is_refused_with_invalid_request(
    leader: ControllerNode,
) -> None:
    request = ApiVersionsRequest(client_software_name="kafka", client_software_version="3")
    response = await send(leader, envelope(inner(request, 3)))
    assert refused(response) == ErrorCode.INVALID_REQUEST


async def test_an_envelope_inside_an_envelope_is_refused_with_invalid_request(
    leader: ControllerNode,
) -> None:
    nested = inner(envelope(inner(DeleteTopicsRequest(topic_names=["t"]), 4))[1], 0)
    response = await send(leader, envelope(nested))
    assert refused(response) == ErrorCode.INVALID_REQUEST


async def test_a_forwardable_request_is_answered_inside_the_envelope(
    leader: ControllerNode,
) -> None:
    handler = RequestHandler(leader)
    header = RequestHeader(
        request_api_key=62, request_api_version=4, correlation_id=1, client_id="broker-7"
    )
    registered = await handler.handle(header, registration(7, leader.settings.cluster_id))
    assert isinstance(registered, BrokerRegistrationResponse)
    assert registered.error_code == ErrorCode.NONE
    request = AllocateProducerIdsRequest(broker_id=7, broker_epoch=registered.broker_epoch)
    response = await send(leader, envelope(inner(request, 0, correlation_id=99)))
    assert response.error_code == ErrorCode.NONE
    assert response.response_data is not None
    response_header, answer = decode_response(bytes(response.response_data), 67, 0)
    assert response_header.correlation_id == 99
    assert isinstance(answer, AllocateProducerIdsResponse)
    assert (answer.error_code, answer.producer_id_len) == (ErrorCode.NONE, 1000)


async def test_a_forwarded_delete_topics_gets_the_controllers_answer_on_each_item_inside(
    leader: ControllerNode,
) -> None:
    request = DeleteTopicsRequest(topic_names=["a", "b"])
    response = await send(leader, envelope(inner(request, 5)))
    assert response.error_code == ErrorCode.NONE
    assert response.response_data is not None
    _, answer = decode_response(bytes(response.response_data), 20, 5)
    assert isinstance(answer, DeleteTopicsResponse)
    # Unknown names: UNKNOWN_TOPIC_OR_PARTITION each (ControllerApis.deleteTopics).
    assert sorted((r.name, r.error_code) for r in answer.responses) == [("a", 3), ("b", 3)]


async def test_a_forwarded_describe_quorum_is_answered_by_raft(leader: ControllerNode) -> None:
    request = DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )
    response = await send(leader, envelope(inner(request, 1)))
    assert response.error_code == ErrorCode.NONE
    assert response.response_data is not None
    _, answer = decode_response(bytes(response.response_data), 55, 1)
    assert isinstance(answer, DescribeQuorumResponse)
    assert answer.topics[0].partitions[0].leader_id == 1


# -- principal, address, header, body -------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="one-byte"),
        pytest.param(b"\x00\x07" + DefaultPrincipalData(type="User", name="a").encode(0), id="v7"),
        pytest.param(b"\x00\x00\x00\x04Us", id="truncated"),
    ],
)
async def test_a_principal_that_does_not_deserialize_is_principal_deserialization_failure(
    leader: ControllerNode, principal: bytes
) -> None:
    request = inner(CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(name="t")]), 7)
    response = await send(leader, envelope(request, principal=principal))
    assert refused(response) == ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE


async def test_a_null_principal_is_principal_deserialization_failure(
    leader: ControllerNode,
) -> None:
    header, body = envelope(inner(DeleteTopicsRequest(topic_names=["t"]), 4))
    body.request_principal = None
    assert (
        refused(await send(leader, (header, body))) == ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE
    )


@pytest.mark.parametrize("address", [b"", b"\x7f\x00\x01", bytes(5), bytes(17)], ids=len)
async def test_a_client_address_not_of_4_or_16_bytes_is_invalid_request(
    leader: ControllerNode, address: bytes
) -> None:
    request = inner(DeleteTopicsRequest(topic_names=["t"]), 4)
    assert refused(await send(leader, envelope(request, address=address))) == (
        ErrorCode.INVALID_REQUEST
    )


async def test_an_ipv6_client_address_is_accepted(leader: ControllerNode) -> None:
    request = inner(DeleteTopicsRequest(topic_names=["t"]), 4)
    response = await send(leader, envelope(request, address=bytes(15) + b"\x01"))
    assert response.error_code == ErrorCode.NONE


@pytest.mark.parametrize(
    "request_data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x13", id="no-version"),
        pytest.param(b"\x03\xe7\x00\x00\x00\x00\x00\x01", id="unknown-api-999"),
        pytest.param(b"\x00\x13\x00\x07\x00\x00\x00\x01\x00", id="truncated-header"),
    ],
)
async def test_an_inner_header_that_does_not_parse_is_unsupported_version(
    leader: ControllerNode, request_data: bytes
) -> None:
    assert refused(await send(leader, envelope(request_data))) == ErrorCode.UNSUPPORTED_VERSION


async def test_a_valid_inner_header_with_a_body_that_does_not_parse_is_unsupported_version(
    leader: ControllerNode,
) -> None:
    # CreateTopics v7: a topic count of 0x7ffffffe, then nothing.
    garbage = inner_header(19, 7) + b"\xff\xff\xff\xff\x07"
    assert refused(await send(leader, envelope(garbage))) == ErrorCode.UNSUPPORTED_VERSION


async def test_an_inner_version_the_api_lacks_is_unsupported_version(
    leader: ControllerNode,
) -> None:
    data = bytearray(inner(DeleteTopicsRequest(topic_names=["t"]), 4))
    data[2:4] = (99).to_bytes(2, "big")
    assert refused(await send(leader, envelope(bytes(data)))) == ErrorCode.UNSUPPORTED_VERSION


async def test_the_principal_is_checked_before_forwardability(leader: ControllerNode) -> None:
    forwarded = inner(registration(42, leader.settings.cluster_id), 4)
    response = await send(leader, envelope(forwarded, principal=b""))
    assert refused(response) == ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE


async def test_the_inner_header_is_checked_before_forwardability_and_the_body_after(
    leader: ControllerNode,
) -> None:
    # A non-forwardable API with a garbage body: forwardability decides (INVALID_REQUEST).
    response = await send(leader, envelope(inner_header(62, 4) + b"\xff"))
    assert refused(response) == ErrorCode.INVALID_REQUEST


# -- not the leader ------------------------------------------------------------------------------


async def test_an_envelope_on_a_node_that_does_not_lead_answers_not_controller_without_data(
    tmp_path: Path,
) -> None:
    # Two voters and the other never answers: this node cannot lead.
    port, other = free_port(), free_port()
    node = make_node(tmp_path, f"1@127.0.0.1:{port},2@127.0.0.1:{other}", port)
    try:
        assert not node.raft.is_leader
        request = AllocateProducerIdsRequest(broker_id=2, broker_epoch=1)
        response = await send(node, envelope(inner(request, 0)))
        assert refused(response) == ErrorCode.NOT_CONTROLLER
        assert node.log.end_offset == 0
    finally:
        node.close()
