"""kraft.version 1 (KIP-853) in the core: the voter set comes from the log's KRaft control
records and applies as soon as it is appended; requests name each voter's replica key
(directory id); a new leader writes KRaftVersion and Voters after its LeaderChange when the
voters come from the bootstrap checkpoint (Kafka 4.3.1's KafkaRaftClient, LeaderState,
QuorumState, RaftUtil)."""

from __future__ import annotations

import random
from uuid import UUID

from test_raft_election import granted_vote, vote
from test_raft_follower import response
from test_raft_leader import fetch as leader_fetch
from test_raft_pump import CLUSTER, ListLog

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.vote import VoteRequest
from kwire.raft.core import FetchRead, RaftCore
from kwire.raft.state import (
    METADATA_TOPIC,
    Action,
    AppendLeaderChange,
    PersistQuorumState,
    RaftConfig,
    SendRequest,
)
from kwire.raft.voter_set import (
    KRaftControlRecords,
    KRaftVersion,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
)
from kwire.records.batch import Record, build_batch, decode_batches, encode_batch
from kwire.records.control import ControlRecordType, encode_control_record_key

DIRS = {i: UUID(int=0x1000 + i) for i in range(1, 6)}


def node(i: int, directory: UUID | None = None, port: int | None = None) -> VoterNode:
    return VoterNode(
        ReplicaKey(i, DIRS[i] if directory is None else directory),
        (VoterEndpoint("CONTROLLER", "127.0.0.1", port or 9090 + i),),
        (0, 1),
    )


def voters(*ids: int) -> VoterSet:
    return VoterSet.from_nodes(node(i) for i in ids)


def dynamic(node_id: int, voter_set: VoterSet, **kw: object) -> RaftConfig:
    return RaftConfig(
        node_id=node_id,
        cluster_id=CLUSTER,
        voters=(),
        voter_set=voter_set,
        directory_id=DIRS[node_id],
        **kw,  # type: ignore[arg-type]
    )


def sent(actions: list[Action]) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest)]


def voters_batch(base_offset: int, epoch: int, voter_set: VoterSet) -> bytes:
    """A control batch as a leader writes it: KRaftVersion 1, then the VotersRecord."""
    records = [
        Record(
            offset_delta=0,
            key=encode_control_record_key(ControlRecordType.KRAFT_VERSION),
            value=KRaftVersionRecord(version=0, kraft_version=1).encode(0),
        ),
        Record(
            offset_delta=1,
            key=encode_control_record_key(ControlRecordType.KRAFT_VOTERS),
            value=voter_set.to_voters_record().encode(0),
        ),
    ]
    return encode_batch(
        build_batch(
            records,
            base_offset=base_offset,
            base_timestamp=0,
            partition_leader_epoch=epoch,
            control=True,
        )
    )


def elected(raft: RaftCore, votes: list[SendRequest], epoch: int) -> list[Action]:
    actions: list[Action] = []
    for v in votes[:1]:
        actions += raft.on_response(v.destination, v.request, granted_vote(v.destination, epoch), 1)
    assert raft.is_leader
    return actions


def candidate(node_id: int = 1, epoch: int = 2, **kw: object) -> tuple[RaftCore, list[Action]]:
    raft = RaftCore(
        dynamic(node_id, voters(1, 2, 3), **kw),
        ListLog(),
        persisted=QuorumStateData(leader_epoch=epoch, voted_id=node_id),
        rng=random.Random(0),
    )
    return raft, raft.start(0)


# -- requests name the voters' replica keys ---------------------------------------------------


def test_vote_requests_name_each_voters_directory_id_and_our_own() -> None:
    # RaftUtil.singletonVoteRequest(..., localReplicaKey, remoteVoter, ...)
    _, actions = candidate()
    votes = sent(actions)
    assert sorted(s.destination for s in votes) == [2, 3]
    for s in votes:
        assert isinstance(s.request, VoteRequest)
        p = s.request.topics[0].partitions[0]
        assert (p.voter_directory_id, p.replica_directory_id) == (DIRS[s.destination], DIRS[1])


def test_begin_quorum_epoch_names_the_voters_directory_id() -> None:
    raft, actions = candidate()
    actions = elected(raft, sent(actions), 2)
    begins = [s for s in sent(actions) if isinstance(s.request, BeginQuorumEpochRequest)]
    assert {
        s.destination: s.request.topics[0].partitions[0].voter_directory_id for s in begins
    } == {  # type: ignore[union-attr]
        2: DIRS[2],
        3: DIRS[3],
    }


