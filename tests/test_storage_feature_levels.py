"""kafka-storage format's --release-version and --feature as Kafka 4.3.1 (StorageTool,
Formatter, BootstrapMetadata.fromVersions), and the 4.x features as data
(server-common Feature and its FeatureVersion enums)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_storage_tool import CLUSTER_ID, storage, write_config

from kwire.feature_versions import FEATURES, feature_by_name, validate_default_and_latest_production
from kwire.metadata_version import LATEST_PRODUCTION, MetadataVersion

CAPTURES = Path(__file__).resolve().parents[2] / "shared/captures/kafka-4.3"
needs_captures = pytest.mark.skipif(not CAPTURES.exists(), reason=f"no captures at {CAPTURES}")


def dumped_records(dump: str) -> list[str]:
    """The payloads kafka-dump-log (or kwire's dump tool) prints for a bootstrap file."""
    return re.findall(r"payload: (\{.*\})", dump)


@pytest.mark.parametrize("feature", FEATURES, ids=[f.name for f in FEATURES])
def test_every_feature_passes_kafkas_consistency_rules(feature) -> None:  # type: ignore[no-untyped-def]
    validate_default_and_latest_production(feature)


@pytest.mark.parametrize(
    ("mv", "defaults"),
    [
        # StorageTool version-mapping of 4.3.1 for these release versions.
        (MetadataVersion.IBP_3_9_IV0, [1, 0, 0, 0, 0, 0]),
        (MetadataVersion.IBP_4_0_IV0, [1, 0, 1, 0, 0, 0]),
        (MetadataVersion.IBP_4_0_IV2, [1, 2, 1, 0, 0, 0]),
        (MetadataVersion.IBP_4_1_IV0, [1, 2, 1, 1, 0, 0]),
        (MetadataVersion.IBP_4_3_IV0, [1, 2, 1, 1, 1, 1]),
    ],
)
def test_default_levels_follow_each_levels_bootstrap_metadata_version(
    mv: MetadataVersion, defaults: list[int]
) -> None:
    assert [f.default_level(mv) for f in FEATURES] == defaults


def test_production_flags_and_gates_of_4_3() -> None:
    assert LATEST_PRODUCTION.version == "4.3-IV0" and int(LATEST_PRODUCTION) == 30
    assert not MetadataVersion.IBP_4_4_IV0.is_production
    assert not MetadataVersion.IBP_4_0_IV0.supports_elr and MetadataVersion.IBP_4_0_IV1.supports_elr
    assert [MetadataVersion(v).register_broker_record_version for v in (7, 8, 17, 29, 30)] == [
        1,
        2,
        3,
        3,
        4,
    ]
    assert [MetadataVersion(v).partition_record_version for v in (16, 17, 22, 23)] == [0, 1, 1, 2]
    assert feature_by_name("transaction.version").latest_production == 2


@needs_captures
@pytest.mark.parametrize(
    ("scenario", "args"),
    [("broker-lifecycle", []), ("broker-lifecycle-static39", ["--release-version", "3.9-IV0"])],
)
def test_format_writes_and_prints_what_kafka_43_did(
    tmp_path: Path, scenario: str, args: list[str]
) -> None:
    config = write_config(tmp_path)
    result = storage("format", "-c", config, "-t", CLUSTER_ID, *args)
    assert result.returncode == 0, result.stderr
    genuine = (CAPTURES / scenario / "format-controller.txt").read_text().splitlines()
    data = tmp_path / "controller-1"
    ours = result.stdout.replace(str(data), "<data>/controller-1").splitlines()
    assert ours == genuine
    dump = storage_dump(data / "bootstrap.checkpoint")
    theirs = (CAPTURES / scenario / "dump-metadata-log-1-bootstrap.checkpoint.txt").read_text()
    assert dumped_records(dump) == dumped_records(theirs)


def storage_dump(path: Path) -> str:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "kwire.tools.dump_log", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


REFUSALS = {
    "an unknown feature": (
        ["--feature", "foo.version=1"],
        "Unsupported feature: foo.version. Supported features are: "
        "eligible.leader.replicas.version, group.version, kraft.version, share.version, "
        "streams.version, transaction.version",
    ),
    "a level the feature does not have": (
        ["--feature", "group.version=2"],
        "No feature:group.version with feature level 2",
    ),
    "a dependency not met": (
        ["--release-version", "3.9-IV0", "--feature", "eligible.leader.replicas.version=1"],
        "eligible.leader.replicas.version could not be set to 1 because it depends on "
        "metadata.version level 23",
    ),
    "metadata.version both ways": (
        ["--release-version", "4.3-IV0", "--feature", "metadata.version=30"],
        "Use --release-version instead of --feature metadata.version=X to avoid ambiguity.",
    ),
    "an unstable metadata.version level": (
        ["--feature", "metadata.version=31"],
        "metadata.version 4.4-IV0 is not yet stable.",
    ),
    "an unknown metadata.version level": (
        ["--feature", "metadata.version=5"],
        "No MetadataVersion with feature level 5. Valid feature levels are from 7 to 31.",
    ),
    "kraft.version 1 on a static quorum": (
        ["--feature", "kraft.version=1"],
        "Cannot set kraft.version to 1 unless controller.quorum.voters is empty and one of the "
        "flags --standalone, --initial-controllers, or --no-initial-controllers is used. For "
        "dynamic controllers support, try using one of --standalone, --initial-controllers, or "
        "--no-initial-controllers and removing controller.quorum.voters.",
    ),
    "no equals sign": (
        ["--feature", "group.version"],
        "Can't parse feature=level string group.version: equals sign not found.",
    ),
    "a level that is not a short": (
        ["--feature", "group.version=40000"],
        "Can't parse feature=level string group.version=40000: unable to parse 40000 as a short.",
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_format_refuses_as_kafka_43(tmp_path: Path, case: str) -> None:
    args, message = REFUSALS[case]
    result = storage("format", "-c", write_config(tmp_path), "-t", CLUSTER_ID, *args)
    assert (result.returncode, result.stderr.strip()) == (1, message)
    assert not (tmp_path / "controller-1" / "meta.properties").exists()


def test_a_feature_can_be_set_below_its_default(tmp_path: Path) -> None:
    result = storage(
        "format", "-c", write_config(tmp_path), "-t", CLUSTER_ID, "-f", "share.version=0"
    )
    assert result.returncode == 0, result.stderr
    names = re.findall(r"name='([a-z.]+)'", result.stdout)
    assert names == [
        "metadata.version",
        "eligible.leader.replicas.version",
        "group.version",
        "streams.version",
        "transaction.version",
    ]


def test_unstable_versions_enable_the_latest_testing_level_by_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"unstable.feature.versions.enable": "true"})
    result = storage("format", "-c", config, "-t", CLUSTER_ID)
    assert result.returncode == 0, result.stderr
    assert "with metadata.version 4.4-IV0." in result.stdout
