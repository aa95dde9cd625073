"""Building and checking the quorum RPCs for the one metadata partition (Kafka's RaftUtil).

Every request carries a single topic with a single partition; `single_partition` returns it
or None when the request names anything else (Kafka's hasValidTopicPartition). Responses
carry the sender's view: its epoch, the leader it knows (-1 if none), and from v1 the
leader's endpoint (the edge drops `node_endpoints` below v1).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.state import (
    METADATA_PARTITION,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    NO_DIRECTORY_ID,
    Voter,
)


def error_of(code: int) -> ErrorCode:
    """A peer's error code; one this build does not know reads as UNKNOWN_SERVER_ERROR."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.UNKNOWN_SERVER_ERROR


def single_partition(topics: list[Any], *, name_attr: str = "topic_name") -> Any | None:
    """The one partition of a quorum request or response naming __cluster_metadata-0."""
    if len(topics) != 1 or len(topics[0].partitions) != 1:
        return None
    if getattr(topics[0], name_attr) != METADATA_TOPIC:
        return None
    partition = topics[0].partitions[0]
    return partition if partition.partition_index == METADATA_PARTITION else None


def vote_request(
    *,
    cluster_id: str,
    epoch: int,
    candidate_id: int,
    candidate_directory_id: UUID,
    voter_id: int,
    voter_directory_id: UUID = NO_DIRECTORY_ID,
    last_epoch: int,
    last_offset: int,
    pre_vote: bool,
) -> VoteRequest:
    """RaftUtil.singletonVoteRequest: our epoch and log end (epoch, offset), addressed to
    the voter's replica key (its directory id from the voter set; zero if none)."""
    return VoteRequest(
        cluster_id=cluster_id,
        voter_id=voter_id,
        topics=[
            VoteRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    VoteRequest.PartitionData(
                        partition_index=METADATA_PARTITION,
                        replica_epoch=epoch,
                        replica_id=candidate_id,
                        replica_directory_id=candidate_directory_id,
                        voter_directory_id=voter_directory_id,
                        last_offset_epoch=last_epoch,
                        last_offset=last_offset,
                        pre_vote=pre_vote,
                    )
                ],
            )
        ],
    )


def vote_response(
    error: ErrorCode,
    *,
    epoch: int,
    leader: Voter | None,
    granted: bool,
) -> VoteResponse:
    """RaftUtil.singletonVoteResponse: the partition error, our epoch and leader."""
    return VoteResponse(
        error_code=ErrorCode.NONE,
        topics=[
            VoteResponse.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    VoteResponse.PartitionData(
                        partition_index=METADATA_PARTITION,
                        error_code=error,
                        leader_id=leader.node_id if leader else -1,
                        leader_epoch=epoch,
                        vote_granted=granted,
                    )
                ],
            )
        ],
        node_endpoints=(
            [VoteResponse.NodeEndpoint(node_id=leader.node_id, host=leader.host, port=leader.port)]
            if leader
            else []
        ),
    )


def begin_quorum_epoch_request(
    *,
    cluster_id: str,
    epoch: int,
    leader: Voter,
    voter_id: int,
    voter_directory_id: UUID = NO_DIRECTORY_ID,
    listener_name: str,
) -> BeginQuorumEpochRequest:
    """RaftUtil.singletonBeginQuorumEpochRequest: to the voter's replica key, with our
    endpoint."""
    return BeginQuorumEpochRequest(
        cluster_id=cluster_id,
        voter_id=voter_id,
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(
                        partition_index=METADATA_PARTITION,
                        voter_directory_id=voter_directory_id,
                        leader_id=leader.node_id,
                        leader_epoch=epoch,
                    )
                ],
            )
        ],
        leader_endpoints=[
            BeginQuorumEpochRequest.LeaderEndpoint(
                name=listener_name, host=leader.host, port=leader.port
            )
        ],
    )


def begin_quorum_epoch_response(
    error: ErrorCode, *, epoch: int, leader: Voter | None
) -> BeginQuorumEpochResponse:
    """RaftUtil.singletonBeginQuorumEpochResponse."""
    return BeginQuorumEpochResponse(
        error_code=ErrorCode.NONE,
        topics=[
            BeginQuorumEpochResponse.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    BeginQuorumEpochResponse.PartitionData(
                        partition_index=METADATA_PARTITION,
                        error_code=error,
                        leader_id=leader.node_id if leader else -1,
                        leader_epoch=epoch,
                    )
                ],
            )
        ],
        node_endpoints=(
            [
                BeginQuorumEpochResponse.NodeEndpoint(
                    node_id=leader.node_id, host=leader.host, port=leader.port
                )
            ]
            if leader
            else []
        ),
    )


