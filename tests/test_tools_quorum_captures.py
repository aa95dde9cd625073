"""kwire.tools.quorum_text against genuine kafka-metadata-quorum output: each captured
DescribeQuorum response (with the cluster id of the DescribeCluster answer on the same
connection), decoded and formatted, is exactly the text the genuine tool printed, in
Kafka 3.9's or 4.3.1's form. The captures' texts are not human readable (no "ms ago"), so
they hold no value that depends on when they were printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kwire.protocol.framing import decode_response
from kwire.protocol.messages.describe_cluster import DescribeClusterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumResponse
from kwire.tools.quorum_text import (
    QuorumError,
    TextRelease,
    quorum_info,
    replication_text,
    status_text,
)

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
_INVOCATION = re.compile(
    r"^=== \[.*\] \$ <kafka>/bin/kafka-metadata-quorum\.sh .* describe (--\w+)$"
)

# (scenario directory, transcript, Kafka release of the tool, texts when there is no
# commands-output.txt: the status files in the order they were printed)
SCENARIOS = [
    ("kafka-4.3/quorum-prevote", "quorum-prevote.jsonl", TextRelease.KAFKA_4_3, None),
    ("kafka-4.3/broker-lifecycle", "broker-lifecycle.jsonl", TextRelease.KAFKA_4_3, None),
    ("kafka-3.9/multi-broker", "multi-broker.jsonl", TextRelease.KAFKA_3_9, None),
    (
        "kafka-3.9/dynamic-quorum",
        "dynamic-quorum-add-controller.jsonl",
        TextRelease.KAFKA_3_9,
        ["status-before.txt", "status-after.txt"],
    ),
    (
        "kafka-3.9/quorum-election",
        "quorum-election.jsonl",
        TextRelease.KAFKA_3_9,
        ["status-before.txt", "status-after.txt"],
    ),
]


def describe_answers(transcript: Path) -> list[tuple[str | None, DescribeQuorumResponse]]:
    """(cluster id from a DescribeCluster answer on the same connection or None, the
    DescribeQuorum response) of each DescribeQuorum answer, in time order."""
    frames = [json.loads(line) for line in transcript.read_text().splitlines() if line.strip()]
    requests = {(f["stream"], f["correlation_id"]): f for f in frames if f["dir"] == "request"}
    cluster_ids: dict[int, str] = {}
    out = []
    for f in sorted(frames, key=lambda f: f["t"]):
        request = requests.get((f["stream"], f["correlation_id"]))
        if f["dir"] != "response" or request is None:
            continue
        key, version = request["api_key"], request["api_version"]
        if key == 60:
            _, body = decode_response(bytes.fromhex(f["hex"]), key, version)
            assert isinstance(body, DescribeClusterResponse)
            cluster_ids[f["stream"]] = body.cluster_id
        elif key == 55:
            _, body = decode_response(bytes.fromhex(f["hex"]), key, version)
            assert isinstance(body, DescribeQuorumResponse)
            out.append((cluster_ids.get(f["stream"]), body))
    return out


def printed_texts(directory: Path, files: list[str] | None) -> list[tuple[str, str]]:
    """(option, text) of each kafka-metadata-quorum run, in order."""
    if files is not None:
        return [("--status", (directory / name).read_text().rstrip("\n")) for name in files]
    out: list[tuple[str, str]] = []
    lines: list[str] | None = None
    for line in (directory / "commands-output.txt").read_text().splitlines():
        if m := _INVOCATION.match(line):
            lines = []
            out.append((m.group(1), ""))
        elif line.startswith("--- rc=") and lines is not None:
            out[-1] = (out[-1][0], "\n".join(lines))
            lines = None
        elif line.startswith("==="):
            lines = None
        elif lines is not None:
            lines.append(line)
    return out


CASES = []
for scenario, transcript, release, files in SCENARIOS:
    directory = CAPTURES / scenario
    if not (directory / transcript).exists():
        continue
    answers = describe_answers(directory / transcript)
    texts = printed_texts(directory, files)
    if files is not None:  # only the status runs have texts: their answers had a cluster id
        answers = [a for a in answers if a[0] is not None]
    for index, ((option, text), (cluster_id, response)) in enumerate(
        zip(texts, answers, strict=False)
    ):
        CASES.append(
            pytest.param(option, text, cluster_id, response, release, id=f"{scenario}-{index}")
        )


def test_every_scenario_has_one_describe_quorum_answer_per_printed_text():
    for scenario, transcript, _, files in SCENARIOS:
        directory = CAPTURES / scenario
        if not (directory / transcript).exists():
            pytest.skip(f"no capture at {directory}")
        answers = describe_answers(directory / transcript)
        texts = printed_texts(directory, files)
        if files is not None:
            answers = [a for a in answers if a[0] is not None]
        assert len(answers) == len(texts) > 0, scenario


@pytest.mark.parametrize(("option", "text", "cluster_id", "response", "release"), CASES)
def test_formatted_answer_is_the_genuine_tools_text(option, text, cluster_id, response, release):
    info = quorum_info(response)
    if option == "--status":
        assert status_text(cluster_id, info, release) == text
    else:
        assert replication_text(info) == text


def test_kafka_4_3_leaves_out_a_missing_directory_id_where_3_9_prints_null():
    [(cluster_id, response)] = [
        a for a in describe_answers(CAPTURES / "kafka-3.9/multi-broker/multi-broker.jsonl") if a[0]
    ]
    info = quorum_info(response)
    assert '{"id": 1, "directoryId": null, "endpoints"' in status_text(
        cluster_id, info, TextRelease.KAFKA_3_9
    )
    assert '{"id": 1, "endpoints"' in status_text(cluster_id, info, TextRelease.KAFKA_4_3)


def test_human_readable_replication_prints_how_long_ago_each_timestamp_was():
    [_, (_, response)] = describe_answers(CAPTURES / "kafka-3.9/multi-broker/multi-broker.jsonl")
    info = quorum_info(response)
    leader = info.leader()
    assert leader.last_fetch_timestamp is not None
    now = leader.last_fetch_timestamp + 1234
    rows = replication_text(info, human_readable=True, now_ms=now).splitlines()
    assert rows[1].split("\t")[4].strip() == "1234 ms ago"
    # Kafka's relativeTimeMs refuses a timestamp after now (clock drift).
    with pytest.raises(QuorumError, match="possible drift in system clock"):
        replication_text(info, human_readable=True, now_ms=leader.last_fetch_timestamp - 1)


def test_an_error_code_in_the_answer_is_reported_with_kafkas_message():
    [_, (_, response)] = describe_answers(CAPTURES / "kafka-3.9/multi-broker/multi-broker.jsonl")
    response.topics[0].partitions[0].error_code = 6
    with pytest.raises(QuorumError, match=r"is not the current leader.*\(NOT_LEADER_OR_FOLLOWER\)"):
        quorum_info(response)
    response.topics[0].topic_name = "other"
    with pytest.raises(
        QuorumError, match="received a topic with name other when __cluster_metadata was expected"
    ):
        quorum_info(response)
