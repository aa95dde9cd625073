"""A voter added to a dynamic quorum (KIP-853) keeps following its live leader: right
after AddRaftVoter commits, node 22 (`--no-initial-controllers`, now a voter) fetches
from leader 21 without its connection being lost or refused, so it never turns
Prospective and the quorum keeps one leader in one epoch, as Kafka 4.3.1's
KafkaRaftClient keeps a follower whose fetches succeed."""

from __future__ import annotations

import time
from pathlib import Path

import trio
from test_server_dynamic_quorum import standalone_and_joiner
from test_server_quorum_processes import START_TIMEOUT_S, ask, first_write
from test_server_voter_changes import add, describe, directory_id

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterResponse

CLUSTER_ID = "J8qXRwI-Qyi2G0guFTiuYw"
WATCH_S = 5.0
TIMEOUT_S = 60.0


async def test_a_new_voter_keeps_following_its_live_leader_after_the_add(tmp_path: Path) -> None:
    node_21, node_22 = standalone_and_joiner(tmp_path, (21, 22), CLUSTER_ID, bootstrap_both=True)
    port_22 = node_22.port
    try:
        node_21.start(timeout=START_TIMEOUT_S)
        node_22.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            await first_write([node_21])
            while 22 not in [o.replica_id for o in (await describe(node_21))[0].observers]:
                await trio.sleep(0.05)
            answer = await ask(node_21, add(22, directory_id(node_22), port_22, CLUSTER_ID), 0)
            assert isinstance(answer, AddRaftVoterResponse)
            assert answer.error_code == ErrorCode.NONE
            before, _ = await describe(node_21)
            assert [v.replica_id for v in before.current_voters] == [21, 22]
            log_22_at_add = len(node_22.stderr())
            deadline = time.monotonic() + WATCH_S
            while time.monotonic() < deadline:
                for node in (node_21, node_22):
                    partition, _ = await describe(node)
                    assert (partition.leader_id, partition.leader_epoch) == (
                        21,
                        before.leader_epoch,
                    ), f"node {node.port}: leader moved"
                await trio.sleep(0.1)
        after_add = node_22.stderr()[log_22_at_add:]
        assert "is now prospective" not in after_add, after_add
    finally:
        node_22.close()
        node_21.close()


async def test_a_restarted_voter_with_only_the_old_leader_in_bootstrap_finds_the_leader(
    tmp_path: Path,
) -> None:
    """`controller.quorum.bootstrap.servers` names only node 21, the first leader: after a
    kill -9 of 21 and its restart, the restarted voter's bootstrap server is itself, yet the
    two voters agree on one leader of [21, 22] (KafkaRaftClient: a voter learns its leader
    from Vote and BeginQuorumEpoch, not only from bootstrap Fetch answers)."""
    node_21, node_22 = standalone_and_joiner(tmp_path, (21, 22), CLUSTER_ID)
    port_22 = node_22.port
    try:
        node_21.start(timeout=START_TIMEOUT_S)
        node_22.start(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            await first_write([node_21])
            while 22 not in [o.replica_id for o in (await describe(node_21))[0].observers]:
                await trio.sleep(0.05)
            answer = await ask(node_21, add(22, directory_id(node_22), port_22, CLUSTER_ID), 0)
            assert isinstance(answer, AddRaftVoterResponse)
            assert answer.error_code == ErrorCode.NONE
            committed = (await describe(node_21))[0].high_watermark
        node_21.kill()
        node_21.restart(timeout=START_TIMEOUT_S)
        with trio.fail_after(TIMEOUT_S):
            while True:
                seen = [(await describe(n))[0] for n in (node_21, node_22)]
                views = {(p.leader_id, p.leader_epoch) for p in seen}
                if len(views) == 1 and seen[0].leader_id in (21, 22):
                    leader = node_21 if seen[0].leader_id == 21 else node_22
                    partition, _ = await describe(leader)
                    if partition.error_code == ErrorCode.NONE:
                        break
                await trio.sleep(0.05)
            assert [v.replica_id for v in partition.current_voters] == [21, 22]
            while partition.high_watermark < committed:
                await trio.sleep(0.05)
                partition, _ = await describe(leader)
    finally:
        node_22.close()
        node_21.close()
