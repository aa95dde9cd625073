"""The set of voters and its history in the log (KIP-853), sans-IO.

Follows Kafka 4.3.1's ``org.apache.kafka.raft.VoterSet``, ``internals.VoterSetHistory``,
``internals.TreeMapLogHistory`` and ``internals.KRaftControlRecordStateMachine``.

Theory of operation. With ``kraft.version`` 0 the voters are the static
``controller.quorum.voters`` list (`VoterSet.from_static`): ids and one endpoint each, no
directory ids, and they never change. With ``kraft.version`` 1 the voters live in the
metadata log itself, as control records: a ``KRaftVersionRecord`` (the finalized
kraft.version) and a ``VotersRecord`` (every voter's id, directory id, endpoints per
listener and supported kraft.version range). ``kafka-storage format --standalone`` or
``--initial-controllers`` writes the first pair into the bootstrap snapshot
``00000000000000000000-0000000000.checkpoint``; every later snapshot repeats the pair
that holds at its end; AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter append a new
``VotersRecord`` to the log.

`KRaftControlRecords` is fed what the replica reads: the newest snapshot's batches
(their control records count as written at the snapshot's last contained offset, which
is -1 for the bootstrap snapshot) and then the log's batches in offset order. It answers
the voter set and kraft.version as of any offset it has read, and forgets entries when
the log is truncated (a follower's divergence) or its prefix deleted (a new snapshot).
The newest voter set, and the static one while the log holds none, is `last_voter_set`.

Java's HashMap order is kept where Kafka writes it: a `VoterSet` iterates its voters in
the order Kafka's ``HashMap<Integer, VoterNode>`` would (`VoterSet.voters`), so
`to_voters_record` writes voters in Kafka's order, byte for byte.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.records.batch import RecordBatch
from kwire.records.control import ControlRecordType, decode_control_record_key

ZERO_UUID = UUID(int=0)
KRAFT_VERSION_RECORD_VERSION = 0  # ControlRecordUtils.KRAFT_VERSION_CURRENT_VERSION
VOTERS_RECORD_VERSION = 0  # ControlRecordUtils.KRAFT_VOTERS_CURRENT_VERSION
SUPPORTED_KRAFT_VERSIONS = (0, 1)  # what a voter of this release supports (DynamicVoter)


class KRaftVersion(enum.IntEnum):
    """The ``kraft.version`` feature (Kafka's server-common KRaftVersion)."""

    KRAFT_VERSION_0 = 0  # static quorum: controller.quorum.voters
    KRAFT_VERSION_1 = 1  # KIP-853: voters in the log, directory ids in quorum-state

    @classmethod
    def from_level(cls, level: int) -> KRaftVersion:
        try:
            return cls(level)
        except ValueError:
            raise VoterSetError(f"Unknown KRaft feature level: {level}") from None

    @property
    def is_reconfig_supported(self) -> bool:
        return self is not KRaftVersion.KRAFT_VERSION_0

    @property
    def quorum_state_version(self) -> int:
        """The ``data_version`` of ``quorum-state`` at this kraft.version."""
        return int(self)


class VoterSetError(ValueError):
    """A control record or history operation Kafka refuses (IllegalArgumentException)."""


@dataclass(frozen=True, slots=True)
class ReplicaKey:
    """A replica: node id and directory id (``UUID(int=0)``: none known, Kafka's
    ``Optional.empty()``, as for every kraft.version 0 voter)."""

    id: int
    directory_id: UUID = ZERO_UUID

    def __str__(self) -> str:
        return f"ReplicaKey(id={self.id}, directoryId={self.directory_id})"


@dataclass(frozen=True, slots=True)
class VoterEndpoint:
    """One listener of a voter: ``name`` (upper case, as Kafka normalises it), host, port."""

    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class VoterNode:
    """A voter as a VotersRecord carries it: its key, its endpoints (in record order)
    and the kraft.version range it supports, inclusive."""

    key: ReplicaKey
    endpoints: tuple[VoterEndpoint, ...]
    supported_kraft_versions: tuple[int, int] = (0, 0)

    def is_voter(self, replica: ReplicaKey) -> bool:
        """Kafka's VoterNode.isVoter: ids equal and, if this voter has a directory id,
        directory ids equal."""
        if self.key.id != replica.id:
            return False
        return self.key.directory_id == ZERO_UUID or self.key.directory_id == replica.directory_id

    def endpoint(self, listener: str) -> VoterEndpoint | None:
        return next((e for e in self.endpoints if e.name == listener), None)

    def supports(self, version: KRaftVersion) -> bool:
        low, high = self.supported_kraft_versions
        return low <= int(version) <= high


# --- Java HashMap<Integer, _> iteration order --------------------------------------------
_MAX_CAPACITY = 1 << 30
T = TypeVar("T")


def _table_size_for(capacity: int) -> int:
    size = 1
    while size < capacity and size < _MAX_CAPACITY:
        size <<= 1
    return size


def _grown(capacity: int, size: int) -> int:
    # HashMap doubles its table whenever size exceeds capacity * 0.75.
    while size > int(capacity * 0.75) and capacity < _MAX_CAPACITY:
        capacity <<= 1
    return capacity


def _bucket(key: int, capacity: int) -> int:
    h = key & 0xFFFFFFFF  # Integer.hashCode, as an unsigned 32-bit pattern
    return (h ^ (h >> 16)) & (capacity - 1)


class VoterSet:
    """An immutable set of voters by id (Kafka's VoterSet).

    ``capacity`` is the table size of Kafka's HashMap holding the same voters: it
    decides the iteration order (`voters`, `voter_ids`, `to_voters_record`). Build one
    with `from_voters_record`, `from_static`, `from_nodes` or by `add_voter`,
    `remove_voter`, `update_voter` (each returns None where Kafka returns empty).
    """

    __slots__ = ("_nodes", "_capacity", "_order", "_id_set", "_sorted_ids")

    def __init__(self, nodes: Mapping[int, VoterNode], capacity: int) -> None:
        self._nodes = dict(nodes)  # insertion order; iteration adds the bucket order
        self._capacity = _grown(max(1, capacity), len(self._nodes))
        # Computed on first use: an instance is never changed once built.
        self._order: tuple[VoterNode, ...] | None = None
        self._id_set: frozenset[int] | None = None
        self._sorted_ids: tuple[int, ...] | None = None

    # construction, as Kafka builds its maps
    @classmethod
    def empty(cls) -> VoterSet:
        return cls({}, 16)

    @classmethod
    def from_nodes(cls, nodes: Iterable[VoterNode]) -> VoterSet:
        """VoterSet.fromMap of a map filled in this order (DynamicVoters.toVoterSet passes
        a default HashMap, which fromMap copies)."""
        source = VoterSet({n.key.id: n for n in nodes}, 16)
        return cls._copy_of(source._ordered())

    @classmethod
    def _copy_of(cls, nodes: Sequence[VoterNode]) -> VoterSet:
        # new HashMap<>(map): table sized for size / 0.75 + 1, filled in the source's order.
        capacity = _table_size_for(int(len(nodes) / 0.75 + 1.0)) if nodes else 16
        return cls({n.key.id: n for n in nodes}, capacity)

    @classmethod
    def from_voters_record(cls, record: VotersRecord) -> VoterSet:
        """VoterSet.fromVotersRecord: a later voter with a repeated id replaces the earlier."""
        nodes: dict[int, VoterNode] = {}
        for voter in record.voters:
            feature = voter.kraft_version_feature
            nodes[voter.voter_id] = VoterNode(
                ReplicaKey(voter.voter_id, voter.voter_directory_id),
                tuple(VoterEndpoint(e.name, e.host, e.port) for e in voter.endpoints),
                (feature.min_supported_version, feature.max_supported_version),
            )
        return cls(nodes, _table_size_for(len(record.voters)))

    @classmethod
    def from_static(cls, listener: str, voters: Iterable[tuple[int, str, int]]) -> VoterSet:
        """VoterSet.fromInetSocketAddresses: ``controller.quorum.voters`` as (id, host,
        port), no directory ids, kraft.version 0..0."""
        return cls(
            {
                node_id: VoterNode(
                    ReplicaKey(node_id), (VoterEndpoint(listener.upper(), host, port),), (0, 0)
                )
                for node_id, host, port in voters
            },
            16,
        )

    # reading
    def _ordered(self) -> tuple[VoterNode, ...]:
        if self._order is None:
            position = {key: i for i, key in enumerate(self._nodes)}
            keys = sorted(self._nodes, key=lambda k: (_bucket(k, self._capacity), position[k]))
            self._order = tuple(self._nodes[k] for k in keys)
        return self._order

    @property
    def voters(self) -> tuple[VoterNode, ...]:
        """Every voter, in Kafka's HashMap iteration order."""
        return self._ordered()

    def voter_ids(self) -> list[int]:
        return [n.key.id for n in self._ordered()]

    @property
    def id_set(self) -> frozenset[int]:
        """The voters' ids, as a set."""
        if self._id_set is None:
            self._id_set = frozenset(self._nodes)
        return self._id_set

    @property
    def sorted_ids(self) -> tuple[int, ...]:
        """The voters' ids, in ascending order."""
        if self._sorted_ids is None:
            self._sorted_ids = tuple(sorted(self._nodes))
        return self._sorted_ids

    def voter_keys(self) -> set[ReplicaKey]:
        return {n.key for n in self._nodes.values()}

    def node(self, voter_id: int) -> VoterNode | None:
        return self._nodes.get(voter_id)

    def endpoints(self, voter_id: int) -> tuple[VoterEndpoint, ...]:
        """Kafka's listeners(id): empty if ``voter_id`` is not a voter."""
        node = self._nodes.get(voter_id)
        return () if node is None else node.endpoints

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[VoterNode]:
        return iter(self._ordered())

    def __contains__(self, voter_id: object) -> bool:
        return voter_id in self._nodes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VoterSet) and self._nodes == other._nodes

    def __hash__(self) -> int:
        return hash(frozenset(self._nodes.items()))

    def __repr__(self) -> str:
        return f"VoterSet(voters={self.voters!r})"

    def is_voter(self, replica: ReplicaKey) -> bool:
        node = self._nodes.get(replica.id)
        return node is not None and node.is_voter(replica)

    def is_only_voter(self, replica: ReplicaKey) -> bool:
        return len(self._nodes) == 1 and self.is_voter(replica)

    @property
    def majority_size(self) -> int:
        """How many voters make a majority: ``size / 2 + 1`` (Kafka's QuorumState)."""
        return len(self._nodes) // 2 + 1

    def is_majority(self, voter_ids: Iterable[int]) -> bool:
        """Whether these ids (non-voters ignored) are a majority of this set."""
        return len(set(voter_ids) & self._nodes.keys()) >= self.majority_size

    def supports_version(self, version: KRaftVersion) -> bool:
        return all(n.supports(version) for n in self._nodes.values())

    def has_overlapping_majority(self, other: VoterSet) -> bool:
        """Whether every majority of this set meets every majority of ``other``: the two
        differ by at most one voter each way (Kafka's rule, by replica key)."""
        mine, theirs = self.voter_keys(), other.voter_keys()
        return len(mine - theirs) <= 1 and len(theirs - mine) <= 1

    def voter_node_needs_update(self, updated: VoterNode) -> bool:
        node = self._nodes.get(updated.key.id)
        return node is not None and node.is_voter(updated.key) and node != updated

    # changes: a new set, or None where Kafka returns Optional.empty()
    def add_voter(self, voter: VoterNode) -> VoterSet | None:
        if voter.key.id in self._nodes:
            return None
        copy = VoterSet._copy_of(self._ordered())
        return VoterSet({**copy._nodes, voter.key.id: voter}, copy._capacity)

    def remove_voter(self, key: ReplicaKey) -> VoterSet | None:
        node = self._nodes.get(key.id)
        if node is None or node.key != key or len(self._nodes) <= 1:
            return None
        copy = VoterSet._copy_of(self._ordered())
        return VoterSet({i: n for i, n in copy._nodes.items() if i != key.id}, copy._capacity)

    def update_voter(self, voter: VoterNode) -> VoterSet | None:
        node = self._nodes.get(voter.key.id)
        if node is None or not node.is_voter(voter.key):
            return None
        return self._replaced(voter)

    def update_voter_ignoring_directory_id(self, voter: VoterNode) -> VoterSet | None:
        return self._replaced(voter) if voter.key.id in self._nodes else None

    def _replaced(self, voter: VoterNode) -> VoterSet:
        copy = VoterSet._copy_of(self._ordered())
        # HashMap.put of an existing key keeps its place
        return VoterSet({**copy._nodes, voter.key.id: voter}, copy._capacity)

    # writing
    def to_voters_record(self, version: int = VOTERS_RECORD_VERSION) -> VotersRecord:
        """VoterSet.toVotersRecord: voters in Kafka's iteration order."""
        return VotersRecord(
            version=version,
            voters=[
                VotersRecord.Voter(
                    voter_id=n.key.id,
                    voter_directory_id=n.key.directory_id,
                    endpoints=[
                        VotersRecord.Endpoint(name=e.name, host=e.host, port=e.port)
                        for e in n.endpoints
                    ],
                    kraft_version_feature=VotersRecord.KRaftVersionFeature(
                        min_supported_version=n.supported_kraft_versions[0],
                        max_supported_version=n.supported_kraft_versions[1],
                    ),
                )
                for n in self._ordered()
            ],
        )


