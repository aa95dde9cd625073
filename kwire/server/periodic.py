"""The node's periodic work: the active controller's timers (fencing brokers whose
session expired, NoOp records, leader rebalancing, expired delegation tokens: what
QuorumController schedules on its event queue) and snapshots of the committed image
(KIP-630: written when due, a slice at a time while the node runs, and the log cleaned).

An unexpected exception of the controller's periodic step is a fault
(`kwire.server.faults`, event `periodicWork`): logged, counted, renounced; the ticks go on.

`run_ticks` runs `tick` in the raft driver's turn whenever the controller or the snapshots
have something due, or when woken (`wake`: a write, an activation, a snapshot wanted);
`run_snapshot_writer` writes each begun snapshot a slice at a time. An I/O error while
writing a snapshot or cleaning the log is fatal, as Kafka's snapshot generation fault is.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from kwire.server.faults import PERIODIC_WORK
from kwire.server.node_settings import wall_clock_ms
from kwire.server.snapshots import SnapshotJob
from kwire.server.write_path import AppendFailed

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.node")

MAX_TICK_SLEEP_S = 1.0  # the periodic work runs at least this often


class PeriodicWork:
    """Runs the node's periodic work; `wanted` is set (and replaced) to run it now."""

    def __init__(self, node: ControllerNode) -> None:
        self.node = node
        self.wanted = trio.Event()
        # While the node runs, due snapshots go to its writer task, which writes them a
        # slice at a time; otherwise `tick` writes them at once.
        self.snapshot_jobs: trio.MemorySendChannel[SnapshotJob] | None = None

    def wake(self) -> None:
        """Run the periodic work in the driver's next turn."""
        self.wanted.set()

    def tick(self, now_ms: int) -> None:
        """The active controller's periodic work (fence expired brokers, NoOp records...)
        and snapshots, in the driver's turn."""
        node = self.node
        if node.active and not node.raft.resigning:  # (no writes while handing over)
            began = time.perf_counter()
            try:
                # One fencing per turn, as Kafka's one per event: heartbeats run in between.
                result = node.controller.tick(now_ms, node.log.end_offset, max_fenced=1)
                if result is not None:
                    node.append_result(result, now_ms)
            except AppendFailed as exc:
                log.error("Periodic controller write failed: %s", exc)
            except Exception as exc:
                # A fault (kwire.server.faults): logged, counted, renounced in this step.
                node.faults.handle(PERIODIC_WORK, exc, began, now_ms)
        self.snapshot_work(now_ms)

    async def run_ticks(self) -> None:
        """Run `tick` whenever the controller or the snapshots have something due."""
        node = self.node
        while True:
            await node.driver.call(node.tick)
            deadline = min(node.controller.next_deadline_ms(), node.snapshots.next_deadline_ms())
            delay_ms = max(deadline - wall_clock_ms(), 1)
            with trio.move_on_after(min(delay_ms / 1000, MAX_TICK_SLEEP_S)):
                await self.wanted.wait()
            self.wanted = trio.Event()

    def snapshot_work(self, now_ms: int) -> None:
        """Write a due snapshot of the committed image and clean the log when due; an
        I/O error is fatal, as Kafka's snapshot generation fault is."""
        node = self.node
        snapshots = node.snapshots
        try:
            if node.replay.backlog:
                pass  # the image is older than the high watermark: snapshot it once replayed
            elif self.snapshot_jobs is None:
                snapshots.maybe_write(node.controller, node.committed_offset, now_ms)
            else:
                job = snapshots.maybe_begin(node.controller, node.committed_offset, now_ms)
                if job is not None:
                    self.snapshot_jobs.send_nowait(job)
            snapshots.maybe_clean(now_ms)
        except OSError as exc:
            node.fault_handler("KRaft snapshot file generation or log cleaning error", exc)

    async def run_snapshot_writer(self, jobs: trio.MemoryReceiveChannel[SnapshotJob]) -> None:
        """Write each begun snapshot a slice at a time, letting the other tasks run
        between slices (the job holds a consistent copy of the image, which changes
        meanwhile); an I/O error is fatal, as in `snapshot_work`."""
        async for job in jobs:
            steps = self.node.snapshots.steps(job)
            try:
                while True:
                    try:
                        next(steps)
                    except StopIteration:
                        break
                    await trio.sleep(0)
            except OSError as exc:
                self.node.fault_handler("KRaft snapshot file generation or log cleaning error", exc)
            finally:
                steps.close()
