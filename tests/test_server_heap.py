"""The cyclic collector while a standby replays a backlog (kwire.server.heap,
BacklogCollectorPause): off while far behind, on again after, what a long replay built
frozen out of its reach, and never left off by a pause that did not turn it off."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kwire.server import heap
from kwire.server.heap import BacklogCollectorPause


class _Cycle:
    """An object that refers to itself: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """Each test starts with the collector on and nothing frozen, and leaves it so."""
    enabled = gc.isenabled()
    gc.enable()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


def test_a_pause_turns_the_collector_off_until_it_ends() -> None:
    pause = BacklogCollectorPause()
    pause.begin()
    assert pause.active and not gc.isenabled()
    pause.replayed(10)
    assert not gc.isenabled(), "a short pause goes on"
    pause.end()
    assert not pause.active and gc.isenabled()
    pause.end()  # ending twice changes nothing
    assert gc.isenabled()


def test_a_pause_leaves_a_collector_someone_else_turned_off_off() -> None:
    gc.disable()
    pause = BacklogCollectorPause()
    pause.begin()
    assert not pause.active
    pause.end()
    assert not gc.isenabled(), "another node's (or the program's) pause is not ended here"


def test_a_long_replay_freezes_what_it_built_and_a_short_one_leaves_it_collectable() -> None:
    pause = BacklogCollectorPause()
    pause.begin()
    pause.replayed(heap.FREEZE_AFTER_RECORDS - 1)
    pause.end()
    assert gc.get_freeze_count() == 0
    pause.begin()
    built = _Cycle()
    pause.replayed(heap.FREEZE_AFTER_RECORDS)
    pause.end()
    assert gc.get_freeze_count() > 0
    assert not any(o is built for o in gc.get_objects(2)), "frozen: out of the collector's reach"


def test_a_pause_that_lasts_too_long_collects_then_freezes_and_turns_the_collector_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A standby that never catches up must not pile cyclic garbage up for ever.
    monkeypatch.setattr(heap, "MAX_PAUSE_S", 0.0)
    pause = BacklogCollectorPause()
    pause.begin()
    garbage = _Cycle()
    collected = weakref.ref(garbage)
    del garbage
    kept = _Cycle()
    pause.replayed(1)
    assert not pause.active and gc.isenabled()
    assert collected() is None, "cyclic garbage made while paused was collected"
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects(2))
