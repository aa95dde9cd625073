"""ACLs and the decisions Kafka's StandardAuthorizer makes with them (KIP-801).

Theory of operation. An ACL (``StandardAcl``) says that a principal, from a host, is
ALLOWed or DENYed an operation on the resources a pattern names: one LITERAL name, every
name with a PREFIX, or every name of the type (LITERAL ``*``). ``authorize`` answers one
question, ``(principal, host, operation, resource type, resource name) -> bool``, by the
rules of Kafka 3.9's StandardAuthorizerData:

1. A principal listed in ``super.users`` (``User:alice;User:bob``) is always allowed.
2. The ACLs that apply are those of the resource's type whose pattern matches its name.
   Among them, those whose principal is the caller's or ``User:*``, whose host is the
   caller's or ``*``, and whose operation matches decide: one DENY denies, else one ALLOW
   allows. ALL matches every operation; an ALLOW of READ, WRITE, DELETE or ALTER also
   allows DESCRIBE, and an ALLOW of ALTER_CONFIGS allows DESCRIBE_CONFIGS (a DENY implies
   nothing).
3. If no ACL decides: denied when some ACL applies to the resource at all, otherwise
   ``allow.everyone.if.no.acl.found``.

The controller enforces these checks only when ``authorizer.class.name`` names Kafka's
StandardAuthorizer (``ControllerConfig.authorizer``); without it every principal may do
everything, as in Kafka without an authorizer. ``cluster_operation`` gives, per API, the
operation on the CLUSTER resource ControllerApis requires of the whole request (denied:
CLUSTER_AUTHORIZATION_FAILED on every item). The APIs that check per resource ask an
``AuthHelper`` (Kafka's class of that name) at their start: CreateTopics and DeleteTopics
(kwire.controller.replication, .topics), CreatePartitions, the config APIs
(kwire.controller.configs); the server asks it for the Envelope's own principal.

Cost: a decision scans the image's ACLs (Kafka walks a sorted tree); the controller holds
few ACLs and asks few questions, so the simpler linear scan is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, TypeVar

from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController
    from kwire.controller.operation import RequestContext

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


E = TypeVar("E", bound=IntEnum)


def from_code(enum: type[E], code: int) -> E:
    """Kafka's ``fromCode``: a code the enum lacks reads as UNKNOWN (member 0)."""
    try:
        return enum(code)
    except ValueError:
        return enum(0)


