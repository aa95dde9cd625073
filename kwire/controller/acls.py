"""CreateAcls (30), DeleteAcls (31) and DescribeAcls (29) on the controller, as Kafka 3.9's
AclApis, ClusterMetadataAuthorizer and AclControlManager answer them.

Rules, in the order Kafka applies them:
1. The request must parse: Kafka's request classes refuse, while parsing, a v0 request
   naming a pattern type other than LITERAL (ANY in a v0 filter reads as LITERAL), and any
   resource type, pattern type, operation or permission type whose raw code is UNKNOWN's
   (0); other codes no member has read as UNKNOWN and are answered (rule 4).
   Kafka then closes the connection; kwire raises ``RequestNotParsed`` (a ProtocolError,
   which makes the listener close it).
2. ControllerApis requires DESCRIBE (Describe) or ALTER (Create, Delete) on the cluster
   (checked in ``QuorumController.handle`` when an authorizer is configured).
3. Without an authorizer (``authorizer.class.name`` unset): SECURITY_DISABLED, "No
   Authorizer is configured." on every item ("... on the broker" for DescribeAcls).
4. Creations: ANY as resource type or operation or permission, MATCH or ANY as pattern
   type cannot make an AclBinding: Kafka fails the whole request, UNKNOWN_SERVER_ERROR
   without message on every creation. Then per creation: a CLUSTER resource not named
   ``kafka-cluster``, an empty name: INVALID_REQUEST. The rest go to the controller, which
   writes one AccessControlEntryRecord (a fresh random id) per ACL it does not hold yet;
   more than 10,000 records fail every one of them with POLICY_VIOLATION.
5. Deletions: each filter removes every ACL it matches (RemoveAccessControlEntryRecord,
   once per ACL however many filters match it). Records are written in the order of
   Kafka's HashSet of them; the ACLs are visited in the order of Kafka's TimelineHashMap
   by id (see kwire.controller.java_order). Past 10,000 records a filter fails with
   UNKNOWN_SERVER_ERROR (Kafka's BoundedListTooLongException, caught per filter) while
   the records it already added stay in the set and are written, as in Kafka.
6. Describe lists the ACLs matching the filter, grouped by resource pattern. Kafka groups
   them in a HashMap keyed by enums' identity hash codes, an order that differs from run
   to run; kwire lists them in the authorizer's order (StandardAcl.compareTo).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from uuid import UUID

from kwire.controller.api_error import MAX_RECORDS_PER_USER_OP, OperationFailed
from kwire.controller.authorizer import (
    CLUSTER_NAME,
    WILDCARD,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
    StandardAcl,
    from_code,
)
from kwire.controller.java_order import JavaHashMap, objects_hash, timeline_slot, uuid_hash
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.replication import random_topic_id
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.errors import ProtocolError
from kwire.protocol.messages.create_acls import CreateAclsRequest, CreateAclsResponse
from kwire.protocol.messages.delete_acls import DeleteAclsRequest, DeleteAclsResponse
from kwire.protocol.messages.describe_acls import DescribeAclsRequest, DescribeAclsResponse
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.remove_access_control_entry_record import (
    RemoveAccessControlEntryRecord,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

log = logging.getLogger("kwire.controller.acls")

NO_AUTHORIZER = "No Authorizer is configured."
NO_AUTHORIZER_DESCRIBE = "No Authorizer is configured on the broker"


class RequestNotParsed(ProtocolError):
    """Kafka's request class refuses these contents while parsing: it closes the
    connection without an answer."""


# -- filters --------------------------------------------------------------------------------


def pattern_filter_matches(
    resource_type: ResourceType,
    name: str | None,
    pattern_type: PatternType,
    acl: StandardAcl,
) -> bool:
    """Kafka's ResourcePatternFilter.matches: ANY matches every type; pattern type ANY
    matches every pattern with exactly this name, MATCH every pattern that covers the name
    (the LITERAL name, LITERAL ``*``, a PREFIXED prefix of it); a null name every name."""
    if resource_type is not ResourceType.ANY and resource_type is not acl.resource_type:
        return False
    if pattern_type not in (PatternType.ANY, PatternType.MATCH, acl.pattern_type):
        return False
    if name is None:
        return True
    if pattern_type is PatternType.ANY or pattern_type is acl.pattern_type:
        return name == acl.resource_name
    if acl.pattern_type is PatternType.LITERAL:
        return name == acl.resource_name or acl.resource_name == WILDCARD
    if acl.pattern_type is PatternType.PREFIXED:
        return name.startswith(acl.resource_name)
    return False


def entry_filter_matches(
    principal: str | None,
    host: str | None,
    operation: AclOperation,
    permission: AclPermissionType,
    acl: StandardAcl,
) -> bool:
    """Kafka's AccessControlEntryFilter.matches: null principal/host and ANY match all."""
    if principal is not None and principal != acl.principal:
        return False
    if host is not None and host != acl.host:
        return False
    if operation is not AclOperation.ANY and operation is not acl.operation:
        return False
    return permission is AclPermissionType.ANY or permission is acl.permission_type


