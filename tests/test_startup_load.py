"""Start-up at scale: the fast load of snapshots and logs (kwire.controller.image_load,
kwire.log.metadata_reader) leaves exactly the image the record-by-record replay leaves, and
a node restarted over a generated snapshot and log tail serves."""

from __future__ import annotations

import copy
import dataclasses
import random
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import pytest
import trio

from kwire.controller import image_load
from kwire.controller.image import MetadataImage
from kwire.controller.image_load import ImageLoader
from kwire.controller.records import RecordAndVersion
from kwire.controller.registrations import ConfigResourceType
from kwire.controller.snapshot_image import snapshot_records
from kwire.log import metadata_reader
from kwire.log.metadata_reader import batch_metadata_records, decode_metadata_value
from kwire.log.snapshot_io import iter_snapshot_records, read_snapshot, write_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.errors import DecodeError
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
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
from kwire.records import (
    Record,
    build_batch,
    decode_batch,
    decode_records,
    encode_batch,
    read_batch_header,
)
from kwire.server.client import KafkaClient
from kwire.server.write_path import frame_records
from tests.server_harness import HOST, KwireServer
from tools.startup_data import broker_record, generate

LEVEL_3_9 = 21  # metadata.version 3.9-IV0
BROKERS = 5


def history(seed: int) -> list[RecordAndVersion]:
    """A log with every case the fast path must get right: topics and partitions in
    bulk, leaderless and imbalanced partitions, ELRs, a topic id reused after removal, a partition
    written twice, changes, configs and a metadata transaction in between."""
    rng = random.Random(seed)
    out = [RecordAndVersion(FeatureLevelRecord(name="metadata.version", feature_level=21), 0)]
    out += [RecordAndVersion(broker_record(b, b), 3) for b in range(1, BROKERS + 1)]
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(40)]

    def partition(topic_id: uuid.UUID, p: int, **fields: object) -> RecordAndVersion:
        replicas = rng.sample(range(1, BROKERS + 1), 3)
        values: dict[str, object] = {
            "partition_id": p,
            "topic_id": topic_id,
            "replicas": replicas,
            "isr": replicas[: rng.randint(1, 3)],
            "leader": replicas[0],
            "directories": [uuid.UUID(int=(1 << 100) + b) for b in replicas],
            **fields,
        }
        version = 2 if "eligible_leader_replicas" in fields else 1
        return RecordAndVersion(PartitionRecord(**values), version)  # type: ignore[arg-type]

    for t, topic_id in enumerate(ids):
        out.append(RecordAndVersion(TopicRecord(name=f"topic-{t}", topic_id=topic_id), 0))
        out += [partition(topic_id, p) for p in range(rng.randint(1, 12))]
        if t % 7 == 3:
            out.append(partition(topic_id, 0, leader=-1, isr=[], leader_recovery_state=1))
            out.append(partition(topic_id, 1, eligible_leader_replicas=[2, 4], last_known_elr=[5]))
            # New partitions led by other than their first replica count as imbalanced.
            led_by_second = partition(topic_id, 50)
            led_by_second.record.leader = led_by_second.record.replicas[1]
            out.append(led_by_second)
            out.append(partition(topic_id, 51, leader=-1, isr=[]))
        if t % 5 == 1:
            config = ConfigRecord(
                resource_type=int(ConfigResourceType.TOPIC),
                resource_name=f"topic-{t}",
                name="retention.ms",
                value=str(t),
            )
            out.append(RecordAndVersion(config, 0))
            out.append(
                RecordAndVersion(
                    PartitionChangeRecord(partition_id=0, topic_id=topic_id, isr=[1], leader=1), 0
                )
            )
        if t % 9 == 4:
            out.append(RecordAndVersion(BeginTransactionRecord(name="tx"), 0))
            out.append(RecordAndVersion(NoOpRecord(), 0))
            out.append(RecordAndVersion(EndTransactionRecord(), 0))
        if t % 11 == 5:
            out.append(RecordAndVersion(RemoveTopicRecord(topic_id=topic_id), 0))
            out.append(RecordAndVersion(TopicRecord(name=f"again-{t}", topic_id=topic_id), 0))
            out.append(partition(topic_id, 0))
    return out


def replayed(records: list[RecordAndVersion]) -> MetadataImage:
    image = MetadataImage()
    for offset, item in enumerate(records):
        image.replay(item.record, item.version, offset)
    return image


def loaded(records: Iterable[RecordAndVersion], *, batched: bool = False) -> MetadataImage:
    image = MetadataImage()
    loader = ImageLoader(image)
    if batched:
        loader.replay_all((o, r.record, r.version) for o, r in enumerate(records))
    for offset, item in enumerate([] if batched else records):
        loader.replay(item.record, item.version, offset)
    loader.finish()
    return image