def kraft_control_values(
    kraft_version: KRaftVersion, voters: VoterSet | None
) -> list[tuple[ControlRecordType, bytes]]:
    """The control records a snapshot's first batch carries after its header (Kafka's
    RecordsSnapshotWriter): none at kraft.version 0; at 1 the KRaftVersionRecord, then the
    VotersRecord if a voter set is known. Raises VoterSetError for voters at version 0."""
    if not kraft_version.is_reconfig_supported:
        if voters is not None:
            raise VoterSetError(f"Voter set ({voters}) not expected when the kraft.version is 0")
        return []
    values = [
        (
            ControlRecordType.KRAFT_VERSION,
            KRaftVersionRecord(
                version=KRAFT_VERSION_RECORD_VERSION, kraft_version=int(kraft_version)
            ).encode(0),
        )
    ]
    if voters is not None:
        values.append((ControlRecordType.KRAFT_VOTERS, voters.to_voters_record().encode(0)))
    return values


def start_of_epoch_control_values(
    history: KRaftControlRecords, local: VoterNode
) -> list[tuple[ControlRecordType, bytes]]:
    """What a new leader writes after its LeaderChange, in the same control batch
    (Kafka's LeaderState.appendStartOfEpochControlRecords): at kraft.version 1, if the
    voters come from the bootstrap snapshot (offset -1) or this leader's own entry differs
    from ``local`` (new endpoints), the KRaftVersionRecord and the VotersRecord with
    ``local`` in place; otherwise nothing. Raises VoterSetError where Kafka throws
    IllegalStateException (no voter set, or ``local`` is not one of the voters)."""
    kraft_version = history.last_kraft_version
    if not kraft_version.is_reconfig_supported:
        return []
    offset = history.last_voter_set_offset
    voters = history.last_voter_set
    if offset is None:
        raise VoterSetError(
            f"The kraft.version is {int(kraft_version)} but there is no voter set in the log "
            f"or checkpoint {voters}"
        )
    if offset != -1 and not voters.voter_node_needs_update(local):
        return []
    updated = voters.update_voter(local)
    if updated is None:
        raise VoterSetError(f"Update expected for leader node {local} and voter set {voters}")
    return kraft_control_values(kraft_version, updated)


