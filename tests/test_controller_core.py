"""The controller core's contract: sans-IO, bootstrap records, periodic work, replay of
every metadata record type, record versions by metadata.version."""

from __future__ import annotations

import ast
import random
import uuid
from pathlib import Path

import pytest

import kwire.controller
from kwire.controller import (
    ControllerConfig,
    MetadataImage,
    MetadataVersion,
    QuorumController,
    RequestContext,
    record_version,
)
from kwire.controller.image import ReplayError
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)

FORBIDDEN_MODULES = {"trio", "socket", "os", "time", "asyncio"}


def test_controller_package_imports_no_io_clock_or_event_loop() -> None:
    package = Path(kwire.controller.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert sources
    for source in sources:
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{source.name}: {name}"


def test_controller_never_calls_the_global_random_functions() -> None:
    for source in Path(kwire.controller.__file__).parent.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr == "Random", f"{source.name}: random.{node.attr}"


def new_controller(**config: object) -> QuorumController:
    return QuorumController(
        node_id=1,
        cluster_id="c",
        config=ControllerConfig(**config),  # type: ignore[arg-type]
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("level", "kinds"),
    [
        (
            21,
            [
                "BeginTransactionRecord",
                "FeatureLevelRecord",
                "ZkMigrationStateRecord",
                "EndTransactionRecord",
            ],
        ),
        (
            13,
            [
                "BeginTransactionRecord",
                "FeatureLevelRecord",
                "ZkMigrationStateRecord",
                "EndTransactionRecord",
            ],
        ),
        (12, ["FeatureLevelRecord"]),  # before 3.6-IV1: no metadata transactions
    ],
)
def test_bootstrap_records_by_metadata_version(level: int, kinds: list[str]) -> None:
    records = new_controller().bootstrap_records(level)
    assert [type(rv.record).__name__ for rv in records] == kinds
    feature = next(rv.record for rv in records if type(rv.record).__name__ == "FeatureLevelRecord")
    assert (feature.name, feature.feature_level) == ("metadata.version", level)  # type: ignore[attr-defined]


def test_activation_bootstraps_an_empty_log_only() -> None:
    controller = new_controller()
    first = controller.activate(now_ms=0, next_offset=1)
    assert first is not None
    assert controller.finalized_features() == (len(first.records), {"metadata.version": 21})
    assert controller.last_applied_offset == len(first.records)
    controller.deactivate()
    assert controller.activate(now_ms=10, next_offset=5) is None


def test_noop_record_every_max_idle_interval() -> None:
    controller = new_controller(metadata_max_idle_interval_ms=500)
    controller.activate(now_ms=1000, next_offset=1)
    assert controller.next_deadline_ms() == 1500
    assert controller.tick(1499, 5) is None
    result = controller.tick(1500, 5)
    assert result is not None
    assert [type(rv.record).__name__ for rv in result.records] == ["NoOpRecord"]
    assert controller.next_deadline_ms() == 2000
    assert controller.last_applied_offset == 5


def test_no_noop_records_when_idle_interval_is_zero() -> None:
    controller = new_controller(metadata_max_idle_interval_ms=0)
    controller.activate(now_ms=0, next_offset=1)
    assert controller.tick(10_000_000, 5) is None


def test_unimplemented_api_gets_unsupported_version() -> None:
    controller = new_controller()
    result = controller.handle(DeleteTopicsRequest(), RequestContext(api_version=6), 1, 0)
    assert result.records == []
    assert type(result.response).__name__ == "DeleteTopicsResponse"


@pytest.mark.parametrize(
    ("record", "level", "version"),
    [
        (RegisterBrokerRecord(), 21, 3),
        (RegisterBrokerRecord(), 14, 2),
        (RegisterBrokerRecord(), 7, 1),
        (RegisterBrokerRecord(), 6, 0),
        (PartitionRecord(), 21, 1),
        (PartitionRecord(), 16, 0),
        (PartitionRecord(), 22, 1),  # 4.3.1: ELR (PartitionRecord v2) from 4.0-IV1 (23)
        (PartitionRecord(), 23, 2),
        (PartitionChangeRecord(), 21, 1),
        (BrokerRegistrationChangeRecord(fenced=1), 21, 0),
        (BrokerRegistrationChangeRecord(in_controlled_shutdown=1), 21, 1),
        (BrokerRegistrationChangeRecord(log_dirs=[uuid.uuid4()]), 21, 2),
        (TopicRecord(), 21, 0),
    ],
)
def test_record_versions_follow_metadata_version(record: object, level: int, version: int) -> None:
    assert record_version(record, MetadataVersion(level)) == version  # type: ignore[arg-type]


def test_every_metadata_record_type_replays() -> None:
    image = MetadataImage()
    topic_id = uuid.uuid4()
    samples = {
        0: RegisterBrokerRecord(broker_id=2, broker_epoch=0, log_dirs=[uuid.UUID(int=500)]),
        2: TopicRecord(name="t", topic_id=topic_id),
        3: PartitionRecord(
            partition_id=0,
            topic_id=topic_id,
            replicas=[2],
            isr=[2],
            leader=2,
            leader_epoch=0,
            partition_epoch=0,
        ),
        5: PartitionChangeRecord(partition_id=0, topic_id=topic_id, leader=-1),
        4: ConfigRecord(resource_type=2, resource_name="t", name="retention.ms", value="1"),
        10: DelegationTokenRecord(token_id="tok"),
        11: UserScramCredentialRecord(name="alice", mechanism=1),
        14: ClientQuotaRecord(
            entity=[ClientQuotaRecord.EntityData(entity_type="user", entity_name="alice")],
            key="k",
            value=1.0,
        ),
        18: AccessControlEntryRecord(id=uuid.UUID(int=7)),
    }
    kinds = sorted(
        METADATA_RECORDS, key=lambda k: (list(samples).index(k) if k in samples else 100, k)
    )
    offset = 0
    for api_key in kinds:
        if api_key == 1:
            continue  # UnregisterBrokerRecord is replayed last, below
        record = samples.get(api_key) or METADATA_RECORDS[api_key]()
        if api_key in (7, 8):  # fence/unfence name the broker by id and epoch
            record.id, record.epoch = 2, 0  # type: ignore[attr-defined]
        if api_key == 17:
            record.broker_id, record.broker_epoch = 2, 0  # type: ignore[attr-defined]
        if api_key == 9:
            continue  # RemoveTopicRecord: below, after the partition checks
        if api_key == 15:
            record.next_producer_id = 1000  # type: ignore[attr-defined]
        if api_key == 22:  # removes the SCRAM credential added above
            record.name, record.mechanism = "alice", 1  # type: ignore[attr-defined]
        if api_key == 26:  # removes the delegation token added above
            record.token_id = "tok"  # type: ignore[attr-defined]
        if api_key == 19:  # removes the ACL added above
            record.id = uuid.UUID(int=7)  # type: ignore[attr-defined]
        if api_key == 25:  # an abort ends an open transaction (the Begin above was ended)
            image.replay(METADATA_RECORDS[23](), 0, offset)
            offset += 1
        image.replay(record, 0, offset)
        offset += 1
    partition = image.topics[topic_id].partitions[0]
    assert (partition.leader, partition.leader_epoch, partition.partition_epoch) == (-1, 1, 1)
    assert image.partitions_without_leader() == [(topic_id, 0)]
    assert image.topic_config("t") == {"retention.ms": "1"}
    assert image.next_producer_id == 1000
    assert not image.acls  # added, then removed
    assert ("alice", 1) not in image.scram_credentials  # added, then removed
    assert "tok" not in image.delegation_tokens  # added, then removed
    assert image.transaction_start_offset == -1  # begun, then ended or aborted
    assert image.finalized_features == {}
    assert image.client_quotas == {(("user", "alice"),): {"k": 1.0}}

    image.replay(METADATA_RECORDS[9](topic_id=topic_id), 0, offset)
    assert not image.topics and not image.topic_config("t")
    image.replay(METADATA_RECORDS[1](broker_id=2, broker_epoch=0), 0, offset + 1)
    assert not image.brokers and not image.directory_owners
    assert image.last_applied_offset == offset + 1


@pytest.mark.parametrize(
    "record",
    [
        PartitionRecord(topic_id=uuid.uuid4(), partition_id=0),  # unknown topic
        BrokerRegistrationChangeRecord(broker_id=9, fenced=1),  # unknown broker
        PartitionChangeRecord(topic_id=uuid.uuid4(), partition_id=0),  # unknown partition
    ],
)
def test_records_that_do_not_fit_the_state_are_refused(record: object) -> None:
    with pytest.raises(ReplayError):
        MetadataImage().replay(record, 0, 0)  # type: ignore[arg-type]


def test_error_codes_cover_kafka_39() -> None:
    assert ErrorCode.STALE_BROKER_EPOCH == 77
    assert ErrorCode.INCONSISTENT_CLUSTER_ID == 104
    assert ErrorCode.DUPLICATE_BROKER_REGISTRATION == 101
    assert ErrorCode.of(12345) is ErrorCode.UNKNOWN_SERVER_ERROR
    assert ErrorCode.NONE.message is None and ErrorCode.INVALID_CONFIG.message
