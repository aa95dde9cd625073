"""What ``kafka-metadata-quorum describe`` prints, from a DescribeQuorum response.

Follows Kafka 3.9's and 4.3.1's tools/.../MetadataQuorumCommand.java (handleDescribeStatus,
handleDescribeReplication, ToolsUtils.prettyPrintTable) and the admin client's translation
of the response (KafkaAdminClient.describeMetadataQuorum: a timestamp of -1 is absent, a
null directory id is the zero Uuid). The two releases differ in one place: a voter or
observer without a directory id prints ``"directoryId": null`` in 3.9 and nothing in 4.3.1.

Rules:
- ``quorum_info(response)`` checks the response as the admin client does and raises
  QuorumError with Kafka's message (an error code, not exactly one topic named
  ``__cluster_metadata``, not exactly one partition 0).
- Status: MaxFollowerLag is the leader's log end offset minus the smallest among the
  voters; MaxFollowerLagTimeMs is 0 when that voter is the leader, else the difference of
  the two last-caught-up timestamps, or -1 when either is absent.
- Replication: one row per replica, the leader first, then the other voters, then the
  observers, each in the response's order; columns padded to their widest cell, each cell
  followed by a tab. ``--human-readable`` prints timestamps as ``<now - t> ms ago`` and
  refuses (QuorumError, Kafka's message) a time not after the epoch or after ``now``.
- A quorum whose leader is not among its voters (an election in progress, leader -1)
  cannot be described: QuorumError (Kafka's tool fails there with "No value present").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.raft.voter_changes import kafka_uuid

__all__ = [
    "METADATA_TOPIC",
    "QuorumError",
    "QuorumInfo",
    "Replica",
    "TextRelease",
    "quorum_info",
    "replication_text",
    "status_text",
]

METADATA_TOPIC = "__cluster_metadata"
ZERO_UUID = UUID(int=0)
HEADERS = (
    "NodeId",
    "DirectoryId",
    "LogEndOffset",
    "Lag",
    "LastFetchTimestamp",
    "LastCaughtUpTimestamp",
    "Status",
)


class TextRelease(enum.Enum):
    """Whose kafka-metadata-quorum text is printed."""

    KAFKA_3_9 = "3.9"
    KAFKA_4_3 = "4.3"


class QuorumError(Exception):
    """The quorum cannot be described; the message is what the operator reads."""


@dataclass(frozen=True, slots=True)
class Replica:
    """Kafka's QuorumInfo.ReplicaState: timestamps in ms since the epoch, None if absent."""

    replica_id: int
    directory_id: UUID
    log_end_offset: int
    last_fetch_timestamp: int | None
    last_caught_up_timestamp: int | None


@dataclass(frozen=True, slots=True)
class QuorumInfo:
    """Kafka's QuorumInfo: the leader, the replicas and each node's listeners
    (``name://host:port`` texts, by node id)."""

    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: list[Replica]
    observers: list[Replica]
    endpoints: dict[int, list[str]]

    def leader(self) -> Replica:
        for voter in self.voters:
            if voter.replica_id == self.leader_id:
                return voter
        raise QuorumError(
            f"the quorum has no leader among its voters (leader id {self.leader_id}):"
            " an election may be in progress"
        )


def quorum_info(response: DescribeQuorumResponse) -> QuorumInfo:
    """The QuorumInfo of a DescribeQuorum response, checked as Kafka's admin client does."""
    if response.error_code:
        raise QuorumError(_error_text(response.error_code, response.error_message))
    if len(response.topics) != 1:
        raise QuorumError(
            f"DescribeMetadataQuorum received {len(response.topics)} topics when 1 was expected"
        )
    topic = response.topics[0]
    if topic.topic_name != METADATA_TOPIC:
        raise QuorumError(
            f"DescribeMetadataQuorum received a topic with name {topic.topic_name}"
            f" when {METADATA_TOPIC} was expected"
        )
    if len(topic.partitions) != 1:
        raise QuorumError(
            f"DescribeMetadataQuorum received a topic {topic.topic_name} with"
            f" {len(topic.partitions)} partitions when 1 was expected"
        )
    partition = topic.partitions[0]
    if partition.partition_index != 0:
        raise QuorumError(
            "DescribeMetadataQuorum received a single partition with index"
            f" {partition.partition_index} when 0 was expected"
        )
    if partition.error_code:
        raise QuorumError(_error_text(partition.error_code, partition.error_message))
    endpoints = {
        node.node_id: [_endpoint(lis.name, lis.host, lis.port) for lis in node.listeners]
        for node in response.nodes
    }
    return QuorumInfo(
        leader_id=partition.leader_id,
        leader_epoch=partition.leader_epoch,
        high_watermark=partition.high_watermark,
        voters=[_replica(r) for r in partition.current_voters],
        observers=[_replica(r) for r in partition.observers],
        endpoints=endpoints,
    )


