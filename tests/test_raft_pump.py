"""Several RaftCore instances joined by an in-test message pump, over list-backed logs.

`ListLog` holds one epoch per record (a record's bytes are its epoch), so AppendAsFollower
and Fetch carry plain bytes. `Cluster` delivers requests and answers in order, parks empty
fetches like the edge does (until data, a new high watermark or MaxWaitMs), advances a
virtual clock to the earliest deadline, and can crash nodes (connection refused), cut
links (requests time out) or make a voter too old for pre-vote (Vote below v2).

The tests here are the whole-quorum ones (KafkaRaftClientTest's election cases).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kwire.log.quorum_state import QuorumStateData
from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.update_raft_voter import UpdateRaftVoterRequest
from kwire.protocol.messages.vote import VoteRequest
from kwire.raft.core import FetchRead, FetchReady, RaftConfig, RaftCore
from kwire.raft.state import (
    Action,
    AppendAsFollower,
    AppendLeaderChange,
    HighWatermarkAdvanced,
    OutboundRequest,
    OutboundResponse,
    PersistQuorumState,
    SendFailure,
    SendRequest,
    TruncateTo,
    Voter,
)

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qk"


@dataclass
class ListLog:
    """A LogView whose records are their epochs."""

    entries: list[int] = field(default_factory=list)
    log_start_offset: int = 0

    @property
    def end_offset(self) -> int:
        return len(self.entries)

    @property
    def latest_epoch(self) -> int | None:
        return self.entries[-1] if self.entries else None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """As Kafka's LeaderEpochFileCache.endOffsetFor (and kwire's epoch cache)."""
        if epoch < 0 or not self.entries or epoch > self.entries[-1]:
            return None
        known = [e for e in self.entries if e <= epoch]
        if not known:  # older than the log: it ends where the log's first epoch starts
            return epoch, 0
        found = max(known)
        later = [i for i, e in enumerate(self.entries) if e > found]
        return found, later[0] if later else len(self.entries)

    def latest_snapshot_id(self) -> SnapshotId | None:
        return None

    def earliest_snapshot_id(self) -> SnapshotId | None:
        return None


def config(node_id: int, voters: int = 3, **timers: int) -> RaftConfig:
    return RaftConfig(
        node_id=node_id,
        cluster_id=CLUSTER,
        voters=tuple(
            Voter(node_id=i, host="127.0.0.1", port=9090 + i) for i in range(1, voters + 1)
        ),
        **timers,  # type: ignore[arg-type]
    )


@dataclass
class Node:
    core: RaftCore
    log: ListLog
    persisted: list[PersistQuorumState] = field(default_factory=list)
    high_watermark: int = 0


class Cluster:
    """Voters 1..n (plus any observers) exchanging messages through one event queue."""

    def __init__(self, voters: int = 3, *, seed: int = 1, latency_ms: int = 1, **timers: int):
        self.now = 0
        self.latency = latency_ms
        self.events: list[tuple[int, int, Callable[[], None]]] = []
        self.seq = 0
        self.nodes: dict[int, Node] = {}
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()
        self.no_pre_vote: set[int] = set()  # voters whose Vote tops out below v2
        self.parked: list[tuple[int, int, FetchRequest, int, int]] = []
        self.out: dict[tuple[int, int, type], OutboundRequest] = {}
        self.timers = timers
        self.rng = random.Random(seed)
        self.voters = voters
        for i in range(1, voters + 1):
            self.add(i, config(i, voters, **timers))

    def add(self, node_id: int, cfg: RaftConfig, log: ListLog | None = None) -> Node:
        log = log if log is not None else ListLog()
        core = RaftCore(cfg, log, rng=random.Random(self.rng.random()))
        node = self.nodes[node_id] = Node(core=core, log=log)
        return node

    def start(self, *ids: int) -> None:
        for i in ids or tuple(self.nodes):
            self.carry_out(i, self.nodes[i].core.start(self.now))

    # -- actions ----------------------------------------------------------------------------

    def carry_out(self, node_id: int, actions: list[Action]) -> None:
        node = self.nodes[node_id]
        for action in actions:
            match action:
                case PersistQuorumState():
                    node.persisted.append(action)
                case AppendLeaderChange(epoch=epoch):
                    node.log.entries.append(epoch)
                    self.later(0, lambda n=node_id: self.flushed(n))
                case AppendAsFollower(records=records):
                    node.log.entries.extend(records)
                    self.later(0, lambda n=node_id: self.flushed(n))
                case TruncateTo(offset=offset):
                    del node.log.entries[offset:]
                case HighWatermarkAdvanced(offset=offset):
                    node.high_watermark = offset
                case SendRequest(destination=dest, request=request):
                    self.send(node_id, dest, request)

    def flushed(self, node_id: int) -> None:
        if node_id not in self.down:
            node = self.nodes[node_id]
            self.carry_out(node_id, node.core.on_flushed(node.log.end_offset, self.now))

    def append(self, node_id: int, count: int = 1) -> None:
        """The leader's state machine writes `count` records."""
        node = self.nodes[node_id]
        node.log.entries.extend([node.core.epoch] * count)
        self.later(0, lambda: self.flushed(node_id))

    def later(self, delay: int, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.events, (self.now + delay, self.seq, fn))

    # -- the network ------------------------------------------------------------------------

    def send(self, src: int, dest: int, request: OutboundRequest) -> None:
        key = (src, dest, type(request))
        # the contract: never two requests of one kind out to one destination
        assert key not in self.out, f"{src} sent a second {type(request).__name__} to {dest}"
        self.out[key] = request
        if dest in self.down:
            self.later(
                self.latency,
                lambda: self.resolve(src, dest, request, SendFailure.CONNECTION_REFUSED),
            )
        elif frozenset((src, dest)) in self.cut:
            timeout = self.nodes[src].core.config.request_timeout_ms
            self.later(timeout, lambda: self.resolve(src, dest, request, SendFailure.TIMEOUT))
        elif (
            isinstance(request, VoteRequest)
            and dest in self.no_pre_vote
            and request.topics[0].partitions[0].pre_vote
        ):
            self.later(
                self.latency,
                lambda: self.resolve(src, dest, request, SendFailure.UNSUPPORTED_VERSION),
            )
        else:
            self.later(self.latency, lambda: self.deliver(src, dest, request))

    def resolve(
        self, src: int, dest: int, request: OutboundRequest, outcome: OutboundResponse | SendFailure
    ) -> None:
        """The answer (or failure) reaches the sender, if the sender is the same process."""
        key = (src, dest, type(request))
        if self.out.get(key) is not request:
            return  # sent by a process that has since crashed
        del self.out[key]
        if src in self.down:
            return
        core = self.nodes[src].core
        if isinstance(outcome, SendFailure):
            self.carry_out(src, core.on_send_failed(dest, request, outcome, self.now))
        else:
            self.carry_out(src, core.on_response(dest, request, outcome, self.now))

    def deliver(self, src: int, dest: int, request: OutboundRequest) -> None:
        if dest in self.down:
            self.resolve(src, dest, request, SendFailure.CONNECTION_LOST)
            return
        core = self.nodes[dest].core
        response: OutboundResponse
        match request:
            case VoteRequest():
                response, actions = core.handle_vote(request, self.now)
            case BeginQuorumEpochRequest():
                response, actions = core.handle_begin_quorum_epoch(request, self.now)
            case EndQuorumEpochRequest():
                response, actions = core.handle_end_quorum_epoch(request, self.now)
            case UpdateRaftVoterRequest():
                response, actions = core.handle_update_raft_voter(request, self.now)
            case FetchRequest():
                self.serve_fetch(src, dest, request, self.now + request.max_wait_ms, self.now)
                return
            case _:
                raise AssertionError(request)
        self.carry_out(dest, actions)
        self.answer(src, dest, request, response)

    def serve_fetch(
        self, src: int, dest: int, request: FetchRequest, deadline: int, hw: int
    ) -> None:
        node = self.nodes[dest]
        outcome = node.core.fetch(request, self.now)
        if isinstance(outcome, FetchReady):
            self.answer(src, dest, request, outcome.response)
            return
        assert isinstance(outcome, FetchRead)
        records = bytes(node.log.entries[outcome.offset :])
        response, actions = node.core.complete_fetch(request, records, self.now)
        if self.now < deadline and node.core.fetch_would_wait(request, response):
            self.parked.append((src, dest, request, deadline, node.core.high_watermark))
            return
        self.carry_out(dest, actions)
        self.answer(src, dest, request, response)

    def answer(
        self, src: int, dest: int, request: OutboundRequest, response: OutboundResponse
    ) -> None:
        def back() -> None:
            if dest in self.down:  # died with the answer unsent
                self.resolve(src, dest, request, SendFailure.CONNECTION_LOST)
            else:
                self.resolve(src, dest, request, response)

        self.later(self.latency, back)

    def unpark(self) -> None:
        parked, self.parked = self.parked, []
        for src, dest, request, deadline, hw in parked:
            node = self.nodes[dest]
            if dest in self.down:
                self.later(
                    0,
                    lambda s=src, d=dest, r=request: self.resolve(
                        s, d, r, SendFailure.CONNECTION_LOST
                    ),
                )
                continue
            offset = request.topics[0].partitions[0].fetch_offset
            if (
                self.now >= deadline
                or node.log.end_offset > offset
                or node.core.high_watermark != hw
                or not node.core.is_leader
            ):
                self.serve_fetch(
                    src, dest, request, deadline if self.now < deadline else self.now, hw
                )
            else:
                self.parked.append((src, dest, request, deadline, hw))

    # -- running ----------------------------------------------------------------------------

    def crash(self, node_id: int) -> None:
        self.down.add(node_id)

    def restart(self, node_id: int) -> None:
        """A new process over the same log and quorum-state."""
        old = self.nodes[node_id]
        self.down.discard(node_id)
        self.out = {k: r for k, r in self.out.items() if k[0] != node_id}
        last = old.persisted[-1] if old.persisted else None
        persisted = (
            QuorumStateData(
                leader_id=last.leader_id, leader_epoch=last.leader_epoch, voted_id=last.voted_id
            )
            if last
            else None
        )
        core = RaftCore(
            old.core.config, old.log, persisted=persisted, rng=random.Random(self.rng.random())
        )
        self.nodes[node_id] = Node(core=core, log=old.log, persisted=list(old.persisted))
        self.carry_out(node_id, core.start(self.now))

    def step(self) -> None:
        deadlines = [n.core.next_deadline_ms() for i, n in self.nodes.items() if i not in self.down]
        deadlines += [p[3] for p in self.parked]
        if self.events:
            deadlines.append(self.events[0][0])
        self.now = max(self.now, min(deadlines, default=self.now + 100))
        while self.events and self.events[0][0] <= self.now:
            _, _, fn = heapq.heappop(self.events)
            fn()
            self.unpark()
        for i, node in self.nodes.items():
            if i not in self.down and node.core.next_deadline_ms() <= self.now:
                self.carry_out(i, node.core.poll(self.now))
        self.unpark()

    def run_until(self, done: Callable[[], bool], limit_ms: int = 30_000) -> None:
        end = self.now + limit_ms
        for _ in range(200_000):
            if done():
                return
            if self.now > end:
                break
            self.step()
        raise AssertionError(f"not done by {self.now} ms: {self.describe()}")

    def run_for(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.step()

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if i not in self.down and n.core.is_leader]

    def stable(self) -> bool:
        """One leader, followed by every other live node in its epoch, its epoch committed."""
        leaders = self.leaders()
        if len(leaders) != 1:
            return False
        leader = self.nodes[leaders[0]].core
        return leader.high_watermark > 0 and all(
            n.core.leader_id == leader.node_id and n.core.epoch == leader.epoch
            for i, n in self.nodes.items()
            if i not in self.down
        )

    def describe(self) -> str:
        return ", ".join(
            f"{i}:{n.core.state_name}@{n.core.epoch}(leader {n.core.leader_id})"
            for i, n in self.nodes.items()
            if i not in self.down
        )


