"""Brokers leaving: UnregisterBroker, the ControlledShutdown answer, and fencing on session
timeout, as Kafka 3.9's controller does them (ReplicationControlManager.unregisterBroker /
maybeFenceOneStaleBroker, ControllerApis.handleUnregisterBroker / handle decide every
expected value)."""

from __future__ import annotations

from pathlib import Path

import pytest
from multi_broker import forwarded, genuine_log, needs_capture, replayed_until
from node_harness import leader
from test_controller_cluster import Cluster
from test_controller_genuine import fields_of

from kwire.controller import RequestContext
from kwire.controller.operation import Applied, ControllerResult
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.controlled_shutdown import (
    ControlledShutdownRequest,
    ControlledShutdownResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.unregister_broker_record import (
    UnregisterBrokerRecord,
)
from kwire.protocol.messages.unregister_broker import (
    UnregisterBrokerRequest,
    UnregisterBrokerResponse,
)
from kwire.records import decode_batches
from kwire.server.node import ControllerNode

__all__ = ["leader"]


def send(cluster: Cluster, request: Message, version: int = 0) -> ControllerResult:
    result = cluster.controller.handle(
        request, RequestContext(api_version=version), cluster.next_offset, cluster.now_ms
    )
    cluster.next_offset += len(result.records)
    return result


def with_topic(partitions: int, replication_factor: int, brokers: int = 3) -> Cluster:
    cluster = Cluster.started().unfenced(*range(1, brokers + 1))
    topic = CreateTopicsRequest.CreatableTopic(
        name="t", num_partitions=partitions, replication_factor=replication_factor
    )
    send(cluster, CreateTopicsRequest(topics=[topic]), 7)
    return cluster


def partitions(cluster: Cluster) -> dict[int, tuple[tuple[int, ...], int]]:
    topic = cluster.controller.topics_by_name["t"]
    return {p: (r.isr, r.leader) for p, r in topic.partitions.items()}


# -- UnregisterBroker ------------------------------------------------------------------------


def test_unregistering_an_unknown_broker_answers_broker_id_not_registered() -> None:
    cluster = Cluster.started().unfenced(1)
    result = send(cluster, UnregisterBrokerRequest(broker_id=7))
    # BrokerIdNotRegisteredException; the answer carries the code and the default
    # (empty) message.
    assert result.response == UnregisterBrokerResponse(
        error_code=ErrorCode.BROKER_ID_NOT_REGISTERED, error_message=""
    )
    assert result.records == []


def test_unregistering_a_leader_moves_its_leaderships_and_isr_places_then_removes_it() -> None:
    cluster = with_topic(partitions=3, replication_factor=3)
    epoch = cluster.controller.brokers[2].epoch
    led_by_2 = [p for p, (_, leader) in partitions(cluster).items() if leader == 2]
    assert led_by_2
    result = send(cluster, UnregisterBrokerRequest(broker_id=2))
    assert result.response == UnregisterBrokerResponse(error_code=ErrorCode.NONE)
    # ControllerResult.of: one non-atomic write, ISR changes first, then the record.
    assert not result.atomic
    records = [rv.record for rv in result.records]
    assert [type(r) for r in records] == [PartitionChangeRecord] * 3 + [UnregisterBrokerRecord]
    assert records[-1] == UnregisterBrokerRecord(broker_id=2, broker_epoch=epoch)
    assert 2 not in cluster.controller.brokers
    assert 2 not in cluster.controller.tracker.sessions
    for isr, leader_id in partitions(cluster).values():
        assert 2 not in isr and leader_id in (1, 3)


def test_unregistering_a_fenced_broker_in_no_isr_writes_only_its_record() -> None:
    cluster = with_topic(partitions=1, replication_factor=1, brokers=1)
    cluster.register(5)  # registered, never unfenced
    epoch = cluster.controller.brokers[5].epoch
    result = send(cluster, UnregisterBrokerRequest(broker_id=5))
    assert [rv.record for rv in result.records] == [
        UnregisterBrokerRecord(broker_id=5, broker_epoch=epoch)
    ]


@needs_capture
def test_genuine_unregister_broker_gets_the_genuine_answer_and_record() -> None:
    [exchange] = forwarded(64)
    [removal] = [g for g in genuine_log() if isinstance(g.record, UnregisterBrokerRecord)]
    controller = replayed_until(removal.offset)
    result = controller.handle(
        exchange.request,
        RequestContext(api_version=exchange.api_version, envelope=True),
        removal.offset,
        exchange.time_ms,
    )
    assert result.response == exchange.response
    assert [(rv.record, rv.version) for rv in result.records] == [(removal.record, removal.version)]
    assert 4 not in controller.brokers


# -- ControlledShutdown ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_controlled_shutdown_is_answered_unknown_server_error_as_kafkas_controller_does(
    version: int,
) -> None:
    # ControllerApis has no handler for it: "Unsupported ApiKey" -> UNKNOWN_SERVER_ERROR.
    cluster = Cluster.started().unfenced(1)
    request = ControlledShutdownRequest(
        broker_id=1, broker_epoch=cluster.controller.brokers[1].epoch
    )
    result = send(cluster, request, version)
    assert result.response == ControlledShutdownResponse(
        error_code=ErrorCode.UNKNOWN_SERVER_ERROR, remaining_partitions=[]
    )
    assert result.records == []
    assert cluster.controller.brokers[1].active


