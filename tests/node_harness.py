"""An in-process kwire node for tests that drive the request handler without sockets.

    node = make_node(tmp_path, "1@127.0.0.1:<port>", port)   # formatted and started

The ``leader`` fixture is a one-voter quorum, so the node leads at once; nothing listens
on its port. Import the fixture into a test module for pytest to find it. Tests that
want the node to listen use kwire's pytest plugin (``kwire_controller``,
kwire.testing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.storage import format_storage, random_uuid
from kwire.testing.process import free_port

__all__ = ["leader", "make_node"]


def make_node(
    tmp_path: Path, voters: str, port: int, extra: dict[str, str] | None = None
) -> ControllerNode:
    """A formatted, started node; ``extra`` adds or overrides properties."""
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": voters,
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
            **(extra or {}),
        }
    )
    format_storage(config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(config))
    node.start()
    return node


@pytest.fixture
async def leader(tmp_path: Path) -> AsyncIterator[ControllerNode]:
    """A one-voter quorum: this node leads at once (nothing listens on its port)."""
    port = free_port()
    node = make_node(tmp_path, f"1@127.0.0.1:{port}", port)
    assert node.raft.is_leader
    try:
        yield node
    finally:
        node.close()
