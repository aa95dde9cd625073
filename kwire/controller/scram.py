"""AlterUserScramCredentials (51) and DescribeUserScramCredentials (50) on the controller
(KIP-554), as Kafka 3.9's ControllerApis and ScramControlManager answer them, and the
credential lookup the listener's SASL/SCRAM authentication reads.

AlterUserScramCredentials, per user (a user may appear once in the whole request):
- a second alteration of a user (deletion or upsertion): DUPLICATE_RESOURCE, "A user
  credential cannot be altered twice in the same request" (the first one is dropped too);
- below metadata.version 3.5-IV2: UNSUPPORTED_VERSION, "The current metadata.version does
  not support SCRAM";
- an empty name: UNACCEPTABLE_CREDENTIAL, "Username must not be empty"; a mechanism other
  than 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512): UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM
  mechanism";
- a deletion of a credential that does not exist: RESOURCE_NOT_FOUND, "Attempt to delete
  a user credential that does not exist";
- an upsertion with fewer than 4096 iterations: UNACCEPTABLE_CREDENTIAL, "Too few
  iterations"; more than 16384: "Too many iterations" (the salt is not checked);
- an upsertion whose salted password is empty cannot key an HMAC: UNKNOWN_SERVER_ERROR.
Records: RemoveUserScramCredentialRecord per deletion, then UserScramCredentialRecord per
upsertion (storedKey = H(HMAC(saltedPassword, "Client Key")), serverKey =
HMAC(saltedPassword, "Server Key"), RFC 5802), atomically. Results: deletions, then
upsertions, then errors, each group in the order of Kafka's HashMap by user name.

DescribeUserScramCredentials is listed on the controller listener, but ControllerApis has
no handler for it: Kafka answers UNKNOWN_SERVER_ERROR (no message) on the request.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kwire.controller.api_error import OperationFailed
from kwire.controller.image import MetadataImage
from kwire.controller.java_order import JavaHashMap, string_hash
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.metadata_version import MetadataVersion
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
)
from kwire.protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsRequest,
)
from kwire.protocol.messages.metadata_records.remove_user_scram_credential_record import (
    RemoveUserScramCredentialRecord,
)
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

# ScramMechanism type codes (clients.admin.ScramMechanism) and their hash functions.
MECHANISMS: dict[int, str] = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
_DIGESTS = {1: hashlib.sha256, 2: hashlib.sha512}
MIN_ITERATIONS = 4096  # ScramMechanism.minIterations, both mechanisms
MAX_ITERATIONS = 16384  # ScramControlManager.MAX_ITERATIONS
DUPLICATE = "A user credential cannot be altered twice in the same request"

Deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion
Upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion
Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult


@dataclass(frozen=True, slots=True, kw_only=True)
class ScramCredential:
    """What a SCRAM server needs to check a client's proof (RFC 5802 section 3)."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def scram_credential(image: MetadataImage, user: str, mechanism: str) -> ScramCredential | None:
    """The credential of ``user`` for ``mechanism`` (``"SCRAM-SHA-256"`` or
    ``"SCRAM-SHA-512"``, as SaslHandshake names it), or None when there is none (or the
    mechanism is not SCRAM). Pure: reads the image only."""
    for code, name in MECHANISMS.items():
        if name == mechanism:
            record = image.scram_credentials.get((user, code))
            if record is None:
                return None
            return ScramCredential(
                salt=record.salt,
                stored_key=record.stored_key,
                server_key=record.server_key,
                iterations=record.iterations,
            )
    return None


def stored_and_server_keys(mechanism: int, salted_password: bytes) -> tuple[bytes, bytes]:
    """(storedKey, serverKey) of a salted password (Kafka's ScramFormatter). Raises
    ValueError for an empty key, as Java's SecretKeySpec does."""
    if not salted_password:
        raise ValueError("Empty key")
    digest = _DIGESTS[mechanism]
    client_key = hmac.new(salted_password, b"Client Key", digest).digest()
    server_key = hmac.new(salted_password, b"Server Key", digest).digest()
    return digest(client_key).digest(), server_key


