"""The status page (`kwire.status.listener`): `/status` (HTML) and `/status.json`.

Not Kafka's: Kafka's controller has no such page. What it shows is what Kafka's tools ask
for: the quorum as `kafka-metadata-quorum describe --status --replication` shows it
(DescribeQuorum: the leader's view of each replica's log end offset; lag is the leader's
log end offset minus the replica's, as MetadataQuorumCommand computes it), the brokers as
the controller registered them (ClusterControlManager) with the age of their last heartbeat
(BrokerHeartbeatManager, on the active controller only), the partitions as
`kafka-topics --describe` shows them, and the last committed metadata records.

Reads only: building the page changes nothing (DescribeQuorum's own expiry of silent
observers is not run). Built on the event loop from the node's state at the moment of the
request; on the active controller the image may hold a write not yet committed.

`/status.json` (version 1; times in ms since the epoch, ages in ms; -1 ids as Kafka's):

    {"version": 1, "now_ms": int, "cluster_id": str,
     "quorum": {"node_id", "state": "leader"|"follower"|"candidate"|"prospective"|
                "unattached"|"voted"|"resigned", "leader_id", "epoch", "high_watermark",
                "log_end_offset", "active_controller": bool,
                "voters": [{"id", "endpoints": ["NAME://host:port"], "log_end_offset",
                            "lag", "last_fetch_age_ms", "last_caught_up_age_ms"}],
                "observers": [{"id", "directory_id", "log_end_offset", "lag",
                               "last_fetch_age_ms", "last_caught_up_age_ms"}],
                "observers_more": int},
     "brokers": {"count": int, "more": int,
                 "shown": [{"id", "epoch", "state": "active"|"fenced"|
                            "controlled_shutdown", "rack", "listeners": ["NAME://host:port"],
                            "last_heartbeat_age_ms": int|null}]},
     "topics": {"count": int, "filter": str|null, "matching": int, "more": int,
                "shown": [{"name", "id", "partition_count", "partitions_more",
                           "partitions": [{"partition", "leader", "leader_epoch", "isr",
                                           "replicas", "offline": bool}]}]},
     "offline": {"count": int, "more": int, "shown": [{"topic", "partition"}]},
     "events": {"capacity": int, "shown": [{"offset", "time_ms", "type", "text"}]}}

The replica fields of the quorum are null unless this node leads (only the leader knows
them, as only it answers DescribeQuorum); `last_heartbeat_age_ms` is null unless this node
is the active controller. A partition is offline when it has no leader (-1, Kafka's
OfflinePartitionsCount) or its leader is not an unfenced registered broker.

Bounds, so that a cluster of a million partitions answers a page of a few hundred KiB at
most: at most `?limit=` topics (default 100, at most 1000), `PARTITION_BUDGET` partitions
over all of them, `MAX_BROKERS` brokers, `MAX_OBSERVERS` observers and `MAX_OFFLINE`
offline partitions, each list with its count of those left out. `?topic=NAME` shows that
topic, or the topics whose name starts with NAME (a scan of the names: O(topics) per
request). Without a filter topics come in creation order (sorting a million names every
second would cost more than the page is worth). A bad query parameter answers 400.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from kwire.controller.heartbeats import BrokerHeartbeatTracker
from kwire.controller.image import NO_LEADER, BrokerRegistration, MetadataImage, TopicInfo
from kwire.raft.state import Leader, ReplicaProgress
from kwire.server.http_edge import Handler, HttpRequest, HttpResponse
from kwire.server.node import ControllerNode, wall_clock_ms
from kwire.server.status_events import MetadataEvents, describe_record
from kwire.server.status_html import STATUS_HTML

STATUS_VERSION = 1
DEFAULT_TOPIC_LIMIT = 100
MAX_TOPIC_LIMIT = 1000
PARTITION_BUDGET = 2000
MAX_BROKERS = 1000
MAX_OBSERVERS = 100
MAX_OFFLINE = 100
MAX_FILTER_CHARS = 249  # Kafka's longest topic name

Json = dict[str, Any]


class BadQuery(ValueError):
    """A query parameter the page cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """`?topic=` (a name or a name prefix; None: every topic) and `?limit=` (topics)."""

    topic: str | None = None
    limit: int = DEFAULT_TOPIC_LIMIT

    @classmethod
    def parse(cls, query: Mapping[str, list[str]]) -> StatusQuery:
        """Raises BadQuery for a limit that is not an integer in [1, MAX_TOPIC_LIMIT] or a
        filter longer than a topic name can be."""
        topic = query.get("topic", [None])[-1] or None
        if topic is not None and len(topic) > MAX_FILTER_CHARS:
            raise BadQuery(f"topic: at most {MAX_FILTER_CHARS} characters")
        raw = query.get("limit", [str(DEFAULT_TOPIC_LIMIT)])[-1]
        try:
            limit = int(raw)
        except ValueError:
            raise BadQuery(f"limit: not an integer: {raw[:40]!r}") from None
        if not 1 <= limit <= MAX_TOPIC_LIMIT:
            raise BadQuery(f"limit: must be between 1 and {MAX_TOPIC_LIMIT}, not {limit}")
        return cls(topic, limit)


