"""The controller facade: requests in, metadata records and responses out (sans-IO).

``QuorumController`` owns the replayed metadata (``MetadataImage``) and the active
controller's soft state (broker sessions). ``handle`` turns a request into the records to
append and the response to send once they are committed, and applies those records to its
own state at once, as Kafka's active controller does, so the next request sees them.
Time arrives as ``now_ms``; all randomness comes from the ``random.Random`` it is given.

The image never holds what the log will not: records are measured (at most
MAX_RECORDS_PER_USER_OP per operation, an atomic batch within the raft batch limit) before
any is applied, a request that fails part-way is taken back, and the caller takes back
whatever it could not append or commit with ``revert_to`` (see kwire.controller.undo).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from kwire.controller import acls, quotas, scram, tokens
from kwire.controller.alter_partition import alter_partition
from kwire.controller.api_error import OperationFailed
from kwire.controller.authorizer import (
    CLUSTER_NAME,
    AuthorizerSettings,
    ResourceType,
    cluster_authorization_failed_message,
    cluster_operation,
)
from kwire.controller.brokers import controlled_shutdown, unregister_broker
from kwire.controller.cluster import (
    fence_broker_records,
)
from kwire.controller.configs import alter_configs, describe_configs, incremental_alter_configs
from kwire.controller.directories import assign_replicas_to_dirs
from kwire.controller.elections import elect_leaders, unclean_election_enabled
from kwire.controller.elr import min_isr_resolver
from kwire.controller.features import update_features
from kwire.controller.heartbeats import BrokerHeartbeatTracker
from kwire.controller.image import (
    BrokerRegistration,
    ConfigResourceType,
    ControllerRegistration,
    MetadataImage,
    TopicInfo,
    ZkMigrationState,
)
from kwire.controller.image_load import ImageLoader
from kwire.controller.kraft_version import KRaftVersionAccessor, StaticKRaftVersion
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.reassignment import (
    alter_partition_reassignments,
    list_partition_reassignments,
)
from kwire.controller.rebalance import LeaderRebalance, balance_partition_leaders
from kwire.controller.record_framing import framed_values
from kwire.controller.records import (
    KRAFT_VERSION_FEATURE,
    METADATA_VERSION_FEATURE,
    MINIMUM_KRAFT_VERSION,
    MetadataVersion,
    RecordAndVersion,
    metadata_version,
    record_version,
    versioned_records,
)
from kwire.controller.registration import (
    allocate_producer_ids,
    broker_heartbeat,
    broker_registration,
    controller_registration,
    create_topics_operation,
)
from kwire.controller.topics import create_partitions, delete_topics
from kwire.controller.transactions import activation_abort
from kwire.feature_versions import ELIGIBLE_LEADER_REPLICAS_VERSION
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.error_responses import error_response as build_error_response
from kwire.protocol.errors import EncodeError
from kwire.protocol.messages.allocate_producer_ids import (
    AllocateProducerIdsRequest,
)
from kwire.protocol.messages.alter_client_quotas import AlterClientQuotasRequest
from kwire.protocol.messages.alter_configs import AlterConfigsRequest
from kwire.protocol.messages.alter_partition import AlterPartitionRequest
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsRequest
from kwire.protocol.messages.assign_replicas_to_dirs import AssignReplicasToDirsRequest
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
)
from kwire.protocol.messages.controlled_shutdown import ControlledShutdownRequest
from kwire.protocol.messages.controller_registration import (
    ControllerRegistrationRequest,
)
from kwire.protocol.messages.create_acls import CreateAclsRequest
from kwire.protocol.messages.create_delegation_token import CreateDelegationTokenRequest
from kwire.protocol.messages.create_partitions import CreatePartitionsRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.delete_acls import DeleteAclsRequest
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.describe_acls import DescribeAclsRequest
from kwire.protocol.messages.describe_configs import DescribeConfigsRequest
from kwire.protocol.messages.describe_delegation_token import DescribeDelegationTokenRequest
from kwire.protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsRequest,
)
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest
from kwire.protocol.messages.expire_delegation_token import ExpireDelegationTokenRequest
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.end_transaction_record import EndTransactionRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.zk_migration_state_record import (
    ZkMigrationStateRecord,
)
from kwire.protocol.messages.renew_delegation_token import RenewDelegationTokenRequest
from kwire.protocol.messages.unregister_broker import UnregisterBrokerRequest
from kwire.protocol.messages.update_features import UpdateFeaturesRequest
from kwire.records import MAX_BATCH_SIZE_BYTES, plain_batch_size

log = logging.getLogger("kwire.controller")

_LONG_MAX = 2**63 - 1
_MIN_INSYNC_REPLICAS = "min.insync.replicas"


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerConfig:
    """The controller settings the core needs, named after Kafka's configs."""

    broker_session_timeout_ms: int = 9000  # broker.session.timeout.ms
    broker_heartbeat_interval_ms: int = 2000  # broker.heartbeat.interval.ms
    metadata_max_idle_interval_ms: int = 500  # metadata.max.idle.interval.ms (0 = off)
    num_partitions: int = 1  # num.partitions
    default_replication_factor: int = 1  # default.replication.factor
    # kraft.version of a controller run without a raft client (`QuorumController.kraft`,
    # kwire.controller.kraft_version.StaticKRaftVersion); a node's comes from its raft core.
    kraft_version: int = 0
    zk_migration_enabled: bool = False  # zookeeper.metadata.migration.enable
    # Topic config defaults set in the controller's own properties (e.g. retention.ms
    # from log.retention.hours), keyed by topic config name; reported as
    # STATIC_BROKER_CONFIG in CreateTopics responses.
    static_topic_configs: Mapping[str, str] = field(default_factory=dict)
    # delete.topic.enable: when false, DeleteTopics is refused as a whole
    # (ControllerApis.deleteTopics).
    delete_topic_enable: bool = True
    # The node's own configuration as given (with broker.id = node.id), as DescribeConfigs
    # reports it (STATIC_BROKER_CONFIG) and topic configs default from it.
    static_broker_configs: Mapping[str, str] = field(default_factory=dict)
    # The quorum's voter ids (QuorumFeatures.quorumNodeIds); empty means this node alone.
    quorum_node_ids: tuple[int, ...] = ()
    # The largest batch raft appends (KafkaRaftClient.MAX_BATCH_SIZE_BYTES): an atomic
    # result that would not fit fails before anything is applied.
    max_batch_size_bytes: int = MAX_BATCH_SIZE_BYTES
    # authorizer.class.name = org.apache.kafka.metadata.authorizer.StandardAuthorizer, with
    # its super.users and allow.everyone.if.no.acl.found; None: no authorizer (every
    # principal may do everything; the ACL APIs answer SECURITY_DISABLED).
    authorizer: AuthorizerSettings | None = None
    # delegation.token.secret.key (None or empty: token authentication off),
    # delegation.token.max.lifetime.ms (7 days), delegation.token.expiry.time.ms (1 day).
    delegation_token_secret_key: str | None = None
    delegation_token_max_lifetime_ms: int = 7 * 24 * 3600 * 1000
    delegation_token_expiry_time_ms: int = 24 * 3600 * 1000
    # delegation.token.expiry.check.interval.ms (1 hour): how often the active controller
    # removes expired tokens (kwire.controller.tokens' sweep).
    delegation_token_expiry_check_interval_ms: int = 3600 * 1000
    # auto.leader.rebalance.enable and leader.imbalance.check.interval.seconds (in ms here):
    # the periodic move of leadership back to preferred replicas (kwire.controller.rebalance;
    # ControllerServer passes the interval only when the rebalance is enabled).
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_ms: int = 300 * 1000


