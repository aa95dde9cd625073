"""DescribeQuorum (KIP-595, KIP-853 fields) as KafkaRaftClient.handleDescribeQuorumRequest
answers it: the leader describes every voter's and observer's replication; any other node
answers NOT_LEADER_OR_FOLLOWER with the leader and epoch it knows."""

from __future__ import annotations

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.raft.quorum import QuorumCore
from kwire.raft.state import (
    METADATA_PARTITION,
    METADATA_TOPIC,
    OBSERVER_SESSION_TIMEOUT_MS,
    Leader,
    ReplicaProgress,
)
from kwire.raft.voter_set import VoterNode


class DescribePart(QuorumCore):
    def describe_quorum(
        self, request: DescribeQuorumRequest, now_ms: int
    ) -> DescribeQuorumResponse:
        topics = request.topics
        if (
            len(topics) != 1
            or topics[0].topic_name != METADATA_TOPIC
            or len(topics[0].partitions) != 1
            or topics[0].partitions[0].partition_index != METADATA_PARTITION
        ):
            return DescribeQuorumResponse(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        role = self.role
        if not isinstance(role, Leader):
            return DescribeQuorumResponse(
                error_code=ErrorCode.NONE,
                topics=[
                    DescribeQuorumResponse.TopicData(
                        topic_name=METADATA_TOPIC,
                        partitions=[
                            DescribeQuorumResponse.PartitionData(
                                partition_index=METADATA_PARTITION,
                                error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER,
                                error_message=ErrorCode.NOT_LEADER_OR_FOLLOWER.message,
                                leader_id=self.leader_id,
                                leader_epoch=self.epoch,
                            )
                        ],
                    )
                ],
            )
        own = role.voters.get(self.config.node_id)
        if own is not None:  # the leader has, by definition, fetched from itself just now
            own.last_fetch_ms = own.last_caught_up_ms = now_ms
        expired = [
            key
            for key, p in role.observers.items()
            if now_ms - p.last_fetch_ms >= OBSERVER_SESSION_TIMEOUT_MS
        ]
        for key in expired:
            del role.observers[key]
        partition = DescribeQuorumResponse.PartitionData(
            partition_index=METADATA_PARTITION,
            error_code=ErrorCode.NONE,
            error_message="",
            leader_id=self.config.node_id,
            leader_epoch=role.epoch,
            high_watermark=role.high_watermark,
            current_voters=[_replica_state(p) for p in role.voters.values()],
            observers=[_replica_state(p) for p in role.observers.values()],
        )
        return DescribeQuorumResponse(
            error_code=ErrorCode.NONE,
            error_message="",
            topics=[
                DescribeQuorumResponse.TopicData(topic_name=METADATA_TOPIC, partitions=[partition])
            ],
            nodes=[
                DescribeQuorumResponse.Node(
                    node_id=node.key.id,
                    listeners=[
                        DescribeQuorumResponse.Listener(name=e.name, host=e.host, port=e.port)
                        for e in node.endpoints
                    ],
                )
                for node in self._described_voters()
            ],
        )

    def _described_voters(self) -> list[VoterNode]:
        """Every voter with all its listeners: a static quorum's in configuration order."""
        voters = self.voter_set
        if self.kraft.last_voter_set_offset is None and self.config.voters:
            ordered = [voters.node(v.node_id) for v in self.config.voters]
            return [n for n in ordered if n is not None]
        return list(voters.voters)


def _replica_state(progress: ReplicaProgress) -> DescribeQuorumResponse.ReplicaState:
    return DescribeQuorumResponse.ReplicaState(
        replica_id=progress.replica_id,
        replica_directory_id=progress.directory_id,
        log_end_offset=progress.end_offset,
        last_fetch_timestamp=progress.last_fetch_ms,
        last_caught_up_timestamp=progress.last_caught_up_ms,
    )