def status_document(node: ControllerNode, query: StatusQuery, now_ms: int) -> Json:
    """The `/status.json` document of `node` at `now_ms` (see the module's docstring)."""
    image = node.controller.image
    tracker = node.controller.tracker if node.active else None
    return {
        "version": STATUS_VERSION,
        "now_ms": now_ms,
        "cluster_id": node.settings.cluster_id,
        "quorum": quorum_section(node, now_ms),
        "brokers": brokers_section(image, tracker, now_ms),
        "topics": topics_section(image, query),
        "offline": offline_section(image),
        "events": events_section(node.metadata_events, image),
    }


def quorum_section(node: ControllerNode, now_ms: int) -> Json:
    raft = node.raft
    role = raft.role
    leading = isinstance(role, Leader)
    progress = role.voters if isinstance(role, Leader) else {}
    own = progress.get(raft.node_id)
    leader_end = own.end_offset if own is not None else node.log.end_offset
    voters = []
    for voter in sorted(raft.voter_set.voters, key=lambda v: v.key.id):
        entry: Json = {
            "id": voter.key.id,
            "endpoints": [f"{e.name}://{e.host}:{e.port}" for e in voter.endpoints],
        }
        if voter.key.id == raft.node_id and leading:
            # The leader has just fetched from itself (KafkaRaftClient's DescribeQuorum).
            entry |= {"log_end_offset": leader_end, "lag": 0, "last_fetch_age_ms": 0,
                      "last_caught_up_age_ms": 0}  # fmt: skip
        else:
            entry |= _replication(progress.get(voter.key.id), leader_end, now_ms)
        voters.append(entry)
    observers = list(role.observers.values()) if isinstance(role, Leader) else []
    return {
        "node_id": raft.node_id,
        "state": raft.state_name,
        "leader_id": raft.leader_id,
        "epoch": raft.epoch,
        "high_watermark": raft.high_watermark,
        "log_end_offset": node.log.end_offset,
        "active_controller": node.active,
        "voters": voters,
        "observers": [
            {"id": p.replica_id, "directory_id": str(p.directory_id)}
            | _replication(p, leader_end, now_ms)
            for p in observers[:MAX_OBSERVERS]
        ],
        "observers_more": max(0, len(observers) - MAX_OBSERVERS),
    }


_REPLICATION_KEYS = ("log_end_offset", "lag", "last_fetch_age_ms", "last_caught_up_age_ms")


def _replication(replica: ReplicaProgress | None, leader_end: int, now_ms: int) -> Json:
    """A replica as the leader sees it (all null when this node does not lead); lag as
    MetadataQuorumCommand computes it, the leader's log end offset minus the replica's."""
    if replica is None:
        return dict.fromkeys(_REPLICATION_KEYS)
    return {
        "log_end_offset": replica.end_offset,
        "lag": leader_end - replica.end_offset,
        "last_fetch_age_ms": _age(replica.last_fetch_ms, now_ms),
        "last_caught_up_age_ms": _age(replica.last_caught_up_ms, now_ms),
    }


def _age(then_ms: int, now_ms: int) -> int | None:
    return None if then_ms < 0 else max(0, now_ms - then_ms)


def broker_state(registration: BrokerRegistration) -> str:
    if registration.fenced:
        return "fenced"
    return "controlled_shutdown" if registration.in_controlled_shutdown else "active"


