"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: Kafka 3.9's controller.

Follows ControllerApis (handleDescribeConfigsRequest, handleLegacyAlterConfigs,
handleIncrementalAlterConfigs), ConfigurationControlManager and
ControllerConfigurationValidator:

- Per resource: an unknown type is UNSUPPORTED_VERSION "Unknown resource type N.", a
  resource named twice INVALID_REQUEST "Duplicate resource." (once, at its second
  mention), and these answers come first, in the order met; then the controller's answers.
- Legacy AlterConfigs replaces the resource's dynamic configs: a ConfigRecord for each
  given key whose value changes (every given key of a BROKER resource, KAFKA-14136), then a
  deleting one (null value) for each present key not given.
- IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT (list configs only: "Can't
  APPEND to key K because its type is not LIST."), records as above.
- Validation per resource, first failure wins: the type's validator (topic names and
  LogConfig values, broker names, client metrics configs), then existence (the topic, a
  registered broker or a quorum controller). BROKER values are not checked: Kafka's
  controller leaves that to the broker that forwards the request.
- With an authorizer (ControllerApis.authorizeAlterResource, ConfigHelper): DESCRIBE_CONFIGS
  / ALTER_CONFIGS on the TOPIC, or on the CLUSTER for BROKER and CLIENT_METRICS (and, to
  describe, BROKER_LOGGER); altering a BROKER_LOGGER needs CLUSTER_ACTION on the CLUSTER.
  Refused: TOPIC_ / CLUSTER_AUTHORIZATION_FAILED with the code's default message. Alter
  refusals join the early answers; Kafka lists them in the order of a HashMap keyed by
  ConfigResource, whose hash mixes in an enum's identity hash (different in every JVM),
  so kwire keeps request order.
- All records of one request form one atomic batch of at most 10,000 (BoundedList): more
  fail the whole request with POLICY_VIOLATION. ``validate_only`` answers the same and
  writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    ApiError,
    OperationFailed,
    excessively_large_operation,
)
from kwire.controller.authorizer import AclOperation, AuthHelper, ResourceType
from kwire.controller.broker_logger import alter_log_levels
from kwire.controller.config_definitions import (
    broker_default,
    is_list_broker_config,
    java_parse_int,
)
from kwire.controller.config_describe import BrokerLayers, describe_resource, topic_value
from kwire.controller.config_levels import (
    check_records,
    is_4x,
    known_resource_types,
    supported_configs,
)
from kwire.controller.elr import clear_elr_records, elr_enabled
from kwire.controller.group_configs import validate_group_configs
from kwire.controller.image import ConfigResourceType
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.replication import topic_name_problem
from kwire.controller.topic_configs import (
    ConfigType,
    java_hash_map_order,
    java_string_hash,
    topic_config_defs,
    validate_topic_configs,
)
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kwire.protocol.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from kwire.protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

Resource = tuple[ConfigResourceType, str]
_OP_NAMES = {0: "SET", 1: "DELETE", 2: "APPEND", 3: "SUBTRACT"}


def _static_configs(ctl: QuorumController) -> Mapping[str, str]:
    return ctl.config.static_broker_configs


def _quorum_node_ids(ctl: QuorumController) -> tuple[int, ...]:
    return ctl.config.quorum_node_ids or (ctl.node_id,)


# -- DescribeConfigs --------------------------------------------------------------------


