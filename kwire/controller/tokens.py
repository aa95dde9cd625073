"""Create (38), Renew (39), Expire (40) and Describe (41) DelegationToken on the controller
(KIP-48, KIP-900), as Kafka 3.9's ControllerApis and DelegationTokenControlManager answer.

Who may ask (ControllerApis.allowTokenRequests): not a principal that authenticated with a
token, not a direct (unforwarded) request on a PLAINTEXT connection, not an anonymous one
on SSL: DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, timestamps -1. Creating a token for another
owner needs CREATE_TOKENS on that USER (when an authorizer is configured):
DELEGATION_TOKEN_AUTHORIZATION_FAILED.

Then the controller: token authentication off (``delegation.token.secret.key`` unset or
empty): DELEGATION_TOKEN_AUTH_DISABLED; metadata.version below 3.6-IV2:
UNSUPPORTED_VERSION. Create: renewers must all be of type ``User`` (else
INVALID_PRINCIPAL_TYPE); the token id is a random Kafka Uuid in base64; its HMAC is
HmacSHA512(secret, id); max = now + min(max lifetime, requested if > 0), expiry = min(max,
now + renew period); one DelegationTokenRecord. Renew/Expire find the token by its HMAC
(DELEGATION_TOKEN_NOT_FOUND), check it is not past its max or expiry
(DELEGATION_TOKEN_EXPIRED; Expire with a negative period skips this) and that the caller
owns or may renew it (DELEGATION_TOKEN_OWNER_MISMATCH). Expire with a negative period
removes the token (RemoveDelegationTokenRecord).

DescribeDelegationToken is listed on the controller listener but ControllerApis has no
handler: UNKNOWN_SERVER_ERROR.

The sweep (QuorumController.maybeScheduleNextExpiredDelegationTokenSweep,
DelegationTokenControlManager.sweepExpiredDelegationTokens): with token authentication on
and metadata.version at least 3.6-IV2 when the controller becomes active, a sweep runs
every ``delegation.token.expiry.check.interval.ms`` (1 hour), each run scheduling the next
one interval later, and writes one RemoveDelegationTokenRecord for every token whose max or
expiry timestamp is before now (strictly), in the order Kafka's token cache (a
ConcurrentHashMap keyed by token id) iterates them, in one non-atomic write (nothing when
no token expired). Costs: kwire orders that table as if it held only today's tokens, in
the order they were created (exact while it never held 12 or more at once: Java grows it
and may reverse bins as it moves them, and never shrinks it); and kwire sweeps its image,
with uncommitted records, where Kafka sweeps the tokens its publisher has seen committed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import TYPE_CHECKING

from kwire.controller.api_error import OperationFailed
from kwire.controller.authorizer import AclOperation, Authorizer, ResourceType
from kwire.controller.java_order import string_hash
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.replication import random_topic_id
from kwire.metadata_version import MetadataVersion
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_delegation_token import (
    CreateDelegationTokenRequest,
    CreateDelegationTokenResponse,
)
from kwire.protocol.messages.describe_delegation_token import DescribeDelegationTokenRequest
from kwire.protocol.messages.expire_delegation_token import (
    ExpireDelegationTokenRequest,
    ExpireDelegationTokenResponse,
)
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.remove_delegation_token_record import (
    RemoveDelegationTokenRecord,
)
from kwire.protocol.messages.renew_delegation_token import (
    RenewDelegationTokenRequest,
    RenewDelegationTokenResponse,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

log = logging.getLogger("kwire.controller.tokens")

ERROR_TIMESTAMP = -1  # DelegationTokenManager.ErrorTimestamp
USER_TYPE = "User"


def split_principal(principal: str) -> tuple[str, str]:
    """("User", "alice") from "User:alice" (KafkaPrincipal's type and name)."""
    kind, _, name = principal.partition(":")
    return kind, name


def token_requests_allowed(context: RequestContext) -> bool:
    """ControllerApis.allowTokenRequests."""
    if context.token_authenticated:
        return False
    if not context.envelope and context.security_protocol == "PLAINTEXT":
        return False
    return not (
        not context.envelope
        and context.security_protocol == "SSL"
        and context.principal == "User:ANONYMOUS"
    )


def token_hmac(secret: str, token_id: str) -> bytes:
    return hmac.new(secret.encode(), token_id.encode(), hashlib.sha512).digest()


def kafka_uuid_text(rng_uuid: bytes) -> str:
    """Kafka's Uuid.toString: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(rng_uuid).decode().rstrip("=")


def _secret(ctl: QuorumController) -> str | None:
    key = ctl.config.delegation_token_secret_key
    return key or None


def _unavailable(ctl: QuorumController, secret: str | None) -> ErrorCode | None:
    if secret is None:
        return ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED
    if ctl.metadata_version < MetadataVersion.IBP_3_6_IV2:
        return ErrorCode.UNSUPPORTED_VERSION
    return None


def create_delegation_token(
    ctl: QuorumController,
    request: CreateDelegationTokenRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    version = context.api_version
    requester = context.principal
    if request.owner_principal_name:
        owner = f"{request.owner_principal_type}:{request.owner_principal_name}"
    else:
        owner = requester

    def answer(error: ErrorCode, **fields: object) -> CreateDelegationTokenResponse:
        owner_type, owner_name = split_principal(owner)
        extra: dict[str, object] = {}
        if version > 2:
            extra["token_requester_principal_type"], extra["token_requester_principal_name"] = (
                split_principal(requester)
            )
        return CreateDelegationTokenResponse(
            error_code=error,
            principal_type=owner_type,
            principal_name=owner_name,
            **extra,  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
        )

    if not token_requests_allowed(context):
        response = answer(
            ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED,
            issue_timestamp_ms=ERROR_TIMESTAMP,
            expiry_timestamp_ms=ERROR_TIMESTAMP,
            max_timestamp_ms=ERROR_TIMESTAMP,
        )
        return ControllerResult(records=[], response=response)
    if owner != requester and not ctl_authorize(
        ctl, context, AclOperation.CREATE_TOKENS, ResourceType.USER, owner
    ):
        response = answer(
            ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
            issue_timestamp_ms=ERROR_TIMESTAMP,
            expiry_timestamp_ms=ERROR_TIMESTAMP,
            max_timestamp_ms=ERROR_TIMESTAMP,
        )
        return ControllerResult(records=[], response=response)
    secret = _secret(ctl)
    unavailable = _unavailable(ctl, secret)
    if unavailable is not None:
        return ControllerResult(records=[], response=answer(unavailable))
    now = ctl.tracker.now_ms
    max_life = ctl.config.delegation_token_max_lifetime_ms
    if request.max_lifetime_ms > 0:
        max_life = min(max_life, request.max_lifetime_ms)
    max_timestamp = now + max_life
    expiry = min(max_timestamp, now + ctl.config.delegation_token_expiry_time_ms)
    token_id = kafka_uuid_text(random_topic_id(ctl.rng).bytes)
    renewers: list[str] = []
    for renewer in request.renewers:
        if renewer.principal_type != USER_TYPE:
            return ControllerResult(records=[], response=answer(ErrorCode.INVALID_PRINCIPAL_TYPE))
        renewers.append(f"{renewer.principal_type}:{renewer.principal_name}")
    assert secret is not None
    record = DelegationTokenRecord(
        owner=owner,
        requester=requester,
        renewers=renewers,
        issue_timestamp=now,
        max_timestamp=max_timestamp,
        expiration_timestamp=expiry,
        token_id=token_id,
    )
    response = answer(
        ErrorCode.NONE,
        issue_timestamp_ms=now,
        expiry_timestamp_ms=expiry,
        max_timestamp_ms=max_timestamp,
        token_id=token_id,
        hmac=token_hmac(secret, token_id),
    )
    return ctl.apply(Applied(), [record], next_offset).result(response)


def ctl_authorize(
    ctl: QuorumController,
    context: RequestContext,
    operation: AclOperation,
    resource_type: ResourceType,
    name: str,
) -> bool:
    """The controller's authorizer's answer; always yes without an authorizer."""
    authorizer = ctl_authorizer(ctl)
    if authorizer is None:
        return True
    return authorizer.authorize(
        context.principal, context.client_host, operation, resource_type, name
    )


def ctl_authorizer(ctl: QuorumController) -> Authorizer | None:
    """The StandardAuthorizer over the controller's ACLs, None without authorizer."""
    settings = ctl.config.authorizer
    return None if settings is None else Authorizer(ctl.image.acls.values(), settings)


def _find_token(ctl: QuorumController, secret: str, mac: bytes) -> DelegationTokenRecord | None:
    for record in ctl.image.delegation_tokens.values():
        if hmac.compare_digest(token_hmac(secret, record.token_id), mac):
            return record
    return None


def _may_renew(record: DelegationTokenRecord, principal: str) -> bool:
    return record.owner == principal or principal in record.renewers


def _token_to_change(
    ctl: QuorumController, context: RequestContext, hmac: bytes
) -> DelegationTokenRecord | tuple[ErrorCode, int]:
    """The token a Renew or Expire names, after the checks both make first, in Kafka's
    order (who may ask, token authentication on, the token exists); otherwise the error
    and expiry timestamp to answer."""
    if not token_requests_allowed(context):
        return ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, ERROR_TIMESTAMP
    secret = _secret(ctl)
    unavailable = _unavailable(ctl, secret)
    if unavailable is not None:
        return unavailable, 0
    assert secret is not None
    token = _find_token(ctl, secret, hmac)
    if token is None:
        return ErrorCode.DELEGATION_TOKEN_NOT_FOUND, 0
    return token


def renew_delegation_token(
    ctl: QuorumController,
    request: RenewDelegationTokenRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    def answer(error: ErrorCode, expiry: int = 0) -> ControllerResult:
        return ControllerResult(
            records=[],
            response=RenewDelegationTokenResponse(error_code=error, expiry_timestamp_ms=expiry),
        )

    found = _token_to_change(ctl, context, request.hmac)
    if isinstance(found, tuple):
        return answer(*found)
    token, now = found, ctl.tracker.now_ms
    if token.max_timestamp < now or token.expiration_timestamp < now:
        return answer(ErrorCode.DELEGATION_TOKEN_EXPIRED)
    if not _may_renew(token, context.principal):
        return answer(ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH)
    period = ctl.config.delegation_token_expiry_time_ms
    if request.renew_period_ms > 0:
        period = min(period, request.renew_period_ms)
    expiry = min(token.max_timestamp, now + period)
    record = _with_expiry(token, expiry)
    return ctl.apply(Applied(), [record], next_offset).result(
        RenewDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)
    )


def expire_delegation_token(
    ctl: QuorumController,
    request: ExpireDelegationTokenRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    def answer(error: ErrorCode, expiry: int = 0) -> ControllerResult:
        return ControllerResult(
            records=[],
            response=ExpireDelegationTokenResponse(error_code=error, expiry_timestamp_ms=expiry),
        )

    found = _token_to_change(ctl, context, request.hmac)
    if isinstance(found, tuple):
        return answer(*found)
    token, now = found, ctl.tracker.now_ms
    if not _may_renew(token, context.principal):
        return answer(ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH)
    if request.expiry_time_period_ms < 0:
        removal = RemoveDelegationTokenRecord(token_id=token.token_id)
        return ctl.apply(Applied(), [removal], next_offset).result(
            ExpireDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=now)
        )
    if token.max_timestamp < now or token.expiration_timestamp < now:
        return answer(ErrorCode.DELEGATION_TOKEN_EXPIRED)
    expiry = min(token.max_timestamp, now + request.expiry_time_period_ms)
    return ctl.apply(Applied(), [_with_expiry(token, expiry)], next_offset).result(
        ExpireDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)
    )


