"""`KwireQuorum`: a running kwire quorum of 1 or 3 (or any number of) voters, for tests.

    quorum = KwireQuorum.start(tmp_path, voters=3, mode="subprocess")
    quorum.cluster_id                 # 'MkU3OEVBNTcwNTJENDM2Qk'-style, 22 characters
    quorum.bootstrap_controllers      # '127.0.0.1:41234,127.0.0.1:41235,...' (--bootstrap-controller)
    quorum.voters                     # '1@127.0.0.1:41234,...' (controller.quorum.voters)
    quorum.leader_id(timeout=10)      # the node answering DescribeQuorum as leader
    quorum.kill_node(2); quorum.start_node(2)
    quorum.close()

Modes (`Mode`):

- ``subprocess``: each node is `python -m kwire.server` (`KwireProcess`) in its own
  directory, formatted by `python -m kwire.storage format` with one cluster id; works
  from synchronous and Trio tests; nodes can be stopped (SIGTERM), killed (SIGKILL) and
  restarted. A sole voter binds port 0 and its bound port is read from its start-up
  line; the voters of a larger quorum get ports picked free just before start-up (all
  must be in every node's `controller.quorum.voters`), and a start that loses such a
  port to another process is retried once with fresh ports.
- ``inprocess``: the nodes are served by the calling Trio loop (`InProcessNodes`); fast
  to start, for Trio tests only, and a node cannot be stopped alone.

Start-up is bounded: every node must listen within `start_timeout` seconds and, with
`wait_for_leader`, one must lead within it too; otherwise `QuorumStartError` names the
node and carries every node's log tail, and everything started is stopped again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from pathlib import Path

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.testing.client import describe_quorum
from kwire.testing.inprocess import InProcessNodes
from kwire.testing.process import HOST, KwireProcess, NodeStartError, free_port, tail

__all__ = ["KwireQuorum", "Mode", "QuorumStartError"]

START_TIMEOUT_S = 60.0  # Python start-up on a busy 2-core machine can take many seconds
BIND_FAILURE = "Socket server failed to bind"


class Mode(enum.StrEnum):
    INPROCESS = "inprocess"
    SUBPROCESS = "subprocess"


class QuorumStartError(RuntimeError):
    """The quorum did not come up in time; the message carries each node's log tail."""


