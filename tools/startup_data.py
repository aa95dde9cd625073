"""Test data for start-up at scale: a kwire data directory whose newest snapshot holds N
partitions and whose log holds a tail after it, built without CreateTopics.

    python -m tools.startup_data DIR --partitions 1000000 [--brokers 3] [--tail-topics 10]

What it writes, as a node that installed a snapshot and kept running would hold:
- ``format_storage`` at 3.9-IV0 (meta.properties, bootstrap.checkpoint), then one start of
  a sole-voter node: its quorum-state, the activation records and its own registration;
- ``--brokers`` RegisterBrokerRecords (unfenced, one log directory each) replayed into that
  node's image, and topics of 100 partitions, replication factor 3 (replica ``k`` of
  partition ``p`` of topic ``t`` on broker ``(t * 100 + p + k) % brokers + 1``), put straight
  into the image (no replay, no CreateTopics), named ``t0000000``... with ids from a seeded
  generator;
- the snapshot of that image, written as a node writes it (``snapshot_records``,
  ``write_snapshot``) with id ``(E, epoch)``, E counting the records it stands for; the log
  then restarts at E (as after a FetchSnapshot) and gets ``--tail-topics`` more topics,
  each a batch of a TopicRecord and its 100 PartitionRecords followed by a NoOpRecord batch.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path

from kwire.controller.image import MetadataImage
from kwire.controller.records import RecordAndVersion
from kwire.controller.registrations import PartitionRegistration, TopicInfo
from kwire.log.snapshot_io import write_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import Record, build_batch, encode_batch
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.write_path import frame_records
from kwire.storage import format_storage

PARTITIONS_PER_TOPIC = 100
REPLICATION_FACTOR = 3
CLUSTER_ID = "a3dpcmUtc3RhcnR1cC1ibg"  # base64url of b"kwire-startup-bn"


def node_config(data: Path, port: int = 19093) -> ControllerServerConfig:
    """The properties of the one-voter node that owns ``data`` (node id 1)."""
    return ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{port}",
            "listeners": f"CONTROLLER://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data),
        }
    )


def topic_ids(count: int, seed: int) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128)) for _ in range(count)]


def broker_record(broker_id: int, epoch: int) -> RegisterBrokerRecord:
    return RegisterBrokerRecord(
        broker_id=broker_id,
        incarnation_id=uuid.UUID(int=broker_id),
        broker_epoch=epoch,
        end_points=[
            RegisterBrokerRecord.BrokerEndpoint(
                name="PLAINTEXT", host="127.0.0.1", port=9092 + broker_id, security_protocol=0
            )
        ],
        rack=None,
        fenced=False,
        log_dirs=[broker_directory(broker_id)],
    )


def broker_directory(broker_id: int) -> uuid.UUID:
    return uuid.UUID(int=(1 << 100) + broker_id)


def placement(topic: int, partition: int, brokers: int) -> tuple[int, ...]:
    start = topic * PARTITIONS_PER_TOPIC + partition
    return tuple((start + k) % brokers + 1 for k in range(REPLICATION_FACTOR))


def partition_record(
    topic_id: uuid.UUID, topic: int, partition: int, brokers: int
) -> PartitionRecord:
    replicas = list(placement(topic, partition, brokers))
    return PartitionRecord(
        partition_id=partition,
        topic_id=topic_id,
        replicas=replicas,
        isr=replicas,
        leader=replicas[0],
        directories=[broker_directory(b) for b in replicas],
    )


def add_topics(image: MetadataImage, ids: list[uuid.UUID], first: int, brokers: int) -> None:
    """Put topics ``first``... straight into ``image`` (their partitions, not the indexes
    a replay keeps: only a snapshot of the image is written from it)."""
    shared: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[uuid.UUID, ...]]] = {}
    for index, topic_id in enumerate(ids, first):
        info = TopicInfo(name=f"t{index:07d}", topic_id=topic_id)
        for p in range(PARTITIONS_PER_TOPIC):
            replicas = placement(index, p, brokers)
            if replicas not in shared:
                shared[replicas] = (replicas, tuple(broker_directory(b) for b in replicas))
            replicas, directories = shared[replicas]
            info.partitions[p] = PartitionRegistration(
                replicas=replicas,
                directories=directories,
                isr=replicas,
                leader=replicas[0],
                leader_epoch=0,
                partition_epoch=0,
            )
        image.topics[topic_id] = info
        image.topic_ids_by_name[info.name] = topic_id


def generate(
    data: Path,
    partitions: int,
    *,
    brokers: int = 3,
    tail_topics: int = 10,
    seed: int = 1,
    port: int = 19093,
) -> SnapshotId:
    """Write the data directory described in the module docstring; returns the snapshot id."""
    if brokers < REPLICATION_FACTOR:
        raise ValueError(f"at least {REPLICATION_FACTOR} brokers are needed, not {brokers}")
    config = node_config(data, port)
    format_storage(config, CLUSTER_ID, "3.9-IV0")
    node = ControllerNode(build_settings(config))
    try:
        node.start()  # a sole voter: leads, writes the bootstrap records, registers itself
        epoch = node.raft.epoch
        image = node.controller.image
        for broker_id in range(1, brokers + 1):
            image.replay(broker_record(broker_id, node.log.end_offset), 0, node.log.end_offset)
        topics = partitions // PARTITIONS_PER_TOPIC
        ids = topic_ids(topics + tail_topics, seed)
        add_topics(image, ids[:topics], 0, brokers)
        values = frame_records(list(node.snapshots.source(image)))
        end = node.log.end_offset + brokers + topics * (PARTITIONS_PER_TOPIC + 1)
        snapshot_id = SnapshotId(end, epoch)
        now = int(time.time() * 1000)
        write_snapshot(
            node.log.directory, snapshot_id, values, last_contained_log_timestamp=now, now_ms=now
        )
        node.log.snapshots.add(snapshot_id)
        node.log.truncate_fully_and_start_at(end)
        version = node.controller.metadata_version.partition_record_version
        for index in range(topics, topics + tail_topics):
            topic_id = ids[index]
            items = [RecordAndVersion(TopicRecord(name=f"t{index:07d}", topic_id=topic_id), 0)]
            items += [
                RecordAndVersion(partition_record(topic_id, index, p, brokers), version)
                for p in range(PARTITIONS_PER_TOPIC)
            ]
            for batch in (items, [RecordAndVersion(NoOpRecord(), 0)]):
                records = [
                    Record(offset_delta=i, value=v) for i, v in enumerate(frame_records(batch))
                ]
                node.log.append_as_leader(
                    encode_batch(build_batch(records, base_timestamp=now)), epoch
                )
        return snapshot_id
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--partitions", type=int, default=100_000)
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--tail-topics", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    snapshot_id = generate(
        args.directory, args.partitions, brokers=args.brokers, tail_topics=args.tail_topics
    )
    print(f"snapshot {snapshot_id} written in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
