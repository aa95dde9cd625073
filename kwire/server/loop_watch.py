"""How long the node's Trio loop is held by one task step (a Trio instrument).

While a task step runs, no other task runs and no socket is read: a heartbeat that
arrived meanwhile waits in its socket. `LoopStallWatch` times every step; a step of at
least ``threshold_ms`` is a stall: it is logged at DEBUG ("the event loop was blocked
for N ms by TASK") and reported to ``on_stall`` (the broker heartbeat tracker's
`credit_stall`, so that the controller's own stall is not counted against the
brokers' sessions). ``longest_ms`` and ``stalled_ms`` keep the longest step and the sum
of the stalls, for benchmarks. Cost: two perf_counter calls per task step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter

import trio

log = logging.getLogger("kwire.loop")

DEFAULT_STALL_THRESHOLD_MS = 100


class LoopStallWatch(trio.abc.Instrument):
    """Times task steps; ``on_stall(ms)`` for each step of at least ``threshold_ms``
    milliseconds (ms: a float)."""

    def __init__(
        self,
        threshold_ms: float = DEFAULT_STALL_THRESHOLD_MS,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self.threshold_s = threshold_ms / 1000
        self.on_stall = on_stall
        self.longest_ms = 0.0
        self.longest_task = ""
        self.stalled_ms = 0.0
        self.stalls = 0
        self._started: float | None = None  # the running step's start

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        started, self._started = self._started, None
        if started is None:
            return  # added during this step
        seconds = perf_counter() - started
        if seconds < self.threshold_s:
            return
        ms = seconds * 1000
        self.stalls += 1
        self.stalled_ms += ms
        if ms > self.longest_ms:
            self.longest_ms, self.longest_task = ms, task.name
        log.debug("The event loop was blocked for %.0f ms by %s", ms, task.name)
        if self.on_stall is not None:
            self.on_stall(ms)
