"""The network edge: one Trio task per connection, requests answered in order.

A connection that sends a frame it cannot parse (hostile size, truncated header, unknown
API key, a version the API lacks) is closed with a log line; other connections go on.
ApiVersions at a version too new is answered at v0 with UNSUPPORTED_VERSION, as Kafka
does, so that clients can fall back.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.errors import ProtocolError, UnsupportedVersionError
from kwire.protocol.framing import (
    FrameBuffer,
    decode_request,
    encode_response,
    peek_request,
    size_prefixed,
)
from kwire.protocol.messages.api_versions import ApiVersionsResponse
from kwire.protocol.messages.index import APIS
from kwire.server.dispatch import CONTROLLER_APIS, RequestHandler
from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.server")

API_VERSIONS = 18
RECEIVE_CHUNK = 64 * 1024


class CloseConnection(Exception):
    """The peer broke the protocol; the reason is logged and the connection closed."""


async def answer(frame: bytes, handler: RequestHandler) -> bytes:
    """The response frame (without size prefix) for one request frame."""
    preamble = peek_request(frame)
    api = APIS.get(preamble.api_key)
    if api is None or preamble.api_key not in CONTROLLER_APIS:
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
    response = await handler.handle(header, body)
    return encode_response(
        header.request_api_key, header.request_api_version, header.correlation_id, response
    )


async def handle_connection(
    stream: trio.SocketStream, handler: RequestHandler, max_request_bytes: int
) -> None:
    try:
        peer = "{}:{}".format(*stream.socket.getpeername()[:2])
    except OSError:
        peer = "unknown peer"
    frames = FrameBuffer(max_request_bytes)
    async with stream:
        try:
            while True:
                data = await stream.receive_some(RECEIVE_CHUNK)
                if not data:
                    return
                frames.feed(data)
                while (frame := frames.next_frame()) is not None:
                    reply = await answer(frame, handler)
                    await stream.send_all(size_prefixed(reply))
        except (ProtocolError, CloseConnection) as exc:
            log.warning("Closing connection from %s: %s", peer, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            # A bug answering one request must not take the server down for everyone.
            log.exception("Closing connection from %s after an internal error", peer)


async def serve(
    node: ControllerNode,
    host: str,
    port: int,
    *,
    max_request_bytes: int,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port through `task_status`."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port = listeners[0].socket.getsockname()[1]
    handler = RequestHandler(node)
    async with trio.open_nursery() as nursery:
        node.start()
        nursery.start_soon(node.run_ticks)
        await nursery.start(
            partial(
                trio.serve_listeners,
                partial(handle_connection, handler=handler, max_request_bytes=max_request_bytes),
                listeners,
            )
        )
        log.info("kwire controller %d serving on %s:%d", node.settings.node_id, host, bound_port)
        task_status.started(bound_port)
