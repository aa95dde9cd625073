"""A genuine Kafka 4.3.1 broker on a controller formatted at 3.9-IV0, replayed into kwire.

kafka-4.3/broker-lifecycle-static39: a 4.3.1 controller and a 4.3.1 broker, both formatted
with --release-version 3.9-IV0. The broker speaks its own release's request versions
(BrokerRegistration v4 with 7 features, BrokerHeartbeat v2 with cordonedLogDirs=null,
CreateTopics v7 and ListPartitionReassignments v0 in Envelopes, AllocateProducerIds v0);
the controller writes 3.9-IV0's records (RegisterBrokerRecord v3, PartitionRecord v1,
PartitionChangeRecord v1, no ClearElrRecord). kwire at 3.9-IV0 must answer and write the
same, request by request, at the genuine times (tests/story_replay.py; what differs by
release, not by behaviour, is listed in tests/genuine_43.py).
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from genuine_43 import (
    DEFAULTS_CHANGED_IN_4_0,
    REMOVED_IN_4_0,
    STATIC39,
    kafka_4_3_topic_defaults,
    needs,
)
from story_replay import Mismatch, Replay, comparable, replay_story
from test_controller_genuine import fields_of

from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord

pytestmark = needs(STATIC39)

# broker-lifecycle-static39.api-counts.txt: the controller's requests (Envelopes by their
# inner request; Fetch, ApiVersions and DescribeCluster are raft's and the edge's).
CAPTURED_REQUESTS = {
    "BrokerHeartbeat": 14,
    "ControllerRegistration": 1,
    "BrokerRegistration": 1,
    "CreateTopics": 1,
    "ListPartitionReassignments": 1,
    "AllocateProducerIds": 1,
}
# As in test_controller_multi_broker_replay: raft stamps a batch when it opens it.
BATCH_SLACK_MS = 100


@cache
def story() -> Replay:
    return replay_story(STATIC39)


def report(mismatches: list[Mismatch]) -> str:
    return "\n".join(str(m)[:400] for m in mismatches[:30])


def test_every_controller_request_of_the_story_is_fed_to_kwire() -> None:
    assert Counter(frame.name for frame in story().answered) == CAPTURED_REQUESTS


def test_every_answer_of_kwire_is_the_genuine_answer_field_by_field() -> None:
    answers = [m for m in story().mismatches if m.where.startswith("frame")]
    assert not answers, "kwire answered differently:\n" + report(answers)


def test_kwire_writes_the_genuine_records_in_the_genuine_order_and_versions() -> None:
    records = [m for m in story().mismatches if m.where.startswith("record")]
    assert not records, "kwire wrote differently:\n" + report(records)
    ours = [(type(r).__name__, v) for _, r, v in story().log if comparable(r)]
    theirs = [
        (type(g.record).__name__, g.version)
        for g in STATIC39.genuine
        if comparable(g.record) and g.offset > story().genuine_bootstrap_end()
    ]
    assert ours[-len(theirs) :] == theirs


def test_records_are_written_at_3_9_iv0_versions_whatever_the_broker_release() -> None:
    # MetadataVersion.IBP_3_9_IV0: RegisterBrokerRecord v3, PartitionRecord and
    # PartitionChangeRecord v1 (v2 needs ELR, 4.0-IV1+), no ClearElrRecord.
    versions = {(type(r).__name__, v) for _, r, v in story().log}
    assert {
        ("RegisterBrokerRecord", 3),
        ("PartitionRecord", 1),
        ("PartitionChangeRecord", 1),
        ("BrokerRegistrationChangeRecord", 0),
    } <= versions
    assert not {name for name, _ in versions} & {"ClearElrRecord"}
    assert {v for n, v in versions if n in ("PartitionRecord", "PartitionChangeRecord")} == {1}


def test_kwire_writes_each_record_when_the_genuine_controller_did() -> None:
    replay = story()
    ours = [(o, r) for o, r, _ in replay.log[replay.bootstrap_offsets :] if comparable(r)]
    theirs = [
        g
        for g in STATIC39.genuine
        if comparable(g.record) and g.offset > replay.genuine_bootstrap_end()
    ]
    late = [
        (type(g.record).__name__, g.offset, g.timestamp_ms, o, replay.written_at[o])
        for g, (o, _) in zip(theirs, ours, strict=True)
        if abs(replay.written_at[o] - g.timestamp_ms) > BATCH_SLACK_MS
    ]
    assert not late, "(record, genuine offset, genuine time, kwire offset, kwire time)"


def test_kwire_writes_its_noops_at_the_genuine_rate() -> None:
    # metadata.max.idle.interval.ms = 500 in both, run to the same time.
    noops = sum(isinstance(r, NoOpRecord) for o, r, _ in story().log if o > 0)
    assert noops == sum(isinstance(g.record, NoOpRecord) for g in STATIC39.genuine)


def test_the_topic_config_defaults_of_createtopics_differ_only_by_release() -> None:
    # Without the release rule, kwire's answer differs from 4.3.1's only in LogConfig's
    # defaults: the three configs Kafka 4.0 removed, and message.timestamp.after.max.ms.
    replay = story()
    frame = next(f for f in replay.answered if f.name == "CreateTopics")
    genuine = {c["name"]: c for c in fields_of(frame.response)["topics"][0]["configs"]}
    raw = replay.to_genuine(replay.answers[frame.index])
    ours = {c["name"]: c for c in raw["topics"][0]["configs"]}
    assert ours.keys() - genuine.keys() == REMOVED_IN_4_0
    assert genuine.keys() <= ours.keys()
    changed = {n for n in genuine if genuine[n] != ours[n]}
    assert changed == set(DEFAULTS_CHANGED_IN_4_0)
    assert {n: genuine[n]["value"] for n in changed} == DEFAULTS_CHANGED_IN_4_0
    assert kafka_4_3_topic_defaults("CreateTopics", raw)["topics"][0]["configs"] == list(
        genuine.values()
    )
