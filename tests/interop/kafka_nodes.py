"""Mixed KRaft quorums: kwire controllers and genuine Kafka controllers as the voters of
one static quorum (``controller.quorum.voters``, kraft.version 0), for tests/interop.

    plan = MixedPlan.new(tmp_path, (Kind.KWIRE, Kind.KWIRE, Kind.KAFKA), "3.9-IV0")
    with MixedQuorum(kafka, plan) as quorum:          # formatted; every process ended at exit
        quorum.start()                                # all side by side, each bounded
        leader, epoch = quorum.wait_leader(QUORUM_TIMEOUT_S)
        quorum.kill(leader)                           # kill -9 (Kafka: its process group)

Every voter gets the same property set, the one the genuine captures' controllers ran with
(../shared/captures/kafka-3.9/controller.properties: process.roles=controller, node.id,
controller.quorum.voters, one CONTROLLER listener on 127.0.0.1, log.dirs, num.partitions):
kwire reads Kafka's names, so a kwire voter and a Kafka voter differ only in node.id, port
and directory. One cluster id; kwire's nodes are formatted by ``python -m kwire.storage
format --release-version <level>``, Kafka's by ``kafka-storage.sh format -t <id> -c <file>``
without a level, which picks the release's own default (conftest.DEFAULT_RELEASE_VERSION,
the level given to kwire); with static voters Kafka 4.3 formats kraft.version 0
(StorageTool.scala: no --standalone, --initial-controllers or --no-initial-controllers).

Voter ids are 11, 12, 13 (as in the 3.9 quorum-election capture), so that the broker,
node 2 (conftest.BROKER_ID), is never taken for a voter. Agreement is read with kwire's
client: DescribeQuorum to every live voter, where exactly one answers as leader (Kafka's
KafkaRaftClient.handleDescribeQuorumRequest: the others answer NOT_LEADER_OR_FOLLOWER)
and reports every live voter's log end at or past its high watermark.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from procs_harness import topics_in_log_dir
from server_harness import HOST, KwireServer, free_port, run_kwire, write_properties

from kwire.protocol.error_codes import ErrorCode
from kwire.testing import client as testing_client

from .conftest import KafkaBroker, KafkaDistribution, copy_metadata_dir, describe

VOTER_IDS = (11, 12, 13)
KAFKA_STARTED = "Kafka Server started"  # KafkaRaftServer.startup, both release lines
NODE_START_TIMEOUT_S = 90.0  # a JVM or a Python start-up on a busy machine
QUORUM_TIMEOUT_S = 90.0  # a first election, JVM start-up included
FAILOVER_TIMEOUT_S = 30.0  # Kafka's fetch timeout (2 s) plus a few elections
REPLICATION_TIMEOUT_S = 60.0
DESCRIBE_TIMEOUT_S = 3.0


class Kind(enum.Enum):
    KWIRE = "kwire"
    KAFKA = "kafka"


@dataclass(frozen=True, slots=True)
class Voter:
    node_id: int
    kind: Kind
    port: int


@dataclass(frozen=True, slots=True)
class MixedPlan:
    """Who the voters are, where they listen, and what every node is formatted with."""

    directory: Path
    cluster_id: str
    release_version: str  # the metadata.version every voter starts at
    voters: tuple[Voter, ...]

    @classmethod
    def new(
        cls,
        directory: Path,
        kinds: Sequence[Kind],
        release_version: str,
        cluster_id: str | None = None,
    ) -> MixedPlan:
        """Voters 11, 12, ... of `kinds`, on ports free now; a new cluster id unless given
        (kwire's storage tool makes it, as kafka-storage random-uuid would)."""
        if cluster_id is None:
            made = run_kwire("kwire.storage", "random-uuid")
            assert made.returncode == 0, made.stderr
            cluster_id = made.stdout.strip()
        voters = tuple(
            Voter(node_id, kind, free_port())
            for node_id, kind in zip(VOTER_IDS, kinds, strict=False)
        )
        return cls(directory, cluster_id, release_version, voters)

    @property
    def voters_config(self) -> str:
        """controller.quorum.voters: ``id@127.0.0.1:port`` of every voter."""
        return ",".join(f"{v.node_id}@{HOST}:{v.port}" for v in self.voters)

    def voter(self, node_id: int) -> Voter:
        return next(v for v in self.voters if v.node_id == node_id)

    def ids(self, kind: Kind | None = None) -> list[int]:
        return [v.node_id for v in self.voters if kind is None or v.kind is kind]

    def node_dir(self, node_id: int) -> Path:
        return self.directory / f"{self.voter(node_id).kind.value}-{node_id}"

    def data_dir(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "data"

    def properties(self, node_id: int) -> dict[str, str]:
        """The controller.properties of voter `node_id`, kwire's or Kafka's alike."""
        port = self.voter(node_id).port
        return {
            "process.roles": "controller",
            "node.id": str(node_id),
            "controller.quorum.voters": self.voters_config,
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir(node_id)),
            "num.partitions": "1",
        }

    def kafka_format_args(self, config_path: Path) -> list[str]:
        """kafka-storage.sh's arguments: the release's default level, static voters."""
        return ["format", "-t", self.cluster_id, "-c", str(config_path)]


class KafkaController(KafkaBroker):
    """A genuine controller-only Kafka node (process.roles=controller) of a MixedPlan;
    `start` waits for "Kafka Server started" and its CONTROLLER listener. Its logs go to
    its own LOG_DIR (server.log, controller.log), its console to the output files."""

    ready_marker = KAFKA_STARTED

    def __init__(self, kafka: KafkaDistribution, plan: MixedPlan, node_id: int) -> None:
        directory = plan.node_dir(node_id)
        directory.mkdir(parents=True, exist_ok=True)
        self.kafka = dataclasses.replace(kafka, log_dir=directory / "logs")
        self.kafka.log_dir.mkdir(exist_ok=True)
        self.directory = directory
        self.node_id = node_id
        self.port = plan.voter(node_id).port
        self.cluster_id = plan.cluster_id
        self.log_dirs = plan.data_dir(node_id)
        self.format_args = plan.kafka_format_args(directory / "controller.properties")
        self.config_path = write_properties(
            directory / "controller.properties", plan.properties(node_id)
        )
        self.process = None
        self.starts = 0
        self._output = None

    def format(self) -> None:
        result = self.kafka.run("kafka-storage.sh", *self.format_args)
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka node {self.node_id} failed:\n{describe(result)}")


# -- DescribeQuorum, asked with kwire's client ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumAnswer:
    """One voter's DescribeQuorum answer for __cluster_metadata-0."""

    node_id: int
    error: int  # the partition's error code: NONE from the leader
    leader_id: int
    epoch: int
    high_watermark: int = -1
    voter_ends: Mapping[int, int] = dataclasses.field(default_factory=dict)


def describe_quorum(ports: Mapping[int, int]) -> dict[int, QuorumAnswer]:
    """Every voter's answer (node id -> answer), asked with kwire.testing.client (one
    bounded connection each); a voter that did not answer is absent."""
    found: dict[int, QuorumAnswer] = {}
    for node_id, port in ports.items():
        try:
            answer = testing_client.describe_quorum(HOST, port, timeout=DESCRIBE_TIMEOUT_S)
        except (OSError, ValueError):  # refused, closed, silent; a frame we cannot decode
            continue
        if answer.error_code or not answer.topics or not answer.topics[0].partitions:
            continue
        p = answer.topics[0].partitions[0]
        ends = {r.replica_id: r.log_end_offset for r in p.current_voters}
        found[node_id] = QuorumAnswer(
            node_id, p.error_code, p.leader_id, p.leader_epoch, p.high_watermark, ends
        )
    return found


def agreed_leader(
    answers: Mapping[int, QuorumAnswer], live: Iterable[int], voters: Iterable[int]
) -> tuple[int, int] | None:
    """(leader, epoch) when every live voter answered, exactly one as leader, listing
    every voter of `voters`, with every live voter's log end at or past its high watermark,
    and no other naming a different leader or epoch; else None."""
    live = set(live)
    if set(answers) != live:
        return None
    leaders = [a for a in answers.values() if a.error == ErrorCode.NONE]
    if len(leaders) != 1:
        return None
    lead = leaders[0]
    if lead.leader_id != lead.node_id or set(lead.voter_ends) != set(voters):
        return None
    if lead.high_watermark < 0 or any(lead.voter_ends[n] < lead.high_watermark for n in live):
        return None
    for answer in answers.values():
        if answer is lead:
            continue
        if answer.error != ErrorCode.NOT_LEADER_OR_FOLLOWER:
            return None
        # Kafka's non-leaders name no leader (leaderId 0); kwire's name the one they follow.
        if answer.leader_id > 0 and (answer.leader_id, answer.epoch) != (lead.node_id, lead.epoch):
            return None
    return lead.node_id, lead.epoch


# -- the quorum ------------------------------------------------------------------------------------


class MixedQuorum:
    """The processes of a MixedPlan; a context manager that kills every one at exit.
    With `kafka` None only kwire's voters exist (offline tests: the others stay down)."""

    def __init__(self, kafka: KafkaDistribution | None, plan: MixedPlan) -> None:
        self.plan = plan
        self.kafka = kafka
        self.kwire: dict[int, KwireServer] = {
            n: KwireServer(
                plan.node_dir(n),
                properties=plan.properties(n),
                release_version=plan.release_version,
            )
            for n in plan.ids(Kind.KWIRE)
        }
        # Without a distribution (offline tests) the Kafka voters are never there.
        self.genuine: dict[int, KafkaController] = {}
        if kafka is not None:
            self.genuine = {n: KafkaController(kafka, plan, n) for n in plan.ids(Kind.KAFKA)}

    def __enter__(self) -> MixedQuorum:
        try:
            for server in self.kwire.values():
                server.format(self.plan.cluster_id)
            for controller in self.genuine.values():
                controller.format()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for controller in self.genuine.values():
            controller.kill()
        for server in self.kwire.values():
            server.kill()

    def start(self, node_ids: Iterable[int] | None = None) -> None:
        """Start the nodes (default: all) side by side; return once each is up (Kafka's:
        "Kafka Server started", kwire's: "listening on"), each wait bounded."""
        ids = [
            n
            for n in (self.plan.ids() if node_ids is None else node_ids)
            if n in self.genuine or n in self.kwire
        ]
        try:
            for node_id in ids:
                if node_id in self.genuine:
                    self.genuine[node_id].launch()
                else:
                    self.kwire[node_id].launch()
            for node_id in ids:
                if node_id in self.genuine:
                    self.genuine[node_id].wait_ready(NODE_START_TIMEOUT_S)
                else:
                    self.kwire[node_id].wait_started(NODE_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def kill(self, node_id: int) -> None:
        """kill -9."""
        if node_id in self.genuine:
            self.genuine[node_id].kill()
        elif node_id in self.kwire:
            self.kwire[node_id].kill()

    def running(self, node_id: int) -> bool:
        if node_id in self.genuine:
            return self.genuine[node_id].running
        return node_id in self.kwire and self.kwire[node_id].running

    @property
    def live(self) -> list[int]:
        return [n for n in self.plan.ids() if self.running(n)]

    def output(self, node_id: int) -> str:
        if node_id in self.genuine:
            return self.genuine[node_id].output()
        return self.kwire[node_id].output() if node_id in self.kwire else ""

    def tails(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {self.plan.voter(n).kind.value} node {n}:\n"
            + "\n".join(self.output(n).splitlines()[-lines:])
            for n in self.plan.ids()
        )

    def wait_leader(
        self, timeout: float, *, not_id: int | None = None, above_epoch: int = 0
    ) -> tuple[int, int]:
        """(leader, epoch) once every live voter agrees (`agreed_leader`) on a leader
        other than `not_id` in an epoch above `above_epoch`; AssertionError past `timeout`."""
        deadline = time.monotonic() + timeout
        answers: dict[int, QuorumAnswer] = {}
        while time.monotonic() < deadline:
            live = self.live
            answers = describe_quorum({n: self.plan.voter(n).port for n in live})
            agreed = agreed_leader(answers, live, self.plan.ids())
            if agreed is not None and agreed[0] != not_id and agreed[1] > above_epoch:
                return agreed
            time.sleep(0.2)
        raise AssertionError(
            f"the voters did not agree on a leader within {timeout:.0f} s: {answers}\n"
            f"{self.tails()}"
        )

    # -- what each voter's log holds ---------------------------------------------------------

    def topics(self, node_id: int, scratch: Path) -> set[str]:
        """Topic names in voter `node_id`'s metadata log (a copy of its whole batches):
        kwire's read with kwire's reader, Kafka's with kafka-dump-log."""
        copy_dir = scratch / f"copy-{node_id}-{time.monotonic_ns()}"
        copies = copy_metadata_dir(self.plan.data_dir(node_id), copy_dir)
        if node_id in self.kwire:
            return topics_in_log_dir(copies[0].parent)
        assert self.kafka is not None
        dumped = self.kafka.run(
            "kafka-dump-log.sh",
            "--cluster-metadata-decoder",
            "--files",
            ",".join(map(str, copies)),
        )
        assert dumped.returncode == 0, describe(dumped)
        return set(_TOPIC_RECORD.findall(dumped.stdout))

    def wait_topic(self, name: str, node_ids: Iterable[int], scratch: Path) -> None:
        """Wait (bounded) until topic `name` is in every log of `node_ids`."""
        deadline = time.monotonic() + REPLICATION_TIMEOUT_S
        missing = set(node_ids)
        while missing:
            missing = {n for n in missing if name not in self.topics(n, scratch)}
            if missing and time.monotonic() >= deadline:
                raise AssertionError(
                    f"topic {name} not in the logs of voters {sorted(missing)} within "
                    f"{REPLICATION_TIMEOUT_S:.0f} s\n{self.tails()}"
                )
            if missing:
                time.sleep(0.5)


# kafka-dump-log --cluster-metadata-decoder prints each record's payload as JSON:
# {"type":"TOPIC_RECORD","version":0,"data":{"name":"t","topicId":"..."}}
_TOPIC_RECORD = re.compile(r'"type":"TOPIC_RECORD","version":\d+,"data":\{"name":"([^"]+)"')


def run_tool(
    kafka: KafkaDistribution, script: str, *args: str | Path
) -> subprocess.CompletedProcess[str]:
    """A Kafka script that must succeed (its output in the assertion message if not)."""
    result = kafka.run(script, *args)
    assert result.returncode == 0, describe(result)
    return result


# -- which votes crossed between kwire and Kafka ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoteSeen:
    """A Vote request as its receiver logged it. `pre_vote` is None where the receiver's
    release has no PreVote field (Kafka 3.9's VoteRequestData)."""

    receiver: int
    candidate: int
    epoch: int
    pre_vote: bool | None
    granted: bool


# KafkaRaftClient.handleVoteRequest: "Vote request {} with epoch {} is granted|rejected", the
# request's toString naming the candidate (3.9: candidateId; 4.x: replicaId) and, from 4.0,
# preVote (VoteRequest.json of each release).
_KAFKA_VOTE = re.compile(
    r"Vote request VoteRequestData\((.*?)\) with epoch (\d+) is (granted|rejected)"
)
_CANDIDATE = re.compile(r"\b(?:candidateId|replicaId)=(\d+)")
_PRE_VOTE = re.compile(r"\bpreVote=(true|false)")
# kwire.raft.election: "Node 11: pre-vote for 13 in epoch 2 granted"
_KWIRE_VOTE = re.compile(r"Node (\d+): (pre-vote|vote) for (\d+) in epoch (\d+) (granted|refused)")


def kafka_votes(receiver: int, text: str) -> list[VoteSeen]:
    """The Vote requests a Kafka controller's log (console or server.log) shows."""
    seen = []
    for request, epoch, outcome in _KAFKA_VOTE.findall(text):
        candidate = _CANDIDATE.search(request)
        pre = _PRE_VOTE.search(request)
        if candidate is None:
            continue
        pre_vote = None if pre is None else pre.group(1) == "true"
        seen.append(
            VoteSeen(receiver, int(candidate.group(1)), int(epoch), pre_vote, outcome == "granted")
        )
    return seen


def kwire_votes(text: str) -> list[VoteSeen]:
    """The Vote requests a kwire controller's log shows."""
    return [
        VoteSeen(int(node), int(candidate), int(epoch), kind == "pre-vote", outcome == "granted")
        for node, kind, candidate, epoch, outcome in _KWIRE_VOTE.findall(text)
    ]


def crossing_votes(quorum: MixedQuorum) -> list[VoteSeen]:
    """Every Vote request sent from a kwire voter to a Kafka voter or back, as logged."""
    kinds = {v.node_id: v.kind for v in quorum.plan.voters}
    seen = [v for n in quorum.kwire for v in kwire_votes(quorum.output(n))]
    seen += [v for n in quorum.genuine for v in kafka_votes(n, quorum.output(n))]
    return [v for v in seen if kinds.get(v.candidate, kinds[v.receiver]) is not kinds[v.receiver]]
