"""Replica placement: Kafka's StripedReplicaPlacer, driven by the caller's seeded Random.

Brokers are grouped by rack. Each partition's first replica (its preferred leader) is an
unfenced broker, taken from the racks in turn; the other replicas come from the following
racks, preferring unfenced brokers. Offsets rotate per partition so leadership spreads
evenly, and the lists are reshuffled after every full round.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kwire.controller.api_error import ApiError, excessively_large_operation
from kwire.protocol.error_codes import ErrorCode


class InvalidReplicationFactor(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REPLICATION_FACTOR, message)


@dataclass(frozen=True, slots=True)
class UsableBroker:
    broker_id: int
    rack: str | None
    fenced: bool


@dataclass(slots=True)
class _BrokerList:
    brokers: list[int] = field(default_factory=list)
    index: int = 0
    offset: int = 0
    epoch: int = 0

    def initialize(self, rng: random.Random) -> None:
        if self.brokers:
            self.brokers.sort()
            self.offset = rng.randrange(len(self.brokers))

    def shuffle(self, rng: random.Random) -> None:
        rng.shuffle(self.brokers)

    def next(self, epoch: int) -> int:
        if not self.brokers:
            return -1
        if self.epoch != epoch:
            self.epoch = epoch
            self.index = 0
            self.offset = (self.offset + 1) % len(self.brokers)
        if self.index >= len(self.brokers):
            return -1
        broker = self.brokers[(self.index + self.offset) % len(self.brokers)]
        self.index += 1
        return broker


@dataclass(slots=True)
class _Rack:
    fenced: _BrokerList = field(default_factory=_BrokerList)
    unfenced: _BrokerList = field(default_factory=_BrokerList)

    def next(self, epoch: int) -> int:
        result = self.unfenced.next(epoch)
        return result if result >= 0 else self.fenced.next(epoch)


def _rack_sort_key(rack: str | None) -> tuple[int, str]:
    # Brokers without a rack sort first, as Kafka's OptionalStringComparator does.
    return (0, "") if rack is None else (1, rack)


class UsableCluster:
    """The usable brokers grouped by rack, fenced and unfenced, each list sorted (what
    every placement starts from): built once per request, O(brokers), so that each
    topic's placement copies lists instead of grouping the brokers again."""

    __slots__ = ("racks", "total", "unfenced")

    def __init__(self, brokers: list[UsableBroker]) -> None:
        # rack -> (fenced, unfenced) broker ids, racks in order of first appearance.
        self.racks: dict[str | None, tuple[list[int], list[int]]] = {}
        self.total = len(brokers)
        self.unfenced = 0
        for broker in brokers:
            lists = self.racks.get(broker.rack)
            if lists is None:
                lists = self.racks[broker.rack] = ([], [])
            if broker.fenced:
                lists[0].append(broker.broker_id)
            else:
                lists[1].append(broker.broker_id)
                self.unfenced += 1
        for fenced, unfenced in self.racks.values():
            fenced.sort()
            unfenced.sort()


