"""The leader with followers: the high watermark, BeginQuorumEpoch, check quorum,
resignation and EndQuorumEpoch (LeaderState, ResignedState; Kafka 4.3.1's values)."""

from __future__ import annotations

import dataclasses
import random
from uuid import UUID

import pytest
from test_raft_election import granted_vote
from test_raft_pump import CLUSTER, Cluster, ListLog, config

from kwire.log.quorum_state import QuorumStateData
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.raft.core import FetchRead, FetchReady, RaftCore
from kwire.raft.quorum import java_hash_order
from kwire.raft.state import (
    FAST_FAILOVER_MAX_DELAY_MS,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    Action,
    AppendLeaderChange,
    HighWatermarkAdvanced,
    SendRequest,
)


def sent(actions: list[Action]) -> list[SendRequest]:
    return [a for a in actions if isinstance(a, SendRequest)]


def leader_of(
    entries: list[int], epoch: int = 2, voters: int = 3
) -> tuple[RaftCore, ListLog, list[Action]]:
    """Node 1, restarted as a Candidate of `epoch` with a log, granted by voter 2."""
    log = ListLog(list(entries))
    raft = RaftCore(
        config(1, voters),
        log,
        persisted=QuorumStateData(leader_epoch=epoch, voted_id=1),
        rng=random.Random(0),
    )
    votes = sent(raft.start(0))
    actions: list[Action] = []
    for vote in votes[: voters // 2]:  # with our own, a bare majority
        actions = raft.on_response(
            vote.destination, vote.request, granted_vote(vote.destination, epoch), 0
        )
    assert raft.is_leader and raft.epoch == epoch
    change = next(a for a in actions if isinstance(a, AppendLeaderChange))
    log.entries.append(change.epoch)
    return raft, log, actions + raft.on_flushed(log.end_offset, 0)


def fetch(replica: int, offset: int, last_epoch: int, epoch: int) -> FetchRequest:
    return FetchRequest(
        cluster_id=CLUSTER,
        replica_state=FetchRequest.ReplicaState(replica_id=replica),
        max_wait_ms=500,
        topics=[
            FetchRequest.FetchTopic(
                topic_id=METADATA_TOPIC_ID,
                partitions=[
                    FetchRequest.FetchPartition(
                        current_leader_epoch=epoch,
                        fetch_offset=offset,
                        last_fetched_epoch=last_epoch,
                    )
                ],
            )
        ],
    )


def replicate(raft: RaftCore, replica: int, offset: int, last_epoch: int, now: int) -> list[Action]:
    request = fetch(replica, offset, last_epoch, raft.epoch)
    outcome = raft.fetch(request, now)
    assert isinstance(outcome, FetchRead)
    _, actions = raft.complete_fetch(request, b"", now)
    return actions


def test_the_high_watermark_waits_for_a_majority_to_hold_a_record_of_the_new_epoch() -> None:
    raft, log, actions = leader_of([1] * 10)
    assert [a for a in actions if isinstance(a, HighWatermarkAdvanced)] == []
    # voter 2 holds the old epoch's ten records: a majority, but nothing of epoch 2 yet
    assert replicate(raft, 2, 10, 1, now=5) == []
    assert raft.high_watermark == -1
    # voter 3 fetches past the LeaderChangeMessage: 11 is on a majority and is of epoch 2
    assert replicate(raft, 3, 11, 2, now=6) == [HighWatermarkAdvanced(offset=11)]
    assert raft.high_watermark == 11


def test_begin_quorum_epoch_goes_to_every_voter_until_it_fetches() -> None:
    raft, _, actions = leader_of([])
    begins = [s for s in sent(actions) if isinstance(s.request, BeginQuorumEpochRequest)]
    assert sorted(s.destination for s in begins) == [2, 3]
    p = begins[0].request.topics[0].partitions[0]  # type: ignore[union-attr]
    assert (p.leader_id, p.leader_epoch) == (1, 2)
    assert [(e.name, e.port) for e in begins[0].request.leader_endpoints] == [("CONTROLLER", 9091)]  # type: ignore[union-attr]
    # Answered, and voter 2 fetches; at fetch_timeout / 2 only the silent voter 3 hears again.
    for s in begins:
        raft.on_response(s.destination, s.request, _begin_ok(2), 1)
    replicate(raft, 2, 1, 2, now=900)
    assert raft.next_deadline_ms() == 1000
    again = [s.destination for s in sent(raft.poll(1000))]
    assert again == [3]


def _begin_ok(epoch: int):  # type: ignore[no-untyped-def]
    from kwire.raft import messages

    return messages.begin_quorum_epoch_response(ErrorCode.NONE, epoch=epoch, leader=None)


def test_a_leader_without_fetches_from_a_majority_resigns_after_one_and_a_half_fetch_timeouts() -> (
    None
):
    raft, _, _ = leader_of([])
    raft.poll(2999)
    assert raft.is_leader
    actions = raft.poll(3000)  # fetch_timeout_ms 2000 * 1.5
    assert raft.state_name == "resigned" and raft.epoch == 2
    ends = [s for s in sent(actions) if isinstance(s.request, EndQuorumEpochRequest)]
    assert sorted(s.destination for s in ends) == [2, 3]


def test_fetches_from_a_majority_keep_the_leader_in_office() -> None:
    raft, _, _ = leader_of([])
    for now in range(1000, 10_000, 1000):
        replicate(raft, 2, 1, 2, now=now)  # voter 2 and the leader make a majority of 3
        raft.poll(now)
    assert raft.is_leader


def test_a_resigning_leader_prefers_the_voters_that_replicated_most() -> None:
    raft, log, _ = leader_of([], voters=5)
    log.entries += [2, 2, 2]
    raft.on_flushed(4, 1)
    replicate(raft, 4, 4, 2, now=2)
    replicate(raft, 2, 2, 2, now=2)
    replicate(raft, 5, 4, 2, now=2)
    actions = raft.resign(3)
    assert raft.state_name == "resigned"
    end = next(s for s in sent(actions) if isinstance(s.request, EndQuorumEpochRequest))
    p = end.request.topics[0].partitions[0]  # type: ignore[union-attr]
    # by descending fetch offset, ties by id, voters never heard from last
    assert p.preferred_successors == [4, 5, 2, 3]
    assert [c.candidate_id for c in p.preferred_candidates] == [4, 5, 2, 3]
    assert p.preferred_candidates[0].candidate_directory_id == UUID(int=0)


def _end_ok() -> EndQuorumEpochResponse:
    return EndQuorumEpochResponse(
        topics=[
            EndQuorumEpochResponse.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[EndQuorumEpochResponse.PartitionData(leader_id=1, leader_epoch=2)],
            )
        ]
    )


