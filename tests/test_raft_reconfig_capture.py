"""The genuine `kafka-metadata-quorum add-controller` of `../shared/captures/kafka-3.9/
dynamic-quorum` replayed against a kwire leader in node 21's state: node 21 leads epoch 1
of a `--standalone` quorum with its log ending at offset 44, and node 22 (formatted
`--no-initial-controllers`) follows as an observer. The AddRaftVoter v0 frame the tool
sent, and node 22's genuine ApiVersions answer to the leader's probe, must make kwire
append the VotersRecord batch node 21 wrote at offset 44, byte for byte, answer as node 21
answered (one named rule: the 3.9 leader put "NONE" in ErrorMessage where 4.3.1's
RaftUtil.addVoterResponse, which kwire follows, leaves it null) and then describe the
quorum as status-after.txt does."""

from __future__ import annotations

import base64
import functools
import json
import random
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from test_raft_pump import ListLog

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.raft.core import FetchRead, RaftCore
from kwire.raft.state import (
    METADATA_PARTITION,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    Action,
    AppendControlRecords,
    AppendLeaderChange,
    CompleteVoterChange,
    RaftConfig,
    SendRequest,
)
from kwire.raft.voter_changes import kafka_uuid
from kwire.raft.voter_set import ReplicaKey, VoterEndpoint, VoterNode, VoterSet
from kwire.records.batch import Record, build_batch, decode_batch, encode_batch, iter_batch_headers
from kwire.records.control import encode_control_record_key

CAPTURE = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9" / "dynamic-quorum"
TRANSCRIPT = CAPTURE / "dynamic-quorum-add-controller.jsonl"
SEGMENT = CAPTURE / "metadata-log-21" / "__cluster_metadata-0" / "00000000000000000000.log"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
DIR_21 = UUID(bytes=base64.urlsafe_b64decode("nS8UCg-NSi6dKWziVFSsRA=="))  # meta.properties
VOTERS_OFFSET = 44  # where node 21 appended the VotersRecord
# Rules for what differs by nature between the genuine answer and kwire's.
RULES = {
    "error_message": '3.9 sends the error\'s name ("NONE") on success; 4.3.1 sends null',
}

pytestmark = pytest.mark.skipif(not TRANSCRIPT.exists(), reason="../shared/captures is absent")


@functools.cache
def frames() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TRANSCRIPT.read_text().splitlines() if line.strip()]


def add_controller_exchange() -> tuple[AddRaftVoterRequest, AddRaftVoterResponse]:
    lines = frames()
    request = next(f for f in lines if f["api_key"] == 80 and f["dir"] == "request")
    answer = next(
        f
        for f in lines
        if f["api_key"] == 80 and f["dir"] == "response" and f["stream"] == request["stream"]
    )
    _, body = decode_request(bytes.fromhex(request["hex"]))
    _, reply = decode_response(bytes.fromhex(answer["hex"]), 80, answer["api_version"])
    assert isinstance(body, AddRaftVoterRequest) and isinstance(reply, AddRaftVoterResponse)
    return body, reply


def probe_answer_of_node_22() -> ApiVersionsResponse:
    """Node 22's answer to the leader's raft client (raft-client-21), on its own port."""
    lines = frames()
    probe = next(
        f
        for f in lines
        if f["api_key"] == 18
        and f["dir"] == "response"
        and f["server"] == "127.0.0.1:19112"
        and f["correlation_id"] == 0
    )
    _, reply = decode_response(bytes.fromhex(probe["hex"]), 18, probe["api_version"])
    assert isinstance(reply, ApiVersionsResponse)
    return reply


def genuine_voters_batch() -> tuple[bytes, int]:
    """Node 21's control batch at offset 44, and its timestamp."""
    data = SEGMENT.read_bytes()
    for pos, header in iter_batch_headers(data):
        if header.base_offset == VOTERS_OFFSET:
            batch, end = decode_batch(data, pos)
            return data[pos:end], batch.records[0].timestamp_delta + header.base_timestamp
    raise AssertionError("no batch at offset 44 in node 21's log")


def fetch_from_22(offset: int, directory: UUID, epoch: int) -> FetchRequest:
    return FetchRequest(
        cluster_id=CLUSTER_ID,
        replica_state=FetchRequest.ReplicaState(replica_id=22),
        max_wait_ms=500,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        current_leader_epoch=epoch,
                        fetch_offset=offset,
                        last_fetched_epoch=epoch,
                        replica_directory_id=directory,
                    )
                ],
            )
        ],
    )


