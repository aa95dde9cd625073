"""The records of a metadata snapshot (kwire.controller.snapshot_image) against every
genuine Kafka snapshot of the captures, and against replay itself.

Each genuine ``<end offset>-<epoch>.checkpoint`` whose metadata log is captured is
compared with kwire's records for the image that replayed that log below the end offset:
record by record, kind, version and every field (Kafka's MetadataImage.write decides them).
The bootstrap-only snapshots at offset 0 of dynamic quorums hold control records only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_controller_genuine import fields_of
from test_controller_integrity import (
    OPERATIONS,
    Leader,
    image_state,
    replayed,
    run_operations,
)

from kwire.controller.authorizer import AuthorizerSettings
from kwire.controller.image import MetadataImage
from kwire.controller.records import RecordAndVersion
from kwire.controller.snapshot_image import snapshot_records
from kwire.metadata_version import MetadataVersion
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.records import decode_batches, unframe_metadata_record

CAPTURES = Path(__file__).resolve().parents[1].parent / "shared" / "captures"
LOG_NAME = "00000000000000000000.log"


def genuine_snapshots() -> list[Path]:
    found = []
    for path in sorted(CAPTURES.glob("kafka-*/**/__cluster_metadata-0/*.checkpoint")):
        end_offset = int(path.name.split("-")[0])
        if end_offset > 0 and (path.parent / LOG_NAME).exists():
            found.append(path)
    return found


def read_records(path: Path) -> list[tuple[int, RecordAndVersion, int]]:
    """(offset, record, batch number) of the metadata records of a log or snapshot."""
    out = []
    for number, batch in enumerate(decode_batches(path.read_bytes())):
        if batch.is_control:
            continue
        for r in batch.records:
            api_key, version, body = unframe_metadata_record(r.value)
            record = METADATA_RECORDS[api_key].decode(body, version)
            out.append((batch.offset_of(r), RecordAndVersion(record, version), number))
    return out


def image_before(log: Path, end_offset: int) -> MetadataImage:
    image = MetadataImage()
    for offset, rv, _ in read_records(log):
        if offset >= end_offset:
            break
        image.replay(rv.record, rv.version, offset)
    return image


def by_rule(records: list[RecordAndVersion]) -> list[Any]:
    """Kind, version and fields of each record, with the ConfigRecords (all together after
    the topics) as one group per resource: Kafka orders config resources by
    ConfigResource.hashCode, which uses its enum type's identity hash, different in each
    JVM run; within a resource the order is Kafka's HashMap order and compared exactly."""
    out: list[Any] = []
    configs: dict[tuple[int, str], list[Any]] = {}
    for rv in records:
        if isinstance(rv.record, ConfigRecord):
            if not configs:
                out.append(configs)
            key = (rv.record.resource_type, rv.record.resource_name)
            configs.setdefault(key, []).append((rv.version, fields_of(rv.record)))
        else:
            out.append((rv.api_key, rv.version, fields_of(rv.record)))
    return out


def kafka_4_cluster(path: Path) -> bool:
    return "kafka-4" in str(path.relative_to(CAPTURES))


SNAPSHOTS = genuine_snapshots()


@pytest.mark.skipif(not SNAPSHOTS, reason=f"no genuine snapshots under {CAPTURES}")
@pytest.mark.parametrize(
    "checkpoint", SNAPSHOTS, ids=[str(p.relative_to(CAPTURES)) for p in SNAPSHOTS]
)
def test_kwire_writes_the_records_of_every_genuine_snapshot(checkpoint: Path) -> None:
    end_offset = int(checkpoint.name.split("-")[0])
    image = image_before(checkpoint.parent / LOG_NAME, end_offset)
    genuine = by_rule([rv for _, rv, _ in read_records(checkpoint)])
    ours = by_rule(snapshot_records(image, kafka_4=kafka_4_cluster(checkpoint)))
    assert ours == genuine


# -- a snapshot replays to the image it was written from ----------------------------------------

# What a snapshot does not carry by nature: offsets (registration offsets, feature history,
# the last offset), the broker that took the last producer id block (written as -1), and
# the capacities and orders of Kafka's hash tables, which follow the history of the keys.
NOT_IN_A_SNAPSHOT = {
    "register_broker_offsets",
    "feature_history",
    "last_applied_offset",
    "last_producer_ids_broker",
    "acl_table_capacity",
    "isr_table_capacity",
    "elr_table_capacity",
    "kafka_orders",
    "delta_touches",
}


def snapshot_state(image: MetadataImage) -> dict[str, Any]:
    state = {k: v for k, v in image_state(image).items() if k not in NOT_IN_A_SNAPSHOT}
    if image.metadata_version_level >= MetadataVersion.IBP_4_0_IV0:
        # Kafka 4.x has no ZK migration state: its snapshots carry none (FeaturesImage.write
        # of 4.3.1), so a cluster upgraded from 3.x forgets it.
        state.pop("zk_migration_state")
    for index in ("isr_members", "elr_members"):
        state[index] = {
            broker: {topic: sorted(ps) for topic, ps in by_topic.items()}
            for broker, by_topic in state[index].items()
        }
    return state


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(OPERATIONS, max_size=40))
@example(operations=[("features", 22, 1), ("append",)])  # a 3.x cluster upgraded to 4.0-IV0
def test_replaying_the_snapshot_of_an_image_gives_an_equal_image(
    operations: list[tuple[Any, ...]],
) -> None:
    leader = Leader.started(
        broker_session_timeout_ms=9000,
        authorizer=AuthorizerSettings(super_users=frozenset({"User:ANONYMOUS"})),
    )
    run_operations(leader, operations)
    committed = replayed(leader.log)

    restored = MetadataImage()
    for offset, rv in enumerate(snapshot_records(committed)):
        restored.replay(rv.record, rv.version, offset)

    assert snapshot_state(restored) == snapshot_state(committed)
    # And the snapshot of the restored image holds the same records (orders aside).
    again = sorted(repr(by_rule([rv])) for rv in snapshot_records(restored))
    assert again == sorted(repr(by_rule([rv])) for rv in snapshot_records(committed))
