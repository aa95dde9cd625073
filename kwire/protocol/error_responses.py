"""The error answer to any request: the error set on every item the request names.

Kafka gives each request class a `getErrorResponse(throttleTimeMs, exception)`
(clients/src/main/java/org/apache/kafka/common/requests/*Request.java): the response a
client expects when the whole request fails, with the error on each topic, partition,
resource, ACL creation or filter, quota entry or user the request named, so that an admin
client finds "a result for every topic" and reads the error from it. `error_response` is
that function for kwire, one builder per API, taken from Kafka 3.9.

Rules of the table below:

- Every API of the controller listener has a builder (a test enforces it); an API outside
  it gets its top-level `error_code` / `error_message` only, where the response has them.
- The message follows Kafka's two habits. Builders written with Kafka's `ApiError` carry the
  caller's `message`, or none when it is the error's default text or the error is
  UNKNOWN_SERVER_ERROR (Kafka hides that one's text). Builders written with `Errors` carry
  the error's default text whatever the caller says. Where Kafka sets no message, neither
  do we.
- Items are echoed (names, ids, indexes) as Kafka echoes them; nothing else is invented.
  The throttle time stays 0: kwire has no quotas.
- `version` decides only what Kafka decides by version: the items of Fetch below v13, the
  top-level code of ElectLeaders from v1, the token requester of CreateDelegationToken from
  v3, the throttle time of ApiVersions from v1. Which request fields hold the items does
  not depend on it: a field absent at a version holds its default (DeleteTopics below v6
  names topics in `topic_names`, from v6 in `topics`; both are read).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_client_quotas import AlterClientQuotasResponse
from kwire.protocol.messages.alter_configs import AlterConfigsResponse
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsResponse,
)
from kwire.protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsResponse
from kwire.protocol.messages.api_versions import ApiVersionsResponse
from kwire.protocol.messages.create_acls import CreateAclsResponse
from kwire.protocol.messages.create_delegation_token import CreateDelegationTokenResponse
from kwire.protocol.messages.create_partitions import CreatePartitionsResponse
from kwire.protocol.messages.create_topics import CreateTopicsResponse
from kwire.protocol.messages.delete_acls import DeleteAclsResponse
from kwire.protocol.messages.delete_topics import DeleteTopicsResponse
from kwire.protocol.messages.describe_configs import DescribeConfigsResponse
from kwire.protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsResponse,
)
from kwire.protocol.messages.elect_leaders import ElectLeadersResponse
from kwire.protocol.messages.fetch import FetchResponse
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsResponse
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsResponse,
)

__all__ = ["ERROR_RESPONSE_APIS", "error_response", "kafka_api_error_message"]

Builder = Callable[[Any, int, ErrorCode, "str | None"], Message]

API_VERSIONS_KEY = 18
INVALID_HIGH_WATERMARK = -1  # FetchResponse.INVALID_HIGH_WATERMARK
ANONYMOUS_TYPE, ANONYMOUS_NAME = "User", "ANONYMOUS"  # KafkaPrincipal.ANONYMOUS


def error_response(
    request: Message, version: int, error: ErrorCode, message: str | None = None
) -> Message:
    """The response to `request` (sent at `version`) that fails it with `error`.

    Shape: the request's own response class, with `error` in every per-item error code
    Kafka's `getErrorResponse` fills for this API (and in the top-level code where Kafka
    sets one), items echoed in the request's order. `message` is the text a client sees,
    where Kafka passes one on (see the module's rules). Raises KeyError only for an object
    that is not a request of a known API.
    """
    api_key: int = type(request).API_KEY  # type: ignore[attr-defined]
    builder = _BUILDERS.get(api_key, _top_level_where_present)
    return builder(request, version, error, message)


def kafka_api_error_message(error: ErrorCode, message: str | None) -> str | None:
    """The message Kafka's `ApiError.fromThrowable` keeps: none for UNKNOWN_SERVER_ERROR
    or for the error's own default text, else the caller's."""
    if error is ErrorCode.UNKNOWN_SERVER_ERROR or message == error.message:
        return None
    return message


# -- builders for responses with one top-level error --------------------------------------


class Text(Enum):
    """Which message a top-level builder sets (Kafka's habit for that API)."""

    NONE = "none"  # only the code
    GIVEN = "given"  # ApiError: the caller's message
    DEFAULT = "default"  # Errors: the error's default message


def _new_response(request: Message) -> Any:
    return APIS[type(request).API_KEY].response()  # type: ignore[attr-defined]


def _top_level(text: Text) -> Builder:
    def build(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
        response = _new_response(request)
        response.error_code = error
        if text is Text.GIVEN:
            response.error_message = kafka_api_error_message(error, message)
        elif text is Text.DEFAULT:
            response.error_message = error.message
        return response

    return build


def _top_level_where_present(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    response = _new_response(request)
    if hasattr(response, "error_code"):
        response.error_code = error
    if hasattr(response, "error_message"):
        response.error_message = message if message is not None else error.message
    return response


def _api_versions(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    # KIP-511: an UNSUPPORTED_VERSION answer lists ApiVersions' own range, so that the
    # client can pick a version to retry with; any other error lists nothing.
    response = ApiVersionsResponse(error_code=error)
    if error is ErrorCode.UNSUPPORTED_VERSION:
        api = APIS[API_VERSIONS_KEY]
        response.api_keys = [
            ApiVersionsResponse.ApiVersion(
                api_key=API_VERSIONS_KEY,
                min_version=api.lowest_version,
                max_version=api.highest_version,
            )
        ]
    return response


def _create_delegation_token(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    # CreateDelegationTokenResponse.prepareResponse with ANONYMOUS owner and requester.
    response = CreateDelegationTokenResponse(
        error_code=error,
        principal_type=ANONYMOUS_TYPE,
        principal_name=ANONYMOUS_NAME,
        issue_timestamp_ms=-1,
        expiry_timestamp_ms=-1,
        max_timestamp_ms=-1,
        token_id="",
        hmac=b"",
    )
    if version > 2:
        response.token_requester_principal_type = ANONYMOUS_TYPE
        response.token_requester_principal_name = ANONYMOUS_NAME
    return response


# -- builders for responses with an error per item ----------------------------------------


def _fetch(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    # From v13 the top-level code alone says it; older clients read it per partition.
    topics = []
    if version < 13:
        topics = [
            FetchResponse.FetchableTopicResponse(
                topic=topic.topic,
                topic_id=topic.topic_id,
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=partition.partition,
                        error_code=error,
                        high_watermark=INVALID_HIGH_WATERMARK,
                    )
                    for partition in topic.partitions
                ],
            )
            for topic in request.topics
        ]
    return FetchResponse(error_code=error, session_id=request.session_id, responses=topics)


def _create_topics(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    text = kafka_api_error_message(error, message)
    return CreateTopicsResponse(
        topics=[
            CreateTopicsResponse.CreatableTopicResult(
                name=topic.name, error_code=error, error_message=text
            )
            for topic in request.topics
        ]
    )


def _delete_topics(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    # Kafka sets no message here; topics named only by name keep the zero topic id.
    results = [
        DeleteTopicsResponse.DeletableTopicResult(
            name=topic.name, topic_id=topic.topic_id, error_code=error, error_message=None
        )
        for topic in request.topics
    ]
    results += [
        DeleteTopicsResponse.DeletableTopicResult(name=name, error_code=error, error_message=None)
        for name in request.topic_names
    ]
    return DeleteTopicsResponse(responses=results)


def _create_acls(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    text = kafka_api_error_message(error, message)
    return CreateAclsResponse(
        results=[
            CreateAclsResponse.AclCreationResult(error_code=error, error_message=text)
            for _ in request.creations
        ]
    )


def _delete_acls(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    text = kafka_api_error_message(error, message)
    return DeleteAclsResponse(
        filter_results=[
            DeleteAclsResponse.DeleteAclsFilterResult(error_code=error, error_message=text)
            for _ in request.filters
        ]
    )


def _describe_configs(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    return DescribeConfigsResponse(
        results=[
            DescribeConfigsResponse.DescribeConfigsResult(
                error_code=error,
                error_message=error.message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            for resource in request.resources
        ]
    )


def _alter_configs(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    text = kafka_api_error_message(error, message)
    return AlterConfigsResponse(
        responses=[
            AlterConfigsResponse.AlterConfigsResourceResponse(
                error_code=error,
                error_message=text,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            for resource in request.resources
        ]
    )


def _incremental_alter_configs(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    text = kafka_api_error_message(error, message)
    return IncrementalAlterConfigsResponse(
        responses=[
            IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
                error_code=error,
                error_message=text,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            for resource in request.resources
        ]
    )


def _create_partitions(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    text = kafka_api_error_message(error, message)
    return CreatePartitionsResponse(
        results=[
            CreatePartitionsResponse.CreatePartitionsTopicResult(
                name=topic.name, error_code=error, error_message=text
            )
            for topic in request.topics
        ]
    )


def _elect_leaders(request: Any, version: int, error: ErrorCode, message: str | None) -> Message:
    # A null topic list (elect for every partition) names no item; v0 has no top-level code.
    text = kafka_api_error_message(error, message)
    return ElectLeadersResponse(
        error_code=error if version >= 1 else ErrorCode.NONE,
        replica_election_results=[
            ElectLeadersResponse.ReplicaElectionResult(
                topic=topic.topic,
                partition_result=[
                    ElectLeadersResponse.PartitionResult(
                        partition_id=partition, error_code=error, error_message=text
                    )
                    for partition in topic.partitions
                ],
            )
            for topic in request.topic_partitions or ()
        ],
    )


def _alter_partition_reassignments(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    text = kafka_api_error_message(error, message)
    response = AlterPartitionReassignmentsResponse
    return response(
        error_code=error,
        error_message=text,
        responses=[
            response.ReassignableTopicResponse(
                name=topic.name,
                partitions=[
                    response.ReassignablePartitionResponse(
                        partition_index=partition.partition_index,
                        error_code=error,
                        error_message=text,
                    )
                    for partition in topic.partitions
                ],
            )
            for topic in request.topics
        ],
    )


def _list_partition_reassignments(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    # Partitions carry no error code: the top-level one covers each echoed partition.
    response = ListPartitionReassignmentsResponse
    return response(
        error_code=error,
        error_message=kafka_api_error_message(error, message),
        topics=[
            response.OngoingTopicReassignment(
                name=topic.name,
                partitions=[
                    response.OngoingPartitionReassignment(partition_index=index)
                    for index in topic.partition_indexes
                ],
            )
            for topic in request.topics or ()
        ],
    )


def _alter_client_quotas(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    response = AlterClientQuotasResponse
    return response(
        entries=[
            response.EntryData(
                error_code=error,
                error_message=error.message,
                entity=[
                    response.EntityData(
                        entity_type=entity.entity_type, entity_name=entity.entity_name
                    )
                    for entity in entry.entity
                ],
            )
            for entry in request.entries
        ]
    )


def _describe_user_scram_credentials(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    # As Kafka: one result per user asked for, without the user's name. (A null user list,
    # "every user", makes Kafka's own builder fail; here it names no item.)
    text = kafka_api_error_message(error, message)
    response = DescribeUserScramCredentialsResponse
    return response(
        error_code=error,
        error_message=text,
        results=[
            response.DescribeUserScramCredentialsResult(error_code=error, error_message=text)
            for _ in request.users or ()
        ],
    )


def _java_string_order(text: str) -> bytes:
    # Java's String.compareTo compares UTF-16 code units.
    return text.encode("utf-16-be", "surrogatepass")


def _alter_user_scram_credentials(
    request: Any, version: int, error: ErrorCode, message: str | None
) -> Message:
    # One result per distinct user among deletions and upsertions, sorted by name.
    text = kafka_api_error_message(error, message)
    users = {d.name for d in request.deletions} | {u.name for u in request.upsertions}
    return AlterUserScramCredentialsResponse(
        results=[
            AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult(
                user=user, error_code=error, error_message=text
            )
            for user in sorted(users, key=_java_string_order)
        ]
    )


# -- the table: api key -> builder, for every API of the controller listener --------------

_BUILDERS: dict[int, Builder] = {
    1: _fetch,  # Fetch
    7: _top_level(Text.NONE),  # ControlledShutdown
    17: _top_level(Text.NONE),  # SaslHandshake
    18: _api_versions,  # ApiVersions
    19: _create_topics,  # CreateTopics
    20: _delete_topics,  # DeleteTopics
    29: _top_level(Text.GIVEN),  # DescribeAcls
    30: _create_acls,  # CreateAcls
    31: _delete_acls,  # DeleteAcls
    32: _describe_configs,  # DescribeConfigs
    33: _alter_configs,  # AlterConfigs
    36: _top_level(Text.GIVEN),  # SaslAuthenticate
    37: _create_partitions,  # CreatePartitions
    38: _create_delegation_token,  # CreateDelegationToken
    39: _top_level(Text.NONE),  # RenewDelegationToken
    40: _top_level(Text.NONE),  # ExpireDelegationToken
    41: _top_level(Text.NONE),  # DescribeDelegationToken
    43: _elect_leaders,  # ElectLeaders
    44: _incremental_alter_configs,  # IncrementalAlterConfigs
    45: _alter_partition_reassignments,  # AlterPartitionReassignments
    46: _list_partition_reassignments,  # ListPartitionReassignments
    49: _alter_client_quotas,  # AlterClientQuotas
    50: _describe_user_scram_credentials,  # DescribeUserScramCredentials
    51: _alter_user_scram_credentials,  # AlterUserScramCredentials
    52: _top_level(Text.NONE),  # Vote
    53: _top_level(Text.NONE),  # BeginQuorumEpoch
    54: _top_level(Text.NONE),  # EndQuorumEpoch
    55: _top_level(Text.DEFAULT),  # DescribeQuorum
    56: _top_level(Text.NONE),  # AlterPartition
    57: _top_level(Text.GIVEN),  # UpdateFeatures
    58: _top_level(Text.NONE),  # Envelope
    59: _top_level(Text.NONE),  # FetchSnapshot
    60: _top_level(Text.GIVEN),  # DescribeCluster
    62: _top_level(Text.NONE),  # BrokerRegistration
    63: _top_level(Text.NONE),  # BrokerHeartbeat
    64: _top_level(Text.NONE),  # UnregisterBroker
    67: _top_level(Text.NONE),  # AllocateProducerIds
    70: _top_level(Text.DEFAULT),  # ControllerRegistration
    73: _top_level(Text.NONE),  # AssignReplicasToDirs
    80: _top_level(Text.DEFAULT),  # AddRaftVoter
    81: _top_level(Text.DEFAULT),  # RemoveRaftVoter
    82: _top_level(Text.NONE),  # UpdateRaftVoter
}

ERROR_RESPONSE_APIS = frozenset(_BUILDERS)
