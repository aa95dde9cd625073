"""docs/operations.md names every configuration key kwire reads, so that a key added to
the server's configuration without its line in the operator's reference fails here."""

from __future__ import annotations

import re
from pathlib import Path

from kwire.server.config import KNOWN_KEYS

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def documented_keys() -> set[str]:
    text = OPERATIONS.read_text()
    return set(re.findall(r"`([a-z0-9.<>]+)`", text))


def test_every_key_kwire_reads_is_in_the_operations_reference() -> None:
    missing = sorted(KNOWN_KEYS - documented_keys())
    assert missing == [], f"keys read by kwire but missing from docs/operations.md: {missing}"


def test_the_reference_names_no_kwire_key_that_kwire_does_not_read() -> None:
    stale = sorted(k for k in documented_keys() if k.startswith("kwire.") and k not in KNOWN_KEYS)
    assert stale == [], f"kwire keys documented but not read: {stale}"


def test_every_exported_metric_is_in_the_operations_reference() -> None:
    from kwire.server.metrics import KAFKA_METRICS

    text = OPERATIONS.read_text()
    missing = [m.name for m in KAFKA_METRICS if f"`{m.name}`" not in text]
    assert missing == [], f"metrics exported but missing from docs/operations.md: {missing}"
