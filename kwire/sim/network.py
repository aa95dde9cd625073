"""A seeded virtual network between simulated nodes.

Every request a node sends ends in exactly one outcome for its sender, as the edge
reports them: the response, or a failure (kwire.raft.state.SendFailure):
- CONNECTION_REFUSED: the destination is down when the request is sent (no process
  listening), reported after `failure_delay_ms`;
- CONNECTION_LOST: the destination crashes while the request is in flight and unanswered
  (the socket is reset), reported after `failure_delay_ms`; an answer already written
  still arrives, as the kernel sends what the process wrote before it died;
- TIMEOUT: no answer within `request_timeout_ms` (the request or its response was dropped,
  cut off by a partition, or the answer came too late; a late answer is then discarded).

Faults, all drawn from the one seeded `random.Random`:
- delay: each message takes `min_delay_ms`..`max_delay_ms`; independent delays reorder
  messages, and `reorder_rate` of them take up to `reorder_delay_ms` more;
- drop: `drop_rate` of messages vanish;
- duplicate: `duplicate_rate` of requests are delivered twice (the destination handles both;
  the sender, as an edge matching correlation ids, keeps the first answer only);
- partition: a directed link (a, b) that is cut drops whatever crosses it, at send or at
  delivery; `heal` restores links.

The network never answers a request itself: `deliver_request` hands the request to the
simulation's handler, which answers with `respond` (at once or later: a parked Fetch).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kwire.sim.events import EventQueue


class Failure(enum.Enum):
    """Mirrors kwire.raft.state.SendFailure by name; the node maps it across."""

    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECTION_LOST = "CONNECTION_LOST"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkConfig:
    min_delay_ms: int = 1
    max_delay_ms: int = 4
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    reorder_delay_ms: int = 30
    request_timeout_ms: int = 2000
    failure_delay_ms: int = 1


@dataclass(slots=True)
class PendingRequest:
    request_id: int
    source: int
    source_incarnation: int
    destination: int
    destination_incarnation: int  # the destination's incarnation when it was sent
    request: Any
    sent_ms: int
    done: bool = False
    answered: bool = False  # an answer is on the wire (it arrives even if its sender dies)
    timeout_armed: bool = False


# Handlers the simulation installs: a request arrives at a node; an outcome arrives at its
# sender (response, or failure, never both).
RequestHandler = Callable[[PendingRequest, bool], None]
ResponseHandler = Callable[[PendingRequest, Any], None]
FailureHandler = Callable[[PendingRequest, Failure], None]


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    refused: int = 0
    lost: int = 0
    timed_out: int = 0


class Network:
    """Seeded message delivery between node ids; see the module docstring."""

    def __init__(
        self,
        events: EventQueue,
        rng: random.Random,
        config: NetworkConfig = NetworkConfig(),
    ) -> None:
        self.events = events
        self.rng = rng
        self.config = config
        self.up: dict[int, int] = {}  # node id -> incarnation, for nodes that are running
        self.cut: set[tuple[int, int]] = set()
        self.pending: dict[int, PendingRequest] = {}
        self.stats = NetworkStats()
        self._next_id = 0
        self.on_request: RequestHandler = _unset_request
        self.on_response: ResponseHandler = _unset_response
        self.on_failure: FailureHandler = _unset_failure
        self.fault_free = False  # set once a scenario wants the network to settle
        # Every request gets a timeout event unless no answer can be later than the
        # timeout; then only a request known to be lost (dropped, cut off) gets one.
        longest_round_trip = 2 * (config.max_delay_ms + config.reorder_delay_ms)
        self._eager_timeouts = longest_round_trip >= config.request_timeout_ms

    # -- nodes coming and going ------------------------------------------------------------

    def node_started(self, node_id: int, incarnation: int) -> None:
        self.up[node_id] = incarnation

    def node_crashed(self, node_id: int) -> None:
        """The node's process is gone: its peers' requests to it fail CONNECTION_LOST,
        its own requests are forgotten (nobody is left to hear their outcome)."""
        self.up.pop(node_id, None)
        for pending in sorted(self.pending.values(), key=lambda p: p.request_id):
            if pending.done:
                continue
            if pending.source == node_id:
                pending.done = True
                del self.pending[pending.request_id]
            elif pending.destination == node_id and not pending.answered:
                self.stats.lost += 1
                self._fail_later(pending, Failure.CONNECTION_LOST)

    # -- partitions ----------------------------------------------------------------------------

    def partition(
        self, group: set[int] | frozenset[int], others: set[int] | frozenset[int]
    ) -> None:
        """Cut every link between `group` and `others`, both ways."""
        for a in sorted(group):
            for b in sorted(others):
                if a != b:
                    self.cut.add((a, b))
                    self.cut.add((b, a))

    def cut_link(self, a: int, b: int) -> None:
        self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    def connected(self, a: int, b: int) -> bool:
        return (a, b) not in self.cut

    # -- sending -------------------------------------------------------------------------------

    def send(self, source: int, destination: int, request: Any) -> PendingRequest:
        """Send `request` from `source` (which must be up) to `destination`."""
        self._next_id += 1
        pending = PendingRequest(
            request_id=self._next_id,
            source=source,
            source_incarnation=self.up[source],
            destination=destination,
            destination_incarnation=self.up.get(destination, -1),
            request=request,
            sent_ms=self.events.now_ms,
        )
        self.pending[pending.request_id] = pending
        self.stats.sent += 1
        if destination not in self.up:
            self.stats.refused += 1
            self._fail_later(pending, Failure.CONNECTION_REFUSED)
            return pending
        if self._eager_timeouts:
            self._time_out_later(pending)
        if self._lost_in_transit(source, destination):
            self._time_out_later(pending)
            return pending
        self._deliver_later(pending, duplicate=False)
        if not self.fault_free and self.rng.random() < self.config.duplicate_rate:
            self.stats.duplicated += 1
            self._deliver_later(pending, duplicate=True)
        return pending

    def respond(self, pending: PendingRequest, response: Any) -> None:
        """The destination answers `pending` (dropped if its sender is gone or cut off)."""
        if pending.done:
            return
        if self._lost_in_transit(pending.destination, pending.source):
            self._time_out_later(pending)
            return
        pending.answered = True

        def arrive() -> None:
            if pending.done or not self._alive(pending.source, pending.source_incarnation):
                return
            if not self.connected(pending.destination, pending.source):
                self.stats.dropped += 1
                self._time_out_later(pending)
                return
            self._finish(pending)
            self.on_response(pending, response)

        self.events.after(self._delay(), arrive, "response")

    # -- internals -----------------------------------------------------------------------------

    def _deliver_later(self, pending: PendingRequest, *, duplicate: bool) -> None:
        def arrive() -> None:
            if not self._alive(pending.destination, pending.destination_incarnation):
                return
            if not self.connected(pending.source, pending.destination):
                self.stats.dropped += 1
                self._time_out_later(pending)
                return
            self.stats.delivered += 1
            self.on_request(pending, duplicate)

        self.events.after(self._delay(), arrive, "request")

    def _lost_in_transit(self, a: int, b: int) -> bool:
        if not self.connected(a, b):
            self.stats.dropped += 1
            return True
        if not self.fault_free and self.rng.random() < self.config.drop_rate:
            self.stats.dropped += 1
            return True
        return False

    def _delay(self) -> int:
        delay = self.rng.randint(self.config.min_delay_ms, self.config.max_delay_ms)
        if not self.fault_free and self.rng.random() < self.config.reorder_rate:
            delay += self.rng.randint(1, self.config.reorder_delay_ms)
        return delay

    def _alive(self, node_id: int, incarnation: int) -> bool:
        return self.up.get(node_id) == incarnation

    def _finish(self, pending: PendingRequest) -> None:
        pending.done = True
        self.pending.pop(pending.request_id, None)

    def _fail_later(self, pending: PendingRequest, failure: Failure) -> None:
        def fail() -> None:
            if pending.done or not self._alive(pending.source, pending.source_incarnation):
                return
            self._finish(pending)
            self.on_failure(pending, failure)

        self.events.after(
            self.config.failure_delay_ms,
            fail,
            f"{failure.name} {pending.source}->{pending.destination}",
        )

    def _time_out_later(self, pending: PendingRequest) -> None:
        """Fail `pending` with TIMEOUT at its request timeout (if nothing came first)."""
        if pending.timeout_armed:
            return
        pending.timeout_armed = True
        at = pending.sent_ms + self.config.request_timeout_ms
        self.events.at(at, lambda: self._time_out(pending), "timeout")

    def _time_out(self, pending: PendingRequest) -> None:
        if pending.done or not self._alive(pending.source, pending.source_incarnation):
            return
        self.stats.timed_out += 1
        self._finish(pending)
        self.on_failure(pending, Failure.TIMEOUT)


def _unset_request(pending: PendingRequest, duplicate: bool) -> None:
    raise RuntimeError("Network.on_request is not set")


def _unset_response(pending: PendingRequest, response: Any) -> None:
    raise RuntimeError("Network.on_response is not set")


def _unset_failure(pending: PendingRequest, failure: Failure) -> None:
    raise RuntimeError("Network.on_failure is not set")
