"""kwire history against the genuine Kafka 3.9 multi-broker capture: its timelines state what
notes.txt says happened, at the offsets and times kafka-dump-log printed; the image at each
snapshot's end offset, rebuilt from the log alone, equals the genuine snapshot's; the diff
between two snapshots lists what their dumps differ in."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kwire.tools.history import main
from kwire.tools.history_image import diff_lines, image_facts
from kwire.tools.history_source import HistoryUnavailable, MetadataDirectory
from kwire.tools.history_timeline import broker_filter, timeline, topic_filter, utc_text

MULTI_BROKER = (
    Path(__file__).resolve().parents[2] / "shared" / "captures" / "kafka-3.9" / "multi-broker"
)
DATA = MULTI_BROKER / "controller-1-metadata"
LOG_DUMP = MULTI_BROKER / "dump-controller-1-metadata-00000000000000000000.log.txt"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no capture at {MULTI_BROKER}")

_BATCH = re.compile(r"^baseOffset: \d+ .* CreateTime: (\d+) ")
_RECORD = re.compile(r"^\| offset: (\d+) .* payload: (\{.*\})$")


def dumped_records() -> list[tuple[int, int, dict]]:
    """(offset, batch CreateTime, payload) of every record kafka-dump-log printed."""
    out = []
    batch_time = 0
    for line in LOG_DUMP.read_text().splitlines():
        if m := _BATCH.match(line):
            batch_time = int(m.group(1))
        elif m := _RECORD.match(line):
            out.append((int(m.group(1)), batch_time, json.loads(m.group(2))))
    return out


def dumped(kind: str, **data: object) -> list[tuple[int, int, dict]]:
    return [
        (offset, t, p)
        for offset, t, p in dumped_records()
        if p["type"] == kind and all(p["data"].get(k) == v for k, v in data.items())
    ]


def lines_of(select, **kwargs) -> dict[int, tuple[int, str]]:
    found = timeline(MetadataDirectory(DATA), select, **kwargs)
    return {line.offset: (line.timestamp_ms, line.sentence) for line in found}


def test_broker_3_timeline_says_its_session_expired_when_the_controller_fenced_it():
    # notes.txt: kill -9 of broker 3, then "Fencing broker 3 because its session has timed out."
    lines = lines_of(broker_filter(3))
    [(offset, batch_time, _)] = dumped(
        "BROKER_REGISTRATION_CHANGE_RECORD", brokerId=3, brokerEpoch=17, fenced=1
    )
    assert lines[offset][0] == batch_time
    assert lines[offset][1].startswith("broker 3 fenced: its session expired")
    assert "BrokerRegistrationChangeRecord brokerEpoch=17 fenced=1" in lines[offset][1]
    assert utc_text(batch_time).startswith("2026-11-22T07:23:55.")  # notes: 07:23:55,647


def test_partition_changes_in_the_fencing_batch_are_explained_by_the_fencing():
    # notes.txt: handleBrokerFenced changed 7 partitions, t3-0 and t3-5 moved leader 3 -> 4.
    lines = lines_of(broker_filter(3))
    [(fence_offset, batch_time, _)] = dumped(
        "BROKER_REGISTRATION_CHANGE_RECORD", brokerId=3, fenced=1, brokerEpoch=17
    )
    changes = [
        o
        for o, t, p in dumped_records()
        if t == batch_time and p["type"] == "PARTITION_CHANGE_RECORD"
    ]
    assert len(changes) == 7
    for offset in changes:
        assert lines[offset][1].split(" -- ")[0].endswith(": broker 3 was fenced")
    moved = [lines[o][1] for o in changes if "leader 3 -> 4" in lines[o][1]]
    assert [s.split()[1] for s in moved] == ["t3-0", "t3-5"]


def test_broker_3_restart_is_a_registration_of_a_new_incarnation_then_an_unfencing():
    lines = lines_of(broker_filter(3))
    [(offset, _, payload)] = dumped("REGISTER_BROKER_RECORD", brokerId=3, brokerEpoch=101)
    assert lines[offset][1].startswith(
        f"broker 3 registered again: a new incarnation {payload['data']['incarnationId']}"
        " (the broker restarted; previous broker epoch 17)"
    )
    [(unfenced, _, _)] = dumped(
        "BROKER_REGISTRATION_CHANGE_RECORD", brokerId=3, brokerEpoch=101, fenced=-1
    )
    assert lines[unfenced][1].startswith("broker 3 unfenced")
    # t1-2 (replicas [3]) had no leader while 3 was fenced; the unfencing elected it.
    assert lines[unfenced + 1][1].startswith(
        "partition t1-2 leader none -> 3 (leader epoch 2): broker 3 was unfenced"
    )


def test_broker_4_sigterm_is_a_controlled_shutdown_then_a_fencing_then_its_unregistration():
    # notes.txt: controlled shutdown granted (inControlledShutdown=1), shut down, then unregistered.
    lines = lines_of(broker_filter(4))
    [(shutdown, _, _)] = dumped(
        "BROKER_REGISTRATION_CHANGE_RECORD", brokerId=4, inControlledShutdown=1
    )
    [(fenced, _, _)] = dumped("BROKER_REGISTRATION_CHANGE_RECORD", brokerId=4, fenced=1)
    [(gone, _, _)] = dumped("UNREGISTER_BROKER_RECORD", brokerId=4)
    assert lines[shutdown][1].startswith("broker 4 began a controlled shutdown")
    assert lines[fenced][1].startswith("broker 4 fenced: its controlled shutdown completed")
    assert lines[gone][1].startswith("broker 4 unregistered (broker epoch 22)")
    moved = [s for o, (_, s) in lines.items() if shutdown < o < fenced]
    assert moved and all(
        s.split(" -- ")[0].endswith("broker 4 is in controlled shutdown") for s in moved
    )


def test_t3_0_timeline_shows_the_preferred_election_and_both_reassignments():
    # notes.txt: preferred election moved t3-0; reassignment [3,4,2] -> [4,3] -> [2,3,4].
    lines = lines_of(topic_filter("t3", 0))
    sentences = [s.split(" -- ")[0] for _, (_, s) in sorted(lines.items())]
    elections = [s for s in sentences if "preferred leader election" in s]
    assert elections == [
        "partition t3-0 leader 4 -> 3 (leader epoch 2): preferred leader election (kafka-leader-election or the automatic rebalance)"
    ]
    reassigned = [s for s in sentences if "reassignment" in s]
    assert "replicas [3, 4, 2] -> [4, 3]" in reassigned[0]
    assert (
        "replicas [4, 3] -> [2, 3, 4], adding replicas [2]: reassignment in progress"
        in reassigned[1]
    )
    assert reassigned[2].endswith("reassignment completed")
    assert all(s.startswith(("topic t3", "partition t3-0", "config")) for s in sentences)


def test_isr_expansions_alone_come_from_the_leaders_alter_partition():
    lines = lines_of(topic_filter("t3", 1))
    [(offset, _, _)] = [d for d in dumped("PARTITION_CHANGE_RECORD", partitionId=1, isr=[4, 2, 3])]
    assert lines[offset][1].startswith(
        "partition t3-1 ISR expanded from [4, 2] to [4, 2, 3] (AlterPartition from broker 4)"
    )


@pytest.mark.parametrize(
    "snapshot",
    sorted(p.name for p in (DATA / "__cluster_metadata-0").glob("*.checkpoint"))
    if DATA.is_dir()
    else [],
)
def test_image_rebuilt_from_the_log_equals_the_genuine_snapshot_at_its_end_offset(snapshot):
    directory = MetadataDirectory(DATA)
    end = int(snapshot.split("-")[0])
    from_snapshot = directory.image_at(end)
    from_log = directory.image_at(end, use_snapshots=False)
    assert from_snapshot.snapshot is not None and from_snapshot.snapshot.end_offset == end
    assert from_log.snapshot is None
    assert image_facts(from_log.image) == image_facts(from_snapshot.image)


def test_an_image_between_snapshots_is_the_older_snapshot_plus_the_log():
    directory = MetadataDirectory(DATA)
    loaded = directory.image_at(100)
    assert loaded.snapshot is not None and loaded.snapshot.end_offset == 91
    assert image_facts(loaded.image) == image_facts(
        directory.image_at(100, use_snapshots=False).image
    )


def _checkpoint_partitions(end: int) -> dict[str, dict]:
    dump = MULTI_BROKER / f"dump-controller-1-metadata-{end:020d}-0000000001.checkpoint.txt"
    names, parts = {}, {}
    for line in dump.read_text().splitlines():
        if m := _RECORD.match(line):
            payload = json.loads(m.group(2))
            data = payload["data"]
            if payload["type"] == "TOPIC_RECORD":
                names[data["topicId"]] = data["name"]
            elif payload["type"] == "PARTITION_RECORD":
                parts[f"{names[data['topicId']]}-{data['partitionId']}"] = data
    return parts


def test_diff_between_two_snapshots_lists_the_partitions_their_dumps_differ_in():
    directory = MetadataDirectory(DATA)
    before, after = _checkpoint_partitions(63), _checkpoint_partitions(91)
    differing = {k for k in after if before.get(k) != after[k]} | (before.keys() - after.keys())
    lines = diff_lines(
        image_facts(directory.image_at(63).image), image_facts(directory.image_at(91).image)
    )
    changed = {line.split(":")[0].split()[-1] for line in lines if line.split()[1] == "partition"}
    assert changed == differing
    assert "~ broker 3: fenced false -> true" in lines


def test_cleaned_log_says_the_image_below_the_oldest_snapshot_is_unavailable(tmp_path):
    partition = tmp_path / "__cluster_metadata-0"
    partition.mkdir()
    for end in (91, 448):
        name = f"{end:020d}-0000000001.checkpoint"
        shutil.copy(DATA / "__cluster_metadata-0" / name, partition / name)
    directory = MetadataDirectory(tmp_path)
    assert image_facts(directory.image_at(91).image) == image_facts(
        MetadataDirectory(DATA).image_at(91).image
    )
    with pytest.raises(
        HistoryUnavailable, match="unavailable: the log was cleaned below offset 448"
    ):
        directory.image_at(63)


def test_command_exits_1_with_the_reason_for_an_offset_beyond_the_log(capsys):
    assert main([str(DATA), "image", "--offset", "100000"]) == 1
    assert "offset 100000 is beyond the end of the log (482)" in capsys.readouterr().err


def test_command_prints_the_image_as_json_and_a_timeline_as_lines(capsys):
    assert main([str(DATA), "image", "--offset", "91", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["facts"]["broker 3"]["fenced"] is True
    assert main([str(DATA), "broker", "3", "--from", "86", "--to", "87"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].split()[0] == "86"


def test_timeline_of_a_cleaned_log_starts_at_its_oldest_snapshot_and_says_so(tmp_path, capsys):
    partition = tmp_path / "__cluster_metadata-0"
    partition.mkdir()
    name = "00000000000000000448-0000000001.checkpoint"
    shutil.copy(DATA / "__cluster_metadata-0" / name, partition / name)
    notes: list[str] = []
    assert list(timeline(MetadataDirectory(tmp_path), broker_filter(3), notes=notes)) == []
    assert notes == ["the log below offset 448 was cleaned: history starts at snapshot 448"]
    assert main([str(tmp_path), "broker", "3", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in out] == [{"note": notes[0]}]


def test_timeline_as_json_gives_offset_time_and_sentence_per_line(capsys):
    assert main([str(DATA), "topic", "t1", "--from", "130", "--json"]) == 0
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    [(offset, batch_time, _)] = dumped("REMOVE_TOPIC_RECORD")
    assert line["offset"] == offset and line["timestampMs"] == batch_time
    assert line["time"] == utc_text(batch_time)
    assert line["sentence"].startswith(
        "topic t1 deleted (topic id GKZNh4pxTx-LLqvQhJFsOQ, 3 partitions)"
    )


def test_quorum_timeline_names_each_leader_the_genuine_status_printed():
    # Kafka 4.3.1's quorum-prevote: kill -9 of leader 2, then SIGTERM of leader 3; the
    # status files say who led each epoch.
    scenario = MULTI_BROKER.parents[1] / "kafka-4.3" / "quorum-prevote"
    if not (scenario / "metadata-log-1").is_dir():
        pytest.skip(f"no capture at {scenario}")
    led = set()
    for status in scenario.glob("status-*.txt"):
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        led.add((int(fields["LeaderId"]), int(fields["LeaderEpoch"])))
    found = timeline(MetadataDirectory(scenario / "metadata-log-1"), lambda _s: False, quorum=True)
    elected = re.compile(r"^controller (\d+) became the quorum leader of epoch (\d+) ")
    leaders = {(int(m[1]), int(m[2])) for line in found if (m := elected.match(line.sentence))}
    assert leaders == led == {(2, 2), (3, 3), (1, 4)}
