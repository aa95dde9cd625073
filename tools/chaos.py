"""Crash and restart kwire nodes at random while a client writes; prove nothing is lost.

    python -m tools.chaos [--cycles 1000] [--nodes 3] [--seed S] [--max-pause-ms 2000]
                          [--max-run-ms MS] [--override KEY=VALUE ...] [--dir DIR] [--json]

A quorum of `--nodes` kwire processes (the README's server command, on 127.0.0.1 ports
picked free) runs while a client writes one-partition topics, one CreateTopics at a time,
to whichever node leads (tests/procs_harness.py). Each cycle lets the writer run a random
time (up to `--max-run-ms`), picks a random node, stops it with kill -9 or SIGTERM (even
odds), waits a random pause, restarts it and waits until a leader answers again. When the
stopped node was the leader, the failover time is taken: from the signal to the first write
a new leader acknowledges.

With `--nodes 1` (a sole voter, the README's one-node quorum) nothing serves while the node
is down, so a cycle ends only once a write sent after the restart is acknowledged, and the
restart time is taken instead: from the restart to that acknowledgement (Python start-up,
log recovery, election, activation). `--max-run-ms` defaults to 1000 there, so that each
kill -9 or SIGTERM falls at a random moment of the writes, and to 0 (stop again as soon as
a leader answers) on larger quorums. `--override` passes a setting to every node (e.g.
`metadata.log.max.record.bytes.between.snapshots=20000`, so that kills fall in snapshots).

At the end the writer stops, every node catches up with the leader's high watermark and
stops, and each node's metadata log is read back: every acknowledged write must be in
every log ("found"), and no log may hold a topic that was never sent. The last line is
`SUMMARY acked=A found=F missing=M invented=I ...`; the exit status is 0 only when
found == acked and nothing was invented. The seed is printed so that a run's choices (not
its timing) can be repeated.
The servers run as an installed kwire does: bytecode compiled once and cached (outside the
checkout), even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from procs_harness import (  # noqa: E402
    FORM_TIMEOUT_S,
    QuorumNotFormed,
    QuorumWriter,
    open_quorum,
    percentile,
    settle_and_read,
)

from kwire.testing.process import cache_bytecode_as_installed  # noqa: E402

RECOVERY_TIMEOUT_S = 60.0  # per cycle: the restarted node listens and a leader answers
SOLE_VOTER_RUN_MS = 1000  # --max-run-ms of a one-node quorum


@dataclass(slots=True)
class ChaosReport:
    """Counts are topics; failovers are seconds from the signal to the first write a new
    leader acknowledged, by how the leader was stopped ("kill" or "term"); restarts (a sole
    voter only) are seconds from a restart to the first write it acknowledged."""

    seed: int
    nodes: int
    cycles: int = 0
    acked: int = 0
    found: int = 0  # acknowledged writes present in every node's log
    missing: int = 0  # acknowledged writes absent from some node's log
    invented: int = 0  # topics in some log that were never sent
    unknown_outcome: int = 0  # writes not acknowledged (refused, lost, timed out)
    failovers: dict[str, list[float]] = field(default_factory=lambda: {"kill": [], "term": []})
    restarts: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.acked == self.found and self.invented == 0

    def summary(self) -> str:
        parts = [
            f"acked={self.acked} found={self.found} missing={self.missing}",
            f"invented={self.invented} unknown_outcome={self.unknown_outcome}",
            f"cycles={self.cycles} nodes={self.nodes} seed={self.seed}",
        ]
        timings = {f"{kind}_failover_s": times for kind, times in self.failovers.items()}
        for name, times in {**timings, "restart_s": self.restarts}.items():
            if times:
                parts.append(
                    f"{name} n={len(times)} p50={percentile(times, 0.5):.3f} "
                    f"p99={percentile(times, 0.99):.3f} max={max(times):.3f}"
                )
        if self.error:
            parts.append(f"error={self.error!r}")
        return "SUMMARY " + " ".join(parts)


async def run_chaos(
    directory: Path,
    *,
    cycles: int,
    nodes: int = 3,
    seed: int | None = None,
    max_pause_ms: int = 2000,
    max_run_ms: int | None = None,
    overrides: dict[str, str] | None = None,
    log: bool = True,
) -> ChaosReport:
    """Run `cycles` crash/restart cycles on a fresh quorum under `directory`
    (`max_run_ms` None: 1000 for a sole voter, else 0; `overrides`: every node's)."""
    if max_run_ms is None:
        max_run_ms = SOLE_VOTER_RUN_MS if nodes == 1 else 0
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    report = ChaosReport(seed=seed, nodes=nodes)
    say = print if log else (lambda *_: None)
    async with open_quorum(directory, nodes, log_level="WARNING", overrides=overrides) as quorum:
        await quorum.wait_formed(FORM_TIMEOUT_S)
        writer = QuorumWriter(quorum)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                for cycle in range(1, cycles + 1):
                    if max_run_ms:  # (no draw otherwise: older seeds repeat their choices)
                        await trio.sleep(rng.uniform(0, max_run_ms / 1000))
                    victim = rng.choice(quorum.ids)
                    how = rng.choice(("kill", "term"))
                    pause = rng.uniform(0, max_pause_ms / 1000)
                    known = quorum.probe.leader()
                    was_leader = known is not None and known[0] == victim and nodes > 1
                    stopped_at = trio.current_time()
                    await (quorum.kill if how == "kill" else quorum.stop)(victim)
                    if was_leader:
                        ack = await writer.wait_ack(
                            after=stopped_at, not_from=victim, timeout=RECOVERY_TIMEOUT_S
                        )
                        report.failovers[how].append(ack.acked - stopped_at)
                    await trio.sleep(pause)
                    started_at = trio.current_time()
                    await quorum.node(victim).start(RECOVERY_TIMEOUT_S)
                    await quorum.probe.wait_leader(timeout=RECOVERY_TIMEOUT_S)
                    failover = f" failover {report.failovers[how][-1]:.3f} s" if was_leader else ""
                    if nodes == 1:
                        ack = await writer.wait_ack(
                            after=started_at, not_from=None, timeout=RECOVERY_TIMEOUT_S
                        )
                        report.restarts.append(ack.acked - started_at)
                        failover = f" restart {report.restarts[-1]:.3f} s"
                    report.cycles = cycle
                    say(
                        f"cycle {cycle}: {how} node {victim}"
                        f"{' (leader)' if was_leader else ''}{failover}, pause {pause:.2f} s; "
                        f"{len(writer.acks)} acked"
                    )
                nursery.cancel_scope.cancel()
        except* trio.TooSlowError:
            report.error = f"cycle {report.cycles + 1}: the quorum did not recover in time"
        recovery = await settle_and_read(quorum, [writer])
        if not recovery.settled and report.error is None:
            report.error = "the quorum did not settle after the last cycle"
    report.acked = len(recovery.acked)
    report.found = len(recovery.acked.intersection(*recovery.found.values()))
    report.missing = report.acked - report.found
    report.invented = len(set().union(*recovery.invented.values()))
    report.unknown_outcome = writer.failures
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-pause-ms", type=int, default=2000)
    parser.add_argument(
        "--max-run-ms",
        type=int,
        help=f"the writer runs up to this long before each stop (default "
        f"{SOLE_VOTER_RUN_MS} with --nodes 1, else 0)",
    )
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="a node setting"
    )
    parser.add_argument("--dir", type=Path, help="keep the nodes' directories here")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args(argv)
    if args.cycles < 0 or args.nodes < 1 or args.max_pause_ms < 0 or (args.max_run_ms or 0) < 0:
        parser.error("--cycles, --max-pause-ms and --max-run-ms must be >= 0, --nodes >= 1")
    if any("=" not in item for item in args.override):
        parser.error("--override takes KEY=VALUE")
    overrides = dict(item.split("=", 1) for item in args.override)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="kwire-chaos-"))
    cache_bytecode_as_installed()  # restarts cost what they cost an installed kwire
    # SIGTERM stops a run as Ctrl-C does: the quorum's processes are stopped on the way out
    # (the default action would leave them running).
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        report = trio.run(
            lambda: run_chaos(
                directory,
                cycles=args.cycles,
                nodes=args.nodes,
                seed=args.seed,
                max_pause_ms=args.max_pause_ms,
                max_run_ms=args.max_run_ms,
                overrides=overrides,
            )
        )
    except QuorumNotFormed as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chaos: interrupted; the quorum's processes were stopped", file=sys.stderr)
        return 130
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(asdict(report)))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
