"""The simulator finds planted consensus bugs within a bounded number of seeds, and the
command it prints for a failing seed replays that failure exactly."""

from __future__ import annotations

import pytest

from kwire.raft.leader import LeaderPart
from kwire.raft.reconfig import ReconfigPart
from kwire.raft.state import HighWatermarkAdvanced, Leader
from kwire.sim.__main__ import main
from kwire.sim.node import SimNode
from kwire.sim.runner import SeedResult, run_seed

MAX_SEEDS = 150


def first_failure(scenario: str) -> SeedResult:
    for seed in range(MAX_SEEDS):
        result = run_seed(scenario, seed)
        if not result.ok:
            return result
    raise AssertionError(f"{scenario} found no failing seed in {MAX_SEEDS}")


def assert_replays(found: SeedResult, capsys: pytest.CaptureFixture[str]) -> None:
    again = run_seed(found.scenario, found.seed)
    assert (again.failure, again.digest, again.steps) == (found.failure, found.digest, found.steps)
    args = found.replay_command.split()[3:]  # after "python -m kwire.sim"
    capsys.readouterr()
    assert main(args) == 1
    assert f"FAILED: {found.replay_command}  # {found.failure}" in capsys.readouterr().out


def forget_quorum_state(self: SimNode, action: object) -> None:
    """The planted bug: quorum-state is never written, so a restarted voter forgets the
    vote it gave in the current epoch."""


def high_watermark_from_any_epoch(self: LeaderPart, leader: Leader) -> list[object]:
    """The planted bug: the leader's high watermark follows the majority's offset even
    where that offset is still below the start of its own epoch (Raft's "commit only
    entries of the current term" rule dropped)."""
    offsets = sorted((p.end_offset for p in leader.voters.values()), reverse=True)
    candidate = offsets[len(leader.voters) // 2]
    if candidate > leader.high_watermark:
        leader.high_watermark = candidate
        return [HighWatermarkAdvanced(offset=candidate)]
    return []


def test_unpersisted_votes_give_an_epoch_two_leaders(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(SimNode, "persist", forget_quorum_state)
    found = first_failure("chaos")
    # Two leaders of one epoch: caught as such, or by the batches they wrote at one
    # (offset, epoch), whichever check sees it first.
    assert found.failure is not None
    assert found.failure.startswith(("election safety: ", "log matching: ")), found.failure
    assert_replays(found, capsys)
    monkeypatch.undo()
    assert run_seed(found.scenario, found.seed).ok  # the real node passes the same seed


def test_a_high_watermark_counting_a_previous_epoch_is_caught(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(LeaderPart, "_maybe_advance_high_watermark", high_watermark_from_any_epoch)
    found = first_failure("leader-crash")
    assert found.failure is not None and found.failure.startswith("high watermark monotonicity: ")
    assert_replays(found, capsys)
    monkeypatch.undo()
    assert run_seed(found.scenario, found.seed).ok


def no_voter_change_guard(self: object, leader: Leader, verb: str) -> None:
    """The planted bug: a leader starts a voter change while another is uncommitted
    (KIP-853's one-change-at-a-time rule dropped)."""
    return None


def test_a_second_voter_change_while_one_is_uncommitted_is_caught(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ReconfigPart, "_change_refusal", no_voter_change_guard)
    found = first_failure("voter-changes")
    assert found.failure is not None
    assert found.failure.startswith(
        ("one voter change at a time: ", "majority of the voter set: ")
    ), found.failure
    assert_replays(found, capsys)