def describe_configs(
    ctl: QuorumController,
    request: DescribeConfigsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Every resource's configs; writes nothing. An unknown resource type fails the whole
    request (INVALID_REQUEST, every resource). With an authorizer (ConfigHelper.
    handleDescribeConfigsRequest): DESCRIBE_CONFIGS on the TOPIC, or on the CLUSTER for the
    other types; the resources refused come after the others, each in request order, with
    TOPIC_ / CLUSTER_AUTHORIZATION_FAILED, its default message and no configs."""
    known = known_resource_types(ctl.image.metadata_version_level)
    for resource in request.resources:
        if resource.resource_type not in known:
            raise OperationFailed(ErrorCode.INVALID_REQUEST)
    auth = AuthHelper.for_request(ctl, context)
    results = []
    refused = []
    for resource in request.resources:
        denial = _denial(auth, AclOperation.DESCRIBE_CONFIGS, resource)
        if denial is None:
            results.append(
                describe_resource(
                    ctl.image, ctl.node_id, _static_configs(ctl), resource, request.include_synonyms
                )
            )
        else:
            refused.append(
                DescribeConfigsResponse.DescribeConfigsResult(
                    error_code=denial,
                    error_message=denial.message,
                    resource_type=resource.resource_type,
                    resource_name=resource.resource_name,
                    configs=[],
                )
            )
    return ControllerResult(records=[], response=DescribeConfigsResponse(results=results + refused))


def _denial(auth: AuthHelper, operation: AclOperation, resource: Any) -> ErrorCode | None:
    """The error of a config resource the caller may not ``operation`` (None: allowed):
    TOPIC on the topic, GROUP on the group (GROUP_AUTHORIZATION_FAILED, Kafka 4.3.1), the
    other types on the CLUSTER (ControllerApis.authorizeAlterResource, ConfigHelper)."""
    if resource.resource_type == ConfigResourceType.TOPIC:
        if auth.authorize(operation, ResourceType.TOPIC, resource.resource_name):
            return None
        return ErrorCode.TOPIC_AUTHORIZATION_FAILED
    if resource.resource_type == ConfigResourceType.GROUP:
        if auth.authorize(operation, ResourceType.GROUP, resource.resource_name):
            return None
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    if auth.cluster(operation):
        return None
    return ErrorCode.CLUSTER_AUTHORIZATION_FAILED


# -- shared validation ------------------------------------------------------------------


def _validate(ctl: QuorumController, resource: Resource, configs: Mapping[str, str]) -> None:
    """ControllerConfigurationValidator.validate, then the existence check."""
    kind, name = resource
    match kind:
        case ConfigResourceType.TOPIC:
            _validate_topic_name(name)
            _validate_topic_values(ctl, configs)
        case ConfigResourceType.BROKER:
            _validate_broker_name(name)
        case ConfigResourceType.CLIENT_METRICS:
            _validate_client_metrics(name, configs)
        case ConfigResourceType.GROUP:
            layers = BrokerLayers.of(ctl.image, ctl.node_id, _static_configs(ctl))
            validate_group_configs(name, configs, layers.configured)
        case _:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {kind.name}")
    _check_exists(ctl, resource)


def _validate_topic_name(name: str) -> None:
    if not name:
        raise ApiError(ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
    problem = topic_name_problem(name)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {problem}")


def _validate_topic_values(ctl: QuorumController, configs: Mapping[str, str]) -> None:
    """LogConfig.validate against the node's own log defaults (tiered storage off), the
    release line's LogConfig at the image's level."""
    level = ctl.image.metadata_version_level
    validate_topic_configs({k: configs[k] for k in java_hash_map_order(list(configs))}, level)
    layers = BrokerLayers.of(ctl.image, ctl.node_id, _static_configs(ctl))

    def effective(key: str) -> str:
        return topic_value(layers, configs, key, level)

    min_lag, max_lag = (
        int(effective("min.compaction.lag.ms")),
        int(effective("max.compaction.lag.ms")),
    )
    if min_lag > max_lag:
        raise ApiError(
            ErrorCode.INVALID_CONFIG,
            f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > "
            f"max.compaction.lag.ms ({max_lag})",
        )
    if effective("remote.storage.enable").strip().lower() == "true":
        raise ApiError(
            ErrorCode.INVALID_CONFIG,
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage.",
        )


def _validate_broker_name(name: str) -> None:
    if not name:
        return
    broker_id = java_parse_int(name)
    if broker_id is None:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "Unable to parse broker name as a base 10 number."
        )
    if broker_id < 0:
        raise ApiError(ErrorCode.INVALID_REQUEST, "Invalid negative broker ID.")


_CLIENT_METRICS_CONFIGS = ("metrics", "interval.ms", "match")
_MATCH_PARAMS = frozenset(
    {
        "client_instance_id",
        "client_id",
        "client_software_name",
        "client_software_version",
        "client_source_address",
        "client_source_port",
    }
)


def _validate_client_metrics(name: str, configs: Mapping[str, str]) -> None:
    """ClientMetricsConfigs.validate."""
    if not name:
        raise ApiError(ErrorCode.INVALID_REQUEST, "Subscription name can't be empty")
    for key in java_hash_map_order(list(configs)):
        if key not in _CLIENT_METRICS_CONFIGS:
            raise ApiError(
                ErrorCode.INVALID_REQUEST, f"Unknown client metrics configuration: {key}"
            )
    if "interval.ms" in configs:
        interval = java_parse_int(configs["interval.ms"])
        if interval is None:
            # Integer.parseInt throws NumberFormatException: an unexpected error to Kafka.
            raise ApiError(ErrorCode.UNKNOWN_SERVER_ERROR)
        if not 100 <= interval <= 3_600_000:
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                f"Invalid value {interval} for interval.ms, interval must be between 100 "
                "and 3600000 (1 hour)",
            )
    if "match" in configs:
        for pattern in _java_split(configs["match"], ","):
            pair = _java_split(pattern, "=")
            if len(pair) != 2 or pair[0].strip() not in _MATCH_PARAMS:
                raise ApiError(
                    ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {pattern}"
                )
            try:
                re.compile(pair[1].strip())
            except re.error:
                raise ApiError(
                    ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {pattern}"
                ) from None


def _java_split(text: str, separator: str) -> list[str]:
    """String.split with a one-character separator: trailing empty strings dropped."""
    parts = text.split(separator)
    while parts and not parts[-1]:
        parts.pop()
    return parts if text else [""]


def _check_exists(ctl: QuorumController, resource: Resource) -> None:
    """QuorumController.ConfigResourceExistenceChecker."""
    kind, name = resource
    if kind is ConfigResourceType.TOPIC:
        if name not in ctl.image.topic_ids_by_name:
            raise ApiError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
            )
    elif kind is ConfigResourceType.BROKER and name:
        node_id = java_parse_int(name)
        if node_id is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Invalid broker name {name}")
        # Kafka 4.3.1 also counts registered controllers (isNodeIdRegistered).
        controllers = ctl.image.controllers if is_4x(ctl.image.metadata_version_level) else {}
        if (
            node_id not in ctl.image.brokers
            and node_id not in _quorum_node_ids(ctl)
            and node_id not in controllers
        ):
            raise ApiError(ErrorCode.BROKER_ID_NOT_REGISTERED, f"No node with id {node_id} found.")


def _record(resource: Resource, key: str, value: str | None) -> ConfigRecord:
    kind, name = resource
    return ConfigRecord(resource_type=kind, resource_name=name, name=key, value=value)


def _bounded_add(records: list[ConfigRecord], more: list[ConfigRecord]) -> None:
    if len(records) + len(more) > MAX_RECORDS_PER_USER_OP:
        raise excessively_large_operation()
    records += more


def _sort_requests(
    resources: list[Any],
    unknown: Callable[[Any], Any],
    duplicate: Callable[[Any], Any],
    level: int,
) -> tuple[list[Any], list[Any]]:
    """Split a request's resources as ControllerApis does: (early answers, resources for
    the controller in request order, each once)."""
    early: list[Any] = []
    seen: dict[Resource, Any] = {}
    duplicates: set[Resource] = set()
    known = known_resource_types(level)
    for resource in resources:
        if resource.resource_type not in known:
            early.append(unknown(resource))
            continue
        key = (ConfigResourceType(resource.resource_type), resource.resource_name)
        if key in duplicates:
            continue
        if key in seen:
            duplicates.add(key)
            del seen[key]
            early.append(duplicate(resource))
            continue
        seen[key] = resource
    return early, list(seen.values())


def _finish(
    ctl: QuorumController,
    records: list[ConfigRecord],
    response: Any,
    validate_only: bool,
    next_offset: int,
) -> ControllerResult:
    output: list[Message] = list(records)
    if elr_enabled(ctl.image):
        # A change of min.insync.replicas clears the ELRs it governs, after every config
        # record of the request (ConfigurationControlManager.createClearElrRecordsAsNeeded).
        output += clear_elr_records(records)
        if len(output) > MAX_RECORDS_PER_USER_OP:
            raise excessively_large_operation()
    if validate_only or not output:
        return ControllerResult(records=[], response=response)
    return ctl.apply(Applied(), output, next_offset).result(response)


# -- AlterConfigs (legacy) --------------------------------------------------------------


def alter_configs(
    ctl: QuorumController,
    request: AlterConfigsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Replace each resource's dynamic configs (ConfigurationControlManager.legacyAlterConfigs)."""
    answer = AlterConfigsResponse.AlterConfigsResourceResponse

    def error(resource: Any, code: ErrorCode, message: str | None) -> Any:
        return answer(
            error_code=code,
            error_message=message,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
        )

    early, resources = _sort_requests(
        request.resources,
        lambda r: error(
            r, ErrorCode.UNSUPPORTED_VERSION, f"Unknown resource type {r.resource_type}."
        ),
        lambda r: error(r, ErrorCode.INVALID_REQUEST, "Duplicate resource."),
        ctl.image.metadata_version_level,
    )
    responses = list(early)
    controller_answers = []
    records: list[ConfigRecord] = []
    auth = AuthHelper.for_request(ctl, context)
    for resource in resources:
        # ControllerApis.authorizeAlterResource: BROKER_LOGGER is refused whoever asks;
        # ALTER_CONFIGS on the TOPIC, or the CLUSTER for BROKER and CLIENT_METRICS.
        if resource.resource_type == ConfigResourceType.BROKER_LOGGER:
            responses.append(
                error(
                    resource, ErrorCode.INVALID_REQUEST, "Unexpected resource type BROKER_LOGGER."
                )
            )
            continue
        denial = _denial(auth, AclOperation.ALTER_CONFIGS, resource)
        if denial is not None:
            responses.append(error(resource, denial, denial.message))
            continue
        key = (ConfigResourceType(resource.resource_type), resource.resource_name)
        wanted = {c.name: c.value for c in resource.configs}
        try:
            _bounded_add(records, _legacy_records(ctl, key, wanted, context.envelope))
        except ApiError as e:
            controller_answers.append(error(resource, e.code, e.message))
            continue
        controller_answers.append(error(resource, ErrorCode.NONE, None))
    response = AlterConfigsResponse(responses=responses + controller_answers)
    return _finish(ctl, records, response, request.validate_only, next_offset)


