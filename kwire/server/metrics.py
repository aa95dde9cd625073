"""kwire's `/metrics` page: Kafka's controller metrics in the Prometheus text format.

Served on `kwire.metrics.listener=HOST:PORT` (off unless set) by `metrics_page(node)`,
with prometheus_client's `generate_latest` over a registry of its own holding one
`ControllerCollector`.

Names
-----
Kafka's controller has JMX metrics only; scrapers reach them through Prometheus's JMX
exporter, whose Kafka rules (with ``lowercaseOutputName``) kwire's names follow, so that
dashboards built on them read kwire unchanged:

- a Yammer gauge ``kafka.<domain>:type=<Type>,name=<Name>`` is the gauge
  ``kafka_<domain>_<type>_<name>``, lowercased
  (``kafka_controller_kafkacontroller_activecontrollercount``);
- a Yammer histogram or timer is a Prometheus histogram of that name, in ms
  (``kafka_controller_controllereventmanager_eventqueuetimems_bucket``/``_sum``/``_count``);
- a Kafka-metrics attribute of ``kafka.server:type=raft-metrics`` is
  ``kafka_server_raft_metrics_<attribute>`` with ``-`` made ``_``; the string gauge
  current-state is one series per state, labelled ``state``, 1 for the current one;
- a meter ``kafka.network:type=RequestMetrics,name=<X>PerSec,<tags>`` is the counter
  ``kafka_network_requestmetrics_<x>_total`` with the tags as labels (``request``,
  ``version``, ``error``: Kafka's ApiKeys and Errors names).

`KAFKA_METRICS` lists every metric with its Kafka name; `tests/test_server_metrics*.py`
check each appears and means what Kafka's does.

Cost: nothing is computed until a scrape. The gauges read the node's state then: the
image counts walk every partition once (O(partitions) per scrape, on the event loop), and
LastAppliedRecordTimestamp reads one batch header from the log. The request and driver
counters are kept by `kwire.server.metrics_stats` on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from kwire.controller.image import MetadataImage
from kwire.log import OffsetOutOfRangeError
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.index import APIS
from kwire.records import iter_batch_headers
from kwire.server.http_edge import HttpRequest, HttpResponse
from kwire.server.metrics_stats import BUCKETS_MS, Histogram
from kwire.server.node import ControllerNode, wall_clock_ms

CONTROLLER = "kafka_controller_kafkacontroller_"
EVENT_MANAGER = "kafka_controller_controllereventmanager_"
RAFT = "kafka_server_raft_metrics_"
REQUESTS = "kafka_network_requestmetrics_"
NO_LEADER = -1
# Kafka 3.9's current-state values, and kwire's two more (Kafka 4's prospective, KIP-996;
# resigned, which Kafka 3.9 reports as unattached).
RAFT_STATES = (
    "leader",
    "candidate",
    "voted",
    "follower",
    "unattached",
    "observer",
    "prospective",
    "resigned",
)


@dataclass(frozen=True, slots=True)
class KafkaMetric:
    """One exported metric: Kafka's MBean name and attribute, kwire's name, its meaning."""

    kafka: str
    name: str
    help: str


def _c(name: str, help: str) -> KafkaMetric:
    return KafkaMetric(
        f"kafka.controller:type=KafkaController,name={name}", CONTROLLER + name.lower(), help
    )


def _r(attribute: str, help: str) -> KafkaMetric:
    return KafkaMetric(
        f"kafka.server:type=raft-metrics,{attribute}", RAFT + attribute.replace("-", "_"), help
    )


KAFKA_METRICS: tuple[KafkaMetric, ...] = (
    _c("ActiveControllerCount", "1 on the active controller (leader and caught up), else 0."),
    _c("GlobalTopicCount", "Topics in the metadata image."),
    _c("GlobalPartitionCount", "Partitions in the metadata image."),
    _c("OfflinePartitionsCount", "Partitions of the image without a leader."),
    _c(
        "PreferredReplicaImbalanceCount",
        "Partitions of the image whose leader is not their first replica.",
    ),
    _c("FencedBrokerCount", "Registered brokers that are fenced."),
    _c("ActiveBrokerCount", "Registered brokers that are not fenced."),
    _c(
        "LastAppliedRecordOffset",
        "Offset of the last record the controller applied to its image (the active "
        "controller applies its own records before they commit).",
    ),
    _c("LastCommittedRecordOffset", "Offset of the last committed record (high watermark - 1)."),
    _c(
        "LastAppliedRecordTimestamp",
        "Append time (ms since the epoch) of the batch holding the last applied record; "
        "-1 when it is not in the log (only in a snapshot).",
    ),
    _c("LastAppliedRecordLagMs", "Now minus LastAppliedRecordTimestamp (ms)."),
    _c(
        "TimedOutBrokerHeartbeatCount",
        "BrokerHeartbeats answered later than broker.heartbeat.interval.ms / 2 after they "
        "were read: Kafka's deadline for a heartbeat in its controller queue. kwire has no "
        "such queue deadline and answers them anyway; this counts the ones Kafka would "
        "have timed out.",
    ),
    _c(
        "NewActiveControllersCount",
        "Leaders this node learnt of (each new epoch with a known leader, as Kafka's "
        "QuorumController counts in handleLeaderChange).",
    ),
    _c(
        "MetadataErrorCount",
        "Faults the controller survived since the process started (Kafka's non-fatal "
        "quorum controller faults): an unexpected error while handling a request or its "
        "periodic work, answered UNKNOWN_SERVER_ERROR and followed, on the active "
        "controller, by a revert to the last committed offset and a resignation. API "
        "errors are not counted.",
    ),
    KafkaMetric(
        "kafka.controller:type=ControllerEventManager,name=EventQueueTimeMs",
        EVENT_MANAGER + "eventqueuetimems",
        "Time (ms) a request's step waited in the raft driver's inbox before it ran (kwire's "
        "nearest to Kafka's controller event queue: the one task that owns the raft core and "
        "the controller).",
    ),
    KafkaMetric(
        "kafka.controller:type=ControllerEventManager,name=EventQueueProcessingTimeMs",
        EVENT_MANAGER + "eventqueueprocessingtimems",
        "Time (ms) the raft driver spent handling one inbox event (a request's step, a "
        "peer's response or a failed send), actions carried out included.",
    ),
    _r("current-leader", "The current quorum leader's id; -1 indicates unknown."),
    _r("current-epoch", "The current quorum epoch."),
    _r(
        "current-vote",
        "The current voted id (this node's own as leader or candidate); -1 indicates not "
        "voted for anyone.",
    ),
    _r(
        "current-state",
        "1 for this member's current state: leader, candidate, voted, follower, unattached, "
        "observer (Kafka 3.9's), prospective or resigned (kwire's).",
    ),
    _r("high-watermark", "The high watermark maintained on this member; -1 if it is unknown."),
    _r("log-end-offset", "The current raft log end offset."),
    _r("log-end-epoch", "The current raft log end epoch."),
    _r(
        "number-unknown-voter-connections",
        "Voters other than this node whose endpoint this node does not know.",
    ),
    _r(
        "commit-latency-avg",
        "Average time (ms) from the leader's fsync of a batch to its commit, per record of "
        "the batch (as Kafka divides), over the last two 30 s windows.",
    ),
    _r("commit-latency-max", "Maximum of commit-latency (ms) over the last two 30 s windows."),
    _r(
        "election-latency-avg",
        "Average time (ms) from becoming a candidate to becoming leader or follower.",
    ),
    _r("election-latency-max", "Maximum of election-latency (ms)."),
    _r(
        "append-records-rate",
        "Records appended (and flushed) per second as the leader of the raft quorum.",
    ),
    _r("fetch-records-rate", "Records fetched per second from the leader of the raft quorum."),
    _r(
        "poll-idle-ratio-avg",
        "Average share of time the raft driver task waits for an event rather than working.",
    ),
)
_HELP = {m.name: m.help for m in KAFKA_METRICS}
# Kafka's per-API request metrics (kafka.network:type=RequestMetrics).
REQUESTS_TOTAL = REQUESTS + "requests"
ERRORS_TOTAL = REQUESTS + "errors"
TOTAL_TIME_MS = REQUESTS + "totaltimems"
REQUEST_HELP = {
    REQUESTS_TOTAL: "Requests answered, by API and version (Kafka's RequestsPerSec).",
    ERRORS_TOTAL: "Error codes in the answers, NONE included, by API and Kafka's error name "
    "(Kafka's ErrorsPerSec, counted from every error code of the response).",
    TOTAL_TIME_MS: "Time (ms) from a request decoded to its response built (Kafka's "
    "TotalTimeMs, without the socket time).",
}


@dataclass(frozen=True, slots=True)
class ImageCounts:
    """What ControllerMetadataMetrics counts in an image."""

    fenced_brokers: int
    active_brokers: int
    topics: int
    partitions: int
    offline: int
    imbalanced: int


def image_counts(image: MetadataImage) -> ImageCounts:
    """Counts as Kafka's ControllerMetricsChanges keeps them: a partition is offline with
    no leader, imbalanced when its leader is not its first replica (so a leaderless
    partition is both). Read from the image's own indexes (the leaderless partitions under
    NO_LEADER in its ISR index, its imbalance count): O(brokers + topics), never a walk of
    every partition on the event loop."""
    fenced = sum(1 for b in image.brokers.values() if b.fenced)
    leaderless = image.isr_members.get(NO_LEADER, {})
    return ImageCounts(
        fenced_brokers=fenced,
        active_brokers=len(image.brokers) - fenced,
        topics=len(image.topics),
        partitions=sum(len(topic.partitions) for topic in image.topics.values()),
        offline=sum(len(partitions) for partitions in leaderless.values()),
        imbalanced=image.imbalanced_count,
    )


def batch_timestamp(node: ControllerNode, offset: int) -> int:
    """The max timestamp of the log batch holding `offset`; -1 when the log does not hold
    it (it is in a snapshot, or nothing was applied)."""
    if offset < node.log.log_start_offset or offset >= node.log.end_offset:
        return -1
    try:
        data = node.log.read(offset, max_bytes=1)
    except (OffsetOutOfRangeError, OSError):
        return -1
    for _, header in iter_batch_headers(data, verify_crc=False):
        return header.max_timestamp
    return -1


def raft_state(node: ControllerNode) -> str:
    state = node.raft.state_name
    if state == "follower" and node.raft.voter(node.settings.node_id) is None:
        return "observer"
    return state


def current_vote(node: ControllerNode) -> int:
    """KafkaRaftMetrics' current-vote: this node as leader or candidate, the vote of an
    unattached voter, else -1."""
    match node.raft.state_name:
        case "leader" | "candidate":
            return node.settings.node_id
        case "voted":
            return node.raft.voted_id
    return -1


class ControllerCollector(Collector):
    """Every metric of `KAFKA_METRICS` and the request metrics, read from `node` when
    collected (the node's controller, raft core and stats, whichever are current)."""

    def __init__(self, node: ControllerNode, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.node = node
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield from self._controller()
        yield from self._raft()
        yield from self._requests()

    def _gauge(self, name: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, _HELP[name], value=value)

    def _controller(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        node, now = self.node, self.clock()
        controller = node.controller
        counts = image_counts(controller.image)
        applied = controller.last_applied_offset
        timestamp = batch_timestamp(node, applied)
        values = {
            "ActiveControllerCount": int(node.active),
            "GlobalTopicCount": counts.topics,
            "GlobalPartitionCount": counts.partitions,
            "OfflinePartitionsCount": counts.offline,
            "PreferredReplicaImbalanceCount": counts.imbalanced,
            "FencedBrokerCount": counts.fenced_brokers,
            "ActiveBrokerCount": counts.active_brokers,
            "LastAppliedRecordOffset": applied,
            "LastCommittedRecordOffset": node.committed_offset - 1,
            "LastAppliedRecordTimestamp": timestamp,
            "LastAppliedRecordLagMs": now - timestamp,
            "TimedOutBrokerHeartbeatCount": node.request_stats.late_heartbeats,
            "NewActiveControllersCount": node.driver.stats.new_leaders,
            "MetadataErrorCount": node.faults.metadata_errors,
        }
        for name, value in values.items():
            yield self._gauge(CONTROLLER + name.lower(), value)
        stats = node.driver.stats
        yield _histogram(EVENT_MANAGER + "eventqueuetimems", [((), stats.event_queue_ms)])
        yield _histogram(
            EVENT_MANAGER + "eventqueueprocessingtimems", [((), stats.event_processing_ms)]
        )

    def _raft(self) -> Iterator[GaugeMetricFamily]:
        node, now = self.node, self.clock()
        raft, stats = node.raft, node.driver.stats
        others = [v.node_id for v in node.settings.voters if v.node_id != node.settings.node_id]
        values: dict[str, float] = {
            "current-leader": raft.leader_id,
            "current-epoch": raft.epoch,
            "current-vote": current_vote(node),
            "high-watermark": raft.high_watermark,
            "log-end-offset": node.log.end_offset,
            "log-end-epoch": raft.last_fetched_epoch(),
            "number-unknown-voter-connections": sum(
                1 for v in others if raft.voter_endpoint(v) is None
            ),
            "commit-latency-avg": stats.commit_latency.avg(now),
            "commit-latency-max": stats.commit_latency.max(now),
            "election-latency-avg": stats.election_latency.avg(now),
            "election-latency-max": stats.election_latency.max(now),
            "append-records-rate": stats.append_records.rate_per_s(now),
            "fetch-records-rate": stats.fetch_records.rate_per_s(now),
            "poll-idle-ratio-avg": stats.poll_idle.avg(now),
        }
        for attribute, value in values.items():
            yield self._gauge(RAFT + attribute.replace("-", "_"), value)
        name = RAFT + "current_state"
        state = GaugeMetricFamily(name, _HELP[name], labels=["state"])
        current = raft_state(node)
        for each in RAFT_STATES:
            state.add_metric([each], int(each == current))
        yield state

    def _requests(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        apis = sorted(self.node.request_stats.apis.items())
        requests = CounterMetricFamily(
            REQUESTS_TOTAL, REQUEST_HELP[REQUESTS_TOTAL], labels=["request", "version"]
        )
        errors = CounterMetricFamily(
            ERRORS_TOTAL, REQUEST_HELP[ERRORS_TOTAL], labels=["request", "error"]
        )
        for key, api in apis:
            request = _api_name(key)
            for version, count in sorted(api.versions.items()):
                requests.add_metric([request, str(version)], count)
            for code, count in sorted(api.errors.items()):
                errors.add_metric([request, _error_name(code)], count)
        yield requests
        yield errors
        yield _histogram(
            TOTAL_TIME_MS,
            [((_api_name(key),), api.latency) for key, api in apis],
            labels=("request",),
            help=REQUEST_HELP[TOTAL_TIME_MS],
        )


def _api_name(key: int) -> str:
    api = APIS.get(key)
    return api.name if api is not None else str(key)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def _histogram(
    name: str,
    series: list[tuple[tuple[str, ...], Histogram]],
    *,
    labels: tuple[str, ...] = (),
    help: str | None = None,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help or _HELP[name], labels=list(labels))
    for values, histogram in series:
        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS_MS, math.inf), histogram.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        family.add_metric(list(values), buckets, histogram.total_ms)
    return family


def metrics_page(node: ControllerNode) -> Callable[[HttpRequest], HttpResponse]:
    """The `/metrics` handler: every metric of `node` in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(node))

    def page(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return page