def test_end_quorum_epoch_names_the_preferred_candidates_directory_ids() -> None:
    raft, actions = candidate()
    elected(raft, sent(actions), 2)
    ends = [s for s in sent(raft.resign(2)) if isinstance(s.request, EndQuorumEpochRequest)]
    assert ends
    p = ends[0].request.topics[0].partitions[0]  # type: ignore[union-attr]
    assert [(c.candidate_id, c.candidate_directory_id) for c in p.preferred_candidates] == [
        (2, DIRS[2]),
        (3, DIRS[3]),
    ]
    assert p.preferred_successors == [2, 3]


def test_a_preferred_candidate_with_another_directory_id_is_not_us() -> None:
    # endEpochElectionBackoff: our id with a foreign directory id does not count as us.
    raft = RaftCore(dynamic(2, voters(1, 2, 3)), ListLog())
    assert raft.end_epoch_election_backoff([(2, DIRS[2]), (3, DIRS[3])]) == 0
    assert raft.end_epoch_election_backoff([(2, UUID(int=7)), (3, DIRS[3])]) == 1000
    assert raft.end_epoch_election_backoff([(3, DIRS[3]), (2, UUID(int=0))]) == 500


def test_a_vote_for_another_directory_of_our_id_is_refused_invalid_voter_key() -> None:
    raft = RaftCore(dynamic(2, voters(1, 2, 3)), ListLog(), rng=random.Random(0))
    raft.start(0)
    answer, _ = raft.handle_vote(vote(1, 1, voter_id=2, voter_directory_id=UUID(int=9)), 1)
    p = answer.topics[0].partitions[0]
    assert (p.error_code, p.vote_granted) == (ErrorCode.INVALID_VOTER_KEY, False)
    answer, actions = raft.handle_vote(vote(1, 1, voter_id=2, voter_directory_id=DIRS[2]), 2)
    assert answer.topics[0].partitions[0].vote_granted


def test_a_vote_is_persisted_with_the_candidates_directory_id_at_kraft_version_1() -> None:
    raft = RaftCore(dynamic(2, voters(1, 2, 3)), ListLog(), rng=random.Random(0))
    raft.start(0)
    request = vote(1, 1, voter_id=2, voter_directory_id=DIRS[2])
    request.topics[0].partitions[0].replica_directory_id = DIRS[1]
    _, actions = raft.handle_vote(request, 1)
    # (Unattached in epoch 1 is made durable first, then the vote.)
    persist = [a for a in actions if isinstance(a, PersistQuorumState)][-1]
    assert (persist.voted_id, persist.voted_directory_id, persist.kraft_version) == (
        1,
        DIRS[1],
        1,
    )


# -- the leader's start-of-epoch control records ----------------------------------------------


def test_a_leader_whose_voters_come_from_the_bootstrap_checkpoint_writes_them_again() -> None:
    # LeaderState.appendStartOfEpochControlRecords: voters at offset -1, so LeaderChange,
    # KRaftVersion 1 and the VotersRecord (with this leader's own entry) in one batch.
    mine = (VoterEndpoint("CONTROLLER", "10.0.0.1", 19091),)
    raft, actions = candidate(local_endpoints=mine)
    [append] = [a for a in elected(raft, sent(actions), 2) if isinstance(a, AppendLeaderChange)]
    kinds = [kind for kind, _ in append.values()]
    assert kinds == [
        ControlRecordType.LEADER_CHANGE,
        ControlRecordType.KRAFT_VERSION,
        ControlRecordType.KRAFT_VOTERS,
    ]
    record = VotersRecord.decode(append.values()[2][1], 0)
    written = VoterSet.from_voters_record(record)
    assert written.node(1) == VoterNode(ReplicaKey(1, DIRS[1]), mine, (0, 1))
    assert written.node(2) == node(2)
    # Once written, the voters are the log's (offset 1 + 1): the next leader writes none.
    assert raft.control_records.last_voter_set_offset == 2
    assert raft.voter(1) is not None and raft.voter(1).host == "10.0.0.1"  # type: ignore[union-attr]


