"""A small cluster built by replaying records, for the partition-state tests: brokers
1..N registered (each with one log directory), one topic with given partitions, and a
helper to send a request as the active controller and keep what it wrote."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.image import PartitionRegistration
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

TOPIC = "foo"
TOPIC_ID = uuid.UUID("8a6c1f2e-0000-4000-8000-00000000f00f")


def broker_epoch(broker_id: int) -> int:
    return 100 + broker_id


def log_dir(broker_id: int) -> uuid.UUID:
    return uuid.UUID(int=(0xD1 << 120) + broker_id)


@dataclass
class Cluster:
    controller: QuorumController
    next_offset: int = 0
    written: list[Message] = field(default_factory=list)

    def replay(self, *records: Message, version: int = 0) -> None:
        for record in records:
            self.controller.replay(record, version, self.next_offset)
            self.next_offset += 1

    def send(self, request: Message, version: int) -> tuple[Message, list[Message]]:
        result = self.controller.handle(
            request, RequestContext(api_version=version), self.next_offset, now_ms=1_000
        )
        records = [rv.record for rv in result.records]
        self.next_offset += len(records)
        self.controller.commit(self.next_offset - 1)
        self.written += records
        assert result.response is not None
        return result.response, records

    def partition(self, partition_id: int = 0, topic: str = TOPIC) -> PartitionRegistration:
        return self.controller.topics_by_name[topic].partitions[partition_id]


def cluster(
    *,
    brokers: int = 4,
    fenced: tuple[int, ...] = (),
    shutting_down: tuple[int, ...] = (),
    partitions: list[dict[str, Any]] | None = None,
    level: int = 21,
    topic_configs: dict[str, str] | None = None,
) -> Cluster:
    """Brokers 1..``brokers`` (epoch 100 + id, one log dir each), topic ``foo`` with the
    given partitions (PartitionRecord fields; replicas [1, 2, 3], ISR [1, 2, 3], leader 1
    by default) at metadata.version ``level``."""
    c = Cluster(
        QuorumController(node_id=0, cluster_id="c", config=ControllerConfig(), rng=random.Random(0))
    )
    c.replay(FeatureLevelRecord(name="metadata.version", feature_level=level))
    directories = level >= 17
    for b in range(1, brokers + 1):
        c.replay(
            RegisterBrokerRecord(
                broker_id=b,
                broker_epoch=broker_epoch(b),
                incarnation_id=uuid.UUID(int=b),
                fenced=b in fenced,
                log_dirs=[log_dir(b)] if directories else [],
            ),
            version=3,
        )
        if b in shutting_down:
            c.replay(
                BrokerRegistrationChangeRecord(
                    broker_id=b, broker_epoch=broker_epoch(b), in_controlled_shutdown=1
                ),
                version=1,
            )
    c.replay(TopicRecord(name=TOPIC, topic_id=TOPIC_ID))
    for name, value in (topic_configs or {}).items():
        c.replay(ConfigRecord(resource_type=2, resource_name=TOPIC, name=name, value=value))
    for i, spec in enumerate(partitions or [{}]):
        fields: dict[str, Any] = {
            "replicas": [1, 2, 3],
            "isr": [1, 2, 3],
            "leader": 1,
            "leader_epoch": 0,
            "partition_epoch": 0,
        } | spec
        if directories and "directories" not in fields:
            fields["directories"] = [log_dir(b) for b in fields["replicas"]]
        c.replay(
            PartitionRecord(partition_id=i, topic_id=TOPIC_ID, **fields),
            version=1 if directories else 0,
        )
    return c
