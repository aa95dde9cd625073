"""The status page in headless Chromium, against a real kwire server with three brokers
written in the test (tests/test_server_multi_broker.py's `Broker`: BrokerRegistration v4,
a BrokerHeartbeat every 300 ms). The page, loaded once, follows the cluster by itself:
the quorum and the unfenced brokers, then the topics created after it was loaded, then a
broker that falls silent and is fenced by its session timeout, with the partitions it led
moved or offline and its fencing among the latest metadata events.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian's chromium and chromium-driver;
.ci/run installs them) and skips without them. Selenium's calls block the event loop for a
few milliseconds each; the session timeout (3 s) is far above that.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from server_harness import HOST, KwireServer
from test_server_multi_broker import Broker

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SESSION_TIMEOUT_MS = 3000
TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="headless Chromium is not installed (apt-get install chromium chromium-driver)",
)

Topic = CreateTopicsRequest.CreatableTopic
Assignment = CreateTopicsRequest.CreatableReplicaAssignment


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by chromedriver, with flags that keep it off the network
    (the machine has none: without them it waits on lookups) and a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="kwire-chromium-") as profile:
        options = webdriver.ChromeOptions()
        for flag in (
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}",
        ):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(5)
        try:
            yield driver
        finally:
            driver.quit()


def status_url(server: KwireServer) -> str:
    found = re.search(r"operator pages /status, /status\.json on (http://\S+)", server.stdout())
    assert found, server.output()
    return found.group(1) + "/status"


def leader_epoch(server: KwireServer) -> int:
    """The epoch in the node's quorum-state file (Kafka's format)."""
    path = server.data_dir / "__cluster_metadata-0" / "quorum-state"
    return int(json.loads(path.read_text())["leaderEpoch"])


# The rendered text of every element a selector matches, read in one script run: the
# page re-renders every second (replaceChildren), and an element found by one WebDriver call
# may be gone by the next (StaleElementReferenceException), while a script sees one DOM.
READ_TEXTS = (
    "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.innerText.trim());"
)


class Page:
    """What the loaded page shows, read through the DOM (each read is one short call)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def text(self, selector: str) -> str | None:
        found = self.texts(selector)
        return found[0] if found else None

    def texts(self, selector: str) -> list[str]:
        return [str(text) for text in self.driver.execute_script(READ_TEXTS, selector)]

    def partition(self, name: str) -> tuple[str | None, str | None, str | None]:
        row = f'tr[data-partition="{name}"]'
        return self.text(f"{row} .leader"), self.text(f"{row} .isr"), self.text(f"{row} .state")

    async def shows(self, check: Callable[[Page], bool], what: str) -> None:
        """Wait (bounded) until the page shows `check`; the page refreshes itself."""
        with trio.move_on_after(20):
            while not check(self):
                await trio.sleep(0.2)
            return
        raise AssertionError(f"the page never showed {what}; it shows:\n{self.text('body')}")


async def test_the_status_page_follows_brokers_topics_and_a_fencing_live(
    tmp_path: Path, browser: Any
) -> None:
    server = KwireServer.create(
        tmp_path / "server",
        extra_properties={
            "kwire.status.listener": f"{HOST}:0",
            "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
            "broker.heartbeat.interval.ms": "300",
        },
    )
    try:
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                brokers = {b: Broker(b, server) for b in (1, 2, 3)}  # type: ignore[arg-type]
                for broker in brokers.values():
                    await broker.register()
                    nursery.start_soon(broker.heartbeat_forever)
                while any(b.fenced is not False for b in brokers.values()):
                    await trio.sleep(0.05)
                await story(server, brokers, Page(browser))
                nursery.cancel_scope.cancel()
    finally:
        server.close()


async def story(server: KwireServer, brokers: dict[int, Broker], page: Page) -> None:
    page.driver.get(status_url(server))
    epoch = leader_epoch(server)
    await page.shows(
        lambda p: p.text("#q-leader") == "1" and p.text("#q-epoch") == str(epoch),
        f"node 1 leading epoch {epoch}",
    )
    assert page.text("#q-state") == "leader (active controller)"
    await page.shows(
        lambda p: [p.text(f'tr[data-broker="{b}"] .state') for b in (1, 2, 3)] == ["active"] * 3,
        "three active brokers",
    )
    # Marks this load of the page: it must still be there after the changes below.
    page.driver.execute_script("window.kwireLoad = 'first';")

    created = await brokers[1].request(
        CreateTopicsRequest(
            topics=[
                Topic(name="solo", num_partitions=-1, replication_factor=-1,
                      assignments=[Assignment(partition_index=0, broker_ids=[3])]),
                Topic(name="shared", num_partitions=-1, replication_factor=-1,
                      assignments=[Assignment(partition_index=0, broker_ids=[3, 1]),
                                   Assignment(partition_index=1, broker_ids=[1, 2])]),
            ],
            timeout_ms=30_000,
        ),
        7,
    )  # fmt: skip
    assert [(t.name, t.error_code) for t in created.topics] == [
        ("solo", ErrorCode.NONE),
        ("shared", ErrorCode.NONE),
    ]
    await page.shows(
        lambda p: (
            p.partition("solo-0") == ("3", "[3]", "online")
            and p.partition("shared-0") == ("3", "[3, 1]", "online")
            and p.partition("shared-1") == ("1", "[1, 2]", "online")
        ),
        "the new topics with their leaders and ISRs",
    )
    assert page.text("#offline-count") == "0"

    # Broker 3 falls silent: the controller fences it once its session times out
    # (Kafka's ReplicationControlManager.handleBrokerFenced): shared-0 moves to 1, the
    # other ISR member, and solo-0, whose only replica was 3, has no leader and keeps its
    # last ISR (PartitionChangeBuilder empties an ISR only with ELR on, not at 3.9-IV0).
    silent_since = time.monotonic()
    brokers[3].silent = True
    await page.shows(lambda p: p.text('tr[data-broker="3"] .state') == "fenced", "broker 3 fenced")
    assert time.monotonic() - silent_since >= SESSION_TIMEOUT_MS / 1000 - 0.5
    await page.shows(
        lambda p: (
            p.partition("solo-0") == ("-1", "[3]", "offline")
            and p.partition("shared-0") == ("1", "[1]", "online")
            and p.text("#offline-count") == "1"
        ),
        "solo-0 offline and shared-0 led by broker 1",
    )
    assert [page.text(f'tr[data-broker="{b}"] .state') for b in (1, 2)] == ["active"] * 2
    events = page.texts("#events li")
    fencing = [line for line in events if line.endswith("BrokerRegistrationChange broker 3 fenced")]
    assert fencing, events
    assert any("PartitionChange shared-0 leader 1 isr [1]" in line for line in events), events
    assert page.driver.execute_script("return window.kwireLoad;") == "first"  # never reloaded
