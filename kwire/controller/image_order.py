"""The iteration order of the maps of Kafka's MetadataImage, which a snapshot follows.

Kafka writes a snapshot by iterating its published MetadataImage (MetadataImage.write),
whose maps are ``java.util.HashMap``s rebuilt each time a MetadataDelta is applied
(ClusterDelta.apply, FeaturesDelta.apply, ConfigurationDelta.apply, ...): a new map sized
for the old one's size (or default-sized), holding the old entries in the old order, then
the new keys in the order of the delta's own ``changes`` HashMap (a LinkedHashMap for
ACLs). ScramDelta copies each mechanism's map with the copy constructor and then applies
its changes in place. The resulting order depends on that history, so the image keeps it:
``MAP_KINDS`` names each tracked map, how Kafka rebuilds it and how its keys hash.

Theory of operation. ``touches(image, record)`` lists the (map, key) pairs a record
changes; the image collects them while a metadata transaction is open and, after every
record outside one, publishes them into each touched map's ``MapOrder`` (``publish``).
A HashMap iterates its buckets in index order, each bucket's chain in insertion order, and
a resize splits a bucket keeping that relative order; so a map of ``capacity`` buckets
iterates its keys sorted by (bucket at that capacity, rank), a key's rank being its
insertion sequence, as long as no rebuild shrinks the table. ``MapOrder`` keeps exactly
that: the capacity, each key's rank and the next rank. A rebuild of a map that stays over
48 keys (past every treeify resize, which only tables under 64 buckets make) and had 128+
buckets costs O(keys changed): its final capacity follows from the sizes alone
(``_final_capacity``); removed keys drop out, new keys take the next ranks in the order of
the delta's changes map, and only a shrinking table re-ranks every key (O(n log n)).
Smaller maps are rebuilt in full with ``JavaHashMap``, as ``rebuilt_order`` does, then
ranked by position. The order itself is only materialised when a snapshot is written
(``MapOrder.order``). Every change goes through the image's undo log.

Cost and limit: kwire applies one delta per record (per transaction inside one); Kafka's
MetadataLoader applies one per batch, or per several batches committed together. The
orders differ only when one Kafka delta adds several keys to the same map, which makes
the new keys follow the delta's changes-map order rather than their log order. The order
of config resources and SCRAM mechanisms is not modelled: Kafka hashes those by enum
identity hash codes (ConfigResource.Type, ScramMechanism), which change from run to run.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from uuid import UUID

from kwire.controller.java_order import (
    JavaHashMap,
    bucket_index,
    string_hash,
    table_size_for,
    to_int32,
    uuid_hash,
)
from kwire.controller.undo import UndoLog


class Rebuild(Enum):
    SIZED = "new HashMap<>(old.size()), old entries then new keys"
    DEFAULT = "new HashMap<>(), old entries then new keys"
    COPY = "new HashMap<>(old), then the changes applied in place"


def java_hash(key: Any) -> int:
    """The Java hashCode of a key of one of the image's maps."""
    match key:
        case bool():
            raise TypeError("no boolean keys")
        case int():
            return to_int32(key)
        case str():
            return string_hash(key)
        case UUID():
            return uuid_hash(key)
        case tuple():
            # ClientQuotaEntity: a Map<String, String>, whose hash is the sum of its
            # entries' (key hash ^ value hash).
            return to_int32(sum(string_hash(k) ^ string_hash(v) for k, v in key))
    raise TypeError(f"no Java hash for {key!r}")


def _copy_capacity(size: int) -> int:
    # HashMap(Map m): threshold tableSizeFor((float) size / 0.75f + 1).
    return int(size / 0.75 + 1.0)


def _changes_order(changed: Iterable[Hashable], linked: bool) -> list[Hashable]:
    """The order of the delta's changes map over the keys ``changed`` (first-change order):
    a LinkedHashMap keeps it, a HashMap hashes them."""
    if linked:
        return list(dict.fromkeys(changed))
    if isinstance(changed, dict) and len(changed) <= 1:
        return list(changed)
    by_hash: JavaHashMap[Hashable, None] = JavaHashMap()
    for key in changed:
        by_hash.put(key, java_hash(key), None)
    return by_hash.keys()


