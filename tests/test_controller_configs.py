"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs as Kafka 3.9's controller.

Expected values are Kafka's: ConfigHelper (describe), ControllerApis (early answers),
ConfigurationControlManager (records), ControllerConfigurationValidator and LogConfig
(validation), QuorumController.ConfigResourceExistenceChecker (existence). The genuine
test feeds every config request a genuine Kafka 3.9 controller answered to kwire, with the
state built by replaying the genuine log, and compares answers and records field by field.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from test_controller_genuine import LoggedRecord, fields_of, read_metadata_log
from test_controller_integrity import Leader, topic, unfenced_broker

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.config_definitions import scala_hash_map_order
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from kwire.protocol.messages.envelope import EnvelopeRequest
from kwire.protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord

MULTI_BROKER = Path(__file__).resolve().parents[2] / "shared/captures/kafka-3.9/multi-broker"
GENUINE_LOG = MULTI_BROKER / "controller-1-metadata/__cluster_metadata-0/00000000000000000000.log"
CONFIG_APIS = {32, 33, 44}
TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS = 2, 4, 8, 16
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

Op = IncrementalAlterConfigsRequest.AlterableConfig


# -- against the genuine controller ----------------------------------------------------------


def genuine_config_exchanges() -> list[tuple[int, Any, Any, Any, bool]]:
    """(time ms, request header, request, response, via Envelope) of every config API."""
    lines = [json.loads(line) for line in (MULTI_BROKER / "multi-broker.jsonl").open()]
    answers = {(d["stream"], d["correlation_id"]): d for d in lines if d["dir"] == "response"}
    exchanges = []
    for d in lines:
        if d["dir"] != "request" or d["api_key"] not in CONFIG_APIS | {58}:
            continue
        header, body = decode_request(bytes.fromhex(d["hex"]))
        answer = answers[(d["stream"], d["correlation_id"])]
        _, response = decode_response(bytes.fromhex(answer["hex"]), d["api_key"], d["api_version"])
        via_envelope = isinstance(body, EnvelopeRequest)
        if via_envelope:
            header, body = decode_request(bytes(body.request_data))
            if header.request_api_key not in CONFIG_APIS:
                continue
            _, response = decode_response(
                bytes(response.response_data), header.request_api_key, header.request_api_version
            )
        exchanges.append((int(d["t"] * 1000), header, body, response, via_envelope))
    return exchanges


def genuine_static_configs(exchanges: list[Any]) -> dict[str, str]:
    """The genuine controller's c1.properties, as KafkaConfig holds it (broker.id from
    node.id); its data directory, a path of the capture machine, is taken by rule from the
    genuine answer's STATIC_BROKER_CONFIG synonym of log.dirs."""
    props = dict(
        line.split("=", 1) for line in (MULTI_BROKER / "c1.properties").read_text().splitlines()
    )
    props["broker.id"] = props["node.id"]
    for _, _, _, response, _ in exchanges:
        for result in getattr(response, "results", []):
            for entry in result.configs:
                for synonym in entry.synonyms:
                    if synonym.name == "log.dirs" and synonym.source == 4:
                        props["log.dirs"] = synonym.value
    assert "<tmp>" not in props["log.dirs"], "the genuine answer names the data directory"
    return props


