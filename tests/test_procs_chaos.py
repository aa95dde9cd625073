"""The short CI variant of tools/chaos.py: a few crash/restart cycles, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from procs_harness import multi_voter_quorum

from tools.chaos import run_chaos

__all__ = ["multi_voter_quorum"]  # a fixture

CYCLES = 5


async def test_a_one_node_quorum_keeps_every_acknowledged_write_through_chaos_cycles(
    tmp_path: Path,
) -> None:
    with trio.fail_after(300):
        report = await run_chaos(tmp_path, cycles=CYCLES, nodes=1, seed=1, max_pause_ms=200)
    assert (report.error, report.cycles) == (None, CYCLES)
    assert len(report.restarts) == CYCLES  # each cycle's restart served a write
    assert report.acked > 0
    assert (report.found, report.missing, report.invented) == (report.acked, 0, 0)


@pytest.mark.usefixtures("multi_voter_quorum")
async def test_a_three_node_quorum_keeps_every_acknowledged_write_through_chaos_cycles(
    tmp_path: Path,
) -> None:
    with trio.fail_after(300):
        report = await run_chaos(tmp_path, cycles=CYCLES, nodes=3, seed=1, max_pause_ms=500)
    assert (report.error, report.cycles) == (None, CYCLES)
    assert report.acked > 0
    assert (report.found, report.missing, report.invented) == (report.acked, 0, 0)
