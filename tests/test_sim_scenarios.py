"""The simulator's named scenarios hold over thousands of seeds, and every seed replays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kwire.sim.__main__ import main
from kwire.sim.events import EventQueue
from kwire.sim.runner import run_seed, run_seeds
from kwire.sim.scenarios import SCENARIOS

# CI runs at least 5,000 (scenario, seed) runs; KWIRE_SIM_RUNS raises (or lowers) it.
RUNS = int(os.environ.get("KWIRE_SIM_RUNS", "5000"))
JOBS = max(1, min(2, os.cpu_count() or 1))


def test_every_scenario_states_its_invariant() -> None:
    assert len(SCENARIOS) >= 8
    for name, scenario in SCENARIOS.items():
        assert len(scenario.invariant.split()) >= 10, name


def test_the_event_queue_runs_events_in_time_then_scheduling_order() -> None:
    queue = EventQueue()
    ran: list[str] = []
    queue.at(5, lambda: ran.append("b"), "b")
    queue.at(3, lambda: ran.append("a"), "a")
    queue.at(5, lambda: ran.append("c"), "c")
    while queue.step() is not None:
        pass
    assert ran == ["a", "b", "c"] and queue.now_ms == 5


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_seed_replays_to_the_same_events(name: str) -> None:
    first, again = run_seed(name, 12345), run_seed(name, 12345)
    assert first.ok, first.replay_command + "  # " + str(first.failure)
    assert (first.digest, first.steps, first.acked) == (again.digest, again.steps, again.acked)
    assert run_seed(name, 54321).digest != first.digest


def test_every_scenario_holds_over_thousands_of_seeds() -> None:
    names = sorted(SCENARIOS)
    seeds = range((RUNS + len(names) - 1) // len(names))
    failed = [r for r in run_seeds(names, seeds, jobs=JOBS) if not r.ok]
    assert not failed, "\n".join(f"{r.replay_command}  # {r.failure}" for r in failed[:20])


def test_clients_get_writes_acknowledged_in_every_scenario() -> None:
    for name in sorted(SCENARIOS):
        results = [run_seed(name, seed) for seed in range(3)]
        assert all(r.ok for r in results), name
        assert sum(r.acked for r in results) > 0, name


def test_the_command_line_replays_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "election-3", "--seed", "3"]) == 0
    assert "ok: election-3 seed 3:" in capsys.readouterr().out


def test_a_seed_replays_the_same_in_processes_with_other_string_hashes() -> None:
    def replay(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "kwire.sim", "--scenario", "chaos", "--seed", "5"],
            cwd=Path(__file__).parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    first = replay("1")
    assert "ok: chaos seed 5:" in first and "event digest" in first
    assert replay("2") == first
