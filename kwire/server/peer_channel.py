"""One outbound connection (Kafka's NetworkClient towards one node, as RaftManager builds
it: client id ``raft-client-<node.id>``, at most one request in flight, reconnect backoff
50 ms doubling up to 500 ms, ApiVersions first on every new connection). `Peers`
(kwire.server.peers) decides which channels exist; this module is what one of them does.
The connection is secured as the controller listener is (kwire.server.client_security):
TLS before anything, SASL after ApiVersions, re-authenticated in-band before a request
once the session nears its end (KIP-368).

Rules:
- Sends are fire-and-forget (`PeerChannel.send`); the answer comes back on the driver's
  inbox as `ResponseReceived`, or as `SendFailed` with a `SendFailure`:
  CONNECTION_REFUSED when the connection could not be made; CONNECTION_LOST when it was
  reset or closed with the request in flight, or the channel was closed (`close`);
  TIMEOUT when no answer came within `controller.quorum.request.timeout.ms` of the send
  being asked for (the connection is then closed, as Kafka's NetworkClient closes it), or
  the voter accepted the connection and did not complete TLS or answer ApiVersions within
  it (a hung process or not a Kafka listener: logged once per run, not a lost leader);
  UNSUPPORTED_VERSION when the peer's ApiVersions has no version of the API that can
  carry the request (Vote with PreVote=true needs Vote v2, which Kafka 3.9 lacks);
  AUTHENTICATION_FAILED when TLS or SASL refused this node (logged as an error once per
  run of failures and reason: a configuration to fix; retried after the backoff, as Kafka's
  KafkaNetworkChannel treats it, never taken for a dead leader).
- Every request is sent at the highest version both sides support.
- The connection is kept open (reopened after a backoff, 50 ms doubling to 500 ms, reset
  once a connection is ready: ApiVersions answered and SASL done): the first Vote after a
  leader dies does not wait for a connect and an ApiVersions exchange, and an idle
  connection the peer closed is noticed at once. A request queued while the channel backs
  off cuts the wait to 50 ms (a voter that was down may be back), unless the voter refused
  this node's TLS or SASL.
- Buffers are bounded: at most `MAX_QUEUED` requests wait per channel (the core never has
  two of one kind in flight to a destination, so it needs at most one per API); one more
  is failed at once with TIMEOUT. A response frame is bounded by `socket.request.max.bytes`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from kwire.protocol._codec import Message
from kwire.protocol.errors import EncodeError, ProtocolError
from kwire.protocol.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameBuffer,
    decode_response,
    encode_request,
    size_prefixed,
)
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.raft.state import SendFailure, Voter
from kwire.server.client_security import (
    MIN_REAUTH_INTERVAL_MS,
    PLAINTEXT,
    ClientAuthenticationError,
    ClientSecurity,
    authenticate,
    reauthentication_due_ms,
    secure_stream,
    tls_failure,
)

log = logging.getLogger("kwire.peers")

API_VERSIONS_KEY = 18
API_VERSIONS_VERSION = 4  # what Kafka 3.9's and 4.3's clients send first
SOFTWARE_NAME = "kwire"
SOFTWARE_VERSION = "0.1.0"
RECONNECT_BACKOFF_MS = 50  # RaftManager's reconnect.backoff.ms
RECONNECT_BACKOFF_MAX_MS = 500  # and its maximum
# A listener starts at most one re-authentication a second per connection (KafkaChannel's
# MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS); renewals are spaced that much, with a margin for
# the time the last one took to reach it.
RENEWAL_INTERVAL_S = MIN_REAUTH_INTERVAL_MS / 1000 + 0.02
MAX_QUEUED = 16
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


class _ConnectionGone(Exception):
    """The connection broke; what was in flight has been reported."""


@dataclass(slots=True)
class _Queued:
    request: Message
    deadline: float  # trio time by which an answer is due (inf until stamped)


def raft_client_id(node_id: int) -> str:
    """The client id of Kafka's raft client (RaftManager.buildNetworkClient)."""
    return f"raft-client-{node_id}"


