"""A static quorum of `python -m kwire.server` processes (controller.quorum.voters,
kraft.version 0) upgraded to kraft.version 1 with UpdateFeatures on the controller listener,
as `kafka-features --bootstrap-controller ... upgrade --feature kraft.version=1` asks Kafka
4.3.1: the followers have reported themselves to the leader by UpdateRaftVoter, the upgrade
writes KRaftVersionRecord(1) and the VotersRecord with every voter's directory id, ApiVersions
reports kraft.version 1, a new controller is then added with AddRaftVoter, and a restarted
voter keeps kraft.version 1."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import trio
from server_harness import HOST, KwireServer, free_port
from test_server_dynamic_quorum import dynamic_server, format_dynamic
from test_server_quorum_processes import (  # noqa: F401 (voters: a fixture)
    PROBE_INTERVAL_S,
    START_TIMEOUT_S,
    ask,
    leader_of,
    voters,
)
from test_server_voter_changes import add, directory_id, quorum

from kwire.controller.operation import RequestContext
from kwire.log import MetadataLog, MetadataLogConfig
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterResponse
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.controller_registration import (
    ControllerRegistrationRequest,
    ControllerRegistrationResponse,
)
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse
from kwire.raft.voter_set import KRaftVersion
from kwire.records import decode_batch
from kwire.records.control import ControlRecordType, decode_control_record_key
from kwire.server.__main__ import build_settings
from kwire.server.config import ControllerServerConfig
from kwire.server.node import ControllerNode
from kwire.server.quorum_voters import read_control_records
from kwire.storage import format_storage, random_uuid

TIMEOUT_S = 60.0
DOWNGRADE = (
    "The update failed for all features since the following feature had an error: Invalid "
    "update version 0 for feature kraft.version. Can't downgrade the version of this "
    "feature without setting the upgrade type to either safe or unsafe downgrade."
)
NOT_ALL = (
    "The update failed for all features since the following feature had an error: Invalid "
    "upgrade of kraft.version to KRAFT_VERSION_1 because not all of the voters support it"
)


def node_id(server: KwireServer) -> int:
    return int(server.properties["node.id"])


def kraft_upgrade(validate_only: bool) -> UpdateFeaturesRequest:
    return UpdateFeaturesRequest(
        timeout_ms=30_000,
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature="kraft.version", max_version_level=1, upgrade_type=1
            )
        ],
        validate_only=validate_only,
    )


async def register_controller(leader: KwireServer, server: KwireServer) -> None:
    """What the standby's ControllerRegistrationManager sends the active controller (kwire's
    standbys register only when they first activate)."""
    request = ControllerRegistrationRequest(
        controller_id=node_id(server),
        incarnation_id=uuid.uuid4(),
        zk_migration_ready=False,
        listeners=[
            ControllerRegistrationRequest.Listener(
                name="CONTROLLER", host=HOST, port=server.port, security_protocol=0
            )
        ],
        features=[
            ControllerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            ),
            ControllerRegistrationRequest.Feature(
                name="kraft.version", min_supported_version=0, max_supported_version=1
            ),
        ],
    )
    answer = await ask(leader, request, 0)
    assert isinstance(answer, ControllerRegistrationResponse)
    assert answer.error_code == ErrorCode.NONE, answer.error_message


async def registered_broker(servers: list[KwireServer]) -> KwireServer:
    """A 3.9-or-later broker (kraft.version 0-1) registers: the active controller's first
    write; returns that controller."""
    while True:
        leader = await leader_of(servers)
        registration = BrokerRegistrationRequest(
            broker_id=1,
            cluster_id=leader.cluster_id,
            incarnation_id=uuid.uuid4(),
            listeners=[
                BrokerRegistrationRequest.Listener(
                    name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
                )
            ],
            features=[
                BrokerRegistrationRequest.Feature(
                    name=name, min_supported_version=low, max_supported_version=high
                )
                for name, low, high in (("metadata.version", 1, 21), ("kraft.version", 0, 1))
            ],
            rack=None,
            log_dirs=[uuid.uuid4()],
        )
        answer = await ask(leader, registration, 4)
        if isinstance(answer, BrokerRegistrationResponse):
            if answer.error_code == ErrorCode.NONE:
                return leader
            assert answer.error_code == ErrorCode.NOT_CONTROLLER
        await trio.sleep(PROBE_INTERVAL_S)


async def kraft_version_at_leader(servers: list[KwireServer]) -> int:
    """The active controller's kraft.version as an operator sees it at metadata.version
    3.9-IV0 (where ApiVersions, as Kafka 3.9.0's, lists only the image's features): a
    validate-only "upgrade" to 0 is accepted at 0 and refused as a downgrade above."""
    request = UpdateFeaturesRequest(
        timeout_ms=30_000,
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature="kraft.version", max_version_level=0, upgrade_type=1
            )
        ],
        validate_only=True,
    )
    while True:
        answer = await ask(await leader_of(servers), request, 1)
        if isinstance(answer, UpdateFeaturesResponse):
            if answer.error_code == ErrorCode.NONE:
                return 0
            if answer.error_code == ErrorCode.INVALID_UPDATE_VERSION:
                assert answer.error_message == DOWNGRADE
                return 1
            assert answer.error_code == ErrorCode.NOT_CONTROLLER
        await trio.sleep(PROBE_INTERVAL_S)


async def caught_up_observer(leader: KwireServer, replica_id: int) -> bool:
    """Whether the leader's DescribeQuorum shows observer ``replica_id`` caught up to its
    end (a last caught-up time, -1 until then)."""
    observers = (await quorum(leader)).observers
    return any(o.replica_id == replica_id and o.last_caught_up_timestamp >= 0 for o in observers)


async def voters_hold_the_committed_log(leader: KwireServer) -> bool:
    """Whether every voter has fetched up to the leader's high watermark."""
    described = await quorum(leader)
    return all(v.log_end_offset >= described.high_watermark for v in described.current_voters)


