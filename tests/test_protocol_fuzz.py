"""Hostile bytes against every generated decoder, the request framing and FrameBuffer.

A decoder may only raise DecodeError, located (message, version, field, offset), or
UnsupportedVersionError for a version its schema lacks; it must finish quickly and must
not allocate in proportion to a length prefix instead of to the bytes it was given.
"""

from __future__ import annotations

import signal
import struct
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    CLASS_VERSIONS,
    MESSAGE_CLASSES,
    decode_with_every_reader,
    messages,
    normalise,
    pair_id,
    populated,
)

from kwire.protocol._codec import Message, compiled_readers_available, use_accelerator
from kwire.protocol.errors import (
    DecodeError,
    EncodeError,
    ProtocolError,
    UnsupportedVersionError,
)
from kwire.protocol.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameBuffer,
    FrameTooLargeError,
    decode_request,
    encode_request,
    size_prefixed,
)
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS

# CPU seconds one decode may take (process time, so that a loaded machine's waits do not
# count; a decoder is pure computation, so a hang shows as CPU time).
TIME_LIMIT_SECONDS = 1.0

FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Length prefixes and varints a hostile peer would send: int32/int16 maxima, -1 and
# INT_MIN as unsigned, 5-byte varints up to 2**35 - 1, and varints that never end.
HOSTILE_PATTERNS: tuple[bytes, ...] = (
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x7f\xff",
    b"\xff\xff",
    b"\xff\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\x07",
    b"\xff\xff\xff\xff\x7f",
    b"\x80\x80\x80\x80\x80\x80",
)


class DecodeTookTooLong(BaseException):  # noqa: N818 - BaseException so no codec catches it
    """Raised by the CPU-time alarm when a decode outlives TIME_LIMIT_SECONDS."""


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise DecodeTookTooLong(f"still decoding after {seconds} s: {what}")

    previous = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def assert_located(error: DecodeError, cls: type[Message], version: int, data: bytes) -> None:
    """A DecodeError names the message, version, a field and an offset in the buffer."""
    assert error.message == cls.NAME, error
    assert error.version == version, error
    assert isinstance(error.field, str) and error.field, error
    assert error.field != "?", f"the safety net caught it, no generated check did: {error}"
    assert isinstance(error.offset, int) and 0 <= error.offset <= len(data), error
    text = str(error)
    for part in (cls.NAME, f"v{version}", error.field, str(error.offset)):
        assert part in text, (part, text)


def decode_or_decode_error(cls: type[Message], version: int, data: bytes) -> Any:
    """Decode `data`; return the message, or None after checking the DecodeError.

    Any other exception fails the test, as does a decode running past the time limit.
    """
    started = time.process_time()
    with time_limit(TIME_LIMIT_SECONDS, f"{cls.NAME} v{version} on {data.hex()}"):
        try:
            result = decode_with_every_reader(cls, data, version)
        except DecodeError as error:
            assert_located(error, cls, version, data)
            result = None
        except Exception as error:
            pytest.fail(
                f"{cls.NAME} v{version} raised {type(error).__name__}: {error} "
                f"decoding {data.hex()}"
            )
    elapsed = time.process_time() - started
    assert elapsed < TIME_LIMIT_SECONDS, f"{cls.NAME} v{version} took {elapsed:.2f} s"
    return result


def reencode_if_decoded(decoded: Any, version: int) -> None:
    """Whatever a decoder accepts encodes again, or fails with EncodeError."""
    if decoded is None:
        return
    with suppress(EncodeError):
        decoded.encode(version)


# -- random and mutated bytes ----------------------------------------------------------------

class_versions = st.sampled_from(CLASS_VERSIONS)


@settings(FUZZ_SETTINGS, max_examples=2000)
@given(pair=class_versions, data=st.binary(max_size=200))
def test_random_bytes_raise_only_located_decode_errors(
    pair: tuple[type[Message], int], data: bytes
) -> None:
    cls, version = pair
    reencode_if_decoded(decode_or_decode_error(cls, version, data), version)


