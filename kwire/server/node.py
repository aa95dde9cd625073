"""A controller node: the log, the consensus core and the controller of one voter.

The cores are synchronous and pure; the node owns them with three helpers, one per role:
`kwire.server.write_path` (appends, fsync, waiting for commits), `kwire.server.raft_driver`
(the one task that feeds the raft core its events and carries out its actions) and
`kwire.server.peers` (connections to the other voters).

The controller runs on every voter (Kafka's QuorumController on each controller):
- a standby replays committed records as the high watermark advances (hot standby); at
  start-up a node replays its newest snapshot, and the log after it only once raft says it
  is committed (a sole voter commits all of it as soon as it leads, so it replays at once);
- a new leader activates once its LeaderChange record (at its epoch start) is committed
  and everything before it replayed (KafkaRaftClient's ListenerContext fires
  handleLeaderChange for the leader only when nextOffset > epochStartOffset; then
  QuorumController.claim): every registered broker gets a fresh session
  (ClusterControlManager.activate), an empty log is bootstrapped, and the controller
  registers itself;
- a leader that leaves the leader state (`StateChanged`) renounces: its controller
  reverts what it applied beyond the committed offset, and the writes waiting for their
  commit are answered NOT_CONTROLLER.

An I/O error on the metadata log or quorum-state is fatal, as in Kafka: the node calls
its fault handler, which by default logs and halts the process with exit status 1, so that
a restart recovers the log, on which the failed write never happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
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
from kwire.controller.image_load import ImageLoader
from kwire.controller.records import RecordAndVersion
from kwire.controller.topic_configs import java_hash_map_order
from kwire.log import MetadataLog, MetadataLogConfig, read_quorum_state, write_quorum_state
from kwire.log.metadata_reader import batch_metadata_records
from kwire.log.quorum_state import QuorumStateData, election_quorum_state
from kwire.protocol._codec import Message
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
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
    Voter,
    WriteSnapshotChunk,
)
from kwire.raft.voter_set import (
    KRaftControlRecords,
    VoterEndpoint,
    VoterSet,
    VoterSetError,
    kraft_control_values,
)
from kwire.records import (
    Record,
    build_batch,
    encode_batch,
    encode_control_record_key,
    iter_batch_headers,
)
from kwire.records.control import ControlRecordType
from kwire.server.loop_watch import LoopStallWatch
from kwire.server.quorum_voters import read_control_records, voters_on_listener
from kwire.server.raft_driver import RaftDriver
from kwire.server.snapshots import (
    SnapshotDownload,
    SnapshotDriver,
    SnapshotJob,
    SnapshotSettings,
    SnapshotSource,
    default_snapshot_source,
    load_newest_snapshot,
)
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
PLAINTEXT = 0  # security protocol id
LEADER_STATE = "leader"
# A start-up load of at least this many records freezes what it built out of the cyclic
# garbage collector's reach (see ControllerNode._replay_start).
FREEZE_AFTER_RECORDS = 100_000
# The features this release supports, as its ApiVersions and registrations say, in the
# order of Kafka's HashMap of them (what a genuine 4.3.1 controller's ApiVersions shows).
SUPPORTED_FEATURES = tuple(
    (name, *LOCAL_SUPPORTED_FEATURES[name])
    for name in java_hash_map_order(list(LOCAL_SUPPORTED_FEATURES))
)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while building a large image (it would walk the
    growing image again and again), back on after (if it was on)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftTimeouts:
    """The `controller.quorum.*` timings (ms), Kafka's defaults; `fast_failover`: a
    follower whose connection to its leader is refused or lost elects at once."""

    election_timeout_ms: int = 1000
    election_backoff_max_ms: int = 1000
    fetch_timeout_ms: int = 2000
    request_timeout_ms: int = 2000
    retry_backoff_ms: int = 20
    fast_failover: bool = True


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
    raft: RaftTimeouts = RaftTimeouts()
    # meta.properties' directory.id (zero: none); a dynamic quorum's voters name it.
    directory_id: uuid.UUID = uuid.UUID(int=0)
    # This node's controller listeners, as a VotersRecord names them (kraft.version 1).
    local_endpoints: tuple[VoterEndpoint, ...] = ()
    # controller.quorum.bootstrap.servers (host, port): where to find the leader (KIP-853).
    bootstrap_servers: tuple[tuple[str, int], ...] = ()


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
        # Called on a metadata log or quorum-state I/O error; must not return.
        self.fault_handler = fault_handler
        partition_dir = settings.metadata_dir / METADATA_PARTITION_DIR
        self.log = MetadataLog.open(
            partition_dir, MetadataLogConfig(segment_bytes=settings.segment_bytes)
        )
        self.quorum_state_path = partition_dir / "quorum-state"
        control_records = self._control_records()
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
                bootstrap_servers=settings.bootstrap_servers,
            ),
            self.log,
            persisted=self._read_quorum_state(),
            rng=random.Random(seed),
            control_records=control_records,
        )
        self.seed = seed
        self.controller = self._new_controller()
        self.download = SnapshotDownload(self.log)
        self._tick_wanted = trio.Event()
        # While `run` runs, due snapshots go to its writer task, which writes them a slice
        # at a time; otherwise `tick` writes them at once.
        self._snapshot_jobs: trio.MemorySendChannel[SnapshotJob] | None = None
        self.loop_watch = LoopStallWatch(on_stall=self._credit_stall)
        self.incarnation_id = uuid.uuid4()
        self.snapshots = SnapshotDriver(
            self.log,
            settings.snapshots,
            snapshot_source or default_snapshot_source(),
            wall_clock_ms(),
            kraft_records=self._snapshot_kraft_records if control_records is not None else None,
        )
        self.driver = RaftDriver(
            self, request_timeout_ms=timeouts.request_timeout_ms, clock=wall_clock_ms
        )
        self.writes = WritePath(
            self.log,
            self.snapshots,
            fault_handler=lambda message, cause: self.fault_handler(message, cause),
            on_flushed=self.driver.on_flushed,
            on_refused=self.revert_uncommitted,
        )
        # The controller is active (the raft leader, caught up to its epoch start).
        self.active = False
        # A leader's epoch start offset until its controller activates.
        self.pending_activation: int | None = None
        # The offset after the last record the controller replayed from the log.
        self.applied_end = 0
        self.replayed = self._replay_start()

    # -- start-up ---------------------------------------------------------------------------

    def _new_controller(self) -> QuorumController:
        return QuorumController(
            node_id=self.settings.node_id,
            cluster_id=self.settings.cluster_id,
            config=self.settings.controller,
            rng=random.Random(self.seed),
        )

    def _control_records(self) -> KRaftControlRecords | None:
        """A kraft.version 1 log's voter history for the core (KafkaRaftClient.initialize
        reads it from the newest snapshot and the log), None at kraft.version 0. Without
        `controller.quorum.voters` (a dynamic quorum) the node's voters become the voter
        set's, each at its endpoint on the controller listener. A log that cannot be read
        is fatal (the fault handler)."""
        static = tuple(self.settings.voters)
        try:
            records = read_control_records(
                self.log,
                VoterSet.from_static(
                    self.settings.listener_name, [(v.node_id, v.host, v.port) for v in static]
                ),
            )
        except (OSError, ValueError) as exc:
            self.fault_handler("Unable to read the KRaft control records of the log", exc)
        if not records.last_kraft_version.is_reconfig_supported:
            return None
        if not static:
            voters = voters_on_listener(records.last_voter_set, self.settings.listener_name)
            self.settings = dataclasses.replace(
                self.settings,
                voters=voters,
                controller=dataclasses.replace(
                    self.settings.controller, quorum_node_ids=tuple(v.node_id for v in voters)
                ),
            )
            log.info(
                "Node %d: kraft.version %d, voters %s from the log",
                self.settings.node_id,
                int(records.last_kraft_version),
                ", ".join(f"{v.node_id}@{v.host}:{v.port}" for v in voters) or "none",
            )
        return records

    def _snapshot_kraft_records(self, last_offset: int) -> list[tuple[ControlRecordType, bytes]]:
        """The KRaftVersion and Voters records of a snapshot whose last contained offset
        is `last_offset` (the values at that offset; those the core holds last when it has
        not read that far: no control record lies beyond what it was fed)."""
        history = self.raft.control_records
        try:
            version = history.kraft_version_at(last_offset)
            voters = history.voter_set_at(last_offset)
        except VoterSetError:
            version, voters = history.last_kraft_version, history.last_voter_set
        return kraft_control_values(version, voters if version.is_reconfig_supported else None)

    def _read_quorum_state(self) -> QuorumStateData | None:
        if not self.quorum_state_path.exists():
            return None
        return read_quorum_state(self.quorum_state_path)

    @property
    def sole_voter(self) -> bool:
        return {v.node_id for v in self.settings.voters} == {self.settings.node_id}

    def _replay_start(self) -> int:
        """Load the newest snapshot; a sole voter also replays the whole log after it (it
        commits all of it once it leads). Returns how many records were replayed.

        The cyclic garbage collector is off while the image is built (it would walk the
        growing image again and again: a third of the time at a million partitions). After
        a large load (FREEZE_AFTER_RECORDS) what start-up built is frozen out of its reach
        (``gc.freeze``): the image lives as long as the process, and later full collections
        stay as cheap as for a small one. Cost: cyclic garbage among what was frozen is never
        collected (only small loads, as in tests that build many nodes in one process, skip
        the freeze)."""
        with collector_paused():
            count = load_newest_snapshot(self.log, self.controller)
            latest = self.log.latest_snapshot_id()
            self.applied_end = max(self.log.log_start_offset, latest.end_offset if latest else 0)
            if self.sole_voter:
                count += self._replay_committed(self.log.end_offset)
        if count >= FREEZE_AFTER_RECORDS:
            gc.freeze()
        if count:
            log.info("Replayed %d metadata records up to offset %d", count, self.applied_end)
        return count

    def _replay_committed(self, end_offset: int) -> int:
        """Feed the controller the metadata records from `applied_end` to `end_offset`
        (whole batches below it), through an ImageLoader; returns how many."""
        count = 0
        if end_offset <= self.applied_end:
            return 0
        loader = ImageLoader(self.controller.image)
        try:
            while self.applied_end < end_offset:
                data = self.log.read(self.applied_end, max_offset=end_offset)
                if not data:
                    break
                for pos, header in iter_batch_headers(data, verify_crc=False):
                    if not header.is_control:
                        entries = batch_metadata_records(data, pos, header)
                        if header.base_offset < self.applied_end:
                            entries = [e for e in entries if e[0] >= self.applied_end]
                        loader.replay_all(entries)
                        count += len(entries)
                    self.applied_end = header.next_offset
        finally:
            loader.finish()
        return count

    def start(self) -> None:
        """Start the raft core: a sole voter leads (and its controller activates) at once;
        the others arm their election timer and wait for the driver (`driver.run`)."""
        now = wall_clock_ms()
        self.carry_out(self.raft.start(now), now)

    def _activate(self, now_ms: int) -> None:
        """Kafka's QuorumController.claim: fresh sessions for every broker, the empty log
        bootstrapped, this controller registered."""
        self.pending_activation = None
        self.active = True
        log.info(
            "Node %d is the active controller of epoch %d, next write offset %d",
            self.settings.node_id,
            self.raft.epoch,
            self.log.end_offset,
        )
        try:
            result = self.controller.activate(
                now_ms,
                self.log.end_offset,
                self.settings.metadata_version_level,
                self.settings.bootstrap,
            )
            if result is not None and result.records:
                self.append_result(result, now_ms)
                log.info(
                    "Wrote %d bootstrap records (metadata.version level %d)",
                    len(result.records),
                    self.settings.metadata_version_level,
                )
            self._register_self(now_ms)
        except AppendFailed as exc:
            log.error("Activation write failed: %s", exc)
        self._tick_wanted.set()

    def _register_self(self, now_ms: int) -> None:
        """Register this controller's endpoint and features, as Kafka's controllers do
        through their ControllerRegistrationManager (here without the network hop): its
        controller listener as advertised (ListenerInfo, its port as bound), else its
        entry in the current voter set."""
        name = self.settings.listener_name.upper()
        # (A voter added while running is in no start-up list: its own entry in the core.)
        voter: Voter | VoterEndpoint = (
            next((e for e in self.settings.local_endpoints if e.name == name), None)
            or self.raft.own_voter()
        )
        if voter.port == 0:  # own_voter(): no listener of that name
            log.error("Node %d: no endpoint on %s to register", self.settings.node_id, name)
            return
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

    # -- actions from the raft core (through the driver) ---------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int | None = None) -> None:
        self.driver.carry_out(actions, now_ms)

    def persist_quorum_state(self, action: PersistQuorumState) -> None:
        # The file's data version follows the log's kraft.version (ElectionState.toQuorumStateData).
        state = election_quorum_state(
            action.kraft_version,
            leader_id=action.leader_id,
            leader_epoch=action.leader_epoch,
            voted_id=action.voted_id,
            voted_directory_id=action.voted_directory_id,
            voter_ids=tuple(v.node_id for v in self.settings.voters),
        )
        try:
            write_quorum_state(self.quorum_state_path, state)
        except OSError as exc:
            self.fault_handler(f"Unable to write {self.quorum_state_path}", exc)

    def append_leader_change(
        self, action: AppendLeaderChange | AppendControlRecords, now_ms: int
    ) -> None:
        """The epoch's first batch: the LeaderChangeMessage, then (kraft.version 1) the
        KRaftVersion and Voters records, one control batch (LeaderState's start of epoch);
        or a VotersRecord of a voter change (AppendControlRecords), likewise."""
        records = [
            Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
            for i, (kind, value) in enumerate(action.values())
        ]
        self.writes.append_batch(
            encode_batch(build_batch(records, base_timestamp=now_ms, control=True)),
            action.epoch,
            now_ms,
        )
        # The epoch's first batch is flushed at once rather than in the flusher's turn:
        # nothing else can share it, and raft hears of the new leader's own copy sooner.
        self.writes.flush(now_ms)

    def truncate_to(self, offset: int) -> None:
        """Drop the log from `offset`; a controller that applied records there (a former
        leader whose renouncing did not come first) forgets them."""
        if self.controller.last_applied_offset >= offset:
            self.revert_uncommitted(f"the log is truncated to offset {offset}")
        self.writes.truncate_to(offset)
        self.applied_end = min(self.applied_end, self.log.end_offset)

    def download_snapshot(
        self, action: StartSnapshotFetch | WriteSnapshotChunk | InstallSnapshot, now_ms: int
    ) -> None:
        """A follower below the leader's log start fetches its snapshot; once installed,
        the standby controller is rebuilt from it and the log restarts at its end."""
        try:
            match action:
                case StartSnapshotFetch(snapshot_id=snapshot_id):
                    self.download.start(snapshot_id)
                case WriteSnapshotChunk(snapshot_id=snapshot_id, position=position, data=data):
                    self.download.write(snapshot_id, position, data)
                case InstallSnapshot(snapshot_id=snapshot_id):
                    self.download.install(snapshot_id)
                    self.snapshots.on_truncated(0)
                    self.controller = self._new_controller()
                    with collector_paused():
                        load_newest_snapshot(self.log, self.controller)
                    self.applied_end = snapshot_id.end_offset
                    self.driver.on_flushed(snapshot_id.end_offset, now_ms)
        except OSError as exc:
            self.fault_handler("Unable to write a snapshot fetched from the leader", exc)

    def on_high_watermark(self, offset: int, now_ms: int) -> None:
        """Everything below `offset` is committed: a standby (or a leader not yet
        active) replays it; a leader whose epoch start is committed activates."""
        self.writes.commit(offset)
        if not self.active:
            self._replay_committed(min(offset, self.log.end_offset))
        self.controller.commit(offset - 1)
        self.snapshots.on_committed(offset, now_ms)
        if self.snapshots.wanted is not None:
            self._tick_wanted.set()
        start = self.pending_activation
        if (
            start is not None
            and self.raft.is_leader
            and offset > start
            and self.applied_end > start
        ):
            self._activate(now_ms)

    def on_became_leader(self, action: BecameLeader) -> None:
        log.info(
            "Node %d is the leader of epoch %d from offset %d",
            self.settings.node_id,
            action.epoch,
            action.epoch_start_offset,
        )
        self.pending_activation = action.epoch_start_offset

    def on_state_changed(self, action: StateChanged) -> None:
        log.info(
            "Node %d is %s in epoch %d (leader %d)",
            self.settings.node_id,
            action.state,
            action.epoch,
            action.leader_id,
        )
        if action.state == LEADER_STATE:
            return
        self.writes.interrupt_waits()
        self.pending_activation = None
        if self.active:
            # Kafka's QuorumController.renounce: forget what is not committed, answer the
            # waiting writes NOT_CONTROLLER, stop the active controller's periodic work.
            self.active = False
            self.controller.deactivate()
            self.revert_uncommitted(f"leadership moved to epoch {action.epoch}")
            self.applied_end = min(self.log.end_offset, self.writes.committed_offset)

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
        return self.writes.append_result(result, self.raft.epoch, now_ms)

    def append_values(self, values: Sequence[bytes], now_ms: int, *, atomic: bool) -> int:
        return self.writes.append_values(values, self.raft.epoch, now_ms, atomic=atomic)

    def revert_uncommitted(self, reason: str) -> None:
        """Take the controller back to the committed offset and fail the writes waiting
        for records above it (refused appends and lost leadership)."""
        committed = self.writes.committed_offset
        log.warning("Reverting the controller to committed offset %d: %s", committed - 1, reason)
        self.controller.revert_to(committed - 1)
        self.writes.abandon()

    async def wait_committed(self, end_offset: int, generation: int | None = None) -> None:
        await self.writes.wait_committed(end_offset, generation)

    async def wait_log_growth(self, beyond: int, deadline: float) -> None:
        await self.writes.wait_log_growth(beyond, deadline)

    async def wait_log_growth_or_commit(self, beyond: int, deadline: float) -> None:
        await self.writes.wait_log_growth_or_commit(beyond, deadline)

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
        self._tick_wanted.set()
        return end_offset, generation

    async def run_controller_write(self, result: ControllerResult) -> None:
        """Append a controller result's records and wait for their commit; raises
        AppendFailed when they were refused or taken back."""
        if result.records:
            end_offset, generation = self.start_write(result, wall_clock_ms())
            await self.wait_committed(end_offset, generation)

    # -- periodic work ------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """The active controller's periodic work (fence expired brokers, NoOp records...)
        and snapshots, in the driver's turn."""
        if self.active:
            # One fencing per turn, as Kafka's one per event: heartbeats run in between.
            result = self.controller.tick(now_ms, self.log.end_offset, max_fenced=1)
            if result is not None:
                try:
                    self.append_result(result, now_ms)
                except AppendFailed as exc:
                    log.error("Periodic controller write failed: %s", exc)
        self.snapshot_work(now_ms)

    async def run_ticks(self) -> None:
        """Run `tick` whenever the controller or the snapshots have something due."""
        while True:
            await self.driver.call(self.tick)
            deadline = min(self.controller.next_deadline_ms(), self.snapshots.next_deadline_ms())
            delay_ms = max(deadline - wall_clock_ms(), 1)
            with trio.move_on_after(min(delay_ms, 1000) / 1000):
                await self._tick_wanted.wait()
            self._tick_wanted = trio.Event()

    def snapshot_work(self, now_ms: int) -> None:
        """Write a due snapshot of the committed image and clean the log when due; an
        I/O error is fatal, as Kafka's snapshot generation fault is."""
        try:
            if self._snapshot_jobs is None:
                self.snapshots.maybe_write(self.controller, self.committed_offset, now_ms)
            else:
                job = self.snapshots.maybe_begin(self.controller, self.committed_offset, now_ms)
                if job is not None:
                    self._snapshot_jobs.send_nowait(job)
            self.snapshots.maybe_clean(now_ms)
        except OSError as exc:
            self.fault_handler("KRaft snapshot file generation or log cleaning error", exc)

    async def run_snapshot_writer(self, jobs: trio.MemoryReceiveChannel[SnapshotJob]) -> None:
        """Write each begun snapshot a slice at a time, letting the other tasks run
        between slices (the job holds a consistent copy of the image, which changes
        meanwhile); an I/O error is fatal, as in `snapshot_work`."""
        async for job in jobs:
            steps = self.snapshots.steps(job)
            try:
                while True:
                    try:
                        next(steps)
                    except StopIteration:
                        break
                    await trio.sleep(0)
            except OSError as exc:
                self.fault_handler("KRaft snapshot file generation or log cleaning error", exc)
            finally:
                steps.close()

    def _credit_stall(self, ms: float) -> None:
        self.controller.tracker.credit_stall(int(ms))

    async def run(self) -> None:
        """The node's tasks (the raft driver, the group-commit flusher, the periodic
        work and the snapshot writer) until cancelled; `loop_watch` times the loop's
        steps meanwhile."""
        send, receive = trio.open_memory_channel[SnapshotJob](1)
        trio.lowlevel.add_instrument(self.loop_watch)
        self._snapshot_jobs = send
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.driver.run)
                nursery.start_soon(self.writes.run_flusher, self.driver.call)
                nursery.start_soon(self.run_ticks)
                nursery.start_soon(self.run_snapshot_writer, receive)
        finally:
            self._snapshot_jobs = None
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
