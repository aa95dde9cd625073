"""The controller on every voter (Kafka's QuorumController on each controller): replaying
the committed log, activating on leadership and registering itself.

- a standby replays committed records as the high watermark advances (hot standby); at
  start-up a node replays its newest snapshot, and the log after it only once raft says it
  is committed (a sole voter commits all of it as soon as it leads, so it replays at once);
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

import contextlib
import gc
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kwire.controller.controller import RequestContext
from kwire.controller.features import LOCAL_SUPPORTED_FEATURES
from kwire.controller.image_load import ImageLoader
from kwire.controller.topic_configs import java_hash_map_order
from kwire.log.metadata_reader import batch_metadata_records
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.raft.state import BecameLeader, StateChanged, Voter
from kwire.raft.voter_set import VoterEndpoint
from kwire.records import iter_batch_headers
from kwire.server.snapshots import load_newest_snapshot
from kwire.server.write_path import AppendFailed

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.node")

PLAINTEXT = 0  # security protocol id
LEADER_STATE = "leader"
# A start-up load of at least this many records freezes what it built out of the cyclic
# garbage collector's reach (see ControllerReplay.replay_start).
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

    def replay_committed(self, end_offset: int) -> int:
        """Feed the controller the metadata records from `applied_end` to `end_offset`
        (whole batches below it), through an ImageLoader; returns how many."""
        count = 0
        if end_offset <= self.applied_end:
            return 0
        node = self.node
        loader = ImageLoader(node.controller.image)
        try:
            while self.applied_end < end_offset:
                data = node.log.read(self.applied_end, max_offset=end_offset)
                if not data:
                    break
                for pos, header in iter_batch_headers(data, verify_crc=False):
                    if not header.is_control:
                        entries = batch_metadata_records(data, pos, header)
                        if header.base_offset < self.applied_end:
                            entries = [e for e in entries if e[0] >= self.applied_end]
                        loader.replay_all(entries)
                        node.metadata_events.replayed(entries, header.base_timestamp)
                        count += len(entries)
                    self.applied_end = header.next_offset
        finally:
            loader.finish()
        return count

    # -- leadership -----------------------------------------------------------------------------

    def on_high_watermark(self, offset: int, now_ms: int) -> None:
        """Everything below `offset` is committed: a standby (or a leader not yet
        active) replays it; a leader whose epoch start is committed activates."""
        node = self.node
        node.writes.commit(offset)
        node.metadata_events.committed(offset)
        if not self.active:
            self.replay_committed(min(offset, node.log.end_offset))
        node.controller.commit(offset - 1)
        node.snapshots.on_committed(offset, now_ms)
        if node.snapshots.wanted is not None:
            node.periodic.wake()
        start = self.pending_activation
        if (
            start is not None
            and node.raft.is_leader
            and offset > start
            and self.applied_end > start
        ):
            self.activate(now_ms)

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
            node.revert_uncommitted(f"leadership moved to epoch {action.epoch}")
            self.applied_end = min(node.log.end_offset, node.writes.committed_offset)

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
        node.periodic.wake()

    def register_self(self, now_ms: int) -> None:
        """Register this controller's endpoint and features, as Kafka's controllers do
        through their ControllerRegistrationManager (here without the network hop): its
        controller listener as advertised (ListenerInfo, its port as bound), else its
        entry in the current voter set."""
        node = self.node
        settings = node.settings
        name = settings.listener_name.upper()
        # (A voter added while running is in no start-up list: its own entry in the core.)
        voter: Voter | VoterEndpoint = (
            next((e for e in settings.local_endpoints if e.name == name), None)
            or node.raft.own_voter()
        )
        if voter.port == 0:  # own_voter(): no listener of that name
            log.error("Node %d: no endpoint on %s to register", settings.node_id, name)
            return
        request = ControllerRegistrationRequest(
            controller_id=settings.node_id,
            incarnation_id=node.incarnation_id,
            zk_migration_ready=False,
            listeners=[
                ControllerRegistrationRequest.Listener(
                    name=settings.listener_name,
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
        context = RequestContext(api_version=0, client_id=str(settings.node_id), internal=True)
        result = node.controller.handle(request, context, node.log.end_offset, now_ms)
        node.append_result(result, now_ms)
