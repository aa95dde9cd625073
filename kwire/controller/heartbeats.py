"""Broker sessions, as the active controller tracks them (Kafka's BrokerHeartbeatManager).

This is soft state: it is not in the log. It records when each broker was last heard
from, the metadata offset it reported, and where its controlled shutdown started, and it
decides each broker's next state from a heartbeat. Only the active controller keeps
sessions (Kafka's heartbeatManager is null on a standby): they are started afresh from
the image's registrations (``restart``) whenever the controller activates or its image
is taken back, and forgotten when it steps down (``forget_all``).

The unfenced brokers are kept in order of last contact, oldest first, as Kafka's
BrokerHeartbeatStateList keeps them: the controller's clock never goes back, so a touched
broker goes to the end (after others heard from at the same millisecond, as Kafka adds
it), and the next session to expire is always the first. A heartbeat and the
session-timeout check cost O(1) whatever the number of brokers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

_NEVER = 2**63 - 1  # Long.MAX_VALUE: "no deadline" / "no active broker"


class BrokerControlState(Enum):
    """Where a broker stands with the controller."""

    FENCED = "fenced"
    UNFENCED = "unfenced"
    CONTROLLED_SHUTDOWN = "controlled_shutdown"
    SHUTDOWN_NOW = "shutdown_now"

    @property
    def fenced(self) -> bool:
        return self in (BrokerControlState.FENCED, BrokerControlState.SHUTDOWN_NOW)

    @property
    def should_shut_down(self) -> bool:
        return self is BrokerControlState.SHUTDOWN_NOW

    @property
    def in_controlled_shutdown(self) -> bool:
        return self is BrokerControlState.CONTROLLED_SHUTDOWN


@dataclass(slots=True)
class BrokerSession:
    broker_id: int
    last_contact_ms: int = 0
    metadata_offset: int = -1
    controlled_shutdown_offset: int = -1
    fenced: bool = True
    stall_at_contact_ms: int = 0  # the tracker's stall_ms at last contact

    @property
    def shutting_down(self) -> bool:
        return self.controlled_shutdown_offset >= 0

    @property
    def active(self) -> bool:
        return not self.fenced and not self.shutting_down


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatIntent:
    """What a heartbeat asks for (the request's fields that drive the state machine)."""

    want_fence: bool
    want_shut_down: bool
    current_metadata_offset: int


class BrokerHeartbeatTracker:
    def __init__(self, session_timeout_ms: int) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.sessions: dict[int, BrokerSession] = {}
        # The unfenced brokers' sessions by id, in order of last contact (oldest first).
        self._unfenced: dict[int, BrokerSession] = {}
        # The time the controller last learnt; registrations replayed from the log start
        # their session at this time, as Kafka's start at the wall clock.
        self.now_ms = 0
        # How long the controller's own event loop was blocked, in total (ms; see
        # `credit_stall`).
        self.stall_ms = 0

    def credit_stall(self, ms: int) -> None:
        """The controller's event loop was blocked for ``ms`` milliseconds: a heartbeat
        sent meanwhile waited in its socket, unread. kwire adds the stalls since a
        broker's last contact to its session, so that the controller's own stall is
        not the broker's fault (Kafka's BrokerHeartbeatManager counts the session from
        the heartbeat's handling and does not: KAFKA-15019)."""
        self.stall_ms += ms

    def register(self, broker_id: int, fenced: bool) -> None:
        """(Re)start tracking ``broker_id``. Kafka keeps the reported offset only when the
        fencing actually changes, and otherwise forgets it until the next heartbeat."""
        session = self.sessions.get(broker_id)
        metadata_offset = -1
        if session is None:
            session = self.sessions[broker_id] = BrokerSession(broker_id)
        elif session.fenced != fenced:
            metadata_offset = session.metadata_offset
        self.touch(broker_id, fenced, metadata_offset)

    def forget_all(self) -> None:
        """Forget every session: the controller is no longer active (Kafka's
        ClusterControlManager.deactivate drops its BrokerHeartbeatManager)."""
        self.sessions.clear()
        self._unfenced.clear()

    def restart(self, registrations: Iterable[tuple[int, bool]]) -> None:
        """Forget every session, then start one at ``now_ms`` for each (broker id, fenced)
        of ``registrations``, in their order: what Kafka's ClusterControlManager.activate
        builds from the registrations of its image. No broker is tracked, nor counts as
        unfenced, unless ``registrations`` says so."""
        self.forget_all()
        for broker_id, fenced in registrations:
            self.register(broker_id, fenced)

    def remove(self, broker_id: int) -> None:
        self.sessions.pop(broker_id, None)
        self._unfenced.pop(broker_id, None)

    def touch(self, broker_id: int, fenced: bool, metadata_offset: int) -> None:
        session = self.sessions[broker_id]
        self._unfenced.pop(broker_id, None)
        session.last_contact_ms = self.now_ms
        session.stall_at_contact_ms = self.stall_ms
        session.metadata_offset = metadata_offset
        session.fenced = fenced
        if fenced:
            # A fenced broker leaves controlled shutdown; its next heartbeat shuts it down.
            session.controlled_shutdown_offset = -1
        else:
            self._unfenced[broker_id] = session  # the newest contact: last

    def fence(self, broker_id: int) -> None:
        session = self.sessions.get(broker_id)
        if session is not None:
            session.fenced = True
            self._unfenced.pop(broker_id, None)

    def has_valid_session(self, broker_id: int) -> bool:
        session = self.sessions.get(broker_id)
        return session is not None and self._valid(session)

    def _valid(self, session: BrokerSession) -> bool:
        return not session.fenced and self._expiry_ms(session) >= self.now_ms

    def _expiry_ms(self, session: BrokerSession) -> int:
        """The last millisecond of the session: its timeout after the last contact, plus
        the stalls of the controller's loop since (the unfenced list stays ordered by
        it, as stalls after a contact never exceed the time since)."""
        stalled = self.stall_ms - session.stall_at_contact_ms
        return session.last_contact_ms + self.session_timeout_ms + stalled

    def update_controlled_shutdown_offset(self, broker_id: int, offset: int) -> None:
        session = self.sessions[broker_id]
        if session.fenced:
            raise ValueError("fenced brokers cannot enter controlled shutdown")
        if session.controlled_shutdown_offset < 0:
            session.controlled_shutdown_offset = offset

    def lowest_active_offset(self) -> int:
        offsets = [s.metadata_offset for s in self.sessions.values() if s.active]
        return min(offsets, default=_NEVER)

    def _longest_silent(self) -> BrokerSession | None:
        """The unfenced broker heard from least recently (Kafka's unfenced.first()).
        Entries whose session is gone (``sessions`` cleared by a new controller term)
        are dropped as they come first."""
        unfenced = self._unfenced
        while unfenced:
            broker_id, session = next(iter(unfenced.items()))
            if self.sessions.get(broker_id) is session:
                return session
            del unfenced[broker_id]
        return None

    def next_check_ms(self) -> int:
        """When the longest-silent unfenced broker's session runs out (or never)."""
        session = self._longest_silent()
        if session is None:
            return _NEVER
        return self._expiry_ms(session)

    def find_one_stale_broker(self) -> int | None:
        """The longest-silent unfenced broker if its session ran out: if it did not,
        no other did (Kafka's findOneStaleBroker)."""
        session = self._longest_silent()
        if session is not None and not self._valid(session):
            return session.broker_id
        return None

    def usable_brokers(self) -> list[tuple[int, bool]]:
        """(broker id, fenced) of every broker replicas may be placed on: all but those
        in controlled shutdown."""
        return [(s.broker_id, s.fenced) for s in self.sessions.values() if not s.shutting_down]

    def current_state(self, broker_id: int) -> BrokerControlState:
        session = self.sessions[broker_id]
        if session.shutting_down:
            return BrokerControlState.CONTROLLED_SHUTDOWN
        if session.fenced:
            return BrokerControlState.FENCED
        return BrokerControlState.UNFENCED

    def next_state(
        self,
        broker_id: int,
        intent: HeartbeatIntent,
        register_broker_offset: int,
        has_leaderships: Callable[[], bool],
    ) -> tuple[BrokerControlState, BrokerControlState]:
        """(current, next) state for a heartbeat, by Kafka's rules."""
        S = BrokerControlState
        current = self.current_state(broker_id)
        if current is S.FENCED:
            if intent.want_shut_down:
                return current, S.SHUTDOWN_NOW
            # Unfence only once the broker has replayed its own registration.
            if not intent.want_fence and intent.current_metadata_offset >= register_broker_offset:
                return current, S.UNFENCED
            return current, S.FENCED
        if current is S.UNFENCED:
            if intent.want_fence:
                return current, S.SHUTDOWN_NOW if intent.want_shut_down else S.FENCED
            if intent.want_shut_down:
                return current, S.CONTROLLED_SHUTDOWN if has_leaderships() else S.SHUTDOWN_NOW
            return current, S.UNFENCED
        # CONTROLLED_SHUTDOWN: wait until leaderships are gone and every active broker has
        # seen the metadata written when the shutdown began.
        if has_leaderships():
            return current, S.CONTROLLED_SHUTDOWN
        if self.sessions[broker_id].controlled_shutdown_offset <= self.lowest_active_offset():
            return current, S.SHUTDOWN_NOW
        return current, S.CONTROLLED_SHUTDOWN