def rebuilt_order(
    old: Iterable[Hashable],
    changed: Iterable[Hashable],
    present: set[Any] | frozenset[Any],
    rebuild: Rebuild,
    *,
    linked_changes: bool = False,
) -> tuple[Hashable, ...]:
    """The keys of a map after Kafka applies a delta that changed ``changed`` (in
    first-change order) to a map whose keys were ``old`` (in iteration order);
    ``present`` holds the keys it has afterwards. Costs O(map size): the reference
    ``publish`` follows, and its way for small maps."""
    changes = _changes_order(changed, linked_changes)
    return tuple(_rebuilt_table(tuple(old), changes, present, rebuild).keys())


def _rebuilt_table(
    old: tuple[Hashable, ...],
    changes: list[Hashable],
    present: set[Any] | frozenset[Any],
    rebuild: Rebuild,
) -> JavaHashMap[Hashable, None]:
    result: JavaHashMap[Hashable, None]
    if rebuild is Rebuild.COPY:
        result = JavaHashMap(_copy_capacity(len(old)) if old else None)
        for key in old:
            result.put(key, java_hash(key), None)
        for key in changes:
            if key in present:
                result.put(key, java_hash(key), None)
            else:
                result.remove(key)
        return result
    result = JavaHashMap(len(old) if rebuild is Rebuild.SIZED else None)
    for key in old:
        if key in present:
            result.put(key, java_hash(key), None)
    for key in changes:
        if key in present and key not in result:
            result.put(key, java_hash(key), None)
    return result


# A map rebuilt to more keys than this has 128+ buckets, past every treeify resize
# (int(64 * 0.75)); below it, or from a table under 128 buckets, publish rebuilds in full.
SMALL_SIZE = 48
SMALL_CAPACITY = 128


@dataclass(slots=True)
class MapOrder:
    """The iteration order of one map of Kafka's published image: its keys sorted by
    (bucket at ``capacity``, rank)."""

    capacity: int = 0
    ranks: dict[Any, int] = field(default_factory=dict)
    next_rank: int = 0

    def order(self) -> list[Any]:
        """The keys in iteration order; O(n log n)."""
        ranks = self.ranks
        capacity = self.capacity
        return sorted(ranks, key=lambda k: (bucket_index(java_hash(k), capacity), ranks[k]))


def _final_capacity(
    rebuild: Rebuild, old: dict[Any, int], changes: list[Hashable], has: Callable[[Any], bool]
) -> int:
    """The bucket count of the rebuilt map from the sizes alone (no treeify resize: the
    map ends over SMALL_SIZE keys)."""
    if rebuild is Rebuild.COPY:
        # HashMap(Map m) sizes for m, then the changes apply in place: the table doubles
        # whenever a put passes the threshold.
        capacity = table_size_for(int(len(old) / 0.75 + 1.0)) if old else 16
        count = len(old)
        for key in changes:
            if has(key):
                if key not in old:
                    count += 1
                    if count > int(capacity * 0.75):
                        capacity *= 2
            elif key in old:
                count -= 1
        return capacity
    size = len(old)
    size += sum(1 for key in changes if key not in old and has(key))
    size -= sum(1 for key in changes if key in old and not has(key))
    capacity = table_size_for(len(old)) if rebuild is Rebuild.SIZED else 16
    while size > int(capacity * 0.75):
        capacity *= 2
    return capacity


