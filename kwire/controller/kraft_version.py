"""kraft.version as the controller sees it: read from, and upgraded by, the raft client
(Kafka 4.3.1's KRaftVersionAccessor and RaftClientKRaftVersionAccessor).

kraft.version lives in the metadata log's KRaft control records, never in the controller's
image: registration and UpdateFeatures ask the accessor for the current level, and an
UpdateFeatures upgrade of kraft.version asks it to append the upgrade (the raft leader's
KRaftVersionRecord and VotersRecord batch, kwire.raft.leader.upgrade_kraft_version) before
the controller's own records of the same request, which therefore start later in the log.

`StaticKRaftVersion` is the accessor of a controller with no raft client attached (unit
tests, tools): the configured level, and an upgrade refused as a raft leader of a
kraft.version 0 quorum refuses it before any voter has reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kwire.kraft_upgrade import KRaftUpgradeError, RefusalKind

__all__ = [
    "KRaftUpgradeError",
    "KRaftVersionAccessor",
    "RaftKRaftVersion",
    "RefusalKind",
    "StaticKRaftVersion",
]


class KRaftVersionAccessor(Protocol):
    def kraft_version(self) -> int:
        """The kraft.version level the raft client runs at (a requested upgrade counts)."""
        ...

    def upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        """Upgrade to `level` (RaftClient.upgradeKRaftVersion at the controller's epoch):
        how many offsets the raft client appended for it at the log end (0: nothing to do,
        or `validate_only`). Raises KRaftUpgradeError."""
        ...


@dataclass(slots=True)
class StaticKRaftVersion:
    """A fixed kraft.version (`ControllerConfig.kraft_version`), for a controller without
    a raft client."""

    level: int = 0

    def kraft_version(self) -> int:
        return self.level

    def upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        if level == self.level:
            return 0
        raise KRaftUpgradeError(
            RefusalKind.INVALID,
            f"Invalid upgrade of kraft.version to KRAFT_VERSION_{level} because not all of "
            "the voters support it",
        )


@dataclass(slots=True)
class RaftKRaftVersion:
    """The accessor of a node's raft core: `read` gives its kraft.version, `upgrade`
    runs its upgrade and carries out what it appends (returning how many offsets)."""

    read: Callable[[], int]
    upgrade: Callable[[int, bool], int]

    def kraft_version(self) -> int:
        return self.read()

    def upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        return self.upgrade(level, validate_only)