class KwireQuorum:
    """Handle on a running quorum; see the module docstring. Build it with `start`."""

    def __init__(
        self,
        mode: Mode,
        cluster_id: str,
        processes: dict[int, KwireProcess] | None = None,
        inprocess: InProcessNodes | None = None,
    ) -> None:
        self.mode = mode
        self.cluster_id = cluster_id
        self.processes = processes or {}
        self.inprocess = inprocess

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        voters: int = 1,
        mode: Mode | str = Mode.SUBPROCESS,
        overrides: Mapping[str, str] | None = None,
        cluster_id: str | None = None,
        release_version: str = "3.9-IV0",
        log_level: str = "INFO",
        start_timeout: float = START_TIMEOUT_S,
        wait_for_leader: bool = True,
    ) -> KwireQuorum:
        """Format and start `voters` nodes (ids 1..voters) of one new cluster under
        `directory` (node-<id>/ each). `overrides` are controller properties (Kafka's
        keys) given to every node; `release_version` is the formatted metadata.version.
        With `wait_for_leader`, a subprocess quorum returns once a node leads (an
        in-process one: use `await wait_leader()`). Raises QuorumStartError."""
        if voters < 1:
            raise ValueError(f"a quorum needs at least one voter, not {voters}")
        from kwire.storage import random_uuid

        cluster_id = cluster_id or random_uuid()
        mode = Mode(mode)
        ids = list(range(1, voters + 1))
        if mode is Mode.INPROCESS:
            nodes = InProcessNodes.create(
                directory,
                node_ids=ids,
                cluster_id=cluster_id,
                release_version=release_version,
                overrides=overrides,
            )
            return cls(mode, cluster_id, inprocess=nodes)
        for attempt in (1, 2):
            ports = {node_id: 0 if voters == 1 else free_port() for node_id in ids}
            voter_list = ",".join(f"{n}@{HOST}:{p}" for n, p in ports.items())
            processes = {
                node_id: KwireProcess(
                    directory / f"node-{node_id}"
                    if attempt == 1
                    else directory / f"retry-{node_id}",
                    port=port,
                    overrides=overrides,
                    log_level=log_level,
                    release_version=release_version,
                    extra_properties={
                        "node.id": str(node_id),
                        "controller.quorum.voters": voter_list,
                    },
                )
                for node_id, port in ports.items()
            }
            quorum = cls(mode, cluster_id, processes=processes)
            try:
                quorum._start_processes(start_timeout, wait_for_leader)
                return quorum
            except QuorumStartError as exc:
                quorum.close()
                if attempt == 2 or BIND_FAILURE not in str(exc):
                    raise
        raise AssertionError("unreachable")

    def _start_processes(self, timeout: float, wait_for_leader: bool) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.format(self.cluster_id)
            except NodeStartError as exc:
                raise QuorumStartError(str(exc)) from None
        for process in self.processes.values():
            process.launch()
        for process in self.processes.values():
            try:
                process.wait_started(max(0.0, deadline - time.monotonic()))
            except NodeStartError as exc:
                raise QuorumStartError(
                    f"{exc}\n{self.log_tails(exclude=process.node_id)}"
                ) from None
        if (
            wait_for_leader
            and self.leader_id(timeout=max(0.0, deadline - time.monotonic())) is None
        ):
            raise QuorumStartError(
                f"no node of the {len(self.processes)}-node quorum answered DescribeQuorum "
                f"as leader within {timeout:.0f} s\n{self.log_tails()}"
            )

    # -- what a test needs -----------------------------------------------------------------

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.ports)

    @property
    def ports(self) -> dict[int, int]:
        """Each node's controller listener port on 127.0.0.1."""
        if self.inprocess is not None:
            return dict(self.inprocess.ports)
        return {n: p.port for n, p in self.processes.items()}

    @property
    def bootstrap_controllers(self) -> str:
        """'host:port,...' of every voter: `--bootstrap-controller` of Kafka's tools,
        `controller.quorum.bootstrap.servers` of a broker."""
        return ",".join(f"{HOST}:{port}" for _, port in sorted(self.ports.items()))

    @property
    def voters(self) -> str:
        """'id@host:port,...': `controller.quorum.voters` for a broker joining the quorum."""
        return ",".join(f"{n}@{HOST}:{port}" for n, port in sorted(self.ports.items()))

    @property
    def data_dirs(self) -> dict[int, Path]:
        """Each node's metadata directory (meta.properties, __cluster_metadata-0/)."""
        if self.inprocess is not None:
            return dict(self.inprocess.data_dirs)
        return {n: p.data_dir for n, p in self.processes.items()}

    def broker_properties(self) -> dict[str, str]:
        """What a Kafka broker's server.properties needs to join this quorum."""
        return {
            "controller.quorum.voters": self.voters,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }

    def leader_id(self, timeout: float = 0.0) -> int | None:
        """The node that answers DescribeQuorum as leader, polled for up to `timeout`
        seconds; None if none did. In-process: read from the nodes at once (`timeout` is
        not waited: the loop that would elect one is the caller's; use `wait_leader`)."""
        if self.inprocess is not None:
            return self.inprocess.leader_id()
        deadline = time.monotonic() + timeout
        while True:
            for node_id, process in sorted(self.processes.items()):
                if not process.running:
                    continue
                try:
                    answer = describe_quorum(HOST, process.port, timeout=1.0)
                except (OSError, ConnectionError):
                    continue
                if answer.error_code == ErrorCode.NONE and answer.topics:
                    partition = answer.topics[0].partitions[0]
                    if partition.error_code == ErrorCode.NONE:
                        return node_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    async def wait_leader(self, timeout: float = START_TIMEOUT_S) -> int:
        """Wait (in a Trio task, at most `timeout` s) until a node leads; its id.
        trio.TooSlowError past the timeout; QuorumStartError as soon as an in-process
        node's server failed (a TLS store that does not load, ...)."""
        with trio.fail_after(timeout):
            while True:
                self._raise_inprocess_failure()
                leader = self.leader_id(timeout=0.0)
                if leader is not None:
                    return leader
                await trio.sleep(0.02)

    def _raise_inprocess_failure(self) -> None:
        if self.inprocess is None or not self.inprocess.errors:
            return
        cause = self.inprocess.errors[0]
        while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
            cause = cause.exceptions[0]
        raise QuorumStartError(f"an in-process kwire node failed: {cause}") from cause

    # -- node life cycle (subprocess mode) -------------------------------------------------

    def process(self, node_id: int) -> KwireProcess:
        """The subprocess of `node_id` (its output, pid, properties, ...)."""
        if self.inprocess is not None:
            raise RuntimeError("an in-process quorum has no node processes: use mode='subprocess'")
        return self.processes[node_id]

    def stop_node(self, node_id: int) -> int | None:
        """SIGTERM `node_id` (a leader hands over first) and wait; its exit status."""
        return self.process(node_id).stop()

    def kill_node(self, node_id: int) -> int | None:
        """SIGKILL `node_id` and reap it; its exit status (-9)."""
        return self.process(node_id).kill()

    def start_node(self, node_id: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start a stopped node again on its directory and port (bounded, NodeStartError)."""
        self.process(node_id).start(timeout)

    def restart_node(self, node_id: int, timeout: float = START_TIMEOUT_S) -> None:
        """SIGTERM, then start again on the same directory and port."""
        self.process(node_id).restart(timeout)

    def log_tails(self, lines: int = 15, exclude: int | None = None) -> str:
        """Each node's last log lines, for error messages."""
        return "\n".join(
            f"--- node {n}:\n{tail(p.output(), lines)}"
            for n, p in sorted(self.processes.items())
            if n != exclude
        )

    def close(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL past 10 s); in-process: see
        `InProcessNodes.close`."""
        if self.inprocess is not None:
            self.inprocess.close()
        for process in self.processes.values():
            process.stop()

    async def aclose(self) -> None:
        """Stop every node; from a Trio task (waits for in-process nodes to close)."""
        if self.inprocess is not None:
            await self.inprocess.aclose()
        for process in self.processes.values():
            process.stop()

    def __enter__(self) -> KwireQuorum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
