"""kwire's pytest plugin, used as a project that tests Kafka tooling would use it: each test
writes a small test file and runs it in a fresh pytest (a subprocess, through pytest's
`pytester`) that imports this checkout's kwire, as an installed kwire would be imported."""

from __future__ import annotations

import os
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from kwire.testing.process import KWIRE_ROOT

RUN_TIMEOUT_S = 300.0  # each file below starts at most a few quorums
PLUGIN_MODULE = "kwire.testing.pytest_plugin"


def run_user_tests(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    *,
    load_plugin: bool = True,
    extra_path: Path | None = None,
) -> pytest.RunResult:
    """Run `source` as a project's test file in a new pytest process; with `load_plugin`
    the plugin is named with ``-p`` (what the entry point does for an installed kwire),
    unless an installed kwire's entry point loads it already (naming it again would
    register the module twice)."""
    paths = [str(KWIRE_ROOT), *([str(extra_path)] if extra_path else [])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    pytester.makepyfile(test_user=source)
    installed = bool(entry_points(group="pytest11", name="kwire"))
    plugin = ["-p", PLUGIN_MODULE] if load_plugin and not installed else []
    return pytester.runpytest_subprocess(
        *plugin, "-p", "no:cacheprovider", "-v", timeout=RUN_TIMEOUT_S
    )


SYNC_THREE_VOTERS = """
from kwire.protocol.error_codes import ErrorCode
from kwire.testing.client import describe_quorum


def test_three_voters_elect_and_fail_over(kwire_quorum):
    addresses = kwire_quorum.bootstrap_controllers.split(",")
    assert kwire_quorum.voters == ",".join(f"{n}@{a}" for n, a in zip((1, 2, 3), addresses))
    leader = kwire_quorum.leader_id(timeout=10)
    host, port = addresses[leader - 1].split(":")
    partition = describe_quorum(host, int(port)).topics[0].partitions[0]
    assert partition.error_code == ErrorCode.NONE
    assert partition.leader_id == leader
    assert sorted(v.replica_id for v in partition.current_voters) == [1, 2, 3]
    for data_dir in kwire_quorum.data_dirs.values():
        meta = (data_dir / "meta.properties").read_text()
        assert f"cluster.id={kwire_quorum.cluster_id}" in meta
    assert kwire_quorum.kill_node(leader) == -9
    successor = kwire_quorum.leader_id(timeout=30)
    assert successor is not None and successor != leader
    kwire_quorum.start_node(leader)
    assert kwire_quorum.process(leader).running
"""


def test_the_three_voter_fixture_elects_a_leader_and_fails_over_in_a_synchronous_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, SYNC_THREE_VOTERS)
    result.assert_outcomes(passed=1)


TRIO_IN_PROCESS = """
import shutil

import pytest

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest
from kwire.server.client import KafkaClient
from kwire.testing.inprocess import NodeFault
from kwire.testing.quorum import QuorumStartError


async def ask(address, body, version):
    host, port = address.split(":")
    client = await KafkaClient.connect(host, int(port))
    try:
        return await client.request(body, version)
    finally:
        await client.aclose()


DESCRIBE = DescribeQuorumRequest(topics=[DescribeQuorumRequest.TopicData(
    topic_name="__cluster_metadata",
    partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)])])


@pytest.mark.trio
async def test_the_in_process_controller_answers_as_leader(kwire_controller):
    answer = await ask(kwire_controller.bootstrap_controllers, DESCRIBE, 1)
    partition = answer.topics[0].partitions[0]
    assert (partition.error_code, partition.leader_id) == (ErrorCode.NONE, 1)
    assert kwire_controller.voters == "1@" + kwire_controller.bootstrap_controllers
    meta = (kwire_controller.data_dirs[1] / "meta.properties").read_text()
    assert f"cluster.id={kwire_controller.cluster_id}" in meta


@pytest.mark.trio
async def test_factory_overrides_reach_the_controller(kwire_quorum_factory):
    plain = kwire_quorum_factory(voters=1, mode="inprocess")
    strict = kwire_quorum_factory(
        voters=1, mode="inprocess", overrides={"delete.topic.enable": "false"}
    )
    await plain.wait_leader(timeout=10)
    await strict.wait_leader(timeout=10)
    delete = DeleteTopicsRequest(topic_names=["orders"], timeout_ms=1000)
    answers = [await ask(q.bootstrap_controllers, delete, 4) for q in (plain, strict)]
    codes = [a.responses[0].error_code for a in answers]
    assert codes == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.TOPIC_DELETION_DISABLED]
    assert plain.cluster_id != strict.cluster_id


@pytest.mark.trio
async def test_an_in_process_quorum_of_three_elects_one_leader(kwire_quorum_factory):
    quorum = kwire_quorum_factory(voters=3, mode="inprocess")
    leader = await quorum.wait_leader(timeout=30)
    address = dict(zip((1, 2, 3), quorum.bootstrap_controllers.split(",")))[leader]
    partition = (await ask(address, DESCRIBE, 1)).topics[0].partitions[0]
    assert partition.leader_id == leader
    assert sorted(v.replica_id for v in partition.current_voters) == [1, 2, 3]


@pytest.mark.trio
async def test_an_in_process_node_whose_key_store_cannot_load_fails_the_call(kwire_quorum_factory):
    quorum = kwire_quorum_factory(voters=1, mode="inprocess", overrides={
        "listener.security.protocol.map": "CONTROLLER:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "/nonexistent/keystore.pem",
    })
    await quorum.wait_leader(timeout=10)


@pytest.mark.trio
async def test_an_in_process_node_whose_log_directory_goes_away_fails_the_wait_for_a_leader(
    kwire_quorum_factory,
):
    quorum = kwire_quorum_factory(voters=1, mode="inprocess")
    partition = quorum.data_dirs[1] / "__cluster_metadata-0"
    # Opened and listening; removed before its first election writes the quorum-state.
    shutil.rmtree(partition)
    with pytest.raises(QuorumStartError) as failed:
        await quorum.wait_leader(timeout=10)
    reason = f"Unable to write {partition / 'quorum-state'}"
    assert str(failed.value) == f"an in-process kwire node failed: {reason}"
    assert isinstance(failed.value.__cause__, NodeFault)
    assert isinstance(failed.value.__cause__.__cause__, FileNotFoundError)
    assert quorum.leader_id() is None
"""


