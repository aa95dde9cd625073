"""Frames on the wire: a 4-byte size, then a header, then a message body.

Sans-IO: `FrameBuffer` takes bytes as they arrive and hands back whole frames;
`decode_request` / `encode_response` and friends turn frames into headers and messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kwire.protocol._codec import Message
from kwire.protocol.errors import (
    DecodeError,
    ProtocolError,
    UnknownApiError,
    UnsupportedVersionError,
)
from kwire.protocol.messages.headers import RequestHeader, ResponseHeader
from kwire.protocol.messages.index import APIS
from kwire.protocol.registry import ApiSpec

_SIZE = struct.Struct(">i")
_KEY_AND_VERSION = struct.Struct(">hh")
_KEY_VERSION_CORRELATION = struct.Struct(">hhi")

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes


class FrameTooLargeError(ProtocolError):
    """A size prefix above the limit: the peer is broken or hostile."""


def api_for(api_key: int) -> ApiSpec:
    try:
        return APIS[api_key]
    except KeyError:
        raise UnknownApiError(f"unknown API key {api_key}") from None


@dataclass(frozen=True, slots=True)
class RequestPreamble:
    """What the first eight bytes of any request say, whatever its version."""

    api_key: int
    api_version: int
    correlation_id: int


def peek_request(frame: bytes | memoryview) -> RequestPreamble:
    """Read api key, version and correlation id, which every request header starts with."""
    if len(frame) < _KEY_VERSION_CORRELATION.size:
        raise DecodeError(
            "request_api_key", 0, f"a request needs at least 8 bytes, got {len(frame)}"
        )
    return RequestPreamble(*_KEY_VERSION_CORRELATION.unpack_from(frame, 0))


# (api key << 16 | version) -> (header version, body class), filled on each pair's first
# request: building it whole would import every message module at start-up.
_REQUEST_DECODERS: dict[int, tuple[int, type[Message]]] = {}


def _request_decoder(api_key: int, api_version: int) -> tuple[int, type[Message]] | None:
    """The (header version, body class) of a request, or None if no such API or version."""
    api = APIS.get(api_key)
    if api is None or api_version < 0 or not api.supports(api_version):
        return None
    entry = (api.request_header_version(api_version), api.request)
    _REQUEST_DECODERS[api_key << 16 | api_version] = entry
    return entry


def decode_request(frame: bytes | memoryview) -> tuple[RequestHeader, Message]:
    """Decode a request frame (without its size prefix) into header and body.

    Raises UnknownApiError or UnsupportedVersionError (which callers answer with Kafka's
    error codes) or DecodeError.
    """
    buf = frame if type(frame) is bytes else memoryview(frame)
    try:
        api_key, api_version = _KEY_AND_VERSION.unpack_from(buf, 0)
    except struct.error:
        raise DecodeError(
            "request_api_key", 0, f"a request needs at least 4 bytes, got {len(buf)}"
        ).located("RequestHeader", 0) from None
    decoders = _REQUEST_DECODERS.get(api_key << 16 | api_version) or _request_decoder(
        api_key, api_version
    )
    if decoders is None:
        api = api_for(api_key)
        raise UnsupportedVersionError(
            f"{api.name} has no version {api_version} "
            f"(valid: {api.lowest_version}-{api.highest_version})"
        )
    header_version, body_class = decoders
    name = body_class.NAME
    try:
        header, pos = RequestHeader._READERS[header_version](buf, 0)
    except DecodeError as exc:
        raise exc.located("RequestHeader", api_version) from None
    try:
        body, end = body_class._READERS[api_version](buf, pos)
    except DecodeError as exc:
        raise exc.located(name, api_version) from None
    if end != len(buf):
        raise DecodeError(
            "(end)", end, f"{len(buf) - end} trailing bytes after the request"
        ).located(name, api_version)
    return header, body


def encode_request(header: RequestHeader, body: Message) -> bytes:
    """Encode header and body (no size prefix); the header says the API and version."""
    api = api_for(header.request_api_key)
    version = header.request_api_version
    out = bytearray()
    header.write(out, api.request_header_version(version))
    body.write(out, version)
    return bytes(out)


def decode_response(
    frame: bytes | memoryview, api_key: int, api_version: int
) -> tuple[ResponseHeader, Message]:
    """Decode a response frame; the caller knows which request it answers."""
    buf = frame if type(frame) is bytes else memoryview(frame)
    api = api_for(api_key)
    header, pos = ResponseHeader.read(buf, 0, api.response_header_version(api_version))
    body, end = api.response.read(buf, pos, api_version)
    if end != len(buf):
        raise DecodeError(
            "(end)", end, f"{len(buf) - end} trailing bytes after the response"
        ).located(api.response.NAME, api_version)
    return header, body


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Message) -> bytes:
    api = api_for(api_key)
    out = bytearray()
    ResponseHeader(correlation_id).write(out, api.response_header_version(api_version))
    body.write(out, api_version)
    return bytes(out)


def size_prefixed(payload: bytes) -> bytes:
    return _SIZE.pack(len(payload)) + payload


class FrameBuffer:
    """Collects bytes from a stream and yields whole size-prefixed frames.

    A negative size or one above `max_frame_bytes` raises FrameTooLargeError before any
    of it is buffered, so a hostile prefix cannot make us allocate.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next whole frame without its size prefix, or None until more bytes come."""
        if len(self._buffer) < 4:
            return None
        (size,) = _SIZE.unpack_from(self._buffer, 0)
        if size < 0 or size > self.max_frame_bytes:
            raise FrameTooLargeError(
                f"frame size {size} is outside 0..{self.max_frame_bytes} (socket.request.max.bytes)"
            )
        if len(self._buffer) < 4 + size:
            return None
        frame = bytes(self._buffer[4 : 4 + size])
        del self._buffer[: 4 + size]
        return frame

    @property
    def buffered(self) -> int:
        return len(self._buffer)
