"""Decoders allocate in proportion to the bytes they were given, never to a claimed count.

An array's count is checked against the bytes left at its element's minimum encoded size
before anything is read or reserved, with the same DecodeError on the Python and the C
path; a read that starts outside its buffer is a DecodeError on both paths too.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from strategies import decode_with_every_reader

from kwire.protocol._codec import read_uvarint, read_uvarint_tail
from kwire.protocol.errors import DecodeError
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.metadata import MetadataRequest

ROOT = Path(__file__).parents[1]

# FetchRequest v4 before its topics: replica_id, max_wait_ms, min_bytes, max_bytes (int32)
# and isolation_level (int8); then the topics count (int32). Count errors are located
# where the elements would start, after the count. A v4 FetchTopic is at least a
# string length (int16) and a partitions count (int32): 6 bytes.
FETCH_V4_HEAD = struct.Struct(">iiiibi")
FETCH_V4_TOPIC_MINIMUM = 6


def fetch_v4_body(size: int, count: int, filler: int = 0xFF) -> bytearray:
    """A FetchRequest v4 body of `size` bytes whose topics array claims `count` elements."""
    body = bytearray([filler]) * size
    FETCH_V4_HEAD.pack_into(body, 0, -1, 500, 1, 52428800, 0, count)
    return body


def fetch_v4_error(size: int, count: int) -> str:
    left = size - FETCH_V4_HEAD.size
    return (
        f"FetchRequest v4: field topics at offset {FETCH_V4_HEAD.size}: claims {count} "
        f"elements of at least {FETCH_V4_TOPIC_MINIMUM} bytes each but only {left} bytes remain"
    )


def peak_decode_allocation(data: bytes | bytearray) -> tuple[int, DecodeError]:
    """The peak traced allocation of one decode that must fail, and its error."""
    with pytest.raises(DecodeError) as caught:  # warm caches outside the measurement
        FetchRequest.decode(data, 4)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        with pytest.raises(DecodeError) as caught:
            FetchRequest.decode(data, 4)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return peak, caught.value


# -- the claimed count against the bytes left ------------------------------------------------


def test_a_count_equal_to_the_bytes_left_is_refused_before_any_element_is_read() -> None:
    size = 1_000_000
    count = size - FETCH_V4_HEAD.size  # one byte per element: Kafka's own bound lets it by
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(FetchRequest, fetch_v4_body(size, count), 4)
    assert str(caught.value) == fetch_v4_error(size, count)
    assert (caught.value.field, caught.value.offset) == ("topics", FETCH_V4_HEAD.size)


def test_a_count_that_fits_the_minimum_size_exactly_reads_its_elements() -> None:
    # 3 topics of 6 bytes in 18 bytes: the bound lets them by, and the first element
    # fails on its own bytes (a null topic name, 0xffff), the same way on both paths.
    size = FETCH_V4_HEAD.size + 3 * FETCH_V4_TOPIC_MINIMUM
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(FetchRequest, fetch_v4_body(size, 3), 4)
    assert (caught.value.field, caught.value.offset) == ("FetchTopic.topic", 23)
    assert "is null" in caught.value.reason


def test_one_byte_elements_keep_kafkas_bound_and_the_short_text() -> None:
    # DeleteTopicsRequest v4 names topics in a compact array of compact strings: one byte
    # each at least, so the bound is Kafka's own, one byte per element.
    data = bytes([4]) + bytes(2)
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(DeleteTopicsRequest, data, 4)
    assert str(caught.value) == (
        "DeleteTopicsRequest v4: field topic_names at offset 1: "
        "claims 3 elements but only 2 bytes remain"
    )


def test_a_count_that_fits_the_minimum_size_exactly_decodes_empty_elements() -> None:
    size = FETCH_V4_HEAD.size + 3 * FETCH_V4_TOPIC_MINIMUM
    decoded = decode_with_every_reader(FetchRequest, fetch_v4_body(size, 3, filler=0), 4)
    assert decoded.topics == [FetchRequest.FetchTopic(topic="", partitions=[])] * 3


def test_one_element_more_than_the_minimum_size_allows_is_refused() -> None:
    size = FETCH_V4_HEAD.size + 3 * FETCH_V4_TOPIC_MINIMUM + 5
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(FetchRequest, fetch_v4_body(size, 4, filler=0), 4)
    assert str(caught.value) == fetch_v4_error(size, 4)


def test_rigid_struct_arrays_are_bounded_by_their_elements_minimum() -> None:
    # MetadataRequest v0 is one array of topics, each at least a name's int16 length: with
    # 7 bytes left, 4 topics cannot fit.
    data = struct.pack(">i", 4) + bytes(7)
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(MetadataRequest, data, 0)
    assert str(caught.value) == (
        "MetadataRequest v0: field topics at offset 4: "
        "claims 4 elements of at least 2 bytes each but only 7 bytes remain"
    )


def test_compact_struct_arrays_count_the_elements_tag_count_byte() -> None:
    # MetadataRequest v9 is flexible: a MetadataRequestTopic is at least a compact name
    # and its tag count, 2 bytes; a compact count 3 (encoded 4) then claims 3 * 2 > 5.
    data = bytes([4]) + bytes(5)
    with pytest.raises(DecodeError) as caught:
        decode_with_every_reader(MetadataRequest, data, 9)
    assert (
        caught.value.reason == "claims 3 elements of at least 2 bytes each but only 5 bytes remain"
    )


def test_a_hostile_megabyte_body_peaks_at_kilobytes_on_each_path(codec_backend: str) -> None:
    size = 1_000_000
    peak, error = peak_decode_allocation(fetch_v4_body(size, size - FETCH_V4_HEAD.size))
    assert str(error) == fetch_v4_error(size, size - FETCH_V4_HEAD.size)
    # Before the bound the compiled reader reserved the claimed million list entries: 8 MB.
    assert peak < 16 * 1024, f"{codec_backend}: decoding peaked at {peak} bytes"


def test_a_count_within_the_bound_reserves_at_most_a_few_times_the_body(
    codec_backend: str,
) -> None:
    size = 600_000
    count = (size - FETCH_V4_HEAD.size) // FETCH_V4_TOPIC_MINIMUM
    peak, error = peak_decode_allocation(fetch_v4_body(size, count))
    # The first topic's name is null (0xffff), found after its 2-byte length.
    assert (error.field, error.offset) == ("FetchTopic.topic", FETCH_V4_HEAD.size + 2)
    # The compiled reader reserves count pointers: 8 / 6 of the body at most.
    assert peak <= 2 * size, f"{codec_backend}: decoding peaked at {peak} bytes"


HOSTILE_FRAME_SCRIPT = textwrap.dedent(
    """
    import json, resource, struct, sys
    from kwire.protocol._codec import compiled_readers_available, use_accelerator
    from kwire.protocol.errors import DecodeError
    from kwire.protocol.framing import decode_request
    from kwire.protocol.messages.fetch import FetchRequest

    size, count, limit = (int(a) for a in sys.argv[1:4])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    header = struct.pack(">hhih", 1, 4, 7, -1)  # Fetch v4, correlation 7, null client id
    frame = bytearray(b"\\xff") * (len(header) + size)
    frame[: len(header)] = header
    struct.pack_into(">iiiibi", frame, len(header), -1, 500, 1, 52428800, 0, count)
    body = memoryview(frame)[len(header):]
    outcomes = {}
    paths = ("python", "compiled") if compiled_readers_available() else ("python",)
    for path in paths:
        use_accelerator(path == "compiled")
        for entry, decode in (
            ("decode", lambda: FetchRequest.decode(body, 4)),
            ("decode_request", lambda: decode_request(frame)),
        ):
            try:
                decode()
                outcomes[f"{path} {entry}"] = "decoded"
            except (DecodeError, MemoryError) as error:
                outcomes[f"{path} {entry}"] = f"{type(error).__name__}: {error}"
    print(json.dumps(outcomes))
    """
)


@pytest.mark.parametrize(
    "count_per_element",
    [pytest.param(1, id="a-count-of-the-bytes-left"), pytest.param(6, id="a-count-within-bound")],
)
def test_a_hostile_100_mib_frame_under_a_600_mib_limit_raises_decode_error(
    count_per_element: int,
) -> None:
    size = 100 * 1024 * 1024
    count = (size - FETCH_V4_HEAD.size) // count_per_element
    result = subprocess.run(
        [sys.executable, "-c", HOSTILE_FRAME_SCRIPT, str(size), str(count), str(600 * 2**20)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    if count_per_element == 1:
        expected = "DecodeError: " + fetch_v4_error(size, count)
    else:  # the bound lets the count by; the first topic's name is null (0xffff)
        expected = (
            "DecodeError: FetchRequest v4: field FetchTopic.topic at offset 23: "
            "is null, but the field is not nullable in this version"
        )
    # The framed body starts after a 10-byte header: offsets there are 10 further on.
    framed = expected.replace("offset 21:", "offset 31:").replace("offset 23:", "offset 33:")
    for name, outcome in outcomes.items():
        assert outcome == (framed if name.endswith("decode_request") else expected), name


# -- positions outside the buffer ----------------------------------------------------------


@pytest.mark.usefixtures("codec_backend")
@pytest.mark.parametrize("pos", [-1, -21, -(2**40), 22, 2**40])
def test_a_read_that_starts_outside_the_buffer_raises_the_same_decode_error(pos: int) -> None:
    data = FetchRequest(max_wait_ms=500, min_bytes=1).encode(4)
    assert len(data) == 21
    with pytest.raises(DecodeError) as caught:
        FetchRequest.read(data, pos, 4)
    assert str(caught.value) == (
        f"FetchRequest v4: field (start) at offset {pos}: "
        "the read starts outside the 21-byte buffer"
    )


@pytest.mark.usefixtures("codec_backend")
def test_a_read_inside_a_larger_buffer_returns_the_message_and_its_end() -> None:
    message = FetchRequest(max_wait_ms=500, min_bytes=1)
    data = b"\x01\x02\x03" + message.encode(4) + b"\x04"
    assert FetchRequest.read(data, 3, 4) == (message, 24)


@pytest.mark.usefixtures("codec_backend")
def test_a_read_at_the_very_end_is_a_short_read_not_a_position_error() -> None:
    data = FetchRequest().encode(4)
    with pytest.raises(DecodeError) as caught:
        FetchRequest.read(data, len(data), 4)
    assert (caught.value.field, caught.value.offset) == ("replica_id", 21)


def test_the_varint_helpers_refuse_a_negative_position() -> None:
    with pytest.raises(DecodeError, match=r"field \(start\) at offset -1: the read starts"):
        read_uvarint(b"\x05", -1, "count")
    with pytest.raises(DecodeError, match=r"field \(start\) at offset -2: the read starts"):
        read_uvarint_tail(b"\x85\x01", -2, 0x85, "count")
    assert read_uvarint(b"\x85\x01", 0, "count") == (133, 2)
