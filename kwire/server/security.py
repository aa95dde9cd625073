"""A listener's SASL exchange that opens a connection (TLS: kwire.server.tls).

SASL (SASL_PLAINTEXT and SASL_SSL) follows Kafka 3.9's SaslServerAuthenticator. Rules:

| phase                 | frame                         | what happens                          |
|-----------------------|-------------------------------|---------------------------------------|
| HANDSHAKE_OR_VERSIONS | ApiVersions                   | answered as usual; valid: HANDSHAKE   |
| HANDSHAKE_OR_VERSIONS | SaslHandshake                 | see below                             |
| HANDSHAKE             | SaslHandshake                 | enabled mechanism: NONE, AUTHENTICATE |
|                       |                               | else UNSUPPORTED_SASL_MECHANISM, fail |
| HANDSHAKE             | ApiVersions again             | close at once, no answer              |
| either handshake one  | any other API                 | fail, no answer                       |
| AUTHENTICATE (v1)     | SaslAuthenticate v0-v2        | token to the mechanism; answer        |
| AUTHENTICATE (v1)     | any other API                 | fail with ILLEGAL_SASL_STATE answer   |
| AUTHENTICATE (v0)     | raw token (no header)         | raw challenge back; errors: fail      |
| COMPLETE              | anything                      | the request handler's, as principal   |

"Fail" is Kafka's authentication failure: the answer (if any) is sent after
connection.failed.authentication.delay.ms, then the connection closes. "Close at once" is
Kafka's other errors (unparseable requests, unsupported SaslAuthenticate versions).
SaslHandshake v0 is followed by raw tokens, v1 by SaslAuthenticate requests. With
connections.max.reauth.ms > 0 a session lasts that long (SaslAuthenticate's
session_lifetime_ms); a client that used SaslAuthenticate v1+ may re-authenticate with a
new SaslHandshake (the same mechanism and principal), else its next request after
expiry closes the connection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from kwire.controller.image import MetadataImage
from kwire.controller.scram import scram_credential
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.error_responses import error_response
from kwire.protocol.errors import ProtocolError, UnsupportedVersionError
from kwire.protocol.framing import decode_request, encode_response, peek_request
from kwire.protocol.messages.api_versions import ApiVersionsRequest
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.sasl_authenticate import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
)
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest, SaslHandshakeResponse
from kwire.server.client_security import MIN_REAUTH_INTERVAL_MS
from kwire.server.dispatch import api_versions_is_valid
from kwire.server.listener_security import SaslSettings
from kwire.server.sasl import (
    PLAIN,
    MechanismServer,
    PlainServer,
    SaslAuthenticationError,
    SaslCredentialsError,
    ScramCredential,
    ScramLookup,
    ScramMechanism,
    ScramServer,
)
from kwire.server.tls import ANONYMOUS

log = logging.getLogger("kwire.server")

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


# -- SASL ----------------------------------------------------------------------------------


def java_hash_set_order(items: Sequence[str]) -> list[str]:
    """The order of ``new ArrayList<>(new HashSet<>(items))`` in Java, which is the order
    Kafka lists the enabled mechanisms in SaslHandshake responses."""
    unique = list(dict.fromkeys(items))
    wanted = max(int(len(unique) / 0.75) + 1, 16)
    capacity = 1 << (wanted - 1).bit_length()

    def bucket(text: str) -> int:
        h = 0
        for unit in text.encode("utf-16-be").hex(" ", 2).split():
            h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(unique, key=bucket)  # stable: insertion order within a bucket


def java_api_name(api_key: int) -> str:
    """ApiKeys' enum name (API_VERSIONS), as Kafka's messages print an API."""
    api = APIS.get(api_key)
    if api is None:
        return str(api_key)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", api.name).upper()


class Phase(Enum):
    HANDSHAKE_OR_VERSIONS = "HANDSHAKE_OR_VERSIONS_REQUEST"
    HANDSHAKE = "HANDSHAKE_REQUEST"
    AUTHENTICATE = "AUTHENTICATE"
    REAUTH_BAD_MECHANISM = "REAUTH_BAD_MECHANISM"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send this frame (a response, or a raw SASL token) and go on reading."""

    frame: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerNormally:
    """Answer the frame as any request (ApiVersions before the handshake)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailAuthentication:
    """Kafka's authentication failure: after the failed-authentication delay, send
    `frame` if there is one, then close."""

    reason: str
    frame: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseNow:
    """Close at once without an answer (Kafka's non-authentication errors)."""

    reason: str


SaslStep = Send | AnswerNormally | FailAuthentication | CloseNow


class SaslServerAuthenticator:
    """One connection's SASL exchange (Kafka's SaslServerAuthenticator), sans I/O.

    `receive(frame, now_ms)` takes each frame (size prefix removed) until `complete`, and
    returns the step for the caller to carry out. `principal` is "User:<name>" once
    complete. Times are milliseconds of a monotonic clock the caller owns.
    """

    def __init__(
        self, settings: SaslSettings, scram_lookup: ScramLookup, *, peer: str = ""
    ) -> None:
        self.settings = settings
        self.scram_lookup = scram_lookup
        self.peer = peer
        self.mechanisms = java_hash_set_order(settings.enabled_mechanisms)
        self.phase = Phase.HANDSHAKE_OR_VERSIONS
        self.first_frame = True
        self.kafka_headers = False  # SaslHandshake v1: tokens inside SaslAuthenticate
        self.server: MechanismServer | None = None
        self.principal = ANONYMOUS
        self.client_supports_reauthentication = False
        self.session_expires_ms: int | None = None
        self.reauth_started_ms: int | None = None
        self.previous: tuple[str, str] | None = None  # (mechanism, principal) on re-auth
        self.bad_mechanism = ""

    @property
    def complete(self) -> bool:
        return self.phase is Phase.COMPLETE

    @property
    def text(self) -> str:
        return "re-authentication" if self.previous is not None else "authentication"

    def session_expired(self, now_ms: int) -> bool:
        """KafkaChannel.serverAuthenticationSessionExpired."""
        return self.session_expires_ms is not None and now_ms > self.session_expires_ms

    def begin_reauthentication(self, now_ms: int) -> bool:
        """Whether a SaslHandshake arriving now starts a re-authentication (KIP-368):
        only for a session that expires, a client that used SaslAuthenticate v1+, and at
        most once a second. If so, the caller passes that frame to `receive`."""
        if not self.complete or self.session_expires_ms is None:
            return False
        if not self.client_supports_reauthentication:
            return False
        started = self.reauth_started_ms
        if started is not None and now_ms - started < MIN_REAUTH_INTERVAL_MS:
            return False
        self.reauth_started_ms = now_ms
        assert self.server is not None
        self.previous = (self.server.mechanism, self.principal)
        self.phase, self.server = Phase.HANDSHAKE, None
        return True

    def receive(self, frame: bytes, now_ms: int) -> SaslStep:
        step = self._receive(frame, now_ms)
        if isinstance(step, FailAuthentication | CloseNow):
            self.phase = Phase.FAILED
        return step

    def _receive(self, frame: bytes, now_ms: int) -> SaslStep:
        first, self.first_frame = self.first_frame, False
        match self.phase:
            case Phase.HANDSHAKE_OR_VERSIONS | Phase.HANDSHAKE:
                return self._handshake_phase(frame, first)
            case Phase.AUTHENTICATE if self.kafka_headers:
                return self._authenticate_request(frame, now_ms)
            case Phase.AUTHENTICATE:
                return self._raw_token(frame, now_ms)
            case Phase.REAUTH_BAD_MECHANISM:
                assert self.previous is not None
                return FailAuthentication(
                    reason=f"SASL mechanism '{self.bad_mechanism}' requested by client is not "
                    f"supported for re-authentication of mechanism '{self.previous[0]}'"
                )
            case _:
                return CloseNow(reason=f"unexpected frame in SASL state {self.phase.value}")

    def _handshake_phase(self, frame: bytes, first: bool) -> SaslStep:
        try:
            preamble = peek_request(frame)
            if preamble.api_key not in APIS:
                raise ProtocolError(f"unknown API key {preamble.api_key}")
        except ProtocolError as exc:
            if first:  # Kafka would take it for a GSSAPI token from a 0.9 client
                return FailAuthentication(
                    reason="Exception handling first SASL packet from client, GSSAPI is not "
                    f"supported by server ({exc})"
                )
            return CloseNow(reason=f"cannot parse a request during SASL handshake: {exc}")
        if preamble.api_key not in (API_VERSIONS, SASL_HANDSHAKE):
            return FailAuthentication(
                reason=f"Unexpected Kafka request of type {java_api_name(preamble.api_key)} "
                "during SASL handshake."
            )
        if preamble.api_key == API_VERSIONS:
            if self.phase is not Phase.HANDSHAKE_OR_VERSIONS:
                return CloseNow(
                    reason="Unexpected ApiVersions request received during SASL "
                    f"authentication state {self.phase.value}"
                )
            try:
                _, body = decode_request(frame)
            except UnsupportedVersionError:
                return AnswerNormally()  # the v0 fallback answer; the phase stays
            except ProtocolError as exc:
                return CloseNow(reason=f"cannot parse ApiVersions: {exc}")
            assert isinstance(body, ApiVersionsRequest)
            if api_versions_is_valid(body, preamble.api_version):
                self.phase = Phase.HANDSHAKE
            return AnswerNormally()
        try:
            header, body = decode_request(frame)
        except ProtocolError as exc:
            return CloseNow(reason=f"cannot parse SaslHandshake: {exc}")
        assert isinstance(body, SaslHandshakeRequest)
        version = header.request_api_version
        if version >= 1:
            self.kafka_headers = True
        mechanism = body.mechanism
        if mechanism not in self.mechanisms:
            response = SaslHandshakeResponse(
                error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms=list(self.mechanisms)
            )
            return FailAuthentication(
                reason=f"Unsupported SASL mechanism {mechanism}",
                frame=encode_response(SASL_HANDSHAKE, version, header.correlation_id, response),
            )
        ok = SaslHandshakeResponse(error_code=ErrorCode.NONE, mechanisms=list(self.mechanisms))
        if self.previous is not None and self.previous[0] != mechanism:
            self.phase, self.bad_mechanism = Phase.REAUTH_BAD_MECHANISM, mechanism
        else:
            self.server = self._mechanism_server(mechanism)
            self.phase = Phase.AUTHENTICATE
        return Send(frame=encode_response(SASL_HANDSHAKE, version, header.correlation_id, ok))

    def _mechanism_server(self, mechanism: str) -> MechanismServer:
        if mechanism == PLAIN:
            return PlainServer(self.settings.plain_users())
        scram = ScramMechanism.by_name(mechanism)
        assert scram is not None, mechanism  # config.py enables no other mechanism
        return ScramServer(scram, self.scram_lookup)

    def _authenticate_request(self, frame: bytes, now_ms: int) -> SaslStep:
        try:
            header, body = decode_request(frame)
        except ProtocolError as exc:  # also SaslAuthenticate at an unsupported version
            return CloseNow(reason=f"cannot parse a request during SASL authentication: {exc}")
        version, correlation = header.request_api_version, header.correlation_id
        api_key = header.request_api_key
        if not isinstance(body, SaslAuthenticateRequest):
            message = (
                f"Unexpected Kafka request of type {java_api_name(api_key)} during SASL "
                "authentication."
            )
            answer = error_response(body, version, ErrorCode.ILLEGAL_SASL_STATE, message)
            return FailAuthentication(
                reason=message, frame=encode_response(api_key, version, correlation, answer)
            )
        self.client_supports_reauthentication |= version > 0
        try:
            token = self._evaluate(body.auth_bytes, now_ms)
        except SaslAuthenticationError as exc:
            failed = SaslAuthenticateResponse(
                error_code=ErrorCode.SASL_AUTHENTICATION_FAILED, error_message=str(exc)
            )
            return FailAuthentication(
                reason=str(exc), frame=encode_response(api_key, version, correlation, failed)
            )
        lifetime = 0
        if self.complete and self.session_expires_ms is not None:
            lifetime = self.settings.connections_max_reauth_ms
        response = SaslAuthenticateResponse(
            error_code=ErrorCode.NONE, auth_bytes=token, session_lifetime_ms=lifetime
        )
        return Send(frame=encode_response(api_key, version, correlation, response))

    def _raw_token(self, frame: bytes, now_ms: int) -> SaslStep:
        try:
            token = self._evaluate(frame, now_ms)
        except SaslAuthenticationError as exc:
            return FailAuthentication(reason=str(exc))
        return Send(frame=token)

    def _evaluate(self, token: bytes, now_ms: int) -> bytes:
        """The mechanism's challenge; completes the session when the mechanism does.
        Raises SaslAuthenticationError with the message Kafka sends the client."""
        server = self.server
        assert server is not None
        try:
            challenge = server.evaluate(token)
        except SaslCredentialsError as exc:
            log.info("%s with %s failed: %s", self.text.capitalize(), self.peer, exc)
            raise SaslAuthenticationError(
                f"Authentication failed during {self.text} due to invalid credentials with "
                f"SASL mechanism {server.mechanism}"
            ) from None
        if server.complete:
            principal = f"User:{server.authorization_id}"
            if self.previous is not None and self.previous[1] != principal:
                old, new = self.previous[1].split(":", 1), principal.split(":", 1)
                raise SaslAuthenticationError(
                    "Cannot change principals during re-authentication from "
                    f"{old[0]}.{old[1]}: {new[0]}.{new[1]}"
                )
            self.principal, self.phase, self.previous = principal, Phase.COMPLETE, None
            reauth_ms = self.settings.connections_max_reauth_ms
            self.session_expires_ms = now_ms + reauth_ms if reauth_ms > 0 else None
        return challenge


def credentials_from(current_image: Callable[[], MetadataImage]) -> ScramLookup:
    """A SCRAM lookup over the metadata image's credentials, read afresh at each login, as
    Kafka's credential cache follows the image."""

    def lookup(user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        return scram_credential(current_image(), user, mechanism.mechanism_name)

    return lookup
