"""A small read-only HTTP/1.1 server for kwire's operator pages (metrics, status).

Not part of Kafka's protocol: Kafka's controller has no HTTP listener (its metrics are JMX
only). kwire serves ``GET`` (and ``HEAD``) on routes given by the caller, on listeners that
are off unless configured. Parsing is h11's (a well-kept sans-IO HTTP/1.1 library); this
module is the Trio edge around it.

Shapes: a route maps a path (``"/metrics"``; the query string is passed to the handler, not
matched) to a handler ``(HttpRequest) -> HttpResponse`` that runs on the event loop and
must not block. Bounds: request heads above `MAX_HEAD_BYTES` get 431, bodies are refused
(413), a connection idle for `IDLE_TIMEOUT_S` is closed, at most `MAX_CONNECTIONS` are
served at once (others wait in the kernel's backlog), a handler that raises answers 500
and is logged; none of these stops the server or the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11
import trio

log = logging.getLogger("kwire.http")

MAX_HEAD_BYTES = 16 * 1024
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
READ_SIZE = 16 * 1024


@dataclass(slots=True, frozen=True)
class HttpRequest:
    """A GET or HEAD request: `path` without the query, `query` as parse_qs gives it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


@dataclass(slots=True, frozen=True)
class HttpResponse:
    """What a handler answers: status code, content type and the whole body."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def text(cls, status: int, text: str) -> HttpResponse:
        return cls(status, text.encode())


Handler = Callable[[HttpRequest], HttpResponse]

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


class HttpEdge:
    """Serves `routes` on Trio listeners until cancelled."""

    def __init__(self, routes: Mapping[str, Handler], *, name: str = "http") -> None:
        self.routes = dict(routes)
        self.name = name
        self._slots = trio.Semaphore(MAX_CONNECTIONS)

    async def run(
        self,
        listeners: list[trio.SocketListener],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections on `listeners` (bound by the caller) until cancelled."""
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener)
            task_status.started()

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                await self._slots.acquire()
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and the like: back off, keep serving
                    self._slots.release()
                    log.warning("%s listener could not accept a connection: %s", self.name, exc)
                    await trio.sleep(0.1)
                    continue
                except BaseException:
                    self._slots.release()
                    raise
                nursery.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await self._converse(stream, h11.Connection(h11.SERVER, MAX_HEAD_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        finally:
            self._slots.release()

    async def _converse(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        while True:
            try:
                event = await self._next_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(stream, conn, HttpResponse.text(status, f"{exc}\n"), False)
                return
            if event is None:
                return
            response = self._respond(event)
            head_only = event.method == b"HEAD"
            await self._send(stream, conn, response, head_only)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next_request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> h11.Request | None:
        """The next whole request (its head and end; bodies are refused); None when the
        client closed, paused or stayed idle too long."""
        request: h11.Request | None = None
        with trio.move_on_after(IDLE_TIMEOUT_S):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(READ_SIZE))
                elif isinstance(event, h11.Request):
                    if _head_size(event) > MAX_HEAD_BYTES:
                        raise h11.RemoteProtocolError(
                            "request head too large", error_status_hint=431
                        )
                    if _has_body(event):
                        raise h11.RemoteProtocolError(
                            "request bodies are not accepted", error_status_hint=413
                        )
                    request = event
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    return request
                elif not isinstance(event, h11.Data):
                    return None
        return None

    def _respond(self, request: h11.Request) -> HttpResponse:
        if request.method not in (b"GET", b"HEAD"):
            return HttpResponse(
                405, b"only GET and HEAD are served\n", headers=(("Allow", "GET, HEAD"),)
            )
        target = urlsplit(request.target.decode("ascii", "replace"))
        handler = self.routes.get(target.path)
        if handler is None:
            known = ", ".join(sorted(self.routes))
            return HttpResponse.text(404, f"no page at {target.path}; pages: {known}\n")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        parsed = HttpRequest(request.method.decode(), target.path, parse_qs(target.query), headers)
        try:
            return handler(parsed)
        except Exception:
            log.exception("%s page %s failed", self.name, target.path)
            return HttpResponse.text(500, "internal error; see the controller's log\n")

    async def _send(
        self,
        stream: trio.SocketStream,
        conn: h11.Connection,
        response: HttpResponse,
        head_only: bool,
    ) -> None:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Cache-Control", "no-store"),
            *response.headers,
        ]
        reason = _REASONS.get(response.status, b"")
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if not head_only:
            data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
        await stream.send_all(data)


def _head_size(request: h11.Request) -> int:
    # h11 bounds only a head that arrives in pieces; one that arrives whole is measured here.
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _has_body(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() != b"0":
            return True
    return False


def group_routes(
    pages: list[tuple[tuple[str, int], str, Handler]],
) -> dict[tuple[str, int], dict[str, Handler]]:
    """Group (address, path, handler) triples by address, so that pages configured on the
    same host:port share one server. Raises ValueError when two pages claim one path on
    one address."""
    grouped: dict[tuple[str, int], dict[str, Handler]] = {}
    for address, path, handler in pages:
        routes = grouped.setdefault(address, {})
        if path in routes:
            raise ValueError(f"two pages at {address[0]}:{address[1]}{path}")
        routes[path] = handler
    return grouped
