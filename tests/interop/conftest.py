"""Fixtures for running kwire with a genuine Kafka broker of either release line (3.9 or 4.x).

The whole package is skipped unless ``KAFKA_HOME`` names a built Kafka distribution (with
``bin/kafka-server-start.sh`` and ``libs/kafka_*.jar``) and a JVM is available (``java`` on PATH, or
``$JAVA_HOME/bin/java``, which is what kafka-run-class.sh uses).

``interop_cluster`` (module scope) is a kwire controller (tests/server_harness.py) plus a
broker-only Kafka node (node.id=2) whose controller.quorum.voters point at kwire; both on
127.0.0.1 with ports picked free, both stopped at teardown. kwire is formatted at the
metadata.version the distribution's own `kafka-storage format` picks by default (its
release line's newest production level: 3.9-IV0 for 3.9, 4.3-IV0 for 4.3, ...). Every wait is bounded: the
broker gets `BROKER_START_TIMEOUT_S` to reach RUNNING, every Kafka tool `TOOL_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from server_harness import HOST, KwireServer, free_port, port_accepts, write_properties

SKIP_NO_KAFKA_HOME = "KAFKA_HOME is not set: no genuine Kafka distribution to test against"
BROKER_START_TIMEOUT_S = 90.0
BROKER_STOP_TIMEOUT_S = 60.0
TOOL_TIMEOUT_S = 120.0
BROKER_ID = 2
RUNNING_MARKER = "Transitioning from RECOVERY to RUNNING"
METADATA_PARTITION = "__cluster_metadata-0"

_HERE = Path(__file__).resolve().parent


def missing_kafka_reason() -> str | None:
    """Why the genuine-Kafka tests cannot run here, or None when they can."""
    home = os.environ.get("KAFKA_HOME", "").strip()
    if not home:
        return SKIP_NO_KAFKA_HOME
    start = Path(home) / "bin" / "kafka-server-start.sh"
    if not start.is_file():
        return f"KAFKA_HOME={home} has no bin/kafka-server-start.sh: not a Kafka distribution"
    jars = [*Path(home).glob("libs/kafka_*.jar"), *Path(home).glob("core/build/libs/kafka_*.jar")]
    if not jars:
        return f"KAFKA_HOME={home} has no libs/kafka_*.jar: a source tree, not a built distribution"
    release = distribution_release(Path(home))
    if release is None or release[:2] not in DEFAULT_RELEASE_VERSION:
        lines = ", ".join(f"{a}.{b}" for a, b in DEFAULT_RELEASE_VERSION)
        name = ".".join(map(str, release)) if release else "of an unknown release"
        return f"KAFKA_HOME={home} is Kafka {name}: kwire's interop tests cover {lines}"
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if shutil.which("java") is None and not (
        java_home and (Path(java_home) / "bin" / "java").is_file()
    ):
        return "java is not on PATH (nor in $JAVA_HOME/bin): Kafka cannot run"
    return None


OFFLINE_MARKER = "offline"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{OFFLINE_MARKER}: an interop test that needs no Kafka distribution"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test of this package (and only of this package) when Kafka is missing,
    except those marked ``offline`` (they check what we generate for Kafka, without it)."""
    reason = missing_kafka_reason()
    if reason is None:
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker(OFFLINE_MARKER) is not None:
            continue
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(marker)


# -- Kafka's scripts ----------------------------------------------------------------------------


# The newest production metadata.version of each release line: what that release's
# `kafka-storage format` uses by default (MetadataVersion.LATEST_PRODUCTION of the release).
DEFAULT_RELEASE_VERSION = {
    (3, 9): "3.9-IV0",
    (4, 0): "4.0-IV3",
    (4, 1): "4.1-IV1",
    (4, 2): "4.2-IV1",
    (4, 3): "4.3-IV0",
}
_CLIENTS_JAR = re.compile(r"kafka-clients-(\d+)\.(\d+)\.(\d+)[^/]*\.jar$")


