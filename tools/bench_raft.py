"""Failover time, commit latency and committed records/s of a kwire quorum, beside Kafka's.

    python -m tools.bench_raft [--nodes 3] [--rounds 20] [--seconds 10] [--writers 8]
                               [--topics N] [--quick] [--dir DIR] [--json]

A quorum of `--nodes` kwire processes (the README's server command, Kafka's default
timeouts: election 1 s, fetch 2 s) on 127.0.0.1, driven by tests/procs_harness.py: a probe
asks every voter DescribeQuorum every 10 ms (as Kafka's controller was measured), and a
client writes one-partition topics (CreateTopics, one at a time) to the leader.

- commit latency: from sending a CreateTopics to its answer NONE, which kwire sends only
  once the topic's records are committed (a majority has them on disk), over `--seconds`;
- committed records/s: `--writers` clients writing at once for `--seconds`; each topic is
  two records (TopicRecord, PartitionRecord);
- failover: `--rounds` times kill -9 of the leader, then as many SIGTERMs of the leader
  (graceful: EndQuorumEpoch); "elected" is from the signal to a new leader answering
  DescribeQuorum, "served" to the first write a new leader acknowledged. The stopped
  node is restarted and caught up before the next round.
- `--topics N` first creates N one-partition topics (500 per CreateTopics), so that every
  figure is taken with an image of that size (failover must not grow with it).

Kafka's figures are those recorded beside this project (the issue: kill -9 of Kafka 3.9's
active controller, median 2.8 to 3.6 s on two days; ../shared/tools/README.md: one
CreateTopics at a time to one Kafka 3.9 controller, p50 31.2 ms, p99 47.5 ms; 11,426
partitions/s in batches of 50 topics of 10 partitions). Absolute figures vary from machine
to machine; a loaded machine slows every process start and every fsync.
`--quick`: 3 rounds of each, 2 s windows.
The servers run as an installed kwire does: bytecode compiled once and cached (outside the
checkout), even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from procs_harness import (  # noqa: E402
    FORM_TIMEOUT_S,
    Connections,
    Quorum,
    QuorumNotFormed,
    QuorumWriter,
    open_quorum,
    percentile,
)

from kwire.protocol.error_codes import ErrorCode  # noqa: E402
from kwire.protocol.messages.create_topics import (  # noqa: E402
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from kwire.testing.process import cache_bytecode_as_installed  # noqa: E402

ROUND_TIMEOUT_S = 60.0
RECORDS_PER_TOPIC = 2  # TopicRecord + PartitionRecord of a one-partition topic
KAFKA_KILL9_MEDIAN_S = (2.8, 3.6)
KAFKA_COMMIT_P50_MS = 31.2
KAFKA_COMMIT_P99_MS = 47.5
KAFKA_PARTITIONS_PER_S = 11_426
PRELOAD_BATCH = 500  # topics per CreateTopics when preloading with --topics


@dataclass(slots=True)
class BenchReport:
    """Seconds for failovers, milliseconds for commit latencies."""

    nodes: int
    rounds: int
    topics: int = 0  # topics created before measuring (--topics)
    elected: dict[str, list[float]] = field(default_factory=lambda: {"kill": [], "term": []})
    served: dict[str, list[float]] = field(default_factory=lambda: {"kill": [], "term": []})
    commit_ms: list[float] = field(default_factory=list)
    writes_per_s: float = 0.0
    records_per_s: float = 0.0


async def measure_commit_latency(writer: QuorumWriter, seconds: float) -> list[float]:
    start = len(writer.acks)
    await trio.sleep(seconds)
    return [(a.acked - a.sent) * 1000 for a in writer.acks[start:]]


async def measure_throughput(quorum: Quorum, writers: int, seconds: float) -> float:
    """Writes acknowledged per second with `writers` clients writing at once."""
    clients = [QuorumWriter(quorum, f"w{i}", broker=False) for i in range(writers)]
    async with trio.open_nursery() as nursery:
        for client in clients:
            await nursery.start(client.run)
        counts = sum(len(c.acks) for c in clients)
        began = trio.current_time()
        await trio.sleep(seconds)
        done = sum(len(c.acks) for c in clients) - counts
        elapsed = trio.current_time() - began
        nursery.cancel_scope.cancel()
    return done / elapsed


async def preload(quorum: Quorum, topics: int) -> None:
    """Create `topics` one-partition topics named p-0, p-1, ... at the leader, in batches of
    PRELOAD_BATCH; a batch refused or unanswered (a leader change) is sent again."""
    connections = Connections(quorum, "kwire-bench-preload")
    try:
        for start in range(0, topics, PRELOAD_BATCH):
            names = [f"p-{i}" for i in range(start, min(start + PRELOAD_BATCH, topics))]
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=name, num_partitions=1, replication_factor=1
                    )
                    for name in names
                ],
                timeout_ms=30_000,
            )
            while True:
                leader, _ = await quorum.probe.wait_leader(timeout=ROUND_TIMEOUT_S)
                answer = await connections.request(leader, request, 7, timeout=30.0)
                if isinstance(answer, CreateTopicsResponse) and all(
                    t.error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)
                    for t in answer.topics
                ):
                    break
                await trio.sleep(0.1)
    finally:
        await connections.close()


async def failover_round(quorum: Quorum, writer: QuorumWriter, how: str) -> tuple[float, float]:
    """Stop the leader (kill -9 or SIGTERM); (elected, served) seconds; restart it."""
    probe = quorum.probe
    leader, epoch = await probe.wait_leader(timeout=ROUND_TIMEOUT_S)
    stopped_at = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(quorum.kill if how == "kill" else quorum.stop, leader)
        _, new_epoch = await probe.wait_leader(
            timeout=ROUND_TIMEOUT_S, not_id=leader, above_epoch=epoch
        )
        elected = next(t for t, n, e in probe.leaders if t > stopped_at and n != leader)
        ack = await writer.wait_ack(after=stopped_at, not_from=leader, timeout=ROUND_TIMEOUT_S)
    await quorum.node(leader).start(ROUND_TIMEOUT_S)
    await trio.sleep(0.2)
    await probe.wait_caught_up(probe.high_watermark(), timeout=ROUND_TIMEOUT_S)
    await trio.sleep(0.5)  # let the restarted node settle as a follower
    return elected - stopped_at, ack.acked - stopped_at


async def run_bench(
    directory: Path,
    *,
    nodes: int,
    rounds: int,
    seconds: float,
    writers: int,
    topics: int = 0,
    log: bool = True,
) -> BenchReport:
    say = print if log else (lambda *_: None)
    report = BenchReport(nodes=nodes, rounds=rounds, topics=topics)
    async with open_quorum(directory, nodes, log_level="WARNING") as quorum:
        await quorum.wait_formed(FORM_TIMEOUT_S)
        writer = QuorumWriter(quorum)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            if topics:
                writer.paused = True
                await preload(quorum, topics)
                await quorum.probe.wait_caught_up(
                    quorum.probe.high_watermark(), timeout=ROUND_TIMEOUT_S
                )
                writer.paused = False
                say(f"preloaded {topics} topics")
            report.commit_ms = await measure_commit_latency(writer, seconds)
            say(f"commit latency: {len(report.commit_ms)} writes")
            writer.paused = True
            report.writes_per_s = await measure_throughput(quorum, writers, seconds)
            report.records_per_s = report.writes_per_s * RECORDS_PER_TOPIC
            writer.paused = False
            say(f"throughput: {report.writes_per_s:.0f} writes/s")
            for how in ("kill", "term") if nodes > 1 else ():
                for index in range(rounds):
                    elected, served = await failover_round(quorum, writer, how)
                    report.elected[how].append(elected)
                    report.served[how].append(served)
                    say(f"{how} round {index + 1}: elected {elected:.3f} s, served {served:.3f} s")
            nursery.cancel_scope.cancel()
    return report


def _row(name: str, kwire: str, kafka: str, ratio: str) -> str:
    return f"{name:<44} {kwire:>12} {kafka:>22} {ratio:>14}"


def render(report: BenchReport) -> str:
    lines = [
        f"kwire quorum of {report.nodes}, Kafka's default timeouts, "
        f"{report.topics:,} topics created beforehand; ratio: how many times "
        "kwire is better (>1) or worse (<1) than Kafka",
        _row("", "kwire", "Kafka 3.9", "ratio"),
    ]
    for how, label in (("kill", "kill -9"), ("term", "SIGTERM")):
        served, elected = report.served[how], report.elected[how]
        if not served:
            continue
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            kafka, ratio = "not recorded", ""
            value = percentile(served, fraction)
            if how == "kill" and name == "p50":
                low, high = KAFKA_KILL9_MEDIAN_S
                kafka = f"{low}-{high} s (median)"
                ratio = f"{low / value:.1f}-{high / value:.1f}x"
            lines.append(
                _row(f"{label} to a committed write, {name}", f"{value:.3f} s", kafka, ratio)
            )
        lines.append(_row(f"{label} to a committed write, max", f"{max(served):.3f} s", "", ""))
        lines.append(
            _row(
                f"{label} to a new leader elected, p50", f"{percentile(elected, 0.5):.3f} s", "", ""
            )
        )
    for name, fraction, kafka_ms in (
        ("p50", 0.5, KAFKA_COMMIT_P50_MS),
        ("p99", 0.99, KAFKA_COMMIT_P99_MS),
    ):
        value = percentile(report.commit_ms, fraction)
        lines.append(
            _row(
                f"commit latency (CreateTopics, 1 topic), {name}",
                f"{value:.1f} ms",
                f"{kafka_ms} ms (1 node)",
                f"{kafka_ms / value:.1f}x",
            )
        )
    lines.append(
        _row(
            "committed records/s",
            f"{report.records_per_s:,.0f}",
            f"{KAFKA_PARTITIONS_PER_S:,} partitions/s",
            f"{report.records_per_s / KAFKA_PARTITIONS_PER_S:.2f}x",
        )
    )
    lines.append(
        "(Kafka's commit latency and partitions/s were measured on one controller, the "
        "latter in batches of 500 partitions; kwire's here with every write committed by "
        f"{report.nodes // 2 + 1} of {report.nodes} voters, one topic per CreateTopics.)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--topics", type=int, default=0, help="topics to create first")
    parser.add_argument("--quick", action="store_true", help="3 rounds each, 2 s windows")
    parser.add_argument("--dir", type=Path, help="keep the nodes' directories here")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 2.0
    if args.nodes < 1 or args.rounds < 0 or args.seconds <= 0 or args.writers < 1:
        parser.error("--nodes and --writers must be >= 1, --rounds >= 0, --seconds > 0")
    if args.topics < 0:
        parser.error("--topics must be >= 0")
    directory = args.dir or Path(tempfile.mkdtemp(prefix="kwire-bench-raft-"))
    cache_bytecode_as_installed()  # restarts cost what they cost an installed kwire
    try:
        report = trio.run(
            lambda: run_bench(
                directory,
                nodes=args.nodes,
                rounds=args.rounds,
                seconds=args.seconds,
                writers=args.writers,
                topics=args.topics,
            )
        )
    except QuorumNotFormed as exc:
        print(f"bench_raft: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    print(render(report))
    if args.json:
        print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
