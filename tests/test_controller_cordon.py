"""Cordoned log directories (KIP-1066) as Kafka 4.3.1 keeps them: BrokerRegistration's
cordonedDirectories (null until a heartbeat carries them), hasUncordonedDirs,
cordonedDirChanged, ReplicationControlManager.handleDirectoriesCordoned (only at
metadata.version 4.3-IV0, level 30) and the usable-broker filter of replica placement."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from partition_fixtures import broker_epoch, cluster, log_dir

from kwire.controller.cordon import (
    cordoned_dirs_records,
    cordoned_log_dirs_supported,
    has_uncordoned_dirs,
)
from kwire.controller.records import record_version
from kwire.metadata_version import MetadataVersion
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord

SECOND_DIR = uuid.UUID(int=(0xD2 << 120) + 1)
LEVEL_4_3_IV0 = 30
HAS_4_3_IV0 = LEVEL_4_3_IV0 in MetadataVersion._value2member_map_


def cordon(c: Any, broker: int, dirs: list[uuid.UUID]) -> None:
    c.replay(
        BrokerRegistrationChangeRecord(
            broker_id=broker, broker_epoch=broker_epoch(broker), cordoned_log_dirs=dirs
        ),
        version=3,
    )


@pytest.mark.parametrize(
    ("level", "supported"), [(21, False), (23, False), (29, False), (30, True), (31, True)]
)
def test_cordoning_starts_at_metadata_version_4_3_iv0(level: int, supported: bool) -> None:
    assert cordoned_log_dirs_supported(level) is supported


def test_a_registration_has_no_cordoned_set_until_a_heartbeat_gives_one() -> None:
    c = cluster(brokers=1)
    assert c.controller.brokers[1].cordoned_directories is None
    assert has_uncordoned_dirs(c.controller.brokers[1])
    cordon(c, 1, [])
    assert c.controller.brokers[1].cordoned_directories == ()
    cordon(c, 1, [log_dir(1)])
    assert c.controller.brokers[1].cordoned_directories == (log_dir(1),)
    assert not has_uncordoned_dirs(c.controller.brokers[1])


def test_a_change_record_without_cordoned_dirs_keeps_the_set() -> None:
    c = cluster(brokers=1)
    cordon(c, 1, [log_dir(1)])
    c.replay(BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=broker_epoch(1), fenced=1))
    assert c.controller.brokers[1].cordoned_directories == (log_dir(1),)


def test_a_re_registration_forgets_the_cordoned_set_unless_its_record_has_one() -> None:
    c = cluster(brokers=1)
    cordon(c, 1, [log_dir(1)])
    record = RegisterBrokerRecord(
        broker_id=1, broker_epoch=500, incarnation_id=uuid.UUID(int=9), log_dirs=[log_dir(1)]
    )
    c.replay(record, version=4)
    assert c.controller.brokers[1].cordoned_directories is None
    record.cordoned_log_dirs = [log_dir(1)]
    c.replay(record, version=4)
    assert c.controller.brokers[1].cordoned_directories == (log_dir(1),)


@pytest.mark.parametrize(
    ("name", "known", "reported", "expected"),
    [
        ("null reports nothing", None, None, None),
        ("first report, even empty", None, [], []),
        ("same set", [log_dir(1), SECOND_DIR], [SECOND_DIR, log_dir(1)], None),
        ("a new set, in the order sent", [], [SECOND_DIR, log_dir(1)], [SECOND_DIR, log_dir(1)]),
        ("uncordoned again", [log_dir(1)], [], []),
    ],
)
def test_a_heartbeat_changes_the_cordoned_set_only_when_it_differs(
    name: str, known: list[uuid.UUID] | None, reported: list[uuid.UUID] | None, expected: Any
) -> None:
    c = cluster(brokers=1)
    if known is not None:
        cordon(c, 1, known)
    records = cordoned_dirs_records(c.controller.image, 1, broker_epoch(1), reported)
    if expected is None:
        assert records == []
        return
    (record,) = records
    assert isinstance(record, BrokerRegistrationChangeRecord)
    assert (record.broker_id, record.broker_epoch, record.cordoned_log_dirs) == (
        1,
        broker_epoch(1),
        expected,
    )
    assert (record.fenced, record.in_controlled_shutdown, record.log_dirs) == (0, 0, [])
    # Kafka writes it at v3, whatever else the level decides.
    assert record_version(record, MetadataVersion.IBP_3_9_IV0) == 3


def heartbeat(cordoned: list[uuid.UUID] | None, broker: int = 1) -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(
        broker_id=broker,
        broker_epoch=broker_epoch(broker),
        current_metadata_offset=10_000,
        want_fence=False,
        cordoned_log_dirs=cordoned,
    )


def active_cluster(level: int) -> Any:
    c = cluster(brokers=1, fenced=(1,), level=level)
    c.controller.activate(1_000, c.next_offset)
    return c


def test_below_4_3_iv0_a_heartbeats_cordoned_dirs_are_ignored() -> None:
    # The broker-lifecycle-static39 capture: a 4.3.1 controller at 3.9-IV0 writes nothing.
    c = active_cluster(21)
    c.send(heartbeat(None), 2)  # unfences the broker
    response, records = c.send(heartbeat([log_dir(1)]), 2)
    assert response.error_code == ErrorCode.NONE
    assert records == []
    assert c.controller.brokers[1].cordoned_directories is None


@pytest.mark.skipif(not HAS_4_3_IV0, reason="kwire.metadata_version has no level 30 yet")
def test_at_4_3_iv0_a_heartbeat_records_its_cordoned_dirs_after_the_unfencing() -> None:
    c = active_cluster(LEVEL_4_3_IV0)
    _, records = c.send(heartbeat(None), 2)
    assert [(r.fenced, r.cordoned_log_dirs) for r in records] == [(-1, None)]
    _, records = c.send(heartbeat([]), 2)
    assert [r.cordoned_log_dirs for r in records] == [[]]
    _, records = c.send(heartbeat([]), 2)
    assert records == []
    _, records = c.send(heartbeat([log_dir(1)]), 2)
    assert [r.cordoned_log_dirs for r in records] == [[log_dir(1)]]
    assert c.controller.brokers[1].cordoned_directories == (log_dir(1),)


def create(name: str, partitions: int, replication_factor: int) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=replication_factor
            )
        ]
    )


def placed(records: list[Any]) -> set[int]:
    return {b for r in records if isinstance(r, PartitionRecord) for b in r.replicas}


def test_placement_skips_brokers_whose_every_directory_is_cordoned() -> None:
    c2 = cluster(brokers=3)
    c2.controller.activate(1_000, c2.next_offset)
    for b in (1, 2, 3):
        c2.send(heartbeat(None, b), 2)
    cordon(c2, 2, [log_dir(2)])
    response, records = c2.send(create("t", 12, 2), 7)
    assert response.topics[0].error_code == ErrorCode.NONE
    assert placed(records) == {1, 3}
    # With only broker 2 left usable as far as cordoning goes, RF 3 cannot be placed.
    response, records = c2.send(create("u", 1, 3), 7)
    assert response.topics[0].error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert response.topics[0].error_message == (
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 "
        "cannot be reached because only 2 broker(s) are registered."
    )


def test_a_broker_with_one_uncordoned_directory_still_takes_replicas() -> None:
    c = cluster(brokers=1)
    c.replay(
        RegisterBrokerRecord(
            broker_id=1,
            broker_epoch=broker_epoch(1),
            incarnation_id=uuid.UUID(int=1),
            log_dirs=[log_dir(1), SECOND_DIR],
            cordoned_log_dirs=[log_dir(1)],
        ),
        version=4,
    )
    c.controller.activate(1_000, c.next_offset)
    c.send(heartbeat(None), 2)
    assert has_uncordoned_dirs(c.controller.brokers[1])
    response, records = c.send(create("t", 2, 1), 7)
    assert response.topics[0].error_code == ErrorCode.NONE
    assert placed(records) == {1}
