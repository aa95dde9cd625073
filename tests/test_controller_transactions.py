"""Metadata transactions (KIP-868) replayed as Kafka 3.9 replays them
(kwire.controller.transactions): logs are real record batches framed by kwire's encoders
and read back by the start-up reader, transactions framed as in Kafka's
MetadataBatchLoaderTest, OffsetControlManagerTest and QuorumControllerTest."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Sequence

import pytest

from kwire.controller.controller import ControllerConfig, QuorumController
from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.controller.operation import RequestContext
from kwire.controller.records import versioned_records
from kwire.controller.registrations import ConfigResourceType, ReplayError
from kwire.controller.transactions import (
    TransactionError,
    TransactionGate,
    discard_open_transaction,
    holds_markers,
    last_stable_offset,
)
from kwire.log.metadata_reader import MetadataEntry, batch_metadata_records
from kwire.metadata_version import MetadataVersion
from kwire.protocol._codec import Message
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
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
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.remove_topic_record import RemoveTopicRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import Record, build_batch, encode_batch, read_batch_header
from kwire.server.write_path import frame_records
from tests.test_startup_load import image_fields
from tools.startup_data import broker_record

LEVEL_3_9 = MetadataVersion.IBP_3_9_IV0
# MetadataBatchLoaderTest's topics.
TOPIC_FOO = uuid.UUID("73ab94c6-03e4-4691-94ae-e3958f913c35")  # c6uHMgPkRp2Urjlh-RxMNQ
TOPIC_BAR = uuid.UUID("b545d438-fbcf-4996-99e5-f73ea664c272")  # tUWOOPvzQhmZZ_eXmTCcig
TOPIC_PRE = uuid.UUID(int=0x5EED)


def begin(name: str = "txn-1") -> BeginTransactionRecord:
    return BeginTransactionRecord(name=name)


def topic_txn_batch_1() -> list[Message]:
    return [
        begin(),
        TopicRecord(name="foo", topic_id=TOPIC_FOO),
        PartitionRecord(partition_id=0, topic_id=TOPIC_FOO),
    ]


def topic_txn_batch_2() -> list[Message]:
    return [
        PartitionRecord(partition_id=1, topic_id=TOPIC_FOO),
        PartitionRecord(partition_id=2, topic_id=TOPIC_FOO),
        EndTransactionRecord(),
    ]


def topic_no_txn_batch() -> list[Message]:
    return [
        TopicRecord(name="bar", topic_id=TOPIC_BAR),
        PartitionRecord(partition_id=0, topic_id=TOPIC_BAR),
        PartitionRecord(partition_id=1, topic_id=TOPIC_BAR),
    ]


def prefix() -> list[Message]:
    """The log before the transactions (offsets 10 to 15): a metadata.version, a broker,
    a topic of one partition with a config."""
    return [
        FeatureLevelRecord(name="metadata.version", feature_level=int(LEVEL_3_9)),
        broker_record(1, 10),
        TopicRecord(name="pre", topic_id=TOPIC_PRE),
        PartitionRecord(partition_id=0, topic_id=TOPIC_PRE, replicas=[1], isr=[1], leader=1),
        ConfigRecord(
            resource_type=int(ConfigResourceType.TOPIC),
            resource_name="pre",
            name="retention.ms",
            value="1",
        ),
        NoOpRecord(),
    ]


def batch(base_offset: int, records: Sequence[Message], epoch: int = 1) -> list[MetadataEntry]:
    """``records`` as one batch of the log at ``base_offset``: framed and encoded by kwire,
    read back by the start-up reader."""
    values = frame_records(versioned_records(records, LEVEL_3_9))
    built = build_batch(
        [Record(offset_delta=i, value=v) for i, v in enumerate(values)],
        base_offset=base_offset,
        base_timestamp=1_700_000_000_000,
        partition_leader_epoch=epoch,
    )
    data = encode_batch(built)
    return batch_metadata_records(data, 0, read_batch_header(data))


def batches(*groups: Sequence[Message], start: int = 10) -> list[list[MetadataEntry]]:
    """Consecutive batches from offset ``start``."""
    out = []
    for group in groups:
        out.append(batch(start, group))
        start += len(group)
    return out


def load(groups: list[list[MetadataEntry]], *, batched: bool = True) -> MetadataImage:
    """The image a start-up load (batched) or a record-by-record replay leaves."""
    image = MetadataImage()
    loader = ImageLoader(image)
    for entries in groups:
        if batched:
            loader.replay_all(entries)
        else:
            for offset, record, version in entries:
                loader.replay(record, version, offset)
    loader.finish()
    return image


def fields_but(image: MetadataImage, *names: str) -> dict[str, object]:
    out = image_fields(image)
    for name in names:
        out.pop(name)
    return out


BODIES: dict[str, Callable[[], list[Message]]] = {
    "a new topic (MetadataBatchLoaderTest)": topic_no_txn_batch,
    "changes to existing state": lambda: [
        ConfigRecord(
            resource_type=int(ConfigResourceType.TOPIC),
            resource_name="pre",
            name="retention.ms",
            value="2",
        ),
        PartitionChangeRecord(partition_id=0, topic_id=TOPIC_PRE, isr=[], leader=-1),
        broker_record(2, 11),
        FeatureLevelRecord(name="group.version", feature_level=1),
    ],
    "the removal of a topic": lambda: [RemoveTopicRecord(topic_id=TOPIC_PRE)],
}
MODES = pytest.mark.parametrize("batched", [True, False], ids=["batched", "one by one"])


@MODES
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_an_aborted_transaction_across_batches_leaves_nothing(
    body: Callable[[], list[Message]], batched: bool
) -> None:
    # testOneTransactionInMultipleBatches(abortTxn=true): Begin alone, the records, Abort
    # alone, each a batch of its own.
    records = body()
    aborted = load(
        batches(prefix(), [begin()], records, [AbortTransactionRecord()]), batched=batched
    )
    untouched = load(batches(prefix()), batched=batched)
    assert fields_but(aborted, "last_applied_offset") == fields_but(
        untouched, "last_applied_offset"
    )
    assert aborted.last_applied_offset == 16 + len(records) + 1  # the abort's offset
    for broker in (-1, 1, 2):
        assert aborted.partitions_with_broker_in_isr(broker) == (
            untouched.partitions_with_broker_in_isr(broker)
        )
    assert len(aborted.undo) == 0  # nothing held once the transaction ended


@MODES
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_a_committed_transaction_appears_whole_as_its_records_without_markers(
    body: Callable[[], list[Message]], batched: bool
) -> None:
    records = body()
    ended = load(batches(prefix(), [begin()], records, [EndTransactionRecord()]), batched=batched)
    plain = load(batches(prefix(), records), batched=batched)
    # Offsets differ by the Begin; the features' epoch is the offset that published them:
    # the End's, as Kafka reports it.
    offsets = ("last_applied_offset", "feature_history", "register_broker_offsets")
    assert fields_but(ended, *offsets) == fields_but(plain, *offsets)
    end_offset = 16 + len(records) + 1
    assert ended.feature_history[-1][0] == (end_offset if "group.version" in str(records) else 10)
    assert len(ended.undo) == 0


def test_two_transactions_in_one_batch_both_take_effect() -> None:
    # testMultipleTransactionsInOneBatch: foo's transaction, then bar's, in one batch at 10.
    records = [*topic_txn_batch_1(), *topic_txn_batch_2(), begin(), *topic_no_txn_batch()]
    records.append(EndTransactionRecord())
    image = load([batch(10, records)])
    assert sorted(t.name for t in image.topics.values()) == ["bar", "foo"]
    assert sorted(image.topic_by_name("foo").partitions) == [0, 1, 2]  # type: ignore[union-attr]
    assert image.transaction_start_offset == -1 and image.last_applied_offset == 20


def test_aligned_transaction_batches_with_no_ops_inside_publish_the_topic_at_the_end() -> None:
    # testAlignedTransactionBatches: 10-12 Begin foo foo-0, 13-15 NoOps, 16-18 foo-1 foo-2 End.
    groups = [batch(10, topic_txn_batch_1()), batch(13, [NoOpRecord()] * 3)]
    image = load(groups)
    assert image.transaction_start_offset == 10 and "foo" in image.topic_ids_by_name
    groups.append(batch(16, topic_txn_batch_2()))
    image = load(groups)
    assert sorted(image.topic_by_name("foo").partitions) == [0, 1, 2]  # type: ignore[union-attr]
    assert image.last_applied_offset == 18


def test_an_open_transaction_is_left_out_of_what_is_published() -> None:
    # A log that ends inside a transaction (a failover cut it): what Kafka's loader
    # published is the image before the Begin, at the offset before it.
    image = load(batches(prefix(), [NoOpRecord(), begin()], topic_no_txn_batch()))
    assert image.transaction_start_offset == 17 and "bar" in image.topic_ids_by_name
    assert discard_open_transaction(image) == 17
    before = load(batches(prefix(), [NoOpRecord()]))
    assert image_fields(image) == image_fields(before)
    assert image.last_applied_offset == 16
    assert discard_open_transaction(image) == -1  # nothing open any more


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [begin(), NoOpRecord(), begin()],
            "Can't replay a BeginTransactionRecord at 12 because the transaction at 10 "
            "was never closed.",
        ),
        (
            [EndTransactionRecord()],
            "Can't replay an EndTransactionRecord at 10 because there is no open transaction.",
        ),
        (
            [AbortTransactionRecord()],
            "Can't replay an AbortTransactionRecord at 10 because there is no open transaction.",
        ),
    ],
    ids=["begin inside a transaction", "end outside one", "abort outside one"],
)
def test_misplaced_markers_are_refused_with_kafkas_messages(
    records: list[Message], message: str
) -> None:
    with pytest.raises(ReplayError) as refused:
        load([batch(10, records)])
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "marker", [begin(), EndTransactionRecord(), AbortTransactionRecord()], ids=type
)
def test_a_transaction_marker_inside_a_snapshot_is_refused(marker: Message) -> None:
    # OffsetControlManagerTest.test*TransactionRecordNotAllowedInSnapshot.
    entries = batch(0, [FeatureLevelRecord(name="metadata.version", feature_level=21), marker])
    with pytest.raises(ReplayError) as refused:
        ImageLoader(MetadataImage()).replay_all(entries, at_offset=999)
    assert str(refused.value) == f"{type(marker).__name__} cannot appear within a snapshot."


# -- the controller: a standby's replay, commits, activation --------------------------------


def controller() -> QuorumController:
    return QuorumController(
        node_id=1, cluster_id="c", config=ControllerConfig(), rng=random.Random(1)
    )


def replay_committed(controller: QuorumController, groups: list[list[MetadataEntry]]) -> None:
    """A standby's replay: each batch committed (and its notes freed) as it is applied."""
    loader = ImageLoader(controller.image)
    for entries in groups:
        loader.replay_all(entries)
        controller.commit(entries[-1][0])
    loader.finish()