_IMPLIES_DESCRIBE = frozenset(
    (
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    )
)
_IMPLIES_DESCRIBE_CONFIGS = frozenset((AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS))


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardAcl:
    """One ACL without its id (Kafka's StandardAcl); principal is ``Type:Name``."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission_type: AclPermissionType

    @classmethod
    def from_record(cls, record: AccessControlEntryRecord) -> StandardAcl:
        return cls(
            resource_type=from_code(ResourceType, record.resource_type),
            resource_name=record.resource_name,
            pattern_type=from_code(PatternType, record.pattern_type),
            principal=record.principal,
            host=record.host,
            operation=from_code(AclOperation, record.operation),
            permission_type=from_code(AclPermissionType, record.permission_type),
        )

    def sort_key(self) -> tuple[int, _Reversed, int, int, str, str, int]:
        """Kafka's StandardAcl.compareTo: type, name in REVERSE order, pattern type,
        operation, principal, host, permission type."""
        return (
            self.resource_type,
            _Reversed(self.resource_name),
            self.pattern_type,
            self.operation,
            self.principal,
            self.host,
            self.permission_type,
        )

    def matches_resource(self, resource_type: ResourceType, name: str) -> bool:
        """Does this ACL's pattern cover the resource (StandardAuthorizerData's scan)?"""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type is PatternType.LITERAL:
            return self.resource_name == name or self.resource_name == WILDCARD
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return False


@dataclass(frozen=True, slots=True)
class _Reversed:
    """A string that sorts in reverse (Java String.compareTo on UTF-16 code units)."""

    value: str

    def __lt__(self, other: _Reversed) -> bool:
        return _utf16(other.value) < _utf16(self.value)


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizerSettings:
    """The StandardAuthorizer's configs: ``super.users`` (principals, ``;``-separated in
    the properties) and ``allow.everyone.if.no.acl.found`` (default false)."""

    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False

    @classmethod
    def from_properties(cls, super_users: str, allow_everyone: bool) -> AuthorizerSettings:
        users = frozenset(u.strip() for u in super_users.split(";") if u.strip())
        return cls(super_users=users, allow_everyone_if_no_acl_found=allow_everyone)


def _principal_matches(acl_principal: str, principal: str) -> bool:
    # KafkaPrincipal equality: type and name; a principal without "Type:" never matches.
    if ":" not in acl_principal:
        return False
    return acl_principal in (principal, WILDCARD_PRINCIPAL)


def _operation_matches(acl: StandardAcl, operation: AclOperation) -> bool:
    if acl.operation is AclOperation.ALL:
        return True
    if acl.permission_type is AclPermissionType.ALLOW:
        if operation is AclOperation.DESCRIBE:
            return acl.operation in _IMPLIES_DESCRIBE
        if operation is AclOperation.DESCRIBE_CONFIGS:
            return acl.operation in _IMPLIES_DESCRIBE_CONFIGS
    return acl.operation is operation


def authorize(
    acls: Iterable[StandardAcl],
    settings: AuthorizerSettings,
    principal: str,
    host: str,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: str,
) -> bool:
    """May ``principal`` (``User:alice``) from ``host`` (an IP address as text) perform
    ``operation`` on the resource? The rules of the module docstring (StandardAuthorizerData
    .authorize, Kafka 3.9)."""
    if principal in settings.super_users:
        return True
    applies = False
    allowed = False
    for acl in acls:
        if not acl.matches_resource(resource_type, resource_name):
            continue
        applies = True
        if not _principal_matches(acl.principal, principal):
            continue
        if acl.host != WILDCARD and acl.host != host:
            continue
        if not _operation_matches(acl, operation):
            continue
        if acl.permission_type is AclPermissionType.DENY:
            return False
        if acl.permission_type is AclPermissionType.ALLOW:
            allowed = True
    if allowed:
        return True
    return False if applies else settings.allow_everyone_if_no_acl_found


class Authorizer:
    """The StandardAuthorizer over a live view of ACLs (e.g. ``image.acls.values()``
    mapped through ``StandardAcl.from_record``), for the controller and the listener."""

    __slots__ = ("_acls", "settings")

    def __init__(self, acls: Iterable[AccessControlEntryRecord], settings: AuthorizerSettings):
        self._acls = acls
        self.settings = settings

    def authorize(
        self,
        principal: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: str,
    ) -> bool:
        """See ``authorize``: True when allowed."""
        return authorize(
            (StandardAcl.from_record(r) for r in self._acls),
            self.settings,
            principal,
            host,
            operation,
            resource_type,
            resource_name,
        )


class AuthHelper:
    """Kafka's AuthHelper for one caller (a principal from a host): the questions
    ControllerApis asks about the resources a request names. Without an authorizer
    (``authorizer`` None) every answer is yes, as AuthHelper's ``authorizer.forall``."""

    __slots__ = ("_authorizer", "host", "principal")

    def __init__(self, authorizer: Authorizer | None, principal: str, host: str) -> None:
        self._authorizer = authorizer
        self.principal = principal
        self.host = host

    @classmethod
    def of(cls, ctl: QuorumController, principal: str, host: str) -> AuthHelper:
        """The controller's StandardAuthorizer (over its image's ACLs), if configured."""
        settings = ctl.config.authorizer
        authorizer = None if settings is None else Authorizer(ctl.image.acls.values(), settings)
        return cls(authorizer, principal, host)

    @classmethod
    def for_request(cls, ctl: QuorumController, context: RequestContext) -> AuthHelper:
        """The caller of a request: the client's principal and address (forwarded: the
        envelope's client); a request the node makes for itself is always allowed."""
        if context.internal:
            return cls(None, context.principal, context.client_host)
        return cls.of(ctl, context.principal, context.client_host)

    @property
    def enabled(self) -> bool:
        return self._authorizer is not None

    def authorize(self, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
        """AuthHelper.authorize: may the caller do ``operation`` on the LITERAL resource?"""
        if self._authorizer is None:
            return True
        return self._authorizer.authorize(self.principal, self.host, operation, resource_type, name)

    def cluster(self, operation: AclOperation) -> bool:
        """``operation`` on the CLUSTER resource ``kafka-cluster``."""
        return self.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME)

    def filter(
        self, operation: AclOperation, resource_type: ResourceType, names: Iterable[str]
    ) -> set[str]:
        """AuthHelper.filterByAuthorized: the names (each asked once) the caller may
        ``operation``; all of them without an authorizer."""
        unique = set(names)
        return {n for n in unique if self.authorize(operation, resource_type, n)}


