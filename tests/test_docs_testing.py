"""docs/testing.md's examples run as written: the pytest example as a project's test file
in a new pytest process (the plugin loaded as an installed kwire loads it), the script
outside pytest as a new Python process; both also pass ruff, as kwire's own code must."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_testing_plugin import KWIRE_ROOT, run_user_tests

DOC = KWIRE_ROOT / "docs" / "testing.md"
SCRIPT_TIMEOUT_S = 120.0


def examples() -> list[str]:
    """The doc's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_its_pytest_example_and_its_script() -> None:
    pytest_example, script = examples()
    assert "def test_" in pytest_example and "kwire_quorum" in pytest_example
    assert "KwireQuorum.start(" in script


def test_the_pytest_example_passes_as_a_projects_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest_example = examples()[0]
    result = run_user_tests(pytester, monkeypatch, pytest_example)
    tests = len(re.findall(r"^(?:async )?def test_", pytest_example, re.M))
    result.assert_outcomes(passed=tests)


def test_the_script_outside_pytest_starts_a_quorum_and_names_its_voters(tmp_path: Path) -> None:
    script = examples()[1]
    env = {**os.environ, "PYTHONPATH": str(KWIRE_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    voters, led_by = done.stdout.strip().split(" led by ")
    assert re.fullmatch(r"1@127\.0\.0\.1:\d+,2@127\.0\.0\.1:\d+,3@127\.0\.0\.1:\d+", voters)
    assert led_by in {"1", "2", "3"}


def test_the_examples_pass_ruff_with_kwires_own_settings(tmp_path: Path) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip(f"ruff is not installed beside {sys.executable}")
    for index, source in enumerate(examples()):
        (tmp_path / f"example_{index}.py").write_text(source)
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [
                str(ruff),
                *command,
                "--no-cache",
                "--config",
                str(KWIRE_ROOT / "pyproject.toml"),
                ".",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
