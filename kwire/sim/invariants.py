"""The safety properties the simulator checks after every step, over the whole history.

`History` is told what every node does (as `kwire.sim.node.Observer`) and raises
`InvariantViolation` at the first step that breaks one of:
- ELECTION SAFETY: at most one node is ever leader of a given epoch (across crashes);
- LOG MATCHING: two batches with the same base offset and epoch hold the same bytes and
  follow the same batch, so equal (offset, epoch) means equal logs below it (checked as
  batches are appended, on every node, ever);
- COMMITTED DURABILITY: a committed batch (below some node's high watermark) is never
  changed (every node that commits that offset commits the same batch) and never
  truncated from a log;
- HIGH WATERMARK MONOTONICITY: the high watermark a node announces never decreases while
  its process lives, and the first one a restarted node learns is not below the one it
  had before (bounded by what its log still holds);
- LEADER COMPLETENESS: a node that becomes leader holds every batch committed so far;
- STATE MACHINE SAFETY (`check_images`): every node's controller image equals a fresh
  controller's replay of that node's log up to what it applied, and a standby has applied
  nothing beyond its committed offset. Replaying a whole log is too dear for every step:
  it is checked whenever a controller reverts (lost leadership) or activates (a new
  leader, replayed up to its epoch start), and for every node at the end of a run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kwire.controller.controller import ControllerConfig, QuorumController
from kwire.controller.image import MetadataImage
from kwire.controller.snapshot_image import SnapshotLossError, snapshot_records
from kwire.sim.memory_log import MemoryLog, StoredBatch
from kwire.sim.replay import replay_batch

if TYPE_CHECKING:
    from kwire.raft.state import StateChanged
    from kwire.sim.node import SimNode

BatchKey = tuple[int, int]  # (base offset, epoch)
# A fresh controller's replay, as `image_records`, by (applied end, the bytes of every batch
# replayed): the replay is a function of these alone, so nodes with equal logs share one.
Replays = dict[tuple[int, tuple[bytes, ...]], list[tuple[int, int, bytes]]]


class InvariantViolation(AssertionError):
    """A safety property failed: `invariant` names it, the message says how."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(slots=True)
class _Seen:
    data: bytes
    previous: BatchKey | None