def test_a_static_quorum_leader_writes_the_leader_change_alone() -> None:
    from test_raft_pump import config

    raft = RaftCore(config(1, 3), ListLog(), persisted=QuorumStateData(leader_epoch=2, voted_id=1))
    actions = elected(raft, sent(raft.start(0)), 2)
    [append] = [a for a in actions if isinstance(a, AppendLeaderChange)]
    assert append.control_records == ()
    assert all(p.kraft_version == 0 for p in actions if isinstance(p, PersistQuorumState))


def test_a_leader_with_voters_already_in_the_log_writes_no_voter_records() -> None:
    history = KRaftControlRecords()
    history.load_bootstrap(KRaftVersion.KRAFT_VERSION_1, voters(1, 2, 3))
    history.append(decode_batches(voters_batch(0, 1, voters(1, 2, 3))))
    log = ListLog([1, 1])
    raft = RaftCore(
        dynamic(1, voters(1, 2, 3)),
        log,
        persisted=QuorumStateData(leader_epoch=2, voted_id=1),
        control_records=history,
    )
    [append] = [
        a for a in elected(raft, sent(raft.start(0)), 2) if isinstance(a, AppendLeaderChange)
    ]
    assert append.control_records == ()


def test_control_records_not_read_to_the_log_end_are_refused() -> None:
    history = KRaftControlRecords()
    history.load_bootstrap(KRaftVersion.KRAFT_VERSION_1, voters(1, 2, 3))
    try:
        RaftCore(dynamic(1, voters(1, 2, 3)), ListLog([1, 1]), control_records=history)
    except ValueError as e:
        assert "the log ends at 2" in str(e)
    else:
        raise AssertionError("a history behind the log was taken")


# -- the newest voter set applies once appended -----------------------------------------------


def follower_of(
    node_id: int, leader: int, voter_set: VoterSet
) -> tuple[RaftCore, ListLog, FetchRequest]:
    log = ListLog()
    raft = RaftCore(
        dynamic(node_id, voter_set),
        log,
        persisted=QuorumStateData(leader_id=leader, leader_epoch=2),
        rng=random.Random(0),
    )
    [fetch] = sent(raft.start(0))
    assert isinstance(fetch.request, FetchRequest)
    return raft, log, fetch.request


def test_a_follower_takes_the_voter_set_it_appends_at_once() -> None:
    raft, _, fetch = follower_of(2, 1, voters(1, 2, 3))
    assert raft.voter_ids == {1, 2, 3} and raft.majority() == 2
    records = voters_batch(0, 2, voters(1, 2, 3, 4, 5))
    raft.on_response(1, fetch, response(1, 2, records=records), 5)
    assert raft.voter_ids == {1, 2, 3, 4, 5} and raft.majority() == 3
    assert raft.control_records.last_voter_set_offset == 1


def test_a_replica_left_out_of_the_appended_voter_set_is_an_observer() -> None:
    raft, _, fetch = follower_of(3, 1, voters(1, 2, 3))
    assert raft.is_voter
    # Voter 3's entry now has another directory (its disk was re-formatted).
    changed = VoterSet.from_nodes([node(1), node(2), node(3, directory=UUID(int=99))])
    raft.on_response(1, fetch, response(1, 2, records=voters_batch(0, 2, changed)), 5)
    assert not raft.is_voter
    raft.poll(60_000)  # an observer never stands for election
    assert raft.state_name == "follower"


def test_truncating_below_a_voters_record_forgets_it() -> None:
    raft, log, fetch = follower_of(2, 1, voters(1, 2, 3))
    raft.on_response(1, fetch, response(1, 2, records=voters_batch(0, 1, voters(1, 2))), 5)
    assert raft.voter_ids == {1, 2}
    log.entries += [1, 1]
    [again] = sent(raft.on_flushed(2, 6))
    assert isinstance(again.request, FetchRequest)
    actions = raft.on_response(1, again.request, response(1, 2, diverging=(0, 0)), 7)
    assert any(type(a).__name__ == "TruncateTo" for a in actions)
    assert raft.voter_ids == {1, 2, 3}  # the bootstrap checkpoint's again