@pytest.mark.skipif(not GENUINE_LOG.exists(), reason=f"no captures at {MULTI_BROKER}")
def test_every_genuine_config_request_gets_the_genuine_answer_and_records() -> None:
    genuine: list[LoggedRecord] = read_metadata_log(GENUINE_LOG)
    exchanges = genuine_config_exchanges()
    kinds = [type(e[2]).__name__ for e in exchanges]
    assert kinds.count("DescribeConfigsRequest") == 5
    assert kinds.count("IncrementalAlterConfigsRequest") == 9
    assert kinds.count("AlterConfigsRequest") == 3
    controller = QuorumController(
        node_id=1,
        cluster_id="MkU3OEVBNTcwNTJENDM2Qk",
        config=ControllerConfig(
            static_broker_configs=genuine_static_configs(exchanges), quorum_node_ids=(1,)
        ),
        rng=random.Random(0),
    )
    cursor = 0
    written_config_records = 0
    for time_ms, header, request, response, via_envelope in exchanges:
        # The state as of the request: every genuine record written before it, except
        # ConfigRecords, which only these requests write (kwire writes them below).
        while (
            cursor < len(genuine)
            and genuine[cursor].timestamp_ms < time_ms
            and not isinstance(genuine[cursor].record, ConfigRecord)
        ):
            logged = genuine[cursor]
            controller.replay(logged.record, logged.version, logged.offset)
            cursor += 1
        next_offset = genuine[cursor].offset
        result = controller.handle(
            request,
            RequestContext(api_version=header.request_api_version, envelope=via_envelope),
            next_offset,
            time_ms,
        )
        assert fields_of(result.response) == fields_of(response), f"{type(request).__name__}"
        for i, ours in enumerate(result.records):
            logged = genuine[cursor + i]
            assert logged.offset == next_offset + i
            assert (ours.version, fields_of(ours.record)) == (
                logged.version,
                fields_of(logged.record),
            ), f"offset {logged.offset}"
        cursor += len(result.records)
        written_config_records += len(result.records)
        controller.commit(next_offset + len(result.records) - 1)
    assert written_config_records == sum(isinstance(r.record, ConfigRecord) for r in genuine)


def test_configs_are_listed_in_the_order_of_a_scala_hash_map() -> None:
    # The genuine answer for BROKER "" listed these three in this order (ConfigHelper
    # iterates a Scala mutable.HashMap).
    names = ["log.cleaner.threads", "log.retention.ms", "log.cleaner.backoff.ms"]
    assert scala_hash_map_order(names) == [
        "log.cleaner.backoff.ms",
        "log.retention.ms",
        "log.cleaner.threads",
    ]


# -- a controller of our own ---------------------------------------------------------------


def started(**static: str) -> Leader:
    leader = Leader.started(static_broker_configs={"node.id": "1", "broker.id": "1", **static})
    unfenced_broker(leader, 2)
    leader.send(CreateTopicsRequest(topics=[topic("t")]), 7)
    leader.append()
    return leader


def incremental(
    leader: Leader, *resources: tuple[int, str, list[Op]], validate_only: bool = False
) -> tuple[IncrementalAlterConfigsResponse, list[Any]]:
    before = leader.next_offset
    response = leader.send(
        IncrementalAlterConfigsRequest(
            resources=[
                IncrementalAlterConfigsRequest.AlterConfigsResource(
                    resource_type=kind, resource_name=name, configs=ops
                )
                for kind, name, ops in resources
            ],
            validate_only=validate_only,
        ),
        1,
    )
    records = written_since(leader, before)
    leader.append()
    assert isinstance(response, IncrementalAlterConfigsResponse)
    return response, records


def legacy(
    leader: Leader, kind: int, name: str, configs: dict[str, str | None]
) -> tuple[AlterConfigsResponse, list[Any]]:
    before = leader.next_offset
    response = leader.send(
        AlterConfigsRequest(
            resources=[
                AlterConfigsRequest.AlterConfigsResource(
                    resource_type=kind,
                    resource_name=name,
                    configs=[
                        AlterConfigsRequest.AlterableConfig(name=k, value=v)
                        for k, v in configs.items()
                    ],
                )
            ]
        ),
        2,
    )
    records = written_since(leader, before)
    leader.append()
    assert isinstance(response, AlterConfigsResponse)
    return response, records


def written_since(leader: Leader, offset: int) -> list[tuple[int, str, str, str | None]]:
    from kwire.protocol.messages.index import METADATA_RECORDS
    from kwire.records import unframe_metadata_record

    out = []
    for at, value in leader.pending:
        if at >= offset:
            api_key, version, body = unframe_metadata_record(value)
            record = METADATA_RECORDS[api_key].decode(body, version)
            if isinstance(record, ConfigRecord):
                out.append((record.resource_type, record.resource_name, record.name, record.value))
    return out


def answers(response: Any) -> list[tuple[int, str, int, str | None]]:
    return [
        (r.resource_type, r.resource_name, r.error_code, r.error_message)
        for r in response.responses
    ]


