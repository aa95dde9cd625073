"""A simulated quorum: N `SimNode`s, a `Network`, a virtual clock and the invariants.

Everything random comes from one `random.Random(seed)`: network delays and faults, each
node's election jitter (a generator seeded from it per node and incarnation), the
controllers' topic ids, and whatever a scenario draws. Events run in (time, order of
scheduling) order, and no decision depends on the iteration order of a set or dict of
non-deterministic values, so a seed replays exactly.

After every event `Cluster.step` checks the invariants (kwire.sim.invariants); a violation
raises `InvariantViolation` out of the step that broke it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from kwire.controller.controller import ControllerConfig
from kwire.protocol._codec import Message
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.raft.core import RaftConfig
from kwire.raft.state import NO_DIRECTORY_ID, Voter
from kwire.raft.voter_set import (
    SUPPORTED_KRAFT_VERSIONS,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
)
from kwire.sim.events import EventQueue
from kwire.sim.invariants import History, check_images
from kwire.sim.network import Failure, Network, NetworkConfig, PendingRequest
from kwire.sim.node import CrashPoint, Disk, NodeCrashed, SimNode

CLUSTER_ID = "c2ltdWxhdGVkLWt3aXJlAA"
CLIENT_BASE_ID = 1000
_POLL_LABELS = tuple(f"poll {i}" for i in range(10))  # network ids of simulated clients start here


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """`voters` vote from the start; with `dynamic` (kraft.version 1, KIP-853) the voter set
    is a bootstrap VotersRecord of them and `spares` more nodes start as observers that
    scenarios may add as voters."""

    voters: int = 3
    dynamic: bool = False
    # A static quorum whose nodes have directory ids and listeners as Kafka 4.x nodes do
    # (what a kraft.version upgrade needs); a dynamic quorum always has them.
    directory_ids: bool = False
    spares: int = 0
    network: NetworkConfig = NetworkConfig()
    election_timeout_ms: int = 1000
    election_backoff_max_ms: int = 1000
    fetch_timeout_ms: int = 2000
    request_timeout_ms: int = 2000
    fast_failover: bool = True
    restart_delay_ms: tuple[int, int] = (50, 400)


Handler = Callable[[Any], None]


class Cluster:
    """The simulated quorum; scenarios drive it (crash, restart, partition, run_for)."""

    def __init__(self, seed: int, config: ClusterConfig = ClusterConfig()) -> None:
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        self.events = EventQueue()
        self.network = Network(
            self.events, self.rng, _with_timeout(config.network, config.request_timeout_ms)
        )
        self.network.on_request = self._on_request
        self.network.on_response = self._on_response
        self.network.on_failure = self._on_failure
        self.history = History()
        voters = tuple(
            Voter(node_id=i, host="127.0.0.1", port=9000 + i) for i in range(1, config.voters + 1)
        )
        ids = tuple(v.node_id for v in voters)
        self.controller_config = ControllerConfig(quorum_node_ids=ids)
        self.history.controller_config = self.controller_config
        self.nodes: dict[int, SimNode] = {}
        everyone = range(1, config.voters + (config.spares if config.dynamic else 0) + 1)
        bootstrap = VoterSet.from_nodes(sim_voter_node(i) for i in ids) if config.dynamic else None
        identified = config.dynamic or config.directory_ids
        for node_id in everyone:
            raft_config = RaftConfig(
                node_id=node_id,
                cluster_id=CLUSTER_ID,
                voters=() if config.dynamic else voters,
                voter_set=bootstrap,
                directory_id=sim_directory_id(node_id) if identified else NO_DIRECTORY_ID,
                local_endpoints=sim_voter_node(node_id).endpoints if identified else (),
                election_timeout_ms=config.election_timeout_ms,
                election_backoff_max_ms=config.election_backoff_max_ms,
                fetch_timeout_ms=config.fetch_timeout_ms,
                request_timeout_ms=config.request_timeout_ms,
                fast_failover=config.fast_failover,
            )
            self.nodes[node_id] = SimNode(
                raft_config,
                self.controller_config,
                self.network,
                Disk(),
                self.rng.getrandbits(32),
                observer=self.history,
            )
        for node in self.nodes.values():
            node.peers = self.nodes
        self._armed: dict[int, int] = {}  # node id -> time of its scheduled poll
        self.clients: dict[int, Handler] = {}  # client id -> response handler
        self.crashes = 0
        self.lost_offsets = 0

    # -- running ------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.events.now_ms

    def start(self) -> None:
        for node_id in sorted(self.nodes):
            self._guard(node_id, lambda node: node.start(self.now_ms), starting=True)

    def run_until(self, end_ms: int) -> None:
        """Run every event up to `end_ms` (virtual), then set the clock there."""
        self.events.run_until(end_ms)
        self.events.now_ms = max(self.events.now_ms, end_ms)

    def run_for(self, ms: int) -> None:
        self.run_until(self.now_ms + ms)

    def at(self, at_ms: int, run: Callable[[], None], label: str = "") -> None:
        self.events.at(at_ms, run, label)

    # -- nodes ----------------------------------------------------------------------------------

    def live(self) -> list[SimNode]:
        return [n for _, n in sorted(self.nodes.items()) if n.alive]

    def leader(self) -> SimNode | None:
        """The live node whose controller serves writes, of the highest epoch."""
        leaders = [n for n in self.live() if n.state == "leader" and n.controller_active]
        return max(leaders, key=lambda n: n.core.epoch if n.core else -1, default=None)

    def crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.alive:
            self.crashes += 1
            self.lost_offsets += node.crash()
            self._armed.pop(node_id, None)

    def restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.alive:
            self.history.node_restarted(node_id, node.log)
            self._guard(node_id, lambda n: n.start(self.now_ms), starting=True)

    def crash_and_restart(self, node_id: int) -> None:
        self.crash(node_id)
        low, high = self.config.restart_delay_ms
        self.events.after(self.rng.randint(low, high), lambda: self.restart(node_id), "restart")

    def change_voters(
        self, node_id: int, request: AddRaftVoterRequest | RemoveRaftVoterRequest, ticket: int
    ) -> None:
        """An administrator's AddRaftVoter or RemoveRaftVoter, sent to `node_id`."""
        self._guard(node_id, lambda node: node.change_voters(request, ticket, self.now_ms))

    def resign(self, node_id: int) -> None:
        self._guard(node_id, lambda node: node.resign(self.now_ms))

    def _guard(
        self, node_id: int, step: Callable[[SimNode], None], *, starting: bool = False
    ) -> None:
        """Run one step of a live node (or its start); an armed crash point crashes it;
        then answer what its parked fetches were waiting for and re-arm its timer."""
        node = self.nodes[node_id]
        if node.alive == starting:
            return
        try:
            step(node)
            node.service_parked(self.now_ms)
        except NodeCrashed:
            node.crash_point = CrashPoint.NONE  # a crash point fires once
            self.crash_and_restart(node_id)
            return
        self._arm(node)

    def _arm(self, node: SimNode) -> None:
        if not node.alive:
            return
        deadline = max(node.next_deadline_ms(), self.now_ms)
        armed = self._armed.get(node.node_id)
        if armed is not None and armed <= deadline:
            return
        self._armed[node.node_id] = deadline
        incarnation = node.incarnation

        def fire() -> None:
            if not node.alive or node.incarnation != incarnation:
                return
            if self._armed.get(node.node_id) != deadline:
                return
            del self._armed[node.node_id]
            self._guard(node.node_id, lambda n: n.poll(self.now_ms))

        self.events.at(deadline, fire, _POLL_LABELS[node.node_id % 10])

    # -- network glue ---------------------------------------------------------------------------

    def _on_request(self, pending: PendingRequest, duplicate: bool) -> None:
        destination = pending.destination
        if destination >= CLIENT_BASE_ID:
            return
        if pending.source >= CLIENT_BASE_ID:

            def answer(response: Message) -> None:
                self.network.respond(pending, response)

            self._guard(
                destination, lambda node: node.handle_client(pending.request, answer, self.now_ms)
            )
            return
        self._guard(destination, lambda node: node.handle_request(pending, self.now_ms))

    def _on_response(self, pending: PendingRequest, response: Any) -> None:
        if pending.source >= CLIENT_BASE_ID:
            self.clients[pending.source](response)
            return
        self._guard(
            pending.source, lambda node: node.handle_response(pending, response, self.now_ms)
        )

    def _on_failure(self, pending: PendingRequest, failure: Failure) -> None:
        if pending.source >= CLIENT_BASE_ID:
            self.clients[pending.source](failure)
            return
        self._guard(pending.source, lambda node: node.handle_failure(pending, failure, self.now_ms))

    def add_client(self, client_id: int, handler: Handler) -> None:
        self.clients[client_id] = handler
        self.network.node_started(client_id, 1)

    # -- end-of-run checks ------------------------------------------------------------------

    def check_images(self) -> None:
        for node in self.live():
            check_images(node, self.controller_config, self.history.replays)


def sim_directory_id(node_id: int) -> UUID:
    """A simulated node's directory id (fixed, so that a seed replays)."""
    return UUID(int=0xD1_0000 + node_id)


def sim_voter_node(node_id: int) -> VoterNode:
    """A simulated node as a VotersRecord names it."""
    return VoterNode(
        ReplicaKey(node_id, sim_directory_id(node_id)),
        (VoterEndpoint("CONTROLLER", "127.0.0.1", 9000 + node_id),),
        SUPPORTED_KRAFT_VERSIONS,
    )


def _with_timeout(config: NetworkConfig, request_timeout_ms: int) -> NetworkConfig:
    from dataclasses import replace

    return replace(config, request_timeout_ms=request_timeout_ms)
