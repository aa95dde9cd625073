"""A simulated kwire node: the real RaftCore and the real QuorumController on a MemoryLog.

`SimNode` carries out the core's actions as the Trio edge does (kwire.server), in order
and synchronously: PersistQuorumState writes the node's `Disk.quorum_state` (which
survives crashes), appends go to the `MemoryLog` and are flushed before `on_flushed`,
SendRequest goes to the `Network`.

The controller follows the log as kwire's edge runs it:
- a standby replays committed records as the high watermark passes them (hot standby);
- a new leader (BecameLeader) replays up to its epoch start once that is committed, then
  activates (bootstrap records on an empty log, a fresh session for every broker) and
  registers itself; its writes are applied at once and answered once committed;
- a leader that leaves the leader state (StateChanged) reverts to the committed offset and
  answers its waiting writes NOT_CONTROLLER.

A crash (`crash`) loses the process (core, controller, parked fetches, waiting writes) and
the log's unflushed tail; `Disk` (log and quorum state) is what a restart rebuilds from.
`crash_point` arms a kill -9 in the middle of an action: between an append and its fsync
(`CrashPoint.BEFORE_FLUSH`, the unflushed batch is lost), after a quorum state write and
before anything is sent (`CrashPoint.AFTER_PERSIST`), or right after answering a vote
(`CrashPoint.AFTER_VOTE`, after granting a real vote: the answer still reaches the
candidate). A crash at a crash point is followed by a restart, as under a supervisor.
"""

from __future__ import annotations

import enum
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from kwire.controller.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.kraft_version import RaftKRaftVersion
from kwire.controller.operation import ControllerResult
from kwire.log.quorum_state import QuorumStateData
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.protocol.messages.update_raft_voter import UpdateRaftVoterRequest
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.core import FetchRead, FetchReady, RaftConfig, RaftCore
from kwire.raft.state import (
    Action,
    AppendAsFollower,
    AppendControlRecords,
    AppendLeaderChange,
    BecameLeader,
    CompleteVoterChange,
    HighWatermarkAdvanced,
    OutboundResponse,
    PersistQuorumState,
    SendFailure,
    SendRequest,
    StateChanged,
    TruncateTo,
)
from kwire.raft.voter_set import KRaftControlRecords, KRaftVersion
from kwire.records import (
    Record,
    build_batch,
    encode_batch,
    encode_control_record_key,
    frame_metadata_record,
)
from kwire.records.control import ControlRecordType
from kwire.sim.invariants import InvariantViolation
from kwire.sim.memory_log import MemoryLog, StoredBatch
from kwire.sim.network import Failure, Network, PendingRequest
from kwire.sim.replay import replay_batch

MAX_RECORDS_PER_BATCH = 10_000  # Kafka's QuorumController maxRecordsPerBatch
SUPPORTED_FEATURES = (("metadata.version", 1, 21), ("kraft.version", 0, 1))


class CrashPoint(enum.Enum):
    NONE = "none"
    BEFORE_FLUSH = "before-flush"
    AFTER_PERSIST = "after-persist"
    AFTER_VOTE = "after-vote"


class NodeCrashed(Exception):
    """Raised inside a step when an armed crash point is reached; the simulation then
    crashes the node (nothing after the crash point happens)."""


@dataclass(slots=True)
class Disk:
    """What survives a crash: the log (its flushed part) and quorum-state."""

    log: MemoryLog = field(default_factory=MemoryLog)
    quorum_state: QuorumStateData | None = None


class Observer(Protocol):
    """What the invariant checker (kwire.sim.invariants.History) hears from a node."""

    def state_changed(self, node: SimNode, action: StateChanged) -> None: ...
    def became_leader(self, node: SimNode, epoch: int, start: int) -> None: ...
    def appended(self, node: SimNode, batches: Sequence[StoredBatch]) -> None: ...
    def truncating(self, node: SimNode, offset: int) -> None: ...
    def high_watermark_advanced(self, node: SimNode, offset: int) -> None: ...
    def controller_moved(self, node: SimNode) -> None: ...