def test_a_standby_that_committed_part_of_a_transaction_can_still_abort_it() -> None:
    # testReplayTransaction(aborted=true): committing inside the transaction does not move
    # the last stable offset past the Begin, so the abort still takes everything back.
    standby = controller()
    replay_committed(standby, batches(prefix(), [begin()], topic_no_txn_batch()))
    assert standby.uncommitted_changes > 0  # the open transaction's notes are kept
    replay_committed(standby, [batch(20, [AbortTransactionRecord()])])
    untouched = controller()
    replay_committed(untouched, batches(prefix()))
    assert fields_but(standby.image, "last_applied_offset") == fields_but(
        untouched.image, "last_applied_offset"
    )
    assert standby.uncommitted_changes == 0


def test_activation_inside_a_transaction_writes_kafkas_abort_first_then_nothing_else() -> None:
    # QuorumControllerTest.testActivationRecordsPartialTransaction: the abort, atomic.
    active = controller()
    replay_committed(active, batches(prefix(), [begin("ZK Migration")], topic_no_txn_batch()))
    result = active.activate(now_ms=1000, next_offset=20)
    assert result is not None and result.atomic
    assert [(type(r.record).__name__, r.version) for r in result.records] == [
        ("AbortTransactionRecord", 0)
    ]
    assert result.records[0].record.reason == "Controller failover"  # type: ignore[attr-defined]
    assert active.image.transaction_start_offset == -1
    assert "bar" not in active.image.topic_ids_by_name