def image_fields(image: MetadataImage) -> dict[str, object]:
    """Every field of the image that the log decides (the undo log's notes and the broker
    callbacks aside)."""
    skipped = {"undo", "on_broker_registered", "on_broker_removed"}
    return {
        f.name: getattr(image, f.name) for f in dataclasses.fields(image) if f.name not in skipped
    }


def snapshot_bytes(image: MetadataImage) -> list[bytes]:
    return frame_records(snapshot_records(image))


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "batched"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_loaded_image_equals_the_replayed_image_field_by_field(seed: int, batched: bool) -> None:
    records = history(seed)
    slow, fast = replayed(records), loaded(records, batched=batched)
    assert image_fields(fast) == image_fields(slow)
    for broker in range(-1, BROKERS + 1):
        assert fast.partitions_with_broker_in_isr(broker) == slow.partitions_with_broker_in_isr(
            broker
        )
        assert fast.partitions_with_broker_in_elr(broker) == slow.partitions_with_broker_in_elr(
            broker
        )


@pytest.mark.parametrize("seed", [1, 2])
def test_a_snapshot_written_after_a_fast_load_is_byte_identical(seed: int) -> None:
    records = history(seed)
    assert snapshot_bytes(loaded(records)) == snapshot_bytes(replayed(records))


def test_records_after_a_fast_load_apply_as_after_a_replay() -> None:
    # The Java-order state a later record reads (ISR index order and table capacities,
    # which decide the order of a fencing's records) is the same after either load.
    records = history(4)
    slow, fast = replayed(records), loaded(records)
    topic_id = next(iter(slow.topics))
    change = PartitionChangeRecord(partition_id=0, topic_id=topic_id, isr=[2, 3], leader=2)
    for image in (slow, fast):
        image.replay(change, 0, len(records))
    assert image_fields(fast) == image_fields(slow)


def test_partitions_share_their_replica_tuples() -> None:
    rng = random.Random(5)
    records = [RecordAndVersion(FeatureLevelRecord(name="metadata.version", feature_level=21), 0)]
    for t in range(30):
        topic_id = uuid.UUID(int=rng.getrandbits(128))
        records.append(RecordAndVersion(TopicRecord(name=f"t{t}", topic_id=topic_id), 0))
        for p in range(10):
            replicas = rng.sample(range(1, BROKERS + 1), 3)
            record = PartitionRecord(
                partition_id=p,
                topic_id=topic_id,
                replicas=replicas,
                isr=replicas,
                leader=replicas[0],
            )
            records.append(RecordAndVersion(record, 1))
    partitions = [p for t in loaded(records).topics.values() for p in t.partitions.values()]
    assert len({id(p.replicas) for p in partitions}) == len({p.replicas for p in partitions})
    assert all(p.isr is p.replicas for p in partitions)
    assert len({id(p.directories) for p in partitions}) == 1  # all (MIGRATING,) * 3


def test_sharing_is_bounded_and_never_mixes_up_directories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records made one at a time and dropped after use, with UUID objects of their own
    # (not the codec's shared ones), whose addresses are reused: the shared directory
    # tuples, looked up by identity, must still be right, and the sharing stays bounded.
    monkeypatch.setattr(image_load, "MAX_SHARED_REGISTRATIONS", 3)
    records = history(9)
    fresh = (RecordAndVersion(copy.deepcopy(r.record), r.version) for r in records)
    assert image_fields(loaded(fresh)) == image_fields(replayed(records))


def test_a_partition_of_an_unknown_topic_fails_as_in_replay() -> None:
    record = PartitionRecord(partition_id=0, topic_id=uuid.uuid4(), replicas=[1], isr=[1], leader=1)
    with pytest.raises(ValueError, match="PartitionRecord for unknown topic id"):
        ImageLoader(MetadataImage()).replay(record, 1, 0)


# -- the active controller's own atomic batches (ImageLoader.apply_atomic) ------------------


def index_orders(image: MetadataImage) -> list[object]:
    """The order of the ISR and ELR indexes' keys (brokers, then topics under each), which
    decides the order of a later fencing's records."""
    return [
        [(broker, list(by_topic.items())) for broker, by_topic in index.items()]
        for index in (image.isr_members, image.elr_members)
    ]


