"""Benchmarks for kwire.log / kwire.records (not a test; finishes in well under 2 min).

(a) Append throughput with an fsync per batch, beside the raw floor measured in the
    same run: write + fdatasync of same-size buffers to a plain file.
(b) Decode throughput of a ~100 MB metadata log made of real metadata records, built
    with the generated classes and written in batches as kwire's controller writes them
    (one batch per controller operation: a topic creation is TopicRecord + its
    ConfigRecords + a PartitionRecord per partition, a fenced broker is its
    BrokerRegistrationChangeRecord + the PartitionChangeRecords moving its leaderships,
    NoOpRecord and ProducerIdsRecord batches of one record, ...; record versions as
    kwire.controller.records.record_version gives them for --metadata-version: by default
    3.9-IV0's, so PartitionRecord/PartitionChangeRecord v1 with Directories; 22 (4.0-IV0)
    gives v2, whose extra ELR fields are tagged and stay empty). Two decode modes are
    timed over the whole log, read back through MetadataLog:
      (i)  CRC + batches + records + metadata unframing (bodies left as bytes);
      (ii) the same, plus decoding every body into its record class
           (METADATA_RECORDS[api_key].decode(body, version)): a full decode.
    To keep generation short, 20,000 distinct batches (~7 % of the log) are generated
    and appended over and over; MetadataLog.append_as_leader rewrites each copy's base
    offset and leader epoch (kwire.records.set_base_offset_and_epoch), so the log's
    offsets are contiguous as in a real one. Decoding does no caching, so repeats cost
    what distinct batches would.

Usage: python tools/bench_log.py [--dir DIR] [--appends N] [--decode-mb MB]
                                 [--metadata-version LEVEL] [--decode-rounds N]
DIR should be on the disk you care about (default: a temp dir under the current
directory, as /tmp may be tmpfs, where fsync costs nothing).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

from kwire.controller.records import LATEST_PRODUCTION, metadata_version, record_version
from kwire.log import MetadataLog, MetadataLogConfig
from kwire.metadata_version import MetadataVersion
from kwire.protocol import _codec
from kwire.protocol._codec import Message
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.producer_ids_record import ProducerIdsRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.records import (
    Record,
    build_batch,
    decode_batches,
    encode_batch,
    frame_metadata_record,
    unframe_metadata_record,
)

# (api key, version, body size) roughly as in a real cluster's metadata log:
# PartitionRecord, PartitionChangeRecord, NoOpRecord, RegisterBrokerRecord,
# TopicRecord, BrokerRegistrationChangeRecord, ConfigRecord.
RECORD_SHAPES = [
    (3, 1, 110),
    (5, 1, 27),
    (20, 0, 1),
    (0, 3, 150),
    (2, 0, 35),
    (17, 0, 16),
    (4, 0, 60),
]
RECORD_WEIGHTS = [40, 25, 15, 3, 5, 7, 5]


def make_batch(rng: random.Random, records: int, timestamp: int) -> bytes:
    shapes = rng.choices(RECORD_SHAPES, RECORD_WEIGHTS, k=records)
    recs = [
        Record(offset_delta=i, value=frame_metadata_record(key, version, rng.randbytes(size)))
        for i, (key, version, size) in enumerate(shapes)
    ]
    return encode_batch(build_batch(recs, base_timestamp=timestamp))


def bench_append(root: Path, count: int, rng: random.Random) -> None:
    batches = [make_batch(rng, rng.randint(1, 10), 1_700_000_000_000 + i) for i in range(64)]
    sizes = [len(b) for b in batches]

    def raw_floor() -> float:
        path = root / "raw.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        pos = 0
        start = time.perf_counter()
        for i in range(count):
            buf = batches[i % len(batches)]
            os.pwrite(fd, buf, pos)
            pos += len(buf)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
        path.unlink()
        return count / elapsed

    def kwire_append() -> float:
        directory = root / "append" / "__cluster_metadata-0"
        log = MetadataLog.open(directory)
        start = time.perf_counter()
        for i in range(count):
            log.append_as_leader(batches[i % len(batches)], epoch=1)
        elapsed = time.perf_counter() - start
        log.close()
        shutil.rmtree(root / "append")
        return count / elapsed

    # Alternate and keep the best of each so disk noise hits both alike.
    raw_best = kw_best = 0.0
    for _ in range(3):
        raw_best = max(raw_best, raw_floor())
        kw_best = max(kw_best, kwire_append())
    mean_size = sum(sizes) / len(sizes)
    print(f"(a) append, fsync per batch ({count} batches, mean {mean_size:.0f} B):")
    print(f"    raw write+fdatasync floor : {raw_best:10.0f} batches/s")
    print(f"    MetadataLog.append_as_leader: {kw_best:8.0f} batches/s")
    print(f"    ratio floor/kwire         : {raw_best / kw_best:10.2f}x (target <= 1.5x)")


# ------------------------------------------------------------------ (b) real records

TOPIC_CONFIGS = [
    ("retention.ms", "604800000"),
    ("cleanup.policy", "compact"),
    ("min.insync.replicas", "2"),
    ("segment.bytes", "536870912"),
    ("max.message.bytes", "2097152"),
]
BROKER_CONFIGS = [
    ("log.retention.hours", "72"),
    ("num.replica.fetchers", "4"),
    ("unclean.leader.election.enable", "false"),
]
CONFIG_TOPIC, CONFIG_BROKER = 2, 4  # ConfigResource.Type


class ClusterModel:
    """Just enough cluster state to produce plausible, self-consistent records."""

    def __init__(self, rng: random.Random, brokers: int = 6) -> None:
        self.rng = rng
        self.brokers = list(range(1, brokers + 1))
        self.broker_epochs = dict.fromkeys(self.brokers, 10)
        self.log_dirs = {b: [self.new_id(), self.new_id()] for b in self.brokers}
        self.partitions: list[tuple[UUID, int, list[int]]] = []
        self.topics = 0
        self.next_producer_id = 0

    def new_id(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128))

    def register_broker(self) -> list[Message]:
        broker = self.rng.choice(self.brokers)
        self.broker_epochs[broker] += 7
        return [
            RegisterBrokerRecord(
                broker_id=broker,
                incarnation_id=self.new_id(),
                broker_epoch=self.broker_epochs[broker],
                end_points=[
                    RegisterBrokerRecord.BrokerEndpoint(
                        name="PLAINTEXT",
                        host=f"broker-{broker}.kafka.svc.cluster.local",
                        port=9092,
                        security_protocol=0,
                    )
                ],
                features=[
                    RegisterBrokerRecord.BrokerFeature(
                        name="metadata.version", min_supported_version=1, max_supported_version=21
                    ),
                    RegisterBrokerRecord.BrokerFeature(
                        name="kraft.version", min_supported_version=0, max_supported_version=1
                    ),
                ],
                rack=f"rack-{broker % 3}",
                fenced=True,
                log_dirs=list(self.log_dirs[broker]),
            )
        ]

    def create_topic(self) -> list[Message]:
        self.topics += 1
        topic_id = self.new_id()
        records: list[Message] = [TopicRecord(name=f"events-{self.topics:06d}", topic_id=topic_id)]
        for name, value in self.rng.sample(TOPIC_CONFIGS, self.rng.choice((0, 0, 1, 2, 3))):
            records.append(
                ConfigRecord(
                    resource_type=CONFIG_TOPIC,
                    resource_name=f"events-{self.topics:06d}",
                    name=name,
                    value=value,
                )
            )
        for partition in range(self.rng.choice((1, 3, 6, 6, 12, 24, 50))):
            replicas = self.rng.sample(self.brokers, 3)
            self.partitions.append((topic_id, partition, replicas))
            records.append(
                PartitionRecord(
                    partition_id=partition,
                    topic_id=topic_id,
                    replicas=replicas,
                    isr=list(replicas),
                    leader=replicas[0],
                    leader_epoch=0,
                    partition_epoch=0,
                    directories=[self.rng.choice(self.log_dirs[b]) for b in replicas],
                )
            )
        return records

    def partition_change(self, partition: tuple[UUID, int, list[int]]) -> Message:
        topic_id, index, replicas = partition
        kind = self.rng.random()
        if kind < 0.5:  # ISR shrink or expand (AlterPartition)
            isr = replicas[: self.rng.choice((2, 3))]
            return PartitionChangeRecord(partition_id=index, topic_id=topic_id, isr=isr)
        if kind < 0.9:  # leader election
            leader = self.rng.choice(replicas)
            return PartitionChangeRecord(
                partition_id=index, topic_id=topic_id, leader=leader, isr=list(replicas)
            )
        # reassignment (AlterPartitionReassignments), with the new replicas' directories
        new = self.rng.sample(self.brokers, 3)
        return PartitionChangeRecord(
            partition_id=index,
            topic_id=topic_id,
            replicas=new,
            isr=list(new),
            leader=new[0],
            directories=[self.rng.choice(self.log_dirs[b]) for b in new],
        )

    def alter_partitions(self) -> list[Message]:
        count = self.rng.randint(1, 5)
        return [self.partition_change(self.rng.choice(self.partitions)) for _ in range(count)]

    def fence_broker(self) -> list[Message]:
        broker = self.rng.choice(self.brokers)
        records: list[Message] = [
            BrokerRegistrationChangeRecord(
                broker_id=broker, broker_epoch=self.broker_epochs[broker], fenced=1
            )
        ]
        for topic_id, index, replicas in self.rng.sample(
            self.partitions, min(len(self.partitions), self.rng.randint(5, 40))
        ):
            survivors = [b for b in replicas if b != broker] or replicas[:1]
            records.append(
                PartitionChangeRecord(
                    partition_id=index, topic_id=topic_id, leader=survivors[0], isr=survivors
                )
            )
        return records

    def unfence_broker(self) -> list[Message]:
        broker = self.rng.choice(self.brokers)
        return [
            BrokerRegistrationChangeRecord(
                broker_id=broker, broker_epoch=self.broker_epochs[broker], fenced=-1
            )
        ]

    def alter_configs(self) -> list[Message]:
        broker = self.rng.choice(self.brokers)
        return [
            ConfigRecord(resource_type=CONFIG_BROKER, resource_name=str(broker), name=n, value=v)
            for n, v in self.rng.sample(BROKER_CONFIGS, self.rng.randint(1, 3))
        ]

    def noop(self) -> list[Message]:
        return [NoOpRecord()]

    def producer_ids(self) -> list[Message]:
        self.next_producer_id += 1000
        broker = self.rng.choice(self.brokers)
        return [
            ProducerIdsRecord(
                broker_id=broker,
                broker_epoch=self.broker_epochs[broker],
                next_producer_id=self.next_producer_id,
            )
        ]

    def feature_level(self) -> list[Message]:
        return [FeatureLevelRecord(name="metadata.version", feature_level=21)]


# Controller operations, one batch each, and how often each happens.
OPERATIONS = {
    "create_topic": 8,
    "alter_partitions": 20,
    "fence_broker": 4,
    "unfence_broker": 4,
    "register_broker": 2,
    "noop": 30,
    "producer_ids": 3,
    "alter_configs": 5,
    "feature_level": 1,
}


def real_batches(
    rng: random.Random, count: int, mv: MetadataVersion
) -> tuple[list[bytes], list[Counter[str]]]:
    """``count`` encoded batches, as kwire.server.node appends them, and each one's record
    counts by type. The first ones bootstrap: metadata.version, brokers and a few topics."""
    model = ClusterModel(rng)
    plan = ["feature_level"] + ["register_broker"] * 6 + ["create_topic"] * 5
    plan += rng.choices(list(OPERATIONS), list(OPERATIONS.values()), k=count - len(plan))
    batches = []
    mixes = []
    for i, operation in enumerate(plan):
        records: list[Message] = getattr(model, operation)()
        encoded = []
        for index, record in enumerate(records):
            version = record_version(record, mv)
            api_key = type(record).API_KEY  # type: ignore[attr-defined]
            body = record.encode(version)
            # Generation doubles as a check that what is timed decodes to what was built.
            assert METADATA_RECORDS[api_key].decode(body, version) == record
            encoded.append(
                Record(offset_delta=index, value=frame_metadata_record(api_key, version, body))
            )
        batches.append(encode_batch(build_batch(encoded, base_timestamp=1_700_000_000_000 + i)))
        mixes.append(Counter(type(r).__name__ for r in records))
    return batches, mixes


def decode_log(log: MetadataLog, full: bool) -> int:
    """Read the whole log back, decoding every record's body too if ``full``; returns the
    number of records."""
    records = 0
    offset = log.log_start_offset
    end = log.end_offset
    while offset < end:
        chunk = log.read(offset, max_bytes=1024 * 1024)
        for batch in decode_batches(chunk, verify_crc=True):
            if full:
                for record in batch.records:
                    api_key, version, body = unframe_metadata_record(record.value)
                    METADATA_RECORDS[api_key].decode(body, version)
            else:
                for record in batch.records:
                    unframe_metadata_record(record.value)
            records += len(batch.records)
            offset = batch.next_offset
    return records


def bench_decode(
    root: Path, megabytes: int, rng: random.Random, mv: MetadataVersion, rounds: int
) -> None:
    directory = root / "decode" / "__cluster_metadata-0"
    t0 = time.perf_counter()
    templates, mixes = real_batches(rng, 20_000, mv)
    t_templates = time.perf_counter() - t0
    target = megabytes * 1024 * 1024
    log = MetadataLog.open(directory, MetadataLogConfig(segment_bytes=64 * 1024 * 1024))
    written = 0
    batches = 0
    expected: Counter[str] = Counter()
    # Append 64 batches at a time; the log stamps each copy's base offset and epoch.
    group = 64
    while written < target:
        picks = [(batches + k) % len(templates) for k in range(group)]
        raw = b"".join(templates[p] for p in picks)
        log.append_as_leader(raw, epoch=1 + batches // 100_000, fsync=False)
        for p in picks:
            expected.update(mixes[p])
        written += len(raw)
        batches += group
    log.flush()
    log.close()
    gen = time.perf_counter() - t0
    total = sum(expected.values())
    print(
        f"(b) generated {written / 1e6:.1f} MB, {batches} batches, {total} records "
        f"(metadata.version {mv.version}; {len(templates)} distinct batches built in "
        f"{t_templates:.1f} s, repeated), {gen:.1f} s in all"
    )
    sizes = Counter[str]()
    for batch in templates:
        for b in decode_batches(batch):
            for r in b.records:
                api_key, version, body = unframe_metadata_record(r.value)
                sizes[METADATA_RECORDS[api_key].NAME] += len(body)
    template_counts = sum(mixes, Counter[str]())
    print("    record mix (share of records, mean body size):")
    for name, n in expected.most_common():
        print(
            f"      {name:32} {100 * n / total:5.1f} %  {sizes[name] / template_counts[name]:5.0f} B"
        )

    t0 = time.perf_counter()
    log = MetadataLog.open(directory, MetadataLogConfig(segment_bytes=64 * 1024 * 1024))
    t_open = time.perf_counter() - t0
    print(
        f"    open + recovery scan (CRC of every batch): {t_open:.2f} s, {written / t_open / 1e6:.0f} MB/s"
    )

    # The generated classes may read through compiled readers when they are built.
    accelerated = getattr(_codec, "compiled_readers_available", None)
    readers = "unknown" if accelerated is None else "compiled" if accelerated() else "Python"
    print(f"    record body readers: {readers} (KWIRE_PURE_PYTHON=1 forces Python)")
    # Alternate the two modes and keep the best of each, so noise hits both alike.
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for full in (False, True):
            t0 = time.perf_counter()
            records = decode_log(log, full)
            best[full] = min(best[full], time.perf_counter() - t0)
            assert records == total, (records, total)
    log.close()
    for full, label in (
        (False, "(i)  CRC + batches + records + unframing, bodies as bytes"),
        (True, "(ii) (i) + every body decoded into its record class (full)"),
    ):
        elapsed = best[full]
        rate = total / elapsed
        verdict = "meets" if rate >= 200_000 else "MISSES"
        print(
            f"    {label}: {elapsed:5.2f} s = {rate:9,.0f} records/s, {written / elapsed / 1e6:5.1f} MB/s"
            f" ({verdict} the target of >= 200,000 records/s)"
        )
    bodies = best[True] - best[False]
    print(
        f"    body decode alone ((ii) - (i)): {bodies:.2f} s = {total / bodies:,.0f} records/s, "
        f"{1e6 * bodies / total:.2f} us/record"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--appends", type=int, default=1500)
    parser.add_argument("--decode-mb", type=int, default=100)
    parser.add_argument(
        "--metadata-version",
        type=int,
        default=int(LATEST_PRODUCTION),
        help="feature level whose record versions (b) writes (default: 3.9-IV0's)",
    )
    parser.add_argument("--decode-rounds", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(42)
    root = Path(tempfile.mkdtemp(prefix="kwire-bench-", dir=args.dir or Path.cwd()))
    try:
        bench_append(root, args.appends, rng)
        bench_decode(
            root,
            args.decode_mb,
            rng,
            metadata_version(args.metadata_version),
            args.decode_rounds,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
