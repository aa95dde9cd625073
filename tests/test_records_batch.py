"""Round trips of record batches: every attribute combination, every codec, random data."""

from __future__ import annotations

import gzip
import itertools
import struct

import crcmod.predefined
import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwire.records import (
    CompressionType,
    Record,
    RecordBatch,
    TimestampType,
    batch_attributes,
    build_batch,
    compress,
    decode_batch,
    decode_batches,
    decompress,
    encode_batch,
    plain_batch_size,
    read_batch_header,
)
from kwire.records import batch as batch_module

RECORDS = (
    Record(offset_delta=0, timestamp_delta=0, key=None, value=b"\x01\x02\x03"),
    Record(offset_delta=1, timestamp_delta=7, key=b"k", value=None),
    Record(
        offset_delta=2,
        timestamp_delta=-3,
        key=b"",
        value=b"v" * 300,  # multi-byte length varint
        headers=(("h1", b"x"), ("h\u00e9", None), ("", b"")),
    ),
)


@pytest.mark.parametrize(
    ("codec", "timestamp_type", "transactional", "control", "delete_horizon"),
    list(
        itertools.product(
            CompressionType, TimestampType, (False, True), (False, True), (False, True)
        )
    ),
)
def test_attribute_combinations_round_trip(
    codec: CompressionType,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
    delete_horizon: bool,
) -> None:
    attrs = batch_attributes(
        compression=codec,
        timestamp_type=timestamp_type,
        transactional=transactional,
        control=control,
        delete_horizon=delete_horizon,
    )
    batch = RecordBatch(
        base_offset=1234567890123,
        partition_leader_epoch=7,
        attributes=attrs,
        last_offset_delta=2,
        base_timestamp=1_795_330_954_218,
        max_timestamp=1_795_330_954_225,
        producer_id=42,
        producer_epoch=3,
        base_sequence=9,
        records=RECORDS,
    )
    raw = encode_batch(batch)
    header = read_batch_header(raw)
    assert header.attributes == attrs
    assert header.compression == codec
    assert header.timestamp_type == timestamp_type
    assert header.is_transactional is transactional
    assert header.is_control is control
    assert header.has_delete_horizon is delete_horizon
    assert header.size_in_bytes == len(raw)
    assert header.records_count == 3 and header.magic == 2
    decoded, end = decode_batch(raw)
    assert end == len(raw)
    assert decoded == batch
    assert decoded.delete_horizon_ms == (batch.base_timestamp if delete_horizon else None)
    assert encode_batch(decoded) == raw


def test_header_fields_land_where_kafka_puts_them() -> None:
    batch = build_batch(RECORDS, base_offset=5, base_timestamp=1000, partition_leader_epoch=9)
    raw = encode_batch(batch)
    fields = struct.unpack_from(">qiibIhiqqqhii", raw)
    assert fields[0] == 5 and fields[1] == len(raw) - 12 and fields[2] == 9 and fields[3] == 2
    assert fields[6] == 2  # lastOffsetDelta
    assert fields[7] == 1000 and fields[8] == 1007  # base / max timestamp
    assert fields[9:] == (-1, -1, -1, 3)
    assert batch.timestamp_of(RECORDS[2]) == 997
    assert batch.last_offset == 7 and batch.next_offset == 8


def test_log_append_time_uses_max_timestamp() -> None:
    batch = build_batch(RECORDS, base_timestamp=5000, timestamp_type=TimestampType.LOG_APPEND_TIME)
    assert batch.max_timestamp == 5000
    assert all(batch.timestamp_of(r) == 5000 for r in RECORDS)


@pytest.mark.parametrize("codec", list(CompressionType))
def test_codecs_round_trip_large_payloads(codec: CompressionType) -> None:
    payload = bytes(range(256)) * 1200 + b"\x00" * 200_000  # spans several codec blocks
    records = [Record(offset_delta=i, value=payload[i * 997 :]) for i in range(3)]
    batch = build_batch(records, base_timestamp=1, compression=codec)
    raw = encode_batch(batch)
    if codec != CompressionType.NONE:
        assert len(raw) < len(payload)
    assert decode_batch(raw)[0] == batch


