"""UpdateFeatures as Kafka 3.9's controller (FeatureControlManager.updateFeatures,
QuorumFeatures.reasonNotSupported, MetadataVersion.checkIfMetadataChanged): each case's
expected code and message are Kafka's."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from test_controller_genuine import read_metadata_log
from test_controller_integrity import Leader, registration

from kwire.controller import ControllerConfig, QuorumController
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse
from kwire.records import unframe_metadata_record

MULTI_BROKER = Path(__file__).resolve().parents[2] / "shared/captures/kafka-3.9/multi-broker"
GENUINE_LOG = MULTI_BROKER / "controller-1-metadata/__cluster_metadata-0/00000000000000000000.log"
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3
MV = "metadata.version"


def update(
    leader: Leader,
    *updates: tuple[str, int, int],
    validate_only: bool = False,
    version: int = 1,
) -> tuple[list[tuple[str, int, str | None]], list[tuple[str, int]]]:
    before = leader.next_offset
    response = leader.send(
        UpdateFeaturesRequest(
            feature_updates=[
                UpdateFeaturesRequest.FeatureUpdateKey(
                    feature=name, max_version_level=level, upgrade_type=kind
                )
                for name, level, kind in updates
            ],
            validate_only=validate_only,
        ),
        version,
    )
    assert isinstance(response, UpdateFeaturesResponse)
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, "")
    records = []
    for offset, value in leader.pending:
        if offset >= before:
            api_key, v, body = unframe_metadata_record(value)
            record = METADATA_RECORDS[api_key].decode(body, v)
            assert isinstance(record, FeatureLevelRecord) and v == 0
            records.append((record.name, record.feature_level))
    leader.append()
    return [(r.feature, r.error_code, r.error_message) for r in response.results], records


def with_broker(min_mv: int = 1, **config: Any) -> Leader:
    leader = Leader.started(**config)
    request = registration(2)
    request.features = [
        BrokerRegistrationRequest.Feature(
            name=MV, min_supported_version=min_mv, max_supported_version=21
        ),
        BrokerRegistrationRequest.Feature(
            name="kraft.version", min_supported_version=0, max_supported_version=1
        ),
    ]
    leader.send(request)
    leader.append()
    return leader


INVALID = "Invalid update version {level} for feature {feature}. "
REFUSED = {
    # name: (feature, level, upgrade type, Kafka's message)
    "an unknown upgrade type": (
        MV,
        21,
        4,
        INVALID + "The controller does not support the given upgrade type.",
    ),
    "a negative level": (
        "some.feature",
        -1,
        UPGRADE,
        INVALID + "A feature version cannot be less than 0.",
    ),
    "a level beyond this controller": (
        MV,
        22,
        UPGRADE,
        INVALID + "Local controller 1 only supports versions 1-21",
    ),
    "a feature this controller does not know": (
        "group.version",
        1,
        UPGRADE,
        INVALID + "Local controller 1 does not support this feature.",
    ),
    "a downgrade marked as an upgrade": (
        MV,
        20,
        UPGRADE,
        INVALID + "Can't downgrade the version of this feature without setting the upgrade type to "
        "either safe or unsafe downgrade.",
    ),
    "a kraft.version upgrade marked as a downgrade": (
        "kraft.version",
        1,
        SAFE_DOWNGRADE,
        INVALID + "Can't downgrade to a newer version.",
    ),
    "a downgrade that would lose metadata": (
        MV,
        16,
        SAFE_DOWNGRADE,
        "Invalid metadata.version 16. Refusing to perform the requested downgrade because it "
        "might delete metadata information.",
    ),
    "an unsafe downgrade that would lose metadata": (
        MV,
        16,
        UNSAFE_DOWNGRADE,
        "Invalid metadata.version 16. Unsafe metadata downgrade is not supported in this version.",
    ),
    "a level below 3.3-IV0": (
        MV,
        3,
        SAFE_DOWNGRADE,
        "Invalid metadata.version 3. Unable to set a metadata.version less than 3.3-IV0",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_update_gets_invalid_update_version_and_writes_nothing(case: str) -> None:
    feature, level, kind, message = REFUSED[case]
    results, records = update(with_broker(), (feature, level, kind))
    expected = message.format(level=level, feature=feature)
    assert results == [(feature, ErrorCode.INVALID_UPDATE_VERSION, expected)]
    assert records == []


def test_a_broker_that_does_not_support_the_level_refuses_it() -> None:
    results, records = update(with_broker(min_mv=21), (MV, 20, SAFE_DOWNGRADE))
    # VersionRange.toString prints a one-level range as that level.
    assert results == [
        (
            MV,
            ErrorCode.INVALID_UPDATE_VERSION,
            "Invalid update version 20 for feature metadata.version. "
            "Broker 2 only supports versions 21",
        )
    ]
    assert records == []


def test_a_voter_that_has_not_registered_refuses_every_change() -> None:
    leader = with_broker(quorum_node_ids=(1, 3))
    results, _ = update(leader, (MV, 20, SAFE_DOWNGRADE))
    assert results == [
        (
            MV,
            ErrorCode.INVALID_UPDATE_VERSION,
            "Invalid update version 20 for feature metadata.version. "
            "controller 3 has not registered, and may not support this feature",
        )
    ]


def test_a_safe_downgrade_writes_the_new_level_and_apiversions_reports_it() -> None:
    leader = with_broker()
    results, records = update(leader, (MV, 20, SAFE_DOWNGRADE))
    assert results == [(MV, ErrorCode.NONE, None)]
    assert records == [(MV, 20)]
    epoch, levels = leader.controller.finalized_features()
    assert levels == {MV: 20}
    assert epoch == len(leader.log) - 1  # the offset of the FeatureLevelRecord
    # And back up again.
    _, records = update(leader, (MV, 21, UPGRADE))
    assert records == [(MV, 21)]
    assert leader.controller.finalized_features()[1] == {MV: 21}


def test_validate_only_answers_the_same_and_writes_nothing() -> None:
    leader = with_broker()
    results, records = update(leader, (MV, 20, SAFE_DOWNGRADE), validate_only=True)
    assert (results, records) == ([(MV, ErrorCode.NONE, None)], [])
    assert leader.controller.finalized_features()[1] == {MV: 21}


def test_answers_are_sorted_by_feature_and_the_last_mention_of_a_feature_wins() -> None:
    leader = with_broker()
    results, records = update(
        leader,
        ("metadata.version", 21, UPGRADE),
        ("kraft.version", 0, UPGRADE),
        ("a.feature", 5, UPGRADE),
        ("metadata.version", 20, SAFE_DOWNGRADE),
    )
    assert [r[0] for r in results] == ["a.feature", "kraft.version", "metadata.version"]
    assert [r[1] for r in results] == [ErrorCode.INVALID_UPDATE_VERSION, 0, 0]
    assert sorted(records) == [("kraft.version", 0), (MV, 20)]


def test_version_0s_allow_downgrade_flag_is_not_consulted() -> None:
    # Kafka's controller reads UpgradeType, which v0 does not carry (default UPGRADE).
    leader = with_broker()
    response = leader.send(
        UpdateFeaturesRequest(
            feature_updates=[
                UpdateFeaturesRequest.FeatureUpdateKey(
                    feature=MV, max_version_level=20, allow_downgrade=True
                )
            ]
        ),
        0,
    )
    assert isinstance(response, UpdateFeaturesResponse)
    assert [r.error_code for r in response.results] == [ErrorCode.INVALID_UPDATE_VERSION]


@pytest.mark.skipif(not GENUINE_LOG.exists(), reason=f"no captures at {MULTI_BROKER}")
def test_the_genuine_logs_finalized_features_are_what_kafka_features_describe_showed() -> None:
    # commands-output.txt: kafka-features --bootstrap-controller describe printed
    # "metadata.version ... FinalizedVersionLevel: 3.9-IV0 Epoch: 4".
    controller = QuorumController(
        node_id=1, cluster_id="c", config=ControllerConfig(), rng=random.Random(0)
    )
    for logged in read_metadata_log(GENUINE_LOG):
        controller.replay(logged.record, logged.version, logged.offset)
    assert controller.finalized_features() == (4, {MV: 21})
    output = (MULTI_BROKER / "commands-output.txt").read_text()
    assert "FinalizedVersionLevel: 3.9-IV0\tEpoch: 4" in output
