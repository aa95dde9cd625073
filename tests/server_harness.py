"""Run a real kwire controller as a subprocess, for tests that talk to it over TCP: a thin
layer over kwire.testing (the product's test support, also kwire's pytest plugin).

    with KwireServer.create(tmp_path) as server:        # formatted, started, listening
        client = await KafkaClient.connect("127.0.0.1", server.port)
        ...
        server.stop()                                    # SIGTERM; returns the exit status
        server.start()                                   # same directory, same port

Or through the fixture factory ``kwire_server_factory`` (import it into a test module or
a conftest): ``server = kwire_server_factory(overrides={...})``; every server it made is
stopped at teardown. `KwireServer` is `kwire.testing.process.KwireProcess`: everything on
127.0.0.1, the port picked free at run time, every wait bounded, output in files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kwire.testing.process import (
    HOST,
    KWIRE_ROOT,
    KwireProcess,
    NodeStartError,
    child_env,
    free_port,
    port_accepts,
    run_module,
    wait_for_port,
    write_properties,
)

__all__ = [
    "HOST",
    "KwireServer",
    "ServerStartError",
    "free_port",
    "kwire_server",
    "kwire_server_factory",
    "port_accepts",
    "run_kwire",
    "wait_for_port",
    "write_properties",
]

KwireServer = KwireProcess
ServerStartError = NodeStartError
run_kwire = run_module
_child_env = child_env
# The checkout these tests belong to (the subprocesses import kwire from it).
REPO_ROOT = KWIRE_ROOT


@contextlib.contextmanager
def kwire_server(directory: Path, **kwargs: object) -> Iterator[KwireServer]:
    """A formatted, running server for the duration of the block."""
    server = KwireServer.create(directory, **kwargs)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kwire_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., KwireServer]]:
    """Call it to get a formatted, running server (keyword arguments as `KwireServer`);
    every server it made is stopped (SIGTERM, then SIGKILL) at teardown."""
    servers: list[KwireServer] = []

    def make(**kwargs: object) -> KwireServer:
        server = KwireServer.create(tmp_path_factory.mktemp("kwire"), **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
