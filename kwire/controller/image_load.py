"""Loading committed records into a metadata image in bulk: the newest snapshot at
start-up, the log after it, and a standby's replay.

``MetadataImage.replay`` applies one record at a time and keeps, per record, what the
active controller needs: the undo log and the published-image order (kwire.controller
.image_order), besides the record's own change and the brokers-to-ISR index. The two
records that make up almost all of a large image, TopicRecord and PartitionRecord, touch no
map of Kafka's published image (they publish no delta), and while nothing is recorded for
undo (committed records) that bookkeeping does nothing for them. ``ImageLoader`` applies a
TopicRecord with the image's own handler and a PartitionRecord directly, with its ISR and
ELR index entries made as ``MetadataImage._update_isr_members`` makes them for a new
partition (the index's list of the current topic under each broker found once per topic).
The image is then exactly what ``replay`` of the same records leaves (the tests compare
them field by field, and the snapshots written from both byte for byte).

Rules:
- Only a TopicRecord for a new topic id and a PartitionRecord for a new partition of a
  known topic take the fast path; anything else (a record replacing a topic or partition,
  every other record type, and everything while the undo log records) goes through
  ``MetadataImage.replay``. Errors are ``replay``'s (ReplayError).
- Partition registrations are shared values: equal replica, ISR and directory tuples are
  one object (a cluster of B brokers has few distinct replica sets), and so are equal
  registrations (frozen; a fresh cluster's partitions differ mostly by their placement),
  remembered up to MAX_SHARED_REGISTRATIONS at a time. A partition then costs its entry in
  its topic's dict and in the ISR index, plus its registration when that is unlike the
  others.
- Inside a metadata transaction the undo log records (kwire.controller.transactions: an
  abort takes the transaction back), so its records go through ``replay`` until it ends.
  A transaction marker inside a snapshot is refused, as Kafka's OffsetControlManager
  refuses it.
- The caller calls ``finish`` after the last record (the image's last applied offset).

The active controller's own records (``apply_atomic``). CreateTopics applies thousands of
PartitionRecords to the image before they are written, each ready to be taken back. For
a topic whose TopicRecord is in the same atomic batch, its partitions' dict and its lists
in the ISR and ELR indexes are new objects that the undo log already knows how to remove
(the notes that created them), so a partition needs no note of its own: it takes the fast
path above, and only what exists beyond the topic is noted (a broker's first entry in an
index, a table's capacity, the imbalance count, the last applied offset). Undo notes then
grow per topic and broker instead of per partition. Reverting to an offset inside the
batch would leave partitions behind, so this is only for atomic batches, which are
appended, committed and taken back whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from kwire.controller.image import MetadataImage, leader_is_not_preferred
from kwire.controller.records import RecordAndVersion
from kwire.controller.registrations import (
    DIR_MIGRATING,
    MIN_TABLE_CAPACITY,
    NO_LEADER,
    LeaderRecoveryState,
    PartitionRegistration,
    ReplayError,
    TopicInfo,
)
from kwire.controller.transactions import MARKERS, marker_in_snapshot
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

__all__ = ["ImageLoader"]

_RECOVERY = {int(state): state for state in LeaderRecoveryState}
# At most this many distinct registrations are remembered for sharing while loading.
MAX_SHARED_REGISTRATIONS = 1 << 16


class ImageLoader:
    """Applies committed records to ``image`` (see the module docstring)."""

    __slots__ = (
        "image",
        "_shared",
        "_directories",
        "_registrations",
        "_last_offset",
        "_topic",
        "_isr_lists",
        "_last_list",
        "_fresh",
        "transaction_markers",
    )

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        # Topics created by the atomic batch being applied (see ``apply_atomic``); None
        # when loading committed records.
        self._fresh: set[UUID] | None = None
        # Shared values: tuples of broker ids; directory tuples by their UUIDs' identities;
        # registrations by their fields (shared tuples by identity).
        self._shared: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._directories: dict[tuple[int, ...], tuple[UUID, ...]] = {}
        # ... with the brokers whose ISR index lists them and whether the leader is not
        # the preferred replica.
        self._registrations: dict[
            tuple[Any, ...], tuple[PartitionRegistration, tuple[int, ...], bool]
        ] = {}
        self._topic: TopicInfo | None = None  # the topic of the last PartitionRecord
        # broker -> the ISR index's list of that topic's partitions under the broker.
        self._isr_lists: dict[int, list[int]] = {}
        self._last_list: list[int] = []
        self._last_offset = -1
        # How many metadata transaction markers it applied: a reader of the same records
        # (the status page's event ring) learns whether a batch held one from this count
        # instead of looking at every record.
        self.transaction_markers = 0

    def replay_all(
        self, entries: Iterable[tuple[int, Message, int]], at_offset: int | None = None
    ) -> None:
        """``replay`` each (offset, record, version), at its own offset or, given
        ``at_offset``, at that one (a snapshot's records all stand at its last offset)."""
        partition_record = PartitionRecord
        partition = self._partition
        replay = self.replay
        undo = self.image.undo
        recording = undo.recording
        for offset, record, version in entries:
            if at_offset is not None:
                offset = at_offset
            if type(record) is partition_record and not recording and partition(record, offset):
                continue
            if at_offset is not None and type(record) in MARKERS:
                raise ReplayError(marker_in_snapshot(record))  # as OffsetControlManager
            replay(record, version, offset)
            # A transaction's Begin turns recording on, its End or Abort off.
            recording = undo.recording

    def replay(self, record: Message, version: int, offset: int) -> None:
        """Apply one committed record read at ``offset``; raises ReplayError as
        ``MetadataImage.replay`` does."""
        image = self.image
        kind = type(record)
        if not image.undo.recording:
            if kind is PartitionRecord:
                if self._partition(record, offset):  # type: ignore[arg-type]
                    return
            elif kind is TopicRecord and record.topic_id not in image.topics:  # type: ignore[attr-defined]
                # The image's own handler (and whatever indexes of names it keeps), without
                # replay's per-record bookkeeping.
                image._topic(record, offset)  # type: ignore[arg-type]
                self._applied(offset)
                return
        # The record may replace or remove topics, partitions and their index lists.
        self._topic, self._isr_lists = None, {}
        if self._last_offset > image.last_applied_offset:
            # What the fast path applied is the image's before this record (a Begin's
            # note of the last applied offset, restored by an abort, must be right).
            image.last_applied_offset = self._last_offset
        if kind in MARKERS:
            self.transaction_markers += 1
        image.replay(record, version, offset)

    def apply_atomic(self, records: Sequence[RecordAndVersion], base: int) -> None:
        """Apply the active controller's own atomic batch, ``records`` at offsets ``base``,
        ``base + 1``, ..., with the undo log recording (as ``MetadataImage.replay`` each
        would, see the module docstring). The batch must be taken back whole, if at all
        (``undo.revert_to`` an offset below ``base``). Raises ReplayError as ``replay``."""
        image = self.image
        undo = image.undo
        assert undo.recording
        fresh = self._fresh = set()
        partition_record, topic_record = PartitionRecord, TopicRecord
        partition = self._partition
        replay = image.replay
        last = -1
        for offset, rv in enumerate(records, base):
            record = rv.record
            kind = type(record)
            if kind is partition_record and record.topic_id in fresh:  # type: ignore[attr-defined]
                undo.offset = offset
                if partition(record, offset):  # type: ignore[arg-type]
                    last = offset
                    continue
            elif kind is topic_record and record.topic_id not in image.topics:  # type: ignore[attr-defined]
                fresh.add(record.topic_id)  # type: ignore[attr-defined]
            self._topic, self._isr_lists = None, {}
            replay(record, rv.version, offset)
        if last > image.last_applied_offset:
            undo.offset = last
            undo.set_attr(image, "last_applied_offset", last)

    def finish(self) -> None:
        """The image is complete: its last applied offset is the last record's."""
        if self._last_offset > self.image.last_applied_offset:
            self.image.last_applied_offset = self._last_offset
        if self._last_offset >= 0:
            self.image.undo.offset = self._last_offset

    # -- the fast path ---------------------------------------------------------------------

    def _applied(self, offset: int) -> None:
        if offset > self._last_offset:
            self._last_offset = offset

    def _partition(self, record: PartitionRecord, offset: int) -> bool:
        topic_id = record.topic_id
        topic = self._topic
        if topic is None or topic.topic_id is not topic_id:
            topic = self.image.topics.get(topic_id)
            if topic is None:
                raise ReplayError(f"PartitionRecord for unknown topic id {topic_id}")
            self._topic, self._isr_lists = topic, {}
        partition_id = record.partition_id
        partitions_of_topic = topic.partitions
        if partition_id in partitions_of_topic:
            return False
        if (
            record.removing_replicas
            or record.adding_replicas
            or record.eligible_leader_replicas
            or record.last_known_elr
        ):
            registration = self._registration(record, self._directories_of(record))
            brokers = _isr_members(registration)
            imbalanced = leader_is_not_preferred(registration)
            for broker in sorted(set(registration.elr)):
                self._index_list(self.image.elr_members, self.image.elr_table_capacity, broker)
                self._last_list.append(partition_id)
        else:
            # The common partition: equal ones are one object (immutable values). Its
            # directories are keyed by the identities of their UUIDs (the codec hands out
            # one object per id, and hashing UUIDs by value is slow): a key's objects are
            # those of the registration it maps to, alive, so no key can name others.
            directories = record.directories
            same = (
                tuple(record.replicas),
                tuple(record.isr),
                tuple(map(id, directories)) if directories else (),
                record.leader,
                record.leader_recovery_state,
                record.leader_epoch,
                record.partition_epoch,
            )
            found = self._registrations.get(same)
            if found is None:
                if len(self._registrations) >= MAX_SHARED_REGISTRATIONS:
                    self._forget()
                shared = self._registration(record, self._directories_of(record))
                found = self._registrations[same] = (
                    shared,
                    _isr_members(shared),
                    leader_is_not_preferred(shared),
                )
            registration, brokers, imbalanced = found
        partitions_of_topic[partition_id] = registration
        if imbalanced:  # as MetadataImage._count_imbalance
            image = self.image
            image.undo.set_attr(image, "imbalanced_count", image.imbalanced_count + 1)
        # The brokers-to-ISR index, as MetadataImage._update_isr_members makes it for a
        # new partition (the order among one partition's brokers does not matter).
        lists = self._isr_lists
        for broker in brokers:
            partitions = lists.get(broker)
            if partitions is None:
                image = self.image
                self._index_list(image.isr_members, image.isr_table_capacity, broker)
                partitions = lists[broker] = self._last_list
            partitions.append(partition_id)
        if offset > self._last_offset:
            self._last_offset = offset
        return True

    def _index_list(
        self, index: dict[int, dict[UUID, list[int]]], capacities: dict[int, int], broker: int
    ) -> None:
        """Set ``_last_list`` to the current topic's list under ``broker`` in ``index``,
        created (and the broker's table grown, as BaseHashTable grows before an add past a
        0.75 load) when absent. Each creation is noted for undo while the undo log records
        (a list created so is the current topic's own: appends to it need no note)."""
        topic_id = self._topic.topic_id  # type: ignore[union-attr]
        set_item = self.image.undo.set_item
        topics_of_broker = index.get(broker)
        if topics_of_broker is None:
            topics_of_broker = {}
            set_item(index, broker, topics_of_broker)
        partitions = topics_of_broker.get(topic_id)
        if partitions is None:
            capacity = capacities.get(broker, MIN_TABLE_CAPACITY)
            if (len(topics_of_broker) + 1) * 0.75 > capacity:
                capacity *= 2
            if capacities.get(broker) != capacity:
                set_item(capacities, broker, capacity)
            partitions = []
            set_item(topics_of_broker, topic_id, partitions)
        self._last_list = partitions

    def _forget(self) -> None:
        """Drop the shared registrations and directory tuples (bounded: sharing is only a
        saving)."""
        self._registrations.clear()
        self._directories.clear()

    def _directories_of(self, record: PartitionRecord) -> tuple[UUID, ...]:
        """The record's directories as a shared tuple (all MIGRATING without any, as
        from_record fills in): one holding the record's own UUID objects. Looked up by their
        identities; the tuple keeps those objects alive, so no key can come to name others."""
        if not record.directories:
            return _shared(self._shared, [DIR_MIGRATING] * len(record.replicas))
        key = tuple(map(id, record.directories))
        directories = self._directories.get(key)
        if directories is None:
            if len(self._directories) >= MAX_SHARED_REGISTRATIONS:
                self._forget()
            directories = self._directories[key] = tuple(record.directories)
        return directories

    def _registration(
        self, record: PartitionRecord, directories: tuple[UUID, ...]
    ) -> PartitionRegistration:
        """The registration of ``record`` (PartitionRegistration.from_record), its tuples
        shared."""
        shared = self._shared
        replicas = tuple(record.replicas)
        replicas = shared.setdefault(replicas, replicas)
        recovery = _RECOVERY.get(record.leader_recovery_state)
        if recovery is None:
            recovery = LeaderRecoveryState(record.leader_recovery_state)  # raises ValueError
        return PartitionRegistration(
            replicas=replicas,
            directories=directories,
            isr=replicas if record.isr == record.replicas else _shared(shared, record.isr),
            removing_replicas=_shared(shared, record.removing_replicas),
            adding_replicas=_shared(shared, record.adding_replicas),
            leader=record.leader,
            leader_recovery_state=recovery,
            leader_epoch=record.leader_epoch,
            partition_epoch=record.partition_epoch,
            elr=_shared(shared, record.eligible_leader_replicas),
            last_known_elr=_shared(shared, record.last_known_elr),
        )


def _shared(shared: dict[tuple[Any, ...], tuple[Any, ...]], values: list[Any] | None) -> Any:
    if not values:
        return ()
    value = tuple(values)
    return shared.setdefault(value, value)


def _isr_members(registration: PartitionRegistration) -> tuple[int, ...]:
    """The brokers whose ISR index lists the partition: its ISR, and NO_LEADER when it
    has no leader."""
    members = set(registration.isr)
    if registration.leader == NO_LEADER:
        members.add(NO_LEADER)
    # In replay's order (MetadataImage._update_index adds a partition's brokers sorted).
    return tuple(sorted(members))