def test_an_abort_that_is_not_appended_gives_the_transaction_back() -> None:
    # The abort is applied before it is written; when its append is refused (or leadership
    # is lost before it commits) the controller reverts to the committed offset, where
    # the transaction is still open with its records, and a later abort still works.
    active = controller()
    replay_committed(active, batches(prefix(), [begin()], topic_no_txn_batch()))
    open_image = image_fields(active.image)
    active.activate(now_ms=1000, next_offset=20)
    active.revert_to(19)
    assert image_fields(active.image) == open_image
    assert active.image.transaction_start_offset == 16
    active.deactivate()
    result = active.activate(now_ms=2000, next_offset=20)
    assert result is not None and result.records
    active.commit(20)
    untouched = controller()
    replay_committed(untouched, batches(prefix()))
    assert fields_but(active.image, "last_applied_offset") == fields_but(
        untouched.image, "last_applied_offset"
    )
    assert active.uncommitted_changes == 0


def test_a_registration_only_the_aborted_transaction_made_has_no_session() -> None:
    active = controller()
    replay_committed(active, batches(prefix(), [begin(), broker_record(2, 17)]))
    assert 2 in active.image.brokers
    active.activate(now_ms=1000, next_offset=18)
    assert sorted(active.tracker.sessions) == [1]


