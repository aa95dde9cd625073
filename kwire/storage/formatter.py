"""Formatting and inspecting storage directories, as Kafka 3.9's Formatter and
``kafka-storage.sh info`` do it."""

from __future__ import annotations

import base64
import enum
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kwire.log.files import META_PROPERTIES_FILE, METADATA_PARTITION_DIR
from kwire.log.properties import (
    MetaProperties,
    PropertiesFormatError,
    read_meta_properties,
    write_meta_properties,
)
from kwire.log.snapshot_io import write_snapshot
from kwire.log.snapshots import SnapshotId
from kwire.raft.voter_set import KRaftVersion, kraft_control_values
from kwire.server.config import ControllerServerConfig
from kwire.storage.bootstrap import RecordAndVersion, write_bootstrap_checkpoint
from kwire.storage.dynamic_voters import DynamicVoters
from kwire.storage.feature_levels import (
    bootstrap_feature_records,
    describe_bootstrap,
    effective_feature_levels,
    effective_release_version,
    parse_feature_arguments,
    parse_release_version,
)
from kwire.storage.release import FEATURE_NAME, MetadataVersion, metadata_version_for_level

KRAFT_VERSION_FEATURE = "kraft.version"
STATIC_AND_INITIAL_VOTERS = (
    "You cannot specify controller.quorum.voters and format the node with "
    "--initial-controllers or --standalone. If you want to use dynamic quorum, please "
    "remove controller.quorum.voters and specify controller.quorum.bootstrap.servers instead."
)

__all__ = [
    "FormatResult",
    "FormatterError",
    "format_storage",
    "random_directory_uuid",
    "random_uuid",
    "cluster_id_warnings",
    "storage_info",
    "validate_cluster_id",
]

log = logging.getLogger("kwire.storage")

# Kafka's Snapshots.BOOTSTRAP_SNAPSHOT_ID: the formatter's snapshot of the first voters.
BOOTSTRAP_SNAPSHOT_ID = SnapshotId(end_offset=0, epoch=0)


class DirectoryType(enum.Enum):
    """What a formatted directory is for (Kafka 4.3.1's Formatter.DirectoryType); the
    value is how ``format`` names it."""

    LOG = "data directory"
    STATIC_METADATA = "metadata directory"
    DYNAMIC_METADATA_NON_VOTER = "dynamic metadata directory"
    DYNAMIC_METADATA_VOTER = "dynamic metadata voter directory"

    @classmethod
    def of(
        cls, directory: Path, metadata_dir: Path, node_id: int, initial: DynamicVoters | None
    ) -> DirectoryType:
        if directory != metadata_dir:
            return cls.LOG
        if initial is None:
            return cls.STATIC_METADATA
        return (
            cls.DYNAMIC_METADATA_VOTER if initial.get(node_id) else cls.DYNAMIC_METADATA_NON_VOTER
        )

    @property
    def is_dynamic_metadata(self) -> bool:
        return self in (
            DirectoryType.DYNAMIC_METADATA_VOTER,
            DirectoryType.DYNAMIC_METADATA_NON_VOTER,
        )


class FormatterError(Exception):
    """Formatting was refused; the message is what kafka-storage prints."""


@dataclass(frozen=True)
class FormatResult:
    cluster_id: str
    node_id: int
    release_version: MetadataVersion
    feature_levels: dict[str, int]  # every feature's level, metadata.version included
    bootstrap: tuple[RecordAndVersion, ...]
    formatted: tuple[Path, ...]  # directories written by this call
    already_formatted: tuple[Path, ...]  # skipped because of ignore_formatted
    lines: tuple[str, ...]  # what kafka-storage prints for this run


def _uuid_text(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def is_reserved_directory_id(value: uuid.UUID) -> bool:
    """Kafka's DirectoryId.reserved: the first 100 ids (MIGRATING, UNASSIGNED, LOST, ...)
    mark log directories and are never a directory's own id."""
    return value.int < 100


def random_directory_uuid() -> uuid.UUID:
    """Kafka's Uuid.randomUuid(): never one of the reserved ids, and never one whose
    string starts with '-' (it would read as a command-line option)."""
    while True:
        value = uuid.uuid4()
        if not is_reserved_directory_id(value) and not _uuid_text(value).startswith("-"):
            return value


def random_uuid() -> str:
    """A fresh cluster id, as ``kafka-storage random-uuid`` prints it."""
    return _uuid_text(random_directory_uuid())


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def validate_cluster_id(cluster_id: str) -> None:
    """Raise FormatterError unless `cluster_id` is a Kafka uuid string (16 bytes in unpadded
    URL-safe base64, as ``random-uuid`` prints), with the message Kafka 3.0-3.8's storage
    tool refused others with. Kafka 3.9 formats with any string, and so does
    `format_storage`: this check only feeds `cluster_id_warnings`."""

    def refuse(reason: str) -> FormatterError:
        return FormatterError(
            f"Cluster ID string {cluster_id} does not appear to be a valid UUID: {reason}"
        )

    if len(cluster_id) > 24:
        raise refuse(
            f"Input string with prefix `{cluster_id[:24]}` is too long to be decoded as a base64 UUID"
        )
    if set(cluster_id) - _BASE64URL or len(cluster_id) % 4 == 1:
        raise refuse(f"Input string `{cluster_id}` is not valid URL-safe base64")
    raw = base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))
    if len(raw) != 16:
        raise refuse(
            f"Input string `{cluster_id}` decoded as {len(raw)} bytes, which is not equal to "
            "the expected 16 bytes of a base64-encoded UUID"
        )


