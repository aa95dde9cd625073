"""The status page's JSON (`/status.json`): what it says of a node, how far it is bounded,
and the ring of committed metadata records behind its event list."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from node_harness import leader
from test_server_write_path import CONTEXT, TIMEOUT_S, one_topic, register_unfenced, running

from kwire.controller.image import MetadataImage
from kwire.controller.records import RecordAndVersion
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.end_transaction_record import EndTransactionRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.server.config import ControllerServerConfig
from kwire.server.dispatch import RequestHandler
from kwire.server.http_edge import HttpRequest
from kwire.server.node import ControllerNode
from kwire.server.operator_pages import operator_pages
from kwire.server.status_events import MetadataEvents, describe_record
from kwire.server.status_html import STATUS_HTML
from kwire.server.status_page import (
    MAX_OFFLINE,
    MAX_TOPIC_LIMIT,
    PARTITION_BUDGET,
    StatusQuery,
    offline_section,
    status_document,
    status_routes,
    topics_section,
)

__all__ = ["leader", "running"]


def change(broker_id: int, fenced: int) -> RecordAndVersion:
    return RecordAndVersion(BrokerRegistrationChangeRecord(broker_id=broker_id, fenced=fenced), 0)


def texts(events: MetadataEvents) -> list[tuple[int, str]]:
    return [(e.offset, describe_record(e.record, lambda _: None)[1]) for e in events.events()]


# -- the ring of committed records ------------------------------------------------------------


def test_appended_records_enter_the_ring_only_once_committed() -> None:
    events = MetadataEvents(capacity=10)
    events.appended([change(1, -1), change(2, -1)], end_offset=12, time_ms=500)
    assert events.events() == []
    events.committed(11)  # the first of the two
    assert texts(events) == [(10, "BrokerRegistrationChange broker 1 unfenced")]
    events.committed(12)
    assert [e.offset for e in events.events()] == [10, 11]
    assert {e.time_ms for e in events.events()} == {500}


def test_reverted_records_never_enter_the_ring() -> None:
    events = MetadataEvents(capacity=10)
    events.appended([change(1, 1)], end_offset=5, time_ms=0)
    events.reverted()
    events.committed(100)
    assert events.events() == []


def test_the_ring_keeps_the_newest_records_and_leaves_out_no_ops() -> None:
    events = MetadataEvents(capacity=3)
    entries = [(offset, NoOpRecord() if offset % 2 else TopicRecord(name=f"t{offset}"), 0)
               for offset in range(100, 110)]  # fmt: skip
    events.replayed(entries, time_ms=7)
    # The last three records of the batch are 107 (NoOp), 108 and 109 (NoOp): the NoOps go.
    assert [e.offset for e in events.events()] == [108]
    events.appended([change(3, 1)] * 5, end_offset=115, time_ms=8)
    events.committed(115)
    assert [e.offset for e in events.events()] == [112, 113, 114]


TOPIC_A, TOPIC_B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)


def transactions_log() -> list[list[Message]]:
    """Batches from offset 10: an aborted transaction creating topic a (10-13), then a
    committed one creating topic b (14-16 and its End, 17, in a batch of its own), then
    a NoOp and a config change outside any transaction (18, 19)."""
    return [
        [
            BeginTransactionRecord(name="a"),
            TopicRecord(name="a", topic_id=TOPIC_A),
            PartitionRecord(partition_id=0, topic_id=TOPIC_A, replicas=[1], isr=[1], leader=1),
            AbortTransactionRecord(reason="test"),
        ],
        [
            BeginTransactionRecord(name="b"),
            TopicRecord(name="b", topic_id=TOPIC_B),
            PartitionRecord(partition_id=0, topic_id=TOPIC_B, replicas=[1], isr=[1], leader=1),
        ],
        [EndTransactionRecord()],
        [
            NoOpRecord(),
            ConfigRecord(resource_type=2, resource_name="b", name="retention.ms", value="1"),
        ],
    ]


# What the ring shows of transactions_log(): topic b once its End is committed, the
# config change; nothing of topic a, no marker, no NoOp.
TRANSACTIONS_SHOWN = [
    (15, "Topic b id 00000000-0000-0000-0000-00000000000b"),
    (16, "Partition 00000000-0000-0000-0000-00000000000b-0 leader 1 isr [1] replicas [1]"),
    (19, "Config b retention.ms set"),
]


def test_a_replayed_aborted_transaction_never_shows_and_a_committed_one_shows_at_its_end() -> None:
    events = MetadataEvents(capacity=10)
    offset = 10
    for batch in transactions_log():
        events.replayed([(offset + i, r, 0) for i, r in enumerate(batch)], time_ms=1)
        offset += len(batch)
        if offset == 17:  # topic b's transaction is open: nothing of it yet
            assert texts(events) == []
    assert texts(events) == TRANSACTIONS_SHOWN


def test_a_written_transaction_shows_once_its_end_is_committed_and_an_aborted_one_never() -> None:
    events = MetadataEvents(capacity=10)
    offset = 10
    for batch in transactions_log():
        offset += len(batch)
        events.appended([RecordAndVersion(r, 0) for r in batch], end_offset=offset, time_ms=1)
    events.committed(16)  # inside topic b's transaction
    assert texts(events) == []
    events.committed(17)  # every record of it, not yet its End
    assert texts(events) == []
    events.committed(18)
    assert texts(events) == TRANSACTIONS_SHOWN[:2]
    events.committed(20)
    assert texts(events) == TRANSACTIONS_SHOWN


def test_a_replayed_open_transaction_aborted_by_the_new_leaders_write_never_shows() -> None:
    # A standby replayed the start of a transaction; leading, it writes the abort
    # (Kafka's "Controller failover"): the records it held never show, and a write that
    # is reverted before it commits changes nothing of that.
    events = MetadataEvents(capacity=10)
    events.replayed([(10, BeginTransactionRecord(name="a"), 0),
                     (11, TopicRecord(name="a", topic_id=TOPIC_A), 0)], time_ms=1)  # fmt: skip
    events.appended([RecordAndVersion(AbortTransactionRecord(reason="x"), 0)], 13, time_ms=2)
    events.reverted()
    events.appended([RecordAndVersion(AbortTransactionRecord(reason="y"), 0)], 13, time_ms=3)
    events.appended([change(2, 1)], end_offset=14, time_ms=3)
    events.committed(14)
    assert texts(events) == [(13, "BrokerRegistrationChange broker 2 fenced")]


def test_only_the_newest_records_of_a_long_committed_transaction_are_kept() -> None:
    events = MetadataEvents(capacity=3)
    topics = [TopicRecord(name=f"t{i}", topic_id=uuid.UUID(int=i)) for i in range(1, 9)]
    records = [BeginTransactionRecord(name="many"), *topics, EndTransactionRecord()]
    events.replayed([(i, r, 0) for i, r in enumerate(records)], time_ms=1)
    assert [e.offset for e in events.events()] == [6, 7, 8]


async def test_a_node_fills_its_ring_with_what_it_committed(leader: ControllerNode) -> None:  # noqa: F811
    # The one-voter leader wrote its bootstrap records and its controller registration.
    lines = [text for _, text in texts(leader.metadata_events)]
    assert "FeatureLevel metadata.version=21" in lines
    assert lines[-1] == "RegisterController controller 1"
    assert all(e.offset < leader.committed_offset for e in leader.metadata_events.events())


async def test_a_restarted_node_refills_its_ring_from_its_log(leader: ControllerNode) -> None:  # noqa: F811
    before = [(e.offset, e.time_ms, e.record) for e in leader.metadata_events.events()]
    leader.close()
    again = ControllerNode(leader.settings)  # a sole voter replays its whole log at start
    try:
        after = [(e.offset, e.time_ms, e.record) for e in again.metadata_events.events()]
    finally:
        again.close()
    assert before and after == before


async def test_a_restarted_node_shows_no_aborted_transaction_in_its_ring(
    leader: ControllerNode,  # noqa: F811
) -> None:
    shift = leader.log.end_offset - 10  # transactions_log() starts at offset 10
    for batch in transactions_log():
        leader.append([RecordAndVersion(r, 0) for r in batch], now_ms=1)
    leader.close()
    again = ControllerNode(leader.settings)  # a sole voter replays its whole log at start
    try:
        shown = [(offset - shift, text) for offset, text in texts(again.metadata_events)]
    finally:
        again.close()
    assert shown[-3:] == TRANSACTIONS_SHOWN
    assert not any("00000000000a" in text or "Transaction" in text for _, text in shown)


def test_the_status_listener_turns_on_the_two_pages_on_its_address(tmp_path: Path) -> None:
    base = {
        "process.roles": "controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "CONTROLLER://127.0.0.1:19093",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(tmp_path),
    }
    node: Any = object()  # the pages read the node only when asked
    off = ControllerServerConfig.from_properties(base)
    on = ControllerServerConfig.from_properties({**base, "kwire.status.listener": "127.0.0.1:0"})
    assert operator_pages(off, node) == []
    assert [(address, path) for address, path, _ in operator_pages(on, node)] == [
        (("127.0.0.1", 0), "/status"),
        (("127.0.0.1", 0), "/status.json"),
    ]


# -- one line per record -------------------------------------------------------------------------


def test_records_are_described_by_their_key_fields() -> None:
    topic_id, other = uuid.uuid4(), uuid.uuid4()  # `other` was deleted: its id is shown

    def name(t: uuid.UUID) -> str | None:
        return "orders" if t == topic_id else None

    cases = {
        "BrokerRegistrationChange broker 2 fenced": change(2, 1).record,
        "BrokerRegistrationChange broker 2 in controlled shutdown": BrokerRegistrationChangeRecord(
            broker_id=2, in_controlled_shutdown=1
        ),
        "PartitionChange orders-0 leader 2 isr [1, 2]": PartitionChangeRecord(
            topic_id=topic_id, partition_id=0, leader=2, isr=[1, 2]
        ),
        "PartitionChange orders-3 no leader": PartitionChangeRecord(
            topic_id=topic_id, partition_id=3, leader=-1
        ),
        f"PartitionChange {other}-1 isr [3]": PartitionChangeRecord(
            topic_id=other, partition_id=1, isr=[3]
        ),
        "Config orders retention.ms set": ConfigRecord(
            resource_type=2, resource_name="orders", name="retention.ms", value="1000"
        ),
        "Config (default) ssl.key.password set": ConfigRecord(
            resource_type=4, resource_name="", name="ssl.key.password", value="secret"
        ),
    }
    for expected, record in cases.items():
        assert describe_record(record, name)[1] == expected


# -- the document's bounds -------------------------------------------------------------------------


def image_with(topics: dict[str, list[int]], brokers: tuple[int, ...] = (1,)) -> MetadataImage:
    """An image with `brokers` registered unfenced and each topic's partitions led by the
    given leaders (-1: none)."""
    image = MetadataImage()
    offset = 0
    for broker_id in brokers:
        image.replay(
            RegisterBrokerRecord(broker_id=broker_id, broker_epoch=offset, fenced=False), 3, offset
        )
        offset += 1
    for name, leaders in topics.items():
        topic_id = uuid.uuid4()
        image.replay(TopicRecord(name=name, topic_id=topic_id), 0, offset)
        offset += 1
        for partition_id, leader_id in enumerate(leaders):
            replicas = [brokers[0]] if leader_id < 0 else [leader_id]
            record = PartitionRecord(
                partition_id=partition_id, topic_id=topic_id, replicas=replicas,
                isr=replicas, leader=leader_id, leader_epoch=0, partition_epoch=0,
            )  # fmt: skip
            image.replay(record, 0, offset)
            offset += 1
    return image


def test_topics_are_capped_by_the_limit_and_partitions_by_the_budget() -> None:
    big = PARTITION_BUDGET + 500
    image = image_with({"big": [1] * big, **{f"t{i}": [1] for i in range(30)}})
    section = topics_section(image, StatusQuery(limit=5))
    assert (section["count"], section["matching"], section["more"]) == (31, 31, 26)
    first, *rest = section["shown"]
    assert (first["name"], first["partition_count"]) == ("big", big)
    assert len(first["partitions"]) == PARTITION_BUDGET
    assert first["partitions_more"] == 500
    # The budget is spent: the other topics are named with their counts only.
    assert [(t["name"], len(t["partitions"]), t["partitions_more"]) for t in rest] == [
        (f"t{i}", 0, 1) for i in range(4)
    ]


def test_a_topic_filter_shows_the_exact_name_first_then_the_prefix_matches() -> None:
    image = image_with({"orders.eu": [1], "payments": [1], "orders": [1, 1], "orders.us": [1]})
    section = topics_section(image, StatusQuery(topic="orders", limit=2))
    assert [t["name"] for t in section["shown"]] == ["orders", "orders.eu"]
    assert (section["count"], section["matching"], section["more"]) == (4, 3, 1)
    assert topics_section(image, StatusQuery(topic="nothing"))["shown"] == []


def test_offline_partitions_come_from_the_leaderless_index_and_are_capped() -> None:
    image = image_with({"down": [-1] * (MAX_OFFLINE + 7), "up": [1, 1]})
    section = offline_section(image)
    assert (section["count"], section["more"], len(section["shown"])) == (
        MAX_OFFLINE + 7, 7, MAX_OFFLINE,
    )  # fmt: skip
    assert section["shown"][0] == {"topic": "down", "partition": 0}
    partitions = topics_section(image, StatusQuery(topic="up"))["shown"][0]["partitions"]
    assert [p["offline"] for p in partitions] == [False, False]


async def test_bad_query_parameters_answer_400_with_the_reason(leader: ControllerNode) -> None:  # noqa: F811
    document = status_routes(leader)["/status.json"]
    cases = {
        "limit=0": f"limit: must be between 1 and {MAX_TOPIC_LIMIT}, not 0",
        "limit=many": "limit: not an integer: 'many'",
        f"topic={'x' * 250}": "topic: at most 249 characters",
    }
    from urllib.parse import parse_qs

    for query, reason in cases.items():
        answer = document(HttpRequest("GET", "/status.json", parse_qs(query), {}))
        assert (answer.status, answer.body.decode()) == (400, reason + "\n")


def test_the_page_is_self_contained() -> None:
    page = STATUS_HTML.lower()
    assert "status.json" in page
    for external in ("http://", "https://", " src=", "<link", "@import"):
        assert external not in page


# -- a node's document ---------------------------------------------------------------------------


async def test_a_leaders_document_shows_its_quorum_brokers_topics_and_events(
    running: ControllerNode,  # noqa: F811
) -> None:
    handler = RequestHandler(running)
    with trio.fail_after(TIMEOUT_S):
        await register_unfenced(handler, 1)
        await handler.controller_request(one_topic("orders", partitions=2), CONTEXT)
    answer = status_routes(running)["/status.json"](HttpRequest("GET", "/status.json", {}, {}))
    assert (answer.status, answer.content_type) == (200, "application/json")
    status = json.loads(answer.body)
    quorum = status["quorum"]
    assert (quorum["state"], quorum["leader_id"], quorum["epoch"]) == (
        "leader",
        1,
        running.raft.epoch,
    )
    assert quorum["high_watermark"] == running.committed_offset
    assert quorum["active_controller"] is True
    [voter] = quorum["voters"]
    assert (voter["id"], voter["lag"], voter["log_end_offset"]) == (1, 0, running.log.end_offset)
    [broker] = status["brokers"]["shown"]
    assert (broker["id"], broker["state"]) == (1, "active")
    assert 0 <= broker["last_heartbeat_age_ms"] < TIMEOUT_S * 1000
    [topic] = status["topics"]["shown"]
    assert [(p["partition"], p["leader"], p["isr"], p["offline"]) for p in topic["partitions"]] == [
        (0, 1, [1], False),
        (1, 1, [1], False),
    ]
    lines = [e["text"] for e in status["events"]["shown"]]  # newest first
    assert lines[:3] == [
        "Partition orders-1 leader 1 isr [1] replicas [1]",
        "Partition orders-0 leader 1 isr [1] replicas [1]",
        f"Topic orders id {topic['id']}",
    ]
    assert "BrokerRegistrationChange broker 1 unfenced" in lines
    # Only the active controller tracks sessions: a standby's page has no heartbeat ages.
    running.replay.active = False
    try:
        standby = status_document(running, StatusQuery(), 0)
    finally:
        running.replay.active = True
    assert standby["brokers"]["shown"][0]["last_heartbeat_age_ms"] is None


async def test_a_node_that_does_not_lead_has_no_replica_view(
    leader: ControllerNode,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kwire.raft.state import Follower

    monkeypatch.setattr(leader.raft, "role", Follower(epoch=leader.raft.epoch + 1, leader_id=2))
    monkeypatch.setattr(leader.replay, "active", False)
    quorum = status_document(leader, StatusQuery(), 0)["quorum"]
    assert (quorum["state"], quorum["leader_id"]) == ("follower", 2)
    assert quorum["voters"][0]["lag"] is None and quorum["observers"] == []
