"""The iteration orders of the Java hash tables whose order Kafka's controller exposes.

Several controller managers build a response or a list of records by iterating a
``java.util.HashMap``/``HashSet`` (ScramControlManager, ClientQuotaControlManager,
AclControlManager's deletions) or a ``TimelineHashMap`` (AclControlManager's ACLs by id).
Their order is a pure function of the keys' Java ``hashCode`` and the history of
insertions, so kwire reproduces it here instead of sorting.

- ``JavaHashMap`` follows java.util.HashMap (JDK 8+): a power-of-two table (16 by default,
  ``tableSizeFor(n)`` when sized), index ``(h ^ (h >>> 16)) & (capacity - 1)``, new keys at
  the end of their bucket, doubling when the size passes 0.75 of the capacity, and a bucket
  reaching 9 entries in a table under 64 doubling it too (treeifyBin). Cost and limit:
  once a bucket is a tree (9+ colliding keys in a table of 64 or more), Java links a new
  key after its tree parent rather than at the end; kwire keeps appending (only adversarial
  key sets get there).
- ``timeline_slot`` is the slot of Kafka's BaseHashTable (Knuth's multiplicative hash, top
  bits), whose iteration goes slot by slot, each slot in insertion order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar
from uuid import UUID

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_TREEIFY_THRESHOLD = 8
_MIN_TREEIFY_CAPACITY = 64


def to_int32(value: int) -> int:
    value &= _MASK32
    return value - (1 << 32) if value & 0x80000000 else value


def string_hash(s: str | None) -> int:
    """Java's String.hashCode over UTF-16 code units (0 for null, as Objects.hashCode)."""
    if s is None:
        return 0
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & _MASK32
    return to_int32(h)


def uuid_hash(u: UUID) -> int:
    """Kafka's Uuid.hashCode: the two halves xor-ed, then the two ints of that xor-ed."""
    value = u.int
    h = (value >> 64) ^ (value & _MASK64)
    return to_int32((h >> 32) ^ h)


def objects_hash(*hashes: int) -> int:
    """java.util.Objects.hash over the given element hash codes."""
    h = 1
    for item in hashes:
        h = (31 * h + item) & _MASK32
    return to_int32(h)


def table_size_for(capacity: int) -> int:
    """HashMap.tableSizeFor: the smallest power of two >= ``capacity`` (1 for 0)."""
    n = 1
    while n < capacity:
        n <<= 1
    return n


def bucket_index(h: int, capacity: int) -> int:
    """The bucket of hash code ``h`` in a HashMap of ``capacity`` (a power of two)."""
    h &= _MASK32
    return (h ^ (h >> 16)) & (capacity - 1)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class JavaHashMap(Generic[K, V]):
    """Keys (with their Java hash codes) in java.util.HashMap iteration order."""

    __slots__ = ("_buckets", "_hashes", "_initial")

    def __init__(self, initial_capacity: int | None = None) -> None:
        # HashMap() allocates 16 buckets at the first put; HashMap(n) tableSizeFor(n).
        self._initial = 16 if initial_capacity is None else table_size_for(initial_capacity)
        self._buckets: list[list[tuple[K, int, V]]] = []
        self._hashes: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, key: K) -> bool:
        return key in self._hashes

    @property
    def capacity(self) -> int:
        """The number of buckets (0 before the first put)."""
        return len(self._buckets)

    def _index(self, h: int) -> int:
        return bucket_index(h, len(self._buckets))

    def _find(self, key: K) -> tuple[int, int] | None:
        h = self._hashes.get(key)
        if h is None:
            return None
        where_index = self._index(h)
        for i, (k, _, _) in enumerate(self._buckets[where_index]):
            if k == key:
                return where_index, i
        raise AssertionError("a known key is always in its bucket")

    def _resize(self) -> None:
        old = self._buckets
        self._buckets = [[] for _ in range(max(1, len(old) * 2) if old else self._initial)]
        for bucket in old:
            for entry in bucket:
                self._buckets[self._index(entry[1])].append(entry)

    def put(self, key: K, h: int, value: V) -> None:
        where = self._find(key)
        if where is not None:
            where_index, i = where
            self._buckets[where_index][i] = (key, h, value)
            return
        if not self._buckets:
            self._resize()
        bucket = self._buckets[self._index(h)]
        bucket.append((key, h, value))
        self._hashes[key] = h
        if len(bucket) > _TREEIFY_THRESHOLD and len(self._buckets) < _MIN_TREEIFY_CAPACITY:
            self._resize()
        if len(self._hashes) > int(len(self._buckets) * 0.75):
            self._resize()

    def get(self, key: K) -> V | None:
        where = self._find(key)
        return None if where is None else self._buckets[where[0]][where[1]][2]

    def remove(self, key: K) -> V | None:
        where = self._find(key)
        if where is None:
            return None
        del self._hashes[key]
        return self._buckets[where[0]].pop(where[1])[2]

    def items(self) -> Iterator[tuple[K, V]]:
        for bucket in self._buckets:
            for key, _, value in bucket:
                yield key, value

    def keys(self) -> list[K]:
        return [k for k, _ in self.items()]


def timeline_slot(h: int, capacity: int) -> int:
    """BaseHashTable.findSlot: the top log2(capacity) bits of hash * -7046029254386353131."""
    bits = capacity.bit_length() - 1
    if bits == 0:
        return 0
    product = (h * -7046029254386353131) & _MASK64  # Java: int widened to long, wraps
    return product >> (64 - bits)


def timeline_capacity_after_put(size_before: int, capacity: int) -> int:
    """BaseHashTable.baseAddOrReplace grows (doubles) before a put when (size + 1) * 0.75
    exceeds the capacity; the check runs on every put, replacing ones too."""
    if (size_before + 1) * 0.75 > capacity:
        return capacity * 2
    return capacity
