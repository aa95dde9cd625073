"""kwire's pytest plugin (entry point ``pytest11: kwire``): fixtures that start a kwire
KRaft quorum on free ports of 127.0.0.1 with temporary data directories.

- ``kwire_controller``: one voter served in this process (a Trio test, pytest-trio);
  yields a `KwireQuorum` whose node leads.
- ``kwire_quorum``: three voters, each a ``python -m kwire.server`` subprocess; yields a
  `KwireQuorum` once one leads. Synchronous and Trio tests alike.
- ``kwire_quorum_factory``: ``kwire_quorum_factory(voters=1|3, mode="inprocess"|
  "subprocess", overrides={...}, release_version="3.9-IV0")`` returns a started
  `KwireQuorum` (in-process mode from a Trio test only); every quorum it made is closed
  at teardown.

Each `KwireQuorum` gives `cluster_id`, `bootstrap_controllers` ("host:port,..."),
`voters` ("id@host:port,..." for controller.quorum.voters), `data_dirs`, `leader_id()`
and, in subprocess mode, `stop_node`/`kill_node`/`start_node`/`restart_node`. A quorum
that does not come up fails the test's set-up with `QuorumStartError` and the nodes' log
tails. This module imports only pytest: kwire itself is imported by the fixtures, so
projects that have kwire installed but do not use them pay nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kwire.testing.quorum import KwireQuorum

__all__ = ["kwire_controller", "kwire_quorum", "kwire_quorum_factory"]

QuorumFactory = Callable[..., "KwireQuorum"]


@pytest.fixture
async def kwire_controller(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KwireQuorum]:
    """A one-voter kwire quorum served in the test's Trio loop; its node leads."""
    from kwire.testing.quorum import KwireQuorum, Mode

    quorum = KwireQuorum.start(
        tmp_path_factory.mktemp("kwire-controller"), voters=1, mode=Mode.INPROCESS
    )
    try:
        await quorum.wait_leader(timeout=30)
        yield quorum
    finally:
        await quorum.aclose()


@pytest.fixture
def kwire_quorum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwireQuorum]:
    """A three-voter kwire quorum of subprocesses, started and led."""
    from kwire.testing.quorum import KwireQuorum, Mode

    quorum = KwireQuorum.start(
        tmp_path_factory.mktemp("kwire-quorum"), voters=3, mode=Mode.SUBPROCESS, log_level="WARNING"
    )
    try:
        yield quorum
    finally:
        quorum.close()


@pytest.fixture
def kwire_quorum_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuorumFactory]:
    """Call it for a started quorum: ``voters`` (default 1), ``mode`` ("subprocess",
    the default, or "inprocess"), ``overrides`` (controller properties), and the other
    keywords of `KwireQuorum.start`. Every quorum made is closed at teardown."""
    from kwire.testing.quorum import KwireQuorum

    made: list[KwireQuorum] = []

    def make(
        *,
        voters: int = 1,
        mode: str = "subprocess",
        overrides: Mapping[str, str] | None = None,
        **options: object,
    ) -> KwireQuorum:
        directory = tmp_path_factory.mktemp(f"kwire-{voters}-{mode}")
        quorum = KwireQuorum.start(
            directory,
            voters=voters,
            mode=mode,
            overrides=overrides,
            **options,  # type: ignore[arg-type]
        )
        made.append(quorum)
        return quorum

    try:
        yield make
    finally:
        for quorum in made:
            quorum.close()