class QuorumController:
    def __init__(
        self, *, node_id: int, cluster_id: str, config: ControllerConfig, rng: random.Random
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.config = config
        self.rng = rng
        # The raft client's kraft.version (kwire.controller.kraft_version): the node puts
        # its raft core's here; alone, the configured level.
        self.kraft: KRaftVersionAccessor = StaticKRaftVersion(config.kraft_version)
        self.tracker = BrokerHeartbeatTracker(config.broker_session_timeout_ms)
        self.image = MetadataImage(
            on_broker_registered=self._broker_registered,
            on_broker_removed=self._broker_removed,
        )
        self._active = False
        self._next_noop_ms = _LONG_MAX
        self._next_token_sweep_ms = _LONG_MAX
        self.rebalance = LeaderRebalance(
            config.leader_imbalance_check_interval_ms
            if config.auto_leader_rebalance_enable
            else None
        )

    # -- state views ---------------------------------------------------------------------

    @property
    def last_applied_offset(self) -> int:
        return self.image.last_applied_offset

    @property
    def metadata_version(self) -> MetadataVersion:
        level = self.image.finalized_features.get(METADATA_VERSION_FEATURE)
        return MINIMUM_KRAFT_VERSION if level is None else metadata_version(level)

    @property
    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return self.image.brokers

    @property
    def controllers(self) -> Mapping[int, ControllerRegistration]:
        return self.image.controllers

    @property
    def topics_by_name(self) -> dict[str, TopicInfo]:
        return {name: self.image.topics[tid] for name, tid in self.image.topic_ids_by_name.items()}

    @property
    def topics_by_id(self) -> Mapping[UUID, TopicInfo]:
        return self.image.topics

    def finalized_features(self, committed_offset: int | None = None) -> tuple[int, dict[str, int]]:
        """(epoch, levels) of the finalized features, as of ``committed_offset`` (the
        latest applied when None). ApiVersions reports both."""
        if committed_offset is None:
            committed_offset = self.image.last_applied_offset
        return self.image.finalized_features_at(committed_offset)

    @property
    def is_active(self) -> bool:
        return self._active

    # -- lifecycle -----------------------------------------------------------------------

    def bootstrap_records(
        self,
        metadata_version_level: int = 21,
        features: Mapping[str, int] | None = None,
        bootstrap: Sequence[RecordAndVersion] | None = None,
    ) -> list[RecordAndVersion]:
        """What a new leader appends to an empty log (Kafka's ActivationRecordsGenerator
        .recordsForEmptyLog): from 3.6-IV1 inside a metadata transaction, the bootstrap
        records as formatted (``bootstrap``; else metadata.version then the other features
        by name), then at a 4.x level with eligible.leader.replicas.version on, the cluster's
        min.insync.replicas (Kafka 4.3.1), or at a 3.x level from 3.6-IV1 the ZK migration
        state (Kafka 3.9.0)."""
        mv = metadata_version(metadata_version_level)
        if bootstrap is None:
            records: list[Message] = [
                FeatureLevelRecord(name=METADATA_VERSION_FEATURE, feature_level=mv)
            ]
            for name, level in sorted((features or {}).items()):
                # kraft.version lives in the raft log's control records, never here.
                if name not in (METADATA_VERSION_FEATURE, KRAFT_VERSION_FEATURE) and level > 0:
                    records.append(FeatureLevelRecord(name=name, feature_level=level))
            bootstrap = [RecordAndVersion(r, record_version(r, mv)) for r in records]
        out = list(bootstrap)
        levels = {
            r.record.name: r.record.feature_level
            for r in out
            if isinstance(r.record, FeatureLevelRecord)
        }
        if levels.get(ELIGIBLE_LEADER_REPLICAS_VERSION.name, 0) > 0:
            minimum = self.config.static_broker_configs.get(_MIN_INSYNC_REPLICAS, "1")
            config = ConfigRecord(
                resource_type=ConfigResourceType.BROKER,
                resource_name="",
                name=_MIN_INSYNC_REPLICAS,
                value=minimum,
            )
            out.append(RecordAndVersion(config, 0))
        if mv.supports_metadata_transactions:
            begin = BeginTransactionRecord(name="Bootstrap records")
            out.insert(0, RecordAndVersion(begin, 0))
            if mv < MetadataVersion.IBP_4_0_IV0:  # Kafka 4.x no longer writes it
                state = (
                    ZkMigrationState.PRE_MIGRATION
                    if self.config.zk_migration_enabled
                    else ZkMigrationState.NONE
                )
                out.append(RecordAndVersion(ZkMigrationStateRecord(zk_migration_state=state), 0))
            out.append(RecordAndVersion(EndTransactionRecord(), 0))
        return out

    def activate(
        self,
        now_ms: int,
        next_offset: int,
        metadata_version_level: int = 21,
        bootstrap: Sequence[RecordAndVersion] | None = None,
    ) -> ControllerResult | None:
        """Become the active controller once the log has been replayed. Every known broker
        gets a fresh session, the NoOp schedule starts, and an empty log is bootstrapped
        with ``bootstrap`` (the records of bootstrap.checkpoint; the returned records,
        already applied). A log that ends inside a metadata transaction gets, before
        anything else, its AbortTransactionRecord (kwire.controller.transactions; raises
        TransactionError below metadata.version 3.6-IV1, as Kafka's activation fails)."""
        abort = activation_abort(self.image, self.metadata_version)
        aborted = None
        if abort:
            log.info(
                "Performing controller activation. Aborting in-progress metadata transaction "
                "at offset %d.",
                self.image.transaction_start_offset,
            )
            aborted = self._apply_versioned(Applied(), abort, next_offset, atomic=True)
        # ClusterControlManager.activate: sessions start afresh from the registrations
        # (none is left from a broker that only an aborted transaction registered).
        self._start_sessions(now_ms)
        if aborted is not None:  # a log with a transaction is not empty: nothing else
            return aborted.result(None, atomic=True)
        if self.image.last_applied_offset >= 0 and self.image.finalized_features:
            return None
        records = self.bootstrap_records(metadata_version_level, bootstrap=bootstrap)
        applied = Applied()
        self._apply_versioned(applied, records, next_offset, atomic=False)
        # Kafka schedules its periodic work once the activation records are applied, at
        # the metadata.version they set.
        self._schedule_token_sweep(now_ms)
        return applied.result(
            None,
            atomic=not metadata_version(metadata_version_level).supports_metadata_transactions,
        )

    def _start_sessions(self, now_ms: int) -> None:
        """Become (or stay) active with a fresh session for every broker the image
        registers, and no other (ClusterControlManager.activate)."""
        self._observe(now_ms)
        self._active = True
        self.tracker.restart((b, r.fenced) for b, r in self.image.brokers.items())
        self._next_noop_ms = now_ms + self.config.metadata_max_idle_interval_ms
        self._schedule_token_sweep(now_ms)

    def _schedule_token_sweep(self, now_ms: int) -> None:
        """QuorumController.maybeScheduleNextExpiredDelegationTokenSweep: the next sweep one
        interval from now, or none while token authentication is off or metadata.version
        is below 3.6-IV2."""
        if tokens.token_sweep_enabled(self):
            interval = self.config.delegation_token_expiry_check_interval_ms
            self._next_token_sweep_ms = min(now_ms + interval, _LONG_MAX)
        else:
            self._next_token_sweep_ms = _LONG_MAX

    def deactivate(self) -> None:
        """Step down to standby: sessions are forgotten and periodic work stops."""
        self._active = False
        self.tracker.forget_all()
        self._next_noop_ms = _LONG_MAX
        self._next_token_sweep_ms = _LONG_MAX

    def _broker_registered(self, broker_id: int, fenced: bool) -> None:
        """The image (re)registered a broker or changed its fencing: the active
        controller's session follows (ClusterControlManager.replay calls
        heartbeatManager.register only while it has one). A standby keeps no sessions,
        so that none outlives what a later abort or revert takes out of its image."""
        if self._active:
            self.tracker.register(broker_id, fenced)

    def _broker_removed(self, broker_id: int) -> None:
        if self._active:
            self.tracker.remove(broker_id)

    def replay(self, record: Message, version: int, offset: int) -> None:
        """Apply a committed record read from the log (restart, or following as a
        standby); it can never be taken back."""
        self.image.replay(record, version, offset)

    def revert_to(self, offset: int) -> int:
        """Take the state back to exactly the replay of the log up to ``offset``
        (inclusive): records applied after it, whose append failed, was refused or was
        abandoned, are forgotten. On the active controller every broker of the reverted
        image then gets a fresh session, and no other broker has one, as under a newly
        elected controller (Kafka renounces, reverting to its last committed offset and
        dropping its BrokerHeartbeatManager; the next claim builds one from the
        registrations). Returns the number of changes undone."""
        undone = self.image.undo.revert_to(offset)
        if undone:
            log.info(
                "Reverted %d uncommitted change(s) of the metadata image to offset %d",
                undone,
                offset,
            )
            if self._active:
                self._start_sessions(self.tracker.now_ms)
        return undone

    def commit(self, offset: int) -> None:
        """Records up to ``offset`` (inclusive) are committed: they can no longer be
        reverted, and what was kept to undo them is freed."""
        self.image.undo.forget_through(offset)

    @property
    def uncommitted_changes(self) -> int:
        """How many applied changes could still be taken back (kept until commit)."""
        return len(self.image.undo)

    # -- requests ------------------------------------------------------------------------

    def handle(
        self, request: Message, context: RequestContext, next_offset: int, now_ms: int
    ) -> ControllerResult:
        self._observe(now_ms)
        if not self._active:
            # Serving requests makes this the active controller; bootstrapping an empty
            # log is ``activate``'s job, whose records the caller must append.
            self._start_sessions(now_ms)
        handler = REQUEST_HANDLERS.get(type(request))
        if handler is None:
            return ControllerResult(records=[], response=unsupported_response(request))
        if self.config.authorizer is not None and not self._cluster_authorized(request, context):
            return ControllerResult(
                records=[],
                response=build_error_response(
                    request,
                    context.api_version,
                    ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    cluster_authorization_failed_message(request),
                ),
            )
        try:
            return handler(self, request, context, next_offset)
        except OperationFailed as e:
            # Nothing of a failed operation stays applied (usually nothing was).
            self.revert_to(next_offset - 1)
            log.warning("%s failed and wrote nothing: %s", request.NAME, e.message or e.code.name)
            return ControllerResult(
                records=[],
                response=build_error_response(request, context.api_version, e.code, e.message),
            )
        except BaseException:
            self.revert_to(next_offset - 1)
            raise

    def _cluster_authorized(self, request: Message, context: RequestContext) -> bool:
        """ControllerApis' whole-request check (authHelper.authorizeClusterOperation)."""
        operation = cluster_operation(request)
        if operation is None or context.internal:
            return True
        authorizer = tokens.ctl_authorizer(self)
        assert authorizer is not None
        return authorizer.authorize(
            context.principal, context.client_host, operation, ResourceType.CLUSTER, CLUSTER_NAME
        )

    def apply(
        self, applied: Applied, records: list[Message], next_offset: int, *, atomic: bool = True
    ) -> Applied:
        """Version ``records`` at the current metadata.version, frame them and apply them
        after those already in ``applied`` (the operation starting at ``next_offset``).
        Raises OperationFailed, having applied nothing of them, when an atomic result
        would exceed the batch size; the caller's operation then fails as a whole."""
        versioned = versioned_records(records, self.metadata_version)
        return self._apply_versioned(applied, versioned, next_offset, atomic=atomic)

    def _apply_versioned(
        self,
        applied: Applied,
        records: list[RecordAndVersion],
        next_offset: int,
        *,
        atomic: bool,
    ) -> Applied:
        """Frame ``records``; for an atomic result, refuse (OperationFailed) a batch over
        the raft limit before any is applied; then apply them, ready to be taken back."""
        try:
            values = framed_values(records)
        except EncodeError as e:
            # A record its schema cannot hold (a config value over 32,767 bytes at 3.x
            # levels): Kafka 3.9's raft fails to serialize it, an unexpected error that the
            # controller answers UNKNOWN_SERVER_ERROR, writing nothing.
            log.error("A record of the operation cannot be encoded; nothing is written: %s", e)
            raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR) from None
        if atomic:
            size = plain_batch_size([len(v) for v in applied.values + values])
            if size > self.config.max_batch_size_bytes:
                # Kafka's raft refuses the batch (RecordBatchTooLargeException), which the
                # controller treats as an unexpected error: UNKNOWN_SERVER_ERROR, no message.
                log.error(
                    "The total record(s) size of %d exceeds the maximum allowed batch size "
                    "of %d; the operation fails and nothing is written",
                    size,
                    self.config.max_batch_size_bytes,
                )
                raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)
        image = self.image
        base = next_offset + len(applied.records)
        image.undo.start_recording()
        try:
            if atomic:
                # Taken back whole if at all: a new topic's partitions need no notes each.
                ImageLoader(image).apply_atomic(records, base)
            else:
                for i, rv in enumerate(records):
                    image.replay(rv.record, rv.version, base + i)
        finally:
            image.undo.stop_recording()
        applied.records += records
        applied.values += values
        return applied

    # -- periodic work -------------------------------------------------------------------

    def tick(
        self, now_ms: int, next_offset: int, *, max_fenced: int | None = None
    ) -> ControllerResult | None:
        """Fence brokers whose session lapsed (one at a time, each seeing the previous
        one's effect), move leaders back to preferred replicas when the leader rebalance
        is due (kwire.controller.rebalance), remove expired delegation tokens when their
        sweep is due (kwire.controller.tokens), and write the periodic NoOpRecord that keeps
        followers' and brokers' views of the log advancing. Each fenced broker, the
        rebalance, the sweep (when it removes anything) and the NoOp is a write of its own (``ControllerResult.writes``), as each
        is a separate write event in Kafka's QuorumController; the server appends each as
        its own batch. The caller ticks after every write it appends, so that the
        rebalance is scheduled after each write, as Kafka schedules it.

        ``max_fenced`` bounds the brokers fenced in one call (None: every stale one); the
        others stay due, so ``next_deadline_ms`` has passed and the caller ticks again.
        Kafka fences one broker per controller event and reschedules at once, so that
        other events (heartbeats) run between fencings: the server passes 1, because
        fencing a broker that holds many partitions takes long (~0.1 s for 3,000)."""
        self._observe(now_ms)
        if not self._active:
            self.rebalance.forget()
            return None
        applied = Applied()
        try:
            fenced = 0
            while (max_fenced is None or fenced < max_fenced) and (
                stale := self.tracker.find_one_stale_broker()
            ) is not None:
                fenced += 1
                # One write per broker (ReplicationControlManager.maybeFenceOneStaleBroker,
                # rescheduled at once while brokers are stale): its leader moves and ISR
                # shrinks, then its fencing, built on the previous broker's.
                log.info("Fencing broker %d because its session has timed out.", stale)
                records = fence_broker_records(
                    self.image,
                    stale,
                    self.metadata_version,
                    unclean_election=lambda topic: unclean_election_enabled(self, topic),
                    min_isr=min_isr_resolver(self),
                )
                self.tracker.fence(stale)
                self.apply(applied, records, next_offset, atomic=False)
                applied.end_write()
                self.rebalance.maybe_schedule(self.image, now_ms)
            if self.rebalance.is_due(now_ms):
                records, more = balance_partition_leaders(self)
                log.info(
                    "maybeBalancePartitionLeaders: generated %d records.%s",
                    len(records),
                    " Rescheduling immediately." if more else "",
                )
                self.rebalance.ran(more)
                self.apply(applied, records, next_offset, atomic=False)
                applied.end_write()
            if now_ms >= self._next_token_sweep_ms:
                # Each run schedules the next one interval later, then removes the tokens
                # expired by now: a write of its own, none when nothing expired.
                self._schedule_token_sweep(now_ms)
                removals = tokens.expired_token_removals(self, now_ms)
                if removals:
                    self.apply(applied, list(removals), next_offset, atomic=False)
                    applied.end_write()
            if self._noop_enabled and now_ms >= self._next_noop_ms:
                # Kafka schedules each NoOp one interval after the previous one ran,
                # whatever else was written in between; it is a write of its own.
                self._next_noop_ms = now_ms + self.config.metadata_max_idle_interval_ms
                self.apply(applied, [NoOpRecord()], next_offset, atomic=False)
                applied.end_write()
            # After every write (this tick's, or the requests' since the last tick).
            self.rebalance.maybe_schedule(self.image, now_ms)
        except BaseException:
            self.revert_to(next_offset - 1)
            raise
        if not applied.records:
            return None
        return applied.result(None, atomic=False)

    def next_deadline_ms(self) -> int:
        """When ``tick`` next has work to do (a huge value when never)."""
        if not self._active:
            return _LONG_MAX
        # A session is stale strictly after last contact + timeout.
        check = self.tracker.next_check_ms()
        deadline = check + 1 if check < _LONG_MAX else _LONG_MAX
        if self._noop_enabled:
            deadline = min(deadline, self._next_noop_ms)
        return min(deadline, self.rebalance.due_ms, self._next_token_sweep_ms)

    @property
    def _noop_enabled(self) -> bool:
        return (
            self.config.metadata_max_idle_interval_ms > 0
            and self.metadata_version.supports_noop_record
        )

    def _observe(self, now_ms: int) -> None:
        self.tracker.now_ms = max(self.tracker.now_ms, now_ms)


