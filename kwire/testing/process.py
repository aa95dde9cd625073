"""One kwire controller run as a subprocess (`python -m kwire.server`), for tests.

    node = KwireProcess(tmp_path / "node-1")            # node 1, sole voter, port 0
    node.format()                                        # kwire.storage format
    node.start()                                         # bounded: waits for "listening on"
    node.port                                            # the port it bound
    node.stop()                                          # SIGTERM; the exit status

Everything is on 127.0.0.1. A port of 0 (the default for a sole voter) lets the server
bind a free port; `start` reads the bound port from the start-up line ("... listening on
127.0.0.1:PORT ..."), as kwire publishes it (README: `listeners` with port 0). A voter of
a several-node static quorum needs its port in every node's `controller.quorum.voters`
before any starts, so `KwireQuorum` picks those with `free_port`. Every wait is bounded;
a start that fails or times out raises `NodeStartError` with the node's last log lines.
The process's stdout and stderr go to files in its directory (no pipe fills and stalls
it): `stdout()`, `stderr()`, `output()` read them back.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

__all__ = [
    "HOST",
    "KwireProcess",
    "NodeStartError",
    "child_env",
    "free_port",
    "port_accepts",
    "run_module",
    "tail",
    "wait_for_port",
    "write_properties",
]

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0
LISTENING_MARKER = "listening on"
_LISTENING = re.compile(r"listening on \S+?:(\d+) ")
# The directory holding the kwire package this process imported: its subprocesses import
# the same kwire, whatever an installed copy elsewhere would give them.
KWIRE_ROOT = Path(__file__).resolve().parents[2]


class NodeStartError(RuntimeError):
    """A node did not come up (exited, or did not listen in time); the message carries
    its last log lines."""


def child_env() -> dict[str, str]:
    """The environment of a kwire subprocess: this one, with this kwire first on the path."""
    paths = [str(KWIRE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def cache_bytecode_as_installed(cache_dir: str = "kwire-bench-pycache") -> None:
    """Let kwire processes started from now on compile once and cache their bytecode, as an
    installed kwire does: PYTHONDONTWRITEBYTECODE (set on some machines) is dropped from
    this process's environment, and the cache goes outside the checkout, under the
    temporary directory (PYTHONPYCACHEPREFIX, unless already set). Benchmarks call it, so
    that a restart costs what it costs a user, not a compile of kwire from source."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / cache_dir))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True if host:port accepts a TCP connection within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, host: str = HOST) -> bool:
    """Poll until the port accepts a connection; False if it did not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port, host):
            return True
        time.sleep(0.05)
    return False


def write_properties(path: Path, props: Mapping[str, str]) -> Path:
    """Write `props` as a Java .properties file (one key=value a line); returns `path`."""
    path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    return path


def run_module(
    *args: str | Path, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` with this interpreter and this kwire, output captured,
    bounded by `timeout` seconds (subprocess.TimeoutExpired past it)."""
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=child_env(),
    )


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.splitlines()[-lines:])


def _controller_port(properties: Mapping[str, str], default: int) -> int:
    """The port of the first listener named in controller.listener.names."""
    name = properties.get("controller.listener.names", "CONTROLLER").split(",")[0].strip()
    for listener in properties.get("listeners", "").split(","):
        if listener.strip().upper().startswith(f"{name.upper()}://"):
            return int(listener.rsplit(":", 1)[1])
    return default


