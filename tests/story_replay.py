"""Replaying every controller request of the genuine multi-broker story into one kwire
QuorumController, in capture order and at the genuine times, and comparing each answer
and every record written with the genuine ones (see test_controller_multi_broker_replay).

The controller starts empty and writes its own log: its offsets, broker epochs (which
are offsets) and topic ids differ from the genuine ones by nature. They are compared by
rule, through maps built as the story goes:

- topic ids: genuine id -> kwire id, when a CreateTopics answer (or a TopicRecord) first
  names the topic;
- broker epochs: genuine epoch -> kwire epoch, from each BrokerRegistration answer;
- log offsets a broker reports (BrokerHeartbeat.current_metadata_offset): a broker that
  has read the genuine log up to offset g has seen the first n records after the
  bootstrap that are not NoOps; it has read kwire's log up to just before kwire's
  (n+1)-th such record after kwire's bootstrap.
- replica placement is random (StripedReplicaPlacer draws a rack order and offsets):
  kwire's rng is seeded, per placing request, with the first seed under which kwire's
  placer picks the genuine replicas, so that the genuine placement is shown to be one
  kwire's placer makes (and the rest of the story can be compared exactly).

Requests are rewritten genuine -> kwire before they are fed; answers and records are
rewritten kwire -> genuine before they are compared.

A ``Story`` names the capture (its transcript, the controller's metadata log, the
controller's settings and its metadata.version); ``MULTI_BROKER`` is the Kafka 3.9 one,
and tests/test_genuine_43_*.py replay Kafka 4.3.1's through the same machinery.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import difflib
import ipaddress
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

from genuine_story import CLUSTER_ID, FRAMES, LOG, STORY
from test_controller_configs import genuine_config_exchanges, genuine_static_configs
from test_controller_genuine import LoggedRecord, fields_of, read_metadata_log

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.records import RecordAndVersion
from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.create_partitions import CreatePartitionsRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.envelope import EnvelopeRequest
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_controller_record import (
    RegisterControllerRecord,
)
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.server.dispatch import unwrap_envelope
from kwire.storage.bootstrap import read_bootstrap_checkpoint

# The raft and edge layer answers these, not the controller.
NOT_CONTROLLER_APIS = {1: "Fetch", 18: "ApiVersions", 55: "DescribeQuorum", 60: "DescribeCluster"}
ENVELOPE = 58
# How many seeds to try for a placement before calling it a mismatch.
PLACEMENT_SEEDS = 2000
EPOCH_FIELDS = ("broker_epoch", "previous_broker_epoch")


@dataclass(frozen=True)
class Story:
    """A genuine capture to replay: one controller's frames and metadata log."""

    name: str
    frames: Path  # <story>.jsonl: every frame of the controller's port
    log: Path  # the controller's metadata log segment
    config: Callable[[], ControllerConfig]  # the controller's settings, as it ran
    metadata_version_level: int = 21  # the level it was formatted at
    # kwire's answer (plain data, genuine ids) -> what the genuine release would answer,
    # for values that differ by release rather than by behaviour; by request name.
    release_rules: Callable[[str, Any], Any] = lambda name, answer: answer
    # The bootstrap.checkpoint it was formatted with (every feature it bootstraps), or None
    # for metadata.version alone.
    bootstrap_checkpoint: Path | None = None

    @property
    def genuine(self) -> tuple[LoggedRecord, ...]:
        return _read_log(self.log)


@cache
def _read_log(path: Path) -> tuple[LoggedRecord, ...]:
    return tuple(read_metadata_log(path))


@dataclass(frozen=True)
class Frame:
    """One controller request of the capture, with its genuine answer."""

    index: int  # line of multi-broker.jsonl (0-based)
    time_ms: int
    correlation_id: int
    request: Message
    response: Message
    context: RequestContext

    @property
    def name(self) -> str:
        return type(self.request).__name__.removesuffix("Request")

    def __str__(self) -> str:
        via = " (in Envelope)" if self.context.envelope else ""
        return (
            f"frame {self.index} t={self.time_ms} {self.name} v{self.context.api_version}"
            f" corr={self.correlation_id}{via}"
        )


