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
record outside one, rebuilds each touched map's order with ``rebuilt_order``.

Cost and limit: kwire applies one delta per record (per transaction inside one); Kafka's
MetadataLoader applies one per batch, or per several batches committed together. The
orders differ only when one Kafka delta adds several keys to the same map, which makes
the new keys follow the delta's changes-map order rather than their log order. The order
of config resources and SCRAM mechanisms is not modelled: Kafka hashes those by enum
identity hash codes (ConfigResource.Type, ScramMechanism), which change from run to run.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from enum import Enum
from typing import Any
from uuid import UUID

from kwire.controller.java_order import JavaHashMap, string_hash, to_int32, uuid_hash


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


def rebuilt_order(
    old: tuple[Hashable, ...],
    changed: Iterable[Hashable],
    present: set[Any],
    rebuild: Rebuild,
    *,
    linked_changes: bool = False,
) -> tuple[Hashable, ...]:
    """The keys of a map after Kafka applies a delta that changed ``changed`` (in
    first-change order) to a map whose keys were ``old`` (in iteration order);
    ``present`` holds the keys it has afterwards."""
    changes: list[Hashable]
    if linked_changes:
        changes = list(dict.fromkeys(changed))
    else:
        by_hash: JavaHashMap[Hashable, None] = JavaHashMap()
        for key in changed:
            by_hash.put(key, java_hash(key), None)
        changes = by_hash.keys()
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
        return tuple(result.keys())
    result = JavaHashMap(len(old) if rebuild is Rebuild.SIZED else None)
    for key in old:
        if key in present:
            result.put(key, java_hash(key), None)
    for key in changes:
        if key in present and key not in result:
            result.put(key, java_hash(key), None)
    return tuple(result.keys())


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
