"""`python -m kwire.server [controller.properties] [--override k=v ...]`

With no configuration file, kwire formats `./kwire-data` if needed and serves a one-node
quorum on 127.0.0.1:9093, printing the cluster id and the address to give brokers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import uuid
from pathlib import Path

import trio

from kwire.controller.authorizer import AuthorizerSettings
from kwire.controller.controller import ControllerConfig
from kwire.controller.records import RecordAndVersion
from kwire.log import read_meta_properties
from kwire.log.checkpoints import uuid_to_kafka_string
from kwire.raft.state import Voter
from kwire.server.client_security import controller_client_security
from kwire.server.config import ConfigError, ControllerServerConfig, parse_overrides
from kwire.server.limits import ConnectionLimits
from kwire.server.node import ControllerNode, NodeSettings, RaftTimeouts
from kwire.server.operator_pages import operator_pages, serve_operator_pages
from kwire.server.properties import Endpoint
from kwire.server.quorum_voters import local_endpoints
from kwire.server.serve import bind, bound_port, resolve_overrides, serve
from kwire.server.snapshots import SnapshotSettings
from kwire.storage import format_storage, load_bootstrap, random_uuid
from kwire.storage.bootstrap import BootstrapError, bootstrap_metadata_version
from kwire.storage.formatter import FormatterError, is_reserved_directory_id

log = logging.getLogger("kwire")

DEFAULT_DATA_DIR = Path("kwire-data")


def build_settings(config: ControllerServerConfig) -> NodeSettings:
    """Resolve what the node needs from the configuration and its formatted directory."""
    metadata_dir = config.metadata_log_dir
    meta_path = metadata_dir / "meta.properties"
    if not meta_path.exists():
        raise ConfigError(
            f"{metadata_dir} is not formatted (no meta.properties): "
            "run python -m kwire.storage format -c <config> -t <cluster-id>"
        )
    meta = read_meta_properties(meta_path)
    if meta.node_id != config.node_id:
        raise ConfigError(
            f"node.id={config.node_id} does not match node.id={meta.node_id} in {meta_path}"
        )
    if meta.directory_id is not None and is_reserved_directory_id(meta.directory_id):
        # As Kafka's MetaPropertiesEnsemble.verify, which stops the node on it.
        raise ConfigError(
            f"Invalid reserved directory ID {uuid_to_kafka_string(meta.directory_id)} found in "
            f"{metadata_dir}: directory ids below 100 are Kafka's markers (MIGRATING, "
            "UNASSIGNED, LOST, ...); give the directory a random id "
            "(python -m kwire.storage random-uuid)"
        )
    bootstrap = load_bootstrap(metadata_dir)
    level = bootstrap_metadata_version(bootstrap, str(metadata_dir)).feature_level
    listener = config.controller_listener
    return NodeSettings(
        node_id=config.node_id,
        cluster_id=meta.cluster_id,
        voters=tuple(
            Voter(node_id=v.node_id, host=v.host, port=v.port) for v in config.quorum_voters
        ),
        listener_name=listener.listener_name,
        metadata_dir=metadata_dir,
        directory_id=meta.directory_id or uuid.UUID(int=0),
        local_endpoints=local_endpoints(config.effective_advertised_controller_listeners),
        bootstrap_servers=config.quorum_bootstrap_servers,
        client_security=controller_client_security(config),
        controller=ControllerConfig(
            broker_session_timeout_ms=config.broker_session_timeout_ms,
            broker_heartbeat_interval_ms=config.broker_heartbeat_interval_ms,
            metadata_max_idle_interval_ms=config.metadata_max_idle_interval_ms,
            num_partitions=config.num_partitions,
            default_replication_factor=config.default_replication_factor,
            static_broker_configs=config.static_broker_configs,
            authorizer=AuthorizerSettings.from_properties(
                config.super_users, config.allow_everyone_if_no_acl_found
            )
            if config.standard_authorizer
            else None,
            delete_topic_enable=config.delete_topic_enable,
            delegation_token_secret_key=config.delegation_token_secret_key,
            delegation_token_max_lifetime_ms=config.delegation_token_max_lifetime_ms,
            delegation_token_expiry_time_ms=config.delegation_token_expiry_time_ms,
            delegation_token_expiry_check_interval_ms=(
                config.delegation_token_expiry_check_interval_ms
            ),
            quorum_node_ids=tuple(v.node_id for v in config.quorum_voters),
            auto_leader_rebalance_enable=config.auto_leader_rebalance_enable,
            # Kafka converts to nanoseconds, saturating at Long.MAX_VALUE.
            leader_imbalance_check_interval_ms=min(
                config.leader_imbalance_check_interval_seconds * 1000, 2**63 - 1
            ),
        ),
        segment_bytes=config.metadata_log_segment_bytes,
        metadata_version_level=level,
        bootstrap=tuple(RecordAndVersion(record, version) for record, version in bootstrap),
        raft=RaftTimeouts(
            election_timeout_ms=config.quorum_election_timeout_ms,
            election_backoff_max_ms=config.quorum_election_backoff_max_ms,
            fetch_timeout_ms=config.quorum_fetch_timeout_ms,
            request_timeout_ms=config.quorum_request_timeout_ms,
            retry_backoff_ms=config.quorum_retry_backoff_ms,
            fast_failover=config.quorum_fast_failover_enable,
            auto_join=config.quorum_auto_join_enable,
        ),
        snapshots=SnapshotSettings(
            max_new_record_bytes=config.metadata_snapshot_max_new_record_bytes,
            max_interval_ms=config.metadata_snapshot_max_interval_ms,
            retention_bytes=config.metadata_max_retention_bytes,
            retention_ms=config.metadata_max_retention_ms,
        ),
    )


def connection_limits(config: ControllerServerConfig) -> ConnectionLimits:
    """The listener's connection, idle and request-memory limits."""
    return ConnectionLimits(
        connections_max_idle_ms=config.connections_max_idle_ms,
        max_connections=config.max_connections,
        max_connections_per_ip=config.max_connections_per_ip,
        max_connections_per_ip_overrides=config.max_connections_per_ip_overrides,
        queued_max_request_bytes=config.queued_max_request_bytes,
    )


