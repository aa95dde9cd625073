"""Taking the controller's state back to an earlier offset (Kafka's SnapshotRegistry role).

Theory of operation. The active controller applies the records of a request to its image
before they are committed, so that the next request sees them (Kafka does the same). The
image must therefore be able to forget them again: when an append is refused or fails,
and when leadership is lost before they commit. Kafka keeps its state in timeline data
structures that can revert to any in-memory snapshot; kwire keeps an undo log instead.

Every change the image makes while the undo log is recording goes through one of the
mutators below, which notes how to take the change back, tagged with the offset of the
record that made it. ``revert_to(offset)`` takes back, newest first, every change made by
records after ``offset``; ``forget_through(offset)`` drops the notes of records that are
now committed and can never be taken back. Replaying committed records (at start-up, or on
a standby) records nothing, except inside a metadata transaction (KIP-868).

Metadata transactions. Between a BeginTransactionRecord and its EndTransactionRecord or
AbortTransactionRecord the image applies the records at once, as Kafka's controller does,
and an abort takes them back to the offset before the Begin (Kafka's OffsetControlManager
reverts its SnapshotRegistry there). ``hold(start)`` makes that possible: from the Begin
at ``start`` on, every change is noted (even a committed replay's), and
``forget_through`` keeps the notes from ``start`` on (they are below Kafka's last stable
offset only once the transaction closes); ``release()`` lets them go. ``roll_back_to``
takes the transaction back: a committed replay simply reverts, while the active
controller's own abort notes each undoing as a change of the abort record, so that a
refused abort is itself taken back and the transaction's records return.

Rules:
- The image changes only through these mutators; a test replays random request sequences
  with failed appends and checks that the image always equals the replay of its log.
- Notes are kept in offset order; both ends are O(1) to trim.

Cost: one tuple per changed key or attribute while uncommitted records exist, freed at
commit; reads of the image cost nothing extra (plain dicts and lists, no versioned
lookups as in Kafka's timeline maps). A revert costs the number of changes it undoes.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum
from typing import Any

_MISSING: Any = object()


class _Op(IntEnum):
    SET_ITEM = 0  # restore container[key] = old (or delete it if it was missing)
    SET_ATTR = 1  # restore setattr(target, key, old)
    LIST_APPEND = 2  # pop the value appended last
    LIST_REMOVE = 3  # insert old back at index key
    LIST_POP = 4  # append old back
    LIST_INSERT = 5  # delete the item at index key


class UndoLog:
    """The notes needed to take back uncommitted changes, oldest first."""

    __slots__ = ("_notes", "recording", "offset", "held_from", "_requested")

    def __init__(self) -> None:
        # (offset, op, target, key, old value)
        self._notes: deque[tuple[int, _Op, Any, Any, Any]] = deque()
        # Whether changes are noted: while the caller asks (``start_recording``) or a
        # metadata transaction is open (``hold``). Read on every change: a plain slot.
        self.recording = False
        self.offset = -1  # the offset of the record being applied
        # The offset of an open metadata transaction's Begin, -1 when none is open.
        self.held_from = -1
        self._requested = False

    def __len__(self) -> int:
        return len(self._notes)

    # -- recording -----------------------------------------------------------------------

    def start_recording(self) -> None:
        """Note every change from now on (the active controller applying its own records)."""
        self._requested = True
        self.recording = True

    def stop_recording(self) -> None:
        """Stop noting changes, unless a metadata transaction is open."""
        self._requested = False
        self.recording = self.held_from >= 0

    def hold(self, start: int) -> None:
        """A metadata transaction begins at ``start``: note every change, and keep the
        notes from ``start`` on, until ``release``. Noted itself (a revert below
        ``start`` ends the hold)."""
        if self.recording:  # the caller records (set directly, as tests do)
            self._requested = True
        self.recording = True
        self.set_attr(self, "held_from", start)

    def release(self) -> None:
        """The metadata transaction closed (at ``offset``, the record being applied): its
        notes may be forgotten once committed, at once on a committed replay."""
        self.set_attr(self, "held_from", -1)
        self.recording = self._requested
        if not self._requested:
            self.forget_through(self.offset)

    # -- mutators ------------------------------------------------------------------------

    def set_item(self, container: dict[Any, Any], key: Any, value: Any) -> None:
        if self.recording:
            old = container.get(key, _MISSING)
            self._notes.append((self.offset, _Op.SET_ITEM, container, key, old))
        container[key] = value

    def pop_item(self, container: dict[Any, Any], key: Any) -> Any:
        """Remove ``key`` and return its value (None when it was absent)."""
        old = container.pop(key, _MISSING)
        if old is _MISSING:
            return None
        if self.recording:
            self._notes.append((self.offset, _Op.SET_ITEM, container, key, old))
        return old

    def set_attr(self, target: object, name: str, value: Any) -> None:
        if self.recording:
            self._notes.append((self.offset, _Op.SET_ATTR, target, name, getattr(target, name)))
        setattr(target, name, value)

    def list_append(self, target: list[Any], value: Any) -> None:
        if self.recording:
            self._notes.append((self.offset, _Op.LIST_APPEND, target, None, None))
        target.append(value)

    def list_remove(self, target: list[Any], value: Any) -> None:
        index = target.index(value)
        if self.recording:
            self._notes.append((self.offset, _Op.LIST_REMOVE, target, index, value))
        del target[index]

    def list_pop(self, target: list[Any]) -> Any:
        value = target.pop()
        if self.recording:
            self._notes.append((self.offset, _Op.LIST_POP, target, None, value))
        return value

    def list_insert(self, target: list[Any], index: int, value: Any) -> None:
        if self.recording:
            self._notes.append((self.offset, _Op.LIST_INSERT, target, index, None))
        target.insert(index, value)

    def list_pop_at(self, target: list[Any], index: int) -> None:
        value = target.pop(index)
        if self.recording:
            self._notes.append((self.offset, _Op.LIST_REMOVE, target, index, value))

    # -- taking back and forgetting --------------------------------------------------------

    def revert_to(self, offset: int) -> int:
        """Undo every change made by records after ``offset``, newest first; returns how
        many changes were undone."""
        notes = self._notes
        held = self.held_from
        undone = 0
        while notes and notes[-1][0] > offset:
            _, op, target, key, old = notes.pop()
            match op:
                case _Op.SET_ITEM:
                    if old is _MISSING:
                        del target[key]
                    else:
                        target[key] = old
                case _Op.SET_ATTR:
                    setattr(target, key, old)
                case _Op.LIST_APPEND:
                    target.pop()
                case _Op.LIST_REMOVE:
                    target.insert(key, old)
                case _Op.LIST_POP:
                    target.append(old)
                case _Op.LIST_INSERT:
                    del target[key]
            undone += 1
        if self.held_from != held:  # a transaction's Begin (or its close) was taken back
            self.recording = self._requested or self.held_from >= 0
        return undone

    def roll_back_to(self, offset: int) -> int:
        """Take back every change made by records after ``offset`` (an aborted metadata
        transaction), newest first; returns how many. While the caller records (the
        active controller applying its own AbortTransactionRecord), each undoing is a
        change of the record being applied, noted like any other: reverting below that
        record brings the transaction's changes back. Otherwise (a committed abort) the
        notes are simply reverted."""
        if not self._requested:
            return self.revert_to(offset)
        later = []
        for note in reversed(self._notes):
            if note[0] <= offset:
                break
            later.append(note)
        for _, op, target, key, old in later:
            match op:
                case _Op.SET_ITEM:
                    if old is _MISSING:
                        self.pop_item(target, key)
                    else:
                        self.set_item(target, key, old)
                case _Op.SET_ATTR:
                    self.set_attr(target, key, old)
                case _Op.LIST_APPEND:
                    self.list_pop(target)
                case _Op.LIST_REMOVE:
                    self.list_insert(target, key, old)
                case _Op.LIST_POP:
                    self.list_append(target, old)
                case _Op.LIST_INSERT:
                    self.list_pop_at(target, key)
        self.recording = self._requested or self.held_from >= 0
        return len(later)

    def forget_through(self, offset: int) -> None:
        """Drop the notes of records at or below ``offset``: they are committed. The
        notes of an open metadata transaction stay (see ``hold``)."""
        if self.held_from >= 0:
            offset = min(offset, self.held_from - 1)
        notes = self._notes
        while notes and notes[0][0] <= offset:
            notes.popleft()
