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
a standby) records nothing.

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


class UndoLog:
    """The notes needed to take back uncommitted changes, oldest first."""

    __slots__ = ("_notes", "recording", "offset")

    def __init__(self) -> None:
        # (offset, op, target, key, old value)
        self._notes: deque[tuple[int, _Op, Any, Any, Any]] = deque()
        self.recording = False
        self.offset = -1  # the offset of the record being applied

    def __len__(self) -> int:
        return len(self._notes)

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

    # -- taking back and forgetting --------------------------------------------------------

    def revert_to(self, offset: int) -> int:
        """Undo every change made by records after ``offset``, newest first; returns how
        many changes were undone."""
        notes = self._notes
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
            undone += 1
        return undone

    def forget_through(self, offset: int) -> None:
        """Drop the notes of records at or below ``offset``: they are committed."""
        notes = self._notes
        while notes and notes[0][0] <= offset:
            notes.popleft()
