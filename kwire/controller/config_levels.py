"""What the config APIs do differently at 4.x metadata.version levels (Kafka 4.3.1's
controller); at 3.9-IV0 (21) and below none of this applies (Kafka 3.9.0's controller).

- Resource types (ControllerApis, ConfigResource.Type): GROUP (32) is known from 4.0-IV0;
  below it, as in Kafka 3.9.0, it is "Unknown resource type 32." (UNSUPPORTED_VERSION).
- Supported configs (DefaultSupportedConfigChecker, applied by ConfigurationControlManager
  when it replays a ConfigRecord): a TOPIC config 4.3.1's LogConfig does not define (such
  as message.format.version, left in the log by a 3.x cluster) and a GROUP config GroupConfig
  does not define are skipped, so they are neither described nor counted. kwire keeps them
  in its image (the image is the replay of the log whatever the level) and hides them when
  reading, with :func:`supported_configs`.
- ConfigurationControlManager.validateAlterConfig's record checks (:func:`check_records`),
  before the resource's validator, first failure wins, each INVALID_CONFIG:
  a broker-level min.insync.replicas while eligible.leader.replicas.version >= 1
  ("Broker-level min.insync.replicas cannot be altered while ELR is enabled."); removing
  the cluster-level one then ("Cluster-level min.insync.replicas cannot be removed while
  ELR is enabled."); cordoned.log.dirs of a BROKER below 4.3-IV0 ("The cordoned.log.dirs
  configuration value cannot be set because it requires metadata.version >= 4.3-IV0");
  a cordoned.log.dirs not forwarded by a broker that adds a directory ("When updating
  cordoned.log.dirs via controllers,  the new value must be a subset of the current
  configuration value."); a value longer than 32767 characters, only for records that set
  a value ("The configuration value cannot be added because it exceeds the maximum value
  size of 32767 bytes.").
- ClearElrRecords: Kafka 4.3.1 follows every ConfigRecord of min.insync.replicas with a
  ClearElrRecord while ELR is enabled (createClearElrRecordsAsNeeded):
  kwire.controller.elr.clear_elr_records, called from configs.py and replication.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kwire.controller.api_error import ApiError
from kwire.controller.elr import elr_enabled
from kwire.controller.group_configs import GROUP_CONFIGS
from kwire.controller.image import ConfigResourceType, MetadataImage
from kwire.controller.topic_configs import topic_config_defs
from kwire.metadata_version import MetadataVersion
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord

FIRST_4_X_LEVEL = int(MetadataVersion.IBP_4_0_IV0)
MIN_INSYNC_REPLICAS = "min.insync.replicas"
CORDONED_LOG_DIRS = "cordoned.log.dirs"
_ELR_FEATURE = "eligible.leader.replicas.version"
_MAX_VALUE_LENGTH = 32767  # Short.MAX_VALUE
_COMMA = re.compile(r"\s*,\s*")

_3_9_TYPES = frozenset(
    {
        ConfigResourceType.TOPIC,
        ConfigResourceType.BROKER,
        ConfigResourceType.BROKER_LOGGER,
        ConfigResourceType.CLIENT_METRICS,
    }
)
_4_X_TYPES = _3_9_TYPES | {ConfigResourceType.GROUP}


def is_4x(level: int) -> bool:
    return level >= FIRST_4_X_LEVEL


def known_resource_types(level: int) -> frozenset[int]:
    """The ConfigResource type ids the controller knows at this level."""
    return frozenset(int(t) for t in (_4_X_TYPES if is_4x(level) else _3_9_TYPES))


def supported_configs(
    image: MetadataImage, resource: tuple[ConfigResourceType, str]
) -> dict[str, str]:
    """The resource's configs as the controller at the image's level sees them: at a 4.x
    level only the names Kafka 4.3.1 supports for TOPIC and GROUP resources."""
    configs = image.configs.get(resource, {})
    level = image.metadata_version_level
    if not is_4x(level):
        return dict(configs)
    kind = resource[0]
    if kind is ConfigResourceType.TOPIC:
        names: Mapping[str, object] = topic_config_defs(level)
    elif kind is ConfigResourceType.GROUP:
        names = GROUP_CONFIGS
    else:
        return dict(configs)
    return {k: v for k, v in configs.items() if k in names}


def _split(value: str) -> list[str]:
    return _COMMA.split(value.strip())


def _record_problem(
    image: MetadataImage, record: ConfigRecord, current: Mapping[str, str], forwarded: bool
) -> str | None:
    broker = record.resource_type == ConfigResourceType.BROKER
    if broker and record.name == MIN_INSYNC_REPLICAS and elr_enabled(image):
        if record.resource_name:
            return "Broker-level min.insync.replicas cannot be altered while ELR is enabled."
        if record.value is None:
            return "Cluster-level min.insync.replicas cannot be removed while ELR is enabled."
    if broker and record.name == CORDONED_LOG_DIRS:
        if image.metadata_version_level < MetadataVersion.IBP_4_3_IV0:
            return (
                "The cordoned.log.dirs configuration value cannot be set because it "
                "requires metadata.version >= 4.3-IV0"
            )
        value = record.value
        if not forwarded and value is not None and value.strip():
            old = current.get(CORDONED_LOG_DIRS)
            old_dirs = [] if old is None else _split(old)
            if not all(d in old_dirs for d in _split(value)):
                return (
                    "When updating cordoned.log.dirs via controllers,  the new value must "
                    "be a subset of the current configuration value."
                )
    return None


def check_records(
    image: MetadataImage,
    altered: Sequence[ConfigRecord],
    deleted: Sequence[ConfigRecord],
    current: Mapping[str, str],
    forwarded: bool,
) -> None:
    """ConfigurationControlManager.validateAlterConfig's checks of the records at a 4.x
    level (nothing below): ``altered`` the records the request asked for, ``deleted`` those
    a legacy AlterConfigs implies, ``current`` the resource's configs before. Raises
    ApiError(INVALID_CONFIG) with Kafka 4.3.1's message."""
    if not is_4x(image.metadata_version_level):
        return
    for record in altered:
        problem = _record_problem(image, record, current, forwarded)
        if problem is None and record.value is not None and len(record.value) > _MAX_VALUE_LENGTH:
            problem = (
                "The configuration value cannot be added because it exceeds the maximum "
                f"value size of {_MAX_VALUE_LENGTH} bytes."
            )
        if problem is not None:
            raise ApiError(ErrorCode.INVALID_CONFIG, problem)
    for record in deleted:
        problem = _record_problem(image, record, current, forwarded)
        if problem is not None:
            raise ApiError(ErrorCode.INVALID_CONFIG, problem)
