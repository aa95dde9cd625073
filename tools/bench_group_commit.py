"""Concurrent one-topic CreateTopics against a one-node kwire: writes/s and latency.

    python -m tools.bench_group_commit [--clients 1 16] [--writes 100] [--compare /work/main]

For each client count, starts a fresh one-node server (as `tools.bench_heartbeats_under_load`
does), registers and unfences one broker, then has every client send one-topic,
one-partition CreateTopics back to back, each waiting for its answer. With group commit,
writes that arrive together share an fsync, so writes/s grows with the clients while a
lone client's latency stays one fsync. `--compare ROOT` runs the same, back to back in this
one run, against another checkout's kwire and prints the ratios.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.server.client import KafkaClient
from tools.bench_heartbeats_under_load import REPO, start_server

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    root: Path
    clients: int
    writes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


async def unfence_broker(port: int, cluster_id: str) -> None:
    client = await KafkaClient.connect(HOST, port)
    registration = BrokerRegistrationRequest(
        broker_id=1,
        cluster_id=cluster_id,
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
        rack=None,
        log_dirs=[uuid.uuid4()],
    )
    registered = await client.request(registration, 4)
    assert isinstance(registered, BrokerRegistrationResponse)
    epoch = registered.broker_epoch
    heartbeat = BrokerHeartbeatRequest(
        broker_id=1, broker_epoch=epoch, current_metadata_offset=epoch, want_fence=False
    )
    answer = await client.request(heartbeat, 1)
    assert isinstance(answer, BrokerHeartbeatResponse) and not answer.is_fenced
    await client.aclose()


async def load(
    port: int, cluster_id: str, clients: int, writes: int
) -> tuple[float, list[float], int]:
    await unfence_broker(port, cluster_id)
    latencies: list[float] = []
    errors = 0

    async def client_loop(index: int) -> None:
        nonlocal errors
        client = await KafkaClient.connect(HOST, port)
        for k in range(writes):
            request = CreateTopicsRequest(
                topics=[
                    CreateTopicsRequest.CreatableTopic(
                        name=f"c{index}-{k}", num_partitions=1, replication_factor=1
                    )
                ],
                timeout_ms=30_000,
            )
            started = time.perf_counter()
            response = await client.request(request, 7)
            latencies.append(time.perf_counter() - started)
            assert isinstance(response, CreateTopicsResponse)
            errors += response.topics[0].error_code != ErrorCode.NONE
        await client.aclose()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(client_loop, index)
    return time.perf_counter() - started, latencies, errors


def percentile_ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def measure(root: Path, clients: int, writes: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="kwire-gc-") as temp:
        server, port, cluster_id = start_server(root, Path(temp))
        try:
            elapsed, latencies, errors = trio.run(load, port, cluster_id, clients, writes)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return Run(
        root=root,
        clients=clients,
        writes_per_s=len(latencies) / elapsed,
        p50_ms=percentile_ms(latencies, 0.5),
        p99_ms=percentile_ms(latencies, 0.99),
        errors=errors,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--writes", type=int, default=100, help="CreateTopics per client")
    parser.add_argument("--compare", type=Path, help="another checkout's root, run alternately")
    args = parser.parse_args(argv)
    roots = [REPO] + ([args.compare.resolve()] if args.compare else [])
    for clients in args.clients:
        runs = [measure(root, clients, args.writes) for root in roots]
        for run in runs:
            print(
                f"{str(run.root):<24} {clients:3d} clients: {run.writes_per_s:7.0f} writes/s  "
                f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  errors {run.errors}",
                flush=True,
            )
        if len(runs) == 2:
            this, other = runs
            print(
                f"{'':<24} ratio: writes/s {this.writes_per_s / other.writes_per_s:.2f}  "
                f"p50 {this.p50_ms / other.p50_ms:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