def test_a_resigned_leader_stops_once_answered_and_stands_again_after_an_election_timeout() -> None:
    raft, _, _ = leader_of([])
    actions = raft.poll(3000)  # check quorum expired
    for s in sent(actions):
        raft.on_response(s.destination, s.request, _end_ok(), 3001)
    assert raft.resignation_acknowledged
    deadline = raft.next_deadline_ms()
    assert 4000 <= deadline < 5000
    assert sent(raft.poll(deadline - 1)) == []
    raft.poll(deadline)
    # Unattached in epoch 3 with the Resigned timer, already expired: it stands at once
    # (QuorumState.transitionToUnattached keeps the remaining election time).
    assert raft.state_name == "prospective" and raft.epoch == 3


def test_a_leader_shutting_down_stays_resigned_until_another_leader_appears() -> None:
    raft, _, _ = leader_of([])
    for s in sent(raft.resign(1, timeout_ms=200_000)):
        raft.on_response(s.destination, s.request, _end_ok(), 2)
    assert raft.resignation_acknowledged
    raft.poll(60_000)
    assert raft.state_name == "resigned" and raft.epoch == 2
    assert not raft.shutdown_complete
    response, _ = raft.handle_begin_quorum_epoch(_begin(leader=2, epoch=3), 60_001)
    assert raft.state_name == "follower" and raft.leader_id == 2
    assert raft.shutdown_complete and not raft.shutdown_timed_out
    raft.poll(120_000)  # a follower shutting down never stands for election
    assert raft.state_name == "follower"


def _begin(leader: int, epoch: int) -> BeginQuorumEpochRequest:
    return BeginQuorumEpochRequest(
        cluster_id=CLUSTER,
        voter_id=1,
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name=METADATA_TOPIC,
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(leader_id=leader, leader_epoch=epoch)
                ],
            )
        ],
    )


@pytest.mark.parametrize(
    ("preferred", "node", "backoff_ms"),
    [
        ([2, 3], 2, 0),  # first: stand at once
        ([2, 3], 3, 500),  # 1000 >> (2 - 1)
        ([2, 3, 4], 3, 250),  # 1000 >> 2
        ([2, 3, 4], 4, 500),  # (1000 >> 2) << 1
        ([2, 3], 4, 1000),  # not named: the maximum
        ([], 2, 0),  # Kafka's loop leaves position 0: a restarted ex-leader's empty list
    ],
)
def test_end_quorum_epoch_backoff_follows_the_place_among_preferred_successors(
    preferred: list[int], node: int, backoff_ms: int
) -> None:
    raft = RaftCore(config(node, 5), ListLog())
    assert raft.end_epoch_election_backoff(preferred) == backoff_ms


def test_a_graceful_resignation_hands_over_to_the_preferred_successor() -> None:
    cluster = Cluster(3, seed=3)
    cluster.start()
    cluster.run_until(cluster.stable)
    (old,) = cluster.leaders()
    epoch = cluster.nodes[old].core.epoch
    ahead, behind = (i for i in sorted(cluster.nodes) if i != old)
    cluster.cut.add(frozenset((old, behind)))
    cluster.append(old, 3)
    cluster.run_until(lambda: cluster.nodes[ahead].log.end_offset == 4)
    cluster.cut.clear()
    cluster.carry_out(old, cluster.nodes[old].core.resign(cluster.now))
    start = cluster.now
    # (it leads on until `ahead` has fetched its whole log, at most one step D)
    cluster.run_until(lambda: any(n != old for n in cluster.leaders()))
    assert cluster.leaders() == [ahead]
    assert cluster.nodes[ahead].core.epoch == epoch + 1
    assert cluster.now - start < 100  # no fetch timeout, no election timeout: at once


