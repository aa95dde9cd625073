"""Bounds on what peers can make the server hold: connections, idle time, request bytes.

Three rules, each Kafka 3.9's (core/.../network/SocketServer.scala, clients/.../network/
Selector.java, clients/.../memory/SimpleMemoryPool.java) unless it says otherwise:

1. **Connection count** (`ConnectionQuotas`). While `max.connections` connections are open,
   the listener stops accepting: new peers wait in the kernel's backlog until one closes
   (Kafka's acceptor blocks in ``waitForConnectionSlot``). A peer whose address already has
   ``max.connections.per.ip`` (or its entry in ``max.connections.per.ip.overrides``)
   connections is accepted and closed at once (Kafka's ``TooManyConnectionsException``).
   A controller has one listener and no inter-broker listener, so no listener is exempt.
2. **Idle time** (`IdleConnections`). A connection on which no byte moved, either way, for
   longer than ``connections.max.idle.ms`` is closed; negative means never. As in Kafka's
   ``Selector.IdleExpiryManager``, a request in flight does not count as activity (Kafka
   mutes the channel, so the selector never sees it): an expired connection is closed at
   once, the request still completes, and its response is dropped.
3. **Request bytes in flight** (`RequestBudget`). The sizes of the frames read but not yet
   answered, over all connections, stay within ``queued.max.request.bytes``; a connection
   whose next frame would exceed it stops reading (back-pressure) until enough is
   answered, in arrival order. Kafka reserves the same way, once the size prefix is read,
   but is lenient (a frame is admitted while any byte is free, so it can overshoot by one
   frame) and frees the bytes once the request is parsed; kwire is strict and frees them
   once the request is answered, so the bound also covers the decoded request (up to
   about 58 times its frame, see docs). Kafka's default, -1, is unbounded; kwire's is
   100 MiB, the least Kafka's validation allows beside the default socket.request.max.bytes.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

import trio

__all__ = [
    "INT32_MAX",
    "ConnectionLimits",
    "ConnectionQuotas",
    "IPAddress",
    "IdleConnections",
    "RequestBudget",
    "canonical_ip",
]

INT32_MAX = 2**31 - 1
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_ip(text: str) -> IPAddress:
    """The address a peer connects from, IPv4-mapped IPv6 read as IPv4. Raises ValueError."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """The listener's limits, with Kafka 3.9's defaults (kwire's for the request budget).

    ``max_connections_per_ip_overrides`` maps host names or addresses, as configured, to
    their limit; the server resolves the names when it starts.
    """

    connections_max_idle_ms: int = 600_000  # connections.max.idle.ms; < 0: never
    max_connections: int = INT32_MAX  # max.connections
    max_connections_per_ip: int = INT32_MAX  # max.connections.per.ip
    max_connections_per_ip_overrides: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({})
    )  # max.connections.per.ip.overrides
    queued_max_request_bytes: int = 100 * 1024 * 1024  # queued.max.request.bytes; <= 0: none


class ConnectionQuotas:
    """Open connections, in total and per address, against their limits (one listener)."""

    def __init__(
        self,
        max_connections: int,
        max_connections_per_ip: int,
        overrides: Mapping[IPAddress, int],
    ) -> None:
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.overrides = dict(overrides)
        self.total = 0
        self.counts: dict[IPAddress, int] = {}
        self._slot_freed = trio.Event()

    def limit_for(self, address: IPAddress) -> int:
        return self.overrides.get(address, self.max_connections_per_ip)

    def slot_available(self) -> bool:
        return self.total < self.max_connections

    async def wait_for_slot(self) -> None:
        """Return once fewer than ``max.connections`` connections are open."""
        while not self.slot_available():
            await self._slot_freed.wait()

    def try_add(self, address: IPAddress) -> bool:
        """Count a new connection from `address`; False (and nothing counted) if that
        address already has its maximum."""
        count = self.counts.get(address, 0)
        if count >= self.limit_for(address):
            return False
        self.counts[address] = count + 1
        self.total += 1
        return True

    def remove(self, address: IPAddress) -> None:
        """Forget a closed connection that `try_add` counted."""
        count = self.counts.pop(address)
        if count > 1:
            self.counts[address] = count - 1
        self.total -= 1
        self._slot_freed.set()
        self._slot_freed = trio.Event()


K = TypeVar("K")


class IdleConnections(Generic[K]):
    """Connections by the trio time of their last activity, least recent first."""

    def __init__(self, max_idle_ms: int, expire: Callable[[K, float], None]) -> None:
        self.max_idle_s = max_idle_ms / 1000
        self._expire = expire  # called with the connection and its idle seconds
        self._last_active: collections.OrderedDict[K, float] = collections.OrderedDict()

    def touch(self, connection: K) -> None:
        """Bytes moved on `connection` now."""
        self._last_active[connection] = trio.current_time()
        self._last_active.move_to_end(connection)

    def remove(self, connection: K) -> None:
        self._last_active.pop(connection, None)

    def expire_now(self) -> float:
        """Expire every connection idle for longer than the limit; the trio time of the
        next check (when the least recently active one could expire)."""
        now = trio.current_time()
        while self._last_active:
            connection, last = next(iter(self._last_active.items()))
            if now - last <= self.max_idle_s:
                return last + self.max_idle_s
            del self._last_active[connection]
            self._expire(connection, now - last)
        return now + self.max_idle_s

    async def run(self) -> None:
        """Close idle connections until cancelled (Kafka checks once per poll; this wakes
        when the least recently active connection could first expire)."""
        while True:
            await trio.sleep_until(self.expire_now())


@dataclass(slots=True)
class _Waiter:
    size: int
    granted: trio.Event = field(default_factory=trio.Event)


class RequestBudget:
    """Bytes of requests read but not yet answered, within a capacity (None: unbounded).

    `acquire` waits, first come first served, until the size fits; the bytes are held
    until `release`. Sizes above the capacity raise ValueError: configuration refuses a
    budget below ``socket.request.max.bytes``, so no frame can be larger.
    """

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most ever held at once
        self.waits = 0  # how many frames had to wait for room
        self._queue: collections.deque[_Waiter] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _fits(self, size: int) -> bool:
        return self.capacity is None or self.in_use + size <= self.capacity

    def _take(self, size: int) -> None:
        self.in_use += size
        self.peak = max(self.peak, self.in_use)

    def try_acquire(self, size: int) -> bool:
        """Take `size` bytes at once if they fit and nobody waits (no checkpoint: the
        caller's read already yielded to the loop); False: `acquire` must wait."""
        if self._queue or not self._fits(size):
            return False
        self._take(size)
        return True

    async def acquire(self, size: int) -> None:
        if self.capacity is not None and size > self.capacity:
            raise ValueError(f"a request of {size} bytes can never fit a budget of {self.capacity}")
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._queue and self._fits(size):
            # Taken with no cancellation point after it: the caller surely holds it.
            self._take(size)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = _Waiter(size)
        self._queue.append(waiter)
        self.waits += 1
        try:
            await waiter.granted.wait()
        except BaseException:
            if waiter.granted.is_set():
                self.release(size)  # granted as we were cancelled: hand it on
            else:
                self._queue.remove(waiter)
                self._grant()  # we may have been blocking smaller requests behind us
            raise

    def release(self, size: int) -> None:
        self.in_use -= size
        self._grant()

    def _grant(self) -> None:
        while self._queue and self._fits(self._queue[0].size):
            waiter = self._queue.popleft()
            self._take(waiter.size)
            waiter.granted.set()