@dataclass(frozen=True)
class Mismatch:
    where: str
    path: str
    genuine: Any
    kwire: Any

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: genuine {self.genuine!r} != kwire {self.kwire!r}"


def controller_frames(frames_path: Path = FRAMES) -> list[Frame]:
    """Every request of the capture the controller answers, in capture order; Envelopes
    unwrapped as kwire's server unwraps them (kwire.server.dispatch.unwrap_envelope)."""
    lines = [json.loads(line) for line in frames_path.read_text().splitlines() if line.strip()]
    answers = {(d["stream"], d["correlation_id"]): d for d in lines if d["dir"] == "response"}
    frames = []
    for index, d in enumerate(lines):
        if d["dir"] != "request" or d["api_key"] in NOT_CONTROLLER_APIS:
            continue
        header, body = decode_request(bytes.fromhex(d["hex"]))
        answer = answers[(d["stream"], d["correlation_id"])]
        _, response = decode_response(bytes.fromhex(answer["hex"]), d["api_key"], d["api_version"])
        if isinstance(body, EnvelopeRequest):
            forwarded = unwrap_envelope(body)
            header, inner = forwarded.header, forwarded.body
            _, response = decode_response(
                bytes(response.response_data), header.request_api_key, header.request_api_version
            )
            context = RequestContext(
                api_version=header.request_api_version,
                client_id=header.client_id or "",
                principal=forwarded.principal,
                envelope=True,
                client_host=str(ipaddress.ip_address(bytes(body.client_host_address))),
            )
            body = inner
        else:
            context = RequestContext(
                api_version=header.request_api_version,
                client_id=header.client_id or "",
                client_host="127.0.0.1",
            )
        frames.append(
            Frame(index, int(d["t"] * 1000), header.correlation_id, body, response, context)
        )
    return frames


def genuine_controller_config() -> ControllerConfig:
    """c1.properties as the genuine controller ran with it (Kafka's defaults otherwise)."""
    return ControllerConfig(
        static_broker_configs=genuine_static_configs(genuine_config_exchanges()),
        quorum_node_ids=(1,),
    )


MULTI_BROKER = Story("kafka-3.9/multi-broker", FRAMES, LOG, genuine_controller_config)


def comparable(record: Message) -> bool:
    """Records both logs must hold alike: all but NoOps (written on a timer) and the
    controller's own registration and bootstrap (not part of the brokers' story)."""
    return not isinstance(record, NoOpRecord | RegisterControllerRecord)


