"""A small Trio client that speaks Kafka's protocol to a controller: for tests and tools."""

from __future__ import annotations

import trio

from kwire.protocol._codec import Message
from kwire.protocol.framing import FrameBuffer, decode_response, encode_request, size_prefixed
from kwire.protocol.messages.headers import RequestHeader


class KafkaClient:
    """One connection; `request` sends and waits for the matching response."""

    def __init__(self, stream: trio.SocketStream, client_id: str = "kwire-client") -> None:
        self.stream = stream
        self.client_id = client_id
        self.correlation_id = 0
        self.frames = FrameBuffer()

    @classmethod
    async def connect(cls, host: str, port: int, client_id: str = "kwire-client") -> KafkaClient:
        return cls(await trio.open_tcp_stream(host, port), client_id)

    async def send_raw(self, payload: bytes) -> None:
        await self.stream.send_all(size_prefixed(payload))

    async def receive_frame(self) -> bytes | None:
        """The next whole frame, or None when the server closed the connection."""
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                return frame
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.frames.feed(data)

    async def request(self, body: Message, version: int) -> Message:
        self.correlation_id += 1
        api_key = body.API_KEY  # type: ignore[attr-defined]
        header = RequestHeader(
            request_api_key=api_key,
            request_api_version=version,
            correlation_id=self.correlation_id,
            client_id=self.client_id,
        )
        await self.send_raw(encode_request(header, body))
        frame = await self.receive_frame()
        if frame is None:
            raise ConnectionError("the server closed the connection")
        response_header, response = decode_response(frame, api_key, version)
        if response_header.correlation_id != self.correlation_id:
            raise ConnectionError(
                f"correlation id {response_header.correlation_id}, expected {self.correlation_id}"
            )
        return response

    async def aclose(self) -> None:
        await self.stream.aclose()
