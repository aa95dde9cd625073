"""python -m kwire.sim --seeds N [--scenario NAME] [--seed S] [--jobs J] [--list]

Runs every named scenario (or one) over seeds 0..N-1 (or the one seed S). Each failing
seed prints one line: the command that replays it exactly, then why it failed. The exit
status is 1 when any seed failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from kwire.sim.runner import run_seeds
from kwire.sim.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwire.sim", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", type=int, default=100, help="run seeds 0..N-1 (default 100)")
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed")
    parser.add_argument("--seed", type=int, help="run this one seed only")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="only this scenario")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--list", action="store_true", help="list scenarios and their invariants")
    args = parser.parse_args(argv)
    if args.list:
        for name in SCENARIOS:
            print(f"{name}: {' '.join(SCENARIOS[name].invariant.split())}")
        return 0
    names = [args.scenario] if args.scenario else list(SCENARIOS)
    seeds = (
        [args.seed]
        if args.seed is not None
        else range(args.first_seed, args.first_seed + args.seeds)
    )
    started = time.monotonic()
    runs = failures = 0
    for result in run_seeds(names, seeds, jobs=args.jobs):
        runs += 1
        if not result.ok:
            failures += 1
            print(f"FAILED: {result.replay_command}  # {result.failure}", flush=True)
        elif args.seed is not None:
            print(
                f"ok: {result.scenario} seed {result.seed}: {result.steps} steps, "
                f"{result.virtual_ms} virtual ms, {result.acked} acknowledged writes, "
                f"{result.crashes} crashes, event digest {result.digest:08x}"
            )
    elapsed = time.monotonic() - started
    print(f"{runs} runs, {failures} failed, {elapsed:.1f} s", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