def _with_expiry(token: DelegationTokenRecord, expiry: int) -> DelegationTokenRecord:
    return DelegationTokenRecord(
        owner=token.owner,
        requester=token.requester,
        renewers=list(token.renewers),
        issue_timestamp=token.issue_timestamp,
        max_timestamp=token.max_timestamp,
        expiration_timestamp=expiry,
        token_id=token.token_id,
    )


def describe_delegation_token(
    ctl: QuorumController,
    request: DescribeDelegationTokenRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    # ControllerApis.handle has no case for this API: UNKNOWN_SERVER_ERROR.
    raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)


# -- the periodic sweep of expired tokens ----------------------------------------------------

_CHM_INITIAL_CAPACITY = 16  # ConcurrentHashMap's default table size


def token_sweep_enabled(ctl: QuorumController) -> bool:
    """Whether the active controller schedules the sweep (token authentication on and
    metadata.version supporting delegation tokens, 3.6-IV2), as Kafka decides it when
    activating and again whenever a sweep runs."""
    return _secret(ctl) is not None and ctl.metadata_version >= MetadataVersion.IBP_3_6_IV2


def expired_token_removals(ctl: QuorumController, now_ms: int) -> list[RemoveDelegationTokenRecord]:
    """One RemoveDelegationTokenRecord per token whose max or expiry timestamp (ms) is
    before ``now_ms``, in the token cache's order (DelegationTokenControlManager.
    sweepExpiredDelegationTokens); nothing is applied here."""
    records: list[RemoveDelegationTokenRecord] = []
    for token in token_cache_order(list(ctl.image.delegation_tokens.values())):
        if token.max_timestamp < now_ms or token.expiration_timestamp < now_ms:
            owner = token.owner
            log.info("Delegation token expired for token: %s for owner: %s", token.token_id, owner)
            records.append(RemoveDelegationTokenRecord(token_id=token.token_id))
    return records


def token_cache_order(tokens: list[DelegationTokenRecord]) -> list[DelegationTokenRecord]:
    """``tokens`` (in creation order) as a java.util.concurrent.ConcurrentHashMap keyed by
    token id iterates them: by bin ((h ^ h >>> 16) & (capacity - 1), h the id's
    String.hashCode), each bin in insertion order; the table doubles from 16 when its count
    reaches three quarters of it (see the module docstring for where this is not exact)."""
    capacity = _CHM_INITIAL_CAPACITY
    while len(tokens) >= capacity - (capacity >> 2):
        capacity <<= 1

    def bin_of(token: DelegationTokenRecord) -> int:
        h = string_hash(token.token_id) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(tokens, key=bin_of)  # sorted is stable: a bin keeps insertion order
