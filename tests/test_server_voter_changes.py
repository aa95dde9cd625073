"""AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter served by `python -m kwire.server` on
its controller listener (KIP-853), answered as Kafka 4.3.1's KafkaRaftClient answers: a
standalone node refuses what it must with Kafka's codes and messages, and a three-voter
dynamic quorum removes a voter (which goes on fetching as an observer) and adds it back,
each change committed before it is answered and shown by DescribeQuorum."""

from __future__ import annotations

import base64
import uuid

import trio
from server_harness import HOST, KwireServer, free_port
from test_server_dynamic_quorum import standalone, three  # noqa: F401 (fixtures)
from test_server_quorum_processes import ask, describe_quorum, first_write, leader_of

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.protocol.messages.remove_raft_voter import (
    RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
)
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)

TIMEOUT_S = 60.0


def directory_id(server: KwireServer) -> uuid.UUID:
    """The directory.id of the node's meta.properties."""
    for line in (server.data_dir / "meta.properties").read_text().splitlines():
        if line.startswith("directory.id="):
            text = line.split("=", 1)[1].strip()
            return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))
    raise AssertionError("no directory.id in meta.properties")


def add(
    node_id: int, directory: uuid.UUID, port: int, cluster_id: str | None
) -> AddRaftVoterRequest:
    return AddRaftVoterRequest(
        cluster_id=cluster_id,
        timeout_ms=30_000,
        voter_id=node_id,
        voter_directory_id=directory,
        listeners=[AddRaftVoterRequest.Listener(name="CONTROLLER", host=HOST, port=port)],
    )


def remove(node_id: int, directory: uuid.UUID, cluster_id: str | None) -> RemoveRaftVoterRequest:
    return RemoveRaftVoterRequest(
        cluster_id=cluster_id, voter_id=node_id, voter_directory_id=directory
    )


async def quorum(server: KwireServer) -> DescribeQuorumResponse.PartitionData:
    answer = await ask(server, describe_quorum(), 2)
    assert isinstance(answer, DescribeQuorumResponse)
    return answer.topics[0].partitions[0]


async def test_a_standalone_leader_refuses_duplicate_unreachable_and_last_voter_changes(
    standalone: KwireServer,  # noqa: F811
) -> None:
    own = directory_id(standalone)
    cluster = standalone.cluster_id
    with trio.fail_after(TIMEOUT_S):
        await first_write([standalone])  # the epoch has committed a record
        answer = await ask(standalone, add(1, own, standalone.port, cluster), 1)
        assert isinstance(answer, AddRaftVoterResponse)
        assert answer.error_code == ErrorCode.DUPLICATE_VOTER
        assert answer.error_message is not None
        assert answer.error_message.startswith("The voter id for ReplicaKey(id=1, directoryId=")

        answer = await ask(standalone, add(2, uuid.uuid4(), standalone.port, "another"), 0)
        assert isinstance(answer, AddRaftVoterResponse)
        assert answer.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID

        # Nothing listens at the new voter's endpoint: the ApiVersions probe fails and the
        # waiting request is answered when it does (a ticket, not the request timeout).
        answer = await ask(standalone, add(2, uuid.uuid4(), free_port(), cluster), 1)
        assert isinstance(answer, AddRaftVoterResponse)
        assert (answer.error_code, answer.error_message) == (
            ErrorCode.REQUEST_TIMED_OUT,
            "Aborted add voter operation for since API_VERSIONS returned an error "
            "BROKER_NOT_AVAILABLE",
        )

        removal = await ask(standalone, remove(1, own, cluster), 0)
        assert isinstance(removal, RemoveRaftVoterResponse)
        assert removal.error_code == ErrorCode.VOTER_NOT_FOUND

        update = UpdateRaftVoterRequest(
            cluster_id=cluster,
            current_leader_epoch=(await quorum(standalone)).leader_epoch,
            voter_id=7,
            voter_directory_id=uuid.uuid4(),
            listeners=[UpdateRaftVoterRequest.Listener(name="CONTROLLER", host=HOST, port=1)],
            kraft_version_feature=UpdateRaftVoterRequest.KRaftVersionFeature(
                min_supported_version=0, max_supported_version=1
            ),
        )
        answer = await ask(standalone, update, 0)
        assert isinstance(answer, UpdateRaftVoterResponse)
        assert answer.error_code == ErrorCode.VOTER_NOT_FOUND
        assert (answer.current_leader.leader_id, answer.current_leader.port) == (
            1,
            standalone.port,
        )
        assert [v.replica_id for v in (await quorum(standalone)).current_voters] == [1]


async def test_a_voter_removed_then_added_back_leaves_and_rejoins_the_voter_set(
    three: list[KwireServer],  # noqa: F811
) -> None:
    cluster = three[0].cluster_id
    with trio.fail_after(TIMEOUT_S):
        await first_write(three)
        leader = await leader_of(three)
        other = next(s for s in three if s is not leader)
        other_id = int(other.properties["node.id"])
        other_dir = directory_id(other)

        answer = await ask(leader, remove(other_id, other_dir, cluster), 0)
        assert isinstance(answer, RemoveRaftVoterResponse)
        assert answer.error_code == ErrorCode.NONE
        described = await quorum(leader)
        assert other_id not in [v.replica_id for v in described.current_voters]
        assert len(described.current_voters) == 2
        # The removed node goes on fetching, now as an observer.
        while other_id not in [o.replica_id for o in (await quorum(leader)).observers]:
            await trio.sleep(0.05)

        answer = await ask(leader, add(other_id, other_dir, other.port, cluster), 1)
        assert isinstance(answer, AddRaftVoterResponse)
        assert (answer.error_code, answer.error_message) == (ErrorCode.NONE, None)
        described = await quorum(leader)
        voters = {v.replica_id: v.replica_directory_id for v in described.current_voters}
        assert voters[other_id] == other_dir and len(voters) == 3
        assert other_id not in [o.replica_id for o in described.observers]
