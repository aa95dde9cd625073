"""The simulator's virtual clock: one queue of timed events, in a deterministic order.

Events fire in (time, sequence) order, the sequence being the order they were scheduled
in, so two runs with the same seed see the same events in the same order. Nothing here
reads a wall clock.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable

# (time, sequence, callback, label): tuples order by time, then by scheduling order.
_Entry = tuple[int, int, Callable[[], None], str]


class EventQueue:
    """Timed callbacks on a virtual clock (integer milliseconds)."""

    def __init__(self, start_ms: int = 0) -> None:
        self.now_ms = start_ms
        self._heap: list[_Entry] = []
        self._seq = 0
        self.steps = 0
        self.digest = 0  # CRC-32 of every (time, label) run so far: equal runs, equal digests

    def at(self, at_ms: int, run: Callable[[], None], label: str = "") -> None:
        """Run `run` at `at_ms` (never before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(at_ms, self.now_ms), self._seq, run, label))

    def after(self, delay_ms: int, run: Callable[[], None], label: str = "") -> None:
        self.at(self.now_ms + max(delay_ms, 0), run, label)

    def next_time_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def step(self) -> str | None:
        """Advance the clock to the next event and run it; its label, or None when empty."""
        if not self._heap:
            return None
        at_ms, _, run, label = heapq.heappop(self._heap)
        self.now_ms = at_ms
        self.steps += 1
        self.digest = zlib.crc32(label.encode(), zlib.crc32(at_ms.to_bytes(8), self.digest))
        run()
        return label

    def run_until(self, end_ms: int) -> None:
        """Run every event due at or before `end_ms`, in order (as `step` would, one by
        one); the clock stays at the last event's time."""
        heap = self._heap
        pop = heapq.heappop
        crc32 = zlib.crc32
        while heap and heap[0][0] <= end_ms:
            at_ms, _, run, label = pop(heap)
            self.now_ms = at_ms
            self.steps += 1
            self.digest = crc32(label.encode(), crc32(at_ms.to_bytes(8), self.digest))
            run()

    def __len__(self) -> int:
        return len(self._heap)
