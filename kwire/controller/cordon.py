"""Cordoned log directories (KIP-1066): a broker tells the controller, in its heartbeats,
which of its log directories take no new replicas, and the controller places no new
replicas on a broker whose every directory is cordoned.

Kafka 4.3.1's rules (ReplicationControlManager.handleDirectoriesCordoned,
BrokerRegistration.hasUncordonedDirs / cordonedDirChanged, BrokerHeartbeatManager's
UsableBrokerIterator, MetadataVersion.isCordonedLogDirsSupported):

- Only from metadata.version 4.3-IV0 (level 30). Below it, heartbeats' CordonedLogDirs
  are ignored and no record carries cordoned directories (RegisterBrokerRecord v3 and
  below, BrokerRegistrationChangeRecord v2 and below).
- A heartbeat's CordonedLogDirs is null until the broker has caught up (RECOVERY): null
  changes nothing. Otherwise, when the set differs from the registration's (or the
  registration has none yet: null), the controller writes a BrokerRegistrationChangeRecord
  v3 with the broker's epoch and the list as the heartbeat sent it (order kept), after the
  fencing and offline-directory records of the same heartbeat.
- A (re-)registration writes RegisterBrokerRecord v4 with CordonedLogDirs null: the broker
  sends its set again in its next heartbeats.
- Placement (CreateTopics, CreatePartitions): a broker with directories, all of them
  cordoned, is not usable. A broker without directories, or whose cordoned set is not
  known yet (null), is. The directory a new replica gets is not affected (Kafka's
  ClusterControlManager.defaultDir ignores cordoning).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from kwire.controller.heartbeats import BrokerHeartbeatTracker
from kwire.controller.image import BrokerRegistration, MetadataImage
from kwire.controller.placement import UsableBroker
from kwire.metadata_version import metadata_version
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)


def cordoned_log_dirs_supported(metadata_version_level: int) -> bool:
    """isCordonedLogDirsSupported: metadata.version 4.3-IV0 (level 30) or later."""
    return metadata_version(metadata_version_level).supports_cordoned_log_dirs


def has_uncordoned_dirs(registration: BrokerRegistration) -> bool:
    """Whether the broker can take new replicas as far as cordoning goes: it has no
    directories, its cordoned set is unknown (None), or some directory is not cordoned."""
    cordoned = registration.cordoned_directories
    if not registration.directories or cordoned is None:
        return True
    return any(d not in cordoned for d in registration.directories)


def cordoned_dirs_changed(registration: BrokerRegistration, reported: Sequence[UUID]) -> bool:
    """Whether ``reported`` differs, as a set, from the registration's cordoned
    directories; always true while the registration has none recorded (None)."""
    if registration.cordoned_directories is None:
        return True
    return set(registration.cordoned_directories) != set(reported)


def cordoned_dirs_records(
    image: MetadataImage,
    broker_id: int,
    broker_epoch: int,
    reported: Sequence[UUID] | None,
) -> list[Message]:
    """The records a heartbeat's CordonedLogDirs asks for at 4.3-IV0 or later: none when
    it is null or unchanged, else one BrokerRegistrationChangeRecord (written at v3)."""
    if reported is None:
        return []
    registration = image.brokers[broker_id]
    if not cordoned_dirs_changed(registration, reported):
        return []
    return [
        BrokerRegistrationChangeRecord(
            broker_id=broker_id, broker_epoch=broker_epoch, cordoned_log_dirs=list(reported)
        )
    ]


def usable_brokers(image: MetadataImage, tracker: BrokerHeartbeatTracker) -> list[UsableBroker]:
    """The brokers new replicas may go to, in the tracker's order (Kafka's
    ClusterControlManager.usableBrokers): registered, not in controlled shutdown, and
    with a directory that is not cordoned."""
    usable = []
    for broker_id, fenced in tracker.usable_brokers():
        registration = image.brokers.get(broker_id)
        if registration is not None and has_uncordoned_dirs(registration):
            usable.append(UsableBroker(broker_id, registration.rack, fenced))
    return usable
