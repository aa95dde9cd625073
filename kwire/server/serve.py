"""The network edge: accepting connections and answering their requests in order.

A connection that sends a frame it cannot parse (hostile size, truncated header, unknown
API key, a version the API lacks) is closed with a log line; other connections go on.
ApiVersions at a version too new is answered at v0 with UNSUPPORTED_VERSION, as Kafka
does, so that clients can fall back.

Each connection reads one frame at a time: its 4-byte size, then room for it in the
request budget, then exactly its bytes; the next frame is read once this one is answered
(Kafka mutes a channel while its request is in flight). So a peer can make the server
hold at most its 4-byte prefix beyond what the budget counts. The limits on connections,
idle time and request bytes are kwire.server.limits'.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.errors import ProtocolError, UnsupportedVersionError
from kwire.protocol.framing import (
    FrameTooLargeError,
    decode_request,
    encode_response,
    peek_request,
    size_prefixed,
)
from kwire.protocol.messages.api_versions import ApiVersionsResponse
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatResponse
from kwire.protocol.messages.index import APIS
from kwire.server.config import ConfigError, ListenerSecurity
from kwire.server.dispatch import (
    ANONYMOUS,
    ANONYMOUS_PEER,
    CONTROLLER_API_KEYS,
    ENVELOPE,
    Peer,
    RequestHandler,
    encode_heartbeat_response,
)
from kwire.server.limits import (
    ConnectionLimits,
    ConnectionQuotas,
    IdleConnections,
    IPAddress,
    RequestBudget,
    canonical_ip,
)
from kwire.server.node import ControllerNode
from kwire.server.security import (
    AnswerNormally,
    CloseNow,
    FailAuthentication,
    SaslServerAuthenticator,
    Send,
    credentials_from,
)
from kwire.server.tls import certificate_principal, server_ssl_context

log = logging.getLogger("kwire.server")

API_VERSIONS = 18
SASL_HANDSHAKE = 17
RECEIVE_CHUNK = 64 * 1024
SIZE_PREFIX = 4
TLS_HANDSHAKE_RECORD = b"\x16\x03"  # a TLS record header: handshake, version 3.x
# A connection's first receive for a frame asks for up to this many bytes, so that a small
# frame (a heartbeat is ~55 bytes) arrives with its size prefix in one call; what comes
# beyond the frame is kept for the next one. This is all a connection holds outside the
# request budget.
READ_AHEAD = 512
# accept() failures that mean "out of descriptors or memory for now": wait and retry.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_S = 0.1


class CloseConnection(Exception):
    """The peer broke the protocol; the reason is logged and the connection closed."""


class FailedAuthentication(Exception):
    """Kafka's AuthenticationException: after the failed-authentication delay the
    answer, if any, is sent and the connection closed."""

    def __init__(self, reason: str, frame: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame


async def answer(frame: bytes, handler: RequestHandler, peer: Peer = ANONYMOUS_PEER) -> bytes:
    """The response frame (without size prefix) for one request frame from `peer`."""
    preamble = peek_request(frame)
    api = APIS.get(preamble.api_key)
    if api is None or preamble.api_key not in CONTROLLER_API_KEYS:
        raise CloseConnection(f"API key {preamble.api_key} is not served on a controller listener")
    try:
        header, body = decode_request(frame)
    except UnsupportedVersionError as exc:
        if preamble.api_key == API_VERSIONS:
            # KIP-511: answer in v0, listing ApiVersions' own range, so that any client
            # can read which version to retry with.
            fallback = ApiVersionsResponse(
                error_code=ErrorCode.UNSUPPORTED_VERSION,
                api_keys=[
                    ApiVersionsResponse.ApiVersion(
                        api_key=API_VERSIONS,
                        min_version=api.lowest_version,
                        max_version=api.highest_version,
                    )
                ],
            )
            return encode_response(API_VERSIONS, 0, preamble.correlation_id, fallback)
        raise CloseConnection(str(exc)) from None
    started = time.perf_counter()
    response = await handler.handle(header, body, peer)
    if header.request_api_key != ENVELOPE:  # counted by the inner request's API
        handler.node.request_stats.record(
            header.request_api_key, header.request_api_version, response, started
        )
    if type(response) is BrokerHeartbeatResponse:
        return encode_heartbeat_response(header.correlation_id, response)
    return encode_response(
        header.request_api_key, header.request_api_version, header.correlation_id, response
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketServerStatistics:
    """A snapshot of `SocketServer`'s bookkeeping (sizes in bytes)."""

    connections: int  # open and counted against max.connections
    connections_by_address: dict[str, int]
    accepting: bool  # False while max.connections are open
    connections_rejected: int  # closed at accept: over max.connections.per.ip
    connections_expired: int  # closed for idling longer than connections.max.idle.ms
    request_bytes_in_flight: int  # frames read (or being read) and not yet answered
    request_bytes_peak: int  # the most that was ever in flight at once
    request_bytes_budget: int | None  # queued.max.request.bytes; None: unbounded
    requests_waiting: int  # connections whose next frame waits for room in the budget
    requests_delayed: int  # frames that ever had to wait for room
    authentications_failed: int = 0  # TLS handshakes and SASL exchanges that failed