# -- fencing on session timeout --------------------------------------------------------------


def test_each_stale_broker_is_fenced_in_a_write_of_its_own_that_sees_the_previous_one() -> None:
    cluster = with_topic(partitions=1, replication_factor=3)
    controller = cluster.controller
    ((isr, _),) = partitions(cluster).values()
    assert sorted(isr) == [1, 2, 3]
    # Broker 1 keeps its session; 2 and 3 go silent (2 first).
    cluster.now_ms += 1000
    controller.tracker.now_ms = cluster.now_ms
    controller.tracker.touch(3, False, cluster.next_offset - 1)
    cluster.now_ms += 4000
    controller.tracker.now_ms = cluster.now_ms
    controller.tracker.touch(1, False, cluster.next_offset - 1)
    result = controller.tick(cluster.now_ms + 5500, cluster.next_offset)
    assert result is not None
    records = [rv.record for rv in result.records]
    fenced = [r.broker_id for r in records if isinstance(r, BrokerRegistrationChangeRecord)]
    assert fenced == [2, 3]
    # Broker 2's write, then broker 3's (whose ISR change builds on 2's), then the NoOp.
    assert result.writes == [2, 2, 1]
    first, second = records[0], records[2]
    assert isinstance(first, PartitionChangeRecord) and isinstance(second, PartitionChangeRecord)
    assert sorted(first.isr or []) == [1, 3]
    assert second.isr == [1]
    assert isinstance(records[-1], NoOpRecord)


def test_with_max_fenced_one_a_tick_fences_the_longest_silent_broker_and_stays_due() -> None:
    """As Kafka's maybeFenceOneStaleBroker, one broker per event, rescheduled at once:
    the server ticks with max_fenced=1 so that heartbeats are answered in between."""
    cluster = with_topic(partitions=1, replication_factor=3)
    controller = cluster.controller
    cluster.now_ms += 1000
    controller.tracker.now_ms = cluster.now_ms
    controller.tracker.touch(3, False, cluster.next_offset - 1)
    cluster.now_ms += 4000
    controller.tracker.now_ms = cluster.now_ms
    controller.tracker.touch(1, False, cluster.next_offset - 1)
    now = cluster.now_ms + 5500  # 2 and 3 are stale, 2 the longer
    first = controller.tick(now, cluster.next_offset, max_fenced=1)
    assert first is not None
    fenced = [
        r.broker_id
        for r in (rv.record for rv in first.records)
        if isinstance(r, BrokerRegistrationChangeRecord)
    ]
    assert fenced == [2]
    assert controller.next_deadline_ms() <= now  # broker 3 is still due
    second = controller.tick(now, cluster.next_offset + len(first.records), max_fenced=1)
    assert second is not None
    fenced = [
        r.broker_id
        for r in (rv.record for rv in second.records)
        if isinstance(r, BrokerRegistrationChangeRecord)
    ]
    assert fenced == [3]
    assert [sorted(isr) for isr, _ in partitions(cluster).values()] == [[1]]
    assert controller.tick(now, cluster.next_offset + 99, max_fenced=1) is None


@needs_capture
def test_genuine_fencing_of_broker_3_writes_the_genuine_records_in_one_write() -> None:
    log = genuine_log()
    fence = next(
        g
        for g in log
        if isinstance(g.record, BrokerRegistrationChangeRecord) and g.record.fenced == 1
    )
    batch = [g for g in log if g.timestamp_ms == fence.timestamp_ms]  # one genuine batch
    start = batch[0].offset
    controller = replayed_until(start)
    assert controller.activate(0, start) is None
    # Brokers 2 and 4 heartbeat on; broker 3 was killed and its session runs out.
    controller.tracker.now_ms = 5000
    for broker_id in (2, 4):
        controller.tracker.touch(broker_id, False, start - 1)
    result = controller.tick(9001, start)
    assert result is not None
    assert result.writes == [len(batch), 1]  # the fencing, then a NoOp of its own
    ours = [(rv.record, rv.version) for rv in result.records[: len(batch)]]
    assert [fields_of(r) for r, _ in ours] == [fields_of(g.record) for g in batch]
    assert [v for _, v in ours] == [g.version for g in batch]


async def test_the_node_appends_each_write_of_a_result_as_its_own_batch(
    leader: ControllerNode,
) -> None:
    node = leader
    start = node.log.end_offset
    controller = node.controller
    applied = Applied()
    controller.apply(applied, [NoOpRecord()], start, atomic=False)
    applied.end_write()
    controller.apply(applied, [NoOpRecord(), NoOpRecord()], start, atomic=False)
    applied.end_write()
    end = node.append_result(applied.result(None, atomic=False), 0)
    assert end == start + 3
    segment = sorted(Path(node.settings.metadata_dir).glob("__cluster_metadata-0/*.log"))[-1]
    batches = [b for b in decode_batches(segment.read_bytes()) if not b.is_control]
    assert [len(b.records) for b in batches][-2:] == [1, 2]
