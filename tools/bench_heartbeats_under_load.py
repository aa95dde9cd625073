"""Heartbeat latency of 1,000 brokers while a large CreateTopics burst runs (issue 10, item 4).

    python -m tools.bench_heartbeats_under_load [--quick] [--compare /work/main]

Starts a one-node kwire server (`python -m kwire.server`, formatted at 3.9-IV0) in a
temporary directory, then runs the two load tools of `../shared/tools` against it at the
same time: `heartbeat_load.py` (N simulated brokers registering, then heartbeating every
2 s) and, once they are registered, `controller_bench.py --seq 0 --keep` with batches of
25 topics x 100 partitions RF 3 back to back. Prints the heartbeat latency p50/p99/max
during the burst, the burst's partitions/s, the server's CPU seconds over the whole load
(less sensitive than wall time to other load on the machine), and how many of the simulated brokers the
controller fenced during the run (FenceBrokerRecord or BrokerRegistrationChangeRecord
fenced=1 in the log before the load ended; counted after the server is stopped).

`--compare ROOT` runs the same load, back to back in this one run, against the kwire of
another checkout (its root first on PYTHONPATH) and prints both rows and their ratios;
`--rounds N` alternates the two N times.
`--quick` is a short variant (200 brokers, 8 batches, 15 s). `--batches N` sets the burst
(400 batches is issue 10's 1,000,000 partitions), `--duration S` how long the fleet
heartbeats (give it longer than the burst lasts) and `--brokers N` the fleet's size. Each
row also gives the server's own account of its loop (LoopStallWatch: task steps of 100 ms
or more, their total and the longest, with the task that took it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_TOOLS = REPO.parent / "shared" / "tools"
FLEET_FIRST_ID = 1000
BENCH_FIRST_ID = 100
START_TIMEOUT_S = 60.0

# The metadata log is read with the kwire of the checkout being measured (in a child, so
# that this process imports nothing of either).
COUNT_FENCES = """
import sys
from kwire.log import MetadataLog
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.fence_broker_record import FenceBrokerRecord
from kwire.records import unframe_metadata_record

path, first, last, until_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fenced = 0
with MetadataLog.open(__import__("pathlib").Path(path)) as log:
    for batch in log.read_batches(log.log_start_offset):
        if batch.is_control or batch.base_timestamp > until_ms:
            continue
        for record in batch.records:
            api_key, version, body = unframe_metadata_record(record.value or b"")
            if api_key not in (FenceBrokerRecord.API_KEY, BrokerRegistrationChangeRecord.API_KEY):
                continue
            message = METADATA_RECORDS[api_key].decode(body, version)
            if isinstance(message, FenceBrokerRecord):
                broker = message.id
            elif message.fenced == 1:
                broker = message.broker_id
            else:
                continue
            fenced += first <= broker <= last
print(fenced)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadShape:
    brokers: int
    batches: int
    duration_s: float


FULL = LoadShape(brokers=1000, batches=40, duration_s=40.0)
QUICK = LoadShape(brokers=200, batches=8, duration_s=15.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    root: Path
    p50_ms: float
    p99_ms: float
    max_ms: float
    heartbeats: int
    partitions_per_s: float
    cpu_s: float
    fenced: int
    errors: str
    stalls: str

    def row(self) -> str:
        return (
            f"{str(self.root):<28} heartbeat p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:8.2f} ms"
            f"  max {self.max_ms:8.2f} ms  ({self.heartbeats} heartbeats)  "
            f"burst {self.partitions_per_s:8.0f} partitions/s  server CPU {self.cpu_s:6.1f} s  "
            f"fenced {self.fenced}  errors {self.errors}\n    server loop: {self.stalls}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}


def start_server(root: Path, directory: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """Format and start a one-node kwire of checkout `root`; (process, port, cluster id)."""
    port = free_port()
    props = directory / "controller.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{port}",
                f"listeners=CONTROLLER://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                f"log.dirs={directory / 'data'}",
                "",
            ]
        )
    )
    env = child_env(root)
    cluster_id = subprocess.run(
        [sys.executable, "-m", "kwire.storage", "random-uuid"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "kwire.storage", "format", "-c", str(props), "-t", cluster_id]
        + ["--release-version", "3.9-IV0"],
        env=env,
        check=True,
        capture_output=True,
    )
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kwire.server", str(props)],
        env=env,
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(directory / 'server.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port, cluster_id
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start listening in time")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in:\n{text}")
    return float(found.group(1))


