"""The single error type raised for malformed record data."""

from __future__ import annotations


class CorruptRecordError(ValueError):
    """Record data is malformed: truncated, bad CRC, bad magic, bad lengths or varints.

    ``offset`` is the byte position (in the buffer being parsed) where the problem was
    found, or ``None`` when no single position applies; ``reason`` is the bare message.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}")


class IncompleteBatchError(CorruptRecordError):
    """The buffer ends before the batch does (a torn write or a partial fetch tail)."""
