"""A restarted standby far behind replays its committed backlog a slice at a time, between
raft events (kwire.server.replay, ControllerReplay.replay_slice): it answers the quorum
meanwhile, does not activate or snapshot a half-replayed image, and ends with the leader's
image (issue 9: fast failover while a voter recovers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from server_harness import HOST
from test_server_quorum import (
    TIMEOUT_S,
    Voter,
    create,
    quorum,
    register_unfenced_broker,
    standby_image,
)

from kwire.protocol.error_codes import ErrorCode
from kwire.server import replay as replay_module
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode

TOPICS = 40  # one committed batch each


def restarted(voter: Voter, voters: list[Voter], data_dir: Path) -> Voter:
    """A new process's node for `voter` (stopped), on its directory and port."""
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": str(voter.node_id),
            "controller.quorum.voters": ",".join(f"{v.node_id}@{HOST}:{v.port}" for v in voters),
            "listeners": f"CONTROLLER://{HOST}:{voter.port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data_dir),
        }
    )
    node = ControllerNode(build_settings(config), seed=voter.node_id)
    return Voter(node_id=voter.node_id, port=voter.port, node=node)


async def test_a_restarted_standby_answers_between_slices_of_its_backlog_and_ends_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "REPLAY_SLICE_S", 0.0)  # one batch per slice
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await register_unfenced_broker(leader)
            for index in range(TOPICS):
                assert await create(leader, f"t-{index}") == ErrorCode.NONE
            await q.committed_everywhere(leader.node.log.end_offset)
            old = next(v for v in q.voters if v is not leader)
            old.kill()
            await old.stopped.wait()
            voter = restarted(old, q.voters, tmp_path / f"node-{old.node_id}")
            node = voter.node
            # A voter of a quorum loads its snapshot only (there is none): the log after it
            # is replayed once raft says it is committed.
            assert node.applied_end == 0 and not node.controller.topics_by_name
            slices: list[int] = []
            replay_slice = node.replay.replay_slice

            def counted(now_ms: int) -> int:
                slices.append(node.applied_end)
                return replay_slice(now_ms)

            node.replay.replay_slice = counted  # type: ignore[method-assign]
            answered_while_behind = 0
            async with trio.open_nursery() as nursery:
                await nursery.start(voter.run)
                target = leader.node.committed_offset
                while node.applied_end < target or node.replay.backlog:
                    # A call to the driver (as an inbound Vote or Fetch is) waits for at
                    # most one slice, not for the whole backlog.
                    behind = await node.driver.call(lambda _now: node.replay.backlog)
                    answered_while_behind += behind
                    assert not (behind and node.snapshots.writing), "snapshot of a half image"
                    await trio.sleep(0)
                assert answered_while_behind > 0
                assert len(slices) >= TOPICS, "one batch per slice"
                assert slices == sorted(slices), "each slice goes on where the last stopped"
                assert not node.active
                assert standby_image(voter) == standby_image(leader)
                assert node.controller.last_applied_offset >= target - 1
                voter.kill()
