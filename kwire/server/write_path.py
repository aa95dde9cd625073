"""The write path: records into the metadata log, and waiting for them to commit.

One path for every write (`WritePath.append_result`): frame the records, build batches
as Kafka's QuorumController splits them, append, fsync, then tell raft the log is durable
(`on_flushed`) and wake whoever waits for log growth. Followers append the leader's
batches as they come (`append_as_follower`, fsynced at once, as KafkaRaftClient's
appendAsFollower flushes before the next Fetch). The high watermark (`commit`) releases
the writers waiting in `wait_committed`; a write taken back before it committed
(`abandon`: an append the log refused, or leadership lost) fails them with
NOT_CONTROLLER, as Kafka fails the writes its controller renounced.

Group commit (Kafka's BatchAccumulator drain, then one flushLeaderLog per drain): while
`run_flusher` runs, the leader's appends are written without fsync and the flusher makes
them durable with one fsync for everything appended so far, in the driver's turn after
every request already queued there; only then is `on_flushed(end)` called, so raft never
counts this node's copy of an offset before its fsync. Nothing waits on a timer: a lone
write is flushed at the end of the scheduling turn in which it was appended (the
flusher yields once, so that tasks runnable now can append first), and writes that arrive
while a flush is queued or running share the next one. One flush covers at most
MAX_BATCH_SIZE_BYTES (8 MiB, Kafka's batch limit) of appends: an append that reaches the
bound is flushed at once. Without the flusher (a node driven in-process) every append
fsyncs on its own. `controller.quorum.append.linger.ms` is therefore not honoured: a
linger would add its whole length to every lone write.

Reads that changed nothing need not wait for any fsync when what they answer is already
committed: `broker_settled_offset` is the end of the newest uncommitted write that
changed a broker's registration (a BrokerHeartbeat that writes nothing waits only for it).

An I/O error on the log is fatal, as in Kafka (the fault handler halts the process);
a batch the log refuses before writing (over the size limit) raises AppendFailed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import trio

from kwire.controller.controller import ControllerResult
from kwire.controller.records import RecordAndVersion
from kwire.log import MetadataLog
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.unfence_broker_record import UnfenceBrokerRecord
from kwire.protocol.messages.metadata_records.unregister_broker_record import (
    UnregisterBrokerRecord,
)
from kwire.records import (
    MAX_BATCH_SIZE_BYTES,
    RECORD_BATCH_OVERHEAD,
    Record,
    build_batch,
    encode_batch,
    frame_metadata_record,
    plain_record_size,
)
from kwire.server.heap import freeze_heap
from kwire.server.snapshots import SnapshotDriver

log = logging.getLogger("kwire.node")

# Kafka's QuorumController splits a non-atomic result into batches of at most this many
# records (maxRecordsPerBatch); each batch also stays within the raft batch size.
MAX_RECORDS_PER_BATCH = 10_000

FaultHandler = Callable[[str, BaseException], NoReturn]
# How the flusher runs a step in the raft driver's turn (`RaftDriver.call`).
DriverCall = Callable[[Callable[[int], None]], Awaitable[None]]


def changed_broker(record: Message) -> int | None:
    """The broker whose registration a metadata record changes, None for other records."""
    match record:
        case (
            RegisterBrokerRecord(broker_id=broker_id)
            | UnregisterBrokerRecord(broker_id=broker_id)
            | BrokerRegistrationChangeRecord(broker_id=broker_id)
        ):
            return int(broker_id)
        case FenceBrokerRecord(id=broker_id) | UnfenceBrokerRecord(id=broker_id):
            return int(broker_id)
    return None


_BROKER_RECORD_TYPES = frozenset(
    {
        RegisterBrokerRecord,
        UnregisterBrokerRecord,
        BrokerRegistrationChangeRecord,
        FenceBrokerRecord,
        UnfenceBrokerRecord,
    }
)


@dataclass(slots=True)
class WriteStatistics:
    """Counters since the node started: leader batches appended, follower appends,
    fsyncs of the log made by the write path (flushes of a rolled segment aside), and
    heap freezes (see `HEAP_FREEZE_BYTES`)."""

    leader_batches: int = 0
    follower_appends: int = 0
    fsyncs: int = 0
    heap_freezes: int = 0


# The image grows with the log, and CPython's full collection walks every tracked object:
# during a large CreateTopics burst it ran about every 25% of growth, each time over the
# whole image (~60 ms at 250,000 partitions, ~4x that at 1,000,000), holding the loop
# (heartbeats wait unread). So once this many bytes of records were appended since the
# last freeze, the next commit collects what is not frozen (all of it young, so cheap)
# and freezes the survivors out of the collector's reach (gc.freeze), as the start-up
# load already does: full collections stay as cheap as for a small image.
HEAP_FREEZE_BYTES = 4 * 1024 * 1024


class AppendFailed(Exception):
    """A write the log refused or that was taken back before it committed: the requests
    waiting for it get ``code`` (Kafka: the controller's failed write event)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame_records(records: Sequence[RecordAndVersion]) -> list[bytes]:
    return [
        frame_metadata_record(item.api_key, item.version, item.record.encode(item.version))
        for item in records
    ]


class WritePath:
    """Appends to `log` and tracks what is committed.

    `on_flushed(end_offset, now_ms)` is called after every durable append (the raft
    driver hands it to the core); `on_refused(reason)` when the log refused a batch
    before writing anything (the node reverts its controller, then this raises
    AppendFailed)."""

    def __init__(
        self,
        metadata_log: MetadataLog,
        snapshots: SnapshotDriver,
        *,
        fault_handler: FaultHandler,
        on_flushed: Callable[[int, int], None],
        on_refused: Callable[[str], None],
    ) -> None:
        self.log = metadata_log
        self.snapshots = snapshots
        self.fault_handler = fault_handler
        self.on_flushed = on_flushed
        self.on_refused = on_refused
        self.committed_offset = 0  # the high watermark: everything below is committed
        # Bumped whenever uncommitted writes are taken back; a waiter whose write was
        # appended under an older generation and is not committed was abandoned.
        self.write_generation = 0
        self._log_grew = trio.Event()
        self._committed = trio.Event()
        self._interrupts = 0  # bumped to end every parked fetch at once
        # Group commit: on while `run_flusher` runs; bytes appended since the last fsync.
        self.group_commit = False
        self._unflushed_bytes = 0
        self._flush_due = trio.Event()
        # broker id -> end offset of the newest uncommitted write that changed its
        # registration (entries at or below the high watermark are dropped at commit).
        self._broker_changes: dict[int, int] = {}
        self.stats = WriteStatistics()
        self._bytes_since_freeze = 0  # bytes appended since the heap was last frozen

    # -- appending ----------------------------------------------------------------------

    def append_result(self, result: ControllerResult, epoch: int, now_ms: int) -> int:
        """Append what the controller applied for ``result`` (each of its ``writes`` apart;
        atomic results as one batch, others split as Kafka splits them); returns the
        offset after the last record. Raises AppendFailed when the log refuses them."""
        if not result.records:
            return self.log.end_offset
        values = result.values
        if len(values) != len(result.records):
            values = frame_records(result.records)
        if not result.writes:
            end_offset = self.append_values(values, epoch, now_ms, atomic=result.atomic)
        else:
            # One write per run of records (e.g. one per fenced broker), each its own batch.
            start, end_offset = 0, self.log.end_offset
            for count in result.writes:
                end_offset = self.append_values(
                    values[start : start + count], epoch, now_ms, atomic=result.atomic
                )
                start += count
        self._note_broker_changes(result.records, end_offset)
        return end_offset

    def _note_broker_changes(self, records: Sequence[RecordAndVersion], end_offset: int) -> None:
        for item in records:
            if type(item.record) in _BROKER_RECORD_TYPES:
                broker_id = changed_broker(item.record)
                if broker_id is not None:
                    self._broker_changes[broker_id] = end_offset

    def broker_settled_offset(self, broker_id: int) -> int:
        """The offset a read of `broker_id`'s registration must see committed: the end of
        the newest uncommitted write that changed it, else the high watermark (nothing to
        wait for)."""
        return max(self._broker_changes.get(broker_id, 0), self.committed_offset)

    def append_values(
        self, values: Sequence[bytes], epoch: int, now_ms: int, *, atomic: bool
    ) -> int:
        """Append framed metadata records; see ``append_result``."""
        if not values:
            return self.log.end_offset
        end_offset = self.log.end_offset
        for chunk in [values] if atomic else split_for_batches(values):
            batch = build_batch(
                [Record(offset_delta=i, value=value) for i, value in enumerate(chunk)],
                base_timestamp=now_ms,
            )
            end_offset = self.append_batch(encode_batch(batch), epoch, now_ms)
        return end_offset

    def append_batch(self, data: bytes, epoch: int, now_ms: int) -> int:
        """Append one encoded batch as the leader of `epoch`; returns the new end offset."""
        # Durable only after its fsync (here, or the flusher's): only then may raft count
        # this node's copy towards the high watermark.
        try:
            info = self.log.append_as_leader(data, epoch, fsync=not self.group_commit)
        except OSError as exc:
            # Whether any of the batch reached the disk is unknown (a failed fsync may
            # have dropped it): only a restart, which recovers the log, can say.
            self.fault_handler(
                f"Unable to append {len(data)} bytes to the metadata log at offset "
                f"{self.log.end_offset}",
                exc,
            )
        except ValueError as exc:
            # Refused before anything was written (e.g. a batch over the size limit).
            self.on_refused(f"the metadata log refused the batch: {exc}")
            raise AppendFailed(ErrorCode.UNKNOWN_SERVER_ERROR, str(exc)) from exc
        end_offset = info.last_offset + 1
        self.stats.leader_batches += 1
        self._bytes_since_freeze += len(data)
        self.snapshots.on_appended(end_offset, len(data))
        self._wake_log_grew()
        if not self.group_commit:
            self.stats.fsyncs += 1
            self.on_flushed(end_offset, now_ms)
            return end_offset
        self._unflushed_bytes += len(data)
        if self._unflushed_bytes >= MAX_BATCH_SIZE_BYTES:
            self.flush(now_ms)  # a flush covers at most one raft batch's worth
        else:
            self._flush_due.set()
        return end_offset

    def append_as_follower(self, records: bytes, now_ms: int) -> int:
        """Append the leader's batches (they carry their offsets and epochs), fsynced;
        returns the new end offset. A batch the log refuses (bad CRC, offsets that do not
        follow) is dropped with a log line: the next Fetch asks again from the log end."""
        if not records:
            return self.log.end_offset
        try:
            info = self.log.append_as_follower(records)
        except OSError as exc:
            self.fault_handler(
                f"Unable to append {len(records)} replicated bytes to the metadata log at "
                f"offset {self.log.end_offset}",
                exc,
            )
        except ValueError as exc:
            log.error("Dropping replicated records the log refuses: %s", exc)
            return self.log.end_offset
        end_offset = info.last_offset + 1
        # The fsync covered whatever the leader role left unflushed before it too.
        self._unflushed_bytes = 0
        self.stats.follower_appends += 1
        self.stats.fsyncs += 1
        self._bytes_since_freeze += len(records)
        self.snapshots.on_appended(end_offset, len(records))
        self._wake_log_grew()
        self.on_flushed(end_offset, now_ms)
        return end_offset

    def truncate_to(self, offset: int) -> None:
        """Drop the log from `offset` (raft never asks below the high watermark)."""
        try:
            self.log.truncate_to(offset)
        except OSError as exc:
            self.fault_handler(f"Unable to truncate the metadata log to offset {offset}", exc)
        except ValueError as exc:  # below the log start: a snapshot must be fetched instead
            log.error("Not truncating the metadata log: %s", exc)
            return
        self.snapshots.on_truncated(offset)

    def _wake_log_grew(self) -> None:
        self._log_grew.set()
        self._log_grew = trio.Event()

    # -- group commit --------------------------------------------------------------------

    @property
    def flush_pending(self) -> bool:
        """Whether leader appends wait for the flusher's fsync."""
        return self._unflushed_bytes > 0

    def flush(self, now_ms: int) -> None:
        """Make everything appended so far durable with one fsync, then report the log
        end to raft (`on_flushed`); nothing to do when nothing waits. Run it in the
        driver's turn. A failed fsync is fatal (the fault handler)."""
        if not self._unflushed_bytes:
            return
        try:
            self.log.flush()
        except OSError as exc:
            self.fault_handler(
                f"Unable to flush the metadata log up to offset {self.log.end_offset}", exc
            )
        self._unflushed_bytes = 0
        self.stats.fsyncs += 1
        self.on_flushed(self.log.end_offset, now_ms)

    async def run_flusher(self, call: DriverCall) -> None:
        """Group commit until cancelled: wait for an unflushed append, yield once (tasks
        runnable now may append too), then `flush` in the driver's turn, behind every step
        already queued there. Appends made meanwhile join the next flush."""
        self.group_commit = True
        try:
            while True:
                await self._flush_due.wait()
                self._flush_due = trio.Event()
                await trio.lowlevel.checkpoint()
                await call(self.flush)
        finally:
            self.group_commit = False

    # -- committing ----------------------------------------------------------------------

    def commit(self, offset: int) -> None:
        """Everything below `offset` is committed: release the writers waiting for it."""
        self.committed_offset = offset
        self.log.update_high_watermark(offset)
        if self._broker_changes:
            settled = [b for b, end in self._broker_changes.items() if end <= offset]
            for broker_id in settled:
                del self._broker_changes[broker_id]
        self._wake_committed()
        if self._bytes_since_freeze >= HEAP_FREEZE_BYTES:
            self._bytes_since_freeze = 0
            self.stats.heap_freezes += 1
            seconds = freeze_heap()
            log.debug(
                "Froze the heap after %d bytes of records in %.1f ms",
                HEAP_FREEZE_BYTES,
                seconds * 1000,
            )

    def abandon(self) -> None:
        """Uncommitted writes were taken back: their waiters fail with NOT_CONTROLLER."""
        self.write_generation += 1
        self._broker_changes.clear()  # the image is back at the committed offset
        self._wake_committed()

    def interrupt_waits(self) -> None:
        """End every wait for log growth now: the leader left its state, and Kafka answers
        its parked fetches at once (fetchPurgatory.completeAllExceptionally) so that
        followers learn it and their connections are free for votes."""
        self._interrupts += 1
        self._wake_log_grew()
        self._wake_committed()

    def _wake_committed(self) -> None:
        self._committed.set()
        self._committed = trio.Event()

    async def wait_committed(self, end_offset: int, generation: int | None = None) -> None:
        """Return once every offset below `end_offset` is committed. With the
        ``write_generation`` current when the records were appended, raises AppendFailed
        (NOT_CONTROLLER, as Kafka answers writes its controller abandoned) if they were
        taken back instead."""
        while self.committed_offset < end_offset:
            if generation is not None and generation != self.write_generation:
                raise AppendFailed(
                    ErrorCode.NOT_CONTROLLER, "the write was reverted before it committed"
                )
            await self._committed.wait()

    def wait_mark(self) -> tuple[int, int]:
        """(interrupts, committed offset) now. Taken in the driver's turn that decided to
        wait and given to a wait below, the wait also ends on what happened between that
        turn and the wait's start: the driver may handle a resignation (its
        `interrupt_waits`) or a commit before the waiting task runs again, and a wait
        that took its mark itself would miss it and park a follower's Fetch for its whole
        MaxWaitMs (500 ms), holding back the Vote queued behind it on that connection."""
        return self._interrupts, self.committed_offset

    async def wait_log_growth(
        self, beyond: int, deadline: float, mark: tuple[int, int] | None = None
    ) -> None:
        """Return when the log end passes `beyond`, at `deadline` (trio time), or when
        `interrupt_waits` is called (since `mark`, from `wait_mark`, if given)."""
        interrupts = (mark or self.wait_mark())[0]
        with trio.move_on_at(deadline):
            while self.log.end_offset <= beyond and self._interrupts == interrupts:
                await self._log_grew.wait()

    async def wait_log_growth_or_commit(
        self, beyond: int, deadline: float, mark: tuple[int, int] | None = None
    ) -> None:
        """Return when the log end passes `beyond`, the high watermark advances, or at
        `deadline` (trio time): Kafka 4.3.1 completes its parked fetches on both (and
        `interrupt_waits`); both counted since `mark` (from `wait_mark`), if given."""
        interrupts, committed = mark or self.wait_mark()
        with trio.move_on_at(deadline):
            while (
                self.log.end_offset <= beyond
                and self.committed_offset == committed
                and self._interrupts == interrupts
            ):
                grew, advanced = self._log_grew, self._committed
                async with trio.open_nursery() as nursery:

                    async def wait_for(event: trio.Event) -> None:
                        await event.wait()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(wait_for, grew)
                    nursery.start_soon(wait_for, advanced)


def split_for_batches(values: Sequence[bytes]) -> list[Sequence[bytes]]:
    """Consecutive runs of ``values`` that each fit one batch: at most
    MAX_RECORDS_PER_BATCH records and MAX_BATCH_SIZE_BYTES bytes (a single record over
    the size stays alone, and the log refuses it)."""
    chunks: list[Sequence[bytes]] = []
    start, size = 0, RECORD_BATCH_OVERHEAD
    for index, value in enumerate(values):
        grown = size + plain_record_size(index - start, len(value))
        if index > start and (
            grown > MAX_BATCH_SIZE_BYTES or index - start >= MAX_RECORDS_PER_BATCH
        ):
            chunks.append(values[start:index])
            start, grown = index, RECORD_BATCH_OVERHEAD + plain_record_size(0, len(value))
        size = grown
    chunks.append(values[start:])
    return chunks