INVALID_ALTERS = {
    # name: (resource type, name, operations, Kafka's error code and message)
    "an unknown topic config": (
        TOPIC,
        "t",
        [Op(name="foo", config_operation=SET, value="1")],
        ErrorCode.INVALID_CONFIG,
        "Unknown topic config name: foo",
    ),
    "a value of the wrong type": (
        TOPIC,
        "t",
        [Op(name="retention.ms", config_operation=SET, value="abc")],
        ErrorCode.INVALID_CONFIG,
        "Invalid value abc for configuration retention.ms: Not a number of type LONG",
    ),
    "a value out of range (min.insync.replicas)": (
        TOPIC,
        "t",
        [Op(name="min.insync.replicas", config_operation=SET, value="0")],
        ErrorCode.INVALID_CONFIG,
        "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1",
    ),
    "a minimum compaction lag above the maximum": (
        TOPIC,
        "t",
        [
            Op(name="min.compaction.lag.ms", config_operation=SET, value="10"),
            Op(name="max.compaction.lag.ms", config_operation=SET, value="5"),
        ],
        ErrorCode.INVALID_CONFIG,
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)",
    ),
    "tiered storage on a cluster without it": (
        TOPIC,
        "t",
        [Op(name="remote.storage.enable", config_operation=SET, value="true")],
        ErrorCode.INVALID_CONFIG,
        "Tiered Storage functionality is disabled in the broker. "
        "Topic cannot be configured with remote log storage.",
    ),
    "a topic that does not exist": (
        TOPIC,
        "nope",
        [Op(name="retention.ms", config_operation=SET, value="1")],
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        "The topic 'nope' does not exist.",
    ),
    "the default topic resource": (
        TOPIC,
        "",
        [Op(name="retention.ms", config_operation=SET, value="1")],
        ErrorCode.INVALID_REQUEST,
        "Default topic resources are not allowed.",
    ),
    "an illegal topic name": (
        TOPIC,
        "a b",
        [Op(name="retention.ms", config_operation=SET, value="1")],
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        "Topic name is invalid: 'a b' contains one or more characters other than "
        "ASCII alphanumerics, '.', '_' and '-'",
    ),
    "a broker name that is not a number": (
        BROKER,
        "abc",
        [Op(name="log.cleaner.threads", config_operation=SET, value="2")],
        ErrorCode.INVALID_REQUEST,
        "Unable to parse broker name as a base 10 number.",
    ),
    "a negative broker id": (
        BROKER,
        "-1",
        [Op(name="log.cleaner.threads", config_operation=SET, value="2")],
        ErrorCode.INVALID_REQUEST,
        "Invalid negative broker ID.",
    ),
    "a broker that never registered": (
        BROKER,
        "9",
        [Op(name="log.cleaner.threads", config_operation=SET, value="2")],
        ErrorCode.BROKER_ID_NOT_REGISTERED,
        "No node with id 9 found.",
    ),
    "APPEND to a config that is not a list": (
        TOPIC,
        "t",
        [Op(name="retention.ms", config_operation=APPEND, value="1")],
        ErrorCode.INVALID_CONFIG,
        "Can't APPEND to key retention.ms because its type is not LIST.",
    ),
    "SUBTRACT from an unknown config": (
        BROKER,
        "",
        [Op(name="foo", config_operation=SUBTRACT, value="1")],
        ErrorCode.INVALID_CONFIG,
        "Can't SUBTRACT to key foo because its type is not LIST.",
    ),
    "an unknown client metrics config": (
        CLIENT_METRICS,
        "sub",
        [Op(name="foo", config_operation=SET, value="1")],
        ErrorCode.INVALID_REQUEST,
        "Unknown client metrics configuration: foo",
    ),
    "a client metrics push interval out of range": (
        CLIENT_METRICS,
        "sub",
        [Op(name="interval.ms", config_operation=SET, value="50")],
        ErrorCode.INVALID_REQUEST,
        "Invalid value 50 for interval.ms, interval must be between 100 and 3600000 (1 hour)",
    ),
    "an illegal client matching pattern": (
        CLIENT_METRICS,
        "sub",
        [Op(name="match", config_operation=SET, value="nothing=x")],
        ErrorCode.INVALID_CONFIG,
        "Illegal client matching pattern: nothing=x",
    ),
    "a nameless client metrics subscription": (
        CLIENT_METRICS,
        "",
        [Op(name="interval.ms", config_operation=SET, value="1000")],
        ErrorCode.INVALID_REQUEST,
        "Subscription name can't be empty",
    ),
    "another node's log levels": (
        BROKER_LOGGER,
        "2",
        [Op(name="root", config_operation=SET, value="INFO")],
        ErrorCode.INVALID_REQUEST,
        "Unexpected node id. Expected 1, but received 1",
    ),
    "a log level log4j does not have": (
        BROKER_LOGGER,
        "1",
        [Op(name="root", config_operation=SET, value="LOUD")],
        ErrorCode.INVALID_CONFIG,
        "Cannot set the log level of root to LOUD as it is not a supported log level. "
        "Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN",
    ),
    "a logger that does not exist": (
        BROKER_LOGGER,
        "1",
        [Op(name="no.such.logger", config_operation=SET, value="INFO")],
        ErrorCode.INVALID_CONFIG,
        "Logger no.such.logger does not exist!",
    ),
    "removing the root logger's level": (
        BROKER_LOGGER,
        "1",
        [Op(name="root", config_operation=DELETE, value=None)],
        ErrorCode.INVALID_REQUEST,
        "Removing the log level of the root logger is not allowed",
    ),
}


