"""A restarted standby far behind replays its committed backlog a slice at a time, between
raft events (kwire.server.replay, ControllerReplay.replay_slice): it answers the quorum
meanwhile, does not activate or snapshot a half-replayed image, and ends with the leader's
image (issue 9: fast failover while a voter recovers); a committed record it cannot apply
halts it, as Kafka's standby."""

from __future__ import annotations

import gc
import logging
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest
import trio
from node_harness import make_node
from server_harness import HOST, free_port
from test_server_quorum import (
    TIMEOUT_S,
    Quorum,
    Voter,
    create,
    quorum,
    register_unfenced_broker,
    request,
    standby_image,
)

from kwire.controller.records import RecordAndVersion
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.records import Record, RecordBatchHeader, build_batch, encode_batch
from kwire.server import replay as replay_module
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.replay import FAR_BEHIND_OFFSETS, REPLAY_CHUNK_RECORDS, ControllerReplay
from kwire.server.write_path import frame_records

TOPICS = 40  # one committed batch each
BIG = 300  # topics of one CreateTopics: one batch of 600 records


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


async def restarted_behind(q: Quorum, tmp_path: Path, topics: int = TOPICS) -> Voter:
    """Create `topics` topics (one committed batch each) through the leader, commit them
    everywhere, kill a standby and return a new node for it (not yet running): its log
    holds them all, its image none."""
    leader = await q.leader()
    await register_unfenced_broker(leader)
    for index in range(topics):
        assert await create(leader, f"t-{index}") == ErrorCode.NONE
    await q.committed_everywhere(leader.node.log.end_offset)
    old = next(v for v in q.voters if v is not leader)
    old.kill()
    await old.stopped.wait()
    return restarted(old, q.voters, tmp_path / f"node-{old.node_id}")


async def test_a_restarted_standby_answers_between_slices_of_its_backlog_and_ends_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "REPLAY_SLICE_S", 0.0)  # one batch (or chunk) a slice
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            await register_unfenced_broker(leader)
            for index in range(TOPICS):
                assert await create(leader, f"t-{index}") == ErrorCode.NONE
            # One CreateTopics of many topics is one batch of 2 x BIG records: a slice
            # must be able to stop inside it, or its replay would hold every event.
            big = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=f"big-{i}", num_partitions=1, replication_factor=1
                    )
                    for i in range(BIG)
                ],
                timeout_ms=10_000,
            )
            answer = await request(leader, big, 7)
            assert isinstance(answer, CreateTopicsResponse)
            assert {t.error_code for t in answer.topics} == {ErrorCode.NONE}
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
            replayed: list[int] = []  # records each slice replayed
            replay_slice = node.replay.replay_slice

            def counted(now_ms: int) -> int:
                slices.append(node.applied_end)
                replayed.append(replay_slice(now_ms))
                return replayed[-1]

            node.replay.replay_slice = counted  # type: ignore[method-assign]
            # The base offset of each batch this voter decoded. The other standby runs in
            # this process too and decodes what is committed meanwhile (the restarted
            # voter's registration, the leader's NoOpRecords): only decodes made inside
            # this voter's replay count.
            decoded: list[int] = []
            decode = replay_module.batch_metadata_records
            replay_committed = node.replay.replay_committed
            inside = [False]

            def replay_counted(end_offset: int, budget_s: float | None = None) -> int:
                inside[0] = True
                try:
                    return replay_committed(end_offset, budget_s)
                finally:
                    inside[0] = False

            def decode_counted(data: Any, pos: int, header: RecordBatchHeader) -> Any:
                if inside[0]:
                    decoded.append(header.base_offset)
                return decode(data, pos, header)

            node.replay.replay_committed = replay_counted  # type: ignore[method-assign]
            monkeypatch.setattr(replay_module, "batch_metadata_records", decode_counted)
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
                assert len(slices) >= TOPICS + 2 * BIG // REPLAY_CHUNK_RECORDS
                assert 0 < max(replayed) < 2 * BIG, "the big batch in chunks, not in one slice"
                assert len(set(decoded)) >= TOPICS + 1, "every batch of the backlog decoded"
                assert len(decoded) == len(set(decoded)), "a batch is decoded once"
                assert slices == sorted(slices), "each slice goes on where the last stopped"
                assert not node.active
                assert standby_image(voter) == standby_image(leader)
                assert node.controller.last_applied_offset >= target - 1
                voter.kill()


