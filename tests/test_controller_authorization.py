"""Per-resource authorization in the controller's operations, as Kafka 3.9's ControllerApis,
AuthHelper and ConfigHelper decide it when the StandardAuthorizer is configured.

Every controller here has ``super.users=User:admin;User:ANONYMOUS`` (ANONYMOUS registers
the brokers); ``User:alice`` is the caller under test, given ACLs by the admin through
CreateAcls. Each expected value is Kafka's, with the class that decides it named.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from multi_broker import forwarded, genuine_log, needs_capture, replayed_until
from node_harness import leader, make_node
from server_harness import free_port
from test_controller_authorizer import send_as
from test_controller_integrity import Leader, topic, unfenced_broker
from test_server_envelope import envelope, inner

from kwire.controller.authorizer import (
    AclOperation,
    AclPermissionType,
    AuthorizerSettings,
    PatternType,
    ResourceType,
)
from kwire.controller.image import ConfigResourceType
from kwire.protocol._codec import ZERO_UUID, Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response
from kwire.protocol.messages.alter_client_quotas import AlterClientQuotasRequest
from kwire.protocol.messages.alter_configs import AlterConfigsRequest
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsRequest
from kwire.protocol.messages.create_acls import CreateAclsRequest
from kwire.protocol.messages.create_partitions import CreatePartitionsRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse
from kwire.protocol.messages.describe_configs import DescribeConfigsRequest
from kwire.protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsRequest,
)
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest
from kwire.protocol.messages.envelope import EnvelopeResponse
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from kwire.protocol.messages.list_partition_reassignments import ListPartitionReassignmentsRequest
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.update_features import UpdateFeaturesRequest
from kwire.server.dispatch import Peer, RequestHandler, error_codes
from kwire.server.node import ControllerNode

__all__ = ["leader"]  # the fixture, imported for pytest to find

Op = AclOperation
TOPIC, CLUSTER = ResourceType.TOPIC, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
ALICE, ADMIN = "User:alice", "User:admin"
TAF, CAF = ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.CLUSTER_AUTHORIZATION_FAILED
SETTINGS = AuthorizerSettings(super_users=frozenset({ADMIN, "User:ANONYMOUS"}))


@dataclasses.dataclass(frozen=True)
class Acl:
    operation: AclOperation
    resource_type: ResourceType = TOPIC
    name: str = "foo"
    pattern: PatternType = LITERAL
    permission: AclPermissionType = ALLOW
    principal: str = ALICE


def cluster_acl(operation: AclOperation) -> Acl:
    return Acl(operation, CLUSTER, "kafka-cluster")


def controller(acls: list[Acl], *, brokers: int = 1, authorizer: bool = True) -> Leader:
    """A controller with unfenced brokers and ``acls`` created by the admin."""
    leader = Leader.started(authorizer=SETTINGS if authorizer else None)
    for broker_id in range(1, brokers + 1):
        unfenced_broker(leader, broker_id)
    if acls:
        creations = [
            CreateAclsRequest.AclCreation(
                resource_type=a.resource_type,
                resource_name=a.name,
                resource_pattern_type=a.pattern,
                principal=a.principal,
                host="*",
                operation=a.operation,
                permission_type=a.permission,
            )
            for a in acls
        ]
        created = send_as(leader, CreateAclsRequest(creations=creations), 3, principal=ADMIN)
        assert all(r.error_code == ErrorCode.NONE for r in created.results)
    leader.append()
    return leader


def send(leader: Leader, request: Message, version: int, principal: str = ALICE) -> Message:
    return send_as(leader, request, version, principal=principal, client_host="10.0.0.1")


def create_as_admin(leader: Leader, *names: str) -> dict[str, UUID]:
    response = send(leader, CreateTopicsRequest(topics=[topic(n) for n in names]), 7, ADMIN)
    assert all(t.error_code == ErrorCode.NONE for t in response.topics)
    leader.append()
    return {t.name: t.topic_id for t in response.topics}


def written(leader: Leader) -> list[Message]:
    """The records the last operation wrote (not yet appended)."""
    from kwire.protocol.messages.index import METADATA_RECORDS
    from kwire.records import unframe_metadata_record

    out = []
    for _, value in leader.pending:
        key, version, body = unframe_metadata_record(value)
        out.append(METADATA_RECORDS[key].decode(body, version))
    return out


# -- CreateTopics (ControllerApis.createTopics, ReplicationControlManager.createTopic) ------

# (case, ACLs, principal, topics asked, expected answers in order: (name, code, message,
# topic_config_error_code, configs returned?)).
CREATE_CASES: list[tuple[str, list[Acl], str, list[str], list[tuple[Any, ...]]]] = [
    (
        "a super user creates and sees configs",
        [],
        ADMIN,
        ["foo"],
        [("foo", 0, None, 0, True)],
    ),
    (
        "no ACL: refused with Kafka's message, nothing created",
        [],
        ALICE,
        ["foo"],
        [("foo", TAF, "Authorization failed.", 0, False)],
    ),
    (
        "CREATE on the cluster creates, but without DESCRIBE_CONFIGS no configs come back",
        [cluster_acl(Op.CREATE)],
        ALICE,
        ["foo"],
        [("foo", 0, None, TAF, False)],
    ),
    (
        "a literal CREATE and DESCRIBE_CONFIGS on one topic",
        [Acl(Op.CREATE), Acl(Op.DESCRIBE_CONFIGS)],
        ALICE,
        ["foo", "bar"],
        [("foo", 0, None, 0, True), ("bar", TAF, "Authorization failed.", 0, False)],
    ),
    (
        "a prefixed CREATE; ALTER_CONFIGS implies DESCRIBE_CONFIGS",
        [Acl(Op.CREATE, name="fo", pattern=PREFIXED), Acl(Op.ALTER_CONFIGS, name="foo")],
        ALICE,
        ["foo", "fob"],
        [("foo", 0, None, 0, True), ("fob", 0, None, TAF, False)],
    ),
    (
        "a literal DENY beats a prefixed ALLOW",
        [
            Acl(Op.ALL, name="f", pattern=PREFIXED),
            Acl(Op.CREATE, name="fob", permission=DENY),
        ],
        ALICE,
        ["foo", "fob"],
        [("foo", 0, None, 0, True), ("fob", TAF, "Authorization failed.", 0, False)],
    ),
    (
        "an ACL for another principal does not help",
        [Acl(Op.ALL, principal="User:bob")],
        ALICE,
        ["foo"],
        [("foo", TAF, "Authorization failed.", 0, False)],
    ),
]


@pytest.mark.parametrize(
    ("acls", "principal", "names", "expected"),
    [c[1:] for c in CREATE_CASES],
    ids=[c[0] for c in CREATE_CASES],
)
def test_create_topics_needs_create_and_returns_configs_only_to_describe_configs(
    acls: list[Acl], principal: str, names: list[str], expected: list[tuple[Any, ...]]
) -> None:
    leader = controller(acls)
    response = send(leader, CreateTopicsRequest(topics=[topic(n) for n in names]), 7, principal)
    assert isinstance(response, CreateTopicsResponse)
    got = [
        (t.name, t.error_code, t.error_message, t.topic_config_error_code, bool(t.configs))
        for t in response.topics
    ]
    assert got == expected
    created = {t.name for t in response.topics if t.error_code == ErrorCode.NONE}
    assert set(leader.controller.topics_by_name) == created
    for t in response.topics:
        if t.error_code == ErrorCode.NONE and t.topic_config_error_code == TAF:
            # ReplicationControlManager.createTopic leaves the schema's defaults.
            assert (t.num_partitions, t.replication_factor) == (-1, -1)


def test_create_topics_answers_refusals_after_the_controller_in_kafkas_hash_set_order() -> None:
    # ControllerApis.createTopics: the controller's results, then the duplicates, then the
    # metadata topic and the unauthorized names, both sets java.util.HashSets. The orders
    # below are what Java 17's HashSet prints for these insertions (jshell).
    leader = controller([Acl(Op.CREATE, name="a")])
    names = ["q", "a", "dup", "__cluster_metadata", "dup", "p", "zz", "x1", "dup2", "dup2"]
    response = send(leader, CreateTopicsRequest(topics=[topic(n) for n in names]), 7)
    assert [(t.name, t.error_code) for t in response.topics] == [
        ("a", ErrorCode.NONE),
        ("dup2", ErrorCode.INVALID_REQUEST),
        ("dup", ErrorCode.INVALID_REQUEST),
        ("p", TAF),
        ("zz", TAF),
        ("q", TAF),
        ("x1", TAF),
        ("__cluster_metadata", ErrorCode.INVALID_REQUEST),
    ]


def test_without_an_authorizer_create_topics_creates_for_anyone() -> None:
    leader = controller([], authorizer=False)
    response = send(leader, CreateTopicsRequest(topics=[topic("foo")]), 7)
    assert [(t.error_code, t.topic_config_error_code) for t in response.topics] == [(0, 0)]
    assert response.topics[0].configs


# -- DeleteTopics (ControllerApis.deleteTopics) --------------------------------------------

UNKNOWN_ID = UUID(int=0xABCDEF)
TOPIC_AUTH_MESSAGE = "Topic authorization failed."  # ApiError(TOPIC_AUTHORIZATION_FAILED)

# (case, ACLs, by id?, name asked, expected (name shown, code, message), deleted?)
DELETE_CASES: list[tuple[str, list[Acl], bool, str, tuple[Any, ...], bool]] = [
    ("a literal DELETE by name", [Acl(Op.DELETE)], False, "foo", ("foo", 0, None), True),
    ("a prefixed DELETE by id", [Acl(Op.DELETE, name="f", pattern=PREFIXED)], True, "foo",
     ("foo", 0, None), True),
    ("DELETE on the cluster", [cluster_acl(Op.DELETE)], True, "foo", ("foo", 0, None), True),
    ("no ACL by name", [], False, "foo", ("foo", TAF, TOPIC_AUTH_MESSAGE), False),
    ("no ACL by id hides the name", [], True, "foo", (None, TAF, TOPIC_AUTH_MESSAGE), False),
    ("DESCRIBE only, by id: the name is shown", [Acl(Op.DESCRIBE)], True, "foo",
     ("foo", TAF, TOPIC_AUTH_MESSAGE), False),
    ("DESCRIBE only, by name", [Acl(Op.DESCRIBE)], False, "foo",
     ("foo", TAF, TOPIC_AUTH_MESSAGE), False),
    ("a DENY of DELETE", [Acl(Op.ALL), Acl(Op.DELETE, permission=DENY)], False, "foo",
     ("foo", TAF, TOPIC_AUTH_MESSAGE), False),
    ("an unknown name not describable", [], False, "nope", ("nope", TAF, TOPIC_AUTH_MESSAGE),
     False),
    ("an unknown name describable", [Acl(Op.DESCRIBE, name="nope")], False, "nope",
     ("nope", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.message),
     False),
    ("an unknown id, whoever asks", [], True, "?",
     (None, ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.UNKNOWN_TOPIC_ID.message), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("acls", "by_id", "name", "expected", "deleted"),
    [c[1:] for c in DELETE_CASES],
    ids=[c[0] for c in DELETE_CASES],
)
def test_delete_topics_needs_describe_and_delete_on_each_topic(
    acls: list[Acl], by_id: bool, name: str, expected: tuple[Any, ...], deleted: bool
) -> None:
    leader = controller(acls)
    ids = create_as_admin(leader, "foo")
    topic_id = ids.get(name, UNKNOWN_ID)
    if by_id:
        request = DeleteTopicsRequest(
            topics=[DeleteTopicsRequest.DeleteTopicState(topic_id=topic_id)]
        )
    else:
        request = DeleteTopicsRequest(
            topics=[DeleteTopicsRequest.DeleteTopicState(name=name, topic_id=ZERO_UUID)]
        )
    response = send(leader, request, 6)
    assert isinstance(response, DeleteTopicsResponse)
    [answer] = response.responses
    assert (answer.name, answer.error_code, answer.error_message) == expected
    if by_id:
        assert answer.topic_id == topic_id
    assert written(leader) == ([RemoveTopicRecord(topic_id=ids["foo"])] if deleted else [])
    assert ("foo" in leader.controller.topics_by_name) is not deleted


# -- CreatePartitions (ControllerApis.createPartitions) ------------------------------------


@pytest.mark.parametrize(
    ("acls", "expected"),
    [
        ([Acl(Op.ALTER)], [("bar", TAF, None), ("foo", 0, None)]),
        ([Acl(Op.ALTER, name="b", pattern=PREFIXED)], [("foo", TAF, None), ("bar", 0, None)]),
        ([cluster_acl(Op.ALTER)], [("bar", TAF, None), ("foo", TAF, None)]),
        ([], [("bar", TAF, None), ("foo", TAF, None)]),
    ],
    ids=["literal ALTER", "a prefixed ALTER", "the cluster does not count", "none"],
)
def test_create_partitions_needs_alter_on_each_topic_refusals_first(
    acls: list[Acl], expected: list[tuple[Any, ...]]
) -> None:
    leader = controller(acls)
    create_as_admin(leader, "foo", "bar")
    request = CreatePartitionsRequest(
        topics=[
            CreatePartitionsRequest.CreatePartitionsTopic(name=n, count=2, assignments=None)
            for n in ("foo", "bar")
        ],
    )
    response = send(leader, request, 3)
    # Refusals (no message) come before the controller's results; "bar" precedes "foo" in
    # Java's HashSet (String.hashCode buckets 1 and 6 of 16).
    assert [(r.name, r.error_code, r.error_message) for r in response.results] == expected
    allowed = {r.name for r in response.results if r.error_code == ErrorCode.NONE}
    for name, info in leader.controller.topics_by_name.items():
        assert len(info.partitions) == (2 if name in allowed else 1)


# -- the config APIs (ConfigHelper, ControllerApis.authorizeAlterResource) -----------------

TOPIC_RESOURCE = (ConfigResourceType.TOPIC, "foo")
BROKER_RESOURCE = (ConfigResourceType.BROKER, "1")


@pytest.mark.parametrize(
    ("acls", "expected"),
    [
        ([], [("1", CAF, "Cluster authorization failed."), ("foo", TAF, TOPIC_AUTH_MESSAGE)]),
        ([Acl(Op.DESCRIBE_CONFIGS)], [("foo", 0, ""), ("1", CAF, "Cluster authorization failed.")]),
        ([cluster_acl(Op.DESCRIBE_CONFIGS)], [("1", 0, ""), ("foo", TAF, TOPIC_AUTH_MESSAGE)]),
        ([cluster_acl(Op.ALTER_CONFIGS), Acl(Op.ALTER_CONFIGS)], [("1", 0, ""), ("foo", 0, "")]),
    ],
    ids=["none: refusals in request order", "the topic", "the cluster", "ALTER_CONFIGS implies"],
)  # fmt: skip
def test_describe_configs_answers_the_refused_resources_last_without_configs(
    acls: list[Acl], expected: list[tuple[Any, ...]]
) -> None:
    leader = controller(acls)
    create_as_admin(leader, "foo")
    request = DescribeConfigsRequest(
        resources=[
            DescribeConfigsRequest.DescribeConfigsResource(
                resource_type=kind, resource_name=name, configuration_keys=None
            )
            for kind, name in (BROKER_RESOURCE, TOPIC_RESOURCE)
        ]
    )
    response = send(leader, request, 4)
    got = [(r.resource_name, r.error_code, r.error_message) for r in response.results]
    assert got == expected
    for r in response.results:
        assert bool(r.configs) == (r.error_code == ErrorCode.NONE)


def incremental(resources: list[tuple[int, str]]) -> IncrementalAlterConfigsRequest:
    configs = {
        ConfigResourceType.TOPIC: ("retention.ms", "1000"),
        ConfigResourceType.BROKER: ("log.cleaner.threads", "2"),
        ConfigResourceType.BROKER_LOGGER: ("kwire.controller", "DEBUG"),
    }
    return IncrementalAlterConfigsRequest(
        resources=[
            IncrementalAlterConfigsRequest.AlterConfigsResource(
                resource_type=kind,
                resource_name=name,
                configs=[
                    IncrementalAlterConfigsRequest.AlterableConfig(
                        name=configs[ConfigResourceType(kind)][0],
                        config_operation=0,
                        value=configs[ConfigResourceType(kind)][1],
                    )
                ],
            )
            for kind, name in resources
        ],
        validate_only=True,
    )


def legacy(resources: list[tuple[int, str]]) -> AlterConfigsRequest:
    return AlterConfigsRequest(
        resources=[
            AlterConfigsRequest.AlterConfigsResource(
                resource_type=kind,
                resource_name=name,
                configs=[
                    AlterConfigsRequest.AlterableConfig(
                        name="retention.ms" if kind == ConfigResourceType.TOPIC else "a.b",
                        value="1000",
                    )
                ],
            )
            for kind, name in resources
        ],
        validate_only=True,
    )


LOGGER_RESOURCE = (ConfigResourceType.BROKER_LOGGER, "1")
CLUSTER_AUTH_MESSAGE = "Cluster authorization failed."  # ApiError(CLUSTER_AUTHORIZATION_FAILED)


@pytest.mark.parametrize(
    ("acls", "expected"),
    [
        ([], [("1", CAF, CLUSTER_AUTH_MESSAGE), ("foo", TAF, TOPIC_AUTH_MESSAGE),
              ("1", CAF, CLUSTER_AUTH_MESSAGE)]),
        ([Acl(Op.ALTER_CONFIGS, name="f", pattern=PREFIXED)],
         [("1", CAF, CLUSTER_AUTH_MESSAGE), ("foo", 0, None), ("1", CAF, CLUSTER_AUTH_MESSAGE)]),
        ([cluster_acl(Op.ALTER_CONFIGS)],
         [("foo", TAF, TOPIC_AUTH_MESSAGE), ("1", 0, None), ("1", CAF, CLUSTER_AUTH_MESSAGE)]),
        ([cluster_acl(Op.ALTER_CONFIGS), cluster_acl(Op.CLUSTER_ACTION), Acl(Op.ALTER_CONFIGS)],
         [("1", 0, None), ("foo", 0, None), ("1", 0, None)]),
    ],
    ids=["none", "a prefixed topic ACL", "ALTER_CONFIGS on the cluster", "all three"],
)  # fmt: skip
def test_incremental_alter_configs_needs_alter_configs_and_cluster_action_for_loggers(
    acls: list[Acl], expected: list[tuple[Any, ...]]
) -> None:
    # ControllerApis.handleIncrementalAlterConfigs: refusals (authorizeAlterResource) come
    # first, then the controller's results, then BROKER_LOGGER answers
    # (RuntimeLoggerManager: CLUSTER_ACTION, messageWithFallback).
    leader = controller(acls)
    create_as_admin(leader, "foo")
    request = incremental([BROKER_RESOURCE, TOPIC_RESOURCE, LOGGER_RESOURCE])
    response = send(leader, request, 1)
    got = [(r.resource_name, r.error_code, r.error_message) for r in response.responses]
    assert got == expected


@pytest.mark.parametrize(
    ("acls", "expected"),
    [
        ([], [("1", CAF, CLUSTER_AUTH_MESSAGE), ("foo", TAF, TOPIC_AUTH_MESSAGE)]),
        ([Acl(Op.ALTER_CONFIGS)], [("1", CAF, CLUSTER_AUTH_MESSAGE), ("foo", 0, None)]),
        ([Acl(Op.DESCRIBE_CONFIGS)], [("1", CAF, CLUSTER_AUTH_MESSAGE),
                                      ("foo", TAF, TOPIC_AUTH_MESSAGE)]),
    ],
    ids=["none", "ALTER_CONFIGS on the topic", "DESCRIBE_CONFIGS does not imply ALTER"],
)  # fmt: skip
def test_legacy_alter_configs_needs_alter_configs_on_each_resource(
    acls: list[Acl], expected: list[tuple[Any, ...]]
) -> None:
    leader = controller(acls)
    create_as_admin(leader, "foo")
    response = send(leader, legacy([BROKER_RESOURCE, TOPIC_RESOURCE]), 2)
    got = [(r.resource_name, r.error_code, r.error_message) for r in response.responses]
    assert got == expected


def test_an_allowed_topic_config_change_is_written_and_a_refused_one_is_not() -> None:
    leader = controller([Acl(Op.ALTER_CONFIGS)])
    create_as_admin(leader, "foo", "bar")
    request = incremental([TOPIC_RESOURCE, (ConfigResourceType.TOPIC, "bar")])
    request.validate_only = False
    response = send(leader, request, 1)
    assert [(r.resource_name, r.error_code) for r in response.responses] == [
        ("bar", TAF),
        ("foo", ErrorCode.NONE),
    ]
    assert [(r.resource_name, r.name, r.value) for r in written(leader)] == [
        ("foo", "retention.ms", "1000")
    ]


# -- whole-request CLUSTER checks (AuthHelper.authorizeClusterOperation) -------------------

QUOTA = AlterClientQuotasRequest.EntryData(
    entity=[AlterClientQuotasRequest.EntityData(entity_type="user", entity_name="bob")],
    ops=[AlterClientQuotasRequest.OpData(key="producer_byte_rate", value=1.0, remove=False)],
)
SCRAM_DELETION = AlterUserScramCredentialsRequest.ScramCredentialDeletion(name="bob", mechanism=1)
# Each API, a request with one item, its version, and the operation ControllerApis requires.
CLUSTER_APIS: list[tuple[str, Message, int, AclOperation]] = [
    ("ElectLeaders", ElectLeadersRequest(election_type=0, topic_partitions=None), 2, Op.ALTER),
    ("AlterPartitionReassignments", AlterPartitionReassignmentsRequest(topics=[]), 0, Op.ALTER),
    ("ListPartitionReassignments", ListPartitionReassignmentsRequest(topics=None), 0,
     Op.DESCRIBE),
    ("UpdateFeatures", UpdateFeaturesRequest(feature_updates=[]), 1, Op.ALTER),
    ("AlterClientQuotas", AlterClientQuotasRequest(entries=[QUOTA]), 1, Op.ALTER_CONFIGS),
    ("AlterUserScramCredentials", AlterUserScramCredentialsRequest(deletions=[SCRAM_DELETION]),
     0, Op.ALTER),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "version", "operation"),
    [c[1:] for c in CLUSTER_APIS],
    ids=[c[0] for c in CLUSTER_APIS],
)
def test_cluster_apis_need_their_operation_on_the_cluster(
    request_: Message, version: int, operation: AclOperation
) -> None:
    wrong = Op.DESCRIBE if operation is not Op.DESCRIBE else Op.CLUSTER_ACTION
    denied = send(controller([cluster_acl(wrong)]), request_, version)
    assert CAF in error_codes(denied)
    allowed = send(controller([cluster_acl(operation)]), request_, version)
    assert CAF not in error_codes(allowed)
    denied_by_deny = send(
        controller(
            [cluster_acl(Op.ALL), dataclasses.replace(cluster_acl(operation), permission=DENY)]
        ),
        request_,
        version,
    )
    assert CAF in error_codes(denied_by_deny)


def test_describe_user_scram_credentials_is_unknown_to_the_controller_whoever_asks() -> None:
    # ControllerApis.handle has no case for it ("Unsupported ApiKey"): UNKNOWN_SERVER_ERROR
    # before any authorization, for the admin as for a principal without ACLs.
    for principal in (ADMIN, ALICE):
        response = send(
            controller([]), DescribeUserScramCredentialsRequest(users=None), 0, principal
        )
        assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR


# -- Envelope (ControllerApis.handleEnvelopeRequest) ----------------------------------------

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.mark.parametrize(
    ("broker_principal", "expected"),
    [("User:broker", ErrorCode.NONE), ("User:intruder", CAF)],
    ids=["a super user broker", "a principal without CLUSTER_ACTION"],
)
async def test_an_envelope_needs_cluster_action_for_its_own_principal_then_runs_as_the_client(
    tmp_path: Path, broker_principal: str, expected: ErrorCode
) -> None:
    port = free_port()
    extra = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:broker"}
    node = make_node(tmp_path, f"1@127.0.0.1:{port}", port, extra)
    try:
        request = DeleteTopicsRequest(topic_names=["a"])
        peer = Peer(principal=broker_principal, client_host="127.0.0.1")
        response = await RequestHandler(node).handle(*envelope(inner(request, 5)), peer)
        assert isinstance(response, EnvelopeResponse)
        assert response.error_code == expected
        if expected != ErrorCode.NONE:
            assert response.response_data is None  # the inner request never ran
            return
        assert response.response_data is not None
        _, answer = decode_response(bytes(response.response_data), 20, 5)
        # The inner request runs as the envelope's client (User:alice), who may not
        # describe "a": TOPIC_AUTHORIZATION_FAILED, not UNKNOWN_TOPIC_OR_PARTITION.
        assert [(r.name, r.error_code) for r in answer.responses] == [("a", TAF)]
    finally:
        node.close()


async def test_without_an_authorizer_any_envelope_principal_is_accepted(
    leader: ControllerNode,
) -> None:
    request = DeleteTopicsRequest(topic_names=["a"])
    peer = Peer(principal="User:intruder", client_host="127.0.0.1")
    response = await RequestHandler(leader).handle(*envelope(inner(request, 5)), peer)
    assert isinstance(response, EnvelopeResponse)
    assert response.error_code == ErrorCode.NONE


# -- the genuine forwarded CreateTopics (multi-broker capture) ------------------------------


@needs_capture
@pytest.mark.parametrize("index", [0, 1])
def test_a_genuine_create_topics_is_answered_genuinely_to_a_super_user_and_refused_to_alice(
    index: int,
) -> None:
    exchange = forwarded(19)[index]
    genuine = [
        (t.name, t.error_code, t.error_message, t.topic_config_error_code, t.num_partitions)
        for t in exchange.response.topics
    ]

    def fresh() -> Leader:
        ctl = replayed_until(
            next(r.offset for r in genuine_log() if r.timestamp_ms >= exchange.time_ms)
        )
        ctl.config = dataclasses.replace(ctl.config, authorizer=SETTINGS)
        ctl.activate(exchange.time_ms, ctl.last_applied_offset + 1)
        leader = Leader(ctl, now_ms=exchange.time_ms)
        leader.log = [(i, b"") for i in range(ctl.last_applied_offset + 1)]
        return leader

    admin = fresh()
    answer = send(admin, exchange.request, exchange.api_version, ADMIN)
    ours = [
        (t.name, t.error_code, t.error_message, t.topic_config_error_code, t.num_partitions)
        for t in answer.topics
    ]
    assert ours == genuine
    alice = fresh()
    refused = send(alice, exchange.request, exchange.api_version, ALICE)
    assert [(t.name, t.error_code, t.error_message) for t in refused.topics] == [
        (t.name, TAF, "Authorization failed.") for t in exchange.request.topics
    ]
    assert alice.pending == []