async def test_a_static_quorum_upgraded_to_kraft_version_1_then_adds_a_voter(
    voters: list[KwireServer],  # noqa: F811
    tmp_path: Path,
) -> None:
    servers = voters
    cluster = servers[0].cluster_id
    newcomer_port = free_port()
    bootstrap = ",".join(f"{HOST}:{s.port}" for s in servers)
    newcomer = dynamic_server(tmp_path / "node-4", 4, newcomer_port, bootstrap)
    try:
        with trio.fail_after(TIMEOUT_S):
            leader = await registered_broker(servers)
            for server in servers:
                if server is not leader:
                    await register_controller(leader, server)
            assert await kraft_version_at_leader(servers) == 0

            # Until both followers have reported (one fetch timeout after they followed
            # this leader), the upgrade is refused as Kafka 4.3.1's raft leader refuses it.
            while True:
                answer = await ask(leader, kraft_upgrade(validate_only=True), 1)
                assert isinstance(answer, UpdateFeaturesResponse)
                if answer.error_code == ErrorCode.NONE:
                    break
                assert (answer.error_code, answer.error_message) == (
                    ErrorCode.INVALID_UPDATE_VERSION,
                    NOT_ALL,
                )
                await trio.sleep(0.1)
            assert await kraft_version_at_leader(servers) == 0  # validate_only wrote nothing

            answer = await ask(leader, kraft_upgrade(validate_only=False), 1)
            assert isinstance(answer, UpdateFeaturesResponse)
            assert (answer.error_code, answer.error_message) == (ErrorCode.NONE, None)
            assert [(r.feature, r.error_code) for r in answer.results] == [("kraft.version", 0)]
            assert await kraft_version_at_leader(servers) == 1
            described = await quorum(leader)
            assert {v.replica_id: v.replica_directory_id for v in described.current_voters} == {
                node_id(s): directory_id(s) for s in servers
            }

            # The quorum is dynamic: a controller formatted to join one is added.
            format_dynamic(newcomer, cluster, "--no-initial-controllers")
            newcomer.start(timeout=START_TIMEOUT_S)
            # The leader adds only an observer that has caught up (AddVoterHandler's
            # isReplicaCaughtUp, else "lagging behind"): its first fetch, from offset 0,
            # shows it before it has.
            while not await caught_up_observer(leader, 4):
                await trio.sleep(0.05)
            answer = await ask(leader, add(4, directory_id(newcomer), newcomer_port, cluster), 1)
            assert isinstance(answer, AddRaftVoterResponse)
            assert (answer.error_code, answer.error_message) == (ErrorCode.NONE, None)
            described = await quorum(leader)
            assert sorted(v.replica_id for v in described.current_voters) == [1, 2, 3, 4]

            # A restarted leader reads kraft.version 1 back from its log, and so does
            # whichever voter leads next.
            everyone = [*servers, newcomer]  # node 4 may lead now
            leader.close()
            leader.start(timeout=START_TIMEOUT_S)
            assert await kraft_version_at_leader(everyone) == 1
            leader = await leader_of(everyone)
            described = await quorum(leader)
            assert sorted(v.replica_id for v in described.current_voters) == [1, 2, 3, 4]
            # Each log read below holds what the leader committed once its voter fetched it.
            while not await voters_hold_the_committed_log(leader):
                await trio.sleep(0.05)
    finally:
        newcomer.close()
    for server in servers:
        server.close()
        log = MetadataLog.open(server.data_dir / "__cluster_metadata-0", MetadataLogConfig())
        try:
            records = read_control_records(log)
        finally:
            log.close()
        assert records.last_kraft_version is KRaftVersion.KRAFT_VERSION_1
        assert sorted(records.last_voter_set.voter_ids()) == [1, 2, 3, 4]


