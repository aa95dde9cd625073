"""Delegation tokens on the controller, as Kafka 3.9's ControllerApis and
DelegationTokenControlManager answer, with and without token authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from test_controller_acls import pending_records
from test_controller_authorizer import send_as
from test_controller_integrity import START_MS, Leader

from kwire.controller.authorizer import AuthorizerSettings
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_delegation_token import CreateDelegationTokenRequest
from kwire.protocol.messages.describe_delegation_token import DescribeDelegationTokenRequest
from kwire.protocol.messages.expire_delegation_token import ExpireDelegationTokenRequest
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.remove_delegation_token_record import (
    RemoveDelegationTokenRecord,
)
from kwire.protocol.messages.renew_delegation_token import RenewDelegationTokenRequest
from kwire.records import frame_metadata_record

SECRET = "s3cret"
SASL = {"security_protocol": "SASL_PLAINTEXT", "principal": "User:alice"}
DAY, WEEK = 24 * 3600 * 1000, 7 * 24 * 3600 * 1000


def create_request(owner: str | None = None, renewers: list[str] = [], max_life: int = -1) -> Any:  # noqa: B006
    owner_type, _, owner_name = (owner or "").partition(":")
    return CreateDelegationTokenRequest(
        owner_principal_type=owner_type or None,
        owner_principal_name=owner_name or None,
        renewers=[
            CreateDelegationTokenRequest.CreatableRenewers(
                principal_type=r.partition(":")[0], principal_name=r.partition(":")[2]
            )
            for r in renewers
        ],
        max_lifetime_ms=max_life,
    )


def enabled(**config: Any) -> Leader:
    return Leader.started(delegation_token_secret_key=SECRET, **config)


def test_a_token_is_created_with_kafkas_lifetimes_and_hmac() -> None:
    leader = enabled()
    response = send_as(leader, create_request(renewers=["User:bob"]), 3, **SASL)
    assert response.error_code == ErrorCode.NONE
    assert (response.principal_type, response.principal_name) == ("User", "alice")
    assert (response.token_requester_principal_type, response.token_requester_principal_name) == (
        "User",
        "alice",
    )
    assert response.issue_timestamp_ms == START_MS
    assert response.max_timestamp_ms == START_MS + WEEK
    assert response.expiry_timestamp_ms == START_MS + DAY
    # Kafka's Uuid.toString: 22 characters of URL-safe base64.
    assert (
        len(response.token_id) == 22
        and len(base64.urlsafe_b64decode(response.token_id + "==")) == 16
    )
    assert (
        response.hmac
        == hmac.new(SECRET.encode(), response.token_id.encode(), hashlib.sha512).digest()
    )
    assert pending_records(leader) == [
        DelegationTokenRecord(
            owner="User:alice",
            requester="User:alice",
            renewers=["User:bob"],
            issue_timestamp=START_MS,
            max_timestamp=START_MS + WEEK,
            expiration_timestamp=START_MS + DAY,
            token_id=response.token_id,
        )
    ]


def test_a_shorter_requested_lifetime_caps_max_and_expiry() -> None:
    leader = enabled()
    response = send_as(leader, create_request(max_life=1000), 3, **SASL)
    assert (response.max_timestamp_ms, response.expiry_timestamp_ms) == (START_MS + 1000,) * 2


# (name, context, config, Kafka's error): ControllerApis.allowTokenRequests, then
# DelegationTokenControlManager.
NOT_ALLOWED = ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any], ErrorCode]] = [
    (
        "direct on PLAINTEXT",
        {"principal": "User:alice"},
        {"delegation_token_secret_key": SECRET},
        NOT_ALLOWED,
    ),
    (
        "token-authenticated",
        {**SASL, "token_authenticated": True},
        {"delegation_token_secret_key": SECRET},
        NOT_ALLOWED,
    ),
    (
        "anonymous on SSL",
        {"security_protocol": "SSL", "principal": "User:ANONYMOUS"},
        {"delegation_token_secret_key": SECRET},
        NOT_ALLOWED,
    ),
    ("no secret key", SASL, {}, ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED),
    (
        "an empty secret key",
        SASL,
        {"delegation_token_secret_key": ""},
        ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED,
    ),
]


@pytest.mark.parametrize(
    ("context", "config", "error"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS]
)
def test_token_requests_are_refused_as_kafka(
    context: dict[str, Any], config: dict[str, Any], error: ErrorCode
) -> None:
    leader = Leader.started(**config)
    created = send_as(leader, create_request(), 3, **context)
    renewed = send_as(
        leader, RenewDelegationTokenRequest(hmac=b"x", renew_period_ms=1), 2, **context
    )
    expired = send_as(
        leader, ExpireDelegationTokenRequest(hmac=b"x", expiry_time_period_ms=1), 2, **context
    )
    assert (created.error_code, renewed.error_code, expired.error_code) == (error,) * 3
    timestamp = -1 if error == NOT_ALLOWED else 0
    assert (
        created.issue_timestamp_ms,
        renewed.expiry_timestamp_ms,
        expired.expiry_timestamp_ms,
    ) == (timestamp,) * 3
    assert leader.pending == []


def test_a_forwarded_request_may_come_over_plaintext() -> None:
    leader = enabled()
    response = send_as(leader, create_request(), 3, principal="User:alice", envelope=True)
    assert response.error_code == ErrorCode.NONE


def test_renewers_must_be_users() -> None:
    leader = enabled()
    response = send_as(leader, create_request(renewers=["Group:g"]), 3, **SASL)
    assert response.error_code == ErrorCode.INVALID_PRINCIPAL_TYPE
    assert leader.pending == []


def test_a_token_for_another_owner_needs_create_tokens_on_that_user() -> None:
    leader = enabled(authorizer=AuthorizerSettings())
    response = send_as(leader, create_request(owner="User:bob"), 3, **SASL)
    assert response.error_code == ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED
    assert (response.principal_name, response.max_timestamp_ms) == ("bob", -1)
    without_authorizer = enabled()
    assert (
        send_as(without_authorizer, create_request(owner="User:bob"), 3, **SASL).error_code
        == ErrorCode.NONE
    )


def test_below_v3_the_response_carries_no_requester() -> None:
    leader = enabled()
    response = send_as(leader, create_request(), 1, **SASL)
    assert response.error_code == ErrorCode.NONE
    assert response.token_requester_principal_name == ""


def created_token(leader: Leader) -> bytes:
    response = send_as(leader, create_request(renewers=["User:bob"]), 3, **SASL)
    leader.append()
    return bytes(response.hmac)


def test_renewing_moves_the_expiry_within_the_max() -> None:
    leader = enabled()
    mac = created_token(leader)
    leader.now_ms += 1000
    response = send_as(
        leader, RenewDelegationTokenRequest(hmac=mac, renew_period_ms=500), 2, **SASL
    )
    assert (response.error_code, response.expiry_timestamp_ms) == (ErrorCode.NONE, START_MS + 1500)
    [record] = pending_records(leader)
    assert record.expiration_timestamp == START_MS + 1500


RENEW_REFUSALS = [
    ("an unknown hmac", b"nope", "User:alice", 0, ErrorCode.DELEGATION_TOKEN_NOT_FOUND),
    ("a stranger", None, "User:carol", 0, ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH),
    ("an expired token", None, "User:alice", DAY + 1, ErrorCode.DELEGATION_TOKEN_EXPIRED),
]


@pytest.mark.parametrize(
    ("mac", "principal", "later", "error"),
    [c[1:] for c in RENEW_REFUSALS],
    ids=[c[0] for c in RENEW_REFUSALS],
)
def test_renewal_refusals(mac: bytes | None, principal: str, later: int, error: ErrorCode) -> None:
    leader = enabled()
    token = created_token(leader)
    leader.now_ms += later
    request = RenewDelegationTokenRequest(hmac=mac or token, renew_period_ms=-1)
    response = send_as(leader, request, 2, security_protocol="SASL_SSL", principal=principal)
    assert response.error_code == error


def test_a_renewer_may_renew_and_expire() -> None:
    leader = enabled()
    mac = created_token(leader)
    bob = {"security_protocol": "SASL_SSL", "principal": "User:bob"}
    assert (
        send_as(
            leader, RenewDelegationTokenRequest(hmac=mac, renew_period_ms=-1), 2, **bob
        ).error_code
        == 0
    )
    response = send_as(
        leader, ExpireDelegationTokenRequest(hmac=mac, expiry_time_period_ms=10), 2, **bob
    )
    assert (response.error_code, response.expiry_timestamp_ms) == (ErrorCode.NONE, START_MS + 10)


def test_expiring_with_a_negative_period_removes_the_token_even_when_expired() -> None:
    leader = enabled()
    mac = created_token(leader)
    token_id = next(iter(leader.controller.image.delegation_tokens))
    leader.now_ms += 2 * WEEK
    request = ExpireDelegationTokenRequest(hmac=mac, expiry_time_period_ms=-1)
    response = send_as(leader, request, 2, **SASL)
    assert (response.error_code, response.expiry_timestamp_ms) == (ErrorCode.NONE, leader.now_ms)
    assert pending_records(leader) == [RemoveDelegationTokenRecord(token_id=token_id)]
    assert leader.controller.image.delegation_tokens == {}


def test_tokens_need_metadata_version_3_6_iv2() -> None:
    import random

    from kwire.controller import ControllerConfig, QuorumController
    from kwire.controller.operation import RequestContext

    controller = QuorumController(
        node_id=1,
        cluster_id="c",
        config=ControllerConfig(delegation_token_secret_key=SECRET),
        rng=random.Random(1),
    )
    bootstrap = controller.activate(0, 0, metadata_version_level=13)  # 3.6-IV1
    assert bootstrap is not None
    result = controller.handle(
        create_request(),
        RequestContext(api_version=3, **SASL),
        len(bootstrap.records),
        0,
    )
    assert result.response.error_code == ErrorCode.UNSUPPORTED_VERSION  # type: ignore[union-attr]


def test_describe_delegation_token_is_not_handled_by_the_controller() -> None:
    leader = enabled()
    response = send_as(leader, DescribeDelegationTokenRequest(owners=None), 3, **SASL)
    assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR


# -- the sweep of expired tokens ------------------------------------------------------------
# QuorumController.maybeScheduleNextExpiredDelegationTokenSweep schedules it;
# DelegationTokenControlManager.sweepExpiredDelegationTokens decides what it removes.

HOUR = 3600 * 1000
QUIET = {"metadata_max_idle_interval_ms": 0}  # no NoOpRecords among the records below


def removals(leader: Leader) -> list[Any]:
    return [r for r in pending_records(leader) if isinstance(r, RemoveDelegationTokenRecord)]


def token_record(token_id: str, max_timestamp: int, expiration_timestamp: int) -> Any:
    return DelegationTokenRecord(
        owner="User:alice",
        requester="User:alice",
        renewers=[],
        issue_timestamp=START_MS,
        max_timestamp=max_timestamp,
        expiration_timestamp=expiration_timestamp,
        token_id=token_id,
    )


def committed_token(leader: Leader, record: Any) -> None:
    """A token in the committed log (as a broker-less test cannot create expired ones)."""
    offset = leader.next_offset
    leader.controller.replay(record, 0, offset)
    leader.log.append((offset, frame_metadata_record(record.API_KEY, 0, record.encode(0))))


def test_an_expired_token_is_removed_at_the_next_sweep_and_not_before() -> None:
    leader = enabled(**QUIET)
    created_token(leader)  # expires one day (delegation.token.expiry.time.ms) from now
    [token_id] = leader.controller.image.delegation_tokens
    # The first sweep one delegation.token.expiry.check.interval.ms (1 hour) after activation.
    assert leader.controller.next_deadline_ms() == START_MS + HOUR
    for _ in range(24):
        leader.tick(HOUR)
        # Up to and including the sweep at the very expiry time: the token is kept
        # (expired means a timestamp strictly before now).
        assert removals(leader) == []
        leader.append()
    assert leader.now_ms == START_MS + DAY
    assert token_id in leader.controller.image.delegation_tokens
    leader.tick(HOUR)
    assert pending_records(leader) == [RemoveDelegationTokenRecord(token_id=token_id)]
    assert leader.controller.image.delegation_tokens == {}


def test_each_sweep_is_scheduled_one_interval_after_the_previous_one_ran() -> None:
    leader = enabled(delegation_token_expiry_check_interval_ms=5000, **QUIET)
    assert leader.controller.next_deadline_ms() == START_MS + 5000
    leader.tick(7000)  # late: the next one counts from this run, not from its deadline
    assert leader.controller.next_deadline_ms() == START_MS + 12000
    leader.tick(1000)  # not yet due: the schedule stands
    assert leader.controller.next_deadline_ms() == START_MS + 12000


EXPIRY_CASES = [
    # (name, max timestamp, expiration timestamp, removed): sweepExpiredDelegationTokens
    # removes a token whose max or expiry timestamp is before now.
    ("expiry passed", START_MS + WEEK, START_MS + HOUR - 1, True),
    ("max passed", START_MS + HOUR - 1, START_MS + DAY, True),
    ("both exactly now", START_MS + HOUR, START_MS + HOUR, False),
    ("neither passed", START_MS + WEEK, START_MS + DAY, False),
]


@pytest.mark.parametrize(
    ("max_timestamp", "expiration_timestamp", "removed"),
    [c[1:] for c in EXPIRY_CASES],
    ids=[c[0] for c in EXPIRY_CASES],
)
def test_the_sweep_removes_tokens_past_their_max_or_expiry(
    max_timestamp: int, expiration_timestamp: int, removed: bool
) -> None:
    leader = enabled(**QUIET)
    committed_token(leader, token_record("tok", max_timestamp, expiration_timestamp))
    leader.tick(HOUR)
    expected = [RemoveDelegationTokenRecord(token_id="tok")] if removed else []
    assert removals(leader) == expected


def test_expired_tokens_are_removed_in_the_order_of_kafkas_token_cache() -> None:
    # The cache is a ConcurrentHashMap of 16 bins keyed by token id: "a" (hashCode 97) and
    # "q" (113) share bin 1, "b" (98) is in bin 2; a bin keeps insertion order. Created
    # b, q, a, they are iterated q, a, b.
    leader = enabled(**QUIET)
    for token_id in ("b", "q", "a"):
        committed_token(leader, token_record(token_id, START_MS + 1, START_MS + 1))
    leader.tick(HOUR)
    assert removals(leader) == [RemoveDelegationTokenRecord(token_id=t) for t in ("q", "a", "b")]
    # One write, of the removals alone.
    assert pending_records(leader) == removals(leader)
    leader.assert_image_is_the_replay_of_its_log()


def test_without_a_secret_key_no_sweep_is_scheduled_and_nothing_is_removed() -> None:
    leader = Leader.started(**QUIET)  # delegation.token.secret.key unset
    committed_token(leader, token_record("tok", START_MS + 1, START_MS + 1))
    assert leader.controller.next_deadline_ms() > START_MS + WEEK
    for _ in range(3):
        leader.tick(DAY)
        assert pending_records(leader) == []
    assert "tok" in leader.controller.image.delegation_tokens


def test_below_metadata_version_3_6_iv2_no_sweep_is_scheduled() -> None:
    import random

    from kwire.controller import ControllerConfig, QuorumController

    controller = QuorumController(
        node_id=1,
        cluster_id="c",
        config=ControllerConfig(delegation_token_secret_key=SECRET, **QUIET),
        rng=random.Random(1),
    )
    controller.activate(0, 0, metadata_version_level=13)  # 3.6-IV1
    assert controller.next_deadline_ms() == 2**63 - 1


def test_a_controller_that_steps_down_forgets_its_sweep() -> None:
    leader = enabled(**QUIET)
    leader.controller.deactivate()
    assert leader.controller.next_deadline_ms() == 2**63 - 1
