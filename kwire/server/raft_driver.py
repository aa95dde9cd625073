"""The raft driver: the one Trio task that owns the raft core (and, through the node, the
controller), fed by events from memory channels (../shared/STYLE.md item 5).

Theory of operation
-------------------
Everything that enters the core arrives as an event on one inbox, in one order, which is
the order the simulator (`kwire.sim`) would give the same events:
- `ResponseReceived` / `SendFailed` from the peer channels (`kwire.server.peers`);
- `Call`: a step a connection task wants taken in the driver's turn (an inbound Vote,
  BeginQuorumEpoch, EndQuorumEpoch, Fetch, DescribeQuorum, or a controller write), run
  synchronously here with the caller awaiting its result;
- the timer: `RaftCore.poll` runs after every event and whenever `next_deadline_ms` passes;
- between events, while the standby controller has committed records to replay, a slice
  of that replay (`ControllerReplay.replay_slice`): an event waiting always comes first.

Actions are carried out in order, synchronously (`carry_out`): a vote is on disk before
the Vote response leaves, an append is fsynced before `on_flushed`. Actions produced while
carrying out others (on_flushed's, say) queue behind them, so every list the core returned
is finished in its own order. When the task is not running (in-process tests that drive a
node without sockets) a `Call` runs at once in the caller's task, which is the same thing
since neither ever awaits inside the core.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from kwire.protocol._codec import Message
from kwire.raft.state import (
    Action,
    AppendAsFollower,
    AppendControlRecords,
    AppendLeaderChange,
    BecameLeader,
    CompleteVoterChange,
    HighWatermarkAdvanced,
    InstallSnapshot,
    PersistQuorumState,
    SendRequest,
    StartSnapshotFetch,
    StateChanged,
    TruncateTo,
    WriteSnapshotChunk,
)
from kwire.server.metrics_stats import DriverStats
from kwire.server.peers import PeerEvent, Peers, ResponseReceived, SendFailed

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.raft")

T = TypeVar("T")
INBOX_SIZE = 1024
MAX_SLEEP_S = 1.0  # the driver wakes at least this often, whatever the core's deadline


@dataclass(slots=True)
class Call(Generic[T]):
    """Run `step(now_ms)` in the driver's turn; the caller awaits `done`."""

    step: Callable[[int], T]
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.perf_counter)  # for the metrics


DriverEvent = ResponseReceived | SendFailed | Call[Any]


class DriverStopped(Exception):
    """The driver stopped (the node is shutting down) before it ran a call."""


@dataclass(slots=True)
class _Waiting:
    done: trio.Event = field(default_factory=trio.Event)
    response: Message | None = None


class VoterChangeTickets:
    """Requests waiting for the core's later answer, by ticket."""

    def __init__(self) -> None:
        self._next = 1
        self._waiting: dict[int, _Waiting] = {}

    def take(self) -> int:
        ticket = self._next
        self._next += 1
        self._waiting[ticket] = _Waiting()
        return ticket

    def complete(self, action: CompleteVoterChange) -> None:
        waiting = self._waiting.get(action.ticket)
        if waiting is None:
            log.warning("An answer for voter change %d, which nobody awaits", action.ticket)
            return
        waiting.response = action.response
        waiting.done.set()

    def drop(self, ticket: int) -> None:
        self._waiting.pop(ticket, None)

    def release_all(self) -> None:
        """The driver stops: every waiting request is released without an answer."""
        for waiting in self._waiting.values():
            waiting.done.set()

    async def wait(self, ticket: int) -> Message:
        waiting = self._waiting[ticket]
        try:
            await waiting.done.wait()
        finally:
            self._waiting.pop(ticket, None)
        if waiting.response is None:
            raise DriverStopped("the raft driver stopped before the voter change was answered")
        return waiting.response

    def __len__(self) -> int:
        return len(self._waiting)


