"""Broker configs per release line: Kafka 3.9.0's KafkaConfig at 3.9-IV0 (21), Kafka 4.3.1's
at 4.3-IV0 (30), as the controller describes them and as IncrementalAlterConfigs reads their
types and defaults; and 4.3.1's table against what genuine 4.3.1 nodes were run with."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_controller_config_levels import BROKER, LEVEL_39, LEVEL_43, describe, started_at
from test_controller_configs import incremental

from kwire.controller.config_definitions import ResponseConfigType, broker_config_table
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest

Op = IncrementalAlterConfigsRequest.AlterableConfig
APPEND = 2
CAPTURES_4_3 = Path(__file__).resolve().parents[2] / "shared/captures/kafka-4.3"
LIST, STRING = ResponseConfigType.LIST, ResponseConfigType.STRING

# name: (config, {level: (type, value, read-only) or None where the level's KafkaConfig
# does not define it}); the Kafka class that decides it in the comment.
DESCRIBED = {
    # ServerLogConfigs (4.3.1): cordoned.log.dirs, a LIST defaulting to none cordoned,
    # dynamic (DynamicBrokerConfig.DynamicLogConfig); Kafka 3.9.0 has no such config.
    "cordoned.log.dirs is new in 4.3.1": (
        "cordoned.log.dirs",
        {LEVEL_39: None, LEVEL_43: (LIST, "", False)},
    ),
    # GroupCoordinatorConfig.GROUP_COORDINATOR_REBALANCE_PROTOCOLS_DEFAULT.
    "the rebalance protocols default grew": (
        "group.coordinator.rebalance.protocols",
        {LEVEL_39: (LIST, "classic", True), LEVEL_43: (LIST, "classic,consumer,streams", True)},
    ),
    # ServerLogConfigs.NUM_RECOVERY_THREADS_PER_DATA_DIR_DEFAULT: 1 in 3.9.0, 2 in 4.3.1.
    "recovery threads default to two": (
        "num.recovery.threads.per.data.dir",
        {
            LEVEL_39: (ResponseConfigType.INT, "1", False),
            LEVEL_43: (ResponseConfigType.INT, "2", False),
        },
    ),
    # SocketServerConfigs (4.3.1): listeners became a LIST.
    "listeners became a list": (
        "listeners",
        {
            LEVEL_39: (STRING, "PLAINTEXT://:9092", False),
            LEVEL_43: (LIST, "PLAINTEXT://:9092", False),
        },
    ),
    # DynamicBrokerConfig.DynamicRemoteLogConfig (4.3.1) made the reader threads dynamic.
    "remote log reader threads became dynamic": (
        "remote.log.reader.threads",
        {
            LEVEL_39: (ResponseConfigType.INT, "10", True),
            LEVEL_43: (ResponseConfigType.INT, "10", False),
        },
    ),
    # ZkConfigs is gone from 4.3.1's AbstractKafkaConfig.CONFIG_DEF.
    "zookeeper.connect is gone": (
        "zookeeper.connect",
        {LEVEL_39: (STRING, None, True), LEVEL_43: None},
    ),
    # ServerLogConfigs (4.x dropped the message format configs).
    "log.message.format.version is gone": (
        "log.message.format.version",
        {LEVEL_39: (STRING, "3.0-IV1", True), LEVEL_43: None},
    ),
}


@pytest.mark.parametrize("level", [LEVEL_39, LEVEL_43])
@pytest.mark.parametrize("case", DESCRIBED)
def test_the_node_describes_each_broker_config_with_its_release_lines_definition(
    case: str, level: int
) -> None:
    name, expected = DESCRIBED[case]
    result = describe(started_at(level), BROKER, "1")
    assert result.error_code == ErrorCode.NONE
    entries = {e.name: e for e in result.configs}
    entry = entries.get(name)
    shown = None if entry is None else (entry.config_type, entry.value, entry.read_only)
    assert shown == expected[level]


APPENDS: dict[str, tuple[str, str, dict[int, tuple[ErrorCode, str | None, str | None]]]] = {
    # ConfigurationControlManager.incrementalAlterConfigResource appends to the default of
    # the level's KafkaConfig (KafkaConfigSchema.getDefault).
    "appending starts from the level's default": (
        "group.coordinator.rebalance.protocols",
        "share",
        {
            LEVEL_39: (ErrorCode.NONE, None, "classic,share"),
            LEVEL_43: (ErrorCode.NONE, None, "classic,consumer,streams,share"),
        },
    ),
    # KafkaConfigSchema.isSplittable: a LIST config of 3.9.0 that 4.3.1 no longer defines is
    # no list at all there.
    "a removed list config cannot be appended to": (
        "zookeeper.ssl.cipher.suites",
        "TLS_AES_128_GCM_SHA256",
        {
            LEVEL_39: (ErrorCode.NONE, None, "TLS_AES_128_GCM_SHA256"),
            LEVEL_43: (
                ErrorCode.INVALID_CONFIG,
                "Can't APPEND to key zookeeper.ssl.cipher.suites because its type is not LIST.",
                None,
            ),
        },
    ),
    # A LIST config new in 4.3.1 (ServerConfigs / AbstractConfig.CONFIG_PROVIDERS_CONFIG).
    "a new list config can be appended to": (
        "config.providers",
        "file",
        {
            LEVEL_39: (
                ErrorCode.INVALID_CONFIG,
                "Can't APPEND to key config.providers because its type is not LIST.",
                None,
            ),
            LEVEL_43: (ErrorCode.NONE, None, "file"),
        },
    ),
}


@pytest.mark.parametrize("level", [LEVEL_39, LEVEL_43])
@pytest.mark.parametrize("case", APPENDS)
def test_appending_to_a_cluster_wide_broker_config_follows_the_levels_definition(
    case: str, level: int
) -> None:
    name, operand, expected = APPENDS[case]
    leader = started_at(level)
    response, records = incremental(
        leader, (BROKER, "", [Op(name=name, config_operation=APPEND, value=operand)])
    )
    result = response.responses[0]
    code, message, written = expected[level]
    assert (result.error_code, result.error_message) == (code, message)
    assert records == ([] if written is None else [(BROKER, "", name, written)])


def test_a_name_4_3_1_does_not_define_is_kept_but_shown_as_sensitive_unknown() -> None:
    # DefaultSupportedConfigChecker: every BROKER name is supported; ControllerConfiguration-
    # Validator checks only the broker name. ConfigHelper then types an undefined name
    # UNKNOWN and KafkaConfig.maybeSensitive hides its value.
    leader = started_at(LEVEL_43)
    response, records = incremental(
        leader, (BROKER, "", [Op(name="zookeeper.connect", value="zk:2181")])
    )
    assert response.responses[0].error_code == ErrorCode.NONE
    assert records == [(BROKER, "", "zookeeper.connect", "zk:2181")]
    entry = next(e for e in describe(leader, BROKER, "").configs if e.name == "zookeeper.connect")
    assert (entry.config_type, entry.value, entry.is_sensitive) == (
        ResponseConfigType.UNKNOWN,
        None,
        True,
    )


# -- 4.3.1's table against the genuine 4.3.1 captures --------------------------------------


def _parses(type_id: int, value: str) -> bool:
    """ConfigDef.parseType would accept ``value`` for this type."""
    text = value.strip()
    match type_id:
        case ResponseConfigType.BOOLEAN:
            return text.lower() in ("true", "false")
        case ResponseConfigType.INT | ResponseConfigType.SHORT | ResponseConfigType.LONG:
            return re.fullmatch(r"[+-]?\d+", text) is not None
        case ResponseConfigType.DOUBLE:
            return re.fullmatch(r"[+-]?\d+(\.\d*)?", text) is not None
    return True


def _captured_4_3_configs() -> list[tuple[str, str, str]]:
    """(where, name, value) of every broker config the 4.3.1 captures show: the nodes'
    properties files and the BROKER ConfigRecords of their metadata log dumps."""
    found = []
    for path in sorted(CAPTURES_4_3.glob("*/*.properties")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#") and "=" in line:
                name, value = line.split("=", 1)
                found.append((str(path.relative_to(CAPTURES_4_3)), name.strip(), value))
    for path in sorted(CAPTURES_4_3.glob("*/dump-*.txt")):
        for line in path.read_text().splitlines():
            if '"CONFIG_RECORD"' not in line:
                continue
            data: dict[str, Any] = json.loads(line.split("payload: ", 1)[1])["data"]
            if data["resourceType"] == BROKER:
                found.append((str(path.relative_to(CAPTURES_4_3)), data["name"], data["value"]))
    return found


def test_every_broker_config_the_4_3_1_captures_show_is_defined_alike_in_4_3_1s_table() -> None:
    captured = _captured_4_3_configs()
    assert len(captured) > 20  # the captures are there
    table = broker_config_table(LEVEL_43)
    problems = [
        (where, name, value)
        for where, name, value in captured
        if name not in table or not _parses(table[name][0], value)
    ]
    assert problems == []


def test_the_cluster_min_isr_kafka_4_3_1_writes_at_format_is_the_tables_default() -> None:
    # ConfigurationControlManager.getStaticallyConfiguredMinInsyncReplicas: with no static
    # setting the 4.3.1 controller records KafkaConfig's default in a BROKER "" ConfigRecord.
    written = {value for _, name, value in _captured_4_3_configs() if name == "min.insync.replicas"}
    assert written == {broker_config_table(LEVEL_43)["min.insync.replicas"][1]}
