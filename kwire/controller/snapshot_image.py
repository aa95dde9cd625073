"""The records of a metadata snapshot of the controller's image, as Kafka writes them.

Kafka writes a snapshot by walking its published MetadataImage (MetadataImage.write in
Kafka 3.9 and 4.3.1, called by SnapshotEmitter with ImageWriterOptions at the image's own
metadata.version): features (metadata.version first, at version 0), then the cluster
(brokers, then controllers), topics (each TopicRecord followed by its partitions), configs,
client quotas, producer ids, ACLs, SCRAM credentials and delegation tokens. Each map is
walked in the order Kafka's image holds it, which the image keeps
(kwire.controller.image_order). The snapshot header and footer control records, batching
and the file are the snapshot writer's business, not this module's.

What the two releases write differently:
- Kafka 3.9 writes a ZkMigrationStateRecord after the features at levels from 3.4-IV0
  (FeaturesImage.write); Kafka 4.3.1 writes none.
- Kafka 3.9 sets InControlledShutdown only from 3.3-IV3 (isInControlledShutdownStateSupported);
  Kafka 4.3.1 always sets it.
- Kafka 3.9 writes ELRs in PartitionRecords when the level supports them (isElrSupported);
  Kafka 4.3.1 when ``eligible.leader.replicas.version`` is enabled.
Which release is followed is chosen by level (3.x levels: 3.9; 4.x: 4.3.1), unless the
caller names it, as for a Kafka 4.3.1 cluster still at 3.9-IV0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kwire.controller.image import MetadataImage
from kwire.controller.image_order import java_map_order
from kwire.controller.java_order import uuid_hash
from kwire.controller.records import RecordAndVersion, metadata_version
from kwire.controller.registrations import (
    BrokerRegistration,
    ControllerRegistration,
    Endpoint,
    PartitionRegistration,
    TopicInfo,
)
from kwire.metadata_version import MetadataVersion
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.producer_ids_record import ProducerIdsRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.protocol.messages.metadata_records.zk_migration_state_record import (
    ZkMigrationStateRecord,
)

ELR_FEATURE = "eligible.leader.replicas.version"


class SnapshotLossError(ValueError):
    """The image holds state its metadata.version cannot express (Kafka's
    ImageWriterOptions.handleLoss, whose default handler throws
    UnwritableMetadataException)."""


def snapshot_records(
    image: MetadataImage, *, kafka_4: bool | None = None
) -> list[RecordAndVersion]:
    """The records of a snapshot of ``image``, in Kafka's order and at Kafka's versions.

    ``kafka_4`` names the release whose MetadataImage.write is followed (None: Kafka
    4.3.1 at 4.x levels, Kafka 3.9 below). Raises SnapshotLossError when the image has no
    metadata.version or holds state its level cannot write (as Kafka refuses to write such
    a snapshot)."""
    return list(snapshot_view(image, kafka_4=kafka_4).records())


@dataclass(slots=True)
class SnapshotView:
    """A consistent copy of what a snapshot of an image holds, taken at one moment:
    every record but the partitions' is built at once, and each topic keeps a shallow copy
    of its partitions dict (PartitionRegistration values are immutable), so `records`
    gives, however the image changes meanwhile, the records `snapshot_records` gave at
    that moment. Copying costs O(partitions) in C dict copies; building a PartitionRecord
    is left to `records`, a slice at a time."""

    head: list[RecordAndVersion]  # features, brokers, controllers
    topics: list[tuple[TopicInfo, dict[int, PartitionRegistration]]]  # in Kafka's order
    tail: list[RecordAndVersion]  # configs, quotas, producer ids, ACLs, SCRAM, tokens
    mv: MetadataVersion
    elr: bool

    def records(self) -> Iterator[RecordAndVersion]:
        """The snapshot's records, in Kafka's order, generated as they are consumed."""
        yield from self.head
        mv, elr = self.mv, self.elr
        for topic, partitions in self.topics:
            yield RecordAndVersion(TopicRecord(name=topic.name, topic_id=topic.topic_id), 0)
            for partition_id in sorted(partitions):
                yield _partition(topic, partition_id, partitions[partition_id], mv, elr)
        yield from self.tail

    def __len__(self) -> int:
        """How many records `records` gives."""
        return len(self.head) + len(self.tail) + sum(1 + len(p) for _, p in self.topics)


def snapshot_view(image: MetadataImage, *, kafka_4: bool | None = None) -> SnapshotView:
    """The consistent copy of ``image``'s snapshot (see `SnapshotView`); arguments and
    errors as `snapshot_records`, raised here, not while the records are generated."""
    level = image.metadata_version_level
    if level == 0:
        raise SnapshotLossError("the metadata image has no metadata.version")
    mv = metadata_version(level)
    if kafka_4 is None:
        kafka_4 = mv >= MetadataVersion.IBP_4_0_IV0
    head: list[RecordAndVersion] = []
    _features(image, mv, kafka_4, head)
    for broker_id in image.kafka_order("brokers"):
        head.append(_broker(image.brokers[broker_id], mv, kafka_4))
    if image.controllers and not mv.is_controller_registration_supported:
        raise SnapshotLossError("controller registration data")
    for controller_id in image.kafka_order("controllers"):
        head.append(_controller(image.controllers[controller_id], mv))
    elr = image.finalized_features.get(ELR_FEATURE, 0) >= 1 if kafka_4 else mv.is_elr_supported
    # A TopicInfo's name and id never change; its partitions dict does: copy it.
    topics = [(topic, topic.partitions.copy()) for topic in _topics_in_order(image)]
    tail: list[RecordAndVersion] = []
    for resource in image.configs:
        for name in image.kafka_order(("config", resource)):
            tail.append(
                RecordAndVersion(
                    ConfigRecord(
                        resource_type=int(resource[0]),
                        resource_name=resource[1],
                        name=name,
                        value=image.configs[resource][name],
                    ),
                    0,
                )
            )
    _client_quotas(image, tail)
    # ProducerIdsImage writes only once a block was given out (nextProducerId >= 0).
    if image.last_producer_ids_broker is not None:
        record = ProducerIdsRecord(
            broker_id=-1, broker_epoch=-1, next_producer_id=image.next_producer_id
        )
        tail.append(RecordAndVersion(record, 0))
    for acl_id in image.kafka_order("acls"):
        tail.append(RecordAndVersion(image.acls[acl_id], 0))
    _scram_and_tokens(image, mv, tail)
    return SnapshotView(head=head, topics=topics, tail=tail, mv=mv, elr=elr)


def _features(
    image: MetadataImage, mv: MetadataVersion, kafka_4: bool, out: list[RecordAndVersion]
) -> None:
    out.append(
        RecordAndVersion(FeatureLevelRecord(name="metadata.version", feature_level=int(mv)), 0)
    )
    for name in image.kafka_order("features"):
        level = image.finalized_features[name]
        out.append(RecordAndVersion(FeatureLevelRecord(name=name, feature_level=level), 0))
    if kafka_4:
        return
    if mv.supports_migration:
        state = max(int(image.zk_migration_state), 0)  # an unset state is written as NONE
        out.append(RecordAndVersion(ZkMigrationStateRecord(zk_migration_state=state), 0))


def _broker(b: BrokerRegistration, mv: MetadataVersion, kafka_4: bool) -> RecordAndVersion:
    if b.in_controlled_shutdown and not kafka_4 and not mv.supports_in_controlled_shutdown_state:
        raise SnapshotLossError("the inControlledShutdown state of one or more brokers")
    if b.directories and not mv.is_directory_assignment_supported:
        raise SnapshotLossError("the online log directories of one or more brokers")
    cordoned = b.cordoned_directories
    if cordoned is not None and not mv.supports_cordoned_log_dirs:
        raise SnapshotLossError("the cordoned log directories of one or more brokers")
    record = RegisterBrokerRecord(
        broker_id=b.broker_id,
        is_migrating_zk_broker=b.is_migrating_zk_broker,
        incarnation_id=b.incarnation_id,
        broker_epoch=b.epoch,
        end_points=[
            RegisterBrokerRecord.BrokerEndpoint(
                name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol
            )
            for e in _listeners_in_order(b.listeners)
        ],
        features=[
            RegisterBrokerRecord.BrokerFeature(
                name=name,
                min_supported_version=b.supported_features[name][0],
                max_supported_version=b.supported_features[name][1],
            )
            for name in _features_in_order(b.supported_features)
        ],
        rack=b.rack,
        fenced=b.fenced,
        in_controlled_shutdown=b.in_controlled_shutdown,
        log_dirs=list(b.directories),
        cordoned_log_dirs=None if cordoned is None else list(cordoned),
    )
    return RecordAndVersion(record, mv.register_broker_record_version)


def _controller(c: ControllerRegistration, mv: MetadataVersion) -> RecordAndVersion:
    record = RegisterControllerRecord(
        controller_id=c.controller_id,
        incarnation_id=c.incarnation_id,
        zk_migration_ready=c.zk_migration_ready,
        end_points=[
            RegisterControllerRecord.ControllerEndpoint(
                name=e.name, host=e.host, port=e.port, security_protocol=e.security_protocol
            )
            for e in _listeners_in_order(c.listeners)
        ],
        features=[
            RegisterControllerRecord.ControllerFeature(
                name=name,
                min_supported_version=c.supported_features[name][0],
                max_supported_version=c.supported_features[name][1],
            )
            for name in _features_in_order(c.supported_features)
        ],
    )
    return RecordAndVersion(record, mv.register_controller_record_version)


def _listeners_in_order(listeners: tuple[Endpoint, ...]) -> list[Endpoint]:
    # BrokerRegistration/ControllerRegistration keep listeners in a HashMap built from
    # the record (default capacity), then copied into one sized for it.
    by_name = {e.name: e for e in listeners}
    first = java_map_order(by_name)
    return [by_name[name] for name in java_map_order(first, initial_capacity=len(first))]


def _features_in_order(features: dict[str, tuple[int, int]]) -> list[str]:
    # A HashMap built from the record, then copied (HashMap's copy constructor).
    first = java_map_order(features)
    return java_map_order(first, initial_capacity=int(len(first) / 0.75 + 1.0) if first else None)


def _topics_in_order(image: MetadataImage) -> list[TopicInfo]:
    # TopicsImage.topicsById is a PCollections HashPMap: by the keys' hash codes.
    return sorted(image.topics.values(), key=lambda t: uuid_hash(t.topic_id))


def _partition(
    topic: TopicInfo, partition_id: int, p: PartitionRegistration, mv: MetadataVersion, elr: bool
) -> RecordAndVersion:
    record = PartitionRecord(
        partition_id=partition_id,
        topic_id=topic.topic_id,
        replicas=list(p.replicas),
        isr=list(p.isr),
        removing_replicas=list(p.removing_replicas),
        adding_replicas=list(p.adding_replicas),
        leader=p.leader,
        leader_recovery_state=int(p.leader_recovery_state),
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
        directories=list(p.directories) if mv.is_directory_assignment_supported else [],
        eligible_leader_replicas=list(p.elr) if elr and p.elr else None,
        last_known_elr=list(p.last_known_elr) if elr and p.last_known_elr else None,
    )
    return RecordAndVersion(record, mv.partition_record_version)


def _client_quotas(image: MetadataImage, out: list[RecordAndVersion]) -> None:
    for entity in image.kafka_order("quota_entities"):
        # ClientQuotaEntity's entries: a HashMap of entity type -> name.
        names = dict(entity)
        entity_data = [
            ClientQuotaRecord.EntityData(entity_type=t, entity_name=names[t])
            for t in java_map_order(names)
        ]
        quotas = image.client_quotas[entity]
        for key in image.kafka_order(("quota", entity)):
            record = ClientQuotaRecord(entity=entity_data, key=key, value=quotas[key], remove=False)
            out.append(RecordAndVersion(record, 0))


def _scram_and_tokens(
    image: MetadataImage, mv: MetadataVersion, out: list[RecordAndVersion]
) -> None:
    if image.scram_credentials and not mv.is_scram_supported:
        raise SnapshotLossError("SCRAM credentials")
    for mechanism in sorted({m for _, m in image.scram_credentials}):
        for name in image.kafka_order(("scram", mechanism)):
            out.append(RecordAndVersion(image.scram_credentials[(name, mechanism)], 0))
    if image.delegation_tokens and not mv.is_delegation_token_supported:
        raise SnapshotLossError("delegation tokens")
    for token_id in image.kafka_order("tokens"):
        out.append(RecordAndVersion(image.delegation_tokens[token_id], 0))