@st.composite
def mutated(draw: st.DrawFn, encoded: bytes) -> bytes:
    """`encoded` after one to three bit flips, cuts, insertions or hostile lengths."""
    data = bytearray(encoded)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        kind = draw(
            st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite", "hostile"])
        )
        if kind == "flip" and data:
            index = min(position, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[position : position + len(chunk)] = chunk
        else:
            pattern = draw(st.sampled_from(HOSTILE_PATTERNS))
            width = len(pattern) if draw(st.booleans()) else 0  # overwrite or insert
            data[position : position + width] = pattern
    return bytes(data)


@settings(FUZZ_SETTINGS, max_examples=2000)
@given(pair=class_versions, data=st.data())
def test_mutated_valid_encodings_raise_only_located_decode_errors(
    pair: tuple[type[Message], int], data: st.DataObject
) -> None:
    cls, version = pair
    message = data.draw(messages(cls, version), label="message")
    bad = data.draw(mutated(message.encode(version)), label="mutated")
    reencode_if_decoded(decode_or_decode_error(cls, version, bad), version)


@settings(FUZZ_SETTINGS, max_examples=800)
@given(pair=class_versions, data=st.data())
def test_valid_encodings_read_at_another_version_raise_only_located_decode_errors(
    pair: tuple[type[Message], int], data: st.DataObject
) -> None:
    cls, version = pair
    other = data.draw(st.integers(cls.LOWEST_VERSION, cls.HIGHEST_VERSION), label="other")
    encoded = data.draw(messages(cls, version), label="message").encode(version)
    reencode_if_decoded(decode_or_decode_error(cls, other, encoded), other)


# -- deterministic sweeps ------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_every_truncation_of_a_full_message_raises_a_located_decode_error(
    cls: type[Message],
) -> None:
    # A strict prefix of a valid encoding never decodes: the parser takes the same path
    # as on the whole buffer and runs out of bytes on the way.
    for version in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1):
        encoded = populated(cls, version).encode(version)
        assert normalise(decode_with_every_reader(cls, encoded, version)) == normalise(
            populated(cls, version)
        )
        for length in range(len(encoded)):
            assert decode_or_decode_error(cls, version, encoded[:length]) is None, (
                f"{cls.NAME} v{version} decoded the first {length} of {len(encoded)} bytes"
            )


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_hostile_lengths_at_every_offset_raise_only_located_decode_errors(
    cls: type[Message],
) -> None:
    patterns = (
        b"\x7f\xff\xff\xff",
        b"\xff\xff\xff\xff",
        b"\x7f\xff",
        b"\xff\xff\xff\xff\x0f",
        b"\xff\xff\xff\xff\x7f",
    )
    for version in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1):
        encoded = populated(cls, version).encode(version)
        for position in range(len(encoded) + 1):
            for pattern in patterns:
                overwritten = encoded[:position] + pattern + encoded[position + len(pattern) :]
                decode_or_decode_error(cls, version, overwritten)
        # A hostile length as the very first field, with little behind it.
        for pattern in HOSTILE_PATTERNS:
            decode_or_decode_error(cls, version, pattern + bytes(16))


# A handful of large messages mixing strings, bytes, records, uuids, nested arrays and
# tagged fields, in rigid and flexible versions.
ALLOCATION_NAMES = {
    "ProduceRequest",
    "MetadataResponse",
    "BrokerRegistrationRequest",
    "VotersRecord",
}
ALLOCATION_CASES = [
    (FetchResponse, 4),
    (FetchResponse, FetchResponse.HIGHEST_VERSION),
    (FetchRequest, FetchRequest.HIGHEST_VERSION),
    *[(cls, cls.HIGHEST_VERSION) for cls in MESSAGE_CLASSES if cls.NAME in ALLOCATION_NAMES],
]


