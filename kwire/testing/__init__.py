"""kwire as a test fixture: start a kwire KRaft quorum for tests of Kafka tooling.

`KwireQuorum` (kwire.testing.quorum) starts 1 or 3 voters, in this process or as
subprocesses, on free ports of 127.0.0.1 with temporary data directories, and hands
back the cluster id and the addresses to give clients and brokers. The pytest plugin
(kwire.testing.pytest_plugin, entry point ``pytest11: kwire``) wraps it in the fixtures
``kwire_controller``, ``kwire_quorum`` and ``kwire_quorum_factory``; docs/testing.md
has an example.

Names are imported on first use, so that importing this package (as pytest does for
every project when kwire is installed) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kwire.testing.process import KwireProcess, NodeStartError
    from kwire.testing.quorum import KwireQuorum, Mode, QuorumStartError

__all__ = ["KwireProcess", "KwireQuorum", "Mode", "NodeStartError", "QuorumStartError"]

_HOMES = {
    "KwireProcess": "kwire.testing.process",
    "NodeStartError": "kwire.testing.process",
    "KwireQuorum": "kwire.testing.quorum",
    "Mode": "kwire.testing.quorum",
    "QuorumStartError": "kwire.testing.quorum",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'kwire.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
