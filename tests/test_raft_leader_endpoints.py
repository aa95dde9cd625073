"""A replica whose voter set does not yet name the new leader (it missed the VotersRecord
that made it a voter) learns the leader's endpoint from what the leader's messages carry,
as Kafka 4.3.1's KafkaRaftClient does (BeginQuorumEpoch's and EndQuorumEpoch's
LeaderEndpoints, Vote's, BeginQuorumEpoch's and EndQuorumEpoch's NodeEndpoints), instead of
ignoring the leader and asking for pre-votes forever (found by the simulator's
voter-changes-leader-kills scenario, seed 201)."""

from __future__ import annotations

import random

from test_raft_kraft_version import DIRS, dynamic, voters
from test_raft_pump import CLUSTER, ListLog

from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.core import RaftCore
from kwire.raft.state import SendRequest
from kwire.raft.voter_set import VoterEndpoint

TOPIC = "__cluster_metadata"


def stale_follower() -> RaftCore:
    """Node 3 knows voters {1, 2, 3}; the quorum has since added 4, which now leads."""
    raft = RaftCore(dynamic(3, voters(1, 2, 3)), ListLog(), rng=random.Random(0))
    raft.start(0)
    return raft


def begin_from_4(epoch: int, endpoints: bool = True) -> BeginQuorumEpochRequest:
    return BeginQuorumEpochRequest(
        cluster_id=CLUSTER,
        voter_id=3,
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name=TOPIC,
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(
                        partition_index=0,
                        voter_directory_id=DIRS[3],
                        leader_id=4,
                        leader_epoch=epoch,
                    )
                ],
            )
        ],
        leader_endpoints=(
            [
                BeginQuorumEpochRequest.LeaderEndpoint(name="OTHER", host="10.0.0.9", port=1),
                BeginQuorumEpochRequest.LeaderEndpoint(
                    name="CONTROLLER", host="127.0.0.1", port=9094
                ),
            ]
            if endpoints
            else []
        ),
    )


def fetch_destination(actions: list[object]) -> list[int]:
    return [a.destination for a in actions if isinstance(a, SendRequest)]


def test_begin_quorum_epoch_with_the_leaders_endpoint_makes_a_stale_voter_follow_it() -> None:
    raft = stale_follower()
    _, actions = raft.handle_begin_quorum_epoch(begin_from_4(5), 10)
    assert (raft.state_name, raft.epoch, raft.leader_id) == ("follower", 5, 4)
    assert raft.role.leader_endpoint == VoterEndpoint("CONTROLLER", "127.0.0.1", 9094)
    assert 4 in fetch_destination(actions)


def test_without_an_endpoint_for_our_listener_the_unknown_leader_is_not_followed() -> None:
    raft = stale_follower()
    raft.handle_begin_quorum_epoch(begin_from_4(5, endpoints=False), 10)
    assert raft.leader_id != 4  # nowhere to fetch from: Kafka's v0 rule, the voter set's
    assert raft.epoch == 5


def test_end_quorum_epoch_carries_the_resigning_leaders_endpoint() -> None:
    raft = stale_follower()
    request = EndQuorumEpochRequest(
        cluster_id=CLUSTER,
        topics=[
            EndQuorumEpochRequest.TopicData(
                topic_name=TOPIC,
                partitions=[
                    EndQuorumEpochRequest.PartitionData(
                        partition_index=0,
                        leader_id=4,
                        leader_epoch=5,
                    )
                ],
            )
        ],
        leader_endpoints=[
            EndQuorumEpochRequest.LeaderEndpoint(name="CONTROLLER", host="127.0.0.1", port=9094)
        ],
    )
    raft.handle_end_quorum_epoch(request, 10)
    assert (raft.epoch, raft.leader_id) == (5, 4)


def test_a_vote_answer_naming_an_unknown_leader_with_its_endpoint_is_followed() -> None:
    raft = stale_follower()
    actions = raft.poll(60_000)  # the election timeout: node 3 asks for (pre-)votes
    votes = [
        a for a in actions if isinstance(a, SendRequest) and isinstance(a.request, VoteRequest)
    ]
    assert votes, "no vote request went out"
    ask = votes[0]
    epoch = raft.epoch if raft.state_name == "candidate" else raft.epoch + 1
    answer = VoteResponse(
        topics=[
            VoteResponse.TopicData(
                topic_name=TOPIC,
                partitions=[
                    VoteResponse.PartitionData(
                        partition_index=0, leader_id=4, leader_epoch=epoch, vote_granted=False
                    )
                ],
            )
        ],
        node_endpoints=[VoteResponse.NodeEndpoint(node_id=4, host="127.0.0.1", port=9094)],
    )
    actions = raft.on_response(ask.destination, ask.request, answer, 60_001)
    assert (raft.state_name, raft.epoch, raft.leader_id) == ("follower", epoch, 4)
    assert raft.role.leader_endpoint == VoterEndpoint("CONTROLLER", "127.0.0.1", 9094)
