"""A new connection of a raft channel (kwire.server.peer_channel), made ready as Kafka's
NetworkClient makes it: TLS (kwire.server.client_security) before anything, ApiVersions
(discoverBrokerVersions: v4, or the highest version the voter names if it refuses v4,
KIP-511), then SASL with the controller listener's mechanism, renewed in-band before a
request once the session nears its end (KIP-368), no sooner than a second after the last
renewal (KafkaChannel). Also the channel's wire helpers and the events it delivers.

How a voter that will not talk to this node is told apart from a dead one (fast failover
treats a lost connection to the leader as its death):
- it refuses TLS or SASL, closes the connection before answering ApiVersions, or answers
  what is not Kafka's: AUTHENTICATION_FAILED, logged as an ERROR once per run of refusals
  and reason (a configuration to fix), never a lost leader;
- it accepts the connection and stays silent past controller.quorum.request.timeout.ms:
  TIMEOUT, logged as a WARNING once per run (a hung process is found by the fetch timeout).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from kwire.protocol._codec import Message
from kwire.protocol.errors import EncodeError, ProtocolError
from kwire.protocol.framing import FrameBuffer, decode_response, encode_request, size_prefixed
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.raft.state import SendFailure, Voter
from kwire.server.client_security import (
    MIN_REAUTH_INTERVAL_MS,
    ClientAuthenticationError,
    ClientSecurity,
    authenticate,
    reauthentication_due_ms,
    tls_failure,
)

log = logging.getLogger("kwire.peers")

API_VERSIONS_KEY = 18
API_VERSIONS_VERSION = 4  # what Kafka 3.9's and 4.3's clients send first
SOFTWARE_NAME = "kwire"
SOFTWARE_VERSION = "0.1.0"
# A listener starts at most one re-authentication a second per connection (KafkaChannel's
# MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS); renewals are spaced that much, with a margin for
# the time the last one took to reach it.
RENEWAL_INTERVAL_S = MIN_REAUTH_INTERVAL_MS / 1000 + 0.02
RECEIVE_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A peer answered a request this node sent it."""

    destination: int
    request: Message
    response: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class SendFailed:
    """A request to a peer got no answer, for `failure`'s reason."""

    destination: int
    request: Message
    failure: SendFailure


PeerEvent = ResponseReceived | SendFailed


class ConnectionGone(Exception):
    """The connection broke; what was in flight has been reported."""


@dataclass(slots=True)
class Queued:
    request: Message
    deadline: float  # trio time by which an answer is due (inf until stamped)


def choose_version(api_key: int, theirs: tuple[int, int] | None) -> int | None:
    """The highest version of `api_key` both sides support, or None if none is shared."""
    ours = APIS[api_key]
    if theirs is None:
        return None
    low, high = max(ours.lowest_version, theirs[0]), min(ours.highest_version, theirs[1])
    return high if low <= high else None


