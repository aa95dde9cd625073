"""kwire.sim.client: which topics a node's committed log creates, as the image published
from it holds them (KIP-868 metadata transactions: an aborted one's records never enter the
image, an ended one's do)."""

from __future__ import annotations

import uuid

from test_sim_invariants import FakeNode, batch, log_of

from kwire.protocol._codec import Message
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
from kwire.records import frame_metadata_record
from kwire.sim.client import committed_topics


def records(*messages: Message) -> bytes:
    """One batch of metadata records, each framed at version 0."""
    return batch(*(frame_metadata_record(m.API_KEY, 0, m.encode(0)) for m in messages))  # type: ignore[attr-defined]


def topic(name: str) -> TopicRecord:
    return TopicRecord(name=name, topic_id=uuid.UUID(int=len(name)))


def node_with(*batches: bytes, committed_end: int | None = None) -> FakeNode:
    log = log_of(*((data, 1) for data in batches))
    end = log.end_offset if committed_end is None else committed_end
    return FakeNode(node_id=1, log=log, committed_end=end)


def test_an_aborted_transactions_topic_is_not_counted_and_a_committed_ones_is() -> None:
    node = node_with(
        records(topic("plain")),
        records(BeginTransactionRecord(name="one"), topic("aborted"), AbortTransactionRecord()),
        records(BeginTransactionRecord(name="two"), topic("ended"), EndTransactionRecord()),
    )
    assert committed_topics(node) == {"plain", "ended"}  # type: ignore[arg-type]


def test_a_transaction_whose_end_is_not_committed_yet_counts_no_topic() -> None:
    log = records(BeginTransactionRecord(name="t"), topic("pending"), EndTransactionRecord())
    assert committed_topics(node_with(log, committed_end=2)) == set()  # type: ignore[arg-type]
    assert committed_topics(node_with(log, committed_end=3)) == {"pending"}  # type: ignore[arg-type]


def test_records_past_the_committed_end_are_not_counted() -> None:
    node = node_with(records(topic("first"), topic("second")), committed_end=1)
    assert committed_topics(node) == {"first"}  # type: ignore[arg-type]
