"""The leader epoch cache: for each leader epoch, the first offset written in it
(Kafka's LeaderEpochFileCache logic; persistence is left to the caller)."""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right

from kwire.log.checkpoints import EpochEntry

log = logging.getLogger(__name__)


class LeaderEpochCache:
    def __init__(self, entries: list[EpochEntry] | None = None) -> None:
        self._entries: list[EpochEntry] = []
        for e in entries or []:
            self.assign(e.epoch, e.start_offset)

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int | None:
        return self._entries[-1].epoch if self._entries else None

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; True if the cache changed.

        Entries that would break monotonicity (epoch >= the new one, or start offset >=
        the new one) are dropped first, newest first, exactly as Kafka does."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        if self._entries:
            last = self._entries[-1]
            if last.epoch == epoch and last.start_offset <= start_offset:
                return False
        removed = []
        while self._entries and (
            self._entries[-1].epoch >= epoch or self._entries[-1].start_offset >= start_offset
        ):
            removed.append(self._entries.pop())
        if len(removed) > 1 or (removed and removed[0].start_offset != start_offset):
            log.warning(
                "new epoch entry (%d, %d) truncated conflicting entries %s",
                epoch,
                start_offset,
                removed,
            )
        self._entries.append(EpochEntry(epoch, start_offset))
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """Drop entries starting at or after ``end_offset`` (the new log end offset)."""
        keep = bisect_left([e.start_offset for e in self._entries], end_offset)
        if keep == len(self._entries):
            return False
        del self._entries[keep:]
        return True

    def truncate_from_start(self, start_offset: int) -> bool:
        """The log now starts at ``start_offset``: entries starting before it go, except
        the last of them, which is moved up to start there (Kafka's truncateFromStart)."""
        below = [e for e in self._entries if e.start_offset <= start_offset]
        if not below or (len(below) == 1 and below[0].start_offset == start_offset):
            return False
        kept = EpochEntry(below[-1].epoch, start_offset)
        self._entries[: len(below)] = [kept]
        return True

    def clear(self) -> bool:
        changed = bool(self._entries)
        self._entries.clear()
        return changed

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int] | None:
        """Kafka's endOffsetFor: ``(largest epoch <= requested, end offset of it)``, the
        end offset being the next epoch's start offset or, for the latest epoch, the log
        end offset. None when unknown (requested epoch is newer than any entry, or -1)."""
        if epoch < 0 or not self._entries:
            return None
        if self._entries[-1].epoch == epoch:
            return epoch, log_end_offset
        epochs = [e.epoch for e in self._entries]
        higher = bisect_right(epochs, epoch)
        if higher == len(epochs):
            return None
        if higher == 0:
            # Older than anything we know: the requested epoch ends where ours begin.
            return epoch, self._entries[0].start_offset
        return self._entries[higher - 1].epoch, self._entries[higher].start_offset

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range contains ``offset``."""
        starts = [e.start_offset for e in self._entries]
        i = bisect_right(starts, offset)
        return self._entries[i - 1].epoch if i else None