class KwireProcess:
    """One kwire controller in its own directory, run as a subprocess.

    `properties` are the node's controller.properties (Kafka's keys): node 1, sole voter
    of a static quorum on 127.0.0.1:`port`, data in `directory`/data, unless
    `extra_properties` say otherwise; `properties` replaces them all (a whole
    controller.properties, e.g. a Kafka controller's, whose directory is then the node's
    data directory, formatted or not). `overrides` become `--override k=v` arguments.
    `release_version` is the `format --release-version` (default 3.9-IV0, the
    zero-config server's level). `file_size_limit` (bytes) is the process's
    RLIMIT_FSIZE, to play a full disk.
    """

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
        properties: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.release_version = release_version
        self.file_size_limit = file_size_limit
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.data_dir = directory / "data"
        self.overrides = dict(overrides or {})
        self.log_level = log_level
        self.properties: dict[str, str] = (
            dict(properties)
            if properties is not None
            else {
                "process.roles": "controller",
                "node.id": "1",
                "controller.quorum.voters": f"1@{HOST}:{self.port}",
                "listeners": f"CONTROLLER://{HOST}:{self.port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
                "log.dirs": str(self.data_dir),
                **(extra_properties or {}),
            }
        )
        if properties is not None:
            self.port = _controller_port(self.properties, self.port)
        if "metadata.log.dir" in self.properties:
            self.data_dir = Path(self.properties["metadata.log.dir"])
        elif "log.dirs" in self.properties:
            self.data_dir = Path(self.properties["log.dirs"].split(",")[0])
        self.config_path = write_properties(directory / "controller.properties", self.properties)
        self.node_id = int(self.properties["node.id"])
        self.cluster_id = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @classmethod
    def create(cls, directory: Path, **kwargs: object) -> KwireProcess:
        """A formatted, started node; stop it with `close()` or use it as a context manager."""
        node = cls(directory, **kwargs)  # type: ignore[arg-type]
        node.format()
        try:
            node.start()
        except BaseException:
            node.close()
            raise
        return node

    def format(self, cluster_id: str | None = None) -> str:
        """Format the data directory as `format_command` does (a new random cluster id
        unless given); returns the cluster id. NodeStartError if it fails.

        The storage tool runs in this process (`kwire.storage.__main__.run`, the command
        line's own code, from this kwire): the same files, without a Python start-up."""
        from kwire.storage.__main__ import run as storage_tool
        from kwire.storage.formatter import random_uuid  # what `random-uuid` prints

        if cluster_id is None:
            cluster_id = random_uuid()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = storage_tool(self.format_command(cluster_id)[3:])
        if status != 0:
            raise NodeStartError(
                f"formatting {self.data_dir} failed (status {status}): {err.getvalue().strip()}"
            )
        self.cluster_id = cluster_id
        return cluster_id

    def format_command(self, cluster_id: str) -> list[str]:
        """The storage tool's command line that formats this node for `cluster_id`."""
        level = self.release_version or "3.9-IV0"
        command = [sys.executable, "-m", "kwire.storage", "format", "-c", str(self.config_path)]
        return [*command, "-t", cluster_id, "--release-version", level]

    # -- output ---------------------------------------------------------------------------

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
        """stdout then stderr of the current (or last) run."""
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
        or None if it did not within `timeout` seconds."""
        check = (lambda text: predicate in text) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            if check(text):
                return text
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    # -- life cycle -----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None, "the node is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The server's command line."""
        cmd = [sys.executable, "-m", "kwire.server", str(self.config_path)]
        cmd += ["--log-level", self.log_level]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it (see `start`)."""
        if self.running:
            raise RuntimeError(f"node {self.node_id} is already running")
        self._close_files()
        self.starts += 1
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            cwd=self.directory,
            env=child_env(),
            preexec_fn=None if self.file_size_limit is None else self._limit_file_size,
        )
        return self.process

    def poll_started(self) -> bool:
        """True once the launched process printed its listening line and accepts
        connections (its bound port is then in `port`); NodeStartError if it exited."""
        assert self.process is not None, "launch() first"
        status = self.process.poll()
        if status is not None:
            raise NodeStartError(
                f"kwire node {self.node_id} exited with status {status} before listening:\n"
                f"{tail(self.output())}"
            )
        return self.listening()

    def listening(self) -> bool:
        """True once the current run printed its listening line and its port accepts a
        connection; a port of 0 is then replaced by the bound one (and kept for restarts)."""
        match = _LISTENING.search(self.stdout())
        if match is None:
            return False
        bound = int(match.group(1))
        if self.port == 0:
            self._pin_port(bound)
        self.port = bound
        return port_accepts(self.port)

    def _pin_port(self, port: int) -> None:
        # A node configured with port 0 keeps the port it bound first, so that a restart
        # answers at the address its quorum's clients were given.
        for key in ("listeners", "controller.quorum.voters", "advertised.listeners"):
            if key in self.properties:
                self.properties[key] = self.properties[key].replace(f"{HOST}:0", f"{HOST}:{port}")
        write_properties(self.config_path, self.properties)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the process and wait (at most `timeout` s) until it listens and accepts
        connections; NodeStartError (with its log tail) otherwise, the process killed."""
        self.launch()
        self.wait_started(timeout)

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait (bounded) for a launched process to listen; see `start`."""
        deadline = time.monotonic() + timeout
        while not self.poll_started():
            if time.monotonic() >= deadline:
                self.kill()
                raise NodeStartError(
                    f"kwire node {self.node_id} did not listen on {HOST}:{self.port} "
                    f"within {timeout:.0f} s:\n{tail(self.output())}"
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
        """SIGTERM (a leader hands over first) and wait (bounded); kill past `timeout`.
        The exit status (negative when killed), or None if it never started."""
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
        """Stop (SIGTERM) and start again on the same directory and port."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()

    def _close_files(self) -> None:
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    def __enter__(self) -> KwireProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
