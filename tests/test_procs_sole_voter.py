"""A sole voter (the README's one-node quorum) as a real process, killed at random moments.

`python -m kwire.server` with no arguments formats `./kwire-data` on its first start and
serves node 1 on 127.0.0.1:9093 (the zero-config start); with a properties file it serves
whatever the file says (tools/chaos.py's quorum, here with a snapshot every 20 KB of
records, so that kills fall in snapshots, segment rolls and their recovery). A writer sends
CreateTopics throughout (tests/procs_harness.py); the node is stopped with kill -9 or
SIGTERM after a random run and restarted. At the end every acknowledged topic must be in
the log and nothing there may be a topic no one sent (chaos's accounting): a sole voter
commits what it appended once it leads again, so an unacknowledged write may be found,
never an invented one.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from procs_harness import ProcNode, Quorum, QuorumWriter, settle_and_read

from kwire.log import read_meta_properties
from kwire.testing.process import KwireProcess, port_accepts
from tools.chaos import run_chaos

ZERO_CONFIG_PORT = 9093  # the zero-config server's fixed port (README: "Two commands")
TEST_TIMEOUT_S = 120.0  # bounds a stuck run; a normal one takes 10-20 s
CYCLES = 10
MAX_RUN_S = 0.5  # the writer runs up to this long before each stop
# Kill -9 this long after launching the first start: during Python's start-up, the format
# of ./kwire-data (tens of milliseconds once kwire is imported) or the first election.
FIRST_START_KILLS_S = (0.3, 0.6, 0.9, 1.2)
# A snapshot every 20 KB of records and 16 KB segments: tens of snapshots and rolls a run.
SNAPSHOT_OFTEN = {
    "metadata.log.max.record.bytes.between.snapshots": "20000",
    "metadata.log.segment.min.bytes": "16384",
    "metadata.log.segment.bytes": "16384",
}


class ZeroConfigServer(KwireProcess):
    """`python -m kwire.server` with no arguments, run in `directory` (its ./kwire-data);
    it listens on 127.0.0.1:9093, the properties file KwireProcess writes is not read."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, port=ZERO_CONFIG_PORT)
        self.data_dir = directory / "kwire-data"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "kwire.server"]


@pytest.fixture
def zero_config_port_free() -> Iterator[None]:
    """Skips when something already listens on 9093 (checked outside Trio, where the
    reason of a skip is kept)."""
    if port_accepts(ZERO_CONFIG_PORT):
        pytest.skip(f"127.0.0.1:{ZERO_CONFIG_PORT} is taken: the zero-config start needs it")
    yield


async def kill_during_start(node: ProcNode, after_s: float) -> None:
    """Launch the node and kill -9 it `after_s` later, whatever it is doing by then."""
    async with trio.open_nursery() as nursery:

        async def start() -> None:
            with contextlib.suppress(RuntimeError):  # killed before it listened
                await node.start()

        nursery.start_soon(start)
        await trio.sleep(after_s)
        await node.kill()


async def kill_and_restart_cycles(
    quorum: Quorum, writer: QuorumWriter, cycles: int, rng: random.Random
) -> None:
    """Each cycle: the writer runs a random time, the node is stopped (kill -9 or SIGTERM)
    and restarted, and a write sent after the restart is acknowledged."""
    node = quorum.node(1)
    for _ in range(cycles):
        await trio.sleep(rng.uniform(0, MAX_RUN_S))
        await (node.kill() if rng.random() < 0.5 else node.stop())
        started_at = trio.current_time()
        await node.start()
        await writer.wait_ack(after=started_at, not_from=None, timeout=30)


@pytest.mark.usefixtures("zero_config_port_free")
async def test_the_zero_config_start_keeps_every_acknowledged_write_through_kills(
    tmp_path: Path,
) -> None:
    server = ZeroConfigServer(tmp_path)
    node = ProcNode(1, server)
    with trio.fail_after(TEST_TIMEOUT_S):
        try:
            for after_s in FIRST_START_KILLS_S:
                await kill_during_start(node, after_s)
            await node.start()
            cluster_id = read_meta_properties(server.data_dir / "meta.properties").cluster_id
            assert f"listening on 127.0.0.1:{ZERO_CONFIG_PORT} " in server.stdout()
            quorum = Quorum([node], [], cluster_id)
            async with trio.open_nursery() as probe:
                probe.start_soon(quorum.probe.run)
                await quorum.wait_formed(15)
                writer = QuorumWriter(quorum)
                async with trio.open_nursery() as nursery:
                    await nursery.start(writer.run)
                    await kill_and_restart_cycles(quorum, writer, CYCLES, random.Random(1))
                    nursery.cancel_scope.cancel()
                recovery = await settle_and_read(quorum, [writer])
                probe.cancel_scope.cancel()
        finally:
            await node.kill()
    assert recovery.settled and recovery.acked, "no write was acknowledged"
    assert (recovery.missing, recovery.invented) == ({}, {})
    # Restarts never formatted again: the cluster is the one the first start made.
    assert read_meta_properties(server.data_dir / "meta.properties").cluster_id == cluster_id


async def test_a_sole_voter_keeps_every_acknowledged_write_through_kills_in_snapshots(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        report = await run_chaos(
            tmp_path,
            cycles=CYCLES,
            nodes=1,
            seed=2,
            max_pause_ms=100,
            max_run_ms=int(MAX_RUN_S * 1000),
            overrides=SNAPSHOT_OFTEN,
            log=False,
        )
    assert (report.error, report.cycles, len(report.restarts)) == (None, CYCLES, CYCLES)
    assert (report.found, report.missing, report.invented) == (report.acked, 0, 0)
    metadata = tmp_path / "node-1" / "data" / "__cluster_metadata-0"
    assert len(list(metadata.glob("*.checkpoint"))) > 1, "no snapshot was taken"
