"""Each invariant checker of the simulator fails on a constructed bad history."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from kwire.controller.controller import ControllerConfig, QuorumController
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.raft.core import RaftConfig
from kwire.raft.state import Voter
from kwire.records import Record, build_batch, encode_batch, frame_metadata_record
from kwire.sim.invariants import History, InvariantViolation, Replays, check_images
from kwire.sim.memory_log import MemoryLog, StoredBatch
from kwire.sim.replay import replay_batch

CONFIG = ControllerConfig()


def batch(*values: bytes) -> bytes:
    records = [Record(offset_delta=i, value=v) for i, v in enumerate(values)]
    return encode_batch(build_batch(records, base_timestamp=0))


def metadata_batch(*records: FeatureLevelRecord | TopicRecord) -> bytes:
    return batch(*(frame_metadata_record(r.API_KEY, 0, r.encode(0)) for r in records))  # type: ignore[arg-type]


@dataclass
class FakeNode:
    """The attributes of a SimNode the checkers read."""

    node_id: int
    log: MemoryLog = field(default_factory=MemoryLog)
    incarnation: int = 1
    committed_end: int = 0
    controller: QuorumController | None = None
    raft_config: RaftConfig = field(
        default_factory=lambda: RaftConfig(
            node_id=1, cluster_id="c", voters=(Voter(node_id=1, host="h", port=1),)
        )
    )


def log_of(*batches: tuple[bytes, int]) -> MemoryLog:
    log = MemoryLog()
    for data, epoch in batches:
        log.append_as_leader(data, epoch)
    log.flush()
    return log


# -- election safety ----------------------------------------------------------------------


def test_two_leaders_of_one_epoch_break_election_safety() -> None:
    history = History()
    history.leader_elected(1, 5)
    history.leader_elected(1, 5)  # the same leader again is fine
    history.leader_elected(2, 6)
    with pytest.raises(InvariantViolation, match="election safety: nodes 1 and 3 both led epoch 5"):
        history.leader_elected(3, 5)


# -- log matching -------------------------------------------------------------------------


def test_other_bytes_at_the_same_offset_and_epoch_break_log_matching() -> None:
    history = History()
    a, b = log_of((batch(b"a"), 1)), log_of((batch(b"b"), 1))
    history.batch_appended(1, a.batches[0], None)
    history.batch_appended(2, a.batches[0], None)
    with pytest.raises(InvariantViolation, match="log matching: node 3 holds another batch"):
        history.batch_appended(3, b.batches[0], None)


def test_the_same_batch_after_another_predecessor_breaks_log_matching() -> None:
    history = History()
    one = log_of((batch(b"a"), 1), (batch(b"c"), 3))
    history.batch_appended(1, one.batches[0], None)
    history.batch_appended(1, one.batches[1], (0, 1))
    with pytest.raises(InvariantViolation, match="follows"):
        history.batch_appended(2, one.batches[1], (0, 2))


# -- committed durability -----------------------------------------------------------------


def test_committing_another_batch_at_a_committed_offset_is_caught() -> None:
    history = History()
    history.commit_prefix(1, log_of((batch(b"a"), 1)), 1)
    with pytest.raises(InvariantViolation, match="committed durability: node 2 commits offset 0"):
        history.commit_prefix(2, log_of((batch(b"b"), 2)), 1)


def test_truncating_a_committed_batch_is_caught_but_an_uncommitted_one_is_not() -> None:
    history = History()
    log = log_of((batch(b"a"), 1), (batch(b"b"), 1))
    history.commit_prefix(1, log, 1)
    history.truncated(1, log, 1)  # offset 1 was never committed
    with pytest.raises(InvariantViolation, match="removing the committed batch at offset 0"):
        history.truncated(1, log, 0)


def test_a_high_watermark_that_moves_down_while_the_node_lives_is_caught() -> None:
    history = History()
    node = FakeNode(1, log_of((batch(b"a", b"b", b"c"), 1)))
    history.high_watermark_advanced(node, 3)  # type: ignore[arg-type]
    history.high_watermark_advanced(node, 3)  # type: ignore[arg-type]
    with pytest.raises(InvariantViolation, match="from 3 down to 2"):
        history.high_watermark_advanced(node, 2)  # type: ignore[arg-type]


def test_a_restarted_node_may_not_relearn_a_lower_high_watermark_than_it_had() -> None:
    history = History()
    node = FakeNode(1, log_of((batch(b"a"), 1), (batch(b"b"), 1), (batch(b"c"), 1)))
    history.high_watermark_advanced(node, 3)  # type: ignore[arg-type]
    node.incarnation = 2
    node.log.truncate_to(2)  # lost its unflushed tail: the bound is its log end
    history.high_watermark_advanced(node, 2)  # type: ignore[arg-type]
    node.incarnation = 3
    with pytest.raises(InvariantViolation, match="re-learned high watermark 1, below the 2"):
        history.high_watermark_advanced(node, 1)  # type: ignore[arg-type]


# -- leader completeness ------------------------------------------------------------------


def test_a_leader_without_a_committed_batch_breaks_leader_completeness() -> None:
    history = History()
    committed = log_of((batch(b"a"), 1), (batch(b"b"), 1))
    history.commit_prefix(1, committed, 2)
    history.leader_complete(1, committed)
    stale = log_of((batch(b"a"), 1))
    with pytest.raises(InvariantViolation, match="leads without the committed batch at offset 1"):
        history.leader_complete(2, stale)


# -- state machine safety -----------------------------------------------------------------


def replayed(log: MemoryLog, end: int) -> QuorumController:
    controller = QuorumController(node_id=1, cluster_id="c", config=CONFIG, rng=random.Random(0))
    for stored in log.batches_between(0, end):
        replay_batch(controller, stored, 0, end)
    return controller


FEATURE = FeatureLevelRecord(name="metadata.version", feature_level=21)
TOPIC = TopicRecord(name="t", topic_id=__import__("uuid").UUID(int=7))


def test_a_controller_that_replayed_its_log_matches() -> None:
    log = log_of((metadata_batch(FEATURE), 1), (metadata_batch(TOPIC), 1))
    node = FakeNode(1, log, committed_end=2, controller=replayed(log, 2))
    check_images(node, CONFIG)  # type: ignore[arg-type]


def test_an_image_holding_what_its_log_does_not_breaks_state_machine_safety() -> None:
    log = log_of((metadata_batch(FEATURE), 1), (metadata_batch(TOPIC), 1))
    controller = replayed(log, 2)
    other = log_of((metadata_batch(FEATURE), 1))
    node = FakeNode(1, other, committed_end=2, controller=controller)
    node.log.append_as_leader(metadata_batch(TopicRecord(name="u", topic_id=TOPIC.topic_id)), 1)
    with pytest.raises(InvariantViolation, match="differs from the replay of its log"):
        check_images(node, CONFIG)  # type: ignore[arg-type]


def test_a_replay_kept_for_an_equal_log_still_catches_an_image_that_differs() -> None:
    replays: Replays = {}
    log = log_of((metadata_batch(FEATURE), 1), (metadata_batch(TOPIC), 1))
    check_images(FakeNode(1, log, committed_end=2, controller=replayed(log, 2)), CONFIG, replays)  # type: ignore[arg-type]
    assert len(replays) == 1
    # Node 2 holds the same log but its controller applied another topic at offset 1.
    same = log_of((metadata_batch(FEATURE), 1), (metadata_batch(TOPIC), 1))
    other = log_of(
        (metadata_batch(FEATURE), 1),
        (metadata_batch(TopicRecord(name="u", topic_id=TOPIC.topic_id)), 1),
    )
    node = FakeNode(2, same, committed_end=2, controller=replayed(other, 2))
    with pytest.raises(InvariantViolation, match="node 2's controller image differs"):
        check_images(node, CONFIG, replays)  # type: ignore[arg-type]
    # A log that differs is replayed afresh: node 3 replayed that other log, and matches it.
    check_images(
        FakeNode(3, other, committed_end=2, controller=replayed(other, 2)), CONFIG, replays
    )  # type: ignore[arg-type]
    assert len(replays) == 2


def test_a_standby_that_applied_uncommitted_records_breaks_state_machine_safety() -> None:
    log = log_of((metadata_batch(FEATURE), 1), (metadata_batch(TOPIC), 1))
    node = FakeNode(1, log, committed_end=1, controller=replayed(log, 2))
    with pytest.raises(InvariantViolation, match="beyond its committed offset 0"):
        check_images(node, CONFIG)  # type: ignore[arg-type]


def test_stored_batches_keep_their_offsets_for_replay() -> None:
    log = log_of((metadata_batch(FEATURE, TOPIC), 1))
    stored: StoredBatch = log.batches[0]
    assert (stored.base_offset, stored.last_offset, stored.epoch) == (0, 1, 1)
    assert replayed(log, 1).last_applied_offset == 0  # only offset 0 is below the end