# -- whole-quorum behaviour -------------------------------------------------------------------


def test_three_voters_elect_exactly_one_leader_and_commit_its_epoch() -> None:
    cluster = Cluster(3)
    cluster.start()
    cluster.run_until(cluster.stable)
    (leader,) = cluster.leaders()
    epoch = cluster.nodes[leader].core.epoch
    assert epoch == 1  # pre-vote kept the epoch at 0 until one candidate stood
    # the LeaderChangeMessage, on a majority already, reaches every node
    cluster.run_until(lambda: all(n.log.entries == [epoch] for n in cluster.nodes.values()))
    cluster.run_for(3000)  # and it stays that way: followers keep fetching in time
    assert cluster.leaders() == [leader]
    assert all(n.core.epoch == epoch for n in cluster.nodes.values())


def test_every_node_learns_the_committed_high_watermark() -> None:
    cluster = Cluster(3)
    cluster.start()
    cluster.run_until(cluster.stable)
    (leader,) = cluster.leaders()
    cluster.append(leader, 4)
    cluster.run_until(lambda: all(n.high_watermark == 5 for n in cluster.nodes.values()))
    assert all(n.log.entries[1:] == [1, 1, 1, 1] for n in cluster.nodes.values())


def test_five_voters_elect_one_leader_under_many_seeds() -> None:
    for seed in range(20):
        cluster = Cluster(5, seed=seed)
        cluster.start()
        cluster.run_until(cluster.stable)
        assert len(cluster.leaders()) == 1, seed