def _peak_allocation(cls: type[Message], version: int, data: bytes) -> int:
    """Peak bytes traced while the current reader decodes `data` (DecodeError allowed;
    the readers' agreement on every such input is checked by the tests above)."""
    with suppress(DecodeError):  # warm caches first (uuids, struct formats, error paths)
        cls.decode(data, version)
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    with suppress(DecodeError):
        cls.decode(data, version)
    return tracemalloc.get_traced_memory()[1] - baseline


def test_the_allocation_cases_are_found() -> None:
    assert {cls.NAME for cls, _ in ALLOCATION_CASES} >= ALLOCATION_NAMES


@pytest.mark.parametrize(
    ("cls", "version"), ALLOCATION_CASES, ids=[pair_id(c, v) for c, v in ALLOCATION_CASES]
)
def test_hostile_lengths_do_not_allocate_beyond_a_small_multiple_of_the_input(
    cls: type[Message], version: int
) -> None:
    encoded = populated(cls, version).encode(version)
    worst: tuple[float, int, bytes, int] = (0.0, 0, b"", 0)
    # One reader at a time: switching readers costs a pass over every class.
    for compiled in (False, True) if compiled_readers_available() else (False,):
        use_accelerator(compiled)
        tracemalloc.start()
        try:
            for position in range(len(encoded) + 1):
                for pattern in HOSTILE_PATTERNS:
                    for data in (
                        encoded[:position] + pattern + encoded[position + len(pattern) :],
                        encoded[:position] + pattern + encoded[position:],
                    ):
                        peak = _peak_allocation(cls, version, data)
                        # Decoded objects cost tens of bytes per input byte, plus a
                        # constant for the error; a length-sized buffer would cost megabytes.
                        limit = 32 * 1024 + 32 * len(data)
                        assert peak <= limit, (
                            f"{cls.NAME} v{version} ({'C' if compiled else 'Python'} reader): "
                            f"{pattern.hex()} at {position} made decoding allocate {peak} "
                            f"bytes for a {len(data)}-byte input"
                        )
                        worst = max(worst, (peak / len(data), peak, pattern, position))
        finally:
            tracemalloc.stop()
            use_accelerator(True)
    print(f"{cls.NAME} v{version}: worst peak {worst[1]} bytes ({worst[0]:.1f}x input)")


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_decoding_at_a_version_outside_the_schema_raises_unsupported_version(
    cls: type[Message],
) -> None:
    encoded = populated(cls, cls.HIGHEST_VERSION).encode(cls.HIGHEST_VERSION)
    for version in sorted({-1, cls.LOWEST_VERSION - 1, cls.HIGHEST_VERSION + 1, 32767, 2**31}):
        with pytest.raises(UnsupportedVersionError, match=cls.NAME):
            cls.decode(encoded, version)
        with pytest.raises(UnsupportedVersionError, match=cls.NAME):
            cls.read(memoryview(b""), 0, version)


# -- framing ------------------------------------------------------------------------------

API_KEYS = sorted(APIS)


def _decode_request_or_protocol_error(frame: bytes) -> Any:
    started = time.process_time()
    with time_limit(TIME_LIMIT_SECONDS, f"decode_request on {frame.hex()}"):
        try:
            result = decode_request(frame)
        except ProtocolError:
            result = None
        except Exception as error:
            pytest.fail(f"decode_request raised {type(error).__name__}: {error} on {frame.hex()}")
    assert time.process_time() - started < TIME_LIMIT_SECONDS, frame.hex()
    return result


@st.composite
def request_frames(draw: st.DrawFn) -> tuple[bytes, RequestHeader, Message]:
    api = APIS[draw(st.sampled_from(API_KEYS))]
    version = draw(st.integers(api.lowest_version, api.highest_version))
    header = RequestHeader(
        request_api_key=api.api_key,
        request_api_version=version,
        correlation_id=draw(st.integers(-(2**31), 2**31 - 1)),
    )
    header_version = api.request_header_version(version)
    if header_version >= 1:
        header.client_id = draw(st.none() | st.text(max_size=10))
    body = draw(messages(api.request, version))
    return encode_request(header, body), header, body


