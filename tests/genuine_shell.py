"""Running Kafka's own ``kafka-metadata-shell.sh`` from tests, around a Kafka bug.

Kafka 3.9's shell starts its command once the MetadataLoader has applied any offset, while
its SnapshotFileReader is still feeding it the rest of the file (KAFKA-15371, fixed in Kafka
4.1). So a run may print the image of only a prefix of the file, or, when the race goes the
other way, never start the command at all (its main thread asleep in
MetadataShell.waitUntilCaughtUp). Seen here on a 28-batch segment: 2 runs in 12 stuck, and
2 in 8 printing a partial image; over some logs most runs get stuck (tests skip those
with 3.9). A stuck run is killed after ``ATTEMPT_S`` (a normal run
takes about a second); either kind is run again, up to ``ATTEMPTS`` runs in all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

ATTEMPT_S = 15.0
ATTEMPTS = 5


def run_metadata_shell(
    script: Path,
    snapshot: Path,
    *command: str,
    env: Mapping[str, str] | None = None,
    loaded: Callable[[subprocess.CompletedProcess[str]], bool] = lambda _: True,
) -> subprocess.CompletedProcess[str]:
    """``script --snapshot snapshot command...`` to completion, output captured, run again
    while a run is stuck or ``loaded`` says it saw a partial image; the last run. Raises
    ``subprocess.TimeoutExpired`` if every run got stuck."""
    result: subprocess.CompletedProcess[str] | None = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = subprocess.run(
                [str(script), "--snapshot", str(snapshot), *command],
                capture_output=True,
                text=True,
                timeout=ATTEMPT_S,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            if attempt == ATTEMPTS and result is None:
                raise
            continue
        if loaded(result):
            break
    assert result is not None
    return result
