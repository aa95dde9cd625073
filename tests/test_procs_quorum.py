"""kwire quorums of real processes on loopback, under the README's server command.

A writer sends CreateTopics throughout (following the leader) while nodes are killed with
kill -9, stopped with SIGTERM, restarted, or cut off from their peers by a proxy; at the
end every node's metadata log must hold every acknowledged write, and nothing no writer
sent. The tests on 3- and 5-node quorums skip, saying why, when no leader is elected (a
server that cannot run a multi-voter quorum); the harness itself is proven on one node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from procs_harness import (
    FORM_TIMEOUT_S,
    HOST,
    CutMode,
    LinkProxy,
    Quorum,
    QuorumNotFormed,
    QuorumWriter,
    Recovery,
    multi_voter_quorum,
    open_quorum,
    percentile,
    settle_and_read,
)

# Kafka's defaults: a follower that hears nothing from its leader for the fetch timeout
# (2 s) starts an election; the election timeout is 1 s plus up to 1 s of backoff.
FAILOVER_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 120.0
__all__ = ["multi_voter_quorum"]  # a fixture


async def leader_or_skip(quorum: Quorum) -> tuple[int, int]:
    try:
        return await quorum.wait_formed(FORM_TIMEOUT_S)
    except QuorumNotFormed as exc:
        pytest.skip(f"the quorum cannot form: {exc}")  # (pytest-trio drops this reason)


def assert_recovered(recovery: Recovery) -> None:
    assert recovery.settled, "the quorum did not settle: no leader, or a voter behind"
    assert recovery.acked, "no write was acknowledged at all"
    assert recovery.missing == {}, "acknowledged writes are missing from a node's log"
    assert recovery.invented == {}, "a log holds topics no writer sent"


# -- the harness on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([5.0, 1.0, 3.0, 2.0, 4.0], 0.5, 3.0, id="median of five"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 0.5, 2.0, id="median of four is the lower"),
        pytest.param([float(i) for i in range(1, 101)], 0.99, 99.0, id="p99 of a hundred"),
        pytest.param([7.0], 0.99, 7.0, id="one value is every percentile"),
    ],
)
def test_percentile_is_the_nearest_rank(
    values: list[float], fraction: float, expected: float
) -> None:
    assert percentile(values, fraction) == expected


async def echo(stream: trio.SocketStream) -> None:
    async with stream:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)


async def receive_or_none(stream: trio.SocketStream, seconds: float) -> bytes | None:
    """What arrives within `seconds` (b"" if the peer closed), None if nothing did."""
    with trio.move_on_after(seconds):
        try:
            return await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return b""
    return None


async def test_the_link_proxy_forwards_drops_silently_refuses_and_heals() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            (listener,) = await trio.open_tcp_listeners(0, host=HOST)
            nursery.start_soon(trio.serve_listeners, echo, [listener])
            proxy = LinkProxy(1, 2, listener.socket.getsockname()[1])
            await proxy.listen()
            nursery.start_soon(proxy.run)

            stream = await trio.open_tcp_stream(HOST, proxy.port)
            await stream.send_all(b"hello")
            assert await receive_or_none(stream, 2) == b"hello"

            # Cut silently: the connection stays open, but nothing gets through.
            proxy.set_mode(CutMode.SILENT)
            await stream.send_all(b"lost")
            assert await receive_or_none(stream, 0.3) is None
            # Heal: the connection that lost bytes is closed (no stream resumes
            # mid-frame); a new one works.
            proxy.set_mode(CutMode.OPEN)
            assert await receive_or_none(stream, 2) == b""
            fresh = await trio.open_tcp_stream(HOST, proxy.port)
            await fresh.send_all(b"again")
            assert await receive_or_none(fresh, 2) == b"again"

            # Refuse: open connections are closed and new ones closed at accept.
            proxy.set_mode(CutMode.REFUSE)
            assert await receive_or_none(fresh, 2) == b""
            refused = await trio.open_tcp_stream(HOST, proxy.port)
            assert await receive_or_none(refused, 2) == b""
            nursery.cancel_scope.cancel()


async def test_a_one_node_quorum_keeps_every_acknowledged_write_through_kill_9_and_sigterm(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_quorum(tmp_path, 1) as quorum:
            assert await quorum.wait_formed(FORM_TIMEOUT_S) == (1, 1)
            writer = QuorumWriter(quorum)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                for stop in (quorum.kill, quorum.stop):
                    await trio.sleep(0.3)
                    before = len(writer.acks)
                    stopped_at = trio.current_time()
                    await stop(1)
                    await quorum.node(1).start()
                    # Writes sent after the stop are acknowledged by the restarted process.
                    with trio.fail_after(10):
                        while not any(ack.sent > stopped_at for ack in writer.acks[before:]):
                            await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            recovery = await settle_and_read(quorum, [writer])
    assert_recovered(recovery)


# -- quorums of 3 and 5 ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.usefixtures("multi_voter_quorum")
async def test_kill_9_of_the_leader_and_of_a_follower_loses_no_acknowledged_write(
    tmp_path: Path, size: int
) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_quorum(tmp_path, size) as quorum:
            leader, epoch = await leader_or_skip(quorum)
            writer = QuorumWriter(quorum)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                await trio.sleep(0.5)

                killed_at = trio.current_time()
                await quorum.kill(leader)
                successor, new_epoch = await quorum.probe.wait_leader(
                    timeout=FAILOVER_TIMEOUT_S, not_id=leader, above_epoch=epoch
                )
                ack = await writer.wait_ack(
                    after=killed_at, not_from=leader, timeout=FAILOVER_TIMEOUT_S
                )
                assert ack.node == successor
                await quorum.node(leader).start()  # the old leader rejoins as a follower

                follower = next(n for n in quorum.ids if n != successor)
                await quorum.kill(follower)
                await trio.sleep(0.5)
                follower_down = trio.current_time()
                ack = await writer.wait_ack(after=follower_down, not_from=None, timeout=5)
                assert (ack.node, quorum.probe.leader()) == (successor, (successor, new_epoch))
                await quorum.node(follower).start()
                await trio.sleep(0.5)
                nursery.cancel_scope.cancel()
            recovery = await settle_and_read(quorum, [writer])
    assert_recovered(recovery)


@pytest.mark.usefixtures("multi_voter_quorum")
async def test_sigterm_of_the_leader_hands_over_before_the_fetch_timeout(tmp_path: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_quorum(tmp_path, 3) as quorum:
            leader, epoch = await leader_or_skip(quorum)
            writer = QuorumWriter(quorum)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                await trio.sleep(0.3)
                stopped = trio.Event()

                async def stop_leader() -> None:
                    await quorum.stop(leader)
                    stopped.set()

                stopped_at = trio.current_time()
                nursery.start_soon(stop_leader)
                ack = await writer.wait_ack(
                    after=stopped_at, not_from=leader, timeout=FAILOVER_TIMEOUT_S
                )
                # EndQuorumEpoch tells the others at once: no one waits out the 2 s fetch
                # timeout (Kafka's controller.quorum.fetch.timeout.ms).
                assert ack.acked - stopped_at < 2.0
                with trio.fail_after(15):
                    await stopped.wait()
                assert "Received SIGTERM" in quorum.output(leader)
                await quorum.node(leader).start()
                nursery.cancel_scope.cancel()
            recovery = await settle_and_read(quorum, [writer])
    assert_recovered(recovery)


@pytest.mark.parametrize(
    ("size", "mode"),
    [
        pytest.param(3, CutMode.SILENT, id="3 nodes, bytes dropped"),
        pytest.param(5, CutMode.SILENT, id="5 nodes, bytes dropped"),
        # Refused connections look like a dead leader to the followers (fast failover);
        # the leader is alive and must still commit nothing and resign.
        pytest.param(3, CutMode.REFUSE, id="3 nodes, connections refused"),
    ],
)
@pytest.mark.usefixtures("multi_voter_quorum")
async def test_a_leader_cut_off_from_its_peers_commits_nothing_and_resigns(
    tmp_path: Path, size: int, mode: CutMode
) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with open_quorum(tmp_path, size, proxied=True) as quorum:
            leader, epoch = await leader_or_skip(quorum)
            writer = QuorumWriter(quorum)
            cut_writer = QuorumWriter(quorum, "cut", broker=False)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                await trio.sleep(0.5)

                quorum.isolate(leader, mode)
                cut_at = trio.current_time()
                # The minority leader acknowledges nothing: it cannot reach a majority.
                for _ in range(3):
                    assert await cut_writer.write_one(3.0, target=leader) is None
                # Check-quorum: having heard from no majority for the fetch timeout, it
                # resigns (it stops answering DescribeQuorum as leader).
                with trio.fail_after(FAILOVER_TIMEOUT_S):
                    while (view := quorum.probe.views.get(leader)) is None or view.is_leader:
                        await trio.sleep(0.01)
                # The majority elected another leader, which serves writes.
                await quorum.probe.wait_leader(
                    timeout=FAILOVER_TIMEOUT_S, not_id=leader, above_epoch=epoch
                )
                await writer.wait_ack(after=cut_at, not_from=leader, timeout=FAILOVER_TIMEOUT_S)

                quorum.heal()
                await trio.sleep(1.0)
                nursery.cancel_scope.cancel()
            recovery = await settle_and_read(quorum, [writer, cut_writer])
    assert cut_writer.acks == []
    assert_recovered(recovery)
    # What the cut-off leader appended alone was truncated when it rejoined.
    assert all(not (names & cut_writer.attempted) for names in recovery.found.values())
