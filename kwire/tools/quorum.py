"""``kwire quorum``: the status and replication of a KRaft quorum, as Kafka's
``kafka-metadata-quorum describe`` prints them, from kwire or genuine Kafka controllers.

    kwire quorum --bootstrap-controller HOST:PORT[,HOST:PORT...] [--command-config FILE]
                 [--kafka-release 3.9|4.3] [--timeout-ms MS]
                 describe (--status | --replication [--human-readable])

It talks as Kafka's admin client does with ``--bootstrap-controller``: ApiVersions and
DescribeCluster (v1 or v2, controller endpoints) on the first bootstrap address that
answers, which names the active controller and its endpoint; then ApiVersions and
DescribeQuorum there (v2 when the controller supports it, else its highest version, v0
or v1, which carry no directory ids, listeners or timestamps). ``--command-config`` takes
the client's ``security.protocol``, ``ssl.*`` (PEM) and ``sasl.*`` (PLAIN, SCRAM) as
``kwire shell`` does (kwire.tools.shell_client); every connection, the active controller's
too, is set up with them. The text is
kwire.tools.quorum_text's; ``--kafka-release`` picks the release whose text is printed
(default 4.3: Kafka 4.3.1's; they differ only for replicas without directory ids).

Exit status: 0; 1 with one line on stderr when no controller answers in time
(``--timeout-ms``, default 60000, Kafka's default.api.timeout.ms), a controller answers
with an error (its message, as Kafka's tool prints it), or the options conflict (Kafka's
messages: "Only one of --status or --replication should be specified with describe
sub-command", "One of --status or --replication must be specified with describe
sub-command", "The option --human-readable is only supported along with --replication");
2 for unknown arguments. ``--bootstrap-server`` (through a broker), ``add-controller`` and
``remove-controller`` are not offered. A refused TLS handshake or SASL exchange is not
retried: its reason is printed at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.describe_cluster import (
    DescribeClusterRequest,
    DescribeClusterResponse,
)
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.server.client import KafkaClient
from kwire.tools.quorum_text import (
    METADATA_TOPIC,
    QuorumError,
    TextRelease,
    quorum_info,
    replication_text,
    status_text,
)
from kwire.tools.shell_client import ClientSecurity, connect, security_from_properties
from kwire.tools.shell_load import ShellLoadError

__all__ = ["Described", "describe_quorum", "main"]

CLIENT_ID = "kwire-quorum"
DESCRIBE_CLUSTER = 60
DESCRIBE_QUORUM = 55
CONTROLLER_ENDPOINTS = 2  # DescribeCluster's EndpointType.CONTROLLER
RETRY_BACKOFF_S = 0.1  # Kafka's retry.backoff.ms default


@dataclass(frozen=True, slots=True)
class Described:
    """What the quorum's active controller answered, and its cluster id."""

    cluster_id: str
    response: DescribeQuorumResponse
    version: int


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwire quorum", description="This tool describes kraft metadata quorum status."
    )
    parser.add_argument(
        "--bootstrap-controller",
        required=True,
        help="A comma-separated list of host:port pairs to use for establishing the"
        " connection to the Kafka controllers.",
    )
    parser.add_argument(
        "--kafka-release",
        choices=[r.value for r in TextRelease],
        default=TextRelease.KAFKA_4_3.value,
        help="print as this Kafka release's kafka-metadata-quorum does (default: %(default)s)",
    )
    parser.add_argument(
        "--command-config",
        help="Property file containing configs to be passed to Admin Client"
        " (security.protocol, ssl.*, sasl.*).",
    )
    parser.add_argument("--timeout-ms", type=int, default=60000, help="give up after this long")
    commands = parser.add_subparsers(dest="command", required=True)
    describe = commands.add_parser("describe", help="Describe the metadata quorum info")
    describe.add_argument("--status", action="store_true", help="A short summary of the quorum")
    describe.add_argument(
        "--replication", action="store_true", help="Detailed information about replication"
    )
    describe.add_argument("--human-readable", action="store_true", help="Human-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kwire quorum``; returns the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.status and args.replication:
            raise QuorumError(
                "Only one of --status or --replication should be specified with describe"
                " sub-command"
            )
        if not args.status and not args.replication:
            raise QuorumError(
                "One of --status or --replication must be specified with describe sub-command"
            )
        if args.status and args.human_readable:
            raise QuorumError(
                "The option --human-readable is only supported along with --replication"
            )
        addresses = _addresses(args.bootstrap_controller)
        security = security_from_properties(args.command_config)
        described = trio.run(describe_quorum, addresses, args.timeout_ms / 1000, security)
        info = quorum_info(described.response)
        if args.status:
            print(status_text(described.cluster_id, info, TextRelease(args.kafka_release)))
        else:
            now_ms = time.time_ns() // 1_000_000
            print(replication_text(info, human_readable=args.human_readable, now_ms=now_ms))
    except (QuorumError, ShellLoadError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def _addresses(text: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a comma-separated list (Kafka's message when one is bad)."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise QuorumError("Please provide valid host:port like host1:9091,host2:9092")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise QuorumError("Please provide valid host:port like host1:9091,host2:9092")
    return out


async def describe_quorum(
    addresses: list[tuple[str, int]],
    timeout_s: float,
    security: ClientSecurity = ClientSecurity(),  # noqa: B008  (frozen: safe to share)
) -> Described:
    """Ask the active controller for DescribeQuorum (see the module docstring), retrying
    every 100 ms while no controller answers or none is active, for at most ``timeout_s``
    seconds. Raises QuorumError (a timeout, an error code, a refused TLS handshake) or
    ShellLoadError (SASL refused)."""
    last_problem = "no controller answered"
    with trio.move_on_after(timeout_s):
        while True:
            try:
                return await _describe_once(addresses, security)
            except trio.BrokenResourceError as exc:
                if security.ssl_context is not None:  # refused: a retry would fail the same way
                    raise QuorumError(f"TLS handshake failed: {exc.__cause__ or exc}") from exc
                last_problem = "the connection was closed"
            except (OSError, ConnectionError, _Retry) as exc:
                last_problem = str(exc) or type(exc).__name__
            await trio.sleep(RETRY_BACKOFF_S)
    raise QuorumError(
        f"Timed out waiting for a node assignment. Call: describeMetadataQuorum ({last_problem})"
    )


class _Retry(Exception):
    """A passing condition: no active controller yet, or the one asked no longer leads."""


async def _describe_once(addresses: list[tuple[str, int]], security: ClientSecurity) -> Described:
    client, versions, connected = await _connect_any(addresses, security)
    try:
        cluster_version = min(versions.get(DESCRIBE_CLUSTER, -1), 2)
        if cluster_version < 1:
            raise QuorumError("The controller does not support DescribeCluster v1 or later")
        request = DescribeClusterRequest(endpoint_type=CONTROLLER_ENDPOINTS)
        cluster = await client.request(request, cluster_version)
        assert isinstance(cluster, DescribeClusterResponse)
        if cluster.error_code:
            error = ErrorCode.of(cluster.error_code)
            raise QuorumError(f"{cluster.error_message or error.message} ({error.name})")
        if cluster.controller_id < 0:
            raise _Retry("no active controller")
        active = next((b for b in cluster.brokers if b.broker_id == cluster.controller_id), None)
        if active is not None and (active.host, active.port) != connected:
            await client.aclose()
            client, ranges = await connect(active.host, active.port, security, CLIENT_ID)
            versions = {key: high for key, (_, high) in ranges.items()}
        quorum_version = min(versions.get(DESCRIBE_QUORUM, -1), 2)
        if quorum_version < 0:
            raise QuorumError("The controller does not support DescribeQuorum")
        body = DescribeQuorumRequest(
            topics=[
                DescribeQuorumRequest.TopicData(
                    topic_name=METADATA_TOPIC,
                    partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                )
            ]
        )
        response = await client.request(body, quorum_version)
        assert isinstance(response, DescribeQuorumResponse)
        partitions = [p for t in response.topics for p in t.partitions]
        if any(p.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER for p in partitions):
            raise _Retry("the controller asked no longer leads")
        return Described(cluster.cluster_id, response, quorum_version)
    finally:
        await client.aclose()


async def _connect_any(
    addresses: list[tuple[str, int]], security: ClientSecurity
) -> tuple[KafkaClient, dict[int, int], tuple[str, int]]:
    """A connection (set up as `security` says) to the first address that accepts one,
    the highest version of each API it supports, and that address."""
    problem: OSError | None = None
    for host, port in addresses:
        try:
            client, ranges = await connect(host, port, security, CLIENT_ID)
        except OSError as exc:
            problem = exc
            continue
        return client, {key: high for key, (_, high) in ranges.items()}, (host, port)
    raise problem or OSError("no bootstrap address")


if __name__ == "__main__":
    sys.exit(main())
