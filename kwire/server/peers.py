"""Outbound connections: where what the raft core asks to send goes, following the voter set.

Kafka's raft client talks to every node through one NetworkClient (RaftManager), keyed by
node: the voters, the bootstrap servers (ids -2, -3, ..., KafkaRaftClient) and a voter
being added. `Peers` holds one `PeerChannel` (kwire.server.peer_channel: connection,
ApiVersions, one request in flight, failures) per (destination id, address).

Rules:
- Where a request goes (`Peers.send`): to the endpoint the core names (a voter being
  added, a bootstrap server), else to the destination's endpoint in the CURRENT voter set
  (`VoterDirectory`: the raft core), so voters a VotersRecord added are reachable. A
  destination that is neither is failed at once with CONNECTION_REFUSED.
- Channels follow the voter set: one is kept open to every other voter (checked on every
  send and every `SWEEP_S`); a voter whose endpoint changed gets a new channel and the old
  one is closed; the channel of a node that left the voter set is closed; a channel opened
  for an endpoint the core named is closed once idle for ``connections.max.idle.ms``
  (RaftManager's Selector closes idle connections after the server's
  ``connections.max.idle.ms``). Closing a channel reports what was queued or in flight on
  it as CONNECTION_LOST, so the core never waits for an answer that cannot come.
- Channels run in Peers' own nursery, started on demand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import trio

from kwire.protocol._codec import Message
from kwire.protocol.framing import DEFAULT_MAX_FRAME_BYTES
from kwire.raft.state import SendFailure, Voter
from kwire.raft.voter_set import VoterEndpoint
from kwire.server.client_security import PLAINTEXT, ClientSecurity
from kwire.server.peer_channel import (
    MAX_QUEUED,
    PeerChannel,
    PeerEvent,
    ResponseReceived,
    SendFailed,
    choose_version,
    raft_client_id,
)

__all__ = [
    "MAX_QUEUED",
    "PeerChannel",
    "PeerEvent",
    "Peers",
    "ResponseReceived",
    "SendFailed",
    "VoterDirectory",
    "choose_version",
    "raft_client_id",
]

log = logging.getLogger("kwire.peers")

CONNECTIONS_MAX_IDLE_MS = 600_000  # the server's connections.max.idle.ms (RaftManager's Selector)
SWEEP_S = 1.0  # how often Peers checks its channels against the voter set


class VoterDirectory(Protocol):
    """Who the voters are now (the raft core: `RaftCore.voter_ids`, `RaftCore.voter`)."""

    @property
    def voter_ids(self) -> frozenset[int]: ...

    def voter(self, node_id: int) -> Voter | None: ...


@dataclass(slots=True)
class _Entry:
    channel: PeerChannel
    explicit: bool  # opened for an endpoint the core named, not from the voter set
    last_send: float  # trio time of the last send through it


class Peers:
    """The channels of one node: one per (destination, address), following the voter set
    that `directory` gives (module docstring); `run` runs them until cancelled."""

    def __init__(
        self,
        node_id: int,
        directory: VoterDirectory,
        *,
        request_timeout_ms: int,
        deliver: trio.MemorySendChannel[PeerEvent],
        max_response_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        idle_ms: int = CONNECTIONS_MAX_IDLE_MS,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.node_id = node_id
        self.security = security
        self.directory = directory
        self.request_timeout_ms = request_timeout_ms
        self.deliver = deliver
        self.max_response_bytes = max_response_bytes
        self.idle_s = idle_ms / 1000
        self._entries: dict[Voter, _Entry] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def channels(self) -> dict[Voter, PeerChannel]:
        """The open channels, by (destination id, host, port)."""
        return {key: entry.channel for key, entry in self._entries.items()}

    def send(
        self, destination: int, request: Message, endpoint: VoterEndpoint | None = None
    ) -> None:
        """Send `request` to `endpoint` if given, else to `destination`'s endpoint in the
        current voter set; the answer or failure comes back on the inbox with
        `destination`."""
        if endpoint is not None:
            key: Voter | None = Voter(node_id=destination, host=endpoint.host, port=endpoint.port)
        else:
            key = self.directory.voter(destination) if destination != self.node_id else None
        if key is None:
            # Not a voter we know, and no address given: nothing can be sent there.
            event = SendFailed(
                destination=destination, request=request, failure=SendFailure.CONNECTION_REFUSED
            )
            try:
                self.deliver.send_nowait(event)
            except trio.WouldBlock:
                log.error("Inbox full: the failure of a request to %d is lost", destination)
            return
        entry = self._channel(key, explicit=endpoint is not None)
        entry.last_send = _now()
        entry.channel.send(request)
        if endpoint is None:
            self._close_stale(destination, keep=key)

    def follow_voters(self) -> None:
        """Open a channel to every other voter, close those of nodes that left the voter
        set or moved, and those opened for an endpoint that stayed idle too long."""
        voters = {
            v.node_id: v
            for i in self.directory.voter_ids
            if i != self.node_id and (v := self.directory.voter(i)) is not None
        }
        for voter in voters.values():
            self._channel(voter, explicit=False)
        now = _now()
        for key, entry in list(self._entries.items()):
            if voters.get(key.node_id) == key:
                continue
            if entry.explicit and (entry.channel.busy or now - entry.last_send < self.idle_s):
                continue
            self._close(key)

    def _channel(self, key: Voter, *, explicit: bool) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            channel = PeerChannel(
                key,
                client_id=raft_client_id(self.node_id),
                request_timeout_ms=self.request_timeout_ms,
                deliver=self.deliver,
                max_response_bytes=self.max_response_bytes,
                security=self.security,
            )
            entry = _Entry(channel, explicit, _now())
            self._entries[key] = entry
            if self._nursery is not None:
                self._nursery.start_soon(channel.run)
        elif explicit:
            entry.explicit = True
        return entry

    def _close_stale(self, destination: int, *, keep: Voter) -> None:
        """`destination` is a voter at `keep`: its channels to other addresses, unless
        opened for an endpoint and still in use, are closed."""
        for key, entry in list(self._entries.items()):
            if key.node_id == destination and key != keep and not entry.explicit:
                self._close(key)

    def _close(self, key: Voter) -> None:
        entry = self._entries.pop(key)
        log.info(
            "Closing the channel to %d at %s:%d: not a voter there (or idle)",
            key.node_id,
            key.host,
            key.port,
        )
        entry.channel.close()

    async def run(self) -> None:
        """Run the channels (started on demand) and follow the voter set every `SWEEP_S`,
        until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for entry in self._entries.values():
                    nursery.start_soon(entry.channel.run)
                while True:
                    self.follow_voters()
                    await trio.sleep(SWEEP_S)
            finally:
                self._nursery = None


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside Trio (a node driven in-process): no idle clock
        return 0.0