def test_a_killed_leader_is_replaced_and_comes_back_as_a_follower() -> None:
    cluster = Cluster(3)
    cluster.start()
    cluster.run_until(cluster.stable)
    (old,) = cluster.leaders()
    old_epoch = cluster.nodes[old].core.epoch
    cluster.crash(old)
    cluster.run_until(cluster.stable)
    (new,) = cluster.leaders()
    assert new != old and cluster.nodes[new].core.epoch > old_epoch
    cluster.restart(old)
    # quorum-state says it led: it comes back Resigned and sends EndQuorumEpoch, which the
    # others answer FENCED_LEADER_EPOCH with the new leader; it follows that leader.
    assert cluster.nodes[old].core.state_name == "resigned"
    cluster.run_until(cluster.stable)
    assert cluster.leaders() == [new]
    assert cluster.nodes[old].core.leader_id == new


def test_pre_vote_keeps_a_partitioned_voter_from_disrupting_the_quorum() -> None:
    cluster = Cluster(3)
    cluster.start()
    cluster.run_until(cluster.stable)
    (leader,) = cluster.leaders()
    epoch = cluster.nodes[leader].core.epoch
    lonely = next(i for i in cluster.nodes if i != leader)
    other = next(i for i in cluster.nodes if i not in (leader, lonely))
    cluster.cut.add(frozenset((lonely, leader)))
    cluster.run_for(10_000)
    # it stands (Prospective) again and again but never gets the other follower's
    # pre-vote while that one hears from the leader, so the epoch never moves.
    assert cluster.leaders() == [leader]
    assert cluster.nodes[leader].core.epoch == epoch
    assert cluster.nodes[other].core.epoch == epoch
    assert cluster.nodes[lonely].core.epoch == epoch


