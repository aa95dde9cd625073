"""One outbound connection (Kafka's NetworkClient towards one node, as RaftManager builds
it: client id ``raft-client-<node.id>``, at most one request in flight, reconnect backoff
50 ms doubling up to 500 ms, ApiVersions first on every new connection). `Peers`
(kwire.server.peers) decides which channels exist; this module is what one of them does,
with kwire.server.peer_setup (a new connection's TLS, ApiVersions and SASL).
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
  this node's TLS or SASL; after a connection that answered requests was lost, it goes at
  once: a leader killed while this follower's Fetch was between two connections is then
  known dead (CONNECTION_REFUSED) within milliseconds, not after 50 to 100 ms (Kafka waits
  reconnect.backoff.ms there too; a lost working connection is what fast failover acts on).
  A peer that closes each connection before answering a request keeps the 50 ms floor.
- Buffers are bounded: at most `MAX_QUEUED` requests wait per channel (the core never has
  two of one kind in flight to a destination, so it needs at most one per API); one more
  is failed at once with TIMEOUT. A response frame is bounded by `socket.request.max.bytes`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque

import trio

from kwire.protocol._codec import Message
from kwire.protocol.errors import ProtocolError
from kwire.protocol.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameBuffer,
    decode_response,
    size_prefixed,
)
from kwire.raft.state import SendFailure, Voter
from kwire.server.client_security import (
    PLAINTEXT,
    ClientAuthenticationError,
    ClientSecurity,
    secure_stream,
)
from kwire.server.peer_setup import (
    ConnectionGone,
    PeerConnection,
    PeerEvent,
    Queued,
    ResponseReceived,
    SendFailed,
    choose_version,
)

__all__ = [
    "MAX_QUEUED",
    "PeerChannel",
    "PeerEvent",
    "ResponseReceived",
    "SendFailed",
    "choose_version",
    "raft_client_id",
]

log = logging.getLogger("kwire.peers")

RECONNECT_BACKOFF_MS = 50  # RaftManager's reconnect.backoff.ms
RECONNECT_BACKOFF_MAX_MS = 500  # and its maximum
MAX_QUEUED = 16


def raft_client_id(node_id: int) -> str:
    """The client id of Kafka's raft client (RaftManager.buildNetworkClient)."""
    return f"raft-client-{node_id}"


class PeerChannel(PeerConnection):
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
        self.queue: deque[Queued] = deque()
        self.versions: dict[int, tuple[int, int]] = {}
        self.connected = False
        self.connects = 0  # connections made (for tests and statistics)
        self._wanted = trio.Event()
        self._correlation_id = 0
        self._backoff_ms = RECONNECT_BACKOFF_MS
        self._stream: trio.abc.Stream | None = None
        self._current: Queued | None = None  # the request on the wire
        self._scope = trio.CancelScope()  # cancelled by `close`, even before `run` starts
        self._reauthenticate_at_ms = math.inf  # when the SASL session must be renewed
        self._renewal_began: float | None = None  # trio time the last renewal began
        self._auth_failing = False  # the last attempt was refused (logged once per run)
        self._refusal = ""  # the reason last logged, its numbers masked
        self._silence_logged = False  # a silent voter was logged (once per run)
        self._lost_working = False  # the last connection answered requests, then was lost
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
        self.queue.append(Queued(request, deadline))
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
            except ConnectionGone:
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
            raise ConnectionGone

    async def _back_off(self) -> None:
        """Wait before reconnecting: the backoff (doubling while the voter stays
        unreachable or refuses this node), cut short by a request queued meanwhile once
        RECONNECT_BACKOFF_MS has passed: a voter that was down may be back (a restarted
        process), and the first Vote of an election should not wait out an idle channel's
        backoff. Requests come at most once per raft retry backoff after a failure, which
        bounds the attempts. After a connection that answered requests was lost, a request
        queued goes at once (no 50 ms floor: the module docstring). A voter that refused this
        node is waited for in full (Kafka's ClusterConnectionStates): it is up, and retrying
        sooner only repeats the refusal."""
        began = trio.current_time()
        floor_s = 0.0 if self._lost_working else RECONNECT_BACKOFF_MS / 1000
        self._lost_working = False
        with trio.move_on_after(self._backoff_ms / 1000):
            if self._auth_failing:
                await trio.sleep_forever()
            await self._wait_for_work()
            await trio.sleep_until(began + floor_s)
        self._backoff_ms = min(self._backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS)

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
            self._lost_working = True  # (true once this connection is lost)
            await self.deliver.send(
                ResponseReceived(
                    destination=self.voter.node_id, request=item.request, response=response
                )
            )

    async def _exchange(
        self,
        stream: trio.abc.Stream,
        frames: FrameBuffer,
        item: Queued,
        api_key: int,
        version: int,
        payload: bytes,
    ) -> Message:
        """Send one request and read its answer; reports and raises ConnectionGone if
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
            raise ConnectionGone from None
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
        raise ConnectionGone
