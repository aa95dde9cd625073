"""The counters behind kwire's metrics page that no state of the node holds: recorded on
the hot path in plain Python, read (and turned into Prometheus families) only at scrape
time by `kwire.server.metrics`.

Rules
-----
- Recording never allocates per event once an API or error code has been seen: counts are
  ints in dicts, latency histograms are fixed bucket arrays (`bisect` into `BUCKETS_MS`).
- Nothing here imports prometheus_client or reads a clock of its own unless told to: the
  callers pass times (`time.perf_counter()` seconds for spans, wall-clock ms for windows).
- Windowed statistics (`SampledStat`) follow Kafka's `org.apache.kafka.common.metrics`
  defaults: two samples of 30 s (`metrics.num.samples`, `metrics.sample.window.ms`); an
  average or maximum with no sample left is NaN, as Kafka's `Avg` and `Max`; a rate
  divides by Kafka's `Rate.windowSize`.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (ms, inclusive) of the latency histograms; a last bucket takes the rest.
BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0)
SAMPLE_WINDOW_MS = 30_000  # Kafka's metrics.sample.window.ms default
SAMPLES = 2  # Kafka's metrics.num.samples default
BROKER_HEARTBEAT = 63
MAX_UNCOMMITTED = 10_000  # flushed leader batches awaiting commit that are remembered
CANDIDATE = "candidate"
ELECTED = frozenset({"leader", "follower"})


@dataclass(slots=True)
class Histogram:
    """Counts of observations per bucket of `BUCKETS_MS` (the last: above every bound),
    and their sum (ms)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))
    total_ms: float = 0.0

    def observe(self, value_ms: float) -> None:
        self.counts[bisect_left(BUCKETS_MS, value_ms)] += 1
        self.total_ms += value_ms

    @property
    def count(self) -> int:
        return sum(self.counts)


# -- error codes in a response (Kafka's AbstractResponse.errorCounts) ---------------------

# Per response class: (whether it has a top-level error_code, the attributes holding
# structs that have error codes at some depth). Built once per class.
_PLANS: dict[type, tuple[bool, tuple[str, ...]]] = {}


def _plan(cls: type) -> tuple[bool, tuple[str, ...]]:
    plan = _PLANS.get(cls)
    if plan is None:
        _PLANS[cls] = (False, ())  # a struct that holds itself ends here
        fields = getattr(cls, "FIELDS", ())
        own = any(f.attribute == "error_code" for f in fields)
        nested = tuple(
            f.attribute
            for f in fields
            if f.struct is not None and (_plan(f.struct)[0] or _plan(f.struct)[1])
        )
        plan = _PLANS[cls] = (own, nested)
    return plan


def count_errors(message: Any, counts: dict[int, int]) -> None:
    """Add one to `counts[code]` for every error code in `message`, at any depth (NONE
    included), as Kafka's `errorCounts` feeds `ErrorsPerSec`. Response data held as bytes
    (an Envelope's inner response) is not looked into."""
    own, nested = _PLANS.get(type(message)) or _plan(type(message))
    if own:
        code = message.error_code
        counts[code] = counts.get(code, 0) + 1
    for attribute in nested:
        item = getattr(message, attribute)
        if type(item) is list:
            for element in item:
                count_errors(element, counts)
        elif item is not None:
            count_errors(item, counts)


# -- requests ------------------------------------------------------------------------------


@dataclass(slots=True)
class ApiStats:
    """One API's requests answered: by version, by error code, and their latency."""

    versions: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)


