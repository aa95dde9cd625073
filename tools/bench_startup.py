"""Start-up time and RSS of a kwire node over a metadata log of N records, before
(full log replay) and after (newest snapshot, then the log after it).

    python -m tools.bench_startup [--records 50000 180000] [--repeat 3]

The log is what a long-running kwire holds: topics (a TopicRecord and 9 PartitionRecords
each) amid NoOpRecords (one per metadata.max.idle.interval.ms), one NoOp in two. Each
start runs in a fresh subprocess (time to a replayed controller, and its peak RSS).

The snapshot is written with kwire.controller.snapshot_image.snapshot_records, as a
running node writes it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from kwire.controller.records import RecordAndVersion
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.storage import format_storage, random_uuid

REPO = Path(__file__).parents[1]

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from tools.bench_startup import config_for
from kwire.server.__main__ import build_settings
from kwire.server.node import ControllerNode
t0 = time.perf_counter()
node = ControllerNode(build_settings(config_for({data!r})))
elapsed = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "rss_kib": rss, "replayed": node.replayed}}))
"""


def config_for(data: str) -> ControllerServerConfig:
    return ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:19093",
            "listeners": "CONTROLLER://127.0.0.1:19093",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": data,
        }
    )


def build(data: Path, records: int) -> ControllerNode:
    config = config_for(str(data))
    format_storage(config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(config))
    node.start()
    written, topic = node.log.end_offset, 0
    while written < records:
        topic_id = uuid.uuid4()
        batch = [RecordAndVersion(TopicRecord(name=f"t{topic}", topic_id=topic_id), 0)]
        batch += [
            RecordAndVersion(
                PartitionRecord(partition_id=p, topic_id=topic_id, replicas=[1], isr=[1], leader=1),
                0,
            )
            for p in range(9)
        ]
        batch += [RecordAndVersion(NoOpRecord(), 0) for _ in range(10)]
        for item in batch:
            node.controller.replay(item.record, item.version, node.log.end_offset)
            node.append([item], 0)
        written += len(batch)
        topic += 1
    return node


def start(data: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(REPO), data=str(data))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[50_000, 180_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for records in args.records:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            node = build(data, records)
            end = node.log.end_offset
            node.close()
            before = [start(data) for _ in range(args.repeat)]
            node = ControllerNode(build_settings(config_for(str(data))))
            node.committed_offset = node.log.end_offset
            node.log.update_high_watermark(node.log.end_offset)
            node.snapshots.write(node.controller, node.log.end_offset, 0, "benchmark")
            node.close()
            after = [start(data) for _ in range(args.repeat)]
        for name, runs in (("before (log replay)", before), ("after (snapshot)", after)):
            best = min(runs, key=lambda r: r["seconds"])
            print(
                f"{records:>7} records (log end {end}): {name:<20} "
                f"{best['seconds']:.2f} s, peak RSS {best['rss_kib'] / 1024:.0f} MiB, "
                f"{int(best['replayed'])} records replayed"
            )


if __name__ == "__main__":
    main()
