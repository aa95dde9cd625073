"""tools/bench_controller.py at a tiny scale: the table parses, every kwire figure is a
positive number, and the Kafka 3.9 figures it prints are those of ../shared/tools/README.md.

The run is the CI variant (`--quick --scale 0.02`: 20 brokers, a few requests, servers on
free 127.0.0.1 ports), beside an `--only delete --only scaling` run with the scaling run at
one size (2,500 partitions); no figure is held to any speed, the runs are only bounded in
time. Most of their time is the load tools' own waits (controller_bench sleeps 3 s for a
heartbeat round, heartbeat_load runs at least a 2 s heartbeat period), hence side by side
rather than one after the other. The line comparing two scaling sizes is checked on
`render_scaling` itself.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TOOLS = REPO.parent / "shared" / "tools"
RUN_TIMEOUT_S = 600.0

pytestmark = pytest.mark.skipif(
    not all(
        (SHARED_TOOLS / name).is_file()
        for name in ("README.md", "heartbeat_load.py", "controller_bench.py")
    ),
    reason="../shared/tools (the load tools and Kafka's figures) is absent",
)

# Issue 10's rows: where each Kafka 3.9 figure stands in ../shared/tools/README.md (a run
# named in the table's first column, the figure found by the pattern in its second).
README_FIGURES = {
    "registration": ("heartbeat_load, 1,000 brokers", r"([\d,.]+) registrations/s"),
    "heartbeat-p50": ("heartbeat_load, 1,000 brokers", r"p50 ([\d.]+) ms"),
    "heartbeat-p99": ("heartbeat_load, 1,000 brokers", r"p99 ([\d.]+) ms"),
    "heartbeat-cpu": ("heartbeat_load, 1,000 brokers", r"([\d.]+)% of a core"),
    "create-one-p50": ("controller_bench --seq 200", r"p50 ([\d.]+) ms"),
    "create-one-p99": ("controller_bench --seq 200", r"p99 ([\d.]+) ms"),
    "create-50x10": ("--topics-per-batch 50", r"([\d,]+) partitions/s"),
    "create-25x100": ("--topics-per-batch 25", r"([\d,]+) partitions/s"),
    "create-25x100-cpu": ("--topics-per-batch 25", r"\(([\d.]+)% of a core\)"),
    "delete": ("DeleteTopics in batches of 50", r"([\d,]+) topics/s"),
    "restart": ("restart with the ~111,000 partitions", r"([\d.]+) s"),
}
# Kafka's 1,000,000-partition figures: (run, pattern, factor to the tool's unit: MB).
README_1M = {
    "create (partitions/s)": ("1,000,000 partitions created", r"([\d,]+) partitions/s", 1),
    "restart to CreateTopics answered (s)": ("restart with those", r"active after ([\d.]+) s", 1),
    "peak RSS (MB)": ("restart with those", r"([\d.]+) GB RSS", 1000),
    "newest snapshot (MB)": ("1,000,000 partitions created", r"([\d.]+) MB snapshot", 1),
}
HIGHER_IS_BETTER = {"registration", "create-50x10", "create-25x100", "delete"}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def readme_runs() -> dict[str, str]:
    """The README's table of Kafka 3.9's figures: run -> figures."""
    runs = {}
    for line in (SHARED_TOOLS / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2 and not set(cells[1]) <= {"-", " "}:
            runs[cells[0]] = cells[1]
    return runs


def readme_figure(run_start: str, pattern: str) -> float:
    runs = [figures for run, figures in readme_runs().items() if run_start in run]
    assert len(runs) == 1, f"README.md has no single run named {run_start!r}"
    match = re.search(pattern, runs[0])
    assert match is not None, f"README.md's run {run_start!r} has no {pattern!r}"
    return number(match.group(1))


def markdown_rows(text: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header line starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), f"a row of {len(cells)} cells: {line!r}"
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def start_bench(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tools.bench_controller", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait (bounded) for a bench run; killed past RUN_TIMEOUT_S."""
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return finish(start_bench(*args))


QUICK_ARGS = "--quick --scale 0.02"
ONLY_ARGS = f"{QUICK_ARGS} --only delete --only scaling --scaling-partitions 2500"


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """The quick run's table, and an `--only delete` run with the scaling run, side by side."""
    started = {
        "quick": start_bench(*QUICK_ARGS.split()),
        "only": start_bench(*ONLY_ARGS.split()),
    }
    try:
        yield {name: finish(process) for name, process in started.items()}
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def quick_run(runs: dict[str, subprocess.CompletedProcess[str]]) -> str:
    done = runs["quick"]
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def only_run(runs: dict[str, subprocess.CompletedProcess[str]]) -> str:
    done = runs["only"]
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def table(quick_run: str) -> dict[str, dict[str, str]]:
    return {row["row"]: row for row in markdown_rows(quick_run, "| row |")}


