"""The latest committed metadata records, for the status page (`kwire.status.listener`).

A bounded ring the node fills as records are applied, read by `/status.json`. Not Kafka's:
Kafka's controller keeps no such list (its closest view is `kafka-dump-log`); kwire keeps
the last `capacity` committed records, each as (offset, time, record).

How it is fed (one call at each place where the node applies or commits records):
- the active controller applies its records as it appends them, before they commit:
  `appended(records, end_offset, time_ms)` keeps them aside (a reference to the list the
  controller built, no copy), `committed(offset)` moves those below the high watermark
  into the ring, and `reverted()` forgets them when the controller goes back to the
  committed offset (leadership lost, a refused append);
- a standby (or a new leader catching up, or start-up) replays committed batches:
  `replayed(entries, time_ms)`.
Only the last `capacity` records of each call are looked at, so a start-up replay of a
million records costs one short slice per batch. NoOpRecords (written every
`metadata.max.idle.interval.ms`) are left out: they would push every event out of the
ring within seconds.

Metadata transactions (KIP-868) show as the image publishes them
(kwire.controller.transactions.TransactionGate, fed only committed records): a
transaction's records enter the ring once its EndTransactionRecord is committed, an
aborted transaction's never (they were never part of the image), and the Begin, End and
Abort markers never. A transaction open across feeds waits in the gate (its newest
`capacity` records); a revert does not touch it, since it holds only committed records.

`describe_record` gives one line per record, e.g. "BrokerRegistrationChange broker 2
fenced" or "PartitionChange t-0 leader 2 isr [1, 2]"; records hold only what changed, so a
line says the new leader, not the previous one. Config values and credentials are never
shown (a value may be a password).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from operator import attrgetter, itemgetter
from uuid import UUID

from kwire.controller.records import RecordAndVersion
from kwire.controller.transactions import TransactionGate, holds_markers
from kwire.log.metadata_reader import MetadataEntry
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.protocol.messages.metadata_records.unfence_broker_record import UnfenceBrokerRecord
from kwire.protocol.messages.metadata_records.unregister_broker_record import (
    UnregisterBrokerRecord,
)

DEFAULT_CAPACITY = 50
_RECORD = attrgetter("record")  # of a RecordAndVersion
_ENTRY_RECORD = itemgetter(1)  # of an (offset, record, version) entry
NO_CHANGE = -2  # PartitionChangeRecord.leader: the leader did not change
NO_LEADER = -1
# BrokerRegistrationChangeRecord.fenced (Kafka's BrokerRegistrationFencingChange)
FENCE, UNFENCE = 1, -1


@dataclass(frozen=True, slots=True)
class MetadataEvent:
    """One committed record: its log offset, the time of its batch (ms since the epoch)."""

    offset: int
    time_ms: int
    record: Message


@dataclass(slots=True)
class _PendingWrite:
    start: int  # the offset of records[0]
    time_ms: int
    records: Sequence[RecordAndVersion]


class MetadataEvents:
    """The last `capacity` committed metadata records (NoOps aside), oldest first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._ring: deque[MetadataEvent] = deque(maxlen=capacity)
        self._pending: deque[_PendingWrite] = deque()
        # Committed records pass through it, whichever way they came (a transaction a
        # standby replayed may be aborted by the record it writes once it leads).
        self._gate: TransactionGate[MetadataEvent] = TransactionGate(capacity)

    def events(self) -> list[MetadataEvent]:
        return list(self._ring)

    def appended(self, records: Sequence[RecordAndVersion], end_offset: int, time_ms: int) -> None:
        """The active controller applied `records` and appended them, ending at `end_offset`
        (exclusive); they enter the ring once committed."""
        if records:
            self._pending.append(_PendingWrite(end_offset - len(records), time_ms, records))

    def committed(self, offset: int) -> None:
        """Every offset below `offset` is committed."""
        pending = self._pending
        while pending and pending[0].start < offset:
            write = pending[0]
            count = min(len(write.records), offset - write.start)
            records = write.records
            self._add(
                self._gate.admit(
                    count,
                    partial(_written_record, records),
                    partial(_written_event, write, records),
                    markers=holds_markers(map(_RECORD, islice(records, count))),
                )
            )
            if count == len(write.records):
                pending.popleft()
            else:
                write.records = write.records[count:]
                write.start += count

    def reverted(self) -> None:
        """The records applied but not committed were taken back."""
        self._pending.clear()

    def replayed(
        self, entries: Sequence[MetadataEntry], time_ms: int, *, markers: bool | None = None
    ) -> None:
        """Committed (offset, record, version) entries of one batch, replayed. `markers`:
        whether they hold a metadata transaction's marker, when the caller knows (the
        ImageLoader that applied them counted them); None: they are looked at."""
        if markers is None:
            markers = holds_markers(map(_ENTRY_RECORD, entries))

        def event(i: int) -> MetadataEvent:
            offset, record, _ = entries[i]
            return MetadataEvent(offset, time_ms, record)

        self._add(self._gate.admit(len(entries), lambda i: entries[i][1], event, markers=markers))

    def _add(self, events: Iterable[MetadataEvent]) -> None:
        self._ring.extend(e for e in events if type(e.record) is not NoOpRecord)


