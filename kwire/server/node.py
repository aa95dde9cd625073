"""A controller node: the log, the consensus core and the controller, joined by Trio.

The cores are synchronous and pure; this module is the edge that owns them. One Trio
process runs them all, so a core is never entered twice at once: every call into a core
finishes before the next await. Writes follow one path (`append_result`): build the
batches, append and fsync, tell raft the log is durable, and wake whoever waits for the
commit.

What the controller applied but the log does not hold is taken back: an append the log
refuses reverts the controller to the committed offset and fails the waiting requests
(`AppendFailed`). An I/O error on the metadata log or quorum-state is fatal, as in Kafka:
the node calls its fault handler, which by default logs and halts the process with exit
status 1, so that a restart recovers the log, on which the failed write never happened.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import trio

from kwire.controller.controller import (
    ControllerConfig,
    ControllerResult,
    QuorumController,
    RequestContext,
)
from kwire.controller.features import LOCAL_SUPPORTED_FEATURES
from kwire.controller.records import RecordAndVersion
from kwire.controller.topic_configs import java_hash_map_order
from kwire.log import MetadataLog, MetadataLogConfig, read_quorum_state, write_quorum_state
from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.raft.core import RaftConfig, RaftCore
from kwire.raft.state import (
    Action,
    AppendLeaderChange,
    BecameLeader,
    HighWatermarkAdvanced,
    PersistQuorumState,
    Voter,
)
from kwire.records import (
    MAX_BATCH_SIZE_BYTES,
    RECORD_BATCH_OVERHEAD,
    ControlRecordType,
    Record,
    build_batch,
    encode_batch,
    encode_control_record_key,
    frame_metadata_record,
    plain_record_size,
    unframe_metadata_record,
)
from kwire.server.snapshots import (
    SnapshotDriver,
    SnapshotSettings,
    SnapshotSource,
    default_snapshot_source,
    load_newest_snapshot,
)

log = logging.getLogger("kwire.node")

METADATA_PARTITION_DIR = "__cluster_metadata-0"
PLAINTEXT = 0  # security protocol id
# The features this release supports, as its ApiVersions and registrations say, in the
# order of Kafka's HashMap of them (what a genuine 4.3.1 controller's ApiVersions shows).
SUPPORTED_FEATURES = tuple(
    (name, *LOCAL_SUPPORTED_FEATURES[name])
    for name in java_hash_map_order(list(LOCAL_SUPPORTED_FEATURES))
)


# Kafka's QuorumController splits a non-atomic result into batches of at most this many
# records (maxRecordsPerBatch); each batch also stays within the raft batch size.
MAX_RECORDS_PER_BATCH = 10_000

FaultHandler = Callable[[str, BaseException], NoReturn]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def halt_process(message: str, cause: BaseException) -> NoReturn:
    """Kafka's ProcessTerminatingFaultHandler: log the fault and halt at once with exit
    status 1, running no cleanup that could touch the log again."""
    log.critical("%s: %s. Halting the process.", message, cause, exc_info=cause)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class AppendFailed(Exception):
    """A write the log refused or that was taken back before it committed: the requests
    waiting for it get ``code`` (Kafka: the controller's failed write event)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """What a node needs, resolved from the configuration and meta.properties."""

    node_id: int
    cluster_id: str
    voters: tuple[Voter, ...]
    listener_name: str
    metadata_dir: Path  # holds meta.properties and __cluster_metadata-0/
    controller: ControllerConfig
    segment_bytes: int = 1024 * 1024 * 1024
    metadata_version_level: int = 21
    # The records of bootstrap.checkpoint (metadata.version, the other features, SCRAM
    # credentials...), appended on activation when the log is empty; None: the level alone.
    bootstrap: tuple[RecordAndVersion, ...] | None = None
    snapshots: SnapshotSettings = SnapshotSettings()


class ControllerNode:
    """Owns the metadata log, the raft core and the controller of one kwire node."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        seed: int | None = None,
        fault_handler: FaultHandler = halt_process,
        snapshot_source: SnapshotSource | None = None,
    ) -> None:
        self.settings = settings
        # Called on a metadata log or quorum-state I/O error; must not return.
        self.fault_handler = fault_handler
        partition_dir = settings.metadata_dir / METADATA_PARTITION_DIR
        self.log = MetadataLog.open(
            partition_dir, MetadataLogConfig(segment_bytes=settings.segment_bytes)
        )
        self.quorum_state_path = partition_dir / "quorum-state"
        persisted = self._read_quorum_state()
        self.raft = RaftCore(
            RaftConfig(
                node_id=settings.node_id,
                cluster_id=settings.cluster_id,
                voters=settings.voters,
                listener_name=settings.listener_name,
            ),
            self.log,
            persisted_epoch=persisted.leader_epoch if persisted else 0,
            persisted_voted_id=persisted.voted_id if persisted else -1,
        )
        self.controller = QuorumController(
            node_id=settings.node_id,
            cluster_id=settings.cluster_id,
            config=settings.controller,
            rng=random.Random(seed),
        )
        self.committed_offset = 0  # the high watermark: everything below is committed
        # Bumped whenever uncommitted writes are taken back; a waiter whose write was
        # appended under an older generation and is not committed was abandoned.
        self.write_generation = 0
        self._log_grew = trio.Event()
        self._committed = trio.Event()
        self._tick_wanted = trio.Event()
        self.incarnation_id = uuid.uuid4()
        self.snapshots = SnapshotDriver(
            self.log,
            settings.snapshots,
            snapshot_source or default_snapshot_source(),
            wall_clock_ms(),
        )
        self.replayed = self._replay_log()

    # -- start-up ---------------------------------------------------------------------------

    def _read_quorum_state(self) -> QuorumStateData | None:
        if not self.quorum_state_path.exists():
            return None
        return read_quorum_state(self.quorum_state_path)

    def _replay_log(self) -> int:
        """Load the newest snapshot, then feed every metadata record of the log after it
        to the controller; returns how many records were replayed."""
        count = load_newest_snapshot(self.log, self.controller)
        latest = self.log.latest_snapshot_id()
        start = max(self.log.log_start_offset, latest.end_offset if latest else 0)
        for batch in self.log.read_batches(start):
            if batch.is_control:
                continue
            for record in batch.records:
                offset = batch.base_offset + record.offset_delta
                if offset < start:
                    continue
                api_key, version, body = unframe_metadata_record(record.value or b"")
                message = METADATA_RECORDS[api_key].decode(body, version)
                self.controller.replay(message, version, offset)
                count += 1
        if count:
            log.info("Replayed %d metadata records up to offset %d", count, self.log.end_offset)
        return count

    def start(self) -> None:
        """Run the election (a sole voter wins at once); a new leader activates the controller."""
        now = wall_clock_ms()
        self.carry_out(self.raft.start(now), now)
        if self.raft.is_leader:
            result = self.controller.activate(
                now,
                self.log.end_offset,
                self.settings.metadata_version_level,
                self.settings.bootstrap,
            )
            if result is not None and result.records:
                self.append_result(result, now)
                log.info(
                    "Wrote %d bootstrap records (metadata.version level %d)",
                    len(result.records),
                    self.settings.metadata_version_level,
                )
            self._register_self(now)

    def _register_self(self, now_ms: int) -> None:
        """Register this controller's endpoint and features, as Kafka's controllers do
        through their ControllerRegistrationManager (here without the network hop)."""
        voter = next(v for v in self.settings.voters if v.node_id == self.settings.node_id)
        request = ControllerRegistrationRequest(
            controller_id=self.settings.node_id,
            incarnation_id=self.incarnation_id,
            zk_migration_ready=False,
            listeners=[
                ControllerRegistrationRequest.Listener(
                    name=self.settings.listener_name,
                    host=voter.host,
                    port=voter.port,
                    security_protocol=PLAINTEXT,
                )
            ],
            features=[
                ControllerRegistrationRequest.Feature(
                    name=name, min_supported_version=low, max_supported_version=high
                )
                for name, low, high in SUPPORTED_FEATURES
            ],
        )
        context = RequestContext(api_version=0, client_id=str(self.settings.node_id), internal=True)
        result = self.controller.handle(request, context, self.log.end_offset, now_ms)
        self.append_result(result, now_ms)

    # -- actions from the raft core -------------------------------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int | None = None) -> None:
        now_ms = wall_clock_ms() if now_ms is None else now_ms
        for action in actions:
            match action:
                case PersistQuorumState():
                    state = QuorumStateData(
                        leader_id=action.leader_id,
                        leader_epoch=action.leader_epoch,
                        voted_id=action.voted_id,
                        applied_offset=action.applied_offset,
                        current_voters=tuple(v.node_id for v in self.settings.voters),
                    )
                    try:
                        write_quorum_state(self.quorum_state_path, state)
                    except OSError as exc:
                        self.fault_handler(f"Unable to write {self.quorum_state_path}", exc)
                case BecameLeader():
                    log.info(
                        "Node %d is the leader of epoch %d from offset %d",
                        self.settings.node_id,
                        action.epoch,
                        action.epoch_start_offset,
                    )
                case AppendLeaderChange():
                    record = Record(
                        offset_delta=0,
                        key=encode_control_record_key(ControlRecordType.LEADER_CHANGE),
                        value=action.message.encode(action.message.version),
                    )
                    self._append_batch(
                        encode_batch(build_batch([record], base_timestamp=now_ms, control=True)),
                        action.epoch,
                        now_ms,
                    )
                case HighWatermarkAdvanced():
                    self.committed_offset = action.offset
                    self.log.update_high_watermark(action.offset)
                    self.controller.commit(action.offset - 1)
                    self.snapshots.on_committed(action.offset, now_ms)
                    if self.snapshots.wanted is not None:
                        self._tick_wanted.set()
                    self._wake_committed()

    # -- writing --------------------------------------------------------------------------------

    def append(self, records: Sequence[RecordAndVersion], now_ms: int) -> int:
        """Append metadata records as one batch; returns the offset after the last one."""
        values = [
            frame_metadata_record(item.api_key, item.version, item.record.encode(item.version))
            for item in records
        ]
        return self.append_values(values, now_ms, atomic=True)

    def append_result(self, result: ControllerResult, now_ms: int) -> int:
        """Append what the controller applied for ``result`` (each of its ``writes`` apart;
        atomic results as one batch, others split as Kafka splits them); returns the offset after the last record.
        Raises AppendFailed, after reverting the controller to the committed offset, when
        the log refuses the records."""
        if not result.records:
            return self.log.end_offset
        values = result.values
        if len(values) != len(result.records):
            values = [
                frame_metadata_record(item.api_key, item.version, item.record.encode(item.version))
                for item in result.records
            ]
        if not result.writes:
            return self.append_values(values, now_ms, atomic=result.atomic)
        # One write per run of records (e.g. one per fenced broker), each its own batch.
        start, end_offset = 0, self.log.end_offset
        for count in result.writes:
            end_offset = self.append_values(
                values[start : start + count], now_ms, atomic=result.atomic
            )
            start += count
        return end_offset

    def append_values(self, values: Sequence[bytes], now_ms: int, *, atomic: bool) -> int:
        """Append framed metadata records; see ``append_result``."""
        if not values:
            return self.log.end_offset
        end_offset = self.log.end_offset
        for chunk in [values] if atomic else _split_for_batches(values):
            batch = build_batch(
                [Record(offset_delta=i, value=value) for i, value in enumerate(chunk)],
                base_timestamp=now_ms,
            )
            end_offset = self._append_batch(encode_batch(batch), self.raft.epoch, now_ms)
        return end_offset

    def _append_batch(self, data: bytes, epoch: int, now_ms: int) -> int:
        # The append fsyncs before it returns: only then is the batch durable here, and
        # only then may raft count this node's copy towards the high watermark.
        try:
            info = self.log.append_as_leader(data, epoch)
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
            self.revert_uncommitted(f"the metadata log refused the batch: {exc}")
            raise AppendFailed(ErrorCode.UNKNOWN_SERVER_ERROR, str(exc)) from exc
        end_offset = info.last_offset + 1
        self.snapshots.on_appended(end_offset, len(data))
        self.carry_out(self.raft.on_flushed(end_offset, now_ms), now_ms)
        self._log_grew.set()
        self._log_grew = trio.Event()
        return end_offset

    def revert_uncommitted(self, reason: str) -> None:
        """Take the controller back to the committed offset and fail the writes waiting
        for records above it (the one mechanism for refused appends and, later, lost
        leadership)."""
        log.warning(
            "Reverting the controller to committed offset %d: %s", self.committed_offset - 1, reason
        )
        self.controller.revert_to(self.committed_offset - 1)
        self.write_generation += 1
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

    async def wait_log_growth(self, beyond: int, deadline: float) -> None:
        """Return when the log end passes `beyond` or at `deadline` (trio time)."""
        with trio.move_on_at(deadline):
            while self.log.end_offset <= beyond:
                await self._log_grew.wait()

    async def wait_log_growth_or_commit(self, beyond: int, deadline: float) -> None:
        """Return when the log end passes `beyond`, the high watermark advances, or at
        `deadline` (trio time): Kafka 4.3.1 completes its parked fetches on both."""
        committed = self.committed_offset
        with trio.move_on_at(deadline):
            while self.log.end_offset <= beyond and self.committed_offset == committed:
                grew, advanced = self._log_grew, self._committed
                async with trio.open_nursery() as nursery:

                    async def wait_for(event: trio.Event) -> None:
                        await event.wait()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(wait_for, grew)
                    nursery.start_soon(wait_for, advanced)

    async def run_controller_write(self, result: ControllerResult) -> None:
        """Append a controller result's records and wait for their commit; raises
        AppendFailed when they were refused or taken back."""
        if result.records:
            generation = self.write_generation
            end_offset = self.append_result(result, wall_clock_ms())
            self._tick_wanted.set()
            await self.wait_committed(end_offset, generation)

    # -- periodic work ------------------------------------------------------------------------

    async def run_ticks(self) -> None:
        """Fence expired brokers, write NoOp records: whatever the controller asks for."""
        while True:
            now = wall_clock_ms()
            if self.raft.is_leader:
                result = self.controller.tick(now, self.log.end_offset)
                if result is not None:
                    try:
                        self.append_result(result, now)
                    except AppendFailed as exc:
                        log.error("Periodic controller write failed: %s", exc)
            self.snapshot_work(wall_clock_ms())
            deadline = min(self.controller.next_deadline_ms(), self.snapshots.next_deadline_ms())
            delay_ms = max(deadline - wall_clock_ms(), 1)
            with trio.move_on_after(min(delay_ms, 1000) / 1000):
                await self._tick_wanted.wait()
            self._tick_wanted = trio.Event()

    def snapshot_work(self, now_ms: int) -> None:
        """Write a due snapshot of the committed image and clean the log when due; an
        I/O error is fatal, as Kafka's snapshot generation fault is."""
        try:
            self.snapshots.maybe_write(self.controller, self.committed_offset, now_ms)
            self.snapshots.maybe_clean(now_ms)
        except OSError as exc:
            self.fault_handler("KRaft snapshot file generation or log cleaning error", exc)

    def close(self) -> None:
        self.log.close()


def _split_for_batches(values: Sequence[bytes]) -> list[Sequence[bytes]]:
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
