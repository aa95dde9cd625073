"""kwire controllers served inside the calling Trio loop (no subprocess), for tests.

    nodes = InProcessNodes.create(directory, node_ids=[1, 2, 3], cluster_id=..., ...)
    ...                                   # clients connect to nodes.ports[n] at once
    await nodes.aclose()                  # cancels the servers, closes every log

`create` is synchronous but must run inside a Trio run (a Trio test): it binds every
listener on 127.0.0.1 port 0 first (so the voters list names the bound ports, with no
race for a "free" port), formats each node's directory with the storage formatter,
opens each `ControllerNode`, and serves them all from one Trio system task. Connections
made before that task runs wait in the listen backlog. A node's log I/O fault raises
`NodeFault` in that task (recorded in `errors`) rather than halting the test process, as
a server's `ProcessTerminatingFaultHandler` would. When the Trio run ends (the test
returns), the servers are cancelled and every log closed; a log that cannot be closed (its
directory gone) is recorded in `errors` too, since raising from the serving system task
would crash the whole Trio run (TrioInternalError).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import trio

from kwire.server.__main__ import build_settings, connection_limits
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.serve import serve
from kwire.storage import format_storage

__all__ = ["InProcessNodes", "NodeFault"]

log = logging.getLogger("kwire.testing")
HOST = "127.0.0.1"


class NodeFault(RuntimeError):
    """An in-process node's metadata log failed (a server would halt with status 1)."""


def _raise_fault(message: str, cause: BaseException) -> NoReturn:
    raise NodeFault(message) from cause


class InProcessNodes:
    """Controllers of one static quorum served by this process's Trio loop.

    `nodes[id]` is each `ControllerNode` (its `raft` tells whether it leads), `ports[id]`
    its bound port, `data_dirs[id]` its metadata directory, `properties[id]` its
    configuration (Kafka's keys). `errors` collects what a server raised."""

    def __init__(self) -> None:
        self.nodes: dict[int, ControllerNode] = {}
        self.ports: dict[int, int] = {}
        self.data_dirs: dict[int, Path] = {}
        self.properties: dict[int, dict[str, str]] = {}
        self.configs: dict[int, ControllerServerConfig] = {}
        self.errors: list[BaseException] = []
        self._sockets: dict[int, socket.socket] = {}
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._closed = False

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        node_ids: Sequence[int],
        cluster_id: str,
        release_version: str = "3.9-IV0",
        overrides: Mapping[str, str] | None = None,
    ) -> InProcessNodes:
        """Bind, format, open and serve one node per id under `directory`/node-<id>.
        RuntimeError outside a Trio run; ConfigError (kwire.server.config) for a bad
        override, with everything opened so far closed again."""
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError(
                "an in-process kwire quorum runs in the test's Trio loop: use it from a "
                "Trio test (pytest-trio), or use mode='subprocess'"
            ) from None
        self = cls()
        try:
            self._open(directory, node_ids, cluster_id, release_version, dict(overrides or {}))
        except BaseException:
            self._close_now()
            raise
        trio.lowlevel.spawn_system_task(self._serve_all, name="kwire.testing in-process quorum")
        return self

    def _open(
        self,
        directory: Path,
        node_ids: Sequence[int],
        cluster_id: str,
        release_version: str,
        overrides: dict[str, str],
    ) -> None:
        for node_id in node_ids:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sockets[node_id] = sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, 0))
            sock.listen(128)
            self.ports[node_id] = int(sock.getsockname()[1])
        voters = ",".join(f"{n}@{HOST}:{p}" for n, p in self.ports.items())
        for node_id, port in self.ports.items():
            data_dir = directory / f"node-{node_id}" / "data"
            props = {
                "process.roles": "controller",
                "node.id": str(node_id),
                "controller.quorum.voters": voters,
                "listeners": f"CONTROLLER://{HOST}:{port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
                "log.dirs": str(data_dir),
                **overrides,
            }
            config = ControllerServerConfig.from_properties(props)
            format_storage(config, cluster_id, release_version)
            self.properties[node_id] = props
            self.configs[node_id] = config
            self.data_dirs[node_id] = config.metadata_log_dir
            self.nodes[node_id] = ControllerNode(build_settings(config), fault_handler=_raise_fault)

    async def _serve_all(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    for node_id in self.nodes:
                        nursery.start_soon(self._serve_one, node_id)
        except BaseExceptionGroup as group:
            failures, rest = group.split(Exception)
            if failures is not None:
                self._record(failures)
            if rest is not None:
                raise rest from None
        except Exception as exc:
            self._record(exc)
        finally:
            self._close_now()
            self._done.set()

    def _record(self, exc: BaseException) -> None:
        log.error("an in-process kwire node failed", exc_info=exc)
        self.errors.append(exc)

    async def _serve_one(self, node_id: int) -> None:
        config = self.configs[node_id]
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self._sockets[node_id]))
        await serve(
            self.nodes[node_id],
            HOST,
            self.ports[node_id],
            listeners=[listener],
            max_request_bytes=config.socket_request_max_bytes,
            limits=connection_limits(config),
            security=config.controller_security,
            failed_authentication_delay_ms=config.failed_authentication_delay_ms,
        )

    def leader_id(self) -> int | None:
        """The node that leads now (its raft core says so), or None."""
        for node_id, node in self.nodes.items():
            if not self._closed and node.raft.is_leader:
                return node_id
        return None

    async def aclose(self) -> None:
        """Stop serving and close every node's log; returns once all are closed."""
        self._scope.cancel()
        if not self._closed:
            await self._done.wait()

    def close(self) -> None:
        """Close every node's log from synchronous code, once the Trio run that served
        them has ended; inside it this only cancels them (`aclose` also waits)."""
        self._scope.cancel()
        if self._done.is_set():
            return
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            self._close_now()  # the run that served them is over

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in self._sockets.values():
            sock.close()
        for node_id, node in self.nodes.items():
            try:
                node.close()
            except Exception as exc:  # a node whose directory failed it cannot flush there
                log.error("closing in-process kwire node %d failed", node_id, exc_info=exc)
                self.errors.append(exc)