def test_in_process_fixtures_serve_a_trio_test_take_overrides_and_report_a_failed_node(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, TRIO_IN_PROCESS)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ConfigError: "
            "ssl.keystore.location=/nonexistent/keystore.pem: the PEM SSL keystore failed to load*"
        ]
    )


SUBPROCESS_FACTORY = """
def test_a_restarted_node_keeps_its_address_and_cluster(kwire_quorum_factory):
    quorum = kwire_quorum_factory(voters=1, mode="subprocess")
    before = quorum.bootstrap_controllers
    assert quorum.leader_id(timeout=10) == 1
    assert quorum.stop_node(1) == 0
    quorum.restart_node(1)
    assert quorum.bootstrap_controllers == before
    assert quorum.leader_id(timeout=20) == 1


def test_a_node_that_cannot_start_fails_set_up_with_its_log(kwire_quorum_factory):
    kwire_quorum_factory(voters=1, overrides={"authorizer.class.name": "com.example.Nope"})
"""


def test_the_subprocess_factory_restarts_nodes_and_reports_a_failed_start_with_its_log(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, SUBPROCESS_FACTORY)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*QuorumStartError: kwire node 1 exited with status 1 before listening:",
            "*authorizer.class.name=com.example.Nope: kwire cannot load Java plugin classes*",
        ]
    )


UNUSED = """
import sys


def test_kwire_is_not_imported_by_a_project_that_does_not_use_it(request):
    plugin = sys.modules["kwire.testing.pytest_plugin"]
    assert request.config.pluginmanager.is_registered(plugin)
    loaded = sorted(m for m in sys.modules if m.startswith("kwire"))
    assert loaded == ["kwire", "kwire.testing", "kwire.testing.pytest_plugin"]
"""


def test_a_project_that_does_not_use_the_fixtures_imports_nothing_of_kwire_but_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, UNUSED)
    result.assert_outcomes(passed=1)


ENTRY_POINT_USER = """
def test_the_fixtures_come_from_the_entry_point(request, kwire_quorum_factory):
    assert request.config.pluginmanager.has_plugin("kwire")
    assert kwire_quorum_factory(voters=1).leader_id(timeout=10) == 1
"""


def test_the_pyproject_entry_point_loads_the_plugin_without_being_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What pip install writes for kwire's pyproject entry point, in a directory on the
    path: pytest then loads the plugin by itself."""
    pyproject = tomllib.loads((KWIRE_ROOT / "pyproject.toml").read_text())
    entry_points = pyproject["project"]["entry-points"]["pytest11"]
    site = tmp_path / "site"
    dist_info = site / "kwire_plugin_probe-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: kwire-plugin-probe\nVersion: 0.0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    result = run_user_tests(
        pytester, monkeypatch, ENTRY_POINT_USER, load_plugin=False, extra_path=site
    )
    result.assert_outcomes(passed=1)