def end_quorum_epoch_request(
    *,
    cluster_id: str,
    epoch: int,
    leader: Voter,
    preferred: list[tuple[int, UUID]],
) -> EndQuorumEpochRequest:
    """RaftUtil.singletonEndQuorumEpochRequest: the preferred successors (id, directory
    id) both as ids (v0) and as replica keys (v1; zero directory ids in a static quorum).
    LeaderEndpoints stays empty: Kafka never sets it (3.9 and 4.3.1 alike)."""
    return EndQuorumEpochRequest(
        cluster_id=cluster_id,
        topics=[
            EndQuorumEpochRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    EndQuorumEpochRequest.PartitionData(
                        partition_index=METADATA_PARTITION,
                        leader_id=leader.node_id,
                        leader_epoch=epoch,
                        preferred_successors=[v for v, _ in preferred],
                        preferred_candidates=[
                            EndQuorumEpochRequest.ReplicaInfo(
                                candidate_id=v, candidate_directory_id=d
                            )
                            for v, d in preferred
                        ],
                    )
                ],
            )
        ],
    )


def end_quorum_epoch_response(
    error: ErrorCode, *, epoch: int, leader: Voter | None
) -> EndQuorumEpochResponse:
    """RaftUtil.singletonEndQuorumEpochResponse."""
    return EndQuorumEpochResponse(
        error_code=ErrorCode.NONE,
        topics=[
            EndQuorumEpochResponse.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    EndQuorumEpochResponse.PartitionData(
                        partition_index=METADATA_PARTITION,
                        error_code=error,
                        leader_id=leader.node_id if leader else -1,
                        leader_epoch=epoch,
                    )
                ],
            )
        ],
        node_endpoints=(
            [
                EndQuorumEpochResponse.NodeEndpoint(
                    node_id=leader.node_id, host=leader.host, port=leader.port
                )
            ]
            if leader
            else []
        ),
    )


def fetch_request(
    *,
    cluster_id: str,
    replica_id: int,
    directory_id: UUID,
    epoch: int,
    fetch_offset: int,
    last_fetched_epoch: int,
    high_watermark: int,
    max_wait_ms: int,
    max_bytes: int,
) -> FetchRequest:
    """KafkaRaftClient.buildFetchRequest: the log end and the epoch of its last batch."""
    return FetchRequest(
        cluster_id=cluster_id,
        replica_id=-1,
        replica_state=FetchRequest.ReplicaState(replica_id=replica_id, replica_epoch=-1),
        max_wait_ms=max_wait_ms,
        min_bytes=0,
        max_bytes=max_bytes,
        topics=[
            FetchRequest.FetchTopic(
                topic=METADATA_TOPIC,
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=METADATA_PARTITION,
                        current_leader_epoch=epoch,
                        fetch_offset=fetch_offset,
                        last_fetched_epoch=last_fetched_epoch,
                        log_start_offset=-1,
                        partition_max_bytes=0,
                        replica_directory_id=directory_id,
                        high_watermark=high_watermark,
                    )
                ],
            )
        ],
    )


def fetch_snapshot_request(
    *,
    cluster_id: str,
    replica_id: int,
    directory_id: UUID,
    epoch: int,
    snapshot_id: SnapshotId,
    position: int,
    max_bytes: int,
) -> FetchSnapshotRequest:
    """RaftUtil.singletonFetchSnapshotRequest: the next chunk from `position`."""
    return FetchSnapshotRequest(
        cluster_id=cluster_id,
        replica_id=replica_id,
        max_bytes=max_bytes,
        topics=[
            FetchSnapshotRequest.TopicSnapshot(
                name=METADATA_TOPIC,
                partitions=[
                    FetchSnapshotRequest.PartitionSnapshot(
                        partition=METADATA_PARTITION,
                        current_leader_epoch=epoch,
                        snapshot_id=FetchSnapshotRequest.SnapshotId(
                            end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch
                        ),
                        position=position,
                        replica_directory_id=directory_id,
                    )
                ],
            )
        ],
    )
