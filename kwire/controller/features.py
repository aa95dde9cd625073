"""UpdateFeatures: finalized feature levels changed by request, as Kafka 3.9's controller.

Follows QuorumController.updateFeatures, FeatureControlManager.updateFeatures and
QuorumFeatures. Each requested feature (the last mention of a name wins) gets its own
answer, sorted by name (a TreeMap); every failure is INVALID_UPDATE_VERSION with Kafka's
message, checked in this order:

1. the upgrade type is not 1 (UPGRADE), 2 (SAFE_DOWNGRADE) or 3 (UNSAFE_DOWNGRADE);
2. the level is negative;
3. this controller, then every registered broker (by id), then every other registered
   controller must support the level (a feature one does not list supports only 0), and
   from 3.7-IV0 every quorum voter must have registered;
4. a lower level needs a downgrade type, a higher one UPGRADE;
5. metadata.version only: a known level, no ZK migration in progress, at least 3.3-IV0,
   and a downgrade only across levels that changed no metadata (UNSAFE_DOWNGRADE is
   refused whenever the metadata would change).

Each accepted feature writes one FeatureLevelRecord (version 0); all of them form one
atomic batch. ``validate_only`` answers the same and writes nothing. The request's v0
``allow_downgrade`` flag is not consulted: Kafka's controller reads the v1 field, whose
default is UPGRADE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import MAX_RECORDS_PER_USER_OP, excessively_large_operation
from kwire.controller.image import ZkMigrationState
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.topic_configs import java_hash_map_order
from kwire.metadata_version import (
    LATEST_PRODUCTION,
    METADATA_VERSION_FEATURE,
    MINIMUM_BOOTSTRAP_VERSION,
    MINIMUM_KRAFT_VERSION,
    MetadataVersion,
)
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3

# QuorumFeatures.defaultFeatureMap(false) of Kafka 3.9: what this controller supports.
LOCAL_SUPPORTED_FEATURES: dict[str, tuple[int, int]] = {
    METADATA_VERSION_FEATURE: (MINIMUM_KRAFT_VERSION, LATEST_PRODUCTION),
    "kraft.version": (0, 1),
}

# MetadataVersion.didMetadataChange: the levels whose records differ from the level below.
_METADATA_CHANGED = frozenset({1, 3, 5, 6, 7, 8, 11, 13, 14, 15, 17, 22})


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _range_text(low: int, high: int) -> str:
    """VersionRange.toString."""
    if low == high:
        return str(low)
    if high == 2**15 - 1:
        return f"{low}+"
    return f"{low}-{high}"


def _not_supported(level: int, who: str, supported: tuple[int, int]) -> str | None:
    """QuorumFeatures.reasonNotSupported."""
    low, high = supported
    if low <= level <= high:
        return None
    if high == 0:
        return f"{who} does not support this feature."
    return f"{who} only supports versions {_range_text(low, high)}"


def _reason_not_supported(ctl: QuorumController, feature: str, level: int) -> str | None:
    image = ctl.image
    reason = _not_supported(
        level, f"Local controller {ctl.node_id}", LOCAL_SUPPORTED_FEATURES.get(feature, (0, 0))
    )
    if reason:
        return reason
    for broker_id in sorted(image.brokers):
        supported = image.brokers[broker_id].supported_features.get(feature, (0, 0))
        if reason := _not_supported(level, f"Broker {broker_id}", supported):
            return reason
    if not ctl.metadata_version.supports_controller_registration:
        return None
    found = {ctl.node_id}
    for controller_id in sorted(image.controllers):
        if controller_id == ctl.node_id:
            continue
        supported = image.controllers[controller_id].supported_features.get(feature, (0, 0))
        if reason := _not_supported(level, f"Controller {controller_id}", supported):
            return reason
        found.add(controller_id)
    for voter in ctl.config.quorum_node_ids or (ctl.node_id,):
        if voter not in found:
            return f"controller {voter} has not registered, and may not support this feature"
    return None


def _check_metadata_version(ctl: QuorumController, level: int, unsafe: bool) -> None:
    """FeatureControlManager.updateMetadataVersion; raises _Invalid."""

    def invalid(why: str) -> _Invalid:
        return _Invalid(f"Invalid metadata.version {level}. {why}")

    try:
        target = MetadataVersion(level)
    except ValueError:
        raise invalid("Unknown metadata.version.") from None
    if ctl.image.zk_migration_state in (ZkMigrationState.PRE_MIGRATION, ZkMigrationState.MIGRATION):
        raise invalid("Unable to modify metadata.version while a ZK migration is in progress.")
    if target < MINIMUM_BOOTSTRAP_VERSION:
        raise invalid(
            f"Unable to set a metadata.version less than {MINIMUM_BOOTSTRAP_VERSION.version}"
        )
    current = ctl.metadata_version
    if target < current:
        changed = any(v in _METADATA_CHANGED for v in range(target + 1, current + 1))
        if changed and unsafe:
            raise invalid("Unsafe metadata downgrade is not supported in this version.")
        if changed:
            raise invalid(
                "Refusing to perform the requested downgrade because it might delete "
                "metadata information."
            )


def _check(ctl: QuorumController, feature: str, level: int, upgrade_type: int) -> None:
    """FeatureControlManager.updateFeature's checks; raises _Invalid."""

    def invalid(why: str) -> _Invalid:
        return _Invalid(f"Invalid update version {level} for feature {feature}. {why}")

    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        raise invalid("The controller does not support the given upgrade type.")
    if feature == METADATA_VERSION_FEATURE:
        current = int(ctl.metadata_version)
    else:
        current = ctl.image.finalized_features.get(feature, 0)
    if level < 0:
        raise invalid("A feature version cannot be less than 0.")
    reason = _reason_not_supported(ctl, feature, level)
    if reason is not None:
        raise invalid(reason)
    if level < current and upgrade_type == UPGRADE:
        raise invalid(
            "Can't downgrade the version of this feature without setting the upgrade type "
            "to either safe or unsafe downgrade."
        )
    if level > current and upgrade_type != UPGRADE:
        raise invalid("Can't downgrade to a newer version.")
    if feature == METADATA_VERSION_FEATURE:
        _check_metadata_version(ctl, level, upgrade_type == UNSAFE_DOWNGRADE)


