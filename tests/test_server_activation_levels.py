"""A new kwire quorum writes the activation records Kafka writes at the level it was formatted at.

At a 4.x level, as Kafka 4.3.1's ActivationRecordsGenerator.recordsForEmptyLog: the
bootstrap records as formatted (metadata.version, then every other feature by name), and
with eligible.leader.replicas.version on, the cluster's min.insync.replicas, in one metadata
transaction. At 3.9-IV0, as Kafka 3.9.0: metadata.version and the ZK migration state.
Compared with the genuine logs of captures/kafka-4.3/broker-lifecycle (4.3-IV0) and
captures/kafka-3.9 (3.9-IV0).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from server_harness import KwireServer, run_kwire

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
GENUINE_43 = CAPTURES / "kafka-4.3" / "broker-lifecycle"
GENUINE_43_DUMP = GENUINE_43 / "dump-metadata-log-1-00000000000000000000.log.txt"

pytestmark = pytest.mark.skipif(
    not GENUINE_43_DUMP.exists(), reason=f"no genuine Kafka 4.3 capture at {GENUINE_43}"
)


def genuine_activation(dump: Path) -> list[dict[str, Any]]:
    """The payloads of the first metadata batch after the LeaderChange in a genuine dump."""
    payloads: list[dict[str, Any]] = []
    batch = -1
    for line in dump.read_text().splitlines():
        if line.startswith("baseOffset:"):
            batch += 1
            if payloads:
                break
        match = re.search(r"payload: (\{.*\})$", line)
        if match is not None and batch >= 1:
            payloads.append(json.loads(match.group(1)))
    return payloads


def kwire_activation(server: KwireServer) -> list[dict[str, Any]]:
    segment = server.data_dir / "__cluster_metadata-0" / "00000000000000000000.log"
    result = run_kwire("kwire.tools.dump_log", "--json", segment, timeout=60)
    assert result.returncode == 0, result.stderr
    payloads: list[dict[str, Any]] = []
    for line in result.stdout.splitlines():
        entry = json.loads(line)
        if entry["kind"] == "record" and "payload" in entry:
            payloads.append(entry["payload"])
            if entry["payload"]["type"] == "END_TRANSACTION_RECORD":
                break
    return payloads


@pytest.mark.parametrize(
    ("release_version", "min_insync"),
    [("4.3-IV0", None), ("4.3-IV0", "2")],
    ids=["default min.insync.replicas", "min.insync.replicas=2"],
)
def test_at_4_3_iv0_the_activation_records_are_the_genuine_ones(
    tmp_path: Path, release_version: str, min_insync: str | None
) -> None:
    extra = {"min.insync.replicas": min_insync} if min_insync else {}
    with KwireServer.create(
        tmp_path, release_version=release_version, extra_properties=extra
    ) as server:
        ours = kwire_activation(server)
    genuine = genuine_activation(GENUINE_43_DUMP)
    assert [p["type"] for p in genuine][0] == "BEGIN_TRANSACTION_RECORD"
    if min_insync is not None:
        # Kafka takes the controller's own min.insync.replicas for the cluster default.
        genuine = [
            {**p, "data": {**p["data"], "value": min_insync}} if p["type"] == "CONFIG_RECORD" else p
            for p in genuine
        ]
    assert ours == genuine


def test_at_3_9_iv0_the_activation_records_are_kafka_3_9s(tmp_path: Path) -> None:
    with KwireServer.create(tmp_path, release_version="3.9-IV0") as server:
        ours = kwire_activation(server)
    assert [(p["type"], p["version"]) for p in ours] == [
        ("BEGIN_TRANSACTION_RECORD", 0),
        ("FEATURE_LEVEL_RECORD", 0),
        ("ZK_MIGRATION_STATE_RECORD", 0),
        ("END_TRANSACTION_RECORD", 0),
    ]
    assert ours[1]["data"] == {"name": "metadata.version", "featureLevel": 21}
