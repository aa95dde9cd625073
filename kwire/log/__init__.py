"""The ``__cluster_metadata`` log on disk, in Kafka 3.9's exact layout."""

from kwire.log.checkpoints import (
    METADATA_TOPIC_ID,
    CheckpointFormatError,
    EpochEntry,
    read_leader_epoch_checkpoint,
    read_partition_metadata,
    write_leader_epoch_checkpoint,
    write_partition_metadata,
)
from kwire.log.epoch_cache import LeaderEpochCache
from kwire.log.files import METADATA_PARTITION_DIR
from kwire.log.metadata_log import (
    InconsistentTopicIdError,
    InvalidAppendError,
    LogAppendInfo,
    MetadataLog,
    MetadataLogConfig,
    OffsetOutOfRangeError,
)
from kwire.log.properties import MetaProperties, read_meta_properties, write_meta_properties
from kwire.log.quorum_state import QuorumStateData, read_quorum_state, write_quorum_state
from kwire.log.snapshots import (
    SnapshotId,
    create_partial_snapshot,
    freeze_snapshot,
    list_snapshots,
    snapshot_path,
)

__all__ = [
    "METADATA_PARTITION_DIR",
    "METADATA_TOPIC_ID",
    "CheckpointFormatError",
    "EpochEntry",
    "InconsistentTopicIdError",
    "InvalidAppendError",
    "LeaderEpochCache",
    "LogAppendInfo",
    "MetaProperties",
    "MetadataLog",
    "MetadataLogConfig",
    "OffsetOutOfRangeError",
    "QuorumStateData",
    "SnapshotId",
    "create_partial_snapshot",
    "freeze_snapshot",
    "list_snapshots",
    "read_leader_epoch_checkpoint",
    "read_meta_properties",
    "read_partition_metadata",
    "read_quorum_state",
    "snapshot_path",
    "write_leader_epoch_checkpoint",
    "write_meta_properties",
    "write_partition_metadata",
    "write_quorum_state",
]
