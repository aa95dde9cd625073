"""The errors of the protocol layer: one type for bad bytes, one for unencodable values."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base of every error the protocol layer raises on bad input."""


class UnsupportedVersionError(ProtocolError):
    """A message was asked for at a version its schema does not define."""


class UnknownApiError(ProtocolError):
    """A request named an API key this release does not define."""


class DecodeError(ProtocolError):
    """Bytes that are not a valid message: truncated, hostile lengths, bad UTF-8, ...

    `message` and `version` are filled in by the top-level decode; `field` is the path of
    the field being read (`topics[].partitions[].partition_index`), `offset` the byte
    offset in the buffer where it failed.
    """

    def __init__(
        self,
        field: str,
        offset: int,
        reason: str,
        message: str | None = None,
        version: int | None = None,
    ) -> None:
        super().__init__(field, offset, reason, message, version)
        self.field = field
        self.offset = offset
        self.reason = reason
        self.message = message
        self.version = version

    def located(self, message: str, version: int) -> DecodeError:
        if self.message is None:
            self.message = message
            self.version = version
        return self

    def __str__(self) -> str:
        where = f"{self.message} v{self.version}" if self.message else "message"
        return f"{where}: field {self.field} at offset {self.offset}: {self.reason}"


class EncodeError(ProtocolError):
    """A message holds values its version cannot carry."""

    def __init__(
        self, field: str, reason: str, message: str | None = None, version: int | None = None
    ) -> None:
        super().__init__(field, reason, message, version)
        self.field = field
        self.reason = reason
        self.message = message
        self.version = version

    def located(self, message: str, version: int) -> EncodeError:
        if self.message is None:
            self.message = message
            self.version = version
        return self

    def __str__(self) -> str:
        where = f"{self.message} v{self.version}" if self.message else "message"
        return f"{where}: field {self.field} {self.reason}"