@pytest.mark.parametrize(
    ("name", "entries", "offset", "last_epoch", "diverging"),
    [
        ("an epoch older than our log ends where our log begins", [2, 2], 1, 1, (1, 0)),
        ("an epoch we never had ends where the one before it ends", [1, 1, 2], 5, 3, (2, 3)),
        ("an epoch that ended earlier here", [1, 1, 3], 3, 1, (1, 2)),
    ],
)
def test_a_fetch_from_a_diverged_replica_names_where_to_truncate(
    name: str, entries: list[int], offset: int, last_epoch: int, diverging: tuple[int, int]
) -> None:
    raft, log, _ = leader_of(entries, epoch=4)
    request = fetch(2, offset, last_epoch, 4)
    outcome = raft.fetch(request, 5)
    assert isinstance(outcome, FetchReady), name
    data = outcome.response.responses[0].partitions[0]
    # never (-1, -1): a follower reads a negative epoch as "no divergence"
    assert (data.diverging_epoch.epoch, data.diverging_epoch.end_offset) == diverging, name


@pytest.mark.parametrize(
    ("ids", "order"),
    [
        ({3, 1, 2}, [1, 2, 3]),
        ({16, 1, 2}, [16, 1, 2]),  # 16 lands in bucket 0 of a 16-slot table
        (
            {100, 3, 70000},
            [70000, 3, 100],
        ),  # buckets: 70000 ^ (70000 >>> 16) & 15 = 1, 3, 100 & 15 = 4
    ],
)
def test_leader_change_voters_come_in_java_hash_set_order(ids: set[int], order: list[int]) -> None:
    # LeaderState.convertToVoters iterates a java.util.HashMap key set
    assert java_hash_order(frozenset(ids)) == order


def ends_sent(actions: list[Action]) -> list[int]:
    """The voters an EndQuorumEpoch went to."""
    return sorted(
        s.destination for s in sent(actions) if isinstance(s.request, EndQuorumEpochRequest)
    )


def shutting_down_with_voter_2_behind() -> RaftCore:
    """Node 1 leads epoch 2 over [1, 1, 2]; voter 2 has fetched up to offset 2 (one record
    behind), voter 3 never; then the node begins its graceful shutdown at 10 ms."""
    raft, _, _ = leader_of([1, 1])
    replicate(raft, 2, 2, 1, now=5)
    assert ends_sent(raft.resign(10)) == []
    return raft


def test_a_leader_shutting_down_leads_until_its_first_successor_has_its_whole_log() -> None:
    # kwire's, with fast failover: resigning at once would leave voter 2 one record short,
    # so the resigned leader would refuse its pre-vote (its log behind).
    raft = shutting_down_with_voter_2_behind()
    assert raft.is_leader and raft.resigning, "no new writes meanwhile"
    replicate(raft, 2, 3, 2, now=12)
    actions = raft.poll(12)
    assert raft.state_name == "resigned"
    assert ends_sent(actions) == [2, 3]
    end = next(s for s in sent(actions) if isinstance(s.request, EndQuorumEpochRequest))
    assert end.request.topics[0].partitions[0].preferred_successors[0] == 2  # type: ignore[union-attr]


def test_a_leader_shutting_down_waits_for_its_successor_one_step_at_most() -> None:
    raft = shutting_down_with_voter_2_behind()
    step = FAST_FAILOVER_MAX_DELAY_MS
    assert raft.next_deadline_ms() <= 10 + step
    assert ends_sent(raft.poll(10 + step - 1)) == [] and raft.is_leader
    assert ends_sent(raft.poll(10 + step)) == [2, 3]
    assert raft.state_name == "resigned"


def test_without_fast_failover_a_leader_resigns_at_once_as_kafkas() -> None:
    log = ListLog([1, 1])
    raft = RaftCore(
        dataclasses.replace(config(1, 3), fast_failover=False),
        log,
        persisted=QuorumStateData(leader_epoch=2, voted_id=1),
        rng=random.Random(0),
    )
    votes = sent(raft.start(0))
    actions = raft.on_response(votes[0].destination, votes[0].request, granted_vote(2, 2), 0)
    change = next(a for a in actions if isinstance(a, AppendLeaderChange))
    log.entries.append(change.epoch)
    raft.on_flushed(log.end_offset, 0)
    replicate(raft, 2, 2, 1, now=5)
    assert ends_sent(raft.resign(10)) == [2, 3]
    assert raft.state_name == "resigned"


def test_a_renouncing_leader_resigns_at_once() -> None:
    # A fault's renounce, or a hand-over: what is not committed is not pushed on.
    raft, _, _ = leader_of([1, 1])
    replicate(raft, 2, 2, 1, now=5)
    assert ends_sent(raft.renounce(2, 10)) == [2, 3]
    assert not raft.resigning
