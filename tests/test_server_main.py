"""`python -m kwire.server` with no arguments: format once, then serve a one-node quorum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kwire.controller.controller import RequestContext
from kwire.log import read_meta_properties
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.allocate_producer_ids import AllocateProducerIdsRequest
from kwire.raft.state import Voter
from kwire.server.__main__ import build_settings, zero_config
from kwire.server.config import ConfigError, ControllerServerConfig
from kwire.server.dispatch import RequestHandler
from kwire.server.node import ControllerNode
from kwire.storage import format_storage, random_uuid


def test_zero_config_formats_kwire_data_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = zero_config()
    meta = read_meta_properties(tmp_path / "kwire-data" / "meta.properties")
    assert (tmp_path / "kwire-data" / "bootstrap.checkpoint").exists()
    assert config.controller_listener.port == 9093
    assert config.controller_listener.host == "127.0.0.1"
    settings = build_settings(config)
    assert settings.cluster_id == meta.cluster_id
    assert settings.voters == (Voter(node_id=1, host="127.0.0.1", port=9093),)
    assert settings.metadata_version_level == 21
    # A second start keeps the cluster: it must not format again.
    zero_config()
    assert read_meta_properties(tmp_path / "kwire-data" / "meta.properties") == meta


def test_an_unformatted_directory_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    config = ControllerServerConfig.default_single_node(tmp_path / "empty")
    with pytest.raises(ConfigError, match="python -m kwire.storage format"):
        build_settings(config)


def test_a_node_id_that_differs_from_meta_properties_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = zero_config()
    other = ControllerServerConfig.from_properties(
        {**dict(config.originals), "node.id": "5", "controller.quorum.voters": "5@127.0.0.1:9093"}
    )
    with pytest.raises(ConfigError, match="node.id=5"):
        build_settings(other)


@pytest.mark.parametrize(
    "reserved", ["AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAQ", "AAAAAAAAAAAAAAAAAAAAYw"]
)
def test_a_reserved_directory_id_in_meta_properties_is_refused_as_kafka_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reserved: str
) -> None:
    # MIGRATING (0), UNASSIGNED (1), and 99, the last of the 100 Kafka reserves.
    monkeypatch.chdir(tmp_path)
    config = zero_config()
    meta = tmp_path / "kwire-data" / "meta.properties"
    text = meta.read_text()
    meta.write_text(re.sub(r"(?m)^directory\.id=.*$", f"directory.id={reserved}", text))
    with pytest.raises(ConfigError, match=f"Invalid reserved directory ID {reserved} found in"):
        build_settings(config)
    # The first id past them is a directory's own.
    meta.write_text(re.sub(r"(?m)^directory\.id=.*$", "directory.id=AAAAAAAAAAAAAAAAAAAAZA", text))
    assert build_settings(config).directory_id.int == 100


async def test_a_node_that_is_not_the_leader_answers_not_controller(tmp_path: Path) -> None:
    # Two voters, and the other one never answers: this node cannot win an election, so
    # it must not change metadata.
    config = ControllerServerConfig.from_properties(
        {
            "process.roles": "controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:19093,2@127.0.0.1:19094",
            "listeners": "CONTROLLER://127.0.0.1:19093",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(tmp_path / "data"),
        }
    )
    format_storage(config, random_uuid(), "3.9-IV0")
    node = ControllerNode(build_settings(config))
    try:
        node.start()
        assert not node.raft.is_leader
        context = RequestContext(api_version=0)
        response = await RequestHandler(node).controller_request(
            AllocateProducerIdsRequest(broker_id=2, broker_epoch=1), context
        )
        assert response.error_code == ErrorCode.NOT_CONTROLLER  # type: ignore[attr-defined]
        assert node.log.end_offset == 0  # nothing was written
    finally:
        node.close()