def test_every_row_of_the_issue_is_printed_with_a_positive_kwire_figure(
    table: dict[str, dict[str, str]],
) -> None:
    assert set(table) == set(README_FIGURES)
    for key, row in table.items():
        value = number(row["kwire"])
        assert math.isfinite(value) and value > 0, f"{key}: {row['kwire']}"


def test_the_kafka_figures_printed_are_those_of_the_shared_readme(
    table: dict[str, dict[str, str]],
) -> None:
    for key, (run, pattern) in README_FIGURES.items():
        assert number(table[key]["Kafka 3.9"]) == readme_figure(run, pattern), key


def test_each_ratio_is_kwire_over_kafka_and_says_which_way_is_better(
    table: dict[str, dict[str, str]],
) -> None:
    for key, row in table.items():
        kwire, kafka = number(row["kwire"]), number(row["Kafka 3.9"])
        # both figures are printed rounded (3 significant digits at least)
        assert number(row["kwire/Kafka"]) == pytest.approx(kwire / kafka, rel=0.01, abs=0.01), key
        expected = "higher" if key in HIGHER_IS_BETTER else "lower"
        assert row["better"] == expected, key


def test_a_row_meets_its_target_exactly_when_its_figure_is_past_the_bound(
    table: dict[str, dict[str, str]],
) -> None:
    for key, row in table.items():
        if row["issue's target"] == "-":
            assert row["met"] == "-", key
            continue
        match = re.match(r"(<=|>=|<|>) ([\d,.]+)", row["issue's target"])
        assert match is not None, row["issue's target"]
        op, bound, value = match.group(1), number(match.group(2)), number(row["kwire"])
        past = {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}
        assert row["met"] == ("yes" if past[op] else "no"), key


def test_the_scaling_run_prints_positive_restart_times_and_rss_for_each_size(
    only_run: str,
) -> None:
    rows = markdown_rows(only_run, "| partitions |")
    kwire = [row for row in rows if not row["partitions"].startswith("Kafka")]
    assert [number(row["partitions"]) for row in kwire] == [2500]
    for row in kwire:
        for column in (
            "create (partitions/s)",
            "restart to CreateTopics answered (s)",
            "peak RSS (MB)",
        ):
            assert number(row[column]) > 0, (row, column)


def test_the_scaling_table_compares_each_size_with_the_one_before() -> None:
    from tools.bench_controller import ScalePoint, render_scaling

    points = [
        ScalePoint(
            partitions=2500, partitions_per_s=10_000, restart_s=0.4, rss_mb=50, snapshot_mb=0
        ),
        ScalePoint(
            partitions=5000, partitions_per_s=12_000, restart_s=0.6, rss_mb=60, snapshot_mb=1.5
        ),
    ]
    lines = render_scaling(points)
    assert lines[2:4] == [
        "| 2,500 | 10,000 | 0.40 | 50.0 | none |",
        "| 5,000 | 12,000 | 0.60 | 60.0 | 1.5 |",
    ]
    assert lines[-1] == "2,500 -> 5,000 partitions (x2): restart x1.5, peak RSS x1.2"


def test_the_scaling_run_prints_kafkas_million_partition_figures_from_the_readme(
    only_run: str,
) -> None:
    (kafka,) = [
        row
        for row in markdown_rows(only_run, "| partitions |")
        if row["partitions"].startswith("Kafka")
    ]
    assert kafka["partitions"] == "Kafka 3.9: 1,000,000"
    for column, (run, pattern, factor) in README_1M.items():
        assert number(kafka[column]) == pytest.approx(readme_figure(run, pattern) * factor), column


def test_the_controller_refused_nothing_at_the_tiny_scale(quick_run: str, only_run: str) -> None:
    assert "ERRORS" not in quick_run
    assert "ERRORS" not in only_run


def test_the_machine_and_a_warning_that_figures_are_noisy_are_printed(quick_run: str) -> None:
    assert f"machine: {os.cpu_count()} cores" in quick_run
    assert "NOISY" in quick_run and "vary from machine to machine" in quick_run


def test_only_runs_and_prints_the_one_row_asked_for_and_the_scaling_run(
    runs: dict[str, subprocess.CompletedProcess[str]], only_run: str
) -> None:
    rows = markdown_rows(only_run, "| row |")
    assert [row["row"] for row in rows] == ["delete"]
    assert number(rows[0]["kwire"]) > 0
    assert "heartbeat" not in runs["only"].stderr  # the heartbeat load did not run
    assert "| partitions |" not in runs["quick"].stdout  # and without --scaling, no scaling run


def test_a_scale_that_is_not_a_positive_number_is_refused_with_a_clear_error() -> None:
    done = run_bench("--scale", "0")
    assert done.returncode == 2
    assert "--scale must be a positive number" in done.stderr
