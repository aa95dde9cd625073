"""Issue 8's new surfaces attacked over the wire, against a kwire server run as a subprocess
formatted at 4.3-IV0 (tests/server_harness.py), and the storage tool's new flags fed bad input.

Each hostile request gets Kafka 4.3.1's error code and message (the Kafka class that decides
it is named beside each case), never a crash, hang or traceback, and the server keeps
serving other connections. Every wait is bounded (trio.fail_after, the harness's timeouts).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from server_harness import HOST, KwireServer, run_kwire, write_properties

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from kwire.protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kwire.protocol.messages.update_features import (
    UpdateFeaturesRequest,
    UpdateFeaturesResponse,
)
from kwire.server.client import KafkaClient

REQUEST_TIMEOUT_S = 30.0
GROUP = 32
ALL_FAILED = "The update failed for all features since the following feature had an error: "

# What a genuine 4.3.1 broker offers in BrokerRegistration v4
# (captures/kafka-4.3/broker-lifecycle, request #13).
KAFKA_43_FEATURES = [
    ("share.version", 0, 1),
    ("metadata.version", 7, 30),
    ("eligible.leader.replicas.version", 0, 1),
    ("transaction.version", 0, 2),
    ("streams.version", 0, 1),
    ("group.version", 0, 1),
    ("kraft.version", 0, 1),
]


def registration(
    cluster_id: str,
    broker_id: int,
    features: list[tuple[str, int, int]] = KAFKA_43_FEATURES,
    log_dirs: list[uuid.UUID] | None = None,
) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id=cluster_id,
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
            for name, low, high in features
        ],
        rack=None,
        log_dirs=log_dirs if log_dirs is not None else [uuid.uuid4()],
        previous_broker_epoch=-1,
    )


class Broker:
    """A registered 4.3.1-like broker (id 2) on the module's server, unfenced."""

    def __init__(self, server: KwireServer, epoch: int, log_dirs: list[uuid.UUID]) -> None:
        self.server = server
        self.epoch = epoch
        self.log_dirs = log_dirs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwireServer]:
    with KwireServer.create(tmp_path_factory.mktemp("kwire"), release_version="4.3-IV0") as s:
        yield s


async def connect(server: KwireServer) -> KafkaClient:
    with trio.fail_after(REQUEST_TIMEOUT_S):
        return await KafkaClient.connect(HOST, server.port)


async def send(server: KwireServer, body: object, version: int) -> object:
    """One request on a fresh connection, bounded in time."""
    client = await connect(server)
    try:
        with trio.fail_after(REQUEST_TIMEOUT_S):
            return await client.request(body, version)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def assert_still_serving(server: KwireServer) -> None:
    """Another connection is answered, the process runs, and nothing was logged as a crash."""
    response = await send(
        server, ApiVersionsRequest(client_software_name="probe", client_software_version="1"), 3
    )
    assert isinstance(response, ApiVersionsResponse)
    assert response.error_code == ErrorCode.NONE
    assert server.running
    assert "Traceback" not in server.output()


async def registered(server: KwireServer, broker_id: int) -> Broker:
    log_dirs = [uuid.uuid4(), uuid.uuid4()]
    response = await send(server, registration(server.cluster_id, broker_id, log_dirs=log_dirs), 4)
    assert isinstance(response, BrokerRegistrationResponse)
    assert response.error_code == ErrorCode.NONE
    broker = Broker(server, response.broker_epoch, log_dirs)
    assert (await heartbeat(broker, broker_id, [])).error_code == ErrorCode.NONE
    return broker


async def heartbeat(
    broker: Broker, broker_id: int, cordoned: list[uuid.UUID] | None, **fields: object
) -> BrokerHeartbeatResponse:
    request = BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=broker.epoch,
        current_metadata_offset=1 << 40,
        cordoned_log_dirs=cordoned,
        **fields,  # type: ignore[arg-type]
    )
    response = await send(broker.server, request, 2)
    assert isinstance(response, BrokerHeartbeatResponse)
    return response


# -- UpdateFeatures (FeatureControlManager.updateFeature of 4.3.1) ----------------------------