def run_load(root: Path, shape: LoadShape) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="kwire-hb-") as temp:
        directory = Path(temp)
        server, port, cluster_id = start_server(root, directory)
        address = f"127.0.0.1:{port}"
        cpu_at_start = cpu_seconds(server.pid)
        try:
            heartbeats = subprocess.Popen(
                [sys.executable, str(SHARED_TOOLS / "heartbeat_load.py"), "--controller", address]
                + ["--cluster-id", cluster_id, "--brokers", str(shape.brokers)]
                + ["--interval-ms", "2000", "--duration", str(shape.duration_s)]
                + ["--first-id", str(FLEET_FIRST_ID)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert heartbeats.stdout is not None
            registered = heartbeats.stdout.readline()  # printed once every broker registered
            burst = subprocess.Popen(
                [sys.executable, str(SHARED_TOOLS / "controller_bench.py"), "--controller"]
                + [address, "--cluster-id", cluster_id, "--seq", "0", "--keep"]
                + ["--batches", str(shape.batches), "--topics-per-batch", "25"]
                + ["--partitions", "100", "--rf", "3", "--first-id", str(BENCH_FIRST_ID)],
                stdout=subprocess.PIPE,
                text=True,
            )
            load = registered + heartbeats.communicate(timeout=shape.duration_s + 120)[0]
            # The fleet stops heartbeating now: fencings after this are the session timeout
            # of brokers that left, not of the load.
            until_ms = time.time_ns() // 1_000_000
            bench = burst.communicate(timeout=3600)[0]
            if burst.returncode != 0:
                raise RuntimeError(f"controller_bench.py failed: {bench}")
            cpu_s = cpu_seconds(server.pid) - cpu_at_start
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        stalls = re.search(
            r"The event loop was blocked (.*)", (directory / "server.log").read_text()
        )
        fenced = subprocess.run(
            [sys.executable, "-c", COUNT_FENCES, str(directory / "data" / "__cluster_metadata-0")]
            + [str(FLEET_FIRST_ID), str(FLEET_FIRST_ID + shape.brokers - 1), str(until_ms)],
            env=child_env(root),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    load = next(line for line in load.splitlines() if line.startswith("heartbeats "))
    return Outcome(
        root=root,
        p50_ms=number(r"latency p50 ([\d.]+) ms p99", load),
        p99_ms=number(r"ms p99 ([\d.]+) ms max", load),
        max_ms=number(r"max ([\d.]+) ms; unfenced", load),
        heartbeats=int(number(r"heartbeats (\d+) over", load)),
        partitions_per_s=number(r"= (\d+) partitions/s", bench),
        cpu_s=cpu_s,
        fenced=int(fenced),
        errors=re.search(r"errors (\{[^}]*\})", load).group(1),  # type: ignore[union-attr]
        stalls=stalls.group(1) if stalls else "(no summary in the server's log)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 brokers, 8 batches, 15 s")
    parser.add_argument("--compare", type=Path, help="another checkout's root, run alternately")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each checkout")
    parser.add_argument("--batches", type=int, help="CreateTopics of 2,500 partitions each")
    parser.add_argument("--duration", type=float, help="seconds the fleet heartbeats")
    parser.add_argument("--brokers", type=int, help="simulated brokers in the fleet")
    args = parser.parse_args(argv)
    if not (SHARED_TOOLS / "heartbeat_load.py").exists():
        print(f"the load tools are not at {SHARED_TOOLS}", file=sys.stderr)
        return 2
    shape = QUICK if args.quick else FULL
    shape = LoadShape(
        brokers=args.brokers or shape.brokers,
        batches=args.batches or shape.batches,
        duration_s=args.duration or shape.duration_s,
    )
    print(
        f"{shape.brokers} brokers heartbeating every 2 s for {shape.duration_s:.0f} s, while "
        f"{shape.batches} CreateTopics of 25 topics x 100 partitions RF 3 run back to back"
    )
    ours: list[Outcome] = []
    for _ in range(args.rounds):
        ours.append(run_load(REPO, shape))
        print(ours[-1].row(), flush=True)
        if args.compare is not None:
            other = run_load(args.compare.resolve(), shape)
            print(other.row(), flush=True)
            this = ours[-1]
            print(
                f"ratio (this / {other.root.name}): p50 {this.p50_ms / other.p50_ms:.2f}  "
                f"p99 {this.p99_ms / other.p99_ms:.2f}  max {this.max_ms / other.max_ms:.2f}  "
                f"partitions/s {this.partitions_per_s / other.partitions_per_s:.2f}  "
                f"server CPU {this.cpu_s / other.cpu_s:.2f}",
                flush=True,
            )
    fenced = sum(outcome.fenced for outcome in ours)
    worst = max(ours, key=lambda outcome: outcome.p99_ms)
    print(
        f"SUMMARY p50_ms={worst.p50_ms:.2f} p99_ms={worst.p99_ms:.2f} "
        f"max_ms={worst.max_ms:.2f} fenced={fenced}"
    )
    return 0 if fenced == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
