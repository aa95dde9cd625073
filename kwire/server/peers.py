"""Outbound connections: what the raft core asks to send, and what came back.

Kafka's raft client talks to its peers through one NetworkClient (RaftManager, client id
``raft-client-<node.id>``, at most one request in flight per connection, reconnect backoff
50 ms doubling up to 500 ms, ApiVersions first on every new connection, idle connections
closed after ``connections.max.idle.ms``). `PeerChannel` is that for one address; `Peers`
holds one channel per (destination, address) and follows the voter set as it changes.

Rules:
- Sends are fire-and-forget (`PeerChannel.send`); the answer comes back on the driver's
  inbox as `ResponseReceived`, or as `SendFailed` with a `SendFailure`:
  CONNECTION_REFUSED when the connection could not be made; CONNECTION_LOST when it was
  reset or closed with the request in flight; TIMEOUT when no answer came within
  `controller.quorum.request.timeout.ms` of the send being asked for (the connection is
  then closed, as Kafka's NetworkClient closes it); UNSUPPORTED_VERSION when the peer's
  ApiVersions has no version of the API that can carry the request (Vote with
  PreVote=true needs Vote v2, which Kafka 3.9 lacks).
- Every request is sent at the highest version both sides support.
- One connection per voter is kept open (reopened after a backoff, 50 ms doubling to
  500 ms): the first Vote after a leader dies does not wait for a connect and an
  ApiVersions exchange, and an idle connection the peer closed is noticed at once.
- Where a request goes (`Peers.send`): to the endpoint the core names (a voter being
  added, a bootstrap server -2, -3, ...), else to the destination's endpoint in the
  CURRENT voter set (`VoterDirectory`, the raft core), so voters a VotersRecord added are
  reachable. A destination that is neither is failed at once with CONNECTION_REFUSED.
- Channels follow the voter set: one is kept open to every other voter (checked on every
  send and every `SWEEP_S`); a voter whose endpoint changed gets a new channel and the old
  one is closed; the channel of a node that left the voter set is closed; a channel opened
  for an explicit endpoint is closed once idle for ``connections.max.idle.ms``. Closing a
  channel reports what was queued or in flight on it as CONNECTION_LOST, so the core
  never waits for an answer that cannot come. Channels run in Peers' own nursery.
- Buffers are bounded: at most `MAX_QUEUED` requests wait per peer (the core never has two
  of one kind in flight to a peer, so it needs at most one per API); one more is failed at
  once with TIMEOUT. A response frame is bounded by `socket.request.max.bytes`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

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
from kwire.raft.voter_set import VoterEndpoint

log = logging.getLogger("kwire.peers")

API_VERSIONS_KEY = 18
API_VERSIONS_VERSION = 4  # what Kafka 3.9's and 4.3's clients send first
SOFTWARE_NAME = "kwire"
SOFTWARE_VERSION = "0.1.0"
RECONNECT_BACKOFF_MS = 50  # RaftManager's reconnect.backoff.ms
RECONNECT_BACKOFF_MAX_MS = 500  # and its maximum
MAX_QUEUED = 16
RECEIVE_CHUNK = 64 * 1024
CONNECTIONS_MAX_IDLE_MS = 600_000  # the server's connections.max.idle.ms, as RaftManager's Selector
SWEEP_S = 1.0  # how often Peers checks its channels against the voter set


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
    ) -> None:
        self.voter = voter
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

    def disconnect(self) -> None:
        """Close the connection now (what is in flight is reported CONNECTION_LOST)."""
        if self._stream is not None:
            self._stream.socket.close()  # type: ignore[attr-defined]

    def _fail_soon(self, request: Message, failure: SendFailure) -> None:
        event = SendFailed(destination=self.voter.node_id, request=request, failure=failure)
        try:
            self.deliver.send_nowait(event)
        except trio.WouldBlock:
            log.error("Inbox full: the failure of a request to %d is lost", self.voter.node_id)

    # -- the channel's task ---------------------------------------------------------------

    async def run(self) -> None:
        """Keep a connection to the voter (reconnecting with backoff), and send what waits;
        until cancelled or `close`d (then what is pending is reported CONNECTION_LOST)."""
        try:
            with self._scope:
                await self._run()
        finally:
            pending = [self._current] if self._current is not None else []
            pending += self.queue
            self._current = None
            self.queue.clear()
            for item in pending:
                self._fail_soon(item.request, SendFailure.CONNECTION_LOST)

    async def _run(self) -> None:
        while True:
            try:
                with trio.fail_after(self.request_timeout_s):
                    stream = await trio.open_tcp_stream(self.voter.host, self.voter.port)
            except (OSError, trio.TooSlowError) as exc:
                log.debug("Cannot connect to voter %d: %s", self.voter.node_id, exc)
                await self._fail_queued(self.queue, SendFailure.CONNECTION_REFUSED)
                await self._back_off()
                continue
            self.connects += 1
            self._backoff_ms = RECONNECT_BACKOFF_MS
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
        await trio.sleep(self._backoff_ms / 1000)
        self._backoff_ms = min(self._backoff_ms * 2, RECONNECT_BACKOFF_MAX_MS)

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
        """ApiVersions, then the queued requests one at a time, until the connection breaks."""
        await self._learn_versions(stream, frames)
        while True:
            await self._wait_for_work_or_close(stream)
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

    async def _learn_versions(self, stream: trio.abc.Stream, frames: FrameBuffer) -> None:
        """ApiVersions first, as Kafka's NetworkClient does (discoverBrokerVersions): at v4,
        or again at the highest version the peer names if it refuses v4 (KIP-511)."""
        version = API_VERSIONS_VERSION
        for _ in range(2):
            request = ApiVersionsRequest(
                client_software_name=SOFTWARE_NAME, client_software_version=SOFTWARE_VERSION
            )
            payload = self._encode(request, version)
            assert payload is not None
            item = _Queued(request, trio.current_time() + self.request_timeout_s)
            try:
                with trio.fail_at(item.deadline):
                    await stream.send_all(size_prefixed(payload))
                    frame = await self._receive_frame(stream, frames)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError):
                frame = None
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


class VoterDirectory(Protocol):
    """Who the voters are now (the raft core: `RaftCore.voter_ids`, `RaftCore.voter`)."""

    @property
    def voter_ids(self) -> frozenset[int]: ...

    def voter(self, node_id: int) -> Voter | None: ...


@dataclass(slots=True)
class _Entry:
    channel: PeerChannel
    explicit: bool  # opened for an endpoint the core named, not from the voter set
    last_send: float  # trio time of the last send through it


class Peers:
    """The channels of one node: one per (destination, address), following the voter set
    that `directory` gives (module docstring); `run` runs them until cancelled."""

    def __init__(
        self,
        node_id: int,
        directory: VoterDirectory,
        *,
        request_timeout_ms: int,
        deliver: trio.MemorySendChannel[PeerEvent],
        max_response_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        idle_ms: int = CONNECTIONS_MAX_IDLE_MS,
    ) -> None:
        self.node_id = node_id
        self.directory = directory
        self.request_timeout_ms = request_timeout_ms
        self.deliver = deliver
        self.max_response_bytes = max_response_bytes
        self.idle_s = idle_ms / 1000
        self._entries: dict[Voter, _Entry] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def channels(self) -> dict[Voter, PeerChannel]:
        """The open channels, by (destination id, host, port)."""
        return {key: entry.channel for key, entry in self._entries.items()}

    def send(
        self, destination: int, request: Message, endpoint: VoterEndpoint | None = None
    ) -> None:
        """Send `request` to `endpoint` if given, else to `destination`'s endpoint in the
        current voter set; the answer or failure comes back on the inbox with
        `destination`."""
        if endpoint is not None:
            key: Voter | None = Voter(node_id=destination, host=endpoint.host, port=endpoint.port)
        else:
            key = self.directory.voter(destination) if destination != self.node_id else None
        if key is None:
            # Not a voter we know, and no address given: nothing can be sent there.
            event = SendFailed(
                destination=destination, request=request, failure=SendFailure.CONNECTION_REFUSED
            )
            try:
                self.deliver.send_nowait(event)
            except trio.WouldBlock:
                log.error("Inbox full: the failure of a request to %d is lost", destination)
            return
        entry = self._channel(key, explicit=endpoint is not None)
        entry.last_send = _now()
        entry.channel.send(request)
        if endpoint is None:
            self._close_stale(destination, keep=key)

    def follow_voters(self) -> None:
        """Open a channel to every other voter, close those of nodes that left the voter
        set or moved, and those opened for an endpoint that stayed idle too long."""
        voters = {
            v.node_id: v
            for i in self.directory.voter_ids
            if i != self.node_id and (v := self.directory.voter(i)) is not None
        }
        for voter in voters.values():
            self._channel(voter, explicit=False)
        now = _now()
        for key, entry in list(self._entries.items()):
            if voters.get(key.node_id) == key:
                continue
            if entry.explicit and (entry.channel.busy or now - entry.last_send < self.idle_s):
                continue
            self._close(key)

    def _channel(self, key: Voter, *, explicit: bool) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            channel = PeerChannel(
                key,
                client_id=raft_client_id(self.node_id),
                request_timeout_ms=self.request_timeout_ms,
                deliver=self.deliver,
                max_response_bytes=self.max_response_bytes,
            )
            entry = _Entry(channel, explicit, _now())
            self._entries[key] = entry
            if self._nursery is not None:
                self._nursery.start_soon(channel.run)
        elif explicit:
            entry.explicit = True
        return entry

    def _close_stale(self, destination: int, *, keep: Voter) -> None:
        """`destination` is a voter at `keep`: its channels to other addresses, unless
        opened for an endpoint and still in use, are closed."""
        for key, entry in list(self._entries.items()):
            if key.node_id == destination and key != keep and not entry.explicit:
                self._close(key)

    def _close(self, key: Voter) -> None:
        entry = self._entries.pop(key)
        log.info(
            "Closing the channel to %d at %s:%d: no longer a voter there",
            key.node_id,
            key.host,
            key.port,
        )
        entry.channel.close()
        if self._nursery is None:  # never started: report what it held now
            for item in entry.channel.queue:
                entry.channel._fail_soon(item.request, SendFailure.CONNECTION_LOST)
            entry.channel.queue.clear()

    async def run(self) -> None:
        """Run the channels (started on demand) and follow the voter set every `SWEEP_S`,
        until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for entry in self._entries.values():
                    nursery.start_soon(entry.channel.run)
                while True:
                    self.follow_voters()
                    await trio.sleep(SWEEP_S)
            finally:
                self._nursery = None


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside Trio (a node driven in-process): no idle clock
        return 0.0