def with_bound_port(config: ControllerServerConfig, port: int) -> ControllerServerConfig:
    """The configuration with the controller listener's port 0 replaced by the port it
    bound, wherever it is published: its listener and advertised listener (so the
    VotersRecord, DescribeQuorum and ControllerRegistration name it, as Kafka's
    ControllerServer corrects its ListenerInfo with `socketServer.boundPort`) and this
    node's own entry in `controller.quorum.voters` (kwire's: a voter list naming port 0)."""
    name = config.controller_listener.listener_name

    def corrected(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        return tuple(
            dataclasses.replace(e, port=port) if e.listener_name == name and e.port == 0 else e
            for e in endpoints
        )

    voters = tuple(
        dataclasses.replace(v, port=port) if v.node_id == config.node_id and v.port == 0 else v
        for v in config.quorum_voters
    )
    return dataclasses.replace(
        config,
        listeners=corrected(config.listeners),
        advertised_listeners=corrected(config.advertised_listeners),
        quorum_voters=voters,
    )


def brokers_hint(settings: NodeSettings, config: ControllerServerConfig) -> str:
    """What brokers (and other nodes) put in their configuration to reach this quorum:
    every voter of a static quorum, else the bootstrap servers."""
    if config.quorum_voters:
        return "controller.quorum.voters=" + ",".join(
            f"{v.node_id}@{v.host}:{v.port}" for v in settings.voters
        )
    return "controller.quorum.bootstrap.servers=" + ",".join(
        f"{h}:{p}" for h, p in config.quorum_bootstrap_servers
    )


async def run(config: ControllerServerConfig) -> None:
    build_settings(config)  # a configuration error is reported before anything is bound
    listener = config.controller_listener
    listeners = await bind(listener.host or "0.0.0.0", listener.port)
    try:
        config = with_bound_port(config, bound_port(listeners))
        await serve_node(config, listeners)
    finally:
        for socket_listener in listeners:
            socket_listener.socket.close()


async def serve_node(config: ControllerServerConfig, listeners: list[trio.SocketListener]) -> None:
    settings = build_settings(config)
    limits = connection_limits(config)
    # Resolve the override host names here, so that one that does not resolve is a
    # ConfigError for main() rather than an error inside the server's nursery.
    resolved = await resolve_overrides(limits.max_connections_per_ip_overrides)
    limits = dataclasses.replace(
        limits, max_connections_per_ip_overrides={str(a): n for a, n in resolved.items()}
    )
    node = ControllerNode(settings)
    listener = config.controller_listener
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                lambda task_status: serve(
                    node,
                    listener.host or "0.0.0.0",
                    listener.port,
                    listeners=listeners,
                    max_request_bytes=config.socket_request_max_bytes,
                    limits=limits,
                    security=config.controller_security,
                    failed_authentication_delay_ms=config.failed_authentication_delay_ms,
                    task_status=task_status,
                )
            )
            pages = operator_pages(config, node)
            if pages:
                for host, page_port, paths in await nursery.start(serve_operator_pages, pages):
                    print(f"kwire operator pages {', '.join(paths)} on http://{host}:{page_port}")
            # A dynamic quorum's brokers find its voters through the bootstrap servers.
            print(
                f"kwire controller {settings.node_id} of cluster {settings.cluster_id} "
                f"listening on {listener.host}:{port} ({listener.listener_name}); "
                f"brokers use {brokers_hint(settings, config)}",
                flush=True,
            )
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("Received %s; shutting down", signal.Signals(signum).name)
                    # A leader hands over first (EndQuorumEpoch), bounded by the request
                    # timeout.
                    with trio.move_on_after(config.quorum_request_timeout_ms / 1000):
                        await node.resign()
                    nursery.cancel_scope.cancel()
                    break
    finally:
        node.close()
        log.info("Stopped; the metadata log is closed")


def zero_config() -> ControllerServerConfig:
    data_dir = DEFAULT_DATA_DIR.resolve()
    config = ControllerServerConfig.default_single_node(data_dir)
    if not (data_dir / "meta.properties").exists():
        cluster_id = random_uuid()
        # 3.9-IV0, not the storage tool's 4.3-IV0: the two-command start serves brokers of
        # both lines (Kafka 3.9 supports metadata.version up to 21); a 4.x cluster upgrades
        # with kafka-features once every broker is 4.x.
        result = format_storage(config, cluster_id, "3.9-IV0")
        for line in result.lines:
            print(line)
        print(f"Formatted {data_dir} for new cluster {cluster_id}")
    return config


def run_unwrapping_config_errors(config: ControllerServerConfig) -> None:
    """Run the server; a ConfigError raised inside its nurseries (e.g. a TLS key store that
    does not load) comes out as itself, for main's one-line message."""
    try:
        trio.run(run, config)
    except BaseExceptionGroup as group:
        matched, rest = group.split(ConfigError)
        if matched is None or rest is not None:
            raise
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwire.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", nargs="?", type=Path, help="controller .properties file")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="override a property"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.config is None:
            if args.override:
                parser.error("--override needs a configuration file")
            config = zero_config()
        else:
            config = ControllerServerConfig.load(args.config, parse_overrides(args.override))
        run_unwrapping_config_errors(config)
    except (ConfigError, FormatterError, BootstrapError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
