from collections.abc import Iterator
from pathlib import Path

import pytest

from kwire.protocol._codec import compiled_readers_available, use_accelerator
from kwire.testing.process import cache_bytecode_as_installed

# kwire's own pytest plugin (kwire.testing.pytest_plugin, entry point ``pytest11: kwire``),
# imported here too so that its fixtures are there whether or not the installed kwire's
# entry points are (a conftest's fixtures override an installed plugin's of the same name).
from kwire.testing.pytest_plugin import kwire_controller, kwire_quorum, kwire_quorum_factory

pytest_plugins = ["pytester"]

# The kwire processes the tests start (servers, storage and shell tools) compile kwire once
# and reuse the bytecode, as an installed kwire does, even where PYTHONDONTWRITEBYTECODE is
# set: otherwise each of the suite's hundreds of starts compiles kwire from source.
cache_bytecode_as_installed("kwire-test-pycache")

__all__ = ["codec_backend", "kafka_captures", "kwire_controller", "kwire_quorum"]
__all__ += ["kwire_quorum_factory"]

# Genuine Kafka 3.9 files live beside the repository, not in it.
KAFKA_CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-3.9"


@pytest.fixture
def kafka_captures() -> Path:
    """Directory of genuine Kafka 3.9 captures; skips the test when it is absent."""
    if not (KAFKA_CAPTURES / "metadata-log").is_dir():
        pytest.skip(f"genuine Kafka captures not found at {KAFKA_CAPTURES}")
    return KAFKA_CAPTURES


@pytest.fixture(scope="module", params=["compiled", "python"])
def codec_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests with the compiled readers and again with the Python ones."""
    if request.param == "compiled" and not compiled_readers_available():
        pytest.skip("the compiled readers are not built (no C compiler, or KWIRE_PURE_PYTHON)")
    use_accelerator(request.param == "compiled")
    yield request.param
    use_accelerator(True)