def _filter_pattern_type(code: int, api_version: int) -> PatternType:
    """A filter's pattern type after Kafka's parse-time normalisation (v0: ANY -> LITERAL,
    anything else but LITERAL refused)."""
    pattern = from_code(PatternType, code)
    if api_version == 0:
        if pattern is PatternType.ANY:
            return PatternType.LITERAL
        if pattern is not PatternType.LITERAL:
            raise RequestNotParsed(
                f"Version 0 does not support pattern type {pattern.name} "
                "(only LITERAL and ANY are supported)"
            )
    return pattern


def _has_unknown(*codes: int) -> bool:
    """The requests' validate(): only a raw code equal to UNKNOWN's (0) is refused at
    parse time; a code no member has reads as UNKNOWN later and is answered."""
    return any(code == 0 for code in codes)


# -- CreateAcls -----------------------------------------------------------------------------


def create_acls(
    ctl: QuorumController, request: CreateAclsRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    version = context.api_version
    if version == 0 and any(
        c.resource_pattern_type != PatternType.LITERAL for c in request.creations
    ):
        raise RequestNotParsed("Version 0 only supports literal resource pattern types")
    if any(
        _has_unknown(c.resource_pattern_type, c.resource_type, c.permission_type, c.operation)
        for c in request.creations
    ):
        raise RequestNotParsed("CreatableAcls contain unknown elements")
    if ctl.config.authorizer is None:
        raise OperationFailed(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)

    acls = [_binding(c) for c in request.creations]
    results: list[tuple[ErrorCode, str | None] | None] = []
    valid: list[int] = []
    for i, acl in enumerate(acls):
        if acl.resource_type is ResourceType.CLUSTER and acl.resource_name != CLUSTER_NAME:
            results.append(
                (
                    ErrorCode.INVALID_REQUEST,
                    f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}",
                )
            )
        elif not acl.resource_name:
            results.append((ErrorCode.INVALID_REQUEST, "Invalid empty resource name"))
        else:
            results.append(None)
            valid.append(i)

    existing = {StandardAcl.from_record(r) for r in ctl.image.acls.values()}
    records: list[AccessControlEntryRecord] = []
    taken: set[UUID] = set(ctl.image.acls)
    for i in valid:
        acl = acls[i]
        error = _validate_new_acl(acl)
        if error is not None:
            results[i] = (ErrorCode.INVALID_REQUEST, error)
            continue
        if acl not in existing:
            existing.add(acl)
            acl_id = _new_acl_id(ctl, taken)
            records.append(_record(acl_id, acl))
        results[i] = (ErrorCode.NONE, None)
    if len(records) > MAX_RECORDS_PER_USER_OP:
        # The controller's whole createAcls fails; each binding it was given gets it.
        for i in valid:
            results[i] = (
                ErrorCode.POLICY_VIOLATION,
                "Unable to perform excessively large batch operation.",
            )
        records = []
    response = CreateAclsResponse(
        results=[
            CreateAclsResponse.AclCreationResult(error_code=code, error_message=message)
            for code, message in (r for r in results if r is not None)
        ]
    )
    return ctl.apply(Applied(), list(records), next_offset).result(response)


