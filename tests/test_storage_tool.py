"""kwire.storage: kafka-storage.sh's format / info / random-uuid, and bootstrap.checkpoint."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from kwire.log import read_meta_properties
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.records import decode_batches
from kwire.server.config import ControllerServerConfig
from kwire.storage import (
    LATEST_PRODUCTION,
    BootstrapError,
    FormatterError,
    ReleaseVersionError,
    bootstrap_records,
    encode_bootstrap_checkpoint,
    format_storage,
    load_bootstrap,
    parse_release_version,
    resolve_release_version,
    validate_cluster_id,
)

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"  # the captured cluster's id


def write_config(directory: Path, **extra: str) -> Path:
    props = {
        "process.roles": "controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "CONTROLLER://127.0.0.1:19093",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        "log.dirs": str(directory / "controller-1"),
        **extra,
    }
    path = directory / "controller.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def storage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kwire.storage", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


UNKNOWN = (
    "Unknown metadata.version '{v}'. Supported metadata.version are: 3.3-IV3, 3.4-IV0, "
    "3.5-IV0, 3.5-IV1, 3.5-IV2, 3.6-IV0, 3.6-IV1, 3.6-IV2, 3.7-IV0, 3.7-IV1, 3.7-IV2, 3.7-IV3, "
    "3.7-IV4, 3.8-IV0, 3.9-IV0, 4.0-IV0, 4.0-IV1, 4.0-IV2, 4.0-IV3, 4.1-IV0, 4.1-IV1, 4.2-IV0, "
    "4.2-IV1, 4.3-IV0"
)


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == message  # one line, no traceback


def test_format_then_refuse_then_ignore(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "controller-1"
    first = storage("format", "-c", config, "-t", CLUSTER_ID, "--release-version", "3.9-IV0")
    assert (first.returncode, first.stderr) == (0, "")
    # Kafka 4.3.1 prints the bootstrap metadata first (format-controller.txt of
    # kafka-4.3/broker-lifecycle-static39).
    assert first.stdout == (
        "Bootstrap metadata: BootstrapMetadata(records=[ApiMessageAndVersion(FeatureLevelRecord("
        "name='metadata.version', featureLevel=21) at version 0)], metadataVersionLevel=21, "
        "source=format command)\n"
        f"Formatting metadata directory {data} with metadata.version 3.9-IV0.\n"
    )
    meta = read_meta_properties(data / "meta.properties")
    assert (meta.cluster_id, meta.node_id, meta.version) == (CLUSTER_ID, 1, 1)
    assert meta.directory_id is not None
    assert (data / "bootstrap.checkpoint").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["bootstrap.checkpoint", "meta.properties"]

    again = storage("format", "-c", config, "-t", CLUSTER_ID)
    assert_refused(
        again,
        f"Log directory {data} is already formatted. "
        "Use --ignore-formatted to ignore this directory and format the others.",
    )
    ignored = storage("format", "-c", config, "-t", CLUSTER_ID, "--ignore-formatted")
    assert (ignored.returncode, ignored.stdout) == (
        0,
        "All of the log directories are already formatted.\n",
    )
    assert read_meta_properties(data / "meta.properties") == meta  # untouched

    other_cluster = storage("format", "-c", config, "-t", "AAAAAAAAAAAAAAAAAAAAAQ", "-g")
    assert_refused(
        other_cluster,
        f"Invalid cluster.id in: {data / 'meta.properties'}. Expected AAAAAAAAAAAAAAAAAAAAAQ, "
        f"but read {CLUSTER_ID}",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # MetadataVersion.fromVersionString of 4.3.1: unknown, too old and unstable alike.
        (["-t", CLUSTER_ID, "--release-version", "9.9"], UNKNOWN.format(v="9.9")),
        (["-t", CLUSTER_ID, "-r", "4.4-IV0"], UNKNOWN.format(v="4.4-IV0")),
        (["-t", CLUSTER_ID, "-r", "2.8"], UNKNOWN.format(v="2.8")),
        (["-t", CLUSTER_ID, "-r", "3.3-IV2"], UNKNOWN.format(v="3.3-IV2")),
        (["-t", CLUSTER_ID, "--override", "node.id=abc"], "node.id=abc: expected an integer"),
        (
            ["-t", CLUSTER_ID, "--override", "node.id="],
            "node.id is missing: expected a non-negative integer",
        ),
        (
            ["-t", CLUSTER_ID, "--override", "process.roles=broker"],
            "process.roles=broker: kwire runs the controller role only; the broker role is not "
            "supported (set process.roles=controller)",
        ),
        (
            [
                "-t",
                CLUSTER_ID,
                "--override",
                "controller.quorum.voters=",
                "--override",
                "controller.quorum.bootstrap.servers=h:1",
            ],
            "Because controller.quorum.voters is not set on this controller, you must specify one "
            "of the following: --standalone, --initial-controllers, or --no-initial-controllers.",
        ),
        ([], "kafka-storage format: the following arguments are required: --cluster-id/-t"),
        # Kafka 4.3.1's StorageTool.runFormatCommand: static voters exclude KIP-853 flags.
        *(
            (
                ["-t", CLUSTER_ID, *flags],
                "You cannot specify controller.quorum.voters and format the node with "
                "--initial-controllers or --standalone. If you want to use dynamic quorum, "
                "please remove controller.quorum.voters and specify "
                "controller.quorum.bootstrap.servers instead.",
            )
            for flags in (["--standalone"], ["-I", "1@h:1:dkuzBlOnSDmSdp3skeoWwA"])
        ),
    ],
)
def test_format_refusals(tmp_path: Path, args: list[str], message: str) -> None:
    result = storage("format", "-c", write_config(tmp_path), *args)
    assert_refused(result, message)
    assert not (tmp_path / "controller-1" / "meta.properties").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    result = storage("info", "-c", tmp_path / "nope.properties")
    assert result.returncode == 1 and "cannot read configuration file" in result.stderr


def test_info(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "controller-1"
    missing = storage("info", "-c", config)
    assert missing.returncode == 1
    assert missing.stdout == f"Found problem:\n  {data} does not exist\n\n"
    assert storage("format", "-c", config, "-t", CLUSTER_ID, "-r", "3.6").returncode == 0
    found = storage("info", "-c", config)
    directory_id = read_meta_properties(data / "meta.properties").directory_id
    assert directory_id is not None
    directory_text = base64.urlsafe_b64encode(directory_id.bytes).decode().rstrip("=")
    assert found.returncode == 0
    assert found.stdout == (
        f"Found log directory:\n  {data}\n\n"
        f"Found metadata: {{cluster.id={CLUSTER_ID}, directory.id={directory_text}, node.id=1, version=1}}\n\n"
    )


def test_random_uuid() -> None:
    result = storage("random-uuid")
    text = result.stdout.strip()
    assert result.returncode == 0 and len(text) == 22 and not text.startswith("-")
    validate_cluster_id(text)


# -- library -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "level"),
    [
        ("3.3-IV3", "3.3-IV3", 7),
        ("3.4-IV0", "3.4-IV0", 8),
        ("3.5", "3.5-IV2", 11),
        ("3.6-IV2", "3.6-IV2", 14),
        ("3.7", "3.7-IV4", 19),
        ("3.7.1", "3.7-IV4", 19),
        ("3.8-IV0", "3.8-IV0", 20),
        ("3.9", "3.9-IV0", 21),
        ("3.9-IV0", "3.9-IV0", 21),
    ],
)
def test_release_versions(text: str, name: str, level: int) -> None:
    version = resolve_release_version(text)
    assert (str(version), version.feature_level) == (name, level)
    records = bootstrap_records(version)
    assert records == [(FeatureLevelRecord(name="metadata.version", feature_level=level), 0)]


def test_default_release_version() -> None:
    assert resolve_release_version(None) == LATEST_PRODUCTION == parse_release_version("4.3-IV0")
    with pytest.raises(ReleaseVersionError):
        parse_release_version("3.9-IV7")


def test_release_table_follows_the_controllers_levels() -> None:
    # One table of metadata.version levels: the release versions' KRaft entries are the
    # controller's MetadataVersion levels, by the same names, in the same order.
    from kwire.controller import MetadataVersion as Level
    from kwire.controller.records import LATEST_PRODUCTION as CONTROLLER_LATEST
    from kwire.storage.release import VERSIONS, metadata_version_for_level

    kraft = [v for v in VERSIONS if v.is_kraft_supported]
    assert [(v.feature_level, v.version) for v in kraft] == [(int(lv), lv.version) for lv in Level]
    assert all(metadata_version_for_level(lv).version == lv.version for lv in Level)
    assert LATEST_PRODUCTION.feature_level == CONTROLLER_LATEST
    assert Level.IBP_3_9_IV0.version == "3.9-IV0"


def test_bootstrap_file_is_byte_identical_to_kafkas(kafka_captures: Path) -> None:
    for log_dir in ("metadata-log", "metadata-log-default"):
        genuine = (kafka_captures / log_dir / "bootstrap.checkpoint").read_bytes()
        timestamps = [batch.base_timestamp for batch in decode_batches(genuine)]
        kafka_39 = parse_release_version("3.9-IV0")
        assert encode_bootstrap_checkpoint(bootstrap_records(kafka_39), timestamps) == genuine


def test_formatted_bootstrap_matches_kafkas_structure(kafka_captures: Path, tmp_path: Path) -> None:
    config = ControllerServerConfig.load(write_config(tmp_path))
    result = format_storage(config, CLUSTER_ID, "3.9-IV0")
    ours = list(decode_batches((config.metadata_log_dir / "bootstrap.checkpoint").read_bytes()))
    theirs = list(
        decode_batches((kafka_captures / "metadata-log" / "bootstrap.checkpoint").read_bytes())
    )

    def shape(batches: list) -> list:  # everything but the clock
        return [(b.base_offset, b.partition_leader_epoch, b.attributes, b.records) for b in batches]

    assert shape(ours) == shape(theirs)
    assert result.formatted == (config.metadata_log_dir,)
    assert load_bootstrap(config.metadata_log_dir) == load_bootstrap(
        kafka_captures / "metadata-log"
    )


def test_format_several_directories(tmp_path: Path) -> None:
    config = ControllerServerConfig.load(
        write_config(
            tmp_path,
            **{
                "metadata.log.dir": str(tmp_path / "meta"),
                "log.dirs": f"{tmp_path / 'a'},{tmp_path / 'b'}",
            },
        )
    )
    result = format_storage(config, CLUSTER_ID, "3.5-IV2")
    assert result.lines == (
        "Bootstrap metadata: BootstrapMetadata(records=[ApiMessageAndVersion(FeatureLevelRecord("
        "name='metadata.version', featureLevel=11) at version 0)], metadataVersionLevel=11, "
        "source=format command)",
        f"Formatting data directory {tmp_path / 'a'} with metadata.version 3.5-IV2.",
        f"Formatting data directory {tmp_path / 'b'} with metadata.version 3.5-IV2.",
        f"Formatting metadata directory {tmp_path / 'meta'} with metadata.version 3.5-IV2.",
    )
    ids = {read_meta_properties(d / "meta.properties").directory_id for d in result.formatted}
    assert len(ids) == 3
    # One directory already formatted: refused, unless ignored.
    (tmp_path / "c").mkdir()
    with pytest.raises(FormatterError, match="is already formatted"):
        format_storage(config, CLUSTER_ID)
    with pytest.raises(FormatterError, match="Stored node id 1 doesn't match previous node id 2"):
        format_storage(
            ControllerServerConfig.load(
                write_config(
                    tmp_path,
                    **{
                        "node.id": "2",
                        "controller.quorum.voters": "2@h:1",
                        "metadata.log.dir": str(tmp_path / "meta"),
                    },
                )
            ),
            CLUSTER_ID,
            ignore_formatted=True,
        )


def test_load_bootstrap_fallbacks(tmp_path: Path) -> None:
    assert load_bootstrap(tmp_path) == bootstrap_records(LATEST_PRODUCTION)
    assert load_bootstrap(tmp_path, "3.4") == bootstrap_records(parse_release_version("3.4-IV0"))
    assert load_bootstrap(tmp_path, "3.0-IV1") == bootstrap_records(
        parse_release_version("3.3-IV0")
    )
    with pytest.raises(BootstrapError, match="No such directory"):
        load_bootstrap(tmp_path / "absent")
    (tmp_path / "bootstrap.checkpoint").write_bytes(b"\x00" * 30)
    with pytest.raises(BootstrapError, match="cannot read"):
        load_bootstrap(tmp_path)
    no_version = [(FeatureLevelRecord(name="other", feature_level=1), 0)]
    (tmp_path / "bootstrap.checkpoint").write_bytes(encode_bootstrap_checkpoint(no_version))
    with pytest.raises(BootstrapError, match="No FeatureLevelRecord for metadata.version"):
        load_bootstrap(tmp_path)
