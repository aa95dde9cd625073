"""Regenerate kwire/controller/broker_config_table.py: Kafka 3.9.0's and 4.3.1's tables.

The multi-broker capture holds a genuine controller's DescribeConfigs v4 answer for its
own node with synonyms (``kafka-configs --bootstrap-controller --describe --entity-type
brokers --entity-name 1 --all``): every broker config Kafka 3.9 defines, with its type,
whether it is read-only (not dynamically updatable), whether it is sensitive, and its
default (the DEFAULT_CONFIG synonym; none where Kafka has no default). This tool turns
that answer into a table, so kwire reports the same set without hand-copying it.

There is no genuine Kafka 4.3.1 answer, so 4.3.1's table is 3.9's plus the delta between
the two releases' definitions, read from their sources by tools/kafka_config_defs.py
(apache/kafka branch 3.9 and confluentinc/kafka commit 26b251a4 = 4.3.1): a config both
define alike keeps its genuine 3.9 row; one added, or whose type or default changed,
takes 4.3.1's; one 4.3.1 no longer defines is dropped. Defaults the reader cannot
evaluate are listed in RESOLVED_BY_READING (each checked in 4.3.1's source), and the
dynamic configs of 4.3.1 (DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS) are named here by
their constants and resolved in 4.3.1's tree. Documentation is never taken.

    python -m tools.gen_broker_configs [capture.jsonl] > kwire/controller/broker_config_table.py
    python -m tools.gen_broker_configs --delta   # print the 3.9 -> 4.3.1 delta only
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.describe_configs import DescribeConfigsRequest
from tools.kafka_config_defs import (
    NO_DEFAULT,
    SOURCES_3_9,
    SOURCES_4_3,
    Definition,
    JavaTree,
    Unresolved,
)

CAPTURE = (
    Path(__file__).resolve().parents[2]
    / "shared/captures/kafka-3.9/multi-broker/multi-broker.jsonl"
)
DEFAULT_SOURCE = 5
APACHE = Path("/work/.mirror/apache+kafka/repo")
CONFLUENT = Path("/work/.mirror/confluentinc+kafka/repo")
REF_3_9 = "3.9"
REF_4_3 = "26b251a4"

Row = tuple[int, "str | None", bool, bool]
TYPE_IDS = {
    "BOOLEAN": 1,
    "STRING": 2,
    "INT": 3,
    "SHORT": 4,
    "LONG": 5,
    "DOUBLE": 6,
    "LIST": 7,
    "CLASS": 8,
    "PASSWORD": 9,
}

# 4.3.1 defaults the reader cannot evaluate (method calls, enum fields, JVM lookups),
# resolved by reading 4.3.1's source: ConfigDef.convertToString of each.
RESOLVED_BY_READING: dict[str, str] = {
    # GroupCoordinatorConfig: the names of the built-in UniformAssignor, RangeAssignor.
    "group.consumer.assignors": "uniform,range",
    # GroupCoordinatorConfig / ShareCoordinatorConfig: 1024 * 1024 + Records.LOG_OVERHEAD (12).
    "group.coordinator.cached.buffer.max.bytes": "1048588",
    "share.coordinator.cached.buffer.max.bytes": "1048588",
    # GroupCoordinatorConfig: Group.GroupType CLASSIC, CONSUMER, STREAMS by name.
    "group.coordinator.rebalance.protocols": "classic,consumer,streams",
    # GroupCoordinatorConfig: SimpleAssignor.name().
    "group.share.assignors": "simple",
    # SocketServerConfigs: every SecurityProtocol mapped to itself (as in 3.9).
    "listener.security.protocol.map": (
        "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
    ),
    # ServerLogConfigs: CompressionType.X.defaultLevel() (Deflater's -1, LZ4 9, zstd 3).
    "log.compression.gzip.level": "-1",
    "log.compression.lz4.level": "9",
    "log.compression.zstd.level": "3",
    # ServerLogConfigs: LogConfig's 7 days, 7 days, 0 ms in hours.
    "log.retention.hours": "168",
    "log.roll.hours": "168",
    "log.roll.jitter.hours": "0",
    # ServerLogConfigs.MAX_MESSAGE_BYTES_DEFAULT: 1024 * 1024 + Records.LOG_OVERHEAD.
    "message.max.bytes": "1048588",
    # MetricConfigs: Sensor.RecordingLevel.INFO.toString().
    "metrics.recording.level": "INFO",
    # CompressionType.NONE.id.
    "offsets.topic.compression.codec": "0",
    "share.coordinator.state.topic.compression.codec": "0",
    # BrokerSecurityConfigs (as in 3.9).
    "principal.builder.class": (
        "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"
    ),
    "sasl.enabled.mechanisms": "GSSAPI",
    "sasl.kerberos.principal.to.local.rules": "DEFAULT",
    # SslConfigs: the JVM's KeyManagerFactory / TrustManagerFactory defaults (as the
    # genuine 3.9 answer shows them, same JVM family).
    "ssl.keymanager.algorithm": "SunX509",
    "ssl.trustmanager.algorithm": "PKIX",
}

# 4.3.1's DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS (server/.../config/DynamicBrokerConfig.java)
# by (class, constant) where it differs from 3.9's: these became dynamic...
NEWLY_DYNAMIC = (
    ("AbstractConfig", "CONFIG_PROVIDERS_CONFIG"),
    ("ServerLogConfigs", "CORDONED_LOG_DIRS_CONFIG"),  # DynamicLogConfig
    ("GroupCoordinatorConfig", "CACHED_BUFFER_MAX_BYTES_CONFIG"),
    ("GroupCoordinatorConfig", "CONSUMER_GROUP_ASSIGNMENT_INTERVAL_MS_CONFIG"),
    ("GroupCoordinatorConfig", "SHARE_GROUP_ASSIGNMENT_INTERVAL_MS_CONFIG"),
    ("GroupCoordinatorConfig", "STREAMS_GROUP_ASSIGNMENT_INTERVAL_MS_CONFIG"),
    ("ShareCoordinatorConfig", "CACHED_BUFFER_MAX_BYTES_CONFIG"),
    ("RemoteLogManagerConfig", "REMOTE_LIST_OFFSETS_REQUEST_TIMEOUT_MS_PROP"),
    ("RemoteLogManagerConfig", "REMOTE_LOG_MANAGER_COPIER_THREAD_POOL_SIZE_PROP"),
    ("RemoteLogManagerConfig", "REMOTE_LOG_MANAGER_EXPIRATION_THREAD_POOL_SIZE_PROP"),
    ("RemoteLogManagerConfig", "REMOTE_LOG_MANAGER_FOLLOWER_THREAD_POOL_SIZE_PROP"),
    ("RemoteLogManagerConfig", "REMOTE_LOG_READER_THREADS_PROP"),
    ("ReplicationConfigs", "FOLLOWER_FETCH_LAST_TIERED_OFFSET_ENABLE_CONFIG"),
)
# ... and none of 3.9's dynamic configs that 4.3.1 still defines stopped being dynamic.
NO_LONGER_DYNAMIC: tuple[tuple[str, str], ...] = ()


def genuine_3_9(path: Path) -> dict[str, Row]:
    """The genuine 3.9 answer's configs: name -> (type id, default, read-only, sensitive)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    answers = {(d["stream"], d["correlation_id"]): d for d in lines if d["dir"] == "response"}
    best = None
    for d in lines:
        if d["dir"] != "request" or d["api_key"] != 32:
            continue
        _, request = decode_request(bytes.fromhex(d["hex"]))
        assert isinstance(request, DescribeConfigsRequest)
        resource = request.resources[0]
        if (
            resource.resource_type != 4
            or not resource.resource_name
            or not request.include_synonyms
        ):
            continue
        answer = answers[(d["stream"], d["correlation_id"])]
        _, response = decode_response(bytes.fromhex(answer["hex"]), 32, d["api_version"])
        configs = response.results[0].configs
        if best is None or len(configs) > len(best):
            best = configs
    assert best, "no DescribeConfigs of a broker with synonyms in the capture"
    table = {}
    for c in best:
        defaults = [s.value for s in c.synonyms if s.source == DEFAULT_SOURCE and s.name == c.name]
        table[c.name] = (
            c.config_type,
            defaults[0] if defaults else None,
            c.read_only,
            c.is_sensitive,
        )
    return table


