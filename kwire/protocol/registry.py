"""What kwire knows of each API: its messages, versions, listeners and header versions.

The table itself (`kwire.protocol.messages.index.APIS`) is generated from the schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

from kwire.protocol._codec import Message


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSpec:
    api_key: int
    name: str
    request: type[Message]
    response: type[Message]
    lowest_version: int
    highest_version: int
    first_flexible_version: int | None
    listeners: frozenset[str]
    latest_version_unstable: bool

    def is_flexible(self, version: int) -> bool:
        return self.first_flexible_version is not None and version >= self.first_flexible_version

    def supports(self, version: int) -> bool:
        return self.lowest_version <= version <= self.highest_version

    def request_header_version(self, version: int) -> int:
        # ControlledShutdown v0 predates the client id in the request header.
        if self.api_key == 7 and version == 0:
            return 0
        return 2 if self.is_flexible(version) else 1

    def response_header_version(self, version: int) -> int:
        # ApiVersionsResponse always has a v0 header, so that any client can read the
        # answer to a version it sent too new (KIP-511).
        if self.api_key == 18:
            return 0
        return 1 if self.is_flexible(version) else 0
