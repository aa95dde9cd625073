"""Merging Kafka 3.9.0's and 4.3.1's schemas into one class per message (codegen.merge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen.generate import DEFAULT_SCHEMAS, load_specs
from codegen.merge import merge_specs, projection, version_owner
from codegen.schema import MessageSpec, SchemaError, load_schema, parse_message
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.list_client_metrics_resources import (
    ListClientMetricsResourcesRequest,
)
from kwire.protocol.messages.list_config_resources import ListConfigResourcesRequest
from kwire.protocol.messages.vote import VoteRequest

needs_schemas = pytest.mark.skipif(
    not (DEFAULT_SCHEMAS / "4.3").is_dir(),
    reason=f"Kafka's schemas are not at {DEFAULT_SCHEMAS} (../shared is absent)",
)


def spec(valid: str, fields: list[dict[str, object]], flexible: str = "none") -> MessageSpec:
    raw = {
        "name": "M",
        "type": "data",
        "validVersions": valid,
        "flexibleVersions": flexible,
        "fields": fields,
    }
    return parse_message(raw, Path("M.json"))


def test_a_field_gets_the_old_ranges_below_and_the_new_ones_above() -> None:
    old = spec("0-3", [{"name": "A", "type": "int32", "versions": "0-1"}])
    new = spec("2-5", [{"name": "A", "type": "int32", "versions": "4+"}])
    with pytest.raises(SchemaError, match="hole"):
        merge_specs(old, new)  # A in v0-1 (old) and v4-5 (new): no one range says that
    new = spec("2-5", [{"name": "B", "type": "int32", "versions": "4+"}])
    merged = merge_specs(old, new)
    assert str(merged.valid_versions) == "0-5"
    assert {f.name: str(f.versions) for f in merged.fields} == {"A": "0-1", "B": "4+"}


def test_where_both_define_a_version_the_new_release_decides() -> None:
    old = spec("0-1", [{"name": "A", "type": "int32", "versions": "0+"}])
    new = spec("1-2", [{"name": "A", "type": "int64", "versions": "1+"}])
    # The type changed between releases for v1: one class cannot code v0 as int32 and v1
    # as int64 under one field, so the merge refuses rather than guess.
    with pytest.raises(SchemaError, match="version 0"):
        merge_specs(old, new)
    new = spec("1-2", [{"name": "B", "type": "int32", "versions": "1+"}])
    merged = merge_specs(old, new)
    assert version_owner(old, new, 0) is old and version_owner(old, new, 1) is new
    for version in (0, 1, 2):
        owner = version_owner(old, new, version)
        assert owner is not None
        assert projection(merged, version)[:3] == projection(owner, version)[:3]


@needs_schemas
def test_every_version_of_every_real_message_is_coded_as_the_release_that_decides_it() -> None:
    loaded = load_specs(DEFAULT_SCHEMAS)
    releases = {
        name: [load_schema(path) for path in paths] for name, paths in loaded.sources.items()
    }
    checked = 0
    for merged in loaded.specs:
        specs = releases[merged.name]
        for version in merged.valid_versions:
            owner = next(s for s in reversed(specs) if version in s.valid_versions)
            ours, theirs = projection(merged, version), projection(owner, version)
            assert ours[:3] == theirs[:3], (merged.name, version)
            checked += 1
    every = sum(len(set().union(*(s.valid_versions for s in specs))) for specs in releases.values())
    assert checked == every > 700


@needs_schemas
def test_versions_4x_dropped_and_versions_4x_added_are_both_coded() -> None:
    assert (CreateTopicsRequest.LOWEST_VERSION, CreateTopicsRequest.HIGHEST_VERSION) == (0, 7)
    assert (APIS[1].lowest_version, APIS[1].highest_version) == (0, 18)  # Fetch
    assert (APIS[63].lowest_version, APIS[63].highest_version) == (0, 2)  # BrokerHeartbeat
    assert APIS[7].highest_version == 3  # ControlledShutdown: removed in 4.x, kept from 3.9
    # Vote takes 4.3.1's names for the fields 3.9.0 called CandidateEpoch and CandidateId.
    partition = VoteRequest.PartitionData(replica_epoch=5, replica_id=2)
    for version in (0, 1, 2):
        assert (
            VoteRequest.decode(
                VoteRequest(topics=[VoteRequest.TopicData(partitions=[partition])]).encode(version),
                version,
            )
            .topics[0]
            .partitions[0]
            == partition
        )


@needs_schemas
def test_api_key_74_is_indexed_under_its_4x_name_and_both_classes_code_v0_alike() -> None:
    assert APIS[74].request is ListConfigResourcesRequest
    assert ListClientMetricsResourcesRequest().encode(0) == ListConfigResourcesRequest().encode(0)
