"""A simulated client: one broker that registers and heartbeats, and an admin that creates
topics, both through whichever node answers as the active controller.

Requests travel the simulated network like the nodes' own. One request is in flight at a
time; a NOT_CONTROLLER answer or a failure (refused, lost, timed out: the outcome is then
unknown) moves the client to the next node, as a Kafka client re-resolves the controller.
`acked` lists the topics whose CreateTopics was answered without error: those writes were
acknowledged and must survive everything.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from kwire.controller.transactions import TransactionGate, holds_markers
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.end_transaction_record import (
    EndTransactionRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import unframe_metadata_record
from kwire.sim.cluster import CLIENT_BASE_ID, CLUSTER_ID, Cluster
from kwire.sim.network import Failure
from kwire.sim.node import SimNode

BROKER_ID = 100
HEARTBEAT_INTERVAL_MS = 1000


class SimClient:
    """See the module docstring. Call `start`; `stop` ends the traffic (what is in flight
    still completes)."""

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        *,
        client_id: int = CLIENT_BASE_ID,
        interval_ms: tuple[int, int] = (40, 200),
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.client_id = client_id
        self.interval_ms = interval_ms
        self.node_ids = sorted(cluster.nodes)
        self.target = rng.choice(self.node_ids)
        self.broker_epoch = -1
        self.next_heartbeat_ms = 0
        self.next_topic = 0
        self.in_flight: tuple[str, Any] | None = None
        self.acked: list[str] = []
        self.running = False
        self.answers: dict[str, int] = {}
        cluster.add_client(client_id, self._on_answer)

    def start(self) -> None:
        self.running = True
        self._schedule()

    def stop(self) -> None:
        self.running = False

    def _schedule(self) -> None:
        if self.running:
            low, high = self.interval_ms
            self.cluster.events.after(self.rng.randint(low, high), self._send_next, "client")

    def _send_next(self) -> None:
        if not self.running:
            return
        if self.in_flight is not None:
            self._schedule()
            return
        now = self.cluster.now_ms
        request: Any
        if self.broker_epoch < 0:
            kind, request = "register", _registration()
        elif now >= self.next_heartbeat_ms:
            kind = "heartbeat"
            request = BrokerHeartbeatRequest(
                broker_id=BROKER_ID,
                broker_epoch=self.broker_epoch,
                current_metadata_offset=2**40,
                want_fence=False,
            )
        else:
            kind = f"t{self.next_topic}"
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=kind, num_partitions=1, replication_factor=1
                    )
                ],
                timeout_ms=30_000,
            )
        self.in_flight = (kind, request)
        self.cluster.network.send(self.client_id, self.target, request)
        self._schedule()

    def _on_answer(self, answer: Any) -> None:
        assert self.in_flight is not None
        kind, _ = self.in_flight
        self.in_flight = None
        error = _error_of(answer)
        self.answers[error] = self.answers.get(error, 0) + 1
        if error in ("NOT_CONTROLLER", "failure"):
            self.target = self.node_ids[(self.node_ids.index(self.target) + 1) % len(self.node_ids)]
            return
        match answer:
            case BrokerRegistrationResponse() if answer.error_code == ErrorCode.NONE:
                self.broker_epoch = answer.broker_epoch
            case BrokerHeartbeatResponse():
                self.next_heartbeat_ms = self.cluster.now_ms + HEARTBEAT_INTERVAL_MS
                if answer.error_code == ErrorCode.STALE_BROKER_EPOCH:
                    self.broker_epoch = -1
            case CreateTopicsResponse():
                self.next_topic += 1
                if answer.topics and answer.topics[0].error_code == ErrorCode.NONE:
                    self.acked.append(kind)


# The records that decide which topics the image holds: TopicRecords and the transaction
# markers around them (the other records do not move a TopicRecord in or out of the image).
_TOPIC_AND_MARKERS = frozenset(
    {
        TopicRecord.API_KEY,
        BeginTransactionRecord.API_KEY,
        EndTransactionRecord.API_KEY,
        AbortTransactionRecord.API_KEY,
    }
)


def committed_topics(node: SimNode) -> set[str]:
    """The names of the topics `node`'s committed log creates, as the image published from
    it holds them (KIP-868): a metadata transaction's TopicRecords count once its
    EndTransactionRecord is committed, an aborted or still open one's never, as
    `TransactionGate` (kwire.controller.transactions) publishes them."""
    records: list[Message] = []
    end = node.committed_end
    for batch in node.log.batches_between(0, end):
        decoded = batch.decode()
        if decoded.is_control:
            continue
        for record in decoded.records:
            if batch.base_offset + record.offset_delta >= end:
                break
            api_key, version, body = unframe_metadata_record(record.value)
            if api_key in _TOPIC_AND_MARKERS:
                records.append(METADATA_RECORDS[api_key].decode(body, version))
    gate: TransactionGate[Message] = TransactionGate(keep=max(1, len(records)))
    published = gate.admit(
        len(records), records.__getitem__, records.__getitem__, markers=holds_markers(records)
    )
    return {record.name for record in published if isinstance(record, TopicRecord)}


def _error_of(answer: Any) -> str:
    if isinstance(answer, Failure):
        return "failure"
    code = getattr(answer, "error_code", None)
    if code is None and isinstance(answer, CreateTopicsResponse) and answer.topics:
        code = answer.topics[0].error_code
    return ErrorCode(code).name if code is not None else "NONE"


def _registration() -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=BROKER_ID,
        cluster_id=CLUSTER_ID,
        incarnation_id=uuid.UUID(int=BROKER_ID),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host="127.0.0.1", port=9092, security_protocol=0
            )
        ],
        features=[  # a Kafka 3.9 broker's
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            ),
            BrokerRegistrationRequest.Feature(
                name="kraft.version", min_supported_version=0, max_supported_version=1
            ),
        ],
        rack=None,
        log_dirs=[uuid.UUID(int=10_000 + BROKER_ID)],
    )
