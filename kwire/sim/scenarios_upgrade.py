"""The kraft.version upgrade of a static quorum under faults (KAFKA-16538, Kafka 4.1+), a
named scenario of kwire.sim.scenarios: UpdateFeatures kraft.version=1 sent by an operator's
tool (`_Admin`) to whichever node is the active controller, retried as
`kafka-features --bootstrap-controller ... upgrade --feature kraft.version=1` is retried by
an operator until it succeeds."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.controller_registration import ControllerRegistrationRequest
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse
from kwire.raft.voter_set import KRaftVersion, ReplicaKey
from kwire.sim.cluster import CLIENT_BASE_ID, CLUSTER_ID, sim_directory_id
from kwire.sim.invariants import InvariantViolation
from kwire.sim.node import SUPPORTED_FEATURES, CrashPoint
from kwire.sim.scenarios import LEADER_WAIT_MS, Sim, _add, _everyone_caught_up, scenario

ADMIN_ID = CLIENT_BASE_ID + 500  # the network id of the operator's tool

UPGRADE_REFUSED = (
    "The update failed for all features since the following feature had an error: Invalid "
    "upgrade of kraft.version to KRAFT_VERSION_1 because not all of the voters support it"
)
UPGRADE_LIMIT_MS = 60_000  # attempts under faults, then fault-free until it succeeds


@scenario("kraft-upgrade", voters=3, directory_ids=True)
def kraft_upgrade(sim: Sim) -> None:
    """A static three-voter quorum (kraft.version 0) is upgraded to kraft.version 1 with
    UpdateFeatures while voters crash (at any point, the leader too, also with the upgrade
    batch uncommitted) and are cut off: each attempt is refused with Kafka's message until
    every voter has reported itself to the leader of the moment by UpdateRaftVoter, or
    fails over (NOT_CONTROLLER, no answer); once answered NONE every node reaches
    kraft.version 1 with the three voters and their directory ids, which restarts keep,
    and the quorum then removes a voter and adds it back (KIP-853); one leader per epoch,
    at most one uncommitted voter set, nothing committed lost."""
    cluster = sim.cluster
    admin = _Admin(sim)
    nodes = sorted(cluster.nodes)
    for node_id in nodes:  # what each controller's registration manager sends
        admin.until_none(_controller_registration(node_id))
    start = cluster.now_ms
    while True:
        faulty = cluster.now_ms - start < UPGRADE_LIMIT_MS / 2
        if faulty and sim.rng.random() < 0.5:
            victim = sim.rng.choice(nodes)
            if sim.rng.random() < 0.5:
                cluster.nodes[victim].crash_point = sim.rng.choice(list(CrashPoint))
                cluster.run_for(sim.rng.randint(0, 200))
                cluster.crash_and_restart(victim)
            else:
                cluster.network.partition({victim}, set(nodes) - {victim})
                cluster.run_for(sim.rng.randint(100, 1500))
                cluster.network.heal()
        if not faulty:
            cluster.network.heal()
        answer = admin.ask(_kraft_upgrade_request())
        match answer:
            case UpdateFeaturesResponse(error_code=0):
                break
            case UpdateFeaturesResponse(error_code=code, error_message=message) if (
                code == ErrorCode.INVALID_UPDATE_VERSION and message == UPGRADE_REFUSED
            ):
                pass
            case UpdateFeaturesResponse(error_code=code) if code == ErrorCode.NOT_CONTROLLER:
                pass
            case UpdateFeaturesResponse():
                raise InvariantViolation("upgrade answers", f"unexpected answer {answer!r}")
        if cluster.now_ms - start > UPGRADE_LIMIT_MS:
            raise InvariantViolation(
                "liveness", f"kraft.version not upgraded within {UPGRADE_LIMIT_MS} ms"
            )
        cluster.run_for(sim.rng.randint(50, 600))
    _everyone_caught_up(sim)
    _check_upgraded(sim)
    # The quorum is dynamic now: a follower is removed, then added back.
    leader = sim.wait_for_leader()
    gone = sim.rng.choice([n for n in nodes if n != leader.node_id])
    removal = RemoveRaftVoterRequest(
        cluster_id=CLUSTER_ID, voter_id=gone, voter_directory_id=sim_directory_id(gone)
    )
    admin.voter_change(removal, 1, expected_voters=set(nodes) - {gone})
    admin.voter_change(_add(gone, sim.rng), 2, expected_voters=set(nodes))
    for node_id in nodes:
        cluster.crash_and_restart(node_id)
        cluster.run_for(sim.rng.randint(0, 300))
    _everyone_caught_up(sim)
    _check_upgraded(sim)


def _check_upgraded(sim: Sim) -> None:
    """Every node at kraft.version 1 with the three voters keyed by their directory ids."""
    wanted = {ReplicaKey(i, sim_directory_id(i)) for i in sorted(sim.cluster.nodes)}
    for node in sim.cluster.nodes.values():
        core = node.core
        assert core is not None
        if core.kraft_version is not KRaftVersion.KRAFT_VERSION_1:
            raise InvariantViolation(
                "upgrade reaches every node", f"node {node.node_id} is at {core.kraft_version!r}"
            )
        if core.voter_set.voter_keys() != wanted:
            raise InvariantViolation(
                "upgrade reaches every node",
                f"node {node.node_id} has voters {sorted(map(str, core.voter_set.voter_keys()))}",
            )


def _kraft_upgrade_request() -> UpdateFeaturesRequest:
    return UpdateFeaturesRequest(
        timeout_ms=30_000,
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature="kraft.version", max_version_level=1, upgrade_type=1
            )
        ],
    )


def _controller_registration(node_id: int) -> ControllerRegistrationRequest:
    return ControllerRegistrationRequest(
        controller_id=node_id,
        incarnation_id=UUID(int=0xC0_0000 + node_id),
        zk_migration_ready=False,
        listeners=[
            ControllerRegistrationRequest.Listener(
                name="CONTROLLER", host="127.0.0.1", port=9000 + node_id, security_protocol=0
            )
        ],
        features=[
            ControllerRegistrationRequest.Feature(
                name=name, min_supported_version=low, max_supported_version=high
            )
            for name, low, high in SUPPORTED_FEATURES
        ],
    )


class _Admin:
    """An operator's tool: one request at a time to the active controller (any node when
    none is known), answered or failed; bounded in virtual time."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.answer: Any = None
        self.waiting = False
        sim.cluster.add_client(ADMIN_ID, self._on_answer)

    def _on_answer(self, answer: Any) -> None:
        self.answer, self.waiting = answer, False

    def ask(self, request: Message, limit_ms: int = 40_000) -> Any:
        cluster = self.sim.cluster
        leader = cluster.leader()
        target = (
            leader.node_id if leader is not None else self.sim.rng.choice(sorted(cluster.nodes))
        )
        self.answer, self.waiting = None, True
        cluster.network.send(ADMIN_ID, target, request)
        end = cluster.now_ms + limit_ms
        while self.waiting:
            if cluster.now_ms >= end:
                raise InvariantViolation(
                    "liveness", f"no answer to {request.NAME} in {limit_ms} ms"
                )
            cluster.run_for(10)
        return self.answer

    def until_none(self, request: Message, limit_ms: int = LEADER_WAIT_MS * 4) -> None:
        end = self.sim.cluster.now_ms + limit_ms
        while self.sim.cluster.now_ms < end:
            answer = self.ask(request)
            if getattr(answer, "error_code", None) == ErrorCode.NONE:
                return
            self.sim.cluster.run_for(100)
        raise InvariantViolation("liveness", f"{request.NAME} not accepted in {limit_ms} ms")

    def voter_change(
        self,
        request: AddRaftVoterRequest | RemoveRaftVoterRequest,
        ticket: int,
        *,
        expected_voters: set[int],
    ) -> None:
        """Send the change to the leader until it answers NONE (REQUEST_TIMED_OUT, as for a
        new voter whose connection is backing off, is retried as an operator retries);
        then every node learns the new voter set."""
        cluster = self.sim.cluster
        end = cluster.now_ms + LEADER_WAIT_MS * 2
        attempt = 0
        while True:
            leader = self.sim.wait_for_leader()
            attempt += 1
            key = ticket * 1000 + attempt
            cluster.change_voters(leader.node_id, request, key)
            while key not in leader.voter_answers and leader.alive:
                if cluster.now_ms >= end:
                    raise InvariantViolation("liveness", f"voter change {ticket} unanswered")
                cluster.run_for(10)
            answer = leader.voter_answers.get(key)
            code = getattr(answer, "error_code", None)
            if code == ErrorCode.NONE:
                break
            if code != ErrorCode.REQUEST_TIMED_OUT or cluster.now_ms >= end:
                raise InvariantViolation("dynamic after upgrade", f"{request.NAME}: {answer!r}")
            cluster.run_for(200)
        _everyone_caught_up(self.sim)
        for node in cluster.nodes.values():
            assert node.core is not None
            if set(node.core.voter_ids) != expected_voters:
                raise InvariantViolation(
                    "dynamic after upgrade",
                    f"node {node.node_id} has voters {sorted(node.core.voter_ids)} after "
                    f"{request.NAME}",
                )
