"""AlterClientQuotas on the controller, as Kafka 3.9's ClientQuotaControlManager answers."""

from __future__ import annotations

from typing import Any

import pytest
from test_controller_acls import pending_records
from test_controller_authorizer import send_as
from test_controller_integrity import Leader

from kwire.controller.authorizer import AuthorizerSettings
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_client_quotas import AlterClientQuotasRequest
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord

Entry = AlterClientQuotasRequest.EntryData
Entity = AlterClientQuotasRequest.EntityData
OpData = AlterClientQuotasRequest.OpData
INVALID = ErrorCode.INVALID_REQUEST


def entry(entity: dict[str, str | None], **ops: float | None) -> Entry:
    return Entry(
        entity=[Entity(entity_type=t, entity_name=n) for t, n in entity.items()],
        ops=[
            OpData(key=k, value=0.0 if v is None else v, remove=v is None) for k, v in ops.items()
        ],
    )


def alter(leader: Leader, *entries: Entry, validate_only: bool = False, **context: Any) -> Any:
    request = AlterClientQuotasRequest(entries=list(entries), validate_only=validate_only)
    return send_as(leader, request, 1, **context)


def outcome(response: Any) -> list[tuple[int, str | None]]:
    return [(e.error_code, e.error_message) for e in response.entries]


CASES = [
    # (name, entry, Kafka's (code, message)): ClientQuotaControlManager
    (
        "a user's byte rate",
        entry({"user": "alice"}, producer_byte_rate=1024.0),
        (ErrorCode.NONE, None),
    ),
    ("the default user", entry({"user": None}, consumer_byte_rate=1.0), (ErrorCode.NONE, None)),
    (
        "a client's request percentage",
        entry({"client-id": "app"}, request_percentage=12.5),
        (ErrorCode.NONE, None),
    ),
    (
        "an ip's connection rate",
        entry({"ip": "10.0.0.1"}, connection_creation_rate=5.0),
        (ErrorCode.NONE, None),
    ),
    ("an IPv6 address", entry({"ip": "::1"}, connection_creation_rate=5.0), (ErrorCode.NONE, None)),
    ("the default ip", entry({"ip": None}, connection_creation_rate=5.0), (ErrorCode.NONE, None)),
    (
        "no entity",
        entry({}, producer_byte_rate=1.0),
        (INVALID, "Invalid empty client quota entity"),
    ),
    (
        "an unknown entity type",
        entry({"group": "g"}, producer_byte_rate=1.0),
        (INVALID, "Unhandled client quota entity type: group"),
    ),
    (
        "an empty name",
        entry({"user": ""}, producer_byte_rate=1.0),
        (INVALID, "Empty user not supported"),
    ),
    (
        "ip with user",
        entry({"ip": "10.0.0.1", "user": "alice"}, connection_creation_rate=1.0),
        (
            INVALID,
            "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
        ),
    ),
    (
        "a bad ip",
        entry({"ip": "not an ip"}, connection_creation_rate=1.0),
        (INVALID, "not an ip is not a valid IP or resolvable host."),
    ),
    (
        "a key of another entity kind",
        entry({"user": "alice"}, connection_creation_rate=1.0),
        (INVALID, "Invalid configuration key connection_creation_rate"),
    ),
    (
        "an unknown key",
        entry({"user": "alice"}, nonsense=1.0),
        (INVALID, "Invalid configuration key nonsense"),
    ),
    (
        "zero",
        entry({"user": "alice"}, producer_byte_rate=0.0),
        (INVALID, "Quota producer_byte_rate must be greater than 0"),
    ),
    (
        "a negative value",
        entry({"user": "alice"}, request_percentage=-1.0),
        (INVALID, "Quota request_percentage must be greater than 0"),
    ),
    (
        "a fraction for a LONG",
        entry({"user": "alice"}, producer_byte_rate=1.5),
        (INVALID, "producer_byte_rate cannot be a fractional value."),
    ),
    (
        "a fraction for an INT",
        entry({"ip": "10.0.0.1"}, connection_creation_rate=2.5),
        (INVALID, "connection_creation_rate cannot be a fractional value."),
    ),
    (
        "too large for an INT",
        entry({"ip": "10.0.0.1"}, connection_creation_rate=2.0**31),
        (INVALID, "Proposed value for connection_creation_rate is too large for an INT."),
    ),
    (
        "too large for a LONG",
        entry({"user": "a"}, consumer_byte_rate=2.0**64),
        (INVALID, "Proposed value for consumer_byte_rate is too large for a LONG."),
    ),
    (
        "Long.MAX_VALUE as a double",
        entry({"user": "a"}, consumer_byte_rate=2.0**63),
        (ErrorCode.NONE, None),
    ),
    (
        "a fraction for a DOUBLE",
        entry({"user": "a"}, controller_mutation_rate=0.5),
        (ErrorCode.NONE, None),
    ),
]


