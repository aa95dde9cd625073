"""The interop tests pick kwire's metadata.version from the genuine distribution's release."""

from __future__ import annotations

from pathlib import Path

import pytest
from interop.conftest import KafkaDistribution, missing_kafka_reason


def distribution(tmp_path: Path, clients_jar: str) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "kafka-server-start.sh").write_text("#!/bin/sh\n")
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "kafka_2.13-x.jar").write_bytes(b"")
    (tmp_path / "libs" / clients_jar).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("jar", "release", "level"),
    [
        ("kafka-clients-3.9.0.jar", (3, 9, 0), "3.9-IV0"),
        ("kafka-clients-4.0.1.jar", (4, 0, 1), "4.0-IV3"),
        ("kafka-clients-4.3.1.jar", (4, 3, 1), "4.3-IV0"),
    ],
)
def test_kwire_is_formatted_at_the_level_the_release_formats_new_clusters_at(
    tmp_path: Path, jar: str, release: tuple[int, int, int], level: str
) -> None:
    kafka = KafkaDistribution(home=distribution(tmp_path, jar), log_dir=tmp_path)
    assert kafka.release == release
    assert kafka.release_version == level


def test_a_release_line_kwire_does_not_serve_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = distribution(tmp_path, "kafka-clients-3.8.1.jar")
    monkeypatch.setenv("KAFKA_HOME", str(home))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    reason = missing_kafka_reason()
    assert reason is not None and "Kafka 3.8.1:" in reason and "3.9, 4.0" in reason
