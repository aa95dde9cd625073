"""What a controller node is given: its settings (resolved from the configuration and
meta.properties), the `controller.quorum.*` timings, its clock and the fault handler it
calls by default on an I/O error of the metadata log (`kwire.server.node`)."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from kwire.controller.controller import ControllerConfig
from kwire.controller.records import RecordAndVersion
from kwire.raft.state import Voter
from kwire.raft.voter_set import VoterEndpoint
from kwire.server.client_security import ClientSecurity
from kwire.server.snapshots import SnapshotSettings

log = logging.getLogger("kwire.node")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def halt_process(message: str, cause: BaseException) -> NoReturn:
    """Kafka's ProcessTerminatingFaultHandler: log the fault and halt at once with exit
    status 1, running no cleanup that could touch the log again."""
    log.critical("%s: %s. Halting the process.", message, cause, exc_info=cause)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftTimeouts:
    """The `controller.quorum.*` timings (ms), Kafka's defaults; `fast_failover`: a
    follower whose connection to its leader is refused or lost elects at once;
    `auto_join`: an observer adds itself to the voter set (kwire.raft.auto_join)."""

    election_timeout_ms: int = 1000
    election_backoff_max_ms: int = 1000
    fetch_timeout_ms: int = 2000
    request_timeout_ms: int = 2000
    retry_backoff_ms: int = 20
    fast_failover: bool = True
    auto_join: bool = False  # controller.quorum.auto.join.enable


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """What a node needs, resolved from the configuration and meta.properties."""

    node_id: int
    cluster_id: str
    voters: tuple[Voter, ...]
    listener_name: str
    metadata_dir: Path  # holds meta.properties and __cluster_metadata-0/
    controller: ControllerConfig
    segment_bytes: int = 1024 * 1024 * 1024
    metadata_version_level: int = 21
    # The records of bootstrap.checkpoint (metadata.version, the other features, SCRAM
    # credentials...), appended on activation when the log is empty; None: the level alone.
    bootstrap: tuple[RecordAndVersion, ...] | None = None
    snapshots: SnapshotSettings = SnapshotSettings()
    raft: RaftTimeouts = RaftTimeouts()
    # meta.properties' directory.id (zero: none); a dynamic quorum's voters name it.
    directory_id: uuid.UUID = uuid.UUID(int=0)
    # This node's controller listeners, as a VotersRecord names them (kraft.version 1).
    local_endpoints: tuple[VoterEndpoint, ...] = ()
    # controller.quorum.bootstrap.servers (host, port): where to find the leader (KIP-853).
    bootstrap_servers: tuple[tuple[str, int], ...] = ()
    # How this node secures its connections to other controllers (the controller listener's).
    client_security: ClientSecurity = ClientSecurity()
