"""A controller node: the log, the consensus core and the controller of one voter.

The cores are synchronous and pure; `ControllerNode` owns them and hands each of its roles
to one helper, and keeps the names others read (`node.active`, `node.controller`, ...):
- `kwire.server.write_path`: appends, fsync, waiting for commits;
- `kwire.server.raft_driver`: the one task that feeds the raft core its events and
  carries out its actions, with `kwire.server.peers` (connections to the other voters);
- `kwire.server.raft_io`: the core's storage actions (quorum-state, the epoch's control
  batch, truncation, a snapshot fetched from the leader) and what the core starts from;
- `kwire.server.replay`: the controller on every voter (hot standby replay of the
  committed log, activation on leadership, self-registration, renouncing);
- `kwire.server.periodic`: the active controller's timers and snapshots.

An I/O error on the metadata log or quorum-state is fatal, as in Kafka: the node calls
its fault handler, which by default logs and halts the process with exit status 1, so that
a restart recovers the log, on which the failed write never happened.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import trio

from kwire.controller.controller import ControllerResult, QuorumController
from kwire.controller.kraft_version import RaftKRaftVersion
from kwire.controller.records import RecordAndVersion
from kwire.log import MetadataLog, MetadataLogConfig
from kwire.protocol._codec import Message
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.raft.core import RaftConfig, RaftCore
from kwire.raft.state import (
    Action,
    AppendControlRecords,
    AppendLeaderChange,
    BecameLeader,
    InstallSnapshot,
    PersistQuorumState,
    StartSnapshotFetch,
    StateChanged,
    WriteSnapshotChunk,
)
from kwire.server.controller_registration import ControllerRegistrationSender
from kwire.server.faults import ControllerFaults
from kwire.server.loop_watch import LoopStallWatch
from kwire.server.metrics_stats import RequestStats
from kwire.server.node_settings import NodeSettings, RaftTimeouts, halt_process, wall_clock_ms
from kwire.server.periodic import PeriodicWork
from kwire.server.raft_driver import RaftDriver
from kwire.server.raft_io import RaftStorage
from kwire.server.replay import SUPPORTED_FEATURES, ControllerReplay
from kwire.server.snapshots import (
    SnapshotDownload,
    SnapshotDriver,
    SnapshotJob,
    SnapshotSource,
    default_snapshot_source,
)
from kwire.server.status_events import MetadataEvents
from kwire.server.write_path import (
    MAX_RECORDS_PER_BATCH,
    AppendFailed,
    FaultHandler,
    WritePath,
    frame_records,
    split_for_batches,
)

__all__ = [
    "MAX_RECORDS_PER_BATCH",
    "SUPPORTED_FEATURES",
    "AppendFailed",
    "ControllerNode",
    "FaultHandler",
    "NodeSettings",
    "RaftTimeouts",
    "halt_process",
    "split_for_batches",
    "wall_clock_ms",
]

log = logging.getLogger("kwire.node")

METADATA_PARTITION_DIR = "__cluster_metadata-0"


class ControllerNode:
    """Owns the metadata log, the raft core and the controller of one kwire voter."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        seed: int | None = None,
        fault_handler: FaultHandler = halt_process,
        snapshot_source: SnapshotSource | None = None,
    ) -> None:
        self.settings = settings
        # Faults of controller steps: logged, counted (MetadataErrorCount), renounced.
        self.faults = ControllerFaults(self)
        # Called on a metadata log or quorum-state I/O error; must not return.
        self.fault_handler = fault_handler
        partition_dir = settings.metadata_dir / METADATA_PARTITION_DIR
        self.log = MetadataLog.open(
            partition_dir, MetadataLogConfig(segment_bytes=settings.segment_bytes)
        )
        self.storage = RaftStorage(self, partition_dir)
        control_records = self.storage.control_records()  # may replace self.settings
        settings = self.settings
        timeouts = settings.raft
        self.raft = RaftCore(
            RaftConfig(
                node_id=settings.node_id,
                cluster_id=settings.cluster_id,
                voters=settings.voters,
                listener_name=settings.listener_name,
                directory_id=settings.directory_id,
                local_endpoints=settings.local_endpoints,
                election_timeout_ms=timeouts.election_timeout_ms,
                election_backoff_max_ms=timeouts.election_backoff_max_ms,
                fetch_timeout_ms=timeouts.fetch_timeout_ms,
                request_timeout_ms=timeouts.request_timeout_ms,
                retry_backoff_ms=timeouts.retry_backoff_ms,
                fast_failover=timeouts.fast_failover,
                auto_join=timeouts.auto_join,
                bootstrap_servers=settings.bootstrap_servers,
            ),
            self.log,
            persisted=self.storage.read_quorum_state(),
            rng=random.Random(seed),
            control_records=control_records,
        )
        self.seed = seed
        self.controller = self._new_controller()
        self.periodic = PeriodicWork(self)
        self.loop_watch = LoopStallWatch(on_stall=self._credit_stall)
        self.incarnation_id = uuid.uuid4()
        self.snapshots = SnapshotDriver(
            self.log,
            settings.snapshots,
            snapshot_source or default_snapshot_source(),
            wall_clock_ms(),
            # At kraft.version 0 these are none; a quorum upgraded while running gets them.
            kraft_records=self.storage.snapshot_kraft_records,
        )
        self.driver = RaftDriver(
            self, request_timeout_ms=timeouts.request_timeout_ms, clock=wall_clock_ms
        )
        # Per-API request counts, errors and latency (the metrics page reads them).
        self.request_stats = RequestStats(settings.controller.broker_heartbeat_interval_ms / 2)
        self.writes = WritePath(
            self.log,
            self.snapshots,
            fault_handler=lambda message, cause: self.fault_handler(message, cause),
            on_flushed=self.driver.on_flushed,
            on_refused=self.revert_uncommitted,
        )
        # The last committed records, for the status page (kwire.server.status_events).
        self.metadata_events = MetadataEvents()
        self.replay = ControllerReplay(self)
        # A standby registers itself with the active controller (KIP-919).
        self.registration = ControllerRegistrationSender(self, SUPPORTED_FEATURES)
        self.replayed = self.replay.replay_start()

    @property
    def fault_handler(self) -> FaultHandler:
        """The fatal fault handler (Kafka's ProcessTerminatingFaultHandler), called on a
        metadata log or quorum-state I/O error; by default it halts the process. Whatever
        a handler raises instead (a test's) is marked so that the controller's own fault
        handling (`kwire.server.faults`) lets it through rather than survive it."""
        return self._fatal_fault

    @fault_handler.setter
    def fault_handler(self, handler: FaultHandler) -> None:
        self._fault_handler = handler

    def _fatal_fault(self, message: str, cause: BaseException) -> NoReturn:
        try:
            self._fault_handler(message, cause)
        except BaseException as exc:
            self.faults.fatal = exc
            raise
        raise AssertionError(f"the fatal fault handler returned: {message}")

    def _new_controller(self) -> QuorumController:
        controller = QuorumController(
            node_id=self.settings.node_id,
            cluster_id=self.settings.cluster_id,
            config=self.settings.controller,
            rng=random.Random(self.seed),
        )
        controller.kraft = RaftKRaftVersion(
            read=lambda: int(self.raft.kraft_version), upgrade=self._upgrade_kraft_version
        )
        return controller

    def _upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        """The raft leader's kraft.version upgrade, for the controller's UpdateFeatures (in
        the driver's turn): its control batch is appended before the controller's records;
        how many offsets it took."""
        now = wall_clock_ms()
        before = self.log.end_offset
        _, actions = self.raft.upgrade_kraft_version(self.raft.epoch, level, validate_only, now)
        self.carry_out(actions, now)
        return self.log.end_offset - before

    def start(self) -> None:
        """Start the raft core: a sole voter leads (and its controller activates) at once;
        the others arm their election timer and wait for the driver (`driver.run`)."""
        now = wall_clock_ms()
        self.carry_out(self.raft.start(now), now)

    # -- the roles' state, under the names others read ------------------------------------------

    @property
    def sole_voter(self) -> bool:
        return {v.node_id for v in self.settings.voters} == {self.settings.node_id}

    @property
    def active(self) -> bool:
        """The controller is active (the raft leader, caught up to its epoch start)."""
        return self.replay.active

    @property
    def pending_activation(self) -> int | None:
        """A leader's epoch start offset until its controller activates."""
        return self.replay.pending_activation

    @property
    def applied_end(self) -> int:
        """The offset after the last record the controller replayed from the log."""
        return self.replay.applied_end

    @property
    def quorum_state_path(self) -> Path:
        return self.storage.quorum_state_path

    @property
    def download(self) -> SnapshotDownload:
        return self.storage.download

    @property
    def _tick_wanted(self) -> trio.Event:
        return self.periodic.wanted

    # -- actions from the raft core (through the driver) ---------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int | None = None) -> None:
        self.driver.carry_out(actions, now_ms)

    def persist_quorum_state(self, action: PersistQuorumState) -> None:
        self.storage.persist_quorum_state(action)

    def append_leader_change(
        self, action: AppendLeaderChange | AppendControlRecords, now_ms: int
    ) -> None:
        self.storage.append_leader_change(action, now_ms)

    def truncate_to(self, offset: int) -> None:
        self.storage.truncate_to(offset)

    def download_snapshot(
        self, action: StartSnapshotFetch | WriteSnapshotChunk | InstallSnapshot, now_ms: int
    ) -> None:
        self.storage.download_snapshot(action, now_ms)

    def on_high_watermark(self, offset: int, now_ms: int) -> None:
        self.replay.on_high_watermark(offset, now_ms)

    def on_became_leader(self, action: BecameLeader) -> None:
        self.replay.on_became_leader(action)

    def on_state_changed(self, action: StateChanged) -> None:
        self.replay.on_state_changed(action)

    # -- writing --------------------------------------------------------------------------------

    @property
    def committed_offset(self) -> int:
        return self.writes.committed_offset

    @property
    def write_generation(self) -> int:
        return self.writes.write_generation

    def append(self, records: Sequence[RecordAndVersion], now_ms: int) -> int:
        """Append metadata records as one batch; returns the offset after the last one."""
        return self.append_values(frame_records(records), now_ms, atomic=True)

    def append_result(self, result: ControllerResult, now_ms: int) -> int:
        """See `WritePath.append_result` (at the current epoch)."""
        end_offset = self.writes.append_result(result, self.raft.epoch, now_ms)
        self.metadata_events.appended(result.records, end_offset, now_ms)
        return end_offset

    def append_values(self, values: Sequence[bytes], now_ms: int, *, atomic: bool) -> int:
        return self.writes.append_values(values, self.raft.epoch, now_ms, atomic=atomic)

    def revert_uncommitted(self, reason: str) -> None:
        """Take the controller back to the committed offset and fail the writes waiting
        for records above it (refused appends and lost leadership)."""
        committed = self.writes.committed_offset
        log.warning("Reverting the controller to committed offset %d: %s", committed - 1, reason)
        self.controller.revert_to(committed - 1)
        self.writes.abandon()
        self.metadata_events.reverted()

    async def wait_committed(self, end_offset: int, generation: int | None = None) -> None:
        await self.writes.wait_committed(end_offset, generation)

    async def wait_log_growth(
        self, beyond: int, deadline: float, mark: tuple[int, int] | None = None
    ) -> None:
        await self.writes.wait_log_growth(beyond, deadline, mark)

    async def wait_log_growth_or_commit(
        self, beyond: int, deadline: float, mark: tuple[int, int] | None = None
    ) -> None:
        await self.writes.wait_log_growth_or_commit(beyond, deadline, mark)

    def start_write(
        self, result: ControllerResult, now_ms: int, request: Message | None = None
    ) -> tuple[int, int]:
        """Append a controller result's records; returns (end offset, write generation)
        for `wait_committed`. Raises AppendFailed.

        A result without records was a read of the latest image, which may hold
        uncommitted records, so it waits for them as Kafka's QuorumController does (the
        highest pending offset), except a BrokerHeartbeat (`request`), which waits only
        for uncommitted changes of its own broker's registration: its answer (fenced,
        caught up, shut down) reads nothing else, so a heartbeat that changes nothing is
        answered without waiting for any fsync. (Kafka 3.9 waits for every pending write
        here, which under load delays heartbeats towards the session timeout: KAFKA-15019.)"""
        generation = self.writes.write_generation
        if not result.records:
            if isinstance(request, BrokerHeartbeatRequest):
                return self.writes.broker_settled_offset(request.broker_id), generation
            return self.log.end_offset, generation
        end_offset = self.append_result(result, now_ms)
        self.periodic.wake()
        return end_offset, generation

    async def run_controller_write(self, result: ControllerResult) -> None:
        """Append a controller result's records and wait for their commit; raises
        AppendFailed when they were refused or taken back."""
        if result.records:
            end_offset, generation = self.start_write(result, wall_clock_ms())
            await self.wait_committed(end_offset, generation)

    # -- periodic work and the node's tasks ------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """See `PeriodicWork.tick`."""
        self.periodic.tick(now_ms)

    def snapshot_work(self, now_ms: int) -> None:
        """See `PeriodicWork.snapshot_work`."""
        self.periodic.snapshot_work(now_ms)

    def _credit_stall(self, ms: float) -> None:
        self.controller.tracker.credit_stall(int(ms))

    async def run(self) -> None:
        """The node's tasks (the raft driver, the group-commit flusher, the periodic
        work, the snapshot writer and a standby's registration) until cancelled; `loop_watch` times the loop's
        steps meanwhile."""
        send, receive = trio.open_memory_channel[SnapshotJob](1)
        trio.lowlevel.add_instrument(self.loop_watch)
        self.periodic.snapshot_jobs = send
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.driver.run)
                nursery.start_soon(self.writes.run_flusher, self.driver.call)
                nursery.start_soon(self.periodic.run_ticks)
                nursery.start_soon(self.periodic.run_snapshot_writer, receive)
                nursery.start_soon(self.registration.run)
        finally:
            self.periodic.snapshot_jobs = None
            self.snapshots.writing = None
            trio.lowlevel.remove_instrument(self.loop_watch)
            watch = self.loop_watch
            log.info(
                "The event loop was blocked %d times for at least %.0f ms, %.0f ms in all; "
                "the longest, %.0f ms, by %s",
                watch.stalls,
                watch.threshold_s * 1000,
                watch.stalled_ms,
                watch.longest_ms,
                watch.longest_task or "none",
            )

    async def resign(self, timeout_s: float | None = None) -> None:
        """Graceful shutdown: a leader hands over (EndQuorumEpoch), bounded in time."""
        if timeout_s is None:
            timeout_s = self.settings.raft.request_timeout_ms / 1000
        await self.driver.resign(timeout_s)

    def close(self) -> None:
        self.log.close()
