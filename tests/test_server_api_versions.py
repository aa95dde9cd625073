"""ApiVersions on the controller listener: the client's software name and version (KIP-511).

Kafka 3.9's ApiVersionsRequest.isValid requires, from v3, that both match
`[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?`; ControllerApis answers an invalid one with
getErrorResponse(INVALID_REQUEST): error 42, no API list, throttle 0, no features (the
finalized features epoch stays -1). These tests send the bytes through the server's own
`answer` and read the response as a client would.
"""

from __future__ import annotations

import pytest
from node_harness import leader

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response, encode_request
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.server.dispatch import CONTROLLER_APIS, RequestHandler
from kwire.server.node import ControllerNode
from kwire.server.serve import answer

__all__ = ["leader"]  # the fixture, imported for pytest to find


async def api_versions(
    node: ControllerNode, version: int, name: str, software_version: str
) -> ApiVersionsResponse:
    header = RequestHeader(
        request_api_key=18, request_api_version=version, correlation_id=3, client_id="c"
    )
    body = ApiVersionsRequest(client_software_name=name, client_software_version=software_version)
    frame = await answer(encode_request(header, body), RequestHandler(node))
    response_header, response = decode_response(frame, 18, version)
    assert response_header.correlation_id == 3
    assert isinstance(response, ApiVersionsResponse)
    return response


INVALID = [
    pytest.param("RP Console", "1.0", id="space-in-name"),
    pytest.param("", "1.0", id="empty-name"),
    pytest.param("kafka-python", "", id="empty-version"),
    pytest.param("librdkafka", "2.3.0+build", id="plus-in-version"),
    pytest.param("-kwire", "1.0", id="name-starts-with-dash"),
    pytest.param("kwire.", "1.0", id="name-ends-with-dot"),
    pytest.param("kwire", "1.0-", id="version-ends-with-dash"),
    pytest.param("kwiré", "1.0", id="non-ascii-letter"),
    pytest.param("kwire_client", "1.0", id="underscore"),
]

VALID = [
    pytest.param("apache-kafka-java", "3.9.0", id="java-client"),
    pytest.param("a", "1", id="one-character-each"),
    pytest.param("confluent-kafka-python", "2.3.0-rc1", id="dash-and-dots-inside"),
]


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize(("name", "software_version"), INVALID)
async def test_a_software_name_or_version_kafka_refuses_gets_invalid_request_and_no_apis(
    leader: ControllerNode, version: int, name: str, software_version: str
) -> None:
    response = await api_versions(leader, version, name, software_version)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert response.api_keys == []
    assert response.throttle_time_ms == 0
    assert response.supported_features == []
    assert response.finalized_features == []
    assert response.finalized_features_epoch == -1
    assert response.zk_migration_ready is False


@pytest.mark.parametrize(("name", "software_version"), VALID)
async def test_a_valid_software_name_and_version_gets_the_full_list(
    leader: ControllerNode, name: str, software_version: str
) -> None:
    response = await api_versions(leader, 3, name, software_version)
    assert response.error_code == ErrorCode.NONE
    assert [a.api_key for a in response.api_keys] == CONTROLLER_APIS
    # The union of Kafka 3.9.0's and 4.3.1's supported features, in the order of Kafka's
    # HashMap (as a genuine 4.3.1 controller's ApiVersions lists them).
    assert [(f.name, f.min_version, f.max_version) for f in response.supported_features] == [
        ("group.version", 0, 1),
        ("kraft.version", 0, 1),
        ("metadata.version", 1, 30),
        ("share.version", 0, 1),
        ("streams.version", 0, 1),
        ("transaction.version", 0, 2),
        ("eligible.leader.replicas.version", 0, 1),
    ]


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_versions_before_3_carry_no_software_name_and_are_always_valid(
    leader: ControllerNode, version: int
) -> None:
    response = await api_versions(leader, version, "", "")
    assert response.error_code == ErrorCode.NONE
    assert [a.api_key for a in response.api_keys] == CONTROLLER_APIS


async def test_a_software_name_that_is_not_utf8_is_answered_invalid_request(
    leader: ControllerNode,
) -> None:
    """Kafka reads strings with new String(bytes, UTF_8): malformed bytes become U+FFFD,
    which the name pattern refuses, so the answer is INVALID_REQUEST, not a closed
    connection."""
    header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=5)
    good = encode_request(
        header, ApiVersionsRequest(client_software_name="ab", client_software_version="1")
    )
    assert good.count(b"\x03ab") == 1  # the compact string "ab": length + 1, then bytes
    frame = await answer(good.replace(b"\x03ab", b"\x03\xff\xfe"), RequestHandler(leader))
    _, response = decode_response(frame, 18, 3)
    assert isinstance(response, ApiVersionsResponse)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert response.api_keys == []
