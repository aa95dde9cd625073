"""The image keeps the iteration order of Kafka's published maps in O(1) per record.

``publish`` (ranks and a capacity per map) must give exactly the order of the full rebuild
``rebuilt_order`` (the reference: a java.util.HashMap rebuilt as each Kafka delta does),
for every rebuild kind, at every size, across the small-map boundaries (48 keys, 128
buckets) up and down; and replaying a long log must cost time linear in its length.
"""

from __future__ import annotations

import gc
import math
import random
import time
from collections.abc import Callable, Hashable
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwire.controller.image import MetadataImage
from kwire.controller.image_order import MapOrder, Rebuild, map_rebuild, publish, rebuilt_order
from kwire.controller.undo import UndoLog
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord

# One map of the image per way Kafka rebuilds one, with the keys it holds.
MAPS: dict[Any, Callable[[random.Random], Hashable]] = {
    "brokers": lambda rng: rng.randrange(-(2**31), 2**31),  # SIZED, HashMap changes
    "acls": lambda rng: UUID(int=rng.getrandbits(128)),  # DEFAULT, LinkedHashMap changes
    "tokens": lambda rng: f"token-{rng.getrandbits(40)}",  # DEFAULT, HashMap changes
    ("scram", 1): lambda rng: f"user{rng.getrandbits(24)}",  # COPY
}


def test_the_maps_under_test_cover_every_rebuild_kind() -> None:
    kinds = {map_rebuild(map_id) for map_id in MAPS}
    assert {rebuild for rebuild, _ in kinds} == set(Rebuild)
    assert {linked for _, linked in kinds} == {True, False}


