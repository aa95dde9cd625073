"""`Replay`: a kwire RaftCore in place of one genuine node, on the capture's clock."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kwire.protocol._codec import Message
from kwire.protocol.errors import ProtocolError
from kwire.records.batch import decode_batches
from kwire.records.control import ControlRecordType, decode_control_record_key
from quorum_replay.capture import (
    FETCH,
    NEVER_ON_THE_WIRE,
    PEER_ANSWER_MS,
    RAFT_APIS,
    Exchange,
    QuorumCapture,
    written_end,
)
from quorum_replay.compare import Comparison, Rule, compare
from quorum_replay.log import ReplayDiverged, ReplayLog, StoredBatch
from quorum_replay.rules import answer_fetch_as_peer


class ShutdownComplete(Exception):
    """The replayed node's graceful shutdown completed: the replay ends there."""


@dataclass(frozen=True, slots=True)
class Outage:
    """A genuine node's process was not running from `from_ms` (None: from the start)
    until `to_ms` (None: to the end): requests to it are refused, in-flight ones lost."""

    node: int
    from_ms: int | None
    to_ms: int | None

    def covers(self, ms: int) -> bool:
        return (self.from_ms is None or self.from_ms <= ms) and (
            self.to_ms is None or ms < self.to_ms
        )


@dataclass(slots=True)
class Sent:
    """A request kwire asked to send, and what became of it."""

    destination: int
    request: Message
    time_ms: int
    exchange: Exchange | None = None  # the genuine request it was paired with
    failure: Any = None  # the SendFailure kwire was told of, if any
    bootstrap: bool = False  # a Fetch to a voter kwire did not follow (answered as the peer)
    during_shutdown: bool = False  # sent after `shutdown_ms` (resign)


