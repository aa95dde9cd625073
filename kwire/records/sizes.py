"""Sizes of record batches before they are built: how the controller checks a write
against the raft batch limit (KafkaRaftClient.MAX_BATCH_SIZE_BYTES) without encoding it."""

from __future__ import annotations

from collections.abc import Sequence

from kwire.records.batch import RECORD_BATCH_OVERHEAD


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def plain_batch_size(value_lengths: Sequence[int]) -> int:
    """Bytes of the uncompressed batch ``build_batch`` makes of keyless, headerless records
    with values of these lengths, offset deltas 0, 1, ... and timestamp delta 0: how the
    controller writes metadata records. Kafka's BatchAccumulator measures the same to
    refuse a batch over its maximum size."""
    total = RECORD_BATCH_OVERHEAD
    for offset_delta, length in enumerate(value_lengths):
        # plain_record_size, with one-byte varints (values below 64) counted inline
        body = (
            4
            + (1 if offset_delta < 64 else _varint_size(offset_delta))
            + (1 if length < 64 else _varint_size(length))
            + length
        )
        total += (1 if body < 64 else _varint_size(body)) + body
    return total


def plain_record_size(offset_delta: int, value_length: int) -> int:
    """Bytes of one record of ``plain_batch_size``'s kind inside its batch."""
    # attributes, timestamp delta 0, offset delta, null key, value, no headers
    body = 3 + _varint_size(offset_delta) + _varint_size(value_length) + value_length + 1
    return _varint_size(body) + body