def atomic_batches(records: list[RecordAndVersion], seed: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive batches of random sizes covering ``records`` (some
    batches cut a topic's partitions from its TopicRecord)."""
    rng, cuts, start = random.Random(seed), [], 0
    while start < len(records):
        end = min(len(records), start + rng.randint(1, 30))
        cuts.append((start, end))
        start = end
    return cuts


def applied_atomically(records: list[RecordAndVersion], seed: int) -> MetadataImage:
    image = MetadataImage()
    image.undo.recording = True
    for start, end in atomic_batches(records, seed):
        ImageLoader(image).apply_atomic(records[start:end], start)
    image.undo.recording = False
    return image


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_leaders_atomic_apply_equals_the_replay_field_by_field(seed: int) -> None:
    records = history(seed)
    slow, fast = replayed(records), applied_atomically(records, seed)
    assert image_fields(fast) == image_fields(slow)
    assert index_orders(fast) == index_orders(slow)
    assert snapshot_bytes(fast) == snapshot_bytes(slow)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_atomic_batches_taken_back_leave_the_replay_of_what_was_committed(seed: int) -> None:
    records = history(seed)
    rng = random.Random(seed)
    image = MetadataImage()
    image.undo.recording = True
    committed = -1  # the last offset that can no longer be taken back
    pending: list[tuple[int, int]] = []  # the batches applied since
    for start, end in atomic_batches(records, seed):
        ImageLoader(image).apply_atomic(records[start:end], start)
        pending.append((start, end))
        match rng.randrange(3):
            case 0:  # an append failed: back to the committed offset, then applied again
                image.undo.revert_to(committed)
                expected = replayed(records[: committed + 1])
                assert image_fields(image) == image_fields(expected)
                assert index_orders(image) == index_orders(expected)
                for again, until in pending:
                    ImageLoader(image).apply_atomic(records[again:until], again)
            case 1:  # committed
                image.undo.forget_through(end - 1)
                committed, pending = end - 1, []
    image.undo.recording = False
    assert image_fields(image) == image_fields(replayed(records))
    assert index_orders(image) == index_orders(replayed(records))


def test_a_new_topics_partitions_need_no_undo_notes_of_their_own() -> None:
    # The notes grow with the topic and the brokers it touches, not with its partitions.
    def notes(partitions: int) -> int:
        image = replayed(history(1)[: 1 + BROKERS])
        image.undo.recording = True
        topic_id = uuid.UUID(int=7)
        batch = [RecordAndVersion(TopicRecord(name="t", topic_id=topic_id), 0)] + [
            RecordAndVersion(
                PartitionRecord(
                    partition_id=p, topic_id=topic_id, replicas=[1, 2, 3], isr=[1, 2, 3], leader=1
                ),
                0,
            )
            for p in range(partitions)
        ]
        ImageLoader(image).apply_atomic(batch, 100)
        return len(image.undo)

    assert notes(100) == notes(1)


def _batch(values: list[bytes], **record_fields: object) -> bytes:
    records = [Record(offset_delta=i, value=v, **record_fields) for i, v in enumerate(values)]  # type: ignore[arg-type]
    return encode_batch(build_batch(records, base_offset=1000, base_timestamp=5))


def _general(data: bytes) -> list[tuple[int, object, int]]:
    batch, _ = decode_batch(data)
    return [
        (batch.base_offset + r.offset_delta, *decode_metadata_value(r.value)) for r in batch.records
    ]


@pytest.mark.parametrize(
    "record_fields",
    [{}, {"key": b"k"}, {"headers": (("h", b"v"),)}, {"timestamp_delta": 100_000}],
    ids=["common shape", "with a key", "with headers", "long timestamp delta"],
)
def test_batch_records_read_fast_equal_the_general_decoding(
    record_fields: dict[str, object],
) -> None:
    values = frame_records(history(6)) * 3  # offset deltas past one and two varint bytes
    data = _batch(values, **record_fields)
    assert batch_metadata_records(data, 0, read_batch_header(data)) == _general(data)


def test_a_record_whose_message_is_cut_short_fails_as_the_general_decoding() -> None:
    value = frame_records([RecordAndVersion(TopicRecord(name="x", topic_id=uuid.uuid4()), 0)])[0]
    data = _batch([value[:-3]])
    with pytest.raises(DecodeError) as general:
        _general(data)
    with pytest.raises(DecodeError) as fast:
        batch_metadata_records(data, 0, read_batch_header(data))
    assert str(fast.value) == str(general.value)


def _outcome(read: Callable[[], object]) -> object:
    try:
        return read()
    except ValueError as exc:  # CorruptRecordError, DecodeError, unknown record types
        return (type(exc), str(exc))


def test_damaged_batches_fail_as_the_general_decoding_or_read_the_same() -> None:
    # Bytes flipped or cut anywhere in the records: never another exception (IndexError),
    # the general path's error or its records.
    rng = random.Random(11)
    good = _batch(frame_records(history(10))[:40])
    # One record of 7 bytes whose value size runs past the batch's end.
    cut = good[:61] + bytes([14, 0, 0, 0x80, 0x80, 0, 1, 0x80])
    cases = [(cut, 1)]
    for trial in range(300):
        data = bytearray(good)
        if trial % 3 == 0:
            del data[rng.randrange(61, len(data)) :]
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(61, len(data))] = rng.randrange(256)
        cases.append((bytes(data), read_batch_header(good).records_count))
    for buf, count in cases:
        header = dataclasses.replace(
            read_batch_header(good), batch_length=len(buf) - 12, records_count=count
        )

        assert _outcome(partial(batch_metadata_records, buf, 0, header)) == _outcome(
            partial(_general_records, buf, header.records_count)
        )


@pytest.mark.skipif(
    metadata_reader._compiled_records is None, reason="the C accelerator is not built"
)
def test_the_compiled_framing_reads_what_its_python_twin_reads() -> None:
    # Batches of every record shape, whole, cut, with bytes flipped and with a wrong
    # record count: the same records from both, or None (read again the general way).
    rng = random.Random(12)
    values = frame_records(history(10))[:40] * 3  # offset deltas of one to three bytes
    shapes = [{}, {"key": b"k"}, {"headers": (("h", b"v"),)}, {"timestamp_delta": 100_000}]
    cases = [(_batch(values, **fields)[61:], len(values)) for fields in shapes]
    good = cases[0][0]
    cases += [(good, len(values) - 1), (good, len(values) + 1), (b"", 1), (b"", 0)]
    for trial in range(600):
        data = bytearray(good)
        if trial % 3 == 0:
            del data[rng.randrange(len(data)) :]
        for _ in range(rng.randint(0, 3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append((bytes(data), len(values)))
    read_some = 0
    for region, count in cases:
        python = metadata_reader._python_records(region, count, 1000)
        compiled = metadata_reader._compiled_records(region, count, 1000, metadata_reader._ROWS)
        assert compiled == python
        read_some += python is not None
    assert 5 <= read_some < len(cases)  # both outcomes were compared


def _general_records(buf: bytes, count: int) -> list[tuple[int, object, int]]:
    records = decode_records(buf[61:], 0, len(buf) - 61, count, 61)
    return [(1000 + r.offset_delta, *decode_metadata_value(r.value)) for r in records]


def test_a_snapshot_read_batch_by_batch_holds_the_records_read_whole(tmp_path: Path) -> None:
    values = frame_records(history(7)) * 40  # several 1,024-record chunks
    snapshot_id = SnapshotId(len(values), 3)
    write_snapshot(tmp_path, snapshot_id, values, last_contained_log_timestamp=1, now_ms=2)
    streamed = [
        (message, version)
        for batch in iter_snapshot_records(tmp_path, snapshot_id)
        for _, message, version in batch
    ]
    whole = [decode_metadata_value(v) for v in read_snapshot(tmp_path, snapshot_id).values]
    assert streamed == whole


def test_a_snapshot_without_its_footer_is_refused(tmp_path: Path) -> None:
    values = frame_records(history(8))
    snapshot_id = SnapshotId(len(values), 1)
    path = write_snapshot(tmp_path, snapshot_id, values, last_contained_log_timestamp=1, now_ms=2)
    data = path.read_bytes()
    last = 0
    position = 0
    while position < len(data):  # find the footer batch, the last one
        last = position
        position += read_batch_header(data, position).size_in_bytes
    path.write_bytes(data[:last])
    with pytest.raises(ValueError, match="has no footer"):
        for _ in iter_snapshot_records(tmp_path, snapshot_id):
            pass


async def _create(port: int, names: list[str]) -> dict[str, int]:
    with trio.fail_after(20):
        client = await KafkaClient.connect(HOST, port)
        try:
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=name, num_partitions=1, replication_factor=3
                    )
                    for name in names
                ]
            )
            response = await client.request(request, 7)
        finally:
            await client.aclose()
    return {t.name: t.error_code for t in response.topics}  # type: ignore[attr-defined]


def test_a_node_restarted_over_a_snapshot_and_a_log_tail_serves(tmp_path: Path) -> None:
    server = KwireServer(tmp_path / "node")
    generate(server.data_dir, 2_000, brokers=3, tail_topics=2, port=server.port)
    try:
        server.start()
        codes = trio.run(_create, server.port, ["t0000000", "t0000021", "fresh"])
    finally:
        server.close()
    # From the snapshot, from the log tail, and new: Kafka's CreateTopics answers.
    assert codes == {
        "t0000000": ErrorCode.TOPIC_ALREADY_EXISTS,
        "t0000021": ErrorCode.TOPIC_ALREADY_EXISTS,
        "fresh": ErrorCode.NONE,
    }
    assert "Loaded snapshot" in server.output()
