"""Byte vectors worked out by hand from the Kafka protocol guide.

Each vector is written field by field with the rule that produces it, so a reader can
check it against https://kafka.apache.org/protocol without running anything.
"""

from __future__ import annotations

import uuid

import pytest

from kwire.protocol.errors import EncodeError
from kwire.protocol.framing import decode_request, encode_request
from kwire.protocol.messages.api_versions import ApiVersionsRequest
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.describe_topic_partitions import DescribeTopicPartitionsRequest
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.vote import VoteRequest

# Every test here runs with the compiled readers and with the Python ones.
pytestmark = pytest.mark.usefixtures("codec_backend")


def hexbytes(text: str) -> bytes:
    """Hex with spaces and comments (from '#' to the end of a line) ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


API_VERSIONS_V3_WITH_HEADER = hexbytes(
    """
    0012                  # request_api_key 18 (int16)
    0003                  # request_api_version 3
    00000001              # correlation_id 1 (int32)
    0005 6b77697265       # client_id "kwire": the header's string is never compact
    00                    # header tagged fields: none (header v2 is flexible)
    06 6b77697265         # client_software_name: compact string, length 5 + 1
    04 302e31             # client_software_version "0.1": length 3 + 1
    00                    # body tagged fields: none
    """
)


def test_api_versions_request_v3_with_header() -> None:
    header = RequestHeader(
        request_api_key=18, request_api_version=3, correlation_id=1, client_id="kwire"
    )
    body = ApiVersionsRequest(client_software_name="kwire", client_software_version="0.1")
    assert encode_request(header, body) == API_VERSIONS_V3_WITH_HEADER
    decoded_header, decoded_body = decode_request(API_VERSIONS_V3_WITH_HEADER)
    assert decoded_header == header
    assert decoded_body == body


VOTE_V0 = hexbytes(
    """
    04 616263                    # cluster_id "abc": compact nullable string (3 + 1)
    02                           # topics: compact array of 1 (1 + 1)
    13 5f5f636c75737465725f6d657461646174 61  # topic_name "__cluster_metadata" (18 + 1)
    02                           # partitions: 1
    00000000                     # partition_index 0
    00000005                     # replica_epoch 5 (3.9.0 called it CandidateEpoch)
    00000001                     # replica_id 1 (3.9.0: CandidateId)
    00000004                     # last_offset_epoch 4
    00000000000003e8             # last_offset 1000 (int64)
    00                           # partition tagged fields
    00                           # topic tagged fields
    00                           # message tagged fields
    """
)


def test_vote_request_v0() -> None:
    request = VoteRequest(
        cluster_id="abc",
        topics=[
            VoteRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    VoteRequest.PartitionData(
                        partition_index=0,
                        replica_epoch=5,
                        replica_id=1,
                        last_offset_epoch=4,
                        last_offset=1000,
                    )
                ],
            )
        ],
    )
    assert request.encode(0) == VOTE_V0
    assert VoteRequest.decode(VOTE_V0, 0) == request


def test_vote_request_v0_drops_ignorable_fields_it_lacks() -> None:
    # VoterId and the directory ids arrived in v1 and are ignorable: v0 drops them.
    request = VoteRequest.decode(VOTE_V0, 0)
    request.voter_id = 3
    request.topics[0].partitions[0].voter_directory_id = uuid.UUID(int=9)
    assert request.encode(0) == VOTE_V0


DIRECTORY = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
HEARTBEAT_V1_TAGGED = hexbytes(
    """
    00000002                     # broker_id 2
    0000000000000007             # broker_epoch 7
    0000000000000064             # current_metadata_offset 100
    00                           # want_fence false
    01                           # want_shut_down true
    01                           # one tagged field
    00                           #   tag 0: offline_log_dirs
    11                           #   size 17: a compact array count and one uuid
    02                           #   compact array of 1
    00112233445566778899aabbccddeeff
    """
)


def test_tagged_fields_are_written_only_when_not_default() -> None:
    request = BrokerHeartbeatRequest(
        broker_id=2,
        broker_epoch=7,
        current_metadata_offset=100,
        want_shut_down=True,
        offline_log_dirs=[DIRECTORY],
    )
    assert request.encode(1) == HEARTBEAT_V1_TAGGED
    assert BrokerHeartbeatRequest.decode(HEARTBEAT_V1_TAGGED, 1) == request
    request.offline_log_dirs = []
    assert request.encode(1) == HEARTBEAT_V1_TAGGED[:22] + b"\x00"


def test_a_non_ignorable_field_cannot_be_dropped() -> None:
    # OfflineLogDirs is new in v1 and not ignorable: v0 cannot carry it.
    request = BrokerHeartbeatRequest(broker_id=2, offline_log_dirs=[DIRECTORY])
    with pytest.raises(EncodeError) as caught:
        request.encode(0)
    assert "offline_log_dirs" in str(caught.value)
    assert "BrokerHeartbeatRequest v0" in str(caught.value)


def test_nullable_struct_is_a_marker_byte_then_the_struct() -> None:
    topic = DescribeTopicPartitionsRequest.TopicRequest(name="a")
    without = DescribeTopicPartitionsRequest(topics=[topic], response_partition_limit=2000)
    expected_without = hexbytes(
        """
        02                # topics: compact array of 1
        02 61             # name "a"
        00                # topic tagged fields
        000007d0          # response_partition_limit 2000
        ff                # cursor: null (int8 -1)
        00                # message tagged fields
        """
    )
    assert without.encode(0) == expected_without
    cursor = DescribeTopicPartitionsRequest.Cursor(topic_name="a", partition_index=3)
    with_cursor = DescribeTopicPartitionsRequest(
        topics=[topic], response_partition_limit=2000, cursor=cursor
    )
    expected_with = expected_without[:-2] + hexbytes(
        """
        01                # cursor present (int8 1)
        02 61             # topic_name "a"
        00000003          # partition_index 3
        00                # cursor tagged fields
        00                # message tagged fields
        """
    )
    assert with_cursor.encode(0) == expected_with
    assert DescribeTopicPartitionsRequest.decode(expected_with, 0) == with_cursor
    assert DescribeTopicPartitionsRequest.decode(expected_without, 0).cursor is None