@pytest.mark.parametrize("case", INVALID_ALTERS, ids=list(INVALID_ALTERS))
def test_an_invalid_alteration_is_refused_with_kafkas_error_and_writes_nothing(case: str) -> None:
    kind, name, ops, code, message = INVALID_ALTERS[case]
    leader = started()
    response, records = incremental(leader, (kind, name, ops))
    assert answers(response) == [(kind, name, code, message)]
    assert records == []


def test_unknown_types_and_duplicates_are_answered_first_in_the_order_met() -> None:
    leader = started()
    op = [Op(name="retention.ms", config_operation=SET, value="1000")]
    response, records = incremental(
        leader, (TOPIC, "t", op), (3, "x", op), (TOPIC, "t", op), (TOPIC, "t", op)
    )
    # ControllerApis: UNSUPPORTED_VERSION for the unknown type, one "Duplicate resource."
    # for the resource named again, and the duplicated resource is not altered at all.
    assert answers(response) == [
        (3, "x", ErrorCode.UNSUPPORTED_VERSION, "Unknown resource type 3."),
        (TOPIC, "t", ErrorCode.INVALID_REQUEST, "Duplicate resource."),
    ]
    assert records == []


def test_incremental_operations_write_what_changes_and_broker_configs_always() -> None:
    leader = started()
    response, records = incremental(
        leader,
        (TOPIC, "t", [Op(name="cleanup.policy", config_operation=APPEND, value="compact")]),
        (BROKER, "", [Op(name="log.cleaner.threads", config_operation=DELETE, value=None)]),
    )
    assert [a[2] for a in answers(response)] == [ErrorCode.NONE, ErrorCode.NONE]
    # APPEND starts from LogConfig's default (delete); a BROKER deletion is written even
    # though nothing was set (KAFKA-14136), with a null value.
    assert records == [
        (TOPIC, "t", "cleanup.policy", "delete,compact"),
        (BROKER, "", "log.cleaner.threads", None),
    ]
    _, records = incremental(
        leader,
        (TOPIC, "t", [Op(name="cleanup.policy", config_operation=SUBTRACT, value="delete")]),
        (TOPIC, "t2", []),
    )
    assert records == [(TOPIC, "t", "cleanup.policy", "compact")]
    # Setting a topic config to the value it has writes nothing.
    _, records = incremental(
        leader, (TOPIC, "t", [Op(name="cleanup.policy", config_operation=SET, value="compact")])
    )
    assert records == []


def test_validate_only_answers_the_same_and_writes_nothing() -> None:
    leader = started()
    ops = [Op(name="retention.ms", config_operation=SET, value="1000")]
    response, records = incremental(leader, (TOPIC, "t", ops), validate_only=True)
    assert answers(response) == [(TOPIC, "t", ErrorCode.NONE, None)]
    assert records == []
    assert leader.controller.image.topic_config("t") == {}