def choose_version(api_key: int, theirs: tuple[int, int] | None) -> int | None:
    """The highest version of `api_key` both sides support, or None if none is shared."""
    ours = APIS[api_key]
    if theirs is None:
        return None
    low, high = max(ours.lowest_version, theirs[0]), min(ours.highest_version, theirs[1])
    return high if low <= high else None


class PeerChannel:
    """Kafka's NetworkClient towards one address (`voter`: the destination id the core
    knows it by, host, port), with one request in flight at a time."""

    def __init__(
        self,
        voter: Voter,
        *,
        client_id: str,
        request_timeout_ms: int,
        deliver: trio.MemorySendChannel[PeerEvent],
        max_response_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.voter = voter
        self.security = security
        self.client_id = client_id
        self.request_timeout_s = request_timeout_ms / 1000
        self.deliver = deliver
        self.max_response_bytes = max_response_bytes
        self.queue: deque[_Queued] = deque()
        self.versions: dict[int, tuple[int, int]] = {}
        self.connected = False
        self.connects = 0  # connections made (for tests and statistics)
        self._wanted = trio.Event()
        self._correlation_id = 0
        self._backoff_ms = RECONNECT_BACKOFF_MS
        self._stream: trio.abc.Stream | None = None
        self._current: _Queued | None = None  # the request on the wire
        self._scope = trio.CancelScope()  # cancelled by `close`, even before `run` starts
        self._reauthenticate_at_ms = math.inf  # when the SASL session must be renewed
        self._renewal_began: float | None = None  # trio time the last renewal began
        self._auth_failing = False  # the last attempt was refused (logged once per run)
        self._refusal = ""  # the reason last logged, its numbers masked
        self._silence_logged = False  # a silent voter was logged (once per run)
        self._running = False
        self.closed = False

    # -- the driver's side ----------------------------------------------------------------

    def send(self, request: Message) -> None:
        """Queue `request`; its answer or failure comes back on the inbox."""
        if len(self.queue) >= MAX_QUEUED:
            log.warning(
                "Dropping %s to voter %d: %d requests already wait",
                type(request).__name__,
                self.voter.node_id,
                len(self.queue),
            )
            self._fail_soon(request, SendFailure.TIMEOUT)
            return
        try:
            deadline = trio.current_time() + self.request_timeout_s
        except RuntimeError:  # a node driven outside Trio: stamped when the task sees it
            deadline = math.inf
        self.queue.append(_Queued(request, deadline))
        self._wanted.set()

    @property
    def busy(self) -> bool:
        """A request waits or is on the wire."""
        return bool(self.queue) or self._current is not None

    def close(self) -> None:
        """Stop the channel for good: `run` returns, and what was queued or in flight is
        reported CONNECTION_LOST."""
        self.closed = True
        self._scope.cancel()
        if not self._running:  # `run` may never come: report what waits now
            for item in self.queue:
                self._fail_soon(item.request, SendFailure.CONNECTION_LOST)
            self.queue.clear()

    def disconnect(self) -> None:
        """Close the connection now (what is in flight is reported CONNECTION_LOST)."""
        stream = self._stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        if stream is not None:
            stream.socket.close()  # type: ignore[attr-defined]

    def _fail_soon(self, request: Message, failure: SendFailure) -> None:
        event = SendFailed(destination=self.voter.node_id, request=request, failure=failure)
        try:
            self.deliver.send_nowait(event)
        except trio.WouldBlock:
            log.error("Inbox full: the failure of a request to %d is lost", self.voter.node_id)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the driver is gone (shutting down): nobody waits for the answer

    # -- the channel's task ---------------------------------------------------------------

    async def run(self) -> None:
        """Keep a connection to the voter (reconnecting with backoff), and send what waits;
        until cancelled or `close`d (then what is pending is reported CONNECTION_LOST)."""
        self._running = True
        try:
            with self._scope:
                await self._run()
        finally:
            self._running = False
            pending = [self._current] if self._current is not None else []
            pending += self.queue
            self._current = None
            self.queue.clear()
            for item in pending:
                self._fail_soon(item.request, SendFailure.CONNECTION_LOST)

    async def _run(self) -> None:
        while True:
            host, port = self.voter.host, self.voter.port
            try:
                with trio.fail_after(self.request_timeout_s):
                    tcp = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError) as exc:
                log.debug("Cannot connect to voter %d: %s", self.voter.node_id, exc)
                await self._fail_queued(self.queue, SendFailure.CONNECTION_REFUSED)
                await self._back_off()
                continue
            try:
                with trio.fail_after(self.request_timeout_s):
                    stream = await secure_stream(tcp, host, port, self.security)
            except trio.TooSlowError:
                await self._silent("complete the TLS handshake")
                await self._back_off()
                continue
            except ClientAuthenticationError as exc:
                await self._refused(str(exc))
                await self._back_off()
                continue
            self.connects += 1
            self._stream, self.connected = stream, True
            try:
                await self._serve(stream, FrameBuffer(self.max_response_bytes))
            except _ConnectionGone:
                pass
            finally:
                self._stream, self.connected, self.versions = None, False, {}
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            await self._back_off()

    async def _wait_for_work(self) -> None:
        while not self.queue:
            self._wanted = trio.Event()
            await self._wanted.wait()

    async def _wait_for_work_or_close(self, stream: trio.abc.Stream) -> None:
        """Wait for a request to send while watching the idle connection: a peer that
        closes it (its process died or restarted) is noticed now, not by the next request,
        which would otherwise be reported CONNECTION_LOST for a connection long dead."""
        if self.queue:
            return
        closed = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal closed
                with contextlib.suppress(
                    OSError, trio.BrokenResourceError, trio.ClosedResourceError
                ):
                    await stream.receive_some(1)  # a peer sends nothing unasked: EOF or junk
                closed = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await self._wait_for_work()
            nursery.cancel_scope.cancel()
        if closed:
            log.debug("Voter %d closed the idle connection", self.voter.node_id)
            raise _ConnectionGone

    async def _back_off(self) -> None:
        """Wait before reconnecting: the backoff (doubling while the voter stays
        unreachable or refuses this node), cut short by a request queued meanwhile once
        RECONNECT_BACKOFF_MS has passed: a voter that was down may be back (a restarted
        process), and the first Vote of an election should not wait out an idle channel's
        backoff. Requests come at most once per raft retry backoff after a failure, which
        bounds the attempts. A voter that refused this node is waited for in full (Kafka's
        ClusterConnectionStates): it is up, and retrying sooner only repeats the refusal."""
        began = trio.current_time()
        with trio.move_on_after(self._backoff_ms / 1000):
            if self._auth_failing:
                await trio.sleep_forever()
            await self._wait_for_work()
            await trio.sleep_until(began + RECONNECT_BACKOFF_MS / 1000)
        self._backoff_ms = min(self._backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS)

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

    async def _fail_queued(self, items: Iterable[_Queued], failure: SendFailure) -> None:
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

    async def _serve(self, stream: trio.abc.Stream, frames: FrameBuffer) -> None:
        """ApiVersions (then SASL), then the queued requests one at a time, until the
        connection breaks."""
        await self._learn_versions(stream, frames)
        self._renewal_began = None
        if self.security.uses_sasl:
            await self._authenticate(stream, frames)
        self._backoff_ms = RECONNECT_BACKOFF_MS  # ready: Kafka resets the backoff only here
        self._silence_logged = False
        if self._auth_failing:
            log.info("Authenticated to voter %d again", self.voter.node_id)
            self._auth_failing = False
        while True:
            await self._wait_for_work_or_close(stream)
            if trio.current_time() * 1000 >= self._reauthenticate_at_ms:
                await self._renew_session(stream, frames)
            item = self.queue.popleft()
            if item.deadline == math.inf:
                item.deadline = trio.current_time() + self.request_timeout_s
            if trio.current_time() >= item.deadline:
                await self._report_failure(item.request, SendFailure.TIMEOUT)
                continue
            api_key: int = item.request.API_KEY  # type: ignore[attr-defined]
            version = choose_version(api_key, self.versions.get(api_key))
            payload = None if version is None else self._encode(item.request, version)
            if version is None or payload is None:
                log.info(
                    "Voter %d cannot take %s (its versions: %s)",
                    self.voter.node_id,
                    type(item.request).__name__,
                    self.versions.get(api_key),
                )
                await self._report_failure(item.request, SendFailure.UNSUPPORTED_VERSION)
                continue
            self._current = item
            response = await self._exchange(stream, frames, item, api_key, version, payload)
            self._current = None
            await self.deliver.send(
                ResponseReceived(
                    destination=self.voter.node_id, request=item.request, response=response
                )
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

    async def _exchange(
        self,
        stream: trio.abc.Stream,
        frames: FrameBuffer,
        item: _Queued,
        api_key: int,
        version: int,
        payload: bytes,
    ) -> Message:
        """Send one request and read its answer; reports and raises _ConnectionGone if
        the connection breaks or the answer is late."""
        correlation_id = self._correlation_id
        try:
            with trio.fail_at(item.deadline):
                await stream.send_all(size_prefixed(payload))
                frame = await self._receive_frame(stream, frames)
        except trio.TooSlowError:
            log.info(
                "No answer from voter %d to %s within %d ms; closing the connection",
                self.voter.node_id,
                type(item.request).__name__,
                self.request_timeout_s * 1000,
            )
            await self._report_failure(item.request, SendFailure.TIMEOUT)
            raise _ConnectionGone from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
            frame = None
        if frame is not None:
            try:
                header, response = decode_response(frame, api_key, version)
                if header.correlation_id == correlation_id:
                    return response
                log.warning(
                    "Voter %d answered correlation id %d", self.voter.node_id, header.correlation_id
                )
            except ProtocolError as exc:
                log.warning("Undecodable answer from voter %d: %s", self.voter.node_id, exc)
        await self._report_failure(item.request, SendFailure.CONNECTION_LOST)
        raise _ConnectionGone

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
            raise _ConnectionGone from None
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError) as exc:
            log.info("SASL with voter %d broke off: %s", self.voter.node_id, exc)
            await self._fail_queued(self.queue, SendFailure.CONNECTION_LOST)
            raise _ConnectionGone from None
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
            f"controller listener {guess}? This node's controller listener is {mine}"
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
            item = _Queued(request, trio.current_time() + self.request_timeout_s)
            refusal = ""  # why the voter, up (it accepted), will not talk to this node
            try:
                with trio.fail_at(item.deadline):
                    await stream.send_all(size_prefixed(payload))
                    frame = await self._receive_frame(stream, frames)
                if frame is None:
                    refusal = self._closed_before_answering()
            except trio.TooSlowError:
                await self._silent("answer ApiVersions")
                raise _ConnectionGone from None
            except (OSError, trio.BrokenResourceError) as exc:
                frame, refusal = None, self._closed_before_answering(exc)
            except ProtocolError as exc:
                frame, refusal = None, f"the voter's answer to ApiVersions is not Kafka's: {exc}"
            if refusal:
                await self._refused(refusal)
                raise _ConnectionGone
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
                raise _ConnectionGone
            self.versions = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}
            if answer.error_code == 0:
                return
            retry = choose_version(API_VERSIONS_KEY, self.versions.get(API_VERSIONS_KEY))
            if retry is None or retry == version:
                break
            version = retry
        log.warning("Voter %d refused ApiVersions", self.voter.node_id)
        await self._fail_queued(self.queue, SendFailure.CONNECTION_LOST)
        raise _ConnectionGone