@dataclass(slots=True)
class History:
    """Everything the invariants need to remember; see the module docstring."""

    leaders: dict[int, int] = field(default_factory=dict)  # epoch -> node id
    batches: dict[BatchKey, _Seen] = field(default_factory=dict)
    committed: dict[int, StoredBatch] = field(default_factory=dict)  # base offset -> batch
    committed_end: int = 0  # every offset below is committed (globally)
    committed_by_node: dict[int, int] = field(default_factory=dict)  # node id -> checked end
    high_watermarks: dict[tuple[int, int], int] = field(default_factory=dict)
    controller_config: ControllerConfig = field(default_factory=ControllerConfig)
    replays: Replays = field(default_factory=dict)  # for check_images

    # -- election safety ------------------------------------------------------------------------

    def state_changed(self, node: SimNode, action: StateChanged) -> None:
        if action.state == "leader":
            self.leader_elected(node.node_id, action.epoch)

    def leader_elected(self, node_id: int, epoch: int) -> None:
        other = self.leaders.setdefault(epoch, node_id)
        if other != node_id:
            raise InvariantViolation(
                "election safety", f"nodes {other} and {node_id} both led epoch {epoch}"
            )

    # -- log matching ---------------------------------------------------------------------------

    def appended(self, node: SimNode, batches: Sequence[StoredBatch]) -> None:
        log = node.log
        index = len(log.batches) - len(batches)
        for batch in batches:
            previous = log.batches[index - 1] if index > 0 else None
            self.batch_appended(
                node.node_id,
                batch,
                None if previous is None else (previous.base_offset, previous.epoch),
            )
            index += 1

    def batch_appended(self, node_id: int, batch: StoredBatch, previous: BatchKey | None) -> None:
        key = (batch.base_offset, batch.epoch)
        seen = self.batches.get(key)
        if seen is None:
            self.batches[key] = _Seen(batch.data, previous)
            return
        if seen.data != batch.data:
            raise InvariantViolation(
                "log matching",
                f"node {node_id} holds another batch at offset {key[0]} epoch {key[1]}",
            )
        if seen.previous != previous:
            raise InvariantViolation(
                "log matching",
                f"node {node_id}'s batch at offset {key[0]} epoch {key[1]} follows "
                f"{previous}, elsewhere {seen.previous}",
            )

    # -- committed durability and high watermarks --------------------------------------------

    def high_watermark_advanced(self, node: SimNode, offset: int) -> None:
        key = (node.node_id, node.incarnation)
        before = self.high_watermarks.get(key)
        previous_life = self.high_watermarks.get((node.node_id, node.incarnation - 1), 0)
        if before is None and offset < min(previous_life, node.log.end_offset):
            raise InvariantViolation(
                "high watermark monotonicity",
                f"node {node.node_id} restarted and re-learned high watermark {offset}, below "
                f"the {previous_life} it had before (its log ends at {node.log.end_offset})",
            )
        before = before or 0
        if offset < before:
            raise InvariantViolation(
                "high watermark monotonicity",
                f"node {node.node_id} moved its high watermark from {before} down to {offset}",
            )
        self.high_watermarks[key] = offset
        self.commit_prefix(node.node_id, node.log, min(offset, node.log.end_offset))

    def commit_prefix(self, node_id: int, log: MemoryLog, end: int) -> None:
        """`node_id` says every offset of `log` below `end` is committed."""
        start = self.committed_by_node.get(node_id, 0)
        if end <= start:
            return
        for batch in log.batches_between(start, end):
            known = self.committed.get(batch.base_offset)
            if known is None:
                if batch.base_offset < self.committed_end:
                    raise InvariantViolation(
                        "committed durability",
                        f"node {node_id} commits a batch at offset {batch.base_offset}, "
                        "inside another committed batch",
                    )
                self.committed[batch.base_offset] = batch
                self.committed_end = max(self.committed_end, batch.next_offset)
            elif known.data != batch.data or known.epoch != batch.epoch:
                raise InvariantViolation(
                    "committed durability",
                    f"node {node_id} commits offset {batch.base_offset} (epoch {batch.epoch}) "
                    f"but epoch {known.epoch}'s batch was committed there",
                )
        self.committed_by_node[node_id] = end

    def truncating(self, node: SimNode, offset: int) -> None:
        if offset < node.committed_end:
            raise InvariantViolation(
                "committed durability",
                f"node {node.node_id} truncates to {offset}, below its own high watermark "
                f"{node.committed_end}",
            )
        self.truncated(node.node_id, node.log, offset)

    def truncated(self, node_id: int, log: MemoryLog, offset: int) -> None:
        for batch in log.batches_between(offset, log.end_offset):
            known = self.committed.get(batch.base_offset)
            if known is not None and known.data == batch.data:
                raise InvariantViolation(
                    "committed durability",
                    f"node {node_id} truncates to {offset}, removing the committed batch at "
                    f"offset {batch.base_offset}",
                )
        self.committed_by_node[node_id] = min(self.committed_by_node.get(node_id, 0), offset)

    def node_restarted(self, node_id: int, log: MemoryLog) -> None:
        """A restarted node re-learns its high watermark; what its log holds is checked
        again as it commits."""
        self.committed_by_node[node_id] = 0

    # -- state machine safety at the controller's turning points -----------------------------

    def controller_moved(self, node: SimNode) -> None:
        """A node's controller just reverted (lost leadership) or is about to activate
        (replayed up to its epoch start): its image must be the replay of its log."""
        check_images(node, self.controller_config, self.replays)

    # -- leader completeness ------------------------------------------------------------------

    def became_leader(self, node: SimNode, epoch: int, start: int) -> None:
        self.leader_complete(node.node_id, node.log)

    def leader_complete(self, node_id: int, log: MemoryLog) -> None:
        for base in sorted(self.committed):
            batch = self.committed[base]
            index = log.batch_index(base)
            if index < 0 or log.batches[index].data != batch.data:
                raise InvariantViolation(
                    "leader completeness",
                    f"node {node_id} leads without the committed batch at offset {base} "
                    f"(epoch {batch.epoch})",
                )


def check_images(node: SimNode, config: ControllerConfig, replays: Replays | None = None) -> None:
    """STATE MACHINE SAFETY for one live node (see the module docstring). `replays` keeps
    the fresh replays of a run, to reuse for an equal log."""
    controller = node.controller
    if controller is None:
        return
    applied_end = controller.last_applied_offset + 1
    if not controller.is_active and applied_end > node.committed_end:
        raise InvariantViolation(
            "state machine safety",
            f"standby node {node.node_id} applied up to {applied_end - 1} beyond its "
            f"committed offset {node.committed_end - 1}",
        )
    batches = node.log.batches_between(0, applied_end)
    key = (applied_end, tuple(batch.data for batch in batches))
    expected = None if replays is None else replays.get(key)
    if expected is None:
        fresh = QuorumController(
            node_id=node.node_id,
            cluster_id=node.raft_config.cluster_id,
            config=config,
            rng=random.Random(0),
        )
        for batch in batches:
            replay_batch(fresh, batch, 0, applied_end)
        expected = image_records(fresh.image)
        if replays is not None:
            replays[key] = expected
    if expected != image_records(controller.image):
        raise InvariantViolation(
            "state machine safety",
            f"node {node.node_id}'s controller image differs from the replay of its log "
            f"up to offset {applied_end - 1}",
        )


def image_records(image: MetadataImage) -> list[tuple[int, int, bytes]]:
    """The image as its snapshot's records (api key, version, bytes): two images are
    equal when these are."""
    try:
        records = snapshot_records(image)
    except SnapshotLossError:
        return []
    return [(r.api_key, r.version, r.record.encode(r.version)) for r in records]
