"""The controller on every voter (Kafka's QuorumController on each controller): replaying
the committed log, activating on leadership and registering itself.

- a standby replays committed records as the high watermark advances (hot standby); at
  start-up a node replays its newest snapshot, and the log after it only once raft says it
  is committed (a sole voter commits all of it as soon as it leads, so it replays at once);
- that replay runs in slices of about REPLAY_SLICE_S (`replay_slice`, called by the raft
  driver between events while `backlog` holds), so that a voter far behind (one restarted
  with megabytes of log after its snapshot) still answers Vote, BeginQuorumEpoch and Fetch
  at once; Kafka gets the same from replaying on the controller's own thread, apart from
  raft's. While more than FAR_BEHIND_OFFSETS behind, the cyclic garbage collector is paused
  (kwire.server.heap: its full collections took half of such a replay). Until the backlog is replayed, the controller does not activate and no snapshot
  begins (the image is older than the high watermark);
- a new leader activates once its LeaderChange record (at its epoch start) is committed
  and everything before it replayed (KafkaRaftClient's ListenerContext fires
  handleLeaderChange for the leader only when nextOffset > epochStartOffset; then
  QuorumController.claim): every registered broker gets a fresh session
  (ClusterControlManager.activate), an empty log is bootstrapped, and the controller
  registers itself (ControllerRegistrationManager, here without the network hop);
- a leader that leaves the leader state (`StateChanged`) renounces: its controller
  reverts what it applied beyond the committed offset, and the writes waiting for their
  commit are answered NOT_CONTROLLER.

`ControllerReplay` holds this role's state (`applied_end`, `active`,
`pending_activation`); the node (`kwire.server.node.ControllerNode`) exposes it under the
same names.
"""

from __future__ import annotations

import bisect
import gc
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kwire.controller.controller import RequestContext
from kwire.controller.features import LOCAL_SUPPORTED_FEATURES
from kwire.controller.image_load import ImageLoader
from kwire.controller.topic_configs import java_hash_map_order
from kwire.controller.transactions import TransactionError
from kwire.log.metadata_reader import MetadataEntry, batch_metadata_records
from kwire.raft.state import BecameLeader, StateChanged
from kwire.records import RecordBatchHeader, iter_batch_headers
from kwire.server.controller_registration import registration_request
from kwire.server.heap import BacklogCollectorPause, collector_paused
from kwire.server.snapshots import load_newest_snapshot
from kwire.server.write_path import AppendFailed

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.node")

LEADER_STATE = "leader"
# A start-up load of at least this many records freezes what it built out of the cyclic
# garbage collector's reach (see ControllerReplay.replay_start).
FREEZE_AFTER_RECORDS = 100_000
# A standby's replay of committed records yields to the raft driver's events after about
# this long (seconds), reading at most REPLAY_READ_BYTES of log at a time.
REPLAY_SLICE_S = 0.002
# A slice checks its time every this many records (about 0.5 ms), so that a large batch
# (a CreateTopics of 500 topics is one batch of 1,000 records, about 3 ms of replay) does
# not hold the raft driver's events for its whole replay; the next slice goes on with the
# rest, decoded once.
REPLAY_CHUNK_RECORDS = 200
# A backlog of about 10 ms of replay (a restarted standby replayed 100k topics' log, some
# 300k records, in about 1 s): a standby further behind stands last in a failover.
FAR_BEHIND_OFFSETS = 2000
REPLAY_READ_BYTES = 64 * 1024
# A new leader with more than this many committed offsets left to replay (about 0.2 s at
# 100k topics) hands the leadership over (`maybe_hand_over`): a hand-over takes less.
HAND_OVER_OFFSETS = 50_000
# The features this release supports, as its ApiVersions and registrations say, in the
# order of Kafka's HashMap of them (what a genuine 4.3.1 controller's ApiVersions shows).
SUPPORTED_FEATURES = tuple(
    (name, *LOCAL_SUPPORTED_FEATURES[name])
    for name in java_hash_map_order(list(LOCAL_SUPPORTED_FEATURES))
)


def _offset(entry: MetadataEntry) -> int:
    return entry[0]


@dataclass(slots=True)
class _BatchRest:
    """A batch's records, decoded once, and the index of the next to replay."""

    header: RecordBatchHeader
    entries: list[MetadataEntry]
    index: int


