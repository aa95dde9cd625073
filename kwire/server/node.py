"""A controller node: the log, the consensus core and the controller, joined by Trio.

The cores are synchronous and pure; this module is the edge that owns them. One Trio
process runs them all, so a core is never entered twice at once: every call into a core
finishes before the next await. Writes follow one path (`append`): encode a batch,
append and fsync, tell raft the log is durable, and wake whoever waits for the commit.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from kwire.controller.controller import (
    ControllerConfig,
    ControllerResult,
    QuorumController,
    RequestContext,
)
from kwire.controller.records import RecordAndVersion
from kwire.log import MetadataLog, MetadataLogConfig, read_quorum_state, write_quorum_state
from kwire.log.quorum_state import QuorumStateData
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
    ControlRecordType,
    Record,
    build_batch,
    encode_batch,
    encode_control_record_key,
    frame_metadata_record,
    unframe_metadata_record,
)

log = logging.getLogger("kwire.node")

METADATA_PARTITION_DIR = "__cluster_metadata-0"
PLAINTEXT = 0  # security protocol id
# The features this release supports, as its ApiVersions and registrations say.
SUPPORTED_FEATURES = (("kraft.version", 0, 1), ("metadata.version", 1, 21))


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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


class ControllerNode:
    """Owns the metadata log, the raft core and the controller of one kwire node."""

    def __init__(self, settings: NodeSettings, *, seed: int | None = None) -> None:
        self.settings = settings
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
        self._log_grew = trio.Event()
        self._committed = trio.Event()
        self._tick_wanted = trio.Event()
        self.incarnation_id = uuid.uuid4()
        self.replayed = self._replay_log()

    # -- start-up ---------------------------------------------------------------------------

    def _read_quorum_state(self) -> QuorumStateData | None:
        if not self.quorum_state_path.exists():
            return None
        return read_quorum_state(self.quorum_state_path)

    def _replay_log(self) -> int:
        """Feed every metadata record already in the log to the controller."""
        count = 0
        for batch in self.log.read_batches(self.log.log_start_offset):
            if batch.is_control:
                continue
            for record in batch.records:
                api_key, version, body = unframe_metadata_record(record.value or b"")
                message = METADATA_RECORDS[api_key].decode(body, version)
                self.controller.replay(message, version, batch.base_offset + record.offset_delta)
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
                now, self.log.end_offset, self.settings.metadata_version_level
            )
            if result is not None and result.records:
                self.append(result.records, now)
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
        context = RequestContext(api_version=0, client_id=str(self.settings.node_id))
        result = self.controller.handle(request, context, self.log.end_offset, now_ms)
        if result.records:
            self.append(result.records, now_ms)

    # -- actions from the raft core -------------------------------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int | None = None) -> None:
        now_ms = wall_clock_ms() if now_ms is None else now_ms
        for action in actions:
            match action:
                case PersistQuorumState():
                    write_quorum_state(
                        self.quorum_state_path,
                        QuorumStateData(
                            leader_id=action.leader_id,
                            leader_epoch=action.leader_epoch,
                            voted_id=action.voted_id,
                            applied_offset=action.applied_offset,
                            current_voters=tuple(v.node_id for v in self.settings.voters),
                        ),
                    )
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
                    self._committed.set()
                    self._committed = trio.Event()

    # -- writing --------------------------------------------------------------------------------

    def append(self, records: Sequence[RecordAndVersion], now_ms: int) -> int:
        """Append metadata records as one batch; returns the offset after the last one."""
        if not records:
            return self.log.end_offset
        batch = build_batch(
            [
                Record(
                    offset_delta=index,
                    value=frame_metadata_record(
                        item.api_key, item.version, item.record.encode(item.version)
                    ),
                )
                for index, item in enumerate(records)
            ],
            base_timestamp=now_ms,
        )
        return self._append_batch(encode_batch(batch), self.raft.epoch, now_ms)

    def _append_batch(self, data: bytes, epoch: int, now_ms: int) -> int:
        # The append fsyncs before it returns: only then is the batch durable here, and
        # only then may raft count this node's copy towards the high watermark.
        info = self.log.append_as_leader(data, epoch)
        end_offset = info.last_offset + 1
        self.carry_out(self.raft.on_flushed(end_offset, now_ms), now_ms)
        self._log_grew.set()
        self._log_grew = trio.Event()
        return end_offset

    async def wait_committed(self, end_offset: int) -> None:
        """Return once every offset below `end_offset` is committed."""
        while self.committed_offset < end_offset:
            await self._committed.wait()

    async def wait_log_growth(self, beyond: int, deadline: float) -> None:
        """Return when the log end passes `beyond` or at `deadline` (trio time)."""
        with trio.move_on_at(deadline):
            while self.log.end_offset <= beyond:
                await self._log_grew.wait()

    async def run_controller_write(self, result: ControllerResult) -> None:
        """Append a controller result's records and wait for their commit."""
        if result.records:
            end_offset = self.append(result.records, wall_clock_ms())
            self._tick_wanted.set()
            await self.wait_committed(end_offset)

    # -- periodic work ------------------------------------------------------------------------

    async def run_ticks(self) -> None:
        """Fence expired brokers, write NoOp records: whatever the controller asks for."""
        while True:
            now = wall_clock_ms()
            if self.raft.is_leader:
                result = self.controller.tick(now, self.log.end_offset)
                if result is not None and result.records:
                    self.append(result.records, now)
            delay_ms = max(self.controller.next_deadline_ms() - wall_clock_ms(), 1)
            with trio.move_on_after(min(delay_ms, 1000) / 1000):
                await self._tick_wanted.wait()
            self._tick_wanted = trio.Event()

    def close(self) -> None:
        self.log.close()
