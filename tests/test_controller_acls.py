"""CreateAcls, DeleteAcls and DescribeAcls on the controller, as Kafka 3.9's AclApis and
AclControlManager answer them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from test_controller_authorizer import send_as
from test_controller_integrity import Leader

from kwire.controller.acls import RequestNotParsed, acls_in_kafka_order
from kwire.controller.authorizer import (
    AclOperation,
    AclPermissionType,
    AuthorizerSettings,
    PatternType,
    ResourceType,
)
from kwire.controller.java_order import timeline_slot, uuid_hash
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_acls import CreateAclsRequest
from kwire.protocol.messages.delete_acls import DeleteAclsRequest
from kwire.protocol.messages.describe_acls import DescribeAclsRequest
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.remove_access_control_entry_record import (
    RemoveAccessControlEntryRecord,
)

Op, Perm, RT, PT = AclOperation, AclPermissionType, ResourceType, PatternType
ADMIN = "User:admin"
NO_AUTHORIZER = "No Authorizer is configured."


def creation(
    name: str = "foo",
    resource_type: int = RT.TOPIC,
    pattern: int = PT.LITERAL,
    principal: str = "User:alice",
    operation: int = Op.READ,
    permission: int = Perm.ALLOW,
) -> CreateAclsRequest.AclCreation:
    return CreateAclsRequest.AclCreation(
        resource_type=resource_type,
        resource_name=name,
        resource_pattern_type=pattern,
        principal=principal,
        host="*",
        operation=operation,
        permission_type=permission,
    )


def with_authorizer() -> Leader:
    return Leader.started(authorizer=AuthorizerSettings(super_users=frozenset({ADMIN})))


def create(leader: Leader, *creations: CreateAclsRequest.AclCreation, version: int = 3) -> Any:
    return send_as(leader, CreateAclsRequest(creations=list(creations)), version, principal=ADMIN)


def pending_records(leader: Leader) -> list[Any]:
    from kwire.protocol.messages.index import METADATA_RECORDS
    from kwire.records import unframe_metadata_record

    out = []
    for _, value in leader.pending:
        api_key, version, body = unframe_metadata_record(value)
        out.append(METADATA_RECORDS[api_key].decode(body, version))
    return out


def results(response: Any) -> list[tuple[int, str | None]]:
    return [(r.error_code, r.error_message) for r in response.results]


# -- CreateAcls --------------------------------------------------------------------------------

CREATE_CASES = [
    # (name, creation, Kafka's (code, message)): AclApis.handleCreateAcls
    ("a topic ACL", creation(), (ErrorCode.NONE, None)),
    (
        "a CLUSTER ACL not named kafka-cluster",
        creation("other", RT.CLUSTER, operation=Op.ALTER),
        (
            ErrorCode.INVALID_REQUEST,
            "The only valid name for the CLUSTER resource is kafka-cluster",
        ),
    ),
    (
        "an empty resource name",
        creation(""),
        (ErrorCode.INVALID_REQUEST, "Invalid empty resource name"),
    ),
    ("a prefixed ACL", creation("fo", pattern=PT.PREFIXED), (ErrorCode.NONE, None)),
]


@pytest.mark.parametrize(
    ("acl", "expected"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_create_acls_judges_each_creation_as_kafka(
    acl: CreateAclsRequest.AclCreation, expected: tuple[int, str | None]
) -> None:
    leader = with_authorizer()
    response = create(leader, acl)
    assert results(response) == [expected]
    written = [r for r in pending_records(leader) if isinstance(r, AccessControlEntryRecord)]
    assert len(written) == (1 if expected[0] == ErrorCode.NONE else 0)


def test_created_acls_are_written_with_fresh_ids_and_each_acl_only_once() -> None:
    leader = with_authorizer()
    response = create(leader, creation("a"), creation("a"), creation("b", permission=Perm.DENY))
    assert results(response) == [(ErrorCode.NONE, None)] * 3
    records = pending_records(leader)
    assert [(r.resource_name, r.permission_type) for r in records] == [
        ("a", Perm.ALLOW),
        ("b", Perm.DENY),
    ]
    assert len({r.id for r in records}) == 2
    leader.append()
    # An ACL the controller already holds succeeds and writes nothing (existingAcls).
    again = create(leader, creation("a"))
    assert results(again) == [(ErrorCode.NONE, None)] and leader.pending == []


@pytest.mark.parametrize(
    "bad",
    [
        creation(resource_type=RT.ANY),
        creation(pattern=PT.MATCH),
        creation(pattern=PT.ANY),
        creation(operation=Op.ANY),
        creation(permission=Perm.ANY),
    ],
    ids=["resource type ANY", "pattern MATCH", "pattern ANY", "operation ANY", "permission ANY"],
)
def test_a_creation_that_cannot_be_a_binding_fails_the_whole_request_without_message(
    bad: CreateAclsRequest.AclCreation,
) -> None:
    # ResourcePattern / AccessControlEntry throw IllegalArgumentException in AclApis:
    # getErrorResponse -> UNKNOWN_SERVER_ERROR, no message, on every creation.
    leader = with_authorizer()
    response = create(leader, creation(), bad)
    assert results(response) == [(ErrorCode.UNKNOWN_SERVER_ERROR, None)] * 2
    assert leader.pending == []


@pytest.mark.parametrize(
    ("acl", "version"),
    [
        (creation(pattern=PT.PREFIXED), 0),
        (creation(resource_type=RT.UNKNOWN), 3),
        (creation(operation=Op.UNKNOWN), 1),
    ],
    ids=["prefixed at v0", "UNKNOWN resource type", "UNKNOWN operation"],
)
def test_creations_kafka_refuses_to_parse_close_the_connection(
    acl: CreateAclsRequest.AclCreation, version: int
) -> None:
    leader = with_authorizer()
    with pytest.raises(RequestNotParsed):
        create(leader, acl, version=version)


@pytest.mark.parametrize(
    ("acl", "message"),
    [
        (creation(resource_type=99), "Invalid resourceType UNKNOWN"),
        (creation(operation=99), "Invalid operation UNKNOWN"),
    ],
    ids=["resource type code 99", "operation code 99"],
)
def test_codes_no_member_has_parse_as_unknown_and_are_answered_invalid_request(
    acl: CreateAclsRequest.AclCreation, message: str
) -> None:
    """The requests' validate() refuses only the raw code 0; any other code reads as
    UNKNOWN (fromCode) and AclControlManager.validateNewAcl answers it."""
    leader = with_authorizer()
    assert results(create(leader, acl, version=3)) == [(ErrorCode.INVALID_REQUEST, message)]
    assert leader.pending == []


def test_a_filter_with_an_operation_code_no_member_has_matches_nothing() -> None:
    leader = populated()
    response = send_as(
        leader, DeleteAclsRequest(filters=[any_filter(operation=42)]), 3, principal=ADMIN
    )
    assert [(f.error_code, len(f.matching_acls)) for f in response.filter_results] == [
        (ErrorCode.NONE, 0)
    ]


def test_acl_apis_answer_security_disabled_without_an_authorizer() -> None:
    leader = Leader.started()
    assert (
        results(create(leader, creation(), creation("b")))
        == [(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)] * 2
    )
    deleted = send_as(leader, DeleteAclsRequest(filters=[any_filter()]), 3)
    assert [(r.error_code, r.error_message) for r in deleted.filter_results] == [
        (ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    ]
    described = send_as(leader, describe_all(), 3)
    assert (described.error_code, described.error_message) == (
        ErrorCode.SECURITY_DISABLED,
        "No Authorizer is configured on the broker",
    )


def test_acl_apis_need_alter_or_describe_on_the_cluster() -> None:
    leader = with_authorizer()
    response = send_as(leader, CreateAclsRequest(creations=[creation()]), 3, principal="User:x")
    assert results(response) == [
        (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Request CreateAclsRequest is not authorized.")
    ]
    described = send_as(leader, describe_all(), 3, principal="User:x")
    assert described.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_more_than_10000_new_acls_fail_every_valid_creation_with_policy_violation() -> None:
    leader = with_authorizer()
    creations = [creation(f"t{i}") for i in range(10_001)] + [creation("")]
    response = create(leader, *creations)
    assert results(response)[:1] == [
        (ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
    ]
    assert results(response)[-1] == (ErrorCode.INVALID_REQUEST, "Invalid empty resource name")
    assert leader.pending == []


# -- DeleteAcls --------------------------------------------------------------------------------


def any_filter(**fields: Any) -> DeleteAclsRequest.DeleteAclsFilter:
    values: dict[str, Any] = dict(
        resource_type_filter=RT.ANY,
        resource_name_filter=None,
        pattern_type_filter=PT.ANY,
        principal_filter=None,
        host_filter=None,
        operation=Op.ANY,
        permission_type=Perm.ANY,
    )
    values.update(fields)
    return DeleteAclsRequest.DeleteAclsFilter(**values)


def populated() -> Leader:
    leader = with_authorizer()
    create(
        leader,
        creation("foo"),
        creation("fo", pattern=PT.PREFIXED),
        creation("*"),
        creation("bar", principal="User:bob", operation=Op.WRITE),
    )
    leader.append()
    return leader


DELETE_CASES = [
    # (name, filter, names of the ACLs it matches): ResourcePatternFilter.matches and
    # AccessControlEntryFilter.matches.
    ("everything", any_filter(), {"foo", "fo", "*", "bar"}),
    (
        "a literal name",
        any_filter(resource_name_filter="foo", pattern_type_filter=PT.LITERAL),
        {"foo"},
    ),
    ("ANY pattern, exact name", any_filter(resource_name_filter="fo"), {"fo"}),
    (
        "MATCH covers literal, wildcard and prefix",
        any_filter(resource_name_filter="foo", pattern_type_filter=PT.MATCH),
        {"foo", "fo", "*"},
    ),
    ("a principal", any_filter(principal_filter="User:bob"), {"bar"}),
    ("an operation", any_filter(operation=Op.WRITE), {"bar"}),
    ("a permission none has", any_filter(permission_type=Perm.DENY), set()),
    ("a resource type none has", any_filter(resource_type_filter=RT.GROUP), set()),
]


@pytest.mark.parametrize(
    ("acl_filter", "names"), [c[1:] for c in DELETE_CASES], ids=[c[0] for c in DELETE_CASES]
)
def test_delete_acls_removes_what_each_filter_matches(
    acl_filter: DeleteAclsRequest.DeleteAclsFilter, names: set[str]
) -> None:
    leader = populated()
    ids_by_name = {r.resource_name: acl_id for acl_id, r in leader.controller.image.acls.items()}
    response = send_as(leader, DeleteAclsRequest(filters=[acl_filter]), 3, principal=ADMIN)
    [result] = response.filter_results
    assert result.error_code == ErrorCode.NONE
    assert {m.resource_name for m in result.matching_acls} == names
    removed = [
        r.id for r in pending_records(leader) if isinstance(r, RemoveAccessControlEntryRecord)
    ]
    assert sorted(removed) == sorted(ids_by_name[n] for n in names)
    assert {r.resource_name for r in leader.controller.image.acls.values()} == set(
        ids_by_name
    ) - names


def test_an_acl_matched_by_two_filters_is_removed_once_and_reported_twice() -> None:
    leader = populated()
    request = DeleteAclsRequest(filters=[any_filter(resource_name_filter="foo"), any_filter()])
    response = send_as(leader, request, 3, principal=ADMIN)
    assert [len(r.matching_acls) for r in response.filter_results] == [1, 4]
    assert len(pending_records(leader)) == 4


def test_deleted_acls_are_visited_in_the_order_of_kafkas_timeline_hash_map() -> None:
    leader = populated()
    capacity = leader.controller.image.acl_table_capacity
    # BaseHashTable starts at 2 slots and doubles before a put when (size + 1) * 0.75
    # exceeds them: before the third put (2.25 > 2), not before the fourth (3 <= 4).
    assert capacity == 4
    order = [acl_id for acl_id, _ in acls_in_kafka_order(leader.controller)]
    slots = [timeline_slot(uuid_hash(i), capacity) for i in order]
    assert slots == sorted(slots)
    response = send_as(leader, DeleteAclsRequest(filters=[any_filter()]), 3, principal=ADMIN)
    by_id = leader.controller.image.acls
    assert by_id == {}
    names = [m.resource_name for m in response.filter_results[0].matching_acls]
    assert len(names) == 4


def test_removal_records_follow_java_hash_set_order() -> None:
    # HashSet<ApiMessageAndVersion> of RemoveAccessControlEntryRecord: bucket = spread of
    # 31 * (31 + Uuid.hashCode()) in a 16-bucket table (values from java.util.HashSet).
    from kwire.controller.java_order import JavaHashMap, objects_hash

    ids = [UUID(int=(i * 0x9E3779B97F4A7C15) % (1 << 128)) for i in range(1, 6)]
    table: JavaHashMap[UUID, None] = JavaHashMap()
    for acl_id in ids:
        table.put(acl_id, objects_hash(uuid_hash(acl_id), 0), None)
    ordered = [k for k, _ in table.items()]
    buckets = [
        ((h := objects_hash(uuid_hash(k), 0) & 0xFFFFFFFF) ^ (h >> 16)) & 15 for k in ordered
    ]
    assert buckets == sorted(buckets)


@pytest.mark.parametrize(
    ("acl_filter", "version"),
    [
        (any_filter(pattern_type_filter=PT.PREFIXED), 0),
        (any_filter(resource_type_filter=RT.UNKNOWN), 3),
        (any_filter(operation=Op.UNKNOWN), 3),
    ],
    ids=["prefixed at v0", "UNKNOWN resource type", "UNKNOWN operation"],
)
def test_filters_kafka_refuses_to_parse_close_the_connection(
    acl_filter: DeleteAclsRequest.DeleteAclsFilter, version: int
) -> None:
    leader = populated()
    with pytest.raises(RequestNotParsed):
        send_as(leader, DeleteAclsRequest(filters=[acl_filter]), version, principal=ADMIN)


def test_a_v0_filter_with_pattern_any_reads_as_literal() -> None:
    # DeleteAclsRequest.normalizeAndValidate: v0 ANY -> LITERAL, so the prefixed ACL "fo"
    # is not matched by name "fo".
    leader = populated()
    request = DeleteAclsRequest(filters=[any_filter(resource_name_filter="fo")])
    response = send_as(leader, request, 0, principal=ADMIN)
    assert [m.resource_name for m in response.filter_results[0].matching_acls] == []


def test_past_10000_removals_a_filter_fails_with_unknown_server_error() -> None:
    leader = with_authorizer()
    create(leader, *[creation(f"t{i}", principal="User:t") for i in range(5_001)])
    create(leader, *[creation(f"u{i}", principal="User:u") for i in range(5_001)])
    leader.append()
    request = DeleteAclsRequest(
        filters=[
            any_filter(principal_filter="User:t"),
            any_filter(principal_filter="User:u"),
        ]
    )
    response = send_as(leader, request, 3, principal=ADMIN)
    first, second = response.filter_results
    assert (first.error_code, len(first.matching_acls)) == (ErrorCode.NONE, 5_001)
    # BoundedListTooLongException caught per filter: ApiError.fromThrowable hides it.
    assert (second.error_code, second.error_message) == (ErrorCode.UNKNOWN_SERVER_ERROR, None)
    # The records it added before the bound stay in Kafka's set and are written.
    assert len(leader.pending) == 10_001


# -- DescribeAcls ------------------------------------------------------------------------------


def describe_all(**fields: Any) -> DescribeAclsRequest:
    values: dict[str, Any] = dict(
        resource_type_filter=RT.ANY,
        resource_name_filter=None,
        pattern_type_filter=PT.ANY,
        principal_filter=None,
        host_filter=None,
        operation=Op.ANY,
        permission_type=Perm.ANY,
    )
    values.update(fields)
    return DescribeAclsRequest(**values)


def test_describe_acls_lists_matching_acls_grouped_by_resource() -> None:
    leader = populated()
    response = send_as(
        leader,
        describe_all(resource_name_filter="foo", pattern_type_filter=PT.MATCH),
        3,
        principal=ADMIN,
    )
    assert response.error_code == ErrorCode.NONE
    # The authorizer's order: type, then name in reverse, then pattern type.
    assert [(r.resource_name, r.pattern_type) for r in response.resources] == [
        ("foo", PT.LITERAL),
        ("fo", PT.PREFIXED),
        ("*", PT.LITERAL),
    ]
    assert [(a.principal, a.operation) for a in response.resources[0].acls] == [
        ("User:alice", Op.READ)
    ]
    assert leader.pending == []
