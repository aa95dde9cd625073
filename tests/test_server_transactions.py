"""A metadata log that ends inside a metadata transaction, as a controller failover leaves
Kafka's during a ZooKeeper migration (QuorumControllerTest.testFailoverDuringMigrationTransaction's
records, as real batches in a real log): restarted as a sole voter, kwire writes Kafka's
abort before anything else and its image leaves the partial records out; no snapshot is
taken inside a transaction; kwire history and kwire shell show the image Kafka's loader
publishes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kwire.controller.records import versioned_records
from kwire.log.snapshot_io import iter_snapshot_records
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.abort_transaction_record import (
    AbortTransactionRecord,
)
from kwire.protocol.messages.metadata_records.begin_transaction_record import (
    BeginTransactionRecord,
)
from kwire.protocol.messages.metadata_records.end_transaction_record import EndTransactionRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import Record, build_batch, encode_batch
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.write_path import frame_records
from kwire.storage import format_storage, random_uuid
from kwire.testing.process import free_port
from kwire.tools import history, shell
from kwire.tools.history_source import MetadataDirectory

SPAM = uuid.UUID("aaf4492e-9438-4479-a412-2f3f4fd60534")  # qvRJLpDYRHmgEi8_TPBYTQ


def zk_migration_records() -> list[Message]:
    """QuorumControllerTest.ZK_MIGRATION_RECORDS: topic spam and two of its partitions."""
    return [
        TopicRecord(name="spam", topic_id=SPAM),
        PartitionRecord(partition_id=0, topic_id=SPAM, replicas=[0, 1, 2], isr=[0, 1, 2], leader=0),
        PartitionRecord(partition_id=1, topic_id=SPAM, replicas=[1, 2, 0], isr=[1, 2, 0], leader=1),
    ]


def formatted(tmp_path: Path, release: str = "3.9-IV0") -> ControllerServerConfig:
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        }
    )
    format_storage(config, random_uuid(), release)
    return config


def started(config: ControllerServerConfig, **kwargs: Any) -> ControllerNode:
    """A sole voter started on its directory: it replays the log, leads and activates."""
    node = ControllerNode(build_settings(config), **kwargs)
    try:
        node.start()
    except BaseException:
        node.close()
        raise
    assert node.raft.is_leader
    return node


def append(node: ControllerNode, records: Sequence[Message]) -> int:
    """Append ``records`` as one batch of the node's epoch (as its raft layer frames
    them), committed as the log of a controller that then failed; returns the base offset."""
    base = node.log.end_offset
    values = frame_records(versioned_records(records, node.controller.metadata_version))
    batch = build_batch(
        [Record(offset_delta=i, value=v) for i, v in enumerate(values)],
        base_timestamp=int(time.time() * 1000),
    )
    node.log.append_as_leader(encode_batch(batch), node.raft.epoch)
    return base


def cut_migration(config: ControllerServerConfig) -> int:
    """A log whose ZK migration transaction was cut by a failover (beginMigration, one
    acceptBatch, then the controller died); returns the Begin's offset."""
    node = started(config)
    try:
        start = append(node, [BeginTransactionRecord(name="ZK Migration")])
        append(node, zk_migration_records())
    finally:
        node.close()
    return start


def data_records(config: ControllerServerConfig, epoch: int) -> list[Message]:
    directory = MetadataDirectory(Path(config.log_dirs[0]))
    return [r for b in directory.batches() if b.epoch == epoch for _, r, _ in b.records]


def test_a_sole_voter_restarted_inside_a_transaction_aborts_it_before_anything_else(
    tmp_path: Path,
) -> None:
    config = formatted(tmp_path)
    cut_migration(config)
    node = started(config)
    try:
        written = data_records(config, node.raft.epoch)
        assert isinstance(written[0], AbortTransactionRecord)
        assert written[0].reason == "Controller failover"
        assert "spam" not in node.controller.image.topic_ids_by_name
        assert node.controller.image.transaction_start_offset == -1
        epoch = node.raft.epoch
    finally:
        node.close()
    # The log now holds the abort: a second restart replays it and writes no other.
    again = started(config)
    try:
        assert "spam" not in again.controller.image.topic_ids_by_name
        aborts = [
            r
            for e in range(epoch, again.raft.epoch + 1)
            for r in data_records(config, e)
            if isinstance(r, AbortTransactionRecord)
        ]
        assert len(aborts) == 1
    finally:
        again.close()