def _binding(creation: CreateAclsRequest.AclCreation) -> StandardAcl:
    resource_type = from_code(ResourceType, creation.resource_type)
    pattern_type = from_code(PatternType, creation.resource_pattern_type)
    operation = from_code(AclOperation, creation.operation)
    permission = from_code(AclPermissionType, creation.permission_type)
    # Kafka's ResourcePattern and AccessControlEntry refuse these with an
    # IllegalArgumentException outside any handler: UNKNOWN_SERVER_ERROR on every item.
    if (
        resource_type is ResourceType.ANY
        or pattern_type in (PatternType.MATCH, PatternType.ANY)
        or operation is AclOperation.ANY
        or permission is AclPermissionType.ANY
    ):
        raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)
    return StandardAcl(
        resource_type=resource_type,
        resource_name=creation.resource_name,
        pattern_type=pattern_type,
        principal=creation.principal,
        host=creation.host,
        operation=operation,
        permission_type=permission,
    )


def _validate_new_acl(acl: StandardAcl) -> str | None:
    """AclControlManager.validateNewAcl (most of it unreachable after parsing)."""
    if acl.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {acl.resource_type.name}"
    if acl.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {acl.pattern_type.name}"
    if acl.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {acl.operation.name}"
    if acl.permission_type not in (AclPermissionType.DENY, AclPermissionType.ALLOW):
        return f"Invalid permissionType {acl.permission_type.name}"
    if not acl.resource_name:
        return "Resource name should not be empty"
    return None


def _new_acl_id(ctl: QuorumController, taken: set[UUID]) -> UUID:
    while True:
        candidate = random_topic_id(ctl.rng)  # Kafka's Uuid.randomUuid, from our rng
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _record(acl_id: UUID, acl: StandardAcl) -> AccessControlEntryRecord:
    return AccessControlEntryRecord(
        id=acl_id,
        resource_type=acl.resource_type,
        resource_name=acl.resource_name,
        pattern_type=acl.pattern_type,
        principal=acl.principal,
        host=acl.host,
        operation=acl.operation,
        permission_type=acl.permission_type,
    )


# -- DeleteAcls -----------------------------------------------------------------------------


def acls_in_kafka_order(ctl: QuorumController) -> list[tuple[UUID, StandardAcl]]:
    """The ACLs as Kafka's TimelineHashMap of them by id iterates: slot by slot, each slot
    in the order its ids arrived (a stable sort of the image's insertion order)."""
    capacity = ctl.image.acl_table_capacity
    ordered = sorted(
        ctl.image.acls.items(), key=lambda kv: timeline_slot(uuid_hash(kv[0]), capacity)
    )
    return [(acl_id, StandardAcl.from_record(record)) for acl_id, record in ordered]


