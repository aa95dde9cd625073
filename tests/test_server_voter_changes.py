"""AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter served by `python -m kwire.server` on
its controller listener (KIP-853), answered as Kafka 4.3.1's KafkaRaftClient answers: a
standalone node refuses what it must with Kafka's codes and messages, and a three-voter
dynamic quorum removes a voter (which goes on fetching as an observer) and adds it back,
each change committed before it is answered and shown by DescribeQuorum; an observer with
`controller.quorum.auto.join.enable` adds itself (Kafka 4.x auto-join)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import trio
from server_harness import HOST, KwireServer, free_port, write_properties
from test_server_dynamic_quorum import (  # noqa: F401 (standalone, three: fixtures)
    dynamic_server,
    format_dynamic,
    standalone,
    standalone_and_joiner,
    three,
    topic_names_in_log,
)
from test_server_quorum_processes import (
    START_TIMEOUT_S,
    ask,
    describe_quorum,
    first_write,
    leader_of,
)

from kwire.log.checkpoints import uuid_to_kafka_string
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response
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
from kwire.server.client import KafkaClient

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


CAPTURE = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9" / "dynamic-quorum"
GENUINE_CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
GENUINE_DIR_22 = "2dKz61-FUQ7vGt-uKYFSBg"


def genuine_add_controller_frame(port: int) -> bytes:
    """The AddRaftVoter v0 frame `kafka-metadata-quorum add-controller` sent to node 21,
    with node 22's controller port (19112 in the capture) replaced by `port`."""
    lines = (CAPTURE / "dynamic-quorum-add-controller.jsonl").read_text().splitlines()
    frame = next(
        bytes.fromhex(f["hex"])
        for f in map(json.loads, lines)
        if f["api_key"] == 80 and f["dir"] == "request"
    )
    genuine_port = (19112).to_bytes(2, "big")
    assert frame.count(genuine_port) == 1
    return frame.replace(genuine_port, port.to_bytes(2, "big"))


