"""The StandardAuthorizer's decisions (Kafka 3.9 StandardAuthorizerData) and the
whole-request checks ControllerApis makes when an authorizer is configured."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_controller_integrity import Leader, registration

from kwire.controller.authorizer import (
    AclOperation,
    AclPermissionType,
    AuthorizerSettings,
    PatternType,
    ResourceType,
    StandardAcl,
    authorize,
)
from kwire.controller.operation import RequestContext
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode

ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
TOPIC, CLUSTER = ResourceType.TOPIC, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
Op = AclOperation


def acl(
    name: str = "foo",
    pattern: PatternType = LITERAL,
    principal: str = "User:alice",
    host: str = "*",
    operation: AclOperation = Op.READ,
    permission: AclPermissionType = ALLOW,
    resource_type: ResourceType = TOPIC,
) -> StandardAcl:
    return StandardAcl(
        resource_type=resource_type,
        resource_name=name,
        pattern_type=pattern,
        principal=principal,
        host=host,
        operation=operation,
        permission_type=permission,
    )


NO_DEFAULT = AuthorizerSettings()
# (name, acls, settings, principal, host, operation, resource name, allowed?): each expected
# value is StandardAuthorizerData.authorize's in Kafka 3.9.
CASES: list[tuple[str, list[StandardAcl], AuthorizerSettings, str, str, Op, str, bool]] = [
    ("a literal allow", [acl()], NO_DEFAULT, "User:alice", "10.0.0.1", Op.READ, "foo", True),
    ("another name", [acl()], NO_DEFAULT, "User:alice", "10.0.0.1", Op.READ, "foo2", False),
    (
        "a prefix allow",
        [acl("fo", PREFIXED)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.READ,
        "foobar",
        True,
    ),
    (
        "a literal name that is only a prefix",
        [acl("fo")],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.READ,
        "foobar",
        False,
    ),
    ("the wildcard resource", [acl("*")], NO_DEFAULT, "User:alice", "h", Op.READ, "any", True),
    (
        "the wildcard principal",
        [acl(principal="User:*")],
        NO_DEFAULT,
        "User:bob",
        "h",
        Op.READ,
        "foo",
        True,
    ),
    (
        "another principal",
        [acl()],
        AuthorizerSettings(allow_everyone_if_no_acl_found=True),
        "User:bob",
        "h",
        Op.READ,
        "foo",
        False,
    ),
    (
        "a matching host",
        [acl(host="10.0.0.1")],
        NO_DEFAULT,
        "User:alice",
        "10.0.0.1",
        Op.READ,
        "foo",
        True,
    ),
    (
        "another host",
        [acl(host="10.0.0.1")],
        NO_DEFAULT,
        "User:alice",
        "10.0.0.2",
        Op.READ,
        "foo",
        False,
    ),
    ("READ implies DESCRIBE", [acl()], NO_DEFAULT, "User:alice", "h", Op.DESCRIBE, "foo", True),
    (
        "ALTER_CONFIGS implies DESCRIBE_CONFIGS",
        [acl(operation=Op.ALTER_CONFIGS)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.DESCRIBE_CONFIGS,
        "foo",
        True,
    ),
    (
        "a DENY of READ does not deny DESCRIBE",
        [acl(permission=DENY), acl(principal="User:*", operation=Op.DESCRIBE)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.DESCRIBE,
        "foo",
        True,
    ),
    ("READ does not imply WRITE", [acl()], NO_DEFAULT, "User:alice", "h", Op.WRITE, "foo", False),
    (
        "ALL allows anything",
        [acl(operation=Op.ALL)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.ALTER,
        "foo",
        True,
    ),
    (
        "a DENY beats an ALLOW",
        [acl(), acl("f", PREFIXED, principal="User:*", permission=DENY)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.READ,
        "foo",
        False,
    ),
    (
        "no ACL and no default",
        [],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.READ,
        "foo",
        False,
    ),
    (
        "no ACL with allow.everyone.if.no.acl.found",
        [],
        AuthorizerSettings(allow_everyone_if_no_acl_found=True),
        "User:alice",
        "h",
        Op.READ,
        "foo",
        True,
    ),
    (
        "ACLs of the resource disable allow.everyone.if.no.acl.found",
        [acl(principal="User:carol")],
        AuthorizerSettings(allow_everyone_if_no_acl_found=True),
        "User:alice",
        "h",
        Op.READ,
        "foo",
        False,
    ),
    (
        "ACLs of another resource leave it on",
        [acl("bar")],
        AuthorizerSettings(allow_everyone_if_no_acl_found=True),
        "User:alice",
        "h",
        Op.READ,
        "foo",
        True,
    ),
    (
        "a super user, even against a DENY",
        [acl(permission=DENY, operation=Op.ALL)],
        AuthorizerSettings(super_users=frozenset({"User:alice"})),
        "User:alice",
        "h",
        Op.READ,
        "foo",
        True,
    ),
    (
        "a CLUSTER ACL does not cover a topic of its name",
        [acl("kafka-cluster", resource_type=CLUSTER)],
        NO_DEFAULT,
        "User:alice",
        "h",
        Op.READ,
        "kafka-cluster",
        False,
    ),
]


@pytest.mark.parametrize(
    ("acls", "settings", "principal", "host", "operation", "name", "allowed"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_authorize_follows_the_standard_authorizer(
    acls: list[StandardAcl],
    settings: AuthorizerSettings,
    principal: str,
    host: str,
    operation: Op,
    name: str,
    allowed: bool,
) -> None:
    assert authorize(acls, settings, principal, host, operation, TOPIC, name) is allowed


def test_super_users_parse_from_a_semicolon_separated_list() -> None:
    settings = AuthorizerSettings.from_properties("User:admin; User:broker", False)
    assert settings.super_users == frozenset({"User:admin", "User:broker"})


# -- properties ---------------------------------------------------------------------------

NAMES = st.sampled_from(["foo", "foobar", "fo", "*", "bar", "b"])
PRINCIPALS = st.sampled_from(["User:alice", "User:bob", "User:*"])
HOSTS = st.sampled_from(["*", "10.0.0.1", "10.0.0.2"])
OPERATIONS = st.sampled_from([o for o in Op if o not in (Op.UNKNOWN, Op.ANY)])
ACLS = st.builds(
    acl,
    name=NAMES,
    pattern=st.sampled_from([LITERAL, PREFIXED]),
    principal=PRINCIPALS,
    host=HOSTS,
    operation=OPERATIONS,
    permission=st.sampled_from([ALLOW, DENY]),
)
QUESTIONS = st.tuples(
    st.sampled_from(["User:alice", "User:bob"]),
    st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    OPERATIONS.filter(lambda o: o is not Op.ALL),
    st.sampled_from(["foo", "foobar", "bar", "*"]),
)


@given(st.lists(ACLS, max_size=6), QUESTIONS, st.booleans())
def test_a_matching_deny_always_wins(
    acls: list[StandardAcl], question: tuple[str, str, Op, str], default: bool
) -> None:
    principal, host, operation, name = question
    deny = acl(name, LITERAL, principal, host, operation, DENY)
    settings = AuthorizerSettings(allow_everyone_if_no_acl_found=default)
    assert not authorize([*acls, deny], settings, principal, host, operation, TOPIC, name)


@given(st.lists(ACLS, max_size=6), QUESTIONS)
def test_a_super_user_is_always_allowed(
    acls: list[StandardAcl], question: tuple[str, str, Op, str]
) -> None:
    principal, host, operation, name = question
    settings = AuthorizerSettings(super_users=frozenset({principal}))
    assert authorize(acls, settings, principal, host, operation, TOPIC, name)


@given(st.lists(ACLS, max_size=6), QUESTIONS, st.booleans())
def test_an_acl_on_an_unrelated_resource_never_changes_an_answer(
    acls: list[StandardAcl], question: tuple[str, str, Op, str], default: bool
) -> None:
    principal, host, operation, name = question
    settings = AuthorizerSettings(allow_everyone_if_no_acl_found=default)
    unrelated = acl("zzz-unrelated", PREFIXED, principal="User:*", operation=Op.ALL)
    group = acl(name, LITERAL, "User:*", "*", Op.ALL, DENY, resource_type=ResourceType.GROUP)
    before = authorize(acls, settings, principal, host, operation, TOPIC, name)
    after = authorize([*acls, unrelated, group], settings, principal, host, operation, TOPIC, name)
    assert before == after


@given(st.lists(ACLS, max_size=6), QUESTIONS)
def test_the_order_of_acls_never_matters(
    acls: list[StandardAcl], question: tuple[str, str, Op, str]
) -> None:
    principal, host, operation, name = question
    forward = authorize(acls, NO_DEFAULT, principal, host, operation, TOPIC, name)
    assert authorize(acls[::-1], NO_DEFAULT, principal, host, operation, TOPIC, name) == forward


# -- the controller's whole-request checks ---------------------------------------------------


def send_as(leader: Leader, request: Message, version: int, **context: Any) -> Message:
    result = leader.controller.handle(
        request,
        RequestContext(api_version=version, **context),
        leader.next_offset,
        leader.now_ms,
    )
    leader.take(result)
    assert result.response is not None
    return result.response


def test_broker_rpcs_need_cluster_action_when_an_authorizer_is_configured() -> None:
    # ControllerApis.handleBrokerRegistration: authorizeClusterOperation(CLUSTER_ACTION).
    leader = Leader.started(authorizer=AuthorizerSettings(super_users=frozenset({"User:broker"})))
    denied = send_as(leader, registration(1), 4, principal="User:someone")
    assert denied.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    assert leader.pending == []
    allowed = send_as(leader, registration(1), 4, principal="User:broker")
    assert allowed.error_code == ErrorCode.NONE


def test_without_an_authorizer_every_principal_may_register_a_broker() -> None:
    leader = Leader.started()
    response = send_as(leader, registration(1), 4, principal="User:someone")
    assert response.error_code == ErrorCode.NONE


def test_an_allow_acl_for_cluster_action_lets_a_broker_heartbeat() -> None:
    from kwire.protocol.messages.create_acls import CreateAclsRequest

    leader = Leader.started(authorizer=AuthorizerSettings(super_users=frozenset({"User:admin"})))
    send_as(leader, registration(1), 4, principal="User:admin")
    creation = CreateAclsRequest.AclCreation(
        resource_type=CLUSTER,
        resource_name="kafka-cluster",
        resource_pattern_type=LITERAL,
        principal="User:broker",
        host="*",
        operation=Op.CLUSTER_ACTION,
        permission_type=ALLOW,
    )
    created = send_as(leader, CreateAclsRequest(creations=[creation]), 3, principal="User:admin")
    assert created.results[0].error_code == ErrorCode.NONE
    refused = send_as(
        leader,
        heartbeat_request(leader, 1),
        1,
        principal="User:other",
    )
    assert refused.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    accepted = send_as(leader, heartbeat_request(leader, 1), 1, principal="User:broker")
    assert accepted.error_code == ErrorCode.NONE


def heartbeat_request(leader: Leader, broker_id: int) -> Message:
    from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest

    return BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=leader.controller.brokers[broker_id].epoch,
        current_metadata_offset=leader.next_offset,
    )