def _written_record(records: Sequence[RecordAndVersion], i: int) -> Message:
    return records[i].record


def _written_event(
    write: _PendingWrite, records: Sequence[RecordAndVersion], i: int
) -> MetadataEvent:
    return MetadataEvent(write.start + i, write.time_ms, records[i].record)


def describe_record(record: Message, topic_name: Callable[[UUID], str | None]) -> tuple[str, str]:
    """(record type without "Record", one line naming its key fields). `topic_name` gives
    a topic id's name, None for a topic no longer there (its id is shown)."""
    kind = type(record).__name__.removesuffix("Record")

    def topic(topic_id: UUID) -> str:
        return topic_name(topic_id) or str(topic_id)

    def partition(topic_id: UUID, partition_id: int) -> str:
        return f"{topic(topic_id)}-{partition_id}"

    match record:
        case RegisterBrokerRecord():
            words = f"broker {record.broker_id} epoch {record.broker_epoch}" + (
                " fenced" if record.fenced else " unfenced"
            )
        case UnregisterBrokerRecord() | FenceBrokerRecord() | UnfenceBrokerRecord():
            broker = record.broker_id if isinstance(record, UnregisterBrokerRecord) else record.id
            words = f"broker {broker}"
        case BrokerRegistrationChangeRecord():
            changes = {FENCE: ["fenced"], UNFENCE: ["unfenced"]}.get(record.fenced, [])
            if record.in_controlled_shutdown:
                changes.append("in controlled shutdown")
            words = f"broker {record.broker_id} " + (", ".join(changes) or "changed")
        case TopicRecord():
            words = f"{record.name} id {record.topic_id}"
        case RemoveTopicRecord():
            words = topic(record.topic_id)
        case PartitionRecord():
            words = (
                f"{partition(record.topic_id, record.partition_id)} leader {record.leader} "
                f"isr {list(record.isr)} replicas {list(record.replicas)}"
            )
        case PartitionChangeRecord():
            parts = [partition(record.topic_id, record.partition_id)]
            if record.leader != NO_CHANGE:
                parts.append(
                    f"leader {record.leader}" if record.leader != NO_LEADER else "no leader"
                )
            if record.isr is not None:
                parts.append(f"isr {list(record.isr)}")
            if record.replicas is not None:
                parts.append(f"replicas {list(record.replicas)}")
            words = " ".join(parts)
        case ConfigRecord():
            target = record.resource_name or "(default)"
            # Never the value: it may be a password (DescribeConfigs hides sensitive ones).
            words = f"{target} {record.name} " + ("deleted" if record.value is None else "set")
        case FeatureLevelRecord():
            words = f"{record.name}={record.feature_level}"
        case RegisterControllerRecord():
            words = f"controller {record.controller_id}"
        case _:
            words = ""
    return kind, f"{kind} {words}".rstrip()
