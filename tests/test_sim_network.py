"""The simulator's network: every request ends in exactly one outcome, as the edge reports."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from kwire.sim.events import EventQueue
from kwire.sim.network import Failure, Network, NetworkConfig, PendingRequest


@dataclass
class Harness:
    """Nodes 1 and 2 on a network; node 2 answers every request at once with ("re", x)
    unless `silent`, and both record what reaches them."""

    config: NetworkConfig = field(default_factory=NetworkConfig)
    seed: int = 7
    silent: bool = False
    events: EventQueue = field(init=False)
    network: Network = field(init=False)
    received: list[tuple[int, Any, bool]] = field(default_factory=list)
    outcomes: list[tuple[int, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.events = EventQueue()
        self.network = Network(self.events, random.Random(self.seed), self.config)
        self.network.on_request = self._request
        self.network.on_response = lambda p, r: self.outcomes.append((self.events.now_ms, r))
        self.network.on_failure = lambda p, f: self.outcomes.append((self.events.now_ms, f))
        self.network.node_started(1, 1)
        self.network.node_started(2, 1)

    def _request(self, pending: PendingRequest, duplicate: bool) -> None:
        self.received.append((self.events.now_ms, pending.request, duplicate))
        if not self.silent:
            self.network.respond(pending, ("re", pending.request))

    def run(self, until_ms: int = 10_000) -> None:
        while (t := self.events.next_time_ms()) is not None and t <= until_ms:
            self.events.step()


def test_a_request_is_answered_within_two_delays() -> None:
    h = Harness(NetworkConfig(min_delay_ms=3, max_delay_ms=3))
    h.network.send(1, 2, "ping")
    h.run()
    assert h.received == [(3, "ping", False)]
    assert h.outcomes == [(6, ("re", "ping"))]


def test_a_request_to_a_stopped_node_is_refused() -> None:
    h = Harness(NetworkConfig(failure_delay_ms=1))
    h.network.node_crashed(2)
    h.network.send(1, 2, "ping")
    h.run()
    assert h.received == []
    assert h.outcomes == [(1, Failure.CONNECTION_REFUSED)]


def test_a_crash_with_the_request_in_flight_loses_the_connection() -> None:
    h = Harness(NetworkConfig(min_delay_ms=5, max_delay_ms=5, failure_delay_ms=1), silent=True)
    h.network.send(1, 2, "ping")
    h.run(until_ms=6)  # delivered, unanswered
    assert [r for _, r, _ in h.received] == ["ping"]
    crashed_at = h.events.now_ms
    h.network.node_crashed(2)
    h.network.node_started(2, 2)  # a new process does not answer the old connection
    h.run()
    assert h.outcomes == [(crashed_at + 1, Failure.CONNECTION_LOST)]


def test_a_silent_peer_times_out_when_answers_may_come_later_than_the_timeout() -> None:
    # Delays that can add up past the timeout make every request timed (not only the
    # ones known to be lost), so a peer that never answers is timed out too.
    h = Harness(NetworkConfig(request_timeout_ms=50, max_delay_ms=30), silent=True)
    h.network.send(1, 2, "ping")
    h.run()
    assert h.outcomes == [(50, Failure.TIMEOUT)]


def test_a_partition_drops_requests_and_they_time_out_then_heal_restores_delivery() -> None:
    h = Harness(NetworkConfig(request_timeout_ms=500, min_delay_ms=1, max_delay_ms=1))
    h.network.partition({1}, {2})
    h.network.send(1, 2, "cut")
    h.run()
    assert h.received == [] and h.outcomes == [(500, Failure.TIMEOUT)]
    h.network.heal()
    h.network.send(1, 2, "healed")
    h.run()
    assert h.outcomes[-1] == (502, ("re", "healed"))


def test_a_one_way_cut_loses_the_answer_not_the_request() -> None:
    h = Harness(NetworkConfig(request_timeout_ms=500, min_delay_ms=1, max_delay_ms=1))
    h.network.cut_link(2, 1)
    h.network.send(1, 2, "ping")
    h.run()
    assert [r for _, r, _ in h.received] == ["ping"]
    assert h.outcomes == [(500, Failure.TIMEOUT)]


def test_a_late_answer_after_the_timeout_is_discarded() -> None:
    h = Harness(NetworkConfig(request_timeout_ms=10, min_delay_ms=8, max_delay_ms=8))
    h.network.send(1, 2, "slow")
    h.run()
    assert h.outcomes == [(10, Failure.TIMEOUT)]


def test_duplicates_reach_the_destination_twice_but_the_sender_hears_once() -> None:
    h = Harness(NetworkConfig(duplicate_rate=1.0))
    h.network.send(1, 2, "twice")
    h.run()
    assert sorted(d for _, _, d in h.received) == [False, True]
    assert len(h.outcomes) == 1


def test_drops_end_in_timeouts_and_every_request_has_exactly_one_outcome() -> None:
    h = Harness(NetworkConfig(drop_rate=0.3, reorder_rate=0.5, request_timeout_ms=100), seed=3)
    for i in range(200):
        h.network.send(1, 2, i)
    h.run()
    assert len(h.outcomes) == 200
    timeouts = sum(1 for _, o in h.outcomes if o is Failure.TIMEOUT)
    assert 0 < timeouts < 200
    assert not h.network.pending


def test_reordering_delivers_out_of_send_order() -> None:
    h = Harness(NetworkConfig(min_delay_ms=1, max_delay_ms=1, reorder_rate=0.5), seed=1)
    for i in range(50):
        h.network.send(1, 2, i)
    h.run()
    order = [r for _, r, _ in h.received]
    assert sorted(order) == list(range(50)) and order != list(range(50))


def test_the_same_seed_gives_the_same_history_and_another_seed_another() -> None:
    def history(seed: int) -> list[tuple[int, Any]]:
        h = Harness(NetworkConfig(drop_rate=0.2, reorder_rate=0.3, duplicate_rate=0.2), seed=seed)
        for i in range(100):
            h.network.send(1, 2, i)
        h.run()
        return h.outcomes

    assert history(11) == history(11)
    assert history(11) != history(12)


def test_the_sender_crashing_forgets_its_requests() -> None:
    h = Harness(NetworkConfig(min_delay_ms=5, max_delay_ms=5))
    h.network.send(1, 2, "orphan")
    h.network.node_crashed(1)
    h.run()
    assert [r for _, r, _ in h.received] == ["orphan"]  # already on the wire
    assert h.outcomes == []  # nobody is left to hear the answer
