"""A genuine Kafka 3.9 broker (node 2, process.roles=broker) under a kwire controller (node 1),
driven and inspected with Kafka's own command-line tools.

The tests run in file order against one module-scoped cluster; the broker restart comes
last because it changes the cluster. Flags and output formats are Kafka 3.9's:
MetadataQuorumCommand, TopicCommand, ConsoleProducer/ConsoleConsumer, DumpLogSegments,
BrokerApiVersionsCommand and the metadata shell (whose tree in 3.9 is /image/...; the
pre-3.7 /brokers and /topics paths are gone).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from genuine_shell import run_metadata_shell
from server_harness import run_kwire

from .conftest import (
    BROKER_ID,
    RUNNING_MARKER,
    InteropCluster,
    copy_metadata_segments,
    describe,
    lines_with,
)

TOPIC = "t"
PARTITIONS = 10
MESSAGES = [f"kwire-interop-{i:04d}" for i in range(1000)]
TOPIC_READY_TIMEOUT_S = 60.0


# -- helpers ------------------------------------------------------------------------------------


def kwire_records(cluster: InteropCluster, tmp_path: Path) -> list[dict[str, Any]]:
    """Every metadata record in kwire's log, as kwire's dump tool decodes it (--json)."""
    copies = copy_metadata_segments(cluster.controller, tmp_path)
    result = run_kwire("kwire.tools.dump_log", "--json", *copies, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = (json.loads(line) for line in result.stdout.splitlines() if line.strip())
    return [line["payload"] for line in lines if line["kind"] == "record" and "payload" in line]


def broker_epochs(records: list[dict[str, Any]]) -> list[int]:
    """The epochs of broker 2's registrations, in log order (amendments repeat an epoch)."""
    epochs: list[int] = []
    for record in records:
        data = record["data"]
        if (
            record["type"] == "REGISTER_BROKER_RECORD"
            and data["brokerId"] == BROKER_ID
            and data["brokerEpoch"] not in epochs
        ):
            epochs.append(data["brokerEpoch"])
    return epochs


def is_unfenced(records: list[dict[str, Any]], epoch: int) -> bool:
    """Whether broker 2's incarnation with `epoch` ends up unfenced, replaying the records
    in order (RegisterBrokerRecord.fenced, BrokerRegistrationChangeRecord.fenced: 1 / -1,
    FenceBrokerRecord / UnfenceBrokerRecord)."""
    fenced: bool | None = None
    for record in records:
        data, kind = record["data"], record["type"]
        broker = data.get("brokerId", data.get("id"))
        if broker != BROKER_ID:
            continue
        if kind == "REGISTER_BROKER_RECORD":
            fenced = data.get("fenced", True) if data["brokerEpoch"] == epoch else None
        elif fenced is not None and data.get("brokerEpoch", data.get("epoch")) == epoch:
            if kind == "BROKER_REGISTRATION_CHANGE_RECORD" and data.get("fenced", 0) != 0:
                fenced = data["fenced"] == 1
            elif kind == "UNFENCE_BROKER_RECORD":
                fenced = False
            elif kind == "FENCE_BROKER_RECORD":
                fenced = True
    return fenced is False