class Node21:
    """A kwire core in node 21's place: leader of epoch 1, its log ending at offset 44."""

    def __init__(self) -> None:
        me = VoterNode(
            ReplicaKey(21, DIR_21), (VoterEndpoint("CONTROLLER", "127.0.0.1", 19111),), (0, 1)
        )
        config = RaftConfig(
            node_id=21,
            cluster_id=CLUSTER_ID,
            voters=(),
            voter_set=VoterSet.from_nodes([me]),
            directory_id=DIR_21,
        )
        self.log = ListLog()
        self.raft = RaftCore(config, self.log, rng=random.Random(0))
        actions = self.raft.start(0)
        change = next(a for a in actions if isinstance(a, AppendLeaderChange))
        assert change.epoch == 1
        # The LeaderChange batch (3 records), then the controller's 41 records.
        self.log.entries += [1] * (VOTERS_OFFSET)
        self.raft.on_flushed(self.log.end_offset, 10)

    def fetch(self, offset: int, directory: UUID, now: int) -> list[Action]:
        request = fetch_from_22(offset, directory, 1)
        assert isinstance(self.raft.fetch(request, now), FetchRead)
        return self.raft.complete_fetch(request, b"", now)[1]


def test_the_genuine_add_controller_frame_makes_kwire_write_node_21s_voters_batch() -> None:
    request, genuine = add_controller_exchange()
    dir_22 = request.voter_directory_id
    assert kafka_uuid(dir_22) == "2dKz61-FUQ7vGt-uKYFSBg"
    node = Node21()
    node.fetch(VOTERS_OFFSET, dir_22, 100)  # node 22 is a caught-up observer
    response, actions = node.raft.handle_add_raft_voter(request, 1, 200)
    assert response is None
    (probe,) = [a for a in actions if isinstance(a, SendRequest)]
    assert isinstance(probe.request, ApiVersionsRequest)
    assert (probe.destination, probe.endpoint) == (
        22,
        VoterEndpoint("CONTROLLER", "127.0.0.1", 19112),
    )
    appended = node.raft.on_response(22, probe.request, probe_answer_of_node_22(), 210)
    (append,) = [a for a in appended if isinstance(a, AppendControlRecords)]
    assert (append.base_offset, append.epoch) == (VOTERS_OFFSET, 1)

    raw, timestamp = genuine_voters_batch()
    records = [
        Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
        for i, (kind, value) in enumerate(append.values())
    ]
    ours = encode_batch(
        build_batch(
            records,
            base_offset=append.base_offset,
            base_timestamp=timestamp,
            partition_leader_epoch=append.epoch,
            control=True,
        )
    )
    assert ours == raw

    node.log.entries.append(1)
    assert not [
        a
        for a in node.raft.on_flushed(node.log.end_offset, 220)
        if isinstance(a, CompleteVoterChange)
    ]
    (done,) = [
        a for a in node.fetch(VOTERS_OFFSET + 1, dir_22, 230) if isinstance(a, CompleteVoterChange)
    ]
    assert done.ticket == 1
    answer = done.response
    assert isinstance(answer, AddRaftVoterResponse)
    for name in ("throttle_time_ms", "error_code", "error_message"):
        if name in RULES:
            continue
        assert getattr(answer, name) == getattr(genuine, name), name
    assert genuine.error_message == ErrorCode.NONE.name and answer.error_message is None


def status_after() -> dict[str, Any]:
    text = (CAPTURE / "status-after.txt").read_text()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


def test_after_the_add_kwire_describes_the_quorum_as_status_after() -> None:
    request, _ = add_controller_exchange()
    dir_22 = request.voter_directory_id
    node = Node21()
    node.fetch(VOTERS_OFFSET, dir_22, 100)
    _, actions = node.raft.handle_add_raft_voter(request, 1, 200)
    probe = next(a for a in actions if isinstance(a, SendRequest))
    node.raft.on_response(22, probe.request, probe_answer_of_node_22(), 210)
    node.log.entries.append(1)
    node.raft.on_flushed(node.log.end_offset, 220)
    node.fetch(VOTERS_OFFSET + 1, dir_22, 230)

    described = node.raft.describe_quorum(
        DescribeQuorumRequest(
            topics=[
                DescribeQuorumRequest.TopicData(
                    topic_name=METADATA_TOPIC,
                    partitions=[
                        DescribeQuorumRequest.PartitionData(partition_index=METADATA_PARTITION)
                    ],
                )
            ]
        ),
        240,
    )
    partition = described.topics[0].partitions[0]
    endpoints = {
        n.node_id: [f"{e.name}://{e.host}:{e.port}" for e in n.listeners] for n in described.nodes
    }
    ours = [
        {
            "id": v.replica_id,
            "directoryId": kafka_uuid(v.replica_directory_id),
            "endpoints": endpoints[v.replica_id],
        }
        for v in partition.current_voters
    ]
    status = status_after()
    assert ours == json.loads(status["CurrentVoters"])
    assert [o.replica_id for o in partition.observers] == json.loads(status["CurrentObservers"])
    assert partition.leader_id == int(status["LeaderId"])
    assert partition.leader_epoch == int(status["LeaderEpoch"])
