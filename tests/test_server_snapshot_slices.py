"""A snapshot written a slice at a time (kwire.server.snapshots.SnapshotDriver.steps):
the same bytes as the synchronous write at the same offset whatever the image does
meanwhile, and the node's other tasks (heartbeats) are served between its slices (issue
10 item 4; Kafka writes snapshots on their own thread, SnapshotGenerator)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
from test_server_dispatch import ask
from test_server_snapshots import new_node, register

from kwire.controller.registrations import TopicInfo
from kwire.log.snapshots import SnapshotId
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.server.node import ControllerNode
from kwire.server.snapshots import FRAME_SLICE
from tools.startup_data import add_topics, topic_ids

BROKERS = 3


def loaded_node(tmp_path: Path, topics: int) -> ControllerNode:
    """A sole voter with three registered brokers and ``topics`` topics of 100
    partitions put straight into its image."""
    node, _ = new_node(tmp_path)
    for broker in range(1, BROKERS + 1):
        register(node, broker)
    node.snapshot_work(2_000)  # commits the registrations
    add_topics(node.controller.image, topic_ids(topics, seed=7), 0, BROKERS)
    return node


def test_a_snapshot_written_in_slices_is_byte_identical_to_the_synchronous_one(
    tmp_path: Path,
) -> None:
    node = loaded_node(tmp_path, topics=60)  # 6,000 partitions: several slices
    image = node.controller.image
    high_watermark = node.committed_offset
    path = node.snapshots.write(node.controller, high_watermark, 5_000, "at once")
    assert path is not None
    expected = path.read_bytes()
    # Forget it, so that the same id can be written again, in slices.
    node.log.snapshots.forget_before(SnapshotId(high_watermark + 1, 0), "test")
    assert not path.exists()

    job = node.snapshots.begin(node.controller, high_watermark, 5_000, "in slices")
    assert job is not None
    steps = node.snapshots.steps(job)
    taken = 0
    victims = list(image.topics.values())
    extra = iter(topic_ids(200, seed=8))
    while True:
        try:
            next(steps)
        except StopIteration as done:
            assert done.value == path
            break
        taken += 1
        # The image changes between slices, as the controller keeps working: a topic
        # goes, another comes, a partition of a third changes leader.
        image.topics.pop(victims[taken].topic_id, None)
        new_id = next(extra)
        image.topics[new_id] = TopicInfo(name=f"new{taken}", topic_id=new_id)
        changed = victims[-taken]
        partition = changed.partitions[0]
        changed.partitions[0] = dataclasses.replace(partition, leader=-1, leader_epoch=9)
        changed.partitions[1000 + taken] = partition
    assert taken > 6_000 // FRAME_SLICE, f"written in {taken} steps, not sliced"
    assert path.read_bytes() == expected
    node.close()


def test_no_second_snapshot_begins_while_one_is_written_and_an_abandoned_one_leaves_no_file(
    tmp_path: Path,
) -> None:
    node = loaded_node(tmp_path, topics=20)
    partition_dir = node.log.directory
    job = node.snapshots.begin(node.controller, node.committed_offset, 5_000, "first")
    assert job is not None
    node.snapshots.wanted = "another"
    assert node.snapshots.maybe_begin(node.controller, node.committed_offset, 6_000) is None
    steps = node.snapshots.steps(job)
    while not list(partition_dir.glob("*.checkpoint.part")):
        next(steps)
    steps.close()  # e.g. the node stops half-way
    assert not list(partition_dir.glob("*.checkpoint*"))
    assert node.log.snapshot_ids() == []
    # The due one may now begin.
    assert node.snapshots.maybe_begin(node.controller, node.committed_offset, 6_000) is not None
    node.close()


async def test_heartbeats_are_answered_while_a_snapshot_is_being_written(tmp_path: Path) -> None:
    node = loaded_node(tmp_path, topics=300)  # 30,000 partitions
    broker_epoch = node.controller.image.brokers[1].epoch
    answered_while_writing: list[ErrorCode] = []
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.run)
            node.snapshots.wanted = "a test wants one"
            node._tick_wanted.set()
            while node.snapshots.writing is None:
                await trio.sleep(0)
            while node.snapshots.writing is not None:
                request = BrokerHeartbeatRequest(
                    broker_id=1,
                    broker_epoch=broker_epoch,
                    current_metadata_offset=node.committed_offset - 1,
                    want_fence=False,
                )
                response = await ask(node, request, 1)
                if node.snapshots.writing is not None:
                    answered_while_writing.append(ErrorCode(response.error_code))
                # An answer that waited for nothing never yielded: let the writer (and the
                # deadline) run, as a connection's next read from its socket would.
                await trio.sleep(0)
            nursery.cancel_scope.cancel()
    assert len(node.log.snapshot_ids()) == 1, "the snapshot was not written"
    assert answered_while_writing, "no heartbeat was answered while the snapshot was written"
    assert set(answered_while_writing) == {ErrorCode.NONE}
    node.close()


def test_the_controllers_own_stall_is_added_to_every_broker_session() -> None:
    from kwire.controller.heartbeats import BrokerHeartbeatTracker

    tracker = BrokerHeartbeatTracker(session_timeout_ms=9_000)
    tracker.now_ms = 1_000
    tracker.register(1, fenced=False)
    tracker.now_ms = 2_000
    tracker.register(2, fenced=False)
    tracker.now_ms = 10_001
    # Kafka's rule: broker 1's session ran out 9 s after its last contact.
    assert tracker.find_one_stale_broker() == 1
    # The loop was blocked for 3 s meanwhile: heartbeats waited unread in their sockets.
    tracker.credit_stall(3_000)
    assert tracker.find_one_stale_broker() is None
    assert tracker.next_check_ms() == 1_000 + 9_000 + 3_000
    tracker.now_ms = 13_001
    assert tracker.find_one_stale_broker() == 1
    # A stall before a contact does not lengthen the session that contact starts.
    tracker.register(1, fenced=False)
    tracker.now_ms = 13_001 + 9_001
    assert tracker.find_one_stale_broker() == 2
    assert not tracker.has_valid_session(1)


async def test_the_loop_watch_reports_a_step_that_blocks_the_loop() -> None:
    import time

    from kwire.server.loop_watch import LoopStallWatch

    stalls: list[float] = []
    watch = LoopStallWatch(threshold_ms=100, on_stall=stalls.append)
    trio.lowlevel.add_instrument(watch)
    try:
        await trio.sleep(0)
        time.sleep(0.15)  # a step of at least 150 ms
        await trio.sleep(0)
    finally:
        trio.lowlevel.remove_instrument(watch)
    assert len(stalls) == 1 and stalls[0] >= 150
    assert watch.longest_ms == stalls[0]
    assert "test_the_loop_watch_reports" in watch.longest_task