def test_crashes_restarts_and_cut_links_never_make_two_leaders_or_lose_committed_records() -> None:
    for seed in range(12):
        chance = random.Random(seed)
        cluster = Cluster(chance.choice([3, 5]), seed=seed, latency_ms=chance.choice([1, 3, 10]))
        cluster.start()
        leaders_by_epoch: dict[int, int] = {}
        committed: list[int] = []
        for _ in range(30):
            cluster.run_for(chance.randrange(50, 1500))
            for i, node in cluster.nodes.items():
                if i in cluster.down:
                    continue
                if node.core.is_leader:  # election safety: one leader per epoch
                    assert leaders_by_epoch.setdefault(node.core.epoch, i) == i, seed
                prefix = node.log.entries[: node.high_watermark]
                shared = min(len(prefix), len(committed))
                assert prefix[:shared] == committed[:shared], seed  # committed stays
                committed = max(committed, prefix, key=len)
            leaders = cluster.leaders()
            roll = chance.random()
            if roll < 0.2 and leaders:
                cluster.crash(leaders[0])
            elif roll < 0.4 and cluster.down:
                cluster.restart(chance.choice(sorted(cluster.down)))
            elif roll < 0.5:
                cluster.cut.add(frozenset(chance.sample(sorted(cluster.nodes), 2)))
            elif roll < 0.6:
                cluster.cut.clear()
            elif roll < 0.8 and leaders:
                cluster.append(leaders[0], chance.randrange(1, 4))
            elif roll < 0.85 and leaders:  # a graceful shutdown: resign, then exit
                cluster.carry_out(leaders[0], cluster.nodes[leaders[0]].core.resign(cluster.now))
                cluster.run_for(200)
                cluster.crash(leaders[0])
        cluster.cut.clear()
        for down in sorted(cluster.down):
            cluster.restart(down)
        cluster.run_until(cluster.stable, 60_000)  # and once healed, it settles
