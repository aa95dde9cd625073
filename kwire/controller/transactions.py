"""Metadata transactions (KIP-868), as Kafka 3.9 replays and ends them.

A metadata transaction is the records between a BeginTransactionRecord and its
EndTransactionRecord (they take effect together) or AbortTransactionRecord (they take no
effect). Kafka 3.9 writes them for its bootstrap records from metadata.version 3.6-IV1
and during a ZooKeeper migration; a log kwire takes over may end inside one, cut by a
controller failover.

Theory of operation. kwire has one image where Kafka has two views of the log, and gives
each reader the view Kafka gives it:

- The controller (Kafka's OffsetControlManager) applies a transaction's records as they
  come and, on an abort, reverts to the offset before the Begin. kwire's image does the
  same through its undo log (``UndoLog.hold`` / ``roll_back_to``, see kwire.controller.undo):
  the changes of an open transaction are noted even on a committed replay, and an abort
  takes them back. Its last stable offset is the offset before an open transaction's
  Begin (``last_stable_offset``).
- Everything published from the image (Kafka's MetadataLoader: brokers' images,
  snapshots, kafka-metadata-shell) sees a transaction only once it ends: no snapshot is
  taken while one is open (kwire.server.snapshots), and the offline readers (kwire shell,
  kwire history) show a log that ends inside one without its records
  (``discard_open_transaction``), as Kafka's loader publishes nothing of it. A reader of
  committed records one by one (the status page's event ring) passes them through a
  ``TransactionGate``: a transaction's records come out at its End, an aborted one's
  never, the markers never.
- A new active controller whose log ends inside a transaction writes, before anything
  else, an AbortTransactionRecord with the reason "Controller failover", in an atomic
  batch of its own (ActivationRecordsGenerator.recordsForNonEmptyLog); a metadata.version
  below 3.6-IV1 cannot abort it and the activation fails, as Kafka's does.

Errors are Kafka's controller's messages: a Begin inside an open transaction, an End or
Abort outside one (ReplayError), a marker inside a snapshot.

Known difference: Kafka 3.9's MetadataBatchLoader keeps an aborted transaction's records
in its pending delta when more records follow the abort before the next flush (same
commit), and then publishes them; kwire follows the controller, for which an abort always
discards them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from kwire.controller.records import RecordAndVersion
from kwire.metadata_version import MetadataVersion
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.end_transaction_record import (
    EndTransactionRecord,
)

if TYPE_CHECKING:
    from kwire.controller.image import MetadataImage
    from kwire.protocol._codec import Message

E = TypeVar("E")

__all__ = [
    "FAILOVER_REASON",
    "MARKERS",
    "TransactionError",
    "TransactionGate",
    "activation_abort",
    "begin_while_open",
    "discard_open_transaction",
    "holds_markers",
    "last_stable_offset",
    "marker_in_snapshot",
    "no_open_transaction",
]

# The reason a new active controller gives for aborting the transaction it found open.
FAILOVER_REASON = "Controller failover"
MARKERS = frozenset({BeginTransactionRecord, EndTransactionRecord, AbortTransactionRecord})


class TransactionError(RuntimeError):
    """A new active controller cannot end the open transaction (Kafka's activation
    RuntimeException, fatal to its controller)."""


def begin_while_open(offset: int, start: int) -> str:
    return (
        f"Can't replay a BeginTransactionRecord at {offset} because the transaction at "
        f"{start} was never closed."
    )


def no_open_transaction(record: object, offset: int) -> str:
    name = type(record).__name__
    article = "an" if name[0] in "AEIOU" else "a"
    return f"Can't replay {article} {name} at {offset} because there is no open transaction."


def marker_in_snapshot(record: object) -> str:
    return f"{type(record).__name__} cannot appear within a snapshot."


def last_stable_offset(image: MetadataImage, committed_offset: int) -> int:
    """Kafka's OffsetControlManager.lastStableOffset for a committed offset (the last
    committed record's): the offset before an open transaction's Begin, if lower."""
    start = image.transaction_start_offset
    return committed_offset if start < 0 else min(start - 1, committed_offset)


def activation_abort(image: MetadataImage, version: MetadataVersion) -> list[RecordAndVersion]:
    """What a new active controller writes first about transactions: nothing when none is
    open, else the AbortTransactionRecord of ActivationRecordsGenerator (reason
    "Controller failover"). ``version`` is the metadata.version the controller replayed
    (records of the open transaction included, as Kafka's FeatureControlManager holds
    them). Raises TransactionError with Kafka's message when it is below 3.6-IV1."""
    start = image.transaction_start_offset
    if start < 0:
        return []
    if not version.supports_metadata_transactions:
        raise TransactionError(
            f"Detected in-progress transaction at offset {start}, but the metadata.version "
            f"{version.version} does not support transactions. Cannot continue."
        )
    return [RecordAndVersion(AbortTransactionRecord(reason=FAILOVER_REASON), 0)]