def distribution_release(home: Path) -> tuple[int, int, int] | None:
    """The release of the distribution at `home`, from its kafka-clients jar's name."""
    for jar in sorted(home.glob("libs/kafka-clients-*.jar")):
        match = _CLIENTS_JAR.search(jar.name)
        if match is not None:
            major, minor, patch = map(int, match.groups())
            return major, minor, patch
    return None


@dataclass(frozen=True)
class KafkaDistribution:
    home: Path
    log_dir: Path  # LOG_DIR for kafka-run-class.sh: keeps logs out of KAFKA_HOME

    @property
    def release(self) -> tuple[int, int, int]:
        release = distribution_release(self.home)
        if release is None:
            raise RuntimeError(f"{self.home}/libs has no kafka-clients-X.Y.Z.jar")
        return release

    @property
    def release_version(self) -> str:
        """The metadata.version kwire is formatted at for this distribution's brokers."""
        return DEFAULT_RELEASE_VERSION[self.release[:2]]

    def script(self, name: str) -> Path:
        return self.home / "bin" / name

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LOG_DIR": str(self.log_dir),
            "KAFKA_HEAP_OPTS": os.environ.get("KWIRE_TEST_KAFKA_HEAP_OPTS", "-Xmx512M"),
        }

    def run(
        self,
        script: str,
        *args: str | Path,
        input: str | None = None,
        timeout: float = TOOL_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """Run a bin/ script to completion, bounded in time, output captured."""
        return subprocess.run(
            [str(self.script(script)), *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=None if input is not None else subprocess.DEVNULL,
        )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failed tool run, for assertion messages."""
    return (
        f"{' '.join(map(str, result.args))} -> status {result.returncode}\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )


# -- the broker ----------------------------------------------------------------------------------


class KafkaBroker:
    """A broker-only Kafka node whose controller quorum is one kwire node (node 1 at
    `controller_port`), or the voters `voters` names (``controller.quorum.voters``).

    The process runs in a session of its own, so that `kill` ends it with every child
    (kafka-run-class.sh execs java, but a wrapper may not)."""

    ready_marker = RUNNING_MARKER  # the line `start` waits for

    def __init__(
        self,
        kafka: KafkaDistribution,
        directory: Path,
        controller_port: int,
        cluster_id: str,
        *,
        voters: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cluster_id = cluster_id
        self.log_dirs = directory / "broker-2"
        self.config_path = write_properties(
            directory / "broker.properties",
            {
                "process.roles": "broker",
                "node.id": str(BROKER_ID),
                "controller.quorum.voters": voters or f"1@{HOST}:{controller_port}",
                "listeners": f"PLAINTEXT://{HOST}:{self.port}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": str(self.log_dirs),
                "num.partitions": "1",
                "offsets.topic.replication.factor": "1",
                "offsets.topic.num.partitions": "5",
                "transaction.state.log.replication.factor": "1",
                "transaction.state.log.min.isr": "1",
                "group.initial.rebalance.delay.ms": "0",
                **(
                    {
                        "share.coordinator.state.topic.replication.factor": "1",
                        "share.coordinator.state.topic.min.isr": "1",
                    }
                    if kafka.release >= (4, 0, 0)
                    else {}
                ),
            },
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._output: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def format(self) -> None:
        result = self.kafka.run(
            "kafka-storage.sh", "format", "-t", self.cluster_id, "-c", self.config_path
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting the broker failed:\n{describe(result)}")

    @property
    def output_path(self) -> Path:
        return self.directory / f"broker-output-{self.starts}.txt"

    def output(self, start: int | None = None) -> str:
        """The console output (log4j's stdout appender) of run `start` (default: the last)."""
        path = self.directory / f"broker-output-{self.starts if start is None else start}.txt"
        try:
            return path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = BROKER_START_TIMEOUT_S) -> None:
        """Start the node; return once it logs `ready_marker` (a broker: RECOVERY ->
        RUNNING, it is unfenced) and its listener accepts connections."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (see `start`)."""
        if self.running:
            raise RuntimeError("the node is already running")
        self._close_output()
        self.starts += 1
        self._output = self.output_path.open("wb")
        self.process = subprocess.Popen(
            [str(self.kafka.script("kafka-server-start.sh")), str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=self.kafka.env(),
            cwd=self.directory,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = BROKER_START_TIMEOUT_S) -> None:
        """Wait (bounded) for a launched node to log `ready_marker` and accept
        connections; RuntimeError with its output (the node killed) otherwise."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            status = self.process.poll()
            if status is not None:
                raise RuntimeError(
                    f"the node exited with status {status} before it was ready:\n"
                    f"{self.output()[-6000:]}"
                )
            if self.ready_marker in self.output() and port_accepts(self.port):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(
                    f"the node did not log {self.ready_marker!r} within {timeout:.0f} s:\n"
                    f"{self.output()[-6000:]}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = BROKER_STOP_TIMEOUT_S) -> bool:
        """SIGTERM (a controlled shutdown) and wait; True if it exited by itself in time,
        False if it had to be killed."""
        if self.process is None or self.process.poll() is not None:
            self._close_output()
            return True
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
            exited = True
        except subprocess.TimeoutExpired:
            self.kill()
            exited = False
        self._close_output()
        return exited

    def kill(self) -> None:
        """kill -9 of the node's whole process group, and reap (bounded)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self._close_output()

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None


# -- kwire's metadata log, copied for Kafka's offline tools -----------------------------------------


def whole_batches(data: bytes) -> bytes:
    """`data` cut after its last complete record batch (baseOffset int64, length int32):
    a copy taken while kwire appends may end inside one."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        if length <= 0 or pos + 12 + length > len(data):
            break
        pos += 12 + length
    return data[:pos]


def copy_metadata_segments(server: KwireServer, destination: Path) -> list[Path]:
    """Copies of kwire's metadata log segments (whole batches only), named as Kafka names
    them, in `destination`/__cluster_metadata-0/; in offset order."""
    return copy_metadata_dir(server.data_dir, destination)


def copy_metadata_dir(data_dir: Path, destination: Path) -> list[Path]:
    """Copies of the metadata log segments under `data_dir` (a kwire node's or a Kafka
    node's, running or not: whole batches only) in `destination`/__cluster_metadata-0/."""
    source = data_dir / METADATA_PARTITION
    target = destination / METADATA_PARTITION
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for segment in sorted(source.glob("*.log")):
        copy = target / segment.name
        copy.write_bytes(whole_batches(segment.read_bytes()))
        copies.append(copy)
    if not copies:
        raise AssertionError(f"no metadata log segment in {source}")
    return copies


# -- fixtures ---------------------------------------------------------------------------------------


@dataclass
class InteropCluster:
    kafka: KafkaDistribution
    controller: KwireServer
    broker: KafkaBroker
    directory: Path

    @property
    def controller_address(self) -> str:
        return f"{HOST}:{self.controller.port}"


@pytest.fixture(scope="module")
def kafka_distribution(tmp_path_factory: pytest.TempPathFactory) -> KafkaDistribution:
    reason = missing_kafka_reason()
    if reason is not None:
        pytest.skip(reason)
    return KafkaDistribution(
        home=Path(os.environ["KAFKA_HOME"]).resolve(),
        log_dir=tmp_path_factory.mktemp("kafka-logs"),
    )


@pytest.fixture(scope="module")
def interop_cluster(
    kafka_distribution: KafkaDistribution, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InteropCluster]:
    directory = tmp_path_factory.mktemp("interop")
    with KwireServer.create(
        directory / "kwire", release_version=kafka_distribution.release_version
    ) as controller:
        broker = KafkaBroker(
            kafka_distribution, directory / "broker", controller.port, controller.cluster_id
        )
        try:
            broker.format()
            broker.start()
            yield InteropCluster(kafka_distribution, controller, broker, directory)
        finally:
            broker.stop()


def lines_with(text: str, *needles: str) -> Sequence[str]:
    return [line for line in text.splitlines() if all(n in line for n in needles)]