async def test_a_standby_far_behind_replays_with_the_collector_off_and_turns_it_on_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # kwire.server.heap: full collections over the growing image held raft events 30 to
    # 100 ms; while far behind the collector is off, and on again once the standby is not.
    monkeypatch.setattr(replay_module, "REPLAY_SLICE_S", 0.0)  # one batch per slice
    monkeypatch.setattr(replay_module, "FAR_BEHIND_OFFSETS", 10)
    caplog.set_level(logging.INFO, logger="kwire.node")
    assert gc.isenabled()
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            voter = await restarted_behind(q, tmp_path)
            node = voter.node
            target = (await q.leader()).node.log.end_offset
            seen: list[tuple[bool, bool]] = []  # (far behind after the slice, collecting)
            replay_slice = node.replay.replay_slice

            def observed(now_ms: int) -> int:
                count = replay_slice(now_ms)
                seen.append((node.replay.far_behind, gc.isenabled()))
                return count

            node.replay.replay_slice = observed  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                await nursery.start(voter.run)
                while node.applied_end < target or node.replay.backlog:
                    await trio.sleep(0.01)
                voter.kill()
            assert [collecting for behind, collecting in seen if behind] != []
            assert not any(collecting for behind, collecting in seen if behind)
            assert all(collecting for behind, collecting in seen if not behind)
            assert gc.isenabled()
    lines = [
        r.getMessage() for r in caplog.records if f"Node {voter.node_id} replay" in r.getMessage()
    ]
    assert lines[0].startswith(f"Node {voter.node_id} replays ")
    assert lines[0].endswith(" between raft events")
    assert lines[1].startswith(f"Node {voter.node_id} replayed offsets 0 to ")


async def test_a_standby_stopped_while_far_behind_turns_the_collector_back_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_module, "REPLAY_SLICE_S", 0.0)
    monkeypatch.setattr(replay_module, "FAR_BEHIND_OFFSETS", 10)
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            voter = await restarted_behind(q, tmp_path)
            node = voter.node
            replay_slice = node.replay.replay_slice
            stopped = trio.Event()

            def stop_after_one(now_ms: int) -> int:
                count = replay_slice(now_ms)
                if node.replay.far_behind and not stopped.is_set():
                    assert not gc.isenabled()
                    stopped.set()
                return count

            node.replay.replay_slice = stop_after_one  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                await nursery.start(voter.run)
                await stopped.wait()
                voter.kill()
            await voter.stopped.wait()
            assert node.replay.far_behind, "stopped in the middle of its backlog"
            assert gc.isenabled()


async def test_a_leader_far_behind_hands_the_leadership_to_a_voter_ready_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Two voters: the standby is restarted far behind (its replay held until the end),
    # then the leader renounces, so the standby must lead. It could serve nothing until its
    # backlog is replayed; once its epoch start is committed it hands the leadership back.
    monkeypatch.setattr(replay_module, "FAR_BEHIND_OFFSETS", 10)
    monkeypatch.setattr(replay_module, "HAND_OVER_OFFSETS", 10)
    caplog.set_level(logging.INFO, logger="kwire.node")
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path, size=2) as q:
            voter = await restarted_behind(q, tmp_path)
            node = voter.node
            replay_slice = node.replay.replay_slice
            held = True

            def held_back(now_ms: int) -> int:
                if held:
                    time.sleep(0.001)
                    return 0
                return replay_slice(now_ms)

            node.replay.replay_slice = held_back  # type: ignore[method-assign]
            leader = await q.leader()
            async with trio.open_nursery() as nursery:
                await nursery.start(voter.run)
                while node.raft.leader_id != leader.node_id or not node.replay.far_behind:
                    await trio.sleep(0.001)
                epoch = leader.node.raft.epoch
                led: list[int] = []  # epochs the restarted voter led

                def renounce(now_ms: int) -> None:
                    leader.node.carry_out(leader.node.raft.renounce(epoch, now_ms), now_ms)

                await leader.node.driver.call(renounce)
                while not (leader.node.active and leader.node.raft.epoch > epoch):
                    if node.raft.is_leader and node.raft.epoch not in led:
                        led.append(node.raft.epoch)
                    assert not node.active, "the voter far behind never serves"
                    await trio.sleep(0.001)
                assert node.replay.handed_over
                assert led and led[0] > epoch, "the restarted voter led in between"
                assert leader.node.raft.epoch > led[0]
                held = False
                # (the leader, active again, may still be writing its controller
                # registration: compare once both applied the same end)
                target = -1
                while target != leader.node.log.end_offset:
                    target = leader.node.log.end_offset
                    await q.committed_everywhere(target)
                    while node.applied_end < target or node.replay.backlog:
                        await trio.sleep(0.001)
                    await trio.sleep(0.05)
                assert standby_image(voter) == standby_image(leader)
                voter.kill()
    handed = [r.getMessage() for r in caplog.records if "handing the leadership" in r.getMessage()]
    assert len(handed) == 1
    assert handed[0].startswith(f"Node {voter.node_id} leads epoch {led[0]} with offsets 0 to ")
    assert handed[0].endswith(
        " still to replay: handing the leadership over to a voter ready to serve"
    )


