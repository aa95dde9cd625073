"""The config APIs at a 3.x level (21: Kafka 3.9.0's controller) and at 4.3-IV0 (30: Kafka
4.3.1's controller): topic configs (LogConfig), the GROUP resource (GroupConfig,
ControllerConfigurationValidator, ControllerApis.authorizeAlterResource), and
ConfigurationControlManager.validateAlterConfig's min.insync.replicas, cordoned.log.dirs
and value-size checks. Each expected value is the one the named Kafka class decides."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_controller_configs import incremental, legacy
from test_controller_features import KAFKA_39_FEATURES, KAFKA_43_FEATURES, register
from test_controller_integrity import CLUSTER_ID, Leader, heartbeat, topic

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.group_configs import java_duration_seconds
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest

Op = IncrementalAlterConfigsRequest.AlterableConfig
SET, DELETE = 0, 1
TOPIC, BROKER, GROUP = 2, 4, 32
LEVEL_39, LEVEL_43 = 21, 30
ALL_43_FEATURES = {
    "eligible.leader.replicas.version": 1,
    "group.version": 1,
    "share.version": 1,
    "streams.version": 1,
    "transaction.version": 2,
}


def started_at(level: int, **static: str) -> Leader:
    """A controller formatted at ``level`` (4.3-IV0 with every 4.x feature, as Kafka 4.3.1's
    default format) with broker 2 unfenced and a topic "t"."""
    controller = QuorumController(
        node_id=1,
        cluster_id=CLUSTER_ID,
        config=ControllerConfig(static_broker_configs={"node.id": "1", "broker.id": "1", **static}),
        rng=random.Random(7),
    )
    leader = Leader(controller)
    features = ALL_43_FEATURES if level >= 22 else {}
    # What bootstrap.checkpoint holds: the feature levels (activation adds the transaction
    # markers and the cluster's min.insync.replicas around them).
    bootstrap = [
        r
        for r in controller.bootstrap_records(level, features)
        if type(r.record).__name__ == "FeatureLevelRecord"
    ]
    leader.take(controller.activate(leader.now_ms, 0, level, bootstrap))
    leader.append()
    register(leader, 2, KAFKA_43_FEATURES if level >= 22 else KAFKA_39_FEATURES)
    heartbeat(leader, 2, want_fence=False)
    leader.append()
    response = leader.send(CreateTopicsRequest(topics=[topic("t")]), 7)
    assert isinstance(response, CreateTopicsResponse)
    assert response.topics[0].error_code == ErrorCode.NONE
    leader.append()
    return leader


def created_configs(leader: Leader, **configs: str) -> dict[str, tuple[str | None, int]]:
    response = leader.send(CreateTopicsRequest(topics=[topic("u", **configs)]), 7)
    assert isinstance(response, CreateTopicsResponse)
    leader.append()
    return {c.name: (c.value, c.config_source) for c in response.topics[0].configs}


# -- topic configs (LogConfig of each release line) ---------------------------------------

REMOVED_IN_4_0 = (
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
)


@pytest.mark.parametrize(("level", "listed"), [(LEVEL_39, True), (LEVEL_43, False)])
def test_createtopics_lists_the_three_configs_kafka_4_dropped_only_at_3x_levels(
    level: int, listed: bool
) -> None:
    # ReplicationControlManager.createTopic -> KafkaConfigSchema over LogConfig's keys.
    configs = created_configs(started_at(level))
    assert all((name in configs) is listed for name in REMOVED_IN_4_0)


@pytest.mark.parametrize(
    ("level", "expected"),
    [(LEVEL_39, ("9223372036854775807", 5)), (LEVEL_43, ("3600000", 5))],
)
def test_message_timestamp_after_max_ms_defaults_per_release_line(
    level: int, expected: tuple[str, int]
) -> None:
    # ServerLogConfigs.LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT: Long.MAX_VALUE in 3.9.0,
    # one hour from 4.0 (KIP-1028); source DEFAULT_CONFIG (5).
    assert created_configs(started_at(level))["message.timestamp.after.max.ms"] == expected


def test_a_cluster_level_dynamic_config_is_reported_as_dynamic_default() -> None:
    # KafkaConfigSchema.resolveEffectiveTopicConfig: the cluster-level min.insync.replicas the
    # 4.3-IV0 bootstrap writes is DYNAMIC_DEFAULT_BROKER_CONFIG (3), as in the genuine answer.
    assert created_configs(started_at(LEVEL_43))["min.insync.replicas"] == ("1", 3)


TOPIC_VALUES = {
    # name: (config, value, {level: (error code, message)}); LogConfig / ConfigDef decide.
    "a removed config": (
        "message.format.version",
        "3.0-IV1",
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Unknown topic config name: message.format.version",
            ),
        },
    ),
    "a segment under 1 MiB": (
        "segment.bytes",
        "1000",
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576",
            ),
        },
    ),
    "a duplicated cleanup policy": (
        "cleanup.policy",
        "delete,delete",
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Configuration 'cleanup.policy' values must not be duplicated.",
            ),
        },
    ),
    "the internal segment size": (
        "internal.segment.bytes",
        "1000",
        {
            LEVEL_39: (
                ErrorCode.INVALID_CONFIG,
                "Unknown topic config name: internal.segment.bytes",
            ),
            LEVEL_43: (ErrorCode.NONE, None),
        },
    ),
}


@pytest.mark.parametrize("level", [LEVEL_39, LEVEL_43])
@pytest.mark.parametrize("case", TOPIC_VALUES)
def test_topic_config_values_are_checked_by_the_levels_logconfig(case: str, level: int) -> None:
    name, value, expected = TOPIC_VALUES[case]
    leader = started_at(level)
    response, _ = incremental(
        leader, (TOPIC, "t", [Op(name=name, config_operation=SET, value=value)])
    )
    result = response.responses[0]
    assert (result.error_code, result.error_message) == expected[level]


def test_the_internal_segment_size_is_described_only_where_a_topic_sets_it() -> None:
    # KafkaConfigSchema.resolveEffectiveTopicConfigs skips an internal key not set.
    leader = started_at(LEVEL_43)
    assert "internal.segment.bytes" not in created_configs(leader)
    incremental(leader, (TOPIC, "t", [Op(name="internal.segment.bytes", value="2000000")]))
    described = describe(leader, TOPIC, "t")
    assert described.error_code == ErrorCode.NONE
    assert {c.name: c.value for c in described.configs}["internal.segment.bytes"] == "2000000"


# -- the GROUP resource ---------------------------------------------------------------------


def describe(leader: Leader, kind: int, name: str) -> Any:
    response = leader.send(
        DescribeConfigsRequest(
            resources=[
                DescribeConfigsRequest.DescribeConfigsResource(
                    resource_type=kind, resource_name=name, configuration_keys=None
                )
            ]
        ),
        4,
    )
    assert isinstance(response, DescribeConfigsResponse)
    return response.results[0]


def test_a_group_resource_is_unknown_at_a_3x_level() -> None:
    # Kafka 3.9.0's ControllerApis: ConfigResource.Type.forId(32) is UNKNOWN.
    leader = started_at(LEVEL_39)
    response, records = incremental(
        leader, (GROUP, "g", [Op(name="consumer.session.timeout.ms", value="50000")])
    )
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        ErrorCode.UNSUPPORTED_VERSION,
        "Unknown resource type 32.",
    )
    assert records == []


def test_a_group_config_is_written_and_described_at_4_3_iv0() -> None:
    leader = started_at(LEVEL_43)
    response, records = incremental(
        leader, (GROUP, "g", [Op(name="consumer.session.timeout.ms", value="50000")])
    )
    assert response.responses[0].error_code == ErrorCode.NONE
    # ConfigurationControlManager: a ConfigRecord of resource type 32.
    assert records == [(GROUP, "g", "consumer.session.timeout.ms", "50000")]
    described = describe(leader, GROUP, "g")
    configs = {c.name: (c.value, c.config_source) for c in described.configs}
    # ConfigHelper.createGroupConfigEntry: GROUP_CONFIG (8) where set, else the broker
    # synonym's DEFAULT_CONFIG (5) value.
    assert configs["consumer.session.timeout.ms"] == ("50000", 8)
    assert configs["consumer.heartbeat.interval.ms"] == ("5000", 5)
    assert configs["share.auto.offset.reset"] == ("latest", 5)


GROUP_REFUSALS = {
    # name: (group, config, value, error code, Kafka 4.3.1's message); GroupConfig.validate
    # unless said otherwise.
    "the default group (ControllerConfigurationValidator)": (
        "",
        "consumer.session.timeout.ms",
        "50000",
        ErrorCode.INVALID_REQUEST,
        "Default group resources are not allowed.",
    ),
    "an unknown name": (
        "g",
        "consumer.foo",
        "1",
        ErrorCode.INVALID_CONFIG,
        "Unknown group config name: consumer.foo",
    ),
    "a session timeout under group.consumer.min.session.timeout.ms": (
        "g",
        "consumer.session.timeout.ms",
        "44999",
        ErrorCode.INVALID_CONFIG,
        "consumer.session.timeout.ms must be greater than or equal to "
        "group.consumer.min.session.timeout.ms",
    ),
    "a heartbeat over group.share.max.heartbeat.interval.ms": (
        "g",
        "share.heartbeat.interval.ms",
        "15001",
        ErrorCode.INVALID_CONFIG,
        "share.heartbeat.interval.ms must be less than or equal to "
        "group.share.max.heartbeat.interval.ms",
    ),
    "more standby replicas than group.streams.max.standby.replicas": (
        "g",
        "streams.num.standby.replicas",
        "3",
        ErrorCode.INVALID_CONFIG,
        "streams.num.standby.replicas must be less than or equal to "
        "group.streams.max.standby.replicas",
    ),
    "a value of the wrong type (ConfigDef)": (
        "g",
        "share.delivery.count.limit",
        "many",
        ErrorCode.INVALID_CONFIG,
        "Invalid value many for configuration share.delivery.count.limit: Not a number of type INT",
    ),
}


@pytest.mark.parametrize("case", GROUP_REFUSALS)
def test_a_bad_group_config_is_refused_with_kafkas_error_and_writes_nothing(case: str) -> None:
    group, name, value, code, message = GROUP_REFUSALS[case]
    leader = started_at(LEVEL_43)
    response, records = incremental(leader, (GROUP, group, [Op(name=name, value=value)]))
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        code,
        message,
    )
    assert records == []


SHARE_RESET_REFUSED = {
    # AutoOffsetResetStrategy.fromString under ShareGroupAutoOffsetResetStrategy.Validator
    # (Kafka 4.3.1): the duration must parse (java.time.Duration.parse) and not be negative,
    # and the names are matched as written.
    "a duration that does not parse": "by_duration:xyz",
    "a negative duration": "by_duration:-PT1H",
    "a duration whose seconds are negative": "by_duration:PT-0.5S",
    "a T with no time": "by_duration:P1DT",
    "days that overflow a long of seconds": "by_duration:P9223372036854775807D",
    "by_duration without its duration": "by_duration",
    "an upper-case name": "LATEST",
    "the consumer-only none": "none",
}


@pytest.mark.parametrize("case", SHARE_RESET_REFUSED)
def test_share_auto_offset_reset_is_refused_as_kafka_4_3_refuses_it(case: str) -> None:
    value = SHARE_RESET_REFUSED[case]
    leader = started_at(LEVEL_43)
    response, records = incremental(
        leader, (GROUP, "g", [Op(name="share.auto.offset.reset", value=f" {value} ")])
    )
    # ConfigException(name, trimmed value, the validator's text).
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        ErrorCode.INVALID_CONFIG,
        f"Invalid value {value} for configuration share.auto.offset.reset: Invalid value "
        f"`{value}` for configuration share.auto.offset.reset. The value must be either "
        "'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'.",
    )
    assert records == []


@pytest.mark.parametrize(
    "value",
    ["earliest", " latest ", "by_duration:PT1H", "by_duration:p1dt2h30m0.5s", "by_duration:PT0S"],
)
def test_share_auto_offset_reset_takes_kafkas_strategies(value: str) -> None:
    leader = started_at(LEVEL_43)
    response, records = incremental(
        leader, (GROUP, "g", [Op(name="share.auto.offset.reset", value=value)])
    )
    assert response.responses[0].error_code == ErrorCode.NONE
    assert records == [(GROUP, "g", "share.auto.offset.reset", value)]


JAVA_DURATIONS = {
    # text: Duration.parse(text).getSeconds(), or None where it throws (JDK 17).
    "PT1H": 3600,
    "pt1h30m": 5400,
    "-PT1H": -3600,
    "-P-1D": 86400,
    "PT1,5S": 1,
    "PT-0.5S": -1,
    "-PT0.5S": -1,
    "P+1D": 86400,
    "PT9223372036854775807S": 2**63 - 1,
    "-PT9223372036854775808S": None,
    "P": None,
    "PT": None,
    "P1W": None,
    "PT1.1234567891S": None,
    "P106751991167301D": None,
    "PT1\u017fS".encode().decode("unicode_escape"): None,  # no Unicode case folding
}


@pytest.mark.parametrize("text", JAVA_DURATIONS)
def test_durations_parse_as_java_time_duration_parses_them(text: str) -> None:
    assert java_duration_seconds(text) == JAVA_DURATIONS[text]


def test_a_group_describes_kafka_4_3s_broker_defaults_not_3_9s() -> None:
    # ShareGroupConfig.SHARE_GROUP_PARTITION_MAX_RECORD_LOCKS_DEFAULT is 2000 in 4.3.1 (200
    # in 3.9.0); GROUP configs exist only at 4.x levels.
    leader = started_at(LEVEL_43)
    configs = {c.name: (c.value, c.config_source) for c in describe(leader, GROUP, "g").configs}
    assert configs["share.partition.max.record.locks"] == ("2000", 5)


def test_a_static_broker_group_default_still_wins_over_kafkas_default() -> None:
    leader = started_at(LEVEL_43, **{"group.share.partition.max.record.locks": "300"})
    configs = {c.name: (c.value, c.config_source) for c in describe(leader, GROUP, "g").configs}
    assert configs["share.partition.max.record.locks"] == ("300", 4)


def test_a_session_timeout_must_exceed_its_heartbeat_interval() -> None:
    # GroupConfig.validateValues' last checks, after the broker bounds (here the node's
    # static group.consumer.max.heartbeat.interval.ms, a read-only broker config).
    leader = started_at(LEVEL_43, **{"group.consumer.max.heartbeat.interval.ms": "60000"})
    response, _ = legacy(
        leader,
        GROUP,
        "g",
        {"consumer.session.timeout.ms": "50000", "consumer.heartbeat.interval.ms": "50000"},
    )
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        ErrorCode.INVALID_CONFIG,
        "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms",
    )


# -- ConfigurationControlManager.validateAlterConfig at 4.x levels ----------------------------

RECORD_CHECKS = {
    # name: (resource, name, config, operation, value, {level: (error code, message)})
    "a broker-level min.insync.replicas while ELR is on": (
        BROKER,
        "1",
        "min.insync.replicas",
        SET,
        "2",
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Broker-level min.insync.replicas cannot be altered while ELR is enabled.",
            ),
        },
    ),
    "removing the cluster-level min.insync.replicas while ELR is on": (
        BROKER,
        "",
        "min.insync.replicas",
        DELETE,
        None,
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Cluster-level min.insync.replicas cannot be removed while ELR is enabled.",
            ),
        },
    ),
    "cordoning a directory straight at the controller": (
        BROKER,
        "1",
        "cordoned.log.dirs",
        SET,
        "/data/a",
        {
            LEVEL_39: (ErrorCode.NONE, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "When updating cordoned.log.dirs via controllers,  the new value must be a "
                "subset of the current configuration value.",
            ),
        },
    ),
    "a value over 32767 characters": (
        TOPIC,
        "t",
        "leader.replication.throttled.replicas",
        SET,
        "*" + " " * 32767,
        {
            # Kafka 3.9.0 has no check: its ConfigRecord cannot be serialized, an unexpected
            # error answered UNKNOWN_SERVER_ERROR with no message (QuorumController).
            LEVEL_39: (ErrorCode.UNKNOWN_SERVER_ERROR, None),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "The configuration value cannot be added because it exceeds the maximum value "
                "size of 32767 bytes.",
            ),
        },
    ),
}


@pytest.mark.parametrize("level", [LEVEL_39, LEVEL_43])
@pytest.mark.parametrize("case", RECORD_CHECKS)
def test_kafka_4_3_record_checks_apply_only_at_4x_levels(case: str, level: int) -> None:
    kind, name, config, operation, value, expected = RECORD_CHECKS[case]
    if level not in expected:
        pytest.skip("a value Kafka 3.9.0's ConfigRecord cannot hold: not checked there")
    leader = started_at(level)
    response, records = incremental(
        leader, (kind, name, [Op(name=config, config_operation=operation, value=value)])
    )
    result = response.responses[0]
    assert (result.error_code, result.error_message) == expected[level]
    assert (records == []) is (expected[level][0] != ErrorCode.NONE)


def test_a_broker_forwarded_cordon_is_left_to_the_broker() -> None:
    # isCordonedLogDirsInvalid: a forwarded request (Envelope) may add directories.
    leader = started_at(LEVEL_43)
    request = IncrementalAlterConfigsRequest(
        resources=[
            IncrementalAlterConfigsRequest.AlterConfigsResource(
                resource_type=BROKER,
                resource_name="2",
                configs=[Op(name="cordoned.log.dirs", value="/data/a")],
            )
        ]
    )
    result = leader.controller.handle(
        request, RequestContext(api_version=1, envelope=True), leader.next_offset, leader.now_ms
    )
    assert result.response.responses[0].error_code == ErrorCode.NONE
