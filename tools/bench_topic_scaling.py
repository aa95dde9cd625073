"""One-topic CreateTopics requests/s as the cluster grows (issue 10, item 5: flat cost).

    python -m tools.bench_topic_scaling [--sizes 1000 10000 100000] [--requests 300]
                                        [--repo PATH ...] [--profile DIR] [--quick]

For each checkout named by ``--repo`` (default: this one) and each size, a one-node kwire
server runs from that checkout (``python -m kwire.server``, formatted at 3.9-IV0, on a
free port of 127.0.0.1) and one simulated broker registers and heartbeats every 250 ms,
so that it is unfenced and can hold replicas. Each server is filled with one-partition
topics (batches of 1,000 in one CreateTopics) up to its size. Then, in ``--rounds``
rounds that visit every server in turn, ``--requests``/``--rounds`` CreateTopics of one
topic (1 partition, replication factor 1) go one at a time; a server's rate is its best
round. Every size and checkout is thus measured at the same moments, so the ratios of one
run compare them on a shared, noisy machine (absolute figures do not).

The last line, ``SUMMARY``, gives each checkout's rates and its smallest rate over its
largest: 1.00 is perfectly flat, the issue asks for >= 0.80. ``--profile DIR`` runs each
server under cProfile (``DIR/<checkout>-<size>.prof``, written at its SIGTERM).
``--quick``: sizes 1,000 and 10,000, 100 requests.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import trio

from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.server.client import KafkaClient

HOST = "127.0.0.1"
BROKER_ID = 1
FILL_BATCH = 1000
START_TIMEOUT_S = 30.0
REPO = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Server:
    """One kwire server run from ``repo`` in ``directory``."""

    repo: Path
    directory: Path
    size: int
    profile: Path | None = None
    port: int = 0
    cluster_id: str = ""
    process: subprocess.Popen[bytes] | None = None
    rates: list[float] = field(default_factory=list)
    topics: int = 0

    def _run(self, *args: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(self.repo)}
        done = subprocess.run(
            [sys.executable, "-m", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "controller.properties"
        config.write_text(
            "process.roles=controller\nnode.id=1\ncontroller.listener.names=CONTROLLER\n"
            f"controller.quorum.voters=1@{HOST}:{self.port}\n"
            f"listeners=CONTROLLER://{HOST}:{self.port}\n"
            f"log.dirs={self.directory / 'data'}\n"
        )
        self.cluster_id = self._run("kwire.storage", "random-uuid")
        self._run(
            "kwire.storage", "format", "-c", str(config), "-t", self.cluster_id,
            "--release-version", "3.9-IV0",
        )  # fmt: skip
        command = [sys.executable]
        if self.profile is not None:
            command += ["-m", "cProfile", "-o", str(self.profile)]
        command += ["-m", "kwire.server", str(config)]
        log = open(self.directory / "server.log", "wb")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(
            command,
            cwd=self.repo,
            env={**os.environ, "PYTHONPATH": str(self.repo)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"listening on" not in (self.directory / "server.log").read_bytes():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"kwire from {self.repo} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def keep_broker_alive(server: Server, task_status: trio.TaskStatus[None]) -> None:
    """Register broker 1, heartbeat until unfenced (then report started) and on."""
    client = await KafkaClient.connect(HOST, server.port, "bench-broker")
    registration = BrokerRegistrationRequest(
        broker_id=BROKER_ID,
        cluster_id=server.cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        log_dirs=[uuid.uuid4()],
    )
    answer = await client.request(registration, 4)
    assert isinstance(answer, BrokerRegistrationResponse) and answer.error_code == 0, answer
    heartbeat = BrokerHeartbeatRequest(
        broker_id=BROKER_ID, broker_epoch=answer.broker_epoch, current_metadata_offset=2**62
    )
    started = False
    while True:
        reply = await client.request(heartbeat, 1)
        assert isinstance(reply, BrokerHeartbeatResponse) and reply.error_code == 0, reply
        if not started and not reply.is_fenced:
            started = True
            task_status.started()
        await trio.sleep(0.25 if started else 0.05)


def create_request(names: list[str]) -> CreateTopicsRequest:
    return CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(name=n, num_partitions=1, replication_factor=1)
            for n in names
        ],
        timeout_ms=30_000,
    )


async def create(client: KafkaClient, names: list[str]) -> None:
    answer = await client.request(create_request(names), 7)
    assert isinstance(answer, CreateTopicsResponse)
    failed = [t for t in answer.topics if t.error_code != 0]
    if failed:
        raise RuntimeError(f"CreateTopics failed: {failed[0].error_code} {failed[0].error_message}")


async def fill(server: Server, client: KafkaClient) -> None:
    while server.topics < server.size:
        count = min(FILL_BATCH, server.size - server.topics)
        await create(client, [f"fill.{server.topics + i}" for i in range(count)])
        server.topics += count


async def measure(server: Server, client: KafkaClient, requests: int) -> None:
    names = [f"one_{len(server.rates)}_{i}" for i in range(requests)]
    started = time.perf_counter()
    for name in names:
        await create(client, [name])
    server.rates.append(requests / (time.perf_counter() - started))
    server.topics += requests


async def run(servers: list[Server], requests: int, rounds: int) -> None:
    async with trio.open_nursery() as nursery:
        clients = []
        for server in servers:
            await nursery.start(keep_broker_alive, server)
            clients.append(await KafkaClient.connect(HOST, server.port, "bench-topics"))
        for server, client in zip(servers, clients, strict=True):
            await fill(server, client)
        for _ in range(rounds):
            for server, client in zip(servers, clients, strict=True):
                await measure(server, client, max(1, requests // rounds))
        for server in servers:
            print(f"{server.repo.name}: {server.size:>8} topics: {max(server.rates):6.0f} req/s")
        for client in clients:
            await client.aclose()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repo", type=Path, action="append")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.requests = [1000, 10_000], 100
    repos = [r.resolve() for r in args.repo or [REPO]]
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="kwire-scaling-") as tmp:
        servers = []
        for n, repo in enumerate(repos):
            for size in sizes:
                profile = None
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile = (args.profile / f"{n}-{size}.prof").resolve()
                directory = Path(tmp) / f"{n}-{size}"
                servers.append(Server(repo=repo, directory=directory, size=size, profile=profile))
        try:
            for server in servers:
                server.start()
            trio.run(run, servers, args.requests, args.rounds)
        finally:
            for server in servers:
                server.stop()
    parts = []
    for n, repo in enumerate(repos):
        best = [max(s.rates) for s in servers[n * len(sizes) : (n + 1) * len(sizes)]]
        rates = ",".join(f"{r:.0f}" for r in best)
        parts.append(f"repo{n}={repo} rates={rates} flatness={min(best) / max(best):.2f}")
    print("SUMMARY " + " ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