class RequestStats:
    """Per-API request counters that the request path updates (`record`), one object per
    node. `heartbeat_deadline_ms`: a BrokerHeartbeat answered later than this after it
    was decoded counts in `late_heartbeats` (Kafka 3.9's ControllerApis gives a heartbeat
    a deadline of broker.heartbeat.interval.ms / 2 in the controller's queue)."""

    __slots__ = ("apis", "heartbeat_deadline_ms", "late_heartbeats")

    def __init__(self, heartbeat_deadline_ms: float) -> None:
        self.apis: dict[int, ApiStats] = {}
        self.heartbeat_deadline_ms = heartbeat_deadline_ms
        self.late_heartbeats = 0

    def record(self, api_key: int, version: int, response: Any, started: float) -> None:
        """One answered request: `started` is `time.perf_counter()` when it was decoded.
        Written inline: it runs once per request (a BrokerHeartbeat's costs about ten dict
        increments)."""
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        api = self.apis.get(api_key)
        if api is None:
            api = self.apis[api_key] = ApiStats()
        versions = api.versions
        versions[version] = versions.get(version, 0) + 1
        own, nested = _PLANS.get(type(response)) or _plan(type(response))
        errors = api.errors
        if own:
            code = response.error_code
            errors[code] = errors.get(code, 0) + 1
        if nested:
            for attribute in nested:
                item = getattr(response, attribute)
                if type(item) is list:
                    for element in item:
                        count_errors(element, errors)
                elif item is not None:
                    count_errors(item, errors)
        latency = api.latency
        latency.counts[bisect_left(BUCKETS_MS, elapsed_ms)] += 1
        latency.total_ms += elapsed_ms
        if api_key == BROKER_HEARTBEAT and elapsed_ms > self.heartbeat_deadline_ms:
            self.late_heartbeats += 1


# -- windowed statistics (Kafka's SampledStat) ---------------------------------------------


@dataclass(slots=True)
class _Sample:
    start_ms: int
    count: int = 0
    total: float = 0.0
    peak: float = -math.inf


class SampledStat:
    """Kafka's SampledStat with `SAMPLES` windows of `SAMPLE_WINDOW_MS`: `avg`, `max` and
    `rate_per_s` over the samples not yet expired at `now_ms`."""

    __slots__ = ("_current", "_current_end_ms", "_samples", "samples", "window_ms")

    def __init__(self, window_ms: int = SAMPLE_WINDOW_MS, samples: int = SAMPLES) -> None:
        self.window_ms = window_ms
        self.samples = samples
        self._samples: deque[_Sample] = deque(maxlen=samples)
        self._current: _Sample | None = None
        self._current_end_ms = 0

    def record(self, value: float, now_ms: int) -> None:
        sample = self._current
        if sample is None or now_ms >= self._current_end_ms:
            sample = self._current = _Sample(now_ms)
            self._current_end_ms = now_ms + self.window_ms
            self._samples.append(sample)
        sample.count += 1
        sample.total += value
        if value > sample.peak:
            sample.peak = value

    def _live(self, now_ms: int) -> list[_Sample]:
        expire = self.samples * self.window_ms
        return [s for s in self._samples if now_ms - s.start_ms < expire]

    def avg(self, now_ms: int) -> float:
        live = self._live(now_ms)
        count = sum(s.count for s in live)
        return sum(s.total for s in live) / count if count else math.nan

    def max(self, now_ms: int) -> float:
        live = [s for s in self._live(now_ms) if s.count]
        return max(s.peak for s in live) if live else math.nan

    def rate_per_s(self, now_ms: int) -> float:
        """The sum over the live samples per second of Kafka's `Rate.windowSize`: from the
        oldest live sample's start, at least (samples - 1) whole windows and one window."""
        live = self._live(now_ms)
        elapsed = now_ms - live[0].start_ms if live else 0
        full_windows = elapsed // self.window_ms
        if full_windows < self.samples - 1:
            elapsed += (self.samples - 1 - full_windows) * self.window_ms
        elapsed = max(elapsed, self.window_ms)
        return sum(s.total for s in live) / (elapsed / 1000.0)


# -- the raft driver -----------------------------------------------------------------------