def _legacy_records(
    ctl: QuorumController, resource: Resource, wanted: dict[str, str | None], forwarded: bool
) -> list[ConfigRecord]:
    current = supported_configs(ctl.image, resource)
    always = resource[0] is ConfigResourceType.BROKER
    altered = [
        _record(resource, key, wanted[key])
        for key in java_hash_map_order(list(wanted))
        if always or current.get(key) != wanted[key]
    ]
    deleted = [
        _record(resource, key, None)
        for key in timeline_hash_order(list(current))
        if key not in wanted
    ]
    check_records(ctl.image, altered, deleted, current, forwarded)
    configs = dict(current)
    for record in altered + deleted:
        if record.value is None:
            configs.pop(record.name, None)
        else:
            configs[record.name] = record.value
    _validate(ctl, resource, configs)
    return altered + deleted


def timeline_hash_order(keys: list[str]) -> list[str]:
    """The order Kafka's TimelineHashMap (BaseHashTable) iterates these keys, inserted in
    this order: slots by Fibonacci hashing of String.hashCode at the table's size (2,
    doubled before it passes 3/4 full), each slot in insertion order. Reinsertions after
    removals can reorder a shared slot; that is not modelled."""
    size = 2
    while len(keys) * 0.75 > size:
        size *= 2
    shift = 65 - size.bit_length()

    def slot(key: str) -> int:
        product = (java_string_hash(key) * -7046029254386353131) & (2**64 - 1)
        return product >> shift

    return sorted(keys, key=slot)