def _java_double(value: float) -> str:
    text = repr(float(value))
    return text if "e" not in text else text.replace("e", "E")


def shown_default(definition: Definition) -> str | None:
    """ConfigDef.convertToString of a parsed default, as DescribeConfigs shows it; None
    where there is no default (or a PASSWORD's, never shown)."""
    value = definition.default
    if isinstance(value, Unresolved):
        if definition.name not in RESOLVED_BY_READING:
            raise SystemExit(f"resolve the default of {definition.name} by reading: {value.text}")
        return RESOLVED_BY_READING[definition.name]
    if value is NO_DEFAULT or value is None or definition.type == "PASSWORD":
        return None
    match definition.type:
        case "BOOLEAN":
            return "true" if value else "false"
        case "LIST":
            items = (
                value
                if isinstance(value, list)
                else [v.strip() for v in str(value).split(",") if str(value).strip()]
            )
            return ",".join(str(v) for v in items)
        case "DOUBLE":
            return _java_double(float(value))  # type: ignore[arg-type]
        case "INT" | "LONG" | "SHORT":
            return str(int(value))  # type: ignore[call-overload]
        case _:
            return str(value)


def _alike(old: Definition, new: Definition) -> bool:
    if old.type != new.type:
        return False
    if isinstance(new.default, Unresolved):
        return old.default == new.default and new.name not in RESOLVED_BY_READING
    return repr(old.default) == repr(new.default)


