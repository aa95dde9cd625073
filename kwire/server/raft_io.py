"""Carrying out the raft core's storage actions on the node's log and files: the
quorum-state file (PersistQuorumState), the epoch's first control batch and the voters
records of a voter change (AppendLeaderChange, AppendControlRecords), truncation
(TruncateTo), a snapshot fetched from the leader (StartSnapshotFetch, WriteSnapshotChunk,
InstallSnapshot); and, at start-up, what the core is built from (the persisted
quorum-state, a kraft.version 1 log's voter history).

The raft driver (`kwire.server.raft_driver`) calls these through the node's methods of the
same names. An I/O error here is fatal, as in Kafka: the node's fault handler.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from kwire.log import read_quorum_state, write_quorum_state
from kwire.log.quorum_state import QuorumStateData, election_quorum_state
from kwire.raft.state import (
    AppendControlRecords,
    AppendLeaderChange,
    InstallSnapshot,
    PersistQuorumState,
    StartSnapshotFetch,
    WriteSnapshotChunk,
)
from kwire.raft.voter_set import (
    KRaftControlRecords,
    VoterSet,
    VoterSetError,
    kraft_control_values,
)
from kwire.records import Record, build_batch, encode_batch, encode_control_record_key
from kwire.records.control import ControlRecordType
from kwire.server.heap import collector_paused
from kwire.server.quorum_voters import read_control_records, voters_on_listener
from kwire.server.snapshots import SnapshotDownload, load_newest_snapshot

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.node")


class RaftStorage:
    """The node's side of the raft core's persistence: `quorum_state_path` and the
    snapshot being downloaded (`download`)."""

    def __init__(self, node: ControllerNode, partition_dir: Path) -> None:
        self.node = node
        self.quorum_state_path = partition_dir / "quorum-state"
        self.download = SnapshotDownload(node.log)

    # -- start-up -------------------------------------------------------------------------------

    def read_quorum_state(self) -> QuorumStateData | None:
        if not self.quorum_state_path.exists():
            return None
        return read_quorum_state(self.quorum_state_path)

    def control_records(self) -> KRaftControlRecords | None:
        """A kraft.version 1 log's voter history for the core (KafkaRaftClient.initialize
        reads it from the newest snapshot and the log), None at kraft.version 0. Without
        `controller.quorum.voters` (a dynamic quorum) the node's voters become the voter
        set's, each at its endpoint on the controller listener. A log that cannot be read
        is fatal (the fault handler)."""
        node = self.node
        static = tuple(node.settings.voters)
        try:
            records = read_control_records(
                node.log,
                VoterSet.from_static(
                    node.settings.listener_name, [(v.node_id, v.host, v.port) for v in static]
                ),
            )
        except (OSError, ValueError) as exc:
            node.fault_handler("Unable to read the KRaft control records of the log", exc)
        if not records.last_kraft_version.is_reconfig_supported:
            return None
        if not static:
            voters = voters_on_listener(records.last_voter_set, node.settings.listener_name)
            node.settings = dataclasses.replace(
                node.settings,
                voters=voters,
                controller=dataclasses.replace(
                    node.settings.controller, quorum_node_ids=tuple(v.node_id for v in voters)
                ),
            )
            log.info(
                "Node %d: kraft.version %d, voters %s from the log",
                node.settings.node_id,
                int(records.last_kraft_version),
                ", ".join(f"{v.node_id}@{v.host}:{v.port}" for v in voters) or "none",
            )
        return records

    def snapshot_kraft_records(self, last_offset: int) -> list[tuple[ControlRecordType, bytes]]:
        """The KRaftVersion and Voters records of a snapshot whose last contained offset
        is `last_offset` (the values at that offset; those the core holds last when it has
        not read that far: no control record lies beyond what it was fed)."""
        history = self.node.raft.control_records
        try:
            version = history.kraft_version_at(last_offset)
            voters = history.voter_set_at(last_offset)
        except VoterSetError:
            version, voters = history.last_kraft_version, history.last_voter_set
        return kraft_control_values(version, voters if version.is_reconfig_supported else None)

    # -- the core's actions ---------------------------------------------------------------------

    def persist_quorum_state(self, action: PersistQuorumState) -> None:
        # The file's data version follows the log's kraft.version (ElectionState.toQuorumStateData).
        state = election_quorum_state(
            action.kraft_version,
            leader_id=action.leader_id,
            leader_epoch=action.leader_epoch,
            voted_id=action.voted_id,
            voted_directory_id=action.voted_directory_id,
            voter_ids=tuple(v.node_id for v in self.node.settings.voters),
        )
        try:
            write_quorum_state(self.quorum_state_path, state)
        except OSError as exc:
            self.node.fault_handler(f"Unable to write {self.quorum_state_path}", exc)

    def append_leader_change(
        self, action: AppendLeaderChange | AppendControlRecords, now_ms: int
    ) -> None:
        """The epoch's first batch: the LeaderChangeMessage, then (kraft.version 1) the
        KRaftVersion and Voters records, one control batch (LeaderState's start of epoch);
        or a VotersRecord of a voter change (AppendControlRecords), likewise."""
        records = [
            Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
            for i, (kind, value) in enumerate(action.values())
        ]
        writes = self.node.writes
        writes.append_batch(
            encode_batch(build_batch(records, base_timestamp=now_ms, control=True)),
            action.epoch,
            now_ms,
        )
        # The epoch's first batch is flushed at once rather than in the flusher's turn:
        # nothing else can share it, and raft hears of the new leader's own copy sooner.
        writes.flush(now_ms)

    def truncate_to(self, offset: int) -> None:
        """Drop the log from `offset`; a controller that applied records there (a former
        leader whose renouncing did not come first) forgets them."""
        node = self.node
        if node.controller.last_applied_offset >= offset:
            node.revert_uncommitted(f"the log is truncated to offset {offset}")
        node.writes.truncate_to(offset)
        node.replay.restart_from(min(node.replay.applied_end, node.log.end_offset))
        node.replay.replay_target = min(node.replay.replay_target, node.log.end_offset)

    def download_snapshot(
        self, action: StartSnapshotFetch | WriteSnapshotChunk | InstallSnapshot, now_ms: int
    ) -> None:
        """A follower below the leader's log start fetches its snapshot; once installed,
        the standby controller is rebuilt from it and the log restarts at its end."""
        node = self.node
        try:
            match action:
                case StartSnapshotFetch(snapshot_id=snapshot_id):
                    self.download.start(snapshot_id)
                case WriteSnapshotChunk(snapshot_id=snapshot_id, position=position, data=data):
                    self.download.write(snapshot_id, position, data)
                case InstallSnapshot(snapshot_id=snapshot_id):
                    self.download.install(snapshot_id)
                    node.snapshots.on_truncated(0)
                    node.controller = node._new_controller()
                    with collector_paused():
                        load_newest_snapshot(node.log, node.controller)
                    node.replay.restart_from(snapshot_id.end_offset)
                    node.driver.on_flushed(snapshot_id.end_offset, now_ms)
        except OSError as exc:
            node.fault_handler("Unable to write a snapshot fetched from the leader", exc)
