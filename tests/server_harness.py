"""Run a real kwire controller as a subprocess, for tests that talk to it over TCP.

    with KwireServer.create(tmp_path) as server:        # formatted, started, listening
        client = await KafkaClient.connect("127.0.0.1", server.port)
        ...
        server.stop()                                    # SIGTERM; returns the exit status
        server.start()                                   # same directory, same port

Or through the pytest fixture factory ``kwire_server_factory`` (import it into a test
module or a conftest): ``server = kwire_server_factory(overrides={...})``; every server it
made is stopped at teardown.

Everything is on 127.0.0.1, the port is picked free at run time (bind to port 0, close),
and every wait is bounded: start-up waits for the "listening on" line and a successful
connection, stop waits for the exit after SIGTERM and then kills. The process's stdout
and stderr go to files in the server's directory (no pipe can fill up and stall it);
``stdout``/``stderr``/``output`` read them back, and ``wait_for_output`` polls them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

import pytest

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

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0
LISTENING_MARKER = "listening on"
# The checkout these tests belong to: the subprocesses import kwire from it, not from
# wherever the interpreter's site-packages point (an editable install of another tree).
REPO_ROOT = Path(__file__).resolve().parents[1]


def _child_env() -> dict[str, str]:
    """The environment of a kwire subprocess: this one, with this checkout first on the path."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


class ServerStartError(RuntimeError):
    """The server did not come up; the message carries its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, host: str = HOST) -> bool:
    """Poll until the port accepts a connection; False if it did not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port, host):
            return True
        time.sleep(0.05)
    return False


def write_properties(path: Path, props: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    return path


def run_kwire(
    *args: str | Path, timeout: float = 30.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` with this interpreter, output captured, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=_child_env(),
    )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class KwireServer:
    """One kwire controller (node 1, sole voter) in its own directory, run as a subprocess."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        overrides: Mapping[str, str] | None = None,
        extra_properties: Mapping[str, str] | None = None,
        log_level: str = "INFO",
        file_size_limit: int | None = None,
        release_version: str | None = None,
    ) -> None:
        self.directory = directory
        # `format --release-version`, or None for 3.9-IV0.
        self.release_version = release_version
        # RLIMIT_FSIZE of the process in bytes (a disk that fills up), or None.
        self.file_size_limit = file_size_limit
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.data_dir = directory / "data"
        self.overrides = dict(overrides or {})
        self.log_level = log_level
        self.properties: dict[str, str] = {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.port}",
            "listeners": f"CONTROLLER://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **(extra_properties or {}),
        }
        self.config_path = write_properties(directory / "controller.properties", self.properties)
        self.cluster_id = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, **kwargs: object) -> KwireServer:
        """A formatted, started server; stop it with `close()` or use it as a context manager."""
        server = cls(directory, **kwargs)  # type: ignore[arg-type]
        server.format()
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def format(self, cluster_id: str | None = None) -> str:
        """Format the data directory with the storage tool; returns the cluster id."""
        if cluster_id is None:
            result = run_kwire("kwire.storage", "random-uuid")
            if result.returncode != 0:
                raise ServerStartError(f"random-uuid failed: {result.stderr.strip()}")
            cluster_id = result.stdout.strip()
        # The zero-config server formats at 3.9-IV0 (brokers of both lines can join); the
        # storage tool's own default is Kafka 4.3.1's, 4.3-IV0.
        level = ["--release-version", self.release_version or "3.9-IV0"]
        result = run_kwire(
            "kwire.storage", "format", "-c", self.config_path, "-t", cluster_id, *level
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"formatting {self.data_dir} failed (status {result.returncode}): "
                f"{result.stderr.strip()}"
            )
        self.cluster_id = cluster_id
        return cluster_id

    # -- output ---------------------------------------------------------------------------------

    @property
    def stdout_path(self) -> Path:
        return self.directory / f"stdout-{self.starts}.txt"

    @property
    def stderr_path(self) -> Path:
        return self.directory / f"stderr-{self.starts}.txt"

    def stdout(self) -> str:
        """What the current (or last) run printed on stdout."""
        return self._read(self.stdout_path)

    def stderr(self) -> str:
        """The current (or last) run's log: kwire logs to stderr."""
        return self._read(self.stderr_path)

    def output(self) -> str:
        return self.stdout() + self.stderr()

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(
        self, predicate: Callable[[str], bool] | str, timeout: float = 5.0
    ) -> str | None:
        """Poll stdout+stderr until `predicate` holds (or the text appears); the output,
        or None if it did not within `timeout`."""
        check = (lambda text: predicate in text) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            if check(text):
                return text
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "kwire.server",
            str(self.config_path),
            "--log-level",
            self.log_level,
        ]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the process and wait (bounded) until it listens and accepts connections."""
        if self.running:
            raise RuntimeError("the server is already running")
        self._close_files()
        self.starts += 1
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        env = _child_env()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=self.directory,
            env=env,
            preexec_fn=None if self.file_size_limit is None else self._limit_file_size,
        )
        deadline = time.monotonic() + timeout
        while True:
            status = self.process.poll()
            if status is not None:
                raise ServerStartError(
                    f"kwire exited with status {status} before listening:\n{_tail(self.output())}"
                )
            if LISTENING_MARKER in self.stdout() and port_accepts(self.port):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(
                    f"kwire did not listen on {HOST}:{self.port} within {timeout:.0f} s:\n"
                    f"{_tail(self.output())}"
                )
            time.sleep(0.02)

    def _limit_file_size(self) -> None:
        # Runs in the child before exec: writes past the limit then fail with EFBIG.
        import resource

        assert self.file_size_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, self.file_size_limit))

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Wait (bounded) for the process to exit by itself; its status, or None if it is
        still running."""
        if self.process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        return self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait (bounded); kill if it does not exit. The exit status, or
        None if it was not running. A killed process reports a negative status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL (kill -9) and reap; the exit status (-9), or None if it never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(KILL_TIMEOUT_S)
        self._close_files()
        return self.process.returncode

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()

    def _close_files(self) -> None:
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    def __enter__(self) -> KwireServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