class PeerConnection:
    """What a channel does on one connection besides its requests: make it ready
    (`_learn_versions`, `_authenticate`), renew its session, say why a voter will not
    talk (`_refused`, `_silent`), and frame, send and report. `PeerChannel` sets the
    attributes below."""

    voter: Voter
    security: ClientSecurity
    client_id: str
    request_timeout_s: float
    deliver: trio.MemorySendChannel[PeerEvent]
    queue: deque[Queued]
    versions: dict[int, tuple[int, int]]
    _correlation_id: int
    _current: Queued | None
    _reauthenticate_at_ms: float
    _renewal_began: float | None
    _auth_failing: bool
    _refusal: str
    _silence_logged: bool

    async def _refused(self, reason: str) -> None:
        """TLS or SASL refused this node: logged (once per run of refusals for one
        reason: a new reason is logged too), and what waits is reported
        AUTHENTICATION_FAILED."""
        text = "Authentication to voter %d at %s:%d failed: %s"
        kind = re.sub(r"\d+", "#", reason)  # the same refusal, whatever numbers it carries
        level = logging.DEBUG if self._auth_failing and kind == self._refusal else logging.ERROR
        log.log(level, text, self.voter.node_id, self.voter.host, self.voter.port, reason)
        self._auth_failing, self._refusal = True, kind
        await self._fail_queued(self.queue, SendFailure.AUTHENTICATION_FAILED)

    async def _silent(self, what: str) -> None:
        """The voter accepted the connection but did not `what` within the request
        timeout: up but hung, or not a Kafka listener. Logged once per run (until a
        connection is ready), and what waits is reported TIMEOUT: a silent leader is
        found out by the fetch timeout, not by fast failover."""
        if not self._silence_logged:
            log.warning(
                "Voter %d at %s:%d accepted the connection but did not %s within %d ms",
                self.voter.node_id,
                self.voter.host,
                self.voter.port,
                what,
                self.request_timeout_s * 1000,
            )
            self._silence_logged = True
        await self._fail_queued(self.queue, SendFailure.TIMEOUT)

    async def _fail_queued(self, items: Iterable[Queued], failure: SendFailure) -> None:
        failed = list(items)
        self.queue.clear()
        for item in failed:
            await self._report_failure(item.request, failure)

    async def _report_failure(self, request: Message, failure: SendFailure) -> None:
        if self._current is not None and self._current.request is request:
            self._current = None
        await self.deliver.send(
            SendFailed(destination=self.voter.node_id, request=request, failure=failure)
        )

    def _encode(self, request: Message, version: int) -> bytes | None:
        self._correlation_id = (self._correlation_id + 1) & 0x7FFFFFFF
        header = RequestHeader(
            request_api_key=request.API_KEY,  # type: ignore[attr-defined]
            request_api_version=version,
            correlation_id=self._correlation_id,
            client_id=self.client_id,
        )
        try:
            return encode_request(header, request)
        except EncodeError as exc:
            log.debug("%s cannot be coded at v%d: %s", type(request).__name__, version, exc)
            return None

    async def _receive_frame(self, stream: trio.abc.Stream, frames: FrameBuffer) -> bytes | None:
        """The next whole frame; None when the peer closed the connection."""
        while (frame := frames.next_frame()) is None:
            data = await stream.receive_some(RECEIVE_CHUNK)
            if not data:
                return None
            frames.feed(bytes(data))
        return frame

    async def _renew_session(self, stream: trio.abc.Stream, frames: FrameBuffer) -> None:
        """Re-authenticate in-band (KIP-368), no sooner than a second after the last
        renewal began: a listener refuses more than one a second (KafkaChannel), which a
        session of about a second (connections.max.reauth.ms=1000) would otherwise ask
        for every other time. The request waiting meanwhile is held (at most that second)."""
        if self._renewal_began is not None:
            await trio.sleep_until(self._renewal_began + RENEWAL_INTERVAL_S)
        self._renewal_began = trio.current_time()
        await self._authenticate(stream, frames)

    async def _authenticate(self, stream: trio.abc.Stream, frames: FrameBuffer) -> None:
        """The SASL exchange (again, for a session that nears its end); a refusal is
        reported AUTHENTICATION_FAILED, a broken connection CONNECTION_LOST."""

        async def exchange(request: Message, version: int) -> Message:
            payload = self._encode(request, version)
            assert payload is not None
            correlation_id = self._correlation_id
            await stream.send_all(size_prefixed(payload))
            frame = await self._receive_frame(stream, frames)
            if frame is None:
                raise trio.BrokenResourceError("the voter closed the connection")
            header, response = decode_response(frame, request.API_KEY, version)  # type: ignore[attr-defined]
            if header.correlation_id != correlation_id:
                raise ProtocolError(f"correlation id {header.correlation_id}")
            return response

        try:
            with trio.fail_after(self.request_timeout_s):
                lifetime_ms = await authenticate(exchange, self.security)
        except ClientAuthenticationError as exc:
            await self._refused(str(exc))
            raise ConnectionGone from None
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError) as exc:
            log.info("SASL with voter %d broke off: %s", self.voter.node_id, exc)
            await self._fail_queued(self.queue, SendFailure.CONNECTION_LOST)
            raise ConnectionGone from None
        now_ms = trio.current_time() * 1000
        self._reauthenticate_at_ms = reauthentication_due_ms(now_ms, lifetime_ms)

    def _closed_before_answering(self, error: BaseException | None = None) -> str:
        """Why a voter that accepted the connection closed it before answering ApiVersions:
        its TLS alert (TLS 1.3 refuses a client certificate only now), else most likely a
        listener on another security protocol (TLS taking ApiVersions for a handshake)."""
        if error is not None and "ALERT" in (getattr(error.__cause__, "reason", None) or ""):
            return f"TLS handshake failed: the voter refused: {tls_failure(error)}"
        mine = self.security.protocol
        guess = "use TLS" if self.security.ssl_context is None else "use another security protocol"
        return (
            "the voter closed the connection before answering ApiVersions: does its "
            f"controller listener {guess}? This node's controller listener is {mine} (a TCP "
            "proxy in front of a stopped voter does this too)"
        )

    async def _learn_versions(self, stream: trio.abc.Stream, frames: FrameBuffer) -> None:
        """ApiVersions first, as Kafka's NetworkClient does (discoverBrokerVersions): at v4,
        or again at the highest version the peer names if it refuses v4 (KIP-511). A voter
        that closes the connection or answers what is not Kafka's is up but will not talk
        to this node: reported AUTHENTICATION_FAILED (never a lost leader), logged once."""
        version = API_VERSIONS_VERSION
        for _ in range(2):
            request = ApiVersionsRequest(
                client_software_name=SOFTWARE_NAME, client_software_version=SOFTWARE_VERSION
            )
            payload = self._encode(request, version)
            assert payload is not None
            item = Queued(request, trio.current_time() + self.request_timeout_s)
            refusal = ""  # why the voter, up (it accepted), will not talk to this node
            try:
                with trio.fail_at(item.deadline):
                    await stream.send_all(size_prefixed(payload))
                    frame = await self._receive_frame(stream, frames)
                if frame is None:
                    refusal = self._closed_before_answering()
            except trio.TooSlowError:
                await self._silent("answer ApiVersions")
                raise ConnectionGone from None
            except (OSError, trio.BrokenResourceError) as exc:
                frame, refusal = None, self._closed_before_answering(exc)
            except ProtocolError as exc:
                frame, refusal = None, f"the voter's answer to ApiVersions is not Kafka's: {exc}"
            if refusal:
                await self._refused(refusal)
                raise ConnectionGone
            answer: ApiVersionsResponse | None = None
            if frame is not None:
                try:
                    _, decoded = decode_response(frame, API_VERSIONS_KEY, version)
                    answer = decoded  # type: ignore[assignment]
                except ProtocolError:
                    if version > 0:
                        try:  # an UNSUPPORTED_VERSION answer comes at v0
                            _, decoded = decode_response(frame, API_VERSIONS_KEY, 0)
                            answer = decoded  # type: ignore[assignment]
                        except ProtocolError:
                            answer = None
            if answer is None:
                await self._fail_queued(self.queue, SendFailure.CONNECTION_LOST)
                raise ConnectionGone
            self.versions = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}
            if answer.error_code == 0:
                return
            retry = choose_version(API_VERSIONS_KEY, self.versions.get(API_VERSIONS_KEY))
            if retry is None or retry == version:
                break
            version = retry
        log.warning("Voter %d refused ApiVersions", self.voter.node_id)
        await self._fail_queued(self.queue, SendFailure.CONNECTION_LOST)
        raise ConnectionGone