class _RackList:
    def __init__(self, rng: random.Random, cluster: UsableCluster) -> None:
        self.rng = rng
        self.racks: dict[str | None, _Rack] = {}
        self.total = cluster.total
        self.unfenced = cluster.unfenced
        for name, (fenced, unfenced) in cluster.racks.items():
            self.racks[name] = _Rack(_BrokerList(fenced.copy()), _BrokerList(unfenced.copy()))
        for rack in self.racks.values():
            rack.fenced.initialize(rng)
            rack.unfenced.initialize(rng)
        self.rack_names = sorted(self.racks, key=_rack_sort_key)
        self.epoch = 0
        self.offset = rng.randrange(len(self.rack_names)) if self.rack_names else 0

    def place(self, replication_factor: int) -> list[int]:
        _check_replication_factor(replication_factor, self.total, self.unfenced)
        if self.epoch == self.unfenced and self.unfenced > 1:
            self._shuffle()
            self.epoch = 0
        if self.offset == len(self.rack_names):
            self.offset = 0
        placed: list[int] = []
        first_rack = self.offset
        while True:
            result = self.racks[self.rack_names[first_rack]].unfenced.next(self.epoch)
            if result >= 0:
                placed.append(result)
                break
            first_rack = (first_rack + 1) % len(self.rack_names)
        rack_index = self.offset
        for _ in range(1, replication_factor):
            result = -1
            while result < 0:
                if rack_index == first_rack:
                    first_rack = -1  # skip the leader's rack once
                else:
                    result = self.racks[self.rack_names[rack_index]].next(self.epoch)
                rack_index = (rack_index + 1) % len(self.rack_names)
            placed.append(result)
        self.epoch += 1
        self.offset += 1
        return placed

    def place_in_one_rack(self, replication_factor: int) -> list[int]:
        """``place`` when every broker shares one rack (no broker.rack set, the usual
        case), after ``place``'s checks passed for this replication factor: the same
        replicas, the same changes of state and the same draws from the generator, with
        the replicas taken from the unfenced list in one slice where they fit."""
        if self.epoch == self.unfenced and self.unfenced > 1:
            self._shuffle()
            self.epoch = 0
        if self.offset == 1:
            self.offset = 0
        epoch = self.epoch
        rack = self.racks[self.rack_names[0]]
        unfenced = rack.unfenced
        brokers = unfenced.brokers
        count = len(brokers)
        if unfenced.epoch != epoch:  # as _BrokerList.next starts a new round
            unfenced.epoch = epoch
            unfenced.index = 0
            unfenced.offset = (unfenced.offset + 1) % count
        start = unfenced.index
        if start + replication_factor <= count:
            first = start + unfenced.offset
            placed = [brokers[(first + k) % count] for k in range(replication_factor)]
            unfenced.index = start + replication_factor
        else:
            placed = [unfenced.next(epoch)]
            placed += [rack.next(epoch) for _ in range(1, replication_factor)]
        self.epoch += 1
        self.offset += 1
        return placed

    def _shuffle(self) -> None:
        self.rng.shuffle(self.rack_names)
        for rack in self.racks.values():
            rack.fenced.shuffle(self.rng)
            rack.unfenced.shuffle(self.rng)


def _check_replication_factor(replication_factor: int, total: int, unfenced: int) -> None:
    if replication_factor <= 0:
        raise InvalidReplicationFactor(
            f"Invalid replication factor {replication_factor}: the replication factor must "
            "be positive."
        )
    if replication_factor > total:
        raise InvalidReplicationFactor(
            f"The target replication factor of {replication_factor} cannot be reached "
            f"because only {total} broker(s) are registered."
        )
    if unfenced == 0:
        raise InvalidReplicationFactor("All brokers are currently fenced.")


def place_replicas(
    rng: random.Random,
    brokers: list[UsableBroker] | UsableCluster,
    num_partitions: int,
    replication_factor: int,
    *,
    max_partitions: int | None = None,
) -> list[list[int]]:
    """Replica lists for ``num_partitions`` new partitions (first replica = leader).

    Raises InvalidReplicationFactor as Kafka's placer does, and, once those checks pass,
    OperationFailed (POLICY_VIOLATION) if ``num_partitions`` exceeds ``max_partitions``.
    A request placing several topics passes one ``UsableCluster`` to each."""
    cluster = brokers if isinstance(brokers, UsableCluster) else UsableCluster(brokers)
    racks = _RackList(rng, cluster)
    # Kafka checks the whole request first, in this order, then each partition again.
    if replication_factor <= 0:
        _check_replication_factor(replication_factor, racks.total, racks.unfenced)
    if racks.unfenced == 0:
        raise InvalidReplicationFactor("All brokers are currently fenced.")
    _check_replication_factor(replication_factor, racks.total, racks.unfenced)
    if max_partitions is not None and num_partitions > max_partitions:
        raise excessively_large_operation()
    if len(racks.rack_names) == 1:
        return [racks.place_in_one_rack(replication_factor) for _ in range(num_partitions)]
    return [racks.place(replication_factor) for _ in range(num_partitions)]