class Model:
    """One map replayed both ways: ``publish`` into ``orders`` (through an undo log that
    records, so reverts are checked too) and the reference ``rebuilt_order``."""

    def __init__(self, map_id: Any, seed: int) -> None:
        self.map_id = map_id
        self.rng = random.Random(seed)
        self.new_key = MAPS[map_id]
        self.live: set[Hashable] = set()
        self.reference: tuple[Hashable, ...] = ()
        self.orders: dict[Any, MapOrder] = {}
        self.undo = UndoLog()
        self.undo.recording = True
        self.offset = 0

    def delta(self, puts: list[Hashable], removes: list[Hashable], *, revert: bool) -> None:
        changed: dict[Hashable, None] = {}
        before = {
            k: MapOrder(v.capacity, dict(v.ranks), v.next_rank) for k, v in self.orders.items()
        }
        self.offset += 1
        self.undo.offset = self.offset
        for key in puts:
            self.live.add(key)
            changed[key] = None
        for key in removes:
            self.live.discard(key)
            changed[key] = None
        publish(self.orders, self.map_id, changed, self.live.__contains__, self.undo)
        if revert:
            # Taking the delta back restores the order state exactly; then apply it again.
            self.undo.revert_to(self.offset - 1)
            assert self.orders == before
            publish(self.orders, self.map_id, changed, self.live.__contains__, self.undo)
        _, linked = map_rebuild(self.map_id)
        self.reference = rebuilt_order(
            self.reference, changed, self.live, map_rebuild(self.map_id)[0], linked_changes=linked
        )
        state = self.orders.get(self.map_id)
        assert (state.order() if state is not None else []) == list(self.reference)

    def grow(self, count: int, *, revert: bool = False) -> None:
        self.delta([self.new_key(self.rng) for _ in range(count)], [], revert=revert)

    def shrink(self, count: int, *, revert: bool = False) -> None:
        keys = sorted(self.live, key=repr)
        self.delta([], self.rng.sample(keys, min(count, len(keys))), revert=revert)

    def mixed(self, count: int, *, revert: bool = False) -> None:
        keys = sorted(self.live, key=repr)
        puts = [self.new_key(self.rng) for _ in range(count // 2)]
        puts += self.rng.sample(keys, min(count // 4, len(keys)))  # rewritten, still present
        rest = [k for k in keys if k not in set(puts)]
        self.delta(puts, self.rng.sample(rest, min(count // 4, len(rest))), revert=revert)


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["grow", "shrink", "mixed"]),
        st.one_of(st.integers(1, 3), st.integers(1, 60), st.integers(1, 2500)),
        st.booleans(),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(MAPS)), st.integers(0, 2**32), STEPS)
def test_publish_keeps_the_order_of_a_full_rebuild_through_random_histories(
    map_id: Any, seed: int, steps: list[tuple[str, int, bool]]
) -> None:
    model = Model(map_id, seed)
    for step, count, revert in steps:
        getattr(model, step)(count, revert=revert)


def test_publish_keeps_the_order_across_the_small_map_boundaries_up_and_down() -> None:
    for map_id in MAPS:
        model = Model(map_id, seed=9)
        for _ in range(200):  # one key per delta, through 48 keys and 128 buckets
            model.grow(1, revert=model.offset % 7 == 0)
        model.grow(1800)
        for _ in range(60):  # single changes on a big table
            model.mixed(3)
            model.shrink(1)
        model.shrink(1900)  # down under 128 keys: the table shrinks, keys are re-ranked
        for _ in range(40):  # then under 48, one key at a time
            model.shrink(1, revert=model.offset % 5 == 0)
        model.grow(3000)  # a large delta on a small table
        model.shrink(2900)  # a large delta down to a big-capacity small map
        model.grow(60)  # over 48 keys again from a small old size, in 128+ buckets
        model.mixed(400)
        model.shrink(len(model.live))  # emptied: the map leaves the image's orders
        assert map_id not in model.orders


# -- replaying a long log costs linear time ------------------------------------------------------


def replay_time(count: int) -> float:
    """CPU seconds to replay ``count`` ACLs then ``count`` broker ConfigRecords (one
    resource each, as for a cluster of that many brokers), the garbage collector paused."""
    rng = random.Random(count)
    image = MetadataImage()
    image.replay(FeatureLevelRecord(name="metadata.version", feature_level=21), 0, 0)
    records: list[Any] = [
        AccessControlEntryRecord(
            id=UUID(int=rng.getrandbits(128)),
            resource_type=2,
            resource_name=f"t{i}",
            pattern_type=3,
            principal="User:a",
            host="*",
            operation=3,
            permission_type=3,
        )
        for i in range(count)
    ]
    records += [
        ConfigRecord(resource_type=4, resource_name=str(i), name="log.retention.ms", value="1")
        for i in range(count)
    ]
    gc.disable()
    try:
        start = time.process_time()
        for offset, record in enumerate(records, start=1):
            image.replay(record, 0, offset)
        elapsed = time.process_time() - start
    finally:
        gc.enable()
    assert len(image.acls) == count
    assert len(image.kafka_order("acls")) == count
    return elapsed


# Sizes n and GROWTH * n, each timed ROUNDS times back to back and its best time kept: the
# CPU time of this process (others' load does not count) at its least disturbed. Linear
# replay gives a ratio near GROWTH (4), quadratic near GROWTH**2 (16); the bound is their
# geometric middle, so either one is a factor of 2 away from it.
SIZE = 5_000
GROWTH = 4
ROUNDS = 3
RATIO_BOUND = 8.0


def test_replaying_acls_and_configs_costs_linear_time() -> None:
    best = {SIZE: math.inf, GROWTH * SIZE: math.inf}
    for _ in range(ROUNDS):
        for count in best:
            best[count] = min(best[count], replay_time(count))
    small, large = best[SIZE], best[GROWTH * SIZE]
    print(
        f"replay, best of {ROUNDS}: {SIZE:,} + {SIZE:,} records {small:.3f} s, "
        f"{GROWTH * SIZE:,} + {GROWTH * SIZE:,} {large:.3f} s"
    )
    assert large / small < RATIO_BOUND
    assert large < 5.0
