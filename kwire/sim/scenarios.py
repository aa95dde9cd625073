"""Named scenarios: each drives a simulated quorum through one kind of trouble.

Every scenario runs with a client writing (broker registration, heartbeats, CreateTopics)
through whichever node is the active controller, and under every invariant of
kwire.sim.invariants, checked after each step. Then the runner (kwire.sim.runner) heals
the network, restarts every node, lets the quorum settle, and checks what every scenario
promises at the end:
- a single leader serves, and every live node's controller image equals the replay of its
  log (state machine safety);
- every acknowledged CreateTopics is in every live node's committed log.
Each scenario's docstring states the invariant it is about.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.sim.client import SimClient
from kwire.sim.cluster import CLUSTER_ID, Cluster, ClusterConfig, sim_directory_id
from kwire.sim.invariants import InvariantViolation
from kwire.sim.network import NetworkConfig
from kwire.sim.node import CrashPoint, SimNode

LEADER_WAIT_MS = 8000
FETCH_MAX_WAIT_MS = 500  # KafkaRaftClient.MAX_FETCH_WAIT_MS


@dataclass(slots=True)
class Sim:
    """What a scenario body gets: the cluster, its client and the seeded generator."""

    cluster: Cluster
    client: SimClient
    rng: random.Random

    def wait_for_leader(self, limit_ms: int = LEADER_WAIT_MS) -> SimNode:
        """Run until some node is the active controller; a violation if none in time
        (liveness: with a majority up and connected, a leader is elected)."""
        end = self.cluster.now_ms + limit_ms
        while self.cluster.now_ms < end:
            leader = self.cluster.leader()
            if leader is not None:
                return leader
            self.cluster.run_for(10)
        raise InvariantViolation("liveness", f"no active controller within {limit_ms} ms")


Body = Callable[[Sim], None]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    body: Body
    config: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def invariant(self) -> str:
        return (self.body.__doc__ or "").strip()


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, **config: object) -> Callable[[Body], Body]:
    def register(body: Body) -> Body:
        SCENARIOS[name] = Scenario(name, body, ClusterConfig(**config))  # type: ignore[arg-type]
        return body

    return register


@scenario("election-3", voters=3)
def election_3(sim: Sim) -> None:
    """Three voters start together: exactly one leader per epoch, and once elected it
    stays leader of the same epoch while nothing fails."""
    leader = sim.wait_for_leader()
    epoch = leader.core.epoch if leader.core else -1
    sim.cluster.run_for(500)
    _assert_same_leader(sim, leader, epoch)


@scenario("election-5", voters=5)
def election_5(sim: Sim) -> None:
    """Five voters start together: exactly one leader per epoch, and it stays leader while
    nothing fails."""
    leader = sim.wait_for_leader()
    epoch = leader.core.epoch if leader.core else -1
    sim.cluster.run_for(500)
    _assert_same_leader(sim, leader, epoch)


def _assert_same_leader(sim: Sim, leader: SimNode, epoch: int) -> None:
    now = sim.cluster.leader()
    if now is not leader or (now.core is not None and now.core.epoch != epoch):
        raise InvariantViolation(
            "stable leadership",
            f"leader {leader.node_id} of epoch {epoch} lost its place on a fault-free network",
        )


@scenario("leader-crash", voters=3)
def leader_crash(sim: Sim) -> None:
    """The leader is killed (kill -9), sometimes in the middle of an append so that its
    unflushed batch is lost, and restarted: no committed record is lost or changed, a
    new leader holds every committed record, and acknowledged writes survive."""
    for _ in range(2):
        leader = sim.wait_for_leader()
        sim.cluster.run_for(sim.rng.randint(50, 400))
        if sim.rng.random() < 0.5 and leader.alive:
            leader.crash_point = CrashPoint.BEFORE_FLUSH  # dies at its next append
            sim.cluster.run_for(sim.rng.randint(0, 300))
        sim.cluster.crash_and_restart(leader.node_id)
        sim.cluster.run_for(sim.rng.randint(200, 1200))


@scenario("follower-crash", voters=3)
def follower_crash(sim: Sim) -> None:
    """Followers are killed at random points (also between an append and its fsync, and
    right after a vote is persisted) and restarted: the leader keeps committing with a
    majority, and nothing committed is lost."""
    sim.wait_for_leader()
    for _ in range(3):
        leader = sim.cluster.leader()
        followers = [n for n in sim.cluster.live() if n is not leader]
        if followers:
            victim = sim.rng.choice(followers)
            victim.crash_point = sim.rng.choice(list(CrashPoint))
            sim.cluster.run_for(sim.rng.randint(0, 200))
            sim.cluster.crash_and_restart(victim.node_id)
        sim.cluster.run_for(sim.rng.randint(100, 600))


@scenario("leader-partition", voters=3)
def leader_partition(sim: Sim) -> None:
    """The leader is cut off from the other voters: the minority leader commits nothing
    more once what was in flight has landed, resigns within 1.5 fetch timeouts (Kafka's
    check quorum, plus one MaxWaitMs for a parked Fetch), and the majority elects a new
    leader that keeps serving writes."""
    leader = sim.wait_for_leader()
    sim.cluster.run_for(sim.rng.randint(100, 500))
    if not leader.alive or leader.state != "leader":
        return
    others = {n for n in sim.cluster.nodes if n != leader.node_id}
    sim.cluster.network.partition({leader.node_id}, others)
    in_flight_ms = 2 * sim.cluster.config.network.max_delay_ms + 1
    sim.cluster.run_for(in_flight_ms)
    frozen = leader.high_watermark
    # Kafka's leader resigns once it has not heard from a majority for 1.5 fetch timeouts
    # (LeaderState's check-quorum timer); a follower's Fetch parked before the cut counts
    # as heard when the leader's own append completes it, up to MaxWaitMs later.
    check_quorum_ms = sim.cluster.config.fetch_timeout_ms * 3 // 2 + FETCH_MAX_WAIT_MS + 200
    sim.cluster.run_for(check_quorum_ms)
    if leader.alive and leader.high_watermark != frozen:
        raise InvariantViolation(
            "minority leader",
            f"node {leader.node_id} cut off from the quorum advanced its high watermark "
            f"from {frozen} to {leader.high_watermark}",
        )
    if leader.alive and leader.state == "leader":
        raise InvariantViolation(
            "minority leader",
            f"node {leader.node_id} is still leader {check_quorum_ms} ms after it was cut "
            "off from a majority",
        )
    new = sim.wait_for_leader()
    if new is leader:
        raise InvariantViolation("minority leader", "the cut-off node leads again before the heal")
    sim.cluster.run_for(500)
    sim.cluster.network.heal()


@scenario(
    "flaky-network",
    voters=3,
    network=NetworkConfig(drop_rate=0.05, duplicate_rate=0.05, reorder_rate=0.2),
)
def flaky_network(sim: Sim) -> None:
    """Messages are dropped, duplicated and reordered all along: elections stay safe, logs
    match, and whatever commits stays committed."""
    sim.cluster.run_for(5000)


@scenario("rolling-restart", voters=3)
def rolling_restart(sim: Sim) -> None:
    """Each voter in turn is stopped (kill -9) and restarted once a leader serves: the
    quorum keeps its committed log and a leader comes back after every restart."""
    for node_id in sorted(sim.cluster.nodes):
        sim.wait_for_leader()
        sim.cluster.run_for(sim.rng.randint(50, 300))
        sim.cluster.crash_and_restart(node_id)
        sim.cluster.run_for(sim.rng.randint(100, 800))


@scenario("graceful-resign", voters=3)
def graceful_resign(sim: Sim) -> None:
    """The leader resigns (EndQuorumEpoch) and shuts down, as on SIGTERM: the other voters
    elect a new leader that holds every committed record, without waiting for the fetch
    timeout."""
    leader = sim.wait_for_leader()
    sim.cluster.run_for(sim.rng.randint(50, 300))
    if not leader.alive:
        return
    sim.cluster.resign(leader.node_id)
    sim.cluster.run_for(sim.rng.randint(5, 30))
    sim.cluster.crash(leader.node_id)
    new = sim.wait_for_leader(limit_ms=sim.cluster.config.fetch_timeout_ms)
    if new is leader:
        raise InvariantViolation("graceful resign", "the resigned node still leads")
    sim.cluster.run_for(300)
    sim.cluster.restart(leader.node_id)


@scenario("resign-cut-follower", voters=3)
def resign_cut_follower(sim: Sim) -> None:
    """The leader shuts down gracefully (as on SIGTERM: it resigns, waits at most one
    fast-failover step for its first successor, and stops once another voter leads) while a
    follower, maybe the one it names first, is cut off from it alone or from every voter:
    the connected voters elect a new leader holding every committed record, the shutdown
    ends well within its timeout, the new leader serves once a majority of live voters
    connects (at once when only the link to the stopped leader was cut), and nothing
    committed is lost."""
    leader = sim.wait_for_leader()
    sim.cluster.run_for(sim.rng.randint(300, 1000))
    if not leader.alive or leader.state != "leader":
        return
    network = sim.cluster.network
    followers = sorted(n for n in sim.cluster.nodes if n != leader.node_id)
    cut = sim.rng.choice(followers)
    isolated = sim.rng.random() < 0.5
    if isolated:
        network.partition({cut}, set(sim.cluster.nodes) - {cut})
    else:
        network.cut_link(leader.node_id, cut)
        network.cut_link(cut, leader.node_id)
    sim.cluster.run_for(sim.rng.randint(0, 100))
    if not leader.alive or leader.state != "leader":
        return
    sim.cluster.resign(leader.node_id)
    # The other connected voter stands within a few fast-failover steps (D, 50 ms here)
    # and needs only the resigned leader's vote: seen at most 90 ms over 400 seeds. (It
    # took up to the cut voter's fetch timeout, 2 s, while a refusal that came before the
    # resigned leader's grant lost each fast pre-vote round.)
    limit_ms = 10 * min(50, sim.cluster.config.election_timeout_ms // 10)
    end = sim.cluster.now_ms + limit_ms
    while leader.alive and not _shutdown_complete(leader) and sim.cluster.now_ms < end:
        sim.cluster.run_for(5)
    if not leader.alive:
        return
    if not _shutdown_complete(leader):
        raise InvariantViolation(
            "graceful shutdown",
            f"node {leader.node_id} still waits for another leader {limit_ms} ms after it "
            f"resigned with node {cut} cut off",
        )
    sim.cluster.crash(leader.node_id)
    if isolated:
        # The new leader and the stopped one were the majority: the new epoch commits
        # only once the cut voter is back.
        network.heal()
    sim.wait_for_leader(limit_ms=sim.cluster.config.fetch_timeout_ms)
    sim.cluster.run_for(500)
    network.heal()
    sim.cluster.restart(leader.node_id)


def _shutdown_complete(node: SimNode) -> bool:
    return node.core is not None and node.core.shutdown_complete


@scenario("restart-storm", voters=3, restart_delay_ms=(5, 150))
def restart_storm(sim: Sim) -> None:
    """Voters are killed and restarted every few hundred milliseconds, often right after
    they persisted a vote: a restarted voter never votes twice in one epoch (its vote is
    durable before it is answered), so no epoch ever has two leaders."""
    end = sim.cluster.now_ms + 3000
    while sim.cluster.now_ms < end:
        victim = sim.cluster.nodes[sim.rng.choice(sorted(sim.cluster.nodes))]
        if victim.alive:
            victim.crash_point = sim.rng.choice(
                [CrashPoint.AFTER_PERSIST, CrashPoint.AFTER_VOTE, CrashPoint.NONE]
            )
            sim.cluster.run_for(sim.rng.randint(0, 150))
            sim.cluster.crash_and_restart(victim.node_id)
        sim.cluster.run_for(sim.rng.randint(50, 400))


@scenario(
    "chaos",
    voters=3,
    network=NetworkConfig(drop_rate=0.02, duplicate_rate=0.02, reorder_rate=0.1),
)
def chaos(sim: Sim) -> None:
    """Crashes (at any point, unflushed data lost), partitions of any shape and a flaky
    network together: every invariant holds at every step."""
    end = sim.cluster.now_ms + 6000
    nodes = sorted(sim.cluster.nodes)
    while sim.cluster.now_ms < end:
        roll = sim.rng.random()
        if roll < 0.45:
            victim = sim.cluster.nodes[sim.rng.choice(nodes)]
            if victim.alive:
                victim.crash_point = sim.rng.choice(list(CrashPoint))
                sim.cluster.run_for(sim.rng.randint(0, 100))
                sim.cluster.crash_and_restart(victim.node_id)
        elif roll < 0.7:
            group = set(sim.rng.sample(nodes, sim.rng.randint(1, len(nodes) // 2)))
            sim.cluster.network.partition(group, set(nodes) - group)
        else:
            sim.cluster.network.heal()
        sim.cluster.run_for(sim.rng.randint(100, 900))


@scenario("failover-flapping-voters", voters=5, restart_delay_ms=(5, 60))
def failover_flapping_voters(sim: Sim) -> None:
    """The leader is killed and every voter, the restarted leader too, dies right after
    granting a vote and comes straight back, so that candidates of one epoch retry them:
    a voter's vote survives its restart (it is persisted before it is answered), so it
    never votes for a second candidate of the same epoch and no epoch has two leaders."""
    for _ in range(2):
        leader = sim.wait_for_leader()
        sim.cluster.run_for(sim.rng.randint(20, 200))
        if not leader.alive:
            continue
        sim.cluster.crash_and_restart(leader.node_id)
        for voter in sim.cluster.nodes.values():
            voter.crash_point = CrashPoint.AFTER_VOTE
        sim.cluster.run_for(sim.rng.randint(300, 900))
        for voter in sim.cluster.nodes.values():
            voter.crash_point = CrashPoint.NONE


@scenario("voter-changes", voters=3, dynamic=True, spares=2)
def voter_changes(sim: Sim) -> None:
    """A dynamic quorum (KIP-853) adds spare nodes as voters and removes voters, the leader
    too, while a follower crashes (at any point) or is cut off during the change and the
    leader is killed between changes: at most one voter change is ever uncommitted in a
    leader's log, every commit is held by a majority of the voter set in force, one leader
    per epoch, nothing committed is lost, and every node learns the new voter set."""
    cluster = sim.cluster
    nodes = sorted(cluster.nodes)
    for ticket in range(1, 4):
        leader = sim.wait_for_leader()
        assert leader.core is not None
        voters = leader.core.voter_set.voter_ids()
        others = [n for n in nodes if n not in voters]
        if others and (len(voters) <= 2 or sim.rng.random() < 0.5):
            cluster.change_voters(leader.node_id, _add(sim.rng.choice(others), sim.rng), ticket)
        else:
            gone = sim.rng.choice(sorted(voters))
            request = RemoveRaftVoterRequest(
                cluster_id=CLUSTER_ID, voter_id=gone, voter_directory_id=sim_directory_id(gone)
            )
            cluster.change_voters(leader.node_id, request, ticket)
        removes_leader = leader.node_id not in leader.core.voter_set.voter_ids()
        if not removes_leader and sim.rng.random() < 0.5:
            # A second change while the first is pending (refused: one at a time).
            second = sim.rng.choice(sorted(voters))
            again = RemoveRaftVoterRequest(
                cluster_id=CLUSTER_ID, voter_id=second, voter_directory_id=sim_directory_id(second)
            )
            cluster.change_voters(leader.node_id, again, 100 + ticket)
        # One fault on a follower while the change is in flight.
        followers = [n for n in nodes if n != leader.node_id]
        victim = cluster.nodes[sim.rng.choice(followers)]
        cluster.run_for(sim.rng.randint(0, 30))
        if sim.rng.random() < 0.5:
            victim.crash_point = sim.rng.choice(list(CrashPoint))
            cluster.run_for(sim.rng.randint(0, 50))
            cluster.crash_and_restart(victim.node_id)
        else:
            cluster.network.partition({victim.node_id}, set(nodes) - {victim.node_id})
        cluster.run_for(sim.rng.randint(100, 800))
        cluster.network.heal()
        _everyone_caught_up(sim)
        if sim.rng.random() < 0.4:  # between changes, the leader is killed
            now = sim.wait_for_leader()
            cluster.crash_and_restart(now.node_id)
            cluster.run_for(sim.rng.randint(200, 800))
            _everyone_caught_up(sim)


def _add(node_id: int, rng: random.Random) -> AddRaftVoterRequest:
    return AddRaftVoterRequest(
        cluster_id=CLUSTER_ID,
        voter_id=node_id,
        voter_directory_id=sim_directory_id(node_id),
        listeners=[
            AddRaftVoterRequest.Listener(name="CONTROLLER", host="127.0.0.1", port=9000 + node_id)
        ],
        ack_when_committed=rng.random() < 0.8,
    )


def _everyone_caught_up(sim: Sim, limit_ms: int = LEADER_WAIT_MS) -> None:
    """Run until every node is up and has committed the leader's log end (liveness: a
    node that missed a voter change learns it from the leader)."""
    cluster = sim.cluster
    end = cluster.now_ms + limit_ms
    while cluster.now_ms < end:
        leader = cluster.leader()
        if (
            leader is not None
            and all(n.alive for n in cluster.nodes.values())
            and all(n.committed_end >= leader.log.end_offset for n in cluster.nodes.values())
        ):
            return
        cluster.run_for(20)
    lagging = [(n.node_id, n.alive, n.committed_end) for n in cluster.nodes.values()]
    raise InvariantViolation("liveness", f"nodes did not catch up in {limit_ms} ms: {lagging}")


@scenario("voter-changes-leader-kills", voters=3, dynamic=True, spares=2)
def voter_changes_leader_kills(sim: Sim) -> None:
    """Voter changes with the leader killed at any moment, the change still in flight
    included (before its VotersRecord is appended, replicated or committed): a new leader
    either carries the uncommitted change to commit or truncates it away, never both on
    different nodes; a leader cut off from the others resigns; one leader per epoch, at most one uncommitted change in a leader's
    log, every commit held by a majority of the voter set in force, nothing committed
    lost, and the quorum elects again (liveness)."""
    cluster = sim.cluster
    nodes = sorted(cluster.nodes)
    for ticket in range(1, 5):
        leader = sim.wait_for_leader()
        assert leader.core is not None
        voters = leader.core.voter_set.voter_ids()
        others = [n for n in nodes if n not in voters]
        if others and (len(voters) <= 2 or sim.rng.random() < 0.5):
            request: AddRaftVoterRequest | RemoveRaftVoterRequest = _add(
                sim.rng.choice(others), sim.rng
            )
        else:
            gone = sim.rng.choice(sorted(voters))
            request = RemoveRaftVoterRequest(
                cluster_id=CLUSTER_ID, voter_id=gone, voter_directory_id=sim_directory_id(gone)
            )
        cluster.change_voters(leader.node_id, request, ticket)
        # The leader dies at a random moment of the change: 0 ms (before any replica has
        # fetched the VotersRecord) up to well after its commit.
        cluster.run_for(sim.rng.choice([0, 1, 5, 20, 60, 150, 400]))
        if sim.rng.random() < 0.3:  # or cut off: a minority leader must resign
            cluster.network.partition({leader.node_id}, set(nodes) - {leader.node_id})
        elif leader.alive:
            leader.crash_point = sim.rng.choice(list(CrashPoint))
            cluster.run_for(sim.rng.randint(0, 20))
            cluster.crash_and_restart(leader.node_id)
        if sim.rng.random() < 0.3:  # and sometimes a follower with it
            follower = cluster.nodes[sim.rng.choice([n for n in nodes if n != leader.node_id])]
            cluster.crash_and_restart(follower.node_id)
        cluster.run_for(sim.rng.randint(100, 2500))
        cluster.network.heal()
        _everyone_caught_up(sim)


# Scenarios kept in their own modules register themselves on import.
from kwire.sim import scenarios_upgrade  # noqa: E402, F401
