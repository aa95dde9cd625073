"""Strings decode as Kafka's readers decode them: new String(bytes, UTF_8), which turns
malformed bytes into U+FFFD rather than failing, on both the Python and the C readers."""

from __future__ import annotations

import pytest
from strategies import decode_with_every_reader

from kwire.protocol.messages.create_topics import CreateTopicsRequest

REPLACEMENT = "\ufffd"


def create_topics_naming(raw: bytes) -> bytes:
    """CreateTopics v7 (flexible: compact strings) whose only topic name is ``raw``."""
    placeholder = b"T" * len(raw)
    request = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=placeholder.decode(), num_partitions=1, replication_factor=1
            )
        ]
    )
    data = request.encode(7)
    assert data.count(placeholder) == 1
    return data.replace(placeholder, raw)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"\xff\xfe", REPLACEMENT * 2),  # bytes that never start a sequence
        (b"ab\xc3", "ab" + REPLACEMENT),  # a sequence cut short at the end
        (b"caf\xc3\xa9", "café"),  # valid UTF-8 is unchanged
    ],
    ids=["invalid bytes", "truncated sequence", "valid"],
)
def test_malformed_utf8_becomes_replacement_characters_on_every_reader(
    raw: bytes, decoded: str
) -> None:
    message = decode_with_every_reader(CreateTopicsRequest, create_topics_naming(raw), 7)
    assert [t.name for t in message.topics] == [decoded]