def test_legacy_alter_configs_replaces_every_dynamic_config_of_the_resource() -> None:
    leader = started()
    legacy(leader, TOPIC, "t", {"retention.ms": "1000", "cleanup.policy": "compact"})
    response, records = legacy(leader, TOPIC, "t", {"retention.ms": "2000"})
    assert answers(response) == [(TOPIC, "t", ErrorCode.NONE, None)]
    # Changed keys first, then a deleting record for each key not given.
    assert records == [
        (TOPIC, "t", "retention.ms", "2000"),
        (TOPIC, "t", "cleanup.policy", None),
    ]
    assert leader.controller.image.topic_config("t") == {"retention.ms": "2000"}


def test_legacy_alter_configs_refuses_broker_logger_resources() -> None:
    leader = started()
    response, _ = legacy(leader, BROKER_LOGGER, "1", {"root": "INFO"})
    assert answers(response) == [
        (BROKER_LOGGER, "1", ErrorCode.INVALID_REQUEST, "Unexpected resource type BROKER_LOGGER.")
    ]


def test_more_than_10000_records_fail_the_whole_request_with_policy_violation() -> None:
    leader = started()
    ops = [Op(name=f"custom.{i}", config_operation=SET, value="x") for i in range(10_001)]
    response, records = incremental(leader, (BROKER, "", ops))
    # BoundedList refuses the 10,001st record (QuorumController: POLICY_VIOLATION).
    assert answers(response) == [
        (
            BROKER,
            "",
            ErrorCode.POLICY_VIOLATION,
            "Unable to perform excessively large batch operation.",
        )
    ]
    assert records == []


def test_an_unknown_operation_fails_the_whole_request_unexpectedly() -> None:
    leader = started()
    response, records = incremental(
        leader, (TOPIC, "t", [Op(name="retention.ms", config_operation=7, value="1")])
    )
    assert [a[2] for a in answers(response)] == [ErrorCode.UNKNOWN_SERVER_ERROR]
    assert records == []


# -- DescribeConfigs -------------------------------------------------------------------------


def describe(
    leader: Leader,
    kind: int,
    name: str,
    keys: list[str] | None = None,
    synonyms: bool = True,
) -> DescribeConfigsResponse.DescribeConfigsResult:
    response = leader.send(
        DescribeConfigsRequest(
            resources=[
                DescribeConfigsRequest.DescribeConfigsResource(
                    resource_type=kind, resource_name=name, configuration_keys=keys
                )
            ],
            include_synonyms=synonyms,
        ),
        4,
    )
    assert isinstance(response, DescribeConfigsResponse)
    (result,) = response.results
    return result


DESCRIBE_ERRORS = {
    # name: (resource type, name, Kafka's code and message)
    "a topic that does not exist": (TOPIC, "nope", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ""),
    "an illegal topic name": (
        TOPIC,
        "..",
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        "Topic name is invalid: '..' is not allowed",
    ),
    "another node": (
        BROKER,
        "2",
        ErrorCode.INVALID_REQUEST,
        "Unexpected broker id, expected 1 or empty string, but received 2",
    ),
    "a broker id that is not a number": (
        BROKER,
        "one",
        ErrorCode.INVALID_REQUEST,
        "Broker id must be an integer, but it is: one",
    ),
    "another node's loggers": (
        BROKER_LOGGER,
        "2",
        ErrorCode.INVALID_REQUEST,
        "Unexpected broker id, expected 1 but received 2",
    ),
    "a nameless client metrics subscription": (
        CLIENT_METRICS,
        "",
        ErrorCode.INVALID_REQUEST,
        "Client metrics subscription name must not be empty",
    ),
}


@pytest.mark.parametrize("case", DESCRIBE_ERRORS, ids=list(DESCRIBE_ERRORS))
def test_describing_a_resource_kafka_cannot_describe_gets_its_error(case: str) -> None:
    kind, name, code, message = DESCRIBE_ERRORS[case]
    result = describe(started(), kind, name)
    assert (result.error_code, result.error_message, result.configs) == (code, message, [])


def test_an_unknown_resource_type_fails_the_whole_describe_with_invalid_request() -> None:
    response = started().send(
        DescribeConfigsRequest(
            resources=[
                DescribeConfigsRequest.DescribeConfigsResource(resource_type=t, resource_name="x")
                for t in (TOPIC, 3)
            ]
        ),
        4,
    )
    assert [r.error_code for r in response.results] == [ErrorCode.INVALID_REQUEST] * 2