def cluster_id_warnings(cluster_id: str) -> list[str]:
    """Why a cluster id Kafka 3.9 accepts may still cause trouble; empty if none."""
    warnings = []
    try:
        validate_cluster_id(cluster_id)
    except FormatterError as e:
        warnings.append(
            f"{e}. Kafka 3.9 accepts any cluster id, but releases before 3.9 refuse to "
            "format with this one; kafka-storage random-uuid prints one they all accept."
        )
    if not cluster_id.isascii():
        warnings.append(
            f"Cluster ID {cluster_id} is not ASCII: Kafka writes meta.properties in UTF-8 but "
            "reads it back as ISO-8859-1, so Kafka nodes would read a different cluster id."
        )
    return warnings


def _read_existing(
    directories: Sequence[Path],
) -> tuple[dict[Path, MetaProperties], list[Path], list[Path]]:
    """Split directories into formatted (with their properties), empty and unreadable."""
    formatted: dict[Path, MetaProperties] = {}
    empty: list[Path] = []
    errors: list[Path] = []
    for directory in directories:
        try:
            formatted[directory] = read_meta_properties(directory / META_PROPERTIES_FILE)
        except (FileNotFoundError, NotADirectoryError):
            empty.append(directory)
        except (OSError, PropertiesFormatError, UnicodeDecodeError):
            errors.append(directory)
    return formatted, empty, errors


def _verify_existing(found: dict[Path, MetaProperties], cluster_id: str, node_id: int) -> None:
    for directory, meta in found.items():
        path = directory / META_PROPERTIES_FILE
        if meta.cluster_id != cluster_id:
            raise FormatterError(
                f"Invalid cluster.id in: {path}. Expected {cluster_id}, but read {meta.cluster_id}"
            )
        if meta.node_id != node_id:
            raise FormatterError(
                f"Stored node id {meta.node_id} doesn't match previous node id {node_id} in "
                f"{path}. If you moved your data, make sure your configured node id matches. "
                "If you intend to create a new node, you should remove all data in your data "
                "directories."
            )