def delete_acls(
    ctl: QuorumController, request: DeleteAclsRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    patterns = [
        _filter_pattern_type(f.pattern_type_filter, context.api_version) for f in request.filters
    ]
    if any(
        _has_unknown(f.pattern_type_filter, f.resource_type_filter, f.operation, f.permission_type)
        for f in request.filters
    ):
        raise RequestNotParsed("Filters contain UNKNOWN elements")
    if ctl.config.authorizer is None:
        raise OperationFailed(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)

    acls = acls_in_kafka_order(ctl)
    # Kafka's HashSet<ApiMessageAndVersion>: hash Objects.hash(record, version 0), where the
    # record's hash is its id's.
    removals: JavaHashMap[UUID, None] = JavaHashMap()
    results: list[DeleteAclsResponse.DeleteAclsFilterResult] = []
    for f, pattern in zip(request.filters, patterns, strict=True):
        resource_type = from_code(ResourceType, f.resource_type_filter)
        operation = from_code(AclOperation, f.operation)
        permission = from_code(AclPermissionType, f.permission_type)
        matching: list[DeleteAclsResponse.DeleteAclsMatchingAcl] = []
        failed = False
        for acl_id, acl in acls:
            if not (
                pattern_filter_matches(resource_type, f.resource_name_filter, pattern, acl)
                and entry_filter_matches(
                    f.principal_filter, f.host_filter, operation, permission, acl
                )
            ):
                continue
            matching.append(_matching(acl))
            removals.put(acl_id, objects_hash(uuid_hash(acl_id), 0), None)
            if len(removals) > MAX_RECORDS_PER_USER_OP:
                log.warning(
                    "Cannot remove more than %d acls in a single delete operation.",
                    MAX_RECORDS_PER_USER_OP,
                )
                failed = True
                break
        if failed:
            results.append(
                DeleteAclsResponse.DeleteAclsFilterResult(
                    error_code=ErrorCode.UNKNOWN_SERVER_ERROR, error_message=None
                )
            )
        else:
            results.append(
                DeleteAclsResponse.DeleteAclsFilterResult(
                    error_message=None, matching_acls=matching
                )
            )
    records = [RemoveAccessControlEntryRecord(id=acl_id) for acl_id, _ in removals.items()]
    response = DeleteAclsResponse(filter_results=results)
    return ctl.apply(Applied(), list(records), next_offset).result(response)


def _matching(acl: StandardAcl) -> DeleteAclsResponse.DeleteAclsMatchingAcl:
    return DeleteAclsResponse.DeleteAclsMatchingAcl(
        error_message=None,
        resource_type=acl.resource_type,
        resource_name=acl.resource_name,
        pattern_type=acl.pattern_type,
        principal=acl.principal,
        host=acl.host,
        operation=acl.operation,
        permission_type=acl.permission_type,
    )


# -- DescribeAcls ---------------------------------------------------------------------------


def describe_acls(
    ctl: QuorumController, request: DescribeAclsRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    if context.api_version == 0:
        pattern = from_code(PatternType, request.pattern_type_filter)
        if pattern is PatternType.ANY:
            pattern = PatternType.LITERAL
        elif pattern is not PatternType.LITERAL:
            raise RequestNotParsed("Version 0 only supports literal resource pattern types")
    else:
        pattern = from_code(PatternType, request.pattern_type_filter)
    if _has_unknown(
        request.pattern_type_filter,
        request.resource_type_filter,
        request.permission_type,
        request.operation,
    ):
        raise RequestNotParsed("DescribeAclsRequest contains UNKNOWN elements")
    if ctl.config.authorizer is None:
        return ControllerResult(
            records=[],
            response=DescribeAclsResponse(
                error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER_DESCRIBE
            ),
        )
    resource_type = from_code(ResourceType, request.resource_type_filter)
    operation = from_code(AclOperation, request.operation)
    permission = from_code(AclPermissionType, request.permission_type)
    acls = sorted(
        (StandardAcl.from_record(r) for r in ctl.image.acls.values()), key=StandardAcl.sort_key
    )
    groups: dict[tuple[ResourceType, str, PatternType], list[StandardAcl]] = {}
    for acl in acls:
        if pattern_filter_matches(
            resource_type, request.resource_name_filter, pattern, acl
        ) and entry_filter_matches(
            request.principal_filter, request.host_filter, operation, permission, acl
        ):
            key = (acl.resource_type, acl.resource_name, acl.pattern_type)
            groups.setdefault(key, []).append(acl)
    return ControllerResult(
        records=[],
        response=DescribeAclsResponse(
            resources=[
                DescribeAclsResponse.DescribeAclsResource(
                    resource_type=rtype,
                    resource_name=name,
                    pattern_type=ptype,
                    acls=[
                        DescribeAclsResponse.AclDescription(
                            principal=a.principal,
                            host=a.host,
                            operation=a.operation,
                            permission_type=a.permission_type,
                        )
                        for a in members
                    ],
                )
                for (rtype, name, ptype), members in groups.items()
            ]
        ),
    )