def status_text(cluster_id: str, info: QuorumInfo, release: TextRelease) -> str:
    """``describe --status``: eight lines, without the final newline."""
    leader = info.leader()
    lagging = min(info.voters, key=lambda v: v.log_end_offset)
    max_lag = leader.log_end_offset - lagging.log_end_offset
    if lagging is leader:
        lag_time = 0
    elif (
        leader.last_caught_up_timestamp is not None and lagging.last_caught_up_timestamp is not None
    ):
        lag_time = leader.last_caught_up_timestamp - lagging.last_caught_up_timestamp
    else:
        lag_time = -1
    return "\n".join(
        [
            f"ClusterId:              {cluster_id}",
            f"LeaderId:               {info.leader_id}",
            f"LeaderEpoch:            {info.leader_epoch}",
            f"HighWatermark:          {info.high_watermark}",
            f"MaxFollowerLag:         {max_lag}",
            f"MaxFollowerLagTimeMs:   {lag_time}",
            f"CurrentVoters:          {_replica_list(info, info.voters, release)}",
            f"CurrentObservers:       {_replica_list(info, info.observers, release)}",
        ]
    )


def replication_text(info: QuorumInfo, *, human_readable: bool = False, now_ms: int = 0) -> str:
    """``describe --replication [--human-readable]`` (``now_ms``: the current time, used
    only when human readable), one line per row, without the final newline."""
    leader = info.leader()
    others = [v for v in info.voters if v.replica_id != info.leader_id]
    rows = [_row(leader, leader, "Leader", human_readable, now_ms)]
    rows += [_row(leader, v, "Follower", human_readable, now_ms) for v in others]
    rows += [_row(leader, o, "Observer", human_readable, now_ms) for o in info.observers]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    return "\n".join(
        "".join(cell.ljust(width) + "\t" for cell, width in zip(row, widths, strict=True))
        for row in [list(HEADERS), *rows]
    )


def _row(leader: Replica, r: Replica, status: str, human: bool, now_ms: int) -> list[str]:
    return [
        str(r.replica_id),
        kafka_uuid(r.directory_id),
        str(r.log_end_offset),
        str(leader.log_end_offset - r.log_end_offset),
        _timestamp(r.last_fetch_timestamp, "last fetch", human, now_ms),
        _timestamp(r.last_caught_up_timestamp, "last caught up", human, now_ms),
        status,
    ]


def _timestamp(value: int | None, what: str, human: bool, now_ms: int) -> str:
    if value is None:
        return "-1"
    if not human:
        return str(value)
    if not 0 < value <= now_ms:
        raise QuorumError(
            "Error while computing relative time, possible drift in system clock.\n"
            f"Current timestamp is {now_ms}, {what} timestamp is {value}"
        )
    return f"{now_ms - value} ms ago"


def _replica_list(info: QuorumInfo, replicas: list[Replica], release: TextRelease) -> str:
    return "[" + ", ".join(_node_text(info, r, release) for r in replicas) + "]"


def _node_text(info: QuorumInfo, replica: Replica, release: TextRelease) -> str:
    parts = [f'"id": {replica.replica_id}']
    if replica.directory_id != ZERO_UUID:
        parts.append(f'"directoryId": "{kafka_uuid(replica.directory_id)}"')
    elif release is TextRelease.KAFKA_3_9:
        parts.append('"directoryId": null')
    endpoints = info.endpoints.get(replica.replica_id, [])
    if endpoints:
        parts.append('"endpoints": [' + ", ".join(f'"{e}"' for e in endpoints) + "]")
    return "{" + ", ".join(parts) + "}"


def _endpoint(name: str, host: str, port: int) -> str:
    """RaftVoterEndpoint.toString: an IPv6 host in brackets."""
    return f"{name}://[{host}]:{port}" if ":" in host else f"{name}://{host}:{port}"


def _replica(r: DescribeQuorumResponse.ReplicaState) -> Replica:
    return Replica(
        replica_id=r.replica_id,
        directory_id=r.replica_directory_id or ZERO_UUID,
        log_end_offset=r.log_end_offset,
        last_fetch_timestamp=None if r.last_fetch_timestamp == -1 else r.last_fetch_timestamp,
        last_caught_up_timestamp=(
            None if r.last_caught_up_timestamp == -1 else r.last_caught_up_timestamp
        ),
    )


def _error_text(code: int, message: str | None) -> str:
    """The exception message Kafka's tool prints (the response's message, else the
    error's default one), and the error's name."""
    error = ErrorCode.of(code)
    return f"{message or error.message} ({error.name})"