@settings(FUZZ_SETTINGS, max_examples=300)
@given(frame=request_frames())
def test_valid_request_frames_decode_to_their_header_and_body(
    frame: tuple[bytes, RequestHeader, Message],
) -> None:
    encoded, header, body = frame
    decoded_header, decoded_body = decode_request(encoded)
    assert normalise(decoded_header) == normalise(header)
    assert normalise(decoded_body) == normalise(body)


@settings(FUZZ_SETTINGS, max_examples=1000)
@given(data=st.data())
def test_random_and_mutated_request_frames_raise_only_protocol_errors(
    data: st.DataObject,
) -> None:
    source = data.draw(st.sampled_from(["random", "preamble", "mutated"]), label="source")
    if source == "random":
        frame = data.draw(st.binary(max_size=64), label="frame")
    elif source == "preamble":
        # A plausible or hostile api key and version in front of random bytes.
        key = data.draw(st.one_of(st.sampled_from(API_KEYS), st.integers(-(2**15), 2**15 - 1)))
        version = data.draw(st.integers(-(2**15), 2**15 - 1) | st.integers(-1, 20))
        correlation = data.draw(st.integers(-(2**31), 2**31 - 1))
        frame = struct.pack(">hhi", key, version, correlation) + data.draw(
            st.binary(max_size=64), label="rest"
        )
    else:
        encoded, _, _ = data.draw(request_frames(), label="valid frame")
        frame = data.draw(mutated(encoded), label="frame")
    _decode_request_or_protocol_error(frame)


@pytest.mark.parametrize(
    "size",
    [-1, -(2**31), DEFAULT_MAX_FRAME_BYTES + 1, 2**31 - 1],
    ids=["minus-one", "int-min", "one-above-limit", "int-max"],
)
def test_frame_buffer_rejects_a_hostile_size_before_buffering_the_frame(size: int) -> None:
    frames = FrameBuffer()
    prefix = struct.pack(">i", size)
    for byte in prefix[:-1]:  # nothing to decide until the whole prefix is there
        frames.feed(bytes([byte]))
        assert frames.next_frame() is None
    tracemalloc.start()
    try:
        frames.feed(prefix[-1:])
        with pytest.raises(FrameTooLargeError) as caught:
            frames.next_frame()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(caught.value, ProtocolError)
    assert str(size) in str(caught.value)
    assert frames.buffered == 4
    assert peak < 64 * 1024


def test_frame_buffer_applies_its_own_limit_inclusively() -> None:
    frames = FrameBuffer(max_frame_bytes=16)
    frames.feed(size_prefixed(bytes(16)))
    assert frames.next_frame() == bytes(16)
    frames.feed(struct.pack(">i", 17))
    with pytest.raises(FrameTooLargeError):
        frames.next_frame()


@settings(FUZZ_SETTINGS, max_examples=100)
@given(
    payloads=st.lists(st.binary(max_size=40), max_size=5),
    cuts=st.lists(st.integers(0, 250), max_size=8),
)
def test_frame_buffer_returns_frames_however_the_stream_is_split(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(size_prefixed(p) for p in payloads)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    frames = FrameBuffer()
    received = []
    for start, end in zip(points, points[1:], strict=False):
        frames.feed(stream[start:end])
        while (frame := frames.next_frame()) is not None:
            received.append(frame)
    assert received == payloads
    assert frames.buffered == 0


@settings(FUZZ_SETTINGS, max_examples=200)
@given(chunks=st.lists(st.binary(max_size=12), max_size=8), limit=st.integers(0, 64))
def test_frame_buffer_fed_random_bytes_yields_frames_or_frame_too_large(
    chunks: list[bytes], limit: int
) -> None:
    frames = FrameBuffer(max_frame_bytes=limit)
    for chunk in chunks:
        frames.feed(chunk)
        try:
            while (frame := frames.next_frame()) is not None:
                assert len(frame) <= limit
        except FrameTooLargeError:
            return
