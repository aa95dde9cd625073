"""UpdateFeatures as Kafka 4.3.1's controller, at every metadata.version
(QuorumController.updateFeatures, ConfigurationControlManager.updateFeatures,
FeatureControlManager.updateFeatures, QuorumFeatures.reasonNotSupported,
MetadataVersion.checkIfMetadataChanged, Feature.validateVersion): each case's expected
code, message and records are Kafka 4.3.1's."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_controller_genuine import read_metadata_log
from test_controller_integrity import Leader, registration

from kwire.controller import ControllerConfig, QuorumController
from kwire.controller.features import LOCAL_SUPPORTED_FEATURES
from kwire.kraft_upgrade import KRaftUpgradeError, RefusalKind
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse
from kwire.records import unframe_metadata_record

MULTI_BROKER = Path(__file__).resolve().parents[2] / "shared/captures/kafka-3.9/multi-broker"
GENUINE_LOG = MULTI_BROKER / "controller-1-metadata/__cluster_metadata-0/00000000000000000000.log"
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3
MV = "metadata.version"
ELR = "eligible.leader.replicas.version"
FAILED = "The update failed for all features since the following feature had an error: "
# BrokerRegistration of a genuine 4.3.1 broker (kafka-4.3/broker-lifecycle-static39).
KAFKA_43_FEATURES = {
    "kraft.version": (0, 1),
    "group.version": (0, 1),
    "streams.version": (0, 1),
    "transaction.version": (0, 2),
    ELR: (0, 1),
    MV: (7, 30),
    "share.version": (0, 1),
}
# A genuine 3.9.0 broker's.
KAFKA_39_FEATURES = {MV: (1, 21), "kraft.version": (0, 1)}


def update(
    leader: Leader,
    *updates: tuple[str, int, int],
    validate_only: bool = False,
    version: int = 1,
) -> tuple[UpdateFeaturesResponse, list[Any]]:
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
    records = []
    for offset, value in leader.pending:
        if offset >= before:
            api_key, v, body = unframe_metadata_record(value)
            assert v == 0
            records.append(METADATA_RECORDS[api_key].decode(body, v))
    leader.append()
    return response, records


def refusal(response: UpdateFeaturesResponse) -> tuple[int, str | None, list[Any]]:
    return response.error_code, response.error_message, list(response.results)


def register(leader: Leader, broker_id: int, features: dict[str, tuple[int, int]]) -> None:
    request = registration(broker_id)
    request.features = [
        BrokerRegistrationRequest.Feature(
            name=name, min_supported_version=low, max_supported_version=high
        )
        for name, (low, high) in features.items()
    ]
    leader.send(request)
    leader.append()


def with_broker(features: dict[str, tuple[int, int]] | None = None, **config: Any) -> Leader:
    leader = Leader.started(**config)
    register(leader, 2, KAFKA_39_FEATURES if features is None else features)
    return leader


def test_the_controller_supports_the_union_of_kafka_39_and_43() -> None:
    # QuorumFeatures.defaultSupportedFeatureMap(false): 3.9.0 {metadata.version 1-21,
    # kraft.version 0-1}; 4.3.1 {metadata.version 7-30 and the six production features}.
    assert LOCAL_SUPPORTED_FEATURES == {
        MV: (1, 30),
        "kraft.version": (0, 1),
        "transaction.version": (0, 2),
        "group.version": (0, 1),
        ELR: (0, 1),
        "share.version": (0, 1),
        "streams.version": (0, 1),
    }


INVALID = "Invalid update version {level} for feature {feature}. "
REFUSED = {
    # name: (feature, level, upgrade type, Kafka 4.3.1's message)
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
        31,
        UPGRADE,
        INVALID + "Local controller 1 only supports versions 1-30",
    ),
    "a feature this controller does not know": (
        "some.feature",
        1,
        UPGRADE,
        INVALID + "Local controller 1 does not support this feature.",
    ),
    "a level 0 of a feature Kafka does not know": (
        "some.feature",
        0,
        UPGRADE,
        INVALID + "Feature some.feature not found.",
    ),
    "a feature the 3.9 broker does not list": (
        "group.version",
        1,
        UPGRADE,
        INVALID + "Broker 2 does not support this feature.",
    ),
    "a level beyond the 3.9 broker": (
        MV,
        30,
        UPGRADE,
        INVALID + "Broker 2 only supports versions 1-21",
    ),
    "a downgrade marked as an upgrade": (
        MV,
        20,
        UPGRADE,
        INVALID + "Can't downgrade the version of this feature without setting the upgrade type "
        "to either safe or unsafe downgrade.",
    ),
    "a kraft.version upgrade marked as a downgrade": (
        "kraft.version",
        1,
        SAFE_DOWNGRADE,
        INVALID + "Can't downgrade to a newer version.",
    ),
    "a kraft.version upgrade before every voter reported": (
        "kraft.version",
        1,
        UPGRADE,
        "Invalid upgrade of kraft.version to KRAFT_VERSION_1 because not all of the voters "
        "support it",
    ),
    "a downgrade that would lose metadata": (
        MV,
        16,
        SAFE_DOWNGRADE,
        "Unsupported metadata.version downgrade from 21 to 16. Refusing to perform the "
        "requested downgrade because it might delete metadata information.",
    ),
    "an unsafe downgrade that would lose metadata": (
        MV,
        16,
        UNSAFE_DOWNGRADE,
        "Unsupported metadata.version downgrade from 21 to 16. Unsafe metadata downgrade is "
        "not supported in this version.",
    ),
    "a level Kafka 4.3.1 no longer knows": (
        MV,
        3,
        SAFE_DOWNGRADE,
        "Invalid metadata.version 3. Valid versions are from 7 to 31.",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_update_fails_the_whole_request_and_writes_nothing(case: str) -> None:
    feature, level, kind, message = REFUSED[case]
    response, records = update(with_broker(), (feature, level, kind))
    expected = FAILED + message.format(level=level, feature=feature)
    assert refusal(response) == (ErrorCode.INVALID_UPDATE_VERSION, expected, [])
    assert records == []


def test_one_refused_feature_refuses_the_others_too() -> None:
    response, records = update(
        with_broker(), (MV, 20, SAFE_DOWNGRADE), ("group.version", 1, UPGRADE)
    )
    assert refusal(response) == (
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid update version 1 for feature group.version. "
        "Broker 2 does not support this feature.",
        [],
    )
    assert records == []


def test_a_broker_that_does_not_support_the_level_refuses_it() -> None:
    response, records = update(with_broker({MV: (21, 21)}), (MV, 20, SAFE_DOWNGRADE))
    # VersionRange.toString prints a one-level range as that level.
    assert response.error_message == (
        FAILED + "Invalid update version 20 for feature metadata.version. "
        "Broker 2 only supports versions 21"
    )
    assert records == []


def test_a_voter_that_has_not_registered_refuses_every_change() -> None:
    leader = with_broker(quorum_node_ids=(1, 3))
    response, _ = update(leader, (MV, 20, SAFE_DOWNGRADE))
    assert response.error_message == (
        FAILED + "Invalid update version 20 for feature metadata.version. "
        "controller 3 has not registered, and may not support this feature"
    )


def test_a_safe_downgrade_writes_the_new_level_and_apiversions_reports_it() -> None:
    leader = with_broker()
    response, records = update(leader, (MV, 20, SAFE_DOWNGRADE))
    # Success: no top-level message; v1 lists every feature with Errors.NONE.message().
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, None)
    assert [(r.feature, r.error_code, r.error_message) for r in response.results] == [
        (MV, ErrorCode.NONE, "NONE")
    ]
    assert records == [FeatureLevelRecord(name=MV, feature_level=20)]
    epoch, levels = leader.controller.finalized_features()
    assert levels == {MV: 20}
    assert epoch == len(leader.log) - 1  # the offset of the FeatureLevelRecord
    _, records = update(leader, (MV, 21, UPGRADE))
    assert records == [FeatureLevelRecord(name=MV, feature_level=21)]


def test_version_2_answers_success_without_per_feature_results() -> None:
    response, records = update(with_broker(), (MV, 20, SAFE_DOWNGRADE), version=2)
    assert (response.error_code, response.error_message, list(response.results)) == (
        ErrorCode.NONE,
        None,
        [],
    )
    assert records == [FeatureLevelRecord(name=MV, feature_level=20)]


def test_validate_only_answers_the_same_and_writes_nothing() -> None:
    leader = with_broker()
    response, records = update(leader, (MV, 20, SAFE_DOWNGRADE), validate_only=True)
    assert (response.error_code, [r.feature for r in response.results], records) == (0, [MV], [])
    assert leader.controller.finalized_features()[1] == {MV: 21}


def test_kraft_version_at_its_level_writes_a_noop_record_and_the_last_mention_wins() -> None:
    leader = with_broker()
    response, records = update(
        leader,
        (MV, 21, UPGRADE),
        ("kraft.version", 0, UPGRADE),
        (MV, 20, SAFE_DOWNGRADE),
    )
    assert response.error_code == ErrorCode.NONE
    # Records in the order of Kafka's HashMap: kraft.version, then metadata.version.
    assert records == [NoOpRecord(), FeatureLevelRecord(name=MV, feature_level=20)]
    # v1 results: one per request entry, duplicates included.
    assert [r.feature for r in response.results] == [MV, "kraft.version", MV]


def test_version_0s_allow_downgrade_flag_is_not_consulted() -> None:
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
    assert response.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert "without setting the upgrade type" in (response.error_message or "")


def test_kafka_features_upgrade_to_4_3_with_kafka_43_brokers_is_accepted() -> None:
    # A cluster formatted at 3.9-IV0 whose broker is 4.3.1 (its registration lists 7-30).
    leader = with_broker(KAFKA_43_FEATURES)
    response, records = update(leader, (MV, 30, UPGRADE))
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, None)
    assert records == [FeatureLevelRecord(name=MV, feature_level=30)]
    assert leader.controller.finalized_features()[1] == {MV: 30}


def test_kafka_features_upgrade_to_4_3_with_a_kafka_39_broker_is_refused() -> None:
    leader = with_broker(KAFKA_43_FEATURES)
    register(leader, 3, KAFKA_39_FEATURES)
    response, records = update(leader, (MV, 30, UPGRADE))
    assert refusal(response) == (
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid update version 30 for feature metadata.version. "
        "Broker 3 only supports versions 1-21",
        [],
    )
    assert records == []


def test_eligible_leader_replicas_needs_metadata_version_4_0_iv1() -> None:
    leader = with_broker(KAFKA_43_FEATURES)
    response, records = update(leader, (ELR, 1, UPGRADE))
    assert refusal(response) == (
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid update version 1 for feature eligible.leader.replicas.version. "
        "eligible.leader.replicas.version could not be set to 1 because it depends on "
        "metadata.version level 23",
        [],
    )
    assert records == []


def test_enabling_elr_with_the_metadata_version_it_needs_writes_the_safety_configs_first() -> None:
    leader = with_broker(KAFKA_43_FEATURES, static_broker_configs={"min.insync.replicas": "2"})
    response, records = update(leader, (ELR, 1, UPGRADE), (MV, 30, UPGRADE))
    assert response.error_code == ErrorCode.NONE
    # ConfigurationControlManager.maybeGenerateElrSafetyRecords, then the feature records
    # in the HashMap's order (metadata.version before eligible.leader.replicas.version).
    assert records == [
        ConfigRecord(resource_type=4, resource_name="", name="min.insync.replicas", value="2"),
        FeatureLevelRecord(name=MV, feature_level=30),
        FeatureLevelRecord(name=ELR, feature_level=1),
    ]
    # Enabling it again finds the cluster-level config and writes only the feature.
    _, records = update(leader, (ELR, 1, UPGRADE))
    assert records == [FeatureLevelRecord(name=ELR, feature_level=1)]


def test_metadata_version_downgrades_follow_did_metadata_change_of_4_3() -> None:
    leader = with_broker(KAFKA_43_FEATURES)
    assert update(leader, (MV, 29, UPGRADE))[0].error_code == ErrorCode.NONE
    # Levels 24..29 changed no metadata: a safe downgrade from 29 to 24 is accepted ...
    response, records = update(leader, (MV, 24, SAFE_DOWNGRADE))
    assert (response.error_code, records) == (0, [FeatureLevelRecord(name=MV, feature_level=24)])
    # ... but 23 (ELR records) did: going below it is refused.
    response, records = update(leader, (MV, 22, SAFE_DOWNGRADE))
    assert response.error_message == (
        FAILED + "Unsupported metadata.version downgrade from 24 to 22. Refusing to perform the "
        "requested downgrade because it might delete metadata information."
    )
    assert records == []


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


# -- kraft.version: the raft client's upgrade (KRaftVersionAccessor) ---------------------------


@dataclass
class FakeRaft:
    """The raft client as FeatureControlManager sees it: its level, the upgrades asked
    (level, validate_only), and what it appends (two offsets: KRaftVersion and Voters) or
    refuses."""

    level: int = 0
    asked: list[tuple[int, bool]] = field(default_factory=list)
    refusal: KRaftUpgradeError | None = None
    log: list[tuple[int, bytes]] | None = None

    def kraft_version(self) -> int:
        return self.level

    def upgrade_kraft_version(self, level: int, validate_only: bool) -> int:
        self.asked.append((level, validate_only))
        if self.refusal is not None:
            raise self.refusal
        if validate_only or level == self.level:
            return 0
        self.level = level
        assert self.log is not None  # the control batch takes two offsets of the log
        self.log += [(len(self.log), b"KRaftVersion"), (len(self.log) + 1, b"Voters")]
        return 2


def with_raft(raft: FakeRaft) -> Leader:
    leader = with_broker(KAFKA_43_FEATURES)
    leader.controller.kraft = raft
    raft.log = leader.log
    return leader


def test_an_upgrade_asks_the_raft_client_and_waits_on_a_noop_after_its_control_batch() -> None:
    raft = FakeRaft()
    leader = with_raft(raft)
    end = len(leader.log)
    response, records = update(leader, ("kraft.version", 1, UPGRADE))
    assert (response.error_code, response.error_message) == (ErrorCode.NONE, None)
    assert raft.asked == [(1, False)]
    assert records == [NoOpRecord()]
    # The NoOpRecord follows the raft client's two control records.
    assert leader.controller.last_applied_offset == end + 2
    assert leader.controller.kraft.kraft_version() == 1


def test_validate_only_asks_the_raft_client_to_validate_and_writes_nothing() -> None:
    raft = FakeRaft()
    leader = with_raft(raft)
    response, records = update(leader, ("kraft.version", 1, UPGRADE), validate_only=True)
    assert (response.error_code, records) == (ErrorCode.NONE, [])
    assert raft.asked == [(1, True)] and raft.level == 0


REFUSALS = {
    "not every voter reported": (
        KRaftUpgradeError(
            RefusalKind.INVALID,
            "Invalid upgrade of kraft.version to KRAFT_VERSION_1 because not all of the "
            "voters support it",
        ),
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid upgrade of kraft.version to KRAFT_VERSION_1 because not all of the "
        "voters support it",
    ),
    "an illegal argument gets the feature's prefix": (
        KRaftUpgradeError(RefusalKind.INVALID_ARGUMENT, "Unknown KRaft feature level: 1"),
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid update version 1 for feature kraft.version. Unknown KRaft feature "
        "level: 1",
    ),
    "leadership lost": (
        KRaftUpgradeError(RefusalKind.NOT_LEADER, "stale"),
        ErrorCode.NOT_CONTROLLER,
        None,
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_raft_refusal_is_answered_as_kafkas_controller_answers_it(case: str) -> None:
    refusal_error, code, message = REFUSALS[case]
    leader = with_raft(FakeRaft(refusal=refusal_error))
    response, records = update(leader, ("kraft.version", 1, UPGRADE))
    assert (response.error_code, records) == (code, [])
    if message is not None:
        assert response.error_message == message


def test_a_downgrade_of_kraft_version_is_refused_before_the_raft_client_is_asked() -> None:
    raft = FakeRaft(level=1)
    leader = with_raft(raft)
    response, _ = update(leader, ("kraft.version", 0, SAFE_DOWNGRADE))
    assert refusal(response) == (
        ErrorCode.INVALID_UPDATE_VERSION,
        FAILED + "Invalid update version 0 for feature kraft.version. Can't downgrade the "
        "version of this feature.",
        [],
    )
    response, _ = update(leader, ("kraft.version", 0, UPGRADE))
    assert refusal(response)[1] == (
        FAILED + "Invalid update version 0 for feature kraft.version. Can't downgrade the "
        "version of this feature without setting the upgrade type to either safe or unsafe "
        "downgrade."
    )
    assert raft.asked == []


def test_brokers_register_against_the_raft_clients_kraft_version() -> None:
    """QuorumController.registerBroker: a broker must support the raft client's level."""
    leader = with_raft(FakeRaft(level=1))
    request = registration(3)
    request.features = [
        BrokerRegistrationRequest.Feature(
            name=MV, min_supported_version=1, max_supported_version=21
        ),
        BrokerRegistrationRequest.Feature(
            name="kraft.version", min_supported_version=0, max_supported_version=0
        ),
    ]
    response = leader.send(request)
    assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