def update_features(
    ctl: QuorumController,
    request: UpdateFeaturesRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Answer every requested feature; write a FeatureLevelRecord for each accepted one."""
    updates: dict[str, tuple[int, int]] = {}
    for update in request.feature_updates:
        updates[update.feature] = (update.max_version_level, update.upgrade_type)
    answers: dict[str, UpdateFeaturesResponse.UpdatableFeatureResult] = {}
    records: list[FeatureLevelRecord] = []
    # Kafka checks the features in its HashMap's order, which orders the records; the
    # answers are sorted by name.
    for feature in java_hash_map_order(list(updates)):
        level, upgrade_type = updates[feature]
        try:
            _check(ctl, feature, level, upgrade_type)
        except _Invalid as e:
            answers[feature] = UpdateFeaturesResponse.UpdatableFeatureResult(
                feature=feature,
                error_code=ErrorCode.INVALID_UPDATE_VERSION,
                error_message=e.message,
            )
            continue
        if len(records) >= MAX_RECORDS_PER_USER_OP:
            raise excessively_large_operation()
        records.append(FeatureLevelRecord(name=feature, feature_level=level))
        answers[feature] = UpdateFeaturesResponse.UpdatableFeatureResult(
            feature=feature, error_code=ErrorCode.NONE, error_message=None
        )
    results = [answers[feature] for feature in sorted(answers)]
    response = UpdateFeaturesResponse(results=results)
    if request.validate_only or not records:
        return ControllerResult(records=[], response=response)
    return ctl.apply(Applied(), list(records), next_offset).result(response)
