"""The ``kwire`` command dispatches to each tool's ``main`` and explains bad commands."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from kwire import cli


def test_every_command_names_a_module_with_main() -> None:
    for name, (module_name, _) in cli.COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                pytest.skip(f"{name}: {module_name} not built yet")
            raise
        assert callable(module.main), name


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "usage: kwire <command>" in out
    assert all(name in out for name in cli.COMMANDS)


def test_help_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "dump-log" in capsys.readouterr().out


def test_unknown_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_dispatch_passes_the_remaining_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[list[str]] = []

    class Fake:
        @staticmethod
        def main(argv: list[str]) -> int:
            seen.append(argv)
            return 7

    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_module", "a fake"))
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: Fake)
    assert cli.main(["fake", "-x", "y"]) == 7
    assert seen == [["-x", "y"]]


def test_python_dash_m_kwire_is_the_kwire_command() -> None:
    # `python -m kwire` works where the console script is not on PATH (a venv not
    # activated): the same usage, the same exit status for a bad command.
    run = subprocess.run(
        [sys.executable, "-m", "kwire", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "unknown command 'frobnicate'" in run.stderr
    assert all(name in run.stderr for name in cli.COMMANDS)