def alter_user_scram_credentials(
    ctl: QuorumController,
    request: AlterUserScramCredentialsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    if not request.deletions and not request.upsertions:
        return ControllerResult(records=[], response=AlterUserScramCredentialsResponse())
    supported = ctl.metadata_version >= MetadataVersion.IBP_3_5_IV2
    deletions: JavaHashMap[str, Deletion] = JavaHashMap()
    upsertions: JavaHashMap[str, Upsertion] = JavaHashMap()
    errors: JavaHashMap[str, tuple[ErrorCode, str | None]] = JavaHashMap()

    def fail(name: str, code: ErrorCode, message: str | None) -> None:
        errors.put(name, string_hash(name), (code, message))

    for deletion in request.deletions:
        name = deletion.name
        if name in errors:
            continue
        if deletions.remove(name) is not None:
            fail(name, ErrorCode.DUPLICATE_RESOURCE, DUPLICATE)
        elif not supported:
            fail(
                name,
                ErrorCode.UNSUPPORTED_VERSION,
                "The current metadata.version does not support SCRAM",
            )
        elif (error := _check_name_and_mechanism(name, deletion.mechanism)) is not None:
            fail(name, *error)
        elif (name, deletion.mechanism) not in ctl.image.scram_credentials:
            fail(
                name,
                ErrorCode.RESOURCE_NOT_FOUND,
                "Attempt to delete a user credential that does not exist",
            )
        else:
            deletions.put(name, string_hash(name), deletion)
    for upsertion in request.upsertions:
        name = upsertion.name
        if name in errors:
            continue
        removed_deletion = deletions.remove(name)
        removed_upsertion = upsertions.remove(name) if removed_deletion is None else None
        if removed_deletion is not None or removed_upsertion is not None:
            fail(name, ErrorCode.DUPLICATE_RESOURCE, DUPLICATE)
        elif not supported:
            fail(
                name,
                ErrorCode.UNSUPPORTED_VERSION,
                "The current metadata.version does not support SCRAM",
            )
        elif (error := _check_upsertion(upsertion)) is not None:
            fail(name, *error)
        else:
            upsertions.put(name, string_hash(name), upsertion)

    results: list[Result] = []
    records: list[Message] = []
    for name, deletion in deletions.items():
        results.append(Result(user=name, error_message=None))
        records.append(RemoveUserScramCredentialRecord(name=name, mechanism=deletion.mechanism))
    for name, upsertion in upsertions.items():
        try:
            stored_key, server_key = stored_and_server_keys(
                upsertion.mechanism, upsertion.salted_password
            )
        except ValueError:
            fail(str(name), ErrorCode.UNKNOWN_SERVER_ERROR, None)
            continue
        records.append(
            UserScramCredentialRecord(
                name=upsertion.name,
                mechanism=upsertion.mechanism,
                salt=upsertion.salt,
                stored_key=stored_key,
                server_key=server_key,
                iterations=upsertion.iterations,
            )
        )
        results.append(Result(user=name, error_message=None))
    for name, (code, message) in errors.items():
        results.append(Result(user=name, error_code=code, error_message=message))
    response = AlterUserScramCredentialsResponse(results=results)
    return ctl.apply(Applied(), records, next_offset).result(response)


def _check_name_and_mechanism(name: str, mechanism: int) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in MECHANISMS:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


def _check_upsertion(upsertion: Upsertion) -> tuple[ErrorCode, str] | None:
    error = _check_name_and_mechanism(upsertion.name, upsertion.mechanism)
    if error is not None:
        return error
    if upsertion.iterations < MIN_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    return None


def describe_user_scram_credentials(
    ctl: QuorumController,
    request: DescribeUserScramCredentialsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    # ControllerApis.handle has no case for this API: "Unsupported ApiKey" (an ApiException
    # Errors does not map), answered through getErrorResponse as UNKNOWN_SERVER_ERROR.
    raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)