# The operation behind each request the controller implements: a function of (controller,
# request, context, next offset). Operations of one API family live in their own module;
# every other API is answered UNSUPPORTED_VERSION on every item.
Operation = Callable[[QuorumController, Any, RequestContext, int], ControllerResult]
REQUEST_HANDLERS: dict[type[Message], Operation] = {
    BrokerRegistrationRequest: broker_registration,
    BrokerHeartbeatRequest: broker_heartbeat,
    CreateTopicsRequest: create_topics_operation,
    AllocateProducerIdsRequest: allocate_producer_ids,
    ControllerRegistrationRequest: controller_registration,
    AlterPartitionRequest: alter_partition,
    ElectLeadersRequest: elect_leaders,
    AlterPartitionReassignmentsRequest: alter_partition_reassignments,
    ListPartitionReassignmentsRequest: list_partition_reassignments,
    AssignReplicasToDirsRequest: assign_replicas_to_dirs,
    CreateAclsRequest: acls.create_acls,
    DeleteAclsRequest: acls.delete_acls,
    DescribeAclsRequest: acls.describe_acls,
    AlterUserScramCredentialsRequest: scram.alter_user_scram_credentials,
    DescribeUserScramCredentialsRequest: scram.describe_user_scram_credentials,
    AlterClientQuotasRequest: quotas.alter_client_quotas,
    CreateDelegationTokenRequest: tokens.create_delegation_token,
    RenewDelegationTokenRequest: tokens.renew_delegation_token,
    ExpireDelegationTokenRequest: tokens.expire_delegation_token,
    DescribeDelegationTokenRequest: tokens.describe_delegation_token,
    DeleteTopicsRequest: delete_topics,
    CreatePartitionsRequest: create_partitions,
    UnregisterBrokerRequest: unregister_broker,
    ControlledShutdownRequest: controlled_shutdown,
    DescribeConfigsRequest: describe_configs,
    AlterConfigsRequest: alter_configs,
    IncrementalAlterConfigsRequest: incremental_alter_configs,
    UpdateFeaturesRequest: update_features,
}
HANDLED_REQUESTS: tuple[type[Message], ...] = tuple(REQUEST_HANDLERS)


def unsupported_response(request: Message) -> Message:
    """An UNSUPPORTED_VERSION answer for an API the core does not implement, on every item
    of the request (see ``error_response``)."""
    return error_response(
        request, ErrorCode.UNSUPPORTED_VERSION, "This controller does not implement this API yet."
    )


def error_response(request: Message, error: ErrorCode, message: str | None = None) -> Message:
    """The request's response carrying `error` on every item, as Kafka's getErrorResponse
    (``kwire.protocol.error_responses``). The core does not know the request's version, so
    the answer is built for the newest one; the server answers at the request's own version
    (``kwire.server.dispatch``), which matters for Fetch below v13, ElectLeaders v0 and
    CreateDelegationToken below v3."""
    api_key = type(request).API_KEY  # type: ignore[attr-defined]
    return build_error_response(request, APIS[api_key].highest_version, error, message)