class Halted(Exception):
    pass


def test_a_transaction_below_3_6_iv1_cannot_be_aborted_and_activation_is_fatal(
    tmp_path: Path,
) -> None:
    # ActivationRecordsGenerator.recordsForNonEmptyLog: a RuntimeException, which
    # QuorumController's fatal fault handler turns into the process's end.
    config = formatted(tmp_path, "3.6-IV0")
    start = cut_migration(config)
    faults: list[tuple[str, BaseException]] = []

    def fault_handler(message: str, cause: BaseException) -> Any:
        faults.append((message, cause))
        raise Halted

    with pytest.raises(Halted):
        started(config, fault_handler=fault_handler)
    [(message, cause)] = faults
    assert message == "exception while completing controller activation"
    assert str(cause) == (
        f"Detected in-progress transaction at offset {start}, but the metadata.version "
        "3.6-IV0 does not support transactions. Cannot continue."
    )


def test_no_snapshot_is_taken_inside_a_transaction_and_the_due_one_follows_its_end(
    tmp_path: Path,
) -> None:
    node = started(formatted(tmp_path))
    try:
        now = int(time.time() * 1000)
        for records in ([BeginTransactionRecord(name="ZK Migration")], zk_migration_records()):
            base = append(node, records)
            for offset, record in enumerate(records, base):
                node.controller.replay(record, 0, offset)
        node.snapshots.wanted = "we have replayed at least 20971520 bytes"
        end = node.log.end_offset
        assert node.snapshots.maybe_write(node.controller, end, now) is None
        assert node.snapshots.write(node.controller, end, now, "asked") is None
        assert node.snapshots.wanted is not None  # still due
        assert not [s for s in node.log.snapshots.ids() if s.end_offset == end]
        base = append(node, [EndTransactionRecord()])
        node.controller.replay(EndTransactionRecord(), 0, base)
        path = node.snapshots.maybe_write(node.controller, base + 1, now)
        assert path is not None and path.name.startswith(f"{base + 1:020d}-")
        latest = node.log.latest_snapshot_id()
        assert latest is not None and latest.end_offset == base + 1
        records = [
            r for batch in iter_snapshot_records(node.log.directory, latest) for _, r, _ in batch
        ]
        assert [r.name for r in records if isinstance(r, TopicRecord)] == ["spam"]
    finally:
        node.close()


def test_kwire_history_shows_the_image_without_the_open_transaction_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = formatted(tmp_path)
    start = cut_migration(config)
    data = str(config.log_dirs[0])
    assert history.main([data, "image"]) == 0
    out = capsys.readouterr().out
    assert "topic spam" not in out
    assert f"# the metadata transaction begun at offset {start} is still open" in out
    assert history.main([data, "image", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["openTransaction"] == start
    assert not [k for k in document["facts"] if k.startswith("topic ")]
    # Once a restart aborted it, the timeline says what the abort did.
    started(config).close()
    assert history.main([data, "log"]) == 0
    out = capsys.readouterr().out
    [created] = [line for line in out.splitlines() if "topic spam created" in line]
    assert f"(in the metadata transaction begun at offset {start}) -- TopicRecord" in created
    aborted = [line for line in out.splitlines() if "aborted" in line]
    assert len(aborted) == 1
    assert (
        f"metadata transaction aborted (Controller failover): the records from offset {start}"
        " on take no effect -- AbortTransactionRecord reason=Controller failover"
    ) in aborted[0]
    assert history.main([data, "image"]) == 0
    out = capsys.readouterr().out
    assert "topic spam" not in out and "still open" not in out


def test_kwire_shell_shows_the_image_kafkas_loader_published_before_the_begin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = formatted(tmp_path)
    start = cut_migration(config)
    data = str(config.log_dirs[0])
    assert shell.main(["--directory", data, "ls", "/image/topics/byName"]) == 0
    assert "spam" not in capsys.readouterr().out.split()
    assert shell.main(["--directory", data, "cat", "/image/provenance"]) == 0
    assert capsys.readouterr().out.startswith(f"offset {start - 1}, ")
