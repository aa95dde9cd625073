"""The metrics page's names, statistics and counters, in process (no sockets).

Names follow the JMX exporter's Kafka mapping (lowercased); each Kafka metric the issue
lists must appear under the name that mapping gives it. Windowed statistics follow
Kafka's SampledStat arithmetic; error counts follow Kafka's errorCounts.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
import trio
import trio.testing
from node_harness import leader, make_node
from prometheus_client.parser import text_string_to_metric_families
from server_harness import free_port
from test_server_envelope import envelope, inner

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import encode_request
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatResponse
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.server.config import ControllerServerConfig
from kwire.server.dispatch import RequestHandler
from kwire.server.http_edge import HttpRequest
from kwire.server.metrics import KAFKA_METRICS, metrics_page
from kwire.server.metrics_stats import (
    BUCKETS_MS,
    DriverStats,
    RequestStats,
    SampledStat,
    count_errors,
)
from kwire.server.node import ControllerNode
from kwire.server.operator_pages import operator_pages
from kwire.server.serve import answer

__all__ = ["leader"]  # the fixture, imported for pytest to find

# The metrics issue 11 names, as Kafka 3.9 registers them (QuorumControllerMetrics,
# ControllerMetadataMetrics, KafkaRaftMetrics).
KAFKA_CONTROLLER = [
    ("KafkaController", name)
    for name in (
        "ActiveControllerCount",
        "GlobalTopicCount",
        "GlobalPartitionCount",
        "OfflinePartitionsCount",
        "PreferredReplicaImbalanceCount",
        "FencedBrokerCount",
        "ActiveBrokerCount",
        "LastAppliedRecordOffset",
        "LastCommittedRecordOffset",
        "LastAppliedRecordTimestamp",
        "LastAppliedRecordLagMs",
        "TimedOutBrokerHeartbeatCount",
        "NewActiveControllersCount",
        "MetadataErrorCount",
    )
] + [
    ("ControllerEventManager", "EventQueueTimeMs"),
    ("ControllerEventManager", "EventQueueProcessingTimeMs"),
]
HISTOGRAMS = {"EventQueueTimeMs", "EventQueueProcessingTimeMs"}
RAFT_METRICS = (
    "current-leader",
    "current-epoch",
    "current-vote",
    "current-state",
    "high-watermark",
    "log-end-offset",
    "commit-latency-avg",
    "commit-latency-max",
    "election-latency-avg",
    "election-latency-max",
    "append-records-rate",
    "fetch-records-rate",
    "poll-idle-ratio-avg",
    "number-unknown-voter-connections",
)


def jmx_exporter_name(mbean: str, attribute: str | None = None) -> str:
    """The JMX exporter's name for an MBean: domain, then the type and name key values
    (or the attribute), every other character than [a-zA-Z0-9_:] made '_', lowercased."""
    domain, keys = mbean.split(":", 1)
    values = [part.split("=", 1)[1] for part in keys.split(",")]
    parts = [domain, *values, *([attribute] if attribute else [])]
    return re.sub(r"[^a-zA-Z0-9_:]", "_", "_".join(parts)).lower()


def scrape(node: ControllerNode) -> dict[str, str]:
    """Family name -> its type, from one call of the page."""
    response = metrics_page(node)(HttpRequest("GET", "/metrics", {}, {}))
    assert response.status == 200
    return {
        family.name: family.type
        for family in text_string_to_metric_families(response.body.decode())
    }


async def test_every_listed_kafka_controller_metric_appears_under_its_jmx_exporter_name(
    leader: ControllerNode,
) -> None:
    families = scrape(leader)
    for kind, name in KAFKA_CONTROLLER:
        wanted = jmx_exporter_name(f"kafka.controller:type={kind},name={name}")
        assert families.get(wanted) == ("histogram" if name in HISTOGRAMS else "gauge"), wanted


async def test_every_listed_raft_metric_appears_under_its_jmx_exporter_name(
    leader: ControllerNode,
) -> None:
    families = scrape(leader)
    for attribute in RAFT_METRICS:
        wanted = jmx_exporter_name("kafka.server:type=raft-metrics", attribute)
        assert families.get(wanted) == "gauge", wanted


def test_the_table_names_each_metric_once_with_its_kafka_mbean() -> None:
    names = [m.name for m in KAFKA_METRICS]
    assert len(names) == len(set(names))
    for metric in KAFKA_METRICS:
        mbean, _, attribute = metric.kafka.partition(",")
        if mbean.endswith("raft-metrics"):
            assert metric.name == jmx_exporter_name(mbean, attribute)
        else:
            assert metric.name == jmx_exporter_name(metric.kafka)


async def test_a_sole_voter_leads_votes_for_itself_and_is_the_one_active_controller(
    leader: ControllerNode,
) -> None:
    response = metrics_page(leader)(HttpRequest("GET", "/metrics", {}, {}))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.body.decode())
        for s in f.samples
    }
    assert samples[("kafka_controller_kafkacontroller_activecontrollercount", ())] == 1
    assert samples[("kafka_server_raft_metrics_current_leader", ())] == 1
    assert samples[("kafka_server_raft_metrics_current_vote", ())] == 1
    assert samples[("kafka_server_raft_metrics_current_state", (("state", "leader"),))] == 1
    assert samples[("kafka_server_raft_metrics_current_state", (("state", "voted"),))] == 0
    assert samples[("kafka_server_raft_metrics_number_unknown_voter_connections", ())] == 0
    # A sole voter wins without an election, which Kafka does not time: NaN, as Kafka's
    # Avg and Max say with nothing in their window.
    assert math.isnan(samples[("kafka_server_raft_metrics_election_latency_avg", ())])
    committed = leader.committed_offset - 1
    assert samples[("kafka_controller_kafkacontroller_lastcommittedrecordoffset", ())] == committed


def test_the_page_is_off_unless_kwire_metrics_listener_is_set(tmp_path: Path) -> None:
    port = free_port()
    node = make_node(tmp_path, f"1@127.0.0.1:{port}", port)
    base = {
        "process.roles": "controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{port}",
        "listeners": f"CONTROLLER://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(tmp_path / "data"),
    }
    try:
        assert operator_pages(ControllerServerConfig.from_properties(base), node) == []
        on = ControllerServerConfig.from_properties(
            {**base, "kwire.metrics.listener": "127.0.0.1:9404"}
        )
        assert [(address, path) for address, path, _ in operator_pages(on, node)] == [
            (("127.0.0.1", 9404), "/metrics")
        ]
    finally:
        node.close()


# -- Kafka's arithmetic ----------------------------------------------------------------------


def test_a_rate_divides_by_kafkas_window_size_and_forgets_expired_samples() -> None:
    stat = SampledStat(window_ms=30_000, samples=2)
    stat.record(60, now_ms=0)
    # One sample 1 s old: Kafka's Rate.windowSize pads to one full window more (31 s).
    assert stat.rate_per_s(1_000) == pytest.approx(60 / 31)
    stat.record(30, now_ms=45_000)  # a second window
    # 50 s from the oldest window's start: one full window, so no padding.
    assert stat.rate_per_s(50_000) == pytest.approx(90 / 50)
    # At 60 s the first window (started at 0) has expired (2 x 30 s).
    assert stat.rate_per_s(60_000) == pytest.approx(30 / 45)


def test_avg_and_max_are_nan_without_samples_and_over_live_samples_otherwise() -> None:
    stat = SampledStat()
    assert math.isnan(stat.avg(0)) and math.isnan(stat.max(0))
    stat.record(10, 0)
    stat.record(30, 1_000)
    assert (stat.avg(2_000), stat.max(2_000)) == (20, 30)
    assert math.isnan(stat.avg(60_000))


def test_error_counts_take_every_code_in_the_response_as_kafkas_error_counts() -> None:
    response = CreateTopicsResponse(
        topics=[
            CreateTopicsResponse.CreatableTopicResult(name="a", error_code=ErrorCode.NONE),
            CreateTopicsResponse.CreatableTopicResult(
                name="b", error_code=ErrorCode.TOPIC_ALREADY_EXISTS
            ),
            CreateTopicsResponse.CreatableTopicResult(name="c", error_code=ErrorCode.NONE),
        ]
    )
    counts: dict[int, int] = {}
    count_errors(response, counts)
    assert counts == {ErrorCode.NONE: 2, ErrorCode.TOPIC_ALREADY_EXISTS: 1}
    quorum = DescribeQuorumResponse(
        error_code=ErrorCode.NONE,
        topics=[
            DescribeQuorumResponse.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    DescribeQuorumResponse.PartitionData(
                        partition_index=0, error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER
                    )
                ],
            )
        ],
    )
    counts = {}
    count_errors(quorum, counts)
    assert counts == {ErrorCode.NONE: 1, ErrorCode.NOT_LEADER_OR_FOLLOWER: 1}


def test_a_heartbeat_answered_after_half_the_interval_counts_as_timed_out() -> None:
    stats = RequestStats(heartbeat_deadline_ms=1000)
    answer = BrokerHeartbeatResponse(error_code=ErrorCode.NONE)
    stats.record(63, 1, answer, time.perf_counter())  # answered at once
    stats.record(63, 1, answer, time.perf_counter() - 20.0)  # decoded 20 s before
    stats.record(19, 7, CreateTopicsResponse(), time.perf_counter() - 20.0)  # no heartbeat
    assert stats.late_heartbeats == 1
    heartbeat = stats.apis[63]
    assert heartbeat.versions == {1: 2} and heartbeat.errors == {ErrorCode.NONE: 2}
    assert heartbeat.latency.count == 2
    assert heartbeat.latency.counts[len(BUCKETS_MS)] == 1  # above every bound


def test_a_new_leader_counts_once_and_an_election_is_timed_to_its_outcome() -> None:
    stats = DriverStats()
    stats.state_changed("unattached", 1, -1, now_ms=0)
    stats.state_changed("candidate", 2, -1, now_ms=100)
    stats.state_changed("candidate", 3, -1, now_ms=400)  # a retry: the same election
    stats.state_changed("leader", 3, 1, now_ms=700)
    stats.state_changed("leader", 3, 1, now_ms=800)  # the same leader again
    stats.state_changed("follower", 4, 2, now_ms=900)
    assert stats.new_leaders == 2
    assert stats.election_latency.avg(1_000) == 600
    assert stats.election_latency.max(1_000) == 600


def test_a_leaders_flushed_records_count_as_appended_and_their_commit_is_timed() -> None:
    stats = DriverStats(flushed_end=10)
    stats.flushed(14, now_ms=1_000, leader=True)  # 4 records
    stats.flushed(16, now_ms=1_010, leader=True)  # 2 records
    stats.committed(14, now_ms=1_040)
    stats.committed(16, now_ms=1_050)
    # Per record, as Kafka divides a batch's time to commit by its records.
    assert stats.commit_latency.max(1_100) == pytest.approx(40 / 2)
    assert stats.commit_latency.avg(1_100) == pytest.approx((40 / 4 + 40 / 2) / 2)
    # 100 ms into the first window: Kafka's window size pads it to 30.1 s.
    assert stats.append_records.rate_per_s(1_100) == pytest.approx(6 / 30.1)
    stats.flushed(20, now_ms=1_200, leader=False)  # a follower's append is fetched, not appended
    assert stats.append_records.rate_per_s(1_300) == pytest.approx(6 / 30.3)


async def test_each_driver_call_is_timed_in_the_inbox_and_in_its_processing(
    leader: ControllerNode,
) -> None:
    stats = leader.driver.stats
    queued, processed = stats.event_queue_ms.count, stats.event_processing_ms.count
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leader.run)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(5):
                await leader.driver.call(lambda now_ms: None)
            nursery.cancel_scope.cancel()
    assert stats.event_queue_ms.count >= queued + 5  # the node's own ticks are calls too
    assert stats.event_processing_ms.count >= processed + 5
    assert 0 < stats.poll_idle.avg(leader.driver.clock()) <= 1


async def test_a_forwarded_request_counts_as_its_inner_api_and_a_refused_envelope_as_itself(
    leader: ControllerNode,
) -> None:
    handler = RequestHandler(leader)
    create = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name="orders", num_partitions=1, replication_factor=-1
            )
        ],
        timeout_ms=1000,
    )
    with trio.fail_after(10):
        # Through the connection's answer(), the hook that counts every request.
        await answer(encode_request(*envelope(inner(create, 7))), handler)
        await answer(encode_request(*envelope(inner(create, 7), principal=b"")), handler)
    apis = leader.request_stats.apis
    assert apis[19].versions == {7: 1}
    # No broker is registered: CreateTopics answers INVALID_REPLICATION_FACTOR inside.
    assert apis[19].errors == {ErrorCode.INVALID_REPLICATION_FACTOR: 1}
    assert apis[58].versions == {0: 1}
    assert apis[58].errors == {ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE: 1}


def test_partition_counts_from_the_image_indexes_equal_a_walk_of_every_partition(
    kafka_captures: Path,
) -> None:
    """Offline and imbalance counts come from the image's indexes (no walk of a million
    partitions on the event loop); at every offset of the genuine multi-broker log, through
    fencing, reassignment and elections, they equal a walk."""
    from kwire.controller.registrations import NO_LEADER as LEADERLESS
    from kwire.server.metrics import image_counts
    from kwire.tools.history_source import MetadataDirectory

    directory = MetadataDirectory(kafka_captures / "multi-broker" / "controller-1-metadata")
    seen = set()
    for end in range(1, directory.end_offset + 1, 7):
        image = directory.image_at(end).image
        walked = [p for t in image.topics.values() for p in t.partitions.values()]
        counts = image_counts(image)
        expected = (
            len(walked),
            sum(p.leader == LEADERLESS for p in walked),
            sum(p.leader != p.replicas[0] for p in walked),
        )
        assert (counts.partitions, counts.offline, counts.imbalanced) == expected, end
        seen.add(expected)
    assert len(seen) > 5  # the log went through many different states
