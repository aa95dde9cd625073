"""Run scenarios over seeds; a failing seed prints the one command that replays it.

`run_seed(name, seed)` is a pure function of its arguments: the same name and seed run
the same events in the same order and end the same way. Seeds run in worker processes
(`jobs`), each seed on its own, so results do not depend on how they were spread.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kwire.sim.client import SimClient, committed_topics
from kwire.sim.cluster import Cluster
from kwire.sim.invariants import InvariantViolation
from kwire.sim.node import CrashPoint
from kwire.sim.scenarios import SCENARIOS, Sim

SETTLE_MS = 500
# A node cut off before the heal may wait out a request timeout, then an election.
CATCH_UP_MS = 8000


@dataclass(frozen=True, slots=True)
class SeedResult:
    scenario: str
    seed: int
    failure: str | None  # "invariant: detail", or None when every check held
    steps: int
    virtual_ms: int
    acked: int
    crashes: int
    digest: int  # of the run's events (kwire.sim.events): equal runs have equal digests

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def replay_command(self) -> str:
        return f"python -m kwire.sim --scenario {self.scenario} --seed {self.seed}"


def run_seed(name: str, seed: int) -> SeedResult:
    """Run scenario `name` with `seed`, then settle and run the end-of-run checks."""
    scenario = SCENARIOS[name]
    cluster = Cluster(seed, scenario.config)
    rng = random.Random(cluster.rng.getrandbits(64))
    client = SimClient(cluster, random.Random(rng.getrandbits(64)))
    sim = Sim(cluster, client, rng)
    failure: str | None = None
    try:
        cluster.start()
        client.start()
        scenario.body(sim)
        settle(sim)
    except InvariantViolation as violation:
        failure = str(violation)
    return SeedResult(
        scenario=name,
        seed=seed,
        failure=failure,
        steps=cluster.events.steps,
        virtual_ms=cluster.now_ms,
        acked=len(client.acked),
        crashes=cluster.crashes,
        digest=cluster.events.digest,
    )


def settle(sim: Sim) -> None:
    """Heal, restart every node, stop faults and the client, let the quorum settle, then
    check the end-of-run promises (see kwire.sim.scenarios)."""
    cluster = sim.cluster
    cluster.network.heal()
    cluster.network.fault_free = True
    for node_id in sorted(cluster.nodes):
        cluster.nodes[node_id].crash_point = CrashPoint.NONE
        cluster.restart(node_id)
    sim.wait_for_leader()
    sim.client.stop()
    cluster.run_for(SETTLE_MS)
    leader = sim.wait_for_leader()
    target = leader.log.end_offset
    deadline = cluster.now_ms + CATCH_UP_MS
    while any(n.committed_end < target for n in cluster.live()):
        if cluster.now_ms >= deadline:
            lagging = [(n.node_id, n.committed_end) for n in cluster.live()]
            raise InvariantViolation(
                "liveness", f"not every node committed up to {target} in time: {lagging}"
            )
        cluster.run_for(20)
    leader = sim.wait_for_leader()
    leaders = [n.node_id for n in cluster.live() if n.state == "leader"]
    if leaders != [leader.node_id]:
        raise InvariantViolation("settled leadership", f"leaders after settling: {leaders}")
    cluster.check_images()
    for node in cluster.live():
        topics = committed_topics(node)
        missing = [t for t in sim.client.acked if t not in topics]
        if missing:
            raise InvariantViolation(
                "acknowledged writes",
                f"node {node.node_id}'s committed log lacks acknowledged topics {missing[:5]}",
            )


def _run_one(args: tuple[str, int]) -> SeedResult:
    return run_seed(*args)


def run_seeds(names: Iterable[str], seeds: Iterable[int], *, jobs: int = 1) -> Iterator[SeedResult]:
    """Every (scenario, seed) pair, in order; with `jobs` > 1 in that many processes."""
    work = [(name, seed) for seed in seeds for name in names]
    if jobs <= 1:
        for item in work:
            yield _run_one(item)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs) as pool:
        yield from pool.imap(_run_one, work, chunksize=8)
