"""kwire.protocol.error_responses: the error on every item, as Kafka's getErrorResponse.

For every API a Kafka 3.9 controller listener offers and every version of it, a request
with items gets a response that encodes at that version and, read back, carries the
error for each item of the request (echoing what identifies the item) or, where Kafka's
response has no per-item code, in its top-level code. The expected items below are
written from Kafka's *Request.getErrorResponse, independently of the module's builders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import messages, populated

from kwire.protocol._codec import ZERO_UUID
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.error_responses import ERROR_RESPONSE_APIS, error_response
from kwire.protocol.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
)
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.create_delegation_token import (
    CreateDelegationTokenRequest,
    CreateDelegationTokenResponse,
)
from kwire.protocol.messages.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest, ElectLeadersResponse
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.index import APIS
from kwire.server.dispatch import CONTROLLER_APIS

ERRORS = (ErrorCode.UNSUPPORTED_VERSION, ErrorCode.NOT_CONTROLLER)
NOT_IMPLEMENTED = "This controller does not implement this API yet."


# -- what Kafka's getErrorResponse answers, API by API --------------------------------------


def walk(value: Any, path: str) -> list[Any]:
    """The values at `path` ("topics.partitions"), lists flattened, null lists empty."""
    found = [value]
    for attribute in path.split("."):
        step: list[Any] = []
        for item in found:
            child = getattr(item, attribute)
            if child is None:
                continue
            step += child if isinstance(child, list) else [child]
        found = step
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Items:
    """Where a request's items are, where their results are, and what each echoes.

    `request_keys(request, version)` lists what identifies each item, in Kafka's order;
    `results(response)` lists (identity, error code) per result, the code None where
    Kafka's result has none; `top_level(version)` says whether the top-level code is set.
    """

    request_keys: Callable[[Any, int], list[Any]]
    results: Callable[[Any], list[tuple[Any, int | None]]]
    top_level: Callable[[int], bool]


def per_item(
    request_path: str,
    response_path: str,
    request_key: Callable[[Any], Any] = lambda item: None,
    response_key: Callable[[Any], Any] = lambda item: None,
    top_level: Callable[[int], bool] = lambda version: False,
    item_has_code: bool = True,
) -> Items:
    return Items(
        request_keys=lambda request, version: [
            request_key(item) for item in walk(request, request_path)
        ],
        results=lambda response: [
            (response_key(item), item.error_code if item_has_code else None)
            for item in walk(response, response_path)
        ],
        top_level=top_level,
    )


TOP_LEVEL_ONLY = Items(
    request_keys=lambda request, version: [],
    results=lambda response: [],
    top_level=lambda version: True,
)


def resource(item: Any) -> tuple[int, str]:
    return (item.resource_type, item.resource_name)


def fetch_items() -> Items:
    # Below v13 every partition carries the error; from v13 only the top-level code.
    below_13 = per_item(
        "topics.partitions",
        "responses.partitions",
        lambda p: p.partition,
        lambda p: p.partition_index,
    )
    return Items(
        request_keys=lambda r, v: below_13.request_keys(r, v) if v < 13 else [],
        results=below_13.results,
        top_level=lambda version: version >= 7,  # the first version with a top-level code
    )


def delete_topics_items() -> Items:
    def keys(request: Any, version: int) -> list[Any]:
        if version >= 6:
            return [(t.name, t.topic_id) for t in request.topics]
        return [(name, ZERO_UUID) for name in request.topic_names]

    return Items(
        request_keys=keys,
        results=lambda response: [((r.name, r.topic_id), r.error_code) for r in response.responses],
        top_level=lambda version: False,
    )


def alter_user_scram_items() -> Items:
    # One result per distinct user among deletions and upsertions, sorted by name.
    return Items(
        request_keys=lambda request, version: sorted(
            {d.name for d in request.deletions} | {u.name for u in request.upsertions},
            key=lambda name: name.encode("utf-16-be", "surrogatepass"),
        ),
        results=lambda response: [(r.user, r.error_code) for r in response.results],
        top_level=lambda version: False,
    )


KAFKA_ITEMS: dict[int, Items] = {
    1: fetch_items(),
    19: per_item("topics", "topics", lambda t: t.name, lambda t: t.name),
    20: delete_topics_items(),
    30: per_item("creations", "results"),
    31: per_item("filters", "filter_results"),
    32: per_item("resources", "results", resource, resource),
    33: per_item("resources", "responses", resource, resource),
    37: per_item("topics", "results", lambda t: t.name, lambda t: t.name),
    43: per_item(
        "topic_partitions.partitions",
        "replica_election_results.partition_result",
        lambda index: index,
        lambda p: p.partition_id,
        top_level=lambda version: version >= 1,  # v0 has no top-level code
    ),
    44: per_item("resources", "responses", resource, resource),
    45: per_item(
        "topics.partitions",
        "responses.partitions",
        lambda p: p.partition_index,
        lambda p: p.partition_index,
        top_level=lambda version: True,
    ),
    46: per_item(
        "topics.partition_indexes",
        "topics.partitions",
        lambda index: index,
        lambda p: p.partition_index,
        top_level=lambda version: True,
        item_has_code=False,  # the echoed partitions have no code: the top-level one says it
    ),
    49: per_item(
        "entries",
        "entries",
        lambda e: [(x.entity_type, x.entity_name) for x in e.entity],
        lambda e: [(x.entity_type, x.entity_name) for x in e.entity],
    ),
    50: per_item("users", "results", top_level=lambda version: True),
    51: alter_user_scram_items(),
}


def elect_leaders_partition_codes(response: ElectLeadersResponse) -> list[int]:
    return [p.error_code for t in response.replica_election_results for p in t.partition_result]


def controller_pairs() -> list[tuple[int, int]]:
    return [
        (key, version)
        for key in CONTROLLER_APIS
        for version in range(APIS[key].lowest_version, APIS[key].highest_version + 1)
    ]


def pair_name(pair: tuple[int, int]) -> str:
    return f"{APIS[pair[0]].name}-v{pair[1]}"


def read_back(response: Any, version: int) -> Any:
    """The response as a client reads it: encoded at `version`, decoded again."""
    return type(response).decode(response.encode(version), version)


def assert_error_on_every_item(
    api_key: int, request: Any, version: int, response: Any, error: ErrorCode
) -> None:
    spec = KAFKA_ITEMS.get(api_key, TOP_LEVEL_ONLY)
    results = spec.results(response)
    assert [key for key, _ in results] == spec.request_keys(request, version)
    if spec.top_level(version):
        assert response.error_code == error
    else:  # no top-level code: every item must carry the error itself
        assert all(code is not None for _, code in results)
    assert all(code == error for _, code in results if code is not None)


# -- the table covers the controller listener ------------------------------------------------


def test_every_api_of_the_controller_listener_has_a_builder() -> None:
    assert set(CONTROLLER_APIS) <= ERROR_RESPONSE_APIS


@pytest.mark.parametrize("pair", controller_pairs(), ids=pair_name)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.name)
def test_a_request_with_two_of_each_item_gets_the_error_on_each_at_every_version(
    pair: tuple[int, int], error: ErrorCode
) -> None:
    api_key, version = pair
    request = populated(APIS[api_key].request, version, elements=2)
    response = read_back(error_response(request, version, error, NOT_IMPLEMENTED), version)
    assert_error_on_every_item(api_key, request, version, response, error)


@pytest.mark.parametrize("pair", controller_pairs(), ids=pair_name)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_request_gets_an_error_answer_that_encodes_with_the_error_on_each_item(
    pair: tuple[int, int], data: st.DataObject
) -> None:
    api_key, version = pair
    request = data.draw(messages(APIS[api_key].request, version, unknown_tagged=False))
    error = ErrorCode.UNSUPPORTED_VERSION
    response = read_back(error_response(request, version, error, NOT_IMPLEMENTED), version)
    assert_error_on_every_item(api_key, request, version, response, error)


# -- named cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 7))
def test_delete_topics_with_two_topics_gets_two_results_each_unsupported_version(
    version: int,
) -> None:
    if version >= 6:
        request = DeleteTopicsRequest(
            topics=[DeleteTopicsRequest.DeleteTopicState(name=n) for n in ("a", "b")]
        )
    else:
        request = DeleteTopicsRequest(topic_names=["a", "b"])
    response = read_back(
        error_response(request, version, ErrorCode.UNSUPPORTED_VERSION, NOT_IMPLEMENTED),
        version,
    )
    assert isinstance(response, DeleteTopicsResponse)
    assert [(r.name, r.error_code) for r in response.responses] == [("a", 35), ("b", 35)]
    # Kafka's DeleteTopics answer carries no message, whatever the caller says.
    assert [r.error_message for r in response.responses] == [None, None]


def test_create_partitions_names_each_topic_with_the_error_and_the_callers_message() -> None:
    request = CreatePartitionsRequest(
        topics=[CreatePartitionsRequest.CreatePartitionsTopic(name=n, count=3) for n in "xy"]
    )
    response = error_response(request, 3, ErrorCode.UNSUPPORTED_VERSION, NOT_IMPLEMENTED)
    assert isinstance(response, CreatePartitionsResponse)
    assert [(r.name, r.error_code, r.error_message) for r in response.results] == [
        ("x", 35, NOT_IMPLEMENTED),
        ("y", 35, NOT_IMPLEMENTED),
    ]


def test_create_topics_drops_a_message_that_is_only_the_errors_default_text() -> None:
    # ApiError.fromThrowable keeps no message equal to the error's default one.
    request = CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(name="t")])
    default = ErrorCode.NOT_CONTROLLER.message
    response = error_response(request, 7, ErrorCode.NOT_CONTROLLER, default)
    assert isinstance(response, CreateTopicsResponse)
    assert [(t.name, t.error_code, t.error_message) for t in response.topics] == [("t", 41, None)]


def test_unknown_server_error_never_carries_the_callers_message() -> None:
    request = CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(name="t")])
    response = error_response(request, 7, ErrorCode.UNKNOWN_SERVER_ERROR, "secret detail")
    assert isinstance(response, CreateTopicsResponse)
    assert response.topics[0].error_message is None


def test_describe_configs_carries_the_errors_default_text_as_kafka_does() -> None:
    request = DescribeConfigsRequest(
        resources=[
            DescribeConfigsRequest.DescribeConfigsResource(resource_type=2, resource_name="t")
        ]
    )
    response = error_response(request, 4, ErrorCode.UNSUPPORTED_VERSION, NOT_IMPLEMENTED)
    assert isinstance(response, DescribeConfigsResponse)
    (result,) = response.results
    assert (result.resource_type, result.resource_name, result.error_code) == (2, "t", 35)
    assert result.error_message == "The version of API is not supported."


@pytest.mark.parametrize(("version", "top_level"), [(0, 0), (1, 35), (2, 35)])
def test_elect_leaders_sets_the_top_level_code_only_from_v1(version: int, top_level: int) -> None:
    request = ElectLeadersRequest(
        topic_partitions=[ElectLeadersRequest.TopicPartitions(topic="t", partitions=[0, 1])]
    )
    response = read_back(error_response(request, version, ErrorCode.UNSUPPORTED_VERSION), version)
    assert isinstance(response, ElectLeadersResponse)
    assert response.error_code == top_level
    assert elect_leaders_partition_codes(response) == [35, 35]


@pytest.mark.parametrize(("version", "partitions"), [(12, 2), (13, 0)])
def test_fetch_answers_per_partition_below_v13_and_with_the_top_level_code_from_v13(
    version: int, partitions: int
) -> None:
    request = FetchRequest(
        session_id=7,
        topics=[
            FetchRequest.FetchTopic(
                topic="t", partitions=[FetchRequest.FetchPartition(partition=p) for p in (0, 1)]
            )
        ],
    )
    response = error_response(request, version, ErrorCode.NOT_CONTROLLER)
    assert isinstance(response, FetchResponse)
    assert (response.error_code, response.session_id) == (41, 7)
    found = [
        (p.partition_index, p.error_code, p.high_watermark)
        for p in walk(response, "responses.partitions")
    ]
    assert found == [(0, 41, -1), (1, 41, -1)][:partitions]


def test_alter_user_scram_credentials_answers_each_user_once_in_name_order() -> None:
    request = AlterUserScramCredentialsRequest(
        deletions=[AlterUserScramCredentialsRequest.ScramCredentialDeletion(name="bob")],
        upsertions=[
            AlterUserScramCredentialsRequest.ScramCredentialUpsertion(name=n) for n in ("bob", "al")
        ],
    )
    response = error_response(request, 0, ErrorCode.UNSUPPORTED_VERSION, NOT_IMPLEMENTED)
    assert isinstance(response, AlterUserScramCredentialsResponse)
    assert [(r.user, r.error_code) for r in response.results] == [("al", 35), ("bob", 35)]


@pytest.mark.parametrize(("version", "requester"), [(2, ""), (3, "ANONYMOUS")])
def test_create_delegation_token_answers_with_anonymous_principals(
    version: int, requester: str
) -> None:
    response = read_back(
        error_response(CreateDelegationTokenRequest(), version, ErrorCode.UNSUPPORTED_VERSION),
        version,
    )
    assert isinstance(response, CreateDelegationTokenResponse)
    assert (response.error_code, response.principal_type, response.principal_name) == (
        35,
        "User",
        "ANONYMOUS",
    )
    assert (response.issue_timestamp_ms, response.expiry_timestamp_ms) == (-1, -1)
    assert response.token_requester_principal_name == requester


@pytest.mark.parametrize(
    ("error", "listed"),
    [(ErrorCode.UNSUPPORTED_VERSION, [(18, 0, 4)]), (ErrorCode.INVALID_REQUEST, [])],
)
def test_api_versions_lists_only_its_own_range_and_only_for_unsupported_version(
    error: ErrorCode, listed: list[tuple[int, int, int]]
) -> None:
    response = error_response(ApiVersionsRequest(), 3, error)
    assert isinstance(response, ApiVersionsResponse)
    assert response.error_code == error
    assert [(a.api_key, a.min_version, a.max_version) for a in response.api_keys] == listed
    assert response.supported_features == [] and response.finalized_features == []
    assert response.finalized_features_epoch == -1