def test_a_standby_keeps_no_session_of_what_an_aborted_transaction_took_back() -> None:
    # Broker 1 is registered fenced; the aborted transaction unfenced it and registered
    # broker 2. Kafka's standby has no BrokerHeartbeatManager, so the abort leaves no
    # session behind; once this controller serves, the session scan has nothing to fence
    # (kwire kept both sessions and then fenced broker 2, which the image lacks: KeyError).
    records = prefix()
    records[1] = dataclasses.replace(broker_record(1, 11), fenced=True)
    unfence = BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=11, fenced=-1)
    body = [begin(), unfence, broker_record(2, 18)]
    standby = controller()
    replay_committed(standby, batches(records, body, [AbortTransactionRecord()]))
    assert {b: r.fenced for b, r in standby.image.brokers.items()} == {1: True}
    assert standby.tracker.sessions == {}
    request = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(name="t", num_partitions=1, replication_factor=1)
        ]
    )
    response = standby.handle(request, RequestContext(api_version=7), 20, now_ms=1000)
    assert isinstance(response.response, CreateTopicsResponse)
    assert response.response.topics[0].error_message == (
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced."
    )
    assert {b: s.fenced for b, s in standby.tracker.sessions.items()} == {1: True}
    timeout = ControllerConfig().broker_session_timeout_ms
    result = standby.tick(1000 + timeout + 1, 20)
    assert result is not None
    assert [type(r.record).__name__ for r in result.records] == ["NoOpRecord"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (MetadataVersion.IBP_3_6_IV1, "AbortTransactionRecord"),
        (
            MetadataVersion.IBP_3_6_IV0,
            "Detected in-progress transaction at offset 11, but the metadata.version 3.6-IV0 "
            "does not support transactions. Cannot continue.",
        ),
    ],
    ids=["3.6-IV1 aborts", "3.6-IV0 cannot"],
)
def test_metadata_transactions_can_be_aborted_from_3_6_iv1(
    level: MetadataVersion, expected: str
) -> None:
    # testActivationRecordsPartialTransaction and ...PartialTransactionNoSupport.
    active = controller()
    records = [FeatureLevelRecord(name="metadata.version", feature_level=int(level)), begin()]
    replay_committed(active, [batch(10, records)])
    if expected == "AbortTransactionRecord":
        result = active.activate(now_ms=1000, next_offset=12)
        assert result is not None
        assert [type(r.record).__name__ for r in result.records] == [expected]
    else:
        with pytest.raises(TransactionError) as refused:
            active.activate(now_ms=1000, next_offset=12)
        assert str(refused.value) == expected