def brokers_section(
    image: MetadataImage, tracker: BrokerHeartbeatTracker | None, now_ms: int
) -> Json:
    """The registered brokers by id (the lowest MAX_BROKERS); heartbeat ages from the
    active controller's sessions (`tracker`), else null."""
    registered = image.brokers
    ids = sorted(registered)[:MAX_BROKERS]
    shown: list[Json] = []
    for broker_id in ids:
        registration = registered[broker_id]
        session = tracker.sessions.get(broker_id) if tracker is not None else None
        shown.append(
            {
                "id": broker_id,
                "epoch": registration.epoch,
                "state": broker_state(registration),
                "rack": registration.rack,
                "listeners": [f"{e.name}://{e.host}:{e.port}" for e in registration.listeners],
                "last_heartbeat_age_ms": (
                    None if session is None else _age(session.last_contact_ms, now_ms)
                ),
            }
        )
    return {"count": len(registered), "more": len(registered) - len(ids), "shown": shown}


def _matching_topics(image: MetadataImage, prefix: str | None) -> Iterator[TopicInfo]:
    if prefix is None:
        yield from image.topics.values()
        return
    exact = image.topic_by_name(prefix)
    if exact is not None:
        yield exact
    topics = image.topics
    for name, topic_id in image.topic_ids_by_name.items():
        if name.startswith(prefix) and name != prefix:
            yield topics[topic_id]


def topics_section(image: MetadataImage, query: StatusQuery) -> Json:
    matching = _matching_topics(image, query.topic)
    chosen = list(itertools.islice(matching, query.limit))
    if query.topic is None:
        count = len(image.topics)
    else:
        count = len(chosen) + sum(1 for _ in matching)
    budget = PARTITION_BUDGET
    shown: list[Json] = []
    for topic in chosen:
        ids = sorted(topic.partitions) if len(topic.partitions) <= budget else None
        listed = ids if ids is not None else list(itertools.islice(topic.partitions, budget))
        budget -= len(listed)
        shown.append(
            {
                "name": topic.name,
                "id": str(topic.topic_id),
                "partition_count": len(topic.partitions),
                "partitions_more": len(topic.partitions) - len(listed),
                "partitions": [_partition(image, topic, p) for p in listed],
            }
        )
    return {
        "count": len(image.topics),
        "filter": query.topic,
        "matching": count,
        "more": count - len(chosen),
        "shown": shown,
    }


def _partition(image: MetadataImage, topic: TopicInfo, partition_id: int) -> Json:
    partition = topic.partitions[partition_id]
    return {
        "partition": partition_id,
        "leader": partition.leader,
        "leader_epoch": partition.leader_epoch,
        "isr": list(partition.isr),
        "replicas": list(partition.replicas),
        "offline": _offline(image, partition.leader),
    }


def _offline(image: MetadataImage, leader: int) -> bool:
    registration = image.brokers.get(leader) if leader != NO_LEADER else None
    return registration is None or registration.fenced


def offline_section(image: MetadataImage) -> Json:
    """Partitions without a leader, from the image's index of them (no scan of every
    partition); at most MAX_OFFLINE listed."""
    leaderless = image.isr_members.get(NO_LEADER, {})
    count = sum(len(partitions) for partitions in leaderless.values())
    shown: list[Json] = []
    for topic_id, partitions in leaderless.items():
        name = image.topics[topic_id].name if topic_id in image.topics else str(topic_id)
        for partition_id in partitions[: MAX_OFFLINE - len(shown)]:
            shown.append({"topic": name, "partition": partition_id})
        if len(shown) >= MAX_OFFLINE:
            break
    return {"count": count, "more": count - len(shown), "shown": shown}


def events_section(events: MetadataEvents, image: MetadataImage) -> Json:
    """The ring's events, newest first."""
    topics = image.topics

    def topic_name(topic_id: UUID) -> str | None:
        topic = topics.get(topic_id)
        return topic.name if topic is not None else None

    shown: list[Json] = []
    for event in reversed(events.events()):
        kind, text = describe_record(event.record, topic_name)
        shown.append({"offset": event.offset, "time_ms": event.time_ms, "type": kind, "text": text})
    return {"capacity": events.capacity, "shown": shown}


def status_routes(node: ControllerNode) -> dict[str, Handler]:
    """`/status` and `/status.json` for `node`."""

    def page(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, STATUS_HTML.encode(), "text/html; charset=utf-8")

    def document(request: HttpRequest) -> HttpResponse:
        try:
            query = StatusQuery.parse(request.query)
        except BadQuery as exc:
            return HttpResponse.text(400, f"{exc}\n")
        body = json.dumps(status_document(node, query, wall_clock_ms()), separators=(",", ":"))
        return HttpResponse(200, body.encode(), "application/json")

    return {"/status": page, "/status.json": document}
