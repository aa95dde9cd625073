"""Replica placement (Kafka's StripedReplicaPlacer): the one-rack path places exactly as
the general one, drawing the same numbers from the same generator."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwire.controller.placement import (
    InvalidReplicationFactor,
    UsableBroker,
    UsableCluster,
    _RackList,
    place_replicas,
)


def general(seed: int, brokers: list[UsableBroker], partitions: int, rf: int) -> list[list[int]]:
    """Every partition through the general, multi-rack placement."""
    racks = _RackList(random.Random(seed), UsableCluster(brokers))
    return [racks.place(rf) for _ in range(partitions)]


one_rack = st.lists(
    st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=8, unique_by=lambda b: b[0]
).flatmap(
    lambda brokers: st.sampled_from([None, "r1"]).map(
        lambda rack: [UsableBroker(b, rack, fenced) for b, fenced in brokers]
    )
)


@settings(max_examples=300, deadline=None)
@given(one_rack, st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**32))
def test_one_rack_places_as_the_general_placement(
    brokers: list[UsableBroker], partitions: int, rf: int, seed: int
) -> None:
    try:
        expected = general(seed, brokers, partitions, rf)
    except InvalidReplicationFactor:
        # (The whole request is checked first, so its message may differ.)
        with pytest.raises(InvalidReplicationFactor):
            place_replicas(random.Random(seed), brokers, partitions, rf)
        return
    rng, reference = random.Random(seed), random.Random(seed)
    assert place_replicas(rng, brokers, partitions, rf) == expected
    # ... and leaves the generator where the general placement leaves it.
    reference_racks = _RackList(reference, UsableCluster(brokers))
    for _ in range(partitions):
        reference_racks.place(rf)
    assert rng.getstate() == reference.getstate()


racked = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([None, "r1", "r2", "r3"]), st.booleans()),
    min_size=1,
    max_size=12,
    unique_by=lambda b: b[0],
).map(lambda brokers: [UsableBroker(b, rack, fenced) for b, rack, fenced in brokers])


@settings(max_examples=200, deadline=None)
@given(racked, st.lists(st.tuples(st.integers(1, 20), st.integers(1, 4)), min_size=1, max_size=6))
def test_one_usable_cluster_places_every_topic_of_a_request_as_the_broker_list_does(
    brokers: list[UsableBroker], topics: list[tuple[int, int]]
) -> None:
    # A request sets the usable brokers up once; each topic's placement (shuffles
    # included) leaves it as it was for the next topic.
    cluster = UsableCluster(brokers)
    once, each = random.Random(3), random.Random(3)
    for partitions, rf in topics:
        try:
            expected = place_replicas(each, brokers, partitions, rf)
        except InvalidReplicationFactor:
            with pytest.raises(InvalidReplicationFactor):
                place_replicas(once, cluster, partitions, rf)
            continue
        assert place_replicas(once, cluster, partitions, rf) == expected
    assert once.getstate() == each.getstate()


def test_three_unfenced_brokers_lead_in_turn() -> None:
    brokers = [UsableBroker(b, None, False) for b in (1, 2, 3)]
    placements = place_replicas(random.Random(0), brokers, 6, 3)
    assert all(sorted(p) == [1, 2, 3] for p in placements)
    # Each round of three partitions gives each broker one leadership.
    assert sorted(p[0] for p in placements[:3]) == [1, 2, 3]
    assert sorted(p[0] for p in placements[3:]) == [1, 2, 3]
