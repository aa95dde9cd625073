"""Storage formatting for a kwire controller, as Kafka's ``kafka-storage.sh``:
``python -m kwire.storage format|info|random-uuid``, and the same as a library; static
quorums (``controller.quorum.voters``) and KIP-853 ones (``--standalone``,
``--initial-controllers``, ``--no-initial-controllers``)."""

from kwire.storage.bootstrap import (
    BootstrapError,
    bootstrap_records,
    encode_bootstrap_checkpoint,
    load_bootstrap,
    read_bootstrap_checkpoint,
    write_bootstrap_checkpoint,
)
from kwire.storage.dynamic_voters import DynamicVoter, DynamicVoterError, DynamicVoters
from kwire.storage.formatter import (
    FormatResult,
    FormatterError,
    cluster_id_warnings,
    format_storage,
    random_uuid,
    storage_info,
    validate_cluster_id,
)
from kwire.storage.release import (
    LATEST_PRODUCTION,
    MetadataVersion,
    ReleaseVersionError,
    parse_release_version,
    resolve_release_version,
)

__all__ = [
    "LATEST_PRODUCTION",
    "BootstrapError",
    "DynamicVoter",
    "DynamicVoterError",
    "DynamicVoters",
    "FormatResult",
    "FormatterError",
    "MetadataVersion",
    "ReleaseVersionError",
    "bootstrap_records",
    "cluster_id_warnings",
    "encode_bootstrap_checkpoint",
    "format_storage",
    "load_bootstrap",
    "parse_release_version",
    "random_uuid",
    "read_bootstrap_checkpoint",
    "resolve_release_version",
    "storage_info",
    "validate_cluster_id",
    "write_bootstrap_checkpoint",
]
