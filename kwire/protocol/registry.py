"""What kwire knows of each API: its messages, versions, listeners and header versions.

The table itself (`kwire.protocol.messages.index.APIS`) is generated from the schemas.
It holds only data: each API names the module of its messages, which is imported the
first time `request` or `response` is read. Versions, listeners and header versions
(all ApiVersions needs) never import a message module, so importing the server does not
pay for the message modules of the ~50 APIs a controller never serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

from kwire.protocol._codec import Message

MESSAGES_PACKAGE = "kwire.protocol.messages"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSpec:
    """One API of Kafka's protocol (Kafka's `ApiKeys` entry, from its JSON schemas).

    `module` is the name of the generated module under `kwire.protocol.messages` holding
    `<name>Request` and `<name>Response`; `request` and `response` import it on first use
    and are then the very classes that module defines.
    """

    api_key: int
    name: str
    module: str
    lowest_version: int
    highest_version: int
    first_flexible_version: int | None
    listeners: frozenset[str]
    latest_version_unstable: bool
    _classes: list[type[Message]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def request(self) -> type[Message]:
        classes = self._classes or self._load()
        return classes[0]

    @property
    def response(self) -> type[Message]:
        classes = self._classes or self._load()
        return classes[1]

    def _load(self) -> list[type[Message]]:
        module = import_module(f"{MESSAGES_PACKAGE}.{self.module}")
        request = getattr(module, f"{self.name}Request")
        response = getattr(module, f"{self.name}Response")
        # Both at once, so that no reader sees one class loaded and not the other.
        self._classes[:] = [request, response]
        return self._classes

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