class RaftDriver:
    """Carries out the core's actions and feeds it its events, from one task (`run`)."""

    def __init__(
        self, node: ControllerNode, *, request_timeout_ms: int, clock: Callable[[], int]
    ) -> None:
        self.node = node
        self.clock = clock
        self.inbox, self._events = trio.open_memory_channel[DriverEvent](INBOX_SIZE)
        peer_inbox: trio.MemorySendChannel[PeerEvent] = self.inbox
        self.peers = Peers(
            node.settings.node_id,
            node.raft,
            request_timeout_ms=request_timeout_ms,
            deliver=peer_inbox,
            security=node.settings.client_security,
        )
        self.running = False
        self.tickets = VoterChangeTickets()  # AddRaftVoter / RemoveRaftVoter awaiting answers
        self._queue: deque[Action] = deque()
        self._draining = False
        # Set (and replaced) whenever the core changes state: graceful shutdown waits on it.
        self._state_changed = trio.Event()
        self.stats = DriverStats(node.log.end_offset)  # read by kwire.server.metrics

    # -- carrying out actions ---------------------------------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int | None = None) -> None:
        """Carry out `actions` in order (after any still being carried out)."""
        self._queue.extend(actions)
        if self._draining:
            return
        now_ms = self.clock() if now_ms is None else now_ms
        self._draining = True
        try:
            while self._queue:
                self._carry_out_one(self._queue.popleft(), now_ms)
        finally:
            self._draining = False

    def _carry_out_one(self, action: Action, now_ms: int) -> None:
        node = self.node
        match action:
            case PersistQuorumState():
                node.persist_quorum_state(action)
            case SendRequest(destination=destination, request=request, endpoint=endpoint):
                self.peers.send(destination, request, endpoint)
            case AppendLeaderChange():
                node.append_leader_change(action, now_ms)
            case AppendControlRecords(base_offset=base_offset):
                if base_offset != node.log.end_offset:
                    log.error(
                        "Node %d: a voters record meant for offset %d lands at %d",
                        node.settings.node_id,
                        base_offset,
                        node.log.end_offset,
                    )
                node.append_leader_change(action, now_ms)
            case CompleteVoterChange():
                self.tickets.complete(action)
            case AppendAsFollower(records=records):
                end = node.log.end_offset
                node.writes.append_as_follower(records, now_ms)
                self.stats.fetched(node.log.end_offset - end, now_ms)
            case TruncateTo(offset=offset):
                node.truncate_to(offset)
                self.stats.truncated(offset)
            case HighWatermarkAdvanced(offset=offset):
                node.on_high_watermark(offset, now_ms)
                self.stats.committed(offset, now_ms)
            case BecameLeader():
                node.on_became_leader(action)
            case StateChanged(state=state, epoch=epoch, leader_id=leader_id):
                node.on_state_changed(action)
                self.stats.state_changed(state, epoch, leader_id, now_ms)
                self._state_changed.set()
                self._state_changed = trio.Event()
            case StartSnapshotFetch() | WriteSnapshotChunk() | InstallSnapshot():
                node.download_snapshot(action, now_ms)

    def on_flushed(self, end_offset: int, now_ms: int) -> None:
        """The log is durable up to `end_offset`: tell the core, carry out its answer."""
        self.stats.flushed(end_offset, now_ms, self.node.raft.is_leader)
        self.carry_out(self.node.raft.on_flushed(end_offset, now_ms), now_ms)

    # -- events -----------------------------------------------------------------------------

    def _handle(self, event: DriverEvent, now_ms: int) -> None:
        raft = self.node.raft
        match event:
            case ResponseReceived(destination=destination, request=request, response=response):
                self.carry_out(
                    raft.on_response(destination, request, response, now_ms),  # type: ignore[arg-type]
                    now_ms,
                )
            case SendFailed(destination=destination, request=request, failure=failure):
                self.carry_out(
                    raft.on_send_failed(destination, request, failure, now_ms),  # type: ignore[arg-type]
                    now_ms,
                )
            case Call():
                self._run_call(event, now_ms)

    def _run_call(self, call: Call[Any], now_ms: int) -> None:
        try:
            call.result = call.step(now_ms)
        except Exception as exc:  # handed to the caller, whose request it concerns
            call.error = exc
        call.done.set()

    async def call(self, step: Callable[[int], T]) -> T:
        """`step(now_ms)` run in the driver's turn (at once if the driver is not running);
        its exception, if any, is raised here."""
        if not self.running:
            return step(self.clock())
        call: Call[T] = Call(step)
        await self.inbox.send(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the core until cancelled: peers' answers, calls and timers, in one order."""
        raft = self.node.raft
        self.running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.peers.run)
                while True:
                    now = self.clock()
                    raft.controller_behind = self.node.replay.far_behind
                    self.carry_out(raft.poll(now), now)
                    if self.node.replay.backlog:
                        await self._replay_between_events(now)
                        continue
                    self.node.replay.caught_up()  # (a no-op unless it was far behind)
                    delay_s = (raft.next_deadline_ms() - self.clock()) / 1000
                    event: DriverEvent | None = None
                    idle_from = time.perf_counter()
                    with trio.move_on_after(min(max(delay_s, 0.0), MAX_SLEEP_S)):
                        event = await self._events.receive()
                    woke = time.perf_counter()
                    now = self.clock()
                    self.stats.polled(idle_from, woke, now)
                    if event is not None:
                        self._handle(event, now)
                        queued_at = event.queued_at if isinstance(event, Call) else None
                        self.stats.handled(queued_at, woke, time.perf_counter())
        finally:
            self.running = False
            self.node.replay.caught_up()
            # Callers still waiting get no answer: their connections are closing too.
            while True:
                try:
                    pending = self._events.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                if isinstance(pending, Call):
                    pending.error = DriverStopped("the raft driver stopped")
                    pending.done.set()
            self.tickets.release_all()

    async def _replay_between_events(self, now_ms: int) -> None:
        """While committed records wait to be replayed (a standby far behind), an event
        already waiting comes first; else one slice of the replay, then a checkpoint, in
        which connection tasks queue their calls."""
        try:
            event = self._events.receive_nowait()
        except trio.WouldBlock:
            self.node.replay.replay_slice(now_ms)
            await trio.lowlevel.checkpoint()
            return
        woke = time.perf_counter()
        self._handle(event, now_ms)
        queued_at = event.queued_at if isinstance(event, Call) else None
        self.stats.handled(queued_at, woke, time.perf_counter())

    async def resign(self, timeout_s: float) -> None:
        """Graceful shutdown (KafkaRaftClient.shutdown): a leader resigns and sends
        EndQuorumEpoch to the other voters, then, as Kafka's maybeCompleteShutdown, stays
        (never standing for election, answering votes) until another voter leads; returns
        then, at once for a sole voter or an observer, or after `timeout_s`."""
        raft = self.node.raft
        await self.call(lambda now: self.carry_out(raft.resign(now), now))
        with trio.move_on_after(timeout_s):
            while not raft.shutdown_complete:
                await self._state_changed.wait()
