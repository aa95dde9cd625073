"""Restart time and memory of a kwire node at N partitions: from the process's start until
a CreateTopics is answered, over its newest snapshot and the log after it.

    python -m tools.bench_startup [--partitions 10000 100000 1000000] [--repeat 1] [--quick]
                                  [--cold]

Each size gets a data directory written by ``tools.startup_data`` (topics of 100
partitions, replication factor 3 over ``--brokers`` brokers, a snapshot plus a tail of 10
topics in the log). Then ``python -m kwire.server`` starts on it in a fresh process, and
this tool connects as soon as the port accepts and sends one CreateTopics (a new topic,
one partition); the reported figures are taken when it is answered:

- seconds from the spawn to the answer (interpreter start and imports included, as
  Kafka's figures include the JVM's; bytecode cached, as installed), and the CPU seconds the server used until then
  (steadier than wall time on a shared machine);
- peak RSS (the kernel's VmHWM for the process);
- then, in another fresh process, the seconds (wall and CPU) to build the node and make
  its controller active, imports excluded: the load itself.

The summary gives how each figure grows from size to size, and the memory per partition:
the growth of the peak RSS between the smallest and the largest size, divided by the
partitions added. ``--quick`` runs 2,000 and 20,000 partitions (for CI). ``--cold`` runs
every process without a bytecode cache (each compiles kwire from source, as a checkout
with ``PYTHONDONTWRITEBYTECODE`` set does) instead of with a warm one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kwire.protocol.framing import decode_response, encode_request, size_prefixed
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.headers import RequestHeader
from tools.startup_data import generate

REPO = Path(__file__).parents[1]
HOST = "127.0.0.1"
# Kafka 3.9's own controller restarted over a like cluster (issue 10's table).
KAFKA_3_9 = {100_000: "6.2 s (at ~111,000)", 1_000_000: "62.8 s, 3.9 GB RSS"}
TIMEOUT_S = 600.0
CREATE_TOPICS_VERSION = 7
PYCACHE = str(Path(tempfile.gettempdir()) / "kwire-bench-pycache")


@dataclass(frozen=True, slots=True)
class Restart:
    partitions: int
    seconds: float  # spawn to CreateTopics answered
    cpu_seconds: float  # the server's user + system CPU until then
    peak_rss_mib: float
    error_code: int  # of the CreateTopics answer
    load_seconds: float = 0.0  # the node built and active, imports excluded (wall)
    load_cpu_seconds: float = 0.0  # the same, in CPU seconds


# Builds the node (snapshot and log loaded, controller active) in a fresh process, after
# its imports; prints wall and CPU seconds.
LOAD_CHILD = """
import json, resource, sys, time
from pathlib import Path
from kwire.server.__main__ import build_settings
from kwire.server.node import ControllerNode
from tools.startup_data import node_config
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, t0 = cpu(), time.perf_counter()
node = ControllerNode(build_settings(node_config(Path(sys.argv[1]), int(sys.argv[2]))))
node.start()
print(json.dumps([time.perf_counter() - t0, cpu() - c0]))
node.close()
"""


def load(data: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to build and activate the node over ``data``, imports aside."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, str(data), str(free_port())],
        env=child_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall, cpu = json.loads(out.strip().splitlines()[-1])
    return float(wall), float(cpu)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _create_topics(port: int, deadline: float) -> int:
    """Connect once the port accepts, send one CreateTopics, return its error code."""
    while True:
        try:
            sock = socket.create_connection((HOST, port), timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not accept connections in time") from None
            time.sleep(0.01)
    with sock:
        sock.settimeout(max(deadline - time.monotonic(), 1.0))
        header = RequestHeader(
            request_api_key=CreateTopicsRequest.API_KEY,
            request_api_version=CREATE_TOPICS_VERSION,
            correlation_id=1,
            client_id="bench-startup",
        )
        body = CreateTopicsRequest(
            topics=[
                CreateTopicsRequest.CreatableTopic(
                    name="bench-fresh", num_partitions=1, replication_factor=3
                )
            ]
        )
        sock.sendall(size_prefixed(encode_request(header, body)))
        buffer = b""
        while len(buffer) < 4 or len(buffer) < 4 + int.from_bytes(buffer[:4], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        size = int.from_bytes(buffer[:4], "big")
        _, response = decode_response(
            buffer[4 : 4 + size], CreateTopicsRequest.API_KEY, CREATE_TOPICS_VERSION
        )
    return int(response.topics[0].error_code)  # type: ignore[attr-defined]


def restart(data: Path, partitions: int) -> Restart:
    """Start a server on ``data`` (written by tools.startup_data), measure until its
    CreateTopics answer, stop it."""
    port = free_port()
    properties = data.parent / f"controller-{port}.properties"
    properties.write_text(
        "".join(f"{key}={value}\n" for key, value in config_properties(data, port).items())
    )
    started = time.monotonic()
    with (data.parent / "server.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kwire.server", str(properties), "--log-level", "WARNING"],
            stdout=out,
            stderr=out,
            env=child_env(),
        )
    try:
        error_code = _create_topics(port, started + TIMEOUT_S)
        seconds = time.monotonic() - started
        rss = _status_kib(process.pid, "VmHWM") / 1024
        cpu = _cpu_seconds(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return Restart(partitions, seconds, cpu, rss, error_code)


COLD = False  # set by --cold: no bytecode cache


def child_env() -> dict[str, str]:
    """The server's environment: this checkout first on the path, and compiled bytecode
    cached (outside the checkout) as an installed kwire has it: a process that compiles
    every module from source spends seconds on that alone. With ``COLD``, no cache at all
    (neither read nor written)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": PYCACHE}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if COLD:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "kwire-bench-no-pycache")
    return env


