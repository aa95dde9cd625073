"""Who votes (Kafka's KRaftControlRecordStateMachine as seen by KafkaRaftClient and
QuorumState): the voter set and kraft.version the core acts on, and how the log's
KRaft control records reach it.

Rules kept here:
- The voters are `KRaftControlRecords.last_voter_set`: the newest VotersRecord the log or
  its snapshot holds, from the moment it is appended (KIP-853), else the static
  `RaftConfig.voters` (kraft.version 0). This node is a voter when its replica key (id and
  directory id) is one (QuorumState.isVoter); else it is an observer.
- The core feeds the history itself, from what it asks the log to do: the batches of every
  AppendAsFollower (when the action is emitted; the caller carries it out synchronously),
  the leader's own start-of-epoch control batch, every TruncateTo, and the first batch of a
  snapshot it downloads (the snapshot's KRaftVersion and Voters records follow its header
  there). Nothing else writes KRaft control records: a leader's controller writes data
  batches, which `skip_to` passes over.
- At start the caller either hands the log's history (`control_records=`, fed to the log
  end: `load_snapshot` of the newest snapshot, then `append` of the log's batches), or the
  core starts from `RaftConfig.voter_set` (as the bootstrap checkpoint, kraft.version 1)
  or the static voters, taking the log as holding no other control record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from kwire.raft.state import NO_DIRECTORY_ID, LogView, RaftConfig, Voter
from kwire.raft.voter_set import (
    SUPPORTED_KRAFT_VERSIONS,
    KRaftControlRecords,
    KRaftVersion,
    ReplicaKey,
    VoterNode,
    VoterSet,
    VoterSetError,
    start_of_epoch_control_values,
)
from kwire.records.batch import (
    Record,
    RecordBatch,
    build_batch,
    decode_batch,
    iter_batch_headers,
)
from kwire.records.control import ControlRecordType, encode_control_record_key

log = logging.getLogger(__name__)


def static_voter_set(config: RaftConfig) -> VoterSet:
    """`controller.quorum.voters` as a VoterSet (VoterSet.fromInetSocketAddresses)."""
    return VoterSet.from_static(
        config.listener_name, [(v.node_id, v.host, v.port) for v in config.voters]
    )


class Membership:
    """The voter-set half of QuorumCore (mixed in; `config` and `kraft` are set by
    `init_membership`)."""

    config: RaftConfig
    kraft: KRaftControlRecords

    def init_membership(
        self, config: RaftConfig, log_view: LogView, control_records: KRaftControlRecords | None
    ) -> None:
        if control_records is None:
            control_records = KRaftControlRecords(static_voter_set(config))
            if config.voter_set is not None:
                control_records.load_bootstrap(KRaftVersion.KRAFT_VERSION_1, config.voter_set)
            control_records.skip_to(log_view.end_offset)
        elif control_records.next_offset < log_view.end_offset:
            raise ValueError(
                f"control records were read to offset {control_records.next_offset}; "
                f"the log ends at {log_view.end_offset}"
            )
        if not len(control_records.static_voters) and config.voters:
            control_records.static_voters = static_voter_set(config)
        self.kraft = control_records
        # `is_voter` for the (voter set, config) it was last computed for: both are
        # immutable, and the answer is asked after nearly every event.
        self._voter_answer: tuple[VoterSet | None, RaftConfig | None, bool] = (None, None, False)

    # -- who votes ----------------------------------------------------------------------------

    @property
    def control_records(self) -> KRaftControlRecords:
        """The kraft.version and voter-set history the core follows (read-only use)."""
        return self.kraft

    @property
    def voter_set(self) -> VoterSet:
        """The voters the core acts on now (the newest in the log, else the static ones)."""
        return self.kraft.last_voter_set

    @property
    def kraft_version(self) -> KRaftVersion:
        return self.kraft.last_kraft_version

    @property
    def voter_ids(self) -> frozenset[int]:
        return self.voter_set.id_set

    @property
    def local_key(self) -> ReplicaKey:
        return ReplicaKey(self.config.node_id, self.config.directory_id)

    @property
    def is_voter(self) -> bool:
        """QuorumState.isVoter: this node's id and directory id name a voter."""
        voters, config = self.voter_set, self.config
        known_voters, known_config, answer = self._voter_answer
        if voters is not known_voters or config is not known_config:
            answer = voters.is_voter(self.local_key)
            self._voter_answer = (voters, config, answer)
        return answer

    def majority(self) -> int:
        return self.voter_set.majority_size

    def voter(self, node_id: int) -> Voter | None:
        """Voter `node_id` with its endpoint on our listener; None if not a voter or if it
        has no such listener (Kafka cannot reach it either)."""
        node = self.voter_set.node(node_id)
        if node is None:
            return None
        endpoint = node.endpoint(self.config.listener_name.upper())
        if endpoint is None:
            return None
        return Voter(node_id=node_id, host=endpoint.host, port=endpoint.port)

    def voter_directory_id(self, node_id: int) -> UUID:
        """The directory id the voter set holds for `node_id` (zero: none, kraft.version 0)."""
        node = self.voter_set.node(node_id)
        return node.key.directory_id if node is not None else NO_DIRECTORY_ID

    def local_voter_node(self) -> VoterNode:
        """LeaderState's localVoterNode: our key, our listeners, the kraft.versions we take."""
        own = self.voter_set.node(self.config.node_id)
        endpoints = self.config.local_endpoints or (own.endpoints if own is not None else ())
        return VoterNode(self.local_key, tuple(endpoints), SUPPORTED_KRAFT_VERSIONS)

    def start_of_epoch_records(self) -> tuple[tuple[ControlRecordType, bytes], ...]:
        """What a new leader writes after its LeaderChange (appendStartOfEpochControlRecords):
        nothing at kraft.version 0."""
        return tuple(start_of_epoch_control_values(self.kraft, self.local_voter_node()))

    # -- feeding the history ------------------------------------------------------------------

    def feed_appended(self, records: bytes) -> None:
        """The batches of an AppendAsFollower: their KRaft control records apply now. Any
        gap before them is log this node wrote as a leader's controller (data only)."""
        try:
            for pos, header in iter_batch_headers(records, verify_crc=False):
                if header.is_control:
                    batch = decode_batch(records, pos, verify_crc=False)[0]
                    self.kraft.skip_to(batch.base_offset)
                    self._append([batch])
                else:
                    self.kraft.skip_to(header.base_offset + header.last_offset_delta + 1)
        except ValueError as e:  # a corrupt batch: the log's append refuses it too
            # (the log's own append refuses them; the edge reports that)
            log.debug("Node %d: unreadable batches appended: %s", self.config.node_id, e)

    def feed_own_control_batch(
        self, base_offset: int, epoch: int, values: Iterable[tuple[ControlRecordType, bytes]]
    ) -> None:
        """The leader's start-of-epoch control batch at `base_offset`."""
        records = [
            Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
            for i, (kind, value) in enumerate(values)
        ]
        batch = build_batch(
            records,
            base_offset=base_offset,
            base_timestamp=0,
            partition_leader_epoch=epoch,
            control=True,
        )
        self.kraft.skip_to(base_offset)
        self._append([batch])

    def feed_snapshot_head(self, end_offset: int, head: bytes) -> None:
        """A downloaded snapshot is installed: its first batch (header, KRaftVersion,
        Voters) replaces the history; the log restarts at `end_offset`."""
        try:
            batch = decode_batch(head, 0, verify_crc=True)[0]
            self.kraft.load_snapshot(end_offset, [batch])
        except (ValueError, VoterSetError) as e:
            log.warning(
                "Node %d: snapshot's control records unreadable: %s", self.config.node_id, e
            )
            self.kraft.truncate_new_entries(0)
            self.kraft.skip_to(end_offset)

    def truncate_control_records(self, end_offset: int) -> None:
        self.kraft.truncate_new_entries(end_offset)

    def load_snapshot_control_records(
        self, end_offset: int, batches: Iterable[RecordBatch]
    ) -> None:
        """For a caller that installs a snapshot the core did not download: its batches
        (at least the first) give the voters as of `end_offset`."""
        self.kraft.load_snapshot(end_offset, batches)

    def _append(self, batches: list[RecordBatch]) -> None:
        try:
            self.kraft.append(batches)
        except VoterSetError as e:
            log.warning("Node %d: control records not applied: %s", self.config.node_id, e)
