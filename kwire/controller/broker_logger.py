"""BROKER_LOGGER resources: the node's own log levels, described and altered at run time.

Kafka's controller answers these from log4j (Log4jController, RuntimeLoggerManager); kwire
answers from Python's ``logging`` with log4j's level names. Nothing is written to the
metadata log: a level change lasts until the process stops, as in Kafka.
"""

from __future__ import annotations

import logging

from kwire.controller.api_error import ApiError
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest

ROOT_LOGGER = "root"
_TRACE = 5  # below DEBUG: log4j's TRACE
_TO_LOG4J = {
    logging.CRITICAL: "FATAL",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARN",
    logging.INFO: "INFO",
    logging.DEBUG: "DEBUG",
    _TRACE: "TRACE",
}
_FROM_LOG4J = {name: level for level, name in _TO_LOG4J.items()}
# LogLevelConfig.VALID_LOG_LEVELS, sorted as RuntimeLoggerManager lists them.
VALID_LOG_LEVELS = ", ".join(sorted(_FROM_LOG4J))


def _level_name(level: int) -> str:
    for threshold in sorted(_TO_LOG4J, reverse=True):
        if level >= threshold:
            return _TO_LOG4J[threshold]
    return "TRACE"


def current_loggers() -> dict[str, str]:
    """Logger name -> effective level (log4j's name), the root logger as "root"."""
    levels = {ROOT_LOGGER: _level_name(logging.getLogger().level)}
    for name, logger in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            levels[name] = _level_name(logger.getEffectiveLevel())
    return levels


def _existing(name: str) -> logging.Logger | None:
    if name == ROOT_LOGGER:
        return logging.getLogger()
    logger = logging.Logger.manager.loggerDict.get(name)
    return logger if isinstance(logger, logging.Logger) else None


def check_node_id(resource_name: str, node_id: int) -> None:
    """RuntimeLoggerManager.validateResourceNameIsNodeId (its message repeats the node's
    own id where the received one was meant; clients see Kafka's text)."""
    try:
        requested = int(resource_name)
    except ValueError:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: {resource_name}"
        ) from None
    if requested != node_id:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"Unexpected node id. Expected {node_id}, but received {node_id}",
        )


def alter_log_levels(
    node_id: int,
    resource: IncrementalAlterConfigsRequest.AlterConfigsResource,
    validate_only: bool,
) -> None:
    """Validate every operation, then (unless ``validate_only``) apply them: SET a level,
    DELETE a logger's own level. Raises ApiError as RuntimeLoggerManager does."""
    check_node_id(resource.resource_name, node_id)
    for op in resource.configs:
        name = op.name
        match op.config_operation:
            case 0 | 1:
                if _existing(name) is None:
                    raise ApiError(ErrorCode.INVALID_CONFIG, f"Logger {name} does not exist!")
                if op.config_operation == 0 and op.value not in _FROM_LOG4J:
                    raise ApiError(
                        ErrorCode.INVALID_CONFIG,
                        f"Cannot set the log level of {name} to {op.value} as it is not a "
                        f"supported log level. Valid log levels are {VALID_LOG_LEVELS}",
                    )
                if op.config_operation == 1 and name == ROOT_LOGGER:
                    raise ApiError(
                        ErrorCode.INVALID_REQUEST,
                        f"Removing the log level of the {ROOT_LOGGER} logger is not allowed",
                    )
            case 2 | 3:
                kind = "APPEND" if op.config_operation == 2 else "SUBTRACT"
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"{kind} operation is not allowed for the BROKER_LOGGER resource",
                )
            case _:
                # OpType.forId gives null for an unknown id and the switch fails.
                raise ApiError(ErrorCode.UNKNOWN_SERVER_ERROR)
    if validate_only:
        return
    for op in resource.configs:
        logger = _existing(op.name)
        assert logger is not None
        if op.config_operation == 0 and op.value is not None:
            logger.setLevel(_FROM_LOG4J[op.value])
        elif logger is not logging.getLogger():
            logger.setLevel(logging.NOTSET)
