"""The whole multi-broker story of a genuine Kafka 3.9 controller, replayed into kwire.

Every request the genuine controller answered (BrokerRegistration, BrokerHeartbeat,
AlterPartition, ControllerRegistration, and the Envelope-forwarded CreateTopics,
DeleteTopics, CreatePartitions, ElectLeaders, partition reassignments, config changes and
UnregisterBroker; DescribeConfigs straight from the admin client) goes, in capture order
and at its capture time, into one QuorumController that writes its own log, with the
controller's timers (broker session timeouts, NoOps) run when they fall due. Each answer
is compared field by field with the genuine answer of the same correlation id, and the
records kwire wrote with the genuine log's records, in order. Values that differ by
nature (topic ids, broker epochs, log offsets, random placement) are compared by the
rules of tests/story_replay.py.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from functools import cache

import pytest
from genuine_story import genuine_log, needs_story
from story_replay import Mismatch, Replay, comparable, controller_frames, replay_story

from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

pytestmark = needs_story

# multi-broker.api-counts.txt: the controller requests of the capture (Envelopes by their
# inner request); Fetch, ApiVersions, DescribeQuorum and DescribeCluster are raft's and
# the edge's.
CAPTURED_REQUESTS = {
    "BrokerHeartbeat": 266,
    "ListPartitionReassignments": 20,
    "IncrementalAlterConfigs": 9,
    "AlterPartition": 5,
    "DescribeConfigs": 5,
    "BrokerRegistration": 4,
    "AlterConfigs": 3,
    "CreateTopics": 2,
    "AlterPartitionReassignments": 2,
    "ControllerRegistration": 1,
    "CreatePartitions": 1,
    "DeleteTopics": 1,
    "ElectLeaders": 1,
    "UnregisterBroker": 1,
}
# Kafka's raft stamps a batch when it opens it (BatchAccumulator), possibly before the
# request whose records it holds arrived, and appends it up to a linger later; the
# capture's clock is the controller's. Far below any timer of the story (NoOps every
# 500 ms, heartbeats every 2 s, sessions of 9 s).
BATCH_SLACK_MS = 100


@cache
def story() -> Replay:
    return replay_story()


def report(mismatches: list[Mismatch]) -> str:
    return "\n".join(str(m) for m in mismatches[:50]) + (
        f"\n... and {len(mismatches) - 50} more" if len(mismatches) > 50 else ""
    )


# -- the acceptance test ---------------------------------------------------------------------


def test_every_controller_request_of_the_story_is_fed_to_kwire() -> None:
    answered = Counter(frame.name for frame in story().answered)
    assert answered == CAPTURED_REQUESTS


def test_every_answer_of_kwire_is_the_genuine_answer_field_by_field() -> None:
    answers = [m for m in story().mismatches if m.where.startswith("frame")]
    assert not answers, "kwire answered differently:\n" + report(answers)


def test_kwire_writes_the_genuine_records_in_the_genuine_order() -> None:
    records = [m for m in story().mismatches if m.where.startswith("record")]
    assert not records, "kwire wrote differently:\n" + report(records)
    ours = [r for _, r, _ in story().log if comparable(r)]
    theirs = [r.record for r in genuine_log() if comparable(r.record)]
    assert [type(r) for r in ours] == [type(r) for r in theirs]


def test_kwire_writes_each_record_when_the_genuine_controller_did() -> None:
    # Above all the session timeout: broker 3, killed at 07:23:48.54, is fenced by
    # ReplicationControlManager.maybeFenceOneStaleBroker 9 s after its last heartbeat.
    replay = story()
    ours = [(o, r) for o, r, _ in replay.log[replay.bootstrap_offsets :] if comparable(r)]
    theirs = [g for g in genuine_log() if comparable(g.record) and g.offset > 5]
    late = [
        (type(g.record).__name__, g.offset, g.timestamp_ms, o, replay.written_at[o])
        for g, (o, _) in zip(theirs, ours, strict=True)
        if abs(replay.written_at[o] - g.timestamp_ms) > BATCH_SLACK_MS
    ]
    assert not late, "(record, genuine offset, genuine time, kwire offset, kwire time)"


def test_kwire_writes_its_noops_at_the_genuine_rate() -> None:
    # metadata.max.idle.interval.ms = 500: both logs, run to the same time, are as long.
    replay = story()
    # (Offset 0 of kwire's log stands for raft's LeaderChange control record.)
    noops = sum(isinstance(r, NoOpRecord) for o, r, _ in replay.log if o > 0)
    assert noops == sum(isinstance(g.record, NoOpRecord) for g in genuine_log())
    assert replay.log[-1][0] == genuine_log()[-1].offset


def test_every_genuine_placement_is_one_kwire_places() -> None:
    # StripedReplicaPlacer's choices are random: for each placing request (t3, t1, and
    # t3 going to 9 partitions) some seed makes kwire's placer choose Kafka's replicas.
    seeds = story().placement_seeds
    assert len(seeds) == 3
    assert None not in seeds.values(), seeds


def test_broker_epochs_are_the_offsets_of_the_registrations_in_both_logs() -> None:
    # ClusterControlManager: a broker's epoch is its RegisterBrokerRecord's offset.
    replay = story()
    registrations = [f for f in replay.answered if isinstance(f.request, BrokerRegistrationRequest)]
    assert sorted(replay.epochs) == sorted(f.response.broker_epoch for f in registrations)
    written = {o for o, r, _ in replay.log if type(r).__name__ == "RegisterBrokerRecord"}
    assert set(replay.epochs.values()) == written


# -- the rules the comparison follows ----------------------------------------------------------


def test_a_broker_at_a_genuine_offset_is_before_the_same_record_of_kwire_log() -> None:
    replay = story()
    genuine_fencing = next(
        g.offset for g in genuine_log() if isinstance(g.record, PartitionChangeRecord)
    )
    ours_fencing = next(o for o, r, _ in replay.log if isinstance(r, PartitionChangeRecord))
    cases = {
        "before any record": (-1, -1),
        "just before the first PartitionChangeRecord": (genuine_fencing - 1, ours_fencing - 1),
        "at the first PartitionChangeRecord": (genuine_fencing, ours_fencing),
        "at the end of the log": (genuine_log()[-1].offset, replay.log[-1][0]),
    }
    for name, (genuine, ours) in cases.items():
        assert replay.kwire_offset(genuine) == ours, name


# -- the comparison can fail -------------------------------------------------------------------


def test_an_answer_differing_in_one_field_is_reported_by_frame_field_and_values() -> None:
    replay = story()
    frame = next(f for f in replay.answered if f.name == "AlterPartition")
    ours = copy.deepcopy(frame.response)
    ours.topics[0].partitions[0].leader_epoch += 1  # type: ignore[attr-defined]
    before = len(replay.mismatches)
    try:
        replay.compare_answer(frame, ours)
        found = replay.mismatches[before:]
    finally:
        del replay.mismatches[before:]
    genuine_epoch = frame.response.topics[0].partitions[0].leader_epoch  # type: ignore[attr-defined]
    assert found == [
        Mismatch(
            str(frame), "topics[0].partitions[0].leader_epoch", genuine_epoch, genuine_epoch + 1
        )
    ]
    assert str(frame).startswith(f"frame {frame.index} t={frame.time_ms} AlterPartition v3")


@pytest.mark.parametrize(
    "change",
    ["a record missing", "a record too many", "a field changed", "a record version changed"],
)
def test_a_log_differing_from_the_genuine_one_is_reported(change: str) -> None:
    replay = copy.copy(story())
    replay.mismatches = []
    log = list(replay.log)
    at = next(i for i, (_, r, _) in enumerate(log) if isinstance(r, PartitionChangeRecord))
    offset, record, version = log[at]
    match change:
        case "a record missing":
            del log[at]
        case "a record too many":
            log.insert(at, (offset, record, version))
        case "a field changed":
            log[at] = (offset, dataclasses.replace(record, leader=record.leader + 1), version)  # type: ignore[attr-defined]
        case "a record version changed":
            log[at] = (offset, record, version - 1)
    replay.log = log
    replay.compare_records()
    assert len(replay.mismatches) == 1, report(replay.mismatches)
    assert replay.mismatches[0].where.startswith("record (genuine offset")


def test_the_story_frames_are_in_capture_order() -> None:
    frames = controller_frames()
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert all(a.time_ms <= b.time_ms for a, b in zip(frames, frames[1:], strict=False))
