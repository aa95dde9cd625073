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


# QuorumController.MAX_RECORDS_PER_USER_OP (KAFKA-14996): the most records one user
# operation may produce.
MAX_RECORDS_PER_USER_OP = 10_000


class OperationFailed(Exception):
    """The whole operation failed and wrote nothing: every item of the request gets
    ``code`` and ``message`` (Kafka's ``getErrorResponse`` for the request), as when an
    exception escapes a QuorumController write event."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def excessively_large_operation() -> OperationFailed:
    """What Kafka answers when an operation would produce more than
    MAX_RECORDS_PER_USER_OP records (BoundedListTooLongException, treated as a policy
    violation)."""
    return OperationFailed(
        ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation."
    )