# -- IncrementalAlterConfigs ------------------------------------------------------------


def incremental_alter_configs(
    ctl: QuorumController,
    request: IncrementalAlterConfigsRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Apply SET/DELETE/APPEND/SUBTRACT operations per resource
    (ConfigurationControlManager.incrementalAlterConfigs); BROKER_LOGGER resources change
    this node's log levels and are answered last."""
    answer = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse

    def error(resource: Any, code: ErrorCode, message: str | None) -> Any:
        return answer(
            error_code=code,
            error_message=message,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
        )

    auth = AuthHelper.for_request(ctl, context)
    loggers = []
    for resource in request.resources:
        if resource.resource_type == ConfigResourceType.BROKER_LOGGER:
            if not auth.cluster(AclOperation.CLUSTER_ACTION):
                # RuntimeLoggerManager.applyChangesForResource, before anything else.
                refused = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                loggers.append(error(resource, refused, refused.message))
                continue
            try:
                alter_log_levels(ctl.node_id, resource, request.validate_only)
                loggers.append(error(resource, ErrorCode.NONE, None))
            except ApiError as e:
                loggers.append(error(resource, e.code, e.message))
    early, resources = _sort_requests(
        [r for r in request.resources if r.resource_type != ConfigResourceType.BROKER_LOGGER],
        lambda r: error(
            r, ErrorCode.UNSUPPORTED_VERSION, f"Unknown resource type {r.resource_type}."
        ),
        lambda r: error(r, ErrorCode.INVALID_REQUEST, "Duplicate resource."),
        ctl.image.metadata_version_level,
    )
    controller_answers = []
    records: list[ConfigRecord] = []
    for resource in resources:
        denial = _denial(auth, AclOperation.ALTER_CONFIGS, resource)
        if denial is not None:
            early.append(error(resource, denial, denial.message))
            continue
        key = (ConfigResourceType(resource.resource_type), resource.resource_name)
        ops = {c.name: (c.config_operation, c.value) for c in resource.configs}
        try:
            _bounded_add(records, _incremental_records(ctl, key, ops, context.envelope))
        except ApiError as e:
            controller_answers.append(error(resource, e.code, e.message))
            continue
        controller_answers.append(error(resource, ErrorCode.NONE, None))
    response = IncrementalAlterConfigsResponse(responses=early + controller_answers + loggers)
    return _finish(ctl, records, response, request.validate_only, next_offset)


def _is_list(kind: ConfigResourceType, key: str, level: int) -> bool:
    """ConfigurationControlManager's schema: is ``key`` a LIST config of this type? (No
    GroupConfig is a list.)"""
    if kind is ConfigResourceType.TOPIC:
        definition = topic_config_defs(level).get(key)
        return definition is not None and definition.type is ConfigType.LIST
    if kind is ConfigResourceType.BROKER:
        return is_list_broker_config(key, level)
    if kind is ConfigResourceType.CLIENT_METRICS:
        return key in ("metrics", "match")
    return False


def _default(kind: ConfigResourceType, key: str, level: int) -> str | None:
    if kind is ConfigResourceType.TOPIC:
        definition = topic_config_defs(level).get(key)
        return None if definition is None else definition.default
    if kind is ConfigResourceType.BROKER:
        return broker_default(key, level)
    return None


def _incremental_records(
    ctl: QuorumController,
    resource: Resource,
    ops: dict[str, tuple[int, str | None]],
    forwarded: bool,
) -> list[ConfigRecord]:
    kind = resource[0]
    level = ctl.image.metadata_version_level
    current = supported_configs(ctl.image, resource)
    records = []
    for key in java_hash_map_order(list(ops)):
        operation, operand = ops[key]
        old = current.get(key)
        new: str | None
        match operation:
            case 0:
                new = operand
            case 1:
                new = None
            case 2 | 3:
                if not _is_list(kind, key, level):
                    raise ApiError(
                        ErrorCode.INVALID_CONFIG,
                        f"Can't {_OP_NAMES[operation]} to key {key} because its type is not LIST.",
                    )
                if operand is None:
                    # Kafka splits the null operand: the whole request fails unexpectedly.
                    raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)
                base = old if old is not None else _default(kind, key, level)
                parts = [p for p in (base or "").split(",") if p] if base else []
                for item in _java_split(operand, ","):
                    if operation == 2 and item not in parts:
                        parts.append(item)
                    elif operation == 3 and item in parts:
                        parts.remove(item)
                new = ",".join(parts)
            case _:
                # OpType.forId gives null for an unknown id and the switch on it fails:
                # the whole request fails unexpectedly.
                raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR)
        if new != old or kind is ConfigResourceType.BROKER:
            records.append(_record(resource, key, new))
    check_records(ctl.image, records, [], current, forwarded)
    configs = dict(current)
    for record in records:
        if record.value is None:
            configs.pop(record.name, None)
        else:
            configs[record.name] = record.value
    _validate(ctl, resource, configs)
    return records