UPDATE_FEATURES_REFUSALS = {
    # name: ((feature, level, upgrade type), the reason after "Invalid update version ...").
    # QuorumFeatures.reasonNotSupported: a feature nobody lists supports only level 0.
    "an unknown feature at level 1": (
        ("no.such.feature", 1, 1),
        "Invalid update version 1 for feature no.such.feature. "
        "Local controller 1 does not support this feature.",
    ),
    # Level 0 is supported by everyone; Feature.featureFromName then refuses the name.
    "an unknown feature at level 0": (
        ("no.such.feature", 0, 1),
        "Invalid update version 0 for feature no.such.feature. Feature no.such.feature not found.",
    ),
    "an empty feature name": (
        ("", 0, 1),
        "Invalid update version 0 for feature . Feature  not found.",
    ),
    "a negative level": (
        ("group.version", -1, 1),
        "Invalid update version -1 for feature group.version. "
        "A feature version cannot be less than 0.",
    ),
    "the lowest short as metadata.version": (
        ("metadata.version", -32768, 2),
        "Invalid update version -32768 for feature metadata.version. "
        "A feature version cannot be less than 0.",
    ),
    "a level beyond what the controller supports": (
        ("group.version", 32767, 1),
        "Invalid update version 32767 for feature group.version. "
        "Local controller 1 only supports versions 0-1",
    ),
    # FeatureUpdate.UpgradeType.fromCode: anything but 1, 2, 3 is UNKNOWN.
    "upgrade type 0": (
        ("group.version", 1, 0),
        "Invalid update version 1 for feature group.version. "
        "The controller does not support the given upgrade type.",
    ),
    "upgrade type 4": (
        ("group.version", 1, 4),
        "Invalid update version 1 for feature group.version. "
        "The controller does not support the given upgrade type.",
    ),
    "upgrade type -1": (
        ("group.version", 1, -1),
        "Invalid update version 1 for feature group.version. "
        "The controller does not support the given upgrade type.",
    ),
    # (kraft.version 1 is accepted here: a sole static voter has reported itself; see
    # test_server_kraft_upgrade.py.) No release has a kraft.version 2.
    "kraft.version 2": (
        ("kraft.version", 2, 1),
        "Invalid update version 2 for feature kraft.version. "
        "Local controller 1 only supports versions 0-1",
    ),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", UPDATE_FEATURES_REFUSALS)
async def test_a_hostile_feature_update_fails_the_request_with_kafkas_reason(
    server: KwireServer, case: str, version: int
) -> None:
    (feature, level, upgrade_type), reason = UPDATE_FEATURES_REFUSALS[case]
    request = UpdateFeaturesRequest(
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature=feature, max_version_level=level, upgrade_type=upgrade_type
            )
        ]
    )
    response = await send(server, request, version)
    assert isinstance(response, UpdateFeaturesResponse)
    # QuorumController.updateFeatures: one top-level error and no per-feature results.
    assert (response.error_code, response.error_message, response.results) == (
        ErrorCode.INVALID_UPDATE_VERSION,
        ALL_FAILED + reason,
        [],
    )
    await assert_still_serving(server)


async def test_thousands_of_unknown_features_fail_once_in_bounded_time(
    server: KwireServer,
) -> None:
    # The request's features are checked in Kafka's HashMap order; the first refusal ends
    # the request. 5,000 names at level 0: the first in that order is not found.
    request = UpdateFeaturesRequest(
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature=f"f{i}", max_version_level=0, upgrade_type=1
            )
            for i in range(5000)
        ]
    )
    with trio.fail_after(REQUEST_TIMEOUT_S):
        response = await send(server, request, 2)
    assert isinstance(response, UpdateFeaturesResponse)
    assert response.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert response.error_message is not None
    assert response.error_message.startswith(ALL_FAILED + "Invalid update version 0 for feature f")
    assert response.error_message.endswith(" not found.")
    await assert_still_serving(server)


async def test_a_feature_named_twenty_thousand_times_is_one_update_with_a_result_per_mention(
    server: KwireServer,
) -> None:
    # HashMap: the last mention wins, so this is one (no-op) update of group.version to its
    # current level 1. v1 answers a result per mention (the results collection is a
    # multi-collection), each error 0 with Errors.NONE.message() "NONE".
    request = UpdateFeaturesRequest(
        feature_updates=[
            UpdateFeaturesRequest.FeatureUpdateKey(
                feature="group.version", max_version_level=1, upgrade_type=1
            )
        ]
        * 20000,
        validate_only=True,
    )
    response = await send(server, request, 1)
    assert isinstance(response, UpdateFeaturesResponse)
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, None)
    assert len(response.results) == 20000
    assert {(r.feature, r.error_code, r.error_message) for r in response.results} == {
        ("group.version", ErrorCode.NONE, "NONE")
    }
    await assert_still_serving(server)


