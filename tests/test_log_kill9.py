"""Crash safety: a writer that prints each offset only after append() returned (and so
after fsync) is SIGKILLed at a random moment; every acknowledged batch must survive."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kwire.log import MetadataLog, MetadataLogConfig

REPO = Path(__file__).parents[1]
CONFIG = MetadataLogConfig(segment_bytes=16 * 1024, index_interval_bytes=512)

WRITER = """
import sys
from pathlib import Path
from kwire.log import MetadataLog, MetadataLogConfig
from kwire.records import Record, build_batch, encode_batch

log = MetadataLog.open(Path(sys.argv[1]), MetadataLogConfig(segment_bytes=16 * 1024,
                                                           index_interval_bytes=512))
start = int(sys.argv[2])
i = start
while True:
    records = [Record(offset_delta=k, value=b"v%d-%d" % (i, k)) for k in range(1 + i % 3)]
    info = log.append_as_leader(encode_batch(build_batch(records, base_timestamp=i)),
                                epoch=1 + i // 150)
    sys.stdout.write(f"{i} {info.first_offset} {info.last_offset}\\n")
    sys.stdout.flush()
    i += 1
"""


def run_and_kill(directory: Path, start: int, rng: random.Random) -> list[tuple[int, int, int]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(start)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()  # wait (bounded by the writer's startup) for one ack
        assert first, "writer died before acknowledging anything"
        time.sleep(rng.uniform(0.3, 1.0))
    finally:
        proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    acked = []
    for line in (first + rest).split(b"\n"):
        parts = line.split()
        if len(parts) == 3:  # a torn last line was never acknowledged
            i, lo, hi = map(int, parts)
            acked.append((i, lo, hi))
    return acked


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_loses_no_acknowledged_batch(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    directory = tmp_path / "__cluster_metadata-0"
    acked: list[tuple[int, int, int]] = []
    for _round in range(2):  # crash, recover, keep writing, crash again
        acked += run_and_kill(directory, acked[-1][0] + 1 if acked else 0, rng)
        log = MetadataLog.open(directory, CONFIG)
        try:
            assert log.end_offset > acked[-1][2]
            batches = {b.base_offset: b for b in log.read_batches(0, verify_crc=True)}
            for i, lo, hi in acked:
                b = batches[lo]
                assert b.last_offset == hi
                assert [r.value for r in b.records] == [
                    b"v%d-%d" % (i, k) for k in range(hi - lo + 1)
                ]
                assert b.partition_leader_epoch == 1 + i // 150
            # offsets are dense, epochs in the cache agree with the batches
            offsets = sorted(batches)
            for prev, nxt in zip(offsets, offsets[1:], strict=False):
                assert batches[prev].next_offset == nxt
            for epoch, start in log.epoch_entries:
                assert batches[start].partition_leader_epoch == epoch
        finally:
            log.close()
    assert len(acked) > 10