@dataclass(slots=True)
class ReplayResult:
    node: int
    log: ReplayLog
    comparisons: list[Comparison] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    # genuine requests kwire never sent; genuine requests to it the capture has no answer to
    unsent: list[Exchange] = field(default_factory=list)
    unanswered: list[Exchange] = field(default_factory=list)
    actions: list[tuple[int, Any]] = field(default_factory=list)  # (now_ms, action)
    # (ms, state name, epoch, leader id) at every StateChanged
    states: list[tuple[int, str, int, int]] = field(default_factory=list)
    # (ms, epoch, the genuine LeaderChangeMessage at that offset or None, kwire's)
    leader_changes: list[tuple[int, int, Any, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the replay stopped early (ReplayDiverged), if it did
    shutdown_complete_ms: int | None = None

    def of(self, api: str, kind: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.exchange.api == api and c.kind == kind]

    def mismatches(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.matches]

    def bootstrap_fetches(self) -> list[Sent]:
        return [s for s in self.sent if s.bootstrap]

    def unpaired_sends(self) -> list[Sent]:
        """kwire's sends the genuine node did not make, but those that never reach the wire
        (to a peer that was down, or that its version cannot carry: the genuine node's
        refused connections leave no frame), rule BOOTSTRAP_FETCH's, and rule
        HANDLING_WINDOW's: a send kwire made while a Vote, BeginQuorumEpoch or
        EndQuorumEpoch had reached the genuine node but was not yet answered (kwire is
        handed it at the answer's time; the genuine node had already acted on it)."""
        windows = [
            (c.exchange.request_ms, c.time_ms)
            for c in self.comparisons
            if c.kind == "answer" and c.exchange.api != "Fetch"
        ]
        return [
            s
            for s in self.sent
            if s.exchange is None
            and not s.bootstrap
            and getattr(s.failure, "name", None) not in NEVER_ON_THE_WIRE
            and not any(start <= s.time_ms < end for start, end in windows)
        ]


class Replay:
    """Drive `core` (a RaftCore for node `node`, over `log`) with the genuine traffic of
    `capture` from `start_ms` to `end_ms`; see the module docstring for the rules of time."""

    def __init__(
        self,
        capture: QuorumCapture,
        node: int,
        core: Any,
        log: ReplayLog,
        *,
        rules: Iterable[Rule] = (),
        outages: Iterable[Outage] = (),
        start_ms: int | None = None,
        end_ms: int | None = None,
        request_timeout_ms: int = 2000,
        skip: Callable[[Exchange], str | None] = lambda exchange: None,
        genuine_log: Iterable[StoredBatch] = (),
        shutdown_ms: int | None = None,
    ) -> None:
        self.capture = capture
        self.node = node
        self.core = core
        self.log = log
        self.rules = tuple(rules)
        self.outages = tuple(outages)
        self.start_ms = capture.first_ms if start_ms is None else start_ms
        self.end_ms = capture.last_ms if end_ms is None else end_ms
        self.request_timeout_ms = request_timeout_ms
        self.skip = skip
        self.genuine_log = tuple(genuine_log)
        self.shutdown_ms = shutdown_ms
        self.result = ReplayResult(node, log)
        self.now_ms = self.start_ms
        self._events: list[tuple[int, int, int, str, Any]] = []
        self._seq = 0
        # genuine requests waiting for kwire's send, and kwire sends waiting for a genuine
        # request, per (destination, api key)
        self._genuine: dict[tuple[int, int], deque[Exchange]] = defaultdict(deque)
        self._kwire: dict[tuple[int, int], deque[Sent]] = defaultdict(deque)
        self._in_flight: list[Sent] = []
        self._shutting_down = False
        self._polls_at_now = 0

    # -- events

    def _at(self, ms: int, kind: str, payload: Any, *, first: bool = False) -> None:
        self._seq += 1
        heapq.heappush(self._events, (ms, 0 if first else 1, self._seq, kind, payload))

    def run(self) -> ReplayResult:
        for exchange in self.capture.exchanges:
            if not self.start_ms <= exchange.request_ms <= self.end_ms:
                continue
            reason = self.skip(exchange)
            if reason is not None:
                self.result.notes.append(f"{exchange}: not replayed: {reason}")
                continue
            if exchange.receiver == self.node:
                written = written_end(exchange)
                if written is not None and self.genuine_log:
                    self._at(exchange.response_ms, "controller-write", written, first=True)  # type: ignore[arg-type]
                if exchange.response_ms is None:
                    self.result.unanswered.append(exchange)
                else:
                    self._at(exchange.response_ms, "inbound", exchange)
            elif exchange.sender == self.node:
                self._at(exchange.request_ms, "genuine-send", exchange)
        if self.shutdown_ms is not None:
            self._at(self.shutdown_ms, "shutdown", None)
        for outage in self.outages:
            if outage.from_ms is not None and outage.node != self.node:
                self._at(outage.from_ms, "down", outage)
        try:
            self._run_events()
        except ReplayDiverged as exc:
            self.result.stopped = f"at {self.now_ms}: {exc}"
        except ShutdownComplete:
            self.result.notes.append(f"{self.now_ms}: shutdown complete (a remote leader)")
            self.result.shutdown_complete_ms = self.now_ms
        for queue in self._genuine.values():
            self.result.unsent.extend(queue)
        return self.result

    def _run_events(self) -> None:
        from kwire.raft.state import SendFailure

        self._carry_out(self.core.start(self.start_ms))
        while True:
            next_ms = self._events[0][0] if self._events else self.end_ms + 1
            if self._run_timer_before(min(next_ms, self.end_ms)):
                continue
            if next_ms > self.end_ms:
                break
            ms, _, _, kind, payload = heapq.heappop(self._events)
            self.now_ms = max(self.now_ms, ms)
            match kind:
                case "inbound":
                    self._inbound(payload)
                case "genuine-send":
                    self._genuine[(payload.receiver, payload.api_key)].append(payload)
                case "answer":
                    sent = payload
                    if sent in self._in_flight:
                        self._in_flight.remove(sent)
                        assert sent.exchange is not None and sent.exchange.response is not None
                        self._carry_out(
                            self.core.on_response(
                                sent.destination, sent.request, sent.exchange.response, self.now_ms
                            )
                        )
                case "fail":
                    sent, failure = payload
                    if sent in self._in_flight:
                        self._in_flight.remove(sent)
                        sent.failure = failure
                        self._carry_out(
                            self.core.on_send_failed(
                                sent.destination, sent.request, failure, self.now_ms
                            )
                        )
                case "peer-answer":
                    if payload in self._in_flight:
                        self._in_flight.remove(payload)
                        self._carry_out(
                            self.core.on_response(
                                payload.destination,
                                payload.request,
                                self._peer_fetch_answer(payload),
                                self.now_ms,
                            )
                        )
                case "controller-write":
                    self._controller_write(payload)
                case "shutdown":
                    self._shutting_down = True
                    if self.core.leader_id not in (-1, self.node):
                        raise ShutdownComplete  # a follower stops at once (pollShutdown)
                    self._carry_out(self.core.resign(self.now_ms))
                case "down":
                    for sent in list(self._in_flight):
                        if sent.destination == payload.node:
                            self._at(self.now_ms, "fail", (sent, SendFailure.CONNECTION_LOST))
            self._pair()

    def _run_timer_before(self, ms: int) -> bool:
        """Poll kwire if a timer of its is due by `ms` (before an event of the same time);
        whether it did."""
        deadline = self.core.next_deadline_ms()
        if deadline > ms:
            return False
        self._polls_at_now = self._polls_at_now + 1 if deadline <= self.now_ms else 0
        if self._polls_at_now > 100:
            raise ReplayDiverged(f"next_deadline_ms() stays at {deadline} after poll()")
        self.now_ms = max(self.now_ms, deadline)
        self._carry_out(self.core.poll(self.now_ms))
        self._pair()
        return True

    # -- kwire's side

    def _carry_out(self, actions: list[Any]) -> None:
        from kwire.raft import state

        for action in actions:
            self.result.actions.append((self.now_ms, action))
            match action:
                case state.SendRequest(destination=destination, request=request):
                    self._send(destination, request)
                case state.AppendAsFollower(records=records):
                    end = self.log.append(records)
                    self._carry_out(self.core.on_flushed(end, self.now_ms))
                case state.TruncateTo(offset=offset):
                    self.log.truncate_to(offset)
                case state.AppendLeaderChange(epoch=epoch, message=message):
                    self._append_leader_change(epoch, message)
                case state.StateChanged(state=name, epoch=epoch, leader_id=leader):
                    self.result.states.append((self.now_ms, name, epoch, leader))
                    if self._shutting_down and leader not in (-1, self.node):
                        # KafkaRaftClient.pollShutdown: a graceful shutdown completes once
                        # a remote leader is known; the process stops acting.
                        raise ShutdownComplete
                case _:
                    pass  # PersistQuorumState, HighWatermarkAdvanced, BecameLeader: recorded

    def _send(self, destination: int, request: Message) -> None:
        from kwire.raft.state import SendFailure

        sent = Sent(destination, request, self.now_ms, during_shutdown=self._shutting_down)
        self.result.sent.append(sent)
        self._in_flight.append(sent)
        if any(o.node == destination and o.covers(self.now_ms) for o in self.outages):
            self._at(self.now_ms, "fail", (sent, SendFailure.CONNECTION_REFUSED))
            return
        api_key = _api_key(request)
        if not fits(request, self.capture.api_versions.get(destination, {}).get(api_key)):
            # The edge sends at the highest version both sides take; a request that version
            # cannot carry (PreVote needs Vote v2) fails at once.
            self._at(self.now_ms, "fail", (sent, SendFailure.UNSUPPORTED_VERSION))
            return
        if (
            api_key == FETCH
            and destination != self.core.leader_id
            and not self._genuine[(destination, FETCH)]
        ):
            # BOOTSTRAP_FETCH: a Fetch to a voter kwire does not follow.
            sent.bootstrap = True
            self._at(self.now_ms + PEER_ANSWER_MS, "peer-answer", sent)
            return
        self._kwire[(destination, api_key)].append(sent)
        self._at(self.now_ms + self.request_timeout_ms, "fail", (sent, SendFailure.TIMEOUT))

    def _pair(self) -> None:
        """Pair kwire's sends with the genuine requests of the same API to the same peer."""
        for key, sends in self._kwire.items():
            genuine = self._genuine[key]
            while sends and genuine:
                sent, exchange = sends.popleft(), genuine.popleft()
                if sent not in self._in_flight:
                    # it already failed (timed out) before the genuine node sent its own
                    genuine.appendleft(exchange)
                    continue
                sent.exchange = exchange
                self.result.comparisons.append(
                    compare(exchange, "request", sent.request, sent.time_ms, self.rules)
                )
                if exchange.response_ms is not None:
                    self._at(max(exchange.response_ms, self.now_ms), "answer", sent)

    def _peer_fetch_answer(self, sent: Sent) -> Message:
        answer, reason = answer_fetch_as_peer(
            self.capture, sent.destination, sent.request, self.now_ms
        )
        self.result.notes.append(f"{self.now_ms}: kwire's Fetch to {sent.destination}: {reason}")
        return answer

    # -- kwire as the leader: its log is the genuine leader's

    def _genuine_batch_at(self, offset: int) -> StoredBatch | None:
        return next((b for b in self.genuine_log if b.base_offset == offset), None)

    def _append_leader_change(self, epoch: int, message: Any) -> None:
        """kwire's LeaderChange stands where the genuine leader's is: the message is
        compared field by field, and the genuine batch (its timestamp and CRC are the
        genuine leader's clock's) is appended so that later Fetch answers compare."""
        from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage

        batch = self._genuine_batch_at(self.log.end_offset)
        genuine = None
        if batch is not None and batch.epoch == epoch:
            record = next(decode_batches(batch.raw)).records[0]
            key = decode_control_record_key(record.key)
            if key.type == ControlRecordType.LEADER_CHANGE:
                genuine = LeaderChangeMessage.decode(record.value or b"", 0)
        self.result.leader_changes.append((self.now_ms, epoch, genuine, message))
        if genuine is None or batch is None:
            self.result.notes.append(
                f"{self.now_ms}: kwire leads epoch {epoch} but the genuine node held no "
                f"LeaderChange of that epoch at offset {self.log.end_offset}"
            )
            return
        self._carry_out(self.core.on_flushed(self.log.append(batch.raw), self.now_ms))

    def _controller_write(self, end_offset: int) -> None:
        """The genuine controller's records, appended by kwire's leader when the genuine
        leader first sent them to a follower (the controller above the raft is not
        replayed: its writes are)."""
        if not self.core.is_leader:
            return
        appended = False
        while self.log.end_offset < end_offset:
            batch = self._genuine_batch_at(self.log.end_offset)
            if batch is None or batch.epoch != self.core.epoch:
                break
            self.log.append(batch.raw)
            appended = True
        if appended:
            self._carry_out(self.core.on_flushed(self.log.end_offset, self.now_ms))

    # -- the genuine peers' side

    def _inbound(self, exchange: Exchange) -> None:
        if exchange.api == "Fetch":
            self._fetch(exchange)
            return
        handler = {
            "Vote": self.core.handle_vote,
            "BeginQuorumEpoch": self.core.handle_begin_quorum_epoch,
            "EndQuorumEpoch": self.core.handle_end_quorum_epoch,
        }[exchange.api]
        response, actions = handler(exchange.request, self.now_ms)
        self.result.comparisons.append(
            compare(exchange, "answer", response, self.now_ms, self.rules)
        )
        self._carry_out(actions)  # before the answer goes out; compared first, as it stands

    def _fetch(self, exchange: Exchange) -> None:
        from kwire.raft.core import FetchReady

        request = exchange.request
        outcome = self.core.fetch(request, self.now_ms)
        if isinstance(outcome, FetchReady):
            response = outcome.response
        else:
            records = self.log.read(outcome.offset, outcome.max_bytes)
            response, actions = self.core.complete_fetch(request, records, self.now_ms)
            self._carry_out(actions)
        self.result.comparisons.append(
            compare(exchange, "answer", response, self.now_ms, self.rules)
        )


def fits(request: Message, version: int | None) -> bool:
    """Whether `request` can be written at `version` (None: the peer's is unknown)."""
    if version is None:
        return True
    try:
        request.write(bytearray(), version)
    except ProtocolError:
        return False
    return True


def _api_key(request: Message) -> int:
    name = type(request).__name__.removesuffix("Request")
    return next(key for key, api in RAFT_APIS.items() if api == name)
