"""The shapes every controller operation shares: its context, what it has applied, and
its result (records to append, the response to send once they commit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kwire.controller.records import RecordAndVersion
from kwire.protocol._codec import Message


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    api_version: int
    client_id: str = ""
    principal: str = "User:ANONYMOUS"
    listener_name: str = "CONTROLLER"
    envelope: bool = False  # forwarded by a broker inside an EnvelopeRequest
    # The client's address as text (for ACL host matching; forwarded: the envelope's), the
    # security protocol of this hop (Kafka's SecurityProtocol name), and whether the
    # principal authenticated with a delegation token (these three decide who may
    # create, renew and expire delegation tokens).
    client_host: str = ""
    security_protocol: str = "PLAINTEXT"
    token_authenticated: bool = False
    # Made by this node for itself (its own ControllerRegistration), not received from a
    # peer: no authorization applies, as to Kafka's in-process controller paths.
    internal: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerResult:
    """Records to append from the offset given to the call, in order, and the response to
    send once they are committed (at once if there are none). ``atomic`` records must go
    in one batch. ``values`` holds each record framed as it goes into a batch
    (MetadataRecordSerde), encoded once while the controller measured them.

    ``writes`` splits the records into consecutive writes of that many records each, as
    Kafka's controller makes one write event of each (e.g. one per broker fenced on
    session timeout); each write starts its own batch. Empty: the result is one write."""

    records: list[RecordAndVersion]
    response: Message | None
    atomic: bool = True
    values: list[bytes] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Applied:
    """What one operation has applied so far: the records and their framed values, in
    order, from the operation's first offset (``QuorumController.apply`` adds to it)."""

    records: list[RecordAndVersion] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)

    def end_write(self) -> None:
        """Close the write holding the records applied since the previous one (if any):
        they go to the log apart from those that follow (``ControllerResult.writes``)."""
        count = len(self.records) - sum(self.writes)
        if count:
            self.writes.append(count)

    def result(self, response: Message | None, *, atomic: bool = True) -> ControllerResult:
        writes = self.writes
        if writes:
            self.end_write()
            if len(writes) == 1:
                writes = []
        return ControllerResult(
            records=self.records,
            values=self.values,
            response=response,
            atomic=atomic,
            writes=writes,
        )