def test_the_metadata_version_set_inside_the_transaction_decides_as_in_kafkas_controller() -> None:
    # Kafka's FeatureControlManager holds the open transaction's records: a log whose
    # bootstrap transaction was cut after its metadata.version record aborts it.
    active = controller()
    records = [begin("Bootstrap records"), prefix()[0]]
    replay_committed(active, [batch(0, records)])
    result = active.activate(now_ms=1000, next_offset=2)
    assert result is not None
    assert [type(r.record).__name__ for r in result.records] == ["AbortTransactionRecord"]
    assert active.image.finalized_features == {}  # the abort took the level back


def test_the_last_stable_offset_stays_before_an_open_transactions_begin() -> None:
    # OffsetControlManagerTest.testReplayTransaction: Begin at 1500, committed to 1550:
    # stable at 1499; once it ended and 1650 is committed, stable at 1650.
    image = MetadataImage()
    assert last_stable_offset(image, 1400) == 1400
    image.replay(begin(), 0, 1500)
    assert last_stable_offset(image, 1550) == 1499
    assert last_stable_offset(image, 1450) == 1450
    image.replay(EndTransactionRecord(), 0, 1600)
    assert last_stable_offset(image, 1650) == 1650


# -- the gate of a reader of committed records ------------------------------------------------


def admit(gate: TransactionGate[int], records: list[Message], base: int) -> list[int]:
    """The offsets ``gate`` publishes of ``records`` at ``base``, ``base + 1``, ..."""
    markers = holds_markers(records)
    return gate.admit(len(records), records.__getitem__, lambda i: base + i, markers=markers)


def test_the_gate_publishes_a_transaction_at_its_end_and_an_aborted_one_never() -> None:
    gate: TransactionGate[int] = TransactionGate(keep=10)
    first = [begin(), NoOpRecord(), AbortTransactionRecord(), NoOpRecord(), begin()]
    assert admit(gate, first, 0) == [3]  # the NoOp between the two transactions
    assert gate.transaction_open
    assert admit(gate, [NoOpRecord(), NoOpRecord()], 5) == []
    assert admit(gate, [EndTransactionRecord(), NoOpRecord()], 7) == [5, 6, 8]
    assert not gate.transaction_open


def test_an_end_or_abort_with_no_transaction_open_publishes_nothing_more() -> None:
    # The records began inside a transaction (nothing of it was seen): its marker is
    # passed over and what follows it is published.
    gate: TransactionGate[int] = TransactionGate(keep=10)
    assert admit(gate, [EndTransactionRecord(), NoOpRecord()], 0) == [1]
    assert admit(gate, [AbortTransactionRecord(), NoOpRecord()], 2) == [3]


def test_without_markers_only_the_newest_records_are_looked_at() -> None:
    gate: TransactionGate[int] = TransactionGate(keep=2)
    assert admit(gate, [NoOpRecord()] * 5, 0) == [3, 4]
    admit(gate, [begin()], 5)
    assert admit(gate, [NoOpRecord()] * 5, 6) == []  # held: the newest two
    assert admit(gate, [EndTransactionRecord()], 11) == [9, 10]
