"""kwire quorum against running kwire controllers: a one-node quorum (the command itself,
in-process) and a three-node quorum asked through a follower (the client finds the active
controller through DescribeCluster, as Kafka's admin client does); and the command's
refusals, with Kafka's messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from procs_harness import FORM_TIMEOUT_S, QuorumNotFormed, multi_voter_quorum, open_quorum
from server_harness import HOST, KwireServer, free_port, kwire_server_factory

from kwire.tools.quorum import describe_quorum, main
from kwire.tools.quorum_text import TextRelease, quorum_info, replication_text, status_text

__all__ = ["kwire_server_factory", "multi_voter_quorum"]  # fixtures


def test_status_of_a_one_node_quorum_names_its_cluster_leader_and_voter(
    kwire_server_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    server: KwireServer = kwire_server_factory()
    assert main(["--bootstrap-controller", f"{HOST}:{server.port}", "describe", "--status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ClusterId:              {server.cluster_id}"
    assert lines[1] == "LeaderId:               1"
    assert lines[4:6] == ["MaxFollowerLag:         0", "MaxFollowerLagTimeMs:   0"]
    # A static voter has no directory id: Kafka 4.3.1 leaves the key out.
    assert (
        lines[6]
        == f'CurrentVoters:          [{{"id": 1, "endpoints": ["CONTROLLER://{HOST}:{server.port}"]}}]'
    )
    assert lines[7] == "CurrentObservers:       []"


def test_replication_of_a_one_node_quorum_is_one_leader_row_at_the_high_watermark(
    kwire_server_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    server: KwireServer = kwire_server_factory()
    address = f"{HOST}:{server.port}"
    assert main(["--bootstrap-controller", address, "describe", "--status"]) == 0
    high_watermark = int(capsys.readouterr().out.splitlines()[3].split()[1])
    assert (
        main(["--bootstrap-controller", address, "describe", "--replication", "--human-readable"])
        == 0
    )
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ]
    cells = [c.strip() for c in row.split("\t")]
    assert cells[0] == "1" and cells[1] == "AAAAAAAAAAAAAAAAAAAAAA" and cells[3] == "0"
    assert int(cells[2]) >= high_watermark  # the log end, written since the status or not
    assert cells[4].endswith(" ms ago") and cells[6] == "Leader"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--status", "--replication"],
            "Only one of --status or --replication should be specified with describe sub-command",
            id="both",
        ),
        pytest.param(
            [],
            "One of --status or --replication must be specified with describe sub-command",
            id="neither",
        ),
        pytest.param(
            ["--status", "--human-readable"],
            "The option --human-readable is only supported along with --replication",
            id="human status",
        ),
    ],
)
def test_conflicting_options_fail_with_kafkas_message(options, message, capsys) -> None:
    assert main(["--bootstrap-controller", f"{HOST}:1", "describe", *options]) == 1
    assert capsys.readouterr().err.strip() == message


def test_a_bad_address_and_an_unreachable_controller_fail_with_the_reason(capsys) -> None:
    assert main(["--bootstrap-controller", "nohost", "describe", "--status"]) == 1
    assert "Please provide valid host:port like host1:9091,host2:9092" in capsys.readouterr().err
    port = free_port()
    assert (
        main(
            [
                "--bootstrap-controller",
                f"{HOST}:{port}",
                "--timeout-ms",
                "300",
                "describe",
                "--status",
            ]
        )
        == 1
    )
    assert capsys.readouterr().err.startswith(
        "Timed out waiting for a node assignment. Call: describeMetadataQuorum"
    )


@pytest.mark.usefixtures("multi_voter_quorum")
async def test_a_three_node_quorum_asked_through_a_follower_is_described_by_its_leader(
    tmp_path: Path,
) -> None:
    with trio.fail_after(90):
        async with open_quorum(tmp_path, 3, log_level="WARNING") as quorum:
            try:
                leader, epoch = await quorum.wait_formed(FORM_TIMEOUT_S)
            except QuorumNotFormed as exc:  # pragma: no cover - the fixture checked
                pytest.fail(str(exc))
            follower = next(n for n in quorum.ids if n != leader)
            described = await describe_quorum([(HOST, quorum.node(follower).port)], 30)
            assert described.version == 2
            info = quorum_info(described.response)
            assert (info.leader_id, info.leader_epoch) == (leader, epoch)
            status = status_text(described.cluster_id, info, TextRelease.KAFKA_3_9).splitlines()
            assert status[0] == f"ClusterId:              {quorum.cluster_id}"
            voters = ", ".join(
                f'{{"id": {n}, "directoryId": null, "endpoints": ["CONTROLLER://{HOST}:{quorum.node(n).port}"]}}'
                for n in sorted(
                    quorum.ids, key=lambda n: [v.replica_id for v in info.voters].index(n)
                )
            )
            assert status[6] == f"CurrentVoters:          [{voters}]"
            rows = [line.split("\t") for line in replication_text(info).splitlines()[1:]]
            assert [(r[0].strip(), r[6].strip()) for r in rows] == [
                (str(leader), "Leader"),
                *((str(v.replica_id), "Follower") for v in info.voters if v.replica_id != leader),
            ]


def test_a_dead_first_bootstrap_address_is_skipped_for_the_next(
    kwire_server_factory, capsys
) -> None:
    server: KwireServer = kwire_server_factory()
    addresses = f"{HOST}:{free_port()},{HOST}:{server.port}"
    assert main(["--bootstrap-controller", addresses, "describe", "--status"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"ClusterId:              {server.cluster_id}"