def test_kafka_framing_of_each_codec() -> None:
    data = b"kafka " * 20_000
    lz = compress(CompressionType.LZ4, data)
    # Lz4BlockOutputStream: magic, FLG 0x60, BD 0x40, HC 0x82; blocks of <= 64 KiB; end mark.
    assert lz[:7] == bytes.fromhex("04224d18604082")
    assert lz[-4:] == b"\x00\x00\x00\x00"
    assert lz4.frame.decompress(lz) == data  # a standard LZ4 frame too
    sn = compress(CompressionType.SNAPPY, data)
    assert sn[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    gz = compress(CompressionType.GZIP, data)
    assert gz[:10] == bytes.fromhex("1f8b08000000000000ff")
    assert gzip.decompress(gz) == data
    zs = compress(CompressionType.ZSTD, data)
    assert zs[:4] == bytes.fromhex("28b52ffd")


def test_reader_accepts_what_kafka_readers_accept() -> None:
    import cramjam

    data = b"plain snappy block " * 50
    raw_snappy = bytes(cramjam.snappy.compress_raw(data))
    assert decompress(CompressionType.SNAPPY, raw_snappy) == data
    two_streams = compress(CompressionType.SNAPPY, data) + compress(CompressionType.SNAPPY, b"+")
    assert decompress(CompressionType.SNAPPY, two_streams) == data + b"+"
    two_members = gzip.compress(b"a") + gzip.compress(b"b")
    assert decompress(CompressionType.GZIP, two_members) == b"ab"
    checked = lz4.frame.compress(data, block_linked=False, block_checksum=True, store_size=True)
    assert decompress(CompressionType.LZ4, checked) == data


def test_empty_record_list_round_trips() -> None:
    # Compaction can leave a batch with no records but its offsets intact.
    batch = RecordBatch(base_offset=10, last_offset_delta=4, base_timestamp=1, max_timestamp=2)
    raw = encode_batch(batch)
    assert decode_batch(raw)[0] == batch
    assert read_batch_header(raw).last_offset == 14


headers_st = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=16))), max_size=3
).map(tuple)
record_st = st.builds(
    Record,
    offset_delta=st.integers(0, 2**31 - 1),
    timestamp_delta=st.integers(-(2**40), 2**40),
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
    headers=headers_st,
    attributes=st.integers(0, 255),
)


@st.composite
def batches(draw: st.DrawFn) -> RecordBatch:
    return RecordBatch(
        base_offset=draw(st.integers(0, 2**62)),
        partition_leader_epoch=draw(st.integers(-1, 2**31 - 1)),
        attributes=draw(st.integers(0, 0x7F).filter(lambda a: a & 7 <= 4)),
        last_offset_delta=draw(st.integers(0, 2**31 - 1)),
        base_timestamp=draw(st.integers(-1, 2**50)),
        max_timestamp=draw(st.integers(-1, 2**50)),
        producer_id=draw(st.integers(-1, 2**62)),
        producer_epoch=draw(st.integers(-1, 2**15 - 1)),
        base_sequence=draw(st.integers(-1, 2**31 - 1)),
        records=tuple(draw(st.lists(record_st, max_size=6))),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(batches(), min_size=1, max_size=3))
def test_random_batches_round_trip(items: list[RecordBatch]) -> None:
    raw = b"".join(encode_batch(b) for b in items)
    assert list(decode_batches(raw)) == items


# Keyless, headerless records (how the controller writes metadata records) take a direct
# path; its bytes must be those of the general record writer, whatever the sizes.
plain_record_st = st.builds(
    Record,
    offset_delta=st.one_of(
        st.integers(0, 200),
        st.integers(0x1F00, 0x2100),  # one to two varint bytes
        st.integers(0xFFF00, 0x100100),  # three bytes to the general path
        st.integers(0, 10**7),
    ),
    value=st.one_of(st.binary(max_size=300), st.binary(min_size=8000, max_size=9000)),
)


@settings(max_examples=200, deadline=None)
@given(plain_record_st)
def test_keyless_headerless_records_are_written_as_the_general_writer_writes_them(
    record: Record,
) -> None:
    direct, general = bytearray(), bytearray()
    batch_module._encode_record(direct, record)
    batch_module._encode_any_record(general, record)
    assert direct == general
    batch = build_batch([record], base_timestamp=5)
    assert decode_batch(encode_batch(batch))[0] == batch


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=70),
            # the lengths where a varint or its count grows by a byte
            st.sampled_from([63, 64, 65, 8128, 8129, 8191, 8192]).map(lambda n: b"v" * n),
        ),
        min_size=1,
        max_size=150,
    )
)
def test_plain_batch_size_is_the_size_of_the_batch_the_controller_writes(
    values: list[bytes],
) -> None:
    batch = build_batch(
        [Record(offset_delta=i, value=v) for i, v in enumerate(values)], base_timestamp=1
    )
    assert plain_batch_size([len(v) for v in values]) == len(encode_batch(batch))


@given(st.binary(max_size=4096), st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_batch_crc_is_crc32c_whichever_implementation_computes_it(
    data: bytes, as_view: bool
) -> None:
    reference = crcmod.predefined.mkCrcFun("crc-32c")
    value = memoryview(bytearray(data)) if as_view else data
    assert batch_module.crc32c(value) == reference(data)
    assert batch_module.crc32c(b"123456789") == 0xE3069283  # CRC-32C's check value