class LogHistory(Generic[T]):
    """Values by log offset (Kafka's TreeMapLogHistory): offsets strictly increase; -1 is
    allowed (the bootstrap snapshot's records)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[int, T]] = []

    def add_at(self, offset: int, value: T) -> None:
        if offset < -1:
            raise VoterSetError(f"Next offset {offset} must be greater than or equal to -1")
        if self._entries and offset <= self._entries[-1][0]:
            raise VoterSetError(
                f"Next offset {offset} must be greater than the last offset {self._entries[-1][0]}"
            )
        self._entries.append((offset, value))

    def value_at_or_before(self, offset: int) -> T | None:
        for at, value in reversed(self._entries):
            if at <= offset:
                return value
        return None

    def last_entry(self) -> tuple[int, T] | None:
        return self._entries[-1] if self._entries else None

    def truncate_new_entries(self, end_offset: int) -> None:
        """Forget every entry at ``end_offset`` or later."""
        while self._entries and self._entries[-1][0] >= end_offset:
            self._entries.pop()

    def truncate_old_entries(self, start_offset: int) -> None:
        """Forget entries at or before ``start_offset`` except the last of them, so that
        the value as of ``start_offset`` stays known."""
        keep_from = 0
        for i, (at, _) in enumerate(self._entries):
            if at <= start_offset:
                keep_from = i
        del self._entries[:keep_from]

    def clear(self) -> None:
        self._entries.clear()

    def entries(self) -> list[tuple[int, T]]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class KRaftControlRecords:
    """The kraft.version and voter-set history of the metadata log (Kafka's
    KRaftControlRecordStateMachine with its VoterSetHistory), fed batches.

    ``next_offset`` is the offset of the next batch to feed: -1 before anything was read.
    Call `load_snapshot` with the newest snapshot (if any), then `start_log`, then
    `append` the log's batches from ``next_offset`` on. Offsets are Kafka's: a value
    read from a snapshot counts at the snapshot's end offset - 1.
    """

    __slots__ = ("static_voters", "next_offset", "_voters", "_kraft_versions")

    def __init__(self, static_voters: VoterSet | None = None) -> None:
        self.static_voters = static_voters if static_voters is not None else VoterSet.empty()
        self.next_offset = -1
        self._voters: LogHistory[VoterSet] = LogHistory()
        self._kraft_versions: LogHistory[KRaftVersion] = LogHistory()

    # feeding
    def load_snapshot(self, end_offset: int, batches: Iterable[RecordBatch]) -> None:
        """Replace everything with what snapshot ``end_offset`` holds (the bootstrap
        snapshot has end offset 0); ``next_offset`` becomes ``end_offset``."""
        if end_offset < 0:
            raise VoterSetError(f"snapshot end offset {end_offset} is negative")
        self._voters.clear()
        self._kraft_versions.clear()
        for batch in batches:
            self._handle(batch, end_offset - 1, -1)
        self.next_offset = end_offset

    def load_bootstrap(self, kraft_version: KRaftVersion, voters: VoterSet | None) -> None:
        """Replace everything with a bootstrap checkpoint's values given directly (what
        ``kafka-storage format --initial-controllers`` or ``--standalone`` writes): they
        count at offset -1 and the log is read from 0."""
        self._voters.clear()
        self._kraft_versions.clear()
        if kraft_version.is_reconfig_supported:
            self._kraft_versions.add_at(-1, kraft_version)
        if voters is not None:
            self._voters.add_at(-1, voters)
        self.next_offset = 0

    def skip_to(self, offset: int) -> None:
        """The log below ``offset`` holds no KRaft control record that was not fed (a
        leader's own controller records): read on from ``offset``."""
        self.start_log()
        self.next_offset = max(self.next_offset, offset)

    def start_log(self) -> None:
        """No snapshot: the log is read from offset 0."""
        if self.next_offset == -1:
            self.next_offset = 0

    def append(self, batches: Iterable[RecordBatch]) -> None:
        """Read log batches in offset order. What lies below ``next_offset`` was read
        already and is skipped (a batch may straddle it); a gap raises VoterSetError."""
        self.start_log()
        for batch in batches:
            last = batch.base_offset + batch.last_offset_delta
            if last < self.next_offset:
                continue
            if batch.base_offset > self.next_offset:
                raise VoterSetError(
                    f"batch at offset {batch.base_offset} does not follow offset "
                    f"{self.next_offset - 1}"
                )
            self._handle(batch, None, self.next_offset)
            self.next_offset = last + 1

    def truncate_new_entries(self, end_offset: int) -> None:
        """The log was truncated to ``end_offset`` (exclusive): forget what lay beyond and
        read again from there. (Kafka keeps its next offset here, so a re-appended
        VotersRecord below the old end would go unread; kwire reads it.)"""
        self._voters.truncate_new_entries(end_offset)
        self._kraft_versions.truncate_new_entries(end_offset)
        self.next_offset = min(self.next_offset, end_offset)

    def truncate_old_entries(self, start_offset: int) -> None:
        """A snapshot at ``start_offset`` now covers the log before it."""
        self._voters.truncate_old_entries(start_offset)
        self._kraft_versions.truncate_old_entries(start_offset)

    def _handle(self, batch: RecordBatch, override_offset: int | None, first: int) -> None:
        if not batch.is_control:
            return
        for delta, record in enumerate(batch.records):
            offset = batch.base_offset + delta if override_offset is None else override_offset
            if offset < first:
                continue
            try:
                kind = decode_control_record_key(record.key).type
                if kind is ControlRecordType.KRAFT_VOTERS:
                    message = VotersRecord.decode(record.value or b"", 0)
                    self._voters.add_at(offset, VoterSet.from_voters_record(message))
                elif kind is ControlRecordType.KRAFT_VERSION:
                    level = KRaftVersionRecord.decode(record.value or b"", 0).kraft_version
                    self._kraft_versions.add_at(offset, KRaftVersion.from_level(level))
            except VoterSetError:
                raise
            except ValueError as e:  # DecodeError, CorruptRecordError
                raise VoterSetError(f"control record at offset {offset}: {e}") from e

    # answers
    @property
    def last_voter_set(self) -> VoterSet:
        """The newest voter set in the log or snapshot, else the static one."""
        entry = self._voters.last_entry()
        return self.static_voters if entry is None else entry[1]

    @property
    def last_voter_set_offset(self) -> int | None:
        """Where the newest voter set was written; None if it is the static one."""
        entry = self._voters.last_entry()
        return None if entry is None else entry[0]

    @property
    def last_kraft_version(self) -> KRaftVersion:
        entry = self._kraft_versions.last_entry()
        return KRaftVersion.KRAFT_VERSION_0 if entry is None else entry[1]

    def voter_set_offsets(self) -> list[int]:
        """Where each voter set still remembered was written, oldest first."""
        return [offset for offset, _ in self._voters.entries()]

    def voter_set_at(self, offset: int) -> VoterSet | None:
        """The voter set written at or before ``offset`` (never the static one); None if
        none was. Raises VoterSetError for an offset not yet read."""
        self._check_read(offset)
        return self._voters.value_at_or_before(offset)

    def kraft_version_at(self, offset: int) -> KRaftVersion:
        """The kraft.version at ``offset`` (0 if no record says otherwise)."""
        self._check_read(offset)
        found = self._kraft_versions.value_at_or_before(offset)
        return KRaftVersion.KRAFT_VERSION_0 if found is None else found

    def _check_read(self, offset: int) -> None:
        if offset >= self.next_offset:
            raise VoterSetError(
                f"Attempting the read a value at an offset ({offset}) which is greater than or "
                f"equal to the largest known offset ({self.next_offset - 1})"
            )