@pytest.mark.parametrize(("quota", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_entity_is_judged_as_kafka(quota: Entry, expected: tuple[int, str | None]) -> None:
    leader = Leader.started()
    response = alter(leader, quota)
    assert outcome(response) == [expected]
    assert len(leader.pending) == (len(quota.ops) if expected[0] == ErrorCode.NONE else 0)


def test_records_carry_the_entity_and_follow_kafkas_hash_map_orders() -> None:
    # Java 17: HashMap<>(3) of these keys iterates consumer_byte_rate, request_percentage,
    # producer_byte_rate; the entity map iterates client-id, user.
    leader = Leader.started()
    quota = entry(
        {"user": "alice", "client-id": "app"},
        request_percentage=50.0,
        producer_byte_rate=100.0,
        consumer_byte_rate=200.0,
    )
    alter(leader, quota)
    records = pending_records(leader)
    assert [r.key for r in records] == [
        "consumer_byte_rate",
        "request_percentage",
        "producer_byte_rate",
    ]
    assert [(e.entity_type, e.entity_name) for e in records[0].entity] == [
        ("client-id", "app"),
        ("user", "alice"),
    ]
    assert [r.value for r in records] == [200.0, 50.0, 100.0]


def test_an_unchanged_value_writes_nothing_and_a_removal_only_what_is_set() -> None:
    leader = Leader.started()
    alter(leader, entry({"user": "alice"}, producer_byte_rate=100.0))
    leader.append()
    response = alter(
        leader, entry({"user": "alice"}, producer_byte_rate=100.0, consumer_byte_rate=None)
    )
    assert outcome(response) == [(ErrorCode.NONE, None)]
    assert leader.pending == []
    alter(leader, entry({"user": "alice"}, producer_byte_rate=None))
    [record] = pending_records(leader)
    assert (record.key, record.remove) == ("producer_byte_rate", True)
    assert leader.controller.image.client_quotas == {}


def test_an_entity_that_fails_writes_none_of_its_keys() -> None:
    leader = Leader.started()
    response = alter(leader, entry({"user": "alice"}, producer_byte_rate=100.0, nonsense=1.0))
    assert outcome(response)[0][0] == INVALID
    assert leader.pending == []


def test_a_duplicate_entity_or_key_is_ignored_with_kafkas_message() -> None:
    leader = Leader.started()
    first = entry({"user": "alice"}, producer_byte_rate=100.0)
    response = alter(leader, first, entry({"user": "alice"}, consumer_byte_rate=1.0))
    assert outcome(response) == [
        (INVALID, "Ignoring duplicate entity ClientQuotaEntity(entries={user=alice})")
    ]
    assert [r.key for r in pending_records(leader)] == ["producer_byte_rate"]
    twice = Entry(
        entity=[Entity(entity_type="client-id", entity_name="x")],
        ops=[
            OpData(key="request_percentage", value=1.0),
            OpData(key="request_percentage", value=2.0),
        ],
    )
    assert outcome(alter(Leader.started(), twice)) == [
        (INVALID, "Ignoring duplicate entity ClientQuotaEntity(entries={client-id=x})")
    ]


def test_validate_only_answers_and_writes_nothing() -> None:
    leader = Leader.started()
    response = alter(leader, entry({"user": "alice"}, producer_byte_rate=100.0), validate_only=True)
    assert outcome(response) == [(ErrorCode.NONE, None)]
    assert leader.pending == []


def test_more_than_10000_records_fail_the_request_with_policy_violation() -> None:
    leader = Leader.started()
    entries = [entry({"user": f"u{i}"}, producer_byte_rate=1.0) for i in range(10_001)]
    response = alter(leader, *entries)
    # AlterClientQuotasRequest.getErrorResponse: the error's default message.
    assert set(outcome(response)) == {
        (ErrorCode.POLICY_VIOLATION, "Request parameters do not satisfy the configured policy.")
    }
    assert leader.pending == []


def test_altering_quotas_needs_alter_configs_on_the_cluster() -> None:
    leader = Leader.started(authorizer=AuthorizerSettings())
    response = alter(leader, entry({"user": "alice"}, producer_byte_rate=1.0), principal="User:x")
    assert outcome(response)[0][0] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_records_decode_to_what_the_image_holds() -> None:
    leader = Leader.started()
    alter(leader, entry({"ip": None}, connection_creation_rate=7.0))
    assert pending_records(leader) == [
        ClientQuotaRecord(
            entity=[ClientQuotaRecord.EntityData(entity_type="ip", entity_name=None)],
            key="connection_creation_rate",
            value=7.0,
        )
    ]
    assert leader.controller.image.client_quotas == {
        (("ip", None),): {"connection_creation_rate": 7.0}
    }
