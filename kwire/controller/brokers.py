"""Taking brokers out of the cluster: UnregisterBroker (64), and the answer to the
ZooKeeper-era ControlledShutdown (7).

UnregisterBroker follows Kafka 3.9's ReplicationControlManager.unregisterBroker: the
broker leaves every ISR it is in (leaders move, ISRs shrink, as for fencing), then any
eligible-leader-replica set, then an UnregisterBrokerRecord with its current epoch ends
the registration; the records are one non-atomic write of at most MAX_RECORDS_PER_USER_OP
records. It has no metadata.version gate, and runs in pre-migration mode too.

| case                                   | answer (ControllerApis.handleUnregisterBroker)  |
|----------------------------------------|-------------------------------------------------|
| the broker is registered               | NONE                                            |
| no registration for the id             | BROKER_ID_NOT_REGISTERED (code only)            |
| more than MAX_RECORDS_PER_USER_OP      | POLICY_VIOLATION (code only), nothing written   |

ControlledShutdown is on the controller listener of Kafka 3.9 (its schema names it), but
ControllerApis has no handler for it: the "Unsupported ApiKey" ApiException it throws is
answered through the request's error response, UNKNOWN_SERVER_ERROR and no partitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import MAX_RECORDS_PER_USER_OP, excessively_large_operation
from kwire.controller.elections import unclean_election_enabled
from kwire.controller.elr import min_isr_resolver
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.replication import leader_and_isr_updates
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.controlled_shutdown import (
    ControlledShutdownRequest,
    ControlledShutdownResponse,
)
from kwire.protocol.messages.metadata_records.unregister_broker_record import (
    UnregisterBrokerRecord,
)
from kwire.protocol.messages.unregister_broker import (
    UnregisterBrokerRequest,
    UnregisterBrokerResponse,
)

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController


def unregister_broker(
    ctl: QuorumController,
    request: UnregisterBrokerRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """UnregisterBroker v0: the records that remove ``request.broker_id`` and an empty
    answer, or BROKER_ID_NOT_REGISTERED. Raises OperationFailed (POLICY_VIOLATION) when
    the broker is in so many ISRs that the records would pass MAX_RECORDS_PER_USER_OP."""
    image = ctl.image
    broker_id = request.broker_id
    registration = image.brokers.get(broker_id)
    if registration is None:
        # Kafka: BrokerIdNotRegisteredException("Broker ID n is not currently registered");
        # the response carries only the code.
        return ControllerResult(
            records=[],
            response=UnregisterBrokerResponse(error_code=ErrorCode.BROKER_ID_NOT_REGISTERED),
        )
    mv = ctl.metadata_version

    def unclean(topic: str) -> bool:
        return unclean_election_enabled(ctl, topic)

    records: list[Message] = leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_isr(broker_id),
        metadata_version=mv,
        unclean_election=unclean,
        broker_to_remove=broker_id,
        min_isr=min_isr_resolver(ctl),
    )
    records += leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_elr(broker_id),
        metadata_version=mv,
        unclean_election=unclean,
        broker_to_remove=broker_id,
        min_isr=min_isr_resolver(ctl),
    )
    records.append(UnregisterBrokerRecord(broker_id=broker_id, broker_epoch=registration.epoch))
    if len(records) > MAX_RECORDS_PER_USER_OP:
        raise excessively_large_operation()
    return ctl.apply(Applied(), records, next_offset, atomic=False).result(
        UnregisterBrokerResponse(error_code=ErrorCode.NONE), atomic=False
    )


def broker_shutdown_records(ctl: QuorumController, broker_id: int, clean: bool) -> list[Message]:
    """The records that clean up after the previous incarnation of ``broker_id`` when a
    new one registers (Kafka 4.3.1's ReplicationControlManager.handleBrokerShutdown), while
    eligible leader replicas are on: after a clean shutdown the broker leaves its ISRs as
    if fenced; after an unclean one it leaves every ISR and then every ELR, and may not
    lead. Nothing while ELR is off (Kafka 3.9 writes nothing below its ELR level)."""
    min_isr = min_isr_resolver(ctl)
    if min_isr is None:
        return []
    image = ctl.image

    def unclean(topic: str) -> bool:
        return unclean_election_enabled(ctl, topic)

    if clean:
        return leader_and_isr_updates(
            image,
            image.partitions_with_broker_in_isr(broker_id),
            metadata_version=ctl.metadata_version,
            unclean_election=unclean,
            broker_to_remove=broker_id,
            min_isr=min_isr,
        )
    records = leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_isr(broker_id),
        metadata_version=ctl.metadata_version,
        unclean_election=unclean,
        unclean_shutdown_broker=broker_id,
        min_isr=min_isr,
    )
    records += leader_and_isr_updates(
        image,
        image.partitions_with_broker_in_elr(broker_id),
        metadata_version=ctl.metadata_version,
        unclean_election=unclean,
        unclean_shutdown_broker=broker_id,
        min_isr=min_isr,
    )
    return records


def controlled_shutdown(
    ctl: QuorumController,
    request: ControlledShutdownRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """ControlledShutdown v0-v3: what Kafka 3.9's controller answers, UNKNOWN_SERVER_ERROR
    with no remaining partitions (a KRaft broker shuts down through heartbeats)."""
    return ControllerResult(
        records=[], response=ControlledShutdownResponse(error_code=ErrorCode.UNKNOWN_SERVER_ERROR)
    )