# -- BrokerHeartbeat v2 (ReplicationControlManager.handleDirectoriesCordoned of 4.3.1) ---------


async def test_heartbeats_with_absurd_cordoned_directory_lists_are_answered(
    server: KwireServer,
) -> None:
    broker = await registered(server, 2)
    # Kafka does not compare the cordoned list with the registered directories: it records
    # the list as sent whenever the set changed. Unknown ids, duplicates, the zero id and
    # 50,000 of them are all answered without error.
    cases = [
        [uuid.uuid4() for _ in range(50_000)],
        [broker.log_dirs[0]] * 1000,
        [uuid.UUID(int=0)],
        broker.log_dirs,
        [],
    ]
    for cordoned in cases:
        response = await heartbeat(broker, 2, cordoned)
        assert (response.error_code, response.is_fenced) == (ErrorCode.NONE, False)
    await assert_still_serving(server)


async def test_a_cordoned_list_too_big_for_a_raft_batch_fails_only_that_heartbeat(
    server: KwireServer,
) -> None:
    broker = await registered(server, 3)
    # 600,000 ids: a BrokerRegistrationChangeRecord over the 8 MiB raft batch. Kafka's
    # BatchAccumulator refuses it (RecordBatchTooLargeException) before anything is
    # applied; the heartbeat fails with UNKNOWN_SERVER_ERROR as kwire's other oversized
    # writes do (docs/design.md), and the next heartbeat is served.
    huge = [uuid.uuid4() for _ in range(600_000)]
    with trio.fail_after(60):
        response = await heartbeat(broker, 3, huge)
    assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    response = await heartbeat(broker, 3, [])
    assert (response.error_code, response.is_fenced) == (ErrorCode.NONE, False)
    await assert_still_serving(server)


# -- BrokerRegistration v4 (ClusterControlManager.registerBroker of 4.3.1) ----------------------

ABSURD_FEATURE_RANGES = {
    # QuorumFeatures.reasonNotSupported over the finalized levels: every one of these
    # cannot take metadata.version 30 or a finalized 4.x feature: UNSUPPORTED_VERSION.
    "min above max": [("metadata.version", 30, 7)],
    "a negative range": [("metadata.version", -5, -1)],
    "the duplicate mention wins last": [("metadata.version", 7, 30), ("metadata.version", 1, 1)],
    "no 4.x features at all": [("metadata.version", 7, 30)],
    "an empty name beside metadata.version only": [("metadata.version", 7, 30), ("", 0, 0)],
}


@pytest.mark.parametrize("case", ABSURD_FEATURE_RANGES)
async def test_a_registration_with_absurd_feature_ranges_is_unsupported_version(
    server: KwireServer, case: str
) -> None:
    request = registration(server.cluster_id, 10, ABSURD_FEATURE_RANGES[case])
    response = await send(server, request, 4)
    assert isinstance(response, BrokerRegistrationResponse)
    assert (response.error_code, response.broker_epoch) == (ErrorCode.UNSUPPORTED_VERSION, -1)
    await assert_still_serving(server)


# -- GROUP configs (GroupConfig.validate, ConfigDef of 4.3.1) ----------------------------------

