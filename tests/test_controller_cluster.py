"""Broker and controller registration, heartbeats, fencing and controlled shutdown."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import pytest

from kwire.controller import ControllerConfig, ControllerResult, QuorumController, RequestContext
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.allocate_producer_ids import AllocateProducerIdsRequest
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
START_MS = 1_000_000


@dataclass
class Cluster:
    """A controller plus the log offset and clock a server would keep for it."""

    controller: QuorumController
    next_offset: int = 1
    now_ms: int = START_MS
    log: list[str] = field(default_factory=list)

    @classmethod
    def started(cls, **config: object) -> Cluster:
        controller = QuorumController(
            node_id=1,
            cluster_id=CLUSTER_ID,
            config=ControllerConfig(**config),  # type: ignore[arg-type]
            rng=random.Random(42),
        )
        cluster = cls(controller)
        bootstrap = controller.activate(cluster.now_ms, cluster.next_offset)
        assert bootstrap is not None
        cluster._append(bootstrap)
        return cluster

    def _append(self, result: ControllerResult | None) -> None:
        if result is not None:
            self.next_offset += len(result.records)
            self.log += [type(rv.record).__name__ for rv in result.records]

    def send(self, request: Message) -> tuple[Message, list[str]]:
        result = self.controller.handle(
            request, RequestContext(api_version=0), self.next_offset, self.now_ms
        )
        self._append(result)
        assert result.response is not None
        return result.response, [type(rv.record).__name__ for rv in result.records]

    def advance(self, ms: int) -> list[str]:
        self.now_ms += ms
        result = self.controller.tick(self.now_ms, self.next_offset)
        self._append(result)
        return [] if result is None else [type(rv.record).__name__ for rv in result.records]

    def register(self, broker_id: int, **overrides: object) -> Message:
        response, _ = self.send(registration(broker_id, **overrides))
        return response

    def heartbeat(self, broker_id: int, **fields: object) -> Message:
        epoch = self.controller.brokers[broker_id].epoch
        request = BrokerHeartbeatRequest(
            broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=self.next_offset - 1
        )
        for name, value in fields.items():
            setattr(request, name, value)
        response, _ = self.send(request)
        return response

    def unfenced(self, *broker_ids: int) -> Cluster:
        for broker_id in broker_ids:
            self.register(broker_id)
            self.heartbeat(broker_id, want_fence=False)
        return self


def registration(broker_id: int, **overrides: object) -> BrokerRegistrationRequest:
    request = BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id=CLUSTER_ID,
        incarnation_id=uuid.UUID(int=1000 + broker_id),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host="127.0.0.1", port=9092 + broker_id, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        log_dirs=[uuid.UUID(int=10_000 + broker_id)],
    )
    for name, value in overrides.items():
        setattr(request, name, value)
    return request


# -- registration ----------------------------------------------------------------------------


def test_registration_epoch_is_the_offset_of_its_record() -> None:
    cluster = Cluster.started()
    offset = cluster.next_offset
    response = cluster.register(2)
    assert response.error_code == ErrorCode.NONE
    assert response.broker_epoch == offset
    assert cluster.controller.brokers[2].epoch == offset
    assert cluster.controller.brokers[2].fenced


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"cluster_id": "someOtherClusterId0000"}, ErrorCode.INCONSISTENT_CLUSTER_ID),
        (
            {
                "features": [
                    BrokerRegistrationRequest.Feature(
                        name="metadata.version", min_supported_version=1, max_supported_version=20
                    )
                ]
            },
            ErrorCode.UNSUPPORTED_VERSION,
        ),
        ({"features": []}, ErrorCode.UNSUPPORTED_VERSION),  # assumed to support only level 1
        ({"log_dirs": []}, ErrorCode.INVALID_REGISTRATION),
        ({"log_dirs": [uuid.UUID(int=5)]}, ErrorCode.INVALID_REGISTRATION),
        ({"log_dirs": [uuid.UUID(int=500), uuid.UUID(int=500)]}, ErrorCode.INVALID_REGISTRATION),
        ({"is_migrating_zk_broker": True}, ErrorCode.BROKER_ID_NOT_REGISTERED),
    ],
)
def test_invalid_registration_is_rejected_without_records(
    overrides: dict[str, object], error: ErrorCode
) -> None:
    cluster = Cluster.started()
    response, records = cluster.send(registration(2, **overrides))
    assert response.error_code == error
    assert records == []
    assert 2 not in cluster.controller.brokers


def test_register_with_wrong_cluster_id_is_rejected() -> None:
    cluster = Cluster.started()
    response = cluster.register(2, cluster_id="wrong")
    assert response.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID


def test_directory_owned_by_another_broker_is_rejected() -> None:
    cluster = Cluster.started()
    cluster.register(2)
    response = cluster.register(3, log_dirs=[uuid.UUID(int=10_002)])
    assert response.error_code == ErrorCode.INVALID_REGISTRATION


def test_same_incarnation_reregistering_keeps_epoch_and_state() -> None:
    cluster = Cluster.started().unfenced(2)
    epoch = cluster.controller.brokers[2].epoch
    response = cluster.register(2)
    assert response.error_code == ErrorCode.NONE
    assert response.broker_epoch == epoch
    assert not cluster.controller.brokers[2].fenced


def test_new_incarnation_while_session_alive_is_a_duplicate() -> None:
    cluster = Cluster.started().unfenced(2)
    response = cluster.register(2, incarnation_id=uuid.uuid4())
    assert response.error_code == ErrorCode.DUPLICATE_BROKER_REGISTRATION


def test_new_incarnation_after_session_expired_gets_a_new_epoch() -> None:
    cluster = Cluster.started().unfenced(2)
    old_epoch = cluster.controller.brokers[2].epoch
    cluster.advance(9001)
    offset = cluster.next_offset
    response = cluster.register(2, incarnation_id=uuid.uuid4())
    assert response.error_code == ErrorCode.NONE
    assert response.broker_epoch == offset > old_epoch


def test_controller_registration_writes_register_controller_record() -> None:
    cluster = Cluster.started()
    request = ControllerRegistrationRequest(
        controller_id=1,
        incarnation_id=uuid.uuid4(),
        listeners=[
            ControllerRegistrationRequest.Listener(
                name="CONTROLLER", host="h", port=9093, security_protocol=0
            )
        ],
    )
    response, records = cluster.send(request)
    assert response.error_code == ErrorCode.NONE
    assert records == ["RegisterControllerRecord"]
    assert cluster.controller.controllers[1].listeners[0].port == 9093


# -- heartbeats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [
        ({"broker_id": 9, "broker_epoch": 1}, ErrorCode.STALE_BROKER_EPOCH),  # never registered
        ({"broker_id": 2, "broker_epoch": 12345}, ErrorCode.STALE_BROKER_EPOCH),
    ],
)
def test_heartbeat_with_unknown_broker_or_stale_epoch_is_rejected(
    request_fields: dict[str, int], error: ErrorCode
) -> None:
    cluster = Cluster.started()
    cluster.register(2)
    response, records = cluster.send(BrokerHeartbeatRequest(**request_fields))
    assert response.error_code == error
    assert response.is_fenced
    assert records == []


@pytest.mark.parametrize(
    ("offset_delta", "want_fence", "fenced", "caught_up"),
    [
        (-1, False, True, False),  # behind its own registration: stays fenced
        (0, True, True, True),  # caught up but asks to stay fenced
        (0, False, False, True),  # caught up: unfenced
    ],
)
def test_broker_is_unfenced_only_when_caught_up_and_not_asking_for_fence(
    offset_delta: int, want_fence: bool, fenced: bool, caught_up: bool
) -> None:
    cluster = Cluster.started()
    cluster.register(2)
    register_offset = cluster.controller.brokers[2].epoch
    response = cluster.heartbeat(
        2, want_fence=want_fence, current_metadata_offset=register_offset + offset_delta
    )
    assert (response.is_fenced, response.is_caught_up) == (fenced, caught_up)
    assert cluster.controller.brokers[2].fenced == fenced
    if not fenced:
        assert cluster.log[-1] == "BrokerRegistrationChangeRecord"


def test_broker_is_fenced_after_session_timeout() -> None:
    cluster = Cluster.started(broker_session_timeout_ms=9000).unfenced(2)
    assert cluster.controller.next_deadline_ms() <= cluster.now_ms + 9001
    assert "BrokerRegistrationChangeRecord" not in cluster.advance(9000)
    assert not cluster.controller.brokers[2].fenced
    records = cluster.advance(1)
    assert "BrokerRegistrationChangeRecord" in records
    assert cluster.controller.brokers[2].fenced


def test_heartbeats_keep_the_session_alive() -> None:
    cluster = Cluster.started().unfenced(2)
    for _ in range(10):
        cluster.advance(2000)
        cluster.heartbeat(2)
    assert not cluster.controller.brokers[2].fenced


def test_fencing_moves_leadership_to_another_isr_member() -> None:
    cluster = Cluster.started().unfenced(2, 3)
    response, _ = cluster.send(
        CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(name="t", num_partitions=4, replication_factor=2)
            ]
        )
    )
    assert response.topics[0].error_code == ErrorCode.NONE
    cluster.advance(5000)
    cluster.heartbeat(3)  # broker 2 goes silent
    cluster.advance(4001)
    topic = cluster.controller.topics_by_name["t"]
    assert cluster.controller.brokers[2].fenced
    for partition in topic.partitions.values():
        assert partition.leader == 3
        assert partition.isr == (3,)


def test_unfenced_broker_takes_over_leaderless_partitions() -> None:
    cluster = Cluster.started().unfenced(2)
    cluster.send(
        CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(name="t", num_partitions=2, replication_factor=1)
            ]
        )
    )
    cluster.advance(9001)  # fenced: partitions lose their leader, ISR keeps the last member
    assert all(p.leader == -1 for p in cluster.controller.topics_by_name["t"].partitions.values())
    cluster.heartbeat(2, want_fence=False)
    partitions = cluster.controller.topics_by_name["t"].partitions.values()
    assert all(p.leader == 2 and p.leader_epoch == 2 for p in partitions)


def test_controlled_shutdown_moves_leaders_then_lets_broker_go() -> None:
    cluster = Cluster.started().unfenced(2)
    cluster.send(
        CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(name="t", num_partitions=3, replication_factor=1)
            ]
        )
    )
    first = cluster.heartbeat(2, want_shut_down=True)
    assert (first.is_fenced, first.should_shut_down) == (False, False)
    assert cluster.controller.brokers[2].in_controlled_shutdown
    assert cluster.log[-4:] == ["BrokerRegistrationChangeRecord"] + ["PartitionChangeRecord"] * 3
    second = cluster.heartbeat(2, want_shut_down=True)
    assert (second.is_fenced, second.should_shut_down) == (True, True)
    assert cluster.controller.brokers[2].fenced


def test_controlled_shutdown_waits_for_active_brokers_to_catch_up() -> None:
    cluster = Cluster.started().unfenced(2, 3)
    cluster.send(
        CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(name="t", num_partitions=2, replication_factor=2)
            ]
        )
    )
    cluster.heartbeat(3, current_metadata_offset=cluster.next_offset - 1)
    cluster.heartbeat(2, want_shut_down=True)
    shutdown_offset = cluster.next_offset - 1
    assert not cluster.controller.image.has_leaderships(2)
    # Broker 3 has not yet seen the shutdown batch: broker 2 must wait.
    waiting = cluster.heartbeat(2, want_shut_down=True)
    assert not waiting.should_shut_down
    cluster.heartbeat(3, current_metadata_offset=shutdown_offset)
    done = cluster.heartbeat(2, want_shut_down=True)
    assert done.should_shut_down


def test_broker_without_leaderships_shuts_down_at_once() -> None:
    cluster = Cluster.started().unfenced(2)
    response = cluster.heartbeat(2, want_shut_down=True)
    assert (response.is_fenced, response.should_shut_down) == (True, True)


# -- producer ids ----------------------------------------------------------------------------


def test_producer_ids_are_allocated_in_blocks_of_1000() -> None:
    cluster = Cluster.started().unfenced(2)
    epoch = cluster.controller.brokers[2].epoch
    starts = []
    for _ in range(3):
        response, records = cluster.send(
            AllocateProducerIdsRequest(broker_id=2, broker_epoch=epoch)
        )
        assert records == ["ProducerIdsRecord"]
        assert response.producer_id_len == 1000
        starts.append(response.producer_id_start)
    assert starts == [0, 1000, 2000]


def test_producer_ids_need_the_current_broker_epoch() -> None:
    cluster = Cluster.started().unfenced(2)
    response, records = cluster.send(AllocateProducerIdsRequest(broker_id=2, broker_epoch=1))
    assert response.error_code == ErrorCode.STALE_BROKER_EPOCH
    assert records == []
