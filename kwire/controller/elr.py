"""Eligible leader replicas (KIP-966) as Kafka 4.3.1's controller keeps them.

ELR is on when the finalized feature ``eligible.leader.replicas.version`` is at least 1
(FeatureControlManager.isElrFeatureEnabled); that level needs metadata.version 4.0-IV1
(EligibleLeaderReplicasVersion.ELRV_1). :func:`elr_enabled` is the one gate; with it off
every function here is unused and kwire behaves as Kafka 3.9.0's controller.

The rules, each from the Kafka 4.3.1 class named:

- An ISR that shrinks below the partition's effective min.insync.replicas keeps the
  replicas it loses as eligible leaders: the new ELR is (old ELR + old ISR) less the new
  ISR and less any replica that shut down uncleanly; an ISR at or above min ISR clears the
  ELR (PartitionChangeBuilder.maybePopulateTargetElr). The set is a java.util.HashSet of
  Integers, so the ELR lists its members in that set's iteration order
  (:func:`java_int_set_order`).
- The effective min ISR of a topic is its min.insync.replicas (topic config, else the
  controller's own dynamic broker config, else the cluster default, else the static
  config, else 1), capped at the replication factor of partition 0
  (ReplicationControlManager.getTopicEffectiveMinIsr).
- A change of min.insync.replicas (topic or broker config, and a topic created with one)
  clears ELRs: one ClearElrRecord per such ConfigRecord, after all of them, naming the
  topic for a topic config and nothing (every topic) otherwise
  (ConfigurationControlManager.createClearElrRecordsAsNeeded). While ELR is on, a
  broker-level min.insync.replicas may not change and the cluster-level one may not be
  removed (INVALID_CONFIG; isDisallowedBrokerMinIsrTransition,
  isDisallowedClusterMinIsrTransition).
- A broker that registers a new incarnation without having shut down cleanly (the
  PreviousBrokerEpoch of BrokerRegistration v3+ is not the epoch the controller holds)
  leaves every ISR and ELR, and can not be elected on the way out; after a clean
  shutdown it only leaves the ISRs, as when fenced (ClusterControlManager.registerBroker,
  ReplicationControlManager.handleBrokerShutdown).

Kafka 4.3.1 writes no ClearElrRecord when the feature is lowered to 0 (only
ConfigurationControlManager writes them); ELRs left behind are then dropped partition by
partition as PartitionChangeBuilder next touches each one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from kwire.controller.image import ConfigResourceType, MetadataImage
from kwire.controller.java_order import JavaHashMap
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.clear_elr_record import ClearElrRecord
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

ELR_FEATURE = "eligible.leader.replicas.version"
MIN_IN_SYNC_REPLICAS = "min.insync.replicas"
_DEFAULT_MIN_ISR = "1"  # TopicConfig's default for min.insync.replicas

# Topic name -> effective min ISR while ELR is on; None while it is off.
MinIsr = Callable[[str], int] | None


def elr_enabled(image: MetadataImage) -> bool:
    """Whether eligible leader replicas are kept: ``eligible.leader.replicas.version`` is
    finalized at level 1 or more (FeatureControlManager.isElrFeatureEnabled)."""
    return image.finalized_features.get(ELR_FEATURE, 0) >= 1


def min_isr_config(ctl: QuorumController, topic: str) -> int:
    """``min.insync.replicas`` as it applies to ``topic``: the topic's own config, else
    this controller's dynamic broker config, else the cluster default, else the static
    config, else 1 (KafkaConfigSchema.resolveEffectiveTopicConfig). Raises ValueError for
    a value that is not an integer (Kafka's Integer.parseInt would fail the operation)."""
    image = ctl.image
    for scope in (
        image.topic_config(topic),
        image.configs.get((ConfigResourceType.BROKER, str(ctl.node_id)), {}),
        image.configs.get((ConfigResourceType.BROKER, ""), {}),
        ctl.config.static_topic_configs,
    ):
        value = scope.get(MIN_IN_SYNC_REPLICAS)
        if value is not None:
            return int(value.strip())
    return int(_DEFAULT_MIN_ISR)


def effective_min_isr(ctl: QuorumController, topic: str) -> int:
    """The min ISR the builder uses for ``topic``: :func:`min_isr_config` capped at the
    replication factor of the topic's partition 0 (getTopicEffectiveMinIsr)."""
    configured = min_isr_config(ctl, topic)
    info = ctl.image.topic_by_name(topic)
    first = None if info is None else info.partitions.get(0)
    if first is None:
        return configured
    return min(configured, len(first.replicas))


def min_isr_resolver(ctl: QuorumController) -> MinIsr:
    """What the partition change builders of an operation take: None while ELR is off,
    else a function from topic name to its effective min ISR."""
    if not elr_enabled(ctl.image):
        return None
    return lambda topic: effective_min_isr(ctl, topic)


def java_int_set_order(first: Iterable[int], then: Iterable[int]) -> list[int]:
    """The iteration order of ``new HashSet<Integer>(first)`` after ``addAll(then)``:
    buckets by the int's low bits at the table's size (sized from ``first``, doubling as
    it fills), ties in insertion order. Duplicates appear once."""
    initial = list(first)
    table: JavaHashMap[int, None] = JavaHashMap(max(int(len(initial) / 0.75) + 1, 16))
    for value in [*initial, *then]:
        table.put(value, value, None)
    return table.keys()


def target_elr(
    elr: Sequence[int],
    isr: Sequence[int],
    target_isr: Sequence[int],
    min_isr: int,
    unclean_shutdown: Sequence[int] = (),
) -> list[int]:
    """The ELR a partition with ``elr`` and ``isr`` gets when its ISR becomes
    ``target_isr`` (PartitionChangeBuilder.maybePopulateTargetElr): empty once the ISR
    holds ``min_isr`` replicas, else the old ELR and ISR less the new ISR and less the
    replicas in ``unclean_shutdown``."""
    if len(target_isr) >= min_isr:
        return []
    keep = set(target_isr) | set(unclean_shutdown)
    return [r for r in java_int_set_order(elr, isr) if r not in keep]


def clear_elr_records(records: Sequence[Message]) -> list[ClearElrRecord]:
    """The ClearElrRecords Kafka appends after ``records`` of a config change: one per
    ConfigRecord of min.insync.replicas, naming its topic, or none (all topics) for a
    broker-level one (createClearElrRecordsAsNeeded; the caller checks :func:`elr_enabled`)."""
    out = []
    for record in records:
        if isinstance(record, ConfigRecord) and record.name == MIN_IN_SYNC_REPLICAS:
            if record.resource_type == ConfigResourceType.TOPIC:
                out.append(ClearElrRecord(topic_name=record.resource_name))
            else:
                out.append(ClearElrRecord(topic_name=""))
    return out


def topic_min_isr(ctl: QuorumController, topic: str) -> int | None:
    """The ``min_isr`` argument of build_partition_change for ``topic``: its effective
    min ISR while ELR is on, None while it is off."""
    return effective_min_isr(ctl, topic) if elr_enabled(ctl.image) else None