def set_directory_id(server: KwireServer, directory: str) -> None:
    """Give a node formatted --no-initial-controllers node 22's genuine directory id."""
    path = server.data_dir / "meta.properties"
    lines = [
        f"directory.id={directory}" if line.startswith("directory.id=") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


async def send_frame(server: KwireServer, frame: bytes) -> AddRaftVoterResponse:
    client = await KafkaClient.connect(HOST, server.port)
    try:
        await client.send_raw(frame)
        answer = await client.receive_frame()
    finally:
        await client.aclose()
    assert answer is not None
    _, response = decode_response(answer, 80, 0)
    assert isinstance(response, AddRaftVoterResponse)
    return response


def described_voters(
    partition: DescribeQuorumResponse.PartitionData, nodes: dict[int, list[str]]
) -> list[dict[str, object]]:
    """DescribeQuorum's voters as `kafka-metadata-quorum describe --status` prints them."""
    return [
        {
            "id": v.replica_id,
            "directoryId": uuid_to_kafka_string(v.replica_directory_id),
            "endpoints": nodes[v.replica_id],
        }
        for v in partition.current_voters
    ]


async def describe(
    server: KwireServer,
) -> tuple[DescribeQuorumResponse.PartitionData, dict[int, list[str]]]:
    answer = await ask(server, describe_quorum(), 2)
    assert isinstance(answer, DescribeQuorumResponse)
    nodes = {
        n.node_id: [f"{e.name}://{e.host}:{e.port}" for e in n.listeners] for n in answer.nodes
    }
    return answer.topics[0].partitions[0], nodes


async def test_the_genuine_add_controller_makes_an_observer_a_voter_and_remove_makes_it_one_again(
    tmp_path: Path,
) -> None:
    """As ../shared/captures/kafka-3.9/dynamic-quorum: node 21 `--standalone`, node 22
    `--no-initial-controllers` observing it through the bootstrap servers; the genuine
    AddRaftVoter frame makes 22 a voter (DescribeQuorum as status-after.txt), a kill -9 of
    leader 21 loses nothing committed, and RemoveRaftVoter makes 22 an observer again."""
    node_21, node_22 = standalone_and_joiner(
        tmp_path, (21, 22), GENUINE_CLUSTER_ID, bootstrap_both=True
    )
    port_21, port_22 = node_21.port, node_22.port
    try:
        set_directory_id(node_22, GENUINE_DIR_22)
        node_21.start(timeout=START_TIMEOUT_S)
        node_22.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            await first_write([node_21])
            while 22 not in [o.replica_id for o in (await describe(node_21))[0].observers]:
                await trio.sleep(0.05)

            answer = await send_frame(node_21, genuine_add_controller_frame(port_22))
            assert (answer.error_code, answer.error_message) == (ErrorCode.NONE, None)
            partition, nodes = await describe(node_21)
            status = {
                k.strip(): v.strip()
                for k, v in (
                    line.split(":", 1)
                    for line in (CAPTURE / "status-after.txt").read_text().splitlines()
                )
            }
            genuine = json.loads(status["CurrentVoters"])
            for voter in genuine:  # the capture's ports and node 21's directory are its own
                voter["endpoints"] = [
                    e.replace("19111", str(port_21)).replace("19112", str(port_22))
                    for e in voter["endpoints"]
                ]
            genuine[0]["directoryId"] = uuid_to_kafka_string(directory_id(node_21))
            assert described_voters(partition, nodes) == genuine
            assert json.loads(status["CurrentObservers"]) == [
                o.replica_id for o in partition.observers
            ]
            committed = partition.high_watermark

        node_21.kill()  # the leader of the two-voter quorum
        node_21.restart(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            leader = await leader_of([node_21, node_22])
            partition, nodes = await describe(leader)
            assert [v.replica_id for v in partition.current_voters] == [21, 22]
            while partition.high_watermark < committed:
                await trio.sleep(0.05)
                partition, nodes = await describe(leader)

            removal = await ask(
                leader, remove(22, uuid_from(GENUINE_DIR_22), GENUINE_CLUSTER_ID), 0
            )
            assert isinstance(removal, RemoveRaftVoterResponse)
            assert (removal.error_code, removal.error_message) == (ErrorCode.NONE, None)
            leader = await leader_of([node_21, node_22])
            while True:
                partition, _ = await describe(leader)
                if [o.replica_id for o in partition.observers] == [22]:
                    break
                await trio.sleep(0.05)
            assert [v.replica_id for v in partition.current_voters] == [21]
    finally:
        node_22.close()
        node_21.close()
    assert "orders" in topic_names_in_log(node_21.data_dir)
    assert "orders" in topic_names_in_log(node_22.data_dir)


def uuid_from(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


AUTO_JOIN_PERIOD_S = 2.0  # controller.quorum.fetch.timeout.ms: the update-voter-set period


async def test_an_observer_with_auto_join_becomes_a_voter_by_itself_and_one_without_stays(
    tmp_path: Path,
) -> None:
    """Node 21 `--standalone`; nodes 22 and 23 `--no-initial-controllers`, 22 with
    controller.quorum.auto.join.enable=true, 23 with it off (Kafka's default). Nobody runs
    add-controller: 22 sends AddRaftVoter for itself once it has followed the leader for a
    fetch timeout and joins the voters with its own directory id and endpoint; 23 goes on
    replicating as an observer, periods after 22 joined."""
    ports = {node_id: free_port() for node_id in (21, 22, 23)}
    bootstrap = ",".join(f"{HOST}:{port}" for port in ports.values())
    nodes = {
        node_id: dynamic_server(tmp_path / f"node-{node_id}", node_id, port, bootstrap)
        for node_id, port in ports.items()
    }
    nodes[22].properties["controller.quorum.auto.join.enable"] = "true"
    write_properties(nodes[22].config_path, nodes[22].properties)
    leader = nodes[21]
    try:
        format_dynamic(leader, GENUINE_CLUSTER_ID, "--standalone")
        for node_id in (22, 23):
            format_dynamic(nodes[node_id], GENUINE_CLUSTER_ID, "--no-initial-controllers")
        for server in nodes.values():
            server.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            await first_write([leader])
            while True:
                partition, endpoints = await describe(leader)
                if [v.replica_id for v in partition.current_voters] == [21, 22]:
                    break
                await trio.sleep(0.05)
            joined = partition.current_voters[1]
            assert joined.replica_directory_id == directory_id(nodes[22])
            assert endpoints[22] == [f"CONTROLLER://{HOST}:{ports[22]}"]
            committed = partition.high_watermark

            await trio.sleep(3 * AUTO_JOIN_PERIOD_S)
            partition, _ = await describe(leader)
            assert [v.replica_id for v in partition.current_voters] == [21, 22]
            assert [o.replica_id for o in partition.observers] == [23]
            observer = partition.observers[0]
            assert observer.replica_directory_id == directory_id(nodes[23])
            assert observer.log_end_offset >= committed  # it replicates what 22's join wrote
    finally:
        for server in nodes.values():
            server.close()
    for node_id in (21, 22, 23):
        assert "orders" in topic_names_in_log(nodes[node_id].data_dir)
