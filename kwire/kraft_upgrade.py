"""How a kraft.version upgrade is refused, shared by the raft core that refuses it
(kwire.raft.leader.upgrade_kraft_version) and the controller that answers UpdateFeatures
with it (kwire.controller.features): Kafka 4.3.1's raft client throws, and
FeatureControlManager.updateFeature turns into an answer, these exceptions."""

from __future__ import annotations

import enum


class RefusalKind(enum.Enum):
    """What Kafka's raft client throws, which decides the controller's answer."""

    INVALID = "invalid"  # InvalidUpdateVersionException: INVALID_UPDATE_VERSION, as is
    INVALID_ARGUMENT = "invalid_argument"  # IllegalArgumentException: prefixed message
    NOT_LEADER = "not_leader"  # NotLeaderException: NOT_CONTROLLER
    ILLEGAL_STATE = "illegal_state"  # IllegalStateException: UNKNOWN_SERVER_ERROR


class KRaftUpgradeError(Exception):
    """An upgrade the raft client refused: `kind` and Kafka's exception message."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