def discard_open_transaction(image: MetadataImage) -> int:
    """Take back the records of the transaction ``image`` ends inside (an offline
    reader's view: Kafka's loader never publishes them); returns the offset of its
    Begin, or -1 when none is open. The image is then the one published before the
    Begin, its last applied offset the one before the Begin."""
    start = image.transaction_start_offset
    if start < 0:
        return -1
    image.undo.roll_back_to(start - 1)
    image.last_applied_offset = start - 1
    return start


def holds_markers(records: Iterable[Message]) -> bool:
    """Whether ``records`` hold a transaction marker (one pass over their types, in C
    when ``records`` is a C iterator such as ``map(itemgetter(1), entries)``)."""
    return not MARKERS.isdisjoint(map(type, records))


class TransactionGate(Generic[E]):
    """Committed records as Kafka's MetadataLoader publishes them, for a reader that
    keeps only the newest ``keep`` of them: a record outside a metadata transaction at
    once, a transaction's records when its EndTransactionRecord comes, an aborted
    transaction's never, and the three markers never (they change nothing).

    ``admit(count, record_at, event, markers=...)`` takes ``count`` committed records
    (``record_at(i)``, in offset order, across calls) and returns what ``event(i)`` makes
    of each published by them, oldest first: all of them, except that those more than
    ``keep`` places before the end of the call may be left out (``event`` is not called
    for them). ``markers`` says whether the records hold a transaction marker (the caller
    knows, e.g. from ``ImageLoader.transaction_markers``, or asks ``holds_markers``);
    without one only the last ``keep`` records are looked at, so that a start-up replay
    of a million records stays cheap. An open transaction's events wait here (its newest
    ``keep``) until it ends, across calls. An End or Abort with none open (the records
    began inside the transaction) publishes nothing more.
    """

    __slots__ = ("keep", "_held")

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.keep = keep
        # The open transaction's newest events; None while no transaction is open.
        self._held: deque[E] | None = None

    @property
    def transaction_open(self) -> bool:
        return self._held is not None

    def admit(
        self,
        count: int,
        record_at: Callable[[int], Message],
        event: Callable[[int], E],
        *,
        markers: bool,
    ) -> list[E]:
        held = self._held
        if not markers:
            tail = [event(i) for i in range(max(0, count - self.keep), count)]
            if held is None:
                return tail
            held.extend(tail)
            return []
        published: list[E] = []
        for i in range(count):
            kind = type(record_at(i))
            if kind is BeginTransactionRecord:
                held = deque(maxlen=self.keep)
            elif kind is EndTransactionRecord:
                if held is not None:
                    published.extend(held)
                held = None
            elif kind is AbortTransactionRecord:
                held = None
            elif held is not None:
                held.append(event(i))
            else:
                published.append(event(i))
        self._held = held
        return published