def table_4_3(table_3_9: dict[str, Row]) -> tuple[dict[str, Row], list[str]]:
    """4.3.1's table (3.9's plus the delta) and the delta as lines of text."""
    old_tree, new_tree = JavaTree(APACHE, REF_3_9), JavaTree(CONFLUENT, REF_4_3)
    old, new = old_tree.definitions(SOURCES_3_9), new_tree.definitions(SOURCES_4_3)
    assert set(old) == set(table_3_9), set(old) ^ set(table_3_9)

    def names(pairs: tuple[tuple[str, str], ...]) -> set[str]:
        return {str(new_tree.constant(cls, name, cls)) for cls, name in pairs}

    newly_dynamic, no_longer = names(NEWLY_DYNAMIC), names(NO_LONGER_DYNAMIC)
    assert newly_dynamic <= set(new), newly_dynamic - set(new)
    table: dict[str, Row] = {}
    delta = []
    for name in sorted(new):
        definition = new[name]
        row_3_9 = table_3_9.get(name)
        if row_3_9 is not None and _alike(old[name], definition):
            type_id, default = row_3_9[0], row_3_9[1]
        else:
            type_id, default = TYPE_IDS[definition.type], shown_default(definition)
        read_only = name not in newly_dynamic and (
            row_3_9 is None or row_3_9[2] or name in no_longer
        )
        row = (type_id, default, read_only, definition.type == "PASSWORD")
        table[name] = row
        if row_3_9 is None:
            delta.append(f"added {name}: {row}")
        elif row != row_3_9:
            delta.append(f"changed {name}: {row_3_9} -> {row}")
    delta += [f"removed {name}: {table_3_9[name]}" for name in sorted(set(table_3_9) - set(new))]
    return table, delta


def _print_table(name: str, title: str, table: dict[str, Row]) -> None:
    print(f"# {title}")
    print(f"{name}: dict[str, tuple[int, str | None, bool, bool]] = {{")
    for key in sorted(table):
        print(f"    {key!r}: {table[key]!r},")
    print("}")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--delta"]
    table_3_9 = genuine_3_9(Path(args[0]) if args else CAPTURE)
    table, delta = table_4_3(table_3_9)
    if "--delta" in sys.argv:
        print("\n".join(delta))
        return
    print('"""Kafka\'s broker configs: name -> (type id, default, read-only, sensitive).')
    print()
    print("Generated by tools/gen_broker_configs.py; do not edit by hand. BROKER_CONFIG_TABLE is")
    print("Kafka 3.9.0's, from a genuine 3.9 controller's DescribeConfigs answer")
    print("(shared/captures/kafka-3.9/multi-broker); BROKER_CONFIG_TABLE_4_3 is Kafka 4.3.1's:")
    print("3.9's plus the delta between the two releases' config definitions (KafkaConfig's")
    print("AbstractKafkaConfig.CONFIG_DEF and DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS).")
    print("Type ids are DescribeConfigsResponse.ConfigType's; read-only means not dynamically")
    print('updatable; a default of None means none."""')
    print()
    _print_table("BROKER_CONFIG_TABLE", "Kafka 3.9.0", table_3_9)
    print()
    _print_table("BROKER_CONFIG_TABLE_4_3", "Kafka 4.3.1", table)
    print()
    print("# The delta, 3.9.0 -> 4.3.1 (added, changed: old -> new, removed):")
    for line in delta:
        print(f"#   {line}")


if __name__ == "__main__":
    main()