class Connection:
    """One accepted peer: its stream (TLS once the handshake is done), address, principal
    and state as the server sees it."""

    def __init__(self, stream: trio.SocketStream, address: IPAddress, peer: str) -> None:
        self.stream: trio.abc.Stream = stream
        self.socket = stream.socket
        # Plaintext bytes move by non-blocking reads and writes on this descriptor (see
        # `receive_some`); -1 once TLS wraps the stream.
        self.fd = stream.socket.fileno()
        self.principal = ANONYMOUS
        self.authenticator: SaslServerAuthenticator | None = None
        self.address = address
        self.peer = peer
        self.closed = False
        self.counted = True  # holds a slot in the connection quotas
        self.in_flight = False  # a request is being answered
        self.reading: trio.CancelScope | None = None  # while waiting for room in the budget
        # Bytes received beyond the last frame (at most READ_AHEAD): the next frame's start.
        self.buffered = bytearray()
        self._peer: Peer | None = None  # `Peer` for the current principal

    def close_now(self) -> None:
        """Close the socket at once; a task blocked on it gets ClosedResourceError."""
        self.closed = True
        if self.reading is not None:
            self.reading.cancel()
        self.socket.close()

    # Trio's SocketStream spends more on its layers (conflict detection, error
    # translation, a try-then-wait helper and a checkpoint per call) than the system call
    # itself costs; a heartbeat makes three such calls. These two do the same with the
    # descriptor directly. The descriptor number may be reused once the socket is closed,
    # so `closed` is checked before every call (nothing awaits in between).

    async def receive_some(self, max_bytes: int) -> bytes | bytearray:
        """Up to `max_bytes` (b"" once the peer closed); yields to the loop at least once.
        Raises trio.ClosedResourceError (closed here) or BrokenResourceError (reset)."""
        fd = self.fd
        if fd < 0:
            return await self.stream.receive_some(max_bytes)
        waited = False
        while True:
            if self.closed:
                raise trio.ClosedResourceError("the connection was closed")
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                waited = True
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            if not waited:
                # Data that was already there: still let other tasks run, so that a peer
                # that pipelines requests cannot hold the loop.
                await trio.lowlevel.checkpoint()
            return data

    async def send_all(self, data: bytes) -> bool:
        """Send every byte of `data`, waiting while the socket's buffer is full; whether
        it had to wait. Raises trio.ClosedResourceError or BrokenResourceError as
        `receive_some`."""
        fd = self.fd
        if fd < 0:
            await self.stream.send_all(data)
            return True
        waited = False
        view = memoryview(data)
        while view:
            if self.closed:
                raise trio.ClosedResourceError("the connection was closed")
            try:
                sent = os.write(fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(fd)
                waited = True
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            view = view[sent:]
        return waited


class SocketServer:
    """Kafka's SocketServer for one controller: accepts within the connection quotas,
    closes idle connections and keeps request bytes in flight within their budget.

    `run` serves until cancelled and reports the bound port through `task_status`;
    `statistics` is for tests and tools. Limits are `ConnectionLimits` (Kafka 3.9's
    SocketServerConfigs keys); a configured budget below `max_request_bytes` raises
    ConfigError, as Kafka's KafkaConfig refuses it. `security` is the listener's TLS and
    SASL (kwire.server.security; PLAINTEXT when None); a TLS store that does not load
    raises ConfigError. A failed authentication is answered (where Kafka answers) after
    `failed_authentication_delay_ms` (connection.failed.authentication.delay.ms), then
    the connection closes.
    """

    def __init__(
        self,
        node: ControllerNode,
        *,
        max_request_bytes: int,
        limits: ConnectionLimits | None = None,
        security: ListenerSecurity | None = None,
        failed_authentication_delay_ms: int = 100,
    ) -> None:
        self.node = node
        self.security = security = security if security is not None else ListenerSecurity()
        self.ssl_context = server_ssl_context(security.ssl) if security.ssl else None
        self.failed_authentication_delay_s = failed_authentication_delay_ms / 1000
        self.failed_authentications = 0
        self.handler = RequestHandler(node)
        self.max_request_bytes = max_request_bytes
        self.limits = limits = limits if limits is not None else ConnectionLimits()
        budget = limits.queued_max_request_bytes
        if 0 < budget < max_request_bytes:
            raise ConfigError(
                f"queued.max.request.bytes={budget}: must be larger or equal to "
                f"socket.request.max.bytes={max_request_bytes}"
            )
        self.budget = RequestBudget(budget if budget > 0 else None)
        self.quotas = ConnectionQuotas(limits.max_connections, limits.max_connections_per_ip, {})
        self.idle: IdleConnections[Connection] = IdleConnections(
            limits.connections_max_idle_ms, self._expire
        )
        self.rejected = 0
        self.expired = 0

    def statistics(self) -> SocketServerStatistics:
        return SocketServerStatistics(
            connections=self.quotas.total,
            connections_by_address={str(a): n for a, n in self.quotas.counts.items()},
            accepting=self.quotas.slot_available(),
            connections_rejected=self.rejected,
            connections_expired=self.expired,
            request_bytes_in_flight=self.budget.in_use,
            request_bytes_peak=self.budget.peak,
            request_bytes_budget=self.budget.capacity,
            requests_waiting=self.budget.waiting,
            requests_delayed=self.budget.waits,
            authentications_failed=self.failed_authentications,
        )

    # -- accepting ----------------------------------------------------------------------------

    async def run(
        self,
        host: str,
        port: int,
        *,
        listeners: list[trio.SocketListener] | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start the node and serve on host:port (or on `listeners`, already bound there by
        `bind`) until cancelled. Raises ListenerBindError when host:port cannot be bound."""
        self.quotas.overrides = await resolve_overrides(
            self.limits.max_connections_per_ip_overrides
        )
        if listeners is None:
            listeners = await bind(host, port)
        port_bound = bound_port(listeners)
        try:
            async with trio.open_nursery() as nursery:
                self.node.start()
                nursery.start_soon(self.node.run)
                if self.limits.connections_max_idle_ms >= 0:
                    nursery.start_soon(self.idle.run)
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                log.info(
                    "kwire controller %d serving %s on %s:%d",
                    self.node.settings.node_id,
                    self.security.protocol,
                    host,
                    port_bound,
                )
                task_status.started(port_bound)
        finally:
            # Peers that connect now are refused at once, as by a process that is gone.
            for listener in listeners:
                listener.socket.close()

    async def _wait_for_slot(self) -> None:
        if self.quotas.slot_available():
            return
        log.info(
            "Not accepting connections: max.connections=%d are open; waiting for one to close",
            self.quotas.max_connections,
        )
        await self.quotas.wait_for_slot()
        log.info("Accepting connections again")

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            # As Kafka's acceptor: leave new peers in the backlog while the server is full.
            await self._wait_for_slot()
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.error("accept() failed (%s); retrying in %.1f s", exc, ACCEPT_RETRY_S)
                await trio.sleep(ACCEPT_RETRY_S)
                continue
            # Another listener may have taken the last slot while we waited in accept().
            await self._wait_for_slot()
            connection = self._admit(stream)
            if connection is None:
                await stream.aclose()
            else:
                nursery.start_soon(self._serve_connection, connection)

    def _admit(self, stream: trio.SocketStream) -> Connection | None:
        """Count the new connection against its address's limit; None if refused."""
        try:
            host, port = stream.socket.getpeername()[:2]
            address = canonical_ip(host)
        except (OSError, ValueError):
            return None  # the peer is already gone
        peer = f"{host}:{port}"
        if not self.quotas.try_add(address):
            self.rejected += 1
            log.info(
                "Closing connection from %s: rejected, address %s already has the configured "
                "maximum of %d connections (max.connections.per.ip)",
                peer,
                address,
                self.quotas.limit_for(address),
            )
            return None
        connection = Connection(stream, address, peer)
        self._touch(connection)
        return connection

    def _touch(self, connection: Connection) -> None:
        if not connection.closed:  # a closed one must not come back to be expired again
            self.idle.touch(connection)

    def _forget(self, connection: Connection) -> None:
        if not connection.closed:
            connection.close_now()
        if connection.counted:
            connection.counted = False
            self.quotas.remove(connection.address)
        self.idle.remove(connection)

    def _expire(self, connection: Connection, idle_s: float) -> None:
        self.expired += 1
        log.info(
            "Closing connection from %s: idle for %d ms, longer than connections.max.idle.ms=%d%s",
            connection.peer,
            idle_s * 1000,
            self.limits.connections_max_idle_ms,
            "; the response to its request in flight will be dropped"
            if connection.in_flight
            else "",
        )
        self._forget(connection)

    # -- one connection -----------------------------------------------------------------------

    async def _serve_connection(self, connection: Connection) -> None:
        try:
            if self.ssl_context is not None and not await self._start_tls(connection):
                return
            if self.security.sasl is not None:
                node = self.node  # its controller is rebuilt when a snapshot is installed
                connection.authenticator = SaslServerAuthenticator(
                    self.security.sasl,
                    credentials_from(lambda: node.controller.image),
                    peer=connection.peer,
                )
            while (read := await self._read_frame(connection)) is not None:
                size, frame = read
                try:
                    connection.in_flight = True
                    reply = await self._respond(connection, frame)
                    del frame
                    connection.in_flight = False
                    if connection.closed or reply is None:
                        return  # expired while answering: the response is dropped, as in Kafka
                    self._touch(connection)
                    if await connection.send_all(size_prefixed(reply)):
                        self._touch(connection)  # the peer was slow to take it
                finally:
                    self.budget.release(size)
        except FailedAuthentication as failure:
            await self._fail_authentication(connection, failure.reason, failure.frame)
        except (ProtocolError, CloseConnection) as exc:
            log.warning("Closing connection from %s: %s", connection.peer, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            # A bug answering one request must not take the server down for everyone.
            log.exception("Closing connection from %s after an internal error", connection.peer)
        finally:
            self._forget(connection)

    async def _respond(self, connection: Connection, frame: bytes) -> bytes | None:
        """The answer to one frame, through the SASL exchange while it lasts; None: the
        connection closes without an answer. Raises FailedAuthentication."""
        auth = connection.authenticator
        if auth is None:
            return await answer(frame, self.handler, self._peer(connection))
        now_ms = int(trio.current_time() * 1000)
        if auth.complete:
            is_handshake = int.from_bytes(frame[:2], "big") == SASL_HANDSHAKE
            if not (is_handshake and auth.begin_reauthentication(now_ms)):
                if auth.session_expired(now_ms):
                    log.info(
                        "Closing connection from %s: its SASL session expired "
                        "(connections.max.reauth.ms)",
                        connection.peer,
                    )
                    return None
                return await answer(frame, self.handler, self._peer(connection))
        match auth.receive(frame, now_ms):
            case Send(frame=reply):
                if auth.complete:
                    connection.principal = auth.principal
                return reply
            case AnswerNormally():
                return await answer(frame, self.handler, self._peer(connection))
            case FailAuthentication(reason=reason, frame=reply):
                raise FailedAuthentication(reason, reply)
            case CloseNow(reason=reason):
                raise CloseConnection(reason)
        raise AssertionError("unreachable")

    def _peer(self, connection: Connection) -> Peer:
        peer = connection._peer
        if peer is None or peer.principal != connection.principal:
            peer = connection._peer = Peer(
                principal=connection.principal,
                client_host=str(connection.address),
                security_protocol=self.security.protocol,
            )
        return peer

    async def _start_tls(self, connection: Connection) -> bool:
        """The TLS handshake; False (logged, the peer told after the failed-authentication
        delay) if it fails. Idle expiry bounds it, as Kafka's selector does."""
        assert self.ssl_context is not None
        stream = trio.SSLStream(connection.stream, self.ssl_context, server_side=True)
        connection.stream = stream
        connection.fd = -1
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__ or exc
            await _send_tls_alert(stream)
            await self._fail_authentication(connection, f"SSL handshake failed: {cause}", None)
            return False
        connection.principal = certificate_principal(stream.getpeercert())
        self._touch(connection)
        return True

    async def _fail_authentication(
        self, connection: Connection, reason: str, reply: bytes | None
    ) -> None:
        """Kafka's Selector on an AuthenticationException: wait the delay, send the
        failure answer if there is one, close."""
        self.failed_authentications += 1
        log.info("Failed authentication with %s (%s)", connection.peer, reason)
        if connection.closed:
            return
        await trio.sleep(self.failed_authentication_delay_s)
        if reply is not None and not connection.closed:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await connection.send_all(size_prefixed(reply))

    async def _receive_exactly(self, connection: Connection, count: int) -> bytearray:
        """`count` bytes, never more (a short result means the peer closed)."""
        data = bytearray()
        while len(data) < count:
            chunk = await connection.receive_some(min(count - len(data), RECEIVE_CHUNK))
            if not chunk:
                break
            self._touch(connection)
            data += chunk
        return data

    async def _read_frame(self, connection: Connection) -> tuple[int, bytes] | None:
        """The next frame and its size, held in the budget until the caller releases it;
        None once the peer closed or the connection was closed. (A read blocked when the
        connection is closed ends with ClosedResourceError: closing the socket wakes it.)"""
        if connection.closed:
            return None
        buffered = connection.buffered
        while len(buffered) < SIZE_PREFIX:
            chunk = await connection.receive_some(READ_AHEAD - len(buffered))
            if not chunk:
                if buffered:
                    log.info("Connection from %s closed in the middle of a frame", connection.peer)
                return None
            self._touch(connection)
            buffered += chunk
        size = int.from_bytes(buffered[:SIZE_PREFIX], "big", signed=True)
        auth = connection.authenticator
        # SaslServerAuthenticator reads with sasl.server.max.receive.size.
        if (
            auth is not None
            and not auth.complete
            and not 0 <= size <= auth.settings.max_receive_size
        ):
            raise FailedAuthentication("Failing SASL authentication due to invalid receive size")
        if buffered[:2] == TLS_HANDSHAKE_RECORD and not 0 <= size <= self.max_request_bytes:
            raise FrameTooLargeError(
                f"frame size {size} is a TLS handshake: the client uses SSL and this "
                "listener does not (listener.security.protocol.map)"
            )
        if size < 0 or size > self.max_request_bytes:
            raise FrameTooLargeError(
                f"frame size {size} is outside 0..{self.max_request_bytes} "
                "(socket.request.max.bytes)"
            )
        if not await self._reserve(connection, size):
            return None  # closed while waiting for room
        end = SIZE_PREFIX + size
        if len(buffered) >= end:  # the whole frame came with its prefix
            frame = bytes(buffered[SIZE_PREFIX:end])
            del buffered[:end]
            return size, frame
        try:
            rest = await self._receive_exactly(connection, end - len(buffered))
        except BaseException:
            self.budget.release(size)
            raise
        if len(buffered) + len(rest) < end:
            self.budget.release(size)
            log.info("Connection from %s closed in the middle of a frame", connection.peer)
            return None
        frame = bytes(buffered[SIZE_PREFIX:]) + rest
        buffered.clear()
        return size, frame

    async def _reserve(self, connection: Connection, size: int) -> bool:
        """Room for `size` bytes in the budget, waiting for it in arrival order; False if
        the connection was closed meanwhile (nothing is held then)."""
        budget = self.budget
        if budget.try_acquire(size):
            return True
        if budget.capacity is not None and (
            budget.waiting or budget.in_use + size > budget.capacity
        ):
            log.info(
                "Pausing reads from %s: its %d-byte request waits for room in "
                "queued.max.request.bytes=%d (%d bytes in flight, %d requests ahead)",
                connection.peer,
                size,
                budget.capacity,
                budget.in_use,
                budget.waiting,
            )
        with trio.CancelScope() as connection.reading:
            if connection.closed:
                return False
            await budget.acquire(size)
            connection.reading = None
            return True
        connection.reading = None
        return False


async def resolve_overrides(overrides: Mapping[str, int]) -> dict[IPAddress, int]:
    """max.connections.per.ip.overrides by address: each host name stands for every
    address it resolves to (Kafka takes the first). Raises ConfigError if one does not."""
    resolved: dict[IPAddress, int] = {}
    for host, limit in overrides.items():
        try:
            resolved[canonical_ip(host)] = limit
            continue
        except ValueError:
            pass
        try:
            # Java's InetAddress.getByName("") is the loopback address.
            infos = await trio.socket.getaddrinfo(
                host or "localhost", None, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise ConfigError(
                f"max.connections.per.ip.overrides: cannot resolve host {host!r}: {exc}"
            ) from None
        for info in infos:
            resolved.setdefault(canonical_ip(str(info[4][0])), limit)
    return resolved


class ListenerBindError(ConfigError):
    """The listener's address cannot be bound (in use, not local, not permitted)."""


async def bind(host: str, port: int) -> list[trio.SocketListener]:
    """Listen on host:port (port 0: a free port, read back with `bound_port`). Raises
    ListenerBindError with Kafka's SocketServer message: "Socket server failed to bind to
    HOST:PORT: <reason>." (SocketServer.openServerSocket)."""
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenerBindError(
            f"Socket server failed to bind to {host}:{port}: {reason}."
        ) from None


def bound_port(listeners: list[trio.SocketListener]) -> int:
    """The port the first listener is bound to."""
    return int(listeners[0].socket.getsockname()[1])


async def _send_tls_alert(stream: trio.SSLStream[trio.abc.Stream]) -> None:
    """Send what OpenSSL wrote as it gave up a handshake: the alert that tells the client
    why (unknown_ca, certificate_required, ...), as Kafka's SslTransportLayer flushes it.
    trio's SSLStream drops it when a handshake fails; it waits in the stream's outgoing
    memory BIO (a private attribute: nothing is sent if a trio release renames it)."""
    outgoing = getattr(stream, "_outgoing", None)
    if isinstance(outgoing, ssl.MemoryBIO) and outgoing.pending:
        with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.transport_stream.send_all(outgoing.read())


async def serve(
    node: ControllerNode,
    host: str,
    port: int,
    *,
    listeners: list[trio.SocketListener] | None = None,
    max_request_bytes: int,
    limits: ConnectionLimits | None = None,
    security: ListenerSecurity | None = None,
    failed_authentication_delay_ms: int = 100,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (on `listeners` if given, already bound by `bind`); reports
    the bound port through `task_status`."""
    server = SocketServer(
        node,
        max_request_bytes=max_request_bytes,
        limits=limits,
        security=security,
        failed_authentication_delay_ms=failed_authentication_delay_ms,
    )
    await server.run(host, port, listeners=listeners, task_status=task_status)