def test_a_topic_config_reports_its_source_and_synonyms_through_every_layer() -> None:
    leader = started(**{"log.retention.hours": "1"})
    entry = {e.name: e for e in describe(leader, TOPIC, "t").configs}["retention.ms"]
    # log.retention.hours=1 in the static configuration gives 3,600,000 ms, yet Kafka
    # reports DEFAULT_CONFIG with no synonym: ConfigHelper drops every synonym found before
    # the first one (log.retention.ms), which is set nowhere.
    assert (entry.value, entry.config_source, entry.synonyms) == ("3600000", 5, [])
    incremental(
        leader, (BROKER, "", [Op(name="log.retention.ms", config_operation=SET, value="5")])
    )
    incremental(leader, (TOPIC, "t", [Op(name="retention.ms", config_operation=SET, value="7")]))
    entry = {e.name: e for e in describe(leader, TOPIC, "t").configs}["retention.ms"]
    assert (entry.value, entry.config_source, entry.read_only, entry.is_sensitive) == (
        "7",
        1,
        False,
        False,
    )
    assert [(s.name, s.value, s.source) for s in entry.synonyms] == [
        ("retention.ms", "7", 1),
        ("log.retention.ms", "5", 3),
        ("log.retention.hours", "1", 4),
        ("log.retention.hours", "168", 5),
    ]


def test_the_node_describes_itself_with_sensitive_values_hidden_and_keys_filtered() -> None:
    leader = started(**{"ssl.key.password": "secret", "custom.key": "v"})
    result = describe(leader, BROKER, "1", keys=["ssl.key.password", "custom.key", "node.id"])
    entries = {e.name: e for e in result.configs}
    assert set(entries) == {"ssl.key.password", "custom.key", "node.id"}
    password = entries["ssl.key.password"]
    assert (password.value, password.is_sensitive, password.config_source) == (None, True, 4)
    assert [s.value for s in password.synonyms] == [None]
    # KafkaConfig.maybeSensitive: a config Kafka does not define is sensitive too.
    custom = entries["custom.key"]
    assert (custom.value, custom.is_sensitive, custom.read_only, custom.config_type) == (
        None,
        True,
        True,
        0,
    )
    node = entries["node.id"]
    assert (node.value, node.read_only, node.config_source) == ("1", True, 4)


def test_cluster_defaults_list_only_dynamic_cluster_wide_configs() -> None:
    leader = started()
    incremental(
        leader,
        (
            BROKER,
            "",
            [
                Op(name="log.cleaner.threads", config_operation=SET, value="2"),
                # read-only and per-broker configs are kept in the log but not applied
                Op(name="node.id", config_operation=SET, value="5"),
                Op(name="listeners", config_operation=SET, value="X://:1"),
            ],
        ),
    )
    result = describe(leader, BROKER, "")
    assert [(e.name, e.value, e.config_source) for e in result.configs] == [
        ("log.cleaner.threads", "2", 3)
    ]


def test_client_metrics_subscriptions_are_described_as_set() -> None:
    leader = started()
    incremental(
        leader,
        (CLIENT_METRICS, "sub", [Op(name="interval.ms", config_operation=SET, value="1000")]),
    )
    result = describe(leader, CLIENT_METRICS, "sub")
    assert [(e.name, e.value, e.config_source) for e in result.configs] == [
        ("interval.ms", "1000", 7)
    ]


def test_the_nodes_log_levels_are_described_and_altered() -> None:
    leader = started()
    response, records = incremental(
        leader,
        (BROKER_LOGGER, "1", [Op(name="kwire.controller", config_operation=SET, value="DEBUG")]),
    )
    assert answers(response) == [(BROKER_LOGGER, "1", ErrorCode.NONE, None)]
    assert records == []
    try:
        levels = {e.name: e.value for e in describe(leader, BROKER_LOGGER, "1").configs}
        assert levels["kwire.controller"] == "DEBUG"
        assert "root" in levels
    finally:
        incremental(
            leader, (BROKER_LOGGER, "1", [Op(name="kwire.controller", config_operation=DELETE)])
        )