# The operation on the CLUSTER resource that ControllerApis (Kafka 3.9) requires of the
# whole request, by API key (``authHelper.authorizeClusterOperation``). APIs missing here
# check per resource (CreateTopics, DeleteTopics, CreatePartitions, the config APIs,
# CreateDelegationToken) or not at all (ApiVersions, SASL, Renew/ExpireDelegationToken).
CLUSTER_OPERATION_BY_API: dict[int, AclOperation] = {
    1: AclOperation.CLUSTER_ACTION,  # Fetch
    59: AclOperation.CLUSTER_ACTION,  # FetchSnapshot
    52: AclOperation.CLUSTER_ACTION,  # Vote
    53: AclOperation.CLUSTER_ACTION,  # BeginQuorumEpoch
    54: AclOperation.CLUSTER_ACTION,  # EndQuorumEpoch
    55: AclOperation.DESCRIBE,  # DescribeQuorum
    43: AclOperation.ALTER,  # ElectLeaders
    56: AclOperation.CLUSTER_ACTION,  # AlterPartition
    63: AclOperation.CLUSTER_ACTION,  # BrokerHeartbeat
    64: AclOperation.ALTER,  # UnregisterBroker
    62: AclOperation.CLUSTER_ACTION,  # BrokerRegistration
    49: AclOperation.ALTER_CONFIGS,  # AlterClientQuotas
    70: AclOperation.CLUSTER_ACTION,  # ControllerRegistration
    45: AclOperation.ALTER,  # AlterPartitionReassignments
    46: AclOperation.DESCRIBE,  # ListPartitionReassignments
    51: AclOperation.ALTER,  # AlterUserScramCredentials
    67: AclOperation.CLUSTER_ACTION,  # AllocateProducerIds
    57: AclOperation.ALTER,  # UpdateFeatures
    60: AclOperation.ALTER,  # DescribeCluster (ALTER on the controller, unlike brokers)
    73: AclOperation.CLUSTER_ACTION,  # AssignReplicasToDirs
    80: AclOperation.ALTER,  # AddRaftVoter
    81: AclOperation.ALTER,  # RemoveRaftVoter
    82: AclOperation.CLUSTER_ACTION,  # UpdateRaftVoter
    29: AclOperation.DESCRIBE,  # DescribeAcls
    30: AclOperation.ALTER,  # CreateAcls
    31: AclOperation.ALTER,  # DeleteAcls
    58: AclOperation.CLUSTER_ACTION,  # Envelope (for the envelope's own principal)
}


def cluster_operation(request: Message) -> AclOperation | None:
    """The CLUSTER operation ControllerApis requires before it looks at ``request`` at all
    (None when it checks per resource or not at all)."""
    return CLUSTER_OPERATION_BY_API.get(type(request).API_KEY)  # type: ignore[attr-defined]


def cluster_authorization_failed_message(request: Message) -> str:
    """The message of the ClusterAuthorizationException AuthHelper throws. Kafka's reads
    ``Request <the request's toString, with connection ids> is not authorized.``; kwire
    names the API instead of the connection."""
    return f"Request {request.NAME} is not authorized."
