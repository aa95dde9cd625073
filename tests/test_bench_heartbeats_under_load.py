"""tools/bench_heartbeats_under_load.py at a CI size: a few simulated brokers heartbeat
while two CreateTopics of 2,500 partitions run; the run ends with no broker fenced, and
every figure it prints parses. No figure is held to any speed (the machine is shared);
the run is only bounded in time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TOOLS = REPO.parent / "shared" / "tools"
RUN_TIMEOUT_S = 300.0

pytestmark = pytest.mark.skipif(
    not all(
        (SHARED_TOOLS / name).is_file() for name in ("heartbeat_load.py", "controller_bench.py")
    ),
    reason="../shared/tools (the load tools) is absent",
)


@pytest.fixture(scope="module")
def tiny_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.bench_heartbeats_under_load", "--quick"]
        + ["--brokers", "20", "--batches", "2", "--duration", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def test_no_broker_of_the_fleet_is_fenced_while_the_burst_runs(
    tiny_run: subprocess.CompletedProcess[str],
) -> None:
    assert tiny_run.returncode == 0, tiny_run.stdout + tiny_run.stderr
    summary = re.search(
        r"SUMMARY p50_ms=([\d.]+) p99_ms=([\d.]+) max_ms=([\d.]+) fenced=(\d+)", tiny_run.stdout
    )
    assert summary is not None, tiny_run.stdout
    p50, p99, worst = (float(summary.group(i)) for i in (1, 2, 3))
    assert 0 < p50 <= p99 <= worst
    assert summary.group(4) == "0"


def test_the_row_gives_heartbeats_errors_and_the_servers_own_loop_account(
    tiny_run: subprocess.CompletedProcess[str],
) -> None:
    row = re.search(r"\((\d+) heartbeats\).*fenced 0  errors \{\}", tiny_run.stdout)
    assert row is not None and int(row.group(1)) > 0, tiny_run.stdout
    loop = re.search(r"server loop: (\d+) times for at least 100 ms", tiny_run.stdout)
    assert loop is not None, tiny_run.stdout