class ControllerReplay:
    """Replays the committed log into the node's controller, and activates it when the
    node leads."""

    def __init__(self, node: ControllerNode) -> None:
        self.node = node
        # The controller is active (the raft leader, caught up to its epoch start).
        self.active = False
        # A leader's epoch start offset until its controller activates.
        self.pending_activation: int | None = None
        # The offset after the last record the controller replayed from the log.
        self.applied_end = 0
        # The committed offset a standby replays toward (a slice at a time, `replay_slice`).
        self.replay_target = 0
        # This node handed a leadership over because it was far behind (`maybe_hand_over`).
        self.handed_over = False
        # The decoded rest of a batch a slice ended inside (`replay_slice`).
        self._rest: _BatchRest | None = None
        # While far behind, the cyclic collector is off (kwire.server.heap).
        self.collector = BacklogCollectorPause()
        # Where and when (time.perf_counter() seconds) replay far behind began.
        self._far_behind_from: tuple[int, float] | None = None

    @property
    def backlog(self) -> bool:
        """Committed records wait to be replayed (`replay_slice` replays some)."""
        return not self.active and self.applied_end < self.replay_target

    @property
    def far_behind(self) -> bool:
        """A standby whose backlog would take longer than a fast-failover step to replay
        (more than FAR_BEHIND_OFFSETS offsets, about 10 ms): as leader it could not serve
        for a while, so it stands after the others (`RaftCore.controller_behind`). The
        last batch or two that every standby replays as they commit do not count."""
        return not self.active and self.replay_target - self.applied_end > FAR_BEHIND_OFFSETS

    # -- replaying ------------------------------------------------------------------------------

    def replay_start(self) -> int:
        """Load the newest snapshot; a sole voter also replays the whole log after it (it
        commits all of it once it leads). Returns how many records were replayed.

        The cyclic garbage collector is off while the image is built (it would walk the
        growing image again and again: a third of the time at a million partitions). After
        a large load (FREEZE_AFTER_RECORDS) what start-up built is frozen out of its reach
        (``gc.freeze``): the image lives as long as the process, and later full collections
        stay as cheap as for a small one. Cost: cyclic garbage among what was frozen is never
        collected (only small loads, as in tests that build many nodes in one process, skip
        the freeze)."""
        node = self.node
        with collector_paused():
            count = load_newest_snapshot(node.log, node.controller)
            latest = node.log.latest_snapshot_id()
            self.applied_end = max(node.log.log_start_offset, latest.end_offset if latest else 0)
            if node.sole_voter:
                count += self.replay_committed(node.log.end_offset)
        if count >= FREEZE_AFTER_RECORDS:
            gc.freeze()
        if count:
            log.info("Replayed %d metadata records up to offset %d", count, self.applied_end)
        return count

    def replay_committed(self, end_offset: int, budget_s: float | None = None) -> int:
        """Feed the controller the metadata records from `applied_end` to `end_offset`
        (whole batches below it), through an ImageLoader; returns how many. With
        `budget_s`, stops after the batch that spends it (seconds), `applied_end` where it
        stopped."""
        count = 0
        if end_offset <= self.applied_end:
            return 0
        node = self.node
        loader = ImageLoader(node.controller.image)
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        read_bytes = 1024 * 1024 if budget_s is None else REPLAY_READ_BYTES
        try:
            rest = self._take_rest()
            if rest is not None:
                count += self._replay_batch(loader, rest, deadline)
            while self._rest is None and self.applied_end < end_offset:
                data = node.log.read(self.applied_end, read_bytes, max_offset=end_offset)
                if not data:
                    break
                for pos, header in iter_batch_headers(data, verify_crc=False):
                    if header.is_control:
                        self.applied_end = header.next_offset
                    else:
                        entries = batch_metadata_records(data, pos, header)
                        first = 0
                        if header.base_offset < self.applied_end:
                            first = bisect.bisect_left(entries, self.applied_end, key=_offset)
                        rest = _BatchRest(header, entries, first)
                        count += self._replay_batch(loader, rest, deadline)
                        if self._rest is not None:
                            break  # the slice ended inside this batch
                    if deadline is not None and time.perf_counter() >= deadline:
                        break  # (after one chunk at least: every slice makes progress)
                if deadline is not None and time.perf_counter() >= deadline:
                    break
        finally:
            loader.finish()
        return count

    def _replay_batch(self, loader: ImageLoader, rest: _BatchRest, deadline: float | None) -> int:
        """Replay the records of a batch from `rest.index`, REPLAY_CHUNK_RECORDS at a time
        with a `deadline`; one passed inside the batch keeps the rest for the next slice
        (`_rest`, `applied_end` at its first record). Returns how many were replayed."""
        node = self.node
        header, entries = rest.header, rest.entries
        step = len(entries) if deadline is None else REPLAY_CHUNK_RECORDS
        count = 0
        while rest.index < len(entries):
            chunk = entries[rest.index : rest.index + step]
            markers = loader.transaction_markers
            try:
                loader.replay_all(chunk)
            except Exception as exc:  # Kafka's standby replay error: fatal
                node.fault_handler(
                    "Unable to apply the records of the batch with baseOffset "
                    f"{header.base_offset} on standby controller: {exc}",
                    exc,
                )
            node.metadata_events.replayed(
                chunk, header.base_timestamp, markers=loader.transaction_markers != markers
            )
            rest.index += len(chunk)
            count += len(chunk)
            late = deadline is not None and time.perf_counter() >= deadline
            if late and rest.index < len(entries):
                self.applied_end = entries[rest.index][0]
                self._rest = rest
                return count
        self.applied_end = header.next_offset
        return count

    def _take_rest(self) -> _BatchRest | None:
        """The rest of the batch the last slice ended inside, if replay goes on there."""
        rest, self._rest = self._rest, None
        if rest is None or rest.entries[rest.index][0] != self.applied_end:
            return None
        return rest

    def restart_from(self, offset: int) -> None:
        """Replay goes on from `offset` (a revert, a truncation, an installed snapshot)."""
        self.applied_end = offset
        self._rest = None

    def replay_slice(self, now_ms: int) -> int:
        """Replay about REPLAY_SLICE_S of the backlog (the raft driver calls this between
        events while `backlog` holds); activates a leader whose epoch start it reached.
        Returns how many records were replayed."""
        node = self.node
        if self.far_behind:
            if self._far_behind_from is None:
                self._far_behind_from = (self.applied_end, time.perf_counter())
                log.info(
                    "Node %d replays %d committed offsets (%d to %d) between raft events",
                    node.settings.node_id,
                    self.replay_target - self.applied_end,
                    self.applied_end,
                    self.replay_target,
                )
            self.collector.begin()
        count = self.replay_committed(self.replay_target, REPLAY_SLICE_S)
        self.collector.replayed(count)
        node.controller.commit(self.applied_end - 1)  # all of it is committed
        if not self.far_behind:
            self.caught_up()
        if not self.backlog:
            self.maybe_activate(node.committed_offset, now_ms)
        return count

    def caught_up(self) -> None:
        """The standby is no longer far behind (or its driver stops): the collector runs
        again (kwire.server.heap); a replay that was far behind says how long it took."""
        self.collector.end()
        began = self._far_behind_from
        if began is not None:
            self._far_behind_from = None
            log.info(
                "Node %d replayed offsets %d to %d in %.0f ms; %d committed offsets remain",
                self.node.settings.node_id,
                began[0],
                self.applied_end,
                (time.perf_counter() - began[1]) * 1000,
                max(0, self.replay_target - self.applied_end),
            )

    # -- leadership -----------------------------------------------------------------------------

    def on_high_watermark(self, offset: int, now_ms: int) -> None:
        """Everything below `offset` is committed: a standby (or a leader not yet
        active) replays it; a leader whose epoch start is committed activates."""
        node = self.node
        node.writes.commit(offset)
        node.metadata_events.committed(offset)
        if not self.active:
            self.replay_target = max(self.replay_target, min(offset, node.log.end_offset))
            if not node.driver.running:  # driven without its task (in-process tests): now
                self.replay_committed(self.replay_target)
        node.controller.commit(offset - 1)
        node.snapshots.on_committed(offset, now_ms)
        if node.snapshots.wanted is not None:
            node.periodic.wake()
        self.maybe_activate(offset, now_ms)

    def maybe_activate(self, high_watermark: int, now_ms: int) -> None:
        """Activate a leader whose epoch start is committed and replayed, with no backlog;
        hand over the leadership of one far behind (`maybe_hand_over`)."""
        start = self.pending_activation
        if start is None or not self.node.raft.is_leader or high_watermark <= start:
            return
        if self.applied_end > start and not self.backlog:
            self.activate(now_ms)
        else:
            self.maybe_hand_over(now_ms)

    def maybe_hand_over(self, now_ms: int) -> None:
        """kwire's, with fast failover: a new leader whose controller has more than
        HAND_OVER_OFFSETS committed offsets left to replay (a voter restarted moments
        before, elected because its log was the longest) could serve nothing until its
        replay ends, hundreds of milliseconds at 100k topics. Once its epoch start is
        committed (a voter has its whole log, so can win), it resigns its epoch naming its
        successors (`RaftCore.renounce`, EndQuorumEpoch), as a faulted controller does: a
        voter ready to serve takes over in tens of milliseconds. Once per process, so two
        voters both far behind hand over at most once each. Safety is Raft's resignation's."""
        node = self.node
        if (
            self.handed_over
            or not node.raft.config.fast_failover
            or len(node.raft.voter_ids) < 2
            or self.replay_target - self.applied_end <= HAND_OVER_OFFSETS
        ):
            return
        self.handed_over = True
        log.info(
            "Node %d leads epoch %d with offsets %d to %d still to replay: handing the "
            "leadership over to a voter ready to serve",
            node.settings.node_id,
            node.raft.epoch,
            self.applied_end,
            self.replay_target,
        )
        node.carry_out(node.raft.renounce(node.raft.epoch, now_ms), now_ms)

    def on_became_leader(self, action: BecameLeader) -> None:
        log.info(
            "Node %d is the leader of epoch %d from offset %d",
            self.node.settings.node_id,
            action.epoch,
            action.epoch_start_offset,
        )
        self.pending_activation = action.epoch_start_offset

    def on_state_changed(self, action: StateChanged) -> None:
        node = self.node
        log.info(
            "Node %d is %s in epoch %d (leader %d)",
            node.settings.node_id,
            action.state,
            action.epoch,
            action.leader_id,
        )
        if action.state == LEADER_STATE:
            return
        node.writes.interrupt_waits()
        self.pending_activation = None
        if self.active:
            # Kafka's QuorumController.renounce: forget what is not committed, answer the
            # waiting writes NOT_CONTROLLER, stop the active controller's periodic work.
            self.active = False
            node.controller.deactivate()
            node.revert_uncommitted(
                f"no longer the leader ({action.state} in epoch {action.epoch})"
            )
            self.restart_from(min(node.log.end_offset, node.writes.committed_offset))
            self.replay_target = self.applied_end

    def activate(self, now_ms: int) -> None:
        """Kafka's QuorumController.claim: fresh sessions for every broker, the empty log
        bootstrapped, this controller registered."""
        node = self.node
        self.pending_activation = None
        self.active = True
        log.info(
            "Node %d is the active controller of epoch %d, next write offset %d",
            node.settings.node_id,
            node.raft.epoch,
            node.log.end_offset,
        )
        try:
            result = node.controller.activate(
                now_ms,
                node.log.end_offset,
                node.settings.metadata_version_level,
                node.settings.bootstrap,
            )
            if result is not None and result.records:
                node.append_result(result, now_ms)
                log.info(
                    "Wrote %d bootstrap records (metadata.version level %d)",
                    len(result.records),
                    node.settings.metadata_version_level,
                )
            self.register_self(now_ms)
        except AppendFailed as exc:
            log.error("Activation write failed: %s", exc)
        except TransactionError as exc:  # Kafka's fatal fault: an open transaction it cannot end
            node.fault_handler("exception while completing controller activation", exc)
            raise
        node.periodic.wake()

    def register_self(self, now_ms: int) -> None:
        """Register this controller's endpoint and features, as Kafka's controllers do
        through their ControllerRegistrationManager, here without the network hop
        (kwire.server.controller_registration; standbys send theirs to the leader)."""
        node = self.node
        settings = node.settings
        request = registration_request(node, SUPPORTED_FEATURES)
        if request is None:
            return
        context = RequestContext(api_version=0, client_id=str(settings.node_id), internal=True)
        result = node.controller.handle(request, context, node.log.end_offset, now_ms)
        node.append_result(result, now_ms)
