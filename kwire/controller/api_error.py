"""The one exception type controller operations raise to reject a request."""

from __future__ import annotations

from kwire.protocol.error_codes import ErrorCode


class ApiError(Exception):
    """A request failed with a Kafka error code; ``message`` is what Kafka would send
    (``None`` where Kafka sends no message, e.g. in responses without a message field)."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name