@dataclass
class Replay:
    """The story so far: kwire's log, the maps genuine -> kwire, and every mismatch."""

    controller: QuorumController
    story: Story = MULTI_BROKER
    log: list[tuple[int, Message, int]] = field(default_factory=list)  # offset, record, version
    topic_ids: dict[UUID, UUID] = field(default_factory=dict)
    epochs: dict[int, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    answered: list[Frame] = field(default_factory=list)
    answers: dict[int, Message] = field(default_factory=dict)  # frame index -> kwire's answer
    bootstrap_offsets: int = 0
    written_at: dict[int, int] = field(default_factory=dict)  # kwire offset -> time (ms)
    placement_seeds: dict[int, int | None] = field(default_factory=dict)  # frame index -> seed

    @property
    def next_offset(self) -> int:
        return self.log[-1][0] + 1 if self.log else 0

    # -- maps --------------------------------------------------------------------------

    def kwire_offset(self, genuine_offset: int) -> int:
        """Where in kwire's log a broker is that read the genuine log to ``genuine_offset``."""
        bootstrap_end = self.genuine_bootstrap_end()
        if genuine_offset < bootstrap_end:
            return genuine_offset
        # Counted after each log's bootstrap, which differs by release: Kafka 4.3.1 at
        # 3.9-IV0 writes no ZkMigrationStateRecord, kwire (as 3.9.0) does.
        genuine = [o for o in _genuine_non_noop_offsets(self.story.genuine) if o > bootstrap_end]
        seen = bisect.bisect_right(genuine, genuine_offset)
        ours = [
            o for o, r, _ in self.log[self.bootstrap_offsets :] if not isinstance(r, NoOpRecord)
        ]
        return ours[seen] - 1 if seen < len(ours) else self.next_offset - 1

    def to_kwire(self, request: Message) -> Message:
        request = copy.deepcopy(request)
        for owner, name, value in _fields(request):
            if name == "topic_id" and value in self.topic_ids:
                setattr(owner, name, self.topic_ids[value])
            elif name in EPOCH_FIELDS and value in self.epochs:
                setattr(owner, name, self.epochs[value])
            elif name == "current_metadata_offset":
                setattr(owner, name, self.kwire_offset(value))
        return request

    def to_genuine(self, message: Message) -> Any:
        """``message`` as plain data, kwire's ids and epochs replaced by the genuine ones."""
        ids = {k: g for g, k in self.topic_ids.items()}
        epochs = {k: g for g, k in self.epochs.items()}

        def walk(value: Any, name: str = "") -> Any:
            if isinstance(value, dict):
                return {k: walk(v, k) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, name) for v in value]
            if name == "topic_id" and value in ids:
                return ids[value]
            if name in EPOCH_FIELDS and value in epochs:
                return epochs[value]
            return value

        return walk(fields_of(message))

    # -- driving -----------------------------------------------------------------------

    def write(self, records: list[Any], now_ms: int) -> None:
        base = self.next_offset
        self.written_at.update((base + i, now_ms) for i in range(len(records)))
        self.log += [(base + i, rv.record, rv.version) for i, rv in enumerate(records)]
        if records:
            self.controller.commit(self.next_offset - 1)

    def run_timers_until(self, now_ms: int) -> None:
        """Every periodic event due by ``now_ms`` (session timeouts, NoOps), at its time."""
        while (deadline := self.controller.next_deadline_ms()) <= now_ms:
            result = self.controller.tick(deadline, self.next_offset)
            if result is not None:
                self.write(result.records, deadline)

    def feed(self, frame: Frame) -> None:
        self.run_timers_until(frame.time_ms)
        request = self.to_kwire(frame.request)
        if isinstance(request, CreateTopicsRequest | CreatePartitionsRequest):
            seed = self.placement_seed(frame, request)
            self.placement_seeds[frame.index] = seed
            self.controller.rng = self.rng_for(request, 0 if seed is None else seed)
        result = self.controller.handle(request, frame.context, self.next_offset, frame.time_ms)
        self.learn(frame, result.records, result.response)
        self.write(result.records, frame.time_ms)
        self.answered.append(frame)
        assert result.response is not None
        self.answers[frame.index] = result.response
        self.compare_answer(frame, result.response)

    def learn(self, frame: Frame, records: list[Any], response: Message | None) -> None:
        """New entries of the maps from this answer and its records."""
        for rv in records:
            if isinstance(rv.record, TopicRecord):
                genuine = _genuine_topic_ids(self.story.genuine).get(rv.record.name)
                if genuine is not None:
                    self.topic_ids.setdefault(genuine, rv.record.topic_id)
        if isinstance(frame.request, BrokerRegistrationRequest) and response is not None:
            self.epochs[frame.response.broker_epoch] = response.broker_epoch  # type: ignore[attr-defined]

    def rng_for(self, request: Message, seed: int) -> random.Random:
        """A generator seeded with ``seed`` whose topic ids are the genuine ids of the
        topics ``request`` creates (those the genuine log has), in request order."""
        genuine = _genuine_topic_ids(self.story.genuine)
        names = [t.name for t in getattr(request, "topics", [])]
        ids = [
            genuine[n] for n in names if n in genuine and n not in self.controller.topics_by_name
        ]
        return GenuineTopicIds(ids, seed)

    def placement_seed(self, frame: Frame, request: Message) -> int | None:
        """The first seed under which kwire places the new partitions as Kafka did
        (None when none does: seed 0 is used and the records show the difference)."""
        for seed in range(PLACEMENT_SEEDS):
            trial = copy.deepcopy(self.controller)
            trial.rng = self.rng_for(request, seed)
            result = trial.handle(request, frame.context, self.next_offset, frame.time_ms)
            names = {
                rv.record.topic_id: rv.record.name
                for rv in result.records
                if isinstance(rv.record, TopicRecord)
            }
            names.update({tid: t.name for tid, t in self.controller.topics_by_id.items()})
            placed = [
                (names[rv.record.topic_id], rv.record.partition_id, rv.record.replicas)
                for rv in result.records
                if isinstance(rv.record, PartitionRecord)
            ]
            replicas = _genuine_replicas(self.story.genuine)
            if placed and all(replicas.get(p[:2]) == p[2] for p in placed):
                return seed
        return None

    # -- comparing ---------------------------------------------------------------------

    def compare_answer(self, frame: Frame, ours: Message) -> None:
        ours_plain = self.story.release_rules(frame.name, self.to_genuine(ours))
        self.mismatches += differences(str(frame), fields_of(frame.response), ours_plain)

    def compare_records(self) -> None:
        """kwire's records against the genuine log's, in order (see ``comparable``)."""
        genuine = [
            (type(r.record).__name__, r.version, _plain(fields_of(r.record)), r.offset)
            for r in self.story.genuine
            if comparable(r.record) and r.offset > self.genuine_bootstrap_end()
        ]
        ours = [
            (type(rec).__name__, version, _plain(self.to_genuine(rec)), offset)
            for offset, rec, version in self.log[self.bootstrap_offsets :]
            if comparable(rec)
        ]
        keys_g = [g[:3] for g in genuine]
        keys_k = [k[:3] for k in ours]
        matcher = difflib.SequenceMatcher(a=keys_g, b=keys_k, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            for n in range(max(i2 - i1, j2 - j1)):
                g = genuine[i1 + n] if i1 + n < i2 else None
                k = ours[j1 + n] if j1 + n < j2 else None
                where = f"record (genuine offset {g[3] if g else '-'}, kwire offset {k[3] if k else '-'})"
                if g is not None and k is not None and g[:2] == k[:2]:
                    self.mismatches += differences(
                        f"{where} {g[0]} v{g[1]}", dict(g[2]), dict(k[2])
                    )
                else:
                    self.mismatches.append(Mismatch(where, "record", _short(g), _short(k)))

    def genuine_bootstrap_end(self) -> int:
        """The last offset of the genuine bootstrap transaction."""
        for r in self.story.genuine:
            if type(r.record).__name__ == "EndTransactionRecord":
                return r.offset
        return -1


class GenuineTopicIds(random.Random):
    """A seeded generator whose 128-bit draws (kwire's topic ids) are the genuine ids."""

    def __init__(self, topic_ids: list[UUID], seed: int = 0) -> None:
        super().__init__(seed)
        self._topic_ids = list(topic_ids)

    def getrandbits(self, k: int) -> int:
        if k == 128 and self._topic_ids:
            return self._topic_ids.pop(0).int
        return super().getrandbits(k)

    def __reduce__(self) -> tuple[object, ...]:  # copies keep the ids not yet drawn
        return (GenuineTopicIds, (list(self._topic_ids),), self.getstate())


def start(story: Story = MULTI_BROKER) -> Replay:
    """A controller activated as the genuine one was (bootstrap at the first record)."""
    # kwire draws the genuine topic ids, in the genuine order: Kafka's iteration orders
    # follow the ids' hashes, so the same ids make record orders comparable one to one.
    genuine_ids = [r.record.topic_id for r in story.genuine if isinstance(r.record, TopicRecord)]
    controller = QuorumController(
        node_id=1, cluster_id=CLUSTER_ID, config=story.config(), rng=GenuineTopicIds(genuine_ids)
    )
    replay = Replay(controller, story)
    first = story.genuine[0]
    # Offset 0 of both logs is raft's LeaderChange control record.
    replay.log.append((0, NoOpRecord(), 0))
    bootstrap = None
    if story.bootstrap_checkpoint is not None:
        bootstrap = [
            RecordAndVersion(record, version)
            for record, version in read_bootstrap_checkpoint(story.bootstrap_checkpoint)
        ]
    result = controller.activate(first.timestamp_ms, 1, story.metadata_version_level, bootstrap)
    assert result is not None
    replay.write(result.records, first.timestamp_ms)
    replay.bootstrap_offsets = len(replay.log)
    return replay


def replay_story(story: Story = MULTI_BROKER) -> Replay:
    replay = start(story)
    for frame in controller_frames(story.frames):
        replay.feed(frame)
    # The genuine controller ran (writing NoOps) until its last record.
    replay.run_timers_until(story.genuine[-1].timestamp_ms)
    replay.compare_records()
    return replay


# -- helpers -----------------------------------------------------------------------------


def differences(where: str, genuine: Any, ours: Any, path: str = "") -> list[Mismatch]:
    """Each leaf where ``ours`` differs from ``genuine`` (plain data)."""
    if isinstance(genuine, dict) and isinstance(ours, dict):
        out = []
        for key in genuine.keys() | ours.keys():
            out += differences(
                where, genuine.get(key, "<absent>"), ours.get(key, "<absent>"), f"{path}.{key}"
            )
        return out
    if isinstance(genuine, list) and isinstance(ours, list) and len(genuine) == len(ours):
        out = []
        for i, (g, k) in enumerate(zip(genuine, ours, strict=True)):
            out += differences(where, g, k, f"{path}[{i}]")
        return out
    if genuine != ours:
        return [Mismatch(where, path.lstrip(".") or "<whole>", genuine, ours)]
    return []


def _fields(message: Any) -> Iterator[tuple[Any, str, Any]]:
    if dataclasses.is_dataclass(message):
        for f in dataclasses.fields(message):
            value = getattr(message, f.name)
            yield message, f.name, value
            yield from _fields(value)
    elif isinstance(message, list):
        for item in message:
            yield from _fields(item)


def _plain(value: Any) -> Any:
    """Hashable plain data."""
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _short(entry: tuple[Any, ...] | None) -> str:
    if entry is None:
        return "<none>"
    name, version, data, _ = entry
    return f"{name} v{version} {dict(data)}"


def _genuine_non_noop_offsets(genuine: tuple[LoggedRecord, ...]) -> list[int]:
    return [r.offset for r in genuine if not isinstance(r.record, NoOpRecord)]


def _genuine_topic_ids(genuine: tuple[LoggedRecord, ...]) -> dict[str, UUID]:
    return {r.record.name: r.record.topic_id for r in genuine if isinstance(r.record, TopicRecord)}


def _genuine_replicas(genuine: tuple[LoggedRecord, ...]) -> dict[tuple[str, int], list[int]]:
    names = {v: k for k, v in _genuine_topic_ids(genuine).items()}
    return {
        (names[r.record.topic_id], r.record.partition_id): r.record.replicas
        for r in genuine
        if isinstance(r.record, PartitionRecord)
    }


__all__ = [
    "MULTI_BROKER",
    "STORY",
    "Frame",
    "Mismatch",
    "Replay",
    "Story",
    "controller_frames",
    "replay_story",
]
