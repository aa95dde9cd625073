"""Upgrading a static quorum (kraft.version 0) to kraft.version 1 in the core, as Kafka
4.3.1 does it (KAFKA-16538): followers report themselves to each new leader with
UpdateRaftVoter, the leader keeps the reports in memory, and once every voter supports
kraft.version 1 the upgrade appends KRaftVersionRecord(1) then the VotersRecord in one
control batch (KafkaRaftClient.shouldSendUpdateVoteRequest, UpdateVoterHandler,
LeaderState.maybeAppendUpgradedKRaftVersion)."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from uuid import UUID

import pytest
from test_raft_election import granted_vote
from test_raft_follower import response as fetch_answer
from test_raft_pump import CLUSTER, ListLog
from test_raft_reconfig import Leader as DynamicLeader
from test_raft_reconfig import add_request, kraft_versions, probe_of, update_request

from kwire.kraft_upgrade import KRaftUpgradeError, RefusalKind
from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)
from kwire.raft.core import RaftCore
from kwire.raft.state import (
    METADATA_TOPIC_ID,
    NO_DIRECTORY_ID,
    Action,
    AppendControlRecords,
    AppendLeaderChange,
    RaftConfig,
    SendFailure,
    SendRequest,
    Voter,
)
from kwire.raft.voter_set import KRaftVersion, ReplicaKey, VoterEndpoint
from kwire.records.batch import decode_batch
from kwire.records.control import ControlRecordType

DIRS = {i: UUID(int=0x1000 + i) for i in range(1, 6)}
PORTS = {1: 9091, 2: 9092, 3: 9093}
FETCH_TIMEOUT_MS = 2000


def static_config(node_id: int, ports: dict[int, int] = PORTS, **kw: object) -> RaftConfig:
    return RaftConfig(
        node_id=node_id,
        cluster_id=CLUSTER,
        voters=tuple(Voter(node_id=i, host="127.0.0.1", port=p) for i, p in ports.items()),
        directory_id=kw.pop("directory_id", DIRS[node_id]),  # type: ignore[arg-type]
        local_endpoints=(VoterEndpoint("CONTROLLER", "127.0.0.1", ports[node_id]),),
        **kw,  # type: ignore[arg-type]
    )


class StaticLeader:
    """Node `leader_id` leading epoch 1 of a static three-voter quorum, its epoch committed."""

    def __init__(self, leader_id: int = 1, ports: dict[int, int] = PORTS, **kw: object) -> None:
        self.log = ListLog()
        self.raft = RaftCore(
            static_config(leader_id, ports, **kw),
            self.log,
            persisted=QuorumStateData(leader_epoch=1, voted_id=leader_id),
            rng=random.Random(0),
        )
        actions = self.raft.start(0)
        other = next(i for i in ports if i != leader_id)
        vote = next(a for a in actions if isinstance(a, SendRequest) and a.destination == other)
        self.carry_out(
            actions + self.raft.on_response(other, vote.request, granted_vote(other, 1), 0)
        )
        assert self.raft.is_leader
        self.fetch(other, self.log.end_offset)  # a majority holds the epoch's first batch
        assert self.raft.high_watermark == self.log.end_offset

    def carry_out(self, actions: list[Action]) -> list[Action]:
        seen = list(actions)
        for action in actions:
            if isinstance(action, AppendLeaderChange | AppendControlRecords):
                assert not isinstance(action, AppendControlRecords) or (
                    action.base_offset == self.log.end_offset
                )
                self.log.entries += [action.epoch] * len(action.values())
                seen += self.carry_out(self.raft.on_flushed(self.log.end_offset, 1))
        return seen

    def fetch(self, replica: int, offset: int) -> list[Action]:
        request = FetchRequest(
            cluster_id=CLUSTER,
            replica_state=FetchRequest.ReplicaState(replica_id=replica),
            max_wait_ms=0,
            topics=[
                FetchRequest.FetchTopic(
                    topic_id=METADATA_TOPIC_ID,
                    partitions=[
                        FetchRequest.FetchPartition(
                            current_leader_epoch=self.raft.epoch,
                            fetch_offset=offset,
                            last_fetched_epoch=self.raft.epoch if offset else 0,
                            replica_directory_id=DIRS.get(replica, UUID(int=0)),
                        )
                    ],
                )
            ],
        )
        self.raft.fetch(request, 1)
        return self.carry_out(self.raft.complete_fetch(request, b"", 1)[1])

    def report(self, voter_id: int, low: int = 0, high: int = 1) -> UpdateRaftVoterResponse:
        """Voter `voter_id` sends the UpdateRaftVoter a 4.3.1 follower sends its leader."""
        request = update_request(
            voter_id,
            self.raft.config.voters[voter_id - 1].port,
            self.raft.epoch,
            listeners=[
                UpdateRaftVoterRequest.Listener(
                    name="CONTROLLER",
                    host="127.0.0.1",
                    port=self.raft.config.voters[voter_id - 1].port,
                )
            ],
            kraft_version_feature=UpdateRaftVoterRequest.KRaftVersionFeature(
                min_supported_version=low, max_supported_version=high
            ),
        )
        answer, actions = self.raft.handle_update_raft_voter(request, 1)
        assert not [a for a in actions if isinstance(a, AppendControlRecords)]
        return answer

    def upgrade(self, level: int = 1, *, validate_only: bool = False) -> tuple[bool, list[Action]]:
        done, actions = self.raft.upgrade_kraft_version(self.raft.epoch, level, validate_only, 1)
        return done, self.carry_out(actions)


def upgrade_batch(actions: list[Action]) -> list[tuple[ControlRecordType, bytes]]:
    (batch,) = [a for a in actions if isinstance(a, AppendControlRecords)]
    return batch.values()


# -- the leader keeps what its followers report ---------------------------------------------


def test_a_static_leader_keeps_each_voters_report_in_memory_and_writes_nothing() -> None:
    leader = StaticLeader()
    answer = leader.report(2)
    assert answer.error_code == ErrorCode.NONE
    assert (answer.current_leader.leader_id, answer.current_leader.leader_epoch) == (1, 1)
    assert (answer.current_leader.host, answer.current_leader.port) == ("127.0.0.1", 9091)
    role = leader.raft.role
    assert role.volatile_voters is not None  # type: ignore[union-attr]
    reported = role.volatile_voters.node(2)  # type: ignore[union-attr]
    assert reported is not None and reported.key == ReplicaKey(2, DIRS[2])
    assert reported.supported_kraft_versions == (0, 1)
    # The leader's own entry comes from its listeners; voter 3 is still as configured.
    assert role.volatile_voters.node(1).key == ReplicaKey(1, DIRS[1])  # type: ignore[union-attr]
    assert role.volatile_voters.node(3).key == ReplicaKey(3)  # type: ignore[union-attr]
    assert leader.raft.kraft_version is KRaftVersion.KRAFT_VERSION_0
    assert leader.raft.voter_set.node(2).key == ReplicaKey(2)  # type: ignore[union-attr]


def test_a_report_without_a_directory_id_is_an_invalid_request() -> None:
    leader = StaticLeader()
    request = update_request(2, 9092, leader.raft.epoch, voter_directory_id=UUID(int=0))
    answer, _ = leader.raft.handle_update_raft_voter(request, 1)
    assert answer.error_code == ErrorCode.INVALID_REQUEST


def test_a_report_before_the_leader_commits_its_epoch_times_out() -> None:
    log = ListLog()
    raft = RaftCore(
        static_config(1),
        log,
        persisted=QuorumStateData(leader_epoch=1, voted_id=1),
        rng=random.Random(0),
    )
    actions = raft.start(0)
    vote = next(a for a in actions if isinstance(a, SendRequest) and a.destination == 2)
    raft.on_response(2, vote.request, granted_vote(2, 1), 0)
    assert raft.is_leader and raft.high_watermark < 0
    answer, _ = raft.handle_update_raft_voter(update_request(2, 9092, 1), 1)
    assert answer.error_code == ErrorCode.REQUEST_TIMED_OUT


# -- the upgrade ----------------------------------------------------------------------------

NOT_ALL = (
    "Invalid upgrade of kraft.version to KRAFT_VERSION_1 because not all of the voters support it"
)


def test_an_upgrade_before_every_voter_reported_is_refused_even_to_validate() -> None:
    leader = StaticLeader()
    leader.report(2)
    for validate_only in (False, True):
        with pytest.raises(KRaftUpgradeError) as refused:
            leader.upgrade(validate_only=validate_only)
        assert (refused.value.kind, refused.value.message) == (RefusalKind.INVALID, NOT_ALL)
    assert leader.raft.kraft_version is KRaftVersion.KRAFT_VERSION_0


def test_a_voter_reporting_only_kraft_version_0_blocks_the_upgrade() -> None:
    leader = StaticLeader()
    leader.report(2)
    leader.report(3, 0, 0)
    with pytest.raises(KRaftUpgradeError, match="not all of the voters support it"):
        leader.upgrade()


def test_validate_only_accepts_once_every_voter_reported_and_writes_nothing() -> None:
    leader = StaticLeader()
    leader.report(2)
    leader.report(3)
    end = leader.log.end_offset
    assert leader.upgrade(validate_only=True) == (True, [])
    assert leader.log.end_offset == end
    assert leader.raft.kraft_version is KRaftVersion.KRAFT_VERSION_0


def test_the_upgrade_appends_kraft_version_then_the_reported_voters_in_one_batch() -> None:
    leader = StaticLeader()
    leader.report(2)
    leader.report(3)
    end = leader.log.end_offset
    done, actions = leader.upgrade()
    assert done
    values = upgrade_batch(actions)
    assert [kind for kind, _ in values] == [
        ControlRecordType.KRAFT_VERSION,
        ControlRecordType.KRAFT_VOTERS,
    ]
    assert values[0][1] == KRaftVersionRecord(version=0, kraft_version=1).encode(0)
    record = VotersRecord.decode(values[1][1], 0)
    assert [(v.voter_id, v.voter_directory_id) for v in record.voters] == [
        (i, DIRS[i]) for i in (1, 2, 3)
    ]
    assert {
        (
            v.kraft_version_feature.min_supported_version,
            v.kraft_version_feature.max_supported_version,
        )
        for v in record.voters
    } == {(0, 1)}
    assert leader.log.end_offset == end + 2
    # From the append on the quorum is dynamic, and its voters carry their directory ids.
    assert leader.raft.kraft_version is KRaftVersion.KRAFT_VERSION_1
    assert leader.raft.voter_set.voter_keys() == {ReplicaKey(i, DIRS[i]) for i in (1, 2, 3)}
    assert leader.raft.control_records.last_voter_set_offset == end + 1


def test_asking_again_for_the_level_reached_or_pending_does_nothing() -> None:
    leader = StaticLeader()
    leader.report(2)
    leader.report(3)
    leader.upgrade()
    assert leader.upgrade() == (False, [])
    assert leader.upgrade(validate_only=True) == (False, [])


def test_a_sole_static_voter_upgrades_at_once_with_only_its_own_entry() -> None:
    leader_log = ListLog()
    raft = RaftCore(static_config(1, {1: 9091}), leader_log, rng=random.Random(0))
    for action in raft.start(0):
        if isinstance(action, AppendLeaderChange):
            leader_log.entries += [action.epoch] * len(action.values())
            raft.on_flushed(leader_log.end_offset, 0)
    done, actions = raft.upgrade_kraft_version(raft.epoch, 1, False, 1)
    assert done and raft.kraft_version is KRaftVersion.KRAFT_VERSION_1
    record = VotersRecord.decode(upgrade_batch(actions)[1][1], 0)
    assert [(v.voter_id, v.voter_directory_id) for v in record.voters] == [(1, DIRS[1])]


def test_after_the_upgrade_commits_a_voter_can_be_added() -> None:
    leader = StaticLeader()
    leader.report(2)
    leader.report(3)
    leader.upgrade()
    leader.fetch(2, leader.log.end_offset)  # the upgrade batch commits
    assert leader.raft.high_watermark == leader.log.end_offset
    leader.fetch(4, leader.log.end_offset)  # node 4 follows as an observer
    # Node 4 as AddRaftVoter names it (the request's listeners are the only thing used).
    response, actions = leader.raft.handle_add_raft_voter(add_request(4), 7, 1)
    assert response is None
    probe = probe_of(actions)
    seen = leader.carry_out(leader.raft.on_response(4, probe.request, kraft_versions(0, 1), 1))
    assert leader.raft.voter_ids == {1, 2, 3, 4}
    assert [a for a in seen if isinstance(a, AppendControlRecords)]


def test_a_downgrade_of_a_dynamic_quorum_is_refused() -> None:
    from test_raft_kraft_version import voters

    leader = DynamicLeader(voters(1, 2))
    with pytest.raises(KRaftUpgradeError) as refused:
        leader.raft.upgrade_kraft_version(leader.raft.epoch, 0, False, 1)
    assert refused.value.kind is RefusalKind.INVALID
    assert refused.value.message == (
        "Invalid upgrade of kraft.version from version KRAFT_VERSION_1 to KRAFT_VERSION_0 "
        "because the new version is a downgrade"
    )


def test_only_the_leader_of_the_given_epoch_upgrades() -> None:
    leader = StaticLeader()
    with pytest.raises(KRaftUpgradeError) as stale:
        leader.raft.upgrade_kraft_version(leader.raft.epoch - 1, 1, False, 1)
    assert stale.value.kind is RefusalKind.NOT_LEADER
    assert stale.value.message == (
        "Upgrade kraft version failed because the given epoch 0 is stale. Current leader epoch is 1"
    )
    follower = RaftCore(
        static_config(2),
        ListLog(),
        persisted=QuorumStateData(leader_id=1, leader_epoch=1),
        rng=random.Random(0),
    )
    follower.start(0)
    with pytest.raises(KRaftUpgradeError) as not_leader:
        follower.upgrade_kraft_version(1, 1, False, 1)
    assert not_leader.value.kind is RefusalKind.NOT_LEADER


# -- genuine bytes ---------------------------------------------------------------------------

CAPTURE = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-4.3" / "quorum-prevote"
SEGMENT = CAPTURE / "metadata-log-1" / "__cluster_metadata-0" / "00000000000000000000.log"
GENUINE_PORTS = {1: 39311, 2: 39312, 3: 39313}
GENUINE_DIRS = {  # the directory ids the genuine VotersRecord names
    1: "dkuzBlOnSDmSdp3skeoWwA",
    2: "NieKnjGGTVSIYo91-2YSjQ",
    3: "H3gXG6QsRQyb4oSF40UTLA",
}


def kafka_uuid(text: str) -> UUID:
    return UUID(bytes=base64.urlsafe_b64decode(text + "=="))


@pytest.mark.skipif(not SEGMENT.exists(), reason="../shared/captures is absent")
def test_the_upgrade_records_are_the_bytes_a_genuine_4_3_leader_writes_for_those_voters() -> None:
    """Kafka 4.3.1's node 2 wrote KRaftVersion(1) and the VotersRecord of voters 1-3 at
    offsets 1 and 2 of the quorum-prevote log; a kwire leader upgraded from the static
    voters with the same reports must write the same record values."""
    genuine = decode_batch(SEGMENT.read_bytes(), 0)[0]
    expected = [r.value for r in genuine.records[1:3]]
    dirs = {i: kafka_uuid(text) for i, text in GENUINE_DIRS.items()}
    leader = StaticLeader(2, GENUINE_PORTS, directory_id=dirs[2])
    for voter in (1, 3):
        request = update_request(
            voter,
            GENUINE_PORTS[voter],
            leader.raft.epoch,
            voter_directory_id=dirs[voter],
            listeners=[
                UpdateRaftVoterRequest.Listener(
                    name="CONTROLLER", host="127.0.0.1", port=GENUINE_PORTS[voter]
                )
            ],
        )
        answer, _ = leader.raft.handle_update_raft_voter(request, 1)
        assert answer.error_code == ErrorCode.NONE
    _, actions = leader.upgrade()
    assert [value for _, value in upgrade_batch(actions)] == expected


# -- followers report themselves to each new leader ------------------------------------------


def static_follower(leader: int = 1, epoch: int = 1) -> tuple[RaftCore, SendRequest]:
    raft = RaftCore(
        static_config(2),
        ListLog(),
        persisted=QuorumStateData(leader_id=leader, leader_epoch=epoch),
        rng=random.Random(0),
    )
    (first,) = [a for a in raft.start(0) if isinstance(a, SendRequest)]
    assert isinstance(first.request, FetchRequest)
    return raft, first


def next_send(actions: list[Action]) -> SendRequest:
    (send,) = [a for a in actions if isinstance(a, SendRequest)]
    return send


def update_answer(error: ErrorCode, leader: int = 1, epoch: int = 1) -> UpdateRaftVoterResponse:
    return UpdateRaftVoterResponse(
        error_code=error,
        current_leader=UpdateRaftVoterResponse.CurrentLeader(leader_id=leader, leader_epoch=epoch),
    )


def test_a_static_follower_reports_itself_to_its_leader_after_one_fetch_timeout() -> None:
    raft, fetch = static_follower()
    fetch = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), 1000))
    assert isinstance(fetch.request, FetchRequest)  # the period has not passed yet
    update = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), FETCH_TIMEOUT_MS))
    request = update.request
    assert isinstance(request, UpdateRaftVoterRequest) and update.destination == 1
    assert (request.cluster_id, request.current_leader_epoch) == (CLUSTER, 1)
    assert (request.voter_id, request.voter_directory_id) == (2, DIRS[2])
    assert [(e.name, e.host, e.port) for e in request.listeners] == [
        ("CONTROLLER", "127.0.0.1", 9092)
    ]
    feature = request.kraft_version_feature
    assert (feature.min_supported_version, feature.max_supported_version) == (0, 1)


def test_a_static_follower_without_a_directory_id_never_reports_itself() -> None:
    # (a log directory formatted before Kafka 3.7: the leader could only refuse the report)
    raft = RaftCore(
        static_config(2, directory_id=NO_DIRECTORY_ID),
        ListLog(),
        persisted=QuorumStateData(leader_id=1, leader_epoch=1),
        rng=random.Random(0),
    )
    (fetch,) = [a for a in raft.start(0) if isinstance(a, SendRequest)]
    for now in range(FETCH_TIMEOUT_MS, 4 * FETCH_TIMEOUT_MS, 500):
        fetch = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), now))
        assert isinstance(fetch.request, FetchRequest), now


@pytest.mark.parametrize("error", [ErrorCode.NONE, ErrorCode.UNSUPPORTED_VERSION])
def test_once_the_leader_took_the_report_the_follower_only_fetches_in_that_epoch(
    error: ErrorCode,
) -> None:
    """NONE from a 4.3.1 leader, UNSUPPORTED_VERSION from a 3.9 one: either ends it."""
    raft, fetch = static_follower()
    update = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), FETCH_TIMEOUT_MS))
    fetch = next_send(raft.on_response(1, update.request, update_answer(error), FETCH_TIMEOUT_MS))
    assert isinstance(fetch.request, FetchRequest)
    for now in range(2 * FETCH_TIMEOUT_MS, 6 * FETCH_TIMEOUT_MS, 500):
        fetch = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), now))
        assert isinstance(fetch.request, FetchRequest), now


def test_an_unanswered_report_is_sent_again_one_period_later() -> None:
    raft, fetch = static_follower()
    update = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), FETCH_TIMEOUT_MS))
    fetch = next_send(
        raft.on_response(
            1, update.request, update_answer(ErrorCode.REQUEST_TIMED_OUT), FETCH_TIMEOUT_MS + 10
        )
    )
    # Refused: the leader's connection backs off, so the next Fetch may go to another voter.
    assert isinstance(fetch.request, FetchRequest)
    fetch = next_send(raft.on_response(fetch.destination, fetch.request, fetch_answer(1, 1), 3000))
    assert isinstance(fetch.request, FetchRequest)
    again = next_send(
        raft.on_response(fetch.destination, fetch.request, fetch_answer(1, 1), 2 * FETCH_TIMEOUT_MS)
    )
    assert isinstance(again.request, UpdateRaftVoterRequest)


def test_a_leader_without_the_api_counts_the_report_handled_without_backing_off() -> None:
    raft, fetch = static_follower()
    update = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), FETCH_TIMEOUT_MS))
    after = raft.on_send_failed(
        1, update.request, SendFailure.UNSUPPORTED_VERSION, FETCH_TIMEOUT_MS
    )
    assert isinstance(next_send(after).request, FetchRequest)  # no backoff before the Fetch


def test_the_next_leader_gets_a_report_of_its_own() -> None:
    raft, fetch = static_follower()
    update = next_send(raft.on_response(1, fetch.request, fetch_answer(1, 1), FETCH_TIMEOUT_MS))
    fetch = next_send(
        raft.on_response(1, update.request, update_answer(ErrorCode.NONE), FETCH_TIMEOUT_MS)
    )
    # Leader 3 of epoch 2 answers the fetch in flight: a new follower state, a new period.
    moved = raft.on_response(1, fetch.request, fetch_answer(3, 2), FETCH_TIMEOUT_MS + 100)
    assert raft.leader_id == 3
    fetch = next_send(moved)
    update = next_send(
        raft.on_response(3, fetch.request, fetch_answer(3, 2), 2 * FETCH_TIMEOUT_MS + 100)
    )
    assert isinstance(update.request, UpdateRaftVoterRequest)
    assert update.destination == 3 and update.request.current_leader_epoch == 2