def warm_bytecode_cache() -> None:
    subprocess.run(
        [sys.executable, "-c", "import kwire.server.__main__"], env=child_env(), check=True
    )


def config_properties(data: Path, port: int) -> dict[str, str]:
    """The properties ``tools.startup_data.node_config`` holds, as a file gives them."""
    return {
        "process.roles": "controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{port}",
        "listeners": f"CONTROLLER://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(data),
    }


def measure(partitions: int, *, brokers: int = 3, repeat: int = 1) -> Restart:
    """The best of ``repeat`` restarts (by CPU seconds) over ``partitions`` partitions."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, partitions, brokers=brokers)
        runs = [restart(data, partitions) for _ in range(repeat)]
        best = min(runs, key=lambda r: r.cpu_seconds)
        loads = [load(data) for _ in range(repeat)]
        wall, cpu = min(loads, key=lambda pair: pair[1])
        return dataclasses.replace(best, load_seconds=wall, load_cpu_seconds=cpu)


def report(results: list[Restart]) -> list[str]:
    lines = [
        f"{'partitions':>10} {'to serving':>11} {'server CPU':>11} {'peak RSS':>10} "
        f"{'load':>9} {'load CPU':>9}  answer  Kafka 3.9"
    ]
    for r in results:
        theirs = KAFKA_3_9.get(r.partitions, "")
        lines.append(
            f"{r.partitions:>10,} {r.seconds:>9.2f} s {r.cpu_seconds:>9.2f} s "
            f"{r.peak_rss_mib:>6.0f} MiB {r.load_seconds:>7.2f} s {r.load_cpu_seconds:>7.2f} s "
            f"{r.error_code:>6}  {theirs}"
        )
    for a, b in zip(results, results[1:], strict=False):
        lines.append(
            f"{a.partitions:,} -> {b.partitions:,} partitions (x{b.partitions / a.partitions:.0f}): "
            f"time x{b.seconds / a.seconds:.1f}, CPU x{b.cpu_seconds / max(a.cpu_seconds, 1e-3):.1f}, "
            f"peak RSS x{b.peak_rss_mib / a.peak_rss_mib:.1f}"
        )
    if len(results) >= 2:
        first, last = results[0], results[-1]
        per = (last.peak_rss_mib - first.peak_rss_mib) * 1024 * 1024
        per /= last.partitions - first.partitions
        lines.append(f"memory per partition: {per:.0f} bytes (peak RSS growth / partitions added)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 partitions")
    parser.add_argument("--cold", action="store_true", help="no bytecode cache: compile at start")
    args = parser.parse_args()
    sizes = [2_000, 20_000] if args.quick else sorted(args.partitions)
    global COLD
    COLD = args.cold
    if not COLD:
        warm_bytecode_cache()
    results = []
    for partitions in sizes:
        results.append(measure(partitions, brokers=args.brokers, repeat=args.repeat))
        print(report(results)[len(results)], flush=True)
    print("\n".join(report(results)))


if __name__ == "__main__":
    main()
