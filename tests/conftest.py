from pathlib import Path

import pytest

# Genuine Kafka 3.9 files live beside the repository, not in it.
KAFKA_CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9"


@pytest.fixture
def kafka_captures() -> Path:
    """Directory of genuine Kafka 3.9 captures; skips the test when it is absent."""
    if not (KAFKA_CAPTURES / "metadata-log").is_dir():
        pytest.skip(f"genuine Kafka captures not found at {KAFKA_CAPTURES}")
    return KAFKA_CAPTURES