def test_a_fetch_from_a_voters_id_with_another_directory_counts_as_an_observer() -> None:
    # LeaderState.isVoter(ReplicaKey): the high watermark and check quorum ignore it.
    log = ListLog()
    raft = RaftCore(
        dynamic(1, voters(1, 2, 3)),
        log,
        persisted=QuorumStateData(leader_epoch=2, voted_id=1),
        rng=random.Random(0),
    )
    elected(raft, sent(raft.start(0)), 2)
    log.entries.append(2)  # the LeaderChange batch
    raft.on_flushed(1, 1)
    for directory in (UUID(int=99), DIRS[2]):
        request = leader_fetch(2, 1, 2, 2)
        request.topics[0].partitions[0].replica_directory_id = directory
        assert isinstance(raft.fetch(request, 2), FetchRead)
        raft.complete_fetch(request, b"", 2)
        if directory != DIRS[2]:
            assert raft.high_watermark == -1  # not voter 2: no majority holds offset 1
    assert raft.high_watermark == 1
    describe = raft.describe_quorum(_describe(), 3)
    partition = describe.topics[0].partitions[0]
    assert [(o.replica_id, o.replica_directory_id) for o in partition.observers] == [
        (2, UUID(int=99))
    ]
    assert {v.replica_id: v.replica_directory_id for v in partition.current_voters} == {
        1: DIRS[1],
        2: DIRS[2],
        3: DIRS[3],
    }


def _describe():  # type: ignore[no-untyped-def]
    from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest

    return DescribeQuorumRequest(
        topics=[
            DescribeQuorumRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
            )
        ]
    )


def test_a_downloaded_snapshot_brings_the_voter_set_it_holds() -> None:
    # KafkaRaftClient.handleFetchSnapshotResponse: once installed, the partition state
    # reloads from the snapshot, whose first batch holds its KRaftVersion and Voters records.
    from test_raft_follower import chunk

    from kwire.log.snapshots import SnapshotId
    from kwire.protocol.messages.control.snapshot_header_record import SnapshotHeaderRecord
    from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest

    raft, _, fetch = follower_of(1, 3, voters(1, 2, 3))
    snapshot = SnapshotId(end_offset=40, epoch=2)
    kinds_values = [
        (ControlRecordType.SNAPSHOT_HEADER, SnapshotHeaderRecord(version=0).encode(0)),
        (ControlRecordType.KRAFT_VERSION, KRaftVersionRecord(kraft_version=1).encode(0)),
        (ControlRecordType.KRAFT_VOTERS, voters(1, 2, 3, 4, 5).to_voters_record().encode(0)),
    ]
    head = encode_batch(
        build_batch(
            [
                Record(offset_delta=i, key=encode_control_record_key(k), value=v)
                for i, (k, v) in enumerate(kinds_values)
            ],
            base_timestamp=0,
            partition_leader_epoch=2,
            control=True,
        )
    )
    data = head + b"data records follow"
    [first] = sent(raft.on_response(3, fetch, response(3, 2, snapshot=(40, 2)), 10))
    position = 0
    request = first.request
    for piece in (data[:5], data[5:30], data[30:]):  # chunks cut inside the first batch
        assert isinstance(request, FetchSnapshotRequest)
        actions = raft.on_response(3, request, chunk(snapshot, position, piece, len(data)), 11)
        position += len(piece)
        if position < len(data):
            assert raft.voter_ids == {1, 2, 3}
            [nxt] = sent(actions)
            request = nxt.request
    assert raft.voter_ids == {1, 2, 3, 4, 5}
    assert raft.control_records.last_voter_set_offset == 39  # the snapshot's last offset


def test_a_follower_keeps_fetching_from_a_leader_the_appended_voter_set_removed() -> None:
    """RemoveRaftVoter of the leader: until the VotersRecord commits it still leads, and
    its followers keep fetching from it at the endpoint they followed it at (Kafka's
    FollowerState keeps the leader's endpoints whatever the voter set says)."""
    raft, log, fetch = follower_of(2, 1, voters(1, 2, 3))
    raft.on_response(1, fetch, response(1, 2, records=voters_batch(0, 2, voters(2, 3))), 5)
    assert raft.voter_ids == {2, 3} and raft.leader_id == 1
    log.entries += [2, 2]
    [again] = sent(raft.on_flushed(2, 6))
    assert isinstance(again.request, FetchRequest)
    assert (again.destination, again.endpoint) == (
        1,
        VoterEndpoint("CONTROLLER", "127.0.0.1", 9091),
    )