def format_storage(
    config: ControllerServerConfig,
    cluster_id: str,
    release_version: str | None = None,
    ignore_formatted: bool = False,
    features: Sequence[str] = (),
    initial_controllers: DynamicVoters | None = None,
) -> FormatResult:
    """Write meta.properties and bootstrap.checkpoint to every log directory.

    With ``initial_controllers`` (``--initial-controllers`` or ``--standalone``, KIP-853)
    the metadata directory also gets the bootstrap snapshot
    ``__cluster_metadata-0/00000000000000000000-0000000000.checkpoint``: its header batch
    carries the KRaftVersionRecord and the VotersRecord of those voters on the first
    ``controller.listener.names`` listener, and if this node is one of them its
    directory id is the one given (Kafka 4.3.1's Formatter.writeDynamicQuorumSnapshot).

    As Kafka 4.3.1's ``kafka-storage format``: ``release_version`` (``--release-version``)
    and ``features`` (``--feature name=level``, repeatable) decide the bootstrap records
    (``kwire.storage.feature_levels``); the default release version is 4.3-IV0, or the
    latest testing one with ``unstable.feature.versions.enable``. Raises
    :class:`FormatterError` or ``FeatureLevelError`` with Kafka's message on refusal.
    Any string is a cluster id (Formatter, MetaProperties); one that is not a Kafka uuid
    is logged as a warning (`cluster_id_warnings`).
    """
    if config.quorum_voters and initial_controllers is not None:
        raise FormatterError(STATIC_AND_INITIAL_VOTERS)
    for warning in cluster_id_warnings(cluster_id):
        log.warning("%s", warning)
    unstable = config.unstable_feature_versions_enable
    release = None if release_version is None else parse_release_version(release_version, unstable)
    requested = parse_feature_arguments(features)
    mv = effective_release_version(release, requested, unstable)
    levels = effective_feature_levels(mv, requested, unstable, not config.quorum_voters)
    records: list[RecordAndVersion] = list(bootstrap_feature_records(mv, levels))
    version = metadata_version_for_level(int(mv))
    directories = config.all_log_dirs
    found, empty, errors = _read_existing(directories)
    _verify_existing(found, cluster_id, config.node_id)
    if found and not ignore_formatted:
        first = min(found, key=str)
        raise FormatterError(
            f"Log directory {first} is already formatted. "
            "Use --ignore-formatted to ignore this directory and format the others."
        )
    lines: list[str] = []
    if errors:
        lines += [f"I/O error trying to read log directory {d}. Ignoring..." for d in errors]
        if not empty and not found:
            raise FormatterError("No available log directories to format.")
    if config.metadata_log_dir in errors:
        raise FormatterError(
            f"Encountered I/O error in metadata log directory {config.metadata_log_dir}. Cannot continue."
        )
    if not empty:
        lines.append("All of the log directories are already formatted.")
    else:
        lines.append(f"Bootstrap metadata: {describe_bootstrap(records, int(mv))}")
    taken = {m.directory_id for m in found.values()}
    for directory in empty:
        kind = DirectoryType.of(
            directory, config.metadata_log_dir, config.node_id, initial_controllers
        )
        lines.append(f"Formatting {kind.value} {directory} with {FEATURE_NAME} {version}.")
        voter = None if initial_controllers is None else initial_controllers.get(config.node_id)
        if kind is DirectoryType.DYNAMIC_METADATA_VOTER and voter is not None:
            directory_id = voter.directory_id
        else:
            directory_id = random_directory_uuid()
            while directory_id in taken:
                directory_id = random_directory_uuid()
        taken.add(directory_id)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_bootstrap_checkpoint(directory, records)
            if kind.is_dynamic_metadata and initial_controllers is not None:
                _write_dynamic_quorum_snapshot(
                    directory,
                    initial_controllers,
                    KRaftVersion.from_level(levels[KRAFT_VERSION_FEATURE]),
                    config.controller_listener_names[0],
                )
            write_meta_properties(
                directory / META_PROPERTIES_FILE,
                MetaProperties(
                    cluster_id=cluster_id, node_id=config.node_id, directory_id=directory_id
                ),
            )
        except OSError as e:
            raise FormatterError(
                f"Error while writing meta.properties file {directory}: {e.strerror or e}"
            ) from None
    return FormatResult(
        cluster_id=cluster_id,
        node_id=config.node_id,
        release_version=version,
        feature_levels=levels,
        bootstrap=tuple(records),
        formatted=tuple(empty),
        already_formatted=tuple(sorted(found, key=str)),
        lines=tuple(lines),
    )


def _write_dynamic_quorum_snapshot(
    directory: Path, voters: DynamicVoters, kraft_version: KRaftVersion, listener: str
) -> None:
    partition = directory / METADATA_PARTITION_DIR
    partition.mkdir(parents=True, exist_ok=True)
    now_ms = time.time_ns() // 1_000_000
    write_snapshot(
        partition,
        BOOTSTRAP_SNAPSHOT_ID,
        [],
        last_contained_log_timestamp=now_ms,
        now_ms=now_ms,
        kraft_records=kraft_control_values(kraft_version, voters.to_voter_set(listener)),
    )


def storage_info(directories: Sequence[Path]) -> tuple[list[str], int]:
    """The report of ``kafka-storage info`` and its exit status (1 if it found problems)."""
    problems: list[str] = []
    found_dirs: list[str] = []
    first: MetaProperties | None = None
    for directory in sorted(directories, key=str):
        if not directory.is_dir():
            problems.append(
                f"{directory} {'is not a directory' if directory.exists() else 'does not exist'}"
            )
            continue
        found_dirs.append(str(directory))
        meta_path = directory / META_PROPERTIES_FILE
        if not meta_path.exists():
            problems.append(f"{directory} is not formatted.")
            continue
        try:
            meta = read_meta_properties(meta_path)
        except (OSError, PropertiesFormatError, UnicodeDecodeError) as e:
            problems.append(f"Error loading {meta_path}: {e}")
            continue
        if first is None:
            first = meta
        elif first.cluster_id != meta.cluster_id:
            problems.append("Mismatched cluster IDs between storage directories.")
        elif first.node_id != meta.node_id:
            problems.append("Mismatched node IDs between storage directories.")
    if first is not None and first.version == 0:
        problems.append(
            "The kafka configuration file appears to be for a cluster in KRaft mode, but "
            "the directories are formatted for legacy mode."
        )
    if not directories:
        return ["No directories specified."], 0
    lines: list[str] = []
    if found_dirs:
        lines.append("Found log directory:" if len(found_dirs) == 1 else "Found log directories:")
        lines += [f"  {d}" for d in found_dirs]
        lines.append("")
    if first is not None:
        # Kafka prints a TreeMap of the properties: sorted keys, "{k=v, k=v}".
        props = first.to_properties()
        lines.append(
            "Found metadata: {" + ", ".join(f"{k}={props[k]}" for k in sorted(props)) + "}"
        )
        lines.append("")
    if problems:
        lines.append("Found problem:" if len(problems) == 1 else "Found problems:")
        lines += [f"  {p}" for p in problems]
        lines.append("")
        return lines, 1
    return lines, 0