def test_a_sole_static_voter_upgrades_at_once_and_its_snapshots_and_restarts_keep_it(
    tmp_path: Path,
) -> None:
    """A one-voter static quorum needs no report: the upgrade's control batch
    (KRaftVersion, Voters) goes in right before the UpdateFeatures NoOpRecord; a snapshot
    taken after carries both after its header, and a restart from it is at kraft.version 1
    and leads again."""
    port = free_port()
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{port}",
            "listeners": f"CONTROLLER://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        }
    )
    format_storage(config, random_uuid(), release_version="3.9-IV0")
    node = ControllerNode(build_settings(config))
    try:
        node.start()
        assert node.raft.is_leader and node.active
        assert node.raft.kraft_version is KRaftVersion.KRAFT_VERSION_0
        before = node.log.end_offset
        now = int(time.time() * 1000)
        result = node.controller.handle(
            kraft_upgrade(validate_only=False), RequestContext(api_version=1), before, now
        )
        assert isinstance(result.response, UpdateFeaturesResponse)
        assert result.response.error_code == ErrorCode.NONE
        node.start_write(result, now)
        assert node.raft.kraft_version is KRaftVersion.KRAFT_VERSION_1
        data = node.log.read(before)
        control, _ = decode_batch(data, 0)
        assert control.is_control and control.base_offset == before
        assert [decode_control_record_key(r.key).type for r in control.records] == [
            ControlRecordType.KRAFT_VERSION,
            ControlRecordType.KRAFT_VOTERS,
        ]
        (voter,) = VotersRecord.decode(control.records[1].value or b"", 0).voters
        assert (voter.voter_id, voter.voter_directory_id) == (1, node.settings.directory_id)
        noop = node.log.read(before + 2)
        assert not decode_batch(noop, 0)[0].is_control  # the controller's NoOpRecord follows
        deadline = time.monotonic() + 10
        while node.committed_offset < node.log.end_offset:  # a sole voter commits at flush
            assert time.monotonic() < deadline
            node.carry_out(node.raft.poll(int(time.time() * 1000)))
        path = node.snapshots.write(node.controller, node.committed_offset, 5_000, "test")
        assert path is not None
        batch = decode_batch(path.read_bytes(), 0)[0]
        assert [decode_control_record_key(r.key).type for r in batch.records] == [
            ControlRecordType.SNAPSHOT_HEADER,
            ControlRecordType.KRAFT_VERSION,
            ControlRecordType.KRAFT_VOTERS,
        ]
    finally:
        node.close()
    restarted = ControllerNode(build_settings(config))
    try:
        restarted.start()
        assert restarted.raft.is_leader
        assert restarted.raft.kraft_version is KRaftVersion.KRAFT_VERSION_1
    finally:
        restarted.close()
