"""AlterUserScramCredentials and DescribeUserScramCredentials on the controller, as Kafka
3.9's ScramControlManager and ControllerApis answer them."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from test_controller_acls import pending_records
from test_controller_authorizer import send_as
from test_controller_integrity import Leader

from kwire.controller.scram import scram_credential
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsRequest
from kwire.protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsRequest,
)
from kwire.protocol.messages.metadata_records.remove_user_scram_credential_record import (
    RemoveUserScramCredentialRecord,
)
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)

Upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion
Deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion
SHA256, SHA512 = 1, 2
SALTED = bytes(range(32))
DUPLICATE = "A user credential cannot be altered twice in the same request"


def upsert(name: str = "alice", mechanism: int = SHA256, iterations: int = 4096) -> Upsertion:
    return Upsertion(
        name=name, mechanism=mechanism, iterations=iterations, salt=b"salt", salted_password=SALTED
    )


def alter(leader: Leader, deletions: list[Deletion] = [], upsertions: list[Upsertion] = []) -> Any:  # noqa: B006
    request = AlterUserScramCredentialsRequest(deletions=deletions, upsertions=upsertions)
    return send_as(leader, request, 0)


def results(response: Any) -> list[tuple[str, int, str | None]]:
    return [(r.user, r.error_code, r.error_message) for r in response.results]


UPSERT_CASES = [
    # (name, upsertion, Kafka's (code, message)): ScramControlManager.validateUpsertion
    ("the least iterations", upsert(iterations=4096), (ErrorCode.NONE, None)),
    ("the most iterations", upsert(iterations=16384), (ErrorCode.NONE, None)),
    (
        "too few iterations",
        upsert(iterations=4095),
        (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
    ),
    (
        "too many iterations",
        upsert(iterations=16385),
        (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
    ),
    (
        "an empty name",
        upsert(name=""),
        (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
    ),
    (
        "mechanism 0",
        upsert(mechanism=0),
        (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
    ),
    (
        "mechanism 3",
        upsert(mechanism=3),
        (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
    ),
    (
        "an empty salted password",
        Upsertion(name="alice", mechanism=SHA256, iterations=4096, salt=b"", salted_password=b""),
        (ErrorCode.UNKNOWN_SERVER_ERROR, None),
    ),
]


@pytest.mark.parametrize(
    ("upsertion", "expected"), [c[1:] for c in UPSERT_CASES], ids=[c[0] for c in UPSERT_CASES]
)
def test_an_upsertion_is_judged_as_kafka(
    upsertion: Upsertion, expected: tuple[int, str | None]
) -> None:
    leader = Leader.started()
    response = alter(leader, upsertions=[upsertion])
    assert results(response) == [(upsertion.name, *expected)]
    assert len(leader.pending) == (1 if expected[0] == ErrorCode.NONE else 0)


def test_an_upsertion_writes_rfc5802_stored_and_server_keys() -> None:
    leader = Leader.started()
    alter(leader, upsertions=[upsert(mechanism=SHA512, iterations=8192)])
    [record] = pending_records(leader)
    client_key = hmac.new(SALTED, b"Client Key", hashlib.sha512).digest()
    assert record == UserScramCredentialRecord(
        name="alice",
        mechanism=SHA512,
        salt=b"salt",
        stored_key=hashlib.sha512(client_key).digest(),
        server_key=hmac.new(SALTED, b"Server Key", hashlib.sha512).digest(),
        iterations=8192,
    )
    found = scram_credential(leader.controller.image, "alice", "SCRAM-SHA-512")
    assert found is not None and (found.salt, found.iterations) == (b"salt", 8192)
    assert scram_credential(leader.controller.image, "alice", "SCRAM-SHA-256") is None
    assert scram_credential(leader.controller.image, "alice", "PLAIN") is None


def test_deleting_a_credential_that_does_not_exist_is_resource_not_found() -> None:
    leader = Leader.started()
    response = alter(leader, deletions=[Deletion(name="alice", mechanism=SHA256)])
    assert results(response) == [
        (
            "alice",
            ErrorCode.RESOURCE_NOT_FOUND,
            "Attempt to delete a user credential that does not exist",
        )
    ]


def test_deleting_an_existing_credential_writes_its_removal() -> None:
    leader = Leader.started()
    alter(leader, upsertions=[upsert()])
    leader.append()
    response = alter(leader, deletions=[Deletion(name="alice", mechanism=SHA256)])
    assert results(response) == [("alice", ErrorCode.NONE, None)]
    assert pending_records(leader) == [
        RemoveUserScramCredentialRecord(name="alice", mechanism=SHA256)
    ]
    assert leader.controller.image.scram_credentials == {}


def test_a_user_altered_twice_fails_with_duplicate_resource_for_both() -> None:
    leader = Leader.started()
    response = alter(leader, upsertions=[upsert(), upsert(mechanism=SHA512), upsert("bob")])
    assert results(response) == [
        ("bob", ErrorCode.NONE, None),
        ("alice", ErrorCode.DUPLICATE_RESOURCE, DUPLICATE),
    ]
    assert [r.name for r in pending_records(leader)] == ["bob"]


def test_results_and_records_follow_kafkas_hash_map_order() -> None:
    # java.util.HashMap keySet of these six names, as Java 17 iterates it.
    leader = Leader.started()
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    response = alter(leader, upsertions=[upsert(n) for n in names])
    java_order = ["frank", "carol", "dave", "bob", "alice", "erin"]
    assert [r.user for r in response.results] == java_order
    assert [r.name for r in pending_records(leader)] == java_order


def test_below_metadata_version_3_5_iv2_scram_is_unsupported() -> None:
    from kwire.controller import ControllerConfig, QuorumController
    from kwire.controller.operation import RequestContext

    controller = QuorumController(
        node_id=1, cluster_id="c", config=ControllerConfig(), rng=__import__("random").Random(1)
    )
    bootstrap = controller.activate(0, 0, metadata_version_level=10)  # 3.5-IV1
    assert bootstrap is not None
    result = controller.handle(
        AlterUserScramCredentialsRequest(upsertions=[upsert()]),
        RequestContext(api_version=0),
        len(bootstrap.records),
        0,
    )
    assert [(r.error_code, r.error_message) for r in result.response.results] == [  # type: ignore[union-attr]
        (ErrorCode.UNSUPPORTED_VERSION, "The current metadata.version does not support SCRAM")
    ]


def test_describe_user_scram_credentials_is_not_handled_by_the_controller() -> None:
    # Listed for the controller listener but missing from ControllerApis.handle:
    # "Unsupported ApiKey" -> UNKNOWN_SERVER_ERROR without message.
    leader = Leader.started()
    response = send_as(leader, DescribeUserScramCredentialsRequest(users=None), 0)
    assert (response.error_code, response.error_message) == (ErrorCode.UNKNOWN_SERVER_ERROR, None)