GROUP_CONFIG_REFUSALS = {
    # name: (group, config, value, error code, message)
    "a non-numeric value": (
        "g",
        "consumer.session.timeout.ms",
        "abc",
        ErrorCode.INVALID_CONFIG,
        "Invalid value abc for configuration consumer.session.timeout.ms: Not a number of type INT",
    ),
    "a value beyond an int": (
        "g",
        "consumer.session.timeout.ms",
        "2147483648",
        ErrorCode.INVALID_CONFIG,
        "Invalid value 2147483648 for configuration consumer.session.timeout.ms: "
        "Not a number of type INT",
    ),
    "a value beyond a long": (
        "g",
        "consumer.session.timeout.ms",
        "99999999999999999999",
        ErrorCode.INVALID_CONFIG,
        "Invalid value 99999999999999999999 for configuration consumer.session.timeout.ms: "
        "Not a number of type INT",
    ),
    "an empty config name": (
        "g",
        "",
        "1",
        ErrorCode.INVALID_CONFIG,
        "Unknown group config name: ",
    ),
    "the empty group name": (
        "",
        "consumer.session.timeout.ms",
        "50000",
        ErrorCode.INVALID_REQUEST,
        "Default group resources are not allowed.",
    ),
    "a share reset duration that does not parse": (
        "g",
        "share.auto.offset.reset",
        "by_duration:soon",
        ErrorCode.INVALID_CONFIG,
        "Invalid value by_duration:soon for configuration share.auto.offset.reset: Invalid "
        "value `by_duration:soon` for configuration share.auto.offset.reset. The value must "
        "be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'.",
    ),
}


def alter_group(group: str, name: str, value: str | None) -> IncrementalAlterConfigsRequest:
    return IncrementalAlterConfigsRequest(
        resources=[
            IncrementalAlterConfigsRequest.AlterConfigsResource(
                resource_type=GROUP,
                resource_name=group,
                configs=[
                    IncrementalAlterConfigsRequest.AlterableConfig(
                        name=name, config_operation=0, value=value
                    )
                ],
            )
        ]
    )


async def describe_group(server: KwireServer, group: str) -> dict[str, str | None]:
    response = await send(
        server,
        DescribeConfigsRequest(
            resources=[
                DescribeConfigsRequest.DescribeConfigsResource(
                    resource_type=GROUP, resource_name=group, configuration_keys=None
                )
            ]
        ),
        4,
    )
    assert isinstance(response, DescribeConfigsResponse)
    return {c.name: c.value for c in response.results[0].configs}


@pytest.mark.parametrize("case", GROUP_CONFIG_REFUSALS)
async def test_a_hostile_group_config_is_refused_with_kafkas_error(
    server: KwireServer, case: str
) -> None:
    group, name, value, code, message = GROUP_CONFIG_REFUSALS[case]
    response = await send(server, alter_group(group, name, value), 1)
    assert isinstance(response, IncrementalAlterConfigsResponse)
    result = response.responses[0]
    assert (result.error_code, result.error_message) == (code, message)
    await assert_still_serving(server)


async def test_ten_thousand_entries_of_one_group_config_write_the_last(
    server: KwireServer,
) -> None:
    configs = [
        IncrementalAlterConfigsRequest.AlterableConfig(
            name="consumer.session.timeout.ms", config_operation=0, value=str(45000 + i)
        )
        for i in range(10_000)
    ]
    request = IncrementalAlterConfigsRequest(
        resources=[
            IncrementalAlterConfigsRequest.AlterConfigsResource(
                resource_type=GROUP, resource_name="many", configs=configs
            )
        ]
    )
    response = await send(server, request, 1)
    assert isinstance(response, IncrementalAlterConfigsResponse)
    assert response.responses[0].error_code == ErrorCode.NONE
    # ControllerApis puts the entries in a HashMap by name: the last one wins.
    assert (await describe_group(server, "many"))["consumer.session.timeout.ms"] == "54999"
    await assert_still_serving(server)