class DriverStats:
    """What the raft driver (`kwire.server.raft_driver`) records as it runs: the inbox
    wait and processing time of its events, the raft core's transitions and commits.
    Times in ms; `perf` arguments are `time.perf_counter()` seconds."""

    def __init__(self, flushed_end: int = 0) -> None:
        self.event_queue_ms = Histogram()  # a Call's wait in the inbox
        self.event_processing_ms = Histogram()  # an inbox event's handling
        self.new_leaders = 0  # leaders (epoch, id) learnt of, as handleLeaderChange
        self._leader: tuple[int, int] = (-1, -1)
        self._election_start_ms: int | None = None
        self.election_latency = SampledStat()
        self.commit_latency = SampledStat()
        self.append_records = SampledStat()
        self.fetch_records = SampledStat()
        self.poll_idle = SampledStat()
        self._flushed_end = flushed_end
        # The leader's flushed batches awaiting commit: (end offset, flushed at ms, records);
        # bounded, for a leader that keeps appending without a quorum (the oldest go untimed).
        self._uncommitted: deque[tuple[int, int, int]] = deque(maxlen=MAX_UNCOMMITTED)
        self._last_wake: float | None = None

    def polled(self, idle_from: float, woke: float, now_ms: int) -> None:
        """The driver waited for an event from `idle_from` to `woke` (perf seconds): the
        share of the time since it last woke spent waiting (Kafka's poll-idle-ratio)."""
        last = self._last_wake
        self._last_wake = woke
        if last is not None and woke > last:
            self.poll_idle.record(min((woke - idle_from) / (woke - last), 1.0), now_ms)

    def handled(self, queued_at: float | None, woke: float, done: float) -> None:
        """An inbox event taken at `woke` and handled by `done`; a Call waited from
        `queued_at` (None for peer events, which carry no time). Inline for speed."""
        if queued_at is not None:
            waited = (woke - queued_at) * 1000.0
            queue = self.event_queue_ms
            queue.counts[bisect_left(BUCKETS_MS, waited)] += 1
            queue.total_ms += waited
        busy = (done - woke) * 1000.0
        processing = self.event_processing_ms
        processing.counts[bisect_left(BUCKETS_MS, busy)] += 1
        processing.total_ms += busy

    def state_changed(self, state: str, epoch: int, leader_id: int, now_ms: int) -> None:
        """A raft transition: a newly known leader counts once (Kafka's QuorumController
        counts each handleLeaderChange naming a leader); an election runs from becoming a
        candidate to becoming leader or follower (KafkaRaftMetrics' election latency; one
        won within the millisecond is a sole voter's, which Kafka does not time either)."""
        if leader_id >= 0 and (epoch, leader_id) != self._leader:
            self._leader = (epoch, leader_id)
            self.new_leaders += 1
        if state == CANDIDATE:
            if self._election_start_ms is None:
                self._election_start_ms = now_ms
        elif state in ELECTED and self._election_start_ms is not None:
            # A candidate that wins in the same millisecond won alone (a sole voter):
            # Kafka's onBecomeCandidate starts no election timer for that.
            if now_ms > self._election_start_ms:
                self.election_latency.record(now_ms - self._election_start_ms, now_ms)
            self._election_start_ms = None
        if state != "leader":
            self._uncommitted.clear()

    def flushed(self, end_offset: int, now_ms: int, leader: bool) -> None:
        """The log is durable to `end_offset`; a leader's new records count as appended."""
        appended = end_offset - self._flushed_end
        self._flushed_end = end_offset
        if leader and appended > 0:
            self.append_records.record(appended, now_ms)
            self._uncommitted.append((end_offset, now_ms, appended))

    def fetched(self, records: int, now_ms: int) -> None:
        if records > 0:
            self.fetch_records.record(records, now_ms)

    def truncated(self, end_offset: int) -> None:
        self._flushed_end = min(self._flushed_end, end_offset)

    def committed(self, high_watermark: int, now_ms: int) -> None:
        """Each flushed batch of the leader now below the high watermark: its time from
        flush to commit, per record (Kafka divides a batch's latency by its records)."""
        pending = self._uncommitted
        while pending and pending[0][0] <= high_watermark:
            _, flushed_ms, records = pending.popleft()
            self.commit_latency.record(max(now_ms - flushed_ms, 0) / records, now_ms)