def publish(
    orders: dict[Any, MapOrder],
    map_id: Any,
    changed: Iterable[Hashable],
    has: Callable[[Any], bool],
    undo: UndoLog,
) -> None:
    """Apply to ``orders[map_id]`` a Kafka delta that changed the keys ``changed`` (in
    first-change order); ``has(key)`` tells whether the map holds ``key`` afterwards.
    Keeps the order ``rebuilt_order`` gives, in O(keys changed) for maps past SMALL_SIZE
    keys and SMALL_CAPACITY buckets (see the module's theory of operation); every change
    goes through ``undo``. An emptied map leaves ``orders``."""
    rebuild, linked = map_rebuild(map_id)
    state = orders.get(map_id)
    old = state.ranks if state is not None else {}
    changes = _changes_order(changed, linked)
    removed = [key for key in changes if key in old and not has(key)]
    added = [key for key in changes if key not in old and has(key)]
    size = len(old) - len(removed) + len(added)
    if size == 0:
        if state is not None:
            undo.pop_item(orders, map_id)
        return
    if state is None or size <= SMALL_SIZE or state.capacity < SMALL_CAPACITY:
        _publish_in_full(orders, map_id, state, changes, has, rebuild, undo)
        return
    capacity = _final_capacity(rebuild, old, changes, has)
    for key in removed:
        undo.pop_item(old, key)
    if capacity < state.capacity:
        # A smaller table reorders the old keys: rank them by their old position.
        for rank, key in enumerate(state.order()):
            if old[key] != rank:
                undo.set_item(old, key, rank)
        undo.set_attr(state, "next_rank", len(old))
    next_rank = state.next_rank
    for key in added:
        undo.set_item(old, key, next_rank)
        next_rank += 1
    if next_rank != state.next_rank:
        undo.set_attr(state, "next_rank", next_rank)
    if capacity != state.capacity:
        undo.set_attr(state, "capacity", capacity)


def _publish_in_full(
    orders: dict[Any, MapOrder],
    map_id: Any,
    state: MapOrder | None,
    changes: list[Hashable],
    has: Callable[[Any], bool],
    rebuild: Rebuild,
    undo: UndoLog,
) -> None:
    old = tuple(state.order()) if state is not None else ()
    present = {key for key in old if has(key)} | {key for key in changes if has(key)}
    table = _rebuilt_table(old, changes, present, rebuild)
    keys = table.keys()
    if state is None:
        ranks = {key: rank for rank, key in enumerate(keys)}
        undo.set_item(orders, map_id, MapOrder(table.capacity, ranks, len(keys)))
        return
    ranks = state.ranks
    for key in old:
        if key not in table:
            undo.pop_item(ranks, key)
    for rank, key in enumerate(keys):
        if ranks.get(key) != rank:
            undo.set_item(ranks, key, rank)
    if state.next_rank != len(keys):
        undo.set_attr(state, "next_rank", len(keys))
    if state.capacity != table.capacity:
        undo.set_attr(state, "capacity", table.capacity)


def java_map_order(keys: Iterable[Hashable], *, initial_capacity: int | None = None) -> list[Any]:
    """``keys`` put in that order into a fresh HashMap, in its iteration order."""
    table: JavaHashMap[Hashable, None] = JavaHashMap(initial_capacity)
    for key in keys:
        table.put(key, java_hash(key), None)
    return table.keys()


# part -> (map id, how Kafka rebuilds it, whether its delta's changes map is linked).
# A map id is a string, or (string, key) for the maps held per resource/entity/mechanism.
PART_MAPS: dict[str, tuple[tuple[str, Rebuild, bool], ...]] = {
    "cluster": (("brokers", Rebuild.SIZED, False), ("controllers", Rebuild.SIZED, False)),
    "features": (("features", Rebuild.SIZED, False),),
    "quotas": (("quota_entities", Rebuild.SIZED, False),),
    "acls": (("acls", Rebuild.DEFAULT, True),),
    "tokens": (("tokens", Rebuild.DEFAULT, False),),
}
PER_KEY_MAPS: dict[str, Rebuild] = {
    "config": Rebuild.SIZED,
    "quota": Rebuild.SIZED,
    "scram": Rebuild.COPY,
}


def map_rebuild(map_id: Any) -> tuple[Rebuild, bool]:
    """How Kafka rebuilds the map ``map_id``, and whether its changes map is linked."""
    if isinstance(map_id, tuple):
        return PER_KEY_MAPS[map_id[0]], False
    for maps in PART_MAPS.values():
        for name, rebuild, linked in maps:
            if name == map_id:
                return rebuild, linked
    raise KeyError(map_id)
