"""Broker sessions: the unfenced brokers in order of last contact (Kafka's
BrokerHeartbeatManager and its BrokerHeartbeatStateList)."""

from __future__ import annotations

from kwire.controller.heartbeats import BrokerHeartbeatTracker

TIMEOUT_MS = 9000


def tracker_with(*contacts: tuple[int, int]) -> BrokerHeartbeatTracker:
    """A tracker where each (broker id, time) registered unfenced, in that order."""
    tracker = BrokerHeartbeatTracker(TIMEOUT_MS)
    for broker_id, at_ms in contacts:
        tracker.now_ms = at_ms
        tracker.register(broker_id, fenced=False)
    return tracker


def test_the_longest_silent_unfenced_broker_expires_first() -> None:
    tracker = tracker_with((1, 0), (2, 10), (3, 20))
    tracker.now_ms = 30
    tracker.touch(1, fenced=False, metadata_offset=5)  # broker 1 is now the newest contact
    assert tracker.next_check_ms() == 10 + TIMEOUT_MS
    tracker.now_ms = 10 + TIMEOUT_MS
    assert tracker.find_one_stale_broker() is None  # exactly at the timeout: still valid
    tracker.now_ms = 10 + TIMEOUT_MS + 1
    assert tracker.find_one_stale_broker() == 2


def test_brokers_heard_from_in_the_same_millisecond_expire_in_the_order_they_were_heard() -> None:
    tracker = tracker_with((3, 0), (1, 0), (2, 0))
    tracker.touch(3, fenced=False, metadata_offset=-1)  # same millisecond: after 1 and 2
    tracker.now_ms = TIMEOUT_MS + 1
    expired = []
    while (stale := tracker.find_one_stale_broker()) is not None:
        expired.append(stale)
        tracker.fence(stale)
    assert expired == [1, 2, 3]
    assert tracker.next_check_ms() == 2**63 - 1


def test_fenced_and_removed_brokers_never_expire() -> None:
    tracker = tracker_with((1, 0), (2, 5), (3, 10))
    tracker.fence(1)
    tracker.remove(2)
    tracker.now_ms = 7
    tracker.touch(3, fenced=True, metadata_offset=-1)  # a heartbeat that fences it
    assert tracker.next_check_ms() == 2**63 - 1
    tracker.now_ms = 10 * TIMEOUT_MS
    assert tracker.find_one_stale_broker() is None


def test_sessions_forgotten_by_a_new_controller_term_do_not_expire() -> None:
    tracker = tracker_with((1, 0), (2, 5))
    tracker.sessions.clear()  # QuorumController.deactivate
    tracker.now_ms = 100
    tracker.register(2, fenced=False)
    assert tracker.next_check_ms() == 100 + TIMEOUT_MS
    tracker.now_ms = 100 + TIMEOUT_MS + 1
    assert tracker.find_one_stale_broker() == 2


def test_a_restart_tracks_only_the_registrations_it_is_given() -> None:
    # ClusterControlManager.activate builds a new BrokerHeartbeatManager from the image's
    # registrations: broker 2 (gone from the image) and broker 1 (fenced there) do not expire.
    tracker = tracker_with((1, 0), (2, 5), (3, 10))
    tracker.now_ms = 100
    tracker.restart([(1, True), (3, False)])
    assert sorted(tracker.sessions) == [1, 3]
    assert tracker.next_check_ms() == 100 + TIMEOUT_MS
    tracker.now_ms = 100 + TIMEOUT_MS + 1
    assert tracker.find_one_stale_broker() == 3
    tracker.fence(3)
    assert tracker.find_one_stale_broker() is None


def test_a_forgotten_tracker_has_nothing_to_expire() -> None:
    tracker = tracker_with((1, 0), (2, 5))
    tracker.forget_all()  # QuorumController.deactivate (Kafka: heartbeatManager = null)
    tracker.now_ms = 10 * TIMEOUT_MS
    assert tracker.sessions == {}
    assert tracker.next_check_ms() == 2**63 - 1
    assert tracker.find_one_stale_broker() is None