class _Unobserved:
    def state_changed(self, node: SimNode, action: StateChanged) -> None:
        pass

    def became_leader(self, node: SimNode, epoch: int, start: int) -> None:
        pass

    def appended(self, node: SimNode, batches: Sequence[StoredBatch]) -> None:
        pass

    def truncating(self, node: SimNode, offset: int) -> None:
        pass

    def high_watermark_advanced(self, node: SimNode, offset: int) -> None:
        pass

    def controller_moved(self, node: SimNode) -> None:
        pass


@dataclass(slots=True)
class _Parked:
    pending: PendingRequest
    request: FetchRequest
    deadline_ms: int
    version: int
    response: FetchResponse  # the empty answer it gets if nothing happens before the deadline


@dataclass(slots=True)
class _Waiter:
    end_offset: int
    generation: int
    respond: Callable[[Message], None]
    response: Message
    failure: Message


class SimNode:
    """One node: see the module docstring. `node_id` is its voter id."""

    def __init__(
        self,
        raft_config: RaftConfig,
        controller_config: ControllerConfig,
        network: Network,
        disk: Disk,
        seed: int,
        *,
        observer: Observer | None = None,
        metadata_version_level: int = 21,
    ) -> None:
        self.raft_config = raft_config
        self.controller_config = controller_config
        self.node_id = raft_config.node_id
        self.network = network
        self.disk = disk
        self.seed = seed
        self.observer: Observer = observer or _Unobserved()
        self.metadata_version_level = metadata_version_level
        self.incarnation = 0
        self.alive = False
        self.crash_point = CrashPoint.NONE
        self.core: RaftCore | None = None
        self.controller: QuorumController | None = None
        self.peers: dict[int, SimNode] = {}  # every node of the cluster (for invariants)
        self.voter_answers: dict[int, Message] = {}  # voter-change answers, by ticket

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def log(self) -> MemoryLog:
        return self.disk.log

    @property
    def controller_active(self) -> bool:
        return self.controller is not None and self.controller.is_active

    def start(self, now_ms: int) -> None:
        """Start (or restart) the process from what is on `disk`."""
        self.incarnation += 1
        self.alive = True
        rng = random.Random(self.seed * 1_000_003 + self.incarnation)
        self.core = RaftCore(
            self.raft_config,
            self.log,
            persisted=self.disk.quorum_state,
            rng=rng,
            control_records=self._control_records(),
        )
        self.controller = QuorumController(
            node_id=self.node_id,
            cluster_id=self.raft_config.cluster_id,
            config=self.controller_config,
            rng=random.Random(rng.getrandbits(64)),
        )
        core = self.core
        self.controller.kraft = RaftKRaftVersion(
            read=lambda: int(core.kraft_version), upgrade=self._upgrade_kraft_version
        )
        self.applied_end = 0  # the standby controller has replayed [0, applied_end)
        self.high_watermark = 0  # the largest HighWatermarkAdvanced of this incarnation
        self.activation: tuple[int, int] | None = None  # (epoch, start) awaiting commit
        self.state = "unattached"
        self.generation = 0
        self.version = 0  # bumped on every change a parked fetch may be waiting for
        self.parked: list[_Parked] = []
        self.waiters: list[_Waiter] = []
        self.network.node_started(self.node_id, self.incarnation)
        self.carry_out(self.core.start(now_ms), now_ms)

    def _control_records(self) -> KRaftControlRecords:
        """The voter history as the server reads it at start (kwire.server.quorum_voters):
        a dynamic quorum's bootstrap voters (a static quorum's come from the config), then
        every control batch of the log (a static quorum upgraded to kraft.version 1 has
        its KRaftVersion and Voters records there)."""
        bootstrap = self.raft_config.voter_set
        history = KRaftControlRecords()
        if bootstrap is not None:
            history.load_bootstrap(KRaftVersion.KRAFT_VERSION_1, bootstrap)
        for stored in self.log.batches:
            batch = stored.decode()
            if batch.is_control:
                history.skip_to(batch.base_offset)
                history.append([batch])
            else:
                history.skip_to(stored.next_offset)
        history.skip_to(self.log.end_offset)
        return history

    def crash(self) -> int:
        """kill -9: the process and the log's unflushed tail are gone; returns the lost
        offsets."""
        self.alive = False
        self.core = None
        self.controller = None
        self.parked = []
        self.waiters = []
        self.network.node_crashed(self.node_id)
        return self.log.crash()

    # -- timers ---------------------------------------------------------------------------------

    def next_deadline_ms(self) -> int:
        assert self.core is not None and self.controller is not None
        deadline = self.core.next_deadline_ms()
        if self.controller.is_active:
            deadline = min(deadline, self.controller.next_deadline_ms())
        for parked in self.parked:
            deadline = min(deadline, parked.deadline_ms)
        return deadline

    def poll(self, now_ms: int) -> None:
        assert self.core is not None and self.controller is not None
        self.carry_out(self.core.poll(now_ms), now_ms)
        if self.controller.is_active and self.controller.next_deadline_ms() <= now_ms:
            result = self.controller.tick(now_ms, self.log.end_offset)
            if result is not None:
                self.append_result(result, now_ms)
        self.service_parked(now_ms)

    def resign(self, now_ms: int) -> None:
        assert self.core is not None
        self.carry_out(self.core.resign(now_ms), now_ms)

    # -- the core's actions ----------------------------------------------------------------------

    def carry_out(self, actions: Sequence[Action], now_ms: int) -> None:
        for action in actions:
            self._carry_out_one(action, now_ms)

    def _carry_out_one(self, action: Action, now_ms: int) -> None:
        core = self.core
        assert core is not None
        match action:
            case PersistQuorumState():
                self.persist(action)
                if self.crash_point is CrashPoint.AFTER_PERSIST:
                    raise NodeCrashed("after persisting the quorum state")
            case SendRequest(destination=destination, request=request):
                self.network.send(self.node_id, destination, request)
            case AppendLeaderChange(epoch=epoch) | AppendControlRecords(epoch=epoch):
                records = [
                    Record(offset_delta=i, key=encode_control_record_key(kind), value=value)
                    for i, (kind, value) in enumerate(action.values())
                ]
                data = encode_batch(build_batch(records, base_timestamp=now_ms, control=True))
                if isinstance(action, AppendControlRecords):
                    self._check_one_voter_change(action)
                self._append(lambda: self.log.append_as_leader(data, epoch), now_ms)
            case CompleteVoterChange(ticket=ticket, response=response):
                self.voter_answers[ticket] = response
            case AppendAsFollower(records=records):
                self._append(lambda: self.log.append_as_follower(records), now_ms)
            case TruncateTo(offset=offset):
                self.observer.truncating(self, offset)
                self.log.truncate_to(offset)
                self.version += 1
            case HighWatermarkAdvanced(offset=offset):
                self._advance_high_watermark(offset, now_ms)
            case BecameLeader(epoch=epoch, epoch_start_offset=start):
                self.observer.became_leader(self, epoch, start)
                self.activation = (epoch, start)
                self._catch_up(now_ms)
            case StateChanged():
                self._state_changed(action, now_ms)
            case _:
                raise TypeError(f"the simulator does not carry out {action!r}")

    def persist(self, action: PersistQuorumState) -> None:
        """Write quorum-state durably (the planted-bug test turns this into a no-op)."""
        self.disk.quorum_state = QuorumStateData(
            leader_id=action.leader_id,
            leader_epoch=action.leader_epoch,
            voted_id=action.voted_id,
            voted_directory_id=action.voted_directory_id,
            current_voters=tuple(sorted(self.raft_config.voter_ids)),
        )

    def _append(self, write: Callable[[], tuple[int, int]], now_ms: int) -> int:
        before = len(self.log.batches)
        write()
        self.observer.appended(self, self.log.batches[before:])
        if self.crash_point is CrashPoint.BEFORE_FLUSH:
            raise NodeCrashed("between an append and its fsync")
        self.log.flush()
        self.version += 1
        end = self.log.end_offset
        assert self.core is not None
        self.carry_out(self.core.on_flushed(end, now_ms), now_ms)
        self._catch_up(now_ms)
        return end

    def _advance_high_watermark(self, offset: int, now_ms: int) -> None:
        self.observer.high_watermark_advanced(self, offset)
        if self.state == "leader":
            self._check_majority_holds(offset)
        self.high_watermark = max(self.high_watermark, offset)
        self.log.high_watermark = min(self.high_watermark, self.log.end_offset)
        self.version += 1
        if self.controller is not None and self.controller.is_active:
            self.controller.commit(self.committed_end - 1)
        self._catch_up(now_ms)
        self._wake_waiters()

    @property
    def committed_end(self) -> int:
        """Everything below is committed and held by this node's log."""
        return min(self.high_watermark, self.log.end_offset)

    def _state_changed(self, action: StateChanged, now_ms: int) -> None:
        was_leader = self.state == "leader"
        self.state = action.state
        self.version += 1
        self.observer.state_changed(self, action)
        if was_leader and action.state != "leader":
            self.activation = None
            assert self.controller is not None
            if self.controller.is_active:
                # What it applied beyond the committed offset is taken back; from here it
                # replays committed records as a standby.
                self.controller.revert_to(self.committed_end - 1)
                self.controller.deactivate()
                self.applied_end = self.committed_end
                self.observer.controller_moved(self)
            self.generation += 1
            self._wake_waiters()

    # -- the controller following the log ----------------------------------------------------

    def _catch_up(self, now_ms: int) -> None:
        """Replay committed records the controller has not seen; activate a new leader
        once its epoch start is committed and replayed."""
        controller = self.controller
        if controller is None or controller.is_active:
            return
        target = self.committed_end
        if self.activation is not None:
            target = min(target, self.activation[1])
        if target > self.applied_end:
            self._replay(controller, self.applied_end, target)
            self.applied_end = target
        if self.activation is not None and self.committed_end > self.activation[1]:
            epoch, _ = self.activation
            self.activation = None
            self.observer.controller_moved(self)
            self._activate(epoch, now_ms)

    def _replay(self, controller: QuorumController, start: int, end: int) -> None:
        for batch in self.log.batches_between(start, end):
            replay_batch(controller, batch, start, end)

    def _activate(self, epoch: int, now_ms: int) -> None:
        controller = self.controller
        assert controller is not None
        result = controller.activate(now_ms, self.log.end_offset, self.metadata_version_level)
        if result is not None and result.records:
            self.append_result(result, now_ms)
        request = ControllerRegistrationRequest(
            controller_id=self.node_id,
            incarnation_id=_uuid_of(self.seed, self.node_id, self.incarnation),
            zk_migration_ready=False,
            listeners=[
                ControllerRegistrationRequest.Listener(
                    name="CONTROLLER",
                    host="127.0.0.1",
                    port=9000 + self.node_id,
                    security_protocol=0,
                )
            ],
            features=[
                ControllerRegistrationRequest.Feature(
                    name=name, min_supported_version=low, max_supported_version=high
                )
                for name, low, high in SUPPORTED_FEATURES
            ],
        )
        context = RequestContext(api_version=0, client_id=str(self.node_id), internal=True)
        registration = controller.handle(request, context, self.log.end_offset, now_ms)
        self.append_result(registration, now_ms)

    def _upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        """The raft leader's kraft.version upgrade for the controller's UpdateFeatures: its
        control batch goes in before the controller's records; how many offsets it took."""
        assert self.core is not None
        before = self.log.end_offset
        now_ms = self.core.now_ms
        _, actions = self.core.upgrade_kraft_version(self.core.epoch, level, validate_only, now_ms)
        self.carry_out(actions, now_ms)
        return self.log.end_offset - before

    def append_result(self, result: ControllerResult, now_ms: int) -> int:
        """Append a controller result's records as the leader (atomic: one batch; else
        one batch per write, split at MAX_RECORDS_PER_BATCH)."""
        assert self.core is not None
        values = result.values
        if len(values) != len(result.records):
            values = [
                frame_metadata_record(r.api_key, r.version, r.record.encode(r.version))
                for r in result.records
            ]
        writes = result.writes or [len(values)]
        start, end = 0, self.log.end_offset
        for count in writes:
            chunk = values[start : start + count]
            start += count
            step = len(chunk) if result.atomic else MAX_RECORDS_PER_BATCH
            for first in range(0, len(chunk), step):
                part = chunk[first : first + step]
                batch = build_batch(
                    [Record(offset_delta=i, value=v) for i, v in enumerate(part)],
                    base_timestamp=now_ms,
                )
                data, epoch = encode_batch(batch), self.core.epoch
                end = self._append(partial(self.log.append_as_leader, data, epoch), now_ms)
        return end

    # -- client writes ----------------------------------------------------------------------------

    def handle_client(
        self, request: Message, respond: Callable[[Message], None], now_ms: int
    ) -> None:
        """A client request (CreateTopics, BrokerRegistration...): NOT_CONTROLLER unless
        this node's controller is active; else applied, appended, answered on commit."""
        from kwire.controller.controller import error_response

        controller = self.controller
        assert controller is not None
        not_controller = error_response(request, ErrorCode.NOT_CONTROLLER)
        if not controller.is_active or self.state != "leader":
            respond(not_controller)
            return
        context = RequestContext(api_version=_version_of(request), client_id="sim-client")
        result = controller.handle(request, context, self.log.end_offset, now_ms)
        assert result.response is not None
        if not result.records:
            respond(result.response)
            return
        generation = self.generation
        end = self.append_result(result, now_ms)
        self.waiters.append(_Waiter(end, generation, respond, result.response, not_controller))
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        kept: list[_Waiter] = []
        for waiter in self.waiters:
            if waiter.generation != self.generation:
                waiter.respond(waiter.failure)
            elif self.committed_end >= waiter.end_offset and self.state == "leader":
                waiter.respond(waiter.response)
            else:
                kept.append(waiter)
        self.waiters = kept

    # -- voter changes (KIP-853) ------------------------------------------------------------------

    def change_voters(
        self, request: AddRaftVoterRequest | RemoveRaftVoterRequest, ticket: int, now_ms: int
    ) -> None:
        """An administrator's AddRaftVoter or RemoveRaftVoter to this node; its answer, now
        or later, lands in `voter_answers[ticket]`."""
        core = self.core
        assert core is not None
        if isinstance(request, AddRaftVoterRequest):
            add_answer, actions = core.handle_add_raft_voter(request, ticket, now_ms)
            answer: Message | None = add_answer
        else:
            remove_answer, actions = core.handle_remove_raft_voter(request, ticket, now_ms)
            answer = remove_answer
        if answer is not None:
            self.voter_answers[ticket] = answer
        self.carry_out(actions, now_ms)

    def _check_one_voter_change(self, action: AppendControlRecords) -> None:
        """At most one voter change is uncommitted in a leader's log (KIP-853): when a
        leader appends a VotersRecord, every earlier one lies below its high watermark."""
        core = self.core
        assert core is not None
        if not core.is_leader or core.epoch != action.epoch:
            return
        uncommitted = [
            o for o in core.control_records.voter_set_offsets() if o >= core.high_watermark
        ]
        # The VotersRecord's own offset: a kraft.version upgrade puts its KRaftVersionRecord
        # first in the batch.
        appended = [
            action.base_offset + i
            for i, (kind, _) in enumerate(action.control_records)
            if kind is ControlRecordType.KRAFT_VOTERS
        ]
        if uncommitted != appended:
            raise InvariantViolation(
                "one voter change at a time",
                f"leader {self.node_id} appends a voter set at {action.base_offset} while "
                f"{uncommitted} are not below its high watermark {core.high_watermark}",
            )

    def _check_majority_holds(self, offset: int) -> None:
        """A leader commits `offset` only once a majority of the voter set in force holds
        it durably, the same batch as the leader's."""
        core = self.core
        assert core is not None
        epoch = self.log.epoch_for_offset(offset - 1)
        holders = [
            v
            for v in core.voter_set.voter_ids()
            if v in self.peers
            and self.peers[v].log.flushed_end >= offset
            and self.peers[v].log.epoch_for_offset(offset - 1) == epoch
        ]
        if len(holders) < core.voter_set.majority_size:
            raise InvariantViolation(
                "majority of the voter set",
                f"leader {self.node_id} committed offset {offset} held only by {holders} of "
                f"voters {core.voter_set.voter_ids()}",
            )

    # -- requests from peers --------------------------------------------------------------------

    def handle_request(self, pending: PendingRequest, now_ms: int) -> None:
        core = self.core
        assert core is not None
        request = pending.request
        response: OutboundResponse
        actions: list[Action]
        match request:
            case VoteRequest():
                response, actions = core.handle_vote(request, now_ms)
            case BeginQuorumEpochRequest():
                response, actions = core.handle_begin_quorum_epoch(request, now_ms)
            case EndQuorumEpochRequest():
                response, actions = core.handle_end_quorum_epoch(request, now_ms)
            case FetchRequest():
                self._fetch(pending, request, now_ms, park=True)
                return
            case ApiVersionsRequest():  # a leader probes a voter it adds (KIP-853)
                response, actions = _API_VERSIONS, []
            case UpdateRaftVoterRequest():
                response, actions = core.handle_update_raft_voter(request, now_ms)
            case _:
                raise TypeError(f"the simulator does not route {type(request).__name__}")
        self.carry_out(actions, now_ms)
        self.network.respond(pending, response)
        if self.crash_point is CrashPoint.AFTER_VOTE and _granted_vote(request, response):
            raise NodeCrashed("right after granting a vote")

    def _fetch(
        self, pending: PendingRequest, request: FetchRequest, now_ms: int, *, park: bool
    ) -> bool:
        """Answer a Fetch, or park it (Kafka's purgatory) until the log grows, the high
        watermark moves, the state changes or MaxWaitMs passes. True when answered."""
        core = self.core
        assert core is not None
        outcome = core.fetch(request, now_ms)
        match outcome:
            case FetchReady(response=response):
                self.network.respond(pending, response)
                return True
            case FetchRead(offset=offset, max_bytes=max_bytes):
                records = self.log.read(offset, max_bytes)
                version = self.version
                response, actions = core.complete_fetch(request, records, now_ms)
                self.carry_out(actions, now_ms)
                if park and core.fetch_would_wait(request, response):
                    deadline = now_ms + request.max_wait_ms
                    self.parked.append(_Parked(pending, request, deadline, version, response))
                    return False
                self.network.respond(pending, response)
                return True
        raise AssertionError(f"unexpected fetch outcome {outcome!r}")

    def service_parked(self, now_ms: int) -> None:
        """Answer parked fetches whose wait is over (with the empty answer they had when
        parked, as Kafka's fetch purgatory expires them) or whose answer may have changed
        (the fetch is served again at this time, as Kafka completes the purgatory when the
        log grows)."""
        if not self.parked:
            return
        parked, self.parked = self.parked, []
        for entry in parked:
            if entry.version != self.version:
                if not self._fetch(entry.pending, entry.request, now_ms, park=True):
                    # parked again by _fetch: keep the original deadline
                    self.parked[-1].deadline_ms = entry.deadline_ms
            elif now_ms >= entry.deadline_ms:
                self.network.respond(entry.pending, entry.response)
            else:
                self.parked.append(entry)

    # -- outcomes of this node's requests ---------------------------------------------------------

    def handle_response(self, pending: PendingRequest, response: Any, now_ms: int) -> None:
        assert self.core is not None
        actions = self.core.on_response(pending.destination, pending.request, response, now_ms)
        self.carry_out(actions, now_ms)

    def handle_failure(self, pending: PendingRequest, failure: Failure, now_ms: int) -> None:
        assert self.core is not None
        actions = self.core.on_send_failed(
            pending.destination, pending.request, SendFailure[failure.name], now_ms
        )
        self.carry_out(actions, now_ms)


# What a node answers a leader's ApiVersions probe with: the kraft.version range it runs.
_API_VERSIONS = ApiVersionsResponse(
    supported_features=[
        ApiVersionsResponse.SupportedFeatureKey(name="kraft.version", min_version=0, max_version=1)
    ]
)


def _granted_vote(request: object, response: OutboundResponse) -> bool:
    """A VoteResponse granting a real vote (not a pre-vote)."""
    if not isinstance(request, VoteRequest) or not isinstance(response, VoteResponse):
        return False
    asked = (
        request.topics[0].partitions[0] if request.topics and request.topics[0].partitions else None
    )
    answer = (
        response.topics[0].partitions[0]
        if response.topics and response.topics[0].partitions
        else None
    )
    return asked is not None and answer is not None and answer.vote_granted and not asked.pre_vote


def _version_of(request: Message) -> int:
    return int(type(request).HIGHEST_VERSION)


def _uuid_of(seed: int, node_id: int, incarnation: int) -> uuid.UUID:
    return uuid.UUID(int=(seed * 1_000 + node_id) * 1_000 + incarnation)
