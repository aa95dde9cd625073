"""The outbound requests of one node (Kafka's RequestManager), per destination voter.

Rules kept here:
- At most one current request per destination (Kafka's RequestManager), and never two of
  one kind: a request forgotten at a transition (RequestManager.resetAll: its answer will
  be dropped) still holds its kind's slot until it resolves, so the edge never sees two
  requests of one kind out to one destination. The cost: after a transition, a new request
  of that kind to that destination waits for the old one's answer or failure.
- A request that failed, or whose answer could not be handled, backs its destination off
  for `retry_backoff_ms`; a TIMEOUT frees it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kwire.raft.state import OutboundRequest


@dataclass(slots=True)
class Connection:
    """One destination: its current request, forgotten ones still out, a backoff end."""

    current: OutboundRequest | None = None
    forgotten: list[OutboundRequest] = field(default_factory=list)
    backoff_until_ms: int = -1


class RequestManager:
    def __init__(self, retry_backoff_ms: int) -> None:
        self.retry_backoff_ms = retry_backoff_ms
        self.connections: dict[int, Connection] = {}

    def connection(self, destination: int) -> Connection:
        return self.connections.setdefault(destination, Connection())

    def ready(self, destination: int, kind: type, now_ms: int) -> bool:
        conn = self.connections.get(destination)
        if conn is None:
            return True
        return (
            conn.current is None
            and now_ms >= conn.backoff_until_ms
            and not any(type(r) is kind for r in conn.forgotten)
        )

    def backing_off(self, destination: int, now_ms: int) -> bool:
        conn = self.connections.get(destination)
        return conn is not None and conn.current is None and now_ms < conn.backoff_until_ms

    def any_in_flight(self) -> bool:
        return any(c.current is not None for c in self.connections.values())

    def sent(self, destination: int, request: OutboundRequest) -> None:
        self.connection(destination).current = request

    def take_answer(self, destination: int, request: OutboundRequest) -> bool:
        """Whether the answer to `request` is expected; frees its slot either way."""
        conn = self.connections.get(destination)
        if conn is None:
            return False
        if conn.current is request:
            conn.current = None
            return True
        conn.forgotten = [r for r in conn.forgotten if r is not request]
        return False

    def backoff(self, destination: int, now_ms: int) -> None:
        self.connection(destination).backoff_until_ms = now_ms + self.retry_backoff_ms

    def reset_connections(self) -> None:
        for conn in self.connections.values():
            if conn.current is not None:
                conn.forgotten.append(conn.current)
                conn.current = None
            conn.backoff_until_ms = -1
