"""Serving Fetch and FetchSnapshot (KIP-595, KIP-630), as KafkaRaftClient.handleFetchRequest
and handleFetchSnapshotRequest do.

Rules kept here:
- Fetch from any replica is answered as KafkaRaftClient's leader does: cluster id, topic
  and epoch checks (a non-leader answers NOT_LEADER_OR_FOLLOWER with the leader it knows,
  an older epoch FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH, each with
  CurrentLeader and the leader's endpoint so that observers find it), then records from the
  fetch offset, or a diverging epoch when the replica's last fetched epoch ends earlier in
  our log, or the newest snapshot's id when the replica is below the log start (or starts
  from nothing while a snapshot exists).
- A leader records each replica's fetch offset (a voter's counts towards the high
  watermark and towards check quorum).
- FetchSnapshot is answered from the named snapshot in chunks of at most the request's
  MaxBytes, unaligned to batches; the edge reads the file (`FetchSnapshotRead`) and
  `complete_fetch_snapshot` checks the position against its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest, FetchSnapshotResponse
from kwire.raft.leader import LeaderPart
from kwire.raft.state import (
    METADATA_PARTITION,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    NO_DIRECTORY_ID,
    Action,
    Leader,
    ReplicaProgress,
)

# Kafka's Snapshots.BOOTSTRAP_SNAPSHOT_ID: the formatter's snapshot, never replicated.
BOOTSTRAP_SNAPSHOT_ID = SnapshotId(end_offset=0, epoch=0)


@dataclass(frozen=True, slots=True)
class FetchReady:
    """The fetch can be answered now; `response` is complete."""

    response: FetchResponse


@dataclass(frozen=True, slots=True)
class FetchRead:
    """The fetch is valid: read records from `offset` and call `complete_fetch`."""

    offset: int
    max_bytes: int


FetchOutcome = FetchReady | FetchRead


@dataclass(frozen=True, slots=True)
class FetchSnapshotReady:
    """The FetchSnapshot can be answered now; `response` is complete."""

    response: FetchSnapshotResponse


@dataclass(frozen=True, slots=True)
class FetchSnapshotRead:
    """The request is valid so far: read at most `max_bytes` of snapshot `snapshot_id`
    from `position` (None if the file is gone) and call `complete_fetch_snapshot`."""

    snapshot_id: SnapshotId
    position: int
    max_bytes: int


FetchSnapshotOutcome = FetchSnapshotReady | FetchSnapshotRead


class ServingPart(LeaderPart):
    # -- Fetch ------------------------------------------------------------------------------

    def fetch(self, request: FetchRequest, now_ms: int) -> FetchOutcome:
        """Validate a Fetch; either answer it now or ask for records to be read."""
        self.now_ms = max(self.now_ms, now_ms)
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return FetchReady(FetchResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID))
        partition = self._single_partition(request)
        if partition is None:
            return FetchReady(FetchResponse(error_code=ErrorCode.INVALID_REQUEST))
        if (
            request.max_wait_ms < 0
            or partition.fetch_offset < 0
            or partition.last_fetched_epoch < 0
            or partition.last_fetched_epoch > partition.current_leader_epoch
        ):
            return FetchReady(self._fetch_response(ErrorCode.INVALID_REQUEST, with_hw=False))
        error = self._validate_leader_epoch(partition.current_leader_epoch)
        if error is not None:
            return FetchReady(self._fetch_response(error, with_hw=False))
        snapshot = self._snapshot_to_send(partition.fetch_offset, partition.last_fetched_epoch)
        if snapshot is not None:
            return FetchReady(self._fetch_response(ErrorCode.NONE, snapshot_id=snapshot))
        diverging = self._diverging(partition.fetch_offset, partition.last_fetched_epoch)
        if diverging is not None:
            return FetchReady(self._fetch_response(ErrorCode.NONE, diverging=diverging))
        max_bytes = partition.partition_max_bytes or request.max_bytes
        return FetchRead(offset=partition.fetch_offset, max_bytes=max(max_bytes, 1))

    def complete_fetch(
        self, request: FetchRequest, records: bytes, now_ms: int
    ) -> tuple[FetchResponse, list[Action]]:
        """Record the replica's progress and answer with the records read."""
        partition = self._single_partition(request)
        assert partition is not None
        actions: list[Action] = []
        if isinstance(self.role, Leader):
            actions = self._record_replica_fetch(self.role, request, partition, now_ms)
        return self._fetch_response(ErrorCode.NONE, records=records), actions

    def _record_replica_fetch(
        self,
        leader: Leader,
        request: FetchRequest,
        partition: FetchRequest.FetchPartition,
        now_ms: int,
    ) -> list[Action]:
        replica_id = (
            request.replica_state.replica_id if request.replica_id == -1 else request.replica_id
        )
        if replica_id < 0:
            return []  # a consumer-style fetch: nothing to track
        leader_end = self.log.end_offset
        voter = leader.voters.get(replica_id)
        if (
            voter is not None
            and replica_id != self.config.node_id
            and voter.directory_id in (NO_DIRECTORY_ID, partition.replica_directory_id)
        ):
            # LeaderState.isVoter(ReplicaKey): a replica whose directory id is not the
            # voter's (a re-formatted disk) fetches as an observer.
            voter.record_fetch(partition.fetch_offset, leader_end, now_ms)
            self.record_following_voter(leader, replica_id, now_ms)
            return self._maybe_advance_high_watermark(leader)
        self.record_following_voter(leader, -1, now_ms)  # an observer: counts no voter
        key = (replica_id, partition.replica_directory_id)
        progress = leader.observers.get(key)
        if progress is None:
            progress = leader.observers[key] = ReplicaProgress(
                replica_id=replica_id, directory_id=partition.replica_directory_id
            )
        progress.record_fetch(partition.fetch_offset, leader_end, now_ms)
        return []

    def fetch_would_wait(self, request: FetchRequest, response: FetchResponse) -> bool:
        """Kafka parks an empty, error-free, non-diverged fetch until data or MaxWaitMs.

        From Fetch v18 the fetcher sends the high watermark it knows (KIP-1166; Long.MAX
        before v18): Kafka 4.3.1's KafkaRaftClient answers at once when the leader's is
        higher, so that the fetcher learns the new high watermark without waiting."""
        if request.max_wait_ms == 0 or response.error_code != ErrorCode.NONE:
            return False
        data = response.responses[0].partitions[0]
        asked = self._single_partition(request)
        hw_news = asked is not None and asked.high_watermark < data.high_watermark
        return (
            data.error_code == ErrorCode.NONE
            and not data.records
            and data.diverging_epoch.epoch == -1
            and data.snapshot_id.epoch == -1
            and not hw_news
        )

    def _single_partition(self, request: FetchRequest) -> FetchRequest.FetchPartition | None:
        if len(request.topics) != 1 or len(request.topics[0].partitions) != 1:
            return None
        topic = request.topics[0]
        if topic.topic_id != METADATA_TOPIC_ID and topic.topic != METADATA_TOPIC:
            return None
        partition = topic.partitions[0]
        return partition if partition.partition == METADATA_PARTITION else None

    def _validate_leader_epoch(self, request_epoch: int) -> ErrorCode | None:
        if request_epoch < self.epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if request_epoch > self.epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        return None

    def _snapshot_to_send(self, fetch_offset: int, last_fetched_epoch: int) -> SnapshotId | None:
        """The snapshot a fetcher must load first, per KafkaRaftClient.tryCompleteFetchRequest
        and ReplicatedLog.validateOffsetAndEpoch: the newest one when the fetcher has
        nothing (offset 0) and a snapshot other than the bootstrap one exists, or when it
        fetches below the log start, at the log start with another epoch than the oldest
        snapshot's, or with an epoch older than the oldest snapshot's."""
        latest = self.log.latest_snapshot_id()
        if latest is None:
            return None
        if fetch_offset == 0 and latest != BOOTSTRAP_SNAPSHOT_ID:
            return latest
        start = self.log.log_start_offset
        if start == 0 and fetch_offset == 0:
            return None
        earliest = self.log.earliest_snapshot_id()
        if earliest is not None and (
            fetch_offset < start
            or (fetch_offset == start and last_fetched_epoch != earliest.epoch)
            or last_fetched_epoch < earliest.epoch
        ):
            return latest
        return None

    def _diverging(self, fetch_offset: int, last_fetched_epoch: int) -> tuple[int, int] | None:
        """(epoch, end offset) to truncate to, or None when the fetch position is valid.
        An epoch the log cannot place (newer than any) answers with our log end and last
        epoch, as KafkaMetadataLog.endOffsetForEpoch does; never (-1, -1), which a follower
        would read as "no divergence"."""
        if self.log.log_start_offset == 0 and fetch_offset == 0:
            return None
        found = self.log.end_offset_for_epoch(last_fetched_epoch)
        epoch, end_offset = (
            found if found is not None else (self.last_fetched_epoch(), self.log.end_offset)
        )
        if epoch != last_fetched_epoch or end_offset < fetch_offset:
            return epoch, end_offset
        return None

    def _fetch_response(
        self,
        error: ErrorCode,
        *,
        records: bytes = b"",
        diverging: tuple[int, int] | None = None,
        snapshot_id: SnapshotId | None = None,
        with_hw: bool = True,
    ) -> FetchResponse:
        data = FetchResponse.PartitionData(
            partition_index=METADATA_PARTITION,
            error_code=error,
            high_watermark=self.high_watermark if with_hw else -1,
            last_stable_offset=-1,
            log_start_offset=self.log.log_start_offset,
            records=records,
        )
        data.current_leader = FetchResponse.LeaderIdAndEpoch(
            leader_id=self.leader_id, leader_epoch=self.epoch
        )
        if diverging is not None:
            data.diverging_epoch = FetchResponse.EpochEndOffset(
                epoch=diverging[0], end_offset=diverging[1]
            )
        if snapshot_id is not None:
            data.snapshot_id = FetchResponse.SnapshotId(
                end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch
            )
        return FetchResponse(
            responses=[
                FetchResponse.FetchableTopicResponse(topic_id=METADATA_TOPIC_ID, partitions=[data])
            ],
            node_endpoints=self._leader_endpoints(),
        )

    def _leader_endpoints(self) -> list[FetchResponse.NodeEndpoint]:
        leader = self.leader_voter()
        return [
            FetchResponse.NodeEndpoint(
                node_id=leader.node_id, host=leader.host, port=leader.port, rack=None
            )
            for leader in ([leader] if leader is not None else [])
        ]

    # -- FetchSnapshot ----------------------------------------------------------------------

    def fetch_snapshot(self, request: FetchSnapshotRequest, now_ms: int) -> FetchSnapshotOutcome:
        """Validate a FetchSnapshot as KafkaRaftClient.handleFetchSnapshotRequest does:
        cluster id (INCONSISTENT_CLUSTER_ID at the top), the one partition
        (UNKNOWN_TOPIC_OR_PARTITION in it), the leader epoch, then the snapshot
        (SNAPSHOT_NOT_FOUND, also for the bootstrap snapshot)."""
        if request.cluster_id is not None and request.cluster_id != self.config.cluster_id:
            return FetchSnapshotReady(
                FetchSnapshotResponse(error_code=ErrorCode.INCONSISTENT_CLUSTER_ID)
            )
        if not request.topics or not request.topics[0].partitions:
            # Kafka reads topics[0].partitions[0] unguarded: the exception answers
            # UNKNOWN_SERVER_ERROR.
            return FetchSnapshotReady(
                FetchSnapshotResponse(error_code=ErrorCode.UNKNOWN_SERVER_ERROR)
            )
        if len(request.topics) != 1 and len(request.topics[0].partitions) != 1:
            # Kafka's check, with its '&&': only when both counts are wrong.
            return FetchSnapshotReady(FetchSnapshotResponse(error_code=ErrorCode.INVALID_REQUEST))
        partition = next(
            (
                p
                for t in request.topics
                if t.name == METADATA_TOPIC
                for p in t.partitions
                if p.partition == METADATA_PARTITION
            ),
            None,
        )
        if partition is None:
            first = request.topics[0]
            return FetchSnapshotReady(
                self._fetch_snapshot_response(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    topic=first.name,
                    index=first.partitions[0].partition,
                    with_leader=False,
                )
            )
        error = self._validate_leader_epoch(partition.current_leader_epoch)
        if error is not None:
            return FetchSnapshotReady(self._fetch_snapshot_response(error))
        role = self.role
        voter = role.voters.get(request.replica_id) if isinstance(role, Leader) else None
        if (
            isinstance(role, Leader)
            and voter is not None
            and request.replica_id != self.node_id
            and voter.directory_id in (NO_DIRECTORY_ID, partition.replica_directory_id)
        ):
            self.record_following_voter(role, request.replica_id, now_ms)
        wanted = SnapshotId(partition.snapshot_id.end_offset, partition.snapshot_id.epoch)
        if wanted == BOOTSTRAP_SNAPSHOT_ID:
            return FetchSnapshotReady(self._fetch_snapshot_response(ErrorCode.SNAPSHOT_NOT_FOUND))
        return FetchSnapshotRead(
            snapshot_id=wanted, position=partition.position, max_bytes=request.max_bytes
        )

    def complete_fetch_snapshot(
        self,
        read: FetchSnapshotRead,
        size: int | None,
        chunk: bytes,
    ) -> FetchSnapshotResponse:
        """Answer with the bytes read: SNAPSHOT_NOT_FOUND when the snapshot does not exist
        (`size` None), POSITION_OUT_OF_RANGE for a position outside [0, size), else the
        chunk with the snapshot's id, size and the position it starts at."""
        if size is None:
            return self._fetch_snapshot_response(ErrorCode.SNAPSHOT_NOT_FOUND)
        if read.max_bytes < 0:
            # Kafka's slice refuses a negative size; the exception answers
            # UNKNOWN_SERVER_ERROR.
            return FetchSnapshotResponse(error_code=ErrorCode.UNKNOWN_SERVER_ERROR)
        if read.position < 0 or read.position >= size:
            return self._fetch_snapshot_response(ErrorCode.POSITION_OUT_OF_RANGE)
        response = self._fetch_snapshot_response(ErrorCode.NONE)
        data = response.topics[0].partitions[0]
        data.snapshot_id = FetchSnapshotResponse.SnapshotId(
            end_offset=read.snapshot_id.end_offset, epoch=read.snapshot_id.epoch
        )
        data.size = size
        data.position = read.position
        data.unaligned_records = chunk
        return response

    def _fetch_snapshot_response(
        self,
        error: ErrorCode,
        *,
        topic: str = METADATA_TOPIC,
        index: int = METADATA_PARTITION,
        with_leader: bool = True,
    ) -> FetchSnapshotResponse:
        """RaftUtil.singletonFetchSnapshotResponse: one partition, and the leader's
        endpoint (dropped below v1 by the edge)."""
        data = FetchSnapshotResponse.PartitionSnapshot(index=index, error_code=error)
        if with_leader:
            data.current_leader = FetchSnapshotResponse.LeaderIdAndEpoch(
                leader_id=self.leader_id, leader_epoch=self.epoch
            )
        leader = self.leader_voter()
        return FetchSnapshotResponse(
            topics=[FetchSnapshotResponse.TopicSnapshot(name=topic, partitions=[data])],
            node_endpoints=[
                FetchSnapshotResponse.NodeEndpoint(
                    node_id=leader.node_id, host=leader.host, port=leader.port
                )
                for leader in ([leader] if leader is not None else [])
            ],
        )