async def test_more_than_ten_thousand_groups_at_once_is_an_excessively_large_operation(
    server: KwireServer,
) -> None:
    # ConfigurationControlManager.incrementalAlterConfigs: a BoundedList of
    # MAX_RECORDS_PER_USER_OP (10,000) records; every resource fails with POLICY_VIOLATION.
    request = IncrementalAlterConfigsRequest(
        resources=[
            IncrementalAlterConfigsRequest.AlterConfigsResource(
                resource_type=GROUP,
                resource_name=f"bulk-{i}",
                configs=[
                    IncrementalAlterConfigsRequest.AlterableConfig(
                        name="consumer.session.timeout.ms", config_operation=0, value="50000"
                    )
                ],
            )
            for i in range(10_001)
        ]
    )
    response = await send(server, request, 1)
    assert isinstance(response, IncrementalAlterConfigsResponse)
    assert {(r.error_code, r.error_message) for r in response.responses} == {
        (ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
    }
    assert (await describe_group(server, "bulk-0"))["consumer.session.timeout.ms"] == "45000"
    await assert_still_serving(server)


# -- kafka-storage format (StorageTool and Formatter of 4.3.1) ---------------------------------

STORAGE_REFUSALS = {
    # name: (arguments after -t, Kafka 4.3.1's message, or its start)
    "--feature without =": (
        ["--feature", "group.version"],
        "Can't parse feature=level string group.version: equals sign not found.",
    ),
    "--feature with a non-numeric level": (
        ["--feature", "group.version=one"],
        "Can't parse feature=level string group.version=one: unable to parse one as a short.",
    ),
    "--feature with a level beyond a short": (
        ["--feature", "group.version=32768"],
        "Can't parse feature=level string group.version=32768: unable to parse 32768 as a short.",
    ),
    "--feature with Python-only digit grouping": (
        ["--feature", "group.version=1_0"],
        "Can't parse feature=level string group.version=1_0: unable to parse 1_0 as a short.",
    ),
    "--feature of an unknown name": (
        ["--feature", "no.such=1"],
        "Unsupported feature: no.such. Supported features are: "
        "eligible.leader.replicas.version, group.version, kraft.version, share.version, "
        "streams.version, transaction.version",
    ),
    "--feature at a level the feature does not have": (
        ["--feature", "group.version=2"],
        "No feature:group.version with feature level 2",
    ),
    "--feature at a negative level": (
        ["--feature", "group.version=-1"],
        "No feature:group.version with feature level -1",
    ),
    "a 4.x feature below its metadata.version": (
        ["--release-version", "3.9-IV0", "--feature", "eligible.leader.replicas.version=1"],
        "eligible.leader.replicas.version could not be set to 1 because it depends on "
        "metadata.version level 23",
    ),
    "--release-version and --feature metadata.version": (
        ["--release-version", "4.3-IV0", "--feature", "metadata.version=30"],
        "Use --release-version instead of --feature metadata.version=X to avoid ambiguity.",
    ),
    "--feature metadata.version out of range": (
        ["--feature", "metadata.version=99"],
        "No MetadataVersion with feature level 99. Valid feature levels are from 7 to 31.",
    ),
    "--release-version garbage": (
        ["--release-version", "four"],
        "Unknown metadata.version 'four'. Supported metadata.version are: 3.3-IV3, ",
    ),
    "--release-version of a future release": (
        ["--release-version", "4.4-IV0"],
        "Unknown metadata.version '4.4-IV0'. Supported metadata.version are: 3.3-IV3, ",
    ),
    "kraft.version 1 with static voters": (
        ["--feature", "kraft.version=1"],
        "Cannot set kraft.version to 1 unless controller.quorum.voters is empty",
    ),
}


@pytest.fixture
def controller_properties(tmp_path: Path) -> Path:
    return write_properties(
        tmp_path / "controller.properties",
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:9093",
            "listeners": f"CONTROLLER://{HOST}:9093",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        },
    )


@pytest.mark.parametrize("case", STORAGE_REFUSALS)
def test_bad_format_input_exits_1_with_kafkas_message_and_formats_nothing(
    controller_properties: Path, case: str
) -> None:
    arguments, message = STORAGE_REFUSALS[case]
    result = run_kwire(
        "kwire.storage",
        "format",
        "-c",
        controller_properties,
        "-t",
        "MkU3OEVBNTcwNTJENDM2Qk",
        *arguments,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert not (controller_properties.parent / "data" / "meta.properties").exists()


def test_a_repeated_feature_takes_its_last_level(controller_properties: Path) -> None:
    # StorageTool.featureNamesAndLevels: a Scala toMap, so the last mention wins; names and
    # levels are trimmed.
    result = run_kwire(
        "kwire.storage",
        "format",
        "-c",
        controller_properties,
        "-t",
        "MkU3OEVBNTcwNTJENDM2Qk",
        "--feature",
        "group.version=1",
        "--feature",
        " group.version = 0 ",
    )
    assert result.returncode == 0, result.stderr
    assert "FeatureLevelRecord(name='group.version'" not in result.stdout
    assert "FeatureLevelRecord(name='share.version', featureLevel=1)" in result.stdout