def describe_partitions(cluster: InteropCluster) -> dict[int, dict[str, str]]:
    """kafka-topics.sh --describe: partition -> {"Leader": .., "Replicas": .., "Isr": ..}."""
    result = cluster.kafka.run(
        "kafka-topics.sh",
        "--bootstrap-server",
        cluster.broker.bootstrap,
        "--describe",
        "--topic",
        TOPIC,
    )
    assert result.returncode == 0, describe(result)
    partitions: dict[int, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        if "\tPartition: " not in line:
            continue
        fields = dict(part.split(": ", 1) for part in line.strip().split("\t") if ": " in part)
        partitions[int(fields["Partition"])] = fields
    return partitions


def wait_for_partitions_led_by_broker(cluster: InteropCluster) -> dict[int, dict[str, str]]:
    """Poll --describe (bounded) until all partitions of t have broker 2 as leader."""
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while True:
        partitions = describe_partitions(cluster)
        if len(partitions) == PARTITIONS and all(
            p["Leader"] == str(BROKER_ID) for p in partitions.values()
        ):
            return partitions
        if time.monotonic() >= deadline:
            raise AssertionError(f"partitions of {TOPIC} never all led by broker 2: {partitions}")
        time.sleep(1)


def consume_all(cluster: InteropCluster) -> list[str]:
    result = cluster.kafka.run(
        "kafka-console-consumer.sh",
        "--bootstrap-server",
        cluster.broker.bootstrap,
        "--topic",
        TOPIC,
        "--from-beginning",
        "--max-messages",
        str(len(MESSAGES)),
        "--timeout-ms",
        "30000",
    )
    assert result.returncode == 0, describe(result)
    assert f"Processed a total of {len(MESSAGES)} messages" in result.stderr, describe(result)
    return [line for line in result.stdout.splitlines() if line]


def metadata_shell(
    cluster: InteropCluster, snapshot: Path, *command: str, shows: Callable[[str], bool]
) -> str:
    """What Kafka's shell prints; run again while what it printed does not `show` what the
    whole file holds (Kafka 3.9's shell may print a partial image: tests/genuine_shell.py)."""
    script = cluster.kafka.script("kafka-metadata-shell.sh")
    result = run_metadata_shell(
        script,
        snapshot,
        *command,
        env=cluster.kafka.env(),
        loaded=lambda run: run.returncode == 0 and shows(run.stdout),
    )
    assert result.returncode == 0, describe(result)
    return result.stdout


def quorum(cluster: InteropCluster, *args: str) -> str:
    result = cluster.kafka.run(
        "kafka-metadata-quorum.sh",
        "--bootstrap-controller",
        cluster.controller_address,
        "describe",
        *args,
    )
    assert result.returncode == 0, describe(result)
    return result.stdout


def status_fields(text: str) -> dict[str, str]:
    """`describe --status` prints `Key:<spaces>value` lines."""
    return {
        key: value.strip()
        for key, value in (line.split(":", 1) for line in text.splitlines() if ":" in line)
    }


@pytest.fixture(scope="module")
def topic(interop_cluster: InteropCluster) -> Iterator[str]:
    """Topic t, 10 partitions, replication factor 1, created with kafka-topics.sh."""
    result = interop_cluster.kafka.run(
        "kafka-topics.sh",
        "--bootstrap-server",
        interop_cluster.broker.bootstrap,
        "--create",
        "--topic",
        TOPIC,
        "--partitions",
        str(PARTITIONS),
        "--replication-factor",
        "1",
    )
    assert result.returncode == 0, describe(result)
    assert f"Created topic {TOPIC}." in result.stdout
    yield TOPIC


# -- the tests ----------------------------------------------------------------------------------


def test_broker_registers_with_kwire_and_reaches_running_unfenced(
    interop_cluster: InteropCluster, tmp_path: Path
) -> None:
    cluster = interop_cluster
    assert RUNNING_MARKER in cluster.broker.output()  # BrokerLifecycleManager: unfenced
    # kwire's log: broker 2 registered, and that incarnation was unfenced.
    records = kwire_records(cluster, tmp_path)
    epochs = broker_epochs(records)
    assert len(epochs) == 1, epochs
    assert is_unfenced(records, epochs[0])
    # The broker answers Kafka's clients.
    versions = cluster.kafka.run(
        "kafka-broker-api-versions.sh", "--bootstrap-server", cluster.broker.bootstrap
    )
    assert versions.returncode == 0, describe(versions)
    # (4.x tools add the fenced state the metadata gives them: "isFenced: false")
    assert re.search(rf"\(id: {BROKER_ID} rack: null( isFenced: false)?\) ->", versions.stdout)
    assert "Produce(0):" in versions.stdout
    # kwire's quorum sees the broker fetching the metadata log as an observer.
    status = status_fields(quorum(cluster, "--status"))
    assert status["LeaderId"] == "1"
    assert f'"id": {BROKER_ID}' in status["CurrentObservers"]
    replication = quorum(cluster, "--replication")
    assert lines_with(replication, "Leader")[0].split()[0] == "1"
    observers = lines_with(replication, "Observer")
    assert [line.split()[0] for line in observers] == [str(BROKER_ID)]


def test_metadata_quorum_status_names_kwire_node_1_as_leader(
    interop_cluster: InteropCluster,
) -> None:
    status = status_fields(quorum(interop_cluster, "--status"))
    assert status["ClusterId"] == interop_cluster.controller.cluster_id
    assert status["LeaderId"] == "1"
    assert int(status["LeaderEpoch"]) >= 1
    assert int(status["HighWatermark"]) > 0
    assert status["MaxFollowerLag"] == "0"  # the sole voter is the leader
    assert status["CurrentVoters"].startswith('[{"id": 1')
    assert f"CONTROLLER://{interop_cluster.controller_address}" in status["CurrentVoters"]


def test_kafka_topics_creates_t_with_10_partitions_all_led_by_broker_2(
    interop_cluster: InteropCluster, topic: str
) -> None:
    partitions = wait_for_partitions_led_by_broker(interop_cluster)
    assert sorted(partitions) == list(range(PARTITIONS))
    for fields in partitions.values():
        assert fields["Topic"] == topic
        assert fields["Replicas"] == str(BROKER_ID)
        assert fields["Isr"] == str(BROKER_ID)


def test_1000_messages_round_trip_through_console_producer_and_consumer(
    interop_cluster: InteropCluster, topic: str
) -> None:
    wait_for_partitions_led_by_broker(interop_cluster)
    produced = interop_cluster.kafka.run(
        "kafka-console-producer.sh",
        "--bootstrap-server",
        interop_cluster.broker.bootstrap,
        "--topic",
        topic,
        input="".join(f"{m}\n" for m in MESSAGES),
    )
    assert produced.returncode == 0, describe(produced)
    assert "ERROR" not in produced.stderr, describe(produced)
    # The consumer group's __consumer_offsets is created through kwire as well.
    assert sorted(consume_all(interop_cluster)) == MESSAGES


def test_kafka_dump_log_decodes_kwire_metadata_segment(
    interop_cluster: InteropCluster, topic: str, tmp_path: Path
) -> None:
    wait_for_partitions_led_by_broker(interop_cluster)
    copies = copy_metadata_segments(interop_cluster.controller, tmp_path)
    result = interop_cluster.kafka.run(
        "kafka-dump-log.sh",
        "--cluster-metadata-decoder",
        "--files",
        ",".join(map(str, copies)),
    )
    assert result.returncode == 0, describe(result)
    out = result.stdout
    assert "REGISTER_BROKER_RECORD" in out
    assert "TOPIC_RECORD" in out
    assert f'"name":"{topic}"' in out
    assert out.count('"type":"PARTITION_RECORD"') >= PARTITIONS
    assert "isvalid: false" not in out
    assert "Exception" not in out + result.stderr


def test_kwire_dump_log_prints_what_kafka_dump_log_prints(
    interop_cluster: InteropCluster, topic: str, tmp_path: Path
) -> None:
    """kwire's dump tool claims Kafka's text line for line: check it on kwire's own log."""
    copies = copy_metadata_segments(interop_cluster.controller, tmp_path)
    files = ",".join(map(str, copies))
    kafka = interop_cluster.kafka.run(
        "kafka-dump-log.sh", "--cluster-metadata-decoder", "--files", files
    )
    assert kafka.returncode == 0, describe(kafka)
    ours = run_kwire(
        "kwire.tools.dump_log",
        "--kafka-release",
        _release_line(interop_cluster.kafka.home),
        "--files",
        files,
        timeout=60,
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == kafka.stdout.splitlines()


def _release_line(home: Path) -> str:
    """ "3.9" for a distribution with libs/kafka_2.13-3.9.0.jar: kwire's dump prints as it."""
    jar = next(home.glob("libs/kafka_*-*.jar"), None) or next(
        home.glob("core/build/libs/kafka_*-*.jar")
    )
    major, minor = re.split(r"[.-]", jar.name.split("-", 1)[1])[:2]
    return f"{major}.{minor}"


def test_kafka_metadata_shell_shows_broker_2_and_topic_t_in_kwire_segment(
    interop_cluster: InteropCluster, topic: str, tmp_path: Path
) -> None:
    wait_for_partitions_led_by_broker(interop_cluster)
    copies = copy_metadata_segments(interop_cluster.controller, tmp_path)
    if len(copies) > 1:  # the shell reads one file of batches: join the segments in order
        joined = copies[0].with_name("00000000000000000000.joined.log")
        joined.write_bytes(b"".join(c.read_bytes() for c in copies))
        snapshot = joined
    else:
        snapshot = copies[0]

    def broker_listed(out: str) -> bool:
        return str(BROKER_ID) in out.split()

    def broker_unfenced(out: str) -> bool:
        return f"BrokerRegistration(id={BROKER_ID}," in out and "fenced=false" in out

    def topic_listed(out: str) -> bool:
        return topic in out.split()

    def partitions_listed(out: str) -> bool:
        return {str(p) for p in range(PARTITIONS)} <= set(out.split())

    def led_by_the_broker(out: str) -> bool:
        return (
            f"leader={BROKER_ID}," in out
            and re.search(rf"replicas=\[{BROKER_ID}\]", out) is not None
        )

    shell = functools.partial(metadata_shell, interop_cluster, snapshot)
    assert broker_listed(shell("ls", "/image/cluster/brokers", shows=broker_listed))
    registration = shell("cat", f"/image/cluster/brokers/{BROKER_ID}", shows=broker_unfenced)
    assert broker_unfenced(registration)
    assert topic_listed(shell("ls", "/image/topics/byName", shows=topic_listed))
    children = shell("ls", f"/image/topics/byName/{topic}", shows=partitions_listed)
    assert partitions_listed(children)
    partition = shell("cat", f"/image/topics/byName/{topic}/0", shows=led_by_the_broker)
    assert led_by_the_broker(partition)


def test_broker_restart_rejoins_with_a_new_broker_epoch(
    interop_cluster: InteropCluster, topic: str, tmp_path: Path
) -> None:
    cluster = interop_cluster
    wait_for_partitions_led_by_broker(cluster)
    before = broker_epochs(kwire_records(cluster, tmp_path / "before"))

    # SIGTERM: a controlled shutdown, which kwire must let finish. (Read from kwire's log,
    # not the broker's: a 4.3 broker's last lines, "asked us to exit controlled shutdown"
    # among them, can be lost as its JVM exits.)
    assert cluster.broker.stop(), "the broker did not shut down within the bound"
    records = kwire_records(cluster, tmp_path / "stopped")
    changes = [
        r["data"]
        for r in records
        if r["type"] == "BROKER_REGISTRATION_CHANGE_RECORD"
        and r["data"]["brokerId"] == BROKER_ID
        and r["data"]["brokerEpoch"] == before[-1]
    ]
    asked = [i for i, c in enumerate(changes) if c.get("inControlledShutdown") == 1]
    granted = [i for i, c in enumerate(changes) if c.get("fenced") == 1]
    assert asked and granted and asked[0] < granted[-1], changes

    cluster.broker.start()  # bounded: waits for RECOVERY -> RUNNING again
    records = kwire_records(cluster, tmp_path / "after")
    after = broker_epochs(records)
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1, after
    assert after[-1] > before[-1]  # a new incarnation: a new, later broker epoch
    assert is_unfenced(records, after[-1])

    # The rejoined broker leads t again and still serves every message.
    wait_for_partitions_led_by_broker(cluster)
    assert sorted(consume_all(cluster)) == MESSAGES