class Halted(Exception):
    """What the test's fatal fault handler raises instead of halting the process."""


def test_a_committed_record_a_standby_cannot_apply_halts_it_naming_the_batch(
    tmp_path: Path,
) -> None:
    # A PartitionRecord for a topic the image never saw: Kafka's standby halts on it
    # ("Unable to apply ... record ... on standby controller"), and so does kwire's.
    ports = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@{HOST}:{port}" for i, port in enumerate(ports))
    node = make_node(tmp_path, voters, ports[0])
    halts: list[str] = []

    def halt(message: str, cause: BaseException) -> NoReturn:
        halts.append(message)
        raise Halted(message) from cause

    node.fault_handler = halt
    try:
        stray = PartitionRecord(partition_id=0, topic_id=uuid.uuid4(), replicas=[1], isr=[1])
        (value,) = frame_records([RecordAndVersion(stray, 0)])
        batch = build_batch(
            [Record(offset_delta=0, value=value)],
            base_offset=node.log.end_offset,
            base_timestamp=0,
            partition_leader_epoch=1,
        )
        base = node.log.end_offset
        node.writes.append_as_follower(encode_batch(batch), 0)
        with pytest.raises(Halted):
            node.on_high_watermark(node.log.end_offset, 0)  # no driver task: replayed now
        assert len(halts) == 1
        assert halts[0].startswith(
            f"Unable to apply the records of the batch with baseOffset {base} on standby "
            "controller: PartitionRecord for unknown topic id"
        )
    finally:
        node.close()


async def registered(voters: list[Voter], leader: Voter) -> dict[int, uuid.UUID]:
    """Wait until the leader's image holds a registration of every voter's incarnation."""
    while True:
        controllers = leader.node.controller.image.controllers
        found = {i: r.incarnation_id for i, r in controllers.items()}
        if found == {v.node_id: v.node.incarnation_id for v in voters}:
            return found
        await trio.sleep(0.01)


async def test_standbys_register_with_the_active_controller_and_again_when_restarted(
    tmp_path: Path,
) -> None:
    # Kafka 3.9's ControllerRegistrationManager: every controller registers (KIP-919), not
    # only the one that activated; UpdateFeatures refuses "controller N has not registered"
    # otherwise. A restarted standby registers its new incarnation.
    with trio.fail_after(TIMEOUT_S):
        async with quorum(tmp_path) as q:
            leader = await q.leader()
            epoch = leader.node.raft.epoch
            await registered(q.voters, leader)
            standby = next(v for v in q.voters if v is not leader)
            assert standby.node.registration.sent >= 1
            while not standby.node.registration.registered():  # replicated to its image too
                await trio.sleep(0.01)
            sent = standby.node.registration.sent
            await trio.sleep(0.3)
            assert standby.node.registration.sent == sent, "no request once registered"
            assert leader.node.registration.sent == 0, "the active controller needs none"
            standby.kill()
            await standby.stopped.wait()
            again = restarted(standby, q.voters, tmp_path / f"node-{standby.node_id}")
            assert again.node.incarnation_id != standby.node.incarnation_id
            async with trio.open_nursery() as nursery:
                await nursery.start(again.run)
                others = [v for v in q.voters if v is not standby]
                await registered([*others, again], leader)
                assert leader.node.raft.epoch == epoch  # no failover was needed
                again.kill()


def test_only_a_standby_far_behind_counts_as_behind_for_failover() -> None:
    # The batch or two every standby replays as it commits must not send it to the back
    # of a hand-over; a restarted standby with seconds of backlog must go there.
    replay = ControllerReplay(cast("ControllerNode", None))
    replay.replay_target = 10_000
    replay.applied_end = replay.replay_target - FAR_BEHIND_OFFSETS
    assert replay.backlog and not replay.far_behind
    replay.applied_end -= 1
    assert replay.far_behind
    replay.active = True  # a leader replays nothing behind
    assert not replay.far_behind
