"""Hostile input: each case raises CorruptRecordError (a ValueError) with a reason and
a byte offset; never IndexError, struct.error, a hang or an unbounded allocation."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwire.records import (
    CompressionType,
    ControlRecordType,
    CorruptRecordError,
    IncompleteBatchError,
    Record,
    build_batch,
    decode_batch,
    decode_batches,
    decode_control_record_key,
    decompress,
    encode_batch,
    encode_control_record_key,
    frame_metadata_record,
    read_batch_header,
    unframe_metadata_record,
)
from kwire.records.batch import crc32c

GOOD = encode_batch(
    build_batch(
        [Record(offset_delta=i, value=b"value-%d" % i, headers=(("h", b"v"),)) for i in range(3)],
        base_offset=100,
        base_timestamp=1_700_000_000_000,
    )
)


def with_crc(raw: bytes | bytearray) -> bytes:
    """Recompute the CRC so a mutation reaches the record parser."""
    out = bytearray(raw)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def rebuild(records_region: bytes, count: int, attributes: int = 0) -> bytes:
    head = bytearray(GOOD[:61])
    struct.pack_into(">i", head, 8, 61 - 12 + len(records_region))
    struct.pack_into(">h", head, 21, attributes)
    struct.pack_into(">i", head, 57, count)
    return with_crc(bytes(head) + records_region)


def test_flipped_byte_anywhere_in_crc_region_is_caught() -> None:
    for i in range(21, len(GOOD)):
        bad = bytearray(GOOD)
        bad[i] ^= 0x40
        with pytest.raises(CorruptRecordError, match="CRC mismatch") as info:
            decode_batch(bad)
        assert info.value.offset == 0


def test_crc_verification_can_be_skipped() -> None:
    bad = bytearray(GOOD)
    bad[-1] ^= 0x01  # last byte of the last header value
    batch, _ = decode_batch(bad, verify_crc=False)
    assert batch.records[2].headers[0][1] == bytes([ord("v") ^ 1])


def test_every_truncation_raises_incomplete() -> None:
    two = GOOD + GOOD
    for cut in range(1, len(two)):
        if cut == len(GOOD):
            continue
        with pytest.raises(IncompleteBatchError):
            list(decode_batches(two[:cut]))
        # A fetch response may end mid-batch: the complete prefix is still readable.
        assert len(list(decode_batches(two[:cut], allow_truncated_tail=True))) == (
            1 if cut > len(GOOD) else 0
        )


def test_error_offset_points_at_the_bad_batch() -> None:
    bad = bytearray(GOOD + GOOD)
    bad[len(GOOD) + 16] = 1  # magic of the second batch
    with pytest.raises(CorruptRecordError, match="magic") as info:
        list(decode_batches(bad))
    assert info.value.offset == len(GOOD)


@pytest.mark.parametrize("length", [-1, 0, 48, -(2**31)])
def test_batch_length_below_minimum(length: int) -> None:
    bad = bytearray(GOOD)
    struct.pack_into(">i", bad, 8, length)
    with pytest.raises(CorruptRecordError, match="minimum"):
        read_batch_header(bad)


def test_huge_batch_length_is_incomplete_not_allocated() -> None:
    bad = bytearray(GOOD)
    struct.pack_into(">i", bad, 8, 2**31 - 1)
    with pytest.raises(IncompleteBatchError):
        decode_batch(bad)


def test_negative_record_count() -> None:
    bad = bytearray(GOOD)
    struct.pack_into(">i", bad, 57, -5)
    with pytest.raises(CorruptRecordError, match="negative record count"):
        decode_batch(with_crc(bad))


@pytest.mark.parametrize("count", [0, 2, 4, 2**31 - 1])
def test_record_count_disagreeing_with_payload(count: int) -> None:
    bad = bytearray(GOOD)
    struct.pack_into(">i", bad, 57, count)
    with pytest.raises(CorruptRecordError):
        decode_batch(with_crc(bad))


@pytest.mark.parametrize(
    ("region", "reason"),
    [
        (b"\x01", "bad record length"),  # length -1
        (b"\x7e" + b"\x00" * 10, "bad record length"),  # length 63, only 10 bytes
        (b"\xff" * 12, "longer than 5 bytes"),  # runaway varint
        (b"\x0e\x00\x00\x00\x03\x00\x00\x00", "negative field length"),  # key length -2
        (b"\x0c\x00\x00\x00\x01\x01\x03", "negative header count"),
        (b"\x0e\x00\x00\x00\x01\x01\x00\x00", "used 6"),  # declared 7, used 6
        (b"\x0c\x00\x00\x00\x01\x0a\x00", "overruns record"),  # value length 5, none there
    ],
)
def test_hostile_records(region: bytes, reason: str) -> None:
    with pytest.raises(CorruptRecordError, match=reason) as info:
        decode_batch(rebuild(region, 1))
    assert info.value.offset is not None and info.value.offset >= 61


def test_unknown_codec() -> None:
    with pytest.raises(CorruptRecordError, match="codec id 5") as info:
        decode_batch(rebuild(b"", 0, attributes=5))
    assert info.value.offset == 0


@pytest.mark.parametrize("codec", [c for c in CompressionType if c != CompressionType.NONE])
def test_decompression_bomb_is_refused(codec: CompressionType) -> None:
    big = build_batch(
        [Record(offset_delta=0, value=b"\x00" * 8_000_000)], base_timestamp=0, compression=codec
    )
    raw = encode_batch(big)
    assert len(raw) < 400_000
    with pytest.raises(CorruptRecordError, match="exceeds limit") as info:
        decode_batch(raw, max_uncompressed_size=1_000_000)
    assert info.value.offset == 0
    assert len(decode_batch(raw)[0].records[0].value or b"") == 8_000_000


def test_snappy_block_claiming_huge_size_is_refused_before_allocation() -> None:
    header = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    claim = b"\xff\xff\xff\xff\x0f"  # uncompressed length 2**32-1
    with pytest.raises(CorruptRecordError, match="exceeds limit"):
        decompress(CompressionType.SNAPPY, header + struct.pack(">i", 6) + claim + b"\x00")
    with pytest.raises(CorruptRecordError, match="chunk length"):
        decompress(CompressionType.SNAPPY, header + struct.pack(">i", 2**31 - 1) + b"xx")


@pytest.mark.parametrize(
    ("codec", "payload"),
    [
        (CompressionType.GZIP, zlib.compress(b"not gzip")),
        (CompressionType.GZIP, b""),
        (CompressionType.LZ4, bytes.fromhex("04224d184040") + b"\x00" * 8),  # dependent blocks
        (CompressionType.LZ4, bytes.fromhex("04224d18604000") + b"\x00" * 4),  # bad HC
        (CompressionType.LZ4, b"\x00" * 16),
        (CompressionType.ZSTD, b"\x28\xb5\x2f\xfd\x00"),
        (CompressionType.ZSTD, b""),
        (CompressionType.SNAPPY, b"\x05garbage"),
    ],
)
def test_malformed_compressed_payloads(codec: CompressionType, payload: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(codec, payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_batches_only_raise_corrupt_record_error(data: st.DataObject) -> None:
    codec = data.draw(st.sampled_from(list(CompressionType)))
    raw = bytearray(
        encode_batch(
            build_batch(
                [Record(offset_delta=i, key=b"k", value=b"x" * i) for i in range(4)],
                base_timestamp=0,
                compression=codec,
            )
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(CorruptRecordError):
        list(decode_batches(bytes(raw[:cut]), verify_crc=False, max_uncompressed_size=1 << 20))


def test_metadata_framing_round_trip_and_errors() -> None:
    for api_key, version in [(0, 0), (3, 1), (127, 127), (128, 0), (300, 200), (32767, 32767)]:
        framed = frame_metadata_record(api_key, version, b"body")
        got_key, got_version, body = unframe_metadata_record(framed)
        assert (got_key, got_version, bytes(body)) == (api_key, version, b"body")
    assert frame_metadata_record(12, 0, b"\x00") == b"\x01\x0c\x00\x00"
    with pytest.raises(CorruptRecordError, match="frame version 0"):
        unframe_metadata_record(b"\x00\x01\x00")
    with pytest.raises(CorruptRecordError, match="unknown metadata frame version 2"):
        unframe_metadata_record(b"\x02\x01\x00")
    with pytest.raises(CorruptRecordError, match="too large"):
        unframe_metadata_record(b"\x01\x80\x80\x02\x00")  # api key 32768
    with pytest.raises(CorruptRecordError, match="truncated"):
        unframe_metadata_record(b"\x01\x05")
    with pytest.raises(CorruptRecordError, match="null value"):
        unframe_metadata_record(None)
    with pytest.raises(CorruptRecordError):
        unframe_metadata_record(b"")


def test_control_record_keys() -> None:
    for kind in ControlRecordType:
        if kind == ControlRecordType.UNKNOWN:
            with pytest.raises(ValueError):
                encode_control_record_key(kind)
            continue
        key = encode_control_record_key(kind)
        assert key == struct.pack(">hh", 0, int(kind))
        assert decode_control_record_key(key).type == kind
    assert decode_control_record_key(struct.pack(">hh", 1, 3)).type == (
        ControlRecordType.SNAPSHOT_HEADER
    )
    assert decode_control_record_key(struct.pack(">hh", 0, 99)).type == ControlRecordType.UNKNOWN
    with pytest.raises(CorruptRecordError, match="4 bytes"):
        decode_control_record_key(b"\x00\x00\x02")
    with pytest.raises(CorruptRecordError, match="4 bytes"):
        decode_control_record_key(None)
    with pytest.raises(CorruptRecordError, match="negative"):
        decode_control_record_key(struct.pack(">hh", -1, 2))
