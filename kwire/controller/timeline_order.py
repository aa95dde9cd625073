"""The order in which Kafka's controller iterates its TimelineHashMaps.

Kafka's controller keeps topics by name, partitions by id and reassigning topics in
``TimelineHashMap``s (org.apache.kafka.timeline.BaseHashTable): open hashing with a
Fibonacci multiplicative hash of Java's ``hashCode``, capacity doubling at a 0.75 load
factor from 2 slots, chains appended in insertion order, and an iterator that walks the
slots in order and each chain from its end. Answers that list "every topic" or "every
partition" come out in that order, so kwire rebuilds it from the keys' insertion order.

The rebuild assumes the keys were inserted in the given order with no removals: after a
removal Kafka's table may be larger than this one (it never shrinks), which can change the
order of the remaining keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar
from uuid import UUID

K = TypeVar("K")

_MIN_CAPACITY = 2
_MAX_CAPACITY = 1 << 30
_FIBONACCI = -7046029254386353131 % (1 << 64)


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units)."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return _int32(h)


def java_uuid_hash(value: UUID) -> int:
    """Kafka's Uuid.hashCode: the two halves of msb ^ lsb, xored."""
    xor = (value.int >> 64) ^ (value.int & 0xFFFFFFFFFFFFFFFF)
    return _int32((xor >> 32) ^ xor)


def java_int_hash(value: int) -> int:
    return _int32(value)


def _slot(hash_code: int, capacity: int) -> int:
    shift = 65 - capacity.bit_length()
    return ((hash_code * _FIBONACCI) % (1 << 64)) >> shift


def timeline_order(keys: Iterable[K], hash_code: Callable[[K], int]) -> list[K]:
    """``keys`` (in insertion order) in the order a TimelineHashMap holding them iterates."""
    table: list[list[K]] = [[] for _ in range(_MIN_CAPACITY)]
    for size, key in enumerate(keys):
        if (size + 1) * 0.75 > len(table) and len(table) < _MAX_CAPACITY:
            grown: list[list[K]] = [[] for _ in range(len(table) * 2)]
            for chain in table:
                for old in chain:
                    grown[_slot(hash_code(old), len(grown))].append(old)
            table = grown
        table[_slot(hash_code(key), len(table))].append(key)
    return [key for chain in table for key in reversed(chain)]
