"""The broker-facing RPCs that bring nodes into the cluster and keep them there:
BrokerRegistration (62), BrokerHeartbeat (63), ControllerRegistration (70) and
AllocateProducerIds (67), plus CreateTopics' operation (19) as the controller runs it
(Kafka 3.9's ClusterControlManager, ProducerIdControlManager and ReplicationControlManager
behind ControllerApis). Each is an operation of ``REQUEST_HANDLERS``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kwire.controller.api_error import ApiError
from kwire.controller.authorizer import AuthHelper
from kwire.controller.brokers import broker_shutdown_records
from kwire.controller.cluster import (
    check_broker_epoch,
    process_heartbeat,
    register_broker,
    register_controller,
)
from kwire.controller.config_definitions import inherited_topic_default
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.elr import min_isr_resolver
from kwire.controller.heartbeats import BrokerControlState
from kwire.controller.image import ConfigResourceType
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.records import KRAFT_VERSION_FEATURE
from kwire.controller.replication import ReplicationSettings, create_topics
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.allocate_producer_ids import (
    AllocateProducerIdsRequest,
    AllocateProducerIdsResponse,
)
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.controller_registration import (
    ControllerRegistrationRequest,
    ControllerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.producer_ids_record import ProducerIdsRecord

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

# ProducerIdControlManager hands out blocks of this many producer ids.
PRODUCER_ID_BLOCK_SIZE = 1000
_LONG_MAX = 2**63 - 1

log = logging.getLogger(__name__)


def broker_registration(
    ctl: QuorumController,
    request: BrokerRegistrationRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    finalized = dict(ctl.image.finalized_features)
    finalized[KRAFT_VERSION_FEATURE] = ctl.kraft.kraft_version()
    try:
        records, epoch = register_broker(
            ctl.image,
            ctl.tracker,
            request,
            cluster_id=ctl.cluster_id,
            new_broker_epoch=next_offset,
            finalized_features=finalized,
            metadata_version=ctl.metadata_version,
            zk_migration_enabled=ctl.config.zk_migration_enabled,
            clean_shutdown_detection=context.api_version >= 3,
            shutdown_records=lambda broker, clean: broker_shutdown_records(ctl, broker, clean),
        )
    except ApiError as e:
        # BrokerRegistrationResponse has no message field: the reason is only in the log,
        # as QuorumController.handleEventException logs it (INFO, "event failed with ...").
        log.info(
            "registerBroker of broker %d: event failed with %s. Exception message: %s",
            request.broker_id,
            e.code.name,
            e.message,
        )
        return ControllerResult(records=[], response=BrokerRegistrationResponse(error_code=e.code))
    # Kafka 4.3.1 writes a registration that cleans up after an unclean shutdown as a
    # non-atomic batch, the RegisterBrokerRecord last; 3.9 (no clean-up records) atomically.
    atomic = len(records) == 1
    return ctl.apply(Applied(), records, next_offset, atomic=atomic).result(
        BrokerRegistrationResponse(error_code=ErrorCode.NONE, broker_epoch=epoch), atomic=atomic
    )


def broker_heartbeat(
    ctl: QuorumController,
    request: BrokerHeartbeatRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    try:
        outcome = process_heartbeat(
            ctl.image,
            ctl.tracker,
            request,
            ctl.metadata_version,
            unclean_election=lambda topic: unclean_election_enabled(ctl, topic),
            min_isr=min_isr_resolver(ctl),
        )
    except ApiError as e:
        return ControllerResult(records=[], response=BrokerHeartbeatResponse(error_code=e.code))
    response = BrokerHeartbeatResponse(
        error_code=ErrorCode.NONE,
        is_caught_up=outcome.is_caught_up,
        is_fenced=outcome.next_state.fenced,
        should_shut_down=outcome.next_state.should_shut_down,
    )
    if not outcome.records and outcome.next_state is not BrokerControlState.CONTROLLED_SHUTDOWN:
        # The steady state (an unfenced broker staying so): nothing to apply.
        return ControllerResult(records=[], response=response, atomic=False)
    applied = ctl.apply(Applied(), outcome.records, next_offset, atomic=False)
    if outcome.next_state is BrokerControlState.CONTROLLED_SHUTDOWN:
        # The broker may go once every active broker has caught up with the batch
        # that started its controlled shutdown.
        ctl.tracker.update_controlled_shutdown_offset(
            request.broker_id, next_offset + len(applied.records) - 1
        )
    return applied.result(response, atomic=False)


def create_topics_operation(
    ctl: QuorumController, request: CreateTopicsRequest, context: RequestContext, next_offset: int
) -> ControllerResult:
    outcome = create_topics(
        ctl.image,
        ctl.tracker,
        request,
        settings=ReplicationSettings(
            default_num_partitions=ctl.config.num_partitions,
            default_replication_factor=ctl.config.default_replication_factor,
            static_topic_defaults=ctl.config.static_topic_configs,
            inherited=inherited_topic_default(
                ctl.image.configs.get((ConfigResourceType.BROKER, str(ctl.node_id)), {}),
                ctl.image.configs.get((ConfigResourceType.BROKER, ""), {}),
                ctl.config.static_broker_configs,
            ),
        ),
        rng=ctl.rng,
        metadata_version=ctl.metadata_version,
        auth=AuthHelper.for_request(ctl, context),
    )
    return ctl.apply(Applied(), outcome.records, next_offset).result(outcome.response)


def allocate_producer_ids(
    ctl: QuorumController,
    request: AllocateProducerIdsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    try:
        check_broker_epoch(ctl.image, request.broker_id, request.broker_epoch)
        first = ctl.image.next_producer_id
        if first > _LONG_MAX - PRODUCER_ID_BLOCK_SIZE:
            raise ApiError(
                ErrorCode.UNKNOWN_SERVER_ERROR,
                "Exhausted all producerIds as the next block's end producerId has exceeded "
                "the int64 type limit",
            )
    except ApiError as e:
        return ControllerResult(records=[], response=AllocateProducerIdsResponse(error_code=e.code))
    record = ProducerIdsRecord(
        broker_id=request.broker_id,
        broker_epoch=request.broker_epoch,
        next_producer_id=first + PRODUCER_ID_BLOCK_SIZE,
    )
    return ctl.apply(Applied(), [record], next_offset).result(
        AllocateProducerIdsResponse(
            error_code=ErrorCode.NONE,
            producer_id_start=first,
            producer_id_len=PRODUCER_ID_BLOCK_SIZE,
        ),
        atomic=False,
    )


def controller_registration(
    ctl: QuorumController,
    request: ControllerRegistrationRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    try:
        records = register_controller(request, ctl.metadata_version)
    except ApiError as e:
        return ControllerResult(
            records=[],
            response=ControllerRegistrationResponse(error_code=e.code, error_message=e.message),
        )
    return ctl.apply(Applied(), records, next_offset).result(ControllerRegistrationResponse())
